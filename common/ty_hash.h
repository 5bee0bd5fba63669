/*  ty_hash: a string-keyed hash table of pointers (chained, grows by 2x).
 *  Keys are copied; values are borrowed (the table never frees them).
 *  Not thread-safe. */
#ifndef TY_HASH_H
#define TY_HASH_H
#include <stddef.h>

typedef struct _ty_hash_t ty_hash_t;

ty_hash_t *ty_hash_new (void);
void   ty_hash_destroy (ty_hash_t **self_p);
/* Inserts or replaces. TY_OK or TY_ENOMEM. */
int    ty_hash_put (ty_hash_t *self, const char *key, void *value);
void  *ty_hash_get (ty_hash_t *self, const char *key);
/* Removes key; returns its value or NULL. */
void  *ty_hash_del (ty_hash_t *self, const char *key);
size_t ty_hash_size (ty_hash_t *self);

/* Iteration: call fn for each entry; fn may not modify the table.
 * Returns early if fn returns non-zero. */
typedef int (ty_hash_fn) (const char *key, void *value, void *arg);
void   ty_hash_each (ty_hash_t *self, ty_hash_fn *fn, void *arg);

#endif

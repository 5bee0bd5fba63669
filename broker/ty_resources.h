/*  ty_resources: what a job needs (JobSpec.resources) and what a worker
 *  declares (Ready.resources), and whether the one fits the other.
 *
 *  A need fits when every key it names is declared by the worker and
 *  - a numeric need ("2", "4000", "0.5") is <= the worker's value, which
 *    must be numeric too (threads, memory_mb, gpus...);
 *  - any other need equals the worker's text ("arch=x86_64", "pool=big").
 *  A key the worker does not declare does not fit: a job asking for 4 GB
 *  must not land on a worker that said nothing about its memory.
 *
 *  Not the place for counting what running jobs use: a worker's slots
 *  (capacity) do that; resources say which worker may take a job at all. */
#ifndef TY_RESOURCES_H
#define TY_RESOURCES_H

#include <stddef.h>

#define TY_RESOURCES_MAX        32    /* entries in one map (peer input) */
#define TY_RESOURCES_KEY_MAX    64    /* bytes of a key */
#define TY_RESOURCES_VALUE_MAX  128   /* bytes of a value */

typedef struct _ty_resources_t ty_resources_t;

/* An empty set. NULL on ENOMEM. */
ty_resources_t *ty_resources_new (void);
void ty_resources_destroy (ty_resources_t **self_p);

/* Adds (or replaces) one entry; both texts copied.
 * TY_OK, TY_EINVAL (over a limit, empty or unprintable key, unprintable value)
 * or TY_ENOMEM. */
int  ty_resources_add (ty_resources_t *self, const char *key, const char *value);
size_t ty_resources_count (const ty_resources_t *self);

/* 1 if need fits have (see above). need NULL or empty fits anything;
 * have NULL is a worker that declared nothing. */
int  ty_resources_fit (const ty_resources_t *need, const ty_resources_t *have);

/* Checks one entry of a peer's map against the limits above: NULL if fine,
 * else a static text saying what is wrong. */
const char *ty_resources_check (const char *key, const char *value);

#endif

#include "ty_hash.h"
#include "ty_error.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct s_node {
    struct s_node *next;
    uint64_t hash;
    void *value;
    char key [];
} s_node;

struct _ty_hash_t {
    s_node **buckets;
    size_t nbuckets;      /* power of two */
    size_t size;
};

static uint64_t
s_fnv1a (const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char) *s;
        h *= 1099511628211ULL;
    }
    return h;
}

ty_hash_t *
ty_hash_new (void)
{
    ty_hash_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->nbuckets = 64;
    self->buckets = calloc (self->nbuckets, sizeof *self->buckets);
    if (!self->buckets) {
        free (self);
        return NULL;
    }
    return self;
}

void
ty_hash_destroy (ty_hash_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_hash_t *self = *self_p;
    for (size_t i = 0; i < self->nbuckets; i++) {
        s_node *n = self->buckets [i];
        while (n) {
            s_node *next = n->next;
            free (n);
            n = next;
        }
    }
    free (self->buckets);
    free (self);
    *self_p = NULL;
}

static void
s_grow (ty_hash_t *self)
{
    size_t nb = self->nbuckets * 2;
    s_node **b = calloc (nb, sizeof *b);
    if (!b)
        return;             /* keep working with longer chains */
    for (size_t i = 0; i < self->nbuckets; i++) {
        s_node *n = self->buckets [i];
        while (n) {
            s_node *next = n->next;
            size_t j = n->hash & (nb - 1);
            n->next = b [j];
            b [j] = n;
            n = next;
        }
    }
    free (self->buckets);
    self->buckets = b;
    self->nbuckets = nb;
}

int
ty_hash_put (ty_hash_t *self, const char *key, void *value)
{
    uint64_t h = s_fnv1a (key);
    for (s_node *n = self->buckets [h & (self->nbuckets - 1)]; n; n = n->next)
        if (n->hash == h && !strcmp (n->key, key)) {
            n->value = value;
            return TY_OK;
        }
    size_t klen = strlen (key);
    s_node *n = malloc (sizeof *n + klen + 1);
    if (!n)
        return TY_ENOMEM;
    memcpy (n->key, key, klen + 1);
    n->hash = h;
    n->value = value;
    size_t i = h & (self->nbuckets - 1);
    n->next = self->buckets [i];
    self->buckets [i] = n;
    if (++self->size > self->nbuckets)
        s_grow (self);
    return TY_OK;
}

void *
ty_hash_get (ty_hash_t *self, const char *key)
{
    uint64_t h = s_fnv1a (key);
    for (s_node *n = self->buckets [h & (self->nbuckets - 1)]; n; n = n->next)
        if (n->hash == h && !strcmp (n->key, key))
            return n->value;
    return NULL;
}

void *
ty_hash_del (ty_hash_t *self, const char *key)
{
    uint64_t h = s_fnv1a (key);
    s_node **pp = &self->buckets [h & (self->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        s_node *n = *pp;
        if (n->hash == h && !strcmp (n->key, key)) {
            void *v = n->value;
            *pp = n->next;
            free (n);
            self->size--;
            return v;
        }
    }
    return NULL;
}

size_t
ty_hash_size (ty_hash_t *self)
{
    return self->size;
}

void
ty_hash_each (ty_hash_t *self, ty_hash_fn *fn, void *arg)
{
    for (size_t i = 0; i < self->nbuckets; i++)
        for (s_node *n = self->buckets [i]; n; n = n->next)
            if (fn (n->key, n->value, arg))
                return;
}

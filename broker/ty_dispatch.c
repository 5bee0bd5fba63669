#include "ty_dispatch.h"
#include "ty_error.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TYPES_MAX 16

typedef struct {
    double score;
    char   id [TY_ID_LEN + 1];
} s_entry;

typedef struct {
    char     type [32];
    s_entry *heap;
    size_t   size;
    size_t   cap;
} s_heap;

/* Jobs set aside, with the heap they came from. */
typedef struct {
    s_entry *v;
    size_t  *heap;
    size_t   n, cap;
} s_aside;

struct _ty_queues_t {
    s_heap heaps [S_TYPES_MAX];
    size_t nheaps;
    s_aside held;
    s_aside parked;
};

double
ty_dispatch_score (unsigned priority, int64_t created_ms)
{
    if (priority > TY_PRIORITY_MAX)
        priority = TY_PRIORITY_MAX;
    /* 2^41 ms is year 2039+; (1000 * 2^41 + ms) < 2^53, so the sum is exact. */
    return (double) (TY_PRIORITY_MAX - priority) * 2199023255552.0 + (double) created_ms;
}

ty_queues_t *
ty_queues_new (void)
{
    return calloc (1, sizeof (ty_queues_t));
}

void
ty_queues_destroy (ty_queues_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (size_t i = 0; i < (*self_p)->nheaps; i++)
        free ((*self_p)->heaps [i].heap);
    free ((*self_p)->held.v);
    free ((*self_p)->held.heap);
    free ((*self_p)->parked.v);
    free ((*self_p)->parked.heap);
    free (*self_p);
    *self_p = NULL;
}

static s_heap *
s_heap_of (ty_queues_t *self, const char *type, int create)
{
    for (size_t i = 0; i < self->nheaps; i++)
        if (!strcmp (self->heaps [i].type, type))
            return &self->heaps [i];
    if (!create || self->nheaps == S_TYPES_MAX || strlen (type) >= 32)
        return NULL;
    s_heap *h = &self->heaps [self->nheaps++];
    strcpy (h->type, type);
    return h;
}

static int
s_less (const s_entry *a, const s_entry *b)
{
    if (a->score != b->score)
        return a->score < b->score;
    return strcmp (a->id, b->id) < 0;
}

int
ty_queues_push (ty_queues_t *self, const char *type, const char *id, double score)
{
    s_heap *h = s_heap_of (self, type, 1);
    if (!h)
        return TY_EINVAL;
    if (h->size == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        s_entry *heap = realloc (h->heap, cap * sizeof *heap);
        if (!heap)
            return TY_ENOMEM;
        h->heap = heap;
        h->cap = cap;
    }
    size_t i = h->size++;
    h->heap [i].score = score;
    snprintf (h->heap [i].id, sizeof h->heap [i].id, "%s", id);
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!s_less (&h->heap [i], &h->heap [parent]))
            break;
        s_entry t = h->heap [i];
        h->heap [i] = h->heap [parent];
        h->heap [parent] = t;
        i = parent;
    }
    return TY_OK;
}

int
ty_queues_pop (ty_queues_t *self, const char *type, char *id)
{
    s_heap *h = s_heap_of (self, type, 0);
    if (!h || h->size == 0)
        return 0;
    memcpy (id, h->heap [0].id, TY_ID_LEN + 1);
    h->heap [0] = h->heap [--h->size];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < h->size && s_less (&h->heap [l], &h->heap [best]))
            best = l;
        if (r < h->size && s_less (&h->heap [r], &h->heap [best]))
            best = r;
        if (best == i)
            break;
        s_entry t = h->heap [i];
        h->heap [i] = h->heap [best];
        h->heap [best] = t;
        i = best;
    }
    return 1;
}

size_t
ty_queues_len (ty_queues_t *self, const char *type)
{
    s_heap *h = s_heap_of (self, type, 0);
    return h ? h->size : 0;
}

void
ty_queues_clear (ty_queues_t *self)
{
    for (size_t i = 0; i < self->nheaps; i++)
        self->heaps [i].size = 0;
    self->held.n = 0;
    self->parked.n = 0;
}

static int
s_aside_add (ty_queues_t *self, s_aside *a, const char *type, const char *id, double score)
{
    s_heap *h = s_heap_of (self, type, 1);
    if (!h)
        return TY_EINVAL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        s_entry *v = realloc (a->v, cap * sizeof *v);
        if (v)
            a->v = v;
        size_t *hp = v ? realloc (a->heap, cap * sizeof *hp) : NULL;
        if (!v || !hp)
            return TY_ENOMEM;
        a->heap = hp;
        a->cap = cap;
    }
    a->v [a->n].score = score;
    snprintf (a->v [a->n].id, sizeof a->v [a->n].id, "%s", id);
    a->heap [a->n] = (size_t) (h - self->heaps);
    a->n++;
    return TY_OK;
}

static void
s_aside_flush (ty_queues_t *self, s_aside *a)
{
    for (size_t i = 0; i < a->n; i++)
        ty_queues_push (self, self->heaps [a->heap [i]].type, a->v [i].id, a->v [i].score);
    a->n = 0;
}

int
ty_queues_hold (ty_queues_t *self, const char *type, const char *id, double score)
{
    return s_aside_add (self, &self->held, type, id, score);
}

int
ty_queues_park (ty_queues_t *self, const char *type, const char *id, double score)
{
    return s_aside_add (self, &self->parked, type, id, score);
}

void
ty_queues_unhold (ty_queues_t *self)
{
    s_aside_flush (self, &self->held);
}

void
ty_queues_unpark (ty_queues_t *self)
{
    s_aside_flush (self, &self->parked);
}

size_t
ty_queues_parked (ty_queues_t *self)
{
    return self->parked.n;
}

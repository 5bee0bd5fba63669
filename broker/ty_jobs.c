#include "ty_jobs.h"
#include "ty_error.h"
#include "ty_hash.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _ty_jobs_t {
    ty_hash_t *table;            /* id -> ty_jobrec_t */
};

ty_jobs_t *
ty_jobs_new (void)
{
    ty_jobs_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->table = ty_hash_new ();
    if (!self->table) {
        free (self);
        return NULL;
    }
    return self;
}

static void
s_free (ty_jobrec_t *job)
{
    free (job->spec_pb);
    free (job->children);
    free (job);
}

typedef struct {
    ty_jobrec_t **v;
    size_t n, cap;
} s_list;

static int
s_collect (const char *key, void *value, void *arg)
{
    s_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        ty_jobrec_t **v = realloc (l->v, cap * sizeof *v);
        if (!v)
            return 1;
        l->v = v;
        l->cap = cap;
    }
    l->v [l->n++] = value;
    return 0;
}

void
ty_jobs_clear (ty_jobs_t *self)
{
    while (ty_hash_size (self->table) > 0) {
        s_list l = { 0 };
        ty_hash_each (self->table, s_collect, &l);
        if (l.n == 0) {
            free (l.v);
            return;         /* out of memory: leak rather than loop */
        }
        for (size_t i = 0; i < l.n; i++) {
            ty_hash_del (self->table, l.v [i]->id);
            s_free (l.v [i]);
        }
        free (l.v);
    }
}

void
ty_jobs_destroy (ty_jobs_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_jobs_clear (*self_p);
    ty_hash_destroy (&(*self_p)->table);
    free (*self_p);
    *self_p = NULL;
}

ty_jobrec_t *
ty_jobs_add (ty_jobs_t *self, const char *id)
{
    if (ty_hash_get (self->table, id))
        return NULL;
    ty_jobrec_t *job = calloc (1, sizeof *job);
    if (!job)
        return NULL;
    snprintf (job->id, sizeof job->id, "%s", id);
    if (ty_hash_put (self->table, job->id, job) != TY_OK) {
        free (job);
        return NULL;
    }
    return job;
}

ty_jobrec_t *
ty_jobs_find (ty_jobs_t *self, const char *id)
{
    return ty_hash_get (self->table, id);
}

void
ty_jobs_remove (ty_jobs_t *self, const char *id)
{
    ty_jobrec_t *job = ty_hash_del (self->table, id);
    if (job)
        s_free (job);
}

size_t
ty_jobs_count (ty_jobs_t *self)
{
    return ty_hash_size (self->table);
}

typedef struct {
    ty_jobs_fn *fn;
    void *arg;
} s_each;

static int
s_each_cb (const char *key, void *value, void *arg)
{
    s_each *e = arg;
    e->fn (value, e->arg);
    return 0;
}

void
ty_jobs_each (ty_jobs_t *self, ty_jobs_fn *fn, void *arg)
{
    s_each e = { fn, arg };
    ty_hash_each (self->table, s_each_cb, &e);
}

int
ty_jobrec_set_spec (ty_jobrec_t *job, const void *pb, size_t len)
{
    uint8_t *copy = malloc (len ? len : 1);
    if (!copy)
        return TY_ENOMEM;
    if (len)
        memcpy (copy, pb, len);
    free (job->spec_pb);
    job->spec_pb = copy;
    job->spec_len = len;
    return TY_OK;
}

int
ty_jobrec_add_child (ty_jobrec_t *job, const char *child_id)
{
    if (job->nchildren == job->cchildren) {
        size_t cap = job->cchildren ? job->cchildren * 2 : 4;
        void *v = realloc (job->children, cap * sizeof *job->children);
        if (!v)
            return TY_ENOMEM;
        job->children = v;
        job->cchildren = cap;
    }
    snprintf (job->children [job->nchildren++], TY_ID_LEN + 1, "%s", child_id);
    return TY_OK;
}

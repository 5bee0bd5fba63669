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
    free (job->step);
    ty_jobkvs_clear (&job->inputs);
    ty_jobkvs_clear (&job->metrics);
    ty_resources_destroy (&job->needs);
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

int
ty_jobrec_set_needs (ty_jobrec_t *job, const Ty__JobSpec *spec)
{
    ty_resources_destroy (&job->needs);
    if (spec->n_resources == 0)
        return TY_OK;
    job->needs = ty_resources_new ();
    int rc = job->needs ? TY_OK : TY_ENOMEM;
    for (size_t k = 0; k < spec->n_resources && rc == TY_OK; k++)
        rc = ty_resources_add (job->needs, spec->resources [k]->key, spec->resources [k]->value);
    return rc;
}

int
ty_jobrec_set_step (ty_jobrec_t *job, const char *step)
{
    free (job->step);
    job->step = NULL;
    if (!step || !*step)
        return TY_OK;
    job->step = strdup (step);
    return job->step ? TY_OK : TY_ENOMEM;
}

/* ---- key/value lists ------------------------------------------------------------ */

int
ty_jobkvs_set (ty_jobkvs_t *self, const char *prefix, const char *key, const char *value)
{
    size_t plen = prefix ? strlen (prefix) + 1 : 0;
    size_t klen = strlen (key);
    char *full = malloc (plen + klen + 1);
    char *val = strdup (value);
    if (!full || !val) {
        free (full);
        free (val);
        return TY_ENOMEM;
    }
    if (prefix)
        snprintf (full, plen + 1, "%s.", prefix);
    memcpy (full + plen, key, klen + 1);
    /* Few keys per job (a parent's outputs and metrics): a scan is enough. */
    for (size_t i = 0; i < self->n; i++)
        if (!strcmp (self->v [i].key, full)) {
            free (full);
            free (self->v [i].value);
            self->v [i].value = val;
            return TY_OK;
        }
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 8;
        ty_jobkv_t *v = realloc (self->v, cap * sizeof *v);
        if (!v) {
            free (full);
            free (val);
            return TY_ENOMEM;
        }
        self->v = v;
        self->cap = cap;
    }
    self->v [self->n].key = full;
    self->v [self->n].value = val;
    self->n++;
    return TY_OK;
}

void
ty_jobkvs_clear (ty_jobkvs_t *self)
{
    for (size_t i = 0; i < self->n; i++) {
        free (self->v [i].key);
        free (self->v [i].value);
    }
    free (self->v);
    self->v = NULL;
    self->n = self->cap = 0;
}

int
ty_jobkvs_view (const ty_jobkvs_t *self, Ty__Output ***items_out, Ty__Output **store_out)
{
    *items_out = NULL;
    *store_out = NULL;
    if (self->n == 0)
        return TY_OK;
    Ty__Output **items = calloc (self->n, sizeof *items);
    Ty__Output *store = calloc (self->n, sizeof *store);
    if (!items || !store) {
        free (items);
        free (store);
        return TY_ENOMEM;
    }
    for (size_t i = 0; i < self->n; i++) {
        ty__output__init (&store [i]);
        store [i].key = self->v [i].key;
        store [i].value = self->v [i].value;
        items [i] = &store [i];
    }
    *items_out = items;
    *store_out = store;
    return TY_OK;
}

int
ty_jobkvs_pack (const ty_jobkvs_t *self, uint8_t **pb_out, size_t *len_out)
{
    Ty__Output **items, *store;
    if (ty_jobkvs_view (self, &items, &store) != TY_OK)
        return TY_ENOMEM;
    Ty__Outputs outs = TY__OUTPUTS__INIT;
    outs.items = items;
    outs.n_items = self->n;
    size_t len = ty__outputs__get_packed_size (&outs);
    uint8_t *pb = malloc (len ? len : 1);
    if (pb)
        ty__outputs__pack (&outs, pb);
    free (items);
    free (store);
    if (!pb)
        return TY_ENOMEM;
    *pb_out = pb;
    *len_out = len;
    return TY_OK;
}

int
ty_jobkvs_unpack_add (ty_jobkvs_t *self, const void *pb, size_t len)
{
    Ty__Outputs *outs = ty__outputs__unpack (NULL, len, pb);
    if (!outs)
        return TY_EPROTO;
    int rc = TY_OK;
    for (size_t i = 0; i < outs->n_items && rc == TY_OK; i++)
        rc = ty_jobkvs_set (self, NULL, outs->items [i]->key, outs->items [i]->value);
    ty__outputs__free_unpacked (outs, NULL);
    return rc;
}

#include "ty_workers.h"
#include "ty_error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _ty_workers_t {
    ty_worker_t **items;     /* few workers: a flat array beats a hash here */
    size_t count;
    size_t cap;
};

ty_workers_t *
ty_workers_new (void)
{
    return calloc (1, sizeof (ty_workers_t));
}

static void
s_worker_free (ty_worker_t *w)
{
    free (w->jobs);
    ty_resources_destroy (&w->resources);
    free (w);
}

void
ty_workers_destroy (ty_workers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (size_t i = 0; i < (*self_p)->count; i++)
        s_worker_free ((*self_p)->items [i]);
    free ((*self_p)->items);
    free (*self_p);
    *self_p = NULL;
}

ty_worker_t *
ty_workers_find (ty_workers_t *self, const char *id)
{
    for (size_t i = 0; i < self->count; i++)
        if (!strcmp (self->items [i]->id, id))
            return self->items [i];
    return NULL;
}

ty_worker_t *
ty_workers_find_fd (ty_workers_t *self, int fd)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->items [i]->srcfd == fd)
            return self->items [i];
    return NULL;
}

ty_worker_t *
ty_workers_require (ty_workers_t *self, const char *id, unsigned capacity)
{
    if (capacity == 0)
        capacity = 1;
    if (capacity > TY_WORKER_CAP_MAX)
        capacity = TY_WORKER_CAP_MAX;
    ty_worker_t *w = ty_workers_find (self, id);
    if (w) {
        if (capacity > w->capacity) {
            void *jobs = realloc (w->jobs, capacity * sizeof *w->jobs);
            if (!jobs)
                return NULL;
            w->jobs = jobs;
        }
        w->capacity = capacity;
        return w;
    }
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        ty_worker_t **items = realloc (self->items, cap * sizeof *items);
        if (!items)
            return NULL;
        self->items = items;
        self->cap = cap;
    }
    w = calloc (1, sizeof *w);
    if (!w)
        return NULL;
    w->jobs = calloc (capacity, sizeof *w->jobs);
    if (!w->jobs) {
        free (w);
        return NULL;
    }
    snprintf (w->id, sizeof w->id, "%s", id);
    w->capacity = capacity;
    w->srcfd = -1;
    self->items [self->count++] = w;
    return w;
}

void
ty_workers_remove (ty_workers_t *self, const char *id)
{
    for (size_t i = 0; i < self->count; i++)
        if (!strcmp (self->items [i]->id, id)) {
            s_worker_free (self->items [i]);
            self->items [i] = self->items [--self->count];
            return;
        }
}

size_t
ty_workers_count (ty_workers_t *self)
{
    return self->count;
}

ty_worker_t *
ty_workers_at (ty_workers_t *self, size_t i)
{
    return i < self->count ? self->items [i] : NULL;
}

int
ty_worker_job_add (ty_worker_t *w, const char *job_id)
{
    if (ty_worker_job_has (w, job_id))
        return TY_OK;
    if (w->njobs >= w->capacity)
        return TY_EFULL;
    snprintf (w->jobs [w->njobs++], TY_ID_LEN + 1, "%s", job_id);
    return TY_OK;
}

int
ty_worker_job_del (ty_worker_t *w, const char *job_id)
{
    for (size_t i = 0; i < w->njobs; i++)
        if (!strcmp (w->jobs [i], job_id)) {
            if (i != w->njobs - 1)
                memcpy (w->jobs [i], w->jobs [w->njobs - 1], TY_ID_LEN + 1);
            w->njobs--;
            return 1;
        }
    return 0;
}

int
ty_worker_job_has (ty_worker_t *w, const char *job_id)
{
    for (size_t i = 0; i < w->njobs; i++)
        if (!strcmp (w->jobs [i], job_id))
            return 1;
    return 0;
}

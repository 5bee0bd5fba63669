/*  ty_pipeline_submit: the expanded steps -> one atomic Submit (all jobs or
 *  none), in topological order with parent_items, each item carrying the
 *  pipeline id and its step name. Also the accessors and the destructor.
 */
#include "ty_pipeline_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ty_id.h"

void
ty_pipeline_destroy (ty_pipeline_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_pipeline_t *self = *self_p;
    ty_pipeline_items_free (self);
    free (self->name);
    free (self->ids);
    free (self);
    *self_p = NULL;
}

const char *
ty_pipeline_name (const ty_pipeline_t *self)
{
    return self ? self->name : NULL;
}

size_t
ty_pipeline_nsteps (const ty_pipeline_t *self)
{
    return self ? self->nitems : 0;
}

const char *
ty_pipeline_step_name (const ty_pipeline_t *self, size_t i)
{
    return self && i < self->nitems ? self->items [i].name : NULL;
}

const char *
ty_pipeline_step_type (const ty_pipeline_t *self, size_t i)
{
    return self && i < self->nitems ? ty_pipeline_kind_name (self->items [i].kind) : NULL;
}

const Ty__JobSpec *
ty_pipeline_step_spec (const ty_pipeline_t *self, size_t i)
{
    return self && i < self->nitems ? self->items [i].spec : NULL;
}

size_t
ty_pipeline_step_nparents (const ty_pipeline_t *self, size_t i)
{
    return self && i < self->nitems ? self->items [i].nparents : 0;
}

size_t
ty_pipeline_step_parent (const ty_pipeline_t *self, size_t i, size_t j)
{
    return self && i < self->nitems && j < self->items [i].nparents
         ? self->items [i].parents [j] : 0;
}

const char *
ty_pipeline_job_id (const ty_pipeline_t *self, size_t i)
{
    if (!self || i >= self->nitems || !self->ids [0])
        return NULL;
    return self->ids + i * (TY_ID_LEN + 1);
}

int
ty_pipeline_submit (const ty_pipeline_t *self, ty_client_t *client, const char *pipeline_id,
                    const char *idem_prefix, int timeout_ms, char *pipeline_id_out,
                    size_t id_cap, char *err, size_t errlen)
{
    if (err && errlen)
        err [0] = '\0';
    if (!self || !client || self->nitems == 0)
        return TY_EINVAL;
    char id [TY_PIPELINE_ID_LEN + 1];
    if (pipeline_id)
        snprintf (id, sizeof id, "%s", pipeline_id);
    else {
        char raw_id [TY_ID_LEN + 1];
        ty_id_new (raw_id);
        snprintf (id, sizeof id, "p-%s", raw_id);
    }
    ty_submit_item_t *items = calloc (self->nitems, sizeof *items);
    char **keys = calloc (self->nitems, sizeof *keys);
    int rc = items && keys ? TY_OK : TY_ENOMEM;
    for (size_t i = 0; rc == TY_OK && i < self->nitems; i++) {
        const ty_pipeline_item_t *it = &self->items [i];
        items [i].spec = it->spec;
        items [i].parent_items = it->parents;
        items [i].nparent_items = it->nparents;
        items [i].pipeline = id;
        items [i].step = it->name;
        if (idem_prefix) {
            size_t len = strlen (idem_prefix) + 1 + strlen (it->name) + 1;
            keys [i] = malloc (len);
            if (!keys [i])
                rc = TY_ENOMEM;
            else {
                snprintf (keys [i], len, "%s:%s", idem_prefix, it->name);
                items [i].idempotency_key = keys [i];
            }
        }
    }
    char *ids = rc == TY_OK ? calloc (self->nitems, TY_ID_LEN + 1) : NULL;
    if (rc == TY_OK && !ids)
        rc = TY_ENOMEM;
    if (rc == TY_OK) {
        rc = ty_client_submit_batch (client, items, self->nitems, 0, timeout_ms, ids);
        if (rc != TY_OK && err && errlen)
            snprintf (err, errlen, "submit: %s", ty_client_errstr (client));
    }
    else if (err && errlen)
        snprintf (err, errlen, "out of memory");
    if (rc == TY_OK) {
        /* self is const for callers; the id cache is scratch memory it owns. */
        memcpy (self->ids, ids, self->nitems * (TY_ID_LEN + 1));
        if (pipeline_id_out && id_cap)
            snprintf (pipeline_id_out, id_cap, "%s", id);
    }
    for (size_t i = 0; keys && i < self->nitems; i++)
        free (keys [i]);
    free (keys);
    free (items);
    free (ids);
    return rc;
}

/*  ty_pipeline_remote: pipelines already in the broker: their jobs, cancel,
 *  retry. A pipeline is the set of jobs whose JobInfo.pipeline is its id;
 *  after a retry a step has several jobs and the newest one counts.
 *
 *  The broker filters the list by pipeline (ListReq.pipeline); the jobs are
 *  filtered here again so an older broker that ignores the field gives the
 *  right answer for pipelines among its newest jobs.
 */
#include "ty_pipeline_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Without a broker-side filter: how many of the newest jobs to scan. */
#define S_LIST_SCAN_LIMIT   10000

static void s_err (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_err (char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, errlen, fmt, ap);
    va_end (ap);
}

static int
s_ended (const char *state)
{
    return !strcmp (state, "SUCCEEDED") || !strcmp (state, "FAILED")
        || !strcmp (state, "CANCELLED");
}

const char *
ty_pipeline_job_step (const Ty__JobInfo *job)
{
    if (job->step && *job->step)
        return job->step;
    const char *slash = job->name ? strchr (job->name, '/') : NULL;
    if (!slash)
        return job->id;
    /* "<pipeline>/<step>: <display name>": the step ends at ':'. */
    static __thread char step [TY_PIPELINE_ERR_LEN];
    snprintf (step, sizeof step, "%.*s", (int) strcspn (slash + 1, ":"), slash + 1);
    return step;
}

static int
s_by_age (const void *a, const void *b)
{
    const Ty__JobInfo *x = *(Ty__JobInfo *const *) a, *y = *(Ty__JobInfo *const *) b;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return strcmp (x->id, y->id);     /* ids sort by creation time too */
}

int
ty_pipeline_jobs (ty_client_t *client, const char *pipeline_id, int timeout_ms,
                  Ty__JobList **list_out, char *err, size_t errlen)
{
    *list_out = NULL;
    Ty__JobList *list = NULL;
    int rc = ty_client_list_pipeline (client, pipeline_id, S_LIST_SCAN_LIMIT, timeout_ms, &list);
    if (rc != TY_OK) {
        s_err (err, errlen, "list %s: %s", pipeline_id, ty_client_errstr (client));
        return rc;
    }
    /* Keep this pipeline's jobs only (the broker may not filter). */
    size_t kept = 0;
    for (size_t i = 0; i < list->n_jobs; i++) {
        if (list->jobs [i]->pipeline && !strcmp (list->jobs [i]->pipeline, pipeline_id))
            list->jobs [kept++] = list->jobs [i];
        else
            ty_client_free_msg (list->jobs [i]);
    }
    list->n_jobs = kept;
    if (kept == 0) {
        ty_client_free_msg (list);
        s_err (err, errlen, "no pipeline %s", pipeline_id);
        return TY_ENOTFOUND;
    }
    qsort (list->jobs, kept, sizeof *list->jobs, s_by_age);
    *list_out = list;
    return TY_OK;
}

int
ty_pipeline_steps (ty_client_t *client, const char *pipeline_id, int timeout_ms,
                   Ty__JobList **list_out, char *err, size_t errlen)
{
    *list_out = NULL;
    Ty__JobList *list = NULL;
    int rc = ty_pipeline_jobs (client, pipeline_id, timeout_ms, &list, err, errlen);
    if (rc != TY_OK)
        return rc;
    Ty__JobList *out = malloc (sizeof *out);
    Ty__JobInfo **jobs = calloc (list->n_jobs, sizeof *jobs);
    if (!out || !jobs) {
        free (out);
        free (jobs);
        ty_client_free_msg (list);
        return TY_ENOMEM;
    }
    ty__job_list__init (out);
    out->jobs = jobs;
    /* Oldest first: a later job of the same step replaces the earlier. */
    const Ty__JobInfo **latest = (const Ty__JobInfo **) calloc (list->n_jobs, sizeof *latest);
    size_t n = 0;
    for (size_t i = 0; latest && i < list->n_jobs; i++) {
        const char *step = ty_pipeline_job_step (list->jobs [i]);
        size_t k = 0;
        while (k < n && strcmp (ty_pipeline_job_step (latest [k]), step))
            k++;
        latest [k] = list->jobs [i];
        if (k == n)
            n++;
    }
    if (!latest)
        rc = TY_ENOMEM;
    for (size_t k = 0; rc == TY_OK && k < n; k++) {
        rc = ty_client_status (client, latest [k]->id, timeout_ms, &out->jobs [k]);
        if (rc == TY_OK)
            out->n_jobs++;
        else
            s_err (err, errlen, "status %s: %s", latest [k]->id, ty_client_errstr (client));
    }
    free (latest);
    ty_client_free_msg (list);
    if (rc != TY_OK) {
        ty_client_free_msg (out);
        return rc;
    }
    *list_out = out;
    return TY_OK;
}

int
ty_pipeline_cancel (ty_client_t *client, const char *pipeline_id, const char *reason,
                    int timeout_ms, size_t *ncancelled, char *err, size_t errlen)
{
    if (ncancelled)
        *ncancelled = 0;
    Ty__JobList *list = NULL;
    int rc = ty_pipeline_jobs (client, pipeline_id, timeout_ms, &list, err, errlen);
    if (rc != TY_OK)
        return rc;
    /* Children first would race with the broker cancelling them on the
       parent's cancel; any order works because an ended job is skipped. */
    for (size_t i = 0; i < list->n_jobs && rc == TY_OK; i++) {
        const Ty__JobInfo *job = list->jobs [i];
        if (s_ended (job->state))
            continue;
        int crc = ty_client_cancel (client, job->id, reason ? reason : "pipeline cancelled",
                                    timeout_ms);
        if (crc == TY_OK) {
            if (ncancelled)
                (*ncancelled)++;
        }
        else if (crc != TY_ESTATE) {      /* ended meanwhile: fine */
            s_err (err, errlen, "cancel %s: %s", job->id, ty_client_errstr (client));
            rc = crc;
        }
    }
    ty_client_free_msg (list);
    return rc;
}

/* ---- retry ------------------------------------------------------------------------ */

typedef struct {
    const char *step;
    const Ty__JobInfo *latest;
    int redo;                     /* resubmitted */
    Ty__JobInfo *full;            /* status with spec (redo only) */
    Ty__JobSpec *spec;
    long item;                    /* index in the new Submit, -1 before placed */
} s_step_t;

static long
s_find_step (s_step_t *steps, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp (steps [i].step, name))
            return (long) i;
    return -1;
}

/* The step of the pipeline job with this id, -1 if it is not one of them. */
static long
s_step_of_job (const Ty__JobList *list, s_step_t *steps, size_t n, const char *id)
{
    for (size_t i = 0; i < list->n_jobs; i++)
        if (!strcmp (list->jobs [i]->id, id))
            return s_find_step (steps, n, ty_pipeline_job_step (list->jobs [i]));
    return -1;
}

int
ty_pipeline_retry (ty_client_t *client, const char *pipeline_id, int timeout_ms,
                   size_t *nresubmitted, char *err, size_t errlen)
{
    if (nresubmitted)
        *nresubmitted = 0;
    Ty__JobList *list = NULL;
    int rc = ty_pipeline_jobs (client, pipeline_id, timeout_ms, &list, err, errlen);
    if (rc != TY_OK)
        return rc;
    size_t n = 0;
    s_step_t *steps = calloc (list->n_jobs, sizeof *steps);
    if (!steps) {
        ty_client_free_msg (list);
        return TY_ENOMEM;
    }
    /* Oldest first: the last job seen of a step is its latest. */
    for (size_t i = 0; i < list->n_jobs; i++) {
        const char *name = ty_pipeline_job_step (list->jobs [i]);
        long s = s_find_step (steps, n, name);
        if (s < 0) {
            s = (long) n++;
            steps [s].step = list->jobs [i]->step && *list->jobs [i]->step
                           ? list->jobs [i]->step : strdup (name);
            steps [s].item = -1;
        }
        steps [s].latest = list->jobs [i];
    }
    size_t nredo = 0;
    for (size_t s = 0; s < n && rc == TY_OK; s++) {
        const Ty__JobInfo *j = steps [s].latest;
        if (!s_ended (j->state)) {
            s_err (err, errlen, "step %s is still %s: wait for the pipeline to end or cancel "
                   "it first", steps [s].step, j->state);
            rc = TY_ESTATE;
        }
        else if (strcmp (j->state, "SUCCEEDED")) {
            steps [s].redo = 1;
            nredo++;
        }
    }
    if (rc == TY_OK && nredo == 0) {
        s_err (err, errlen, "pipeline %s: every step succeeded, nothing to retry",
               pipeline_id);
        rc = TY_ENOTFOUND;
    }
    /* The specs as submitted. */
    for (size_t s = 0; s < n && rc == TY_OK; s++) {
        if (!steps [s].redo)
            continue;
        rc = ty_client_status_ex (client, steps [s].latest->id, 1, timeout_ms,
                                  &steps [s].full);
        if (rc != TY_OK)
            s_err (err, errlen, "status %s: %s", steps [s].latest->id, ty_client_errstr (client));
        else if (!steps [s].full->spec.len
                 || !(steps [s].spec = ty__job_spec__unpack (NULL, steps [s].full->spec.len,
                                                            steps [s].full->spec.data))) {
            s_err (err, errlen, "job %s: the broker returned no spec", steps [s].latest->id);
            rc = TY_EPROTO;
        }
    }
    ty_submit_item_t *items = rc == TY_OK ? calloc (nredo, sizeof *items) : NULL;
    char **pids = NULL;
    unsigned *pitems = NULL;
    size_t npar = 0;
    if (rc == TY_OK) {
        for (size_t s = 0; s < n; s++)
            if (steps [s].redo)
                npar += steps [s].full->n_parents;
        pids = calloc (npar ? npar : 1, sizeof *pids);
        pitems = calloc (npar ? npar : 1, sizeof *pitems);
        if (!items || !pids || !pitems)
            rc = TY_ENOMEM;
    }
    /* Topological: place a step once every resubmitted parent is placed. */
    size_t placed = 0, pused = 0;
    while (rc == TY_OK && placed < nredo) {
        size_t before = placed;
        for (size_t s = 0; s < n && rc == TY_OK; s++) {
            if (!steps [s].redo || steps [s].item >= 0)
                continue;
            const Ty__JobInfo *full = steps [s].full;
            int ready = 1;
            for (size_t p = 0; p < full->n_parents && ready; p++) {
                long ps = s_step_of_job (list, steps, n, full->parents [p]);
                if (ps >= 0 && steps [ps].redo && steps [ps].item < 0)
                    ready = 0;
            }
            if (!ready)
                continue;
            ty_submit_item_t *it = &items [placed];
            it->spec = steps [s].spec;
            it->pipeline = pipeline_id;
            it->step = steps [s].step;
            it->parents = (const char *const *) pids + pused;
            it->parent_items = pitems + pused;
            /* Each item has its slice [pused, pused + n_parents) in both
               arrays: ids of succeeded parents, indexes of resubmitted ones. */
            size_t np = 0, ni = 0;
            for (size_t p = 0; p < full->n_parents; p++) {
                long ps = s_step_of_job (list, steps, n, full->parents [p]);
                if (ps >= 0 && steps [ps].redo)
                    pitems [pused + ni++] = (unsigned) steps [ps].item;
                else   /* succeeded: its newest job (a retry may have replaced it) */
                    pids [pused + np++] = ps >= 0 ? steps [ps].latest->id : full->parents [p];
            }
            it->nparents = np;
            it->nparent_items = ni;
            pused += full->n_parents;
            steps [s].item = (long) placed++;
        }
        if (placed == before) {
            s_err (err, errlen, "pipeline %s: the failed steps' parents form a cycle",
                   pipeline_id);
            rc = TY_EINTERNAL;
        }
    }
    if (rc == TY_OK) {
        char *ids = calloc (nredo, TY_ID_LEN + 1);
        if (!ids)
            rc = TY_ENOMEM;
        else {
            rc = ty_client_submit_batch (client, items, nredo, 0, timeout_ms, ids);
            if (rc != TY_OK)
                s_err (err, errlen, "submit: %s", ty_client_errstr (client));
            else if (nresubmitted)
                *nresubmitted = nredo;
            free (ids);
        }
    }
    for (size_t s = 0; s < n; s++) {
        if (steps [s].step && (!steps [s].latest->step || !*steps [s].latest->step))
            free ((char *) steps [s].step);
        ty_client_free_msg (steps [s].full);
        if (steps [s].spec)
            ty__job_spec__free_unpacked (steps [s].spec, NULL);
    }
    free (steps);
    free (items);
    free (pids);
    free (pitems);
    ty_client_free_msg (list);
    return rc;
}

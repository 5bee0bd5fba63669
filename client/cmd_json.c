/*  cmd_json: the --json shapes of jobs, events and workers.
 *
 *  Field names are those of proto/envelope.proto, so a script can read the
 *  schema as the documentation of this output; times stay Unix ms, metrics
 *  and outputs become objects ({"loss": 0.31}). One object per line.
 *
 *  cJSON reports allocation failure by returning NULL from each add; rather
 *  than test every call inline, a builder remembers that one failed.
 */
#include "cmd.h"
#include <stdio.h>

typedef struct {
    cJSON *obj;
    int    failed;
} s_builder_t;

static void
s_str (s_builder_t *b, const char *key, const char *value)
{
    if (!cJSON_AddStringToObject (b->obj, key, value ? value : ""))
        b->failed = 1;
}

static void
s_num (s_builder_t *b, const char *key, double value)
{
    if (!cJSON_AddNumberToObject (b->obj, key, value))
        b->failed = 1;
}

static void
s_bool (s_builder_t *b, const char *key, int value)
{
    if (!cJSON_AddBoolToObject (b->obj, key, value))
        b->failed = 1;
}

static void
s_strings (s_builder_t *b, const char *key, char *const *items, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject (b->obj, key);
    if (!arr) {
        b->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateString (items [i] ? items [i] : "");
        if (!s || !cJSON_AddItemToArray (arr, s)) {
            cJSON_Delete (s);
            b->failed = 1;
            return;
        }
    }
}

static void
s_metrics (s_builder_t *b, const char *key, Ty__Metric *const *metrics, size_t n)
{
    cJSON *obj = cJSON_AddObjectToObject (b->obj, key);
    if (!obj) {
        b->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (metrics [i] && metrics [i]->key
        &&  !cJSON_AddNumberToObject (obj, metrics [i]->key, metrics [i]->value))
            b->failed = 1;
}

static void
s_outputs (s_builder_t *b, const char *key, Ty__Output *const *outputs, size_t n)
{
    cJSON *obj = cJSON_AddObjectToObject (b->obj, key);
    if (!obj) {
        b->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (outputs [i] && outputs [i]->key
        &&  !cJSON_AddStringToObject (obj, outputs [i]->key,
                                      outputs [i]->value ? outputs [i]->value : ""))
            b->failed = 1;
}

static s_builder_t
s_begin (void)
{
    s_builder_t b = { cJSON_CreateObject (), 0 };
    if (!b.obj)
        b.failed = 1;
    return b;
}

static cJSON *
s_end (s_builder_t *b)
{
    if (b->failed) {
        cJSON_Delete (b->obj);
        return NULL;
    }
    return b->obj;
}

cJSON *
cmd_json_job (const Ty__JobInfo *job)
{
    s_builder_t b = s_begin ();
    if (b.failed)
        return NULL;
    s_str (&b, "id", job->id);
    s_str (&b, "name", job->name);
    s_str (&b, "type", job->type);
    s_str (&b, "state", job->state);
    s_num (&b, "priority", job->priority);
    s_num (&b, "attempt", job->attempt);
    s_num (&b, "max_attempts", job->max_attempts);
    s_str (&b, "worker", job->worker);
    s_strings (&b, "parents", job->parents, job->n_parents);
    s_str (&b, "pipeline", job->pipeline);
    s_num (&b, "created_ms", (double) job->created_ms);
    s_num (&b, "queued_ms", (double) job->queued_ms);
    s_num (&b, "started_ms", (double) job->started_ms);
    s_num (&b, "finished_ms", (double) job->finished_ms);
    s_num (&b, "progress", job->progress);
    s_str (&b, "phase", job->phase);
    s_str (&b, "message", job->message);
    s_str (&b, "error", job->error);
    s_str (&b, "spec_summary", job->spec_summary);
    s_str (&b, "result_summary", job->result_summary);
    s_outputs (&b, "outputs", job->outputs, job->n_outputs);
    s_metrics (&b, "metrics", job->metrics, job->n_metrics);
    s_bool (&b, "cancel_requested", job->cancel_requested);
    return s_end (&b);
}

cJSON *
cmd_json_event (const Ty__Event *event)
{
    s_builder_t b = s_begin ();
    if (b.failed)
        return NULL;
    s_str (&b, "job_id", event->job_id);
    s_str (&b, "kind", event->kind);
    s_str (&b, "state", event->state);
    s_num (&b, "attempt", event->attempt);
    s_num (&b, "progress", event->progress);
    s_str (&b, "phase", event->phase);
    s_str (&b, "message", event->message);
    s_metrics (&b, "metrics", event->metrics, event->n_metrics);
    s_num (&b, "time_ms", (double) event->time_ms);
    s_str (&b, "error", event->error);
    s_bool (&b, "final", event->final);
    return s_end (&b);
}

cJSON *
cmd_json_worker (const Ty__WorkerInfo *worker)
{
    s_builder_t b = s_begin ();
    if (b.failed)
        return NULL;
    s_str (&b, "id", worker->id);
    s_str (&b, "type", worker->type);
    s_str (&b, "host", worker->host);
    s_num (&b, "pid", worker->pid);
    s_num (&b, "capacity", worker->capacity);
    s_strings (&b, "jobs", worker->jobs, worker->n_jobs);
    s_num (&b, "last_seen_ms", (double) worker->last_seen_ms);
    return s_end (&b);
}

int
cmd_json_print (cJSON *item)
{
    if (!item)
        return cmd_error ("out of memory while building JSON");
    char *text = cJSON_PrintUnformatted (item);
    cJSON_Delete (item);
    if (!text)
        return cmd_error ("out of memory while printing JSON");
    int ok = puts (text) >= 0;
    cJSON_free (text);
    if (!ok)
        return cmd_error ("cannot write to stdout");
    return TY_CMD_EXIT_OK;
}

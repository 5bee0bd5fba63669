/*  ty_clients: the broker's answers to clients. Submit and cancel change
 *  job state (memory + the turn's Redis transaction); the rest read Redis.
 *  Every answer goes through the outbox, so it leaves after the turn's
 *  commit and never claims a state Redis does not hold. */
#include "ty_broker_int.h"
#include "ty_clock.h"
#include "ty_error.h"
#include "ty_id.h"
#include "ty_jobstate.h"
#include "ty_log.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_FIELDS_MAX 256

static const char *
s_spec_type (const Ty__JobSpec *spec)
{
    switch (spec->kind_case) {
    case TY__JOB_SPEC__KIND_NOOP:     return "noop";
    case TY__JOB_SPEC__KIND_PREPARE:  return "prepare";
    case TY__JOB_SPEC__KIND_TRAIN:    return "train";
    case TY__JOB_SPEC__KIND_EVALUATE: return "evaluate";
    case TY__JOB_SPEC__KIND_CONVERT:  return "convert";
    case TY__JOB_SPEC__KIND_CONTROL:  return "control";
    default:                          return NULL;
    }
}

static void
s_spec_summary (const Ty__JobSpec *spec, char *buf, size_t size)
{
    size_t n = 0;
    const char *type = s_spec_type (spec);
    n += (size_t) snprintf (buf + n, size - n, "%s", type);
    switch (spec->kind_case) {
    case TY__JOB_SPEC__KIND_NOOP:
        snprintf (buf + n, size - n, " sleep_ms=%u fail=%d output_bytes=%u%s",
                  spec->noop->sleep_ms, spec->noop->fail, spec->noop->output_bytes,
                  spec->noop->crash ? " crash=1" : "");
        break;
    case TY__JOB_SPEC__KIND_PREPARE:
        snprintf (buf + n, size - n, " dataset=%s source=%s format=%s",
                  spec->prepare->dataset, spec->prepare->source, spec->prepare->format);
        break;
    case TY__JOB_SPEC__KIND_TRAIN:
        snprintf (buf + n, size - n, " dataset=%s model=%s name=%s",
                  spec->train->dataset, spec->train->model_kind, spec->train->model_name);
        break;
    case TY__JOB_SPEC__KIND_EVALUATE:
        snprintf (buf + n, size - n, " model=%s dataset=%s split=%s",
                  spec->evaluate->model, spec->evaluate->dataset, spec->evaluate->split);
        break;
    case TY__JOB_SPEC__KIND_CONVERT:
        snprintf (buf + n, size - n, " model=%s target=%s",
                  spec->convert->model, spec->convert->target);
        break;
    case TY__JOB_SPEC__KIND_CONTROL:
        snprintf (buf + n, size - n, " action=%s model=%s stage=%s",
                  spec->control->action, spec->control->model, spec->control->stage);
        break;
    default:
        break;
    }
}

/* Fills info from a job hash (HGETALL reply r; info borrows r's strings).
 * with_spec: also the packed JobSpec. *inputs_out: the unpacked inputs
 * message info->inputs points into (caller frees with
 * ty__outputs__free_unpacked), NULL if none. */
static void
s_jobinfo_fill (Ty__JobInfo *info, redisReply *r, Ty__Output **outs, Ty__Output *outv,
                Ty__Metric **mets, Ty__Metric *metv, char **parents, size_t max,
                int with_spec, Ty__Outputs **inputs_out)
{
    size_t nout = 0, nmet = 0;
    *inputs_out = NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *k = r->element [i]->str;
        char *v = r->element [i + 1]->str;
        if (!k || !v)
            continue;
        if (!strcmp (k, "spec_pb")) {
            if (with_spec) {
                info->spec.data = (uint8_t *) v;
                info->spec.len = r->element [i + 1]->len;
            }
        }
        else
        if (!strcmp (k, "inputs")) {
            if (!*inputs_out) {
                *inputs_out = ty__outputs__unpack (NULL, r->element [i + 1]->len,
                                                   (const uint8_t *) v);
                if (*inputs_out) {
                    info->inputs = (*inputs_out)->items;
                    info->n_inputs = (*inputs_out)->n_items;
                }
            }
        }
        else
        if      (!strcmp (k, "id"))             info->id = v;
        else if (!strcmp (k, "type"))           info->type = v;
        else if (!strcmp (k, "state"))          info->state = v;
        else if (!strcmp (k, "priority"))       info->priority = (uint32_t) strtoul (v, NULL, 10);
        else if (!strcmp (k, "attempt"))        info->attempt = (uint32_t) strtoul (v, NULL, 10);
        else if (!strcmp (k, "max_attempts"))   info->max_attempts = (uint32_t) strtoul (v, NULL, 10);
        else if (!strcmp (k, "worker"))         info->worker = v;
        else if (!strcmp (k, "pipeline"))       info->pipeline = v;
        else if (!strcmp (k, "step"))           info->step = v;
        else if (!strcmp (k, "created_ms"))     info->created_ms = strtoull (v, NULL, 10);
        else if (!strcmp (k, "queued_ms"))      info->queued_ms = strtoull (v, NULL, 10);
        else if (!strcmp (k, "started_ms"))     info->started_ms = strtoull (v, NULL, 10);
        else if (!strcmp (k, "finished_ms"))    info->finished_ms = strtoull (v, NULL, 10);
        else if (!strcmp (k, "progress"))       info->progress = strtod (v, NULL);
        else if (!strcmp (k, "phase"))          info->phase = v;
        else if (!strcmp (k, "message"))        info->message = v;
        else if (!strcmp (k, "error"))          info->error = v;
        else if (!strcmp (k, "name"))           info->name = v;
        else if (!strcmp (k, "spec"))           info->spec_summary = v;
        else if (!strcmp (k, "result"))         info->result_summary = v;
        else if (!strcmp (k, "cancel_requested")) info->cancel_requested = !strcmp (v, "1");
        else if (!strcmp (k, "parents") && *v) {
            /* split in place: the reply is ours */
            size_t n = 0;
            for (char *save = NULL, *tok = strtok_r (v, ",", &save); tok && n < max;
                 tok = strtok_r (NULL, ",", &save))
                parents [n++] = tok;
            info->parents = parents;
            info->n_parents = n;
        }
        else if (!strncmp (k, "out.", 4) && nout < max) {
            ty__output__init (&outv [nout]);
            outv [nout].key = (char *) k + 4;
            outv [nout].value = v;
            outs [nout] = &outv [nout];
            nout++;
        }
        else if (!strncmp (k, "metric.", 7) && nmet < max) {
            ty__metric__init (&metv [nmet]);
            metv [nmet].key = (char *) k + 7;
            metv [nmet].value = strtod (v, NULL);
            mets [nmet] = &metv [nmet];
            nmet++;
        }
    }
    info->outputs = outs;
    info->n_outputs = nout;
    info->metrics = mets;
    info->n_metrics = nmet;
}

static redisReply *
s_job_fetch (ty_broker_t *self, const char *id, int *missing)
{
    *missing = 0;
    ty_broker_settle (self);
    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    char key [128];
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, id);
    ty_argv_str (a, "HGETALL");
    ty_argv_str (a, key);
    redisReply *r = ty_redis_command (self->redis, a);
    if (!r) {
        ty_broker_store_down (self, "HGETALL");
        return NULL;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject (r);
        *missing = 1;
        return NULL;
    }
    return r;
}

static void
s_on_status (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    const char *id = env->status->job_id;
    if (!ty_id_valid (id)) {
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "'%.40s' is not a job id", id);
        return;
    }
    int missing;
    redisReply *r = s_job_fetch (self, id, &missing);
    if (!r) {
        if (missing)
            ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id,
                           TY_ENOTFOUND, "no job %s", id);
        else
            ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                           "state store unavailable (%s)", ty_redis_errstr (self->redis));
        return;
    }
    Ty__JobInfo info = TY__JOB_INFO__INIT;
    Ty__Output *outs [S_FIELDS_MAX]; Ty__Output outv [S_FIELDS_MAX];
    Ty__Metric *mets [S_FIELDS_MAX]; Ty__Metric metv [S_FIELDS_MAX];
    char *parents [S_FIELDS_MAX];
    Ty__Outputs *inputs = NULL;
    s_jobinfo_fill (&info, r, outs, outv, mets, metv, parents, S_FIELDS_MAX,
                    env->status->with_spec, &inputs);
    Ty__Envelope rep = TY__ENVELOPE__INIT;
    rep.request_id = env->request_id;
    rep.cmd_case = TY__ENVELOPE__CMD_JOB;
    rep.job = &info;
    ty_broker_to_client (self, msg->route, msg->route_len, &rep);
    if (inputs)
        ty__outputs__free_unpacked (inputs, NULL);
    freeReplyObject (r);
}

/* A LIST in progress: filters, and the infos gathered so far (each one
 * borrows the HMGET reply kept beside it). */
typedef struct {
    const char   *want_state;
    const char   *want_type;
    size_t        limit;
    size_t        n;
    Ty__JobInfo **infos;
    Ty__JobInfo  *infov;
    redisReply  **keep;
} s_listing;

static const char *s_list_fields [] = {
    "id", "type", "state", "priority", "attempt", "max_attempts", "worker", "created_ms",
    "started_ms", "finished_ms", "progress", "phase", "name", "error", "pipeline", "step"
};
#define S_LIST_NFIELDS (sizeof s_list_fields / sizeof s_list_fields [0])

static char *
s_rs (redisReply *r, size_t i)
{
    return r->element [i]->str ? r->element [i]->str : "";
}

/* HMGETs the jobs ids[0..n) in one pipeline and keeps those that pass the
 * filters, in order, up to the limit. TY_OK or TY_ESTORE. */
static int
s_list_batch (ty_broker_t *self, s_listing *l, char **ids, size_t n)
{
    ty_argv_t *a = &self->scratch;
    char key [128];
    for (size_t i = 0; i < n; i++) {
        ty_argv_reset (a);
        snprintf (key, sizeof key, "%sjob:%s", self->prefix, ids [i]);
        ty_argv_str (a, "HMGET");
        ty_argv_str (a, key);
        for (size_t f = 0; f < S_LIST_NFIELDS; f++)
            ty_argv_str (a, s_list_fields [f]);
        if (ty_redis_append (self->redis, a) != TY_OK)
            return TY_ESTORE;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *r = ty_redis_reply (self->redis);
        if (!r)
            return TY_ESTORE;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != S_LIST_NFIELDS
        ||  !r->element [0]->str || l->n >= l->limit) {
            freeReplyObject (r);
            continue;
        }
        const char *st = r->element [2]->str, *ty = r->element [1]->str;
        if ((*l->want_state && (!st || strcasecmp (st, l->want_state)))
        ||  (*l->want_type && (!ty || strcmp (ty, l->want_type)))) {
            freeReplyObject (r);
            continue;
        }
        Ty__JobInfo *info = &l->infov [l->n];
        ty__job_info__init (info);
        info->id = r->element [0]->str;
        info->type = s_rs (r, 1);
        info->state = s_rs (r, 2);
        info->priority = (uint32_t) ty_broker_rint (r, 3);
        info->attempt = (uint32_t) ty_broker_rint (r, 4);
        info->max_attempts = (uint32_t) ty_broker_rint (r, 5);
        info->worker = s_rs (r, 6);
        info->created_ms = (uint64_t) ty_broker_rint (r, 7);
        info->started_ms = (uint64_t) ty_broker_rint (r, 8);
        info->finished_ms = (uint64_t) ty_broker_rint (r, 9);
        info->progress = r->element [10]->str ? strtod (r->element [10]->str, NULL) : 0;
        info->phase = s_rs (r, 11);
        info->name = s_rs (r, 12);
        info->error = s_rs (r, 13);
        info->pipeline = s_rs (r, 14);
        info->step = s_rs (r, 15);
        l->infos [l->n] = info;
        l->keep [l->n] = r;
        l->n++;
    }
    return TY_OK;
}

static int
s_id_newest_first (const void *a, const void *b)
{
    return strcmp (*(char *const *) b, *(char *const *) a);
}

/* Every job of a pipeline (ended or not): its set, newest first (ids sort
 * by creation time). TY_OK or TY_ESTORE. */
static int
s_list_pipeline (ty_broker_t *self, s_listing *l, const char *pipeline)
{
    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    char key [TY_BROKER_PIPELINE_MAX + 80];
    snprintf (key, sizeof key, "%spipeline:%s", self->prefix, pipeline);
    ty_argv_str (a, "SMEMBERS");
    ty_argv_str (a, key);
    redisReply *ids = ty_redis_command (self->redis, a);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        if (ids)
            freeReplyObject (ids);
        return TY_ESTORE;
    }
    int rc = TY_OK;
    char **v = calloc (ids->elements + 1, sizeof *v);
    if (!v)
        rc = TY_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; v && i < ids->elements; i++)
        if (ids->element [i]->str && ty_id_valid (ids->element [i]->str))
            v [n++] = ids->element [i]->str;
    if (v)
        qsort (v, n, sizeof *v, s_id_newest_first);
    for (size_t base = 0; rc == TY_OK && base < n && l->n < l->limit; base += 500)
        rc = s_list_batch (self, l, v + base, n - base < 500 ? n - base : 500);
    free (v);
    freeReplyObject (ids);
    return rc;
}

/* The newest jobs of <prefix>jobs, in pages. TY_OK or TY_ESTORE. */
static int
s_list_all (ty_broker_t *self, s_listing *l)
{
    size_t scanned = 0;
    while (l->n < l->limit && scanned < TY_BROKER_LIST_SCAN_MAX) {
        ty_argv_t *a = &self->scratch;
        ty_argv_reset (a);
        char jobs [80];
        snprintf (jobs, sizeof jobs, "%sjobs", self->prefix);
        ty_argv_str (a, "ZREVRANGE");
        ty_argv_str (a, jobs);
        ty_argv_int (a, (int64_t) scanned);
        ty_argv_int (a, (int64_t) scanned + 499);
        redisReply *ids = ty_redis_command (self->redis, a);
        if (!ids || ids->type != REDIS_REPLY_ARRAY) {
            if (ids)
                freeReplyObject (ids);
            return TY_ESTORE;
        }
        size_t got = ids->elements;
        char *v [500];
        size_t n = 0;
        for (size_t i = 0; i < got && n < 500; i++)
            if (ids->element [i]->str)
                v [n++] = ids->element [i]->str;
        int rc = s_list_batch (self, l, v, n);
        freeReplyObject (ids);
        if (rc != TY_OK)
            return rc;
        scanned += got;
        if (got < 500)
            break;
    }
    return TY_OK;
}

static void
s_on_list (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    Ty__ListReq *req = env->list;
    size_t limit = req->limit ? req->limit : 100;
    if (limit > 10000)
        limit = 10000;
    if (*req->state && ty_jobstate_parse (req->state) < 0) {
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "unknown state '%.40s'", req->state);
        return;
    }
    if (strlen (req->pipeline) > TY_BROKER_PIPELINE_MAX) {
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "pipeline id over %d bytes", TY_BROKER_PIPELINE_MAX);
        return;
    }
    ty_broker_settle (self);
    s_listing l = { .want_state = req->state, .want_type = req->type, .limit = limit };
    l.infos = calloc (limit, sizeof *l.infos);
    l.infov = calloc (limit, sizeof *l.infov);
    l.keep = calloc (limit, sizeof *l.keep);
    int rc = l.infos && l.infov && l.keep ? TY_OK : TY_ENOMEM;
    if (rc == TY_OK)
        rc = *req->pipeline ? s_list_pipeline (self, &l, req->pipeline) : s_list_all (self, &l);
    if (rc == TY_ENOMEM)
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOMEM,
                       "broker out of memory");
    else
    if (rc != TY_OK) {
        ty_broker_store_down (self, "LIST");
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                       "state store unavailable (%s)", ty_redis_errstr (self->redis));
    }
    else {
        Ty__JobList list = TY__JOB_LIST__INIT;
        list.jobs = l.infos;
        list.n_jobs = l.n;
        Ty__Envelope rep = TY__ENVELOPE__INIT;
        rep.request_id = env->request_id;
        rep.cmd_case = TY__ENVELOPE__CMD_JOB_LIST;
        rep.job_list = &list;
        ty_broker_to_client (self, msg->route, msg->route_len, &rep);
    }
    for (size_t i = 0; i < l.n; i++)
        freeReplyObject (l.keep [i]);
    free (l.infos);
    free (l.infov);
    free (l.keep);
}

static void
s_on_watch (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    const char *id = env->watch->job_id;
    if (!*id) {
        if (ty_broker_watch_add (&self->firehose, msg->route, msg->route_len))
            ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOMEM,
                           "broker out of memory");
        else
            ty_broker_reply_ok (self, msg->route, msg->route_len, env->request_id);
        return;
    }
    if (!ty_id_valid (id)) {
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "'%.40s' is not a job id", id);
        return;
    }
    int missing;
    redisReply *r = s_job_fetch (self, id, &missing);
    if (!r) {
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id,
                       missing ? TY_ENOTFOUND : TY_ESTORE, missing ? "no job %s" :
                       "state store unavailable (job %s)", id);
        return;
    }
    Ty__JobInfo info = TY__JOB_INFO__INIT;
    Ty__Output *outs [S_FIELDS_MAX]; Ty__Output outv [S_FIELDS_MAX];
    Ty__Metric *mets [S_FIELDS_MAX]; Ty__Metric metv [S_FIELDS_MAX];
    char *parents [S_FIELDS_MAX];
    Ty__Outputs *inputs = NULL;
    s_jobinfo_fill (&info, r, outs, outv, mets, metv, parents, S_FIELDS_MAX, 0, &inputs);
    if (inputs)                 /* an event does not carry them */
        ty__outputs__free_unpacked (inputs, NULL);
    info.inputs = NULL;
    info.n_inputs = 0;
    /* Memory is ahead of Redis by the current turn: a job that ended in it
       is final although Redis still shows it running. */
    ty_ended_t *ended = ty_hash_get (self->turn_ended, id);
    ty_jobrec_t *live = ty_jobs_find (self->jobs, id);
    if (ended) {
        info.state = (char *) ty_jobstate_name (ended->state);
        info.error = ended->error;
    }
    else
    if (live)
        info.state = (char *) ty_jobstate_name (live->state);
    int st = ty_jobstate_parse (info.state);
    int final = st >= 0 && ty_jobstate_is_terminal ((ty_jobstate_t) st);
    if (!final) {
        ty_watch_t *list = ty_hash_get (self->watchers, id);
        if (ty_broker_watch_add (&list, msg->route, msg->route_len) == TY_OK)
            ty_hash_put (self->watchers, id, list);
    }
    ty_broker_reply_ok (self, msg->route, msg->route_len, env->request_id);
    /* The current state, so the watcher needs no separate status call. */
    Ty__Event ev = TY__EVENT__INIT;
    ev.job_id = (char *) id;
    ev.kind = "state";
    ev.state = info.state;
    ev.attempt = info.attempt;
    ev.progress = info.progress;
    ev.phase = info.phase;
    ev.message = info.message;
    ev.error = info.error;
    ev.metrics = info.metrics;
    ev.n_metrics = info.n_metrics;
    ev.final = final;
    ev.time_ms = (uint64_t) ty_clock_wall_ms ();
    Ty__Envelope out = TY__ENVELOPE__INIT;
    out.cmd_case = TY__ENVELOPE__CMD_EVENT;
    out.event = &ev;
    ty_broker_to_client (self, msg->route, msg->route_len, &out);
    freeReplyObject (r);
}

static void
s_on_unwatch (ty_broker_t *self, ty_wire_msg_t *msg)
{
    const char *id = msg->env->unwatch->job_id;
    ty_watch_t **pp = *id ? NULL : &self->firehose;
    ty_watch_t *list = *id ? ty_hash_get (self->watchers, id) : NULL;
    if (*id)
        pp = &list;
    while (*pp) {
        ty_watch_t *w = *pp;
        if (w->route_len == msg->route_len && !memcmp (w->route, msg->route, w->route_len)) {
            *pp = w->next;
            free (w);
            break;
        }
        pp = &w->next;
    }
    if (*id) {
        if (list)
            ty_hash_put (self->watchers, id, list);
        else
            ty_hash_del (self->watchers, id);
    }
    ty_broker_reply_ok (self, msg->route, msg->route_len, msg->env->request_id);
}

static void
s_on_logs (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    const char *id = env->logs->job_id;
    if (!ty_id_valid (id)) {
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "'%.40s' is not a job id", id);
        return;
    }
    ty_broker_settle (self);
    ty_argv_t *a = &self->scratch;
    char key [128];
    ty_argv_reset (a);
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, id);
    ty_argv_str (a, "EXISTS");
    ty_argv_str (a, key);
    redisReply *ex = ty_redis_command (self->redis, a);
    if (!ex) {
        ty_broker_store_down (self, "logs");
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                       "state store unavailable (%s)", ty_redis_errstr (self->redis));
        return;
    }
    int exists = ex->type == REDIS_REPLY_INTEGER && ex->integer == 1;
    freeReplyObject (ex);
    if (!exists) {
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOTFOUND,
                       "no job %s", id);
        return;
    }
    ty_argv_reset (a);
    snprintf (key, sizeof key, "%sjob:%s:log", self->prefix, id);
    ty_argv_str (a, "LRANGE");
    ty_argv_str (a, key);
    ty_argv_int (a, env->logs->tail ? -(int64_t) env->logs->tail : 0);
    ty_argv_int (a, -1);
    redisReply *r = ty_redis_command (self->redis, a);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject (r);
        else
            ty_broker_store_down (self, "logs");
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                       "state store unavailable (%s)", ty_redis_errstr (self->redis));
        return;
    }
    char **lines = calloc (r->elements + 1, sizeof *lines);
    if (!lines) {
        freeReplyObject (r);
        ty_broker_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOMEM,
                       "broker out of memory");
        return;
    }
    for (size_t i = 0; i < r->elements; i++)
        lines [i] = r->element [i]->str ? r->element [i]->str : "";
    Ty__LogLines ll = TY__LOG_LINES__INIT;
    ll.lines = lines;
    ll.n_lines = r->elements;
    Ty__Envelope rep = TY__ENVELOPE__INIT;
    rep.request_id = env->request_id;
    rep.cmd_case = TY__ENVELOPE__CMD_LOG_LINES;
    rep.log_lines = &ll;
    ty_broker_to_client (self, msg->route, msg->route_len, &rep);
    free (lines);
    freeReplyObject (r);
}

static void
s_on_workers (ty_broker_t *self, ty_wire_msg_t *msg)
{
    size_t n = ty_workers_count (self->workers);
    Ty__WorkerInfo *infov = calloc (n + 1, sizeof *infov);
    Ty__WorkerInfo **infos = calloc (n + 1, sizeof *infos);
    char ***jobs = calloc (n + 1, sizeof *jobs);
    if (!infov || !infos || !jobs) {
        free (infov); free (infos); free (jobs);
        ty_broker_reply_error (self, msg->route, msg->route_len, msg->env->request_id, TY_ENOMEM,
                       "broker out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ty_worker_t *w = ty_workers_at (self->workers, i);
        Ty__WorkerInfo *wi = &infov [i];
        ty__worker_info__init (wi);
        wi->id = w->id;
        wi->type = w->type;
        wi->host = w->host;
        wi->pid = w->pid;
        wi->capacity = w->capacity;
        wi->last_seen_ms = (uint64_t) w->last_seen_wall_ms;
        jobs [i] = calloc (w->njobs + 1, sizeof **jobs);
        if (jobs [i]) {
            for (size_t k = 0; k < w->njobs; k++)
                jobs [i][k] = w->jobs [k];
            wi->jobs = jobs [i];
            wi->n_jobs = w->njobs;
        }
        infos [i] = wi;
    }
    Ty__WorkerList wl = TY__WORKER_LIST__INIT;
    wl.workers = infos;
    wl.n_workers = n;
    Ty__Envelope rep = TY__ENVELOPE__INIT;
    rep.request_id = msg->env->request_id;
    rep.cmd_case = TY__ENVELOPE__CMD_WORKER_LIST;
    rep.worker_list = &wl;
    ty_broker_to_client (self, msg->route, msg->route_len, &rep);
    for (size_t i = 0; i < n; i++)
        free (jobs [i]);
    free (jobs);
    free (infos);
    free (infov);
}

static void
s_on_ping (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Pong pong = TY__PONG__INIT;
    pong.sent_us = msg->env->ping->sent_us;
    pong.broker_us = (uint64_t) ty_clock_mono_us ();
    pong.version = TY_VERSION;
    Ty__Envelope rep = TY__ENVELOPE__INIT;
    rep.request_id = msg->env->request_id;
    rep.cmd_case = TY__ENVELOPE__CMD_PONG;
    rep.pong = &pong;
    ty_broker_to_client (self, msg->route, msg->route_len, &rep);
}

/* ---- submit ------------------------------------------------------------------ */

/* What a parent is, for a job that names it. */
typedef struct {
    ty_jobstate_t state;
    char error [256];
    int  in_memory;
    int  has_step;       /* the parent is a pipeline step (known in Redis only) */
} s_parent;

/* Looks a parent up in memory, else in Redis (it ended, or never was).
 * TY_OK, TY_ENOTFOUND or TY_ESTORE. */
static int
s_parent_lookup (ty_broker_t *self, const char *id, s_parent *out)
{
    ty_jobrec_t *p = ty_jobs_find (self->jobs, id);
    if (p) {
        out->state = p->state;
        out->error [0] = '\0';
        out->in_memory = 1;
        out->has_step = p->step != NULL;
        return TY_OK;
    }
    ty_ended_t *e = ty_hash_get (self->turn_ended, id);
    if (e) {                        /* ended this turn: Redis does not know yet */
        out->state = e->state;
        snprintf (out->error, sizeof out->error, "%s", e->error);
        out->in_memory = 0;
        out->has_step = 0;
        return TY_OK;
    }
    ty_broker_settle (self);
    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    char key [128];
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, id);
    ty_argv_str (a, "HMGET");
    ty_argv_str (a, key);
    ty_argv_str (a, "state");
    ty_argv_str (a, "error");
    ty_argv_str (a, "step");
    redisReply *r = ty_redis_command (self->redis, a);
    if (!r) {
        ty_broker_store_down (self, "parent lookup");
        return TY_ESTORE;
    }
    char state [32], step [8];
    ty_broker_rstr (r, 0, state, sizeof state);
    ty_broker_rstr (r, 1, out->error, sizeof out->error);
    out->has_step = ty_broker_rstr (r, 2, step, sizeof step) == 0 && step [0];
    freeReplyObject (r);
    int st = ty_jobstate_parse (state);
    if (st < 0)
        return TY_ENOTFOUND;
    out->state = (ty_jobstate_t) st;
    out->in_memory = 0;
    return TY_OK;
}

/* What a parent that SUCCEEDED before this turn handed on, read back from
 * its hash: out.<key> and result (its "summary" output) and metric.<key>,
 * keyed "<step>.<key>" as when it succeeded (the pipeline retry case).
 * TY_OK (nothing if the parent has no step), TY_ESTORE or TY_ENOMEM. */
static int
s_parent_passed (ty_broker_t *self, const char *id, ty_jobkvs_t *out)
{
    ty_ended_t *e = ty_hash_get (self->turn_ended, id);
    if (e)                          /* ended this turn: kept beside the table */
        return e->passed_len ? ty_jobkvs_unpack_add (out, e->passed, e->passed_len) : TY_OK;
    ty_broker_settle (self);
    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    char key [128];
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, id);
    ty_argv_str (a, "HGETALL");
    ty_argv_str (a, key);
    redisReply *r = ty_redis_command (self->redis, a);
    if (!r) {
        ty_broker_store_down (self, "parent outputs");
        return TY_ESTORE;
    }
    const char *step = NULL;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element [i]->str && !strcmp (r->element [i]->str, "step"))
            step = r->element [i + 1]->str;
    int rc = TY_OK;
    for (size_t i = 0; step && *step && i + 1 < r->elements && rc == TY_OK; i += 2) {
        const char *k = r->element [i]->str, *v = r->element [i + 1]->str;
        if (!k || !v)
            continue;
        if (!strncmp (k, "out.", 4))
            rc = ty_jobkvs_set (out, step, k + 4, v);
        else
        if (!strncmp (k, "metric.", 7))
            rc = ty_jobkvs_set (out, step, k + 7, v);
        else
        if (!strcmp (k, "result"))
            rc = ty_jobkvs_set (out, step, "summary", v);
    }
    freeReplyObject (r);
    return rc;
}

/* The job an idempotency key already names, from Redis or this turn. */
static int
s_idem_lookup (ty_broker_t *self, const char *key, char *id_out)
{
    const char *turn = ty_hash_get (self->turn_idem, key);
    if (turn) {
        snprintf (id_out, TY_ID_LEN + 1, "%s", turn);
        return TY_OK;
    }
    ty_broker_settle (self);
    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    char rkey [300];
    snprintf (rkey, sizeof rkey, "%sidem:%s", self->prefix, key);
    ty_argv_str (a, "GET");
    ty_argv_str (a, rkey);
    redisReply *r = ty_redis_command (self->redis, a);
    if (!r) {
        ty_broker_store_down (self, "idempotency lookup");
        return TY_ESTORE;
    }
    int found = r->type == REDIS_REPLY_STRING && r->len == TY_ID_LEN;
    if (found)
        snprintf (id_out, TY_ID_LEN + 1, "%s", r->str);
    freeReplyObject (r);
    return found ? TY_OK : TY_ENOTFOUND;
}

/* The state of an existing job named by an idempotency key. */
static const char *
s_existing_state (ty_broker_t *self, const char *id, char *buf, size_t len)
{
    ty_jobrec_t *j = ty_jobs_find (self->jobs, id);
    if (j)
        return ty_jobstate_name (j->state);
    s_parent p;
    if (s_parent_lookup (self, id, &p) == TY_OK)
        return ty_jobstate_name (p.state);
    snprintf (buf, len, "UNKNOWN");
    return buf;
}

/* Printable ASCII only: step names show in lists, logs and Redis keys' values. */
static int
s_printable (const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
            return 0;
    return 1;
}

static int
s_validate (ty_broker_t *self, ty_wire_msg_t *msg, Ty__Submit *sub)
{
    uint64_t rid = msg->env->request_id;
    if (sub->n_items == 0 || sub->n_items > TY_BROKER_SUBMIT_MAX) {
        ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_EINVAL,
                               "a submit holds 1 to %d jobs, not %zu",
                               TY_BROKER_SUBMIT_MAX, sub->n_items);
        return -1;
    }
    for (size_t i = 0; i < sub->n_items; i++) {
        Ty__SubmitItem *it = sub->items [i];
        const char *why = NULL;
        char buf [160];
        if (!it->spec)
            why = "missing spec";
        else
        if (!s_spec_type (it->spec))
            why = "unknown job type (the spec sets none of noop, prepare, train, "
                  "evaluate, convert)";
        else
        if (it->spec->priority > TY_PRIORITY_MAX) {
            snprintf (buf, sizeof buf, "priority %u over %d", it->spec->priority,
                      TY_PRIORITY_MAX);
            why = buf;
        }
        else
        if (it->spec->max_attempts > 100)
            why = "max_attempts over 100";
        else
        if (strlen (it->idempotency_key) > 200 || strlen (it->pipeline) > TY_BROKER_PIPELINE_MAX
        ||  strlen (it->spec->name) > 200)
            why = "idempotency key or name over 200 bytes, or pipeline over 64";
        else
        if (strlen (it->step) > TY_BROKER_STEP_MAX || !s_printable (it->step))
            why = "step name over 128 bytes or not printable text";
        else
        if (it->spec->n_resources > TY_RESOURCES_MAX)
            why = "over 32 resources";
        for (size_t k = 0; !why && k < it->spec->n_resources; k++)
            why = ty_resources_check (it->spec->resources [k]->key,
                                      it->spec->resources [k]->value);
        for (size_t k = 0; !why && k < it->n_parents; k++)
            if (!ty_id_valid (it->parents [k])) {
                snprintf (buf, sizeof buf, "parent '%.40s' is not a job id", it->parents [k]);
                why = buf;
            }
        for (size_t k = 0; !why && k < it->n_parent_items; k++)
            if (it->parent_items [k] >= i) {
                snprintf (buf, sizeof buf, "parent item %u is not an earlier item",
                          it->parent_items [k]);
                why = buf;
            }
        if (why) {
            ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_EINVAL,
                                   "job %zu: %s", i, why);
            return -1;
        }
    }
    return 0;
}

static void
s_on_submit (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Submit *sub = msg->env->submit;
    uint64_t rid = msg->env->request_id;
    if (!self->ready) {
        ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_ESTORE,
                               "state store unavailable (%s): job not accepted, retry later",
                               ty_redis_errstr (self->redis));
        return;
    }
    if (s_validate (self, msg, sub))
        return;
    size_t n = sub->n_items;
    char (*ids) [TY_ID_LEN + 1] = calloc (n, sizeof *ids);
    protobuf_c_boolean *existed = calloc (n, sizeof *existed);
    char **idp = calloc (n, sizeof *idp);
    if (!ids || !existed || !idp) {
        free (ids); free (existed); free (idp);
        ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_ENOMEM,
                               "broker out of memory");
        return;
    }
    /* Pass 1: ids, idempotency and parents, before anything is written,
       so a rejected Submit leaves no trace. */
    int rc = TY_OK;
    char why [300] = "";
    for (size_t i = 0; i < n && rc == TY_OK; i++) {
        Ty__SubmitItem *it = sub->items [i];
        idp [i] = ids [i];
        if (*it->idempotency_key) {
            rc = s_idem_lookup (self, it->idempotency_key, ids [i]);
            if (rc == TY_OK) {
                existed [i] = 1;
                continue;
            }
            if (rc != TY_ENOTFOUND)
                break;
            rc = TY_OK;
        }
        ty_id_new (ids [i]);
        for (size_t k = 0; k < it->n_parents && rc == TY_OK; k++) {
            s_parent p;
            rc = s_parent_lookup (self, it->parents [k], &p);
            if (rc == TY_ENOTFOUND)
                snprintf (why, sizeof why, "job %zu: parent job %s not found", i,
                          it->parents [k]);
        }
    }
    if (rc != TY_OK) {
        if (rc == TY_ENOTFOUND)
            ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_ENOTFOUND,
                                   "%s", why);
        else
            ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_ESTORE,
                                   "state store unavailable (%s): job not accepted",
                                   ty_redis_errstr (self->redis));
        free (ids); free (existed); free (idp);
        return;
    }
    /* Pass 2: create. */
    const char *last_pipeline = NULL;
    int64_t wall = ty_clock_wall_ms ();
    char now [24];
    snprintf (now, sizeof now, "%" PRId64, wall);
    for (size_t i = 0; i < n; i++) {
        Ty__SubmitItem *it = sub->items [i];
        if (existed [i]) {
            if (sub->watch) {
                ty_jobrec_t *j = ty_jobs_find (self->jobs, ids [i]);
                char buf [16];
                if (j) {
                    ty_watch_t *list = ty_hash_get (self->watchers, ids [i]);
                    if (ty_broker_watch_add (&list, msg->route, msg->route_len) == TY_OK)
                        ty_hash_put (self->watchers, ids [i], list);
                }
                else {
                    /* it ended already: tell the watcher now */
                    Ty__Event ev = TY__EVENT__INIT;
                    ev.job_id = ids [i];
                    ev.kind = "state";
                    ev.state = (char *) s_existing_state (self, ids [i], buf, sizeof buf);
                    ev.final = 1;
                    ev.time_ms = (uint64_t) wall;
                    Ty__Envelope out = TY__ENVELOPE__INIT;
                    out.cmd_case = TY__ENVELOPE__CMD_EVENT;
                    out.event = &ev;
                    ty_broker_to_client (self, msg->route, msg->route_len, &out);
                }
            }
            continue;
        }
        const char *type = s_spec_type (it->spec);
        size_t nparents = it->n_parents + it->n_parent_items;
        /* parents: ids, then earlier items of this Submit */
        const char **parents = calloc (nparents + 1, sizeof *parents);
        if (!parents)
            continue;
        for (size_t k = 0; k < it->n_parents; k++)
            parents [k] = it->parents [k];
        for (size_t k = 0; k < it->n_parent_items; k++)
            parents [it->n_parents + k] = ids [it->parent_items [k]];

        uint32_t waiting = 0;
        char dead [512] = "";
        /* Pipeline jobs get what parents that already succeeded passed on
           (a retried pipeline's new jobs after its succeeded steps). */
        int is_pipeline = *it->step || *it->pipeline;
        ty_jobkvs_t inputs = { 0 };
        for (size_t k = 0; k < nparents; k++) {
            s_parent p;
            if (s_parent_lookup (self, parents [k], &p) != TY_OK)
                continue;       /* checked in pass 1; gone since is not possible */
            if (is_pipeline && p.state == TY_JOB_SUCCEEDED && !p.in_memory
            &&  (p.has_step || ty_hash_get (self->turn_ended, parents [k]))
            &&  s_parent_passed (self, parents [k], &inputs) != TY_OK)
                ty_error ("job %s: the outputs of parent %s could not be read",
                          ids [i], parents [k]);
            if (p.state == TY_JOB_FAILED || p.state == TY_JOB_CANCELLED) {
                if (!dead [0])
                    snprintf (dead, sizeof dead, "parent %s %s%s%.400s", parents [k],
                              ty_jobstate_name (p.state), p.error [0] ? ": " : "", p.error);
            }
            else
            if (p.state != TY_JOB_SUCCEEDED)
                waiting++;
        }
        ty_jobstate_t state = dead [0] ? TY_JOB_CANCELLED
                            : waiting ? TY_JOB_PENDING : TY_JOB_QUEUED;
        char summary [512], prio [16], maxa [16], waits [16], score [40];
        s_spec_summary (it->spec, summary, sizeof summary);
        uint32_t max_attempts = it->spec->max_attempts ? it->spec->max_attempts
                                                        : self->opts.max_attempts;
        double sc = ty_dispatch_score (it->spec->priority, wall);
        snprintf (prio, sizeof prio, "%u", it->spec->priority);
        snprintf (maxa, sizeof maxa, "%u", max_attempts);
        if (waiting)
            snprintf (waits, sizeof waits, "%u", waiting);
        else
            waits [0] = '\0';
        ty_dbl_text (score, sizeof score, sc);
        size_t plen = 0;
        for (size_t k = 0; k < nparents; k++)
            plen += strlen (parents [k]) + 1;
        char *plist = calloc (plen + 1, 1);
        for (size_t k = 0; plist && k < nparents; k++) {
            if (k)
                strcat (plist, ",");
            strcat (plist, parents [k]);
        }
        size_t speclen = ty__job_spec__get_packed_size (it->spec);
        uint8_t *spec = malloc (speclen ? speclen : 1);
        uint8_t *inputs_pb = NULL;
        size_t inputs_len = 0;
        if (inputs.n && ty_jobkvs_pack (&inputs, &inputs_pb, &inputs_len) != TY_OK)
            ty_error ("job %s: its inputs could not be stored (out of memory)", ids [i]);
        if (!spec || !plist) {
            free (spec); free (plist); free (parents); free (inputs_pb);
            ty_jobkvs_clear (&inputs);
            continue;
        }
        ty__job_spec__pack (it->spec, spec);
        const char *f [] = {
            "id", "type", "name", "state", "priority", "attempt", "max_attempts", "worker",
            "parents", "waiting", "pipeline", "step", "idempotency_key", "created_ms",
            "queued_ms", "started_ms", "finished_ms", "progress", "phase", "message", "error",
            "spec", "result", "cancel_requested", "score", "spec_pb", "inputs" };
        const char *v [] = {
            ids [i], type, it->spec->name, ty_jobstate_name (state), prio, "0", maxa, "",
            plist, waits, it->pipeline, it->step, it->idempotency_key, now,
            state == TY_JOB_QUEUED ? now : "", "", state == TY_JOB_CANCELLED ? now : "",
            "", "", "", dead, summary, "", "", score, (const char *) spec,
            (const char *) inputs_pb };
        /* Empty fields are left out, and so are progress, cancel_requested
           and a waiting of 0 (their defaults, docs/redis-keys.md): HGET of
           a missing field reads as empty (nil) for redis-cli users too, every
           reader takes that as the default, and a submit is the hottest
           write of all. The last two are binary: their lengths are given
           (inputs only when there are some). */
        size_t nall = sizeof f / sizeof f [0], nf = 0;
        const char *fv [sizeof f / sizeof f [0]], *vv [sizeof f / sizeof f [0]];
        size_t lens [sizeof f / sizeof f [0]];
        for (size_t k = 0; k + 2 < nall; k++)
            if (*v [k]) {
                fv [nf] = f [k];
                vv [nf] = v [k];
                lens [nf++] = strlen (v [k]);
            }
        fv [nf] = f [nall - 2];
        vv [nf] = v [nall - 2];
        lens [nf++] = speclen;
        if (inputs_pb) {
            fv [nf] = f [nall - 1];
            vv [nf] = v [nall - 1];
            lens [nf++] = inputs_len;
        }
        ty_state_hset (self->state, ids [i], nf, fv, vv, lens);
        free (inputs_pb);
        ty_state_zadd (self->state, "jobs", (double) wall, ids [i]);
        if (*it->pipeline) {
            char set [TY_BROKER_PIPELINE_MAX + 16];
            snprintf (set, sizeof set, "pipeline:%s", it->pipeline);
            ty_state_sadd (self->state, set, ids [i]);
            /* NX: the pipeline's first job dates it; a retry keeps the date.
               One per pipeline and Submit (its items usually share one). */
            if (!last_pipeline || strcmp (last_pipeline, it->pipeline)) {
                ty_argv_t *a = ty_state_raw (self->state);
                char pkey [96];
                snprintf (pkey, sizeof pkey, "%spipelines", self->prefix);
                ty_argv_str (a, "ZADD");
                ty_argv_str (a, pkey);
                ty_argv_str (a, "NX");
                ty_argv_int (a, wall);
                ty_argv_str (a, it->pipeline);
                last_pipeline = it->pipeline;
            }
        }
        if (*it->idempotency_key) {
            ty_argv_t *a = ty_state_raw (self->state);
            char rkey [300];
            snprintf (rkey, sizeof rkey, "%sidem:%s", self->prefix, it->idempotency_key);
            ty_argv_str (a, "SET");
            ty_argv_str (a, rkey);
            ty_argv_str (a, ids [i]);
            char *copy = strdup (ids [i]);
            if (copy && ty_hash_put (self->turn_idem, it->idempotency_key, copy) != TY_OK)
                free (copy);
        }
        const char *pairs [] = { "job", ids [i], "state", ty_jobstate_name (state),
                                 "attempt", "0", "worker", "", "reason", dead };
        ty_state_event (self->state, 5, pairs);

        if (state == TY_JOB_CANCELLED) {
            /* never runs: written as ended, not kept in memory */
            free (spec); free (plist); free (parents);
            ty_jobkvs_clear (&inputs);
            continue;
        }
        ty_state_sadd (self->state, "active", ids [i]);
        ty_jobrec_t *job = ty_jobs_add (self->jobs, ids [i]);
        if (!job) {
            free (spec); free (plist); free (parents);
            ty_jobkvs_clear (&inputs);
            continue;
        }
        job->inputs = inputs;           /* moved */
        if (*it->step && ty_jobrec_set_step (job, it->step) != TY_OK)
            ty_error ("job %s: step name not kept (out of memory)", job->id);
        if (it->spec->n_resources && ty_jobrec_set_needs (job, it->spec) != TY_OK)
            ty_error ("job %s: resources not kept (out of memory)", job->id);
        snprintf (job->type, sizeof job->type, "%s", type);
        job->state = state;
        job->priority = it->spec->priority;
        job->score = sc;
        job->max_attempts = max_attempts;
        job->waiting = waiting;
        job->spec_pb = spec;
        job->spec_len = speclen;
        job->timeout_ms = it->spec->timeout_ms;
        for (size_t k = 0; k < nparents; k++) {
            ty_jobrec_t *p = ty_jobs_find (self->jobs, parents [k]);
            if (p && !ty_jobstate_is_terminal (p->state)) {
                ty_jobrec_add_child (p, ids [i]);
                char set [64];
                snprintf (set, sizeof set, "job:%s:children", p->id);
                ty_state_sadd (self->state, set, ids [i]);
            }
        }
        if (state == TY_JOB_QUEUED) {
            char queue [48];
            snprintf (queue, sizeof queue, "queue:%s", type);
            ty_state_zadd (self->state, queue, sc, ids [i]);
            ty_queues_push (self->queues, type, ids [i], sc);
        }
        if (sub->watch) {
            ty_watch_t *list = ty_hash_get (self->watchers, ids [i]);
            if (ty_broker_watch_add (&list, msg->route, msg->route_len) == TY_OK)
                ty_hash_put (self->watchers, ids [i], list);
        }
        free (plist);
        free (parents);
    }
    Ty__SubmitRep rep = TY__SUBMIT_REP__INIT;
    rep.job_ids = idp;
    rep.n_job_ids = n;
    rep.existed = existed;
    rep.n_existed = n;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.request_id = rid;
    env.cmd_case = TY__ENVELOPE__CMD_SUBMIT_REP;
    env.submit_rep = &rep;
    /* The reply goes before any event of these jobs (the outbox keeps order). */
    ty_broker_to_client (self, msg->route, msg->route_len, &env);
    free (ids);
    free (existed);
    free (idp);
}

/* ---- cancel ------------------------------------------------------------------- */

static void
s_on_cancel (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    const char *id = env->cancel->job_id;
    uint64_t rid = env->request_id;
    if (!ty_id_valid (id)) {
        ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_EINVAL,
                               "'%.40s' is not a job id", id);
        return;
    }
    if (!self->ready) {
        ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_ESTORE,
                               "state store unavailable (%s)", ty_redis_errstr (self->redis));
        return;
    }
    char reason [256];
    snprintf (reason, sizeof reason, "%s", *env->cancel->reason
              ? env->cancel->reason : "cancelled by user");
    ty_jobrec_t *job = ty_jobs_find (self->jobs, id);
    if (!job) {
        s_parent p;
        int rc = s_parent_lookup (self, id, &p);
        if (rc == TY_ENOTFOUND)
            ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_ENOTFOUND,
                                   "no job %s", id);
        else
        if (rc == TY_OK)
            ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_ESTATE,
                                   "job %s already ended: %s", id, ty_jobstate_name (p.state));
        else
            ty_broker_reply_error (self, msg->route, msg->route_len, rid, TY_ESTORE,
                                   "state store unavailable (%s)",
                                   ty_redis_errstr (self->redis));
        return;
    }
    if (job->state == TY_JOB_RUNNING) {
        /* The worker stops it and reports CANCELLED; if the worker is lost
           first, the requeue sees cancel_requested and cancels. */
        job->cancel_requested = 1;
        job->shown = 1;
        snprintf (job->cancel_reason, sizeof job->cancel_reason, "%s", reason);
        const char *f [] = { "cancel_requested", "cancel_reason", "message" };
        const char *v [] = { "1", reason, "cancel requested" };
        ty_state_hset (self->state, job->id, 3, f, v, NULL);
        Ty__CancelJob cj = TY__CANCEL_JOB__INIT;
        cj.job_id = job->id;
        cj.attempt = job->attempt;
        cj.reason = reason;
        Ty__Envelope out = TY__ENVELOPE__INIT;
        out.cmd_case = TY__ENVELOPE__CMD_CANCEL_JOB;
        out.cancel_job = &cj;
        ty_broker_to_worker (self, job->worker, &out);
    }
    else
        ty_broker_job_finish (self, job, TY_JOB_CANCELLED, reason, NULL, 0);
    ty_broker_reply_ok (self, msg->route, msg->route_len, rid);
}

void
ty_broker_on_client (ty_broker_t *self, ty_wire_msg_t *msg)
{
    switch (msg->env->cmd_case) {
    case TY__ENVELOPE__CMD_SUBMIT:  s_on_submit (self, msg);  break;
    case TY__ENVELOPE__CMD_STATUS:  s_on_status (self, msg);  break;
    case TY__ENVELOPE__CMD_LIST:    s_on_list (self, msg);    break;
    case TY__ENVELOPE__CMD_CANCEL:  s_on_cancel (self, msg);  break;
    case TY__ENVELOPE__CMD_WATCH:   s_on_watch (self, msg);   break;
    case TY__ENVELOPE__CMD_UNWATCH: s_on_unwatch (self, msg); break;
    case TY__ENVELOPE__CMD_LOGS:    s_on_logs (self, msg);    break;
    case TY__ENVELOPE__CMD_WORKERS: s_on_workers (self, msg); break;
    case TY__ENVELOPE__CMD_PING:    s_on_ping (self, msg);    break;
    default:
        ty_broker_reply_error (self, msg->route, msg->route_len, msg->env->request_id,
                               TY_EPROTO, "command %d is not a client command",
                               (int) msg->env->cmd_case);
        break;
    }
}

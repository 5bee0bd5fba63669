/*  ty_broker: see ty_broker.h. Sections:
 *    state and helpers
 *    replies and events (to clients)
 *    client requests
 *    worker messages
 *    batched Redis work (flush)
 *    dispatch
 *    timers, liveness, leases
 *    recovery
 *    reactor
 */
#include "ty_broker.h"
#include "ty_clock.h"
#include "ty_backoff.h"
#include "ty_dispatch.h"
#include "ty_error.h"
#include "ty_hash.h"
#include "ty_id.h"
#include "ty_jobstate.h"
#include "ty_log.h"
#include "ty_redis.h"
#include "ty_wire.h"
#include "ty_workers.h"
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_TICK_MS          20     /* timer resolution */
#define S_ACCEPT_IVLS      3      /* heartbeats to wait for a worker's ACCEPT */
#define S_RECOVER_GRACE_MS 3000   /* extra time for workers to re-attach after restart */
#define S_LIST_SCAN_MAX    100000 /* jobs scanned by one LIST with a filter */
#define S_MONITOR_EP       "inproc://ty-broker-monitor"

/* =========================================================================
 *  state and helpers
 * ========================================================================= */

/* A RUNNING job as the broker sees it. */
typedef struct {
    char     id [TY_ID_LEN + 1];
    char     type [32];
    uint32_t attempt;              /* 0 until the assign script answers */
    char     worker [TY_WORKER_ID_MAX + 1];
    int64_t  deadline_ms;          /* monotonic: accept, lease or re-attach deadline */
    int      accepted;
    int      attached;             /* 0 after recovery until the worker re-attaches */
} s_run;

/* A client subscribed to events. */
typedef struct s_watch {
    struct s_watch *next;
    size_t  route_len;
    uint8_t route [];
} s_watch;

/* A Submit group waiting for its Lua reply. */
typedef struct {
    uint8_t  route [256];
    size_t   route_len;
    uint64_t request_id;
    int      watch;
    size_t   nitems;
    char   (*ids) [TY_ID_LEN + 1];
    char   (*types) [32];
    double  *scores;
} s_submit;

/* An attempt's end waiting for its Lua reply. */
typedef struct {
    int      op;                   /* S_OP_* */
    char     id [TY_ID_LEN + 1];
    uint32_t attempt;
    char     worker [TY_WORKER_ID_MAX + 1];
} s_end;

enum { S_OP_FINISH = 1, S_OP_REQUEUE = 2 };

/* Progress forwarded to watchers once Redis accepted it. */
typedef struct {
    Ty__Envelope *env;             /* kept until the flush */
} s_prog;

struct _ty_broker_t {
    ty_broker_opts_t opts;
    char     prefix [64];
    void    *zctx;
    void    *clients;
    void    *workers_sock;
    void    *monitor;
    ty_redis_t  *redis;
    ty_backoff_t redis_backoff;
    int64_t  redis_retry_ms;
    int      recovered;            /* memory rebuilt since the last (re)connect */

    ty_workers_t *workers;
    ty_hash_t    *running;         /* job id -> s_run */
    ty_queues_t  *queues;
    ty_hash_t    *watchers;        /* job id -> s_watch list */
    s_watch      *firehose;        /* watchers of every job */

    /* batches of the current turn */
    ty_argv_t submit_args;  s_submit *submits; size_t nsubmits, csubmits; size_t submit_groups;
    ty_argv_t ends_args;    s_end    *ends;    size_t nends, cends;
    ty_argv_t prog_args;    s_prog   *progs;   size_t nprogs, cprogs;
    ty_argv_t *misc;        size_t nmisc, cmisc;
    ty_argv_t scratch;

    int64_t  next_tick_ms;
    int64_t  next_renew_ms;
    volatile sig_atomic_t stop;
};

static void s_store_down (ty_broker_t *self, const char *where);
static int  s_recover (ty_broker_t *self);

static int
s_grow (void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return TY_OK;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = realloc (*arr, n * elem);
    if (!p)
        return TY_ENOMEM;
    memset ((char *) p + *cap * elem, 0, (n - *cap) * elem);
    *arr = p;
    *cap = n;
    return TY_OK;
}

static int
s_reply_str (const redisReply *r, size_t i, char *buf, size_t size)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return -1;
    const redisReply *e = r->element [i];
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) {
        snprintf (buf, size, "%.*s", (int) e->len, e->str);
        return 0;
    }
    if (e->type == REDIS_REPLY_INTEGER) {
        snprintf (buf, size, "%lld", e->integer);
        return 0;
    }
    buf [0] = '\0';
    return e->type == REDIS_REPLY_NIL ? 0 : -1;
}

static long long
s_reply_int (const redisReply *r, size_t i)
{
    char buf [32];
    if (s_reply_str (r, i, buf, sizeof buf))
        return 0;
    return strtoll (buf, NULL, 10);
}

/* =========================================================================
 *  replies and events
 * ========================================================================= */

static void
s_send_client (ty_broker_t *self, const uint8_t *route, size_t route_len,
               Ty__Envelope *env)
{
    int rc = ty_wire_send (self->clients, route, route_len, env, ZMQ_DONTWAIT);
    if (rc != TY_OK)
        ty_debug ("reply to client dropped: %s", ty_strerror (rc));
}

static void
s_reply_error (ty_broker_t *self, const uint8_t *route, size_t route_len,
               uint64_t request_id, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 6, 7)));

static void
s_reply_error (ty_broker_t *self, const uint8_t *route, size_t route_len,
               uint64_t request_id, int code, const char *fmt, ...)
{
    char msg [512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Error err = TY__ERROR__INIT;
    err.code = code;
    err.message = msg;
    env.request_id = request_id;
    env.cmd_case = TY__ENVELOPE__CMD_ERROR;
    env.error = &err;
    s_send_client (self, route, route_len, &env);
}

static void
s_reply_ok (ty_broker_t *self, const uint8_t *route, size_t route_len, uint64_t request_id)
{
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Ok ok = TY__OK__INIT;
    env.request_id = request_id;
    env.cmd_case = TY__ENVELOPE__CMD_OK;
    env.ok = &ok;
    s_send_client (self, route, route_len, &env);
}

static int
s_watch_add (s_watch **list, const uint8_t *route, size_t route_len)
{
    for (s_watch *w = *list; w; w = w->next)
        if (w->route_len == route_len && !memcmp (w->route, route, route_len))
            return TY_OK;
    s_watch *w = malloc (sizeof *w + route_len);
    if (!w)
        return TY_ENOMEM;
    w->route_len = route_len;
    memcpy (w->route, route, route_len);
    w->next = *list;
    *list = w;
    return TY_OK;
}

static void
s_watch_free (s_watch *w)
{
    while (w) {
        s_watch *next = w->next;
        free (w);
        w = next;
    }
}

static int
s_watch_free_cb (const char *key, void *value, void *arg)
{
    s_watch_free (value);
    return 0;
}

/* Sends ev to every watcher of the job and of everything; drops watchers
 * that are gone (ZMQ_ROUTER_MANDATORY makes that visible). */
static void
s_emit (ty_broker_t *self, Ty__Event *ev)
{
    s_watch *list = ty_hash_get (self->watchers, ev->job_id);
    if (!list && !self->firehose)
        return;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_EVENT;
    env.event = ev;
    if (!ev->time_ms)
        ev->time_ms = (uint64_t) ty_clock_wall_ms ();
    for (int pass = 0; pass < 2; pass++) {
        s_watch **pp = pass == 0 ? &list : &self->firehose;
        while (*pp) {
            s_watch *w = *pp;
            int rc = ty_wire_send (self->clients, w->route, w->route_len, &env, ZMQ_DONTWAIT);
            if (rc == EHOSTUNREACH) {
                *pp = w->next;
                free (w);
                continue;
            }
            pp = &w->next;
        }
    }
    if (ev->final || !list) {
        s_watch *old = ty_hash_del (self->watchers, ev->job_id);
        if (ev->final)
            s_watch_free (old);
        else
        if (old)
            s_watch_free (old);
    }
    else
        ty_hash_put (self->watchers, ev->job_id, list);
}

static void
s_emit_state (ty_broker_t *self, const char *id, const char *state, uint32_t attempt,
              const char *error)
{
    Ty__Event ev = TY__EVENT__INIT;
    ev.job_id = (char *) id;
    ev.kind = "state";
    ev.state = (char *) state;
    ev.attempt = attempt;
    ev.error = (char *) (error ? error : "");
    int st = ty_jobstate_parse (state);
    ev.final = st >= 0 && ty_jobstate_is_terminal ((ty_jobstate_t) st);
    if (!strcmp (state, "SUCCEEDED"))
        ev.progress = 1.0;
    s_emit (self, &ev);
}

/* =========================================================================
 *  client requests
 * ========================================================================= */

static const char *
s_spec_type (const Ty__JobSpec *spec)
{
    switch (spec->kind_case) {
    case TY__JOB_SPEC__KIND_NOOP:     return "noop";
    case TY__JOB_SPEC__KIND_PREPARE:  return "prepare";
    case TY__JOB_SPEC__KIND_TRAIN:    return "train";
    case TY__JOB_SPEC__KIND_EVALUATE: return "evaluate";
    case TY__JOB_SPEC__KIND_CONVERT:  return "convert";
    default:                          return NULL;
    }
}

/* A one-line human summary of a spec, for redis-cli readers. */
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
    default:
        break;
    }
}

static void
s_on_submit (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    Ty__Submit *sub = env->submit;
    if (!ty_redis_ok (self->redis) || !self->recovered) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                       "state store unavailable (%s): job not accepted, retry later",
                       ty_redis_errstr (self->redis));
        return;
    }
    if (sub->n_items == 0 || sub->n_items > TY_BROKER_SUBMIT_MAX) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "a submit holds 1 to %d jobs, not %zu", TY_BROKER_SUBMIT_MAX,
                       sub->n_items);
        return;
    }
    /* Validate everything before building anything. */
    for (size_t i = 0; i < sub->n_items; i++) {
        Ty__SubmitItem *it = sub->items [i];
        if (!it->spec) {
            s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                           "job %zu: missing spec", i);
            return;
        }
        if (!s_spec_type (it->spec)) {
            s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                           "job %zu: unknown job type (the spec sets none of "
                           "noop, prepare, train, evaluate, convert)", i);
            return;
        }
        if (it->spec->priority > TY_PRIORITY_MAX) {
            s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                           "job %zu: priority %u over %d", i, it->spec->priority,
                           TY_PRIORITY_MAX);
            return;
        }
        if (it->spec->max_attempts > 100) {
            s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                           "job %zu: max_attempts %u over 100", i, it->spec->max_attempts);
            return;
        }
        for (size_t k = 0; k < it->n_parents; k++)
            if (!ty_id_valid (it->parents [k])) {
                s_reply_error (self, msg->route, msg->route_len, env->request_id,
                               TY_EINVAL, "job %zu: parent '%.40s' is not a job id",
                               i, it->parents [k]);
                return;
            }
        for (size_t k = 0; k < it->n_parent_items; k++)
            if (it->parent_items [k] >= i) {
                s_reply_error (self, msg->route, msg->route_len, env->request_id,
                               TY_EINVAL, "job %zu: parent item %u is not an earlier item",
                               i, it->parent_items [k]);
                return;
            }
        if (strlen (it->idempotency_key) > 200 || strlen (it->pipeline) > 64
        ||  strlen (it->spec->name) > 200) {
            s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                           "job %zu: idempotency key or name over 200 bytes, or "
                           "pipeline over 64", i);
            return;
        }
    }
    if (s_grow ((void **) &self->submits, &self->csubmits, self->nsubmits + 1,
                sizeof *self->submits)) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOMEM,
                       "broker out of memory");
        return;
    }
    s_submit *s = &self->submits [self->nsubmits];
    memset (s, 0, sizeof *s);
    s->ids = calloc (sub->n_items, sizeof *s->ids);
    s->types = calloc (sub->n_items, sizeof *s->types);
    s->scores = calloc (sub->n_items, sizeof *s->scores);
    if (!s->ids || !s->types || !s->scores) {
        free (s->ids); free (s->types); free (s->scores);
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOMEM,
                       "broker out of memory");
        return;
    }
    memcpy (s->route, msg->route, msg->route_len);
    s->route_len = msg->route_len;
    s->request_id = env->request_id;
    s->watch = sub->watch;
    s->nitems = sub->n_items;
    self->nsubmits++;

    ty_argv_t *a = &self->submit_args;
    if (a->argc == 0) {
        ty_argv_str (a, self->prefix);
        ty_argv_int (a, ty_clock_wall_ms ());
        ty_argv_int (a, self->opts.max_attempts);
        ty_argv_int (a, 0);                  /* groups: patched at flush */
    }
    self->submit_groups++;
    ty_argv_int (a, (int64_t) sub->n_items);
    int64_t now = ty_clock_wall_ms ();
    for (size_t i = 0; i < sub->n_items; i++) {
        Ty__SubmitItem *it = sub->items [i];
        ty_id_new (s->ids [i]);
        snprintf (s->types [i], sizeof s->types [i], "%s", s_spec_type (it->spec));
        s->scores [i] = ty_dispatch_score (it->spec->priority, now);
        char summary [512];
        s_spec_summary (it->spec, summary, sizeof summary);
        size_t len = ty__job_spec__get_packed_size (it->spec);
        uint8_t stackbuf [1024];
        uint8_t *pb = len <= sizeof stackbuf ? stackbuf : malloc (len);
        if (!pb) {
            a->oom = 1;
            break;
        }
        ty__job_spec__pack (it->spec, pb);
        ty_argv_str (a, s->ids [i]);
        ty_argv_str (a, s->types [i]);
        ty_argv_int (a, it->spec->priority);
        ty_argv_int (a, it->spec->max_attempts);
        ty_argv_str (a, it->spec->name);
        ty_argv_str (a, it->idempotency_key);
        ty_argv_str (a, it->pipeline);
        ty_argv_str (a, summary);
        ty_argv_bin (a, pb, len);
        ty_argv_dbl (a, s->scores [i]);
        ty_argv_int (a, (int64_t) (it->n_parents + it->n_parent_items));
        for (size_t k = 0; k < it->n_parents; k++)
            ty_argv_str (a, it->parents [k]);
        for (size_t k = 0; k < it->n_parent_items; k++)
            ty_argv_str (a, s->ids [it->parent_items [k]]);
        if (pb != stackbuf)
            free (pb);
    }
}

/* Fills a JobInfo from HGETALL; strings point into the reply. */
static void
s_jobinfo_fill (Ty__JobInfo *info, redisReply *r, Ty__Output **outs, Ty__Output *outv,
                Ty__Metric **mets, Ty__Metric *metv, char **parents, size_t max)
{
    size_t nout = 0, nmet = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *k = r->element [i]->str;
        char *v = r->element [i + 1]->str;
        if (!k || !v)
            continue;
        if      (!strcmp (k, "id"))             info->id = v;
        else if (!strcmp (k, "type"))           info->type = v;
        else if (!strcmp (k, "state"))          info->state = v;
        else if (!strcmp (k, "priority"))       info->priority = (uint32_t) strtoul (v, NULL, 10);
        else if (!strcmp (k, "attempt"))        info->attempt = (uint32_t) strtoul (v, NULL, 10);
        else if (!strcmp (k, "max_attempts"))   info->max_attempts = (uint32_t) strtoul (v, NULL, 10);
        else if (!strcmp (k, "worker"))         info->worker = v;
        else if (!strcmp (k, "pipeline"))       info->pipeline = v;
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

#define S_FIELDS_MAX 256

/* HGETALL of a job; NULL if missing (then *missing = 1) or Redis failed. */
static redisReply *
s_job_fetch (ty_broker_t *self, const char *id, int *missing)
{
    *missing = 0;
    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    char key [128];
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, id);
    ty_argv_str (a, "HGETALL");
    ty_argv_str (a, key);
    redisReply *r = ty_redis_command (self->redis, a);
    if (!r) {
        s_store_down (self, "HGETALL");
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
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "'%.40s' is not a job id", id);
        return;
    }
    int missing;
    redisReply *r = s_job_fetch (self, id, &missing);
    if (!r) {
        if (missing)
            s_reply_error (self, msg->route, msg->route_len, env->request_id,
                           TY_ENOTFOUND, "no job %s", id);
        else
            s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                           "state store unavailable (%s)", ty_redis_errstr (self->redis));
        return;
    }
    Ty__JobInfo info = TY__JOB_INFO__INIT;
    Ty__Output *outs [S_FIELDS_MAX]; Ty__Output outv [S_FIELDS_MAX];
    Ty__Metric *mets [S_FIELDS_MAX]; Ty__Metric metv [S_FIELDS_MAX];
    char *parents [S_FIELDS_MAX];
    s_jobinfo_fill (&info, r, outs, outv, mets, metv, parents, S_FIELDS_MAX);
    Ty__Envelope rep = TY__ENVELOPE__INIT;
    rep.request_id = env->request_id;
    rep.cmd_case = TY__ENVELOPE__CMD_JOB;
    rep.job = &info;
    s_send_client (self, msg->route, msg->route_len, &rep);
    freeReplyObject (r);
}

static void
s_on_list (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    Ty__ListReq *req = env->list;
    size_t limit = req->limit ? req->limit : 100;
    if (limit > 10000)
        limit = 10000;
    const char *want_state = req->state;
    const char *want_type = req->type;
    if (*want_state && ty_jobstate_parse (want_state) < 0) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "unknown state '%.40s'", want_state);
        return;
    }
    Ty__JobInfo **infos = calloc (limit, sizeof *infos);
    Ty__JobInfo *infov = calloc (limit, sizeof *infov);
    redisReply **keep = calloc (limit, sizeof *keep);
    if (!infos || !infov || !keep) {
        free (infos); free (infov); free (keep);
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOMEM,
                       "broker out of memory");
        return;
    }
    size_t n = 0, scanned = 0;
    int failed = 0;
    char key [128];
    const char *fields [] = { "HMGET", key, "id", "type", "state", "priority", "attempt",
                              "max_attempts", "worker", "created_ms", "started_ms",
                              "finished_ms", "progress", "phase", "name", "error" };
    size_t nfields = sizeof fields / sizeof fields [0];
    while (n < limit && scanned < S_LIST_SCAN_MAX && !failed) {
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
            failed = 1;
            break;
        }
        if (ids->elements == 0) {
            freeReplyObject (ids);
            break;
        }
        for (size_t i = 0; i < ids->elements; i++) {
            ty_argv_reset (a);
            snprintf (key, sizeof key, "%sjob:%s", self->prefix, ids->element [i]->str);
            for (size_t f = 0; f < nfields; f++)
                ty_argv_str (a, fields [f]);
            if (ty_redis_append (self->redis, a) != TY_OK) {
                failed = 1;
                break;
            }
        }
        size_t got = ids->elements;
        scanned += got;
        for (size_t i = 0; i < got && !failed; i++) {
            redisReply *r = ty_redis_reply (self->redis);
            if (!r) {
                failed = 1;
                break;
            }
            if (r->type != REDIS_REPLY_ARRAY || r->elements != nfields - 2
            ||  !r->element [0]->str || n >= limit) {
                freeReplyObject (r);
                continue;
            }
            const char *st = r->element [2]->str, *ty = r->element [1]->str;
            if ((*want_state && (!st || strcasecmp (st, want_state)))
            ||  (*want_type && (!ty || strcmp (ty, want_type)))) {
                freeReplyObject (r);
                continue;
            }
            Ty__JobInfo *info = &infov [n];
            ty__job_info__init (info);
            info->id = r->element [0]->str;
            info->type = ty ? (char *) ty : "";
            info->state = st ? (char *) st : "";
            info->priority = (uint32_t) s_reply_int (r, 3);
            info->attempt = (uint32_t) s_reply_int (r, 4);
            info->max_attempts = (uint32_t) s_reply_int (r, 5);
            info->worker = r->element [6]->str ? r->element [6]->str : "";
            info->created_ms = (uint64_t) s_reply_int (r, 7);
            info->started_ms = (uint64_t) s_reply_int (r, 8);
            info->finished_ms = (uint64_t) s_reply_int (r, 9);
            info->progress = r->element [10]->str ? strtod (r->element [10]->str, NULL) : 0;
            info->phase = r->element [11]->str ? r->element [11]->str : "";
            info->name = r->element [12]->str ? r->element [12]->str : "";
            info->error = r->element [13]->str ? r->element [13]->str : "";
            infos [n] = info;
            keep [n] = r;
            n++;
        }
        freeReplyObject (ids);
        if (got < 500)
            break;
    }
    if (failed) {
        s_store_down (self, "LIST");
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                       "state store unavailable (%s)", ty_redis_errstr (self->redis));
    }
    else {
        Ty__JobList list = TY__JOB_LIST__INIT;
        list.jobs = infos;
        list.n_jobs = n;
        Ty__Envelope rep = TY__ENVELOPE__INIT;
        rep.request_id = env->request_id;
        rep.cmd_case = TY__ENVELOPE__CMD_JOB_LIST;
        rep.job_list = &list;
        s_send_client (self, msg->route, msg->route_len, &rep);
    }
    for (size_t i = 0; i < n; i++)
        freeReplyObject (keep [i]);
    free (infos);
    free (infov);
    free (keep);
}

static void
s_send_worker (ty_broker_t *self, const char *worker_id, Ty__Envelope *env)
{
    int rc = ty_wire_send (self->workers_sock, worker_id, strlen (worker_id), env,
                           ZMQ_DONTWAIT);
    if (rc != TY_OK)
        ty_debug ("to worker %s dropped: %s", worker_id, ty_strerror (rc));
}

static void s_apply_ends_reply (ty_broker_t *self, const s_end *e, redisReply *r);

static void
s_on_cancel (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    const char *id = env->cancel->job_id;
    if (!ty_id_valid (id)) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "'%.40s' is not a job id", id);
        return;
    }
    if (!ty_redis_ok (self->redis) || !self->recovered) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                       "state store unavailable (%s)", ty_redis_errstr (self->redis));
        return;
    }
    char reason [300];
    snprintf (reason, sizeof reason, "%s", *env->cancel->reason
              ? env->cancel->reason : "cancelled by user");
    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    ty_argv_str (a, self->prefix);
    ty_argv_int (a, ty_clock_wall_ms ());
    ty_argv_int (a, 1);
    ty_argv_str (a, "cancel");
    ty_argv_str (a, id);
    ty_argv_int (a, 0);
    ty_argv_str (a, "");
    ty_argv_str (a, "");
    ty_argv_str (a, reason);
    ty_argv_int (a, 0);
    redisReply *r = NULL;
    if (ty_redis_append_script (self->redis, TY_SCRIPT_ENDS, a) == TY_OK)
        r = ty_redis_reply (self->redis);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 1
    ||  r->element [0]->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR)
            ty_error ("cancel script: %s", r->str);
        if (r)
            freeReplyObject (r);
        else
            s_store_down (self, "cancel");
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                       "state store unavailable (%s)", ty_redis_errstr (self->redis));
        return;
    }
    redisReply *item = r->element [0];
    char status [32], state [32], worker [TY_WORKER_ID_MAX + 1];
    s_reply_str (item, 0, status, sizeof status);
    s_reply_str (item, 1, state, sizeof state);
    s_reply_str (item, 3, worker, sizeof worker);
    uint32_t attempt = (uint32_t) s_reply_int (item, 2);
    if (!strcmp (status, "notfound"))
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOTFOUND,
                       "no job %s", id);
    else
    if (!strcmp (status, "final"))
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTATE,
                       "job %s already ended: %s", id, state);
    else {
        if (!strcmp (status, "running")) {
            /* The worker stops it and reports CANCELLED; if the worker is
               lost first, requeue sees cancel_requested and cancels. */
            Ty__Envelope out = TY__ENVELOPE__INIT;
            Ty__CancelJob cj = TY__CANCEL_JOB__INIT;
            cj.job_id = (char *) id;
            cj.attempt = attempt;
            cj.reason = reason;
            out.cmd_case = TY__ENVELOPE__CMD_CANCEL_JOB;
            out.cancel_job = &cj;
            s_send_worker (self, worker, &out);
        }
        else {
            s_end e = { .op = 0 };
            snprintf (e.id, sizeof e.id, "%s", id);
            s_apply_ends_reply (self, &e, item);
        }
        s_reply_ok (self, msg->route, msg->route_len, env->request_id);
    }
    freeReplyObject (r);
}

static void
s_on_watch (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    const char *id = env->watch->job_id;
    if (!*id) {
        if (s_watch_add (&self->firehose, msg->route, msg->route_len))
            s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOMEM,
                           "broker out of memory");
        else
            s_reply_ok (self, msg->route, msg->route_len, env->request_id);
        return;
    }
    if (!ty_id_valid (id)) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "'%.40s' is not a job id", id);
        return;
    }
    int missing;
    redisReply *r = s_job_fetch (self, id, &missing);
    if (!r) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id,
                       missing ? TY_ENOTFOUND : TY_ESTORE, missing ? "no job %s" :
                       "state store unavailable (job %s)", id);
        return;
    }
    Ty__JobInfo info = TY__JOB_INFO__INIT;
    Ty__Output *outs [S_FIELDS_MAX]; Ty__Output outv [S_FIELDS_MAX];
    Ty__Metric *mets [S_FIELDS_MAX]; Ty__Metric metv [S_FIELDS_MAX];
    char *parents [S_FIELDS_MAX];
    s_jobinfo_fill (&info, r, outs, outv, mets, metv, parents, S_FIELDS_MAX);
    int st = ty_jobstate_parse (info.state);
    int final = st >= 0 && ty_jobstate_is_terminal ((ty_jobstate_t) st);
    if (!final) {
        s_watch *list = ty_hash_get (self->watchers, id);
        if (s_watch_add (&list, msg->route, msg->route_len) == TY_OK)
            ty_hash_put (self->watchers, id, list);
    }
    s_reply_ok (self, msg->route, msg->route_len, env->request_id);
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
    s_send_client (self, msg->route, msg->route_len, &out);
    freeReplyObject (r);
}

static void
s_on_unwatch (ty_broker_t *self, ty_wire_msg_t *msg)
{
    const char *id = msg->env->unwatch->job_id;
    s_watch **pp = *id ? NULL : &self->firehose;
    s_watch *list = *id ? ty_hash_get (self->watchers, id) : NULL;
    if (*id)
        pp = &list;
    while (*pp) {
        s_watch *w = *pp;
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
    s_reply_ok (self, msg->route, msg->route_len, msg->env->request_id);
}

static void
s_on_logs (ty_broker_t *self, ty_wire_msg_t *msg)
{
    Ty__Envelope *env = msg->env;
    const char *id = env->logs->job_id;
    if (!ty_id_valid (id)) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_EINVAL,
                       "'%.40s' is not a job id", id);
        return;
    }
    ty_argv_t *a = &self->scratch;
    char key [128];
    ty_argv_reset (a);
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, id);
    ty_argv_str (a, "EXISTS");
    ty_argv_str (a, key);
    redisReply *ex = ty_redis_command (self->redis, a);
    if (!ex) {
        s_store_down (self, "logs");
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                       "state store unavailable (%s)", ty_redis_errstr (self->redis));
        return;
    }
    int exists = ex->type == REDIS_REPLY_INTEGER && ex->integer == 1;
    freeReplyObject (ex);
    if (!exists) {
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOTFOUND,
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
            s_store_down (self, "logs");
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ESTORE,
                       "state store unavailable (%s)", ty_redis_errstr (self->redis));
        return;
    }
    char **lines = calloc (r->elements + 1, sizeof *lines);
    if (!lines) {
        freeReplyObject (r);
        s_reply_error (self, msg->route, msg->route_len, env->request_id, TY_ENOMEM,
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
    s_send_client (self, msg->route, msg->route_len, &rep);
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
        s_reply_error (self, msg->route, msg->route_len, msg->env->request_id, TY_ENOMEM,
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
    s_send_client (self, msg->route, msg->route_len, &rep);
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
    s_send_client (self, msg->route, msg->route_len, &rep);
}

/* Returns 1 if the envelope was kept by a batch (do not free it yet). */
static int
s_on_client (ty_broker_t *self, ty_wire_msg_t *msg)
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
        s_reply_error (self, msg->route, msg->route_len, msg->env->request_id, TY_EPROTO,
                       "command %d is not a client command", (int) msg->env->cmd_case);
        break;
    }
    return 0;
}

/* =========================================================================
 *  worker messages
 * ========================================================================= */

static s_end *
s_end_add (ty_broker_t *self, int op, const char *id, uint32_t attempt, const char *worker)
{
    if (s_grow ((void **) &self->ends, &self->cends, self->nends + 1, sizeof *self->ends))
        return NULL;
    s_end *e = &self->ends [self->nends++];
    e->op = op;
    snprintf (e->id, sizeof e->id, "%s", id);
    e->attempt = attempt;
    snprintf (e->worker, sizeof e->worker, "%s", worker);
    ty_argv_t *a = &self->ends_args;
    if (a->argc == 0) {
        ty_argv_str (a, self->prefix);
        ty_argv_int (a, ty_clock_wall_ms ());
        ty_argv_int (a, 0);                  /* count: patched at flush */
    }
    return e;
}

/* Ends the attempt in memory and queues the Redis side: back to QUEUED
 * (or FAILED past max_attempts when charge is set). */
static void
s_requeue (ty_broker_t *self, s_run *run, int charge, const char *reason)
{
    ty_info ("job %s attempt %u on %s: %s%s", run->id, run->attempt, run->worker,
             reason, charge ? "" : " (not charged)");
    ty_worker_t *w = ty_workers_find (self->workers, run->worker);
    if (w)
        ty_worker_job_del (w, run->id);
    if (run->attempt > 0 && s_end_add (self, S_OP_REQUEUE, run->id, run->attempt, run->worker)) {
        ty_argv_t *a = &self->ends_args;
        ty_argv_str (a, "requeue");
        ty_argv_str (a, run->id);
        ty_argv_int (a, run->attempt);
        ty_argv_str (a, run->worker);
        ty_argv_str (a, charge ? "1" : "0");
        ty_argv_str (a, reason);
        ty_argv_int (a, 0);
    }
    ty_hash_del (self->running, run->id);
    free (run);
}

static void
s_worker_lost (ty_broker_t *self, ty_worker_t *w, const char *why, int charge)
{
    char reason [256];
    snprintf (reason, sizeof reason, "worker %s lost: %s", w->id, why);
    ty_warn ("%s (%zu jobs)", reason, w->njobs);
    while (w->njobs > 0) {
        s_run *run = ty_hash_get (self->running, w->jobs [0]);
        if (run && !strcmp (run->worker, w->id))
            s_requeue (self, run, charge, reason);
        else
            ty_worker_job_del (w, w->jobs [0]);
    }
    ty_workers_remove (self->workers, w->id);
}

static void
s_worker_record (ty_broker_t *self, ty_worker_t *w)
{
    if (s_grow ((void **) &self->misc, &self->cmisc, self->nmisc + 1, sizeof *self->misc))
        return;
    ty_argv_t *a = &self->misc [self->nmisc++];
    ty_argv_reset (a);
    char key [160];
    snprintf (key, sizeof key, "%sworker:%s", self->prefix, w->id);
    ty_argv_str (a, "HSET");
    ty_argv_str (a, key);
    ty_argv_str (a, "type");      ty_argv_str (a, w->type);
    ty_argv_str (a, "host");      ty_argv_str (a, w->host);
    ty_argv_str (a, "pid");       ty_argv_int (a, w->pid);
    ty_argv_str (a, "capacity");  ty_argv_int (a, w->capacity);
    ty_argv_str (a, "last_seen_ms"); ty_argv_int (a, w->last_seen_wall_ms);
    char jobs [TY_WORKER_CAP_MAX > 64 ? 64 * (TY_ID_LEN + 1) + 1 : 1] = "";
    size_t n = 0;
    for (size_t i = 0; i < w->njobs && i < 64; i++)
        n += (size_t) snprintf (jobs + n, sizeof jobs - n, "%s%s", i ? "," : "", w->jobs [i]);
    ty_argv_str (a, "jobs");      ty_argv_str (a, jobs);
}

static void
s_send_reconnect (ty_broker_t *self, const uint8_t *route, size_t route_len, const char *why)
{
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Reconnect rc = TY__RECONNECT__INIT;
    rc.reason = (char *) why;
    env.cmd_case = TY__ENVELOPE__CMD_RECONNECT;
    env.reconnect = &rc;
    int err = ty_wire_send (self->workers_sock, route, route_len, &env, ZMQ_DONTWAIT);
    if (err != TY_OK)
        ty_debug ("reconnect dropped: %s", ty_strerror (err));
}

static void
s_send_worker_error (ty_broker_t *self, ty_wire_msg_t *msg, int code, const char *text)
{
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Error err = TY__ERROR__INIT;
    err.code = code;
    err.message = (char *) text;
    env.cmd_case = TY__ENVELOPE__CMD_ERROR;
    env.error = &err;
    int rc = ty_wire_send (self->workers_sock, msg->route, msg->route_len, &env, ZMQ_DONTWAIT);
    if (rc != TY_OK)
        ty_debug ("error to worker dropped: %s", ty_strerror (rc));
}

static void
s_send_cancel_job (ty_broker_t *self, const char *worker, const char *id,
                   uint32_t attempt, const char *reason)
{
    Ty__Envelope out = TY__ENVELOPE__INIT;
    Ty__CancelJob cj = TY__CANCEL_JOB__INIT;
    cj.job_id = (char *) id;
    cj.attempt = attempt;
    cj.reason = (char *) reason;
    out.cmd_case = TY__ENVELOPE__CMD_CANCEL_JOB;
    out.cancel_job = &cj;
    s_send_worker (self, worker, &out);
}

/* Re-attaches or fences the jobs a worker says it runs. */
static void
s_adopt_held (ty_broker_t *self, ty_worker_t *w, Ty__Held **held, size_t n)
{
    int64_t now = ty_clock_mono_ms ();
    for (size_t i = 0; i < n; i++) {
        const char *id = held [i]->job_id;
        if (!ty_id_valid (id))
            continue;
        s_run *run = ty_hash_get (self->running, id);
        if (run && run->attempt == held [i]->attempt && !strcmp (run->worker, w->id)) {
            run->attached = 1;
            run->accepted = 1;
            run->deadline_ms = now + (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms;
            if (ty_worker_job_add (w, id) != TY_OK)
                ty_warn ("worker %s holds more jobs than its capacity", w->id);
        }
        else
        if (!run || run->attempt != held [i]->attempt) {
            /* A zombie attempt: its result would be fenced anyway; stop it. */
            s_send_cancel_job (self, w->id, id, held [i]->attempt,
                               "stale attempt: the job was given to another worker");
        }
    }
}

static void
s_on_ready (ty_broker_t *self, ty_wire_msg_t *msg, const char *wid)
{
    Ty__Ready *r = msg->env->ready;
    if (strcmp (r->worker_id, wid)) {
        s_send_worker_error (self, msg, TY_EPROTO,
                             "READY: worker_id must equal the socket's routing id");
        return;
    }
    if (!ty_jobtype_valid (r->type)) {
        char text [128];
        snprintf (text, sizeof text, "READY: unknown job type '%.40s'", r->type);
        s_send_worker_error (self, msg, TY_EINVAL, text);
        return;
    }
    if (r->capacity == 0 || r->capacity > TY_WORKER_CAP_MAX) {
        s_send_worker_error (self, msg, TY_EINVAL, "READY: capacity must be 1..1024");
        return;
    }
    ty_worker_t *old = ty_workers_find (self->workers, wid);
    if (old && strcmp (old->type, r->type)) {
        s_worker_lost (self, old, "re-registered with another type", 1);
        old = NULL;
    }
    ty_worker_t *w = ty_workers_require (self->workers, wid, r->capacity);
    if (!w)
        return;
    snprintf (w->type, sizeof w->type, "%s", r->type);
    snprintf (w->host, sizeof w->host, "%s", r->host);
    w->pid = r->pid;
    w->heartbeat_ms = r->heartbeat_ms ? (int) r->heartbeat_ms : self->opts.heartbeat_ms;
    if (w->heartbeat_ms < 10)
        w->heartbeat_ms = 10;
    w->srcfd = msg->srcfd;
    w->draining = 0;
    w->last_seen_ms = ty_clock_mono_ms ();
    w->last_seen_wall_ms = ty_clock_wall_ms ();
    w->next_hb_ms = w->last_seen_ms + w->heartbeat_ms;
    /* Jobs the broker thought it held but that it does not list are lost. */
    for (size_t i = 0; i < w->njobs; ) {
        int listed = 0;
        for (size_t k = 0; k < r->n_held; k++)
            if (!strcmp (r->held [k]->job_id, w->jobs [i]))
                listed = 1;
        s_run *run = ty_hash_get (self->running, w->jobs [i]);
        if (!listed && run && !strcmp (run->worker, w->id))
            s_requeue (self, run, 1, "worker restarted without the job");
        else
        if (!listed)
            ty_worker_job_del (w, w->jobs [i]);
        else
            i++;
    }
    s_adopt_held (self, w, r->held, r->n_held);
    ty_info ("worker %s ready: type %s capacity %u host %s pid %u (%zu jobs held)",
             w->id, w->type, w->capacity, w->host, w->pid, w->njobs);
    s_worker_record (self, w);
}

static void
s_on_result (ty_broker_t *self, ty_wire_msg_t *msg, const char *wid)
{
    Ty__Result *res = msg->env->result;
    if (!ty_id_valid (res->job_id) || res->attempt == 0) {
        s_send_worker_error (self, msg, TY_EPROTO, "RESULT: bad job id or attempt");
        return;
    }
    if (!ty_redis_ok (self->redis) || !self->recovered)
        return;         /* no ack: the worker sends it again */
    const char *outcome = "FAILED";
    const char *error = res->error;
    switch (res->outcome) {
    case TY__OUTCOME__OUTCOME_SUCCEEDED: outcome = "SUCCEEDED"; error = ""; break;
    case TY__OUTCOME__OUTCOME_CANCELLED: outcome = "CANCELLED"; break;
    case TY__OUTCOME__OUTCOME_FAILED:    break;
    default:
        error = "worker sent a result without an outcome";
        break;
    }
    if (!strcmp (outcome, "FAILED") && !*error)
        error = "failed without a reason";
    s_run *run = ty_hash_get (self->running, res->job_id);
    if (run && run->attempt == res->attempt && !strcmp (run->worker, wid)) {
        ty_worker_t *w = ty_workers_find (self->workers, wid);
        if (w)
            ty_worker_job_del (w, run->id);
        ty_hash_del (self->running, run->id);
        free (run);
    }
    if (!s_end_add (self, S_OP_FINISH, res->job_id, res->attempt, wid))
        return;
    ty_argv_t *a = &self->ends_args;
    ty_argv_str (a, "finish");
    ty_argv_str (a, res->job_id);
    ty_argv_int (a, res->attempt);
    ty_argv_str (a, wid);
    ty_argv_str (a, outcome);
    ty_argv_str (a, error);
    size_t nout = res->n_outputs + (res->data.len ? 1 : 0);
    ty_argv_int (a, (int64_t) nout);
    for (size_t i = 0; i < res->n_outputs; i++) {
        ty_argv_str (a, res->outputs [i]->key);
        ty_argv_str (a, res->outputs [i]->value);
    }
    if (res->data.len) {
        char n [32];
        snprintf (n, sizeof n, "%zu", res->data.len);
        ty_argv_str (a, "data_bytes");
        ty_argv_str (a, n);
    }
}

static int
s_on_progress (ty_broker_t *self, ty_wire_msg_t *msg, const char *wid, int is_log)
{
    const char *id;
    uint32_t attempt;
    if (is_log) {
        id = msg->env->log->job_id;
        attempt = msg->env->log->attempt;
    }
    else {
        id = msg->env->progress->job_id;
        attempt = msg->env->progress->attempt;
    }
    s_run *run = ty_hash_get (self->running, id);
    if (!run || run->attempt != attempt || strcmp (run->worker, wid)
    ||  !ty_redis_ok (self->redis))
        return 0;               /* fenced or no store: progress is not worth keeping */
    run->deadline_ms = ty_clock_mono_ms () + (int64_t) TY_BROKER_LIVENESS
                     * self->opts.heartbeat_ms;
    if (s_grow ((void **) &self->progs, &self->cprogs, self->nprogs + 1, sizeof *self->progs))
        return 0;
    ty_argv_t *a = &self->prog_args;
    if (a->argc == 0) {
        ty_argv_str (a, self->prefix);
        ty_argv_int (a, ty_clock_wall_ms ());
        ty_argv_int (a, 0);
    }
    ty_argv_str (a, id);
    ty_argv_int (a, attempt);
    ty_argv_str (a, wid);
    if (is_log) {
        Ty__LogReq *l = msg->env->log;
        ty_argv_str (a, ""); ty_argv_str (a, ""); ty_argv_str (a, "");
        ty_argv_int (a, 0);
        size_t n = l->n_lines > 1000 ? 1000 : l->n_lines;
        ty_argv_int (a, (int64_t) n);
        for (size_t i = 0; i < n; i++) {
            char line [2048];
            snprintf (line, sizeof line, "%s", l->lines [i]);
            ty_argv_str (a, line);
        }
        self->progs [self->nprogs++].env = NULL;
        return 0;
    }
    Ty__Progress *p = msg->env->progress;
    if (p->fraction >= 0 && p->fraction <= 1)
        ty_argv_dbl (a, p->fraction);
    else
        ty_argv_str (a, "");
    ty_argv_str (a, p->phase);
    ty_argv_str (a, p->message);
    ty_argv_int (a, (int64_t) p->n_metrics);
    for (size_t i = 0; i < p->n_metrics; i++) {
        ty_argv_str (a, p->metrics [i]->key);
        ty_argv_dbl (a, p->metrics [i]->value);
    }
    ty_argv_int (a, 0);
    self->progs [self->nprogs++].env = msg->env;
    return 1;
}

/* Returns 1 if the envelope was kept by a batch. */
static int
s_on_worker (ty_broker_t *self, ty_wire_msg_t *msg)
{
    char wid [TY_WORKER_ID_MAX + 1];
    if (msg->route_len == 0 || msg->route_len > TY_WORKER_ID_MAX) {
        s_send_worker_error (self, msg, TY_EPROTO, "worker id must be 1..64 bytes");
        return 0;
    }
    memcpy (wid, msg->route, msg->route_len);
    wid [msg->route_len] = '\0';
    if (strlen (wid) != msg->route_len) {
        s_send_worker_error (self, msg, TY_EPROTO, "worker id must be text");
        return 0;
    }
    ty_worker_t *w = ty_workers_find (self->workers, wid);
    if (w) {
        w->last_seen_ms = ty_clock_mono_ms ();
        w->last_seen_wall_ms = ty_clock_wall_ms ();
        w->srcfd = msg->srcfd;
    }
    switch (msg->env->cmd_case) {
    case TY__ENVELOPE__CMD_READY:
        s_on_ready (self, msg, wid);
        return 0;
    case TY__ENVELOPE__CMD_RESULT:
        /* Accepted from unknown workers too: Redis fences by (attempt, worker). */
        s_on_result (self, msg, wid);
        return 0;
    case TY__ENVELOPE__CMD_DISCONNECT:
        if (w) {
            ty_info ("worker %s leaves: %s", wid, msg->env->disconnect->reason);
            s_worker_lost (self, w, "handed its jobs back", 0);
        }
        return 0;
    default:
        break;
    }
    if (!w) {
        s_send_reconnect (self, msg->route, msg->route_len, "unknown worker: send READY");
        return 0;
    }
    switch (msg->env->cmd_case) {
    case TY__ENVELOPE__CMD_HEARTBEAT: {
        int64_t deadline = w->last_seen_ms + (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms;
        Ty__Heartbeat *hb = msg->env->heartbeat;
        w->draining = hb->draining;
        for (size_t i = 0; i < hb->n_held; i++) {
            s_run *run = ty_hash_get (self->running, hb->held [i]->job_id);
            if (run && run->attempt == hb->held [i]->attempt && !strcmp (run->worker, wid)
            &&  run->accepted)
                run->deadline_ms = deadline;
        }
        return 0;
    }
    case TY__ENVELOPE__CMD_ACCEPT: {
        s_run *run = ty_hash_get (self->running, msg->env->accept->job_id);
        if (run && run->attempt == msg->env->accept->attempt && !strcmp (run->worker, wid)
        &&  msg->env->accept->refused) {
            w->draining = 1;
            s_requeue (self, run, 0, "refused by a draining worker");
        }
        else
        if (run && run->attempt == msg->env->accept->attempt && !strcmp (run->worker, wid)) {
            run->accepted = 1;
            run->attached = 1;
            run->deadline_ms = w->last_seen_ms + (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms;
        }
        return 0;
    }
    case TY__ENVELOPE__CMD_PROGRESS:
        return s_on_progress (self, msg, wid, 0);
    case TY__ENVELOPE__CMD_LOG:
        return s_on_progress (self, msg, wid, 1);
    default:
        s_send_worker_error (self, msg, TY_EPROTO, "not a worker command");
        return 0;
    }
}

/* =========================================================================
 *  batched Redis work
 * ========================================================================= */

static void
s_store_down (ty_broker_t *self, const char *where)
{
    if (self->recovered || ty_redis_ok (self->redis))
        ty_error ("state store lost during %s: %s", where, ty_redis_errstr (self->redis));
    ty_redis_fail (self->redis, NULL);
    self->recovered = 0;
    self->redis_retry_ms = ty_clock_mono_ms ();
}

/* Handles one item of the ends script's reply: acks, queue, events. */
static void
s_apply_ends_reply (ty_broker_t *self, const s_end *e, redisReply *item)
{
    char status [32], state [32];
    s_reply_str (item, 0, status, sizeof status);
    s_reply_str (item, 1, state, sizeof state);
    uint32_t attempt = (uint32_t) s_reply_int (item, 2);
    if (e->op == S_OP_FINISH) {
        Ty__Envelope out = TY__ENVELOPE__INIT;
        Ty__ResultAck ack = TY__RESULT_ACK__INIT;
        ack.job_id = (char *) e->id;
        ack.attempt = e->attempt;
        ack.stale = strcmp (status, "ok") != 0 && strcmp (status, "done") != 0;
        out.cmd_case = TY__ENVELOPE__CMD_RESULT_ACK;
        out.result_ack = &ack;
        s_send_worker (self, e->worker, &out);
        if (ack.stale)
            ty_info ("result of job %s attempt %u from %s fenced (%s)",
                     e->id, e->attempt, e->worker, status);
    }
    if (strcmp (status, "ok"))
        return;
    char error [512];
    s_reply_str (item, 4, error, sizeof error);
    size_t i = 5;
    if (strcmp (state, "QUEUED"))
        s_emit_state (self, e->id, state, attempt, error);
    /* released: id, type, score triples up to "|" */
    for (; i + 2 < item->elements; i += 3) {
        char id [64], type [32], score [64];
        s_reply_str (item, i, id, sizeof id);
        if (!strcmp (id, "|"))
            break;
        s_reply_str (item, i + 1, type, sizeof type);
        s_reply_str (item, i + 2, score, sizeof score);
        ty_queues_push (self->queues, type, id, strtod (score, NULL));
        s_emit_state (self, id, "QUEUED", !strcmp (id, e->id) ? attempt : 0, "");
    }
    for (; i < item->elements; i++) {
        char id [64];
        s_reply_str (item, i, id, sizeof id);
        if (strcmp (id, "|"))
            s_emit_state (self, id, "CANCELLED", 0, "a parent failed or was cancelled");
    }
}

static void
s_batches_reset (ty_broker_t *self)
{
    for (size_t i = 0; i < self->nsubmits; i++) {
        free (self->submits [i].ids);
        free (self->submits [i].types);
        free (self->submits [i].scores);
    }
    self->nsubmits = 0;
    self->submit_groups = 0;
    ty_argv_reset (&self->submit_args);
    self->nends = 0;
    ty_argv_reset (&self->ends_args);
    for (size_t i = 0; i < self->nprogs; i++)
        if (self->progs [i].env)
            ty__envelope__free_unpacked (self->progs [i].env, NULL);
    self->nprogs = 0;
    ty_argv_reset (&self->prog_args);
    self->nmisc = 0;
}

static void
s_fail_submits (ty_broker_t *self)
{
    for (size_t i = 0; i < self->nsubmits; i++)
        s_reply_error (self, self->submits [i].route, self->submits [i].route_len,
                       self->submits [i].request_id, TY_ESTORE,
                       "state store unavailable (%s): job not accepted, retry later",
                       ty_redis_errstr (self->redis));
}

static void
s_apply_submit_reply (ty_broker_t *self, redisReply *r)
{
    for (size_t g = 0; g < self->nsubmits; g++) {
        s_submit *s = &self->submits [g];
        redisReply *gr = (r && r->type == REDIS_REPLY_ARRAY && g < r->elements)
                       ? r->element [g] : NULL;
        char status [8] = "";
        if (gr)
            s_reply_str (gr, 0, status, sizeof status);
        if (!gr || strcmp (status, "ok") || gr->elements != 1 + 3 * s->nitems) {
            char why [256] = "submit script failed";
            if (gr && !strcmp (status, "err"))
                s_reply_str (gr, 1, why, sizeof why);
            else
            if (r && r->type == REDIS_REPLY_ERROR)
                snprintf (why, sizeof why, "submit script: %s", r->str);
            s_reply_error (self, s->route, s->route_len, s->request_id, TY_EINVAL, "%s", why);
            continue;
        }
        char **ids = calloc (s->nitems, sizeof *ids);
        protobuf_c_boolean *existed = calloc (s->nitems, sizeof *existed);
        char (*idv) [TY_ID_LEN + 1] = calloc (s->nitems, sizeof *idv);
        if (!ids || !existed || !idv) {
            free (ids); free (existed); free (idv);
            s_reply_error (self, s->route, s->route_len, s->request_id, TY_ENOMEM,
                           "broker out of memory after accepting the jobs");
            continue;
        }
        for (size_t i = 0; i < s->nitems; i++) {
            char state [32];
            s_reply_str (gr, 1 + 3 * i, idv [i], sizeof idv [i]);
            s_reply_str (gr, 2 + 3 * i, state, sizeof state);
            existed [i] = s_reply_int (gr, 3 + 3 * i) != 0;
            ids [i] = idv [i];
            if (!existed [i] && !strcmp (state, "QUEUED"))
                ty_queues_push (self->queues, s->types [i], idv [i], s->scores [i]);
            if (s->watch) {
                int st = ty_jobstate_parse (state);
                if (st >= 0 && !ty_jobstate_is_terminal ((ty_jobstate_t) st)) {
                    s_watch *list = ty_hash_get (self->watchers, idv [i]);
                    if (s_watch_add (&list, s->route, s->route_len) == TY_OK)
                        ty_hash_put (self->watchers, idv [i], list);
                }
            }
        }
        Ty__SubmitRep rep = TY__SUBMIT_REP__INIT;
        rep.job_ids = ids;
        rep.n_job_ids = s->nitems;
        rep.existed = existed;
        rep.n_existed = s->nitems;
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.request_id = s->request_id;
        env.cmd_case = TY__ENVELOPE__CMD_SUBMIT_REP;
        env.submit_rep = &rep;
        s_send_client (self, s->route, s->route_len, &env);
        /* A watcher of an old job (idempotent hit) that already ended gets its end now. */
        for (size_t i = 0; i < s->nitems && s->watch; i++) {
            char state [32];
            s_reply_str (gr, 2 + 3 * i, state, sizeof state);
            int st = ty_jobstate_parse (state);
            if (existed [i] && st >= 0 && ty_jobstate_is_terminal ((ty_jobstate_t) st)) {
                Ty__Event ev = TY__EVENT__INIT;
                ev.job_id = idv [i];
                ev.kind = "state";
                ev.state = state;
                ev.final = 1;
                Ty__Envelope out = TY__ENVELOPE__INIT;
                out.cmd_case = TY__ENVELOPE__CMD_EVENT;
                out.event = &ev;
                s_send_client (self, s->route, s->route_len, &out);
            }
        }
        free (ids);
        free (existed);
        free (idv);
    }
}

/* Sends every batched command in one pipeline and applies the replies. */
static void
s_flush (ty_broker_t *self)
{
    int has_submit = self->nsubmits > 0, has_ends = self->nends > 0;
    int has_prog = self->nprogs > 0;
    if (!has_submit && !has_ends && !has_prog && !self->nmisc)
        return;
    if (!ty_redis_ok (self->redis)) {
        s_fail_submits (self);
        s_batches_reset (self);
        return;
    }
    int rc = TY_OK;
    if (has_submit) {
        ty_argv_set_int (&self->submit_args, 3, (int64_t) self->submit_groups);
        rc = ty_redis_append_script (self->redis, TY_SCRIPT_SUBMIT, &self->submit_args);
    }
    if (rc == TY_OK && has_ends) {
        ty_argv_set_int (&self->ends_args, 2, (int64_t) self->nends);
        rc = ty_redis_append_script (self->redis, TY_SCRIPT_ENDS, &self->ends_args);
    }
    if (rc == TY_OK && has_prog) {
        ty_argv_set_int (&self->prog_args, 2, (int64_t) self->nprogs);
        rc = ty_redis_append_script (self->redis, TY_SCRIPT_PROGRESS, &self->prog_args);
    }
    for (size_t i = 0; rc == TY_OK && i < self->nmisc; i++)
        rc = ty_redis_append (self->redis, &self->misc [i]);
    if (rc != TY_OK) {
        s_store_down (self, "flush");
        s_fail_submits (self);
        s_batches_reset (self);
        return;
    }
    redisReply *sub_r = has_submit ? ty_redis_reply (self->redis) : NULL;
    if (has_submit && !sub_r) {
        s_store_down (self, "submit");
        s_fail_submits (self);
        s_batches_reset (self);
        return;
    }
    if (sub_r && sub_r->type == REDIS_REPLY_ERROR)
        ty_error ("submit script: %s", sub_r->str);
    if (has_submit)
        s_apply_submit_reply (self, sub_r);
    if (sub_r)
        freeReplyObject (sub_r);

    if (has_ends) {
        redisReply *r = ty_redis_reply (self->redis);
        if (!r) {
            s_store_down (self, "ends");
            s_batches_reset (self);
            return;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == self->nends) {
            for (size_t i = 0; i < self->nends; i++)
                s_apply_ends_reply (self, &self->ends [i], r->element [i]);
        }
        else
            ty_error ("ends script: %s", r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        freeReplyObject (r);
    }
    if (has_prog) {
        redisReply *r = ty_redis_reply (self->redis);
        if (!r) {
            s_store_down (self, "progress");
            s_batches_reset (self);
            return;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == self->nprogs) {
            for (size_t i = 0; i < self->nprogs; i++) {
                if (!self->progs [i].env || r->element [i]->integer != 1)
                    continue;
                Ty__Progress *p = self->progs [i].env->progress;
                Ty__Event ev = TY__EVENT__INIT;
                ev.job_id = p->job_id;
                ev.kind = "progress";
                ev.state = "RUNNING";
                ev.attempt = p->attempt;
                ev.progress = p->fraction;
                ev.phase = p->phase;
                ev.message = p->message;
                ev.metrics = p->metrics;
                ev.n_metrics = p->n_metrics;
                s_emit (self, &ev);
            }
        }
        else
            ty_error ("progress script: %s", r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        freeReplyObject (r);
    }
    for (size_t i = 0; i < self->nmisc; i++) {
        redisReply *r = ty_redis_reply (self->redis);
        if (!r) {
            s_store_down (self, "misc");
            break;
        }
        if (r->type == REDIS_REPLY_ERROR)
            ty_warn ("redis: %s", r->str);
        freeReplyObject (r);
    }
    s_batches_reset (self);
}

/* =========================================================================
 *  dispatch
 * ========================================================================= */

typedef struct {
    s_run *run;
} s_pick;

static void
s_dispatch (ty_broker_t *self)
{
    if (!ty_redis_ok (self->redis) || !self->recovered)
        return;
    size_t nw = ty_workers_count (self->workers);
    if (nw == 0)
        return;
    s_pick *picks = NULL;
    size_t npicks = 0, cpicks = 0;
    int64_t now = ty_clock_mono_ms ();
    /* Round-robin one job per worker per round, so load spreads evenly. */
    int progress = 1;
    while (progress) {
        progress = 0;
        for (size_t i = 0; i < nw; i++) {
            ty_worker_t *w = ty_workers_at (self->workers, i);
            if (w->draining || w->njobs >= w->capacity
            ||  ty_queues_len (self->queues, w->type) == 0)
                continue;
            char id [TY_ID_LEN + 1];
            if (!ty_queues_pop (self->queues, w->type, id))
                continue;
            if (ty_hash_get (self->running, id))
                continue;       /* a stale duplicate entry */
            s_run *run = calloc (1, sizeof *run);
            if (!run || s_grow ((void **) &picks, &cpicks, npicks + 1, sizeof *picks)) {
                free (run);
                ty_queues_push (self->queues, w->type, id, 0);
                break;
            }
            snprintf (run->id, sizeof run->id, "%s", id);
            snprintf (run->type, sizeof run->type, "%s", w->type);
            snprintf (run->worker, sizeof run->worker, "%s", w->id);
            run->deadline_ms = now + (int64_t) S_ACCEPT_IVLS * w->heartbeat_ms;
            run->attached = 1;
            ty_hash_put (self->running, id, run);
            ty_worker_job_add (w, id);
            picks [npicks++].run = run;
            progress = 1;
        }
    }
    if (npicks == 0) {
        free (picks);
        return;
    }
    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    ty_argv_str (a, self->prefix);
    int64_t wall = ty_clock_wall_ms ();
    ty_argv_int (a, wall);
    ty_argv_int (a, wall + (int64_t) TY_BROKER_LIVENESS * self->opts.heartbeat_ms);
    ty_argv_int (a, (int64_t) npicks);
    for (size_t i = 0; i < npicks; i++) {
        ty_argv_str (a, picks [i].run->id);
        ty_argv_str (a, picks [i].run->worker);
    }
    redisReply *r = NULL;
    if (ty_redis_append_script (self->redis, TY_SCRIPT_ASSIGN, a) == TY_OK)
        r = ty_redis_reply (self->redis);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != npicks) {
        if (r && r->type == REDIS_REPLY_ERROR)
            ty_error ("assign script: %s", r->str);
        if (r)
            freeReplyObject (r);
        s_store_down (self, "assign");
        free (picks);
        return;         /* recovery rebuilds queues and running jobs */
    }
    for (size_t i = 0; i < npicks; i++) {
        s_run *run = picks [i].run;
        redisReply *e = r->element [i];
        long long attempt = s_reply_int (e, 0);
        ty_worker_t *w = ty_workers_find (self->workers, run->worker);
        if (attempt <= 0) {
            if (w)
                ty_worker_job_del (w, run->id);
            ty_hash_del (self->running, run->id);
            free (run);
            continue;
        }
        run->attempt = (uint32_t) attempt;
        Ty__Assign as = TY__ASSIGN__INIT;
        as.job_id = run->id;
        as.attempt = run->attempt;
        if (e->elements >= 2 && e->element [1]->type == REDIS_REPLY_STRING) {
            as.spec.data = (uint8_t *) e->element [1]->str;
            as.spec.len = e->element [1]->len;
        }
        Ty__Envelope out = TY__ENVELOPE__INIT;
        out.cmd_case = TY__ENVELOPE__CMD_ASSIGN;
        out.assign = &as;
        int rc = ty_wire_send (self->workers_sock, run->worker, strlen (run->worker),
                               &out, ZMQ_DONTWAIT);
        s_emit_state (self, run->id, "RUNNING", run->attempt, "");
        if (rc != TY_OK) {
            /* Undeliverable: undo at once rather than wait for the accept timeout. */
            if (w)
                s_worker_lost (self, w, "ASSIGN undeliverable", 0);
            else
                s_requeue (self, run, 0, "ASSIGN undeliverable");
        }
    }
    freeReplyObject (r);
    free (picks);
}

/* =========================================================================
 *  timers, liveness, leases
 * ========================================================================= */

typedef struct {
    int64_t now;
    s_run **expired;
    size_t n, cap;
} s_expiry;

static int
s_collect_expired (const char *key, void *value, void *arg)
{
    s_expiry *x = arg;
    s_run *run = value;
    if (run->deadline_ms <= x->now
    &&  s_grow ((void **) &x->expired, &x->cap, x->n + 1, sizeof *x->expired) == TY_OK)
        x->expired [x->n++] = run;
    return 0;
}

typedef struct {
    ty_argv_t *a;
    int64_t deadline;
} s_renew;

static int
s_collect_renew (const char *key, void *value, void *arg)
{
    s_renew *x = arg;
    s_run *run = value;
    if (run->attempt > 0 && run->attached) {
        ty_argv_int (x->a, x->deadline);
        ty_argv_str (x->a, run->id);
    }
    return 0;
}

static void
s_timers (ty_broker_t *self)
{
    int64_t now = ty_clock_mono_ms ();
    if (now < self->next_tick_ms)
        return;
    self->next_tick_ms = now + S_TICK_MS;

    /* Redis outage: reconnect with backoff, then rebuild. */
    if (!self->recovered) {
        if (now < self->redis_retry_ms)
            return;
        if (ty_redis_connect (self->redis) != TY_OK || s_recover (self) != TY_OK) {
            int64_t delay = ty_backoff_next (&self->redis_backoff);
            ty_warn ("state store: %s; retry in %" PRId64 " ms",
                     ty_redis_errstr (self->redis), delay);
            self->redis_retry_ms = now + delay;
            return;
        }
        ty_backoff_reset (&self->redis_backoff);
    }

    /* Workers: heartbeat them, bury the silent. */
    for (size_t i = 0; i < ty_workers_count (self->workers); ) {
        ty_worker_t *w = ty_workers_at (self->workers, i);
        if (now - w->last_seen_ms > (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms) {
            s_worker_lost (self, w, "missed 3 heartbeats", 1);
            continue;       /* the array was compacted */
        }
        if (now >= w->next_hb_ms) {
            Ty__Envelope env = TY__ENVELOPE__INIT;
            Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
            env.cmd_case = TY__ENVELOPE__CMD_HEARTBEAT;
            env.heartbeat = &hb;
            int rc = ty_wire_send (self->workers_sock, w->id, strlen (w->id), &env, ZMQ_DONTWAIT);
            w->next_hb_ms = now + w->heartbeat_ms;
            if (rc == EHOSTUNREACH) {
                s_worker_lost (self, w, "connection gone", 1);
                continue;
            }
        }
        i++;
    }

    /* Leases: not accepted in time, not renewed, not re-attached. */
    s_expiry x = { .now = now };
    ty_hash_each (self->running, s_collect_expired, &x);
    for (size_t i = 0; i < x.n; i++) {
        s_run *run = x.expired [i];
        if (!run->attached)
            s_requeue (self, run, 1, "its worker did not come back after a broker restart");
        else
        if (!run->accepted)
            s_requeue (self, run, 0, "the worker did not accept the job in time");
        else
            s_requeue (self, run, 1, "lease expired (no heartbeat for the job)");
    }
    free (x.expired);

    /* Once per heartbeat: lease deadlines and worker records for operators. */
    if (now >= self->next_renew_ms) {
        self->next_renew_ms = now + self->opts.heartbeat_ms;
        if (ty_hash_size (self->running)
        &&  s_grow ((void **) &self->misc, &self->cmisc, self->nmisc + 1, sizeof *self->misc) == TY_OK) {
            ty_argv_t *a = &self->misc [self->nmisc++];
            ty_argv_reset (a);
            char key [80];
            snprintf (key, sizeof key, "%sleases", self->prefix);
            ty_argv_str (a, "ZADD");
            ty_argv_str (a, key);
            ty_argv_str (a, "XX");
            s_renew r = { a, ty_clock_wall_ms ()
                             + (int64_t) TY_BROKER_LIVENESS * self->opts.heartbeat_ms };
            size_t before = a->argc;
            ty_hash_each (self->running, s_collect_renew, &r);
            if (a->argc == before)
                self->nmisc--;
        }
        for (size_t i = 0; i < ty_workers_count (self->workers); i++)
            s_worker_record (self, ty_workers_at (self->workers, i));
        if (ty_workers_count (self->workers)
        &&  s_grow ((void **) &self->misc, &self->cmisc, self->nmisc + 1, sizeof *self->misc) == TY_OK) {
            ty_argv_t *a = &self->misc [self->nmisc++];
            ty_argv_reset (a);
            char key [80];
            snprintf (key, sizeof key, "%sworkers", self->prefix);
            ty_argv_str (a, "ZADD");
            ty_argv_str (a, key);
            for (size_t i = 0; i < ty_workers_count (self->workers); i++) {
                ty_worker_t *w = ty_workers_at (self->workers, i);
                ty_argv_int (a, w->last_seen_wall_ms);
                ty_argv_str (a, w->id);
            }
        }
    }
}

/* A closed worker connection (the socket monitor's DISCONNECTED): the
 * process is gone, so do not wait three heartbeats to requeue its jobs. */
static void
s_on_monitor (ty_broker_t *self)
{
    for (;;) {
        zmq_msg_t m1, m2;
        zmq_msg_init (&m1);
        if (zmq_msg_recv (&m1, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&m1);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size (&m1) >= 6) {
            memcpy (&event, zmq_msg_data (&m1), 2);
            memcpy (&value, (uint8_t *) zmq_msg_data (&m1) + 2, 4);
        }
        int more = zmq_msg_more (&m1);
        zmq_msg_close (&m1);
        if (more) {
            zmq_msg_init (&m2);
            if (zmq_msg_recv (&m2, self->monitor, 0) < 0) {
                zmq_msg_close (&m2);
                return;
            }
            zmq_msg_close (&m2);
        }
        if (event == ZMQ_EVENT_DISCONNECTED) {
            ty_worker_t *w = ty_workers_find_fd (self->workers, (int) value);
            if (w)
                s_worker_lost (self, w, "connection closed", 1);
        }
    }
}

/* =========================================================================
 *  recovery
 * ========================================================================= */

static int
s_collect_run (const char *key, void *value, void *arg)
{
    s_expiry *x = arg;
    if (s_grow ((void **) &x->expired, &x->cap, x->n + 1, sizeof *x->expired) == TY_OK)
        x->expired [x->n++] = value;
    return 0;
}

/* Rebuilds queues and running jobs from Redis. Workers are asked to say
 * READY again, listing what they hold, which re-attaches their jobs. */
static int
s_recover (ty_broker_t *self)
{
    ty_queues_clear (self->queues);
    s_expiry all = { 0 };
    ty_hash_each (self->running, s_collect_run, &all);
    for (size_t i = 0; i < all.n; i++) {
        ty_hash_del (self->running, all.expired [i]->id);
        free (all.expired [i]);
    }
    free (all.expired);
    for (size_t i = 0; i < ty_workers_count (self->workers); i++)
        ty_workers_at (self->workers, i)->njobs = 0;

    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    char key [128];
    snprintf (key, sizeof key, "%sactive", self->prefix);
    ty_argv_str (a, "SMEMBERS");
    ty_argv_str (a, key);
    redisReply *ids = ty_redis_command (self->redis, a);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        if (ids)
            freeReplyObject (ids);
        ty_redis_fail (self->redis, "SMEMBERS active failed");
        return TY_ESTORE;
    }
    int64_t now = ty_clock_mono_ms ();
    int64_t grace = (int64_t) TY_BROKER_LIVENESS * self->opts.heartbeat_ms + S_RECOVER_GRACE_MS;
    size_t queued = 0, running = 0, pending = 0;
    for (size_t base = 0; base < ids->elements; base += 1000) {
        size_t end = base + 1000 < ids->elements ? base + 1000 : ids->elements;
        for (size_t i = base; i < end; i++) {
            ty_argv_reset (a);
            snprintf (key, sizeof key, "%sjob:%s", self->prefix, ids->element [i]->str);
            ty_argv_str (a, "HMGET");
            ty_argv_str (a, key);
            ty_argv_str (a, "state");
            ty_argv_str (a, "type");
            ty_argv_str (a, "attempt");
            ty_argv_str (a, "worker");
            ty_argv_str (a, "score");
            if (ty_redis_append (self->redis, a) != TY_OK) {
                freeReplyObject (ids);
                return TY_ESTORE;
            }
        }
        for (size_t i = base; i < end; i++) {
            redisReply *r = ty_redis_reply (self->redis);
            if (!r) {
                freeReplyObject (ids);
                return TY_ESTORE;
            }
            char state [32], type [32], worker [TY_WORKER_ID_MAX + 1], score [64];
            s_reply_str (r, 0, state, sizeof state);
            s_reply_str (r, 1, type, sizeof type);
            s_reply_str (r, 3, worker, sizeof worker);
            s_reply_str (r, 4, score, sizeof score);
            long long attempt = s_reply_int (r, 2);
            const char *id = ids->element [i]->str;
            if (!strcmp (state, "QUEUED")) {
                ty_queues_push (self->queues, type, id, strtod (score, NULL));
                queued++;
            }
            else
            if (!strcmp (state, "RUNNING")) {
                s_run *run = calloc (1, sizeof *run);
                if (run) {
                    snprintf (run->id, sizeof run->id, "%s", id);
                    snprintf (run->type, sizeof run->type, "%s", type);
                    snprintf (run->worker, sizeof run->worker, "%s", worker);
                    run->attempt = (uint32_t) attempt;
                    run->deadline_ms = now + grace;
                    run->accepted = 1;
                    run->attached = 0;
                    ty_hash_put (self->running, run->id, run);
                    running++;
                }
            }
            else
                pending++;
            freeReplyObject (r);
        }
    }
    freeReplyObject (ids);
    self->recovered = 1;
    ty_info ("recovered from Redis: %zu queued, %zu running (awaiting their workers), "
             "%zu pending", queued, running, pending);
    for (size_t i = 0; i < ty_workers_count (self->workers); i++) {
        ty_worker_t *w = ty_workers_at (self->workers, i);
        s_send_reconnect (self, (const uint8_t *) w->id, strlen (w->id),
                          "broker state rebuilt: send READY with your jobs");
    }
    /* Workers re-register by READY; until then they hold no slots here. */
    while (ty_workers_count (self->workers))
        ty_workers_remove (self->workers, ty_workers_at (self->workers, 0)->id);
    return TY_OK;
}

/* =========================================================================
 *  reactor
 * ========================================================================= */

static void *
s_bind (ty_broker_t *self, const char *ep, char *bound, size_t bound_len)
{
    void *s = zmq_socket (self->zctx, ZMQ_ROUTER);
    if (!s)
        return NULL;
    int one = 1, zero = 0, hwm = 1000000;
    /* Undeliverable messages must fail loudly, not vanish. */
    zmq_setsockopt (s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt (s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (s, ZMQ_LINGER, &zero, sizeof zero);
    int64_t maxmsg = (int64_t) self->opts.max_msg_bytes * 2 + 4096;
    zmq_setsockopt (s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind (s, ep) != 0) {
        ty_error ("cannot bind %s: %s", ep, zmq_strerror (errno));
        zmq_close (s);
        return NULL;
    }
    size_t len = bound_len;
    if (zmq_getsockopt (s, ZMQ_LAST_ENDPOINT, bound, &len) != 0)
        snprintf (bound, bound_len, "%s", ep);
    return s;
}

static int
s_write_endpoints (const char *path, const char *clients, const char *workers)
{
    char tmp [4096];
    snprintf (tmp, sizeof tmp, "%s.tmp.%d", path, (int) getpid ());
    FILE *f = fopen (tmp, "w");
    if (!f)
        return errno;
    fprintf (f, "clients %s\nworkers %s\n", clients, workers);
    if (fflush (f) != 0 || fsync (fileno (f)) != 0) {
        int err = errno;
        fclose (f);
        unlink (tmp);
        return err;
    }
    if (fclose (f) != 0 || rename (tmp, path) != 0) {
        int err = errno;
        unlink (tmp);
        return err;
    }
    return 0;
}

ty_broker_t *
ty_broker_new (const ty_broker_opts_t *opts)
{
    ty_broker_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    if (!self->opts.heartbeat_ms)
        self->opts.heartbeat_ms = TY_BROKER_HEARTBEAT_MS;
    if (!self->opts.max_attempts)
        self->opts.max_attempts = TY_BROKER_MAX_ATTEMPTS;
    if (!self->opts.max_msg_bytes)
        self->opts.max_msg_bytes = TY_WIRE_MAX_MSG_BYTES;
    snprintf (self->prefix, sizeof self->prefix, "%s", opts->prefix ? opts->prefix : "ty:");
    ty_argv_init (&self->submit_args);
    ty_argv_init (&self->ends_args);
    ty_argv_init (&self->prog_args);
    ty_argv_init (&self->scratch);
    ty_backoff_init (&self->redis_backoff, 50, 2000);
    self->workers = ty_workers_new ();
    self->running = ty_hash_new ();
    self->queues = ty_queues_new ();
    self->watchers = ty_hash_new ();
    self->redis = ty_redis_new (opts->redis_url);
    if (!self->redis)
        ty_error ("bad Redis URL '%s' (want redis://host:port or unix:///path)",
                  opts->redis_url);
    self->zctx = zmq_ctx_new ();
    if (!self->workers || !self->running || !self->queues || !self->watchers
    ||  !self->redis || !self->zctx) {
        ty_broker_destroy (&self);
        return NULL;
    }
    char cep [256], wep [256];
    self->clients = s_bind (self, opts->clients_ep, cep, sizeof cep);
    self->workers_sock = self->clients ? s_bind (self, opts->workers_ep, wep, sizeof wep) : NULL;
    if (!self->clients || !self->workers_sock) {
        ty_broker_destroy (&self);
        return NULL;
    }
    int one = 1;
    /* A restarted worker takes its name back at once. */
    zmq_setsockopt (self->workers_sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    if (zmq_socket_monitor (self->workers_sock, S_MONITOR_EP, ZMQ_EVENT_DISCONNECTED) == 0) {
        self->monitor = zmq_socket (self->zctx, ZMQ_PAIR);
        if (self->monitor && zmq_connect (self->monitor, S_MONITOR_EP) != 0) {
            zmq_close (self->monitor);
            self->monitor = NULL;
        }
    }
    if (!self->monitor)
        ty_warn ("no socket monitor: dead workers are found by heartbeat only");
    if (opts->endpoint_file) {
        int err = s_write_endpoints (opts->endpoint_file, cep, wep);
        if (err) {
            ty_error ("cannot write %s: %s", opts->endpoint_file, strerror (err));
            ty_broker_destroy (&self);
            return NULL;
        }
    }
    ty_info ("clients on %s, workers on %s, Redis %s (prefix %s), heartbeat %d ms",
             cep, wep, opts->redis_url, self->prefix, self->opts.heartbeat_ms);
    return self;
}

void
ty_broker_destroy (ty_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_broker_t *self = *self_p;
    if (self->monitor)
        zmq_close (self->monitor);
    if (self->clients)
        zmq_close (self->clients);
    if (self->workers_sock)
        zmq_close (self->workers_sock);
    if (self->zctx)
        zmq_ctx_term (self->zctx);
    s_batches_reset (self);
    free (self->submits);
    free (self->ends);
    free (self->progs);
    for (size_t i = 0; i < self->cmisc; i++)
        ty_argv_free (&self->misc [i]);
    free (self->misc);
    ty_argv_free (&self->submit_args);
    ty_argv_free (&self->ends_args);
    ty_argv_free (&self->prog_args);
    ty_argv_free (&self->scratch);
    if (self->running) {
        s_expiry all = { 0 };
        ty_hash_each (self->running, s_collect_run, &all);
        for (size_t i = 0; i < all.n; i++)
            free (all.expired [i]);
        free (all.expired);
        ty_hash_destroy (&self->running);
    }
    if (self->watchers) {
        ty_hash_each (self->watchers, s_watch_free_cb, NULL);
        ty_hash_destroy (&self->watchers);
    }
    s_watch_free (self->firehose);
    ty_workers_destroy (&self->workers);
    ty_queues_destroy (&self->queues);
    ty_redis_destroy (&self->redis);
    free (self);
    *self_p = NULL;
}

void
ty_broker_stop (ty_broker_t *self)
{
    self->stop = 1;
}

/* Reads up to TY_BROKER_BATCH_MAX messages from one socket. */
static void
s_drain (ty_broker_t *self, void *sock, int is_client)
{
    for (int i = 0; i < TY_BROKER_BATCH_MAX; i++) {
        ty_wire_msg_t msg;
        int rc = ty_wire_recv (sock, 1, self->opts.max_msg_bytes, &msg, ZMQ_DONTWAIT);
        if (rc == EAGAIN)
            return;
        if (rc == TY_EPROTO || rc == TY_EFULL) {
            char text [160];
            if (rc == TY_EFULL)
                snprintf (text, sizeof text, "message of %zu bytes over the limit of %zu",
                          msg.body_len, self->opts.max_msg_bytes);
            else
                snprintf (text, sizeof text, "not a trainyard message (want frames "
                          "[\"TY1\"][Envelope]): dropped");
            ty_warn ("%s peer: %s", is_client ? "client" : "worker", text);
            if (msg.route_len) {
                Ty__Envelope env = TY__ENVELOPE__INIT;
                Ty__Error err = TY__ERROR__INIT;
                err.code = rc;
                err.message = text;
                env.cmd_case = TY__ENVELOPE__CMD_ERROR;
                env.error = &err;
                int src = ty_wire_send (sock, msg.route, msg.route_len, &env, ZMQ_DONTWAIT);
                (void) src;
            }
            ty_wire_msg_clear (&msg);
            continue;
        }
        if (rc != TY_OK) {
            if (rc != EINTR)
                ty_warn ("receive: %s", ty_strerror (rc));
            return;
        }
        int kept = is_client ? s_on_client (self, &msg) : s_on_worker (self, &msg);
        if (!kept)
            ty_wire_msg_clear (&msg);
    }
}

int
ty_broker_run (ty_broker_t *self)
{
    self->redis_retry_ms = 0;
    self->recovered = 0;
    s_timers (self);            /* connects and recovers */
    while (!self->stop) {
        zmq_pollitem_t items [3] = {
            { self->clients, 0, ZMQ_POLLIN, 0 },
            { self->workers_sock, 0, ZMQ_POLLIN, 0 },
            { self->monitor, 0, ZMQ_POLLIN, 0 },
        };
        int nitems = self->monitor ? 3 : 2;
        int64_t wait = self->next_tick_ms - ty_clock_mono_ms ();
        if (wait < 0)
            wait = 0;
        if (wait > S_TICK_MS)
            wait = S_TICK_MS;
        int rc = zmq_poll (items, nitems, (long) wait);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            ty_error ("zmq_poll: %s", zmq_strerror (errno));
            break;
        }
        if (nitems == 3 && (items [2].revents & ZMQ_POLLIN))
            s_on_monitor (self);
        if (items [1].revents & ZMQ_POLLIN)
            s_drain (self, self->workers_sock, 0);
        if (items [0].revents & ZMQ_POLLIN)
            s_drain (self, self->clients, 1);
        s_timers (self);
        s_flush (self);
        s_dispatch (self);
        /* Requeues found while dispatching (undeliverable ASSIGN) go out now. */
        s_flush (self);
    }
    ty_info ("broker stopping");
    return TY_OK;
}

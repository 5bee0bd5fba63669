/*  ty_worker_msgs: the worker side of the broker: READY, heartbeats,
 *  ACCEPT, progress, logs, results, DISCONNECT; and dispatch, which hands
 *  queued jobs to free worker slots (credit = declared capacity). */
#include "ty_broker_int.h"
#include "ty_clock.h"
#include "ty_error.h"
#include "ty_log.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_error_to (ty_broker_t *self, const char *wid, int code, const char *text)
{
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Error err = TY__ERROR__INIT;
    err.code = code;
    err.message = (char *) text;
    env.cmd_case = TY__ENVELOPE__CMD_ERROR;
    env.error = &err;
    ty_broker_to_worker (self, wid, &env);
}

void
ty_broker_send_reconnect (ty_broker_t *self, const char *worker_id, const char *why)
{
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Reconnect rc = TY__RECONNECT__INIT;
    rc.reason = (char *) why;
    env.cmd_case = TY__ENVELOPE__CMD_RECONNECT;
    env.reconnect = &rc;
    ty_broker_to_worker (self, worker_id, &env);
}

static void
s_cancel_job (ty_broker_t *self, const char *wid, const char *id, uint32_t attempt,
              const char *reason)
{
    Ty__CancelJob cj = TY__CANCEL_JOB__INIT;
    cj.job_id = (char *) id;
    cj.attempt = attempt;
    cj.reason = (char *) reason;
    Ty__Envelope out = TY__ENVELOPE__INIT;
    out.cmd_case = TY__ENVELOPE__CMD_CANCEL_JOB;
    out.cancel_job = &cj;
    ty_broker_to_worker (self, wid, &out);
}

void
ty_broker_worker_record (ty_broker_t *self, ty_worker_t *w)
{
    ty_argv_t *a = ty_state_raw (self->state);
    char key [160];
    snprintf (key, sizeof key, "%sworker:%s", self->prefix, w->id);
    ty_argv_str (a, "HSET");
    ty_argv_str (a, key);
    ty_argv_str (a, "type");         ty_argv_str (a, w->type);
    ty_argv_str (a, "host");         ty_argv_str (a, w->host);
    ty_argv_str (a, "pid");          ty_argv_int (a, w->pid);
    ty_argv_str (a, "capacity");     ty_argv_int (a, w->capacity);
    ty_argv_str (a, "last_seen_ms"); ty_argv_int (a, w->last_seen_wall_ms);
    char jobs [64 * (TY_ID_LEN + 1) + 1] = "";
    size_t n = 0;
    for (size_t i = 0; i < w->njobs && i < 64; i++)
        n += (size_t) snprintf (jobs + n, sizeof jobs - n, "%s%s", i ? "," : "", w->jobs [i]);
    ty_argv_str (a, "jobs");         ty_argv_str (a, jobs);
    ty_state_zadd (self->state, "workers", (double) w->last_seen_wall_ms, w->id);
}

/* Re-attaches the jobs a worker says it runs, or stops zombie attempts. */
static void
s_adopt_held (ty_broker_t *self, ty_worker_t *w, Ty__Held **held, size_t n)
{
    int64_t now = ty_clock_mono_ms ();
    w->zombies = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = held [i]->job_id;
        if (!ty_id_valid (id))
            continue;
        ty_jobrec_t *job = ty_jobs_find (self->jobs, id);
        int current = job && job->state == TY_JOB_RUNNING && job->attempt == held [i]->attempt
                   && !strcmp (job->worker, w->id);
        /* A stale attempt still occupies one of its slots: a job given to
           that slot would be refused, requeued, given again... */
        w->zombies += !current;
        if (current) {
            job->attached = 1;
            job->accepted = 1;
            job->deadline_ms = now + (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms;
            if (ty_worker_job_add (w, id) != TY_OK)
                ty_warn ("worker %s holds more jobs than its capacity", w->id);
        }
        else
        if (job)
            s_cancel_job (self, w->id, id, held [i]->attempt,
                          "stale attempt: the job was given to another worker");
        /* not in memory: it ended; an unacknowledged result re-sent next
           will be acknowledged as done or stale */
    }
}

static void
s_on_ready (ty_broker_t *self, ty_wire_msg_t *msg, const char *wid)
{
    Ty__Ready *r = msg->env->ready;
    if (strcmp (r->worker_id, wid)) {
        s_error_to (self, wid, TY_EPROTO, "READY: worker_id must equal the socket's routing id");
        return;
    }
    if (!ty_jobtype_valid (r->type)) {
        char text [128];
        snprintf (text, sizeof text, "READY: unknown job type '%.40s'", r->type);
        s_error_to (self, wid, TY_EINVAL, text);
        return;
    }
    if (r->capacity == 0 || r->capacity > TY_WORKER_CAP_MAX) {
        s_error_to (self, wid, TY_EINVAL, "READY: capacity must be 1..1024");
        return;
    }
    ty_resources_t *res = NULL;
    if (r->n_resources) {
        res = ty_resources_new ();
        int rc = res ? TY_OK : TY_ENOMEM;
        const char *bad = NULL;
        if (r->n_resources > TY_RESOURCES_MAX)
            bad = "READY: over 32 resources";
        for (size_t i = 0; i < r->n_resources && rc == TY_OK && !bad; i++) {
            bad = ty_resources_check (r->resources [i]->key, r->resources [i]->value);
            if (!bad)
                rc = ty_resources_add (res, r->resources [i]->key, r->resources [i]->value);
        }
        if (bad || rc != TY_OK) {
            ty_resources_destroy (&res);
            char text [160];
            snprintf (text, sizeof text, "READY: %s", bad ? bad : "broker out of memory");
            s_error_to (self, wid, bad ? TY_EINVAL : TY_ENOMEM, text);
            return;
        }
    }
    ty_worker_t *old = ty_workers_find (self->workers, wid);
    if (old && strcmp (old->type, r->type))
        ty_broker_worker_lost (self, old, "re-registered with another type", 1);
    ty_worker_t *w = ty_workers_require (self->workers, wid, r->capacity);
    if (!w) {
        ty_resources_destroy (&res);
        return;
    }
    ty_resources_destroy (&w->resources);
    w->resources = res;
    /* A new worker (or new resources) may take jobs that none could. */
    ty_queues_unpark (self->queues);
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
    /* Jobs we thought it held but that it does not list are lost. */
    for (size_t i = 0; i < w->njobs; ) {
        int listed = 0;
        for (size_t k = 0; k < r->n_held; k++)
            if (!strcmp (r->held [k]->job_id, w->jobs [i]))
                listed = 1;
        if (listed) {
            i++;
            continue;
        }
        ty_jobrec_t *job = ty_jobs_find (self->jobs, w->jobs [i]);
        if (!job || job->state != TY_JOB_RUNNING || strcmp (job->worker, w->id))
            ty_worker_job_del (w, w->jobs [i]);
        else
        if (!job->accepted)
            /* An ASSIGN not yet accepted may have crossed this READY on the
               wire: the accept deadline decides about that one. */
            i++;
        else
            ty_broker_job_requeue (self, job, 1, "worker restarted without the job");
    }
    s_adopt_held (self, w, r->held, r->n_held);
    ty_info ("worker %s ready: type %s capacity %u host %s pid %u (%zu jobs held)",
             w->id, w->type, w->capacity, w->host, w->pid, w->njobs);
    ty_broker_worker_record (self, w);
}

static void
s_ack (ty_broker_t *self, const char *wid, const char *id, uint32_t attempt, int stale)
{
    Ty__ResultAck ack = TY__RESULT_ACK__INIT;
    ack.job_id = (char *) id;
    ack.attempt = attempt;
    ack.stale = stale;
    Ty__Envelope out = TY__ENVELOPE__INIT;
    out.cmd_case = TY__ENVELOPE__CMD_RESULT_ACK;
    out.result_ack = &ack;
    ty_broker_to_worker (self, wid, &out);
}

/* A result the memory does not expect: recorded before (its ack was lost)
 * or a fenced attempt. Redis tells which. */
static void
s_result_unexpected (ty_broker_t *self, const char *wid, const Ty__Result *res)
{
    ty_ended_t *e = ty_hash_get (self->turn_ended, res->job_id);
    if (e) {
        /* ended earlier in this very turn (a result sent twice in one batch) */
        s_ack (self, wid, res->job_id, res->attempt, 0);
        return;
    }
    ty_broker_settle (self);
    ty_argv_t *a = &self->scratch;
    ty_argv_reset (a);
    char key [128];
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, res->job_id);
    ty_argv_str (a, "HMGET");
    ty_argv_str (a, key);
    ty_argv_str (a, "state");
    ty_argv_str (a, "attempt");
    ty_argv_str (a, "worker");
    redisReply *r = ty_redis_command (self->redis, a);
    if (!r) {
        ty_broker_store_down (self, "result check");
        return;                 /* no ack: the worker sends it again */
    }
    char state [32], worker [TY_WORKER_ID_MAX + 1];
    ty_broker_rstr (r, 0, state, sizeof state);
    ty_broker_rstr (r, 2, worker, sizeof worker);
    long long attempt = ty_broker_rint (r, 1);
    freeReplyObject (r);
    int st = ty_jobstate_parse (state);
    int done = st >= 0 && ty_jobstate_is_terminal ((ty_jobstate_t) st)
            && attempt == (long long) res->attempt && !strcmp (worker, wid);
    if (!done)
        ty_info ("result of job %s attempt %u from %s fenced (job is %s, attempt %lld on %s)",
                 res->job_id, res->attempt, wid, *state ? state : "unknown", attempt,
                 *worker ? worker : "-");
    s_ack (self, wid, res->job_id, res->attempt, !done);
}

/* A step job's latest metrics, passed on to its children when it succeeds. */
static void
s_keep_metrics (ty_jobrec_t *job, Ty__Metric **metrics, size_t n)
{
    for (size_t i = 0; i < n && i < TY_BROKER_METRICS_MAX; i++) {
        char v [40];
        snprintf (v, sizeof v, "%.17g", metrics [i]->value);
        if (ty_jobkvs_set (&job->metrics, NULL, metrics [i]->key, v) != TY_OK)
            ty_warn ("job %s: metric %s not kept (out of memory)", job->id, metrics [i]->key);
    }
}

/* The result's metrics: the job hash's metric.<key> (their latest value, as
 * progress metrics are), and a step job's metrics for its children. */
static void
s_result_metrics (ty_broker_t *self, ty_jobrec_t *job, const Ty__Result *res)
{
    if (res->n_metrics == 0)
        return;
    if (job->step)
        s_keep_metrics (job, res->metrics, res->n_metrics);
    ty_argv_t *a = ty_state_raw (self->state);
    char key [128];
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, job->id);
    ty_argv_str (a, "HSET");
    ty_argv_str (a, key);
    for (size_t i = 0; i < res->n_metrics && i < TY_BROKER_METRICS_MAX; i++) {
        char field [160];
        snprintf (field, sizeof field, "metric.%s", res->metrics [i]->key);
        ty_argv_str (a, field);
        ty_argv_dbl (a, res->metrics [i]->value);
    }
}

static void
s_on_result (ty_broker_t *self, ty_wire_msg_t *msg, const char *wid)
{
    Ty__Result *res = msg->env->result;
    if (!ty_id_valid (res->job_id) || res->attempt == 0) {
        s_error_to (self, wid, TY_EPROTO, "RESULT: bad job id or attempt");
        return;
    }
    if (!self->ready)
        return;                 /* no ack: the worker sends it again */
    ty_jobrec_t *job = ty_jobs_find (self->jobs, res->job_id);
    if (!job || job->state != TY_JOB_RUNNING || job->attempt != res->attempt
    ||  strcmp (job->worker, wid)) {
        s_result_unexpected (self, wid, res);
        return;
    }
    ty_jobstate_t state = TY_JOB_FAILED;
    const char *error = res->error;
    switch (res->outcome) {
    case TY__OUTCOME__OUTCOME_SUCCEEDED: state = TY_JOB_SUCCEEDED; error = ""; break;
    case TY__OUTCOME__OUTCOME_CANCELLED: state = TY_JOB_CANCELLED;
        if (job->cancel_requested)
            error = job->cancel_reason;
        if (job->timed_out)
            state = TY_JOB_FAILED;      /* stopped by its timeout: a failure */
        break;
    case TY__OUTCOME__OUTCOME_FAILED: break;
    default: error = "worker sent a result without an outcome"; break;
    }
    if (state == TY_JOB_FAILED && !*error)
        error = "failed without a reason";
    char reason [512];
    snprintf (reason, sizeof reason, "%s", error);
    /* data bytes are not stored in Redis; their size is */
    Ty__Output extra = TY__OUTPUT__INIT;
    char size [32];
    Ty__Output **outs = res->outputs;
    size_t nouts = res->n_outputs;
    Ty__Output **all = NULL;
    if (res->data.len) {
        all = calloc (nouts + 1, sizeof *all);
        if (all) {
            memcpy (all, res->outputs, nouts * sizeof *all);
            snprintf (size, sizeof size, "%zu", res->data.len);
            extra.key = "data_bytes";
            extra.value = size;
            all [nouts++] = &extra;
            outs = all;
        }
    }
    if (state == TY_JOB_SUCCEEDED)
        s_result_metrics (self, job, res);
    ty_broker_job_finish (self, job, state, reason, outs, nouts);
    free (all);
    s_ack (self, wid, res->job_id, res->attempt, 0);
}

static void
s_on_progress (ty_broker_t *self, ty_wire_msg_t *msg, const char *wid, ty_worker_t *w)
{
    int is_log = msg->env->cmd_case == TY__ENVELOPE__CMD_LOG;
    const char *id = is_log ? msg->env->log->job_id : msg->env->progress->job_id;
    uint32_t attempt = is_log ? msg->env->log->attempt : msg->env->progress->attempt;
    ty_jobrec_t *job = ty_jobs_find (self->jobs, id);
    if (!job || job->state != TY_JOB_RUNNING || job->attempt != attempt
    ||  strcmp (job->worker, wid) || !self->ready)
        return;                 /* fenced, or no store: progress is not worth keeping */
    job->deadline_ms = ty_clock_mono_ms () + (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms;
    char key [128];
    if (is_log) {
        Ty__LogReq *l = msg->env->log;
        if (l->n_lines == 0)
            return;
        ty_argv_t *a = ty_state_raw (self->state);
        snprintf (key, sizeof key, "%sjob:%s:log", self->prefix, id);
        ty_argv_str (a, "RPUSH");
        ty_argv_str (a, key);
        size_t n = l->n_lines > TY_STATE_LOG_MAX ? TY_STATE_LOG_MAX : l->n_lines;
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen (l->lines [i]);
            ty_argv_bin (a, l->lines [i], len > 4096 ? 4096 : len);
        }
        a = ty_state_raw (self->state);
        ty_argv_str (a, "LTRIM");
        ty_argv_str (a, key);
        ty_argv_int (a, -TY_STATE_LOG_MAX);
        ty_argv_int (a, -1);
        return;
    }
    Ty__Progress *p = msg->env->progress;
    if (job->step)
        s_keep_metrics (job, p->metrics, p->n_metrics);
    job->shown = 1;
    char frac [32] = "", att [16];
    if (p->fraction >= 0 && p->fraction <= 1)
        snprintf (frac, sizeof frac, "%.6g", p->fraction);
    snprintf (att, sizeof att, "%u", attempt);
    ty_argv_t *a = ty_state_raw (self->state);
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, id);
    ty_argv_str (a, "HSET");
    ty_argv_str (a, key);
    if (*frac) { ty_argv_str (a, "progress"); ty_argv_str (a, frac); }
    ty_argv_str (a, "phase");   ty_argv_str (a, p->phase);
    ty_argv_str (a, "message"); ty_argv_str (a, p->message);
    for (size_t i = 0; i < p->n_metrics && i < TY_BROKER_METRICS_MAX; i++) {
        char field [160];
        snprintf (field, sizeof field, "metric.%s", p->metrics [i]->key);
        ty_argv_str (a, field);
        ty_argv_dbl (a, p->metrics [i]->value);
    }
    const char *pairs [] = { "job", id, "kind", "progress", "attempt", att,
                             "progress", frac, "phase", p->phase, "message", p->message };
    ty_state_event (self->state, 6, pairs);
    if (p->n_metrics) {
        a = ty_state_raw (self->state);
        snprintf (key, sizeof key, "%sjob:%s:metrics", self->prefix, id);
        ty_argv_str (a, "XADD");
        ty_argv_str (a, key);
        ty_argv_str (a, "MAXLEN");
        ty_argv_str (a, "~");
        ty_argv_int (a, TY_STATE_EVENTS_MAX);
        ty_argv_str (a, "*");
        ty_argv_str (a, "attempt");
        ty_argv_str (a, att);
        for (size_t i = 0; i < p->n_metrics && i < TY_BROKER_METRICS_MAX; i++) {
            ty_argv_str (a, p->metrics [i]->key);
            ty_argv_dbl (a, p->metrics [i]->value);
        }
    }
    Ty__Event ev = TY__EVENT__INIT;
    ev.job_id = (char *) id;
    ev.kind = "progress";
    ev.state = "RUNNING";
    ev.attempt = attempt;
    ev.progress = p->fraction;
    ev.phase = p->phase;
    ev.message = p->message;
    ev.metrics = p->metrics;
    ev.n_metrics = p->n_metrics;
    ty_broker_emit (self, &ev);
}

void
ty_broker_on_worker (ty_broker_t *self, ty_wire_msg_t *msg)
{
    char wid [TY_WORKER_ID_MAX + 1];
    if (msg->route_len == 0 || msg->route_len > TY_WORKER_ID_MAX
    ||  memchr (msg->route, 0, msg->route_len)) {
        ty_warn ("worker message from a bad routing id (%zu bytes): dropped", msg->route_len);
        return;
    }
    memcpy (wid, msg->route, msg->route_len);
    wid [msg->route_len] = '\0';
    ty_worker_t *w = ty_workers_find (self->workers, wid);
    if (w) {
        w->last_seen_ms = ty_clock_mono_ms ();
        w->last_seen_wall_ms = ty_clock_wall_ms ();
        if (msg->srcfd >= 0)
            w->srcfd = msg->srcfd;
    }
    switch (msg->env->cmd_case) {
    case TY__ENVELOPE__CMD_READY:
        s_on_ready (self, msg, wid);
        return;
    case TY__ENVELOPE__CMD_RESULT:
        /* Taken from unknown workers too (after a broker restart): fenced by
           (job, attempt, worker) all the same. */
        s_on_result (self, msg, wid);
        return;
    case TY__ENVELOPE__CMD_DISCONNECT:
        if (w) {
            ty_info ("worker %s leaves: %s", wid, msg->env->disconnect->reason);
            ty_broker_worker_lost (self, w, "handed its jobs back", 0);
        }
        return;
    default:
        break;
    }
    if (!w) {
        ty_broker_send_reconnect (self, wid, "unknown worker: send READY");
        return;
    }
    switch (msg->env->cmd_case) {
    case TY__ENVELOPE__CMD_HEARTBEAT: {
        int64_t deadline = w->last_seen_ms + (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms;
        Ty__Heartbeat *hb = msg->env->heartbeat;
        w->draining = hb->draining;
        size_t zombies = 0;
        for (size_t i = 0; i < hb->n_held; i++) {
            ty_jobrec_t *job = ty_jobs_find (self->jobs, hb->held [i]->job_id);
            int current = job && job->state == TY_JOB_RUNNING
                       && job->attempt == hb->held [i]->attempt && !strcmp (job->worker, wid);
            zombies += !current;
            if (current && job->accepted)
                job->deadline_ms = deadline;
        }
        w->zombies = zombies;
        return;
    }
    case TY__ENVELOPE__CMD_ACCEPT: {
        Ty__Accept *acc = msg->env->accept;
        ty_jobrec_t *job = ty_jobs_find (self->jobs, acc->job_id);
        if (!job || job->state != TY_JOB_RUNNING || job->attempt != acc->attempt
        ||  strcmp (job->worker, wid))
            return;
        if (acc->refused) {
            w->draining = 1;
            ty_broker_job_requeue (self, job, 0, "refused by a draining worker");
            return;
        }
        job->accepted = 1;
        job->attached = 1;
        job->deadline_ms = w->last_seen_ms + (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms;
        return;
    }
    case TY__ENVELOPE__CMD_PROGRESS:
    case TY__ENVELOPE__CMD_LOG:
        s_on_progress (self, msg, wid, w);
        return;
    default:
        s_error_to (self, wid, TY_EPROTO, "not a worker command");
        return;
    }
}

/* ---- dispatch ------------------------------------------------------------------ */

/* 1 if a worker of the job's type (busy or not) could take it. */
static int
s_anyone_fits (ty_broker_t *self, const ty_jobrec_t *job)
{
    size_t nw = ty_workers_count (self->workers);
    for (size_t i = 0; i < nw; i++) {
        ty_worker_t *w = ty_workers_at (self->workers, i);
        if (!w->draining && !strcmp (w->type, job->type)
        &&  ty_resources_fit (job->needs, w->resources))
            return 1;
    }
    return 0;
}

void
ty_broker_dispatch (ty_broker_t *self)
{
    if (!self->ready)
        return;
    size_t nw = ty_workers_count (self->workers);
    /* Round-robin one job per worker per round, so load spreads evenly. */
    int progress = 1, stop = 0;
    while (progress && !stop) {
        progress = 0;
        for (size_t i = 0; i < nw && !stop; i++) {
            ty_worker_t *w = ty_workers_at (self->workers, i);
            if (w->draining || w->njobs + w->zombies >= w->capacity)
                continue;
            char id [TY_ID_LEN + 1];
            ty_jobrec_t *job = NULL;
            /* skip ids that were cancelled or moved on since they were queued */
            while (!job && ty_queues_pop (self->queues, w->type, id)) {
                job = ty_jobs_find (self->jobs, id);
                if (job && job->state != TY_JOB_QUEUED)
                    job = NULL;
                /* The common path (no resources) stops at this one test. */
                if (job && job->needs && !ty_resources_fit (job->needs, w->resources)) {
                    int rc = s_anyone_fits (self, job)
                           ? ty_queues_hold (self->queues, job->type, job->id, job->score)
                           : ty_queues_park (self->queues, job->type, job->id, job->score);
                    if (rc != TY_OK) {
                        ty_queues_push (self->queues, job->type, job->id, job->score);
                        stop = 1;
                    }
                    job = NULL;
                    if (stop)
                        break;
                }
            }
            if (!job)
                continue;
            ty_broker_job_assign (self, job, w);
            progress = 1;
        }
    }
    ty_queues_unhold (self->queues);
}

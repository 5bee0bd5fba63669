/*  ty_recover: rebuilds the broker's memory from Redis, at start and after
 *  every Redis outage. ty:active names every job that has not ended; each
 *  one's hash gives its state, attempt, worker, queue score, parents and
 *  spec. RUNNING jobs wait a grace period for their workers to say READY
 *  with them (re-attach) before they are re-queued as lost. */
#include "ty_broker_int.h"
#include "ty_clock.h"
#include "ty_error.h"
#include "ty_log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_CHUNK 1000   /* HMGETs per pipeline round */

static const char *s_fields [] = {
    "state", "type", "priority", "attempt", "max_attempts", "worker", "score",
    "parents", "waiting", "cancel_requested", "cancel_reason", "spec_pb", "step", "inputs"
};
#define S_NFIELDS (sizeof s_fields / sizeof s_fields [0])

static void
s_load_one (ty_broker_t *self, const char *id, redisReply *r, int64_t deadline,
            size_t counts [3])
{
    char state [32], type [32], worker [TY_WORKER_ID_MAX + 1], reason [256];
    ty_broker_rstr (r, 0, state, sizeof state);
    int st = ty_jobstate_parse (state);
    if (st < 0 || ty_jobstate_is_terminal ((ty_jobstate_t) st)) {
        ty_warn ("job %s in the active set is %s: skipped", id, *state ? state : "missing");
        return;
    }
    ty_jobrec_t *job = ty_jobs_add (self->jobs, id);
    if (!job)
        return;
    ty_broker_rstr (r, 1, type, sizeof type);
    ty_broker_rstr (r, 5, worker, sizeof worker);
    ty_broker_rstr (r, 10, reason, sizeof reason);
    snprintf (job->type, sizeof job->type, "%s", type);
    snprintf (job->worker, sizeof job->worker, "%s", worker);
    snprintf (job->cancel_reason, sizeof job->cancel_reason, "%s", reason);
    job->state = (ty_jobstate_t) st;
    job->priority = (uint32_t) ty_broker_rint (r, 2);
    job->attempt = (uint32_t) ty_broker_rint (r, 3);
    job->max_attempts = (uint32_t) ty_broker_rint (r, 4);
    char score [48];
    ty_broker_rstr (r, 6, score, sizeof score);
    job->score = strtod (score, NULL);
    job->waiting = (uint32_t) ty_broker_rint (r, 8);
    job->cancel_requested = ty_broker_rint (r, 9) == 1;
    job->shown = 1;             /* what Redis holds of its reports is not known here */
    redisReply *spec = r->element [11];
    if (spec->type == REDIS_REPLY_STRING) {
        ty_jobrec_set_spec (job, spec->str, spec->len);
        Ty__JobSpec *js = ty__job_spec__unpack (NULL, spec->len, (const uint8_t *) spec->str);
        if (js) {
            job->timeout_ms = js->timeout_ms;
            if (ty_jobrec_set_needs (job, js) != TY_OK)
                ty_warn ("job %s: its resources could not be read back", id);
            ty__job_spec__free_unpacked (js, NULL);
        }
    }
    /* Pipelines: the step name and what parents already passed on. */
    char step [TY_BROKER_STEP_MAX + 1];
    if (ty_broker_rstr (r, 12, step, sizeof step) == 0 && step [0]
    &&  ty_jobrec_set_step (job, step) != TY_OK)
        ty_warn ("job %s: its step name could not be kept", id);
    redisReply *inputs = r->element [13];
    if (inputs->type == REDIS_REPLY_STRING && inputs->len
    &&  ty_jobkvs_unpack_add (&job->inputs, inputs->str, inputs->len) != TY_OK)
        ty_warn ("job %s: its inputs could not be read back", id);
    if (job->state == TY_JOB_QUEUED) {
        ty_queues_push (self->queues, job->type, job->id, job->score);
        counts [0]++;
    }
    else
    if (job->state == TY_JOB_RUNNING) {
        job->deadline_ms = deadline;
        if (job->timeout_ms)      /* the clock restarts: the time before is unknown */
            job->timeout_at_ms = ty_clock_mono_ms () + job->timeout_ms;
        job->accepted = 1;
        job->attached = 0;
        counts [1]++;
    }
    else
        counts [2]++;
}

/* Children lists are not stored per parent in memory form; rebuild them from
 * each PENDING job's parents. */
static void
s_link_children (ty_broker_t *self, redisReply **replies, redisReply *ids)
{
    for (size_t i = 0; i < ids->elements; i++) {
        if (!replies [i])
            continue;
        ty_jobrec_t *job = ty_jobs_find (self->jobs, ids->element [i]->str);
        if (!job || job->state != TY_JOB_PENDING)
            continue;
        char parents [4096];
        ty_broker_rstr (replies [i], 7, parents, sizeof parents);
        char *save = NULL;
        for (char *p = strtok_r (parents, ",", &save); p; p = strtok_r (NULL, ",", &save)) {
            ty_jobrec_t *parent = ty_jobs_find (self->jobs, p);
            if (parent)
                ty_jobrec_add_child (parent, job->id);
        }
    }
}

/* A RUNNING step job's metrics so far are passed to its children when it
 * succeeds; the ones it reported before the restart are in its hash
 * (metric.<key>). Few jobs run at once: one HGETALL each. TY_OK or TY_ESTORE. */
static int
s_step_metrics (ty_broker_t *self, redisReply *ids)
{
    ty_argv_t *a = &self->scratch;
    char key [128];
    for (size_t i = 0; i < ids->elements; i++) {
        ty_jobrec_t *job = ty_jobs_find (self->jobs, ids->element [i]->str);
        if (!job || !job->step || job->state != TY_JOB_RUNNING)
            continue;
        ty_argv_reset (a);
        snprintf (key, sizeof key, "%sjob:%s", self->prefix, job->id);
        ty_argv_str (a, "HGETALL");
        ty_argv_str (a, key);
        redisReply *r = ty_redis_command (self->redis, a);
        if (!r)
            return TY_ESTORE;
        for (size_t k = 0; r->type == REDIS_REPLY_ARRAY && k + 1 < r->elements; k += 2) {
            const char *f = r->element [k]->str, *v = r->element [k + 1]->str;
            if (f && v && !strncmp (f, "metric.", 7)
            &&  ty_jobkvs_set (&job->metrics, NULL, f + 7, v) != TY_OK)
                ty_warn ("job %s: metric %s not kept (out of memory)", job->id, f + 7);
        }
        freeReplyObject (r);
    }
    return TY_OK;
}

int
ty_broker_recover (ty_broker_t *self)
{
    ty_jobs_clear (self->jobs);
    ty_queues_clear (self->queues);
    int64_t epoch;
    int rc = ty_state_claim (self->state, &epoch);
    if (rc != TY_OK) {
        if (rc == TY_ESTALE)
            ty_error ("another broker claimed this Redis while we were connecting");
        return rc;
    }
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
    redisReply **replies = calloc (ids->elements + 1, sizeof *replies);
    if (!replies) {
        freeReplyObject (ids);
        return TY_ENOMEM;
    }
    int64_t deadline = ty_clock_mono_ms () + (int64_t) TY_BROKER_LIVENESS
                     * self->opts.heartbeat_ms + TY_BROKER_RECOVER_GRACE_MS;
    size_t counts [3] = { 0, 0, 0 };
    rc = TY_OK;
    for (size_t base = 0; base < ids->elements && rc == TY_OK; base += S_CHUNK) {
        size_t end = base + S_CHUNK < ids->elements ? base + S_CHUNK : ids->elements;
        for (size_t i = base; i < end && rc == TY_OK; i++) {
            ty_argv_reset (a);
            snprintf (key, sizeof key, "%sjob:%s", self->prefix, ids->element [i]->str);
            ty_argv_str (a, "HMGET");
            ty_argv_str (a, key);
            for (size_t f = 0; f < S_NFIELDS; f++)
                ty_argv_str (a, s_fields [f]);
            rc = ty_redis_append (self->redis, a);
        }
        for (size_t i = base; i < end && rc == TY_OK; i++) {
            redisReply *r = ty_redis_reply (self->redis);
            if (!r) {
                rc = TY_ESTORE;
                break;
            }
            if (r->type == REDIS_REPLY_ARRAY && r->elements == S_NFIELDS) {
                s_load_one (self, ids->element [i]->str, r, deadline, counts);
                replies [i] = r;
            }
            else
                freeReplyObject (r);
        }
    }
    if (rc == TY_OK)
        s_link_children (self, replies, ids);
    if (rc == TY_OK)
        rc = s_step_metrics (self, ids);
    for (size_t i = 0; i < ids->elements; i++)
        if (replies [i])
            freeReplyObject (replies [i]);
    free (replies);
    freeReplyObject (ids);
    if (rc != TY_OK) {
        ty_jobs_clear (self->jobs);
        ty_queues_clear (self->queues);
        return rc;
    }
    self->epoch = epoch;
    self->unattached = counts [1];
    ty_info ("rebuilt from Redis (broker epoch %lld): %zu queued, %zu running "
             "(awaiting their workers), %zu pending", (long long) epoch,
             counts [0], counts [1], counts [2]);
    /* Workers re-register with READY, naming what they hold; until then
       they have no slots here. */
    while (ty_workers_count (self->workers)) {
        ty_worker_t *w = ty_workers_at (self->workers, 0);
        Ty__Reconnect rcmsg = TY__RECONNECT__INIT;
        rcmsg.reason = "broker state rebuilt: send READY with your jobs";
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.cmd_case = TY__ENVELOPE__CMD_RECONNECT;
        env.reconnect = &rcmsg;
        ty_wire_send (self->socks [TY_OUTBOX_WORKERS], w->id, strlen (w->id), &env,
                      ZMQ_DONTWAIT);
        ty_workers_remove (self->workers, w->id);
    }
    return TY_OK;
}

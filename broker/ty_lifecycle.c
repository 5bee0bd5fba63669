/*  ty_lifecycle: the job transitions of the broker. Each one changes the
 *  job's record in memory, records the same change for Redis (job hash,
 *  queue/lease/active membership, one ty:events entry) and tells watchers;
 *  all of it reaches Redis and the peers together when the turn commits.
 *  The allowed transitions are ty_jobstate's table. */
#include "ty_broker_int.h"
#include "ty_clock.h"
#include "ty_error.h"
#include "ty_log.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- watchers and events --------------------------------------------------- */

int
ty_broker_watch_add (ty_watch_t **list, const uint8_t *route, size_t route_len)
{
    for (ty_watch_t *w = *list; w; w = w->next)
        if (w->route_len == route_len && !memcmp (w->route, route, route_len))
            return TY_OK;
    ty_watch_t *w = malloc (sizeof *w + route_len);
    if (!w)
        return TY_ENOMEM;
    w->route_len = route_len;
    memcpy (w->route, route, route_len);
    w->next = *list;
    *list = w;
    return TY_OK;
}

void
ty_broker_watch_free (ty_watch_t *w)
{
    while (w) {
        ty_watch_t *next = w->next;
        free (w);
        w = next;
    }
}

void
ty_broker_emit (ty_broker_t *self, Ty__Event *ev)
{
    ty_watch_t *list = ty_hash_get (self->watchers, ev->job_id);
    if (!list && !self->firehose)
        return;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_EVENT;
    env.event = ev;
    if (!ev->time_ms)
        ev->time_ms = (uint64_t) ty_clock_wall_ms ();
    for (ty_watch_t *w = list; w; w = w->next)
        ty_broker_to_client (self, w->route, w->route_len, &env);
    for (ty_watch_t *w = self->firehose; w; w = w->next)
        ty_broker_to_client (self, w->route, w->route_len, &env);
    if (ev->final && list)
        ty_broker_watch_free (ty_hash_del (self->watchers, ev->job_id));
}

void
ty_broker_emit_state (ty_broker_t *self, const ty_jobrec_t *job, const char *error)
{
    Ty__Event ev = TY__EVENT__INIT;
    ev.job_id = (char *) job->id;
    ev.kind = "state";
    ev.state = (char *) ty_jobstate_name (job->state);
    ev.attempt = job->attempt;
    ev.error = (char *) (error ? error : "");
    ev.final = ty_jobstate_is_terminal (job->state);
    if (job->state == TY_JOB_SUCCEEDED)
        ev.progress = 1.0;
    ty_broker_emit (self, &ev);
}

/* One ty:events entry for a transition. */
static void
s_event (ty_broker_t *self, const ty_jobrec_t *job, const char *reason)
{
    char attempt [16];
    snprintf (attempt, sizeof attempt, "%u", job->attempt);
    const char *pairs [] = {
        "job", job->id, "state", ty_jobstate_name (job->state), "attempt", attempt,
        "worker", job->worker, "reason", reason ? reason : ""
    };
    ty_state_event (self->state, 5, pairs);
}

static void
s_set_state (ty_broker_t *self, ty_jobrec_t *job, ty_jobstate_t to)
{
    if (!ty_jobstate_can_transition (job->state, to))
        ty_error ("job %s: %s -> %s is not in the lifecycle", job->id,
                  ty_jobstate_name (job->state), ty_jobstate_name (to));
    job->state = to;
}

/* ---- transitions --------------------------------------------------------------- */

void
ty_broker_job_queue (ty_broker_t *self, ty_jobrec_t *job, const char *reason)
{
    char now [24], queue [48];
    snprintf (now, sizeof now, "%" PRId64, ty_clock_wall_ms ());
    snprintf (queue, sizeof queue, "queue:%s", job->type);
    ty_worker_t *w = job->worker [0] ? ty_workers_find (self->workers, job->worker) : NULL;
    if (w)
        ty_worker_job_del (w, job->id);
    int was_running = job->state == TY_JOB_RUNNING;
    s_set_state (self, job, TY_JOB_QUEUED);
    const char *f [] = { "state", "queued_ms", "worker", "message" };
    const char *v [] = { "QUEUED", now, "", reason ? reason : "" };
    if (reason && *reason)
        job->shown = 1;
    ty_state_hset (self->state, job->id, 4, f, v, NULL);
    ty_state_zadd (self->state, queue, job->score, job->id);
    if (was_running)
        ty_state_zrem (self->state, "leases", job->id);
    s_event (self, job, reason);
    job->worker [0] = '\0';
    job->accepted = 0;
    job->attached = 0;
    ty_queues_push (self->queues, job->type, job->id, job->score);
    ty_broker_emit_state (self, job, reason);
}

void
ty_broker_job_assign (ty_broker_t *self, ty_jobrec_t *job, ty_worker_t *w)
{
    char now [24], attempt [16], queue [48];
    int64_t wall = ty_clock_wall_ms ();
    snprintf (now, sizeof now, "%" PRId64, wall);
    snprintf (queue, sizeof queue, "queue:%s", job->type);
    s_set_state (self, job, TY_JOB_RUNNING);
    job->attempt++;
    snprintf (attempt, sizeof attempt, "%u", job->attempt);
    snprintf (job->worker, sizeof job->worker, "%s", w->id);
    job->deadline_ms = ty_clock_mono_ms () + (int64_t) TY_BROKER_ACCEPT_IVLS * w->heartbeat_ms;
    job->accepted = 0;
    job->attached = 1;
    job->timed_out = 0;
    job->timeout_at_ms = job->timeout_ms ? ty_clock_mono_ms () + job->timeout_ms : 0;
    ty_worker_job_add (w, job->id);

    /* progress, phase and message are reset only when something may be in
       them (an earlier attempt's reports, a requeue's reason): on a job's
       first run they are absent, which reads as 0 and "" (three fields of
       Redis work fewer per job). */
    const char *f [] = { "state", "attempt", "worker", "started_ms", "progress", "phase", "message" };
    const char *v [] = { "RUNNING", attempt, w->id, now, "0", "", "" };
    ty_state_hset (self->state, job->id, job->shown ? 7 : 4, f, v, NULL);
    job->shown = 0;
    ty_state_zrem (self->state, queue, job->id);
    ty_state_zadd (self->state, "leases",
                   (double) (wall + (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms), job->id);
    s_event (self, job, "");

    Ty__Assign as = TY__ASSIGN__INIT;
    as.job_id = job->id;
    as.attempt = job->attempt;
    as.spec.data = job->spec_pb;
    as.spec.len = job->spec_len;
    Ty__Output **items = NULL, *store = NULL;
    if (job->inputs.n) {
        if (ty_jobkvs_view (&job->inputs, &items, &store) == TY_OK) {
            as.inputs = items;
            as.n_inputs = job->inputs.n;
        }
        else
            ty_error ("job %s: its inputs could not be attached (out of memory)", job->id);
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_ASSIGN;
    env.assign = &as;
    ty_broker_to_worker (self, w->id, &env);
    free (items);
    free (store);
    ty_broker_emit_state (self, job, "");
}

/* What a succeeded step job hands its children: its outputs and its
 * latest metrics, keyed "<step>.<key>". TY_OK (empty for a job without a
 * step) or TY_ENOMEM. */
static int
s_passed (const ty_jobrec_t *job, Ty__Output **outputs, size_t noutputs, ty_jobkvs_t *out)
{
    if (!job->step)
        return TY_OK;
    int rc = TY_OK;
    for (size_t i = 0; i < noutputs && rc == TY_OK; i++)
        rc = ty_jobkvs_set (out, job->step, outputs [i]->key, outputs [i]->value);
    for (size_t i = 0; i < job->metrics.n && rc == TY_OK; i++)
        rc = ty_jobkvs_set (out, job->step, job->metrics.v [i].key, job->metrics.v [i].value);
    return rc;
}

/* Adds what a parent passed on to a child's inputs (memory) and records the
 * child's whole input list (Redis field "inputs"). */
static void
s_pass_to (ty_broker_t *self, ty_jobrec_t *child, const ty_jobkvs_t *passed)
{
    int rc = TY_OK;
    for (size_t i = 0; i < passed->n && rc == TY_OK; i++)
        rc = ty_jobkvs_set (&child->inputs, NULL, passed->v [i].key, passed->v [i].value);
    uint8_t *pb = NULL;
    size_t len = 0;
    if (rc == TY_OK)
        rc = ty_jobkvs_pack (&child->inputs, &pb, &len);
    if (rc != TY_OK) {
        ty_error ("job %s: inputs from its parent lost (out of memory)", child->id);
        return;
    }
    const char *f [] = { "inputs" };
    const char *v [] = { (const char *) pb };
    ty_state_hset (self->state, child->id, 1, f, v, &len);
    free (pb);
}

/* Ends one job; appends its children to walk (ids) when the walk cascades.
 * passed: what a succeeded step job hands its children (kept for this turn). */
static void
s_end_one (ty_broker_t *self, ty_jobrec_t *job, ty_jobstate_t state, const char *reason,
           Ty__Output **outputs, size_t noutputs, const ty_jobkvs_t *passed)
{
    char now [24], queue [48];
    snprintf (now, sizeof now, "%" PRId64, ty_clock_wall_ms ());
    snprintf (queue, sizeof queue, "queue:%s", job->type);
    ty_jobstate_t from = job->state;
    if (from == TY_JOB_RUNNING) {
        ty_worker_t *w = ty_workers_find (self->workers, job->worker);
        if (w)
            ty_worker_job_del (w, job->id);
    }
    s_set_state (self, job, state);

    /* state, finished_ms, error, progress, result and out.<key> in one HSET */
    size_t max = 4 + noutputs;
    const char **f = calloc (max, sizeof *f);
    const char **v = calloc (max, sizeof *v);
    char **owned = calloc (max, sizeof *owned);
    if (!f || !v || !owned) {
        free (f); free (v); free (owned);
        f = NULL;
    }
    const char *fs [] = { "state", "finished_ms", "error" };
    const char *vs [] = { ty_jobstate_name (state), now, reason ? reason : "" };
    if (f) {
        /* error only when there is one: a job gets it once, when it ends */
        size_t n = 0;
        for (size_t k = 0; k < 3; k++)
            if (k < 2 || *vs [k]) {
                f [n] = fs [k];
                v [n++] = vs [k];
            }
        if (state == TY_JOB_SUCCEEDED) {
            f [n] = "progress";
            v [n++] = "1";
        }
        for (size_t i = 0; i < noutputs; i++) {
            if (!strcmp (outputs [i]->key, "summary")) {
                f [n] = "result";
                v [n++] = outputs [i]->value;
                continue;
            }
            size_t len = strlen (outputs [i]->key) + 5;
            owned [i] = malloc (len);
            if (!owned [i])
                continue;
            snprintf (owned [i], len, "out.%s", outputs [i]->key);
            f [n] = owned [i];
            v [n++] = outputs [i]->value;
        }
        ty_state_hset (self->state, job->id, n, f, v, NULL);
        for (size_t i = 0; i < max; i++)
            free (owned [i]);
        free (f);
        free (v);
        free (owned);
    }
    else
        ty_state_hset (self->state, job->id, 3, fs, vs, NULL);
    if (from == TY_JOB_RUNNING)
        ty_state_zrem (self->state, "leases", job->id);
    if (from == TY_JOB_QUEUED)
        ty_state_zrem (self->state, queue, job->id);
    ty_state_srem (self->state, "active", job->id);
    s_event (self, job, reason);
    ty_broker_emit_state (self, job, reason);
    uint8_t *pb = NULL;
    size_t pb_len = 0;
    if (passed && passed->n && ty_jobkvs_pack (passed, &pb, &pb_len) != TY_OK)
        ty_error ("job %s: outputs for children submitted this turn lost", job->id);
    ty_ended_t *e = malloc (sizeof *e + pb_len);
    if (e) {
        e->state = state;
        snprintf (e->error, sizeof e->error, "%.255s", reason ? reason : "");
        e->passed_len = pb_len;
        if (pb_len)
            memcpy (e->passed, pb, pb_len);
        free (ty_hash_get (self->turn_ended, job->id));
        if (ty_hash_put (self->turn_ended, job->id, e) != TY_OK)
            free (e);
    }
    free (pb);
    /* A success is the common case and Redis (ty:events) has it: logging it
       at info level cost a formatted write per job on the hot path. */
    if (state == TY_JOB_SUCCEEDED)
        ty_debug ("job %s SUCCEEDED", job->id);
    else
        ty_info ("job %s %s%s%s", job->id, ty_jobstate_name (state),
                 reason && *reason ? ": " : "", reason ? reason : "");
}

void
ty_broker_job_finish (ty_broker_t *self, ty_jobrec_t *job, ty_jobstate_t state,
                      const char *reason, Ty__Output **outputs, size_t noutputs)
{
    /* An explicit stack, not recursion: a chain of thousands of jobs
       cancelled by one failure must not overflow the C stack. */
    typedef struct { char id [TY_ID_LEN + 1]; char why [512]; } s_todo;
    s_todo *todo = NULL;
    size_t ntodo = 0, ctodo = 0;

    ty_jobkvs_t passed = { 0 };
    if (state == TY_JOB_SUCCEEDED && s_passed (job, outputs, noutputs, &passed) != TY_OK)
        ty_error ("job %s: outputs for its children lost (out of memory)", job->id);
    s_end_one (self, job, state, reason, outputs, noutputs, &passed);
    if (state == TY_JOB_SUCCEEDED) {
        for (size_t i = 0; i < job->nchildren; i++) {
            ty_jobrec_t *c = ty_jobs_find (self->jobs, job->children [i]);
            if (!c || c->state != TY_JOB_PENDING)
                continue;
            if (passed.n)
                s_pass_to (self, c, &passed);
            if (c->waiting > 0)
                c->waiting--;
            char waiting [16];
            snprintf (waiting, sizeof waiting, "%u", c->waiting);
            const char *f [] = { "waiting" };
            const char *v [] = { waiting };
            ty_state_hset (self->state, c->id, 1, f, v, NULL);
            if (c->waiting == 0)
                ty_broker_job_queue (self, c, "");
        }
        ty_jobkvs_clear (&passed);
        ty_jobs_remove (self->jobs, job->id);
        return;
    }
    /* Failed or cancelled: every waiting descendant is cancelled, saying why. */
    for (size_t i = 0; i < job->nchildren; i++) {
        if (ntodo == ctodo) {
            ctodo = ctodo ? ctodo * 2 : 16;
            s_todo *t = realloc (todo, ctodo * sizeof *t);
            if (!t)
                break;
            todo = t;
        }
        snprintf (todo [ntodo].id, sizeof todo [ntodo].id, "%s", job->children [i]);
        snprintf (todo [ntodo].why, sizeof todo [ntodo].why, "parent %s %s%s%.400s",
                  job->id, ty_jobstate_name (state), reason && *reason ? ": " : "",
                  reason ? reason : "");
        ntodo++;
    }
    ty_jobs_remove (self->jobs, job->id);
    while (ntodo > 0) {
        s_todo t = todo [--ntodo];
        ty_jobrec_t *c = ty_jobs_find (self->jobs, t.id);
        if (!c || c->state != TY_JOB_PENDING)
            continue;
        s_end_one (self, c, TY_JOB_CANCELLED, t.why, NULL, 0, NULL);
        for (size_t i = 0; i < c->nchildren; i++) {
            if (ntodo == ctodo) {
                ctodo = ctodo ? ctodo * 2 : 16;
                s_todo *nt = realloc (todo, ctodo * sizeof *nt);
                if (!nt)
                    break;
                todo = nt;
            }
            snprintf (todo [ntodo].id, sizeof todo [ntodo].id, "%s", c->children [i]);
            snprintf (todo [ntodo].why, sizeof todo [ntodo].why, "parent %s CANCELLED: %.400s",
                      c->id, t.why);
            ntodo++;
        }
        ty_jobs_remove (self->jobs, c->id);
    }
    free (todo);
}

void
ty_broker_job_requeue (ty_broker_t *self, ty_jobrec_t *job, int charge, const char *reason)
{
    ty_info ("job %s attempt %u on %s: %s%s", job->id, job->attempt, job->worker,
             reason, charge ? "" : " (not charged)");
    char why [768];
    if (job->timed_out) {
        snprintf (why, sizeof why, "timed out after %u ms (%s)", job->timeout_ms, reason);
        ty_broker_job_finish (self, job, TY_JOB_FAILED, why, NULL, 0);
        return;
    }
    if (job->cancel_requested) {
        snprintf (why, sizeof why, "%s (%s)", job->cancel_reason, reason);
        ty_broker_job_finish (self, job, TY_JOB_CANCELLED, why, NULL, 0);
        return;
    }
    if (charge && job->attempt >= job->max_attempts) {
        snprintf (why, sizeof why, "gave up after %u attempts: %s", job->attempt, reason);
        ty_broker_job_finish (self, job, TY_JOB_FAILED, why, NULL, 0);
        return;
    }
    if (!charge) {
        /* A hand-back is not a failure: give the attempt back to the budget. */
        job->max_attempts++;
        char max [16];
        snprintf (max, sizeof max, "%u", job->max_attempts);
        const char *f [] = { "max_attempts" };
        const char *v [] = { max };
        ty_state_hset (self->state, job->id, 1, f, v, NULL);
    }
    ty_broker_job_queue (self, job, reason);
}

void
ty_broker_worker_lost (ty_broker_t *self, ty_worker_t *w, const char *why, int charge)
{
    char reason [256];
    snprintf (reason, sizeof reason, "worker %s lost: %s", w->id, why);
    if (w->njobs)
        ty_warn ("%s (%zu jobs)", reason, w->njobs);
    else
        ty_info ("%s", reason);
    while (w->njobs > 0) {
        ty_jobrec_t *job = ty_jobs_find (self->jobs, w->jobs [0]);
        if (job && job->state == TY_JOB_RUNNING && !strcmp (job->worker, w->id))
            ty_broker_job_requeue (self, job, charge, reason);
        else
            ty_worker_job_del (w, w->jobs [0]);
    }
    char key [160];
    snprintf (key, sizeof key, "%sworker:%s", self->prefix, w->id);
    ty_argv_t *a = ty_state_raw (self->state);
    ty_argv_str (a, "DEL");
    ty_argv_str (a, key);
    ty_state_zrem (self->state, "workers", w->id);
    ty_workers_remove (self->workers, w->id);
}

void
ty_broker_job_timeout (ty_broker_t *self, ty_jobrec_t *job)
{
    if (job->timed_out) {
        /* Asked to stop and still running after the grace: end it here; its
           late result will be fenced because the job is no longer RUNNING. */
        char why [128];
        snprintf (why, sizeof why, "timed out after %u ms; the worker did not stop it",
                  job->timeout_ms);
        ty_broker_job_finish (self, job, TY_JOB_FAILED, why, NULL, 0);
        return;
    }
    job->timed_out = 1;
    job->cancel_requested = 1;
    job->shown = 1;
    snprintf (job->cancel_reason, sizeof job->cancel_reason, "timed out after %u ms",
              job->timeout_ms);
    const char *f [] = { "cancel_requested", "cancel_reason", "message" };
    const char *v [] = { "1", job->cancel_reason, "timed out: stopping" };
    ty_state_hset (self->state, job->id, 3, f, v, NULL);
    Ty__CancelJob cj = TY__CANCEL_JOB__INIT;
    cj.job_id = job->id;
    cj.attempt = job->attempt;
    cj.reason = job->cancel_reason;
    Ty__Envelope out = TY__ENVELOPE__INIT;
    out.cmd_case = TY__ENVELOPE__CMD_CANCEL_JOB;
    out.cancel_job = &cj;
    ty_broker_to_worker (self, job->worker, &out);
    /* grace: three heartbeats for the job code to notice */
    ty_worker_t *w = ty_workers_find (self->workers, job->worker);
    job->timeout_at_ms = ty_clock_mono_ms ()
                       + (int64_t) TY_BROKER_LIVENESS * (w ? w->heartbeat_ms : self->opts.heartbeat_ms);
}

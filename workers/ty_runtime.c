/*  ty_runtime: see ty_runtime.h.
 *
 *  Threads: the runtime thread (the caller of ty_runtime_run) owns the
 *  DEALER to the broker and an inproc PULL; each job thread owns a PUSH to
 *  that PULL and sends it packed Envelopes (progress, log, result). Shared
 *  between the two sides is only each job's cancel flag and done flag
 *  (atomics); everything else crosses as messages. */
#include "ty_runtime.h"
#include "ty_backoff.h"
#include "ty_clock.h"
#include "ty_error.h"
#include "ty_id.h"
#include "ty_log.h"
#include "ty_subst.h"
#include "ty_when.h"
#include "ty_wire.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_PIPE_EP       "inproc://ty-runtime-jobs"
#define S_MONITOR_EP    "inproc://ty-runtime-monitor"
#define S_LIVENESS      3       /* heartbeats missed = broker dead */
#define S_ZMTP_LIVENESS 10      /* ZeroMQ pings unanswered = connection dead */
#define S_ACCEPT_DELAY_MS 2     /* a result sent within this says "accepted" itself */
#define S_READY_RETRY_MS 5      /* a READY that found no connection goes again after this */
#define S_METRICS_MAX   64      /* distinct metric keys per job */
#define S_OUTPUTS_MAX   TY_RUNTIME_OUTPUTS_MAX
#define S_ACK_WAIT_MS   2000    /* on exit: wait this long for result acks */
#define S_WHEN_TRACE    256     /* a condition with its values, for the job's log */
#define S_RETRY_BACKOFF_MS 1000 /* JobSpec.retry_backoff_ms = 0 */
#define S_RETRY_SHIFT_MAX  10   /* the backoff doubles at most this often (x1024) */
#define S_RETRY_POLL_MS    50   /* a backoff wait looks at the cancel flag this often */

typedef enum { S_FREE = 0, S_RUNNING, S_DONE } s_slot_state;

struct _ty_job_t {
    ty_runtime_t *rt;
    /* the slot's thread: started once, runs one job per `go` */
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    int         go;                 /* a job is waiting to run */
    int         quit;
    int         has_thread;
    char        id [TY_ID_LEN + 1];
    uint32_t    attempt;
    Ty__JobSpec *spec;
    unsigned    try_index;          /* 0, then 1.. for JobSpec.retries */
    Ty__Output **inputs;            /* Assign.inputs, deep-copied; owned */
    size_t      ninputs;
    pthread_t   thread;
    atomic_int  cancelled;
    atomic_int  finished;           /* the thread has sent its result */
    s_slot_state state;             /* runtime thread only */
    int64_t     accept_due_ms;      /* > 0: ACCEPT not sent yet (runtime thread only) */
    uint8_t    *result;             /* packed Envelope (RESULT), until acked */
    size_t      result_len;
    int64_t     result_sent_ms;
    /* job thread only: */
    void       *push;
    int64_t     last_progress_ms;
    int         progress_pending;
    double      fraction;
    char        phase [64];
    char        message [256];
    char       *metric_keys [S_METRICS_MAX];
    double      metric_values [S_METRICS_MAX];
    size_t      nmetrics;
    int         metrics_dirty;
    char       *out_keys [S_OUTPUTS_MAX];
    char       *out_values [S_OUTPUTS_MAX];
    size_t      noutputs;
    uint8_t    *data;
    size_t      data_len;
    char        error [512];
};

struct _ty_runtime_t {
    ty_runtime_opts_t opts;
    char     worker_id [65];
    char     type [32];
    char     host [128];
    void    *zctx;
    void    *broker;
    void    *pipe;
    void    *monitor;           /* the broker socket's handshakes; NULL if none */
    ty_job_t *slots;
    unsigned  capacity;
    ty_backoff_t backoff;
    int64_t  broker_seen_ms;
    int64_t  next_hb_ms;
    int64_t  next_register_ms;  /* while the broker is silent: when to send READY again */
    int64_t  ready_sent_ms;
    int      ready_unsent;      /* the last READY could not be sent: send it again soon */
    volatile sig_atomic_t stop;     /* 1: drain, 2: hand back now */
    int64_t  drain_deadline_ms;
};

static ty_runtime_t *s_signal_target;

/* =========================================================================
 *  job side
 * ========================================================================= */

static void
s_job_send (ty_job_t *job, Ty__Envelope *env)
{
    if (!job->push)
        return;
    int rc = ty_wire_send (job->push, NULL, 0, env, 0);
    if (rc != TY_OK)
        ty_warn ("job %s: cannot reach the runtime: %s", job->id, ty_strerror (rc));
}

const Ty__JobSpec *ty_job_spec (ty_job_t *job)  { return job->spec; }

const Ty__Output *const *
ty_job_inputs (ty_job_t *job, size_t *n)
{
    if (n)
        *n = job->ninputs;
    return (const Ty__Output *const *) job->inputs;
}

const char *
ty_job_input (ty_job_t *job, const char *key)
{
    return key ? ty_subst_lookup ((const Ty__Output *const *) job->inputs, job->ninputs,
                                  key, strlen (key)) : NULL;
}
const char *ty_job_id (ty_job_t *job)           { return job->id; }
unsigned ty_job_try (ty_job_t *job)             { return job->try_index; }
unsigned ty_job_attempt (ty_job_t *job)         { return job->attempt; }

int
ty_job_cancelled (ty_job_t *job)
{
    return atomic_load (&job->cancelled);
}

static void
s_progress_flush (ty_job_t *job)
{
    Ty__Progress p = TY__PROGRESS__INIT;
    Ty__Metric mv [S_METRICS_MAX];
    Ty__Metric *mp [S_METRICS_MAX];
    p.job_id = job->id;
    p.attempt = job->attempt;
    p.fraction = job->fraction;
    p.phase = job->phase;
    p.message = job->message;
    if (job->metrics_dirty) {
        for (size_t i = 0; i < job->nmetrics; i++) {
            ty__metric__init (&mv [i]);
            mv [i].key = job->metric_keys [i];
            mv [i].value = job->metric_values [i];
            mp [i] = &mv [i];
        }
        p.metrics = mp;
        p.n_metrics = job->nmetrics;
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_PROGRESS;
    env.progress = &p;
    s_job_send (job, &env);
    job->progress_pending = 0;
    job->metrics_dirty = 0;
    job->last_progress_ms = ty_clock_mono_ms ();
}

void
ty_job_progress (ty_job_t *job, double fraction, const char *phase, const char *fmt, ...)
{
    if (fraction >= 0)
        job->fraction = fraction > 1 ? 1 : fraction;
    int new_phase = phase && strncmp (job->phase, phase, sizeof job->phase - 1);
    if (phase)
        snprintf (job->phase, sizeof job->phase, "%s", phase);
    if (fmt) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (job->message, sizeof job->message, fmt, ap);
        va_end (ap);
    }
    job->progress_pending = 1;
    /* A new phase goes out at once: it often precedes a long blocking step,
       and a rate-limited one would only show when the step is over. */
    if (new_phase || ty_clock_mono_ms () - job->last_progress_ms >= TY_RUNTIME_PROGRESS_MS)
        s_progress_flush (job);
}

void
ty_job_progress_flush (ty_job_t *job)
{
    if (job->progress_pending || job->metrics_dirty)
        s_progress_flush (job);
}

void
ty_job_metric (ty_job_t *job, const char *key, double value)
{
    for (size_t i = 0; i < job->nmetrics; i++)
        if (!strcmp (job->metric_keys [i], key)) {
            job->metric_values [i] = value;
            job->metrics_dirty = 1;
            job->progress_pending = 1;
            return;
        }
    if (job->nmetrics == S_METRICS_MAX)
        return;
    char *k = strdup (key);
    if (!k)
        return;
    job->metric_keys [job->nmetrics] = k;
    job->metric_values [job->nmetrics++] = value;
    job->metrics_dirty = 1;
    job->progress_pending = 1;
}

void
ty_job_log (ty_job_t *job, const char *fmt, ...)
{
    char line [2048];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (line, sizeof line, fmt, ap);
    va_end (ap);
    char *lines [1] = { line };
    Ty__LogReq l = TY__LOG_REQ__INIT;
    l.job_id = job->id;
    l.attempt = job->attempt;
    l.lines = lines;
    l.n_lines = 1;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_LOG;
    env.log = &l;
    s_job_send (job, &env);
}

void
ty_job_output (ty_job_t *job, const char *key, const char *value)
{
    for (size_t i = 0; i < job->noutputs; i++)
        if (!strcmp (job->out_keys [i], key)) {
            char *v = strdup (value);
            if (v) {
                free (job->out_values [i]);
                job->out_values [i] = v;
            }
            return;
        }
    if (job->noutputs == S_OUTPUTS_MAX)
        return;
    char *k = strdup (key), *v = strdup (value);
    if (!k || !v) {
        free (k);
        free (v);
        return;
    }
    job->out_keys [job->noutputs] = k;
    job->out_values [job->noutputs++] = v;
}

void
ty_job_data (ty_job_t *job, const void *data, size_t len)
{
    uint8_t *copy = len ? malloc (len) : NULL;
    if (len && !copy)
        return;
    if (len)
        memcpy (copy, data, len);
    free (job->data);
    job->data = copy;
    job->data_len = len;
}

ty_job_rc_t
ty_job_fail (ty_job_t *job, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (job->error, sizeof job->error, fmt, ap);
    va_end (ap);
    return TY_JOB_ERROR;
}

static void
s_inputs_free (Ty__Output **inputs, size_t n)
{
    for (size_t i = 0; inputs && i < n; i++) {
        free (inputs [i]->key);
        free (inputs [i]->value);
        free (inputs [i]);
    }
    free (inputs);
}

/* A deep copy of Assign.inputs: the ASSIGN message is freed as soon as the
 * runtime thread has read it, the job thread reads the inputs later. */
static int
s_inputs_copy (Ty__Output *const *src, size_t n, Ty__Output ***out)
{
    *out = NULL;
    if (n == 0)
        return TY_OK;
    Ty__Output **copy = calloc (n, sizeof *copy);
    if (!copy)
        return TY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        copy [i] = malloc (sizeof *copy [i]);
        if (copy [i]) {
            ty__output__init (copy [i]);
            copy [i]->key = strdup (src [i]->key ? src [i]->key : "");
            copy [i]->value = strdup (src [i]->value ? src [i]->value : "");
        }
        if (!copy [i] || !copy [i]->key || !copy [i]->value) {
            if (copy [i]) {
                free (copy [i]->key);
                free (copy [i]->value);
                free (copy [i]);
            }
            s_inputs_free (copy, i);
            return TY_ENOMEM;
        }
    }
    *out = copy;
    return TY_OK;
}

static void
s_job_clear (ty_job_t *job)
{
    for (size_t i = 0; i < job->nmetrics; i++)
        free (job->metric_keys [i]);
    for (size_t i = 0; i < job->noutputs; i++) {
        free (job->out_keys [i]);
        free (job->out_values [i]);
    }
    free (job->data);
    free (job->result);
    s_inputs_free (job->inputs, job->ninputs);
    job->inputs = NULL;
    job->ninputs = 0;
    if (job->spec)
        ty__job_spec__free_unpacked (job->spec, NULL);
    job->spec = NULL;
    job->result = NULL;
    job->result_len = 0;
    job->result_sent_ms = 0;
    job->accept_due_ms = 0;
    job->data = NULL;
    job->data_len = 0;
    job->nmetrics = job->noutputs = 0;
    job->metrics_dirty = job->progress_pending = 0;
    job->last_progress_ms = 0;
    job->fraction = 0;
    job->phase [0] = job->message [0] = job->error [0] = '\0';
    job->id [0] = '\0';
    job->attempt = 0;
    job->state = S_FREE;
}

static void s_job_run (ty_job_t *job);

/* A slot's thread: waits for a job, runs it, waits again. Kept for the
 * worker's life, so a job costs no thread or socket creation. */
static void *
s_slot_main (void *arg)
{
    ty_job_t *job = arg;
    ty_runtime_t *rt = job->rt;
    job->push = zmq_socket (rt->zctx, ZMQ_PUSH);
    if (job->push) {
        int zero = 0;
        zmq_setsockopt (job->push, ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_connect (job->push, S_PIPE_EP) != 0) {
            zmq_close (job->push);
            job->push = NULL;
        }
    }
    for (;;) {
        pthread_mutex_lock (&job->lock);
        while (!job->go && !job->quit)
            pthread_cond_wait (&job->cond, &job->lock);
        int quit = job->quit && !job->go;
        job->go = 0;
        pthread_mutex_unlock (&job->lock);
        if (quit)
            break;
        s_job_run (job);
    }
    if (job->push)
        zmq_close (job->push);
    job->push = NULL;
    return NULL;
}

/* Ends the job as SUCCEEDED without running it: outputs skipped=true and
 * the reason. Returns 0 (the job is over). */
static int
s_job_skip (ty_job_t *job, ty_job_rc_t *rc, const char *reason)
{
    ty_job_output (job, "skipped", "true");
    ty_job_output (job, "reason", reason);
    ty_job_progress (job, 1, "skipped", "%s", reason);
    *rc = TY_JOB_OK;
    return 0;
}

/* The pipeline step before the job code: ${step.key} references of the
 * spec replaced by the inputs, then the `when` condition; a job with a
 * skipped parent is skipped without either. Returns 1 to run
 * the job function; 0 when the job is over already (*rc: skipped, or failed
 * with the reason in job->error). */
static int
s_job_prepare (ty_job_t *job, ty_job_rc_t *rc)
{
    const Ty__Output *const *in = (const Ty__Output *const *) job->inputs;
    char err [TY_SUBST_ERR_MAX];
    char reason [TY_SUBST_ERR_MAX];
    /* A skipped parent skips its children too: a step after `convert` that
       did not run must not run on what convert would have made (nor fail on
       references to outputs it never had). */
    for (size_t i = 0; i < job->ninputs; i++) {
        const char *key = in [i]->key, *dot = strrchr (key, '.');
        if (dot && !strcmp (dot + 1, "skipped") && !strcmp (in [i]->value, "true")) {
            snprintf (reason, sizeof reason, "parent %.*s was skipped", (int) (dot - key), key);
            return s_job_skip (job, rc, reason);
        }
    }
    /* The condition is evaluated from its own text, not substituted with the
       rest: a value with spaces or operators ("gate FAIL") must stay one
       operand. The job code never reads `when`, so it keeps its text. */
    char *when = job->spec->when;
    job->spec->when = (char *) protobuf_c_empty_string;
    int src = ty_subst_message (&job->spec->base, in, job->ninputs, err, sizeof err);
    job->spec->when = when;
    if (src != TY_OK) {
        *rc = ty_job_fail (job, "%s", err);
        return 0;
    }
    if (!when || !*when)
        return 1;
    int truth = 0;
    char trace [S_WHEN_TRACE];
    if (ty_when_eval (when, in, job->ninputs, &truth, trace, sizeof trace,
                      err, sizeof err) != TY_OK) {
        *rc = ty_job_fail (job, "when: %s", err);
        return 0;
    }
    ty_job_log (job, "when: %s -> %s (%s)", when, truth ? "true" : "false", trace);
    if (truth)
        return 1;
    snprintf (reason, sizeof reason, "when: %s was false", when);
    return s_job_skip (job, rc, reason);
}

/* Forgets a failed try's result (outputs, data, error) before the next. */
static void
s_job_result_clear (ty_job_t *job)
{
    for (size_t i = 0; i < job->noutputs; i++) {
        free (job->out_keys [i]);
        free (job->out_values [i]);
    }
    job->noutputs = 0;
    free (job->data);
    job->data = NULL;
    job->data_len = 0;
    job->error [0] = '\0';
}

/* Sleeps ms, waking every S_RETRY_POLL_MS to honour a cancel. 1 if cancelled. */
static int
s_job_wait (ty_job_t *job, int64_t ms)
{
    int64_t end = ty_clock_mono_ms () + ms;
    for (int64_t now = ty_clock_mono_ms (); now < end; now = ty_clock_mono_ms ()) {
        if (ty_job_cancelled (job))
            return 1;
        int64_t step = end - now < S_RETRY_POLL_MS ? end - now : S_RETRY_POLL_MS;
        struct timespec ts = { (time_t) (step / 1000), (long) (step % 1000) * 1000000L };
        nanosleep (&ts, NULL);
    }
    return ty_job_cancelled (job);
}

/* The job function, tried again after a failure while JobSpec.retries allows,
 * with a doubling backoff. */
static ty_job_rc_t
s_job_tries (ty_job_t *job)
{
    ty_runtime_t *rt = job->rt;
    unsigned retries = job->spec->retries;
    int64_t backoff = job->spec->retry_backoff_ms ? job->spec->retry_backoff_ms
                                                 : S_RETRY_BACKOFF_MS;
    for (job->try_index = 0;; job->try_index++) {
        ty_job_rc_t rc = rt->opts.fn (job, rt->opts.arg);
        if (rc != TY_JOB_ERROR || job->try_index >= retries || ty_job_cancelled (job))
            return rc;
        int64_t wait = backoff << (job->try_index < S_RETRY_SHIFT_MAX ? job->try_index
                                                                      : S_RETRY_SHIFT_MAX);
        ty_job_log (job, "try %u of %u failed: %s; again in %lld ms", job->try_index + 1,
                    retries + 1, job->error, (long long) wait);
        s_job_result_clear (job);
        if (s_job_wait (job, wait))
            return TY_JOB_CANCELED;
    }
}

static void
s_job_run (ty_job_t *job)
{
    ty_job_rc_t rc = TY_JOB_OK;
    if (s_job_prepare (job, &rc))
        rc = s_job_tries (job);
    if (job->progress_pending)
        s_progress_flush (job);

    Ty__Result res = TY__RESULT__INIT;
    res.job_id = job->id;
    res.attempt = job->attempt;
    switch (rc) {
    case TY_JOB_OK:       res.outcome = TY__OUTCOME__OUTCOME_SUCCEEDED; break;
    case TY_JOB_CANCELED: res.outcome = TY__OUTCOME__OUTCOME_CANCELLED;
                          if (!job->error [0])
                              snprintf (job->error, sizeof job->error, "cancelled");
                          break;
    default:              res.outcome = TY__OUTCOME__OUTCOME_FAILED;
                          if (!job->error [0])
                              snprintf (job->error, sizeof job->error,
                                        "the job failed without a reason");
                          break;
    }
    res.error = job->error;
    Ty__Output ov [S_OUTPUTS_MAX];
    Ty__Output *op [S_OUTPUTS_MAX];
    for (size_t i = 0; i < job->noutputs; i++) {
        ty__output__init (&ov [i]);
        ov [i].key = job->out_keys [i];
        ov [i].value = job->out_values [i];
        op [i] = &ov [i];
    }
    res.outputs = op;
    res.n_outputs = job->noutputs;
    res.data.data = job->data;
    res.data.len = job->data_len;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_RESULT;
    env.result = &res;
    atomic_store (&job->finished, 1);
    s_job_send (job, &env);
}

/* =========================================================================
 *  runtime side
 * ========================================================================= */

static int
s_send (ty_runtime_t *self, Ty__Envelope *env)
{
    if (!self->broker)
        return TY_ECONNECT;
    return ty_wire_send (self->broker, NULL, 0, env, ZMQ_DONTWAIT);
}

static size_t
s_held (ty_runtime_t *self, Ty__Held *hv, Ty__Held **hp)
{
    size_t n = 0;
    for (unsigned i = 0; i < self->capacity; i++) {
        ty_job_t *job = &self->slots [i];
        if (job->state == S_FREE)
            continue;
        ty__held__init (&hv [n]);
        hv [n].job_id = job->id;
        hv [n].attempt = job->attempt;
        hp [n] = &hv [n];
        n++;
    }
    return n;
}

static void
s_send_ready (ty_runtime_t *self)
{
    Ty__Held *hv = calloc (self->capacity, sizeof *hv);
    Ty__Held **hp = calloc (self->capacity, sizeof *hp);
    if (!hv || !hp) {
        free (hv);
        free (hp);
        return;
    }
    Ty__Ready r = TY__READY__INIT;
    r.worker_id = self->worker_id;
    r.type = self->type;
    r.capacity = self->capacity;
    r.host = self->host;
    r.pid = (uint32_t) getpid ();
    r.heartbeat_ms = (uint32_t) self->opts.heartbeat_ms;
    r.n_held = s_held (self, hv, hp);
    r.held = hp;
    size_t nres = self->opts.nresources;
    Ty__Ready__ResourcesEntry *rv = nres ? calloc (nres, sizeof *rv) : NULL;
    Ty__Ready__ResourcesEntry **rp = nres ? calloc (nres, sizeof *rp) : NULL;
    char (*keys) [TY_RUNTIME_RESOURCE_KEY_MAX + 1] = nres ? calloc (nres, sizeof *keys) : NULL;
    if (nres && (!rv || !rp || !keys)) {
        free (rv); free (rp); free (keys); free (hv); free (hp);
        return;
    }
    for (size_t i = 0; i < nres; i++) {
        /* "key=value", checked by whoever built opts (ty_worker_main) */
        const char *kv = self->opts.resources [i];
        const char *eq = strchr (kv, '=');
        size_t klen = eq ? (size_t) (eq - kv) : strlen (kv);
        if (klen > TY_RUNTIME_RESOURCE_KEY_MAX)
            klen = TY_RUNTIME_RESOURCE_KEY_MAX;
        memcpy (keys [i], kv, klen);
        ty__ready__resources_entry__init (&rv [i]);
        rv [i].key = keys [i];
        rv [i].value = (char *) (eq ? eq + 1 : "");
        rp [i] = &rv [i];
    }
    r.resources = rp;
    r.n_resources = nres;
    self->ready_sent_ms = ty_clock_mono_ms ();
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_READY;
    env.ready = &r;
    int rc = s_send (self, &env);
    /* With ZMQ_IMMEDIATE a send fails until the connection is up (at start,
       after a reconnect): the main loop tries again in a few ms. */
    self->ready_unsent = rc != TY_OK;
    if (rc != TY_OK)
        ty_debug ("READY not sent: %s", ty_strerror (rc));
    free (rv);
    free (rp);
    free (keys);
    free (hv);
    free (hp);
    /* Results not yet acknowledged go again: the new broker needs them. */
    for (unsigned i = 0; i < self->capacity; i++)
        self->slots [i].result_sent_ms = 0;
}

static void
s_send_heartbeat (ty_runtime_t *self)
{
    Ty__Held *hv = calloc (self->capacity, sizeof *hv);
    Ty__Held **hp = calloc (self->capacity, sizeof *hp);
    if (!hv || !hp) {
        free (hv);
        free (hp);
        return;
    }
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    hb.n_held = s_held (self, hv, hp);
    hb.held = hp;
    hb.draining = self->stop != 0;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_HEARTBEAT;
    env.heartbeat = &hb;
    s_send (self, &env);
    free (hv);
    free (hp);
}

static int
s_connect (ty_runtime_t *self)
{
    if (self->broker)
        zmq_close (self->broker);
    self->broker = zmq_socket (self->zctx, ZMQ_DEALER);
    if (!self->broker)
        return TY_ECONNECT;
    int zero = 0, ivl = 100, max = 2000;
    zmq_setsockopt (self->broker, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (self->broker, ZMQ_ROUTING_ID, self->worker_id, strlen (self->worker_id));
    zmq_setsockopt (self->broker, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt (self->broker, ZMQ_RECONNECT_IVL_MAX, &max, sizeof max);
    /* ZeroMQ's own heartbeats drop a connection the network lost without
       a FIN, and its reconnect replaces it: the runtime never closes a
       live connection itself, since the broker takes a closed connection
       for a dead worker and requeues its jobs. The long timeout lets a
       stalled (not dead) broker come back to the same connection. */
    int hb_ivl = self->opts.heartbeat_ms, hb_ttl = S_ZMTP_LIVENESS * self->opts.heartbeat_ms;
    zmq_setsockopt (self->broker, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl);
    zmq_setsockopt (self->broker, ZMQ_HEARTBEAT_TIMEOUT, &hb_ttl, sizeof hb_ttl);
    /* Nothing queues while no broker is connected: a restarted broker
       would otherwise receive a backlog of stale heartbeats and READYs
       (each an old snapshot of what this worker holds). Results are
       re-sent until acknowledged, so none is lost by this. */
    int one = 1;
    zmq_setsockopt (self->broker, ZMQ_IMMEDIATE, &one, sizeof one);
    /* Each completed handshake is a (new) broker to register with: a
       restarted broker learns of this worker and what it holds at once,
       not at the next heartbeat. */
    if (!self->monitor
    &&  zmq_socket_monitor (self->broker, S_MONITOR_EP, ZMQ_EVENT_HANDSHAKE_SUCCEEDED) == 0) {
        self->monitor = zmq_socket (self->zctx, ZMQ_PAIR);
        if (self->monitor && zmq_connect (self->monitor, S_MONITOR_EP) != 0) {
            zmq_close (self->monitor);
            self->monitor = NULL;
        }
    }
    if (!self->monitor)
        ty_warn ("no socket monitor: a restarted broker hears of this worker "
                 "at its next heartbeat");
    if (zmq_connect (self->broker, self->opts.broker) != 0) {
        ty_error ("cannot connect to %s: %s", self->opts.broker, zmq_strerror (errno));
        zmq_close (self->broker);
        self->broker = NULL;
        return TY_ECONNECT;
    }
    self->broker_seen_ms = ty_clock_mono_ms ();
    s_send_ready (self);
    return TY_OK;
}

static ty_job_t *
s_find (ty_runtime_t *self, const char *id, uint32_t attempt)
{
    for (unsigned i = 0; i < self->capacity; i++) {
        ty_job_t *job = &self->slots [i];
        if (job->state != S_FREE && job->attempt == attempt && !strcmp (job->id, id))
            return job;
    }
    return NULL;
}

static void
s_send_accept (ty_runtime_t *self, const char *id, uint32_t attempt, int refused)
{
    Ty__Accept a = TY__ACCEPT__INIT;
    a.job_id = (char *) id;
    a.attempt = attempt;
    a.refused = refused;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_ACCEPT;
    env.accept = &a;
    s_send (self, &env);
}

static void
s_on_assign (ty_runtime_t *self, Ty__Assign *as)
{
    if (!ty_id_valid (as->job_id) || as->attempt == 0)
        return;
    if (s_find (self, as->job_id, as->attempt)) {
        s_send_accept (self, as->job_id, as->attempt, 0);   /* a repeated ASSIGN */
        return;
    }
    ty_job_t *job = NULL;
    for (unsigned i = 0; i < self->capacity && !job; i++)
        if (self->slots [i].state == S_FREE)
            job = &self->slots [i];
    if (!job || self->stop) {
        s_send_accept (self, as->job_id, as->attempt, 1);
        return;
    }
    Ty__JobSpec *spec = ty__job_spec__unpack (NULL, as->spec.len, as->spec.data);
    if (!spec) {
        /* Cannot happen with our broker; fail the job rather than crash. */
        s_send_accept (self, as->job_id, as->attempt, 0);
        Ty__Result res = TY__RESULT__INIT;
        res.job_id = as->job_id;
        res.attempt = as->attempt;
        res.outcome = TY__OUTCOME__OUTCOME_FAILED;
        res.error = "worker could not decode the job spec";
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.cmd_case = TY__ENVELOPE__CMD_RESULT;
        env.result = &res;
        s_send (self, &env);
        return;
    }
    Ty__Output **inputs = NULL;
    if (s_inputs_copy (as->inputs, as->n_inputs, &inputs) != TY_OK) {
        /* Refused: the broker gives the job to this or another worker again. */
        ty__job_spec__free_unpacked (spec, NULL);
        s_send_accept (self, as->job_id, as->attempt, 1);
        return;
    }
    s_job_clear (job);
    job->inputs = inputs;
    job->ninputs = as->n_inputs;
    snprintf (job->id, sizeof job->id, "%s", as->job_id);
    job->attempt = as->attempt;
    job->spec = spec;
    job->state = S_RUNNING;
    atomic_store (&job->cancelled, 0);
    atomic_store (&job->finished, 0);
    /* A short job's result would follow its ACCEPT within microseconds:
       the result alone tells the broker both, one message and one broker
       turn less per job. A longer job is accepted after a moment, far
       inside the broker's accept deadline (heartbeats). */
    job->accept_due_ms = ty_clock_mono_ms () + S_ACCEPT_DELAY_MS;
    pthread_mutex_lock (&job->lock);
    job->go = 1;
    pthread_cond_signal (&job->cond);
    pthread_mutex_unlock (&job->lock);
    ty_debug ("job %s attempt %u started", job->id, job->attempt);
}

static void
s_on_broker (ty_runtime_t *self)
{
    for (int i = 0; i < 1000; i++) {
        ty_wire_msg_t msg;
        int rc = ty_wire_recv (self->broker, 0, TY_WIRE_MAX_MSG_BYTES, &msg, ZMQ_DONTWAIT);
        if (rc == EAGAIN)
            return;
        if (rc != TY_OK) {
            ty_wire_msg_clear (&msg);
            if (rc == TY_EPROTO || rc == TY_EFULL)
                continue;
            return;
        }
        self->broker_seen_ms = ty_clock_mono_ms ();
        Ty__Envelope *env = msg.env;
        switch (env->cmd_case) {
        case TY__ENVELOPE__CMD_ASSIGN:
            s_on_assign (self, env->assign);
            break;
        case TY__ENVELOPE__CMD_CANCEL_JOB: {
            ty_job_t *job = s_find (self, env->cancel_job->job_id, env->cancel_job->attempt);
            if (job) {
                ty_info ("job %s: cancel (%s)", job->id, env->cancel_job->reason);
                atomic_store (&job->cancelled, 1);
            }
            break;
        }
        case TY__ENVELOPE__CMD_RESULT_ACK: {
            ty_job_t *job = s_find (self, env->result_ack->job_id, env->result_ack->attempt);
            if (job && job->state == S_DONE) {
                if (env->result_ack->stale)
                    ty_warn ("job %s attempt %u: result fenced by the broker "
                             "(a newer attempt owns the job)", job->id, job->attempt);
                s_job_clear (job);
                job->state = S_FREE;
            }
            break;
        }
        case TY__ENVELOPE__CMD_RECONNECT: {
            /* Every message of an unregistered worker is answered so: one
               READY per heartbeat interval is enough. */
            int64_t now = ty_clock_mono_ms ();
            if (now - self->ready_sent_ms >= self->opts.heartbeat_ms / 2) {
                ty_info ("broker: %s", env->reconnect->reason);
                s_send_ready (self);
            }
            break;
        }
        case TY__ENVELOPE__CMD_HEARTBEAT:
            break;
        case TY__ENVELOPE__CMD_ERROR:
            ty_error ("broker says: %s", env->error->message);
            break;
        default:
            ty_warn ("unexpected command %d from the broker", (int) env->cmd_case);
            break;
        }
        ty_wire_msg_clear (&msg);
    }
}

/* The broker socket's monitor: on each completed handshake, READY (with
   the jobs held). */
static void
s_on_monitor (ty_runtime_t *self)
{
    uint16_t event;
    uint32_t value;
    int handshake = 0;
    while (ty_wire_monitor_recv (self->monitor, &event, &value) == TY_OK)
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            handshake = 1;
    if (handshake) {
        ty_debug ("connected to the broker: READY");
        s_send_ready (self);
    }
}

/* Sends a job's stored (packed) result. */
static void
s_send_result (ty_runtime_t *self, ty_job_t *job)
{
    if (!self->broker || !job->result)
        return;
    zmq_msg_t m;
    if (zmq_send (self->broker, TY_WIRE_TAG, 3, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return;
    if (zmq_msg_init_size (&m, job->result_len) == 0) {
        memcpy (zmq_msg_data (&m), job->result, job->result_len);
        if (zmq_msg_send (&m, self->broker, ZMQ_DONTWAIT) < 0)
            zmq_msg_close (&m);
    }
}

/* Sends a stored result again (no ack yet: the broker may have restarted). */
static void
s_resend_results (ty_runtime_t *self, int64_t now)
{
    for (unsigned i = 0; i < self->capacity; i++) {
        ty_job_t *job = &self->slots [i];
        if (job->state != S_DONE || !job->result)
            continue;
        if (job->result_sent_ms && now - job->result_sent_ms < self->opts.heartbeat_ms)
            continue;
        s_send_result (self, job);
        job->result_sent_ms = now;
    }
}

/* Messages of the job threads: forward progress and logs; keep results
 * until the broker acknowledges them. */
static void
s_on_pipe (ty_runtime_t *self)
{
    for (int i = 0; i < 1000; i++) {
        ty_wire_msg_t msg;
        int rc = ty_wire_recv (self->pipe, 0, TY_WIRE_MAX_MSG_BYTES * 4u, &msg, ZMQ_DONTWAIT);
        if (rc == EAGAIN)
            return;
        if (rc != TY_OK) {
            ty_wire_msg_clear (&msg);
            continue;
        }
        Ty__Envelope *env = msg.env;
        if (env->cmd_case == TY__ENVELOPE__CMD_RESULT) {
            ty_job_t *job = s_find (self, env->result->job_id, env->result->attempt);
            if (job) {
                job->state = S_DONE;
                job->accept_due_ms = 0;
                job->result_len = ty__envelope__get_packed_size (env);
                job->result = malloc (job->result_len);
                if (job->result)
                    ty__envelope__pack (env, job->result);
                /* successes at debug level: one formatted write per job
                   is a measurable share of a short job's cost */
                if (env->result->outcome == TY__OUTCOME__OUTCOME_SUCCEEDED)
                    ty_debug ("job %s attempt %u: succeeded", job->id, job->attempt);
                else
                    ty_info ("job %s attempt %u: %s%s%s", job->id, job->attempt,
                             env->result->outcome == TY__OUTCOME__OUTCOME_CANCELLED
                             ? "cancelled" : "failed",
                             *env->result->error ? ": " : "", env->result->error);
            }
            /* the bytes just packed go out as they are: no second encoding */
            if (job && job->result)
                s_send_result (self, job);
            else
                s_send (self, env);
            if (job)
                job->result_sent_ms = ty_clock_mono_ms ();
        }
        else
            s_send (self, env);
        ty_wire_msg_clear (&msg);
    }
}

/* ACCEPTs whose moment has come; returns the next one still due (or -1). */
static int64_t
s_send_due_accepts (ty_runtime_t *self, int64_t now)
{
    int64_t next = -1;
    for (unsigned i = 0; i < self->capacity; i++) {
        ty_job_t *job = &self->slots [i];
        if (job->state != S_RUNNING || job->accept_due_ms <= 0)
            continue;
        if (now >= job->accept_due_ms) {
            s_send_accept (self, job->id, job->attempt, 0);
            job->accept_due_ms = 0;
        }
        else
        if (next < 0 || job->accept_due_ms < next)
            next = job->accept_due_ms;
    }
    return next;
}

static unsigned
s_busy (ty_runtime_t *self)
{
    unsigned n = 0;
    for (unsigned i = 0; i < self->capacity; i++)
        if (self->slots [i].state != S_FREE)
            n++;
    return n;
}

ty_runtime_t *
ty_runtime_new (const ty_runtime_opts_t *opts)
{
    if (!opts || !opts->broker || !opts->type || !opts->fn)
        return NULL;
    ty_runtime_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    if (!self->opts.heartbeat_ms)
        self->opts.heartbeat_ms = TY_RUNTIME_HEARTBEAT_MS;
    if (!self->opts.drain_ms)
        self->opts.drain_ms = 10000;
    self->capacity = opts->capacity ? opts->capacity : 1;
    snprintf (self->type, sizeof self->type, "%s", opts->type);
    if (gethostname (self->host, sizeof self->host) != 0)
        snprintf (self->host, sizeof self->host, "unknown");
    self->host [sizeof self->host - 1] = '\0';
    if (opts->worker_id && *opts->worker_id)
        snprintf (self->worker_id, sizeof self->worker_id, "%s", opts->worker_id);
    else {
        char rnd [TY_ID_LEN + 1];
        ty_id_new (rnd);
        snprintf (self->worker_id, sizeof self->worker_id, "%.8s-%.24s-%d-%s",
                  self->type, self->host, (int) getpid (), rnd + 12);
    }
    self->slots = calloc (self->capacity, sizeof *self->slots);
    self->zctx = zmq_ctx_new ();
    if (!self->slots || !self->zctx) {
        ty_runtime_destroy (&self);
        return NULL;
    }
    self->pipe = zmq_socket (self->zctx, ZMQ_PULL);
    if (!self->pipe || zmq_bind (self->pipe, S_PIPE_EP) != 0) {
        ty_runtime_destroy (&self);
        return NULL;
    }
    int hwm = 100000;
    zmq_setsockopt (self->pipe, ZMQ_RCVHWM, &hwm, sizeof hwm);
    for (unsigned i = 0; i < self->capacity; i++) {
        ty_job_t *job = &self->slots [i];
        job->rt = self;
        pthread_mutex_init (&job->lock, NULL);
        pthread_cond_init (&job->cond, NULL);
        if (pthread_create (&job->thread, NULL, s_slot_main, job) != 0) {
            ty_error ("cannot start job thread %u", i);
            ty_runtime_destroy (&self);
            return NULL;
        }
        job->has_thread = 1;
    }
    ty_backoff_init (&self->backoff, 100, 5000);
    return self;
}

void
ty_runtime_destroy (ty_runtime_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_runtime_t *self = *self_p;
    int running = 0;
    if (self->slots) {
        for (unsigned i = 0; i < self->capacity; i++) {
            ty_job_t *job = &self->slots [i];
            if (!job->has_thread)
                continue;
            if (job->state == S_RUNNING && !atomic_load (&job->finished)) {
                /* Still running at exit: it cannot be joined safely; the
                   process ends with it. Leak its memory rather than race. */
                pthread_detach (job->thread);
                running++;
                continue;
            }
            pthread_mutex_lock (&job->lock);
            job->quit = 1;
            pthread_cond_signal (&job->cond);
            pthread_mutex_unlock (&job->lock);
            pthread_join (job->thread, NULL);
            s_job_clear (job);
            pthread_mutex_destroy (&job->lock);
            pthread_cond_destroy (&job->cond);
        }
        if (running == 0)
            free (self->slots);
    }
    if (self->monitor) {
        zmq_socket_monitor (self->broker, NULL, 0);
        zmq_close (self->monitor);
    }
    if (self->broker)
        zmq_close (self->broker);
    if (self->pipe)
        zmq_close (self->pipe);
    /* zmq_ctx_term would wait for a still-running job's PUSH socket. */
    if (self->zctx && running == 0)
        zmq_ctx_term (self->zctx);
    free (self);
    *self_p = NULL;
}

void
ty_runtime_stop (ty_runtime_t *self)
{
    if (self->stop < 2)
        self->stop++;
}

static void
s_on_signal (int sig)
{
    TY_UNUSED (sig);
    if (s_signal_target)
        ty_runtime_stop (s_signal_target);
}

void
ty_runtime_handle_signals (ty_runtime_t *self)
{
    s_signal_target = self;
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
}

int
ty_runtime_run (ty_runtime_t *self)
{
    if (s_connect (self) != TY_OK)
        return TY_ECONNECT;
    ty_info ("worker %s: type %s, capacity %u, broker %s", self->worker_id, self->type,
             self->capacity, self->opts.broker);
    self->next_hb_ms = ty_clock_mono_ms () + self->opts.heartbeat_ms;
    int announced = 0;
    int64_t ack_deadline = -1;
    for (;;) {
        int64_t now = ty_clock_mono_ms ();
        if (self->stop && !announced) {
            announced = 1;
            self->drain_deadline_ms = now + self->opts.drain_ms;
            ty_info ("stopping: finishing %u job(s) for up to %d ms", s_busy (self),
                     self->opts.drain_ms);
            s_send_heartbeat (self);       /* draining: take nothing new */
        }
        if (self->stop) {
            int running = 0;
            for (unsigned i = 0; i < self->capacity; i++)
                running += self->slots [i].state == S_RUNNING;
            if (self->stop >= 2 || now >= self->drain_deadline_ms || running == 0) {
                if (running == 0 && s_busy (self) > 0) {
                    /* Results sent but not yet acknowledged: wait a little. */
                    if (ack_deadline < 0)
                        ack_deadline = now + S_ACK_WAIT_MS;
                }
                if (running > 0 || s_busy (self) == 0 || now >= ack_deadline
                ||  self->stop >= 2)
                    break;
            }
        }
        zmq_pollitem_t items [3] = {
            { self->broker, 0, ZMQ_POLLIN, 0 },
            { self->pipe, 0, ZMQ_POLLIN, 0 },
            { self->monitor, 0, ZMQ_POLLIN, 0 },
        };
        int64_t wait = self->next_hb_ms - now;
        int64_t accept_due = s_send_due_accepts (self, now);
        if (accept_due >= 0 && accept_due - now < wait)
            wait = accept_due - now;
        if (self->ready_unsent) {
            s_send_ready (self);
            if (self->ready_unsent && wait > S_READY_RETRY_MS)
                wait = S_READY_RETRY_MS;
        }
        if (wait < 0)
            wait = 0;
        if (wait > 50)
            wait = 50;
        int rc = zmq_poll (items, self->monitor ? 3 : 2, (long) wait);
        if (rc < 0 && errno != EINTR) {
            ty_error ("poll: %s", zmq_strerror (errno));
            break;
        }
        if (rc > 0 && self->monitor && (items [2].revents & ZMQ_POLLIN))
            s_on_monitor (self);
        if (rc > 0 && (items [1].revents & ZMQ_POLLIN))
            s_on_pipe (self);
        if (rc > 0 && (items [0].revents & ZMQ_POLLIN))
            s_on_broker (self);
        now = ty_clock_mono_ms ();
        s_resend_results (self, now);
        if (now >= self->next_hb_ms) {
            s_send_heartbeat (self);
            self->next_hb_ms = now + self->opts.heartbeat_ms;
        }
        if (now - self->broker_seen_ms > (int64_t) S_LIVENESS * self->opts.heartbeat_ms) {
            if (now >= self->next_register_ms) {
                /* Register again on the same socket (a restarted broker does
                   not know us). Closing it would tell a broker that is alive
                   after all that this worker died. */
                int64_t delay = ty_backoff_next (&self->backoff);
                ty_warn ("broker silent for %d heartbeats: registering again "
                         "(next try in %lld ms)", S_LIVENESS, (long long) delay);
                s_send_ready (self);
                self->next_register_ms = now + delay;
            }
        }
        else
        if (now - self->broker_seen_ms < self->opts.heartbeat_ms)
            ty_backoff_reset (&self->backoff);
    }
    /* Whatever still runs goes back to the broker for another worker. */
    int running = 0;
    for (unsigned i = 0; i < self->capacity; i++)
        if (self->slots [i].state == S_RUNNING) {
            atomic_store (&self->slots [i].cancelled, 1);
            running++;
        }
    Ty__Disconnect d = TY__DISCONNECT__INIT;
    d.reason = running ? "shutting down: handing back unfinished jobs" : "shutting down";
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_DISCONNECT;
    env.disconnect = &d;
    s_send (self, &env);
    /* Give the DISCONNECT a moment on the wire: linger is 0. */
    int64_t end = ty_clock_mono_ms () + 200;
    while (ty_clock_mono_ms () < end) {
        zmq_pollitem_t item = { self->broker, 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, 20);
        if (item.revents & ZMQ_POLLIN) {
            ty_wire_msg_t msg;
            if (ty_wire_recv (self->broker, 0, TY_WIRE_MAX_MSG_BYTES, &msg, ZMQ_DONTWAIT) == TY_OK)
                ty_wire_msg_clear (&msg);
        }
    }
    ty_info ("worker %s stopped (%d job(s) handed back)", self->worker_id, running);
    return TY_OK;
}

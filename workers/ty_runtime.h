/*  ty_runtime: the shared worker runtime linked by every trainyard worker.
 *
 *  The runtime thread owns the broker socket: it connects, sends READY
 *  (type, capacity, host, pid), heartbeats, reconnects with backoff, and
 *  re-attaches running jobs after a broker restart. Each assigned job runs
 *  on its own thread, calling the job function; the job thread never
 *  touches the socket, so a long job never delays a heartbeat.
 *
 *  SIGTERM/SIGINT (or ty_runtime_stop): stop taking jobs, let running jobs
 *  finish for up to drain_ms, then hand back the rest (DISCONNECT: the broker
 *  requeues them at once as attempt + 1, without charging max_attempts) and
 *  return. A second signal hands back at once.
 */
#ifndef TY_RUNTIME_H
#define TY_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include "job.pb-c.h"

typedef struct _ty_runtime_t ty_runtime_t;
typedef struct _ty_job_t ty_job_t;

/* What the job function returns. */
typedef enum {
    TY_JOB_OK = 0,         /* succeeded */
    TY_JOB_ERROR = 1,      /* failed; give the reason with ty_job_fail */
    TY_JOB_CANCELED = 2,   /* stopped because ty_job_cancelled() said so */
} ty_job_rc_t;

typedef ty_job_rc_t (ty_job_fn) (ty_job_t *job, void *arg);

typedef struct {
    const char *broker;        /* worker endpoint, e.g. tcp://127.0.0.1:7701 */
    const char *type;          /* job type served: noop, prepare, ... */
    unsigned    capacity;      /* jobs at once (default 1) */
    int         heartbeat_ms;  /* default TY_RUNTIME_HEARTBEAT_MS */
    int         drain_ms;      /* on stop, wait this long for running jobs (default 10000) */
    const char *worker_id;     /* NULL: host-pid-random */
    /* What this worker offers, "key=value" each (threads=2, memory_mb=4000,
     * pool=gpu): the broker gives it only jobs whose JobSpec.resources it
     * meets. Borrowed for the runtime's life. */
    const char *const *resources;
    size_t      nresources;
    ty_job_fn  *fn;
    void       *arg;
} ty_runtime_opts_t;

#define TY_RUNTIME_HEARTBEAT_MS 1000   /* 3 missed = dead, both ways */
#define TY_RUNTIME_RESOURCE_KEY_MAX 64  /* = the broker's limit on a resource key */
#define TY_RUNTIME_PROGRESS_MS  200    /* progress messages at most this often per job */
#define TY_RUNTIME_OUTPUTS_MAX  256    /* outputs per job; more are dropped (an aggregate
                                          step writes mean, std and n per metric) */

ty_runtime_t *ty_runtime_new (const ty_runtime_opts_t *opts);
void ty_runtime_destroy (ty_runtime_t **self_p);

/* Runs until ty_runtime_stop or SIGTERM/SIGINT (if installed). Returns TY_OK or an error. */
int  ty_runtime_run (ty_runtime_t *self);
/* Async-signal-safe: asks run() to drain and return. */
void ty_runtime_stop (ty_runtime_t *self);
/* Route SIGTERM and SIGINT to ty_runtime_stop(self). */
void ty_runtime_handle_signals (ty_runtime_t *self);

/* ---- pipeline steps --------------------------------------------------------
 * Before the job function runs, the runtime replaces every ${step.key} in
 * every string field of the spec (map values and sub-messages included;
 * `$${` is a literal `${`) by the job's input of that key (workers/ty_subst.h),
 * then evaluates spec.when (workers/ty_when.h). An unknown key or a malformed
 * condition fails the job with the reason ("unresolved reference ${x.y}
 * (inputs: ...)"); a false condition ends the job SUCCEEDED with outputs
 * skipped=true and reason="when: <condition> was false", and the job
 * function is not called. A spec without references and without `when`
 * reaches the job function exactly as submitted. */

/* ---- for job code (called on the job's thread) -------------------------- */
/* The spec, references already substituted. Borrowed until the job function returns. */
const Ty__JobSpec *ty_job_spec (ty_job_t *job);
/* The job's inputs (Assign.inputs): the outputs and metrics of its parents
 * that are pipeline steps, keyed "<parent step>.<key>" (e.g.
 * "train[fold=2].model", "evaluate.accuracy"; metrics as "%.17g" text), in
 * the broker's order. *n (may be NULL) gets the count. Borrowed until the
 * job function returns; NULL when there are none. */
const Ty__Output *const *ty_job_inputs (ty_job_t *job, size_t *n);
/* The value of one input, or NULL. Borrowed as above. */
const char *ty_job_input (ty_job_t *job, const char *key);
const char *ty_job_id (ty_job_t *job);
unsigned    ty_job_attempt (ty_job_t *job);
/* 0 on the first run of this attempt, then 1, 2... when JobSpec.retries
 * runs it again after a failure. */
unsigned    ty_job_try (ty_job_t *job);
/* 1 once the broker asked to cancel or the worker is shutting down hard. */
int  ty_job_cancelled (ty_job_t *job);
/* Progress: fraction in [0,1] (negative = unchanged), phase and message may be NULL.
 * Rate-limited to TY_RUNTIME_PROGRESS_MS, except that a change of phase is sent
 * at once; the last call is always delivered. */
void ty_job_progress (ty_job_t *job, double fraction, const char *phase,
                      const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));
/* A metric value, sent with the next progress message (latest value per key wins). */
void ty_job_metric (ty_job_t *job, const char *key, double value);
/* Sends pending progress and metrics now, past the rate limit: for values
 * that must each reach the metrics stream (one entry per epoch, say). */
void ty_job_progress_flush (ty_job_t *job);
/* A log line for `trainyard logs`. */
void ty_job_log (ty_job_t *job, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* A named output of the result (key/value text). */
void ty_job_output (ty_job_t *job, const char *key, const char *value);
/* Opaque result bytes (copied). */
void ty_job_data (ty_job_t *job, const void *data, size_t len);
/* Sets the failure reason; returns TY_JOB_ERROR for `return ty_job_fail (...)`. */
ty_job_rc_t ty_job_fail (ty_job_t *job, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#endif

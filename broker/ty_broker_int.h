/*  ty_broker_int: the broker's private state and the functions its files
 *  share. Not a public API: only the broker's .c files include it.
 *
 *  A turn of the reactor:
 *    1. read every waiting message; handlers change ty_jobs (memory),
 *       record the Redis writes in ty_state and put what must be said in
 *       the outbox;
 *    2. timers: dead workers, expired leases;
 *    3. dispatch: queued jobs to free worker slots (same memory/state/outbox);
 *    4. commit: one MULTI/EXEC with the whole turn;
 *    5. send the outbox, or on failure turn client replies into errors,
 *       drop the rest and rebuild memory from Redis when it is back.
 */
#ifndef TY_BROKER_INT_H
#define TY_BROKER_INT_H

#include <signal.h>
#include "ty_backoff.h"
#include "ty_broker.h"
#include "ty_dispatch.h"
#include "ty_hash.h"
#include "ty_jobs.h"
#include "ty_outbox.h"
#include "ty_redis.h"
#include "ty_state.h"
#include "ty_wire.h"
#include "ty_workers.h"

#define TY_BROKER_TICK_MS          20     /* timer resolution */
#define TY_BROKER_ACCEPT_IVLS      3      /* heartbeats to wait for a worker's ACCEPT */
#define TY_BROKER_RECOVER_GRACE_MS 3000   /* extra time for workers to re-attach after a rebuild */
#define TY_BROKER_LIST_SCAN_MAX    100000 /* jobs scanned by one LIST with a filter */
#define TY_BROKER_METRICS_MAX      64     /* metrics of one progress/result message kept */
#define TY_BROKER_STEP_MAX         128    /* bytes of a pipeline step name */
#define TY_BROKER_PIPELINE_MAX     64     /* bytes of a pipeline id */

/* A client subscribed to events. */
typedef struct ty_watch_s {
    struct ty_watch_s *next;
    size_t  route_len;
    uint8_t route [];
} ty_watch_t;

struct _ty_broker_t {
    ty_broker_opts_t opts;
    char          prefix [64];
    void         *zctx;
    void         *socks [2];       /* TY_OUTBOX_CLIENTS, TY_OUTBOX_WORKERS */
    void         *monitor;
    ty_redis_t   *redis;
    ty_state_t   *state;
    ty_backoff_t  redis_backoff;
    int64_t       redis_retry_ms;
    int           ready;           /* memory rebuilt from Redis and epoch held */
    int64_t       epoch;
    size_t        unattached;      /* RUNNING jobs awaiting re-attach after a rebuild */

    ty_jobs_t    *jobs;            /* every job not ended */
    ty_queues_t  *queues;          /* QUEUED ids per type (lazy deletion) */
    ty_workers_t *workers;
    ty_hash_t    *watchers;        /* job id -> ty_watch_t list */
    ty_watch_t   *firehose;        /* watchers of every job */
    ty_outbox_t  *outbox;          /* this turn's messages */
    ty_outbox_t  *outbox_inflight; /* the previous turn's, sent when its EXEC returns */
    ty_hash_t    *turn_ended;      /* jobs ended this turn -> ty_ended_t (owned) */
    ty_hash_t    *turn_idem;       /* idempotency keys created this turn -> id (owned) */
    ty_argv_t     scratch;         /* synchronous reads */

    int64_t       next_tick_ms;
    int64_t       next_renew_ms;
    volatile sig_atomic_t stop;
};

/* A job that ended during the current turn: gone from memory, not yet in
 * Redis. passed: what a SUCCEEDED step job hands its children (packed
 * Ty__Outputs of "step.key" items), for a child submitted in the same turn.
 * One allocation: free() releases it. */
typedef struct {
    ty_jobstate_t state;
    char error [256];
    size_t passed_len;
    uint8_t passed [];
} ty_ended_t;

/* ty_broker.c */
/* Waits for the previous turn's transaction and delivers its messages.
 * Call before any synchronous Redis read, so reads see every earlier turn. */
void ty_broker_settle (ty_broker_t *self);
void ty_broker_store_down (ty_broker_t *self, const char *where);
/* A client reply or event, sent after the turn commits. */
void ty_broker_to_client (ty_broker_t *self, const uint8_t *route, size_t route_len,
                          const Ty__Envelope *env);
void ty_broker_to_worker (ty_broker_t *self, const char *worker_id, const Ty__Envelope *env);
void ty_broker_reply_error (ty_broker_t *self, const uint8_t *route, size_t route_len,
                            uint64_t request_id, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 6, 7)));
void ty_broker_reply_ok (ty_broker_t *self, const uint8_t *route, size_t route_len,
                         uint64_t request_id);

/* Text of element i of an array reply ("" for nil); -1 if not there. */
int  ty_broker_rstr (const redisReply *r, size_t i, char *buf, size_t size);
long long ty_broker_rint (const redisReply *r, size_t i);

/* ty_lifecycle.c: job transitions (memory + Redis record + events) */
void ty_broker_emit (ty_broker_t *self, Ty__Event *ev);
void ty_broker_emit_state (ty_broker_t *self, const ty_jobrec_t *job, const char *error);
int  ty_broker_watch_add (ty_watch_t **list, const uint8_t *route, size_t route_len);
void ty_broker_watch_free (ty_watch_t *w);
void ty_broker_job_queue (ty_broker_t *self, ty_jobrec_t *job, const char *reason);
void ty_broker_job_assign (ty_broker_t *self, ty_jobrec_t *job, ty_worker_t *w);
/* Ends a job (SUCCEEDED/FAILED/CANCELLED), releases or cancels its children,
 * and frees the record. outputs: n key/value pairs, may be NULL. */
void ty_broker_job_finish (ty_broker_t *self, ty_jobrec_t *job, ty_jobstate_t state,
                           const char *reason, Ty__Output **outputs, size_t noutputs);
/* The attempt ended without a result: back to the queue, or FAILED past
 * max_attempts (charge), or CANCELLED if a cancel was asked. */
void ty_broker_job_requeue (ty_broker_t *self, ty_jobrec_t *job, int charge,
                            const char *reason);
/* A RUNNING job passed its timeout: ask the worker to stop it (it then
 * ends FAILED "timed out"); past a grace, end it without the worker. */
void ty_broker_job_timeout (ty_broker_t *self, ty_jobrec_t *job);
/* A worker is gone: requeue what it held, forget it. */
void ty_broker_worker_lost (ty_broker_t *self, ty_worker_t *w, const char *why, int charge);

/* ty_clients.c */
void ty_broker_on_client (ty_broker_t *self, ty_wire_msg_t *msg);

/* ty_worker_msgs.c */
void ty_broker_on_worker (ty_broker_t *self, ty_wire_msg_t *msg);
void ty_broker_dispatch (ty_broker_t *self);
void ty_broker_worker_record (ty_broker_t *self, ty_worker_t *w);
void ty_broker_send_reconnect (ty_broker_t *self, const char *worker_id, const char *why);

/* ty_recover.c */
int  ty_broker_recover (ty_broker_t *self);

#endif

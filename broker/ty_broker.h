/*  ty_broker: the trainyard broker, one reactor around zmq_poll.
 *
 *  Two ROUTER sockets (clients, workers), one hiredis connection, no
 *  threads and no locks. Each turn of the loop reads every message that is
 *  waiting, turns them into batched Lua calls (one round trip for all
 *  submits, results and progress of the turn), then dispatches queued jobs
 *  to free worker slots in one more round trip. Redis is the truth; the
 *  broker's memory (queues, running jobs, workers) is rebuilt from it at
 *  start and after every Redis outage. */
#ifndef TY_BROKER_H
#define TY_BROKER_H
#include <stddef.h>

typedef struct {
    const char *clients_ep;     /* ROUTER for clients */
    const char *workers_ep;     /* ROUTER for workers */
    const char *redis_url;
    const char *prefix;         /* Redis key prefix, "ty:" */
    const char *endpoint_file;  /* if set: write the bound endpoints here */
    int         heartbeat_ms;   /* default TY_BROKER_HEARTBEAT_MS */
    unsigned    max_attempts;   /* default for jobs that do not say */
    size_t      max_msg_bytes;  /* bigger messages get an error */
} ty_broker_opts_t;

#define TY_BROKER_HEARTBEAT_MS  1000
#define TY_BROKER_MAX_ATTEMPTS  3
#define TY_BROKER_LIVENESS      3      /* heartbeats missed = dead */
#define TY_BROKER_BATCH_MAX     2048   /* messages read per socket per turn */
#define TY_BROKER_SUBMIT_MAX    10000  /* jobs in one Submit */

typedef struct _ty_broker_t ty_broker_t;

/* Binds the sockets. NULL with a logged reason on failure. */
ty_broker_t *ty_broker_new (const ty_broker_opts_t *opts);
void ty_broker_destroy (ty_broker_t **self_p);
/* Runs until ty_broker_stop. Returns TY_OK. */
int  ty_broker_run (ty_broker_t *self);
/* Async-signal-safe. */
void ty_broker_stop (ty_broker_t *self);

#endif

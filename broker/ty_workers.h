/*  ty_workers: the workers a broker knows, their free slots and liveness.
 *  A worker is keyed by its routing id (= its worker id, set by the worker
 *  with ZMQ_ROUTING_ID so that it keeps its name across reconnects). */
#ifndef TY_WORKERS_H
#define TY_WORKERS_H
#include <stddef.h>
#include <stdint.h>
#include "ty_id.h"
#include "ty_resources.h"

#define TY_WORKER_ID_MAX   64
#define TY_WORKER_CAP_MAX  1024   /* capacity a worker may declare */

typedef struct {
    char     id [TY_WORKER_ID_MAX + 1];
    char     type [32];
    char     host [128];
    uint32_t pid;
    unsigned capacity;
    int      heartbeat_ms;
    int      srcfd;              /* fd of its connection, for disconnect events */
    int      draining;           /* shutting down: no new jobs */
    int64_t  last_seen_ms;       /* monotonic */
    int64_t  last_seen_wall_ms;
    int64_t  next_hb_ms;         /* when we heartbeat it next (monotonic) */
    size_t   njobs;              /* jobs held = busy slots */
    size_t   zombies;            /* stale attempts it still runs (READY/heartbeat
                                    `held` entries that are not its jobs): they
                                    fill slots too until they stop */
    char   (*jobs) [TY_ID_LEN + 1];
    ty_resources_t *resources;   /* declared in READY (owned); NULL = none */
} ty_worker_t;

typedef struct _ty_workers_t ty_workers_t;

ty_workers_t *ty_workers_new (void);
void ty_workers_destroy (ty_workers_t **self_p);

/* Finds or creates the worker id. NULL on ENOMEM. */
ty_worker_t *ty_workers_require (ty_workers_t *self, const char *id, unsigned capacity);
ty_worker_t *ty_workers_find (ty_workers_t *self, const char *id);
ty_worker_t *ty_workers_find_fd (ty_workers_t *self, int fd);
void ty_workers_remove (ty_workers_t *self, const char *id);
size_t ty_workers_count (ty_workers_t *self);
/* The i-th worker (0 <= i < count); the order changes after remove. */
ty_worker_t *ty_workers_at (ty_workers_t *self, size_t i);

/* Slot bookkeeping. add: TY_OK, TY_EFULL (no free slot) or TY_ENOMEM. */
int  ty_worker_job_add (ty_worker_t *w, const char *job_id);
/* 1 if it held the job. */
int  ty_worker_job_del (ty_worker_t *w, const char *job_id);
int  ty_worker_job_has (ty_worker_t *w, const char *job_id);

#endif

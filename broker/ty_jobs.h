/*  ty_jobs: the broker's memory of every job that has not ended.
 *
 *  The broker is the only writer of job state, so this table is the
 *  authority while the broker runs, and Redis is its durable copy: every
 *  change here is recorded in the same turn's ty_state transaction, and
 *  after a restart or a Redis outage the table is rebuilt from Redis
 *  (ty:active). Ended jobs leave the table. */
#ifndef TY_JOBS_H
#define TY_JOBS_H

#include <stddef.h>
#include <stdint.h>
#include "ty_id.h"
#include "job.pb-c.h"
#include "ty_jobstate.h"
#include "ty_resources.h"

#define TY_JOBS_WORKER_MAX 64

/* Key/value texts owned by a job record: a pipeline job's inputs (its
 * parents' outputs and metrics, "step.key") and, while a step job runs,
 * the latest value of each metric it reported (passed on when it succeeds). */
typedef struct {
    char *key;
    char *value;
} ty_jobkv_t;

typedef struct {
    ty_jobkv_t *v;
    size_t n, cap;
} ty_jobkvs_t;

typedef struct {
    char     id [TY_ID_LEN + 1];
    char     type [32];
    ty_jobstate_t state;
    uint32_t priority;
    double   score;              /* queue order, see ty_dispatch_score */
    uint32_t attempt;            /* 0 before the first run */
    uint32_t max_attempts;
    char     worker [TY_JOBS_WORKER_MAX + 1];
    uint8_t *spec_pb;            /* the packed JobSpec, sent with ASSIGN */
    size_t   spec_len;
    int      cancel_requested;
    char     cancel_reason [256];
    uint32_t waiting;            /* parents not yet succeeded (PENDING) */
    char   (*children) [TY_ID_LEN + 1];
    size_t   nchildren, cchildren;
    /* RUNNING only */
    int64_t  deadline_ms;        /* monotonic: accept, lease or re-attach deadline */
    int      accepted;
    int      attached;           /* 0 after a rebuild until the worker says READY */
    int      shown;              /* progress/phase/message in Redis may hold something:
                                    the next RUNNING resets them */
    uint32_t timeout_ms;         /* 0: none (JobSpec.timeout_ms) */
    int64_t  timeout_at_ms;      /* monotonic, while RUNNING with a timeout */
    int      timed_out;          /* cancel sent because of the timeout */
    /* Pipelines; all NULL/empty for a plain job, which costs nothing here. */
    char    *step;               /* step name (SubmitItem.step), NULL if none */
    ty_jobkvs_t inputs;          /* sent with every ASSIGN; Redis field "inputs" */
    ty_jobkvs_t metrics;         /* step jobs: latest metrics, "%.17g" text */
    ty_resources_t *needs;       /* JobSpec.resources, NULL if none */
} ty_jobrec_t;

typedef struct _ty_jobs_t ty_jobs_t;

ty_jobs_t *ty_jobs_new (void);
void ty_jobs_destroy (ty_jobs_t **self_p);

/* A new zeroed record for id (copied), in the table. NULL on ENOMEM or if
 * id is already there. */
ty_jobrec_t *ty_jobs_add (ty_jobs_t *self, const char *id);
ty_jobrec_t *ty_jobs_find (ty_jobs_t *self, const char *id);
/* Removes and frees the record. */
void ty_jobs_remove (ty_jobs_t *self, const char *id);
/* Removes and frees every record. */
void ty_jobs_clear (ty_jobs_t *self);
size_t ty_jobs_count (ty_jobs_t *self);

/* Records in no particular order; fn must not add or remove records. */
typedef void (ty_jobs_fn) (ty_jobrec_t *job, void *arg);
void ty_jobs_each (ty_jobs_t *self, ty_jobs_fn *fn, void *arg);

/* Copies the spec. TY_OK or TY_ENOMEM. */
int  ty_jobrec_set_spec (ty_jobrec_t *job, const void *pb, size_t len);
/* Adds a child id. TY_OK or TY_ENOMEM. */
int  ty_jobrec_add_child (ty_jobrec_t *job, const char *child_id);
/* The spec's resources (JobSpec.resources) as the job's needs; none: NULL.
 * TY_OK, TY_EINVAL (an entry over the limits) or TY_ENOMEM. */
int  ty_jobrec_set_needs (ty_jobrec_t *job, const Ty__JobSpec *spec);
/* Copies the step name (NULL or "" = none). TY_OK or TY_ENOMEM. */
int  ty_jobrec_set_step (ty_jobrec_t *job, const char *step);

/* Sets key to value (both copied), replacing an earlier value of the key:
 * a list holds each key once. prefix (may be NULL) is put before the key
 * with a '.' ("train" + "model" -> "train.model"). TY_OK or TY_ENOMEM. */
int  ty_jobkvs_set (ty_jobkvs_t *self, const char *prefix, const char *key,
                    const char *value);
void ty_jobkvs_clear (ty_jobkvs_t *self);
/* Packs the list as a Ty__Outputs message into *pb_out (caller frees).
 * TY_OK or TY_ENOMEM. */
int  ty_jobkvs_pack (const ty_jobkvs_t *self, uint8_t **pb_out, size_t *len_out);
/* Adds every item of a packed Ty__Outputs message. TY_OK, TY_EPROTO
 * (undecodable) or TY_ENOMEM. */
int  ty_jobkvs_unpack_add (ty_jobkvs_t *self, const void *pb, size_t len);
/* A Ty__Output view of the list for a message being packed: *items_out
 * (n pointers) and *store_out (n structs), both caller frees, both borrow
 * the list's strings. NULL with n 0; TY_OK or TY_ENOMEM. */
int  ty_jobkvs_view (const ty_jobkvs_t *self, Ty__Output ***items_out, Ty__Output **store_out);

#endif

/*  ty_state: the job-state writes of one broker turn, committed to Redis as
 *  one MULTI/EXEC transaction.
 *
 *  The broker is the only writer of job state. Each turn it changes its
 *  memory, records the matching Redis writes here, and commits them all at
 *  once before it sends anything (replies, ASSIGNs, acks, events): what a
 *  peer hears about has been written. A failed commit means the broker
 *  throws its memory away and rebuilds it from Redis.
 *
 *  The transaction is guarded by WATCH on the broker epoch key
 *  (<prefix>broker:epoch), which every broker increments when it starts:
 *  a second broker on the same Redis makes the first one's commits fail
 *  with TY_ESTALE instead of both writing (split brain).
 *
 *  Set and sorted-set membership (queues, leases, the active set) is
 *  recorded by net effect: the last change of a member in a turn wins, and
 *  all of them go out as one ZADD/ZREM/SADD/SREM per key.
 *
 *  Not thread-safe. Builds no command until ty_state_send, so the owner may
 *  run synchronous reads on the same connection between records, provided
 *  no transaction is in flight (ty_state_wait first). */
#ifndef TY_STATE_H
#define TY_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "ty_redis.h"

#define TY_STATE_EVENTS_MAX  100000   /* ty:events is capped (approximately) here */
#define TY_STATE_TRIM_EVERY  1000     /* events between two trims of it */
#define TY_STATE_LOG_MAX     1000     /* lines kept per job */

typedef struct _ty_state_t ty_state_t;

/* redis: borrowed, must outlive the state. prefix: e.g. "ty:". */
ty_state_t *ty_state_new (ty_redis_t *redis, const char *prefix);
void ty_state_destroy (ty_state_t **self_p);

const char *ty_state_prefix (ty_state_t *self);

/* Takes the broker epoch (INCR) after a (re)connect. TY_OK or TY_ESTORE. */
int  ty_state_claim (ty_state_t *self, int64_t *epoch_out);

/* ---- recording a turn ---------------------------------------------------- */

/* HSET <prefix>job:<id> with nfields field/value pairs (values as text or,
 * with lens, binary). lens may be NULL for all-text values. */
void ty_state_hset (ty_state_t *self, const char *id, size_t nfields,
                    const char *const *fields, const char *const *values,
                    const size_t *lens);
/* HINCRBY on a job field. */
void ty_state_hincr (ty_state_t *self, const char *id, const char *field, int64_t by);
/* One transition or progress entry on <prefix>events (capped). pairs:
 * field/value texts; pairs with an empty value are left out. */
void ty_state_event (ty_state_t *self, size_t npairs, const char *const *pairs);
/* Membership, by net effect. set: "jobs", "queue:<type>", "leases", "active",
 * or a full key suffix such as "job:<id>:children". score ignored for plain sets. */
void ty_state_zadd (ty_state_t *self, const char *set, double score, const char *member);
void ty_state_zrem (ty_state_t *self, const char *set, const char *member);
void ty_state_sadd (ty_state_t *self, const char *set, const char *member);
void ty_state_srem (ty_state_t *self, const char *set, const char *member);
/* Any other command (XADD metrics, RPUSH/LTRIM logs, worker records): argv as built by the caller. */
ty_argv_t *ty_state_raw (ty_state_t *self);

/* Commands recorded since the last commit. */
size_t ty_state_pending (ty_state_t *self);

/* MULTI, everything recorded, EXEC, WATCH epoch (re-armed for the next
 * turn), written to Redis without waiting for the answer; the recording is
 * cleared whatever the outcome. One transaction may be in flight: the owner
 * overlaps its next turn's work with Redis executing this one.
 * TY_OK, TY_ESTORE (I/O error), TY_ENOMEM, TY_EINVAL (one already in flight). */
int  ty_state_send (ty_state_t *self);
/* 1 while a sent transaction has not been answered. */
int  ty_state_inflight (ty_state_t *self);
/* Waits for the answer of the transaction in flight (TY_OK if none).
 * TY_OK, TY_ESTORE (I/O error: the connection is failed), TY_ESTALE
 * (another broker took the epoch: nothing of it was written). */
int  ty_state_wait (ty_state_t *self);
/* send + wait. */
int  ty_state_commit (ty_state_t *self);
/* Drops what was recorded (after a failure). */
void ty_state_discard (ty_state_t *self);

#endif

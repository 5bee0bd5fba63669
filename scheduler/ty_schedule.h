/*  ty_schedule: cron schedules of pipelines, stored in Redis.
 *
 *  Keys (prefix P, "ty:" by default, as the broker's --prefix):
 *    P schedule:<name>            hash, the record below
 *    P schedules                  set of schedule names
 *    P schedule:<name>:slot:<s>   string, the id of the scheduler that
 *                                 starts slot s (SET NX PX: a lease, so two
 *                                 schedulers never both start one run)
 *  Hash fields: cron, utc (0|1), file (absolute path as the scheduler sees
 *  it), sets (JSON array of "key=value"), paused (0|1), created, last_slot,
 *  next (Unix seconds), last_run_pipeline, last_run_ms, last_error.
 *
 *  Every change is one Lua script: add refuses an existing name, changes
 *  of a removed schedule do nothing (never resurrect a half record), and
 *  ty_schedule_record only moves last_slot forward.
 *
 *  Not thread-safe. Errors: TY_OK, TY_EINVAL (bad name), TY_ENOTFOUND
 *  (no such schedule), TY_ESTATE (add: exists), TY_ESTORE (Redis), TY_ENOMEM.
 */
#ifndef TY_SCHEDULE_H
#define TY_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ty_redis.h"

/* How long a scheduler's claim on a slot lasts. It only has to cover load +
 * submit + record; a scheduler that dies holding it delays that slot by at
 * most this long for the others (its own restart, same --id, goes on). */
#define TY_SCHEDULE_LEASE_MS  60000

typedef struct {
    char    *name;
    char    *cron;
    bool     utc;
    char    *file;
    char   **sets;
    size_t   nsets;
    bool     paused;
    int64_t  created;            /* Unix s */
    int64_t  last_slot;          /* Unix s; = created until the first run */
    int64_t  next;               /* Unix s, the next fire time (0 = none) */
    char    *last_run_pipeline;  /* "" before the first run */
    int64_t  last_run_ms;        /* when it was started, Unix ms */
    char    *last_error;         /* "" when the last run started fine */
} ty_schedule_t;

/* Frees a record from ty_schedule_load; NULL-safe; nulls *self_p. */
void ty_schedule_destroy (ty_schedule_t **self_p);

/* Stores a new schedule (name, cron, utc, file, sets, created, next are
 * taken from rec; last_slot = created, so nothing fires retroactively). */
int ty_schedule_add (ty_redis_t *redis, const char *prefix, const ty_schedule_t *rec);
/* Reads one; *self_p is the caller's. */
int ty_schedule_load (ty_redis_t *redis, const char *prefix, const char *name,
                      ty_schedule_t **self_p);
/* Sorted names (ty_schedrec_strv_free). */
int ty_schedule_names (ty_redis_t *redis, const char *prefix, char ***names, size_t *n);
int ty_schedule_remove (ty_redis_t *redis, const char *prefix, const char *name);
int ty_schedule_set_paused (ty_redis_t *redis, const char *prefix, const char *name,
                            bool paused);
/* Stores the next fire time (for `schedule list`). */
int ty_schedule_set_next (ty_redis_t *redis, const char *prefix, const char *name,
                          int64_t next);
/* Claims slot for owner (see TY_SCHEDULE_LEASE_MS). *won = 1 if ours. */
int ty_schedule_lease (ty_redis_t *redis, const char *prefix, const char *name,
                       int64_t slot, const char *owner, int64_t ttl_ms, int *won);
/* Records the run of slot: last_slot, last_run_pipeline (may be ""),
 * last_run_ms, last_error (NULL = ""), next. *applied (may be NULL) = 0
 * when last_slot already was >= slot or the schedule is gone. */
int ty_schedule_record (ty_redis_t *redis, const char *prefix, const char *name,
                        int64_t slot, const char *pipeline, const char *error,
                        int64_t next, int *applied);

/* Marks slot done without a run (resume after a pause: no catch-up). Only
 * moves last_slot forward. */
int ty_schedule_skip (ty_redis_t *redis, const char *prefix, const char *name, int64_t slot);

/* The Redis key of a schedule into buf. TY_OK or TY_EINVAL (too long). */
int ty_schedule_key (const char *prefix, const char *name, char *buf, size_t len);

#endif

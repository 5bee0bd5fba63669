/*  ty_trigger: retrain triggers. A trigger runs a pipeline when
 *    new_samples   the dataset's latest version holds at least N more
 *                  samples than the version the model was trained on (the
 *                  production version's lineage, else the latest version's;
 *                  no model yet: every sample counts as new); once per
 *                  dataset version;
 *    older_than    the production version was registered at least D days
 *                  ago; once per model version;
 *    metric_below  the production version's latest evaluation has metric
 *                  KEY (a registry headline metric: accuracy, macro_f1,
 *                  rmse, ndcg, ...) under VALUE; once per model version.
 *  Datasets and the registry are read under the scheduler's --data dir.
 *
 *  Keys (prefix P as the broker's):
 *    P trigger:<name>             hash, the record below
 *    P triggers                   set of trigger names
 *    P trigger:<name>:fire:<key>  string, lease of the scheduler firing it
 *  Hash fields: kind, file, sets (JSON array of "key=value"), dataset,
 *  model, new_samples, older_than_days, metric, threshold, created (Unix
 *  s), last_fired (the fire key: dataset version "7" or model version
 *  "v3"), last_fired_ms, last_run_pipeline, last_error, last_check (what
 *  the last check saw, in words), last_check_ms.
 *  A firing submits with idempotency prefix "trigger:<name>:<fire key>",
 *  so even two schedulers at once start one run.
 *
 *  Not thread-safe. Errors as ty_schedule.h.
 */
#ifndef TY_TRIGGER_H
#define TY_TRIGGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ty_redis.h"

#define TY_TRIGGER_KEY_MAX    32      /* a fire key: "<u64>" or "v<u64>" */
#define TY_TRIGGER_WHY_MAX    256
#define TY_TRIGGER_LEASE_MS   60000   /* as TY_SCHEDULE_LEASE_MS */
#define TY_TRIGGER_SECS_PER_DAY 86400

typedef enum {
    TY_TRIGGER_NEW_SAMPLES = 0,
    TY_TRIGGER_OLDER_THAN,
    TY_TRIGGER_METRIC_BELOW,
    TY_TRIGGER_KIND_COUNT
} ty_trigger_kind_t;

/* "new_samples", "older_than", "metric_below"; "?" out of range. */
const char *ty_trigger_kind_name (ty_trigger_kind_t kind);
int ty_trigger_kind_parse (const char *s, ty_trigger_kind_t *kind);

typedef struct {
    char             *name;
    ty_trigger_kind_t kind;
    char             *file;
    char            **sets;
    size_t            nsets;
    char             *dataset;          /* new_samples; "" otherwise */
    char             *model;
    uint64_t          new_samples;      /* N */
    double            older_than_days;  /* D */
    char             *metric;           /* KEY of metric_below; "" otherwise */
    double            threshold;        /* VALUE of metric_below */
    int64_t           created;          /* Unix s */
    char             *last_fired;       /* fire key, "" never */
    int64_t           last_fired_ms;
    char             *last_run_pipeline;
    char             *last_error;
    char             *last_check;
} ty_trigger_t;

void ty_trigger_destroy (ty_trigger_t **self_p);

int ty_trigger_add (ty_redis_t *redis, const char *prefix, const ty_trigger_t *rec);
int ty_trigger_load (ty_redis_t *redis, const char *prefix, const char *name,
                     ty_trigger_t **self_p);
int ty_trigger_names (ty_redis_t *redis, const char *prefix, char ***names, size_t *n);
int ty_trigger_remove (ty_redis_t *redis, const char *prefix, const char *name);
/* Claims the firing of fire_key for owner. *won = 1 if ours. */
int ty_trigger_lease (ty_redis_t *redis, const char *prefix, const char *name,
                      const char *fire_key, const char *owner, int64_t ttl_ms, int *won);
/* Records a firing: last_fired, last_fired_ms, last_run_pipeline, last_error
 * (NULL = ""). No-op on a removed trigger. */
int ty_trigger_record_fire (ty_redis_t *redis, const char *prefix, const char *name,
                            const char *fire_key, const char *pipeline, const char *error);
/* Records what a check saw (last_check, last_check_ms). */
int ty_trigger_record_check (ty_redis_t *redis, const char *prefix, const char *name,
                             const char *text);

/* ---- checks --------------------------------------------------------------- */

typedef struct {
    bool fire;                          /* condition holds and key not fired yet */
    bool holds;                         /* condition holds (maybe already fired) */
    char key [TY_TRIGGER_KEY_MAX];      /* the fire key (when holds) */
    char why [TY_TRIGGER_WHY_MAX];      /* what was seen, in words */
} ty_trigger_verdict_t;

/* Evaluates the trigger against datasets and the registry under data_dir
 * at time now (Unix s). TY_OK with *v filled (fire = false when nothing
 * to do, why says why), or an error reading the stores (why too). */
int ty_trigger_check (const ty_trigger_t *trigger, const char *data_dir, int64_t now,
                      ty_trigger_verdict_t *v);

#endif

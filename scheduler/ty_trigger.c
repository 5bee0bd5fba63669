/*  ty_trigger: trigger records in Redis and their checks (ty_trigger.h). */
#include "ty_trigger.h"
#include "ty_clock.h"
#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_registry.h"
#include "ty_schedrec.h"
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NUM_MAX_CHARS 32      /* an int64 or a %.17g double, NUL included */

static const char *const s_kind_names [TY_TRIGGER_KIND_COUNT] = {
    "new_samples", "older_than", "metric_below"
};

const char *
ty_trigger_kind_name (ty_trigger_kind_t kind)
{
    return kind < TY_TRIGGER_KIND_COUNT ? s_kind_names [kind] : "?";
}

int
ty_trigger_kind_parse (const char *s, ty_trigger_kind_t *kind)
{
    for (int i = 0; i < TY_TRIGGER_KIND_COUNT; i++)
        if (s && !strcmp (s, s_kind_names [i])) {
            *kind = (ty_trigger_kind_t) i;
            return TY_OK;
        }
    return TY_EINVAL;
}

static int
s_keys (const char *prefix, const char *name, char *hash, char *set)
{
    if (ty_schedrec_name_check (name, NULL) != TY_OK)
        return TY_EINVAL;
    int n = snprintf (hash, TY_SCHEDREC_KEY_MAX, "%strigger:%s", prefix, name);
    int m = snprintf (set, TY_SCHEDREC_KEY_MAX, "%striggers", prefix);
    return n < 0 || n >= TY_SCHEDREC_KEY_MAX || m < 0 || m >= TY_SCHEDREC_KEY_MAX
           ? TY_EINVAL : TY_OK;
}

void
ty_trigger_destroy (ty_trigger_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_trigger_t *self = *self_p;
    free (self->name);
    free (self->file);
    ty_schedrec_strv_free (self->sets, self->nsets);
    free (self->dataset);
    free (self->model);
    free (self->metric);
    free (self->last_fired);
    free (self->last_run_pipeline);
    free (self->last_error);
    free (self->last_check);
    free (self);
    *self_p = NULL;
}

int
ty_trigger_add (ty_redis_t *redis, const char *prefix, const ty_trigger_t *rec)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (s_keys (prefix, rec->name, hash, set) != TY_OK || !rec->file || !rec->model
        || rec->kind >= TY_TRIGGER_KIND_COUNT)
        return TY_EINVAL;
    char *sets = NULL;
    int rc = ty_schedrec_sets_encode ((const char *const *) rec->sets, rec->nsets, &sets);
    if (rc != TY_OK)
        return rc;
    char n [S_NUM_MAX_CHARS], days [S_NUM_MAX_CHARS], thr [S_NUM_MAX_CHARS],
         created [S_NUM_MAX_CHARS];
    snprintf (n, sizeof n, "%" PRIu64, rec->new_samples);
    snprintf (days, sizeof days, "%.17g", rec->older_than_days);
    snprintf (thr, sizeof thr, "%.17g", rec->threshold);
    snprintf (created, sizeof created, "%" PRId64, rec->created);
    const char *args [] = {
        rec->name,
        "kind", ty_trigger_kind_name (rec->kind), "file", rec->file, "sets", sets,
        "dataset", rec->dataset ? rec->dataset : "", "model", rec->model,
        "new_samples", n, "older_than_days", days,
        "metric", rec->metric ? rec->metric : "", "threshold", thr,
        "created", created, "last_fired", "", "last_fired_ms", "0",
        "last_run_pipeline", "", "last_error", "", "last_check", "", "last_check_ms", "0",
    };
    rc = ty_schedrec_add (redis, hash, set, args, sizeof args / sizeof args [0]);
    free (sets);
    return rc;
}

static char *
s_dup (const char *s)
{
    return strdup (s ? s : "");
}

static double
s_get_double (const ty_schedrec_hash_t *h, const char *field)
{
    const char *v = ty_schedrec_get (h, field);
    return v ? strtod (v, NULL) : 0.0;
}

int
ty_trigger_load (ty_redis_t *redis, const char *prefix, const char *name,
                 ty_trigger_t **self_p)
{
    *self_p = NULL;
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (s_keys (prefix, name, hash, set) != TY_OK)
        return TY_EINVAL;
    ty_schedrec_hash_t h;
    int rc = ty_schedrec_hgetall (redis, hash, &h);
    if (rc != TY_OK)
        return rc;
    ty_trigger_t *self = calloc (1, sizeof *self);
    if (!self) {
        ty_schedrec_hash_free (&h);
        return TY_ENOMEM;
    }
    if (ty_trigger_kind_parse (ty_schedrec_get (&h, "kind"), &self->kind) != TY_OK)
        self->kind = TY_TRIGGER_KIND_COUNT;     /* checks report it */
    self->name = s_dup (name);
    self->file = s_dup (ty_schedrec_get (&h, "file"));
    self->dataset = s_dup (ty_schedrec_get (&h, "dataset"));
    self->model = s_dup (ty_schedrec_get (&h, "model"));
    self->metric = s_dup (ty_schedrec_get (&h, "metric"));
    self->last_fired = s_dup (ty_schedrec_get (&h, "last_fired"));
    self->last_run_pipeline = s_dup (ty_schedrec_get (&h, "last_run_pipeline"));
    self->last_error = s_dup (ty_schedrec_get (&h, "last_error"));
    self->last_check = s_dup (ty_schedrec_get (&h, "last_check"));
    int64_t n = ty_schedrec_get_int (&h, "new_samples", 0);
    self->new_samples = n > 0 ? (uint64_t) n : 0;
    self->older_than_days = s_get_double (&h, "older_than_days");
    self->threshold = s_get_double (&h, "threshold");
    self->created = ty_schedrec_get_int (&h, "created", 0);
    self->last_fired_ms = ty_schedrec_get_int (&h, "last_fired_ms", 0);
    rc = ty_schedrec_sets_decode (ty_schedrec_get (&h, "sets"), &self->sets, &self->nsets);
    if (rc == TY_EINVAL)
        rc = TY_OK;
    ty_schedrec_hash_free (&h);
    if (rc == TY_OK && (!self->name || !self->file || !self->dataset || !self->model
                        || !self->metric || !self->last_fired || !self->last_run_pipeline
                        || !self->last_error || !self->last_check))
        rc = TY_ENOMEM;
    if (rc != TY_OK) {
        ty_trigger_destroy (&self);
        return rc;
    }
    *self_p = self;
    return TY_OK;
}

int
ty_trigger_names (ty_redis_t *redis, const char *prefix, char ***names, size_t *n)
{
    char set [TY_SCHEDREC_KEY_MAX];
    if (snprintf (set, sizeof set, "%striggers", prefix) >= (int) sizeof set)
        return TY_EINVAL;
    return ty_schedrec_members (redis, set, names, n);
}

int
ty_trigger_remove (ty_redis_t *redis, const char *prefix, const char *name)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (s_keys (prefix, name, hash, set) != TY_OK)
        return TY_EINVAL;
    return ty_schedrec_remove (redis, hash, set, name);
}

int
ty_trigger_lease (ty_redis_t *redis, const char *prefix, const char *name,
                  const char *fire_key, const char *owner, int64_t ttl_ms, int *won)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX], key [TY_SCHEDREC_KEY_MAX];
    *won = 0;
    if (s_keys (prefix, name, hash, set) != TY_OK
        || snprintf (key, sizeof key, "%s:fire:%s", hash, fire_key) >= (int) sizeof key)
        return TY_EINVAL;
    return ty_schedrec_lease (redis, key, owner, ttl_ms, won);
}

static int
s_update (ty_redis_t *redis, const char *prefix, const char *name,
          const char *const *args, size_t nargs)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (s_keys (prefix, name, hash, set) != TY_OK)
        return TY_EINVAL;
    return ty_schedrec_update (redis, hash, args, nargs);
}

int
ty_trigger_record_fire (ty_redis_t *redis, const char *prefix, const char *name,
                        const char *fire_key, const char *pipeline, const char *error)
{
    char ms [S_NUM_MAX_CHARS];
    snprintf (ms, sizeof ms, "%" PRId64, ty_clock_wall_ms ());
    const char *args [] = {
        "last_fired", fire_key, "last_fired_ms", ms,
        "last_run_pipeline", pipeline ? pipeline : "", "last_error", error ? error : "",
    };
    return s_update (redis, prefix, name, args, sizeof args / sizeof args [0]);
}

int
ty_trigger_record_check (ty_redis_t *redis, const char *prefix, const char *name,
                         const char *text)
{
    char ms [S_NUM_MAX_CHARS];
    snprintf (ms, sizeof ms, "%" PRId64, ty_clock_wall_ms ());
    const char *args [] = { "last_check", text ? text : "", "last_check_ms", ms };
    return s_update (redis, prefix, name, args, sizeof args / sizeof args [0]);
}

/* ---- checks ------------------------------------------------------------------ */

static void
s_why (ty_trigger_verdict_t *v, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_why (ty_trigger_verdict_t *v, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (v->why, sizeof v->why, fmt, ap);
    va_end (ap);
}

/* Samples in every split of a dataset version ("name" = latest). */
static int
s_dataset_total (const char *data_dir, const char *spec, uint64_t *version, uint64_t *total)
{
    ty_dataset_t *ds = NULL;
    int rc = ty_dataset_open (data_dir, spec, &ds);
    if (rc != TY_OK)
        return rc;
    *total = 0;
    for (int s = TY_SPLIT_TRAIN; s < TY_SPLIT_COUNT; s++)
        *total += ty_dataset_count (ds, (ty_split_t) s);
    if (version)
        *version = ty_dataset_version (ds);
    ty_dataset_destroy (&ds);
    return TY_OK;
}

/* The version a trigger looks at: production, else (if latest_ok) the
 * latest. *version = 0 when there is none. */
static int
s_model_version (ty_registry_t *reg, const char *model, int latest_ok, uint64_t *version)
{
    char spec [TY_REGISTRY_NAME_MAX + 16];
    *version = 0;
    snprintf (spec, sizeof spec, "%s@production", model);
    int rc = ty_registry_resolve (reg, spec, NULL, NULL, version, NULL);
    if (rc == TY_ENOTFOUND && latest_ok) {
        snprintf (spec, sizeof spec, "%s@latest", model);
        rc = ty_registry_resolve (reg, spec, NULL, NULL, version, NULL);
    }
    if (rc == TY_ENOTFOUND) {
        *version = 0;
        return TY_OK;
    }
    return rc;
}

static int
s_check_new_samples (const ty_trigger_t *t, const char *data_dir, ty_registry_t *reg,
                     ty_trigger_verdict_t *v)
{
    uint64_t latest = 0, latest_total = 0;
    int rc = s_dataset_total (data_dir, t->dataset, &latest, &latest_total);
    if (rc == TY_ENOTFOUND) {
        s_why (v, "dataset %s has no version yet", t->dataset);
        return TY_OK;
    }
    if (rc != TY_OK) {
        s_why (v, "cannot read dataset %s: %s", t->dataset, ty_strerror (rc));
        return rc;
    }
    uint64_t mv = 0;
    if ((rc = s_model_version (reg, t->model, 1, &mv)) != TY_OK) {
        s_why (v, "registry: %s", ty_registry_errstr (reg));
        return rc;
    }
    uint64_t base_version = 0, base_total = 0;
    if (mv) {
        cJSON *doc = NULL;
        if ((rc = ty_registry_version_json (reg, t->model, mv, &doc)) != TY_OK) {
            s_why (v, "registry: %s", ty_registry_errstr (reg));
            return rc;
        }
        const cJSON *ds = cJSON_GetObjectItemCaseSensitive (
            cJSON_GetObjectItemCaseSensitive (doc, "lineage"), "dataset");
        const cJSON *dname = cJSON_GetObjectItemCaseSensitive (ds, "name");
        const cJSON *dver = cJSON_GetObjectItemCaseSensitive (ds, "version");
        int same = cJSON_IsString (dname) && !strcmp (dname->valuestring, t->dataset)
                   && cJSON_IsNumber (dver) && dver->valuedouble >= 1;
        if (same)
            base_version = (uint64_t) dver->valuedouble;
        cJSON_Delete (doc);
        if (!same) {
            s_why (v, "%s@%" PRIu64 " was not trained on a version of dataset %s",
                   t->model, mv, t->dataset);
            return TY_EINVAL;
        }
        char spec [TY_DATASET_SPEC_MAX];
        snprintf (spec, sizeof spec, "%s@%" PRIu64, t->dataset, base_version);
        if ((rc = s_dataset_total (data_dir, spec, NULL, &base_total)) != TY_OK) {
            s_why (v, "cannot read %s (the training version of %s@%" PRIu64 "): %s",
                   spec, t->model, mv, ty_strerror (rc));
            return rc;
        }
    }
    uint64_t gained = latest_total > base_total ? latest_total - base_total : 0;
    snprintf (v->key, sizeof v->key, "%" PRIu64, latest);
    v->holds = gained >= t->new_samples;
    s_why (v, "%s@%" PRIu64 " has %" PRIu64 " new samples since %s (%s@%" PRIu64 "), "
           "threshold %" PRIu64, t->dataset, latest, gained,
           mv ? "the model's training version" : "nothing (no model yet)",
           t->dataset, base_version, t->new_samples);
    return TY_OK;
}

static int
s_check_model (const ty_trigger_t *t, ty_registry_t *reg, int64_t now, ty_trigger_verdict_t *v)
{
    uint64_t mv = 0;
    int rc = s_model_version (reg, t->model, 0, &mv);
    if (rc != TY_OK) {
        s_why (v, "registry: %s", ty_registry_errstr (reg));
        return rc;
    }
    if (!mv) {
        s_why (v, "%s has no production version", t->model);
        return TY_OK;
    }
    cJSON *doc = NULL;
    if ((rc = ty_registry_version_json (reg, t->model, mv, &doc)) != TY_OK) {
        s_why (v, "registry: %s", ty_registry_errstr (reg));
        return rc;
    }
    snprintf (v->key, sizeof v->key, "v%" PRIu64, mv);
    if (t->kind == TY_TRIGGER_OLDER_THAN) {
        const cJSON *reg_ms = cJSON_GetObjectItemCaseSensitive (doc, "registered_ms");
        double age_days = cJSON_IsNumber (reg_ms)
            ? ((double) now - reg_ms->valuedouble / 1000.0) / TY_TRIGGER_SECS_PER_DAY : 0.0;
        v->holds = cJSON_IsNumber (reg_ms) && age_days >= t->older_than_days;
        s_why (v, "%s@%" PRIu64 " (production) is %.2f days old, limit %g", t->model, mv,
               age_days, t->older_than_days);
    }
    else {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive (
            cJSON_GetObjectItemCaseSensitive (
                cJSON_GetObjectItemCaseSensitive (doc, "metrics"), "headline"), t->metric);
        if (!cJSON_IsNumber (m))
            s_why (v, "%s@%" PRIu64 " (production) has no evaluated %s", t->model, mv, t->metric);
        else {
            v->holds = m->valuedouble < t->threshold;
            s_why (v, "%s@%" PRIu64 " (production) %s = %g, threshold %g", t->model, mv,
                   t->metric, m->valuedouble, t->threshold);
        }
    }
    cJSON_Delete (doc);
    return TY_OK;
}

int
ty_trigger_check (const ty_trigger_t *t, const char *data_dir, int64_t now,
                  ty_trigger_verdict_t *v)
{
    memset (v, 0, sizeof *v);
    if (t->kind >= TY_TRIGGER_KIND_COUNT) {
        s_why (v, "unknown trigger kind");
        return TY_EINVAL;
    }
    ty_registry_t *reg = NULL;
    int rc = ty_registry_open (data_dir, &reg);
    if (rc != TY_OK) {
        s_why (v, "cannot open the registry under %s: %s", data_dir, ty_strerror (rc));
        return rc;
    }
    if (t->kind == TY_TRIGGER_NEW_SAMPLES)
        rc = s_check_new_samples (t, data_dir, reg, v);
    else
        rc = s_check_model (t, reg, now, v);
    ty_registry_destroy (&reg);
    v->fire = rc == TY_OK && v->holds && strcmp (v->key, t->last_fired ? t->last_fired : "");
    return rc;
}

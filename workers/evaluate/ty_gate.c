/*  ty_gate: thresholds -> PASS/FAIL/SKIP checks and a verdict. See ty_gate.h. */
#include "ty_gate.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ty_error.h"
#include "ty_metrics.h"

#define S_KEY_HIGH_CONF "high_conf_threshold"
#define S_NOTE_NOT_MEASURED "not measured"
#define S_NOTE_NO_PRODUCTION "no production model"
#define S_NOTE_NO_SUPPORTED "no class with test samples"

/* How a threshold is compared and what range it may take. */
typedef enum { S_RATIO, S_NONNEG, S_SIGNED_RATIO } s_range_t;

static const struct {
    const char *name;
    int         is_max;   /* 1: measured <= threshold passes */
    s_range_t   range;
} s_kinds[TY_GATE_KIND_COUNT] = {
    [TY_GATE_MIN_ACCURACY]            = { "min_accuracy", 0, S_RATIO },
    [TY_GATE_MIN_CLASS_RECALL]        = { "min_class_recall", 0, S_RATIO },
    [TY_GATE_MIN_MACRO_F1]            = { "min_macro_f1", 0, S_RATIO },
    [TY_GATE_MIN_ROC_AUC]             = { "min_roc_auc", 0, S_RATIO },
    [TY_GATE_MAX_P95_LATENCY_MS]      = { "max_p95_latency_ms", 1, S_NONNEG },
    [TY_GATE_MAX_MEMORY_MB]           = { "max_memory_mb", 1, S_NONNEG },
    [TY_GATE_MIN_HIGH_CONF_SHARE]     = { "min_high_conf_share", 0, S_RATIO },
    [TY_GATE_MAX_ACCURACY_REGRESSION] = { "max_accuracy_regression", 1, S_SIGNED_RATIO },
};

const char *
ty_gate_kind_name (ty_gate_kind_t kind)
{
    return (unsigned) kind < TY_GATE_KIND_COUNT ? s_kinds[kind].name : NULL;
}

const char *
ty_gate_kind_op (ty_gate_kind_t kind)
{
    return (unsigned) kind < TY_GATE_KIND_COUNT && s_kinds[kind].is_max ? "<=" : ">=";
}

const char *
ty_gate_status_name (ty_gate_status_t status)
{
    switch (status) {
    case TY_GATE_PASS: return "PASS";
    case TY_GATE_FAIL: return "FAIL";
    case TY_GATE_SKIP: return "SKIP";
    }
    return "?";
}

void
ty_gate_spec_init (ty_gate_spec_t *spec)
{
    memset (spec, 0, sizeof *spec);
    spec->high_conf_threshold = TY_GATE_HIGH_CONF_DEFAULT;
}

static int
s_in_range (s_range_t range, double t)
{
    if (!isfinite (t))
        return 0;
    switch (range) {
    case S_RATIO:        return t >= 0.0 && t <= 1.0;
    case S_NONNEG:       return t >= 0.0;
    case S_SIGNED_RATIO: return t >= -1.0 && t <= 1.0;
    }
    return 0;
}

int
ty_gate_spec_set (ty_gate_spec_t *spec, ty_gate_kind_t kind, double t)
{
    if (!spec || (unsigned) kind >= TY_GATE_KIND_COUNT
        || !s_in_range (s_kinds[kind].range, t))
        return TY_EINVAL;
    spec->enabled[kind] = 1;
    spec->threshold[kind] = t;
    return TY_OK;
}

static int
s_fail (char *err, size_t err_len, const char *what, const char *key)
{
    if (err && err_len > 0)
        snprintf (err, err_len, "gate: %s%s%s", what, key ? ": " : "", key ? key : "");
    return TY_EINVAL;
}

int
ty_gate_spec_parse (const char *json, ty_gate_spec_t *spec, char *err,
                    size_t err_len)
{
    if (!json || !spec)
        return s_fail (err, err_len, "no spec", NULL);
    ty_gate_spec_init (spec);
    cJSON *root = cJSON_Parse (json);
    if (!root)
        return s_fail (err, err_len, "not valid JSON", NULL);
    int rc = TY_OK;
    if (!cJSON_IsObject (root)) {
        rc = s_fail (err, err_len, "not a JSON object", NULL);
        goto done;
    }
    const cJSON *item;
    cJSON_ArrayForEach (item, root) {
        const char *key = item->string;
        if (cJSON_IsNull (item))
            continue;
        if (!cJSON_IsNumber (item)) {
            rc = s_fail (err, err_len, "value is not a number", key);
            goto done;
        }
        double v = item->valuedouble;
        if (strcmp (key, S_KEY_HIGH_CONF) == 0) {
            if (!s_in_range (S_RATIO, v)) {
                rc = s_fail (err, err_len, "must be in [0, 1]", key);
                goto done;
            }
            spec->high_conf_threshold = v;
            continue;
        }
        int kind = -1;
        for (int k = 0; k < TY_GATE_KIND_COUNT; k++)
            if (strcmp (key, s_kinds[k].name) == 0)
                kind = k;
        if (kind < 0) {
            rc = s_fail (err, err_len, "unknown check", key);
            goto done;
        }
        if (ty_gate_spec_set (spec, (ty_gate_kind_t) kind, v) != TY_OK) {
            rc = s_fail (err, err_len, "threshold out of range", key);
            goto done;
        }
    }
done:
    cJSON_Delete (root);
    if (rc != TY_OK)
        ty_gate_spec_init (spec);
    return rc;
}

void
ty_gate_measured_init (ty_gate_measured_t *m)
{
    memset (m, 0, sizeof *m);
    m->accuracy = m->macro_f1 = m->roc_auc = NAN;
    m->p95_latency_ms = m->memory_mb = m->high_conf_share = NAN;
    m->production_accuracy = NAN;
}

/* Lowest recall among classes with support, its class and how many are
 * below t. Returns NaN when no class qualifies. */
static double
s_worst_recall (const ty_gate_measured_t *m, double t, int32_t *cls,
                int32_t *n_failing)
{
    double worst = NAN;
    *cls = -1;
    *n_failing = 0;
    if (!m->class_recall)
        return NAN;
    for (size_t c = 0; c < m->n_classes; c++) {
        if (m->class_support && m->class_support[c] == 0)
            continue;
        double r = m->class_recall[c];
        if (isnan (r))
            continue;
        if (r < t)
            (*n_failing)++;
        if (isnan (worst) || r < worst) {
            worst = r;
            *cls = (int32_t) c;
        }
    }
    return worst;
}

int
ty_gate_evaluate (const ty_gate_spec_t *spec, const ty_gate_measured_t *m,
                  ty_gate_result_t *out)
{
    if (!spec || !m || !out)
        return TY_EINVAL;
    memset (out, 0, sizeof *out);
    out->passed = 1;
    for (int k = 0; k < TY_GATE_KIND_COUNT; k++) {
        if (!spec->enabled[k])
            continue;
        ty_gate_check_t *c = &out->checks[out->n_checks++];
        c->kind = (ty_gate_kind_t) k;
        c->threshold = spec->threshold[k];
        c->class_index = -1;
        c->measured = NAN;
        const char *missing_note = S_NOTE_NOT_MEASURED;
        int missing_skips = 0;   /* 1: an absent measurement is no failure */
        switch ((ty_gate_kind_t) k) {
        case TY_GATE_MIN_ACCURACY:        c->measured = m->accuracy; break;
        case TY_GATE_MIN_MACRO_F1:        c->measured = m->macro_f1; break;
        case TY_GATE_MIN_ROC_AUC:         c->measured = m->roc_auc; break;
        case TY_GATE_MAX_P95_LATENCY_MS:  c->measured = m->p95_latency_ms; break;
        case TY_GATE_MAX_MEMORY_MB:       c->measured = m->memory_mb; break;
        case TY_GATE_MIN_HIGH_CONF_SHARE: c->measured = m->high_conf_share; break;
        case TY_GATE_MIN_CLASS_RECALL:
            c->measured = s_worst_recall (m, c->threshold, &c->class_index,
                                          &c->n_failing);
            if (m->class_recall && m->n_classes > 0)
                missing_note = S_NOTE_NO_SUPPORTED;
            break;
        case TY_GATE_MAX_ACCURACY_REGRESSION:
            c->measured = m->production_accuracy - m->accuracy;
            if (isnan (m->production_accuracy)) {
                missing_note = S_NOTE_NO_PRODUCTION;
                missing_skips = 1;
            }
            break;
        case TY_GATE_KIND_COUNT:
            break;
        }
        if (isnan (c->measured)) {
            c->note = missing_note;
            c->status = missing_skips ? TY_GATE_SKIP : TY_GATE_FAIL;
        } else if (s_kinds[k].is_max) {
            c->status = c->measured <= c->threshold ? TY_GATE_PASS : TY_GATE_FAIL;
        } else {
            c->status = c->measured >= c->threshold ? TY_GATE_PASS : TY_GATE_FAIL;
        }
        if (c->status == TY_GATE_FAIL)
            out->passed = 0;
    }
    return TY_OK;
}

const ty_gate_check_t *
ty_gate_result_find (const ty_gate_result_t *r, ty_gate_kind_t kind)
{
    for (size_t i = 0; r && i < r->n_checks; i++)
        if (r->checks[i].kind == kind)
            return &r->checks[i];
    return NULL;
}

char *
ty_gate_check_format (const ty_gate_check_t *c, char *buf, size_t len)
{
    char measured[32];
    if (isnan (c->measured))
        snprintf (measured, sizeof measured, "-");
    else
        snprintf (measured, sizeof measured, "%.6g", c->measured);
    int n = snprintf (buf, len, "%-24s %12s %s %-10.6g %s",
                      ty_gate_kind_name (c->kind), measured,
                      ty_gate_kind_op (c->kind), c->threshold,
                      ty_gate_status_name (c->status));
    if (n >= 0 && (size_t) n < len && c->class_index >= 0)
        n += snprintf (buf + n, len - (size_t) n, "  (class %d, %d below)",
                       (int) c->class_index, (int) c->n_failing);
    if (n >= 0 && (size_t) n < len && c->note)
        snprintf (buf + n, len - (size_t) n, "  (%s)", c->note);
    return buf;
}

cJSON *
ty_gate_result_json (const ty_gate_result_t *r, const ty_gate_spec_t *spec)
{
    cJSON *root = cJSON_CreateObject ();
    if (!root)
        return NULL;
    cJSON *arr = NULL;
    if (!cJSON_AddStringToObject (root, "verdict", r->passed ? "PASS" : "FAIL")
        || (spec && !cJSON_AddNumberToObject (root, S_KEY_HIGH_CONF,
                                              spec->high_conf_threshold))
        || !(arr = cJSON_AddArrayToObject (root, "checks")))
        goto fail;
    for (size_t i = 0; i < r->n_checks; i++) {
        const ty_gate_check_t *c = &r->checks[i];
        cJSON *o = cJSON_CreateObject ();
        if (!o || !cJSON_AddItemToArray (arr, o)) {
            cJSON_Delete (o);
            goto fail;
        }
        if (!cJSON_AddStringToObject (o, "check", ty_gate_kind_name (c->kind))
            || !cJSON_AddStringToObject (o, "status", ty_gate_status_name (c->status))
            || !ty_metrics_json_add_number (o, "measured", c->measured)
            || !cJSON_AddStringToObject (o, "op", ty_gate_kind_op (c->kind))
            || !ty_metrics_json_add_number (o, "threshold", c->threshold))
            goto fail;
        if (c->kind == TY_GATE_MIN_CLASS_RECALL
            && ((c->class_index >= 0 && !cJSON_AddNumberToObject (o, "class", c->class_index))
                || !cJSON_AddNumberToObject (o, "n_failing", c->n_failing)))
            goto fail;
        if (c->note && !cJSON_AddStringToObject (o, "note", c->note))
            goto fail;
    }
    return root;
fail:
    cJSON_Delete (root);
    return NULL;
}

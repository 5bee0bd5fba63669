/*  ty_analysis: rules -> observations -> recommendation. See ty_analysis.h. */
#include "ty_analysis.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ty_error.h"
#include "ty_metrics.h"

#define S_PERCENT 100.0

static const char *const s_kind_names[TY_OBS_KIND_COUNT] = {
    [TY_OBS_GATE_FAILED]           = "gate_failed",
    [TY_OBS_WORSE_THAN_PRODUCTION] = "worse_than_production",
    [TY_OBS_OVERFITTING]           = "overfitting",
    [TY_OBS_VAL_LOSS_RISING]       = "val_loss_rising",
    [TY_OBS_FEW_SAMPLES]           = "few_samples_per_class",
    [TY_OBS_LOW_RECALL]            = "low_class_recall",
    [TY_OBS_UNDERTRAINED]          = "undertrained",
    [TY_OBS_SHORT_HISTORY]         = "short_history",
};

const char *
ty_obs_kind_name (ty_obs_kind_t k)
{
    return (unsigned) k < TY_OBS_KIND_COUNT ? s_kind_names[k] : "?";
}

const char *
ty_recommendation_name (ty_recommendation_t r)
{
    switch (r) {
    case TY_REC_ACCEPT:              return "accept";
    case TY_REC_ACCEPT_WITH_CAUTION: return "accept_with_caution";
    case TY_REC_REVERT:              return "revert";
    }
    return "?";
}

const char *
ty_obs_severity_name (ty_obs_severity_t s)
{
    switch (s) {
    case TY_OBS_INFO:     return "info";
    case TY_OBS_WARNING:  return "warning";
    case TY_OBS_CRITICAL: return "critical";
    }
    return "?";
}

void
ty_analysis_config_init (ty_analysis_config_t *cfg)
{
    cfg->gap_warn = TY_ANALYSIS_GAP_WARN;
    cfg->gap_revert = TY_ANALYSIS_GAP_REVERT;
    cfg->val_loss_rise_rel = TY_ANALYSIS_VAL_LOSS_RISE_REL;
    cfg->min_samples_per_class = TY_ANALYSIS_MIN_SAMPLES_CLASS;
    cfg->min_class_recall = TY_ANALYSIS_MIN_CLASS_RECALL;
    cfg->loss_falling_rel = TY_ANALYSIS_LOSS_FALLING_REL;
    cfg->production_tolerance = TY_ANALYSIS_PROD_TOLERANCE;
}

void
ty_analysis_input_init (ty_analysis_input_t *in)
{
    memset (in, 0, sizeof *in);
    in->higher_is_better = 1;
    in->candidate_score = NAN;
    in->production_score = NAN;
    in->gate_passed = -1;
}

static ty_observation_t *
s_add (ty_analysis_t *a, ty_obs_kind_t kind, ty_obs_severity_t sev,
       double value, double threshold, const char *fmt, ...)
    __attribute__ ((format (printf, 6, 7)));

static ty_observation_t *
s_add (ty_analysis_t *a, ty_obs_kind_t kind, ty_obs_severity_t sev,
       double value, double threshold, const char *fmt, ...)
{
    if (a->n_observations >= TY_ANALYSIS_MAX_OBS)
        return NULL;   /* cannot happen: one observation per rule at most */
    ty_observation_t *o = &a->obs[a->n_observations++];
    o->kind = kind;
    o->severity = sev;
    o->value = value;
    o->threshold = threshold;
    o->class_index = -1;
    o->count = 0;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (o->message, sizeof o->message, fmt, ap);
    va_end (ap);
    return o;
}

static const char *
s_class_label (const ty_analysis_input_t *in, int32_t c, char *buf, size_t len)
{
    if (in->class_names && in->class_names[c])
        return in->class_names[c];
    snprintf (buf, len, "class %d", (int) c);
    return buf;
}

/* The last epoch's value, NaN without history. */
static double
s_last (const double *x, size_t n)
{
    return x && n > 0 ? x[n - 1] : NAN;
}

static void
s_rule_production (const ty_analysis_input_t *in, const ty_analysis_config_t *cfg,
                   ty_analysis_t *a)
{
    if (isnan (in->candidate_score) || isnan (in->production_score))
        return;
    const char *name = in->metric_name ? in->metric_name : "metric";
    double worse_by = in->higher_is_better ? in->production_score - in->candidate_score
                                           : in->candidate_score - in->production_score;
    if (worse_by > cfg->production_tolerance)
        s_add (a, TY_OBS_WORSE_THAN_PRODUCTION, TY_OBS_CRITICAL, worse_by,
               cfg->production_tolerance,
               "%s %.4g is worse than the production model's %.4g (by %.4g, "
               "tolerance %.4g)", name, in->candidate_score, in->production_score,
               worse_by, cfg->production_tolerance);
}

static void
s_rule_gap (const ty_analysis_input_t *in, const ty_analysis_config_t *cfg,
            ty_analysis_t *a)
{
    double tr = s_last (in->train_metric, in->n_epochs);
    double va = s_last (in->val_metric, in->n_epochs);
    if (isnan (tr) || isnan (va))
        return;
    const char *name = in->metric_name ? in->metric_name : "metric";
    double gap = in->higher_is_better ? tr - va : va - tr;
    if (gap < cfg->gap_warn)
        return;
    int severe = gap >= cfg->gap_revert;
    s_add (a, TY_OBS_OVERFITTING, severe ? TY_OBS_CRITICAL : TY_OBS_WARNING, gap,
           severe ? cfg->gap_revert : cfg->gap_warn,
           "overfitting: train %s %.4g vs validation %.4g at the last epoch "
           "(gap %.4g >= %.4g)", name, tr, va, gap,
           severe ? cfg->gap_revert : cfg->gap_warn);
}

static void
s_rule_val_loss (const ty_analysis_input_t *in, const ty_analysis_config_t *cfg,
                 ty_analysis_t *a)
{
    size_t n = in->n_loss_epochs;
    if (!in->val_loss || n < 2)
        return;
    size_t best = 0;
    for (size_t e = 1; e < n; e++)
        if (in->val_loss[e] < in->val_loss[best])
            best = e;
    double last = in->val_loss[n - 1], lo = in->val_loss[best];
    if (best == n - 1 || !(lo > 0))
        return;
    double rise = (last - lo) / lo;
    if (rise > cfg->val_loss_rise_rel)
        s_add (a, TY_OBS_VAL_LOSS_RISING, TY_OBS_WARNING, rise, cfg->val_loss_rise_rel,
               "overfitting: validation loss %.4g at the last epoch is %.1f%% above "
               "its best %.4g (epoch %zu)", last, rise * S_PERCENT, lo, best + 1);
}

static void
s_rule_undertrained (const ty_analysis_input_t *in, const ty_analysis_config_t *cfg,
                     ty_analysis_t *a)
{
    const double *loss = in->val_loss ? in->val_loss : in->train_loss;
    size_t n = in->n_loss_epochs;
    if (!loss || n == 0)
        return;
    if (n == 1) {
        s_add (a, TY_OBS_SHORT_HISTORY, TY_OBS_INFO, 1, 2,
               "one epoch of loss history: convergence cannot be judged");
        return;
    }
    double prev = loss[n - 2], last = loss[n - 1];
    if (!(prev > 0) || isnan (last))
        return;
    double drop = (prev - last) / prev;
    if (drop > cfg->loss_falling_rel)
        s_add (a, TY_OBS_UNDERTRAINED, TY_OBS_WARNING, drop, cfg->loss_falling_rel,
               "undertrained: %s loss still falling at the last epoch "
               "(%.4g -> %.4g, -%.1f%%); more epochs may help",
               in->val_loss ? "validation" : "training", prev, last, drop * S_PERCENT);
}

static void
s_rule_few_samples (const ty_analysis_input_t *in, const ty_analysis_config_t *cfg,
                    ty_analysis_t *a)
{
    if (!in->train_support || in->n_classes == 0)
        return;
    int32_t count = 0, worst = -1;
    for (size_t c = 0; c < in->n_classes; c++) {
        if (in->train_support[c] >= cfg->min_samples_per_class)
            continue;
        count++;
        if (worst < 0 || in->train_support[c] < in->train_support[worst])
            worst = (int32_t) c;
    }
    if (count == 0)
        return;
    char buf[32];
    ty_observation_t *o = s_add (
        a, TY_OBS_FEW_SAMPLES, TY_OBS_WARNING, (double) in->train_support[worst],
        (double) cfg->min_samples_per_class,
        "too few training samples: %d class(es) under %lld, fewest in %s (%lld)",
        (int) count, (long long) cfg->min_samples_per_class,
        s_class_label (in, worst, buf, sizeof buf), (long long) in->train_support[worst]);
    if (o) {
        o->class_index = worst;
        o->count = count;
    }
}

static void
s_rule_low_recall (const ty_analysis_input_t *in, const ty_analysis_config_t *cfg,
                   ty_analysis_t *a)
{
    if (!in->class_recall || in->n_classes == 0)
        return;
    int32_t count = 0, worst = -1;
    for (size_t c = 0; c < in->n_classes; c++) {
        if (in->test_support && in->test_support[c] == 0)
            continue;   /* recall 0.0 by convention, not a finding */
        double r = in->class_recall[c];
        if (isnan (r) || r >= cfg->min_class_recall)
            continue;
        count++;
        if (worst < 0 || r < in->class_recall[worst])
            worst = (int32_t) c;
    }
    if (count == 0)
        return;
    char buf[32];
    ty_observation_t *o = s_add (
        a, TY_OBS_LOW_RECALL, TY_OBS_WARNING, in->class_recall[worst],
        cfg->min_class_recall,
        "%d class(es) with recall under %.4g, lowest %s (%.4g)", (int) count,
        cfg->min_class_recall, s_class_label (in, worst, buf, sizeof buf),
        in->class_recall[worst]);
    if (o) {
        o->class_index = worst;
        o->count = count;
    }
}

int
ty_analysis_run (const ty_analysis_input_t *in, const ty_analysis_config_t *cfg,
                 ty_analysis_t *out)
{
    if (!in || !out)
        return TY_EINVAL;
    ty_analysis_config_t defaults;
    if (!cfg) {
        ty_analysis_config_init (&defaults);
        cfg = &defaults;
    }
    memset (out, 0, sizeof *out);
    if (in->gate_passed == 0)
        s_add (out, TY_OBS_GATE_FAILED, TY_OBS_CRITICAL, 0, 1,
               "the quality gate failed");
    s_rule_production (in, cfg, out);
    s_rule_gap (in, cfg, out);
    s_rule_val_loss (in, cfg, out);
    s_rule_few_samples (in, cfg, out);
    s_rule_low_recall (in, cfg, out);
    s_rule_undertrained (in, cfg, out);

    out->recommendation = TY_REC_ACCEPT;
    for (size_t i = 0; i < out->n_observations; i++) {
        if (out->obs[i].severity == TY_OBS_CRITICAL)
            out->recommendation = TY_REC_REVERT;
        else if (out->obs[i].severity == TY_OBS_WARNING
                 && out->recommendation == TY_REC_ACCEPT)
            out->recommendation = TY_REC_ACCEPT_WITH_CAUTION;
    }
    return TY_OK;
}

const ty_observation_t *
ty_analysis_find (const ty_analysis_t *a, ty_obs_kind_t kind)
{
    for (size_t i = 0; a && i < a->n_observations; i++)
        if (a->obs[i].kind == kind)
            return &a->obs[i];
    return NULL;
}

cJSON *
ty_analysis_json (const ty_analysis_t *a)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON *arr = NULL;
    if (!root
        || !cJSON_AddStringToObject (root, "recommendation",
                                     ty_recommendation_name (a->recommendation))
        || !(arr = cJSON_AddArrayToObject (root, "observations")))
        goto fail;
    for (size_t i = 0; i < a->n_observations; i++) {
        const ty_observation_t *o = &a->obs[i];
        cJSON *j = cJSON_CreateObject ();
        if (!j || !cJSON_AddItemToArray (arr, j)) {
            cJSON_Delete (j);
            goto fail;
        }
        if (!cJSON_AddStringToObject (j, "kind", ty_obs_kind_name (o->kind))
            || !cJSON_AddStringToObject (j, "severity", ty_obs_severity_name (o->severity))
            || !cJSON_AddStringToObject (j, "message", o->message)
            || !ty_metrics_json_add_number (j, "value", o->value)
            || !ty_metrics_json_add_number (j, "threshold", o->threshold))
            goto fail;
        if (o->class_index >= 0
            && (!cJSON_AddNumberToObject (j, "class", o->class_index)
                || !cJSON_AddNumberToObject (j, "count", o->count)))
            goto fail;
    }
    return root;
fail:
    cJSON_Delete (root);
    return NULL;
}

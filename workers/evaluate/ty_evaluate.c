/*  ty_evaluate: an evaluate job, from an EvaluateSpec to metrics.json.
 *  See ty_evaluate.h for what it does; this file is organised as the job
 *  runs: spec and params, loading, checks, inference, metrics per task,
 *  latency, gate and analysis, the document. */
#include "ty_evaluate.h"
#include "ty_registry.h"
#include "ty_analysis.h"
#include "ty_batch.h"
#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_gate.h"
#include "ty_latency.h"
#include "ty_metrics.h"
#include "ty_modeldir.h"
#include "ty_negsample.h"
#include "ty_report.h"
#include "ty_torch.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define S_PATH_MAX          4096
#define S_JSON_MAX_BYTES    (16u << 20)   /* config/history/lineage: small files */
#define S_MAX_CONFUSIONS    10
#define S_UNKNOWN_SHOWN     5             /* unknown labels named in a message */
#define S_LATENCY_POOL      1024          /* distinct samples cycled by the latency loop */

/* Progress milestones: inference is most of the time, then the latency loop. */
#define S_P_LOADED     0.05
#define S_P_INFERRED   0.60
#define S_P_METRICS    0.65
#define S_P_FITCHECK   0.75
#define S_P_LATENCY    0.95

typedef struct {
    /* inputs */
    const ty_evaluate_opts_t  *opts;
    const Ty__EvaluateSpec    *spec;
    const ty_evaluate_hooks_t *hooks;
    char   *err;
    size_t  errlen;
    /* params */
    int      threads;
    double   label_threshold;
    size_t   warmup;
    size_t   fit_check;
    size_t   max_confusions;
    size_t   batch;
    size_t   latency_n;
    size_t   top_k;
    size_t   n_neg;
    uint64_t seed;
    double   conf_threshold;
    ty_gate_spec_t gate;
    int      has_gate;
    /* the model */
    char     model_name [TY_REPORT_MODEL_NAME_MAX + 1];
    uint64_t model_version;
    char     model_dir [S_PATH_MAX];
    ty_torch_model_t *model;
    ty_batch_feat_t  *feat;
    ty_batch_task_t   task;
    int64_t  width;                 /* outputs per sample */
    cJSON   *history;
    cJSON   *lineage;
    cJSON   *config;
    /* the data */
    ty_dataset_t   *ds;
    ty_split_t      split;
    int             has_fold;       /* k-fold: params.fold was given */
    ty_batch_folds_t folds;         /* which samples of the split (ALL without fold) */
    ty_batch_set_t *set;
    size_t          n;              /* samples evaluated */
    /* scratch for predictions */
    float   *out;
    size_t   out_cap;
    uint64_t *idx;
    size_t   idx_cap;
    /* timings */
    double   infer_ms;
} s_eval_t;

/* ======================================================================
 *  Errors, hooks
 * ====================================================================== */

static int
s_fail (s_eval_t *e, int rc, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static int
s_fail (s_eval_t *e, int rc, const char *fmt, ...)
{
    if (e->err && e->errlen) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (e->err, e->errlen, fmt, ap);
        va_end (ap);
    }
    return rc;
}

static void
s_progress (s_eval_t *e, double fraction, const char *phase, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_progress (s_eval_t *e, double fraction, const char *phase, const char *fmt, ...)
{
    if (!e->hooks || !e->hooks->progress)
        return;
    char msg [256] = "";
    if (fmt) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (msg, sizeof msg, fmt, ap);
        va_end (ap);
    }
    e->hooks->progress (e->hooks->arg, fraction, phase, fmt ? msg : NULL);
}

static void
s_log (s_eval_t *e, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_log (s_eval_t *e, const char *fmt, ...)
{
    if (!e->hooks || !e->hooks->log)
        return;
    char line [512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (line, sizeof line, fmt, ap);
    va_end (ap);
    e->hooks->log (e->hooks->arg, line);
}

static void
s_metric (s_eval_t *e, const char *key, double value)
{
    if (e->hooks && e->hooks->metric && isfinite (value))
        e->hooks->metric (e->hooks->arg, key, value);
}

static int
s_cancelled (s_eval_t *e)
{
    return e->hooks && e->hooks->cancelled && e->hooks->cancelled (e->hooks->arg);
}

/* ======================================================================
 *  Spec and params
 * ====================================================================== */

static int
s_param_double (s_eval_t *e, const char *key, const char *v, double min, double max,
                double *out)
{
    char *end;
    errno = 0;
    double d = strtod (v, &end);
    if (!*v || *end || errno || !isfinite (d) || d < min || d > max)
        return s_fail (e, TY_EINVAL, "params: %s = '%s' is not a number in [%g, %g]",
                       key, v, min, max);
    *out = d;
    return TY_OK;
}

static int
s_param_size (s_eval_t *e, const char *key, const char *v, size_t min, size_t max, size_t *out)
{
    double d;
    int rc = s_param_double (e, key, v, (double) min, (double) max, &d);
    if (rc != TY_OK)
        return rc;
    if (d != floor (d))
        return s_fail (e, TY_EINVAL, "params: %s = '%s' is not a whole number", key, v);
    *out = (size_t) d;
    return TY_OK;
}

static int
s_parse_spec (s_eval_t *e)
{
    const Ty__EvaluateSpec *spec = e->spec;
    e->threads = e->opts->threads > 0 ? e->opts->threads : 1;
    e->label_threshold = TY_EVALUATE_LABEL_THRESHOLD;
    e->warmup = TY_LATENCY_WARMUP_DEFAULT;
    e->fit_check = TY_EVALUATE_FIT_CHECK_SAMPLES;
    e->max_confusions = S_MAX_CONFUSIONS;
    e->batch = spec->batch_size ? spec->batch_size : TY_EVALUATE_BATCH_DEFAULT;
    if (e->batch > TY_EVALUATE_BATCH_MAX)
        return s_fail (e, TY_EINVAL, "batch_size %zu is over the limit %d", e->batch,
                       TY_EVALUATE_BATCH_MAX);
    e->latency_n = spec->latency_samples ? spec->latency_samples : TY_LATENCY_SAMPLES_DEFAULT;
    if (e->latency_n > TY_LATENCY_SAMPLES_MAX)
        return s_fail (e, TY_EINVAL, "latency_samples %zu is over the limit %d", e->latency_n,
                       TY_LATENCY_SAMPLES_MAX);
    e->top_k = spec->top_k ? spec->top_k : TY_EVALUATE_TOP_K_DEFAULT;
    e->n_neg = spec->negatives ? spec->negatives : TY_EVALUATE_NEGATIVES_DEFAULT;
    if (e->n_neg > TY_EVALUATE_NEGATIVES_MAX)
        return s_fail (e, TY_EINVAL, "negatives %zu is over the limit %d", e->n_neg,
                       TY_EVALUATE_NEGATIVES_MAX);
    e->seed = spec->seed ? spec->seed : 1;
    if (spec->confidence_threshold < 0 || spec->confidence_threshold > 1
        || isnan (spec->confidence_threshold))
        return s_fail (e, TY_EINVAL, "confidence_threshold %g is not in [0, 1]",
                       spec->confidence_threshold);

    ty_gate_spec_init (&e->gate);
    if (spec->gate && *spec->gate) {
        char gerr [TY_GATE_ERR_MAX];
        if (ty_gate_spec_parse (spec->gate, &e->gate, gerr, sizeof gerr) != TY_OK)
            return s_fail (e, TY_EINVAL, "gate: %s", gerr);
        e->has_gate = 1;
    }
    /* the spec's own field wins over the gate's high_conf_threshold */
    e->conf_threshold = spec->confidence_threshold > 0 ? spec->confidence_threshold
                                                       : e->gate.high_conf_threshold;
    e->gate.high_conf_threshold = e->conf_threshold;

    for (size_t i = 0; i < spec->n_params; i++) {
        const char *k = spec->params [i]->key ? spec->params [i]->key : "";
        const char *v = spec->params [i]->value ? spec->params [i]->value : "";
        int rc;
        size_t z;
        if (!strcmp (k, "threads")) {
            rc = s_param_size (e, k, v, 1, 256, &z);
            e->threads = (int) z;
        }
        else if (!strcmp (k, "label_threshold"))
            rc = s_param_double (e, k, v, 0.0, 1.0, &e->label_threshold);
        else if (!strcmp (k, "warmup"))
            rc = s_param_size (e, k, v, 0, TY_LATENCY_SAMPLES_MAX, &e->warmup);
        else if (!strcmp (k, "fit_check_samples"))
            rc = s_param_size (e, k, v, 0, SIZE_MAX >> 8, &e->fit_check);
        else if (!strcmp (k, "max_confusions"))
            rc = s_param_size (e, k, v, 0, 1000, &e->max_confusions);
        else if (!strcmp (k, "fold")) {
            /* the upper bound is the dataset's fold count, checked once it is open */
            rc = s_param_size (e, k, v, 0, INT32_MAX, &z);
            e->has_fold = 1;
            e->folds.mode = TY_BATCH_FOLDS_ONLY;
            e->folds.fold = (uint32_t) z;
        }
        else
            rc = s_fail (e, TY_EINVAL, "params: unknown key '%s' (known: threads, "
                         "label_threshold, warmup, fit_check_samples, max_confusions, fold)", k);
        if (rc != TY_OK)
            return rc;
    }
    /* k-fold: folds are numbers of the train split's samples */
    const char *split = spec->split && *spec->split ? spec->split
                      : e->has_fold ? "train" : "test";
    if (ty_split_parse (split, &e->split) != TY_OK)
        return s_fail (e, TY_EINVAL, "split '%s': train, val, test or calib", split);
    if (e->has_fold && e->split != TY_SPLIT_TRAIN)
        return s_fail (e, TY_EINVAL, "params: fold %u evaluates samples of the train split; "
                       "split '%s' cannot be combined with it", e->folds.fold, split);
    return TY_OK;
}

/* ======================================================================
 *  Loading
 * ====================================================================== */

/* A small JSON file of the model dir; NULL when absent or unreadable. */
static cJSON *
s_read_json (const char *dir, const char *file)
{
    char path [S_PATH_MAX];
    if (snprintf (path, sizeof path, "%s/%s", dir, file) >= (int) sizeof path)
        return NULL;
    FILE *f = fopen (path, "re");
    if (!f)
        return NULL;
    struct stat st;
    cJSON *doc = NULL;
    if (fstat (fileno (f), &st) == 0 && st.st_size > 0 && st.st_size <= S_JSON_MAX_BYTES) {
        char *text = malloc ((size_t) st.st_size + 1);
        if (text && fread (text, 1, (size_t) st.st_size, f) == (size_t) st.st_size) {
            text [st.st_size] = '\0';
            doc = cJSON_ParseWithLength (text, (size_t) st.st_size);
        }
        free (text);
    }
    fclose (f);
    return doc;
}

static const char *
s_task_name (ty_batch_task_t t)
{
    switch (t) {
    case TY_BATCH_TASK_SINGLE:     return "classification";
    case TY_BATCH_TASK_MULTI:      return "multilabel";
    case TY_BATCH_TASK_REGRESSION: return "regression";
    case TY_BATCH_TASK_RANKING:    return "ranking";
    }
    return "?";
}

/* Loads weights and featurizer of a model spec into *model and *feat; dir and
 * version out. Shared by the candidate and the baseline. */
static int
s_load_model (s_eval_t *e, const char *spec, char *dir, size_t dirlen, uint64_t *version,
              ty_torch_model_t **model, ty_batch_feat_t **feat)
{
    const char *why = "";
    int rc = ty_report_model_dir (e->opts->data_dir, spec, dir, dirlen, version, &why);
    if (rc == TY_EINVAL)
        return s_fail (e, rc, "model '%s': %s", spec, why);
    if (rc == TY_ENOTFOUND)
        return s_fail (e, rc, "model %s: %s under %s/models", spec, why, e->opts->data_dir);
    if (rc != TY_OK)
        return s_fail (e, rc, "model %s: %s", spec, ty_strerror (rc));
    char path [S_PATH_MAX], msg [TY_BATCH_ERR_LEN];
    if (snprintf (path, sizeof path, "%s/%s", dir, TY_MODELDIR_WEIGHTS) >= (int) sizeof path)
        return s_fail (e, ENAMETOOLONG, "model %s: path too long", spec);
    rc = ty_torch_load (path, e->threads, model, msg, sizeof msg);
    if (rc != TY_OK)
        return s_fail (e, rc, "model %s: cannot load %s: %s", spec, path, msg);
    rc = ty_batch_feat_load (dir, feat, msg, sizeof msg);
    if (rc != TY_OK) {
        ty_torch_destroy (model);
        return s_fail (e, rc, "model %s: cannot load its featurizer: %s", spec, msg);
    }
    return TY_OK;
}

/* The dataset the model was trained on, from lineage.json: "dataset" as
 * "name@version" or {name, version}, or dataset_name + dataset_version. */
static int
s_lineage_dataset (const cJSON *lineage, char *buf, size_t len)
{
    if (!lineage)
        return 0;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive (lineage, "dataset");
    const cJSON *name = NULL, *ver = NULL;
    if (cJSON_IsString (d) && strchr (d->valuestring, '@')) {
        snprintf (buf, len, "%s", d->valuestring);
        return 1;
    }
    if (cJSON_IsObject (d)) {
        name = cJSON_GetObjectItemCaseSensitive (d, "name");
        ver = cJSON_GetObjectItemCaseSensitive (d, "version");
    }
    else {
        name = cJSON_IsString (d) ? d : cJSON_GetObjectItemCaseSensitive (lineage, "dataset_name");
        ver = cJSON_GetObjectItemCaseSensitive (lineage, "dataset_version");
    }
    if (!cJSON_IsString (name))
        return 0;
    if (cJSON_IsNumber (ver) && ver->valuedouble >= 1)
        snprintf (buf, len, "%s@%.0f", name->valuestring, ver->valuedouble);
    else
        snprintf (buf, len, "%s", name->valuestring);
    return 1;
}

static int
s_load (s_eval_t *e)
{
    int rc = s_load_model (e, e->spec->model, e->model_dir, sizeof e->model_dir,
                           &e->model_version, &e->model, &e->feat);
    if (rc != TY_OK)
        return rc;
    const char *why;
    ty_report_model_spec_parse (e->spec->model, e->model_name, &(uint64_t) { 0 }, &why);
    e->task = ty_batch_feat_task (e->feat);
    e->width = ty_torch_output_width (e->model);
    int64_t want = ty_batch_feat_noutputs (e->feat);
    if (e->width != want)
        return s_fail (e, TY_EPROTO, "model %s@%llu: the weights give %lld outputs per sample, "
                       "the featurizer expects %lld", e->model_name,
                       (unsigned long long) e->model_version, (long long) e->width,
                       (long long) want);
    e->history = s_read_json (e->model_dir, TY_MODELDIR_HISTORY);
    e->lineage = s_read_json (e->model_dir, TY_MODELDIR_LINEAGE);
    e->config = s_read_json (e->model_dir, TY_MODELDIR_CONFIG);

    char ds_spec [TY_DATASET_SPEC_MAX + 8];
    if (e->spec->dataset && *e->spec->dataset)
        snprintf (ds_spec, sizeof ds_spec, "%s", e->spec->dataset);
    else if (!s_lineage_dataset (e->lineage, ds_spec, sizeof ds_spec))
        return s_fail (e, TY_EINVAL, "model %s@%llu names no training dataset (lineage.json): "
                       "give the dataset to evaluate on", e->model_name,
                       (unsigned long long) e->model_version);
    rc = ty_dataset_open (e->opts->data_dir, ds_spec, &e->ds);
    if (rc == TY_ENOTFOUND)
        return s_fail (e, rc, "dataset %s not found under %s/datasets", ds_spec,
                       e->opts->data_dir);
    if (rc != TY_OK)
        return s_fail (e, rc, "dataset %s: %s", ds_spec, ty_strerror (rc));
    return TY_OK;
}

/* ======================================================================
 *  Checks: does the data fit the model?
 * ====================================================================== */

static int
s_check_labels (s_eval_t *e)
{
    if (e->task != TY_BATCH_TASK_SINGLE && e->task != TY_BATCH_TASK_MULTI)
        return TY_OK;
    size_t nds = ty_dataset_label_count (e->ds);
    int64_t nmodel = ty_batch_feat_noutputs (e->feat);
    char unknown [512] = "";
    size_t used = 0, n_unknown = 0;
    for (size_t i = 0; i < nds; i++) {
        const char *l = ty_dataset_label (e->ds, i);
        int found = 0;
        for (int64_t j = 0; j < nmodel && !found; j++) {
            const char *m = ty_batch_feat_label (e->feat, j);
            found = m && l && !strcmp (m, l);
        }
        if (found)
            continue;
        if (n_unknown++ < S_UNKNOWN_SHOWN && used < sizeof unknown) {
            int w = snprintf (unknown + used, sizeof unknown - used, "%s'%s'",
                              used ? ", " : "", l ? l : "");
            if (w > 0)
                used += (size_t) w;
        }
    }
    if (n_unknown == 0)
        return TY_OK;
    char model_labels [256] = "";
    used = 0;
    for (int64_t j = 0; j < nmodel && j < S_UNKNOWN_SHOWN && used < sizeof model_labels; j++) {
        int w = snprintf (model_labels + used, sizeof model_labels - used, "%s'%s'",
                          used ? ", " : "", ty_batch_feat_label (e->feat, j));
        if (w > 0)
            used += (size_t) w;
    }
    return s_fail (e, TY_EINVAL, "label set mismatch: dataset %s@%llu has %zu label(s) model "
                   "%s@%llu was not trained on (%s%s); the model knows %lld: %s%s",
                   ty_dataset_name (e->ds), (unsigned long long) ty_dataset_version (e->ds),
                   n_unknown, e->model_name, (unsigned long long) e->model_version, unknown,
                   n_unknown > S_UNKNOWN_SHOWN ? ", ..." : "", (long long) nmodel,
                   model_labels, nmodel > S_UNKNOWN_SHOWN ? ", ..." : "");
}

/* A single-label model cannot be judged on multi-label data: find a
 * sample with several labels. */
static int
s_check_single (s_eval_t *e)
{
    if (e->task != TY_BATCH_TASK_SINGLE)
        return TY_OK;
    ty_dataset_iter_t *it = NULL;
    int rc = ty_dataset_iter_new (e->ds, e->split, false, 0, &it);
    if (rc != TY_OK)
        return s_fail (e, rc, "cannot read the %s split: %s", ty_split_name (e->split),
                       ty_strerror (rc));
    ty_dataset_view_t views [256];
    size_t n;
    while ((rc = ty_dataset_iter_next (it, views, 256, &n)) == TY_OK && n > 0) {
        for (size_t i = 0; i < n; i++) {
            Ty__Sample *s = NULL;
            if (ty_dataset_view_unpack (&views [i], &s) != TY_OK)
                continue;        /* the encoder reports undecodable samples */
            size_t nl = s->n_labels;
            ty__sample__free_unpacked (s, NULL);
            if (nl > 1) {
                uint64_t index = views [i].index;
                ty_dataset_iter_destroy (&it);
                return s_fail (e, TY_EINVAL, "task mismatch: model %s@%llu is a single-label "
                               "classifier, dataset %s@%llu is multi-label (%s sample %llu has "
                               "%zu labels)", e->model_name,
                               (unsigned long long) e->model_version, ty_dataset_name (e->ds),
                               (unsigned long long) ty_dataset_version (e->ds),
                               ty_split_name (e->split), (unsigned long long) index, nl);
            }
        }
    }
    ty_dataset_iter_destroy (&it);
    return rc == TY_OK ? TY_OK : s_fail (e, rc, "reading the %s split: %s",
                                         ty_split_name (e->split), ty_strerror (rc));
}

static const char *
s_task_needs (ty_batch_task_t t)
{
    switch (t) {
    case TY_BATCH_TASK_SINGLE:
    case TY_BATCH_TASK_MULTI:      return "a label the model knows";
    case TY_BATCH_TASK_REGRESSION: return "a regression target or rating";
    case TY_BATCH_TASK_RANKING:    return "a user and an item seen in training";
    }
    return "?";
}

static int
s_encode (s_eval_t *e)
{
    if (e->has_fold) {
        char msg [TY_BATCH_ERR_LEN];
        if (ty_batch_folds_check (e->ds, "fold", e->folds.fold, msg, sizeof msg) != TY_OK)
            return s_fail (e, TY_EINVAL, "%s", msg);
    }
    uint64_t count = ty_dataset_count (e->ds, e->split);
    if (count == 0)
        return s_fail (e, TY_EINVAL, "the %s split of dataset %s@%llu is empty: nothing to "
                       "evaluate", ty_split_name (e->split), ty_dataset_name (e->ds),
                       (unsigned long long) ty_dataset_version (e->ds));
    int rc = s_check_labels (e);
    if (rc == TY_OK)
        rc = s_check_single (e);
    if (rc != TY_OK)
        return rc;
    char msg [TY_BATCH_ERR_LEN];
    rc = ty_batch_set_new_folds (e->feat, e->ds, e->split, &e->folds, 0, &e->set, msg,
                                 sizeof msg);
    if (rc != TY_OK)
        return s_fail (e, rc, "dataset %s@%llu does not fit model %s@%llu (%s, %s): %s",
                       ty_dataset_name (e->ds), (unsigned long long) ty_dataset_version (e->ds),
                       e->model_name, (unsigned long long) e->model_version,
                       ty_torch_kind_name (ty_torch_params (e->model)->kind),
                       s_task_name (e->task), msg);
    e->n = ty_batch_set_count (e->set);
    if (e->n == 0 && e->has_fold && ty_batch_set_skipped (e->set) == 0)
        return s_fail (e, TY_EINVAL, "fold %u of the train split of dataset %s@%llu is empty: "
                       "nothing to evaluate", e->folds.fold, ty_dataset_name (e->ds),
                       (unsigned long long) ty_dataset_version (e->ds));
    if (e->n == 0)
        return s_fail (e, TY_EINVAL, "task mismatch: none of the %llu %s samples of dataset "
                       "%s@%llu fits model %s@%llu (%s): each needs %s",
                       (unsigned long long) count, ty_split_name (e->split),
                       ty_dataset_name (e->ds), (unsigned long long) ty_dataset_version (e->ds),
                       e->model_name, (unsigned long long) e->model_version,
                       s_task_name (e->task), s_task_needs (e->task));
    if (ty_batch_set_skipped (e->set))
        s_log (e, "evaluate: %llu %s samples skipped (no %s)",
               (unsigned long long) ty_batch_set_skipped (e->set), ty_split_name (e->split),
               s_task_needs (e->task));
    return TY_OK;
}

/* ======================================================================
 *  Inference
 * ====================================================================== */

static int
s_reserve (s_eval_t *e, size_t n_out, size_t n_idx)
{
    if (n_out > e->out_cap) {
        float *p = realloc (e->out, n_out * sizeof *p);
        if (!p)
            return TY_ENOMEM;
        e->out = p;
        e->out_cap = n_out;
    }
    if (n_idx > e->idx_cap) {
        uint64_t *p = realloc (e->idx, n_idx * sizeof *p);
        if (!p)
            return TY_ENOMEM;
        e->idx = p;
        e->idx_cap = n_idx;
    }
    return TY_OK;
}

/* Predicts samples [first, first + n) of set into e->out (n x width). */
static int
s_predict_range (s_eval_t *e, ty_torch_model_t *model, ty_batch_set_t *set, size_t first,
                 size_t n)
{
    int64_t width = ty_torch_output_width (model);
    int rc = s_reserve (e, n * (size_t) width, n);
    if (rc != TY_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        e->idx [i] = first + i;
    ty_torch_batch_t b;
    rc = ty_batch_set_gather (set, e->idx, n, NULL, &b);
    if (rc != TY_OK)
        return rc;
    return ty_torch_predict (model, &b, e->out, e->out_cap);
}

/* Predicts the first `count` samples of set into *probs (count x width,
 * malloc'd doubles: the metrics library's type). Progress between p0 and
 * p1 when phase is given. */
static int
s_predict_all (s_eval_t *e, ty_torch_model_t *model, ty_batch_set_t *set, size_t count,
               double **probs, const char *phase, double p0, double p1)
{
    int64_t width = ty_torch_output_width (model);
    double *p = malloc ((count ? count : 1) * (size_t) width * sizeof *p);
    if (!p)
        return s_fail (e, TY_ENOMEM, "out of memory for %zu x %lld predictions", count,
                       (long long) width);
    double t0 = ty_latency_now_ms ();
    for (size_t first = 0; first < count; first += e->batch) {
        if (s_cancelled (e)) {
            free (p);
            return ECANCELED;
        }
        size_t n = count - first < e->batch ? count - first : e->batch;
        int rc = s_predict_range (e, model, set, first, n);
        if (rc != TY_OK) {
            free (p);
            return s_fail (e, rc, "prediction failed at sample %zu: %s", first,
                           rc == TY_ENOMEM ? "out of memory" : ty_torch_errstr (model));
        }
        for (size_t i = 0; i < n * (size_t) width; i++)
            p [first * (size_t) width + i] = e->out [i];
        if (phase)
            s_progress (e, p0 + (p1 - p0) * (double) (first + n) / (double) count, phase,
                        "%zu / %zu samples", first + n, count);
    }
    if (phase)
        e->infer_ms = ty_latency_now_ms () - t0;
    *probs = p;
    return TY_OK;
}

/* ======================================================================
 *  Metrics per task
 * ====================================================================== */

typedef struct {
    /* classification */
    ty_cls_metrics_t *cls;
    double  log_loss;
    double  roc_auc;            /* binary, or OvR macro (NaN if a class is absent) */
    double  roc_auc_defined;
    double *roc_auc_per_class;
    double  high_conf_share;
    /* multi-label */
    ty_ml_metrics_t *ml;
    /* regression */
    ty_reg_metrics_t reg;
    /* ranking */
    ty_rank_metrics_t rank;
    size_t  rank_users;
    /* for the gate and the analysis */
    double  primary;            /* accuracy / subset accuracy / R^2 / HR@K */
    const char *primary_name;   /* for messages */
    const char *primary_key;    /* metric key: no spaces */
} s_result_t;

static void
s_result_free (s_result_t *r)
{
    ty_cls_metrics_destroy (&r->cls);
    ty_ml_metrics_destroy (&r->ml);
    free (r->roc_auc_per_class);
    r->roc_auc_per_class = NULL;
}

/* Single-label: labels and argmax of the first n samples. */
static int
s_labels_of (ty_batch_set_t *set, const double *probs, size_t n, size_t k,
             int32_t **y_true, int32_t **y_pred)
{
    *y_true = malloc ((n ? n : 1) * sizeof **y_true);
    *y_pred = malloc ((n ? n : 1) * sizeof **y_pred);
    if (!*y_true || !*y_pred) {
        free (*y_true);
        free (*y_pred);
        *y_true = *y_pred = NULL;
        return TY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        (*y_true) [i] = (int32_t) ty_batch_set_label (set, i);
    ty_metrics_argmax_rows (probs, n, k, *y_pred);
    return TY_OK;
}

/* Multi-label indicator matrices of the first n samples. */
static int
s_indicators_of (ty_batch_set_t *set, const double *probs, size_t n, size_t k,
                 double threshold, uint8_t **y_true, uint8_t **y_pred)
{
    *y_true = calloc ((n ? n : 1) * k, 1);
    *y_pred = calloc ((n ? n : 1) * k, 1);
    if (!*y_true || !*y_pred) {
        free (*y_true);
        free (*y_pred);
        *y_true = *y_pred = NULL;
        return TY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t nl;
        const int64_t *l = ty_batch_set_labels (set, i, &nl);
        for (size_t j = 0; j < nl; j++)
            if (l [j] >= 0 && (size_t) l [j] < k)
                (*y_true) [i * k + (size_t) l [j]] = 1;
        for (size_t j = 0; j < k; j++)
            (*y_pred) [i * k + j] = probs [i * k + j] >= threshold;
    }
    return TY_OK;
}

static int
s_metrics_classification (s_eval_t *e, const double *probs, s_result_t *r)
{
    size_t k = (size_t) e->width;
    int32_t *y_true, *y_pred;
    if (s_labels_of (e->set, probs, e->n, k, &y_true, &y_pred) != TY_OK)
        return s_fail (e, TY_ENOMEM, "out of memory");
    int rc = TY_ENOMEM;
    r->cls = ty_cls_metrics_new (k);
    r->roc_auc_per_class = malloc (k * sizeof (double));
    if (!r->cls || !r->roc_auc_per_class)
        goto done;
    rc = ty_cls_metrics_compute (r->cls, y_true, y_pred, e->n);
    if (rc != TY_OK)
        goto done;
    r->log_loss = NAN;
    if (k >= 2 && ty_metrics_log_loss (y_true, probs, e->n, k, &r->log_loss) != TY_OK)
        r->log_loss = NAN;
    r->roc_auc = r->roc_auc_defined = NAN;
    for (size_t c = 0; c < k; c++)
        r->roc_auc_per_class [c] = NAN;
    rc = ty_metrics_roc_auc_ovr (y_true, probs, e->n, k, r->roc_auc_per_class, &r->roc_auc,
                                 &r->roc_auc_defined);
    if (rc == TY_ENOMEM)
        goto done;
    if (rc != TY_OK)        /* e.g. a non-finite score: the figure is not measured */
        r->roc_auc = r->roc_auc_defined = NAN;
    if (k == 2) {
        /* sklearn's binary roc_auc_score is the AUC of class 1's score */
        r->roc_auc = r->roc_auc_per_class [1];
        r->roc_auc_defined = r->roc_auc;
    }
    r->high_conf_share = ty_metrics_high_conf_share (probs, e->n, k, e->conf_threshold);
    r->primary = r->cls->accuracy;
    r->primary_name = "accuracy";
    r->primary_key = "accuracy";
    rc = TY_OK;
done:
    free (y_true);
    free (y_pred);
    return rc == TY_OK ? TY_OK : s_fail (e, rc, "computing the metrics: %s", ty_strerror (rc));
}

static int
s_metrics_multilabel (s_eval_t *e, const double *probs, s_result_t *r)
{
    size_t k = (size_t) e->width;
    uint8_t *y_true, *y_pred;
    if (s_indicators_of (e->set, probs, e->n, k, e->label_threshold, &y_true, &y_pred) != TY_OK)
        return s_fail (e, TY_ENOMEM, "out of memory");
    int rc = TY_ENOMEM;
    r->ml = ty_ml_metrics_new (k);
    if (r->ml)
        rc = ty_ml_metrics_compute (r->ml, y_true, y_pred, e->n);
    free (y_true);
    free (y_pred);
    if (rc != TY_OK)
        return s_fail (e, rc, "computing the metrics: %s", ty_strerror (rc));
    r->primary = r->ml->subset_accuracy;
    r->primary_name = "subset accuracy";
    r->primary_key = "subset_accuracy";
    return TY_OK;
}

static int
s_metrics_regression (s_eval_t *e, const double *pred, s_result_t *r)
{
    double *y = malloc (e->n * sizeof *y);
    double *p = malloc (e->n * sizeof *p);
    int rc = TY_ENOMEM;
    if (y && p) {
        for (size_t i = 0; i < e->n; i++) {
            y [i] = ty_batch_set_target (e->set, i);
            p [i] = pred [i * (size_t) e->width];
        }
        rc = ty_metrics_regression (y, p, e->n, &r->reg);
    }
    free (y);
    free (p);
    if (rc != TY_OK)
        return s_fail (e, rc, "computing the metrics: %s%s", ty_strerror (rc),
                       rc == TY_EINVAL ? " (a non-finite prediction?)" : "");
    r->primary = r->reg.r2;
    r->primary_name = "R2";
    r->primary_key = "r2";
    return TY_OK;
}

/* The NCF protocol: each held-out (user, item) scored among n_neg items the
 * user never touched in training (and that are not the held-out item). */
/* The users' training positives, which negatives must avoid. A loaded
 * featurizer keeps the user and item maps but not the positives (they are
 * fitted only), so they are read again from the dataset's train split. */
static int
s_train_positives (s_eval_t *e, ty_negsample_t **ns_out)
{
    *ns_out = NULL;
    ty_batch_set_t *train = NULL;
    char msg [TY_BATCH_ERR_LEN];
    int rc = ty_batch_set_new (e->feat, e->ds, TY_SPLIT_TRAIN, 0, &train, msg, sizeof msg);
    if (rc != TY_OK)
        return s_fail (e, rc, "reading the train split for the users' positives: %s", msg);
    size_t n = ty_batch_set_count (train);
    int64_t *u = malloc ((n ? n : 1) * sizeof *u), *it = malloc ((n ? n : 1) * sizeof *it);
    if (!u || !it)
        rc = s_fail (e, TY_ENOMEM, "out of memory");
    for (size_t i = 0; rc == TY_OK && i < n; i++)
        ty_batch_set_pair (train, i, &u [i], &it [i]);
    if (rc == TY_OK && n == 0)
        rc = s_fail (e, TY_EINVAL, "the train split of %s@%llu has no interaction the model "
                     "knows: no positives to sample negatives around", ty_dataset_name (e->ds),
                     (unsigned long long) ty_dataset_version (e->ds));
    if (rc == TY_OK) {
        rc = ty_negsample_new (ty_torch_params (e->model)->ncf.nusers,
                               ty_batch_feat_nitems (e->feat), u, it, (int64_t) n, ns_out);
        if (rc != TY_OK)
            rc = s_fail (e, rc, "indexing the train positives: %s", ty_strerror (rc));
    }
    free (u);
    free (it);
    ty_batch_set_destroy (&train);
    return rc;
}

static int
s_metrics_ranking (s_eval_t *e, s_result_t *r)
{
    const ty_negsample_t *ns = ty_batch_feat_negsample (e->feat);
    ty_negsample_t *own = NULL;
    int64_t nitems = ty_batch_feat_nitems (e->feat);
    if (nitems < 2)
        return s_fail (e, TY_EINVAL, "model %s@%llu knows fewer than 2 items: nothing to rank",
                       e->model_name, (unsigned long long) e->model_version);
    if (!ns) {
        int prc = s_train_positives (e, &own);
        if (prc != TY_OK)
            return prc;
        ns = own;
    }
    size_t per = 1 + e->n_neg;
    size_t chunk = e->batch / per ? e->batch / per : 1;
    size_t cap = chunk * per;
    double *pos = malloc (e->n * sizeof *pos);
    double *neg = malloc (e->n * e->n_neg * sizeof *neg);
    int64_t *users = malloc (chunk * sizeof *users), *items = malloc (chunk * sizeof *items);
    int64_t *ou = malloc (cap * sizeof *ou), *oi = malloc (cap * sizeof *oi);
    float *ot = malloc (cap * sizeof *ot);
    int rc = (pos && neg && users && items && ou && oi && ot) ? s_reserve (e, cap, 0) : TY_ENOMEM;
    if (rc != TY_OK) {
        rc = s_fail (e, TY_ENOMEM, "out of memory");
        goto done;
    }
    uint64_t rng = e->seed;
    double t0 = ty_latency_now_ms ();
    for (size_t first = 0; first < e->n; first += chunk) {
        if (s_cancelled (e)) {
            rc = ECANCELED;
            goto done;
        }
        size_t n = e->n - first < chunk ? e->n - first : chunk;
        for (size_t i = 0; i < n; i++)
            ty_batch_set_pair (e->set, first + i, &users [i], &items [i]);
        int64_t nout = 0;
        rc = ty_negsample_fill (ns, users, items, (int64_t) n, (int) e->n_neg, &rng, ou, oi, ot,
                                cap, &nout);
        if (rc != TY_OK || (size_t) nout != n * per) {
            rc = s_fail (e, rc != TY_OK ? rc : TY_EINTERNAL, "drawing negatives failed");
            goto done;
        }
        /* the held-out item must not be its own negative */
        for (size_t i = 0; i < n; i++)
            for (size_t t = 1; t < per; t++) {
                int64_t *it = &oi [i * per + t];
                for (int tries = 0; *it == items [i] && tries < TY_NEGSAMPLE_MAX_TRIES; tries++) {
                    int64_t cand = (int64_t) ty_negsample_below (&rng, (uint64_t) nitems);
                    if (cand != items [i] && !ty_negsample_is_positive (ns, users [i], cand))
                        *it = cand;
                }
            }
        ty_torch_batch_t b;
        memset (&b, 0, sizeof b);
        b.n = nout;
        b.users = ou;
        b.items = oi;
        rc = ty_torch_predict (e->model, &b, e->out, e->out_cap);
        if (rc != TY_OK) {
            rc = s_fail (e, rc, "prediction failed: %s", ty_torch_errstr (e->model));
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            pos [first + i] = e->out [i * per];
            for (size_t t = 0; t < e->n_neg; t++)
                neg [(first + i) * e->n_neg + t] = e->out [i * per + 1 + t];
        }
        s_progress (e, S_P_LOADED + (S_P_INFERRED - S_P_LOADED) * (double) (first + n)
                       / (double) e->n, "inference", "%zu / %zu users", first + n, e->n);
    }
    e->infer_ms = ty_latency_now_ms () - t0;
    rc = ty_metrics_ranking (pos, neg, e->n, e->n_neg, e->top_k, &r->rank);
    if (rc != TY_OK) {
        rc = s_fail (e, rc, "computing the ranking metrics: %s", ty_strerror (rc));
        goto done;
    }
    r->rank_users = e->n;
    r->primary = r->rank.hit_rate;
    r->primary_name = "hit rate";
    r->primary_key = "hit_rate";
done:
    free (pos);
    free (neg);
    free (users);
    free (items);
    free (ou);
    free (oi);
    free (ot);
    ty_negsample_destroy (&own);
    return rc;
}

/* The primary figure of the first n samples of a set (the fit check). */
static int
s_primary_of (s_eval_t *e, ty_batch_set_t *set, size_t n, double *out)
{
    *out = NAN;
    double *probs = NULL;
    int rc = s_predict_all (e, e->model, set, n, &probs, NULL, 0, 0);
    if (rc != TY_OK)
        return rc;
    size_t k = (size_t) e->width;
    if (e->task == TY_BATCH_TASK_SINGLE) {
        int32_t *yt, *yp;
        rc = s_labels_of (set, probs, n, k, &yt, &yp);
        if (rc == TY_OK) {
            size_t hit = 0;
            for (size_t i = 0; i < n; i++)
                hit += yt [i] == yp [i];
            *out = (double) hit / (double) n;
            free (yt);
            free (yp);
        }
    }
    else if (e->task == TY_BATCH_TASK_MULTI) {
        uint8_t *yt, *yp;
        rc = s_indicators_of (set, probs, n, k, e->label_threshold, &yt, &yp);
        if (rc == TY_OK) {
            size_t exact = 0;
            for (size_t i = 0; i < n; i++)
                exact += memcmp (yt + i * k, yp + i * k, k) == 0;
            *out = (double) exact / (double) n;
            free (yt);
            free (yp);
        }
    }
    else if (e->task == TY_BATCH_TASK_REGRESSION) {
        double *y = malloc (n * sizeof *y), *p = malloc (n * sizeof *p);
        ty_reg_metrics_t reg;
        if (y && p) {
            for (size_t i = 0; i < n; i++) {
                y [i] = ty_batch_set_target (set, i);
                p [i] = probs [i * k];
            }
            if (ty_metrics_regression (y, p, n, &reg) == TY_OK)
                *out = reg.r2;
        }
        else
            rc = TY_ENOMEM;
        free (y);
        free (p);
    }
    free (probs);
    return rc;
}

/* The final model's primary figure on (a prefix of) the train and val
 * splits of the evaluated dataset: the overfitting gap. NaN when a split is
 * empty, skipped, or the task is ranking. */
static int
s_fit_check (s_eval_t *e, double *train, double *val)
{
    *train = *val = NAN;
    if (e->fit_check == 0 || e->task == TY_BATCH_TASK_RANKING)
        return TY_OK;
    const ty_split_t splits [2] = { TY_SPLIT_TRAIN, TY_SPLIT_VAL };
    double *outs [2] = { train, val };
    for (int s = 0; s < 2; s++) {
        if (splits [s] == e->split || ty_dataset_count (e->ds, splits [s]) == 0)
            continue;
        ty_batch_set_t *set = NULL;
        char msg [TY_BATCH_ERR_LEN];
        if (ty_batch_set_new (e->feat, e->ds, splits [s], 0, &set, msg, sizeof msg) != TY_OK) {
            s_log (e, "evaluate: fit check skipped, %s split: %s", ty_split_name (splits [s]), msg);
            continue;
        }
        size_t n = ty_batch_set_count (set);
        if (n > e->fit_check)
            n = e->fit_check;
        int rc = n ? s_primary_of (e, set, n, outs [s]) : TY_OK;
        ty_batch_set_destroy (&set);
        if (rc == ECANCELED || rc == TY_ENOMEM)
            return rc;
        if (s_cancelled (e))
            return ECANCELED;
    }
    /* the evaluated split is val: it is its own val figure */
    return TY_OK;
}

/* ======================================================================
 *  Latency
 * ====================================================================== */

static int
s_latency_fn (void *arg, size_t first, size_t n)
{
    s_eval_t *e = arg;
    if (s_cancelled (e))
        return ECANCELED;
    return s_predict_range (e, e->model, e->set, first, n);
}

static int
s_latency (s_eval_t *e, ty_latency_bench_t *bench, int per_job_rss)
{
    ty_latency_opts_t lo;
    ty_latency_opts_init (&lo);
    lo.warmup = e->warmup;
    lo.samples = e->latency_n;
    lo.pool = e->n < S_LATENCY_POOL ? e->n : S_LATENCY_POOL;
    int rc = ty_latency_run (&lo, s_latency_fn, e, bench);
    if (rc == ECANCELED)
        return rc;
    if (rc != TY_OK)
        return s_fail (e, rc, "latency benchmark: %s", rc == TY_EINVAL || rc == TY_ENOMEM
                       ? ty_strerror (rc) : ty_torch_errstr (e->model));
    /* batch throughput: the whole evaluation pass, batched */
    bench->batch_size = e->task == TY_BATCH_TASK_RANKING ? (e->batch / (1 + e->n_neg)) * (1 + e->n_neg)
                                                          : e->batch;
    size_t predicted = e->task == TY_BATCH_TASK_RANKING ? e->n * (1 + e->n_neg) : e->n;
    bench->batch_throughput_per_s = e->infer_ms > 0 ? (double) predicted * 1e3 / e->infer_ms : NAN;
    bench->peak_rss_per_job = per_job_rss;
    return TY_OK;
}

/* ======================================================================
 *  Baseline (the version to compare with)
 * ====================================================================== */

static int
s_baseline (s_eval_t *e, char *spec_out, size_t len, double *accuracy)
{
    *accuracy = NAN;
    const char *spec = e->spec->baseline;
    char production [TY_REPORT_MODEL_NAME_MAX + 24];
    if (!spec || !*spec) {
        /* No baseline named: the registry's production version of the same
           model, when there is one and it is not the candidate itself. */
        ty_registry_t *reg = NULL;
        char name [256];
        uint64_t version = 0;
        ty_stage_t stage;
        snprintf (production, sizeof production, "%s@production", e->model_name);
        int found = ty_registry_open (e->opts->data_dir, &reg) == TY_OK
                 && ty_registry_resolve (reg, production, NULL, name, &version,
                                         &stage) == TY_OK
                 && version != e->model_version;
        ty_registry_destroy (&reg);
        if (!found)
            return TY_OK;
        snprintf (production, sizeof production, "%.*s@%llu",
                  (int) (sizeof production - 24), name, (unsigned long long) version);
        spec = production;
    }
    if (e->task != TY_BATCH_TASK_SINGLE && e->task != TY_BATCH_TASK_MULTI)
        return s_fail (e, TY_EINVAL, "baseline: accuracy comparison needs a classifier; model "
                       "%s@%llu is %s", e->model_name, (unsigned long long) e->model_version,
                       s_task_name (e->task));
    char dir [S_PATH_MAX], name [TY_REPORT_MODEL_NAME_MAX + 1];
    uint64_t version, dummy;
    ty_torch_model_t *model = NULL;
    ty_batch_feat_t *feat = NULL;
    int rc = s_load_model (e, spec, dir, sizeof dir, &version, &model, &feat);
    if (rc != TY_OK)
        return rc;
    ty_report_model_spec_parse (spec, name, &dummy, NULL);
    snprintf (spec_out, len, "%s@%llu", name, (unsigned long long) version);
    ty_batch_set_t *set = NULL;
    char msg [TY_BATCH_ERR_LEN];
    if (ty_batch_feat_task (feat) != e->task) {
        rc = s_fail (e, TY_EINVAL, "baseline %s is a %s model, %s@%llu a %s one", spec_out,
                     s_task_name (ty_batch_feat_task (feat)), e->model_name,
                     (unsigned long long) e->model_version, s_task_name (e->task));
        goto done;
    }
    rc = ty_batch_set_new_folds (feat, e->ds, e->split, &e->folds, 0, &set, msg, sizeof msg);
    if (rc != TY_OK) {
        rc = s_fail (e, rc, "baseline %s: %s", spec_out, msg);
        goto done;
    }
    /* the same figure as the candidate's, on the same samples */
    ty_torch_model_t *cand = e->model;
    int64_t cand_width = e->width;
    e->model = model;
    e->width = ty_torch_output_width (model);
    size_t n = ty_batch_set_count (set);
    rc = n ? s_primary_of (e, set, n, accuracy) : TY_OK;
    e->model = cand;
    e->width = cand_width;
    if (rc != TY_OK && rc != ECANCELED)
        rc = s_fail (e, rc, "baseline %s: prediction failed", spec_out);
done:
    ty_batch_set_destroy (&set);
    ty_batch_feat_destroy (&feat);
    ty_torch_destroy (&model);
    return rc;
}

/* ======================================================================
 *  Gate and analysis
 * ====================================================================== */

/* history.json: an array of epochs, or {"epochs": [...]}; each epoch an
 * object with train_loss, val_loss and optionally train_metric, val_metric. */
static const cJSON *
s_history_epochs (const cJSON *history)
{
    if (cJSON_IsArray (history))
        return history;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive (history, "epochs");
    if (!cJSON_IsArray (a))
        a = cJSON_GetObjectItemCaseSensitive (history, "history");
    return cJSON_IsArray (a) ? a : NULL;
}

static double *
s_history_column (const cJSON *epochs, const char *key, size_t *n_out)
{
    int n = cJSON_GetArraySize (epochs);
    *n_out = 0;
    if (n <= 0)
        return NULL;
    double *v = malloc ((size_t) n * sizeof *v);
    if (!v)
        return NULL;
    int any = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive (cJSON_GetArrayItem (epochs, i), key);
        v [i] = cJSON_IsNumber (x) ? x->valuedouble : NAN;
        any |= !isnan (v [i]);
    }
    if (!any) {
        free (v);
        return NULL;
    }
    *n_out = (size_t) n;
    return v;
}

typedef struct {
    ty_gate_result_t gate;
    ty_analysis_t    analysis;
} s_verdict_t;

static int
s_judge (s_eval_t *e, const s_result_t *r, const ty_latency_bench_t *bench,
         double fit_train, double fit_val, double baseline, s_verdict_t *v)
{
    ty_gate_measured_t m;
    ty_gate_measured_init (&m);
    if (r->cls) {
        m.accuracy = r->cls->accuracy;
        m.macro_f1 = r->cls->macro.f1;
        m.roc_auc = isnan (r->roc_auc) ? r->roc_auc_defined : r->roc_auc;
        m.high_conf_share = r->high_conf_share;
        m.class_recall = r->cls->recall;
        m.class_support = r->cls->support;
        m.n_classes = r->cls->n_classes;
    }
    else if (r->ml) {
        m.accuracy = r->ml->subset_accuracy;
        m.macro_f1 = r->ml->macro.f1;
        m.class_recall = r->ml->recall;
        m.class_support = r->ml->support;
        m.n_classes = r->ml->n_labels;
    }
    m.p95_latency_ms = bench->single.p95_ms;
    m.memory_mb = bench->peak_rss_mb;
    m.production_accuracy = baseline;
    int rc = ty_gate_evaluate (&e->gate, &m, &v->gate);
    if (rc != TY_OK)
        return s_fail (e, rc, "gate: %s", ty_strerror (rc));

    ty_analysis_input_t in;
    ty_analysis_input_init (&in);
    in.metric_name = r->primary_name;
    in.higher_is_better = 1;
    /* the gap of the final model, measured here on both splits */
    double fit_val_or_eval = !isnan (fit_val) ? fit_val
                           : e->split == TY_SPLIT_VAL ? r->primary : NAN;
    double train_arr [1] = { fit_train }, val_arr [1] = { fit_val_or_eval };
    if (!isnan (fit_train) && !isnan (fit_val_or_eval)) {
        in.train_metric = train_arr;
        in.val_metric = val_arr;
        in.n_epochs = 1;
    }
    const cJSON *epochs = s_history_epochs (e->history);
    size_t n_tl = 0, n_vl = 0;
    double *tl = s_history_column (epochs, "train_loss", &n_tl);
    double *vl = s_history_column (epochs, "val_loss", &n_vl);
    /* the history's own per-epoch metrics, when it has both, win: they
     * show the gap epoch by epoch */
    size_t n_tm = 0, n_vm = 0;
    double *tm = s_history_column (epochs, "train_metric", &n_tm);
    double *vm = s_history_column (epochs, "val_metric", &n_vm);
    if (tm && vm && n_tm == n_vm && isnan (fit_train)) {
        in.train_metric = tm;
        in.val_metric = vm;
        in.n_epochs = n_tm;
    }
    in.train_loss = tl;
    in.val_loss = vl && n_vl == n_tl ? vl : NULL;
    in.n_loss_epochs = n_tl;
    if (!tl && vl) {
        in.val_loss = vl;
        in.n_loss_epochs = n_vl;
    }
    /* training samples per class: the dataset's counts by label name */
    int64_t *train_support = NULL;
    const char **names = NULL;
    size_t k = r->cls ? r->cls->n_classes : r->ml ? r->ml->n_labels : 0;
    if (k) {
        train_support = calloc (k, sizeof *train_support);
        names = calloc (k, sizeof *names);
        const Ty__DatasetMeta *meta = ty_dataset_meta (e->ds);
        if (train_support && names) {
            int have = 0;
            for (size_t c = 0; c < k; c++) {
                names [c] = ty_batch_feat_label (e->feat, (int64_t) c);
                for (size_t j = 0; j < meta->n_classes; j++)
                    if (names [c] && meta->classes [j]->label
                        && !strcmp (meta->classes [j]->label, names [c])) {
                        train_support [c] = (int64_t) meta->classes [j]->train;
                        have = 1;
                    }
            }
            if (have)
                in.train_support = train_support;
            in.class_names = names;
        }
        in.n_classes = k;
        in.class_recall = r->cls ? r->cls->recall : r->ml->recall;
        in.test_support = r->cls ? r->cls->support : r->ml->support;
    }
    in.candidate_score = r->primary;
    in.production_score = baseline;
    in.gate_passed = e->has_gate ? v->gate.passed : -1;
    rc = ty_analysis_run (&in, NULL, &v->analysis);
    free (tl);
    free (vl);
    free (tm);
    free (vm);
    free (train_support);
    free (names);
    return rc == TY_OK ? TY_OK : s_fail (e, rc, "analysis: %s", ty_strerror (rc));
}

/* ======================================================================
 *  The document
 * ====================================================================== */

static int
s_add (cJSON *parent, const char *key, cJSON *item)
{
    if (!item)
        return 0;
    if (!cJSON_AddItemToObject (parent, key, item)) {
        cJSON_Delete (item);
        return 0;
    }
    return 1;
}

static cJSON *
s_document (s_eval_t *e, const s_result_t *r, const ty_latency_bench_t *bench,
            const s_verdict_t *v, const char *baseline_spec, double baseline)
{
    cJSON *doc = cJSON_CreateObject ();
    if (!doc)
        return NULL;
    size_t k = (size_t) e->width;
    const char **names = calloc (k ? k : 1, sizeof *names);
    int ok = names != NULL;
    for (size_t c = 0; ok && c < k; c++)
        names [c] = ty_batch_feat_label (e->feat, (int64_t) c);
    ok = ok && cJSON_AddNumberToObject (doc, "format_version", TY_REPORT_FORMAT_VERSION);
    ok = ok && cJSON_AddStringToObject (doc, "summary", "");
    ok = ok && cJSON_AddNumberToObject (doc, "created_unix", (double) time (NULL));
    ok = ok && cJSON_AddStringToObject (doc, "job_id", e->opts->job_id ? e->opts->job_id : "");
    ok = ok && cJSON_AddNumberToObject (doc, "attempt", e->opts->attempt);
    cJSON *model = ok ? cJSON_AddObjectToObject (doc, "model") : NULL;
    ok = ok && model && cJSON_AddStringToObject (model, "name", e->model_name)
         && cJSON_AddNumberToObject (model, "version", (double) e->model_version)
         && cJSON_AddStringToObject (model, "kind",
                                     ty_torch_kind_name (ty_torch_params (e->model)->kind))
         && cJSON_AddStringToObject (model, "task", s_task_name (e->task));
    cJSON *ds = ok ? cJSON_AddObjectToObject (doc, "dataset") : NULL;
    ok = ok && ds && cJSON_AddStringToObject (ds, "name", ty_dataset_name (e->ds))
         && cJSON_AddNumberToObject (ds, "version", (double) ty_dataset_version (e->ds))
         && cJSON_AddStringToObject (ds, "split", ty_split_name (e->split))
         && (!e->has_fold
             || (cJSON_AddNumberToObject (ds, "fold", e->folds.fold)
                 && cJSON_AddNumberToObject (ds, "folds", ty_dataset_meta (e->ds)->folds)
                 && cJSON_AddNumberToObject (ds, "folded_out",
                                             (double) ty_batch_set_folded_out (e->set))))
         && cJSON_AddStringToObject (ds, "content_hash",
                                     ty_dataset_meta (e->ds)->content_hash
                                     ? ty_dataset_meta (e->ds)->content_hash : "");
    ok = ok && cJSON_AddStringToObject (doc, "task", s_task_name (e->task));
    ok = ok && cJSON_AddNumberToObject (doc, "n_samples", (double) e->n);
    ok = ok && cJSON_AddNumberToObject (doc, "skipped", (double) ty_batch_set_skipped (e->set));

    if (ok && r->cls) {
        cJSON *c = ty_cls_metrics_json (r->cls, names, e->max_confusions);
        ok = s_add (doc, "classification", c)
             && ty_metrics_json_add_number (c, "log_loss", r->log_loss)
             && ty_metrics_json_add_number (c, "roc_auc", r->roc_auc)
             && cJSON_AddStringToObject (c, "roc_auc_kind", k == 2 ? "binary" : "ovr_macro")
             && ty_metrics_json_add_number (c, "roc_auc_defined", r->roc_auc_defined)
             && ty_metrics_json_add_number (c, "high_conf_threshold", e->conf_threshold)
             && ty_metrics_json_add_number (c, "high_conf_share", r->high_conf_share);
        cJSON *auc = ok ? cJSON_AddArrayToObject (c, "roc_auc_per_class") : NULL;
        ok = ok && auc;
        for (size_t i = 0; ok && i < k; i++) {
            double x = r->roc_auc_per_class [i];
            cJSON *item = isfinite (x) ? cJSON_CreateNumber (x) : cJSON_CreateNull ();
            ok = item && cJSON_AddItemToArray (auc, item);
        }
    }
    if (ok && r->ml) {
        cJSON *m = ty_ml_metrics_json (r->ml, names);
        ok = s_add (doc, "multilabel", m)
             && cJSON_AddNumberToObject (m, "threshold", e->label_threshold);
    }
    if (ok && e->task == TY_BATCH_TASK_REGRESSION)
        ok = s_add (doc, "regression", ty_reg_metrics_json (&r->reg));
    if (ok && e->task == TY_BATCH_TASK_RANKING) {
        cJSON *rk = ty_rank_metrics_json (&r->rank, e->top_k, e->n_neg);
        ok = s_add (doc, "ranking", rk)
             && cJSON_AddNumberToObject (rk, "n_users", (double) r->rank_users);
    }
    cJSON *inf = ok ? cJSON_AddObjectToObject (doc, "inference") : NULL;
    size_t predicted = e->task == TY_BATCH_TASK_RANKING ? e->n * (1 + e->n_neg) : e->n;
    ok = ok && inf && cJSON_AddNumberToObject (inf, "batch_size", (double) e->batch)
         && cJSON_AddNumberToObject (inf, "threads", e->threads)
         && cJSON_AddNumberToObject (inf, "samples", (double) predicted)
         && ty_metrics_json_add_number (inf, "seconds", e->infer_ms / 1e3)
         && ty_metrics_json_add_number (inf, "samples_per_s", bench->batch_throughput_per_s);
    ok = ok && s_add (doc, "latency", ty_latency_bench_json (bench));
    if (ok && baseline_spec [0]) {
        cJSON *b = cJSON_AddObjectToObject (doc, "baseline");
        ok = b && cJSON_AddStringToObject (b, "model", baseline_spec)
             && ty_metrics_json_add_number (b, "accuracy", baseline);
    }
    if (ok && e->has_gate)
        ok = s_add (doc, "gate", ty_gate_result_json (&v->gate, &e->gate));
    ok = ok && s_add (doc, "analysis", ty_analysis_json (&v->analysis));
    free (names);
    if (!ok) {
        cJSON_Delete (doc);
        return NULL;
    }
    char summary [512];
    ty_report_summary (doc, summary, sizeof summary);
    cJSON_ReplaceItemInObjectCaseSensitive (doc, "summary", cJSON_CreateString (summary));
    return doc;
}

/* ======================================================================
 *  The run
 * ====================================================================== */

static void
s_eval_free (s_eval_t *e)
{
    ty_batch_set_destroy (&e->set);
    ty_dataset_destroy (&e->ds);
    ty_batch_feat_destroy (&e->feat);
    ty_torch_destroy (&e->model);
    cJSON_Delete (e->history);
    cJSON_Delete (e->lineage);
    cJSON_Delete (e->config);
    free (e->out);
    free (e->idx);
}

int
ty_evaluate_run (const ty_evaluate_opts_t *opts, const Ty__EvaluateSpec *spec,
                 const ty_evaluate_hooks_t *hooks, cJSON **report_out,
                 char *path_out, size_t path_len, char *err, size_t errlen)
{
    if (report_out)
        *report_out = NULL;
    if (err && errlen)
        *err = '\0';
    s_eval_t e;
    memset (&e, 0, sizeof e);
    e.opts = opts;
    e.spec = spec;
    e.hooks = hooks;
    e.err = err;
    e.errlen = errlen;
    if (!opts || !opts->data_dir || !spec)
        return s_fail (&e, TY_EINVAL, "no data directory or spec");
    if (!spec->model || !*spec->model)
        return s_fail (&e, TY_EINVAL, "no model given (EvaluateSpec.model: name or name@version)");
    int per_job_rss = ty_latency_rss_reset_peak ();
    s_result_t r;
    memset (&r, 0, sizeof r);
    s_verdict_t v;
    memset (&v, 0, sizeof v);
    ty_latency_bench_t bench;
    memset (&bench, 0, sizeof bench);
    double *probs = NULL;
    char baseline_spec [TY_REPORT_MODEL_NAME_MAX + 24] = "";
    double baseline = NAN, fit_train = NAN, fit_val = NAN;
    cJSON *doc = NULL;

    int rc = s_parse_spec (&e);
    if (rc == TY_OK) {
        s_progress (&e, 0.0, "loading", "model %s", spec->model);
        rc = s_load (&e);
    }
    if (rc == TY_OK) {
        s_progress (&e, S_P_LOADED / 2, "encoding", "the %s split", ty_split_name (e.split));
        rc = s_encode (&e);
    }
    if (rc == TY_OK) {
        s_progress (&e, S_P_LOADED, "inference", "%zu %s samples of %s@%llu", e.n,
                    ty_split_name (e.split), ty_dataset_name (e.ds),
                    (unsigned long long) ty_dataset_version (e.ds));
        s_log (&e, "evaluate: model %s@%llu (%s), dataset %s@%llu %s, %zu samples",
               e.model_name, (unsigned long long) e.model_version, s_task_name (e.task),
               ty_dataset_name (e.ds), (unsigned long long) ty_dataset_version (e.ds),
               ty_split_name (e.split), e.n);
        if (e.task == TY_BATCH_TASK_RANKING)
            rc = s_metrics_ranking (&e, &r);
        else
            rc = s_predict_all (&e, e.model, e.set, e.n, &probs, "inference", S_P_LOADED,
                                S_P_INFERRED);
    }
    if (rc == TY_OK) {
        s_progress (&e, S_P_INFERRED, "metrics", NULL);
        switch (e.task) {
        case TY_BATCH_TASK_SINGLE:     rc = s_metrics_classification (&e, probs, &r); break;
        case TY_BATCH_TASK_MULTI:      rc = s_metrics_multilabel (&e, probs, &r); break;
        case TY_BATCH_TASK_REGRESSION: rc = s_metrics_regression (&e, probs, &r); break;
        case TY_BATCH_TASK_RANKING:    break;
        }
    }
    free (probs);
    if (rc == TY_OK) {
        s_progress (&e, S_P_METRICS, "fit check", NULL);
        rc = s_fit_check (&e, &fit_train, &fit_val);
    }
    if (rc == TY_OK)
        rc = s_baseline (&e, baseline_spec, sizeof baseline_spec, &baseline);
    if (rc == TY_OK) {
        s_progress (&e, S_P_FITCHECK, "latency", "%zu single predictions", e.latency_n);
        rc = s_latency (&e, &bench, per_job_rss);
    }
    if (rc == TY_OK) {
        s_progress (&e, S_P_LATENCY, "analysis", NULL);
        rc = s_judge (&e, &r, &bench, fit_train, fit_val, baseline, &v);
    }
    if (rc == TY_OK) {
        doc = s_document (&e, &r, &bench, &v, baseline_spec, baseline);
        if (!doc)
            rc = s_fail (&e, TY_ENOMEM, "out of memory building metrics.json");
    }
    if (rc == TY_OK) {
        rc = ty_report_write (e.model_dir, doc);
        if (rc != TY_OK)
            rc = s_fail (&e, rc, "cannot write %s/%s: %s", e.model_dir, TY_REPORT_FILE,
                         ty_strerror (rc));
    }
    if (rc == TY_OK) {
        if (path_out)
            snprintf (path_out, path_len, "%s/%s", e.model_dir, TY_REPORT_FILE);
        s_metric (&e, "samples", (double) e.n);
        s_metric (&e, r.primary_key ? r.primary_key : "score", r.primary);
        s_metric (&e, "p95_ms", bench.single.p95_ms);
        s_progress (&e, 1.0, "done", "%s", ty_report_string (doc, "summary"));
        if (report_out) {
            *report_out = doc;
            doc = NULL;
        }
    }
    if (rc == ECANCELED)
        s_fail (&e, rc, "cancelled");
    cJSON_Delete (doc);
    s_result_free (&r);
    s_eval_free (&e);
    return rc;
}

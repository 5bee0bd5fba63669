/*  ty_train: one training run, from a TrainSpec to a model version.
 *  See ty_train.h. */
#include "ty_train.h"

#include "ty_clock.h"
#include "ty_error.h"
#include "ty_negsample.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef TY_VERSION
#define TY_VERSION "0.0.0"
#endif

#define S_BATCH_TEXTCLF     32      /* textclf: small batches keep SGD close to fastText's */
#define S_BATCH_DEFAULT     64
#define S_BATCH_NCF         256     /* positives per batch; negatives come on top */
#define S_EPOCHS_TEXTCLF    5       /* fastText's -epoch */
#define S_EPOCHS_DEFAULT    10
#define S_PROGRESS_MIN_MS   500     /* metrics at most this often (the runtime rate-limits too) */
#define S_MB                (1024.0 * 1024.0)
#define S_GOLDEN            0x9E3779B97F4A7C15ull   /* splitmix64's increment: mixes seeds */
#define S_SEED_VAL          0x76616cull             /* "val": the HR@10 negatives stream */

/* =========================================================================
 *  configuration
 * ========================================================================= */

static int
s_err (char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
static int
s_err (char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (err, errlen, fmt, ap);
        va_end (ap);
    }
    return rc;
}

static int
s_parse_i64 (const char *key, const char *s, int64_t min, int64_t max, int64_t *out,
             char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long long v = strtoll (s, &end, 10);
    if (!*s || *end || errno)
        return s_err (err, errlen, TY_EINVAL, "%s: '%s' is not an integer", key, s);
    if (v < min || v > max)
        return s_err (err, errlen, TY_EINVAL, "%s must be in [%lld, %lld], got %lld", key,
                      (long long) min, (long long) max, v);
    *out = v;
    return TY_OK;
}

static int
s_parse_dbl (const char *key, const char *s, double *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod (s, &end);
    if (!*s || *end || errno || !isfinite (v))
        return s_err (err, errlen, TY_EINVAL, "%s: '%s' is not a finite number", key, s);
    *out = v;
    return TY_OK;
}

static int
s_parse_bool (const char *key, const char *s, int *out, char *err, size_t errlen)
{
    if (!strcmp (s, "1") || !strcmp (s, "true") || !strcmp (s, "yes") || !strcmp (s, "on"))
        *out = 1;
    else if (!strcmp (s, "0") || !strcmp (s, "false") || !strcmp (s, "no") || !strcmp (s, "off"))
        *out = 0;
    else
        return s_err (err, errlen, TY_EINVAL, "%s: '%s' is not true or false", key, s);
    return TY_OK;
}

/* "64,32" -> sizes. */
static int
s_parse_layers (const char *key, const char *s, int *n, int64_t *v, char *err, size_t errlen)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long x = strtoll (p, &end, 10);
        if (end == p || errno || x < 1)
            return s_err (err, errlen, TY_EINVAL, "%s: '%s' is not a list of sizes >= 1 "
                          "(e.g. 64,32)", key, s);
        if (*n == TY_TORCH_MAX_LAYERS)
            return s_err (err, errlen, TY_EINVAL, "%s: at most %d layers", key,
                          TY_TORCH_MAX_LAYERS);
        v [(*n)++] = x;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return s_err (err, errlen, TY_EINVAL, "%s: '%s' is not a list of sizes", key, s);
    }
    return TY_OK;
}

/* One key of the params map (or a typed field rendered as text). */
static int
s_apply (ty_train_config_t *c, const char *key, const char *val, char *err, size_t errlen)
{
    ty_torch_params_t *t = &c->torch;
    ty_batch_opts_t *b = &c->batch;
    int64_t i = 0;
    double d = 0;
    int f = 0, rc = TY_OK;
#define S_INT(name, lo, hi) (rc = s_parse_i64 (name, val, lo, hi, &i, err, errlen)) == TY_OK
#define S_DBL(name) (rc = s_parse_dbl (name, val, &d, err, errlen)) == TY_OK
#define S_BOOL(name) (rc = s_parse_bool (name, val, &f, err, errlen)) == TY_OK
    if (!strcmp (key, "epochs")) {
        if (S_INT ("epochs", 1, TY_TRAIN_MAX_EPOCHS)) c->epochs = (int) i;
    }
    else if (!strcmp (key, "lr")) {
        if (S_DBL ("lr")) {
            if (d <= 0)
                return s_err (err, errlen, TY_EINVAL, "lr must be > 0, got %g", d);
            t->lr = d;
        }
    }
    else if (!strcmp (key, "dim")) {
        if (S_INT ("dim", 1, 1 << 16)) {
            t->textclf.dim = i;
            t->ncf.gmf_dim = i;
        }
    }
    else if (!strcmp (key, "word_ngrams") || !strcmp (key, "wordNgrams")) {
        if (S_INT ("word_ngrams", 1, TY_TOK_MAX_NGRAMS)) b->tok.word_ngrams = (int) i;
    }
    else if (!strcmp (key, "minn")) {
        if (S_INT ("minn", 0, TY_TOK_MAX_CHARGRAM)) b->tok.minn = (int) i;
    }
    else if (!strcmp (key, "maxn")) {
        if (S_INT ("maxn", 0, TY_TOK_MAX_CHARGRAM)) b->tok.maxn = (int) i;
    }
    else if (!strcmp (key, "bucket")) {
        if (S_INT ("bucket", 0, INT64_C (1) << 32)) b->tok.bucket = i;
    }
    else if (!strcmp (key, "min_count") || !strcmp (key, "minCount")) {
        if (S_INT ("min_count", 1, INT64_MAX)) b->tok.min_count = i;
    }
    else if (!strcmp (key, "hidden")) {
        int n = 0;
        int64_t v [TY_TORCH_MAX_LAYERS];
        if ((rc = s_parse_layers ("hidden", val, &n, v, err, errlen)) == TY_OK) {
            t->mlp.nhidden = n;
            t->ncf.nlayers = n;
            memcpy (t->mlp.hidden, v, sizeof v);
            memcpy (t->ncf.layers, v, sizeof v);
        }
    }
    else if (!strcmp (key, "dropout")) {
        if (S_DBL ("dropout")) {
            if (d < 0 || d >= 1)
                return s_err (err, errlen, TY_EINVAL, "dropout must be in [0, 1), got %g", d);
            t->mlp.dropout = d;
            t->cnn.dropout = d;
        }
    }
    else if (!strcmp (key, "depth")) {
        if (S_INT ("depth", 1, 6)) t->cnn.depth = (int) i;
    }
    else if (!strcmp (key, "width") || !strcmp (key, "filters")) {
        if (S_INT ("width", 1, 4096)) t->cnn.filters = i;
    }
    else if (!strcmp (key, "optimizer")) {
        ty_torch_optim_t o;
        if (ty_torch_optim_parse (val, &o) != TY_OK)
            return s_err (err, errlen, TY_EINVAL, "optimizer: '%s' is not sgd, adam or adamw", val);
        t->optim = o;
    }
    else if (!strcmp (key, "batch_size")) {
        if (S_INT ("batch_size", 1, TY_TRAIN_MAX_BATCH)) c->batch_size = (int) i;
    }
    else if (!strcmp (key, "patience")) {
        if (S_INT ("patience", 0, TY_TRAIN_MAX_EPOCHS)) c->patience = (int) i;
    }
    else if (!strcmp (key, "threads")) {
        if (S_INT ("threads", 1, 1024)) {
            t->threads = (int) i;
            c->threads_set = 1;
        }
    }
    else if (!strcmp (key, "seed")) {
        if (S_INT ("seed", 0, INT64_MAX)) t->seed = (uint64_t) i;
    }
    else if (!strcmp (key, "deterministic")) {
        if (S_BOOL ("deterministic")) t->deterministic = f;
    }
    else if (!strcmp (key, "memory_cap_mb")) {
        if (S_INT ("memory_cap_mb", 0, INT64_C (1) << 30)) c->memory_cap_mb = i;
    }
    else if (!strcmp (key, "negatives")) {
        if (S_INT ("negatives", 0, 1000)) b->negatives = (int) i;
    }
    else if (!strcmp (key, "max_features")) {
        if (S_INT ("max_features", 1, INT64_C (1) << 24)) b->max_features = i;
    }
    else if (!strcmp (key, "lower")) {
        if (S_BOOL ("lower")) b->tok.lower = f;
    }
    else if (!strcmp (key, "eos")) {
        if (S_BOOL ("eos")) b->tok.eos = f;
    }
    else if (!strcmp (key, "punct")) {
        if (!strcmp (val, "keep"))       b->tok.punct = TY_TOK_PUNCT_KEEP;
        else if (!strcmp (val, "split")) b->tok.punct = TY_TOK_PUNCT_SPLIT;
        else if (!strcmp (val, "token")) b->tok.punct = TY_TOK_PUNCT_TOKEN;
        else return s_err (err, errlen, TY_EINVAL, "punct: '%s' is not keep, split or token", val);
    }
    else if (!strcmp (key, "multilabel")) {
        if (S_BOOL ("multilabel")) b->multilabel = f;
    }
    else if (!strcmp (key, "regression")) {
        if (S_BOOL ("regression")) b->regression = f;
    }
    else if (!strcmp (key, "weight_decay")) {
        if (S_DBL ("weight_decay")) {
            if (d < 0)
                return s_err (err, errlen, TY_EINVAL, "weight_decay must be >= 0, got %g", d);
            t->weight_decay = d;
        }
    }
    else if (!strcmp (key, "mlp_dim")) {
        if (S_INT ("mlp_dim", 1, 1 << 16)) t->ncf.mlp_dim = i;
    }
    else if (!strcmp (key, "separable")) {
        if (S_BOOL ("separable")) t->cnn.separable = f;
    }
    else if (!strcmp (key, "augment_flip")) {
        if (S_BOOL ("augment_flip")) t->cnn.augment_flip = f;
    }
    else if (!strcmp (key, "augment_crop")) {
        if (S_INT ("augment_crop", 0, 64)) t->cnn.augment_crop_px = (int) i;
    }
    else if (!strcmp (key, "holdout_fold")) {
        /* the upper bound is the dataset's fold count, checked once it is open */
        if (S_INT ("holdout_fold", 0, INT32_MAX)) {
            c->has_holdout = 1;
            c->holdout_fold = (uint32_t) i;
        }
    }
    else if (!strcmp (key, "progress_steps")) {
        if (S_INT ("progress_steps", 1, INT32_MAX)) c->progress_steps = (int) i;
    }
    else
        return s_err (err, errlen, TY_EINVAL, "unknown parameter '%s'", key);
#undef S_INT
#undef S_DBL
#undef S_BOOL
    return rc;
}

int
ty_train_config_from_spec (const Ty__TrainSpec *spec, ty_train_config_t *c, char *err,
                           size_t errlen)
{
    memset (c, 0, sizeof *c);
    c->spec = spec;
    if (!spec)
        return s_err (err, errlen, TY_EINVAL, "not a train job");
    ty_torch_kind_t kind;
    if (!spec->model_kind || !*spec->model_kind)
        return s_err (err, errlen, TY_EINVAL, "no model kind (textclf, mlp, cnn or ncf)");
    if (ty_torch_kind_parse (spec->model_kind, &kind) != TY_OK)
        return s_err (err, errlen, TY_EINVAL, "unknown model kind '%s' (textclf, mlp, cnn or ncf)",
                      spec->model_kind);
    if (!spec->dataset || !*spec->dataset)
        return s_err (err, errlen, TY_EINVAL, "no dataset");
    char dname [TY_DATASET_NAME_MAX + 1];
    uint64_t dver;
    const char *why = NULL;
    if (ty_dataset_spec_parse (spec->dataset, dname, &dver, &why) != TY_OK)
        return s_err (err, errlen, TY_EINVAL, "dataset '%s': %s", spec->dataset,
                      why ? why : "bad name");
    snprintf (c->dataset, sizeof c->dataset, "%s", spec->dataset);
    if (!spec->model_name || !*spec->model_name)
        return s_err (err, errlen, TY_EINVAL, "no model name");
    if (ty_modeldir_name_check (spec->model_name, &why) != TY_OK)
        return s_err (err, errlen, TY_EINVAL, "model name '%s': %s", spec->model_name,
                      why ? why : "bad name");
    snprintf (c->name, sizeof c->name, "%s", spec->model_name);

    ty_torch_params_init (&c->torch, kind);
    ty_batch_opts_init (&c->batch, kind);
    c->epochs = kind == TY_TORCH_TEXTCLF ? S_EPOCHS_TEXTCLF : S_EPOCHS_DEFAULT;
    c->batch_size = kind == TY_TORCH_TEXTCLF ? S_BATCH_TEXTCLF
                  : kind == TY_TORCH_NCF ? S_BATCH_NCF : S_BATCH_DEFAULT;
    c->progress_steps = TY_TRAIN_PROGRESS_STEPS;

    /* typed fields: 0 / "" = the default; rendered as text so one parser
     * checks both sources */
    char buf [64];
    int rc = TY_OK;
#define S_U(field, key) \
    if (rc == TY_OK && spec->field) { \
        snprintf (buf, sizeof buf, "%llu", (unsigned long long) spec->field); \
        rc = s_apply (c, key, buf, err, errlen); }
    S_U (epochs, "epochs");
    S_U (dim, "dim");
    S_U (word_ngrams, "word_ngrams");
    S_U (minn, "minn");
    S_U (maxn, "maxn");
    S_U (bucket, "bucket");
    S_U (min_count, "min_count");
    S_U (depth, "depth");
    S_U (width, "width");
    S_U (batch_size, "batch_size");
    S_U (patience, "patience");
    S_U (threads, "threads");
    S_U (seed, "seed");
    S_U (memory_cap_mb, "memory_cap_mb");
    S_U (negatives, "negatives");
#undef S_U
    if (rc == TY_OK && spec->lr != 0) {
        snprintf (buf, sizeof buf, "%.17g", spec->lr);
        rc = s_apply (c, "lr", buf, err, errlen);
    }
    if (rc == TY_OK && spec->dropout != 0) {
        snprintf (buf, sizeof buf, "%.17g", spec->dropout);
        rc = s_apply (c, "dropout", buf, err, errlen);
    }
    if (rc == TY_OK && spec->deterministic)
        c->torch.deterministic = true;
    if (rc == TY_OK && spec->optimizer && *spec->optimizer)
        rc = s_apply (c, "optimizer", spec->optimizer, err, errlen);
    if (rc == TY_OK && spec->n_hidden) {
        if (spec->n_hidden > TY_TORCH_MAX_LAYERS)
            rc = s_err (err, errlen, TY_EINVAL, "hidden: at most %d layers", TY_TORCH_MAX_LAYERS);
        for (size_t i = 0; rc == TY_OK && i < spec->n_hidden; i++)
            if (spec->hidden [i] < 1)
                rc = s_err (err, errlen, TY_EINVAL, "hidden: layer %zu has size 0", i);
        if (rc == TY_OK) {
            c->torch.mlp.nhidden = c->torch.ncf.nlayers = (int) spec->n_hidden;
            for (size_t i = 0; i < spec->n_hidden; i++)
                c->torch.mlp.hidden [i] = c->torch.ncf.layers [i] = spec->hidden [i];
        }
    }
    /* the params map wins: it can say what a typed field cannot (an explicit 0) */
    for (size_t i = 0; rc == TY_OK && i < spec->n_params; i++) {
        const Ty__TrainSpec__ParamsEntry *e = spec->params [i];
        if (!e->key || !e->value)
            continue;
        rc = s_apply (c, e->key, e->value, err, errlen);
    }
    if (rc != TY_OK)
        return rc;
    /* n-grams need hash rows */
    if ((c->batch.tok.word_ngrams > 1 || c->batch.tok.maxn > 0) && c->batch.tok.bucket < 1)
        return s_err (err, errlen, TY_EINVAL, "bucket must be >= 1 with word n-grams or "
                      "character n-grams");
    if (c->batch.tok.maxn > 0 && c->batch.tok.minn > c->batch.tok.maxn)
        return s_err (err, errlen, TY_EINVAL, "minn (%d) must not exceed maxn (%d)",
                      c->batch.tok.minn, c->batch.tok.maxn);
    if (c->batch.tok.maxn > 0 && c->batch.tok.minn < 1)
        return s_err (err, errlen, TY_EINVAL, "minn must be >= 1 with maxn %d",
                      c->batch.tok.maxn);
    /* the shim knows its own limits best; data-dependent sizes are still
     * the defaults here (they are checked again once known) */
    char terr [TY_TORCH_ERRSTR_LEN] = "";
    if (ty_torch_params_check (&c->torch, terr, sizeof terr) != TY_OK)
        return s_err (err, errlen, TY_EINVAL, "impossible hyperparameter: %s", terr);
    return TY_OK;
}

/* =========================================================================
 *  the run
 * ========================================================================= */

uint64_t
ty_train_rss_bytes (void)
{
    FILE *f = fopen ("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long long size = 0, rss = 0;
    int n = fscanf (f, "%llu %llu", &size, &rss);
    fclose (f);
    if (n != 2)
        return 0;
    long page = sysconf (_SC_PAGESIZE);
    return rss * (uint64_t) (page > 0 ? page : 4096);
}

/* Everything a run holds; freed in one place. */
typedef struct {
    const ty_train_config_t *cfg;
    const ty_train_env_t *env;
    char   *err;
    size_t  errlen;
    ty_dataset_t     *ds;
    ty_batch_feat_t  *feat;
    ty_batch_set_t   *train, *val;
    ty_torch_model_t *model;
    ty_torch_params_t params;
    ty_checkpoint_state_t state;
    char    ckdir [TY_MODELDIR_PATH_MAX];
    char    tmpdir [TY_MODELDIR_PATH_MAX];
    uint64_t *order;
    float   *out;            /* predictions of a validation batch */
    size_t   out_cap;
    int64_t  t0_ms;
    int64_t  last_report_ms;
    uint64_t samples_done;   /* this attempt */
    uint64_t tokens_done;
    int      higher_better;
    const char *metric;
} s_run_t;

static int
s_cancelled (s_run_t *r)
{
    return r->env->hooks.cancelled && r->env->hooks.cancelled (r->env->hooks.arg);
}

static void
s_metric (s_run_t *r, const char *key, double v)
{
    if (r->env->hooks.metric)
        r->env->hooks.metric (r->env->hooks.arg, key, v);
}

static void
s_progress (s_run_t *r, double fraction, const char *phase, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
static void
s_progress (s_run_t *r, double fraction, const char *phase, const char *fmt, ...)
{
    if (!r->env->hooks.progress)
        return;
    char msg [256];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    r->env->hooks.progress (r->env->hooks.arg, fraction, phase, msg);
}

static void
s_log (s_run_t *r, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void
s_log (s_run_t *r, const char *fmt, ...)
{
    if (!r->env->hooks.log)
        return;
    char msg [512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    r->env->hooks.log (r->env->hooks.arg, msg);
}

/* TY_EFULL with a reason when RSS is over the cap. */
static int
s_check_memory (s_run_t *r, const char *when)
{
    if (!r->cfg->memory_cap_mb)
        return TY_OK;
    uint64_t rss = ty_train_rss_bytes ();
    if (rss > (uint64_t) r->cfg->memory_cap_mb * (uint64_t) S_MB)
        return s_err (r->err, r->errlen, TY_EFULL,
                      "memory cap exceeded %s: RSS %.0f MB is over the %lld MB cap "
                      "(memory_cap_mb); use a smaller bucket, dim or batch_size, or raise the cap",
                      when, (double) rss / S_MB, (long long) r->cfg->memory_cap_mb);
    return TY_OK;
}

/* A 64-bit FNV-1a of the configuration that shapes the run, and of the
 * dataset's content: a checkpoint of anything else is not resumed. */
static void
s_digest (s_run_t *r, const char *config_text, char *out)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const char *parts [2] = { config_text, ty_dataset_meta (r->ds)->content_hash };
    for (int p = 0; p < 2; p++)
        for (const char *s = parts [p] ? parts [p] : ""; *s; s++) {
            h ^= (unsigned char) *s;
            h *= 0x100000001b3ull;
        }
    snprintf (out, TY_CHECKPOINT_DIGEST_LEN, "%016llx", (unsigned long long) h);
}

static uint64_t
s_mix (uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t st = seed ^ (a * S_GOLDEN) ^ (b * (S_GOLDEN << 1 | 1));
    return ty_negsample_rand (&st);
}

/* ---- config.json / lineage.json ----------------------------------------- */

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

static cJSON *
s_layers_json (int n, const int64_t *v)
{
    cJSON *a = cJSON_CreateArray ();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray (a, cJSON_CreateNumber ((double) v [i]));
    return a;
}

/* The configuration as JSON. with_machine: also threads (not part of the
 * digest: it is a property of the machine, not of the run). */
static cJSON *
s_config_json (const s_run_t *r, int with_machine)
{
    const ty_train_config_t *c = r->cfg;
    const ty_torch_params_t *t = &r->params;
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject (o, "format", 1);
    cJSON_AddStringToObject (o, "kind", ty_torch_kind_name (t->kind));
    cJSON_AddStringToObject (o, "task", s_task_name (ty_batch_feat_task (r->feat)));
    cJSON_AddStringToObject (o, "metric", r->metric);
    cJSON_AddNumberToObject (o, "epochs", c->epochs);
    cJSON_AddNumberToObject (o, "batch_size", c->batch_size);
    cJSON_AddNumberToObject (o, "patience", c->patience);
    cJSON_AddStringToObject (o, "optimizer", ty_torch_optim_name (t->optim));
    cJSON_AddNumberToObject (o, "lr", t->lr);
    cJSON_AddNumberToObject (o, "weight_decay", t->weight_decay);
    cJSON_AddNumberToObject (o, "total_steps", (double) t->total_steps);
    cJSON_AddNumberToObject (o, "seed", (double) t->seed);
    cJSON_AddBoolToObject (o, "deterministic", t->deterministic);
    cJSON_AddNumberToObject (o, "outputs", (double) ty_batch_feat_noutputs (r->feat));
    cJSON *a = cJSON_AddObjectToObject (o, "architecture");
    switch (t->kind) {
    case TY_TORCH_TEXTCLF:
        cJSON_AddNumberToObject (a, "nrows", (double) t->textclf.nrows);
        cJSON_AddNumberToObject (a, "dim", (double) t->textclf.dim);
        cJSON_AddNumberToObject (a, "nlabels", (double) t->textclf.nlabels);
        cJSON_AddBoolToObject (a, "multilabel", t->textclf.multilabel);
        break;
    case TY_TORCH_MLP:
        cJSON_AddNumberToObject (a, "input_dim", (double) t->mlp.input_dim);
        cJSON_AddItemToObject (a, "hidden", s_layers_json (t->mlp.nhidden, t->mlp.hidden));
        cJSON_AddNumberToObject (a, "dropout", t->mlp.dropout);
        cJSON_AddBoolToObject (a, "regression", t->mlp.regression);
        cJSON_AddNumberToObject (a, "noutputs", (double) t->mlp.noutputs);
        break;
    case TY_TORCH_CNN:
        cJSON_AddNumberToObject (a, "height", (double) t->cnn.height);
        cJSON_AddNumberToObject (a, "width", (double) t->cnn.width);
        cJSON_AddNumberToObject (a, "channels", (double) t->cnn.channels);
        cJSON_AddNumberToObject (a, "depth", t->cnn.depth);
        cJSON_AddNumberToObject (a, "filters", (double) t->cnn.filters);
        cJSON_AddBoolToObject (a, "separable", t->cnn.separable);
        cJSON_AddNumberToObject (a, "nclasses", (double) t->cnn.nclasses);
        cJSON_AddBoolToObject (a, "augment_flip", t->cnn.augment_flip);
        cJSON_AddNumberToObject (a, "augment_crop_px", t->cnn.augment_crop_px);
        cJSON_AddNumberToObject (a, "dropout", t->cnn.dropout);
        break;
    case TY_TORCH_NCF:
        cJSON_AddNumberToObject (a, "nusers", (double) t->ncf.nusers);
        cJSON_AddNumberToObject (a, "nitems", (double) t->ncf.nitems);
        cJSON_AddNumberToObject (a, "gmf_dim", (double) t->ncf.gmf_dim);
        cJSON_AddNumberToObject (a, "mlp_dim", (double) t->ncf.mlp_dim);
        cJSON_AddItemToObject (a, "layers", s_layers_json (t->ncf.nlayers, t->ncf.layers));
        break;
    }
    const ty_tok_opts_t *k = &c->batch.tok;
    cJSON *tok = cJSON_AddObjectToObject (o, "tokenizer");
    cJSON_AddBoolToObject (tok, "lower", k->lower);
    cJSON_AddNumberToObject (tok, "punct", k->punct);
    cJSON_AddNumberToObject (tok, "word_ngrams", k->word_ngrams);
    cJSON_AddNumberToObject (tok, "minn", k->minn);
    cJSON_AddNumberToObject (tok, "maxn", k->maxn);
    cJSON_AddNumberToObject (tok, "bucket", (double) k->bucket);
    cJSON_AddBoolToObject (tok, "eos", k->eos);
    cJSON_AddNumberToObject (tok, "min_count", (double) k->min_count);
    cJSON_AddNumberToObject (o, "max_features", (double) c->batch.max_features);
    cJSON_AddNumberToObject (o, "negatives", c->batch.negatives);
    /* only when set: a run without folds keeps the digest it always had, so
     * its checkpoints from before this field existed still resume */
    if (c->has_holdout) {
        cJSON_AddNumberToObject (o, "holdout_fold", c->holdout_fold);
        cJSON_AddStringToObject (o, "validation", "holdout_fold");
    }
    if (with_machine) {
        cJSON_AddNumberToObject (o, "threads", t->threads);
        cJSON_AddNumberToObject (o, "memory_cap_mb", (double) c->memory_cap_mb);
        cJSON_AddStringToObject (o, "trainyard_version", TY_VERSION);
        cJSON_AddStringToObject (o, "blas", ty_torch_blas_name ());
    }
    return o;
}

static cJSON *
s_history_json (const ty_checkpoint_state_t *st)
{
    cJSON *a = cJSON_CreateArray ();
    for (size_t i = 0; a && i < st->nhistory; i++) {
        const ty_checkpoint_epoch_t *e = &st->history [i];
        cJSON *x = cJSON_CreateObject ();
        if (!x || !cJSON_AddItemToArray (a, x)) {
            cJSON_Delete (x);
            break;
        }
        cJSON_AddNumberToObject (x, "epoch", e->epoch);
        cJSON_AddNumberToObject (x, "step", (double) e->step);
#define S_NUM(k, v) if (isfinite (v)) cJSON_AddNumberToObject (x, k, v); \
                    else cJSON_AddNullToObject (x, k)
        S_NUM ("train_loss", e->train_loss);
        S_NUM ("val_loss", e->val_loss);
        S_NUM ("val_metric", e->val_metric);
        S_NUM ("lr", e->lr);
        S_NUM ("seconds", e->seconds);
        S_NUM ("samples_per_s", e->samples_per_s);
#undef S_NUM
    }
    return a;
}

static cJSON *
s_lineage_json (const s_run_t *r, uint64_t digest)
{
    const Ty__DatasetMeta *m = ty_dataset_meta (r->ds);
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject (o, "format", 1);
    cJSON *d = cJSON_AddObjectToObject (o, "dataset");
    cJSON_AddStringToObject (d, "name", ty_dataset_name (r->ds));
    cJSON_AddNumberToObject (d, "version", (double) ty_dataset_version (r->ds));
    cJSON_AddStringToObject (d, "content_hash", m->content_hash ? m->content_hash : "");
    cJSON_AddStringToObject (d, "requested", r->cfg->dataset);
    cJSON_AddNumberToObject (d, "train_samples", (double) ty_batch_set_count (r->train));
    cJSON_AddNumberToObject (d, "val_samples", r->val ? (double) ty_batch_set_count (r->val) : 0);
    if (r->cfg->has_holdout) {
        /* k-fold: val_samples above are the held-out fold's train samples */
        cJSON_AddNumberToObject (d, "folds", m->folds);
        cJSON_AddNumberToObject (d, "holdout_fold", r->cfg->holdout_fold);
        cJSON_AddNumberToObject (o, "holdout_fold", r->cfg->holdout_fold);
    }
    cJSON_AddStringToObject (o, "job_id", r->env->job_id ? r->env->job_id : "");
    cJSON_AddNumberToObject (o, "attempt", r->env->attempt);
    cJSON_AddNumberToObject (o, "created_unix", (double) time (NULL));
    cJSON_AddNumberToObject (o, "best_epoch", r->state.best_epoch);
    cJSON_AddNumberToObject (o, "epochs_run", r->state.epochs_done);
    char hex [24];
    snprintf (hex, sizeof hex, "%016llx", (unsigned long long) digest);
    cJSON_AddStringToObject (o, "weights_digest", hex);
    cJSON_AddStringToObject (o, "config_digest", r->state.digest);
    /* the parameters as submitted, beside the effective ones in config.json */
    cJSON *p = cJSON_AddObjectToObject (o, "params");
    const Ty__TrainSpec *s = r->cfg->spec;
    if (s) {
        cJSON_AddStringToObject (p, "dataset", s->dataset ? s->dataset : "");
        cJSON_AddStringToObject (p, "model_kind", s->model_kind ? s->model_kind : "");
        cJSON_AddStringToObject (p, "model_name", s->model_name ? s->model_name : "");
        for (size_t i = 0; i < s->n_params; i++)
            if (s->params [i]->key && s->params [i]->value)
                cJSON_AddStringToObject (p, s->params [i]->key, s->params [i]->value);
    }
    return o;
}

static int
s_write_json (s_run_t *r, const char *dir, const char *file, cJSON *o)
{
    char *text = o ? cJSON_Print (o) : NULL;
    cJSON_Delete (o);
    if (!text)
        return s_err (r->err, r->errlen, TY_ENOMEM, "out of memory writing %s", file);
    int rc = ty_modeldir_write (dir, file, text);
    cJSON_free (text);
    if (rc != TY_OK)
        return s_err (r->err, r->errlen, rc, "%s/%s: %s", dir, file, ty_strerror (rc));
    return TY_OK;
}

/* ---- validation ----------------------------------------------------------- */

/* The shim's error, or a generic one. */
static int
s_shim_fail (s_run_t *r, int rc, const char *what)
{
    const char *msg = r->model ? ty_torch_errstr (r->model) : "";
    return s_err (r->err, r->errlen, rc == TY_EINVAL ? TY_EINVAL : TY_EINTERNAL, "%s: %s", what,
                  *msg ? msg : ty_strerror (rc));
}

static int
s_reserve_out (s_run_t *r, size_t n)
{
    if (n <= r->out_cap)
        return TY_OK;
    float *p = realloc (r->out, n * sizeof *p);
    if (!p)
        return s_err (r->err, r->errlen, TY_ENOMEM, "out of memory for predictions");
    r->out = p;
    r->out_cap = n;
    return TY_OK;
}

/* ncf: HR@10 of the val positives against sampled negatives. */
static int
s_validate_ranking (s_run_t *r, double *metric)
{
    const ty_negsample_t *neg = ty_batch_feat_negsample (r->feat);
    int64_t nitems = ty_batch_feat_nitems (r->feat);
    size_t n = ty_batch_set_count (r->val);
    if (n > TY_TRAIN_HR_MAX)
        n = TY_TRAIN_HR_MAX;
    int64_t users [TY_TRAIN_HR_NEGATIVES + 1], items [TY_TRAIN_HR_NEGATIVES + 1];
    int rc = s_reserve_out (r, TY_TRAIN_HR_NEGATIVES + 1);
    if (rc != TY_OK)
        return rc;
    /* the same negatives every epoch: epochs stay comparable */
    uint64_t rng = s_mix (r->params.seed, S_SEED_VAL, 0);
    size_t hits = 0, ranked = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t u, it;
        ty_batch_set_pair (r->val, i, &u, &it);
        users [0] = u;
        items [0] = it;
        int m = 1;
        for (int tries = 0; m <= TY_TRAIN_HR_NEGATIVES && tries < 20 * TY_TRAIN_HR_NEGATIVES;
             tries++) {
            int64_t cand = (int64_t) ty_negsample_below (&rng, (uint64_t) nitems);
            if (cand == it || (neg && ty_negsample_is_positive (neg, u, cand)))
                continue;
            users [m] = u;
            items [m++] = cand;
        }
        ty_torch_batch_t b = { .n = m, .users = users, .items = items };
        rc = ty_torch_predict (r->model, &b, r->out, r->out_cap);
        if (rc != TY_OK)
            return s_shim_fail (r, rc, "validation");
        /* Ties rank above the positive, as the evaluate worker counts them
         * (ty_metrics_rank_of_positive): a confident model saturates the
         * sigmoid at exactly 1.0f, and a degenerate one (every output
         * equal) would otherwise rank every positive first. */
        int above = 0;
        for (int j = 1; j < m; j++)
            above += r->out [j] >= r->out [0];
        hits += above < TY_TRAIN_HR_K;
        ranked++;
    }
    *metric = ranked ? (double) hits / (double) ranked : 0;
    return TY_OK;
}

static int
s_validate (s_run_t *r, double *metric, double *loss)
{
    *metric = NAN;
    *loss = NAN;
    if (!r->val || ty_batch_set_count (r->val) == 0)
        return TY_OK;
    ty_batch_task_t task = ty_batch_feat_task (r->feat);
    if (task == TY_BATCH_TASK_RANKING)
        return s_validate_ranking (r, metric);
    size_t n = ty_batch_set_count (r->val);
    int64_t width = ty_torch_output_width (r->model);
    int rc = s_reserve_out (r, (size_t) TY_TRAIN_EVAL_BATCH * (size_t) width);
    if (rc != TY_OK)
        return rc;
    uint64_t idx [TY_TRAIN_EVAL_BATCH];
    double loss_sum = 0, sq = 0;
    size_t correct = 0, tp = 0, fp = 0, fn = 0;
    for (size_t start = 0; start < n; start += TY_TRAIN_EVAL_BATCH) {
        size_t m = n - start < TY_TRAIN_EVAL_BATCH ? n - start : TY_TRAIN_EVAL_BATCH;
        for (size_t k = 0; k < m; k++)
            idx [k] = start + k;
        ty_torch_batch_t b;
        rc = ty_batch_set_gather (r->val, idx, m, NULL, &b);
        if (rc != TY_OK)
            return s_err (r->err, r->errlen, rc, "validation batch: %s", ty_strerror (rc));
        double l = 0;
        rc = ty_torch_eval_loss (r->model, &b, &l);
        if (rc == TY_OK)
            rc = ty_torch_predict (r->model, &b, r->out, r->out_cap);
        if (rc != TY_OK)
            return s_shim_fail (r, rc, "validation");
        loss_sum += l * (double) m;
        for (size_t k = 0; k < m; k++) {
            const float *row = r->out + k * (size_t) width;
            size_t i = start + k;
            if (task == TY_BATCH_TASK_SINGLE) {
                int64_t best = 0;
                for (int64_t j = 1; j < width; j++)
                    if (row [j] > row [best])
                        best = j;
                correct += best == ty_batch_set_label (r->val, i);
            }
            else if (task == TY_BATCH_TASK_MULTI) {
                size_t nl;
                const int64_t *labs = ty_batch_set_labels (r->val, i, &nl);
                for (int64_t j = 0; j < width; j++) {
                    int truth = 0;
                    for (size_t q = 0; q < nl; q++)
                        truth |= labs [q] == j;
                    int pred = row [j] >= 0.5f;
                    tp += pred && truth;
                    fp += pred && !truth;
                    fn += !pred && truth;
                }
            }
            else {
                double e = (double) row [0] - (double) ty_batch_set_target (r->val, i);
                sq += e * e;
            }
        }
    }
    *loss = loss_sum / (double) n;
    if (task == TY_BATCH_TASK_SINGLE)
        *metric = (double) correct / (double) n;
    else if (task == TY_BATCH_TASK_MULTI)
        *metric = tp ? 2.0 * (double) tp / (double) (2 * tp + fp + fn) : 0;
    else
        *metric = sq / (double) n;
    return TY_OK;
}

/* ---- the epochs ----------------------------------------------------------- */

static int
s_epoch (s_run_t *r, int epoch, ty_checkpoint_epoch_t *rec)
{
    const ty_train_config_t *c = r->cfg;
    size_t n = ty_batch_set_count (r->train);
    size_t bs = (size_t) c->batch_size;
    size_t nbatches = (n + bs - 1) / bs;
    for (size_t i = 0; i < n; i++)
        r->order [i] = i;
    ty_dataset_shuffle (r->order, n, s_mix (r->params.seed, (uint64_t) epoch, 1));
    uint64_t rng = s_mix (r->params.seed, (uint64_t) epoch, 2);
    int64_t t0 = ty_clock_mono_ms ();
    double loss_sum = 0;
    uint64_t samples = 0, tokens = 0;
    int64_t step_rate_t0 = t0;
    uint64_t rate_samples = 0;
    for (size_t b = 0; b < nbatches; b++) {
        if (s_cancelled (r))
            return s_err (r->err, r->errlen, ECANCELED, "cancelled during epoch %d", epoch);
        size_t start = b * bs, m = n - start < bs ? n - start : bs;
        ty_torch_batch_t batch;
        int rc = ty_batch_set_gather (r->train, r->order + start, m, &rng, &batch);
        if (rc != TY_OK)
            return s_err (r->err, r->errlen, rc, "batch %zu of epoch %d: %s", b, epoch,
                          ty_strerror (rc));
        double loss = 0;
        rc = ty_torch_train_step (r->model, &batch, &loss);
        if (rc != TY_OK)
            return s_shim_fail (r, rc, "training step");
        if (!isfinite (loss))
            return s_err (r->err, r->errlen, TY_EINVAL, "the loss became %g at epoch %d, "
                          "step %lld: lr %g is too high, or the data holds extreme values",
                          loss, epoch, (long long) ty_torch_step (r->model), r->params.lr);
        loss_sum += loss * (double) m;
        samples += m;
        rate_samples += m;
        tokens += (uint64_t) batch.nids;
        if (r->env->step_delay_ms > 0)
            ty_clock_sleep_ms (r->env->step_delay_ms);
        int64_t now = ty_clock_mono_ms ();
        int report = ((b + 1) % (size_t) c->progress_steps == 0 || b + 1 == nbatches)
                  && now - r->last_report_ms >= S_PROGRESS_MIN_MS;
        if (report || b + 1 == nbatches) {
            rc = s_check_memory (r, "during training");
            if (rc != TY_OK)
                return rc;
        }
        if (report) {
            double done = (double) (epoch - 1) + (double) (b + 1) / (double) nbatches;
            double frac = done / (double) c->epochs;
            double secs = (double) (now - step_rate_t0) / 1000.0;
            double sps = secs > 0 ? (double) rate_samples / secs : 0;
            double elapsed = (double) (now - r->t0_ms) / 1000.0;
            double this_done = done - (double) r->state.epochs_done;  /* this attempt */
            double eta = this_done > 0 ? elapsed / this_done * ((double) c->epochs - done) : 0;
            s_metric (r, "epoch", epoch);
            s_metric (r, "step", (double) ty_torch_step (r->model));
            s_metric (r, "loss", loss_sum / (double) samples);
            s_metric (r, "lr", ty_torch_lr (r->model));
            s_metric (r, "samples_per_s", sps);
            if (tokens)
                s_metric (r, "tokens_per_s", secs > 0 ? (double) tokens / secs : 0);
            s_metric (r, "rss_mb", (double) ty_train_rss_bytes () / S_MB);
            s_metric (r, "eta_s", eta);
            s_progress (r, frac, "train", "epoch %d/%d step %zu/%zu loss %.4f", epoch,
                        c->epochs, b + 1, nbatches, loss_sum / (double) samples);
            r->last_report_ms = now;
            step_rate_t0 = now;
            rate_samples = 0;
        }
    }
    r->samples_done += samples;
    r->tokens_done += tokens;
    double secs = (double) (ty_clock_mono_ms () - t0) / 1000.0;
    rec->epoch = epoch;
    rec->train_loss = samples ? loss_sum / (double) samples : NAN;
    rec->lr = ty_torch_lr (r->model);
    rec->seconds = secs;
    rec->samples_per_s = secs > 0 ? (double) samples / secs : 0;
    rec->step = ty_torch_step (r->model);
    return TY_OK;
}

/* ---- setup and the end ------------------------------------------------------ */

static void
s_free (s_run_t *r)
{
    ty_torch_destroy (&r->model);
    ty_batch_set_destroy (&r->train);
    ty_batch_set_destroy (&r->val);
    ty_batch_feat_destroy (&r->feat);
    ty_dataset_destroy (&r->ds);
    ty_checkpoint_state_free (&r->state);
    if (*r->tmpdir)
        ty_modeldir_abort (r->tmpdir);
    free (r->order);
    free (r->out);
}

static int
s_prepare (s_run_t *r)
{
    const ty_train_config_t *c = r->cfg;
    const ty_train_env_t *env = r->env;
    s_progress (r, 0, "load", "opening dataset %s", c->dataset);
    int rc = ty_dataset_open (env->data_dir, c->dataset, &r->ds);
    if (rc == TY_ENOTFOUND)
        return s_err (r->err, r->errlen, TY_ENOTFOUND, "dataset '%s' not found in %s/datasets",
                      c->dataset, env->data_dir);
    if (rc != TY_OK)
        return s_err (r->err, r->errlen, rc, "dataset '%s': %s", c->dataset, ty_strerror (rc));
    if (s_cancelled (r))
        return s_err (r->err, r->errlen, ECANCELED, "cancelled while loading");
    /* k-fold: train on every fold but the held-out one, validate on it */
    ty_batch_opts_t bopts = c->batch;
    ty_batch_folds_t train_folds = { TY_BATCH_FOLDS_ALL, 0 };
    ty_batch_folds_t val_folds = { TY_BATCH_FOLDS_ONLY, c->holdout_fold };
    if (c->has_holdout) {
        rc = ty_batch_folds_check (r->ds, "holdout_fold", c->holdout_fold, r->err, r->errlen);
        if (rc != TY_OK)
            return rc;
        train_folds.mode = TY_BATCH_FOLDS_EXCEPT;
        train_folds.fold = c->holdout_fold;
        bopts.fit_folds = train_folds;
    }
    s_progress (r, 0, "prepare", "fitting the %s featurizer", ty_torch_kind_name (c->torch.kind));
    rc = ty_batch_feat_fit (&bopts, r->ds, &r->feat, r->err, r->errlen);
    if (rc != TY_OK)
        return rc;
    if ((rc = s_check_memory (r, "after fitting the featurizer")) != TY_OK)
        return rc;
    size_t cap = c->memory_cap_mb ? (size_t) c->memory_cap_mb << 20 : 0;
    rc = ty_batch_set_new_folds (r->feat, r->ds, TY_SPLIT_TRAIN, &train_folds, cap, &r->train,
                                 r->err, r->errlen);
    if (rc == TY_EFULL)
        return s_err (r->err, r->errlen, TY_EFULL, "memory cap exceeded: the encoded train "
                      "split is over the %lld MB cap (memory_cap_mb)", (long long) c->memory_cap_mb);
    if (rc != TY_OK)
        return rc;
    if (ty_batch_set_count (r->train) == 0)
        return s_err (r->err, r->errlen, TY_EINVAL, "zero samples: none of the %llu train "
                      "samples of %s@%llu is usable (%llu without a label or target)",
                      (unsigned long long) ty_dataset_count (r->ds, TY_SPLIT_TRAIN),
                      ty_dataset_name (r->ds), (unsigned long long) ty_dataset_version (r->ds),
                      (unsigned long long) ty_batch_set_skipped (r->train));
    if (c->has_holdout) {
        rc = ty_batch_set_new_folds (r->feat, r->ds, TY_SPLIT_TRAIN, &val_folds, cap, &r->val,
                                     r->err, r->errlen);
        if (rc != TY_OK)
            return rc;
        /* without it the run would quietly pick its best epoch by train loss */
        if (ty_batch_set_count (r->val) == 0)
            return s_err (r->err, r->errlen, TY_EINVAL, "holdout_fold %u: fold %u of %s@%llu "
                          "holds no usable train sample (%llu in the fold, all without a "
                          "label or target the model knows)", c->holdout_fold, c->holdout_fold,
                          ty_dataset_name (r->ds), (unsigned long long) ty_dataset_version (r->ds),
                          (unsigned long long) ty_batch_set_skipped (r->val));
    }
    else if (ty_dataset_count (r->ds, TY_SPLIT_VAL)) {
        rc = ty_batch_set_new (r->feat, r->ds, TY_SPLIT_VAL, cap, &r->val, r->err, r->errlen);
        if (rc != TY_OK)
            return rc;
    }
    if ((rc = s_check_memory (r, "after encoding the dataset")) != TY_OK)
        return rc;
    r->order = malloc (ty_batch_set_count (r->train) * sizeof *r->order);
    if (!r->order)
        return s_err (r->err, r->errlen, TY_ENOMEM, "out of memory");

    /* the model's data-dependent shape, the decay horizon, threads */
    r->params = c->torch;
    ty_batch_feat_model_params (r->feat, &r->params);
    size_t nb = (ty_batch_set_count (r->train) + (size_t) c->batch_size - 1) / (size_t) c->batch_size;
    r->params.total_steps = r->params.optim == TY_TORCH_SGD ? (int64_t) nb * c->epochs : 0;
    if (!c->threads_set)
        r->params.threads = env->default_threads > 0 ? env->default_threads : 1;
    char terr [TY_TORCH_ERRSTR_LEN] = "";
    if (ty_torch_params_check (&r->params, terr, sizeof terr) != TY_OK)
        return s_err (r->err, r->errlen, TY_EINVAL, "impossible hyperparameter: %s", terr);
    switch (ty_batch_feat_task (r->feat)) {
    case TY_BATCH_TASK_SINGLE:     r->metric = "acc";  r->higher_better = 1; break;
    case TY_BATCH_TASK_MULTI:      r->metric = "f1";   r->higher_better = 1; break;
    case TY_BATCH_TASK_REGRESSION: r->metric = "mse";  r->higher_better = 0; break;
    case TY_BATCH_TASK_RANKING:    r->metric = "hr10"; r->higher_better = 1; break;
    }
    if (!r->val || ty_batch_set_count (r->val) == 0) {
        r->metric = "loss";
        r->higher_better = 0;
    }

    /* resume or start */
    cJSON *cj = s_config_json (r, 0);
    char *ctext = cj ? cJSON_PrintUnformatted (cj) : NULL;
    cJSON_Delete (cj);
    if (!ctext)
        return s_err (r->err, r->errlen, TY_ENOMEM, "out of memory");
    char digest [TY_CHECKPOINT_DIGEST_LEN];
    s_digest (r, ctext, digest);
    cJSON_free (ctext);
    rc = ty_checkpoint_dir (env->data_dir, env->job_id ? env->job_id : "local", r->ckdir,
                            sizeof r->ckdir);
    if (rc != TY_OK)
        return s_err (r->err, r->errlen, rc, "checkpoint dir: %s", ty_strerror (rc));
    char cerr [TY_TRAIN_ERR_LEN] = "";
    rc = ty_checkpoint_load (r->ckdir, digest, r->params.threads, &r->state, &r->model, cerr,
                             sizeof cerr);
    if (rc == TY_OK) {
        s_log (r, "attempt %u resumes from the checkpoint of epoch %d (best epoch %d, %s %.6g)",
               env->attempt, r->state.epochs_done, r->state.best_epoch, r->metric,
               r->state.best_metric);
        return TY_OK;
    }
    if (rc != TY_ENOTFOUND)
        s_log (r, "checkpoint not usable, starting over: %s", cerr);
    /* whatever is there belongs to no resumable state */
    ty_checkpoint_remove (r->ckdir);
    memset (&r->state, 0, sizeof r->state);
    snprintf (r->state.digest, sizeof r->state.digest, "%s", digest);
    r->state.best_metric = NAN;
    char terr2 [TY_TORCH_ERRSTR_LEN] = "";
    rc = ty_torch_new (&r->params, &r->model, terr2, sizeof terr2);
    if (rc != TY_OK)
        return s_err (r->err, r->errlen, rc == TY_EINVAL ? TY_EINVAL : rc,
                      "cannot build the %s model: %s", ty_torch_kind_name (r->params.kind), terr2);
    return TY_OK;
}

/* Writes the version directory from the best checkpoint and publishes it. */
static int
s_publish (s_run_t *r, ty_train_result_t *res)
{
    const ty_train_env_t *env = r->env;
    s_progress (r, 1.0, "save", "writing model %s", r->cfg->name);
    /* the best model replaces the last one */
    char best [TY_MODELDIR_PATH_MAX];
    int rc = ty_checkpoint_best_path (r->ckdir, &r->state, best, sizeof best);
    if (rc == TY_OK) {
        ty_torch_model_t *m = NULL;
        char lerr [TY_TORCH_ERRSTR_LEN] = "";
        rc = ty_torch_load (best, r->params.threads, &m, lerr, sizeof lerr);
        if (rc != TY_OK)
            return s_err (r->err, r->errlen, rc, "best model %s: %s", best, lerr);
        ty_torch_destroy (&r->model);
        r->model = m;
    }
    rc = ty_modeldir_begin (env->data_dir, r->cfg->name, r->tmpdir, sizeof r->tmpdir);
    if (rc != TY_OK) {
        *r->tmpdir = '\0';
        return s_err (r->err, r->errlen, rc, "models/%s: %s", r->cfg->name, ty_strerror (rc));
    }
    char path [TY_MODELDIR_PATH_MAX + 16];
    snprintf (path, sizeof path, "%s/" TY_MODELDIR_WEIGHTS, r->tmpdir);
    rc = ty_torch_save (r->model, path);
    if (rc != TY_OK)
        return s_shim_fail (r, rc, "saving the model");
    rc = ty_batch_feat_save (r->feat, r->tmpdir);
    if (rc != TY_OK)
        return s_err (r->err, r->errlen, rc, "saving the featurizer: %s", ty_strerror (rc));
    uint64_t digest = ty_torch_weights_digest (r->model);
    if ((rc = s_write_json (r, r->tmpdir, TY_MODELDIR_CONFIG, s_config_json (r, 1))) != TY_OK
    ||  (rc = s_write_json (r, r->tmpdir, TY_MODELDIR_HISTORY, s_history_json (&r->state))) != TY_OK
    ||  (rc = s_write_json (r, r->tmpdir, TY_MODELDIR_LINEAGE, s_lineage_json (r, digest))) != TY_OK)
        return rc;
    /* the last moment a cancel can still leave nothing behind */
    if (s_cancelled (r))
        return s_err (r->err, r->errlen, ECANCELED, "cancelled before the model was published");
    rc = ty_modeldir_commit (env->data_dir, r->cfg->name, r->tmpdir, &res->version, res->path,
                             sizeof res->path);
    *r->tmpdir = '\0';      /* gone either way */
    if (rc != TY_OK)
        return s_err (r->err, r->errlen, rc, "publishing models/%s: %s", r->cfg->name,
                      ty_strerror (rc));
    snprintf (res->model, sizeof res->model, "%s@%llu", r->cfg->name,
              (unsigned long long) res->version);
    res->weights_digest = digest;
    res->param_count = ty_torch_param_count (r->model);
    return TY_OK;
}

int
ty_train_run (const ty_train_config_t *cfg, const ty_train_env_t *env, ty_train_result_t *res,
              char *err, size_t errlen)
{
    memset (res, 0, sizeof *res);
    if (err && errlen)
        *err = '\0';
    s_run_t r = { .cfg = cfg, .env = env, .err = err, .errlen = errlen };
    r.t0_ms = ty_clock_mono_ms ();
    int rc = s_prepare (&r);
    res->resumed_from = r.state.epochs_done;
    res->holdout_fold = cfg->has_holdout ? (int) cfg->holdout_fold : -1;
    char fold_note [64] = "";
    if (cfg->has_holdout && r.ds)
        snprintf (fold_note, sizeof fold_note, " (fold %u of %u held out)", cfg->holdout_fold,
                  ty_dataset_meta (r.ds)->folds);
    if (rc == TY_OK)
        s_log (&r, "training %s '%s' on %s@%llu: %zu train, %zu val samples%s, %lld parameters, "
               "%d epochs, batch %d, %s lr %g, %d thread(s), BLAS %s",
               ty_torch_kind_name (r.params.kind), cfg->name, ty_dataset_name (r.ds),
               (unsigned long long) ty_dataset_version (r.ds), ty_batch_set_count (r.train),
               r.val ? ty_batch_set_count (r.val) : 0, fold_note,
               (long long) ty_torch_param_count (r.model), cfg->epochs, cfg->batch_size,
               ty_torch_optim_name (r.params.optim), r.params.lr, r.params.threads,
               ty_torch_blas_name ());
    int stopped_early = 0;
    /* which epoch this attempt starts at: a resumed attempt says 3 after a
     * checkpoint of epoch 2 (a key of its own, so later epochs do not hide it) */
    if (rc == TY_OK) {
        /* Keys are shown in the order first reported and watch has room
         * for eight: the ones a person follows go first (a value not known
         * yet is NaN, shown as such). */
        char vkey [32];
        snprintf (vkey, sizeof vkey, "val_%s", r.metric);
        s_metric (&r, "epoch", r.state.epochs_done + 1);
        s_metric (&r, "loss", NAN);
        s_metric (&r, vkey, r.state.best_epoch ? r.state.best_metric : NAN);
        s_metric (&r, "samples_per_s", NAN);
        s_metric (&r, "eta_s", NAN);
        s_metric (&r, "rss_mb", (double) ty_train_rss_bytes () / S_MB);
        s_metric (&r, "step", (double) ty_torch_step (r.model));
        s_metric (&r, "first_epoch", r.state.epochs_done + 1);
    }
    for (int epoch = r.state.epochs_done + 1; rc == TY_OK && epoch <= cfg->epochs; epoch++) {
        ty_checkpoint_epoch_t rec;
        memset (&rec, 0, sizeof rec);
        s_metric (&r, "epoch", epoch);
        rc = s_epoch (&r, epoch, &rec);
        if (rc != TY_OK)
            break;
        s_progress (&r, (double) epoch / cfg->epochs, "validate", "epoch %d/%d", epoch,
                    cfg->epochs);
        rc = s_validate (&r, &rec.val_metric, &rec.val_loss);
        if (rc != TY_OK)
            break;
        double m = isfinite (rec.val_metric) ? rec.val_metric : rec.train_loss;
        int improved = r.state.best_epoch == 0
                    || (r.higher_better ? m > r.state.best_metric : m < r.state.best_metric);
        if (improved) {
            r.state.best_epoch = epoch;
            r.state.best_metric = m;
            r.state.bad_epochs = 0;
        }
        else
            r.state.bad_epochs++;
        r.state.epochs_done = epoch;
        if (ty_checkpoint_history_add (&r.state, &rec) != TY_OK) {
            rc = s_err (err, errlen, TY_ENOMEM, "out of memory");
            break;
        }
        rc = ty_checkpoint_save (r.ckdir, &r.state, r.model, improved, err, errlen);
        if (rc != TY_OK)
            break;
        /* reported after the checkpoint: an observer that sees epoch E done
         * knows a retry resumes after E */
        char key [32];
        snprintf (key, sizeof key, "val_%s", r.metric);
        s_metric (&r, "epochs_done", epoch);
        s_metric (&r, "train_loss", rec.train_loss);
        if (isfinite (rec.val_loss))
            s_metric (&r, "val_loss", rec.val_loss);
        s_metric (&r, key, m);
        s_metric (&r, "best_epoch", r.state.best_epoch);
        s_metric (&r, "epoch_s", rec.seconds);
        s_metric (&r, "rss_mb", (double) ty_train_rss_bytes () / S_MB);
        /* its own phase: the runtime sends a phase change at once, past the
           rate limit, so every epoch's metrics reach the metrics stream */
        s_progress (&r, (double) epoch / cfg->epochs, "epoch",
                    "epoch %d/%d done: loss %.4f, val %s %.4f%s", epoch, cfg->epochs,
                    rec.train_loss, r.metric, m, improved ? " (best)" : "");
        s_log (&r, "epoch %d/%d: train loss %.6f, val loss %.6f, val %s %.6f, lr %.6g, "
               "%.2f s, %.0f samples/s%s", epoch, cfg->epochs, rec.train_loss, rec.val_loss,
               r.metric, m, rec.lr, rec.seconds, rec.samples_per_s, improved ? " (best)" : "");
        if (cfg->patience > 0 && r.state.bad_epochs >= cfg->patience) {
            s_log (&r, "early stop after epoch %d: no improvement of val %s for %d epochs "
                   "(best %.6f at epoch %d)", epoch, r.metric, cfg->patience,
                   r.state.best_metric, r.state.best_epoch);
            stopped_early = 1;
            break;
        }
    }
    /* a run whose epochs all happened before (a retry of a job that died
     * while publishing) publishes straight away */
    if (rc == TY_OK)
        rc = s_publish (&r, res);
    if (rc == TY_OK) {
        snprintf (res->metric, sizeof res->metric, "%s", r.metric);
        res->best_metric = r.state.best_metric;
        res->best_epoch = r.state.best_epoch;
        res->epochs_run = r.state.epochs_done;
        res->train_samples = ty_batch_set_count (r.train);
        res->val_samples = r.val ? ty_batch_set_count (r.val) : 0;
        res->seconds = (double) (ty_clock_mono_ms () - r.t0_ms) / 1000.0;
        s_log (&r, "model %s: best val %s %.6f at epoch %d of %d%s", res->model, r.metric,
               res->best_metric, res->best_epoch, res->epochs_run,
               stopped_early ? " (stopped early)" : "");
        int crc = ty_checkpoint_remove (r.ckdir);
        if (crc != TY_OK)
            s_log (&r, "could not remove %s: %s", r.ckdir, ty_strerror (crc));
    }
    else if (rc == ECANCELED || rc == TY_EINVAL || rc == TY_EFULL || rc == TY_ENOTFOUND) {
        /* these will not get better by retrying: the checkpoints can go */
        ty_checkpoint_remove (r.ckdir);
    }
    if (rc != TY_OK && err && !*err)
        s_err (err, errlen, rc, "%s", ty_strerror (rc));
    s_free (&r);
    return rc;
}

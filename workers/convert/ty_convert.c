/*  ty_convert: the convert job. See ty_convert.h for the steps and files.
 *
 *  Atomicity: with the option-taking writer (ty_portable_convert_dir_opts)
 *  and the ONNX exporter, the artifact is first written under a hidden
 *  name in the version directory (".convert-<target>-<pid>"; the registry
 *  ignores hidden files), evaluated there, and renamed to its final name
 *  only when everything succeeded: a failed evaluation leaves no artifact
 *  behind. The plain FP32 writer of older builds writes model.tym in place
 *  (itself via a temp file and rename), which is the same file the train
 *  worker writes, so nothing half-written can appear either.
 */
#include "ty_convert.h"

#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_modeldir.h"
#include "ty_batch.h"
#include "ty_portable.h"
#include "ty_registry.h"
#include "ty_retrain.h"
#include "ty_train.h"
#include "ty_report.h"
#ifdef TY_CONVERT_HAVE_ONNX
#include "ty_onnx.h"
#endif

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_JSON_MAX_BYTES    (1u << 20)     /* lineage.json is a few hundred bytes */
#define S_DATASET_SPEC_MAX  (TY_DATASET_NAME_MAX + 24)
#define S_LATENCY_MAX       100000         /* = TY_LATENCY_SAMPLES_MAX */
#define S_POINTS            100.0          /* accuracy fraction -> percentage points */

/* Progress: where each phase starts (fraction of the job). */
#define S_AT_LOADING        0.0
#define S_AT_CONVERTING     0.1
#define S_AT_EVALUATING     0.5
#define S_AT_RECORDING      0.95

static const struct {
    ty_convert_target_t target;
    const char *name;
    const char *file;
} s_targets [] = {
    { TY_CONVERT_FP32, "fp32", TY_PORTABLE_FILE },
    { TY_CONVERT_FP16, "fp16", "model-fp16.tym" },
    { TY_CONVERT_INT8, "int8", "model-int8.tym" },
    { TY_CONVERT_ONNX, "onnx", "model.onnx" },
};
#define S_NTARGETS (sizeof s_targets / sizeof s_targets [0])

int
ty_convert_target_parse (const char *text, ty_convert_target_t *target)
{
    for (size_t i = 0; text && i < S_NTARGETS; i++)
        if (!strcmp (text, s_targets [i].name)) {
            *target = s_targets [i].target;
            return TY_OK;
        }
    return TY_EINVAL;
}

const char *
ty_convert_target_name (ty_convert_target_t target)
{
    for (size_t i = 0; i < S_NTARGETS; i++)
        if (s_targets [i].target == target)
            return s_targets [i].name;
    return "?";
}

const char *
ty_convert_target_file (ty_convert_target_t target)
{
    for (size_t i = 0; i < S_NTARGETS; i++)
        if (s_targets [i].target == target)
            return s_targets [i].file;
    return "?";
}

int
ty_convert_target_built (ty_convert_target_t target)
{
    switch (target) {
    case TY_CONVERT_FP32:
        return 1;
    case TY_CONVERT_FP16:
    case TY_CONVERT_INT8:
#ifdef TY_CONVERT_HAVE_PORTABLE_OPTS
        return 1;
#else
        return 0;
#endif
    case TY_CONVERT_ONNX:
#ifdef TY_CONVERT_HAVE_ONNX
        return 1;
#else
        return 0;
#endif
    }
    return 0;
}

/* ---- the run's state -------------------------------------------------------- */

typedef struct {
    const ty_convert_opts_t  *opts;
    const Ty__ConvertSpec    *spec;
    const ty_convert_hooks_t *hooks;
    ty_convert_result_t      *res;
    size_t   latency_samples;
    char     dataset [S_DATASET_SPEC_MAX];
    char     base [TY_CONVERT_FILE_PATH_MAX];   /* the FP32 file compared against */
    char     staged [TY_CONVERT_FILE_PATH_MAX]; /* hidden artifact before its rename; "" = none */
    char     hidden_base [TY_CONVERT_FILE_PATH_MAX]; /* a private FP32 baseline to remove */
    ty_convert_eval_t eval;
    int      retrain;                   /* params.retrain: 1 (default) or 0 (prune only) */
    int      retrain_epochs;            /* params.retrain_epochs; 0 = the model's epochs */
    char    *err;
    size_t   errlen;
} s_run_t;

static int
s_fail (s_run_t *r, int rc, const char *fmt, ...)
{
    if (r->err && r->errlen) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (r->err, r->errlen, fmt, ap);
        va_end (ap);
    }
    return rc;
}

static void
s_progress (s_run_t *r, double fraction, const char *phase, const char *fmt, ...)
{
    if (!r->hooks || !r->hooks->progress)
        return;
    char msg [512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    r->hooks->progress (r->hooks->arg, fraction, phase, msg);
}

static void
s_log (s_run_t *r, const char *fmt, ...)
{
    if (!r->hooks || !r->hooks->log)
        return;
    char msg [1024];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    r->hooks->log (r->hooks->arg, msg);
}

static void
s_metric (s_run_t *r, const char *key, double v)
{
    if (r->hooks && r->hooks->metric && !isnan (v))
        r->hooks->metric (r->hooks->arg, key, v);
}

static int
s_cancelled (s_run_t *r)
{
    return r->hooks && r->hooks->cancelled && r->hooks->cancelled (r->hooks->arg);
}

static int
s_file_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && S_ISREG (st.st_mode);
}

static uint64_t
s_file_bytes (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (uint64_t) st.st_size : 0;
}

/* ---- checking the spec ------------------------------------------------------ */

static int
s_all_digits (const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit ((unsigned char) *s))
            return 0;
    return 1;
}

/* params.<key> as an integer in [lo, hi]. */
static int
s_param_int (s_run_t *r, const char *k, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = v ? strtol (v, &end, 10) : 0;
    if (!v || !*v || *end || errno || n < lo || n > hi)
        return s_fail (r, TY_EINVAL, "params.%s: %ld to %ld, not '%s'", k, lo, hi, v ? v : "");
    *out = n;
    return TY_OK;
}

/* params: latency_samples, retrain (0/1), retrain_epochs; anything else is
 * a mistake worth refusing rather than a knob silently ignored. */
static int
s_params (s_run_t *r)
{
    r->latency_samples = r->opts->latency_samples ? r->opts->latency_samples
                                                   : TY_CONVERT_LATENCY_SAMPLES;
    for (size_t i = 0; i < r->spec->n_params; i++) {
        const char *k = r->spec->params [i]->key, *v = r->spec->params [i]->value;
        long n = 0;
        int rc = TY_OK;
        if (k && !strcmp (k, "latency_samples")) {
            if ((rc = s_param_int (r, k, v, 1, S_LATENCY_MAX, &n)) == TY_OK)
                r->latency_samples = (size_t) n;
        }
        else if (k && !strcmp (k, "retrain")) {
            if ((rc = s_param_int (r, k, v, 0, 1, &n)) == TY_OK)
                r->retrain = (int) n;
        }
        else if (k && !strcmp (k, "retrain_epochs")) {
            if ((rc = s_param_int (r, k, v, 1, TY_RETRAIN_MAX_EPOCHS, &n)) == TY_OK)
                r->retrain_epochs = (int) n;
        }
        else
            return s_fail (r, TY_EINVAL, "unknown parameter '%s' (convert takes "
                           "latency_samples, retrain, retrain_epochs)", k ? k : "");
        if (rc != TY_OK)
            return rc;
    }
    return TY_OK;
}

static int
s_check_spec (s_run_t *r)
{
    const Ty__ConvertSpec *spec = r->spec;
    if (!spec->model || !*spec->model)
        return s_fail (r, TY_EINVAL, "no model given (name, name@N or name@stage)");
    if (!spec->target || !*spec->target)
        return s_fail (r, TY_EINVAL, "no target given: fp32, fp16, int8 or onnx");
    if (ty_convert_target_parse (spec->target, &r->res->target) != TY_OK)
        return s_fail (r, TY_EINVAL, "unknown target '%s': fp32, fp16, int8 or onnx",
                       spec->target);
    if (!ty_convert_target_built (r->res->target))
        return s_fail (r, TY_EINVAL, "target %s is not supported by this build yet "
                       "(the %s writer is missing)", spec->target,
                       r->res->target == TY_CONVERT_ONNX ? "ONNX" : "quantizing");
    if (spec->dim && r->res->target == TY_CONVERT_ONNX)
        return s_fail (r, TY_EINVAL, "dim applies to .tym targets (fp32, fp16, int8), not onnx");
    if (spec->max_rows && r->res->target == TY_CONVERT_ONNX)
        return s_fail (r, TY_EINVAL, "max_rows applies to .tym targets (fp32, fp16, int8), "
                       "not onnx");
#ifndef TY_CONVERT_HAVE_PORTABLE_OPTS
    if (spec->max_rows)
        return s_fail (r, TY_EINVAL, "max_rows is not supported by this build yet "
                       "(the pruning writer is missing)");
#endif
    if (spec->calibrate)
        s_log (r, "calibrate: static activation ranges are not used by this converter; "
               "activations stay dynamic");
    r->retrain = 1;
    int rc = s_params (r);
    if (rc == TY_OK && spec->dim && !r->retrain)
        return s_fail (r, TY_EINVAL, "dim %u needs retraining: params.retrain must be 1",
                       spec->dim);
    return rc;
}

/* ---- the model version -------------------------------------------------------- */

/* "M", "M@N": the models directory (the truth about what is on disk, also
 * for versions never registered); "M@production" and other stage names:
 * the registry. */
static int
s_resolve (s_run_t *r)
{
    const char *spec = r->spec->model;
    const char *at = strchr (spec, '@');
    ty_convert_result_t *res = r->res;
    const char *why = "";
    if (!at || s_all_digits (at + 1)) {
        int rc = ty_report_model_spec_parse (spec, res->model, &res->version, &why);
        if (rc == TY_OK)
            rc = ty_report_model_dir (r->opts->data_dir, spec, res->dir, sizeof res->dir,
                                      &res->version, &why);
        if (rc != TY_OK)
            return s_fail (r, rc, "model %s: %s", spec, *why ? why : ty_strerror (rc));
        return TY_OK;
    }
    ty_registry_t *reg = NULL;
    int rc = ty_registry_open (r->opts->data_dir, &reg);
    if (rc != TY_OK)
        return s_fail (r, rc, "model registry: %s", ty_strerror (rc));
    char name [TY_REGISTRY_NAME_MAX + 1];
    rc = ty_registry_resolve (reg, spec, NULL, name, &res->version, NULL);
    if (rc != TY_OK) {
        const char *msg = ty_registry_errstr (reg);
        s_fail (r, rc, "model %s: %s", spec, msg && *msg ? msg : ty_strerror (rc));
        ty_registry_destroy (&reg);
        return rc;
    }
    ty_registry_destroy (&reg);
    snprintf (res->model, sizeof res->model, "%s", name);
    char numbered [TY_REGISTRY_NAME_MAX + 32];
    snprintf (numbered, sizeof numbered, "%s@%llu", name, (unsigned long long) res->version);
    rc = ty_report_model_dir (r->opts->data_dir, numbered, res->dir, sizeof res->dir,
                              &res->version, &why);
    if (rc != TY_OK)
        return s_fail (r, rc, "model %s (= %s): the registry knows it but its directory is "
                       "gone: %s", spec, numbered, *why ? why : ty_strerror (rc));
    return TY_OK;
}

static cJSON *
s_read_json (const char *dir, const char *file)
{
    char path [TY_CONVERT_FILE_PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen (path, "re");
    if (!f)
        return NULL;
    char *text = malloc (S_JSON_MAX_BYTES + 1);
    size_t n = text ? fread (text, 1, S_JSON_MAX_BYTES, f) : 0;
    int bad = !text || ferror (f);
    fclose (f);
    cJSON *doc = NULL;
    if (!bad) {
        text [n] = '\0';
        doc = cJSON_Parse (text);
    }
    free (text);
    return doc;
}

/* The evaluation data: the spec's dataset, else the one lineage.json names
 * ({"dataset": {"name", "version"}} as the train job writes it). */
static int
s_dataset (s_run_t *r)
{
    if (r->spec->dataset && *r->spec->dataset) {
        if (strlen (r->spec->dataset) >= sizeof r->dataset)
            return s_fail (r, TY_EINVAL, "dataset '%s': name too long", r->spec->dataset);
        snprintf (r->dataset, sizeof r->dataset, "%s", r->spec->dataset);
        return TY_OK;
    }
    cJSON *lin = s_read_json (r->res->dir, TY_MODELDIR_LINEAGE);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive (lin, "dataset");
    const cJSON *name = cJSON_IsObject (d) ? cJSON_GetObjectItemCaseSensitive (d, "name") : d;
    const cJSON *ver = cJSON_IsObject (d) ? cJSON_GetObjectItemCaseSensitive (d, "version") : NULL;
    int rc = TY_OK;
    if (!cJSON_IsString (name) || !*name->valuestring
        || strlen (name->valuestring) > TY_DATASET_NAME_MAX)
        rc = s_fail (r, TY_EINVAL, "model %s@%llu names no training dataset (lineage.json): "
                     "give one with --dataset", r->res->model,
                     (unsigned long long) r->res->version);
    else if (cJSON_IsNumber (ver) && ver->valuedouble >= 1 && !strchr (name->valuestring, '@'))
        snprintf (r->dataset, sizeof r->dataset, "%s@%.0f", name->valuestring, ver->valuedouble);
    else
        snprintf (r->dataset, sizeof r->dataset, "%s", name->valuestring);
    cJSON_Delete (lin);
    return rc;
}

/* ---- writing ----------------------------------------------------------------- */

#ifdef TY_CONVERT_HAVE_PORTABLE_OPTS
static ty_portable_dtype_t
s_dtype (ty_convert_target_t t)
{
    return t == TY_CONVERT_FP16 ? TY_PORTABLE_FP16
         : t == TY_CONVERT_INT8 ? TY_PORTABLE_INT8 : TY_PORTABLE_FP32;
}
#endif

/* Writes target t of the version into path (itself atomic). */
static int
s_write (s_run_t *r, ty_convert_target_t t, uint64_t max_rows, const char *path)
{
    char why [TY_CONVERT_ERR_MAX] = "";
    int rc;
    if (t == TY_CONVERT_ONNX) {
#ifdef TY_CONVERT_HAVE_ONNX
        rc = ty_onnx_export_dir (r->res->dir, path, why, sizeof why);
#else
        rc = TY_EINVAL;
        snprintf (why, sizeof why, "ONNX export is not in this build");
#endif
    }
    else {
#ifdef TY_CONVERT_HAVE_PORTABLE_OPTS
        ty_portable_opts_t po;
        memset (&po, 0, sizeof po);
        po.dtype = s_dtype (t);
        po.max_rows = max_rows;
        rc = ty_portable_convert_dir_opts (r->res->dir, &po, path, why, sizeof why);
#else
        /* the plain writer: FP32, always dir/model.tym */
        (void) max_rows;
        char want [TY_CONVERT_FILE_PATH_MAX];
        snprintf (want, sizeof want, "%s/%s", r->res->dir, TY_PORTABLE_FILE);
        if (t != TY_CONVERT_FP32 || strcmp (want, path))
            return s_fail (r, TY_EINVAL, "this build writes fp32 model.tym only");
        rc = ty_portable_convert_dir (r->res->dir, why, sizeof why);
#endif
    }
    if (rc != TY_OK)
        return s_fail (r, rc, "converting %s@%llu to %s: %s", r->res->model,
                       (unsigned long long) r->res->version, ty_convert_target_name (t),
                       *why ? why : ty_strerror (rc));
    return TY_OK;
}

/* ---- retraining (textclf max_rows with params.retrain, or dim) ------------- */

#ifdef TY_CONVERT_HAVE_PORTABLE_OPTS
/* 1 when target t is made by retraining rather than by the writer alone. */
static int
s_retrains (const s_run_t *r, ty_convert_target_t t)
{
    return t != TY_CONVERT_ONNX && (r->spec->dim || (r->spec->max_rows && r->retrain));
}

typedef struct {
    s_run_t *r;
    ty_batch_set_t *set;
} s_gather_t;

static int
s_gather (void *arg, const uint64_t *idx, size_t n, ty_torch_batch_t *batch)
{
    s_gather_t *g = arg;
    return ty_batch_set_gather (g->set, idx, n, NULL, batch);
}

static int
s_gather_cancelled (void *arg)
{
    return s_cancelled (((s_gather_t *) arg)->r);
}

static void
s_gather_progress (void *arg, double fraction)
{
    s_run_t *r = ((s_gather_t *) arg)->r;
    double at = S_AT_CONVERTING + (S_AT_EVALUATING - S_AT_CONVERTING) * fraction;
    s_progress (r, at, "converting", "retrained %.0f %%", fraction * S_POINTS);
}

/* config.json's epochs and batch_size (the train job's); 0 when absent. */
static void
s_train_config (const s_run_t *r, int *epochs, int *batch)
{
    *epochs = *batch = 0;
    cJSON *c = s_read_json (r->res->dir, TY_MODELDIR_CONFIG);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive (c, "epochs");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive (c, "batch_size");
    if (cJSON_IsNumber (e) && e->valuedouble >= 1 && e->valuedouble <= TY_RETRAIN_MAX_EPOCHS)
        *epochs = (int) e->valuedouble;
    if (cJSON_IsNumber (b) && b->valuedouble >= 1 && b->valuedouble <= TY_TRAIN_MAX_BATCH)
        *batch = (int) b->valuedouble;
    cJSON_Delete (c);
}

/* model.pt retrained on the kept rows (and dim), on the train split of
 * the dataset, then written as target t into path. */
static int
s_write_retrained (s_run_t *r, ty_convert_target_t t, const char *path)
{
    char why [TY_CONVERT_ERR_MAX] = "", wpath [TY_CONVERT_FILE_PATH_MAX];
    snprintf (wpath, sizeof wpath, "%s/%s", r->res->dir, TY_MODELDIR_WEIGHTS);
    ty_torch_model_t *model = NULL;
    ty_batch_feat_t *feat = NULL;
    ty_dataset_t *ds = NULL;
    s_gather_t g = {r, NULL};
    ty_retrain_result_t rr;
    memset (&rr, 0, sizeof rr);
    int rc = ty_torch_load (wpath, 1, &model, why, sizeof why);
    if (rc == TY_OK && ty_torch_params (model)->kind != TY_TORCH_TEXTCLF) {
        rc = TY_EINVAL;
        snprintf (why, sizeof why, "max_rows and dim apply to textclf models, not %s",
                  ty_torch_kind_name (ty_torch_params (model)->kind));
    }
    if (rc == TY_OK && r->spec->dim
        && (int64_t) r->spec->dim >= ty_torch_params (model)->textclf.dim) {
        rc = TY_EINVAL;
        snprintf (why, sizeof why, "dim %u is not smaller than the model's %lld",
                  r->spec->dim, (long long) ty_torch_params (model)->textclf.dim);
    }
    if (rc == TY_OK)
        rc = ty_batch_feat_load (r->res->dir, &feat, why, sizeof why);
    if (rc == TY_OK && (rc = ty_dataset_open (r->opts->data_dir, r->dataset, &ds)) != TY_OK)
        snprintf (why, sizeof why, "dataset %s: %s", r->dataset, ty_strerror (rc));
    if (rc == TY_OK)
        rc = ty_batch_set_new (feat, ds, TY_SPLIT_TRAIN, 0, &g.set, why, sizeof why);
    int epochs = 0, batch = 0;
    s_train_config (r, &epochs, &batch);
    if (r->retrain_epochs)
        epochs = r->retrain_epochs;
    if (epochs == 0)
        epochs = TY_CONVERT_RETRAIN_EPOCHS;
    if (rc == TY_OK) {
        s_log (r, "retraining %s@%llu on %zu samples of %s: %d epochs, max_rows %llu, dim %u",
               r->res->model, (unsigned long long) r->res->version,
               ty_batch_set_count (g.set), r->dataset, epochs,
               (unsigned long long) r->spec->max_rows, r->spec->dim);
        ty_retrain_opts_t o;
        memset (&o, 0, sizeof o);
        o.max_rows = r->spec->max_rows;
        o.dim = r->spec->dim;
        o.epochs = epochs;
        o.batch_size = batch;
        o.nsamples = ty_batch_set_count (g.set);
        o.gather = s_gather;
        o.arg = &g;
        o.cancelled = s_gather_cancelled;
        o.progress = s_gather_progress;
        rc = ty_retrain_textclf (model, &o, &rr, why, sizeof why);
    }
    if (rc == TY_OK) {
        r->res->retrained = 1;
        r->res->retrain_epochs = epochs;
        r->res->kept_rows = rr.nkept;
        r->res->retrain_loss = rr.last_loss;
        r->res->dim = ty_torch_params (rr.model)->textclf.dim;
        ty_portable_opts_t po;
        memset (&po, 0, sizeof po);
        po.dtype = s_dtype (t);
        po.rowmap = rr.rowmap;
        po.rowmap_len = rr.nkept;
        rc = ty_portable_write_dir_model (rr.model, r->res->dir, &po, path, why, sizeof why);
    }
    ty_retrain_result_free (&rr);
    ty_batch_set_destroy (&g.set);
    ty_dataset_destroy (&ds);
    ty_batch_feat_destroy (&feat);
    ty_torch_destroy (&model);
    if (rc == ECANCELED)
        return s_fail (r, rc, "cancelled");
    if (rc != TY_OK)
        return s_fail (r, rc, "retraining %s@%llu for %s: %s", r->res->model,
                       (unsigned long long) r->res->version, ty_convert_target_name (t),
                       *why ? why : ty_strerror (rc));
    return TY_OK;
}
#endif

/* The FP32 reference: model.tym (written now if the version has none); a
 * pruned fp32 target is compared with a private unpruned file instead. */
static int
s_baseline (s_run_t *r)
{
    ty_convert_target_t t = r->res->target;
    snprintf (r->base, sizeof r->base, "%s/%s", r->res->dir, TY_PORTABLE_FILE);
    if (t == TY_CONVERT_FP32 && (r->spec->max_rows || r->spec->dim)) {
        snprintf (r->hidden_base, sizeof r->hidden_base, "%s/.convert-base-%ld.tym",
                  r->res->dir, (long) getpid ());
        snprintf (r->base, sizeof r->base, "%s", r->hidden_base);
        return s_write (r, TY_CONVERT_FP32, 0, r->hidden_base);
    }
    if (t == TY_CONVERT_FP32 || s_file_exists (r->base))
        return TY_OK;
    s_log (r, "%s has no %s yet: writing it as the FP32 reference", r->res->dir,
           TY_PORTABLE_FILE);
    return s_write (r, TY_CONVERT_FP32, 0, r->base);
}

/* 1 if the writer of t takes an output path (so the artifact can be staged). */
static int
s_takes_path (ty_convert_target_t t)
{
    if (t == TY_CONVERT_ONNX)
        return ty_convert_target_built (t);
#ifdef TY_CONVERT_HAVE_PORTABLE_OPTS
    return 1;
#else
    return 0;
#endif
}

/* The artifact, staged under a hidden name when the writer takes a path. */
static int
s_convert (s_run_t *r)
{
    ty_convert_target_t t = r->res->target;
    snprintf (r->res->artifact, sizeof r->res->artifact, "%s/%s", r->res->dir,
              ty_convert_target_file (t));
    if (!s_takes_path (t))
        return s_write (r, t, r->spec->max_rows, r->res->artifact);
    snprintf (r->staged, sizeof r->staged, "%s/.convert-%s-%ld", r->res->dir,
              ty_convert_target_name (t), (long) getpid ());
#ifdef TY_CONVERT_HAVE_PORTABLE_OPTS
    if (s_retrains (r, t))
        return s_write_retrained (r, t, r->staged);
#endif
    return s_write (r, t, r->spec->max_rows, r->staged);
}

/* The staged artifact takes its final name; the directory entry is made
 * durable so a crash right after cannot bring the old file back. */
static int
s_publish (s_run_t *r)
{
    if (!*r->staged)
        return TY_OK;
    if (rename (r->staged, r->res->artifact) != 0)
        return s_fail (r, errno, "rename %s -> %s: %s", r->staged, r->res->artifact,
                       strerror (errno));
    r->staged [0] = '\0';
    int fd = open (r->res->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync (fd) != 0)
            s_log (r, "fsync %s: %s", r->res->dir, strerror (errno));
        close (fd);
    }
    return TY_OK;
}

/* Removes what a failed run staged (and the writers' own temp names). */
static void
s_cleanup (s_run_t *r)
{
    char tmp [TY_CONVERT_FILE_PATH_MAX + 8];
    if (*r->staged) {
        unlink (r->staged);
        snprintf (tmp, sizeof tmp, "%s.tmp", r->staged);
        unlink (tmp);
        r->staged [0] = '\0';
    }
    if (*r->hidden_base) {
        unlink (r->hidden_base);
        snprintf (tmp, sizeof tmp, "%s.tmp", r->hidden_base);
        unlink (tmp);
        r->hidden_base [0] = '\0';
    }
}

/* ---- the report ----------------------------------------------------------------- */

static cJSON *
s_num (double v)
{
    return isnan (v) || isinf (v) ? cJSON_CreateNull () : cJSON_CreateNumber (v);
}

static int
s_add (cJSON *o, const char *key, cJSON *item)
{
    if (!item)
        return 0;
    if (!cJSON_AddItemToObject (o, key, item)) {
        cJSON_Delete (item);
        return 0;
    }
    return 1;
}

static cJSON *
s_file_json (const char *file, const char *sha, uint64_t bytes)
{
    cJSON *o = cJSON_CreateObject ();
    if (o && s_add (o, "file", cJSON_CreateString (file))
        && s_add (o, "bytes", cJSON_CreateNumber ((double) bytes))
        && (!sha || s_add (o, "sha256", cJSON_CreateString (sha))))
        return o;
    cJSON_Delete (o);
    return NULL;
}

static cJSON *
s_pair_json (double fp32, double conv)
{
    cJSON *o = cJSON_CreateObject ();
    if (o && s_add (o, "fp32", s_num (fp32)) && s_add (o, "converted", s_num (conv)))
        return o;
    cJSON_Delete (o);
    return NULL;
}

static cJSON *
s_report (s_run_t *r)
{
    const ty_convert_result_t *res = r->res;
    const ty_convert_eval_t *ev = &r->eval;
    cJSON *o = cJSON_CreateObject ();
    cJSON *m = cJSON_CreateObject ();
    int ok = o && m && s_add (o, "format", cJSON_CreateNumber (TY_CONVERT_REPORT_FORMAT))
        && s_add (m, "name", cJSON_CreateString (res->model))
        && s_add (m, "version", cJSON_CreateNumber ((double) res->version));
    if (ok) {
        ok = s_add (o, "model", m);
        m = NULL;
    }
    ok = ok && s_add (o, "target", cJSON_CreateString (ty_convert_target_name (res->target)))
        && s_add (o, "job_id", cJSON_CreateString (r->opts->job_id ? r->opts->job_id : ""))
        && s_add (o, "created_ms", cJSON_CreateNumber ((double) time (NULL) * 1000.0))
        && s_add (o, "max_rows", cJSON_CreateNumber ((double) r->spec->max_rows))
        && s_add (o, "dim", cJSON_CreateNumber ((double) r->spec->dim))
        && s_add (o, "artifact", s_file_json (ty_convert_target_file (res->target), res->sha256,
                                                res->bytes));
    if (ok && res->fp32_bytes)
        ok = s_add (o, "fp32", s_file_json (TY_PORTABLE_FILE, NULL, res->fp32_bytes))
            && s_add (o, "size_ratio", s_num ((double) res->bytes / (double) res->fp32_bytes));
    if (ok && res->retrained) {
        cJSON *rt = cJSON_CreateObject ();
        ok = rt && s_add (rt, "epochs", cJSON_CreateNumber (res->retrain_epochs))
            && s_add (rt, "kept_rows", cJSON_CreateNumber ((double) res->kept_rows))
            && s_add (rt, "dim", cJSON_CreateNumber ((double) res->dim))
            && s_add (rt, "last_loss", s_num (res->retrain_loss));
        if (ok) {
            ok = s_add (o, "retrained", rt);
            rt = NULL;
        }
        cJSON_Delete (rt);
    }
    if (ok && !res->evaluated)
        ok = s_add (o, "evaluated", cJSON_CreateFalse ())
            && s_add (o, "note", cJSON_CreateString ("ONNX: export and size only; trainyard "
                                                     "has no ONNX runtime to evaluate it"));
    if (ok && res->evaluated) {
        cJSON *lat = cJSON_CreateObject ();
        ok = s_add (o, "evaluated", cJSON_CreateTrue ())
            && s_add (o, "dataset", cJSON_CreateString (r->dataset))
            && s_add (o, "split", cJSON_CreateString ("test"))
            && s_add (o, "n_samples", cJSON_CreateNumber ((double) ev->n_samples))
            && s_add (o, "skipped", cJSON_CreateNumber ((double) ev->skipped))
            && s_add (o, "metric", cJSON_CreateString (ev->metric))
            && s_add (o, "accuracy", s_pair_json (ev->accuracy_base, ev->accuracy_conv))
            && s_add (o, "accuracy_change_points",
                      s_num ((ev->accuracy_conv - ev->accuracy_base) * S_POINTS))
            && s_add (o, "mae", s_pair_json (ev->mae_base, ev->mae_conv))
            && s_add (o, "agreement_top1", s_num (ev->agreement))
            && s_add (o, "max_abs_diff", s_num (ev->max_abs_diff))
            && lat
            && s_add (lat, "samples", cJSON_CreateNumber ((double) r->latency_samples))
            && s_add (lat, "p50_ms", s_pair_json (ev->p50_base_ms, ev->p50_conv_ms))
            && s_add (lat, "p99_ms", s_pair_json (ev->p99_base_ms, ev->p99_conv_ms));
        if (ok) {
            ok = s_add (o, "latency", lat);
            lat = NULL;
        }
        cJSON_Delete (lat);
    }
    cJSON_Delete (m);
    if (!ok) {
        cJSON_Delete (o);
        return NULL;
    }
    return o;
}

static int
s_write_report (s_run_t *r, const cJSON *doc)
{
    char file [64];
    snprintf (file, sizeof file, "convert-%s.json", ty_convert_target_name (r->res->target));
    snprintf (r->res->report, sizeof r->res->report, "%s/%s", r->res->dir, file);
    char *text = cJSON_Print (doc);
    if (!text)
        return s_fail (r, TY_ENOMEM, "out of memory");
    int rc = ty_modeldir_write (r->res->dir, file, text);
    cJSON_free (text);
    if (rc != TY_OK)
        return s_fail (r, rc, "writing %s: %s", r->res->report, ty_strerror (rc));
    return TY_OK;
}

/* ---- the job ---------------------------------------------------------------------- */

static int
s_evaluate (s_run_t *r)
{
    ty_convert_result_t *res = r->res;
    if (res->target == TY_CONVERT_ONNX) {
        res->evaluated = 0;
        s_log (r, "onnx: export and size only (no ONNX runtime in trainyard)");
        return TY_OK;
    }
    const char *conv = *r->staged ? r->staged : res->artifact;
    char why [TY_CONVERT_ERR_MAX] = "";
    int rc = ty_convert_eval (r->opts->data_dir, r->dataset, res->dir, r->base, conv,
                              r->latency_samples, r->hooks, &r->eval, why, sizeof why);
    if (rc == ECANCELED)
        return s_fail (r, rc, "cancelled");
    if (rc != TY_OK)
        return s_fail (r, rc, "evaluating the %s artifact on %s: %s",
                       ty_convert_target_name (res->target), r->dataset, why);
    res->evaluated = 1;
    res->n_samples = r->eval.n_samples;
    res->accuracy_fp32 = r->eval.accuracy_base;
    res->accuracy = r->eval.accuracy_conv;
    res->agreement = r->eval.agreement;
    res->p50_fp32_ms = r->eval.p50_base_ms;
    res->p99_fp32_ms = r->eval.p99_base_ms;
    res->p50_ms = r->eval.p50_conv_ms;
    res->p99_ms = r->eval.p99_conv_ms;
    return TY_OK;
}

static void
s_metrics (s_run_t *r)
{
    const ty_convert_result_t *res = r->res;
    s_metric (r, "bytes", (double) res->bytes);
    if (res->retrained) {
        s_metric (r, "retrain_epochs", res->retrain_epochs);
        s_metric (r, "kept_rows", (double) res->kept_rows);
        s_metric (r, "retrain_loss", res->retrain_loss);
    }
    if (res->fp32_bytes) {
        s_metric (r, "fp32_bytes", (double) res->fp32_bytes);
        s_metric (r, "size_ratio", (double) res->bytes / (double) res->fp32_bytes);
    }
    if (!res->evaluated)
        return;
    s_metric (r, "accuracy_fp32", res->accuracy_fp32);
    s_metric (r, "accuracy", res->accuracy);
    s_metric (r, "accuracy_change_points", (res->accuracy - res->accuracy_fp32) * S_POINTS);
    s_metric (r, "mae_fp32", r->eval.mae_base);
    s_metric (r, "mae", r->eval.mae_conv);
    s_metric (r, "agreement_top1", res->agreement);
    s_metric (r, "p50_fp32_ms", res->p50_fp32_ms);
    s_metric (r, "p99_fp32_ms", res->p99_fp32_ms);
    s_metric (r, "p50_ms", res->p50_ms);
    s_metric (r, "p99_ms", res->p99_ms);
}

/* The conversion's target and figures on its artifact's registry record
 * (ty_registry_artifact_note); a failure is logged, as for the refresh. */
static void
s_note (s_run_t *r, const char *what)
{
    const ty_convert_result_t *res = r->res;
    cJSON *m = cJSON_CreateObject ();
    int ok = m && s_add (m, "bytes", cJSON_CreateNumber ((double) res->bytes))
        && s_add (m, "max_rows", cJSON_CreateNumber ((double) r->spec->max_rows))
        && s_add (m, "dim", cJSON_CreateNumber ((double) r->spec->dim))
        && s_add (m, "evaluated", cJSON_CreateBool (res->evaluated));
    if (ok && res->fp32_bytes)
        ok = s_add (m, "size_ratio", s_num ((double) res->bytes / (double) res->fp32_bytes));
    if (ok && res->evaluated)
        ok = s_add (m, "dataset", cJSON_CreateString (r->dataset))
            && s_add (m, "accuracy_fp32", s_num (res->accuracy_fp32))
            && s_add (m, "accuracy", s_num (res->accuracy))
            && s_add (m, "accuracy_change_points",
                      s_num ((res->accuracy - res->accuracy_fp32) * S_POINTS))
            && s_add (m, "agreement_top1", s_num (res->agreement))
            && s_add (m, "p50_ms", s_num (res->p50_ms))
            && s_add (m, "p99_ms", s_num (res->p99_ms));
    if (ok && res->retrained)
        ok = s_add (m, "retrain_epochs", cJSON_CreateNumber (res->retrain_epochs))
            && s_add (m, "kept_rows", cJSON_CreateNumber ((double) res->kept_rows));
    ty_registry_t *reg = NULL;
    int rc = ok ? ty_registry_open (r->opts->data_dir, &reg) : TY_ENOMEM;
    if (rc == TY_OK) {
        char who [96];
        snprintf (who, sizeof who, "job %s", r->opts->job_id ? r->opts->job_id : "convert");
        ty_registry_actor_t by = { who, what, 0 };
        rc = ty_registry_artifact_note (reg, res->model, res->version,
                                        ty_convert_target_file (res->target),
                                        ty_convert_target_name (res->target), m, &by);
    }
    if (rc != TY_OK)
        s_log (r, "registry note: %s", reg && *ty_registry_errstr (reg)
               ? ty_registry_errstr (reg) : ty_strerror (rc));
    ty_registry_destroy (&reg);
    cJSON_Delete (m);
}

static int
s_run (s_run_t *r, cJSON **report)
{
    ty_convert_result_t *res = r->res;
    s_progress (r, S_AT_LOADING, "loading", "resolving %s", r->spec->model ? r->spec->model : "");
    int rc = s_check_spec (r);
    if (rc == TY_OK)
        rc = s_resolve (r);
    if (rc == TY_OK && res->target != TY_CONVERT_ONNX)
        rc = s_dataset (r);
    if (rc != TY_OK)
        return rc;
    if (s_cancelled (r))
        return s_fail (r, ECANCELED, "cancelled");

    s_progress (r, S_AT_CONVERTING, "converting", "%s@%llu -> %s", res->model,
                (unsigned long long) res->version, ty_convert_target_name (res->target));
    if (res->target != TY_CONVERT_ONNX && (rc = s_baseline (r)) != TY_OK)
        return rc;
    if ((rc = s_convert (r)) != TY_OK)
        return rc;
    const char *written = *r->staged ? r->staged : res->artifact;
    uint64_t bytes = 0;
    if ((rc = ty_dataset_file_sha256 (written, res->sha256, &bytes)) != TY_OK)
        return s_fail (r, rc, "sha256 of %s: %s", written, ty_strerror (rc));
    res->bytes = bytes;
    char fp32 [TY_CONVERT_FILE_PATH_MAX];
    snprintf (fp32, sizeof fp32, "%s/%s", res->dir, TY_PORTABLE_FILE);
    if (res->target == TY_CONVERT_FP32 && !r->spec->max_rows && !r->spec->dim)
        snprintf (r->base, sizeof r->base, "%s", written);   /* the artifact is the reference */
    if (res->target != TY_CONVERT_ONNX)
        res->fp32_bytes = s_file_bytes (r->base);
    else if (s_file_exists (fp32)) {
        snprintf (r->base, sizeof r->base, "%s", fp32);
        res->fp32_bytes = s_file_bytes (fp32);
    }
    if (s_cancelled (r))
        return s_fail (r, ECANCELED, "cancelled");

    s_progress (r, S_AT_EVALUATING, "evaluating", "%s against fp32 on %s",
                ty_convert_target_name (res->target), *r->dataset ? r->dataset : "-");
    if ((rc = s_evaluate (r)) != TY_OK)
        return rc;

    s_progress (r, S_AT_RECORDING, "recording", "%s", ty_convert_target_file (res->target));
    cJSON *doc = s_report (r);
    if (!doc)
        return s_fail (r, TY_ENOMEM, "out of memory");
    if ((rc = s_publish (r)) == TY_OK)
        rc = s_write_report (r, doc);
    if (rc != TY_OK) {
        cJSON_Delete (doc);
        return rc;
    }
    s_metrics (r);
    /* the registry lists every file of the version with its sha256: the
       refresh picks up the artifact and its report */
    char what [96], whyout [TY_REGISTRY_ERRSTR_MAX] = "";
    snprintf (what, sizeof what, "converted to %s", ty_convert_target_name (res->target));
    rc = ty_registry_record (r->opts->data_dir, res->model, res->version,
                             r->opts->job_id ? r->opts->job_id : "convert", what,
                             whyout, sizeof whyout);
    res->registered = rc == TY_OK;
    if (rc != TY_OK)
        s_log (r, "registry: %s (`trainyard model register %s@%llu` adds it later)", whyout,
               res->model, (unsigned long long) res->version);
    else
        s_note (r, what);
    if (report)
        *report = doc;
    else
        cJSON_Delete (doc);
    return TY_OK;
}

int
ty_convert_run (const ty_convert_opts_t *opts, const Ty__ConvertSpec *spec,
                const ty_convert_hooks_t *hooks, cJSON **report,
                ty_convert_result_t *res, char *err, size_t errlen)
{
    if (report)
        *report = NULL;
    if (err && errlen)
        err [0] = '\0';
    if (!opts || !opts->data_dir || !spec || !res) {
        if (err && errlen)
            snprintf (err, errlen, "ty_convert_run: NULL argument");
        return TY_EINVAL;
    }
    memset (res, 0, sizeof *res);
    res->accuracy_fp32 = res->accuracy = res->agreement = NAN;
    res->p50_fp32_ms = res->p99_fp32_ms = res->p50_ms = res->p99_ms = NAN;
    s_run_t r;
    memset (&r, 0, sizeof r);
    r.opts = opts;
    r.spec = spec;
    r.hooks = hooks;
    r.res = res;
    r.err = err;
    r.errlen = errlen;
    int rc = s_run (&r, report);
    s_cleanup (&r);
    return rc;
}

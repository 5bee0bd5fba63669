/*  ty_convert: the convert job (trainyard-convert). A model version ->
 *  one deployable artifact beside it, measured against FP32.
 *
 *  Steps, each a progress phase:
 *    loading     resolve ConvertSpec.model ("M@3", "M@production", "M")
 *                through the registry (stage names) or the models
 *                directory (numbers, latest), check the spec
 *    converting  write the artifact into the version directory with the
 *                portable writer (workers/convert/ty_portable.h) or the
 *                ONNX exporter (ty_onnx.h); both write a temp file and
 *                rename it, so a failed or killed job leaves the old file
 *                or none, never half of one
 *    evaluating  the artifact against the FP32 portable file (model.tym),
 *                both through libtrainyard-infer, on the test split of
 *                the model's dataset (ConvertSpec.dataset overrides):
 *                accuracy of each and the change in points, top-1
 *                agreement, file sizes and their ratio, single-sample
 *                latency p50/p99 of each (ty_convert_eval.c)
 *  Then convert-<target>.json (the report, written atomically) lands
 *  beside the artifact and the registry refreshes the version's artifact
 *  list (every file with its size and sha256).
 *
 *  Targets and their files in the version directory:
 *    fp32  model.tym        fp16  model-fp16.tym
 *    int8  model-int8.tym   onnx  model.onnx (export and size only: there
 *                                 is no ONNX runtime in trainyard)
 *
 *  textclf pruning (ConvertSpec.max_rows) and smaller embeddings
 *  (ConvertSpec.dim) retrain: the rows of largest norm are kept and a model
 *  of those rows (and dim) is trained on the dataset's train split with
 *  the model's optimizer, lr, seed and batch size, for params.retrain_epochs
 *  (default: the model's own epochs, from config.json) - ty_retrain.h.
 *  params.retrain=0 prunes by norm only (the old behaviour; not with dim).
 *
 *  What it is not: the writers themselves (ty_portable, ty_quantize,
 *  ty_onnx, ty_retrain).
 *
 *  Not thread-safe per call; runs on the job's thread.
 *
 *  Errors: TY_OK, TY_EINVAL (bad spec, unknown target, a model the target
 *  cannot take; err says why), TY_ENOTFOUND (no such model, version or
 *  dataset), TY_ENOMEM, ECANCELED (hooks said stop), errno.
 */
#ifndef TY_CONVERT_H
#define TY_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "job.pb-c.h"

#define TY_CONVERT_ERR_MAX          512      /* an error buffer that fits every message */
#define TY_CONVERT_NAME_MAX         64       /* as model names */
#define TY_CONVERT_PATH_MAX         4096
#define TY_CONVERT_FILE_PATH_MAX    (TY_CONVERT_PATH_MAX + 96)  /* the dir + one file name */
#define TY_CONVERT_REPORT_FORMAT    1        /* "format" of convert-<target>.json */
#define TY_CONVERT_EVAL_MAX_SAMPLES 20000    /* test samples compared; more only costs time */
#define TY_CONVERT_LATENCY_SAMPLES  200      /* timed single predictions per model */
#define TY_CONVERT_LATENCY_WARMUP   20       /* untimed calls first (cold caches) */
/* Retraining epochs when neither params.retrain_epochs nor the model's
 * config.json says (fastText's default -epoch). */
#define TY_CONVERT_RETRAIN_EPOCHS   5

typedef enum {
    TY_CONVERT_FP32 = 1,
    TY_CONVERT_FP16 = 2,
    TY_CONVERT_INT8 = 3,
    TY_CONVERT_ONNX = 4,
} ty_convert_target_t;

/* "fp32", "fp16", "int8", "onnx" -> target. TY_OK or TY_EINVAL. */
int ty_convert_target_parse (const char *text, ty_convert_target_t *target);
/* "fp32", ... ; "?" when out of range. Static string. */
const char *ty_convert_target_name (ty_convert_target_t target);
/* The artifact's file name in the version directory. Static string. */
const char *ty_convert_target_file (ty_convert_target_t target);
/* 1 if this build can write the target (fp16/int8 need the quantizing
 * writer, onnx the exporter). */
int ty_convert_target_built (ty_convert_target_t target);

/* The job's thread talks to the runtime through these (all optional). */
typedef struct {
    void (*progress) (void *arg, double fraction, const char *phase, const char *message);
    void (*metric) (void *arg, const char *key, double value);
    void (*log) (void *arg, const char *line);
    int  (*cancelled) (void *arg);
    void *arg;
} ty_convert_hooks_t;

typedef struct {
    const char *data_dir;           /* datasets/, models/, registry/ under it */
    const char *job_id;             /* for the report and the registry's audit; may be NULL */
    size_t      latency_samples;    /* 0: TY_CONVERT_LATENCY_SAMPLES */
} ty_convert_opts_t;

/* What a successful run produced. */
typedef struct {
    char     model [TY_CONVERT_NAME_MAX + 1];
    uint64_t version;
    ty_convert_target_t target;
    char     dir [TY_CONVERT_PATH_MAX];        /* the version directory */
    char     artifact [TY_CONVERT_FILE_PATH_MAX];   /* the artifact's path */
    char     report [TY_CONVERT_FILE_PATH_MAX];     /* convert-<target>.json */
    char     sha256 [65];                      /* of the artifact, hex */
    uint64_t bytes;                            /* artifact size */
    uint64_t fp32_bytes;                       /* model.tym size (0: none, onnx) */
    int      evaluated;                        /* 0: onnx (size only) */
    size_t   n_samples;                        /* test samples compared */
    double   accuracy_fp32, accuracy;          /* NaN when not a classifier */
    double   agreement;                        /* top-1 agreement in [0, 1]; NaN: not measured */
    double   p50_fp32_ms, p99_fp32_ms, p50_ms, p99_ms;
    int      registered;                       /* the registry took the refresh */
    int      retrained;                        /* textclf max_rows / dim: trained again */
    int      retrain_epochs;
    uint64_t kept_rows;                        /* embedding rows of the retrained model */
    int64_t  dim;                              /* its embedding size */
    double   retrain_loss;                     /* mean train loss of its last epoch */
} ty_convert_result_t;

/* Runs one convert job. On TY_OK *report (may be NULL) gets the report
 * document (caller's, cJSON_Delete) and *res the figures. On failure err
 * says why and nothing new is left in the version directory. */
struct cJSON;
int ty_convert_run (const ty_convert_opts_t *opts, const Ty__ConvertSpec *spec,
                    const ty_convert_hooks_t *hooks, struct cJSON **report,
                    ty_convert_result_t *res, char *err, size_t errlen);

/* ---- the comparison (ty_convert_eval.c), usable on any two .tym files ---- */

typedef struct {
    size_t n_samples, skipped;              /* compared; unusable (shape, no label) */
    double accuracy_base, accuracy_conv;    /* NaN: regression (see mae_*) */
    double mae_base, mae_conv;              /* regression only, else NaN */
    double agreement;                       /* top-1 (classes) or |diff| < 0.01 (values) */
    double max_abs_diff;                    /* largest output difference seen */
    double p50_base_ms, p99_base_ms, p50_conv_ms, p99_conv_ms;
    char   metric [32];                     /* "accuracy", "mae", "hit@0.5" (ncf) */
} ty_convert_eval_t;

/* Predicts the test split of dataset_spec (a "name[@N]") with base and
 * conv, both .tym files of the same model, and fills *out. model_dir
 * (feat.json) gives ncf its user/item maps. latency_samples 0: the
 * default. TY_OK, TY_EINVAL (empty split, a kind/dataset mismatch),
 * TY_ENOTFOUND, ECANCELED, errno. */
int ty_convert_eval (const char *data_dir, const char *dataset_spec, const char *model_dir,
                     const char *base_path, const char *conv_path, size_t latency_samples,
                     const ty_convert_hooks_t *hooks, ty_convert_eval_t *out,
                     char *err, size_t errlen);

#endif

/*  ty_report: metrics.json, the one record of an evaluation, and its
 *  readable rendering.
 *
 *  The evaluate worker builds the document (ty_evaluate.c) and writes it
 *  beside the model version with ty_report_write (temp file, fsync, rename:
 *  a killed job leaves the old file or the new one, never half of one). The
 *  `trainyard` command reads it back and prints it with ty_report_print, or
 *  two of them side by side with ty_report_print_compare: both sides work
 *  from the JSON alone, so a report printed tomorrow on another machine is
 *  the report the job wrote.
 *
 *  metrics.json, format_version 1 (a key absent or null = not measured):
 *    format_version, summary (one line), created_unix, job_id, attempt
 *    model        {name, version, kind, task}
 *    dataset      {name, version, split}
 *    task         "classification" | "multilabel" | "regression" | "ranking"
 *    n_samples    samples evaluated;  skipped: samples the model could not
 *                 take (unknown label/user/item), always 0 for a job that
 *                 succeeded with a matching label set
 *    classification  ty_cls_metrics_json + log_loss, roc_auc, roc_auc_kind
 *                 ("binary" | "ovr_macro"), roc_auc_defined (OvR mean over
 *                 the classes present), roc_auc_per_class[], high_conf_threshold,
 *                 high_conf_share
 *    multilabel   ty_ml_metrics_json + threshold
 *    regression   ty_reg_metrics_json
 *    ranking      ty_rank_metrics_json + n_users
 *    inference    {batch_size, threads, samples, seconds, samples_per_s}
 *    latency      ty_latency_bench_json
 *    baseline     {model, accuracy} when compared with another version
 *    gate         ty_gate_result_json, or absent when the spec had no gate
 *    analysis     ty_analysis_json
 *  Readers accept any format_version <= TY_REPORT_FORMAT_VERSION and
 *  ignore keys they do not know; a new version comes with a reader for the
 *  old one (STYLE.md rule 13).
 *
 *  Pure C + cJSON: the command links it without libtorch or LMDB.
 *  Not thread-safe per document; no global state.
 */
#ifndef TY_REPORT_H
#define TY_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TY_REPORT_FORMAT_VERSION 1
#define TY_REPORT_FILE           "metrics.json"
#define TY_REPORT_MAX_BYTES      (64u << 20)   /* a K = 4096 confusion matrix is ~50 MB of JSON */
#define TY_REPORT_TOP_CLASSES    12            /* confusion matrix printed for this many classes */
#define TY_REPORT_TOP_CONFUSIONS 10            /* kept in the JSON and printed */
#define TY_REPORT_MODEL_NAME_MAX 64

struct cJSON;

/* ---- model versions on disk ------------------------------------------------ */

/* Parses "name" (version 0 = latest) or "name@N" (N >= 1). The name follows
 * the dataset name rule ([A-Za-z0-9_.-]{1,64}, no ".."). name_out has room
 * for TY_REPORT_MODEL_NAME_MAX + 1. TY_OK or TY_EINVAL (*why, static). */
int ty_report_model_spec_parse (const char *spec, char *name_out, uint64_t *version,
                                const char **why);

/* Resolves <data_dir>/models/<name>/<version>/ (version 0: the highest
 * numbered version directory) into dir (PATH_MAX is enough) and the
 * version into *version_out. TY_OK, TY_EINVAL (bad spec, *why), TY_ENOTFOUND
 * (no such model or version; *why says which), ENAMETOOLONG. */
int ty_report_model_dir (const char *data_dir, const char *spec, char *dir, size_t len,
                         uint64_t *version_out, const char **why);

/* ---- the file ---------------------------------------------------------------- */

/* Writes doc as dir/metrics.json atomically (dir/.metrics.json.tmp-<pid>,
 * fsync, rename, fsync of dir). TY_OK, TY_ENOMEM, errno. */
int ty_report_write (const char *dir, const struct cJSON *doc);

/* Reads and parses a metrics.json. On TY_OK *doc_out is the caller's
 * (cJSON_Delete). Errors: errno (ENOENT: never evaluated), TY_EFULL (over
 * TY_REPORT_MAX_BYTES), TY_EPROTO (not JSON, not an object, or a newer
 * format_version); err gets a message. */
int ty_report_load (const char *path, struct cJSON **doc_out, char *err, size_t errlen);

/* ---- reading a document --------------------------------------------------- */

/* A number at a dotted path ("classification.macro.f1"); NaN when absent,
 * null or not a number. */
double ty_report_number (const struct cJSON *doc, const char *path);
/* A string at a dotted path; NULL when absent. Borrowed from doc. */
const char *ty_report_string (const struct cJSON *doc, const char *path);

/* The one-line summary: "accuracy 0.9123, macro F1 0.9001 on d@2 test (1234
 * samples); gate PASS; accept". Written into buf; returns buf. */
char *ty_report_summary (const struct cJSON *doc, char *buf, size_t len);

/* ---- printing ---------------------------------------------------------------- */

typedef struct {
    size_t max_classes;      /* per-class rows and confusion matrix size; 0 = TY_REPORT_TOP_CLASSES */
    int    all_classes;      /* 1: every class in the per-class table */
} ty_report_print_opts_t;

/* The readable report of one evaluation: header, headline metrics,
 * per-class table, confusion matrix (the classes with most support when
 * there are many), most common confusions, latency, gate table,
 * recommendation and observations. opts may be NULL. Returns TY_OK or
 * TY_EPROTO (not a metrics document). */
int ty_report_print (FILE *out, const struct cJSON *doc, const ty_report_print_opts_t *opts);

/* Two evaluations side by side (a, b, and b - a for every number they
 * share), per-class F1 by class name, gate verdicts and recommendations.
 * Returns TY_OK or TY_EPROTO. */
int ty_report_print_compare (FILE *out, const struct cJSON *a, const struct cJSON *b,
                             const ty_report_print_opts_t *opts);

#endif

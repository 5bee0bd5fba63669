/*  trainyard-evaluate: runs evaluate jobs (metrics, latency benchmark,
 *  quality gate, analysis of a model version; workers/evaluate/ty_evaluate.h)
 *  and writes metrics.json beside the model. A failed gate is a result: the
 *  job SUCCEEDS and says "gate FAIL" in its outputs. */
#include "ty_error.h"
#include "ty_evaluate.h"
#include "ty_log.h"
#include "ty_registry.h"
#include "ty_report.h"
#include "ty_runtime.h"
#include "ty_worker_main.h"
#include "ty_torch.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


typedef struct {
    const char *data_dir;
    int         threads;
    int         exec_log_fd;    /* -1: none */
} s_ctx;

/* ---- hooks: the job's thread talks to the runtime ------------------------ */

static void
s_hook_progress (void *arg, double fraction, const char *phase, const char *message)
{
    if (message)
        ty_job_progress (arg, fraction, phase, "%s", message);
    else
        ty_job_progress (arg, fraction, phase, NULL);
}

static void
s_hook_metric (void *arg, const char *key, double value)
{
    ty_job_metric (arg, key, value);
}

static void
s_hook_log (void *arg, const char *line)
{
    ty_job_log (arg, "%s", line);
}

static int
s_hook_cancelled (void *arg)
{
    return ty_job_cancelled (arg);
}

/* An output with a number, "" when not measured. */
static void
s_output_number (ty_job_t *job, const char *key, double v)
{
    if (isnan (v))
        return;
    char buf [32];
    snprintf (buf, sizeof buf, "%.6g", v);
    ty_job_output (job, key, buf);
}

static void
s_outputs (ty_job_t *job, const cJSON *doc, const char *path)
{
    char summary [512];
    ty_job_output (job, "summary", ty_report_summary (doc, summary, sizeof summary));
    ty_job_output (job, "metrics_path", path);
    char model [TY_REPORT_MODEL_NAME_MAX + 24];
    const char *name = ty_report_string (doc, "model.name");
    snprintf (model, sizeof model, "%s@%.0f", name ? name : "?",
              ty_report_number (doc, "model.version"));
    ty_job_output (job, "model", model);
    const char *task = ty_report_string (doc, "task");
    ty_job_output (job, "task", task ? task : "?");
    static const struct { const char *key, *path; } nums [] = {
        { "accuracy",        "classification.accuracy" },
        { "macro_f1",        "classification.macro.f1" },
        { "weighted_f1",     "classification.weighted.f1" },
        { "log_loss",        "classification.log_loss" },
        { "roc_auc",         "classification.roc_auc" },
        { "high_conf_share", "classification.high_conf_share" },
        { "subset_accuracy", "multilabel.subset_accuracy" },
        { "hamming_loss",    "multilabel.hamming_loss" },
        { "micro_f1",        "multilabel.micro.f1" },
        { "ml_macro_f1",     "multilabel.macro.f1" },
        { "mse",             "regression.mse" },
        { "rmse",            "regression.rmse" },
        { "mae",             "regression.mae" },
        { "r2",              "regression.r2" },
        { "hit_rate",        "ranking.hit_rate" },
        { "ndcg",            "ranking.ndcg" },
        { "n_samples",       "n_samples" },
        { "fold",            "dataset.fold" },      /* k-fold only */
        { "p50_ms",          "latency.single.p50_ms" },
        { "p95_ms",          "latency.single.p95_ms" },
        { "p99_ms",          "latency.single.p99_ms" },
        { "throughput_per_s","inference.samples_per_s" },
        { "peak_rss_mb",     "latency.peak_rss_mb" },
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums [0]; i++)
        s_output_number (job, nums [i].key, ty_report_number (doc, nums [i].path));
    const char *verdict = ty_report_string (doc, "gate.verdict");
    ty_job_output (job, "gate", verdict ? verdict : "none");
    const char *rec = ty_report_string (doc, "analysis.recommendation");
    ty_job_output (job, "recommendation", rec ? rec : "?");
}

static ty_job_rc_t
s_evaluate (ty_job_t *job, void *arg)
{
    s_ctx *ctx = arg;
    const Ty__JobSpec *spec = ty_job_spec (job);
    if (spec->kind_case != TY__JOB_SPEC__KIND_EVALUATE || !spec->evaluate)
        return ty_job_fail (job, "trainyard-evaluate runs evaluate jobs only");
    ty_evaluate_opts_t opts = {
        .data_dir = ctx->data_dir,
        .threads = ctx->threads,
        .job_id = ty_job_id (job),
        .attempt = ty_job_attempt (job),
    };
    ty_evaluate_hooks_t hooks = {
        .progress = s_hook_progress,
        .metric = s_hook_metric,
        .log = s_hook_log,
        .cancelled = s_hook_cancelled,
        .arg = job,
    };
    cJSON *doc = NULL;
    char path [4096], err [TY_EVALUATE_ERR_MAX];
    int rc = ty_evaluate_run (&opts, spec->evaluate, &hooks, &doc, path, sizeof path,
                              err, sizeof err);
    if (rc == ECANCELED || (rc != TY_OK && ty_job_cancelled (job)))
        return TY_JOB_CANCELED;
    if (rc != TY_OK)
        return ty_job_fail (job, "%s", err [0] ? err : ty_strerror (rc));
    s_outputs (job, doc, path);
    /* the registry keeps the new metrics and gate verdict with the version */
    const char *mname = ty_report_string (doc, "model.name");
    double mversion = ty_report_number (doc, "model.version");
    char why [256];
    if (mname && mversion >= 1
    &&  ty_registry_record (ctx->data_dir, mname, (uint64_t) mversion, ty_job_id (job),
                            "evaluated", why, sizeof why) != TY_OK)
        ty_job_log (job, "registry: %s", why);
    if (ctx->exec_log_fd >= 0) {
        /* one write with O_APPEND: lines from many workers never interleave */
        char line [64];
        int n = snprintf (line, sizeof line, "%s %u\n", ty_job_id (job), ty_job_attempt (job));
        if (write (ctx->exec_log_fd, line, (size_t) n) != n)
            ty_warn ("exec log write failed");
    }
    char summary [512];
    ty_job_log (job, "evaluate: %s", ty_report_summary (doc, summary, sizeof summary));
    cJSON_Delete (doc);
    return TY_JOB_OK;
}

static int
s_start (void *arg, const ty_worker_args_t *args)
{
    s_ctx *ctx = arg;
    ctx->data_dir = args->data_dir;
    ctx->threads = args->threads;
    ctx->exec_log_fd = args->exec_log_fd;
    return 0;
}

int
main (int argc, char **argv)
{
    s_ctx ctx = { .threads = 1, .exec_log_fd = -1 };
    ty_worker_def_t def = {
        .type = "evaluate",
        .about = "A trainyard worker for evaluate jobs: metrics, latency, quality gate and\n"
                 "analysis of a model version, written to metrics.json beside it. A job's\n"
                 "params.threads overrides --threads.\n",
        .flags = TY_WORKER_DATA | TY_WORKER_THREADS | TY_WORKER_EXEC_LOG,
        .on_start = s_start,
        .fn = s_evaluate,
        .ctx = &ctx,
    };
    return ty_worker_main (argc, argv, &def);
}

/*  trainyard-evaluate: runs evaluate jobs (metrics, latency benchmark,
 *  quality gate, analysis of a model version; workers/evaluate/ty_evaluate.h)
 *  and writes metrics.json beside the model. A failed gate is a result: the
 *  job SUCCEEDS and says "gate FAIL" in its outputs. */
#include "ty_error.h"
#include "ty_evaluate.h"
#include "ty_log.h"
#include "ty_report.h"
#include "ty_runtime.h"
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

#define S_DEFAULT_DATA  "./.trainyard/data"   /* what `trainyard up` passes, relative to its state dir */
#define S_MAX_THREADS   256

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

static void
s_usage (FILE *out)
{
    fprintf (out,
"usage: trainyard-evaluate [options]\n"
"\n"
"A trainyard worker for evaluate jobs: metrics, latency, quality gate and\n"
"analysis of a model version, written to metrics.json beside it.\n"
"\n"
"  --broker EP        the broker's worker endpoint (default tcp://127.0.0.1:7701)\n"
"  --data DIR         data directory with datasets/ and models/ (env TRAINYARD_DATA,\n"
"                     default " S_DEFAULT_DATA ")\n"
"  --threads N        intra-op threads for inference (default 1; a job's\n"
"                     params.threads overrides it)\n"
"  --capacity N       jobs at once (default 1)\n"
"  --heartbeat-ms N   heartbeat interval (default 1000)\n"
"  --id ID            worker id (default type-host-pid-random)\n"
"  --exec-log FILE    append '<job id> <attempt>' for each completed execution\n"
"  --drain-ms N       on SIGTERM, wait this long for running jobs (default 10000)\n"
"  --log-level L      debug, info, warn or error (default info)\n"
"  --log-file F       append logs to F instead of stderr\n"
"  -h, --help         this text\n");
}

static int
s_number (const char *flag, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol (s, &end, 10);
    if (!*s || *end || errno || v < min || v > max) {
        fprintf (stderr, "trainyard-evaluate: %s: '%s' is not a number in [%ld, %ld]\n",
                 flag, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int
main (int argc, char **argv)
{
    static const struct option longopts [] = {
        { "broker",       required_argument, 0, 'b' },
        { "data",         required_argument, 0, 'D' },
        { "threads",      required_argument, 0, 't' },
        { "capacity",     required_argument, 0, 'c' },
        { "heartbeat-ms", required_argument, 0, 'H' },
        { "id",           required_argument, 0, 'i' },
        { "exec-log",     required_argument, 0, 'x' },
        { "drain-ms",     required_argument, 0, 'd' },
        { "log-level",    required_argument, 0, 'l' },
        { "log-file",     required_argument, 0, 'L' },
        { "help",         no_argument,       0, 'h' },
        { 0, 0, 0, 0 }
    };
    ty_runtime_opts_t opts = { .broker = "tcp://127.0.0.1:7701", .type = "evaluate",
                               .capacity = 1, .fn = s_evaluate };
    const char *env_data = getenv ("TRAINYARD_DATA");
    s_ctx ctx = { .data_dir = env_data && *env_data ? env_data : S_DEFAULT_DATA, .threads = 1,
                  .exec_log_fd = -1 };
    const char *log_file = NULL;
    int level = TY_LOG_INFO, c;
    long v;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': opts.broker = optarg; break;
        case 'D': if (!*optarg) {
                      fprintf (stderr, "trainyard-evaluate: --data needs a directory\n");
                      return 2;
                  }
                  ctx.data_dir = optarg; break;
        case 't': if (s_number ("--threads", optarg, 1, S_MAX_THREADS, &v)) return 2;
                  ctx.threads = (int) v; break;
        case 'c': if (s_number ("--capacity", optarg, 1, 1024, &v)) return 2;
                  opts.capacity = (unsigned) v; break;
        case 'H': if (s_number ("--heartbeat-ms", optarg, 10, 600000, &v)) return 2;
                  opts.heartbeat_ms = (int) v; break;
        case 'd': if (s_number ("--drain-ms", optarg, 1, 86400000, &v)) return 2;
                  opts.drain_ms = (int) v; break;
        case 'i': if (strlen (optarg) == 0 || strlen (optarg) > 64) {
                      fprintf (stderr, "trainyard-evaluate: --id: 1 to 64 characters\n");
                      return 2;
                  }
                  opts.worker_id = optarg; break;
        case 'x': ctx.exec_log_fd = open (optarg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                  if (ctx.exec_log_fd < 0) {
                      perror (optarg);
                      return 1;
                  }
                  break;
        case 'l': level = ty_log_level_parse (optarg);
                  if (level < 0) {
                      fprintf (stderr, "trainyard-evaluate: --log-level: debug, info, warn or error\n");
                      return 2;
                  }
                  break;
        case 'L': log_file = optarg; break;
        case 'h': s_usage (stdout); return 0;
        default:  s_usage (stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "trainyard-evaluate: unexpected argument '%s'\n", argv [optind]);
        return 2;
    }
    ty_log_init ("evaluate", (ty_log_level_t) level);
    if (log_file && ty_log_file (log_file) != 0) {
        fprintf (stderr, "trainyard-evaluate: cannot open log file %s\n", log_file);
        return 1;
    }
    /* libtorch and OpenBLAS threads are process-wide: set them once here */
    ty_torch_set_threads (ctx.threads);
    ty_info ("data %s, %d thread(s), BLAS %s", ctx.data_dir, ctx.threads, ty_torch_blas_name ());
    opts.arg = &ctx;
    ty_runtime_t *rt = ty_runtime_new (&opts);
    if (!rt) {
        fprintf (stderr, "trainyard-evaluate: cannot start the runtime\n");
        return 1;
    }
    ty_runtime_handle_signals (rt);
    int rc = ty_runtime_run (rt);
    ty_runtime_destroy (&rt);
    if (ctx.exec_log_fd >= 0)
        close (ctx.exec_log_fd);
    return rc == TY_OK ? 0 : 1;
}

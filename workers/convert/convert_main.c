/*  trainyard-convert: runs convert jobs (workers/convert/ty_convert.h) for
 *  the broker: a model version -> model.tym / model-fp16.tym /
 *  model-int8.tym / model.onnx beside it, measured against FP32 on the
 *  test split, with a convert-<target>.json report and the registry's
 *  artifact list refreshed.
 *
 *  One job at a time by default: the writers load the model with libtorch,
 *  whose thread pool is process-wide. */
#include "ty_convert.h"
#include "ty_error.h"
#include "ty_log.h"
#include "ty_runtime.h"
#include "ty_torch.h"
#include "ty_worker_main.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_POINTS 100.0     /* accuracy fraction -> percentage points */

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
    ty_info ("job %s: %s", ty_job_id (arg), line);
}

static int
s_hook_cancelled (void *arg)
{
    return ty_job_cancelled (arg);
}

/* An output with a number (%.*g of digits significant figures); nothing
 * when not measured. */
static void
s_output_number (ty_job_t *job, const char *key, int digits, double v)
{
    if (isnan (v))
        return;
    char buf [32];
    snprintf (buf, sizeof buf, "%.*g", digits, v);
    ty_job_output (job, key, buf);
}

static void
s_outputs (ty_job_t *job, const ty_convert_result_t *res)
{
    char buf [TY_CONVERT_NAME_MAX + 32];
    snprintf (buf, sizeof buf, "%s@%llu", res->model, (unsigned long long) res->version);
    ty_job_output (job, "model", buf);
    ty_job_output (job, "target", ty_convert_target_name (res->target));
    ty_job_output (job, "artifact", res->artifact);
    ty_job_output (job, "report", res->report);
    ty_job_output (job, "sha256", res->sha256);
    snprintf (buf, sizeof buf, "%llu", (unsigned long long) res->bytes);
    ty_job_output (job, "bytes", buf);
    if (res->fp32_bytes) {
        snprintf (buf, sizeof buf, "%llu", (unsigned long long) res->fp32_bytes);
        ty_job_output (job, "fp32_bytes", buf);
        s_output_number (job, "size_ratio", 4, (double) res->bytes / (double) res->fp32_bytes);
    }
    ty_job_output (job, "registered", res->registered ? "yes" : "no");
    if (!res->evaluated) {
        ty_job_output (job, "evaluated", "no: ONNX export and size only (no ONNX runtime here)");
        return;
    }
    ty_job_output (job, "evaluated", "yes");
    snprintf (buf, sizeof buf, "%zu", res->n_samples);
    ty_job_output (job, "n_samples", buf);
    s_output_number (job, "accuracy_fp32", 6, res->accuracy_fp32);
    s_output_number (job, "accuracy", 6, res->accuracy);
    s_output_number (job, "accuracy_change_points", 4,
                     (res->accuracy - res->accuracy_fp32) * S_POINTS);
    s_output_number (job, "agreement_top1", 6, res->agreement);
    s_output_number (job, "p50_fp32_ms", 4, res->p50_fp32_ms);
    s_output_number (job, "p99_fp32_ms", 4, res->p99_fp32_ms);
    s_output_number (job, "p50_ms", 4, res->p50_ms);
    s_output_number (job, "p99_ms", 4, res->p99_ms);
}

static ty_job_rc_t
s_convert (ty_job_t *job, void *arg)
{
    s_ctx *ctx = arg;
    const Ty__JobSpec *spec = ty_job_spec (job);
    if (spec->kind_case != TY__JOB_SPEC__KIND_CONVERT || !spec->convert)
        return ty_job_fail (job, "trainyard-convert runs convert jobs only");
    ty_convert_opts_t opts = {
        .data_dir = ctx->data_dir,
        .job_id = ty_job_id (job),
    };
    ty_convert_hooks_t hooks = {
        .progress = s_hook_progress,
        .metric = s_hook_metric,
        .log = s_hook_log,
        .cancelled = s_hook_cancelled,
        .arg = job,
    };
    ty_convert_result_t res;
    char err [TY_CONVERT_ERR_MAX] = "";
    int rc = ty_convert_run (&opts, spec->convert, &hooks, NULL, &res, err, sizeof err);
    if (rc == ECANCELED || (rc != TY_OK && ty_job_cancelled (job)))
        return TY_JOB_CANCELED;
    if (rc != TY_OK)
        return ty_job_fail (job, "%s", err [0] ? err : ty_strerror (rc));
    s_outputs (job, &res);
    if (res.evaluated)
        ty_job_progress (job, 1.0, "done", "%s@%llu %s: %.1f%% of fp32 size, accuracy %+.2f "
                         "points, top-1 agreement %.2f%%", res.model,
                         (unsigned long long) res.version, ty_convert_target_name (res.target),
                         res.fp32_bytes ? 100.0 * (double) res.bytes / (double) res.fp32_bytes : 0,
                         (res.accuracy - res.accuracy_fp32) * S_POINTS, 100.0 * res.agreement);
    else
        ty_job_progress (job, 1.0, "done", "%s@%llu %s: %llu bytes (export only)", res.model,
                         (unsigned long long) res.version, ty_convert_target_name (res.target),
                         (unsigned long long) res.bytes);
    if (ctx->exec_log_fd >= 0) {
        /* one write with O_APPEND: lines from many workers never interleave */
        char line [64];
        int n = snprintf (line, sizeof line, "%s %u\n", ty_job_id (job), ty_job_attempt (job));
        if (write (ctx->exec_log_fd, line, (size_t) n) != n)
            ty_warn ("exec log write failed");
    }
    return TY_JOB_OK;
}

static int
s_start (void *arg, const ty_worker_args_t *args)
{
    s_ctx *ctx = arg;
    ctx->data_dir = args->data_dir;
    ctx->threads = args->threads;
    ctx->exec_log_fd = args->exec_log_fd;
    /* the process-wide pools follow the default before any job touches them */
    ty_torch_set_threads (ctx->threads);
    return 0;
}

int
main (int argc, char **argv)
{
    s_ctx ctx = { .threads = 1, .exec_log_fd = -1 };
    ty_worker_def_t def = {
        .type = "convert",
        .about = "A trainyard worker for convert jobs: a model version to fp32, fp16 or int8\n"
                 "portable files (model*.tym) or ONNX, measured against fp32 on the test\n"
                 "split (convert-<target>.json). Submit jobs with `trainyard convert`.\n",
        .flags = TY_WORKER_DATA | TY_WORKER_THREADS | TY_WORKER_EXEC_LOG,
        .on_start = s_start,
        .fn = s_convert,
        .ctx = &ctx,
    };
    return ty_worker_main (argc, argv, &def);
}

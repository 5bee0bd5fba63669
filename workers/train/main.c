/*  trainyard-train: runs train jobs (ty_train.h) for the broker.
 *
 *  One job at a time by default: libtorch's thread pool is process-wide,
 *  and on small machines one job per core is what trains fastest. */
#include "ty_error.h"
#include "ty_log.h"
#include "ty_runtime.h"
#include "ty_portable.h"
#include "ty_registry.h"
#include "ty_train.h"
#include "ty_worker_main.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


typedef struct {
    const char *data_dir;
    int         threads;
    int         step_delay_ms;   /* tests only */
    int         exec_log_fd;     /* -1: none */
} s_ctx;

/* ---- hooks: ty_train -> the runtime --------------------------------------- */

static int
s_hook_cancelled (void *arg)
{
    return ty_job_cancelled (arg);
}

static void
s_hook_progress (void *arg, double fraction, const char *phase, const char *message)
{
    ty_job_progress (arg, fraction, phase, "%s", message);
}

static void
s_hook_metric (void *arg, const char *key, double value)
{
    ty_job_metric (arg, key, value);
}

static void
s_hook_log (void *arg, const char *message)
{
    ty_job_log (arg, "%s", message);
    ty_info ("job %s: %s", ty_job_id (arg), message);
}

static ty_job_rc_t
s_train (ty_job_t *job, void *arg)
{
    s_ctx *ctx = arg;
    const Ty__JobSpec *spec = ty_job_spec (job);
    if (spec->kind_case != TY__JOB_SPEC__KIND_TRAIN || !spec->train)
        return ty_job_fail (job, "trainyard-train runs train jobs only");
    char err [TY_TRAIN_ERR_LEN] = "";
    ty_train_config_t cfg;
    if (ty_train_config_from_spec (spec->train, &cfg, err, sizeof err) != TY_OK)
        return ty_job_fail (job, "%s", err);
    ty_train_env_t env = {
        .data_dir = ctx->data_dir,
        .job_id = ty_job_id (job),
        .attempt = ty_job_attempt (job),
        .default_threads = ctx->threads,
        .step_delay_ms = ctx->step_delay_ms,
        .hooks = { job, s_hook_cancelled, s_hook_progress, s_hook_metric, s_hook_log },
    };
    ty_train_result_t res;
    int rc = ty_train_run (&cfg, &env, &res, err, sizeof err);
    if (rc == ECANCELED || (rc != TY_OK && ty_job_cancelled (job)))
        return TY_JOB_CANCELED;
    if (rc != TY_OK)
        return ty_job_fail (job, "%s", err);
    char buf [64];
    ty_job_output (job, "model", res.model);
    snprintf (buf, sizeof buf, "%llu", (unsigned long long) res.version);
    ty_job_output (job, "version", buf);
    ty_job_output (job, "path", res.path);
    ty_job_output (job, "metric", res.metric);
    snprintf (buf, sizeof buf, "%.6g", res.best_metric);
    ty_job_output (job, "best_metric", buf);
    snprintf (buf, sizeof buf, "%d", res.best_epoch);
    ty_job_output (job, "best_epoch", buf);
    snprintf (buf, sizeof buf, "%d", res.epochs_run);
    ty_job_output (job, "epochs", buf);
    snprintf (buf, sizeof buf, "%d", res.resumed_from);
    ty_job_output (job, "resumed_from_epoch", buf);
    snprintf (buf, sizeof buf, "%016llx", (unsigned long long) res.weights_digest);
    ty_job_output (job, "weights_digest", buf);
    snprintf (buf, sizeof buf, "%lld", (long long) res.param_count);
    ty_job_output (job, "parameters", buf);
    if (res.holdout_fold >= 0) {
        /* k-fold: which fold this branch held out, and how many samples it
           trained and validated on (the fold's), for the aggregate step */
        snprintf (buf, sizeof buf, "%d", res.holdout_fold);
        ty_job_output (job, "holdout_fold", buf);
        snprintf (buf, sizeof buf, "%llu", (unsigned long long) res.train_samples);
        ty_job_output (job, "train_samples", buf);
        snprintf (buf, sizeof buf, "%llu", (unsigned long long) res.val_samples);
        ty_job_output (job, "val_samples", buf);
    }
    /* The portable file (model.tym) beside the weights, for `trainyard
       predict` and devices; a kind the converter does not take yet (mlp on
       TF-IDF) keeps only model.pt. */
    char perr [256];
    if (ty_portable_convert_dir (res.path, perr, sizeof perr) != TY_OK)
        ty_job_log (job, "portable model not written: %s", perr);
    /* Every version is in the registry (stage none) from its birth, so
       promote, history and serving resolution know it. */
    char why [256];
    if (ty_registry_record (ctx->data_dir, cfg.name, res.version, ty_job_id (job),
                            "trained", why, sizeof why) != TY_OK)
        ty_job_log (job, "registry: %s (`trainyard model register %s` adds it later)",
                    why, res.model);
    char key [32];
    snprintf (key, sizeof key, "best_val_%s", res.metric);
    ty_job_metric (job, key, res.best_metric);
    ty_job_progress (job, 1.0, "done", "%s: best val %s %.4f (epoch %d of %d)", res.model,
                     res.metric, res.best_metric, res.best_epoch, res.epochs_run);
    if (ctx->exec_log_fd >= 0) {
        /* one write with O_APPEND: lines from many workers never interleave */
        char line [64];
        int n = snprintf (line, sizeof line, "%s %u\n", ty_job_id (job), ty_job_attempt (job));
        if (write (ctx->exec_log_fd, line, (size_t) n) != n)
            ty_warn ("exec log write failed");
    }
    return TY_JOB_OK;
}

enum { S_OPT_STEP_DELAY = TY_WORKER_OPT_USER };

static int
s_option (void *arg, int val, const char *value)
{
    s_ctx *ctx = arg;
    long v;
    if (val != S_OPT_STEP_DELAY)
        return 2;
    int rc = ty_worker_number ("train", "--test-step-delay-ms", value, 0, 60000, &v);
    if (rc == 0)
        ctx->step_delay_ms = (int) v;
    return rc;
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
    if (ctx->step_delay_ms)
        ty_warn ("--test-step-delay-ms %d: every step sleeps (fault tests only)",
                 ctx->step_delay_ms);
    return 0;
}

int
main (int argc, char **argv)
{
    static const struct option options [] = {
        { "test-step-delay-ms", required_argument, 0, S_OPT_STEP_DELAY },
        { 0, 0, 0, 0 }
    };
    s_ctx ctx = { .threads = 1, .exec_log_fd = -1 };
    ty_worker_def_t def = {
        .type = "train",
        .about = "A trainyard worker for train jobs: textclf, mlp, cnn and ncf models with\n"
                 "libtorch; a checkpoint per epoch, from which a retried job resumes.\n"
                 "Submit jobs with `trainyard train`.\n",
        .flags = TY_WORKER_DATA | TY_WORKER_THREADS | TY_WORKER_EXEC_LOG,
        .options = options,
        .options_help = "  --test-step-delay-ms N  fault tests only: sleep N ms after each step\n",
        .on_option = s_option,
        .on_start = s_start,
        .fn = s_train,
        .ctx = &ctx,
    };
    return ty_worker_main (argc, argv, &def);
}

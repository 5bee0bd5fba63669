/*  trainyard-train: runs train jobs (ty_train.h) for the broker.
 *
 *  One job at a time by default: libtorch's thread pool is process-wide,
 *  and on small machines one job per core is what trains fastest. */
#include "ty_error.h"
#include "ty_log.h"
#include "ty_runtime.h"
#include "ty_train.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_DEFAULT_DATA   "./.trainyard/data"
#define S_MAX_THREADS    1024

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

static void
s_usage (FILE *out)
{
    fprintf (out,
"usage: trainyard-train [options]\n"
"\n"
"A trainyard worker for train jobs: textclf, mlp, cnn and ncf models on\n"
"libtorch, from LMDB datasets to model versions under DATA/models/.\n"
"\n"
"  --broker EP        the broker's worker endpoint (default tcp://127.0.0.1:7701)\n"
"  --data DIR         datasets, models and checkpoints (env TRAINYARD_DATA,\n"
"                     default " S_DEFAULT_DATA ")\n"
"  --threads N        intra-op threads of a job that sets none (default 1)\n"
"  --capacity N       jobs at once (default 1)\n"
"  --heartbeat-ms N   heartbeat interval (default 1000)\n"
"  --id ID            worker id (default type-host-pid-random)\n"
"  --exec-log FILE    append '<job id> <attempt>' for each completed job\n"
"  --drain-ms N       on SIGTERM, wait this long for running jobs (default 10000)\n"
"  --test-step-delay-ms N  sleep N ms after each step (fault tests only)\n"
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
        fprintf (stderr, "trainyard-train: %s: '%s' is not a number in [%ld, %ld]\n",
                 flag, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int
main (int argc, char **argv)
{
    enum { OPT_DATA = 256, OPT_THREADS, OPT_DELAY };
    static const struct option longopts [] = {
        { "broker",       required_argument, 0, 'b' },
        { "data",         required_argument, 0, OPT_DATA },
        { "threads",      required_argument, 0, OPT_THREADS },
        { "capacity",     required_argument, 0, 'c' },
        { "heartbeat-ms", required_argument, 0, 'H' },
        { "id",           required_argument, 0, 'i' },
        { "exec-log",     required_argument, 0, 'x' },
        { "drain-ms",     required_argument, 0, 'd' },
        { "test-step-delay-ms", required_argument, 0, OPT_DELAY },
        { "log-level",    required_argument, 0, 'l' },
        { "log-file",     required_argument, 0, 'L' },
        { "help",         no_argument,       0, 'h' },
        { 0, 0, 0, 0 }
    };
    ty_runtime_opts_t opts = { .broker = "tcp://127.0.0.1:7701", .type = "train",
                               .capacity = 1, .fn = s_train };
    const char *env_data = getenv ("TRAINYARD_DATA");
    s_ctx ctx = { .data_dir = env_data && *env_data ? env_data : S_DEFAULT_DATA,
                  .threads = 1, .exec_log_fd = -1 };
    const char *log_file = NULL;
    int level = TY_LOG_INFO, c;
    long v;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': opts.broker = optarg; break;
        case OPT_DATA:
            if (!*optarg) {
                fprintf (stderr, "trainyard-train: --data needs a directory\n");
                return 2;
            }
            ctx.data_dir = optarg;
            break;
        case OPT_THREADS: if (s_number ("--threads", optarg, 1, S_MAX_THREADS, &v)) return 2;
                  ctx.threads = (int) v; break;
        case OPT_DELAY: if (s_number ("--test-step-delay-ms", optarg, 0, 60000, &v)) return 2;
                  ctx.step_delay_ms = (int) v; break;
        case 'c': if (s_number ("--capacity", optarg, 1, 1024, &v)) return 2;
                  opts.capacity = (unsigned) v; break;
        case 'H': if (s_number ("--heartbeat-ms", optarg, 10, 600000, &v)) return 2;
                  opts.heartbeat_ms = (int) v; break;
        case 'd': if (s_number ("--drain-ms", optarg, 1, 86400000, &v)) return 2;
                  opts.drain_ms = (int) v; break;
        case 'i': if (strlen (optarg) == 0 || strlen (optarg) > 64) {
                      fprintf (stderr, "trainyard-train: --id: 1 to 64 characters\n");
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
                      fprintf (stderr, "trainyard-train: --log-level: debug, info, warn or error\n");
                      return 2;
                  }
                  break;
        case 'L': log_file = optarg; break;
        case 'h': s_usage (stdout); return 0;
        default:  s_usage (stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "trainyard-train: unexpected argument '%s'\n", argv [optind]);
        return 2;
    }
    ty_log_init ("train", (ty_log_level_t) level);
    if (log_file && ty_log_file (log_file) != 0) {
        fprintf (stderr, "trainyard-train: cannot open log file %s\n", log_file);
        return 1;
    }
    /* the process-wide pools follow the default before any job touches them */
    ty_torch_set_threads (ctx.threads);
    opts.arg = &ctx;
    ty_runtime_t *rt = ty_runtime_new (&opts);
    if (!rt) {
        fprintf (stderr, "trainyard-train: cannot start the runtime\n");
        return 1;
    }
    ty_runtime_handle_signals (rt);
    int rc = ty_runtime_run (rt);
    ty_runtime_destroy (&rt);
    if (ctx.exec_log_fd >= 0)
        close (ctx.exec_log_fd);
    return rc == TY_OK ? 0 : 1;
}

/*  trainyard-noop: runs noop jobs (sleep, fail on purpose, return bytes,
 *  crash), for health checks, tests and benchmarks. */
#include "ty_clock.h"
#include "ty_error.h"
#include "ty_log.h"
#include "ty_runtime.h"
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_SLICE_MS 5     /* cancel is noticed within this */

typedef struct {
    int exec_log_fd;     /* -1: none */
} s_ctx;

static ty_job_rc_t
s_noop (ty_job_t *job, void *arg)
{
    s_ctx *ctx = arg;
    const Ty__JobSpec *spec = ty_job_spec (job);
    if (spec->kind_case != TY__JOB_SPEC__KIND_NOOP)
        return ty_job_fail (job, "trainyard-noop runs noop jobs only");
    const Ty__NoopSpec *noop = spec->noop;
    int64_t start = ty_clock_mono_ms ();
    int64_t end = start + noop->sleep_ms;
    if (noop->sleep_ms) {
        ty_job_progress (job, 0, "sleeping", "%u ms", noop->sleep_ms);
        ty_job_log (job, "noop: sleeping %u ms (attempt %u)", noop->sleep_ms,
                    ty_job_attempt (job));
    }
    for (int64_t now = start; now < end; now = ty_clock_mono_ms ()) {
        if (ty_job_cancelled (job))
            return TY_JOB_CANCELED;
        if (noop->crash && now - start >= (int64_t) noop->sleep_ms / 2)
            abort ();        /* on purpose: a fault test */
        int64_t left = end - now;
        ty_clock_sleep_ms (left < S_SLICE_MS ? left : S_SLICE_MS);
        int64_t slept = ty_clock_mono_ms () - start;
        /* a metric too, so the metrics stream and `watch` have something real */
        ty_job_metric (job, "slept_ms", (double) slept);
        ty_job_progress (job, (double) slept / noop->sleep_ms, NULL, NULL);
    }
    if (noop->crash)
        abort ();
    if (ty_job_cancelled (job))
        return TY_JOB_CANCELED;
    if (noop->output_bytes) {
        size_t n = noop->output_bytes > (1u << 24) ? (1u << 24) : noop->output_bytes;
        unsigned char *data = malloc (n);
        if (!data)
            return ty_job_fail (job, "cannot allocate %zu output bytes", n);
        for (size_t i = 0; i < n; i++)
            data [i] = (unsigned char) (i * 31u);
        ty_job_data (job, data, n);
        free (data);
    }
    ty_job_output (job, "summary", noop->fail ? "failed on purpose" : "slept");
    if (ctx->exec_log_fd >= 0) {
        /* One write with O_APPEND: lines from many workers never interleave. */
        char line [64];
        int n = snprintf (line, sizeof line, "%s %u\n", ty_job_id (job), ty_job_attempt (job));
        if (write (ctx->exec_log_fd, line, (size_t) n) != n)
            ty_warn ("exec log write failed");
    }
    if (noop->sleep_ms)
        ty_job_log (job, "noop: done after %lld ms",
                    (long long) (ty_clock_mono_ms () - start));
    if (noop->fail)
        return ty_job_fail (job, "%s", *noop->fail_message ? noop->fail_message
                                                            : "failed on purpose");
    return TY_JOB_OK;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
"usage: trainyard-noop [options]\n"
"\n"
"A trainyard worker for noop jobs (health checks, tests, benchmarks).\n"
"\n"
"  --broker EP        the broker's worker endpoint (default tcp://127.0.0.1:7701)\n"
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
    long v = strtol (s, &end, 10);
    if (!*s || *end || v < min || v > max) {
        fprintf (stderr, "trainyard-noop: %s: '%s' is not a number in [%ld, %ld]\n",
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
    ty_runtime_opts_t opts = { .broker = "tcp://127.0.0.1:7701", .type = "noop",
                               .capacity = 1, .fn = s_noop };
    s_ctx ctx = { .exec_log_fd = -1 };
    const char *log_file = NULL;
    int level = TY_LOG_INFO, c;
    long v;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': opts.broker = optarg; break;
        case 'c': if (s_number ("--capacity", optarg, 1, 1024, &v)) return 2;
                  opts.capacity = (unsigned) v; break;
        case 'H': if (s_number ("--heartbeat-ms", optarg, 10, 600000, &v)) return 2;
                  opts.heartbeat_ms = (int) v; break;
        case 'd': if (s_number ("--drain-ms", optarg, 1, 86400000, &v)) return 2;
                  opts.drain_ms = (int) v; break;
        case 'i': if (strlen (optarg) == 0 || strlen (optarg) > 64) {
                      fprintf (stderr, "trainyard-noop: --id: 1 to 64 characters\n");
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
                      fprintf (stderr, "trainyard-noop: --log-level: debug, info, warn or error\n");
                      return 2;
                  }
                  break;
        case 'L': log_file = optarg; break;
        case 'h': s_usage (stdout); return 0;
        default:  s_usage (stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "trainyard-noop: unexpected argument '%s'\n", argv [optind]);
        return 2;
    }
    ty_log_init ("noop", (ty_log_level_t) level);
    if (log_file && ty_log_file (log_file) != 0) {
        fprintf (stderr, "trainyard-noop: cannot open log file %s\n", log_file);
        return 1;
    }
    opts.arg = &ctx;
    ty_runtime_t *rt = ty_runtime_new (&opts);
    if (!rt) {
        fprintf (stderr, "trainyard-noop: cannot start the runtime\n");
        return 1;
    }
    ty_runtime_handle_signals (rt);
    int rc = ty_runtime_run (rt);
    ty_runtime_destroy (&rt);
    if (ctx.exec_log_fd >= 0)
        close (ctx.exec_log_fd);
    return rc == TY_OK ? 0 : 1;
}

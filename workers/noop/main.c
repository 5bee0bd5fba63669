/*  trainyard-noop: runs noop jobs (sleep, fail on purpose, return bytes,
 *  crash), for health checks, tests and benchmarks. */
#include "ty_clock.h"
#include "ty_error.h"
#include "ty_log.h"
#include "ty_runtime.h"
#include "ty_worker_main.h"
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
    /* fail_tries: the first tries of an attempt fail (JobSpec.retries tests) */
    int fail = noop->fail || ty_job_try (job) < noop->fail_tries;
    ty_job_output (job, "summary", fail ? "failed on purpose" : "slept");
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
    if (fail)
        return ty_job_fail (job, "%s (try %u)", *noop->fail_message ? noop->fail_message
                                                                   : "failed on purpose",
                            ty_job_try (job) + 1);
    return TY_JOB_OK;
}

static int
s_start (void *arg, const ty_worker_args_t *args)
{
    ((s_ctx *) arg)->exec_log_fd = args->exec_log_fd;
    return 0;
}

int
main (int argc, char **argv)
{
    s_ctx ctx = { .exec_log_fd = -1 };
    ty_worker_def_t def = {
        .type = "noop",
        .about = "A trainyard worker for noop jobs (health checks, tests, benchmarks).\n",
        .flags = TY_WORKER_EXEC_LOG,
        .on_start = s_start,
        .fn = s_noop,
        .ctx = &ctx,
    };
    return ty_worker_main (argc, argv, &def);
}

/*  ty_latency: warm-up, single-sample timings, batch throughput, peak RSS.
 *  See ty_latency.h. */
#include "ty_latency.h"
#include "ty_error.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define S_KIB_PER_MIB 1024.0

double
ty_latency_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

void
ty_latency_opts_init (ty_latency_opts_t *opts)
{
    memset (opts, 0, sizeof *opts);
    opts->warmup = TY_LATENCY_WARMUP_DEFAULT;
    opts->samples = TY_LATENCY_SAMPLES_DEFAULT;
    opts->pool = 1;
}

/* A "Name:   123 kB" line of /proc/self/status in MiB; NaN if absent. */
static double
s_status_mb (const char *name)
{
    FILE *f = fopen ("/proc/self/status", "re");
    if (!f)
        return NAN;
    char line [256];
    size_t len = strlen (name);
    double mb = NAN;
    while (fgets (line, sizeof line, f)) {
        if (strncmp (line, name, len) == 0 && line [len] == ':') {
            long long kb;
            if (sscanf (line + len + 1, "%lld", &kb) == 1)
                mb = (double) kb / S_KIB_PER_MIB;
            break;
        }
    }
    fclose (f);
    return mb;
}

int
ty_latency_rss_reset_peak (void)
{
    /* "5" resets the peak RSS counter (Documentation/filesystems/proc.rst) */
    int fd = open ("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int ok = write (fd, "5", 1) == 1;
    close (fd);
    return ok;
}

double
ty_latency_peak_rss_mb (void)
{
    double mb = s_status_mb ("VmHWM");
    if (!isnan (mb))
        return mb;
    struct rusage ru;
    if (getrusage (RUSAGE_SELF, &ru) == 0)
        return (double) ru.ru_maxrss / S_KIB_PER_MIB;   /* ru_maxrss is in KiB on Linux */
    return NAN;
}

double
ty_latency_rss_mb (void)
{
    return s_status_mb ("VmRSS");
}

static void
s_clear (ty_latency_bench_t *out)
{
    memset (out, 0, sizeof *out);
    out->single.mean_ms = out->single.min_ms = out->single.max_ms = NAN;
    out->single.p50_ms = out->single.p95_ms = out->single.p99_ms = NAN;
    out->single.throughput_per_s = NAN;
    out->batch_throughput_per_s = NAN;
    out->peak_rss_mb = NAN;
}

int
ty_latency_run (const ty_latency_opts_t *opts, ty_latency_predict_fn *fn,
                void *arg, ty_latency_bench_t *out)
{
    if (!opts || !fn || !out)
        return TY_EINVAL;
    s_clear (out);
    if (opts->samples == 0 || opts->pool == 0 || opts->samples > TY_LATENCY_SAMPLES_MAX)
        return TY_EINVAL;
    out->warmup = opts->warmup;
    size_t next = 0;
    for (size_t i = 0; i < opts->warmup; i++) {
        int rc = fn (arg, next, 1);
        if (rc != TY_OK)
            return rc;
        next = (next + 1) % opts->pool;
    }
    double *t = malloc (opts->samples * sizeof *t);
    if (!t)
        return TY_ENOMEM;
    for (size_t i = 0; i < opts->samples; i++) {
        double t0 = ty_latency_now_ms ();
        int rc = fn (arg, next, 1);
        double t1 = ty_latency_now_ms ();
        if (rc != TY_OK) {
            free (t);
            return rc;
        }
        t [i] = t1 > t0 ? t1 - t0 : 0.0;
        next = (next + 1) % opts->pool;
    }
    int rc = ty_metrics_latency_summarize (t, opts->samples, &out->single);
    free (t);
    if (rc != TY_OK)
        return rc;
    if (opts->batch_size > 0 && opts->batch_rounds > 0) {
        /* batches never run past the pool: the caller's inputs end there */
        size_t bs = opts->batch_size < opts->pool ? opts->batch_size : opts->pool;
        double t0 = ty_latency_now_ms ();
        size_t first = 0;
        for (size_t r = 0; r < opts->batch_rounds; r++) {
            if (first + bs > opts->pool)
                first = 0;
            rc = fn (arg, first, bs);
            if (rc != TY_OK)
                return rc;
            first += bs;
        }
        double ms = ty_latency_now_ms () - t0;
        out->batch_size = bs;
        out->batch_throughput_per_s = ms > 0 ? (double) (bs * opts->batch_rounds) * 1e3 / ms : NAN;
    }
    out->peak_rss_mb = ty_latency_peak_rss_mb ();
    return TY_OK;
}

cJSON *
ty_latency_bench_json (const ty_latency_bench_t *b)
{
    cJSON *root = cJSON_CreateObject ();
    if (!root)
        return NULL;
    cJSON *single = ty_metrics_latency_json (&b->single);
    if (!single || !cJSON_AddItemToObject (root, "single", single)) {
        cJSON_Delete (single);
        cJSON_Delete (root);
        return NULL;
    }
    if (!cJSON_AddNumberToObject (root, "warmup", (double) b->warmup)
        || !cJSON_AddNumberToObject (root, "batch_size", (double) b->batch_size)
        || !ty_metrics_json_add_number (root, "batch_throughput_per_s", b->batch_throughput_per_s)
        || !ty_metrics_json_add_number (root, "peak_rss_mb", b->peak_rss_mb)
        || !cJSON_AddStringToObject (root, "peak_rss_scope",
                                     b->peak_rss_per_job ? "job" : "process")) {
        cJSON_Delete (root);
        return NULL;
    }
    return root;
}

/*  ty_latency: the in-job latency benchmark of an evaluate job.
 *
 *  What a serving process sees: after a warm-up (first calls pay for lazy
 *  allocations and cold caches, which a long-lived server pays once), N
 *  predictions of ONE sample each, timed one by one with the monotonic
 *  clock (mean, p50, p95, p99 through ty_metrics_latency_summarize of ty_metrics.h),
 *  then the batch throughput (predictions/s in batches), and the process's
 *  peak resident memory.
 *
 *  The model is behind a callback, so this module knows nothing of libtorch
 *  and the benchmark itself can be tested with any function.
 *
 *  Peak RSS: Linux keeps a per-process high-water mark (VmHWM in
 *  /proc/self/status) that writing "5" to /proc/self/clear_refs resets, so
 *  a worker that runs many jobs reports each job's own peak rather than the
 *  largest job it ever ran. Where that is refused the figure falls back to
 *  getrusage's lifetime maximum (documented in the JSON as "peak_rss_scope").
 *
 *  Not thread-safe per bench; the RSS functions act on the whole process.
 */
#ifndef TY_LATENCY_H
#define TY_LATENCY_H

#include <stddef.h>
#include <stdint.h>
#include "ty_metrics.h"

#define TY_LATENCY_WARMUP_DEFAULT   20    /* untimed calls: enough for libtorch's first-call allocations */
#define TY_LATENCY_SAMPLES_DEFAULT  200   /* p99 of 200 timings is the 2nd largest: still a real figure */
#define TY_LATENCY_SAMPLES_MAX      100000

/* One prediction of n samples starting at input `first` (inputs are
 * numbered 0..pool-1 by the caller). Returns TY_OK, or any other code to
 * stop the benchmark (an error, or cancellation), which run() returns. */
typedef int (ty_latency_predict_fn) (void *arg, size_t first, size_t n);

typedef struct {
    size_t warmup;        /* untimed single predictions first */
    size_t samples;       /* timed single predictions (>= 1) */
    size_t pool;          /* distinct inputs; calls cycle through them (>= 1) */
    size_t batch_size;    /* batch throughput: batches of this many (0 = skip) */
    size_t batch_rounds;  /* batches timed (0 = skip) */
} ty_latency_opts_t;

typedef struct {
    ty_metrics_latency_t single;            /* the N single-sample timings */
    size_t warmup;
    size_t batch_size;              /* 0: batch throughput not measured here */
    double batch_throughput_per_s;  /* predictions per second in batches; NaN if not measured */
    double peak_rss_mb;             /* MiB */
    int    peak_rss_per_job;        /* 1: since ty_latency_rss_reset_peak; 0: process lifetime */
} ty_latency_bench_t;

/* Defaults above; pool 1, batch measurement off. */
void ty_latency_opts_init (ty_latency_opts_t *opts);

/* Runs the benchmark. Returns TY_OK, TY_EINVAL (samples or pool 0, samples
 * over TY_LATENCY_SAMPLES_MAX), TY_ENOMEM, or the callback's code. On an
 * error *out is left with NaN figures. */
int ty_latency_run (const ty_latency_opts_t *opts, ty_latency_predict_fn *fn,
                    void *arg, ty_latency_bench_t *out);

/* Resets the process's peak RSS mark (Linux clear_refs). Returns 1 if the
 * kernel accepted it (the next peak is this job's), 0 otherwise. */
int ty_latency_rss_reset_peak (void);

/* Peak resident set of the process in MiB (VmHWM, else getrusage);
 * NaN if neither can be read. */
double ty_latency_peak_rss_mb (void);

/* Current resident set in MiB (VmRSS); NaN if unreadable. */
double ty_latency_rss_mb (void);

/* Monotonic time in ms with sub-ms resolution (CLOCK_MONOTONIC). */
double ty_latency_now_ms (void);

struct cJSON;
/* {"warmup", "single": {ty_metrics_latency_json}, "batch_size", "batch_throughput_per_s",
 *  "peak_rss_mb", "peak_rss_scope": "job"|"process"}. NaN is null. Caller
 * frees; NULL on out of memory. */
struct cJSON *ty_latency_bench_json (const ty_latency_bench_t *b);

#endif

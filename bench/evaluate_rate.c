/*  bench_evaluate_rate: the model side of bench/evaluate. A whole evaluate
 *  job (ty_evaluate_run, in-process) on a textclf model and a ROWS-row test
 *  split: the evaluation rate (samples/s of batched inference), the job's
 *  wall time including encoding, metrics, latency loop, analysis and
 *  metrics.json, and the in-job latency figures.
 *
 *      bench_evaluate_rate [ROWS] [CLASSES]     (default 100000 20)
 *
 *  The data is synthetic (fixed seed): each text holds three keywords of its
 *  class among noise words, in a temp dir removed at the end (KEEP_TMP=1
 *  keeps it). The model trains 2 epochs on 20 000 rows first (not timed as
 *  part of the evaluation). Figures, not a test: nothing asserts on time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_evaluate.h"
#include "ty_latency.h"
#include "ty_report.h"
#include "ty_train.h"

#define S_TRAIN_ROWS  20000
#define S_VAL_ROWS    2000
#define S_KEYWORDS    30
#define S_NOISE       500

static uint64_t
s_rand (uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int
s_dataset (const char *data, size_t rows, int classes)
{
    ty_dataset_writer_t *w = NULL;
    int rc = ty_dataset_writer_new (data, "bench", NULL, &w);
    if (rc != TY_OK)
        return rc;
    char **labels = calloc ((size_t) classes, sizeof *labels);
    if (!labels) {
        ty_dataset_writer_destroy (&w);
        return TY_ENOMEM;
    }
    for (int c = 0; c < classes; c++) {
        labels [c] = malloc (16);
        if (labels [c])
            snprintf (labels [c], 16, "class%02d", c);
    }
    uint64_t rng = 1;
    const size_t counts [3] = { S_TRAIN_ROWS, S_VAL_ROWS, rows };
    for (int s = 0; s < 3 && rc == TY_OK; s++)
        for (size_t i = 0; i < counts [s] && rc == TY_OK; i++) {
            int c = (int) (s_rand (&rng) % (uint64_t) classes);
            char text [256];
            snprintf (text, sizeof text, "w%d k%d_%d w%d w%d k%d_%d w%d k%d_%d w%d",
                      (int) (s_rand (&rng) % S_NOISE), c, (int) (s_rand (&rng) % S_KEYWORDS),
                      (int) (s_rand (&rng) % S_NOISE), (int) (s_rand (&rng) % S_NOISE),
                      c, (int) (s_rand (&rng) % S_KEYWORDS), (int) (s_rand (&rng) % S_NOISE),
                      (int) (s_rand (&rng) % (uint64_t) classes),
                      (int) (s_rand (&rng) % S_KEYWORDS), (int) (s_rand (&rng) % S_NOISE));
            Ty__Sample sample = TY__SAMPLE__INIT;
            sample.text = text;
            sample.labels = &labels [c];
            sample.n_labels = 1;
            sample.weight = 1;
            rc = ty_dataset_writer_add (w, (ty_split_t) s, &sample);
        }
    Ty__DatasetMeta meta = TY__DATASET_META__INIT;
    meta.kind = "text";
    meta.labels = labels;
    meta.n_labels = (size_t) classes;
    if (rc == TY_OK)
        rc = ty_dataset_writer_commit (&w, &meta, NULL, NULL);
    ty_dataset_writer_destroy (&w);
    for (int c = 0; c < classes; c++)
        free (labels [c]);
    free (labels);
    return rc;
}

/* Prints how long each phase of the job took (phase changes only). */
typedef struct {
    char   phase [32];
    double t0;
} s_phases_t;

static void
s_on_progress (void *arg, double fraction, const char *phase, const char *message)
{
    (void) fraction;
    (void) message;
    s_phases_t *p = arg;
    if (!phase || !strcmp (phase, p->phase))
        return;
    double now = ty_latency_now_ms ();
    if (p->phase [0])
        printf ("  phase %-14s %.3f s\n", p->phase, (now - p->t0) / 1e3);
    snprintf (p->phase, sizeof p->phase, "%s", phase);
    p->t0 = now;
}

int
main (int argc, char **argv)
{
    size_t rows = argc > 1 ? strtoul (argv [1], NULL, 10) : 100000;
    int classes = argc > 2 ? atoi (argv [2]) : 20;
    if (rows == 0 || classes < 2) {
        fprintf (stderr, "usage: bench_evaluate_rate [ROWS] [CLASSES >= 2]\n");
        return 2;
    }
    char dir [] = "/tmp/ty-bench-evaluate-XXXXXX";
    if (!mkdtemp (dir)) {
        perror ("mkdtemp");
        return 1;
    }
    int rc = s_dataset (dir, rows, classes);
    if (rc != TY_OK) {
        fprintf (stderr, "dataset: %s\n", ty_strerror (rc));
        return 1;
    }
    Ty__TrainSpec spec = TY__TRAIN_SPEC__INIT;
    spec.dataset = "bench";
    spec.model_kind = "textclf";
    spec.model_name = "bench";
    spec.epochs = 2;
    spec.dim = 50;
    spec.lr = 0.5;
    spec.word_ngrams = 2;
    spec.threads = 1;
    spec.seed = 1;
    ty_train_config_t cfg;
    char err [TY_TRAIN_ERR_LEN];
    ty_train_env_t env = { .data_dir = dir, .job_id = "bench", .attempt = 1,
                           .default_threads = 1 };
    ty_train_result_t res;
    if (ty_train_config_from_spec (&spec, &cfg, err, sizeof err) != TY_OK
        || ty_train_run (&cfg, &env, &res, err, sizeof err) != TY_OK) {
        fprintf (stderr, "train: %s\n", err);
        return 1;
    }
    Ty__EvaluateSpec ev = TY__EVALUATE_SPEC__INIT;
    ev.model = "bench";
    ev.latency_samples = 1000;
    ev.gate = "{\"min_accuracy\": 0.5, \"max_p95_latency_ms\": 5}";
    ty_evaluate_opts_t opts = { .data_dir = dir, .threads = 1, .job_id = "bench", .attempt = 1 };
    cJSON *doc = NULL;
    char path [4096], eerr [TY_EVALUATE_ERR_MAX];
    s_phases_t phases = { "", 0 };
    ty_evaluate_hooks_t hooks = { .progress = s_on_progress, .arg = &phases };
    double t0 = ty_latency_now_ms ();
    rc = ty_evaluate_run (&opts, &ev, &hooks, &doc, path, sizeof path, eerr, sizeof eerr);
    double wall = ty_latency_now_ms () - t0;
    if (rc != TY_OK) {
        fprintf (stderr, "evaluate: %s\n", eerr);
        return 1;
    }
    printf ("evaluate (textclf dim 50, bigrams, %d classes), test split of %zu rows, 1 thread\n",
            classes, rows);
    printf ("  evaluation rate      %.0f samples/s (batched inference, batch %.0f)\n",
            ty_report_number (doc, "inference.samples_per_s"),
            ty_report_number (doc, "inference.batch_size"));
    printf ("  inference            %.3f s\n", ty_report_number (doc, "inference.seconds"));
    printf ("  whole job            %.3f s (load, encode, inference, metrics, fit check,\n"
            "                       %.0f timed single predictions, analysis, metrics.json)\n",
            wall / 1e3, ty_report_number (doc, "latency.single.n"));
    printf ("  single-sample        mean %.3f ms  p50 %.3f  p95 %.3f  p99 %.3f\n",
            ty_report_number (doc, "latency.single.mean_ms"),
            ty_report_number (doc, "latency.single.p50_ms"),
            ty_report_number (doc, "latency.single.p95_ms"),
            ty_report_number (doc, "latency.single.p99_ms"));
    printf ("  peak RSS             %.1f MiB (%s)\n", ty_report_number (doc, "latency.peak_rss_mb"),
            ty_report_string (doc, "latency.peak_rss_scope"));
    char summary [512];
    printf ("  %s\n", ty_report_summary (doc, summary, sizeof summary));
    cJSON_Delete (doc);
    if (!getenv ("KEEP_TMP")) {
        char cmd [128];
        snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system (cmd) != 0)
            fprintf (stderr, "cannot remove %s\n", dir);
    }
    else
        printf ("  data kept in %s\n", dir);
    return 0;
}

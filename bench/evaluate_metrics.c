/*  bench_evaluate_metrics: the full classification report of the evaluate
 *  worker, timed, on N synthetic predictions (default 100 000 rows, 32
 *  classes with per-class probabilities).
 *
 *  "Full report" = argmax of the probabilities (the predictions), accuracy,
 *  precision/recall/F1/support per class, macro/micro/weighted averages,
 *  confusion matrix, the 10 most common confusions, one-vs-rest ROC AUC
 *  (per class and macro), log loss, the high-confidence share, and the JSON
 *  text of all that -- what metrics.json holds.
 *
 *  With --dump DIR it also writes the inputs (y_true.i32, proba.f64, raw
 *  little-endian, for numpy.fromfile) and its own answers (report.json) so
 *  that bench/evaluate can time scikit-learn on the very same predictions
 *  and check that both agree.
 *
 *  Prints one line on stdout:
 *      RESULT system=trainyard mode=metrics rows=N classes=K reps=R
 *             best_ms=... median_ms=... rows_per_s=... (from best_ms)
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ty_metrics.h"

#define DEFAULT_ROWS    100000
#define DEFAULT_CLASSES 32
#define DEFAULT_REPS    5
#define TOP_CONFUSIONS  10
#define HIGH_CONF       0.9
#define SIGNAL          2.5   /* logit boost of the true class: ~70 % accuracy */

typedef struct {
    size_t   n, k;
    int32_t *y_true;
    double  *proba;
} data_t;

typedef struct {
    ty_cls_metrics_t *cls;
    int32_t *y_pred;
    double  *auc;
    double   auc_macro, auc_macro_defined, log_loss, high_conf;
    char    *json;
} report_t;

static uint64_t s_rng = 0x9E3779B97F4A7C15ull;

/* splitmix64: small, fast, reproducible across platforms */
static uint64_t
s_next (void)
{
    uint64_t z = (s_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double
s_uniform (void)
{
    return (double) (s_next () >> 11) * (1.0 / 9007199254740992.0);
}

static double
s_normal (void)
{
    double u = s_uniform (), v = s_uniform ();
    return sqrt (-2.0 * log (u + 1e-300)) * cos (2.0 * M_PI * v);
}

static double
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static void
s_die (const char *what)
{
    fprintf (stderr, "bench_evaluate_metrics: %s\n", what);
    exit (1);
}

static void
s_generate (data_t *d)
{
    d->y_true = malloc (d->n * sizeof *d->y_true);
    d->proba = malloc (d->n * d->k * sizeof *d->proba);
    if (!d->y_true || !d->proba)
        s_die ("out of memory");
    for (size_t i = 0; i < d->n; i++) {
        /* mildly imbalanced classes: skew the uniform draw */
        double u = s_uniform ();
        int32_t y = (int32_t) (u * u * (double) d->k);
        d->y_true[i] = y;
        double *row = d->proba + i * d->k, max = -INFINITY, sum = 0;
        for (size_t c = 0; c < d->k; c++) {
            row[c] = s_normal () + ((int32_t) c == y ? SIGNAL * s_uniform () * 2 : 0);
            if (row[c] > max)
                max = row[c];
        }
        for (size_t c = 0; c < d->k; c++) {
            row[c] = exp (row[c] - max);
            sum += row[c];
        }
        for (size_t c = 0; c < d->k; c++)
            row[c] /= sum;
    }
}

/* The work timed: everything from the probabilities to the JSON text. */
static void
s_report (const data_t *d, report_t *r)
{
    ty_metrics_argmax_rows (d->proba, d->n, d->k, r->y_pred);
    if (ty_cls_metrics_compute (r->cls, d->y_true, r->y_pred, d->n) != 0)
        s_die ("cls_metrics_compute");
    if (ty_metrics_roc_auc_ovr (d->y_true, d->proba, d->n, d->k, r->auc,
                                &r->auc_macro, &r->auc_macro_defined) != 0)
        s_die ("roc_auc_ovr");
    if (ty_metrics_log_loss (d->y_true, d->proba, d->n, d->k, &r->log_loss) != 0)
        s_die ("log_loss");
    r->high_conf = ty_metrics_high_conf_share (d->proba, d->n, d->k, HIGH_CONF);

    cJSON *root = ty_cls_metrics_json (r->cls, NULL, TOP_CONFUSIONS);
    if (!root)
        s_die ("json");
    cJSON *auc = cJSON_AddArrayToObject (root, "roc_auc_per_class");
    for (size_t c = 0; auc && c < d->k; c++)
        cJSON_AddItemToArray (auc, cJSON_CreateNumber (r->auc[c]));
    ty_metrics_json_add_number (root, "roc_auc_ovr_macro", r->auc_macro);
    ty_metrics_json_add_number (root, "log_loss", r->log_loss);
    ty_metrics_json_add_number (root, "high_conf_share", r->high_conf);
    cJSON_AddNumberToObject (root, "high_conf_threshold", HIGH_CONF);
    free (r->json);
    r->json = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    if (!r->json)
        s_die ("json print");
}

static void
s_write (const char *dir, const char *name, const void *buf, size_t len)
{
    char path[4096];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen (path, "wb");
    if (!f || fwrite (buf, 1, len, f) != len || fclose (f) != 0)
        s_die (path);
}

static int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

int
main (int argc, char **argv)
{
    data_t d = { DEFAULT_ROWS, DEFAULT_CLASSES, NULL, NULL };
    size_t reps = DEFAULT_REPS;
    const char *dump = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--rows") == 0 && i + 1 < argc)
            d.n = strtoul (argv[++i], NULL, 10);
        else if (strcmp (argv[i], "--classes") == 0 && i + 1 < argc)
            d.k = strtoul (argv[++i], NULL, 10);
        else if (strcmp (argv[i], "--reps") == 0 && i + 1 < argc)
            reps = strtoul (argv[++i], NULL, 10);
        else if (strcmp (argv[i], "--dump") == 0 && i + 1 < argc)
            dump = argv[++i];
        else {
            fprintf (stderr, "usage: %s [--rows N] [--classes K] [--reps R] [--dump DIR]\n",
                     argv[0]);
            return 2;
        }
    }
    if (d.n == 0 || d.k < 2 || d.k > TY_METRICS_MAX_CLASSES || reps == 0)
        s_die ("bad arguments");
    s_generate (&d);

    report_t r = { 0 };
    r.cls = ty_cls_metrics_new (d.k);
    r.y_pred = malloc (d.n * sizeof *r.y_pred);
    r.auc = malloc (d.k * sizeof *r.auc);
    double *ms = malloc (reps * sizeof *ms);
    if (!r.cls || !r.y_pred || !r.auc || !ms)
        s_die ("out of memory");
    for (size_t i = 0; i < reps; i++) {
        double t0 = s_now_ms ();
        s_report (&d, &r);
        ms[i] = s_now_ms () - t0;
    }
    qsort (ms, reps, sizeof *ms, s_cmp);
    double best = ms[0], median = ms[reps / 2];

    if (dump) {
        s_write (dump, "y_true.i32", d.y_true, d.n * sizeof *d.y_true);
        s_write (dump, "proba.f64", d.proba, d.n * d.k * sizeof *d.proba);
        s_write (dump, "report.json", r.json, strlen (r.json));
    }
    fprintf (stderr, "trainyard: accuracy %.4f, macro F1 %.4f, OvR AUC %.4f, log loss %.4f\n",
             r.cls->accuracy, r.cls->macro.f1, r.auc_macro, r.log_loss);
    printf ("RESULT system=trainyard mode=metrics rows=%zu classes=%zu reps=%zu "
            "best_ms=%.2f median_ms=%.2f rows_per_s=%.0f\n",
            d.n, d.k, reps, best, median, (double) d.n / (best / 1e3));

    free (ms);
    free (r.json);
    free (r.auc);
    free (r.y_pred);
    ty_cls_metrics_destroy (&r.cls);
    free (d.y_true);
    free (d.proba);
    return 0;
}

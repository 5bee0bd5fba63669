/*  test_metrics: every metric of ty_metrics equals scikit-learn's, to 1e-9,
 *  on the fixtures in tests/fixtures/metrics (inputs + sklearn's answers,
 *  made by make_fixtures.py with Debian's python3-sklearn 1.2.1): a class
 *  never predicted, a class absent from y_true, a single-class input,
 *  binary, multi-class, tied scores, hard 0/1 probabilities (log-loss
 *  clipping), multi-label, regression (constant target, one sample),
 *  ranking with and without ties, latency percentiles. Then the edges the
 *  fixtures do not reach: bad input, ordering of confusions, AUC against its
 *  O(n^2) definition, JSON rendering. No Python needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"
#include "ty_metrics.h"

#define TOL 1e-9

#ifndef TY_METRICS_FIXTURES
#error "TY_METRICS_FIXTURES must name the fixture directory"
#endif

/* ---- fixture helpers -------------------------------------------------- */

static cJSON *
must_load (const char *path)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        fail_msg ("cannot open %s", path);
    if (fseek (f, 0, SEEK_END) != 0)
        fail_msg ("seek %s", path);
    long len = ftell (f);
    rewind (f);
    char *buf = malloc ((size_t) len + 1);
    assert_non_null (buf);
    if (fread (buf, 1, (size_t) len, f) != (size_t) len)
        fail_msg ("short read %s", path);
    buf[len] = 0;
    fclose (f);
    cJSON *doc = cJSON_Parse (buf);
    free (buf);
    if (!doc)
        fail_msg ("%s: not JSON", path);
    return doc;
}

static const cJSON *
must_get (const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive (obj, key);
    if (!it)
        fail_msg ("fixture lacks \"%s\"", key);
    return it;
}

/* null -> NaN (sklearn: undefined) */
static double
num_of (const cJSON *it)
{
    return cJSON_IsNull (it) ? NAN : it->valuedouble;
}

static double
must_num (const cJSON *obj, const char *key)
{
    return num_of (must_get (obj, key));
}

static double *
must_doubles (const cJSON *arr, size_t *n_out)
{
    size_t n = (size_t) cJSON_GetArraySize (arr);
    double *v = malloc ((n ? n : 1) * sizeof *v);
    assert_non_null (v);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach (it, arr) v[i++] = num_of (it);
    if (n_out)
        *n_out = n;
    return v;
}

static int32_t *
must_ints (const cJSON *arr, size_t *n_out)
{
    size_t n = (size_t) cJSON_GetArraySize (arr);
    int32_t *v = malloc ((n ? n : 1) * sizeof *v);
    assert_non_null (v);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach (it, arr) v[i++] = (int32_t) it->valueint;
    if (n_out)
        *n_out = n;
    return v;
}

static uint8_t *
must_bytes (const cJSON *arr, size_t *n_out)
{
    size_t n = (size_t) cJSON_GetArraySize (arr);
    uint8_t *v = malloc (n ? n : 1);
    assert_non_null (v);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach (it, arr) v[i++] = (uint8_t) it->valueint;
    if (n_out)
        *n_out = n;
    return v;
}

/* Equal to 1e-9, or both undefined (NaN). */
static void
check_close (const char *fx, const char *what, double got, double want)
{
    if (isnan (want)) {
        if (!isnan (got))
            fail_msg ("%s: %s = %.17g, sklearn: undefined", fx, what, got);
        return;
    }
    if (!(fabs (got - want) <= TOL))
        fail_msg ("%s: %s = %.17g, sklearn %.17g (diff %.3g)", fx, what, got, want,
                  fabs (got - want));
}

static void
check_prf (const char *fx, const char *avg, const ty_prf_t *got, const cJSON *want)
{
    char what[64];
    snprintf (what, sizeof what, "%s precision", avg);
    check_close (fx, what, got->precision, must_num (want, "precision"));
    snprintf (what, sizeof what, "%s recall", avg);
    check_close (fx, what, got->recall, must_num (want, "recall"));
    snprintf (what, sizeof what, "%s f1", avg);
    check_close (fx, what, got->f1, must_num (want, "f1"));
}

static void
check_per_class (const char *fx, const char *what, const double *got,
                 const cJSON *want, size_t k)
{
    assert_int_equal (cJSON_GetArraySize (want), k);
    size_t n;
    double *w = must_doubles (want, &n);
    for (size_t c = 0; c < k; c++) {
        char buf[64];
        snprintf (buf, sizeof buf, "%s[%zu]", what, c);
        check_close (fx, buf, got[c], w[c]);
    }
    free (w);
}

static void
check_counts (const char *fx, const char *what, const int64_t *got,
              const cJSON *want, size_t k)
{
    assert_int_equal (cJSON_GetArraySize (want), k);
    size_t c = 0;
    const cJSON *it;
    cJSON_ArrayForEach (it, want) {
        if (got[c] != (int64_t) it->valuedouble)
            fail_msg ("%s: %s[%zu] = %lld, sklearn %lld", fx, what, c,
                      (long long) got[c], (long long) it->valuedouble);
        c++;
    }
}

typedef void (*fixture_fn) (const char *name, const cJSON *in, const cJSON *exp);

/* Runs fn on every fixture of that kind; returns how many. */
static size_t
for_each_fixture (const char *kind, fixture_fn fn)
{
    DIR *d = opendir (TY_METRICS_FIXTURES);
    if (!d)
        fail_msg ("cannot open %s", TY_METRICS_FIXTURES);
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        size_t len = strlen (e->d_name);
        if (len < 5 || strcmp (e->d_name + len - 5, ".json") != 0)
            continue;
        char path[1024];
        snprintf (path, sizeof path, "%s/%s", TY_METRICS_FIXTURES, e->d_name);
        cJSON *doc = must_load (path);
        const cJSON *k = must_get (doc, "kind");
        if (cJSON_IsString (k) && strcmp (k->valuestring, kind) == 0) {
            fn (must_get (doc, "name")->valuestring, must_get (doc, "input"),
                must_get (doc, "expected"));
            count++;
        }
        cJSON_Delete (doc);
    }
    closedir (d);
    return count;
}

/* ---- classification --------------------------------------------------- */

static void
run_classification (const char *fx, const cJSON *in, const cJSON *exp)
{
    size_t k = (size_t) must_num (in, "n_classes"), n, n2, np;
    int32_t *y_true = must_ints (must_get (in, "y_true"), &n);
    int32_t *y_pred = must_ints (must_get (in, "y_pred"), &n2);
    double *proba = must_doubles (must_get (in, "proba"), &np);
    assert_int_equal (n, n2);
    assert_int_equal (np, n * k);

    ty_cls_metrics_t *m = ty_cls_metrics_new (k);
    assert_non_null (m);
    assert_int_equal (ty_cls_metrics_compute (m, y_true, y_pred, n), TY_OK);
    assert_int_equal (m->n_samples, n);
    check_close (fx, "accuracy", m->accuracy, must_num (exp, "accuracy"));
    check_per_class (fx, "precision", m->precision, must_get (exp, "precision"), k);
    check_per_class (fx, "recall", m->recall, must_get (exp, "recall"), k);
    check_per_class (fx, "f1", m->f1, must_get (exp, "f1"), k);
    check_counts (fx, "support", m->support, must_get (exp, "support"), k);
    check_prf (fx, "macro", &m->macro, must_get (exp, "macro"));
    check_prf (fx, "micro", &m->micro, must_get (exp, "micro"));
    check_prf (fx, "weighted", &m->weighted, must_get (exp, "weighted"));

    const cJSON *cm = must_get (exp, "confusion");
    assert_int_equal (cJSON_GetArraySize (cm), k);
    for (size_t a = 0; a < k; a++)
        check_counts (fx, "confusion row", m->confusion + a * k,
                      cJSON_GetArrayItem (cm, (int) a), k);

    /* most common confusions */
    size_t max = (size_t) must_num (exp, "top_confusions_max"), got_n = 0;
    ty_confusion_t *top = calloc (max, sizeof *top);
    assert_non_null (top);
    assert_int_equal (ty_cls_metrics_top_confusions (m, top, max, &got_n), TY_OK);
    const cJSON *want_top = must_get (exp, "top_confusions");
    assert_int_equal (got_n, cJSON_GetArraySize (want_top));
    for (size_t i = 0; i < got_n; i++) {
        const cJSON *w = cJSON_GetArrayItem (want_top, (int) i);
        assert_int_equal (top[i].actual, (int) must_num (w, "actual"));
        assert_int_equal (top[i].predicted, (int) must_num (w, "predicted"));
        assert_int_equal (top[i].count, (int64_t) must_num (w, "count"));
    }
    free (top);

    /* log loss (sklearn's eps clipping + renormalisation) */
    double ll = NAN;
    assert_int_equal (ty_metrics_log_loss (y_true, proba, n, k, &ll), TY_OK);
    check_close (fx, "log_loss", ll, must_num (exp, "log_loss"));

    /* ROC AUC: per class (binary one-vs-rest), macro, macro over defined */
    double *auc = malloc (k * sizeof *auc), macro = 0, macro_def = 0;
    assert_non_null (auc);
    assert_int_equal (ty_metrics_roc_auc_ovr (y_true, proba, n, k, auc, &macro,
                                              &macro_def), TY_OK);
    check_per_class (fx, "roc_auc", auc, must_get (exp, "roc_auc_per_class"), k);
    if (k == 2) {
        /* sklearn's binary AUC is the positive column's */
        uint8_t *pos = malloc (n);
        double *s1 = malloc (n * sizeof *s1), bin = 0;
        assert_non_null (pos);
        assert_non_null (s1);
        for (size_t i = 0; i < n; i++) {
            pos[i] = y_true[i] == 1;
            s1[i] = proba[i * 2 + 1];
        }
        assert_int_equal (ty_metrics_roc_auc_binary (pos, s1, n, &bin), TY_OK);
        check_close (fx, "roc_auc binary", bin, must_num (exp, "roc_auc_macro"));
        free (pos);
        free (s1);
    } else {
        check_close (fx, "roc_auc ovr macro", macro, must_num (exp, "roc_auc_macro"));
    }
    check_close (fx, "roc_auc macro over defined", macro_def,
                 must_num (exp, "roc_auc_macro_defined"));
    free (auc);

    const cJSON *hc;
    cJSON_ArrayForEach (hc, must_get (exp, "high_conf")) {
        double share = ty_metrics_high_conf_share (proba, n, k, must_num (hc, "threshold"));
        check_close (fx, "high_conf_share", share, must_num (hc, "share"));
    }

    int32_t *am = malloc (n * sizeof *am), *want_am;
    assert_non_null (am);
    ty_metrics_argmax_rows (proba, n, k, am);
    want_am = must_ints (must_get (exp, "argmax"), NULL);
    assert_memory_equal (am, want_am, n * sizeof *am);
    free (am);
    free (want_am);

    ty_cls_metrics_destroy (&m);
    assert_null (m);
    free (y_true);
    free (y_pred);
    free (proba);
}

static void
test_metrics_classification_matches_sklearn (void **state)
{
    (void) state;
    size_t n = for_each_fixture ("classification", run_classification);
    /* multiclass, never_predicted, absent_from_true, single_class, binary,
     * binary_ties, multiclass_ties, hard_probabilities, imbalanced_12 */
    assert_int_equal (n, 9);
}

/* ---- multi-label ------------------------------------------------------ */

static void
run_multilabel (const char *fx, const cJSON *in, const cJSON *exp)
{
    size_t l = (size_t) must_num (in, "n_labels"), nt, np;
    uint8_t *yt = must_bytes (must_get (in, "y_true"), &nt);
    uint8_t *yp = must_bytes (must_get (in, "y_pred"), &np);
    assert_int_equal (nt, np);
    size_t n = nt / l;
    ty_ml_metrics_t *m = ty_ml_metrics_new (l);
    assert_non_null (m);
    assert_int_equal (ty_ml_metrics_compute (m, yt, yp, n), TY_OK);
    check_close (fx, "subset_accuracy", m->subset_accuracy, must_num (exp, "subset_accuracy"));
    check_close (fx, "hamming_loss", m->hamming_loss, must_num (exp, "hamming_loss"));
    check_per_class (fx, "precision", m->precision, must_get (exp, "precision"), l);
    check_per_class (fx, "recall", m->recall, must_get (exp, "recall"), l);
    check_per_class (fx, "f1", m->f1, must_get (exp, "f1"), l);
    check_counts (fx, "support", m->support, must_get (exp, "support"), l);
    check_prf (fx, "macro", &m->macro, must_get (exp, "macro"));
    check_prf (fx, "micro", &m->micro, must_get (exp, "micro"));
    check_prf (fx, "weighted", &m->weighted, must_get (exp, "weighted"));
    ty_ml_metrics_destroy (&m);
    free (yt);
    free (yp);
}

static void
test_metrics_multilabel_matches_sklearn (void **state)
{
    (void) state;
    assert_int_equal (for_each_fixture ("multilabel", run_multilabel), 2);
}

/* ---- regression ------------------------------------------------------- */

static void
run_regression (const char *fx, const cJSON *in, const cJSON *exp)
{
    size_t n, n2;
    double *yt = must_doubles (must_get (in, "y_true"), &n);
    double *yp = must_doubles (must_get (in, "y_pred"), &n2);
    assert_int_equal (n, n2);
    ty_reg_metrics_t r;
    assert_int_equal (ty_metrics_regression (yt, yp, n, &r), TY_OK);
    check_close (fx, "mse", r.mse, must_num (exp, "mse"));
    check_close (fx, "rmse", r.rmse, must_num (exp, "rmse"));
    check_close (fx, "mae", r.mae, must_num (exp, "mae"));
    check_close (fx, "r2", r.r2, must_num (exp, "r2"));
    free (yt);
    free (yp);
}

static void
test_metrics_regression_matches_sklearn (void **state)
{
    (void) state;
    assert_int_equal (for_each_fixture ("regression", run_regression), 5);
}

/* ---- ranking ---------------------------------------------------------- */

static void
run_ranking (const char *fx, const cJSON *in, const cJSON *exp)
{
    size_t users, nn;
    size_t k = (size_t) must_num (in, "k"), n_neg = (size_t) must_num (in, "n_neg");
    double *pos = must_doubles (must_get (in, "pos"), &users);
    double *neg = must_doubles (must_get (in, "neg"), &nn);
    assert_int_equal (nn, users * n_neg);
    int32_t *rank = must_ints (must_get (exp, "rank"), NULL);
    for (size_t u = 0; u < users; u++)
        assert_int_equal (ty_metrics_rank_of_positive (pos[u], neg + u * n_neg, n_neg),
                          rank[u]);
    ty_rank_metrics_t r;
    assert_int_equal (ty_metrics_ranking (pos, neg, users, n_neg, k, &r), TY_OK);
    check_close (fx, "hit_rate", r.hit_rate, must_num (exp, "hit_rate"));
    check_close (fx, "ndcg", r.ndcg, must_num (exp, "ndcg"));
    free (pos);
    free (neg);
    free (rank);
}

static void
test_metrics_ranking_matches_reference (void **state)
{
    (void) state;
    assert_int_equal (for_each_fixture ("ranking", run_ranking), 2);
}

/* ---- latency ---------------------------------------------------------- */

static void
run_latency (const char *fx, const cJSON *in, const cJSON *exp)
{
    size_t n;
    double *t = must_doubles (must_get (in, "timings_ms"), &n);
    double first = t[0];
    ty_metrics_latency_t l;
    assert_int_equal (ty_metrics_latency_summarize (t, n, &l), TY_OK);
    assert_true (t[0] == first);   /* input untouched */
    assert_int_equal (l.n, n);
    check_close (fx, "mean", l.mean_ms, must_num (exp, "mean"));
    check_close (fx, "min", l.min_ms, must_num (exp, "min"));
    check_close (fx, "max", l.max_ms, must_num (exp, "max"));
    check_close (fx, "p50", l.p50_ms, must_num (exp, "p50"));
    check_close (fx, "p95", l.p95_ms, must_num (exp, "p95"));
    check_close (fx, "p99", l.p99_ms, must_num (exp, "p99"));
    check_close (fx, "throughput", l.throughput_per_s, must_num (exp, "throughput_per_s"));
    free (t);
}

static void
test_metrics_latency_matches_numpy (void **state)
{
    (void) state;
    assert_int_equal (for_each_fixture ("latency", run_latency), 3);
}

/* ---- edges ------------------------------------------------------------ */

static void
test_metrics_rejects_bad_input (void **state)
{
    (void) state;
    ty_cls_metrics_t *m = ty_cls_metrics_new (3);
    assert_non_null (m);
    int32_t t[] = { 0, 1, 2 }, p_bad[] = { 0, 3, 1 }, p_neg[] = { 0, -1, 1 };
    assert_int_equal (ty_cls_metrics_compute (m, t, t, 0), TY_EINVAL);
    assert_int_equal (ty_cls_metrics_compute (m, t, p_bad, 3), TY_EINVAL);
    assert_int_equal (ty_cls_metrics_compute (m, t, p_neg, 3), TY_EINVAL);
    assert_int_equal (m->confusion[0], 0);   /* left zeroed, not half-filled */
    ty_cls_metrics_destroy (&m);
    ty_cls_metrics_destroy (&m);   /* idempotent */
    assert_null (ty_cls_metrics_new (0));
    assert_null (ty_cls_metrics_new (TY_METRICS_MAX_CLASSES + 1));

    double proba[] = { 0.5, 0.5, NAN, 0.5, 0.2, 0.8 }, out;
    int32_t y[] = { 0, 1, 1 };
    assert_int_equal (ty_metrics_log_loss (y, proba, 3, 2, &out), TY_EINVAL);
    assert_int_equal (ty_metrics_log_loss (y, proba, 3, 1, &out), TY_EINVAL);
    assert_int_equal (ty_metrics_roc_auc_ovr (y, proba, 3, 2, NULL, &out, NULL),
                      TY_EINVAL);
    double inf_s[] = { 0.1, INFINITY };
    uint8_t pos[] = { 0, 1 };
    assert_int_equal (ty_metrics_roc_auc_binary (pos, inf_s, 2, &out), TY_EINVAL);
    assert_int_equal (ty_metrics_roc_auc_binary (pos, inf_s, 0, &out), TY_EINVAL);

    ty_reg_metrics_t r;
    double yt[] = { 1, 2 }, yp[] = { 1, NAN };
    assert_int_equal (ty_metrics_regression (yt, yp, 2, &r), TY_EINVAL);
    assert_int_equal (ty_metrics_regression (yt, yt, 0, &r), TY_EINVAL);

    ty_rank_metrics_t rk;
    assert_int_equal (ty_metrics_ranking (yt, yt, 1, 1, 0, &rk), TY_EINVAL);
    ty_metrics_latency_t l;
    double neg_t[] = { 1.0, -2.0 };
    assert_int_equal (ty_metrics_latency_summarize (neg_t, 2, &l), TY_EINVAL);
    assert_int_equal (ty_metrics_latency_summarize (neg_t, 0, &l), TY_EINVAL);
}

/* Ties in count are broken by actual then predicted class, so the report
 * is the same run after run. */
static void
test_metrics_top_confusions_order (void **state)
{
    (void) state;
    /* confusions: (2->0) x3, (1->0) x2, (0->1) x2, (0->2) x1 */
    int32_t t[] = { 2, 2, 2, 1, 1, 0, 0, 0, 0 };
    int32_t p[] = { 0, 0, 0, 0, 0, 1, 1, 2, 0 };
    ty_cls_metrics_t *m = ty_cls_metrics_new (3);
    assert_non_null (m);
    assert_int_equal (ty_cls_metrics_compute (m, t, p, 9), TY_OK);
    ty_confusion_t top[3];
    size_t n = 0;
    assert_int_equal (ty_cls_metrics_top_confusions (m, top, 3, &n), TY_OK);
    assert_int_equal (n, 3);
    assert_true (top[0].actual == 2 && top[0].predicted == 0 && top[0].count == 3);
    assert_true (top[1].actual == 0 && top[1].predicted == 1 && top[1].count == 2);
    assert_true (top[2].actual == 1 && top[2].predicted == 0 && top[2].count == 2);
    ty_confusion_t all[10];
    assert_int_equal (ty_cls_metrics_top_confusions (m, all, 10, &n), TY_OK);
    assert_int_equal (n, 4);
    assert_true (all[3].actual == 0 && all[3].predicted == 2 && all[3].count == 1);
    ty_cls_metrics_destroy (&m);
}

/* O(n^2) definition of AUC: pairs with the positive above, ties 1/2. */
static double
brute_auc (const uint8_t *pos, const double *s, size_t n)
{
    double num = 0, np = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        np += pos[i];
        nn += !pos[i];
        if (!pos[i])
            continue;
        for (size_t j = 0; j < n; j++)
            if (!pos[j])
                num += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
    }
    return num / (np * nn);
}

/* The bucketed search against the O(n^2) definition, on negative, zero,
 * -0.0, tiny and huge scores with heavy ties, with positives rare (they
 * are the sorted side), common (the negatives are), and balanced. */
static void
test_metrics_auc_equals_pairwise_definition (void **state)
{
    (void) state;
    enum { N = 700 };
    static const double palette[] = { -1e300, -3.5, -1e-300, -0.0, 0.0, 1e-300,
                                      0.25, 0.5, 1.0, 7e10, 1e300 };
    static const unsigned pos_per_16[] = { 1, 8, 15 };
    uint8_t pos[N];
    double s[N];
    uint32_t x = 12345;
    for (size_t v = 0; v < sizeof pos_per_16 / sizeof *pos_per_16; v++) {
        for (int i = 0; i < N; i++) {
            x = x * 1664525u + 1013904223u;
            pos[i] = ((x >> 16) & 15) < pos_per_16[v];
            x = x * 1664525u + 1013904223u;
            s[i] = (x >> 8) % 3 == 0 ? palette[(x >> 12) % 11]
                                     : (double) (int32_t) (x >> 4) / 1e6;
        }
        double got;
        assert_int_equal (ty_metrics_roc_auc_binary (pos, s, N, &got), TY_OK);
        check_close ("pairwise", "auc", got, brute_auc (pos, s, N));
    }
    /* all scores equal: 0.5; one class only: undefined */
    double same[4] = { 0.3, 0.3, 0.3, 0.3 };
    uint8_t mix[4] = { 0, 1, 0, 1 }, ones[4] = { 1, 1, 1, 1 };
    double got;
    assert_int_equal (ty_metrics_roc_auc_binary (mix, same, 4, &got), TY_OK);
    assert_true (got == 0.5);
    assert_int_equal (ty_metrics_roc_auc_binary (ones, same, 4, &got), TY_OK);
    assert_true (isnan (got));
}

/* One-vs-rest, class by class, equals the binary definition, on more rows
 * than the fixtures have (so the bucket index of every class is used) and
 * scores on a coarse grid (ties across the index's slices). */
static void
test_metrics_auc_ovr_equals_per_class_definition (void **state)
{
    (void) state;
    enum { N = 1500, K = 5 };
    int32_t *y = malloc (N * sizeof *y);
    double *sc = malloc (N * K * sizeof *sc), *col = malloc (N * sizeof *col);
    uint8_t *pos = malloc (N);
    assert_true (y && sc && col && pos);
    uint32_t x = 777;
    for (int i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        y[i] = (int32_t) ((x >> 16) % (K - 1));   /* class K-1 never true */
        for (int c = 0; c < K; c++) {
            x = x * 1664525u + 1013904223u;
            sc[i * K + c] = (double) ((x >> 20) % 50) / 49.0 + (c == y[i] ? 0.3 : 0.0);
        }
    }
    double per[K], macro, macro_def;
    assert_int_equal (ty_metrics_roc_auc_ovr (y, sc, N, K, per, &macro, &macro_def), TY_OK);
    double sum = 0;
    for (int c = 0; c < K - 1; c++) {
        for (int i = 0; i < N; i++) {
            pos[i] = y[i] == c;
            col[i] = sc[i * K + c];
        }
        check_close ("ovr", "auc", per[c], brute_auc (pos, col, N));
        sum += per[c];
    }
    assert_true (isnan (per[K - 1]));
    assert_true (isnan (macro));                    /* sklearn would refuse */
    check_close ("ovr", "macro over defined", macro_def, sum / (K - 1));
    free (y);
    free (sc);
    free (col);
    free (pos);
}

/* Pairwise summation: exact on integers, and far closer than a naive sum
 * on a long run of 0.1s. */
static void
test_metrics_sum_pairwise (void **state)
{
    (void) state;
    enum { N = 100003 };
    double *x = malloc (N * sizeof *x);
    assert_non_null (x);
    for (int i = 0; i < N; i++)
        x[i] = (double) (i % 17);
    double want = 0;
    for (int i = 0; i < N; i++)
        want += (double) (i % 17);
    assert_true (ty_metrics_sum (x, N) == want);
    for (int i = 0; i < N; i++)
        x[i] = 0.1;
    assert_true (fabs (ty_metrics_sum (x, N) - N * 0.1) < 1e-9);
    assert_true (ty_metrics_sum (x, 0) == 0.0);
    free (x);
}

static void
test_metrics_percentile_definition (void **state)
{
    (void) state;
    double v[] = { 1, 2, 3, 4 };
    assert_true (ty_metrics_percentile_sorted (v, 4, 50) == 2.5);
    assert_true (ty_metrics_percentile_sorted (v, 4, 0) == 1);
    assert_true (ty_metrics_percentile_sorted (v, 4, 100) == 4);
    check_close ("pct", "p95", ty_metrics_percentile_sorted (v, 4, 95), 3.85);
    assert_true (isnan (ty_metrics_percentile_sorted (v, 0, 50)));
    assert_true (isnan (ty_metrics_percentile_sorted (v, 4, 101)));
}

static void
test_metrics_json_report (void **state)
{
    (void) state;
    int32_t t[] = { 0, 0, 1, 1, 2 }, p[] = { 0, 1, 1, 1, 1 };
    ty_cls_metrics_t *m = ty_cls_metrics_new (3);
    assert_non_null (m);
    assert_int_equal (ty_cls_metrics_compute (m, t, p, 5), TY_OK);
    const char *names[] = { "cat", "dog", "bird" };
    cJSON *j = ty_cls_metrics_json (m, names, 5);
    assert_non_null (j);
    char *text = cJSON_PrintUnformatted (j);
    assert_non_null (text);
    cJSON *back = cJSON_Parse (text);
    assert_non_null (back);
    check_close ("json", "accuracy", must_num (back, "accuracy"), 0.6);
    const cJSON *pc = must_get (back, "per_class");
    assert_int_equal (cJSON_GetArraySize (pc), 3);
    const cJSON *bird = cJSON_GetArrayItem (pc, 2);
    assert_string_equal (must_get (bird, "name")->valuestring, "bird");
    check_close ("json", "bird recall", must_num (bird, "recall"), 0.0);
    const cJSON *tc = must_get (back, "top_confusions");
    assert_int_equal (cJSON_GetArraySize (tc), 2);
    assert_string_equal (must_get (cJSON_GetArrayItem (tc, 0), "actual_name")->valuestring,
                         "cat");
    const cJSON *row1 = cJSON_GetArrayItem (must_get (back, "confusion_matrix"), 1);
    assert_int_equal ((int) cJSON_GetArrayItem (row1, 1)->valuedouble, 2);
    free (text);
    cJSON_Delete (back);
    cJSON_Delete (j);
    ty_cls_metrics_destroy (&m);

    ty_reg_metrics_t r = { 1.0, 1.0, 1.0, NAN };
    cJSON *rj = ty_reg_metrics_json (&r);
    assert_non_null (rj);
    assert_true (cJSON_IsNull (must_get (rj, "r2")));   /* NaN is null */
    cJSON_Delete (rj);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_metrics_classification_matches_sklearn),
        cmocka_unit_test (test_metrics_multilabel_matches_sklearn),
        cmocka_unit_test (test_metrics_regression_matches_sklearn),
        cmocka_unit_test (test_metrics_ranking_matches_reference),
        cmocka_unit_test (test_metrics_latency_matches_numpy),
        cmocka_unit_test (test_metrics_rejects_bad_input),
        cmocka_unit_test (test_metrics_top_confusions_order),
        cmocka_unit_test (test_metrics_auc_equals_pairwise_definition),
        cmocka_unit_test (test_metrics_auc_ovr_equals_per_class_definition),
        cmocka_unit_test (test_metrics_sum_pairwise),
        cmocka_unit_test (test_metrics_percentile_definition),
        cmocka_unit_test (test_metrics_json_report),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

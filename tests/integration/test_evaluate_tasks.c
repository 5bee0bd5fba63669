/*  test_evaluate_tasks: the evaluate job in-process (ty_evaluate_run) on
 *  every task the models have, each against real LMDB data and a real
 *  model version trained here with the train worker's code:
 *    multi-label (textclf)   subset accuracy and hamming loss equal a direct
 *                            computation from the model's probabilities
 *    regression (mlp)        MSE, MAE and R2 likewise
 *    ranking (ncf)           HR@K and NDCG@K in range, NDCG <= HR, one
 *                            entry per held-out interaction, and the same
 *                            figures on a second run (seeded negatives)
 *  and the latency benchmark (ty_latency) on a counting callback.
 *  No cluster: the job's logic is what is under test here;
 *  test_evaluate.c covers the worker in a cluster. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "ty_batch.h"
#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_evaluate.h"
#include "ty_latency.h"
#include "ty_report.h"
#include "ty_torch.h"
#include "ty_train.h"

#define S_NLABELS   3
#define S_FEATURES  4

static const char *s_labels [S_NLABELS] = { "red", "green", "blue" };

typedef struct {
    char dir [PATH_MAX];     /* temp dir = data dir */
} s_fix_t;

static uint64_t
s_rand (uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double
s_unit (uint64_t *s)
{
    return (double) (s_rand (s) >> 11) / 9007199254740992.0;
}

static int
s_setup (void **state)
{
    s_fix_t *f = calloc (1, sizeof *f);
    if (!f)
        return -1;
    snprintf (f->dir, sizeof f->dir, "/tmp/ty-test-evaluate-tasks-XXXXXX");
    if (!mkdtemp (f->dir)) {
        free (f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fix_t *f = *state;
    char cmd [PATH_MAX + 16];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (!getenv ("TY_TEST_KEEP") && system (cmd) != 0)
        fprintf (stderr, "cannot remove %s\n", f->dir);
    free (f);
    return 0;
}

static void
s_commit (ty_dataset_writer_t **w, const char *kind, const char *const *labels, size_t n)
{
    Ty__DatasetMeta meta = TY__DATASET_META__INIT;
    meta.kind = (char *) kind;
    meta.labels = (char **) labels;
    meta.n_labels = n;
    int rc = ty_dataset_writer_commit (w, &meta, NULL, NULL);
    if (rc != TY_OK)
        fail_msg ("commit: %s", ty_strerror (rc));
}

static ty_dataset_writer_t *
s_writer (const char *data, const char *name)
{
    ty_dataset_writer_t *w = NULL;
    int rc = ty_dataset_writer_new (data, name, NULL, &w);
    if (rc != TY_OK)
        fail_msg ("writer: %s", ty_strerror (rc));
    return w;
}

static void
s_train (const char *data, Ty__TrainSpec *spec)
{
    spec->threads = 1;
    spec->seed = 11;
    ty_train_config_t cfg;
    char err [TY_TRAIN_ERR_LEN];
    if (ty_train_config_from_spec (spec, &cfg, err, sizeof err) != TY_OK)
        fail_msg ("train config: %s", err);
    ty_train_env_t env;
    memset (&env, 0, sizeof env);
    env.data_dir = data;
    env.job_id = "test-evaluate-tasks";
    env.attempt = 1;
    env.default_threads = 1;
    ty_train_result_t res;
    if (ty_train_run (&cfg, &env, &res, err, sizeof err) != TY_OK)
        fail_msg ("train: %s", err);
}

static cJSON *
s_must_evaluate (const char *data, Ty__EvaluateSpec *ev)
{
    ty_evaluate_opts_t opts = { .data_dir = data, .threads = 1, .job_id = "j", .attempt = 1 };
    cJSON *doc = NULL;
    char err [TY_EVALUATE_ERR_MAX], path [PATH_MAX];
    if (!ev->latency_samples)
        ev->latency_samples = 20;
    int rc = ty_evaluate_run (&opts, ev, NULL, &doc, path, sizeof path, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("evaluate %s: %s", ev->model, err);
    assert_int_equal (access (path, F_OK), 0);
    return doc;
}

/* Test-split outputs of a model version, computed here: n x width floats. */
static float *
s_predict_test (const char *data, const char *model_spec, const char *dataset,
                ty_batch_set_t **set_out, ty_batch_feat_t **feat_out, ty_dataset_t **ds_out,
                size_t *n_out, int64_t *width_out)
{
    char dir [PATH_MAX], path [PATH_MAX + 16], err [256];
    uint64_t v;
    assert_int_equal (ty_report_model_dir (data, model_spec, dir, sizeof dir, &v, NULL), TY_OK);
    snprintf (path, sizeof path, "%s/model.pt", dir);
    ty_torch_model_t *m = NULL;
    assert_int_equal (ty_torch_load (path, 1, &m, err, sizeof err), TY_OK);
    assert_int_equal (ty_batch_feat_load (dir, feat_out, err, sizeof err), TY_OK);
    assert_int_equal (ty_dataset_open (data, dataset, ds_out), TY_OK);
    assert_int_equal (ty_batch_set_new (*feat_out, *ds_out, TY_SPLIT_TEST, 0, set_out, err,
                                        sizeof err), TY_OK);
    size_t n = ty_batch_set_count (*set_out);
    int64_t width = ty_torch_output_width (m);
    float *out = calloc (n * (size_t) width, sizeof *out);
    assert_non_null (out);
    for (size_t i = 0; i < n; i++) {
        uint64_t idx = i;
        ty_torch_batch_t b;
        assert_int_equal (ty_batch_set_gather (*set_out, &idx, 1, NULL, &b), TY_OK);
        assert_int_equal (ty_torch_predict (m, &b, out + i * (size_t) width, (size_t) width), TY_OK);
    }
    ty_torch_destroy (&m);
    *n_out = n;
    *width_out = width;
    return out;
}

/* ---- multi-label ----------------------------------------------------------------- */

static void
test_evaluate_multilabel (void **state)
{
    s_fix_t *f = *state;
    static const char *words [S_NLABELS][3] = {
        { "cherry", "tomato", "brick" }, { "grass", "leaf", "frog" }, { "sky", "sea", "ice" } };
    ty_dataset_writer_t *w = s_writer (f->dir, "colors");
    uint64_t rng = 5;
    const size_t counts [3] = { 120, 30, 40 };
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < counts [s]; i++) {
            char text [128] = "", *lab [S_NLABELS];
            size_t nl = 0, used = 0;
            for (int c = 0; c < S_NLABELS; c++)
                if (s_unit (&rng) < 0.45 || (c == S_NLABELS - 1 && nl == 0)) {
                    lab [nl++] = (char *) s_labels [c];
                    used += (size_t) snprintf (text + used, sizeof text - used, "%s ",
                                               words [c][s_rand (&rng) % 3]);
                }
            snprintf (text + used, sizeof text - used, "n%d", (int) (s_rand (&rng) % 5));
            Ty__Sample sample = TY__SAMPLE__INIT;
            sample.text = text;
            sample.labels = lab;
            sample.n_labels = nl;
            sample.weight = 1;
            assert_int_equal (ty_dataset_writer_add (w, (ty_split_t) s, &sample), TY_OK);
        }
    s_commit (&w, "text", s_labels, S_NLABELS);
    Ty__TrainSpec spec = TY__TRAIN_SPEC__INIT;
    spec.dataset = "colors";
    spec.model_kind = "textclf";
    spec.model_name = "ml";
    spec.epochs = 8;
    spec.dim = 8;
    spec.lr = 0.5;
    spec.bucket = 1000;
    spec.batch_size = 8;
    s_train (f->dir, &spec);

    Ty__EvaluateSpec ev = TY__EVALUATE_SPEC__INIT;
    ev.model = "ml";
    cJSON *doc = s_must_evaluate (f->dir, &ev);
    assert_string_equal (ty_report_string (doc, "task"), "multilabel");

    ty_batch_set_t *set;
    ty_batch_feat_t *feat;
    ty_dataset_t *ds;
    size_t n;
    int64_t k;
    float *p = s_predict_test (f->dir, "ml@1", "colors", &set, &feat, &ds, &n, &k);
    assert_int_equal (k, S_NLABELS);
    size_t exact = 0, wrong_cells = 0;
    for (size_t i = 0; i < n; i++) {
        int truth [S_NLABELS] = { 0 };
        size_t nl;
        const int64_t *l = ty_batch_set_labels (set, i, &nl);
        for (size_t j = 0; j < nl; j++)
            truth [l [j]] = 1;
        int ok = 1;
        for (int c = 0; c < S_NLABELS; c++) {
            int pred = p [i * S_NLABELS + c] >= 0.5f;
            ok &= pred == truth [c];
            wrong_cells += pred != truth [c];
        }
        exact += ok;
    }
    assert_int_equal ((size_t) ty_report_number (doc, "n_samples"), n);
    assert_true (fabs (ty_report_number (doc, "multilabel.subset_accuracy")
                       - (double) exact / (double) n) < 1e-9);
    assert_true (fabs (ty_report_number (doc, "multilabel.hamming_loss")
                       - (double) wrong_cells / (double) (n * S_NLABELS)) < 1e-9);
    assert_true (ty_report_number (doc, "multilabel.subset_accuracy") > 0.5);
    assert_true (isfinite (ty_report_number (doc, "multilabel.micro.f1")));
    free (p);
    ty_batch_set_destroy (&set);
    ty_batch_feat_destroy (&feat);
    ty_dataset_destroy (&ds);
    cJSON_Delete (doc);
}

/* ---- regression ------------------------------------------------------------------ */

static void
test_evaluate_regression (void **state)
{
    s_fix_t *f = *state;
    ty_dataset_writer_t *w = s_writer (f->dir, "frames");
    uint64_t rng = 9;
    const size_t counts [3] = { 200, 40, 50 };
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < counts [s]; i++) {
            float x [S_FEATURES];
            for (int d = 0; d < S_FEATURES; d++)
                x [d] = (float) s_unit (&rng);
            Ty__Sample sample = TY__SAMPLE__INIT;
            sample.features = x;
            sample.n_features = S_FEATURES;
            sample.has_target = 1;
            sample.target = 0.6 * x [0] + 0.3 * x [1] + 0.1 * s_unit (&rng);
            sample.weight = 1;
            assert_int_equal (ty_dataset_writer_add (w, (ty_split_t) s, &sample), TY_OK);
        }
    s_commit (&w, "features", NULL, 0);
    Ty__TrainSpec spec = TY__TRAIN_SPEC__INIT;
    spec.dataset = "frames";
    spec.model_kind = "mlp";
    spec.model_name = "reg";
    spec.epochs = 20;
    spec.lr = 0.01;
    spec.optimizer = "adam";
    uint32_t hidden [1] = { 16 };
    spec.hidden = hidden;
    spec.n_hidden = 1;
    spec.batch_size = 16;
    s_train (f->dir, &spec);

    Ty__EvaluateSpec ev = TY__EVALUATE_SPEC__INIT;
    ev.model = "reg";
    cJSON *doc = s_must_evaluate (f->dir, &ev);
    assert_string_equal (ty_report_string (doc, "task"), "regression");

    ty_batch_set_t *set;
    ty_batch_feat_t *feat;
    ty_dataset_t *ds;
    size_t n;
    int64_t k;
    float *p = s_predict_test (f->dir, "reg", "frames", &set, &feat, &ds, &n, &k);
    double se = 0, ae = 0, mean = 0, tot = 0;
    for (size_t i = 0; i < n; i++)
        mean += ty_batch_set_target (set, i) / (double) n;
    for (size_t i = 0; i < n; i++) {
        double y = ty_batch_set_target (set, i), d = y - p [i];
        se += d * d;
        ae += fabs (d);
        tot += (y - mean) * (y - mean);
    }
    assert_true (fabs (ty_report_number (doc, "regression.mse") - se / (double) n) < 1e-9);
    assert_true (fabs (ty_report_number (doc, "regression.mae") - ae / (double) n) < 1e-9);
    assert_true (fabs (ty_report_number (doc, "regression.r2") - (1 - se / tot)) < 1e-9);
    assert_true (ty_report_number (doc, "regression.r2") > 0.5);    /* it learnt the trend */
    /* a classification gate check cannot be measured on a regressor: FAIL, not a pass */
    ev.gate = "{\"min_accuracy\": 0.5}";
    cJSON_Delete (doc);
    doc = s_must_evaluate (f->dir, &ev);
    assert_string_equal (ty_report_string (doc, "gate.verdict"), "FAIL");
    free (p);
    ty_batch_set_destroy (&set);
    ty_batch_feat_destroy (&feat);
    ty_dataset_destroy (&ds);
    cJSON_Delete (doc);
}

/* ---- ranking ----------------------------------------------------------------- */

static void
test_evaluate_ranking (void **state)
{
    s_fix_t *f = *state;
    enum { USERS = 30, ITEMS = 60, PER_USER = 8 };
    ty_dataset_writer_t *w = s_writer (f->dir, "clicks");
    uint64_t rng = 3;
    size_t ntest = 0;
    for (int u = 0; u < USERS; u++) {
        /* each user likes items of its own group (users u and u + 3 share one) */
        for (int j = 0; j < PER_USER; j++) {
            char user [16], item [16];
            snprintf (user, sizeof user, "u%d", u);
            snprintf (item, sizeof item, "i%d", (int) ((u % 3) * 20 + s_rand (&rng) % 20));
            Ty__Interaction in = TY__INTERACTION__INIT;
            in.user = user;
            in.item = item;
            Ty__Sample sample = TY__SAMPLE__INIT;
            sample.interaction = &in;
            sample.weight = 1;
            ty_split_t split = j == 0 ? TY_SPLIT_TEST : j == 1 ? TY_SPLIT_VAL : TY_SPLIT_TRAIN;
            ntest += split == TY_SPLIT_TEST;
            assert_int_equal (ty_dataset_writer_add (w, split, &sample), TY_OK);
        }
    }
    /* every item seen in training, so no test pair is unknown */
    for (int i = 0; i < ITEMS; i++) {
        char item [16];
        snprintf (item, sizeof item, "i%d", i);
        Ty__Interaction in = TY__INTERACTION__INIT;
        in.user = "u0";
        in.item = item;
        Ty__Sample sample = TY__SAMPLE__INIT;
        sample.interaction = &in;
        sample.weight = 1;
        assert_int_equal (ty_dataset_writer_add (w, TY_SPLIT_TRAIN, &sample), TY_OK);
    }
    s_commit (&w, "interaction", NULL, 0);
    Ty__TrainSpec spec = TY__TRAIN_SPEC__INIT;
    spec.dataset = "clicks";
    spec.model_kind = "ncf";
    spec.model_name = "rec";
    spec.epochs = 5;
    spec.dim = 8;
    uint32_t hidden [1] = { 8 };
    spec.hidden = hidden;
    spec.n_hidden = 1;
    spec.lr = 0.01;
    spec.optimizer = "adam";
    spec.batch_size = 32;
    s_train (f->dir, &spec);

    Ty__EvaluateSpec ev = TY__EVALUATE_SPEC__INIT;
    ev.model = "rec";
    ev.negatives = 20;
    ev.top_k = 5;
    cJSON *doc = s_must_evaluate (f->dir, &ev);
    assert_string_equal (ty_report_string (doc, "task"), "ranking");
    double hr = ty_report_number (doc, "ranking.hit_rate");
    double ndcg = ty_report_number (doc, "ranking.ndcg");
    assert_true (hr >= 0 && hr <= 1);
    assert_true (ndcg >= 0 && ndcg <= hr + 1e-12);
    assert_int_equal ((int) ty_report_number (doc, "ranking.k"), 5);
    assert_int_equal ((int) ty_report_number (doc, "ranking.n_negatives"), 20);
    assert_int_equal ((size_t) ty_report_number (doc, "ranking.n_users"), ntest);
    /* seeded negatives: a second run gives the same figures */
    cJSON *again = s_must_evaluate (f->dir, &ev);
    assert_true (ty_report_number (again, "ranking.hit_rate") == hr);
    assert_true (ty_report_number (again, "ranking.ndcg") == ndcg);
    cJSON_Delete (again);
    cJSON_Delete (doc);
}

/* ---- the latency benchmark ----------------------------------------------------------- */

typedef struct {
    size_t calls, singles, batched, last_first, max_end;
    int    fail_at;
} s_count_t;

static int
s_count_fn (void *arg, size_t first, size_t n)
{
    s_count_t *c = arg;
    c->calls++;
    if (c->fail_at && (int) c->calls == c->fail_at)
        return TY_EINTERNAL;
    if (n == 1)
        c->singles++;
    else
        c->batched += n;
    c->last_first = first;
    if (first + n > c->max_end)
        c->max_end = first + n;
    return TY_OK;
}

static void
test_evaluate_latency_bench (void **state)
{
    (void) state;
    ty_latency_opts_t o;
    ty_latency_opts_init (&o);
    o.warmup = 5;
    o.samples = 40;
    o.pool = 7;
    o.batch_size = 4;
    o.batch_rounds = 3;
    s_count_t c = { 0 };
    ty_latency_bench_t b;
    assert_int_equal (ty_latency_run (&o, s_count_fn, &c, &b), TY_OK);
    assert_int_equal (c.singles, 45);            /* warm-up + timed */
    assert_int_equal (c.batched, 12);
    assert_true (c.max_end <= 7);                /* never past the pool */
    assert_int_equal (b.single.n, 40);
    assert_int_equal (b.warmup, 5);
    assert_true (b.single.p50_ms <= b.single.p95_ms && b.single.p95_ms <= b.single.p99_ms);
    assert_true (b.single.min_ms >= 0);
    assert_int_equal (b.batch_size, 4);
    assert_true (b.batch_throughput_per_s > 0);
    assert_true (b.peak_rss_mb > 1.0);
    /* the callback's error stops the run and comes back */
    s_count_t bad = { .fail_at = 10 };
    assert_int_equal (ty_latency_run (&o, s_count_fn, &bad, &b), TY_EINTERNAL);
    assert_int_equal (bad.calls, 10);
    o.samples = 0;
    assert_int_equal (ty_latency_run (&o, s_count_fn, &c, &b), TY_EINVAL);
    /* the per-job peak: reset, then it is at most the process's current size + what we add */
    ty_latency_rss_reset_peak ();
    double before = ty_latency_peak_rss_mb ();
    size_t big = 64u << 20;
    char *p = malloc (big);
    assert_non_null (p);
    memset (p, 1, big);
    double after = ty_latency_peak_rss_mb ();
    free (p);
    assert_true (after >= before + 60.0);
}

int
main (void)
{
    setenv ("OPENBLAS_NUM_THREADS", "1", 1);
    setenv ("OMP_NUM_THREADS", "1", 1);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_evaluate_multilabel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_evaluate_regression, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_evaluate_ranking, s_setup, s_teardown),
        cmocka_unit_test (test_evaluate_latency_bench),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

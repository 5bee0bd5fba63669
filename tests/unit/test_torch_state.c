/*  test_torch_state: what the train worker relies on besides learning.
 *  Determinism (same seed, 1 thread -> identical losses), save -> load ->
 *  identical predictions, resume (2 epochs + save/load + 2 epochs == 4
 *  epochs, bitwise), and bad input answered with a status and a message
 *  that names the problem, never a crash. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ty_error.h"
#include "ty_negsample.h"
#include "ty_torch.h"

#define ERRLEN 256
#define N      96
#define DIM    6
#define BATCH  16
#define EPOCHS 4

static float s_x[N * DIM];
static int64_t s_y[N];

static void
s_make_data (void)
{
    uint64_t rng = 5;
    for (int i = 0; i < N; i++) {
        s_y[i] = i % 3;
        for (int d = 0; d < DIM; d++)
            s_x[i * DIM + d] = (float) ((d == s_y[i]) * 2.0
                                        + (double) (ty_negsample_rand (&rng) >> 11) / 9e15);
    }
}

static ty_torch_model_t *
must_new (const ty_torch_params_t *p)
{
    char err[ERRLEN];
    ty_torch_model_t *m = NULL;
    if (ty_torch_new (p, &m, err, sizeof err) != TY_OK)
        fail_msg ("ty_torch_new: %s", err);
    return m;
}

/* An mlp with dropout and Adam: both the generator and optimizer state
 * must be reproduced for the checks below to hold. */
static void
s_params (ty_torch_params_t *p)
{
    ty_torch_params_init (p, TY_TORCH_MLP);
    p->mlp.input_dim = DIM;
    p->mlp.nhidden = 2;
    p->mlp.hidden[0] = 12;
    p->mlp.hidden[1] = 8;
    p->mlp.dropout = 0.3;
    p->mlp.noutputs = 3;
    p->lr = 0.01;
    p->seed = 42;
}

/* One epoch in an order driven by (seed, epoch), as the train worker does;
 * the mean loss per batch goes to losses (may be NULL). */
static void
s_epoch (ty_torch_model_t *m, int epoch, double *losses)
{
    int64_t idx[N];
    uint64_t rng = 1000 + (uint64_t) epoch;
    for (int64_t i = 0; i < N; i++)
        idx[i] = i;
    for (int64_t i = N - 1; i > 0; i--) {
        int64_t j = (int64_t) ty_negsample_below (&rng, (uint64_t) i + 1), t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    float bx[BATCH * DIM];
    int64_t by[BATCH];
    for (int s = 0; s < N; s += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            memcpy (bx + i * DIM, s_x + idx[s + i] * DIM, sizeof (float) * DIM);
            by[i] = s_y[idx[s + i]];
        }
        ty_torch_batch_t b = {.n = BATCH, .x = bx, .labels = by};
        double loss;
        if (ty_torch_train_step (m, &b, &loss) != TY_OK)
            fail_msg ("train: %s", ty_torch_errstr (m));
        if (losses)
            losses[s / BATCH] = loss;
    }
}

static void
s_tmp_path (char *buf, size_t len, const char *name)
{
    snprintf (buf, len, "/tmp/ty_test_torch_%d_%s", (int) getpid (), name);
}

static void
test_torch_same_seed_same_losses (void **state)
{
    (void) state;
    ty_torch_params_t p;
    s_params (&p);
    double a[EPOCHS * N / BATCH], b[EPOCHS * N / BATCH];
    ty_torch_model_t *m1 = must_new (&p), *m2 = must_new (&p);
    for (int e = 0; e < EPOCHS; e++) {
        s_epoch (m1, e, a + e * (N / BATCH));
        s_epoch (m2, e, b + e * (N / BATCH));
    }
    assert_memory_equal (a, b, sizeof a);
    assert_true (ty_torch_weights_digest (m1) == ty_torch_weights_digest (m2));
    assert_int_equal (ty_torch_step (m1), EPOCHS * N / BATCH);
    /* Another seed: other initial weights, other losses. */
    p.seed = 43;
    ty_torch_model_t *m3 = must_new (&p);
    assert_true (ty_torch_weights_digest (m3) != ty_torch_weights_digest (m1));
    ty_torch_destroy (&m1);
    ty_torch_destroy (&m2);
    ty_torch_destroy (&m3);
    ty_torch_destroy (&m3);   /* idempotent */
}

static void
test_torch_save_load_same_predictions (void **state)
{
    (void) state;
    ty_torch_params_t p;
    s_params (&p);
    ty_torch_model_t *m = must_new (&p);
    s_epoch (m, 0, NULL);
    char path[256], err[ERRLEN];
    s_tmp_path (path, sizeof path, "pred.pt");
    assert_int_equal (ty_torch_save (m, path), TY_OK);
    char tmp[300];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal (access (tmp, F_OK), -1);   /* renamed, not left behind */
    ty_torch_model_t *l = NULL;
    assert_int_equal (ty_torch_load (path, 0, &l, err, sizeof err), TY_OK);
    assert_int_equal (ty_torch_step (l), ty_torch_step (m));
    assert_int_equal (ty_torch_param_count (l), ty_torch_param_count (m));
    assert_int_equal (ty_torch_params (l)->mlp.hidden[1], 8);
    assert_true (ty_torch_params (l)->mlp.dropout == 0.3);
    float a[N * 3], b[N * 3];
    ty_torch_batch_t batch = {.n = N, .x = s_x};
    assert_int_equal (ty_torch_predict (m, &batch, a, N * 3), TY_OK);
    assert_int_equal (ty_torch_predict (l, &batch, b, N * 3), TY_OK);
    assert_memory_equal (a, b, sizeof a);
    /* Eval mode: no dropout, so predicting twice gives the same. */
    assert_int_equal (ty_torch_predict (l, &batch, a, N * 3), TY_OK);
    assert_memory_equal (a, b, sizeof a);
    unlink (path);
    ty_torch_destroy (&m);
    ty_torch_destroy (&l);
}

/* The resume guarantee: bitwise equal weights. */
static void
s_resume_check (ty_torch_params_t *p)
{
    ty_torch_model_t *straight = must_new (p);
    for (int e = 0; e < EPOCHS; e++)
        s_epoch (straight, e, NULL);

    ty_torch_model_t *first = must_new (p);
    for (int e = 0; e < EPOCHS / 2; e++)
        s_epoch (first, e, NULL);
    char path[256], err[ERRLEN];
    s_tmp_path (path, sizeof path, "resume.pt");
    assert_int_equal (ty_torch_save (first, path), TY_OK);
    ty_torch_destroy (&first);
    ty_torch_model_t *resumed = NULL;
    if (ty_torch_load (path, 1, &resumed, err, sizeof err) != TY_OK)
        fail_msg ("load: %s", err);
    assert_int_equal (ty_torch_step (resumed), EPOCHS / 2 * N / BATCH);
    for (int e = EPOCHS / 2; e < EPOCHS; e++)
        s_epoch (resumed, e, NULL);
    assert_true (ty_torch_weights_digest (resumed) == ty_torch_weights_digest (straight));
    assert_true (ty_torch_lr (resumed) == ty_torch_lr (straight));
    unlink (path);
    ty_torch_destroy (&straight);
    ty_torch_destroy (&resumed);
}

static void
test_torch_resume_equals_straight_run_adam (void **state)
{
    (void) state;
    ty_torch_params_t p;
    s_params (&p);
    s_resume_check (&p);
}

static void
test_torch_resume_equals_straight_run_sgd_decay (void **state)
{
    (void) state;
    ty_torch_params_t p;
    s_params (&p);
    p.optim = TY_TORCH_SGD;
    p.lr = 0.2;
    p.total_steps = EPOCHS * N / BATCH;
    ty_torch_model_t *m = must_new (&p);
    assert_true (ty_torch_lr (m) == 0.2);
    s_epoch (m, 0, NULL);
    assert_true (fabs (ty_torch_lr (m) - 0.2 * (1.0 - 1.0 / EPOCHS)) < 1e-12);
    assert_int_equal (ty_torch_set_lr (m, -1), TY_EINVAL);
    assert_non_null (strstr (ty_torch_errstr (m), "lr"));
    assert_int_equal (ty_torch_set_lr (m, 0.4), TY_OK);
    assert_true (fabs (ty_torch_lr (m) - 0.4 * (1.0 - 1.0 / EPOCHS)) < 1e-12);
    ty_torch_destroy (&m);
    s_resume_check (&p);
}

/* textclf through the written-out step: SGD, lazy Adam and lazy AdamW,
 * with per-sample weights. Same seed -> identical losses; save after half
 * the steps, load, finish -> the straight run's weights bitwise (the lazy
 * moments travel in the optimizer archive). */
#define TC_ROWS   50
#define TC_STEPS  24
#define TC_N      4
#define TC_BAG    5

static void
s_textclf_steps (ty_torch_model_t *m, int from, int to, double *losses)
{
    for (int s = from; s < to; s++) {
        int64_t ids[TC_N * TC_BAG], off[TC_N], lab[TC_N];
        float w[TC_N];
        uint64_t rng = 77 + (uint64_t) s;
        for (int i = 0; i < TC_N; i++) {
            off[i] = i * TC_BAG;
            lab[i] = i % 3;
            w[i] = 0.5f + (float) i;
            for (int k = 0; k < TC_BAG; k++)   /* a label's rows, and noise */
                ids[i * TC_BAG + k] = k < 3 ? lab[i] * 10 + (int64_t) ty_negsample_below (&rng, 10)
                                            : 30 + (int64_t) ty_negsample_below (&rng, 20);
        }
        ty_torch_batch_t b = {.n = TC_N, .ids = ids, .nids = TC_N * TC_BAG, .offsets = off,
                              .labels = lab, .weights = w};
        double loss;
        if (ty_torch_train_step (m, &b, &loss) != TY_OK)
            fail_msg ("train: %s", ty_torch_errstr (m));
        if (losses)
            losses[s] = loss;
    }
}

static void
test_torch_textclf_deterministic_and_resumes (void **state)
{
    (void) state;
    const ty_torch_optim_t optims[] = {TY_TORCH_SGD, TY_TORCH_ADAM, TY_TORCH_ADAMW};
    for (size_t o = 0; o < sizeof optims / sizeof optims[0]; o++) {
        ty_torch_params_t p;
        ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
        p.textclf.nrows = TC_ROWS;
        p.textclf.dim = 8;
        p.textclf.nlabels = 3;
        p.optim = optims[o];
        p.lr = optims[o] == TY_TORCH_SGD ? 0.3 : 0.02;
        p.weight_decay = optims[o] == TY_TORCH_ADAMW ? 0.01 : 0;
        p.total_steps = TC_STEPS;
        p.seed = 9;
        double a[TC_STEPS], b[TC_STEPS];
        ty_torch_model_t *m1 = must_new (&p), *m2 = must_new (&p);
        s_textclf_steps (m1, 0, TC_STEPS, a);
        s_textclf_steps (m2, 0, TC_STEPS, b);
        assert_memory_equal (a, b, sizeof a);
        assert_true (a[TC_STEPS - 1] < a[0]);   /* it learns */
        assert_true (ty_torch_weights_digest (m1) == ty_torch_weights_digest (m2));

        ty_torch_model_t *half = must_new (&p), *resumed = NULL;
        s_textclf_steps (half, 0, TC_STEPS / 2, NULL);
        char path[256], err[ERRLEN];
        s_tmp_path (path, sizeof path, "textclf.pt");
        assert_int_equal (ty_torch_save (half, path), TY_OK);
        ty_torch_destroy (&half);
        if (ty_torch_load (path, 1, &resumed, err, sizeof err) != TY_OK)
            fail_msg ("load: %s", err);
        s_textclf_steps (resumed, TC_STEPS / 2, TC_STEPS, NULL);
        if (ty_torch_weights_digest (resumed) != ty_torch_weights_digest (m1))
            fail_msg ("textclf %s: resumed run differs", ty_torch_optim_name (optims[o]));
        unlink (path);
        ty_torch_destroy (&m1);
        ty_torch_destroy (&m2);
        ty_torch_destroy (&resumed);
    }
}

static void
s_expect_new_fails (const ty_torch_params_t *p, const char *needle)
{
    char err[ERRLEN];
    ty_torch_model_t *m = (ty_torch_model_t *) &err;   /* must be overwritten with NULL */
    assert_int_equal (ty_torch_new (p, &m, err, sizeof err), TY_EINVAL);
    assert_null (m);
    if (!strstr (err, needle))
        fail_msg ("message '%s' does not name '%s'", err, needle);
}

static void
test_torch_bad_params_rejected_with_reason (void **state)
{
    (void) state;
    ty_torch_params_t p;
    ty_torch_params_init (&p, (ty_torch_kind_t) 99);
    s_expect_new_fails (&p, "kind");
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    p.textclf.nrows = 100;
    p.textclf.dim = 0;
    s_expect_new_fails (&p, "textclf.dim");
    p.textclf.dim = 8;
    p.lr = -0.1;
    s_expect_new_fails (&p, "lr");
    p.lr = NAN;
    s_expect_new_fails (&p, "lr");
    p.lr = 0.1;
    p.threads = 0;
    s_expect_new_fails (&p, "threads");
    s_params (&p);
    p.mlp.dropout = 1.0;
    s_expect_new_fails (&p, "dropout");
    ty_torch_params_init (&p, TY_TORCH_CNN);
    p.cnn.depth = 0;
    s_expect_new_fails (&p, "cnn.depth");
    ty_torch_params_init (&p, TY_TORCH_NCF);
    p.ncf.nitems = 0;
    s_expect_new_fails (&p, "ncf");
    ty_torch_kind_t k;
    assert_int_equal (ty_torch_kind_parse ("cnn", &k), TY_OK);
    assert_int_equal (k, TY_TORCH_CNN);
    assert_int_equal (ty_torch_kind_parse ("transformer", &k), TY_EINVAL);
    ty_torch_optim_t o;
    assert_int_equal (ty_torch_optim_parse ("adamw", &o), TY_OK);
    assert_int_equal (o, TY_TORCH_ADAMW);
}

static void
test_torch_bad_batches_rejected_weights_unchanged (void **state)
{
    (void) state;
    ty_torch_params_t p;
    s_params (&p);
    ty_torch_model_t *m = must_new (&p);
    uint64_t before = ty_torch_weights_digest (m);
    float x[2 * DIM] = {0};
    int64_t y[2] = {0, 1};
    ty_torch_batch_t b = {.n = 2, .x = x, .labels = y};
    x[3] = NAN;
    assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_EINVAL);
    assert_non_null (strstr (ty_torch_errstr (m), "x[3]"));
    x[3] = INFINITY;
    assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_EINVAL);
    x[3] = 0;
    y[1] = 3;
    assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_EINVAL);
    assert_non_null (strstr (ty_torch_errstr (m), "labels[1]"));
    y[1] = 1;
    b.n = 0;
    assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_EINVAL);
    b.n = 2;
    b.labels = NULL;
    assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_EINVAL);
    assert_non_null (strstr (ty_torch_errstr (m), "labels"));
    assert_int_equal (ty_torch_train_step (m, NULL, NULL), TY_EINVAL);
    float w[2] = {-1, 1};
    b.labels = y;
    b.weights = w;
    assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_EINVAL);
    b.weights = NULL;
    float out[2 * 3];
    assert_int_equal (ty_torch_predict (m, &b, out, 5), TY_EFULL);
    assert_true (ty_torch_weights_digest (m) == before);
    assert_int_equal (ty_torch_step (m), 0);
    /* Still usable after all of that. */
    assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_OK);
    assert_int_equal (ty_torch_predict (m, &b, out, 6), TY_OK);
    ty_torch_destroy (&m);

    /* textclf: ids out of range, offsets not monotonic. */
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    p.textclf.nrows = 10;
    p.textclf.dim = 4;
    m = must_new (&p);
    int64_t ids[4] = {1, 2, 10, 3}, offs[2] = {0, 2};
    ty_torch_batch_t tb = {.n = 2, .ids = ids, .nids = 4, .offsets = offs, .labels = y};
    assert_int_equal (ty_torch_train_step (m, &tb, NULL), TY_EINVAL);
    assert_non_null (strstr (ty_torch_errstr (m), "ids[2]"));
    ids[2] = 9;
    offs[1] = 5;
    assert_int_equal (ty_torch_train_step (m, &tb, NULL), TY_EINVAL);
    offs[1] = 2;
    assert_int_equal (ty_torch_train_step (m, &tb, NULL), TY_OK);
    ty_torch_destroy (&m);

    /* ncf: a user id past the table. */
    ty_torch_params_init (&p, TY_TORCH_NCF);
    p.ncf.nusers = 3;
    p.ncf.nitems = 3;
    m = must_new (&p);
    int64_t u[2] = {0, 3}, it[2] = {0, 1};
    float t[2] = {1, 0};
    ty_torch_batch_t nb = {.n = 2, .users = u, .items = it, .targets = t};
    assert_int_equal (ty_torch_train_step (m, &nb, NULL), TY_EINVAL);
    assert_non_null (strstr (ty_torch_errstr (m), "users[1]"));
    ty_torch_destroy (&m);
}

static void
test_torch_load_bad_files (void **state)
{
    (void) state;
    char path[256], err[ERRLEN];
    ty_torch_model_t *m = NULL;
    s_tmp_path (path, sizeof path, "missing.pt");
    assert_int_equal (ty_torch_load (path, 0, &m, err, sizeof err), ENOENT);
    assert_null (m);
    s_tmp_path (path, sizeof path, "garbage.pt");
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs ("this is not a checkpoint\n", f);
    fclose (f);
    assert_int_equal (ty_torch_load (path, 0, &m, err, sizeof err), TY_EPROTO);
    assert_non_null (strstr (err, "not a trainyard checkpoint"));
    assert_null (m);
    unlink (path);
    /* Saving into a directory that does not exist: errno, no crash. */
    ty_torch_params_t p;
    s_params (&p);
    m = must_new (&p);
    assert_int_equal (ty_torch_save (m, "/nonexistent-dir/x.pt"), TY_EINTERNAL);
    assert_true (strlen (ty_torch_errstr (m)) > 0);
    ty_torch_destroy (&m);
}

static void
test_torch_runtime_reports_blas (void **state)
{
    (void) state;
    const char *blas = ty_torch_blas_name ();
    assert_non_null (blas);
    assert_true (strlen (blas) > 0);
    assert_int_equal (ty_torch_set_threads (0), TY_EINVAL);
    assert_int_equal (ty_torch_set_threads (1), TY_OK);
}

int
main (void)
{
    s_make_data ();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_torch_same_seed_same_losses),
        cmocka_unit_test (test_torch_save_load_same_predictions),
        cmocka_unit_test (test_torch_resume_equals_straight_run_adam),
        cmocka_unit_test (test_torch_resume_equals_straight_run_sgd_decay),
        cmocka_unit_test (test_torch_textclf_deterministic_and_resumes),
        cmocka_unit_test (test_torch_bad_params_rejected_with_reason),
        cmocka_unit_test (test_torch_bad_batches_rejected_weights_unchanged),
        cmocka_unit_test (test_torch_load_bad_files),
        cmocka_unit_test (test_torch_runtime_reports_blas),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

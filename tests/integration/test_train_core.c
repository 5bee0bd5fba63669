/*  test_train_core: the train job without the cluster, on real LMDB
 *  datasets and real libtorch: it learns, it is deterministic, a run that
 *  dies after epoch 2 resumes at epoch 3 and ends bitwise equal, early
 *  stopping stops, the model version directory is complete, and bad input
 *  fails with a message naming the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_train_data.h"
#include "ty_fixture.h"
#include "ty_train.h"

/* the hooks' state: a crash after an epoch, a cancel, the first epoch */
typedef ty_fixture_train_t s_t;

static int
s_setup (void **state)
{
    return ty_fixture_train_setup (state, "train-core");
}

static void
test_train_textclf_learns (void **state)
{
    s_t *s = *state;
    ttd_make_text (s->dir, "news", 800, 200, 1);
    ttd_spec_t t;
    ttd_textclf (&t, "news", "newsclf", 5);
    ty_train_result_t res;
    ty_fixture_train_must_run (s, &t.train, "job-learn", &res);
    fprintf (stderr, "textclf: val acc %.3f (majority %.2f) at epoch %d, %s\n",
             res.best_metric, TTD_MAJORITY, res.best_epoch, res.model);
    assert_string_equal (res.metric, "acc");
    assert_true (res.best_metric >= TTD_MAJORITY + 0.45);
    assert_string_equal (res.model, "newsclf@1");
    assert_int_equal (res.epochs_run, 5);
    /* the version directory is complete; the checkpoints are gone */
    const char *files [] = { "model.pt", "config.json", "feat.json", "vocab.txt",
                             "history.json", "lineage.json" };
    for (size_t i = 0; i < sizeof files / sizeof files [0]; i++)
        if (!ty_fixture_exists (res.path, files [i]))
            fail_msg ("%s/%s missing", res.path, files [i]);
    char ck [512];
    snprintf (ck, sizeof ck, "%s/checkpoints", s->dir);
    assert_false (ty_fixture_exists (ck, "job-learn"));

    /* what was saved predicts as the trained model did: reload and check */
    char path [TY_MODELDIR_PATH_MAX + 64], err [256] = "";
    snprintf (path, sizeof path, "%s/model.pt", res.path);
    ty_torch_model_t *m = NULL;
    assert_int_equal (ty_torch_load (path, 1, &m, err, sizeof err), TY_OK);
    assert_true (ty_torch_weights_digest (m) == res.weights_digest);
    ty_torch_destroy (&m);
    ty_batch_feat_t *feat = NULL;
    assert_int_equal (ty_batch_feat_load (res.path, &feat, err, sizeof err), TY_OK);
    assert_int_equal (ty_batch_feat_noutputs (feat), TTD_NCLASSES);
    assert_string_equal (ty_batch_feat_label (feat, 2), "food");
    ty_batch_feat_destroy (&feat);

    /* the next run of the same name is version 2 */
    ty_fixture_train_must_run (s, &t.train, "job-learn-2", &res);
    assert_string_equal (res.model, "newsclf@2");
}

static void
test_train_deterministic (void **state)
{
    s_t *s = *state;
    ttd_make_text (s->dir, "det", 300, 100, 2);
    ttd_spec_t t;
    ttd_textclf (&t, "det", "detclf", 3);
    ty_train_result_t a, b;
    ty_fixture_train_must_run (s, &t.train, "job-det-a", &a);
    ty_fixture_train_must_run (s, &t.train, "job-det-b", &b);
    assert_true (a.weights_digest == b.weights_digest);
    assert_true (a.best_metric == b.best_metric);
    /* a different seed is a different run */
    t.train.seed = 43;
    ty_fixture_train_must_run (s, &t.train, "job-det-c", &b);
    assert_true (a.weights_digest != b.weights_digest);
}

/* Dies (a crash, not a cancel) after epoch 2 of 4 in a child process; the
 * retry resumes at epoch 3 and ends bitwise equal to an uninterrupted run. */
static void
test_train_resume_bitwise (void **state)
{
    s_t *s = *state;
    ttd_make_text (s->dir, "res", 300, 100, 3);
    ttd_spec_t t;
    ttd_textclf (&t, "res", "resclf", 4);
    ty_fixture_train_resume_check (s, &t.train, "job-res", 2);
}

static void
test_train_cancel_leaves_no_version (void **state)
{
    s_t *s = *state;
    ttd_make_text (s->dir, "can", 300, 50, 4);
    ttd_spec_t t;
    ttd_textclf (&t, "can", "canclf", 5);
    s->cancel_after_epoch = 1;
    ty_train_result_t res;
    char err [TY_TRAIN_ERR_LEN] = "";
    int rc = ty_fixture_train_run (s, &t.train, "job-cancel", 1, &res, err, sizeof err);
    s->cancel_after_epoch = 0;
    assert_int_equal (rc, ECANCELED);
    char models [512];
    snprintf (models, sizeof models, "%s/models/canclf", s->dir);
    assert_false (ty_fixture_exists (models, "1"));
    char ck [512];
    snprintf (ck, sizeof ck, "%s/checkpoints", s->dir);
    assert_false (ty_fixture_exists (ck, "job-cancel"));
}

static void
test_train_early_stopping (void **state)
{
    s_t *s = *state;
    ttd_make_text (s->dir, "early", 300, 100, 5);
    ttd_spec_t t;
    ttd_textclf (&t, "early", "earlyclf", 60);
    /* the val accuracy saturates within a few epochs: patience 2 ends it
     * long before 60 epochs */
    t.train.patience = 2;
    t.train.optimizer = "adam";
    t.train.lr = 0.05;
    ty_train_result_t res;
    ty_fixture_train_must_run (s, &t.train, "job-early", &res);
    fprintf (stderr, "early stopping: %d epochs run, best %d\n", res.epochs_run, res.best_epoch);
    assert_true (res.epochs_run < 60);
    assert_int_equal (res.epochs_run, res.best_epoch + 2);
}

static void
test_train_bad_input_fails_clearly (void **state)
{
    s_t *s = *state;
    ttd_make_text (s->dir, "txt", 50, 10, 6);
    ttd_make_images (s->dir, "img", 10);
    ttd_make_features (s->dir, "nan", 20, 5);
    ttd_make_empty_train (s->dir, "empty");
    ttd_spec_t t;

    ttd_spec (&t, "txt", "transformer", "m");
    ty_fixture_train_expect_fail (s, &t.train, TY_EINVAL, "unknown model kind 'transformer'", NULL);

    ttd_textclf (&t, "img", "m", 1);
    ty_fixture_train_expect_fail (s, &t.train, TY_EINVAL, "wrong sample type", NULL);

    ttd_textclf (&t, "empty", "m", 1);
    ty_fixture_train_expect_fail (s, &t.train, TY_EINVAL, "zero samples", NULL);

    ttd_spec (&t, "nan", "mlp", "m");
    ty_fixture_train_expect_fail (s, &t.train, TY_EINVAL, "NaN/inf feature", NULL);

    ttd_textclf (&t, "txt", "m", 1);
    ttd_param (&t, "dim", "0");
    ty_fixture_train_expect_fail (s, &t.train, TY_EINVAL, "dim", NULL);

    ttd_textclf (&t, "txt", "m", 1);
    t.train.lr = -0.1;
    ty_fixture_train_expect_fail (s, &t.train, TY_EINVAL, "lr must be > 0", NULL);

    ttd_textclf (&t, "nosuch", "m", 1);
    ty_fixture_train_expect_fail (s, &t.train, TY_ENOTFOUND, "dataset 'nosuch' not found", NULL);

    ttd_textclf (&t, "txt", "m", 1);
    ttd_param (&t, "colour", "blue");
    ty_fixture_train_expect_fail (s, &t.train, TY_EINVAL, "unknown parameter 'colour'", NULL);

    /* a cap below what the process already holds: refused with the reason */
    ttd_textclf (&t, "txt", "m", 1);
    t.train.memory_cap_mb = 1;
    ty_fixture_train_expect_fail (s, &t.train, TY_EFULL, "memory cap exceeded", NULL);

    /* none of these left a model or a checkpoint */
    char p [512];
    snprintf (p, sizeof p, "%s/models", s->dir);
    assert_false (ty_fixture_exists (p, "m/1"));
    snprintf (p, sizeof p, "%s/checkpoints", s->dir);
    assert_false (ty_fixture_exists (p, "job-bad"));
}

/* mlp on dense features and on TF-IDF of text both learn. */
static void
test_train_mlp_learns (void **state)
{
    s_t *s = *state;
    ttd_make_text (s->dir, "mtxt", 600, 200, 8);
    ttd_spec_t t;
    ttd_spec (&t, "mtxt", "mlp", "mlptfidf");
    t.train.epochs = 10;
    t.train.lr = 0.01;
    t.train.batch_size = 32;
    t.train.threads = 1;
    ty_train_result_t res;
    ty_fixture_train_must_run (s, &t.train, "job-mlp", &res);
    fprintf (stderr, "mlp (tf-idf): val acc %.3f\n", res.best_metric);
    assert_true (res.best_metric >= TTD_MAJORITY + 0.4);
}

/* 100 jobs in one process: RSS after the last is within a few MB of RSS
 * after the 10th (the first ones warm up libtorch's allocator caches). */
static void
test_train_no_leak_across_jobs (void **state)
{
    s_t *s = *state;
#if defined (__SANITIZE_ADDRESS__)
    /* AddressSanitizer keeps freed memory in quarantine, so RSS grows by
       design; there LeakSanitizer checks the same thing at exit. */
    skip ();
#endif
    ttd_make_text (s->dir, "leak", 100, 20, 9);
    ttd_spec_t t;
    ttd_textclf (&t, "leak", "leakclf", 1);
    uint64_t warm = 0;
    for (int i = 1; i <= 100; i++) {
        char job [32];
        snprintf (job, sizeof job, "job-leak-%d", i);
        ty_train_result_t res;
        ty_fixture_train_must_run (s, &t.train, job, &res);
        if (i == 10)
            warm = ty_train_rss_bytes ();
    }
    uint64_t end = ty_train_rss_bytes ();
    double grew = ((double) end - (double) warm) / (1024.0 * 1024.0);
    fprintf (stderr, "RSS after 10 jobs %.1f MB, after 100 jobs %.1f MB (%+.1f MB)\n",
             (double) warm / 1048576.0, (double) end / 1048576.0, grew);
    assert_true (grew < 8.0);
}

int
main (int argc, char **argv)
{
    if (argc > 1 && !strcmp (argv [1], "slow")) {
        const struct CMUnitTest slow [] = {
            cmocka_unit_test_setup_teardown (test_train_no_leak_across_jobs, s_setup,
                                             ty_fixture_train_teardown),
        };
        return cmocka_run_group_tests (slow, NULL, NULL);
    }
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_train_resume_bitwise, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_train_textclf_learns, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_train_deterministic, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_train_cancel_leaves_no_version, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_train_early_stopping, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_train_bad_input_fails_clearly, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_train_mlp_learns, s_setup,
                                         ty_fixture_train_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

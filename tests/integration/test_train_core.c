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
#include "ty_train.h"

typedef struct {
    char dir [256];
    int  epochs_done;          /* last "epochs_done" metric seen */
    int  die_after_epoch;      /* > 0: _exit once this epoch is reported (a crash) */
    int  cancel_after_epoch;   /* > 0: cancel once this epoch is reported */
    int  first_epoch;          /* first "epoch" metric seen */
} s_t;

static void
s_metric (void *arg, const char *key, double value)
{
    s_t *s = arg;
    if (!strcmp (key, "epoch") && !s->first_epoch)
        s->first_epoch = (int) value;
    if (!strcmp (key, "epochs_done")) {
        s->epochs_done = (int) value;
        if (s->die_after_epoch && s->epochs_done == s->die_after_epoch)
            _exit (0);         /* the checkpoint of this epoch is on disk */
    }
}

static int
s_cancelled (void *arg)
{
    s_t *s = arg;
    return s->cancel_after_epoch && s->epochs_done >= s->cancel_after_epoch;
}

static int
s_rm (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb; (void) flag; (void) ftw;
    return remove (path);
}

static int
s_setup (void **state)
{
    s_t *s = calloc (1, sizeof *s);
    snprintf (s->dir, sizeof s->dir, "/tmp/ty-test-train-core-XXXXXX");
    if (!mkdtemp (s->dir))
        return -1;
    *state = s;
    return 0;
}

static int
s_teardown (void **state)
{
    s_t *s = *state;
    const char *keep = getenv ("TY_TEST_KEEP");
    if (!(keep && *keep == '1'))
        nftw (s->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free (s);
    return 0;
}

/* Runs a train job in-process; returns its status, err filled. */
static int
s_run (s_t *s, ttd_spec_t *t, const char *job_id, unsigned attempt, ty_train_result_t *res,
       char *err, size_t errlen)
{
    ty_train_config_t cfg;
    int rc = ty_train_config_from_spec (&t->train, &cfg, err, errlen);
    if (rc != TY_OK)
        return rc;
    s->epochs_done = 0;
    s->first_epoch = 0;
    ty_train_env_t env = {
        .data_dir = s->dir, .job_id = job_id, .attempt = attempt, .default_threads = 1,
        .hooks = { .arg = s, .metric = s_metric, .cancelled = s_cancelled },
    };
    return ty_train_run (&cfg, &env, res, err, errlen);
}

static void
s_must_run (s_t *s, ttd_spec_t *t, const char *job_id, ty_train_result_t *res)
{
    char err [TY_TRAIN_ERR_LEN] = "";
    int rc = s_run (s, t, job_id, 1, res, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("train %s: %s (%d): %s", job_id, ty_strerror (rc), rc, err);
}

static int
s_exists (const char *dir, const char *file)
{
    char path [TY_MODELDIR_PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    struct stat st;
    return stat (path, &st) == 0;
}

static void
test_train_textclf_learns (void **state)
{
    s_t *s = *state;
    ttd_make_text (s->dir, "news", 800, 200, 1);
    ttd_spec_t t;
    ttd_textclf (&t, "news", "newsclf", 5);
    ty_train_result_t res;
    s_must_run (s, &t, "job-learn", &res);
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
        if (!s_exists (res.path, files [i]))
            fail_msg ("%s/%s missing", res.path, files [i]);
    char ck [512];
    snprintf (ck, sizeof ck, "%s/checkpoints", s->dir);
    assert_false (s_exists (ck, "job-learn"));

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
    s_must_run (s, &t, "job-learn-2", &res);
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
    s_must_run (s, &t, "job-det-a", &a);
    s_must_run (s, &t, "job-det-b", &b);
    assert_true (a.weights_digest == b.weights_digest);
    assert_true (a.best_metric == b.best_metric);
    /* a different seed is a different run */
    t.train.seed = 43;
    s_must_run (s, &t, "job-det-c", &b);
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
    ty_train_result_t full, resumed;
    s_must_run (s, &t, "job-res-full", &full);

    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        s->die_after_epoch = 2;
        char err [TY_TRAIN_ERR_LEN];
        ty_train_result_t r;
        s_run (s, &t, "job-res-crash", 1, &r, err, sizeof err);
        _exit (3);             /* never reached when the crash happened */
    }
    int st = 0;
    assert_int_equal (waitpid (pid, &st, 0), pid);
    assert_true (WIFEXITED (st) && WEXITSTATUS (st) == 0);
    char ck [512];
    snprintf (ck, sizeof ck, "%s/checkpoints/job-res-crash", s->dir);
    assert_true (s_exists (ck, "state.json"));
    assert_true (s_exists (ck, "epoch-2.pt"));

    char err [TY_TRAIN_ERR_LEN] = "";
    int rc = s_run (s, &t, "job-res-crash", 2, &resumed, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("resume: %s", err);
    assert_int_equal (resumed.resumed_from, 2);
    assert_int_equal (s->first_epoch, 3);
    assert_int_equal (resumed.epochs_run, 4);
    assert_true (resumed.weights_digest == full.weights_digest);
    assert_true (resumed.best_metric == full.best_metric);
    assert_false (s_exists (ck, "state.json"));
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
    int rc = s_run (s, &t, "job-cancel", 1, &res, err, sizeof err);
    s->cancel_after_epoch = 0;
    assert_int_equal (rc, ECANCELED);
    char models [512];
    snprintf (models, sizeof models, "%s/models/canclf", s->dir);
    assert_false (s_exists (models, "1"));
    char ck [512];
    snprintf (ck, sizeof ck, "%s/checkpoints", s->dir);
    assert_false (s_exists (ck, "job-cancel"));
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
    s_must_run (s, &t, "job-early", &res);
    fprintf (stderr, "early stopping: %d epochs run, best %d\n", res.epochs_run, res.best_epoch);
    assert_true (res.epochs_run < 60);
    assert_int_equal (res.epochs_run, res.best_epoch + 2);
}

static void
s_expect_fail (s_t *s, ttd_spec_t *t, int want_rc, const char *phrase)
{
    ty_train_result_t res;
    char err [TY_TRAIN_ERR_LEN] = "";
    int rc = s_run (s, t, "job-bad", 1, &res, err, sizeof err);
    fprintf (stderr, "bad input -> %s (%d): %s\n", ty_strerror (rc), rc, err);
    assert_int_equal (rc, want_rc);
    if (!strstr (err, phrase))
        fail_msg ("message '%s' does not name the problem ('%s')", err, phrase);
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
    s_expect_fail (s, &t, TY_EINVAL, "unknown model kind 'transformer'");

    ttd_textclf (&t, "img", "m", 1);
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type");

    ttd_textclf (&t, "empty", "m", 1);
    s_expect_fail (s, &t, TY_EINVAL, "zero samples");

    ttd_spec (&t, "nan", "mlp", "m");
    s_expect_fail (s, &t, TY_EINVAL, "NaN/inf feature");

    ttd_textclf (&t, "txt", "m", 1);
    ttd_param (&t, "dim", "0");
    s_expect_fail (s, &t, TY_EINVAL, "dim");

    ttd_textclf (&t, "txt", "m", 1);
    t.train.lr = -0.1;
    s_expect_fail (s, &t, TY_EINVAL, "lr must be > 0");

    ttd_textclf (&t, "nosuch", "m", 1);
    s_expect_fail (s, &t, TY_ENOTFOUND, "dataset 'nosuch' not found");

    ttd_textclf (&t, "txt", "m", 1);
    ttd_param (&t, "colour", "blue");
    s_expect_fail (s, &t, TY_EINVAL, "unknown parameter 'colour'");

    /* a cap below what the process already holds: refused with the reason */
    ttd_textclf (&t, "txt", "m", 1);
    t.train.memory_cap_mb = 1;
    s_expect_fail (s, &t, TY_EFULL, "memory cap exceeded");

    /* none of these left a model or a checkpoint */
    char p [512];
    snprintf (p, sizeof p, "%s/models", s->dir);
    assert_false (s_exists (p, "m/1"));
    snprintf (p, sizeof p, "%s/checkpoints", s->dir);
    assert_false (s_exists (p, "job-bad"));
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
    s_must_run (s, &t, "job-mlp", &res);
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
        s_must_run (s, &t, job, &res);
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
            cmocka_unit_test_setup_teardown (test_train_no_leak_across_jobs, s_setup, s_teardown),
        };
        return cmocka_run_group_tests (slow, NULL, NULL);
    }
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_train_resume_bitwise, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_train_textclf_learns, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_train_deterministic, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_train_cancel_leaves_no_version, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_train_early_stopping, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_train_bad_input_fails_clearly, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_train_mlp_learns, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

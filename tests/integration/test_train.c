/*  test_train: the train worker in a real cluster (redis, broker,
 *  trainyard-train, LMDB datasets written here, libtorch). A textclf learns
 *  and the job reports epochs and metrics to Redis and its model as
 *  outputs; cancel during an epoch stops within a second and leaves no
 *  model version; bad input fails the job with a message that names the
 *  problem, and the same worker goes on to train the next job. */
#include "test_train_it.h"
#include "test_train_data.h"
#include "ty_registry.h"

#include <sys/wait.h>

#define S_CANCEL_MS   1000      /* a running train job must stop within this */

static int
s_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}

/* Runs the trainyard command; its stdout goes to out. Returns the exit code. */
static int
s_cli (ty_testenv_t *env, const char *args, char *out, size_t len)
{
    char cmd [PATH_MAX * 2];
    snprintf (cmd, sizeof cmd, "%s --broker %s %s 2>&1", TY_CLI_BIN, ty_testenv_client_ep (env),
              args);
    int rc = ty_testenv_run_capture (cmd, out, len);
    fprintf (stderr, "$ trainyard %s\n%s", args, out);
    return rc;
}

static void
test_train_learns_and_reports (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    char data [PATH_MAX];
    tti_data_dir (env, data, sizeof data);
    ttd_make_text (data, "news", 800, 200, 11);
    ty_it_must_cluster (env, TY_TESTENV_HEARTBEAT_MS, NULL, NULL, 0);
    tti_must_start_worker (env, "t1", data, NULL);
    ty_client_t *c = ty_it_must_client (it);

    ttd_spec_t t;
    ttd_textclf (&t, "news", "newsclf", 4);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, id, NULL);
    tti_must_reach (env, id, "SUCCEEDED", TTI_JOB_MS, "t1");

    char model [128], acc [64], epochs [16], path [PATH_MAX];
    tti_output (c, id, "model", model, sizeof model);
    tti_output (c, id, "best_metric", acc, sizeof acc);
    tti_output (c, id, "epochs", epochs, sizeof epochs);
    tti_output (c, id, "path", path, sizeof path);
    fprintf (stderr, "trained %s: val acc %s after %s epochs\n", model, acc, epochs);
    assert_string_equal (model, "newsclf@1");
    assert_string_equal (epochs, "4");
    assert_true (strtod (acc, NULL) >= TTD_MAJORITY + 0.45);
    char f [PATH_MAX + 32];
    snprintf (f, sizeof f, "%s/model.pt", path);
    assert_true (s_exists (f));
    snprintf (f, sizeof f, "%s/lineage.json", path);
    assert_true (s_exists (f));
    snprintf (f, sizeof f, "%s/checkpoints/%s", data, id);
    assert_false (s_exists (f));

    /* per-epoch metrics went to the job hash and the metrics stream */
    char *v = ty_testenv_job_field (env, id, "metric.epochs_done");
    assert_non_null (v);
    assert_string_equal (v, "4");
    free (v);
    v = ty_testenv_job_field (env, id, "metric.val_acc");
    assert_non_null (v);
    free (v);
    redisReply *r = ty_testenv_must_redis (env, "XRANGE ty:job:%s:metrics - +", id);
    assert_int_equal (r->type, REDIS_REPLY_ARRAY);
    int with_val = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *fields = r->element [i]->element [1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2)
            with_val += !strcmp (fields->element [k]->str, "val_acc");
    }
    freeReplyObject (r);
    /* every epoch's end reaches the stream (a phase change beats the rate limit) */
    assert_true (with_val >= 4);

    /* the worker also wrote the portable file, and `trainyard predict` reads
       it with the C99 runtime: texts of known classes get their labels */
    snprintf (f, sizeof f, "%s/model.tym", path);
    assert_true (s_exists (f));
    char inputs [PATH_MAX + 16];
    snprintf (inputs, sizeof inputs, "%s/predict.txt", data);
    FILE *in = fopen (inputs, "w");
    assert_non_null (in);
    uint64_t rng = 777;
    int want [20];
    for (int i = 0; i < 20; i++) {
        char text [256];
        want [i] = i % TTD_NCLASSES;
        ttd_text (&rng, want [i], text, sizeof text);
        fprintf (in, "%s\n", text);
    }
    fclose (in);
    char pargs [PATH_MAX * 2 + 64];
    snprintf (pargs, sizeof pargs, "predict --model newsclf@1 --data %s < %s", data, inputs);
    char out [8192];
    assert_int_equal (s_cli (env, pargs, out, sizeof out), 0);
    int right = 0, lines = 0;
    for (char *save = NULL, *l = strtok_r (out, "\n", &save); l; l = strtok_r (NULL, "\n", &save)) {
        if (!strncmp (l, "predict:", 8))
            continue;            /* the banner on stderr */
        char label [64];
        double prob;
        assert_int_equal (sscanf (l, "%63s %lf", label, &prob), 2);
        assert_true (prob >= 0 && prob <= 1);
        right += lines < 20 && !strcmp (label, ttd_labels [want [lines]]);
        lines++;
    }
    fprintf (stderr, "predict: %d of %d right\n", right, lines);
    assert_int_equal (lines, 20);
    assert_true (right >= 16);

    /* the new version is in the registry from its birth, stage none */
    ty_registry_t *reg = NULL;
    assert_int_equal (ty_registry_open (data, &reg), TY_OK);
    ty_stage_t stage = TY_STAGE_PRODUCTION;
    int rollout = -1;
    assert_int_equal (ty_registry_version_stage (reg, "newsclf", 1, &stage, &rollout), TY_OK);
    assert_int_equal (stage, TY_STAGE_NONE);
    ty_registry_destroy (&reg);
    ty_testenv_passed (env);
}

static void
test_train_cancel_within_a_second (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    char data [PATH_MAX];
    tti_data_dir (env, data, sizeof data);
    ttd_make_text (data, "slow", 300, 50, 12);
    ty_it_must_cluster (env, TY_TESTENV_HEARTBEAT_MS, NULL, NULL, 0);
    const char *slow [] = { "--test-step-delay-ms", "20", NULL };
    tti_must_start_worker (env, "t1", data, slow);
    ty_client_t *c = ty_it_must_client (it);

    ttd_spec_t t;
    ttd_textclf (&t, "slow", "slowclf", 50);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, id, NULL);
    /* in the middle of epoch 2: one epoch done, the next under way */
    if (tti_wait_metric (env, id, "epochs_done", 1, 20000) != 0)
        fail_msg ("job %s never finished an epoch", id);
    ty_testenv_sleep_ms (100);

    int64_t t0 = ty_testenv_now_ms ();
    int rc = ty_client_cancel (c, id, "test: cancel during an epoch", TY_IT_RPC_MS);
    if (rc != TY_OK)
        fail_msg ("cancel: %s", ty_client_errstr (c));
    tti_must_reach (env, id, "CANCELLED", 5000, "t1");
    int64_t took = ty_testenv_now_ms () - t0;
    fprintf (stderr, "cancel: train job CANCELLED %lld ms after the request\n", (long long) took);
    assert_true (took < S_CANCEL_MS);

    char p [PATH_MAX + 64];
    snprintf (p, sizeof p, "%s/models/slowclf/1", data);
    assert_false (s_exists (p));
    snprintf (p, sizeof p, "%s/checkpoints/%s", data, id);
    assert_false (s_exists (p));

    /* the worker is free and trains the next job */
    ttd_textclf (&t, "slow", "slowclf", 1);
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, id, NULL);
    tti_must_reach (env, id, "SUCCEEDED", TTI_JOB_MS, "t1");
    char model [128];
    tti_output (c, id, "model", model, sizeof model);
    assert_string_equal (model, "slowclf@1");
    ty_testenv_passed (env);
}

/* Submits t, waits for FAILED and checks that the reason names the problem. */
static void
s_expect_failed (ty_testenv_t *env, ty_client_t *c, ttd_spec_t *t, const char *phrase)
{
    char id [TY_ID_LEN + 1];
    t->spec.max_attempts = 1;
    ty_it_must_submit (c, &t->spec, NULL, 0, NULL, id, NULL);
    tti_must_reach (env, id, "FAILED", TTI_JOB_MS, "t1");
    char *err = ty_testenv_job_field (env, id, "error");
    fprintf (stderr, "FAILED as expected: %s\n", err ? err : "(no reason)");
    if (!err || !strstr (err, phrase)) {
        free (err);
        fail_msg ("job %s: the reason does not name the problem ('%s')", id, phrase);
    }
    free (err);
}

static void
test_train_bad_input_fails_job (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    char data [PATH_MAX];
    tti_data_dir (env, data, sizeof data);
    ttd_make_text (data, "txt", 100, 20, 13);
    ttd_make_images (data, "img", 10);
    ttd_make_features (data, "nan", 20, 3);
    ttd_make_empty_train (data, "empty");
    ty_it_must_cluster (env, TY_TESTENV_HEARTBEAT_MS, NULL, NULL, 0);
    pid_t worker = tti_must_start_worker (env, "t1", data, NULL);
    ty_client_t *c = ty_it_must_client (it);
    ttd_spec_t t;

    ttd_spec (&t, "txt", "gpt", "m");
    s_expect_failed (env, c, &t, "unknown model kind 'gpt'");
    ttd_textclf (&t, "img", "m", 1);
    s_expect_failed (env, c, &t, "wrong sample type");
    ttd_textclf (&t, "empty", "m", 1);
    s_expect_failed (env, c, &t, "zero samples");
    ttd_spec (&t, "nan", "mlp", "m");
    s_expect_failed (env, c, &t, "NaN/inf feature");
    ttd_textclf (&t, "txt", "m", 1);
    ttd_param (&t, "dim", "0");
    s_expect_failed (env, c, &t, "dim must be");
    ttd_textclf (&t, "txt", "m", 1);
    t.train.lr = -1;
    s_expect_failed (env, c, &t, "lr must be > 0");

    /* the worker is the same process and trains a good job */
    assert_true (ty_testenv_alive (env, worker));
    ttd_textclf (&t, "txt", "m", 1);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, id, NULL);
    tti_must_reach (env, id, "SUCCEEDED", TTI_JOB_MS, "t1");
    ty_it_assert_field (env, id, "worker", "t1");
    char model [128];
    tti_output (c, id, "model", model, sizeof model);
    assert_string_equal (model, "m@1");     /* no failed job made a version */
    ty_testenv_passed (env);
}


static void
test_train_cli_config_and_watch (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    char data [PATH_MAX];
    tti_data_dir (env, data, sizeof data);
    ttd_make_text (data, "clinews", 300, 100, 14);
    ty_it_must_cluster (env, TY_TESTENV_HEARTBEAT_MS, NULL, NULL, 0);
    tti_must_start_worker (env, "t1", data, NULL);

    char cfg [PATH_MAX];
    ty_testenv_path (env, "clf.yaml", cfg, sizeof cfg);
    FILE *f = fopen (cfg, "w");
    assert_non_null (f);
    fprintf (f, "# the shape of the workflows' training configs\n"
                "dataset: clinews@1\n"
                "model: textclf\n"
                "name: clinewsclf\n"
                "architecture:\n  dim: 16\n  wordNgrams: 2\n  bucket: 20000\n"
                "training:\n  epochs: 6\n  lr: 0.5\n  batch_size: 16\n  seed: 42\n"
                "resources:\n  threads: 1\n  memory_cap_mb: 4000\n");
    fclose (f);
    char out [8192], args [PATH_MAX + 64];
    /* a flag wins over the file: 2 epochs, not 6 */
    snprintf (args, sizeof args, "train --config %s --epochs 2", cfg);
    int rc = s_cli (env, args, out, sizeof out);
    assert_int_equal (rc, 0);
    assert_non_null (strstr (out, "model clinewsclf@1"));
    assert_non_null (strstr (out, "of 2)"));
    char p [PATH_MAX + 64];
    snprintf (p, sizeof p, "%s/models/clinewsclf/1/model.pt", data);
    assert_true (s_exists (p));


    /* usage errors are exit 2 and say what is missing; a failed job is 1 */
    rc = s_cli (env, "train --model textclf --name x", out, sizeof out);
    assert_int_equal (rc, 2);
    assert_non_null (strstr (out, "missing --dataset"));
    rc = s_cli (env, "train --dataset clinews --model textclf --name x --lr -1", out, sizeof out);
    assert_int_equal (rc, 1);
    assert_non_null (strstr (out, "lr must be > 0"));
    ty_testenv_passed (env);
}

TY_IT_SETUP ("train")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_train_learns_and_reports, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_train_cancel_within_a_second, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_train_bad_input_fails_job, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_train_cli_config_and_watch, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

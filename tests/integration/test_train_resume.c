/*  test_train_resume: kill -9 of the train worker after epoch 2 of 4. The
 *  broker gives the job to another worker as attempt 2, which resumes from
 *  the epoch-2 checkpoint: its first reported epoch is 3, and the model it
 *  publishes has the very weights of an uninterrupted run (1 thread, same
 *  seed: equal digests over every parameter's bytes). */
#include "test_train_it.h"
#include "test_train_data.h"

#include <signal.h>

/* The smallest value of a metric an attempt reported in
 * ty:job:<id>:metrics (-1 if none). */
static int
s_min_metric (ty_testenv_t *env, const char *id, unsigned attempt, const char *key)
{
    redisReply *r = ty_testenv_must_redis (env, "XRANGE ty:job:%s:metrics - +", id);
    int first = -1;
    char att [16];
    snprintf (att, sizeof att, "%u", attempt);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *f = r->element [i]->element [1];
        int mine = 0, epoch = -1;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (!strcmp (f->element [k]->str, "attempt"))
                mine = !strcmp (f->element [k + 1]->str, att);
            else if (!strcmp (f->element [k]->str, key))
                epoch = atoi (f->element [k + 1]->str);
        }
        if (mine && epoch >= 0 && (first < 0 || epoch < first))
            first = epoch;
    }
    freeReplyObject (r);
    return first;
}

static void
test_train_resume_after_kill9 (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    char data [PATH_MAX];
    tti_data_dir (env, data, sizeof data);
    ttd_make_text (data, "res", 400, 100, 21);
    ty_it_must_cluster (env, TY_TESTENV_HEARTBEAT_MS, NULL, NULL, 0);
    /* ~25 steps of 25 ms: an epoch takes well over half a second, so the
     * kill lands in epoch 3, long before its checkpoint */
    const char *slow [] = { "--test-step-delay-ms", "25", NULL };
    pid_t w1 = tti_must_start_worker (env, "t1", data, slow);
    ty_client_t *c = ty_it_must_client (it);

    /* the reference: the same job, uninterrupted */
    ttd_spec_t t;
    ttd_textclf (&t, "res", "resclf", 4);
    char ref [TY_ID_LEN + 1];
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, ref, NULL);
    tti_must_reach (env, ref, "SUCCEEDED", TTI_JOB_MS, "t1");
    char ref_digest [32], ref_metric [32];
    tti_output (c, ref, "weights_digest", ref_digest, sizeof ref_digest);
    tti_output (c, ref, "best_metric", ref_metric, sizeof ref_metric);
    assert_int_equal (strlen (ref_digest), 16);

    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, id, NULL);
    if (tti_wait_metric (env, id, "epochs_done", 2, 30000) != 0)
        fail_msg ("job %s never finished epoch 2", id);
    assert_int_equal (ty_testenv_signal (env, w1, SIGKILL), 0);
    char *done = ty_testenv_job_field (env, id, "metric.epochs_done");
    fprintf (stderr, "killed the worker with epochs_done = %s\n", done ? done : "?");
    assert_non_null (done);
    assert_string_equal (done, "2");
    free (done);
    char ck [PATH_MAX + 64];
    snprintf (ck, sizeof ck, "%s/checkpoints/%s/state.json", data, id);
    struct stat st;
    assert_int_equal (stat (ck, &st), 0);

    /* another worker takes attempt 2 */
    tti_must_start_worker (env, "t2", data, NULL);
    tti_must_reach (env, id, "SUCCEEDED", TTI_JOB_MS, "t2");
    ty_it_assert_field (env, id, "attempt", "2");
    ty_it_assert_field (env, id, "worker", "t2");
    char resumed [16], digest [32], metric [32], model [128];
    tti_output (c, id, "resumed_from_epoch", resumed, sizeof resumed);
    tti_output (c, id, "weights_digest", digest, sizeof digest);
    tti_output (c, id, "best_metric", metric, sizeof metric);
    tti_output (c, id, "model", model, sizeof model);
    fprintf (stderr, "attempt 2 resumed after epoch %s: %s digest %s (reference %s)\n", resumed,
             model, digest, ref_digest);
    assert_string_equal (resumed, "2");
    /* attempt 2 started at epoch 3 and never reported an earlier one */
    assert_int_equal (s_min_metric (env, id, 2, "first_epoch"), 3);
    assert_true (s_min_metric (env, id, 2, "epoch") >= 3);
    assert_int_equal (s_min_metric (env, id, 1, "first_epoch"), 1);
    assert_string_equal (digest, ref_digest);
    assert_string_equal (metric, ref_metric);
    /* one version per successful job: the killed attempt published nothing */
    assert_string_equal (model, "resclf@2");
    assert_int_not_equal (stat (ck, &st), 0);
    ty_testenv_passed (env);
}

TY_IT_SETUP ("train-resume")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_train_resume_after_kill9, s_setup, ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

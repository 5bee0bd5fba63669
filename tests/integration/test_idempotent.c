/*  test_idempotent: a SUBMIT with an idempotency key returns the existing
 *  job instead of a duplicate - while it runs, after it ended, and after a
 *  broker restart (the key lives in Redis, not in the broker's memory). */
#include "ty_it.h"

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS

static long long
s_job_count (ty_testenv_t *env)
{
    redisReply *r = ty_testenv_must_redis (env, "ZCARD ty:jobs");
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject (r);
    return n;
}

static void
test_idempotent_same_key_same_job (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, 300, 0, NULL);
    char first [TY_ID_LEN + 1], second [TY_ID_LEN + 1], third [TY_ID_LEN + 1];
    int existed = -1;
    ty_it_must_submit (c, &n.spec, NULL, 0, "nightly-2024-05-01", first, &existed);
    assert_int_equal (existed, 0);
    /* Again at once, as a client retrying after a lost reply would. */
    existed = -1;
    ty_it_must_submit (c, &n.spec, NULL, 0, "nightly-2024-05-01", second, &existed);
    assert_int_equal (existed, 1);
    assert_string_equal (first, second);

    /* After it ended, still the same job, not a new run. */
    assert_int_equal (ty_testenv_wait_state (env, first, "SUCCEEDED", 10000), 0);
    existed = -1;
    ty_it_must_submit (c, &n.spec, NULL, 0, "nightly-2024-05-01", third, &existed);
    assert_int_equal (existed, 1);
    assert_string_equal (first, third);

    /* A second client gets the same answer. */
    ty_client_t *c2 = ty_client_new (ty_testenv_client_ep (env));
    assert_non_null (c2);
    char fourth [TY_ID_LEN + 1];
    existed = -1;
    int rc = ty_client_submit (c2, &n.spec, NULL, 0, "nightly-2024-05-01", TY_IT_RPC_MS,
                               fourth, &existed);
    ty_client_destroy (&c2);
    assert_int_equal (rc, TY_OK);
    assert_int_equal (existed, 1);
    assert_string_equal (first, fourth);

    /* Another key is another job. */
    char other [TY_ID_LEN + 1];
    existed = -1;
    ty_it_must_submit (c, &n.spec, NULL, 0, "nightly-2024-05-02", other, &existed);
    assert_int_equal (existed, 0);
    assert_string_not_equal (first, other);
    assert_int_equal (ty_testenv_wait_state (env, other, "SUCCEEDED", 10000), 0);

    assert_int_equal (s_job_count (env), 2);
    assert_int_equal (ty_testenv_exec_count (env, first, 0), 1);
    ty_testenv_passed (env);
}

static void
test_idempotent_survives_broker_restart (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, 0, 0, NULL);
    char first [TY_ID_LEN + 1], again [TY_ID_LEN + 1];
    int existed = -1;
    ty_it_must_submit (c, &n.spec, NULL, 0, "retrain:filenames", first, &existed);
    assert_int_equal (existed, 0);
    assert_int_equal (ty_testenv_wait_state (env, first, "SUCCEEDED", 10000), 0);

    ty_testenv_kill_broker (env, SIGKILL);
    ty_testenv_must_restart_broker (env);
    existed = -1;
    ty_it_must_submit (c, &n.spec, NULL, 0, "retrain:filenames", again, &existed);
    assert_int_equal (existed, 1);
    assert_string_equal (first, again);
    assert_int_equal (s_job_count (env), 1);
    ty_testenv_passed (env);
}

TY_IT_SETUP ("idempotent")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_idempotent_same_key_same_job, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_idempotent_survives_broker_restart, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

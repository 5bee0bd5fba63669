/*  test_cancel: CANCEL is a state in Redis. A queued job is CANCELLED at
 *  once and never starts later; a running job is stopped by its worker
 *  within a second and the worker is free again; a finished or unknown job
 *  cannot be cancelled. */
#include "ty_it.h"

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS
#define S_CANCEL_MS      1000     /* a running job must stop within this */

/* No worker of the type exists: the job stays QUEUED until cancelled, and a
   worker that arrives later must not run it. */
static void
test_cancel_queued_no_worker (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 0);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, 0, 0, NULL);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "QUEUED", 2000), 0);

    int rc = ty_client_cancel (c, id, "test: cancel while queued", TY_IT_RPC_MS);
    if (rc != TY_OK)
        fail_msg ("cancel: %s: %s", ty_strerror (rc), ty_client_errstr (c));
    /* At once: by the time the reply is here, Redis says so. */
    ty_it_assert_field (env, id, "state", "CANCELLED");
    assert_int_equal (ty_testenv_event_count (env, id, "CANCELLED"), 1);

    /* A worker arrives: the cancelled job never starts. */
    ty_testenv_must_start_worker (env, "w1", S_HEARTBEAT_MS, NULL);
    assert_int_equal (ty_testenv_wait_worker (env, "w1", TY_TESTENV_STARTUP_MS), 0);
    char next [TY_ID_LEN + 1];
    ty_it_must_run_one (env, c, 0, 10000, next);
    ty_testenv_sleep_ms (300);
    ty_it_assert_field (env, id, "state", "CANCELLED");
    assert_int_equal (ty_testenv_exec_count (env, id, 0), 0);
    assert_int_equal (ty_testenv_event_count (env, id, "RUNNING"), 0);
    ty_testenv_passed (env);
}

/* The only worker is busy: the second job waits in the queue, is cancelled
   there, and is not run when the worker frees up. */
static void
test_cancel_queued_behind_busy_worker (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t busy, small;
    ty_it_noop (&busy, 1000, 0, NULL);
    ty_it_noop (&small, 0, 0, NULL);
    char busy_id [TY_ID_LEN + 1], id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &busy.spec, NULL, 0, NULL, busy_id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, busy_id, "RUNNING", 5000), 0);
    ty_it_must_submit (c, &small.spec, NULL, 0, NULL, id, NULL);
    ty_it_assert_field (env, id, "state", "QUEUED");

    int rc = ty_client_cancel (c, id, "test: cancel behind a busy worker", TY_IT_RPC_MS);
    if (rc != TY_OK)
        fail_msg ("cancel: %s: %s", ty_strerror (rc), ty_client_errstr (c));
    ty_it_assert_field (env, id, "state", "CANCELLED");

    assert_int_equal (ty_testenv_wait_state (env, busy_id, "SUCCEEDED", 10000), 0);
    ty_testenv_sleep_ms (300);
    ty_it_assert_field (env, id, "state", "CANCELLED");
    assert_int_equal (ty_testenv_exec_count (env, id, 0), 0);
    ty_testenv_passed (env);
}

static void
test_cancel_running_within_a_second (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, 30000, 0, NULL);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "RUNNING", 5000), 0);
    ty_testenv_sleep_ms (200);

    int64_t t0 = ty_testenv_now_ms ();
    int rc = ty_client_cancel (c, id, "test: cancel while running", TY_IT_RPC_MS);
    if (rc != TY_OK)
        fail_msg ("cancel: %s: %s", ty_strerror (rc), ty_client_errstr (c));
    assert_int_equal (ty_testenv_wait_state (env, id, "CANCELLED", 5000), 0);
    int64_t took = ty_testenv_now_ms () - t0;
    fprintf (stderr, "cancel: running job CANCELLED %lld ms after the request\n",
             (long long) took);
    assert_true (took < S_CANCEL_MS);
    assert_int_equal (ty_testenv_event_count (env, id, "CANCELLED"), 1);

    /* The worker really stopped the job: it is free for the next one long
       before the 30 s sleep would have ended, and the job never completed. */
    char next [TY_ID_LEN + 1];
    ty_it_must_run_one (env, c, 0, 5000, next);
    ty_it_assert_field (env, next, "worker", "w1");
    assert_int_equal (ty_testenv_exec_count (env, id, 0), 0);
    ty_it_assert_field (env, id, "state", "CANCELLED");
    ty_testenv_passed (env);
}

/* JobSpec.timeout_ms: a job running past it is stopped and FAILS with a
 * reason that says so; the worker is free again at once. */
static void
test_cancel_job_timeout_fails_it (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, 30000, 0, NULL);
    n.spec.timeout_ms = 300;
    char id [TY_ID_LEN + 1];
    int64_t t0 = ty_testenv_now_ms ();
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "FAILED", 5000), 0);
    int64_t took = ty_testenv_now_ms () - t0;
    fprintf (stderr, "timeout: 300 ms job timeout ended the job after %lld ms\n",
             (long long) took);
    assert_true (took >= 300 && took < 300 + S_CANCEL_MS);
    char *err = ty_testenv_job_field (env, id, "error");
    assert_non_null (err);
    if (!strstr (err, "timed out after 300 ms"))
        fail_msg ("error '%s' does not say it timed out", err);
    free (err);
    assert_int_equal (ty_testenv_exec_count (env, id, 0), 0);
    assert_int_equal (ty_testenv_event_count (env, id, "FAILED"), 1);
    char next [TY_ID_LEN + 1];
    ty_it_must_run_one (env, c, 0, 5000, next);
    ty_testenv_passed (env);
}

static void
test_cancel_finished_or_unknown_refused (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);

    char id [TY_ID_LEN + 1];
    ty_it_must_run_one (env, c, 0, 10000, id);
    int rc = ty_client_cancel (c, id, "too late", TY_IT_RPC_MS);
    if (rc != TY_ESTATE)
        fail_msg ("cancel of a SUCCEEDED job: %s (%d), want TY_ESTATE: %s", ty_strerror (rc),
                  rc, ty_client_errstr (c));
    ty_it_assert_field (env, id, "state", "SUCCEEDED");

    rc = ty_client_cancel (c, "0000000000zzzzzz", "no such job", TY_IT_RPC_MS);
    if (rc != TY_ENOTFOUND)
        fail_msg ("cancel of an unknown job: %s (%d), want TY_ENOTFOUND: %s", ty_strerror (rc),
                  rc, ty_client_errstr (c));
    ty_testenv_passed (env);
}

TY_IT_SETUP ("cancel")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_cancel_queued_no_worker, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_queued_behind_busy_worker, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_running_within_a_second, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_job_timeout_fails_it, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_finished_or_unknown_refused, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_kill_worker: kill -9 of the worker running a job. The broker must
 *  notice the missing heartbeats (3 x 100 ms), put the job back in the queue
 *  as attempt 2 and give it to the other worker, where it succeeds. The
 *  killed worker never completed it (exec log: only attempt 2). And a job
 *  that kills every worker it runs on stops at max_attempts. */
#include "ty_it.h"

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS
#define S_JOB_MS         2000     /* long enough to be killed mid-job */

static void
test_kill_worker_job_moves_to_other_worker (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 0);
    pid_t w1 = ty_testenv_must_start_worker (env, "w1", S_HEARTBEAT_MS, NULL);
    pid_t w2 = ty_testenv_must_start_worker (env, "w2", S_HEARTBEAT_MS, NULL);
    assert_int_equal (ty_testenv_wait_worker (env, "w1", TY_TESTENV_STARTUP_MS), 0);
    assert_int_equal (ty_testenv_wait_worker (env, "w2", TY_TESTENV_STARTUP_MS), 0);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, S_JOB_MS, 0, NULL);
    n.spec.max_attempts = 3;
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "RUNNING", 5000), 0);

    char *holder = ty_testenv_job_field (env, id, "worker");
    assert_non_null (holder);
    int first_is_w1 = !strcmp (holder, "w1");
    if (!first_is_w1 && strcmp (holder, "w2"))
        fail_msg ("RUNNING job %s names worker '%s'", id, holder);
    free (holder);
    const char *other = first_is_w1 ? "w2" : "w1";

    /* Let the job get going, then kill its worker without warning. */
    ty_testenv_sleep_ms (200);
    int64_t t_kill = ty_testenv_now_ms ();
    assert_int_equal (ty_testenv_signal (env, first_is_w1 ? w1 : w2, SIGKILL), 0);

    /* Re-queued after ~3 heartbeats, then S_JOB_MS on the other worker. */
    assert_int_equal (ty_testenv_wait_state (env, id, "SUCCEEDED", 15000), 0);
    fprintf (stderr, "kill_worker: succeeded %lld ms after the kill\n",
             (long long) (ty_testenv_now_ms () - t_kill));
    assert_int_equal (ty_testenv_job_num (env, id, "attempt"), 2);
    ty_it_assert_field (env, id, "worker", other);

    /* Completed once, by attempt 2; the killed attempt 1 never completed. */
    assert_int_equal (ty_testenv_exec_count (env, id, 2), 1);
    assert_int_equal (ty_testenv_exec_count (env, id, 0), 1);

    /* ty:events tells the story: RUNNING (1), QUEUED again, RUNNING (2), SUCCEEDED. */
    ty_testenv_event_t ev [16];
    int nev = ty_testenv_job_events (env, id, ev, 16);
    assert_true (nev >= 4 && nev <= 16);
    int running1 = -1, requeued = -1, running2 = -1;
    for (int i = 0; i < nev; i++) {
        if (!strcmp (ev [i].state, "RUNNING") && ev [i].attempt == 1 && running1 < 0)
            running1 = i;
        else if (!strcmp (ev [i].state, "QUEUED") && running1 >= 0 && requeued < 0)
            requeued = i;
        else if (!strcmp (ev [i].state, "RUNNING") && ev [i].attempt == 2)
            running2 = i;
    }
    if (!(running1 >= 0 && requeued > running1 && running2 > requeued)) {
        for (int i = 0; i < nev; i++)
            fprintf (stderr, "  event %d: %s attempt %u worker %s reason %s\n", i,
                     ev [i].state, ev [i].attempt, ev [i].worker, ev [i].reason);
        fail_msg ("events of %s do not show RUNNING(1) -> QUEUED -> RUNNING(2)", id);
    }
    assert_string_equal (ev [nev - 1].state, "SUCCEEDED");
    assert_int_equal (ty_testenv_event_count (env, id, "SUCCEEDED"), 1);
    ty_testenv_passed (env);
}

/* A poison job (noop crash: the worker abort()s mid-job) must not take the
   whole pool down: after max_attempts lost workers it is FAILED with a
   reason, and the remaining worker is left alone. */
static void
test_kill_worker_poison_job_stops_at_max_attempts (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 0);
    pid_t w [3];
    static const char *names [3] = { "w1", "w2", "w3" };
    for (int i = 0; i < 3; i++)
        w [i] = ty_testenv_must_start_worker (env, names [i], S_HEARTBEAT_MS, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal (ty_testenv_wait_worker (env, names [i], TY_TESTENV_STARTUP_MS), 0);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, 200, 0, NULL);
    n.noop.crash = 1;
    n.spec.max_attempts = 2;
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "FAILED", 15000), 0);
    assert_int_equal (ty_testenv_job_num (env, id, "attempt"), 2);
    char *err = ty_testenv_job_field (env, id, "error");
    assert_non_null (err);
    fprintf (stderr, "kill_worker: poison job's reason: %s\n", err);
    assert_true (*err != '\0');
    free (err);

    /* Give a wrongly granted third attempt time to show up, then count. */
    ty_testenv_sleep_ms (10 * S_HEARTBEAT_MS);
    ty_it_assert_field (env, id, "state", "FAILED");
    int alive = 0;
    for (int i = 0; i < 3; i++)
        alive += ty_testenv_alive (env, w [i]);
    assert_int_equal (alive, 1);
    assert_int_equal (ty_testenv_exec_count (env, id, 0), 0);
    assert_int_equal (ty_testenv_event_count (env, id, "RUNNING"), 2);
    ty_testenv_passed (env);
}

TY_IT_SETUP ("kill_worker")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_kill_worker_job_moves_to_other_worker, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_kill_worker_poison_job_stops_at_max_attempts,
                                         s_setup, ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

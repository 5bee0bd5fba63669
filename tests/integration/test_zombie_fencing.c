/*  test_zombie_fencing: a worker declared dead that comes back cannot
 *  overwrite the newer attempt's result. The worker holding a job is frozen
 *  (SIGSTOP) until the broker gives the job to another worker as attempt 2
 *  and that attempt succeeds; then the zombie is thawed (SIGCONT), finishes
 *  its stale attempt 1 and reports it. Redis must keep the attempt-2 result
 *  and ty:events must hold a single SUCCEEDED for the job. */
#include "ty_it.h"

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS
/* The zombie sleeps through detection (~3 heartbeats) plus attempt 2's full
   run, so when thawed its own sleep is over and it completes at once. */
#define S_JOB_MS         1500

static void
test_zombie_fencing_stale_result_ignored (void **state)
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
    int zombie_is_w1 = !strcmp (holder, "w1");
    free (holder);
    pid_t zombie = zombie_is_w1 ? w1 : w2;
    const char *zombie_id = zombie_is_w1 ? "w1" : "w2";
    const char *other = zombie_is_w1 ? "w2" : "w1";

    assert_int_equal (ty_testenv_signal (env, zombie, SIGSTOP), 0);

    /* Attempt 2 runs on the other worker and succeeds. */
    assert_int_equal (ty_testenv_wait_state (env, id, "SUCCEEDED", 15000), 0);
    assert_int_equal (ty_testenv_job_num (env, id, "attempt"), 2);
    ty_it_assert_field (env, id, "worker", other);
    assert_int_equal (ty_testenv_exec_count (env, id, 2), 1);
    assert_int_equal (ty_testenv_exec_count (env, id, 1), 0);   /* zombie still frozen */
    char *finished_before = ty_testenv_job_field (env, id, "finished_ms");
    assert_non_null (finished_before);

    /* Thaw the zombie: its attempt 1 completes (exec log) and it reports. */
    assert_int_equal (ty_testenv_signal (env, zombie, SIGCONT), 0);
    int64_t deadline = ty_testenv_now_ms () + 3000;
    int zombie_done = 0;
    while (!zombie_done && ty_testenv_now_ms () < deadline) {
        zombie_done = ty_testenv_exec_count (env, id, 1) == 1;
        ty_testenv_sleep_ms (20);
    }
    if (zombie_done)
        fprintf (stderr, "zombie_fencing: %s completed stale attempt 1 and reported it\n",
                 zombie_id);
    else
        /* The runtime may also learn it was fenced before the job ends and
           cancel it; then there is no stale result to send, which is fine. */
        fprintf (stderr, "zombie_fencing: %s did not complete attempt 1 (cancelled first)\n",
                 zombie_id);
    /* Leave the stale result (and any re-READY) time to reach the broker. */
    ty_testenv_sleep_ms (10 * S_HEARTBEAT_MS);

    /* Redis still holds the attempt-2 result, untouched. */
    ty_it_assert_field (env, id, "state", "SUCCEEDED");
    assert_int_equal (ty_testenv_job_num (env, id, "attempt"), 2);
    ty_it_assert_field (env, id, "worker", other);
    ty_it_assert_field (env, id, "finished_ms", finished_before);
    free (finished_before);

    /* One terminal transition only, and none from attempt 1. */
    ty_testenv_event_t ev [32];
    int nev = ty_testenv_job_events (env, id, ev, 32);
    assert_true (nev > 0 && nev <= 32);
    int succeeded = 0;
    for (int i = 0; i < nev; i++) {
        if (!strcmp (ev [i].state, "SUCCEEDED"))
            succeeded++;
        if (ev [i].attempt == 1 && (!strcmp (ev [i].state, "SUCCEEDED")
                                 || !strcmp (ev [i].state, "FAILED")))
            fail_msg ("a %s event of stale attempt 1 was recorded", ev [i].state);
    }
    assert_int_equal (succeeded, 1);
    assert_int_equal (ty_testenv_exec_count (env, id, 2), 1);

    /* The zombie survives being fenced and is useful again: with the other
       worker busy, a new job must go to it. */
    assert_true (ty_testenv_alive (env, zombie));
    ty_it_noop_t busy, small;
    ty_it_noop (&busy, 1500, 0, NULL);
    ty_it_noop (&small, 0, 0, NULL);
    char busy_id [TY_ID_LEN + 1], small_id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &busy.spec, NULL, 0, NULL, busy_id, NULL);
    ty_it_must_submit (c, &small.spec, NULL, 0, NULL, small_id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, small_id, "SUCCEEDED", 10000), 0);
    assert_int_equal (ty_testenv_wait_state (env, busy_id, "SUCCEEDED", 10000), 0);
    char *wb = ty_testenv_job_field (env, busy_id, "worker");
    char *ws = ty_testenv_job_field (env, small_id, "worker");
    assert_non_null (wb);
    assert_non_null (ws);
    int same = !strcmp (wb, ws);
    if (same)
        fprintf (stderr, "both follow-up jobs ran on %s: the zombie never came back\n", wb);
    free (wb);
    free (ws);
    assert_false (same);
    ty_testenv_passed (env);
}

/* A zombie's stale attempt fills its slot until it stops: the broker must
   not give that slot a job meanwhile. One worker only: frozen past the loss
   detection, its job is requeued as attempt 2 with nowhere to go; thawed, it
   says READY still holding attempt 1. The broker cancels attempt 1 and must
   wait for the slot to free before it assigns attempt 2 there. Before this
   was counted, the broker assigned attempt 2 at once, the busy worker
   refused it, the refusal requeued it (uncharged) as attempt 3, and so on
   (257 attempts were seen with a long training step that polls its cancel
   flag rarely). */
static void
test_zombie_slot_not_reused_while_busy (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 0);
    pid_t w1 = ty_testenv_must_start_worker (env, "w1", S_HEARTBEAT_MS, NULL);
    assert_int_equal (ty_testenv_wait_worker (env, "w1", TY_TESTENV_STARTUP_MS), 0);
    ty_client_t *c = ty_it_must_client (it);
    ty_it_noop_t n;
    ty_it_noop (&n, S_JOB_MS, 0, NULL);
    n.spec.max_attempts = 3;
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "RUNNING", 5000), 0);
    assert_int_equal (ty_testenv_signal (env, w1, SIGSTOP), 0);
    assert_int_equal (ty_testenv_wait_state (env, id, "QUEUED", 10000), 0);
    assert_int_equal (ty_testenv_signal (env, w1, SIGCONT), 0);
    assert_int_equal (ty_testenv_wait_state (env, id, "SUCCEEDED", 15000), 0);
    /* attempt 2 ran once, on w1 after attempt 1 stopped; no refusals */
    assert_int_equal (ty_testenv_job_num (env, id, "attempt"), 2);
    assert_int_equal (ty_testenv_exec_count (env, id, 2), 1);
    assert_int_equal (ty_testenv_event_count (env, id, "SUCCEEDED"), 1);
    ty_testenv_passed (env);
}

TY_IT_SETUP ("zombie_fencing")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_zombie_fencing_stale_result_ignored, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_zombie_slot_not_reused_while_busy, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_worker_sigterm: a worker's life. SIGTERM in the middle of a short
 *  job: the runtime stops taking jobs but lets the running one finish: the
 *  job ends SUCCEEDED as attempt 1 on that worker, and only then does the
 *  process exit, cleanly. And at start it registers at once, not at its
 *  first heartbeat. */
#include "ty_it.h"

#include <sys/wait.h>
#include <time.h>

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS
#define S_JOB_MS         1000     /* well inside the runtime's 10 s drain */

static void
test_worker_sigterm_finishes_running_job (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 0);
    pid_t w1 = ty_testenv_must_start_worker (env, "w1", S_HEARTBEAT_MS, NULL);
    assert_int_equal (ty_testenv_wait_worker (env, "w1", TY_TESTENV_STARTUP_MS), 0);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, S_JOB_MS, 0, NULL);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "RUNNING", 5000), 0);
    ty_testenv_sleep_ms (200);

    int64_t t_term = ty_testenv_now_ms ();
    assert_int_equal (ty_testenv_signal (env, w1, SIGTERM), 0);
    int status = 0;
    if (ty_testenv_wait_exit (env, w1, 15000, &status) != 0)
        fail_msg ("worker still running 15 s after SIGTERM");
    int64_t t_exit = ty_testenv_now_ms ();
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    long long wall_exit = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    fprintf (stderr, "worker_sigterm: exited %lld ms after SIGTERM, status %d\n",
             (long long) (t_exit - t_term), status);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);

    /* It waited for the job: at least the rest of the 1 s sleep. */
    assert_true (t_exit - t_term >= S_JOB_MS - 200 - 100);
    assert_int_equal (ty_testenv_wait_state (env, id, "SUCCEEDED", 5000), 0);
    assert_int_equal (ty_testenv_job_num (env, id, "attempt"), 1);
    ty_it_assert_field (env, id, "worker", "w1");
    assert_int_equal (ty_testenv_exec_count (env, id, 1), 1);
    assert_int_equal (ty_testenv_exec_count (env, id, 0), 1);
    /* The result was delivered before the exit, not recovered afterwards. */
    long long finished = ty_testenv_job_num (env, id, "finished_ms");
    assert_true (finished > 0 && finished <= wall_exit + 5);
    ty_testenv_passed (env);
}

/* A worker registers as soon as its connection is up, not at its first
   heartbeat: its READY is sent again until the socket has a peer (the
   runtime queues nothing while disconnected). With 5 s heartbeats, a READY
   lost at start would show here as a registration after ~5 s. */
#define S_SLOW_HEARTBEAT_MS 5000

static void
test_worker_registers_before_first_heartbeat (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_SLOW_HEARTBEAT_MS, NULL, NULL, 0);
    int64_t t0 = ty_testenv_now_ms ();
    ty_testenv_must_start_worker (env, "w1", S_SLOW_HEARTBEAT_MS, NULL);
    assert_int_equal (ty_testenv_wait_worker (env, "w1", S_SLOW_HEARTBEAT_MS / 2), 0);
    fprintf (stderr, "worker_sigterm: registered %lld ms after start\n",
             (long long) (ty_testenv_now_ms () - t0));
    ty_testenv_passed (env);
}

TY_IT_SETUP ("worker_sigterm")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_worker_sigterm_finishes_running_job, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_worker_registers_before_first_heartbeat, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

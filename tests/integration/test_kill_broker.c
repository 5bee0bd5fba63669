/*  test_kill_broker: kill -9 of the broker with 500 jobs queued or running;
 *  the workers keep running. A new broker on the same endpoints rebuilds its
 *  queues and leases from Redis and the workers re-attach: all 500 succeed
 *  and none is executed to completion twice (exec log). The client that
 *  submitted them reconnects by itself and can submit again. And a worker
 *  registers with the restarted broker at once, not at its next heartbeat. */
#include "ty_it.h"

#define S_JOBS           500
#define S_JOB_MS         20       /* ~3.5 s of work on 3 workers: plenty in flight */
#define S_WORKERS        3
/* 200 ms: this test loads the machine; see test_many_jobs. */
#define S_HEARTBEAT_MS   200
#define S_DOWN_MS        1000     /* broker down this long: > 3 heartbeats */

static char s_ids [S_JOBS][TY_ID_LEN + 1];

static void
test_kill_broker_restart_loses_nothing (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, S_WORKERS);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, S_JOB_MS, 0, NULL);
    for (int i = 0; i < S_JOBS; i++)
        ty_it_must_submit (c, &n.spec, NULL, 0, NULL, s_ids [i], NULL);

    /* Kill while work is in flight: some done, most still queued/running. */
    int64_t deadline = ty_testenv_now_ms () + 20000;
    size_t done = 0;
    while (done < 20 && ty_testenv_now_ms () < deadline) {
        ty_testenv_execlog_t *log = ty_testenv_execlog_load (env);
        assert_non_null (log);
        done = ty_testenv_execlog_size (log);
        ty_testenv_execlog_destroy (&log);
        ty_testenv_sleep_ms (20);
    }
    assert_true (done >= 20);
    ty_testenv_kill_broker (env, SIGKILL);
    int64_t t_kill = ty_testenv_now_ms ();

    /* The test means something only if jobs were still open at the kill. */
    int open = 0;
    for (int i = 0; i < S_JOBS; i++) {
        char *s = ty_testenv_job_field (env, s_ids [i], "state");
        assert_non_null (s);
        if (!strcmp (s, "QUEUED") || !strcmp (s, "RUNNING") || !strcmp (s, "PENDING"))
            open++;
        free (s);
    }
    fprintf (stderr, "kill_broker: killed with %zu executed, %d of %d open\n", done, open, S_JOBS);
    assert_true (open > 100);

    /* Workers keep running meanwhile: they finish what they hold and must
       keep the results until a broker takes them. */
    ty_testenv_sleep_ms (S_DOWN_MS);
    ty_testenv_must_restart_broker (env);

    long ok = ty_testenv_wait_all_terminal (env, s_ids [0], sizeof s_ids [0], S_JOBS, 90000);
    fprintf (stderr, "kill_broker: all terminal %lld ms after the kill\n",
             (long long) (ty_testenv_now_ms () - t_kill));
    if (ok != S_JOBS) {
        for (int i = 0, shown = 0; i < S_JOBS && shown < 5; i++) {
            char *s = ty_testenv_job_field (env, s_ids [i], "state");
            if (!s || strcmp (s, "SUCCEEDED")) {
                char *e = ty_testenv_job_field (env, s_ids [i], "error");
                fprintf (stderr, "  job %s: %s (%s)\n", s_ids [i], s ? s : "?", e ? e : "");
                free (e);
                shown++;
            }
            free (s);
        }
        fail_msg ("%ld of %d jobs succeeded", ok, S_JOBS);
    }

    /* None executed to completion twice. */
    ty_testenv_execlog_t *log = ty_testenv_execlog_load (env);
    assert_non_null (log);
    assert_int_equal (ty_testenv_execlog_bad (log), 0);
    int twice = 0, never = 0;
    for (int i = 0; i < S_JOBS; i++) {
        int k = ty_testenv_execlog_count (log, s_ids [i], 0);
        if (k > 1 && twice++ < 5)
            fprintf (stderr, "  job %s completed %d times (attempt now %lld)\n", s_ids [i], k,
                     ty_testenv_job_num (env, s_ids [i], "attempt"));
        if (k == 0)
            never++;
    }
    ty_testenv_execlog_destroy (&log);
    assert_int_equal (twice, 0);
    /* A SUCCEEDED job without an execution would be a result out of thin air. */
    assert_int_equal (never, 0);

    /* The old client reconnects by itself to the restarted broker. */
    char extra [TY_ID_LEN + 1];
    ty_it_must_run_one (env, c, 0, 10000, extra);
    ty_testenv_passed (env);
}

/* A worker registers with a restarted broker as soon as its connection is
   back (its socket monitor sees the handshake), not at its next heartbeat:
   with 10 s heartbeats, a job submitted to the new broker runs at once. */
#define S_SLOW_HEARTBEAT_MS 10000

static void
test_kill_broker_worker_registers_at_once (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_SLOW_HEARTBEAT_MS, NULL, NULL, 1);
    ty_testenv_kill_broker (env, SIGKILL);
    /* Only a READY to the new broker writes the record again. */
    freeReplyObject (ty_testenv_must_redis (env, "DEL ty:worker:w1"));
    int64_t t0 = ty_testenv_now_ms ();
    ty_testenv_must_restart_broker (env);
    assert_int_equal (ty_testenv_wait_worker (env, "w1", S_SLOW_HEARTBEAT_MS / 4), 0);
    fprintf (stderr, "kill_broker: worker registered again %lld ms after the restart\n",
             (long long) (ty_testenv_now_ms () - t0));
    char id [TY_ID_LEN + 1];
    ty_it_must_run_one (env, ty_it_must_client (it), 0, S_SLOW_HEARTBEAT_MS / 4, id);
    ty_it_assert_field (env, id, "worker", "w1");
    ty_testenv_passed (env);
}

TY_IT_SETUP ("kill_broker")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_kill_broker_restart_loses_nothing, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_kill_broker_worker_registers_at_once, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_pipeline_run: pipeline files on a real cluster (redis, broker, noop
 *  workers). A 4-step chain runs in order as one Submit with the pipeline id
 *  and step names; a failing step cancels its dependents with the reason;
 *  `retry` resubmits only the failed step and its dependents and never runs
 *  a succeeded step again. */
#include "ty_it.h"
#include "ty_pipeline.h"

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS
#define S_WAIT_MS        20000

TY_IT_SETUP ("pipeline_run")

static ty_pipeline_t *
s_must_load (const char *yaml)
{
    ty_pipeline_t *p = NULL;
    char err [TY_PIPELINE_ERR_LEN];
    if (ty_pipeline_load_string (yaml, "it.yaml", NULL, 0, &p, err, sizeof err) != TY_OK)
        fail_msg ("load: %s", err);
    return p;
}

static void
s_must_submit (ty_pipeline_t *p, ty_client_t *c, char *id)
{
    char err [TY_PIPELINE_ERR_LEN];
    int rc = ty_pipeline_submit (p, c, NULL, NULL, TY_IT_RPC_MS, id, TY_PIPELINE_ID_LEN + 1,
                                 err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("submit: %s", err);
    assert_int_equal (strncmp (id, "p-", 2), 0);
}

static void
s_assert_after (ty_testenv_t *env, const char *prev, const char *next)
{
    long long fin = ty_testenv_job_num (env, prev, "finished_ms");
    long long start = ty_testenv_job_num (env, next, "started_ms");
    assert_true (fin > 0 && start > 0);
    if (start < fin)
        fail_msg ("%s started before its parent %s finished", next, prev);
}

/* The jobs of the pipeline, with the step names of each. */
static const Ty__JobInfo *
s_job_of_step (const Ty__JobList *list, const char *step, size_t nth)
{
    for (size_t i = 0; i < list->n_jobs; i++)
        if (!strcmp (ty_pipeline_job_step (list->jobs [i]), step) && nth-- == 0)
            return list->jobs [i];
    return NULL;
}

#define S_CHAIN \
    "name: chain\n" \
    "params: {ms: 150}\n" \
    "steps:\n" \
    "  a: {type: noop, sleep_ms: \"${params.ms}\"}\n" \
    "  b: {type: noop, needs: [a], sleep_ms: \"${params.ms}\"}\n" \
    "  c: {type: noop, needs: [b], sleep_ms: \"${params.ms}\", fail_message: \"${a.summary}\"}\n" \
    "  d: {type: noop, needs: [c], sleep_ms: \"${params.ms}\"}\n"

static void
test_pipeline_chain_runs_in_order (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 3);
    ty_client_t *c = ty_it_must_client (it);
    ty_pipeline_t *p = s_must_load (S_CHAIN);
    char id [TY_PIPELINE_ID_LEN + 1];
    s_must_submit (p, c, id);
    static const char *const steps [] = { "a", "b", "c", "d" };
    for (size_t i = 0; i < 4; i++)
        assert_string_equal (ty_pipeline_step_name (p, i), steps [i]);
    assert_int_equal (ty_testenv_wait_state (env, ty_pipeline_job_id (p, 3), "SUCCEEDED",
                                             S_WAIT_MS), 0);
    for (size_t i = 0; i + 1 < 4; i++)
        s_assert_after (env, ty_pipeline_job_id (p, i), ty_pipeline_job_id (p, i + 1));
    for (size_t i = 0; i < 4; i++) {
        ty_it_assert_field (env, ty_pipeline_job_id (p, i), "pipeline", id);
        assert_int_equal (ty_testenv_exec_count (env, ty_pipeline_job_id (p, i), 1), 1);
    }
    /* the jobs of the pipeline, by id, with their step names */
    Ty__JobList *list = NULL;
    char err [TY_PIPELINE_ERR_LEN];
    assert_int_equal (ty_pipeline_jobs (c, id, TY_IT_RPC_MS, &list, err, sizeof err), TY_OK);
    assert_int_equal (list->n_jobs, 4);
    for (size_t i = 0; i < 4; i++) {
        const Ty__JobInfo *j = s_job_of_step (list, steps [i], 0);
        assert_non_null (j);
        assert_string_equal (j->id, ty_pipeline_job_id (p, i));
        assert_string_equal (j->state, "SUCCEEDED");
    }
    ty_client_free_msg (list);
    /* nothing to retry when everything succeeded */
    size_t n = 99;
    assert_int_equal (ty_pipeline_retry (c, id, TY_IT_RPC_MS, &n, err, sizeof err), TY_ENOTFOUND);
    assert_int_equal (n, 0);
    ty_pipeline_destroy (&p);
    ty_testenv_passed (env);
}

/* kill -9 of the broker mid-pipeline: an 8-step chain of 300 ms steps whose
   steps pass outputs along (${prev.summary} in the next one's fail_message,
   which a noop that does not fail ignores); the broker is killed twice while
   it runs and restarted. The pipeline finishes, every step executed to
   completion exactly once (the workers' exec log), each after its parent. */
#define S_LONG_CHAIN \
    "name: long\n" \
    "steps:\n" \
    "  s0: {type: noop, sleep_ms: 300}\n" \
    "  s1: {type: noop, needs: [s0], sleep_ms: 300, fail_message: \"${s0.summary}\"}\n" \
    "  s2: {type: noop, needs: [s1], sleep_ms: 300, fail_message: \"${s1.summary}\"}\n" \
    "  s3: {type: noop, needs: [s2], sleep_ms: 300, fail_message: \"${s2.summary}\"}\n" \
    "  s4: {type: noop, needs: [s3], sleep_ms: 300, fail_message: \"${s3.summary}\"}\n" \
    "  s5: {type: noop, needs: [s4], sleep_ms: 300, fail_message: \"${s4.summary}\"}\n" \
    "  s6: {type: noop, needs: [s5], sleep_ms: 300, fail_message: \"${s5.summary}\"}\n" \
    "  s7: {type: noop, needs: [s6], sleep_ms: 300, fail_message: \"${s6.summary}\"}\n"
#define S_LONG_STEPS 8

static void
test_pipeline_survives_broker_kill (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 2);
    ty_client_t *c = ty_it_must_client (it);
    ty_pipeline_t *p = s_must_load (S_LONG_CHAIN);
    char id [TY_PIPELINE_ID_LEN + 1];
    s_must_submit (p, c, id);
    /* once when s1 runs, once when s4 runs */
    for (size_t k = 1; k < S_LONG_STEPS; k += 3) {
        assert_int_equal (ty_testenv_wait_state (env, ty_pipeline_job_id (p, k), "RUNNING",
                                                 S_WAIT_MS), 0);
        ty_testenv_kill_broker (env, SIGKILL);
        ty_testenv_sleep_ms (200);
        ty_testenv_must_restart_broker (env);
    }
    assert_int_equal (ty_testenv_wait_state (env, ty_pipeline_job_id (p, S_LONG_STEPS - 1),
                                             "SUCCEEDED", S_WAIT_MS), 0);
    for (size_t i = 0; i < S_LONG_STEPS; i++) {
        const char *job = ty_pipeline_job_id (p, i);
        ty_it_assert_field (env, job, "state", "SUCCEEDED");
        long long attempt = ty_testenv_job_num (env, job, "attempt");
        int runs = 0;
        for (long long a = 1; a <= attempt; a++)
            runs += ty_testenv_exec_count (env, job, (unsigned) a);
        if (runs != 1)
            fail_msg ("step s%zu executed to completion %d times", i, runs);
        assert_int_equal (ty_testenv_event_count (env, job, "SUCCEEDED"), 1);
        if (i > 0)
            s_assert_after (env, ty_pipeline_job_id (p, i - 1), job);
    }
    ty_pipeline_destroy (&p);
    ty_testenv_passed (env);
}

/* Per-step retries with backoff: a step that fails its first two tries and
   may retry twice succeeds on its third try, on the same attempt, after
   waiting 100 + 200 ms; one that fails more often than it may retry ends
   FAILED with the last try's reason, and its dependent is cancelled. */
#define S_RETRIES \
    "name: retries\n" \
    "steps:\n" \
    "  flaky: {type: noop, fail_tries: 2, retries: 2, retry_backoff: 100ms}\n" \
    "  broken: {type: noop, fail_tries: 5, retries: 1, retry_backoff: 50ms}\n" \
    "  after: {type: noop, needs: [broken]}\n"

static void
test_pipeline_step_retries_with_backoff (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 2);
    ty_client_t *c = ty_it_must_client (it);
    ty_pipeline_t *p = s_must_load (S_RETRIES);
    char id [TY_PIPELINE_ID_LEN + 1];
    s_must_submit (p, c, id);
    const char *flaky = ty_pipeline_job_id (p, 0), *broken = ty_pipeline_job_id (p, 1);
    const char *after = ty_pipeline_job_id (p, 2);
    assert_int_equal (ty_testenv_wait_state (env, flaky, "SUCCEEDED", S_WAIT_MS), 0);
    assert_int_equal (ty_testenv_job_num (env, flaky, "attempt"), 1);
    assert_int_equal (ty_testenv_exec_count (env, flaky, 1), 3);      /* 3 tries, 1 attempt */
    long long ran = ty_testenv_job_num (env, flaky, "finished_ms")
                  - ty_testenv_job_num (env, flaky, "started_ms");
    if (ran < 300)
        fail_msg ("3 tries with 100 + 200 ms of backoff took %lld ms", ran);
    assert_int_equal (ty_testenv_wait_state (env, after, "CANCELLED", S_WAIT_MS), 0);
    ty_it_assert_field (env, broken, "state", "FAILED");
    assert_int_equal (ty_testenv_exec_count (env, broken, 1), 2);
    char *why = ty_testenv_job_field (env, broken, "error");
    assert_non_null (why);
    if (!strstr (why, "(try 2)"))
        fail_msg ("broken's error '%s' is not its last try's", why);
    free (why);
    /* the job's log tells the tries */
    Ty__LogLines *log = NULL;
    assert_int_equal (ty_client_logs (c, flaky, 0, TY_IT_RPC_MS, &log), TY_OK);
    int told = 0;
    for (size_t i = 0; i < log->n_lines; i++)
        told += strstr (log->lines [i], "try 1 of 3 failed") != NULL;
    ty_client_free_msg (log);
    assert_int_equal (told, 1);
    ty_pipeline_destroy (&p);
    ty_testenv_passed (env);
}

#define S_FAILING \
    "name: failing\n" \
    "steps:\n" \
    "  a: {type: noop, sleep_ms: 50}\n" \
    "  b: {type: noop, needs: [a], fail: true, fail_message: boom}\n" \
    "  c: {type: noop, needs: [b]}\n" \
    "  d: {type: noop, needs: [c]}\n" \
    "  e: {type: noop, needs: [a]}\n"

static void
test_pipeline_failure_stops_dependents_and_retry (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 2);
    ty_client_t *c = ty_it_must_client (it);
    ty_pipeline_t *p = s_must_load (S_FAILING);
    char id [TY_PIPELINE_ID_LEN + 1];
    s_must_submit (p, c, id);
    char ids [5][TY_ID_LEN + 1];
    for (size_t i = 0; i < 5; i++)
        snprintf (ids [i], sizeof ids [i], "%s", ty_pipeline_job_id (p, i));
    /* order: a, b, c, d, e (topological, file order among equals) */
    assert_string_equal (ty_pipeline_step_name (p, 1), "b");
    assert_int_equal (ty_testenv_wait_state (env, ids [3], "CANCELLED", S_WAIT_MS), 0);
    assert_int_equal (ty_testenv_wait_state (env, ids [4], "SUCCEEDED", S_WAIT_MS), 0);
    ty_it_assert_field (env, ids [1], "state", "FAILED");
    ty_it_assert_field (env, ids [2], "state", "CANCELLED");
    /* the reason names the failed parent */
    char *why = ty_testenv_job_field (env, ids [2], "error");
    assert_non_null (why);
    if (!strstr (why, ids [1]))
        fail_msg ("c's error '%s' does not name b (%s)", why, ids [1]);
    free (why);

    char err [TY_PIPELINE_ERR_LEN];
    size_t n = 0;
    int rc = ty_pipeline_retry (c, id, TY_IT_RPC_MS, &n, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("retry: %s", err);
    /* b, c, d again; a and e succeeded and are not touched */
    assert_int_equal (n, 3);
    Ty__JobList *list = NULL;
    int64_t deadline = ty_testenv_now_ms () + S_WAIT_MS;
    const Ty__JobInfo *d2 = NULL;
    for (;;) {
        ty_client_free_msg (list);
        list = NULL;
        assert_int_equal (ty_pipeline_jobs (c, id, TY_IT_RPC_MS, &list, err, sizeof err), TY_OK);
        d2 = s_job_of_step (list, "d", 1);
        if ((d2 && !strcmp (d2->state, "CANCELLED")) || ty_testenv_now_ms () > deadline)
            break;
        ty_testenv_sleep_ms (100);
    }
    assert_non_null (d2);
    assert_string_equal (d2->state, "CANCELLED");
    assert_int_equal (list->n_jobs, 8);
    assert_null (s_job_of_step (list, "a", 1));
    assert_null (s_job_of_step (list, "e", 1));
    const Ty__JobInfo *b2 = s_job_of_step (list, "b", 1);
    assert_non_null (b2);
    assert_string_equal (b2->state, "FAILED");
    /* the new b hangs off the old, succeeded a */
    char b2id [TY_ID_LEN + 1];
    snprintf (b2id, sizeof b2id, "%s", b2->id);
    Ty__JobInfo *b2full = NULL;
    assert_int_equal (ty_client_status (c, b2->id, TY_IT_RPC_MS, &b2full), TY_OK);
    assert_int_equal (b2full->n_parents, 1);
    assert_string_equal (b2full->parents [0], ids [0]);
    ty_client_free_msg (b2full);
    ty_client_free_msg (list);
    /* the steps view: the newest job of each step, with outputs */
    assert_int_equal (ty_pipeline_steps (c, id, TY_IT_RPC_MS, &list, err, sizeof err), TY_OK);
    assert_int_equal (list->n_jobs, 5);
    assert_string_equal (ty_pipeline_job_step (list->jobs [1]), "b");
    assert_string_equal (list->jobs [1]->id, b2id);
    assert_string_equal (list->jobs [0]->id, ids [0]);
    assert_string_equal (list->jobs [0]->state, "SUCCEEDED");
    /* with what status gives and list does not: the parents */
    assert_int_equal (list->jobs [1]->n_parents, 1);
    assert_string_equal (list->jobs [1]->parents [0], ids [0]);
    ty_client_free_msg (list);
    assert_int_equal (ty_testenv_exec_count (env, ids [0], 1), 1);
    /* cancel: nothing left open */
    size_t nc = 99;
    assert_int_equal (ty_pipeline_cancel (c, id, NULL, TY_IT_RPC_MS, &nc, err, sizeof err), TY_OK);
    assert_int_equal (nc, 0);
    ty_pipeline_destroy (&p);
    ty_testenv_passed (env);
}

/* cancel stops the open jobs of a pipeline and only those */
static void
test_pipeline_cancel (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);
    ty_pipeline_t *p = s_must_load ("name: slow\nsteps:\n  a: {type: noop, sleep_ms: 20000}\n"
                                    "  b: {type: noop, needs: [a]}\n");
    char id [TY_PIPELINE_ID_LEN + 1];
    s_must_submit (p, c, id);
    assert_int_equal (ty_testenv_wait_state (env, ty_pipeline_job_id (p, 0), "RUNNING",
                                             S_WAIT_MS), 0);
    size_t n = 0;
    char err [TY_PIPELINE_ERR_LEN];
    assert_int_equal (ty_pipeline_cancel (c, id, "test", TY_IT_RPC_MS, &n, err, sizeof err), TY_OK);
    assert_true (n >= 1);
    assert_int_equal (ty_testenv_wait_state (env, ty_pipeline_job_id (p, 0), "CANCELLED",
                                             S_WAIT_MS), 0);
    assert_int_equal (ty_testenv_wait_state (env, ty_pipeline_job_id (p, 1), "CANCELLED",
                                             S_WAIT_MS), 0);
    Ty__JobList *list = NULL;
    assert_int_equal (ty_pipeline_jobs (c, "p-nosuchpipeline", TY_IT_RPC_MS, &list, err,
                                        sizeof err), TY_ENOTFOUND);
    ty_pipeline_destroy (&p);
    ty_testenv_passed (env);
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_pipeline_chain_runs_in_order, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_pipeline_failure_stops_dependents_and_retry,
                                         s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_pipeline_cancel, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_pipeline_survives_broker_kill, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_pipeline_step_retries_with_backoff, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

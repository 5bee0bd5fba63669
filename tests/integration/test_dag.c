/*  test_dag: jobs with parents. A chain runs in order even with idle workers
 *  for every step; a failing parent cancels its children and grandchildren
 *  with a reason that names the parent. */
#include "ty_it.h"

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS
#define S_STEP_MS        300

/* started(next) >= finished(prev), from the times the broker recorded. */
static void
s_assert_after (ty_testenv_t *env, const char *prev, const char *next)
{
    long long fin = ty_testenv_job_num (env, prev, "finished_ms");
    long long start = ty_testenv_job_num (env, next, "started_ms");
    assert_true (fin > 0);
    assert_true (start > 0);
    if (start < fin)
        fail_msg ("%s started at %lld, before its parent %s finished at %lld",
                  next, start, prev, fin);
}

/* Three workers are idle, so without the dependency B and C would start at
   once, together with A. */
static void
test_dag_chain_runs_in_order (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 3);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, S_STEP_MS, 0, NULL);
    char a [TY_ID_LEN + 1], b [TY_ID_LEN + 1], cc [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, a, NULL);
    const char *pa [] = { a };
    ty_it_must_submit (c, &n.spec, pa, 1, NULL, b, NULL);
    const char *pb [] = { b };
    ty_it_must_submit (c, &n.spec, pb, 1, NULL, cc, NULL);

    /* C waits for B: PENDING while A runs. */
    ty_it_assert_field (env, cc, "state", "PENDING");
    assert_int_equal (ty_testenv_wait_state (env, cc, "SUCCEEDED", 15000), 0);
    ty_it_assert_field (env, a, "state", "SUCCEEDED");
    ty_it_assert_field (env, b, "state", "SUCCEEDED");
    s_assert_after (env, a, b);
    s_assert_after (env, b, cc);
    /* The parents are recorded for operators. */
    char *parents = ty_testenv_job_field (env, b, "parents");
    assert_non_null (parents);
    assert_non_null (strstr (parents, a));
    free (parents);
    ty_testenv_passed (env);
}

/* The same chain as one atomic batch, linked by parent_items (how the
   scheduler submits a pipeline). */
static void
test_dag_batch_chain_runs_in_order (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 3);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, S_STEP_MS, 0, NULL);
    static const unsigned p0 [] = { 0 }, p1 [] = { 1 };
    ty_submit_item_t items [3];
    memset (items, 0, sizeof items);
    for (int i = 0; i < 3; i++)
        items [i].spec = &n.spec;
    items [1].parent_items = p0;
    items [1].nparent_items = 1;
    items [2].parent_items = p1;
    items [2].nparent_items = 1;
    char ids [3 * (TY_ID_LEN + 1)];
    int rc = ty_client_submit_batch (c, items, 3, 0, TY_IT_RPC_MS, ids);
    if (rc != TY_OK)
        fail_msg ("submit_batch: %s: %s", ty_strerror (rc), ty_client_errstr (c));
    const char *a = ids, *b = ids + (TY_ID_LEN + 1), *cc = ids + 2 * (TY_ID_LEN + 1);
    assert_true (ty_id_valid (a) && ty_id_valid (b) && ty_id_valid (cc));
    assert_int_equal (ty_testenv_wait_state (env, cc, "SUCCEEDED", 15000), 0);
    s_assert_after (env, a, b);
    s_assert_after (env, b, cc);
    ty_testenv_passed (env);
}

static void
test_dag_failing_parent_cancels_children (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 2);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t bad, ok;
    ty_it_noop (&bad, 200, 1, "boom: parent failed on purpose");
    bad.spec.max_attempts = 1;
    ty_it_noop (&ok, 0, 0, NULL);
    char p [TY_ID_LEN + 1], child [TY_ID_LEN + 1], grandchild [TY_ID_LEN + 1];
    ty_it_must_submit (c, &bad.spec, NULL, 0, NULL, p, NULL);
    const char *pp [] = { p };
    ty_it_must_submit (c, &ok.spec, pp, 1, NULL, child, NULL);
    const char *pc [] = { child };
    ty_it_must_submit (c, &ok.spec, pc, 1, NULL, grandchild, NULL);

    assert_int_equal (ty_testenv_wait_state (env, p, "FAILED", 10000), 0);
    char *perr = ty_testenv_job_field (env, p, "error");
    assert_non_null (perr);
    if (!strstr (perr, "boom"))
        fail_msg ("parent's error '%s' lost the job's own message", perr);
    free (perr);

    /* The child is cancelled, with a reason naming the parent. */
    assert_int_equal (ty_testenv_wait_state (env, child, "CANCELLED", 5000), 0);
    char *err = ty_testenv_job_field (env, child, "error");
    assert_non_null (err);
    fprintf (stderr, "dag: child's reason: %s\n", err);
    if (!*err || !strstr (err, p))
        fail_msg ("child's reason '%s' does not name the parent %s", err, p);
    free (err);
    /* And the cancellation goes on down the chain. */
    assert_int_equal (ty_testenv_wait_state (env, grandchild, "CANCELLED", 5000), 0);
    char *gerr = ty_testenv_job_field (env, grandchild, "error");
    assert_non_null (gerr);
    assert_true (*gerr != '\0');
    free (gerr);

    /* Neither ever ran, even later. */
    ty_testenv_sleep_ms (300);
    assert_int_equal (ty_testenv_exec_count (env, child, 0), 0);
    assert_int_equal (ty_testenv_exec_count (env, grandchild, 0), 0);
    assert_int_equal (ty_testenv_event_count (env, child, "RUNNING"), 0);
    ty_it_assert_field (env, child, "state", "CANCELLED");
    ty_testenv_passed (env);
}

TY_IT_SETUP ("dag")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_dag_chain_runs_in_order, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_dag_batch_chain_runs_in_order, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_dag_failing_parent_cancels_children, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

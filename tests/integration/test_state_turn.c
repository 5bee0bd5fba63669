/*  ty_state's turn recording against a real redis-server: HSETs of one job
 *  in one turn go out as one command (fewer Redis commands per job), the
 *  later value of a field wins as it would with two commands, and a
 *  caller-built command in between keeps its place (no joining across it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "ty_error.h"
#include "ty_state.h"
#include "ty_testenv.h"

typedef struct {
    ty_testenv_t *env;
    ty_redis_t   *redis;
    ty_state_t   *state;
} s_fixture;

static int
s_setup (void **state)
{
    s_fixture *f = calloc (1, sizeof *f);
    assert_non_null (f);
    f->env = ty_testenv_must_new ("state-turn");
    ty_testenv_must_start_redis (f->env, NULL);
    char url [64];
    snprintf (url, sizeof url, "redis://127.0.0.1:%d", ty_testenv_redis_port (f->env));
    f->redis = ty_redis_new (url);
    assert_non_null (f->redis);
    assert_int_equal (ty_redis_connect (f->redis), TY_OK);
    f->state = ty_state_new (f->redis, "ty:");
    assert_non_null (f->state);
    assert_int_equal (ty_state_claim (f->state, NULL), TY_OK);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture *f = *state;
    ty_state_destroy (&f->state);
    ty_redis_destroy (&f->redis);
    int rc = ty_testenv_finish (&f->env);
    free (f);
    return rc;
}

static void
s_expect_field (ty_testenv_t *env, const char *id, const char *field, const char *want)
{
    char *got = ty_testenv_job_field (env, id, field);
    if (!want) {
        assert_true (!got || !*got);
        free (got);
        return;
    }
    assert_non_null (got);
    assert_string_equal (got, want);
    free (got);
}

/* Submitted and assigned in one turn: one HSET, the later state wins, and
 * fields of both writes are there. */
static void
test_state_hsets_of_a_job_join (void **state)
{
    s_fixture *f = *state;
    const char *f1 [] = { "state", "queued_ms" };
    const char *v1 [] = { "QUEUED", "111" };
    ty_state_hset (f->state, "j1", 2, f1, v1, NULL);
    const char *pairs [] = { "job", "j1", "state", "QUEUED" };
    ty_state_event (f->state, 2, pairs);
    const char *f2 [] = { "x" };
    const char *v2 [] = { "other job" };
    ty_state_hset (f->state, "j2", 1, f2, v2, NULL);
    const char *f3 [] = { "state", "worker" };
    const char *v3 [] = { "RUNNING", "w1" };
    ty_state_hset (f->state, "j1", 2, f3, v3, NULL);
    /* HSET j1, XADD, HSET j2: the second HSET of j1 joined the first */
    assert_int_equal (ty_state_pending (f->state), 3);
    assert_int_equal (ty_state_commit (f->state), TY_OK);
    s_expect_field (f->env, "j1", "state", "RUNNING");
    s_expect_field (f->env, "j1", "queued_ms", "111");
    s_expect_field (f->env, "j1", "worker", "w1");
    s_expect_field (f->env, "j2", "x", "other job");

    /* the next turn starts afresh: a new command, not one already sent */
    const char *f4 [] = { "state" };
    const char *v4 [] = { "SUCCEEDED" };
    ty_state_hset (f->state, "j1", 1, f4, v4, NULL);
    assert_int_equal (ty_state_pending (f->state), 1);
    assert_int_equal (ty_state_commit (f->state), TY_OK);
    s_expect_field (f->env, "j1", "state", "SUCCEEDED");
    ty_testenv_passed (f->env);
}

/* A caller-built command between two HSETs of a job stays between them. */
static void
test_state_raw_command_is_a_barrier (void **state)
{
    s_fixture *f = *state;
    const char *fa [] = { "a" };
    const char *v1 [] = { "1" };
    ty_state_hset (f->state, "j3", 1, fa, v1, NULL);
    ty_argv_t *a = ty_state_raw (f->state);
    ty_argv_str (a, "HDEL");
    ty_argv_str (a, "ty:job:j3");
    ty_argv_str (a, "a");
    const char *v2 [] = { "2" };
    ty_state_hset (f->state, "j3", 1, fa, v2, NULL);
    assert_int_equal (ty_state_pending (f->state), 3);
    assert_int_equal (ty_state_commit (f->state), TY_OK);
    /* joined across the HDEL, the field would be gone */
    s_expect_field (f->env, "j3", "a", "2");

    /* HDEL last: the field is gone, whatever came before */
    ty_state_hset (f->state, "j4", 1, fa, v1, NULL);
    a = ty_state_raw (f->state);
    ty_argv_str (a, "HDEL");
    ty_argv_str (a, "ty:job:j4");
    ty_argv_str (a, "a");
    assert_int_equal (ty_state_commit (f->state), TY_OK);
    s_expect_field (f->env, "j4", "a", NULL);
    ty_testenv_passed (f->env);
}

/* A discarded turn leaves nothing open for joining. */
static void
test_state_discard_forgets (void **state)
{
    s_fixture *f = *state;
    const char *fa [] = { "a" };
    const char *v1 [] = { "1" };
    ty_state_hset (f->state, "j5", 1, fa, v1, NULL);
    ty_state_discard (f->state);
    const char *fb [] = { "b" };
    ty_state_hset (f->state, "j5", 1, fb, v1, NULL);
    assert_int_equal (ty_state_pending (f->state), 1);
    assert_int_equal (ty_state_commit (f->state), TY_OK);
    s_expect_field (f->env, "j5", "a", NULL);
    s_expect_field (f->env, "j5", "b", "1");
    ty_testenv_passed (f->env);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_state_hsets_of_a_job_join, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_state_raw_command_is_a_barrier, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_state_discard_forgets, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

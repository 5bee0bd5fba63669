/*  test_jobstate: the job lifecycle's names and its one transition table.
 *  The expected table is written out here a second time, from DESIGN.md, so
 *  that a change to common/ty_jobstate.c must be made on purpose in both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ty_jobstate.h"

#define P TY_JOB_PENDING
#define Q TY_JOB_QUEUED
#define R TY_JOB_RUNNING
#define S TY_JOB_SUCCEEDED
#define F TY_JOB_FAILED
#define C TY_JOB_CANCELLED
#define N TY_JOB_STATE_COUNT

/* DESIGN.md "Job lifecycle": PENDING waits for parents -> QUEUED -> RUNNING
   -> SUCCEEDED | FAILED | CANCELLED; a lost worker sends RUNNING back to
   QUEUED; a failed parent or a cancel ends PENDING/QUEUED in CANCELLED;
   QUEUED -> FAILED when a job cannot be dispatched at all (e.g. max_attempts
   reached while queued). Terminal states have no way out. */
static const unsigned char s_expected [N][N] = {
    /*            P  Q  R  S  F  C */
    /* P */     { 0, 1, 0, 0, 0, 1 },
    /* Q */     { 0, 0, 1, 0, 1, 1 },
    /* R */     { 0, 1, 0, 1, 1, 1 },
    /* S */     { 0, 0, 0, 0, 0, 0 },
    /* F */     { 0, 0, 0, 0, 0, 0 },
    /* C */     { 0, 0, 0, 0, 0, 0 },
};

static void
test_jobstate_transition_table (void **state)
{
    (void) state;
    for (int from = 0; from < N; from++)
        for (int to = 0; to < N; to++)
            if (ty_jobstate_can_transition (from, to) != s_expected [from][to])
                fail_msg ("%s -> %s: table says %d, lifecycle says %d",
                          ty_jobstate_name (from), ty_jobstate_name (to),
                          ty_jobstate_can_transition (from, to), s_expected [from][to]);
}

/* The properties the guarantees rest on, whatever the exact table. */
static void
test_jobstate_lifecycle_properties (void **state)
{
    (void) state;
    for (int s = 0; s < N; s++) {
        /* No self-loop: every transition is an event in ty:events. */
        assert_false (ty_jobstate_can_transition (s, s));
        /* A finished job never changes again (fencing of a late result). */
        if (ty_jobstate_is_terminal (s))
            for (int to = 0; to < N; to++)
                assert_false (ty_jobstate_can_transition (s, to));
        else
            /* Every live job can be cancelled. */
            assert_true (ty_jobstate_can_transition (s, C));
    }
    /* Nothing runs without having been queued (dispatch checks CANCEL there). */
    assert_false (ty_jobstate_can_transition (P, R));
    /* Nothing succeeds without having run. */
    assert_false (ty_jobstate_can_transition (P, S));
    assert_false (ty_jobstate_can_transition (Q, S));
    /* A lost worker's job is queued again. */
    assert_true (ty_jobstate_can_transition (R, Q));

    /* Every state is reachable from PENDING (breadth-first over the table). */
    int seen [N] = { 0 }, queue [N], head = 0, tail = 0;
    seen [P] = 1;
    queue [tail++] = P;
    while (head < tail) {
        int s = queue [head++];
        for (int to = 0; to < N; to++)
            if (!seen [to] && ty_jobstate_can_transition (s, to)) {
                seen [to] = 1;
                queue [tail++] = to;
            }
    }
    for (int s = 0; s < N; s++)
        if (!seen [s])
            fail_msg ("%s unreachable from PENDING", ty_jobstate_name (s));
}

static void
test_jobstate_rejects_out_of_range (void **state)
{
    (void) state;
    assert_false (ty_jobstate_can_transition ((ty_jobstate_t) -1, Q));
    assert_false (ty_jobstate_can_transition (Q, (ty_jobstate_t) -1));
    assert_false (ty_jobstate_can_transition (N, Q));
    assert_false (ty_jobstate_can_transition (Q, N));
    assert_false (ty_jobstate_can_transition ((ty_jobstate_t) 1000, (ty_jobstate_t) 1000));
    assert_string_equal (ty_jobstate_name ((ty_jobstate_t) -1), "UNKNOWN");
    assert_string_equal (ty_jobstate_name (N), "UNKNOWN");
}

/* The names are what Redis and ty:events hold: readable with redis-cli. */
static void
test_jobstate_names_round_trip (void **state)
{
    (void) state;
    static const char *names [N] = {
        "PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
    };
    for (int s = 0; s < N; s++) {
        assert_string_equal (ty_jobstate_name (s), names [s]);
        assert_int_equal (ty_jobstate_parse (names [s]), s);
    }
    /* Operators type lower case on the command line. */
    assert_int_equal (ty_jobstate_parse ("queued"), Q);
    assert_int_equal (ty_jobstate_parse ("Cancelled"), C);
    assert_int_equal (ty_jobstate_parse (NULL), -1);
    assert_int_equal (ty_jobstate_parse (""), -1);
    assert_int_equal (ty_jobstate_parse ("CANCELED"), -1);   /* US spelling is not a state */
    assert_int_equal (ty_jobstate_parse ("RUNNING "), -1);
    assert_int_equal (ty_jobstate_parse ("UNKNOWN"), -1);
}

static void
test_jobstate_terminal (void **state)
{
    (void) state;
    assert_false (ty_jobstate_is_terminal (P));
    assert_false (ty_jobstate_is_terminal (Q));
    assert_false (ty_jobstate_is_terminal (R));
    assert_true  (ty_jobstate_is_terminal (S));
    assert_true  (ty_jobstate_is_terminal (F));
    assert_true  (ty_jobstate_is_terminal (C));
    assert_false (ty_jobstate_is_terminal (N));
}

/* One queue per type: the broker refuses a job of a type nobody serves. */
static void
test_jobstate_job_types (void **state)
{
    (void) state;
    assert_true (ty_jobtype_valid ("noop"));
    assert_true (ty_jobtype_valid ("prepare"));
    assert_true (ty_jobtype_valid ("train"));
    assert_true (ty_jobtype_valid ("evaluate"));
    assert_true (ty_jobtype_valid ("convert"));
    assert_false (ty_jobtype_valid (NULL));
    assert_false (ty_jobtype_valid (""));
    assert_false (ty_jobtype_valid ("Noop"));
    assert_false (ty_jobtype_valid ("noop "));
    assert_false (ty_jobtype_valid ("trainx"));
    assert_false (ty_jobtype_valid ("queue:noop"));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_jobstate_transition_table),
        cmocka_unit_test (test_jobstate_lifecycle_properties),
        cmocka_unit_test (test_jobstate_rejects_out_of_range),
        cmocka_unit_test (test_jobstate_names_round_trip),
        cmocka_unit_test (test_jobstate_terminal),
        cmocka_unit_test (test_jobstate_job_types),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_backoff: exponential backoff with full jitter (worker reconnects,
 *  broker Redis reconnects). Each delay is random in [cur/2, cur], cur
 *  doubles up to max, reset goes back to min. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ty_backoff.h"

static void
test_backoff_doubles_within_jitter_bounds (void **state)
{
    (void) state;
    ty_backoff_t b;
    ty_backoff_init (&b, 100, 10000);
    int64_t cur = 100;
    for (int i = 0; i < 20; i++) {
        int64_t d = ty_backoff_next (&b);
        if (d < cur / 2 || d > cur)
            fail_msg ("step %d: delay %lld outside [%lld, %lld]", i,
                      (long long) d, (long long) cur / 2, (long long) cur);
        cur = cur * 2 > 10000 ? 10000 : cur * 2;
    }
}

/* A broker down for an hour must not push the retry interval past max. */
static void
test_backoff_capped_at_max (void **state)
{
    (void) state;
    ty_backoff_t b;
    ty_backoff_init (&b, 10, 1000);
    for (int i = 0; i < 1000; i++) {
        int64_t d = ty_backoff_next (&b);
        assert_true (d >= 1 && d <= 1000);
    }
    assert_int_equal (b.cur_ms, 1000);
}

/* After a successful connect the next failure starts small again. */
static void
test_backoff_reset_returns_to_min (void **state)
{
    (void) state;
    ty_backoff_t b;
    ty_backoff_init (&b, 50, 5000);
    for (int i = 0; i < 10; i++)
        (void) ty_backoff_next (&b);
    assert_true (b.cur_ms > 50);
    ty_backoff_reset (&b);
    int64_t d = ty_backoff_next (&b);
    assert_true (d >= 25 && d <= 50);
}

/* Jitter: many workers losing the broker at once must not retry in step. */
static void
test_backoff_jitters (void **state)
{
    (void) state;
    ty_backoff_t b;
    ty_backoff_init (&b, 1000, 1000);
    int64_t first = ty_backoff_next (&b), lo = first, hi = first;
    for (int i = 0; i < 200; i++) {
        int64_t d = ty_backoff_next (&b);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true (lo >= 500 && hi <= 1000);
    /* 201 draws from [500, 1000] spread over more than a tenth of it. */
    assert_true (hi - lo > 50);
}

/* Nonsense bounds are made sane, and a delay is never 0 (a busy loop). */
static void
test_backoff_sanitises_bounds (void **state)
{
    (void) state;
    ty_backoff_t b;
    ty_backoff_init (&b, 0, -5);
    assert_true (b.min_ms >= 1);
    assert_true (b.max_ms >= b.min_ms);
    for (int i = 0; i < 100; i++)
        assert_true (ty_backoff_next (&b) >= 1);

    ty_backoff_init (&b, 500, 100);           /* max < min: max becomes min */
    assert_int_equal (b.max_ms, 500);
    for (int i = 0; i < 10; i++) {
        int64_t d = ty_backoff_next (&b);
        assert_true (d >= 250 && d <= 500);
    }
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_backoff_doubles_within_jitter_bounds),
        cmocka_unit_test (test_backoff_capped_at_max),
        cmocka_unit_test (test_backoff_reset_returns_to_min),
        cmocka_unit_test (test_backoff_jitters),
        cmocka_unit_test (test_backoff_sanitises_bounds),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

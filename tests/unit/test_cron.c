/*  test_cron: cron lines, fire times, the day OR rule, month ends, leap
 *  years, DST in a real time zone (TZ set by the test), bad lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ty_cron.h"
#include "ty_error.h"

/* Unix seconds of a UTC date and time. */
static int64_t
s_utc (int y, int mon, int d, int h, int min)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = min };
    return (int64_t) timegm (&tm);
}

static ty_cron_t
s_parse (const char *line, bool utc)
{
    ty_cron_t c;
    char err [TY_CRON_ERR_MAX];
    int rc = ty_cron_parse (line, utc, &c, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("'%s': %s", line, err);
    return c;
}

static int64_t
s_next (const ty_cron_t *c, int64_t after)
{
    int64_t t = 0;
    assert_int_equal (ty_cron_next (c, after, &t), TY_OK);
    return t;
}

static void
s_set_tz (const char *tz)
{
    assert_int_equal (setenv ("TZ", tz, 1), 0);
    tzset ();
}

/* ---- fields ---------------------------------------------------------------- */

static void
test_cron_steps_ranges_lists (void **state)
{
    ty_cron_t c = s_parse ("*/15 * * * *", true);
    assert_int_equal (s_next (&c, s_utc (2024, 5, 1, 10, 7)), s_utc (2024, 5, 1, 10, 15));
    assert_int_equal (s_next (&c, s_utc (2024, 5, 1, 10, 45)), s_utc (2024, 5, 1, 11, 0));
    /* strictly after: a fire time is not its own next */
    assert_int_equal (s_next (&c, s_utc (2024, 5, 1, 10, 15)), s_utc (2024, 5, 1, 10, 30));

    c = s_parse ("5,35 9-17/4 * * *", true);    /* 9:05 9:35 13:05 13:35 17:05 17:35 */
    assert_int_equal (s_next (&c, s_utc (2024, 5, 1, 9, 35)), s_utc (2024, 5, 1, 13, 5));
    assert_int_equal (s_next (&c, s_utc (2024, 5, 1, 17, 35)), s_utc (2024, 5, 2, 9, 5));

    c = s_parse ("10/20 * * * *", true);        /* A/S: 10, 30, 50 */
    assert_int_equal (s_next (&c, s_utc (2024, 5, 1, 9, 31)), s_utc (2024, 5, 1, 9, 50));
    assert_int_equal (s_next (&c, s_utc (2024, 5, 1, 9, 50)), s_utc (2024, 5, 1, 10, 10));
}

static void
test_cron_names_and_macros (void **state)
{
    /* 2024-05-01 is a Wednesday */
    ty_cron_t c = s_parse ("0 2 * MAR,may mon-fri", true);
    assert_int_equal (s_next (&c, s_utc (2024, 5, 3, 3, 0)), s_utc (2024, 5, 6, 2, 0));
    assert_int_equal (s_next (&c, s_utc (2024, 5, 31, 3, 0)), s_utc (2025, 3, 3, 2, 0));

    ty_cron_t sun7 = s_parse ("0 0 * * 7", true);
    ty_cron_t sun0 = s_parse ("0 0 * * sun", true);
    ty_cron_t weekly = s_parse ("@weekly", true);
    int64_t t = s_utc (2024, 5, 1, 0, 0);
    assert_int_equal (s_next (&sun7, t), s_utc (2024, 5, 5, 0, 0));
    assert_int_equal (s_next (&sun0, t), s_utc (2024, 5, 5, 0, 0));
    assert_int_equal (s_next (&weekly, t), s_utc (2024, 5, 5, 0, 0));

    ty_cron_t daily = s_parse ("@daily", true), midnight = s_parse ("@midnight", true);
    ty_cron_t hourly = s_parse ("  @hourly ", true);
    assert_int_equal (s_next (&daily, t), s_utc (2024, 5, 2, 0, 0));
    assert_int_equal (s_next (&midnight, t), s_utc (2024, 5, 2, 0, 0));
    assert_int_equal (s_next (&hourly, s_utc (2024, 5, 1, 23, 59)), s_utc (2024, 5, 2, 0, 0));
}

/* Both day fields restricted: either matches. One starts with '*': both. */
static void
test_cron_dom_dow_or_rule (void **state)
{
    /* September 2024: Fridays 6 13 20 27; the 13th is a Friday */
    ty_cron_t c = s_parse ("0 0 13 * fri", true);
    int64_t t = s_utc (2024, 9, 1, 0, 0);
    t = s_next (&c, t);
    assert_int_equal (t, s_utc (2024, 9, 6, 0, 0));
    t = s_next (&c, t);
    assert_int_equal (t, s_utc (2024, 9, 13, 0, 0));
    t = s_next (&c, t);
    assert_int_equal (t, s_utc (2024, 9, 20, 0, 0));

    c = s_parse ("0 0 1 * 3", true);            /* the 1st, or a Wednesday */
    assert_int_equal (s_next (&c, s_utc (2024, 9, 30, 12, 0)), s_utc (2024, 10, 1, 0, 0));
    assert_int_equal (s_next (&c, s_utc (2024, 10, 1, 0, 0)), s_utc (2024, 10, 2, 0, 0));

    /* "*\/2" starts with '*': AND, so only odd days that are Fridays */
    c = s_parse ("0 0 */2 * fri", true);
    t = s_next (&c, s_utc (2024, 9, 1, 0, 0));
    assert_int_equal (t, s_utc (2024, 9, 13, 0, 0));
    assert_int_equal (s_next (&c, t), s_utc (2024, 9, 27, 0, 0));

    /* day-of-month only */
    c = s_parse ("0 0 13 * *", true);
    assert_int_equal (s_next (&c, s_utc (2024, 9, 1, 0, 0)), s_utc (2024, 9, 13, 0, 0));
}

static void
test_cron_month_ends_and_leap_years (void **state)
{
    ty_cron_t c = s_parse ("0 0 31 * *", true);
    assert_int_equal (s_next (&c, s_utc (2024, 1, 31, 0, 0)), s_utc (2024, 3, 31, 0, 0));
    assert_int_equal (s_next (&c, s_utc (2024, 3, 31, 0, 0)), s_utc (2024, 5, 31, 0, 0));

    c = s_parse ("30 12 29 feb *", true);
    assert_int_equal (s_next (&c, s_utc (2024, 3, 1, 0, 0)), s_utc (2028, 2, 29, 12, 30));
    /* 2100 is not a leap year: eight years between */
    assert_int_equal (s_next (&c, s_utc (2096, 3, 1, 0, 0)), s_utc (2104, 2, 29, 12, 30));

    c = s_parse ("59 23 31 12 *", true);        /* across a year end */
    assert_int_equal (s_next (&c, s_utc (2024, 12, 31, 23, 59)), s_utc (2025, 12, 31, 23, 59));

    /* never fires */
    c = s_parse ("0 0 30 2 *", true);
    int64_t t;
    assert_int_equal (ty_cron_next (&c, s_utc (2024, 1, 1, 0, 0), &t), TY_ENOTFOUND);
    assert_int_equal (ty_cron_prev (&c, s_utc (2024, 1, 1, 0, 0), &t), TY_ENOTFOUND);
}

/* ---- due slots ------------------------------------------------------------- */

static void
test_cron_prev_and_due_only_latest (void **state)
{
    ty_cron_t c = s_parse ("0 * * * *", true);
    int64_t now = s_utc (2024, 5, 1, 10, 17) + 42;
    int64_t t;
    assert_int_equal (ty_cron_prev (&c, now, &t), TY_OK);
    assert_int_equal (t, s_utc (2024, 5, 1, 10, 0));
    assert_int_equal (ty_cron_prev (&c, s_utc (2024, 5, 1, 10, 0), &t), TY_OK);
    assert_int_equal (t, s_utc (2024, 5, 1, 10, 0));    /* at the slot itself */

    /* down for five hours: one due slot, the latest */
    int64_t last = s_utc (2024, 5, 1, 5, 0), slot = 0;
    assert_int_equal (ty_cron_due (&c, last, now, &slot), TY_OK);
    assert_int_equal (slot, s_utc (2024, 5, 1, 10, 0));
    /* once run, nothing more until the next slot */
    assert_int_equal (ty_cron_due (&c, slot, now, &slot), TY_ENOTFOUND);
    assert_int_equal (ty_cron_due (&c, s_utc (2024, 5, 1, 10, 0), s_utc (2024, 5, 1, 11, 0), &slot),
                      TY_OK);
    assert_int_equal (slot, s_utc (2024, 5, 1, 11, 0));
    /* created at 10:17: the 10:00 slot is before it and never runs */
    assert_int_equal (ty_cron_due (&c, now, now + 60, &slot), TY_ENOTFOUND);

    /* a yearly rule found far back */
    c = s_parse ("0 0 29 2 *", true);
    assert_int_equal (ty_cron_prev (&c, s_utc (2027, 6, 1, 0, 0), &t), TY_OK);
    assert_int_equal (t, s_utc (2024, 2, 29, 0, 0));
}

/* ---- DST ---------------------------------------------------------------------- */

/* America/New_York 2024: 02:00 EST -> 03:00 EDT on Mar 10 (02:xx does not
 * exist), 02:00 EDT -> 01:00 EST on Nov 3 (01:xx happens twice). */
static void
test_cron_dst_spring_forward_skips_missing_time (void **state)
{
    s_set_tz ("America/New_York");
    ty_cron_t c = s_parse ("30 2 * * *", false);
    /* Mar 9 02:30 EST = 07:30 UTC; Mar 10 02:30 does not exist; Mar 11 02:30 EDT = 06:30 UTC */
    int64_t t = s_next (&c, s_utc (2024, 3, 9, 0, 0));
    assert_int_equal (t, s_utc (2024, 3, 9, 7, 30));
    assert_int_equal (s_next (&c, t), s_utc (2024, 3, 11, 6, 30));

    /* an hourly rule fires at 01:00 EST then 03:00 EDT: an hour apart */
    c = s_parse ("0 * * * *", false);
    t = s_next (&c, s_utc (2024, 3, 10, 6, 0));            /* 01:00 EST */
    assert_int_equal (t, s_utc (2024, 3, 10, 7, 0));         /* 03:00 EDT */

    /* the same rule in UTC ignores TZ */
    c = s_parse ("30 2 * * *", true);
    assert_int_equal (s_next (&c, s_utc (2024, 3, 10, 0, 0)), s_utc (2024, 3, 10, 2, 30));
    s_set_tz ("UTC");
}

static void
test_cron_dst_fall_back_fires_once (void **state)
{
    s_set_tz ("America/New_York");
    ty_cron_t c = s_parse ("30 1 * * *", false);
    /* 01:30 EDT = 05:30 UTC fires; 01:30 EST = 06:30 UTC does not */
    int64_t t = s_next (&c, s_utc (2024, 11, 3, 0, 0));
    assert_int_equal (t, s_utc (2024, 11, 3, 5, 30));
    assert_int_equal (s_next (&c, t), s_utc (2024, 11, 4, 6, 30));
    /* asked from inside the repeated hour (01:10 EST): not again */
    assert_int_equal (s_next (&c, s_utc (2024, 11, 3, 6, 10)), s_utc (2024, 11, 4, 6, 30));

    /* every 30 min through the repeated hour: 01:00, 01:30 EDT, then 02:00 EST */
    c = s_parse ("*/30 * * * *", false);
    t = s_next (&c, s_utc (2024, 11, 3, 4, 45));             /* 00:45 EDT */
    assert_int_equal (t, s_utc (2024, 11, 3, 5, 0));
    t = s_next (&c, t);
    assert_int_equal (t, s_utc (2024, 11, 3, 5, 30));
    t = s_next (&c, t);
    assert_int_equal (t, s_utc (2024, 11, 3, 7, 0));

    /* a scheduler during the second 01:xx finds the 01:30 slot already had
     * its run (its time is the first occurrence) */
    int64_t slot;
    assert_int_equal (ty_cron_due (&c, s_utc (2024, 11, 3, 5, 30), s_utc (2024, 11, 3, 6, 45),
                                   &slot), TY_ENOTFOUND);
    s_set_tz ("UTC");
}

/* ---- bad lines ------------------------------------------------------------------ */

static void
s_bad (const char *line, const char *want1, const char *want2)
{
    ty_cron_t c;
    char err [TY_CRON_ERR_MAX] = "";
    assert_int_equal (ty_cron_parse (line, false, &c, err, sizeof err), TY_EINVAL);
    if (!strstr (err, want1) || (want2 && !strstr (err, want2)))
        fail_msg ("'%s': error '%s' does not name '%s' / '%s'", line, err, want1,
                  want2 ? want2 : "");
}

static void
test_cron_bad_lines_name_field_and_token (void **state)
{
    s_bad ("61 * * * *", "minute", "'61'");
    s_bad ("* 25 * * *", "hour", "'25'");
    s_bad ("* * 0 * *", "day-of-month", "'0'");
    s_bad ("* * * foo *", "month", "'foo'");
    s_bad ("* * * * mon-", "day-of-week", "'mon-'");
    s_bad ("* * * * 8", "day-of-week", "'8'");
    s_bad ("*/0 * * * *", "minute", "'*/0'");
    s_bad ("1,,2 * * * *", "minute", NULL);
    s_bad ("5-1 * * * *", "minute", "'5-1'");
    s_bad ("* * *", "day-of-month", "missing");   /* names the first missing field */
    s_bad ("* * * * * *", "too many", NULL);
    s_bad ("@fortnightly", "@fortnightly", NULL);
    s_bad ("", "minute", "missing");
    /* a good line after a bad one parses: no hidden state */
    ty_cron_t c = s_parse ("0 0 * * *", true);
    assert_true (ty_cron_matches (&c, s_utc (2024, 1, 1, 0, 0)));
    assert_false (ty_cron_matches (&c, s_utc (2024, 1, 1, 0, 1)));
}

int
main (void)
{
    s_set_tz ("UTC");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_cron_steps_ranges_lists),
        cmocka_unit_test (test_cron_names_and_macros),
        cmocka_unit_test (test_cron_dom_dow_or_rule),
        cmocka_unit_test (test_cron_month_ends_and_leap_years),
        cmocka_unit_test (test_cron_prev_and_due_only_latest),
        cmocka_unit_test (test_cron_dst_spring_forward_skips_missing_time),
        cmocka_unit_test (test_cron_dst_fall_back_fires_once),
        cmocka_unit_test (test_cron_bad_lines_name_field_and_token),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_when: step conditions (workers/ty_when.h): every operator on
 *  numbers and on strings, lone values, references (with spaces, operators
 *  and branch keys in them), quoting, and malformed conditions with their
 *  messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"
#include "ty_when.h"

#define S_ERR_MAX 512

static Ty__Output s_items [] = {
    { PROTOBUF_C_MESSAGE_INIT (&ty__output__descriptor), "evaluate.gate", "PASS" },
    { PROTOBUF_C_MESSAGE_INIT (&ty__output__descriptor), "evaluate.accuracy", "0.93" },
    { PROTOBUF_C_MESSAGE_INIT (&ty__output__descriptor), "evaluate.summary", "gate FAIL == x" },
    { PROTOBUF_C_MESSAGE_INIT (&ty__output__descriptor), "train[fold=2].epochs", "10" },
    { PROTOBUF_C_MESSAGE_INIT (&ty__output__descriptor), "check.failed", "FAIL" },
    { PROTOBUF_C_MESSAGE_INIT (&ty__output__descriptor), "check.zero", "0" },
    { PROTOBUF_C_MESSAGE_INIT (&ty__output__descriptor), "check.empty", "" },
};
static const Ty__Output *const s_inputs [] = {
    &s_items [0], &s_items [1], &s_items [2], &s_items [3], &s_items [4], &s_items [5],
    &s_items [6],
};
#define S_N (sizeof s_inputs / sizeof s_inputs [0])

/* The condition's value; fails the test on an error. */
static int
s_eval (const char *expr)
{
    int result = -1;
    char err [S_ERR_MAX];
    int rc = ty_when_eval (expr, s_inputs, S_N, &result, NULL, 0, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("'%s': %s", expr, err);
    return result;
}

/* The error message of a condition that must fail. */
static const char *
s_fail (const char *expr)
{
    static char err [S_ERR_MAX];
    int result = 1;
    int rc = ty_when_eval (expr, s_inputs, S_N, &result, NULL, 0, err, sizeof err);
    if (rc != TY_EINVAL)
        fail_msg ("'%s' evaluated (%d) instead of failing", expr, result);
    assert_int_equal (result, 0);
    assert_true (err [0] != '\0');
    return err;
}

static void
test_when_numeric_operators (void **state)
{
    assert_int_equal (s_eval ("1 == 1"), 1);
    assert_int_equal (s_eval ("1 == 2"), 0);
    assert_int_equal (s_eval ("1 != 2"), 1);
    assert_int_equal (s_eval ("1 != 1"), 0);
    assert_int_equal (s_eval ("1 < 2"), 1);
    assert_int_equal (s_eval ("2 < 2"), 0);
    assert_int_equal (s_eval ("2 <= 2"), 1);
    assert_int_equal (s_eval ("3 <= 2"), 0);
    assert_int_equal (s_eval ("3 > 2"), 1);
    assert_int_equal (s_eval ("2 > 2"), 0);
    assert_int_equal (s_eval ("2 >= 2"), 1);
    assert_int_equal (s_eval ("1 >= 2"), 0);
    /* Numbers compare as numbers, not as text. */
    assert_int_equal (s_eval ("10 > 9"), 1);
    assert_int_equal (s_eval ("1.0 == 1"), 1);
    assert_int_equal (s_eval ("1e-3 < 0.01"), 1);
    assert_int_equal (s_eval ("-2.5 < -2"), 1);
    assert_int_equal (s_eval ("\"10\" > 9"), 1);     /* a quoted number is a number */
    (void) state;
}

static void
test_when_string_operators (void **state)
{
    assert_int_equal (s_eval ("passed == passed"), 1);
    assert_int_equal (s_eval ("passed == failed"), 0);
    assert_int_equal (s_eval ("passed != failed"), 1);
    assert_int_equal (s_eval ("passed != passed"), 0);
    assert_int_equal (s_eval ("PASS == pass"), 0);       /* exact text */
    /* Not numbers in full: text comparison. */
    assert_int_equal (s_eval ("1.0x == 1.0"), 0);
    assert_int_equal (s_eval ("0x10 == 16"), 0);
    assert_int_equal (s_eval ("inf == inf"), 1);
    assert_int_equal (s_eval ("'a b' == \"a b\""), 1);
    assert_int_equal (s_eval ("'it\\'s' == \"it's\""), 1);
    assert_int_equal (s_eval ("'' == ''"), 1);
    /* Ordering words is an error, with both values in the message. */
    const char *err = s_fail ("abc < abd");
    assert_non_null (strstr (err, "'abc' < 'abd'"));
    assert_non_null (strstr (err, "two numbers"));
    s_fail ("1 <= one");
    s_fail ("${evaluate.gate} > 0.5");
    (void) state;
}

static void
test_when_references (void **state)
{
    assert_int_equal (s_eval ("${evaluate.gate} == PASS"), 1);
    assert_int_equal (s_eval ("${evaluate.gate}==PASS"), 1);          /* no spaces */
    assert_int_equal (s_eval ("${evaluate.accuracy} >= 0.9"), 1);
    assert_int_equal (s_eval ("${evaluate.accuracy} >= 0.95"), 0);
    assert_int_equal (s_eval ("${evaluate.accuracy}>0.9"), 1);
    assert_int_equal (s_eval ("${train[fold=2].epochs} == 10"), 1);   /* '=' in the key */
    assert_int_equal (s_eval ("${train[fold=2].epochs} > 9"), 1);     /* numeric, not text */
    /* A value with spaces and an operator in it stays one operand. */
    assert_int_equal (s_eval ("${evaluate.summary} == 'gate FAIL == x'"), 1);
    assert_int_equal (s_eval ("\"${evaluate.gate}-ok\" == PASS-ok"), 1);
    assert_int_equal (s_eval ("v${train[fold=2].epochs} == v10"), 1);
    /* $${ in a condition is a literal. */
    assert_int_equal (s_eval ("'$${x}' == '$${x}'"), 1);
    const char *err = s_fail ("${evaluate.gates} == PASS");
    assert_non_null (strstr (err, "unresolved reference ${evaluate.gates}"));
    assert_non_null (strstr (err, "evaluate.gate"));
    (void) state;
}

static void
test_when_lone_values (void **state)
{
    assert_int_equal (s_eval ("${evaluate.gate}"), 1);       /* PASS */
    assert_int_equal (s_eval ("${check.failed}"), 0);        /* FAIL */
    assert_int_equal (s_eval ("${check.zero}"), 0);
    assert_int_equal (s_eval ("${check.empty}"), 0);
    assert_int_equal (s_eval ("${evaluate.accuracy}"), 1);   /* non-zero number */
    assert_int_equal (s_eval ("  true "), 1);
    assert_int_equal (s_eval ("passed"), 1);
    assert_int_equal (s_eval ("Yes"), 1);
    assert_int_equal (s_eval ("-1"), 1);
    assert_int_equal (s_eval ("0.0"), 0);
    assert_int_equal (s_eval ("false"), 0);
    assert_int_equal (s_eval ("no"), 0);
    assert_int_equal (s_eval ("maybe"), 0);
    /* Nothing at all: always. */
    assert_int_equal (s_eval (""), 1);
    assert_int_equal (s_eval ("   "), 1);
    assert_int_equal (ty_when_truthy ("TRUE"), 1);
    assert_int_equal (ty_when_truthy (NULL), 0);
    (void) state;
}

static void
test_when_malformed (void **state)
{
    assert_non_null (strstr (s_fail ("== 3"), "expected a value"));
    assert_non_null (strstr (s_fail ("3 =="), "missing at the end"));
    assert_non_null (strstr (s_fail ("a = b"), "unknown operator '='"));
    assert_non_null (strstr (s_fail ("a => b"), "unknown operator '=>'"));
    assert_non_null (strstr (s_fail ("a === b"), "unknown operator '==='"));
    assert_non_null (strstr (s_fail ("a b"), "expected an operator"));
    assert_non_null (strstr (s_fail ("a == b c"), "unexpected 'c'"));
    assert_non_null (strstr (s_fail ("a == b == c"), "unexpected '== c'"));
    assert_non_null (strstr (s_fail ("'abc == abc"), "unterminated ' string"));
    assert_non_null (strstr (s_fail ("${evaluate.gate == PASS"), "'${' without '}'"));
    assert_non_null (strstr (s_fail ("!${evaluate.gate}"), "expected a value"));
    /* The message quotes the condition. */
    assert_non_null (strstr (s_fail ("x <> y"), "'x <> y'"));
    /* The trace shows the values compared. */
    char trace [128], err [S_ERR_MAX];
    int result = 0;
    assert_int_equal (ty_when_eval ("${evaluate.accuracy} >= 0.95", s_inputs, S_N, &result,
                                    trace, sizeof trace, err, sizeof err), TY_OK);
    assert_int_equal (result, 0);
    assert_string_equal (trace, "'0.93' >= '0.95'");
    (void) state;
}

static void
test_when_number_parse (void **state)
{
    double v = 0;
    assert_int_equal (ty_when_number ("0.25", &v), 1);
    assert_true (v == 0.25);
    assert_int_equal (ty_when_number ("-3e2", &v), 1);
    assert_true (v == -300);
    assert_int_equal (ty_when_number ("", &v), 0);
    assert_int_equal (ty_when_number ("1e999", &v), 0);      /* not finite */
    assert_int_equal (ty_when_number ("nan", &v), 0);
    assert_int_equal (ty_when_number ("1.2.3", &v), 0);
    assert_int_equal (ty_when_number (".", &v), 0);
    assert_int_equal (ty_when_number ("12 ", &v), 0);
    (void) state;
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_when_numeric_operators),
        cmocka_unit_test (test_when_string_operators),
        cmocka_unit_test (test_when_references),
        cmocka_unit_test (test_when_lone_values),
        cmocka_unit_test (test_when_malformed),
        cmocka_unit_test (test_when_number_parse),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

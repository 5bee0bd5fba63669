/*  test_config: "key = value" files under command-line flags.
 *  Precedence (what operators rely on): flag > file > built-in default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ty_config.h"
#include "ty_error.h"

/* Writes text to a fresh temp file; the path goes into path (>= 64 bytes). */
static void
s_must_write (char *path, size_t len, const char *text)
{
    snprintf (path, len, "/tmp/ty-test-config-XXXXXX");
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    size_t n = strlen (text);
    assert_int_equal (write (fd, text, n), (ssize_t) n);
    assert_int_equal (close (fd), 0);
}

static int
s_setup (void **state)
{
    *state = ty_config_new ();
    return *state ? 0 : -1;
}

static int
s_teardown (void **state)
{
    ty_config_t *cfg = *state;
    ty_config_destroy (&cfg);
    return 0;
}

static void
test_config_set_get_and_default (void **state)
{
    ty_config_t *cfg = *state;
    assert_string_equal (ty_config_get (cfg, "redis", "redis://127.0.0.1:6379"),
                         "redis://127.0.0.1:6379");
    assert_null (ty_config_get (cfg, "redis", NULL));
    assert_int_equal (ty_config_set (cfg, "redis", "redis://h:1"), TY_OK);
    assert_string_equal (ty_config_get (cfg, "redis", NULL), "redis://h:1");
    /* Setting again replaces, it does not add a second entry. */
    assert_int_equal (ty_config_set (cfg, "redis", "redis://h:2"), TY_OK);
    assert_string_equal (ty_config_get (cfg, "redis", NULL), "redis://h:2");
    /* Keys are exact: no prefix match. */
    assert_null (ty_config_get (cfg, "redi", NULL));
    assert_null (ty_config_get (cfg, "redis-url", NULL));
}

static void
test_config_load_file_forms (void **state)
{
    ty_config_t *cfg = *state;
    char path [64];
    s_must_write (path, sizeof path,
                  "# a comment line\n"
                  "\n"
                  "heartbeat-ms = 500\n"
                  "redis redis://10.0.0.1:6379   # trailing comment\n"
                  "  prefix=ty2:  \n"
                  "log-file\t/var/log/ty.log\n"
                  "last-line-no-newline = yes");
    char err [256] = "";
    assert_int_equal (ty_config_load (cfg, path, err, sizeof err), TY_OK);
    assert_string_equal (ty_config_get (cfg, "heartbeat-ms", NULL), "500");
    assert_string_equal (ty_config_get (cfg, "redis", NULL), "redis://10.0.0.1:6379");
    assert_string_equal (ty_config_get (cfg, "prefix", NULL), "ty2:");
    assert_string_equal (ty_config_get (cfg, "log-file", NULL), "/var/log/ty.log");
    assert_string_equal (ty_config_get (cfg, "last-line-no-newline", NULL), "yes");
    assert_null (ty_config_get (cfg, "#", NULL));
    unlink (path);
}

/* Flags are set before the file is loaded and must win over it. */
static void
test_config_flags_win_over_file (void **state)
{
    ty_config_t *cfg = *state;
    char path [64];
    s_must_write (path, sizeof path, "heartbeat-ms = 500\nprefix = file:\n");
    assert_int_equal (ty_config_set (cfg, "heartbeat-ms", "100"), TY_OK);
    char err [256] = "";
    assert_int_equal (ty_config_load (cfg, path, err, sizeof err), TY_OK);
    assert_string_equal (ty_config_get (cfg, "heartbeat-ms", NULL), "100");
    assert_string_equal (ty_config_get (cfg, "prefix", NULL), "file:");
    unlink (path);
}

static void
test_config_load_errors_name_the_line (void **state)
{
    ty_config_t *cfg = *state;
    char err [256] = "";
    /* A missing file gives errno and names the path. */
    assert_int_equal (ty_config_load (cfg, "/nonexistent/ty.conf", err, sizeof err), ENOENT);
    assert_non_null (strstr (err, "/nonexistent/ty.conf"));

    /* A key without a value: TY_EINVAL with "path:line:". */
    char path [64], where [96];
    s_must_write (path, sizeof path, "a = 1\nlonely\nb = 2\n");
    err [0] = '\0';
    assert_int_equal (ty_config_load (cfg, path, err, sizeof err), TY_EINVAL);
    snprintf (where, sizeof where, "%s:2:", path);
    assert_non_null (strstr (err, where));
    unlink (path);

    /* A line longer than the reader's buffer is refused, not split in two. */
    char *text = malloc (4000);
    assert_non_null (text);
    memset (text, 'x', 3000);
    memcpy (text + 3000, " = 1\n", 6);
    s_must_write (path, sizeof path, text);
    free (text);
    ty_config_t *fresh = ty_config_new ();
    assert_non_null (fresh);
    err [0] = '\0';
    assert_int_equal (ty_config_load (fresh, path, err, sizeof err), TY_EINVAL);
    snprintf (where, sizeof where, "%s:1:", path);
    assert_non_null (strstr (err, where));
    ty_config_destroy (&fresh);
    unlink (path);
}

static void
test_config_int_ranges (void **state)
{
    ty_config_t *cfg = *state;
    char err [256];
    long v = 0;
    /* Absent: the default. */
    assert_int_equal (ty_config_int (cfg, "heartbeat-ms", 1000, 10, 60000, &v, err, sizeof err), TY_OK);
    assert_int_equal (v, 1000);
    assert_int_equal (ty_config_set (cfg, "heartbeat-ms", "250"), TY_OK);
    assert_int_equal (ty_config_int (cfg, "heartbeat-ms", 1000, 10, 60000, &v, err, sizeof err), TY_OK);
    assert_int_equal (v, 250);
    /* Bounds are inclusive. */
    assert_int_equal (ty_config_set (cfg, "heartbeat-ms", "10"), TY_OK);
    assert_int_equal (ty_config_int (cfg, "heartbeat-ms", 1000, 10, 60000, &v, err, sizeof err), TY_OK);
    assert_int_equal (v, 10);

    static const char *bad [] = { "9", "60001", "", "abc", "12ms", "1e3", " ", "-",
                                  "99999999999999999999999", NULL };
    for (int i = 0; bad [i]; i++) {
        v = 77;
        err [0] = '\0';
        assert_int_equal (ty_config_set (cfg, "heartbeat-ms", bad [i]), TY_OK);
        if (ty_config_int (cfg, "heartbeat-ms", 1000, 10, 60000, &v, err, sizeof err) != TY_EINVAL)
            fail_msg ("'%s' accepted as %ld", bad [i], v);
        assert_int_equal (v, 77);                      /* untouched on error */
        assert_non_null (strstr (err, "heartbeat-ms"));
    }
}

static void
test_config_destroy_is_null_safe (void **state)
{
    (void) state;
    ty_config_t *cfg = ty_config_new ();
    assert_non_null (cfg);
    assert_int_equal (ty_config_set (cfg, "k", "v"), TY_OK);
    ty_config_destroy (&cfg);
    assert_null (cfg);
    ty_config_destroy (&cfg);       /* idempotent */
    ty_config_destroy (NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_config_set_get_and_default, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_config_load_file_forms, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_config_flags_win_over_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_config_load_errors_name_the_line, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_config_int_ranges, s_setup, s_teardown),
        cmocka_unit_test (test_config_destroy_is_null_safe),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

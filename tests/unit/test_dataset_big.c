/*  test_dataset_big: one million short text rows through the whole import
 *  path (CSV -> validation -> split -> LMDB) without MDB_MAP_FULL: the map
 *  starts at TY_DATASET_MAP_INITIAL_BYTES and must grow. Labelled "slow"
 *  (a few seconds in a release build, longer under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ty_tmpdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_import.h"
#include "ty_validate.h"

#define S_ROWS     1000000
#define S_CLASSES  20

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
test_dataset_big_million_rows (void **state)
{
    (void) state;
    char *dir = ty_tmpdir_new ("ty_test_big");
    char csv[256], data[256];
    snprintf (csv, sizeof csv, "%s/big.csv", dir);
    snprintf (data, sizeof data, "%s/data", dir);
    FILE *f = fopen (csv, "w");
    assert_non_null (f);
    fprintf (f, "label,text\n");
    for (int i = 0; i < S_ROWS; i++)
        fprintf (f, "class%02d,Show.Name.S%02dE%04d.720p.HDTV.x264\n", i % S_CLASSES,
                 i % 37, i);
    assert_int_equal (fclose (f), 0);

    double t0 = s_now ();
    ty_import_opts_t io;
    ty_import_opts_default (&io);
    ty_validate_t *v = ty_validate_new (NULL);
    ty_import_rows_t *rows = ty_import_rows_new ();
    char err[TY_IMPORT_ERROR_MAX];
    assert_int_equal (ty_import_file (csv, &io, v, rows, err), TY_OK);
    assert_int_equal (ty_validate_report (v)->accepted, S_ROWS);
    assert_int_equal (ty_import_finish (rows, v), TY_OK);
    uint64_t version;
    assert_int_equal (ty_import_commit (rows, data, "big", NULL, NULL, &version, NULL), TY_OK);
    double secs = s_now () - t0;
    fprintf (stderr, "# 1M rows imported in %.2f s (%.0f rows/s)\n", secs, S_ROWS / secs);
    ty_import_rows_destroy (&rows);
    ty_validate_destroy (&v);

    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, "big", &ds), TY_OK);
    uint64_t total = 0;
    for (int sp = 0; sp < TY_SPLIT_COUNT; sp++)
        total += ty_dataset_count (ds, (ty_split_t) sp);
    assert_int_equal (total, S_ROWS);
    assert_int_equal (ty_dataset_count (ds, TY_SPLIT_TRAIN), 700000);
    assert_int_equal (ty_dataset_label_count (ds), S_CLASSES);
    ty_dataset_destroy (&ds);
    ty_tmpdir_free (dir);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_dataset_big_million_rows),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

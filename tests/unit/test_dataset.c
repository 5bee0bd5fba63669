/*  test_dataset: the LMDB dataset store (real LMDB in temp dirs): versions,
 *  names, map growth, abort and crash leftovers, iteration, concurrent
 *  readers, splits, content hashes and appends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ty_tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_import.h"
#include "ty_split.h"
#include "ty_validate.h"

/* ---- helpers --------------------------------------------------------------- */

static int
s_count_entries (const char *dir, const char *prefix)
{
    DIR *d = opendir (dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir (d)))
        if (!strncmp (e->d_name, prefix, strlen (prefix)))
            n++;
    closedir (d);
    return n;
}

/* Writes one version: n samples "<tag> i" round-robin over train/val/test. */
static uint64_t
must_write_version (const char *data, const char *name, const char *tag, int n,
                    size_t initial_map)
{
    ty_dataset_writer_opts_t o = { .initial_map_bytes = initial_map };
    ty_dataset_writer_t *w;
    assert_int_equal (ty_dataset_writer_new (data, name, &o, &w), TY_OK);
    char text[64];
    char *labels[1] = { "A" };
    for (int i = 0; i < n; i++) {
        Ty__Sample s = TY__SAMPLE__INIT;
        snprintf (text, sizeof text, "%s %d", tag, i);
        s.text = text;
        s.labels = labels;
        s.n_labels = 1;
        s.weight = 1.0f;
        s.line = (uint64_t) i + 1;
        assert_int_equal (ty_dataset_writer_add (w, (ty_split_t) (i % 3), &s), TY_OK);
    }
    Ty__DatasetMeta m = TY__DATASET_META__INIT;
    m.kind = "text";
    m.labels = labels;
    m.n_labels = 1;
    uint64_t v = 0;
    assert_int_equal (ty_dataset_writer_commit (&w, &m, &v, NULL), TY_OK);
    assert_null (w);
    return v;
}

/* ---- names ------------------------------------------------------------------ */

static void
test_dataset_name_rejects_traversal (void **state)
{
    (void) state;
    const char *bad[] = { "", "..", "../x", "a/b", "x/../y", ".hidden", "a b", "a..b",
                          "0123456789012345678901234567890123456789012345678901234567890123x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        assert_int_equal (ty_dataset_name_check (bad[i], &why), TY_EINVAL);
        assert_non_null (why);
    }
    const char *why = NULL;
    assert_int_equal (ty_dataset_name_check ("../etc", &why), TY_EINVAL);
    assert_non_null (strstr (why, ".."));
    assert_int_equal (ty_dataset_name_check ("fortunes_v2.1-x", NULL), TY_OK);

    char *data = ty_tmpdir_new ("ty_test_dataset");
    ty_dataset_writer_t *w = NULL;
    assert_int_equal (ty_dataset_writer_new (data, "../escape", NULL, &w), TY_EINVAL);
    assert_null (w);
    char outside[4200];
    snprintf (outside, sizeof outside, "%s/escape", data);
    struct stat st;
    assert_int_not_equal (stat (outside, &st), 0);
    ty_dataset_t *ds = NULL;
    assert_int_equal (ty_dataset_open (data, "../escape", &ds), TY_EINVAL);
    assert_int_equal (ty_dataset_open (data, "x@0", &ds), TY_EINVAL);
    assert_int_equal (ty_dataset_open (data, "x@abc", &ds), TY_EINVAL);
    assert_int_equal (ty_dataset_open (data, "nothere", &ds), TY_ENOTFOUND);
    ty_tmpdir_free (data);
}

/* ---- versions ------------------------------------------------------------------- */

static void
test_dataset_versions_roundtrip (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset");
    assert_int_equal (must_write_version (data, "ds", "one", 30, 0), 1);
    assert_int_equal (must_write_version (data, "ds", "two", 60, 0), 2);

    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, "ds", &ds), TY_OK);
    assert_int_equal (ty_dataset_version (ds), 2);
    assert_int_equal (ty_dataset_count (ds, TY_SPLIT_TRAIN), 20);
    assert_int_equal (ty_dataset_count (ds, TY_SPLIT_VAL), 20);
    assert_int_equal (ty_dataset_count (ds, TY_SPLIT_TEST), 20);
    assert_int_equal (ty_dataset_count (ds, TY_SPLIT_CALIB), 0);
    const Ty__DatasetMeta *m = ty_dataset_meta (ds);
    assert_int_equal (m->format_version, TY_DATASET_FORMAT_VERSION);
    assert_string_equal (m->name, "ds");
    assert_int_equal (m->version, 2);
    assert_int_equal (strlen (m->content_hash), 64);
    assert_int_equal (ty_dataset_label_count (ds), 1);
    assert_string_equal (ty_dataset_label (ds, 0), "A");
    assert_int_equal (ty_dataset_label_id (ds, "A"), 0);
    assert_int_equal (ty_dataset_label_id (ds, "B"), -1);
    ty_dataset_view_t view;
    assert_int_equal (ty_dataset_get (ds, TY_SPLIT_VAL, 3, &view), TY_OK);
    Ty__Sample *s;
    assert_int_equal (ty_dataset_view_unpack (&view, &s), TY_OK);
    assert_string_equal (s->text, "two 10");   /* val holds 1, 4, 7, 10 */
    ty__sample__free_unpacked (s, NULL);
    assert_int_equal (ty_dataset_get (ds, TY_SPLIT_VAL, 20, &view), TY_ENOTFOUND);
    ty_dataset_destroy (&ds);
    assert_null (ds);

    assert_int_equal (ty_dataset_open (data, "ds@1", &ds), TY_OK);
    assert_int_equal (ty_dataset_count (ds, TY_SPLIT_TRAIN), 10);
    ty_dataset_destroy (&ds);

    uint64_t *vs;
    size_t n;
    assert_int_equal (ty_dataset_versions (data, "ds", &vs, &n), TY_OK);
    assert_int_equal (n, 2);
    assert_int_equal (vs[0], 1);
    assert_int_equal (vs[1], 2);
    free (vs);
    char **names;
    assert_int_equal (ty_dataset_list (data, &names, &n), TY_OK);
    assert_int_equal (n, 1);
    assert_string_equal (names[0], "ds");
    ty_dataset_strv_free (names, n);

    assert_int_equal (ty_dataset_remove (data, "ds@1"), TY_OK);
    assert_int_equal (ty_dataset_open (data, "ds@1", &ds), TY_ENOTFOUND);
    assert_int_equal (ty_dataset_versions (data, "ds", &vs, &n), TY_OK);
    assert_int_equal (n, 1);
    free (vs);
    /* the next version is still 3: numbers are never reused while 2 exists */
    assert_int_equal (must_write_version (data, "ds", "three", 3, 0), 3);
    assert_int_equal (ty_dataset_remove (data, "ds"), TY_OK);
    assert_int_equal (ty_dataset_open (data, "ds", &ds), TY_ENOTFOUND);
    assert_int_equal (ty_dataset_remove (data, "ds"), TY_ENOTFOUND);
    ty_tmpdir_free (data);
}

/* A small first map must grow on MDB_MAP_FULL, never fail. */
static void
test_dataset_map_grows (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset");
    ty_dataset_writer_opts_t o = { .initial_map_bytes = 256 << 10, .txn_bytes = 1 << 20 };
    ty_dataset_writer_t *w;
    assert_int_equal (ty_dataset_writer_new (data, "grow", &o, &w), TY_OK);
    char text[200];
    memset (text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    const int n = 30000;   /* ~6 MB of values into a 256 KiB map */
    for (int i = 0; i < n; i++) {
        Ty__Sample s = TY__SAMPLE__INIT;
        s.text = text;
        s.line = (uint64_t) i;
        assert_int_equal (ty_dataset_writer_add (w, TY_SPLIT_TRAIN, &s), TY_OK);
    }
    assert_int_equal (ty_dataset_writer_count (w, TY_SPLIT_TRAIN), n);
    uint64_t v;
    assert_int_equal (ty_dataset_writer_commit (&w, NULL, &v, NULL), TY_OK);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, "grow", &ds), TY_OK);
    assert_int_equal (ty_dataset_count (ds, TY_SPLIT_TRAIN), n);
    ty_dataset_view_t view;
    assert_int_equal (ty_dataset_get (ds, TY_SPLIT_TRAIN, n - 1, &view), TY_OK);
    Ty__Sample *s;
    assert_int_equal (ty_dataset_view_unpack (&view, &s), TY_OK);
    assert_int_equal (s->line, n - 1);
    ty__sample__free_unpacked (s, NULL);
    ty_dataset_destroy (&ds);
    ty_tmpdir_free (data);
}

static void
test_dataset_map_grows_reports_size (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset");
    ty_dataset_writer_opts_t o = { .initial_map_bytes = 128 << 10, .txn_bytes = 256 << 10 };
    ty_dataset_writer_t *w;
    assert_int_equal (ty_dataset_writer_new (data, "g2", &o, &w), TY_OK);
    char text[512];
    memset (text, 'y', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    for (int i = 0; i < 4000; i++) {
        Ty__Sample s = TY__SAMPLE__INIT;
        s.text = text;
        assert_int_equal (ty_dataset_writer_add (w, TY_SPLIT_TEST, &s), TY_OK);
    }
    assert_true (ty_dataset_writer_map_bytes (w) > (size_t) (128 << 10));
    ty_dataset_writer_destroy (&w);
    ty_tmpdir_free (data);
}

/* An aborted writer and a writer killed mid-import leave no version; the
 * dead one's temp dir is removed by the next writer. */
static void
test_dataset_abort_and_crash_leave_no_version (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset");
    char name_dir[4200];
    snprintf (name_dir, sizeof name_dir, "%s/datasets/c", data);

    ty_dataset_writer_t *w;
    assert_int_equal (ty_dataset_writer_new (data, "c", NULL, &w), TY_OK);
    Ty__Sample s = TY__SAMPLE__INIT;
    s.text = "x";
    assert_int_equal (ty_dataset_writer_add (w, TY_SPLIT_TRAIN, &s), TY_OK);
    assert_int_equal (s_count_entries (name_dir, ".tmp-"), 1);
    ty_dataset_writer_destroy (&w);
    ty_dataset_writer_destroy (&w);   /* idempotent */
    assert_int_equal (s_count_entries (name_dir, ".tmp-"), 0);

    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        ty_dataset_writer_t *cw;
        if (ty_dataset_writer_new (data, "c", NULL, &cw) != TY_OK)
            _exit (1);
        for (int i = 0; i < 1000; i++)
            (void) ty_dataset_writer_add (cw, TY_SPLIT_TRAIN, &s);
        _exit (0);   /* "crash": no commit, no cleanup */
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    assert_int_equal (s_count_entries (name_dir, ".tmp-"), 1);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, "c", &ds), TY_ENOTFOUND);

    assert_int_equal (must_write_version (data, "c", "after", 5, 0), 1);
    assert_int_equal (s_count_entries (name_dir, ".tmp-"), 0);
    ty_tmpdir_free (data);
}

/* ---- iteration --------------------------------------------------------------- */

static void
test_dataset_iter_order_and_shuffle (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset");
    must_write_version (data, "it", "s", 3000, 0);   /* 1000 per split */
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, "it", &ds), TY_OK);
    const uint64_t n = 1000;
    ty_dataset_view_t views[64];
    size_t got;

    ty_dataset_iter_t *it;
    assert_int_equal (ty_dataset_iter_new (ds, TY_SPLIT_TRAIN, false, 0, &it), TY_OK);
    uint64_t expect = 0;
    while (ty_dataset_iter_next (it, views, 64, &got) == TY_OK && got)
        for (size_t i = 0; i < got; i++)
            assert_int_equal (views[i].index, expect++);
    assert_int_equal (expect, n);
    ty_dataset_iter_destroy (&it);

    uint64_t *order[3];
    uint64_t seeds[3] = { 7, 7, 8 };
    for (int r = 0; r < 3; r++) {
        order[r] = calloc (n, sizeof **order);
        uint8_t *seen = calloc (n, 1);
        assert_int_equal (ty_dataset_iter_new (ds, TY_SPLIT_TRAIN, true, seeds[r], &it), TY_OK);
        uint64_t k = 0;
        while (ty_dataset_iter_next (it, views, 64, &got) == TY_OK && got)
            for (size_t i = 0; i < got; i++) {
                assert_false (seen[views[i].index]);
                seen[views[i].index] = 1;
                order[r][k++] = views[i].index;
                /* a view is the sample of its index */
                ty_dataset_view_t direct;
                assert_int_equal (ty_dataset_get (ds, TY_SPLIT_TRAIN, views[i].index, &direct),
                                  TY_OK);
                assert_ptr_equal (direct.data, views[i].data);
                assert_int_equal (direct.size, views[i].size);
            }
        assert_int_equal (k, n);
        free (seen);
        ty_dataset_iter_destroy (&it);
    }
    assert_memory_equal (order[0], order[1], n * sizeof (uint64_t));
    assert_true (memcmp (order[0], order[2], n * sizeof (uint64_t)) != 0);
    /* the order is the seeded permutation of the whole split, whatever the
     * batch size the caller asks for */
    uint64_t *perm = malloc (n * sizeof *perm);
    for (uint64_t i = 0; i < n; i++)
        perm[i] = i;
    ty_dataset_shuffle (perm, n, seeds[0]);
    assert_memory_equal (order[0], perm, n * sizeof (uint64_t));
    size_t caps[] = { 1, 7, 64 };
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        assert_int_equal (ty_dataset_iter_new (ds, TY_SPLIT_TRAIN, true, seeds[0], &it), TY_OK);
        uint64_t k = 0;
        while (ty_dataset_iter_next (it, views, caps[c], &got) == TY_OK && got)
            for (size_t i = 0; i < got; i++)
                assert_int_equal (views[i].index, perm[k++]);
        assert_int_equal (k, n);
        ty_dataset_iter_destroy (&it);
    }
    free (perm);
    uint64_t in_place = 0;
    for (uint64_t i = 0; i < n; i++)
        in_place += order[0][i] == i;
    assert_true (in_place < n / 10);
    for (int r = 0; r < 3; r++)
        free (order[r]);
    ty_dataset_destroy (&ds);
    ty_tmpdir_free (data);
}

/* The shuffle's output is part of the format's promise (same seed, same
 * order, on every machine and release: splits and content hashes depend on
 * it). These values come from the one-draw-at-a-time Fisher-Yates. */
static void
test_dataset_shuffle_is_pinned (void **state)
{
    (void) state;
    uint64_t a[100];
    for (uint64_t i = 0; i < 100; i++)
        a[i] = i;
    ty_dataset_shuffle (a, 100, 42);
    const uint64_t head[12] = { 34, 12, 62, 38, 88, 83, 14, 94, 73, 29, 61, 64 };
    assert_memory_equal (a, head, sizeof head);
    assert_int_equal (a[99], 74);
}

/* ---- concurrent reader ----------------------------------------------------------- */

#define S_ROUNDS     6
#define S_ROUND_ROWS 3000

typedef struct {
    const char *data;
    volatile int done;
} s_writer_arg_t;

static void *
s_writer_thread (void *p)
{
    s_writer_arg_t *a = p;
    for (int r = 1; r <= S_ROUNDS; r++) {
        char tag[16];
        snprintf (tag, sizeof tag, "r%d", r);
        /* round r writes r * S_ROUND_ROWS samples all tagged r */
        ty_dataset_writer_t *w;
        if (ty_dataset_writer_new (a->data, "live", NULL, &w) != TY_OK)
            break;
        char text[32];
        for (int i = 0; i < r * S_ROUND_ROWS; i++) {
            Ty__Sample s = TY__SAMPLE__INIT;
            snprintf (text, sizeof text, "%s %d", tag, i);
            s.text = text;
            (void) ty_dataset_writer_add (w, TY_SPLIT_TRAIN, &s);
        }
        (void) ty_dataset_writer_commit (&w, NULL, NULL, NULL);
    }
    a->done = 1;
    return NULL;
}

static void
test_dataset_reader_sees_whole_versions (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset");
    must_write_version (data, "live", "r0", 3, 0);   /* something to open first */
    s_writer_arg_t arg = { data, 0 };
    pthread_t th;
    assert_int_equal (pthread_create (&th, NULL, s_writer_thread, &arg), 0);
    int opened = 0;
    uint64_t last_version = 0;
    while (!arg.done || opened < 3) {
        ty_dataset_t *ds;
        assert_int_equal (ty_dataset_open (data, "live", &ds), TY_OK);
        opened++;
        uint64_t v = ty_dataset_version (ds);
        assert_true (v >= last_version);
        last_version = v;
        uint64_t n = ty_dataset_count (ds, TY_SPLIT_TRAIN);
        assert_int_equal (n, ty_dataset_meta (ds)->count_train);
        ty_dataset_iter_t *it;
        assert_int_equal (ty_dataset_iter_new (ds, TY_SPLIT_TRAIN, false, 0, &it), TY_OK);
        ty_dataset_view_t views[128];
        size_t got;
        uint64_t seen = 0;
        char want[16] = "";
        while (ty_dataset_iter_next (it, views, 128, &got) == TY_OK && got)
            for (size_t i = 0; i < got; i++, seen++) {
                Ty__Sample *s;
                assert_int_equal (ty_dataset_view_unpack (&views[i], &s), TY_OK);
                char tag[16];
                assert_int_equal (sscanf (s->text, "%15s", tag), 1);
                if (!want[0])
                    memcpy (want, tag, sizeof want);
                assert_string_equal (tag, want);   /* one round only */
                ty__sample__free_unpacked (s, NULL);
            }
        assert_int_equal (seen, n);
        int round = atoi (want + 1);
        if (round > 0)
            assert_int_equal (n, (uint64_t) round * S_ROUND_ROWS);   /* the whole round */
        ty_dataset_iter_destroy (&it);
        ty_dataset_destroy (&ds);
    }
    pthread_join (th, NULL);
    assert_int_equal (last_version <= S_ROUNDS + 1, true);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, "live", &ds), TY_OK);
    assert_int_equal (ty_dataset_version (ds), S_ROUNDS + 1);
    assert_int_equal (ty_dataset_count (ds, TY_SPLIT_TRAIN), S_ROUNDS * S_ROUND_ROWS);
    ty_dataset_destroy (&ds);
    ty_tmpdir_free (data);
}

/* ---- splits ------------------------------------------------------------------------ */

static void
test_dataset_split_stratified_within_one (void **state)
{
    (void) state;
    const size_t sizes[] = { 100, 37, 11, 3 };
    const char *names[] = { "a", "b", "c", "d" };
    size_t n = 0;
    for (int c = 0; c < 4; c++)
        n += sizes[c];
    uint32_t *strata = malloc (n * sizeof *strata);
    uint8_t *split = malloc (n);
    uint32_t *fold = malloc (n * sizeof *fold);
    size_t k = 0;
    for (size_t rep = 0; k < n; rep++)   /* interleaved classes */
        for (uint32_t c = 0; c < 4; c++)
            if (rep < sizes[c])
                strata[k++] = c;
    double ratios[2][TY_SPLIT_COUNT] = { { 0.7, 0.15, 0.15, 0 }, { 0.6, 0.2, 0.1, 0.1 } };
    for (int r = 0; r < 2; r++) {
        ty_split_opts_t o;
        ty_split_opts_default (&o);
        memcpy (o.ratio, ratios[r], sizeof o.ratio);
        o.folds = 5;
        assert_int_equal (ty_split_assign (&o, n, strata, names, 4, split, fold), TY_OK);
        for (uint32_t c = 0; c < 4; c++) {
            double cnt[TY_SPLIT_COUNT] = { 0 };
            uint64_t folds[5] = { 0 };
            for (size_t i = 0; i < n; i++)
                if (strata[i] == c) {
                    assert_true (split[i] < TY_SPLIT_COUNT);
                    cnt[split[i]]++;
                    assert_true (fold[i] < 5);
                    folds[fold[i]]++;
                }
            for (int sp = 0; sp < TY_SPLIT_COUNT; sp++) {
                double want = o.ratio[sp] * (double) sizes[c];
                if (cnt[sp] < want - 1 || cnt[sp] > want + 1)
                    fail_msg ("class %s split %d: %g samples, want %g +- 1", names[c], sp,
                              cnt[sp], want);
            }
            for (int f = 0; f < 5; f++)
                assert_true (folds[f] >= sizes[c] / 5 && folds[f] <= sizes[c] / 5 + 1);
        }
    }
    /* a cap keeps cap_per_class of each class */
    ty_split_opts_t o;
    ty_split_opts_default (&o);
    o.cap_per_class = 20;
    assert_int_equal (ty_split_assign (&o, n, strata, names, 4, split, fold), TY_OK);
    size_t kept_a = 0, kept_d = 0;
    for (size_t i = 0; i < n; i++) {
        if (strata[i] == 0 && split[i] != TY_SPLIT_NONE)
            kept_a++;
        if (strata[i] == 3 && split[i] != TY_SPLIT_NONE)
            kept_d++;
    }
    assert_int_equal (kept_a, 20);
    assert_int_equal (kept_d, 3);
    /* bad ratios */
    o.ratio[TY_SPLIT_TRAIN] = 0.9;
    assert_int_equal (ty_split_assign (&o, n, strata, names, 4, split, fold), TY_EINVAL);
    assert_int_equal (ty_split_opts_set (&o, "split", "0.8/0.1/0.1"), TY_OK);
    assert_true (o.ratio[TY_SPLIT_TRAIN] == 0.8);
    assert_int_equal (ty_split_opts_set (&o, "split", "0.8/0.3/0.1"), TY_EINVAL);
    assert_int_equal (ty_split_opts_set (&o, "nope", "1"), TY_ENOTFOUND);
    free (strata);
    free (split);
    free (fold);
}

/* ---- hash and append (through the CSV importer) ----------------------------------- */

static void
s_make_csv (const char *path, int classes, int per_class, const char *prefix)
{
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fprintf (f, "label,text\n");
    for (int i = 0; i < per_class; i++)
        for (int c = 0; c < classes; c++)
            fprintf (f, "C%d,%s text number %d of class %d\n", c, prefix, i, c);
    assert_int_equal (fclose (f), 0);
}

static int
s_import (const char *data, const char *name, const char *path, uint64_t seed,
          bool append, uint64_t *version, char *hash)
{
    ty_import_opts_t io;
    ty_import_opts_default (&io);
    ty_validate_t *v = ty_validate_new (NULL);
    ty_import_rows_t *rows = ty_import_rows_new ();
    char err[TY_IMPORT_ERROR_MAX];
    int rc = ty_import_file (path, &io, v, rows, err);
    if (rc == TY_OK)
        rc = ty_import_finish (rows, v);
    ty_split_opts_t so;
    ty_split_opts_default (&so);
    so.seed = seed;
    if (rc == TY_OK)
        rc = append ? ty_import_append (rows, data, name, NULL, NULL, version, hash)
                    : ty_import_commit (rows, data, name, &so, NULL, version, hash);
    ty_import_rows_destroy (&rows);
    ty_validate_destroy (&v);
    return rc;
}

/* The texts of one split, concatenated in key order. */
static char *
s_split_texts (const char *data, const char *spec, ty_split_t split)
{
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, spec, &ds), TY_OK);
    size_t cap = 1 << 16, len = 0;
    char *out = calloc (cap, 1);
    for (uint64_t i = 0; i < ty_dataset_count (ds, split); i++) {
        ty_dataset_view_t view;
        Ty__Sample *s;
        assert_int_equal (ty_dataset_get (ds, split, i, &view), TY_OK);
        assert_int_equal (ty_dataset_view_unpack (&view, &s), TY_OK);
        size_t l = strlen (s->text);
        while (len + l + 2 > cap)
            out = realloc (out, cap *= 2);
        memcpy (out + len, s->text, l);
        len += l;
        out[len++] = '\n';
        out[len] = '\0';
        ty__sample__free_unpacked (s, NULL);
    }
    ty_dataset_destroy (&ds);
    return out;
}

static void
test_dataset_same_input_same_hash (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset");
    char csv[4200];
    snprintf (csv, sizeof csv, "%s/in.csv", data);
    s_make_csv (csv, 4, 25, "h");
    char h1[65], h2[65], h3[65];
    uint64_t v;
    assert_int_equal (s_import (data, "a", csv, 1, false, &v, h1), TY_OK);
    assert_int_equal (s_import (data, "b", csv, 1, false, &v, h2), TY_OK);
    assert_int_equal (s_import (data, "a", csv, 2, false, &v, h3), TY_OK);
    assert_int_equal (v, 2);
    assert_string_equal (h1, h2);
    assert_string_not_equal (h1, h3);
    char *t1 = s_split_texts (data, "a@1", TY_SPLIT_TRAIN);
    char *t2 = s_split_texts (data, "b", TY_SPLIT_TRAIN);
    char *t3 = s_split_texts (data, "a@2", TY_SPLIT_TRAIN);
    assert_string_equal (t1, t2);
    assert_string_not_equal (t1, t3);   /* another seed, another split */
    free (t1); free (t2); free (t3);
    /* the stored hash is the one returned */
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, "b", &ds), TY_OK);
    assert_string_equal (ty_dataset_meta (ds)->content_hash, h1);
    assert_int_equal (ty_dataset_meta (ds)->seed, 1);
    assert_int_equal (ty_dataset_meta (ds)->n_sources, 1);
    assert_int_equal (strlen (ty_dataset_meta (ds)->sources[0]->sha256), 64);
    ty_dataset_destroy (&ds);
    ty_tmpdir_free (data);
}

static void
test_dataset_append_records_lineage (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset");
    char csv1[4200], csv2[4200], csv3[4200];
    snprintf (csv1, sizeof csv1, "%s/one.csv", data);
    snprintf (csv2, sizeof csv2, "%s/two.csv", data);
    snprintf (csv3, sizeof csv3, "%s/three.csv", data);
    s_make_csv (csv1, 2, 20, "first");     /* C0, C1: 40 */
    s_make_csv (csv2, 3, 10, "second");    /* C0, C1, C2: 30 */
    s_make_csv (csv3, 1, 12, "third");     /* C0: 12 */
    uint64_t v;
    assert_int_equal (s_import (data, "fb", csv1, 5, false, &v, NULL), TY_OK);
    assert_int_equal (v, 1);
    char *train1 = s_split_texts (data, "fb@1", TY_SPLIT_TRAIN);
    /* the first source file is gone: append must not need it */
    assert_int_equal (unlink (csv1), 0);
    assert_int_equal (s_import (data, "fb", csv2, 0, true, &v, NULL), TY_OK);
    assert_int_equal (v, 2);
    assert_int_equal (s_import (data, "fb@2", csv3, 0, true, &v, NULL), TY_OK);
    assert_int_equal (v, 3);

    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, "fb", &ds), TY_OK);
    const Ty__DatasetMeta *m = ty_dataset_meta (ds);
    assert_int_equal (m->parent_version, 2);
    assert_int_equal (m->added, 12);
    assert_int_equal (m->count_train + m->count_val + m->count_test, 82);
    assert_int_equal (m->seed, 5);   /* the parent's split options */
    uint64_t c;
    assert_int_equal (ty_dataset_new_since (ds, 2, &c), TY_OK);
    assert_int_equal (c, 12);
    assert_int_equal (ty_dataset_new_since (ds, 1, &c), TY_OK);
    assert_int_equal (c, 42);
    assert_int_equal (ty_dataset_new_since (ds, 3, &c), TY_OK);
    assert_int_equal (c, 0);
    assert_int_equal (ty_dataset_new_since (ds, 0, &c), TY_OK);
    assert_int_equal (c, 82);
    assert_int_equal (ty_dataset_new_since (ds, 9, &c), TY_ENOTFOUND);
    /* label ids stay stable; the new label comes after */
    assert_int_equal (ty_dataset_label_count (ds), 3);
    assert_string_equal (ty_dataset_label (ds, 0), "C0");
    assert_string_equal (ty_dataset_label (ds, 2), "C2");
    uint64_t c0 = 0;
    for (size_t i = 0; i < m->n_classes; i++)
        if (!strcmp (m->classes[i]->label, "C0"))
            c0 = m->classes[i]->train + m->classes[i]->val + m->classes[i]->test;
    assert_int_equal (c0, 20 + 10 + 12);
    assert_int_equal (m->n_sources, 3);
    ty_dataset_destroy (&ds);
    /* version 1's train split is the head of version 3's train split */
    char *train3 = s_split_texts (data, "fb@3", TY_SPLIT_TRAIN);
    assert_int_equal (strncmp (train1, train3, strlen (train1)), 0);
    assert_true (strlen (train3) > strlen (train1));
    free (train1);
    free (train3);
    assert_int_equal (s_import (data, "nope", csv2, 0, true, &v, NULL), TY_ENOTFOUND);
    ty_tmpdir_free (data);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_dataset_name_rejects_traversal),
        cmocka_unit_test (test_dataset_versions_roundtrip),
        cmocka_unit_test (test_dataset_map_grows),
        cmocka_unit_test (test_dataset_map_grows_reports_size),
        cmocka_unit_test (test_dataset_abort_and_crash_leave_no_version),
        cmocka_unit_test (test_dataset_iter_order_and_shuffle),
        cmocka_unit_test (test_dataset_shuffle_is_pinned),
        cmocka_unit_test (test_dataset_reader_sees_whole_versions),
        cmocka_unit_test (test_dataset_split_stratified_within_one),
        cmocka_unit_test (test_dataset_same_input_same_hash),
        cmocka_unit_test (test_dataset_append_records_lineage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_dataset_import: importers, validation and export, against real
 *  files in temp dirs (and the small real subsets in tests/data): each
 *  format round-trips import -> dataset -> export to the accepted rows;
 *  each kind of bad input gives its reason and line, and the rest is
 *  imported while the bad share stays under the threshold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ty_tmpdir.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>
#include <stb_image_write.h>

#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_import.h"
#include "ty_validate.h"

#ifndef TY_TEST_DATA_DIR
#define TY_TEST_DATA_DIR "tests/data"
#endif
#define S_PATH_MAX 4300
#define S_DIR_MAX  1024   /* dirs stay short, so paths under them fit */

/* ---- helpers --------------------------------------------------------------------- */

static void
must_write (const char *path, const char *data, size_t len)
{
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    assert_int_equal (fwrite (data, 1, len, f), len);
    assert_int_equal (fclose (f), 0);
}

static char *
must_read (const char *path, size_t *len)
{
    FILE *f = fopen (path, "r");
    assert_non_null (f);
    fseek (f, 0, SEEK_END);
    long n = ftell (f);
    fseek (f, 0, SEEK_SET);
    char *buf = malloc ((size_t) n + 1);
    assert_int_equal (fread (buf, 1, (size_t) n, f), (size_t) n);
    buf[n] = '\0';
    fclose (f);
    if (len)
        *len = (size_t) n;
    return buf;
}

typedef struct {
    char              *dir;
    char               data[S_PATH_MAX];
    ty_import_opts_t   io;
    ty_validate_opts_t vo;
    ty_validate_t     *v;
    ty_import_rows_t  *rows;
    char               err[TY_IMPORT_ERROR_MAX];
} s_ctx_t;

static void
s_ctx_init (s_ctx_t *c, ty_import_format_t format)
{
    memset (c, 0, sizeof *c);
    c->dir = ty_tmpdir_new ("ty_test_import");
    snprintf (c->data, sizeof c->data, "%s/data", c->dir);
    ty_import_opts_default (&c->io);
    c->io.format = format;
    ty_validate_opts_default (&c->vo);
    c->vo.min_per_class = 1;   /* round trips use few rows */
}

static void
s_ctx_free (s_ctx_t *c)
{
    ty_validate_destroy (&c->v);
    ty_import_rows_destroy (&c->rows);
    ty_tmpdir_free (c->dir);
}

/* Imports path; returns ty_import_file's status (validator kept in c). */
static int
s_import (s_ctx_t *c, const char *path)
{
    ty_validate_destroy (&c->v);
    ty_import_rows_destroy (&c->rows);
    c->v = ty_validate_new (&c->vo);
    c->rows = ty_import_rows_new ();
    assert_non_null (c->v);
    assert_non_null (c->rows);
    return ty_import_file (path, &c->io, c->v, c->rows, c->err);
}

static const ty_validate_reason_t *
s_reason (s_ctx_t *c, ty_reject_t r)
{
    return &ty_validate_report (c->v)->reasons[r];
}

/* input text -> file -> dataset "rt" -> export -> must equal `expect`. */
static void
s_round_trip (s_ctx_t *c, const char *input, const char *expect)
{
    char in[S_PATH_MAX], out[S_PATH_MAX];
    snprintf (in, sizeof in, "%s/input", c->dir);
    snprintf (out, sizeof out, "%s/export", c->dir);
    must_write (in, input, strlen (input));
    assert_int_equal (s_import (c, in), TY_OK);
    if (ty_import_finish (c->rows, c->v) != TY_OK)
        fail_msg ("validation: %s", ty_validate_report (c->v)->message);
    assert_int_equal (ty_validate_report (c->v)->rejected, 0);
    uint64_t version;
    assert_int_equal (ty_import_commit (c->rows, c->data, "rt", NULL, NULL, &version, NULL),
                      TY_OK);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (c->data, "rt", &ds), TY_OK);
    assert_int_equal (ty_import_export (ds, &c->io, out), TY_OK);
    ty_dataset_destroy (&ds);
    char *got = must_read (out, NULL);
    assert_string_equal (got, expect ? expect : input);
    free (got);
}

/* ---- round trips --------------------------------------------------------------------- */

static void
test_import_csv_round_trip (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_CSV);
    c.io.confidence_col = "confidence";
    c.io.source_col = "source";
    s_round_trip (&c,
        "label,text,confidence,source\n"
        "spam,\"hello, \"\"world\"\"\",0.5,user_feedback\n"
        "ham,plain text,1,import\n"
        "spam,\"two\nlines\",0.75,automatic\n"
        "ham,caf\xc3\xa9 \xe2\x82\xac,0.25,import\n"
        "spam,another one,1,user_feedback\n", NULL);
    s_ctx_free (&c);
}

static void
test_import_csv_multilabel_round_trip (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_CSV);
    c.io.labels_col = "labels";
    s_round_trip (&c, "labels,text\nA|B,first\nB,second\nA|C|B,third\n", NULL);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (c.data, "rt", &ds), TY_OK);
    assert_int_equal (ty_dataset_label_count (ds), 3);
    ty_dataset_destroy (&ds);
    s_ctx_free (&c);
}

static void
test_import_tsv_fortunes_round_trip (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_TSV);
    c.io.header = false;
    char *input = must_read (TY_TEST_DATA_DIR "/fortunes_small.tsv", NULL);
    s_round_trip (&c, input, NULL);
    assert_int_equal (ty_import_rows_count (c.rows), 40);
    free (input);
    s_ctx_free (&c);
}

static void
test_import_jsonl_round_trip (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_JSONL);
    s_round_trip (&c,
        "{\"text\":\"a \\\"quoted\\\" one\",\"label\":\"A\"}\n"
        "{\"text\":\"b\",\"labels\":[\"A\",\"B\"],\"confidence\":0.5,\"source\":\"automatic\"}\n"
        "{\"text\":\"c\",\"label\":\"B\",\"source\":\"user_feedback\"}\n", NULL);
    s_ctx_free (&c);
}

static void
test_import_fasttext_round_trip (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_FASTTEXT);
    s_round_trip (&c,
        "__label__SHOW_A Show.A.S01E02.720p.mkv\n"
        "__label__SHOW_B __label__EXTRA Show B - 1x03.avi\n"
        "__label__SHOW_A Show.A.S01E03.720p.mkv\n", NULL);
    s_ctx_free (&c);
}

static void
test_import_features_round_trip (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_FEATURES);
    s_round_trip (&c, "label,f0,f1,f2\n3,0.5,1,-2.25\n1,0,16,0.125\n3,1e-05,7,8\n", NULL);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (c.data, "rt", &ds), TY_OK);
    assert_int_equal (ty_dataset_meta (ds)->stats->feature_dim, 3);
    assert_string_equal (ty_dataset_meta (ds)->kind, "features");
    ty_dataset_destroy (&ds);
    s_ctx_free (&c);
}

static void
test_import_annotations_round_trip (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_ANNOTATIONS);
    s_round_trip (&c, "path,rating\nframes/0001.png,0.25\nframes/0002.png,1\n"
                      "frames/0003.png,0\n", NULL);
    s_ctx_free (&c);
}

static void
test_import_interactions_round_trip (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_INTERACTIONS);
    s_round_trip (&c, "user,item,rating,timestamp\nu1,i9,0.5,1700000000\nu2,i9,,1700000001\n"
                      "u1,i3,1,0\n", NULL);
    s_ctx_free (&c);
}

/* The real digits subset: decoded pixels are stored as they are (8x8
 * grey, no resize), and exported PNGs decode to the same pixels. */
static void
test_import_images_round_trip (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_IMAGES);
    c.io.image_width = c.io.image_height = 8;
    c.io.image_channels = 1;
    assert_int_equal (s_import (&c, TY_TEST_DATA_DIR "/digits"), TY_OK);
    assert_int_equal (ty_import_finish (c.rows, c.v), TY_OK);
    assert_int_equal (ty_import_rows_count (c.rows), 12);
    assert_int_equal (ty_import_commit (c.rows, c.data, "digits", NULL, NULL, NULL, NULL),
                      TY_OK);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (c.data, "digits", &ds), TY_OK);
    assert_string_equal (ty_dataset_meta (ds)->kind, "image");
    char out[S_DIR_MAX];
    snprintf (out, sizeof out, "%s/export", c.dir);
    assert_int_equal (ty_import_export (ds, &c.io, out), TY_OK);
    /* every stored image: its export decodes to the same pixels, and so
     * does its source file (line = position in sorted order) */
    const char *classes[] = { "0", "1", "7" };
    int checked = 0;
    for (int sp = 0; sp < TY_SPLIT_COUNT; sp++)
        for (uint64_t i = 0; i < ty_dataset_count (ds, (ty_split_t) sp); i++) {
            ty_dataset_view_t view;
            Ty__Sample *s;
            assert_int_equal (ty_dataset_get (ds, (ty_split_t) sp, i, &view), TY_OK);
            assert_int_equal (ty_dataset_view_unpack (&view, &s), TY_OK);
            assert_non_null (s->image);
            assert_int_equal (s->image->pixels.len, 64);
            char path[S_PATH_MAX];
            snprintf (path, sizeof path, "%s/%s/%08llu.png", out, s->labels[0],
                      (unsigned long long) s->line);
            int w, h, n;
            unsigned char *px = stbi_load (path, &w, &h, &n, 1);
            assert_non_null (px);
            assert_memory_equal (px, s->image->pixels.data, 64);
            stbi_image_free (px);
            bool known = false;
            for (int k = 0; k < 3; k++)
                known |= !strcmp (s->labels[0], classes[k]);
            assert_true (known);
            ty__sample__free_unpacked (s, NULL);
            checked++;
        }
    assert_int_equal (checked, 12);
    ty_dataset_destroy (&ds);
    s_ctx_free (&c);
}

/* Resize and channel conversion: a 16x12 RGB PNG becomes 8x8 grey. */
static void
test_import_images_resize (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_IMAGES);
    c.io.image_width = c.io.image_height = 8;
    c.io.image_channels = 1;
    char root[S_DIR_MAX], cls[S_DIR_MAX + 8], path[S_PATH_MAX];
    snprintf (root, sizeof root, "%s/imgs", c.dir);
    snprintf (cls, sizeof cls, "%s/red", root);
    assert_int_equal (mkdir (root, 0755), 0);
    assert_int_equal (mkdir (cls, 0755), 0);
    unsigned char rgb[16 * 12 * 3];
    for (int i = 0; i < 16 * 12; i++) {
        rgb[3 * i] = 200;
        rgb[3 * i + 1] = 10;
        rgb[3 * i + 2] = (unsigned char) i;
    }
    snprintf (path, sizeof path, "%s/a.png", cls);
    assert_true (stbi_write_png (path, 16, 12, 3, rgb, 16 * 3));
    assert_int_equal (s_import (&c, root), TY_OK);
    assert_int_equal (ty_import_rows_count (c.rows), 1);
    const void *data;
    size_t size;
    assert_int_equal (ty_import_rows_get (c.rows, 0, &data, &size), TY_OK);
    Ty__Sample *s = ty__sample__unpack (NULL, size, data);
    assert_non_null (s);
    assert_int_equal (s->image->width, 8);
    assert_int_equal (s->image->height, 8);
    assert_int_equal (s->image->channels, 1);
    assert_int_equal (s->image->pixels.len, 64);
    ty__sample__free_unpacked (s, NULL);
    s_ctx_free (&c);
}

/* ---- bad input ------------------------------------------------------------------------ */

/* One CSV with every kind of bad row between 40 good ones: each bad row is
 * rejected with its reason and line, the good ones (also those right
 * after a bogus quote) are imported. */
static void
test_import_csv_bad_rows (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_CSV);
    c.vo.min_per_class = 10;
    c.vo.max_bad_share = 0.2;
    size_t cap = 12u << 20, len = 0;
    char *buf = malloc (cap);
    uint64_t line = 1, l_quote = 0, l_cols = 0, l_utf8 = 0, l_nul = 0, l_long = 0;
    len += (size_t) sprintf (buf + len, "label,text\n");
    for (int i = 0; i < 40; i++) {
        line++;
        len += (size_t) sprintf (buf + len, "%s,good row %d\n", i % 2 ? "A" : "B", i);
        switch (i) {
        case 5:
            l_quote = ++line;
            len += (size_t) sprintf (buf + len, "A,\"never closed\n");
            break;
        case 10:
            l_cols = ++line;
            len += (size_t) sprintf (buf + len, "A,too,many,columns\n");
            break;
        case 15:
            l_utf8 = ++line;
            len += (size_t) sprintf (buf + len, "A,bad \xff\xfe bytes\n");
            break;
        case 20:
            l_nul = ++line;
            memcpy (buf + len, "A,nul\0byte\n", 11);
            len += 11;
            break;
        case 25:
            l_long = ++line;
            len += (size_t) sprintf (buf + len, "A,");
            memset (buf + len, 'x', 10u << 20);   /* a 10 MB line */
            len += 10u << 20;
            buf[len++] = '\n';
            break;
        }
    }
    char in[S_PATH_MAX];
    snprintf (in, sizeof in, "%s/bad.csv", c.dir);
    must_write (in, buf, len);
    free (buf);
    assert_int_equal (s_import (&c, in), TY_OK);
    const ty_validate_report_t *r = ty_validate_report (c.v);
    assert_int_equal (r->accepted, 40);
    assert_int_equal (r->rejected, 5);
    assert_int_equal (s_reason (&c, TY_REJECT_QUOTE)->count, 1);
    assert_int_equal (s_reason (&c, TY_REJECT_QUOTE)->first_lines[0], l_quote);
    assert_non_null (strstr (s_reason (&c, TY_REJECT_QUOTE)->example, "never closed"));
    assert_int_equal (s_reason (&c, TY_REJECT_COLUMNS)->first_lines[0], l_cols);
    assert_non_null (strstr (s_reason (&c, TY_REJECT_COLUMNS)->example, "expected 2 columns, got 4"));
    assert_int_equal (s_reason (&c, TY_REJECT_UTF8)->first_lines[0], l_utf8);
    assert_int_equal (s_reason (&c, TY_REJECT_NUL)->first_lines[0], l_nul);
    assert_int_equal (s_reason (&c, TY_REJECT_LINE_LONG)->first_lines[0], l_long);
    assert_non_null (strstr (s_reason (&c, TY_REJECT_LINE_LONG)->example, "over the limit"));
    /* 5 of 45 = 11 %: under 20 %, a dataset of the valid rows */
    assert_int_equal (ty_import_finish (c.rows, c.v), TY_OK);
    assert_int_equal (ty_import_commit (c.rows, c.data, "bad", NULL, NULL, NULL, NULL), TY_OK);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (c.data, "bad", &ds), TY_OK);
    const Ty__DatasetMeta *m = ty_dataset_meta (ds);
    assert_int_equal (m->count_train + m->count_val + m->count_test, 40);
    ty_dataset_destroy (&ds);
    /* the JSON report carries the same */
    char *json = ty_validate_report_json (c.v);
    cJSON *j = cJSON_Parse (json);
    assert_non_null (j);
    assert_true (cJSON_IsTrue (cJSON_GetObjectItem (j, "ok")));
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItem (j, "rejects")), 5);
    cJSON *first = cJSON_GetArrayItem (cJSON_GetObjectItem (j, "rejects"), 0);
    assert_string_equal (cJSON_GetObjectItem (first, "reason")->valuestring, "unbalanced_quote");
    assert_int_equal (cJSON_GetArrayItem (cJSON_GetObjectItem (first, "first_lines"), 0)->valueint,
                      (int) l_quote);
    cJSON_Delete (j);
    free (json);
    /* over the threshold: a failure naming the rule */
    ty_validate_t *strict;
    c.vo.max_bad_share = 0.05;
    strict = ty_validate_new (&c.vo);
    ty_import_rows_t *rows = ty_import_rows_new ();
    assert_int_equal (ty_import_file (in, &c.io, strict, rows, NULL), TY_OK);
    assert_int_equal (ty_import_finish (rows, strict), TY_EINVAL);
    assert_non_null (strstr (ty_validate_report (strict)->message, "max_bad_share"));
    ty_import_rows_destroy (&rows);
    ty_validate_destroy (&strict);
    s_ctx_free (&c);
}

static void
test_import_file_errors (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_CSV);
    char path[S_PATH_MAX];
    snprintf (path, sizeof path, "%s/missing.csv", c.dir);
    assert_int_equal (s_import (&c, path), ENOENT);
    assert_non_null (strstr (c.err, "No such file"));
    assert_non_null (strstr (c.err, "missing.csv"));

    snprintf (path, sizeof path, "%s/empty.csv", c.dir);
    must_write (path, "", 0);
    assert_int_equal (s_import (&c, path), TY_EINVAL);
    assert_non_null (strstr (c.err, "empty"));
    c.io.format = TY_FORMAT_JSONL;
    assert_int_equal (s_import (&c, path), TY_EINVAL);
    c.io.format = TY_FORMAT_CSV;

    /* a header without the text column */
    snprintf (path, sizeof path, "%s/nocol.csv", c.dir);
    must_write (path, "label,body\nA,x\n", 15);
    assert_int_equal (s_import (&c, path), TY_EINVAL);
    assert_non_null (strstr (c.err, "text"));
    assert_non_null (strstr (c.err, "body"));

    /* no rows at all: the dataset rule says so */
    snprintf (path, sizeof path, "%s/header_only.csv", c.dir);
    must_write (path, "label,text\n", 11);
    assert_int_equal (s_import (&c, path), TY_OK);
    assert_int_equal (ty_import_finish (c.rows, c.v), TY_EINVAL);
    assert_non_null (strstr (ty_validate_report (c.v)->message, "min_samples"));

    /* JSON Lines: a broken line among good ones */
    c.io.format = TY_FORMAT_JSONL;
    snprintf (path, sizeof path, "%s/x.jsonl", c.dir);
    const char *jl = "{\"text\":\"a\",\"label\":\"A\"}\n{not json\n[1,2]\n"
                     "{\"text\":5,\"label\":\"A\"}\n{\"text\":\"b\",\"label\":\"A\"}\n";
    must_write (path, jl, strlen (jl));
    assert_int_equal (s_import (&c, path), TY_OK);
    assert_int_equal (ty_validate_report (c.v)->accepted, 2);
    assert_int_equal (s_reason (&c, TY_REJECT_JSON)->count, 2);
    assert_int_equal (s_reason (&c, TY_REJECT_JSON)->first_lines[0], 2);
    assert_int_equal (s_reason (&c, TY_REJECT_VALUE)->first_lines[0], 4);
    s_ctx_free (&c);
}

static void
test_import_bad_images (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_IMAGES);
    c.io.image_width = c.io.image_height = 4;
    c.io.image_channels = 1;
    c.vo.max_bad_share = 0.2;
    char root[S_DIR_MAX], path[S_PATH_MAX];
    snprintf (root, sizeof root, "%s/imgs", c.dir);
    assert_int_equal (mkdir (root, 0755), 0);
    const char *classes[] = { "ad", "content" };
    unsigned char px[16];
    for (int k = 0; k < 2; k++) {
        snprintf (path, sizeof path, "%s/%s", root, classes[k]);
        assert_int_equal (mkdir (path, 0755), 0);
        for (int i = 0; i < 12; i++) {
            for (int p = 0; p < 16; p++)
                px[p] = (unsigned char) (k * 100 + i * 7 + p);
            snprintf (path, sizeof path, "%s/%s/img%02d.png", root, classes[k], i);
            assert_true (stbi_write_png (path, 4, 4, 1, px, 4));
        }
    }
    /* a truncated PNG: the first 40 bytes of a good one */
    snprintf (path, sizeof path, "%s/ad/img00.png", root);
    size_t len;
    char *png = must_read (path, &len);
    snprintf (path, sizeof path, "%s/ad/truncated.png", root);
    must_write (path, png, 40);
    free (png);
    /* a "JPEG" that is text */
    snprintf (path, sizeof path, "%s/content/fake.jpg", root);
    must_write (path, "this is not a jpeg\n", 19);
    /* not an image name: ignored */
    snprintf (path, sizeof path, "%s/content/notes.txt", root);
    must_write (path, "ignored\n", 8);

    assert_int_equal (s_import (&c, root), TY_OK);
    const ty_validate_report_t *r = ty_validate_report (c.v);
    assert_int_equal (r->accepted, 24);
    assert_int_equal (s_reason (&c, TY_REJECT_IMAGE)->count, 2);
    assert_non_null (strstr (s_reason (&c, TY_REJECT_IMAGE)->example, "ad/truncated.png"));
    assert_int_equal (ty_import_finish (c.rows, c.v), TY_OK);
    assert_int_equal (ty_import_commit (c.rows, c.data, "ads", NULL, NULL, NULL, NULL), TY_OK);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (c.data, "ads", &ds), TY_OK);
    const Ty__DatasetMeta *m = ty_dataset_meta (ds);
    assert_int_equal (m->count_train + m->count_val + m->count_test, 24);
    assert_int_equal (m->stats->image_width, 4);
    ty_dataset_destroy (&ds);
    /* a missing folder */
    snprintf (path, sizeof path, "%s/nothere", c.dir);
    assert_int_equal (s_import (&c, path), ENOENT);
    s_ctx_free (&c);
}

/* ---- validation rules --------------------------------------------------------------------- */

static void
test_import_validation_rules (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_CSV);
    c.vo.min_per_class = 10;
    c.vo.label_case = TY_LABEL_CASE_UPPER;
    c.vo.max_text_bytes = 50;
    c.vo.max_bad_share = 0.5;
    char path[S_PATH_MAX];
    snprintf (path, sizeof path, "%s/v.csv", c.dir);
    FILE *f = fopen (path, "w");
    fprintf (f, "label,text,confidence\n");
    for (int i = 0; i < 60; i++)   /* " spam " and "Spam" are one class */
        fprintf (f, "%s,spam text %d,1\n", i % 2 ? " spam " : "Spam", i);
    for (int i = 0; i < 40; i++)
        fprintf (f, "ham,ham text %d,0.9\n", i);
    for (int i = 0; i < 3; i++)
        fprintf (f, "rare,rare text %d,1\n", i);
    fprintf (f, "ham,ham text 1,1\n");                 /* duplicate content */
    fprintf (f, "ham,   ,1\n");                        /* empty text */
    fprintf (f, "ham,%s,1\n", "a text that is much much longer than fifty bytes surely");
    fprintf (f, "ham,bad confidence,1.5\n");
    fprintf (f, "ham,nan confidence,abc\n");
    fprintf (f, ",no label,1\n");
    fclose (f);
    assert_int_equal (s_import (&c, path), TY_OK);
    assert_int_equal (s_reason (&c, TY_REJECT_DUPLICATE)->count, 1);
    assert_int_equal (s_reason (&c, TY_REJECT_EMPTY_TEXT)->count, 1);
    assert_int_equal (s_reason (&c, TY_REJECT_TEXT_LONG)->count, 1);
    assert_int_equal (s_reason (&c, TY_REJECT_WEIGHT)->count, 1);
    assert_int_equal (s_reason (&c, TY_REJECT_VALUE)->count, 1);
    assert_int_equal (s_reason (&c, TY_REJECT_NO_LABEL)->count, 1);
    assert_int_equal (ty_import_finish (c.rows, c.v), TY_EINVAL);
    const ty_validate_report_t *r = ty_validate_report (c.v);
    assert_non_null (strstr (r->message, "min_per_class"));
    assert_non_null (strstr (r->message, "'RARE'"));
    assert_int_equal (r->n_classes, 3);
    assert_string_equal (r->classes[1].label, "RARE");
    assert_int_equal (r->classes[2].count, 60);        /* SPAM */
    assert_true (r->classes[1].unbalanced);
    assert_int_equal (r->n_warnings, 1);
    assert_non_null (strstr (r->warnings[0], "RARE"));

    /* annotations: ratings out of [0, 1] */
    c.io.format = TY_FORMAT_ANNOTATIONS;
    snprintf (path, sizeof path, "%s/a.csv", c.dir);
    const char *an = "path,rating\nf1.png,0.5\nf2.png,1.5\nf3.png,-0.1\nf4.png,x\n,0.3\n";
    must_write (path, an, strlen (an));
    assert_int_equal (s_import (&c, path), TY_OK);
    assert_int_equal (s_reason (&c, TY_REJECT_RATING)->count, 2);
    assert_int_equal (s_reason (&c, TY_REJECT_RATING)->first_lines[0], 3);
    assert_int_equal (s_reason (&c, TY_REJECT_VALUE)->count, 2);
    assert_int_equal (ty_validate_report (c.v)->accepted, 1);

    ty_validate_opts_t o;
    ty_validate_opts_default (&o);
    assert_int_equal (ty_validate_opts_set (&o, "min_per_class", "50"), TY_OK);
    assert_int_equal (o.min_per_class, 50);
    assert_int_equal (ty_validate_opts_set (&o, "max_bad_share", "2"), TY_EINVAL);
    assert_int_equal (ty_validate_opts_set (&o, "label_case", "upper"), TY_OK);
    assert_int_equal (ty_validate_opts_set (&o, "what", "1"), TY_ENOTFOUND);
    s_ctx_free (&c);
}

static void
test_import_opts_from_spec (void **state)
{
    (void) state;
    ty_import_opts_t o;
    ty_import_opts_default (&o);
    assert_int_equal (ty_import_opts_set (&o, "format", "images"), TY_OK);
    assert_int_equal (o.format, TY_FORMAT_IMAGES);
    assert_int_equal (ty_import_opts_set (&o, "image_size", "224x224"), TY_OK);
    assert_int_equal (o.image_width, 224);
    assert_int_equal (ty_import_opts_set (&o, "channels", "grey"), TY_OK);
    assert_int_equal (o.image_channels, 1);
    assert_int_equal (ty_import_opts_set (&o, "image_size", "0x5"), TY_EINVAL);
    assert_int_equal (ty_import_opts_set (&o, "delimiter", "\\t"), TY_OK);
    assert_int_equal (o.delimiter, '\t');
    assert_int_equal (ty_import_opts_set (&o, "source", "user_feedback"), TY_OK);
    assert_int_equal (o.source, TY__SAMPLE_SOURCE__SOURCE_USER_FEEDBACK);
    assert_int_equal (ty_import_opts_set (&o, "bogus", "1"), TY_ENOTFOUND);
    assert_int_equal (ty_import_format_guess ("x.jsonl"), TY_FORMAT_JSONL);
    assert_int_equal (ty_import_format_guess (TY_TEST_DATA_DIR "/digits"), TY_FORMAT_IMAGES);
}

/* ---- export of one split -------------------------------------------------------------- */

#define S_SPLIT_ROWS 60

/* A CSV of S_SPLIT_ROWS rows "cN,row N" (3 classes); *lines gets each
 * data line by its file line number (line 2 is the first row). */
static void
s_write_rows_csv (const char *path, char lines[][32], uint64_t n)
{
    char *text = malloc (n * 32 + 32);
    assert_non_null (text);
    size_t len = (size_t) sprintf (text, "label,text\n");
    for (uint64_t i = 0; i < n; i++) {
        snprintf (lines[i + 2], 32, "c%d,row %d\n", (int) (i % 3), (int) i);
        len += (size_t) sprintf (text + len, "%s", lines[i + 2]);
    }
    must_write (path, text, len);
    free (text);
}

static int
s_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static void
test_import_export_one_split (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_CSV);
    char in[S_PATH_MAX], out[S_PATH_MAX];
    char lines[S_SPLIT_ROWS + 2][32];
    snprintf (in, sizeof in, "%s/input.csv", c.dir);
    snprintf (out, sizeof out, "%s/test.csv", c.dir);
    s_write_rows_csv (in, lines, S_SPLIT_ROWS);
    assert_int_equal (s_import (&c, in), TY_OK);
    assert_int_equal (ty_import_finish (c.rows, c.v), TY_OK);
    assert_int_equal (ty_import_commit (c.rows, c.data, "sp", NULL, NULL, NULL, NULL), TY_OK);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (c.data, "sp", &ds), TY_OK);
    uint64_t n_test = ty_dataset_count (ds, TY_SPLIT_TEST);
    assert_true (n_test > 0 && n_test < ty_dataset_count (ds, TY_SPLIT_TRAIN));

    /* expected: the header, then the test split's source lines in file order */
    uint64_t *at = malloc (n_test * sizeof *at);
    assert_non_null (at);
    for (uint64_t i = 0; i < n_test; i++) {
        ty_dataset_view_t view;
        Ty__Sample *s;
        assert_int_equal (ty_dataset_get (ds, TY_SPLIT_TEST, i, &view), TY_OK);
        assert_int_equal (ty_dataset_view_unpack (&view, &s), TY_OK);
        at[i] = s->line;
        ty__sample__free_unpacked (s, NULL);
    }
    qsort (at, n_test, sizeof *at, s_cmp_u64);
    char expect[(S_SPLIT_ROWS + 1) * 32] = "label,text\n";
    for (uint64_t i = 0; i < n_test; i++) {
        assert_true (at[i] >= 2 && at[i] < S_SPLIT_ROWS + 2);
        strcat (expect, lines[at[i]]);
    }
    free (at);

    c.io.export_splits = TY_IMPORT_SPLIT_BIT (TY_SPLIT_TEST);
    assert_int_equal (ty_import_export (ds, &c.io, out), TY_OK);
    char *got = must_read (out, NULL);
    assert_string_equal (got, expect);
    free (got);

    /* two splits: their rows together; no mask: every row */
    c.io.export_splits = TY_IMPORT_SPLIT_BIT (TY_SPLIT_TEST) | TY_IMPORT_SPLIT_BIT (TY_SPLIT_VAL);
    assert_int_equal (ty_import_export (ds, &c.io, out), TY_OK);
    size_t len;
    got = must_read (out, &len);
    size_t nl = 0;
    for (size_t i = 0; i < len; i++)
        nl += got[i] == '\n';
    assert_int_equal (nl, 1 + n_test + ty_dataset_count (ds, TY_SPLIT_VAL));
    free (got);
    c.io.export_splits = 0;
    assert_int_equal (ty_import_export (ds, &c.io, out), TY_OK);
    got = must_read (out, &len);
    char *all = must_read (in, NULL);
    assert_string_equal (got, all);
    free (all);
    free (got);
    ty_dataset_destroy (&ds);
    s_ctx_free (&c);
}

/* ---- cancel: reading and writing stop on the callback's word ------------------------- */

typedef struct {
    uint64_t stop_at;     /* stop once this many rows are read / written */
    uint64_t calls;
    uint64_t last, total;
} s_stop_t;

static int
s_stop_reading (void *arg, uint64_t rows_read, uint64_t rejected)
{
    (void) rejected;
    s_stop_t *st = arg;
    st->calls++;
    st->last = rows_read;
    return rows_read >= st->stop_at;
}

static int
s_stop_writing (void *arg, uint64_t written, uint64_t total)
{
    s_stop_t *st = arg;
    st->calls++;
    st->last = written;
    st->total = total;
    return written >= st->stop_at;
}

/* Entries of dir whose name starts with prefix (0 if dir is missing). */
static int
s_count_prefixed (const char *dir, const char *prefix)
{
    DIR *d = opendir (dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir (d)))
        n += strncmp (e->d_name, prefix, strlen (prefix)) == 0;
    closedir (d);
    return n;
}

static void
test_import_cancel (void **state)
{
    (void) state;
    s_ctx_t c;
    s_ctx_init (&c, TY_FORMAT_CSV);
    char in[S_PATH_MAX], name_dir[S_PATH_MAX + 32];
    char lines[S_SPLIT_ROWS + 2][32];
    snprintf (in, sizeof in, "%s/input.csv", c.dir);
    snprintf (name_dir, sizeof name_dir, "%s/datasets/cx", c.data);
    s_write_rows_csv (in, lines, S_SPLIT_ROWS);

    /* reading: stopped after 20 rows, called every 5 */
    s_stop_t st = { .stop_at = 20 };
    c.io.progress = s_stop_reading;
    c.io.progress_arg = &st;
    c.io.progress_rows = 5;
    assert_int_equal (s_import (&c, in), ECANCELED);
    assert_int_equal (st.last, 20);
    assert_int_equal (st.calls, 4);
    assert_int_equal (ty_validate_report (c.v)->rows_read, 20);
    assert_int_equal (ty_import_rows_count (c.rows), 20);
    assert_non_null (strstr (c.err, "stopped after 20 rows"));
    /* a callback that never stops sees every row and changes nothing */
    st = (s_stop_t) { .stop_at = UINT64_MAX };
    assert_int_equal (s_import (&c, in), TY_OK);
    assert_int_equal (st.calls, S_SPLIT_ROWS / 5);
    assert_int_equal (ty_import_rows_count (c.rows), S_SPLIT_ROWS);
    assert_int_equal (ty_import_finish (c.rows, c.v), TY_OK);

    /* writing: stopped after 25 samples -> no version, no temp dir */
    st = (s_stop_t) { .stop_at = 25 };
    ty_import_hook_t hook = { .fn = s_stop_writing, .arg = &st, .every = 5 };
    uint64_t version = 0;
    assert_int_equal (ty_import_commit (c.rows, c.data, "cx", NULL, &hook, &version, NULL),
                      ECANCELED);
    assert_int_equal (version, 0);
    assert_int_equal (st.last, 25);
    assert_int_equal (st.total, S_SPLIT_ROWS);
    uint64_t *vs = NULL;
    size_t nv = 99;
    int rc = ty_dataset_versions (c.data, "cx", &vs, &nv);
    assert_true (rc == TY_ENOTFOUND || (rc == TY_OK && nv == 0));
    free (vs);
    assert_int_equal (s_count_prefixed (name_dir, ".tmp-"), 0);
    ty_dataset_t *ds = NULL;
    assert_int_equal (ty_dataset_open (c.data, "cx", &ds), TY_ENOTFOUND);

    /* the stop at the very end (written == total) is still honoured */
    st = (s_stop_t) { .stop_at = S_SPLIT_ROWS };
    hook.every = 1000;
    assert_int_equal (ty_import_commit (c.rows, c.data, "cx", NULL, &hook, NULL, NULL),
                      ECANCELED);
    assert_int_equal (st.calls, 1);
    assert_int_equal (ty_dataset_open (c.data, "cx", &ds), TY_ENOTFOUND);

    /* not stopped: the version appears and the hook saw every sample */
    st = (s_stop_t) { .stop_at = UINT64_MAX };
    hook.every = 7;
    assert_int_equal (ty_import_commit (c.rows, c.data, "cx", NULL, &hook, &version, NULL),
                      TY_OK);
    assert_int_equal (version, 1);
    assert_int_equal (st.last, S_SPLIT_ROWS);
    assert_int_equal (st.calls, S_SPLIT_ROWS / 7 + 1);

    /* append: the copy of the parent counts; a stop leaves no version 2 */
    st = (s_stop_t) { .stop_at = S_SPLIT_ROWS + 3 };
    hook.every = 1;
    assert_int_equal (ty_import_append (c.rows, c.data, "cx", NULL, &hook, &version, NULL),
                      ECANCELED);
    assert_int_equal (st.total, 2 * S_SPLIT_ROWS);
    assert_int_equal (st.last, S_SPLIT_ROWS + 3);
    assert_int_equal (ty_dataset_versions (c.data, "cx", &vs, &nv), TY_OK);
    assert_int_equal (nv, 1);
    assert_int_equal (vs[0], 1);
    free (vs);
    assert_int_equal (s_count_prefixed (name_dir, ".tmp-"), 0);
    assert_int_equal (ty_dataset_open (c.data, "cx", &ds), TY_OK);
    assert_int_equal (ty_dataset_version (ds), 1);
    ty_dataset_destroy (&ds);
    s_ctx_free (&c);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_import_csv_round_trip),
        cmocka_unit_test (test_import_csv_multilabel_round_trip),
        cmocka_unit_test (test_import_tsv_fortunes_round_trip),
        cmocka_unit_test (test_import_jsonl_round_trip),
        cmocka_unit_test (test_import_fasttext_round_trip),
        cmocka_unit_test (test_import_features_round_trip),
        cmocka_unit_test (test_import_annotations_round_trip),
        cmocka_unit_test (test_import_interactions_round_trip),
        cmocka_unit_test (test_import_images_round_trip),
        cmocka_unit_test (test_import_images_resize),
        cmocka_unit_test (test_import_csv_bad_rows),
        cmocka_unit_test (test_import_file_errors),
        cmocka_unit_test (test_import_bad_images),
        cmocka_unit_test (test_import_validation_rules),
        cmocka_unit_test (test_import_opts_from_spec),
        cmocka_unit_test (test_import_export_one_split),
        cmocka_unit_test (test_import_cancel),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

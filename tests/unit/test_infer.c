/*  test_infer: libtrainyard-infer on its own. This test links ONLY
 *  trainyard_infer and cmocka (and libc/libm): if the runtime ever needed
 *  more, it would not link. The model files are built here byte by byte
 *  from docs/model-format.md, with weights small enough to predict by hand,
 *  so the test also pins the format:
 *    - mlp (softmax and regression), textclf (vocabulary, mean of rows,
 *      character tables from the file: a lower-case map and a space),
 *      cnn (conv, relu, max pool, mean, linear) and ncf give the values
 *      worked out in the comments;
 *    - truncation at every byte, wrong magic/version, lying sizes and
 *      counts are refused with a message; misuse gives a status;
 *    - FP16 and INT8 weights (with their scale sections) and a pruned
 *      textclf (ROWMAP, format version 2) give the hand-worked values; every
 *      binary16 value converts exactly; bad scale indexes and counts, NaN
 *      scales, truncated quantized tensors, row maps out of order or range
 *      are refused with a message.
 *  Under valgrind: no leak, no invalid read (see the module's tests). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ty_infer.h"

#define ERRLEN 256
#define EPS    1e-6

/* /dev/shm when there is one: the corrupt-file tests write a few thousand
 * small files, which costs seconds on an overlay /tmp. */
static char s_dir[64];

static int
s_setup (void **state)
{
    (void) state;
    snprintf (s_dir, sizeof s_dir, "%s/ty_infer_XXXXXX",
              access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    return mkdtemp (s_dir) ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void) state;
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system (cmd) == 0 ? 0 : -1;
}

/* ==== a file builder, straight from docs/model-format.md ==================== */

typedef struct {
    uint32_t type, dtype, ndim;
    uint64_t dims[4];
    const void *data;
    size_t bytes;
} sec_t;

static void
s_put32 (unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

static void
s_put64 (unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

static size_t
s_align (size_t v)
{
    return (v + 63) / 64 * 64;
}

/* Header, table, sections at multiples of 64. Host floats are little-endian
 * on every machine this runs on (the runtime refuses others). */
static unsigned char *
s_build (uint32_t kind, const sec_t *s, size_t n, size_t *len)
{
    size_t off = s_align (64 + 64 * n), offs[32];
    for (size_t i = 0; i < n; i++) {
        offs[i] = off;
        off = s_align (off + s[i].bytes);
    }
    unsigned char *b = calloc (off, 1);
    assert_non_null (b);
    memcpy (b, "TYMODEL", 8);
    /* Version 2 when the file has a row map, as the writer does. */
    uint32_t version = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i].type == TY_INFER_SEC_ROWMAP)
            version = 2;
    s_put32 (b + 8, version);
    s_put32 (b + 12, 64);
    s_put64 (b + 16, off);
    s_put32 (b + 24, kind);
    s_put32 (b + 28, (uint32_t) n);
    s_put64 (b + 32, 64);
    s_put32 (b + 40, 64);
    for (size_t i = 0; i < n; i++) {
        unsigned char *e = b + 64 + 64 * i;
        s_put32 (e, s[i].type);
        s_put32 (e + 4, s[i].dtype);
        s_put64 (e + 8, offs[i]);
        s_put64 (e + 16, s[i].bytes);
        s_put32 (e + 24, s[i].ndim);
        s_put32 (e + 28, UINT32_MAX);
        for (int d = 0; d < 4; d++)
            s_put64 (e + 32 + 8 * d, s[i].dims[d]);
        if (s[i].bytes)
            memcpy (b + offs[i], s[i].data, s[i].bytes);
    }
    *len = off;
    return b;
}

static void
s_arch (unsigned char *out, const int64_t *v, size_t n)
{
    memset (out, 0, TY_INFER_ARCH_LEN * 8);
    for (size_t i = 0; i < n; i++)
        s_put64 (out + 8 * i, (uint64_t) v[i]);
}

/* A string table of n strings into out; returns its byte size. */
static size_t
s_strtab (unsigned char *out, const char *const *str, size_t n)
{
    size_t head = 8 + (n + 1) * 8, o = 0;
    s_put64 (out, n);
    for (size_t i = 0; i < n; i++) {
        s_put64 (out + 8 + 8 * i, o);
        memcpy (out + head + o, str[i], strlen (str[i]));
        o += strlen (str[i]);
    }
    s_put64 (out + 8 + 8 * n, o);
    return head + o;
}

static char *
s_file (const char *name, const unsigned char *b, size_t len)
{
    static char path[256];
    snprintf (path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen (path, "wb");
    assert_non_null (f);
    assert_int_equal (fwrite (b, 1, len, f), len);
    fclose (f);
    return path;
}

static ty_infer_model_t *
must_open_bytes (const unsigned char *b, size_t len)
{
    char err[ERRLEN];
    ty_infer_model_t *m = NULL;
    int rc = ty_infer_open (s_file ("m.tym", b, len), &m, err, sizeof err);
    if (rc != TY_INFER_OK)
        fail_msg ("open: %s", err);
    return m;
}

static int
s_open_status (const unsigned char *b, size_t len)
{
    char err[ERRLEN] = "";
    ty_infer_model_t *m = NULL;
    int rc = ty_infer_open (s_file ("bad.tym", b, len), &m, err, sizeof err);
    if (rc != TY_INFER_OK) {
        assert_null (m);
        assert_true (err[0] != '\0');
    }
    ty_infer_close (&m);
    return rc;
}

/* ==== mlp: y = softmax(I x + 0) ============================================ */

static const float s_eye[4] = {1, 0, 0, 1}, s_zero2[2] = {0, 0};

static unsigned char *
s_mlp_file (int regression, size_t *len)
{
    static unsigned char arch[TY_INFER_ARCH_LEN * 8], labels[128];
    int64_t a[] = {2, 0, regression, 2};
    s_arch (arch, a, 4);
    const char *names[] = {"cat", "dog"};
    size_t lb = s_strtab (labels, names, 2);
    sec_t s[] = {
        {TY_INFER_SEC_ARCH, 0, 0, {0}, arch, sizeof arch},
        {TY_INFER_SEC_LABELS, 0, 0, {0}, labels, lb},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {2, 2}, s_eye, sizeof s_eye},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 1, {2}, s_zero2, sizeof s_zero2},
    };
    return s_build (TY_INFER_MLP, s, 4, len);
}

static void
test_infer_mlp_by_hand (void **state)
{
    (void) state;
    size_t len;
    unsigned char *b = s_mlp_file (0, &len);
    ty_infer_model_t *m = must_open_bytes (b, len);
    assert_int_equal (ty_infer_kind (m), TY_INFER_MLP);
    assert_string_equal (ty_infer_kind_name (ty_infer_kind (m)), "mlp");
    assert_int_equal (ty_infer_input_width (m), 2);
    assert_int_equal (ty_infer_output_width (m), 2);
    assert_string_equal (ty_infer_label (m, 0), "cat");
    assert_string_equal (ty_infer_label (m, 1), "dog");
    float x[2] = {1, 0}, out[2];
    assert_int_equal (ty_infer_predict_features (m, x, 2, out, 2), TY_INFER_OK);
    double e = exp (1.0);
    assert_true (fabs (out[0] - e / (e + 1)) < EPS && fabs (out[1] - 1 / (e + 1)) < EPS);
    size_t idx[2];
    assert_int_equal (ty_infer_topk (out, 2, 5, idx), 2);
    assert_true (idx[0] == 0 && idx[1] == 1);
    /* Misuse: status, no crash. */
    assert_int_equal (ty_infer_predict_features (m, x, 2, out, 1), TY_INFER_EFULL);
    assert_int_equal (ty_infer_predict_features (m, x, 3, out, 2), TY_INFER_EINVAL);
    assert_int_equal (ty_infer_predict_features (m, NULL, 2, out, 2), TY_INFER_EINVAL);
    assert_int_equal (ty_infer_predict_text (m, "a", 1, out, 2), TY_INFER_EINVAL);
    assert_int_equal (ty_infer_predict_pair (m, 0, 0, out), TY_INFER_EINVAL);
    size_t n;
    int64_t ids[4];
    assert_int_equal (ty_infer_encode_text (m, "a", 1, ids, 4, &n), TY_INFER_EINVAL);
    ty_infer_close (&m);
    free (b);

    b = s_mlp_file (1, &len);
    m = must_open_bytes (b, len);
    assert_int_equal (ty_infer_output_type (m), -1);
    float y[2] = {0.25f, -3.5f};
    assert_int_equal (ty_infer_predict_features (m, y, 2, out, 2), TY_INFER_OK);
    assert_true (out[0] == 0.25f && out[1] == -3.5f);   /* regression: raw values */
    ty_infer_close (&m);
    free (b);
}

/* ==== textclf ================================================================ */

/* Vocabulary {"hello", "éa"}, no buckets, dim 2, E = I, fc = I: a text's
 * output is softmax of the share of each word. The file maps É -> é and
 * says U+3000 is a space: the runtime must use them (no locale). */
static unsigned char *
s_text_file (size_t *len)
{
    static unsigned char arch[TY_INFER_ARCH_LEN * 8], tok[TY_INFER_TOK_LEN * 8], vocab[128];
    static unsigned char space[8], lower[8];
    int64_t a[] = {2, 2, 2, 0};
    s_arch (arch, a, 4);
    int64_t t[] = {1 /* lower */, 0, 1, 0, 0, 0 /* bucket */, 0 /* eos */, 1};
    for (int i = 0; i < TY_INFER_TOK_LEN; i++)
        s_put64 (tok + 8 * i, (uint64_t) t[i]);
    const char *words[] = {"hello", "\xc3\xa9" "a"};
    size_t vb = s_strtab (vocab, words, 2);
    s_put32 (space, 0x3000);
    s_put32 (space + 4, 0x3000);
    s_put32 (lower, 0xC9);
    s_put32 (lower + 4, 0xE9);
    sec_t s[] = {
        {TY_INFER_SEC_ARCH, 0, 0, {0}, arch, sizeof arch},
        {TY_INFER_SEC_TOKENIZER, 0, 0, {0}, tok, sizeof tok},
        {TY_INFER_SEC_VOCAB, 0, 0, {0}, vocab, vb},
        {TY_INFER_SEC_CHAR_SPACE, 0, 0, {0}, space, 8},
        {TY_INFER_SEC_CHAR_PUNCT, 0, 0, {0}, NULL, 0},
        {TY_INFER_SEC_CHAR_LOWER, 0, 0, {0}, lower, 8},
        {99, 0, 0, {0}, "future", 6},   /* an unknown section is skipped */
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {2, 2}, s_eye, sizeof s_eye},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {2, 2}, s_eye, sizeof s_eye},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 1, {2}, s_zero2, sizeof s_zero2},
    };
    return s_build (TY_INFER_TEXTCLF, s, 10, len);
}

static void
s_expect_softmax (const float *out, double a, double b)
{
    double ea = exp (a), eb = exp (b);
    if (fabs (out[0] - ea / (ea + eb)) > EPS || fabs (out[1] - eb / (ea + eb)) > EPS)
        fail_msg ("got %g %g, want softmax(%g, %g)", out[0], out[1], a, b);
}

static void
test_infer_textclf_by_hand (void **state)
{
    (void) state;
    size_t len;
    unsigned char *b = s_text_file (&len);
    ty_infer_model_t *m = must_open_bytes (b, len);
    float out[2];
    const char *t1 = "HELLO \xc3\x89" "A";               /* "HELLO ÉA" */
    assert_int_equal (ty_infer_predict_text (m, t1, strlen (t1), out, 2), TY_INFER_OK);
    s_expect_softmax (out, 0.5, 0.5);
    const char *t2 = "hello\xe3\x80\x80hello unknown \xc3\xa9" "a";  /* U+3000 */
    int64_t ids[8];
    size_t n;
    assert_int_equal (ty_infer_encode_text (m, t2, strlen (t2), ids, 8, &n), TY_INFER_OK);
    assert_int_equal (n, 3);
    assert_true (ids[0] == 0 && ids[1] == 0 && ids[2] == 1);
    assert_int_equal (ty_infer_predict_text (m, t2, strlen (t2), out, 2), TY_INFER_OK);
    s_expect_softmax (out, 2.0 / 3, 1.0 / 3);
    /* Nothing known: an empty bag, zeros, uniform. */
    assert_int_equal (ty_infer_predict_text (m, "zzz", 3, out, 2), TY_INFER_OK);
    s_expect_softmax (out, 0, 0);
    assert_int_equal (ty_infer_predict_text (m, "", 0, out, 2), TY_INFER_OK);
    s_expect_softmax (out, 0, 0);
    assert_int_equal (ty_infer_nlabels (m), 0);
    assert_null (ty_infer_label (m, 0));
    ty_infer_close (&m);

    /* Without its character tables a textclf file is refused. */
    size_t table = 64;
    unsigned char *c = malloc (len);
    memcpy (c, b, len);
    s_put32 (c + table + 64 * 5, 98);   /* the LOWER table becomes unknown */
    assert_int_equal (s_open_status (c, len), TY_INFER_EPROTO);
    /* A map into a non-character is refused too? No: kept in range. A
     * range table with first > last is refused. */
    memcpy (c, b, len);
    size_t space_off = 0;
    for (int i = 0; i < 8; i++)
        space_off |= (size_t) c[table + 64 * 3 + 8 + i] << (8 * i);
    s_put32 (c + space_off, 0x3001);
    assert_int_equal (s_open_status (c, len), TY_INFER_EPROTO);
    free (c);
    free (b);
}

/* ==== cnn and ncf =========================================================== */

static void
test_infer_cnn_and_ncf_by_hand (void **state)
{
    (void) state;
    /* cnn 2x2x1, one block of 1 filter = identity 3x3 kernel: relu, max
     * pool -> the brightest pixel p; mean of 1x1 = p; fc [[1], [-1]] ->
     * softmax(p, -p). */
    static unsigned char arch[TY_INFER_ARCH_LEN * 8];
    int64_t a[] = {2, 2, 1, 1, 1, 0, 2};
    s_arch (arch, a, 7);
    const float k[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0}, kb[1] = {0};
    const float fc[2] = {1, -1};
    sec_t s[] = {
        {TY_INFER_SEC_ARCH, 0, 0, {0}, arch, sizeof arch},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 4, {1, 1, 3, 3}, k, sizeof k},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 1, {1}, kb, sizeof kb},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {2, 1}, fc, sizeof fc},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 1, {2}, s_zero2, sizeof s_zero2},
    };
    size_t len;
    unsigned char *b = s_build (TY_INFER_CNN, s, 5, &len);
    ty_infer_model_t *m = must_open_bytes (b, len);
    const uint8_t px[4] = {0, 51, 102, 204};
    float out[2];
    assert_int_equal (ty_infer_predict_image (m, px, 4, out, 2), TY_INFER_OK);
    s_expect_softmax (out, 0.8, -0.8);
    const float x[4] = {0.1f, 0.2f, -0.5f, 0.3f};
    assert_int_equal (ty_infer_predict_features (m, x, 4, out, 2), TY_INFER_OK);
    s_expect_softmax (out, 0.3, -0.3);
    ty_infer_close (&m);
    free (b);

    /* ncf, 2 users x 2 items, gmf 1, mlp 1, no tower: out = w . [gu*gi,
     * mu, mi] + bias, sigmoid. */
    int64_t c[] = {2, 2, 1, 1, 0};
    s_arch (arch, c, 5);
    const float gu[2] = {1, 2}, gi[2] = {3, 4}, mu[2] = {0.5f, -1}, mi[2] = {0.25f, 2};
    const float w[3] = {0.1f, 1, -1}, bias[1] = {0.2f};
    sec_t t[] = {
        {TY_INFER_SEC_ARCH, 0, 0, {0}, arch, sizeof arch},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {2, 1}, gu, sizeof gu},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {2, 1}, gi, sizeof gi},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {2, 1}, mu, sizeof mu},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {2, 1}, mi, sizeof mi},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {1, 3}, w, sizeof w},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 1, {1}, bias, sizeof bias},
    };
    b = s_build (TY_INFER_NCF, t, 7, &len);
    m = must_open_bytes (b, len);
    float score;
    assert_int_equal (ty_infer_predict_pair (m, 1, 0, &score), TY_INFER_OK);
    /* user 1, item 0: 0.1 * 2*3 + 1 * -1 - 1 * 0.25 + 0.2 = -0.45 */
    assert_true (fabs (score - 1 / (1 + exp (0.45))) < EPS);
    assert_int_equal (ty_infer_predict_pair (m, 2, 0, &score), TY_INFER_EINVAL);
    ty_infer_close (&m);
    free (b);
}

/* ==== corrupt files ========================================================== */

static void
test_infer_corrupt_files_refused (void **state)
{
    (void) state;
    size_t len;
    unsigned char *good = s_text_file (&len);
    unsigned char *b = malloc (len);
    /* Truncated at every byte. */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_not_equal (s_open_status (good, cut), TY_INFER_OK);
    /* One byte more than the header says. */
    unsigned char *longer = calloc (len + 1, 1);
    memcpy (longer, good, len);
    assert_int_equal (s_open_status (longer, len + 1), TY_INFER_EPROTO);
    free (longer);
    /* Magic, version, header length, alignment, kind. */
    size_t fields[] = {0, 8, 12, 40, 24};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy (b, good, len);
        b[fields[i]] ^= 0x40;
        assert_int_equal (s_open_status (b, len), TY_INFER_EPROTO);
    }
    /* Every field of every section entry made to lie: type, dtype, offset,
     * size, ndim, dims. Each must be refused, or (an unknown type on a
     * section the model does not need, a lie in an ignored dim) open and
     * predict in bounds. */
    uint32_t nsec = good[28];
    size_t fieldoffs[] = {0, 4, 8, 16, 24, 32, 40};
    uint64_t lies[] = {1, 63, 64, 1u << 20, UINT64_MAX, UINT64_MAX - 63};
    for (uint32_t i = 0; i < nsec; i++)
        for (size_t f = 0; f < sizeof fieldoffs / sizeof fieldoffs[0]; f++)
            for (size_t l = 0; l < sizeof lies / sizeof lies[0]; l++) {
                memcpy (b, good, len);
                unsigned char *e = b + 64 + 64 * i + fieldoffs[f];
                if (fieldoffs[f] % 8 == 0 && fieldoffs[f] >= 8 && fieldoffs[f] != 24)
                    s_put64 (e, lies[l]);
                else
                    s_put32 (e, (uint32_t) lies[l]);
                char err[ERRLEN];
                ty_infer_model_t *m = NULL;
                if (ty_infer_open (s_file ("lie.tym", b, len), &m, err, sizeof err)
                    == TY_INFER_OK) {
                    float out[2];
                    assert_int_equal (ty_infer_predict_text (m, "hello \xc3\x89" "a", 8, out, 2),
                                      TY_INFER_OK);
                    ty_infer_close (&m);
                }
                else
                    assert_null (m);
            }
    /* A vocabulary whose offsets run backwards, or past the strings. */
    size_t voff = 0;
    for (int i = 0; i < 8; i++)
        voff |= (size_t) good[64 + 64 * 2 + 8 + i] << (8 * i);
    memcpy (b, good, len);
    s_put64 (b + voff + 16, 100);
    assert_int_equal (s_open_status (b, len), TY_INFER_EPROTO);
    memcpy (b, good, len);
    s_put64 (b + voff, 1000);
    assert_int_equal (s_open_status (b, len), TY_INFER_EPROTO);
    memcpy (b, good, len);
    s_put64 (b + voff, UINT64_MAX);
    assert_int_equal (s_open_status (b, len), TY_INFER_EPROTO);

    /* Not there, not a file, NULLs. */
    ty_infer_model_t *m = NULL;
    char err[ERRLEN];
    assert_int_equal (ty_infer_open ("/nonexistent/m.tym", &m, err, sizeof err), ENOENT);
    assert_int_equal (ty_infer_open (s_dir, &m, err, sizeof err), TY_INFER_EPROTO);
    assert_int_equal (ty_infer_open (NULL, &m, err, sizeof err), TY_INFER_EINVAL);
    assert_int_equal (ty_infer_open ("x", NULL, NULL, 0), TY_INFER_EINVAL);
    assert_null (m);
    ty_infer_close (NULL);
    free (b);
    free (good);
}

/* ==== FP16, INT8, pruning ================================================== */

/* Every binary16 value against its definition: (-1)^s 2^(e-15) 1.m, or
 * 2^-14 0.m for subnormals, inf and NaN for e = 31. */
static void
test_infer_f16_exact (void **state)
{
    (void) state;
    for (uint32_t h = 0; h <= 0xFFFF; h++) {
        int sign = h >> 15, e = (h >> 10) & 0x1F, mant = h & 0x3FF;
        float got = ty_infer_f16_to_f32 ((uint16_t) h);
        if (e == 0x1F) {
            if (mant)
                assert_true (isnan (got));
            else
                assert_true (isinf (got) && (got < 0) == sign);
            continue;
        }
        double want = e == 0 ? ldexp (mant, -24) : ldexp (1024 + mant, e - 25);
        if (sign)
            want = -want;
        if ((double) got != want || !signbit (got) != !signbit (want))
            fail_msg ("half %04x: got %.10g, want %.10g", (unsigned) h, got, want);
    }
}

/* Entry i's scale-section field (the builder writes "none"). */
static void
s_set_scale (unsigned char *b, size_t i, uint32_t sec)
{
    s_put32 (b + 64 + 64 * i + 28, sec);
}

/* mlp regression [2 -> 2]: INT8 W = scales x q, FP32 bias; FP16 W. */
static const int8_t s_q[4] = {127, 0, -64, 127};
static const float s_scales[2] = {0.01f, 0.02f}, s_bias[2] = {0.1f, -0.1f};
/* 1.0, -2.0, 0.5, 2^-24 (the smallest subnormal) */
static const uint16_t s_h[4] = {0x3C00, 0xC000, 0x3800, 0x0001};

static unsigned char *
s_mlp_quant_file (int dtype, size_t *len)
{
    static unsigned char arch[TY_INFER_ARCH_LEN * 8];
    int64_t a[] = {2, 0, 1, 2};
    s_arch (arch, a, 4);
    sec_t i8[] = {
        {TY_INFER_SEC_ARCH, 0, 0, {0}, arch, sizeof arch},
        {TY_INFER_SEC_SCALES, TY_INFER_DT_F32, 1, {2}, s_scales, sizeof s_scales},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_I8, 2, {2, 2}, s_q, sizeof s_q},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 1, {2}, s_bias, sizeof s_bias},
    };
    sec_t f16[] = {
        {TY_INFER_SEC_ARCH, 0, 0, {0}, arch, sizeof arch},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F16, 2, {2, 2}, s_h, sizeof s_h},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 1, {2}, s_bias, sizeof s_bias},
    };
    if (dtype != TY_INFER_DT_I8)
        return s_build (TY_INFER_MLP, f16, 3, len);
    unsigned char *b = s_build (TY_INFER_MLP, i8, 4, len);
    s_set_scale (b, 2, 1);
    return b;
}

/* textclf: words hello, world, foo (no buckets); the row map keeps rows 0
 * and 2 (world is pruned); INT8 rows (1, 0) and (0, 1); fc = identity. */
static const uint32_t s_rowmap[2] = {0, 2};
static const int8_t s_emb_q[4] = {127, 0, 0, 127};
static const float s_emb_scales[2] = {1.0f / 127, 1.0f / 127};

#define S_TQ_ROWMAP 6
#define S_TQ_SCALES 7
#define S_TQ_EMB    8

static unsigned char *
s_text_quant_file (size_t *len)
{
    static unsigned char arch[TY_INFER_ARCH_LEN * 8], tok[TY_INFER_TOK_LEN * 8], vocab[128];
    int64_t a[] = {3, 2, 2, 0};
    s_arch (arch, a, 4);
    int64_t t[] = {0, 0, 1, 0, 0, 0, 0, 1};
    for (int i = 0; i < TY_INFER_TOK_LEN; i++)
        s_put64 (tok + 8 * i, (uint64_t) t[i]);
    const char *words[] = {"hello", "world", "foo"};
    size_t vb = s_strtab (vocab, words, 3);
    sec_t s[] = {
        {TY_INFER_SEC_ARCH, 0, 0, {0}, arch, sizeof arch},
        {TY_INFER_SEC_TOKENIZER, 0, 0, {0}, tok, sizeof tok},
        {TY_INFER_SEC_VOCAB, 0, 0, {0}, vocab, vb},
        {TY_INFER_SEC_CHAR_SPACE, 0, 0, {0}, NULL, 0},
        {TY_INFER_SEC_CHAR_PUNCT, 0, 0, {0}, NULL, 0},
        {TY_INFER_SEC_CHAR_LOWER, 0, 0, {0}, NULL, 0},
        {TY_INFER_SEC_ROWMAP, 0, 0, {0}, s_rowmap, sizeof s_rowmap},
        {TY_INFER_SEC_SCALES, TY_INFER_DT_F32, 1, {2}, s_emb_scales, sizeof s_emb_scales},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_I8, 2, {2, 2}, s_emb_q, sizeof s_emb_q},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 2, {2, 2}, s_eye, sizeof s_eye},
        {TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, 1, {2}, s_zero2, sizeof s_zero2},
    };
    unsigned char *b = s_build (TY_INFER_TEXTCLF, s, 11, len);
    s_set_scale (b, S_TQ_EMB, S_TQ_SCALES);
    return b;
}

static void
test_infer_quantized_by_hand (void **state)
{
    (void) state;
    size_t len;
    const float x[2] = {1, 2};
    float out[2];
    unsigned char *b = s_mlp_quant_file (TY_INFER_DT_I8, &len);
    ty_infer_model_t *m = must_open_bytes (b, len);
    assert_int_equal (ty_infer_predict_features (m, x, 2, out, 2), TY_INFER_OK);
    /* W = [[1.27, 0], [-1.28, 2.54]]: 1.27 + 0.1; -1.28 + 5.08 - 0.1 */
    if (fabs (out[0] - 1.37) > 1e-5 || fabs (out[1] - 3.70) > 1e-5)
        fail_msg ("int8 mlp: %g %g", out[0], out[1]);
    assert_int_equal (ty_infer_weight_bytes (m), 4 + 8 + 8);
    ty_infer_close (&m);
    free (b);

    b = s_mlp_quant_file (TY_INFER_DT_F16, &len);
    m = must_open_bytes (b, len);
    assert_int_equal (ty_infer_predict_features (m, x, 2, out, 2), TY_INFER_OK);
    /* W = [[1, -2], [0.5, 2^-24]]: 1 - 4 + 0.1; 0.5 + 2^-23 - 0.1 */
    if (fabs (out[0] - -2.9) > EPS || fabs (out[1] - (0.4 + ldexp (1, -23))) > EPS)
        fail_msg ("fp16 mlp: %g %g", out[0], out[1]);
    ty_infer_close (&m);
    free (b);

    b = s_text_quant_file (&len);
    assert_int_equal (b[8], 2);   /* a row map makes it version 2 */
    m = must_open_bytes (b, len);
    assert_int_equal (ty_infer_kept_rows (m), 2);
    const char *t1 = "hello world foo";   /* world pruned: mean of (1,0), (0,1) */
    assert_int_equal (ty_infer_predict_text (m, t1, strlen (t1), out, 2), TY_INFER_OK);
    s_expect_softmax (out, 0.5, 0.5);
    /* The ids stay the trainer's: pruning shows only in the sum. */
    int64_t ids[4];
    size_t n;
    assert_int_equal (ty_infer_encode_text (m, t1, strlen (t1), ids, 4, &n), TY_INFER_OK);
    assert_true (n == 3 && ids[0] == 0 && ids[1] == 1 && ids[2] == 2);
    assert_int_equal (ty_infer_predict_text (m, "world hello", 11, out, 2), TY_INFER_OK);
    s_expect_softmax (out, 1, 0);
    assert_int_equal (ty_infer_predict_text (m, "foo foo world", 13, out, 2), TY_INFER_OK);
    s_expect_softmax (out, 0, 1);
    assert_int_equal (ty_infer_predict_text (m, "world", 5, out, 2), TY_INFER_OK);
    s_expect_softmax (out, 0, 0);   /* every id pruned: an empty bag */
    /* A long text: the id list leaves its stack buffer for the heap. */
    size_t big = 6 * 2000;
    char *longtext = malloc (big + 1);
    assert_non_null (longtext);
    for (size_t i = 0; i < 2000; i++)
        memcpy (longtext + 6 * i, i % 2 ? "hello " : "world ", 6);
    assert_int_equal (ty_infer_predict_text (m, longtext, big, out, 2), TY_INFER_OK);
    s_expect_softmax (out, 1, 0);
    free (longtext);
    ty_infer_close (&m);
    free (b);
}

static size_t
s_entry_at (size_t i)
{
    return 64 + 64 * i;   /* the builder puts the table at 64 */
}

static uint64_t
s_get64 (const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t) p[i] << (8 * i);
    return v;
}

static void
test_infer_quantized_corrupt_refused (void **state)
{
    (void) state;
    size_t len;
    unsigned char *good = s_text_quant_file (&len);
    unsigned char *b = malloc (len);
    assert_non_null (b);
    size_t emb = s_entry_at (S_TQ_EMB), sc = s_entry_at (S_TQ_SCALES);
    size_t rm = s_entry_at (S_TQ_ROWMAP);
    size_t rm_off = (size_t) s_get64 (good + rm + 8), sc_off = (size_t) s_get64 (good + sc + 8);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_not_equal (s_open_status (good, cut), TY_INFER_OK);
#define S_BAD_EDIT(edit)                                                    \
    do {                                                                    \
        memcpy (b, good, len);                                              \
        edit;                                                               \
        assert_int_equal (s_open_status (b, len), TY_INFER_EPROTO);         \
    } while (0)
    S_BAD_EDIT (s_put32 (b + emb + 28, 99));              /* no such section */
    S_BAD_EDIT (s_put32 (b + emb + 28, 0));               /* ARCH, not SCALES */
    S_BAD_EDIT (s_put32 (b + emb + 28, UINT32_MAX));      /* INT8 without scales */
    S_BAD_EDIT (s_put32 (b + emb + 28, S_TQ_ROWMAP));     /* the wrong section type */
    S_BAD_EDIT (s_put64 (b + sc + 32, 3));                /* 3 scales for 2 rows */
    S_BAD_EDIT (s_put64 (b + sc + 16, 4));                /* 1 scale's bytes */
    S_BAD_EDIT (s_put32 (b + sc + 4, TY_INFER_DT_F16));   /* scales not FP32 */
    S_BAD_EDIT (s_put32 (b + sc_off, 0x7FC00000u));       /* a NaN scale */
    S_BAD_EDIT (s_put32 (b + sc_off + 4, 0xBF800000u));   /* a negative scale */
    S_BAD_EDIT (s_put64 (b + emb + 16, 3));               /* truncated tensor */
    S_BAD_EDIT (s_put32 (b + emb + 4, TY_INFER_DT_F16));  /* 4 bytes: not 4 halves */
    S_BAD_EDIT (s_put32 (b + rm_off, 2));                 /* row map repeats */
    S_BAD_EDIT ((s_put32 (b + rm_off, 2), s_put32 (b + rm_off + 4, 0)));   /* out of order */
    S_BAD_EDIT (s_put32 (b + rm_off + 4, 3));             /* past the 3 rows */
    S_BAD_EDIT (s_put64 (b + rm + 16, 4));                /* 1 kept row, 2 in the tensor */
    S_BAD_EDIT (s_put64 (b + rm + 16, 6));                /* not whole uint32s */
    S_BAD_EDIT (s_put32 (b + 8, 1));                      /* a row map in version 1 */
    S_BAD_EDIT (s_put32 (b + s_entry_at (9) + 28, S_TQ_SCALES));   /* FP32 with scales */
    S_BAD_EDIT (s_put32 (b + s_entry_at (10) + 4, TY_INFER_DT_I8)); /* an INT8 bias */
#undef S_BAD_EDIT
    /* Every field of every entry (scale index included) made to lie:
     * refused, or opened and predicting in bounds. */
    uint32_t nsec = good[28];
    size_t fieldoffs[] = {0, 4, 8, 16, 24, 28, 32, 40};
    uint64_t lies[] = {0, 1, 2, 7, 63, 64, 1u << 20, UINT64_MAX};
    for (uint32_t i = 0; i < nsec; i++)
        for (size_t f = 0; f < sizeof fieldoffs / sizeof fieldoffs[0]; f++)
            for (size_t l = 0; l < sizeof lies / sizeof lies[0]; l++) {
                memcpy (b, good, len);
                unsigned char *e = b + s_entry_at (i) + fieldoffs[f];
                if (fieldoffs[f] % 8 == 0 && fieldoffs[f] >= 8 && fieldoffs[f] != 24)
                    s_put64 (e, lies[l]);
                else
                    s_put32 (e, (uint32_t) lies[l]);
                char err[ERRLEN];
                ty_infer_model_t *m = NULL;
                if (ty_infer_open (s_file ("lie.tym", b, len), &m, err, sizeof err)
                    == TY_INFER_OK) {
                    float out[2];
                    assert_int_equal (ty_infer_predict_text (m, "hello foo world", 15, out, 2),
                                      TY_INFER_OK);
                    ty_infer_close (&m);
                }
                else
                    assert_null (m);
            }
    free (b);
    free (good);
    /* The mlp files too, truncated anywhere. */
    for (int dt = TY_INFER_DT_F16; dt <= TY_INFER_DT_I8; dt++) {
        good = s_mlp_quant_file (dt, &len);
        for (size_t cut = 0; cut < len; cut++)
            assert_int_not_equal (s_open_status (good, cut), TY_INFER_OK);
        free (good);
    }
}

static void
test_infer_topk_and_strerror (void **state)
{
    (void) state;
    const float v[6] = {0.1f, 0.5f, 0.2f, 0.5f, 0.9f, 0.0f};
    size_t idx[6];
    assert_int_equal (ty_infer_topk (v, 6, 3, idx), 3);
    assert_true (idx[0] == 4 && idx[1] == 1 && idx[2] == 3);   /* ties: lower index first */
    assert_int_equal (ty_infer_topk (v, 6, 0, idx), 0);
    assert_int_equal (ty_infer_topk (v, 6, 10, idx), 6);
    assert_true (idx[5] == 5 && idx[4] == 0);
    assert_string_equal (ty_infer_strerror (TY_INFER_EPROTO), "not a valid model file");
    assert_string_equal (ty_infer_strerror (ENOENT), strerror (ENOENT));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_infer_mlp_by_hand),
        cmocka_unit_test (test_infer_textclf_by_hand),
        cmocka_unit_test (test_infer_cnn_and_ncf_by_hand),
        cmocka_unit_test (test_infer_corrupt_files_refused),
        cmocka_unit_test (test_infer_topk_and_strerror),
        cmocka_unit_test (test_infer_f16_exact),
        cmocka_unit_test (test_infer_quantized_by_hand),
        cmocka_unit_test (test_infer_quantized_corrupt_refused),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}

/*  test_portable: libtorch models -> model.tym (ty_portable) -> the C
 *  runtime (libtrainyard-infer), for each model kind:
 *    - the runtime's outputs equal ty_torch_predict's within 1e-5 on the
 *      same inputs (the bar for FP32);
 *    - the runtime's tokenizer gives ty_vocab_encode's ids for every
 *      tokenizer option, on texts with Unicode case, punctuation, invalid
 *      UTF-8 and over-long tokens;
 *    - a file truncated at any of many offsets, with a wrong magic or with
 *      lying sizes/offsets/counts is refused, never read out of bounds (the
 *      suite runs under ASan in the sanitizer build), and random byte flips
 *      give an error or a model that predicts without crashing;
 *    - the runtime's status codes equal common/ty_error.h's.
 *  Models are small and trained for a few steps only: what matters is that
 *  the weights are not their initial zeros. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ty_batch.h"
#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_infer.h"
#include "ty_modeldir.h"
#include "ty_negsample.h"
#include "ty_portable.h"
#include "ty_portable_fixture.h"
#include "ty_tokenize.h"
#include "ty_torch.h"

#define ERRLEN   256
#define TOL      1e-5
#define MAXW     16          /* widest output of the test models */

/* In /dev/shm when there is one (ty_pfix_dir_new). */
static int
s_setup (void **state)
{
    (void) state;
    return ty_pfix_dir_new ("ty_portable");
}

static void
must_write (ty_torch_model_t *model, const ty_portable_meta_t *meta, const char *path)
{
    char err[ERRLEN];
    int rc = ty_portable_write (model, meta, path, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("ty_portable_write: %s", err);
}

static void
s_assert_close (const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf (a[i] - b[i]) <= TOL))
            fail_msg ("%s: output %zu: libtorch %.9g, runtime %.9g", what, i, a[i], b[i]);
}

/* ==== textclf ================================================================ */

static const char *s_train_texts[] = {
    "The quick brown Fox jumps over the lazy dog",
    "Ünïcödé ÉCOLE Straße ΑΒΓ δέλτα: naïve café!",
    "buy cheap pills now!!! click here, limited offer",
    "meeting tomorrow at 10am; agenda attached (draft)",
    "Привет МИР, как дела? — хорошо…",
    "spam spam spam eggs and spam",
    "report_2024-final.PDF quarterly numbers",
    "the dog sleeps; the fox runs",
};
#define NTRAIN (sizeof s_train_texts / sizeof s_train_texts[0])

static const char *s_test_texts[] = {
    "the quick brown fox",
    "ÉCOLE straße café naïve",
    "CHEAP pills!!! now?",
    "",
    "   \t\n  ",
    "unknownword anotherunknown",
    "Привет мир",
    "a\xff\xfe broken \xc3 utf8 \xe2\x82",
    "emoji 😀 and CJK 漢字 and full\xe3\x80\x80width space",
    "punct... «quoted» ¿qué? ¡sí!",
    "the",
};
#define NTEST (sizeof s_test_texts / sizeof s_test_texts[0])

static ty_vocab_t *
s_vocab (const ty_tok_opts_t *o)
{
    ty_vocab_t *v = ty_vocab_new (o);
    assert_non_null (v);
    for (size_t i = 0; i < NTRAIN; i++)
        assert_int_equal (ty_vocab_add_text (v, s_train_texts[i], strlen (s_train_texts[i])),
                          TY_OK);
    assert_int_equal (ty_vocab_finalize (v), TY_OK);
    return v;
}

/* Trains a few SGD steps on the train texts, labels i % nlabels. */
static ty_torch_model_t *
s_textclf (const ty_vocab_t *v, int64_t nlabels, bool multilabel, int64_t dim)
{
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    p.textclf.nrows = ty_vocab_nrows (v);
    p.textclf.dim = dim;
    p.textclf.nlabels = nlabels;
    p.textclf.multilabel = multilabel;
    p.lr = 0.5;
    ty_torch_model_t *m = ty_pfix_new (&p);
    ty_idbuf_t ids;
    ty_idbuf_init (&ids);
    int64_t offs[NTRAIN], labels[NTRAIN];
    float targets[NTRAIN * MAXW];
    memset (targets, 0, sizeof targets);
    for (size_t i = 0; i < NTRAIN; i++) {
        offs[i] = (int64_t) ids.n;
        assert_int_equal (ty_vocab_encode (v, s_train_texts[i], strlen (s_train_texts[i]), &ids),
                          TY_OK);
        labels[i] = (int64_t) i % nlabels;
        targets[i * (size_t) nlabels + (size_t) labels[i]] = 1;
        targets[i * (size_t) nlabels + (size_t) ((i + 1) % (size_t) nlabels)] = 1;
    }
    ty_torch_batch_t b = {0};
    b.n = NTRAIN;
    b.ids = ids.ids;
    b.nids = (int64_t) ids.n;
    b.offsets = offs;
    b.labels = multilabel ? NULL : labels;
    b.targets = multilabel ? targets : NULL;
    for (int step = 0; step < 5; step++)
        assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_OK);
    ty_idbuf_free (&ids);
    return m;
}

/* ids of every test text: the runtime's = the trainer's. */
static void
s_check_ids (const ty_vocab_t *v, const ty_infer_model_t *im)
{
    int64_t got[4096];
    for (size_t i = 0; i < NTEST; i++) {
        const char *t = s_test_texts[i];
        ty_idbuf_t want;
        ty_idbuf_init (&want);
        assert_int_equal (ty_vocab_encode (v, t, strlen (t), &want), TY_OK);
        size_t n = 0;
        assert_int_equal (ty_infer_encode_text (im, t, strlen (t), got, 4096, &n), TY_INFER_OK);
        if (n != want.n)
            fail_msg ("text %zu '%s': %zu ids, trainer %zu", i, t, n, want.n);
        for (size_t k = 0; k < n; k++)
            if (got[k] != want.ids[k])
                fail_msg ("text %zu '%s': id %zu is %lld, trainer %lld", i, t, k,
                          (long long) got[k], (long long) want.ids[k]);
        ty_idbuf_free (&want);
    }
}

/* Probabilities of every test text: runtime vs libtorch. */
static void
s_check_text_outputs (const ty_vocab_t *v, ty_torch_model_t *m, const ty_infer_model_t *im)
{
    size_t w = (size_t) ty_torch_output_width (m);
    assert_int_equal (ty_infer_output_width (im), w);
    for (size_t i = 0; i < NTEST; i++) {
        const char *t = s_test_texts[i];
        ty_idbuf_t ids;
        ty_idbuf_init (&ids);
        assert_int_equal (ty_vocab_encode (v, t, strlen (t), &ids), TY_OK);
        int64_t off = 0;
        ty_torch_batch_t b = {0};
        b.n = 1;
        b.ids = ids.ids;
        b.nids = (int64_t) ids.n;
        b.offsets = &off;
        float want[MAXW], got[MAXW];
        assert_int_equal (ty_torch_predict (m, &b, want, MAXW), TY_OK);
        assert_int_equal (ty_infer_predict_text (im, t, strlen (t), got, MAXW), TY_INFER_OK);
        s_assert_close (want, got, w, t);
        ty_idbuf_free (&ids);
    }
}

static void
test_portable_textclf_matches_libtorch (void **state)
{
    (void) state;
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.word_ngrams = 2;
    o.minn = 2;
    o.maxn = 4;
    o.bucket = 5000;
    ty_vocab_t *v = s_vocab (&o);
    const char *labels[] = {"ham", "spam", "work"};
    ty_torch_model_t *m = s_textclf (v, 3, false, 16);
    char path[512];
    ty_pfix_path (path, sizeof path, "textclf.tym");
    ty_portable_meta_t meta = {v, labels, 3};
    must_write (m, &meta, path);
    assert_int_not_equal (access (path, F_OK), -1);
    char tmp[600];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal (access (tmp, F_OK), -1);   /* renamed, no temp left */

    ty_infer_model_t *im = ty_pfix_open (path);
    assert_int_equal (ty_infer_kind (im), TY_INFER_TEXTCLF);
    assert_int_equal (ty_infer_nlabels (im), 3);
    assert_string_equal (ty_infer_label (im, 1), "spam");
    assert_null (ty_infer_label (im, 3));
    assert_int_equal (ty_infer_output_type (im), 0);
    s_check_ids (v, im);
    s_check_text_outputs (v, m, im);

    /* Probabilities sum to 1 and top-k orders them. */
    float out[MAXW];
    const char *t = s_test_texts[2];
    assert_int_equal (ty_infer_predict_text (im, t, strlen (t), out, MAXW), TY_INFER_OK);
    assert_true (fabsf (out[0] + out[1] + out[2] - 1.0f) < 1e-5);
    size_t idx[3];
    assert_int_equal (ty_infer_topk (out, 3, 2, idx), 2);
    assert_true (out[idx[0]] >= out[idx[1]]);
    for (size_t k = 0; k < 3; k++)
        assert_true (out[idx[0]] >= out[k]);
    /* Misuse is an error, not a crash. */
    assert_int_equal (ty_infer_predict_text (im, t, strlen (t), out, 2), TY_INFER_EFULL);
    assert_int_equal (ty_infer_predict_features (im, out, 3, out, MAXW), TY_INFER_EINVAL);
    assert_int_equal (ty_infer_predict_text (im, NULL, 5, out, MAXW), TY_INFER_EINVAL);
    ty_infer_close (&im);
    assert_null (im);
    ty_infer_close (&im);   /* idempotent */
    ty_torch_destroy (&m);
    ty_vocab_destroy (&v);
}

static void
test_portable_textclf_multilabel (void **state)
{
    (void) state;
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.lower = true;
    o.punct = TY_TOK_PUNCT_SPLIT;
    o.bucket = 300;
    o.word_ngrams = 3;
    ty_vocab_t *v = s_vocab (&o);
    ty_torch_model_t *m = s_textclf (v, 4, true, 8);
    char path[512];
    ty_pfix_path (path, sizeof path, "multi.tym");
    ty_portable_meta_t meta = {v, NULL, 0};
    must_write (m, &meta, path);
    ty_infer_model_t *im = ty_pfix_open (path);
    assert_int_equal (ty_infer_output_type (im), 1);
    assert_int_equal (ty_infer_nlabels (im), 0);
    s_check_ids (v, im);
    s_check_text_outputs (v, m, im);
    ty_infer_close (&im);
    ty_torch_destroy (&m);
    ty_vocab_destroy (&v);
}

/* Every tokenizer option the trainer has: ids equal on every test text. */
static void
test_portable_tokenizer_ids_all_options (void **state)
{
    (void) state;
    int combos = 0;
    for (int lower = 0; lower <= 1; lower++)
        for (int punct = 0; punct <= 2; punct++)
            for (int ng = 1; ng <= 3; ng += 2)
                for (int maxn = 0; maxn <= 5; maxn += 5)
                    for (int eos = 0; eos <= 1; eos++) {
                        ty_tok_opts_t o;
                        ty_tok_opts_init (&o);
                        o.lower = lower;
                        o.punct = (ty_tok_punct_t) punct;
                        o.word_ngrams = ng;
                        o.minn = maxn ? 1 : 0;
                        o.maxn = maxn;
                        o.bucket = 1000;
                        o.eos = eos;
                        ty_vocab_t *v = s_vocab (&o);
                        ty_torch_model_t *m = s_textclf (v, 2, false, 2);
                        char path[512];
                        ty_pfix_path (path, sizeof path, "tok.tym");
                        ty_portable_meta_t meta = {v, NULL, 0};
                        must_write (m, &meta, path);
                        ty_infer_model_t *im = ty_pfix_open (path);
                        s_check_ids (v, im);
                        ty_infer_close (&im);
                        ty_torch_destroy (&m);
                        ty_vocab_destroy (&v);
                        combos++;
                    }
    assert_int_equal (combos, 48);

    /* An over-long token is cut at TY_TOK_MAX_BYTES, as the trainer does. */
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.maxn = 3;
    o.minn = 2;
    o.bucket = 100;
    ty_vocab_t *v = s_vocab (&o);
    ty_torch_model_t *m = s_textclf (v, 2, false, 2);
    char path[512];
    ty_pfix_path (path, sizeof path, "long.tym");
    ty_portable_meta_t meta = {v, NULL, 0};
    must_write (m, &meta, path);
    ty_infer_model_t *im = ty_pfix_open (path);
    size_t len = 3000;
    char *big = malloc (len + 1);
    assert_non_null (big);
    for (size_t i = 0; i < len; i += 2)
        memcpy (big + i, "\xc3\xa9", 2);   /* é: the cut must fall between characters */
    big[len] = '\0';
    ty_idbuf_t want;
    ty_idbuf_init (&want);
    assert_int_equal (ty_vocab_encode (v, big, len, &want), TY_OK);
    int64_t *got = malloc (want.n * sizeof *got);
    size_t n = 0;
    assert_int_equal (ty_infer_encode_text (im, big, len, got, 1, &n), TY_INFER_EFULL);
    assert_int_equal (n, want.n);
    assert_int_equal (ty_infer_encode_text (im, big, len, got, want.n, &n), TY_INFER_OK);
    assert_memory_equal (got, want.ids, n * sizeof *got);
    free (got);
    free (big);
    ty_idbuf_free (&want);
    ty_infer_close (&im);
    ty_torch_destroy (&m);
    ty_vocab_destroy (&v);
}

/* ==== mlp, cnn, ncf ========================================================= */

static void
s_check_features (ty_torch_model_t *m, const char *path, size_t in, size_t nsamples,
                  uint64_t seed)
{
    ty_infer_model_t *im = ty_pfix_open (path);
    assert_int_equal (ty_infer_input_width (im), in);
    size_t w = (size_t) ty_torch_output_width (m);
    uint64_t rng = seed;
    float *x = malloc (in * sizeof *x);
    for (size_t s = 0; s < nsamples; s++) {
        for (size_t i = 0; i < in; i++)
            x[i] = 4 * ty_pfix_unif (&rng) - 2;
        ty_torch_batch_t b = {0};
        b.n = 1;
        b.x = x;
        float want[MAXW], got[MAXW];
        assert_int_equal (ty_torch_predict (m, &b, want, MAXW), TY_OK);
        assert_int_equal (ty_infer_predict_features (im, x, in, got, MAXW), TY_INFER_OK);
        s_assert_close (want, got, w, path);
    }
    assert_int_equal (ty_infer_predict_features (im, x, in - 1, x, MAXW), TY_INFER_EINVAL);
    x[0] = NAN;
    float out[MAXW];
    assert_int_equal (ty_infer_predict_features (im, x, in, out, MAXW), TY_INFER_EINVAL);
    free (x);
    ty_infer_close (&im);
}

static void
test_portable_mlp_matches_libtorch (void **state)
{
    (void) state;
    for (int regression = 0; regression <= 1; regression++) {
        /* 12 inputs; dropout, off in eval mode: the runtime has none. */
        ty_torch_model_t *m = ty_pfix_mlp (regression);
        char path[512];
        ty_pfix_path (path, sizeof path, "mlp.tym");
        const char *labels[] = {"a", "b", "c", "d"};
        ty_portable_meta_t meta = {NULL, regression ? NULL : labels, regression ? 0 : 4};
        must_write (m, &meta, path);
        s_check_features (m, path, 12, 50, 11);
        ty_infer_model_t *im = ty_pfix_open (path);
        assert_int_equal (ty_infer_output_type (im), regression ? -1 : 0);
        ty_infer_close (&im);
        ty_torch_destroy (&m);
    }
}

static void
test_portable_cnn_matches_libtorch (void **state)
{
    (void) state;
    for (int separable = 0; separable <= 1; separable++) {
        /* 11 x 9 x 3 (odd: pooling floors), depth 3, no dropout. */
        ty_torch_model_t *m = ty_pfix_cnn (separable, 3, 0);
        size_t in = 11 * 9 * 3;
        char path[512];
        ty_pfix_path (path, sizeof path, "cnn.tym");
        must_write (m, NULL, path);
        s_check_features (m, path, in, 10, 5);

        /* Bytes (HWC) in the runtime = the same image as CHW /255 floats in
         * libtorch, the way ty_batch feeds training. */
        ty_infer_model_t *im = ty_pfix_open (path);
        uint64_t rng = 3;
        uint8_t px[11 * 9 * 3];
        float x[11 * 9 * 3];
        for (size_t i = 0; i < in; i++)
            px[i] = (uint8_t) (ty_negsample_rand (&rng) & 0xFF);
        for (size_t y = 0; y < 11; y++)
            for (size_t xx = 0; xx < 9; xx++)
                for (size_t c = 0; c < 3; c++)
                    x[c * 99 + y * 9 + xx] = px[(y * 9 + xx) * 3 + c] / 255.0f;
        ty_torch_batch_t b = {0};
        b.n = 1;
        b.x = x;
        float want[MAXW], got[MAXW];
        assert_int_equal (ty_torch_predict (m, &b, want, MAXW), TY_OK);
        assert_int_equal (ty_infer_predict_image (im, px, in, got, MAXW), TY_INFER_OK);
        s_assert_close (want, got, 3, "cnn image");
        size_t h, w, c;
        ty_infer_image_shape (im, &h, &w, &c);
        assert_true (h == 11 && w == 9 && c == 3);
        assert_int_equal (ty_infer_predict_image (im, px, in - 1, got, MAXW), TY_INFER_EINVAL);
        ty_infer_close (&im);
        ty_torch_destroy (&m);
    }
}

static void
test_portable_ncf_matches_libtorch (void **state)
{
    (void) state;
    static const ty_pfix_ncf_t shape = {30, 40, 6, 5, {8, 4}, 32, 3};
    ty_pfix_pairs_t pr;
    ty_torch_model_t *m = ty_pfix_ncf (&shape, &pr);
    char path[512];
    ty_pfix_path (path, sizeof path, "ncf.tym");
    must_write (m, NULL, path);
    ty_infer_model_t *im = ty_pfix_open (path);
    int64_t nu, ni;
    ty_infer_pair_range (im, &nu, &ni);
    assert_true (nu == 30 && ni == 40);
    for (int64_t user = 0; user < 30; user += 3)
        for (int64_t item = 0; item < 40; item += 7) {
            ty_torch_batch_t q = {0};
            q.n = 1;
            q.users = &user;
            q.items = &item;
            float want, got;
            assert_int_equal (ty_torch_predict (m, &q, &want, 1), TY_OK);
            assert_int_equal (ty_infer_predict_pair (im, user, item, &got), TY_INFER_OK);
            s_assert_close (&want, &got, 1, "ncf");
        }
    float s;
    assert_int_equal (ty_infer_predict_pair (im, 30, 0, &s), TY_INFER_EINVAL);
    assert_int_equal (ty_infer_predict_pair (im, 0, -1, &s), TY_INFER_EINVAL);
    ty_infer_close (&im);
    ty_torch_destroy (&m);
}

/* ==== the shim's export ==================================================== */

typedef struct {
    int64_t scalars;
    int calls, stop_at;
    float first;
} s_count_t;

static int
s_count_fn (void *arg, const char *name, int ndim, const int64_t *shape, const float *data)
{
    s_count_t *c = arg;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    if (c->calls == 0) {
        assert_string_equal (name, "layers.0.weight");
        assert_int_equal (ndim, 2);
        assert_true (shape[0] == 5 && shape[1] == 3);   /* [out, in] */
        c->first = data[0];
    }
    c->scalars += n;
    if (++c->calls == c->stop_at)
        return TY_EFULL;
    return TY_OK;
}

static void
test_portable_export_tensors (void **state)
{
    (void) state;
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_MLP);
    p.mlp.input_dim = 3;
    p.mlp.hidden[0] = 5;
    ty_torch_model_t *m = ty_pfix_new (&p);
    uint64_t before = ty_torch_weights_digest (m);
    s_count_t c = {0, 0, 0, 0};
    assert_int_equal (ty_torch_export_tensors (m, s_count_fn, &c), TY_OK);
    assert_int_equal (c.calls, 4);
    assert_int_equal (c.scalars, ty_torch_param_count (m));
    assert_true (c.first != 0);
    assert_true (ty_torch_weights_digest (m) == before);   /* read only */
    /* The callback's status stops the export and comes back. */
    s_count_t stop = {0, 0, 2, 0};
    assert_int_equal (ty_torch_export_tensors (m, s_count_fn, &stop), TY_EFULL);
    assert_int_equal (stop.calls, 2);
    assert_int_equal (ty_torch_export_tensors (m, NULL, NULL), TY_EINVAL);
    assert_int_equal (ty_torch_export_tensors (NULL, s_count_fn, &c), TY_EINVAL);
    ty_torch_destroy (&m);
}

/* ==== a model version directory =========================================== */

/* The converter's own path: a text dataset in LMDB, the featurizer fitted
 * and saved as the train job does (feat.json + vocab.txt), a model saved
 * as model.pt; ty_portable_convert_dir writes model.tym beside them and the
 * runtime predicts what libtorch predicts on the encoded val split. */
static void
test_portable_convert_dir (void **state)
{
    (void) state;
    /* 60 texts of 5 words and a noise word, 45 train; char 3- to 5-grams
     * in 2000 buckets. */
    static const ty_pfix_version_opts_t vo = {60, 45, 5, true, 3, 5, 2000};
    ty_pfix_version_t ver;
    ty_pfix_version (&vo, &ver);
    ty_torch_model_t *m = ver.m;
    ty_batch_feat_t *feat = ver.feat;
    ty_batch_set_t *val = ver.val;
    ty_dataset_t *ds = ver.ds;
    const char *dir = ver.dir;
    char err[ERRLEN] = "", path[600];
    ty_torch_batch_t b;
    if (ty_portable_convert_dir (dir, err, sizeof err) != TY_OK)
        fail_msg ("convert: %s", err);
    snprintf (path, sizeof path, "%s/%s", dir, TY_PORTABLE_FILE);
    ty_infer_model_t *im = ty_pfix_open (path);
    assert_int_equal (ty_infer_nlabels (im), 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal (ty_infer_label (im, i), ty_batch_feat_label (feat, (int64_t) i));

    /* The val texts: libtorch on the featurizer's ids, the runtime on the
     * raw text read back from the dataset. */
    size_t nval = ty_batch_set_count (val);
    assert_true (nval == 15);
    for (size_t i = 0; i < nval; i++) {
        ty_dataset_view_t v;
        Ty__Sample *smp = NULL;
        assert_int_equal (ty_dataset_get (ds, TY_SPLIT_VAL, i, &v), TY_OK);
        assert_int_equal (ty_dataset_view_unpack (&v, &smp), TY_OK);
        uint64_t one = i;
        assert_int_equal (ty_batch_set_gather (val, &one, 1, NULL, &b), TY_OK);
        float want[MAXW], got[MAXW];
        assert_int_equal (ty_torch_predict (m, &b, want, MAXW), TY_OK);
        assert_int_equal (ty_infer_predict_text (im, smp->text, strlen (smp->text), got, MAXW),
                          TY_INFER_OK);
        s_assert_close (want, got, 3, smp->text);
        ty__sample__free_unpacked (smp, NULL);
    }
    ty_infer_close (&im);

    /* The same directory to an INT8 file of another name: written in
     * place of nothing else (no temp file left), close to the FP32 one. */
    char qpath[600];
    snprintf (qpath, sizeof qpath, "%s/model-int8.tym", dir);
    ty_portable_opts_t qo = {TY_PORTABLE_INT8, 0, NULL, 0};
    if (ty_portable_convert_dir_opts (dir, &qo, qpath, err, sizeof err) != TY_OK)
        fail_msg ("convert int8: %s", err);
    ty_portable_opts_t bad = {(ty_portable_dtype_t) 9, 0, NULL, 0};
    assert_int_equal (ty_portable_convert_dir_opts (dir, &bad, qpath, err, sizeof err), TY_EINVAL);
    strcat (qpath, ".tmp");
    assert_int_not_equal (access (qpath, F_OK), 0);
    qpath[strlen (qpath) - 4] = '\0';
    im = ty_pfix_open (path);
    ty_infer_model_t *qm = ty_pfix_open (qpath);
    assert_true (ty_infer_weight_bytes (qm) < ty_infer_weight_bytes (im) / 2);
    const char *probe = "alpha beta noise gamma";
    float pf[MAXW], pq[MAXW];
    assert_int_equal (ty_infer_predict_text (im, probe, strlen (probe), pf, MAXW), TY_INFER_OK);
    assert_int_equal (ty_infer_predict_text (qm, probe, strlen (probe), pq, MAXW), TY_INFER_OK);
    for (int c = 0; c < 3; c++)
        assert_true (fabsf (pf[c] - pq[c]) < 0.05f);
    ty_infer_close (&qm);
    ty_infer_close (&im);

    /* No model.pt: an error, and no model.tym written over. */
    snprintf (path, sizeof path, "%s/%s", dir, TY_MODELDIR_WEIGHTS);
    assert_int_equal (unlink (path), 0);
    assert_int_not_equal (ty_portable_convert_dir (dir, err, sizeof err), TY_OK);
    assert_true (err[0] != '\0');
    ty_pfix_version_free (&ver);
}

/* ==== corrupt files ========================================================== */

static unsigned char *
s_read (const char *path, size_t *len)
{
    FILE *f = fopen (path, "rb");
    assert_non_null (f);
    fseek (f, 0, SEEK_END);
    long n = ftell (f);
    fseek (f, 0, SEEK_SET);
    unsigned char *buf = malloc ((size_t) n);
    assert_non_null (buf);
    assert_int_equal (fread (buf, 1, (size_t) n, f), (size_t) n);
    fclose (f);
    *len = (size_t) n;
    return buf;
}

static void
s_write (const char *path, const unsigned char *buf, size_t len)
{
    FILE *f = fopen (path, "wb");
    assert_non_null (f);
    assert_int_equal (fwrite (buf, 1, len, f), len);
    fclose (f);
}

/* Opens buf[0..len) as a file: the status; a model that opens is used. */
static int
s_try (const unsigned char *buf, size_t len)
{
    char path[512], err[ERRLEN];
    ty_pfix_path (path, sizeof path, "bad.tym");
    s_write (path, buf, len);
    ty_infer_model_t *m = NULL;
    err[0] = '\0';
    int rc = ty_infer_open (path, &m, err, sizeof err);
    if (rc != TY_INFER_OK) {
        assert_null (m);
        assert_true (err[0] != '\0');   /* every refusal says why */
        return rc;
    }
    /* It opened: predicting must stay in bounds whatever it gives. */
    float out[4096];
    size_t w = ty_infer_output_width (m);
    if (w <= 4096) {
        if (ty_infer_kind (m) == TY_INFER_TEXTCLF)
            (void) ty_infer_predict_text (m, "the quick Fox", 13, out, 4096);
        else if (ty_infer_kind (m) == TY_INFER_NCF)
            (void) ty_infer_predict_pair (m, 0, 0, out);
    }
    ty_infer_close (&m);
    return rc;
}

static uint64_t
s_rd64 (const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void
s_wr64 (unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

/* The byte offset of the first section-table entry of type `type`. */
static size_t
s_entry (const unsigned char *buf, uint32_t type, int nth)
{
    uint32_t n = buf[28] | buf[29] << 8 | buf[30] << 16 | (uint32_t) buf[31] << 24;
    size_t table = (size_t) s_rd64 (buf + 32);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = buf + table + i * TY_INFER_ENTRY_LEN;
        uint32_t t = e[0] | e[1] << 8 | e[2] << 16 | (uint32_t) e[3] << 24;
        if (t == type && nth-- == 0)
            return table + i * TY_INFER_ENTRY_LEN;
    }
    fail_msg ("no section of type %u", type);
    return 0;
}

static void
test_portable_corrupt_files_refused (void **state)
{
    (void) state;
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.word_ngrams = 2;
    o.bucket = 200;
    o.lower = true;
    o.punct = TY_TOK_PUNCT_TOKEN;
    ty_vocab_t *v = s_vocab (&o);
    ty_torch_model_t *m = s_textclf (v, 3, false, 4);
    const char *labels[] = {"x", "y", "z"};
    ty_portable_meta_t meta = {v, labels, 3};
    char path[512];
    ty_pfix_path (path, sizeof path, "good.tym");
    must_write (m, &meta, path);
    size_t len;
    unsigned char *good = s_read (path, &len);
    unsigned char *buf = malloc (len);
    assert_int_equal (s_try (good, len), TY_INFER_OK);

    /* Truncated anywhere: every byte of the header and table, then a
     * stride through the sections, and one byte short. */
    size_t table_end = (size_t) s_rd64 (good + 32) + 64 * (size_t) good[28];
    int refused = 0;
    for (size_t cut = 0; cut < len; cut += cut < table_end + 64 ? 1 : len / 97 + 1) {
        assert_int_not_equal (s_try (good, cut), TY_INFER_OK);
        refused++;
    }
    assert_int_not_equal (s_try (good, len - 1), TY_INFER_OK);
    assert_true (refused > 100);

    /* Wrong magic, a version from the future. */
    memcpy (buf, good, len);
    buf[0] = 'X';
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    memcpy (buf, good, len);
    buf[8] = TY_INFER_FORMAT_VERSION + 1;
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);

    /* A lying tensor: bytes, a dimension, an offset past the end, a
     * misaligned offset, an unsupported dtype. */
    size_t emb = s_entry (good, TY_INFER_SEC_TENSOR, 0);
    size_t fc = s_entry (good, TY_INFER_SEC_TENSOR, 1);
    memcpy (buf, good, len);
    s_wr64 (buf + emb + 16, s_rd64 (good + emb + 16) + 4);
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    memcpy (buf, good, len);
    s_wr64 (buf + emb + 32, s_rd64 (good + emb + 32) * 1000);   /* rows */
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    memcpy (buf, good, len);
    s_wr64 (buf + fc + 8, len);
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    memcpy (buf, good, len);
    s_wr64 (buf + fc + 8, s_rd64 (good + fc + 8) + 4);
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    memcpy (buf, good, len);
    s_wr64 (buf + fc + 8, UINT64_MAX - 63);   /* offset + bytes would wrap */
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    memcpy (buf, good, len);
    buf[fc + 4] = TY_INFER_DT_I8;
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);

    /* A lying architecture: more embedding rows than the vocabulary and
     * bucket give (the tensor check or the vocabulary check refuses it). */
    size_t arch = (size_t) s_rd64 (good + s_entry (good, TY_INFER_SEC_ARCH, 0) + 8);
    memcpy (buf, good, len);
    s_wr64 (buf + arch, s_rd64 (good + arch) + 1);
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    memcpy (buf, good, len);
    s_wr64 (buf + arch + 16, 1);   /* nlabels 1: single-label needs 2 */
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    /* A lying bucket: ids would pass the embedding's end. */
    size_t tok = (size_t) s_rd64 (good + s_entry (good, TY_INFER_SEC_TOKENIZER, 0) + 8);
    memcpy (buf, good, len);
    s_wr64 (buf + tok + 5 * 8, s_rd64 (good + tok + 5 * 8) + 1);
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);

    /* A lying vocabulary: count, an offset past the strings. */
    size_t voc = (size_t) s_rd64 (good + s_entry (good, TY_INFER_SEC_VOCAB, 0) + 8);
    memcpy (buf, good, len);
    s_wr64 (buf + voc, s_rd64 (good + voc) + 1);
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    memcpy (buf, good, len);
    s_wr64 (buf + voc + 16, 1u << 30);
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    /* Unsorted character table (binary search needs order). */
    size_t lowe = s_entry (good, TY_INFER_SEC_CHAR_LOWER, 0);
    size_t low = (size_t) s_rd64 (good + lowe + 8);
    assert_true (s_rd64 (good + lowe + 16) >= 16);
    memcpy (buf, good, len);
    memcpy (buf + low, good + low + 8, 8);
    memcpy (buf + low + 8, good + low, 8);
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);
    /* Section count beyond the file. */
    memcpy (buf, good, len);
    buf[31] = 0x7F;
    assert_int_equal (s_try (buf, len), TY_INFER_EPROTO);

    /* Random byte flips in the header, table and tables: an error or a
     * model that works in bounds (ASan watches). */
    uint64_t rng = 42;
    size_t emb_off = (size_t) s_rd64 (good + emb + 8);
    int opened = 0;
    for (int i = 0; i < 300; i++) {
        memcpy (buf, good, len);
        for (int k = 0; k < 3; k++) {
            size_t at = (size_t) ty_negsample_below (&rng, emb_off);
            buf[at] ^= (unsigned char) (1u << ty_negsample_below (&rng, 8));
        }
        if (s_try (buf, len) == TY_INFER_OK)
            opened++;
    }
    assert_true (opened < 300);

    /* Not a file at all. */
    ty_infer_model_t *im = NULL;
    char err[ERRLEN];
    assert_int_equal (ty_infer_open ("/nonexistent/x.tym", &im, err, sizeof err), ENOENT);
    assert_int_equal (ty_infer_open (ty_pfix_dir (), &im, err, sizeof err), TY_INFER_EPROTO);
    assert_null (im);
    free (buf);
    free (good);
    ty_torch_destroy (&m);
    ty_vocab_destroy (&v);
}

static void
test_portable_codes_match_ty_error (void **state)
{
    (void) state;
    assert_int_equal (TY_INFER_EPROTO, TY_EPROTO);
    assert_int_equal (TY_INFER_EFULL, TY_EFULL);
    assert_int_equal (TY_INFER_EINVAL, TY_EINVAL);
    assert_int_equal (TY_INFER_ENOMEM, TY_ENOMEM);
    assert_int_equal (TY_INFER_MAX_LAYERS, TY_TORCH_MAX_LAYERS);
    assert_int_equal (TY_INFER_TEXTCLF, TY_TORCH_TEXTCLF);
    assert_int_equal (TY_INFER_NCF, TY_TORCH_NCF);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_portable_codes_match_ty_error),
        cmocka_unit_test (test_portable_export_tensors),
        cmocka_unit_test (test_portable_textclf_matches_libtorch),
        cmocka_unit_test (test_portable_textclf_multilabel),
        cmocka_unit_test (test_portable_tokenizer_ids_all_options),
        cmocka_unit_test (test_portable_mlp_matches_libtorch),
        cmocka_unit_test (test_portable_cnn_matches_libtorch),
        cmocka_unit_test (test_portable_ncf_matches_libtorch),
        cmocka_unit_test (test_portable_convert_dir),
        cmocka_unit_test (test_portable_corrupt_files_refused),
    };
    return cmocka_run_group_tests (tests, s_setup, ty_pfix_teardown);
}

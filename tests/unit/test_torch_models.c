/*  test_torch_models: each model kind of the libtorch shim learns on small
 *  data generated here, by a wide margin over a trivial baseline:
 *    textclf  3 classes of distinct word sets (+ shared noise words), and a
 *             multi-label variant
 *    mlp      gaussian blobs (accuracy) and a smooth regression (MSE)
 *    cnn      8x8 horizontal vs vertical bars, plain and depthwise-separable
 *             with flip/crop augmentation
 *    ncf      a planted cluster structure; HR@10 vs item popularity
 *  Sample order is shuffled in C with a seeded RNG, as the train worker does. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ty_error.h"
#include "ty_negsample.h"
#include "ty_tokenize.h"
#include "ty_torch.h"

#define ERRLEN 256

static double
s_unif (uint64_t *rng)
{
    return (double) (ty_negsample_rand (rng) >> 11) / 9007199254740992.0;
}

static double
s_gauss (uint64_t *rng)
{
    double u = s_unif (rng) + 1e-12, v = s_unif (rng);
    return sqrt (-2 * log (u)) * cos (2 * M_PI * v);
}

static void
s_shuffle (int64_t *idx, int64_t n, uint64_t *rng)
{
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t) ty_negsample_below (rng, (uint64_t) i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

static ty_torch_model_t *
must_new (const ty_torch_params_t *p)
{
    char err[ERRLEN];
    ty_torch_model_t *m = NULL;
    int rc = ty_torch_new (p, &m, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("ty_torch_new: %s", err);
    return m;
}

static int64_t
s_argmax (const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* ==== textclf ============================================================== */

#define TXT_CLASSES   3
#define TXT_SETWORDS  15
#define TXT_NOISE     15
#define TXT_DOCWORDS  8
#define TXT_TRAIN     300
#define TXT_TEST      150

typedef struct {
    char text[TXT_DOCWORDS * 16];
    int64_t label;
} s_doc_t;

static void
s_make_docs (s_doc_t *docs, int n, uint64_t *rng)
{
    for (int d = 0; d < n; d++) {
        int64_t c = (int64_t) ty_negsample_below (rng, TXT_CLASSES);
        docs[d].label = c;
        char *p = docs[d].text;
        p[0] = '\0';
        for (int w = 0; w < TXT_DOCWORDS; w++) {
            char word[16];
            /* 5 of 8 words from the class's own set, the rest shared noise. */
            if (w < 5)
                snprintf (word, sizeof word, "c%dw%d", (int) c,
                          (int) ty_negsample_below (rng, TXT_SETWORDS));
            else
                snprintf (word, sizeof word, "noise%d",
                          (int) ty_negsample_below (rng, TXT_NOISE));
            strcat (p, w ? " " : "");
            strcat (p, word);
        }
    }
}

/* Encodes docs[lo..hi) in the order idx into ids/offsets/labels. */
static void
s_encode_batch (ty_vocab_t *v, const s_doc_t *docs, const int64_t *idx, int64_t n,
                ty_idbuf_t *ids, int64_t *offsets, int64_t *labels, float *multihot)
{
    ids->n = 0;
    for (int64_t i = 0; i < n; i++) {
        const s_doc_t *d = &docs[idx ? idx[i] : i];
        offsets[i] = (int64_t) ids->n;
        assert_int_equal (ty_vocab_encode (v, d->text, strlen (d->text), ids), TY_OK);
        if (labels)
            labels[i] = d->label;
        if (multihot) {
            /* Multi-label: the class and, for class 0, label 3 as well. */
            for (int k = 0; k < TXT_CLASSES + 1; k++)
                multihot[i * (TXT_CLASSES + 1) + k] = 0;
            multihot[i * (TXT_CLASSES + 1) + d->label] = 1;
            if (d->label == 0)
                multihot[i * (TXT_CLASSES + 1) + TXT_CLASSES] = 1;
        }
    }
}

static void
s_textclf_run (bool multilabel, ty_torch_optim_t optim)
{
    uint64_t rng = 7;
    s_doc_t *train = calloc (TXT_TRAIN, sizeof *train), *test = calloc (TXT_TEST, sizeof *test);
    s_make_docs (train, TXT_TRAIN, &rng);
    s_make_docs (test, TXT_TEST, &rng);

    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.word_ngrams = 2;
    o.bucket = 5000;
    ty_vocab_t *v = ty_vocab_new (&o);
    assert_non_null (v);
    for (int d = 0; d < TXT_TRAIN; d++)
        assert_int_equal (ty_vocab_add_text (v, train[d].text, strlen (train[d].text)), TY_OK);
    assert_int_equal (ty_vocab_finalize (v), TY_OK);

    const int64_t batch = 16, epochs = 5;
    int64_t nlabels = multilabel ? TXT_CLASSES + 1 : TXT_CLASSES;
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    p.textclf.nrows = ty_vocab_nrows (v);
    p.textclf.dim = 16;
    p.textclf.nlabels = nlabels;
    p.textclf.multilabel = multilabel;
    p.lr = 0.5;
    p.total_steps = epochs * ((TXT_TRAIN + batch - 1) / batch);
    p.optim = optim;
    if (optim != TY_TORCH_SGD) {
        /* Lazy Adam/AdamW over the embedding rows (the written-out step). */
        p.lr = 0.02;
        p.weight_decay = optim == TY_TORCH_ADAMW ? 0.01 : 0;
    }
    ty_torch_model_t *m = must_new (&p);
    assert_int_equal (ty_torch_param_count (m), p.textclf.nrows * 16 + 16 * nlabels + nlabels);

    ty_idbuf_t ids;
    ty_idbuf_init (&ids);
    int64_t idx[TXT_TRAIN], offsets[TXT_TEST], labels[TXT_TEST];
    float multihot[TXT_TEST * (TXT_CLASSES + 1)];
    double first = 0, last = 0;
    for (int64_t e = 0; e < epochs; e++) {
        uint64_t erng = 100 + (uint64_t) e;
        s_shuffle (idx, TXT_TRAIN, &erng);
        double sum = 0;
        int nb = 0;
        for (int64_t s = 0; s < TXT_TRAIN; s += batch) {
            int64_t n = TXT_TRAIN - s < batch ? TXT_TRAIN - s : batch;
            s_encode_batch (v, train, idx + s, n, &ids, offsets, labels,
                            multilabel ? multihot : NULL);
            ty_torch_batch_t b = {.n = n, .ids = ids.ids, .nids = (int64_t) ids.n,
                                  .offsets = offsets};
            if (multilabel)
                b.targets = multihot;
            else
                b.labels = labels;
            double loss;
            int rc = ty_torch_train_step (m, &b, &loss);
            if (rc != TY_OK)
                fail_msg ("train: %s", ty_torch_errstr (m));
            sum += loss;
            nb++;
        }
        if (e == 0)
            first = sum / nb;
        last = sum / nb;
    }
    assert_true (last < first * 0.5);
    /* Linear decay reached 0 at the last step (SGD); Adam keeps its lr. */
    if (optim == TY_TORCH_SGD)
        assert_true (ty_torch_lr (m) < 1e-9);
    else
        assert_true (ty_torch_lr (m) == p.lr);

    s_encode_batch (v, test, NULL, TXT_TEST, &ids, offsets, labels, multilabel ? multihot : NULL);
    ty_torch_batch_t b = {.n = TXT_TEST, .ids = ids.ids, .nids = (int64_t) ids.n,
                          .offsets = offsets};
    float *out = calloc ((size_t) (TXT_TEST * nlabels), sizeof *out);
    assert_int_equal (ty_torch_predict (m, &b, out, (size_t) (TXT_TEST * nlabels)), TY_OK);
    int correct = 0;
    for (int i = 0; i < TXT_TEST; i++) {
        if (multilabel) {
            /* Exact set match at threshold 0.5. */
            bool ok = true;
            for (int k = 0; k < nlabels; k++)
                ok = ok && ((out[i * nlabels + k] > 0.5f) == (multihot[i * nlabels + k] > 0.5f));
            correct += ok;
        }
        else {
            double sum = 0;
            for (int k = 0; k < nlabels; k++)
                sum += out[i * nlabels + k];
            assert_true (fabs (sum - 1.0) < 1e-4);   /* softmax */
            correct += s_argmax (out + i * nlabels, nlabels) == labels[i];
        }
    }
    /* Chance is 1/3 (or worse for exact multi-label sets). */
    double acc = (double) correct / TXT_TEST;
    if (acc < 0.9)
        fail_msg ("textclf%s %s accuracy %.3f", multilabel ? " multilabel" : "",
                  ty_torch_optim_name (optim), acc);
    free (out);
    ty_idbuf_free (&ids);
    ty_torch_destroy (&m);
    assert_null (m);
    ty_vocab_destroy (&v);
    free (train);
    free (test);
}

static void
test_torch_textclf_learns (void **state)
{
    (void) state;
    s_textclf_run (false, TY_TORCH_SGD);
}

static void
test_torch_textclf_multilabel_learns (void **state)
{
    (void) state;
    s_textclf_run (true, TY_TORCH_SGD);
}

static void
test_torch_textclf_lazy_adam_learns (void **state)
{
    (void) state;
    s_textclf_run (false, TY_TORCH_ADAM);
    s_textclf_run (true, TY_TORCH_ADAMW);
}

/* Copies one parameter tensor out of the model by name. */
typedef struct {
    const char *name;
    float *dst;
    int64_t count;
} s_grab_t;

static int
s_grab (void *arg, const char *name, int ndim, const int64_t *shape, const float *data)
{
    s_grab_t *g = arg;
    if (strcmp (name, g->name) != 0)
        return TY_OK;
    int64_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= shape[i];
    assert_true (count <= g->count);
    memcpy (g->dst, data, (size_t) count * sizeof (float));
    g->count = count;
    return TY_OK;
}

static void
s_must_grab (ty_torch_model_t *m, const char *name, float *dst, int64_t cap)
{
    s_grab_t g = {.name = name, .dst = dst, .count = cap};
    assert_int_equal (ty_torch_export_tensors (m, s_grab, &g), TY_OK);
}

#define STEP_ROWS    6
#define STEP_DIM     4
#define STEP_LABELS  3

/* The written-out textclf step against its maths, on a first step where
 * the output layer is zero (fastText's init): logits are 0, so softmax is
 * uniform; SGD moves the bias by -lr (1/L - [j = y]) and no embedding row
 * (their gradient goes through W = 0); Adam's first step moves each
 * weight with a nonzero gradient by lr x sign, and lazy Adam leaves the
 * rows a later batch does not touch exactly as they were, where dense
 * Adam would keep moving them with their momentum. */
static void
test_torch_textclf_step_maths (void **state)
{
    (void) state;
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    p.textclf.nrows = STEP_ROWS;
    p.textclf.dim = STEP_DIM;
    p.textclf.nlabels = STEP_LABELS;
    p.lr = 0.3;
    const int64_t ids1[] = {0, 1, 1}, ids2[] = {4}, off[] = {0}, lab[] = {2};
    ty_torch_batch_t b1 = {.n = 1, .ids = ids1, .nids = 3, .offsets = off, .labels = lab};
    ty_torch_batch_t b2 = {.n = 1, .ids = ids2, .nids = 1, .offsets = off, .labels = lab};
    float e0[STEP_ROWS * STEP_DIM], e1[STEP_ROWS * STEP_DIM], e2[STEP_ROWS * STEP_DIM];
    float bias[STEP_LABELS];
    double loss;

    /* SGD */
    ty_torch_model_t *m = must_new (&p);
    s_must_grab (m, "emb.weight", e0, STEP_ROWS * STEP_DIM);
    assert_int_equal (ty_torch_train_step (m, &b1, &loss), TY_OK);
    assert_true (fabs (loss - log (STEP_LABELS)) < 1e-6);
    s_must_grab (m, "fc.bias", bias, STEP_LABELS);
    for (int j = 0; j < STEP_LABELS; j++)
        assert_true (fabs (bias[j] + 0.3 * (1.0 / STEP_LABELS - (j == 2))) < 1e-6);
    s_must_grab (m, "emb.weight", e1, STEP_ROWS * STEP_DIM);
    assert_memory_equal (e0, e1, sizeof e0);
    /* Second step: W is no longer 0, the rows of the bag move, others not. */
    assert_int_equal (ty_torch_train_step (m, &b1, &loss), TY_OK);
    s_must_grab (m, "emb.weight", e2, STEP_ROWS * STEP_DIM);
    assert_true (memcmp (e2, e1, 2 * STEP_DIM * sizeof (float)) != 0);
    assert_memory_equal (e2 + 2 * STEP_DIM, e1 + 2 * STEP_DIM,
                         (STEP_ROWS - 2) * STEP_DIM * sizeof (float));
    ty_torch_destroy (&m);

    /* Lazy Adam */
    p.optim = TY_TORCH_ADAM;
    p.lr = 0.01;
    m = must_new (&p);
    assert_int_equal (ty_torch_train_step (m, &b1, &loss), TY_OK);
    s_must_grab (m, "fc.bias", bias, STEP_LABELS);
    for (int j = 0; j < STEP_LABELS; j++)
        assert_true (fabs (bias[j] - (j == 2 ? 0.01 : -0.01)) < 1e-5);
    assert_int_equal (ty_torch_train_step (m, &b1, &loss), TY_OK);
    s_must_grab (m, "emb.weight", e1, STEP_ROWS * STEP_DIM);
    assert_true (memcmp (e1, e0, 2 * STEP_DIM * sizeof (float)) != 0);   /* rows 0, 1 moved */
    /* A batch of row 4 only: rows 0 and 1 have momentum, yet stay put. */
    assert_int_equal (ty_torch_train_step (m, &b2, &loss), TY_OK);
    s_must_grab (m, "emb.weight", e2, STEP_ROWS * STEP_DIM);
    assert_memory_equal (e2, e1, 4 * STEP_DIM * sizeof (float));
    assert_true (memcmp (e2 + 4 * STEP_DIM, e1 + 4 * STEP_DIM, STEP_DIM * sizeof (float)) != 0);
    assert_memory_equal (e2 + 5 * STEP_DIM, e0 + 5 * STEP_DIM, STEP_DIM * sizeof (float));
    ty_torch_destroy (&m);
}

/* ==== mlp ================================================================== */

#define BLOB_DIM   4
#define BLOB_N     300
#define BLOB_TEST  150

static void
s_blobs (float *x, int64_t *y, int n, uint64_t *rng)
{
    for (int i = 0; i < n; i++) {
        int c = (int) ty_negsample_below (rng, 3);
        y[i] = c;
        for (int d = 0; d < BLOB_DIM; d++)
            x[i * BLOB_DIM + d] = (float) ((d == c ? 3.0 : 0.0) + s_gauss (rng));
    }
}

static void
test_torch_mlp_classifies_blobs (void **state)
{
    (void) state;
    uint64_t rng = 11;
    static float x[BLOB_N * BLOB_DIM], tx[BLOB_TEST * BLOB_DIM], bx[32 * BLOB_DIM];
    static int64_t y[BLOB_N], ty[BLOB_TEST], by[32], idx[BLOB_N];
    s_blobs (x, y, BLOB_N, &rng);
    s_blobs (tx, ty, BLOB_TEST, &rng);
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_MLP);
    p.mlp.input_dim = BLOB_DIM;
    p.mlp.nhidden = 2;
    p.mlp.hidden[0] = 16;
    p.mlp.hidden[1] = 16;
    p.mlp.dropout = 0.1;
    p.mlp.noutputs = 3;
    p.lr = 0.01;
    ty_torch_model_t *m = must_new (&p);
    double first = 0, last = 0;
    for (int e = 0; e < 15; e++) {
        uint64_t erng = 200 + (uint64_t) e;
        s_shuffle (idx, BLOB_N, &erng);
        double sum = 0;
        int nb = 0;
        for (int s = 0; s < BLOB_N; s += 32) {
            int n = BLOB_N - s < 32 ? BLOB_N - s : 32;
            for (int i = 0; i < n; i++) {
                memcpy (bx + i * BLOB_DIM, x + idx[s + i] * BLOB_DIM, sizeof (float) * BLOB_DIM);
                by[i] = y[idx[s + i]];
            }
            ty_torch_batch_t b = {.n = n, .x = bx, .labels = by};
            double loss;
            assert_int_equal (ty_torch_train_step (m, &b, &loss), TY_OK);
            sum += loss;
            nb++;
        }
        if (e == 0)
            first = sum / nb;
        last = sum / nb;
    }
    assert_true (last < first * 0.5);
    float out[BLOB_TEST * 3];
    ty_torch_batch_t tb = {.n = BLOB_TEST, .x = tx};
    assert_int_equal (ty_torch_predict (m, &tb, out, BLOB_TEST * 3), TY_OK);
    int correct = 0;
    for (int i = 0; i < BLOB_TEST; i++)
        correct += s_argmax (out + i * 3, 3) == ty[i];
    double acc = (double) correct / BLOB_TEST;
    if (acc < 0.85)   /* chance 1/3; the Bayes rate here is about 0.93 */
        fail_msg ("mlp accuracy %.3f", acc);
    ty_torch_destroy (&m);
}

#define REG_N    400
#define REG_TEST 200

static void
s_regression (float *x, float *y, int n, uint64_t *rng)
{
    for (int i = 0; i < n; i++) {
        float *r = x + i * 3;
        for (int d = 0; d < 3; d++)
            r[d] = (float) (2 * s_unif (rng) - 1);
        /* A rating-like target in [0, 1]: smooth and non-linear. */
        y[i] = (float) (0.5 + 0.3 * r[0] - 0.2 * r[1] * r[2] + 0.1 * sin (3 * r[2])
                        + 0.01 * s_gauss (rng));
    }
}

static void
test_torch_mlp_regression_beats_mean (void **state)
{
    (void) state;
    uint64_t rng = 13;
    static float x[REG_N * 3], y[REG_N], tx[REG_TEST * 3], ty[REG_TEST], out[REG_TEST];
    s_regression (x, y, REG_N, &rng);
    s_regression (tx, ty, REG_TEST, &rng);
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_MLP);
    p.mlp.input_dim = 3;
    p.mlp.nhidden = 2;
    p.mlp.hidden[0] = 32;
    p.mlp.hidden[1] = 16;
    p.mlp.regression = true;
    p.mlp.noutputs = 1;
    p.optim = TY_TORCH_ADAMW;
    p.lr = 0.01;
    p.weight_decay = 1e-4;
    ty_torch_model_t *m = must_new (&p);
    for (int e = 0; e < 60; e++)
        for (int s = 0; s < REG_N; s += 40) {
            ty_torch_batch_t b = {.n = 40, .x = x + s * 3, .targets = y + s};
            assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_OK);
        }
    ty_torch_batch_t tb = {.n = REG_TEST, .x = tx};
    assert_int_equal (ty_torch_predict (m, &tb, out, REG_TEST), TY_OK);
    double mean = 0, mse = 0, var = 0;
    for (int i = 0; i < REG_N; i++)
        mean += y[i] / REG_N;
    for (int i = 0; i < REG_TEST; i++) {
        mse += (out[i] - ty[i]) * (out[i] - ty[i]) / REG_TEST;
        var += (mean - ty[i]) * (mean - ty[i]) / REG_TEST;
    }
    /* The trivial model (the train mean) scores var. */
    if (mse > 0.2 * var)
        fail_msg ("mlp regression MSE %.5f vs mean baseline %.5f", mse, var);
    double vl;
    ty_torch_batch_t eb = {.n = REG_TEST, .x = tx, .targets = ty};
    assert_int_equal (ty_torch_eval_loss (m, &eb, &vl), TY_OK);
    assert_true (fabs (vl - mse) < 1e-4);
    ty_torch_destroy (&m);
}

/* ==== cnn ================================================================== */

#define IMG      8
#define CNN_N    240
#define CNN_TEST 120

/* Class 0: a horizontal bar; class 1: a vertical bar; random place, noise. */
static void
s_bars (float *x, int64_t *y, int n, uint64_t *rng)
{
    for (int i = 0; i < n; i++) {
        float *img = x + i * IMG * IMG;
        int c = (int) ty_negsample_below (rng, 2), at = 1 + (int) ty_negsample_below (rng, IMG - 2);
        int from = (int) ty_negsample_below (rng, 3), len = 4;
        y[i] = c;
        for (int k = 0; k < IMG * IMG; k++)
            img[k] = (float) (0.3 * s_unif (rng));
        for (int k = from; k < from + len; k++)
            img[c == 0 ? at * IMG + k : k * IMG + at] = 1.0f;
    }
}

static void
s_cnn_run (bool separable)
{
    uint64_t rng = separable ? 17 : 19;
    static float x[CNN_N * IMG * IMG], tx[CNN_TEST * IMG * IMG], out[CNN_TEST * 2];
    static int64_t y[CNN_N], ty[CNN_TEST];
    s_bars (x, y, CNN_N, &rng);
    s_bars (tx, ty, CNN_TEST, &rng);
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_CNN);
    p.cnn.height = p.cnn.width = IMG;
    p.cnn.channels = 1;
    p.cnn.depth = 2;
    p.cnn.filters = 8;
    p.cnn.separable = separable;
    p.cnn.nclasses = 2;
    p.cnn.augment_flip = separable;
    p.cnn.augment_crop_px = separable ? 1 : 0;
    p.lr = 0.01;
    ty_torch_model_t *m = must_new (&p);
    double first = 0, last = 0;
    for (int e = 0; e < 12; e++) {
        double sum = 0;
        int nb = 0;
        for (int s = 0; s < CNN_N; s += 24) {
            ty_torch_batch_t b = {.n = 24, .x = x + s * IMG * IMG, .labels = y + s};
            double loss;
            if (ty_torch_train_step (m, &b, &loss) != TY_OK)
                fail_msg ("cnn: %s", ty_torch_errstr (m));
            sum += loss;
            nb++;
        }
        if (e == 0)
            first = sum / nb;
        last = sum / nb;
    }
    assert_true (last < first * 0.6);
    ty_torch_batch_t tb = {.n = CNN_TEST, .x = tx};
    assert_int_equal (ty_torch_predict (m, &tb, out, CNN_TEST * 2), TY_OK);
    int correct = 0;
    for (int i = 0; i < CNN_TEST; i++)
        correct += s_argmax (out + i * 2, 2) == ty[i];
    double acc = (double) correct / CNN_TEST;
    if (acc < 0.9)   /* chance 1/2 */
        fail_msg ("cnn%s accuracy %.3f", separable ? " separable" : "", acc);
    ty_torch_destroy (&m);
}

static void
test_torch_cnn_learns_bars (void **state)
{
    (void) state;
    s_cnn_run (false);
}

static void
test_torch_cnn_separable_augmented_learns_bars (void **state)
{
    (void) state;
    s_cnn_run (true);
}

/* ==== ncf ================================================================== */

#define NCF_USERS    120
#define NCF_ITEMS    80
#define NCF_GROUPS   4
#define NCF_PER_USER 10
#define NCF_RATIO    4
#define NCF_TOPK     10

static void
test_torch_ncf_beats_popularity (void **state)
{
    (void) state;
    /* Planted structure: user u and item i belong to groups u % 4 and
     * i % 4; a user interacts with 10 items of its own group. One
     * interaction per user is held out. */
    uint64_t rng = 23;
    static int64_t tu[NCF_USERS * NCF_PER_USER], ti[NCF_USERS * NCF_PER_USER];
    int64_t held[NCF_USERS], npos = 0;
    for (int64_t u = 0; u < NCF_USERS; u++) {
        bool used[NCF_ITEMS] = {false};
        for (int k = 0; k < NCF_PER_USER; k++) {
            int64_t it;
            do
                it = (int64_t) ty_negsample_below (&rng, NCF_ITEMS / NCF_GROUPS) * NCF_GROUPS
                     + u % NCF_GROUPS;
            while (used[it]);
            used[it] = true;
            if (k == 0)
                held[u] = it;
            else {
                tu[npos] = u;
                ti[npos++] = it;
            }
        }
    }
    ty_negsample_t *ns = NULL;
    assert_int_equal (ty_negsample_new (NCF_USERS, NCF_ITEMS, tu, ti, npos, &ns), TY_OK);
    assert_true (ty_negsample_is_positive (ns, tu[0], ti[0]));
    assert_false (ty_negsample_is_positive (ns, 0, held[0]));

    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_NCF);
    p.ncf.nusers = NCF_USERS;
    p.ncf.nitems = NCF_ITEMS;
    p.lr = 0.01;
    ty_torch_model_t *m = must_new (&p);

    enum { B = 64 };
    int64_t idx[NCF_USERS * NCF_PER_USER], bu[B], bi[B];
    int64_t ou[B * (1 + NCF_RATIO)], oi[B * (1 + NCF_RATIO)];
    float ot[B * (1 + NCF_RATIO)];
    double first = 0, last = 0;
    for (int e = 0; e < 15; e++) {
        uint64_t erng = 300 + (uint64_t) e;
        s_shuffle (idx, npos, &erng);
        double sum = 0;
        int nb = 0;
        for (int64_t s = 0; s < npos; s += B) {
            int64_t n = npos - s < B ? npos - s : B, nout;
            for (int64_t k = 0; k < n; k++) {
                bu[k] = tu[idx[s + k]];
                bi[k] = ti[idx[s + k]];
            }
            assert_int_equal (ty_negsample_fill (ns, bu, bi, n, NCF_RATIO, &erng, ou, oi, ot,
                                                 B * (1 + NCF_RATIO), &nout),
                              TY_OK);
            assert_int_equal (nout, n * (1 + NCF_RATIO));
            for (int64_t k = 0; k < nout; k++)
                if (ot[k] == 0.0f)
                    assert_false (ty_negsample_is_positive (ns, ou[k], oi[k]));
            ty_torch_batch_t b = {.n = nout, .users = ou, .items = oi, .targets = ot};
            double loss;
            assert_int_equal (ty_torch_train_step (m, &b, &loss), TY_OK);
            sum += loss;
            nb++;
        }
        if (e == 0)
            first = sum / nb;
        last = sum / nb;
    }
    assert_true (last < first * 0.8);

    /* HR@10 by leave-one-out over all items the user has not seen in
     * training; the baseline ranks them by training popularity. */
    int pop[NCF_ITEMS] = {0};
    for (int64_t k = 0; k < npos; k++)
        pop[ti[k]]++;
    int hits = 0, pop_hits = 0;
    int64_t users[NCF_ITEMS], items[NCF_ITEMS];
    float score[NCF_ITEMS];
    for (int64_t u = 0; u < NCF_USERS; u++) {
        for (int64_t it = 0; it < NCF_ITEMS; it++) {
            users[it] = u;
            items[it] = it;
        }
        ty_torch_batch_t b = {.n = NCF_ITEMS, .users = users, .items = items};
        assert_int_equal (ty_torch_predict (m, &b, score, NCF_ITEMS), TY_OK);
        int better = 0, pop_better = 0;
        for (int64_t it = 0; it < NCF_ITEMS; it++) {
            if (it == held[u] || ty_negsample_is_positive (ns, u, it))
                continue;
            better += score[it] > score[held[u]];
            pop_better += pop[it] > pop[held[u]];
        }
        hits += better < NCF_TOPK;
        pop_hits += pop_better < NCF_TOPK;
    }
    double hr = (double) hits / NCF_USERS, pop_hr = (double) pop_hits / NCF_USERS;
    if (hr < pop_hr + 0.3)
        fail_msg ("ncf HR@10 %.3f vs popularity %.3f", hr, pop_hr);
    ty_torch_destroy (&m);
    ty_negsample_destroy (&ns);
    assert_null (ns);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_torch_textclf_learns),
        cmocka_unit_test (test_torch_textclf_multilabel_learns),
        cmocka_unit_test (test_torch_textclf_lazy_adam_learns),
        cmocka_unit_test (test_torch_textclf_step_maths),
        cmocka_unit_test (test_torch_mlp_classifies_blobs),
        cmocka_unit_test (test_torch_mlp_regression_beats_mean),
        cmocka_unit_test (test_torch_cnn_learns_bars),
        cmocka_unit_test (test_torch_cnn_separable_augmented_learns_bars),
        cmocka_unit_test (test_torch_ncf_beats_popularity),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

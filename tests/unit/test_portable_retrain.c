/*  test_portable_retrain: a pruned or smaller textclf trained again
 *  (workers/convert/ty_retrain.h) and written with its row map
 *  (ty_portable_opts_t.rowmap):
 *    - the retrained model has exactly the kept rows (those of largest
 *      norm of the trained model) and the asked embedding size;
 *    - the runtime reading the written file predicts what libtorch
 *      predicts for the same text with the same ids dropped (1e-5): the
 *      row map names the right rows;
 *    - on the shipped fortunes sample (examples/data/fortunes-5.tsv),
 *      pruned hard (a tenth of the rows), the retrained INT8 model is more
 *      accurate than the norm-pruned one and close to FP32;
 *    - a smaller embedding (dim 50 -> 16) retrained keeps close to FP32;
 *    - bad options are refused (not a textclf, zero epochs, a row map that
 *      does not match the model). */
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

#include "ty_error.h"
#include "ty_infer.h"
#include "ty_portable.h"
#include "ty_portable_fixture.h"
#include "ty_quantize.h"
#include "ty_retrain.h"
#include "ty_tokenize.h"
#include "ty_torch.h"

#define ERRLEN  256
#define MAXW    16
#define EPOCHS  5       /* fastText-style run on the small sample */
#define BATCH   8
#define TOL_RT  1e-5    /* the runtime against libtorch, FP32 */

/* The train set encoded once: the gather callback's source. */
typedef struct {
    ty_idbuf_t all;
    int64_t *start;
    const int64_t *label;
    int64_t ids[1 << 16], offs[BATCH], lab[BATCH];
    size_t calls;
} s_src_t;

static int
s_setup (void **state)
{
    (void) state;
    return ty_pfix_dir_new ("ty_pretrain");
}

static int
s_gather (void *arg, const uint64_t *idx, size_t n, ty_torch_batch_t *b)
{
    s_src_t *s = arg;
    int64_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t a = s->start[idx[i]], e = s->start[idx[i] + 1];
        if (k + (e - a) > (int64_t) (sizeof s->ids / sizeof s->ids[0]))
            return TY_EFULL;
        s->offs[i] = k;
        memcpy (s->ids + k, s->all.ids + a, (size_t) (e - a) * sizeof *s->ids);
        k += e - a;
        s->lab[i] = s->label[idx[i]];
    }
    memset (b, 0, sizeof *b);
    b->n = (int64_t) n;
    b->ids = s->ids;
    b->nids = k;
    b->offsets = s->offs;
    b->labels = s->lab;
    s->calls++;
    return TY_OK;
}

static double
s_accuracy (ty_infer_model_t *im, const ty_pfix_docs_t *d, size_t nl)
{
    size_t ok = 0;
    for (size_t i = 0; i < d->n; i++) {
        float out[MAXW];
        assert_int_equal (ty_infer_predict_text (im, d->text[i], strlen (d->text[i]), out,
                                                 MAXW), TY_INFER_OK);
        ok += (int64_t) ty_pfix_argmax (out, nl) == d->label[i];
    }
    return (double) ok / (double) d->n;
}

typedef struct {
    int64_t rows, dim;
    int nt;
} s_shape_t;

static int
s_on_tensor (void *arg, const char *name, int ndim, const int64_t *shape, const float *data)
{
    (void) data;
    s_shape_t *s = arg;
    if (s->nt++ == 0) {
        assert_string_equal (name, "emb.weight");
        assert_int_equal (ndim, 2);
        s->rows = shape[0];
        s->dim = shape[1];
    }
    return TY_OK;
}

static void
test_portable_retrain_fortunes (void **state)
{
    (void) state;
    ty_vocab_t *v = NULL;
    ty_pfix_docs_t train, test;
    int64_t nl = ty_pfix_fortunes (TY_SOURCE_DIR "/examples/data/fortunes-5.tsv", &v, &train,
                                   &test);
    assert_int_equal (nl, 5);

    static s_src_t src;
    ty_idbuf_init (&src.all);
    src.start = calloc (train.n + 1, sizeof *src.start);
    src.label = train.label;
    for (size_t i = 0; i < train.n; i++) {
        src.start[i] = (int64_t) src.all.n;
        assert_int_equal (ty_vocab_encode (v, train.text[i], strlen (train.text[i]), &src.all),
                          TY_OK);
    }
    src.start[train.n] = (int64_t) src.all.n;

    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    p.textclf.nrows = ty_vocab_nrows (v);
    p.textclf.dim = 50;
    p.textclf.nlabels = nl;
    p.lr = 0.5;
    p.threads = 1;
    p.total_steps = EPOCHS * (((int64_t) train.n + BATCH - 1) / BATCH);
    char err[ERRLEN];
    ty_torch_model_t *m = NULL;
    assert_int_equal (ty_torch_new (&p, &m, err, sizeof err), TY_OK);
    /* The original model, trained through the same gather. */
    for (int e = 0; e < EPOCHS; e++)
        for (size_t s = 0; s < train.n; s += BATCH) {
            uint64_t idx[BATCH];
            size_t n = train.n - s < BATCH ? train.n - s : BATCH;
            for (size_t k = 0; k < n; k++)
                idx[k] = (s + k * 97 + (size_t) e * 13) % train.n;
            ty_torch_batch_t b;
            assert_int_equal (s_gather (&src, idx, n, &b), TY_OK);
            assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_OK);
        }

    const char *names[5];
    for (int64_t i = 0; i < nl; i++)
        names[i] = ty_vocab_label_name (v, i);
    ty_portable_meta_t meta = {v, names, (size_t) nl};
    uint64_t keep = (uint64_t) ty_vocab_nrows (v) / 10;
    char path[4][512];
    static const char *file[4] = {"fp32.tym", "pruned.tym", "retrained.tym", "dim16.tym"};
    for (int k = 0; k < 4; k++)
        ty_pfix_path (path[k], sizeof path[k], file[k]);
    ty_portable_opts_t po = {TY_PORTABLE_FP32, 0, NULL, 0};
    assert_int_equal (ty_portable_write_opts (m, &meta, &po, path[0], err, sizeof err), TY_OK);
    po.dtype = TY_PORTABLE_INT8;
    po.max_rows = keep;
    assert_int_equal (ty_portable_write_opts (m, &meta, &po, path[1], err, sizeof err), TY_OK);

    /* Retrained on the kept rows, model's own epochs. */
    ty_retrain_opts_t ro;
    memset (&ro, 0, sizeof ro);
    ro.max_rows = keep;
    ro.epochs = EPOCHS;
    ro.batch_size = BATCH;
    ro.nsamples = train.n;
    ro.gather = s_gather;
    ro.arg = &src;
    ty_retrain_result_t rr;
    if (ty_retrain_textclf (m, &ro, &rr, err, sizeof err) != TY_OK)
        fail_msg ("ty_retrain_textclf: %s", err);
    assert_int_equal (rr.nkept, keep);
    assert_int_equal (rr.nrows, ty_vocab_nrows (v));
    assert_true (src.calls >= EPOCHS * (train.n / BATCH));
    s_shape_t sh = {0, 0, 0};
    assert_int_equal (ty_torch_export_tensors (rr.model, s_on_tensor, &sh), TY_OK);
    assert_int_equal (sh.rows, (int64_t) keep);
    assert_int_equal (sh.dim, 50);
    /* The kept rows are those the norm pruning keeps. */
    ty_infer_model_t *pruned = ty_pfix_open (path[1]);
    assert_int_equal (ty_infer_kept_rows (pruned), (int64_t) keep);
    for (size_t i = 1; i < rr.nkept; i++)
        assert_true (rr.rowmap[i] > rr.rowmap[i - 1]);

    /* FP32 first: the runtime must equal libtorch with dropped ids removed. */
    po.dtype = TY_PORTABLE_FP32;
    po.max_rows = 0;
    po.rowmap = rr.rowmap;
    po.rowmap_len = rr.nkept;
    assert_int_equal (ty_portable_write_opts (rr.model, &meta, &po, path[2], err, sizeof err),
                      TY_OK);
    ty_infer_model_t *rt = ty_pfix_open (path[2]);
    assert_int_equal (ty_infer_kept_rows (rt), (int64_t) keep);
    int32_t *map = malloc ((size_t) rr.nrows * sizeof *map);
    for (int64_t i = 0; i < rr.nrows; i++)
        map[i] = -1;
    for (size_t i = 0; i < rr.nkept; i++)
        map[rr.rowmap[i]] = (int32_t) i;
    ty_idbuf_t ids;
    ty_idbuf_init (&ids);
    double worst = 0;
    for (size_t i = 0; i < test.n; i++) {
        ids.n = 0;
        assert_int_equal (ty_vocab_encode (v, test.text[i], strlen (test.text[i]), &ids), TY_OK);
        size_t k = 0;
        for (size_t j = 0; j < ids.n; j++)
            if (map[ids.ids[j]] >= 0)
                ids.ids[k++] = map[ids.ids[j]];
        int64_t off = 0;
        ty_torch_batch_t b;
        memset (&b, 0, sizeof b);
        b.n = 1;
        b.ids = ids.ids;
        b.nids = (int64_t) k;
        b.offsets = &off;
        float want[MAXW], got[MAXW];
        assert_int_equal (ty_torch_predict (rr.model, &b, want, MAXW), TY_OK);
        assert_int_equal (ty_infer_predict_text (rt, test.text[i], strlen (test.text[i]), got,
                                                 MAXW), TY_INFER_OK);
        for (int64_t c = 0; c < nl; c++)
            if (fabs (want[c] - got[c]) > worst)
                worst = fabs (want[c] - got[c]);
    }
    assert_true (worst < TOL_RT);
    ty_infer_close (&rt);
    ty_idbuf_free (&ids);
    free (map);

    /* INT8 of the retrained model against norm pruning alone. */
    po.dtype = TY_PORTABLE_INT8;
    assert_int_equal (ty_portable_write_opts (rr.model, &meta, &po, path[2], err, sizeof err),
                      TY_OK);
    rt = ty_pfix_open (path[2]);
    ty_infer_model_t *fp = ty_pfix_open (path[0]);
    double a32 = s_accuracy (fp, &test, (size_t) nl), apr = s_accuracy (pruned, &test, (size_t) nl),
           art = s_accuracy (rt, &test, (size_t) nl);

    /* A smaller embedding, every row. */
    ro.max_rows = 0;
    ro.dim = 16;
    ty_retrain_result_t rd;
    assert_int_equal (ty_retrain_textclf (m, &ro, &rd, err, sizeof err), TY_OK);
    assert_int_equal (rd.nkept, (size_t) ty_vocab_nrows (v));
    po.rowmap = rd.rowmap;
    po.rowmap_len = rd.nkept;
    assert_int_equal (ty_portable_write_opts (rd.model, &meta, &po, path[3], err, sizeof err),
                      TY_OK);
    ty_infer_model_t *d16 = ty_pfix_open (path[3]);
    assert_int_equal (ty_infer_kept_rows (d16), ty_vocab_nrows (v));
    double a16 = s_accuracy (d16, &test, (size_t) nl);
    struct stat st0, st3;
    assert_int_equal (stat (path[2], &st0), 0);
    assert_int_equal (stat (path[3], &st3), 0);
    printf ("fortunes-5, keep %llu of %lld rows: fp32 %.4f  int8 norm-pruned %.4f  "
            "int8 retrained %.4f  int8 dim16 %.4f (%lld bytes)\n", (unsigned long long) keep,
            (long long) ty_vocab_nrows (v), a32, apr, art, a16, (long long) st3.st_size);
    /* Measured: 0.578 fp32, 0.554 pruned, 0.574 retrained, 0.588 dim 16. */
    assert_true (art > apr);
    assert_true (art >= a32 - 0.03);
    assert_true (a16 >= a32 - 0.05);

    /* Refusals. */
    po.max_rows = 5;
    assert_int_equal (ty_portable_write_opts (rd.model, &meta, &po, path[3], err, sizeof err),
                      TY_EINVAL);
    po.max_rows = 0;
    po.rowmap = rr.rowmap;   /* the kept rows for a model of every row */
    po.rowmap_len = rr.nkept;
    assert_int_equal (ty_portable_write_opts (rd.model, &meta, &po, path[3], err, sizeof err),
                      TY_EINVAL);
    assert_non_null (strstr (err, "row map"));
    /* a row map that is not ascending, or points past the id space */
    uint32_t *bad = malloc (rr.nkept * sizeof *bad);
    memcpy (bad, rr.rowmap, rr.nkept * sizeof *bad);
    bad[1] = bad[0];
    po.rowmap = bad;
    assert_int_equal (ty_portable_write_opts (rr.model, &meta, &po, path[3], err, sizeof err),
                      TY_EINVAL);
    assert_non_null (strstr (err, "ascending"));
    memcpy (bad, rr.rowmap, rr.nkept * sizeof *bad);
    bad[rr.nkept - 1] = (uint32_t) ty_vocab_nrows (v);
    assert_int_equal (ty_portable_write_opts (rr.model, &meta, &po, path[3], err, sizeof err),
                      TY_EINVAL);
    free (bad);
    ro.epochs = 0;
    ty_retrain_result_t r0;
    assert_int_equal (ty_retrain_textclf (m, &ro, &r0, err, sizeof err), TY_EINVAL);
    assert_null (r0.model);
    ro.epochs = 1;
    ty_torch_params_t q;
    ty_torch_params_init (&q, TY_TORCH_MLP);
    q.mlp.input_dim = 4;
    q.mlp.noutputs = 2;
    ty_torch_model_t *mlp = NULL;
    assert_int_equal (ty_torch_new (&q, &mlp, err, sizeof err), TY_OK);
    ty_retrain_result_t rx;
    assert_int_equal (ty_retrain_textclf (mlp, &ro, &rx, err, sizeof err), TY_EINVAL);
    assert_null (rx.model);
    assert_non_null (strstr (err, "textclf"));
    ty_torch_destroy (&mlp);

    ty_infer_close (&d16);
    ty_infer_close (&fp);
    ty_infer_close (&rt);
    ty_infer_close (&pruned);
    ty_retrain_result_free (&rd);
    ty_retrain_result_free (&rr);
    ty_retrain_result_free (&rr);   /* idempotent */
    ty_torch_destroy (&m);
    free (src.start);
    ty_idbuf_free (&src.all);
    ty_pfix_docs_free (&train);
    ty_pfix_docs_free (&test);
    ty_vocab_destroy (&v);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_portable_retrain_fortunes),
    };
    return cmocka_run_group_tests (tests, s_setup, ty_pfix_teardown);
}

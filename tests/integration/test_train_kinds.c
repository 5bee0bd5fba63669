/*  test_train_kinds: the model kinds other than textclf through the whole
 *  train job (ty_train_run in-process, real LMDB datasets written by the
 *  dataset writer, real libtorch):
 *    cnn   learns pattern images far above the majority class; the version
 *          directory is complete and, reloaded, predicts what was measured;
 *          with flip/crop augmentation a run that dies after epoch 1
 *          resumes at epoch 2 and ends bitwise equal
 *    ncf   learns planted user/item groups with 4 negatives per positive:
 *          HR@10 far above an item-popularity ranking on the same protocol;
 *          a model that scores every item alike gets nothing, not 1.0
 *    mlp   regression on dense features with a target, and on frame
 *          annotations (rating in [0, 1]) with features: val MSE far below
 *          predicting the train mean
 *    each kind refuses a dataset of the wrong sample type by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_train_data.h"
#include "ty_fixture.h"
#include "ty_train.h"

#define S_WIDE_MARGIN   0.40    /* "beats the baseline by a wide margin" */

/* the hooks' state: a crash after an epoch, the first epoch */
typedef ty_fixture_train_t s_t;

static int
s_setup (void **state)
{
    return ty_fixture_train_setup (state, "train-kinds");
}

/* The job fails with want_rc and a message naming the problem: phrase
 * and, when not NULL, phrase2. */
static void
s_expect_fail (s_t *s, ttd_spec_t *t, int want_rc, const char *phrase, const char *phrase2)
{
    ty_fixture_train_expect_fail (s, &t->train, want_rc, phrase, phrase2);
}

/* ---- cnn ----------------------------------------------------------------------- */

/* The small, fast cnn the tests train: 1 thread, fixed seed. */
static void
s_cnn_spec (ttd_spec_t *t, const char *dataset, const char *name, uint32_t epochs)
{
    ttd_spec (t, dataset, "cnn", name);
    t->train.epochs = epochs;
    t->train.depth = 2;
    t->train.width = 8;
    t->train.optimizer = "adam";
    t->train.lr = 0.01;
    t->train.batch_size = 32;
    t->train.threads = 1;
    t->train.seed = 7;
}

static void
test_cnn_learns (void **state)
{
    s_t *s = *state;
    ttd_make_patterns (s->dir, "shapes", 480, 160, 11);
    ttd_spec_t t;
    s_cnn_spec (&t, "shapes", "shapecnn", 6);
    ty_train_result_t res;
    ty_fixture_train_must_run (s, &t.train, "job-cnn", &res);
    fprintf (stderr, "cnn: val acc %.3f (majority %.2f) at epoch %d of %d, %lld parameters, "
             "%.2f s\n", res.best_metric, TTD_MAJORITY, res.best_epoch, res.epochs_run,
             (long long) res.param_count, res.seconds);
    assert_string_equal (res.metric, "acc");
    assert_true (res.best_metric >= TTD_MAJORITY + S_WIDE_MARGIN);
    assert_string_equal (res.model, "shapecnn@1");
    assert_int_equal (res.epochs_run, 6);
    assert_int_equal (res.train_samples, 480);

    /* the version directory is complete; the checkpoints are gone */
    const char *files [] = { "model.pt", "config.json", "feat.json", "history.json",
                             "lineage.json" };
    for (size_t i = 0; i < sizeof files / sizeof files [0]; i++)
        if (!ty_fixture_exists (res.path, files [i]))
            fail_msg ("%s/%s missing", res.path, files [i]);
    char ck [512];
    snprintf (ck, sizeof ck, "%s/checkpoints", s->dir);
    assert_false (ty_fixture_exists (ck, "job-cnn"));

    /* reloaded, the featurizer knows the image shape and the labels, and
     * model + featurizer score the val split as the run measured it */
    char path [TY_MODELDIR_PATH_MAX + 64], err [256] = "";
    snprintf (path, sizeof path, "%s/model.pt", res.path);
    ty_torch_model_t *m = NULL;
    if (ty_torch_load (path, 1, &m, err, sizeof err) != TY_OK)
        fail_msg ("load %s: %s", path, err);
    assert_true (ty_torch_weights_digest (m) == res.weights_digest);
    ty_batch_feat_t *feat = NULL;
    if (ty_batch_feat_load (res.path, &feat, err, sizeof err) != TY_OK)
        fail_msg ("feat load: %s", err);
    assert_int_equal (ty_batch_feat_input (feat), TY_BATCH_INPUT_IMAGE);
    assert_int_equal (ty_batch_feat_task (feat), TY_BATCH_TASK_SINGLE);
    assert_int_equal (ty_batch_feat_noutputs (feat), TTD_NCLASSES);
    assert_string_equal (ty_batch_feat_label (feat, 2), "blocks");
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_CNN);
    assert_int_equal (ty_batch_feat_model_params (feat, &p), TY_OK);
    assert_int_equal (p.cnn.height, TTD_IMG);
    assert_int_equal (p.cnn.width, TTD_IMG);
    assert_int_equal (p.cnn.channels, 1);
    assert_int_equal (p.cnn.nclasses, TTD_NCLASSES);

    ty_dataset_t *ds = NULL;
    assert_int_equal (ty_dataset_open (s->dir, "shapes", &ds), TY_OK);
    ty_batch_set_t *val = NULL;
    if (ty_batch_set_new (feat, ds, TY_SPLIT_VAL, 0, &val, err, sizeof err) != TY_OK)
        fail_msg ("val set: %s", err);
    size_t n = ty_batch_set_count (val);
    assert_int_equal (n, 160);
    uint64_t *idx = malloc (n * sizeof *idx);
    float *out = malloc (n * TTD_NCLASSES * sizeof *out);
    assert_non_null (idx);
    assert_non_null (out);
    for (size_t i = 0; i < n; i++)
        idx [i] = i;
    ty_torch_batch_t b;
    assert_int_equal (ty_batch_set_gather (val, idx, n, NULL, &b), TY_OK);
    assert_int_equal (ty_torch_predict (m, &b, out, n * TTD_NCLASSES), TY_OK);
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t j = 1; j < TTD_NCLASSES; j++)
            if (out [i * TTD_NCLASSES + (size_t) j] > out [i * TTD_NCLASSES + (size_t) best])
                best = j;
        correct += best == ty_batch_set_label (val, i);
    }
    assert_true (fabs ((double) correct / (double) n - res.best_metric) < 1e-9);
    free (idx);
    free (out);
    ty_batch_set_destroy (&val);
    ty_dataset_destroy (&ds);
    ty_batch_feat_destroy (&feat);
    ty_torch_destroy (&m);
}

/* With flip + crop augmentation and dropout (random draws in every step):
 * a crash after epoch 1 of 3 resumes bitwise. */
static void
test_cnn_resume_bitwise (void **state)
{
    s_t *s = *state;
    ttd_make_patterns (s->dir, "aug", 192, 64, 12);
    ttd_spec_t t;
    s_cnn_spec (&t, "aug", "augcnn", 3);
    ttd_param (&t, "augment_flip", "true");
    ttd_param (&t, "augment_crop", "2");
    ttd_param (&t, "dropout", "0.2");
    ty_fixture_train_resume_check (s, &t.train, "job-aug", 1);
}

/* Images are stored HWC (channels interleaved); the model takes NCHW
 * floats in [0, 1]. Checked value by value on 2x3 RGB images, so a wrong
 * layout cannot hide behind a network that learns anyway. */
static void
test_cnn_rgb_layout (void **state)
{
    s_t *s = *state;
    enum { H = 2, W = 3, C = 3, N = 4 };
    ty_dataset_writer_t *w = ttd_writer (s->dir, "rgb");
    uint8_t pix [N][H * W * C];
    for (int i = 0; i < N; i++) {
        for (int p = 0; p < H * W * C; p++)
            pix [i][p] = (uint8_t) (i * 50 + p * 3 + 1);
        Ty__Sample smp = TY__SAMPLE__INIT;
        Ty__Image img = TY__IMAGE__INIT;
        img.height = H;
        img.width = W;
        img.channels = C;
        img.pixels.data = pix [i];
        img.pixels.len = sizeof pix [i];
        char *labels [1] = { (char *) ttd_patterns [i % 2] };
        smp.image = &img;
        smp.labels = labels;
        smp.n_labels = 1;
        assert_int_equal (ty_dataset_writer_add (w, TY_SPLIT_TRAIN, &smp), TY_OK);
    }
    ttd_commit (&w, "image", ttd_patterns, 2, NULL);

    ty_dataset_t *ds = NULL;
    assert_int_equal (ty_dataset_open (s->dir, "rgb", &ds), TY_OK);
    ty_batch_opts_t opts;
    ty_batch_opts_init (&opts, TY_TORCH_CNN);
    ty_batch_feat_t *feat = NULL;
    ty_batch_set_t *set = NULL;
    char err [256] = "";
    if (ty_batch_feat_fit (&opts, ds, &feat, err, sizeof err) != TY_OK)
        fail_msg ("fit: %s", err);
    if (ty_batch_set_new (feat, ds, TY_SPLIT_TRAIN, 0, &set, err, sizeof err) != TY_OK)
        fail_msg ("set: %s", err);
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_CNN);
    assert_int_equal (ty_batch_feat_model_params (feat, &p), TY_OK);
    assert_int_equal (p.cnn.height, H);
    assert_int_equal (p.cnn.width, W);
    assert_int_equal (p.cnn.channels, C);
    /* samples 2 and 0, in that order */
    uint64_t idx [2] = { 2, 0 };
    ty_torch_batch_t b;
    assert_int_equal (ty_batch_set_gather (set, idx, 2, NULL, &b), TY_OK);
    assert_int_equal (b.n, 2);
    assert_non_null (b.x);
    assert_non_null (b.labels);
    assert_int_equal (b.labels [0], 0);
    assert_int_equal (b.labels [1], 0);
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float got = b.x [((k * C + c) * H + y) * W + x];
                    float want = pix [idx [k]][(y * W + x) * C + c] / 255.0f;
                    if (got != want)
                        fail_msg ("sample %d c%d y%d x%d: %g, want %g", k, c, y, x,
                                  (double) got, (double) want);
                }
    /* and the shim takes it: one step on that batch */
    p.cnn.depth = 1;
    p.cnn.filters = 4;
    ty_torch_model_t *m = NULL;
    if (ty_torch_new (&p, &m, err, sizeof err) != TY_OK)
        fail_msg ("new: %s", err);
    double loss = 0;
    assert_int_equal (ty_torch_train_step (m, &b, &loss), TY_OK);
    assert_true (isfinite (loss) && loss > 0);
    ty_torch_destroy (&m);
    ty_batch_set_destroy (&set);
    ty_batch_feat_destroy (&feat);
    ty_dataset_destroy (&ds);
}

/* ---- ncf ----------------------------------------------------------------------- */

/* Reads the interactions back (the real reader) and scores the val
 * positives by item popularity in the train split, with the protocol of
 * ty_train: each positive ranked among TY_TRAIN_HR_NEGATIVES items the
 * user never touched in train, a hit if fewer than TY_TRAIN_HR_K score
 * higher. Ties (popularity counts tie often) go the baseline's way, where
 * ty_train counts them against the model: a generous baseline makes
 * "beats it widely" the stronger claim. */
static double
s_popularity_hr (const char *data_dir, const char *name)
{
    ty_dataset_t *ds = NULL;
    assert_int_equal (ty_dataset_open (data_dir, name, &ds), TY_OK);
    static uint8_t seen [TTD_USERS][TTD_ITEMS];
    int count [TTD_ITEMS];
    memset (seen, 0, sizeof seen);
    memset (count, 0, sizeof count);
    size_t hits = 0, ranked = 0;
    uint64_t rng = 99;
    for (int pass = 0; pass < 2; pass++) {
        ty_split_t split = pass == 0 ? TY_SPLIT_TRAIN : TY_SPLIT_VAL;
        uint64_t n = ty_dataset_count (ds, split);
        for (uint64_t i = 0; i < n; i++) {
            ty_dataset_view_t v;
            Ty__Sample *smp = NULL;
            assert_int_equal (ty_dataset_get (ds, split, i, &v), TY_OK);
            assert_int_equal (ty_dataset_view_unpack (&v, &smp), TY_OK);
            assert_non_null (smp->interaction);
            int u = atoi (smp->interaction->user + 1), it = atoi (smp->interaction->item + 1);
            ty__sample__free_unpacked (smp, NULL);
            assert_true (u >= 0 && u < TTD_USERS && it >= 0 && it < TTD_ITEMS);
            if (pass == 0) {
                seen [u][it] = 1;
                count [it]++;
                continue;
            }
            int better = 0;
            for (int k = 0; k < TY_TRAIN_HR_NEGATIVES; k++) {
                int cand;
                do
                    cand = (int) (ttd_rand (&rng) % TTD_ITEMS);
                while (cand == it || seen [u][cand]);
                better += count [cand] > count [it];
            }
            hits += better < TY_TRAIN_HR_K;
            ranked++;
        }
    }
    ty_dataset_destroy (&ds);
    assert_true (ranked > 0);
    return (double) hits / (double) ranked;
}

static void
test_ncf_learns (void **state)
{
    s_t *s = *state;
    ttd_make_interactions (s->dir, "clicks", 21);
    double pop = s_popularity_hr (s->dir, "clicks");
    ttd_spec_t t;
    ttd_spec (&t, "clicks", "ncf", "recs");
    t.train.epochs = 8;
    t.train.dim = 16;
    t.train.negatives = 4;
    t.train.optimizer = "adam";
    t.train.lr = 0.01;
    t.train.batch_size = 128;
    t.train.threads = 1;
    t.train.seed = 5;
    ttd_param (&t, "mlp_dim", "16");
    ttd_param (&t, "hidden", "32,16");
    ty_train_result_t res;
    ty_fixture_train_must_run (s, &t.train, "job-ncf", &res);
    fprintf (stderr, "ncf: val HR@%d %.3f (item popularity %.3f) at epoch %d of %d, "
             "%lld parameters, %.2f s\n", TY_TRAIN_HR_K, res.best_metric, pop, res.best_epoch,
             res.epochs_run, (long long) res.param_count, res.seconds);
    assert_string_equal (res.metric, "hr10");
    assert_int_equal (res.train_samples, TTD_USERS * (TTD_PER_USER - 1));
    assert_true (res.best_metric >= pop + S_WIDE_MARGIN);
    assert_true (res.best_metric <= 1.0);

    /* the featurizer keeps the id maps and the negative ratio */
    char err [256] = "";
    ty_batch_feat_t *feat = NULL;
    if (ty_batch_feat_load (res.path, &feat, err, sizeof err) != TY_OK)
        fail_msg ("feat load: %s", err);
    assert_int_equal (ty_batch_feat_task (feat), TY_BATCH_TASK_RANKING);
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_NCF);
    assert_int_equal (ty_batch_feat_model_params (feat, &p), TY_OK);
    assert_int_equal (p.ncf.nusers, TTD_USERS);
    assert_true (p.ncf.nitems > TTD_ITEMS / 2 && p.ncf.nitems <= TTD_ITEMS);
    ty_batch_feat_destroy (&feat);
    assert_true (ty_fixture_exists (res.path, "model.pt"));
    assert_true (ty_fixture_exists (res.path, "lineage.json"));
}

/* Without negatives every target is 1, and with a high lr the sigmoid
 * saturates: every item of every user scores exactly 1.0f. Such a model
 * knows nothing; ties count against the positive (as in the evaluate
 * worker), so it scores next to nothing instead of ranking every positive
 * first (HR@10 = 1.0 before ties were counted). */
static void
test_ncf_degenerate_model_scores_nothing (void **state)
{
    s_t *s = *state;
    ttd_make_interactions (s->dir, "clicks0", 22);
    ttd_spec_t t;
    ttd_spec (&t, "clicks0", "ncf", "recs0");
    t.train.epochs = 3;
    t.train.optimizer = "adam";
    t.train.lr = 0.1;
    t.train.threads = 1;
    ttd_param (&t, "negatives", "0");
    ty_train_result_t res;
    ty_fixture_train_must_run (s, &t.train, "job-ncf0", &res);
    fprintf (stderr, "ncf without negatives: val HR@%d %.3f\n", TY_TRAIN_HR_K, res.best_metric);
    assert_true (res.best_metric < (double) TY_TRAIN_HR_K / (TY_TRAIN_HR_NEGATIVES + 1.0));
}

/* The negatives of an epoch come from (seed, epoch): a crash after epoch
 * 1 of 3 resumes with the same draws and ends bitwise equal. */
static void
test_ncf_resume_bitwise (void **state)
{
    s_t *s = *state;
    ttd_make_interactions (s->dir, "clicksr", 23);
    ttd_spec_t t;
    ttd_spec (&t, "clicksr", "ncf", "recsr");
    t.train.epochs = 3;
    t.train.negatives = 4;
    t.train.optimizer = "adam";
    t.train.lr = 0.01;
    t.train.threads = 1;
    t.train.seed = 9;
    ty_fixture_train_resume_check (s, &t.train, "job-ncfr", 1);
}

/* ---- mlp regression --------------------------------------------------------------- */

/* Val MSE of predicting the train mean of the target (or annotation
 * rating), read back with the real reader. */
static double
s_mean_baseline (const char *data_dir, const char *name)
{
    ty_dataset_t *ds = NULL;
    assert_int_equal (ty_dataset_open (data_dir, name, &ds), TY_OK);
    double mean = 0, mse = 0;
    for (int pass = 0; pass < 2; pass++) {
        ty_split_t split = pass == 0 ? TY_SPLIT_TRAIN : TY_SPLIT_VAL;
        uint64_t n = ty_dataset_count (ds, split);
        assert_true (n > 0);
        for (uint64_t i = 0; i < n; i++) {
            ty_dataset_view_t v;
            Ty__Sample *smp = NULL;
            assert_int_equal (ty_dataset_get (ds, split, i, &v), TY_OK);
            assert_int_equal (ty_dataset_view_unpack (&v, &smp), TY_OK);
            double y = smp->has_target ? smp->target : smp->annotation->rating;
            if (pass == 0)
                mean += y / (double) n;
            else
                mse += (y - mean) * (y - mean) / (double) n;
            ty__sample__free_unpacked (smp, NULL);
        }
    }
    ty_dataset_destroy (&ds);
    return mse;
}

/* Trains an mlp regressor on dataset `name`; returns its best val MSE. */
static double
s_regress (s_t *s, const char *name, const char *model, const char *job)
{
    ttd_spec_t t;
    ttd_spec (&t, name, "mlp", model);
    t.train.epochs = 15;
    t.train.optimizer = "adam";
    t.train.lr = 0.01;
    t.train.batch_size = 32;
    t.train.threads = 1;
    ttd_param (&t, "hidden", "32");
    ty_train_result_t res;
    ty_fixture_train_must_run (s, &t.train, job, &res);
    assert_string_equal (res.metric, "mse");

    char err [256] = "";
    ty_batch_feat_t *feat = NULL;
    if (ty_batch_feat_load (res.path, &feat, err, sizeof err) != TY_OK)
        fail_msg ("feat load: %s", err);
    assert_int_equal (ty_batch_feat_task (feat), TY_BATCH_TASK_REGRESSION);
    assert_int_equal (ty_batch_feat_input (feat), TY_BATCH_INPUT_DENSE);
    assert_int_equal (ty_batch_feat_noutputs (feat), 1);
    ty_batch_feat_destroy (&feat);
    return res.best_metric;
}

/* Dense features with a target field, and frame annotations (a rating in
 * [0, 1] per frame, with features): both regress far below the mean. */
static void
test_mlp_regression_learns (void **state)
{
    s_t *s = *state;
    ttd_make_regression (s->dir, "reg", 800, 200, 31);
    double base = s_mean_baseline (s->dir, "reg");
    double mse = s_regress (s, "reg", "regmlp", "job-reg");
    fprintf (stderr, "mlp regression (target): val MSE %.4f (train mean: %.4f)\n", mse, base);
    assert_true (mse < 0.2 * base);

    ttd_make_annotations (s->dir, "frames", 800, 200, 32, 1);
    base = s_mean_baseline (s->dir, "frames");
    mse = s_regress (s, "frames", "framemlp", "job-frames");
    fprintf (stderr, "mlp regression (ratings): val MSE %.4f (train mean: %.4f)\n", mse, base);
    assert_true (mse < 0.2 * base);
}

/* ---- wrong sample types ----------------------------------------------------------- */

static void
test_wrong_sample_type_per_kind (void **state)
{
    s_t *s = *state;
    ttd_make_text (s->dir, "txt", 20, 5, 41);
    ttd_make_patterns (s->dir, "img", 20, 5, 42);
    ttd_make_interactions (s->dir, "ia", 43);
    ttd_make_regression (s->dir, "dense", 20, 5, 44);
    ttd_make_annotations (s->dir, "bare", 20, 5, 45, 0);
    ttd_spec_t t;

    ttd_spec (&t, "txt", "cnn", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "holds text samples");
    ttd_spec (&t, "dense", "cnn", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "needs images");
    ttd_spec (&t, "txt", "ncf", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "needs interactions");
    ttd_spec (&t, "img", "ncf", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "holds image samples");
    ttd_spec (&t, "img", "mlp", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "holds image samples");
    ttd_spec (&t, "ia", "mlp", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "holds interaction samples");
    ttd_spec (&t, "ia", "textclf", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "holds interaction samples");
    ttd_spec (&t, "dense", "textclf", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "holds features samples");
    /* ratings without features: nothing for an mlp to regress from */
    ttd_spec (&t, "bare", "mlp", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "holds annotation samples");
    ttd_spec (&t, "bare", "cnn", "m");
    s_expect_fail (s, &t, TY_EINVAL, "wrong sample type", "holds annotation samples");

    /* one stray sample among images, and an image of another shape: the
     * message names the sample */
    {
        ty_dataset_writer_t *w = ttd_writer (s->dir, "mixed");
        ty_dataset_writer_t *w2 = ttd_writer (s->dir, "shapes");
        uint8_t pix [TTD_IMG * TTD_IMG];
        uint64_t rng = 46;
        for (int i = 0; i < 6; i++) {
            ttd_image (&rng, i % 2, pix);
            Ty__Sample smp = TY__SAMPLE__INIT;
            Ty__Image img = TY__IMAGE__INIT;
            img.height = img.width = TTD_IMG;
            img.channels = 1;
            img.pixels.data = pix;
            img.pixels.len = sizeof pix;
            char *labels [1] = { (char *) ttd_patterns [i % 2] };
            smp.labels = labels;
            smp.n_labels = 1;
            smp.image = &img;
            if (i == 4)             /* a 6x24 image: same bytes, another shape */
                img.height = TTD_IMG / 2, img.width = TTD_IMG * 2;
            assert_int_equal (ty_dataset_writer_add (w2, TY_SPLIT_TRAIN, &smp), TY_OK);
            if (i == 3) {
                smp.image = NULL;
                smp.text = "a caption, not an image";
            }
            else
                img.height = img.width = TTD_IMG;
            assert_int_equal (ty_dataset_writer_add (w, TY_SPLIT_TRAIN, &smp), TY_OK);
        }
        ttd_commit (&w, "image", ttd_patterns, 2, NULL);
        ttd_commit (&w2, "image", ttd_patterns, 2, NULL);
    }
    ttd_spec (&t, "mixed", "cnn", "m");
    s_expect_fail (s, &t, TY_EINVAL, "train sample 3 of dataset mixed@1 holds text",
                   "needs images");
    ttd_spec (&t, "shapes", "cnn", "m");
    s_expect_fail (s, &t, TY_EINVAL, "train sample 4: image 6x24x1", "12x12x1");

    /* a shift as large as the image: refused once the image shape is known */
    ttd_spec (&t, "img", "cnn", "m");
    ttd_param (&t, "augment_crop", "12");
    s_expect_fail (s, &t, TY_EINVAL, "augment_crop", NULL);

    /* none of these left a model or a checkpoint */
    char p [512];
    snprintf (p, sizeof p, "%s/models", s->dir);
    assert_false (ty_fixture_exists (p, "m/1"));
    snprintf (p, sizeof p, "%s/checkpoints", s->dir);
    assert_false (ty_fixture_exists (p, "job-bad"));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_cnn_learns, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_cnn_resume_bitwise, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_cnn_rgb_layout, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_ncf_learns, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_ncf_resume_bitwise, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_ncf_degenerate_model_scores_nothing, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_mlp_regression_learns, s_setup,
                                         ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_wrong_sample_type_per_kind, s_setup,
                                         ty_fixture_train_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

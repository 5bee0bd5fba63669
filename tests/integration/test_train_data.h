/*  test_train_data: small generated datasets for the train tests, written
 *  with the real dataset writer into a real LMDB under a temp data dir.
 *  Header-only (static functions); include after cmocka.h. */
#ifndef TEST_TRAIN_DATA_H
#define TEST_TRAIN_DATA_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.pb-c.h"
#include "ty_dataset.h"
#include "ty_error.h"

#define TTD_NCLASSES     4
#define TTD_KEYWORDS     6      /* words that belong to one class */
#define TTD_NOISE        40     /* words shared by every class */
#define TTD_MAJORITY     0.40   /* share of class 0: the majority baseline */

static const char *ttd_labels [TTD_NCLASSES] = { "sports", "tech", "food", "travel" };

static inline uint64_t
ttd_rand (uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Class 0 gets TTD_MAJORITY of the samples, the others share the rest. */
static inline int
ttd_class (uint64_t *rng)
{
    double u = (double) (ttd_rand (rng) >> 11) / 9007199254740992.0;
    if (u < TTD_MAJORITY)
        return 0;
    return 1 + (int) (ttd_rand (rng) % (TTD_NCLASSES - 1));
}

/* Two keywords of the class among five noise words, in random order. */
static inline void
ttd_text (uint64_t *rng, int cls, char *buf, size_t len)
{
    char words [7][24];
    int n = 0;
    for (int i = 0; i < 2; i++)
        snprintf (words [n++], sizeof words [0], "%s%d", ttd_labels [cls],
                  (int) (ttd_rand (rng) % TTD_KEYWORDS));
    for (int i = 0; i < 5; i++)
        snprintf (words [n++], sizeof words [0], "w%d", (int) (ttd_rand (rng) % TTD_NOISE));
    for (int i = n - 1; i > 0; i--) {
        int j = (int) (ttd_rand (rng) % (uint64_t) (i + 1));
        char t [24];
        memcpy (t, words [i], sizeof t);
        memcpy (words [i], words [j], sizeof t);
        memcpy (words [j], t, sizeof t);
    }
    size_t used = 0;
    buf [0] = '\0';
    for (int i = 0; i < n && used < len; i++)
        used += (size_t) snprintf (buf + used, len - used, "%s%s", i ? " " : "", words [i]);
}

static inline void
ttd_commit (ty_dataset_writer_t **w, const char *kind, const char *const *labels,
            size_t nlabels, uint64_t *version)
{
    Ty__DatasetMeta meta = TY__DATASET_META__INIT;
    meta.kind = (char *) kind;
    meta.labels = (char **) labels;
    meta.n_labels = nlabels;
    int rc = ty_dataset_writer_commit (w, &meta, version, NULL);
    if (rc != TY_OK)
        fail_msg ("dataset commit: %s", ty_strerror (rc));
}

static inline ty_dataset_writer_t *
ttd_writer (const char *data_dir, const char *name)
{
    ty_dataset_writer_t *w = NULL;
    int rc = ty_dataset_writer_new (data_dir, name, NULL, &w);
    if (rc != TY_OK)
        fail_msg ("dataset writer %s: %s", name, ty_strerror (rc));
    return w;
}

/* A text classification dataset: ntrain + nval samples, 4 classes. */
static inline uint64_t
ttd_make_text (const char *data_dir, const char *name, int ntrain, int nval, uint64_t seed)
{
    ty_dataset_writer_t *w = ttd_writer (data_dir, name);
    uint64_t rng = seed;
    for (int i = 0; i < ntrain + nval; i++) {
        char text [256];
        int cls = ttd_class (&rng);
        ttd_text (&rng, cls, text, sizeof text);
        Ty__Sample s = TY__SAMPLE__INIT;
        char *labels [1] = { (char *) ttd_labels [cls] };
        s.text = text;
        s.labels = labels;
        s.n_labels = 1;
        s.weight = 1.0f;
        int rc = ty_dataset_writer_add (w, i < ntrain ? TY_SPLIT_TRAIN : TY_SPLIT_VAL, &s);
        if (rc != TY_OK)
            fail_msg ("dataset add: %s", ty_strerror (rc));
    }
    uint64_t v = 0;
    ttd_commit (&w, "text", ttd_labels, TTD_NCLASSES, &v);
    return v;
}

/* Tiny 4x4 grey images (the wrong sample type for textclf). */
static inline uint64_t
ttd_make_images (const char *data_dir, const char *name, int n)
{
    ty_dataset_writer_t *w = ttd_writer (data_dir, name);
    uint8_t pixels [16];
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < 16; p++)
            pixels [p] = (uint8_t) (i * 7 + p);
        Ty__Sample s = TY__SAMPLE__INIT;
        Ty__Image img = TY__IMAGE__INIT;
        img.height = 4;
        img.width = 4;
        img.channels = 1;
        img.pixels.data = pixels;
        img.pixels.len = sizeof pixels;
        char *labels [1] = { (char *) ttd_labels [i % 2] };
        s.image = &img;
        s.labels = labels;
        s.n_labels = 1;
        if (ty_dataset_writer_add (w, TY_SPLIT_TRAIN, &s) != TY_OK)
            fail_msg ("dataset add");
    }
    uint64_t v = 0;
    ttd_commit (&w, "image", ttd_labels, 2, &v);
    return v;
}

/* Dense features, two classes; with nan_at >= 0 that train sample holds a NaN. */
static inline uint64_t
ttd_make_features (const char *data_dir, const char *name, int n, int nan_at)
{
    ty_dataset_writer_t *w = ttd_writer (data_dir, name);
    uint64_t rng = 7;
    for (int i = 0; i < n; i++) {
        float f [4];
        int cls = i % 2;
        for (int d = 0; d < 4; d++)
            f [d] = (float) ((double) (ttd_rand (&rng) % 1000) / 1000.0 + cls * (d == 0));
        if (i == nan_at)
            f [2] = NAN;
        Ty__Sample s = TY__SAMPLE__INIT;
        char *labels [1] = { (char *) ttd_labels [cls] };
        s.features = f;
        s.n_features = 4;
        s.labels = labels;
        s.n_labels = 1;
        if (ty_dataset_writer_add (w, TY_SPLIT_TRAIN, &s) != TY_OK)
            fail_msg ("dataset add");
    }
    uint64_t v = 0;
    ttd_commit (&w, "features", ttd_labels, 2, &v);
    return v;
}

/* A dataset with val samples but no train sample. */
static inline uint64_t
ttd_make_empty_train (const char *data_dir, const char *name)
{
    ty_dataset_writer_t *w = ttd_writer (data_dir, name);
    Ty__Sample s = TY__SAMPLE__INIT;
    char *labels [1] = { (char *) ttd_labels [0] };
    s.text = "only a val sample";
    s.labels = labels;
    s.n_labels = 1;
    if (ty_dataset_writer_add (w, TY_SPLIT_VAL, &s) != TY_OK)
        fail_msg ("dataset add");
    uint64_t v = 0;
    ttd_commit (&w, "text", ttd_labels, TTD_NCLASSES, &v);
    return v;
}

/* ---- images (cnn) ----------------------------------------------------------
 * TTD_IMG x TTD_IMG grey images of four pattern classes, each with a random
 * phase, random contrast and pixel noise, so no single pixel gives the
 * class away: horizontal bars, vertical bars, 3x3 blocks (a checkerboard),
 * diagonal stripes. Class 0 is TTD_MAJORITY of the samples. */
#define TTD_IMG          12
#define TTD_IMG_NOISE    40     /* +- grey levels of uniform noise */

static const char *ttd_patterns [TTD_NCLASSES] = { "hbars", "vbars", "blocks", "diag" };

static inline void
ttd_image (uint64_t *rng, int cls, uint8_t *pix)
{
    int phase = (int) (ttd_rand (rng) % 4), px = (int) (ttd_rand (rng) % 3);
    int lo = 30 + (int) (ttd_rand (rng) % 60), hi = 160 + (int) (ttd_rand (rng) % 60);
    for (int y = 0; y < TTD_IMG; y++)
        for (int x = 0; x < TTD_IMG; x++) {
            int on = 0;
            switch (cls) {
            case 0: on = (y + phase) % 4 < 2; break;
            case 1: on = (x + phase) % 4 < 2; break;
            case 2: on = ((x + px) / 3 + (y + phase) / 3) % 2; break;
            default: on = (x + y + phase) % 4 < 2; break;
            }
            int v = (on ? hi : lo) + (int) (ttd_rand (rng) % (2 * TTD_IMG_NOISE + 1))
                  - TTD_IMG_NOISE;
            pix [y * TTD_IMG + x] = (uint8_t) (v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

static inline uint64_t
ttd_make_patterns (const char *data_dir, const char *name, int ntrain, int nval, uint64_t seed)
{
    ty_dataset_writer_t *w = ttd_writer (data_dir, name);
    uint64_t rng = seed;
    uint8_t pix [TTD_IMG * TTD_IMG];
    for (int i = 0; i < ntrain + nval; i++) {
        int cls = ttd_class (&rng);
        ttd_image (&rng, cls, pix);
        Ty__Sample s = TY__SAMPLE__INIT;
        Ty__Image img = TY__IMAGE__INIT;
        img.height = TTD_IMG;
        img.width = TTD_IMG;
        img.channels = 1;
        img.pixels.data = pix;
        img.pixels.len = sizeof pix;
        char *labels [1] = { (char *) ttd_patterns [cls] };
        s.image = &img;
        s.labels = labels;
        s.n_labels = 1;
        s.weight = 1.0f;
        int rc = ty_dataset_writer_add (w, i < ntrain ? TY_SPLIT_TRAIN : TY_SPLIT_VAL, &s);
        if (rc != TY_OK)
            fail_msg ("dataset add: %s", ty_strerror (rc));
    }
    uint64_t v = 0;
    ttd_commit (&w, "image", ttd_patterns, TTD_NCLASSES, &v);
    return v;
}

/* ---- interactions (ncf) ------------------------------------------------------
 * TTD_USERS users and TTD_ITEMS items in TTD_GROUPS planted groups: a user
 * of group g interacts only with items of group g, TTD_PER_USER distinct
 * ones drawn with a skewed (popular-first) preference, so item popularity
 * is a real but weak signal. The last interaction of each user goes to val
 * (leave-one-out), the others to train. */
#define TTD_USERS        200
#define TTD_ITEMS        400
#define TTD_GROUPS       10
#define TTD_PER_USER     10

static inline int
ttd_group_item (uint64_t *rng, int g)
{
    int per = TTD_ITEMS / TTD_GROUPS;
    /* min of two uniform draws: low ranks are twice as likely as high ones */
    int a = (int) (ttd_rand (rng) % (uint64_t) per), b = (int) (ttd_rand (rng) % (uint64_t) per);
    return g * per + (a < b ? a : b);
}

static inline uint64_t
ttd_make_interactions (const char *data_dir, const char *name, uint64_t seed)
{
    ty_dataset_writer_t *w = ttd_writer (data_dir, name);
    uint64_t rng = seed;
    for (int u = 0; u < TTD_USERS; u++) {
        int g = u % TTD_GROUPS, items [TTD_PER_USER], n = 0;
        while (n < TTD_PER_USER) {
            int it = ttd_group_item (&rng, g), dup = 0;
            for (int k = 0; k < n; k++)
                dup |= items [k] == it;
            if (!dup)
                items [n++] = it;
        }
        for (int k = 0; k < n; k++) {
            char user [16], item [16];
            snprintf (user, sizeof user, "u%d", u);
            snprintf (item, sizeof item, "i%d", items [k]);
            Ty__Sample s = TY__SAMPLE__INIT;
            Ty__Interaction in = TY__INTERACTION__INIT;
            in.user = user;
            in.item = item;
            in.timestamp = k + 1;
            s.interaction = &in;
            s.weight = 1.0f;
            ty_split_t split = k + 1 < n ? TY_SPLIT_TRAIN : TY_SPLIT_VAL;
            int rc = ty_dataset_writer_add (w, split, &s);
            if (rc != TY_OK)
                fail_msg ("dataset add: %s", ty_strerror (rc));
        }
    }
    uint64_t v = 0;
    ttd_commit (&w, "interaction", NULL, 0, &v);
    return v;
}

/* ---- dense regression (mlp) --------------------------------------------------
 * TTD_REG_DIM features in [-1, 1] and a target with a linear part, an
 * interaction term and a little noise; no labels. */
#define TTD_REG_DIM      6
#define TTD_REG_NOISE    0.05

static inline double
ttd_uniform (uint64_t *rng)
{
    return (double) (ttd_rand (rng) >> 11) / 9007199254740992.0;
}

static inline double
ttd_reg_target (const float *f)
{
    return 1.0 + 0.8 * f [0] - 0.5 * f [1] + 0.3 * f [2] + 0.6 * f [3] * f [4];
}

static inline uint64_t
ttd_make_regression (const char *data_dir, const char *name, int ntrain, int nval, uint64_t seed)
{
    ty_dataset_writer_t *w = ttd_writer (data_dir, name);
    uint64_t rng = seed;
    for (int i = 0; i < ntrain + nval; i++) {
        float f [TTD_REG_DIM];
        for (int d = 0; d < TTD_REG_DIM; d++)
            f [d] = (float) (2.0 * ttd_uniform (&rng) - 1.0);
        Ty__Sample s = TY__SAMPLE__INIT;
        s.features = f;
        s.n_features = TTD_REG_DIM;
        s.target = ttd_reg_target (f) + TTD_REG_NOISE * (2.0 * ttd_uniform (&rng) - 1.0);
        s.has_target = 1;
        s.weight = 1.0f;
        int rc = ty_dataset_writer_add (w, i < ntrain ? TY_SPLIT_TRAIN : TY_SPLIT_VAL, &s);
        if (rc != TY_OK)
            fail_msg ("dataset add: %s", ty_strerror (rc));
    }
    uint64_t v = 0;
    ttd_commit (&w, "features", NULL, 0, &v);
    return v;
}

/* Frame annotations (workflow 002): a path and a rating in [0, 1] per
 * frame, with features describing the frame (with_features 0: without, the
 * wrong input for every model). The rating is a squashed function of the
 * features. */
static inline uint64_t
ttd_make_annotations (const char *data_dir, const char *name, int ntrain, int nval,
                      uint64_t seed, int with_features)
{
    ty_dataset_writer_t *w = ttd_writer (data_dir, name);
    uint64_t rng = seed;
    for (int i = 0; i < ntrain + nval; i++) {
        float f [TTD_REG_DIM];
        for (int d = 0; d < TTD_REG_DIM; d++)
            f [d] = (float) (2.0 * ttd_uniform (&rng) - 1.0);
        char path [32];
        snprintf (path, sizeof path, "frames/%05d.png", i);
        Ty__Sample s = TY__SAMPLE__INIT;
        Ty__Annotation a = TY__ANNOTATION__INIT;
        a.path = path;
        a.rating = 1.0 / (1.0 + exp (-2.0 * (ttd_reg_target (f) - 1.0)));
        s.annotation = &a;
        if (with_features) {
            s.features = f;
            s.n_features = TTD_REG_DIM;
        }
        s.weight = 1.0f;
        int rc = ty_dataset_writer_add (w, i < ntrain ? TY_SPLIT_TRAIN : TY_SPLIT_VAL, &s);
        if (rc != TY_OK)
            fail_msg ("dataset add: %s", ty_strerror (rc));
    }
    uint64_t v = 0;
    ttd_commit (&w, "annotation", NULL, 0, &v);
    return v;
}

/* A train spec on the caller's stack, with a few params map entries. */
#define TTD_MAX_PARAMS 8
typedef struct {
    Ty__JobSpec   spec;
    Ty__TrainSpec train;
    Ty__TrainSpec__ParamsEntry entries [TTD_MAX_PARAMS];
    Ty__TrainSpec__ParamsEntry *params [TTD_MAX_PARAMS];
} ttd_spec_t;

static inline void
ttd_spec (ttd_spec_t *t, const char *dataset, const char *kind, const char *name)
{
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__TrainSpec train = TY__TRAIN_SPEC__INIT;
    t->spec = spec;
    t->train = train;
    t->train.dataset = (char *) dataset;
    t->train.model_kind = (char *) kind;
    t->train.model_name = (char *) name;
    t->train.params = t->params;
    t->train.n_params = 0;
    t->spec.kind_case = TY__JOB_SPEC__KIND_TRAIN;
    t->spec.train = &t->train;
    t->spec.max_attempts = 3;
}

static inline void
ttd_param (ttd_spec_t *t, const char *key, const char *value)
{
    assert_true (t->train.n_params < TTD_MAX_PARAMS);
    Ty__TrainSpec__ParamsEntry e = TY__TRAIN_SPEC__PARAMS_ENTRY__INIT;
    size_t i = t->train.n_params++;
    t->entries [i] = e;
    t->entries [i].key = (char *) key;
    t->entries [i].value = (char *) value;
    t->params [i] = &t->entries [i];
}

/* The small, fast textclf the tests train: 1 thread, fixed seed. */
static inline void
ttd_textclf (ttd_spec_t *t, const char *dataset, const char *name, uint32_t epochs)
{
    ttd_spec (t, dataset, "textclf", name);
    t->train.epochs = epochs;
    t->train.dim = 16;
    t->train.bucket = 20000;
    t->train.word_ngrams = 2;
    t->train.lr = 0.5;
    t->train.batch_size = 16;
    t->train.threads = 1;
    t->train.seed = 42;
}

#endif

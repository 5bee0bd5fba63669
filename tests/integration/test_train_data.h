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

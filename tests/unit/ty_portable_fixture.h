/*  ty_portable_fixture: what the portable-model unit tests (test_portable,
 *  test_portable_quant, test_portable_retrain, test_onnx) share: a temp
 *  directory per group, small libtorch models built and trained through
 *  the shim, a model version directory as the train job leaves it, the
 *  runtime's files opened, the fortunes sample read.
 *
 *  Every helper fails the running cmocka test (fail_msg / assert_*) on an
 *  error instead of returning it: call them from a test only. Links the
 *  shim and the featurizer (ty_train), the runtime (trainyard_infer); not
 *  the writers (ty_portable, ty_onnx), which each test calls itself. */
#ifndef TY_PORTABLE_FIXTURE_H
#define TY_PORTABLE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ty_batch.h"
#include "ty_dataset.h"
#include "ty_infer.h"
#include "ty_tokenize.h"
#include "ty_torch.h"

/* ==== the temp directory ==================================================== */

/* Makes <dir>/<prefix>_XXXXXX, dir /dev/shm when writable (the corrupt-file
 * tests write a few thousand small files, which costs seconds on an overlay
 * /tmp), else /tmp. 0, or -1 as a cmocka group setup returns it. */
int ty_pfix_dir_new (const char *prefix);

/* cmocka group teardown: removes the directory and everything in it. */
int ty_pfix_teardown (void **state);

/* The directory ty_pfix_dir_new made. */
const char *ty_pfix_dir (void);

/* buf = <the directory>/name. */
void ty_pfix_path (char *buf, size_t len, const char *name);

/* ==== models ================================================================ */

/* Uniform in [0, 1) from the shim's generator. */
float ty_pfix_unif (uint64_t *rng);

/* ty_torch_new, failing the test with its message. */
ty_torch_model_t *ty_pfix_new (const ty_torch_params_t *p);

/* ty_infer_open, failing the test with its message. */
ty_infer_model_t *ty_pfix_open (const char *path);

/* `steps` Adam steps on n random samples of `in` features (seed 7) so no
 * weight is at its init: labels i % outs, or random targets when
 * regression. */
void ty_pfix_train_dense (ty_torch_model_t *m, size_t in, int64_t outs, bool regression,
                          size_t n, int steps);

/* The MLP test_portable and test_onnx both check: 12 -> 20 -> 9 -> 4
 * classes, or 2 values when regression; dropout 0.3 (off in eval mode:
 * neither the runtime nor the ONNX graph has it), lr 0.05; trained as
 * ty_pfix_train_dense (16 samples, 3 steps). */
ty_torch_model_t *ty_pfix_mlp (bool regression);

/* Their CNN: 11 x 9 x 3 images (odd: pooling floors), 4 filters, 3
 * classes, lr 0.01, `depth` blocks, dropout before the classifier;
 * trained as ty_pfix_mlp. */
ty_torch_model_t *ty_pfix_cnn (bool separable, int64_t depth, double dropout);

/* An NCF model with two MLP layers, lr 0.05. */
typedef struct {
    int64_t nusers, nitems, gmf_dim, mlp_dim;
    int64_t layers[2];
    size_t n;       /* training pairs, at most TY_PFIX_MAX_PAIRS */
    int steps;
} ty_pfix_ncf_t;

#define TY_PFIX_MAX_PAIRS 64

/* The pairs an NCF model was trained on; b points into the arrays, so the
 * struct is not to be copied. */
typedef struct {
    int64_t users[TY_PFIX_MAX_PAIRS], items[TY_PFIX_MAX_PAIRS];
    float targets[TY_PFIX_MAX_PAIRS];
    ty_torch_batch_t b;
} ty_pfix_pairs_t;

/* The model, trained `steps` Adam steps on s->n random pairs (seed 9),
 * targets alternating 0 / 1, which *pairs holds. */
ty_torch_model_t *ty_pfix_ncf (const ty_pfix_ncf_t *s, ty_pfix_pairs_t *pairs);

/* ==== a model version directory ========================================== */

/* The texts: 3 classes in turn (greek letters, numbers, colours, with case,
 * accents and punctuation), random words of each; the featurizer lower
 * case, bigrams. */
typedef struct {
    int nsamples;           /* texts in the dataset */
    int ntrain;             /* the first ntrain are train, the rest val */
    int nwords;             /* words a text */
    bool noise;             /* " noise " after the third word */
    int minn, maxn;         /* char n-grams (0, 0: none) */
    int64_t bucket;
} ty_pfix_version_opts_t;

typedef struct {
    char dir[512];          /* <the directory>/version */
    ty_torch_model_t *m;
    ty_batch_feat_t *feat;
    ty_batch_set_t *val;    /* the val split, encoded */
    ty_dataset_t *ds;
} ty_pfix_version_t;

/* A text dataset "texts" in LMDB in the directory, the featurizer fitted
 * and saved in v->dir as the train job does (feat.json + vocab.txt), a
 * textclf (dim 8, lr 0.5) trained 5 steps on the whole train split and
 * saved as model.pt beside them. */
void ty_pfix_version (const ty_pfix_version_opts_t *o, ty_pfix_version_t *v);

void ty_pfix_version_free (ty_pfix_version_t *v);

/* ==== the fortunes sample =================================================== */

typedef struct {
    char **text;
    char **labname;
    int64_t *label;         /* ids once the vocabulary is final */
    size_t n;
} ty_pfix_docs_t;

/* examples/data/fortunes-5.tsv at path: "label<TAB>text", a header line, the
 * labels in turn. Every fourth line is test (4 is prime to the 5 labels, so
 * the test split has them all), the rest train. *v: the vocabulary of the
 * train texts (lower case, punctuation split, bigrams, 100000 buckets),
 * final, and the label ids of both splits set from it. Free with
 * ty_pfix_docs_free and ty_vocab_destroy. The number of labels. */
int64_t ty_pfix_fortunes (const char *path, ty_vocab_t **v, ty_pfix_docs_t *train,
                          ty_pfix_docs_t *test);

void ty_pfix_docs_free (ty_pfix_docs_t *d);

/* The index of the largest of v[0..n), the first on ties. */
size_t ty_pfix_argmax (const float *v, size_t n);

#endif

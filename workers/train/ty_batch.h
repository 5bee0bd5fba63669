/*  ty_batch: dataset samples -> the libtorch shim's batch buffers.
 *
 *  Two objects:
 *    ty_batch_feat_t  the featurizer: what is learned from the train split
 *                     before training (textclf vocabulary, TF-IDF vocabulary
 *                     and IDF, the label map, the image shape, the user and
 *                     item id maps of ncf). Saved beside the model and loaded
 *                     by whoever predicts with it (evaluate, convert), so a
 *                     sample is encoded the same way everywhere.
 *    ty_batch_set_t   one split encoded once, compactly (token ids, sparse
 *                     TF-IDF, dense features, 8-bit pixels, user/item ids,
 *                     labels, targets, weights), from which mini-batches are
 *                     gathered in any order. Encoding once instead of every
 *                     epoch is what keeps a textclf epoch at libtorch speed.
 *
 *  Sample types per model kind (a sample of another type is refused with
 *  its index and what it holds):
 *    textclf  text + labels (one: softmax; several: multi-label)
 *    mlp      dense features, or text (-> TF-IDF); labels (classification)
 *             or a target / an annotation rating (regression)
 *    cnn      image + one label; every image of one shape
 *    ncf      interaction (user, item); negatives drawn per batch
 *
 *  Determinism: nothing here draws random numbers except ncf negatives,
 *  from an rng the caller owns (seeded per epoch), so a resumed epoch gets
 *  the batches an uninterrupted one would have had.
 *
 *  Not thread-safe: one thread per set (the gather buffers are the set's);
 *  a featurizer is read-only once fitted or loaded and may be shared.
 *
 *  Errors: TY_OK, TY_EINVAL (bad samples or options; the message names the
 *  problem), TY_ENOMEM, TY_EPROTO (a sample that does not decode, a bad
 *  featurizer file), the dataset's codes, errno for files.
 */
#ifndef TY_BATCH_H
#define TY_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ty_dataset.h"
#include "ty_negsample.h"
#include "ty_tokenize.h"
#include "ty_torch.h"

#define TY_BATCH_FORMAT_VERSION   1        /* feat.json written by _feat_save */
#define TY_BATCH_ERR_LEN          256      /* a message buffer that fits every message */
#define TY_BATCH_MAX_FEATURES_DEFAULT 1000 /* TF-IDF vocabulary cap (workflow 004) */
#define TY_BATCH_NEGATIVES_DEFAULT 4       /* ncf negatives per positive (workflow 003) */

/* What a model learns to do. */
typedef enum {
    TY_BATCH_TASK_SINGLE = 0,     /* one label per sample, softmax */
    TY_BATCH_TASK_MULTI  = 1,     /* several labels, one-vs-all sigmoid */
    TY_BATCH_TASK_REGRESSION = 2, /* one value per sample, MSE */
    TY_BATCH_TASK_RANKING = 3,    /* ncf: interaction probability */
} ty_batch_task_t;

/* How samples become inputs. */
typedef enum {
    TY_BATCH_INPUT_TOKENS = 0,    /* textclf: vocabulary + hashed n-gram ids */
    TY_BATCH_INPUT_DENSE  = 1,    /* mlp on Sample.features */
    TY_BATCH_INPUT_TFIDF  = 2,    /* mlp on text */
    TY_BATCH_INPUT_IMAGE  = 3,    /* cnn */
    TY_BATCH_INPUT_PAIRS  = 4,    /* ncf */
} ty_batch_input_t;

/* Which samples of a split a fit or an encoded set takes, by Sample.fold
 * (the k-fold number a prepare job with `folds: k` stores per train sample;
 * see storage/ty_split.h). All-zero is TY_BATCH_FOLDS_ALL, so a struct that
 * is zeroed or not set up at all takes every sample, as before folds. */
typedef enum {
    TY_BATCH_FOLDS_ALL    = 0,    /* every sample: the normal path, no fold test */
    TY_BATCH_FOLDS_ONLY   = 1,    /* only the samples of `fold` (a held-out fold) */
    TY_BATCH_FOLDS_EXCEPT = 2,    /* every sample but those of `fold` (the training folds) */
} ty_batch_folds_mode_t;

typedef struct {
    ty_batch_folds_mode_t mode;
    uint32_t fold;
} ty_batch_folds_t;

/* Checks that `fold` names a fold of ds: 0 <= fold < the dataset's folds.
 * TY_OK, or TY_EINVAL with err saying how many folds the dataset has ("no
 * folds" when it was prepared without them). param names the job parameter
 * in the message ("holdout_fold", "fold"). */
int  ty_batch_folds_check (ty_dataset_t *ds, const char *param, int64_t fold,
                           char *err, size_t errlen);

typedef struct {
    ty_torch_kind_t kind;
    ty_tok_opts_t   tok;          /* textclf and TF-IDF tokenization */
    int64_t max_features;         /* TF-IDF vocabulary cap, >= 1 */
    int     multilabel;           /* -1 = decide from the data, 0 no, 1 yes */
    int     regression;           /* mlp: -1 = decide from the data, 0 no, 1 yes */
    int     negatives;            /* ncf negatives per positive, >= 0 */
    ty_batch_folds_t fit_folds;   /* train samples the featurizer learns from (all) */
} ty_batch_opts_t;

/* Defaults for kind: fastText's tokenizer options, max_features 1000,
 * task from the data, 4 negatives. */
void ty_batch_opts_init (ty_batch_opts_t *opts, ty_torch_kind_t kind);

/* ---- featurizer ------------------------------------------------------------ */

typedef struct _ty_batch_feat_t ty_batch_feat_t;

/* Learns the featurizer from ds's train split, or from the samples of it
 * that opts->fit_folds selects (every sample taken is checked for the kind's
 * sample type; k-fold: the held-out fold's words, IDF and users are not
 * learned, so nothing of it leaks into the model). On TY_OK *self_p is new; on an error err says
 * why ("dataset d@1 holds image samples; textclf needs text (train sample
 * 0)"). Zero train samples is TY_EINVAL. */
int  ty_batch_feat_fit (const ty_batch_opts_t *opts, ty_dataset_t *ds,
                        ty_batch_feat_t **self_p, char *err, size_t errlen);
void ty_batch_feat_destroy (ty_batch_feat_t **self_p);

ty_batch_task_t  ty_batch_feat_task (const ty_batch_feat_t *self);
ty_batch_input_t ty_batch_feat_input (const ty_batch_feat_t *self);
/* Classes (single/multi), regression outputs (1) or 1 (ncf). */
int64_t ty_batch_feat_noutputs (const ty_batch_feat_t *self);
/* Class id -> label (borrowed, feat life); NULL if out of range. */
const char *ty_batch_feat_label (const ty_batch_feat_t *self, int64_t id);
/* The textclf vocabulary (NULL for other inputs); borrowed. */
const ty_vocab_t *ty_batch_feat_vocab (const ty_batch_feat_t *self);

/* Sets the data-dependent fields of params for this featurizer: textclf
 * nrows/nlabels/multilabel, mlp input_dim/noutputs/regression, cnn shape
 * and nclasses, ncf nusers/nitems. params->kind must be the feat's kind. */
int  ty_batch_feat_model_params (const ty_batch_feat_t *self, ty_torch_params_t *params);

/* Writes feat.json (+ vocab.txt for textclf and TF-IDF) into dir, each file
 * atomically. TY_OK or errno. */
int  ty_batch_feat_save (const ty_batch_feat_t *self, const char *dir);
/* Reads what _save wrote. TY_OK, errno, TY_EPROTO, TY_ENOMEM. */
int  ty_batch_feat_load (const char *dir, ty_batch_feat_t **self_p, char *err, size_t errlen);

/* ---- encoded splits -------------------------------------------------------- */

typedef struct _ty_batch_set_t ty_batch_set_t;

/* Encodes a split of ds (any dataset the feat fits: a later version, another
 * dataset of the same kind). Unknown labels or users/items of a split other
 * than the one fitted are skipped and counted (ty_batch_set_skipped).
 * max_bytes > 0: TY_EFULL as soon as the encoded set would exceed it. */
int  ty_batch_set_new (const ty_batch_feat_t *feat, ty_dataset_t *ds, ty_split_t split,
                       size_t max_bytes, ty_batch_set_t **self_p, char *err, size_t errlen);
/* The same restricted to the samples of the split that `folds` selects
 * (NULL: all, exactly ty_batch_set_new). Samples left out are counted by
 * ty_batch_set_folded_out, not by ty_batch_set_skipped. */
int  ty_batch_set_new_folds (const ty_batch_feat_t *feat, ty_dataset_t *ds, ty_split_t split,
                             const ty_batch_folds_t *folds, size_t max_bytes,
                             ty_batch_set_t **self_p, char *err, size_t errlen);
void ty_batch_set_destroy (ty_batch_set_t **self_p);

size_t   ty_batch_set_count (const ty_batch_set_t *self);
uint64_t ty_batch_set_skipped (const ty_batch_set_t *self);
/* Samples of the split left out by the fold selection (0 without one). */
uint64_t ty_batch_set_folded_out (const ty_batch_set_t *self);
/* Bytes held (encoded samples + gather buffers). */
size_t   ty_batch_set_bytes (const ty_batch_set_t *self);
/* Tokens (textclf ids) of the whole set: throughput figures. */
uint64_t ty_batch_set_tokens (const ty_batch_set_t *self);

/* Gathers samples idx[0..n) into *batch, whose buffers are the set's until
 * the next gather or destroy. ncf: each positive is followed by `negatives`
 * drawn with *rng (NULL: no negatives, targets 1); batch->n is then
 * n * (1 + negatives). TY_OK, TY_EINVAL (index out of range), TY_ENOMEM. */
int  ty_batch_set_gather (ty_batch_set_t *self, const uint64_t *idx, size_t n,
                          uint64_t *rng, ty_torch_batch_t *batch);

/* The true class of sample i (single-label), -1 otherwise. */
int64_t ty_batch_set_label (const ty_batch_set_t *self, size_t i);
/* Multi-label: sample i's labels (borrowed); *n gets their count. */
const int64_t *ty_batch_set_labels (const ty_batch_set_t *self, size_t i, size_t *n);
/* Regression target of sample i. */
float ty_batch_set_target (const ty_batch_set_t *self, size_t i);
/* ncf: sample i's user and item. */
void  ty_batch_set_pair (const ty_batch_set_t *self, size_t i, int64_t *user, int64_t *item);

/* ncf: the train positives (for negatives), fitted with the feat; NULL for
 * other kinds. Borrowed. */
const ty_negsample_t *ty_batch_feat_negsample (const ty_batch_feat_t *self);
int64_t ty_batch_feat_nitems (const ty_batch_feat_t *self);

#endif

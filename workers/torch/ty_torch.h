/*  ty_torch: the C face of libtorch. The four model kinds trainyard trains
 *  (textclf, mlp, cnn, ncf), their optimizers, a train step, prediction,
 *  save/load with optimizer state (resume), all behind an opaque handle.
 *
 *  It is the only door to C++ in the tree: no C++ exception crosses it.
 *  Every function that can fail returns TY_OK or a TY_E* code from
 *  common/ty_error.h and leaves a message: in the caller's buffer for
 *  ty_torch_new / ty_torch_load, in ty_torch_errstr (model) otherwise.
 *
 *  What it is not: it reads no datasets, tokenizes nothing (workers/text/),
 *  shuffles nothing. The caller owns the data and the sample order, which is
 *  what makes a resumed run equal an uninterrupted one: shuffle from C with
 *  a seeded RNG, per epoch.
 *
 *  Buffers: C owns every sample buffer. A train/predict call wraps them with
 *  torch::from_blob (no copy), reads them, never writes them and keeps no
 *  reference after it returns. They must stay valid and unchanged for the
 *  duration of the call only.
 *
 *  Threads: one model is not thread-safe (one thread at a time per handle).
 *  Different models may be used from different threads, but libtorch's
 *  intra-op thread count is process-wide: ty_torch_set_threads (and the
 *  `threads` parameter, applied at new/load) set it for the whole process,
 *  together with OpenBLAS's own count so the two never oversubscribe cores.
 *  On a 2-core machine more than one intra-op thread collapses under
 *  OpenMP spin-waiting; the default is 1.
 *
 *  Determinism: the weights are initialised from the model's own generator
 *  (seeded by `seed`, never the global one), dropout and augmentation draw
 *  from a generator re-seeded from (seed, step) at every step. So with
 *  1 thread the same seed, data and order give bitwise identical losses and
 *  weights, and a model saved after step k and loaded continues exactly as
 *  if it had never stopped. `deterministic` additionally asks libtorch for
 *  deterministic algorithms (an error if an op has none).
 */
#ifndef TY_TORCH_H
#define TY_TORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TY_TORCH_MAX_LAYERS   8      /* hidden layers of mlp / MLP tower of ncf */
#define TY_TORCH_ERRSTR_LEN   256    /* model error message buffer, bytes incl. NUL */
#define TY_TORCH_FORMAT_VERSION 1    /* checkpoint format written by ty_torch_save */

typedef enum {
    TY_TORCH_TEXTCLF = 1,   /* fastText-style: EmbeddingBag(mean) -> Linear */
    TY_TORCH_MLP     = 2,   /* Linear/ReLU/Dropout stack, CE or MSE */
    TY_TORCH_CNN     = 3,   /* small conv net, optional depthwise-separable blocks */
    TY_TORCH_NCF     = 4,   /* NeuMF: GMF + MLP towers, sigmoid output, BCE */
} ty_torch_kind_t;

/* For textclf, Adam and AdamW are lazy (sparse) over the embedding table:
 * a step updates the moments and weights of the rows its batch touched only
 * (PyTorch's SparseAdam, TensorFlow's LazyAdam); rows not in the batch keep
 * their weights and moments unchanged, with no momentum drift and no weight
 * decay until a batch touches them again. The linear layer and the other
 * kinds get the usual dense update. docs/training.md compares the two. */
typedef enum {
    TY_TORCH_SGD   = 1,     /* plain SGD; linear lr decay to 0 over total_steps */
    TY_TORCH_ADAM  = 2,     /* Adam, L2 weight decay; lazy over textclf's rows */
    TY_TORCH_ADAMW = 3,     /* AdamW, decoupled decay; lazy over textclf's rows */
} ty_torch_optim_t;

/* textclf: rows = vocabulary words + hash buckets (ty_vocab_nrows). */
typedef struct {
    int64_t nrows;          /* embedding rows, >= 1 */
    int64_t dim;            /* embedding size, >= 1 (fastText's -dim) */
    int64_t nlabels;        /* >= 2 single-label, >= 1 multi-label */
    bool    multilabel;     /* one-vs-all sigmoid + BCE instead of softmax + CE */
} ty_torch_textclf_t;

typedef struct {
    int64_t input_dim;                      /* features per sample, >= 1 */
    int     nhidden;                        /* 0..TY_TORCH_MAX_LAYERS */
    int64_t hidden[TY_TORCH_MAX_LAYERS];    /* sizes, each >= 1 */
    double  dropout;                        /* [0, 1), after each hidden ReLU */
    bool    regression;                     /* MSE on `noutputs` values, else CE */
    int64_t noutputs;                       /* classes (>= 2) or regression outputs (>= 1) */
} ty_torch_mlp_t;

typedef struct {
    int64_t height, width, channels;        /* input image, NCHW float */
    int     depth;                          /* conv blocks, 1..6; each halves h and w */
    int64_t filters;                        /* channels of the first block; doubles per block */
    bool    separable;                      /* depthwise 3x3 + pointwise 1x1 blocks */
    int64_t nclasses;                       /* >= 2 */
    bool    augment_flip;                   /* random horizontal flip in train steps */
    int     augment_crop_px;                /* random shift by up to this many pixels (0 = off) */
    double  dropout;                        /* before the classifier, [0, 1) */
} ty_torch_cnn_t;

typedef struct {
    int64_t nusers, nitems;                 /* id ranges [0, n) */
    int64_t gmf_dim;                        /* GMF embedding size */
    int64_t mlp_dim;                        /* MLP tower embedding size (per side) */
    int     nlayers;                        /* MLP tower layers, 0..TY_TORCH_MAX_LAYERS */
    int64_t layers[TY_TORCH_MAX_LAYERS];    /* sizes */
} ty_torch_ncf_t;

/* Everything that defines a model. Fill with ty_torch_params_init, then set
 * what differs. Only the struct of `kind` is read. Saved in checkpoints. */
typedef struct {
    ty_torch_kind_t    kind;
    ty_torch_textclf_t textclf;
    ty_torch_mlp_t     mlp;
    ty_torch_cnn_t     cnn;
    ty_torch_ncf_t     ncf;

    ty_torch_optim_t optim;
    double  lr;                 /* base learning rate, > 0 */
    double  weight_decay;       /* >= 0 (decoupled for AdamW, L2 otherwise) */
    int64_t total_steps;        /* SGD: lr falls linearly to 0 at this step (fastText); 0 = constant */
    int     threads;            /* intra-op threads, >= 1 (process-wide, see above) */
    uint64_t seed;
    bool    deterministic;      /* libtorch deterministic algorithms */
} ty_torch_params_t;

/* One mini-batch, C-owned, borrowed for the call. Set the fields the kind
 * uses, leave the others NULL/0:
 *   textclf  ids/nids/offsets; labels (single) or targets n x nlabels multi-hot
 *   mlp      x n x input_dim; labels (classification) or targets n x noutputs
 *   cnn      x n x channels x height x width (NCHW); labels
 *   ncf      users, items; targets n (1 = interaction, 0 = negative)
 * weights (optional, n) scales each sample's loss (confidence); the loss is
 * the weighted mean. predict ignores labels, targets and weights. */
typedef struct {
    int64_t n;                  /* samples, >= 1 */
    const int64_t *ids;         /* textclf: word/n-gram rows, all bags back to back */
    int64_t nids;
    const int64_t *offsets;     /* textclf: n starts into ids; bag i ends where i+1 starts */
    const float *x;
    const int64_t *users, *items;
    const int64_t *labels;
    const float *targets;
    const float *weights;
} ty_torch_batch_t;

typedef struct _ty_torch_model_t ty_torch_model_t;

/* Defaults for kind (fastText's for textclf: dim 100, lr 0.1, SGD), 1 thread,
 * seed 1. Unknown kinds get only the common defaults (ty_torch_new rejects them). */
void ty_torch_params_init (ty_torch_params_t *params, ty_torch_kind_t kind);

/* "textclf" etc.; "?" for an unknown kind. Static string. */
const char *ty_torch_kind_name (ty_torch_kind_t kind);
/* Name -> kind. TY_OK or TY_EINVAL. */
int ty_torch_kind_parse (const char *name, ty_torch_kind_t *kind);
const char *ty_torch_optim_name (ty_torch_optim_t optim);
int ty_torch_optim_parse (const char *name, ty_torch_optim_t *optim);

/* Checks params without building anything. TY_OK or TY_EINVAL with a message
 * naming the field ("textclf.dim must be >= 1"). err may be NULL. */
int ty_torch_params_check (const ty_torch_params_t *params, char *err, size_t errlen);

/* Builds a freshly initialised model and its optimizer. On success *model_p
 * is a new handle (free with ty_torch_destroy). On failure *model_p is NULL
 * and err (if not NULL) holds the reason. Errors: TY_EINVAL (bad params),
 * TY_ENOMEM, TY_EINTERNAL (libtorch failed). */
int ty_torch_new (const ty_torch_params_t *params, ty_torch_model_t **model_p,
                  char *err, size_t errlen);

/* NULL-safe, idempotent; nulls *model_p. */
void ty_torch_destroy (ty_torch_model_t **model_p);

/* The last error message of this model ("" if none). Borrowed until the
 * next call on the model. */
const char *ty_torch_errstr (const ty_torch_model_t *model);

/* The model's parameters (lr = base lr, threads as applied). Borrowed for
 * the model's lifetime. */
const ty_torch_params_t *ty_torch_params (const ty_torch_model_t *model);

/* One optimizer step on a batch (train mode: dropout, augmentation).
 * *loss (may be NULL) = the batch's mean loss before the step.
 * The gradient is that of the mean loss, except for textclf, where it is
 * the sum over the batch: fastText updates after every sample at the full
 * lr, and summing keeps its lr (0.1 - 1.0) meaningful for mini-batches.
 * Errors: TY_EINVAL (bad batch: missing buffer, id/label out of range,
 * NaN/inf in x or targets, bad offsets), TY_EINTERNAL. On an error the
 * weights are unchanged. */
int ty_torch_train_step (ty_torch_model_t *model, const ty_torch_batch_t *batch,
                         double *loss);

/* The batch's mean loss in eval mode, no update (validation loss). */
int ty_torch_eval_loss (ty_torch_model_t *model, const ty_torch_batch_t *batch,
                        double *loss);

/* Values per sample written by ty_torch_predict: nlabels / noutputs /
 * nclasses / 1 (ncf). */
int64_t ty_torch_output_width (const ty_torch_model_t *model);

/* Eval-mode forward pass into out (row-major n x output_width floats):
 * class probabilities (softmax; sigmoid per label for multi-label),
 * regression values, or ncf interaction probabilities. out_len is the
 * capacity in floats; TY_EFULL if smaller than n x output_width. */
int ty_torch_predict (ty_torch_model_t *model, const ty_torch_batch_t *batch,
                      float *out, size_t out_len);

/* Writes params, weights, optimizer state and step counter to path
 * atomically (path.tmp, fsync, rename): a crash leaves the old file or the
 * new one. Errors: errno values, TY_EINTERNAL. */
int ty_torch_save (ty_torch_model_t *model, const char *path);

/* Reads a file written by ty_torch_save and resumes exactly where it was
 * saved. threads > 0 replaces the saved thread count (it is a property of
 * the machine, not of the model). Errors: ENOENT etc., TY_EPROTO (not a
 * checkpoint or an unknown format version), TY_EINVAL, TY_EINTERNAL. */
int ty_torch_load (const char *path, int threads, ty_torch_model_t **model_p,
                   char *err, size_t errlen);

/* Trainable scalars. */
int64_t ty_torch_param_count (const ty_torch_model_t *model);

/* Optimizer steps taken so far (survives save/load). */
int64_t ty_torch_step (const ty_torch_model_t *model);

/* The learning rate the next step will use (SGD decay applied). */
double ty_torch_lr (const ty_torch_model_t *model);
/* Replace the base lr (> 0; TY_EINVAL otherwise). */
int ty_torch_set_lr (ty_torch_model_t *model, double lr);

/* 64-bit FNV-1a over every parameter's bytes in a fixed order: equal
 * digests = bitwise equal weights (resume and determinism checks). */
uint64_t ty_torch_weights_digest (const ty_torch_model_t *model);

/* Called once per parameter tensor by ty_torch_export_tensors: its name as
 * libtorch's named_parameters gives it ("emb.weight", "layers.0.bias"...),
 * its shape and its values, row-major contiguous floats. Everything is
 * borrowed for the call only. Return TY_OK to go on; any other status stops
 * the export and is returned by it. */
typedef int (ty_torch_tensor_fn) (void *arg, const char *name, int ndim,
                                  const int64_t *shape, const float *data);

/* Hands every parameter of the model to fn, in named_parameters order
 * (a converter writes them into another format). The weights are not
 * changed. Errors: TY_EINVAL (NULL model or fn), fn's status,
 * TY_EINTERNAL. */
int ty_torch_export_tensors (ty_torch_model_t *model, ty_torch_tensor_fn *fn, void *arg);

/* Process-wide intra-op threads for libtorch and OpenBLAS (>= 1). */
int ty_torch_set_threads (int threads);

/* Which BLAS libtorch's matrix products run on, e.g. "OpenBLAS 0.3.21 ...
 * SkylakeX" or "reference BLAS (libblas.so.3)". Static string. */
const char *ty_torch_blas_name (void);

#ifdef __cplusplus
}
#endif

#endif

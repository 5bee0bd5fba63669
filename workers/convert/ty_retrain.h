/*  ty_retrain: a textclf made smaller by training it again, for the convert
 *  job's pruning (ConvertSpec.max_rows) and smaller embeddings
 *  (ConvertSpec.dim), as fastText's `quantize -cutoff N -retrain` does.
 *
 *  Pruning alone (ty_portable's max_rows) drops the rows of smallest norm
 *  and leaves the classifier tuned for a bag that still held them: on
 *  short texts, where most of a bag is hashed n-grams, that costs points.
 *  Here the kept rows are chosen the same way (largest L2 norm of the
 *  trained model's embedding, ty_quantize_top_rows), then a model of
 *  exactly those rows (and `dim` columns) is trained on the train split
 *  through the libtorch shim, with the trained model's optimizer, learning
 *  rate and seed. An id whose row was dropped leaves the bag, as the
 *  runtime does with a ROWMAP, so training and prediction see the same
 *  bags.
 *
 *  The new model starts from the shim's fresh initialisation, not from the
 *  kept rows of the old one: the shim has no call that sets weights
 *  (ty_torch.h exports tensors only). The trained model's norms still pick
 *  the rows. With the model's own epochs this matches fastText's -retrain,
 *  which also runs the full -epoch count.
 *
 *  The samples come from the caller through a gather callback (the convert
 *  job: ty_batch_set_gather on the train split; a benchmark: its own
 *  encoded lines), so the featurizer and batching stay those of the train
 *  library.
 *
 *  Deterministic: the sample order per epoch comes from (seed, epoch).
 *  Not thread-safe per call; the models are the caller's.
 *
 *  Errors: TY_OK, TY_EINVAL (not a textclf, bad options; err says why),
 *  TY_ENOMEM, ECANCELED, the gather's code, TY_EINTERNAL (libtorch).
 */
#ifndef TY_RETRAIN_H
#define TY_RETRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "ty_torch.h"

#define TY_RETRAIN_BATCH_DEFAULT   8      /* samples per step when the caller knows none */
#define TY_RETRAIN_MAX_EPOCHS      1000

/* Fills *batch with samples idx[0..n) (ids in the trained model's id
 * space; labels or targets as for ty_torch_train_step). The buffers stay
 * the callee's until the next call. TY_OK or an error code. */
typedef int (ty_retrain_gather_fn) (void *arg, const uint64_t *idx, size_t n,
                                    ty_torch_batch_t *batch);

typedef struct {
    uint64_t max_rows;              /* keep at most this many rows; 0 = every row */
    int64_t  dim;                   /* embedding size of the new model; 0 = the model's */
    int      epochs;                /* 1..TY_RETRAIN_MAX_EPOCHS */
    int      batch_size;            /* 0: TY_RETRAIN_BATCH_DEFAULT */
    size_t   nsamples;              /* train samples the gather serves, >= 1 */
    ty_retrain_gather_fn *gather;
    void    *arg;                   /* for gather and the hooks */
    int    (*cancelled) (void *arg);                    /* may be NULL */
    void   (*progress) (void *arg, double fraction);    /* may be NULL; per epoch */
} ty_retrain_opts_t;

typedef struct {
    ty_torch_model_t *model;        /* the new model: nrows = kept rows (caller destroys) */
    uint32_t *rowmap;               /* kept original rows, ascending (caller frees) */
    size_t    nkept;
    int64_t   nrows;                /* the original id space (words + bucket) */
    double    last_loss;            /* mean train loss of the last epoch */
} ty_retrain_result_t;

/* Trains a smaller copy of model (a textclf; only read). On TY_OK *res
 * holds the new model and its row map; free with ty_retrain_result_free.
 * On failure *res is empty and err says why. */
int  ty_retrain_textclf (ty_torch_model_t *model, const ty_retrain_opts_t *opts,
                         ty_retrain_result_t *res, char *err, size_t errlen);

/* Frees what a result holds; NULL-safe, idempotent. */
void ty_retrain_result_free (ty_retrain_result_t *res);

#endif

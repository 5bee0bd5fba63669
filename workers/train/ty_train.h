/*  ty_train: one training run, from a TrainSpec to a model version.
 *
 *  ty_train_config_from_spec turns the submitted spec into a complete,
 *  checked configuration (defaults per model kind; params map > typed
 *  fields > defaults). ty_train_run then:
 *    - opens the dataset version, fits the featurizer on its train split and
 *      encodes train and val once (ty_batch.h);
 *    - resumes from <data>/checkpoints/<job id>/ when an earlier attempt
 *      left a checkpoint of the same configuration, or builds a new model;
 *    - per epoch: a seeded shuffle of the train set (seed, epoch), mini-batch
 *      steps (SGD with fastText's linear decay, Adam, AdamW), validation,
 *      the best model kept, early stopping after `patience` epochs without
 *      improvement, a checkpoint (ty_checkpoint.h);
 *    - reports progress per `progress_steps` steps and per epoch (epoch,
 *      step, loss, lr, samples/s, tokens/s, RSS, ETA, validation metric);
 *    - polls cancel between batches (a batch takes milliseconds), and checks
 *      RSS against the memory cap;
 *    - writes the best model as the next version of models/<name>/
 *      (ty_modeldir.h) and removes the checkpoints.
 *  With 1 thread and the same seed a resumed run ends with weights bitwise
 *  equal to an uninterrupted one: nothing that shapes the run lives outside
 *  the checkpoint or is not derived from (seed, epoch, step).
 *
 *  k-fold cross-validation (params.holdout_fold = i, on a dataset prepared
 *  with `folds: k`): the featurizer and the model learn from the train
 *  split's samples whose fold is not i; the samples of fold i are the
 *  validation set (best model, early stopping) instead of the val split.
 *  i must be in [0, k): anything else, or a dataset without folds, is
 *  TY_EINVAL naming the dataset's fold count. config.json and lineage.json
 *  record holdout_fold (config.json only when set: a run without it has the
 *  configuration, digest and checkpoints it always had). docs/kfold.md.
 *
 *  Validation metric (higher is better unless noted): single-label
 *  accuracy "acc", multi-label micro-F1 "f1", regression mean squared error
 *  "mse" (lower), ncf hit rate at 10 among 99 sampled negatives "hr10"
 *  (negatives tied with the positive rank above it, as in the evaluate
 *  worker: a model that scores everything alike gets 0, not 1);
 *  without a val split the train loss "loss" (lower).
 *
 *  Errors (err always says which problem): TY_EINVAL bad input (spec,
 *  dataset content, hyperparameters), TY_ENOTFOUND no such dataset,
 *  TY_EFULL over the memory cap, ECANCELED cancelled, TY_EINTERNAL libtorch
 *  failed, errno for files. Never exits or aborts the process.
 */
#ifndef TY_TRAIN_H
#define TY_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "job.pb-c.h"
#include "ty_batch.h"
#include "ty_checkpoint.h"
#include "ty_modeldir.h"
#include "ty_torch.h"

#define TY_TRAIN_ERR_LEN            512
#define TY_TRAIN_PROGRESS_STEPS     50      /* default steps between progress reports */
#define TY_TRAIN_EVAL_BATCH         512     /* samples per validation forward pass */
#define TY_TRAIN_HR_K               10      /* ncf: hit rate at this rank */
#define TY_TRAIN_HR_NEGATIVES       99      /* ncf: sampled items ranked with each positive */
#define TY_TRAIN_HR_MAX             2000    /* ncf: val positives ranked per epoch, at most */
#define TY_TRAIN_MAX_EPOCHS         100000
#define TY_TRAIN_MAX_BATCH          1000000

typedef struct {
    char    dataset [TY_DATASET_SPEC_MAX];
    char    name [TY_MODELDIR_NAME_MAX + 1];
    ty_torch_params_t torch;        /* kind, architecture, optimizer, lr, seed... */
    ty_batch_opts_t   batch;        /* tokenizer, TF-IDF, task, negatives */
    int     epochs;
    int     batch_size;
    int     patience;               /* 0: no early stopping */
    int64_t memory_cap_mb;          /* 0: none */
    int     progress_steps;
    int     threads_set;            /* threads came from the spec (else the worker's) */
    int     has_holdout;            /* k-fold: holdout_fold was given */
    uint32_t holdout_fold;          /* k-fold: the train split's fold held out for validation */
    const Ty__TrainSpec *spec;      /* borrowed: the params as submitted, for lineage */
} ty_train_config_t;

/* Fills cfg from spec. TY_OK or TY_EINVAL with err naming the field. */
int ty_train_config_from_spec (const Ty__TrainSpec *spec, ty_train_config_t *cfg,
                               char *err, size_t errlen);

/* How the run talks to its host (the worker runtime, a benchmark, a
 * test). Any hook may be NULL. Called on the training thread. */
typedef struct {
    void *arg;
    int  (*cancelled) (void *arg);
    void (*progress) (void *arg, double fraction, const char *phase, const char *message);
    void (*metric) (void *arg, const char *key, double value);
    void (*log) (void *arg, const char *message);
} ty_train_hooks_t;

typedef struct {
    const char *data_dir;
    const char *job_id;             /* names the checkpoint dir; lineage */
    unsigned    attempt;
    int         default_threads;    /* when the spec sets none; >= 1 */
    int         step_delay_ms;      /* tests only: sleep after each step */
    ty_train_hooks_t hooks;
} ty_train_env_t;

typedef struct {
    char     model [TY_MODELDIR_NAME_MAX + 24];   /* "name@version" */
    uint64_t version;
    char     path [TY_MODELDIR_PATH_MAX];
    char     metric [16];           /* acc, f1, mse, hr10, loss */
    double   best_metric;
    int      best_epoch;
    int      epochs_run;            /* epochs trained in total (all attempts) */
    int      resumed_from;          /* epochs done when this attempt started (0: fresh) */
    uint64_t weights_digest;        /* ty_torch_weights_digest of the saved model */
    int64_t  param_count;
    uint64_t train_samples;
    uint64_t val_samples;           /* the val split's, or the held-out fold's */
    int      holdout_fold;          /* k-fold: the fold held out; -1 without one */
    double   seconds;               /* this attempt's wall time */
} ty_train_result_t;

int ty_train_run (const ty_train_config_t *cfg, const ty_train_env_t *env,
                  ty_train_result_t *res, char *err, size_t errlen);

/* RSS of this process in bytes (from /proc/self/statm); 0 if unknown. */
uint64_t ty_train_rss_bytes (void);

#endif

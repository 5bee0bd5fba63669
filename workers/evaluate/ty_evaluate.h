/*  ty_evaluate: one evaluate job, from an EvaluateSpec to metrics.json.
 *
 *  Steps: resolve the model version (<data>/models/<name>/<version>/, the
 *  train worker's layout, workers/train/ty_modeldir.h) and load its weights
 *  and featurizer; open the dataset (the spec's, else the one named in the
 *  model's lineage.json) and check that it fits the model (label set, task,
 *  sample type); encode the split once and run batched inference; compute
 *  the metrics of the model's task with ty_metrics; time single-sample
 *  predictions (ty_latency); evaluate the quality gate (ty_gate) and the
 *  analysis (ty_analysis, with history.json for the loss trend and the
 *  final model's train and validation scores for the overfitting gap);
 *  write metrics.json beside the model (ty_report).
 *
 *  A failed gate is a result: the run still returns TY_OK. Bad input is an
 *  error with a message that names the problem: a model version that does
 *  not exist, an empty split, a dataset whose labels the model was not
 *  trained on, a dataset of another task or sample type.
 *
 *  Params (EvaluateSpec.params, text; an unknown key is an error):
 *    threads               intra-op threads for this job (default: the worker's)
 *    label_threshold       multi-label: probability from which a label is predicted (0.5)
 *    warmup                untimed predictions before the latency timings (20)
 *    fit_check_samples     at most this many train and val samples are predicted for
 *                          the overfitting gap (5000; 0 = skip that check)
 *    max_confusions        most common confusions kept in metrics.json (10)
 *    fold                  k-fold: evaluate on the train split's samples of this fold
 *                          (0 <= fold < the dataset's folds) instead of `split`, which
 *                          must then be "" or "train"; metrics.json says dataset.split
 *                          "train" with dataset.fold and dataset.folds (docs/kfold.md)
 *
 *  Thread rules: one run per thread; the libtorch thread count is
 *  process-wide (ty_torch.h).
 */
#ifndef TY_EVALUATE_H
#define TY_EVALUATE_H

#include <stddef.h>
#include <stdint.h>
#include "job.pb-c.h"

#define TY_EVALUATE_BATCH_DEFAULT       256
#define TY_EVALUATE_BATCH_MAX           65536
#define TY_EVALUATE_TOP_K_DEFAULT       10      /* HR@10 / NDCG@10: the NCF paper's figures */
#define TY_EVALUATE_NEGATIVES_DEFAULT   99      /* 1 positive among 100 items, as in the NCF paper */
#define TY_EVALUATE_NEGATIVES_MAX       1000
#define TY_EVALUATE_LABEL_THRESHOLD     0.5     /* sigmoid outputs: the usual cut */
#define TY_EVALUATE_FIT_CHECK_SAMPLES   5000    /* enough for a gap to +-1.5 points, cheap */
#define TY_EVALUATE_ERR_MAX             512

/* How the job reports while it runs; every hook may be NULL. */
typedef struct {
    void (*progress) (void *arg, double fraction, const char *phase, const char *message);
    void (*metric) (void *arg, const char *key, double value);
    void (*log) (void *arg, const char *line);
    int  (*cancelled) (void *arg);     /* non-zero: stop (the run returns ECANCELED) */
    void *arg;
} ty_evaluate_hooks_t;

typedef struct {
    const char *data_dir;    /* <data>: datasets/ and models/ under it */
    int         threads;     /* default intra-op threads (>= 1) */
    const char *job_id;      /* recorded in metrics.json; may be NULL */
    unsigned    attempt;
} ty_evaluate_opts_t;

struct cJSON;

/* Runs the evaluation. On TY_OK, *report_out (may be NULL) is the metrics
 * document (caller frees with cJSON_Delete), also written to
 * <model dir>/metrics.json, whose path goes to path_out (may be NULL,
 * else path_len bytes). On an error err holds the reason.
 * Errors: TY_EINVAL (bad spec, data that does not fit the model),
 * TY_ENOTFOUND (no such model, version or dataset), ECANCELED (the
 * cancelled hook said so), TY_ENOMEM, TY_EPROTO (an unreadable model
 * file), shim and dataset codes, errno. */
int ty_evaluate_run (const ty_evaluate_opts_t *opts, const Ty__EvaluateSpec *spec,
                     const ty_evaluate_hooks_t *hooks, struct cJSON **report_out,
                     char *path_out, size_t path_len, char *err, size_t errlen);

#endif

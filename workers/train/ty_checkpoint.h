/*  ty_checkpoint: the per-job checkpoint directory of a training run,
 *  <data>/checkpoints/<job id>/, which lets a retried attempt resume where
 *  the last one stopped and end with the result it would have had.
 *
 *  After each epoch E the train job calls ty_checkpoint_save, which writes
 *      epoch-E.pt    the model, its optimizer state and step (ty_torch_save)
 *      best-B.pt     the best model so far (a hard link to epoch-E.pt when
 *                    E is the new best: no second copy)
 *      state.json    format, spec digest, epochs done, best epoch and
 *                    metric, epochs without improvement, the history
 *  in that order, each atomically (temp + fsync + rename); state.json is the
 *  commit point and names the files it goes with, so a crash at any moment
 *  leaves the previous consistent state. Files no state names any more are
 *  removed afterwards.
 *
 *  The spec digest guards against resuming a different job's state under
 *  the same id (it never should happen; if it does, training starts over).
 *
 *  Not thread-safe per directory (one job owns it). Errors: TY_OK,
 *  TY_ENOTFOUND (no usable checkpoint), TY_EPROTO (a state.json that does
 *  not parse or has another format), TY_ENOMEM, shim codes, errno.
 */
#ifndef TY_CHECKPOINT_H
#define TY_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "ty_torch.h"

#define TY_CHECKPOINT_FORMAT_VERSION 1
#define TY_CHECKPOINT_DIGEST_LEN     17     /* 16 hex chars + NUL */

/* One epoch of the training history. */
typedef struct {
    int     epoch;            /* 1-based */
    double  train_loss;       /* mean over the epoch's batches */
    double  val_loss;         /* NAN without a val split */
    double  val_metric;       /* accuracy, micro-F1, MSE or HR@10 (see ty_train.h) */
    double  lr;               /* at the epoch's end */
    double  seconds;
    double  samples_per_s;
    int64_t step;             /* optimizer steps so far */
} ty_checkpoint_epoch_t;

typedef struct {
    char    digest [TY_CHECKPOINT_DIGEST_LEN];   /* of the job's config */
    int     epochs_done;
    int     best_epoch;       /* 0: none yet */
    double  best_metric;
    int     bad_epochs;       /* since the best one (early stopping) */
    ty_checkpoint_epoch_t *history;              /* epochs_done entries, malloc'd */
    size_t  nhistory, cap;
} ty_checkpoint_state_t;

/* Appends an epoch to state->history. TY_OK or TY_ENOMEM. */
int  ty_checkpoint_history_add (ty_checkpoint_state_t *state, const ty_checkpoint_epoch_t *e);
/* Frees the history; the struct is zeroed. */
void ty_checkpoint_state_free (ty_checkpoint_state_t *state);

/* <data>/checkpoints/<job id> into buf. TY_OK or ENAMETOOLONG. */
int  ty_checkpoint_dir (const char *data_dir, const char *job_id, char *buf, size_t len);

/* Saves epoch state->epochs_done of model into dir (created as needed);
 * improved: this epoch is state->best_epoch. TY_OK, errno, shim codes;
 * err gets a message. */
int  ty_checkpoint_save (const char *dir, const ty_checkpoint_state_t *state,
                         ty_torch_model_t *model, int improved, char *err, size_t errlen);

/* Reads dir/state.json; if its digest equals `digest`, loads the last
 * epoch's model (threads as ty_torch_load) into *model_p and fills *state.
 * TY_ENOTFOUND if there is no checkpoint or it belongs to another config. */
int  ty_checkpoint_load (const char *dir, const char *digest, int threads,
                         ty_checkpoint_state_t *state, ty_torch_model_t **model_p,
                         char *err, size_t errlen);

/* Path of the best model's file for a state (dir/best-B.pt). */
int  ty_checkpoint_best_path (const char *dir, const ty_checkpoint_state_t *state,
                              char *buf, size_t len);

/* rm -rf dir. TY_OK (also when it does not exist) or errno. */
int  ty_checkpoint_remove (const char *dir);

/* mkdir -p. TY_OK or errno. */
int  ty_checkpoint_mkdirs (const char *path, unsigned mode);

#endif

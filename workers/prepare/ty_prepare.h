/*  ty_prepare: the job function of trainyard-prepare.
 *
 *  A prepare job (proto/job.proto PrepareSpec) imports a file or folder as
 *  a new version of a dataset, or appends it to an existing version, through
 *  the dataset library (storage/ty_import.h, ty_validate.h, ty_split.h,
 *  ty_dataset.h). Phases, reported with ty_job_progress:
 *      reading     0.00 - 0.60   rows read and rejected so far (metrics
 *                                rows_read, rejected); the fraction uses
 *                                the row count estimated from the file's
 *                                first MiB (it stays put for a folder)
 *      validating  0.60 - 0.70   the dataset rules (min per class, bad-row share)
 *      writing     0.70 - 0.95   split, write to a temp dir (samples written)
 *                  0.95 - 1.00   sync, rename
 *  Cancel is checked between phases and inside the library's read and write
 *  calls (their progress callbacks, every TY_IMPORT_PROGRESS_ROWS rows, every
 *  TY_PREPARE_IMAGE_PROGRESS_ROWS images): a job cancelled before the
 *  rename leaves no version (the temp dir is removed); once the rename is
 *  done the version is whole and the job succeeds. A killed worker leaves at most a
 *  temp dir, which the next writer of that dataset removes.
 *
 *  Result outputs (all text):
 *      summary        one line: "news@3: 1200 samples (train 840, val 180,
 *                     test 180), 4 of 1204 rows rejected, 3 classes"
 *      dataset        "name@version"
 *      version        the version number
 *      parent         append: "name@parent"
 *      added          samples added by this version
 *      content_hash   sha256 hex of the content (ty_dataset.h)
 *      kind           text, features, image, annotation, interaction
 *      counts         JSON {"train": n, "val": n, "test": n, "calib": n}
 *      classes        JSON [{"label", "train", "val", "test", "calib"}, ...]
 *      report         the validation report, JSON (ty_validate_report_json);
 *                     also on failure, when rows were read
 *  A failure's reason names the rule and the class (from ty_validate).
 *
 *  Append checks the new rows with min_per_class and balance_share off by
 *  default (a feedback batch of three rows is normal; the parent passed the
 *  class rules); options in the spec turn them on.
 *
 *  The data directory is the worker's, not the spec's: <data>/datasets/...
 */
#ifndef TY_PREPARE_H
#define TY_PREPARE_H

#include "ty_runtime.h"

/* Where datasets live when neither --data nor the environment says. The
 * same rule as `trainyard dataset` and `trainyard up` (<state>/data). */
#define TY_PREPARE_DATA_ENV       "TRAINYARD_DATA"
#define TY_PREPARE_DATA_DEFAULT   "./.trainyard/data"

/* Fractions at which each phase starts (see above). */
#define TY_PREPARE_AT_READING     0.00
#define TY_PREPARE_AT_VALIDATING  0.60
#define TY_PREPARE_AT_WRITING     0.70
#define TY_PREPARE_AT_SYNCING     0.95
/* Images read between two progress reports (and cancel checks). */
#define TY_PREPARE_IMAGE_PROGRESS_ROWS 256
/* A pause is cut into slices this long so that a cancel is noticed. */
#define TY_PREPARE_PAUSE_SLICE_MS 10
/* Most bytes of the classes output; a dataset with more classes lists the
 * first ones and says how many were left out (Redis keeps the result). */
#define TY_PREPARE_CLASSES_MAX_BYTES (256u << 10)

typedef struct {
    const char *data_dir;     /* datasets under <data_dir>/datasets; borrowed */
    /* Fault-test seam: a cancellable pause of this many ms after validation
     * and before writing, so tests can cancel or kill a job mid-way with
     * certainty. 0 (production): none. */
    int         pause_ms;
} ty_prepare_opts_t;

/* The ty_job_fn of trainyard-prepare; arg is a const ty_prepare_opts_t *
 * that outlives the runtime. Thread-safe: jobs share nothing but the data
 * directory, whose writers serialize on a lock file per dataset. */
ty_job_rc_t ty_prepare_job (ty_job_t *job, void *arg);

#endif

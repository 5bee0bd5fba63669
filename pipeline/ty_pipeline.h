/*  ty_pipeline: pipeline files (YAML) -> a validated, expanded DAG of jobs,
 *  submitted to the broker as one atomic Submit.
 *
 *  A pipeline file names steps of the job types (prepare, train, evaluate,
 *  convert, noop) and of the control worker (promote, aggregate), their
 *  dependencies (`needs:`), conditions (`when:`) and fan-out (`foreach:`).
 *  The format is documented in docs/pipelines.md.
 *
 *  What this module does: parse (libyaml, keeping line numbers), map each
 *  step's keys onto its spec message generically through the protobuf-c
 *  descriptors, substitute `${params.x}` and `${item.k}` at load time,
 *  expand foreach branches, check the graph (missing needs, cycles,
 *  references to non-ancestors or to outputs a step type never produces,
 *  `when` grammar) and submit. What it does not do: resolve `${step.key}`
 *  references to other steps' outputs (the worker runtime does that from
 *  Assign.inputs) nor evaluate `when` (the runtime again).
 *
 *  Every error message names "file:line: field: what is wrong"; nothing is
 *  submitted when a file has any error. Not thread-safe per object; distinct
 *  objects may be used from distinct threads.
 */
#ifndef TY_PIPELINE_H
#define TY_PIPELINE_H

#include <stddef.h>
#include "ty_client.h"
#include "job.pb-c.h"

/* "p-" + a ty_id + NUL: the longest pipeline id this module makes. */
#define TY_PIPELINE_ID_LEN      (TY_ID_LEN + 2)
/* An error message long enough for a file name, a line, a field and a list
   of the fields that exist. */
#define TY_PIPELINE_ERR_LEN     512

typedef struct _ty_pipeline_t ty_pipeline_t;

/* Parses and validates a pipeline file; sets are "key=value" overrides of
 * the file's `params:` (used as ${params.key}); a set of a key that params
 * does not have is an error. err names the line and the field.
 * Returns TY_OK, TY_EINVAL (bad file, err says why), errno (cannot read),
 * TY_ENOMEM. *self_p is NULL on failure. */
int ty_pipeline_load (const char *path, const char *const *sets, size_t nsets,
                      ty_pipeline_t **self_p, char *err, size_t errlen);

/* The same from a string; name_for_errors stands for the file name. */
int ty_pipeline_load_string (const char *yaml, const char *name_for_errors,
                             const char *const *sets, size_t nsets,
                             ty_pipeline_t **self_p, char *err, size_t errlen);

/* NULL-safe, idempotent, nulls the caller's pointer. */
void ty_pipeline_destroy (ty_pipeline_t **self_p);

/* The file's `name:`. Borrowed until destroy. */
const char *ty_pipeline_name (const ty_pipeline_t *self);

/* Steps after expansion, in topological order (parents before children):
 * a foreach step counts once per branch. */
size_t ty_pipeline_nsteps (const ty_pipeline_t *self);

/* Name of step i, e.g. "train" or "train[fold=2]". Borrowed until destroy. */
const char *ty_pipeline_step_name (const ty_pipeline_t *self, size_t i);

/* The step's type word as written: prepare train evaluate convert noop
 * promote aggregate. Borrowed. */
const char *ty_pipeline_step_type (const ty_pipeline_t *self, size_t i);

/* The job spec of step i (its ${step.key} references left for the
 * runtime). Borrowed until destroy. */
const Ty__JobSpec *ty_pipeline_step_spec (const ty_pipeline_t *self, size_t i);

/* Parents of step i as indexes of earlier steps (< i). */
size_t ty_pipeline_step_nparents (const ty_pipeline_t *self, size_t i);
size_t ty_pipeline_step_parent (const ty_pipeline_t *self, size_t i, size_t j);

/* Submits every step as one atomic Submit; pipeline_id NULL = a new id
 * ("p-" + ty_id); idem_prefix non-NULL = each item gets the idempotency key
 * "<prefix>:<step>" (schedulers and triggers use this so a run is never
 * started twice). On success copies the pipeline id into pipeline_id_out
 * (id_cap >= TY_PIPELINE_ID_LEN + 1). Errors: those of
 * ty_client_submit_batch (err holds the broker's message), TY_EINVAL. */
int ty_pipeline_submit (const ty_pipeline_t *self, ty_client_t *client,
                        const char *pipeline_id, const char *idem_prefix,
                        int timeout_ms, char *pipeline_id_out, size_t id_cap,
                        char *err, size_t errlen);

/* Job ids of the last successful submit, in step order (TY_ID_LEN + 1 bytes
 * each); NULL before any. Borrowed until the next submit or destroy. */
const char *ty_pipeline_job_id (const ty_pipeline_t *self, size_t i);

/* ---- pipelines already submitted (ty_pipeline_remote.c) -------------------- */

/* Every job of pipeline `pipeline_id`, oldest first (after a retry a step
 * has several jobs: the older ones come first). *list_out: caller frees
 * with ty_client_free_msg. TY_ENOTFOUND if the pipeline has no job. */
int ty_pipeline_jobs (ty_client_t *client, const char *pipeline_id, int timeout_ms,
                      Ty__JobList **list_out, char *err, size_t errlen);

/* The newest job of each step, in submission (= needs) order, with
 * everything status gives (parents, outputs, metrics, error): one status
 * request per step. *list_out: caller frees with ty_client_free_msg. */
int ty_pipeline_steps (ty_client_t *client, const char *pipeline_id, int timeout_ms,
                       Ty__JobList **list_out, char *err, size_t errlen);

/* The step name of a job: JobInfo.step, or the part after "/" of its name
 * "<pipeline>/<step>" when the broker did not store the step. Borrowed. */
const char *ty_pipeline_job_step (const Ty__JobInfo *job);

/* Asks every unfinished job of the pipeline to stop; *ncancelled (may be
 * NULL) gets how many were asked. */
int ty_pipeline_cancel (ty_client_t *client, const char *pipeline_id, const char *reason,
                        int timeout_ms, size_t *ncancelled, char *err, size_t errlen);

/* Re-runs the steps whose latest job FAILED or was CANCELLED, with the same
 * specs (fetched from the broker), in one atomic Submit with the same
 * pipeline id and step names. A parent whose latest job SUCCEEDED is named
 * by that job's id and is never run again. TY_ESTATE if a job of the
 * pipeline has not ended yet, TY_ENOTFOUND if nothing needs a retry.
 * *nresubmitted (may be NULL) gets the number of jobs submitted. */
int ty_pipeline_retry (ty_client_t *client, const char *pipeline_id, int timeout_ms,
                       size_t *nresubmitted, char *err, size_t errlen);

#endif

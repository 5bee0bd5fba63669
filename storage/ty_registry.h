/*  ty_registry: the model registry. Which version of a model serves, which
 *  is on canary and for what share of devices, and who changed that, when
 *  and why.
 *
 *  One LMDB environment at <data>/registry/ (beside <data>/models/, not in
 *  it: "registry" is a valid model name). Named databases:
 *    meta      "format" -> the store's format version (decimal text)
 *    models    name -> model record (JSON): production, canary + rollout,
 *              default, the stack of earlier production versions (rollback)
 *    versions  name '\0' version (8 bytes big-endian) -> version record
 *              (JSON): stage, lineage, metrics summary and gate verdict,
 *              artifacts with sha256
 *    audit     seq (8 bytes big-endian) -> one change (JSON): when, what,
 *              who, why, and the model's production / canary after it.
 *              Append-only: nothing here ever rewrites or deletes a key.
 *  Every operation that changes anything is one write transaction that
 *  updates the records and appends its audit entry: a process killed at
 *  any moment leaves the state before or after the operation, never a mix,
 *  and the audit log's last entry for a model always matches its records.
 *  Several processes may use the registry at once (LMDB serializes
 *  writers through its lock file).
 *
 *  Stages: none -> staging | canary | production; the previous production
 *  version becomes archived. At most one production and one canary per
 *  model; staging is a label any number of versions may carry.
 *
 *  Records are JSON with "format": TY_REGISTRY_FORMAT_VERSION. Readers
 *  refuse a newer format (TY_EPROTO) and accept every older one; bumping
 *  the format comes with a reader for the old one and a test (STYLE.md
 *  rule 13).
 *
 *  Canary share: a device is on canary when
 *  ty_registry_device_bucket (id) < rollout. The bucket (FNV-1a 64 of the
 *  id, then a 64-bit finalizer mix, mod 100) is part of the contract: a
 *  device keeps its side as long as the rollout does not shrink past it,
 *  and raising the rollout only moves devices from production to canary.
 *  Never change the function.
 *
 *  Not thread-safe per handle (one handle per thread); fork-unsafe: a child
 *  must open its own handle, never use the parent's.
 *
 *  Errors: TY_OK; TY_EINVAL (bad name, spec or argument); TY_ENOTFOUND (no
 *  such model, version or stage holder); TY_ESTATE (refused: gate failed
 *  without force, deleting the production or default version, nothing to
 *  roll back to); TY_EPROTO (a record this build cannot read); TY_ENOMEM;
 *  TY_ESTORE (LMDB failed); errno. ty_registry_errstr says why in words.
 */
#ifndef TY_REGISTRY_H
#define TY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#define TY_REGISTRY_FORMAT_VERSION     1
#define TY_REGISTRY_DIR                "registry"    /* under the data dir */
#define TY_REGISTRY_NAME_MAX           64            /* as model and dataset names */
#define TY_REGISTRY_MAP_INITIAL_BYTES  (16u << 20)   /* records are ~KB; grows by 2x on MDB_MAP_FULL */
#define TY_REGISTRY_TEXT_MAX           1024          /* who / why are cut to this many bytes */
#define TY_REGISTRY_ERRSTR_MAX         256
#define TY_REGISTRY_ROLLOUT_MAX        100           /* percent */
#define TY_REGISTRY_BUCKETS            100           /* device buckets: rollout is in percent */
#define TY_REGISTRY_ROLLBACK_DEPTH     32            /* earlier production versions remembered */

struct cJSON;

typedef enum {
    TY_STAGE_NONE = 0,
    TY_STAGE_STAGING,
    TY_STAGE_CANARY,
    TY_STAGE_PRODUCTION,
    TY_STAGE_ARCHIVED,
    TY_STAGE_COUNT
} ty_stage_t;

/* "none", "staging", ... ; "?" when out of range. */
const char *ty_registry_stage_name (ty_stage_t stage);
/* TY_OK or TY_EINVAL. */
int ty_registry_stage_parse (const char *s, ty_stage_t *stage);

/* The canary bucket of a device id, 0..TY_REGISTRY_BUCKETS-1 (see above). */
unsigned ty_registry_device_bucket (const char *device_id);

/* Who makes a change and why; both go to the audit log. force lets promote
 * take a version whose gate failed (the audit entry says it was forced). */
typedef struct {
    const char *who;     /* e.g. "alice" or "job 01HX..."; NULL = "unknown" */
    const char *why;     /* free text; may be NULL */
    int         force;
} ty_registry_actor_t;

/* A model's pointers; version 0 = none. */
typedef struct {
    uint64_t production;
    uint64_t canary;
    int      rollout;          /* percent of devices on canary */
    uint64_t default_version;  /* the revert target */
    uint64_t latest;           /* highest registered version */
    size_t   n_versions;       /* registered versions */
    size_t   n_previous;       /* earlier production versions a rollback can reach */
} ty_registry_model_t;

typedef struct _ty_registry_t ty_registry_t;

/* Opens (creating as needed) <data_dir>/registry/. On TY_OK *self_p is the
 * caller's (ty_registry_destroy). Cleans reader slots of dead processes. */
int ty_registry_open (const char *data_dir, ty_registry_t **self_p);
/* NULL-safe, idempotent; nulls *self_p. */
void ty_registry_destroy (ty_registry_t **self_p);

/* Why the last call failed, in words ("" after success). Borrowed until
 * the next call on self. */
const char *ty_registry_errstr (const ty_registry_t *self);

/* ---- changes (one write transaction + one audit entry each) ------------- */

/* Registers <data>/models/<name>/<version>/: lineage (lineage.json and
 * config.json's trainyard_version), the metrics summary and gate verdict
 * (metrics.json, when the version has been evaluated), every file with
 * its size and sha256. A new version starts at stage none (audit
 * "register"); an already registered one keeps its stage and has its
 * metrics and artifacts refreshed (audit "refresh", only when something
 * changed). *created (may be NULL) = 1 for a new record. */
int ty_registry_register (ty_registry_t *self, const char *name, uint64_t version,
                          const ty_registry_actor_t *by, int *created);

/* For workers: opens the registry of data_dir, registers (or refreshes)
 * name@version with who = "job <job_id>", closes it. TY_OK or the error,
 * with its words in why_out. A worker logs a failure but does not fail its
 * job for it: the version directory is complete either way. */
int ty_registry_record (const char *data_dir, const char *name, uint64_t version,
                        const char *job_id, const char *why, char *why_out, size_t why_len);

/* Attaches what made artifact `file` (a name in the version directory,
 * e.g. "model-int8.tym") of a registered version and its figures: stored
 * in the version record as "notes": {file: {"target", "sha256" (of the
 * artifact as registered now, so a note is matched to the bytes it is
 * about), "time_ms", "who", "metrics": a copy of metrics (an object, may
 * be NULL)}}. A new note for the same file replaces the old one; register
 * and refresh keep notes. One write transaction with an audit entry
 * ("note"). The convert worker notes each conversion (target, accuracy
 * change, size ratio, latency). TY_OK, TY_EINVAL, TY_ENOTFOUND (no such
 * version, or the file is not among its artifacts: register first). */
int ty_registry_artifact_note (ty_registry_t *self, const char *name, uint64_t version,
                               const char *file, const char *target,
                               const struct cJSON *metrics, const ty_registry_actor_t *by);

/* Moves a registered version to stage. production: the old production
 * version becomes archived and is remembered for rollback; the version
 * stops being canary if it was. canary: rollout percent (0..100) of
 * devices get it; the old canary (if another) goes back to none; promoting
 * the canary again only changes its rollout. staging: a label. none /
 * archived: takes the version out of canary/staging (not production:
 * TY_ESTATE, roll back or promote another instead). staging, canary and
 * production refuse a version whose stored gate verdict is FAIL unless
 * by->force (TY_ESTATE). rollout is ignored for stages other than canary. */
int ty_registry_promote (ty_registry_t *self, const char *name, uint64_t version,
                         ty_stage_t stage, int rollout, const ty_registry_actor_t *by);

/* Production goes back to the most recent earlier production version still
 * registered; the current one becomes archived. *now (may be NULL) = the
 * new production version. TY_ESTATE when there is none to go back to. */
int ty_registry_rollback (ty_registry_t *self, const char *name,
                          const ty_registry_actor_t *by, uint64_t *now);

/* Names the version revert goes back to (version 0 clears it). */
int ty_registry_set_default (ty_registry_t *self, const char *name, uint64_t version,
                             const ty_registry_actor_t *by);

/* Makes the default version production (as promote does, gate check
 * included unless forced; rollback undoes it). TY_ENOTFOUND: no default. */
int ty_registry_revert (ty_registry_t *self, const char *name,
                        const ty_registry_actor_t *by);

/* Forgets a version (its directory under models/ is left alone).
 * TY_ESTATE for the production version or the default one. Deleting the
 * canary ends the canary. The last version of a model leaves the model
 * record (and its audit history) behind. */
int ty_registry_delete (ty_registry_t *self, const char *name, uint64_t version,
                        const ty_registry_actor_t *by);

/* ---- reading ------------------------------------------------------------- */

/* "M@production", "M@canary", "M@default", "M@latest", "M" (= latest),
 * "M@3", "M@serving" (device required: canary for the device's share,
 * production otherwise). name_out (TY_REGISTRY_NAME_MAX + 1 bytes, may be
 * NULL) and *version get the answer; *stage (may be NULL) its stage.
 * TY_ENOTFOUND: nothing holds that stage / no such version. */
int ty_registry_resolve (ty_registry_t *self, const char *spec, const char *device,
                         char *name_out, uint64_t *version, ty_stage_t *stage);

/* The model's pointers. TY_ENOTFOUND: never registered. */
int ty_registry_model (ty_registry_t *self, const char *name, ty_registry_model_t *out);

/* The stage (and *rollout for canary, else 0; may be NULL) of a version. */
int ty_registry_version_stage (ty_registry_t *self, const char *name, uint64_t version,
                               ty_stage_t *stage, int *rollout);

/* JSON documents for commands; each caller's (cJSON_Delete).
 *   models_json   [ {name, production, canary, rollout, default, latest,
 *                    versions} ... ] sorted by name
 *   model_json    the model record + "versions": [version records]
 *   version_json  one version record
 *   history_json  audit entries, oldest first; name NULL = every model */
int ty_registry_models_json (ty_registry_t *self, struct cJSON **out);
int ty_registry_model_json (ty_registry_t *self, const char *name, struct cJSON **out);
int ty_registry_version_json (ty_registry_t *self, const char *name, uint64_t version,
                              struct cJSON **out);
int ty_registry_history_json (ty_registry_t *self, const char *name, struct cJSON **out);

#endif

/*  ty_modeldir: model version directories, <data>/models/<name>/<version>/.
 *
 *  A version holds (written by the train job, read by evaluate/convert):
 *      model.pt       the weights (ty_torch_save format, ty_torch_load reads it)
 *      config.json    model kind, architecture and hyperparameters, task,
 *                     input shape, trainyard version
 *      feat.json      the featurizer (ty_batch.h): label map, tokenizer
 *                     options, image shape, user/item maps
 *      vocab.txt      textclf vocabulary / TF-IDF terms (ty_tokenize format)
 *      history.json   one entry per epoch: losses, validation metric, lr, time
 *      lineage.json   dataset name, version and content hash, job id and
 *                     attempt, the parameters as submitted, created time
 *
 *  Versions are 1, 2, 3, ... and immutable. A writer fills a temporary
 *  directory <data>/models/<name>/.tmp-<tag>-XXXXXX and publishes it with
 *  ty_modeldir_commit, which takes an flock on <data>/models/<name>/.lock,
 *  picks max(existing) + 1 and renames: a killed or cancelled job leaves no
 *  version, only a temp dir that the next writer of that name removes when
 *  its writer is gone (the temp dir name carries the writer's pid).
 *
 *  What it is not: the registry (stages, promote, rollback; storage/).
 *
 *  Errors: TY_OK, TY_EINVAL (bad name), TY_ENOTFOUND, errno.
 */
#ifndef TY_MODELDIR_H
#define TY_MODELDIR_H

#include <stddef.h>
#include <stdint.h>

#define TY_MODELDIR_NAME_MAX  64
#define TY_MODELDIR_PATH_MAX  4096

/* Files of a version (names, not paths). */
#define TY_MODELDIR_WEIGHTS   "model.pt"
#define TY_MODELDIR_CONFIG    "config.json"
#define TY_MODELDIR_HISTORY   "history.json"
#define TY_MODELDIR_LINEAGE   "lineage.json"

/* Same rules as dataset names: [A-Za-z0-9_.-]{1,64}, no "..". */
int ty_modeldir_name_check (const char *name, const char **why);

/* Creates <data>/models/<name>/ as needed and a fresh temp dir in it;
 * its path goes to tmp (TY_MODELDIR_PATH_MAX bytes). Removes temp dirs of
 * writers that are gone. */
int ty_modeldir_begin (const char *data_dir, const char *name, char *tmp, size_t len);

/* Publishes tmp as the next version of name. On TY_OK *version is its
 * number and path (may be NULL) its directory. tmp is gone either way
 * (on failure it is removed). */
int ty_modeldir_commit (const char *data_dir, const char *name, const char *tmp,
                        uint64_t *version, char *path, size_t len);

/* rm -rf tmp (an abandoned version). NULL-safe. */
void ty_modeldir_abort (const char *tmp);

/* Versions of name, ascending; *versions malloc'd (caller frees; NULL when
 * n = 0). TY_OK (n may be 0: no such model), errno. */
int ty_modeldir_versions (const char *data_dir, const char *name, uint64_t **versions,
                          size_t *n);

/* "name" (latest) or "name@N" -> the version's directory and number.
 * TY_OK, TY_EINVAL, TY_ENOTFOUND. */
int ty_modeldir_resolve (const char *data_dir, const char *spec, char *path, size_t len,
                         uint64_t *version);

/* Writes text to dir/file atomically (temp, fsync, rename). TY_OK or errno. */
int ty_modeldir_write (const char *dir, const char *file, const char *text);

#endif

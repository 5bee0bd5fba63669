/*  ty_launch: the scheduler's one seam to the pipeline library: load a
 *  pipeline file with its --set overrides and submit it as one atomic unit
 *  with an idempotency prefix, so a run started twice (two schedulers, a
 *  crash between submit and record) is one run in the broker.
 *
 *  Not thread-safe (the client is not).
 */
#ifndef TY_LAUNCH_H
#define TY_LAUNCH_H

#include <stddef.h>
#include "ty_client.h"

#define TY_LAUNCH_ERR_MAX   512
#define TY_LAUNCH_ID_MAX    48      /* "p-" + a ty_id + NUL, with room */

/* Loads and validates file. TY_OK or the load error (err: file:line: field). */
int ty_launch_check (const char *file, const char *const *sets, size_t nsets,
                     char *err, size_t errlen);

/* Loads file and submits it under pipeline_id with idempotency prefix
 * idem_prefix. TY_OK; TY_ETIMEDOUT or TY_ECONNECT when the broker did not
 * answer (retry later with the same id and prefix); any other code is a
 * final failure of this run (err says why: bad file, broker refused). */
int ty_launch_run (ty_client_t *client, const char *file, const char *const *sets,
                   size_t nsets, const char *pipeline_id, const char *idem_prefix,
                   int timeout_ms, char *err, size_t errlen);

/* 1 if the code means "the broker may come back: try again". */
int ty_launch_retryable (int rc);

#endif

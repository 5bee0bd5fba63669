/*  ty_launch: load + submit through the pipeline library (ty_launch.h).
 *  TY_NO_PIPELINE is defined by the build when the pipeline library is
 *  missing; then every run fails with a clear error instead of the scheduler
 *  not building at all. */
#include "ty_launch.h"
#include "ty_error.h"
#include <stdio.h>
#ifndef TY_NO_PIPELINE
#include "ty_pipeline.h"
#endif

int
ty_launch_retryable (int rc)
{
    return rc == TY_ETIMEDOUT || rc == TY_ECONNECT;
}

#ifndef TY_NO_PIPELINE

int
ty_launch_check (const char *file, const char *const *sets, size_t nsets,
                 char *err, size_t errlen)
{
    ty_pipeline_t *p = NULL;
    int rc = ty_pipeline_load (file, sets, nsets, &p, err, errlen);
    ty_pipeline_destroy (&p);
    return rc;
}

int
ty_launch_run (ty_client_t *client, const char *file, const char *const *sets,
               size_t nsets, const char *pipeline_id, const char *idem_prefix,
               int timeout_ms, char *err, size_t errlen)
{
    ty_pipeline_t *p = NULL;
    int rc = ty_pipeline_load (file, sets, nsets, &p, err, errlen);
    if (rc != TY_OK)
        return rc;
    char id_out [TY_LAUNCH_ID_MAX];
    rc = ty_pipeline_submit (p, client, pipeline_id, idem_prefix, timeout_ms,
                             id_out, sizeof id_out, err, errlen);
    ty_pipeline_destroy (&p);
    return rc;
}

#else

int
ty_launch_check (const char *file, const char *const *sets, size_t nsets,
                 char *err, size_t errlen)
{
    snprintf (err, errlen, "%s: cannot check: built without the pipeline library", file);
    return TY_EINTERNAL;
}

int
ty_launch_run (ty_client_t *client, const char *file, const char *const *sets,
               size_t nsets, const char *pipeline_id, const char *idem_prefix,
               int timeout_ms, char *err, size_t errlen)
{
    snprintf (err, errlen, "%s: cannot run: built without the pipeline library", file);
    return TY_EINTERNAL;
}

#endif

/*  trainyard-control: runs the control steps of pipelines (job type
 *  "control"): promote a model version in the registry, or aggregate the
 *  metrics of a foreach step's branches (workers/control/ty_control.h).
 *  Cheap jobs: one worker with a few slots serves a whole cluster. */
#include "ty_control.h"
#include "ty_error.h"
#include "ty_log.h"
#include "ty_runtime.h"
#include "ty_worker_main.h"
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *data_dir;
} s_ctx;

static void
s_sink_output (void *arg, const char *key, const char *value)
{
    ty_job_output (arg, key, value);
}

static void
s_sink_metric (void *arg, const char *key, double value)
{
    ty_job_metric (arg, key, value);
}

static ty_job_rc_t
s_control (ty_job_t *job, void *arg)
{
    s_ctx *ctx = arg;
    const Ty__JobSpec *spec = ty_job_spec (job);
    if (spec->kind_case != TY__JOB_SPEC__KIND_CONTROL || !spec->control)
        return ty_job_fail (job, "trainyard-control runs control jobs only");
    const Ty__ControlSpec *c = spec->control;
    ty_control_sink_t sink = { s_sink_output, s_sink_metric, job };
    char err [TY_CONTROL_ERR_MAX];
    int rc;
    if (!strcmp (c->action, "promote")) {
        ty_job_progress (job, 0, "promote", "%s", c->model);
        rc = ty_control_promote (c, ctx->data_dir, ty_job_id (job), &sink, err, sizeof err);
    }
    else
    if (!strcmp (c->action, "aggregate")) {
        size_t n;
        const Ty__Output *const *inputs = ty_job_inputs (job, &n);
        ty_job_progress (job, 0, "aggregate", "%zu inputs", n);
        rc = ty_control_aggregate (c, inputs, n, &sink, err, sizeof err);
    }
    else
        return ty_job_fail (job, "control: unknown action '%s' (promote, aggregate)",
                            c->action);
    if (rc != TY_OK)
        return ty_job_fail (job, "%s", err);
    ty_job_log (job, "control: %s done", c->action);
    ty_job_progress (job, 1, "done", NULL);
    return TY_JOB_OK;
}

static int
s_start (void *arg, const ty_worker_args_t *args)
{
    ((s_ctx *) arg)->data_dir = args->data_dir;
    return 0;
}

int
main (int argc, char **argv)
{
    s_ctx ctx = { NULL };
    ty_worker_def_t def = {
        .type = "control",
        .about = "A trainyard worker for pipeline control steps: promote a model version\n"
                 "in the registry, aggregate the metrics of a foreach step's branches\n"
                 "(mean, std, per-branch values, the best branch of a sweep).\n",
        .flags = TY_WORKER_DATA,
        .on_start = s_start,
        .fn = s_control,
        .ctx = &ctx,
    };
    return ty_worker_main (argc, argv, &def);
}

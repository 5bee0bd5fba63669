/*  ty_control: the pipeline control steps run by trainyard-control (job
 *  type "control", JobSpec.control = ControlSpec).
 *
 *  promote    moves a registered model version to a stage through the
 *             registry (storage/ty_registry.h), with the pipeline job as the
 *             actor ("pipeline:<job id>") and ControlSpec.reason as the why.
 *             A version whose quality gate failed is refused unless force
 *             (the registry's rule). Outputs: model ("name@version"),
 *             version, stage, rollout (canary), previous (the production
 *             version before, 0 = none).
 *
 *  aggregate  summarizes the branches of a foreach step from the job's
 *             inputs ("<step>[<branch>].<key>", e.g.
 *             "evaluate[fold=3].accuracy": step evaluate, branch fold=3,
 *             key accuracy). For each metric of ControlSpec.metrics (or,
 *             when empty, every key present and numeric in every branch):
 *             outputs and metrics "<m>.mean", "<m>.std" (sample standard
 *             deviation, n - 1; 0 for one branch) and "<m>.n"; output
 *             "folds", a JSON object {branch: {metric: value}} in branch
 *             order; "branches", their count. With best_by: the branch with
 *             the largest value of that metric (smallest with minimize;
 *             the first on a tie) -> outputs "best.branch", "best.value"
 *             and every input of that branch as "best.<step>.<key>"
 *             (e.g. best.train.model). A metric is "key" (the one step of
 *             the branches that has it) or "step.key" when several steps
 *             have the same key. A metric missing or not a number in some
 *             branch fails the step, naming the branch.
 *
 *  What it is not: the job plumbing. Both take the inputs and a sink, so
 *  they run the same in a worker and in a test.
 *
 *  Thread rules: no shared state; promote opens its own registry handle.
 */
#ifndef TY_CONTROL_H
#define TY_CONTROL_H

#include <stddef.h>
#include "job.pb-c.h"

#define TY_CONTROL_ACTOR_PREFIX  "pipeline:"   /* the registry's who: pipeline:<job id> */
#define TY_CONTROL_ERR_MAX       512
#define TY_CONTROL_OUTPUTS_MAX   250           /* under the runtime's 256 per job */

/* Where results go: ty_job_output / ty_job_metric in the worker. */
typedef struct {
    void (*output) (void *arg, const char *key, const char *value);
    void (*metric) (void *arg, const char *key, double value);
    void  *arg;
} ty_control_sink_t;

/* A parsed input key. "train[fold=2].model" -> step "train[fold=2]",
 * base "train", branch "fold=2", key "model"; "prepare.version" -> branch
 * "". Lengths into the key text (not NUL-terminated). 0, or -1 when the key
 * has no "." after the step. */
typedef struct {
    const char *step;   size_t step_len;
    const char *base;   size_t base_len;
    const char *branch; size_t branch_len;
    const char *key;    size_t key_len;
} ty_control_key_t;
int ty_control_key_parse (const char *text, ty_control_key_t *out);

/* The aggregate action. TY_OK, or TY_EINVAL (err: which metric, which
 * branch) / TY_ENOMEM. Nothing is written to the sink on failure. */
int ty_control_aggregate (const Ty__ControlSpec *spec, const Ty__Output *const *inputs,
                          size_t n, const ty_control_sink_t *sink, char *err, size_t errlen);

/* The promote action on the registry of data_dir, by job job_id. TY_OK, or
 * the registry's code (TY_ESTATE: refused, e.g. a failed gate; TY_ENOTFOUND:
 * no such model or version; TY_EINVAL) with its words in err. */
int ty_control_promote (const Ty__ControlSpec *spec, const char *data_dir, const char *job_id,
                        const ty_control_sink_t *sink, char *err, size_t errlen);

#endif

/*  trainyard convert: submit a convert job and follow it to its end.
 *
 *      trainyard convert --model newsclf@3 --to int8
 *      trainyard convert --model newsclf@production --to fp32 --max-rows 100000
 *
 *  The job (trainyard-convert, workers/convert/ty_convert.h) writes the
 *  artifact beside the model version (model.tym, model-fp16.tym,
 *  model-int8.tym or model.onnx) with a convert-<target>.json report, and
 *  the registry lists it with its sha256. Once the job has SUCCEEDED this
 *  prints the comparison with FP32 from the job's outputs (so it works
 *  when the workers' data directory is on another machine): sizes and
 *  their ratio, accuracy of each and the change in points, top-1
 *  agreement, single-sample latency p50/p99.
 *
 *  Exit codes as `watch`: 0 succeeded, 1 failed, 2 usage, 3 cancelled.
 */
#include "cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_PRIORITY     1000         /* proto/job.proto: 0..1000 */
#define S_MAX_ROWS_LIMIT   4000000000L  /* embedding rows: far above any bucket count */
#define S_LATENCY_MAX      100000       /* as the evaluate worker's benchmark */
#define S_DIM_MAX          65536        /* = the train worker's limit on dim */
#define S_EPOCHS_MAX       10000        /* retraining epochs: a sanity bound */
#define S_PARAMS_MAX       3            /* latency_samples, retrain_epochs, retrain */

static const char *s_targets [] = { "fp32", "fp16", "int8", "onnx" };

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard convert --model NAME[@V] --to TARGET [OPTIONS]\n"
        "\n"
        "Convert a model version for deployment (a job for trainyard-convert) and\n"
        "compare the result with FP32 on the test split: size, accuracy change,\n"
        "top-1 agreement, latency. The artifact lands beside the version:\n"
        "  fp32 model.tym   fp16 model-fp16.tym   int8 model-int8.tym\n"
        "  onnx model.onnx  (export and size only: no ONNX runtime here)\n"
        "\n"
        "  --model NAME[@V]      the version: NAME (latest), NAME@3, NAME@production,\n"
        "                        NAME@canary\n"
        "  --to TARGET           fp32, fp16, int8 or onnx\n"
        "  --max-rows N          textclf: keep at most N embedding rows (pruning), then\n"
        "                        retrain on them (like fastText's quantize -retrain)\n"
        "  --dim N               textclf: retrain with this smaller embedding size\n"
        "  --retrain-epochs N    epochs of that retraining (default: the version's own)\n"
        "  --no-retrain          prune by row norm only (not with --dim)\n"
        "  --dataset NAME[@V]    data to compare on (default: the training dataset)\n"
        "  --latency-samples N   single predictions timed per model (default 200)\n"
        "  --priority N          0..1000 (default 0)\n"
        "  --no-watch            print the job id and return\n"
        "  --json                the finished job (outputs, metrics) as JSON\n"
        "  -h, --help            this help\n");
}

static const char *
s_output (const Ty__JobInfo *job, const char *key)
{
    for (size_t i = 0; i < job->n_outputs; i++)
        if (job->outputs [i]->key && !strcmp (job->outputs [i]->key, key))
            return job->outputs [i]->value ? job->outputs [i]->value : "";
    return NULL;
}

static const char *
s_or (const char *v, const char *dflt)
{
    return v && *v ? v : dflt;
}

/* The comparison table from the job's outputs. */
static void
s_print_table (const Ty__JobInfo *job)
{
    const char *model = s_or (s_output (job, "model"), "?");
    const char *target = s_or (s_output (job, "target"), "?");
    const char *artifact = s_or (s_output (job, "artifact"), "?");
    printf ("%s -> %s\n  %s\n", model, target, artifact);
    printf ("  %-18s %14s %14s  %s\n", "", "fp32", target, "change");
    const char *fb = s_output (job, "fp32_bytes"), *b = s_output (job, "bytes");
    const char *ratio = s_output (job, "size_ratio");
    char change [64] = "";
    if (ratio)
        snprintf (change, sizeof change, "%.1f%% of fp32", 100.0 * strtod (ratio, NULL));
    printf ("  %-18s %14s %14s  %s\n", "size (bytes)", s_or (fb, "-"), s_or (b, "-"), change);
    const char *ev = s_output (job, "evaluated");
    if (!ev || strcmp (ev, "yes")) {
        printf ("  (%s)\n", s_or (ev, "not evaluated"));
    }
    else {
        const char *af = s_output (job, "accuracy_fp32"), *a = s_output (job, "accuracy");
        const char *pts = s_output (job, "accuracy_change_points");
        if (af || a) {
            snprintf (change, sizeof change, "%s%s", pts ? pts : "", pts ? " points" : "");
            printf ("  %-18s %14s %14s  %s\n", "accuracy", s_or (af, "-"), s_or (a, "-"), change);
        }
        printf ("  %-18s %14s %14s\n", "latency p50 (ms)", s_or (s_output (job, "p50_fp32_ms"), "-"),
                s_or (s_output (job, "p50_ms"), "-"));
        printf ("  %-18s %14s %14s\n", "latency p99 (ms)", s_or (s_output (job, "p99_fp32_ms"), "-"),
                s_or (s_output (job, "p99_ms"), "-"));
        const char *agree = s_output (job, "agreement_top1");
        printf ("  top-1 agreement    %.2f%% over %s test samples\n",
                agree ? 100.0 * strtod (agree, NULL) : 0.0, s_or (s_output (job, "n_samples"), "?"));
    }
    printf ("  sha256 %s\n", s_or (s_output (job, "sha256"), "?"));
    printf ("  report %s\n", s_or (s_output (job, "report"), "?"));
}

typedef struct {
    const char *model, *target, *dataset;
    long        max_rows, latency, priority, dim, retrain_epochs;
    int         no_watch, no_retrain;
} s_req_t;

static int
s_run (cmd_ctx_t *ctx, const s_req_t *req)
{
    Ty__ConvertSpec cv = TY__CONVERT_SPEC__INIT;
    cv.model = (char *) req->model;
    cv.target = (char *) req->target;
    cv.dataset = (char *) (req->dataset ? req->dataset : "");
    cv.max_rows = (uint64_t) req->max_rows;
    cv.dim = (uint32_t) req->dim;
    /* the knobs without a typed field go in params (workers/convert/ty_convert.h) */
    Ty__ConvertSpec__ParamsEntry ev [S_PARAMS_MAX];
    Ty__ConvertSpec__ParamsEntry *eptr [S_PARAMS_MAX];
    char latency [32], epochs [32];
    size_t np = 0;
    if (req->latency) {
        snprintf (latency, sizeof latency, "%ld", req->latency);
        ty__convert_spec__params_entry__init (&ev [np]);
        ev [np].key = "latency_samples";
        ev [np++].value = latency;
    }
    if (req->retrain_epochs) {
        snprintf (epochs, sizeof epochs, "%ld", req->retrain_epochs);
        ty__convert_spec__params_entry__init (&ev [np]);
        ev [np].key = "retrain_epochs";
        ev [np++].value = epochs;
    }
    if (req->no_retrain) {
        ty__convert_spec__params_entry__init (&ev [np]);
        ev [np].key = "retrain";
        ev [np++].value = "0";
    }
    for (size_t i = 0; i < np; i++)
        eptr [i] = &ev [i];
    cv.params = np ? eptr : NULL;
    cv.n_params = np;
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    spec.kind_case = TY__JOB_SPEC__KIND_CONVERT;
    spec.convert = &cv;
    spec.priority = (uint32_t) req->priority;
    char label [192];
    snprintf (label, sizeof label, "convert %s to %s", req->model, req->target);
    spec.name = label;

    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    char id [TY_ID_LEN + 1];
    int exit_code = TY_CMD_EXIT_OK;
    int rc = ty_client_submit (client, &spec, NULL, 0, NULL, ctx->timeout_ms, id, NULL);
    if (rc != TY_OK) {
        exit_code = cmd_client_error (client, rc, "submit convert");
        goto done;
    }
    if (req->no_watch) {
        if (ctx->json)
            printf ("{\"job_id\":\"%s\"}\n", id);
        else
            puts (id);
        goto done;
    }
    if (!ctx->json)
        fprintf (stderr, "trainyard: job %s: %s\n", id, label);
    char *ids [1] = { id };
    exit_code = cmd_watch_jobs (ctx, client, ids, 1, 0);
    if (exit_code != TY_CMD_EXIT_OK)
        goto done;          /* failed (reason printed), cancelled or interrupted */
    Ty__JobInfo *info = NULL;
    rc = ty_client_status (client, id, ctx->timeout_ms, &info);
    if (rc != TY_OK) {
        exit_code = cmd_client_error (client, rc, "status %s", id);
        goto done;
    }
    if (ctx->json)
        exit_code = cmd_json_print (cmd_json_job (info));
    else
        s_print_table (info);
    ty_client_free_msg (info);
done:
    ty_client_destroy (&client);
    return exit_code;
}

int
cmd_convert (cmd_ctx_t *ctx, int argc, char **argv)
{
    const char *cmd = "convert";
    enum { OPT_MODEL = 256, OPT_TO, OPT_MAX_ROWS, OPT_DATASET, OPT_LATENCY, OPT_PRIO,
           OPT_NO_WATCH, OPT_JSON, OPT_DIM, OPT_RETRAIN_EPOCHS, OPT_NO_RETRAIN };
    static const struct option opts [] = {
        { "model",           required_argument, NULL, OPT_MODEL },
        { "to",              required_argument, NULL, OPT_TO },
        { "max-rows",        required_argument, NULL, OPT_MAX_ROWS },
        { "dim",             required_argument, NULL, OPT_DIM },
        { "retrain-epochs",  required_argument, NULL, OPT_RETRAIN_EPOCHS },
        { "no-retrain",      no_argument,       NULL, OPT_NO_RETRAIN },
        { "dataset",         required_argument, NULL, OPT_DATASET },
        { "latency-samples", required_argument, NULL, OPT_LATENCY },
        { "priority",        required_argument, NULL, OPT_PRIO },
        { "no-watch",        no_argument,       NULL, OPT_NO_WATCH },
        { "json",            no_argument,       NULL, OPT_JSON },
        { "help",            no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    s_req_t req;
    memset (&req, 0, sizeof req);
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_MODEL:    req.model = optarg; break;
        case OPT_TO:       req.target = optarg; break;
        case OPT_DATASET:  req.dataset = optarg; break;
        case OPT_NO_WATCH: req.no_watch = 1; break;
        case OPT_NO_RETRAIN: req.no_retrain = 1; break;
        case OPT_DIM:
            if (cmd_parse_long (optarg, 1, S_DIM_MAX, &req.dim))
                return cmd_usage_error (cmd, "--dim: 1 to %d, not '%s'", S_DIM_MAX, optarg);
            break;
        case OPT_RETRAIN_EPOCHS:
            if (cmd_parse_long (optarg, 1, S_EPOCHS_MAX, &req.retrain_epochs))
                return cmd_usage_error (cmd, "--retrain-epochs: 1 to %d, not '%s'", S_EPOCHS_MAX,
                                        optarg);
            break;
        case OPT_JSON:     ctx->json = 1; break;
        case OPT_MAX_ROWS:
            if (cmd_parse_long (optarg, 1, S_MAX_ROWS_LIMIT, &req.max_rows))
                return cmd_usage_error (cmd, "--max-rows: a number of rows >= 1, not '%s'", optarg);
            break;
        case OPT_LATENCY:
            if (cmd_parse_long (optarg, 1, S_LATENCY_MAX, &req.latency))
                return cmd_usage_error (cmd, "--latency-samples: 1 to %d", S_LATENCY_MAX);
            break;
        case OPT_PRIO:
            if (cmd_parse_long (optarg, 0, S_MAX_PRIORITY, &req.priority))
                return cmd_usage_error (cmd, "--priority: 0 to %d", S_MAX_PRIORITY);
            break;
        case 'h':
            s_usage (stdout);
            return TY_CMD_EXIT_OK;
        default:
            return cmd_getopt_error (cmd, c, argv);
        }
    }
    if (optind < argc)
        return cmd_usage_error (cmd, "unexpected argument '%s'", argv [optind]);
    if (!req.model || !*req.model)
        return cmd_usage_error (cmd, "--model NAME[@VERSION] is required");
    if (!req.target || !*req.target)
        return cmd_usage_error (cmd, "--to fp32|fp16|int8|onnx is required");
    int known = 0;
    for (size_t i = 0; i < sizeof s_targets / sizeof s_targets [0]; i++)
        known |= !strcmp (req.target, s_targets [i]);
    if (!known)
        return cmd_usage_error (cmd, "--to: fp32, fp16, int8 or onnx, not '%s'", req.target);
    if ((req.max_rows || req.dim || req.retrain_epochs || req.no_retrain)
        && !strcmp (req.target, "onnx"))
        return cmd_usage_error (cmd, "--max-rows, --dim and retraining apply to fp32, fp16 "
                                "and int8, not onnx");
    if (req.no_retrain && (req.dim || req.retrain_epochs))
        return cmd_usage_error (cmd, "--no-retrain contradicts --dim and --retrain-epochs");
    return s_run (ctx, &req);
}

/*  trainyard submit TYPE [options]: submit jobs and print their ids.
 *
 *  The options shared by every job type (priority, attempts, parents,
 *  idempotency key, count, watch) are parsed here once; each type adds its
 *  own spec options through a row of s_types. Only noop exists today;
 *  prepare/train/evaluate/convert get their rows when their workers land.
 *
 *  --count N sends N copies in ONE ty_client_submit_batch: all are accepted
 *  or none is, and with --key each copy gets the key "KEY.i" so a retried
 *  command re-finds all N instead of creating N more.
 */
#include "cmd.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_PRIORITY      1000     /* proto/job.proto: 0..1000 */
#define S_MAX_ATTEMPTS      1000
#define S_MAX_COUNT         100000   /* one batch; the broker caps message size anyway */
#define S_MAX_KEY_LEN       200      /* idempotency keys become Redis key names */

/* Everything the command line says about the jobs, whatever their type. */
typedef struct {
    const char *type;
    /* noop */
    long        sleep_ms;
    int         fail;
    const char *fail_message;
    int         crash;
    long        output_bytes;
    /* common */
    long        priority;
    long        max_attempts;
    long        job_timeout_ms;
    const char *name;
    const char **parents;       /* borrowed from argv */
    size_t      nparents;
    const char *key;
    long        count;
    int         watch;
} s_request_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard submit TYPE [OPTIONS]\n"
        "\n"
        "Submit jobs and print their ids, one per line. TYPE: noop. Real work has\n"
        "its own commands: trainyard dataset import|append (prepare),\n"
        "trainyard train, trainyard evaluate.\n"
        "\n"
        "noop options (health checks, tests, benchmarks):\n"
        "  --sleep-ms N        run for N ms, reporting progress (default 0)\n"
        "  --fail              fail on purpose\n"
        "  --fail-message TEXT the failure's reason (with --fail)\n"
        "  --crash             abort the worker process mid-job (fault tests)\n"
        "  --output-bytes N    return an N-byte result blob\n"
        "\n"
        "Options for every type:\n"
        "  --priority P        0..1000, higher runs first (default 0)\n"
        "  --max-attempts N    tries before FAILED (default: the broker's)\n"
        "  --job-timeout MS    fail the job after MS ms of running (default none)\n"
        "  --name TEXT         shown by list and status\n"
        "  --after ID          run after job ID succeeded (repeatable)\n"
        "  --key KEY           idempotency key: re-submitting returns the same job\n"
        "                      (with --count N the keys are KEY.0 .. KEY.N-1)\n"
        "  --count N           submit N identical jobs in one atomic batch\n"
        "  --watch             then follow them like `trainyard watch`; the exit\n"
        "                      code is their outcome\n"
        "  --json              print {\"job_ids\": [...]} (and events with --watch)\n"
        "  -h, --help          this help\n");
}

/* ---- job types --------------------------------------------------------------- */

/* Fills spec's kind from the request. The spec and kind storage are the
 * caller's; returns TY_CMD_EXIT_OK or a usage error. */
typedef int (s_build_fn) (const s_request_t *req, Ty__JobSpec *spec, void *kind);

static int
s_build_noop (const s_request_t *req, Ty__JobSpec *spec, void *kind)
{
    Ty__NoopSpec *noop = kind;
    Ty__NoopSpec init = TY__NOOP_SPEC__INIT;
    *noop = init;
    noop->sleep_ms = (uint32_t) req->sleep_ms;
    noop->fail = req->fail;
    noop->fail_message = (char *) (req->fail_message ? req->fail_message : "");
    noop->crash = req->crash;
    noop->output_bytes = (uint32_t) req->output_bytes;
    spec->kind_case = TY__JOB_SPEC__KIND_NOOP;
    spec->noop = noop;
    return TY_CMD_EXIT_OK;
}

static const struct {
    const char *type;
    s_build_fn *build;          /* NULL: not supported yet */
} s_types [] = {
    { "noop",     s_build_noop },
    { "prepare",  NULL },
    { "train",    NULL },
    { "evaluate", NULL },
    { "convert",  NULL },
};

/* ---- submitting ------------------------------------------------------------- */

static int
s_print_ids (cmd_ctx_t *ctx, char *const *ids, size_t n, int existed)
{
    if (!ctx->json) {
        for (size_t i = 0; i < n; i++)
            puts (ids [i]);
        fflush (stdout);
        return TY_CMD_EXIT_OK;
    }
    cJSON *obj = cJSON_CreateObject ();
    cJSON *arr = obj ? cJSON_AddArrayToObject (obj, "job_ids") : NULL;
    int ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *s = cJSON_CreateString (ids [i]);
        ok = s && cJSON_AddItemToArray (arr, s);
        if (!ok)
            cJSON_Delete (s);
    }
    if (ok && existed >= 0)
        ok = cJSON_AddBoolToObject (obj, "existed", existed) != NULL;
    if (!ok) {
        cJSON_Delete (obj);
        obj = NULL;
    }
    int rc = cmd_json_print (obj);
    fflush (stdout);
    return rc;
}

static int
s_submit_one (cmd_ctx_t *ctx, ty_client_t *client, const s_request_t *req,
              const Ty__JobSpec *spec)
{
    char id [TY_ID_LEN + 1];
    int existed = 0;
    int rc = ty_client_submit (client, spec, req->parents, req->nparents, req->key,
                               ctx->timeout_ms, id, &existed);
    if (rc != TY_OK)
        return cmd_client_error (client, rc, "submit %s", req->type);
    if (existed && !ctx->json)
        fprintf (stderr, "trainyard: key '%s' matched job %s, submitted earlier\n",
                 req->key, id);
    char *ids [1] = { id };
    return s_print_ids (ctx, ids, 1, existed);
}

static int
s_submit_batch (cmd_ctx_t *ctx, ty_client_t *client, const s_request_t *req,
                const Ty__JobSpec *spec)
{
    size_t n = (size_t) req->count;
    size_t key_len = req->key ? strlen (req->key) + 24 : 0;
    ty_submit_item_t *items = calloc (n, sizeof *items);
    char *ids_buf = calloc (n, TY_ID_LEN + 1);
    char **ids = calloc (n, sizeof *ids);
    char *keys = key_len ? calloc (n, key_len) : NULL;
    int exit_code = TY_CMD_EXIT_OK;
    if (!items || !ids_buf || !ids || (key_len && !keys)) {
        exit_code = cmd_error ("out of memory for %zu jobs", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        items [i].spec = spec;
        items [i].parents = req->parents;
        items [i].nparents = req->nparents;
        if (keys) {
            char *k = keys + i * key_len;
            if (n == 1)
                snprintf (k, key_len, "%s", req->key);
            else
                snprintf (k, key_len, "%s.%zu", req->key, i);
            items [i].idempotency_key = k;
        }
        ids [i] = ids_buf + i * (TY_ID_LEN + 1);
    }
    int rc = ty_client_submit_batch (client, items, n, req->watch, ctx->timeout_ms, ids_buf);
    if (rc != TY_OK) {
        exit_code = cmd_client_error (client, rc, "submit %zu %s jobs", n, req->type);
        goto done;
    }
    exit_code = s_print_ids (ctx, ids, n, -1);
    if (exit_code == TY_CMD_EXIT_OK && req->watch)
        exit_code = cmd_watch_jobs (ctx, client, ids, n, 1);
done:
    free (keys);
    free (ids);
    free (ids_buf);
    free (items);
    return exit_code;
}

int
cmd_submit (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_SLEEP = 256, OPT_FAIL, OPT_FAIL_MSG, OPT_CRASH, OPT_OUTPUT, OPT_PRIO,
           OPT_ATTEMPTS, OPT_JOB_TIMEOUT, OPT_NAME, OPT_AFTER, OPT_KEY, OPT_COUNT,
           OPT_WATCH, OPT_JSON };
    static const struct option opts [] = {
        { "sleep-ms",     required_argument, NULL, OPT_SLEEP },
        { "fail",         no_argument,       NULL, OPT_FAIL },
        { "fail-message", required_argument, NULL, OPT_FAIL_MSG },
        { "crash",        no_argument,       NULL, OPT_CRASH },
        { "output-bytes", required_argument, NULL, OPT_OUTPUT },
        { "priority",     required_argument, NULL, OPT_PRIO },
        { "max-attempts", required_argument, NULL, OPT_ATTEMPTS },
        { "job-timeout",  required_argument, NULL, OPT_JOB_TIMEOUT },
        { "name",         required_argument, NULL, OPT_NAME },
        { "after",        required_argument, NULL, OPT_AFTER },
        { "key",          required_argument, NULL, OPT_KEY },
        { "count",        required_argument, NULL, OPT_COUNT },
        { "watch",        no_argument,       NULL, OPT_WATCH },
        { "json",         no_argument,       NULL, OPT_JSON },
        { "help",         no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    s_request_t req = { .count = 1 };
    /* every --after is one argv word at least, so argc bounds their number */
    req.parents = calloc ((size_t) argc, sizeof *req.parents);
    if (!req.parents)
        return cmd_error ("out of memory");
    int exit_code = TY_CMD_EXIT_OK;
    int c;
    while (exit_code == TY_CMD_EXIT_OK
       && (c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        long *target = NULL, max = 0;
        const char *what = NULL;
        switch (c) {
            case OPT_SLEEP:    target = &req.sleep_ms; max = UINT32_MAX; what = "--sleep-ms"; break;
            case OPT_OUTPUT:   target = &req.output_bytes; max = 64L << 20; what = "--output-bytes"; break;
            case OPT_PRIO:     target = &req.priority; max = S_MAX_PRIORITY; what = "--priority"; break;
            case OPT_ATTEMPTS: target = &req.max_attempts; max = S_MAX_ATTEMPTS; what = "--max-attempts"; break;
            case OPT_JOB_TIMEOUT: target = &req.job_timeout_ms; max = UINT32_MAX; what = "--job-timeout"; break;
            case OPT_COUNT:    target = &req.count; max = S_MAX_COUNT; what = "--count"; break;
            case OPT_FAIL:     req.fail = 1; break;
            case OPT_FAIL_MSG: req.fail_message = optarg; break;
            case OPT_CRASH:    req.crash = 1; break;
            case OPT_NAME:     req.name = optarg; break;
            case OPT_AFTER:
                if (!*optarg)
                    exit_code = cmd_usage_error ("submit", "--after needs a job id");
                req.parents [req.nparents++] = optarg;
                break;
            case OPT_KEY:
                if (!*optarg || strlen (optarg) > S_MAX_KEY_LEN)
                    exit_code = cmd_usage_error ("submit", "--key must be 1..%d characters",
                                                 S_MAX_KEY_LEN);
                req.key = optarg;
                break;
            case OPT_WATCH:    req.watch = 1; break;
            case OPT_JSON:     ctx->json = 1; break;
            case 'h':
                s_usage (stdout);
                free (req.parents);
                return TY_CMD_EXIT_OK;
            default:
                exit_code = cmd_getopt_error ("submit", c, argv);
                break;
        }
        long min = (target == &req.count || target == &req.max_attempts) ? 1 : 0;
        if (target && cmd_parse_long (optarg, min, max, target))
            exit_code = cmd_usage_error ("submit", "%s: '%s' is not a number in %ld..%ld",
                                         what, optarg, min, max);
    }
    if (exit_code != TY_CMD_EXIT_OK)
        goto done;
    if (optind >= argc) {
        exit_code = cmd_usage_error ("submit", "missing job TYPE (noop)");
        goto done;
    }
    if (optind < argc - 1) {
        exit_code = cmd_usage_error ("submit", "unexpected argument '%s'", argv [optind + 1]);
        goto done;
    }
    req.type = argv [optind];
    s_build_fn *build = NULL;
    int known = 0;
    for (size_t i = 0; i < sizeof s_types / sizeof s_types [0]; i++)
        if (!strcmp (s_types [i].type, req.type)) {
            known = 1;
            build = s_types [i].build;
        }
    if (!known) {
        exit_code = cmd_usage_error ("submit", "unknown job type '%s'", req.type);
        goto done;
    }
    if (!build) {
        static const char *s_instead [][2] = {
            { "prepare", "trainyard dataset import|append" }, { "train", "trainyard train" },
            { "evaluate", "trainyard evaluate" }, { "convert", "trainyard convert" },
        };
        const char *instead = "";
        for (size_t i = 0; i < sizeof s_instead / sizeof s_instead [0]; i++)
            if (!strcmp (req.type, s_instead [i][0]))
                instead = s_instead [i][1];
        exit_code = cmd_error ("submit %s: use %s; `submit` runs noop jobs only", req.type,
                               instead);
        goto done;
    }

    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    union {                     /* the storage of whichever kind the type uses */
        Ty__NoopSpec     noop;
        Ty__PrepareSpec  prepare;
        Ty__TrainSpec    train;
        Ty__EvaluateSpec evaluate;
        Ty__ConvertSpec  convert;
    } kind;
    exit_code = build (&req, &spec, &kind);
    if (exit_code != TY_CMD_EXIT_OK)
        goto done;
    spec.priority = (uint32_t) req.priority;
    spec.max_attempts = (uint32_t) req.max_attempts;
    spec.timeout_ms = (uint32_t) req.job_timeout_ms;
    spec.name = (char *) (req.name ? req.name : "");

    ty_client_t *client = cmd_connect (ctx);
    if (!client) {
        exit_code = TY_CMD_EXIT_ERROR;
        goto done;
    }
    if (req.count == 1 && !req.watch)
        exit_code = s_submit_one (ctx, client, &req, &spec);
    else
        exit_code = s_submit_batch (ctx, client, &req, &spec);
    ty_client_destroy (&client);
done:
    free (req.parents);
    return exit_code;
}

/*  trainyard trigger SUBCOMMAND: retrain triggers.
 *
 *    add NAME --pipeline FILE [--set k=v]...
 *        (--dataset D --model M --new-samples N
 *         | --model M --older-than-days D
 *         | --model M --metric-below KEY=VALUE)
 *    list [--json], rm NAME
 *
 *  Stored in Redis (scheduler/ty_trigger.h) and checked by
 *  trainyard-scheduler against the datasets and the registry of its --data
 *  dir. Redis as for `trainyard schedule` (--redis, TRAINYARD_REDIS, else
 *  the local cluster's).
 */
#include "cmd.h"
#include "ty_clock.h"
#include "ty_launch.h"
#include "ty_schedrec.h"
#include "ty_trigger.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MS_PER_S  1000
#define S_METRIC_MAX 64


static void
s_add_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard trigger add NAME --pipeline FILE [--set key=value]...\n"
        "           (--dataset D --model M --new-samples N\n"
        "            | --model M --older-than-days D\n"
        "            | --model M --metric-below KEY=VALUE)\n"
        "\n"
        "Runs FILE when:\n"
        "  --new-samples N     dataset D's latest version has N or more samples\n"
        "                      beyond the version M's production version (else its\n"
        "                      latest) was trained on; once per dataset version\n"
        "  --older-than-days D M's production version was registered D or more\n"
        "                      days ago; once per model version\n"
        "  --metric-below K=V  the latest evaluation of M's production version has\n"
        "                      metric K (accuracy, macro_f1, rmse, ndcg, ...) under V;\n"
        "                      once per model version\n"
        "\n"
        "  --set key=value     override a `params:` entry of the file (repeatable)\n"
        "  --redis URL         the cluster's Redis (env TRAINYARD_REDIS)\n");
}

static int
s_add (cmd_ctx_t *ctx, int argc, char **argv)
{
    const char *cmd = "trigger add";
    enum { O_PIPELINE = 256, O_SET, O_DATASET, O_MODEL, O_NEW, O_OLDER, O_BELOW, O_REDIS };
    static const struct option opts [] = {
        { "pipeline",        required_argument, NULL, O_PIPELINE },
        { "set",             required_argument, NULL, O_SET },
        { "dataset",         required_argument, NULL, O_DATASET },
        { "model",           required_argument, NULL, O_MODEL },
        { "new-samples",     required_argument, NULL, O_NEW },
        { "older-than-days", required_argument, NULL, O_OLDER },
        { "metric-below",    required_argument, NULL, O_BELOW },
        { "redis",           required_argument, NULL, O_REDIS },
        { "help",            no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *file = NULL, *dataset = NULL, *model = NULL, *redis_url = NULL;
    const char *sets [TY_SCHEDREC_SETS_MAX];
    size_t nsets = 0;
    int nkinds = 0;
    ty_trigger_t rec = { 0 };
    char metric [S_METRIC_MAX] = "";
    cmd_getopt_reset ();
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        long n;
        char *end;
        switch (c) {
            case O_PIPELINE: file = optarg; break;
            case O_DATASET:  dataset = optarg; break;
            case O_MODEL:    model = optarg; break;
            case O_REDIS:    redis_url = optarg; break;
            case O_SET:
                if (!strchr (optarg, '=') || optarg [0] == '=')
                    return cmd_usage_error (cmd, "--set wants key=value, got '%s'", optarg);
                if (nsets == TY_SCHEDREC_SETS_MAX)
                    return cmd_usage_error (cmd, "at most %d --set", TY_SCHEDREC_SETS_MAX);
                sets [nsets++] = optarg;
                break;
            case O_NEW:
                if (cmd_parse_long (optarg, 1, LONG_MAX, &n))
                    return cmd_usage_error (cmd, "--new-samples wants a count >= 1, got '%s'",
                                            optarg);
                rec.kind = TY_TRIGGER_NEW_SAMPLES;
                rec.new_samples = (uint64_t) n;
                nkinds++;
                break;
            case O_OLDER:
                rec.older_than_days = strtod (optarg, &end);
                if (!*optarg || *end || !isfinite (rec.older_than_days)
                    || rec.older_than_days <= 0)
                    return cmd_usage_error (cmd, "--older-than-days wants days > 0, got '%s'",
                                            optarg);
                rec.kind = TY_TRIGGER_OLDER_THAN;
                nkinds++;
                break;
            case O_BELOW: {
                const char *eq = strchr (optarg, '=');
                if (!eq || eq == optarg || (size_t) (eq - optarg) >= sizeof metric)
                    return cmd_usage_error (cmd, "--metric-below wants KEY=VALUE, got '%s'",
                                            optarg);
                rec.threshold = strtod (eq + 1, &end);
                if (!eq [1] || *end || !isfinite (rec.threshold))
                    return cmd_usage_error (cmd, "--metric-below: '%s' is not a number", eq + 1);
                snprintf (metric, sizeof metric, "%.*s", (int) (eq - optarg), optarg);
                rec.kind = TY_TRIGGER_METRIC_BELOW;
                nkinds++;
                break;
            }
            case 'h': s_add_usage (stdout); return TY_CMD_EXIT_OK;
            default:  return cmd_getopt_error (cmd, c, argv);
        }
    }
    if (argc - optind != 1)
        return cmd_usage_error (cmd, "want one NAME");
    const char *name = argv [optind], *why;
    if (ty_schedrec_name_check (name, &why) != TY_OK)
        return cmd_usage_error (cmd, "bad name '%s': %s", name, why);
    if (!file)
        return cmd_usage_error (cmd, "--pipeline FILE is required");
    if (nkinds != 1)
        return cmd_usage_error (cmd, "want exactly one of --new-samples, --older-than-days, "
                                "--metric-below");
    if (!model)
        return cmd_usage_error (cmd, "--model is required");
    if (rec.kind == TY_TRIGGER_NEW_SAMPLES && !dataset)
        return cmd_usage_error (cmd, "--new-samples needs --dataset");
    if (rec.kind != TY_TRIGGER_NEW_SAMPLES && dataset)
        return cmd_usage_error (cmd, "--dataset goes with --new-samples only");
    char path [PATH_MAX], err [TY_LAUNCH_ERR_MAX];
    if (!realpath (file, path))
        return cmd_error ("%s: cannot read pipeline file %s", cmd, file);
    if (ty_launch_check (path, sets, nsets, err, sizeof err) != TY_OK)
        return cmd_error ("%s: %s", cmd, err);
    ty_redis_t *redis = cmd_schedule_redis_connect (redis_url);
    if (!redis)
        return TY_CMD_EXIT_ERROR;
    rec.name = (char *) name;
    rec.file = path;
    rec.sets = (char **) sets;
    rec.nsets = nsets;
    rec.dataset = (char *) (dataset ? dataset : "");
    rec.model = (char *) model;
    rec.metric = metric;
    rec.created = ty_clock_wall_ms () / S_MS_PER_S;
    int rc = ty_trigger_add (redis, TY_SCHEDREC_PREFIX, &rec);
    int exit = TY_CMD_EXIT_OK;
    if (rc == TY_ESTATE)
        exit = cmd_error ("trigger %s exists (trainyard trigger rm %s first)", name, name);
    else
    if (rc != TY_OK)
        exit = cmd_error ("cannot store trigger %s: %s", name, ty_redis_errstr (redis));
    else
    if (!ctx->json)
        printf ("trigger %s: %s on %s\n", name, ty_trigger_kind_name (rec.kind), model);
    ty_redis_destroy (&redis);
    return exit;
}

static int
s_list (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { O_REDIS = 256, O_JSON };
    static const struct option opts [] = {
        { "redis", required_argument, NULL, O_REDIS },
        { "json",  no_argument,       NULL, O_JSON },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *redis_url = NULL;
    int json = ctx->json;
    cmd_getopt_reset ();
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case O_REDIS: redis_url = optarg; break;
            case O_JSON:  json = 1; break;
            case 'h':
                printf ("Usage: trainyard trigger list [--json] [--redis URL]\n\n"
                        "Every trigger: its condition, what the scheduler last saw, when it\n"
                        "last fired and the pipeline it started, the last error.\n");
                return TY_CMD_EXIT_OK;
            default: return cmd_getopt_error ("trigger list", c, argv);
        }
    }
    ty_redis_t *redis = cmd_schedule_redis_connect (redis_url);
    if (!redis)
        return TY_CMD_EXIT_ERROR;
    char **names = NULL;
    size_t n = 0;
    if (ty_trigger_names (redis, TY_SCHEDREC_PREFIX, &names, &n) != TY_OK) {
        int e = cmd_error ("cannot list triggers: %s", ty_redis_errstr (redis));
        ty_redis_destroy (&redis);
        return e;
    }
    cJSON *arr = json ? cJSON_CreateArray () : NULL;
    for (size_t i = 0; i < n; i++) {
        ty_trigger_t *t = NULL;
        if (ty_trigger_load (redis, TY_SCHEDREC_PREFIX, names [i], &t) != TY_OK)
            continue;
        char cond [256];
        if (t->kind == TY_TRIGGER_NEW_SAMPLES)
            snprintf (cond, sizeof cond, "%" PRIu64 " new samples in %s since %s was trained",
                      t->new_samples, t->dataset, t->model);
        else
        if (t->kind == TY_TRIGGER_OLDER_THAN)
            snprintf (cond, sizeof cond, "%s production older than %g days", t->model,
                      t->older_than_days);
        else
            snprintf (cond, sizeof cond, "%s production %s below %g", t->model, t->metric,
                      t->threshold);
        if (json) {
            cJSON *o = cJSON_CreateObject ();
            if (o) {
                cJSON_AddStringToObject (o, "name", t->name);
                cJSON_AddStringToObject (o, "kind", ty_trigger_kind_name (t->kind));
                cJSON_AddStringToObject (o, "condition", cond);
                cJSON_AddStringToObject (o, "file", t->file);
                cJSON_AddStringToObject (o, "last_check", t->last_check);
                cJSON_AddStringToObject (o, "last_fired", t->last_fired);
                cJSON_AddNumberToObject (o, "last_fired_ms", (double) t->last_fired_ms);
                cJSON_AddStringToObject (o, "last_run_pipeline", t->last_run_pipeline);
                cJSON_AddStringToObject (o, "last_error", t->last_error);
                if (arr)
                    cJSON_AddItemToArray (arr, o);
                else
                    cJSON_Delete (o);
            }
        }
        else {
            char when [64] = "never";
            if (t->last_fired_ms)
                cmd_format_time ((uint64_t) t->last_fired_ms, when, sizeof when);
            printf ("%s: %s\n  file %s\n  last check: %s\n  last fired: %s%s%s%s%s\n",
                    t->name, cond, t->file, t->last_check [0] ? t->last_check : "-", when,
                    t->last_fired [0] ? " for " : "", t->last_fired,
                    t->last_run_pipeline [0] ? ", pipeline " : "", t->last_run_pipeline);
            if (t->last_error [0])
                printf ("  last error: %s\n", t->last_error);
        }
        ty_trigger_destroy (&t);
    }
    ty_schedrec_strv_free (names, n);
    ty_redis_destroy (&redis);
    return json ? cmd_json_print (arr) : TY_CMD_EXIT_OK;
}

static int
s_rm (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const struct option opts [] = {
        { "redis", required_argument, NULL, 'r' },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *redis_url = NULL;
    cmd_getopt_reset ();
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'r')
            redis_url = optarg;
        else
        if (c == 'h') {
            printf ("Usage: trainyard trigger rm NAME [--redis URL]\n");
            return TY_CMD_EXIT_OK;
        }
        else
            return cmd_getopt_error ("trigger rm", c, argv);
    }
    if (argc - optind != 1)
        return cmd_usage_error ("trigger rm", "want NAME");
    const char *name = argv [optind];
    if (ty_schedrec_name_check (name, NULL) != TY_OK)
        return cmd_usage_error ("trigger rm", "bad name '%s'", name);
    ty_redis_t *redis = cmd_schedule_redis_connect (redis_url);
    if (!redis)
        return TY_CMD_EXIT_ERROR;
    int rc = ty_trigger_remove (redis, TY_SCHEDREC_PREFIX, name);
    int exit = TY_CMD_EXIT_OK;
    if (rc == TY_ENOTFOUND)
        exit = cmd_error ("no trigger named %s", name);
    else
    if (rc != TY_OK)
        exit = cmd_error ("trigger rm: %s", ty_redis_errstr (redis));
    else
    if (!ctx->json)
        printf ("trigger %s: removed\n", name);
    ty_redis_destroy (&redis);
    return exit;
}

int
cmd_trigger (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const struct { const char *name; cmd_fn *fn; const char *summary; } subs [] = {
        { "add",  s_add,  "run a pipeline on new samples, model age or a metric drop" },
        { "list", s_list, "triggers: condition, last check, last firing, last error" },
        { "rm",   s_rm,   "remove a trigger" },
    };
    if (argc < 2 || !strcmp (argv [1], "--help") || !strcmp (argv [1], "-h")) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf (out, "Usage: trainyard trigger COMMAND [OPTIONS]\n\nCommands:\n");
        for (size_t i = 0; i < sizeof subs / sizeof subs [0]; i++)
            fprintf (out, "  %-5s %s\n", subs [i].name, subs [i].summary);
        fprintf (out, "\nEvery command takes --help.\n");
        return argc < 2 ? TY_CMD_EXIT_USAGE : TY_CMD_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs [0]; i++)
        if (!strcmp (subs [i].name, argv [1]))
            return subs [i].fn (ctx, argc - 1, argv + 1);
    return cmd_usage_error ("trigger", "unknown command '%s'", argv [1]);
}

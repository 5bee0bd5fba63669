/*  trainyard schedule SUBCOMMAND: cron schedules of pipelines.
 *
 *    add NAME "CRON" FILE [--set k=v]... [--utc]
 *    list [--json]      name, cron, next run, last run, paused, last error
 *    rm NAME, pause NAME, resume NAME
 *
 *  Schedules live in Redis (scheduler/ty_schedule.h), where the
 *  trainyard-scheduler daemon reads them; these commands talk to Redis
 *  directly (--redis, env TRAINYARD_REDIS, else the local cluster's, from
 *  <state dir>/redis.conf), not to the broker. `add` checks the cron line and
 *  loads the pipeline file (with its --set overrides) before storing
 *  anything: a bad line or file is refused with the line and field.
 */
#include "cmd.h"
#include "cmd_cluster.h"
#include "ty_clock.h"
#include "ty_cron.h"
#include "ty_launch.h"
#include "ty_schedrec.h"
#include "ty_schedule.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_UP_REDIS_PORT   7702    /* what `trainyard up` gives Redis by default */
#define S_URL_MAX         320
#define S_MS_PER_S        1000

/* ---- shared with cmd_trigger.c ------------------------------------------------ */

int
cmd_schedule_redis_url (const char *flag, char *out, size_t len)
{
    const char *env = getenv ("TRAINYARD_REDIS");
    const char *url = flag && *flag ? flag : env && *env ? env : NULL;
    if (url) {
        if (snprintf (out, len, "%s", url) >= (int) len)
            return cmd_error ("redis URL too long");
        return 0;
    }
    /* the local cluster's: the port `up` wrote into its redis.conf */
    long port = S_UP_REDIS_PORT;
    char dir [PATH_MAX], conf [PATH_MAX];
    if (cmd_statedir_resolve (NULL, 0, dir, sizeof dir) == 0
        && cmd_statedir_path (conf, sizeof conf, dir, "redis.conf") == 0) {
        FILE *f = fopen (conf, "re");
        char line [256];
        while (f && fgets (line, sizeof line, f)) {
            long p;
            if (sscanf (line, "port %ld", &p) == 1 && p > 0 && p <= 65535)
                port = p;
        }
        if (f)
            fclose (f);
    }
    snprintf (out, len, "redis://127.0.0.1:%ld", port);
    return 0;
}

/* A connected Redis, or NULL after printing why. */
ty_redis_t *
cmd_schedule_redis_connect (const char *flag)
{
    char url [S_URL_MAX];
    if (cmd_schedule_redis_url (flag, url, sizeof url))
        return NULL;
    ty_redis_t *r = ty_redis_new (url);
    if (!r) {
        cmd_usage_error (NULL, "bad Redis URL '%s' (want redis://host:port or unix:///path)", url);
        return NULL;
    }
    if (ty_redis_connect (r) != TY_OK) {
        cmd_error ("cannot reach Redis at %s: %s (is the cluster up? --redis URL)", url,
                   ty_redis_errstr (r));
        ty_redis_destroy (&r);
    }
    return r;
}

/* ---- helpers ------------------------------------------------------------------ */

static void
s_format_s (int64_t unix_s, char *buf, size_t len)
{
    if (unix_s <= 0)
        snprintf (buf, len, "-");
    else
        cmd_format_time ((uint64_t) unix_s * S_MS_PER_S, buf, len);
}

typedef struct {
    const char *redis;
    int json;
    int utc;
    const char *sets [TY_SCHEDREC_SETS_MAX];
    size_t nsets;
} s_args_t;

/* Common options of the subcommands. Returns -1 on success (go on), else
 * an exit code. */
static int
s_parse (const char *cmd, int argc, char **argv, s_args_t *a, void (*usage) (FILE *))
{
    enum { O_REDIS = 256, O_JSON, O_UTC, O_SET };
    static const struct option opts [] = {
        { "redis", required_argument, NULL, O_REDIS },
        { "json",  no_argument,       NULL, O_JSON },
        { "utc",   no_argument,       NULL, O_UTC },
        { "set",   required_argument, NULL, O_SET },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    cmd_getopt_reset ();
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case O_REDIS: a->redis = optarg; break;
            case O_JSON:  a->json = 1; break;
            case O_UTC:   a->utc = 1; break;
            case O_SET:
                if (!strchr (optarg, '=') || optarg [0] == '=')
                    return cmd_usage_error (cmd, "--set wants key=value, got '%s'", optarg);
                if (a->nsets == TY_SCHEDREC_SETS_MAX)
                    return cmd_usage_error (cmd, "at most %d --set", TY_SCHEDREC_SETS_MAX);
                a->sets [a->nsets++] = optarg;
                break;
            case 'h': usage (stdout); return TY_CMD_EXIT_OK;
            default:  return cmd_getopt_error (cmd, c, argv);
        }
    }
    return -1;
}

/* ---- add ---------------------------------------------------------------------- */

static void
s_add_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard schedule add NAME \"CRON\" FILE [--set key=value]... [--utc]\n"
        "\n"
        "Runs pipeline FILE whenever CRON fires: five fields (minute hour\n"
        "day-of-month month day-of-week) with *, lists, ranges, steps and names\n"
        "(jan, mon), or @hourly @daily @midnight @weekly @monthly @yearly.\n"
        "Local time unless --utc (a time a DST change skips does not run, one it\n"
        "repeats runs once). Nothing runs for slots before the schedule exists;\n"
        "after a scheduler downtime the missed run runs once.\n"
        "\n"
        "  --set key=value  override a `params:` entry of the file (repeatable)\n"
        "  --utc            evaluate CRON in UTC\n"
        "  --redis URL      the cluster's Redis (env TRAINYARD_REDIS, default the\n"
        "                   local cluster's)\n");
}

static int
s_add (cmd_ctx_t *ctx, int argc, char **argv)
{
    const char *cmd = "schedule add";
    s_args_t a = { 0 };
    int rc = s_parse (cmd, argc, argv, &a, s_add_usage);
    if (rc >= 0)
        return rc;
    if (argc - optind != 3)
        return cmd_usage_error (cmd, "want NAME \"CRON\" FILE");
    const char *name = argv [optind], *line = argv [optind + 1], *file = argv [optind + 2];
    const char *why;
    if (ty_schedrec_name_check (name, &why) != TY_OK)
        return cmd_usage_error (cmd, "bad name '%s': %s", name, why);
    ty_cron_t cron;
    char err [TY_LAUNCH_ERR_MAX];
    if (ty_cron_parse (line, a.utc, &cron, err, sizeof err) != TY_OK)
        return cmd_usage_error (cmd, "bad cron line \"%s\": %s", line, err);
    char path [PATH_MAX];
    if (!realpath (file, path))
        return cmd_error ("%s: cannot read pipeline file %s", cmd, file);
    if (ty_launch_check (path, a.sets, a.nsets, err, sizeof err) != TY_OK)
        return cmd_error ("%s: %s", cmd, err);
    int64_t now = ty_clock_wall_ms () / S_MS_PER_S, next = 0;
    if (ty_cron_next (&cron, now, &next) != TY_OK)
        return cmd_usage_error (cmd, "cron line \"%s\" never fires", line);
    ty_redis_t *redis = cmd_schedule_redis_connect (a.redis);
    if (!redis)
        return TY_CMD_EXIT_ERROR;
    ty_schedule_t rec = {
        .name = (char *) name, .cron = (char *) line, .utc = a.utc, .file = path,
        .sets = (char **) a.sets, .nsets = a.nsets, .created = now, .last_slot = now,
        .next = next,
    };
    rc = ty_schedule_add (redis, TY_SCHEDREC_PREFIX, &rec);
    int exit = TY_CMD_EXIT_OK;
    if (rc == TY_ESTATE)
        exit = cmd_error ("schedule %s exists (trainyard schedule rm %s first)", name, name);
    else
    if (rc != TY_OK)
        exit = cmd_error ("cannot store schedule %s: %s", name, ty_redis_errstr (redis));
    else {
        char when [64];
        s_format_s (next, when, sizeof when);
        if (ctx->json) {
            cJSON *o = cJSON_CreateObject ();
            if (o) {
                cJSON_AddStringToObject (o, "name", name);
                cJSON_AddNumberToObject (o, "next", (double) next);
            }
            exit = cmd_json_print (o);
        }
        else
            printf ("schedule %s: next run %s\n", name, when);
    }
    ty_redis_destroy (&redis);
    return exit;
}

/* ---- list --------------------------------------------------------------------- */

static void
s_list_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard schedule list [--json] [--redis URL]\n"
        "\n"
        "Every schedule: name, cron line, next run, last run (its pipeline), paused,\n"
        "last error.\n");
}

static cJSON *
s_json (const ty_schedule_t *s)
{
    cJSON *o = cJSON_CreateObject ();
    cJSON *sets = o ? cJSON_AddArrayToObject (o, "sets") : NULL;
    if (!sets) {
        cJSON_Delete (o);
        return NULL;
    }
    for (size_t i = 0; i < s->nsets; i++)
        cJSON_AddItemToArray (sets, cJSON_CreateString (s->sets [i]));
    cJSON_AddStringToObject (o, "name", s->name);
    cJSON_AddStringToObject (o, "cron", s->cron);
    cJSON_AddBoolToObject (o, "utc", s->utc);
    cJSON_AddStringToObject (o, "file", s->file);
    cJSON_AddBoolToObject (o, "paused", s->paused);
    cJSON_AddNumberToObject (o, "created", (double) s->created);
    cJSON_AddNumberToObject (o, "next", (double) s->next);
    cJSON_AddNumberToObject (o, "last_slot", (double) s->last_slot);
    cJSON_AddNumberToObject (o, "last_run_ms", (double) s->last_run_ms);
    cJSON_AddStringToObject (o, "last_run_pipeline", s->last_run_pipeline);
    cJSON_AddStringToObject (o, "last_error", s->last_error);
    return o;
}

static int
s_list (cmd_ctx_t *ctx, int argc, char **argv)
{
    s_args_t a = { 0 };
    int rc = s_parse ("schedule list", argc, argv, &a, s_list_usage);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return cmd_usage_error ("schedule list", "unexpected argument '%s'", argv [optind]);
    ty_redis_t *redis = cmd_schedule_redis_connect (a.redis);
    if (!redis)
        return TY_CMD_EXIT_ERROR;
    char **names = NULL;
    size_t n = 0;
    rc = ty_schedule_names (redis, TY_SCHEDREC_PREFIX, &names, &n);
    if (rc != TY_OK) {
        int e = cmd_error ("cannot list schedules: %s", ty_redis_errstr (redis));
        ty_redis_destroy (&redis);
        return e;
    }
    int json = a.json || ctx->json;
    cJSON *arr = json ? cJSON_CreateArray () : NULL;
    if (!json)
        printf ("%-20s %-16s %-6s %-29s %-29s %s\n", "NAME", "CRON", "PAUSED", "NEXT RUN",
                "LAST RUN", "LAST PIPELINE / ERROR");
    int exit = TY_CMD_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        ty_schedule_t *s = NULL;
        if (ty_schedule_load (redis, TY_SCHEDREC_PREFIX, names [i], &s) != TY_OK)
            continue;       /* removed meanwhile */
        if (json) {
            cJSON *o = s_json (s);
            if (!o || !arr || !cJSON_AddItemToArray (arr, o)) {
                cJSON_Delete (o);
                exit = TY_CMD_EXIT_ERROR;
            }
        }
        else {
            char next [64], last [64], cron [64];
            s_format_s (s->paused ? 0 : s->next, next, sizeof next);
            s_format_s (s->last_run_ms ? s->last_slot : 0, last, sizeof last);
            snprintf (cron, sizeof cron, "%s%s", s->cron, s->utc ? " UTC" : "");
            printf ("%-20s %-16s %-6s %-29s %-29s %s%s%s\n", s->name, cron,
                    s->paused ? "yes" : "no", next, last, s->last_run_pipeline,
                    s->last_error [0] ? "error: " : "", s->last_error);
        }
        ty_schedule_destroy (&s);
    }
    ty_schedrec_strv_free (names, n);
    ty_redis_destroy (&redis);
    if (json)
        return exit == TY_CMD_EXIT_OK ? cmd_json_print (arr) : (cJSON_Delete (arr), exit);
    return exit;
}

/* ---- rm, pause, resume ---------------------------------------------------------- */

static void
s_name_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard schedule rm|pause|resume NAME [--redis URL]\n"
        "\n"
        "rm forgets the schedule (runs it started go on); pause stops new runs\n"
        "until resume. A paused schedule does not catch up when resumed: its next\n"
        "run is the next slot after the resume.\n");
}

static int
s_change (cmd_ctx_t *ctx, int argc, char **argv, const char *what)
{
    char cmd [32];
    snprintf (cmd, sizeof cmd, "schedule %s", what);
    s_args_t a = { 0 };
    int rc = s_parse (cmd, argc, argv, &a, s_name_usage);
    if (rc >= 0)
        return rc;
    if (argc - optind != 1)
        return cmd_usage_error (cmd, "want NAME");
    const char *name = argv [optind];
    if (ty_schedrec_name_check (name, NULL) != TY_OK)
        return cmd_usage_error (cmd, "bad name '%s'", name);
    ty_redis_t *redis = cmd_schedule_redis_connect (a.redis);
    if (!redis)
        return TY_CMD_EXIT_ERROR;
    if (!strcmp (what, "rm"))
        rc = ty_schedule_remove (redis, TY_SCHEDREC_PREFIX, name);
    else
    if (!strcmp (what, "pause"))
        rc = ty_schedule_set_paused (redis, TY_SCHEDREC_PREFIX, name, true);
    else {
        /* no catch-up for the paused time: the slots before now are done */
        ty_schedule_t *s = NULL;
        rc = ty_schedule_load (redis, TY_SCHEDREC_PREFIX, name, &s);
        ty_cron_t cron;
        int64_t now = ty_clock_wall_ms () / S_MS_PER_S, slot;
        if (rc == TY_OK && s->paused
            && ty_cron_parse (s->cron, s->utc, &cron, NULL, 0) == TY_OK
            && ty_cron_due (&cron, s->last_slot, now, &slot) == TY_OK)
            rc = ty_schedule_skip (redis, TY_SCHEDREC_PREFIX, name, slot);
        ty_schedule_destroy (&s);
        if (rc == TY_OK)
            rc = ty_schedule_set_paused (redis, TY_SCHEDREC_PREFIX, name, false);
    }
    int exit = TY_CMD_EXIT_OK;
    if (rc == TY_ENOTFOUND)
        exit = cmd_error ("no schedule named %s", name);
    else
    if (rc != TY_OK)
        exit = cmd_error ("schedule %s: %s", what, ty_redis_errstr (redis));
    else
    if (!ctx->json)
        printf ("schedule %s: %s\n", name, !strcmp (what, "rm") ? "removed"
                : !strcmp (what, "pause") ? "paused" : "resumed");
    ty_redis_destroy (&redis);
    return exit;
}

static int s_rm (cmd_ctx_t *ctx, int argc, char **argv) { return s_change (ctx, argc, argv, "rm"); }
static int s_pause (cmd_ctx_t *ctx, int argc, char **argv) { return s_change (ctx, argc, argv, "pause"); }
static int s_resume (cmd_ctx_t *ctx, int argc, char **argv) { return s_change (ctx, argc, argv, "resume"); }

/* ---- dispatch ------------------------------------------------------------------ */

typedef struct {
    const char *name;
    cmd_fn     *fn;
    const char *summary;
} s_sub_t;

static const s_sub_t s_subs [] = {
    { "add",    s_add,    "run a pipeline file on a cron schedule" },
    { "list",   s_list,   "schedules: cron, next run, last run, paused, last error" },
    { "rm",     s_rm,     "remove a schedule" },
    { "pause",  s_pause,  "stop starting runs of a schedule" },
    { "resume", s_resume, "start runs again (no catch-up for the paused time)" },
    { NULL, NULL, NULL }
};

int
cmd_schedule (cmd_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || !strcmp (argv [1], "--help") || !strcmp (argv [1], "-h")) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf (out, "Usage: trainyard schedule COMMAND [OPTIONS]\n\nCommands:\n");
        for (const s_sub_t *s = s_subs; s->name; s++)
            fprintf (out, "  %-7s %s\n", s->name, s->summary);
        fprintf (out, "\nEvery command takes --help. Needs trainyard-scheduler running "
                      "(trainyard up starts one).\n");
        return argc < 2 ? TY_CMD_EXIT_USAGE : TY_CMD_EXIT_OK;
    }
    for (const s_sub_t *s = s_subs; s->name; s++)
        if (!strcmp (s->name, argv [1]))
            return s->fn (ctx, argc - 1, argv + 1);
    return cmd_usage_error ("schedule", "unknown command '%s'", argv [1]);
}

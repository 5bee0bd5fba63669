/*  trainyard model SUBCOMMAND: model versions.
 *
 *  Subcommands live in one table (s_subs) so others can join it: each is a
 *  function with the argv that starts at the subcommand's name.
 *    compare A B   two evaluations side by side, from the metrics.json that
 *                  `trainyard evaluate` left beside each version (read from
 *                  the data directory: --data, env TRAINYARD_DATA, else
 *                  <state dir>/data).
 */
#include "cmd.h"
#include "ty_report.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Defined in cmd_evaluate.c (they belong in cmd.h). */

typedef struct {
    const char *name;
    cmd_fn     *fn;
    const char *summary;
} s_sub_t;

static int s_compare (cmd_ctx_t *ctx, int argc, char **argv);

static const s_sub_t s_subs [] = {
    { "compare", s_compare, "two evaluated versions side by side (metrics.json)" },
    { NULL, NULL, NULL }
};

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: trainyard model COMMAND [OPTIONS]\n\nCommands:\n");
    for (const s_sub_t *s = s_subs; s->name; s++)
        fprintf (out, "  %-10s %s\n", s->name, s->summary);
    fprintf (out, "\nEvery command takes --help.\n");
}

/* ---- compare ------------------------------------------------------------------ */

static void
s_compare_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard model compare NAME@V1 NAME@V2 [OPTIONS]\n"
        "\n"
        "Two evaluations side by side: every metric both have, with the change\n"
        "(better/worse), per-class F1 by class name, gate verdicts and\n"
        "recommendations. Reads the metrics.json `trainyard evaluate` wrote beside\n"
        "each version; a version without one is an error.\n"
        "\n"
        "  --data DIR      data directory (env TRAINYARD_DATA, else <state dir>/data)\n"
        "  --all-classes   every class, not only the first %d\n"
        "  --json          {\"a\": metrics.json of V1, \"b\": metrics.json of V2}\n"
        "  -h, --help      this help\n", TY_REPORT_TOP_CLASSES);
}

static int
s_compare (cmd_ctx_t *ctx, int argc, char **argv)
{
    const char *cmd = "model compare";
    enum { OPT_DATA = 256, OPT_ALL, OPT_JSON };
    static const struct option opts [] = {
        { "data",        required_argument, NULL, OPT_DATA },
        { "all-classes", no_argument,       NULL, OPT_ALL },
        { "json",        no_argument,       NULL, OPT_JSON },
        { "help",        no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *data_flag = NULL;
    int json = ctx->json, all = 0, c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA: data_flag = optarg; break;
        case OPT_ALL:  all = 1; break;
        case OPT_JSON: json = 1; break;
        case 'h':      s_compare_usage (stdout); return TY_CMD_EXIT_OK;
        default:       return cmd_getopt_error (cmd, c, argv);
        }
    }
    if (argc - optind != 2)
        return cmd_usage_error (cmd, "give two model versions, e.g. spam@3 spam@4");
    char data [PATH_MAX];
    if (cmd_data_dir (data_flag, data, sizeof data))
        return TY_CMD_EXIT_ERROR;
    cJSON *a = NULL, *b = NULL;
    if (cmd_evaluate_load_report (data, argv [optind], &a))
        return TY_CMD_EXIT_ERROR;
    if (cmd_evaluate_load_report (data, argv [optind + 1], &b)) {
        cJSON_Delete (a);
        return TY_CMD_EXIT_ERROR;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject ();
        if (o && cJSON_AddItemToObject (o, "a", a)) {
            a = NULL;
            if (cJSON_AddItemToObject (o, "b", b))
                b = NULL;
        }
        cJSON_Delete (a);
        cJSON_Delete (b);
        if (o && (!cJSON_GetObjectItem (o, "a") || !cJSON_GetObjectItem (o, "b"))) {
            cJSON_Delete (o);
            o = NULL;
        }
        return cmd_json_print (o);
    }
    ty_report_print_opts_t po = { 0, all };
    int rc = ty_report_print_compare (stdout, a, b, &po);
    cJSON_Delete (a);
    cJSON_Delete (b);
    return rc == TY_OK ? TY_CMD_EXIT_OK : cmd_error ("%s: not metrics documents", cmd);
}

/* ---- dispatch ------------------------------------------------------------------- */

int
cmd_model (cmd_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || !strcmp (argv [1], "-h") || !strcmp (argv [1], "--help")) {
        s_usage (argc < 2 ? stderr : stdout);
        return argc < 2 ? TY_CMD_EXIT_USAGE : TY_CMD_EXIT_OK;
    }
    for (const s_sub_t *s = s_subs; s->name; s++)
        if (!strcmp (s->name, argv [1])) {
            cmd_getopt_reset ();
            return s->fn (ctx, argc - 1, argv + 1);
        }
    return cmd_usage_error ("model", "unknown command '%s'", argv [1]);
}

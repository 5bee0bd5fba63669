/*  trainyard list: jobs newest first, as a table or a JSON array.
 *  Filters are checked here first so a typo gives a usage error instead of
 *  an empty table. */
#include "cmd.h"
#include "ty_clock.h"
#include "ty_jobstate.h"
#include <stdio.h>
#include <string.h>

#define S_NAME_COL_MAX 24   /* longer names are cut so rows stay one line */

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard list [--state S] [--type T] [--limit N] [--json]\n"
        "\n"
        "List jobs, newest first.\n"
        "  --state S  only jobs in state S (pending, queued, running, succeeded,\n"
        "             failed, cancelled)\n"
        "  --type T   only jobs of type T (noop, prepare, train, evaluate, convert)\n"
        "  --limit N  at most N jobs (default 100)\n"
        "  --json     a JSON array of job objects\n"
        "  -h, --help this help\n");
}

static void
s_print_table (const Ty__JobList *list)
{
    printf ("%-16s  %-8s  %-9s  %-7s  %8s  %-*s  %s\n", "ID", "TYPE", "STATE",
            "ATTEMPT", "PROGRESS", S_NAME_COL_MAX, "NAME", "AGE");
    int64_t now = ty_clock_wall_ms ();
    for (size_t i = 0; i < list->n_jobs; i++) {
        const Ty__JobInfo *job = list->jobs [i];
        char attempt [24], progress [16], age [24];
        snprintf (attempt, sizeof attempt, "%u/%u", job->attempt, job->max_attempts);
        snprintf (progress, sizeof progress, "%.0f%%", job->progress * 100.0);
        if (job->created_ms)
            cmd_format_duration (now - (int64_t) job->created_ms, age, sizeof age);
        else
            snprintf (age, sizeof age, "-");
        printf ("%-16s  %-8s  %-9s  %-7s  %8s  %-*.*s  %s\n", job->id, job->type,
                job->state, attempt, progress, S_NAME_COL_MAX, S_NAME_COL_MAX,
                job->name && *job->name ? job->name : "-", age);
    }
}

static int
s_print_json (const Ty__JobList *list)
{
    cJSON *arr = cJSON_CreateArray ();
    if (!arr)
        return cmd_json_print (NULL);
    for (size_t i = 0; i < list->n_jobs; i++) {
        cJSON *job = cmd_json_job (list->jobs [i]);
        if (!job || !cJSON_AddItemToArray (arr, job)) {
            cJSON_Delete (job);
            cJSON_Delete (arr);
            return cmd_json_print (NULL);
        }
    }
    return cmd_json_print (arr);
}

int
cmd_list (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_STATE = 256, OPT_TYPE, OPT_LIMIT, OPT_JSON };
    static const struct option opts [] = {
        { "state", required_argument, NULL, OPT_STATE },
        { "type",  required_argument, NULL, OPT_TYPE },
        { "limit", required_argument, NULL, OPT_LIMIT },
        { "json",  no_argument,       NULL, OPT_JSON },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *state = NULL, *type = NULL;
    long limit = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_STATE: {
                int s = ty_jobstate_parse (optarg);
                if (s < 0)
                    return cmd_usage_error ("list", "--state: unknown state '%s'", optarg);
                state = ty_jobstate_name ((ty_jobstate_t) s);   /* canonical upper case */
                break;
            }
            case OPT_TYPE:
                if (!ty_jobtype_valid (optarg))
                    return cmd_usage_error ("list", "--type: unknown job type '%s'", optarg);
                type = optarg;
                break;
            case OPT_LIMIT:
                if (cmd_parse_long (optarg, 1, 100000, &limit))
                    return cmd_usage_error ("list", "--limit: '%s' is not a number in 1..100000", optarg);
                break;
            case OPT_JSON: ctx->json = 1; break;
            case 'h':      s_usage (stdout); return TY_CMD_EXIT_OK;
            default:       return cmd_getopt_error ("list", c, argv);
        }
    }
    if (optind < argc)
        return cmd_usage_error ("list", "unexpected argument '%s'", argv [optind]);

    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    Ty__JobList *list = NULL;
    int rc = ty_client_list (client, state, type, (unsigned) limit, ctx->timeout_ms, &list);
    int exit_code;
    if (rc != TY_OK)
        exit_code = cmd_client_error (client, rc, "list");
    else if (ctx->json)
        exit_code = s_print_json (list);
    else {
        s_print_table (list);
        exit_code = TY_CMD_EXIT_OK;
    }
    ty_client_free_msg (list);
    ty_client_destroy (&client);
    return exit_code;
}

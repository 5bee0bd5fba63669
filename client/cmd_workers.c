/*  trainyard workers: the workers the broker knows, with what they run. */
#include "cmd.h"
#include "ty_clock.h"
#include <stdio.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard workers [--json]\n"
        "\n"
        "List the workers the broker knows: id, job type, host, pid, capacity,\n"
        "jobs running, and how long ago the last heartbeat arrived.\n"
        "  --json     a JSON array of worker objects\n"
        "  -h, --help this help\n");
}

static void
s_print_table (const Ty__WorkerList *list)
{
    printf ("%-28s  %-8s  %-16s  %7s  %8s  %-4s  %s\n", "ID", "TYPE", "HOST", "PID",
            "CAPACITY", "JOBS", "LAST SEEN");
    int64_t now = ty_clock_wall_ms ();
    for (size_t i = 0; i < list->n_workers; i++) {
        const Ty__WorkerInfo *w = list->workers [i];
        char seen [32] = "-";
        if (w->last_seen_ms) {
            char d [24];
            cmd_format_duration (now - (int64_t) w->last_seen_ms, d, sizeof d);
            snprintf (seen, sizeof seen, "%s ago", d);
        }
        printf ("%-28s  %-8s  %-16s  %7u  %8u  %-4zu  %s\n", w->id, w->type, w->host,
                w->pid, w->capacity, w->n_jobs, seen);
    }
}

static int
s_print_json (const Ty__WorkerList *list)
{
    cJSON *arr = cJSON_CreateArray ();
    if (!arr)
        return cmd_json_print (NULL);
    for (size_t i = 0; i < list->n_workers; i++) {
        cJSON *w = cmd_json_worker (list->workers [i]);
        if (!w || !cJSON_AddItemToArray (arr, w)) {
            cJSON_Delete (w);
            cJSON_Delete (arr);
            return cmd_json_print (NULL);
        }
    }
    return cmd_json_print (arr);
}

int
cmd_workers (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_JSON = 256 };
    static const struct option opts [] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_JSON: ctx->json = 1; break;
            case 'h':      s_usage (stdout); return TY_CMD_EXIT_OK;
            default:       return cmd_getopt_error ("workers", c, argv);
        }
    }
    if (optind < argc)
        return cmd_usage_error ("workers", "unexpected argument '%s'", argv [optind]);

    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    Ty__WorkerList *list = NULL;
    int rc = ty_client_workers (client, ctx->timeout_ms, &list);
    int exit_code = TY_CMD_EXIT_OK;
    if (rc != TY_OK)
        exit_code = cmd_client_error (client, rc, "workers");
    else if (ctx->json)
        exit_code = s_print_json (list);
    else
        s_print_table (list);
    ty_client_free_msg (list);
    ty_client_destroy (&client);
    return exit_code;
}

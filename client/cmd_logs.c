/*  trainyard logs ID [--tail N]: the log lines a worker kept for a job
 *  (Redis caps them, see docs/redis-keys.md). */
#include "cmd.h"
#include <stdio.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard logs [--tail N] [--json] ID\n"
        "\n"
        "Print a job's log lines, oldest first.\n"
        "  --tail N   only the last N lines (default: all that are kept)\n"
        "  --json     a JSON array of strings\n"
        "  -h, --help this help\n");
}

static int
s_print_json (const Ty__LogLines *lines)
{
    cJSON *arr = cJSON_CreateArray ();
    if (!arr)
        return cmd_json_print (NULL);
    for (size_t i = 0; i < lines->n_lines; i++) {
        cJSON *s = cJSON_CreateString (lines->lines [i] ? lines->lines [i] : "");
        if (!s || !cJSON_AddItemToArray (arr, s)) {
            cJSON_Delete (s);
            cJSON_Delete (arr);
            return cmd_json_print (NULL);
        }
    }
    return cmd_json_print (arr);
}

int
cmd_logs (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_TAIL = 256, OPT_JSON };
    static const struct option opts [] = {
        { "tail", required_argument, NULL, OPT_TAIL },
        { "json", no_argument,       NULL, OPT_JSON },
        { "help", no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    long tail = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_TAIL:
                if (cmd_parse_long (optarg, 1, 1000000, &tail))
                    return cmd_usage_error ("logs", "--tail: '%s' is not a positive number", optarg);
                break;
            case OPT_JSON: ctx->json = 1; break;
            case 'h':      s_usage (stdout); return TY_CMD_EXIT_OK;
            default:       return cmd_getopt_error ("logs", c, argv);
        }
    }
    if (optind != argc - 1)
        return cmd_usage_error ("logs", optind >= argc ? "missing job ID"
                                                       : "one job ID only");
    const char *id = argv [optind];

    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    Ty__LogLines *lines = NULL;
    int rc = ty_client_logs (client, id, (unsigned) tail, ctx->timeout_ms, &lines);
    int exit_code = TY_CMD_EXIT_OK;
    if (rc != TY_OK)
        exit_code = cmd_client_error (client, rc, "logs %s", id);
    else if (ctx->json)
        exit_code = s_print_json (lines);
    else
        for (size_t i = 0; i < lines->n_lines; i++)
            puts (lines->lines [i] ? lines->lines [i] : "");
    ty_client_free_msg (lines);
    ty_client_destroy (&client);
    return exit_code;
}

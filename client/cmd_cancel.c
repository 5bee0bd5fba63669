/*  trainyard cancel ID [--reason TEXT]: a queued job is cancelled at once,
 *  a running one is asked to stop (the worker runtime honours it). */
#include "cmd.h"
#include <stdio.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard cancel [--reason TEXT] ID\n"
        "\n"
        "Cancel a job: a pending or queued job at once, a running job is asked\n"
        "to stop. Follow it with `trainyard watch ID`.\n"
        "  --reason TEXT  recorded as the job's error (default \"cancelled by user\")\n"
        "  --json         print {\"id\":..., \"cancelled\":true}\n"
        "  -h, --help     this help\n");
}

int
cmd_cancel (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_REASON = 256, OPT_JSON };
    static const struct option opts [] = {
        { "reason", required_argument, NULL, OPT_REASON },
        { "json",   no_argument,       NULL, OPT_JSON },
        { "help",   no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *reason = "cancelled by user";
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_REASON: reason = optarg; break;
            case OPT_JSON:   ctx->json = 1; break;
            case 'h':        s_usage (stdout); return TY_CMD_EXIT_OK;
            default:         return cmd_getopt_error ("cancel", c, argv);
        }
    }
    if (optind != argc - 1)
        return cmd_usage_error ("cancel", optind >= argc ? "missing job ID"
                                                         : "one job ID only");
    const char *id = argv [optind];

    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    int rc = ty_client_cancel (client, id, reason, ctx->timeout_ms);
    int exit_code = TY_CMD_EXIT_OK;
    if (rc != TY_OK)
        exit_code = cmd_client_error (client, rc, "cancel %s", id);
    else if (ctx->json) {
        cJSON *obj = cJSON_CreateObject ();
        if (obj && (!cJSON_AddStringToObject (obj, "id", id)
                ||  !cJSON_AddTrueToObject (obj, "cancelled"))) {
            cJSON_Delete (obj);
            obj = NULL;
        }
        exit_code = cmd_json_print (obj);
    }
    else
        printf ("%s: cancel requested\n", id);
    ty_client_destroy (&client);
    return exit_code;
}

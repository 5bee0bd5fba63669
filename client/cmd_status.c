/*  trainyard status ID: one job, as "key: value" lines or one JSON object.
 *  Empty fields are left out of the human form so the interesting ones
 *  (state, error) stay on screen. */
#include "cmd.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard status [--json] ID\n"
        "\n"
        "Show a job: state, attempt, worker, times, progress, phase, message,\n"
        "error, outputs and latest metrics.\n"
        "  --json     the whole job as one JSON object\n"
        "  -h, --help this help\n");
}

static void
s_line (const char *key, const char *value)
{
    if (value && *value)
        printf ("%-10s %s\n", key, value);
}

static void
s_time_line (const char *key, uint64_t ms)
{
    char buf [48];
    cmd_format_time (ms, buf, sizeof buf);
    s_line (key, buf);
}

static void
s_print (const Ty__JobInfo *job)
{
    char buf [256];
    s_line ("id:", job->id);
    s_line ("name:", job->name);
    s_line ("type:", job->type);
    s_line ("state:", job->state);
    if (job->cancel_requested)
        s_line ("cancel:", "requested");
    snprintf (buf, sizeof buf, "%u/%u", job->attempt, job->max_attempts);
    s_line ("attempt:", buf);
    snprintf (buf, sizeof buf, "%u", job->priority);
    s_line ("priority:", buf);
    s_line ("worker:", job->worker);
    for (size_t i = 0; i < job->n_parents; i++)
        s_line (i == 0 ? "parents:" : "", job->parents [i]);
    s_line ("pipeline:", job->pipeline);
    s_time_line ("created:", job->created_ms);
    s_time_line ("queued:", job->queued_ms);
    s_time_line ("started:", job->started_ms);
    s_time_line ("finished:", job->finished_ms);
    if (job->started_ms && job->finished_ms >= job->started_ms) {
        cmd_format_duration ((int64_t) (job->finished_ms - job->started_ms), buf, sizeof buf);
        s_line ("ran:", buf);
    }
    snprintf (buf, sizeof buf, "%.1f%%", job->progress * 100.0);
    s_line ("progress:", buf);
    s_line ("phase:", job->phase);
    s_line ("message:", job->message);
    s_line ("error:", job->error);
    s_line ("spec:", job->spec_summary);
    s_line ("result:", job->result_summary);
    for (size_t i = 0; i < job->n_outputs; i++) {
        snprintf (buf, sizeof buf, "%s=%s", job->outputs [i]->key, job->outputs [i]->value);
        s_line (i == 0 ? "outputs:" : "", buf);
    }
    char metrics [512];
    cmd_format_metrics (job->metrics, job->n_metrics, metrics, sizeof metrics);
    s_line ("metrics:", metrics);
}

int
cmd_status (cmd_ctx_t *ctx, int argc, char **argv)
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
            default:       return cmd_getopt_error ("status", c, argv);
        }
    }
    if (optind != argc - 1)
        return cmd_usage_error ("status", optind >= argc ? "missing job ID"
                                                         : "one job ID only");
    const char *id = argv [optind];

    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    Ty__JobInfo *job = NULL;
    int rc = ty_client_status (client, id, ctx->timeout_ms, &job);
    int exit_code;
    if (rc != TY_OK)
        exit_code = cmd_client_error (client, rc, "status %s", id);
    else if (ctx->json)
        exit_code = cmd_json_print (cmd_json_job (job));
    else {
        s_print (job);
        exit_code = TY_CMD_EXIT_OK;
    }
    ty_client_free_msg (job);
    ty_client_destroy (&client);
    return exit_code;
}

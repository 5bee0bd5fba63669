/*  trainyard ping: one round trip to the broker, in microseconds.
 *  --count N repeats it, which shows the spread rather than one sample. */
#include "cmd.h"
#include "ty_clock.h"
#include <inttypes.h>
#include <stdio.h>

#define S_PING_GAP_MS 200   /* between repeated pings: light on the broker, quick to read */

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard ping [--count N] [--json]\n"
        "\n"
        "Send PING to the broker and print the round trip time and its version.\n"
        "  --count N  ping N times (default 1)\n"
        "  --json     one JSON object per ping: broker, rtt_us, version\n"
        "  -h, --help this help\n");
}

int
cmd_ping (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_COUNT = 256, OPT_JSON };
    static const struct option opts [] = {
        { "count", required_argument, NULL, OPT_COUNT },
        { "json",  no_argument,       NULL, OPT_JSON },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    long count = 1;
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_COUNT:
                if (cmd_parse_long (optarg, 1, 1000000, &count))
                    return cmd_usage_error ("ping", "--count: '%s' is not a positive number", optarg);
                break;
            case OPT_JSON: ctx->json = 1; break;
            case 'h':      s_usage (stdout); return TY_CMD_EXIT_OK;
            default:       return cmd_getopt_error ("ping", c, argv);
        }
    }
    if (optind < argc)
        return cmd_usage_error ("ping", "unexpected argument '%s'", argv [optind]);

    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    int exit_code = TY_CMD_EXIT_OK;
    for (long i = 0; i < count && exit_code == TY_CMD_EXIT_OK; i++) {
        if (i > 0)
            ty_clock_sleep_ms (S_PING_GAP_MS);
        int64_t rtt_us = 0;
        int rc = ty_client_ping (client, ctx->timeout_ms, &rtt_us);
        if (rc != TY_OK) {
            exit_code = cmd_client_error (client, rc, "ping %s", ctx->broker);
            break;
        }
        const char *version = ty_client_broker_version (client);
        if (!version || !*version)
            version = "unknown";
        if (ctx->json) {
            cJSON *obj = cJSON_CreateObject ();
            if (obj && (!cJSON_AddStringToObject (obj, "broker", ctx->broker)
                    ||  !cJSON_AddNumberToObject (obj, "rtt_us", (double) rtt_us)
                    ||  !cJSON_AddStringToObject (obj, "version", version))) {
                cJSON_Delete (obj);
                obj = NULL;
            }
            exit_code = cmd_json_print (obj);
        }
        else
            printf ("pong from %s: %" PRId64 " µs, broker version %s\n", ctx->broker,
                    rtt_us, version);
        fflush (stdout);
    }
    ty_client_destroy (&client);
    return exit_code;
}

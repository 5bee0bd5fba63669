/*  trainyard: the command line of a trainyard cluster.
 *
 *  This file only parses the global options and dispatches to the
 *  subcommand table; every subcommand lives in client/cmd_<name>.c. The
 *  command talks to the broker exclusively through libtrainyard
 *  (client/ty_client.h), except `up`/`down`, which manage local processes.
 */
#include "cmd.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TY_VERSION
#define TY_VERSION "0.0.0"
#endif

typedef struct {
    const char *name;
    cmd_fn     *fn;
    const char *summary;
} s_command_t;

static const s_command_t s_commands [] = {
    { "up",      cmd_up,      "start a local cluster: redis, broker, workers" },
    { "down",    cmd_down,    "stop the cluster that `up --detach` started" },
    { "submit",  cmd_submit,  "submit jobs and print their ids" },
    { "status",  cmd_status,  "show one job" },
    { "list",    cmd_list,    "list jobs, newest first" },
    { "watch",   cmd_watch,   "follow jobs until they end (progress bar, ETA, metrics)" },
    { "cancel",  cmd_cancel,  "cancel a job" },
    { "logs",    cmd_logs,    "print a job's log lines" },
    { "workers", cmd_workers, "list the workers the broker knows" },
    { "ping",    cmd_ping,    "measure the round trip to the broker" },
    { "dataset", cmd_dataset, "import, append, list, show, export and remove datasets" },
    { "evaluate", cmd_evaluate, "evaluate a model version: metrics, latency, gate, report" },
    { "model",   cmd_model,   "the model registry: versions, stages, rollback, compare, export" },
    { "train",   cmd_train,   "train a model on a dataset and follow the job" },
    { "predict", cmd_predict, "predictions from a model's portable file (stdin -> stdout)" },
    { "pipeline", cmd_pipeline, "run pipeline files; status, list, cancel and retry pipelines" },
    { "schedule", cmd_schedule, "run pipelines on cron schedules (add, list, rm, pause, resume)" },
    { "trigger", cmd_trigger, "retrain triggers: new samples, model age, metric drop" },
    { "convert", cmd_convert, "convert a model version to fp32/fp16/int8/onnx and compare with fp32" },
    { NULL, NULL, NULL }
};

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard [OPTIONS] COMMAND [ARGS...]\n"
        "\n"
        "Options:\n"
        "  --broker ENDPOINT  broker client endpoint (env TRAINYARD_BROKER,\n"
        "                     default " TY_CMD_DEFAULT_BROKER ")\n"
        "  --timeout MS       wait this long for each answer (default %d)\n"
        "  --json             machine-readable output (one JSON value per line)\n"
        "  -h, --help         this help\n"
        "  --version          print the version\n"
        "\n"
        "Commands:\n", TY_CMD_DEFAULT_TIMEOUT_MS);
    for (const s_command_t *c = s_commands; c->name; c++)
        fprintf (out, "  %-9s %s\n", c->name, c->summary);
    fprintf (out,
        "  help      help on a command: trainyard help COMMAND\n"
        "\n"
        "Every command takes --help. Exit codes: 0 ok, 1 error, 2 bad usage,\n"
        "3 (watch) a job was cancelled.\n");
}

static const s_command_t *
s_find (const char *name)
{
    for (const s_command_t *c = s_commands; c->name; c++)
        if (!strcmp (c->name, name))
            return c;
    return NULL;
}

/* `trainyard help CMD` is `trainyard CMD --help`. */
static int
s_help (cmd_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2) {
        s_usage (stdout);
        return TY_CMD_EXIT_OK;
    }
    const s_command_t *c = s_find (argv [1]);
    if (!c)
        return cmd_usage_error (NULL, "unknown command '%s'", argv [1]);
    char *help_argv [] = { argv [1], (char *) "--help", NULL };
    cmd_getopt_reset ();
    return c->fn (ctx, 2, help_argv);
}

int
main (int argc, char **argv)
{
    enum { OPT_BROKER = 256, OPT_TIMEOUT, OPT_JSON, OPT_VERSION };
    static const struct option opts [] = {
        { "broker",  required_argument, NULL, OPT_BROKER },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "json",    no_argument,       NULL, OPT_JSON },
        { "help",    no_argument,       NULL, 'h' },
        { "version", no_argument,       NULL, OPT_VERSION },
        { NULL, 0, NULL, 0 }
    };
    const char *env = getenv ("TRAINYARD_BROKER");
    cmd_ctx_t ctx = {
        .broker = env && *env ? env : TY_CMD_DEFAULT_BROKER,
        .timeout_ms = TY_CMD_DEFAULT_TIMEOUT_MS,
        .json = 0,
    };
    cmd_getopt_reset ();
    int c;
    /* '+': stop at the subcommand, whose options are its own. */
    while ((c = getopt_long (argc, argv, "+:h", opts, NULL)) != -1) {
        long v;
        switch (c) {
            case OPT_BROKER:
                if (!*optarg)
                    return cmd_usage_error (NULL, "--broker needs an endpoint");
                ctx.broker = optarg;
                break;
            case OPT_TIMEOUT:
                if (cmd_parse_long (optarg, 1, 24L * 3600 * 1000, &v))
                    return cmd_usage_error (NULL, "--timeout: '%s' is not a number of ms", optarg);
                ctx.timeout_ms = (int) v;
                break;
            case OPT_JSON:
                ctx.json = 1;
                break;
            case 'h':
                s_usage (stdout);
                return TY_CMD_EXIT_OK;
            case OPT_VERSION:
                printf ("trainyard %s\n", TY_VERSION);
                return TY_CMD_EXIT_OK;
            default:
                return cmd_getopt_error (NULL, c, argv);
        }
    }
    if (optind >= argc) {
        s_usage (stderr);
        return TY_CMD_EXIT_USAGE;
    }
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    cmd_getopt_reset ();
    if (!strcmp (sub_argv [0], "help"))
        return s_help (&ctx, sub_argc, sub_argv);
    const s_command_t *cmd = s_find (sub_argv [0]);
    if (!cmd)
        return cmd_usage_error (NULL, "unknown command '%s'", sub_argv [0]);
    int rc = cmd->fn (&ctx, sub_argc, sub_argv);
    if (fflush (stdout) != 0 && rc == TY_CMD_EXIT_OK)
        rc = cmd_error ("cannot write to stdout");
    return rc;
}

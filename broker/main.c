/*  trainyard-broker: options, config file, signals, run. */
#include "ty_broker.h"
#include "ty_config.h"
#include "ty_error.h"
#include "ty_log.h"
#include "ty_wire.h"
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ty_broker_t *s_broker;

static void
s_on_signal (int sig)
{
    TY_UNUSED (sig);
    if (s_broker)
        ty_broker_stop (s_broker);
}

static void
s_usage (FILE *out)
{
    fprintf (out,
"usage: trainyard-broker [options]\n"
"\n"
"The trainyard broker: accepts jobs from clients, keeps their state in Redis,\n"
"dispatches them to workers and re-queues the work of dead workers.\n"
"\n"
"  --clients EP         client endpoint (default tcp://127.0.0.1:7700)\n"
"  --workers EP         worker endpoint (default tcp://127.0.0.1:7701)\n"
"                       use tcp://127.0.0.1:* for a free port (see --endpoint-file)\n"
"  --redis URL          redis://host:port or unix:///path (default redis://127.0.0.1:6379)\n"
"  --prefix P           Redis key prefix (default ty:)\n"
"  --heartbeat-ms N     heartbeat interval; 3 missed = dead (default 1000)\n"
"  --max-attempts N     attempts of a job whose worker dies (default 3)\n"
"  --max-msg-bytes N    larger messages are refused (default 16777216)\n"
"  --endpoint-file F    write the bound endpoints to F (\"clients EP\\nworkers EP\\n\")\n"
"  --config FILE        read 'key = value' lines with the option names above\n"
"  --log-level L        debug, info, warn or error (default info)\n"
"  --log-file F         append logs to F instead of stderr\n"
"  -h, --help           this text\n");
}

int
main (int argc, char **argv)
{
    static const struct option longopts [] = {
        { "clients",       required_argument, 0, 'c' },
        { "workers",       required_argument, 0, 'w' },
        { "redis",         required_argument, 0, 'r' },
        { "prefix",        required_argument, 0, 'p' },
        { "heartbeat-ms",  required_argument, 0, 'H' },
        { "max-attempts",  required_argument, 0, 'a' },
        { "max-msg-bytes", required_argument, 0, 'm' },
        { "endpoint-file", required_argument, 0, 'e' },
        { "config",        required_argument, 0, 'C' },
        { "log-level",     required_argument, 0, 'l' },
        { "log-file",      required_argument, 0, 'L' },
        { "help",          no_argument,       0, 'h' },
        { 0, 0, 0, 0 }
    };
    ty_config_t *cfg = ty_config_new ();
    if (!cfg)
        return 1;
    const char *config_file = NULL;
    int c;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            s_usage (stdout);
            ty_config_destroy (&cfg);
            return 0;
        }
        if (c == 'C') {
            config_file = optarg;
            continue;
        }
        if (c == '?') {
            s_usage (stderr);
            ty_config_destroy (&cfg);
            return 2;
        }
        for (const struct option *o = longopts; o->name; o++)
            if (o->val == c && ty_config_set (cfg, o->name, optarg) != TY_OK) {
                ty_config_destroy (&cfg);
                return 1;
            }
    }
    if (optind < argc) {
        fprintf (stderr, "trainyard-broker: unexpected argument '%s'\n", argv [optind]);
        s_usage (stderr);
        ty_config_destroy (&cfg);
        return 2;
    }
    char err [512];
    if (config_file && ty_config_load (cfg, config_file, err, sizeof err) != TY_OK) {
        fprintf (stderr, "trainyard-broker: %s\n", err);
        ty_config_destroy (&cfg);
        return 2;
    }
    long hb, attempts, maxmsg;
    int level = ty_log_level_parse (ty_config_get (cfg, "log-level", "info"));
    if (ty_config_int (cfg, "heartbeat-ms", 1000, 10, 600000, &hb, err, sizeof err)
    ||  ty_config_int (cfg, "max-attempts", 3, 1, 100, &attempts, err, sizeof err)
    ||  ty_config_int (cfg, "max-msg-bytes", TY_WIRE_MAX_MSG_BYTES, 1024, 1L << 30,
                       &maxmsg, err, sizeof err)
    ||  level < 0) {
        fprintf (stderr, "trainyard-broker: %s\n", level < 0
                 ? "--log-level: want debug, info, warn or error" : err);
        ty_config_destroy (&cfg);
        return 2;
    }
    ty_log_init ("broker", (ty_log_level_t) level);
    const char *log_file = ty_config_get (cfg, "log-file", NULL);
    if (log_file && ty_log_file (log_file) != 0) {
        fprintf (stderr, "trainyard-broker: cannot open log file %s\n", log_file);
        ty_config_destroy (&cfg);
        return 1;
    }
    ty_broker_opts_t opts = {
        .clients_ep    = ty_config_get (cfg, "clients", "tcp://127.0.0.1:7700"),
        .workers_ep    = ty_config_get (cfg, "workers", "tcp://127.0.0.1:7701"),
        .redis_url     = ty_config_get (cfg, "redis", "redis://127.0.0.1:6379"),
        .prefix        = ty_config_get (cfg, "prefix", "ty:"),
        .endpoint_file = ty_config_get (cfg, "endpoint-file", NULL),
        .heartbeat_ms  = (int) hb,
        .max_attempts  = (unsigned) attempts,
        .max_msg_bytes = (size_t) maxmsg,
    };
    s_broker = ty_broker_new (&opts);
    if (!s_broker) {
        fprintf (stderr, "trainyard-broker: cannot start (see the log)\n");
        ty_config_destroy (&cfg);
        return 1;
    }
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
    int rc = ty_broker_run (s_broker);
    ty_broker_destroy (&s_broker);
    ty_config_destroy (&cfg);
    return rc == TY_OK ? 0 : 1;
}

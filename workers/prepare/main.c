/*  trainyard-prepare: runs prepare jobs (dataset import and append) against
 *  a data directory of LMDB dataset versions. The job is ty_prepare.c; this
 *  file is options, the data directory and the runtime. */
#include "ty_error.h"
#include "ty_log.h"
#include "ty_prepare.h"
#include "ty_runtime.h"
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_NAME "trainyard-prepare"

static void
s_usage (FILE *out)
{
    fprintf (out,
"usage: " S_NAME " [options]\n"
"\n"
"A trainyard worker for prepare jobs: imports files and folders as dataset\n"
"versions (LMDB) and appends to them. Submit jobs with `trainyard dataset\n"
"import` and `trainyard dataset append`.\n"
"\n"
"  --data DIR         the data directory: datasets under DIR/datasets (default\n"
"                     env " TY_PREPARE_DATA_ENV ", else " TY_PREPARE_DATA_DEFAULT "); every\n"
"                     prepare, train and evaluate worker must see the same one\n"
"  --broker EP        the broker's worker endpoint (default tcp://127.0.0.1:7701)\n"
"  --capacity N       jobs at once (default 1)\n"
"  --heartbeat-ms N   heartbeat interval (default 1000)\n"
"  --id ID            worker id (default type-host-pid-random)\n"
"  --drain-ms N       on SIGTERM, wait this long for running jobs (default 10000)\n"
"  --log-level L      debug, info, warn or error (default info)\n"
"  --log-file F       append logs to F instead of stderr\n"
"  --test-pause-ms N  fault tests only: pause N ms (cancellable) before writing\n"
"  -h, --help         this text\n");
}

static int
s_number (const char *flag, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol (s, &end, 10);
    if (!*s || *end || errno || v < min || v > max) {
        fprintf (stderr, S_NAME ": %s: '%s' is not a number in [%ld, %ld]\n",
                 flag, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* mkdir -p: the data directory may be new and nested. 0 or errno. */
static int
s_mkdir_p (const char *path)
{
    char buf [PATH_MAX];
    if (snprintf (buf, sizeof buf, "%s", path) >= (int) sizeof buf)
        return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir (buf, 0755) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir (buf, 0755) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

int
main (int argc, char **argv)
{
    static const struct option longopts [] = {
        { "data",          required_argument, 0, 'D' },
        { "broker",        required_argument, 0, 'b' },
        { "capacity",      required_argument, 0, 'c' },
        { "heartbeat-ms",  required_argument, 0, 'H' },
        { "id",            required_argument, 0, 'i' },
        { "drain-ms",      required_argument, 0, 'd' },
        { "log-level",     required_argument, 0, 'l' },
        { "log-file",      required_argument, 0, 'L' },
        { "test-pause-ms", required_argument, 0, 'P' },
        { "help",          no_argument,       0, 'h' },
        { 0, 0, 0, 0 }
    };
    ty_runtime_opts_t opts = { .broker = "tcp://127.0.0.1:7701", .type = "prepare",
                               .capacity = 1, .fn = ty_prepare_job };
    ty_prepare_opts_t prep = { .data_dir = NULL };
    const char *log_file = NULL;
    int level = TY_LOG_INFO, c;
    long v;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'D': if (!*optarg) {
                      fprintf (stderr, S_NAME ": --data needs a directory\n");
                      return 2;
                  }
                  prep.data_dir = optarg; break;
        case 'b': opts.broker = optarg; break;
        case 'c': if (s_number ("--capacity", optarg, 1, 1024, &v)) return 2;
                  opts.capacity = (unsigned) v; break;
        case 'H': if (s_number ("--heartbeat-ms", optarg, 10, 600000, &v)) return 2;
                  opts.heartbeat_ms = (int) v; break;
        case 'd': if (s_number ("--drain-ms", optarg, 1, 86400000, &v)) return 2;
                  opts.drain_ms = (int) v; break;
        case 'P': if (s_number ("--test-pause-ms", optarg, 0, 3600000, &v)) return 2;
                  prep.pause_ms = (int) v; break;
        case 'i': if (strlen (optarg) == 0 || strlen (optarg) > 64) {
                      fprintf (stderr, S_NAME ": --id: 1 to 64 characters\n");
                      return 2;
                  }
                  opts.worker_id = optarg; break;
        case 'l': level = ty_log_level_parse (optarg);
                  if (level < 0) {
                      fprintf (stderr, S_NAME ": --log-level: debug, info, warn or error\n");
                      return 2;
                  }
                  break;
        case 'L': log_file = optarg; break;
        case 'h': s_usage (stdout); return 0;
        default:  s_usage (stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, S_NAME ": unexpected argument '%s'\n", argv [optind]);
        return 2;
    }
    if (!prep.data_dir) {
        const char *env = getenv (TY_PREPARE_DATA_ENV);
        prep.data_dir = env && *env ? env : TY_PREPARE_DATA_DEFAULT;
    }
    ty_log_init ("prepare", (ty_log_level_t) level);
    if (log_file && ty_log_file (log_file) != 0) {
        fprintf (stderr, S_NAME ": cannot open log file %s\n", log_file);
        return 1;
    }
    int err = s_mkdir_p (prep.data_dir);
    if (err) {
        fprintf (stderr, S_NAME ": cannot create the data directory %s: %s\n",
                 prep.data_dir, strerror (err));
        return 1;
    }
    /* Absolute, so the logs and results say where the data is whatever
     * directory the worker was started in. */
    char abs_dir [PATH_MAX];
    if (realpath (prep.data_dir, abs_dir))
        prep.data_dir = abs_dir;
    ty_info ("data directory %s", prep.data_dir);
    if (prep.pause_ms)
        ty_warn ("--test-pause-ms %d: every job pauses before writing (fault tests only)",
                 prep.pause_ms);

    opts.arg = &prep;
    ty_runtime_t *rt = ty_runtime_new (&opts);
    if (!rt) {
        fprintf (stderr, S_NAME ": cannot start the runtime\n");
        return 1;
    }
    ty_runtime_handle_signals (rt);
    int rc = ty_runtime_run (rt);
    ty_runtime_destroy (&rt);
    return rc == TY_OK ? 0 : 1;
}

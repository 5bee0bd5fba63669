/*  ty_worker_main: see ty_worker_main.h. */
#include "ty_worker_main.h"
#include "ty_error.h"
#include "ty_log.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    S_OPT_BROKER = 1, S_OPT_CAPACITY, S_OPT_HEARTBEAT, S_OPT_ID, S_OPT_DRAIN,
    S_OPT_LOG_LEVEL, S_OPT_LOG_FILE, S_OPT_DATA, S_OPT_THREADS, S_OPT_EXEC_LOG,
    S_OPT_RESOURCE,
    S_OPT_HELP = 'h'
};
#define S_OPTS_MAX 64

static void
s_usage (FILE *out, const ty_worker_def_t *def)
{
    fprintf (out, "usage: trainyard-%s [options]\n\n%s\n", def->type, def->about);
    if (def->flags & TY_WORKER_DATA)
        fprintf (out,
"  --data DIR         the data directory: datasets/, models/, checkpoints/ (default\n"
"                     env " TY_WORKER_DATA_ENV ", else " TY_WORKER_DATA_DEFAULT "); every\n"
"                     prepare, train and evaluate worker must see the same one\n");
    if (def->flags & TY_WORKER_THREADS)
        fprintf (out,
"  --threads N        compute threads per job (default 1: one per core is fastest)\n");
    fprintf (out,
"  --broker EP        the broker's worker endpoint (default tcp://127.0.0.1:7701)\n"
"  --capacity N       jobs at once (default 1)\n"
"  --heartbeat-ms N   heartbeat interval (default 1000)\n"
"  --id ID            worker id (default type-host-pid-random)\n"
"  --drain-ms N       on SIGTERM, wait this long for running jobs (default 10000)\n"
"  --resource K=V     what this worker offers, matched against a job's resources\n"
"                     (repeatable; default threads=<cores> memory_mb=<RAM>)\n");
    if (def->flags & TY_WORKER_EXEC_LOG)
        fprintf (out,
"  --exec-log FILE    append '<job id> <attempt>' for each completed execution\n");
    fprintf (out,
"  --log-level L      debug, info, warn or error (default info)\n"
"  --log-file F       append logs to F instead of stderr\n");
    if (def->options_help)
        fputs (def->options_help, out);
    fprintf (out, "  -h, --help         this text\n");
}

/* ---- resources: "key=value" a worker offers (READY) ----------------------- */

typedef struct {
    char   text [TY_WORKER_RESOURCES_MAX][TY_WORKER_RESOURCE_LEN];
    char  *ptr [TY_WORKER_RESOURCES_MAX];
    size_t n;
} s_resources_t;

static int
s_resource_has (const s_resources_t *res, const char *key)
{
    size_t klen = strlen (key);
    for (size_t i = 0; i < res->n; i++)
        if (!strncmp (res->text [i], key, klen) && res->text [i][klen] == '=')
            return 1;
    return 0;
}

static int
s_resource_add (s_resources_t *res, const char *prog, const char *kv)
{
    const char *eq = strchr (kv, '=');
    size_t klen = eq ? (size_t) (eq - kv) : 0;
    if (!eq || klen == 0 || klen > TY_RUNTIME_RESOURCE_KEY_MAX
    ||  strlen (kv) >= TY_WORKER_RESOURCE_LEN) {
        fprintf (stderr, "%s: --resource '%s': KEY=VALUE, a key of 1 to %d bytes, "
                 "at most %d bytes in all\n", prog, kv, TY_RUNTIME_RESOURCE_KEY_MAX,
                 TY_WORKER_RESOURCE_LEN - 1);
        return 2;
    }
    if (res->n == TY_WORKER_RESOURCES_MAX) {
        fprintf (stderr, "%s: more than %d --resource flags\n", prog, TY_WORKER_RESOURCES_MAX);
        return 2;
    }
    snprintf (res->text [res->n], TY_WORKER_RESOURCE_LEN, "%s", kv);
    res->ptr [res->n] = res->text [res->n];
    res->n++;
    return 0;
}

/* threads and memory_mb unless given: what the machine has, so a job asking
 * for threads=2 runs on any worker of a 2-core machine by default. */
static int
s_resource_defaults (s_resources_t *res, const char *prog)
{
    char kv [TY_WORKER_RESOURCE_LEN];
    long cores = sysconf (_SC_NPROCESSORS_ONLN);
    long pages = sysconf (_SC_PHYS_PAGES), page = sysconf (_SC_PAGESIZE);
    int rc = 0;
    if (!s_resource_has (res, "threads") && cores > 0) {
        snprintf (kv, sizeof kv, "threads=%ld", cores);
        rc = s_resource_add (res, prog, kv);
    }
    if (rc == 0 && !s_resource_has (res, "memory_mb") && pages > 0 && page > 0) {
        snprintf (kv, sizeof kv, "memory_mb=%lld", (long long) pages * page / (1024 * 1024));
        rc = s_resource_add (res, prog, kv);
    }
    return rc;
}

int
ty_worker_number (const char *type, const char *flag, const char *s, long min, long max,
                  long *out)
{
    char *end;
    errno = 0;
    long v = strtol (s, &end, 10);
    if (!*s || *end || errno || v < min || v > max) {
        fprintf (stderr, "trainyard-%s: %s: '%s' is not a number in [%ld, %ld]\n",
                 type, flag, s, min, max);
        return 2;
    }
    *out = v;
    return 0;
}

/* mkdir -p. 0 or errno. */
static int
s_mkdir_p (const char *path)
{
    char buf [PATH_MAX];
    if (snprintf (buf, sizeof buf, "%s", path) >= (int) sizeof buf)
        return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
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
ty_worker_main (int argc, char **argv, const ty_worker_def_t *def)
{
    static const struct option common [] = {
        { "broker",       required_argument, 0, S_OPT_BROKER },
        { "capacity",     required_argument, 0, S_OPT_CAPACITY },
        { "heartbeat-ms", required_argument, 0, S_OPT_HEARTBEAT },
        { "id",           required_argument, 0, S_OPT_ID },
        { "drain-ms",     required_argument, 0, S_OPT_DRAIN },
        { "log-level",    required_argument, 0, S_OPT_LOG_LEVEL },
        { "log-file",     required_argument, 0, S_OPT_LOG_FILE },
        { "resource",     required_argument, 0, S_OPT_RESOURCE },
        { "help",         no_argument,       0, S_OPT_HELP },
    };
    struct option longopts [S_OPTS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < sizeof common / sizeof common [0]; i++)
        longopts [n++] = common [i];
    if (def->flags & TY_WORKER_DATA)
        longopts [n++] = (struct option) { "data", required_argument, 0, S_OPT_DATA };
    if (def->flags & TY_WORKER_THREADS)
        longopts [n++] = (struct option) { "threads", required_argument, 0, S_OPT_THREADS };
    if (def->flags & TY_WORKER_EXEC_LOG)
        longopts [n++] = (struct option) { "exec-log", required_argument, 0, S_OPT_EXEC_LOG };
    for (const struct option *o = def->options; o && o->name && n < S_OPTS_MAX - 1; o++)
        longopts [n++] = *o;
    longopts [n] = (struct option) { 0, 0, 0, 0 };

    char prog [64];
    snprintf (prog, sizeof prog, "trainyard-%s", def->type);
    ty_runtime_opts_t opts = { .broker = "tcp://127.0.0.1:7701", .type = def->type,
                               .capacity = 1, .fn = def->fn, .arg = def->ctx };
    const char *env = getenv (TY_WORKER_DATA_ENV);
    ty_worker_args_t args = { .data_dir = env && *env ? env : TY_WORKER_DATA_DEFAULT,
                              .threads = 1, .exec_log_fd = -1 };
    const char *log_file = NULL;
    s_resources_t res = { .n = 0 };
    int level = TY_LOG_INFO, c, rc = 0;
    long v;
    while (rc == 0 && (c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case S_OPT_BROKER:    opts.broker = optarg; break;
        case S_OPT_CAPACITY:  if (!(rc = ty_worker_number (def->type, "--capacity", optarg,
                                                           1, 1024, &v)))
                                  opts.capacity = (unsigned) v;
                              break;
        case S_OPT_HEARTBEAT: if (!(rc = ty_worker_number (def->type, "--heartbeat-ms",
                                                           optarg, 10, 600000, &v)))
                                  opts.heartbeat_ms = (int) v;
                              break;
        case S_OPT_DRAIN:     if (!(rc = ty_worker_number (def->type, "--drain-ms", optarg,
                                                           1, 86400000, &v)))
                                  opts.drain_ms = (int) v;
                              break;
        case S_OPT_THREADS:   if (!(rc = ty_worker_number (def->type, "--threads", optarg,
                                                           1, TY_WORKER_THREADS_MAX, &v)))
                                  args.threads = (int) v;
                              break;
        case S_OPT_ID:
            if (strlen (optarg) == 0 || strlen (optarg) > 64) {
                fprintf (stderr, "%s: --id: 1 to 64 characters\n", prog);
                rc = 2;
            }
            opts.worker_id = optarg;
            break;
        case S_OPT_DATA:
            if (!*optarg) {
                fprintf (stderr, "%s: --data needs a directory\n", prog);
                rc = 2;
            }
            args.data_dir = optarg;
            break;
        case S_OPT_EXEC_LOG:
            if (args.exec_log_fd >= 0)
                close (args.exec_log_fd);
            args.exec_log_fd = open (optarg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (args.exec_log_fd < 0) {
                fprintf (stderr, "%s: --exec-log %s: %s\n", prog, optarg, strerror (errno));
                rc = 1;
            }
            break;
        case S_OPT_LOG_LEVEL:
            level = ty_log_level_parse (optarg);
            if (level < 0) {
                fprintf (stderr, "%s: --log-level: debug, info, warn or error\n", prog);
                rc = 2;
            }
            break;
        case S_OPT_LOG_FILE:  log_file = optarg; break;
        case S_OPT_RESOURCE:  rc = s_resource_add (&res, prog, optarg); break;
        case S_OPT_HELP:      s_usage (stdout, def); rc = -1; break;
        default:
            if (c >= TY_WORKER_OPT_USER && def->on_option)
                rc = def->on_option (def->ctx, c, optarg);
            else {
                s_usage (stderr, def);
                rc = 2;
            }
            break;
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf (stderr, "%s: unexpected argument '%s'\n", prog, argv [optind]);
        rc = 2;
    }
    char abs_dir [PATH_MAX];
    if (rc == 0) {
        ty_log_init (def->type, (ty_log_level_t) level);
        if (log_file && ty_log_file (log_file) != 0) {
            fprintf (stderr, "%s: cannot open log file %s\n", prog, log_file);
            rc = 1;
        }
    }
    if (rc == 0 && (def->flags & TY_WORKER_DATA)) {
        int err = s_mkdir_p (args.data_dir);
        if (err) {
            fprintf (stderr, "%s: cannot create the data directory %s: %s\n", prog,
                     args.data_dir, strerror (err));
            rc = 1;
        }
        /* absolute, so logs and results say where the data is whatever the
           directory the worker was started in */
        else
        if (realpath (args.data_dir, abs_dir))
            args.data_dir = abs_dir;
        if (rc == 0)
            ty_info ("data directory %s", args.data_dir);
    }
    if (rc == 0 && def->on_start)
        rc = def->on_start (def->ctx, &args);
    if (rc == 0)
        rc = s_resource_defaults (&res, prog);
    opts.resources = (const char *const *) res.ptr;
    opts.nresources = res.n;
    if (rc == 0) {
        ty_runtime_t *rt = ty_runtime_new (&opts);
        if (!rt) {
            fprintf (stderr, "%s: cannot start the runtime\n", prog);
            rc = 1;
        }
        else {
            ty_runtime_handle_signals (rt);
            rc = ty_runtime_run (rt) == TY_OK ? 0 : 1;
            ty_runtime_destroy (&rt);
        }
    }
    if (args.exec_log_fd >= 0)
        close (args.exec_log_fd);
    return rc < 0 ? 0 : rc;
}

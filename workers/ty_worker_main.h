/*  ty_worker_main: the main() every trainyard worker executable shares.
 *
 *  It parses the flags all workers have (--broker, --capacity,
 *  --heartbeat-ms, --id, --drain-ms, --resource, --log-level, --log-file,
 *  --help) and
 *  those a worker asks for (--data, --threads, --exec-log), plus the
 *  worker's own through a callback; sets up logging; creates the data
 *  directory; runs the runtime until SIGTERM/SIGINT. Each worker's main.c
 *  is then its job function and a ty_worker_def_t. */
#ifndef TY_WORKER_MAIN_H
#define TY_WORKER_MAIN_H

#include <getopt.h>
#include "ty_runtime.h"

#define TY_WORKER_DATA_ENV      "TRAINYARD_DATA"
#define TY_WORKER_DATA_DEFAULT  "./.trainyard/data"   /* `trainyard up` passes <state>/data */
#define TY_WORKER_THREADS_MAX   256
#define TY_WORKER_RESOURCES_MAX 32     /* --resource flags (= the broker's limit) */
#define TY_WORKER_RESOURCE_LEN  196    /* bytes of one "key=value", with the NUL */
#define TY_WORKER_OPT_USER      1000   /* first `val` free for a worker's own options */

/* Flags a worker asks for. */
#define TY_WORKER_DATA      0x1        /* --data DIR (created, made absolute) */
#define TY_WORKER_THREADS   0x2        /* --threads N (default 1) */
#define TY_WORKER_EXEC_LOG  0x4        /* --exec-log FILE ('<job> <attempt>' per completed run) */

typedef struct {
    const char *data_dir;     /* absolute; borrowed until ty_worker_main returns */
    int         threads;
    int         exec_log_fd;  /* -1: none */
} ty_worker_args_t;

typedef struct {
    const char *type;         /* job type: the program is trainyard-<type> */
    const char *about;        /* what --help says the worker does (lines end in \n) */
    unsigned    flags;        /* TY_WORKER_* */
    const struct option *options;   /* the worker's own, `val` >= TY_WORKER_OPT_USER,
                                       ending with a zeroed entry; may be NULL */
    const char *options_help; /* their --help lines; may be NULL */
    /* One of the worker's own options. 0, or an exit code (2 bad usage) after
       printing why. */
    int (*on_option) (void *ctx, int val, const char *arg);
    /* After parsing and logging, before the runtime starts. 0 or an exit code. */
    int (*on_start) (void *ctx, const ty_worker_args_t *args);
    ty_job_fn  *fn;
    void       *ctx;          /* given to on_option, on_start and fn */
} ty_worker_def_t;

/* Runs the worker; returns main()'s exit code: 0, 1 error, 2 bad usage. */
int ty_worker_main (int argc, char **argv, const ty_worker_def_t *def);

/* Parses a number flag for on_option: 0, or prints "<prog>: <flag>: ..." and
 * returns 2. */
int ty_worker_number (const char *type, const char *flag, const char *s, long min, long max,
                      long *out);

#endif

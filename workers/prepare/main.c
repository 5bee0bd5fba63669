/*  trainyard-prepare: runs prepare jobs (dataset import and append) against
 *  a data directory of LMDB dataset versions. The job is ty_prepare.c; the
 *  flags, the data directory and the runtime are ty_worker_main's. */
#include "ty_log.h"
#include "ty_prepare.h"
#include "ty_worker_main.h"

enum { S_OPT_PAUSE = TY_WORKER_OPT_USER };

static int
s_option (void *arg, int val, const char *value)
{
    ty_prepare_opts_t *prep = arg;
    long v;
    if (val != S_OPT_PAUSE)
        return 2;
    int rc = ty_worker_number ("prepare", "--test-pause-ms", value, 0, 3600000, &v);
    if (rc == 0)
        prep->pause_ms = (int) v;
    return rc;
}

static int
s_start (void *arg, const ty_worker_args_t *args)
{
    ty_prepare_opts_t *prep = arg;
    prep->data_dir = args->data_dir;
    if (prep->pause_ms)
        ty_warn ("--test-pause-ms %d: every job pauses before writing (fault tests only)",
                 prep->pause_ms);
    return 0;
}

int
main (int argc, char **argv)
{
    static const struct option options [] = {
        { "test-pause-ms", required_argument, 0, S_OPT_PAUSE },
        { 0, 0, 0, 0 }
    };
    ty_prepare_opts_t prep = { .data_dir = NULL };
    ty_worker_def_t def = {
        .type = "prepare",
        .about = "A trainyard worker for prepare jobs: imports files and folders as dataset\n"
                 "versions (LMDB) and appends to them. Submit jobs with `trainyard dataset\n"
                 "import` and `trainyard dataset append`.\n",
        .flags = TY_WORKER_DATA,
        .options = options,
        .options_help = "  --test-pause-ms N  fault tests only: pause N ms (cancellable) before writing\n",
        .on_option = s_option,
        .on_start = s_start,
        .fn = ty_prepare_job,
        .ctx = &prep,
    };
    return ty_worker_main (argc, argv, &def);
}

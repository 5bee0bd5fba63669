/*  peer_gearman: the dispatch benchmark's workload on Gearman (libgearman).
 *
 *  Usage: peer_gearman [--port P] [--workers W] [--background] [--system NAME]
 *                      throughput N | rtt N | recovery
 *
 *  gearmand is started by bench/dispatch; this program forks W worker
 *  processes (one libgearman worker each) and plays the client.
 *
 *  Two ways to run, because Gearman persists only background jobs:
 *  - foreground (default): the client submits ordinary tasks and gearmand
 *    itself tells it when each completes. Nothing is written anywhere: this
 *    is Gearman in memory, not durable.
 *  - --background: background jobs, which gearmand writes to its persistent
 *    queue (--queue-type=libsqlite3) before acknowledging. Gearman gives the
 *    client no result for those, so each worker reports completion to the
 *    client through a pipe (the cheapest channel there is: it flatters
 *    Gearman, not trainyard).
 *
 *  Recovery: a background "sleep" job; the worker that takes it reports its
 *  pid through the pipe and blocks. The client SIGKILLs it and times until
 *  another worker reports holding the job (gearmand re-queues the job of a
 *  worker whose connection closed).
 *
 *  The function name carries the client's pid so that jobs left over by an
 *  earlier run (e.g. the recovery job) are never picked up by this one.
 */
#include "bench_util.h"

#include <errno.h>
#include <libgearman/gearman.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT_MS 60000        /* no single libgearman call may hang the bench */

static int s_port = 4730;
static size_t s_chunk = 500;    /* tasks per run_tasks call, see s_run_many */
static int s_background = 0;
static const char *s_system = "gearman";
static char s_function [64];
static int s_pipe [2] = { -1, -1 };     /* workers -> client notes */

/* What a worker tells the client through the pipe; 8 bytes < PIPE_BUF, so
 * each write is atomic even with several workers writing at once. */
typedef struct {
    int32_t kind;       /* NOTE_DONE or NOTE_HELD */
    int32_t pid;
} note_t;
enum { NOTE_DONE = 1, NOTE_HELD = 2 };

static int
s_note_write (int32_t kind)
{
    note_t note = { kind, (int32_t) getpid () };
    for (;;) {
        ssize_t rc = write (s_pipe [1], &note, sizeof note);
        if (rc == (ssize_t) sizeof note)
            return 0;
        if (rc < 0 && errno == EINTR)
            continue;
        perror ("write note");
        return -1;
    }
}

static int
s_note_read (note_t *note)
{
    size_t got = 0;
    while (got < sizeof *note) {
        ssize_t rc = read (s_pipe [0], (char *) note + got, sizeof *note - got);
        if (rc > 0)
            got += (size_t) rc;
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else {
            fprintf (stderr, "reading worker notes: %s\n", rc ? strerror (errno) : "EOF");
            return -1;
        }
    }
    return 0;
}

/* ---- worker process ------------------------------------------------------- */

static gearman_return_t
s_job (gearman_job_st *job, void *context)
{
    (void) context;
    size_t size = gearman_job_workload_size (job);
    const char *workload = gearman_job_workload (job);
    if (size == 5 && memcmp (workload, "sleep", 5) == 0) {
        /* Recovery: say who holds the job, then hold it until killed. */
        if (s_note_write (NOTE_HELD) != 0)
            return GEARMAN_ERROR;
        for (;;)
            pause ();
    }
    if (s_background && s_note_write (NOTE_DONE) != 0)
        return GEARMAN_ERROR;
    return GEARMAN_SUCCESS;     /* WORK_COMPLETE, no payload: a noop has no output */
}

static int
s_worker (void *arg)
{
    (void) arg;
    close (s_pipe [0]);
    gearman_worker_st *w = gearman_worker_create (NULL);
    if (!w) {
        fprintf (stderr, "gearman_worker_create failed\n");
        return 1;
    }
    gearman_return_t ret = gearman_worker_add_server (w, "127.0.0.1", (in_port_t) s_port);
    if (gearman_success (ret)) {
        gearman_function_t fn = gearman_function_create (s_job);
        ret = gearman_worker_define_function (w, s_function, strlen (s_function), fn, 0, NULL);
    }
    while (gearman_success (ret))
        ret = gearman_worker_work (w);
    fprintf (stderr, "gearman worker: %s\n", gearman_worker_error (w));
    gearman_worker_free (w);
    return 1;
}

/* ---- client --------------------------------------------------------------- */

typedef struct {
    size_t completed, failed;
    int64_t last_us;
} tally_t;

static gearman_return_t
s_on_complete (gearman_task_st *task)
{
    tally_t *t = gearman_task_context (task);
    t->completed++;
    t->last_us = bu_now_us ();
    return GEARMAN_SUCCESS;
}

static gearman_return_t
s_on_fail (gearman_task_st *task)
{
    tally_t *t = gearman_task_context (task);
    t->failed++;
    return GEARMAN_SUCCESS;
}

static gearman_client_st *
s_client_new (void)
{
    gearman_client_st *c = gearman_client_create (NULL);
    if (!c) {
        fprintf (stderr, "gearman_client_create failed\n");
        return NULL;
    }
    gearman_client_set_timeout (c, TIMEOUT_MS);
    /* Completed tasks are freed by the library: 20 k tasks stay cheap. */
    gearman_client_add_options (c, GEARMAN_CLIENT_FREE_TASKS);
    gearman_return_t ret = gearman_client_add_server (c, "127.0.0.1", (in_port_t) s_port);
    if (gearman_failed (ret)) {
        fprintf (stderr, "gearman_client_add_server: %s\n", gearman_client_error (c));
        gearman_client_free (c);
        return NULL;
    }
    return c;
}

/* Submits n tasks and runs them: libgearman pipelines the submits.
 * Foreground: returns when gearmand reported every completion.
 * Background: returns when every job is queued (and persisted).
 * libgearman walks its list of tasks for every reply, so a run of 20 k tasks
 * is quadratic and the client, not gearmand, becomes the bottleneck (~8 k
 * jobs/s). Runs of s_chunk tasks avoid that; 300-500 measured best here. */
static int
s_run_many (gearman_client_st *c, size_t n, tally_t *tally)
{
    gearman_client_set_complete_fn (c, s_on_complete);
    gearman_client_set_fail_fn (c, s_on_fail);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && i % s_chunk == 0) {
            gearman_return_t ret = gearman_client_run_tasks (c);
            if (gearman_failed (ret)) {
                fprintf (stderr, "run_tasks: %s\n", gearman_client_error (c));
                return -1;
            }
        }
        gearman_return_t ret;
        gearman_task_st *task = s_background
            ? gearman_client_add_task_background (c, NULL, tally, s_function, NULL, "noop", 4, &ret)
            : gearman_client_add_task (c, NULL, tally, s_function, NULL, "noop", 4, &ret);
        if (!task || gearman_failed (ret)) {
            fprintf (stderr, "add_task: %s\n", gearman_client_error (c));
            return -1;
        }
    }
    gearman_return_t ret = gearman_client_run_tasks (c);
    if (gearman_failed (ret)) {
        fprintf (stderr, "run_tasks: %s\n", gearman_client_error (c));
        return -1;
    }
    if (tally->failed) {
        fprintf (stderr, "%zu tasks failed\n", tally->failed);
        return -1;
    }
    return 0;
}

typedef struct {
    size_t n;
    int64_t last_us;
    int rc;
} reader_t;

/* Background mode: counts n completion notes from the workers. */
static void *
s_reader (void *arg)
{
    reader_t *r = arg;
    r->rc = 0;
    for (size_t i = 0; i < r->n; i++) {
        note_t note;
        if (s_note_read (&note) != 0) {
            r->rc = -1;
            return NULL;
        }
        r->last_us = bu_now_us ();
    }
    return NULL;
}

/* Runs n jobs to completion; *last_us gets when the client learned of the last. */
static int
s_batch (gearman_client_st *c, size_t n, int64_t *last_us)
{
    tally_t tally = { 0 };
    if (!s_background) {
        if (s_run_many (c, n, &tally) != 0)
            return -1;
        if (tally.completed != n) {
            fprintf (stderr, "%zu of %zu tasks completed\n", tally.completed, n);
            return -1;
        }
        *last_us = tally.last_us;
        return 0;
    }
    /* Completion notes are read while jobs are still being submitted. */
    reader_t r = { .n = n };
    pthread_t tid;
    if (pthread_create (&tid, NULL, s_reader, &r) != 0) {
        fprintf (stderr, "pthread_create failed\n");
        return -1;
    }
    int rc = s_run_many (c, n, &tally);
    if (rc != 0) {
        /* The reader would wait forever for notes that will not come. */
        pthread_cancel (tid);
    }
    pthread_join (tid, NULL);
    if (rc != 0 || r.rc != 0)
        return -1;
    *last_us = r.last_us;
    return 0;
}

static int
s_throughput (size_t n, size_t warmup)
{
    gearman_client_st *c = s_client_new ();
    if (!c)
        return 1;
    int64_t last_us = 0;
    int rc = 1;
    if (warmup > 0 && s_batch (c, warmup, &last_us) != 0)
        goto out;
    int64_t t0 = bu_now_us ();
    if (s_batch (c, n, &last_us) != 0)
        goto out;
    bu_report_throughput (s_system, n, last_us - t0);
    rc = 0;
out:
    gearman_client_free (c);
    return rc;
}

/* One job, submitted and waited for. */
static int
s_one (gearman_client_st *c)
{
    gearman_return_t ret;
    if (!s_background) {
        size_t size = 0;
        void *result = gearman_client_do (c, s_function, NULL, "noop", 4, &size, &ret);
        free (result);
        if (gearman_failed (ret)) {
            fprintf (stderr, "gearman_client_do: %s\n", gearman_client_error (c));
            return -1;
        }
        return 0;
    }
    gearman_job_handle_t handle;
    ret = gearman_client_do_background (c, s_function, NULL, "noop", 4, handle);
    if (gearman_failed (ret)) {
        fprintf (stderr, "gearman_client_do_background: %s\n", gearman_client_error (c));
        return -1;
    }
    note_t note;
    return s_note_read (&note) == 0 && note.kind == NOTE_DONE ? 0 : -1;
}

static int
s_rtt (size_t n, size_t warmup)
{
    int64_t *samples = calloc (n, sizeof *samples);
    gearman_client_st *c = s_client_new ();
    int rc = 1;
    if (!samples || !c)
        goto out;
    for (size_t i = 0; i < warmup + n; i++) {
        int64_t t0 = bu_now_us ();
        if (s_one (c) != 0)
            goto out;
        if (i >= warmup)
            samples [i - warmup] = bu_now_us () - t0;
    }
    bu_report_rtt (s_system, samples, n);
    rc = 0;
out:
    if (c)
        gearman_client_free (c);
    free (samples);
    return rc;
}

static int
s_recovery (void)
{
    gearman_client_st *c = s_client_new ();
    if (!c)
        return 1;
    int rc = 1;
    gearman_job_handle_t handle;
    gearman_return_t ret = gearman_client_do_background (c, s_function, NULL, "sleep", 5, handle);
    if (gearman_failed (ret)) {
        fprintf (stderr, "gearman_client_do_background: %s\n", gearman_client_error (c));
        goto out;
    }
    note_t first, second;
    if (s_note_read (&first) != 0 || first.kind != NOTE_HELD)
        goto out;
    int64_t t0 = bu_now_us ();
    if (kill ((pid_t) first.pid, SIGKILL) != 0) {
        perror ("kill");
        goto out;
    }
    if (s_note_read (&second) != 0 || second.kind != NOTE_HELD || second.pid == first.pid)
        goto out;
    bu_report_recovery (s_system, "kill", (double) (bu_now_us () - t0) / 1000.0);
    rc = 0;
out:
    gearman_client_free (c);
    return rc;
}

int
main (int argc, char **argv)
{
    static const char usage [] =
        "usage: peer_gearman [--port P] [--workers W] [--warmup N] [--background]\n"
        "                    [--chunk TASKS] [--system NAME] throughput N | rtt N | recovery\n";
    size_t nworkers = 2;
    long warmup = -1;
    int i = 1;
    for (; i < argc && strncmp (argv [i], "--", 2) == 0; i++) {
        if (strcmp (argv [i], "--background") == 0) {
            s_background = 1;
            continue;
        }
        if (i + 1 >= argc)
            bu_usage (usage);
        if (strcmp (argv [i], "--port") == 0)
            s_port = atoi (argv [++i]);
        else
        if (strcmp (argv [i], "--workers") == 0)
            nworkers = bu_parse_count (argv [++i]);
        else
        if (strcmp (argv [i], "--warmup") == 0)
            warmup = atol (argv [++i]);
        else
        if (strcmp (argv [i], "--system") == 0)
            s_system = argv [++i];
        else
        if (strcmp (argv [i], "--chunk") == 0)
            s_chunk = bu_parse_count (argv [++i]);
        else
            bu_usage (usage);
    }
    if (i >= argc || s_port <= 0 || s_port > 65535 || nworkers > 64)
        bu_usage (usage);
    const char *mode = argv [i];
    size_t n = 0;
    if (strcmp (mode, "recovery") != 0) {
        if (i + 1 >= argc)
            bu_usage (usage);
        n = bu_parse_count (argv [i + 1]);
    }
    else
    if (nworkers < 2)
        bu_usage ("recovery needs at least 2 workers\n");

    snprintf (s_function, sizeof s_function, "noop-%d", (int) getpid ());
    signal (SIGPIPE, SIG_IGN);
    if (pipe (s_pipe) != 0) {
        perror ("pipe");
        return 1;
    }
    pid_t workers [64] = { 0 };
    int rc = 1;
    for (size_t w = 0; w < nworkers; w++)
        if ((workers [w] = bu_spawn (s_worker, NULL)) < 0)
            goto out;

    if (strcmp (mode, "throughput") == 0)
        rc = s_throughput (n, warmup < 0 ? 100 : (size_t) warmup);
    else
    if (strcmp (mode, "rtt") == 0)
        rc = s_rtt (n, warmup < 0 ? 20 : (size_t) warmup);
    else
    if (strcmp (mode, "recovery") == 0)
        rc = s_recovery ();
    else
        fprintf (stderr, "unknown mode '%s'\n", mode);
out:
    for (size_t w = 0; w < nworkers; w++)
        bu_kill_and_reap (workers [w]);
    close (s_pipe [0]);
    close (s_pipe [1]);
    return rc;
}

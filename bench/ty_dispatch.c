/*  ty_dispatch: trainyard's side of the dispatch benchmark (bench/dispatch).
 *
 *  Usage: ty_dispatch [--broker ENDPOINT] [--batch B] [--warmup W]
 *                     [--heartbeat-ms H] throughput N | rtt N | recovery
 *
 *  The broker, Redis and the noop workers are started by bench/dispatch;
 *  this program is only the client, through libtrainyard:
 *
 *  throughput N  N noop jobs (sleep 0) submitted in batches of B with
 *                watch=1, then events read until N final ones: jobs/s from
 *                the first submit to the last final event.
 *  rtt N         N times, one after another: a batch of one job with
 *                watch=1, then its events until the final one.
 *  recovery      a long noop job (sleep 60 s); once RUNNING, the worker
 *                holding it (pid from the broker's worker list) gets
 *                SIGKILL: time until the job's RUNNING event of attempt 2
 *                on another worker. Then the worker holding attempt 2 gets
 *                SIGSTOP (a silent loss: heartbeats stop, TCP stays open):
 *                time until RUNNING of attempt 3 on another worker, also in
 *                heartbeat intervals. (An attempt assigned to the lost
 *                worker itself does not count; attempt= says which did.) The stopped
 *                process is then killed (bench/dispatch restarts workers
 *                that die) and the job cancelled. Needs two live workers
 *                at each step, so the restarted one must be back in time.
 *
 *  Figures go to stdout as "RESULT system=trainyard mode=... key=value" lines.
 */
#include "bench_util.h"
#include "ty_client.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define SYSTEM "trainyard"
#define CALL_TIMEOUT_MS 30000       /* any one library call */
#define EVENT_TIMEOUT_MS 30000      /* silence that means the run is stuck */
#define SLEEP_JOB_MS 60000          /* the recovery job: outlives every phase */

static const char *s_broker = "tcp://127.0.0.1:7700";
static size_t s_batch = 500;
static int s_heartbeat_ms = 1000;

/* ---- helpers ------------------------------------------------------------- */

static void
s_fail (ty_client_t *c, const char *what, int rc)
{
    fprintf (stderr, "ty_dispatch: %s: %s%s%s\n", what, ty_strerror (rc),
             c && *ty_client_errstr (c) ? ": " : "", c ? ty_client_errstr (c) : "");
}

/* Submits n noop items (all sharing one spec) with watch=1. */
static int
s_submit (ty_client_t *c, ty_submit_item_t *items, size_t n, char *ids)
{
    int rc = ty_client_submit_batch (c, items, n, 1, CALL_TIMEOUT_MS, ids);
    if (rc != TY_OK)
        s_fail (c, "submit", rc);
    return rc;
}

/* Reads events until `want` more final ones have arrived (or, with
 * timeout_ms 0, until none is waiting). Final events of failed jobs are
 * counted in *failed. *last_us: when the last final event was read. */
static int
s_count_finals (ty_client_t *c, size_t want, int timeout_ms, size_t *finals,
                size_t *failed, int64_t *last_us)
{
    size_t target = *finals + want;
    while (*finals < target) {
        Ty__Event *ev = NULL;
        int rc = ty_client_next_event (c, timeout_ms, &ev);
        if (rc == TY_ETIMEDOUT && timeout_ms == 0)
            return TY_OK;
        if (rc != TY_OK) {
            s_fail (c, "next_event", rc);
            return rc;
        }
        if (ev->final) {
            (*finals)++;
            if (strcmp (ev->state, "SUCCEEDED") != 0)
                (*failed)++;
            if (last_us)
                *last_us = bu_now_us ();
        }
        ty_client_free_msg (ev);
    }
    return TY_OK;
}

/* Runs n jobs to completion; *last_us gets when the last final event came. */
static int
s_run_jobs (ty_client_t *c, ty_submit_item_t *items, char *ids, size_t n,
            int64_t *last_us)
{
    size_t submitted = 0, finals = 0, failed = 0;
    while (submitted < n) {
        size_t k = n - submitted < s_batch ? n - submitted : s_batch;
        if (s_submit (c, items, k, ids) != TY_OK)
            return -1;
        submitted += k;
        /* Take the events already here, so none piles up while submitting. */
        if (s_count_finals (c, submitted - finals, 0, &finals, &failed, last_us) != TY_OK)
            return -1;
    }
    if (s_count_finals (c, n - finals, EVENT_TIMEOUT_MS, &finals, &failed, last_us) != TY_OK)
        return -1;
    if (failed) {
        fprintf (stderr, "ty_dispatch: %zu of %zu jobs did not succeed\n", failed, n);
        return -1;
    }
    return 0;
}

/* ---- throughput and round trip -------------------------------------------- */

/* This process's user + system CPU time. */
static int64_t
s_cpu_us (void)
{
    struct rusage ru;
    if (getrusage (RUSAGE_SELF, &ru) != 0)
        return 0;
    return (int64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000
         + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static int
s_throughput (ty_client_t *c, size_t n, size_t warmup)
{
    int rc = 1;
    Ty__JobSpec *spec = ty_client_noop_spec (0, 0, 0);
    ty_submit_item_t *items = calloc (s_batch, sizeof *items);
    char *ids = malloc (s_batch * (TY_ID_LEN + 1));
    if (!spec || !items || !ids) {
        fprintf (stderr, "ty_dispatch: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < s_batch; i++)
        items [i].spec = spec;

    int64_t last_us = 0;
    /* Warm-up: workers attached, Lua scripts loaded, pages touched. */
    if (warmup > 0 && s_run_jobs (c, items, ids, warmup, &last_us) != 0)
        goto out;
    int64_t cpu0 = s_cpu_us (), t0 = bu_now_us ();
    if (s_run_jobs (c, items, ids, n, &last_us) != 0)
        goto out;
    double secs = (double) (last_us - t0) / 1e6;
    /* Like bu_report_throughput, plus this client's own CPU time: with
     * everything on one 2-core machine, the client's share matters. */
    printf ("RESULT system=%s mode=throughput n=%zu secs=%.3f jobs_per_s=%.0f "
            "client_ms_per_kjob=%.1f\n", SYSTEM, n, secs, secs > 0 ? (double) n / secs : 0.0,
            (double) (s_cpu_us () - cpu0) / (double) n);
    fflush (stdout);
    rc = 0;
out:
    free (ids);
    free (items);
    ty_client_free_spec (spec);
    return rc;
}

/* One job: submit, then its events until the final one. */
static int
s_one (ty_client_t *c, ty_submit_item_t *item)
{
    char id [TY_ID_LEN + 1];
    if (s_submit (c, item, 1, id) != TY_OK)
        return -1;
    for (;;) {
        Ty__Event *ev = NULL;
        int rc = ty_client_next_event (c, EVENT_TIMEOUT_MS, &ev);
        if (rc != TY_OK) {
            s_fail (c, "next_event", rc);
            return -1;
        }
        int done = ev->final && strcmp (ev->job_id, id) == 0;
        int ok = done && strcmp (ev->state, "SUCCEEDED") == 0;
        if (done && !ok)
            fprintf (stderr, "ty_dispatch: job %s ended %s: %s\n", id, ev->state, ev->error);
        ty_client_free_msg (ev);
        if (done)
            return ok ? 0 : -1;
    }
}

static int
s_rtt (ty_client_t *c, size_t n, size_t warmup)
{
    int rc = 1;
    Ty__JobSpec *spec = ty_client_noop_spec (0, 0, 0);
    int64_t *samples = calloc (n, sizeof *samples);
    if (!spec || !samples) {
        fprintf (stderr, "ty_dispatch: out of memory\n");
        goto out;
    }
    ty_submit_item_t item = { .spec = spec };
    for (size_t i = 0; i < warmup + n; i++) {
        int64_t t0 = bu_now_us ();
        if (s_one (c, &item) != 0)
            goto out;
        if (i >= warmup)
            samples [i - warmup] = bu_now_us () - t0;
    }
    bu_report_rtt (SYSTEM, samples, n);
    rc = 0;
out:
    free (samples);
    ty_client_free_spec (spec);
    return rc;
}

/* ---- recovery -------------------------------------------------------------- */

/* Waits for the job's state event `state` with attempt >= min_attempt;
 * *attempt_out (may be NULL) gets its attempt. *queued_us (may be NULL)
 * gets when a QUEUED event came first, if one did: the broker noticed. */
static int
s_wait_state (ty_client_t *c, const char *id, const char *state, unsigned min_attempt,
              int timeout_ms, int64_t *queued_us, unsigned *attempt_out)
{
    int64_t deadline = bu_now_us () + (int64_t) timeout_ms * 1000;
    for (;;) {
        int64_t left_ms = (deadline - bu_now_us ()) / 1000;
        if (left_ms <= 0) {
            fprintf (stderr, "ty_dispatch: job %s not %s (attempt %u) within %d ms\n",
                     id, state, min_attempt, timeout_ms);
            return -1;
        }
        Ty__Event *ev = NULL;
        int rc = ty_client_next_event (c, (int) left_ms, &ev);
        if (rc == TY_ETIMEDOUT)
            continue;
        if (rc != TY_OK) {
            s_fail (c, "next_event", rc);
            return -1;
        }
        int mine = strcmp (ev->job_id, id) == 0 && strcmp (ev->kind, "state") == 0;
        int hit = mine && strcmp (ev->state, state) == 0 && ev->attempt >= min_attempt;
        if (mine && queued_us && !*queued_us && strcmp (ev->state, "QUEUED") == 0)
            *queued_us = bu_now_us ();
        if (hit && attempt_out)
            *attempt_out = ev->attempt;
        int ended = mine && ev->final;
        if (ended)
            fprintf (stderr, "ty_dispatch: job %s ended %s: %s\n", id, ev->state, ev->error);
        ty_client_free_msg (ev);
        if (hit)
            return 0;
        if (ended)
            return -1;
    }
}

/* 1 if pid is a live trainyard process on this machine. The pid comes from
 * the broker: never signal anything that is not one of our workers. */
static int
s_is_trainyard (pid_t pid)
{
    char path [64], comm [64] = "";
    snprintf (path, sizeof path, "/proc/%d/comm", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return 0;
    if (!fgets (comm, sizeof comm, f))
        comm [0] = '\0';
    fclose (f);
    return strncmp (comm, "trainyard-", 10) == 0;
}

/* Process state letter from /proc (R, S, T for stopped...); '?' if gone. */
static char
s_proc_state (pid_t pid)
{
    char path [64], buf [512];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return '?';
    size_t len = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf [len] = '\0';
    char *paren = strrchr (buf, ')');       /* comm may hold spaces */
    return paren && paren [1] == ' ' ? paren [2] : '?';
}

/* The pid of the worker holding job id, polling the broker's worker list
 * for up to timeout_ms, or -1. A worker listed with pid `exclude` does not
 * count (the one just lost); if only it holds the job, keeps polling and in
 * the end returns `exclude`. *spare (may be NULL): wait too until another
 * live, not stopped worker is listed (it will take the job next). */
static pid_t
s_holder (ty_client_t *c, const char *id, int timeout_ms, pid_t exclude, int *spare)
{
    int64_t deadline = bu_now_us () + (int64_t) timeout_ms * 1000;
    int excluded_holds = 0;
    do {
        Ty__WorkerList *list = NULL;
        int rc = ty_client_workers (c, CALL_TIMEOUT_MS, &list);
        if (rc != TY_OK) {
            s_fail (c, "workers", rc);
            return -1;
        }
        pid_t holder = 0;
        int others = 0;
        excluded_holds = 0;
        for (size_t w = 0; w < list->n_workers; w++) {
            Ty__WorkerInfo *info = list->workers [w];
            int holds = 0;
            for (size_t j = 0; j < info->n_jobs; j++)
                holds |= strcmp (info->jobs [j], id) == 0;
            if (holds && (pid_t) info->pid == exclude)
                excluded_holds = 1;
            else
            if (holds)
                holder = (pid_t) info->pid;
            else
            if (info->pid && s_is_trainyard ((pid_t) info->pid)
            &&  s_proc_state ((pid_t) info->pid) != 'T')
                others++;
        }
        ty_client_free_msg (list);
        if (holder > 0 && (!spare || others > 0)) {
            if (spare)
                *spare = others;
            return holder;
        }
        usleep (20 * 1000);
    } while (bu_now_us () < deadline);
    if (excluded_holds)
        return exclude;
    fprintf (stderr, "ty_dispatch: no worker listed as holding %s%s within %d ms\n",
             id, spare ? " with another live worker beside it" : "", timeout_ms);
    return -1;
}

/* After `victim` was lost: waits until the job is RUNNING again (attempt >=
 * min_attempt) on another worker. *t_out: when that RUNNING event came.
 * A RUNNING event for an assignment to the victim itself (a broker that
 * has not noticed the loss yet) does not count: it is reported and the
 * wait goes on for the next attempt. */
static int
s_wait_redispatch (ty_client_t *c, const char *id, unsigned min_attempt, pid_t victim,
                   int timeout_ms, int64_t *queued_us, int64_t *t_out, unsigned *attempt_out)
{
    int64_t deadline = bu_now_us () + (int64_t) timeout_ms * 1000;
    unsigned want = min_attempt;
    for (;;) {
        int left_ms = (int) ((deadline - bu_now_us ()) / 1000);
        unsigned attempt = 0;
        if (left_ms <= 0
        ||  s_wait_state (c, id, "RUNNING", want, left_ms, queued_us, &attempt) != 0)
            return -1;
        *t_out = bu_now_us ();
        pid_t holder = s_holder (c, id, 1000, victim, NULL);
        if (holder < 0)
            return -1;
        if (holder != victim) {
            *attempt_out = attempt;
            return 0;
        }
        fprintf (stderr, "ty_dispatch: attempt %u of %s went to the lost worker %d "
                 "itself; waiting for the next\n", attempt, id, (int) victim);
        want = attempt + 1;
    }
}

static int
s_signal (pid_t pid, int sig)
{
    if (!s_is_trainyard (pid)) {
        fprintf (stderr, "ty_dispatch: pid %d is not a trainyard process here; "
                 "is the broker on this machine?\n", (int) pid);
        return -1;
    }
    if (kill (pid, sig) != 0) {
        fprintf (stderr, "ty_dispatch: kill %d: %s\n", (int) pid, strerror (errno));
        return -1;
    }
    return 0;
}

/* Reads events until the job's final one (or timeout_ms passes). */
static void
s_wait_final (ty_client_t *c, const char *id, int timeout_ms)
{
    int64_t deadline = bu_now_us () + (int64_t) timeout_ms * 1000;
    int64_t left_ms;
    while ((left_ms = (deadline - bu_now_us ()) / 1000) > 0) {
        Ty__Event *ev = NULL;
        if (ty_client_next_event (c, (int) left_ms, &ev) != TY_OK)
            break;
        int done = ev->final && strcmp (ev->job_id, id) == 0;
        ty_client_free_msg (ev);
        if (done)
            return;
    }
    fprintf (stderr, "ty_dispatch: job %s did not end within %d ms of its cancel\n",
             id, timeout_ms);
}

/* One RESULT line: time to RUNNING again, to the QUEUED event if one came
 * (the broker noticed the loss), and the former in heartbeat intervals. */
static void
s_report_recovery (const char *kind, int64_t t0, int64_t queued_us, int64_t t1,
                   unsigned attempt)
{
    double ms = (double) (t1 - t0) / 1000.0;
    char requeue [48] = "";
    if (queued_us)
        snprintf (requeue, sizeof requeue, " requeue_ms=%.1f",
                  (double) (queued_us - t0) / 1000.0);
    printf ("RESULT system=%s mode=recovery kind=%s ms=%.1f%s attempt=%u "
            "heartbeat_ms=%d intervals=%.2f\n",
            SYSTEM, kind, ms, requeue, attempt, s_heartbeat_ms, ms / s_heartbeat_ms);
    fflush (stdout);
}

static int
s_recovery (ty_client_t *c)
{
    int rc = 1;
    pid_t stopped = 0;
    char id [TY_ID_LEN + 1] = "";
    Ty__JobSpec *spec = ty_client_noop_spec (SLEEP_JOB_MS, 0, 0);
    if (!spec) {
        fprintf (stderr, "ty_dispatch: out of memory\n");
        return 1;
    }
    spec->max_attempts = 5;     /* two losses must not exhaust it */
    ty_submit_item_t item = { .spec = spec };
    if (s_submit (c, &item, 1, id) != TY_OK
    ||  s_wait_state (c, id, "RUNNING", 1, EVENT_TIMEOUT_MS, NULL, NULL) != 0)
        goto out;

    /* 1. a dead process: SIGKILL; the TCP connection closes at once.
     * Not before another worker is up to take the job: one killed by the
     * previous run may still be restarting, and its start-up time is not
     * the broker's recovery time. */
    int spare = 0;
    pid_t first = s_holder (c, id, 15000, 0, &spare);
    if (first <= 0)
        goto out;
    int64_t queued_us = 0, t1 = 0, t0 = bu_now_us ();
    unsigned attempt = 0;
    if (s_signal (first, SIGKILL) != 0
    ||  s_wait_redispatch (c, id, 2, first, EVENT_TIMEOUT_MS, &queued_us, &t1, &attempt) != 0)
        goto out;
    s_report_recovery ("kill", t0, queued_us, t1, attempt);

    /* 2. a silent loss: SIGSTOP; heartbeats stop, the connection stays.
     * Another worker must be up to take the job (bench/dispatch restarts
     * the one killed above), so wait for it before stopping this one. */
    pid_t second = s_holder (c, id, 15000, 0, &spare);
    if (second <= 0)
        goto out;
    queued_us = 0;
    t0 = bu_now_us ();
    if (s_signal (second, SIGSTOP) != 0)
        goto out;
    stopped = second;
    if (s_wait_redispatch (c, id, attempt + 1, second, 20 * s_heartbeat_ms + EVENT_TIMEOUT_MS,
                           &queued_us, &t1, &attempt) != 0)
        goto out;
    s_report_recovery ("silent", t0, queued_us, t1, attempt);
    rc = 0;
out:
    /* The stopped worker is killed, not resumed: a SIGCONT would make it
     * reconnect with a fenced attempt, a test's business, not a benchmark's. */
    if (stopped > 0 && s_is_trainyard (stopped) && kill (stopped, SIGKILL) != 0)
        fprintf (stderr, "ty_dispatch: kill %d: %s\n", (int) stopped, strerror (errno));
    if (*id) {
        /* Cancel, and see it end: the next run needs both workers free. */
        int crc = ty_client_cancel (c, id, "benchmark done", CALL_TIMEOUT_MS);
        if (crc == TY_OK)
            s_wait_final (c, id, 10000);
        else
        if (crc != TY_ESTATE)
            s_fail (c, "cancel", crc);
    }
    ty_client_free_spec (spec);
    return rc;
}

int
main (int argc, char **argv)
{
    static const char usage [] =
        "usage: ty_dispatch [--broker ENDPOINT] [--batch B] [--warmup W] [--heartbeat-ms H]\n"
        "                   throughput N | rtt N | recovery\n";
    long warmup = -1;
    int i = 1;
    for (; i < argc && strncmp (argv [i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            bu_usage (usage);
        if (strcmp (argv [i], "--broker") == 0)
            s_broker = argv [i + 1];
        else
        if (strcmp (argv [i], "--batch") == 0)
            s_batch = bu_parse_count (argv [i + 1]);
        else
        if (strcmp (argv [i], "--warmup") == 0)
            warmup = atol (argv [i + 1]);
        else
        if (strcmp (argv [i], "--heartbeat-ms") == 0)
            s_heartbeat_ms = atoi (argv [i + 1]);
        else
            bu_usage (usage);
    }
    if (i >= argc || s_heartbeat_ms <= 0)
        bu_usage (usage);
    const char *mode = argv [i];
    size_t n = 0;
    if (strcmp (mode, "recovery") != 0) {
        if (i + 1 >= argc)
            bu_usage (usage);
        n = bu_parse_count (argv [i + 1]);
    }

    ty_client_t *c = ty_client_new (s_broker);
    if (!c) {
        fprintf (stderr, "ty_dispatch: cannot make a client socket\n");
        return 1;
    }
    int rc = 1;
    int prc = ty_client_ping (c, 10000, NULL);
    if (prc != TY_OK)
        s_fail (c, s_broker, prc);
    else
    if (strcmp (mode, "throughput") == 0)
        rc = s_throughput (c, n, warmup < 0 ? 100 : (size_t) warmup);
    else
    if (strcmp (mode, "rtt") == 0)
        rc = s_rtt (c, n, warmup < 0 ? 20 : (size_t) warmup);
    else
    if (strcmp (mode, "recovery") == 0)
        rc = s_recovery (c);
    else
        fprintf (stderr, "unknown mode '%s'\n", mode);
    ty_client_destroy (&c);
    return rc;
}

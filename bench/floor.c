/*  floor: what this machine's parts cost before trainyard does anything.
 *
 *  Usage: floor --redis-port P [--n N] [--jobs J] [--batch B]
 *
 *  Prints (RESULT lines, system=floor), in one run:
 *    mode=zmq_rtt     round trip of a small message, DEALER -> ROUTER echo in
 *                     a forked process, over loopback TCP, N in a row;
 *    mode=redis_rtt   round trip of one transaction like a turn of one job
 *                     (MULTI, HSET of 4 fields, XADD, EXEC) on the Redis at
 *                     port P (run it with AOF, fsync every second), N in a row;
 *    mode=path        the sum of the medians along trainyard's critical path:
 *                     two ZeroMQ round trips (client-broker, broker-worker) and
 *                     two Redis transactions (job RUNNING before the ASSIGN,
 *                     SUCCEEDED before the client hears) — a floor for the
 *                     round trip p50 of bench/dispatch;
 *    mode=redis_jobs  J jobs' writes pushed into Redis as fast as it takes
 *                     them (pipelined, B jobs to a transaction, one
 *                     transaction per transition, nothing else running):
 *                     kind=hash  what docs/redis-keys.md writes per job (the
 *                                  job hash at submit, RUNNING and the end; a
 *                                  ty:events entry each; queue, lease, jobs and
 *                                  active membership, one command per key);
 *                     kind=log   only the three ty:events entries, no hash
 *                                  and no sets: the least a per-transition
 *                                  record can cost.
 *                     Redis alone, with a core to itself: a ceiling for
 *                     trainyard's end-to-end jobs/s, which also needs the
 *                     broker, the workers and the client on the same 2 cores.
 *
 *  Writes keys under "floor:" only, and deletes them at the end. Not a test.
 */
#include "bench_util.h"

#include <hiredis/hiredis.h>
#include <zmq.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_WARMUP 200
#define S_MAX_BATCH 1024

/* Prints a round-trip RESULT line; returns the p50 in µs. */
static int
s_report_rtt (const char *mode, int64_t *samples, size_t n)
{
    int64_t p50 = bu_percentile (samples, n, 50);
    printf ("RESULT system=floor mode=%s n=%zu p50_us=%" PRId64 " p99_us=%" PRId64 "\n",
            mode, n, p50, bu_percentile (samples, n, 99));
    return (int) p50;
}

/* ---- ZeroMQ round trip -------------------------------------------------------- */

typedef struct {
    int report_fd;          /* where the child writes its endpoint */
} s_echo_args_t;

/* The echo server, in a forked child: a ROUTER on a port the kernel picks,
   sending back what it gets. */
static int
s_echo (void *arg)
{
    s_echo_args_t *a = arg;
    void *ctx = zmq_ctx_new ();
    void *router = ctx ? zmq_socket (ctx, ZMQ_ROUTER) : NULL;
    char endpoint [64];
    size_t len = sizeof endpoint;
    if (!router || zmq_bind (router, "tcp://127.0.0.1:*") != 0
    ||  zmq_getsockopt (router, ZMQ_LAST_ENDPOINT, endpoint, &len) != 0
    ||  write (a->report_fd, endpoint, sizeof endpoint) != (ssize_t) sizeof endpoint)
        return 1;
    close (a->report_fd);
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init (&id);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&id, router, 0) < 0 || zmq_msg_recv (&body, router, 0) < 0)
            return 1;
        if (zmq_msg_send (&id, router, ZMQ_SNDMORE) < 0 || zmq_msg_send (&body, router, 0) < 0)
            return 1;
    }
}

static int
s_zmq_rtt (size_t n)
{
    int fds [2];
    if (pipe (fds) != 0) {
        perror ("floor: pipe");
        return -1;
    }
    /* Fork before this process has a ZeroMQ context (they do not survive
       a fork). */
    s_echo_args_t args = { .report_fd = fds [1] };
    pid_t child = bu_spawn (s_echo, &args);
    close (fds [1]);
    char endpoint [64] = "";
    ssize_t got = child < 0 ? -1 : read (fds [0], endpoint, sizeof endpoint);
    close (fds [0]);
    if (got != (ssize_t) sizeof endpoint) {
        fprintf (stderr, "floor: the echo server did not start\n");
        if (child > 0)
            bu_kill_and_reap (child);
        return -1;
    }
    void *ctx = zmq_ctx_new ();
    if (!ctx) {
        bu_kill_and_reap (child);
        return -1;
    }
    int rc = -1, linger = 0;
    int64_t *samples = calloc (n, sizeof *samples);
    void *dealer = zmq_socket (ctx, ZMQ_DEALER);
    if (!samples || !dealer || zmq_setsockopt (dealer, ZMQ_LINGER, &linger, sizeof linger) != 0
    ||  zmq_connect (dealer, endpoint) != 0)
        goto out;
    int timeout = 5000;
    zmq_setsockopt (dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char payload [64] = "ASSIGN job 0123456789abcdef noop", buf [64];
    for (size_t i = 0; i < S_WARMUP + n; i++) {
        int64_t t0 = bu_now_us ();
        if (zmq_send (dealer, payload, sizeof payload, 0) < 0
        ||  zmq_recv (dealer, buf, sizeof buf, 0) < 0) {
            fprintf (stderr, "floor: zmq round trip: %s\n", zmq_strerror (zmq_errno ()));
            goto out;
        }
        if (i >= S_WARMUP)
            samples [i - S_WARMUP] = bu_now_us () - t0;
    }
    rc = s_report_rtt ("zmq_rtt", samples, n);
out:
    if (dealer)
        zmq_close (dealer);
    bu_kill_and_reap (child);
    zmq_ctx_term (ctx);
    free (samples);
    return rc;
}

/* ---- Redis ---------------------------------------------------------------------- */

/* Reads k replies; -1 on a connection error or an error reply. */
static int
s_replies (redisContext *r, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        redisReply *reply = NULL;
        if (redisGetReply (r, (void **) &reply) != REDIS_OK || !reply) {
            fprintf (stderr, "floor: redis: %s\n", r->errstr);
            return -1;
        }
        int bad = reply->type == REDIS_REPLY_ERROR;
        if (bad)
            fprintf (stderr, "floor: redis: %s\n", reply->str);
        freeReplyObject (reply);
        if (bad)
            return -1;
    }
    return 0;
}

static int
s_redis_rtt (redisContext *r, size_t n)
{
    int64_t *samples = calloc (n, sizeof *samples);
    if (!samples)
        return -1;
    int rc = -1;
    for (size_t i = 0; i < S_WARMUP + n; i++) {
        int64_t t0 = bu_now_us ();
        if (redisAppendCommand (r, "MULTI") != REDIS_OK
        ||  redisAppendCommand (r, "HSET floor:job:%llu state RUNNING attempt 1 worker noop-host-1-abcd "
                                   "started_ms 1795326004258", (unsigned long long) i) != REDIS_OK
        ||  redisAppendCommand (r, "XADD floor:events * job %llu state RUNNING attempt 1 "
                                   "worker noop-host-1-abcd", (unsigned long long) i) != REDIS_OK
        ||  redisAppendCommand (r, "EXEC") != REDIS_OK
        ||  s_replies (r, 4) != 0)
            goto out;
        if (i >= S_WARMUP)
            samples [i - S_WARMUP] = bu_now_us () - t0;
    }
    rc = s_report_rtt ("redis_rtt", samples, n);
out:
    free (samples);
    return rc;
}

/* One variadic command: CMD KEY [score] id [score] id ... for the batch. */
static int
s_set_cmd (redisContext *r, const char *cmd, const char *key, int with_score,
           char ids [][24], size_t b)
{
    const char *argv [2 + 2 * S_MAX_BATCH];
    size_t lens [2 + 2 * S_MAX_BATCH];
    size_t k = 0;
    argv [k] = cmd; lens [k++] = strlen (cmd);
    argv [k] = key; lens [k++] = strlen (key);
    for (size_t j = 0; j < b; j++) {
        if (with_score) {
            /* the id's digits double as a whole-number score */
            argv [k] = ids [j] + 6; lens [k++] = strlen (ids [j] + 6);
        }
        argv [k] = ids [j]; lens [k++] = strlen (ids [j]);
    }
    return redisAppendCommandArgv (r, (int) k, argv, lens) == REDIS_OK ? 0 : -1;
}

/* Appends one transaction: transition t (0 submit, 1 RUNNING, 2 end) of a
   batch; returns how many replies it will produce, or -1. */
static long
s_append_turn (redisContext *r, int log_only, int t, char ids [][24], size_t b)
{
    static const char *state [] = { "QUEUED", "RUNNING", "SUCCEEDED" };
    long replies = 2;
    if (redisAppendCommand (r, "MULTI") != REDIS_OK)
        return -1;
    for (size_t j = 0; j < b; j++) {
        const char *id = ids [j];
        int bad = 0;
        if (!log_only) {
            if (t == 0)
                bad = redisAppendCommand (r,
                    "HSET floor:job:%s id %s type noop state QUEUED priority 0 attempt 0 "
                    "max_attempts 3 created_ms 1795326004257 queued_ms 1795326004257 "
                    "spec %s score 2200818581556257 spec_pb %b", id, id,
                    "noop sleep_ms=0 fail=0 output_bytes=0", "\n\0", (size_t) 2);
            else
            if (t == 1)
                bad = redisAppendCommand (r, "HSET floor:job:%s state RUNNING attempt 1 "
                    "worker noop-host-1-abcd started_ms 1795326004258", id);
            else
                bad = redisAppendCommand (r, "HSET floor:job:%s state SUCCEEDED "
                    "finished_ms 1795326004259 result ok", id);
            replies++;
        }
        if (bad != REDIS_OK
        ||  redisAppendCommand (r, t == 0 ? "XADD floor:events * job %s state %s attempt 0"
                                          : "XADD floor:events * job %s state %s attempt 1 "
                                            "worker noop-host-1-abcd", id, state [t]) != REDIS_OK)
            return -1;
        replies++;
    }
    if (!log_only) {
        int bad = t == 0 ? s_set_cmd (r, "ZADD", "floor:jobs", 1, ids, b)
                         | s_set_cmd (r, "SADD", "floor:active", 0, ids, b)
                         | s_set_cmd (r, "ZADD", "floor:queue:noop", 1, ids, b)
                : t == 1 ? s_set_cmd (r, "ZREM", "floor:queue:noop", 0, ids, b)
                         | s_set_cmd (r, "ZADD", "floor:leases", 1, ids, b)
                         : s_set_cmd (r, "ZREM", "floor:leases", 0, ids, b)
                         | s_set_cmd (r, "SREM", "floor:active", 0, ids, b);
        if (bad)
            return -1;
        replies += t == 0 ? 3 : 2;
    }
    if (redisAppendCommand (r, "EXEC") != REDIS_OK)
        return -1;
    return replies;
}

static int
s_redis_jobs (redisContext *r, int log_only, size_t jobs, size_t batch)
{
    char (*ids) [24] = calloc (batch, sizeof *ids);
    if (!ids)
        return -1;
    long pending = 0;
    int rc = -1;
    int64_t t0 = bu_now_us ();
    for (size_t done = 0; done < jobs; done += batch) {
        for (size_t j = 0; j < batch; j++)
            snprintf (ids [j], sizeof ids [j], "floor-%zu", 1000000000 + done + j);
        /* each transition its own transaction, as the broker's turns are */
        for (int t = 0; t < 3; t++) {
            long k = s_append_turn (r, log_only, t, ids, batch);
            if (k < 0)
                goto out;
            pending += k;
        }
        /* keep a bounded window in flight: Redis' replies must not pile up */
        while (pending > 4000) {
            if (s_replies (r, 1) != 0)
                goto out;
            pending--;
        }
    }
    if (s_replies (r, (size_t) pending) != 0)
        goto out;
    double secs = (double) (bu_now_us () - t0) / 1e6;
    printf ("RESULT system=floor mode=redis_jobs kind=%s n=%zu batch=%zu jobs_per_s=%.0f\n",
            log_only ? "log" : "hash", jobs, batch, secs > 0 ? (double) jobs / secs : 0.0);
    rc = 0;
out:
    free (ids);
    return rc;
}

/* Deletes floor:* (SCAN, so a big run does not block Redis for long). */
static void
s_cleanup (redisContext *r)
{
    char cursor [32] = "0";
    do {
        redisReply *s = redisCommand (r, "SCAN %s MATCH floor:* COUNT 1000", cursor);
        if (!s || s->type != REDIS_REPLY_ARRAY || s->elements != 2) {
            if (s)
                freeReplyObject (s);
            return;
        }
        snprintf (cursor, sizeof cursor, "%s", s->element [0]->str);
        for (size_t i = 0; i < s->element [1]->elements; i++) {
            redisReply *d = redisCommand (r, "UNLINK %s", s->element [1]->element [i]->str);
            if (d)
                freeReplyObject (d);
        }
        freeReplyObject (s);
    } while (strcmp (cursor, "0"));
}

int
main (int argc, char **argv)
{
    const char *usage = "usage: floor --redis-port P [--n N] [--jobs J] [--batch B]\n";
    int port = 0;
    size_t n = 2000, jobs = 40000, batch = 64;
    static const struct option opts [] = {
        { "redis-port", required_argument, 0, 'p' },
        { "n",          required_argument, 0, 'n' },
        { "jobs",       required_argument, 0, 'j' },
        { "batch",      required_argument, 0, 'b' },
        { "help",       no_argument,       0, 'h' },
        { 0, 0, 0, 0 }
    };
    int c;
    while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': port = (int) bu_parse_count (optarg); break;
        case 'n': n = bu_parse_count (optarg); break;
        case 'j': jobs = bu_parse_count (optarg); break;
        case 'b': batch = bu_parse_count (optarg); break;
        case 'h': fputs (usage, stdout); return 0;
        default:  bu_usage (usage);
        }
    }
    if (port <= 0 || port > 65535 || optind != argc || batch > S_MAX_BATCH)
        bu_usage (usage);
    jobs = (jobs + batch - 1) / batch * batch;

    int zmq_p50 = s_zmq_rtt (n);
    struct timeval tv = { 10, 0 };
    redisContext *r = redisConnectWithTimeout ("127.0.0.1", port, tv);
    if (!r || r->err) {
        fprintf (stderr, "floor: redis 127.0.0.1:%d: %s\n", port, r ? r->errstr : "out of memory");
        if (r)
            redisFree (r);
        return 1;
    }
    redisSetTimeout (r, tv);
    int redis_p50 = s_redis_rtt (r, n);
    if (zmq_p50 >= 0 && redis_p50 >= 0)
        printf ("RESULT system=floor mode=path zmq_rtts=2 redis_rtts=2 p50_us=%d\n",
                2 * zmq_p50 + 2 * redis_p50);
    int rc = zmq_p50 < 0 || redis_p50 < 0;
    if (s_redis_jobs (r, 0, jobs, batch) != 0 || s_redis_jobs (r, 1, jobs, batch) != 0)
        rc = 1;
    s_cleanup (r);
    redisFree (r);
    fflush (stdout);
    return rc;
}

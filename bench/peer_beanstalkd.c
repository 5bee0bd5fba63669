/*  peer_beanstalkd: the dispatch benchmark's workload on beanstalkd.
 *
 *  Usage: peer_beanstalkd [--port P] [--workers W] throughput N | rtt N | recovery
 *
 *  beanstalkd itself is started by bench/dispatch (with -b DIR for its
 *  binlog). This program forks W worker processes and plays the client.
 *  It speaks beanstalkd's text protocol over a plain socket: no library.
 *
 *  "The client learns the result": beanstalkd has no result channel, so
 *  each worker, after running a job, puts a small result job into a tube
 *  private to this client ("done-<pid>"), then deletes the job; the client
 *  reserves and deletes those results. Tube names carry the client's pid so
 *  that leftovers of an earlier run can never be counted.
 *
 *  Recovery: the client puts a "sleep" job; the worker that reserves it
 *  reports its pid through the done tube and then blocks. The client kills
 *  it with SIGKILL and times until another worker reports holding the job
 *  (beanstalkd releases a reserved job when its connection closes).
 */
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SYSTEM "beanstalkd"
#define BATCH 100               /* puts pipelined per write when submitting many */
#define NOOP_TTR 60             /* s: far above a noop, so TTR never fires */
#define SLEEP_TTR 3600          /* s: recovery must come from the closed connection */
#define MAX_BODY 256

static int s_port = 11300;
static char s_jobs_tube [64];
static char s_done_tube [64];

/* ---- a buffered connection ------------------------------------------------ */

typedef struct {
    int fd;
    char buf [65536];
    size_t len, off;
} conn_t;

static int
conn_open (conn_t *c)
{
    memset (c, 0, sizeof *c);
    c->fd = socket (AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        perror ("socket");
        return -1;
    }
    /* Small request/response exchanges: Nagle would add up to 40 ms each. */
    int one = 1;
    if (setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        perror ("setsockopt TCP_NODELAY");
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) s_port) };
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (connect (c->fd, (struct sockaddr *) &sa, sizeof sa) != 0) {
        fprintf (stderr, "beanstalkd at 127.0.0.1:%d: %s\n", s_port, strerror (errno));
        close (c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void
conn_close (conn_t *c)
{
    if (c->fd >= 0)
        close (c->fd);
    c->fd = -1;
}

static int
conn_write (conn_t *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t rc = write (c->fd, data, len);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            perror ("write to beanstalkd");
            return -1;
        }
        data += rc;
        len -= (size_t) rc;
    }
    return 0;
}

static int
conn_printf (conn_t *c, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
conn_printf (conn_t *c, const char *fmt, ...)
{
    char line [512];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (line, sizeof line, fmt, ap);
    va_end (ap);
    if (n < 0 || (size_t) n >= sizeof line)
        return -1;
    return conn_write (c, line, (size_t) n);
}

/* Makes at least one more byte available; -1 on EOF or error. */
static int
conn_fill (conn_t *c)
{
    if (c->off > 0) {
        memmove (c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == sizeof c->buf)
        return -1;
    for (;;) {
        ssize_t rc = read (c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (rc > 0) {
            c->len += (size_t) rc;
            return 0;
        }
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0)
            fprintf (stderr, "beanstalkd closed the connection\n");
        else
            perror ("read from beanstalkd");
        return -1;
    }
}

/* Reads one "\r\n"-terminated line, without the terminator. */
static int
conn_line (conn_t *c, char *line, size_t cap)
{
    for (;;) {
        char *start = c->buf + c->off;
        char *nl = memchr (start, '\n', c->len - c->off);
        if (nl) {
            size_t n = (size_t) (nl - start);
            if (n > 0 && start [n - 1] == '\r')
                n--;
            if (n >= cap)
                n = cap - 1;
            memcpy (line, start, n);
            line [n] = '\0';
            c->off += (size_t) (nl - start) + 1;
            return 0;
        }
        if (conn_fill (c) != 0)
            return -1;
    }
}

/* Reads a job body of n bytes plus its "\r\n". */
static int
conn_body (conn_t *c, char *body, size_t n, size_t cap)
{
    while (c->len - c->off < n + 2)
        if (conn_fill (c) != 0)
            return -1;
    size_t keep = n < cap - 1 ? n : cap - 1;
    memcpy (body, c->buf + c->off, keep);
    body [keep] = '\0';
    c->off += n + 2;
    return 0;
}

/* Reads one reply line and checks that it starts with `expect`. */
static int
conn_expect (conn_t *c, const char *expect)
{
    char line [256];
    if (conn_line (c, line, sizeof line) != 0)
        return -1;
    if (strncmp (line, expect, strlen (expect)) != 0) {
        fprintf (stderr, "beanstalkd: expected %s, got '%s'\n", expect, line);
        return -1;
    }
    return 0;
}

/* Sends one command and checks its one-line reply. */
static int
conn_cmd (conn_t *c, const char *cmd, const char *expect)
{
    if (conn_write (c, cmd, strlen (cmd)) != 0)
        return -1;
    return conn_expect (c, expect);
}

/* Watch only `tube` (drop "default"). */
static int
conn_watch_only (conn_t *c, const char *tube)
{
    char cmd [128];
    snprintf (cmd, sizeof cmd, "watch %s\r\n", tube);
    if (conn_cmd (c, cmd, "WATCHING") != 0)
        return -1;
    return conn_cmd (c, "ignore default\r\n", "WATCHING");
}

static int
conn_use (conn_t *c, const char *tube)
{
    char cmd [128];
    snprintf (cmd, sizeof cmd, "use %s\r\n", tube);
    return conn_cmd (c, cmd, "USING");
}

/* Reads "RESERVED <id> <bytes>" and the body. */
static int
conn_reserved (conn_t *c, unsigned long long *id, char *body, size_t cap)
{
    char line [256];
    size_t bytes = 0;
    if (conn_line (c, line, sizeof line) != 0)
        return -1;
    if (sscanf (line, "RESERVED %llu %zu", id, &bytes) != 2) {
        fprintf (stderr, "beanstalkd: expected RESERVED, got '%s'\n", line);
        return -1;
    }
    return conn_body (c, body, bytes, cap);
}

/* ---- worker process ------------------------------------------------------- */

/* Reserve a job, put its result into the done tube, delete it, reserve the
 * next: the three commands go in one write, so one round trip per job. */
static int
s_worker (void *arg)
{
    (void) arg;
    static conn_t conn;     /* this process's only connection; 64 KB, so not on the stack */
    conn_t *c = &conn;
    if (conn_open (c) != 0)
        return 1;
    if (conn_watch_only (c, s_jobs_tube) != 0 || conn_use (c, s_done_tube) != 0)
        return 1;
    if (conn_write (c, "reserve\r\n", 9) != 0)
        return 1;
    for (;;) {
        unsigned long long id;
        char body [MAX_BODY];
        if (conn_reserved (c, &id, body, sizeof body) != 0)
            return 1;
        if (strcmp (body, "sleep") == 0) {
            /* Recovery: say who holds the job, then hold it until killed. */
            char held [32];
            int hlen = snprintf (held, sizeof held, "held %d", (int) getpid ());
            if (conn_printf (c, "put 0 0 %d %d\r\n%s\r\n", NOOP_TTR, hlen, held) != 0
            ||  conn_expect (c, "INSERTED") != 0)
                return 1;
            for (;;)
                pause ();
        }
        /* The result echoes the job's body so the client can match it. */
        if (conn_printf (c, "put 0 0 %d %zu\r\n%s\r\ndelete %llu\r\nreserve\r\n",
                         NOOP_TTR, strlen (body), body, id) != 0
        ||  conn_expect (c, "INSERTED") != 0
        ||  conn_expect (c, "DELETED") != 0)
            return 1;
    }
}

/* ---- client --------------------------------------------------------------- */

/* Reserves and deletes n results from the done tube. The delete of one
 * result goes out with the reserve of the next: one round trip each. */
static int
s_drain (conn_t *c, size_t n, int64_t *last_us)
{
    if (n == 0)
        return 0;
    if (conn_write (c, "reserve\r\n", 9) != 0)
        return -1;
    for (size_t got = 0; got < n; got++) {
        unsigned long long id;
        char body [MAX_BODY];
        if (conn_reserved (c, &id, body, sizeof body) != 0)
            return -1;
        if (last_us)
            *last_us = bu_now_us ();
        if (got + 1 < n) {
            if (conn_printf (c, "delete %llu\r\nreserve\r\n", id) != 0
            ||  conn_expect (c, "DELETED") != 0)
                return -1;
        }
        else
        if (conn_printf (c, "delete %llu\r\n", id) != 0
        ||  conn_expect (c, "DELETED") != 0)
            return -1;
    }
    return 0;
}

/* Puts n noop jobs, BATCH commands per write, then reads their replies. */
static int
s_put_many (conn_t *c, size_t n)
{
    static char buf [BATCH * 64];
    size_t done = 0;
    while (done < n) {
        size_t batch = n - done < BATCH ? n - done : BATCH;
        size_t len = 0;
        for (size_t i = 0; i < batch; i++) {
            char body [32];
            int blen = snprintf (body, sizeof body, "noop %zu", done + i);
            len += (size_t) snprintf (buf + len, sizeof buf - len,
                                      "put 0 0 %d %d\r\n%s\r\n", NOOP_TTR, blen, body);
        }
        if (conn_write (c, buf, len) != 0)
            return -1;
        for (size_t i = 0; i < batch; i++)
            if (conn_expect (c, "INSERTED") != 0)
                return -1;
        done += batch;
    }
    return 0;
}

typedef struct {
    conn_t *c;
    size_t n;
    int64_t last_us;
    int rc;
} drainer_t;

static void *
s_drainer (void *arg)
{
    drainer_t *d = arg;
    d->rc = s_drain (d->c, d->n, &d->last_us);
    return NULL;
}

static int
s_throughput (size_t n, size_t warmup)
{
    int rc = 1;
    conn_t *prod = malloc (sizeof *prod), *cons = malloc (sizeof *cons);
    if (!prod || !cons || conn_open (prod) != 0)
        goto out;
    if (conn_open (cons) != 0) {
        conn_close (prod);
        goto out;
    }
    if (conn_use (prod, s_jobs_tube) != 0 || conn_watch_only (cons, s_done_tube) != 0)
        goto close;
    /* Warm up: workers connected, pages touched, binlog file open. */
    if (s_put_many (prod, warmup) != 0 || s_drain (cons, warmup, NULL) != 0)
        goto close;

    /* Results are drained on their own connection and thread, as they
     * arrive, while the main thread is still submitting. */
    drainer_t d = { .c = cons, .n = n };
    pthread_t tid;
    int64_t t0 = bu_now_us ();
    if (pthread_create (&tid, NULL, s_drainer, &d) != 0) {
        fprintf (stderr, "pthread_create failed\n");
        goto close;
    }
    int prc = s_put_many (prod, n);
    if (prc != 0)
        /* Unblock the drainer, which waits for results that will not come. */
        shutdown (cons->fd, SHUT_RDWR);
    pthread_join (tid, NULL);
    if (prc == 0 && d.rc == 0) {
        bu_report_throughput (SYSTEM, n, d.last_us - t0);
        rc = 0;
    }
close:
    conn_close (prod);
    conn_close (cons);
out:
    free (prod);
    free (cons);
    return rc;
}

static int
s_rtt (size_t n, size_t warmup)
{
    int rc = 1;
    int64_t *samples = calloc (n, sizeof *samples);
    conn_t *c = malloc (sizeof *c);
    if (!samples || !c || conn_open (c) != 0)
        goto out;
    if (conn_use (c, s_jobs_tube) != 0 || conn_watch_only (c, s_done_tube) != 0)
        goto close;
    for (size_t i = 0; i < warmup + n; i++) {
        char body [32], got [MAX_BODY];
        unsigned long long id;
        int blen = snprintf (body, sizeof body, "noop %zu", i);
        int64_t t0 = bu_now_us ();
        /* put and reserve in one write: the submit costs no extra round trip */
        if (conn_printf (c, "put 0 0 %d %d\r\n%s\r\nreserve\r\n", NOOP_TTR, blen, body) != 0
        ||  conn_expect (c, "INSERTED") != 0
        ||  conn_reserved (c, &id, got, sizeof got) != 0)
            goto close;
        int64_t t1 = bu_now_us ();
        if (strcmp (got, body) != 0) {
            fprintf (stderr, "result '%s' for job '%s'\n", got, body);
            goto close;
        }
        if (i >= warmup)
            samples [i - warmup] = t1 - t0;
        if (conn_printf (c, "delete %llu\r\n", id) != 0 || conn_expect (c, "DELETED") != 0)
            goto close;
    }
    bu_report_rtt (SYSTEM, samples, n);
    rc = 0;
close:
    conn_close (c);
out:
    free (c);
    free (samples);
    return rc;
}

/* Reads "held <pid>" from the done tube. */
static pid_t
s_read_holder (conn_t *c)
{
    unsigned long long id;
    char body [MAX_BODY];
    int pid = 0;
    if (conn_write (c, "reserve\r\n", 9) != 0 || conn_reserved (c, &id, body, sizeof body) != 0)
        return -1;
    if (sscanf (body, "held %d", &pid) != 1) {
        fprintf (stderr, "unexpected result '%s'\n", body);
        return -1;
    }
    if (conn_printf (c, "delete %llu\r\n", id) != 0 || conn_expect (c, "DELETED") != 0)
        return -1;
    return (pid_t) pid;
}

static int
s_recovery (const pid_t *workers, size_t nworkers)
{
    int rc = 1;
    conn_t *c = malloc (sizeof *c);
    if (!c || conn_open (c) != 0)
        goto out;
    if (conn_use (c, s_jobs_tube) != 0 || conn_watch_only (c, s_done_tube) != 0)
        goto close;
    if (conn_printf (c, "put 0 0 %d 5\r\nsleep\r\n", SLEEP_TTR) != 0
    ||  conn_expect (c, "INSERTED") != 0)
        goto close;
    pid_t first = s_read_holder (c);
    if (first <= 0)
        goto close;
    int ours = 0;
    for (size_t i = 0; i < nworkers; i++)
        ours |= workers [i] == first;
    if (!ours) {
        fprintf (stderr, "holder %d is not one of our workers\n", (int) first);
        goto close;
    }
    int64_t t0 = bu_now_us ();
    if (kill (first, SIGKILL) != 0) {
        perror ("kill");
        goto close;
    }
    pid_t second = s_read_holder (c);
    int64_t t1 = bu_now_us ();
    if (second <= 0 || second == first)
        goto close;
    bu_report_recovery (SYSTEM, "kill", (double) (t1 - t0) / 1000.0);
    rc = 0;
close:
    conn_close (c);
out:
    free (c);
    return rc;
}

int
main (int argc, char **argv)
{
    static const char usage [] =
        "usage: peer_beanstalkd [--port P] [--workers W] [--warmup N]\n"
        "                       throughput N | rtt N | recovery\n";
    size_t nworkers = 2;
    long warmup = -1;
    int i = 1;
    for (; i < argc && strncmp (argv [i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            bu_usage (usage);
        if (strcmp (argv [i], "--port") == 0)
            s_port = atoi (argv [i + 1]);
        else
        if (strcmp (argv [i], "--workers") == 0)
            nworkers = bu_parse_count (argv [i + 1]);
        else
        if (strcmp (argv [i], "--warmup") == 0)
            warmup = atol (argv [i + 1]);
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

    snprintf (s_jobs_tube, sizeof s_jobs_tube, "jobs-%d", (int) getpid ());
    snprintf (s_done_tube, sizeof s_done_tube, "done-%d", (int) getpid ());
    /* A worker dying mid-write must not take the client down with SIGPIPE. */
    signal (SIGPIPE, SIG_IGN);

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
        rc = s_recovery (workers, nworkers);
    else
        fprintf (stderr, "unknown mode '%s'\n", mode);
out:
    for (size_t w = 0; w < nworkers; w++)
        bu_kill_and_reap (workers [w]);
    return rc;
}

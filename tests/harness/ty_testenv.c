/*  ty_testenv: see ty_testenv.h. Starts the real redis-server, broker and
 *  noop workers as children of the test, in a temp dir, and inspects them. */
#include "ty_testenv.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

#ifndef TY_BIN_DIR
#define TY_BIN_DIR "."
#endif

#define TY_TESTENV_PREFIX     "ty:"      /* the broker's default key prefix */
#define TY_TESTENV_POLL_MS    20         /* how often waits look again */
#define TY_TESTENV_TERM_MS    3000       /* grace after SIGTERM at teardown */
#define TY_TESTENV_MAX_ARGS   64

typedef struct {
    pid_t pid;
    char  name [64];        /* stderr goes to TMP/<name>.stderr */
    int   running;          /* not reaped yet */
    int   status;           /* wait status once reaped */
} s_proc_t;

struct _ty_testenv_t {
    char  name [64];
    char  dir [PATH_MAX];
    int   passed;
    s_proc_t procs [TY_TESTENV_MAX_PROCS];
    int   nprocs;

    int   redis_port;
    pid_t redis_pid;
    char *redis_extra [TY_TESTENV_MAX_ARGS];     /* owned, NULL-terminated */
    redisContext *rc;

    pid_t broker_pid;
    int   broker_hb_ms;
    char *broker_extra [TY_TESTENV_MAX_ARGS];    /* owned, NULL-terminated */
    char  client_ep [128];
    char  worker_ep [128];
};

/* ---- small helpers ------------------------------------------------------ */

int64_t
ty_testenv_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
ty_testenv_sleep_ms (int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Fails the current cmocka test: setup could not be done. The message goes
   to stderr first so it is seen even when cmocka's own output is terse. */
static void s_must_fail (ty_testenv_t *self, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
static void
s_must_fail (ty_testenv_t *self, const char *fmt, ...)
{
    char buf [1024];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (buf, sizeof buf, fmt, ap);
    va_end (ap);
    fprintf (stderr, "ty_testenv[%s]: setup failed: %s (dir %s)\n",
             self ? self->name : "?", buf, self ? self->dir : "?");
    fail_msg ("%s", buf);
}

const char *
ty_testenv_dir (ty_testenv_t *self)
{
    return self->dir;
}

void
ty_testenv_path (ty_testenv_t *self, const char *file, char *buf, size_t len)
{
    snprintf (buf, len, "%s/%s", self->dir, file);
}

static const char *
s_bin_dir (void)
{
    const char *env = getenv ("TY_BIN_DIR");
    return env && *env ? env : TY_BIN_DIR;
}

static void
s_strv_free (char **v)
{
    for (int i = 0; v [i]; i++) {
        free (v [i]);
        v [i] = NULL;
    }
}

/* Copies a NULL-terminated list (may be NULL) into dst (owned strings). */
static int
s_strv_copy (char **dst, const char *const *src)
{
    int n = 0;
    for (; src && src [n]; n++) {
        if (n + 1 >= TY_TESTENV_MAX_ARGS)
            return -1;
        dst [n] = strdup (src [n]);
        if (!dst [n])
            return -1;
    }
    dst [n] = NULL;
    return 0;
}

/* An argv under construction; strings are owned. */
typedef struct {
    char *v [TY_TESTENV_MAX_ARGS + 1];
    int   n;
    int   overflow;
} s_argv_t;

static void
s_argv_add (s_argv_t *a, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void
s_argv_add (s_argv_t *a, const char *fmt, ...)
{
    if (a->n >= TY_TESTENV_MAX_ARGS) {
        a->overflow = 1;
        return;
    }
    va_list ap;
    va_start (ap, fmt);
    char *s = NULL;
    if (vasprintf (&s, fmt, ap) < 0)
        s = NULL;
    va_end (ap);
    if (!s) {
        a->overflow = 1;
        return;
    }
    a->v [a->n++] = s;
    a->v [a->n] = NULL;
}

static void
s_argv_free (s_argv_t *a)
{
    for (int i = 0; i < a->n; i++)
        free (a->v [i]);
    a->n = 0;
    a->v [0] = NULL;
}

static s_proc_t *
s_proc_find (ty_testenv_t *self, pid_t pid)
{
    for (int i = 0; i < self->nprocs; i++)
        if (self->procs [i].pid == pid)
            return &self->procs [i];
    return NULL;
}

/* fork + exec with stdin from /dev/null and stdout/stderr appended to
   TMP/<name>.stderr. The child gets SIGKILL when the test process dies, so a
   crashed test leaves no broker or redis behind. Returns the pid or -1. */
static pid_t
s_spawn (ty_testenv_t *self, const char *name, char *const argv [])
{
    if (self->nprocs >= TY_TESTENV_MAX_PROCS) {
        errno = ENOSPC;
        return -1;
    }
    char path [PATH_MAX + 80];
    snprintf (path, sizeof path, "%s/%s.stderr", self->dir, name);
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    pid_t parent = getpid ();
    fflush (NULL);
    pid_t pid = fork ();
    if (pid < 0) {
        int err = errno;
        close (fd);
        errno = err;
        return -1;
    }
    if (pid == 0) {
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid () != parent)
            _exit (127);
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        int nul = open ("/dev/null", O_RDONLY);
        if (nul < 0 || dup2 (nul, 0) < 0 || dup2 (fd, 1) < 0 || dup2 (fd, 2) < 0)
            _exit (127);
        execv (argv [0], argv);
        /* Only async-signal-safe calls between fork and exec (the test may
           have client threads): a fixed message, the path, no stdio. */
        static const char msg [] = "ty_testenv: exec failed: ";
        ssize_t w = write (2, msg, sizeof msg - 1);
        w = write (2, argv [0], strlen (argv [0]));
        w = write (2, "\n", 1);
        (void) w;
        _exit (127);
    }
    close (fd);
    s_proc_t *p = &self->procs [self->nprocs++];
    p->pid = pid;
    snprintf (p->name, sizeof p->name, "%s", name);
    p->running = 1;
    p->status = 0;
    return pid;
}

static void
s_print_cmd (char *const argv [])
{
    fprintf (stderr, "ty_testenv: starting");
    for (int i = 0; argv [i]; i++)
        fprintf (stderr, " %s", argv [i]);
    fprintf (stderr, "\n");
}

/* ---- life cycle ----------------------------------------------------------- */

ty_testenv_t *
ty_testenv_must_new (const char *name)
{
    ty_testenv_t *self = calloc (1, sizeof *self);
    if (!self)
        s_must_fail (NULL, "out of memory");
    snprintf (self->name, sizeof self->name, "%s", name);
    snprintf (self->dir, sizeof self->dir, "/tmp/ty-test-%s-XXXXXX", name);
    if (!mkdtemp (self->dir)) {
        int err = errno;
        free (self);
        fail_msg ("mkdtemp: %s", strerror (err));
    }
    self->redis_port = -1;
    self->redis_pid = -1;
    self->broker_pid = -1;
    return self;
}

void
ty_testenv_passed (ty_testenv_t *self)
{
    self->passed = 1;
}

static int
s_rm_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    if (remove (path) != 0)
        fprintf (stderr, "ty_testenv: remove %s: %s\n", path, strerror (errno));
    return 0;
}

/* 1 if the file holds a sanitizer report (ASan, LSan, UBSan, TSan). */
static int
s_has_sanitizer_report (const char *path)
{
    static const char *markers [] = {
        "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
        "WARNING: ThreadSanitizer", NULL
    };
    FILE *f = fopen (path, "r");
    if (!f)
        return 0;
    char line [4096];
    int found = 0;
    while (!found && fgets (line, sizeof line, f))
        for (int i = 0; markers [i]; i++)
            if (strstr (line, markers [i])) {
                found = 1;
                break;
            }
    fclose (f);
    return found;
}

int
ty_testenv_finish (ty_testenv_t **self_p)
{
    if (!self_p || !*self_p)
        return 0;
    ty_testenv_t *self = *self_p;

    /* Broker and workers get SIGTERM first so that a sanitizer build can
       report leaks at exit; redis and anything slow get SIGKILL. */
    for (int i = 0; i < self->nprocs; i++) {
        s_proc_t *p = &self->procs [i];
        if (!p->running)
            continue;
        kill (p->pid, SIGCONT);          /* a SIGSTOPped worker could not exit */
        kill (p->pid, p->pid == self->redis_pid ? SIGKILL : SIGTERM);
    }
    int64_t deadline = ty_testenv_now_ms () + TY_TESTENV_TERM_MS;
    for (int i = 0; i < self->nprocs; i++) {
        s_proc_t *p = &self->procs [i];
        while (p->running) {
            int st;
            pid_t r = waitpid (p->pid, &st, WNOHANG);
            if (r == p->pid || (r < 0 && errno == ECHILD)) {
                p->running = 0;
                p->status = st;
                break;
            }
            if (ty_testenv_now_ms () >= deadline) {
                fprintf (stderr, "ty_testenv: %s (pid %d) ignored SIGTERM for %d ms: SIGKILL\n",
                         p->name, (int) p->pid, TY_TESTENV_TERM_MS);
                kill (p->pid, SIGKILL);
                if (waitpid (p->pid, &st, 0) == p->pid)
                    p->status = st;
                p->running = 0;
                break;
            }
            ty_testenv_sleep_ms (5);
        }
    }
    if (self->rc) {
        redisFree (self->rc);
        self->rc = NULL;
    }

    int rc = 0;
    char path [PATH_MAX + 80];
    for (int i = 0; i < self->nprocs; i++) {
        snprintf (path, sizeof path, "%s/%s.stderr", self->dir, self->procs [i].name);
        if (s_has_sanitizer_report (path)) {
            fprintf (stderr, "ty_testenv: SANITIZER REPORT from %s in %s:\n",
                     self->procs [i].name, path);
            snprintf (path, sizeof path, "%s.stderr", self->procs [i].name);
            ty_testenv_print_tail (self, path, 80);
            rc = -1;
        }
    }

    const char *keep = getenv ("TY_TEST_KEEP");
    if (!self->passed || rc != 0 || (keep && *keep == '1')) {
        fprintf (stderr, "ty_testenv[%s]: kept %s; logs:\n", self->name, self->dir);
        fprintf (stderr, "  %s/redis.log\n  %s/broker.log\n  %s/exec.log\n"
                 "  %s/<worker>.log\n  %s/<process>.stderr\n",
                 self->dir, self->dir, self->dir, self->dir, self->dir);
    }
    else if (nftw (self->dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf (stderr, "ty_testenv: rm -rf %s: %s\n", self->dir, strerror (errno));

    s_strv_free (self->redis_extra);
    s_strv_free (self->broker_extra);
    free (self);
    *self_p = NULL;
    return rc;
}

int
ty_testenv_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset (&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t len = sizeof sa;
    if (bind (fd, (struct sockaddr *) &sa, sizeof sa) != 0
    ||  getsockname (fd, (struct sockaddr *) &sa, &len) != 0) {
        int err = errno;
        close (fd);
        errno = err;
        return -1;
    }
    close (fd);
    return ntohs (sa.sin_port);
}

/* ---- any process ------------------------------------------------------- */

int
ty_testenv_alive (ty_testenv_t *self, pid_t pid)
{
    s_proc_t *p = s_proc_find (self, pid);
    if (!p)
        return pid > 0 && kill (pid, 0) == 0;
    if (!p->running)
        return 0;
    int st;
    pid_t r = waitpid (pid, &st, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
        p->running = 0;
        p->status = st;
        return 0;
    }
    return 1;
}

int
ty_testenv_run_capture (const char *cmd, char *out, size_t len)
{
    FILE *p = popen (cmd, "r");
    assert_non_null (p);
    size_t n = fread (out, 1, len - 1, p);
    out [n] = '\0';
    int st = pclose (p);
    return WIFEXITED (st) ? WEXITSTATUS (st) : -1;
}

int
ty_testenv_wait_exit (ty_testenv_t *self, pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = ty_testenv_now_ms () + timeout_ms;
    for (;;) {
        if (!ty_testenv_alive (self, pid)) {
            s_proc_t *p = s_proc_find (self, pid);
            if (status)
                *status = p ? p->status : 0;
            return 0;
        }
        if (ty_testenv_now_ms () >= deadline)
            return -1;
        ty_testenv_sleep_ms (5);
    }
}

int
ty_testenv_signal (ty_testenv_t *self, pid_t pid, int sig)
{
    if (pid <= 0)
        return EINVAL;
    if (kill (pid, sig) != 0)
        return errno;
    if (sig == SIGKILL) {
        /* SIGKILL ends even a stopped process; reap it so the pid is ours. */
        s_proc_t *p = s_proc_find (self, pid);
        int st;
        if (waitpid (pid, &st, 0) == pid && p) {
            p->running = 0;
            p->status = st;
        }
    }
    return 0;
}

/* ---- redis ------------------------------------------------------------- */

/* Connects and PINGs once. Returns 1 on PONG, 0 otherwise (refused, LOADING). */
static int
s_redis_ping (int port)
{
    struct timeval tv = { 0, 200 * 1000 };
    redisContext *c = redisConnectWithTimeout ("127.0.0.1", port, tv);
    if (!c)
        return 0;
    int ok = 0;
    if (!c->err) {
        redisReply *r = redisCommand (c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && !strcmp (r->str, "PONG");
        if (r)
            freeReplyObject (r);
    }
    redisFree (c);
    return ok;
}

static void
s_redis_spawn_and_wait (ty_testenv_t *self)
{
    s_argv_t a = { .n = 0 };
    a.v [0] = NULL;
    s_argv_add (&a, "%s", "/usr/bin/redis-server");
    s_argv_add (&a, "--port");        s_argv_add (&a, "%d", self->redis_port);
    s_argv_add (&a, "--bind");        s_argv_add (&a, "127.0.0.1");
    s_argv_add (&a, "--dir");         s_argv_add (&a, "%s", self->dir);
    s_argv_add (&a, "--appendonly");  s_argv_add (&a, "yes");
    s_argv_add (&a, "--appendfsync"); s_argv_add (&a, "everysec");
    s_argv_add (&a, "--save");        s_argv_add (&a, "%s", "");
    s_argv_add (&a, "--daemonize");   s_argv_add (&a, "no");
    s_argv_add (&a, "--logfile");     s_argv_add (&a, "%s/redis.log", self->dir);
    for (int i = 0; self->redis_extra [i]; i++)
        s_argv_add (&a, "%s", self->redis_extra [i]);
    if (a.overflow) {
        s_argv_free (&a);
        s_must_fail (self, "redis argv too long");
    }
    s_print_cmd (a.v);
    self->redis_pid = s_spawn (self, "redis", a.v);
    int err = errno;
    s_argv_free (&a);
    if (self->redis_pid < 0)
        s_must_fail (self, "spawn redis-server: %s", strerror (err));

    int64_t deadline = ty_testenv_now_ms () + TY_TESTENV_STARTUP_MS;
    while (!s_redis_ping (self->redis_port)) {
        if (!ty_testenv_alive (self, self->redis_pid)) {
            ty_testenv_print_tail (self, "redis.log", 20);
            s_must_fail (self, "redis-server exited at start");
        }
        if (ty_testenv_now_ms () >= deadline)
            s_must_fail (self, "redis-server did not answer PING in %d ms",
                         TY_TESTENV_STARTUP_MS);
        ty_testenv_sleep_ms (10);
    }
}

void
ty_testenv_must_start_redis (ty_testenv_t *self, const char *const *extra)
{
    if (s_strv_copy (self->redis_extra, extra) != 0)
        s_must_fail (self, "too many redis arguments");
    self->redis_port = ty_testenv_free_port ();
    if (self->redis_port < 0)
        s_must_fail (self, "no free port: %s", strerror (errno));
    s_redis_spawn_and_wait (self);
}

int
ty_testenv_redis_port (ty_testenv_t *self)
{
    return self->redis_port;
}

pid_t
ty_testenv_redis_pid (ty_testenv_t *self)
{
    return self->redis_pid;
}

void
ty_testenv_kill_redis (ty_testenv_t *self)
{
    if (self->redis_pid > 0)
        ty_testenv_signal (self, self->redis_pid, SIGKILL);
    self->redis_pid = -1;
    if (self->rc) {
        redisFree (self->rc);
        self->rc = NULL;
    }
}

void
ty_testenv_must_restart_redis (ty_testenv_t *self)
{
    if (self->redis_port < 0)
        s_must_fail (self, "restart of a redis that never started");
    if (self->redis_pid > 0 && ty_testenv_alive (self, self->redis_pid))
        ty_testenv_kill_redis (self);
    s_redis_spawn_and_wait (self);
}

static int
s_redis_connect (ty_testenv_t *self)
{
    if (self->rc && !self->rc->err)
        return 0;
    if (self->rc)
        redisFree (self->rc);
    struct timeval tv = { 2, 0 };
    self->rc = redisConnectWithTimeout ("127.0.0.1", self->redis_port, tv);
    if (!self->rc || self->rc->err) {
        if (self->rc) {
            redisFree (self->rc);
            self->rc = NULL;
        }
        return -1;
    }
    /* A reply that never comes must not hang the test forever. */
    if (redisSetTimeout (self->rc, tv) != REDIS_OK)
        return -1;
    return 0;
}

/* Runs a command; NULL on any failure (connection or a Redis error reply). */
static redisReply *
s_redis_vcmd (ty_testenv_t *self, const char *fmt, va_list ap)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (s_redis_connect (self) != 0)
            continue;
        va_list cp;
        va_copy (cp, ap);
        redisReply *r = redisvCommand (self->rc, fmt, cp);
        va_end (cp);
        if (r) {
            if (r->type == REDIS_REPLY_ERROR) {
                fprintf (stderr, "ty_testenv: redis error for '%s': %s\n", fmt, r->str);
                freeReplyObject (r);
                return NULL;
            }
            return r;
        }
        /* No reply: the connection broke; discard it and try once more. */
        redisFree (self->rc);
        self->rc = NULL;
    }
    return NULL;
}

static redisReply *
s_redis_cmd (ty_testenv_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    redisReply *r = s_redis_vcmd (self, fmt, ap);
    va_end (ap);
    return r;
}

redisReply *
ty_testenv_must_redis (ty_testenv_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    redisReply *r = s_redis_vcmd (self, fmt, ap);
    va_end (ap);
    if (!r)
        s_must_fail (self, "redis command '%s' failed", fmt);
    return r;
}

char *
ty_testenv_job_field (ty_testenv_t *self, const char *job_id, const char *field)
{
    redisReply *r = s_redis_cmd (self, "HGET " TY_TESTENV_PREFIX "job:%s %s", job_id, field);
    if (!r)
        return NULL;
    char *out = NULL;
    if (r->type == REDIS_REPLY_STRING)
        out = strndup (r->str, r->len);
    freeReplyObject (r);
    return out;
}

long long
ty_testenv_job_num (ty_testenv_t *self, const char *job_id, const char *field)
{
    char *s = ty_testenv_job_field (self, job_id, field);
    if (!s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll (s, &end, 10);
    int bad = errno || end == s || *end;
    free (s);
    return bad ? -1 : v;
}

/* Looks up a field of a stream entry's [f1, v1, f2, v2...] array. */
static const char *
s_entry_field (const redisReply *fields, const char *name)
{
    if (!fields || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element [i], *v = fields->element [i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING
        &&  !strcmp (k->str, name))
            return v->str;
    }
    return NULL;
}

int
ty_testenv_job_events (ty_testenv_t *self, const char *job_id,
                       ty_testenv_event_t *out, int max)
{
    redisReply *r = s_redis_cmd (self, "XRANGE " TY_TESTENV_PREFIX "events - +");
    if (!r)
        return -1;
    int n = 0;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element [i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
                continue;
            const redisReply *f = e->element [1];
            const char *job = s_entry_field (f, "job");
            const char *state = s_entry_field (f, "state");
            const char *kind = s_entry_field (f, "kind");
            if (!job || strcmp (job, job_id) || !state || (kind && !strcmp (kind, "progress")))
                continue;
            if (out && n < max) {
                const char *att = s_entry_field (f, "attempt");
                const char *worker = s_entry_field (f, "worker");
                const char *reason = s_entry_field (f, "reason");
                snprintf (out [n].state, sizeof out [n].state, "%s", state);
                out [n].attempt = att ? (unsigned) strtoul (att, NULL, 10) : 0;
                snprintf (out [n].worker, sizeof out [n].worker, "%s", worker ? worker : "");
                snprintf (out [n].reason, sizeof out [n].reason, "%s", reason ? reason : "");
            }
            n++;
        }
    freeReplyObject (r);
    return n;
}

int
ty_testenv_event_count (ty_testenv_t *self, const char *job_id, const char *state)
{
    ty_testenv_event_t ev [64];
    int n = ty_testenv_job_events (self, job_id, ev, 64);
    if (n < 0)
        return -1;
    int count = 0;
    for (int i = 0; i < n && i < 64; i++)
        if (!strcmp (ev [i].state, state))
            count++;
    return count;
}

/* ---- broker ------------------------------------------------------------- */

/* Reads the endpoint file; 0 once both lines are there. */
static int
s_read_endpoints (ty_testenv_t *self, const char *path)
{
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    char line [256], key [32], ep [120];
    char clients [128] = "", workers [128] = "";
    while (fgets (line, sizeof line, f))
        if (sscanf (line, "%31s %119s", key, ep) == 2) {
            if (!strcmp (key, "clients"))
                snprintf (clients, sizeof clients, "%s", ep);
            else if (!strcmp (key, "workers"))
                snprintf (workers, sizeof workers, "%s", ep);
        }
    fclose (f);
    if (!*clients || !*workers)
        return -1;
    snprintf (self->client_ep, sizeof self->client_ep, "%s", clients);
    snprintf (self->worker_ep, sizeof self->worker_ep, "%s", workers);
    return 0;
}

static pid_t
s_broker_spawn (ty_testenv_t *self, const char *clients, const char *workers)
{
    char ep_path [PATH_MAX + 8];
    snprintf (ep_path, sizeof ep_path, "%s/ep", self->dir);
    /* The file of a previous broker must not pass for this one's. */
    if (unlink (ep_path) != 0 && errno != ENOENT)
        s_must_fail (self, "unlink %s: %s", ep_path, strerror (errno));

    s_argv_t a = { .n = 0 };
    a.v [0] = NULL;
    s_argv_add (&a, "%s/trainyard-broker", s_bin_dir ());
    s_argv_add (&a, "--clients");       s_argv_add (&a, "%s", clients);
    s_argv_add (&a, "--workers");       s_argv_add (&a, "%s", workers);
    s_argv_add (&a, "--endpoint-file"); s_argv_add (&a, "%s", ep_path);
    s_argv_add (&a, "--redis");         s_argv_add (&a, "redis://127.0.0.1:%d", self->redis_port);
    s_argv_add (&a, "--heartbeat-ms");  s_argv_add (&a, "%d", self->broker_hb_ms);
    s_argv_add (&a, "--log-file");      s_argv_add (&a, "%s/broker.log", self->dir);
    for (int i = 0; self->broker_extra [i]; i++)
        s_argv_add (&a, "%s", self->broker_extra [i]);
    if (a.overflow) {
        s_argv_free (&a);
        s_must_fail (self, "broker argv too long");
    }
    s_print_cmd (a.v);
    pid_t pid = s_spawn (self, "broker", a.v);
    int err = errno;
    s_argv_free (&a);
    if (pid < 0)
        s_must_fail (self, "spawn broker: %s", strerror (err));
    self->broker_pid = pid;

    int64_t deadline = ty_testenv_now_ms () + TY_TESTENV_STARTUP_MS;
    while (s_read_endpoints (self, ep_path) != 0) {
        if (!ty_testenv_alive (self, pid)) {
            ty_testenv_print_tail (self, "broker.stderr", 20);
            ty_testenv_print_tail (self, "broker.log", 20);
            s_must_fail (self, "broker exited at start");
        }
        if (ty_testenv_now_ms () >= deadline) {
            ty_testenv_print_tail (self, "broker.log", 20);
            s_must_fail (self, "broker wrote no endpoint file in %d ms", TY_TESTENV_STARTUP_MS);
        }
        ty_testenv_sleep_ms (10);
    }
    return pid;
}

pid_t
ty_testenv_must_start_broker (ty_testenv_t *self, int heartbeat_ms, const char *const *extra)
{
    if (self->redis_port < 0)
        s_must_fail (self, "start redis before the broker");
    if (s_strv_copy (self->broker_extra, extra) != 0)
        s_must_fail (self, "too many broker arguments");
    self->broker_hb_ms = heartbeat_ms;
    return s_broker_spawn (self, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
}

pid_t
ty_testenv_must_restart_broker (ty_testenv_t *self)
{
    if (!*self->client_ep)
        s_must_fail (self, "restart of a broker that never started");
    if (self->broker_pid > 0 && ty_testenv_alive (self, self->broker_pid))
        ty_testenv_kill_broker (self, SIGKILL);
    char clients [128], workers [128];
    snprintf (clients, sizeof clients, "%s", self->client_ep);
    snprintf (workers, sizeof workers, "%s", self->worker_ep);
    pid_t pid = s_broker_spawn (self, clients, workers);
    if (strcmp (clients, self->client_ep) || strcmp (workers, self->worker_ep))
        s_must_fail (self, "restarted broker moved: %s %s (was %s %s)",
                     self->client_ep, self->worker_ep, clients, workers);
    return pid;
}

const char *
ty_testenv_client_ep (ty_testenv_t *self)
{
    return self->client_ep;
}

const char *
ty_testenv_worker_ep (ty_testenv_t *self)
{
    return self->worker_ep;
}

pid_t
ty_testenv_broker_pid (ty_testenv_t *self)
{
    return self->broker_pid;
}

void
ty_testenv_kill_broker (ty_testenv_t *self, int sig)
{
    if (self->broker_pid > 0)
        ty_testenv_signal (self, self->broker_pid, sig);
}

/* ---- workers -------------------------------------------------------------- */

pid_t
ty_testenv_must_start_worker (ty_testenv_t *self, const char *id, int heartbeat_ms,
                              const char *const *extra)
{
    return ty_testenv_must_start_worker_bin (self, "trainyard-noop", id, heartbeat_ms, extra);
}

pid_t
ty_testenv_must_start_worker_bin (ty_testenv_t *self, const char *bin, const char *id,
                                  int heartbeat_ms, const char *const *extra)
{
    if (!*self->worker_ep)
        s_must_fail (self, "start the broker before workers");
    s_argv_t a = { .n = 0 };
    a.v [0] = NULL;
    s_argv_add (&a, "%s/%s", s_bin_dir (), bin);
    s_argv_add (&a, "--broker");       s_argv_add (&a, "%s", self->worker_ep);
    s_argv_add (&a, "--heartbeat-ms"); s_argv_add (&a, "%d", heartbeat_ms);
    if (!strcmp (bin, "trainyard-noop")) {
        s_argv_add (&a, "--exec-log"); s_argv_add (&a, "%s/exec.log", self->dir);
    }
    s_argv_add (&a, "--id");           s_argv_add (&a, "%s", id);
    s_argv_add (&a, "--log-file");     s_argv_add (&a, "%s/%s.log", self->dir, id);
    for (int i = 0; extra && extra [i]; i++)
        s_argv_add (&a, "%s", extra [i]);
    if (a.overflow) {
        s_argv_free (&a);
        s_must_fail (self, "worker argv too long");
    }
    s_print_cmd (a.v);
    pid_t pid = s_spawn (self, id, a.v);
    int err = errno;
    s_argv_free (&a);
    if (pid < 0)
        s_must_fail (self, "spawn worker %s: %s", id, strerror (err));
    return pid;
}

int
ty_testenv_wait_worker (ty_testenv_t *self, const char *id, int timeout_ms)
{
    int64_t deadline = ty_testenv_now_ms () + timeout_ms;
    for (;;) {
        redisReply *r = s_redis_cmd (self, "EXISTS " TY_TESTENV_PREFIX "worker:%s", id);
        int found = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        if (r)
            freeReplyObject (r);
        if (found)
            return 0;
        if (ty_testenv_now_ms () >= deadline) {
            fprintf (stderr, "ty_testenv: worker %s not registered in %d ms\n", id, timeout_ms);
            return -1;
        }
        ty_testenv_sleep_ms (TY_TESTENV_POLL_MS);
    }
}

/* ---- jobs ------------------------------------------------------------------ */

int
ty_testenv_wait_state (ty_testenv_t *self, const char *job_id, const char *state,
                       int timeout_ms)
{
    int64_t deadline = ty_testenv_now_ms () + timeout_ms;
    char *last = NULL;
    for (;;) {
        free (last);
        last = ty_testenv_job_field (self, job_id, "state");
        if (last && !strcmp (last, state)) {
            free (last);
            return 0;
        }
        if (ty_testenv_now_ms () >= deadline)
            break;
        ty_testenv_sleep_ms (TY_TESTENV_POLL_MS);
    }
    fprintf (stderr, "ty_testenv: job %s not %s after %d ms (state %s)\n",
             job_id, state, timeout_ms, last ? last : "(none)");
    free (last);
    return -1;
}

static int
s_terminal (const char *s)
{
    return !strcmp (s, "SUCCEEDED") || !strcmp (s, "FAILED") || !strcmp (s, "CANCELLED");
}

long
ty_testenv_wait_all_terminal (ty_testenv_t *self, const char *ids, size_t stride,
                              size_t n, int timeout_ms)
{
    int64_t deadline = ty_testenv_now_ms () + timeout_ms;
    for (;;) {
        long succeeded = 0;
        size_t open = 0, first_open = n;
        char first_state [32] = "";
        int broken = s_redis_connect (self) != 0;
        /* Pipelined: one round trip for all n HGETs. */
        for (size_t i = 0; !broken && i < n; i++)
            if (redisAppendCommand (self->rc, "HGET " TY_TESTENV_PREFIX "job:%s state",
                                    ids + i * stride) != REDIS_OK)
                broken = 1;
        for (size_t i = 0; !broken && i < n; i++) {
            void *v = NULL;
            if (redisGetReply (self->rc, &v) != REDIS_OK || !v) {
                broken = 1;
                break;
            }
            redisReply *r = v;
            const char *s = r->type == REDIS_REPLY_STRING ? r->str : "(none)";
            if (!strcmp (s, "SUCCEEDED"))
                succeeded++;
            else if (!s_terminal (s)) {
                if (open++ == 0) {
                    first_open = i;
                    snprintf (first_state, sizeof first_state, "%s", s);
                }
            }
            freeReplyObject (r);
        }
        if (broken && self->rc) {
            redisFree (self->rc);
            self->rc = NULL;
        }
        if (!broken && open == 0)
            return succeeded;
        if (ty_testenv_now_ms () >= deadline) {
            if (broken)
                fprintf (stderr, "ty_testenv: redis unreachable while waiting for jobs\n");
            else
                fprintf (stderr, "ty_testenv: %zu of %zu jobs still open after %d ms, "
                         "e.g. %s in %s\n", open, n, timeout_ms, ids + first_open * stride,
                         first_state);
            return -1;
        }
        ty_testenv_sleep_ms (100);
    }
}

/* ---- exec log ------------------------------------------------------------- */

typedef struct {
    char     id [TY_TESTENV_ID_MAX];
    unsigned attempt;
} s_exec_t;

struct _ty_testenv_execlog_t {
    s_exec_t *v;
    size_t    n;
    size_t    bad;     /* lines that are not "<id> <attempt>" */
};

static int
s_exec_cmp (const void *a, const void *b)
{
    const s_exec_t *x = a, *y = b;
    int c = strcmp (x->id, y->id);
    if (c)
        return c;
    return (x->attempt > y->attempt) - (x->attempt < y->attempt);
}

ty_testenv_execlog_t *
ty_testenv_execlog_load (ty_testenv_t *self)
{
    ty_testenv_execlog_t *log = calloc (1, sizeof *log);
    if (!log)
        return NULL;
    char path [PATH_MAX + 16];
    snprintf (path, sizeof path, "%s/exec.log", self->dir);
    FILE *f = fopen (path, "r");
    if (!f) {
        if (errno == ENOENT)
            return log;
        free (log);
        return NULL;
    }
    size_t cap = 0;
    char line [256];
    while (fgets (line, sizeof line, f)) {
        s_exec_t e;
        char tail;
        if (sscanf (line, "%47s %u%c", e.id, &e.attempt, &tail) != 3 || tail != '\n') {
            log->bad++;
            continue;
        }
        if (log->n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            s_exec_t *nv = realloc (log->v, ncap * sizeof *nv);
            if (!nv) {
                fclose (f);
                ty_testenv_execlog_destroy (&log);
                return NULL;
            }
            log->v = nv;
            cap = ncap;
        }
        log->v [log->n++] = e;
    }
    fclose (f);
    if (log->n)
        qsort (log->v, log->n, sizeof *log->v, s_exec_cmp);
    return log;
}

void
ty_testenv_execlog_destroy (ty_testenv_execlog_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->v);
    free (*self_p);
    *self_p = NULL;
}

size_t
ty_testenv_execlog_size (ty_testenv_execlog_t *self)
{
    return self->n;
}

size_t
ty_testenv_execlog_bad (ty_testenv_execlog_t *self)
{
    return self->bad;
}

int
ty_testenv_execlog_count (ty_testenv_execlog_t *self, const char *job_id, unsigned attempt)
{
    /* Binary search for the first line of job_id, then count the run. */
    size_t lo = 0, hi = self->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp (self->v [mid].id, job_id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int count = 0;
    for (size_t i = lo; i < self->n && !strcmp (self->v [i].id, job_id); i++)
        if (attempt == 0 || self->v [i].attempt == attempt)
            count++;
    return count;
}

int
ty_testenv_exec_count (ty_testenv_t *self, const char *job_id, unsigned attempt)
{
    ty_testenv_execlog_t *log = ty_testenv_execlog_load (self);
    if (!log)
        return -1;
    int n = ty_testenv_execlog_count (log, job_id, attempt);
    ty_testenv_execlog_destroy (&log);
    return n;
}

/* ---- misc ---------------------------------------------------------------- */

void
ty_testenv_print_tail (ty_testenv_t *self, const char *file, int lines)
{
    char path [PATH_MAX + 80];
    snprintf (path, sizeof path, "%s/%s", self->dir, file);
    FILE *f = fopen (path, "r");
    if (!f) {
        fprintf (stderr, "ty_testenv: (no %s)\n", path);
        return;
    }
    /* Logs of a test are small; a ring of line starts is enough. */
    long *starts = calloc ((size_t) lines + 1, sizeof *starts);
    if (!starts) {
        fclose (f);
        return;
    }
    long count = 0, pos = 0;
    int c, at_start = 1;
    while ((c = fgetc (f)) != EOF) {
        if (at_start)
            starts [count++ % (lines + 1)] = pos;
        at_start = c == '\n';
        pos++;
    }
    long first = count > lines ? starts [(count - lines) % (lines + 1)] : 0;
    fprintf (stderr, "---- last %d lines of %s ----\n", lines, path);
    if (fseek (f, first, SEEK_SET) == 0) {
        char buf [4096];
        size_t n;
        while ((n = fread (buf, 1, sizeof buf, f)) > 0)
            fwrite (buf, 1, n, stderr);
    }
    fprintf (stderr, "---- end of %s ----\n", path);
    free (starts);
    fclose (f);
}

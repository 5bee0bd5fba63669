/*  trainyard up: a whole cluster on this machine, Redis included.
 *
 *  Starts Debian's redis-server with its own config in the state directory
 *  (AOF on, loopback only), then trainyard-broker, then the workers, each
 *  after the previous one answers; prints what runs where; then supervises
 *  them until SIGINT/SIGTERM (see cmd_supervise.c), or, with --detach, hands
 *  that job to a daemon and returns to the shell once all is ready.
 *
 *  Detach is done BEFORE anything starts, not after: children must be the
 *  daemon's own to be waited for and restarted. The shell's process waits on
 *  a pipe where the daemon sends its messages and, last, "ready"; so the
 *  user sees the same output and exit code as in the foreground.
 *
 *  Redis data stays in DIR/redis between runs: an `up` on an existing state
 *  directory finds the jobs an earlier run left unfinished.
 */
#include "cmd.h"
#include "cmd_cluster.h"
#include "ty_clock.h"
#include "ty_jobstate.h"
#include "ty_log.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_DEFAULT_PORT          7700    /* clients; workers use port + 1 */
#define S_DEFAULT_REDIS_PORT    7702
#define S_DEFAULT_BIND          "127.0.0.1"
#define S_MAX_WORKERS_PER_TYPE  64
#define S_REDIS_READY_MS        60000   /* a big AOF takes a while to load */
#define S_BROKER_READY_MS       15000
#define S_WORKERS_READY_MS      10000   /* not fatal: they keep reconnecting */
#define S_READY_POLL_MS         100
#define S_REDIS_PING_TIMEOUT_MS 500
#define S_LOG_TAIL_LINES        12      /* shown when a child fails to start */
#define S_EXIT_SIGINT           130

/* Worker types in start order, with how many of each. */
static const char *s_types [] = { TY_JOB_TYPES };
#define S_NTYPES (sizeof s_types / sizeof s_types [0])

typedef struct {
    const char *dir_arg;
    char        dir [PATH_MAX];
    long        port;
    long        redis_port;
    const char *bind;
    char        connect_host [64];      /* bind, or 127.0.0.1 for a wildcard */
    int         detach;
    const char *log_level;
    long        workers [S_NTYPES];     /* count per type; -1 = not asked */
    int         workers_given;
    char        exe_broker [PATH_MAX];
    char        exe_scheduler [PATH_MAX];   /* "" if not built */
    char        exe_redis [PATH_MAX];
    char        exe_workers [S_NTYPES][PATH_MAX];
} s_up_t;

/* ---- output: the terminal, or the pipe to the shell's process --------------- */

/* Records on the pipe: one tag byte ('o' stdout, 'e' stderr, 'k' ready),
 * the text, a NUL. */
static int s_notify_fd = -1;

static void
s_vsay (FILE *stream, const char *fmt, va_list ap)
{
    char buf [4096];
    int n = vsnprintf (buf + 1, sizeof buf - 1, fmt, ap);
    if (n < 0)
        return;
    if (s_notify_fd < 0) {
        fputs (buf + 1, stream);
        fflush (stream);
        return;
    }
    size_t len = (size_t) n < sizeof buf - 2 ? (size_t) n : sizeof buf - 2;
    buf [0] = stream == stderr ? 'e' : 'o';
    buf [len + 1] = '\0';
    /* a failed write means the shell's side is gone: nothing else to do */
    (void) !write (s_notify_fd, buf, len + 2);
}

static void __attribute__ ((format (printf, 1, 2)))
s_say (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    s_vsay (stdout, fmt, ap);
    va_end (ap);
}

static void __attribute__ ((format (printf, 1, 2)))
s_complain (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    s_vsay (stderr, fmt, ap);
    va_end (ap);
}

/* The shell's side of --detach: relays the daemon's records until EOF.
 * Returns the exit code: 0 if "ready" arrived. */
static int
s_relay (int fd)
{
    char buf [8192];
    size_t used = 0;
    int ready = 0;
    for (;;) {
        ssize_t n = read (fd, buf + used, sizeof buf - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        used += (size_t) n;
        size_t start = 0;
        for (size_t i = 0; i < used; i++) {
            if (buf [i] != '\0')
                continue;
            char tag = buf [start];
            const char *text = buf + start + 1;
            if (tag == 'k')
                ready = 1;
            else
                fputs (text, tag == 'e' ? stderr : stdout);
            start = i + 1;
        }
        memmove (buf, buf + start, used - start);
        used -= start;
        if (used == sizeof buf)
            used = 0;       /* a record longer than the buffer: drop it */
    }
    fflush (stdout);
    if (!ready)
        fprintf (stderr, "trainyard: up: the cluster did not come up (see the logs)\n");
    return ready ? TY_CMD_EXIT_OK : TY_CMD_EXIT_ERROR;
}

/* Double fork + setsid. Returns 0 in the daemon (s_notify_fd set), 1 in
 * the shell's process once the daemon reported (*shell_rc: its exit code),
 * -1 if pipe/fork failed. */
static int
s_daemonize (const s_up_t *up, int *shell_rc)
{
    int fds [2];
    if (pipe2 (fds, O_CLOEXEC) != 0)
        return -1;
    fflush (stdout);
    fflush (stderr);
    pid_t pid = fork ();
    if (pid < 0) {
        close (fds [0]);
        close (fds [1]);
        return -1;
    }
    if (pid > 0) {
        close (fds [1]);
        int status;
        while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
            ;
        *shell_rc = s_relay (fds [0]);
        close (fds [0]);
        return 1;
    }
    close (fds [0]);
    /* new session: no controlling terminal, immune to the shell's hangup */
    if (setsid () < 0)
        _exit (TY_CMD_EXIT_ERROR);
    pid = fork ();
    if (pid < 0)
        _exit (TY_CMD_EXIT_ERROR);
    if (pid > 0)
        _exit (TY_CMD_EXIT_OK);     /* the session leader leaves: no tty ever again */
    s_notify_fd = fds [1];
    /* a shell killed while waiting must not kill us with SIGPIPE */
    signal (SIGPIPE, SIG_IGN);
    if (chdir ("/") != 0)
        return -1;
    char log [PATH_MAX];
    if (cmd_statedir_path (log, sizeof log, up->dir, "logs/up.log"))
        return -1;
    int null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    int log_fd = open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (null_fd < 0 || log_fd < 0
    ||  dup2 (null_fd, STDIN_FILENO) < 0
    ||  dup2 (log_fd, STDOUT_FILENO) < 0
    ||  dup2 (log_fd, STDERR_FILENO) < 0)
        return -1;
    close (null_fd);
    close (log_fd);
    return 0;
}

/* ---- finding things ------------------------------------------------------- */

static int
s_executable (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && S_ISREG (st.st_mode) && access (path, X_OK) == 0;
}

/* Beside the running `trainyard` first (a build tree or an install prefix
 * holds matching versions), then $PATH. Returns 0 or ENOENT. */
static int
s_find_exe (const char *name, char *out, size_t len)
{
    char self [PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self [n] = '\0';
        char *slash = strrchr (self, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf (out, len, "%s/%s", self, name) < (int) len && s_executable (out))
                return 0;
        }
    }
    const char *path = getenv ("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr (path, ':');
        size_t dlen = colon ? (size_t) (colon - path) : strlen (path);
        if (dlen > 0 && snprintf (out, len, "%.*s/%s", (int) dlen, path, name) < (int) len
        &&  s_executable (out))
            return 0;
        path += dlen + (colon ? 1 : 0);
    }
    return ENOENT;
}

/* ---- redis ------------------------------------------------------------------ */

/* Paths go into redis.conf inside double quotes; refuse what would need escaping. */
static int
s_conf_safe (const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || *s == '\n' || (unsigned char) *s < 0x20)
            return 0;
    return 1;
}

static int
s_write_redis_conf (const s_up_t *up)
{
    char path [PATH_MAX], tmp [PATH_MAX], data [PATH_MAX], log [PATH_MAX];
    if (cmd_statedir_path (path, sizeof path, up->dir, "redis.conf")
    ||  cmd_statedir_path (tmp, sizeof tmp, up->dir, ".redis.conf.tmp")
    ||  cmd_statedir_path (data, sizeof data, up->dir, "redis")
    ||  cmd_statedir_path (log, sizeof log, up->dir, "logs/redis.log"))
        return cmd_error ("up: state directory path too long: %s", up->dir);
    if (!s_conf_safe (up->dir))
        return cmd_error ("up: the state directory path may not contain quotes, "
                          "backslashes or control characters: %s", up->dir);
    FILE *f = fopen (tmp, "we");
    if (!f)
        return cmd_error ("up: cannot write %s: %s", tmp, strerror (errno));
    int ok = fprintf (f,
        "# Written by `trainyard up` at every start; edits are overwritten.\n"
        "# Redis holds all job state: loopback only, append-only file on.\n"
        "port %ld\n"
        "bind 127.0.0.1\n"
        "protected-mode yes\n"
        "dir \"%s\"\n"
        "appendonly yes\n"
        "# at most one second of transitions lost if the machine dies\n"
        "appendfsync everysec\n"
        "# no RDB snapshots: the AOF is the one durable copy\n"
        "save \"\"\n"
        "daemonize no\n"
        "logfile \"%s\"\n",
        up->redis_port, data, log) > 0;
    ok = (fclose (f) == 0) && ok;
    if (!ok || rename (tmp, path) != 0) {
        int e = errno;
        unlink (tmp);
        return cmd_error ("up: cannot write %s: %s", path, strerror (e));
    }
    return TY_CMD_EXIT_OK;
}

/* One RESP PING over TCP: the CLI does not link hiredis for this. 1 if PONG. */
static int
s_redis_ping (long port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct timeval tv = { 0, S_REDIS_PING_TIMEOUT_MS * 1000 };
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    char reply [64] = "";
    int ok = setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0
          && setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0
          && connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0
          && write (fd, "PING\r\n", 6) == 6
          && read (fd, reply, sizeof reply - 1) > 0;
    close (fd);
    /* "-LOADING ..." while the AOF loads: not ready yet */
    return ok && !strncmp (reply, "+PONG", 5);
}

/* ---- startup ---------------------------------------------------------------- */

/* 0 if host:port can be bound now, else the errno of bind. Checked before
 * starting anything: with a port taken, a readiness probe would get its
 * answer from whoever holds it, and the workers would join a stranger's
 * cluster. */
static int
s_port_check (const char *host, long port)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    if (!strcmp (host, "*") || !strcmp (host, "0.0.0.0"))
        addr.sin_addr.s_addr = htonl (INADDR_ANY);
    else if (inet_pton (AF_INET, host, &addr.sin_addr) != 1)
        return 0;       /* a name or IPv6: let the broker try and report */
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;       /* cannot tell: let the broker try */
    int one = 1, rc = 0;
    /* as ZeroMQ and Redis do, so a port in TIME_WAIT counts as free */
    if (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
    ||  bind (fd, (struct sockaddr *) &addr, sizeof addr) != 0)
        rc = errno;
    close (fd);
    return rc;
}

static int
s_check_ports (const s_up_t *up)
{
    const struct { const char *host; long port; const char *what; } ports [] = {
        { "127.0.0.1", up->redis_port, "--redis-port" },
        { up->bind, up->port, "--port, for clients" },
        { up->bind, up->port + 1, "--port + 1, for workers" },
    };
    for (size_t i = 0; i < sizeof ports / sizeof ports [0]; i++) {
        int rc = s_port_check (ports [i].host, ports [i].port);
        if (rc == EADDRINUSE)
            return cmd_error ("up: port %ld (%s) is already in use on %s; choose another",
                              ports [i].port, ports [i].what, ports [i].host);
        if (rc)
            return cmd_error ("up: cannot listen on %s:%ld (%s): %s", ports [i].host,
                              ports [i].port, ports [i].what, strerror (rc));
    }
    return TY_CMD_EXIT_OK;
}

static void
s_show_log_tail (const char *path)
{
    FILE *f = fopen (path, "re");
    if (!f)
        return;
    char *lines [S_LOG_TAIL_LINES] = { NULL };
    size_t count = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline (&line, &cap, f) >= 0) {
        free (lines [count % S_LOG_TAIL_LINES]);
        lines [count % S_LOG_TAIL_LINES] = strdup (line);
        count++;
    }
    free (line);
    fclose (f);
    size_t first = count > S_LOG_TAIL_LINES ? count - S_LOG_TAIL_LINES : 0;
    if (count)
        s_complain ("--- last lines of %s ---\n", path);
    for (size_t i = first; i < count; i++) {
        const char *l = lines [i % S_LOG_TAIL_LINES];
        if (l && *l)
            s_complain ("  %s%s", l, l [strlen (l) - 1] == '\n' ? "" : "\n");
    }
    for (size_t i = 0; i < S_LOG_TAIL_LINES; i++)
        free (lines [i]);
}

/* Why child i could not start, then its log. Returns TY_CMD_EXIT_ERROR. */
static int
s_child_failed (cmd_supervisor_t *sup, int i)
{
    const char *how = cmd_supervisor_exit_text (sup, i);
    s_complain ("trainyard: up: %s %s during startup\n", cmd_supervisor_name (sup, i),
                *how ? how : "did not become ready");
    s_show_log_tail (cmd_supervisor_log (sup, i));
    return TY_CMD_EXIT_ERROR;
}

static int
s_start (const s_up_t *up, cmd_supervisor_t *sup, int i)
{
    int rc = cmd_supervisor_start (sup, i);
    if (rc) {
        s_complain ("trainyard: up: cannot start %s: %s\n", cmd_supervisor_name (sup, i),
                    strerror (rc));
        return TY_CMD_EXIT_ERROR;
    }
    return TY_CMD_EXIT_OK;
}

typedef int (s_ready_fn) (const s_up_t *up, void *arg);

static int
s_redis_ready (const s_up_t *up, void *arg)
{
    (void) arg;
    return s_redis_ping (up->redis_port);
}

static int
s_broker_ready (const s_up_t *up, void *arg)
{
    ty_client_t *client = arg;
    return ty_client_ping (client, 500, NULL) == TY_OK;
}

/* Waits until ready() or timeout; fails at once if child i dies or a stop
 * signal comes. Returns TY_CMD_EXIT_OK, _ERROR, or S_EXIT_SIGINT. */
static int
s_wait_ready (const s_up_t *up, cmd_supervisor_t *sup, int i, int timeout_ms,
              s_ready_fn *ready, void *arg)
{
    int64_t deadline = ty_clock_mono_ms () + timeout_ms;
    for (;;) {
        int is_ready = ready (up, arg);
        if (cmd_supervisor_poll (sup, is_ready ? 0 : S_READY_POLL_MS))
            return S_EXIT_SIGINT;
        /* an answer from a child that is already dead came from a stranger */
        if (!cmd_supervisor_alive (sup, i))
            return s_child_failed (sup, i);
        if (is_ready)
            return TY_CMD_EXIT_OK;
        if (ty_clock_mono_ms () >= deadline) {
            s_complain ("trainyard: up: %s did not answer within %d s\n",
                        cmd_supervisor_name (sup, i), timeout_ms / 1000);
            s_show_log_tail (cmd_supervisor_log (sup, i));
            return TY_CMD_EXIT_ERROR;
        }
    }
}

/* Workers are ready when the broker lists them. Not fatal if they are
 * late (they reconnect with backoff), only if one dies. */
static int
s_wait_workers (const s_up_t *up, cmd_supervisor_t *sup, int first, int last, ty_client_t *client,
                size_t expected)
{
    int64_t deadline = ty_clock_mono_ms () + S_WORKERS_READY_MS;
    for (;;) {
        Ty__WorkerList *list = NULL;
        size_t seen = 0;
        if (ty_client_workers (client, 1000, &list) == TY_OK)
            for (size_t w = 0; w < list->n_workers; w++)
                for (int i = first; i < last; i++)
                    if (list->workers [w]->pid == (uint32_t) cmd_supervisor_pid (sup, i))
                        seen++;
        ty_client_free_msg (list);
        if (seen >= expected)
            return TY_CMD_EXIT_OK;
        if (cmd_supervisor_poll (sup, 200))
            return S_EXIT_SIGINT;
        for (int i = first; i < last; i++)
            if (!cmd_supervisor_alive (sup, i))
                return s_child_failed (sup, i);
        if (ty_clock_mono_ms () >= deadline) {
            s_complain ("trainyard: up: warning: only %zu of %zu workers registered "
                        "after %d s; they keep trying (see %s/logs)\n", seen, expected,
                        S_WORKERS_READY_MS / 1000, up->dir);
            return TY_CMD_EXIT_OK;
        }
    }
}

/* Adds a child whose argv is given as a NULL-terminated list. */
static int
s_add (cmd_supervisor_t *sup, const s_up_t *up, const char *name, int group,
       char *const *argv)
{
    char log [PATH_MAX];
    if (cmd_statedir_path (log, sizeof log, up->dir, "logs/%s.log", name))
        return -1;
    return cmd_supervisor_add (sup, name, group, log, argv);
}

static void
s_summary (const s_up_t *up, cmd_supervisor_t *sup, int nchildren)
{
    s_say ("trainyard is up (state %s, supervisor pid %d)\n", up->dir, (int) getpid ());
    for (int i = 0; i < nchildren; i++) {
        const char *name = cmd_supervisor_name (sup, i);
        char where [PATH_MAX + 128];
        if (!strcmp (name, "redis"))
            snprintf (where, sizeof where, "redis://127.0.0.1:%ld  data %s/redis",
                      up->redis_port, up->dir);
        else if (!strcmp (name, "broker"))
            snprintf (where, sizeof where, "clients tcp://%s:%ld  workers tcp://%s:%ld",
                      up->bind, up->port, up->bind, up->port + 1);
        else if (!strcmp (name, "scheduler"))
            snprintf (where, sizeof where, "schedules and triggers from redis://127.0.0.1:%ld",
                      up->redis_port);
        else
            snprintf (where, sizeof where, "-> tcp://%s:%ld", up->connect_host, up->port + 1);
        s_say ("  %-12s pid %-7d %s\n", name, (int) cmd_supervisor_pid (sup, i), where);
    }
    s_say ("logs in %s/logs\n", up->dir);
    char endpoint [128];
    snprintf (endpoint, sizeof endpoint, "tcp://%s:%ld", up->connect_host, up->port);
    if (strcmp (endpoint, TY_CMD_DEFAULT_BROKER) != 0)
        s_say ("use it with: export TRAINYARD_BROKER=%s\n", endpoint);
    if (up->detach)
        s_say ("stop with: trainyard down --state-dir %s\n", up->dir);
    else
        s_say ("Ctrl-C stops everything\n");
}

/* Registers and starts redis, broker, workers in that order, each once the
 * previous answers. Returns the number of children via *nchildren. */
static int
s_bring_up (const s_up_t *up, cmd_supervisor_t *sup, int *nchildren)
{
    char redis_conf [PATH_MAX], broker_log [PATH_MAX];
    char clients_ep [128], workers_ep [128], redis_url [64], connect_ep [128];
    if (cmd_statedir_path (redis_conf, sizeof redis_conf, up->dir, "redis.conf")
    ||  cmd_statedir_path (broker_log, sizeof broker_log, up->dir, "logs/broker.log"))
        return cmd_error ("up: state directory path too long");
    snprintf (clients_ep, sizeof clients_ep, "tcp://%s:%ld", up->bind, up->port);
    snprintf (workers_ep, sizeof workers_ep, "tcp://%s:%ld", up->bind, up->port + 1);
    snprintf (redis_url, sizeof redis_url, "redis://127.0.0.1:%ld", up->redis_port);
    snprintf (connect_ep, sizeof connect_ep, "tcp://%s:%ld", up->connect_host, up->port);

    char *redis_argv [] = { (char *) up->exe_redis, redis_conf, NULL };
    int redis = s_add (sup, up, "redis", 0, redis_argv);
    char *broker_argv [16] = { (char *) up->exe_broker, "--clients", clients_ep,
                               "--workers", workers_ep, "--redis", redis_url,
                               "--log-file", broker_log, NULL };
    if (up->log_level) {
        broker_argv [9] = "--log-level";
        broker_argv [10] = (char *) up->log_level;
        broker_argv [11] = NULL;
    }
    int broker = s_add (sup, up, "broker", 1, broker_argv);
    if (redis < 0 || broker < 0)
        return cmd_error ("up: out of memory");
    int first_worker = broker + 1, last_worker = first_worker;
    char worker_ep [128], data_dir [PATH_MAX];
    snprintf (worker_ep, sizeof worker_ep, "tcp://%s:%ld", up->connect_host, up->port + 1);
    if (cmd_statedir_path (data_dir, sizeof data_dir, up->dir, "data"))
        return cmd_error ("up: state directory path too long");
    if (mkdir (data_dir, 0755) != 0 && errno != EEXIST)
        return cmd_error ("up: cannot create %s: %s", data_dir, strerror (errno));
    for (size_t t = 0; t < S_NTYPES; t++) {
        for (long k = 1; k <= up->workers [t]; k++) {
            char name [48], log [PATH_MAX];
            snprintf (name, sizeof name, "%s-%ld", s_types [t], k);
            if (cmd_statedir_path (log, sizeof log, up->dir, "logs/%s.log", name))
                return cmd_error ("up: state directory path too long");
            char *argv [10] = { (char *) up->exe_workers [t], "--broker", worker_ep,
                                "--log-file", log, NULL };
            int n = 5;
            if (up->log_level) {
                argv [n++] = "--log-level";
                argv [n++] = (char *) up->log_level;
            }
            /* Every worker but noop reads and writes datasets and models,
               all under the state directory's data/. */
            if (strcmp (s_types [t], "noop")) {
                argv [n++] = "--data";
                argv [n++] = data_dir;
            }
            argv [n] = NULL;
            if (s_add (sup, up, name, 2, argv) < 0)
                return cmd_error ("up: too many workers");
            last_worker++;
        }
    }
    /* The scheduler (schedules, retrain triggers) when it is built: after
       the workers, so a run it starts at once finds them. */
    int scheduler = -1;
    char sched_log [PATH_MAX], sched_redis [64];
    if (up->exe_scheduler [0]) {
        if (cmd_statedir_path (sched_log, sizeof sched_log, up->dir, "logs/scheduler.log"))
            return cmd_error ("up: state directory path too long");
        snprintf (sched_redis, sizeof sched_redis, "redis://127.0.0.1:%ld", up->redis_port);
        /* a stable id: a restarted scheduler takes back its own leases at once */
        char *argv [16] = { (char *) up->exe_scheduler, "--redis", sched_redis,
                            "--broker", connect_ep, "--data", data_dir, "--id", "up",
                            "--log-file", sched_log, NULL };
        if (up->log_level) {
            argv [11] = "--log-level";
            argv [12] = (char *) up->log_level;
            argv [13] = NULL;
        }
        if ((scheduler = s_add (sup, up, "scheduler", 2, argv)) < 0)
            return cmd_error ("up: out of memory");
    }
    *nchildren = scheduler >= 0 ? scheduler + 1 : last_worker;

    int rc;
    if ((rc = s_start (up, sup, redis))
    ||  (rc = s_wait_ready (up, sup, redis, S_REDIS_READY_MS, s_redis_ready, NULL))
    ||  (rc = s_start (up, sup, broker)))
        return rc;
    ty_client_t *client = ty_client_new (connect_ep);
    if (!client)
        return cmd_error ("up: cannot create a ZeroMQ socket");
    rc = s_wait_ready (up, sup, broker, S_BROKER_READY_MS, s_broker_ready, client);
    for (int i = first_worker; i < last_worker && rc == TY_CMD_EXIT_OK; i++)
        rc = s_start (up, sup, i);
    if (rc == TY_CMD_EXIT_OK && last_worker > first_worker)
        rc = s_wait_workers (up, sup, first_worker, last_worker, client,
                             (size_t) (last_worker - first_worker));
    if (rc == TY_CMD_EXIT_OK && scheduler >= 0)
        rc = s_start (up, sup, scheduler);
    ty_client_destroy (&client);
    return rc;
}

/* ---- options ---------------------------------------------------------------- */

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard up [OPTIONS]\n"
        "\n"
        "Start a local cluster: redis-server (data in the state directory), the\n"
        "broker and workers; supervise them (restart one that dies) until Ctrl-C,\n"
        "then stop them in reverse order. Jobs left unfinished survive in the state\n"
        "directory's Redis data and resume at the next `up`.\n"
        "\n"
        "  --state-dir DIR     state directory (env TRAINYARD_STATE, default %s)\n"
        "  --workers LIST      e.g. noop=2,train=1 (default: one noop worker, plus\n"
        "                      one of each other type whose executable exists)\n"
        "  --port N            broker client port; workers connect to N+1 (default %d)\n"
        "  --redis-port N      Redis port, loopback only (default %d)\n"
        "  --bind ADDR         address the broker listens on (default %s)\n"
        "  --detach            return to the shell once everything is ready;\n"
        "                      stop with `trainyard down`\n"
        "  --log-level L       debug, info, warn or error, for broker and workers\n"
        "  -h, --help          this help\n"
        "\n"
        "Executables are looked up beside `trainyard`, then in PATH.\n",
        TY_CMD_STATE_DEFAULT, S_DEFAULT_PORT, S_DEFAULT_REDIS_PORT, S_DEFAULT_BIND);
}

static int
s_type_index (const char *type, size_t len)
{
    for (size_t t = 0; t < S_NTYPES; t++)
        if (strlen (s_types [t]) == len && !strncmp (s_types [t], type, len))
            return (int) t;
    return -1;
}

/* "noop=2,train=1" (a bare "noop" means 1) into up->workers. */
static int
s_parse_workers (s_up_t *up, const char *spec)
{
    const char *p = spec;
    while (*p) {
        const char *end = strchr (p, ',');
        size_t len = end ? (size_t) (end - p) : strlen (p);
        const char *eq = memchr (p, '=', len);
        size_t tlen = eq ? (size_t) (eq - p) : len;
        int t = s_type_index (p, tlen);
        if (t < 0)
            return cmd_usage_error ("up", "--workers: unknown job type '%.*s'", (int) tlen, p);
        long count = 1;
        if (eq) {
            char num [16];
            size_t nlen = len - tlen - 1;
            if (nlen == 0 || nlen >= sizeof num)
                return cmd_usage_error ("up", "--workers: bad count for '%s'", s_types [t]);
            memcpy (num, eq + 1, nlen);
            num [nlen] = '\0';
            if (cmd_parse_long (num, 0, S_MAX_WORKERS_PER_TYPE, &count))
                return cmd_usage_error ("up", "--workers: '%s' is not a count in 0..%d",
                                        num, S_MAX_WORKERS_PER_TYPE);
        }
        up->workers [t] = count;
        p += len + (end ? 1 : 0);
    }
    return TY_CMD_EXIT_OK;
}

/* Which executables to run; a worker type asked for but not built is an error. */
static int
s_resolve_executables (s_up_t *up)
{
    if (s_find_exe ("trainyard-scheduler", up->exe_scheduler, sizeof up->exe_scheduler))
        up->exe_scheduler [0] = '\0';
    if (s_find_exe ("trainyard-broker", up->exe_broker, sizeof up->exe_broker))
        return cmd_error ("up: trainyard-broker not found beside trainyard nor in PATH");
    if (s_find_exe ("redis-server", up->exe_redis, sizeof up->exe_redis))
        return cmd_error ("up: redis-server not found in PATH (apt install redis-server)");
    for (size_t t = 0; t < S_NTYPES; t++) {
        char name [64];
        snprintf (name, sizeof name, "trainyard-%s", s_types [t]);
        int found = s_find_exe (name, up->exe_workers [t], sizeof up->exe_workers [t]) == 0;
        if (!up->workers_given)
            /* the default: noop always, any other type that is installed */
            up->workers [t] = (t == 0 || found) ? 1 : 0;
        if (up->workers [t] > 0 && !found)
            return cmd_error ("up: %s not found beside trainyard nor in PATH "
                              "(is the %s worker built?)", name, s_types [t]);
    }
    return TY_CMD_EXIT_OK;
}

static int
s_parse (s_up_t *up, int argc, char **argv)
{
    enum { OPT_STATE = 256, OPT_WORKERS, OPT_PORT, OPT_REDIS_PORT, OPT_BIND,
           OPT_DETACH, OPT_LOG_LEVEL };
    static const struct option opts [] = {
        { "state-dir",  required_argument, NULL, OPT_STATE },
        { "workers",    required_argument, NULL, OPT_WORKERS },
        { "port",       required_argument, NULL, OPT_PORT },
        { "redis-port", required_argument, NULL, OPT_REDIS_PORT },
        { "bind",       required_argument, NULL, OPT_BIND },
        { "detach",     no_argument,       NULL, OPT_DETACH },
        { "log-level",  required_argument, NULL, OPT_LOG_LEVEL },
        { "help",       no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c, rc;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_STATE:
                up->dir_arg = optarg;
                break;
            case OPT_WORKERS:
                for (size_t t = 0; t < S_NTYPES; t++)
                    up->workers [t] = 0;
                up->workers_given = 1;
                if ((rc = s_parse_workers (up, optarg)))
                    return rc;
                break;
            case OPT_PORT:
                if (cmd_parse_long (optarg, 1, 65534, &up->port))
                    return cmd_usage_error ("up", "--port: '%s' is not a port in 1..65534", optarg);
                break;
            case OPT_REDIS_PORT:
                if (cmd_parse_long (optarg, 1, 65535, &up->redis_port))
                    return cmd_usage_error ("up", "--redis-port: '%s' is not a port", optarg);
                break;
            case OPT_BIND:
                if (!*optarg || strlen (optarg) >= sizeof up->connect_host)
                    return cmd_usage_error ("up", "--bind: bad address '%s'", optarg);
                up->bind = optarg;
                break;
            case OPT_DETACH:
                up->detach = 1;
                break;
            case OPT_LOG_LEVEL:
                if (ty_log_level_parse (optarg) < 0)
                    return cmd_usage_error ("up", "--log-level: '%s' is not debug, info, "
                                            "warn or error", optarg);
                up->log_level = optarg;
                break;
            case 'h':
                s_usage (stdout);
                return -1;
            default:
                return cmd_getopt_error ("up", c, argv);
        }
    }
    if (optind < argc)
        return cmd_usage_error ("up", "unexpected argument '%s'", argv [optind]);
    if (up->redis_port == up->port || up->redis_port == up->port + 1)
        return cmd_usage_error ("up", "--redis-port %ld collides with the broker's ports "
                                "%ld and %ld", up->redis_port, up->port, up->port + 1);
    /* a wildcard bind is not an address to connect to */
    int wildcard = !strcmp (up->bind, "0.0.0.0") || !strcmp (up->bind, "*");
    snprintf (up->connect_host, sizeof up->connect_host, "%s",
              wildcard ? "127.0.0.1" : up->bind);
    return TY_CMD_EXIT_OK;
}

int
cmd_up (cmd_ctx_t *ctx, int argc, char **argv)
{
    (void) ctx;
    s_up_t *up = calloc (1, sizeof *up);   /* several PATH_MAX buffers: not on the stack */
    if (!up)
        return cmd_error ("out of memory");
    up->port = S_DEFAULT_PORT;
    up->redis_port = S_DEFAULT_REDIS_PORT;
    up->bind = S_DEFAULT_BIND;
    int rc = s_parse (up, argc, argv);
    if (rc) {
        free (up);
        return rc < 0 ? TY_CMD_EXIT_OK : rc;
    }
    if ((rc = s_resolve_executables (up))) {
        free (up);
        return rc;
    }
    int err = cmd_statedir_resolve (up->dir_arg, 1, up->dir, sizeof up->dir);
    if (err) {
        rc = cmd_error ("up: state directory %s: %s",
                        up->dir_arg ? up->dir_arg : "(default)", strerror (err));
        free (up);
        return rc;
    }
    int lock_fd = -1;
    err = cmd_statedir_lock (up->dir, &lock_fd);
    if (err) {
        if (err == EWOULDBLOCK)
            rc = cmd_error ("up: a cluster already runs from %s (supervisor pid %d); "
                            "stop it with `trainyard down --state-dir %s`", up->dir,
                            (int) cmd_statedir_read_pid (up->dir, "up"), up->dir);
        else
            rc = cmd_error ("up: cannot lock %s/run/up.lock: %s", up->dir, strerror (err));
        free (up);
        return rc;
    }
    if ((rc = s_check_ports (up)) || (rc = s_write_redis_conf (up))) {
        close (lock_fd);
        free (up);
        return rc;
    }
    /* From here on the lock fd is inherited by the daemon, which keeps it. */
    if (up->detach) {
        int shell_rc = TY_CMD_EXIT_ERROR;
        int d = s_daemonize (up, &shell_rc);
        if (d != 0) {
            rc = d > 0 ? shell_rc : cmd_error ("up: cannot detach: %s", strerror (errno));
            close (lock_fd);
            free (up);
            return rc;
        }
    }
    ty_log_init ("trainyard-up", TY_LOG_INFO);
    cmd_supervisor_t *sup = cmd_supervisor_new (up->dir);
    if (!sup) {
        s_complain ("trainyard: up: cannot set up the supervisor: %s\n", strerror (errno));
        close (lock_fd);
        free (up);
        return TY_CMD_EXIT_ERROR;
    }
    err = cmd_statedir_write_pid (up->dir, "up", getpid ());
    if (err)
        s_complain ("trainyard: up: warning: cannot write %s/run/up.pid: %s\n", up->dir,
                    strerror (err));
    int nchildren = 0;
    rc = s_bring_up (up, sup, &nchildren);
    if (rc == TY_CMD_EXIT_OK) {
        s_summary (up, sup, nchildren);
        if (s_notify_fd >= 0) {
            /* the shell returns now; from here on only up.log hears us */
            (void) !write (s_notify_fd, "k", 2);
            close (s_notify_fd);
            s_notify_fd = -1;
        }
        ty_info ("cluster up in %s", up->dir);
        cmd_supervisor_run (sup);
        ty_info ("stopping");
    }
    else if (rc == S_EXIT_SIGINT)
        s_complain ("trainyard: up: interrupted during startup; stopping\n");
    else
        s_complain ("trainyard: up: stopping what was started (logs in %s/logs)\n", up->dir);
    cmd_supervisor_stop_all (sup);
    cmd_supervisor_destroy (&sup);
    cmd_statedir_remove_pid (up->dir, "up");
    if (rc == TY_CMD_EXIT_OK)
        ty_info ("stopped");
    if (s_notify_fd >= 0)
        close (s_notify_fd);
    close (lock_fd);
    free (up);
    return rc;
}

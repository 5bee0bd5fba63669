/*  cmd_supervise: a small process supervisor for `trainyard up`.
 *
 *  Starts children, restarts one that dies (exponential backoff), and stops
 *  them in order: workers first so they can hand jobs back while the broker
 *  still listens, the broker next, Redis last so it flushes the AOF after
 *  the broker's final writes.
 *
 *  Signals are blocked and read with sigtimedwait: no handler runs at a
 *  random point, so the loop stays plain sequential code. Children get their
 *  own process group, so a Ctrl-C on the terminal reaches only the
 *  supervisor, which then stops them in order; PR_SET_PDEATHSIG stops them
 *  too if the supervisor itself is killed with SIGKILL.
 *
 *  It is not a general init: no dependencies beyond the stop groups, no
 *  health checks after start (the broker and workers heal themselves by
 *  reconnecting).
 */
#include "cmd_cluster.h"
#include "ty_backoff.h"
#include "ty_clock.h"
#include "ty_log.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_CHILDREN          64
#define S_RESTART_MIN_MS        500     /* first restart delay */
#define S_RESTART_MAX_MS        30000   /* backoff ceiling: a crash loop costs little */
#define S_STABLE_MS             60000   /* up this long = healthy: backoff resets */
#define S_STOP_GRACE_MS         10000   /* SIGTERM -> SIGKILL for broker and redis */
/* Workers drain running jobs for 10 s (ty_runtime.h) and then hand them
 * back with DISCONNECT; a few more seconds let that message go out. */
#define S_STOP_GRACE_WORKER_MS  15000
#define S_WORKER_GROUP          2
#define S_RUN_TICK_MS           1000    /* longest sleep of the supervision loop */

typedef struct {
    char     name [48];
    int      group;
    char    *argv [TY_CMD_MAX_ARGS + 1];
    char     log_path [PATH_MAX];
    pid_t    pid;
    int64_t  started_ms;        /* monotonic */
    int64_t  restart_at_ms;     /* monotonic; 0 = no restart pending */
    ty_backoff_t backoff;
    int      last_status;       /* waitpid status of the last exit */
    int      has_exited;
    unsigned restarts;
    char     exit_text [64];
} s_child_t;

struct _cmd_supervisor_t {
    char       dir [PATH_MAX];
    s_child_t  children [S_MAX_CHILDREN];
    int        n;
    int        stop_requested;  /* count of stop signals */
    int        restarting;      /* 1 in run(): dead children come back */
    int        stopping;        /* 1 in stop_all(): deaths are expected */
    sigset_t   signals;
    sigset_t   old_mask;
};

cmd_supervisor_t *
cmd_supervisor_new (const char *dir)
{
    cmd_supervisor_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snprintf (self->dir, sizeof self->dir, "%s", dir);
    sigemptyset (&self->signals);
    sigaddset (&self->signals, SIGINT);
    sigaddset (&self->signals, SIGTERM);
    sigaddset (&self->signals, SIGHUP);
    sigaddset (&self->signals, SIGCHLD);
    if (sigprocmask (SIG_BLOCK, &self->signals, &self->old_mask) != 0) {
        free (self);
        return NULL;
    }
    return self;
}

void
cmd_supervisor_destroy (cmd_supervisor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cmd_supervisor_t *self = *self_p;
    for (int i = 0; i < self->n; i++)
        for (int a = 0; self->children [i].argv [a]; a++)
            free (self->children [i].argv [a]);
    sigprocmask (SIG_SETMASK, &self->old_mask, NULL);
    free (self);
    *self_p = NULL;
}

int
cmd_supervisor_add (cmd_supervisor_t *self, const char *name, int group,
                    const char *log_path, char *const *argv)
{
    if (self->n == S_MAX_CHILDREN)
        return -1;
    s_child_t *child = &self->children [self->n];
    memset (child, 0, sizeof *child);
    snprintf (child->name, sizeof child->name, "%s", name);
    snprintf (child->log_path, sizeof child->log_path, "%s", log_path);
    child->group = group;
    ty_backoff_init (&child->backoff, S_RESTART_MIN_MS, S_RESTART_MAX_MS);
    for (int a = 0; argv [a]; a++) {
        if (a == TY_CMD_MAX_ARGS || !(child->argv [a] = strdup (argv [a]))) {
            for (int b = 0; b < a; b++)
                free (child->argv [b]);
            memset (child->argv, 0, sizeof child->argv);
            return -1;
        }
    }
    return self->n++;
}

/* In the child between fork and exec: only async-signal-safe calls. */
static void
s_exec_child (cmd_supervisor_t *self, s_child_t *child, int err_fd, pid_t parent)
{
    /* own process group: the terminal's Ctrl-C is for the supervisor */
    setpgid (0, 0);
    /* if the supervisor dies without stopping us, stop anyway */
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
        _exit (127);     /* it died before prctl: nobody to report to */
    /* signal dispositions and the mask survive exec: give back the defaults */
    signal (SIGPIPE, SIG_DFL);
    sigprocmask (SIG_SETMASK, &self->old_mask, NULL);
    int null_fd = open ("/dev/null", O_RDONLY);
    int log_fd = open (child->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd < 0 || log_fd < 0
    ||  dup2 (null_fd, STDIN_FILENO) < 0
    ||  dup2 (log_fd, STDOUT_FILENO) < 0
    ||  dup2 (log_fd, STDERR_FILENO) < 0) {
        int e = errno;
        (void) !write (err_fd, &e, sizeof e);
        _exit (127);
    }
    if (null_fd > STDERR_FILENO)
        close (null_fd);
    if (log_fd > STDERR_FILENO)
        close (log_fd);
    execv (child->argv [0], child->argv);
    int e = errno;
    (void) !write (err_fd, &e, sizeof e);
    _exit (127);
}

int
cmd_supervisor_start (cmd_supervisor_t *self, int i)
{
    s_child_t *child = &self->children [i];
    /* exec failures come back through this pipe; EOF means exec worked */
    int fds [2];
    if (pipe2 (fds, O_CLOEXEC) != 0)
        return errno;
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid < 0) {
        int e = errno;
        close (fds [0]);
        close (fds [1]);
        return e;
    }
    if (pid == 0) {
        close (fds [0]);
        s_exec_child (self, child, fds [1], parent);
    }
    close (fds [1]);
    int child_errno = 0;
    ssize_t n;
    do
        n = read (fds [0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close (fds [0]);
    child->pid = pid;
    child->started_ms = ty_clock_mono_ms ();
    child->restart_at_ms = 0;
    if (n == (ssize_t) sizeof child_errno) {
        /* exec failed; the child exits 127 and is reaped by the next poll */
        return child_errno ? child_errno : ENOEXEC;
    }
    int rc = cmd_statedir_write_pid (self->dir, child->name, pid);
    if (rc)
        ty_warn ("cannot write the pid file of %s: %s", child->name, strerror (rc));
    return 0;
}

static void
s_describe_exit (s_child_t *child, int status)
{
    if (WIFEXITED (status))
        snprintf (child->exit_text, sizeof child->exit_text, "exited with status %d",
                  WEXITSTATUS (status));
    else if (WIFSIGNALED (status))
        snprintf (child->exit_text, sizeof child->exit_text, "killed by signal %d (%s)",
                  WTERMSIG (status), strsignal (WTERMSIG (status)));
    else
        snprintf (child->exit_text, sizeof child->exit_text, "ended (status 0x%x)", status);
}

static void
s_reap (cmd_supervisor_t *self)
{
    int status;
    pid_t pid;
    while ((pid = waitpid (-1, &status, WNOHANG)) > 0) {
        s_child_t *child = NULL;
        for (int i = 0; i < self->n && !child; i++)
            if (self->children [i].pid == pid)
                child = &self->children [i];
        if (!child)
            continue;       /* not ours (e.g. a helper): nothing to do */
        child->pid = 0;
        child->has_exited = 1;
        child->last_status = status;
        s_describe_exit (child, status);
        cmd_statedir_remove_pid (self->dir, child->name);
        if (self->stopping || !self->restarting)
            continue;
        int64_t now = ty_clock_mono_ms ();
        if (now - child->started_ms >= S_STABLE_MS)
            ty_backoff_reset (&child->backoff);
        int64_t delay = ty_backoff_next (&child->backoff);
        child->restart_at_ms = now + delay;
        ty_warn ("%s (pid %d) %s unexpectedly; restarting in %lld ms (see %s)",
                 child->name, (int) pid, child->exit_text, (long long) delay,
                 child->log_path);
    }
}

int
cmd_supervisor_poll (cmd_supervisor_t *self, int timeout_ms)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    struct timespec ts = { timeout_ms / 1000, (long) (timeout_ms % 1000) * 1000000L };
    siginfo_t info;
    int sig = sigtimedwait (&self->signals, &info, &ts);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
        self->stop_requested++;
        if (self->stopping && self->stop_requested > 1)
            ty_warn ("second stop signal: killing what is left");
    }
    /* SIGCHLD is not queued per child: reap everything that is ready */
    s_reap (self);
    return self->stop_requested > 0;
}

int
cmd_supervisor_alive (cmd_supervisor_t *self, int i)
{
    return self->children [i].pid > 0;
}

pid_t
cmd_supervisor_pid (cmd_supervisor_t *self, int i)
{
    return self->children [i].pid;
}

const char *
cmd_supervisor_name (cmd_supervisor_t *self, int i)
{
    return self->children [i].name;
}

const char *
cmd_supervisor_log (cmd_supervisor_t *self, int i)
{
    return self->children [i].log_path;
}

const char *
cmd_supervisor_exit_text (cmd_supervisor_t *self, int i)
{
    return self->children [i].has_exited ? self->children [i].exit_text : "";
}

void
cmd_supervisor_run (cmd_supervisor_t *self)
{
    self->restarting = 1;
    /* a child that died between its readiness check and now: bring it back */
    int64_t start = ty_clock_mono_ms ();
    for (int i = 0; i < self->n; i++)
        if (!self->children [i].pid && !self->children [i].restart_at_ms) {
            ty_warn ("%s %s; restarting it", self->children [i].name,
                     self->children [i].has_exited ? self->children [i].exit_text : "is not running");
            self->children [i].restart_at_ms = start + ty_backoff_next (&self->children [i].backoff);
        }
    int wait_ms = 0;
    while (!cmd_supervisor_poll (self, wait_ms)) {
        int64_t now = ty_clock_mono_ms ();
        for (int i = 0; i < self->n; i++) {
            s_child_t *child = &self->children [i];
            if (child->pid || !child->restart_at_ms || now < child->restart_at_ms)
                continue;
            int rc = cmd_supervisor_start (self, i);
            child->restarts++;
            if (rc) {
                int64_t delay = ty_backoff_next (&child->backoff);
                child->restart_at_ms = now + delay;
                ty_error ("cannot restart %s: %s; next try in %lld ms", child->name,
                          strerror (rc), (long long) delay);
            }
            else
                ty_info ("restarted %s as pid %d (restart %u)", child->name,
                         (int) child->pid, child->restarts);
        }
        /* sleep until the next restart is due, a signal, or a second */
        wait_ms = S_RUN_TICK_MS;
        for (int i = 0; i < self->n; i++) {
            s_child_t *child = &self->children [i];
            if (!child->pid && child->restart_at_ms) {
                int64_t due = child->restart_at_ms - now;
                if (due < wait_ms)
                    wait_ms = due > 0 ? (int) due : 0;
            }
        }
    }
    self->restarting = 0;
}

static void
s_kill_group (cmd_supervisor_t *self, int group, int sig)
{
    /* reverse start order within a group, as across groups */
    for (int i = self->n - 1; i >= 0; i--)
        if (self->children [i].group == group && self->children [i].pid > 0)
            kill (self->children [i].pid, sig);
}

static int
s_group_alive (cmd_supervisor_t *self, int group)
{
    for (int i = 0; i < self->n; i++)
        if (self->children [i].group == group && self->children [i].pid > 0)
            return 1;
    return 0;
}

void
cmd_supervisor_stop_all (cmd_supervisor_t *self)
{
    self->stopping = 1;
    self->restarting = 0;
    int stop_signals = self->stop_requested;
    int max_group = 0;
    for (int i = 0; i < self->n; i++) {
        self->children [i].restart_at_ms = 0;
        if (self->children [i].group > max_group)
            max_group = self->children [i].group;
    }
    for (int group = max_group; group >= 0; group--) {
        if (!s_group_alive (self, group))
            continue;
        int64_t grace = group == S_WORKER_GROUP ? S_STOP_GRACE_WORKER_MS : S_STOP_GRACE_MS;
        int64_t deadline = ty_clock_mono_ms () + grace;
        s_kill_group (self, group, SIGTERM);
        int killed = 0;
        while (s_group_alive (self, group)) {
            int64_t now = ty_clock_mono_ms ();
            /* SIGKILL after the grace period, or at once on a second
             * Ctrl-C: whoever presses it twice does not want to wait */
            int hurry = self->stop_requested > (stop_signals ? stop_signals : 1);
            if (!killed && (now >= deadline || hurry)) {
                for (int i = 0; i < self->n; i++)
                    if (self->children [i].group == group && self->children [i].pid > 0)
                        ty_warn ("%s (pid %d) still running: SIGKILL",
                                 self->children [i].name, (int) self->children [i].pid);
                s_kill_group (self, group, SIGKILL);
                killed = 1;
            }
            cmd_supervisor_poll (self, 100);
        }
    }
    self->stopping = 0;
}

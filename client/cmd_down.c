/*  trainyard down: stop the cluster that `trainyard up` runs from a state
 *  directory, and wait until every process is gone.
 *
 *  It signals the supervisor (DIR/run/up.pid), which stops its children in
 *  order, and waits for the supervisor's lock on DIR/run/up.lock to be
 *  released: the lock, unlike the pid, cannot be stale or reused.
 *
 *  If no supervisor runs but pid files of children remain (the supervisor
 *  was SIGKILLed and a child ignored its death signal), those processes are
 *  stopped too, after checking that the pid is really a trainyard process
 *  or redis-server.
 */
#include "cmd.h"
#include "cmd_cluster.h"
#include "ty_clock.h"
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define S_DOWN_WAIT_MS    60000   /* > worker (15 s) + broker (10 s) + redis (10 s) grace */
#define S_STRAY_GRACE_MS  10000
#define S_POLL_MS         100

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard down [--state-dir DIR]\n"
        "\n"
        "Stop the cluster started by `trainyard up --detach` from DIR and wait\n"
        "until all its processes have exited (Redis last, its data kept).\n"
        "  --state-dir DIR  state directory (env TRAINYARD_STATE, default %s)\n"
        "  -h, --help       this help\n", TY_CMD_STATE_DEFAULT);
}

/* 1 if pid runs something `up` starts: a trainyard-* or redis-server. */
static int
s_is_ours (pid_t pid)
{
    char link [64], exe [PATH_MAX];
    snprintf (link, sizeof link, "/proc/%d/exe", (int) pid);
    ssize_t n = readlink (link, exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe [n] = '\0';
    const char *base = strrchr (exe, '/');
    base = base ? base + 1 : exe;
    return !strncmp (base, "trainyard-", 10) || !strncmp (base, "redis-server", 12);
}

/* Stops the children a dead supervisor left behind. Returns how many. */
static int
s_stop_strays (const char *dir)
{
    char run [PATH_MAX];
    if (cmd_statedir_path (run, sizeof run, dir, "run"))
        return 0;
    DIR *d = opendir (run);
    if (!d)
        return 0;
    pid_t pids [64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir (d)) && n < 64) {
        size_t len = strlen (e->d_name);
        if (len <= 4 || strcmp (e->d_name + len - 4, ".pid") || e->d_name [0] == '.'
        ||  !strcmp (e->d_name, "up.pid"))
            continue;
        char name [256];
        snprintf (name, sizeof name, "%.*s", (int) (len - 4), e->d_name);
        pid_t pid = cmd_statedir_read_pid (dir, name);
        if (pid > 0 && s_is_ours (pid) && kill (pid, SIGTERM) == 0) {
            fprintf (stderr, "trainyard: down: stopping leftover %s (pid %d)\n", name, (int) pid);
            pids [n++] = pid;
        }
        cmd_statedir_remove_pid (dir, name);
    }
    closedir (d);
    int64_t deadline = ty_clock_mono_ms () + S_STRAY_GRACE_MS;
    for (int i = 0; i < n; i++) {
        while (kill (pids [i], 0) == 0 && ty_clock_mono_ms () < deadline)
            ty_clock_sleep_ms (S_POLL_MS);
        if (kill (pids [i], 0) == 0 && s_is_ours (pids [i]))
            kill (pids [i], SIGKILL);
    }
    return n;
}

int
cmd_down (cmd_ctx_t *ctx, int argc, char **argv)
{
    (void) ctx;
    enum { OPT_STATE = 256 };
    static const struct option opts [] = {
        { "state-dir", required_argument, NULL, OPT_STATE },
        { "help",      no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir_arg = NULL;
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_STATE: dir_arg = optarg; break;
            case 'h':       s_usage (stdout); return TY_CMD_EXIT_OK;
            default:        return cmd_getopt_error ("down", c, argv);
        }
    }
    if (optind < argc)
        return cmd_usage_error ("down", "unexpected argument '%s'", argv [optind]);

    char dir [PATH_MAX], run [PATH_MAX];
    int err = cmd_statedir_resolve (dir_arg, 0, dir, sizeof dir);
    if (err)
        return cmd_error ("down: state directory %s: %s",
                          dir_arg ? dir_arg : "(default " TY_CMD_STATE_DEFAULT ")",
                          strerror (err));
    if (cmd_statedir_path (run, sizeof run, dir, "run") || access (run, F_OK) != 0)
        return cmd_error ("down: %s is not a trainyard state directory (no run/)", dir);

    int lock_fd = -1;
    err = cmd_statedir_lock (dir, &lock_fd);
    if (err == 0) {
        /* no supervisor: at most leftovers of one that was killed */
        int strays = s_stop_strays (dir);
        cmd_statedir_remove_pid (dir, "up");
        close (lock_fd);
        if (!strays)
            fprintf (stderr, "trainyard: down: nothing runs from %s\n", dir);
        return TY_CMD_EXIT_OK;
    }
    if (err != EWOULDBLOCK)
        return cmd_error ("down: cannot check %s/run/up.lock: %s", dir, strerror (err));

    pid_t pid = cmd_statedir_read_pid (dir, "up");
    if (pid <= 0)
        return cmd_error ("down: a supervisor holds %s/run/up.lock but run/up.pid is "
                          "missing; stop it by hand", dir);
    if (kill (pid, SIGTERM) != 0)
        return cmd_error ("down: cannot signal the supervisor (pid %d): %s", (int) pid,
                          strerror (errno));
    printf ("stopping the cluster in %s (supervisor pid %d)...\n", dir, (int) pid);
    fflush (stdout);
    int64_t deadline = ty_clock_mono_ms () + S_DOWN_WAIT_MS;
    while (ty_clock_mono_ms () < deadline) {
        ty_clock_sleep_ms (S_POLL_MS);
        err = cmd_statedir_lock (dir, &lock_fd);
        if (err == 0) {
            close (lock_fd);
            printf ("stopped\n");
            return TY_CMD_EXIT_OK;
        }
        if (err != EWOULDBLOCK)
            return cmd_error ("down: cannot check %s/run/up.lock: %s", dir, strerror (err));
    }
    return cmd_error ("down: the supervisor (pid %d) is still running after %d s; "
                      "see %s/logs/up.log", (int) pid, S_DOWN_WAIT_MS / 1000, dir);
}

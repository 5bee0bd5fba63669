/*  cmd_cluster: the pieces `trainyard up` and `trainyard down` share to run
 *  a local cluster: the state directory (cmd_statedir.c) and the supervisor
 *  of child processes (cmd_supervise.c).
 *
 *  State directory layout (default ./.trainyard, env TRAINYARD_STATE):
 *      DIR/redis.conf     written by each `up`
 *      DIR/redis/         Redis data (appendonly): what makes jobs survive
 *      DIR/logs/          one log per process, up.log for a detached supervisor
 *      DIR/run/<name>.pid one pid per running child, up.pid for the supervisor
 *      DIR/run/up.lock    flock(2)ed by the supervisor for its whole life:
 *                         the one reliable "is it running" test (a pid file
 *                         can be stale, a lock dies with its process)
 *
 *  Not thread-safe; the supervisor owns the process's signal mask.
 */
#ifndef TY_CMD_CLUSTER_H
#define TY_CMD_CLUSTER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TY_CMD_STATE_DEFAULT "./.trainyard"

/* ---- state directory (cmd_statedir.c) ------------------------------------ */

/* Resolves the state directory (arg, else env TRAINYARD_STATE, else the
 * default) to an absolute path in out (PATH_MAX bytes). create: 1 to make
 * it and its redis/, logs/, run/ subdirectories. Returns 0 or errno. */
int cmd_statedir_resolve (const char *arg, int create, char *out, size_t len);

/* snprintf into buf of the path DIR/<fmt...>; returns 0, or ENAMETOOLONG. */
int cmd_statedir_path (char *buf, size_t len, const char *dir, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* Takes DIR/run/up.lock without waiting. Returns 0 and the fd (O_CLOEXEC;
 * keep it open to hold the lock), EWOULDBLOCK if a supervisor holds it,
 * or another errno. */
int cmd_statedir_lock (const char *dir, int *fd_out);

/* DIR/run/<name>.pid: write atomically (temp + rename), read (0 if absent
 * or malformed), remove. */
int   cmd_statedir_write_pid (const char *dir, const char *name, pid_t pid);
pid_t cmd_statedir_read_pid (const char *dir, const char *name);
void  cmd_statedir_remove_pid (const char *dir, const char *name);

/* ---- supervisor (cmd_supervise.c) ---------------------------------------- */

#define TY_CMD_MAX_ARGS 24      /* per child command line */

typedef struct _cmd_supervisor_t cmd_supervisor_t;

/* Blocks SIGINT, SIGTERM, SIGHUP and SIGCHLD (they are read with
 * sigtimedwait, so do this before any thread exists). dir: the state dir,
 * for pid files. Returns NULL if out of memory. */
cmd_supervisor_t *cmd_supervisor_new (const char *dir);
/* Does not stop children: call cmd_supervisor_stop_all first. */
void cmd_supervisor_destroy (cmd_supervisor_t **self_p);

/* Registers a child. Stop order: higher group first (workers 2, broker 1,
 * redis 0). argv is copied; log_path gets the child's stdout and stderr
 * (appended). Returns the child's index, or -1 if out of memory/space. */
int cmd_supervisor_add (cmd_supervisor_t *self, const char *name, int group,
                        const char *log_path, char *const *argv);

/* Starts child i. Returns 0, or the errno of fork/exec (the exec failure is
 * reported synchronously through a close-on-exec pipe). */
int cmd_supervisor_start (cmd_supervisor_t *self, int i);

/* Waits up to timeout_ms for signals; reaps children. Returns 1 once stop
 * was requested (SIGINT/SIGTERM/SIGHUP), else 0. */
int cmd_supervisor_poll (cmd_supervisor_t *self, int timeout_ms);

/* 1 if child i is running. */
int cmd_supervisor_alive (cmd_supervisor_t *self, int i);
/* The pid of child i (0 if not running), its name, its log path. */
pid_t cmd_supervisor_pid (cmd_supervisor_t *self, int i);
const char *cmd_supervisor_name (cmd_supervisor_t *self, int i);
const char *cmd_supervisor_log (cmd_supervisor_t *self, int i);
/* How child i last ended, as text ("exited with status 1", "killed by
 * signal 9"); "" if it has not. Borrowed until the next call. */
const char *cmd_supervisor_exit_text (cmd_supervisor_t *self, int i);

/* Runs until stop is requested: a child that dies is restarted after an
 * exponential backoff, reset once it has stayed up a while. */
void cmd_supervisor_run (cmd_supervisor_t *self);

/* Stops children group by group, highest first: SIGTERM, wait up to the
 * group's grace period, then SIGKILL. A second stop signal meanwhile kills
 * the rest at once. Returns when all are reaped. */
void cmd_supervisor_stop_all (cmd_supervisor_t *self);

#endif

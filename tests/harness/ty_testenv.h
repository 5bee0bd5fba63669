/*  ty_testenv: the harness of the integration tests.
 *
 *  One ty_testenv_t is one throw-away cluster: a temp dir (mkdtemp), a real
 *  redis-server on a free port with its data in that dir, a real
 *  trainyard-broker bound to tcp://127.0.0.1:* (ports read back from its
 *  endpoint file) and any number of real trainyard-noop workers. Every
 *  process is a child of the test; each one's stdout/stderr goes to
 *  TMP/<name>.stderr, so sanitizer reports of the broker and workers land
 *  there and are checked by ty_testenv_finish.
 *
 *  What it is not: a mock of anything. It only starts, signals and inspects
 *  the real binaries and the real Redis.
 *
 *  Failure policy: functions named ty_testenv_must_* fail the current cmocka
 *  test at once (fail_msg -> longjmp to cmocka, the teardown still runs)
 *  when setup cannot be done; call them from the test's main thread only.
 *  The others return a status and leave asserting to the test.
 *
 *  Teardown: ty_testenv_finish kills everything and removes the temp dir,
 *  unless the test did not reach ty_testenv_passed (it failed) or
 *  TY_TEST_KEEP=1 is set: then it keeps the dir and prints the log paths.
 *
 *  Binaries are looked for in TY_BIN_DIR (compile definition, the build dir),
 *  overridable by the TY_BIN_DIR environment variable.
 *
 *  Not thread-safe: one test thread drives an env. Client threads may run
 *  meanwhile but must not call into it.
 */
#ifndef TY_TESTENV_H
#define TY_TESTENV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>

typedef struct _ty_testenv_t ty_testenv_t;

/* Short heartbeats keep the failure-detection tests fast: 3 missed = dead,
   so a lost worker is noticed after ~3 * 100 ms. */
#define TY_TESTENV_HEARTBEAT_MS   100
/* How long must_* setup steps wait for a process to come up. */
#define TY_TESTENV_STARTUP_MS     10000
/* The most processes (redis, broker, workers, incl. restarts) one env tracks. */
#define TY_TESTENV_MAX_PROCS      32
/* Room for a job id in the exec log (ids are TY_ID_LEN = 16 chars). */
#define TY_TESTENV_ID_MAX         48

/* ---- life cycle ---------------------------------------------------------- */

/* Makes the temp dir /tmp/ty-test-<name>-XXXXXX. Fails the test on error. */
ty_testenv_t *ty_testenv_must_new (const char *name);
/* Call as the last statement of a test body: the test reached its end, so the
   temp dir can go. A test that failed an assert never gets here. */
void ty_testenv_passed (ty_testenv_t *self);
/* Kills every process (broker with SIGTERM first so sanitizers can report),
   scans each process's stderr for sanitizer reports, removes or keeps the
   dir. Returns 0, or -1 if a sanitizer report was found (use as the cmocka
   teardown result). NULL-safe; nulls *self_p. */
int  ty_testenv_finish (ty_testenv_t **self_p);

/* The temp dir; borrowed for the env's life. */
const char *ty_testenv_dir (ty_testenv_t *self);
/* Writes TMP/<file> into buf. */
void ty_testenv_path (ty_testenv_t *self, const char *file, char *buf, size_t len);

/* A TCP port that was free a moment ago on 127.0.0.1 (bind port 0, read it
   back, close). Returns the port or -1 with errno set. */
int  ty_testenv_free_port (void);

/* ---- redis ---------------------------------------------------------------- */

/* Starts redis-server on a free port in TMP, append-only (everysec), no RDB,
   log in TMP/redis.log; extra: NULL-terminated further arguments appended
   (later arguments win in redis, so "--appendfsync", "always" overrides).
   Waits until PING answers PONG. */
void ty_testenv_must_start_redis (ty_testenv_t *self, const char *const *extra);
int  ty_testenv_redis_port (ty_testenv_t *self);
pid_t ty_testenv_redis_pid (ty_testenv_t *self);
/* kill -9 redis and reap it. */
void ty_testenv_kill_redis (ty_testenv_t *self);
/* Starts redis again with the same port, dir and arguments (so the AOF is
   replayed) and waits for PONG (not LOADING). */
void ty_testenv_must_restart_redis (ty_testenv_t *self);

/* Runs one command on the env's own connection (reconnects once if the
   connection broke). Fails the test if there is no reply at all or the
   reply is a Redis error. Caller frees with freeReplyObject. */
redisReply *ty_testenv_must_redis (ty_testenv_t *self, const char *fmt, ...);
/* HGET <prefix>job:<id> field; caller frees; NULL if absent or on error. */
char *ty_testenv_job_field (ty_testenv_t *self, const char *job_id, const char *field);
/* Same, as an integer; -1 if absent or not a number. */
long long ty_testenv_job_num (ty_testenv_t *self, const char *job_id, const char *field);

/* The transitions ty:events holds for one job, in stream order. */
typedef struct {
    char state [16];
    unsigned attempt;
    char worker [64];
    char reason [256];
} ty_testenv_event_t;
/* Reads XRANGE ty:events - + and keeps the job's state entries (entries with
   a "state" field; progress entries are skipped). Returns how many were
   found (may exceed max; only max are stored), or -1 on a Redis error. */
int ty_testenv_job_events (ty_testenv_t *self, const char *job_id,
                           ty_testenv_event_t *out, int max);
/* How many state entries of ty:events name this job in this state. */
int ty_testenv_event_count (ty_testenv_t *self, const char *job_id, const char *state);

/* ---- broker ------------------------------------------------------------- */

/* Starts trainyard-broker on tcp://127.0.0.1:* for clients and workers with
   this heartbeat, pointing at the env's redis; extra: NULL-terminated further
   flags. Waits for TMP/ep and reads both endpoints back. */
pid_t ty_testenv_must_start_broker (ty_testenv_t *self, int heartbeat_ms,
                                    const char *const *extra);
/* Borrowed; "" before the broker has started. */
const char *ty_testenv_client_ep (ty_testenv_t *self);
const char *ty_testenv_worker_ep (ty_testenv_t *self);
pid_t ty_testenv_broker_pid (ty_testenv_t *self);
/* Signals the broker; with SIGKILL also reaps it. */
void ty_testenv_kill_broker (ty_testenv_t *self, int sig);
/* Starts the broker again with the same flags, bound to the same two
   endpoints it had (so clients and workers reconnect by themselves). */
pid_t ty_testenv_must_restart_broker (ty_testenv_t *self);

/* ---- workers -------------------------------------------------------------- */

/* Starts trainyard-noop --id <id> against the broker's worker endpoint, with
   --exec-log TMP/exec.log and --log-file TMP/<id>.log; extra: NULL-terminated
   further flags. Does not wait for READY (use ty_testenv_wait_worker). */
pid_t ty_testenv_must_start_worker (ty_testenv_t *self, const char *id, int heartbeat_ms,
                                    const char *const *extra);
/* The same for any worker executable of the build (e.g. "trainyard-train"),
   without --exec-log (only the noop worker has it; pass it in extra if the
   worker does). */
pid_t ty_testenv_must_start_worker_bin (ty_testenv_t *self, const char *bin, const char *id,
                                        int heartbeat_ms, const char *const *extra);
/* Waits until <prefix>worker:<id> exists in Redis (the broker registered its
   READY). 0 or -1 on timeout. */
int ty_testenv_wait_worker (ty_testenv_t *self, const char *id, int timeout_ms);

/* ---- any process ---------------------------------------------------------- */

/* kill(pid, sig); SIGKILL also reaps. Returns 0 or errno. */
int  ty_testenv_signal (ty_testenv_t *self, pid_t pid, int sig);
/* 1 if the child is still running (reaps it otherwise). */
int  ty_testenv_alive (ty_testenv_t *self, pid_t pid);
/* Waits up to timeout_ms for the child to exit. Returns 0 and the wait
   status in *status (may be NULL), or -1 on timeout. */
int  ty_testenv_wait_exit (ty_testenv_t *self, pid_t pid, int timeout_ms, int *status);
/* Runs cmd with /bin/sh (popen), its stdout (up to len - 1 bytes,
   NUL-terminated) into out. Returns its exit code, -1 when it did not
   exit; fails the test when it cannot be started. */
int  ty_testenv_run_capture (const char *cmd, char *out, size_t len);

/* ---- jobs ------------------------------------------------------------------ */

/* Polls Redis until the job's state is `state`. Returns 0, or -1 on timeout
   (the last state seen is printed). */
int ty_testenv_wait_state (ty_testenv_t *self, const char *job_id, const char *state,
                           int timeout_ms);
/* Polls Redis (pipelined HGETs) until every job of ids (n ids, each at
   ids + i * stride) is SUCCEEDED, FAILED or CANCELLED. Returns the number that
   ended SUCCEEDED, or -1 on timeout (then prints how many were still open
   and one example). */
long ty_testenv_wait_all_terminal (ty_testenv_t *self, const char *ids, size_t stride,
                                   size_t n, int timeout_ms);

/* ---- exec log ------------------------------------------------------------- */

/* The worker appends "<job_id> <attempt>\n" for each execution that ran to
   completion, before sending its result: the count of completed executions. */
typedef struct _ty_testenv_execlog_t ty_testenv_execlog_t;
/* Reads TMP/exec.log (missing file = empty log). NULL on a read error. */
ty_testenv_execlog_t *ty_testenv_execlog_load (ty_testenv_t *self);
void   ty_testenv_execlog_destroy (ty_testenv_execlog_t **self_p);
size_t ty_testenv_execlog_size (ty_testenv_execlog_t *self);
/* Lines that are not "<id> <attempt>\n" (a torn or interleaved write). */
size_t ty_testenv_execlog_bad (ty_testenv_execlog_t *self);
/* Lines naming job_id with this attempt (0 = any attempt). */
int    ty_testenv_execlog_count (ty_testenv_execlog_t *self, const char *job_id,
                                 unsigned attempt);
/* Shorthand: load, count, destroy. -1 on a read error. */
int    ty_testenv_exec_count (ty_testenv_t *self, const char *job_id, unsigned attempt);

/* ---- misc ---------------------------------------------------------------- */

int64_t ty_testenv_now_ms (void);          /* monotonic */
void    ty_testenv_sleep_ms (int64_t ms);
/* Prints the last `lines` lines of TMP/<file> to stderr (for diagnostics). */
void    ty_testenv_print_tail (ty_testenv_t *self, const char *file, int lines);

#endif

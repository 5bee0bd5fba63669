/*  test_train_it: cluster helpers of the train integration tests
 *  (header-only). Include after ty_it.h.
 *
 *  The harness starts workers as TY_BIN_DIR/trainyard-noop. Until it can
 *  start any worker binary, a train worker is started through a private bin
 *  dir in the env's temp dir whose "trainyard-noop" is a symlink to
 *  trainyard-train (TY_TRAIN_BIN, set by tests/modules/train.cmake), so the
 *  harness still owns the process: its log, its sanitizer scan, its kill. */
#ifndef TEST_TRAIN_IT_H
#define TEST_TRAIN_IT_H

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ty_it.h"

#define TTI_JOB_MS      60000    /* a small training job ends well within this */

/* Starts trainyard-train --id id --data DATA (+ extra) on the env's broker
 * and waits for its READY. */
static inline pid_t
tti_must_start_worker (ty_testenv_t *env, const char *id, const char *data_dir,
                       const char *const *extra)
{
    char bindir [PATH_MAX], link [PATH_MAX + 32];
    ty_testenv_path (env, "trainbin", bindir, sizeof bindir);
    if (mkdir (bindir, 0755) != 0 && errno != EEXIST)
        fail_msg ("mkdir %s: %s", bindir, strerror (errno));
    snprintf (link, sizeof link, "%s/trainyard-noop", bindir);
    if (symlink (TY_TRAIN_BIN, link) != 0 && errno != EEXIST)
        fail_msg ("symlink %s: %s", link, strerror (errno));
    const char *args [16];
    int n = 0;
    args [n++] = "--data";
    args [n++] = data_dir;
    for (int i = 0; extra && extra [i] && n < 15; i++)
        args [n++] = extra [i];
    args [n] = NULL;
    const char *old = getenv ("TY_BIN_DIR");
    char *saved = old ? strdup (old) : NULL;
    setenv ("TY_BIN_DIR", bindir, 1);
    pid_t pid = ty_testenv_must_start_worker (env, id, TY_TESTENV_HEARTBEAT_MS, args);
    if (saved) {
        setenv ("TY_BIN_DIR", saved, 1);
        free (saved);
    }
    else
        unsetenv ("TY_BIN_DIR");
    if (ty_testenv_wait_worker (env, id, TY_TESTENV_STARTUP_MS) != 0)
        fail_msg ("train worker %s never registered", id);
    return pid;
}

/* The env's data dir (TMP/data). */
static inline void
tti_data_dir (ty_testenv_t *env, char *buf, size_t len)
{
    ty_testenv_path (env, "data", buf, len);
    mkdir (buf, 0755);
}

/* An output of a finished job, copied into buf ("" if absent). */
static inline void
tti_output (ty_client_t *c, const char *id, const char *key, char *buf, size_t len)
{
    Ty__JobInfo *info = NULL;
    int rc = ty_client_status (c, id, TY_IT_RPC_MS, &info);
    if (rc != TY_OK)
        fail_msg ("status %s: %s", id, ty_client_errstr (c));
    buf [0] = '\0';
    for (size_t i = 0; i < info->n_outputs; i++)
        if (!strcmp (info->outputs [i]->key, key))
            snprintf (buf, len, "%s", info->outputs [i]->value);
    ty_client_free_msg (info);
}

/* Waits for the state, printing the job's error and the worker log tail if
 * it ends otherwise. */
static inline void
tti_must_reach (ty_testenv_t *env, const char *id, const char *state, int timeout_ms,
                const char *worker)
{
    if (ty_testenv_wait_state (env, id, state, timeout_ms) == 0)
        return;
    char *err = ty_testenv_job_field (env, id, "error");
    fprintf (stderr, "job %s: error '%s'\n", id, err ? err : "");
    free (err);
    if (worker) {
        char f [80];
        snprintf (f, sizeof f, "%s.log", worker);
        ty_testenv_print_tail (env, f, 30);
        snprintf (f, sizeof f, "%s.stderr", worker);
        ty_testenv_print_tail (env, f, 30);
    }
    fail_msg ("job %s did not reach %s", id, state);
}

/* Polls the job hash until metric.<key> >= value. 0 or -1 on timeout. */
static inline int
tti_wait_metric (ty_testenv_t *env, const char *id, const char *key, double value,
                 int timeout_ms)
{
    char field [64];
    snprintf (field, sizeof field, "metric.%s", key);
    int64_t end = ty_testenv_now_ms () + timeout_ms;
    while (ty_testenv_now_ms () < end) {
        char *v = ty_testenv_job_field (env, id, field);
        double x = v ? strtod (v, NULL) : -1;
        free (v);
        if (x >= value)
            return 0;
        ty_testenv_sleep_ms (5);
    }
    return -1;
}

#endif

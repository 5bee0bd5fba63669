/*  test_train_it: cluster helpers of the train integration tests
 *  (header-only). Include after ty_it.h. */
#ifndef TEST_TRAIN_IT_H
#define TEST_TRAIN_IT_H

#include <sys/stat.h>

#include "ty_it.h"

#define TTI_JOB_MS      60000    /* a small training job ends well within this */

/* Starts trainyard-train --id id --data DATA (+ extra) on the env's broker
 * and waits for its READY. */
static inline pid_t
tti_must_start_worker (ty_testenv_t *env, const char *id, const char *data_dir,
                       const char *const *extra)
{
    const char *args [16];
    int n = 0;
    args [n++] = "--data";
    args [n++] = data_dir;
    for (int i = 0; extra && extra [i] && n < 15; i++)
        args [n++] = extra [i];
    args [n] = NULL;
    pid_t pid = ty_testenv_must_start_worker_bin (env, "trainyard-train", id,
                                                  TY_TESTENV_HEARTBEAT_MS, args);
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

/*  ty_it: small helpers shared by the integration tests (header-only, all
 *  static): noop specs on the stack, submits that fail the test with the
 *  broker's message, a standard setup/teardown. Everything real is in
 *  harness/ty_testenv. Include after cmocka.h's prerequisites. */
#ifndef TY_IT_H
#define TY_IT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ty_client.h"
#include "ty_testenv.h"

/* How long a submit, cancel... may take on a healthy local broker. Generous
   for sanitizer builds on 2 cores; a healthy broker answers in ~1 ms. */
#define TY_IT_RPC_MS   5000

/* A noop spec living on the caller's stack. */
typedef struct {
    Ty__JobSpec  spec;
    Ty__NoopSpec noop;
} ty_it_noop_t;

static inline void
ty_it_noop (ty_it_noop_t *n, uint32_t sleep_ms, int fail, const char *fail_message)
{
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__NoopSpec noop = TY__NOOP_SPEC__INIT;
    n->spec = spec;
    n->noop = noop;
    n->noop.sleep_ms = sleep_ms;
    n->noop.fail = fail ? 1 : 0;
    if (fail_message)
        n->noop.fail_message = (char *) fail_message;
    n->spec.kind_case = TY__JOB_SPEC__KIND_NOOP;
    n->spec.noop = &n->noop;
}

/* Submits and fails the test (with the client's message) unless TY_OK. */
static inline void
ty_it_must_submit (ty_client_t *c, const Ty__JobSpec *spec, const char *const *parents,
                   size_t nparents, const char *key, char *id_out, int *existed)
{
    int rc = ty_client_submit (c, spec, parents, nparents, key, TY_IT_RPC_MS, id_out, existed);
    if (rc != TY_OK)
        fail_msg ("submit: %s (%d): %s", ty_strerror (rc), rc, ty_client_errstr (c));
    assert_true (ty_id_valid (id_out));
}

/* A noop job of sleep_ms, submitted and waited for until SUCCEEDED. The
   "normal job right after" of the bad-input and cancel tests. */
static inline void
ty_it_must_run_one (ty_testenv_t *env, ty_client_t *c, uint32_t sleep_ms, int timeout_ms,
                    char *id_out)
{
    ty_it_noop_t n;
    ty_it_noop (&n, sleep_ms, 0, NULL);
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id_out, NULL);
    if (ty_testenv_wait_state (env, id_out, "SUCCEEDED", timeout_ms) != 0)
        fail_msg ("job %s did not succeed in %d ms", id_out, timeout_ms);
}

/* The field as a string, compared; fails with both values shown. */
static inline void
ty_it_assert_field (ty_testenv_t *env, const char *id, const char *field, const char *want)
{
    char *got = ty_testenv_job_field (env, id, field);
    if (!got || strcmp (got, want)) {
        fprintf (stderr, "job %s: %s = '%s', want '%s'\n", id, field, got ? got : "(none)", want);
        free (got);
        fail_msg ("job %s: wrong %s", id, field);
    }
    free (got);
}

/* A test's state: its env and its main client, both released by the
   teardown even when an assert fails half-way (no leak under ASan). */
typedef struct {
    ty_testenv_t *env;
    ty_client_t  *client;   /* made by ty_it_must_client, may be NULL */
} ty_it_t;

static inline int
ty_it_setup (void **state, const char *name)
{
    ty_it_t *it = calloc (1, sizeof *it);
    if (!it)
        return -1;
    it->env = ty_testenv_must_new (name);
    *state = it;
    return 0;
}

static inline int
ty_it_teardown (void **state)
{
    ty_it_t *it = *state;
    if (!it)
        return 0;
    ty_client_destroy (&it->client);
    int rc = ty_testenv_finish (&it->env);
    free (it);
    *state = NULL;
    return rc;
}

/* Defines s_setup for a test file: the temp dir is named after the test. */
#define TY_IT_SETUP(name) \
    static int s_setup (void **state) { return ty_it_setup (state, name); }

/* Starts redis (extra args), a broker (heartbeat, extra flags) and n workers
   w1..wn with the same heartbeat, and waits for each worker's READY. */
static inline void
ty_it_must_cluster (ty_testenv_t *env, int heartbeat_ms, const char *const *redis_extra,
                    const char *const *broker_extra, int nworkers)
{
    ty_testenv_must_start_redis (env, redis_extra);
    ty_testenv_must_start_broker (env, heartbeat_ms, broker_extra);
    for (int i = 1; i <= nworkers; i++) {
        char id [16];
        snprintf (id, sizeof id, "w%d", i);
        ty_testenv_must_start_worker (env, id, heartbeat_ms, NULL);
    }
    for (int i = 1; i <= nworkers; i++) {
        char id [16];
        snprintf (id, sizeof id, "w%d", i);
        if (ty_testenv_wait_worker (env, id, TY_TESTENV_STARTUP_MS) != 0)
            fail_msg ("worker %s never registered", id);
    }
}

/* The test's main client on the env's broker (kept in it->client). */
static inline ty_client_t *
ty_it_must_client (ty_it_t *it)
{
    if (!it->client) {
        it->client = ty_client_new (ty_testenv_client_ep (it->env));
        if (!it->client)
            fail_msg ("ty_client_new (%s) failed", ty_testenv_client_ep (it->env));
    }
    return it->client;
}

#endif

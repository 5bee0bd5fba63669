/*  test_redis_layout: after a run an operator with nothing but redis-cli can
 *  read what happened (docs/redis-keys.md): HGETALL ty:job:<id> has a
 *  readable state, the times, attempt and worker; XRANGE ty:events - + has
 *  QUEUED, RUNNING, SUCCEEDED for the job, in that order; the bookkeeping
 *  sets no longer hold a finished job. */
#include "ty_it.h"

#include <time.h>

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS

static int64_t
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* HGETALL as a small lookup: the value of field in the flat reply. */
static const char *
s_hash_get (const redisReply *r, const char *field)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (!strcmp (r->element [i]->str, field))
            return r->element [i + 1]->str;
    return NULL;
}

static long long
s_hash_num (const redisReply *r, const char *field)
{
    const char *v = s_hash_get (r, field);
    if (!v) {
        fprintf (stderr, "field %s missing\n", field);
        return -1;
    }
    char *end;
    long long n = strtoll (v, &end, 10);
    if (end == v || *end) {
        fprintf (stderr, "field %s = '%s' is not a plain number\n", field, v);
        return -1;
    }
    return n;
}

static long long
s_int_reply (ty_testenv_t *env, const char *cmd, const char *id)
{
    redisReply *r = ty_testenv_must_redis (env, cmd, id);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject (r);
    return n;
}

static void
test_redis_layout_job_hash_and_events (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);

    int64_t before = s_wall_ms ();
    ty_it_noop_t n;
    ty_it_noop (&n, 100, 0, NULL);
    n.spec.name = "layout-check";
    n.spec.priority = 7;
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "SUCCEEDED", 10000), 0);
    int64_t after = s_wall_ms ();

    redisReply *t = ty_testenv_must_redis (env, "TYPE ty:job:%s", id);
    assert_string_equal (t->str, "hash");
    freeReplyObject (t);

    redisReply *h = ty_testenv_must_redis (env, "HGETALL ty:job:%s", id);
    assert_int_equal (h->type, REDIS_REPLY_ARRAY);
    fprintf (stderr, "redis_layout: HGETALL ty:job:%s\n", id);
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (strcmp (h->element [i]->str, "spec_pb"))     /* binary by design */
            fprintf (stderr, "  %s = %s\n", h->element [i]->str, h->element [i + 1]->str);

    const char *v;
    assert_non_null (v = s_hash_get (h, "state"));
    assert_string_equal (v, "SUCCEEDED");
    assert_non_null (v = s_hash_get (h, "type"));
    assert_string_equal (v, "noop");
    assert_non_null (v = s_hash_get (h, "worker"));
    assert_string_equal (v, "w1");
    assert_non_null (v = s_hash_get (h, "name"));
    assert_string_equal (v, "layout-check");
    assert_int_equal (s_hash_num (h, "attempt"), 1);
    assert_int_equal (s_hash_num (h, "priority"), 7);
    assert_true (s_hash_num (h, "max_attempts") >= 1);

    /* Times are Unix ms, in order, within the test's own window. */
    long long created = s_hash_num (h, "created_ms");
    long long started = s_hash_num (h, "started_ms");
    long long finished = s_hash_num (h, "finished_ms");
    assert_true (created >= before - 5);          /* a few ms of clock slack */
    assert_true (created <= started);
    assert_true (started <= finished);
    assert_true (finished <= after + 5);
    /* The noop slept 100 ms between start and finish. */
    assert_true (finished - started >= 100);
    long long queued = s_hash_num (h, "queued_ms");
    assert_true (queued >= created && queued <= started);
    /* A success ends at progress 1; fields at their default are not
       written (docs/redis-keys.md): no error, no cancel request. */
    assert_non_null (v = s_hash_get (h, "progress"));
    assert_string_equal (v, "1");
    assert_null (s_hash_get (h, "error"));
    assert_null (s_hash_get (h, "cancel_requested"));
    freeReplyObject (h);

    /* Events: QUEUED, RUNNING (attempt 1 on w1), SUCCEEDED, nothing else. */
    ty_testenv_event_t ev [16];
    int nev = ty_testenv_job_events (env, id, ev, 16);
    for (int i = 0; i < nev && i < 16; i++)
        fprintf (stderr, "  event %d: state=%s attempt=%u worker=%s reason=%s\n", i,
                 ev [i].state, ev [i].attempt, ev [i].worker, ev [i].reason);
    assert_int_equal (nev, 3);
    assert_string_equal (ev [0].state, "QUEUED");
    assert_string_equal (ev [1].state, "RUNNING");
    assert_int_equal (ev [1].attempt, 1);
    assert_string_equal (ev [1].worker, "w1");
    assert_string_equal (ev [2].state, "SUCCEEDED");

    /* Bookkeeping: listed for `list`, no longer queued, leased or active. */
    redisReply *z = ty_testenv_must_redis (env, "ZSCORE ty:jobs %s", id);
    assert_int_equal (z->type, REDIS_REPLY_STRING);
    freeReplyObject (z);
    assert_int_equal (s_int_reply (env, "ZRANK ty:queue:noop %s", id), -1);
    assert_int_equal (s_int_reply (env, "ZRANK ty:leases %s", id), -1);
    assert_int_equal (s_int_reply (env, "SISMEMBER ty:active %s", id), 0);

    /* The worker's own record. */
    redisReply *w = ty_testenv_must_redis (env, "HGET ty:worker:w1 type");
    assert_int_equal (w->type, REDIS_REPLY_STRING);
    assert_string_equal (w->str, "noop");
    freeReplyObject (w);
    ty_testenv_passed (env);
}

/* A failed job keeps its reason in plain text, and its events end in FAILED. */
static void
test_redis_layout_failed_job_reason (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, 0, 1, "layout: failed on purpose");
    n.spec.max_attempts = 1;
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "FAILED", 10000), 0);
    char *err = ty_testenv_job_field (env, id, "error");
    assert_non_null (err);
    if (!strstr (err, "layout: failed on purpose"))
        fail_msg ("error field '%s' lost the job's message", err);
    free (err);
    assert_true (ty_testenv_job_num (env, id, "finished_ms") > 0);
    assert_int_equal (ty_testenv_event_count (env, id, "FAILED"), 1);
    assert_int_equal (ty_testenv_event_count (env, id, "SUCCEEDED"), 0);
    ty_testenv_passed (env);
}

/* The job's log lines and metrics reach Redis (a capped list, a stream and
 * the latest value in the hash) and come back through the client library. */
static void
test_redis_layout_log_and_metrics (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    ty_client_t *c = ty_it_must_client (it);

    ty_it_noop_t n;
    ty_it_noop (&n, 600, 0, NULL);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "SUCCEEDED", 10000), 0);

    redisReply *l = ty_testenv_must_redis (env, "LRANGE ty:job:%s:log 0 -1", id);
    assert_int_equal (l->type, REDIS_REPLY_ARRAY);
    assert_int_equal (l->elements, 2);
    assert_string_equal (l->element [0]->str, "noop: sleeping 600 ms (attempt 1)");
    assert_non_null (strstr (l->element [1]->str, "noop: done after"));
    freeReplyObject (l);

    /* Progress is rate-limited (200 ms): a 600 ms job reports a few times. */
    redisReply *m = ty_testenv_must_redis (env, "XRANGE ty:job:%s:metrics - +", id);
    assert_int_equal (m->type, REDIS_REPLY_ARRAY);
    assert_true (m->elements >= 2);
    redisReply *last = m->element [m->elements - 1]->element [1];
    const char *slept = s_hash_get (last, "slept_ms");
    assert_non_null (slept);
    assert_true (atof (slept) >= 300);
    assert_string_equal (s_hash_get (last, "attempt"), "1");
    freeReplyObject (m);
    char *latest = ty_testenv_job_field (env, id, "metric.slept_ms");
    assert_non_null (latest);
    assert_true (atof (latest) >= 300);
    free (latest);

    Ty__LogLines *lines = NULL;
    assert_int_equal (ty_client_logs (c, id, 1, TY_IT_RPC_MS, &lines), TY_OK);
    assert_int_equal (lines->n_lines, 1);          /* tail 1: only the last */
    assert_non_null (strstr (lines->lines [0], "noop: done after"));
    ty_client_free_msg (lines);
    Ty__JobInfo *info = NULL;
    assert_int_equal (ty_client_status (c, id, TY_IT_RPC_MS, &info), TY_OK);
    int found = 0;
    for (size_t i = 0; i < info->n_metrics; i++)
        if (!strcmp (info->metrics [i]->key, "slept_ms") && info->metrics [i]->value >= 300)
            found = 1;
    ty_client_free_msg (info);
    assert_true (found);
    ty_testenv_passed (env);
}

/* Higher priority runs first; equal priorities run oldest first. */
static void
test_redis_layout_priority_order (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    /* no worker yet: everything waits in the queue */
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 0);
    ty_client_t *c = ty_it_must_client (it);
    const unsigned prio [] = { 0, 5, 5, 9, 0 };
    char ids [5][TY_ID_LEN + 1];
    for (int i = 0; i < 5; i++) {
        ty_it_noop_t n;
        ty_it_noop (&n, 20, 0, NULL);
        n.spec.priority = prio [i];
        ty_it_must_submit (c, &n.spec, NULL, 0, NULL, ids [i], NULL);
        ty_testenv_sleep_ms (3);          /* distinct creation times */
    }
    redisReply *q = ty_testenv_must_redis (env, "ZRANGE ty:queue:noop 0 -1");
    assert_int_equal (q->elements, 5);
    const int want [] = { 3, 1, 2, 0, 4 };
    for (int i = 0; i < 5; i++)
        assert_string_equal (q->element [i]->str, ids [want [i]]);
    freeReplyObject (q);
    ty_testenv_must_start_worker (env, "w1", S_HEARTBEAT_MS, NULL);
    for (int i = 0; i < 5; i++)
        assert_int_equal (ty_testenv_wait_state (env, ids [i], "SUCCEEDED", 10000), 0);
    /* one worker, capacity 1: start times follow the queue order */
    for (int i = 1; i < 5; i++)
        assert_true (ty_testenv_job_num (env, ids [want [i - 1]], "started_ms")
                     <= ty_testenv_job_num (env, ids [want [i]], "started_ms"));
    assert_true (ty_testenv_job_num (env, ids [want [0]], "finished_ms")
                 <= ty_testenv_job_num (env, ids [want [1]], "started_ms"));
    ty_testenv_passed (env);
}

/* The broker also reaches Redis over a unix socket (`--redis unix:///path`,
   as on a machine where Redis listens only there): hiredis' TCP keepalive
   must not be asked of it (it was, and every command failed). */
static void
test_redis_layout_unix_socket (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    char sock [256], url [300];
    ty_testenv_path (env, "redis.sock", sock, sizeof sock);
    snprintf (url, sizeof url, "unix://%s", sock);
    const char *redis_extra [] = { "--unixsocket", sock, "--unixsocketperm", "700", NULL };
    const char *broker_extra [] = { "--redis", url, NULL };
    ty_it_must_cluster (env, S_HEARTBEAT_MS, redis_extra, broker_extra, 1);
    ty_client_t *c = ty_it_must_client (it);
    char id [TY_ID_LEN + 1];
    ty_it_must_run_one (env, c, 0, 10000, id);
    /* read back over TCP: the same server holds what the broker wrote */
    ty_it_assert_field (env, id, "worker", "w1");
    assert_int_equal (ty_testenv_event_count (env, id, "SUCCEEDED"), 1);
    ty_testenv_passed (env);
}

TY_IT_SETUP ("redis_layout")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_redis_layout_job_hash_and_events, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_redis_layout_failed_job_reason, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_redis_layout_log_and_metrics, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_redis_layout_priority_order, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_redis_layout_unix_socket, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_bad_input: what a buggy or hostile peer can send the broker, over a
 *  raw ZeroMQ DEALER (no client library, so nothing is tidied up on the
 *  way). Each bad message must get an Error reply or be dropped; after it
 *  the broker process is still alive, no job was created by it, and a
 *  normal job submitted right after succeeds.
 *
 *  The broker runs with --max-msg-bytes 65536 for the over-size case. */
#include "ty_it.h"

#include <unistd.h>
#include <zmq.h>

#include "ty_wire.h"

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS
#define S_MAX_MSG        "65536"
#define S_REPLY_MS       2000     /* a reply that is due arrives well within this */
#define S_DROP_MS        500      /* how long we listen when dropping is allowed too */

/* Per-test state: the usual one plus the raw sockets, closed in teardown
   even when an assert fails. */
typedef struct {
    ty_it_t it;
    void   *ctx;
    void   *client;     /* raw DEALER on the client endpoint */
    void   *worker;     /* raw DEALER on the worker endpoint */
    void   *stranger;   /* a second worker-side DEALER that never says READY */
} s_state_t;

static int
s_setup (void **state)
{
    s_state_t *s = calloc (1, sizeof *s);
    if (!s)
        return -1;
    s->it.env = ty_testenv_must_new ("bad_input");
    *state = s;
    return 0;
}

static int
s_teardown (void **state)
{
    s_state_t *s = *state;
    if (s->client)
        zmq_close (s->client);
    if (s->worker)
        zmq_close (s->worker);
    if (s->stranger)
        zmq_close (s->stranger);
    if (s->ctx)
        zmq_ctx_term (s->ctx);
    ty_client_destroy (&s->it.client);
    int rc = ty_testenv_finish (&s->it.env);
    free (s);
    *state = NULL;
    return rc;
}

static void *
s_must_dealer (s_state_t *s, const char *endpoint)
{
    if (!s->ctx)
        s->ctx = zmq_ctx_new ();
    assert_non_null (s->ctx);
    void *sock = zmq_socket (s->ctx, ZMQ_DEALER);
    assert_non_null (sock);
    int linger = 0;
    assert_int_equal (zmq_setsockopt (sock, ZMQ_LINGER, &linger, sizeof linger), 0);
    assert_int_equal (zmq_connect (sock, endpoint), 0);
    return sock;
}

/* Starts redis, the broker (small message cap), one worker w1, and the raw
   DEALERs. */
static void
s_must_start (s_state_t *s)
{
    static const char *const broker_extra [] = { "--max-msg-bytes", S_MAX_MSG, NULL };
    ty_it_must_cluster (s->it.env, S_HEARTBEAT_MS, NULL, broker_extra, 1);
    s->client = s_must_dealer (s, ty_testenv_client_ep (s->it.env));
    s->worker = s_must_dealer (s, ty_testenv_worker_ep (s->it.env));
}

static void
s_send_frames (void *sock, int n, const void *const *data, const size_t *len)
{
    for (int i = 0; i < n; i++)
        if (zmq_send (sock, data [i], len [i], i + 1 < n ? ZMQ_SNDMORE : 0) != (int) len [i])
            fail_msg ("zmq_send frame %d: %s", i, zmq_strerror (zmq_errno ()));
}

/* [tag][packed env]: the tag is a parameter so it can be wrong. */
static void
s_send_env (void *sock, const char *tag, size_t tag_len, const Ty__Envelope *env)
{
    size_t n = ty__envelope__get_packed_size (env);
    uint8_t *buf = malloc (n ? n : 1);
    assert_non_null (buf);
    assert_int_equal (ty__envelope__pack (env, buf), n);
    const void *frames [] = { tag, buf };
    size_t lens [] = { tag_len, n };
    s_send_frames (sock, 2, frames, lens);
    free (buf);
}

/* Waits for one message. Returns 1 with *out set (caller frees), 0 if
   nothing came in time, -1 if what came was not a valid TY1 message. */
static int
s_recv (void *sock, int timeout_ms, Ty__Envelope **out)
{
    *out = NULL;
    zmq_pollitem_t item = { sock, 0, ZMQ_POLLIN, 0 };
    int r = zmq_poll (&item, 1, timeout_ms);
    assert_true (r >= 0);
    if (r == 0)
        return 0;
    ty_wire_msg_t msg;
    int rc = ty_wire_recv (sock, 0, TY_WIRE_MAX_MSG_BYTES, &msg, ZMQ_DONTWAIT);
    if (rc != TY_OK) {
        ty_wire_msg_clear (&msg);
        return -1;
    }
    *out = msg.env;
    return 1;
}

/* The broker's answer to a bad message: an Error (with a message) or
   nothing. On the worker endpoint a Reconnect ("I do not know you: send
   READY") or a Disconnect is a drop too. Anything else means the bad
   message was acted upon. */
static void
s_expect_error_or_drop (void *sock, const char *what)
{
    Ty__Envelope *env;
    int r = s_recv (sock, S_DROP_MS, &env);
    if (r == 0) {
        fprintf (stderr, "bad_input: %s: dropped\n", what);
        return;
    }
    if (r < 0)
        fail_msg ("%s: the broker replied with a malformed message", what);
    if (env->cmd_case == TY__ENVELOPE__CMD_RECONNECT
    ||  env->cmd_case == TY__ENVELOPE__CMD_DISCONNECT) {
        fprintf (stderr, "bad_input: %s: told to reconnect/disconnect\n", what);
        ty__envelope__free_unpacked (env, NULL);
        return;
    }
    int is_error = env->cmd_case == TY__ENVELOPE__CMD_ERROR;
    if (is_error)
        fprintf (stderr, "bad_input: %s: Error %d '%s'\n", what, env->error->code,
                 env->error->message ? env->error->message : "(null)");
    int has_msg = is_error && env->error->message && *env->error->message;
    int cmd = (int) env->cmd_case;
    ty__envelope__free_unpacked (env, NULL);
    if (!is_error)
        fail_msg ("%s: answered with command %d instead of an Error", what, cmd);
    if (!has_msg)
        fail_msg ("%s: Error without a message", what);
}

/* A decodable request with a request_id must be answered with an Error that
   echoes the request_id (a client library waits for exactly that). */
static void
s_expect_error_reply (void *sock, uint64_t request_id, const char *what)
{
    for (;;) {
        Ty__Envelope *env;
        int r = s_recv (sock, S_REPLY_MS, &env);
        if (r == 0)
            fail_msg ("%s: no reply in %d ms (a client would hang)", what, S_REPLY_MS);
        if (r < 0)
            fail_msg ("%s: malformed reply", what);
        if (env->request_id != request_id) {
            /* A late answer to an earlier bad message: not ours. */
            ty__envelope__free_unpacked (env, NULL);
            continue;
        }
        int is_error = env->cmd_case == TY__ENVELOPE__CMD_ERROR;
        int has_msg = is_error && env->error->message && *env->error->message;
        if (is_error)
            fprintf (stderr, "bad_input: %s: Error %d '%s'\n", what, env->error->code,
                     env->error->message ? env->error->message : "(null)");
        int cmd = (int) env->cmd_case;
        ty__envelope__free_unpacked (env, NULL);
        if (!is_error)
            fail_msg ("%s: accepted (reply command %d) instead of an Error", what, cmd);
        if (!has_msg)
            fail_msg ("%s: Error without a message", what);
        return;
    }
}

static long long
s_job_count (ty_testenv_t *env)
{
    redisReply *r = ty_testenv_must_redis (env, "ZCARD ty:jobs");
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject (r);
    return n;
}

/* After every bad input: the broker lives, created no job, and serves a
   normal job end to end. */
static void
s_expect_healthy (s_state_t *s, long long jobs_before)
{
    ty_testenv_t *env = s->it.env;
    if (!ty_testenv_alive (env, ty_testenv_broker_pid (env))) {
        ty_testenv_print_tail (env, "broker.stderr", 40);
        fail_msg ("the broker died");
    }
    assert_int_equal (s_job_count (env), jobs_before);
    char id [TY_ID_LEN + 1];
    ty_it_must_run_one (env, ty_it_must_client (&s->it), 0, 10000, id);
    assert_int_equal (ty_testenv_exec_count (env, id, 1), 1);
    assert_true (ty_testenv_alive (env, ty_testenv_broker_pid (env)));
}

/* ---- the cases --------------------------------------------------------------- */

/* Tried: the right tag followed by bytes protobuf cannot decode (a field
   length running past the end; every byte value), on both endpoints. */
static void
test_bad_input_undecodable_body (void **state)
{
    s_state_t *s = *state;
    s_must_start (s);
    static const uint8_t trunc [] = { 0x0a, 0x7f, 0x01 };
    uint8_t junk [256];
    for (int i = 0; i < 256; i++)
        junk [i] = (uint8_t) (255 - i);
    const void *f1 [] = { TY_WIRE_TAG, trunc };
    size_t l1 [] = { 3, sizeof trunc };
    const void *f2 [] = { TY_WIRE_TAG, junk };
    size_t l2 [] = { 3, sizeof junk };

    s_send_frames (s->client, 2, f1, l1);
    s_expect_error_or_drop (s->client, "client: truncated field");
    s_send_frames (s->client, 2, f2, l2);
    s_expect_error_or_drop (s->client, "client: junk bytes");
    s_send_frames (s->worker, 2, f1, l1);
    s_expect_error_or_drop (s->worker, "worker: truncated field");
    s_send_frames (s->worker, 2, f2, l2);
    s_expect_error_or_drop (s->worker, "worker: junk bytes");
    s_expect_healthy (s, 0);
    ty_testenv_passed (s->it.env);
}

/* Tried: a valid Ping behind a wrong tag ("TY0", lower-case "ty1", a
   Majordomo tag); a message with no tag frame; a tag with no body; a body
   with extra frames after it. None may be answered with a Pong. */
static void
test_bad_input_wrong_tag (void **state)
{
    s_state_t *s = *state;
    s_must_start (s);
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Ping ping = TY__PING__INIT;
    env.request_id = 5;
    env.cmd_case = TY__ENVELOPE__CMD_PING;
    env.ping = &ping;

    s_send_env (s->client, "TY0", 3, &env);
    s_expect_error_or_drop (s->client, "tag TY0");
    s_send_env (s->client, "ty1", 3, &env);
    s_expect_error_or_drop (s->client, "tag ty1");
    s_send_env (s->client, "MDPC01", 6, &env);
    s_expect_error_or_drop (s->client, "tag MDPC01");
    s_send_env (s->worker, "TY0", 3, &env);
    s_expect_error_or_drop (s->worker, "worker: tag TY0");

    const void *empty [] = { "" };
    size_t l0 [] = { 0 };
    s_send_frames (s->client, 1, empty, l0);
    s_expect_error_or_drop (s->client, "one empty frame");
    const void *tag_only [] = { TY_WIRE_TAG };
    size_t l1 [] = { 3 };
    s_send_frames (s->client, 1, tag_only, l1);
    s_expect_error_or_drop (s->client, "tag without body");

    uint8_t body [64];
    size_t n = ty__envelope__pack (&env, body);
    const void *extra [] = { TY_WIRE_TAG, body, "more", "frames" };
    size_t l4 [] = { 3, n, 4, 6 };
    s_send_frames (s->client, 4, extra, l4);
    s_expect_error_or_drop (s->client, "body followed by extra frames");
    s_expect_healthy (s, 0);
    ty_testenv_passed (s->it.env);
}

/* Tried: a well-formed Submit of ~100 KB (a 100 KB job name) against
   --max-msg-bytes 65536. It must not become a job. */
static void
test_bad_input_over_size (void **state)
{
    s_state_t *s = *state;
    s_must_start (s);
    size_t big = 100 * 1024;
    char *name = malloc (big + 1);
    assert_non_null (name);
    memset (name, 'N', big);
    name [big] = '\0';
    ty_it_noop_t n;
    ty_it_noop (&n, 0, 0, NULL);
    n.spec.name = name;
    Ty__SubmitItem item = TY__SUBMIT_ITEM__INIT;
    item.spec = &n.spec;
    Ty__SubmitItem *items [] = { &item };
    Ty__Submit submit = TY__SUBMIT__INIT;
    submit.n_items = 1;
    submit.items = items;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.request_id = 6;
    env.cmd_case = TY__ENVELOPE__CMD_SUBMIT;
    env.submit = &submit;
    assert_true (ty__envelope__get_packed_size (&env) > 100000);
    s_send_env (s->client, TY_WIRE_TAG, 3, &env);
    free (name);
    /* ZMQ_MAXMSGSIZE drops the connection; an application-level check
       answers with an Error: both are fine. */
    s_expect_error_or_drop (s->client, "100 KB submit");
    s_expect_healthy (s, 0);
    ty_testenv_passed (s->it.env);
}

static void
s_send_submit (void *sock, uint64_t request_id, Ty__SubmitItem **items, size_t n)
{
    Ty__Submit submit = TY__SUBMIT__INIT;
    submit.n_items = n;
    submit.items = items;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.request_id = request_id;
    env.cmd_case = TY__ENVELOPE__CMD_SUBMIT;
    env.submit = &submit;
    s_send_env (sock, TY_WIRE_TAG, 3, &env);
}

/* Tried, each as a decodable Submit that must be refused with an Error that
   echoes its request_id, and must create no job (a Submit is all or none):
   an item without a spec; a spec without a job type (unknown type); a parent
   id that does not exist; parent_items pointing past the batch and at the
   item itself (a cycle); a good item batched with a bad one. */
static void
test_bad_input_submit_missing_fields (void **state)
{
    s_state_t *s = *state;
    s_must_start (s);
    ty_it_noop_t good;
    ty_it_noop (&good, 0, 0, NULL);
    Ty__JobSpec no_kind = TY__JOB_SPEC__INIT;     /* kind_case NOT_SET */

    Ty__SubmitItem no_spec = TY__SUBMIT_ITEM__INIT;
    Ty__SubmitItem *i1 [] = { &no_spec };
    s_send_submit (s->client, 101, i1, 1);
    s_expect_error_reply (s->client, 101, "submit without spec");

    Ty__SubmitItem unknown_type = TY__SUBMIT_ITEM__INIT;
    unknown_type.spec = &no_kind;
    Ty__SubmitItem *i2 [] = { &unknown_type };
    s_send_submit (s->client, 102, i2, 1);
    s_expect_error_reply (s->client, 102, "spec without job type");

    Ty__SubmitItem orphan = TY__SUBMIT_ITEM__INIT;
    orphan.spec = &good.spec;
    char *ghost [] = { "0000000000zzzzzz" };
    orphan.n_parents = 1;
    orphan.parents = ghost;
    Ty__SubmitItem *i3 [] = { &orphan };
    s_send_submit (s->client, 103, i3, 1);
    s_expect_error_reply (s->client, 103, "unknown parent id");

    Ty__SubmitItem bad_ref = TY__SUBMIT_ITEM__INIT;
    bad_ref.spec = &good.spec;
    uint32_t past [] = { 5 };
    bad_ref.n_parent_items = 1;
    bad_ref.parent_items = past;
    Ty__SubmitItem *i4 [] = { &bad_ref };
    s_send_submit (s->client, 104, i4, 1);
    s_expect_error_reply (s->client, 104, "parent_items past the batch");

    Ty__SubmitItem self_ref = TY__SUBMIT_ITEM__INIT;
    self_ref.spec = &good.spec;
    uint32_t self [] = { 0 };
    self_ref.n_parent_items = 1;
    self_ref.parent_items = self;
    Ty__SubmitItem *i5 [] = { &self_ref };
    s_send_submit (s->client, 105, i5, 1);
    s_expect_error_reply (s->client, 105, "parent_items naming the item itself");

    Ty__SubmitItem fine = TY__SUBMIT_ITEM__INIT;
    fine.spec = &good.spec;
    Ty__SubmitItem *i6 [] = { &fine, &no_spec };
    s_send_submit (s->client, 106, i6, 2);
    s_expect_error_reply (s->client, 106, "good item batched with a bad one");

    s_expect_healthy (s, 0);
    ty_testenv_passed (s->it.env);
}

/* Tried: Status and Cancel of ids that are not ids ("../../etc/passwd", "",
   a key with Redis glob characters) or that do not exist. */
static void
test_bad_input_unknown_ids (void **state)
{
    s_state_t *s = *state;
    s_must_start (s);
    static char *ids [] = { "../../etc/passwd", "", "*", "0000000000zzzzzz", NULL };
    uint64_t rid = 200;
    for (int i = 0; ids [i]; i++) {
        Ty__StatusReq st = TY__STATUS_REQ__INIT;
        st.job_id = ids [i];
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.request_id = ++rid;
        env.cmd_case = TY__ENVELOPE__CMD_STATUS;
        env.status = &st;
        s_send_env (s->client, TY_WIRE_TAG, 3, &env);
        char what [64];
        snprintf (what, sizeof what, "status of '%s'", ids [i]);
        s_expect_error_reply (s->client, rid, what);

        Ty__CancelReq cr = TY__CANCEL_REQ__INIT;
        cr.job_id = ids [i];
        Ty__Envelope env2 = TY__ENVELOPE__INIT;
        env2.request_id = ++rid;
        env2.cmd_case = TY__ENVELOPE__CMD_CANCEL;
        env2.cancel = &cr;
        s_send_env (s->client, TY_WIRE_TAG, 3, &env2);
        snprintf (what, sizeof what, "cancel of '%s'", ids [i]);
        s_expect_error_reply (s->client, rid, what);
    }
    s_expect_healthy (s, 0);
    ty_testenv_passed (s->it.env);
}

static void
s_send_result (void *sock, const char *job_id, uint32_t attempt, Ty__Outcome outcome,
               const char *error)
{
    Ty__Result res = TY__RESULT__INIT;
    res.job_id = (char *) job_id;
    res.attempt = attempt;
    res.outcome = outcome;
    res.error = (char *) error;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_RESULT;
    env.result = &res;
    s_send_env (sock, TY_WIRE_TAG, 3, &env);
}

/* Reads what the broker says to the rogue for a while; fails if it ever
   acknowledges one of the forged results as current (ResultAck, stale=0). */
static void
s_rogue_listen (void *sock, int ms)
{
    int64_t deadline = ty_testenv_now_ms () + ms;
    for (;;) {
        int64_t left = deadline - ty_testenv_now_ms ();
        if (left <= 0)
            return;
        Ty__Envelope *env;
        int r = s_recv (sock, (int) left, &env);
        if (r == 0)
            return;
        if (r < 0)
            fail_msg ("malformed message to the rogue worker");
        if (env->cmd_case == TY__ENVELOPE__CMD_RESULT_ACK) {
            int stale = env->result_ack->stale;
            fprintf (stderr, "bad_input: rogue got ResultAck %s/%u stale=%d\n",
                     env->result_ack->job_id, env->result_ack->attempt, stale);
            ty__envelope__free_unpacked (env, NULL);
            if (!stale)
                fail_msg ("the broker acknowledged a forged result as current");
            continue;
        }
        if (env->cmd_case == TY__ENVELOPE__CMD_ASSIGN) {
            ty__envelope__free_unpacked (env, NULL);
            fail_msg ("the broker assigned a job to the rogue convert worker");
        }
        ty__envelope__free_unpacked (env, NULL);
    }
}

/* Tried: on the worker endpoint, a READY as a "convert" worker (a type no
   test job uses, so nothing is assigned to it), then Results for a noop job
   that w1 holds and is running (attempt 1 FAILED, attempt 2 SUCCEEDED), for
   an id that does not exist, and for a non-id; also a Result from a peer
   that never sent READY. The job must end as w1 reports it. */
static void
test_bad_input_result_not_held (void **state)
{
    s_state_t *s = *state;
    s_must_start (s);
    ty_testenv_t *env = s->it.env;
    ty_client_t *c = ty_it_must_client (&s->it);

    ty_it_noop_t n;
    ty_it_noop (&n, 1500, 0, NULL);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &n.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "RUNNING", 5000), 0);
    ty_it_assert_field (env, id, "worker", "w1");

    /* A peer that never said READY. */
    s->stranger = s_must_dealer (s, ty_testenv_worker_ep (env));
    s_send_result (s->stranger, id, 1, TY__OUTCOME__OUTCOME_FAILED, "forged by a stranger");
    s_rogue_listen (s->stranger, 300);

    Ty__Ready ready = TY__READY__INIT;
    ready.worker_id = "rogue";
    ready.type = "convert";
    ready.capacity = 1;
    ready.host = "localhost";
    ready.pid = (uint32_t) getpid ();
    Ty__Envelope renv = TY__ENVELOPE__INIT;
    renv.cmd_case = TY__ENVELOPE__CMD_READY;
    renv.ready = &ready;
    s_send_env (s->worker, TY_WIRE_TAG, 3, &renv);
    s_rogue_listen (s->worker, 200);
    s_send_result (s->worker, id, 1, TY__OUTCOME__OUTCOME_FAILED, "forged by rogue");
    s_send_result (s->worker, id, 2, TY__OUTCOME__OUTCOME_SUCCEEDED, "");
    s_send_result (s->worker, "0000000000zzzzzz", 1, TY__OUTCOME__OUTCOME_SUCCEEDED, "");
    s_send_result (s->worker, "../../etc/passwd", 1, TY__OUTCOME__OUTCOME_SUCCEEDED, "");
    s_rogue_listen (s->worker, 500);

    /* Still running on w1, and it ends as w1 says. */
    char *st = ty_testenv_job_field (env, id, "state");
    assert_non_null (st);
    if (strcmp (st, "RUNNING") && strcmp (st, "SUCCEEDED")) {
        char *e = ty_testenv_job_field (env, id, "error");
        fprintf (stderr, "job %s is %s (%s) after the forged results\n", id, st, e ? e : "");
        free (e);
        free (st);
        fail_msg ("a forged result changed the job's state");
    }
    free (st);
    assert_int_equal (ty_testenv_wait_state (env, id, "SUCCEEDED", 10000), 0);
    ty_it_assert_field (env, id, "worker", "w1");
    assert_int_equal (ty_testenv_job_num (env, id, "attempt"), 1);
    assert_int_equal (ty_testenv_event_count (env, id, "FAILED"), 0);
    assert_int_equal (ty_testenv_event_count (env, id, "SUCCEEDED"), 1);
    assert_int_equal (ty_testenv_exec_count (env, id, 1), 1);
    s_expect_healthy (s, 1);
    ty_testenv_passed (env);
}

/* Tried: a client command (Submit) on the worker endpoint and a worker
   command (Result) on the client endpoint. Neither may create or change a
   job. */
static void
test_bad_input_wrong_endpoint (void **state)
{
    s_state_t *s = *state;
    s_must_start (s);
    ty_it_noop_t good;
    ty_it_noop (&good, 0, 0, NULL);
    Ty__SubmitItem item = TY__SUBMIT_ITEM__INIT;
    item.spec = &good.spec;
    Ty__SubmitItem *items [] = { &item };
    s_send_submit (s->worker, 301, items, 1);
    s_expect_error_or_drop (s->worker, "submit on the worker endpoint");

    s_send_result (s->client, "0000000000zzzzzz", 1, TY__OUTCOME__OUTCOME_SUCCEEDED, "");
    s_expect_error_or_drop (s->client, "result on the client endpoint");
    s_expect_healthy (s, 0);
    ty_testenv_passed (s->it.env);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_bad_input_undecodable_body, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_input_wrong_tag, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_input_over_size, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_input_submit_missing_fields, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_input_unknown_ids, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_input_result_not_held, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_input_wrong_endpoint, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

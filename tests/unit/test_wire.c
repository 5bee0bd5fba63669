/*  test_wire: the frame layer, [route]["TY1"][Envelope], over real ZeroMQ
 *  sockets (inproc PAIR and tcp://127.0.0.1:* ROUTER-DEALER). What a peer
 *  can get wrong: the tag, the body (undecodable, empty, too big, extra
 *  frames), the frame count. Each bad message must give an error code and
 *  leave the socket ready for the next, good message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ty_error.h"
#include "ty_wire.h"

#define S_RECV_TIMEOUT_MS 2000   /* a lost message fails the test, not hangs it */

typedef struct {
    void *ctx;
    void *a;      /* sender: PAIR or DEALER */
    void *b;      /* receiver: PAIR or ROUTER */
    int   routed; /* b is a ROUTER */
} s_pair_t;

static void
s_set_timeouts (void *sock)
{
    int ms = S_RECV_TIMEOUT_MS, linger = 0;
    assert_int_equal (zmq_setsockopt (sock, ZMQ_RCVTIMEO, &ms, sizeof ms), 0);
    assert_int_equal (zmq_setsockopt (sock, ZMQ_SNDTIMEO, &ms, sizeof ms), 0);
    assert_int_equal (zmq_setsockopt (sock, ZMQ_LINGER, &linger, sizeof linger), 0);
}

static int
s_setup_pair (void **state)
{
    s_pair_t *p = calloc (1, sizeof *p);
    if (!p)
        return -1;
    p->ctx = zmq_ctx_new ();
    p->a = zmq_socket (p->ctx, ZMQ_PAIR);
    p->b = zmq_socket (p->ctx, ZMQ_PAIR);
    if (!p->a || !p->b)
        return -1;
    s_set_timeouts (p->a);
    s_set_timeouts (p->b);
    if (zmq_bind (p->b, "inproc://test-wire") != 0
    ||  zmq_connect (p->a, "inproc://test-wire") != 0)
        return -1;
    *state = p;
    return 0;
}

/* ROUTER bound on tcp://127.0.0.1:* (port read back), DEALER connected:
   the broker's own arrangement. */
static int
s_setup_router (void **state)
{
    s_pair_t *p = calloc (1, sizeof *p);
    if (!p)
        return -1;
    p->routed = 1;
    p->ctx = zmq_ctx_new ();
    p->a = zmq_socket (p->ctx, ZMQ_DEALER);
    p->b = zmq_socket (p->ctx, ZMQ_ROUTER);
    if (!p->a || !p->b)
        return -1;
    s_set_timeouts (p->a);
    s_set_timeouts (p->b);
    char ep [256];
    size_t len = sizeof ep;
    if (zmq_bind (p->b, "tcp://127.0.0.1:*") != 0
    ||  zmq_getsockopt (p->b, ZMQ_LAST_ENDPOINT, ep, &len) != 0
    ||  zmq_connect (p->a, ep) != 0)
        return -1;
    *state = p;
    return 0;
}

static int
s_teardown (void **state)
{
    s_pair_t *p = *state;
    zmq_close (p->a);
    zmq_close (p->b);
    zmq_ctx_term (p->ctx);
    free (p);
    return 0;
}

/* Sends raw frames (NULL-terminated list of (data, len)) from a. */
static void
s_send_raw (void *sock, int nframes, const void *const *data, const size_t *len)
{
    for (int i = 0; i < nframes; i++)
        assert_int_equal (zmq_send (sock, data [i], len [i], i + 1 < nframes ? ZMQ_SNDMORE : 0),
                          (int) len [i]);
}

static void
s_send_ping (void *sock, uint64_t request_id, uint64_t sent_us)
{
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Ping ping = TY__PING__INIT;
    ping.sent_us = sent_us;
    env.request_id = request_id;
    env.cmd_case = TY__ENVELOPE__CMD_PING;
    env.ping = &ping;
    assert_int_equal (ty_wire_send (sock, NULL, 0, &env, 0), TY_OK);
}

/* The good message after a bad one arrives whole: the bad one was drained. */
static void
s_expect_ping (s_pair_t *p, uint64_t request_id)
{
    ty_wire_msg_t msg;
    assert_int_equal (ty_wire_recv (p->b, p->routed, TY_WIRE_MAX_MSG_BYTES, &msg, 0), TY_OK);
    assert_non_null (msg.env);
    assert_int_equal (msg.env->cmd_case, TY__ENVELOPE__CMD_PING);
    assert_int_equal (msg.env->request_id, request_id);
    ty_wire_msg_clear (&msg);
}

static void
test_wire_round_trip (void **state)
{
    s_pair_t *p = *state;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__CancelReq cancel = TY__CANCEL_REQ__INIT;
    cancel.job_id = "0123456789abcdef";
    cancel.reason = "operator said so";
    env.request_id = 42;
    env.cmd_case = TY__ENVELOPE__CMD_CANCEL;
    env.cancel = &cancel;
    assert_int_equal (ty_wire_send (p->a, NULL, 0, &env, 0), TY_OK);

    ty_wire_msg_t msg;
    assert_int_equal (ty_wire_recv (p->b, p->routed, TY_WIRE_MAX_MSG_BYTES, &msg, 0), TY_OK);
    assert_non_null (msg.env);
    assert_int_equal (msg.env->request_id, 42);
    assert_int_equal (msg.env->cmd_case, TY__ENVELOPE__CMD_CANCEL);
    assert_string_equal (msg.env->cancel->job_id, "0123456789abcdef");
    assert_string_equal (msg.env->cancel->reason, "operator said so");
    assert_int_equal (msg.body_len, ty__envelope__get_packed_size (&env));
    if (p->routed) {
        /* The ROUTER learns who sent it, and a reply with that route reaches
           exactly that DEALER. */
        assert_true (msg.route_len > 0);
        assert_true (msg.srcfd >= 0);
        Ty__Envelope rep = TY__ENVELOPE__INIT;
        Ty__Ok ok = TY__OK__INIT;
        rep.request_id = 42;
        rep.cmd_case = TY__ENVELOPE__CMD_OK;
        rep.ok = &ok;
        assert_int_equal (ty_wire_send (p->b, msg.route, msg.route_len, &rep, ZMQ_DONTWAIT), TY_OK);
        ty_wire_msg_t back;
        assert_int_equal (ty_wire_recv (p->a, 0, TY_WIRE_MAX_MSG_BYTES, &back, 0), TY_OK);
        assert_int_equal (back.env->cmd_case, TY__ENVELOPE__CMD_OK);
        assert_int_equal (back.env->request_id, 42);
        ty_wire_msg_clear (&back);
    }
    ty_wire_msg_clear (&msg);
    ty_wire_msg_clear (&msg);          /* safe twice */
    assert_null (msg.env);
}

static void
test_wire_wrong_tag (void **state)
{
    s_pair_t *p = *state;
    /* A valid Envelope behind another protocol's tag. */
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Ping ping = TY__PING__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_PING;
    env.ping = &ping;
    uint8_t body [64];
    size_t n = ty__envelope__pack (&env, body);
    static const char *tags [] = { "TY2", "ty1", "TY1\0", "TY", "MDPC01" };
    static const size_t tag_lens [] = { 3, 3, 4, 2, 6 };
    for (int i = 0; i < 5; i++) {
        const void *frames [] = { tags [i], body };
        size_t lens [] = { tag_lens [i], n };
        s_send_raw (p->a, 2, frames, lens);
        ty_wire_msg_t msg;
        if (ty_wire_recv (p->b, p->routed, TY_WIRE_MAX_MSG_BYTES, &msg, 0) != TY_EPROTO)
            fail_msg ("tag %d accepted", i);
        assert_null (msg.env);
        if (p->routed)
            assert_true (msg.route_len > 0);   /* still known: an ERROR can be sent back */
        ty_wire_msg_clear (&msg);
    }
    s_send_ping (p->a, 7, 0);
    s_expect_ping (p, 7);
}

static void
test_wire_undecodable_body (void **state)
{
    s_pair_t *p = *state;
    /* Field 1 as a length-delimited field running past the end, then a
       varint that never ends, then garbage of every byte value. */
    static const uint8_t trunc [] = { 0x0a, 0x7f, 0x01 };
    static const uint8_t varint [] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff };
    uint8_t junk [256];
    for (int i = 0; i < 256; i++)
        junk [i] = (uint8_t) (255 - i);
    const void *bodies [] = { trunc, varint, junk };
    size_t lens [] = { sizeof trunc, sizeof varint, sizeof junk };
    for (int i = 0; i < 3; i++) {
        const void *frames [] = { TY_WIRE_TAG, bodies [i] };
        size_t flen [] = { 3, lens [i] };
        s_send_raw (p->a, 2, frames, flen);
        ty_wire_msg_t msg;
        if (ty_wire_recv (p->b, p->routed, TY_WIRE_MAX_MSG_BYTES, &msg, 0) != TY_EPROTO)
            fail_msg ("undecodable body %d accepted", i);
        assert_null (msg.env);
    }
    s_send_ping (p->a, 8, 0);
    s_expect_ping (p, 8);
}

/* An Envelope with no command set decodes (proto3: all fields optional) but
   says nothing: it is refused, not handed to the broker as a NULL command. */
static void
test_wire_empty_envelope (void **state)
{
    s_pair_t *p = *state;
    const void *frames [] = { TY_WIRE_TAG, "" };
    size_t lens [] = { 3, 0 };
    s_send_raw (p->a, 2, frames, lens);
    ty_wire_msg_t msg;
    assert_int_equal (ty_wire_recv (p->b, p->routed, TY_WIRE_MAX_MSG_BYTES, &msg, 0), TY_EPROTO);
    assert_null (msg.env);
    s_send_ping (p->a, 9, 0);
    s_expect_ping (p, 9);
}

static void
test_wire_over_size (void **state)
{
    s_pair_t *p = *state;
    /* A valid Envelope of ~2 KB against a 1 KB limit: refused before decoding. */
    char *name = malloc (2048);
    assert_non_null (name);
    memset (name, 'n', 2047);
    name [2047] = '\0';
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__CancelReq cancel = TY__CANCEL_REQ__INIT;
    cancel.job_id = "0123456789abcdef";
    cancel.reason = name;
    env.cmd_case = TY__ENVELOPE__CMD_CANCEL;
    env.cancel = &cancel;
    assert_int_equal (ty_wire_send (p->a, NULL, 0, &env, 0), TY_OK);
    ty_wire_msg_t msg;
    assert_int_equal (ty_wire_recv (p->b, p->routed, 1024, &msg, 0), TY_EFULL);
    assert_null (msg.env);
    assert_true (msg.body_len > 1024);
    free (name);
    s_send_ping (p->a, 10, 0);
    s_expect_ping (p, 10);
}

/* The sender refuses to build a message over the global cap. */
static void
test_wire_send_over_cap (void **state)
{
    s_pair_t *p = *state;
    size_t n = TY_WIRE_MAX_MSG_BYTES + 1;
    char *big = malloc (n + 1);
    assert_non_null (big);
    memset (big, 'x', n);
    big [n] = '\0';
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__CancelReq cancel = TY__CANCEL_REQ__INIT;
    cancel.job_id = "0123456789abcdef";
    cancel.reason = big;
    env.cmd_case = TY__ENVELOPE__CMD_CANCEL;
    env.cancel = &cancel;
    assert_int_equal (ty_wire_send (p->a, NULL, 0, &env, 0), TY_EFULL);
    free (big);
    /* Nothing half-sent: the next message is the first the peer sees. */
    s_send_ping (p->a, 11, 0);
    s_expect_ping (p, 11);
}

static void
test_wire_frame_count (void **state)
{
    s_pair_t *p = *state;
    ty_wire_msg_t msg;
    /* The tag alone. */
    const void *one [] = { TY_WIRE_TAG };
    size_t one_len [] = { 3 };
    s_send_raw (p->a, 1, one, one_len);
    assert_int_equal (ty_wire_recv (p->b, p->routed, TY_WIRE_MAX_MSG_BYTES, &msg, 0), TY_EPROTO);
    assert_null (msg.env);

    /* A valid body followed by extra frames. */
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Ping ping = TY__PING__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_PING;
    env.ping = &ping;
    uint8_t body [64];
    size_t n = ty__envelope__pack (&env, body);
    const void *four [] = { TY_WIRE_TAG, body, "x", "y" };
    size_t four_len [] = { 3, n, 1, 1 };
    s_send_raw (p->a, 4, four, four_len);
    assert_int_equal (ty_wire_recv (p->b, p->routed, TY_WIRE_MAX_MSG_BYTES, &msg, 0), TY_EPROTO);
    assert_null (msg.env);

    s_send_ping (p->a, 12, 0);
    s_expect_ping (p, 12);
}

static void
test_wire_nothing_to_read (void **state)
{
    s_pair_t *p = *state;
    ty_wire_msg_t msg;
    assert_int_equal (ty_wire_recv (p->b, p->routed, TY_WIRE_MAX_MSG_BYTES, &msg, ZMQ_DONTWAIT),
                      EAGAIN);
    assert_null (msg.env);
}

int
main (void)
{
#define BOTH(t) cmocka_unit_test_setup_teardown (t, s_setup_pair, s_teardown), \
                cmocka_unit_test_setup_teardown (t, s_setup_router, s_teardown)
    const struct CMUnitTest tests [] = {
        BOTH (test_wire_round_trip),
        BOTH (test_wire_wrong_tag),
        BOTH (test_wire_undecodable_body),
        BOTH (test_wire_empty_envelope),
        BOTH (test_wire_over_size),
        BOTH (test_wire_send_over_cap),
        BOTH (test_wire_frame_count),
        BOTH (test_wire_nothing_to_read),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

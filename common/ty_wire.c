#include "ty_wire.h"
#include "ty_error.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int
ty_wire_send (void *sock, const void *route, size_t route_len,
              const Ty__Envelope *env, int flags)
{
    size_t len = ty__envelope__get_packed_size (env);
    if (len > TY_WIRE_MAX_MSG_BYTES)
        return TY_EFULL;
    zmq_msg_t body;
    if (zmq_msg_init_size (&body, len) != 0)
        return errno;
    ty__envelope__pack (env, zmq_msg_data (&body));

    if (route && zmq_send (sock, route, route_len, ZMQ_SNDMORE | flags) < 0) {
        int err = errno;
        zmq_msg_close (&body);
        return err;
    }
    /* After the routing frame the rest of the message is queued atomically,
       so a failure below cannot leave half a message on the wire. */
    if (zmq_send (sock, TY_WIRE_TAG, 3, ZMQ_SNDMORE | flags) < 0) {
        int err = errno;
        zmq_msg_close (&body);
        return err;
    }
    if (zmq_msg_send (&body, sock, flags) < 0) {
        int err = errno;
        zmq_msg_close (&body);
        return err;
    }
    return TY_OK;
}

/* Reads and discards the rest of a multipart message. */
static void
s_drain (void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt (sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init (&m);
        if (zmq_msg_recv (&m, sock, 0) < 0) {
            zmq_msg_close (&m);
            return;
        }
        zmq_msg_close (&m);
    }
}

int
ty_wire_recv (void *sock, int with_route, size_t max_bytes,
              ty_wire_msg_t *msg, int flags)
{
    msg->env = NULL;
    msg->route_len = 0;
    msg->srcfd = -1;
    msg->body_len = 0;

    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, sock, flags) < 0) {
        int err = errno;
        zmq_msg_close (&part);
        return err;
    }
    int more = zmq_msg_more (&part);
    if (with_route) {
        msg->srcfd = zmq_msg_get (&part, ZMQ_SRCFD);
        size_t n = zmq_msg_size (&part);
        if (n > sizeof msg->route)
            n = sizeof msg->route;
        memcpy (msg->route, zmq_msg_data (&part), n);
        msg->route_len = n;
        zmq_msg_close (&part);
        if (!more)
            return TY_EPROTO;
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, sock, 0) < 0) {
            int err = errno;
            zmq_msg_close (&part);
            return err;
        }
        more = zmq_msg_more (&part);
    }
    /* part is the tag frame. The routing frame is made by the ROUTER
       itself; frames read off the connection carry the peer's fd. */
    if (with_route) {
        int fd = zmq_msg_get (&part, ZMQ_SRCFD);
        if (fd >= 0)
            msg->srcfd = fd;
    }
    int tag_ok = zmq_msg_size (&part) == 3
              && memcmp (zmq_msg_data (&part), TY_WIRE_TAG, 3) == 0;
    zmq_msg_close (&part);
    if (!tag_ok || !more) {
        s_drain (sock);
        return TY_EPROTO;
    }
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, sock, 0) < 0) {
        int err = errno;
        zmq_msg_close (&part);
        return err;
    }
    more = zmq_msg_more (&part);
    size_t len = zmq_msg_size (&part);
    msg->body_len = len;
    int rc = TY_OK;
    if (more)
        rc = TY_EPROTO;                 /* one body frame, nothing after it */
    else if (len > max_bytes)
        rc = TY_EFULL;
    else {
        msg->env = ty__envelope__unpack (NULL, len, zmq_msg_data (&part));
        if (!msg->env || msg->env->cmd_case == TY__ENVELOPE__CMD__NOT_SET) {
            if (msg->env)
                ty__envelope__free_unpacked (msg->env, NULL);
            msg->env = NULL;
            rc = TY_EPROTO;
        }
    }
    zmq_msg_close (&part);
    if (more)
        s_drain (sock);
    return rc;
}

void
ty_wire_msg_clear (ty_wire_msg_t *msg)
{
    if (msg->env) {
        ty__envelope__free_unpacked (msg->env, NULL);
        msg->env = NULL;
    }
}

int
ty_wire_monitor_recv (void *monitor, uint16_t *event, uint32_t *value)
{
    zmq_msg_t m;
    zmq_msg_init (&m);
    if (zmq_msg_recv (&m, monitor, ZMQ_DONTWAIT) < 0) {
        int err = zmq_errno ();
        zmq_msg_close (&m);
        return err;
    }
    *event = 0;
    *value = 0;
    if (zmq_msg_size (&m) >= 6) {
        memcpy (event, zmq_msg_data (&m), 2);
        memcpy (value, (uint8_t *) zmq_msg_data (&m) + 2, 4);
    }
    int more = zmq_msg_more (&m);
    zmq_msg_close (&m);
    while (more) {              /* the endpoint: not needed */
        zmq_msg_init (&m);
        if (zmq_msg_recv (&m, monitor, 0) < 0) {
            int err = zmq_errno ();
            zmq_msg_close (&m);
            return err;
        }
        more = zmq_msg_more (&m);
        zmq_msg_close (&m);
    }
    return TY_OK;
}

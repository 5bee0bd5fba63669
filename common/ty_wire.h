/*  ty_wire: the frame layer of the protocol.
 *  Every message is [routing frames...]["TY1"][Envelope]; this module checks
 *  the tag, enforces the size limit and packs/unpacks the Envelope. It never
 *  trusts the peer: a bad message gives an error code, never a crash. */
#ifndef TY_WIRE_H
#define TY_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "envelope.pb-c.h"

#define TY_WIRE_TAG            "TY1"
#define TY_WIRE_MAX_MSG_BYTES  (16u << 20)   /* default cap; bigger bodies are refused */
#define TY_WIRE_MAX_ROUTE      4             /* routing frames accepted before the tag */

/* Send env on sock after the optional routing frame (ROUTER side).
 * flags: ZMQ_DONTWAIT or 0. Returns TY_OK, TY_EFULL (too big), or errno of zmq_send. */
int ty_wire_send (void *sock, const void *route, size_t route_len,
                  const Ty__Envelope *env, int flags);

/* A received message, split into its parts. */
typedef struct {
    uint8_t  route [256];     /* first routing frame (ROUTER identity) */
    size_t   route_len;
    int      srcfd;           /* peer's fd (ZMQ_SRCFD), -1 if unknown */
    Ty__Envelope *env;        /* owned; NULL if undecodable */
    size_t   body_len;
} ty_wire_msg_t;

/* Receive one message. with_route: 1 on a ROUTER socket.
 * Returns TY_OK (msg->env set), EAGAIN (nothing to read with ZMQ_DONTWAIT),
 * TY_EPROTO (wrong tag or undecodable: msg->route still valid for a reply),
 * TY_EFULL (body over max_bytes), or another errno. */
int ty_wire_recv (void *sock, int with_route, size_t max_bytes,
                  ty_wire_msg_t *msg, int flags);

/* Frees msg->env; safe to call twice. */
void ty_wire_msg_clear (ty_wire_msg_t *msg);

/* One event from a ZeroMQ socket monitor's PAIR (libzmq 4.3: a frame with
 * the 16-bit event and 32-bit value, then the endpoint). Returns TY_OK,
 * EAGAIN when none waits, or the errno of zmq_msg_recv. */
int ty_wire_monitor_recv (void *monitor, uint16_t *event, uint32_t *value);

#endif

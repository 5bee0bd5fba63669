/*  ty_outbox: what the broker will send once the turn's writes are in Redis.
 *
 *  Replies, ASSIGNs, acks and events are packed into the outbox while a turn
 *  runs and sent only after ty_state_commit succeeded, so no peer ever hears
 *  of a state that Redis does not hold. If the commit fails, client replies
 *  waiting in the outbox become "state store unavailable" errors and the
 *  rest is dropped (workers re-send results; jobs stay where Redis has them). */
#ifndef TY_OUTBOX_H
#define TY_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include "envelope.pb-c.h"

enum { TY_OUTBOX_CLIENTS = 0, TY_OUTBOX_WORKERS = 1 };

typedef struct _ty_outbox_t ty_outbox_t;

ty_outbox_t *ty_outbox_new (void);
void ty_outbox_destroy (ty_outbox_t **self_p);

/* Packs env for the peer route on socket `which`. A client reply (env has a
 * request_id) is turned into an error if the turn fails. TY_OK or TY_ENOMEM/TY_EFULL. */
int  ty_outbox_put (ty_outbox_t *self, int which, const void *route, size_t route_len,
                    const Ty__Envelope *env);
size_t ty_outbox_count (ty_outbox_t *self);

/* Called for each message the socket refused (peer gone, EHOSTUNREACH...). */
typedef void (ty_outbox_fail_fn) (int which, const uint8_t *route, size_t route_len,
                                  int err, void *arg);

/* Sends everything with ZMQ_DONTWAIT, workers' messages first, each socket's in
 * the order put, then empties the outbox. */
void ty_outbox_send (ty_outbox_t *self, void *socks [2], ty_outbox_fail_fn *fn, void *arg);
/* The turn failed: client replies become Error{code, message}; the rest is dropped. */
void ty_outbox_fail (ty_outbox_t *self, void *socks [2], int code, const char *message);

#endif

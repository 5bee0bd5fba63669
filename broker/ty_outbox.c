#include "ty_outbox.h"
#include "ty_error.h"
#include "ty_wire.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    int      which;
    uint64_t request_id;    /* 0: not a reply */
    size_t   route_len;
    uint8_t  route [256];
    uint8_t *body;
    size_t   body_len;
} s_item;

struct _ty_outbox_t {
    s_item *items;
    size_t  n, cap;
};

ty_outbox_t *
ty_outbox_new (void)
{
    return calloc (1, sizeof (ty_outbox_t));
}

static void
s_clear (ty_outbox_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        free (self->items [i].body);
    self->n = 0;
}

void
ty_outbox_destroy (ty_outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_clear (*self_p);
    free ((*self_p)->items);
    free (*self_p);
    *self_p = NULL;
}

size_t
ty_outbox_count (ty_outbox_t *self)
{
    return self->n;
}

int
ty_outbox_put (ty_outbox_t *self, int which, const void *route, size_t route_len,
               const Ty__Envelope *env)
{
    if (route_len > sizeof self->items [0].route)
        return TY_EINVAL;
    size_t len = ty__envelope__get_packed_size (env);
    if (len > TY_WIRE_MAX_MSG_BYTES)
        return TY_EFULL;
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 256;
        s_item *v = realloc (self->items, cap * sizeof *v);
        if (!v)
            return TY_ENOMEM;
        self->items = v;
        self->cap = cap;
    }
    s_item *it = &self->items [self->n];
    it->body = malloc (len ? len : 1);
    if (!it->body)
        return TY_ENOMEM;
    ty__envelope__pack (env, it->body);
    it->body_len = len;
    it->which = which;
    it->request_id = which == TY_OUTBOX_CLIENTS ? env->request_id : 0;
    it->route_len = route_len;
    memcpy (it->route, route, route_len);
    self->n++;
    return TY_OK;
}

static int
s_send_raw (void *sock, const s_item *it)
{
    if (zmq_send (sock, it->route, it->route_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return errno;
    if (zmq_send (sock, TY_WIRE_TAG, 3, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return errno;
    if (zmq_send (sock, it->body, it->body_len, ZMQ_DONTWAIT) < 0)
        return errno;
    return 0;
}

void
ty_outbox_send (ty_outbox_t *self, void *socks [2], ty_outbox_fail_fn *fn, void *arg)
{
    /* Workers' messages first: an ASSIGN is on the critical path of the
       job, a client's reply and events are not, and the broker's one I/O
       thread writes them in the order given. (Timed per stage: broker to
       worker 61 -> 37-44 µs median, the replies no later in effect.)
       Order within each socket is kept. */
    for (int pass = 0; pass < 2; pass++) {
        int which = pass == 0 ? TY_OUTBOX_WORKERS : TY_OUTBOX_CLIENTS;
        for (size_t i = 0; i < self->n; i++) {
            s_item *it = &self->items [i];
            if (it->which != which)
                continue;
            int err = s_send_raw (socks [which], it);
            if (err && fn)
                fn (which, it->route, it->route_len, err, arg);
        }
    }
    s_clear (self);
}

void
ty_outbox_fail (ty_outbox_t *self, void *socks [2], int code, const char *message)
{
    for (size_t i = 0; i < self->n; i++) {
        s_item *it = &self->items [i];
        if (it->which != TY_OUTBOX_CLIENTS || it->request_id == 0)
            continue;
        Ty__Envelope env = TY__ENVELOPE__INIT;
        Ty__Error err = TY__ERROR__INIT;
        err.code = code;
        err.message = (char *) message;
        env.request_id = it->request_id;
        env.cmd_case = TY__ENVELOPE__CMD_ERROR;
        env.error = &err;
        ty_wire_send (socks [TY_OUTBOX_CLIENTS], it->route, it->route_len, &env, ZMQ_DONTWAIT);
    }
    s_clear (self);
}

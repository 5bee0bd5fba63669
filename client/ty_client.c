/*  libtrainyard: see ty_client.h.
 *
 *  One DEALER socket; requests carry a request_id that the broker echoes,
 *  so replies that arrive after their request timed out are recognised
 *  and dropped. Events that arrive while a call waits for its reply are
 *  kept in a queue for ty_client_next_event / ty_client_watch. */
#include "ty_client.h"
#include "ty_clock.h"
#include "ty_wire.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_WATCH_RESUBSCRIBE_MS 2000   /* silence after which a watch asks again
                                         (survives a broker restart) */

typedef struct s_event {
    struct s_event *next;
    Ty__Envelope *env;
} s_event;

struct _ty_client_t {
    void    *zctx;
    void    *sock;
    char     endpoint [256];
    char     errstr [512];
    char     version [64];    /* the broker's, from the last ping */
    uint64_t next_request;
    s_event *head;
    s_event *tail;
};

static int
s_fail (ty_client_t *self, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fail (ty_client_t *self, int code, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (self->errstr, sizeof self->errstr, fmt, ap);
    va_end (ap);
    return code;
}

ty_client_t *
ty_client_new (const char *endpoint)
{
    ty_client_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snprintf (self->endpoint, sizeof self->endpoint, "%s", endpoint);
    self->zctx = zmq_ctx_new ();
    self->sock = self->zctx ? zmq_socket (self->zctx, ZMQ_DEALER) : NULL;
    if (!self->sock) {
        ty_client_destroy (&self);
        return NULL;
    }
    int zero = 0, one = 1, hwm = 1000000;
    zmq_setsockopt (self->sock, ZMQ_LINGER, &zero, sizeof zero);
    /* Queue only on a live connection: a request sent while the broker is
       down must fail now, not run later when nobody waits for it. */
    zmq_setsockopt (self->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt (self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    int ivl = 100, max = 1000;
    zmq_setsockopt (self->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt (self->sock, ZMQ_RECONNECT_IVL_MAX, &max, sizeof max);
    if (zmq_connect (self->sock, endpoint) != 0) {
        ty_client_destroy (&self);
        return NULL;
    }
    self->next_request = (uint64_t) ty_clock_mono_us ();
    return self;
}

void
ty_client_destroy (ty_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_client_t *self = *self_p;
    while (self->head) {
        s_event *e = self->head;
        self->head = e->next;
        ty__envelope__free_unpacked (e->env, NULL);
        free (e);
    }
    if (self->sock)
        zmq_close (self->sock);
    if (self->zctx)
        zmq_ctx_term (self->zctx);
    free (self);
    *self_p = NULL;
}

const char *
ty_client_errstr (ty_client_t *self)
{
    return self->errstr;
}

const char *
ty_client_broker_version (ty_client_t *self)
{
    return self->version;
}

void
ty_client_free_msg (void *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked ((ProtobufCMessage *) msg, NULL);
}

static int64_t
s_remaining (int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - ty_clock_mono_ms ();
    return left > 0 ? left : 0;
}

static int
s_send (ty_client_t *self, Ty__Envelope *env, int64_t deadline)
{
    for (;;) {
        int rc = ty_wire_send (self->sock, NULL, 0, env, ZMQ_DONTWAIT);
        if (rc == TY_OK)
            return TY_OK;
        if (rc == TY_EFULL)
            return s_fail (self, rc, "request too large (over %u bytes)", TY_WIRE_MAX_MSG_BYTES);
        if (rc != EAGAIN)
            return s_fail (self, rc, "send to %s: %s", self->endpoint, zmq_strerror (rc));
        /* No connection yet: wait until there is one or time runs out. */
        zmq_pollitem_t item = { self->sock, 0, ZMQ_POLLOUT, 0 };
        int64_t left = s_remaining (deadline);
        if (left == 0)
            return s_fail (self, TY_ETIMEDOUT, "cannot reach the broker at %s "
                           "(is trainyard-broker running?)", self->endpoint);
        if (zmq_poll (&item, 1, (long) (left < 0 || left > 100 ? 100 : left)) < 0
        &&  errno != EINTR)
            return s_fail (self, errno, "poll: %s", zmq_strerror (errno));
    }
}

/* Receives one envelope before the deadline. */
static int
s_recv (ty_client_t *self, int64_t deadline, Ty__Envelope **env_out)
{
    for (;;) {
        zmq_pollitem_t item = { self->sock, 0, ZMQ_POLLIN, 0 };
        int64_t left = s_remaining (deadline);
        int rc = zmq_poll (&item, 1, (long) left);
        if (rc < 0) {
            if (errno == EINTR)
                return s_fail (self, EINTR, "interrupted");
            return s_fail (self, errno, "poll: %s", zmq_strerror (errno));
        }
        if (rc == 0)
            return s_fail (self, TY_ETIMEDOUT, "no answer from the broker at %s",
                           self->endpoint);
        ty_wire_msg_t msg;
        rc = ty_wire_recv (self->sock, 0, TY_WIRE_MAX_MSG_BYTES * 4u, &msg, ZMQ_DONTWAIT);
        if (rc == EAGAIN)
            continue;
        if (rc != TY_OK) {
            ty_wire_msg_clear (&msg);
            continue;           /* garbage from the peer: skip it */
        }
        *env_out = msg.env;
        return TY_OK;
    }
}

static void
s_queue_event (ty_client_t *self, Ty__Envelope *env)
{
    s_event *e = malloc (sizeof *e);
    if (!e) {
        ty__envelope__free_unpacked (env, NULL);
        return;
    }
    e->env = env;
    e->next = NULL;
    if (self->tail)
        self->tail->next = e;
    else
        self->head = e;
    self->tail = e;
}

/* Sends req and waits for the reply with its request id. An Error reply
 * becomes its code and message. *rep_out is freed by the caller. */
static int
s_request (ty_client_t *self, Ty__Envelope *req, int timeout_ms, Ty__Envelope **rep_out)
{
    self->errstr [0] = '\0';
    int64_t deadline = timeout_ms < 0 ? -1 : ty_clock_mono_ms () + timeout_ms;
    req->request_id = ++self->next_request;
    int rc = s_send (self, req, deadline);
    if (rc != TY_OK)
        return rc;
    for (;;) {
        Ty__Envelope *env;
        rc = s_recv (self, deadline, &env);
        if (rc != TY_OK)
            return rc;
        if (env->cmd_case == TY__ENVELOPE__CMD_EVENT) {
            s_queue_event (self, env);
            continue;
        }
        if (env->request_id != req->request_id) {
            ty__envelope__free_unpacked (env, NULL);   /* late reply of an old call */
            continue;
        }
        if (env->cmd_case == TY__ENVELOPE__CMD_ERROR) {
            int code = env->error->code;
            if (code > -30800 || code < -30899)
                code = TY_EBROKER;
            s_fail (self, code, "%s", env->error->message);
            ty__envelope__free_unpacked (env, NULL);
            return code;
        }
        *rep_out = env;
        return TY_OK;
    }
}

/* Detaches the oneof member from env (so freeing env keeps it) and frees env. */
static void *
s_take (Ty__Envelope *env, void *member)
{
    env->cmd_case = TY__ENVELOPE__CMD__NOT_SET;
    ty__envelope__free_unpacked (env, NULL);
    return member;
}

int
ty_client_submit_batch (ty_client_t *self, const ty_submit_item_t *items, size_t n,
                        int watch, int timeout_ms, char *ids_out)
{
    if (!items || n == 0)
        return s_fail (self, TY_EINVAL, "nothing to submit");
    Ty__SubmitItem *iv = calloc (n, sizeof *iv);
    Ty__SubmitItem **ip = calloc (n, sizeof *ip);
    if (!iv || !ip) {
        free (iv);
        free (ip);
        return s_fail (self, TY_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        ty__submit_item__init (&iv [i]);
        iv [i].spec = (Ty__JobSpec *) items [i].spec;
        iv [i].parents = (char **) items [i].parents;
        iv [i].n_parents = items [i].nparents;
        iv [i].parent_items = (uint32_t *) items [i].parent_items;
        iv [i].n_parent_items = items [i].nparent_items;
        if (items [i].idempotency_key)
            iv [i].idempotency_key = (char *) items [i].idempotency_key;
        if (items [i].pipeline)
            iv [i].pipeline = (char *) items [i].pipeline;
        if (items [i].step)
            iv [i].step = (char *) items [i].step;
        ip [i] = &iv [i];
    }
    Ty__Submit sub = TY__SUBMIT__INIT;
    sub.items = ip;
    sub.n_items = n;
    sub.watch = watch != 0;
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.cmd_case = TY__ENVELOPE__CMD_SUBMIT;
    req.submit = &sub;
    Ty__Envelope *rep = NULL;
    int rc = s_request (self, &req, timeout_ms, &rep);
    free (iv);
    free (ip);
    if (rc != TY_OK)
        return rc;
    if (rep->cmd_case != TY__ENVELOPE__CMD_SUBMIT_REP || rep->submit_rep->n_job_ids != n) {
        ty__envelope__free_unpacked (rep, NULL);
        return s_fail (self, TY_EPROTO, "unexpected answer to submit");
    }
    for (size_t i = 0; i < n; i++)
        snprintf (ids_out + i * (TY_ID_LEN + 1), TY_ID_LEN + 1, "%s",
                  rep->submit_rep->job_ids [i]);
    ty__envelope__free_unpacked (rep, NULL);
    return TY_OK;
}

int
ty_client_submit (ty_client_t *self, const Ty__JobSpec *spec,
                  const char *const *parents, size_t nparents,
                  const char *idempotency_key, int timeout_ms,
                  char *id_out, int *existed)
{
    if (!spec)
        return s_fail (self, TY_EINVAL, "no job spec");
    Ty__SubmitItem item = TY__SUBMIT_ITEM__INIT;
    Ty__SubmitItem *ip = &item;
    item.spec = (Ty__JobSpec *) spec;
    item.parents = (char **) parents;
    item.n_parents = nparents;
    if (idempotency_key)
        item.idempotency_key = (char *) idempotency_key;
    Ty__Submit sub = TY__SUBMIT__INIT;
    sub.items = &ip;
    sub.n_items = 1;
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.cmd_case = TY__ENVELOPE__CMD_SUBMIT;
    req.submit = &sub;
    Ty__Envelope *rep = NULL;
    int rc = s_request (self, &req, timeout_ms, &rep);
    if (rc != TY_OK)
        return rc;
    if (rep->cmd_case != TY__ENVELOPE__CMD_SUBMIT_REP || rep->submit_rep->n_job_ids != 1) {
        ty__envelope__free_unpacked (rep, NULL);
        return s_fail (self, TY_EPROTO, "unexpected answer to submit");
    }
    snprintf (id_out, TY_ID_LEN + 1, "%s", rep->submit_rep->job_ids [0]);
    if (existed)
        *existed = rep->submit_rep->n_existed ? rep->submit_rep->existed [0] : 0;
    ty__envelope__free_unpacked (rep, NULL);
    return TY_OK;
}

int
ty_client_status (ty_client_t *self, const char *job_id, int timeout_ms,
                  Ty__JobInfo **info_out)
{
    return ty_client_status_ex (self, job_id, 0, timeout_ms, info_out);
}

int
ty_client_status_ex (ty_client_t *self, const char *job_id, int with_spec,
                     int timeout_ms, Ty__JobInfo **info_out)
{
    Ty__StatusReq st = TY__STATUS_REQ__INIT;
    st.job_id = (char *) (job_id ? job_id : "");
    st.with_spec = with_spec != 0;
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.cmd_case = TY__ENVELOPE__CMD_STATUS;
    req.status = &st;
    Ty__Envelope *rep = NULL;
    int rc = s_request (self, &req, timeout_ms, &rep);
    if (rc != TY_OK)
        return rc;
    if (rep->cmd_case != TY__ENVELOPE__CMD_JOB) {
        ty__envelope__free_unpacked (rep, NULL);
        return s_fail (self, TY_EPROTO, "unexpected answer to status");
    }
    *info_out = s_take (rep, rep->job);
    return TY_OK;
}

static int s_list (ty_client_t *self, Ty__ListReq *lr, int timeout_ms,
                   Ty__JobList **list_out);

int
ty_client_list_pipeline (ty_client_t *self, const char *pipeline, unsigned limit,
                         int timeout_ms, Ty__JobList **list_out)
{
    if (!pipeline || !*pipeline)
        return s_fail (self, TY_EINVAL, "no pipeline id");
    Ty__ListReq lr = TY__LIST_REQ__INIT;
    lr.pipeline = (char *) pipeline;
    lr.limit = limit;
    return s_list (self, &lr, timeout_ms, list_out);
}

int
ty_client_list (ty_client_t *self, const char *state, const char *type,
                unsigned limit, int timeout_ms, Ty__JobList **list_out)
{
    Ty__ListReq lr = TY__LIST_REQ__INIT;
    if (state)
        lr.state = (char *) state;
    if (type)
        lr.type = (char *) type;
    lr.limit = limit;
    return s_list (self, &lr, timeout_ms, list_out);
}

static int
s_list (ty_client_t *self, Ty__ListReq *lr, int timeout_ms, Ty__JobList **list_out)
{
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.cmd_case = TY__ENVELOPE__CMD_LIST;
    req.list = lr;
    Ty__Envelope *rep = NULL;
    int rc = s_request (self, &req, timeout_ms, &rep);
    if (rc != TY_OK)
        return rc;
    if (rep->cmd_case != TY__ENVELOPE__CMD_JOB_LIST) {
        ty__envelope__free_unpacked (rep, NULL);
        return s_fail (self, TY_EPROTO, "unexpected answer to list");
    }
    *list_out = s_take (rep, rep->job_list);
    return TY_OK;
}

static int
s_simple (ty_client_t *self, Ty__Envelope *req, int timeout_ms, const char *what)
{
    Ty__Envelope *rep = NULL;
    int rc = s_request (self, req, timeout_ms, &rep);
    if (rc != TY_OK)
        return rc;
    int ok = rep->cmd_case == TY__ENVELOPE__CMD_OK;
    ty__envelope__free_unpacked (rep, NULL);
    return ok ? TY_OK : s_fail (self, TY_EPROTO, "unexpected answer to %s", what);
}

int
ty_client_cancel (ty_client_t *self, const char *job_id, const char *reason,
                  int timeout_ms)
{
    Ty__CancelReq cr = TY__CANCEL_REQ__INIT;
    cr.job_id = (char *) (job_id ? job_id : "");
    if (reason)
        cr.reason = (char *) reason;
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.cmd_case = TY__ENVELOPE__CMD_CANCEL;
    req.cancel = &cr;
    return s_simple (self, &req, timeout_ms, "cancel");
}

int
ty_client_next_event (ty_client_t *self, int timeout_ms, Ty__Event **event_out)
{
    if (self->head) {
        s_event *e = self->head;
        self->head = e->next;
        if (!self->head)
            self->tail = NULL;
        *event_out = s_take (e->env, e->env->event);
        free (e);
        return TY_OK;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : ty_clock_mono_ms () + timeout_ms;
    for (;;) {
        Ty__Envelope *env;
        int rc = s_recv (self, deadline, &env);
        if (rc != TY_OK)
            return rc;
        if (env->cmd_case == TY__ENVELOPE__CMD_EVENT) {
            *event_out = s_take (env, env->event);
            return TY_OK;
        }
        ty__envelope__free_unpacked (env, NULL);   /* a late reply */
    }
}

static int
s_subscribe (ty_client_t *self, const char *job_id, int64_t deadline)
{
    Ty__WatchReq wr = TY__WATCH_REQ__INIT;
    wr.job_id = (char *) (job_id ? job_id : "");
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.cmd_case = TY__ENVELOPE__CMD_WATCH;
    req.watch = &wr;
    int64_t left = s_remaining (deadline);
    return s_simple (self, &req, left < 0 || left > 5000 ? 5000 : (int) left, "watch");
}

/* Events of other jobs seen during a watch: kept in order, then put
 * back in front of the queue for ty_client_next_event. */
static void
s_defer (s_event **list, Ty__Event *ev)
{
    Ty__Envelope *env = malloc (sizeof *env);
    s_event *e = malloc (sizeof *e);
    if (!env || !e) {
        free (env);
        free (e);
        ty_client_free_msg (ev);
        return;
    }
    ty__envelope__init (env);
    env->cmd_case = TY__ENVELOPE__CMD_EVENT;
    env->event = ev;
    e->env = env;
    e->next = NULL;
    while (*list)
        list = &(*list)->next;
    *list = e;
}

static void
s_requeue_deferred (ty_client_t *self, s_event **list)
{
    if (!*list)
        return;
    s_event *last = *list;
    while (last->next)
        last = last->next;
    last->next = self->head;
    if (!self->head)
        self->tail = last;
    self->head = *list;
    *list = NULL;
}

int
ty_client_watch (ty_client_t *self, const char *job_id, int timeout_ms,
                 ty_client_watch_fn *fn, void *arg, Ty__Event **last_out)
{
    int64_t deadline = timeout_ms < 0 ? -1 : ty_clock_mono_ms () + timeout_ms;
    int all = !job_id || !*job_id;
    Ty__Event *last = NULL;
    s_event *deferred = NULL;
    int rc = s_subscribe (self, job_id, deadline);
    int64_t quiet_since = ty_clock_mono_ms ();
    while (rc == TY_OK || rc == TY_ETIMEDOUT) {
        if (rc == TY_ETIMEDOUT && s_remaining (deadline) == 0)
            break;
        int64_t wait = S_WATCH_RESUBSCRIBE_MS - (ty_clock_mono_ms () - quiet_since);
        int64_t left = s_remaining (deadline);
        if (left >= 0 && left < wait)
            wait = left;
        if (wait < 0)
            wait = 0;
        Ty__Event *ev = NULL;
        rc = ty_client_next_event (self, (int) wait, &ev);
        if (rc == TY_ETIMEDOUT) {
            if (s_remaining (deadline) == 0)
                break;
            /* Silence: the broker may have restarted and forgotten us. */
            rc = s_subscribe (self, job_id, deadline);
            quiet_since = ty_clock_mono_ms ();
            if (rc == TY_ETIMEDOUT)
                continue;
            if (rc != TY_OK)
                break;
            continue;
        }
        if (rc != TY_OK)
            break;
        quiet_since = ty_clock_mono_ms ();
        if (!all && strcmp (ev->job_id, job_id)) {
            s_defer (&deferred, ev);     /* another job's: for next_event later */
            continue;
        }
        int stop = fn ? fn (ev, arg) : 0;
        int final = ev->final;
        ty_client_free_msg (last);
        last = ev;
        if (stop || (final && !all))
            break;
    }
    s_requeue_deferred (self, &deferred);
    if (rc == TY_ETIMEDOUT && s_remaining (deadline) == 0)
        s_fail (self, TY_ETIMEDOUT, "watch timed out");
    if (last_out)
        *last_out = last;
    else
        ty_client_free_msg (last);
    if (rc == TY_ETIMEDOUT)
        return TY_ETIMEDOUT;
    return rc;
}

int
ty_client_logs (ty_client_t *self, const char *job_id, unsigned tail,
                int timeout_ms, Ty__LogLines **lines_out)
{
    Ty__LogsReq lr = TY__LOGS_REQ__INIT;
    lr.job_id = (char *) (job_id ? job_id : "");
    lr.tail = tail;
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.cmd_case = TY__ENVELOPE__CMD_LOGS;
    req.logs = &lr;
    Ty__Envelope *rep = NULL;
    int rc = s_request (self, &req, timeout_ms, &rep);
    if (rc != TY_OK)
        return rc;
    if (rep->cmd_case != TY__ENVELOPE__CMD_LOG_LINES) {
        ty__envelope__free_unpacked (rep, NULL);
        return s_fail (self, TY_EPROTO, "unexpected answer to logs");
    }
    *lines_out = s_take (rep, rep->log_lines);
    return TY_OK;
}

int
ty_client_workers (ty_client_t *self, int timeout_ms, Ty__WorkerList **list_out)
{
    Ty__WorkersReq wr = TY__WORKERS_REQ__INIT;
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.cmd_case = TY__ENVELOPE__CMD_WORKERS;
    req.workers = &wr;
    Ty__Envelope *rep = NULL;
    int rc = s_request (self, &req, timeout_ms, &rep);
    if (rc != TY_OK)
        return rc;
    if (rep->cmd_case != TY__ENVELOPE__CMD_WORKER_LIST) {
        ty__envelope__free_unpacked (rep, NULL);
        return s_fail (self, TY_EPROTO, "unexpected answer to workers");
    }
    *list_out = s_take (rep, rep->worker_list);
    return TY_OK;
}

int
ty_client_ping (ty_client_t *self, int timeout_ms, int64_t *rtt_us)
{
    Ty__Ping ping = TY__PING__INIT;
    int64_t t0 = ty_clock_mono_us ();
    ping.sent_us = (uint64_t) t0;
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.cmd_case = TY__ENVELOPE__CMD_PING;
    req.ping = &ping;
    Ty__Envelope *rep = NULL;
    int rc = s_request (self, &req, timeout_ms, &rep);
    if (rc != TY_OK)
        return rc;
    int ok = rep->cmd_case == TY__ENVELOPE__CMD_PONG;
    if (ok && rep->pong->version)
        snprintf (self->version, sizeof self->version, "%s", rep->pong->version);
    ty__envelope__free_unpacked (rep, NULL);
    if (!ok)
        return s_fail (self, TY_EPROTO, "unexpected answer to ping");
    if (rtt_us)
        *rtt_us = ty_clock_mono_us () - t0;
    return TY_OK;
}

Ty__JobSpec *
ty_client_noop_spec (uint32_t sleep_ms, int fail, uint32_t output_bytes)
{
    Ty__JobSpec *spec = malloc (sizeof *spec);
    Ty__NoopSpec *noop = malloc (sizeof *noop);
    if (!spec || !noop) {
        free (spec);
        free (noop);
        return NULL;
    }
    ty__job_spec__init (spec);
    ty__noop_spec__init (noop);
    noop->sleep_ms = sleep_ms;
    noop->fail = fail != 0;
    noop->output_bytes = output_bytes;
    spec->kind_case = TY__JOB_SPEC__KIND_NOOP;
    spec->noop = noop;
    return spec;
}

void
ty_client_free_spec (Ty__JobSpec *spec)
{
    if (!spec)
        return;
    if (spec->kind_case == TY__JOB_SPEC__KIND_NOOP)
        free (spec->noop);
    free (spec);
}

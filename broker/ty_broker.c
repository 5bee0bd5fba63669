/*  ty_broker: the reactor. See ty_broker.h for what the broker does and
 *  ty_broker_int.h for the turn it repeats. This file owns the sockets,
 *  the Redis connection and its outages, timers and the commit of a turn;
 *  ty_clients.c, ty_worker_msgs.c and ty_lifecycle.c do the work. */
#include "ty_broker_int.h"
#include "ty_clock.h"
#include "ty_error.h"
#include "ty_log.h"
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_MONITOR_EP "inproc://ty-broker-monitor"

/* ---- small helpers shared by the broker's files ------------------------------ */

int
ty_broker_rstr (const redisReply *r, size_t i, char *buf, size_t size)
{
    buf [0] = '\0';
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return -1;
    const redisReply *e = r->element [i];
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) {
        snprintf (buf, size, "%.*s", (int) e->len, e->str);
        return 0;
    }
    if (e->type == REDIS_REPLY_INTEGER) {
        snprintf (buf, size, "%lld", e->integer);
        return 0;
    }
    return e->type == REDIS_REPLY_NIL ? 0 : -1;
}

long long
ty_broker_rint (const redisReply *r, size_t i)
{
    char buf [32];
    if (ty_broker_rstr (r, i, buf, sizeof buf))
        return 0;
    return strtoll (buf, NULL, 10);
}

void
ty_broker_to_client (ty_broker_t *self, const uint8_t *route, size_t route_len,
                     const Ty__Envelope *env)
{
    int rc = ty_outbox_put (self->outbox, TY_OUTBOX_CLIENTS, route, route_len, env);
    if (rc != TY_OK)
        ty_warn ("reply to a client not queued: %s", ty_strerror (rc));
}

void
ty_broker_to_worker (ty_broker_t *self, const char *worker_id, const Ty__Envelope *env)
{
    int rc = ty_outbox_put (self->outbox, TY_OUTBOX_WORKERS, worker_id, strlen (worker_id), env);
    if (rc != TY_OK)
        ty_warn ("message to worker %s not queued: %s", worker_id, ty_strerror (rc));
}

void
ty_broker_reply_error (ty_broker_t *self, const uint8_t *route, size_t route_len,
                       uint64_t request_id, int code, const char *fmt, ...)
{
    char msg [512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Error err = TY__ERROR__INIT;
    err.code = code;
    err.message = msg;
    env.request_id = request_id;
    env.cmd_case = TY__ENVELOPE__CMD_ERROR;
    env.error = &err;
    ty_broker_to_client (self, route, route_len, &env);
}

void
ty_broker_reply_ok (ty_broker_t *self, const uint8_t *route, size_t route_len,
                    uint64_t request_id)
{
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Ok ok = TY__OK__INIT;
    env.request_id = request_id;
    env.cmd_case = TY__ENVELOPE__CMD_OK;
    env.ok = &ok;
    ty_broker_to_client (self, route, route_len, &env);
}

/* ---- Redis outages -------------------------------------------------------------- */

void
ty_broker_store_down (ty_broker_t *self, const char *where)
{
    if (self->ready)
        ty_error ("state store lost during %s: %s", where, ty_redis_errstr (self->redis));
    ty_redis_fail (self->redis, NULL);
    self->ready = 0;
    self->redis_retry_ms = ty_clock_mono_ms ();
}

/* Reconnects with backoff and rebuilds memory. Returns 1 when ready. */
static int
s_store_up (ty_broker_t *self)
{
    if (self->ready)
        return 1;
    int64_t now = ty_clock_mono_ms ();
    if (now < self->redis_retry_ms)
        return 0;
    int rc = ty_redis_connect (self->redis);
    if (rc == TY_OK)
        rc = ty_broker_recover (self);
    if (rc == TY_ESTALE) {
        ty_error ("another broker owns this Redis (prefix %s): stopping", self->prefix);
        self->stop = 1;
        return 0;
    }
    if (rc != TY_OK) {
        int64_t delay = ty_backoff_next (&self->redis_backoff);
        ty_warn ("state store: %s; retry in %" PRId64 " ms", ty_redis_errstr (self->redis),
                 delay);
        self->redis_retry_ms = now + delay;
        return 0;
    }
    ty_backoff_reset (&self->redis_backoff);
    self->ready = 1;
    return 1;
}

/* ---- commit and send --------------------------------------------------------------- */

/* The job ids whose watch list holds a route. */
typedef struct { char id [TY_ID_LEN + 1]; } s_key_t;
typedef struct {
    s_key_t *keys;
    size_t n, cap;
    const uint8_t *route;
    size_t len;
} s_collect_t;

static int
s_collect_watched (const char *key, void *value, void *arg)
{
    s_collect_t *c = arg;
    for (ty_watch_t *w = value; w; w = w->next)
        if (w->route_len == c->len && !memcmp (w->route, c->route, c->len)) {
            if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 16;
                s_key_t *v = realloc (c->keys, cap * sizeof *v);
                if (!v)
                    return 1;
                c->keys = v;
                c->cap = cap;
            }
            snprintf (c->keys [c->n++].id, TY_ID_LEN + 1, "%s", key);
            break;
        }
    return 0;
}

static void
s_unwatch_route (ty_watch_t **pp, const uint8_t *route, size_t route_len)
{
    while (*pp) {
        ty_watch_t *w = *pp;
        if (w->route_len == route_len && !memcmp (w->route, route, route_len)) {
            *pp = w->next;
            free (w);
            continue;
        }
        pp = &w->next;
    }
}

/* A client that is gone watches nothing any more. Each list is taken out
 * of the table, trimmed and put back, so no entry points at freed memory. */
static void
s_forget_client (ty_broker_t *self, const uint8_t *route, size_t route_len)
{
    s_unwatch_route (&self->firehose, route, route_len);
    s_collect_t c = { .route = route, .len = route_len };
    ty_hash_each (self->watchers, s_collect_watched, &c);
    for (size_t i = 0; i < c.n; i++) {
        ty_watch_t *list = ty_hash_del (self->watchers, c.keys [i].id);
        s_unwatch_route (&list, route, route_len);
        if (list)
            ty_hash_put (self->watchers, c.keys [i].id, list);
    }
    free (c.keys);
}

typedef struct {
    ty_broker_t *self;
    char (*dead_workers) [TY_WORKER_ID_MAX + 1];
    size_t ndead, cdead;
} s_send_ctx;

static void
s_send_failed (int which, const uint8_t *route, size_t route_len, int err, void *arg)
{
    s_send_ctx *ctx = arg;
    if (which == TY_OUTBOX_CLIENTS) {
        if (err == EHOSTUNREACH)
            s_forget_client (ctx->self, route, route_len);
        return;
    }
    char wid [TY_WORKER_ID_MAX + 1];
    size_t n = route_len < TY_WORKER_ID_MAX ? route_len : TY_WORKER_ID_MAX;
    memcpy (wid, route, n);
    wid [n] = '\0';
    ty_debug ("to worker %s: %s", wid, zmq_strerror (err));
    if (err != EHOSTUNREACH)
        return;
    for (size_t i = 0; i < ctx->ndead; i++)
        if (!strcmp (ctx->dead_workers [i], wid))
            return;
    if (ctx->ndead == ctx->cdead) {
        size_t cap = ctx->cdead ? ctx->cdead * 2 : 8;
        void *v = realloc (ctx->dead_workers, cap * sizeof *ctx->dead_workers);
        if (!v)
            return;
        ctx->dead_workers = v;
        ctx->cdead = cap;
    }
    snprintf (ctx->dead_workers [ctx->ndead++], TY_WORKER_ID_MAX + 1, "%s", wid);
}

static int
s_free_value (const char *key, void *value, void *arg)
{
    free (value);
    return 0;
}

static void
s_hash_empty (ty_hash_t **h)
{
    if (ty_hash_size (*h)) {
        ty_hash_each (*h, s_free_value, NULL);
        ty_hash_destroy (h);
        *h = ty_hash_new ();
    }
}

static void
s_turn_reset (ty_broker_t *self)
{
    s_hash_empty (&self->turn_idem);
    s_hash_empty (&self->turn_ended);
}

static void
s_deliver (ty_broker_t *self, ty_outbox_t *box)
{
    s_send_ctx ctx = { .self = self };
    ty_outbox_send (box, self->socks, s_send_failed, &ctx);
    for (size_t i = 0; i < ctx.ndead; i++) {
        ty_worker_t *w = ty_workers_find (self->workers, ctx.dead_workers [i]);
        if (w)
            ty_broker_worker_lost (self, w, "its connection is gone", 0);
    }
    free (ctx.dead_workers);
}

/* A transaction failed: nothing of the turns in flight is said, client
 * replies become errors, memory is rebuilt from Redis when it is back. */
static void
s_turn_failed (ty_broker_t *self, int rc)
{
    char why [300];
    if (rc == TY_ESTALE) {
        snprintf (why, sizeof why, "another broker took over this Redis: this one stops");
        ty_error ("%s", why);
        self->stop = 1;
    }
    else {
        snprintf (why, sizeof why, "state store unavailable (%s): not accepted, retry later",
                  ty_redis_errstr (self->redis));
        ty_broker_store_down (self, "commit");
    }
    ty_outbox_fail (self->outbox_inflight, self->socks, TY_ESTORE, why);
    ty_outbox_fail (self->outbox, self->socks, TY_ESTORE, why);
    ty_state_discard (self->state);
    ty_jobs_clear (self->jobs);
    ty_queues_clear (self->queues);
    self->ready = 0;
    s_turn_reset (self);
}

void
ty_broker_settle (ty_broker_t *self)
{
    if (!ty_state_inflight (self->state))
        return;
    int rc = ty_state_wait (self->state);
    if (rc == TY_OK)
        s_deliver (self, self->outbox_inflight);
    else
        s_turn_failed (self, rc);
}

/* The end of a turn: the previous turn's transaction is answered first
 * (its messages go out), then this turn's is sent without waiting, so the
 * next turn's work overlaps with Redis executing it. A turn that wrote
 * nothing sends its messages (read replies) at once. */
static void
s_end_turn (ty_broker_t *self)
{
    ty_broker_settle (self);
    if (ty_state_pending (self->state) == 0) {
        if (ty_outbox_count (self->outbox))
            s_deliver (self, self->outbox);
        s_turn_reset (self);
        return;
    }
    int rc = ty_state_send (self->state);
    if (rc != TY_OK) {
        s_turn_failed (self, rc);
        return;
    }
    ty_outbox_t *t = self->outbox_inflight;
    self->outbox_inflight = self->outbox;
    self->outbox = t;
    s_turn_reset (self);
}

/* ---- timers ------------------------------------------------------------------------- */

/* Ids, not pointers: handling one expiry may end (free) other jobs. */
typedef struct {
    int64_t now;
    char  (*v) [TY_ID_LEN + 1];
    size_t n, cap;
} s_expired;

static void
s_collect_expired (ty_jobrec_t *job, void *arg)
{
    s_expired *x = arg;
    if (job->state != TY_JOB_RUNNING)
        return;
    if (job->deadline_ms > x->now
    &&  !(job->timeout_at_ms && job->timeout_at_ms <= x->now))
        return;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        void *v = realloc (x->v, cap * sizeof *x->v);
        if (!v)
            return;
        x->v = v;
        x->cap = cap;
    }
    snprintf (x->v [x->n++], TY_ID_LEN + 1, "%s", job->id);
}

static void
s_unattached_cb (ty_jobrec_t *job, void *arg)
{
    if (job->state == TY_JOB_RUNNING && !job->attached)
        (*(size_t *) arg)++;
}

/* How many RUNNING jobs wait for their worker to re-attach. */
static void
s_count_unattached (ty_broker_t *self)
{
    size_t n = 0;
    ty_jobs_each (self->jobs, s_unattached_cb, &n);
    self->unattached = n;
}

typedef struct {
    ty_argv_t *a;
    int64_t deadline;
} s_renew;

static void
s_collect_renew (ty_jobrec_t *job, void *arg)
{
    s_renew *r = arg;
    if (job->state == TY_JOB_RUNNING && job->attached) {
        ty_argv_int (r->a, r->deadline);
        ty_argv_str (r->a, job->id);
    }
}

static void
s_timers (ty_broker_t *self)
{
    int64_t now = ty_clock_mono_ms ();
    if (now < self->next_tick_ms)
        return;
    self->next_tick_ms = now + TY_BROKER_TICK_MS;
    if (!s_store_up (self))
        return;

    /* Workers: heartbeat them, bury the silent. */
    for (size_t i = 0; i < ty_workers_count (self->workers); ) {
        ty_worker_t *w = ty_workers_at (self->workers, i);
        if (now - w->last_seen_ms > (int64_t) TY_BROKER_LIVENESS * w->heartbeat_ms) {
            ty_broker_worker_lost (self, w, "missed 3 heartbeats", 1);
            continue;       /* the array was compacted */
        }
        if (now >= w->next_hb_ms) {
            Ty__Envelope env = TY__ENVELOPE__INIT;
            Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
            env.cmd_case = TY__ENVELOPE__CMD_HEARTBEAT;
            env.heartbeat = &hb;
            ty_broker_to_worker (self, w->id, &env);
            w->next_hb_ms = now + w->heartbeat_ms;
        }
        i++;
    }

    /* Leases: not accepted in time, not renewed, not re-attached. */
    s_expired x = { .now = now };
    if (self->unattached > 0) {
        /* after a rebuild: RUNNING jobs without a worker yet; scan them all */
        self->unattached = 0;
        ty_jobs_each (self->jobs, s_collect_expired, &x);
        s_count_unattached (self);
    }
    else
        /* only what runs: the workers' slots, not every queued job */
        for (size_t i = 0; i < ty_workers_count (self->workers); i++) {
            ty_worker_t *w = ty_workers_at (self->workers, i);
            for (size_t k = 0; k < w->njobs; k++) {
                ty_jobrec_t *job = ty_jobs_find (self->jobs, w->jobs [k]);
                if (job)
                    s_collect_expired (job, &x);
            }
        }
    for (size_t i = 0; i < x.n; i++) {
        ty_jobrec_t *job = ty_jobs_find (self->jobs, x.v [i]);
        if (!job || job->state != TY_JOB_RUNNING)
            continue;       /* handled by an earlier worker loss in this loop */
        if (job->deadline_ms > now) {
            if (job->timeout_at_ms && job->timeout_at_ms <= now)
                ty_broker_job_timeout (self, job);
            continue;
        }
        ty_worker_t *w = ty_workers_find (self->workers, job->worker);
        if (w && now - w->last_seen_ms >= w->heartbeat_ms) {
            /* The worker itself is late: it is the worker that is lost, not
               this one lease; requeue all it holds once, as one attempt. */
            ty_broker_worker_lost (self, w, "silent past a job's lease", 1);
            continue;
        }
        if (!job->attached)
            ty_broker_job_requeue (self, job, 1,
                                   "its worker did not come back after a broker restart");
        else
        if (!job->accepted)
            ty_broker_job_requeue (self, job, 0, "the worker did not accept the job in time");
        else
            ty_broker_job_requeue (self, job, 1, "lease expired (no heartbeat for the job)");
    }
    free (x.v);

    /* Once per heartbeat: lease deadlines and worker records for operators. */
    if (now >= self->next_renew_ms) {
        self->next_renew_ms = now + self->opts.heartbeat_ms;
        ty_argv_t *a = ty_state_raw (self->state);
        char key [80];
        snprintf (key, sizeof key, "%sleases", self->prefix);
        ty_argv_str (a, "ZADD");
        ty_argv_str (a, key);
        ty_argv_str (a, "XX");
        s_renew r = { a, ty_clock_wall_ms ()
                         + (int64_t) TY_BROKER_LIVENESS * self->opts.heartbeat_ms };
        size_t before = a->argc;
        for (size_t i = 0; i < ty_workers_count (self->workers); i++) {
            ty_worker_t *w = ty_workers_at (self->workers, i);
            for (size_t k = 0; k < w->njobs; k++) {
                ty_jobrec_t *job = ty_jobs_find (self->jobs, w->jobs [k]);
                if (job)
                    s_collect_renew (job, &r);
            }
        }
        if (a->argc == before) {
            /* nothing runs: turn the command into a harmless no-op */
            ty_argv_reset (a);
            ty_argv_str (a, "PING");
        }
        for (size_t i = 0; i < ty_workers_count (self->workers); i++)
            ty_broker_worker_record (self, ty_workers_at (self->workers, i));
    }
}

/* A closed worker connection (the socket monitor's DISCONNECTED): the
 * process is gone, so its jobs go back now rather than after 3 heartbeats. */
static void
s_on_monitor (ty_broker_t *self)
{
    uint16_t event;
    uint32_t value;
    while (ty_wire_monitor_recv (self->monitor, &event, &value) == TY_OK) {
        if (event == ZMQ_EVENT_DISCONNECTED && self->ready) {
            ty_worker_t *w = ty_workers_find_fd (self->workers, (int) value);
            if (w)
                ty_broker_worker_lost (self, w, "connection closed", 1);
        }
    }
}

/* ---- sockets --------------------------------------------------------------------- */

static void *
s_bind (ty_broker_t *self, const char *ep, char *bound, size_t bound_len)
{
    void *s = zmq_socket (self->zctx, ZMQ_ROUTER);
    if (!s)
        return NULL;
    int one = 1, zero = 0, hwm = 1000000;
    /* Undeliverable messages must fail loudly, not vanish. */
    zmq_setsockopt (s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt (s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (s, ZMQ_LINGER, &zero, sizeof zero);
    int64_t maxmsg = (int64_t) self->opts.max_msg_bytes * 2 + 4096;
    zmq_setsockopt (s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind (s, ep) != 0) {
        ty_error ("cannot bind %s: %s", ep, zmq_strerror (errno));
        zmq_close (s);
        return NULL;
    }
    size_t len = bound_len;
    if (zmq_getsockopt (s, ZMQ_LAST_ENDPOINT, bound, &len) != 0)
        snprintf (bound, bound_len, "%s", ep);
    return s;
}

static int
s_write_endpoints (const char *path, const char *clients, const char *workers)
{
    char tmp [4096];
    snprintf (tmp, sizeof tmp, "%s.tmp.%d", path, (int) getpid ());
    FILE *f = fopen (tmp, "w");
    if (!f)
        return errno;
    fprintf (f, "clients %s\nworkers %s\n", clients, workers);
    if (fflush (f) != 0 || fsync (fileno (f)) != 0) {
        int err = errno;
        fclose (f);
        unlink (tmp);
        return err;
    }
    if (fclose (f) != 0 || rename (tmp, path) != 0) {
        int err = errno;
        unlink (tmp);
        return err;
    }
    return 0;
}

ty_broker_t *
ty_broker_new (const ty_broker_opts_t *opts)
{
    ty_broker_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    if (!self->opts.heartbeat_ms)
        self->opts.heartbeat_ms = TY_BROKER_HEARTBEAT_MS;
    if (!self->opts.max_attempts)
        self->opts.max_attempts = TY_BROKER_MAX_ATTEMPTS;
    if (!self->opts.max_msg_bytes)
        self->opts.max_msg_bytes = TY_WIRE_MAX_MSG_BYTES;
    snprintf (self->prefix, sizeof self->prefix, "%s", opts->prefix ? opts->prefix : "ty:");
    ty_argv_init (&self->scratch);
    ty_backoff_init (&self->redis_backoff, 50, 2000);
    self->jobs = ty_jobs_new ();
    self->queues = ty_queues_new ();
    self->workers = ty_workers_new ();
    self->watchers = ty_hash_new ();
    self->turn_idem = ty_hash_new ();
    self->outbox = ty_outbox_new ();
    self->outbox_inflight = ty_outbox_new ();
    self->turn_ended = ty_hash_new ();
    self->redis = ty_redis_new (opts->redis_url);
    if (!self->redis)
        ty_error ("bad Redis URL '%s' (want redis://host:port or unix:///path)",
                  opts->redis_url);
    self->state = self->redis ? ty_state_new (self->redis, self->prefix) : NULL;
    self->zctx = zmq_ctx_new ();
    if (!self->jobs || !self->queues || !self->workers || !self->watchers
    ||  !self->turn_idem || !self->outbox || !self->outbox_inflight || !self->turn_ended
    ||  !self->state || !self->zctx) {
        ty_broker_destroy (&self);
        return NULL;
    }
    char cep [256], wep [256];
    self->socks [TY_OUTBOX_CLIENTS] = s_bind (self, opts->clients_ep, cep, sizeof cep);
    if (self->socks [TY_OUTBOX_CLIENTS])
        self->socks [TY_OUTBOX_WORKERS] = s_bind (self, opts->workers_ep, wep, sizeof wep);
    if (!self->socks [TY_OUTBOX_CLIENTS] || !self->socks [TY_OUTBOX_WORKERS]) {
        ty_broker_destroy (&self);
        return NULL;
    }
    int one = 1;
    /* A restarted worker takes its name back at once. */
    zmq_setsockopt (self->socks [TY_OUTBOX_WORKERS], ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    if (zmq_socket_monitor (self->socks [TY_OUTBOX_WORKERS], S_MONITOR_EP,
                            ZMQ_EVENT_DISCONNECTED) == 0) {
        self->monitor = zmq_socket (self->zctx, ZMQ_PAIR);
        if (self->monitor && zmq_connect (self->monitor, S_MONITOR_EP) != 0) {
            zmq_close (self->monitor);
            self->monitor = NULL;
        }
    }
    if (!self->monitor)
        ty_warn ("no socket monitor: dead workers are found by heartbeat only");
    if (opts->endpoint_file) {
        int err = s_write_endpoints (opts->endpoint_file, cep, wep);
        if (err) {
            ty_error ("cannot write %s: %s", opts->endpoint_file, strerror (err));
            ty_broker_destroy (&self);
            return NULL;
        }
    }
    ty_info ("clients on %s, workers on %s, Redis %s (prefix %s), heartbeat %d ms",
             cep, wep, opts->redis_url, self->prefix, self->opts.heartbeat_ms);
    return self;
}

static int
s_free_watch_cb (const char *key, void *value, void *arg)
{
    ty_broker_watch_free (value);
    return 0;
}

void
ty_broker_destroy (ty_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_broker_t *self = *self_p;
    if (self->monitor) {
        zmq_socket_monitor (self->socks [TY_OUTBOX_WORKERS], NULL, 0);
        zmq_close (self->monitor);
    }
    for (int i = 0; i < 2; i++)
        if (self->socks [i])
            zmq_close (self->socks [i]);
    if (self->zctx)
        zmq_ctx_term (self->zctx);
    ty_outbox_destroy (&self->outbox);
    ty_outbox_destroy (&self->outbox_inflight);
    ty_argv_free (&self->scratch);
    if (self->watchers) {
        ty_hash_each (self->watchers, s_free_watch_cb, NULL);
        ty_hash_destroy (&self->watchers);
    }
    if (self->turn_idem) {
        ty_hash_each (self->turn_idem, s_free_value, NULL);
        ty_hash_destroy (&self->turn_idem);
    }
    if (self->turn_ended) {
        ty_hash_each (self->turn_ended, s_free_value, NULL);
        ty_hash_destroy (&self->turn_ended);
    }
    ty_broker_watch_free (self->firehose);
    ty_jobs_destroy (&self->jobs);
    ty_queues_destroy (&self->queues);
    ty_workers_destroy (&self->workers);
    ty_state_destroy (&self->state);
    ty_redis_destroy (&self->redis);
    free (self);
    *self_p = NULL;
}

void
ty_broker_stop (ty_broker_t *self)
{
    self->stop = 1;
}

/* Reads up to TY_BROKER_BATCH_MAX messages from one socket. */
static void
s_drain (ty_broker_t *self, int which)
{
    void *sock = self->socks [which];
    for (int i = 0; i < TY_BROKER_BATCH_MAX; i++) {
        ty_wire_msg_t msg;
        int rc = ty_wire_recv (sock, 1, self->opts.max_msg_bytes, &msg, ZMQ_DONTWAIT);
        if (rc == EAGAIN)
            return;
        if (rc == TY_EPROTO || rc == TY_EFULL) {
            char text [200];
            if (rc == TY_EFULL)
                snprintf (text, sizeof text, "message of %zu bytes over the limit of %zu",
                          msg.body_len, self->opts.max_msg_bytes);
            else
                snprintf (text, sizeof text, "not a trainyard message (want frames "
                          "[\"TY1\"][Envelope] with one command): dropped");
            ty_warn ("%s peer: %s", which == TY_OUTBOX_CLIENTS ? "client" : "worker", text);
            if (msg.route_len) {
                Ty__Envelope env = TY__ENVELOPE__INIT;
                Ty__Error err = TY__ERROR__INIT;
                err.code = rc;
                err.message = text;
                env.cmd_case = TY__ENVELOPE__CMD_ERROR;
                env.error = &err;
                ty_outbox_put (self->outbox, which, msg.route, msg.route_len, &env);
            }
            ty_wire_msg_clear (&msg);
            continue;
        }
        if (rc != TY_OK) {
            if (rc != EINTR)
                ty_warn ("receive: %s", ty_strerror (rc));
            return;
        }
        if (which == TY_OUTBOX_CLIENTS)
            ty_broker_on_client (self, &msg);
        else
            ty_broker_on_worker (self, &msg);
        ty_wire_msg_clear (&msg);
    }
}

int
ty_broker_run (ty_broker_t *self)
{
    self->redis_retry_ms = 0;
    self->ready = 0;
    s_timers (self);            /* connects and rebuilds */
    while (!self->stop) {
        zmq_pollitem_t items [4] = {
            { self->socks [TY_OUTBOX_CLIENTS], 0, ZMQ_POLLIN, 0 },
            { self->socks [TY_OUTBOX_WORKERS], 0, ZMQ_POLLIN, 0 },
            { self->monitor, 0, ZMQ_POLLIN, 0 },
            { NULL, -1, ZMQ_POLLIN, 0 },
        };
        int nitems = self->monitor ? 3 : 2;
        /* While a transaction is in flight, its answer wakes us: its
           messages must not wait for the next message to arrive. */
        redisContext *rc_ctx = ty_redis_ctx (self->redis);
        int redis_item = -1;
        if (ty_state_inflight (self->state) && rc_ctx) {
            items [nitems].fd = rc_ctx->fd;
            redis_item = nitems++;
        }
        int64_t wait = self->next_tick_ms - ty_clock_mono_ms ();
        if (wait < 0)
            wait = 0;
        if (wait > TY_BROKER_TICK_MS)
            wait = TY_BROKER_TICK_MS;
        int rc = zmq_poll (items, nitems, (long) wait);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            ty_error ("zmq_poll: %s", zmq_strerror (errno));
            break;
        }
        if (redis_item >= 0 && (items [redis_item].revents & ZMQ_POLLIN))
            ty_broker_settle (self);
        if (self->monitor && (items [2].revents & ZMQ_POLLIN))
            s_on_monitor (self);
        if (items [1].revents & ZMQ_POLLIN)
            s_drain (self, TY_OUTBOX_WORKERS);
        if (items [0].revents & ZMQ_POLLIN)
            s_drain (self, TY_OUTBOX_CLIENTS);
        s_timers (self);
        ty_broker_dispatch (self);
        s_end_turn (self);
    }
    ty_broker_settle (self);        /* what was written is also said */
    ty_info ("broker stopping");
    return TY_OK;
}

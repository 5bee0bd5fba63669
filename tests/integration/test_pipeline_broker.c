/*  test_pipeline_broker: the broker side of pipelines (issue 7), against a
 *  real redis-server and a real trainyard-broker.
 *
 *  The client and the worker here speak the protocol themselves (a DEALER
 *  each, ty_wire), so the test sees exactly what the broker sends: the
 *  inputs of every ASSIGN, and READY resources the stock runtime does not
 *  declare. A noop worker (trainyard-noop) runs the plain pipeline.
 *
 *    steps_list_spec      step names stored and listed, list by pipeline
 *                         (ended jobs too), <prefix>pipelines, with_spec,
 *                         inputs of a child in status, bad step names
 *    inputs_assign        parent outputs and metrics (progress and result)
 *                         reach the child's ASSIGN as "step.key"; a child
 *                         submitted after its parent succeeded gets them too
 *    inputs_after_restart kill -9 of the broker between the parent's
 *                         success and the child's dispatch: the new broker
 *                         sends the inputs
 *    resources            threads=4 waits (no spinning) beside a threads=2
 *                         worker, runs when a threads=4 worker comes; text
 *                         values must be equal */
#include "ty_it.h"
#include "ty_error.h"
#include "ty_id.h"
#include "ty_wire.h"
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_HEARTBEAT_MS  100
#define S_WAIT_MS       10000     /* a healthy broker needs ~ms; sanitizers are slower */
#define S_IDLE_MS       1000      /* how long "stays QUEUED" is watched */
#define S_INPUTS_MAX    32

/* ---- a raw client ----------------------------------------------------------- */

typedef struct {
    void    *ctx;
    void    *sock;
    uint64_t next_rid;
} s_client_t;

static void
s_client_open (s_client_t *c, void *ctx, const char *ep)
{
    c->ctx = ctx;
    c->sock = zmq_socket (ctx, ZMQ_DEALER);
    assert_non_null (c->sock);
    int linger = 0;
    assert_int_equal (zmq_setsockopt (c->sock, ZMQ_LINGER, &linger, sizeof linger), 0);
    assert_int_equal (zmq_connect (c->sock, ep), 0);
    c->next_rid = 1;
}

static void
s_client_close (s_client_t *c)
{
    if (c->sock)
        zmq_close (c->sock);
    c->sock = NULL;
}

/* Sends env (request id set here) and returns the reply with that id;
 * events in between are skipped. Caller frees with ty__envelope__free_unpacked. */
static Ty__Envelope *
s_rpc (s_client_t *c, Ty__Envelope *env)
{
    env->request_id = c->next_rid++;
    assert_int_equal (ty_wire_send (c->sock, NULL, 0, env, 0), TY_OK);
    int64_t deadline = ty_testenv_now_ms () + S_WAIT_MS;
    while (ty_testenv_now_ms () < deadline) {
        zmq_pollitem_t item = { c->sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 100) <= 0)
            continue;
        ty_wire_msg_t msg = { 0 };
        if (ty_wire_recv (c->sock, 0, TY_WIRE_MAX_MSG_BYTES, &msg, 0) != TY_OK) {
            ty_wire_msg_clear (&msg);
            continue;
        }
        if (msg.env->request_id == env->request_id
        &&  msg.env->cmd_case != TY__ENVELOPE__CMD_EVENT) {
            Ty__Envelope *rep = msg.env;
            msg.env = NULL;
            return rep;
        }
        ty_wire_msg_clear (&msg);
    }
    fail_msg ("no reply from the broker in %d ms", S_WAIT_MS);
    return NULL;
}

/* One Submit of n items; ids_out gets the job ids. Returns the reply (an
 * error reply is returned, not failed on). */
static Ty__Envelope *
s_submit (s_client_t *c, Ty__SubmitItem **items, size_t n)
{
    Ty__Submit sub = TY__SUBMIT__INIT;
    sub.items = items;
    sub.n_items = n;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_SUBMIT;
    env.submit = &sub;
    return s_rpc (c, &env);
}

static void
s_must_submit (s_client_t *c, Ty__SubmitItem **items, size_t n, char (*ids) [TY_ID_LEN + 1])
{
    Ty__Envelope *rep = s_submit (c, items, n);
    if (rep->cmd_case == TY__ENVELOPE__CMD_ERROR)
        fail_msg ("submit: %s", rep->error->message);
    assert_int_equal (rep->cmd_case, TY__ENVELOPE__CMD_SUBMIT_REP);
    assert_int_equal (rep->submit_rep->n_job_ids, n);
    for (size_t i = 0; i < n; i++)
        snprintf (ids [i], TY_ID_LEN + 1, "%s", rep->submit_rep->job_ids [i]);
    ty__envelope__free_unpacked (rep, NULL);
}

static Ty__Envelope *
s_status (s_client_t *c, const char *id, int with_spec)
{
    Ty__StatusReq req = TY__STATUS_REQ__INIT;
    req.job_id = (char *) id;
    req.with_spec = with_spec;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_STATUS;
    env.status = &req;
    Ty__Envelope *rep = s_rpc (c, &env);
    assert_int_equal (rep->cmd_case, TY__ENVELOPE__CMD_JOB);
    return rep;
}

static Ty__Envelope *
s_list (s_client_t *c, const char *pipeline)
{
    Ty__ListReq req = TY__LIST_REQ__INIT;
    req.pipeline = (char *) pipeline;
    req.limit = 1000;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_LIST;
    env.list = &req;
    Ty__Envelope *rep = s_rpc (c, &env);
    assert_int_equal (rep->cmd_case, TY__ENVELOPE__CMD_JOB_LIST);
    return rep;
}

/* The value of key in a list of outputs, NULL if absent. */
static const char *
s_find (Ty__Output **items, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp (items [i]->key, key))
            return items [i]->value;
    return NULL;
}

/* ---- a raw worker ---------------------------------------------------------------- */

typedef struct {
    char     job_id [TY_ID_LEN + 1];
    uint32_t attempt;
    size_t   ninputs;
    char     keys [S_INPUTS_MAX][96];
    char     values [S_INPUTS_MAX][96];
} s_assign_t;

typedef struct {
    void   *sock;
    char    id [32];
    int64_t next_hb_ms;
} s_worker_t;

/* Connects and says READY: type, capacity 1, resources (n "key=value"
 * texts), and the job it still runs (held_id NULL: none). */
static void
s_worker_open_held (s_worker_t *w, void *ctx, const char *ep, const char *id,
                    const char *type, const char *const *resources, size_t nres,
                    const char *held_id, uint32_t held_attempt)
{
    snprintf (w->id, sizeof w->id, "%s", id);
    w->sock = zmq_socket (ctx, ZMQ_DEALER);
    assert_non_null (w->sock);
    int linger = 0;
    assert_int_equal (zmq_setsockopt (w->sock, ZMQ_LINGER, &linger, sizeof linger), 0);
    assert_int_equal (zmq_setsockopt (w->sock, ZMQ_ROUTING_ID, id, strlen (id)), 0);
    assert_int_equal (zmq_connect (w->sock, ep), 0);
    Ty__Ready r = TY__READY__INIT;
    r.worker_id = (char *) id;
    r.type = (char *) type;
    r.capacity = 1;
    r.host = "test";
    r.pid = (uint32_t) getpid ();
    r.heartbeat_ms = S_HEARTBEAT_MS;
    Ty__Ready__ResourcesEntry ev [8], *ep_ [8];
    char kb [8][32], vb [8][32];
    assert_true (nres <= 8);
    for (size_t i = 0; i < nres; i++) {
        ty__ready__resources_entry__init (&ev [i]);
        const char *eq = strchr (resources [i], '=');
        assert_non_null (eq);
        snprintf (kb [i], sizeof kb [i], "%.*s", (int) (eq - resources [i]), resources [i]);
        snprintf (vb [i], sizeof vb [i], "%s", eq + 1);
        ev [i].key = kb [i];
        ev [i].value = vb [i];
        ep_ [i] = &ev [i];
    }
    r.resources = ep_;
    r.n_resources = nres;
    Ty__Held held = TY__HELD__INIT;
    Ty__Held *heldp = &held;
    if (held_id) {
        held.job_id = (char *) held_id;
        held.attempt = held_attempt;
        r.held = &heldp;
        r.n_held = 1;
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_READY;
    env.ready = &r;
    assert_int_equal (ty_wire_send (w->sock, NULL, 0, &env, 0), TY_OK);
    w->next_hb_ms = ty_testenv_now_ms () + S_HEARTBEAT_MS;
}

static void
s_worker_open (s_worker_t *w, void *ctx, const char *ep, const char *id, const char *type,
               const char *const *resources, size_t nres)
{
    s_worker_open_held (w, ctx, ep, id, type, resources, nres, NULL, 0);
}

static void
s_worker_close (s_worker_t *w)
{
    if (w->sock)
        zmq_close (w->sock);
    w->sock = NULL;
}

static void
s_worker_send (s_worker_t *w, Ty__Envelope *env)
{
    assert_int_equal (ty_wire_send (w->sock, NULL, 0, env, 0), TY_OK);
}

/* Heartbeats and reads for up to ms. Returns 1 with *out filled at the first
 * ASSIGN (accepted at once), 0 if none came. */
static int
s_worker_pump (s_worker_t *w, int ms, s_assign_t *out)
{
    int64_t deadline = ty_testenv_now_ms () + ms;
    for (;;) {
        int64_t now = ty_testenv_now_ms ();
        if (now >= w->next_hb_ms) {
            Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
            Ty__Envelope env = TY__ENVELOPE__INIT;
            env.cmd_case = TY__ENVELOPE__CMD_HEARTBEAT;
            env.heartbeat = &hb;
            s_worker_send (w, &env);
            w->next_hb_ms = now + S_HEARTBEAT_MS;
        }
        if (now >= deadline)
            return 0;
        int64_t wait = w->next_hb_ms - now;
        if (deadline - now < wait)
            wait = deadline - now;
        zmq_pollitem_t item = { w->sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, (long) wait) <= 0)
            continue;
        ty_wire_msg_t msg = { 0 };
        if (ty_wire_recv (w->sock, 0, TY_WIRE_MAX_MSG_BYTES, &msg, 0) != TY_OK) {
            ty_wire_msg_clear (&msg);
            continue;
        }
        if (msg.env->cmd_case == TY__ENVELOPE__CMD_ERROR)
            fail_msg ("worker %s: broker error: %s", w->id, msg.env->error->message);
        if (msg.env->cmd_case == TY__ENVELOPE__CMD_ASSIGN) {
            Ty__Assign *as = msg.env->assign;
            memset (out, 0, sizeof *out);
            snprintf (out->job_id, sizeof out->job_id, "%s", as->job_id);
            out->attempt = as->attempt;
            for (size_t i = 0; i < as->n_inputs && i < S_INPUTS_MAX; i++) {
                snprintf (out->keys [i], sizeof out->keys [i], "%s", as->inputs [i]->key);
                snprintf (out->values [i], sizeof out->values [i], "%s", as->inputs [i]->value);
            }
            out->ninputs = as->n_inputs;
            ty_wire_msg_clear (&msg);
            Ty__Accept acc = TY__ACCEPT__INIT;
            acc.job_id = out->job_id;
            acc.attempt = out->attempt;
            Ty__Envelope env = TY__ENVELOPE__INIT;
            env.cmd_case = TY__ENVELOPE__CMD_ACCEPT;
            env.accept = &acc;
            s_worker_send (w, &env);
            return 1;
        }
        ty_wire_msg_clear (&msg);
    }
}

static void
s_worker_must_assign (s_worker_t *w, s_assign_t *out)
{
    if (!s_worker_pump (w, S_WAIT_MS, out))
        fail_msg ("worker %s: no ASSIGN in %d ms", w->id, S_WAIT_MS);
}

/* Progress with one metric. */
static void
s_worker_metric (s_worker_t *w, const s_assign_t *a, const char *key, double value)
{
    Ty__Metric m = TY__METRIC__INIT;
    m.key = (char *) key;
    m.value = value;
    Ty__Metric *mp = &m;
    Ty__Progress p = TY__PROGRESS__INIT;
    p.job_id = (char *) a->job_id;
    p.attempt = a->attempt;
    p.fraction = 0.5;
    p.phase = "work";
    p.message = "";
    p.metrics = &mp;
    p.n_metrics = 1;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_PROGRESS;
    env.progress = &p;
    s_worker_send (w, &env);
}

/* SUCCEEDED with one output and one metric (either may be NULL). */
static void
s_worker_succeed (s_worker_t *w, const s_assign_t *a, const char *okey, const char *oval,
                  const char *mkey, double mval)
{
    Ty__Output o = TY__OUTPUT__INIT;
    Ty__Output *op = &o;
    Ty__Metric m = TY__METRIC__INIT;
    Ty__Metric *mp = &m;
    Ty__Result res = TY__RESULT__INIT;
    res.job_id = (char *) a->job_id;
    res.attempt = a->attempt;
    res.outcome = TY__OUTCOME__OUTCOME_SUCCEEDED;
    res.error = "";
    if (okey) {
        o.key = (char *) okey;
        o.value = (char *) oval;
        res.outputs = &op;
        res.n_outputs = 1;
    }
    if (mkey) {
        m.key = (char *) mkey;
        m.value = mval;
        res.metrics = &mp;
        res.n_metrics = 1;
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_RESULT;
    env.result = &res;
    s_worker_send (w, &env);
}

static const char *
s_assign_input (const s_assign_t *a, const char *key)
{
    for (size_t i = 0; i < a->ninputs && i < S_INPUTS_MAX; i++)
        if (!strcmp (a->keys [i], key))
            return a->values [i];
    return NULL;
}

static void
s_assert_input (const s_assign_t *a, const char *key, const char *want)
{
    const char *got = s_assign_input (a, key);
    if (!got || strcmp (got, want)) {
        for (size_t i = 0; i < a->ninputs && i < S_INPUTS_MAX; i++)
            fprintf (stderr, "  input %s = %s\n", a->keys [i], a->values [i]);
        fail_msg ("ASSIGN of %s: input %s = '%s', want '%s'", a->job_id, key,
                  got ? got : "(none)", want);
    }
}

/* ---- specs -------------------------------------------------------------------------- */

typedef struct {
    Ty__SubmitItem item;
    Ty__JobSpec    spec;
    Ty__NoopSpec   noop;
    Ty__TrainSpec  train;
    Ty__JobSpec__ResourcesEntry res [4];
    Ty__JobSpec__ResourcesEntry *resp [4];
    uint32_t       parent_items [4];
    char          *parents [4];
} s_item_t;

/* A noop (or train, with train = 1) item: step, pipeline, name. */
static Ty__SubmitItem *
s_item (s_item_t *it, int train, const char *step, const char *pipeline, const char *name)
{
    memset (it, 0, sizeof *it);
    ty__submit_item__init (&it->item);
    ty__job_spec__init (&it->spec);
    if (train) {
        ty__train_spec__init (&it->train);
        it->train.model_name = "m";
        it->spec.kind_case = TY__JOB_SPEC__KIND_TRAIN;
        it->spec.train = &it->train;
    }
    else {
        ty__noop_spec__init (&it->noop);
        it->spec.kind_case = TY__JOB_SPEC__KIND_NOOP;
        it->spec.noop = &it->noop;
    }
    it->spec.name = (char *) name;
    it->item.spec = &it->spec;
    it->item.step = (char *) (step ? step : "");
    it->item.pipeline = (char *) (pipeline ? pipeline : "");
    return &it->item;
}

static void
s_item_parent_item (s_item_t *it, uint32_t index)
{
    it->parent_items [it->item.n_parent_items] = index;
    it->item.parent_items = it->parent_items;
    it->item.n_parent_items++;
}

static void
s_item_parent (s_item_t *it, char *id)
{
    it->parents [it->item.n_parents] = id;
    it->item.parents = it->parents;
    it->item.n_parents++;
}

static void
s_item_resource (s_item_t *it, const char *key, const char *value)
{
    size_t n = it->spec.n_resources;
    ty__job_spec__resources_entry__init (&it->res [n]);
    it->res [n].key = (char *) key;
    it->res [n].value = (char *) value;
    it->resp [n] = &it->res [n];
    it->spec.resources = it->resp;
    it->spec.n_resources = n + 1;
}

static void
s_must_state (ty_testenv_t *env, const char *id, const char *state)
{
    if (ty_testenv_wait_state (env, id, state, S_WAIT_MS) != 0)
        fail_msg ("job %s never reached %s", id, state);
}

/* ---- tests ------------------------------------------------------------------------ */

static void
test_pipeline_broker_steps_list_spec (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 1);
    void *ctx = zmq_ctx_new ();
    s_client_t c;
    s_client_open (&c, ctx, ty_testenv_client_ep (env));

    /* a -> b -> c[fold=1] in pipeline p-one; d in p-two; e in none */
    s_item_t a, b, cc;
    Ty__SubmitItem *items [3] = {
        s_item (&a, 0, "a", "p-one", "first"),
        s_item (&b, 0, "b", "p-one", "second"),
        s_item (&cc, 0, "c[fold=1]", "p-one", "third"),
    };
    s_item_parent_item (&b, 0);
    s_item_parent_item (&cc, 1);
    char ids [3][TY_ID_LEN + 1];
    s_must_submit (&c, items, 3, ids);
    s_item_t d, e;
    Ty__SubmitItem *one [1] = { s_item (&d, 0, "d", "p-two", "other") };
    char idd [1][TY_ID_LEN + 1], ide [1][TY_ID_LEN + 1];
    s_must_submit (&c, one, 1, idd);
    one [0] = s_item (&e, 0, NULL, NULL, "plain");
    s_must_submit (&c, one, 1, ide);
    for (int i = 0; i < 3; i++)
        s_must_state (env, ids [i], "SUCCEEDED");
    s_must_state (env, idd [0], "SUCCEEDED");
    s_must_state (env, ide [0], "SUCCEEDED");

    /* stored */
    ty_it_assert_field (env, ids [2], "step", "c[fold=1]");
    ty_it_assert_field (env, ids [2], "pipeline", "p-one");
    char *plain = ty_testenv_job_field (env, ide [0], "step");
    assert_null (plain);            /* a plain job writes no step */
    redisReply *r = ty_testenv_must_redis (env, "SCARD ty:pipeline:p-one");
    assert_int_equal (r->integer, 3);
    freeReplyObject (r);
    r = ty_testenv_must_redis (env, "ZSCORE ty:pipelines p-one");
    assert_int_equal (r->type, REDIS_REPLY_STRING);
    assert_true (strtoll (r->str, NULL, 10) > 0);
    freeReplyObject (r);

    /* listed by pipeline: the three ended jobs, newest first, with steps */
    Ty__Envelope *rep = s_list (&c, "p-one");
    assert_int_equal (rep->job_list->n_jobs, 3);
    assert_string_equal (rep->job_list->jobs [0]->id, ids [2]);
    assert_string_equal (rep->job_list->jobs [0]->step, "c[fold=1]");
    assert_string_equal (rep->job_list->jobs [2]->step, "a");
    assert_string_equal (rep->job_list->jobs [2]->pipeline, "p-one");
    assert_string_equal (rep->job_list->jobs [2]->state, "SUCCEEDED");
    ty__envelope__free_unpacked (rep, NULL);
    rep = s_list (&c, "p-two");
    assert_int_equal (rep->job_list->n_jobs, 1);
    assert_string_equal (rep->job_list->jobs [0]->id, idd [0]);
    ty__envelope__free_unpacked (rep, NULL);
    rep = s_list (&c, "p-none");
    assert_int_equal (rep->job_list->n_jobs, 0);
    ty__envelope__free_unpacked (rep, NULL);
    rep = s_list (&c, "");          /* no filter: all five, steps shown */
    assert_int_equal (rep->job_list->n_jobs, 5);
    assert_string_equal (rep->job_list->jobs [0]->id, ide [0]);
    assert_string_equal (rep->job_list->jobs [0]->step, "");
    assert_string_equal (rep->job_list->jobs [1]->step, "d");
    ty__envelope__free_unpacked (rep, NULL);

    /* status: step, inputs (the noop's summary output, passed by b), spec */
    rep = s_status (&c, ids [2], 0);
    assert_string_equal (rep->job->step, "c[fold=1]");
    assert_int_equal (rep->job->spec.len, 0);
    const char *in = s_find (rep->job->inputs, rep->job->n_inputs, "b.summary");
    assert_non_null (in);
    assert_string_equal (in, "slept");
    assert_null (s_find (rep->job->inputs, rep->job->n_inputs, "a.summary"));
    ty__envelope__free_unpacked (rep, NULL);
    rep = s_status (&c, ids [1], 1);
    assert_true (rep->job->spec.len > 0);
    Ty__JobSpec *spec = ty__job_spec__unpack (NULL, rep->job->spec.len, rep->job->spec.data);
    assert_non_null (spec);
    assert_string_equal (spec->name, "second");
    assert_int_equal (spec->kind_case, TY__JOB_SPEC__KIND_NOOP);
    ty__job_spec__free_unpacked (spec, NULL);
    assert_string_equal (s_find (rep->job->inputs, rep->job->n_inputs, "a.summary"), "slept");
    ty__envelope__free_unpacked (rep, NULL);

    /* bad step names: refused, nothing written */
    char long_step [200];
    memset (long_step, 'x', sizeof long_step - 1);
    long_step [sizeof long_step - 1] = '\0';
    s_item_t bad;
    one [0] = s_item (&bad, 0, long_step, "p-bad", "bad");
    rep = s_submit (&c, one, 1);
    assert_int_equal (rep->cmd_case, TY__ENVELOPE__CMD_ERROR);
    assert_non_null (strstr (rep->error->message, "step"));
    ty__envelope__free_unpacked (rep, NULL);
    one [0] = s_item (&bad, 0, "tab\there", "p-bad", "bad");
    rep = s_submit (&c, one, 1);
    assert_int_equal (rep->cmd_case, TY__ENVELOPE__CMD_ERROR);
    ty__envelope__free_unpacked (rep, NULL);
    r = ty_testenv_must_redis (env, "EXISTS ty:pipeline:p-bad");
    assert_int_equal (r->integer, 0);
    freeReplyObject (r);

    s_client_close (&c);
    zmq_ctx_term (ctx);
    ty_testenv_passed (env);
}

static void
test_pipeline_broker_inputs_assign (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_testenv_must_start_redis (env, NULL);
    ty_testenv_must_start_broker (env, S_HEARTBEAT_MS, NULL);
    void *ctx = zmq_ctx_new ();
    s_client_t c;
    s_client_open (&c, ctx, ty_testenv_client_ep (env));
    s_worker_t w;
    s_worker_open (&w, ctx, ty_testenv_worker_ep (env), "raw1", "noop", NULL, 0);
    assert_int_equal (ty_testenv_wait_worker (env, "raw1", S_WAIT_MS), 0);

    s_item_t p, ch, plain;
    Ty__SubmitItem *items [2] = {
        s_item (&p, 0, "train[fold=2]", "p-in", "parent"),
        s_item (&ch, 0, "evaluate[fold=2]", "p-in", "child"),
    };
    s_item_parent_item (&ch, 0);
    char ids [2][TY_ID_LEN + 1];
    s_must_submit (&c, items, 2, ids);

    s_assign_t a;
    s_worker_must_assign (&w, &a);
    assert_string_equal (a.job_id, ids [0]);
    assert_int_equal (a.ninputs, 0);
    s_worker_metric (&w, &a, "loss", 0.25);
    s_worker_succeed (&w, &a, "model", "/models/m/1", "accuracy", 0.875);

    s_assign_t b;
    s_worker_must_assign (&w, &b);
    assert_string_equal (b.job_id, ids [1]);
    s_assert_input (&b, "train[fold=2].model", "/models/m/1");
    s_assert_input (&b, "train[fold=2].accuracy", "0.875");
    s_assert_input (&b, "train[fold=2].loss", "0.25");
    /* kept in the child's hash, and shown by status */
    Ty__Envelope *rep = s_status (&c, ids [1], 0);
    assert_string_equal (s_find (rep->job->inputs, rep->job->n_inputs, "train[fold=2].model"),
                         "/models/m/1");
    ty__envelope__free_unpacked (rep, NULL);
    s_worker_succeed (&w, &b, "gate", "passed", NULL, 0);
    s_must_state (env, ids [1], "SUCCEEDED");
    ty_it_assert_field (env, ids [0], "metric.accuracy", "0.875");

    /* A child submitted after its parents succeeded (pipeline retry): the
       inputs are read back from Redis. */
    s_item_t late;
    Ty__SubmitItem *one [1] = { s_item (&late, 0, "promote", "p-in", "late") };
    s_item_parent (&late, ids [0]);
    s_item_parent (&late, ids [1]);
    char idl [1][TY_ID_LEN + 1];
    s_must_submit (&c, one, 1, idl);
    s_assign_t l;
    s_worker_must_assign (&w, &l);
    assert_string_equal (l.job_id, idl [0]);
    s_assert_input (&l, "train[fold=2].model", "/models/m/1");
    s_assert_input (&l, "train[fold=2].accuracy", "0.875");
    s_assert_input (&l, "train[fold=2].loss", "0.25");
    s_assert_input (&l, "evaluate[fold=2].gate", "passed");
    s_worker_succeed (&w, &l, NULL, NULL, NULL, 0);
    s_must_state (env, idl [0], "SUCCEEDED");

    /* A plain job (no pipeline) gets no inputs, even after a step parent. */
    one [0] = s_item (&plain, 0, NULL, NULL, "plain");
    s_item_parent (&plain, ids [0]);
    s_must_submit (&c, one, 1, idl);
    s_worker_must_assign (&w, &l);
    assert_string_equal (l.job_id, idl [0]);
    assert_int_equal (l.ninputs, 0);
    s_worker_succeed (&w, &l, NULL, NULL, NULL, 0);
    s_must_state (env, idl [0], "SUCCEEDED");

    s_worker_close (&w);
    s_client_close (&c);
    zmq_ctx_term (ctx);
    ty_testenv_passed (env);
}

static void
test_pipeline_broker_inputs_after_restart (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_testenv_must_start_redis (env, NULL);
    ty_testenv_must_start_broker (env, S_HEARTBEAT_MS, NULL);
    void *ctx = zmq_ctx_new ();
    s_client_t c;
    s_client_open (&c, ctx, ty_testenv_client_ep (env));
    s_worker_t w;
    s_worker_open (&w, ctx, ty_testenv_worker_ep (env), "raw1", "noop", NULL, 0);
    assert_int_equal (ty_testenv_wait_worker (env, "raw1", S_WAIT_MS), 0);

    /* The child is a train job and no train worker is there yet: it waits
       QUEUED after its parent's success, with its inputs only in Redis. */
    s_item_t p, ch;
    Ty__SubmitItem *items [2] = {
        s_item (&p, 0, "prepare", "p-kill", "parent"),
        s_item (&ch, 1, "train", "p-kill", "child"),
    };
    s_item_parent_item (&ch, 0);
    char ids [2][TY_ID_LEN + 1];
    s_must_submit (&c, items, 2, ids);
    s_assign_t a;
    s_worker_must_assign (&w, &a);
    assert_string_equal (a.job_id, ids [0]);

    /* First kill: the parent is RUNNING and reported a metric; the new
       broker must still pass that metric on when the parent succeeds. */
    s_worker_metric (&w, &a, "rows", 1000);
    int64_t deadline = ty_testenv_now_ms () + S_WAIT_MS;
    char *m = NULL;
    while (!m && ty_testenv_now_ms () < deadline) {
        s_worker_pump (&w, 20, &a);
        m = ty_testenv_job_field (env, ids [0], "metric.rows");
    }
    assert_non_null (m);
    free (m);
    ty_testenv_kill_broker (env, SIGKILL);
    s_worker_close (&w);
    ty_testenv_must_restart_broker (env);
    s_worker_open_held (&w, ctx, ty_testenv_worker_ep (env), "raw1", "noop", NULL, 0,
                        ids [0], a.attempt);
    assert_int_equal (ty_testenv_wait_worker (env, "raw1", S_WAIT_MS), 0);
    s_worker_succeed (&w, &a, "version", "7", NULL, 0);
    s_must_state (env, ids [0], "SUCCEEDED");
    s_must_state (env, ids [1], "QUEUED");
    s_worker_close (&w);
    char *stored = ty_testenv_job_field (env, ids [1], "inputs");
    assert_non_null (stored);
    free (stored);

    /* Second kill: between the parent's success and the child's dispatch. */
    ty_testenv_kill_broker (env, SIGKILL);
    ty_testenv_must_restart_broker (env);
    s_worker_t t;
    s_worker_open (&t, ctx, ty_testenv_worker_ep (env), "raw2", "train", NULL, 0);
    s_assign_t b;
    s_worker_must_assign (&t, &b);
    assert_string_equal (b.job_id, ids [1]);
    s_assert_input (&b, "prepare.version", "7");
    s_assert_input (&b, "prepare.rows", "1000");
    s_worker_succeed (&t, &b, NULL, NULL, NULL, 0);
    s_must_state (env, ids [1], "SUCCEEDED");
    Ty__Envelope *rep = s_status (&c, ids [1], 0);
    assert_string_equal (rep->job->step, "train");
    assert_string_equal (s_find (rep->job->inputs, rep->job->n_inputs, "prepare.version"), "7");
    ty__envelope__free_unpacked (rep, NULL);

    s_worker_close (&t);
    s_client_close (&c);
    zmq_ctx_term (ctx);
    ty_testenv_passed (env);
}

/* CPU time (user + system) of a process in clock ticks. */
static long long
s_cpu_ticks (pid_t pid)
{
    char path [64], buf [1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    assert_non_null (f);
    size_t n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf [n] = '\0';
    char *p = strrchr (buf, ')');
    assert_non_null (p);
    unsigned long long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    int got = sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
    assert_int_equal (got, 2);
    return (long long) (ut + st);
}

static void
test_pipeline_broker_resources (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_testenv_must_start_redis (env, NULL);
    pid_t broker = ty_testenv_must_start_broker (env, S_HEARTBEAT_MS, NULL);
    void *ctx = zmq_ctx_new ();
    s_client_t c;
    s_client_open (&c, ctx, ty_testenv_client_ep (env));
    const char *small [] = { "threads=2", "memory_mb=4000" };
    s_worker_t w2;
    s_worker_open (&w2, ctx, ty_testenv_worker_ep (env), "small", "noop", small, 2);
    assert_int_equal (ty_testenv_wait_worker (env, "small", S_WAIT_MS), 0);

    /* big needs 4 threads, first in line; then a job that fits anyone */
    s_item_t big, any, pool;
    Ty__SubmitItem *one [1] = { s_item (&big, 0, NULL, NULL, "big") };
    s_item_resource (&big, "threads", "4");
    s_item_resource (&big, "memory_mb", "3000");
    char idb [1][TY_ID_LEN + 1], ida [1][TY_ID_LEN + 1], idp [1][TY_ID_LEN + 1];
    s_must_submit (&c, one, 1, idb);
    one [0] = s_item (&any, 0, NULL, NULL, "any");
    s_item_resource (&any, "threads", "2");
    s_must_submit (&c, one, 1, ida);
    s_assign_t a;
    s_worker_must_assign (&w2, &a);
    assert_string_equal (a.job_id, ida [0]);
    s_worker_succeed (&w2, &a, NULL, NULL, NULL, 0);
    s_must_state (env, ida [0], "SUCCEEDED");

    /* big waits QUEUED: the small worker is idle and gets nothing, and the
       broker does not spin on it meanwhile. */
    long long cpu0 = s_cpu_ticks (broker);
    int64_t t0 = ty_testenv_now_ms ();
    assert_int_equal (s_worker_pump (&w2, S_IDLE_MS, &a), 0);
    long long cpu1 = s_cpu_ticks (broker);
    int64_t t1 = ty_testenv_now_ms ();
    ty_it_assert_field (env, idb [0], "state", "QUEUED");
    double share = (double) (cpu1 - cpu0) / (double) sysconf (_SC_CLK_TCK)
                 / ((double) (t1 - t0) / 1000.0);
    fprintf (stderr, "resources: broker CPU %.1f %% while the job waits\n", share * 100);
    assert_true (share < 0.5);

    /* A text value must be equal: pool=gpu fits no one here. */
    const char *large [] = { "threads=4", "memory_mb=16000", "pool=cpu" };
    one [0] = s_item (&pool, 0, NULL, NULL, "pool");
    s_item_resource (&pool, "pool", "gpu");
    s_must_submit (&c, one, 1, idp);

    /* A threads=4 worker comes: big runs there. */
    s_worker_t w4;
    s_worker_open (&w4, ctx, ty_testenv_worker_ep (env), "large", "noop", large, 3);
    s_assign_t b;
    s_worker_must_assign (&w4, &b);
    assert_string_equal (b.job_id, idb [0]);
    ty_it_assert_field (env, idb [0], "worker", "large");
    s_worker_succeed (&w4, &b, NULL, NULL, NULL, 0);
    s_must_state (env, idb [0], "SUCCEEDED");
    assert_int_equal (s_worker_pump (&w4, S_IDLE_MS / 2, &b), 0);
    assert_int_equal (s_worker_pump (&w2, S_IDLE_MS / 2, &a), 0);
    ty_it_assert_field (env, idp [0], "state", "QUEUED");

    /* bad resources are refused at submit */
    s_item_t bad;
    one [0] = s_item (&bad, 0, NULL, NULL, "bad");
    s_item_resource (&bad, "", "1");
    Ty__Envelope *rep = s_submit (&c, one, 1);
    assert_int_equal (rep->cmd_case, TY__ENVELOPE__CMD_ERROR);
    ty__envelope__free_unpacked (rep, NULL);

    s_worker_close (&w2);
    s_worker_close (&w4);
    s_client_close (&c);
    zmq_ctx_term (ctx);
    ty_testenv_passed (env);
}

TY_IT_SETUP ("pipeline_broker")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_pipeline_broker_steps_list_spec, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_pipeline_broker_inputs_assign, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_pipeline_broker_inputs_after_restart, s_setup,
                                         ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_pipeline_broker_resources, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

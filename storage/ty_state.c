/*  ty_state: see ty_state.h. */
#include "ty_state.h"
#include "ty_error.h"
#include "ty_hash.h"
#include "ty_log.h"
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_ZSET = 0, S_SET = 1 };

typedef struct {
    int     kind;        /* S_ZSET or S_SET */
    int     add;         /* 1 add, 0 remove */
    double  score;
    char    key [96];    /* suffix after the prefix */
    char    member [64];
    int     live;        /* still the last change of (key, member) */
    int     first_add;   /* the first change of (key, member) this turn was an add */
} s_member_op;

struct _ty_state_t {
    ty_redis_t *redis;
    char        prefix [64];
    char        epoch_key [96];
    ty_argv_t  *cmds;
    size_t      ncmds, ccmds;
    s_member_op *ops;
    size_t      nops, cops;
    ty_argv_t   tmp;
    ty_resp_t   resp;
    /* Job id -> 1 + index of this turn's HSET of that job hash, so later
       HSETs of the job in the turn join it (one command, not one per
       transition). Forgotten whenever a caller-built command is recorded:
       that one might touch the hash, and must stay between the two. */
    ty_hash_t  *hsets;
    size_t      inflight;    /* commands of the transaction sent, not yet answered */
    size_t      untrimmed;   /* events added since the last XTRIM */
};

static int
s_grow (void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return TY_OK;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *p = realloc (*arr, n * elem);
    if (!p)
        return TY_ENOMEM;
    memset ((char *) p + *cap * elem, 0, (n - *cap) * elem);
    *arr = p;
    *cap = n;
    return TY_OK;
}

ty_state_t *
ty_state_new (ty_redis_t *redis, const char *prefix)
{
    ty_state_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->redis = redis;
    snprintf (self->prefix, sizeof self->prefix, "%s", prefix);
    snprintf (self->epoch_key, sizeof self->epoch_key, "%sbroker:epoch", prefix);
    ty_argv_init (&self->tmp);
    return self;
}

void
ty_state_destroy (ty_state_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_state_t *self = *self_p;
    for (size_t i = 0; i < self->ccmds; i++)
        ty_argv_free (&self->cmds [i]);
    free (self->cmds);
    free (self->ops);
    ty_argv_free (&self->tmp);
    ty_resp_free (&self->resp);
    ty_hash_destroy (&self->hsets);
    free (self);
    *self_p = NULL;
}

const char *
ty_state_prefix (ty_state_t *self)
{
    return self->prefix;
}

int
ty_state_claim (ty_state_t *self, int64_t *epoch_out)
{
    redisContext *c = ty_redis_ctx (self->redis);
    if (!c)
        return TY_ESTORE;
    redisReply *r = redisCommand (c, "INCR %s", self->epoch_key);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (r)
            freeReplyObject (r);
        ty_redis_fail (self->redis, "INCR broker epoch failed");
        return TY_ESTORE;
    }
    long long epoch = r->integer;
    freeReplyObject (r);
    /* Watched from now on, between turns too (commit re-arms it), so any
       other broker's claim makes our next EXEC fail. */
    r = redisCommand (c, "WATCH %s", self->epoch_key);
    if (r)
        freeReplyObject (r);
    r = redisCommand (c, "GET %s", self->epoch_key);
    if (!r) {
        ty_redis_fail (self->redis, "GET broker epoch failed");
        return TY_ESTORE;
    }
    long long now = r->type == REDIS_REPLY_STRING ? strtoll (r->str, NULL, 10) : -1;
    freeReplyObject (r);
    if (now != epoch)
        return TY_ESTALE;
    if (epoch_out)
        *epoch_out = epoch;
    return TY_OK;
}

/* ---- recording ------------------------------------------------------------ */

static ty_argv_t *
s_cmd (ty_state_t *self)
{
    if (s_grow ((void **) &self->cmds, &self->ccmds, self->ncmds + 1, sizeof *self->cmds))
        return NULL;
    ty_argv_t *a = &self->cmds [self->ncmds++];
    ty_argv_reset (a);
    return a;
}

/* Forgets the HSETs open for joining (see hsets). */
static void
s_hsets_forget (ty_state_t *self)
{
    if (self->hsets && ty_hash_size (self->hsets) > 0)
        ty_hash_destroy (&self->hsets);
}

static ty_argv_t *
s_record (ty_state_t *self)
{
    ty_argv_t *a = s_cmd (self);
    if (!a) {
        /* Out of memory: hand back a scratch vector that is never sent. */
        ty_argv_reset (&self->tmp);
        self->tmp.oom = 1;
        return &self->tmp;
    }
    return a;
}

ty_argv_t *
ty_state_raw (ty_state_t *self)
{
    s_hsets_forget (self);
    return s_record (self);
}

void
ty_state_hset (ty_state_t *self, const char *id, size_t nfields,
               const char *const *fields, const char *const *values, const size_t *lens)
{
    /* A job's hash written again in the same turn (submitted and assigned,
       or a child released, queued and assigned): its fields are appended
       to the turn's earlier HSET of it. HSET applies its pairs in order, so
       a field given twice ends with the later value, as with two commands;
       the transaction makes the move invisible to readers. */
    ty_argv_t *a = NULL;
    if (!self->hsets)
        self->hsets = ty_hash_new ();
    uintptr_t at = self->hsets ? (uintptr_t) ty_hash_get (self->hsets, id) : 0;
    if (at > 0 && at <= self->ncmds)
        a = &self->cmds [at - 1];
    else {
        a = s_record (self);
        if (!a->oom) {
            char key [128];
            snprintf (key, sizeof key, "%sjob:%s", self->prefix, id);
            ty_argv_str (a, "HSET");
            ty_argv_str (a, key);
            if (self->hsets
            &&  ty_hash_put (self->hsets, id, (void *) (uintptr_t) self->ncmds) != TY_OK)
                s_hsets_forget (self);      /* no joining: still correct */
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        ty_argv_str (a, fields [i]);
        if (lens)
            ty_argv_bin (a, values [i], lens [i]);
        else
            ty_argv_str (a, values [i]);
    }
}

void
ty_state_hincr (ty_state_t *self, const char *id, const char *field, int64_t by)
{
    ty_argv_t *a = ty_state_raw (self);     /* after any HSET of the job: ordered */
    char key [128];
    snprintf (key, sizeof key, "%sjob:%s", self->prefix, id);
    ty_argv_str (a, "HINCRBY");
    ty_argv_str (a, key);
    ty_argv_str (a, field);
    ty_argv_int (a, by);
}

void
ty_state_event (ty_state_t *self, size_t npairs, const char *const *pairs)
{
    /* ty:events is no job hash: HSETs stay open for joining across it */
    ty_argv_t *a = s_record (self);
    char key [96];
    snprintf (key, sizeof key, "%sevents", self->prefix);
    ty_argv_str (a, "XADD");
    ty_argv_str (a, key);
    ty_argv_str (a, "*");
    /* Empty values are left out: every argument costs Redis a parse and an
       AOF write, and three events per job make them a good part of it. */
    size_t nset = 0;
    for (size_t i = 0; i < npairs; i++)
        if (pairs [2 * i + 1] && *pairs [2 * i + 1]) {
            ty_argv_str (a, pairs [2 * i]);
            ty_argv_str (a, pairs [2 * i + 1]);
            nset++;
        }
    if (nset == 0) {            /* XADD needs one pair */
        ty_argv_str (a, pairs [0]);
        ty_argv_str (a, "");
    }
    self->untrimmed++;
}

/* The events stream is capped by one XTRIM per TY_STATE_TRIM_EVERY events
 * instead of MAXLEN on each XADD (three arguments fewer per event). */
static void
s_trim_events (ty_state_t *self)
{
    if (self->untrimmed < TY_STATE_TRIM_EVERY)
        return;
    ty_argv_t *a = s_cmd (self);
    if (!a)
        return;                 /* the next commit trims */
    char key [96];
    snprintf (key, sizeof key, "%sevents", self->prefix);
    ty_argv_str (a, "XTRIM");
    ty_argv_str (a, key);
    ty_argv_str (a, "MAXLEN");
    ty_argv_str (a, "~");
    ty_argv_int (a, TY_STATE_EVENTS_MAX);
    self->untrimmed = 0;
}

static void
s_member (ty_state_t *self, int kind, int add, const char *set, double score,
          const char *member)
{
    if (s_grow ((void **) &self->ops, &self->cops, self->nops + 1, sizeof *self->ops))
        return;
    s_member_op *op = &self->ops [self->nops++];
    op->kind = kind;
    op->add = add;
    op->score = score;
    op->live = 1;
    snprintf (op->key, sizeof op->key, "%s", set);
    snprintf (op->member, sizeof op->member, "%s", member);
}

void ty_state_zadd (ty_state_t *self, const char *set, double score, const char *member)
{ s_member (self, S_ZSET, 1, set, score, member); }
void ty_state_zrem (ty_state_t *self, const char *set, const char *member)
{ s_member (self, S_ZSET, 0, set, 0, member); }
void ty_state_sadd (ty_state_t *self, const char *set, const char *member)
{ s_member (self, S_SET, 1, set, 0, member); }
void ty_state_srem (ty_state_t *self, const char *set, const char *member)
{ s_member (self, S_SET, 0, set, 0, member); }

size_t
ty_state_pending (ty_state_t *self)
{
    return self->ncmds + self->nops;
}

void
ty_state_discard (ty_state_t *self)
{
    self->ncmds = 0;
    self->nops = 0;
    s_hsets_forget (self);
}

/* ---- commit ----------------------------------------------------------------- */

/* Marks every op that a later op on the same (key, member) overrides. */
static void
s_net_effect (ty_state_t *self)
{
    if (self->nops < 2)
        return;
    ty_hash_t *last = ty_hash_new ();
    if (!last)
        return;             /* all ops stay live, applied in order below */
    char k [200];
    for (size_t i = 0; i < self->nops; i++) {
        s_member_op *op = &self->ops [i];
        snprintf (k, sizeof k, "%s\n%s", op->key, op->member);
        s_member_op *prev = ty_hash_get (last, k);
        if (prev) {
            prev->live = 0;
            op->first_add = prev->first_add;
        }
        else
            op->first_add = op->add;
        ty_hash_put (last, k, op);
    }
    /* Added and removed in the same turn (a job queued and assigned, or
       assigned and finished, in one turn): no command at all. That needs
       the member to have been absent before the turn, which holds for the
       job-state sets (a job enters a queue, the leases or the active set
       once per stay, and only by a transition from outside it), not for
       e.g. the workers set, which is re-added on every heartbeat. */
    for (size_t i = 0; i < self->nops; i++) {
        s_member_op *op = &self->ops [i];
        if (op->live && !op->add && op->first_add
        &&  (!strncmp (op->key, "queue:", 6) || !strcmp (op->key, "leases")
             || !strcmp (op->key, "active")))
            op->live = 0;
    }
    ty_hash_destroy (&last);
}

/* Groups live ops by (kind, add, key) into one command each. Ops of one
 * (key, member) are at most one live op, so the order of groups is free. */
static int
s_emit_members (ty_state_t *self)
{
    size_t done = 0;
    char *used = calloc (self->nops ? self->nops : 1, 1);
    if (!used)
        return TY_ENOMEM;
    for (size_t i = 0; i < self->nops; i++) {
        s_member_op *op = &self->ops [i];
        if (!op->live || used [i])
            continue;
        ty_argv_t *a = s_cmd (self);
        if (!a) {
            free (used);
            return TY_ENOMEM;
        }
        char key [160];
        snprintf (key, sizeof key, "%s%s", self->prefix, op->key);
        ty_argv_str (a, op->kind == S_ZSET ? (op->add ? "ZADD" : "ZREM")
                                           : (op->add ? "SADD" : "SREM"));
        ty_argv_str (a, key);
        for (size_t j = i; j < self->nops; j++) {
            s_member_op *o = &self->ops [j];
            if (!o->live || used [j] || o->kind != op->kind || o->add != op->add
            ||  strcmp (o->key, op->key))
                continue;
            if (o->kind == S_ZSET && o->add)
                ty_argv_dbl (a, o->score);
            ty_argv_str (a, o->member);
            used [j] = 1;
            done++;
        }
    }
    free (used);
    (void) done;
    return TY_OK;
}

int
ty_state_send (ty_state_t *self)
{
    if (self->inflight)
        return TY_EINVAL;           /* one transaction in flight at a time */
    if (!ty_redis_ok (self->redis)) {
        ty_state_discard (self);
        return TY_ESTORE;
    }
    s_net_effect (self);
    if (self->ncmds > 0)
        s_trim_events (self);
    if (s_emit_members (self) != TY_OK) {
        ty_state_discard (self);
        return TY_ENOMEM;
    }
    size_t n = self->ncmds;
    if (n == 0) {
        ty_state_discard (self);
        return TY_OK;
    }
    /* The whole transaction is encoded once and appended in one piece. */
    ty_resp_t *b = &self->resp;
    ty_resp_reset (b);
    ty_argv_t *a = &self->tmp;
    ty_argv_reset (a);
    ty_argv_str (a, "MULTI");
    ty_resp_add (b, a);
    for (size_t i = 0; i < n; i++)
        ty_resp_add (b, &self->cmds [i]);
    ty_argv_reset (a);
    ty_argv_str (a, "EXEC");
    ty_resp_add (b, a);
    ty_argv_reset (a);
    ty_argv_str (a, "WATCH");
    ty_argv_str (a, self->epoch_key);
    ty_resp_add (b, a);
    int rc = ty_redis_append_resp (self->redis, b);
    if (b->cap > (64u << 20))
        ty_resp_free (b);           /* a huge turn: do not keep its memory */
    ty_state_discard (self);
    if (rc != TY_OK)
        return rc == TY_ENOMEM ? TY_ENOMEM : TY_ESTORE;
    rc = ty_redis_flush (self->redis);
    if (rc != TY_OK)
        return rc;
    self->inflight = n;
    return TY_OK;
}

int
ty_state_inflight (ty_state_t *self)
{
    return self->inflight > 0;
}

int
ty_state_wait (ty_state_t *self)
{
    size_t n = self->inflight;
    if (n == 0)
        return TY_OK;
    self->inflight = 0;
    /* MULTI, n x QUEUED, EXEC, WATCH */
    int result = TY_OK;
    for (size_t i = 0; i < n + 3; i++) {
        redisReply *r = ty_redis_reply (self->redis);
        if (!r)
            return TY_ESTORE;
        if (i == n + 1) {
            if (r->type == REDIS_REPLY_NIL)
                result = TY_ESTALE;      /* the epoch moved: another broker */
            else
            if (r->type == REDIS_REPLY_ARRAY) {
                for (size_t k = 0; k < r->elements; k++)
                    if (r->element [k]->type == REDIS_REPLY_ERROR)
                        ty_error ("redis rejected command %zu of a turn: %s",
                                  k, r->element [k]->str);
            }
            else
            if (r->type == REDIS_REPLY_ERROR) {
                ty_error ("EXEC: %s", r->str);
                result = TY_ESTORE;
            }
        }
        else
        if (r->type == REDIS_REPLY_ERROR && i > 0 && i <= n)
            ty_error ("redis refused command %zu of %zu: %s", i - 1, n, r->str);
        freeReplyObject (r);
    }
    if (result == TY_ESTORE)
        ty_redis_fail (self->redis, "EXEC failed");
    return result;
}

int
ty_state_commit (ty_state_t *self)
{
    int rc = ty_state_wait (self);
    if (rc != TY_OK) {
        ty_state_discard (self);
        return rc;
    }
    rc = ty_state_send (self);
    if (rc != TY_OK)
        return rc;
    return ty_state_wait (self);
}

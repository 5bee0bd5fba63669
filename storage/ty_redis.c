#include "ty_redis.h"
#include "ty_error.h"
#include "ty_log.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _ty_redis_t {
    char  host [256];
    int   port;
    char  path [256];     /* unix socket, if set */
    redisContext *ctx;
    char  errstr [256];
};

ty_redis_t *
ty_redis_new (const char *url)
{
    ty_redis_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (!strncmp (url, "unix://", 7) && url [7])
        snprintf (self->path, sizeof self->path, "%s", url + 7);
    else
    if (!strncmp (url, "redis://", 8)) {
        const char *hp = url + 8;
        const char *colon = strrchr (hp, ':');
        size_t hlen = colon ? (size_t) (colon - hp) : strlen (hp);
        if (hlen == 0 || hlen >= sizeof self->host) {
            free (self);
            return NULL;
        }
        memcpy (self->host, hp, hlen);
        self->host [hlen] = '\0';
        self->port = 6379;
        if (colon) {
            char *end;
            long port = strtol (colon + 1, &end, 10);
            if (*end && *end != '/') {
                free (self);
                return NULL;
            }
            if (port <= 0 || port > 65535) {
                free (self);
                return NULL;
            }
            self->port = (int) port;
        }
    }
    else {
        free (self);
        return NULL;
    }
    snprintf (self->errstr, sizeof self->errstr, "not connected");
    return self;
}

void
ty_redis_destroy (ty_redis_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->ctx)
        redisFree ((*self_p)->ctx);
    free (*self_p);
    *self_p = NULL;
}

void
ty_redis_fail (ty_redis_t *self, const char *why)
{
    if (self->ctx) {
        snprintf (self->errstr, sizeof self->errstr, "%s",
                  why ? why : (self->ctx->err ? self->ctx->errstr : "connection lost"));
        redisFree (self->ctx);
        self->ctx = NULL;
    }
}

int
ty_redis_connect (ty_redis_t *self)
{
    if (self->ctx) {
        redisFree (self->ctx);
        self->ctx = NULL;
    }
    struct timeval tv = { TY_REDIS_TIMEOUT_MS / 1000, (TY_REDIS_TIMEOUT_MS % 1000) * 1000 };
    redisContext *c = self->path [0]
                    ? redisConnectUnixWithTimeout (self->path, tv)
                    : redisConnectWithTimeout (self->host, self->port, tv);
    if (!c || c->err) {
        if (self->path [0])
            snprintf (self->errstr, sizeof self->errstr, "redis %.100s: %.120s",
                      self->path, c ? c->errstr : "out of memory");
        else
            snprintf (self->errstr, sizeof self->errstr, "redis %.100s:%d: %.120s",
                      self->host, self->port, c ? c->errstr : "out of memory");
        if (c)
            redisFree (c);
        return TY_ESTORE;
    }
    redisSetTimeout (c, tv);
    /* TCP only: hiredis sets TCP_KEEPIDLE too, which fails on a unix
       socket and leaves the context in error. */
    if (!self->path [0] && redisEnableKeepAlive (c) != REDIS_OK) {
        snprintf (self->errstr, sizeof self->errstr, "redis %.100s:%d: keepalive: %.120s",
                  self->host, self->port, c->errstr);
        redisFree (c);
        return TY_ESTORE;
    }
    self->ctx = c;
    self->errstr [0] = '\0';
    return TY_OK;
}

int
ty_redis_ok (ty_redis_t *self)
{
    return self->ctx != NULL;
}

const char *
ty_redis_errstr (ty_redis_t *self)
{
    return self->errstr;
}

redisContext *
ty_redis_ctx (ty_redis_t *self)
{
    return self->ctx;
}

/* ---- argument vectors ---------------------------------------------------- */

void
ty_argv_init (ty_argv_t *a)
{
    memset (a, 0, sizeof *a);
}

void
ty_argv_reset (ty_argv_t *a)
{
    a->argc = 0;
    a->arena_used = 0;
    a->oom = 0;
}

void
ty_argv_free (ty_argv_t *a)
{
    free (a->argv);
    free (a->lens);
    free (a->arena);
    memset (a, 0, sizeof *a);
}

/* Arguments point into the arena by offset until the command is sent,
   because the arena may move when it grows. */
void
ty_argv_bin (ty_argv_t *a, const void *data, size_t len)
{
    if (a->oom)
        return;
    if (a->argc == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        char **argv = realloc (a->argv, cap * sizeof *argv);
        if (!argv) { a->oom = 1; return; }
        a->argv = argv;
        size_t *lens = realloc (a->lens, cap * sizeof *lens);
        if (!lens) { a->oom = 1; return; }
        a->lens = lens;
        a->cap = cap;
    }
    if (a->arena_used + len + 1 > a->arena_cap) {
        size_t cap = a->arena_cap ? a->arena_cap * 2 : 4096;
        while (cap < a->arena_used + len + 1)
            cap *= 2;
        char *arena = realloc (a->arena, cap);
        if (!arena) { a->oom = 1; return; }
        a->arena = arena;
        a->arena_cap = cap;
    }
    if (len)
        memcpy (a->arena + a->arena_used, data, len);
    a->arena [a->arena_used + len] = '\0';
    a->argv [a->argc] = (char *) (uintptr_t) a->arena_used;
    a->lens [a->argc] = len;
    a->argc++;
    a->arena_used += len + 1;
}

void
ty_argv_str (ty_argv_t *a, const char *s)
{
    ty_argv_bin (a, s ? s : "", s ? strlen (s) : 0);
}

/* Decimal digits of v into the end of buf; returns where they start.
   (snprintf's format parsing showed up in profiles of the broker.) */
static char *
s_itoa (uint64_t v, char *end)
{
    do {
        *--end = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* v in decimal, with its sign, into the end of buf. */
static char *
s_int_text (int64_t v, char *end)
{
    char *p = s_itoa (v < 0 ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v, end);
    if (v < 0)
        *--p = '-';
    return p;
}

void
ty_argv_int (ty_argv_t *a, int64_t v)
{
    char buf [24];
    char *end = buf + sizeof buf;
    char *p = s_int_text (v, end);
    ty_argv_bin (a, p, (size_t) (end - p));
}

size_t
ty_dbl_text (char *buf, size_t len, double v)
{
    if (len == 0)
        return 0;
    /* Queue and lease scores are whole numbers below 2^53: written as
       integers they read back the same and skip printf's float path, a
       few per cent of the broker's time in profiles. */
    if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double) (int64_t) v) {
        char digits [24];
        char *end = digits + sizeof digits;
        char *p = s_int_text ((int64_t) v, end);
        size_t n = (size_t) (end - p) < len ? (size_t) (end - p) : len - 1;
        memcpy (buf, p, n);
        buf [n] = '\0';
        return n;
    }
    int n = snprintf (buf, len, "%.17g", v);
    return n < 0 ? 0 : (size_t) n < len ? (size_t) n : len - 1;
}

void
ty_argv_dbl (ty_argv_t *a, double v)
{
    char buf [40];
    size_t n = ty_dbl_text (buf, sizeof buf, v);
    ty_argv_bin (a, buf, n);
}

void
ty_argv_set_int (ty_argv_t *a, size_t i, int64_t v)
{
    /* Counts are patched in place; reserve space by pushing a wide number
       first (ty_argv_int of a placeholder of the same width is not needed:
       we rewrite into a fresh slot and point the argument at it). */
    if (a->oom || i >= a->argc)
        return;
    size_t argc = a->argc;
    ty_argv_int (a, v);
    if (a->oom)
        return;
    a->argv [i] = a->argv [argc];
    a->lens [i] = a->lens [argc];
    a->argc = argc;
}

static int
s_append_argv (ty_redis_t *self, size_t pre, const char **pre_argv,
               const size_t *pre_lens, const ty_argv_t *a)
{
    if (!self->ctx)
        return TY_ESTORE;
    if (a->oom)
        return TY_ENOMEM;
    size_t argc = pre + a->argc;
    const char **argv = malloc (argc * sizeof *argv);
    size_t *lens = malloc (argc * sizeof *lens);
    if (!argv || !lens) {
        free (argv);
        free (lens);
        return TY_ENOMEM;
    }
    for (size_t i = 0; i < pre; i++) {
        argv [i] = pre_argv [i];
        lens [i] = pre_lens [i];
    }
    for (size_t i = 0; i < a->argc; i++) {
        argv [pre + i] = a->arena + (uintptr_t) a->argv [i];
        lens [pre + i] = a->lens [i];
    }
    int rc = redisAppendCommandArgv (self->ctx, (int) argc, argv, lens);
    free (argv);
    free (lens);
    if (rc != REDIS_OK) {
        ty_redis_fail (self, NULL);
        return TY_ESTORE;
    }
    return TY_OK;
}

int
ty_redis_append (ty_redis_t *self, const ty_argv_t *a)
{
    return s_append_argv (self, 0, NULL, NULL, a);
}

redisReply *
ty_redis_reply (ty_redis_t *self)
{
    if (!self->ctx)
        return NULL;
    void *reply = NULL;
    if (redisGetReply (self->ctx, &reply) != REDIS_OK || !reply) {
        ty_redis_fail (self, NULL);
        return NULL;
    }
    return reply;
}

redisReply *
ty_redis_command (ty_redis_t *self, const ty_argv_t *a)
{
    if (ty_redis_append (self, a) != TY_OK)
        return NULL;
    return ty_redis_reply (self);
}

/* ---- RESP encoding ------------------------------------------------------------ */

void
ty_resp_reset (ty_resp_t *b)
{
    b->len = 0;
    b->oom = 0;
}

void
ty_resp_free (ty_resp_t *b)
{
    free (b->data);
    memset (b, 0, sizeof *b);
}

static int
s_resp_room (ty_resp_t *b, size_t more)
{
    if (b->oom)
        return -1;
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 65536;
    while (cap < b->len + more)
        cap *= 2;
    char *d = realloc (b->data, cap);
    if (!d) {
        b->oom = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

/* "<c><n>\r\n" */
static void
s_resp_head (ty_resp_t *b, char c, size_t n)
{
    char buf [24];
    char *end = buf + sizeof buf;
    char *p = s_itoa (n, end);
    b->data [b->len++] = c;
    memcpy (b->data + b->len, p, (size_t) (end - p));
    b->len += (size_t) (end - p);
    b->data [b->len++] = '\r';
    b->data [b->len++] = '\n';
}

void
ty_resp_add (ty_resp_t *b, const ty_argv_t *a)
{
    if (a->oom) {
        b->oom = 1;
        return;
    }
    size_t need = 24;
    for (size_t i = 0; i < a->argc; i++)
        need += a->lens [i] + 26;
    if (s_resp_room (b, need))
        return;
    s_resp_head (b, '*', a->argc);
    for (size_t i = 0; i < a->argc; i++) {
        s_resp_head (b, '$', a->lens [i]);
        memcpy (b->data + b->len, a->arena + (uintptr_t) a->argv [i], a->lens [i]);
        b->len += a->lens [i];
        b->data [b->len++] = '\r';
        b->data [b->len++] = '\n';
    }
}

int
ty_redis_append_resp (ty_redis_t *self, const ty_resp_t *b)
{
    if (!self->ctx)
        return TY_ESTORE;
    if (b->oom)
        return TY_ENOMEM;
    if (b->len == 0)
        return TY_OK;
    if (redisAppendFormattedCommand (self->ctx, b->data, b->len) != REDIS_OK) {
        ty_redis_fail (self, NULL);
        return TY_ESTORE;
    }
    return TY_OK;
}

int
ty_redis_flush (ty_redis_t *self)
{
    if (!self->ctx)
        return TY_ESTORE;
    int done = 0;
    while (!done)
        if (redisBufferWrite (self->ctx, &done) != REDIS_OK) {
            ty_redis_fail (self, NULL);
            return TY_ESTORE;
        }
    return TY_OK;
}

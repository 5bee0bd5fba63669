/*  ty_redis: one hiredis connection and an argument builder for pipelined
 *  commands.
 *
 *  After any I/O error the connection is discarded (hiredis contexts cannot
 *  be reused): ty_redis_ok() turns 0 and the owner calls ty_redis_connect()
 *  again, with backoff. Not thread-safe. */
#ifndef TY_REDIS_H
#define TY_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define TY_REDIS_TIMEOUT_MS 2000   /* connect and command timeout */

typedef struct _ty_redis_t ty_redis_t;

/* url: redis://host:port or unix:///path/to.sock. NULL if the url is bad. */
ty_redis_t *ty_redis_new (const char *url);
void ty_redis_destroy (ty_redis_t **self_p);

/* (Re)connects. TY_OK or TY_ESTORE (see errstr). */
int ty_redis_connect (ty_redis_t *self);
int ty_redis_ok (ty_redis_t *self);
/* The last error, borrowed. */
const char *ty_redis_errstr (ty_redis_t *self);
/* Marks the connection broken with a message (e.g. after a bad reply). */
void ty_redis_fail (ty_redis_t *self, const char *why);
/* The live hiredis context, or NULL when not connected. */
redisContext *ty_redis_ctx (ty_redis_t *self);

/* ---- argument vectors for pipelined commands ---------------------------- */
typedef struct {
    char  **argv;
    size_t *lens;
    size_t  argc;
    size_t  cap;
    char   *arena;        /* copies of the bytes, so callers may free theirs */
    size_t  arena_used;
    size_t  arena_cap;
    int     oom;
} ty_argv_t;

void ty_argv_init  (ty_argv_t *a);
void ty_argv_reset (ty_argv_t *a);         /* empty, keeps the memory */
void ty_argv_free  (ty_argv_t *a);
void ty_argv_bin   (ty_argv_t *a, const void *data, size_t len);
void ty_argv_str   (ty_argv_t *a, const char *s);   /* NULL = "" */
void ty_argv_int   (ty_argv_t *a, int64_t v);
void ty_argv_dbl   (ty_argv_t *a, double v);
/* v as ty_argv_dbl writes it (a whole number as an integer, else %.17g)
 * into buf (40 bytes are always enough); returns its length. */
size_t ty_dbl_text (char *buf, size_t len, double v);
/* Replaces argument i (already pushed) with an integer: for counts known late. */
void ty_argv_set_int (ty_argv_t *a, size_t i, int64_t v);

/* Appends any command. */
int ty_redis_append (ty_redis_t *self, const ty_argv_t *a);

/* A growable byte buffer of RESP-encoded commands, for many commands in one
 * append (hiredis's own formatting costs more than the commands at high rates). */
typedef struct {
    char  *data;
    size_t len;
    size_t cap;
    int    oom;
} ty_resp_t;

void ty_resp_reset (ty_resp_t *b);
void ty_resp_free (ty_resp_t *b);
/* Encodes one command (the arguments of a) at the end of b. */
void ty_resp_add (ty_resp_t *b, const ty_argv_t *a);
/* Writes whatever the pipeline holds to the socket now (no reply read).
 * TY_OK or TY_ESTORE. */
int  ty_redis_flush (ty_redis_t *self);
/* Appends the encoded commands to the pipeline. TY_OK, TY_ENOMEM or TY_ESTORE. */
int  ty_redis_append_resp (ty_redis_t *self, const ty_resp_t *b);
/* Reads the next pipelined reply. NULL on I/O error (connection then failed).
 * Caller frees with freeReplyObject. */
redisReply *ty_redis_reply (ty_redis_t *self);
/* One command, synchronously: append + reply. */
redisReply *ty_redis_command (ty_redis_t *self, const ty_argv_t *a);

#endif

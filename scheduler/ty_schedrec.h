/*  ty_schedrec: what schedule and trigger records in Redis share: name
 *  checks, reading a hash into fields, running a small Lua script (each
 *  change of a record is one script, so it is atomic), and the `sets`
 *  field (a JSON array of "key=value" strings, readable with redis-cli).
 *
 *  Not thread-safe (a ty_redis_t is not). Every function that talks to
 *  Redis returns TY_OK, TY_ESTORE (connection lost or a Redis error; see
 *  ty_redis_errstr), TY_ENOTFOUND or TY_ENOMEM.
 */
#ifndef TY_SCHEDREC_H
#define TY_SCHEDREC_H

#include <stddef.h>
#include <stdint.h>
#include "ty_redis.h"

#define TY_SCHEDREC_NAME_MAX   64     /* as dataset and model names */
#define TY_SCHEDREC_KEY_MAX    256    /* prefix + kind + name + suffix */
#define TY_SCHEDREC_PREFIX     "ty:"  /* the broker's default key prefix */
#define TY_SCHEDREC_SETS_MAX   64     /* --set overrides per record */

/* [A-Za-z0-9_.-]{1,64}, not starting with '.'. TY_OK or TY_EINVAL (*why static). */
int ty_schedrec_name_check (const char *name, const char **why);

/* A hash read with HGETALL: parallel arrays of NUL-terminated copies. */
typedef struct {
    char  **keys;
    char  **values;
    size_t  n;
} ty_schedrec_hash_t;

/* HGETALL key into *h (caller frees with ty_schedrec_hash_free).
 * TY_ENOTFOUND when the key does not exist. */
int ty_schedrec_hgetall (ty_redis_t *redis, const char *key, ty_schedrec_hash_t *h);
void ty_schedrec_hash_free (ty_schedrec_hash_t *h);
/* The value of field, borrowed from h; NULL if absent. */
const char *ty_schedrec_get (const ty_schedrec_hash_t *h, const char *field);
/* The value as an integer; dflt if absent or not a number. */
int64_t ty_schedrec_get_int (const ty_schedrec_hash_t *h, const char *field, int64_t dflt);

/* EVAL script with keys and args; *result (may be NULL) = the integer reply
 * (0 for nil). */
int ty_schedrec_eval (ty_redis_t *redis, const char *script,
                      const char *const *keys, size_t nkeys,
                      const char *const *args, size_t nargs, long long *result);

/* Creates a record: the hash (args: name, then field/value pairs; nargs
 * strings in all) and name in its set, in one script, unless the hash
 * exists. TY_OK, TY_ESTATE (it exists) or a Redis error. */
int ty_schedrec_add (ty_redis_t *redis, const char *hash, const char *set,
                     const char *const *args, size_t nargs);
/* Deletes the record's hash and takes name out of its set, in one script.
 * TY_OK, TY_ENOTFOUND (no such record) or a Redis error. */
int ty_schedrec_remove (ty_redis_t *redis, const char *hash, const char *set,
                        const char *name);
/* HSETs field/value pairs (nargs strings) on an existing record only.
 * TY_OK, TY_ENOTFOUND or a Redis error. */
int ty_schedrec_update (ty_redis_t *redis, const char *hash, const char *const *args,
                        size_t nargs);

/* SMEMBERS set, sorted. *names: malloc'd array of malloc'd strings (free
 * with ty_schedrec_strv_free); n may be 0. */
int ty_schedrec_members (ty_redis_t *redis, const char *set, char ***names, size_t *n);
void ty_schedrec_strv_free (char **strv, size_t n);

/* "key=value" list <-> the JSON array text of the `sets` field.
 * encode: caller frees *json. decode: *sets as for members (NULL, 0 for ""
 * or a malformed field). TY_EINVAL for an item without '='. */
int ty_schedrec_sets_encode (const char *const *sets, size_t nsets, char **json);
int ty_schedrec_sets_decode (const char *json, char ***sets, size_t *nsets);

/* Takes the lease `key` for owner for ttl_ms (SET NX PX). *won = 1 if it is
 * ours now: newly taken, or already held by the same owner (a scheduler
 * restarted with the same --id carries on with its own slot). */
int ty_schedrec_lease (ty_redis_t *redis, const char *key, const char *owner,
                       int64_t ttl_ms, int *won);

/* Agrees on one value per key among schedulers: SET key proposed NX PX
 * ttl_ms, then GET. out (outlen bytes) gets the value that holds, ours or
 * the one a scheduler set first (used for the pipeline id of a run, so a
 * run restarted after a crash keeps its id). */
int ty_schedrec_claim (ty_redis_t *redis, const char *key, const char *proposed,
                       int64_t ttl_ms, char *out, size_t outlen);

#endif

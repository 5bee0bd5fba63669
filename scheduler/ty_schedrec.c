/*  ty_schedrec: shared pieces of schedule and trigger records (ty_schedrec.h). */
#include "ty_schedrec.h"
#include "ty_error.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
ty_schedrec_name_check (const char *name, const char **why)
{
    const char *w = NULL;
    size_t len = name ? strlen (name) : 0;
    if (len == 0)
        w = "empty name";
    else
    if (len > TY_SCHEDREC_NAME_MAX)
        w = "name longer than 64 characters";
    else
    if (name [0] == '.')
        w = "name starts with '.'";
    else
        for (size_t i = 0; i < len && !w; i++)
            if (!isalnum ((unsigned char) name [i]) && !strchr ("_.-", name [i]))
                w = "name may only hold letters, digits, '_', '.' and '-'";
    if (why)
        *why = w;
    return w ? TY_EINVAL : TY_OK;
}

static int
s_command (ty_redis_t *redis, const ty_argv_t *a, redisReply **out)
{
    *out = NULL;
    if (a->oom)
        return TY_ENOMEM;
    if (!ty_redis_ok (redis) && ty_redis_connect (redis) != TY_OK)
        return TY_ESTORE;
    redisReply *r = ty_redis_command (redis, a);
    if (!r)
        return TY_ESTORE;
    if (r->type == REDIS_REPLY_ERROR) {
        /* a script or type error: the connection itself is fine, but say why */
        ty_redis_fail (redis, r->str ? r->str : "redis error");
        freeReplyObject (r);
        return TY_ESTORE;
    }
    *out = r;
    return TY_OK;
}

void
ty_schedrec_hash_free (ty_schedrec_hash_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        free (h->keys [i]);
        free (h->values [i]);
    }
    free (h->keys);
    free (h->values);
    memset (h, 0, sizeof *h);
}

int
ty_schedrec_hgetall (ty_redis_t *redis, const char *key, ty_schedrec_hash_t *h)
{
    memset (h, 0, sizeof *h);
    ty_argv_t a;
    ty_argv_init (&a);
    ty_argv_str (&a, "HGETALL");
    ty_argv_str (&a, key);
    redisReply *r;
    int rc = s_command (redis, &a, &r);
    ty_argv_free (&a);
    if (rc != TY_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        freeReplyObject (r);
        return TY_ESTORE;
    }
    if (r->elements == 0) {
        freeReplyObject (r);
        return TY_ENOTFOUND;
    }
    size_t n = r->elements / 2;
    h->keys = calloc (n, sizeof *h->keys);
    h->values = calloc (n, sizeof *h->values);
    rc = h->keys && h->values ? TY_OK : TY_ENOMEM;
    for (size_t i = 0; rc == TY_OK && i < n; i++) {
        redisReply *k = r->element [2 * i], *v = r->element [2 * i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            rc = TY_ESTORE;
            break;
        }
        h->keys [i] = strndup (k->str, k->len);
        h->values [i] = strndup (v->str, v->len);
        h->n = i + 1;
        if (!h->keys [i] || !h->values [i])
            rc = TY_ENOMEM;
    }
    freeReplyObject (r);
    if (rc != TY_OK)
        ty_schedrec_hash_free (h);
    return rc;
}

const char *
ty_schedrec_get (const ty_schedrec_hash_t *h, const char *field)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp (h->keys [i], field))
            return h->values [i];
    return NULL;
}

int64_t
ty_schedrec_get_int (const ty_schedrec_hash_t *h, const char *field, int64_t dflt)
{
    const char *v = ty_schedrec_get (h, field);
    if (!v || !*v)
        return dflt;
    char *end;
    long long x = strtoll (v, &end, 10);
    return *end ? dflt : (int64_t) x;
}

int
ty_schedrec_eval (ty_redis_t *redis, const char *script,
                  const char *const *keys, size_t nkeys,
                  const char *const *args, size_t nargs, long long *result)
{
    ty_argv_t a;
    ty_argv_init (&a);
    ty_argv_str (&a, "EVAL");
    ty_argv_str (&a, script);
    ty_argv_int (&a, (int64_t) nkeys);
    for (size_t i = 0; i < nkeys; i++)
        ty_argv_str (&a, keys [i]);
    for (size_t i = 0; i < nargs; i++)
        ty_argv_str (&a, args [i]);
    redisReply *r;
    int rc = s_command (redis, &a, &r);
    ty_argv_free (&a);
    if (rc != TY_OK)
        return rc;
    if (result)
        *result = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject (r);
    return TY_OK;
}

static int
s_cmp_str (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

void
ty_schedrec_strv_free (char **strv, size_t n)
{
    if (!strv)
        return;
    for (size_t i = 0; i < n; i++)
        free (strv [i]);
    free (strv);
}

/* KEYS: hash, set. ARGV: name, then field/value pairs. Only a new record. */
static const char *s_add_lua =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "return 1\n";

/* KEYS: hash, set. ARGV: name. */
static const char *s_remove_lua =
    "local n = redis.call('DEL', KEYS[1])\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "return n\n";

/* KEYS: hash. ARGV: field/value pairs. Only on an existing record. */
static const char *s_update_lua =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "return 1\n";

int
ty_schedrec_add (ty_redis_t *redis, const char *hash, const char *set,
                 const char *const *args, size_t nargs)
{
    const char *keys [] = { hash, set };
    long long added = 0;
    int rc = ty_schedrec_eval (redis, s_add_lua, keys, 2, args, nargs, &added);
    return rc == TY_OK && !added ? TY_ESTATE : rc;
}

int
ty_schedrec_remove (ty_redis_t *redis, const char *hash, const char *set, const char *name)
{
    const char *keys [] = { hash, set };
    const char *args [] = { name };
    long long n = 0;
    int rc = ty_schedrec_eval (redis, s_remove_lua, keys, 2, args, 1, &n);
    return rc == TY_OK && n == 0 ? TY_ENOTFOUND : rc;
}

int
ty_schedrec_update (ty_redis_t *redis, const char *hash, const char *const *args,
                    size_t nargs)
{
    const char *keys [] = { hash };
    long long n = 0;
    int rc = ty_schedrec_eval (redis, s_update_lua, keys, 1, args, nargs, &n);
    return rc == TY_OK && n == 0 ? TY_ENOTFOUND : rc;
}

int
ty_schedrec_members (ty_redis_t *redis, const char *set, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    ty_argv_t a;
    ty_argv_init (&a);
    ty_argv_str (&a, "SMEMBERS");
    ty_argv_str (&a, set);
    redisReply *r;
    int rc = s_command (redis, &a, &r);
    ty_argv_free (&a);
    if (rc != TY_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject (r);
        return TY_ESTORE;
    }
    char **v = r->elements ? calloc (r->elements, sizeof *v) : NULL;
    if (r->elements && !v) {
        freeReplyObject (r);
        return TY_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element [i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (!(v [k] = strndup (e->str, e->len))) {
            ty_schedrec_strv_free (v, k);
            freeReplyObject (r);
            return TY_ENOMEM;
        }
        k++;
    }
    freeReplyObject (r);
    if (k > 1)
        qsort (v, k, sizeof *v, s_cmp_str);
    *names = v;
    *n = k;
    return TY_OK;
}

int
ty_schedrec_sets_encode (const char *const *sets, size_t nsets, char **json)
{
    *json = NULL;
    if (nsets > TY_SCHEDREC_SETS_MAX)
        return TY_EINVAL;
    cJSON *arr = cJSON_CreateArray ();
    if (!arr)
        return TY_ENOMEM;
    for (size_t i = 0; i < nsets; i++) {
        const char *eq = strchr (sets [i], '=');
        if (!eq || eq == sets [i]) {
            cJSON_Delete (arr);
            return TY_EINVAL;
        }
        cJSON *s = cJSON_CreateString (sets [i]);
        if (!s || !cJSON_AddItemToArray (arr, s)) {
            cJSON_Delete (s);
            cJSON_Delete (arr);
            return TY_ENOMEM;
        }
    }
    *json = cJSON_PrintUnformatted (arr);
    cJSON_Delete (arr);
    return *json ? TY_OK : TY_ENOMEM;
}

int
ty_schedrec_sets_decode (const char *json, char ***sets, size_t *nsets)
{
    *sets = NULL;
    *nsets = 0;
    if (!json || !*json)
        return TY_OK;
    cJSON *arr = cJSON_Parse (json);
    if (!cJSON_IsArray (arr)) {
        cJSON_Delete (arr);
        return TY_EINVAL;
    }
    int n = cJSON_GetArraySize (arr);
    char **v = n > 0 ? calloc ((size_t) n, sizeof *v) : NULL;
    if (n > 0 && !v) {
        cJSON_Delete (arr);
        return TY_ENOMEM;
    }
    size_t k = 0;
    const cJSON *item;
    cJSON_ArrayForEach (item, arr) {
        if (!cJSON_IsString (item))
            continue;
        if (!(v [k] = strdup (item->valuestring))) {
            ty_schedrec_strv_free (v, k);
            cJSON_Delete (arr);
            return TY_ENOMEM;
        }
        k++;
    }
    cJSON_Delete (arr);
    *sets = v;
    *nsets = k;
    return TY_OK;
}

int
ty_schedrec_lease (ty_redis_t *redis, const char *key, const char *owner,
                   int64_t ttl_ms, int *won)
{
    *won = 0;
    ty_argv_t a;
    ty_argv_init (&a);
    ty_argv_str (&a, "SET");
    ty_argv_str (&a, key);
    ty_argv_str (&a, owner);
    ty_argv_str (&a, "NX");
    ty_argv_str (&a, "PX");
    ty_argv_int (&a, ttl_ms);
    redisReply *r;
    int rc = s_command (redis, &a, &r);
    if (rc != TY_OK) {
        ty_argv_free (&a);
        return rc;
    }
    int taken = r->type == REDIS_REPLY_STATUS;
    freeReplyObject (r);
    if (taken) {
        ty_argv_free (&a);
        *won = 1;
        return TY_OK;
    }
    ty_argv_reset (&a);
    ty_argv_str (&a, "GET");
    ty_argv_str (&a, key);
    rc = s_command (redis, &a, &r);
    ty_argv_free (&a);
    if (rc != TY_OK)
        return rc;
    *won = r->type == REDIS_REPLY_STRING && strlen (owner) == r->len
           && !memcmp (r->str, owner, r->len);
    freeReplyObject (r);
    return TY_OK;
}

int
ty_schedrec_claim (ty_redis_t *redis, const char *key, const char *proposed,
                   int64_t ttl_ms, char *out, size_t outlen)
{
    int won = 0;
    int rc = ty_schedrec_lease (redis, key, proposed, ttl_ms, &won);
    if (rc != TY_OK)
        return rc;
    if (won) {
        snprintf (out, outlen, "%s", proposed);
        return TY_OK;
    }
    ty_argv_t a;
    ty_argv_init (&a);
    ty_argv_str (&a, "GET");
    ty_argv_str (&a, key);
    redisReply *r;
    rc = s_command (redis, &a, &r);
    ty_argv_free (&a);
    if (rc != TY_OK)
        return rc;
    if (r->type != REDIS_REPLY_STRING)
        rc = TY_ENOTFOUND;      /* expired between SET and GET: the caller retries */
    else
        snprintf (out, outlen, "%.*s", (int) r->len, r->str);
    freeReplyObject (r);
    return rc;
}

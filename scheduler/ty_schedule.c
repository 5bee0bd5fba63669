/*  ty_schedule: schedule records in Redis (layout in ty_schedule.h). */
#include "ty_schedule.h"
#include "ty_clock.h"
#include "ty_error.h"
#include "ty_schedrec.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_INT_MAX_CHARS 24      /* an int64 in decimal, sign and NUL */

/* KEYS: hash. ARGV: slot, then field/value pairs. last_slot only grows. */
static const char *s_record_lua =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "local last = tonumber(redis.call('HGET', KEYS[1], 'last_slot') or '0') or 0\n"
    "if tonumber(ARGV[1]) <= last then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'last_slot', ARGV[1])\n"
    "for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "return 1\n";

int
ty_schedule_key (const char *prefix, const char *name, char *buf, size_t len)
{
    int n = snprintf (buf, len, "%sschedule:%s", prefix, name);
    return n < 0 || (size_t) n >= len ? TY_EINVAL : TY_OK;
}

static int
s_keys (const char *prefix, const char *name, char *hash, char *set)
{
    if (ty_schedrec_name_check (name, NULL) != TY_OK
        || ty_schedule_key (prefix, name, hash, TY_SCHEDREC_KEY_MAX) != TY_OK)
        return TY_EINVAL;
    int n = snprintf (set, TY_SCHEDREC_KEY_MAX, "%sschedules", prefix);
    return n < 0 || n >= TY_SCHEDREC_KEY_MAX ? TY_EINVAL : TY_OK;
}

void
ty_schedule_destroy (ty_schedule_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_schedule_t *self = *self_p;
    free (self->name);
    free (self->cron);
    free (self->file);
    ty_schedrec_strv_free (self->sets, self->nsets);
    free (self->last_run_pipeline);
    free (self->last_error);
    free (self);
    *self_p = NULL;
}

int
ty_schedule_add (ty_redis_t *redis, const char *prefix, const ty_schedule_t *rec)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (s_keys (prefix, rec->name, hash, set) != TY_OK || !rec->cron || !rec->file)
        return TY_EINVAL;
    char *sets = NULL;
    int rc = ty_schedrec_sets_encode ((const char *const *) rec->sets, rec->nsets, &sets);
    if (rc != TY_OK)
        return rc;
    char created [S_INT_MAX_CHARS], next [S_INT_MAX_CHARS];
    snprintf (created, sizeof created, "%" PRId64, rec->created);
    snprintf (next, sizeof next, "%" PRId64, rec->next);
    const char *args [] = {
        rec->name,
        "cron", rec->cron, "utc", rec->utc ? "1" : "0", "file", rec->file,
        "sets", sets, "paused", rec->paused ? "1" : "0", "created", created,
        "last_slot", created, "next", next, "last_run_pipeline", "",
        "last_run_ms", "0", "last_error", "",
    };
    rc = ty_schedrec_add (redis, hash, set, args, sizeof args / sizeof args [0]);
    free (sets);
    return rc;
}

static char *
s_dup (const char *s)
{
    return strdup (s ? s : "");
}

int
ty_schedule_load (ty_redis_t *redis, const char *prefix, const char *name,
                  ty_schedule_t **self_p)
{
    *self_p = NULL;
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (s_keys (prefix, name, hash, set) != TY_OK)
        return TY_EINVAL;
    ty_schedrec_hash_t h;
    int rc = ty_schedrec_hgetall (redis, hash, &h);
    if (rc != TY_OK)
        return rc;
    ty_schedule_t *self = calloc (1, sizeof *self);
    if (!self) {
        ty_schedrec_hash_free (&h);
        return TY_ENOMEM;
    }
    self->name = s_dup (name);
    self->cron = s_dup (ty_schedrec_get (&h, "cron"));
    self->file = s_dup (ty_schedrec_get (&h, "file"));
    self->last_run_pipeline = s_dup (ty_schedrec_get (&h, "last_run_pipeline"));
    self->last_error = s_dup (ty_schedrec_get (&h, "last_error"));
    self->utc = ty_schedrec_get_int (&h, "utc", 0) != 0;
    self->paused = ty_schedrec_get_int (&h, "paused", 0) != 0;
    self->created = ty_schedrec_get_int (&h, "created", 0);
    self->last_slot = ty_schedrec_get_int (&h, "last_slot", self->created);
    self->next = ty_schedrec_get_int (&h, "next", 0);
    self->last_run_ms = ty_schedrec_get_int (&h, "last_run_ms", 0);
    rc = ty_schedrec_sets_decode (ty_schedrec_get (&h, "sets"), &self->sets, &self->nsets);
    if (rc == TY_EINVAL)
        rc = TY_OK;     /* a hand-edited field: run without overrides rather than never */
    ty_schedrec_hash_free (&h);
    if (rc == TY_OK && (!self->name || !self->cron || !self->file || !self->last_run_pipeline
                        || !self->last_error))
        rc = TY_ENOMEM;
    if (rc != TY_OK) {
        ty_schedule_destroy (&self);
        return rc;
    }
    *self_p = self;
    return TY_OK;
}

int
ty_schedule_names (ty_redis_t *redis, const char *prefix, char ***names, size_t *n)
{
    char set [TY_SCHEDREC_KEY_MAX];
    if (snprintf (set, sizeof set, "%sschedules", prefix) >= (int) sizeof set)
        return TY_EINVAL;
    return ty_schedrec_members (redis, set, names, n);
}

int
ty_schedule_remove (ty_redis_t *redis, const char *prefix, const char *name)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (s_keys (prefix, name, hash, set) != TY_OK)
        return TY_EINVAL;
    return ty_schedrec_remove (redis, hash, set, name);
}

static int
s_update (ty_redis_t *redis, const char *prefix, const char *name,
          const char *const *args, size_t nargs)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (s_keys (prefix, name, hash, set) != TY_OK)
        return TY_EINVAL;
    return ty_schedrec_update (redis, hash, args, nargs);
}

int
ty_schedule_set_paused (ty_redis_t *redis, const char *prefix, const char *name, bool paused)
{
    const char *args [] = { "paused", paused ? "1" : "0" };
    return s_update (redis, prefix, name, args, 2);
}

int
ty_schedule_set_next (ty_redis_t *redis, const char *prefix, const char *name, int64_t next)
{
    char v [S_INT_MAX_CHARS];
    snprintf (v, sizeof v, "%" PRId64, next);
    const char *args [] = { "next", v };
    return s_update (redis, prefix, name, args, 2);
}

int
ty_schedule_lease (ty_redis_t *redis, const char *prefix, const char *name,
                   int64_t slot, const char *owner, int64_t ttl_ms, int *won)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX], key [TY_SCHEDREC_KEY_MAX];
    *won = 0;
    if (s_keys (prefix, name, hash, set) != TY_OK
        || snprintf (key, sizeof key, "%s:slot:%" PRId64, hash, slot) >= (int) sizeof key)
        return TY_EINVAL;
    return ty_schedrec_lease (redis, key, owner, ttl_ms, won);
}

int
ty_schedule_record (ty_redis_t *redis, const char *prefix, const char *name,
                    int64_t slot, const char *pipeline, const char *error,
                    int64_t next, int *applied)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (applied)
        *applied = 0;
    if (s_keys (prefix, name, hash, set) != TY_OK)
        return TY_EINVAL;
    char s [S_INT_MAX_CHARS], n [S_INT_MAX_CHARS], ms [S_INT_MAX_CHARS];
    snprintf (s, sizeof s, "%" PRId64, slot);
    snprintf (n, sizeof n, "%" PRId64, next);
    snprintf (ms, sizeof ms, "%" PRId64, ty_clock_wall_ms ());
    const char *keys [] = { hash };
    const char *args [] = {
        s, "last_run_pipeline", pipeline ? pipeline : "", "last_error", error ? error : "",
        "last_run_ms", ms, "next", n,
    };
    long long done = 0;
    int rc = ty_schedrec_eval (redis, s_record_lua, keys, 1, args,
                               sizeof args / sizeof args [0], &done);
    if (rc == TY_OK && applied)
        *applied = done != 0;
    return rc;
}

int
ty_schedule_skip (ty_redis_t *redis, const char *prefix, const char *name, int64_t slot)
{
    char hash [TY_SCHEDREC_KEY_MAX], set [TY_SCHEDREC_KEY_MAX];
    if (s_keys (prefix, name, hash, set) != TY_OK)
        return TY_EINVAL;
    char s [S_INT_MAX_CHARS];
    snprintf (s, sizeof s, "%" PRId64, slot);
    const char *keys [] = { hash };
    const char *args [] = { s };
    return ty_schedrec_eval (redis, s_record_lua, keys, 1, args, 1, NULL);
}

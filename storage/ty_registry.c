/*  ty_registry: the model registry (see ty_registry.h for the layout).
 *
 *  Every change is a function of (txn, arg) run by s_write, which begins
 *  the write transaction, commits it when the function succeeds and
 *  aborts it otherwise: the records and the audit entry of an operation go
 *  to disk together or not at all. Work that reads the filesystem (hashing
 *  artifacts, parsing metrics.json) happens before the transaction, so the
 *  writer lock is held for microseconds, not for a sha256 of model.pt.
 */
#include "ty_registry.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ty_error.h"
#include "ty_log.h"

#define S_TAG            0x7e617259u   /* "Yar~": a live handle */
#define S_MAX_DBS        4
#define S_DB_META        "meta"
#define S_DB_MODELS      "models"
#define S_DB_VERSIONS    "versions"
#define S_DB_AUDIT       "audit"
#define S_META_FORMAT    "format"
#define S_KEY_MAX        (TY_REGISTRY_NAME_MAX + 1 + 8)
#define S_JSON_MAX_BYTES (4u << 20)    /* lineage.json / config.json / metrics.json we parse */
#define S_HASH_BUF_BYTES (1u << 16)
#define S_ARTIFACT_DEPTH 4             /* subdirectories of a version dir we descend */
#define S_METRICS_FILE   "metrics.json"
#define S_LINEAGE_FILE   "lineage.json"
#define S_CONFIG_FILE    "config.json"
#define S_MS_PER_S       1000ull
#define S_NS_PER_MS      1000000ull
#define S_FNV_OFFSET     0xcbf29ce484222325ull
#define S_FNV_PRIME      0x100000001b3ull

/* Headline numbers copied from metrics.json into the version record, under
 * their short name (the evaluate worker's job outputs use the same). */
static const struct { const char *key, *path; } s_headline [] = {
    { "accuracy",        "classification.accuracy" },
    { "macro_f1",        "classification.macro.f1" },
    { "weighted_f1",     "classification.weighted.f1" },
    { "log_loss",        "classification.log_loss" },
    { "roc_auc",         "classification.roc_auc" },
    { "subset_accuracy", "multilabel.subset_accuracy" },
    { "micro_f1",        "multilabel.micro.f1" },
    { "rmse",            "regression.rmse" },
    { "mae",             "regression.mae" },
    { "r2",              "regression.r2" },
    { "hit_rate",        "ranking.hit_rate" },
    { "ndcg",            "ranking.ndcg" },
    { "n_samples",       "n_samples" },
    { "p99_ms",          "latency.single.p99_ms" },
};

static const char *s_stage_names [TY_STAGE_COUNT] = {
    "none", "staging", "canary", "production", "archived"
};

struct _ty_registry_t {
    uint32_t tag;
    MDB_env *env;
    MDB_dbi  dbi_meta, dbi_models, dbi_versions, dbi_audit;
    size_t   map_bytes;
    int      map_full;          /* set by s_put: the txn must be retried on a bigger map */
    char     data_dir [PATH_MAX];
    char     errstr [TY_REGISTRY_ERRSTR_MAX];
};

/* A model record in memory (the "models" database holds it as JSON). */
typedef struct {
    uint64_t production, canary, default_version, latest;
    int      rollout;
    uint64_t previous [TY_REGISTRY_ROLLBACK_DEPTH];  /* oldest first */
    size_t   n_previous;
    uint64_t created_ms;
} s_model_t;

/* ---- small helpers ---------------------------------------------------------- */

static int
s_fail (ty_registry_t *self, int rc, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fail (ty_registry_t *self, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (self->errstr, sizeof self->errstr, fmt, ap);
    va_end (ap);
    return rc;
}

static int
s_mdb (ty_registry_t *self, int rc, const char *what)
{
    if (rc == MDB_SUCCESS)
        return TY_OK;
    if (rc == MDB_NOTFOUND)
        return TY_ENOTFOUND;
    if (rc == MDB_MAP_FULL)
        self->map_full = 1;
    s_fail (self, rc > 0 ? rc : TY_ESTORE, "lmdb %s: %s", what, mdb_strerror (rc));
    return rc > 0 ? rc : TY_ESTORE;
}

static uint64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * S_MS_PER_S + (uint64_t) ts.tv_nsec / S_NS_PER_MS;
}

static int
s_name_ok (const char *name)
{
    size_t n = name ? strlen (name) : 0;
    if (n == 0 || n > TY_REGISTRY_NAME_MAX || strstr (name, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static void
s_be64 (unsigned char *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out [i] = (unsigned char) (v & 0xff);
        v >>= 8;
    }
}

static uint64_t
s_get_be64 (const unsigned char *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in [i];
    return v;
}

/* name '\0' version(BE): sorts a model's versions together, ascending. */
static size_t
s_version_key (unsigned char *key, const char *name, uint64_t version)
{
    size_t n = strlen (name);
    memcpy (key, name, n + 1);
    s_be64 (key + n + 1, version);
    return n + 1 + 8;
}

const char *
ty_registry_stage_name (ty_stage_t stage)
{
    return (unsigned) stage < TY_STAGE_COUNT ? s_stage_names [stage] : "?";
}

int
ty_registry_stage_parse (const char *s, ty_stage_t *stage)
{
    for (int i = 0; s && i < TY_STAGE_COUNT; i++)
        if (!strcmp (s, s_stage_names [i])) {
            *stage = (ty_stage_t) i;
            return TY_OK;
        }
    return TY_EINVAL;
}

unsigned
ty_registry_device_bucket (const char *device_id)
{
    /* FNV-1a alone leaves the low bits of similar ids (dev-1, dev-2, ...)
     * correlated; the murmur3 finalizer spreads every input bit over the
     * word before the modulo. */
    uint64_t h = S_FNV_OFFSET;
    for (const unsigned char *p = (const unsigned char *) (device_id ? device_id : ""); *p; p++) {
        h ^= *p;
        h *= S_FNV_PRIME;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (unsigned) (h % TY_REGISTRY_BUCKETS);
}

/* Reads a whole (small) file; *buf is the caller's, NUL-terminated. */
static int
s_read_file (const char *path, char **buf)
{
    *buf = NULL;
    FILE *f = fopen (path, "rb");
    if (!f)
        return errno;
    struct stat st;
    if (fstat (fileno (f), &st) != 0) {
        int e = errno;
        fclose (f);
        return e;
    }
    if ((uint64_t) st.st_size > S_JSON_MAX_BYTES) {
        fclose (f);
        return TY_EFULL;
    }
    char *b = malloc ((size_t) st.st_size + 1);
    if (!b) {
        fclose (f);
        return TY_ENOMEM;
    }
    size_t n = fread (b, 1, (size_t) st.st_size, f);
    int bad = ferror (f);
    fclose (f);
    if (bad) {
        free (b);
        return EIO;
    }
    b [n] = '\0';
    *buf = b;
    return TY_OK;
}

/* dir/file parsed as JSON; *doc NULL when the file does not exist. */
static int
s_load_json (ty_registry_t *self, const char *dir, const char *file, cJSON **doc)
{
    char path [PATH_MAX];
    *doc = NULL;
    if (snprintf (path, sizeof path, "%s/%s", dir, file) >= (int) sizeof path)
        return s_fail (self, ENAMETOOLONG, "%s/%s: path too long", dir, file);
    char *text = NULL;
    int rc = s_read_file (path, &text);
    if (rc == ENOENT)
        return TY_OK;
    if (rc != TY_OK)
        return s_fail (self, rc, "%s: %s", path, ty_strerror (rc));
    *doc = cJSON_Parse (text);
    free (text);
    if (!*doc || !cJSON_IsObject (*doc)) {
        cJSON_Delete (*doc);
        *doc = NULL;
        return s_fail (self, TY_EPROTO, "%s: not a JSON object", path);
    }
    return TY_OK;
}

static const cJSON *
s_path (const cJSON *doc, const char *dotted)
{
    char part [64];
    const cJSON *cur = doc;
    while (cur && *dotted) {
        size_t n = strcspn (dotted, ".");
        if (n >= sizeof part)
            return NULL;
        memcpy (part, dotted, n);
        part [n] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive (cur, part);
        dotted += n + (dotted [n] == '.');
    }
    return cur;
}

static uint64_t
s_u64 (const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
    return cJSON_IsNumber (v) && v->valuedouble > 0 ? (uint64_t) v->valuedouble : 0;
}

static const char *
s_str (const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

/* Sets o[key] (replacing); 0 when out of memory. */
static int
s_set (cJSON *o, const char *key, cJSON *item)
{
    if (!item)
        return 0;
    if (cJSON_GetObjectItemCaseSensitive (o, key))
        return cJSON_ReplaceItemInObjectCaseSensitive (o, key, item);
    return cJSON_AddItemToObject (o, key, item);
}

/* ---- the environment ------------------------------------------------------------ */

static int
s_read_begin (ty_registry_t *self, MDB_txn **txn)
{
    assert (self && self->tag == S_TAG);   /* a destroyed or foreign handle */
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* another process grew the map: adopt its size */
        if ((rc = mdb_env_set_mapsize (self->env, 0)) == MDB_SUCCESS)
            rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, txn);
    }
    return s_mdb (self, rc, "begin read txn");
}

typedef int (s_op_fn) (ty_registry_t *self, MDB_txn *txn, void *arg);

/* Runs op in one write transaction; commits on TY_OK (and when op asks for
 * no change with *nothing set, aborts: nothing to write). Grows the map and
 * reruns op from scratch on MDB_MAP_FULL. */
static int
s_write (ty_registry_t *self, s_op_fn *op, void *arg)
{
    assert (self && self->tag == S_TAG);
    for (;;) {
        MDB_txn *txn = NULL;
        self->map_full = 0;
        self->errstr [0] = '\0';
        int mrc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (mrc == MDB_MAP_RESIZED) {
            if ((mrc = mdb_env_set_mapsize (self->env, 0)) == MDB_SUCCESS)
                mrc = mdb_txn_begin (self->env, NULL, 0, &txn);
        }
        if (mrc != MDB_SUCCESS)
            return s_mdb (self, mrc, "begin write txn");
        int rc = op (self, txn, arg);
        if (rc == TY_OK) {
            mrc = mdb_txn_commit (txn);
            rc = s_mdb (self, mrc, "commit");
        }
        else
            mdb_txn_abort (txn);
        if (!self->map_full)
            return rc;
        MDB_envinfo info;
        mdb_env_info (self->env, &info);
        size_t bigger = (info.me_mapsize > self->map_bytes ? info.me_mapsize : self->map_bytes) * 2;
        if ((mrc = mdb_env_set_mapsize (self->env, bigger)) != MDB_SUCCESS)
            return s_mdb (self, mrc, "set_mapsize");
        ty_debug ("registry: map -> %zu bytes", bigger);
        self->map_bytes = bigger;
    }
}

static int
s_put_json (ty_registry_t *self, MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
            const cJSON *doc, unsigned flags)
{
    char *text = cJSON_PrintUnformatted (doc);
    if (!text)
        return s_fail (self, TY_ENOMEM, "out of memory");
    MDB_val k = { klen, (void *) key }, v = { strlen (text), text };
    int rc = mdb_put (txn, dbi, &k, &v, flags);
    cJSON_free (text);
    return s_mdb (self, rc, "put");
}

/* A JSON record, checked for its format. *doc NULL + TY_ENOTFOUND when absent. */
static int
s_get_json (ty_registry_t *self, MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
            cJSON **doc)
{
    MDB_val k = { klen, (void *) key }, v;
    *doc = NULL;
    int rc = mdb_get (txn, dbi, &k, &v);
    if (rc != MDB_SUCCESS)
        return s_mdb (self, rc, "get");
    *doc = cJSON_ParseWithLength (v.mv_data, v.mv_size);
    if (!*doc || !cJSON_IsObject (*doc)) {
        cJSON_Delete (*doc);
        *doc = NULL;
        return s_fail (self, TY_EPROTO, "registry record is not JSON");
    }
    uint64_t format = s_u64 (*doc, "format");
    if (format == 0 || format > TY_REGISTRY_FORMAT_VERSION) {
        cJSON_Delete (*doc);
        *doc = NULL;
        return s_fail (self, TY_EPROTO, "registry record format %llu; this build reads <= %d",
                       (unsigned long long) format, TY_REGISTRY_FORMAT_VERSION);
    }
    return TY_OK;
}

static int
s_open_op (ty_registry_t *self, MDB_txn *txn, void *arg)
{
    TY_UNUSED (arg);
    int rc = s_mdb (self, mdb_dbi_open (txn, S_DB_META, MDB_CREATE, &self->dbi_meta), "open meta");
    if (rc == TY_OK)
        rc = s_mdb (self, mdb_dbi_open (txn, S_DB_MODELS, MDB_CREATE, &self->dbi_models),
                    "open models");
    if (rc == TY_OK)
        rc = s_mdb (self, mdb_dbi_open (txn, S_DB_VERSIONS, MDB_CREATE, &self->dbi_versions),
                    "open versions");
    if (rc == TY_OK)
        rc = s_mdb (self, mdb_dbi_open (txn, S_DB_AUDIT, MDB_CREATE, &self->dbi_audit),
                    "open audit");
    if (rc != TY_OK)
        return rc;
    MDB_val k = { strlen (S_META_FORMAT), (void *) S_META_FORMAT }, v;
    int mrc = mdb_get (txn, self->dbi_meta, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        char text [16];
        snprintf (text, sizeof text, "%d", TY_REGISTRY_FORMAT_VERSION);
        v.mv_data = text;
        v.mv_size = strlen (text);
        return s_mdb (self, mdb_put (txn, self->dbi_meta, &k, &v, 0), "put format");
    }
    if (mrc != MDB_SUCCESS)
        return s_mdb (self, mrc, "get format");
    char text [16] = "";
    memcpy (text, v.mv_data, v.mv_size < sizeof text - 1 ? v.mv_size : sizeof text - 1);
    if (atoi (text) > TY_REGISTRY_FORMAT_VERSION)
        return s_fail (self, TY_EPROTO, "registry format %s is newer than this build (%d)",
                       text, TY_REGISTRY_FORMAT_VERSION);
    return TY_OK;
}

int
ty_registry_open (const char *data_dir, ty_registry_t **self_p)
{
    *self_p = NULL;
    if (!data_dir || !*data_dir)
        return TY_EINVAL;
    ty_registry_t *self = calloc (1, sizeof *self);
    if (!self)
        return TY_ENOMEM;
    self->tag = S_TAG;
    self->map_bytes = TY_REGISTRY_MAP_INITIAL_BYTES;
    char dir [PATH_MAX];
    if (snprintf (self->data_dir, sizeof self->data_dir, "%s", data_dir) >= (int) sizeof self->data_dir
        || snprintf (dir, sizeof dir, "%s/%s", data_dir, TY_REGISTRY_DIR) >= (int) sizeof dir) {
        free (self);
        return ENAMETOOLONG;
    }
    if (mkdir (data_dir, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        free (self);
        return e;
    }
    if (mkdir (dir, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        free (self);
        return e;
    }
    int rc = mdb_env_create (&self->env);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_set_maxdbs (self->env, S_MAX_DBS);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_set_mapsize (self->env, self->map_bytes);
    /* Default flags: every commit is synced, so a power cut loses nothing
     * that was reported done; registry changes are rare and tiny. */
    if (rc == MDB_SUCCESS)
        rc = mdb_env_open (self->env, dir, 0, 0644);
    if (rc != MDB_SUCCESS) {
        rc = s_mdb (self, rc, "open env");
        ty_error ("registry %s: %s", dir, self->errstr);
        mdb_env_close (self->env);   /* NULL-safe in LMDB */
        free (self);
        return rc;
    }
    int dead = 0;
    (void) mdb_reader_check (self->env, &dead);   /* slots of killed readers */
    if ((rc = s_write (self, s_open_op, NULL)) != TY_OK) {
        ty_error ("registry %s: %s", dir, self->errstr);
        ty_registry_destroy (&self);
        return rc;
    }
    *self_p = self;
    return TY_OK;
}

void
ty_registry_destroy (ty_registry_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_registry_t *self = *self_p;
    if (self->env)
        mdb_env_close (self->env);
    self->tag = 0;
    free (self);
    *self_p = NULL;
}

const char *
ty_registry_errstr (const ty_registry_t *self)
{
    return self ? self->errstr : "";
}

/* ---- records ------------------------------------------------------------------ */

static void
s_model_from_json (s_model_t *m, const cJSON *o)
{
    memset (m, 0, sizeof *m);
    m->production = s_u64 (o, "production");
    m->canary = s_u64 (o, "canary");
    m->rollout = (int) s_u64 (o, "rollout");
    m->default_version = s_u64 (o, "default");
    m->latest = s_u64 (o, "latest");
    m->created_ms = s_u64 (o, "created_ms");
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive (o, "previous");
    const cJSON *it;
    cJSON_ArrayForEach (it, prev) {
        if (cJSON_IsNumber (it) && it->valuedouble >= 1
            && m->n_previous < TY_REGISTRY_ROLLBACK_DEPTH)
            m->previous [m->n_previous++] = (uint64_t) it->valuedouble;
    }
}

static cJSON *
s_model_to_json (const char *name, const s_model_t *m)
{
    cJSON *o = cJSON_CreateObject ();
    cJSON *prev = o ? cJSON_AddArrayToObject (o, "previous") : NULL;
    if (!prev
        || !cJSON_AddNumberToObject (o, "format", TY_REGISTRY_FORMAT_VERSION)
        || !cJSON_AddStringToObject (o, "name", name)
        || !cJSON_AddNumberToObject (o, "production", (double) m->production)
        || !cJSON_AddNumberToObject (o, "canary", (double) m->canary)
        || !cJSON_AddNumberToObject (o, "rollout", m->rollout)
        || !cJSON_AddNumberToObject (o, "default", (double) m->default_version)
        || !cJSON_AddNumberToObject (o, "latest", (double) m->latest)
        || !cJSON_AddNumberToObject (o, "created_ms", (double) m->created_ms)) {
        cJSON_Delete (o);
        return NULL;
    }
    for (size_t i = 0; i < m->n_previous; i++) {
        cJSON *n = cJSON_CreateNumber ((double) m->previous [i]);
        if (!n || !cJSON_AddItemToArray (prev, n)) {
            cJSON_Delete (n);
            cJSON_Delete (o);
            return NULL;
        }
    }
    return o;
}

static int
s_model_get (ty_registry_t *self, MDB_txn *txn, const char *name, s_model_t *m)
{
    cJSON *o = NULL;
    int rc = s_get_json (self, txn, self->dbi_models, name, strlen (name), &o);
    if (rc == TY_ENOTFOUND)
        return s_fail (self, rc, "no model %s in the registry", name);
    if (rc != TY_OK)
        return rc;
    s_model_from_json (m, o);
    cJSON_Delete (o);
    return TY_OK;
}

static int
s_model_put (ty_registry_t *self, MDB_txn *txn, const char *name, const s_model_t *m)
{
    cJSON *o = s_model_to_json (name, m);
    if (!o)
        return s_fail (self, TY_ENOMEM, "out of memory");
    int rc = s_put_json (self, txn, self->dbi_models, name, strlen (name), o, 0);
    cJSON_Delete (o);
    return rc;
}

static int
s_version_get (ty_registry_t *self, MDB_txn *txn, const char *name, uint64_t version,
               cJSON **doc)
{
    unsigned char key [S_KEY_MAX];
    size_t klen = s_version_key (key, name, version);
    int rc = s_get_json (self, txn, self->dbi_versions, key, klen, doc);
    if (rc == TY_ENOTFOUND)
        return s_fail (self, rc, "%s@%llu is not registered", name, (unsigned long long) version);
    return rc;
}

static int
s_version_put (ty_registry_t *self, MDB_txn *txn, const char *name, uint64_t version,
               const cJSON *doc)
{
    unsigned char key [S_KEY_MAX];
    size_t klen = s_version_key (key, name, version);
    return s_put_json (self, txn, self->dbi_versions, key, klen, doc, 0);
}

static ty_stage_t
s_version_stage (const cJSON *doc)
{
    ty_stage_t st = TY_STAGE_NONE;
    (void) ty_registry_stage_parse (s_str (doc, "stage"), &st);
    return st;
}

static int
s_version_set_stage (ty_registry_t *self, cJSON *doc, ty_stage_t stage, int rollout,
                     uint64_t now_ms)
{
    if (!s_set (doc, "stage", cJSON_CreateString (ty_registry_stage_name (stage)))
        || !s_set (doc, "rollout", cJSON_CreateNumber (stage == TY_STAGE_CANARY ? rollout : 0))
        || !s_set (doc, "stage_changed_ms", cJSON_CreateNumber ((double) now_ms)))
        return s_fail (self, TY_ENOMEM, "out of memory");
    return TY_OK;
}

/* Loads version, sets its stage, stores it. */
static int
s_restage (ty_registry_t *self, MDB_txn *txn, const char *name, uint64_t version,
           ty_stage_t stage, int rollout, uint64_t now_ms)
{
    cJSON *doc = NULL;
    int rc = s_version_get (self, txn, name, version, &doc);
    if (rc == TY_OK)
        rc = s_version_set_stage (self, doc, stage, rollout, now_ms);
    if (rc == TY_OK)
        rc = s_version_put (self, txn, name, version, doc);
    cJSON_Delete (doc);
    return rc;
}

/* ---- the audit log ------------------------------------------------------------- */

typedef struct {
    const char *action;        /* register, refresh, promote, rollback, revert, set-default, delete */
    uint64_t    version;
    ty_stage_t  from, to;
    int         has_stages;
    int         forced;        /* a failed gate was overridden */
    const char *to_name;       /* instead of the stage name of to ("deleted") */
} s_audit_t;

static int
s_audit (ty_registry_t *self, MDB_txn *txn, const char *name, const s_model_t *m,
         const s_audit_t *a, const ty_registry_actor_t *by, uint64_t now_ms)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint64_t seq = 1;
    int rc = mdb_cursor_open (txn, self->dbi_audit, &cur);
    if (rc != MDB_SUCCESS)
        return s_mdb (self, rc, "audit cursor");
    rc = mdb_cursor_get (cur, &k, &v, MDB_LAST);
    mdb_cursor_close (cur);
    if (rc == MDB_SUCCESS && k.mv_size == 8)
        seq = s_get_be64 (k.mv_data) + 1;
    else if (rc != MDB_NOTFOUND && rc != MDB_SUCCESS)
        return s_mdb (self, rc, "audit last");

    char who [TY_REGISTRY_TEXT_MAX + 1], why [TY_REGISTRY_TEXT_MAX + 1];
    snprintf (who, sizeof who, "%s", by && by->who && *by->who ? by->who : "unknown");
    snprintf (why, sizeof why, "%s", by && by->why ? by->why : "");
    cJSON *o = cJSON_CreateObject ();
    int ok = o
        && cJSON_AddNumberToObject (o, "format", TY_REGISTRY_FORMAT_VERSION)
        && cJSON_AddNumberToObject (o, "seq", (double) seq)
        && cJSON_AddNumberToObject (o, "time_ms", (double) now_ms)
        && cJSON_AddStringToObject (o, "model", name)
        && cJSON_AddStringToObject (o, "action", a->action)
        && cJSON_AddNumberToObject (o, "version", (double) a->version)
        && cJSON_AddStringToObject (o, "who", who)
        && cJSON_AddStringToObject (o, "why", why)
        && cJSON_AddBoolToObject (o, "forced", a->forced)
        && cJSON_AddNumberToObject (o, "production", (double) m->production)
        && cJSON_AddNumberToObject (o, "canary", (double) m->canary)
        && cJSON_AddNumberToObject (o, "rollout", m->rollout)
        && cJSON_AddNumberToObject (o, "default", (double) m->default_version);
    if (ok && a->has_stages)
        ok = cJSON_AddStringToObject (o, "from", ty_registry_stage_name (a->from))
             && cJSON_AddStringToObject (o, "to", a->to_name ? a->to_name
                                                             : ty_registry_stage_name (a->to));
    if (!ok) {
        cJSON_Delete (o);
        return s_fail (self, TY_ENOMEM, "out of memory");
    }
    unsigned char key [8];
    s_be64 (key, seq);
    /* MDB_NOOVERWRITE | MDB_APPEND: the log only ever grows at its end */
    rc = s_put_json (self, txn, self->dbi_audit, key, sizeof key, o,
                     MDB_NOOVERWRITE | MDB_APPEND);
    cJSON_Delete (o);
    return rc;
}

/* ---- register ---------------------------------------------------------------- */

typedef struct {
    EVP_MD_CTX    *md;
    unsigned char *buf;
} s_hasher_t;

static int
s_sha256_file (ty_registry_t *self, s_hasher_t *h, const char *path, char *hex, uint64_t *bytes)
{
    static const char digits [] = "0123456789abcdef";
    FILE *f = fopen (path, "rb");
    if (!f)
        return s_fail (self, errno, "%s: %s", path, strerror (errno));
    int rc = TY_OK;
    *bytes = 0;
    if (EVP_DigestInit_ex (h->md, EVP_sha256 (), NULL) != 1)
        rc = s_fail (self, TY_EINTERNAL, "sha256 init failed");
    size_t n;
    while (rc == TY_OK && (n = fread (h->buf, 1, S_HASH_BUF_BYTES, f)) > 0) {
        *bytes += n;
        if (EVP_DigestUpdate (h->md, h->buf, n) != 1)
            rc = s_fail (self, TY_EINTERNAL, "sha256 update failed");
    }
    if (rc == TY_OK && ferror (f))
        rc = s_fail (self, EIO, "%s: read error", path);
    fclose (f);
    unsigned char md [EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (rc == TY_OK && EVP_DigestFinal_ex (h->md, md, &mdlen) != 1)
        rc = s_fail (self, TY_EINTERNAL, "sha256 final failed");
    if (rc == TY_OK) {
        for (unsigned i = 0; i < mdlen; i++) {
            hex [2 * i] = digits [md [i] >> 4];
            hex [2 * i + 1] = digits [md [i] & 0xf];
        }
        hex [2 * mdlen] = '\0';
    }
    return rc;
}

static int
s_cmp_names (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Every file under dir (relative path rel, "" at the top) except hidden
 * ones and metrics.json (a report about the version, summarised in the
 * record, not part of what is deployed), in name order. */
static int
s_artifacts (ty_registry_t *self, s_hasher_t *h, const char *dir, const char *rel, int depth,
             cJSON *arr)
{
    char path [PATH_MAX];
    if (snprintf (path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel) >= (int) sizeof path)
        return s_fail (self, ENAMETOOLONG, "%s/%s: path too long", dir, rel);
    DIR *d = opendir (path);
    if (!d)
        return s_fail (self, errno, "%s: %s", path, strerror (errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = TY_OK;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (e->d_name [0] == '.' || (!*rel && !strcmp (e->d_name, S_METRICS_FILE)))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **bigger = realloc (names, cap * sizeof *names);
            if (!bigger) {
                rc = s_fail (self, TY_ENOMEM, "out of memory");
                break;
            }
            names = bigger;
        }
        if (!(names [n] = strdup (e->d_name))) {
            rc = s_fail (self, TY_ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir (d);
    if (rc == TY_OK)
        qsort (names, n, sizeof *names, s_cmp_names);
    for (size_t i = 0; rc == TY_OK && i < n; i++) {
        char sub [PATH_MAX], full [PATH_MAX];
        struct stat st;
        if (snprintf (sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names [i]) >= (int) sizeof sub
            || snprintf (full, sizeof full, "%s/%s", dir, sub) >= (int) sizeof full) {
            rc = s_fail (self, ENAMETOOLONG, "%s/%s: path too long", path, names [i]);
            break;
        }
        if (stat (full, &st) != 0) {
            rc = s_fail (self, errno, "%s: %s", full, strerror (errno));
            break;
        }
        if (S_ISDIR (st.st_mode)) {
            if (depth < S_ARTIFACT_DEPTH)
                rc = s_artifacts (self, h, dir, sub, depth + 1, arr);
            continue;
        }
        if (!S_ISREG (st.st_mode))
            continue;
        char hex [2 * EVP_MAX_MD_SIZE + 1];
        uint64_t bytes = 0;
        if ((rc = s_sha256_file (self, h, full, hex, &bytes)) != TY_OK)
            break;
        cJSON *o = cJSON_CreateObject ();
        if (!o
            || !cJSON_AddStringToObject (o, "file", sub)
            || !cJSON_AddNumberToObject (o, "bytes", (double) bytes)
            || !cJSON_AddStringToObject (o, "sha256", hex)
            || !cJSON_AddItemToArray (arr, o)) {
            cJSON_Delete (o);
            rc = s_fail (self, TY_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < n; i++)
        free (names [i]);
    free (names);
    return rc;
}

/* The metrics summary of a version from its metrics.json (absent: not
 * evaluated). */
static cJSON *
s_metrics_summary (const cJSON *report)
{
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    if (!report) {
        if (!cJSON_AddBoolToObject (o, "evaluated", 0)
            || !cJSON_AddStringToObject (o, "gate", "unevaluated")) {
            cJSON_Delete (o);
            return NULL;
        }
        return o;
    }
    const char *verdict = s_str (s_path (report, "gate"), "verdict");
    const char *summary = s_str (report, "summary");
    const char *job = s_str (report, "job_id");
    int ok = cJSON_AddBoolToObject (o, "evaluated", 1)
             && cJSON_AddStringToObject (o, "gate", verdict ? verdict : "none")
             && cJSON_AddStringToObject (o, "summary", summary ? summary : "")
             && cJSON_AddStringToObject (o, "job_id", job ? job : "")
             && cJSON_AddNumberToObject (o, "created_unix", (double) s_u64 (report, "created_unix"));
    const char *ds = s_str (s_path (report, "dataset"), "name");
    if (ok && ds) {
        char buf [TY_REGISTRY_NAME_MAX * 2 + 48];
        const char *split = s_str (s_path (report, "dataset"), "split");
        snprintf (buf, sizeof buf, "%s@%llu %s", ds,
                  (unsigned long long) s_u64 (s_path (report, "dataset"), "version"),
                  split ? split : "");
        ok = cJSON_AddStringToObject (o, "dataset", buf) != NULL;
    }
    cJSON *nums = ok ? cJSON_AddObjectToObject (o, "headline") : NULL;
    ok = ok && nums;
    for (size_t i = 0; ok && i < sizeof s_headline / sizeof s_headline [0]; i++) {
        const cJSON *v = s_path (report, s_headline [i].path);
        if (cJSON_IsNumber (v))
            ok = cJSON_AddNumberToObject (nums, s_headline [i].key, v->valuedouble) != NULL;
    }
    if (!ok) {
        cJSON_Delete (o);
        return NULL;
    }
    return o;
}

/* The facts read from a version directory: dir, lineage, code_version,
 * metrics, artifacts. */
static int
s_collect (ty_registry_t *self, const char *name, uint64_t version, cJSON **facts)
{
    char dir [PATH_MAX];
    *facts = NULL;
    if (snprintf (dir, sizeof dir, "%s/models/%s/%llu", self->data_dir, name,
                  (unsigned long long) version) >= (int) sizeof dir)
        return s_fail (self, ENAMETOOLONG, "model directory path too long");
    struct stat st;
    if (stat (dir, &st) != 0 || !S_ISDIR (st.st_mode))
        return s_fail (self, TY_ENOTFOUND, "%s@%llu: no directory %s", name,
                       (unsigned long long) version, dir);
    cJSON *lineage = NULL, *config = NULL, *report = NULL;
    int rc = s_load_json (self, dir, S_LINEAGE_FILE, &lineage);
    if (rc == TY_OK)
        rc = s_load_json (self, dir, S_CONFIG_FILE, &config);
    if (rc == TY_OK)
        rc = s_load_json (self, dir, S_METRICS_FILE, &report);
    cJSON *o = rc == TY_OK ? cJSON_CreateObject () : NULL;
    if (rc == TY_OK && !o)
        rc = s_fail (self, TY_ENOMEM, "out of memory");
    if (rc == TY_OK) {
        const char *code = s_str (config, "trainyard_version");
        const char *kind = s_str (config, "kind");
        if (!cJSON_AddStringToObject (o, "dir", dir)
            || !cJSON_AddStringToObject (o, "code_version", code ? code : "")
            || !cJSON_AddStringToObject (o, "kind", kind ? kind : "")
            || !s_set (o, "lineage", lineage ? lineage : cJSON_CreateNull ())
            || !s_set (o, "metrics", s_metrics_summary (report)))
            rc = s_fail (self, TY_ENOMEM, "out of memory");
        lineage = NULL;   /* owned by o now (or freed with it) */
    }
    cJSON *arr = rc == TY_OK ? cJSON_AddArrayToObject (o, "artifacts") : NULL;
    if (rc == TY_OK && !arr)
        rc = s_fail (self, TY_ENOMEM, "out of memory");
    if (rc == TY_OK) {
        s_hasher_t h = { EVP_MD_CTX_new (), malloc (S_HASH_BUF_BYTES) };
        if (!h.md || !h.buf)
            rc = s_fail (self, TY_ENOMEM, "out of memory");
        else
            rc = s_artifacts (self, &h, dir, "", 0, arr);
        EVP_MD_CTX_free (h.md);
        free (h.buf);
    }
    cJSON_Delete (lineage);
    cJSON_Delete (config);
    cJSON_Delete (report);
    if (rc != TY_OK) {
        cJSON_Delete (o);
        return rc;
    }
    *facts = o;
    return TY_OK;
}

typedef struct {
    const char                *name;
    uint64_t                   version;
    cJSON                     *facts;
    const ty_registry_actor_t *by;
    int                        created;
} s_register_t;

static int
s_register_op (ty_registry_t *self, MDB_txn *txn, void *arg)
{
    s_register_t *a = arg;
    uint64_t now = s_now_ms ();
    s_model_t m;
    int rc = s_model_get (self, txn, a->name, &m);
    if (rc == TY_ENOTFOUND) {
        memset (&m, 0, sizeof m);
        m.created_ms = now;
        rc = TY_OK;
    }
    if (rc != TY_OK)
        return rc;
    cJSON *doc = NULL;
    rc = s_version_get (self, txn, a->name, a->version, &doc);
    if (rc != TY_OK && rc != TY_ENOTFOUND)
        return rc;
    a->created = rc == TY_ENOTFOUND;
    static const char *fact_keys [] = { "dir", "code_version", "kind", "lineage", "metrics",
                                        "artifacts" };
    if (!a->created) {
        int same = 1;
        for (size_t i = 0; same && i < sizeof fact_keys / sizeof fact_keys [0]; i++)
            same = cJSON_Compare (cJSON_GetObjectItemCaseSensitive (doc, fact_keys [i]),
                                  cJSON_GetObjectItemCaseSensitive (a->facts, fact_keys [i]), 1);
        if (same) {
            cJSON_Delete (doc);
            return TY_OK;    /* nothing changed: an empty txn, no audit entry */
        }
    }
    else {
        doc = cJSON_CreateObject ();
        if (!doc
            || !cJSON_AddNumberToObject (doc, "format", TY_REGISTRY_FORMAT_VERSION)
            || !cJSON_AddStringToObject (doc, "name", a->name)
            || !cJSON_AddNumberToObject (doc, "version", (double) a->version)
            || !cJSON_AddNumberToObject (doc, "registered_ms", (double) now)
            || s_version_set_stage (self, doc, TY_STAGE_NONE, 0, now) != TY_OK) {
            cJSON_Delete (doc);
            return s_fail (self, TY_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < sizeof fact_keys / sizeof fact_keys [0]; i++) {
        cJSON *dup = cJSON_Duplicate (cJSON_GetObjectItemCaseSensitive (a->facts, fact_keys [i]), 1);
        if (!s_set (doc, fact_keys [i], dup ? dup : cJSON_CreateNull ())) {
            cJSON_Delete (dup);
            cJSON_Delete (doc);
            return s_fail (self, TY_ENOMEM, "out of memory");
        }
    }
    if (!s_set (doc, "refreshed_ms", cJSON_CreateNumber ((double) now))) {
        cJSON_Delete (doc);
        return s_fail (self, TY_ENOMEM, "out of memory");
    }
    ty_stage_t st = s_version_stage (doc);
    rc = s_version_put (self, txn, a->name, a->version, doc);
    cJSON_Delete (doc);
    if (a->version > m.latest)
        m.latest = a->version;
    if (rc == TY_OK)
        rc = s_model_put (self, txn, a->name, &m);
    s_audit_t au = { a->created ? "register" : "refresh", a->version, st, st, 0, 0, NULL };
    if (rc == TY_OK)
        rc = s_audit (self, txn, a->name, &m, &au, a->by, now);
    return rc;
}

int
ty_registry_register (ty_registry_t *self, const char *name, uint64_t version,
                      const ty_registry_actor_t *by, int *created)
{
    if (created)
        *created = 0;
    if (!s_name_ok (name) || version == 0)
        return s_fail (self, TY_EINVAL, "bad model name or version");
    s_register_t a = { name, version, NULL, by, 0 };
    int rc = s_collect (self, name, version, &a.facts);
    if (rc == TY_OK)
        rc = s_write (self, s_register_op, &a);
    cJSON_Delete (a.facts);
    if (rc == TY_OK && created)
        *created = a.created;
    return rc;
}

/* ---- promote, rollback, revert ------------------------------------------------------ */

static int
s_gate_failed (const cJSON *doc)
{
    const char *gate = s_str (s_path (doc, "metrics"), "gate");
    return gate && !strcmp (gate, "FAIL");
}

/* Makes version production in m (the caller stores m and audits).
 * remember: push the old production onto the rollback stack. */
static int
s_to_production (ty_registry_t *self, MDB_txn *txn, const char *name, s_model_t *m,
                 uint64_t version, int remember, uint64_t now)
{
    int rc = TY_OK;
    if (m->production && m->production != version) {
        rc = s_restage (self, txn, name, m->production, TY_STAGE_ARCHIVED, 0, now);
        if (rc == TY_ENOTFOUND)
            rc = TY_OK;   /* a record lost to an older bug must not block promotes */
        if (rc == TY_OK && remember) {
            if (m->n_previous == TY_REGISTRY_ROLLBACK_DEPTH) {
                memmove (m->previous, m->previous + 1, (m->n_previous - 1) * sizeof *m->previous);
                m->n_previous--;
            }
            m->previous [m->n_previous++] = m->production;
        }
    }
    if (m->canary == version) {
        m->canary = 0;
        m->rollout = 0;
    }
    m->production = version;
    if (rc == TY_OK)
        rc = s_restage (self, txn, name, version, TY_STAGE_PRODUCTION, 0, now);
    return rc;
}

typedef struct {
    const char                *name;
    uint64_t                   version;
    ty_stage_t                 stage;
    int                        rollout;
    const ty_registry_actor_t *by;
    const char                *action;   /* "promote" or "revert" */
    uint64_t                   result;   /* rollback: the new production */
} s_promote_t;

static int
s_promote_op (ty_registry_t *self, MDB_txn *txn, void *arg)
{
    s_promote_t *a = arg;
    uint64_t now = s_now_ms ();
    s_model_t m;
    int rc = s_model_get (self, txn, a->name, &m);
    if (rc != TY_OK)
        return rc;
    if (!strcmp (a->action, "revert")) {
        if (!m.default_version)
            return s_fail (self, TY_ENOTFOUND, "%s has no default version", a->name);
        a->version = m.default_version;
    }
    cJSON *doc = NULL;
    if ((rc = s_version_get (self, txn, a->name, a->version, &doc)) != TY_OK)
        return rc;
    ty_stage_t from = s_version_stage (doc);
    int failed = s_gate_failed (doc);
    cJSON_Delete (doc);
    int serving = a->stage == TY_STAGE_STAGING || a->stage == TY_STAGE_CANARY
                  || a->stage == TY_STAGE_PRODUCTION;
    if (serving && failed && !(a->by && a->by->force))
        return s_fail (self, TY_ESTATE, "%s@%llu failed its quality gate; force to promote anyway",
                       a->name, (unsigned long long) a->version);
    if (a->stage != TY_STAGE_PRODUCTION && m.production == a->version)
        return s_fail (self, TY_ESTATE, "%s@%llu is production: roll back or promote another "
                       "version instead", a->name, (unsigned long long) a->version);
    if (from == a->stage && (a->stage != TY_STAGE_CANARY || m.rollout == a->rollout))
        return TY_OK;   /* already there: nothing to write */
    switch (a->stage) {
    case TY_STAGE_PRODUCTION:
        rc = s_to_production (self, txn, a->name, &m, a->version, 1, now);
        break;
    case TY_STAGE_CANARY:
        if (m.canary && m.canary != a->version)
            rc = s_restage (self, txn, a->name, m.canary, TY_STAGE_NONE, 0, now);
        if (rc == TY_ENOTFOUND)
            rc = TY_OK;
        m.canary = a->version;
        m.rollout = a->rollout;
        if (rc == TY_OK)
            rc = s_restage (self, txn, a->name, a->version, TY_STAGE_CANARY, a->rollout, now);
        break;
    default:
        if (m.canary == a->version) {
            m.canary = 0;
            m.rollout = 0;
        }
        rc = s_restage (self, txn, a->name, a->version, a->stage, 0, now);
        break;
    }
    if (rc == TY_OK)
        rc = s_model_put (self, txn, a->name, &m);
    s_audit_t au = { a->action, a->version, from, a->stage, 1,
                     serving && failed && a->by && a->by->force, NULL };
    if (rc == TY_OK)
        rc = s_audit (self, txn, a->name, &m, &au, a->by, now);
    return rc;
}

int
ty_registry_promote (ty_registry_t *self, const char *name, uint64_t version,
                     ty_stage_t stage, int rollout, const ty_registry_actor_t *by)
{
    if (!s_name_ok (name) || version == 0 || (unsigned) stage >= TY_STAGE_COUNT)
        return s_fail (self, TY_EINVAL, "bad model name, version or stage");
    if (stage == TY_STAGE_CANARY && (rollout < 0 || rollout > TY_REGISTRY_ROLLOUT_MAX))
        return s_fail (self, TY_EINVAL, "rollout %d is not a percentage", rollout);
    s_promote_t a = { name, version, stage, stage == TY_STAGE_CANARY ? rollout : 0, by,
                      "promote", 0 };
    return s_write (self, s_promote_op, &a);
}

int
ty_registry_revert (ty_registry_t *self, const char *name, const ty_registry_actor_t *by)
{
    if (!s_name_ok (name))
        return s_fail (self, TY_EINVAL, "bad model name");
    s_promote_t a = { name, 0, TY_STAGE_PRODUCTION, 0, by, "revert", 0 };
    return s_write (self, s_promote_op, &a);
}

static int
s_rollback_op (ty_registry_t *self, MDB_txn *txn, void *arg)
{
    s_promote_t *a = arg;
    uint64_t now = s_now_ms ();
    s_model_t m;
    int rc = s_model_get (self, txn, a->name, &m);
    if (rc != TY_OK)
        return rc;
    /* the newest remembered version that is still registered and is not
     * the current production */
    uint64_t back = 0;
    while (m.n_previous > 0 && !back) {
        uint64_t v = m.previous [--m.n_previous];
        cJSON *doc = NULL;
        if (v == m.production)
            continue;
        rc = s_version_get (self, txn, a->name, v, &doc);
        cJSON_Delete (doc);
        if (rc == TY_OK)
            back = v;
        else if (rc != TY_ENOTFOUND)
            return rc;
    }
    if (!back)
        return s_fail (self, TY_ESTATE, "%s: no earlier production version to roll back to",
                       a->name);
    cJSON *doc = NULL;
    ty_stage_t from = TY_STAGE_NONE;
    if ((rc = s_version_get (self, txn, a->name, back, &doc)) == TY_OK)
        from = s_version_stage (doc);
    cJSON_Delete (doc);
    if (rc == TY_OK)
        rc = s_to_production (self, txn, a->name, &m, back, 0, now);
    if (rc == TY_OK)
        rc = s_model_put (self, txn, a->name, &m);
    s_audit_t au = { "rollback", back, from, TY_STAGE_PRODUCTION, 1, 0, NULL };
    if (rc == TY_OK)
        rc = s_audit (self, txn, a->name, &m, &au, a->by, now);
    a->result = back;
    return rc;
}

int
ty_registry_rollback (ty_registry_t *self, const char *name, const ty_registry_actor_t *by,
                      uint64_t *now)
{
    if (now)
        *now = 0;
    if (!s_name_ok (name))
        return s_fail (self, TY_EINVAL, "bad model name");
    s_promote_t a = { name, 0, TY_STAGE_PRODUCTION, 0, by, "rollback", 0 };
    int rc = s_write (self, s_rollback_op, &a);
    if (rc == TY_OK && now)
        *now = a.result;
    return rc;
}

/* ---- default, delete ----------------------------------------------------------- */

static int
s_set_default_op (ty_registry_t *self, MDB_txn *txn, void *arg)
{
    s_promote_t *a = arg;
    uint64_t now = s_now_ms ();
    s_model_t m;
    int rc = s_model_get (self, txn, a->name, &m);
    if (rc != TY_OK)
        return rc;
    if (a->version) {
        cJSON *doc = NULL;
        rc = s_version_get (self, txn, a->name, a->version, &doc);
        cJSON_Delete (doc);
        if (rc != TY_OK)
            return rc;
    }
    if (m.default_version == a->version)
        return TY_OK;
    m.default_version = a->version;
    rc = s_model_put (self, txn, a->name, &m);
    s_audit_t au = { "set-default", a->version, TY_STAGE_NONE, TY_STAGE_NONE, 0, 0, NULL };
    if (rc == TY_OK)
        rc = s_audit (self, txn, a->name, &m, &au, a->by, now);
    return rc;
}

int
ty_registry_set_default (ty_registry_t *self, const char *name, uint64_t version,
                         const ty_registry_actor_t *by)
{
    if (!s_name_ok (name))
        return s_fail (self, TY_EINVAL, "bad model name");
    s_promote_t a = { name, version, TY_STAGE_NONE, 0, by, "set-default", 0 };
    return s_write (self, s_set_default_op, &a);
}

/* Highest registered version of name, 0 when none. */
static int
s_latest (ty_registry_t *self, MDB_txn *txn, const char *name, uint64_t *latest, size_t *count)
{
    MDB_cursor *cur = NULL;
    unsigned char key [S_KEY_MAX];
    size_t plen = strlen (name) + 1;
    *latest = 0;
    if (count)
        *count = 0;
    int rc = mdb_cursor_open (txn, self->dbi_versions, &cur);
    if (rc != MDB_SUCCESS)
        return s_mdb (self, rc, "versions cursor");
    memcpy (key, name, plen);
    MDB_val k = { plen, key }, v;
    for (rc = mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
         rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != plen + 8 || memcmp (k.mv_data, name, plen))
            break;
        *latest = s_get_be64 ((const unsigned char *) k.mv_data + plen);
        if (count)
            (*count)++;
    }
    mdb_cursor_close (cur);
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? TY_OK : s_mdb (self, rc, "versions scan");
}

static int
s_delete_op (ty_registry_t *self, MDB_txn *txn, void *arg)
{
    s_promote_t *a = arg;
    uint64_t now = s_now_ms ();
    s_model_t m;
    int rc = s_model_get (self, txn, a->name, &m);
    if (rc != TY_OK)
        return rc;
    cJSON *doc = NULL;
    if ((rc = s_version_get (self, txn, a->name, a->version, &doc)) != TY_OK)
        return rc;
    ty_stage_t from = s_version_stage (doc);
    cJSON_Delete (doc);
    if (m.production == a->version)
        return s_fail (self, TY_ESTATE, "%s@%llu is production: promote another version or roll "
                       "back first", a->name, (unsigned long long) a->version);
    if (m.default_version == a->version)
        return s_fail (self, TY_ESTATE, "%s@%llu is the default version: name another default "
                       "first", a->name, (unsigned long long) a->version);
    if (m.canary == a->version) {
        m.canary = 0;
        m.rollout = 0;
    }
    size_t keep = 0;
    for (size_t i = 0; i < m.n_previous; i++)
        if (m.previous [i] != a->version)
            m.previous [keep++] = m.previous [i];
    m.n_previous = keep;
    unsigned char key [S_KEY_MAX];
    MDB_val k = { s_version_key (key, a->name, a->version), key };
    if ((rc = s_mdb (self, mdb_del (txn, self->dbi_versions, &k, NULL), "delete")) != TY_OK)
        return rc;
    if ((rc = s_latest (self, txn, a->name, &m.latest, NULL)) != TY_OK)
        return rc;
    rc = s_model_put (self, txn, a->name, &m);
    s_audit_t au = { "delete", a->version, from, TY_STAGE_NONE, 1, 0, "deleted" };
    if (rc == TY_OK)
        rc = s_audit (self, txn, a->name, &m, &au, a->by, now);
    return rc;
}

int
ty_registry_delete (ty_registry_t *self, const char *name, uint64_t version,
                    const ty_registry_actor_t *by)
{
    if (!s_name_ok (name) || version == 0)
        return s_fail (self, TY_EINVAL, "bad model name or version");
    s_promote_t a = { name, version, TY_STAGE_NONE, 0, by, "delete", 0 };
    return s_write (self, s_delete_op, &a);
}

/* ---- reading ------------------------------------------------------------------- */

int
ty_registry_resolve (ty_registry_t *self, const char *spec, const char *device,
                     char *name_out, uint64_t *version, ty_stage_t *stage)
{
    char name [TY_REGISTRY_NAME_MAX + 1];
    *version = 0;
    self->errstr [0] = '\0';
    const char *at = spec ? strchr (spec, '@') : NULL;
    size_t nlen = spec ? (at ? (size_t) (at - spec) : strlen (spec)) : 0;
    if (nlen == 0 || nlen > TY_REGISTRY_NAME_MAX)
        return s_fail (self, TY_EINVAL, "bad model spec '%s'", spec ? spec : "");
    memcpy (name, spec, nlen);
    name [nlen] = '\0';
    const char *what = at ? at + 1 : "latest";
    if (!s_name_ok (name))
        return s_fail (self, TY_EINVAL, "bad model name '%s'", name);
    uint64_t number = 0;
    if (*what >= '0' && *what <= '9') {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull (what, &end, 10);
        if (errno || *end || n == 0)
            return s_fail (self, TY_EINVAL, "bad version '%s'", what);
        number = n;
    }
    else if (strcmp (what, "production") && strcmp (what, "canary") && strcmp (what, "default")
             && strcmp (what, "latest") && strcmp (what, "serving"))
        return s_fail (self, TY_EINVAL, "'%s': give a version number, production, canary, "
                       "default, latest or serving", what);
    if (!strcmp (what, "serving") && (!device || !*device))
        return s_fail (self, TY_EINVAL, "serving: which version depends on the device; give its id");

    MDB_txn *txn = NULL;
    int rc = s_read_begin (self, &txn);
    if (rc != TY_OK)
        return rc;
    s_model_t m;
    if ((rc = s_model_get (self, txn, name, &m)) == TY_OK) {
        uint64_t v = number;
        if (!strcmp (what, "production"))
            v = m.production;
        else if (!strcmp (what, "canary"))
            v = m.canary;
        else if (!strcmp (what, "default"))
            v = m.default_version;
        else if (!strcmp (what, "latest"))
            v = m.latest;
        else if (!strcmp (what, "serving"))
            v = m.canary && ty_registry_device_bucket (device) < (unsigned) m.rollout
                ? m.canary : m.production;
        cJSON *doc = NULL;
        if (v == 0)
            rc = s_fail (self, TY_ENOTFOUND, "%s has no %s version", name, what);
        else if ((rc = s_version_get (self, txn, name, v, &doc)) == TY_OK) {
            *version = v;
            if (stage)
                *stage = s_version_stage (doc);
            if (name_out)
                memcpy (name_out, name, nlen + 1);
        }
        cJSON_Delete (doc);
    }
    mdb_txn_abort (txn);
    return rc;
}

int
ty_registry_model (ty_registry_t *self, const char *name, ty_registry_model_t *out)
{
    memset (out, 0, sizeof *out);
    if (!s_name_ok (name))
        return s_fail (self, TY_EINVAL, "bad model name");
    MDB_txn *txn = NULL;
    int rc = s_read_begin (self, &txn);
    if (rc != TY_OK)
        return rc;
    s_model_t m;
    if ((rc = s_model_get (self, txn, name, &m)) == TY_OK) {
        uint64_t latest = 0;
        rc = s_latest (self, txn, name, &latest, &out->n_versions);
        out->production = m.production;
        out->canary = m.canary;
        out->rollout = m.rollout;
        out->default_version = m.default_version;
        out->latest = m.latest;
        out->n_previous = m.n_previous;
    }
    mdb_txn_abort (txn);
    return rc;
}

int
ty_registry_version_stage (ty_registry_t *self, const char *name, uint64_t version,
                           ty_stage_t *stage, int *rollout)
{
    if (!s_name_ok (name))
        return s_fail (self, TY_EINVAL, "bad model name");
    MDB_txn *txn = NULL;
    int rc = s_read_begin (self, &txn);
    if (rc != TY_OK)
        return rc;
    cJSON *doc = NULL;
    if ((rc = s_version_get (self, txn, name, version, &doc)) == TY_OK) {
        *stage = s_version_stage (doc);
        if (rollout)
            *rollout = (int) s_u64 (doc, "rollout");
    }
    cJSON_Delete (doc);
    mdb_txn_abort (txn);
    return rc;
}

int
ty_registry_version_json (ty_registry_t *self, const char *name, uint64_t version,
                          cJSON **out)
{
    *out = NULL;
    if (!s_name_ok (name))
        return s_fail (self, TY_EINVAL, "bad model name");
    MDB_txn *txn = NULL;
    int rc = s_read_begin (self, &txn);
    if (rc != TY_OK)
        return rc;
    rc = s_version_get (self, txn, name, version, out);
    mdb_txn_abort (txn);
    return rc;
}

/* Appends every version record of name to arr. */
static int
s_versions_json (ty_registry_t *self, MDB_txn *txn, const char *name, cJSON *arr)
{
    MDB_cursor *cur = NULL;
    unsigned char key [S_KEY_MAX];
    size_t plen = strlen (name) + 1;
    int rc = mdb_cursor_open (txn, self->dbi_versions, &cur);
    if (rc != MDB_SUCCESS)
        return s_mdb (self, rc, "versions cursor");
    memcpy (key, name, plen);
    MDB_val k = { plen, key }, v;
    int status = TY_OK;
    for (rc = mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
         rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != plen + 8 || memcmp (k.mv_data, name, plen))
            break;
        cJSON *doc = cJSON_ParseWithLength (v.mv_data, v.mv_size);
        if (!doc || !cJSON_AddItemToArray (arr, doc)) {
            cJSON_Delete (doc);
            status = s_fail (self, TY_EPROTO, "%s: unreadable version record", name);
            break;
        }
    }
    mdb_cursor_close (cur);
    if (status == TY_OK && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        status = s_mdb (self, rc, "versions scan");
    return status;
}

int
ty_registry_model_json (ty_registry_t *self, const char *name, cJSON **out)
{
    *out = NULL;
    if (!s_name_ok (name))
        return s_fail (self, TY_EINVAL, "bad model name");
    MDB_txn *txn = NULL;
    int rc = s_read_begin (self, &txn);
    if (rc != TY_OK)
        return rc;
    cJSON *doc = NULL;
    rc = s_get_json (self, txn, self->dbi_models, name, strlen (name), &doc);
    if (rc == TY_ENOTFOUND)
        s_fail (self, rc, "no model %s in the registry", name);
    cJSON *arr = rc == TY_OK ? cJSON_AddArrayToObject (doc, "versions") : NULL;
    if (rc == TY_OK && !arr)
        rc = s_fail (self, TY_ENOMEM, "out of memory");
    if (rc == TY_OK)
        rc = s_versions_json (self, txn, name, arr);
    mdb_txn_abort (txn);
    if (rc != TY_OK) {
        cJSON_Delete (doc);
        return rc;
    }
    *out = doc;
    return TY_OK;
}

int
ty_registry_models_json (ty_registry_t *self, cJSON **out)
{
    *out = NULL;
    MDB_txn *txn = NULL;
    int rc = s_read_begin (self, &txn);
    if (rc != TY_OK)
        return rc;
    cJSON *arr = cJSON_CreateArray ();
    MDB_cursor *cur = NULL;
    if (!arr)
        rc = s_fail (self, TY_ENOMEM, "out of memory");
    else
        rc = s_mdb (self, mdb_cursor_open (txn, self->dbi_models, &cur), "models cursor");
    MDB_val k, v;
    int mrc = MDB_NOTFOUND;
    for (mrc = rc == TY_OK ? mdb_cursor_get (cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
         rc == TY_OK && mrc == MDB_SUCCESS; mrc = mdb_cursor_get (cur, &k, &v, MDB_NEXT)) {
        char name [TY_REGISTRY_NAME_MAX + 1];
        if (k.mv_size > TY_REGISTRY_NAME_MAX)
            continue;
        memcpy (name, k.mv_data, k.mv_size);
        name [k.mv_size] = '\0';
        cJSON *doc = cJSON_ParseWithLength (v.mv_data, v.mv_size);
        uint64_t latest = 0;
        size_t count = 0;
        if (!doc || !cJSON_AddItemToArray (arr, doc)) {
            cJSON_Delete (doc);
            rc = s_fail (self, TY_EPROTO, "%s: unreadable model record", name);
            break;
        }
        cJSON_DeleteItemFromObjectCaseSensitive (doc, "previous");
        if ((rc = s_latest (self, txn, name, &latest, &count)) == TY_OK
            && !cJSON_AddNumberToObject (doc, "versions", (double) count))
            rc = s_fail (self, TY_ENOMEM, "out of memory");
    }
    if (rc == TY_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = s_mdb (self, mrc, "models scan");
    if (cur)
        mdb_cursor_close (cur);
    mdb_txn_abort (txn);
    if (rc != TY_OK) {
        cJSON_Delete (arr);
        return rc;
    }
    *out = arr;
    return TY_OK;
}

int
ty_registry_history_json (ty_registry_t *self, const char *name, cJSON **out)
{
    *out = NULL;
    if (name && !s_name_ok (name))
        return s_fail (self, TY_EINVAL, "bad model name");
    MDB_txn *txn = NULL;
    int rc = s_read_begin (self, &txn);
    if (rc != TY_OK)
        return rc;
    cJSON *arr = cJSON_CreateArray ();
    MDB_cursor *cur = NULL;
    if (!arr)
        rc = s_fail (self, TY_ENOMEM, "out of memory");
    else
        rc = s_mdb (self, mdb_cursor_open (txn, self->dbi_audit, &cur), "audit cursor");
    MDB_val k, v;
    int mrc = MDB_NOTFOUND;
    for (mrc = rc == TY_OK ? mdb_cursor_get (cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
         rc == TY_OK && mrc == MDB_SUCCESS; mrc = mdb_cursor_get (cur, &k, &v, MDB_NEXT)) {
        cJSON *doc = cJSON_ParseWithLength (v.mv_data, v.mv_size);
        if (!doc) {
            rc = s_fail (self, TY_EPROTO, "unreadable audit entry");
            break;
        }
        const char *model = s_str (doc, "model");
        if (name && (!model || strcmp (model, name))) {
            cJSON_Delete (doc);
            continue;
        }
        if (!cJSON_AddItemToArray (arr, doc)) {
            cJSON_Delete (doc);
            rc = s_fail (self, TY_ENOMEM, "out of memory");
        }
    }
    if (rc == TY_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = s_mdb (self, mrc, "audit scan");
    if (cur)
        mdb_cursor_close (cur);
    mdb_txn_abort (txn);
    if (rc != TY_OK) {
        cJSON_Delete (arr);
        return rc;
    }
    *out = arr;
    return TY_OK;
}

int
ty_registry_record (const char *data_dir, const char *name, uint64_t version,
                    const char *job_id, const char *why, char *why_out, size_t why_len)
{
    ty_registry_t *reg = NULL;
    char who [64];
    snprintf (who, sizeof who, "job %s", job_id ? job_id : "?");
    ty_registry_actor_t by = { .who = who, .why = why, .force = 0 };
    int rc = ty_registry_open (data_dir, &reg);
    if (rc == TY_OK)
        rc = ty_registry_register (reg, name, version, &by, NULL);
    if (rc != TY_OK && why_out)
        snprintf (why_out, why_len, "%s", reg && *ty_registry_errstr (reg)
                  ? ty_registry_errstr (reg) : ty_strerror (rc));
    ty_registry_destroy (&reg);
    return rc;
}

/* ---- artifact notes ------------------------------------------------------------ */

typedef struct {
    const char                *name;
    uint64_t                   version;
    const char                *file;
    const char                *target;
    const cJSON               *metrics;
    const ty_registry_actor_t *by;
} s_note_t;

static int
s_note_op (ty_registry_t *self, MDB_txn *txn, void *arg)
{
    s_note_t *a = arg;
    uint64_t now = s_now_ms ();
    s_model_t m;
    int rc = s_model_get (self, txn, a->name, &m);
    cJSON *doc = NULL;
    if (rc == TY_OK)
        rc = s_version_get (self, txn, a->name, a->version, &doc);
    if (rc != TY_OK)
        return rc;
    /* The note names the artifact by its digest as registered now: a later
     * file under the same name (a new conversion) is told apart by it. */
    const char *sha = NULL;
    const cJSON *x;
    cJSON_ArrayForEach (x, cJSON_GetObjectItemCaseSensitive (doc, "artifacts")) {
        const char *f = s_str (x, "file");
        if (f && !strcmp (f, a->file))
            sha = s_str (x, "sha256");
    }
    if (!sha) {
        cJSON_Delete (doc);
        return s_fail (self, TY_ENOTFOUND, "%s@%llu has no artifact %s (register it first)",
                       a->name, (unsigned long long) a->version, a->file);
    }
    cJSON *notes = cJSON_GetObjectItemCaseSensitive (doc, "notes");
    if (!cJSON_IsObject (notes)) {
        notes = cJSON_CreateObject ();
        if (!s_set (doc, "notes", notes)) {
            cJSON_Delete (notes);
            cJSON_Delete (doc);
            return s_fail (self, TY_ENOMEM, "out of memory");
        }
    }
    char who [TY_REGISTRY_TEXT_MAX + 1];
    snprintf (who, sizeof who, "%s", a->by && a->by->who && *a->by->who ? a->by->who : "unknown");
    cJSON *n = cJSON_CreateObject ();
    cJSON *mx = a->metrics ? cJSON_Duplicate (a->metrics, 1) : cJSON_CreateObject ();
    int ok = n && mx
        && cJSON_AddStringToObject (n, "target", a->target ? a->target : "")
        && cJSON_AddStringToObject (n, "sha256", sha)
        && cJSON_AddNumberToObject (n, "time_ms", (double) now)
        && cJSON_AddStringToObject (n, "who", who);
    if (ok) {
        ok = cJSON_AddItemToObject (n, "metrics", mx);
        if (ok)
            mx = NULL;
    }
    if (ok) {
        ok = s_set (notes, a->file, n);
        if (ok)
            n = NULL;
    }
    cJSON_Delete (mx);
    cJSON_Delete (n);
    if (!ok) {
        cJSON_Delete (doc);
        return s_fail (self, TY_ENOMEM, "out of memory");
    }
    ty_stage_t st = s_version_stage (doc);
    rc = s_version_put (self, txn, a->name, a->version, doc);
    cJSON_Delete (doc);
    s_audit_t au = { "note", a->version, st, st, 0, 0, NULL };
    if (rc == TY_OK)
        rc = s_audit (self, txn, a->name, &m, &au, a->by, now);
    return rc;
}

int
ty_registry_artifact_note (ty_registry_t *self, const char *name, uint64_t version,
                           const char *file, const char *target, const cJSON *metrics,
                           const ty_registry_actor_t *by)
{
    if (!s_name_ok (name) || version == 0)
        return s_fail (self, TY_EINVAL, "bad model name or version");
    if (!file || !*file || strlen (file) > TY_REGISTRY_TEXT_MAX || strchr (file, '/'))
        return s_fail (self, TY_EINVAL, "bad artifact file name");
    if (target && strlen (target) > TY_REGISTRY_TEXT_MAX)
        return s_fail (self, TY_EINVAL, "target too long");
    if (metrics && !cJSON_IsObject (metrics))
        return s_fail (self, TY_EINVAL, "metrics must be a JSON object");
    s_note_t a = { name, version, file, target, metrics, by };
    return s_write (self, s_note_op, &a);
}

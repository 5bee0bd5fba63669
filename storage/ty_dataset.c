/*  ty_dataset: dataset versions in LMDB (see ty_dataset.h for the layout,
 *  the commit protocol and the content hash). */
#include "ty_dataset.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ty_error.h"
#include "ty_log.h"

#define S_DB_META        "meta"
#define S_META_KEY       "meta"
#define S_DIR_DATASETS   "datasets"
#define S_LOCK_FILE      ".lock"
#define S_TMP_PREFIX     ".tmp-"
#define S_RM_PREFIX      ".rm-"
#define S_OWNER_FILE     "owner"
#define S_HASH_DOMAIN    "ty-dataset-1"
/* meta + 4 splits, with room for later dbs. */
#define S_MAX_DBS        8
#define S_SHA256_BYTES   32
/* Key of field 100 (fold), varint wire type: (100 << 3) | 0 as a varint. */
#define S_FOLD_TAG_0     0xA0
#define S_FOLD_TAG_1     0x06
#define S_VARINT_MAX     10
#define S_DIR_MODE       0755
#define S_FILE_MODE      0644
#define S_IO_CHUNK_BYTES (1u << 20)
/* Shuffled iteration prefetches a batch's samples with this locality of
 * __builtin_prefetch (2: into L2, where a batch of short samples fits).
 * Measured with bench/dataset: 2 and 3 about the same, 0 (non-temporal)
 * twice slower than either. */
#define S_PREFETCH_LOCALITY 2
/* Swap targets of a shuffle asked for ahead of their swaps. */
#define S_SHUFFLE_AHEAD     32
/* An odd 64-bit constant (from splitmix64's family) spreading window
 * numbers over the seed space. */
#define S_WINDOW_SEED_MUL   0xD1B54A32D192ED03ull

static const char *s_split_names[TY_SPLIT_COUNT] = { "train", "val", "test", "calib" };

const char *
ty_split_name (ty_split_t split)
{
    return (unsigned) split < TY_SPLIT_COUNT ? s_split_names[split] : "?";
}

int
ty_split_parse (const char *text, ty_split_t *split)
{
    for (int i = 0; text && i < TY_SPLIT_COUNT; i++)
        if (strcmp (text, s_split_names[i]) == 0) {
            *split = (ty_split_t) i;
            return TY_OK;
        }
    return TY_EINVAL;
}

/* ==== helpers ============================================================ */

static void
s_put_be64 (uint8_t *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t) (v & 0xff);
        v >>= 8;
    }
}

static uint64_t
s_get_be64 (const uint8_t *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

static void
s_hex (const uint8_t *bytes, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[bytes[i] >> 4];
        hex[2 * i + 1] = digits[bytes[i] & 0xf];
    }
    hex[2 * n] = '\0';
}

static int
s_mdb_status (int rc, const char *what)
{
    if (rc == MDB_SUCCESS)
        return TY_OK;
    if (rc == MDB_NOTFOUND)
        return TY_ENOTFOUND;
    if (rc > 0)
        return rc;    /* errno from LMDB */
    ty_error ("lmdb %s: %s", what, mdb_strerror (rc));
    return TY_ESTORE;
}

static int
s_mkdir_p (const char *path)
{
    char buf[PATH_MAX];
    if (snprintf (buf, sizeof buf, "%s", path) >= (int) sizeof buf)
        return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir (buf, S_DIR_MODE) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir (buf, S_DIR_MODE) != 0 && errno != EEXIST)
        return errno;
    return TY_OK;
}

static int
s_rm_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) ftw;
    int rc = (flag == FTW_DP) ? rmdir (path) : unlink (path);
    return rc == 0 || errno == ENOENT ? 0 : errno;
}

/* rm -rf path. TY_OK or errno. */
static int
s_rm_rf (const char *path)
{
    int rc = nftw (path, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc == -1)
        return errno == ENOENT ? TY_OK : errno;
    return rc;
}

static int
s_fsync_path (const char *path)
{
    int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync (fd) == 0 ? TY_OK : errno;
    close (fd);
    return rc;
}

/* Locks <dir>/.lock (created as needed); returns the fd, or -errno. */
static int
s_lock_dir (const char *dir)
{
    char path[PATH_MAX];
    if (snprintf (path, sizeof path, "%s/%s", dir, S_LOCK_FILE) >= (int) sizeof path)
        return -ENAMETOOLONG;
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, S_FILE_MODE);
    if (fd < 0)
        return -errno;
    while (flock (fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close (fd);
            return -e;
        }
    }
    return fd;
}

static void
s_unlock_dir (int fd)
{
    if (fd >= 0) {
        (void) flock (fd, LOCK_UN);
        close (fd);
    }
}

static int
s_path (char *out, const char *a, const char *b, const char *c)
{
    int n = c ? snprintf (out, PATH_MAX, "%s/%s/%s", a, b, c)
              : snprintf (out, PATH_MAX, "%s/%s", a, b);
    return n >= PATH_MAX ? ENAMETOOLONG : TY_OK;
}

/* A version directory name: decimal digits, no leading zero. */
static bool
s_version_parse (const char *s, uint64_t *v)
{
    if (!isdigit ((unsigned char) s[0]) || s[0] == '0')
        return false;
    uint64_t x = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit ((unsigned char) *p) || x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t) (*p - '0');
    }
    *v = x;
    return true;
}

static int
s_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

/* Versions in name_dir, ascending (malloc'd). TY_OK or errno. */
static int
s_versions_in (const char *name_dir, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir (name_dir);
    if (!d)
        return errno;
    size_t cap = 0;
    struct dirent *e;
    int rc = TY_OK;
    while ((e = readdir (d))) {
        uint64_t v;
        if (!s_version_parse (e->d_name, &v))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *grown = realloc (*out, cap * sizeof **out);
            if (!grown) {
                rc = TY_ENOMEM;
                break;
            }
            *out = grown;
        }
        (*out)[(*n)++] = v;
    }
    closedir (d);
    if (rc != TY_OK) {
        free (*out);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1)
        qsort (*out, *n, sizeof **out, s_cmp_u64);
    return TY_OK;
}

/* ==== names ============================================================== */

int
ty_dataset_name_check (const char *name, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (!name || !*name) {
        *why = "dataset name is empty";
        return TY_EINVAL;
    }
    size_t len = strlen (name);
    if (len > TY_DATASET_NAME_MAX) {
        *why = "dataset name is longer than 64 characters";
        return TY_EINVAL;
    }
    if (strstr (name, "..") || name[0] == '.') {
        *why = "dataset name may not start with '.' or contain '..' (no path traversal)";
        return TY_EINVAL;
    }
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (c == '/') {
            *why = "dataset name may not contain '/' (no paths)";
            return TY_EINVAL;
        }
        if (!(isalnum (c) || c == '_' || c == '.' || c == '-')) {
            *why = "dataset name allows only letters, digits, '_', '.', '-'";
            return TY_EINVAL;
        }
    }
    return TY_OK;
}

int
ty_dataset_spec_parse (const char *spec, char *name_out, uint64_t *version,
                       const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (!spec) {
        *why = "no dataset given";
        return TY_EINVAL;
    }
    const char *at = strchr (spec, '@');
    size_t len = at ? (size_t) (at - spec) : strlen (spec);
    if (len > TY_DATASET_NAME_MAX) {
        *why = "dataset name is longer than 64 characters";
        return TY_EINVAL;
    }
    memcpy (name_out, spec, len);
    name_out[len] = '\0';
    int rc = ty_dataset_name_check (name_out, why);
    if (rc != TY_OK)
        return rc;
    *version = 0;
    if (at && !s_version_parse (at + 1, version)) {
        *why = "version after '@' must be a positive integer";
        return TY_EINVAL;
    }
    return TY_OK;
}

/* ==== writer ============================================================= */

typedef struct {
    uint8_t  split;
    uint64_t key;
    size_t   off;
    size_t   len;
} s_pending_t;

struct _ty_dataset_writer_t {
    char        *name;
    char         name_dir[PATH_MAX];
    char         tmp_dir[PATH_MAX];
    int          owner_fd;
    MDB_env     *env;
    MDB_dbi      dbi_meta;
    MDB_dbi      dbi[TY_SPLIT_COUNT];
    uint64_t     count[TY_SPLIT_COUNT];
    EVP_MD_CTX  *sha[TY_SPLIT_COUNT];
    size_t       map_bytes;
    size_t       txn_bytes;
    /* Samples not yet in a committed LMDB txn, replayed on MDB_MAP_FULL. */
    uint8_t     *buf;
    size_t       buf_len, buf_cap;
    s_pending_t *pend;
    size_t       pend_n, pend_cap;
    int          err;        /* sticky: a failed writer only aborts */
};

/* Deletes temp dirs of dead writers. Called with the name's .lock held. */
static void
s_clean_stale (const char *name_dir)
{
    DIR *d = opendir (name_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir (d))) {
        bool tmp = strncmp (e->d_name, S_TMP_PREFIX, strlen (S_TMP_PREFIX)) == 0;
        bool rm = strncmp (e->d_name, S_RM_PREFIX, strlen (S_RM_PREFIX)) == 0;
        if (!tmp && !rm)
            continue;
        char path[PATH_MAX], owner[PATH_MAX];
        if (s_path (path, name_dir, e->d_name, NULL) != TY_OK
            || s_path (owner, name_dir, e->d_name, S_OWNER_FILE) != TY_OK)
            continue;
        if (tmp) {
            int fd = open (owner, O_RDWR | O_CLOEXEC);
            if (fd >= 0) {
                bool alive = flock (fd, LOCK_EX | LOCK_NB) != 0;
                close (fd);
                if (alive)
                    continue;
            }
        }
        ty_info ("removing stale %s", path);
        (void) s_rm_rf (path);
    }
    closedir (d);
}

static int
s_writer_grow (ty_dataset_writer_t *self)
{
    size_t bigger = self->map_bytes * 2;
    int rc = mdb_env_set_mapsize (self->env, bigger);
    if (rc != MDB_SUCCESS)
        return s_mdb_status (rc, "set_mapsize");
    ty_debug ("dataset %s: map %zu -> %zu bytes", self->name, self->map_bytes, bigger);
    self->map_bytes = bigger;
    return TY_OK;
}

/* Writes the pending samples in one txn; on MDB_MAP_FULL grows the map and
 * replays them. */
static int
s_writer_flush (ty_dataset_writer_t *self)
{
    if (self->pend_n == 0)
        return TY_OK;
    for (;;) {
        MDB_txn *txn;
        int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (rc != MDB_SUCCESS)
            return s_mdb_status (rc, "txn_begin");
        for (size_t i = 0; i < self->pend_n && rc == MDB_SUCCESS; i++) {
            s_pending_t *p = &self->pend[i];
            uint8_t kb[8];
            s_put_be64 (kb, p->key);
            MDB_val k = { sizeof kb, kb };
            MDB_val v = { p->len, self->buf + p->off };
            /* Keys grow within each split: MDB_APPEND fills pages fully
             * and skips the search. */
            rc = mdb_put (txn, self->dbi[p->split], &k, &v, MDB_APPEND);
        }
        if (rc == MDB_SUCCESS)
            rc = mdb_txn_commit (txn);
        else
            mdb_txn_abort (txn);
        if (rc == MDB_MAP_FULL) {
            int g = s_writer_grow (self);
            if (g != TY_OK)
                return g;
            continue;
        }
        if (rc != MDB_SUCCESS)
            return s_mdb_status (rc, "put");
        break;
    }
    self->pend_n = 0;
    self->buf_len = 0;
    return TY_OK;
}

int
ty_dataset_writer_new (const char *data_dir, const char *name,
                       const ty_dataset_writer_opts_t *opts,
                       ty_dataset_writer_t **self_p)
{
    *self_p = NULL;
    const char *why;
    if (!data_dir || ty_dataset_name_check (name, &why) != TY_OK) {
        ty_error ("dataset writer: %s", data_dir ? why : "no data dir");
        return TY_EINVAL;
    }
    ty_dataset_writer_t *self = calloc (1, sizeof *self);
    if (!self)
        return TY_ENOMEM;
    self->owner_fd = -1;
    self->name = strdup (name);
    self->map_bytes = opts && opts->initial_map_bytes ? opts->initial_map_bytes
                                                     : TY_DATASET_MAP_INITIAL_BYTES;
    self->txn_bytes = opts && opts->txn_bytes ? opts->txn_bytes : TY_DATASET_TXN_BYTES;
    int rc = self->name ? TY_OK : TY_ENOMEM;
    for (int i = 0; rc == TY_OK && i < TY_SPLIT_COUNT; i++) {
        self->sha[i] = EVP_MD_CTX_new ();
        if (!self->sha[i] || EVP_DigestInit_ex (self->sha[i], EVP_sha256 (), NULL) != 1)
            rc = TY_ENOMEM;
    }
    char datasets[PATH_MAX];
    if (rc == TY_OK)
        rc = s_path (datasets, data_dir, S_DIR_DATASETS, NULL);
    if (rc == TY_OK)
        rc = s_path (self->name_dir, datasets, name, NULL);
    if (rc == TY_OK)
        rc = s_mkdir_p (self->name_dir);
    if (rc != TY_OK) {
        ty_dataset_writer_destroy (&self);
        return rc;
    }
    /* Creating the temp dir and its owner lock under the name's lock, so
     * a cleaner never sees it without an owner. */
    int lock = s_lock_dir (self->name_dir);
    if (lock < 0) {
        ty_dataset_writer_destroy (&self);
        return -lock;
    }
    s_clean_stale (self->name_dir);
    if (snprintf (self->tmp_dir, sizeof self->tmp_dir, "%s/%sXXXXXX", self->name_dir,
                  S_TMP_PREFIX) >= (int) sizeof self->tmp_dir)
        rc = ENAMETOOLONG;
    else if (!mkdtemp (self->tmp_dir)) {
        rc = errno;
        self->tmp_dir[0] = '\0';
    }
    if (rc == TY_OK) {
        char owner[PATH_MAX];
        rc = s_path (owner, self->tmp_dir, S_OWNER_FILE, NULL);
        if (rc == TY_OK) {
            self->owner_fd = open (owner, O_RDWR | O_CREAT | O_CLOEXEC, S_FILE_MODE);
            if (self->owner_fd < 0 || flock (self->owner_fd, LOCK_EX) != 0)
                rc = errno;
        }
    }
    s_unlock_dir (lock);
    if (rc != TY_OK) {
        ty_dataset_writer_destroy (&self);
        return rc;
    }

    MDB_txn *txn = NULL;
    int mrc = mdb_env_create (&self->env);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxdbs (self->env, S_MAX_DBS);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_mapsize (self->env, self->map_bytes);
    /* No sync per txn: the whole version is synced once at commit, and an
     * unsynced temp dir is thrown away after a crash anyway. */
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_open (self->env, self->tmp_dir, MDB_NOSYNC | MDB_NOMETASYNC,
                            S_FILE_MODE);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open (txn, S_DB_META, MDB_CREATE, &self->dbi_meta);
    for (int i = 0; mrc == MDB_SUCCESS && i < TY_SPLIT_COUNT; i++)
        mrc = mdb_dbi_open (txn, s_split_names[i], MDB_CREATE, &self->dbi[i]);
    if (mrc == MDB_SUCCESS) {
        mrc = mdb_txn_commit (txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort (txn);
    if (mrc != MDB_SUCCESS) {
        rc = s_mdb_status (mrc, "open writer env");
        ty_dataset_writer_destroy (&self);
        return rc;
    }
    *self_p = self;
    return TY_OK;
}

/* Room for `len` more bytes in the pending buffer and one pending entry. */
static int
s_writer_reserve (ty_dataset_writer_t *self, size_t len)
{
    if (self->buf_len + len > self->buf_cap) {
        size_t cap = self->buf_cap ? self->buf_cap : (1u << 16);
        while (cap < self->buf_len + len)
            cap *= 2;
        uint8_t *grown = realloc (self->buf, cap);
        if (!grown)
            return TY_ENOMEM;
        self->buf = grown;
        self->buf_cap = cap;
    }
    if (self->pend_n == self->pend_cap) {
        size_t cap = self->pend_cap ? self->pend_cap * 2 : 1024;
        s_pending_t *grown = realloc (self->pend, cap * sizeof *grown);
        if (!grown)
            return TY_ENOMEM;
        self->pend = grown;
        self->pend_cap = cap;
    }
    return TY_OK;
}

/* The last `len` bytes of buf are a new sample of `split`: hash, queue. */
static int
s_writer_queue (ty_dataset_writer_t *self, ty_split_t split, size_t len)
{
    size_t off = self->buf_len;
    uint8_t lb[8];
    s_put_be64 (lb, len);
    if (EVP_DigestUpdate (self->sha[split], lb, sizeof lb) != 1
        || EVP_DigestUpdate (self->sha[split], self->buf + off, len) != 1)
        return TY_EINTERNAL;
    self->pend[self->pend_n++] = (s_pending_t) {
        .split = (uint8_t) split, .key = self->count[split], .off = off, .len = len };
    self->buf_len += len;
    self->count[split]++;
    if (self->buf_len >= self->txn_bytes)
        return s_writer_flush (self);
    return TY_OK;
}

int
ty_dataset_writer_add (ty_dataset_writer_t *self, ty_split_t split,
                       const Ty__Sample *sample)
{
    if (!self || !sample || (unsigned) split >= TY_SPLIT_COUNT)
        return TY_EINVAL;
    if (self->err)
        return self->err;
    size_t len = ty__sample__get_packed_size (sample);
    int rc = s_writer_reserve (self, len);
    if (rc == TY_OK) {
        size_t got = ty__sample__pack (sample, self->buf + self->buf_len);
        rc = got == len ? s_writer_queue (self, split, len) : TY_EINTERNAL;
    }
    if (rc != TY_OK)
        self->err = rc;
    return rc;
}

int
ty_dataset_writer_add_packed (ty_dataset_writer_t *self, ty_split_t split,
                              const void *data, size_t size, uint32_t fold)
{
    if (!self || (!data && size) || (unsigned) split >= TY_SPLIT_COUNT)
        return TY_EINVAL;
    if (self->err)
        return self->err;
    int rc = s_writer_reserve (self, size + 2 + S_VARINT_MAX);
    if (rc != TY_OK) {
        self->err = rc;
        return rc;
    }
    uint8_t *p = self->buf + self->buf_len;
    if (size)
        memcpy (p, data, size);
    size_t len = size;
    if (fold) {
        /* fold is Sample's highest field: appending it keeps the encoding
         * canonical (see proto/sample.proto). */
        p[len++] = S_FOLD_TAG_0;
        p[len++] = S_FOLD_TAG_1;
        uint32_t v = fold;
        while (v >= 0x80) {
            p[len++] = (uint8_t) (v | 0x80);
            v >>= 7;
        }
        p[len++] = (uint8_t) v;
    }
    rc = s_writer_queue (self, split, len);
    if (rc != TY_OK)
        self->err = rc;
    return rc;
}

uint64_t
ty_dataset_writer_count (ty_dataset_writer_t *self, ty_split_t split)
{
    return self && (unsigned) split < TY_SPLIT_COUNT ? self->count[split] : 0;
}

size_t
ty_dataset_writer_map_bytes (ty_dataset_writer_t *self)
{
    return self ? self->map_bytes : 0;
}

/* The content hash (ty_dataset.h): domain, the meta fields that matter,
 * each split's digest. */
static int
s_content_hash (ty_dataset_writer_t *self, const Ty__DatasetMeta *meta, char *hex)
{
    Ty__DatasetMeta h = TY__DATASET_META__INIT;
    h.kind = meta->kind;
    h.n_labels = meta->n_labels;
    h.labels = meta->labels;
    h.seed = meta->seed;
    h.ratio_train = meta->ratio_train;
    h.ratio_val = meta->ratio_val;
    h.ratio_test = meta->ratio_test;
    h.ratio_calib = meta->ratio_calib;
    h.folds = meta->folds;
    h.cap_per_class = meta->cap_per_class;
    size_t len = ty__dataset_meta__get_packed_size (&h);
    uint8_t *packed = malloc (len ? len : 1);
    if (!packed)
        return TY_ENOMEM;
    ty__dataset_meta__pack (&h, packed);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    int ok = ctx && EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL) == 1
          && EVP_DigestUpdate (ctx, S_HASH_DOMAIN, strlen (S_HASH_DOMAIN)) == 1
          && EVP_DigestUpdate (ctx, packed, len) == 1;
    free (packed);
    for (int i = 0; ok && i < TY_SPLIT_COUNT; i++) {
        uint8_t d[S_SHA256_BYTES];
        unsigned dn = 0;
        ok = EVP_DigestFinal_ex (self->sha[i], d, &dn) == 1
          && EVP_DigestUpdate (ctx, d, dn) == 1;
    }
    uint8_t out[S_SHA256_BYTES];
    unsigned on = 0;
    ok = ok && EVP_DigestFinal_ex (ctx, out, &on) == 1 && on == S_SHA256_BYTES;
    EVP_MD_CTX_free (ctx);
    if (!ok)
        return TY_EINTERNAL;
    s_hex (out, S_SHA256_BYTES, hex);
    return TY_OK;
}

static int
s_writer_put_meta (ty_dataset_writer_t *self, const Ty__DatasetMeta *meta)
{
    size_t len = ty__dataset_meta__get_packed_size (meta);
    uint8_t *packed = malloc (len ? len : 1);
    if (!packed)
        return TY_ENOMEM;
    ty__dataset_meta__pack (meta, packed);
    int rc;
    for (;;) {
        MDB_txn *txn;
        rc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (rc != MDB_SUCCESS)
            break;
        MDB_val k = { strlen (S_META_KEY), (void *) S_META_KEY };
        MDB_val v = { len, packed };
        rc = mdb_put (txn, self->dbi_meta, &k, &v, 0);
        if (rc == MDB_SUCCESS)
            rc = mdb_txn_commit (txn);
        else
            mdb_txn_abort (txn);
        if (rc == MDB_MAP_FULL && s_writer_grow (self) == TY_OK)
            continue;
        break;
    }
    free (packed);
    return s_mdb_status (rc, "put meta");
}

int
ty_dataset_writer_commit (ty_dataset_writer_t **self_p, const Ty__DatasetMeta *meta,
                          uint64_t *version, char *hash_hex)
{
    ty_dataset_writer_t *self = self_p ? *self_p : NULL;
    if (!self)
        return TY_EINVAL;
    int rc = self->err ? self->err : s_writer_flush (self);
    Ty__DatasetMeta empty = TY__DATASET_META__INIT;
    Ty__DatasetMeta m = meta ? *meta : empty;
    char hex[2 * S_SHA256_BYTES + 1];
    if (rc == TY_OK)
        rc = s_content_hash (self, &m, hex);
    int lock = -1;
    if (rc == TY_OK) {
        lock = s_lock_dir (self->name_dir);
        if (lock < 0)
            rc = -lock;
    }
    uint64_t next = 0;
    if (rc == TY_OK) {
        uint64_t *vs;
        size_t n;
        rc = s_versions_in (self->name_dir, &vs, &n);
        if (rc == TY_OK) {
            next = n ? vs[n - 1] + 1 : 1;
            free (vs);
        }
    }
    if (rc == TY_OK) {
        m.format_version = TY_DATASET_FORMAT_VERSION;
        m.name = self->name;
        m.version = next;
        m.count_train = self->count[TY_SPLIT_TRAIN];
        m.count_val = self->count[TY_SPLIT_VAL];
        m.count_test = self->count[TY_SPLIT_TEST];
        m.count_calib = self->count[TY_SPLIT_CALIB];
        m.content_hash = hex;
        m.created_unix = (int64_t) time (NULL);
        rc = s_writer_put_meta (self, &m);
    }
    if (rc == TY_OK)
        rc = s_mdb_status (mdb_env_sync (self->env, 1), "env_sync");
    if (rc == TY_OK) {
        mdb_env_close (self->env);
        self->env = NULL;
        rc = s_fsync_path (self->tmp_dir);
    }
    char final_dir[PATH_MAX];
    if (rc == TY_OK) {
        char vname[24];
        snprintf (vname, sizeof vname, "%" PRIu64, next);
        rc = s_path (final_dir, self->name_dir, vname, NULL);
    }
    if (rc == TY_OK) {
        char owner[PATH_MAX];
        if (s_path (owner, self->tmp_dir, S_OWNER_FILE, NULL) == TY_OK)
            (void) unlink (owner);
        if (rename (self->tmp_dir, final_dir) != 0)
            rc = errno;
        else {
            self->tmp_dir[0] = '\0';   /* nothing to clean up any more */
            rc = s_fsync_path (self->name_dir);
        }
    }
    s_unlock_dir (lock);
    if (rc == TY_OK) {
        if (version)
            *version = next;
        if (hash_hex)
            memcpy (hash_hex, hex, sizeof hex);
        ty_info ("dataset %s@%" PRIu64 " committed (%" PRIu64 "/%" PRIu64 "/%" PRIu64
                 "/%" PRIu64 ")", self->name, next, self->count[0], self->count[1],
                 self->count[2], self->count[3]);
    }
    ty_dataset_writer_destroy (self_p);
    return rc;
}

void
ty_dataset_writer_destroy (ty_dataset_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_dataset_writer_t *self = *self_p;
    if (self->env)
        mdb_env_close (self->env);
    if (self->tmp_dir[0])
        (void) s_rm_rf (self->tmp_dir);
    if (self->owner_fd >= 0)
        close (self->owner_fd);
    for (int i = 0; i < TY_SPLIT_COUNT; i++)
        EVP_MD_CTX_free (self->sha[i]);
    free (self->buf);
    free (self->pend);
    free (self->name);
    free (self);
    *self_p = NULL;
}

/* ==== reader ============================================================= */

typedef struct {
    const void *data;
    size_t      size;
} s_ref_t;

struct _ty_dataset_t {
    char              name[TY_DATASET_NAME_MAX + 1];
    uint64_t          version;
    MDB_env          *env;
    MDB_txn          *txn;       /* read txn held for the handle's life */
    MDB_dbi           dbi[TY_SPLIT_COUNT];
    bool              has_dbi[TY_SPLIT_COUNT];
    uint64_t          count[TY_SPLIT_COUNT];
    Ty__DatasetMeta  *meta;
    size_t           *sorted_ids;      /* label ids by label, for _label_id */
    pthread_mutex_t   lock;            /* guards txn use and index building */
    s_ref_t          *index[TY_SPLIT_COUNT];  /* built on first use */
};

int
ty_dataset_open (const char *data_dir, const char *spec, ty_dataset_t **self_p)
{
    *self_p = NULL;
    char name[TY_DATASET_NAME_MAX + 1];
    uint64_t version;
    const char *why;
    if (!data_dir || ty_dataset_spec_parse (spec, name, &version, &why) != TY_OK) {
        ty_error ("dataset open: %s", data_dir ? why : "no data dir");
        return TY_EINVAL;
    }
    char name_dir[PATH_MAX], datasets[PATH_MAX];
    int rc = s_path (datasets, data_dir, S_DIR_DATASETS, NULL);
    if (rc == TY_OK)
        rc = s_path (name_dir, datasets, name, NULL);
    if (rc != TY_OK)
        return rc;
    if (version == 0) {
        uint64_t *vs;
        size_t n;
        rc = s_versions_in (name_dir, &vs, &n);
        if (rc == ENOENT || (rc == TY_OK && n == 0))
            rc = TY_ENOTFOUND;
        if (rc != TY_OK)
            return rc;
        version = vs[n - 1];
        free (vs);
    }
    char vdir[PATH_MAX], vname[24];
    snprintf (vname, sizeof vname, "%" PRIu64, version);
    if ((rc = s_path (vdir, name_dir, vname, NULL)) != TY_OK)
        return rc;
    struct stat st;
    if (stat (vdir, &st) != 0)
        return errno == ENOENT ? TY_ENOTFOUND : errno;

    ty_dataset_t *self = calloc (1, sizeof *self);
    if (!self)
        return TY_ENOMEM;
    snprintf (self->name, sizeof self->name, "%s", name);
    self->version = version;
    if (pthread_mutex_init (&self->lock, NULL) != 0) {
        free (self);
        return TY_ENOMEM;
    }
    MDB_dbi meta_dbi;
    int mrc = mdb_env_create (&self->env);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxdbs (self->env, S_MAX_DBS);
    /* Committed versions never change: no lock file, no reader table; one
     * txn per handle, used under self->lock only (MDB_NOTLS: not tied to
     * the opening thread). */
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_open (self->env, vdir, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &self->txn);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open (self->txn, S_DB_META, 0, &meta_dbi);
    MDB_val k = { strlen (S_META_KEY), (void *) S_META_KEY }, v;
    if (mrc == MDB_SUCCESS)
        mrc = mdb_get (self->txn, meta_dbi, &k, &v);
    if (mrc != MDB_SUCCESS) {
        rc = mrc == MDB_NOTFOUND ? TY_EPROTO : s_mdb_status (mrc, "open dataset");
        ty_error ("dataset %s@%" PRIu64 ": cannot open (%s)", name, version,
                  mdb_strerror (mrc));
        ty_dataset_destroy (&self);
        return rc;
    }
    self->meta = ty__dataset_meta__unpack (NULL, v.mv_size, v.mv_data);
    if (!self->meta || self->meta->format_version > TY_DATASET_FORMAT_VERSION) {
        ty_error ("dataset %s@%" PRIu64 ": meta undecodable or from a newer format",
                  name, version);
        ty_dataset_destroy (&self);
        return TY_EPROTO;
    }
    for (int i = 0; i < TY_SPLIT_COUNT; i++) {
        mrc = mdb_dbi_open (self->txn, s_split_names[i], 0, &self->dbi[i]);
        if (mrc == MDB_NOTFOUND)
            continue;
        MDB_stat ms;
        if (mrc == MDB_SUCCESS)
            mrc = mdb_stat (self->txn, self->dbi[i], &ms);
        if (mrc != MDB_SUCCESS) {
            rc = s_mdb_status (mrc, "open split");
            ty_dataset_destroy (&self);
            return rc;
        }
        self->has_dbi[i] = true;
        self->count[i] = ms.ms_entries;
    }
    /* Label lookup table: ids sorted by label. */
    size_t nl = self->meta->n_labels;
    self->sorted_ids = malloc ((nl ? nl : 1) * sizeof *self->sorted_ids);
    if (!self->sorted_ids) {
        ty_dataset_destroy (&self);
        return TY_ENOMEM;
    }
    for (size_t i = 0; i < nl; i++)
        self->sorted_ids[i] = i;
    /* insertion sort is fine for label maps (hundreds of classes); keeps
     * qsort's missing context argument out of the way */
    for (size_t i = 1; i < nl; i++) {
        size_t x = self->sorted_ids[i], j = i;
        while (j > 0 && strcmp (self->meta->labels[self->sorted_ids[j - 1]],
                                self->meta->labels[x]) > 0) {
            self->sorted_ids[j] = self->sorted_ids[j - 1];
            j--;
        }
        self->sorted_ids[j] = x;
    }
    *self_p = self;
    return TY_OK;
}

void
ty_dataset_destroy (ty_dataset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_dataset_t *self = *self_p;
    if (self->txn)
        mdb_txn_abort (self->txn);
    if (self->env)
        mdb_env_close (self->env);
    if (self->meta)
        ty__dataset_meta__free_unpacked (self->meta, NULL);
    for (int i = 0; i < TY_SPLIT_COUNT; i++)
        free (self->index[i]);
    free (self->sorted_ids);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

const char *ty_dataset_name (ty_dataset_t *self) { return self->name; }
uint64_t ty_dataset_version (ty_dataset_t *self) { return self->version; }
const Ty__DatasetMeta *ty_dataset_meta (ty_dataset_t *self) { return self->meta; }
size_t ty_dataset_label_count (ty_dataset_t *self) { return self->meta->n_labels; }

uint64_t
ty_dataset_count (ty_dataset_t *self, ty_split_t split)
{
    return (unsigned) split < TY_SPLIT_COUNT ? self->count[split] : 0;
}

const char *
ty_dataset_label (ty_dataset_t *self, size_t id)
{
    return id < self->meta->n_labels ? self->meta->labels[id] : NULL;
}

int64_t
ty_dataset_label_id (ty_dataset_t *self, const char *label)
{
    size_t lo = 0, hi = self->meta->n_labels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp (self->meta->labels[self->sorted_ids[mid]], label);
        if (c == 0)
            return (int64_t) self->sorted_ids[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int
ty_dataset_new_since (ty_dataset_t *self, uint64_t version, uint64_t *count)
{
    const Ty__DatasetMeta *m = self->meta;
    if (version == 0) {
        *count = m->count_train + m->count_val + m->count_test + m->count_calib;
        return TY_OK;
    }
    if (version == self->version) {
        *count = 0;
        return TY_OK;
    }
    for (size_t i = 0; i < m->n_new_since; i++)
        if (m->new_since[i]->version == version) {
            *count = m->new_since[i]->count;
            return TY_OK;
        }
    return TY_ENOTFOUND;
}

/* Builds the split's index of (pointer, size) by one cursor scan. The
 * pointers stay valid while self->txn lives (the handle's life). */
static int
s_index_require (ty_dataset_t *self, ty_split_t split)
{
    int rc = TY_OK;
    pthread_mutex_lock (&self->lock);
    if (self->index[split] || !self->has_dbi[split] || self->count[split] == 0)
        goto done;
    s_ref_t *idx = malloc (self->count[split] * sizeof *idx);
    if (!idx) {
        rc = TY_ENOMEM;
        goto done;
    }
    MDB_cursor *cur;
    int mrc = mdb_cursor_open (self->txn, self->dbi[split], &cur);
    if (mrc != MDB_SUCCESS) {
        free (idx);
        rc = s_mdb_status (mrc, "cursor_open");
        goto done;
    }
    MDB_val k, v;
    uint64_t i = 0;
    for (mrc = mdb_cursor_get (cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get (cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || s_get_be64 (k.mv_data) != i || i >= self->count[split]) {
            rc = TY_EPROTO;
            break;
        }
        idx[i++] = (s_ref_t) { v.mv_data, v.mv_size };
    }
    mdb_cursor_close (cur);
    if (rc == TY_OK && (mrc != MDB_NOTFOUND || i != self->count[split]))
        rc = mrc == MDB_NOTFOUND ? TY_EPROTO : s_mdb_status (mrc, "cursor_get");
    if (rc != TY_OK) {
        ty_error ("dataset %s@%" PRIu64 " %s: keys are not 0..n-1", self->name,
                  self->version, s_split_names[split]);
        free (idx);
        goto done;
    }
    self->index[split] = idx;
done:
    pthread_mutex_unlock (&self->lock);
    return rc;
}

int
ty_dataset_get (ty_dataset_t *self, ty_split_t split, uint64_t index,
                ty_dataset_view_t *view)
{
    if ((unsigned) split >= TY_SPLIT_COUNT || index >= self->count[split])
        return TY_ENOTFOUND;
    int rc = s_index_require (self, split);
    if (rc != TY_OK)
        return rc;
    view->data = self->index[split][index].data;
    view->size = self->index[split][index].size;
    view->index = index;
    return TY_OK;
}

int
ty_dataset_view_unpack (const ty_dataset_view_t *view, Ty__Sample **sample)
{
    *sample = ty__sample__unpack (NULL, view->size, view->data);
    return *sample ? TY_OK : TY_EPROTO;
}

/* ==== iteration ========================================================== */

struct _ty_dataset_iter_t {
    ty_dataset_t      *ds;
    ty_split_t         split;
    ty_dataset_order_t order;
    uint64_t          *perm;    /* TY_DATASET_ORDER_SHUFFLE: the permutation */
    uint64_t           n;
    uint64_t           pos;
    /* TY_DATASET_ORDER_BLOCKS: blocks of `block` consecutive keys in a
     * seeded order; `window` blocks at a time are mixed in wbuf. */
    uint64_t           seed;
    uint32_t           block;
    uint32_t           window;
    uint64_t          *bperm;   /* block order (n_blocks entries) */
    uint64_t           n_blocks;
    uint64_t           next_block;   /* position in bperm */
    uint64_t           n_windows;    /* windows filled this epoch */
    ty_dataset_view_t *wbuf;    /* views of the current window, mixed */
    size_t             wlen, wpos;
};

/* splitmix64: a small, well-mixed generator; enough for shuffling. */
static uint64_t
s_rand_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Unbiased integer in [0, bound) (Lemire's multiply-shift with rejection). */
static uint64_t
s_rand_below (uint64_t *state, uint64_t bound)
{
    unsigned __int128 m = (unsigned __int128) s_rand_next (state) * bound;
    uint64_t low = (uint64_t) m;
    if (low < bound) {
        uint64_t threshold = -bound % bound;
        while (low < threshold) {
            m = (unsigned __int128) s_rand_next (state) * bound;
            low = (uint64_t) m;
        }
    }
    return (uint64_t) (m >> 64);
}

/* Fisher-Yates, the draws taken S_SHUFFLE_AHEAD at a time: a draw depends
 * on the generator and on i only, never on the array, so the swap targets
 * (random places, cache misses on a big split) can be asked for before the
 * swaps are done, in the same order as one by one: the same output. */
void
ty_dataset_shuffle (uint64_t *a, uint64_t n, uint64_t seed)
{
    uint64_t st = seed;
    uint64_t js[S_SHUFFLE_AHEAD];
    uint64_t i = n;
    while (i > 1) {
        size_t m = 0;
        for (uint64_t k = i; k > 1 && m < S_SHUFFLE_AHEAD; k--, m++) {
            js[m] = s_rand_below (&st, k);
            __builtin_prefetch (&a[js[m]], 1);
        }
        for (size_t q = 0; q < m; q++, i--) {
            uint64_t j = js[q];
            uint64_t t = a[i - 1];
            a[i - 1] = a[j];
            a[j] = t;
        }
    }
}

int
ty_dataset_iter_new (ty_dataset_t *ds, ty_split_t split, bool shuffle,
                     uint64_t seed, ty_dataset_iter_t **self_p)
{
    ty_dataset_iter_opts_t o = {
        .order = shuffle ? TY_DATASET_ORDER_SHUFFLE : TY_DATASET_ORDER_KEYS, .seed = seed };
    return ty_dataset_iter_new_opts (ds, split, &o, self_p);
}

int
ty_dataset_iter_new_opts (ty_dataset_t *ds, ty_split_t split,
                          const ty_dataset_iter_opts_t *opts, ty_dataset_iter_t **self_p)
{
    *self_p = NULL;
    if (!ds || !opts || (unsigned) split >= TY_SPLIT_COUNT
        || (unsigned) opts->order > TY_DATASET_ORDER_BLOCKS)
        return TY_EINVAL;
    uint64_t block = opts->block ? opts->block : TY_DATASET_BLOCK_KEYS;
    uint64_t window = opts->window ? opts->window : TY_DATASET_BLOCK_WINDOW;
    if (opts->order == TY_DATASET_ORDER_BLOCKS && block * window > TY_DATASET_WINDOW_KEYS_MAX)
        return TY_EINVAL;
    int rc = s_index_require (ds, split);
    if (rc != TY_OK)
        return rc;
    ty_dataset_iter_t *self = calloc (1, sizeof *self);
    if (!self)
        return TY_ENOMEM;
    self->ds = ds;
    self->split = split;
    self->order = opts->order;
    self->n = ds->count[split];
    self->block = (uint32_t) block;
    self->window = (uint32_t) window;
    rc = ty_dataset_iter_reset (self, opts->seed);
    if (rc != TY_OK)
        ty_dataset_iter_destroy (&self);
    *self_p = self;
    return rc;
}

/* Block order for a new epoch. */
static int
s_blocks_reset (ty_dataset_iter_t *self)
{
    self->n_blocks = (self->n + self->block - 1) / self->block;
    if (!self->bperm)
        self->bperm = malloc (self->n_blocks * sizeof *self->bperm);
    if (!self->wbuf)
        self->wbuf = malloc ((size_t) self->block * self->window * sizeof *self->wbuf);
    if (!self->bperm || !self->wbuf)
        return TY_ENOMEM;
    for (uint64_t b = 0; b < self->n_blocks; b++)
        self->bperm[b] = b;
    ty_dataset_shuffle (self->bperm, self->n_blocks, self->seed);
    self->next_block = 0;
    self->n_windows = 0;
    self->wlen = self->wpos = 0;
    return TY_OK;
}

int
ty_dataset_iter_reset (ty_dataset_iter_t *self, uint64_t seed)
{
    self->pos = 0;
    self->seed = seed;
    if (self->order == TY_DATASET_ORDER_KEYS || self->n == 0)
        return TY_OK;
    if (self->order == TY_DATASET_ORDER_BLOCKS)
        return s_blocks_reset (self);
    if (!self->perm) {
        self->perm = malloc (self->n * sizeof *self->perm);
        if (!self->perm)
            return TY_ENOMEM;
    }
    for (uint64_t i = 0; i < self->n; i++)
        self->perm[i] = i;
    ty_dataset_shuffle (self->perm, self->n, seed);
    return TY_OK;
}

/* Shuffled: each view is a random place in the map, a cache miss and
 * often a TLB miss too; one by one, the caller would wait for each in turn.
 * The loads are independent, so they are asked for together: this batch's
 * sample bytes (first and last line of each) while its views are filled,
 * and the index entries of the next batch of the same size, so they have
 * arrived when the next call reads them. Prefetches only: the order stays
 * the permutation's. */
static size_t
s_next_shuffled (ty_dataset_iter_t *self, const s_ref_t *idx, ty_dataset_view_t *views,
                 size_t cap)
{
    uint64_t left = self->n - self->pos;
    size_t got = left < cap ? (size_t) left : cap;
    const uint64_t *perm = self->perm + self->pos;
    for (size_t k = 0; k < got; k++) {
        const s_ref_t *r = &idx[perm[k]];
        views[k].data = r->data;
        views[k].size = r->size;
        views[k].index = perm[k];
        __builtin_prefetch (r->data, 0, S_PREFETCH_LOCALITY);
        if (r->size)
            __builtin_prefetch ((const char *) r->data + r->size - 1, 0, S_PREFETCH_LOCALITY);
    }
    uint64_t ahead = left - got < got ? left - got : got;
    for (uint64_t k = 0; k < ahead; k++)
        __builtin_prefetch (&idx[perm[got + k]]);
    self->pos += got;
    return got;
}

/* The seed of window w's mix: a splitmix64 draw from (seed, w), so windows
 * get unrelated streams (seed + w alone would give overlapping ones). */
static uint64_t
s_window_seed (uint64_t seed, uint64_t w)
{
    uint64_t st = seed ^ (w * S_WINDOW_SEED_MUL);
    return s_rand_next (&st);
}

/* Unbiased integer in [0, bound) for bound < 2^32 from 32 random bits
 * (Lemire's multiply-shift with rejection, 32-bit): a window mix needs
 * one draw per sample, and half a splitmix64 output per draw halves the
 * generator's cost. */
static uint32_t
s_rand_below32 (uint64_t *state, uint64_t *bits, int *nbits, uint32_t bound)
{
    for (;;) {
        if (*nbits == 0) {
            *bits = s_rand_next (state);
            *nbits = 2;
        }
        uint32_t r = (uint32_t) *bits;
        *bits >>= 32;
        (*nbits)--;
        uint64_t m = (uint64_t) r * bound;
        uint32_t low = (uint32_t) m;
        if (low >= bound || low >= (uint32_t) -bound % bound)
            return (uint32_t) (m >> 32);
    }
}

/* Fisher-Yates over a window's views, seeded per window. */
static void
s_window_mix (ty_dataset_view_t *a, size_t n, uint64_t seed)
{
    uint64_t st = seed, bits = 0;
    int nbits = 0;
    for (size_t i = n; i > 1; i--) {
        size_t j = s_rand_below32 (&st, &bits, &nbits, (uint32_t) i);
        ty_dataset_view_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Fills wbuf with the views of the next `window` blocks, mixed. The views
 * are gathered block by block in key order (the index entries and the
 * leaf pages in order: sequential bytes the hardware prefetcher follows),
 * asking for each sample's first bytes on the way, and only then mixed:
 * mixing keys and looking their index entries up afterwards spent half
 * the iterator's time waiting for those lookups (perf). Asking for the next windows' index
 * entries and bytes ahead (a pipeline) measured slower: too many requests
 * in flight. False at the end of the epoch. */
static bool
s_window_fill (ty_dataset_iter_t *self, const s_ref_t *idx)
{
    if (self->next_block >= self->n_blocks)
        return false;
    size_t len = 0;
    for (uint32_t b = 0; b < self->window && self->next_block < self->n_blocks; b++) {
        uint64_t first = self->bperm[self->next_block++] * self->block;
        uint64_t end = first + self->block < self->n ? first + self->block : self->n;
        for (uint64_t key = first; key < end; key++) {
            self->wbuf[len++] = (ty_dataset_view_t) {
                .data = idx[key].data, .size = idx[key].size, .index = key };
            __builtin_prefetch (idx[key].data, 0, S_PREFETCH_LOCALITY);
        }
    }
    s_window_mix (self->wbuf, len, s_window_seed (self->seed, self->n_windows++));
    self->wlen = len;
    self->wpos = 0;
    return true;
}

static size_t
s_next_blocks (ty_dataset_iter_t *self, const s_ref_t *idx, ty_dataset_view_t *views,
               size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        if (self->wpos == self->wlen && !s_window_fill (self, idx))
            break;
        size_t take = self->wlen - self->wpos < cap - got ? self->wlen - self->wpos
                                                          : cap - got;
        memcpy (views + got, self->wbuf + self->wpos, take * sizeof *views);
        self->wpos += take;
        got += take;
    }
    self->pos += got;
    return got;
}

int
ty_dataset_iter_next (ty_dataset_iter_t *self, ty_dataset_view_t *views,
                      size_t cap, size_t *n)
{
    *n = 0;
    if (!self || (!views && cap))
        return TY_EINVAL;
    const s_ref_t *idx = self->ds->index[self->split];
    if (self->n == 0)
        return TY_OK;
    if (self->order == TY_DATASET_ORDER_SHUFFLE) {
        *n = s_next_shuffled (self, idx, views, cap);
        return TY_OK;
    }
    if (self->order == TY_DATASET_ORDER_BLOCKS) {
        *n = s_next_blocks (self, idx, views, cap);
        return TY_OK;
    }
    size_t got = 0;
    while (got < cap && self->pos < self->n) {
        uint64_t i = self->pos;
        views[got].data = idx[i].data;
        views[got].size = idx[i].size;
        views[got].index = i;
        got++;
        self->pos++;
    }
    *n = got;
    return TY_OK;
}

void
ty_dataset_iter_destroy (ty_dataset_iter_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->perm);
    free ((*self_p)->bperm);
    free ((*self_p)->wbuf);
    free (*self_p);
    *self_p = NULL;
}

/* ==== names, versions, removal ============================================ */

static int
s_cmp_str (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

void
ty_dataset_strv_free (char **strv, size_t n)
{
    for (size_t i = 0; strv && i < n; i++)
        free (strv[i]);
    free (strv);
}

int
ty_dataset_list (const char *data_dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    char datasets[PATH_MAX];
    int rc = s_path (datasets, data_dir, S_DIR_DATASETS, NULL);
    if (rc != TY_OK)
        return rc;
    DIR *d = opendir (datasets);
    if (!d)
        return errno == ENOENT ? TY_OK : errno;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (ty_dataset_name_check (e->d_name, NULL) != TY_OK)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc (*names, cap * sizeof *grown);
            if (!grown) {
                rc = TY_ENOMEM;
                break;
            }
            *names = grown;
        }
        if (!((*names)[*n] = strdup (e->d_name))) {
            rc = TY_ENOMEM;
            break;
        }
        (*n)++;
    }
    closedir (d);
    if (rc != TY_OK) {
        ty_dataset_strv_free (*names, *n);
        *names = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1)
        qsort (*names, *n, sizeof **names, s_cmp_str);
    return TY_OK;
}

int
ty_dataset_versions (const char *data_dir, const char *name, uint64_t **versions,
                     size_t *n)
{
    *versions = NULL;
    *n = 0;
    if (ty_dataset_name_check (name, NULL) != TY_OK)
        return TY_EINVAL;
    char datasets[PATH_MAX], name_dir[PATH_MAX];
    int rc = s_path (datasets, data_dir, S_DIR_DATASETS, NULL);
    if (rc == TY_OK)
        rc = s_path (name_dir, datasets, name, NULL);
    if (rc == TY_OK)
        rc = s_versions_in (name_dir, versions, n);
    return rc == ENOENT ? TY_ENOTFOUND : rc;
}

/* Renames path to a hidden sibling in parent (so it vanishes at once),
 * then deletes it. */
static int
s_remove_dir (const char *parent, const char *path)
{
    char gone[PATH_MAX];
    if (snprintf (gone, sizeof gone, "%s/%sXXXXXX", parent, S_RM_PREFIX)
        >= (int) sizeof gone)
        return ENAMETOOLONG;
    if (!mkdtemp (gone))
        return errno;
    char target[PATH_MAX];
    if (s_path (target, gone, "x", NULL) != TY_OK)
        return ENAMETOOLONG;
    if (rename (path, target) != 0) {
        int e = errno;
        (void) rmdir (gone);
        return e == ENOENT ? TY_ENOTFOUND : e;
    }
    return s_rm_rf (gone);
}

int
ty_dataset_remove (const char *data_dir, const char *spec)
{
    char name[TY_DATASET_NAME_MAX + 1];
    uint64_t version;
    const char *why;
    if (ty_dataset_spec_parse (spec, name, &version, &why) != TY_OK) {
        ty_error ("dataset remove: %s", why);
        return TY_EINVAL;
    }
    char datasets[PATH_MAX], name_dir[PATH_MAX];
    int rc = s_path (datasets, data_dir, S_DIR_DATASETS, NULL);
    if (rc == TY_OK)
        rc = s_path (name_dir, datasets, name, NULL);
    if (rc != TY_OK)
        return rc;
    struct stat st;
    if (stat (name_dir, &st) != 0)
        return errno == ENOENT ? TY_ENOTFOUND : errno;
    if (version == 0)
        return s_remove_dir (datasets, name_dir);
    char vname[24], vdir[PATH_MAX];
    snprintf (vname, sizeof vname, "%" PRIu64, version);
    if ((rc = s_path (vdir, name_dir, vname, NULL)) != TY_OK)
        return rc;
    int lock = s_lock_dir (name_dir);
    if (lock < 0)
        return -lock;
    rc = s_remove_dir (name_dir, vdir);
    s_unlock_dir (lock);
    return rc;
}

int
ty_dataset_file_sha256 (const char *path, char *hex, uint64_t *bytes)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    uint8_t *buf = malloc (S_IO_CHUNK_BYTES);
    int rc = ctx && buf && EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL) == 1
           ? TY_OK : TY_ENOMEM;
    uint64_t total = 0;
    while (rc == TY_OK) {
        ssize_t got = read (fd, buf, S_IO_CHUNK_BYTES);
        if (got < 0) {
            if (errno != EINTR)
                rc = errno;
            continue;
        }
        if (got == 0)
            break;
        total += (uint64_t) got;
        if (EVP_DigestUpdate (ctx, buf, (size_t) got) != 1)
            rc = TY_EINTERNAL;
    }
    uint8_t d[S_SHA256_BYTES];
    unsigned dn = 0;
    if (rc == TY_OK && EVP_DigestFinal_ex (ctx, d, &dn) != 1)
        rc = TY_EINTERNAL;
    if (rc == TY_OK) {
        s_hex (d, S_SHA256_BYTES, hex);
        if (bytes)
            *bytes = total;
    }
    EVP_MD_CTX_free (ctx);
    free (buf);
    close (fd);
    return rc;
}

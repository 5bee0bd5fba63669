/*  ty_checkpoint: per-job checkpoints for resume. See ty_checkpoint.h. */
#include "ty_checkpoint.h"

#include "ty_error.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_STATE_FILE   "state.json"
#define S_PATH_MAX     4096
#define S_STATE_MAX_BYTES (64u << 20)   /* a state.json larger than this is not ours */

static int
s_err (char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
static int
s_err (char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (err, errlen, fmt, ap);
        va_end (ap);
    }
    return rc;
}

int
ty_checkpoint_history_add (ty_checkpoint_state_t *st, const ty_checkpoint_epoch_t *e)
{
    if (st->nhistory == st->cap) {
        size_t ncap = st->cap ? st->cap * 2 : 16;
        ty_checkpoint_epoch_t *h = realloc (st->history, ncap * sizeof *h);
        if (!h)
            return TY_ENOMEM;
        st->history = h;
        st->cap = ncap;
    }
    st->history [st->nhistory++] = *e;
    return TY_OK;
}

void
ty_checkpoint_state_free (ty_checkpoint_state_t *st)
{
    free (st->history);
    memset (st, 0, sizeof *st);
}

int
ty_checkpoint_dir (const char *data_dir, const char *job_id, char *buf, size_t len)
{
    if ((size_t) snprintf (buf, len, "%s/checkpoints/%s", data_dir, job_id) >= len)
        return ENAMETOOLONG;
    return TY_OK;
}

int
ty_checkpoint_mkdirs (const char *path, unsigned mode)
{
    char p [S_PATH_MAX];
    if ((size_t) snprintf (p, sizeof p, "%s", path) >= sizeof p)
        return ENAMETOOLONG;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir (p, mode) != 0 && errno != EEXIST)
            return errno;
        *s = '/';
    }
    if (mkdir (p, mode) != 0 && errno != EEXIST)
        return errno;
    return TY_OK;
}

static int
s_write_atomic (const char *path, const char *text)
{
    char tmp [S_PATH_MAX];
    if ((size_t) snprintf (tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return ENAMETOOLONG;
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    size_t len = strlen (text), off = 0;
    while (off < len) {
        ssize_t w = write (fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close (fd);
            unlink (tmp);
            return e;
        }
        off += (size_t) w;
    }
    if (fsync (fd) != 0 || close (fd) != 0 || rename (tmp, path) != 0) {
        int e = errno;
        unlink (tmp);
        return e;
    }
    return TY_OK;
}

/* JSON has no NaN: a missing value is null. */
static int
s_add_num (cJSON *o, const char *key, double v)
{
    if (isfinite (v))
        return cJSON_AddNumberToObject (o, key, v) != NULL;
    return cJSON_AddNullToObject (o, key) != NULL;
}

static double
s_get_num (const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
    return cJSON_IsNumber (v) ? v->valuedouble : NAN;
}

static char *
s_state_json (const ty_checkpoint_state_t *st)
{
    cJSON *o = cJSON_CreateObject ();
    int ok = o != NULL;
    ok = ok && cJSON_AddNumberToObject (o, "format", TY_CHECKPOINT_FORMAT_VERSION);
    ok = ok && cJSON_AddStringToObject (o, "digest", st->digest);
    ok = ok && cJSON_AddNumberToObject (o, "epochs_done", st->epochs_done);
    ok = ok && cJSON_AddNumberToObject (o, "best_epoch", st->best_epoch);
    ok = ok && s_add_num (o, "best_metric", st->best_metric);
    ok = ok && cJSON_AddNumberToObject (o, "bad_epochs", st->bad_epochs);
    cJSON *h = ok ? cJSON_AddArrayToObject (o, "history") : NULL;
    ok = ok && h;
    for (size_t i = 0; ok && i < st->nhistory; i++) {
        const ty_checkpoint_epoch_t *e = &st->history [i];
        cJSON *x = cJSON_CreateObject ();
        ok = x && cJSON_AddItemToArray (h, x);
        if (!ok) {
            cJSON_Delete (x);
            break;
        }
        ok = cJSON_AddNumberToObject (x, "epoch", e->epoch)
          && s_add_num (x, "train_loss", e->train_loss)
          && s_add_num (x, "val_loss", e->val_loss)
          && s_add_num (x, "val_metric", e->val_metric)
          && s_add_num (x, "lr", e->lr)
          && s_add_num (x, "seconds", e->seconds)
          && s_add_num (x, "samples_per_s", e->samples_per_s)
          && cJSON_AddNumberToObject (x, "step", (double) e->step);
    }
    char *text = ok ? cJSON_Print (o) : NULL;
    cJSON_Delete (o);
    return text;
}

/* Removes epoch-*.pt and best-*.pt other than the two named. */
static void
s_prune (const char *dir, const char *keep1, const char *keep2)
{
    DIR *d = opendir (dir);
    if (!d)
        return;
    struct dirent *e;
    char path [S_PATH_MAX];
    while ((e = readdir (d))) {
        const char *n = e->d_name;
        if (strncmp (n, "epoch-", 6) && strncmp (n, "best-", 5))
            continue;
        if (!strcmp (n, keep1) || !strcmp (n, keep2))
            continue;
        snprintf (path, sizeof path, "%s/%s", dir, n);
        unlink (path);
    }
    closedir (d);
}

int
ty_checkpoint_save (const char *dir, const ty_checkpoint_state_t *st, ty_torch_model_t *model,
                    int improved, char *err, size_t errlen)
{
    int rc = ty_checkpoint_mkdirs (dir, 0755);
    if (rc != TY_OK)
        return s_err (err, errlen, rc, "checkpoint dir %s: %s", dir, strerror (rc));
    char last [64], best [64], path [S_PATH_MAX], bpath [S_PATH_MAX];
    snprintf (last, sizeof last, "epoch-%d.pt", st->epochs_done);
    snprintf (best, sizeof best, "best-%d.pt", st->best_epoch);
    snprintf (path, sizeof path, "%s/%s", dir, last);
    rc = ty_torch_save (model, path);
    if (rc != TY_OK)
        return s_err (err, errlen, rc, "checkpoint %s: %s", path,
                      *ty_torch_errstr (model) ? ty_torch_errstr (model) : ty_strerror (rc));
    if (improved) {
        snprintf (bpath, sizeof bpath, "%s/%s", dir, best);
        unlink (bpath);        /* a leftover of a crashed attempt at the same epoch */
        if (link (path, bpath) != 0)
            return s_err (err, errlen, errno, "checkpoint %s: %s", bpath, strerror (errno));
    }
    char *text = s_state_json (st);
    if (!text)
        return s_err (err, errlen, TY_ENOMEM, "out of memory writing the checkpoint state");
    snprintf (path, sizeof path, "%s/%s", dir, S_STATE_FILE);
    rc = s_write_atomic (path, text);
    cJSON_free (text);
    if (rc != TY_OK)
        return s_err (err, errlen, rc, "checkpoint %s: %s", path, strerror (rc));
    s_prune (dir, last, best);
    return TY_OK;
}

int
ty_checkpoint_load (const char *dir, const char *digest, int threads,
                    ty_checkpoint_state_t *st, ty_torch_model_t **model_p, char *err,
                    size_t errlen)
{
    memset (st, 0, sizeof *st);
    *model_p = NULL;
    char path [S_PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, S_STATE_FILE);
    FILE *f = fopen (path, "rb");
    if (!f)
        return errno == ENOENT ? TY_ENOTFOUND : s_err (err, errlen, errno, "%s: %s", path,
                                                       strerror (errno));
    char *text = NULL;
    size_t len = 0;
    if (fseek (f, 0, SEEK_END) == 0) {
        long sz = ftell (f);
        if (sz >= 0 && (size_t) sz < S_STATE_MAX_BYTES && fseek (f, 0, SEEK_SET) == 0
        &&  (text = malloc ((size_t) sz + 1)))
            len = fread (text, 1, (size_t) sz, f);
    }
    fclose (f);
    if (!text)
        return s_err (err, errlen, TY_EPROTO, "%s: unreadable", path);
    text [len] = '\0';
    cJSON *o = cJSON_Parse (text);
    free (text);
    int rc = TY_OK;
    const cJSON *dg = cJSON_GetObjectItemCaseSensitive (o, "digest");
    if (!o || s_get_num (o, "format") != TY_CHECKPOINT_FORMAT_VERSION || !cJSON_IsString (dg))
        rc = s_err (err, errlen, TY_EPROTO, "%s: not a checkpoint state of format %d", path,
                    TY_CHECKPOINT_FORMAT_VERSION);
    else if (strcmp (dg->valuestring, digest) != 0)
        rc = TY_ENOTFOUND;
    if (rc == TY_OK) {
        snprintf (st->digest, sizeof st->digest, "%s", digest);
        st->epochs_done = (int) s_get_num (o, "epochs_done");
        st->best_epoch = (int) s_get_num (o, "best_epoch");
        st->best_metric = s_get_num (o, "best_metric");
        st->bad_epochs = (int) s_get_num (o, "bad_epochs");
        const cJSON *x;
        cJSON_ArrayForEach (x, cJSON_GetObjectItemCaseSensitive (o, "history")) {
            ty_checkpoint_epoch_t e = {
                .epoch = (int) s_get_num (x, "epoch"),
                .train_loss = s_get_num (x, "train_loss"),
                .val_loss = s_get_num (x, "val_loss"),
                .val_metric = s_get_num (x, "val_metric"),
                .lr = s_get_num (x, "lr"),
                .seconds = s_get_num (x, "seconds"),
                .samples_per_s = s_get_num (x, "samples_per_s"),
                .step = (int64_t) s_get_num (x, "step"),
            };
            if (ty_checkpoint_history_add (st, &e) != TY_OK) {
                rc = s_err (err, errlen, TY_ENOMEM, "out of memory");
                break;
            }
        }
        if (rc == TY_OK && (st->epochs_done < 1 || st->nhistory != (size_t) st->epochs_done))
            rc = s_err (err, errlen, TY_EPROTO, "%s: inconsistent history", path);
    }
    cJSON_Delete (o);
    if (rc == TY_OK) {
        snprintf (path, sizeof path, "%s/epoch-%d.pt", dir, st->epochs_done);
        char lerr [TY_TORCH_ERRSTR_LEN] = "";
        rc = ty_torch_load (path, threads, model_p, lerr, sizeof lerr);
        if (rc != TY_OK)
            s_err (err, errlen, rc, "%s: %s", path, lerr);
    }
    if (rc != TY_OK)
        ty_checkpoint_state_free (st);
    return rc;
}

int
ty_checkpoint_best_path (const char *dir, const ty_checkpoint_state_t *st, char *buf, size_t len)
{
    if ((size_t) snprintf (buf, len, "%s/best-%d.pt", dir, st->best_epoch) >= len)
        return ENAMETOOLONG;
    return TY_OK;
}

static int
s_rm_entry (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb; (void) flag; (void) ftw;
    return remove (path) == 0 || errno == ENOENT ? 0 : -1;
}

int
ty_checkpoint_remove (const char *dir)
{
    struct stat sb;
    if (lstat (dir, &sb) != 0)
        return errno == ENOENT ? TY_OK : errno;
    if (nftw (dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return errno ? errno : EIO;
    return TY_OK;
}

/*  ty_modeldir: model version directories. See ty_modeldir.h. */
#include "ty_modeldir.h"

#include "ty_checkpoint.h"
#include "ty_dataset.h"
#include "ty_error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_TMP_PREFIX   ".tmp-"
#define S_LOCK_FILE    ".lock"

int
ty_modeldir_name_check (const char *name, const char **why)
{
    /* one set of rules for every name that becomes a directory */
    return ty_dataset_name_check (name, why);
}

static int
s_model_root (const char *data_dir, const char *name, char *buf, size_t len)
{
    const char *why = NULL;
    if (ty_modeldir_name_check (name, &why) != TY_OK)
        return TY_EINVAL;
    if ((size_t) snprintf (buf, len, "%s/models/%s", data_dir, name) >= len)
        return ENAMETOOLONG;
    return TY_OK;
}

/* ".tmp-<pid>-XXXXXX": removable when <pid> is gone. */
static void
s_clean_stale (const char *root)
{
    DIR *d = opendir (root);
    if (!d)
        return;
    struct dirent *e;
    char path [TY_MODELDIR_PATH_MAX];
    while ((e = readdir (d))) {
        if (strncmp (e->d_name, S_TMP_PREFIX, strlen (S_TMP_PREFIX)))
            continue;
        long pid = strtol (e->d_name + strlen (S_TMP_PREFIX), NULL, 10);
        if (pid > 0 && (pid == (long) getpid () || kill ((pid_t) pid, 0) == 0 || errno != ESRCH))
            continue;
        if ((size_t) snprintf (path, sizeof path, "%s/%s", root, e->d_name) < sizeof path)
            ty_checkpoint_remove (path);
    }
    closedir (d);
}

int
ty_modeldir_begin (const char *data_dir, const char *name, char *tmp, size_t len)
{
    char root [TY_MODELDIR_PATH_MAX];
    int rc = s_model_root (data_dir, name, root, sizeof root);
    if (rc != TY_OK)
        return rc;
    rc = ty_checkpoint_mkdirs (root, 0755);
    if (rc != TY_OK)
        return rc;
    s_clean_stale (root);
    if ((size_t) snprintf (tmp, len, "%s/" S_TMP_PREFIX "%ld-XXXXXX", root, (long) getpid ())
        >= len)
        return ENAMETOOLONG;
    if (!mkdtemp (tmp))
        return errno;
    return TY_OK;
}

void
ty_modeldir_abort (const char *tmp)
{
    if (tmp && *tmp)
        ty_checkpoint_remove (tmp);
}

static int
s_is_version (const char *s, uint64_t *v)
{
    if (!*s || *s == '0')
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull (s, &end, 10);
    if (errno || *end)
        return 0;
    *v = x;
    return 1;
}

static int
s_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

int
ty_modeldir_versions (const char *data_dir, const char *name, uint64_t **versions, size_t *n)
{
    *versions = NULL;
    *n = 0;
    char root [TY_MODELDIR_PATH_MAX];
    int rc = s_model_root (data_dir, name, root, sizeof root);
    if (rc != TY_OK)
        return rc;
    DIR *d = opendir (root);
    if (!d)
        return errno == ENOENT ? TY_OK : errno;
    struct dirent *e;
    size_t cap = 0;
    while ((e = readdir (d))) {
        uint64_t v;
        if (!s_is_version (e->d_name, &v))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc (*versions, ncap * sizeof *nv);
            if (!nv) {
                closedir (d);
                free (*versions);
                *versions = NULL;
                *n = 0;
                return TY_ENOMEM;
            }
            *versions = nv;
            cap = ncap;
        }
        (*versions) [(*n)++] = v;
    }
    closedir (d);
    if (*n)
        qsort (*versions, *n, sizeof **versions, s_cmp_u64);
    return TY_OK;
}

int
ty_modeldir_commit (const char *data_dir, const char *name, const char *tmp,
                    uint64_t *version, char *path, size_t len)
{
    char root [TY_MODELDIR_PATH_MAX], lock [TY_MODELDIR_PATH_MAX], dst [TY_MODELDIR_PATH_MAX];
    int rc = s_model_root (data_dir, name, root, sizeof root);
    if (rc != TY_OK) {
        ty_modeldir_abort (tmp);
        return rc;
    }
    if ((size_t) snprintf (lock, sizeof lock, "%s/" S_LOCK_FILE, root) >= sizeof lock) {
        ty_modeldir_abort (tmp);
        return ENAMETOOLONG;
    }
    int fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || flock (fd, LOCK_EX) != 0) {
        rc = errno;
        if (fd >= 0)
            close (fd);
        ty_modeldir_abort (tmp);
        return rc;
    }
    /* the temp dir's contents reach the disk before the name does */
    int dfd = open (tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync (dfd);
        close (dfd);
    }
    uint64_t *vs = NULL;
    size_t n = 0;
    rc = ty_modeldir_versions (data_dir, name, &vs, &n);
    uint64_t next = n ? vs [n - 1] + 1 : 1;
    free (vs);
    if (rc == TY_OK) {
        if ((size_t) snprintf (dst, sizeof dst, "%s/%llu", root, (unsigned long long) next)
            >= sizeof dst)
            rc = ENAMETOOLONG;
        else if (rename (tmp, dst) != 0)
            rc = errno;
    }
    if (rc == TY_OK) {
        dfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync (dfd);
            close (dfd);
        }
        *version = next;
        if (path)
            snprintf (path, len, "%s", dst);
    }
    else
        ty_modeldir_abort (tmp);
    flock (fd, LOCK_UN);
    close (fd);
    return rc;
}

int
ty_modeldir_resolve (const char *data_dir, const char *spec, char *path, size_t len,
                     uint64_t *version)
{
    char name [TY_MODELDIR_NAME_MAX + 1];
    uint64_t v = 0;
    const char *why = NULL;
    if (ty_dataset_spec_parse (spec, name, &v, &why) != TY_OK)
        return TY_EINVAL;
    uint64_t *vs = NULL;
    size_t n = 0;
    int rc = ty_modeldir_versions (data_dir, name, &vs, &n);
    if (rc != TY_OK)
        return rc;
    int found = 0;
    if (v == 0 && n) {
        v = vs [n - 1];
        found = 1;
    }
    for (size_t i = 0; !found && i < n; i++)
        found = vs [i] == v;
    free (vs);
    if (!found)
        return TY_ENOTFOUND;
    if ((size_t) snprintf (path, len, "%s/models/%s/%llu", data_dir, name,
                           (unsigned long long) v) >= len)
        return ENAMETOOLONG;
    if (version)
        *version = v;
    return TY_OK;
}

int
ty_modeldir_write (const char *dir, const char *file, const char *text)
{
    char path [TY_MODELDIR_PATH_MAX], tmp [TY_MODELDIR_PATH_MAX + 8];
    if ((size_t) snprintf (path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return ENAMETOOLONG;
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    size_t n = strlen (text), off = 0;
    while (off < n) {
        ssize_t w = write (fd, text + off, n - off);
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

/*  cmd_statedir: the state directory of a local cluster (layout in
 *  cmd_cluster.h): where it is, its lock, its pid files. */
#include "cmd.h"
#include "cmd_cluster.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int
s_mkdir (const char *path)
{
    if (mkdir (path, 0755) == 0 || errno == EEXIST)
        return 0;
    return errno;
}

/* mkdir -p: the state directory may be nested (e.g. /var/lib/trainyard/a). */
static int
s_mkdir_p (const char *path)
{
    char buf [PATH_MAX];
    if (snprintf (buf, sizeof buf, "%s", path) >= (int) sizeof buf)
        return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = s_mkdir (buf);
        *p = '/';
        if (rc)
            return rc;
    }
    return s_mkdir (buf);
}

int
cmd_statedir_path (char *buf, size_t len, const char *dir, const char *fmt, ...)
{
    int n = snprintf (buf, len, "%s/", dir);
    if (n < 0 || (size_t) n >= len)
        return ENAMETOOLONG;
    va_list ap;
    va_start (ap, fmt);
    int m = vsnprintf (buf + n, len - (size_t) n, fmt, ap);
    va_end (ap);
    if (m < 0 || (size_t) m >= len - (size_t) n)
        return ENAMETOOLONG;
    return 0;
}

int
cmd_statedir_resolve (const char *arg, int create, char *out, size_t len)
{
    const char *dir = arg;
    if (!dir || !*dir)
        dir = getenv ("TRAINYARD_STATE");
    if (!dir || !*dir)
        dir = TY_CMD_STATE_DEFAULT;
    if (create) {
        int rc = s_mkdir_p (dir);
        if (rc)
            return rc;
    }
    char real [PATH_MAX];
    if (!realpath (dir, real))
        return errno;
    if (snprintf (out, len, "%s", real) >= (int) len)
        return ENAMETOOLONG;
    if (create) {
        static const char *subdirs [] = { "redis", "logs", "run" };
        for (size_t i = 0; i < sizeof subdirs / sizeof subdirs [0]; i++) {
            char path [PATH_MAX];
            int rc = cmd_statedir_path (path, sizeof path, out, "%s", subdirs [i]);
            if (rc || (rc = s_mkdir (path)))
                return rc;
        }
    }
    return 0;
}

int
cmd_statedir_lock (const char *dir, int *fd_out)
{
    char path [PATH_MAX];
    int rc = cmd_statedir_path (path, sizeof path, dir, "run/up.lock");
    if (rc)
        return rc;
    /* O_CLOEXEC: children must not inherit the lock, or an orphaned worker
     * would make the state dir look busy forever. */
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    if (flock (fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? EWOULDBLOCK : errno;
        close (fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

int
cmd_statedir_write_pid (const char *dir, const char *name, pid_t pid)
{
    char path [PATH_MAX], tmp [PATH_MAX];
    int rc = cmd_statedir_path (path, sizeof path, dir, "run/%s.pid", name);
    if (rc || (rc = cmd_statedir_path (tmp, sizeof tmp, dir, "run/.%s.pid.tmp", name)))
        return rc;
    /* temp + rename: `down` must never read a half-written pid */
    FILE *f = fopen (tmp, "we");
    if (!f)
        return errno;
    int ok = fprintf (f, "%ld\n", (long) pid) > 0;
    ok = (fclose (f) == 0) && ok;
    if (!ok || rename (tmp, path) != 0) {
        rc = errno ? errno : EIO;
        unlink (tmp);
        return rc;
    }
    return 0;
}

pid_t
cmd_statedir_read_pid (const char *dir, const char *name)
{
    char path [PATH_MAX];
    if (cmd_statedir_path (path, sizeof path, dir, "run/%s.pid", name))
        return 0;
    FILE *f = fopen (path, "re");
    if (!f)
        return 0;
    long pid = 0;
    if (fscanf (f, "%ld", &pid) != 1 || pid <= 1)
        pid = 0;
    fclose (f);
    return (pid_t) pid;
}

void
cmd_statedir_remove_pid (const char *dir, const char *name)
{
    char path [PATH_MAX];
    if (cmd_statedir_path (path, sizeof path, dir, "run/%s.pid", name) == 0)
        unlink (path);      /* ENOENT is fine: nothing to remove */
}

int
cmd_data_dir (const char *flag, char *out, size_t len)
{
    const char *env = getenv ("TRAINYARD_DATA");
    const char *dir = flag && *flag ? flag : env && *env ? env : NULL;
    if (dir) {
        if (snprintf (out, len, "%s", dir) >= (int) len)
            return cmd_error ("data directory path too long");
        return 0;
    }
    char state [PATH_MAX];
    int rc = cmd_statedir_resolve (NULL, 0, state, sizeof state);
    if (rc)
        return cmd_error ("cannot find the state directory: %s", strerror (rc));
    if (cmd_statedir_path (out, len, state, "data"))
        return cmd_error ("data directory path too long");
    return 0;
}

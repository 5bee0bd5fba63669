#include "ty_log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char s_name [32] = "trainyard";
static ty_log_level_t s_level = TY_LOG_INFO;
static int s_fd = 2;

void
ty_log_init (const char *name, ty_log_level_t level)
{
    snprintf (s_name, sizeof s_name, "%s", name ? name : "trainyard");
    s_level = level;
}

ty_log_level_t
ty_log_level (void)
{
    return s_level;
}

int
ty_log_level_parse (const char *s)
{
    if (!s)                      return -1;
    if (!strcmp (s, "debug"))    return TY_LOG_DEBUG;
    if (!strcmp (s, "info"))     return TY_LOG_INFO;
    if (!strcmp (s, "warn"))     return TY_LOG_WARN;
    if (!strcmp (s, "error"))    return TY_LOG_ERROR;
    return -1;
}

int
ty_log_file (const char *path)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    if (s_fd > 2)
        close (s_fd);
    s_fd = fd;
    return 0;
}

void
ty_log_write (ty_log_level_t lvl, const char *file, int line,
              const char *func, const char *fmt, ...)
{
    static const char *names [] = { "DEBUG", "INFO", "WARN", "ERROR" };
    if (lvl < s_level)
        return;
    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    const char *base = strrchr (file, '/');
    base = base ? base + 1 : file;

    char buf [2048];
    int n = snprintf (buf, sizeof buf,
                      "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %-5s %s:%d %s: ",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                      tm.tm_min, tm.tm_sec, (long) tv.tv_usec / 1000, s_name,
                      (int) getpid (), names [lvl], base, line, func);
    if (n < 0)
        return;
    if ((size_t) n < sizeof buf) {
        va_list ap;
        va_start (ap, fmt);
        int m = vsnprintf (buf + n, sizeof buf - (size_t) n, fmt, ap);
        va_end (ap);
        if (m > 0)
            n += m;
    }
    if ((size_t) n >= sizeof buf - 1)
        n = sizeof buf - 2;
    buf [n++] = '\n';
    /* One write per line keeps lines whole across threads and processes. */
    ssize_t rc = write (s_fd, buf, (size_t) n);
    (void) rc;
}

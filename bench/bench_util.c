/*  bench_util: see bench_util.h. */
#include "bench_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t
bu_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

int64_t
bu_percentile (int64_t *samples, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort (samples, n, sizeof *samples, s_cmp_i64);
    /* Nearest rank: the smallest sample with at least q% of samples <= it. */
    double rank = q / 100.0 * (double) n;
    size_t idx = (size_t) rank;
    if ((double) idx < rank)
        idx++;
    if (idx > 0)
        idx--;
    if (idx >= n)
        idx = n - 1;
    return samples [idx];
}

void
bu_report_throughput (const char *system, size_t n, int64_t elapsed_us)
{
    double secs = (double) elapsed_us / 1e6;
    printf ("RESULT system=%s mode=throughput n=%zu secs=%.3f jobs_per_s=%.0f\n",
            system, n, secs, secs > 0 ? (double) n / secs : 0.0);
    fflush (stdout);
}

void
bu_report_rtt (const char *system, int64_t *samples, size_t n)
{
    int64_t p50 = bu_percentile (samples, n, 50);
    int64_t p99 = bu_percentile (samples, n, 99);
    printf ("RESULT system=%s mode=rtt n=%zu p50_us=%lld p99_us=%lld max_us=%lld\n",
            system, n, (long long) p50, (long long) p99,
            (long long) (n ? samples [n - 1] : 0));
    fflush (stdout);
}

void
bu_report_recovery (const char *system, const char *kind, double ms)
{
    printf ("RESULT system=%s mode=recovery kind=%s ms=%.1f\n", system, kind, ms);
    fflush (stdout);
}

size_t
bu_parse_count (const char *text)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || end == text || *end || v == 0 || v > 100000000ULL) {
        fprintf (stderr, "not a job count: '%s'\n", text);
        exit (2);
    }
    return (size_t) v;
}

pid_t
bu_spawn (int (*fn) (void *arg), void *arg)
{
    pid_t parent = getpid ();
    fflush (NULL);      /* or buffered output would be written twice */
    pid_t pid = fork ();
    if (pid < 0) {
        perror ("fork");
        return -1;
    }
    if (pid == 0) {
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) != 0)
            perror ("prctl");
        /* The parent may have died between fork and prctl. */
        if (getppid () != parent)
            _exit (1);
        _exit (fn (arg));
    }
    return pid;
}

void
bu_kill_and_reap (pid_t pid)
{
    if (pid <= 0)
        return;
    if (kill (pid, SIGKILL) != 0 && errno != ESRCH)
        perror ("kill");
    while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

void
bu_usage (const char *usage)
{
    fputs (usage, stderr);
    exit (2);
}

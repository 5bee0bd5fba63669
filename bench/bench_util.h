/*  bench_util: the small pieces every dispatch benchmark program shares.
 *
 *  Kept free of trainyard's own libraries on purpose: the peer programs
 *  (beanstalkd, Gearman) must build and run even when the rest of the tree
 *  does not, so that their figures can be taken independently.
 *
 *  Every program prints its figures as one line
 *      RESULT system=<name> mode=<mode> key=value ...
 *  on stdout, which bench/dispatch parses; anything else goes to stderr.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic clock in microseconds. */
int64_t bu_now_us (void);

/* Nearest-rank percentile (q in 0..100) of n samples; sorts the array in place.
 * Returns 0 for n == 0. */
int64_t bu_percentile (int64_t *samples, size_t n, double q);

/* Prints the RESULT lines. */
void bu_report_throughput (const char *system, size_t n, int64_t elapsed_us);
void bu_report_rtt (const char *system, int64_t *samples, size_t n);
void bu_report_recovery (const char *system, const char *kind, double ms);

/* Parses a positive count; exits with a message on nonsense. */
size_t bu_parse_count (const char *text);

/* Forks a child that runs fn (arg) and _exit()s with its return value.
 * The child gets SIGKILL when the parent dies (PR_SET_PDEATHSIG), so a
 * crashed or interrupted benchmark never leaves workers behind.
 * Returns the pid, or -1 on failure. */
pid_t bu_spawn (int (*fn) (void *arg), void *arg);

/* SIGKILLs the given child (if still there) and reaps it. */
void bu_kill_and_reap (pid_t pid);

/* Usage text and exit(2). */
void bu_usage (const char *usage) __attribute__ ((noreturn));

#endif

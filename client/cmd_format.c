/*  cmd_format: how times, durations and metrics look in human output.
 *  JSON output never goes through here: it keeps the raw numbers. */
#include "cmd.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void
cmd_format_time (uint64_t unix_ms, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf [0] = '\0';
    if (unix_ms == 0)
        return;
    time_t secs = (time_t) (unix_ms / 1000);
    struct tm tm;
    if (!localtime_r (&secs, &tm))
        return;
    char date [32], zone [8];
    if (strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0
    ||  strftime (zone, sizeof zone, "%z", &tm) != 5) {
        snprintf (buf, len, "%" PRIu64 " ms", unix_ms);
        return;
    }
    /* ISO 8601 wants the offset as +hh:mm; strftime gives +hhmm. */
    snprintf (buf, len, "%s.%03u%.3s:%.2s", date, (unsigned) (unix_ms % 1000),
              zone, zone + 3);
}

void
cmd_format_duration (int64_t ms, char *buf, size_t len)
{
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (ms < 10000)
        snprintf (buf, len, "%.1fs", (double) ms / 1000.0);
    else if (s < 60)
        snprintf (buf, len, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf (buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf (buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf (buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
}

void
cmd_format_clock (int64_t ms, char *buf, size_t len)
{
    if (ms < 0)
        ms = 0;
    int64_t s = (ms + 999) / 1000;      /* round up: "0:00" only when done */
    if (s < 3600)
        snprintf (buf, len, "%" PRId64 ":%02" PRId64, s / 60, s % 60);
    else
        snprintf (buf, len, "%" PRId64 ":%02" PRId64 ":%02" PRId64,
                  s / 3600, s % 3600 / 60, s % 60);
}

void
cmd_format_metrics (Ty__Metric *const *metrics, size_t n, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf [0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < n && used < len; i++) {
        if (!metrics [i] || !metrics [i]->key)
            continue;
        int w = snprintf (buf + used, len - used, "%s%s=%.4g", used ? " " : "",
                          metrics [i]->key, metrics [i]->value);
        if (w < 0)
            break;
        used += (size_t) w;
    }
}

#include "ty_clock.h"
#include <errno.h>
#include <time.h>

static int64_t
s_ns (clockid_t id)
{
    struct timespec ts;
    clock_gettime (id, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t ty_clock_mono_ms (void) { return s_ns (CLOCK_MONOTONIC) / 1000000; }
int64_t ty_clock_mono_us (void) { return s_ns (CLOCK_MONOTONIC) / 1000; }
int64_t ty_clock_wall_ms (void) { return s_ns (CLOCK_REALTIME) / 1000000; }

void
ty_clock_sleep_ms (int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

/*  ty_clock: monotonic time for timers and leases, wall time for records. */
#ifndef TY_CLOCK_H
#define TY_CLOCK_H
#include <stdint.h>

int64_t ty_clock_mono_ms (void);   /* monotonic, for deadlines */
int64_t ty_clock_mono_us (void);
int64_t ty_clock_wall_ms (void);   /* Unix epoch ms, for Redis records */
void    ty_clock_sleep_ms (int64_t ms);

#endif

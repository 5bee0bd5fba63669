#include "ty_backoff.h"
#include "ty_clock.h"
#include <unistd.h>

void
ty_backoff_init (ty_backoff_t *self, int64_t min_ms, int64_t max_ms)
{
    self->min_ms = min_ms > 0 ? min_ms : 1;
    self->max_ms = max_ms > self->min_ms ? max_ms : self->min_ms;
    self->cur_ms = self->min_ms;
    self->seed = (uint32_t) ty_clock_mono_us () ^ (uint32_t) getpid ();
}

int64_t
ty_backoff_next (ty_backoff_t *self)
{
    self->seed = self->seed * 1103515245u + 12345u;
    int64_t half = self->cur_ms / 2;
    int64_t delay = half + (int64_t) ((self->seed >> 8) % (uint32_t) (half + 1));
    self->cur_ms *= 2;
    if (self->cur_ms > self->max_ms)
        self->cur_ms = self->max_ms;
    return delay > 0 ? delay : 1;
}

void
ty_backoff_reset (ty_backoff_t *self)
{
    self->cur_ms = self->min_ms;
}

/*  ty_backoff: exponential backoff with full jitter, for reconnects and retries. */
#ifndef TY_BACKOFF_H
#define TY_BACKOFF_H
#include <stdint.h>

typedef struct {
    int64_t  min_ms;
    int64_t  max_ms;
    int64_t  cur_ms;
    uint32_t seed;
} ty_backoff_t;

void    ty_backoff_init  (ty_backoff_t *self, int64_t min_ms, int64_t max_ms);
/* The next delay to wait, in ms: random in [cur/2, cur], then cur doubles. */
int64_t ty_backoff_next  (ty_backoff_t *self);
void    ty_backoff_reset (ty_backoff_t *self);

#endif

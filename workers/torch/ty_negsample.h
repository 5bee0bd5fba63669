/*  ty_negsample: negative sampling for implicit-feedback recommenders (ncf).
 *  Knows each user's positive items; for every positive (user, item) it emits
 *  the positive (target 1) and `ratio` items the user never touched
 *  (target 0), drawn uniformly.
 *
 *  The random state is a plain uint64_t the caller owns (splitmix64), so a
 *  train worker derives it from (seed, epoch) and a resumed epoch draws the
 *  same negatives as the uninterrupted one. Pure C; not thread-safe per
 *  state, the sampler itself is read-only after _new. */
#ifndef TY_NEGSAMPLE_H
#define TY_NEGSAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Draws before falling back to any item, for a user who touched almost all
 * items (a dense row would otherwise loop forever). */
#define TY_NEGSAMPLE_MAX_TRIES 64

typedef struct _ty_negsample_t ty_negsample_t;

/* Indexes npos positive pairs (copied; the arrays are not kept).
 * TY_OK, TY_EINVAL (a pair out of range, n < 1), TY_ENOMEM. */
int  ty_negsample_new (int64_t nusers, int64_t nitems, const int64_t *users,
                       const int64_t *items, int64_t npos, ty_negsample_t **self_p);
void ty_negsample_destroy (ty_negsample_t **self_p);

/* True if (user, item) was among the positives. */
bool ty_negsample_is_positive (const ty_negsample_t *self, int64_t user, int64_t item);

/* For each of the n pairs: the pair with target 1, then `ratio` negatives
 * of the same user with target 0, into out_* (capacity cap entries each,
 * n * (1 + ratio) needed; TY_EFULL otherwise). *nout = entries written.
 * *rng is advanced. TY_EINVAL for ratio < 0 or ids out of range. */
int  ty_negsample_fill (const ty_negsample_t *self, const int64_t *users,
                        const int64_t *items, int64_t n, int ratio, uint64_t *rng,
                        int64_t *out_users, int64_t *out_items, float *out_targets,
                        size_t cap, int64_t *nout);

/* splitmix64: next value of a seeded stream, for shuffles in C. */
uint64_t ty_negsample_rand (uint64_t *rng);
/* Uniform in [0, n), n >= 1 (Lemire's multiply-shift, no modulo bias worth
 * the name for n < 2^32). */
uint64_t ty_negsample_below (uint64_t *rng, uint64_t n);

#ifdef __cplusplus
}
#endif

#endif

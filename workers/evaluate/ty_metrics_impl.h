/*  ty_metrics_impl: what the ty_metrics_*.c files share and nobody else
 *  should call. Not installed, not part of the API. */
#ifndef TY_METRICS_IMPL_H
#define TY_METRICS_IMPL_H

#include "ty_metrics.h"

/* Per-class precision/recall/F1 into p, r, f (k entries each) and the
 * macro, micro and weighted averages, from the counts (sklearn
 * zero_division="warn" rules; see ty_metrics.h). */
void ty_metrics_prf_fill (size_t k, const int64_t *tp, const int64_t *pred,
                          const int64_t *support, double *p, double *r,
                          double *f, ty_prf_t *macro, ty_prf_t *micro,
                          ty_prf_t *weighted);

#endif

/*  ty_quantize: the number formats of the portable model writer.
 *
 *    FP16   IEEE 754 binary16, round to nearest, ties to even, by bit
 *           manipulation (no compiler half type: the same bits on every
 *           compiler). The runtime's way back is ty_infer_f16_to_f32.
 *    INT8   symmetric, one scale per row (a row = an output channel of a
 *           linear or conv weight, or an embedding row): scale =
 *           max|w| / 127, q = round(w / scale) in [-127, 127]; a row of
 *           zeros gets scale 0.
 *    rows   textclf pruning: the rows of largest L2 norm, as fastText's
 *           `quantize -cutoff` keeps them.
 *
 *  Pure functions over caller buffers: no state, thread-safe. Not a file
 *  writer (ty_portable.h is).
 */
#ifndef TY_QUANTIZE_H
#define TY_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#define TY_QUANTIZE_I8_MAX 127   /* symmetric: -128 is never written */

/* float -> binary16 bits, round to nearest even; overflow -> infinity,
 * NaN stays NaN (quiet), below half the smallest subnormal -> signed 0. */
uint16_t ty_quantize_f16 (float v);

/* rows x rowlen floats -> rows x rowlen int8 + rows scales. Returns the
 * largest absolute error |w - scale * q| over the tensor (for reports and
 * tests: at most scale / 2 per row). */
double ty_quantize_i8_rows (const float *w, size_t rows, size_t rowlen, int8_t *q,
                            float *scales);

/* The keep rows (of rows x rowlen floats) with the largest L2 norm, as
 * ascending row ids into kept (keep entries). Ties: the lower id wins, so
 * the choice is deterministic. Requires keep <= rows. Returns 0, or
 * ENOMEM. */
int ty_quantize_top_rows (const float *w, size_t rows, size_t rowlen, size_t keep,
                          uint32_t *kept);

#endif

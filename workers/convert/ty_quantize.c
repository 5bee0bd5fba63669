/*  ty_quantize: FP16 rounding, per-row INT8 and norm pruning (see the
 *  header). The writer's side only: the runtime (infer/) never links it. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ty_quantize.h"

/* ==== FP16 ================================================================== */

#define S_F32_INF       0x7F800000u
#define S_F32_HALF_OVF  0x477FF000u   /* 65520: rounds (to even) past 65504 */
#define S_F32_HALF_MIN  0x38800000u   /* 2^-14: the smallest normal half */
#define S_F32_HALF_TINY 0x33000000u   /* 2^-25: half the smallest subnormal */
#define S_F16_INF       0x7C00u
#define S_F16_QNAN      0x0200u

/* q + 1 when the dropped bits rem (of width shift) are above half, or
 * exactly half and q is odd: round to nearest, ties to even. */
static uint32_t
s_round_even (uint32_t q, uint32_t rem, int shift)
{
    uint32_t half = 1u << (shift - 1);
    return rem > half || (rem == half && (q & 1u)) ? q + 1 : q;
}

uint16_t
ty_quantize_f16 (float v)
{
    uint32_t x;
    memcpy (&x, &v, sizeof x);
    uint16_t sign = (uint16_t) ((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= S_F32_INF)
        return (uint16_t) (sign | S_F16_INF | (ax > S_F32_INF ? S_F16_QNAN : 0));
    if (ax >= S_F32_HALF_OVF)
        return (uint16_t) (sign | S_F16_INF);
    if (ax < S_F32_HALF_MIN) {
        if (ax < S_F32_HALF_TINY)
            return sign;
        /* A subnormal half: the value in units of 2^-24. exp in
         * [102, 112] gives a shift of 24..14. */
        uint32_t mant = (ax & 0x7FFFFFu) | 0x800000u;
        int shift = 126 - (int) (ax >> 23);
        uint32_t q = s_round_even (mant >> shift, mant & ((1u << shift) - 1), shift);
        return (uint16_t) (sign | q);   /* q = 0x400 is the smallest normal: right */
    }
    /* Normal: rebias the exponent (127 -> 15), keep 10 of 23 mantissa
     * bits. A carry out of the mantissa bumps the exponent, as it should. */
    uint32_t q = ((ax >> 23) - 112) << 10 | (ax & 0x7FFFFFu) >> 13;
    q = s_round_even (q, ax & 0x1FFFu, 13);
    return (uint16_t) (sign | q);
}

/* ==== INT8 ================================================================== */

double
ty_quantize_i8_rows (const float *w, size_t rows, size_t rowlen, int8_t *q, float *scales)
{
    double worst = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *row = w + r * rowlen;
        float amax = 0;
        for (size_t i = 0; i < rowlen; i++)
            if (fabsf (row[i]) > amax)
                amax = fabsf (row[i]);
        float scale = amax / TY_QUANTIZE_I8_MAX;
        scales[r] = scale;
        for (size_t i = 0; i < rowlen; i++) {
            long v = scale > 0 ? lroundf (row[i] / scale) : 0;
            if (v > TY_QUANTIZE_I8_MAX)
                v = TY_QUANTIZE_I8_MAX;
            if (v < -TY_QUANTIZE_I8_MAX)
                v = -TY_QUANTIZE_I8_MAX;
            q[r * rowlen + i] = (int8_t) v;
            double e = fabs ((double) row[i] - (double) scale * (double) v);
            if (e > worst)
                worst = e;
        }
    }
    return worst;
}

/* ==== pruning =============================================================== */

typedef struct {
    double norm2;
    uint32_t id;
} s_rownorm_t;

/* Largest norm first; ties by lower id. */
static int
s_by_norm (const void *a, const void *b)
{
    const s_rownorm_t *x = a, *y = b;
    if (x->norm2 != y->norm2)
        return x->norm2 > y->norm2 ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int
s_by_id (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

int
ty_quantize_top_rows (const float *w, size_t rows, size_t rowlen, size_t keep, uint32_t *kept)
{
    if (keep > rows)
        return EINVAL;
    s_rownorm_t *n = malloc ((rows ? rows : 1) * sizeof *n);
    if (!n)
        return ENOMEM;
    for (size_t r = 0; r < rows; r++) {
        double s = 0;
        const float *row = w + r * rowlen;
        for (size_t i = 0; i < rowlen; i++)
            s += (double) row[i] * row[i];
        n[r].norm2 = s;
        n[r].id = (uint32_t) r;
    }
    qsort (n, rows, sizeof *n, s_by_norm);
    for (size_t i = 0; i < keep; i++)
        kept[i] = n[i].id;
    free (n);
    qsort (kept, keep, sizeof *kept, s_by_id);
    return 0;
}

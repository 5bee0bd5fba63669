/*  ty_infer_net: the forward passes of the four model kinds in plain C,
 *  the same maths as workers/torch/ty_torch.cpp in eval mode (dropout off):
 *    textclf  mean of embedding rows -> linear -> softmax | sigmoid
 *    mlp      (linear -> relu)* -> linear -> softmax | values
 *    cnn      (conv 3x3 | depthwise 3x3 + pointwise 1x1, relu, maxpool 2)*
 *             -> global mean -> linear -> softmax
 *    ncf      [gmf_u * gmf_i, tower(concat(mlp_u, mlp_i))] -> linear -> sigmoid
 *  Sums run in double: the results stay within 1e-5 of libtorch's float
 *  kernels whatever order those sum in. Scratch is per call (the stack for
 *  textclf, malloc for the others), so calls on one model may run on
 *  several threads.
 *
 *  FP16 and INT8 weights are dequantized a row (= an output channel) at a
 *  time into scratch, then the FP32 code runs: activations stay FP32
 *  (dynamic). The textclf embedding bag, the hot path of text models, sums
 *  the rows straight from the file instead: row scale x int8 row, in
 *  float. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ty_infer_impl.h"

/* ==== building blocks ======================================================= */

#define S_LANES 8   /* independent partial sums: the adds pipeline, -O3 vectorises */

/* An INT8 row times x, in float: the row's error (scale / 2 a weight) is far
 * above float rounding, so double buys nothing here; no dequantized copy. */
static float
s_dot_i8 (const int8_t *restrict q, const float *restrict x, size_t n)
{
    float acc[S_LANES] = {0};
    size_t i = 0;
    for (; i + S_LANES <= n; i += S_LANES)
        for (size_t l = 0; l < S_LANES; l++)
            acc[l] += (float) q[i + l] * x[i + l];
    float s = 0;
    for (; i < n; i++)
        s += (float) q[i] * x[i];
    for (size_t l = 0; l < S_LANES; l++)
        s += acc[l];
    return s;
}

/* A float row times x in double (FP32 files: within 1e-5 of libtorch),
 * with independent partial sums instead of one chain of dependent adds. */
static double
s_dot_f64 (const float *restrict row, const float *restrict x, size_t n)
{
    double acc[S_LANES] = {0};
    size_t i = 0;
    for (; i + S_LANES <= n; i += S_LANES)
        for (size_t l = 0; l < S_LANES; l++)
            acc[l] += (double) row[i + l] * x[i + l];
    double s = 0;
    for (; i < n; i++)
        s += (double) row[i] * x[i];
    for (size_t l = 0; l < S_LANES; l++)
        s += acc[l];
    return s;
}

/* y[out] = W[out x in] x + b; buf: in floats of scratch (FP16 rows). */
static void
s_linear (const ty_infer_tensor_t *w, const ty_infer_tensor_t *b, const float *x, float *y,
          float *buf)
{
    size_t out = (size_t) w->dims[0], in = (size_t) w->dims[1];
    for (size_t o = 0; o < out; o++) {
        if (w->dtype == TY_INFER_DT_I8) {
            float d = w->scale[o] * s_dot_i8 (w->i8 + o * in, x, in);
            y[o] = (float) ((double) b->data[o] + (double) d);
            continue;
        }
        const float *row = ty_infer_row (w, o, buf);
        y[o] = (float) (b->data[o] + s_dot_f64 (row, x, in));
    }
}

static void
s_relu (float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(x[i] > 0))
            x[i] = 0;
}

static void
s_softmax (float *x, size_t n)
{
    float mx = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    /* One exp per class: x holds exp(x - max) until the sum is known (the
     * float rounding of that store is below the 1e-5 bar by far, but the
     * sum and the division stay in double). */
    double sum = 0, e[TY_INFER_STACK_FLOATS];
    bool keep = n <= TY_INFER_STACK_FLOATS;
    for (size_t i = 0; i < n; i++) {
        double v = exp ((double) x[i] - mx);
        if (keep)
            e[i] = v;
        sum += v;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = (float) ((keep ? e[i] : exp ((double) x[i] - mx)) / sum);
}

static void
s_sigmoid (float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float) (1.0 / (1.0 + exp (-(double) x[i])));
}

static int
s_check_out (const ty_infer_model_t *m, const float *out, size_t out_len)
{
    if (!out)
        return TY_INFER_EINVAL;
    return out_len < m->out_width ? TY_INFER_EFULL : TY_INFER_OK;
}

/* ==== textclf =============================================================== */

/* acc += sc x q: scale x int8 row, in float. restrict: acc and q never
 * overlap (an int8_t may alias anything, so without it the compiler would
 * not vectorise); the module's -O3 (cmake/modules/infer.cmake) makes this
 * 8-bit loads widened and multiplied 4-8 lanes at a time. */
static void
s_add_i8_row (float *restrict acc, const int8_t *restrict q, float sc, size_t n)
{
    for (size_t d = 0; d < n; d++)
        acc[d] += sc * (float) q[d];
}

/* The sum of the kept rows of ids into acc (dim floats of the bag; FP32
 * files sum in double into dacc). Returns the number of rows summed:
 * ids that pruning dropped count for nothing, as in fastText. */
static size_t
s_bag_sum (const ty_infer_model_t *m, const int64_t *ids, size_t n, double *dacc, float *acc)
{
    const ty_infer_tensor_t *E = &m->tensors[0];
    size_t dim = (size_t) m->arch.dim, kept = 0;
    for (size_t k = 0; k < n; k++) {
        /* ids are < nwords + bucket = nrows by construction (validated);
         * the row map gives a kept row < nkept or -1. */
        int64_t r = ty_infer_row_of (m, ids[k]);
        if (r < 0)
            continue;
        kept++;
        size_t at = (size_t) r * dim;
        switch (E->dtype) {
        case TY_INFER_DT_F32: {
            const float *row = E->data + at;
            for (size_t d = 0; d < dim; d++)
                dacc[d] += row[d];
            break;
        }
        case TY_INFER_DT_I8:
            s_add_i8_row (acc, E->i8 + at, E->scale[r], dim);
            break;
        default: {
            const uint16_t *h = E->f16 + at;
            for (size_t d = 0; d < dim; d++)
                acc[d] += ty_infer_f16_to_f32 (h[d]);
            break;
        }
        }
    }
    return kept;
}

int
ty_infer_predict_text (const ty_infer_model_t *m, const char *text, size_t len, float *out,
                       size_t out_len)
{
    if (!m || m->kind != TY_INFER_TEXTCLF || (!text && len > 0))
        return TY_INFER_EINVAL;
    int rc = s_check_out (m, out, out_len);
    if (rc != TY_INFER_OK)
        return rc;
    /* Scratch on the stack for the usual sizes: no allocation per call. */
    int64_t stack_ids[TY_INFER_STACK_IDS];
    double stack_dacc[TY_INFER_STACK_FLOATS];
    float stack_f[3 * TY_INFER_STACK_FLOATS];
    size_t dim = (size_t) m->arch.dim;
    bool heap = dim > TY_INFER_STACK_FLOATS;
    double *dacc = heap ? calloc (dim, sizeof *dacc) : stack_dacc;
    float *f = heap ? calloc (3 * dim, sizeof *f) : stack_f;
    ty_infer_ids_t ids = {stack_ids, 0, TY_INFER_STACK_IDS, false};
    if (!dacc || !f || ty_infer_text_ids (m, text ? text : "", len, &ids) != TY_INFER_OK) {
        rc = TY_INFER_ENOMEM;
        goto done;
    }
    float *acc = f, *h = f + dim, *buf = f + 2 * dim;
    if (!heap) {
        memset (dacc, 0, dim * sizeof *dacc);
        memset (acc, 0, dim * sizeof *acc);
    }
    size_t n = s_bag_sum (m, ids.ids, ids.n, dacc, acc);
    /* The mean; an empty bag is zeros, as EmbeddingBag(mean) gives. */
    bool f32 = m->tensors[0].dtype == TY_INFER_DT_F32;
    for (size_t d = 0; d < dim; d++)
        h[d] = n == 0 ? 0.0f : f32 ? (float) (dacc[d] / (double) n) : acc[d] / (float) n;
    s_linear (&m->tensors[1], &m->tensors[2], h, out, buf);
    if (m->arch.multilabel)
        s_sigmoid (out, m->out_width);
    else
        s_softmax (out, m->out_width);
done:
    if (heap) {
        free (dacc);
        free (f);
    }
    if (ids.owned)
        free (ids.ids);
    return rc;
}

/* ==== mlp =================================================================== */

static int
s_mlp (const ty_infer_model_t *m, const float *x, float *out)
{
    const ty_infer_arch_t *r = &m->arch;
    size_t widest = (size_t) r->input_dim;
    for (int64_t i = 0; i < r->nhidden; i++)
        if ((size_t) r->hidden[i] > widest)
            widest = (size_t) r->hidden[i];
    float *a = malloc (widest * sizeof *a), *b = malloc (widest * sizeof *b);
    float *buf = malloc (m->max_rowlen * sizeof *buf);
    if (!a || !b || !buf) {
        free (a);
        free (b);
        free (buf);
        return TY_INFER_ENOMEM;
    }
    memcpy (a, x, (size_t) r->input_dim * sizeof *a);
    for (int64_t i = 0; i <= r->nhidden; i++) {
        const ty_infer_tensor_t *w = &m->tensors[2 * i], *bias = &m->tensors[2 * i + 1];
        if (i < r->nhidden) {
            s_linear (w, bias, a, b, buf);
            s_relu (b, (size_t) w->dims[0]);
            float *t = a;
            a = b;
            b = t;
        }
        else
            s_linear (w, bias, a, out, buf);
    }
    free (a);
    free (b);
    free (buf);
    if (!r->regression)
        s_softmax (out, m->out_width);
    return TY_INFER_OK;
}

/* ==== cnn =================================================================== */

/* Conv2d, stride 1, padding k / 2, groups 1 or = channels (depthwise).
 * in: [cin][h][w], out: [cout][h][w]. */
static void
s_conv (const ty_infer_tensor_t *w, const ty_infer_tensor_t *b, bool depthwise,
        const float *in, size_t cin, size_t h, size_t wd, float *out, float *buf)
{
    size_t cout = (size_t) w->dims[0], k = (size_t) w->dims[2];
    size_t per = depthwise ? 1 : cin;
    long pad = (long) k / 2;
    for (size_t o = 0; o < cout; o++) {
        /* One output channel's filters, dequantized once for the plane. */
        const float *wo = ty_infer_row (w, o, buf);
        for (size_t y = 0; y < h; y++)
            for (size_t x = 0; x < wd; x++) {
                double s = b->data[o];
                for (size_t c = 0; c < per; c++) {
                    size_t ic = depthwise ? o : c;
                    const float *plane = in + ic * h * wd;
                    const float *wk = wo + c * k * k;
                    for (size_t ky = 0; ky < k; ky++) {
                        long yy = (long) y + (long) ky - pad;
                        if (yy < 0 || yy >= (long) h)
                            continue;
                        for (size_t kx = 0; kx < k; kx++) {
                            long xx = (long) x + (long) kx - pad;
                            if (xx < 0 || xx >= (long) wd)
                                continue;
                            s += (double) wk[ky * k + kx] * plane[(size_t) yy * wd + (size_t) xx];
                        }
                    }
                }
                out[o * h * wd + y * wd + x] = (float) s;
            }
    }
}

static int
s_cnn (const ty_infer_model_t *m, const float *x, float *out)
{
    const ty_infer_arch_t *r = &m->arch;
    size_t h = (size_t) r->height, w = (size_t) r->width, c = (size_t) r->channels;
    /* The widest activation: the largest channel count at full size is an
     * upper bound (spatial size only shrinks). */
    size_t maxc = c, f = (size_t) r->filters;
    for (int64_t i = 0; i < r->depth; i++, f *= 2)
        if (f > maxc)
            maxc = f;
    size_t cap = maxc * h * w;
    float *a = malloc (cap * sizeof *a), *b = malloc (cap * sizeof *b);
    float *buf = malloc (m->max_rowlen * sizeof *buf);
    if (!a || !b || !buf) {
        free (a);
        free (b);
        free (buf);
        return TY_INFER_ENOMEM;
    }
    memcpy (a, x, c * h * w * sizeof *a);
    size_t t = 0, cin = c;
    for (int64_t blk = 0; blk < r->depth; blk++) {
        float *tmp;
        if (r->separable && blk > 0) {
            s_conv (&m->tensors[t], &m->tensors[t + 1], true, a, cin, h, w, b, buf);
            s_conv (&m->tensors[t + 2], &m->tensors[t + 3], false, b, cin, h, w, a, buf);
            cin = (size_t) m->tensors[t + 2].dims[0];
            t += 4;
        }
        else {
            s_conv (&m->tensors[t], &m->tensors[t + 1], false, a, cin, h, w, b, buf);
            cin = (size_t) m->tensors[t].dims[0];
            t += 2;
            tmp = a; a = b; b = tmp;
        }
        s_relu (a, cin * h * w);
        if (h >= 2 && w >= 2) {
            /* max_pool2d(2): stride 2, floor, no padding. */
            size_t h2 = h / 2, w2 = w / 2;
            for (size_t ch = 0; ch < cin; ch++)
                for (size_t y = 0; y < h2; y++)
                    for (size_t xx = 0; xx < w2; xx++) {
                        const float *p = a + ch * h * w + 2 * y * w + 2 * xx;
                        float v = p[0];
                        if (p[1] > v) v = p[1];
                        if (p[w] > v) v = p[w];
                        if (p[w + 1] > v) v = p[w + 1];
                        b[ch * h2 * w2 + y * w2 + xx] = v;
                    }
            h = h2;
            w = w2;
            tmp = a; a = b; b = tmp;
        }
    }
    /* Global mean over the plane, then the classifier. */
    for (size_t ch = 0; ch < cin; ch++) {
        double s = 0;
        for (size_t i = 0; i < h * w; i++)
            s += a[ch * h * w + i];
        b[ch] = (float) (s / (double) (h * w));
    }
    s_linear (&m->tensors[t], &m->tensors[t + 1], b, out, buf);
    s_softmax (out, m->out_width);
    free (a);
    free (b);
    free (buf);
    return TY_INFER_OK;
}

/* ==== features, images, pairs ============================================== */

int
ty_infer_predict_features (const ty_infer_model_t *m, const float *x, size_t x_len, float *out,
                           size_t out_len)
{
    if (!m || (m->kind != TY_INFER_MLP && m->kind != TY_INFER_CNN) || !x
        || x_len != m->in_width)
        return TY_INFER_EINVAL;
    int rc = s_check_out (m, out, out_len);
    if (rc != TY_INFER_OK)
        return rc;
    for (size_t i = 0; i < x_len; i++)
        if (!isfinite (x[i]))
            return TY_INFER_EINVAL;
    return m->kind == TY_INFER_MLP ? s_mlp (m, x, out) : s_cnn (m, x, out);
}

int
ty_infer_predict_image (const ty_infer_model_t *m, const uint8_t *pixels, size_t len, float *out,
                        size_t out_len)
{
    if (!m || m->kind != TY_INFER_CNN || !pixels || len != m->in_width)
        return TY_INFER_EINVAL;
    int rc = s_check_out (m, out, out_len);
    if (rc != TY_INFER_OK)
        return rc;
    size_t h = (size_t) m->arch.height, w = (size_t) m->arch.width, c = (size_t) m->arch.channels;
    float *x = malloc (len * sizeof *x);
    if (!x)
        return TY_INFER_ENOMEM;
    /* HWC bytes -> CHW floats in [0, 1], as ty_batch does for training. */
    for (size_t y = 0; y < h; y++)
        for (size_t xx = 0; xx < w; xx++)
            for (size_t ch = 0; ch < c; ch++)
                x[ch * h * w + y * w + xx] = pixels[(y * w + xx) * c + ch] / 255.0f;
    rc = s_cnn (m, x, out);
    free (x);
    return rc;
}

int
ty_infer_predict_pair (const ty_infer_model_t *m, int64_t user, int64_t item, float *score)
{
    if (!m || m->kind != TY_INFER_NCF || !score || user < 0 || user >= m->arch.nusers
        || item < 0 || item >= m->arch.nitems)
        return TY_INFER_EINVAL;
    const ty_infer_arch_t *r = &m->arch;
    size_t g = (size_t) r->gmf_dim, d = (size_t) r->mlp_dim;
    size_t widest = 2 * d;
    for (int64_t i = 0; i < r->nlayers; i++)
        if ((size_t) r->layers[i] > widest)
            widest = (size_t) r->layers[i];
    float *a = malloc ((g + widest) * sizeof *a), *b = malloc ((g + widest) * sizeof *b);
    /* buf: a dequantized row of any tensor; gbuf: the two GMF rows. */
    float *buf = malloc (m->max_rowlen * sizeof *buf), *gbuf = malloc (2 * g * sizeof *gbuf);
    if (!a || !b || !buf || !gbuf) {
        free (a);
        free (b);
        free (buf);
        free (gbuf);
        return TY_INFER_ENOMEM;
    }
    const float *gu = ty_infer_row (&m->tensors[0], (size_t) user, gbuf);
    const float *gi = ty_infer_row (&m->tensors[1], (size_t) item, gbuf + g);
    memcpy (a, ty_infer_row (&m->tensors[2], (size_t) user, buf), d * sizeof *a);
    memcpy (a + d, ty_infer_row (&m->tensors[3], (size_t) item, buf), d * sizeof *a);
    size_t n = 2 * d;
    for (int64_t i = 0; i < r->nlayers; i++) {
        s_linear (&m->tensors[4 + 2 * i], &m->tensors[5 + 2 * i], a, b, buf);
        n = (size_t) r->layers[i];
        s_relu (b, n);
        memcpy (a, b, n * sizeof *a);
    }
    /* out over [gmf, tower]: gmf first, as torch::cat ({gmf, h}). */
    for (size_t k = 0; k < g; k++)
        b[k] = gu[k] * gi[k];
    memcpy (b + g, a, n * sizeof *b);
    size_t t = 4 + 2 * (size_t) r->nlayers;
    s_linear (&m->tensors[t], &m->tensors[t + 1], b, score, buf);
    s_sigmoid (score, 1);
    free (a);
    free (b);
    free (buf);
    free (gbuf);
    return TY_INFER_OK;
}

/*  ty_infer_net: the forward passes of the four model kinds in plain C,
 *  the same maths as workers/torch/ty_torch.cpp in eval mode (dropout off):
 *    textclf  mean of embedding rows -> linear -> softmax | sigmoid
 *    mlp      (linear -> relu)* -> linear -> softmax | values
 *    cnn      (conv 3x3 | depthwise 3x3 + pointwise 1x1, relu, maxpool 2)*
 *             -> global mean -> linear -> softmax
 *    ncf      [gmf_u * gmf_i, tower(concat(mlp_u, mlp_i))] -> linear -> sigmoid
 *  Sums run in double: the results stay within 1e-5 of libtorch's float
 *  kernels whatever order those sum in. Scratch is malloc'd per call, so
 *  calls on one model may run on several threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ty_infer_impl.h"

/* ==== building blocks ======================================================= */

/* y[out] = W[out x in] x + b */
static void
s_linear (const ty_infer_tensor_t *w, const ty_infer_tensor_t *b, const float *x, float *y)
{
    size_t out = (size_t) w->dims[0], in = (size_t) w->dims[1];
    for (size_t o = 0; o < out; o++) {
        const float *row = w->data + o * in;
        double s = b->data[o];
        for (size_t i = 0; i < in; i++)
            s += (double) row[i] * x[i];
        y[o] = (float) s;
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
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += exp ((double) x[i] - mx);
    for (size_t i = 0; i < n; i++)
        x[i] = (float) (exp ((double) x[i] - mx) / sum);
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

int
ty_infer_predict_text (const ty_infer_model_t *m, const char *text, size_t len, float *out,
                       size_t out_len)
{
    if (!m || m->kind != TY_INFER_TEXTCLF || (!text && len > 0))
        return TY_INFER_EINVAL;
    int rc = s_check_out (m, out, out_len);
    if (rc != TY_INFER_OK)
        return rc;
    ty_infer_ids_t ids = {NULL, 0, 0};
    size_t dim = (size_t) m->arch.dim;
    double *acc = calloc (dim, sizeof *acc);
    float *h = calloc (dim, sizeof *h);
    if (!acc || !h || ty_infer_text_ids (m, text ? text : "", len, &ids) != TY_INFER_OK) {
        free (acc);
        free (h);
        free (ids.ids);
        return TY_INFER_ENOMEM;
    }
    const float *E = m->tensors[0].data;
    for (size_t k = 0; k < ids.n; k++) {
        /* ids are < nwords + bucket = nrows by construction (validated). */
        const float *row = E + (size_t) ids.ids[k] * dim;
        for (size_t d = 0; d < dim; d++)
            acc[d] += row[d];
    }
    /* An empty bag is zeros, as EmbeddingBag(mean) gives. */
    for (size_t d = 0; d < dim; d++)
        h[d] = ids.n ? (float) (acc[d] / (double) ids.n) : 0.0f;
    s_linear (&m->tensors[1], &m->tensors[2], h, out);
    if (m->arch.multilabel)
        s_sigmoid (out, m->out_width);
    else
        s_softmax (out, m->out_width);
    free (acc);
    free (h);
    free (ids.ids);
    return TY_INFER_OK;
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
    if (!a || !b) {
        free (a);
        free (b);
        return TY_INFER_ENOMEM;
    }
    memcpy (a, x, (size_t) r->input_dim * sizeof *a);
    for (int64_t i = 0; i <= r->nhidden; i++) {
        const ty_infer_tensor_t *w = &m->tensors[2 * i], *bias = &m->tensors[2 * i + 1];
        if (i < r->nhidden) {
            s_linear (w, bias, a, b);
            s_relu (b, (size_t) w->dims[0]);
            float *t = a;
            a = b;
            b = t;
        }
        else
            s_linear (w, bias, a, out);
    }
    free (a);
    free (b);
    if (!r->regression)
        s_softmax (out, m->out_width);
    return TY_INFER_OK;
}

/* ==== cnn =================================================================== */

/* Conv2d, stride 1, padding k / 2, groups 1 or = channels (depthwise).
 * in: [cin][h][w], out: [cout][h][w]. */
static void
s_conv (const ty_infer_tensor_t *w, const ty_infer_tensor_t *b, bool depthwise,
        const float *in, size_t cin, size_t h, size_t wd, float *out)
{
    size_t cout = (size_t) w->dims[0], k = (size_t) w->dims[2];
    size_t per = depthwise ? 1 : cin;
    long pad = (long) k / 2;
    for (size_t o = 0; o < cout; o++) {
        const float *wo = w->data + o * per * k * k;
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
    if (!a || !b) {
        free (a);
        free (b);
        return TY_INFER_ENOMEM;
    }
    memcpy (a, x, c * h * w * sizeof *a);
    size_t t = 0, cin = c;
    for (int64_t blk = 0; blk < r->depth; blk++) {
        float *tmp;
        if (r->separable && blk > 0) {
            s_conv (&m->tensors[t], &m->tensors[t + 1], true, a, cin, h, w, b);
            s_conv (&m->tensors[t + 2], &m->tensors[t + 3], false, b, cin, h, w, a);
            cin = (size_t) m->tensors[t + 2].dims[0];
            t += 4;
        }
        else {
            s_conv (&m->tensors[t], &m->tensors[t + 1], false, a, cin, h, w, b);
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
    s_linear (&m->tensors[t], &m->tensors[t + 1], b, out);
    s_softmax (out, m->out_width);
    free (a);
    free (b);
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
    if (!a || !b) {
        free (a);
        free (b);
        return TY_INFER_ENOMEM;
    }
    const float *gu = m->tensors[0].data + (size_t) user * g;
    const float *gi = m->tensors[1].data + (size_t) item * g;
    memcpy (a, m->tensors[2].data + (size_t) user * d, d * sizeof *a);
    memcpy (a + d, m->tensors[3].data + (size_t) item * d, d * sizeof *a);
    size_t n = 2 * d;
    for (int64_t i = 0; i < r->nlayers; i++) {
        s_linear (&m->tensors[4 + 2 * i], &m->tensors[5 + 2 * i], a, b);
        n = (size_t) r->layers[i];
        s_relu (b, n);
        memcpy (a, b, n * sizeof *a);
    }
    /* out over [gmf, tower]: gmf first, as torch::cat ({gmf, h}). */
    for (size_t k = 0; k < g; k++)
        b[k] = gu[k] * gi[k];
    memcpy (b + g, a, n * sizeof *b);
    size_t t = 4 + 2 * (size_t) r->nlayers;
    s_linear (&m->tensors[t], &m->tensors[t + 1], b, score);
    s_sigmoid (score, 1);
    free (a);
    free (b);
    return TY_INFER_OK;
}

/*  ty_onnx: a libtorch model -> an ONNX graph (proto/onnx.proto) -> a file.
 *
 *  The graph is built as protobuf-c structs. Every one of them, every
 *  string and array in them comes from one arena (s_build_t) that is freed
 *  in one go, so no path through the builder leaks and no struct needs its
 *  own destructor. The weights are copied once, into the initializers'
 *  raw_data; packing streams straight into the file (a ProtobufCBuffer
 *  over the fd), so a big embedding is never held twice more. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "onnx.pb-c.h"
#include "ty_batch.h"
#include "ty_error.h"
#include "ty_modeldir.h"
#include "ty_onnx.h"
#include "ty_tokenize.h"

#define S_MAX_NODES      96     /* ncf with 8 tower layers needs ~25, cnn depth 6 ~30 */
#define S_MAX_INITS      48     /* parameter tensors (<= 2 + 2 * 9 for mlp) + constants */
#define S_MAX_META       8      /* metadata_props entries */
#define S_MAX_DIMS       4
#define S_NAME_LEN       64     /* tensor / value names we make */
#define S_PRODUCER       "trainyard"
#define S_BATCH_DIM      "N"    /* symbolic batch size */
#define S_LENGTH_DIM     "L"    /* symbolic textclf ids per row */
#define S_DYNAMIC        (-1)   /* a dims[] entry that is symbolic */
#define S_POOL           2      /* the shim's max_pool2d(x, 2) */
#define S_KERNEL         3      /* the shim's 3x3 convolutions (padding 1) */

typedef Ty__Onnx__TensorProto    s_tensor_t;
typedef Ty__Onnx__NodeProto      s_node_t;
typedef Ty__Onnx__ValueInfoProto s_value_t;

/* ==== the arena and the graph under construction ========================== */

typedef struct {
    void **ptrs;                 /* every allocation of this export */
    size_t n, cap;
    bool oom;
    const ty_torch_params_t *p;
    s_node_t *nodes[S_MAX_NODES];
    size_t nnodes;
    s_tensor_t *inits[S_MAX_INITS];
    size_t ninits;
    size_t seq;                  /* numbers node names */
    char *err;
    size_t errlen;
    int status;                  /* the first error; later calls do nothing */
} s_build_t;

static int
s_fail (char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (err, errlen, fmt, ap);
        va_end (ap);
    }
    return code;
}

/* Records the first error of a build; returns it. */
static int
s_bfail (s_build_t *b, int code, const char *fmt, ...)
{
    if (b->status != TY_OK)
        return b->status;
    b->status = code;
    if (b->err && b->errlen > 0) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (b->err, b->errlen, fmt, ap);
        va_end (ap);
    }
    return code;
}

/* Zeroed memory owned by the arena; NULL (and the build failed) when out
 * of memory. */
static void *
s_alloc (s_build_t *b, size_t size)
{
    if (b->status != TY_OK)
        return NULL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        void **g = realloc (b->ptrs, cap * sizeof *g);
        if (!g) {
            s_bfail (b, TY_ENOMEM, "out of memory");
            return NULL;
        }
        b->ptrs = g;
        b->cap = cap;
    }
    void *m = calloc (1, size ? size : 1);
    if (!m) {
        s_bfail (b, TY_ENOMEM, "out of memory (%zu bytes)", size);
        return NULL;
    }
    b->ptrs[b->n++] = m;
    return m;
}

static char *
s_strdup (s_build_t *b, const char *s)
{
    size_t len = strlen (s);
    char *d = s_alloc (b, len + 1);
    if (d)
        memcpy (d, s, len + 1);
    return d;
}

static void
s_build_free (s_build_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        free (b->ptrs[i]);
    free (b->ptrs);
    b->ptrs = NULL;
    b->n = b->cap = 0;
}

static void
s_put32 (unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

static void
s_put64 (unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

/* ==== initializers ========================================================= */

/* A new initializer named name with the given shape and room for bytes of
 * raw_data (little-endian, as ONNX requires whatever the host). */
static s_tensor_t *
s_init_new (s_build_t *b, const char *name, int32_t dtype, int ndim, const int64_t *shape,
            size_t bytes)
{
    if (b->status == TY_OK && b->ninits == S_MAX_INITS) {
        s_bfail (b, TY_EINVAL, "more than %d initializers", S_MAX_INITS);
        return NULL;
    }
    s_tensor_t *t = s_alloc (b, sizeof *t);
    int64_t *dims = s_alloc (b, (size_t) (ndim > 0 ? ndim : 1) * sizeof *dims);
    unsigned char *raw = s_alloc (b, bytes);
    char *n = s_strdup (b, name);
    if (!t || !dims || !raw || !n)
        return NULL;
    ty__onnx__tensor_proto__init (t);
    if (ndim > 0)   /* scalars pass shape NULL */
        memcpy (dims, shape, (size_t) ndim * sizeof *dims);
    t->n_dims = (size_t) ndim;
    t->dims = dims;
    t->has_data_type = true;
    t->data_type = dtype;
    t->name = n;
    t->has_raw_data = true;
    t->raw_data.data = raw;
    t->raw_data.len = bytes;
    b->inits[b->ninits++] = t;
    return t;
}

static s_tensor_t *
s_find_init (s_build_t *b, const char *name)
{
    for (size_t i = 0; i < b->ninits; i++)
        if (strcmp (b->inits[i]->name, name) == 0)
            return b->inits[i];
    return NULL;
}

/* 1-D int64 constant (ReduceSum's axes, the pad id as a scalar when ndim 0). */
static const char *
s_const_i64 (s_build_t *b, const char *name, int ndim, const int64_t *v, size_t n)
{
    int64_t shape[1] = {(int64_t) n};
    s_tensor_t *t = s_init_new (b, name, TY__ONNX__TENSOR_PROTO__DATA_TYPE__INT64, ndim, shape,
                                n * 8);
    if (!t)
        return NULL;
    for (size_t i = 0; i < n; i++)
        s_put64 (t->raw_data.data + 8 * i, (uint64_t) v[i]);
    return t->name;
}

static const char *
s_const_f32 (s_build_t *b, const char *name, float v)
{
    s_tensor_t *t = s_init_new (b, name, TY__ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL, 4);
    if (!t)
        return NULL;
    uint32_t u;
    memcpy (&u, &v, 4);
    s_put32 (t->raw_data.data, u);
    return t->name;
}

/* The shim's tensors, one initializer each, under libtorch's names. The
 * textclf embedding gets one more row, all zeros, at index nrows: the pad
 * id, which adds nothing to a bag's sum (docs/onnx.md). */
static int
s_on_tensor (void *arg, const char *name, int ndim, const int64_t *shape, const float *data)
{
    s_build_t *b = arg;
    if (ndim < 1 || ndim > S_MAX_DIMS)
        return s_bfail (b, TY_EINVAL, "tensor %s has %d dimensions", name, ndim);
    int64_t dims[S_MAX_DIMS];
    memcpy (dims, shape, (size_t) ndim * sizeof *dims);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (uint64_t) shape[i];
    bool pad = b->p->kind == TY_TORCH_TEXTCLF && strcmp (name, "emb.weight") == 0 && ndim == 2;
    if (pad)
        dims[0]++;
    uint64_t total = pad ? numel + (uint64_t) shape[1] : numel;
    if (total > SIZE_MAX / 4)
        return s_bfail (b, TY_EINVAL, "tensor %s is too big", name);
    s_tensor_t *t = s_init_new (b, name, TY__ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims,
                                (size_t) total * 4);
    if (!t)
        return b->status;
    /* The pad row stays as s_alloc left it: zero bytes = 0.0f. */
    for (uint64_t i = 0; i < numel; i++) {
        uint32_t u;
        memcpy (&u, &data[i], 4);
        s_put32 (t->raw_data.data + 4 * i, u);
    }
    return TY_OK;
}

/* The initializer name, checked against the shape the graph needs; NULL
 * (and the build failed) if the model has no such tensor or another shape. */
static const char *
s_param (s_build_t *b, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
         int64_t d3)
{
    if (b->status != TY_OK)
        return NULL;
    s_tensor_t *t = s_find_init (b, name);
    if (!t) {
        s_bfail (b, TY_EINVAL, "the model has no tensor %s", name);
        return NULL;
    }
    int64_t want[S_MAX_DIMS] = {d0, d1, d2, d3};
    bool ok = t->n_dims == (size_t) ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->dims[i] == want[i];
    if (!ok) {
        s_bfail (b, TY_EINVAL, "tensor %s does not have the shape its architecture implies",
                 name);
        return NULL;
    }
    return t->name;
}

/* ==== nodes ================================================================ */

/* A node op(inputs) -> one output; the output's name is returned (made up
 * from op and a sequence number when out is NULL). */
static const char *
s_node (s_build_t *b, const char *op, const char *out, s_node_t **node_p, int nin, ...)
{
    if (node_p)
        *node_p = NULL;
    if (b->status != TY_OK)
        return NULL;
    if (b->nnodes == S_MAX_NODES) {
        s_bfail (b, TY_EINVAL, "more than %d nodes", S_MAX_NODES);
        return NULL;
    }
    char name[S_NAME_LEN];
    snprintf (name, sizeof name, "%s_%zu", op, b->seq++);
    s_node_t *n = s_alloc (b, sizeof *n);
    char **in = s_alloc (b, (size_t) nin * sizeof *in);
    char **outs = s_alloc (b, sizeof *outs);
    char *nm = s_strdup (b, name);
    char *o = s_strdup (b, out ? out : name);
    char *opn = s_strdup (b, op);
    if (!n || !in || !outs || !nm || !o || !opn)
        return NULL;
    va_list ap;
    va_start (ap, nin);
    for (int i = 0; i < nin; i++) {
        const char *s = va_arg (ap, const char *);
        in[i] = s ? s_strdup (b, s) : NULL;
        if (!in[i]) {
            va_end (ap);
            /* A NULL input is an earlier failure, already recorded. */
            s_bfail (b, TY_EINTERNAL, "node %s: missing input %d", name, i);
            return NULL;
        }
    }
    va_end (ap);
    ty__onnx__node_proto__init (n);
    n->name = nm;
    n->op_type = opn;
    n->n_input = (size_t) nin;
    n->input = in;
    n->n_output = 1;
    outs[0] = o;
    n->output = outs;
    b->nodes[b->nnodes++] = n;
    if (node_p)
        *node_p = n;
    return o;
}

static Ty__Onnx__AttributeProto *
s_attr (s_build_t *b, s_node_t *node, const char *name, Ty__Onnx__AttributeProto__AttributeType type)
{
    if (!node || b->status != TY_OK)
        return NULL;
    Ty__Onnx__AttributeProto *a = s_alloc (b, sizeof *a);
    Ty__Onnx__AttributeProto **list
        = s_alloc (b, (node->n_attribute + 1) * sizeof *list);
    char *nm = s_strdup (b, name);
    if (!a || !list || !nm)
        return NULL;
    ty__onnx__attribute_proto__init (a);
    a->name = nm;
    a->has_type = true;
    a->type = type;
    /* The old list stays in the arena; attributes are few. */
    if (node->n_attribute)
        memcpy (list, node->attribute, node->n_attribute * sizeof *list);
    list[node->n_attribute++] = a;
    node->attribute = list;
    return a;
}

static void
s_attr_int (s_build_t *b, s_node_t *node, const char *name, int64_t v)
{
    Ty__Onnx__AttributeProto *a = s_attr (b, node, name, TY__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = true;
        a->i = v;
    }
}

static void
s_attr_ints (s_build_t *b, s_node_t *node, const char *name, const int64_t *v, size_t n)
{
    Ty__Onnx__AttributeProto *a = s_attr (b, node, name, TY__ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = s_alloc (b, n * sizeof *copy);
    if (a && copy) {
        memcpy (copy, v, n * sizeof *copy);
        a->n_ints = n;
        a->ints = copy;
    }
}

/* y = x W^T + bias, the shape of torch::nn::Linear. */
static const char *
s_linear (s_build_t *b, const char *x, const char *w, const char *bias, const char *out)
{
    s_node_t *n;
    const char *y = s_node (b, "Gemm", out, &n, 3, x, w, bias);
    s_attr_int (b, n, "transB", 1);
    return y;
}

/* ==== graph inputs and outputs ============================================= */

static s_value_t *
s_value (s_build_t *b, const char *name, int32_t elem, int ndim, const int64_t *dims)
{
    s_value_t *v = s_alloc (b, sizeof *v);
    Ty__Onnx__TypeProto *ty = s_alloc (b, sizeof *ty);
    Ty__Onnx__TypeProto__Tensor *tt = s_alloc (b, sizeof *tt);
    Ty__Onnx__TensorShapeProto *sh = s_alloc (b, sizeof *sh);
    Ty__Onnx__TensorShapeProto__Dimension **dl = s_alloc (b, (size_t) ndim * sizeof *dl);
    char *nm = s_strdup (b, name);
    if (!v || !ty || !tt || !sh || !dl || !nm)
        return NULL;
    for (int i = 0; i < ndim; i++) {
        Ty__Onnx__TensorShapeProto__Dimension *d = s_alloc (b, sizeof *d);
        if (!d)
            return NULL;
        ty__onnx__tensor_shape_proto__dimension__init (d);
        if (dims[i] == S_DYNAMIC) {
            d->value_case = TY__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = s_strdup (b, i == 0 ? S_BATCH_DIM : S_LENGTH_DIM);
            if (!d->dim_param)
                return NULL;
        }
        else {
            d->value_case = TY__ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dl[i] = d;
    }
    ty__onnx__tensor_shape_proto__init (sh);
    sh->n_dim = (size_t) ndim;
    sh->dim = dl;
    ty__onnx__type_proto__tensor__init (tt);
    tt->has_elem_type = true;
    tt->elem_type = elem;
    tt->shape = sh;
    ty__onnx__type_proto__init (ty);
    ty->value_case = TY__ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    ty->tensor_type = tt;
    ty__onnx__value_info_proto__init (v);
    v->name = nm;
    v->type = ty;
    return v;
}

/* ==== the four graphs ======================================================= */

enum { S_F32 = TY__ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
       S_I64 = TY__ONNX__TENSOR_PROTO__DATA_TYPE__INT64 };

/* The mean of the rows of each bag, as EmbeddingBag(mode mean): the sum of
 * the gathered rows (pad rows are zero) over the count of non-pad ids,
 * at least 1 so an empty bag gives zeros. Then fc, softmax or sigmoid. */
static void
s_graph_textclf (s_build_t *b, const ty_torch_textclf_t *p)
{
    const char *emb = s_param (b, "emb.weight", 2, p->nrows + 1, p->dim, 0, 0);
    const char *fw = s_param (b, "fc.weight", 2, p->nlabels, p->dim, 0, 0);
    const char *fb = s_param (b, "fc.bias", 1, p->nlabels, 0, 0, 0);
    int64_t axis1 = 1, pad = p->nrows;
    const char *axes = s_const_i64 (b, "axes_1", 1, &axis1, 1);
    const char *padc = s_const_i64 (b, "pad_id", 0, &pad, 1);
    const char *one = s_const_f32 (b, "one", 1.0f);
    s_node_t *n;
    const char *rows = s_node (b, "Gather", NULL, &n, 2, emb, TY_ONNX_IN_IDS);
    const char *sum = s_node (b, "ReduceSum", NULL, &n, 2, rows, axes);
    s_attr_int (b, n, "keepdims", 0);
    const char *is_pad = s_node (b, "Equal", NULL, NULL, 2, TY_ONNX_IN_IDS, padc);
    const char *is_id = s_node (b, "Not", NULL, NULL, 1, is_pad);
    const char *w = s_node (b, "Cast", NULL, &n, 1, is_id);
    s_attr_int (b, n, "to", S_F32);
    const char *count = s_node (b, "ReduceSum", NULL, &n, 2, w, axes);
    s_attr_int (b, n, "keepdims", 1);
    const char *denom = s_node (b, "Max", NULL, NULL, 2, count, one);
    const char *mean = s_node (b, "Div", NULL, NULL, 2, sum, denom);
    const char *logits = s_linear (b, mean, fw, fb, NULL);
    if (p->multilabel)
        s_node (b, "Sigmoid", TY_ONNX_OUT_PROBS, NULL, 1, logits);
    else {
        s_node (b, "Softmax", TY_ONNX_OUT_PROBS, &n, 1, logits);
        s_attr_int (b, n, "axis", 1);
    }
}

static void
s_graph_mlp (s_build_t *b, const ty_torch_mlp_t *p)
{
    const char *h = TY_ONNX_IN_X;
    int64_t in = p->input_dim;
    for (int i = 0; i <= p->nhidden; i++) {
        bool last = i == p->nhidden;
        int64_t out = last ? p->noutputs : p->hidden[i];
        char wn[S_NAME_LEN], bn[S_NAME_LEN];
        snprintf (wn, sizeof wn, "layers.%d.weight", i);
        snprintf (bn, sizeof bn, "layers.%d.bias", i);
        const char *w = s_param (b, wn, 2, out, in, 0, 0);
        const char *bias = s_param (b, bn, 1, out, 0, 0, 0);
        h = s_linear (b, h, w, bias, last && p->regression ? TY_ONNX_OUT_VALUES : NULL);
        if (!last)
            h = s_node (b, "Relu", NULL, NULL, 1, h);
        in = out;
    }
    if (!p->regression) {
        s_node_t *n;
        s_node (b, "Softmax", TY_ONNX_OUT_PROBS, &n, 1, h);
        s_attr_int (b, n, "axis", 1);
    }
}

static const char *
s_conv (s_build_t *b, const char *x, int idx, int64_t out, int64_t in_per_group, int64_t k,
        int64_t groups)
{
    char wn[S_NAME_LEN], bn[S_NAME_LEN];
    snprintf (wn, sizeof wn, "convs.%d.weight", idx);
    snprintf (bn, sizeof bn, "convs.%d.bias", idx);
    const char *w = s_param (b, wn, 4, out, in_per_group, k, k);
    const char *bias = s_param (b, bn, 1, out, 0, 0, 0);
    s_node_t *n;
    const char *y = s_node (b, "Conv", NULL, &n, 3, x, w, bias);
    int64_t ks[2] = {k, k}, pads[4] = {k / 2, k / 2, k / 2, k / 2};
    s_attr_ints (b, n, "kernel_shape", ks, 2);
    s_attr_ints (b, n, "pads", pads, 4);
    if (groups > 1)
        s_attr_int (b, n, "group", groups);
    return y;
}

/* The shim pools only while both sides are >= 2; the input size is fixed,
 * so which blocks pool is known here. */
static void
s_graph_cnn (s_build_t *b, const ty_torch_cnn_t *p)
{
    const char *x = TY_ONNX_IN_IMAGE;
    int64_t h = p->height, w = p->width, in = p->channels, out = p->filters;
    int idx = 0;
    for (int blk = 0; blk < p->depth; blk++) {
        if (p->separable && blk > 0) {
            x = s_conv (b, x, idx++, in, 1, S_KERNEL, in);
            x = s_conv (b, x, idx++, out, in, 1, 1);
        }
        else
            x = s_conv (b, x, idx++, out, in, S_KERNEL, 1);
        x = s_node (b, "Relu", NULL, NULL, 1, x);
        if (h >= S_POOL && w >= S_POOL) {
            s_node_t *n;
            x = s_node (b, "MaxPool", NULL, &n, 1, x);
            int64_t ks[2] = {S_POOL, S_POOL};
            s_attr_ints (b, n, "kernel_shape", ks, 2);
            s_attr_ints (b, n, "strides", ks, 2);
            h /= S_POOL;
            w /= S_POOL;
        }
        in = out;
        out *= 2;
    }
    s_node_t *n;
    x = s_node (b, "GlobalAveragePool", NULL, NULL, 1, x);
    x = s_node (b, "Flatten", NULL, &n, 1, x);
    s_attr_int (b, n, "axis", 1);
    const char *fw = s_param (b, "fc.weight", 2, p->nclasses, in, 0, 0);
    const char *fb = s_param (b, "fc.bias", 1, p->nclasses, 0, 0, 0);
    x = s_linear (b, x, fw, fb, NULL);
    s_node (b, "Softmax", TY_ONNX_OUT_PROBS, &n, 1, x);
    s_attr_int (b, n, "axis", 1);
}

static void
s_graph_ncf (s_build_t *b, const ty_torch_ncf_t *p)
{
    const char *gu = s_param (b, "gmf_user.weight", 2, p->nusers, p->gmf_dim, 0, 0);
    const char *gi = s_param (b, "gmf_item.weight", 2, p->nitems, p->gmf_dim, 0, 0);
    const char *mu = s_param (b, "mlp_user.weight", 2, p->nusers, p->mlp_dim, 0, 0);
    const char *mi = s_param (b, "mlp_item.weight", 2, p->nitems, p->mlp_dim, 0, 0);
    s_node_t *n;
    const char *gmf = s_node (b, "Mul", NULL, NULL, 2,
                              s_node (b, "Gather", NULL, NULL, 2, gu, TY_ONNX_IN_USER),
                              s_node (b, "Gather", NULL, NULL, 2, gi, TY_ONNX_IN_ITEM));
    const char *mu_r = s_node (b, "Gather", NULL, NULL, 2, mu, TY_ONNX_IN_USER);
    const char *mi_r = s_node (b, "Gather", NULL, NULL, 2, mi, TY_ONNX_IN_ITEM);
    const char *h = s_node (b, "Concat", NULL, &n, 2, mu_r, mi_r);
    s_attr_int (b, n, "axis", 1);
    int64_t in = 2 * p->mlp_dim;
    for (int i = 0; i < p->nlayers; i++) {
        char wn[S_NAME_LEN], bn[S_NAME_LEN];
        snprintf (wn, sizeof wn, "tower.%d.weight", i);
        snprintf (bn, sizeof bn, "tower.%d.bias", i);
        h = s_linear (b, h, s_param (b, wn, 2, p->layers[i], in, 0, 0),
                      s_param (b, bn, 1, p->layers[i], 0, 0, 0), NULL);
        h = s_node (b, "Relu", NULL, NULL, 1, h);
        in = p->layers[i];
    }
    const char *both = s_node (b, "Concat", NULL, &n, 2, gmf, h);
    s_attr_int (b, n, "axis", 1);
    const char *ow = s_param (b, "out.weight", 2, 1, p->gmf_dim + in, 0, 0);
    const char *ob = s_param (b, "out.bias", 1, 1, 0, 0, 0);
    const char *logit = s_linear (b, both, ow, ob, NULL);
    s_node (b, "Sigmoid", TY_ONNX_OUT_SCORE, NULL, 1, logit);
}

/* ==== the model ============================================================ */

static Ty__Onnx__StringStringEntryProto *
s_meta (s_build_t *b, const char *key, const char *value)
{
    Ty__Onnx__StringStringEntryProto *e = s_alloc (b, sizeof *e);
    char *k = s_strdup (b, key), *v = s_strdup (b, value);
    if (!e || !k || !v)
        return NULL;
    ty__onnx__string_string_entry_proto__init (e);
    e->key = k;
    e->value = v;
    return e;
}

/* The graph's inputs and output for the model's kind. */
static int
s_io (s_build_t *b, Ty__Onnx__GraphProto *g)
{
    const ty_torch_params_t *p = b->p;
    s_value_t **in = s_alloc (b, 2 * sizeof *in);
    s_value_t **out = s_alloc (b, sizeof *out);
    if (!in || !out)
        return b->status;
    int64_t dims[S_MAX_DIMS] = {S_DYNAMIC, 0, 0, 0};
    size_t nin = 1;
    switch (p->kind) {
    case TY_TORCH_TEXTCLF:
        dims[1] = S_DYNAMIC;
        in[0] = s_value (b, TY_ONNX_IN_IDS, S_I64, 2, dims);
        dims[1] = p->textclf.nlabels;
        out[0] = s_value (b, TY_ONNX_OUT_PROBS, S_F32, 2, dims);
        break;
    case TY_TORCH_MLP:
        dims[1] = p->mlp.input_dim;
        in[0] = s_value (b, TY_ONNX_IN_X, S_F32, 2, dims);
        dims[1] = p->mlp.noutputs;
        out[0] = s_value (b, p->mlp.regression ? TY_ONNX_OUT_VALUES : TY_ONNX_OUT_PROBS, S_F32,
                          2, dims);
        break;
    case TY_TORCH_CNN:
        dims[1] = p->cnn.channels;
        dims[2] = p->cnn.height;
        dims[3] = p->cnn.width;
        in[0] = s_value (b, TY_ONNX_IN_IMAGE, S_F32, 4, dims);
        dims[1] = p->cnn.nclasses;
        out[0] = s_value (b, TY_ONNX_OUT_PROBS, S_F32, 2, dims);
        break;
    case TY_TORCH_NCF:
        in[0] = s_value (b, TY_ONNX_IN_USER, S_I64, 1, dims);
        in[1] = s_value (b, TY_ONNX_IN_ITEM, S_I64, 1, dims);
        nin = 2;
        dims[1] = 1;
        out[0] = s_value (b, TY_ONNX_OUT_SCORE, S_F32, 2, dims);
        break;
    }
    g->n_input = nin;
    g->input = in;
    g->n_output = 1;
    g->output = out;
    return b->status;
}

/* A ProtobufCBuffer that appends to a file descriptor; the first write
 * error sticks and later appends do nothing. */
typedef struct {
    ProtobufCBuffer base;
    int fd;
    int status;
} s_fdbuf_t;

static void
s_fdbuf_append (ProtobufCBuffer *buf, size_t len, const uint8_t *data)
{
    s_fdbuf_t *f = (s_fdbuf_t *) buf;
    while (f->status == TY_OK && len > 0) {
        ssize_t w = write (f->fd, data, len);
        if (w < 0) {
            if (errno != EINTR)
                f->status = errno;
            continue;
        }
        data += w;
        len -= (size_t) w;
    }
}

static int
s_emit (const Ty__Onnx__ModelProto *model, const char *path, char *err, size_t errlen)
{
    size_t plen = strlen (path);
    char *tmp = malloc (plen + sizeof ".tmp");
    if (!tmp)
        return s_fail (err, errlen, TY_ENOMEM, "out of memory");
    memcpy (tmp, path, plen);
    memcpy (tmp + plen, ".tmp", sizeof ".tmp");
    int rc = TY_OK;
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        rc = errno;
    if (rc == TY_OK) {
        s_fdbuf_t fb = {{s_fdbuf_append}, fd, TY_OK};
        protobuf_c_message_pack_to_buffer (&model->base, &fb.base);
        rc = fb.status;
    }
    if (rc == TY_OK && fsync (fd) != 0)
        rc = errno;
    if (fd >= 0 && close (fd) != 0 && rc == TY_OK)
        rc = errno;
    if (rc == TY_OK && rename (tmp, path) != 0)
        rc = errno;
    if (rc != TY_OK) {
        if (fd >= 0)
            unlink (tmp);
        s_fail (err, errlen, rc, "writing %s: %s", path, strerror (rc));
    }
    else {
        /* The rename is durable once the directory is synced (best effort:
         * some file systems refuse a directory fsync). */
        char *copy = strdup (path);
        int dfd = copy ? open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd >= 0) {
            (void) fsync (dfd);
            close (dfd);
        }
        free (copy);
    }
    free (tmp);
    return rc;
}

/* labels as a JSON array, in the arena; NULL on failure (recorded). */
static const char *
s_labels_json (s_build_t *b, const char *const *labels, size_t n)
{
    cJSON *arr = cJSON_CreateArray ();
    bool ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *s = cJSON_CreateString (labels[i] ? labels[i] : "");
        ok = s && cJSON_AddItemToArray (arr, s);
        if (s && !ok)
            cJSON_Delete (s);
    }
    char *text = ok ? cJSON_PrintUnformatted (arr) : NULL;
    cJSON_Delete (arr);
    const char *copy = text ? s_strdup (b, text) : NULL;
    if (text)
        cJSON_free (text);
    else
        s_bfail (b, TY_ENOMEM, "out of memory (labels)");
    return copy;
}

int
ty_onnx_write (ty_torch_model_t *model, const char *const *labels, size_t nlabels,
               const char *tokenizer_json, const char *out_path, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!model || !out_path)
        return s_fail (err, errlen, TY_EINVAL, "model or out_path is NULL");
    const ty_torch_params_t *p = ty_torch_params (model);
    size_t width = (size_t) ty_torch_output_width (model);
    if (nlabels != 0 && (nlabels != width || !labels))
        return s_fail (err, errlen, TY_EINVAL, "%zu labels for %zu outputs", nlabels, width);
    if (p->kind < TY_TORCH_TEXTCLF || p->kind > TY_TORCH_NCF)
        return s_fail (err, errlen, TY_EINVAL, "unknown model kind %d", (int) p->kind);

    s_build_t b;
    memset (&b, 0, sizeof b);
    b.p = p;
    b.err = err;
    b.errlen = errlen;
    int rc = ty_torch_export_tensors (model, s_on_tensor, &b);
    if (rc != TY_OK && b.status == TY_OK)
        s_bfail (&b, rc, "export: %s", ty_torch_errstr (model));
    switch (p->kind) {
    case TY_TORCH_TEXTCLF: s_graph_textclf (&b, &p->textclf); break;
    case TY_TORCH_MLP:     s_graph_mlp (&b, &p->mlp); break;
    case TY_TORCH_CNN:     s_graph_cnn (&b, &p->cnn); break;
    case TY_TORCH_NCF:     s_graph_ncf (&b, &p->ncf); break;
    }

    Ty__Onnx__GraphProto *g = s_alloc (&b, sizeof *g);
    Ty__Onnx__ModelProto *m = s_alloc (&b, sizeof *m);
    Ty__Onnx__OperatorSetIdProto *ops = s_alloc (&b, sizeof *ops);
    Ty__Onnx__OperatorSetIdProto **opl = s_alloc (&b, sizeof *opl);
    Ty__Onnx__StringStringEntryProto **meta = s_alloc (&b, S_MAX_META * sizeof *meta);
    char gname[S_NAME_LEN], padbuf[S_NAME_LEN];
    snprintf (gname, sizeof gname, "trainyard_%s", ty_torch_kind_name (p->kind));
    if (b.status == TY_OK) {
        ty__onnx__graph_proto__init (g);
        g->name = s_strdup (&b, gname);
        g->n_node = b.nnodes;
        g->node = b.nodes;
        g->n_initializer = b.ninits;
        g->initializer = b.inits;
        s_io (&b, g);
    }
    if (b.status == TY_OK) {
        size_t nm = 0;
        meta[nm++] = s_meta (&b, TY_ONNX_META_KIND, ty_torch_kind_name (p->kind));
        if (nlabels > 0)
            meta[nm++] = s_meta (&b, TY_ONNX_META_LABELS, s_labels_json (&b, labels, nlabels));
        if (p->kind == TY_TORCH_TEXTCLF) {
            snprintf (padbuf, sizeof padbuf, "%lld", (long long) p->textclf.nrows);
            meta[nm++] = s_meta (&b, TY_ONNX_META_PAD_ID, padbuf);
            if (tokenizer_json)
                meta[nm++] = s_meta (&b, TY_ONNX_META_TOKENIZER, tokenizer_json);
        }
        ty__onnx__operator_set_id_proto__init (ops);
        ops->domain = s_strdup (&b, "");
        ops->has_version = true;
        ops->version = TY_ONNX_OPSET;
        opl[0] = ops;
        ty__onnx__model_proto__init (m);
        m->has_ir_version = true;
        m->ir_version = TY_ONNX_IR_VERSION;
        m->producer_name = s_strdup (&b, S_PRODUCER);
        m->graph = g;
        m->n_opset_import = 1;
        m->opset_import = opl;
        m->n_metadata_props = nm;
        m->metadata_props = meta;
    }
    rc = b.status;
    if (rc == TY_OK)
        rc = s_emit (m, out_path, err, errlen);
    s_build_free (&b);
    if (rc == TY_OK && err && errlen)
        err[0] = '\0';
    return rc;
}

/* The tokenizer options of a textclf featurizer, as JSON (caller frees
 * with cJSON_free); NULL when out of memory. */
static char *
s_tokenizer_json (const ty_vocab_t *v)
{
    const ty_tok_opts_t *o = ty_vocab_opts (v);
    cJSON *j = cJSON_CreateObject ();
    if (!j)
        return NULL;
    bool ok = cJSON_AddBoolToObject (j, "lower", o->lower)
              && cJSON_AddNumberToObject (j, "punct", (double) o->punct)
              && cJSON_AddNumberToObject (j, "word_ngrams", o->word_ngrams)
              && cJSON_AddNumberToObject (j, "minn", o->minn)
              && cJSON_AddNumberToObject (j, "maxn", o->maxn)
              && cJSON_AddNumberToObject (j, "bucket", (double) o->bucket)
              && cJSON_AddBoolToObject (j, "eos", o->eos)
              && cJSON_AddNumberToObject (j, "nwords", (double) ty_vocab_nwords (v));
    char *text = ok ? cJSON_PrintUnformatted (j) : NULL;
    cJSON_Delete (j);
    return text;
}

int
ty_onnx_export_dir (const char *dir, const char *out_path, char *err, size_t errlen)
{
    char path[TY_MODELDIR_PATH_MAX];
    if (!dir || !out_path)
        return s_fail (err, errlen, TY_EINVAL, "dir or out_path is NULL");
    if (snprintf (path, sizeof path, "%s/%s", dir, TY_MODELDIR_WEIGHTS) >= (int) sizeof path)
        return s_fail (err, errlen, TY_EINVAL, "path too long");
    ty_torch_model_t *model = NULL;
    ty_batch_feat_t *feat = NULL;
    const char **labels = NULL;
    char *tok = NULL;
    char why[TY_TORCH_ERRSTR_LEN] = "";
    int rc = ty_torch_load (path, 1, &model, why, sizeof why);
    if (rc != TY_OK)
        s_fail (err, errlen, rc, "%s: %s", path, why[0] ? why : ty_strerror (rc));
    if (rc == TY_OK) {
        rc = ty_batch_feat_load (dir, &feat, why, sizeof why);
        if (rc != TY_OK)
            s_fail (err, errlen, rc, "%s/feat.json: %s", dir, why[0] ? why : ty_strerror (rc));
    }
    size_t nlabels = 0;
    if (rc == TY_OK && ty_batch_feat_task (feat) != TY_BATCH_TASK_REGRESSION
        && ty_batch_feat_task (feat) != TY_BATCH_TASK_RANKING) {
        nlabels = (size_t) ty_batch_feat_noutputs (feat);
        if ((int64_t) nlabels != ty_torch_output_width (model))
            rc = s_fail (err, errlen, TY_EPROTO, "feat.json has %zu classes, the model %lld",
                         nlabels, (long long) ty_torch_output_width (model));
        if (rc == TY_OK) {
            labels = calloc (nlabels ? nlabels : 1, sizeof *labels);
            if (!labels)
                rc = s_fail (err, errlen, TY_ENOMEM, "out of memory");
        }
        for (size_t i = 0; rc == TY_OK && i < nlabels; i++) {
            labels[i] = ty_batch_feat_label (feat, (int64_t) i);
            if (!labels[i])
                rc = s_fail (err, errlen, TY_EPROTO, "feat.json: no name for class %zu", i);
        }
    }
    if (rc == TY_OK && ty_torch_params (model)->kind == TY_TORCH_TEXTCLF
        && ty_batch_feat_vocab (feat)) {
        tok = s_tokenizer_json (ty_batch_feat_vocab (feat));
        if (!tok)
            rc = s_fail (err, errlen, TY_ENOMEM, "out of memory");
    }
    if (rc == TY_OK)
        rc = ty_onnx_write (model, labels, nlabels, tok, out_path, err, errlen);
    if (tok)
        cJSON_free (tok);
    free (labels);
    ty_batch_feat_destroy (&feat);
    ty_torch_destroy (&model);
    return rc;
}

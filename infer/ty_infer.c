/*  ty_infer: loading and validating a portable model file (model.tym).
 *  Prediction is in ty_infer_net.c, the text tokenizer in ty_infer_text.c.
 *
 *  Validation order: header (magic, version, sizes) -> section table
 *  (bounds, alignment, types) -> architecture (ranges that keep every
 *  product far from overflow) -> tensors (count, dtype, shape and byte size
 *  against the architecture) -> tables (string tables, character tables).
 *  Nothing is read through a pointer before its bounds are checked. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ty_infer_impl.h"

/* ==== little-endian reads =================================================== */

uint32_t
ty_infer_rd32 (const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}

uint64_t
ty_infer_rd64 (const unsigned char *p)
{
    return (uint64_t) ty_infer_rd32 (p) | (uint64_t) ty_infer_rd32 (p + 4) << 32;
}

static int
s_host_little_endian (void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy (&b, &one, 1);
    return b == 1;
}

/* ==== errors ================================================================ */

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

#define S_BAD(...) s_fail (err, errlen, TY_INFER_EPROTO, __VA_ARGS__)

const char *
ty_infer_strerror (int code)
{
    switch (code) {
    case TY_INFER_OK:     return "ok";
    case TY_INFER_EPROTO: return "not a valid model file";
    case TY_INFER_EFULL:  return "output buffer too small";
    case TY_INFER_EINVAL: return "invalid argument";
    case TY_INFER_ENOMEM: return "out of memory";
    }
    return code > 0 ? strerror (code) : "unknown error";
}

const char *
ty_infer_kind_name (ty_infer_kind_t kind)
{
    switch (kind) {
    case TY_INFER_TEXTCLF: return "textclf";
    case TY_INFER_MLP:     return "mlp";
    case TY_INFER_CNN:     return "cnn";
    case TY_INFER_NCF:     return "ncf";
    }
    return "?";
}

/* ==== architecture ========================================================== */

/* Loose caps that keep every size product below 2^62 (so no overflow in
 * the checks) yet far above any model trainyard trains; the real limit is
 * that the tensors must be in the file. */
#define S_MAX_DIM      ((int64_t) 1 << 31)
#define S_MAX_IMG_SIDE ((int64_t) 1 << 15)
#define S_MAX_CNN_DEPTH 6
#define S_MAX_FILTERS  4096

static int
s_in (int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

/* Reads and range-checks the ARCH fields (layout in docs/model-format.md),
 * then lists the tensors the kind needs, with their shapes. */
static int
s_arch_parse (ty_infer_model_t *m, const int64_t *a, char *err, size_t errlen)
{
    ty_infer_arch_t *r = &m->arch;
    memset (r, 0, sizeof *r);
    switch (m->kind) {
    case TY_INFER_TEXTCLF:
        r->nrows = a[0]; r->dim = a[1]; r->nlabels = a[2]; r->multilabel = a[3] != 0;
        if (!s_in (r->nrows, 1, S_MAX_DIM) || !s_in (r->dim, 1, 1 << 16)
            || !s_in (r->nlabels, r->multilabel ? 1 : 2, 1 << 24) || !s_in (a[3], 0, 1))
            return S_BAD ("textclf architecture out of range");
        m->out_width = (size_t) r->nlabels;
        break;
    case TY_INFER_MLP:
        r->input_dim = a[0]; r->nhidden = a[1]; r->regression = a[2] != 0; r->noutputs = a[3];
        if (!s_in (r->input_dim, 1, 1 << 24) || !s_in (r->nhidden, 0, TY_INFER_MAX_LAYERS)
            || !s_in (a[2], 0, 1) || !s_in (r->noutputs, r->regression ? 1 : 2, 1 << 24))
            return S_BAD ("mlp architecture out of range");
        for (int64_t i = 0; i < r->nhidden; i++) {
            r->hidden[i] = a[4 + i];
            if (!s_in (r->hidden[i], 1, 1 << 24))
                return S_BAD ("mlp hidden layer %d out of range", (int) i);
        }
        m->out_width = (size_t) r->noutputs;
        m->in_width = (size_t) r->input_dim;
        break;
    case TY_INFER_CNN:
        r->height = a[0]; r->width = a[1]; r->channels = a[2]; r->depth = a[3];
        r->filters = a[4]; r->separable = a[5] != 0; r->nclasses = a[6];
        if (!s_in (r->height, 1, S_MAX_IMG_SIDE) || !s_in (r->width, 1, S_MAX_IMG_SIDE)
            || !s_in (r->channels, 1, 64) || !s_in (r->depth, 1, S_MAX_CNN_DEPTH)
            || !s_in (r->filters, 1, S_MAX_FILTERS) || !s_in (a[5], 0, 1)
            || !s_in (r->nclasses, 2, 1 << 24))
            return S_BAD ("cnn architecture out of range");
        m->out_width = (size_t) r->nclasses;
        m->in_width = (size_t) (r->height * r->width * r->channels);
        break;
    case TY_INFER_NCF:
        r->nusers = a[0]; r->nitems = a[1]; r->gmf_dim = a[2]; r->mlp_dim = a[3];
        r->nlayers = a[4];
        if (!s_in (r->nusers, 1, S_MAX_DIM) || !s_in (r->nitems, 1, S_MAX_DIM)
            || !s_in (r->gmf_dim, 1, 1 << 16) || !s_in (r->mlp_dim, 1, 1 << 16)
            || !s_in (r->nlayers, 0, TY_INFER_MAX_LAYERS))
            return S_BAD ("ncf architecture out of range");
        for (int64_t i = 0; i < r->nlayers; i++) {
            r->layers[i] = a[5 + i];
            if (!s_in (r->layers[i], 1, 1 << 24))
                return S_BAD ("ncf layer %d out of range", (int) i);
        }
        m->out_width = 1;
        break;
    default:
        return S_BAD ("unknown model kind %d", (int) m->kind);
    }
    return TY_INFER_OK;
}

/* Appends one expected tensor shape. */
static void
s_expect (ty_infer_model_t *m, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    ty_infer_tensor_t *t = &m->tensors[m->ntensors++];
    int64_t d[TY_INFER_MAX_DIMS] = {d0, d1, d2, d3};
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < TY_INFER_MAX_DIMS; i++) {
        t->dims[i] = i < ndim ? d[i] : 1;
        t->numel *= (uint64_t) t->dims[i];
    }
    t->rowlen = (size_t) (t->numel / (uint64_t) t->dims[0]);
    t->data = NULL;
}

/* The tensors of the architecture in file order (= the shim's
 * named_parameters order; docs/model-format.md lists them). */
static void
s_expected_tensors (ty_infer_model_t *m)
{
    const ty_infer_arch_t *r = &m->arch;
    m->ntensors = 0;
    switch (m->kind) {
    case TY_INFER_TEXTCLF:
        s_expect (m, 2, r->nrows, r->dim, 0, 0);
        s_expect (m, 2, r->nlabels, r->dim, 0, 0);
        s_expect (m, 1, r->nlabels, 0, 0, 0);
        break;
    case TY_INFER_MLP: {
        int64_t in = r->input_dim;
        for (int64_t i = 0; i <= r->nhidden; i++) {
            int64_t out = i < r->nhidden ? r->hidden[i] : r->noutputs;
            s_expect (m, 2, out, in, 0, 0);
            s_expect (m, 1, out, 0, 0, 0);
            in = out;
        }
        break;
    }
    case TY_INFER_CNN: {
        int64_t in = r->channels, out = r->filters;
        for (int64_t b = 0; b < r->depth; b++) {
            if (r->separable && b > 0) {
                s_expect (m, 4, in, 1, 3, 3);       /* depthwise */
                s_expect (m, 1, in, 0, 0, 0);
                s_expect (m, 4, out, in, 1, 1);     /* pointwise */
                s_expect (m, 1, out, 0, 0, 0);
            }
            else {
                s_expect (m, 4, out, in, 3, 3);
                s_expect (m, 1, out, 0, 0, 0);
            }
            in = out;
            out *= 2;
        }
        s_expect (m, 2, r->nclasses, in, 0, 0);
        s_expect (m, 1, r->nclasses, 0, 0, 0);
        break;
    }
    case TY_INFER_NCF: {
        s_expect (m, 2, r->nusers, r->gmf_dim, 0, 0);
        s_expect (m, 2, r->nitems, r->gmf_dim, 0, 0);
        s_expect (m, 2, r->nusers, r->mlp_dim, 0, 0);
        s_expect (m, 2, r->nitems, r->mlp_dim, 0, 0);
        int64_t in = 2 * r->mlp_dim;
        for (int64_t i = 0; i < r->nlayers; i++) {
            s_expect (m, 2, r->layers[i], in, 0, 0);
            s_expect (m, 1, r->layers[i], 0, 0, 0);
            in = r->layers[i];
        }
        s_expect (m, 2, 1, r->gmf_dim + in, 0, 0);
        s_expect (m, 1, 1, 0, 0, 0);
        break;
    }
    }
}

/* ==== tables ================================================================ */

/* A string table: uint64 count, uint64 offsets[count + 1] (relative to the
 * byte area after them, non-decreasing, first 0, last = area size), the
 * bytes. Strings are not NUL-terminated in the file; labels are copied out
 * with a NUL, words are compared by length. */
static int
s_strtab_parse (const unsigned char *p, uint64_t bytes, ty_infer_strtab_t *t,
                const char *what, char *err, size_t errlen)
{
    if (bytes < 8)
        return S_BAD ("%s table: %llu bytes, too short", what, (unsigned long long) bytes);
    uint64_t n = ty_infer_rd64 (p);
    if ((bytes - 8) / 8 < 1 || n > (bytes - 8) / 8 - 1)
        return S_BAD ("%s table: count %llu does not fit its %llu bytes", what,
                      (unsigned long long) n, (unsigned long long) bytes);
    uint64_t area = 8 + (n + 1) * 8;
    uint64_t size = bytes - area;
    uint64_t prev = 0;
    for (uint64_t i = 0; i <= n; i++) {
        uint64_t o = ty_infer_rd64 (p + 8 + i * 8);
        if (o < prev || o > size || (i == 0 && o != 0))
            return S_BAD ("%s table: offset %llu out of order or bounds", what,
                          (unsigned long long) i);
        prev = o;
    }
    if (prev != size)
        return S_BAD ("%s table: strings end before the section does", what);
    t->n = n;
    t->offsets = p + 8;
    t->bytes = p + area;
    return TY_INFER_OK;
}

const unsigned char *
ty_infer_strtab_get (const ty_infer_strtab_t *t, uint64_t i, size_t *len)
{
    uint64_t a = ty_infer_rd64 (t->offsets + i * 8), b = ty_infer_rd64 (t->offsets + (i + 1) * 8);
    *len = (size_t) (b - a);
    return t->bytes + a;
}

/* uint32 pairs, sorted and not overlapping (ranges: first <= last and
 * each starts after the previous ends; map: keys strictly increasing). */
static int
s_pairs_parse (const unsigned char *p, uint64_t bytes, int ranges, ty_infer_pairs_t *t,
               const char *what, char *err, size_t errlen)
{
    if (bytes % 8 != 0)
        return S_BAD ("%s table: %llu bytes is not a whole number of pairs", what,
                      (unsigned long long) bytes);
    t->n = (size_t) (bytes / 8);
    t->p = p;
    int64_t prev = -1;
    for (size_t i = 0; i < t->n; i++) {
        uint32_t a = ty_infer_rd32 (p + i * 8), b = ty_infer_rd32 (p + i * 8 + 4);
        if ((int64_t) a <= prev || (ranges && b < a))
            return S_BAD ("%s table: entry %zu out of order", what, i);
        prev = ranges ? (int64_t) b : (int64_t) a;
    }
    return TY_INFER_OK;
}

/* Word -> id hash index (open addressing, power-of-two size, at most half
 * full), built at load: a table in the file would have to be validated
 * anyway, and building it is one pass over the words. */
static uint64_t
s_hash_bytes (const unsigned char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;   /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

static int
s_index_build (ty_infer_model_t *m)
{
    uint64_t n = m->vocab.n;
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    m->index = calloc (size, sizeof *m->index);
    if (!m->index)
        return TY_INFER_ENOMEM;
    m->index_mask = size - 1;
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char *w = ty_infer_strtab_get (&m->vocab, i, &len);
        size_t s = (size_t) s_hash_bytes (w, len) & m->index_mask;
        while (m->index[s])
            s = (s + 1) & m->index_mask;
        m->index[s] = (uint32_t) (i + 1);
    }
    return TY_INFER_OK;
}

int64_t
ty_infer_word_id (const ty_infer_model_t *m, const char *w, size_t len)
{
    if (!m->index)
        return -1;
    size_t s = (size_t) s_hash_bytes ((const unsigned char *) w, len) & m->index_mask;
    while (m->index[s]) {
        size_t l;
        uint64_t id = m->index[s] - 1;
        const unsigned char *v = ty_infer_strtab_get (&m->vocab, id, &l);
        if (l == len && memcmp (v, w, len) == 0)
            return (int64_t) id;
        s = (s + 1) & m->index_mask;
    }
    return -1;
}

/* ==== quantized tensors and pruning ========================================= */

#define S_NO_SCALES UINT32_MAX   /* an entry's scale-section field: none */

/* The SCALES section of INT8 tensor x (number k): its entry si must be a
 * SCALES section of FP32, one dimension = x's rows, exactly that many
 * bytes; every scale finite and >= 0 (a NaN would poison every output of
 * the channel silently). The section's bounds were checked in pass 1. */
static int
s_scales_parse (ty_infer_model_t *m, ty_infer_tensor_t *x, size_t k, uint32_t si,
                uint32_t nsec, uint64_t table, char *err, size_t errlen)
{
    if (si >= nsec)
        return S_BAD ("tensor %zu: scale section %u does not exist (%u sections)", k, si,
                      nsec);
    const unsigned char *e = m->map + table + (uint64_t) si * TY_INFER_ENTRY_LEN;
    uint64_t rows = (uint64_t) x->dims[0], bytes = ty_infer_rd64 (e + 16);
    if (ty_infer_rd32 (e) != TY_INFER_SEC_SCALES || ty_infer_rd32 (e + 4) != TY_INFER_DT_F32
        || ty_infer_rd32 (e + 24) != 1)
        return S_BAD ("tensor %zu: section %u is not an FP32 SCALES section", k, si);
    if (ty_infer_rd64 (e + 32) != rows || bytes != rows * 4)
        return S_BAD ("tensor %zu: %llu scales (%llu bytes) for %llu rows", k,
                      (unsigned long long) ty_infer_rd64 (e + 32), (unsigned long long) bytes,
                      (unsigned long long) rows);
    x->scale = (const float *) (const void *) (m->map + ty_infer_rd64 (e + 8));
    for (uint64_t r = 0; r < rows; r++)
        if (!(x->scale[r] >= 0) || !isfinite (x->scale[r]))
            return S_BAD ("tensor %zu: scale %llu is negative or not finite", k,
                          (unsigned long long) r);
    m->weight_bytes += bytes;
    return TY_INFER_OK;
}

/* The row map: ascending (so no repeats) and below the id space. */
static int
s_rowmap_check (ty_infer_model_t *m, char *err, size_t errlen)
{
    int64_t prev = -1;
    for (size_t i = 0; i < m->nkept; i++) {
        int64_t id = (int64_t) ty_infer_rd32 (m->rowmap + 4 * i);
        if (id <= prev)
            return S_BAD ("ROWMAP entry %zu (%lld) is not above the previous one", i,
                          (long long) id);
        if (id >= m->arch.nrows)
            return S_BAD ("ROWMAP entry %zu (%lld) is past the %lld rows", i, (long long) id,
                          (long long) m->arch.nrows);
        prev = id;
    }
    m->weight_bytes += (uint64_t) m->nkept * 4;
    return TY_INFER_OK;
}

/* id -> kept row as a rank directory (ty_infer_impl.h), built at load as
 * the word index is. The row map was checked: ascending, below nrows. */
static int
s_rowrank_build (ty_infer_model_t *m)
{
    size_t blocks = (size_t) (((uint64_t) m->arch.nrows + 63) / 64);
    m->rowrank = calloc (2 * (blocks ? blocks : 1), sizeof *m->rowrank);
    if (!m->rowrank)
        return TY_INFER_ENOMEM;
    for (size_t i = 0; i < m->nkept; i++) {
        uint64_t id = ty_infer_rd32 (m->rowmap + 4 * i);
        m->rowrank[2 * (id >> 6)] |= (uint64_t) 1 << (id & 63);
    }
    uint64_t before = 0;
    for (size_t b = 0; b < blocks; b++) {
        m->rowrank[2 * b + 1] = before;
        before += ty_infer_popcount64 (m->rowrank[2 * b]);
    }
    return TY_INFER_OK;
}

float
ty_infer_f16_to_f32 (uint16_t h)
{
    uint32_t sign = (uint32_t) (h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
    if (e == 0) {
        if (mant == 0)
            bits = sign;
        else {
            /* Subnormal: normalise. 113 = 127 - 14, the exponent of
             * 2^-14, less one per shift. */
            uint32_t fe = 113;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                fe--;
            }
            bits = sign | fe << 23 | (mant & 0x3FFu) << 13;
        }
    }
    else if (e == 0x1F)
        bits = sign | 0x7F800000u | mant << 13;   /* infinity, NaN (payload kept) */
    else
        bits = sign | (e + 112) << 23 | mant << 13;   /* 112 = 127 - 15 */
    float v;
    memcpy (&v, &bits, sizeof v);
    return v;
}

const float *
ty_infer_row (const ty_infer_tensor_t *t, size_t r, float *buf)
{
    size_t n = t->rowlen;
    if (t->dtype == TY_INFER_DT_F32)
        return t->data + r * n;
    if (t->dtype == TY_INFER_DT_F16) {
        const uint16_t *h = t->f16 + r * n;
        for (size_t i = 0; i < n; i++)
            buf[i] = ty_infer_f16_to_f32 (h[i]);
    }
    else {
        const int8_t *q = t->i8 + r * n;
        float s = t->scale[r];
        for (size_t i = 0; i < n; i++)
            buf[i] = s * (float) q[i];
    }
    return buf;
}

/* ==== open / close ========================================================== */

static int
s_tokenizer_parse (ty_infer_model_t *m, const int64_t *t, char *err, size_t errlen)
{
    ty_infer_tok_t *o = &m->tok;
    o->lower = t[0] != 0;
    o->punct = (int) t[1];
    o->word_ngrams = (int) t[2];
    o->minn = (int) t[3];
    o->maxn = (int) t[4];
    o->bucket = t[5];
    o->eos = t[6] != 0;
    if (!s_in (t[0], 0, 1) || !s_in (t[1], 0, 2) || !s_in (t[2], 1, TY_INFER_MAX_NGRAMS)
        || !s_in (t[4], 0, TY_INFER_MAX_CHARGRAM) || !s_in (t[3], 0, t[4])
        || (t[4] > 0 && t[3] < 1) || !s_in (t[6], 0, 1) || !s_in (t[5], 0, INT32_MAX)
        || ((t[2] > 1 || t[4] > 0) && t[5] == 0))
        return S_BAD ("tokenizer options out of range");
    return TY_INFER_OK;
}

/* Everything after the file is mapped. */
static int
s_validate (ty_infer_model_t *m, char *err, size_t errlen)
{
    const unsigned char *f = m->map;
    uint64_t size = m->map_len;
    if (size < TY_INFER_HEADER_LEN)
        return S_BAD ("%llu bytes: shorter than the header", (unsigned long long) size);
    if (memcmp (f, TY_INFER_MAGIC, TY_INFER_MAGIC_LEN) != 0)
        return S_BAD ("not a trainyard model file (bad magic)");
    uint32_t version = ty_infer_rd32 (f + 8);
    if (version != TY_INFER_FORMAT_V1 && version != TY_INFER_FORMAT_VERSION)
        return S_BAD ("format version %u, this runtime reads %d to %d", version,
                      TY_INFER_FORMAT_V1, TY_INFER_FORMAT_VERSION);
    if (ty_infer_rd32 (f + 12) != TY_INFER_HEADER_LEN)
        return S_BAD ("bad header length");
    if (ty_infer_rd64 (f + 16) != size)
        return S_BAD ("file is %llu bytes, header says %llu (truncated?)",
                      (unsigned long long) size, (unsigned long long) ty_infer_rd64 (f + 16));
    m->kind = (ty_infer_kind_t) ty_infer_rd32 (f + 24);
    uint32_t nsec = ty_infer_rd32 (f + 28);
    uint64_t table = ty_infer_rd64 (f + 32);
    if (ty_infer_rd32 (f + 40) != TY_INFER_ALIGN)
        return S_BAD ("bad alignment field");
    if (table < TY_INFER_HEADER_LEN || table > size || nsec > (size - table) / TY_INFER_ENTRY_LEN)
        return S_BAD ("section table (%u entries at %llu) is outside the file", nsec,
                      (unsigned long long) table);
    if (!s_host_little_endian ())
        return S_BAD ("this runtime reads tensors on little-endian hosts only");

    const unsigned char *arch = NULL, *tok = NULL;
    int have_vocab = 0, have_labels = 0;
    size_t ntensor_sec = 0;
    int64_t a[TY_INFER_ARCH_LEN], t[TY_INFER_TOK_LEN];
    /* Pass 1: bounds of every section, the fixed-size sections. */
    for (uint32_t i = 0; i < nsec; i++) {
        const unsigned char *e = f + table + (uint64_t) i * TY_INFER_ENTRY_LEN;
        uint32_t type = ty_infer_rd32 (e);
        uint64_t off = ty_infer_rd64 (e + 8), bytes = ty_infer_rd64 (e + 16);
        if (off % TY_INFER_ALIGN != 0 || off < TY_INFER_HEADER_LEN || off > size
            || bytes > size - off)
            return S_BAD ("section %u (type %u) is outside the file or misaligned", i, type);
        switch (type) {
        case TY_INFER_SEC_ARCH:
            if (arch || bytes != TY_INFER_ARCH_LEN * 8)
                return S_BAD ("bad or repeated ARCH section");
            arch = f + off;
            break;
        case TY_INFER_SEC_TOKENIZER:
            if (tok || bytes != TY_INFER_TOK_LEN * 8)
                return S_BAD ("bad or repeated TOKENIZER section");
            tok = f + off;
            break;
        case TY_INFER_SEC_VOCAB:
        case TY_INFER_SEC_LABELS: {
            int *have = type == TY_INFER_SEC_VOCAB ? &have_vocab : &have_labels;
            if (*have)
                return S_BAD ("repeated string table");
            *have = 1;
            int rc = s_strtab_parse (f + off, bytes,
                                     type == TY_INFER_SEC_VOCAB ? &m->vocab : &m->labels,
                                     type == TY_INFER_SEC_VOCAB ? "vocabulary" : "label",
                                     err, errlen);
            if (rc != TY_INFER_OK)
                return rc;
            break;
        }
        case TY_INFER_SEC_CHAR_SPACE:
        case TY_INFER_SEC_CHAR_PUNCT:
        case TY_INFER_SEC_CHAR_LOWER: {
            ty_infer_pairs_t *p = type == TY_INFER_SEC_CHAR_SPACE ? &m->space
                                  : type == TY_INFER_SEC_CHAR_PUNCT ? &m->punct : &m->lower;
            if (p->p)
                return S_BAD ("repeated character table");
            int rc = s_pairs_parse (f + off, bytes, type != TY_INFER_SEC_CHAR_LOWER, p,
                                    "character", err, errlen);
            if (rc != TY_INFER_OK)
                return rc;
            if (!p->p)
                p->p = f + off;   /* an empty table is still "present" */
            break;
        }
        case TY_INFER_SEC_TENSOR:
            ntensor_sec++;
            break;
        case TY_INFER_SEC_ROWMAP:
            /* Version 1 readers skip unknown sections: a row map there would
             * be ignored and every id would hit the wrong row. Hence only
             * in version 2 files, which those readers refuse. */
            if (version < TY_INFER_FORMAT_VERSION)
                return S_BAD ("ROWMAP section in a version %u file", version);
            if (m->rowmap || bytes == 0 || bytes % 4 != 0)
                return S_BAD ("bad or repeated ROWMAP section (%llu bytes)",
                              (unsigned long long) bytes);
            m->rowmap = f + off;
            m->nkept = (size_t) (bytes / 4);
            break;
        default:
            /* Unknown sections come from a newer minor writer: skipped. */
            break;
        }
    }
    if (!arch)
        return S_BAD ("no ARCH section");
    for (int i = 0; i < TY_INFER_ARCH_LEN; i++)
        a[i] = (int64_t) ty_infer_rd64 (arch + 8 * i);
    int rc = s_arch_parse (m, a, err, errlen);
    if (rc != TY_INFER_OK)
        return rc;
    s_expected_tensors (m);
    if (ntensor_sec != m->ntensors)
        return S_BAD ("%zu tensors in the file, the architecture has %zu", ntensor_sec,
                      m->ntensors);
    if (m->rowmap) {
        if (m->kind != TY_INFER_TEXTCLF)
            return S_BAD ("ROWMAP section in a %s model", ty_infer_kind_name (m->kind));
        if ((rc = s_rowmap_check (m, err, errlen)) != TY_INFER_OK)
            return rc;
        /* The embedding holds the kept rows only, in row-map order. */
        ty_infer_tensor_t *emb = &m->tensors[0];
        emb->dims[0] = (int64_t) m->nkept;
        emb->numel = (uint64_t) m->nkept * (uint64_t) emb->dims[1];
    }
    /* Pass 2: tensors in order, against the expected shapes. */
    size_t k = 0;
    for (uint32_t i = 0; i < nsec; i++) {
        const unsigned char *e = f + table + (uint64_t) i * TY_INFER_ENTRY_LEN;
        if (ty_infer_rd32 (e) != TY_INFER_SEC_TENSOR)
            continue;
        ty_infer_tensor_t *x = &m->tensors[k];
        uint32_t dtype = ty_infer_rd32 (e + 4), ndim = ty_infer_rd32 (e + 24);
        uint64_t off = ty_infer_rd64 (e + 8), bytes = ty_infer_rd64 (e + 16);
        if (dtype != TY_INFER_DT_F32 && dtype != TY_INFER_DT_F16 && dtype != TY_INFER_DT_I8)
            return S_BAD ("tensor %zu: element type %u is not FP32, FP16 or INT8", k, dtype);
        if (dtype != TY_INFER_DT_F32 && x->ndim == 1)
            return S_BAD ("tensor %zu: a 1-d tensor (bias) must be FP32", k);
        if (ndim != (uint32_t) x->ndim)
            return S_BAD ("tensor %zu: %u dimensions, the architecture needs %d", k, ndim,
                          x->ndim);
        for (int d = 0; d < TY_INFER_MAX_DIMS; d++) {
            uint64_t v = ty_infer_rd64 (e + 32 + 8 * d);
            if (d < x->ndim && v != (uint64_t) x->dims[d])
                return S_BAD ("tensor %zu: dimension %d is %llu, the architecture needs %lld",
                              k, d, (unsigned long long) v, (long long) x->dims[d]);
        }
        uint64_t esize = dtype == TY_INFER_DT_F32 ? 4 : dtype == TY_INFER_DT_F16 ? 2 : 1;
        if (bytes != x->numel * esize)
            return S_BAD ("tensor %zu: %llu bytes for %llu elements of %llu bytes", k,
                          (unsigned long long) bytes, (unsigned long long) x->numel,
                          (unsigned long long) esize);
        x->dtype = (int) dtype;
        if (dtype == TY_INFER_DT_F32)
            x->data = (const float *) (const void *) (f + off);
        else if (dtype == TY_INFER_DT_F16)
            x->f16 = (const uint16_t *) (const void *) (f + off);
        else
            x->i8 = (const int8_t *) (const void *) (f + off);
        m->weight_bytes += bytes;
        uint32_t si = ty_infer_rd32 (e + 28);
        if (dtype != TY_INFER_DT_I8 && si != S_NO_SCALES)
            return S_BAD ("tensor %zu: element type %u has no scales, yet names section %u",
                          k, dtype, si);
        if (dtype == TY_INFER_DT_I8
            && (rc = s_scales_parse (m, x, k, si, nsec, table, err, errlen)) != TY_INFER_OK)
            return rc;
        if (x->rowlen > m->max_rowlen)
            m->max_rowlen = x->rowlen;
        k++;
    }
    if (m->kind == TY_INFER_TEXTCLF) {
        if (!tok || !have_vocab || !m->space.p || !m->punct.p || !m->lower.p)
            return S_BAD ("textclf model without its tokenizer, vocabulary or "
                          "character tables");
        for (int i = 0; i < TY_INFER_TOK_LEN; i++)
            t[i] = (int64_t) ty_infer_rd64 (tok + 8 * i);
        if ((rc = s_tokenizer_parse (m, t, err, errlen)) != TY_INFER_OK)
            return rc;
        if (m->vocab.n >= UINT32_MAX
            || (int64_t) m->vocab.n + m->tok.bucket != m->arch.nrows)
            return S_BAD ("vocabulary (%llu words) + bucket (%lld) != embedding rows (%lld)",
                          (unsigned long long) m->vocab.n, (long long) m->tok.bucket,
                          (long long) m->arch.nrows);
        if ((rc = s_index_build (m)) != TY_INFER_OK)
            return s_fail (err, errlen, rc, "no memory for the vocabulary index");
        if (m->rowmap && (rc = s_rowrank_build (m)) != TY_INFER_OK)
            return s_fail (err, errlen, rc, "no memory for the row map");
    }
    if (have_labels && m->labels.n != 0 && m->labels.n != m->out_width
        && !(m->kind == TY_INFER_MLP && m->arch.regression))
        return S_BAD ("%llu labels for %zu outputs", (unsigned long long) m->labels.n,
                      m->out_width);
    if (have_labels && m->labels.n > 0) {
        /* NUL-terminated copies: callers print them. */
        m->label_names = calloc ((size_t) m->labels.n, sizeof *m->label_names);
        if (!m->label_names)
            return s_fail (err, errlen, TY_INFER_ENOMEM, "no memory for labels");
        for (uint64_t i = 0; i < m->labels.n; i++) {
            size_t len;
            const unsigned char *s = ty_infer_strtab_get (&m->labels, i, &len);
            m->label_names[i] = malloc (len + 1);
            if (!m->label_names[i])
                return s_fail (err, errlen, TY_INFER_ENOMEM, "no memory for labels");
            memcpy (m->label_names[i], s, len);
            m->label_names[i][len] = '\0';
        }
        m->nlabel_names = (size_t) m->labels.n;
    }
    return TY_INFER_OK;
}

int
ty_infer_open (const char *path, ty_infer_model_t **model_p, char *err, size_t errlen)
{
    if (!model_p)
        return s_fail (err, errlen, TY_INFER_EINVAL, "model_p is NULL");
    *model_p = NULL;
    if (!path)
        return s_fail (err, errlen, TY_INFER_EINVAL, "path is NULL");
    int fd = open (path, O_RDONLY);
    if (fd < 0) {
        int e = errno;
        return s_fail (err, errlen, e, "%s: %s", path, strerror (e));
    }
    struct stat st;
    if (fstat (fd, &st) != 0) {
        int e = errno;
        close (fd);
        return s_fail (err, errlen, e, "%s: %s", path, strerror (e));
    }
    if (!S_ISREG (st.st_mode) || st.st_size < TY_INFER_HEADER_LEN) {
        close (fd);
        return s_fail (err, errlen, TY_INFER_EPROTO, "%s: not a model file (%lld bytes)",
                       path, (long long) st.st_size);
    }
    ty_infer_model_t *m = calloc (1, sizeof *m);
    if (!m) {
        close (fd);
        return s_fail (err, errlen, TY_INFER_ENOMEM, "out of memory");
    }
    m->map_len = (size_t) st.st_size;
    m->map = mmap (NULL, m->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close (fd);   /* the mapping keeps the file */
    if (m->map == MAP_FAILED) {
        m->map = NULL;
        free (m);
        return s_fail (err, errlen, e, "mmap %s: %s", path, strerror (e));
    }
    int rc = s_validate (m, err, errlen);
    if (rc != TY_INFER_OK) {
        ty_infer_close (&m);
        return rc;
    }
    if (err && errlen)
        err[0] = '\0';
    *model_p = m;
    return TY_INFER_OK;
}

void
ty_infer_close (ty_infer_model_t **model_p)
{
    if (!model_p || !*model_p)
        return;
    ty_infer_model_t *m = *model_p;
    if (m->map)
        munmap ((void *) m->map, m->map_len);
    free (m->index);
    free (m->rowrank);
    if (m->label_names)
        for (size_t i = 0; i < m->labels.n; i++)
            free (m->label_names[i]);
    free (m->label_names);
    free (m);
    *model_p = NULL;
}

/* ==== accessors ============================================================= */

ty_infer_kind_t ty_infer_kind (const ty_infer_model_t *m) { return m->kind; }
size_t ty_infer_output_width (const ty_infer_model_t *m) { return m->out_width; }
size_t ty_infer_input_width (const ty_infer_model_t *m) { return m->in_width; }
size_t ty_infer_nlabels (const ty_infer_model_t *m) { return m->nlabel_names; }
uint64_t ty_infer_weight_bytes (const ty_infer_model_t *m) { return m->weight_bytes; }

int64_t
ty_infer_kept_rows (const ty_infer_model_t *m)
{
    if (m->kind != TY_INFER_TEXTCLF)
        return 0;
    return m->rowmap ? (int64_t) m->nkept : m->arch.nrows;
}

const char *
ty_infer_label (const ty_infer_model_t *m, size_t i)
{
    return i < m->nlabel_names ? m->label_names[i] : NULL;
}

void
ty_infer_image_shape (const ty_infer_model_t *m, size_t *h, size_t *w, size_t *c)
{
    int cnn = m->kind == TY_INFER_CNN;
    if (h) *h = cnn ? (size_t) m->arch.height : 0;
    if (w) *w = cnn ? (size_t) m->arch.width : 0;
    if (c) *c = cnn ? (size_t) m->arch.channels : 0;
}

void
ty_infer_pair_range (const ty_infer_model_t *m, int64_t *nusers, int64_t *nitems)
{
    int ncf = m->kind == TY_INFER_NCF;
    if (nusers) *nusers = ncf ? m->arch.nusers : 0;
    if (nitems) *nitems = ncf ? m->arch.nitems : 0;
}

int
ty_infer_output_type (const ty_infer_model_t *m)
{
    if (m->kind == TY_INFER_NCF || (m->kind == TY_INFER_TEXTCLF && m->arch.multilabel))
        return 1;
    if (m->kind == TY_INFER_MLP && m->arch.regression)
        return -1;
    return 0;
}

size_t
ty_infer_topk (const float *out, size_t width, size_t k, size_t *idx)
{
    if (k > width)
        k = width;
    if (k == 0)
        return 0;
    /* Insertion into a sorted prefix: k is small (top-5), width modest. */
    size_t n = 0;
    for (size_t i = 0; i < width; i++) {
        if (n == k && !(out[i] > out[idx[n - 1]]))
            continue;
        size_t j = n < k ? n++ : n - 1;
        while (j > 0 && out[i] > out[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return n;
}

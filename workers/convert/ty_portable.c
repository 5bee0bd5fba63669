/*  ty_portable: model + featurizer -> model.tym (docs/model-format.md).
 *
 *  The file is assembled as a list of sections in memory, then written in
 *  one go: header, section table, sections each at a multiple of
 *  TY_INFER_ALIGN (zero padding between). Little-endian throughout.
 *  Tensors are held as host floats until the options are applied (pruning,
 *  then FP16 / INT8), then FP32 ones are encoded little-endian. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wctype.h>

#include "ty_batch.h"
#include "ty_error.h"
#include "ty_infer.h"
#include "ty_modeldir.h"
#include "ty_portable.h"
#include "ty_quantize.h"

#define S_MAX_SECTIONS   64
#define S_UNICODE_LAST   0x10FFFFu
#define S_NAME_LEN       64

typedef struct {
    uint32_t type, dtype, ndim;
    uint64_t dims[TY_INFER_MAX_DIMS];
    unsigned char *data;      /* owned */
    uint64_t bytes;
    uint32_t scale;           /* INT8: index of its SCALES section; else UINT32_MAX */
    bool host_f32;            /* data is host-order floats, to encode at the end */
} s_section_t;

typedef struct {
    s_section_t sec[S_MAX_SECTIONS];
    size_t n;
    char *err;
    size_t errlen;
    int status;
} s_file_t;

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

/* Takes ownership of data (freed on failure too). */
static int
s_add (s_file_t *f, uint32_t type, uint32_t dtype, unsigned char *data, uint64_t bytes)
{
    if (f->n == S_MAX_SECTIONS) {
        free (data);
        return s_fail (f->err, f->errlen, TY_EINVAL, "more than %d sections", S_MAX_SECTIONS);
    }
    s_section_t *s = &f->sec[f->n++];
    memset (s, 0, sizeof *s);
    s->type = type;
    s->dtype = dtype;
    s->data = data;
    s->bytes = bytes;
    s->scale = UINT32_MAX;
    return TY_OK;
}

static void
s_file_free (s_file_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free (f->sec[i].data);
    f->n = 0;
}

static int
s_add_int64s (s_file_t *f, uint32_t type, const int64_t *v, size_t n)
{
    unsigned char *p = calloc (n, 8);
    if (!p)
        return TY_ENOMEM;
    for (size_t i = 0; i < n; i++)
        s_put64 (p + 8 * i, (uint64_t) v[i]);
    return s_add (f, type, TY_INFER_DT_BYTES, p, n * 8);
}

/* String table: count, count + 1 offsets, bytes. */
typedef const char *(s_str_fn) (const void *arg, size_t i);

static int
s_add_strtab (s_file_t *f, uint32_t type, size_t n, s_str_fn *get, const void *arg)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen (get (arg, i));
    uint64_t head = 8 + ((uint64_t) n + 1) * 8;
    unsigned char *p = malloc (head + total);
    if (!p)
        return TY_ENOMEM;
    s_put64 (p, n);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = get (arg, i);
        size_t len = strlen (s);
        s_put64 (p + 8 + 8 * i, off);
        memcpy (p + head + off, s, len);
        off += len;
    }
    s_put64 (p + 8 + 8 * n, off);
    return s_add (f, type, TY_INFER_DT_BYTES, p, head + total);
}

static const char *
s_vocab_word (const void *arg, size_t i)
{
    return ty_vocab_word ((const ty_vocab_t *) arg, (int64_t) i, NULL, NULL);
}

static const char *
s_label_at (const void *arg, size_t i)
{
    return ((const char *const *) arg)[i];
}

/* ==== character tables ====================================================== */

/* The classes and case map ty_tokenize.c takes from C.UTF-8, for every code
 * point above U+007F. A missing C.UTF-8 makes the trainer treat those code
 * points as plain letters; the tables are then empty, which says the same. */
static int
s_add_char_tables (s_file_t *f)
{
    locale_t loc = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
    size_t cap = 4096, n[3] = {0, 0, 0};
    uint32_t *t[3];
    for (int k = 0; k < 3; k++)
        t[k] = malloc (cap * 2 * sizeof (uint32_t));
    size_t caps[3] = {cap, cap, cap};
    int rc = TY_OK;
    if (!t[0] || !t[1] || !t[2])
        rc = TY_ENOMEM;
    for (uint32_t cp = 0x80; loc && rc == TY_OK && cp <= S_UNICODE_LAST; cp++) {
        bool cls[2] = {iswspace_l ((wint_t) cp, loc) != 0, iswpunct_l ((wint_t) cp, loc) != 0};
        uint32_t low = (uint32_t) towlower_l ((wint_t) cp, loc);
        for (int k = 0; k < 3; k++) {
            bool on = k < 2 ? cls[k] : low != cp;
            if (!on)
                continue;
            if (k < 2 && n[k] > 0 && t[k][2 * n[k] - 1] == cp - 1) {
                t[k][2 * n[k] - 1] = cp;   /* extends the last range */
                continue;
            }
            if (n[k] == caps[k]) {
                uint32_t *g = realloc (t[k], caps[k] * 4 * sizeof (uint32_t));
                if (!g) {
                    rc = TY_ENOMEM;
                    break;
                }
                t[k] = g;
                caps[k] *= 2;
            }
            t[k][2 * n[k]] = cp;
            t[k][2 * n[k] + 1] = k < 2 ? cp : low;
            n[k]++;
        }
    }
    if (loc)
        freelocale (loc);
    static const uint32_t types[3] = {TY_INFER_SEC_CHAR_SPACE, TY_INFER_SEC_CHAR_PUNCT,
                                      TY_INFER_SEC_CHAR_LOWER};
    for (int k = 0; k < 3; k++) {
        if (rc == TY_OK) {
            /* calloc(…, 1) even when empty: the runtime wants the section. */
            unsigned char *p = calloc (n[k] ? n[k] * 8 : 1, 1);
            if (!p)
                rc = TY_ENOMEM;
            else {
                for (size_t i = 0; i < 2 * n[k]; i++)
                    s_put32 (p + 4 * i, t[k][i]);
                rc = s_add (f, types[k], TY_INFER_DT_BYTES, p, n[k] * 8);
            }
        }
        free (t[k]);
    }
    return rc;
}

/* ==== architecture and tensors ============================================== */

static void
s_arch (const ty_torch_params_t *p, int64_t *a)
{
    memset (a, 0, TY_INFER_ARCH_LEN * sizeof *a);
    switch (p->kind) {
    case TY_TORCH_TEXTCLF:
        a[0] = p->textclf.nrows; a[1] = p->textclf.dim; a[2] = p->textclf.nlabels;
        a[3] = p->textclf.multilabel;
        break;
    case TY_TORCH_MLP:
        a[0] = p->mlp.input_dim; a[1] = p->mlp.nhidden; a[2] = p->mlp.regression;
        a[3] = p->mlp.noutputs;
        for (int i = 0; i < p->mlp.nhidden; i++)
            a[4 + i] = p->mlp.hidden[i];
        break;
    case TY_TORCH_CNN:
        a[0] = p->cnn.height; a[1] = p->cnn.width; a[2] = p->cnn.channels;
        a[3] = p->cnn.depth; a[4] = p->cnn.filters; a[5] = p->cnn.separable;
        a[6] = p->cnn.nclasses;
        break;
    case TY_TORCH_NCF:
        a[0] = p->ncf.nusers; a[1] = p->ncf.nitems; a[2] = p->ncf.gmf_dim;
        a[3] = p->ncf.mlp_dim; a[4] = p->ncf.nlayers;
        for (int i = 0; i < p->ncf.nlayers; i++)
            a[5 + i] = p->ncf.layers[i];
        break;
    }
}

/* The tensor names in the order the runtime reads them. */
static size_t
s_expected_names (const ty_torch_params_t *p, char names[][S_NAME_LEN], size_t cap)
{
    size_t n = 0;
#define S_NAME(...) do { if (n < cap) snprintf (names[n], S_NAME_LEN, __VA_ARGS__); n++; } while (0)
    switch (p->kind) {
    case TY_TORCH_TEXTCLF:
        S_NAME ("emb.weight"); S_NAME ("fc.weight"); S_NAME ("fc.bias");
        break;
    case TY_TORCH_MLP:
        for (int i = 0; i <= p->mlp.nhidden; i++) {
            S_NAME ("layers.%d.weight", i); S_NAME ("layers.%d.bias", i);
        }
        break;
    case TY_TORCH_CNN: {
        int c = 0;
        for (int b = 0; b < p->cnn.depth; b++)
            for (int k = 0; k < (p->cnn.separable && b > 0 ? 2 : 1); k++, c++) {
                S_NAME ("convs.%d.weight", c); S_NAME ("convs.%d.bias", c);
            }
        S_NAME ("fc.weight"); S_NAME ("fc.bias");
        break;
    }
    case TY_TORCH_NCF:
        S_NAME ("gmf_user.weight"); S_NAME ("gmf_item.weight");
        S_NAME ("mlp_user.weight"); S_NAME ("mlp_item.weight");
        for (int i = 0; i < p->ncf.nlayers; i++) {
            S_NAME ("tower.%d.weight", i); S_NAME ("tower.%d.bias", i);
        }
        S_NAME ("out.weight"); S_NAME ("out.bias");
        break;
    }
#undef S_NAME
    return n;
}

typedef struct {
    s_file_t *f;
    char (*names)[S_NAME_LEN];
    size_t nnames, seen;
} s_export_t;

static int
s_on_tensor (void *arg, const char *name, int ndim, const int64_t *shape, const float *data)
{
    s_export_t *x = arg;
    s_file_t *f = x->f;
    if (x->seen >= x->nnames || strcmp (name, x->names[x->seen]) != 0)
        return s_fail (f->err, f->errlen, TY_EINVAL,
                       "tensor %zu is %s, the portable format expects %s here", x->seen, name,
                       x->seen < x->nnames ? x->names[x->seen] : "no more tensors");
    if (ndim < 1 || ndim > TY_INFER_MAX_DIMS)
        return s_fail (f->err, f->errlen, TY_EINVAL, "tensor %s has %d dimensions", name, ndim);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (uint64_t) shape[i];
    unsigned char *p = malloc (numel ? numel * 4 : 1);
    if (!p)
        return TY_ENOMEM;
    memcpy (p, data, numel * 4);   /* host floats; encoded after the options */
    int rc = s_add (f, TY_INFER_SEC_TENSOR, TY_INFER_DT_F32, p, numel * 4);
    if (rc != TY_OK)
        return rc;
    s_section_t *s = &f->sec[f->n - 1];
    s->host_f32 = true;
    s->ndim = (uint32_t) ndim;
    for (int i = 0; i < ndim; i++)
        s->dims[i] = (uint64_t) shape[i];
    x->seen++;
    return TY_OK;
}

/* ==== options: pruning, FP16, INT8 ========================================= */

/* textclf: the embedding (the first tensor) cut to the max_rows rows of
 * largest L2 norm, and a ROWMAP section listing them. */
static int
s_prune (s_file_t *f, uint64_t max_rows)
{
    s_section_t *emb = NULL;
    for (size_t i = 0; i < f->n && !emb; i++)
        if (f->sec[i].type == TY_INFER_SEC_TENSOR)
            emb = &f->sec[i];
    if (!emb || emb->ndim != 2 || max_rows >= emb->dims[0])
        return TY_OK;   /* nothing to drop */
    size_t rows = (size_t) emb->dims[0], dim = (size_t) emb->dims[1], keep = (size_t) max_rows;
    uint32_t *kept = malloc (keep * sizeof *kept);
    float *cut = malloc (keep * dim * sizeof *cut);
    unsigned char *map = malloc (keep * 4);
    const float *w = (const float *) (const void *) emb->data;
    if (!kept || !cut || !map || ty_quantize_top_rows (w, rows, dim, keep, kept) != 0) {
        free (kept);
        free (cut);
        free (map);
        return s_fail (f->err, f->errlen, TY_ENOMEM, "out of memory pruning %zu rows", rows);
    }
    for (size_t i = 0; i < keep; i++) {
        memcpy (cut + i * dim, w + (size_t) kept[i] * dim, dim * sizeof *cut);
        s_put32 (map + 4 * i, kept[i]);
    }
    free (kept);
    free (emb->data);
    emb->data = (unsigned char *) cut;
    emb->dims[0] = keep;
    emb->bytes = (uint64_t) keep * dim * 4;
    return s_add (f, TY_INFER_SEC_ROWMAP, TY_INFER_DT_BYTES, map, (uint64_t) keep * 4);
}

/* A retrained model's row map, as s_prune writes its own. */
static int
s_add_rowmap (s_file_t *f, const uint32_t *rowmap, size_t n)
{
    unsigned char *map = malloc (n * 4);
    if (!map)
        return s_fail (f->err, f->errlen, TY_ENOMEM, "out of memory (row map)");
    for (size_t i = 0; i < n; i++)
        s_put32 (map + 4 * i, rowmap[i]);
    return s_add (f, TY_INFER_SEC_ROWMAP, TY_INFER_DT_BYTES, map, (uint64_t) n * 4);
}

/* Weights (tensors of 2+ dimensions) to FP16 or INT8; biases stay FP32. */
static int
s_convert (s_file_t *f, ty_portable_dtype_t dtype)
{
    size_t n = f->n;   /* SCALES sections are appended: not visited */
    for (size_t i = 0; i < n; i++) {
        s_section_t *s = &f->sec[i];
        if (s->type != TY_INFER_SEC_TENSOR || s->ndim < 2)
            continue;
        size_t numel = (size_t) (s->bytes / 4), rows = (size_t) s->dims[0];
        const float *w = (const float *) (const void *) s->data;
        if (dtype == TY_PORTABLE_FP16) {
            unsigned char *h = malloc (numel ? numel * 2 : 1);
            if (!h)
                return TY_ENOMEM;
            for (size_t k = 0; k < numel; k++) {
                uint16_t v = ty_quantize_f16 (w[k]);
                h[2 * k] = (unsigned char) (v & 0xFF);
                h[2 * k + 1] = (unsigned char) (v >> 8);
            }
            free (s->data);
            s->data = h;
            s->bytes = (uint64_t) numel * 2;
            s->dtype = TY_INFER_DT_F16;
            s->host_f32 = false;
            continue;
        }
        if (numel < TY_PORTABLE_I8_MIN_NUMEL || rows == 0)
            continue;
        int8_t *q = malloc (numel);
        float *sc = malloc (rows * sizeof *sc);
        if (!q || !sc) {
            free (q);
            free (sc);
            return TY_ENOMEM;
        }
        (void) ty_quantize_i8_rows (w, rows, numel / rows, q, sc);
        free (s->data);
        s->data = (unsigned char *) q;
        s->bytes = numel;
        s->dtype = TY_INFER_DT_I8;
        s->host_f32 = false;
        s->scale = (uint32_t) f->n;
        int rc = s_add (f, TY_INFER_SEC_SCALES, TY_INFER_DT_F32, (unsigned char *) sc,
                        (uint64_t) rows * 4);
        if (rc != TY_OK)
            return rc;
        s = &f->sec[f->n - 1];
        s->ndim = 1;
        s->dims[0] = rows;
        s->host_f32 = true;
    }
    return TY_OK;
}

/* Host floats -> little-endian IEEE 754 bytes, in place. */
static void
s_encode_floats (s_file_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        s_section_t *s = &f->sec[i];
        if (!s->host_f32)
            continue;
        for (uint64_t k = 0; k < s->bytes / 4; k++) {
            uint32_t v;
            memcpy (&v, s->data + 4 * k, 4);
            s_put32 (s->data + 4 * k, v);
        }
        s->host_f32 = false;
    }
}

/* ==== writing =============================================================== */

static uint64_t
s_align (uint64_t v)
{
    return (v + TY_INFER_ALIGN - 1) / TY_INFER_ALIGN * TY_INFER_ALIGN;
}

static int
s_write_all (int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t w = write (fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        len -= (size_t) w;
    }
    return TY_OK;
}

static int
s_emit (const s_file_t *f, uint32_t kind, const char *path, char *err, size_t errlen)
{
    uint64_t table = TY_INFER_HEADER_LEN;
    uint64_t off = s_align (table + f->n * TY_INFER_ENTRY_LEN);
    uint64_t offs[S_MAX_SECTIONS];
    for (size_t i = 0; i < f->n; i++) {
        offs[i] = off;
        off = s_align (off + f->sec[i].bytes);
    }
    uint64_t total = off;
    /* A row map changes what the embedding's rows mean: version 2, which
     * version-1 readers refuse (they would skip the section). */
    uint32_t version = TY_INFER_FORMAT_V1;
    for (size_t i = 0; i < f->n; i++)
        if (f->sec[i].type == TY_INFER_SEC_ROWMAP)
            version = TY_INFER_FORMAT_VERSION;
    size_t head_len = (size_t) s_align (table + f->n * TY_INFER_ENTRY_LEN);
    unsigned char *head = calloc (head_len, 1);
    if (!head)
        return TY_ENOMEM;
    memcpy (head, TY_INFER_MAGIC, TY_INFER_MAGIC_LEN);
    s_put32 (head + 8, version);
    s_put32 (head + 12, TY_INFER_HEADER_LEN);
    s_put64 (head + 16, total);
    s_put32 (head + 24, kind);
    s_put32 (head + 28, (uint32_t) f->n);
    s_put64 (head + 32, table);
    s_put32 (head + 40, TY_INFER_ALIGN);
    for (size_t i = 0; i < f->n; i++) {
        unsigned char *e = head + table + i * TY_INFER_ENTRY_LEN;
        const s_section_t *s = &f->sec[i];
        s_put32 (e, s->type);
        s_put32 (e + 4, s->dtype);
        s_put64 (e + 8, offs[i]);
        s_put64 (e + 16, s->bytes);
        s_put32 (e + 24, s->ndim);
        s_put32 (e + 28, s->scale);
        for (int d = 0; d < TY_INFER_MAX_DIMS; d++)
            s_put64 (e + 32 + 8 * d, s->dims[d]);
    }
    size_t plen = strlen (path);
    char *tmp = malloc (plen + 5);
    if (!tmp) {
        free (head);
        return TY_ENOMEM;
    }
    memcpy (tmp, path, plen);
    memcpy (tmp + plen, ".tmp", 5);
    int rc = TY_OK;
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        rc = errno;
    static const unsigned char zeros[TY_INFER_ALIGN] = {0};
    uint64_t pos = head_len;
    if (rc == TY_OK)
        rc = s_write_all (fd, head, head_len);
    for (size_t i = 0; rc == TY_OK && i < f->n; i++) {
        rc = s_write_all (fd, f->sec[i].data, (size_t) f->sec[i].bytes);
        pos += f->sec[i].bytes;
        uint64_t pad = s_align (pos) - pos;
        if (rc == TY_OK && pad)
            rc = s_write_all (fd, zeros, (size_t) pad);
        pos += pad;
    }
    if (rc == TY_OK && fsync (fd) != 0)
        rc = errno;
    if (fd >= 0 && close (fd) != 0 && rc == TY_OK)
        rc = errno;
    if (rc == TY_OK && rename (tmp, path) != 0)
        rc = errno;
    if (rc != TY_OK) {
        unlink (tmp);
        s_fail (err, errlen, rc, "writing %s: %s", path, strerror (rc));
    }
    else {
        /* The rename is durable once the directory is synced (best effort:
         * some file systems refuse a directory fsync). */
        char *copy = strdup (path);
        int dfd = copy ? open (dirname (copy), O_RDONLY | O_DIRECTORY) : -1;
        if (dfd >= 0) {
            (void) fsync (dfd);
            close (dfd);
        }
        free (copy);
    }
    free (tmp);
    free (head);
    return rc;
}

int
ty_portable_write (ty_torch_model_t *model, const ty_portable_meta_t *meta, const char *path,
                   char *err, size_t errlen)
{
    return ty_portable_write_opts (model, meta, NULL, path, err, errlen);
}

int
ty_portable_write_opts (ty_torch_model_t *model, const ty_portable_meta_t *meta,
                        const ty_portable_opts_t *opts, const char *path, char *err,
                        size_t errlen)
{
    if (!model || !path)
        return s_fail (err, errlen, TY_EINVAL, "model or path is NULL");
    ty_portable_opts_t fp32 = {TY_PORTABLE_FP32, 0, NULL, 0};
    if (!opts)
        opts = &fp32;
    ty_portable_dtype_t dtype = opts->dtype ? opts->dtype : TY_PORTABLE_FP32;
    if (dtype != TY_PORTABLE_FP32 && dtype != TY_PORTABLE_FP16 && dtype != TY_PORTABLE_INT8)
        return s_fail (err, errlen, TY_EINVAL, "element type %d is not FP32, FP16 or INT8",
                       (int) dtype);
    if (err && errlen)
        err[0] = '\0';   /* later steps fill it only if still empty */
    const ty_torch_params_t *p = ty_torch_params (model);
    ty_portable_meta_t none = {NULL, NULL, 0};
    if (!meta)
        meta = &none;
    size_t width = (size_t) ty_torch_output_width (model);
    if (meta->nlabels != 0 && (meta->nlabels != width || !meta->labels))
        return s_fail (err, errlen, TY_EINVAL, "%zu labels for %zu outputs", meta->nlabels,
                       width);
    const uint32_t *rowmap = p->kind == TY_TORCH_TEXTCLF ? opts->rowmap : NULL;
    if (rowmap) {
        int64_t space = meta->vocab ? ty_vocab_nrows (meta->vocab) : 0;
        if (opts->max_rows != 0 || opts->rowmap_len != (size_t) p->textclf.nrows
            || opts->rowmap_len == 0)
            return s_fail (err, errlen, TY_EINVAL, "a row map of %zu rows for a model of "
                           "%lld rows (and max_rows %llu, which must be 0 with it)",
                           opts->rowmap_len, (long long) p->textclf.nrows,
                           (unsigned long long) opts->max_rows);
        for (size_t i = 0; i < opts->rowmap_len; i++)
            if ((int64_t) rowmap[i] >= space || (i > 0 && rowmap[i] <= rowmap[i - 1]))
                return s_fail (err, errlen, TY_EINVAL, "row map entry %zu (%u) is not "
                               "ascending below the vocabulary's %lld rows", i,
                               (unsigned) rowmap[i], (long long) space);
        if (opts->rowmap_len == (size_t) space)
            rowmap = NULL;   /* every row, in order: the identity needs no map */
    }
    if (p->kind == TY_TORCH_TEXTCLF && !opts->rowmap
        && (!meta->vocab || ty_vocab_nrows (meta->vocab) != p->textclf.nrows))
        return s_fail (err, errlen, TY_EINVAL,
                       "textclf needs its vocabulary (words + bucket = %lld rows)",
                       (long long) p->textclf.nrows);
    s_file_t f;
    memset (&f, 0, sizeof f);
    f.err = err;
    f.errlen = errlen;
    int64_t a[TY_INFER_ARCH_LEN];
    s_arch (p, a);
    if (p->kind == TY_TORCH_TEXTCLF && opts->rowmap)
        a[0] = ty_vocab_nrows (meta->vocab);   /* ARCH's nrows: the id space */
    int rc = s_add_int64s (&f, TY_INFER_SEC_ARCH, a, TY_INFER_ARCH_LEN);
    if (rc == TY_OK && p->kind == TY_TORCH_TEXTCLF) {
        const ty_tok_opts_t *o = ty_vocab_opts (meta->vocab);
        int64_t t[TY_INFER_TOK_LEN] = {o->lower, o->punct, o->word_ngrams, o->minn, o->maxn,
                                       o->bucket, o->eos, o->min_count};
        rc = s_add_int64s (&f, TY_INFER_SEC_TOKENIZER, t, TY_INFER_TOK_LEN);
        if (rc == TY_OK)
            rc = s_add_strtab (&f, TY_INFER_SEC_VOCAB, (size_t) ty_vocab_nwords (meta->vocab),
                               s_vocab_word, meta->vocab);
        if (rc == TY_OK)
            rc = s_add_char_tables (&f);
    }
    if (rc == TY_OK && meta->nlabels > 0)
        rc = s_add_strtab (&f, TY_INFER_SEC_LABELS, meta->nlabels, s_label_at, meta->labels);
    char names[S_MAX_SECTIONS][S_NAME_LEN];
    size_t nnames = s_expected_names (p, names, sizeof names / sizeof names[0]);
    if (rc == TY_OK) {
        s_export_t x = {&f, names, nnames, 0};
        rc = ty_torch_export_tensors (model, s_on_tensor, &x);
        if (rc == TY_OK && x.seen != nnames)
            rc = s_fail (err, errlen, TY_EINVAL, "the model has %zu tensors, expected %zu",
                         x.seen, nnames);
        else if (rc != TY_OK && err && errlen && !err[0])
            s_fail (err, errlen, rc, "export: %s", ty_torch_errstr (model));
    }
    else if (rc == TY_ENOMEM)
        s_fail (err, errlen, rc, "out of memory");
    if (rc == TY_OK && p->kind == TY_TORCH_TEXTCLF && opts->max_rows > 0)
        rc = s_prune (&f, opts->max_rows);
    if (rc == TY_OK && rowmap)
        rc = s_add_rowmap (&f, rowmap, opts->rowmap_len);
    if (rc == TY_OK && dtype != TY_PORTABLE_FP32)
        rc = s_convert (&f, dtype);
    if (rc == TY_ENOMEM && err && errlen && !err[0])
        s_fail (err, errlen, rc, "out of memory");
    if (rc == TY_OK) {
        s_encode_floats (&f);
        rc = s_emit (&f, (uint32_t) p->kind, path, err, errlen);
    }
    s_file_free (&f);
    if (rc == TY_OK && err && errlen)
        err[0] = '\0';
    return rc;
}

int
ty_portable_convert_dir (const char *dir, char *err, size_t errlen)
{
    char path[TY_MODELDIR_PATH_MAX];
    if (!dir)
        return s_fail (err, errlen, TY_EINVAL, "dir is NULL");
    if (snprintf (path, sizeof path, "%s/%s", dir, TY_PORTABLE_FILE) >= (int) sizeof path)
        return s_fail (err, errlen, TY_EINVAL, "path too long");
    return ty_portable_convert_dir_opts (dir, NULL, path, err, errlen);
}

int
ty_portable_convert_dir_opts (const char *dir, const ty_portable_opts_t *opts,
                              const char *out_path, char *err, size_t errlen)
{
    char path[TY_MODELDIR_PATH_MAX];
    if (!dir || !out_path)
        return s_fail (err, errlen, TY_EINVAL, "dir or out_path is NULL");
    if (snprintf (path, sizeof path, "%s/%s", dir, TY_MODELDIR_WEIGHTS) >= (int) sizeof path)
        return s_fail (err, errlen, TY_EINVAL, "path too long");
    ty_torch_model_t *model = NULL;
    int rc = ty_torch_load (path, 1, &model, err, errlen);
    if (rc == TY_OK)
        rc = ty_portable_write_dir_model (model, dir, opts, out_path, err, errlen);
    ty_torch_destroy (&model);
    return rc;
}

int
ty_portable_write_dir_model (ty_torch_model_t *model, const char *dir,
                             const ty_portable_opts_t *opts, const char *out_path,
                             char *err, size_t errlen)
{
    if (!model || !dir || !out_path)
        return s_fail (err, errlen, TY_EINVAL, "model, dir or out_path is NULL");
    ty_batch_feat_t *feat = NULL;
    const char **labels = NULL;
    int rc = ty_batch_feat_load (dir, &feat, err, errlen);
    if (rc == TY_OK && ty_batch_feat_input (feat) == TY_BATCH_INPUT_TFIDF)
        rc = s_fail (err, errlen, TY_EINVAL,
                     "mlp on text (TF-IDF input) has no portable form yet");
    size_t nlabels = 0;
    if (rc == TY_OK && ty_batch_feat_task (feat) != TY_BATCH_TASK_REGRESSION
        && ty_batch_feat_task (feat) != TY_BATCH_TASK_RANKING) {
        nlabels = (size_t) ty_batch_feat_noutputs (feat);
        labels = calloc (nlabels ? nlabels : 1, sizeof *labels);
        if (!labels)
            rc = s_fail (err, errlen, TY_ENOMEM, "out of memory");
        for (size_t i = 0; rc == TY_OK && i < nlabels; i++) {
            labels[i] = ty_batch_feat_label (feat, (int64_t) i);
            if (!labels[i])
                rc = s_fail (err, errlen, TY_EPROTO, "feat.json: no name for class %zu", i);
        }
    }
    if (rc == TY_OK) {
        ty_portable_meta_t meta = {ty_batch_feat_vocab (feat), labels, nlabels};
        rc = ty_portable_write_opts (model, &meta, opts, out_path, err, errlen);
    }
    free (labels);
    ty_batch_feat_destroy (&feat);
    return rc;
}

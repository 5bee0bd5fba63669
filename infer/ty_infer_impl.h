/*  ty_infer_impl: the model object shared by the files of libtrainyard-infer
 *  (ty_infer.c loads, ty_infer_text.c tokenizes, ty_infer_net.c predicts).
 *  Private: not installed, not for callers. */
#ifndef TY_INFER_IMPL_H
#define TY_INFER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ty_infer.h"

#define TY_INFER_MAX_NGRAMS   8      /* = TY_TOK_MAX_NGRAMS */
#define TY_INFER_MAX_CHARGRAM 16     /* = TY_TOK_MAX_CHARGRAM */
#define TY_INFER_TOK_MAX_BYTES 1024  /* = TY_TOK_MAX_BYTES: longer tokens are cut */
/* Most tensors of an architecture: cnn, 6 separable blocks (4 each) + fc. */
#define TY_INFER_MAX_TENSORS  32

typedef struct {
    int64_t nrows, dim, nlabels;                 /* textclf */
    bool    multilabel;
    int64_t input_dim, nhidden, noutputs;        /* mlp */
    int64_t hidden[TY_INFER_MAX_LAYERS];
    bool    regression;
    int64_t height, width, channels, depth, filters, nclasses;   /* cnn */
    bool    separable;
    int64_t nusers, nitems, gmf_dim, mlp_dim, nlayers;           /* ncf */
    int64_t layers[TY_INFER_MAX_LAYERS];
} ty_infer_arch_t;

typedef struct {
    bool    lower;
    int     punct;          /* 0 keep, 1 split, 2 token (ty_tok_punct_t) */
    int     word_ngrams, minn, maxn;
    int64_t bucket;
    bool    eos;
} ty_infer_tok_t;

/* Floats a predict call keeps on its stack for a row or a bag sum; wider
 * models take the heap (rare: textclf dims are 10-300). */
#define TY_INFER_STACK_FLOATS 1024
/* Ids a text gets on the stack before the list moves to the heap: a short
 * text with word bigrams never allocates. */
#define TY_INFER_STACK_IDS    512

typedef struct {
    int ndim;
    int64_t dims[TY_INFER_MAX_DIMS];
    uint64_t numel;
    size_t rowlen;          /* numel / dims[0]: one row = one output channel */
    int dtype;              /* ty_infer_dtype_t */
    const float *data;      /* FP32: into the mapping, 64-byte aligned; else NULL */
    const uint16_t *f16;    /* FP16 elements, else NULL */
    const int8_t *i8;       /* INT8 elements, else NULL */
    const float *scale;     /* INT8: dims[0] scales, else NULL */
} ty_infer_tensor_t;

/* Row r (index along dims[0]) as rowlen floats: a pointer into the file
 * for FP32, else dequantized into buf (rowlen floats). */
const float *ty_infer_row (const ty_infer_tensor_t *t, size_t r, float *buf);

typedef struct {
    uint64_t n;
    const unsigned char *offsets;   /* n + 1 little-endian uint64 */
    const unsigned char *bytes;
} ty_infer_strtab_t;

typedef struct {
    size_t n;
    const unsigned char *p;         /* n little-endian uint32 pairs */
} ty_infer_pairs_t;

struct _ty_infer_model_t {
    const unsigned char *map;
    size_t map_len;
    ty_infer_kind_t kind;
    ty_infer_arch_t arch;
    size_t out_width, in_width;
    ty_infer_tensor_t tensors[TY_INFER_MAX_TENSORS];
    size_t ntensors;
    ty_infer_tok_t tok;
    ty_infer_strtab_t vocab, labels;
    ty_infer_pairs_t space, punct, lower;
    uint32_t *index;        /* word hash index: id + 1, 0 = empty */
    size_t index_mask;
    /* textclf pruning (ROWMAP): original row id -> kept row, as a hash of
     * (id + 1, row) pairs, 0 = empty; NULL when every row is kept. */
    const unsigned char *rowmap;    /* nkept little-endian uint32, ascending */
    size_t nkept;
    uint32_t *rowhash;
    int rowhash_bits;
    size_t max_rowlen;      /* the longest tensor row: dequantization scratch */
    uint64_t weight_bytes;
    char **label_names;
    size_t nlabel_names;
};

uint32_t ty_infer_rd32 (const unsigned char *p);
uint64_t ty_infer_rd64 (const unsigned char *p);
const unsigned char *ty_infer_strtab_get (const ty_infer_strtab_t *t, uint64_t i, size_t *len);
/* textclf: the embedding row of an id, -1 if pruning dropped it. */
static inline int64_t
ty_infer_row_of (const ty_infer_model_t *m, int64_t id)
{
    if (!m->rowhash)
        return id;
    uint64_t key = (uint64_t) id + 1;
    size_t mask = ((size_t) 1 << m->rowhash_bits) - 1;
    /* Fibonacci hashing: the top bits of key x 2^64/phi. */
    size_t s = (size_t) ((key * 0x9E3779B97F4A7C15ULL) >> (64 - m->rowhash_bits));
    while (m->rowhash[2 * s]) {
        if (m->rowhash[2 * s] == key)
            return (int64_t) m->rowhash[2 * s + 1];
        s = (s + 1) & mask;
    }
    return -1;
}

/* -1 if not in the vocabulary. */
int64_t ty_infer_word_id (const ty_infer_model_t *m, const char *w, size_t len);

/* A growable id list (ty_infer_text.c). It may start on a caller's buffer
 * (owned = false); it moves to the heap when that is full. */
typedef struct {
    int64_t *ids;
    size_t n, cap;
    bool owned;             /* ids is malloc'd: free it */
} ty_infer_ids_t;

/* Appends the ids of one text; TY_INFER_OK or TY_INFER_ENOMEM. */
int ty_infer_text_ids (const ty_infer_model_t *m, const char *text, size_t len,
                       ty_infer_ids_t *out);

#endif

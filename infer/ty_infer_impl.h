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
    /* textclf pruning (ROWMAP): original row id -> kept row as a rank
     * directory. Per block of 64 ids, rowrank[2 b] has a bit per kept id
     * and rowrank[2 b + 1] the number of kept ids before the block. A
     * lookup reads one 16-byte entry: nrows / 4 bytes in all (512 KB for
     * 2 M rows, which stays in L2 where a hash of the kept rows did not),
     * and a dropped id costs one bit test. NULL when every row is kept. */
    const unsigned char *rowmap;    /* nkept little-endian uint32, ascending */
    size_t nkept;
    uint64_t *rowrank;
    size_t max_rowlen;      /* the longest tensor row: dequantization scratch */
    uint64_t weight_bytes;
    char **label_names;
    size_t nlabel_names;
};

uint32_t ty_infer_rd32 (const unsigned char *p);
uint64_t ty_infer_rd64 (const unsigned char *p);
const unsigned char *ty_infer_strtab_get (const ty_infer_strtab_t *t, uint64_t i, size_t *len);
/* Set bits of x (SWAR: C99, no compiler builtin, no libgcc call). */
static inline uint64_t
ty_infer_popcount64 (uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (x * 0x0101010101010101ULL) >> 56;
}

/* textclf: the embedding row of an id (0 <= id < nrows), -1 if pruning
 * dropped it. */
static inline int64_t
ty_infer_row_of (const ty_infer_model_t *m, int64_t id)
{
    if (!m->rowrank)
        return id;
    const uint64_t *e = m->rowrank + 2 * ((uint64_t) id >> 6);
    uint64_t bit = (uint64_t) 1 << ((uint64_t) id & 63);
    if (!(e[0] & bit))
        return -1;
    return (int64_t) (e[1] + ty_infer_popcount64 (e[0] & (bit - 1)));
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

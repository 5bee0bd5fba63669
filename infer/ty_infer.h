/*  ty_infer: libtrainyard-infer, the portable model runtime.
 *
 *  Loads a portable model file (model.tym, docs/model-format.md) with mmap
 *  and predicts with it, for the four model kinds trainyard trains:
 *  textclf (text -> label probabilities), mlp (dense features -> class
 *  probabilities or regression values), cnn (image -> class probabilities)
 *  and ncf (user, item -> interaction probability).
 *
 *  C99, libc and libm only: it builds for a Raspberry Pi without libtorch,
 *  protobuf or the rest of trainyard. Its text tokenizer gives the ids of
 *  workers/text/ty_tokenize.c for the options the model was trained with;
 *  the Unicode character classes and case map it needs travel in the file
 *  (written from the trainer's C.UTF-8 tables), so the ids never depend on
 *  the locale of the machine that predicts.
 *
 *  Trust: the file is untrusted input. ty_infer_open checks the magic, the
 *  format version, every section's bounds and alignment and every tensor's
 *  shape against the architecture before anything reads it; a truncated,
 *  corrupt or lying file is an error (TY_INFER_EPROTO with a message),
 *  never a read out of bounds.
 *
 *  Threads: an open model is read-only; every predict call may run on many
 *  threads at once (scratch memory is per call).
 *
 *  Status codes: TY_INFER_OK (0), the TY_INFER_E* codes below (negative,
 *  the same values as TY_E* in common/ty_error.h, so trainyard code can
 *  treat them alike) or a positive errno (open, fstat, mmap).
 *
 *  What it is not: a trainer, a converter (workers/convert/ty_portable.h
 *  writes the files) or a TF-IDF featurizer (mlp models on text are not
 *  portable yet).
 */
#ifndef TY_INFER_H
#define TY_INFER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TY_INFER_OK       0
#define TY_INFER_EPROTO   (-30802)  /* not a model file, corrupt, or unsupported version */
#define TY_INFER_EFULL    (-30803)  /* output buffer too small */
#define TY_INFER_EINVAL   (-30806)  /* bad argument (wrong kind, id out of range, NULL) */
#define TY_INFER_ENOMEM   (-30810)

#define TY_INFER_FORMAT_VERSION 2   /* newest model.tym this build reads (and reads 1) */
#define TY_INFER_FORMAT_V1      1   /* files without a ROWMAP section */
#define TY_INFER_MAGIC      "TYMODEL"  /* 8 bytes with the NUL */
#define TY_INFER_MAGIC_LEN  8
#define TY_INFER_ALIGN      64      /* every section starts at a multiple of this */
#define TY_INFER_HEADER_LEN 64      /* bytes of the file header */
#define TY_INFER_ENTRY_LEN  64      /* bytes of one section-table entry */
#define TY_INFER_MAX_DIMS   4
#define TY_INFER_MAX_LAYERS 8       /* = TY_TORCH_MAX_LAYERS */
#define TY_INFER_ARCH_LEN   32      /* int64 fields of the ARCH section */
#define TY_INFER_TOK_LEN    8       /* int64 fields of the TOKENIZER section */
#define TY_INFER_ERR_LEN    256     /* an error buffer that fits every message */

/* Model kinds: the values of ty_torch_kind_t. */
typedef enum {
    TY_INFER_TEXTCLF = 1,
    TY_INFER_MLP     = 2,
    TY_INFER_CNN     = 3,
    TY_INFER_NCF     = 4,
} ty_infer_kind_t;

/* Section types (docs/model-format.md). */
typedef enum {
    TY_INFER_SEC_ARCH       = 1,   /* int64[32]: the architecture */
    TY_INFER_SEC_TOKENIZER  = 2,   /* int64[8]: tokenizer options (textclf) */
    TY_INFER_SEC_VOCAB      = 3,   /* string table: words, id order (textclf) */
    TY_INFER_SEC_LABELS     = 4,   /* string table: label names, index order */
    TY_INFER_SEC_CHAR_SPACE = 5,   /* uint32 [first, last] pairs: white space >= U+0080 */
    TY_INFER_SEC_CHAR_PUNCT = 6,   /* uint32 [first, last] pairs: punctuation >= U+0080 */
    TY_INFER_SEC_CHAR_LOWER = 7,   /* uint32 (code point, lower case) pairs >= U+0080 */
    TY_INFER_SEC_ROWMAP     = 8,   /* uint32, ascending: the embedding rows kept by
                                      pruning (textclf, format version 2) */
    TY_INFER_SEC_TENSOR     = 16,  /* a parameter tensor, in architecture order */
    TY_INFER_SEC_SCALES     = 17,  /* FP32 [rows]: the scales of an INT8 tensor */
} ty_infer_section_t;

/* Element types of tensors. 1-d tensors (biases) are always FP32; weights
 * may be FP16 (IEEE binary16) or INT8 (symmetric, one FP32 scale per row =
 * output channel, in the SCALES section the entry names). */
typedef enum {
    TY_INFER_DT_BYTES = 0,
    TY_INFER_DT_F32   = 1,
    TY_INFER_DT_F16   = 2,
    TY_INFER_DT_I8    = 3,
} ty_infer_dtype_t;

typedef struct _ty_infer_model_t ty_infer_model_t;

/* Maps and validates the file at path. On TY_INFER_OK *model_p is a new
 * model (free with ty_infer_close); otherwise *model_p is NULL and err (if
 * not NULL) says why. Errors: errno (open, mmap), TY_INFER_EPROTO (bad
 * file), TY_INFER_ENOMEM. */
int ty_infer_open (const char *path, ty_infer_model_t **model_p, char *err, size_t errlen);

/* Unmaps and frees. NULL-safe, idempotent; nulls *model_p. */
void ty_infer_close (ty_infer_model_t **model_p);

ty_infer_kind_t ty_infer_kind (const ty_infer_model_t *model);
/* "textclf", "mlp", "cnn", "ncf". Static string. */
const char *ty_infer_kind_name (ty_infer_kind_t kind);

/* Floats one prediction writes: nlabels / noutputs / nclasses / 1 (ncf). */
size_t ty_infer_output_width (const ty_infer_model_t *model);
/* Floats one input holds: mlp input_dim, cnn channels x height x width;
 * 0 for textclf and ncf. */
size_t ty_infer_input_width (const ty_infer_model_t *model);
/* cnn input shape (the others get 0s). Pointers may be NULL. */
void ty_infer_image_shape (const ty_infer_model_t *model, size_t *height, size_t *width,
                           size_t *channels);
/* ncf id ranges [0, n). */
void ty_infer_pair_range (const ty_infer_model_t *model, int64_t *nusers, int64_t *nitems);
/* 1 if outputs are independent sigmoid probabilities (multi-label textclf,
 * ncf), 0 if a softmax over classes, -1 if regression values. */
int ty_infer_output_type (const ty_infer_model_t *model);

/* Label map: names in class-index order. */
size_t ty_infer_nlabels (const ty_infer_model_t *model);
/* NUL-terminated name of class i, borrowed until close; NULL if out of range. */
const char *ty_infer_label (const ty_infer_model_t *model, size_t i);

/* textclf: the embedding rows of one text, as the trainer's
 * ty_vocab_encode gives them. Writes at most cap ids; *n gets the count
 * (TY_INFER_EFULL with *n = the count needed if cap is too small).
 * Mostly for tests and tools: predict_text tokenizes by itself. */
int ty_infer_encode_text (const ty_infer_model_t *model, const char *text, size_t len,
                          int64_t *ids, size_t cap, size_t *n);

/* textclf: probabilities of the output_width labels for one UTF-8 text
 * (any bytes; invalid UTF-8 is kept as it is). */
int ty_infer_predict_text (const ty_infer_model_t *model, const char *text, size_t len,
                           float *out, size_t out_len);

/* mlp: x holds input_width floats (finite); cnn: x holds the image as
 * CHW floats in [0, 1] (what training saw). Writes output_width floats. */
int ty_infer_predict_features (const ty_infer_model_t *model, const float *x, size_t x_len,
                               float *out, size_t out_len);

/* cnn: an image as stored in datasets, height x width x channels bytes
 * (HWC); scaled to [0, 1] as training did. */
int ty_infer_predict_image (const ty_infer_model_t *model, const uint8_t *pixels,
                            size_t len, float *out, size_t out_len);

/* ncf: the interaction probability of (user, item), model index space. */
int ty_infer_predict_pair (const ty_infer_model_t *model, int64_t user, int64_t item,
                           float *score);

/* The indexes of the k largest of out[0..width) into idx, largest first
 * (ties: lower index first). Returns how many were written: min(k, width). */
size_t ty_infer_topk (const float *out, size_t width, size_t k, size_t *idx);

/* IEEE 754 binary16 bits -> float, exactly (subnormals, infinities and
 * NaN included). Plain bit manipulation: no compiler half type needed. */
float ty_infer_f16_to_f32 (uint16_t h);

/* Bytes of the model's weights in the file (all tensors and scales), and
 * the embedding rows a textclf file keeps (= its rows unless pruned). */
uint64_t ty_infer_weight_bytes (const ty_infer_model_t *model);
int64_t ty_infer_kept_rows (const ty_infer_model_t *model);

/* A static string for a TY_INFER_* code or errno. */
const char *ty_infer_strerror (int code);

#ifdef __cplusplus
}
#endif

#endif

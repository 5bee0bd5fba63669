/*  ty_portable: writes the portable model file (model.tym, format in
 *  docs/model-format.md) that libtrainyard-infer (infer/ty_infer.h) loads.
 *
 *  Two levels:
 *    ty_portable_write        a live model + its featurizer parts -> a file
 *    ty_portable_convert_dir  a model version directory (model.pt,
 *                             feat.json, vocab.txt) -> <dir>/model.tym
 *  Both write path.tmp, fsync, rename, fsync the directory: a killed
 *  converter leaves the old file or the new one, never half of one.
 *
 *  textclf files carry, besides the weights, the tokenizer options, the
 *  vocabulary and the Unicode tables the trainer's tokenizer used (white
 *  space, punctuation and lower case above U+007F, from C.UTF-8), so the
 *  runtime needs no locale to give the same ids.
 *
 *  Weights in FP32, FP16 or INT8 (ty_portable_opts_t; the rules are in
 *  docs/model-format.md): INT8 is symmetric per output channel (one FP32
 *  scale per row), biases and weights under TY_PORTABLE_I8_MIN_NUMEL
 *  elements stay FP32. textclf embeddings can be pruned to the max_rows
 *  rows of largest L2 norm (a ROWMAP section; format version 2).
 *  Not portable yet: mlp models on text (TF-IDF input) and ncf's user/item
 *  name maps (the runtime takes model indexes).
 *
 *  Errors: TY_OK, TY_EINVAL (a model or featurizer this cannot write; err
 *  says why), TY_ENOMEM, TY_EINTERNAL (libtorch), errno for files.
 */
#ifndef TY_PORTABLE_H
#define TY_PORTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "ty_tokenize.h"
#include "ty_torch.h"

#define TY_PORTABLE_FILE "model.tym"   /* in a model version directory */
/* INT8 files keep a weight in FP32 below this many elements: the scales
 * (4 bytes a row) and the rounding would cost more than the < 1 KB saved,
 * and such tensors are output layers, where rounding hurts most. */
#define TY_PORTABLE_I8_MIN_NUMEL 256

typedef enum {
    TY_PORTABLE_FP32 = 1,
    TY_PORTABLE_FP16 = 2,
    TY_PORTABLE_INT8 = 3,
} ty_portable_dtype_t;   /* = the file's element types (TY_INFER_DT_*) */

typedef struct {
    ty_portable_dtype_t dtype;   /* weights' element type; 0 = FP32 */
    uint64_t max_rows;           /* textclf: keep at most this many embedding rows
                                    (0 = all); ignored for the other kinds */
    /* textclf retrained on kept rows (ty_retrain.h): the model's embedding
     * row i is original row rowmap[i] (ascending, below the vocabulary's
     * words + bucket); written as the ROWMAP. NULL: the model's rows are
     * the id space. With a rowmap, max_rows must be 0. */
    const uint32_t *rowmap;
    size_t rowmap_len;           /* = the model's nrows */
} ty_portable_opts_t;

typedef struct {
    const ty_vocab_t *vocab;           /* textclf: tokenizer + words (required); else NULL */
    const char *const *labels;         /* class names in index order, or NULL */
    size_t nlabels;                    /* 0, or the model's output width */
} ty_portable_meta_t;

/* Writes model (+ meta) to path atomically. The model is only read. */
int ty_portable_write (ty_torch_model_t *model, const ty_portable_meta_t *meta,
                       const char *path, char *err, size_t errlen);

/* The same with options (NULL = FP32, every row). */
int ty_portable_write_opts (ty_torch_model_t *model, const ty_portable_meta_t *meta,
                            const ty_portable_opts_t *opts, const char *path, char *err,
                            size_t errlen);

/* model (e.g. retrained from dir's model.pt, ty_retrain.h) with the
 * featurizer of version directory dir (feat.json, vocab.txt: labels and
 * tokenizer) -> out_path, atomically. */
int ty_portable_write_dir_model (ty_torch_model_t *model, const char *dir,
                                 const ty_portable_opts_t *opts, const char *out_path,
                                 char *err, size_t errlen);

/* dir/model.pt + dir/feat.json (+ vocab.txt) -> dir/model.tym (FP32). */
int ty_portable_convert_dir (const char *dir, char *err, size_t errlen);

/* dir/model.pt + feat.json (+ vocab.txt) -> out_path (e.g.
 * dir/model-int8.tym), atomically. opts NULL = FP32. TY_EINVAL for a bad
 * dtype. */
int ty_portable_convert_dir_opts (const char *dir, const ty_portable_opts_t *opts,
                                  const char *out_path, char *err, size_t errlen);

#endif

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
 *  FP32 only for now; the format reserves FP16 and INT8 with scales.
 *  Not portable yet: mlp models on text (TF-IDF input) and ncf's user/item
 *  name maps (the runtime takes model indexes).
 *
 *  Errors: TY_OK, TY_EINVAL (a model or featurizer this cannot write; err
 *  says why), TY_ENOMEM, TY_EINTERNAL (libtorch), errno for files.
 */
#ifndef TY_PORTABLE_H
#define TY_PORTABLE_H

#include <stddef.h>

#include "ty_tokenize.h"
#include "ty_torch.h"

#define TY_PORTABLE_FILE "model.tym"   /* in a model version directory */

typedef struct {
    const ty_vocab_t *vocab;           /* textclf: tokenizer + words (required); else NULL */
    const char *const *labels;         /* class names in index order, or NULL */
    size_t nlabels;                    /* 0, or the model's output width */
} ty_portable_meta_t;

/* Writes model (+ meta) to path atomically. The model is only read. */
int ty_portable_write (ty_torch_model_t *model, const ty_portable_meta_t *meta,
                       const char *path, char *err, size_t errlen);

/* dir/model.pt + dir/feat.json (+ vocab.txt) -> dir/model.tym. */
int ty_portable_convert_dir (const char *dir, char *err, size_t errlen);

#endif

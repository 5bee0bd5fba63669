/*  ty_onnx: exports a trained model of any of the four kinds (textclf, mlp,
 *  cnn, ncf) as an ONNX file (FP32, opset TY_ONNX_OPSET) that onnxruntime
 *  and other ONNX tools run, with the same outputs as the libtorch shim's
 *  ty_torch_predict (eval mode) on the same inputs. docs/onnx.md describes
 *  each graph, its inputs and outputs and its metadata.
 *
 *  The file is protobuf, encoded by protobuf-c from trainyard's own copy
 *  of the parts of the ONNX schema it needs (proto/onnx.proto).
 *
 *  Two levels, as in ty_portable.h:
 *    ty_onnx_write        a live model (+ label names) -> a file
 *    ty_onnx_export_dir   a model version directory (model.pt, feat.json,
 *                         vocab.txt) -> a file
 *  Both write out_path.tmp, fsync, rename, fsync the directory: a killed
 *  exporter leaves the old file or the new one, never half of one, and a
 *  failed export leaves no file at all (no .tmp either).
 *
 *  What it is not: featurizing. The graphs start where the shim's
 *  forward starts: token/n-gram ids for textclf (the model's tokenizer,
 *  ty_vocab_encode or libtrainyard-infer's, makes them), feature vectors
 *  (dense or TF-IDF) for mlp, NCHW floats in [0, 1] for cnn, model
 *  indexes of users and items for ncf (feat.json maps names to them).
 *
 *  Errors: TY_OK, TY_EINVAL (a model this cannot export, bad arguments;
 *  err says why), TY_ENOMEM, TY_EPROTO (feat.json inconsistent with the
 *  model), TY_EINTERNAL (libtorch), errno for files. err (may be NULL)
 *  holds a message on every failure and "" on success.
 *  Thread rules: those of the model (one thread at a time per model).
 */
#ifndef TY_ONNX_H
#define TY_ONNX_H

#include <stddef.h>

#include "ty_torch.h"

#define TY_ONNX_FILE        "model.onnx"   /* its name in a model version directory */
#define TY_ONNX_OPSET       13             /* ai.onnx operator set the graphs use */
#define TY_ONNX_IR_VERSION  7              /* the IR version that introduced opset 13 */

/* Graph inputs (docs/onnx.md). N is the batch size, symbolic in the file. */
#define TY_ONNX_IN_IDS      "ids"      /* textclf: int64 [N, L], rows padded with pad_id */
#define TY_ONNX_IN_X        "x"        /* mlp: float [N, input_dim] */
#define TY_ONNX_IN_IMAGE    "image"    /* cnn: float [N, channels, height, width] */
#define TY_ONNX_IN_USER     "user"     /* ncf: int64 [N] */
#define TY_ONNX_IN_ITEM     "item"     /* ncf: int64 [N] */

/* Graph outputs. */
#define TY_ONNX_OUT_PROBS   "probs"    /* float [N, classes]: softmax, or sigmoid per label */
#define TY_ONNX_OUT_VALUES  "values"   /* float [N, noutputs]: mlp regression */
#define TY_ONNX_OUT_SCORE   "score"    /* float [N, 1]: ncf interaction probability */

/* model metadata_props keys. */
#define TY_ONNX_META_KIND       "trainyard.kind"       /* "textclf", "mlp", "cnn", "ncf" */
#define TY_ONNX_META_LABELS     "trainyard.labels"     /* JSON array of class names */
#define TY_ONNX_META_PAD_ID     "trainyard.pad_id"     /* textclf: the id that pads ids rows */
#define TY_ONNX_META_TOKENIZER  "trainyard.tokenizer"  /* textclf: JSON tokenizer options */

/* Writes model as ONNX to out_path atomically. labels (may be NULL when
 * nlabels is 0) are the class names in output order; nlabels is 0 or the
 * model's output width. tokenizer_json (may be NULL) is stored as
 * TY_ONNX_META_TOKENIZER for textclf. The model is only read. */
int ty_onnx_write (ty_torch_model_t *model, const char *const *labels, size_t nlabels,
                   const char *tokenizer_json, const char *out_path, char *err,
                   size_t errlen);

/* dir/model.pt + dir/feat.json (+ vocab.txt) -> out_path (ONNX, FP32),
 * with the label names and, for textclf, the tokenizer options from
 * feat.json as metadata. A missing or corrupt model.pt or feat.json is an
 * error that names the file, and nothing is written. */
int ty_onnx_export_dir (const char *dir, const char *out_path, char *err, size_t errlen);

#endif

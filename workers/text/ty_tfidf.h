/*  ty_tfidf: TF-IDF features of texts for the mlp model (workflow 004:
 *  1000 TF-IDF features + a classifier). Pure C.
 *
 *  Fit on the train split only (never val/test: the IDF would leak them):
 *  count words with ty_tfidf_add_doc, then ty_tfidf_finalize keeps the
 *  max_features most frequent words (total count; ties by byte order) and
 *  computes idf = ln((1 + N) / (1 + df)) + 1 (scikit-learn's smooth idf).
 *  A text becomes raw term counts x idf, L2-normalised (all zeros if it
 *  has no known term).
 *
 *  Tokenization is ty_tokenize's (lower-casing and punctuation per opts);
 *  terms are unigrams: word_ngrams, char n-grams and eos are ignored.
 *
 *  Saved as a ty_vocab file (ty_tokenize.h) holding just the kept terms
 *  with their counts and document frequencies and the document count, from
 *  which load recomputes the same idf.
 *
 *  Thread rules: not thread-safe while fitting; after finalize/load,
 *  transform may run from many threads. */
#ifndef TY_TFIDF_H
#define TY_TFIDF_H

#include <stddef.h>
#include <stdint.h>

#include "ty_tokenize.h"

#define TY_TFIDF_DEFAULT_MAX_FEATURES 1000   /* workflow 004's feature count */

typedef struct _ty_tfidf_t ty_tfidf_t;

/* NULL on bad opts, max_features < 1 or no memory. */
ty_tfidf_t *ty_tfidf_new (const ty_tok_opts_t *opts, int64_t max_features);
void ty_tfidf_destroy (ty_tfidf_t **self_p);

/* Counts one train document. TY_ESTATE after finalize, TY_ENOMEM. */
int ty_tfidf_add_doc (ty_tfidf_t *self, const char *text, size_t len);
/* Chooses the features and computes idf. TY_EINVAL if no document was
 * added, TY_ENOMEM. */
int ty_tfidf_finalize (ty_tfidf_t *self);

/* Features (<= max_features; fewer if the corpus has fewer words). */
int64_t ty_tfidf_nfeatures (const ty_tfidf_t *self);
/* Feature i's term (borrowed for the object's lifetime) and idf; NULL if
 * out of range. */
const char *ty_tfidf_term (const ty_tfidf_t *self, int64_t i, double *idf);

/* out receives nfeatures floats (out_len is its capacity: TY_EFULL if
 * smaller). TY_ESTATE before finalize. */
int ty_tfidf_transform (const ty_tfidf_t *self, const char *text, size_t len, float *out,
                        size_t out_len);

/* Atomic write. TY_ESTATE before finalize, errno. */
int ty_tfidf_save (const ty_tfidf_t *self, const char *path);
/* errno, TY_EPROTO, TY_ENOMEM. */
int ty_tfidf_load (const char *path, ty_tfidf_t **self_p);

#endif

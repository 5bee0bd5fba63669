/*  ty_tokenize: text -> token ids for the fastText-style classifier
 *  (textclf) and the TF-IDF featurizer. Pure C, no libtorch.
 *
 *  Tokens: UTF-8 text split on Unicode white space; optionally lower-cased
 *  (Unicode, via the C.UTF-8 locale, independent of the process locale) and
 *  split on punctuation. Invalid UTF-8 bytes are kept as they are (one
 *  byte = one character), so no input is rejected.
 *
 *  Ids (fastText's layout, so a model is interchangeable in spirit):
 *    [0, nwords)                 vocabulary words (count >= min_count),
 *                                most frequent first
 *    [nwords, nwords + bucket)   hashed word n-grams and character n-grams:
 *                                nwords + hash % bucket
 *  A known word contributes its id and (maxn > 0) its character n-grams of
 *  "<word>"; an unknown word contributes its character n-grams only; word
 *  n-grams (word_ngrams >= 2) hash the words' FNV-1a values the way
 *  fastText does (h = h * 116049371 + next, on sign-extended 32-bit word
 *  hashes), known or not. With eos, "</s>" ends each text as in fastText.
 *
 *  The vocabulary also holds the label map (label name <-> index).
 *
 *  File format (ty_vocab_save), text, version 1:
 *      ty-vocab 1
 *      opts <lower> <punct> <word_ngrams> <minn> <maxn> <bucket> <eos> <min_count>
 *      docs <documents counted>
 *      words <n>
 *      <count> <df> <word>          n lines; ids are line order
 *      labels <m>
 *      <label>                      m lines; indexes are line order
 *  Words never contain white space (they are split on it) and labels may
 *  not contain a newline, so lines need no escaping. A reader refuses any
 *  other version; a new version comes with a reader for this one.
 *
 *  Thread rules: a vocabulary is not thread-safe while counting; after
 *  ty_vocab_finalize (or load) it is read-only and ty_vocab_encode may be
 *  called from many threads at once (each with its own ty_idbuf_t). */
#ifndef TY_TOKENIZE_H
#define TY_TOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TY_TOK_MAX_BYTES     1024      /* longer tokens are cut (at a character boundary) */
#define TY_TOK_MAX_NGRAMS    8         /* word_ngrams limit */
#define TY_TOK_MAX_CHARGRAM  16        /* maxn limit */
#define TY_TOK_DEFAULT_BUCKET 2000000  /* fastText's -bucket */
#define TY_TOK_EOS           "</s>"
#define TY_VOCAB_FORMAT_VERSION 1

typedef enum {
    TY_TOK_PUNCT_KEEP  = 0,   /* punctuation is part of words (fastText) */
    TY_TOK_PUNCT_SPLIT = 1,   /* punctuation separates words and is dropped */
    TY_TOK_PUNCT_TOKEN = 2,   /* each punctuation character is a token of its own */
} ty_tok_punct_t;

typedef struct {
    bool    lower;            /* Unicode lower-casing */
    ty_tok_punct_t punct;
    int     word_ngrams;      /* 1 = unigrams only (fastText -wordNgrams), <= TY_TOK_MAX_NGRAMS */
    int     minn, maxn;       /* character n-grams; maxn 0 = off (fastText supervised default) */
    int64_t bucket;           /* hash rows for n-grams; 0 only if no n-grams are used */
    bool    eos;              /* append "</s>" to each text, as fastText does per line */
    int64_t min_count;        /* words seen fewer times are not in the vocabulary */
} ty_tok_opts_t;

/* fastText's supervised defaults: no lower-casing, punctuation kept,
 * unigrams, no char n-grams, 2 M buckets, eos on, min_count 1. */
void ty_tok_opts_init (ty_tok_opts_t *opts);
/* TY_OK or TY_EINVAL with a message in err (may be NULL). */
int  ty_tok_opts_check (const ty_tok_opts_t *opts, char *err, size_t errlen);

/* fastText's string hash: 32-bit FNV-1a over the bytes, each byte
 * sign-extended first (fastText hashes `int8_t` chars). */
uint32_t ty_tok_hash (const char *s, size_t len);

/* Token iteration without allocation: writes the next token (normalised
 * per opts, NUL-terminated, at most TY_TOK_MAX_BYTES bytes) into tok
 * (capacity TY_TOK_MAX_BYTES + 1), its byte length into *toklen, and
 * advances *pos. Returns false at the end of the text. eos is not added
 * here. */
bool ty_tok_next (const ty_tok_opts_t *opts, const char *text, size_t len, size_t *pos,
                  char *tok, size_t *toklen);

/* A growable id array the caller owns; ty_vocab_encode appends to it so a
 * batch's bags can be built back to back (ty_torch_batch_t.ids). */
typedef struct {
    int64_t *ids;
    size_t   n, cap;
} ty_idbuf_t;

void ty_idbuf_init (ty_idbuf_t *buf);
void ty_idbuf_free (ty_idbuf_t *buf);     /* frees the array, back to empty */
/* Appends one id; TY_OK or TY_ENOMEM. */
int  ty_idbuf_push (ty_idbuf_t *buf, int64_t id);

typedef struct _ty_vocab_t ty_vocab_t;

/* A vocabulary being counted. NULL on bad opts or no memory. */
ty_vocab_t *ty_vocab_new (const ty_tok_opts_t *opts);
void ty_vocab_destroy (ty_vocab_t **self_p);

/* Counts the words of one document (count and document frequency).
 * TY_ESTATE after finalize, TY_ENOMEM. */
int ty_vocab_add_text (ty_vocab_t *self, const char *text, size_t len);
/* Adds a word with known counts (loading, merging). */
int ty_vocab_add_word (ty_vocab_t *self, const char *word, int64_t count, int64_t df);
/* Ends counting: drops words under min_count, orders by count, most
 * frequent first (ties by byte order, so ids never depend on the order the
 * texts came in), assigns ids. TY_ENOMEM. Idempotent. */
int ty_vocab_finalize (ty_vocab_t *self);

/* Keeps only the first nwords words (the most frequent): a vocabulary cap.
 * TY_ESTATE if not finalized, TY_EINVAL if nwords < 0. */
int ty_vocab_truncate (ty_vocab_t *self, int64_t nwords);

/* Label map: returns the label's index, adding it if new (labels may be
 * added at any time). -1 if name is empty, has a newline, or no memory. */
int64_t ty_vocab_label_require (ty_vocab_t *self, const char *name);
/* -1 if unknown. */
int64_t ty_vocab_label_id (const ty_vocab_t *self, const char *name);
/* Borrowed for the vocabulary's lifetime; NULL if out of range. */
const char *ty_vocab_label_name (const ty_vocab_t *self, int64_t id);
int64_t ty_vocab_nlabels (const ty_vocab_t *self);

const ty_tok_opts_t *ty_vocab_opts (const ty_vocab_t *self);
int64_t ty_vocab_nwords (const ty_vocab_t *self);
/* Embedding rows a textclf model needs: nwords + bucket. */
int64_t ty_vocab_nrows (const ty_vocab_t *self);
/* Documents counted by add_text. */
int64_t ty_vocab_ndocs (const ty_vocab_t *self);
/* -1 if not in the vocabulary (or not finalized). word is NUL-terminated and
 * already normalised. */
int64_t ty_vocab_word_id (const ty_vocab_t *self, const char *word);
/* Id -> word, count, df. NULL if out of range. */
const char *ty_vocab_word (const ty_vocab_t *self, int64_t id, int64_t *count, int64_t *df);

/* Appends the ids of one text (see the top of this file) to out.
 * TY_ESTATE if not finalized, TY_ENOMEM. */
int ty_vocab_encode (const ty_vocab_t *self, const char *text, size_t len, ty_idbuf_t *out);

/* Atomic (path.tmp, fsync, rename). TY_ESTATE if not finalized, errno. */
int ty_vocab_save (const ty_vocab_t *self, const char *path);
/* A finalized vocabulary. errno, TY_EPROTO (bad file or version), TY_ENOMEM. */
int ty_vocab_load (const char *path, ty_vocab_t **self_p);

#endif

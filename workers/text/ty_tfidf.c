/*  ty_tfidf: a ty_vocab of unigrams capped at max_features + an idf table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"
#include "ty_tfidf.h"

struct _ty_tfidf_t {
    ty_vocab_t *vocab;
    int64_t max_features;
    double *idf;          /* nfeatures, after finalize */
};

/* Unigrams only: the options that would add other ids are switched off. */
static void
s_unigram_opts (const ty_tok_opts_t *in, ty_tok_opts_t *out)
{
    *out = *in;
    out->word_ngrams = 1;
    out->minn = out->maxn = 0;
    out->eos = false;
    out->bucket = 0;
}

ty_tfidf_t *
ty_tfidf_new (const ty_tok_opts_t *opts, int64_t max_features)
{
    if (!opts || max_features < 1)
        return NULL;
    ty_tok_opts_t o;
    s_unigram_opts (opts, &o);
    ty_tfidf_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->max_features = max_features;
    self->vocab = ty_vocab_new (&o);
    if (!self->vocab) {
        free (self);
        return NULL;
    }
    return self;
}

void
ty_tfidf_destroy (ty_tfidf_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_vocab_destroy (&(*self_p)->vocab);
    free ((*self_p)->idf);
    free (*self_p);
    *self_p = NULL;
}

int
ty_tfidf_add_doc (ty_tfidf_t *self, const char *text, size_t len)
{
    if (self->idf)
        return TY_ESTATE;
    return ty_vocab_add_text (self->vocab, text, len);
}

static int
s_compute_idf (ty_tfidf_t *self)
{
    int64_t n = ty_vocab_nwords (self->vocab);
    double ndocs = (double) ty_vocab_ndocs (self->vocab);
    free (self->idf);
    self->idf = malloc ((size_t) (n > 0 ? n : 1) * sizeof (double));
    if (!self->idf)
        return TY_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        int64_t df = 0;
        ty_vocab_word (self->vocab, i, NULL, &df);
        self->idf[i] = log ((1.0 + ndocs) / (1.0 + (double) df)) + 1.0;
    }
    return TY_OK;
}

int
ty_tfidf_finalize (ty_tfidf_t *self)
{
    if (self->idf)
        return TY_OK;
    if (ty_vocab_ndocs (self->vocab) == 0)
        return TY_EINVAL;
    int rc = ty_vocab_finalize (self->vocab);
    if (rc == TY_OK)
        rc = ty_vocab_truncate (self->vocab, self->max_features);
    if (rc == TY_OK)
        rc = s_compute_idf (self);
    return rc;
}

int64_t
ty_tfidf_nfeatures (const ty_tfidf_t *self)
{
    return ty_vocab_nwords (self->vocab);
}

const char *
ty_tfidf_term (const ty_tfidf_t *self, int64_t i, double *idf)
{
    const char *w = ty_vocab_word (self->vocab, i, NULL, NULL);
    if (w && idf)
        *idf = self->idf[i];
    return w;
}

int
ty_tfidf_transform (const ty_tfidf_t *self, const char *text, size_t len, float *out,
                    size_t out_len)
{
    if (!self->idf)
        return TY_ESTATE;
    int64_t n = ty_tfidf_nfeatures (self);
    if ((size_t) n > out_len)
        return TY_EFULL;
    memset (out, 0, (size_t) n * sizeof *out);
    char tok[TY_TOK_MAX_BYTES + 1];
    size_t pos = 0, toklen;
    const ty_tok_opts_t *o = ty_vocab_opts (self->vocab);
    while (ty_tok_next (o, text, len, &pos, tok, &toklen)) {
        int64_t id = ty_vocab_word_id (self->vocab, tok);
        if (id >= 0)
            out[id] += 1.0f;
    }
    double norm = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = out[i] * self->idf[i];
        out[i] = (float) v;
        norm += v * v;
    }
    if (norm > 0) {
        double inv = 1.0 / sqrt (norm);
        for (int64_t i = 0; i < n; i++)
            out[i] = (float) (out[i] * inv);
    }
    return TY_OK;
}

int
ty_tfidf_save (const ty_tfidf_t *self, const char *path)
{
    if (!self->idf)
        return TY_ESTATE;
    return ty_vocab_save (self->vocab, path);
}

int
ty_tfidf_load (const char *path, ty_tfidf_t **self_p)
{
    *self_p = NULL;
    ty_tfidf_t *self = calloc (1, sizeof *self);
    if (!self)
        return TY_ENOMEM;
    int rc = ty_vocab_load (path, &self->vocab);
    if (rc == TY_OK) {
        self->max_features = ty_vocab_nwords (self->vocab);
        rc = s_compute_idf (self);
    }
    if (rc != TY_OK) {
        ty_tfidf_destroy (&self);
        return rc;
    }
    *self_p = self;
    return TY_OK;
}

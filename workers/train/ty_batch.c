/*  ty_batch: dataset samples -> the shim's batch buffers. See ty_batch.h. */
#include "ty_batch.h"

#include "ty_error.h"
#include "ty_tfidf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_READ_CHUNK     256     /* views per iterator call */
#define S_FEAT_FILE      "feat.json"
#define S_VOCAB_FILE     "vocab.txt"
#define S_PATH_MAX       4096

/* =========================================================================
 *  small helpers
 * ========================================================================= */

static int
s_err (char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
static int
s_err (char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (err, errlen, fmt, ap);
        va_end (ap);
    }
    return rc;
}

/* Grows *p (of *cap elements of size sz) to hold at least need. */
static int
s_reserve (void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return TY_OK;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc (*p, ncap * sz);
    if (!np)
        return TY_ENOMEM;
    *p = np;
    *cap = ncap;
    return TY_OK;
}

#define S_PUSH(arr, n, cap, v) \
    (s_reserve ((void **) &(arr), &(cap), (n) + 1, sizeof *(arr)) == TY_OK \
        ? ((arr) [(n)++] = (v), TY_OK) : TY_ENOMEM)

/* What a sample holds, for the "wrong sample type" message. */
static const char *
s_sample_type (const Ty__Sample *s)
{
    if (s->image && s->image->pixels.len)
        return "image";
    if (s->interaction)
        return "interaction";
    if (s->n_features)
        return "features";
    if (s->annotation)
        return "annotation";
    if (s->text && *s->text)
        return "text";
    return "empty";
}

static int
s_cmp_str (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Sorted unique string table (ncf ids). */
typedef struct {
    char  **v;
    size_t  n, cap;
} s_strtab_t;

static void
s_strtab_free (s_strtab_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free (t->v [i]);
    free (t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

static int
s_strtab_add (s_strtab_t *t, const char *s)
{
    char *d = strdup (s);
    if (!d || S_PUSH (t->v, t->n, t->cap, d) != TY_OK) {
        free (d);
        return TY_ENOMEM;
    }
    return TY_OK;
}

/* Sorts and drops duplicates. */
static void
s_strtab_seal (s_strtab_t *t)
{
    if (t->n < 2)
        return;
    qsort (t->v, t->n, sizeof *t->v, s_cmp_str);
    size_t w = 1;
    for (size_t r = 1; r < t->n; r++) {
        if (strcmp (t->v [r], t->v [w - 1]) == 0)
            free (t->v [r]);
        else
            t->v [w++] = t->v [r];
    }
    t->n = w;
}

static int64_t
s_strtab_find (const s_strtab_t *t, const char *s)
{
    if (!t->n)
        return -1;
    char *const *hit = bsearch (&s, t->v, t->n, sizeof *t->v, s_cmp_str);
    return hit ? (int64_t) (hit - t->v) : -1;
}

/* =========================================================================
 *  featurizer
 * ========================================================================= */

struct _ty_batch_feat_t {
    ty_batch_opts_t  opts;
    ty_batch_input_t input;
    ty_batch_task_t  task;
    s_strtab_t       labels;        /* class id order: the dataset's label map */
    int64_t          nlabels;
    ty_vocab_t      *vocab;         /* TOKENS */
    ty_tfidf_t      *tfidf;         /* TFIDF */
    int64_t          dim;           /* DENSE features, TFIDF nfeatures */
    int64_t          height, width, channels;   /* IMAGE */
    s_strtab_t       users, items;  /* PAIRS, sorted */
    ty_negsample_t  *neg;           /* PAIRS: train positives (fit only) */
};

void
ty_batch_opts_init (ty_batch_opts_t *opts, ty_torch_kind_t kind)
{
    memset (opts, 0, sizeof *opts);
    opts->kind = kind;
    ty_tok_opts_init (&opts->tok);
    opts->max_features = TY_BATCH_MAX_FEATURES_DEFAULT;
    opts->multilabel = -1;
    opts->regression = -1;
    opts->negatives = TY_BATCH_NEGATIVES_DEFAULT;
}

void
ty_batch_feat_destroy (ty_batch_feat_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_batch_feat_t *self = *self_p;
    s_strtab_free (&self->labels);
    s_strtab_free (&self->users);
    s_strtab_free (&self->items);
    ty_vocab_destroy (&self->vocab);
    ty_tfidf_destroy (&self->tfidf);
    ty_negsample_destroy (&self->neg);
    free (self);
    *self_p = NULL;
}

ty_batch_task_t  ty_batch_feat_task (const ty_batch_feat_t *self)  { return self->task; }
ty_batch_input_t ty_batch_feat_input (const ty_batch_feat_t *self) { return self->input; }
const ty_vocab_t *ty_batch_feat_vocab (const ty_batch_feat_t *self) { return self->vocab; }
const ty_negsample_t *ty_batch_feat_negsample (const ty_batch_feat_t *self) { return self->neg; }
int64_t ty_batch_feat_nitems (const ty_batch_feat_t *self) { return (int64_t) self->items.n; }

int64_t
ty_batch_feat_noutputs (const ty_batch_feat_t *self)
{
    if (self->task == TY_BATCH_TASK_REGRESSION || self->task == TY_BATCH_TASK_RANKING)
        return 1;
    return self->nlabels;
}

const char *
ty_batch_feat_label (const ty_batch_feat_t *self, int64_t id)
{
    return id >= 0 && (size_t) id < self->labels.n ? self->labels.v [id] : NULL;
}

/* =========================================================================
 *  folds
 * ========================================================================= */

/* Whether a sample of fold `fold` is taken. Called only when a selection is
 * on (mode != ALL): the normal path never tests folds. */
static inline int
s_fold_keep (const ty_batch_folds_t *sel, uint32_t fold)
{
    return sel->mode == TY_BATCH_FOLDS_ONLY ? fold == sel->fold : fold != sel->fold;
}

int
ty_batch_folds_check (ty_dataset_t *ds, const char *param, int64_t fold, char *err,
                      size_t errlen)
{
    /* ty_split writes 0 or 1 for "no folds": every sample is then fold 0 */
    uint32_t k = ty_dataset_meta (ds)->folds;
    if (k < 2)
        return s_err (err, errlen, TY_EINVAL, "%s %lld: dataset %s@%llu has no folds (folds "
                      "= %u; prepare it with folds: k >= 2 to cross-validate)", param,
                      (long long) fold, ty_dataset_name (ds),
                      (unsigned long long) ty_dataset_version (ds), k);
    if (fold < 0 || fold >= (int64_t) k)
        return s_err (err, errlen, TY_EINVAL, "%s %lld is out of range: dataset %s@%llu has "
                      "%u folds (0..%u)", param, (long long) fold, ty_dataset_name (ds),
                      (unsigned long long) ty_dataset_version (ds), k, k - 1);
    return TY_OK;
}

/* The label map in the dataset's class id order (not sorted: an index is a
 * class id, and the evaluate worker compares it with the dataset's). */
static int
s_copy_labels (ty_batch_feat_t *self, ty_dataset_t *ds)
{
    size_t n = ty_dataset_label_count (ds);
    for (size_t i = 0; i < n; i++) {
        const char *l = ty_dataset_label (ds, i);
        if (s_strtab_add (&self->labels, l ? l : "") != TY_OK)
            return TY_ENOMEM;
    }
    self->nlabels = (int64_t) n;
    return TY_OK;
}

/* Label id of a sample's label: the dataset map is authoritative. */
static int64_t
s_label_id (const ty_batch_feat_t *self, const char *label)
{
    for (size_t i = 0; i < self->labels.n; i++)
        if (!strcmp (self->labels.v [i], label))
            return (int64_t) i;
    return -1;
}

static const char *
s_kind_needs (ty_torch_kind_t kind)
{
    switch (kind) {
    case TY_TORCH_TEXTCLF: return "text";
    case TY_TORCH_MLP:     return "features, text or annotations with features";
    case TY_TORCH_CNN:     return "images";
    case TY_TORCH_NCF:     return "interactions";
    }
    return "?";
}

/* Checks one train sample against the kind; fixes input on the first. */
static int
s_fit_check (ty_batch_feat_t *self, ty_dataset_t *ds, const Ty__Sample *s, uint64_t index,
             int first, char *err, size_t errlen)
{
    const char *type = s_sample_type (s);
    const char *kind = ty_torch_kind_name (self->opts.kind);
    int ok = 0;
    switch (self->opts.kind) {
    case TY_TORCH_TEXTCLF:
        ok = !strcmp (type, "text") || !strcmp (type, "empty");
        break;
    case TY_TORCH_MLP:
        if (first)
            self->input = s->n_features ? TY_BATCH_INPUT_DENSE : TY_BATCH_INPUT_TFIDF;
        ok = self->input == TY_BATCH_INPUT_DENSE
           ? s->n_features > 0 && (!s->image || !s->image->pixels.len) && !s->interaction
           : !strcmp (type, "text") || !strcmp (type, "empty");
        break;
    case TY_TORCH_CNN:
        ok = !strcmp (type, "image");
        break;
    case TY_TORCH_NCF:
        ok = !strcmp (type, "interaction");
        break;
    }
    /* the first sample stands for the dataset; a later one is a stray */
    if (!ok && first)
        return s_err (err, errlen, TY_EINVAL,
                      "wrong sample type: dataset %s@%llu holds %s samples (train sample %llu); "
                      "model %s needs %s", ty_dataset_name (ds),
                      (unsigned long long) ty_dataset_version (ds), type,
                      (unsigned long long) index, kind, s_kind_needs (self->opts.kind));
    if (!ok)
        return s_err (err, errlen, TY_EINVAL,
                      "wrong sample type: train sample %llu of dataset %s@%llu holds %s, unlike "
                      "the samples before it; model %s needs %s", (unsigned long long) index,
                      ty_dataset_name (ds), (unsigned long long) ty_dataset_version (ds), type,
                      kind, s_kind_needs (self->opts.kind));
    for (size_t i = 0; i < s->n_features; i++)
        if (!isfinite (s->features [i]))
            return s_err (err, errlen, TY_EINVAL,
                          "NaN/inf feature: train sample %llu, feature %zu is %g",
                          (unsigned long long) index, i, (double) s->features [i]);
    if (s->has_target && !isfinite (s->target))
        return s_err (err, errlen, TY_EINVAL, "NaN/inf target in train sample %llu",
                      (unsigned long long) index);
    return TY_OK;
}

/* One pass over the train split: checks, counts and learns. */
static int
s_fit_pass (ty_batch_feat_t *self, ty_dataset_t *ds, char *err, size_t errlen)
{
    ty_dataset_iter_t *it = NULL;
    int rc = ty_dataset_iter_new (ds, TY_SPLIT_TRAIN, false, 0, &it);
    if (rc != TY_OK)
        return s_err (err, errlen, rc, "cannot read the train split: %s", ty_strerror (rc));
    ty_dataset_view_t views [S_READ_CHUNK];
    size_t n;
    int multi = 0, has_labels = 0, has_target = 0, same_dim = 1;
    const ty_batch_folds_t *folds = &self->opts.fit_folds;
    uint64_t taken = 0;
    int64_t *pos_users = NULL, *pos_items = NULL;
    size_t npos = 0, cap_u = 0, cap_i = 0;
    /* ncf: strings first, ids once the tables are sealed (second loop) */
    while (rc == TY_OK && (rc = ty_dataset_iter_next (it, views, S_READ_CHUNK, &n)) == TY_OK
           && n > 0) {
        for (size_t v = 0; v < n && rc == TY_OK; v++) {
            Ty__Sample *s = NULL;
            rc = ty_dataset_view_unpack (&views [v], &s);
            if (rc != TY_OK) {
                s_err (err, errlen, rc, "train sample %llu does not decode",
                       (unsigned long long) views [v].index);
                break;
            }
            if (folds->mode != TY_BATCH_FOLDS_ALL && !s_fold_keep (folds, s->fold)) {
                ty__sample__free_unpacked (s, NULL);
                continue;
            }
            rc = s_fit_check (self, ds, s, views [v].index, taken++ == 0, err, errlen);
            if (rc == TY_OK) {
                if (s->n_labels > 1)
                    multi = 1;
                if (s->n_labels)
                    has_labels = 1;
                if (s->has_target || s->annotation)
                    has_target = 1;
                switch (self->input) {
                case TY_BATCH_INPUT_TOKENS:
                    rc = ty_vocab_add_text (self->vocab, s->text, strlen (s->text));
                    break;
                case TY_BATCH_INPUT_TFIDF:
                    rc = ty_tfidf_add_doc (self->tfidf, s->text, strlen (s->text));
                    break;
                case TY_BATCH_INPUT_DENSE:
                    if (views [v].index == 0 || self->dim == 0)
                        self->dim = (int64_t) s->n_features;
                    else if ((int64_t) s->n_features != self->dim)
                        same_dim = 0;
                    break;
                case TY_BATCH_INPUT_IMAGE:
                    if (!self->height) {
                        self->height = s->image->height;
                        self->width = s->image->width;
                        self->channels = s->image->channels;
                    }
                    if ((int64_t) s->image->height != self->height
                    ||  (int64_t) s->image->width != self->width
                    ||  (int64_t) s->image->channels != self->channels
                    ||  s->image->pixels.len != (size_t) (self->height * self->width * self->channels))
                        rc = s_err (err, errlen, TY_EINVAL,
                                    "train sample %llu: image %ux%ux%u (%zu bytes) differs from "
                                    "the first image's %lldx%lldx%lld",
                                    (unsigned long long) views [v].index, s->image->height,
                                    s->image->width, s->image->channels, s->image->pixels.len,
                                    (long long) self->height, (long long) self->width,
                                    (long long) self->channels);
                    break;
                case TY_BATCH_INPUT_PAIRS:
                    if (!s->interaction->user || !*s->interaction->user
                    ||  !s->interaction->item || !*s->interaction->item)
                        rc = s_err (err, errlen, TY_EINVAL,
                                    "train sample %llu: interaction without user or item",
                                    (unsigned long long) views [v].index);
                    else if (s_strtab_add (&self->users, s->interaction->user) != TY_OK
                         ||  s_strtab_add (&self->items, s->interaction->item) != TY_OK)
                        rc = TY_ENOMEM;
                    break;
                }
                if (rc == TY_ENOMEM)
                    s_err (err, errlen, rc, "out of memory fitting the featurizer");
                else if (rc != TY_OK && err && !*err)
                    s_err (err, errlen, rc, "train sample %llu: %s",
                           (unsigned long long) views [v].index, ty_strerror (rc));
            }
            ty__sample__free_unpacked (s, NULL);
        }
    }
    if (rc == TY_OK && !same_dim)
        rc = s_err (err, errlen, TY_EINVAL, "train samples have different feature counts");
    /* ncf: seal the id tables, then a second pass for the positives */
    if (rc == TY_OK && self->input == TY_BATCH_INPUT_PAIRS) {
        s_strtab_seal (&self->users);
        s_strtab_seal (&self->items);
        rc = ty_dataset_iter_reset (it, 0);
        while (rc == TY_OK && (rc = ty_dataset_iter_next (it, views, S_READ_CHUNK, &n)) == TY_OK
               && n > 0)
            for (size_t v = 0; v < n && rc == TY_OK; v++) {
                Ty__Sample *s = NULL;
                rc = ty_dataset_view_unpack (&views [v], &s);
                if (rc != TY_OK)
                    break;
                if (folds->mode != TY_BATCH_FOLDS_ALL && !s_fold_keep (folds, s->fold)) {
                    ty__sample__free_unpacked (s, NULL);
                    continue;
                }
                int64_t u = s_strtab_find (&self->users, s->interaction->user);
                int64_t i = s_strtab_find (&self->items, s->interaction->item);
                if (s_reserve ((void **) &pos_users, &cap_u, npos + 1, sizeof *pos_users) != TY_OK
                ||  s_reserve ((void **) &pos_items, &cap_i, npos + 1, sizeof *pos_items) != TY_OK)
                    rc = TY_ENOMEM;
                else {
                    pos_users [npos] = u;
                    pos_items [npos++] = i;
                }
                ty__sample__free_unpacked (s, NULL);
            }
        if (rc == TY_OK && npos)
            rc = ty_negsample_new ((int64_t) self->users.n, (int64_t) self->items.n, pos_users,
                                   pos_items, (int64_t) npos, &self->neg);
        if (rc != TY_OK && err && !*err)
            s_err (err, errlen, rc, "ncf positives: %s", ty_strerror (rc));
    }
    free (pos_users);
    free (pos_items);
    ty_dataset_iter_destroy (&it);
    if (rc != TY_OK)
        return rc;

    /* the task */
    switch (self->opts.kind) {
    case TY_TORCH_NCF:
        self->task = TY_BATCH_TASK_RANKING;
        break;
    case TY_TORCH_MLP:
        if (self->opts.regression == 1 || (self->opts.regression < 0 && !has_labels && has_target)) {
            self->task = TY_BATCH_TASK_REGRESSION;
            break;
        }
        /* fall through */
    default:
        self->task = self->opts.multilabel == 1 || (self->opts.multilabel < 0 && multi)
                   ? TY_BATCH_TASK_MULTI : TY_BATCH_TASK_SINGLE;
        if (self->opts.kind == TY_TORCH_CNN && self->task == TY_BATCH_TASK_MULTI)
            return s_err (err, errlen, TY_EINVAL, "cnn is single-label; a train sample has "
                          "several labels");
        if (!has_labels)
            return s_err (err, errlen, TY_EINVAL, "no train sample has a label; model %s "
                          "classifies%s", ty_torch_kind_name (self->opts.kind),
                          self->opts.kind == TY_TORCH_MLP ? " (or set regression with targets)" : "");
        if (self->task == TY_BATCH_TASK_SINGLE && self->nlabels < 2)
            return s_err (err, errlen, TY_EINVAL, "%lld class(es) in the label map: a "
                          "single-label classifier needs at least 2", (long long) self->nlabels);
        if (self->nlabels < 1)
            return s_err (err, errlen, TY_EINVAL, "the dataset's label map is empty");
        break;
    }
    return TY_OK;
}

int
ty_batch_feat_fit (const ty_batch_opts_t *opts, ty_dataset_t *ds, ty_batch_feat_t **self_p,
                   char *err, size_t errlen)
{
    *self_p = NULL;
    if (err && errlen)
        *err = '\0';
    if (ty_dataset_count (ds, TY_SPLIT_TRAIN) == 0)
        return s_err (err, errlen, TY_EINVAL, "zero samples: dataset %s@%llu has no train samples",
                      ty_dataset_name (ds), (unsigned long long) ty_dataset_version (ds));
    ty_batch_feat_t *self = calloc (1, sizeof *self);
    if (!self)
        return s_err (err, errlen, TY_ENOMEM, "out of memory");
    self->opts = *opts;
    int rc = s_copy_labels (self, ds);
    if (rc != TY_OK) {
        ty_batch_feat_destroy (&self);
        return s_err (err, errlen, rc, "out of memory");
    }
    switch (opts->kind) {
    case TY_TORCH_TEXTCLF:
        self->input = TY_BATCH_INPUT_TOKENS;
        rc = ty_tok_opts_check (&opts->tok, err, errlen);
        if (rc == TY_OK && !(self->vocab = ty_vocab_new (&opts->tok)))
            rc = s_err (err, errlen, TY_ENOMEM, "out of memory");
        break;
    case TY_TORCH_MLP:
        if (opts->max_features < 1)
            rc = s_err (err, errlen, TY_EINVAL, "max_features must be >= 1");
        break;
    case TY_TORCH_CNN:
        self->input = TY_BATCH_INPUT_IMAGE;
        break;
    case TY_TORCH_NCF:
        self->input = TY_BATCH_INPUT_PAIRS;
        if (opts->negatives < 0)
            rc = s_err (err, errlen, TY_EINVAL, "negatives must be >= 0");
        break;
    default:
        rc = s_err (err, errlen, TY_EINVAL, "unknown model kind %d", (int) opts->kind);
    }
    /* mlp: dense or TF-IDF is decided by the first sample; the tfidf object
     * must exist before the pass counts documents. */
    if (rc == TY_OK && opts->kind == TY_TORCH_MLP) {
        ty_dataset_view_t view;
        Ty__Sample *s = NULL;
        rc = ty_dataset_get (ds, TY_SPLIT_TRAIN, 0, &view);
        if (rc == TY_OK)
            rc = ty_dataset_view_unpack (&view, &s);
        if (rc != TY_OK)
            s_err (err, errlen, rc, "cannot read train sample 0: %s", ty_strerror (rc));
        else if (!s->n_features) {
            if (ty_tok_opts_check (&opts->tok, err, errlen) != TY_OK)
                rc = TY_EINVAL;
            else if (!(self->tfidf = ty_tfidf_new (&opts->tok, opts->max_features)))
                rc = s_err (err, errlen, TY_ENOMEM, "cannot create the TF-IDF featurizer");
        }
        if (s)
            ty__sample__free_unpacked (s, NULL);
    }
    if (rc == TY_OK)
        rc = s_fit_pass (self, ds, err, errlen);
    if (rc == TY_OK && self->vocab) {
        rc = ty_vocab_finalize (self->vocab);
        for (size_t i = 0; rc == TY_OK && i < self->labels.n; i++)
            if (ty_vocab_label_require (self->vocab, self->labels.v [i]) < 0)
                rc = s_err (err, errlen, TY_EINVAL, "label %zu ('%s') cannot be stored", i,
                            self->labels.v [i]);
        if (rc == TY_OK && ty_vocab_nrows (self->vocab) < 1)
            rc = s_err (err, errlen, TY_EINVAL, "the vocabulary is empty (min_count too high?)");
        if (rc != TY_OK && err && !*err)
            s_err (err, errlen, rc, "vocabulary: %s", ty_strerror (rc));
    }
    if (rc == TY_OK && self->tfidf) {
        rc = ty_tfidf_finalize (self->tfidf);
        if (rc == TY_OK)
            self->dim = ty_tfidf_nfeatures (self->tfidf);
        if (rc == TY_OK && self->dim < 1)
            rc = s_err (err, errlen, TY_EINVAL, "TF-IDF: the train texts hold no word");
        if (rc != TY_OK && err && !*err)
            s_err (err, errlen, rc, "TF-IDF: %s", ty_strerror (rc));
    }
    if (rc != TY_OK) {
        ty_batch_feat_destroy (&self);
        return rc;
    }
    *self_p = self;
    return TY_OK;
}

int
ty_batch_feat_model_params (const ty_batch_feat_t *self, ty_torch_params_t *p)
{
    if (p->kind != self->opts.kind)
        return TY_EINVAL;
    switch (self->opts.kind) {
    case TY_TORCH_TEXTCLF:
        p->textclf.nrows = ty_vocab_nrows (self->vocab);
        p->textclf.nlabels = self->nlabels;
        p->textclf.multilabel = self->task == TY_BATCH_TASK_MULTI;
        break;
    case TY_TORCH_MLP:
        p->mlp.input_dim = self->dim;
        p->mlp.regression = self->task == TY_BATCH_TASK_REGRESSION;
        p->mlp.noutputs = ty_batch_feat_noutputs (self);
        break;
    case TY_TORCH_CNN:
        p->cnn.height = self->height;
        p->cnn.width = self->width;
        p->cnn.channels = self->channels;
        p->cnn.nclasses = self->nlabels;
        break;
    case TY_TORCH_NCF:
        p->ncf.nusers = (int64_t) self->users.n;
        p->ncf.nitems = (int64_t) self->items.n;
        break;
    }
    return TY_OK;
}

/* ---- save / load ------------------------------------------------------------ */

static int
s_write_atomic (const char *path, const char *text)
{
    char tmp [S_PATH_MAX];
    if ((size_t) snprintf (tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return ENAMETOOLONG;
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    size_t len = strlen (text), off = 0;
    while (off < len) {
        ssize_t w = write (fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close (fd);
            unlink (tmp);
            return e;
        }
        off += (size_t) w;
    }
    if (fsync (fd) != 0 || close (fd) != 0) {
        int e = errno;
        unlink (tmp);
        return e;
    }
    if (rename (tmp, path) != 0) {
        int e = errno;
        unlink (tmp);
        return e;
    }
    return TY_OK;
}

static cJSON *
s_strtab_json (const s_strtab_t *t)
{
    cJSON *a = cJSON_CreateArray ();
    for (size_t i = 0; a && i < t->n; i++) {
        cJSON *s = cJSON_CreateString (t->v [i]);
        if (!s || !cJSON_AddItemToArray (a, s)) {
            cJSON_Delete (s);
            cJSON_Delete (a);
            return NULL;
        }
    }
    return a;
}

static const char *s_input_names [] = { "tokens", "dense", "tfidf", "image", "pairs" };
static const char *s_task_names [] = { "single", "multi", "regression", "ranking" };

int
ty_batch_feat_save (const ty_batch_feat_t *self, const char *dir)
{
    char path [S_PATH_MAX];
    cJSON *o = cJSON_CreateObject ();
    int ok = o != NULL;
    ok = ok && cJSON_AddNumberToObject (o, "format", TY_BATCH_FORMAT_VERSION);
    ok = ok && cJSON_AddStringToObject (o, "kind", ty_torch_kind_name (self->opts.kind));
    ok = ok && cJSON_AddStringToObject (o, "input", s_input_names [self->input]);
    ok = ok && cJSON_AddStringToObject (o, "task", s_task_names [self->task]);
    cJSON *labels = ok ? s_strtab_json (&self->labels) : NULL;
    ok = ok && labels && cJSON_AddItemToObject (o, "labels", labels);
    if (!ok)
        cJSON_Delete (labels);
    const ty_tok_opts_t *t = &self->opts.tok;
    cJSON *tok = ok ? cJSON_AddObjectToObject (o, "tokenizer") : NULL;
    ok = ok && tok;
    ok = ok && cJSON_AddBoolToObject (tok, "lower", t->lower);
    ok = ok && cJSON_AddNumberToObject (tok, "punct", t->punct);
    ok = ok && cJSON_AddNumberToObject (tok, "word_ngrams", t->word_ngrams);
    ok = ok && cJSON_AddNumberToObject (tok, "minn", t->minn);
    ok = ok && cJSON_AddNumberToObject (tok, "maxn", t->maxn);
    ok = ok && cJSON_AddNumberToObject (tok, "bucket", (double) t->bucket);
    ok = ok && cJSON_AddBoolToObject (tok, "eos", t->eos);
    ok = ok && cJSON_AddNumberToObject (tok, "min_count", (double) t->min_count);
    ok = ok && cJSON_AddNumberToObject (o, "max_features", (double) self->opts.max_features);
    ok = ok && cJSON_AddNumberToObject (o, "negatives", self->opts.negatives);
    ok = ok && cJSON_AddNumberToObject (o, "dim", (double) self->dim);
    ok = ok && cJSON_AddNumberToObject (o, "height", (double) self->height);
    ok = ok && cJSON_AddNumberToObject (o, "width", (double) self->width);
    ok = ok && cJSON_AddNumberToObject (o, "channels", (double) self->channels);
    if (ok && self->input == TY_BATCH_INPUT_PAIRS) {
        cJSON *u = s_strtab_json (&self->users), *i = s_strtab_json (&self->items);
        if (!u || !cJSON_AddItemToObject (o, "users", u)) {
            cJSON_Delete (u);
            ok = 0;
        }
        if (!i || !ok || !cJSON_AddItemToObject (o, "items", i)) {
            cJSON_Delete (i);
            ok = 0;
        }
    }
    char *text = ok ? cJSON_Print (o) : NULL;
    cJSON_Delete (o);
    if (!text)
        return TY_ENOMEM;
    snprintf (path, sizeof path, "%s/%s", dir, S_FEAT_FILE);
    int rc = s_write_atomic (path, text);
    cJSON_free (text);
    if (rc != TY_OK)
        return rc;
    snprintf (path, sizeof path, "%s/%s", dir, S_VOCAB_FILE);
    if (self->vocab)
        rc = ty_vocab_save (self->vocab, path);
    else if (self->tfidf)
        rc = ty_tfidf_save (self->tfidf, path);
    return rc;
}

static int
s_name_index (const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (!strcmp (names [i], name))
            return (int) i;
    return -1;
}

static double
s_num (const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
    return cJSON_IsNumber (v) ? v->valuedouble : 0;
}

static int
s_strtab_from_json (s_strtab_t *t, const cJSON *a)
{
    const cJSON *e;
    cJSON_ArrayForEach (e, a) {
        if (!cJSON_IsString (e) || s_strtab_add (t, e->valuestring) != TY_OK)
            return TY_EPROTO;
    }
    return TY_OK;
}

int
ty_batch_feat_load (const char *dir, ty_batch_feat_t **self_p, char *err, size_t errlen)
{
    *self_p = NULL;
    char path [S_PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, S_FEAT_FILE);
    FILE *f = fopen (path, "rb");
    if (!f)
        return s_err (err, errlen, errno, "%s: %s", path, strerror (errno));
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream (&text, &len);
    char buf [8192];
    size_t r;
    while (mem && (r = fread (buf, 1, sizeof buf, f)) > 0)
        fwrite (buf, 1, r, mem);
    fclose (f);
    if (!mem || fclose (mem) != 0) {
        free (text);
        return s_err (err, errlen, TY_ENOMEM, "out of memory");
    }
    cJSON *o = cJSON_Parse (text);
    free (text);
    ty_batch_feat_t *self = calloc (1, sizeof *self);
    int rc = TY_OK;
    if (!self)
        rc = s_err (err, errlen, TY_ENOMEM, "out of memory");
    else if (!o || s_num (o, "format") != TY_BATCH_FORMAT_VERSION)
        rc = s_err (err, errlen, TY_EPROTO, "%s: not a featurizer file of format %d", path,
                    TY_BATCH_FORMAT_VERSION);
    if (rc == TY_OK) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive (o, "kind");
        const cJSON *input = cJSON_GetObjectItemCaseSensitive (o, "input");
        const cJSON *task = cJSON_GetObjectItemCaseSensitive (o, "task");
        ty_torch_kind_t k;
        int in = s_name_index (s_input_names, 5, cJSON_GetStringValue (input));
        int ta = s_name_index (s_task_names, 4, cJSON_GetStringValue (task));
        if (!cJSON_IsString (kind) || ty_torch_kind_parse (kind->valuestring, &k) != TY_OK
        ||  in < 0 || ta < 0)
            rc = s_err (err, errlen, TY_EPROTO, "%s: bad kind, input or task", path);
        else {
            ty_batch_opts_init (&self->opts, k);
            self->input = (ty_batch_input_t) in;
            self->task = (ty_batch_task_t) ta;
        }
    }
    if (rc == TY_OK) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive (o, "tokenizer");
        ty_tok_opts_t *t = &self->opts.tok;
        t->lower = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (tok, "lower"));
        t->punct = (ty_tok_punct_t) s_num (tok, "punct");
        t->word_ngrams = (int) s_num (tok, "word_ngrams");
        t->minn = (int) s_num (tok, "minn");
        t->maxn = (int) s_num (tok, "maxn");
        t->bucket = (int64_t) s_num (tok, "bucket");
        t->eos = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (tok, "eos"));
        t->min_count = (int64_t) s_num (tok, "min_count");
        self->opts.max_features = (int64_t) s_num (o, "max_features");
        self->opts.negatives = (int) s_num (o, "negatives");
        self->dim = (int64_t) s_num (o, "dim");
        self->height = (int64_t) s_num (o, "height");
        self->width = (int64_t) s_num (o, "width");
        self->channels = (int64_t) s_num (o, "channels");
        if (s_strtab_from_json (&self->labels, cJSON_GetObjectItemCaseSensitive (o, "labels")) != TY_OK
        ||  s_strtab_from_json (&self->users, cJSON_GetObjectItemCaseSensitive (o, "users")) != TY_OK
        ||  s_strtab_from_json (&self->items, cJSON_GetObjectItemCaseSensitive (o, "items")) != TY_OK)
            rc = s_err (err, errlen, TY_EPROTO, "%s: bad label, user or item list", path);
        self->nlabels = (int64_t) self->labels.n;
    }
    snprintf (path, sizeof path, "%s/%s", dir, S_VOCAB_FILE);
    if (rc == TY_OK && self->input == TY_BATCH_INPUT_TOKENS
    &&  (rc = ty_vocab_load (path, &self->vocab)) != TY_OK)
        s_err (err, errlen, rc, "%s: %s", path, ty_strerror (rc));
    if (rc == TY_OK && self->input == TY_BATCH_INPUT_TFIDF) {
        if ((rc = ty_tfidf_load (path, &self->tfidf)) != TY_OK)
            s_err (err, errlen, rc, "%s: %s", path, ty_strerror (rc));
        else
            self->dim = ty_tfidf_nfeatures (self->tfidf);
    }
    cJSON_Delete (o);
    if (rc != TY_OK) {
        ty_batch_feat_destroy (&self);
        return rc;
    }
    *self_p = self;
    return TY_OK;
}

/* =========================================================================
 *  encoded sets
 * ========================================================================= */

struct _ty_batch_set_t {
    const ty_batch_feat_t *feat;
    size_t   n, cap;                 /* samples */
    uint64_t skipped;
    uint64_t folded_out;             /* left out by the fold selection */
    /* per sample: offsets into the variable-length pools (n + 1 entries) */
    int64_t *off;      size_t off_cap;
    /* TOKENS: ids; TFIDF: sparse idx + val; MULTI labels: lab pool */
    int64_t *ids;      size_t nids, ids_cap;
    int32_t *sp_idx;   size_t nsp, sp_idx_cap;
    float   *sp_val;   size_t sp_val_cap;
    int64_t *loff;     size_t loff_cap;     /* multi-label offsets (n + 1) */
    int64_t *lab;      size_t nlab, lab_cap;
    float   *dense;    size_t ndense, dense_cap;   /* DENSE: n x dim */
    uint8_t *pix;      size_t npix, pix_cap;       /* IMAGE: n x h*w*c */
    int64_t *label;    size_t label_cap;           /* SINGLE */
    float   *target;   size_t target_cap;          /* REGRESSION */
    int64_t *user, *item;  size_t user_cap, item_cap;  /* PAIRS */
    float   *weight;   size_t weight_cap;
    /* gather buffers */
    struct {
        int64_t *ids, *offsets, *labels, *users, *items;
        float   *x, *targets, *weights;
        size_t  ids_cap, offsets_cap, labels_cap, users_cap, items_cap, x_cap, targets_cap,
                weights_cap;
    } g;
    float   *scratch;                 /* TFIDF transform row */
};

void
ty_batch_set_destroy (ty_batch_set_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_batch_set_t *s = *self_p;
    free (s->off); free (s->ids); free (s->sp_idx); free (s->sp_val); free (s->loff);
    free (s->lab); free (s->dense); free (s->pix); free (s->label); free (s->target);
    free (s->user); free (s->item); free (s->weight);
    free (s->g.ids); free (s->g.offsets); free (s->g.labels); free (s->g.users);
    free (s->g.items); free (s->g.x); free (s->g.targets); free (s->g.weights);
    free (s->scratch);
    free (s);
    *self_p = NULL;
}

size_t   ty_batch_set_count (const ty_batch_set_t *self)   { return self->n; }
uint64_t ty_batch_set_skipped (const ty_batch_set_t *self) { return self->skipped; }
uint64_t ty_batch_set_folded_out (const ty_batch_set_t *self) { return self->folded_out; }
uint64_t ty_batch_set_tokens (const ty_batch_set_t *self)  { return self->nids; }

size_t
ty_batch_set_bytes (const ty_batch_set_t *s)
{
    return s->off_cap * 8 + s->ids_cap * 8 + s->sp_idx_cap * 4 + s->sp_val_cap * 4
         + s->loff_cap * 8 + s->lab_cap * 8 + s->dense_cap * 4 + s->pix_cap
         + s->label_cap * 8 + s->target_cap * 4 + s->user_cap * 8 + s->item_cap * 8
         + s->weight_cap * 4
         + (s->g.ids_cap + s->g.offsets_cap + s->g.labels_cap + s->g.users_cap
            + s->g.items_cap) * 8 + (s->g.x_cap + s->g.targets_cap + s->g.weights_cap) * 4;
}

int64_t
ty_batch_set_label (const ty_batch_set_t *self, size_t i)
{
    return self->label && i < self->n ? self->label [i] : -1;
}

const int64_t *
ty_batch_set_labels (const ty_batch_set_t *self, size_t i, size_t *n)
{
    if (!self->loff || i >= self->n) {
        *n = 0;
        return NULL;
    }
    *n = (size_t) (self->loff [i + 1] - self->loff [i]);
    return self->lab + self->loff [i];
}

float
ty_batch_set_target (const ty_batch_set_t *self, size_t i)
{
    return self->target && i < self->n ? self->target [i] : 0.0f;
}

void
ty_batch_set_pair (const ty_batch_set_t *self, size_t i, int64_t *user, int64_t *item)
{
    *user = self->user && i < self->n ? self->user [i] : -1;
    *item = self->item && i < self->n ? self->item [i] : -1;
}

/* Appends one decoded sample. TY_OK, TY_ENOTFOUND (skip it), or an error. */
static int
s_set_add (ty_batch_set_t *self, const Ty__Sample *s, ty_split_t split, uint64_t index,
           ty_idbuf_t *idbuf, char *err, size_t errlen)
{
    const ty_batch_feat_t *f = self->feat;
    size_t i = self->n;
    /* labels first: an unknown label skips the sample */
    int64_t label = -1;
    size_t lab_mark = self->nlab;
    if (f->task == TY_BATCH_TASK_SINGLE) {
        if (s->n_labels < 1)
            return TY_ENOTFOUND;
        label = s_label_id (f, s->labels [0]);
        if (label < 0)
            return TY_ENOTFOUND;
    }
    else if (f->task == TY_BATCH_TASK_MULTI) {
        for (size_t l = 0; l < s->n_labels; l++) {
            int64_t id = s_label_id (f, s->labels [l]);
            if (id < 0)
                continue;
            if (S_PUSH (self->lab, self->nlab, self->lab_cap, id) != TY_OK)
                return TY_ENOMEM;
        }
        if (self->nlab == lab_mark)
            return TY_ENOTFOUND;
    }
    float target = 0;
    if (f->task == TY_BATCH_TASK_REGRESSION) {
        if (s->has_target)
            target = (float) s->target;
        else if (s->annotation)
            target = (float) s->annotation->rating;
        else
            return TY_ENOTFOUND;
        if (!isfinite (target))
            return s_err (err, errlen, TY_EINVAL, "NaN/inf target in %s sample %llu",
                          ty_split_name (split), (unsigned long long) index);
    }
    int64_t user = -1, item = -1;
    switch (f->input) {
    case TY_BATCH_INPUT_TOKENS:
        if (ty_vocab_encode (f->vocab, s->text ? s->text : "", s->text ? strlen (s->text) : 0,
                             idbuf) != TY_OK)
            return TY_ENOMEM;
        break;
    case TY_BATCH_INPUT_TFIDF: {
        if (ty_tfidf_transform (f->tfidf, s->text ? s->text : "",
                                s->text ? strlen (s->text) : 0, self->scratch,
                                (size_t) f->dim) != TY_OK)
            return TY_ENOMEM;
        for (int64_t d = 0; d < f->dim; d++) {
            if (self->scratch [d] == 0.0f)
                continue;
            size_t k = self->nsp;
            if (S_PUSH (self->sp_idx, self->nsp, self->sp_idx_cap, (int32_t) d) != TY_OK)
                return TY_ENOMEM;
            self->nsp = k;
            if (S_PUSH (self->sp_val, self->nsp, self->sp_val_cap, self->scratch [d]) != TY_OK)
                return TY_ENOMEM;
        }
        break;
    }
    case TY_BATCH_INPUT_DENSE:
        if ((int64_t) s->n_features != f->dim)
            return s_err (err, errlen, TY_EINVAL, "%s sample %llu has %zu features, the model "
                          "takes %lld", ty_split_name (split), (unsigned long long) index,
                          s->n_features, (long long) f->dim);
        if (s_reserve ((void **) &self->dense, &self->dense_cap, self->ndense + (size_t) f->dim,
                       sizeof *self->dense) != TY_OK)
            return TY_ENOMEM;
        for (size_t d = 0; d < s->n_features; d++) {
            if (!isfinite (s->features [d]))
                return s_err (err, errlen, TY_EINVAL, "NaN/inf feature: %s sample %llu, "
                              "feature %zu is %g", ty_split_name (split),
                              (unsigned long long) index, d, (double) s->features [d]);
            self->dense [self->ndense++] = s->features [d];
        }
        break;
    case TY_BATCH_INPUT_IMAGE: {
        size_t bytes = (size_t) (f->height * f->width * f->channels);
        if (!s->image || s->image->pixels.len != bytes
        ||  (int64_t) s->image->height != f->height || (int64_t) s->image->width != f->width)
            return s_err (err, errlen, TY_EINVAL, "%s sample %llu is not a %lldx%lldx%lld image",
                          ty_split_name (split), (unsigned long long) index,
                          (long long) f->height, (long long) f->width, (long long) f->channels);
        if (s_reserve ((void **) &self->pix, &self->pix_cap, self->npix + bytes, 1) != TY_OK)
            return TY_ENOMEM;
        memcpy (self->pix + self->npix, s->image->pixels.data, bytes);
        self->npix += bytes;
        break;
    }
    case TY_BATCH_INPUT_PAIRS:
        if (!s->interaction || !s->interaction->user || !s->interaction->item)
            return s_err (err, errlen, TY_EINVAL, "%s sample %llu is not an interaction",
                          ty_split_name (split), (unsigned long long) index);
        user = s_strtab_find (&f->users, s->interaction->user);
        item = s_strtab_find (&f->items, s->interaction->item);
        if (user < 0 || item < 0)
            return TY_ENOTFOUND;
        break;
    }
    /* fixed-size columns */
    if (s_reserve ((void **) &self->weight, &self->weight_cap, i + 1, sizeof (float)) != TY_OK)
        return TY_ENOMEM;
    /* proto3: weight 0 is "not set"; importers write 1 */
    self->weight [i] = s->weight > 0 && isfinite (s->weight) ? s->weight : 1.0f;
    if (f->task == TY_BATCH_TASK_SINGLE) {
        if (s_reserve ((void **) &self->label, &self->label_cap, i + 1, sizeof (int64_t)) != TY_OK)
            return TY_ENOMEM;
        self->label [i] = label;
    }
    if (f->task == TY_BATCH_TASK_REGRESSION) {
        if (s_reserve ((void **) &self->target, &self->target_cap, i + 1, sizeof (float)) != TY_OK)
            return TY_ENOMEM;
        self->target [i] = target;
    }
    if (f->task == TY_BATCH_TASK_MULTI) {
        if (s_reserve ((void **) &self->loff, &self->loff_cap, i + 2, sizeof (int64_t)) != TY_OK)
            return TY_ENOMEM;
        self->loff [i + 1] = (int64_t) self->nlab;
    }
    if (f->input == TY_BATCH_INPUT_PAIRS) {
        if (s_reserve ((void **) &self->user, &self->user_cap, i + 1, sizeof (int64_t)) != TY_OK
        ||  s_reserve ((void **) &self->item, &self->item_cap, i + 1, sizeof (int64_t)) != TY_OK)
            return TY_ENOMEM;
        self->user [i] = user;
        self->item [i] = item;
    }
    if (s_reserve ((void **) &self->off, &self->off_cap, i + 2, sizeof (int64_t)) != TY_OK)
        return TY_ENOMEM;
    self->off [i + 1] = f->input == TY_BATCH_INPUT_TOKENS ? (int64_t) idbuf->n
                      : f->input == TY_BATCH_INPUT_TFIDF ? (int64_t) self->nsp : 0;
    self->n++;
    return TY_OK;
}

int
ty_batch_set_new (const ty_batch_feat_t *feat, ty_dataset_t *ds, ty_split_t split,
                  size_t max_bytes, ty_batch_set_t **self_p, char *err, size_t errlen)
{
    return ty_batch_set_new_folds (feat, ds, split, NULL, max_bytes, self_p, err, errlen);
}

int
ty_batch_set_new_folds (const ty_batch_feat_t *feat, ty_dataset_t *ds, ty_split_t split,
                        const ty_batch_folds_t *folds, size_t max_bytes,
                        ty_batch_set_t **self_p, char *err, size_t errlen)
{
    /* NULL and ALL are one case: the loop then never looks at a fold */
    if (folds && folds->mode == TY_BATCH_FOLDS_ALL)
        folds = NULL;
    *self_p = NULL;
    if (err && errlen)
        *err = '\0';
    ty_batch_set_t *self = calloc (1, sizeof *self);
    if (!self)
        return s_err (err, errlen, TY_ENOMEM, "out of memory");
    self->feat = feat;
    int rc = TY_OK;
    if (feat->input == TY_BATCH_INPUT_TFIDF
    &&  !(self->scratch = calloc ((size_t) feat->dim, sizeof (float))))
        rc = TY_ENOMEM;
    if (rc == TY_OK
    &&  (s_reserve ((void **) &self->off, &self->off_cap, 1, sizeof (int64_t)) != TY_OK
         || (feat->task == TY_BATCH_TASK_MULTI
             && s_reserve ((void **) &self->loff, &self->loff_cap, 1, sizeof (int64_t)) != TY_OK)))
        rc = TY_ENOMEM;
    if (rc != TY_OK) {
        ty_batch_set_destroy (&self);
        return s_err (err, errlen, rc, "out of memory");
    }
    self->off [0] = 0;
    if (self->loff)
        self->loff [0] = 0;
    /* token ids go straight into the pool, bags back to back */
    ty_idbuf_t idbuf;
    ty_idbuf_init (&idbuf);
    ty_dataset_iter_t *it = NULL;
    rc = ty_dataset_iter_new (ds, split, false, 0, &it);
    if (rc != TY_OK)
        s_err (err, errlen, rc, "cannot read the %s split: %s", ty_split_name (split),
               ty_strerror (rc));
    ty_dataset_view_t views [S_READ_CHUNK];
    size_t n;
    while (rc == TY_OK && (rc = ty_dataset_iter_next (it, views, S_READ_CHUNK, &n)) == TY_OK
           && n > 0) {
        for (size_t v = 0; v < n && rc == TY_OK; v++) {
            Ty__Sample *s = NULL;
            rc = ty_dataset_view_unpack (&views [v], &s);
            if (rc != TY_OK) {
                s_err (err, errlen, rc, "%s sample %llu does not decode", ty_split_name (split),
                       (unsigned long long) views [v].index);
                break;
            }
            if (folds && !s_fold_keep (folds, s->fold)) {
                ty__sample__free_unpacked (s, NULL);
                self->folded_out++;
                continue;
            }
            rc = s_set_add (self, s, split, views [v].index, &idbuf, err, errlen);
            ty__sample__free_unpacked (s, NULL);
            if (rc == TY_ENOTFOUND) {
                self->skipped++;
                rc = TY_OK;
            }
        }
        if (rc == TY_OK && max_bytes && ty_batch_set_bytes (self) + idbuf.cap * 8 > max_bytes)
            rc = s_err (err, errlen, TY_EFULL, "the encoded %s split needs more than %zu MB",
                        ty_split_name (split), max_bytes >> 20);
    }
    ty_dataset_iter_destroy (&it);
    /* the set keeps the id pool */
    self->ids = idbuf.ids;
    self->nids = idbuf.n;
    self->ids_cap = idbuf.cap;
    if (rc != TY_OK) {
        if (err && !*err)
            s_err (err, errlen, rc, "encoding the %s split: %s", ty_split_name (split),
                   ty_strerror (rc));
        ty_batch_set_destroy (&self);
        return rc;
    }
    *self_p = self;
    return TY_OK;
}

int
ty_batch_set_gather (ty_batch_set_t *self, const uint64_t *idx, size_t n, uint64_t *rng,
                     ty_torch_batch_t *b)
{
    const ty_batch_feat_t *f = self->feat;
    memset (b, 0, sizeof *b);
    for (size_t k = 0; k < n; k++)
        if (idx [k] >= self->n)
            return TY_EINVAL;
#define S_G(field, count) \
    if (s_reserve ((void **) &self->g.field, &self->g.field##_cap, (count), \
                   sizeof *self->g.field) != TY_OK) return TY_ENOMEM
    S_G (weights, n);
    for (size_t k = 0; k < n; k++)
        self->g.weights [k] = self->weight [idx [k]];
    b->n = (int64_t) n;
    b->weights = self->g.weights;
    switch (f->task) {
    case TY_BATCH_TASK_SINGLE:
        S_G (labels, n);
        for (size_t k = 0; k < n; k++)
            self->g.labels [k] = self->label [idx [k]];
        b->labels = self->g.labels;
        break;
    case TY_BATCH_TASK_MULTI:
        S_G (targets, n * (size_t) f->nlabels);
        memset (self->g.targets, 0, n * (size_t) f->nlabels * sizeof (float));
        for (size_t k = 0; k < n; k++)
            for (int64_t l = self->loff [idx [k]]; l < self->loff [idx [k] + 1]; l++)
                self->g.targets [k * (size_t) f->nlabels + (size_t) self->lab [l]] = 1.0f;
        b->targets = self->g.targets;
        break;
    case TY_BATCH_TASK_REGRESSION:
        S_G (targets, n);
        for (size_t k = 0; k < n; k++)
            self->g.targets [k] = self->target [idx [k]];
        b->targets = self->g.targets;
        break;
    case TY_BATCH_TASK_RANKING:
        break;
    }
    switch (f->input) {
    case TY_BATCH_INPUT_TOKENS: {
        size_t total = 0;
        for (size_t k = 0; k < n; k++)
            total += (size_t) (self->off [idx [k] + 1] - self->off [idx [k]]);
        S_G (ids, total ? total : 1);
        S_G (offsets, n);
        size_t w = 0;
        for (size_t k = 0; k < n; k++) {
            int64_t a = self->off [idx [k]], e = self->off [idx [k] + 1];
            self->g.offsets [k] = (int64_t) w;
            memcpy (self->g.ids + w, self->ids + a, (size_t) (e - a) * sizeof (int64_t));
            w += (size_t) (e - a);
        }
        b->ids = self->g.ids;
        b->nids = (int64_t) w;
        b->offsets = self->g.offsets;
        break;
    }
    case TY_BATCH_INPUT_TFIDF:
    case TY_BATCH_INPUT_DENSE: {
        size_t d = (size_t) f->dim;
        S_G (x, n * d);
        if (f->input == TY_BATCH_INPUT_DENSE)
            for (size_t k = 0; k < n; k++)
                memcpy (self->g.x + k * d, self->dense + idx [k] * d, d * sizeof (float));
        else {
            memset (self->g.x, 0, n * d * sizeof (float));
            for (size_t k = 0; k < n; k++)
                for (int64_t j = self->off [idx [k]]; j < self->off [idx [k] + 1]; j++)
                    self->g.x [k * d + (size_t) self->sp_idx [j]] = self->sp_val [j];
        }
        b->x = self->g.x;
        break;
    }
    case TY_BATCH_INPUT_IMAGE: {
        /* HWC bytes -> NCHW floats in [0, 1] */
        size_t h = (size_t) f->height, w = (size_t) f->width, c = (size_t) f->channels;
        size_t per = h * w * c;
        S_G (x, n * per);
        for (size_t k = 0; k < n; k++) {
            const uint8_t *src = self->pix + idx [k] * per;
            float *dst = self->g.x + k * per;
            for (size_t y = 0; y < h; y++)
                for (size_t xx = 0; xx < w; xx++)
                    for (size_t ch = 0; ch < c; ch++)
                        dst [ch * h * w + y * w + xx] = src [(y * w + xx) * c + ch] / 255.0f;
        }
        b->x = self->g.x;
        break;
    }
    case TY_BATCH_INPUT_PAIRS: {
        int ratio = rng ? f->opts.negatives : 0;
        size_t out = n * (size_t) (1 + ratio);
        S_G (users, out > n ? out : n);
        S_G (items, out > n ? out : n);
        S_G (targets, out);
        S_G (labels, n);
        /* positives gathered into labels/x scratch: reuse labels as user
         * list and offsets as item list (both int64, n entries) */
        S_G (offsets, n);
        for (size_t k = 0; k < n; k++) {
            self->g.labels [k] = self->user [idx [k]];
            self->g.offsets [k] = self->item [idx [k]];
        }
        if (ratio > 0 && f->neg) {
            int64_t nout = 0;
            int rc = ty_negsample_fill (f->neg, self->g.labels, self->g.offsets, (int64_t) n,
                                        ratio, rng, self->g.users, self->g.items,
                                        self->g.targets, out, &nout);
            if (rc != TY_OK)
                return rc;
            b->n = nout;
        }
        else {
            for (size_t k = 0; k < n; k++) {
                self->g.users [k] = self->g.labels [k];
                self->g.items [k] = self->g.offsets [k];
                self->g.targets [k] = 1.0f;
            }
        }
        /* negatives carry weight 1: sample weights are per positive */
        S_G (weights, (size_t) b->n);
        for (int64_t k = 0; k < b->n; k++)
            self->g.weights [k] = 1.0f;
        b->weights = self->g.weights;
        b->users = self->g.users;
        b->items = self->g.items;
        b->targets = self->g.targets;
        b->labels = NULL;
        break;
    }
    }
#undef S_G
    return TY_OK;
}

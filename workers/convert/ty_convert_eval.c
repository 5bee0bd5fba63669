/*  ty_convert_eval: a converted portable model against the FP32 one, both
 *  through libtrainyard-infer, on the test split of a dataset.
 *
 *  Why the C runtime on both sides rather than libtorch for FP32: what a
 *  device runs is the .tym file; comparing two files with the same code
 *  isolates what the conversion changed (weights' precision, pruned rows)
 *  from any difference between libtorch and the runtime (those are equal
 *  within 1e-5 by the runtime's own tests).
 *
 *  Inputs come straight from the samples, as a device would see them: the
 *  text, the dense features, the image bytes. ncf models take model
 *  indexes, so its pairs are mapped through the featurizer (feat.json) of
 *  the model version.
 */
#include "ty_convert.h"

#include "ty_batch.h"
#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_infer.h"
#include "ty_latency.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ITER_BATCH       256     /* views read from LMDB at once */
#define S_CANCEL_EVERY     256     /* predictions between cancellation checks */
#define S_VALUE_AGREE      0.01    /* regression / ncf: outputs this close agree */
#define S_NCF_THRESHOLD    0.5     /* ncf: a test positive is a hit at this score */

typedef struct {
    const ty_convert_hooks_t *hooks;
    ty_infer_model_t *base, *conv;
    ty_infer_kind_t   kind;
    int               otype;        /* 1 sigmoid, 0 softmax, -1 regression */
    size_t            width;        /* outputs per prediction */
    size_t            in_width;     /* mlp/cnn floats in */
    Ty__Sample      **samples;      /* textclf, mlp, cnn */
    int64_t          *users, *items;/* ncf, model index space */
    size_t            n, cap, skipped;
    float            *out_a, *out_b;
    ty_infer_model_t *timed;        /* the model the latency callback runs */
    char             *err;
    size_t            errlen;
} s_eval_t;

static int
s_fail (s_eval_t *e, int rc, const char *fmt, ...)
{
    if (e->err && e->errlen) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (e->err, e->errlen, fmt, ap);
        va_end (ap);
    }
    return rc;
}

static int
s_cancelled (const s_eval_t *e)
{
    return e->hooks && e->hooks->cancelled && e->hooks->cancelled (e->hooks->arg);
}

/* One prediction of input i with model into out (width floats). */
static int
s_predict (s_eval_t *e, const ty_infer_model_t *model, size_t i, float *out)
{
    if (e->kind == TY_INFER_NCF)
        return ty_infer_predict_pair (model, e->users [i], e->items [i], out);
    const Ty__Sample *s = e->samples [i];
    switch (e->kind) {
    case TY_INFER_TEXTCLF:
        return ty_infer_predict_text (model, s->text, strlen (s->text), out, e->width);
    case TY_INFER_MLP:
        return ty_infer_predict_features (model, s->features, s->n_features, out, e->width);
    case TY_INFER_CNN:
        return ty_infer_predict_image (model, s->image->pixels.data, s->image->pixels.len,
                                       out, e->width);
    default:
        return TY_EINVAL;
    }
}

/* Can this sample be fed to the model and scored? */
static int
s_usable (const s_eval_t *e, const Ty__Sample *s)
{
    if (e->otype < 0 ? !s->has_target : s->n_labels == 0)
        return 0;
    switch (e->kind) {
    case TY_INFER_TEXTCLF:
        return s->text != NULL;
    case TY_INFER_MLP:
        return s->n_features == e->in_width;
    case TY_INFER_CNN: {
        size_t h, w, c;
        ty_infer_image_shape (e->base, &h, &w, &c);
        return s->image && s->image->height == h && s->image->width == w
               && s->image->channels == c && s->image->pixels.len == h * w * c;
    }
    default:
        return 0;
    }
}

static int
s_keep (s_eval_t *e, Ty__Sample *s)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 256;
        Ty__Sample **bigger = realloc (e->samples, cap * sizeof *bigger);
        if (!bigger)
            return TY_ENOMEM;
        e->samples = bigger;
        e->cap = cap;
    }
    e->samples [e->n++] = s;
    return TY_OK;
}

/* textclf, mlp, cnn: the samples themselves. */
static int
s_load_samples (s_eval_t *e, ty_dataset_t *ds)
{
    ty_dataset_iter_t *it = NULL;
    int rc = ty_dataset_iter_new (ds, TY_SPLIT_TEST, false, 0, &it);
    if (rc != TY_OK)
        return s_fail (e, rc, "cannot read the test split: %s", ty_strerror (rc));
    ty_dataset_view_t views [S_ITER_BATCH];
    size_t got = 0;
    while (e->n < TY_CONVERT_EVAL_MAX_SAMPLES
           && (rc = ty_dataset_iter_next (it, views, S_ITER_BATCH, &got)) == TY_OK && got > 0) {
        for (size_t i = 0; i < got && e->n < TY_CONVERT_EVAL_MAX_SAMPLES; i++) {
            Ty__Sample *s = NULL;
            if (ty_dataset_view_unpack (&views [i], &s) != TY_OK) {
                e->skipped++;
                continue;
            }
            if (!s_usable (e, s)) {
                e->skipped++;
                ty__sample__free_unpacked (s, NULL);
                continue;
            }
            if ((rc = s_keep (e, s)) != TY_OK) {
                ty__sample__free_unpacked (s, NULL);
                break;
            }
        }
        if (rc != TY_OK)
            break;
    }
    ty_dataset_iter_destroy (&it);
    if (rc != TY_OK)
        return s_fail (e, rc, "reading the test split: %s", ty_strerror (rc));
    return TY_OK;
}

/* ncf: the test positives as model indexes, through the version's featurizer. */
static int
s_load_pairs (s_eval_t *e, ty_dataset_t *ds, const char *model_dir)
{
    ty_batch_feat_t *feat = NULL;
    ty_batch_set_t *set = NULL;
    char msg [256] = "";
    int rc = ty_batch_feat_load (model_dir, &feat, msg, sizeof msg);
    if (rc != TY_OK)
        return s_fail (e, rc, "feat.json of %s: %s", model_dir, msg);
    rc = ty_batch_set_new (feat, ds, TY_SPLIT_TEST, 0, &set, msg, sizeof msg);
    if (rc != TY_OK) {
        ty_batch_feat_destroy (&feat);
        return s_fail (e, rc, "encoding the test split: %s", msg);
    }
    size_t n = ty_batch_set_count (set);
    if (n > TY_CONVERT_EVAL_MAX_SAMPLES)
        n = TY_CONVERT_EVAL_MAX_SAMPLES;
    e->skipped = (size_t) ty_batch_set_skipped (set);
    e->users = malloc ((n ? n : 1) * sizeof *e->users);
    e->items = malloc ((n ? n : 1) * sizeof *e->items);
    if (!e->users || !e->items)
        rc = s_fail (e, TY_ENOMEM, "out of memory");
    int64_t nusers = 0, nitems = 0;
    ty_infer_pair_range (e->base, &nusers, &nitems);
    for (size_t i = 0; rc == TY_OK && i < n; i++) {
        int64_t u, it;
        ty_batch_set_pair (set, i, &u, &it);
        if (u < 0 || u >= nusers || it < 0 || it >= nitems) {
            e->skipped++;
            continue;
        }
        e->users [e->n] = u;
        e->items [e->n] = it;
        e->n++;
    }
    ty_batch_set_destroy (&set);
    ty_batch_feat_destroy (&feat);
    return rc;
}

static size_t
s_argmax (const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v [i] > v [best])
            best = i;
    return best;
}

/* Is class index k one of the sample's labels? */
static int
s_has_label (const s_eval_t *e, const Ty__Sample *s, size_t k)
{
    const char *name = ty_infer_label (e->base, k);
    if (!name)
        return 0;
    for (size_t j = 0; j < s->n_labels; j++)
        if (s->labels [j] && !strcmp (s->labels [j], name))
            return 1;
    return 0;
}

static int
s_latency_cb (void *arg, size_t first, size_t n)
{
    s_eval_t *e = arg;
    for (size_t i = 0; i < n; i++) {
        int rc = s_predict (e, e->timed, (first + i) % e->n, e->out_a);
        if (rc != TY_OK)
            return rc;
    }
    return TY_OK;
}

static int
s_latency (s_eval_t *e, ty_infer_model_t *model, size_t samples, double *p50, double *p99)
{
    ty_latency_opts_t lo;
    ty_latency_opts_init (&lo);
    lo.warmup = TY_CONVERT_LATENCY_WARMUP;
    lo.samples = samples;
    lo.pool = e->n;
    e->timed = model;
    ty_latency_bench_t b;
    int rc = ty_latency_run (&lo, s_latency_cb, e, &b);
    if (rc != TY_OK)
        return s_fail (e, rc, "latency benchmark: %s", ty_strerror (rc));
    *p50 = b.single.p50_ms;
    *p99 = b.single.p99_ms;
    return TY_OK;
}

/* Predicts every input with both models and scores them. */
static int
s_compare (s_eval_t *e, ty_convert_eval_t *out)
{
    size_t correct_a = 0, correct_b = 0, agree = 0;
    double abs_a = 0, abs_b = 0, max_diff = 0;
    for (size_t i = 0; i < e->n; i++) {
        if (i % S_CANCEL_EVERY == 0 && s_cancelled (e))
            return ECANCELED;
        int rc = s_predict (e, e->base, i, e->out_a);
        if (rc == TY_OK)
            rc = s_predict (e, e->conv, i, e->out_b);
        if (rc != TY_OK)
            return s_fail (e, rc, "prediction of test sample %zu: %s", i, ty_infer_strerror (rc));
        double row_max = 0;
        for (size_t k = 0; k < e->width; k++) {
            double d = fabs ((double) e->out_a [k] - (double) e->out_b [k]);
            if (d > row_max)
                row_max = d;
        }
        if (row_max > max_diff)
            max_diff = row_max;
        if (e->kind == TY_INFER_NCF) {
            int hit_a = e->out_a [0] >= S_NCF_THRESHOLD, hit_b = e->out_b [0] >= S_NCF_THRESHOLD;
            correct_a += (size_t) hit_a;
            correct_b += (size_t) hit_b;
            agree += hit_a == hit_b;
        }
        else if (e->otype < 0) {
            abs_a += fabs ((double) e->out_a [0] - e->samples [i]->target);
            abs_b += fabs ((double) e->out_b [0] - e->samples [i]->target);
            agree += row_max < S_VALUE_AGREE;
        }
        else {
            size_t ka = s_argmax (e->out_a, e->width), kb = s_argmax (e->out_b, e->width);
            correct_a += (size_t) s_has_label (e, e->samples [i], ka);
            correct_b += (size_t) s_has_label (e, e->samples [i], kb);
            agree += ka == kb;
        }
    }
    double n = (double) e->n;
    out->agreement = agree / n;
    out->max_abs_diff = max_diff;
    if (e->kind != TY_INFER_NCF && e->otype < 0) {
        out->mae_base = abs_a / n;
        out->mae_conv = abs_b / n;
        snprintf (out->metric, sizeof out->metric, "mae");
    }
    else {
        out->accuracy_base = correct_a / n;
        out->accuracy_conv = correct_b / n;
        snprintf (out->metric, sizeof out->metric, "%s",
                  e->kind == TY_INFER_NCF ? "hit@0.5" : "accuracy");
    }
    return TY_OK;
}

static void
s_eval_free (s_eval_t *e)
{
    for (size_t i = 0; i < e->n && e->samples; i++)
        ty__sample__free_unpacked (e->samples [i], NULL);
    free (e->samples);
    free (e->users);
    free (e->items);
    free (e->out_a);
    free (e->out_b);
    ty_infer_close (&e->base);
    ty_infer_close (&e->conv);
}

/* Both files open and of the same shape. */
static int
s_open_models (s_eval_t *e, const char *base_path, const char *conv_path)
{
    char msg [TY_INFER_ERR_LEN] = "";
    int rc = ty_infer_open (base_path, &e->base, msg, sizeof msg);
    if (rc != TY_INFER_OK)
        return s_fail (e, rc == ENOENT ? TY_ENOTFOUND : rc, "%s: %s", base_path, msg);
    rc = ty_infer_open (conv_path, &e->conv, msg, sizeof msg);
    if (rc != TY_INFER_OK)
        return s_fail (e, rc == ENOENT ? TY_ENOTFOUND : rc, "%s: %s", conv_path, msg);
    e->kind = ty_infer_kind (e->base);
    e->otype = ty_infer_output_type (e->base);
    e->width = ty_infer_output_width (e->base);
    e->in_width = ty_infer_input_width (e->base);
    if (ty_infer_kind (e->conv) != e->kind || ty_infer_output_width (e->conv) != e->width
        || ty_infer_input_width (e->conv) != e->in_width)
        return s_fail (e, TY_EINVAL, "%s and %s are not the same model (kind or shape differs)",
                       base_path, conv_path);
    e->out_a = calloc (e->width ? e->width : 1, sizeof *e->out_a);
    e->out_b = calloc (e->width ? e->width : 1, sizeof *e->out_b);
    if (!e->out_a || !e->out_b)
        return s_fail (e, TY_ENOMEM, "out of memory");
    return TY_OK;
}

int
ty_convert_eval (const char *data_dir, const char *dataset_spec, const char *model_dir,
                 const char *base_path, const char *conv_path, size_t latency_samples,
                 const ty_convert_hooks_t *hooks, ty_convert_eval_t *out,
                 char *err, size_t errlen)
{
    s_eval_t e;
    memset (&e, 0, sizeof e);
    e.hooks = hooks;
    e.err = err;
    e.errlen = errlen;
    memset (out, 0, sizeof *out);
    out->accuracy_base = out->accuracy_conv = NAN;
    out->mae_base = out->mae_conv = NAN;
    out->agreement = out->max_abs_diff = NAN;
    out->p50_base_ms = out->p99_base_ms = out->p50_conv_ms = out->p99_conv_ms = NAN;
    if (!data_dir || !dataset_spec || !model_dir || !base_path || !conv_path || !out)
        return s_fail (&e, TY_EINVAL, "ty_convert_eval: NULL argument");
    int rc = s_open_models (&e, base_path, conv_path);
    ty_dataset_t *ds = NULL;
    if (rc == TY_OK && (rc = ty_dataset_open (data_dir, dataset_spec, &ds)) != TY_OK)
        s_fail (&e, rc, "dataset %s: %s", dataset_spec,
                rc == TY_ENOTFOUND ? "no such dataset" : ty_strerror (rc));
    if (rc == TY_OK)
        rc = e.kind == TY_INFER_NCF ? s_load_pairs (&e, ds, model_dir) : s_load_samples (&e, ds);
    if (rc == TY_OK && e.n == 0)
        rc = s_fail (&e, TY_EINVAL, "the test split of dataset %s@%llu has no sample a %s model "
                     "can take (%zu skipped): nothing to compare", ty_dataset_name (ds),
                     (unsigned long long) ty_dataset_version (ds), ty_infer_kind_name (e.kind),
                     e.skipped);
    if (rc == TY_OK)
        rc = s_compare (&e, out);
    size_t timed = latency_samples ? latency_samples : TY_CONVERT_LATENCY_SAMPLES;
    if (rc == TY_OK)
        rc = s_latency (&e, e.base, timed, &out->p50_base_ms, &out->p99_base_ms);
    if (rc == TY_OK)
        rc = s_latency (&e, e.conv, timed, &out->p50_conv_ms, &out->p99_conv_ms);
    out->n_samples = e.n;
    out->skipped = e.skipped;
    s_eval_free (&e);
    ty_dataset_destroy (&ds);
    return rc;
}

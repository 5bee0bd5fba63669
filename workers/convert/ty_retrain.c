/*  ty_retrain: see ty_retrain.h. */
#include "ty_retrain.h"

#include "ty_error.h"
#include "ty_negsample.h"
#include "ty_quantize.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DROPPED   (-1)        /* the id map's value for a row not kept */
#define S_SEED_MIX  0x9E3779B97F4A7C15ull   /* odd constant: epoch seeds far apart */

static int
s_fail (char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (err, errlen, fmt, ap);
        va_end (ap);
    }
    return code;
}

/* ---- the rows to keep ------------------------------------------------------- */

typedef struct {
    size_t    keep;
    uint32_t *kept;
    int64_t   rows;
    int       done, rc;
} s_pick_t;

/* The embedding is the first tensor: its rows of largest norm, straight
 * from the borrowed weights (no copy of a table that may be 100s of MB). */
static int
s_on_tensor (void *arg, const char *name, int ndim, const int64_t *shape, const float *data)
{
    s_pick_t *p = arg;
    if (p->done)
        return TY_OK;
    p->done = 1;
    if (strcmp (name, "emb.weight") != 0 || ndim != 2 || shape[0] < 1 || shape[1] < 1)
        return p->rc = TY_EINVAL;
    p->rows = shape[0];
    if (p->keep == 0 || p->keep > (size_t) shape[0])
        p->keep = (size_t) shape[0];
    p->kept = malloc (p->keep * sizeof *p->kept);
    if (!p->kept)
        return p->rc = TY_ENOMEM;
    if (p->keep == (size_t) shape[0]) {
        for (size_t i = 0; i < p->keep; i++)
            p->kept[i] = (uint32_t) i;
        return TY_OK;
    }
    if (ty_quantize_top_rows (data, (size_t) shape[0], (size_t) shape[1], p->keep, p->kept) != 0)
        return p->rc = TY_ENOMEM;
    return TY_OK;
}

/* ---- training ------------------------------------------------------------ */

typedef struct {
    int32_t *map;           /* original row -> new row, or S_DROPPED */
    int64_t *ids, *offs;    /* the remapped batch */
    size_t   ids_cap;
} s_remap_t;

/* batch's ids through the map into r's buffers; dropped ids leave the bag. */
static int
s_remap (s_remap_t *r, const ty_torch_batch_t *in, ty_torch_batch_t *out, int64_t rows)
{
    if (in->nids < 0 || in->n < 1 || !in->offsets || (in->nids > 0 && !in->ids))
        return TY_EINVAL;
    if ((size_t) in->nids > r->ids_cap) {
        size_t cap = (size_t) in->nids * 2;
        int64_t *p = realloc (r->ids, cap * sizeof *p);
        if (!p)
            return TY_ENOMEM;
        r->ids = p;
        r->ids_cap = cap;
    }
    int64_t k = 0;
    for (int64_t s = 0; s < in->n; s++) {
        int64_t a = in->offsets[s], b = s + 1 < in->n ? in->offsets[s + 1] : in->nids;
        if (a < 0 || b < a || b > in->nids)
            return TY_EINVAL;
        r->offs[s] = k;
        for (int64_t j = a; j < b; j++) {
            int64_t id = in->ids[j];
            if (id < 0 || id >= rows)
                return TY_EINVAL;
            if (r->map[id] != S_DROPPED)
                r->ids[k++] = r->map[id];
        }
    }
    *out = *in;
    out->ids = r->ids;
    out->nids = k;
    out->offsets = r->offs;
    return TY_OK;
}

static int
s_train (ty_torch_model_t *m, const ty_retrain_opts_t *o, s_remap_t *r, int64_t rows,
         double *last_loss, char *err, size_t errlen)
{
    size_t n = o->nsamples, bs = (size_t) o->batch_size;
    uint64_t *idx = malloc (n * sizeof *idx);
    if (!idx)
        return s_fail (err, errlen, TY_ENOMEM, "out of memory (%zu samples)", n);
    const ty_torch_params_t *p = ty_torch_params (m);
    int rc = TY_OK;
    for (int e = 0; rc == TY_OK && e < o->epochs; e++) {
        for (size_t i = 0; i < n; i++)
            idx[i] = i;
        /* Fisher-Yates from (seed, epoch): the order a rerun gets too. */
        uint64_t rng = p->seed * S_SEED_MIX + (uint64_t) e + 1;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t) ty_negsample_below (&rng, i + 1);
            uint64_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        double sum = 0;
        size_t steps = 0;
        for (size_t s = 0; rc == TY_OK && s < n; s += bs) {
            size_t k = n - s < bs ? n - s : bs;
            ty_torch_batch_t in, b;
            memset (&in, 0, sizeof in);
            rc = o->gather (o->arg, idx + s, k, &in);
            if (rc != TY_OK) {
                s_fail (err, errlen, rc, "reading train samples: %s", ty_strerror (rc));
                break;
            }
            rc = s_remap (r, &in, &b, rows);
            if (rc != TY_OK) {
                s_fail (err, errlen, rc, "a train batch has bad ids or offsets");
                break;
            }
            double loss = 0;
            rc = ty_torch_train_step (m, &b, &loss);
            if (rc != TY_OK) {
                s_fail (err, errlen, rc, "train step: %s", ty_torch_errstr (m));
                break;
            }
            sum += loss;
            steps++;
            if (o->cancelled && o->cancelled (o->arg)) {
                rc = s_fail (err, errlen, ECANCELED, "cancelled while retraining");
                break;
            }
        }
        if (rc == TY_OK) {
            *last_loss = steps ? sum / (double) steps : 0;
            if (o->progress)
                o->progress (o->arg, (double) (e + 1) / (double) o->epochs);
        }
    }
    free (idx);
    return rc;
}

/* ---- the API ------------------------------------------------------------- */

int
ty_retrain_textclf (ty_torch_model_t *model, const ty_retrain_opts_t *opts,
                    ty_retrain_result_t *res, char *err, size_t errlen)
{
    if (!res)
        return s_fail (err, errlen, TY_EINVAL, "res is NULL");
    memset (res, 0, sizeof *res);
    if (!model || !opts || !opts->gather)
        return s_fail (err, errlen, TY_EINVAL, "model, options or gather is NULL");
    const ty_torch_params_t *old = ty_torch_params (model);
    if (old->kind != TY_TORCH_TEXTCLF)
        return s_fail (err, errlen, TY_EINVAL, "retraining takes textclf models, not %s",
                       ty_torch_kind_name (old->kind));
    if (opts->epochs < 1 || opts->epochs > TY_RETRAIN_MAX_EPOCHS)
        return s_fail (err, errlen, TY_EINVAL, "retrain epochs: 1 to %d, not %d",
                       TY_RETRAIN_MAX_EPOCHS, opts->epochs);
    if (opts->dim < 0 || opts->batch_size < 0)
        return s_fail (err, errlen, TY_EINVAL, "dim and batch size must be >= 0");
    if (opts->nsamples == 0)
        return s_fail (err, errlen, TY_EINVAL, "no train samples to retrain on");
    if (opts->max_rows > UINT32_MAX || old->textclf.nrows > (int64_t) UINT32_MAX)
        return s_fail (err, errlen, TY_EINVAL, "more rows than a row map can name");

    s_pick_t pick = {(size_t) opts->max_rows, NULL, 0, 0, TY_OK};
    int rc = ty_torch_export_tensors (model, s_on_tensor, &pick);
    if (rc != TY_OK || !pick.kept) {
        free (pick.kept);
        rc = rc != TY_OK ? rc : TY_EINVAL;
        return s_fail (err, errlen, rc, rc == TY_ENOMEM ? "out of memory choosing rows"
                       : "the model has no embedding to prune (%s)", ty_torch_errstr (model));
    }
    ty_retrain_opts_t o = *opts;
    if (o.batch_size == 0)
        o.batch_size = TY_RETRAIN_BATCH_DEFAULT;

    s_remap_t r;
    memset (&r, 0, sizeof r);
    r.map = malloc ((size_t) pick.rows * sizeof *r.map);
    r.offs = malloc ((size_t) o.batch_size * sizeof *r.offs);
    if (!r.map || !r.offs) {
        rc = s_fail (err, errlen, TY_ENOMEM, "out of memory (row map of %lld rows)",
                     (long long) pick.rows);
        goto done;
    }
    for (int64_t i = 0; i < pick.rows; i++)
        r.map[i] = S_DROPPED;
    for (size_t i = 0; i < pick.keep; i++)
        r.map[pick.kept[i]] = (int32_t) i;

    ty_torch_params_t p = *old;
    p.textclf.nrows = (int64_t) pick.keep;
    if (o.dim > 0)
        p.textclf.dim = o.dim;
    size_t steps = (o.nsamples + (size_t) o.batch_size - 1) / (size_t) o.batch_size;
    /* SGD's linear decay spans the retraining, as it spanned the training. */
    p.total_steps = p.optim == TY_TORCH_SGD ? (int64_t) steps * o.epochs : 0;
    ty_torch_model_t *m = NULL;
    rc = ty_torch_new (&p, &m, err, errlen);
    if (rc != TY_OK)
        goto done;
    rc = s_train (m, &o, &r, pick.rows, &res->last_loss, err, errlen);
    if (rc != TY_OK) {
        ty_torch_destroy (&m);
        goto done;
    }
    res->model = m;
    res->rowmap = pick.kept;
    pick.kept = NULL;
    res->nkept = pick.keep;
    res->nrows = pick.rows;
done:
    free (pick.kept);
    free (r.map);
    free (r.ids);
    free (r.offs);
    return rc;
}

void
ty_retrain_result_free (ty_retrain_result_t *res)
{
    if (!res)
        return;
    ty_torch_destroy (&res->model);
    free (res->rowmap);
    res->rowmap = NULL;
    res->nkept = 0;
}

/*  ty_metrics: single-label and multi-label classification metrics, and the
 *  helpers the other ty_metrics_*.c files share. Definitions and their
 *  sklearn counterparts are in ty_metrics.h. */
#include "ty_metrics.h"
#include "ty_metrics_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"

/* numpy's pairwise summation: below this many terms a block is summed with
 * 8 accumulators; above it, the range is split in two (numpy PW_BLOCKSIZE).
 * Keeps the rounding error O(log n) instead of O(n). */
#define S_PW_BLOCK  128
#define S_PW_UNROLL 8

double
ty_metrics_sum (const double *x, size_t n)
{
    if (n < S_PW_UNROLL) {
        double res = 0.;
        for (size_t i = 0; i < n; i++)
            res += x[i];
        return res;
    }
    if (n <= S_PW_BLOCK) {
        double r[S_PW_UNROLL];
        for (size_t j = 0; j < S_PW_UNROLL; j++)
            r[j] = x[j];
        size_t i;
        for (i = S_PW_UNROLL; i < n - (n % S_PW_UNROLL); i += S_PW_UNROLL)
            for (size_t j = 0; j < S_PW_UNROLL; j++)
                r[j] += x[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += x[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % S_PW_UNROLL;
    return ty_metrics_sum (x, n2) + ty_metrics_sum (x + n2, n - n2);
}

/* ---------------------------------------------------------------------
 *  Precision / recall / F1 from counts (sklearn precision_recall_fscore_
 *  support with zero_division="warn": an ill-defined ratio is 0.0)
 * --------------------------------------------------------------------- */

static double
s_ratio_or_zero (int64_t num, int64_t den)
{
    return den == 0 ? 0.0 : (double) num / (double) den;
}

static double
s_f1 (double p, double r)
{
    double denom = p + r;
    /* sklearn: denom[denom == 0] = 1, then 2*p*r/denom, which is 0 there */
    if (denom == 0.0)
        denom = 1.0;
    return 2.0 * p * r / denom;
}

static ty_prf_t
s_prf_of (int64_t tp, int64_t pred, int64_t support)
{
    ty_prf_t v;
    v.precision = s_ratio_or_zero (tp, pred);
    v.recall = s_ratio_or_zero (tp, support);
    v.f1 = s_f1 (v.precision, v.recall);
    return v;
}

void
ty_metrics_prf_fill (size_t k, const int64_t *tp, const int64_t *pred,
                     const int64_t *support, double *p, double *r, double *f,
                     ty_prf_t *macro, ty_prf_t *micro, ty_prf_t *weighted)
{
    int64_t tp_sum = 0, pred_sum = 0, true_sum = 0;
    for (size_t c = 0; c < k; c++) {
        ty_prf_t v = s_prf_of (tp[c], pred[c], support[c]);
        p[c] = v.precision;
        r[c] = v.recall;
        f[c] = v.f1;
        tp_sum += tp[c];
        pred_sum += pred[c];
        true_sum += support[c];
    }
    macro->precision = ty_metrics_sum (p, k) / (double) k;
    macro->recall = ty_metrics_sum (r, k) / (double) k;
    macro->f1 = ty_metrics_sum (f, k) / (double) k;
    *micro = s_prf_of (tp_sum, pred_sum, true_sum);

    if (true_sum == 0) {
        /* sklearn's weighted branch with zero total support: every value
         * is the zero_division value, 0.0 under "warn" */
        weighted->precision = weighted->recall = weighted->f1 = 0.0;
        return;
    }
    /* np.average (x, weights=w) = sum (x*w) / sum (w) */
    double sp = 0, sr = 0, sf = 0;
    for (size_t c = 0; c < k; c++) {
        double w = (double) support[c];
        sp += p[c] * w;
        sr += r[c] * w;
        sf += f[c] * w;
    }
    weighted->precision = sp / (double) true_sum;
    weighted->recall = sr / (double) true_sum;
    weighted->f1 = sf / (double) true_sum;
}

/* ---------------------------------------------------------------------
 *  Single-label classification
 * --------------------------------------------------------------------- */

ty_cls_metrics_t *
ty_cls_metrics_new (size_t n_classes)
{
    if (n_classes < 1 || n_classes > TY_METRICS_MAX_CLASSES)
        return NULL;
    ty_cls_metrics_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->n_classes = n_classes;
    self->confusion = calloc (n_classes * n_classes, sizeof (int64_t));
    self->tp = calloc (n_classes, sizeof (int64_t));
    self->pred = calloc (n_classes, sizeof (int64_t));
    self->support = calloc (n_classes, sizeof (int64_t));
    self->precision = calloc (n_classes, sizeof (double));
    self->recall = calloc (n_classes, sizeof (double));
    self->f1 = calloc (n_classes, sizeof (double));
    if (!self->confusion || !self->tp || !self->pred || !self->support
        || !self->precision || !self->recall || !self->f1)
        ty_cls_metrics_destroy (&self);
    return self;
}

void
ty_cls_metrics_destroy (ty_cls_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_cls_metrics_t *self = *self_p;
    free (self->confusion);
    free (self->tp);
    free (self->pred);
    free (self->support);
    free (self->precision);
    free (self->recall);
    free (self->f1);
    free (self);
    *self_p = NULL;
}

static void
s_cls_reset (ty_cls_metrics_t *self)
{
    size_t k = self->n_classes;
    memset (self->confusion, 0, k * k * sizeof (int64_t));
    memset (self->tp, 0, k * sizeof (int64_t));
    memset (self->pred, 0, k * sizeof (int64_t));
    memset (self->support, 0, k * sizeof (int64_t));
    memset (self->precision, 0, k * sizeof (double));
    memset (self->recall, 0, k * sizeof (double));
    memset (self->f1, 0, k * sizeof (double));
    memset (&self->macro, 0, sizeof self->macro);
    memset (&self->micro, 0, sizeof self->micro);
    memset (&self->weighted, 0, sizeof self->weighted);
    self->accuracy = 0;
    self->n_samples = 0;
}

int
ty_cls_metrics_compute (ty_cls_metrics_t *self, const int32_t *y_true,
                        const int32_t *y_pred, size_t n)
{
    if (!self || !y_true || !y_pred)
        return TY_EINVAL;
    s_cls_reset (self);
    if (n == 0)
        return TY_EINVAL;
    size_t k = self->n_classes;
    int64_t *cm = self->confusion;
    for (size_t i = 0; i < n; i++) {
        /* unsigned compare rejects negatives too */
        uint32_t t = (uint32_t) y_true[i], p = (uint32_t) y_pred[i];
        if (t >= k || p >= k) {
            s_cls_reset (self);
            return TY_EINVAL;
        }
        cm[(size_t) t * k + p]++;
    }
    int64_t correct = 0;
    for (size_t a = 0; a < k; a++) {
        for (size_t p = 0; p < k; p++) {
            int64_t c = cm[a * k + p];
            self->support[a] += c;
            self->pred[p] += c;
        }
        self->tp[a] = cm[a * k + a];
        correct += self->tp[a];
    }
    self->n_samples = n;
    self->accuracy = (double) correct / (double) n;
    ty_metrics_prf_fill (k, self->tp, self->pred, self->support,
                         self->precision, self->recall, self->f1,
                         &self->macro, &self->micro, &self->weighted);
    return TY_OK;
}

/* True if a ranks before b among the top confusions. */
static int
s_conf_before (const ty_confusion_t *a, const ty_confusion_t *b)
{
    if (a->count != b->count)
        return a->count > b->count;
    if (a->actual != b->actual)
        return a->actual < b->actual;
    return a->predicted < b->predicted;
}

int
ty_cls_metrics_top_confusions (const ty_cls_metrics_t *self,
                               ty_confusion_t *out, size_t max, size_t *n_out)
{
    if (!self || !n_out || (max > 0 && !out))
        return TY_EINVAL;
    size_t k = self->n_classes, used = 0;
    for (size_t a = 0; a < k && max > 0; a++) {
        for (size_t p = 0; p < k; p++) {
            int64_t c = self->confusion[a * k + p];
            if (a == p || c == 0)
                continue;
            ty_confusion_t cell = { (int32_t) a, (int32_t) p, c };
            if (used == max && !s_conf_before (&cell, &out[max - 1]))
                continue;
            /* insertion into the sorted prefix; max is small (a report
             * shows ten or so), so this beats sorting all K^2 cells */
            size_t pos = used < max ? used++ : max - 1;
            while (pos > 0 && s_conf_before (&cell, &out[pos - 1])) {
                out[pos] = out[pos - 1];
                pos--;
            }
            out[pos] = cell;
        }
    }
    *n_out = used;
    return TY_OK;
}

int32_t
ty_metrics_argmax (const double *scores, size_t n_classes)
{
    size_t best = 0;
    for (size_t c = 1; c < n_classes; c++)
        if (scores[c] > scores[best])
            best = c;
    return (int32_t) best;
}

void
ty_metrics_argmax_rows (const double *proba, size_t n, size_t n_classes,
                        int32_t *y_pred)
{
    for (size_t i = 0; i < n; i++)
        y_pred[i] = ty_metrics_argmax (proba + i * n_classes, n_classes);
}

double
ty_metrics_high_conf_share (const double *proba, size_t n, size_t n_classes,
                            double threshold)
{
    if (n == 0 || n_classes == 0)
        return NAN;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        const double *row = proba + i * n_classes;
        if (row[ty_metrics_argmax (row, n_classes)] >= threshold)
            hits++;
    }
    return (double) hits / (double) n;
}

int
ty_metrics_log_loss (const int32_t *y_true, const double *proba, size_t n,
                     size_t n_classes, double *out)
{
    if (!y_true || !proba || !out || n == 0 || n_classes < 2
        || n_classes > TY_METRICS_MAX_CLASSES)
        return TY_EINVAL;
    *out = NAN;
    double *loss = malloc (n * sizeof *loss);
    double *row = malloc (n_classes * sizeof *row);
    if (!loss || !row) {
        free (loss);
        free (row);
        return TY_ENOMEM;
    }
    const double eps = TY_METRICS_LOG_LOSS_EPS;
    int rc = TY_OK;
    for (size_t i = 0; i < n && rc == TY_OK; i++) {
        uint32_t t = (uint32_t) y_true[i];
        if (t >= n_classes) {
            rc = TY_EINVAL;
            break;
        }
        const double *src = proba + i * n_classes;
        for (size_t c = 0; c < n_classes; c++) {
            double v = src[c];
            if (isnan (v)) {
                rc = TY_EINVAL;
                break;
            }
            row[c] = v < eps ? eps : (v > 1 - eps ? 1 - eps : v);
        }
        if (rc != TY_OK)
            break;
        /* sklearn renormalises each clipped row before taking the log */
        loss[i] = -log (row[t] / ty_metrics_sum (row, n_classes));
    }
    if (rc == TY_OK)
        *out = ty_metrics_sum (loss, n) / (double) n;
    free (loss);
    free (row);
    return rc;
}

/* ---------------------------------------------------------------------
 *  Multi-label
 * --------------------------------------------------------------------- */

ty_ml_metrics_t *
ty_ml_metrics_new (size_t n_labels)
{
    if (n_labels < 1 || n_labels > TY_METRICS_MAX_CLASSES)
        return NULL;
    ty_ml_metrics_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->n_labels = n_labels;
    self->tp = calloc (n_labels, sizeof (int64_t));
    self->pred = calloc (n_labels, sizeof (int64_t));
    self->support = calloc (n_labels, sizeof (int64_t));
    self->precision = calloc (n_labels, sizeof (double));
    self->recall = calloc (n_labels, sizeof (double));
    self->f1 = calloc (n_labels, sizeof (double));
    if (!self->tp || !self->pred || !self->support || !self->precision
        || !self->recall || !self->f1)
        ty_ml_metrics_destroy (&self);
    return self;
}

void
ty_ml_metrics_destroy (ty_ml_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_ml_metrics_t *self = *self_p;
    free (self->tp);
    free (self->pred);
    free (self->support);
    free (self->precision);
    free (self->recall);
    free (self->f1);
    free (self);
    *self_p = NULL;
}

int
ty_ml_metrics_compute (ty_ml_metrics_t *self, const uint8_t *y_true,
                       const uint8_t *y_pred, size_t n)
{
    if (!self || !y_true || !y_pred || n == 0)
        return TY_EINVAL;
    size_t l = self->n_labels;
    memset (self->tp, 0, l * sizeof (int64_t));
    memset (self->pred, 0, l * sizeof (int64_t));
    memset (self->support, 0, l * sizeof (int64_t));
    size_t exact_rows = 0, differing = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *t = y_true + i * l, *p = y_pred + i * l;
        size_t row_diff = 0;
        for (size_t j = 0; j < l; j++) {
            int tv = t[j] != 0, pv = p[j] != 0;
            self->tp[j] += tv & pv;
            self->pred[j] += pv;
            self->support[j] += tv;
            row_diff += tv != pv;
        }
        differing += row_diff;
        exact_rows += row_diff == 0;
    }
    self->n_samples = n;
    self->subset_accuracy = (double) exact_rows / (double) n;
    self->hamming_loss = (double) differing / ((double) n * (double) l);
    ty_metrics_prf_fill (l, self->tp, self->pred, self->support,
                         self->precision, self->recall, self->f1,
                         &self->macro, &self->micro, &self->weighted);
    return TY_OK;
}

/*  ty_metrics_reg: regression metrics, sampled-negatives ranking metrics and
 *  the latency summary. Definitions in ty_metrics.h. */
#include "ty_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"

#define S_MS_PER_S 1000.0

/* ---------------------------------------------------------------------
 *  Regression
 * --------------------------------------------------------------------- */

int
ty_metrics_regression (const double *y_true, const double *y_pred, size_t n,
                       ty_reg_metrics_t *out)
{
    if (!y_true || !y_pred || !out || n == 0)
        return TY_EINVAL;
    out->mse = out->rmse = out->mae = out->r2 = NAN;
    for (size_t i = 0; i < n; i++)
        if (!isfinite (y_true[i]) || !isfinite (y_pred[i]))
            return TY_EINVAL;
    double *tmp = malloc (n * sizeof *tmp);
    if (!tmp)
        return TY_ENOMEM;

    for (size_t i = 0; i < n; i++) {
        double d = y_true[i] - y_pred[i];
        tmp[i] = d * d;
    }
    double ss_res = ty_metrics_sum (tmp, n);
    out->mse = ss_res / (double) n;
    out->rmse = sqrt (out->mse);

    for (size_t i = 0; i < n; i++)
        tmp[i] = fabs (y_pred[i] - y_true[i]);
    out->mae = ty_metrics_sum (tmp, n) / (double) n;

    int constant = 1;
    for (size_t i = 1; i < n && constant; i++)
        constant = y_true[i] == y_true[0];
    double ss_tot = 0.0;
    if (!constant) {
        double mean = ty_metrics_sum (y_true, n) / (double) n;
        for (size_t i = 0; i < n; i++) {
            double d = y_true[i] - mean;
            tmp[i] = d * d;
        }
        ss_tot = ty_metrics_sum (tmp, n);
    }
    free (tmp);

    if (n < 2)
        out->r2 = NAN;
    else if (ss_res == 0.0)
        out->r2 = 1.0;            /* perfect, even for a constant target */
    else if (ss_tot == 0.0)
        out->r2 = 0.0;            /* constant target, imperfect predictions */
    else
        out->r2 = 1.0 - ss_res / ss_tot;
    return TY_OK;
}

/* ---------------------------------------------------------------------
 *  Ranking
 * --------------------------------------------------------------------- */

size_t
ty_metrics_rank_of_positive (double pos_score, const double *neg_score,
                             size_t n_neg)
{
    size_t rank = 0;
    for (size_t j = 0; j < n_neg; j++)
        rank += neg_score[j] >= pos_score;   /* ties rank above: pessimistic */
    return rank;
}

int
ty_metrics_ranking (const double *pos_score, const double *neg_score,
                    size_t n_users, size_t n_neg, size_t k,
                    ty_rank_metrics_t *out)
{
    if (!pos_score || (!neg_score && n_neg > 0) || !out || n_users == 0 || k == 0)
        return TY_EINVAL;
    out->hit_rate = out->ndcg = NAN;
    for (size_t u = 0; u < n_users; u++)
        if (isnan (pos_score[u]))
            return TY_EINVAL;
    for (size_t i = 0; i < n_users * n_neg; i++)
        if (isnan (neg_score[i]))
            return TY_EINVAL;
    size_t hits = 0;
    double dcg = 0.0;
    for (size_t u = 0; u < n_users; u++) {
        size_t rank = ty_metrics_rank_of_positive (pos_score[u],
                                                   neg_score + u * n_neg, n_neg);
        if (rank < k) {
            hits++;
            dcg += 1.0 / log2 ((double) rank + 2.0);
        }
    }
    out->hit_rate = (double) hits / (double) n_users;
    out->ndcg = dcg / (double) n_users;
    return TY_OK;
}

/* ---------------------------------------------------------------------
 *  Latency
 * --------------------------------------------------------------------- */

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

double
ty_metrics_percentile_sorted (const double *sorted, size_t n, double q)
{
    if (n == 0 || !(q >= 0.0 && q <= 100.0))
        return NAN;
    /* numpy: virtual index (n-1)*q/100, then _lerp, which computes from the
     * upper end when the fraction is >= 0.5 (better rounding near b) */
    double h = (double) (n - 1) * (q / 100.0);
    if (h >= (double) (n - 1))
        return sorted[n - 1];
    size_t j = (size_t) floor (h);
    double t = h - (double) j;
    double a = sorted[j], b = sorted[j + 1], diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

int
ty_metrics_latency_summarize (const double *timings_ms, size_t n, ty_metrics_latency_t *out)
{
    if (!timings_ms || !out || n == 0)
        return TY_EINVAL;
    memset (out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++)
        if (!isfinite (timings_ms[i]) || timings_ms[i] < 0)
            return TY_EINVAL;
    double *s = malloc (n * sizeof *s);
    if (!s)
        return TY_ENOMEM;
    memcpy (s, timings_ms, n * sizeof *s);
    qsort (s, n, sizeof *s, s_cmp_double);
    double total = ty_metrics_sum (timings_ms, n);
    out->n = n;
    out->mean_ms = total / (double) n;
    out->min_ms = s[0];
    out->max_ms = s[n - 1];
    out->p50_ms = ty_metrics_percentile_sorted (s, n, 50);
    out->p95_ms = ty_metrics_percentile_sorted (s, n, 95);
    out->p99_ms = ty_metrics_percentile_sorted (s, n, 99);
    out->throughput_per_s = total > 0 ? (double) n * S_MS_PER_S / total : 0.0;
    free (s);
    return TY_OK;
}

/*  ty_metrics: the numbers that decide whether a model ships.
 *
 *  Pure C (libm only, plus cJSON for the JSON rendering in ty_metrics_json.c),
 *  no I/O, no global state: thread-safe as long as two threads do not share
 *  one result object. Every definition below is scikit-learn's (the version
 *  in Debian 12, 1.2.1) with its default arguments, zero-division cases
 *  included, and tests/unit/test_metrics.c checks each against sklearn's own
 *  answers (tests/fixtures/metrics/, made by make_fixtures.py) to 1e-9.
 *
 *  What it is not: it runs no model and reads no dataset; the evaluate worker
 *  turns predictions into the arrays these functions take.
 *
 *  Conventions
 *  - Class labels are int32 indexes 0..K-1 and K is always given, so a class
 *    absent from y_true or never predicted still has its row, its column and
 *    its place in the macro average (sklearn with labels=range(K)).
 *  - Matrices are row-major: proba[i*K + k] is sample i's score for class k;
 *    confusion[a*K + p] counts samples of actual class a predicted as p
 *    (sklearn's confusion_matrix layout: rows = truth, columns = prediction).
 *  - Sums use pairwise summation (as numpy does), so means over 100 k rows
 *    agree with numpy far below 1e-9.
 *  - Functions return TY_OK or a negative TY_E* code from ty_error.h:
 *    TY_EINVAL for bad input (n == 0, a label outside 0..K-1, a score that is
 *    NaN or infinite, K too small for the metric), TY_ENOMEM when a scratch
 *    buffer cannot be allocated. Undefined values (sklearn raises or warns
 *    and returns nan) are NaN here, documented per metric.
 *  - Cost: O(n*K) for the counts; ROC AUC sorts each class's positives
 *    (O(n log n) over all classes together) and places every negative score
 *    with a bucketed binary search: O(n*K log n) worst case, about 60 ms
 *    for 100 k rows x 32 classes. O(n) scratch memory.
 */
#ifndef TY_METRICS_H
#define TY_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Upper bound on K: the confusion matrix is K*K int64, 1 GiB would be
 * K = 11 585; this keeps an untrusted model header from asking for it. */
#define TY_METRICS_MAX_CLASSES 4096

/* ======================================================================
 *  Classification (single label)
 * ====================================================================== */

/* Precision, recall and F1 of one class or one average. */
typedef struct {
    double precision;
    double recall;
    double f1;
} ty_prf_t;

/* Per-class and averaged classification metrics. Plain data: read the
 * fields directly. Arrays have n_classes entries (confusion n_classes^2)
 * and belong to the object.
 *
 * Definitions (sklearn precision_recall_fscore_support, zero_division="warn",
 * which yields 0.0 without raising):
 *   tp[k]       samples of class k predicted as k
 *   pred[k]     samples predicted as k            (column sum)
 *   support[k]  samples whose true class is k     (row sum)
 *   precision   tp / pred,    0.0 when pred == 0     (class never predicted)
 *   recall      tp / support, 0.0 when support == 0  (class absent from y_true)
 *   f1          2*p*r / (p + r) from those two floats, 0.0 when p + r == 0
 *   macro       unweighted mean of the K per-class values (absent classes
 *               included, as with labels=range(K))
 *   weighted    mean weighted by support; if every support is 0 (impossible
 *               when n > 0) all three are 0.0
 *   micro       the same formulas on sum(tp), sum(pred), sum(support); for
 *               single-label data all three equal the accuracy
 *   accuracy    share of samples with y_pred == y_true
 */
typedef struct {
    size_t   n_classes;
    size_t   n_samples;
    int64_t *confusion;     /* [actual * K + predicted] */
    int64_t *tp;
    int64_t *pred;
    int64_t *support;
    double  *precision;
    double  *recall;
    double  *f1;
    ty_prf_t macro;
    ty_prf_t micro;
    ty_prf_t weighted;
    double   accuracy;
} ty_cls_metrics_t;

/* Allocates a result for K classes (1 <= K <= TY_METRICS_MAX_CLASSES), all
 * zero. Returns NULL on bad K or out of memory. */
ty_cls_metrics_t *ty_cls_metrics_new (size_t n_classes);
/* NULL-safe; nulls *self_p. */
void ty_cls_metrics_destroy (ty_cls_metrics_t **self_p);

/* Fills every field from n labels. The object may be reused: each call
 * starts from zero. Returns TY_OK, TY_EINVAL (n == 0, a label outside
 * 0..K-1; the object is then left zeroed). */
int ty_cls_metrics_compute (ty_cls_metrics_t *self, const int32_t *y_true,
                            const int32_t *y_pred, size_t n);

/* One off-diagonal cell of the confusion matrix. */
typedef struct {
    int32_t actual;
    int32_t predicted;
    int64_t count;
} ty_confusion_t;

/* The most common confusions: the non-zero off-diagonal cells, by count
 * descending, then actual ascending, then predicted ascending (a stable,
 * reproducible order). Writes at most max entries to out and their number
 * to *n_out. O(K^2 log max). Returns TY_OK or TY_EINVAL. */
int ty_cls_metrics_top_confusions (const ty_cls_metrics_t *self,
                                   ty_confusion_t *out, size_t max,
                                   size_t *n_out);

/* Index of the largest of K scores, the first one on ties (np.argmax).
 * K must be >= 1. */
int32_t ty_metrics_argmax (const double *scores, size_t n_classes);

/* Fills y_pred[i] = argmax of row i of proba (n x K). */
void ty_metrics_argmax_rows (const double *proba, size_t n, size_t n_classes,
                             int32_t *y_pred);

/* Share of the n samples whose top probability (row maximum) is >= the
 * threshold: the "high-confidence share" a quality gate can bound. Returns
 * NaN when n == 0. */
double ty_metrics_high_conf_share (const double *proba, size_t n,
                                   size_t n_classes, double threshold);

/* Clipping constant of log loss: sklearn 1.2's eps="auto", which is
 * np.finfo(float64).eps = 2^-52 for float64 probabilities (older sklearn
 * used 1e-15; newer ones keep finfo eps). */
#define TY_METRICS_LOG_LOSS_EPS 2.220446049250313e-16

/* Log loss (cross-entropy, natural log), sklearn log_loss(y_true, proba,
 * labels=range(K)):
 *   p = clip(proba, eps, 1 - eps);  p_row /= sum(p_row)   (renormalise)
 *   loss = mean over samples of -log p[i, y_true[i]]
 * with eps = TY_METRICS_LOG_LOSS_EPS. Needs K >= 2 (sklearn refuses one
 * label). Writes *out. Returns TY_OK or TY_EINVAL (n == 0, K < 2, a label
 * out of range, a NaN probability). */
int ty_metrics_log_loss (const int32_t *y_true, const double *proba,
                         size_t n, size_t n_classes, double *out);

/* ROC AUC of a binary problem, sklearn roc_auc_score(is_pos, score): the
 * area under the ROC curve built on distinct score thresholds, which equals
 * P(score of a random positive > score of a random negative) with ties
 * counted 1/2 (sklearn groups equal scores into one threshold, giving that
 * trapezoid). Scores are compared exactly (-0.0 == 0.0).
 * is_pos[i] != 0 marks a positive. *out is NaN when all samples are of one
 * class (sklearn raises "Only one class present"). Returns TY_OK, TY_EINVAL
 * (n == 0, non-finite score), TY_ENOMEM. Sorts the smaller class only;
 * O(n) scratch. */
int ty_metrics_roc_auc_binary (const uint8_t *is_pos, const double *score,
                               size_t n, double *out);

/* One-vs-rest ROC AUC from per-class scores (n x K, e.g. probabilities):
 * per_class[k] (optional, K entries) = binary AUC of (y_true == k) against
 * column k, NaN when class k is absent from y_true or is the only class.
 *   *macro = mean of the K per-class values: sklearn roc_auc_score(y_true,
 *            proba, multi_class="ovr", average="macro", labels=range(K)),
 *            NaN if any class is undefined (sklearn raises then).
 *   *macro_defined (optional) = mean over the defined classes only, a
 *            trainyard addition so that a test split missing a class still
 *            yields a number (NaN if none is defined).
 * For K == 2, use the binary function on column 1: that is what sklearn's
 * roc_auc_score does with a binary y_true (per_class[1] here is that value).
 * Returns TY_OK, TY_EINVAL (n == 0, K < 2, label out of range, non-finite
 * score), TY_ENOMEM. */
int ty_metrics_roc_auc_ovr (const int32_t *y_true, const double *scores,
                            size_t n, size_t n_classes, double *per_class,
                            double *macro, double *macro_defined);

/* ======================================================================
 *  Multi-label (indicator matrices)
 * ====================================================================== */

/* y_true and y_pred are n x L matrices of 0/1 (any non-zero counts as 1).
 * Per-label tp/pred/support/precision/recall/f1 and the averages follow the
 * single-label definitions above, label by label (sklearn
 * precision_recall_fscore_support on indicator matrices); micro pools the
 * counts of every label, so it is NOT the subset accuracy here.
 *   subset_accuracy  share of rows whose whole label set is exactly right
 *                    (sklearn accuracy_score on indicators)
 *   hamming_loss     share of the n*L cells that differ
 */
typedef struct {
    size_t   n_labels;
    size_t   n_samples;
    int64_t *tp;
    int64_t *pred;
    int64_t *support;
    double  *precision;
    double  *recall;
    double  *f1;
    ty_prf_t macro;
    ty_prf_t micro;
    ty_prf_t weighted;
    double   subset_accuracy;
    double   hamming_loss;
} ty_ml_metrics_t;

/* 1 <= L <= TY_METRICS_MAX_CLASSES; NULL on bad L or out of memory. */
ty_ml_metrics_t *ty_ml_metrics_new (size_t n_labels);
void ty_ml_metrics_destroy (ty_ml_metrics_t **self_p);
/* Returns TY_OK or TY_EINVAL (n == 0). */
int ty_ml_metrics_compute (ty_ml_metrics_t *self, const uint8_t *y_true,
                           const uint8_t *y_pred, size_t n);

/* ======================================================================
 *  Regression
 * ====================================================================== */

/* sklearn mean_squared_error, its squared=False form, mean_absolute_error
 * and r2_score (force_finite=True, the default):
 *   mse  = mean (y_true - y_pred)^2      rmse = sqrt (mse)
 *   mae  = mean |y_true - y_pred|
 *   r2   = 1 - SS_res / SS_tot, SS_res = sum (y_true - y_pred)^2,
 *          SS_tot = sum (y_true - mean y_true)^2;
 *          constant y_true (SS_tot == 0): 1.0 if the predictions are
 *          perfect (SS_res == 0), else 0.0; NaN when n < 2 (sklearn warns
 *          "not well-defined with less than two samples"). */
typedef struct {
    double mse;
    double rmse;
    double mae;
    double r2;
} ty_reg_metrics_t;

/* Returns TY_OK or TY_EINVAL (n == 0, a non-finite value). */
int ty_metrics_regression (const double *y_true, const double *y_pred,
                           size_t n, ty_reg_metrics_t *out);

/* ======================================================================
 *  Ranking (NCF, sampled negatives)
 * ====================================================================== */

/* The protocol of He et al. (NCF, 2017): each user has one held-out
 * positive item scored among n_neg sampled negatives (the seeds use 99 or
 * 100). rank = the number of negatives scored above the positive, counting
 * a negative with an EQUAL score as above it (pessimistic ties: a model
 * that scores everything alike gets no credit, and the result does not
 * depend on the order items were scored in). Then, for a cut-off k:
 *   hit rate@k = share of users with rank < k
 *   NDCG@k     = mean of 1 / log2(rank + 2) over users with rank < k
 *                (0 otherwise); the ideal DCG is 1 with one relevant item.
 * Without ties this equals sklearn's ndcg_score(onehot, scores, k=k).
 * pos_score has n_users entries, neg_score n_users x n_neg. */
typedef struct {
    double hit_rate;
    double ndcg;
} ty_rank_metrics_t;

/* Rank of one positive among its negatives, as defined above. */
size_t ty_metrics_rank_of_positive (double pos_score, const double *neg_score,
                                    size_t n_neg);

/* Returns TY_OK or TY_EINVAL (n_users == 0, k == 0, a NaN score). */
int ty_metrics_ranking (const double *pos_score, const double *neg_score,
                        size_t n_users, size_t n_neg, size_t k,
                        ty_rank_metrics_t *out);

/* ======================================================================
 *  Latency summary
 * ====================================================================== */

/* Summary of N single-prediction timings in milliseconds.
 * Percentiles use numpy's default (method="linear"): on the sorted values
 * x[0..n-1], q-th percentile = x[j] + (h - j) * (x[j+1] - x[j]) with
 * h = (n - 1) * q / 100, j = floor (h) (so p50 of an even count is the mean
 * of the two middle values). throughput_per_s = n / (sum of timings in s):
 * the rate one caller achieves issuing them back to back. */
typedef struct {
    size_t n;
    double mean_ms;
    double min_ms;
    double p50_ms;
    double p95_ms;
    double p99_ms;
    double max_ms;
    double throughput_per_s;   /* 0 when the timings sum to 0 */
} ty_metrics_latency_t;

/* numpy percentile (linear) of n ascending values, q in [0, 100]. NaN when
 * n == 0. */
double ty_metrics_percentile_sorted (const double *sorted, size_t n, double q);

/* Sorts a private copy; timings are left untouched. Returns TY_OK,
 * TY_EINVAL (n == 0, a negative or non-finite timing), TY_ENOMEM. */
int ty_metrics_latency_summarize (const double *timings_ms, size_t n, ty_metrics_latency_t *out);

/* ======================================================================
 *  Shared helpers
 * ====================================================================== */

/* Pairwise sum (numpy's algorithm: blocks of 128 with 8 accumulators). */
double ty_metrics_sum (const double *x, size_t n);

/* ======================================================================
 *  JSON rendering (ty_metrics_json.c, cJSON)
 * ====================================================================== */

struct cJSON;

/* The classification report as a cJSON object, caller frees with
 * cJSON_Delete:
 *   { "accuracy", "n_samples", "n_classes",
 *     "per_class": [ {"class", "name"?, "precision", "recall", "f1",
 *                     "support"} ... ],
 *     "macro": {p,r,f1}, "micro": {...}, "weighted": {...},
 *     "confusion_matrix": [[...] ...], "top_confusions": [ {"actual",
 *     "predicted", "count"} ... up to max_confusions ] }
 * class_names may be NULL (then no "name"). NaN values render as null.
 * Returns NULL on out of memory. */
struct cJSON *ty_cls_metrics_json (const ty_cls_metrics_t *m,
                                   const char *const *class_names,
                                   size_t max_confusions);
struct cJSON *ty_ml_metrics_json (const ty_ml_metrics_t *m,
                                  const char *const *label_names);
struct cJSON *ty_reg_metrics_json (const ty_reg_metrics_t *m);
struct cJSON *ty_rank_metrics_json (const ty_rank_metrics_t *m, size_t k,
                                    size_t n_neg);
struct cJSON *ty_metrics_latency_json (const ty_metrics_latency_t *l);

/* Adds name: value to obj, null when value is NaN or infinite (JSON has no
 * NaN). Returns the item or NULL on out of memory. */
struct cJSON *ty_metrics_json_add_number (struct cJSON *obj, const char *name,
                                          double value);

#endif

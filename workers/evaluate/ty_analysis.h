/*  ty_analysis: the post-training verdict -- accept, accept with caution or
 *  revert -- and the observations behind it (workflow 002's "post-training
 *  analysis", for classifiers and regressors alike).
 *
 *  Rules (thresholds in ty_analysis_config_t, defaults below):
 *   - gate failed                                   critical
 *   - worse than the production model by more than
 *     production_tolerance on the primary metric    critical
 *   - overfitting: train - val gap of the primary metric at the last
 *     epoch >= gap_warn                             warning
 *                         >= gap_revert             critical
 *   - overfitting: validation loss at the last epoch above its best by more
 *     than val_loss_rise_rel (the model got worse while training on)
 *                                                   warning
 *   - too few training samples in some class (< min_samples_per_class)
 *                                                   warning
 *   - classes with recall below min_class_recall    warning (classes with
 *     no test sample are left out)
 *   - undertrained: loss still falling at the last epoch, by more than
 *     loss_falling_rel of the previous value (validation loss if given,
 *     else training loss)                           warning
 *   - a single epoch of history (nothing to judge)  info
 *  Recommendation: revert if any observation is critical, else
 *  accept_with_caution if any is a warning, else accept. Per-class rules
 *  give one observation each (count + the worst class), so the output is
 *  bounded whatever K is.
 *
 *  Plain value types, no allocation except the cJSON rendering.
 */
#ifndef TY_ANALYSIS_H
#define TY_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

/* Defaults (why): */
#define TY_ANALYSIS_GAP_WARN           0.05  /* 5 points of accuracy between train and val is the usual "watch it" */
#define TY_ANALYSIS_GAP_REVERT         0.15  /* beyond that the val figure is not to be trusted to generalise */
#define TY_ANALYSIS_VAL_LOSS_RISE_REL  0.10  /* val loss 10 % over its best: noise is smaller than this */
#define TY_ANALYSIS_MIN_SAMPLES_CLASS  20    /* workflow 002 refuses to train on fewer than 20 samples */
#define TY_ANALYSIS_MIN_CLASS_RECALL   0.5   /* a class found less than half the time is not really learnt */
#define TY_ANALYSIS_LOSS_FALLING_REL   0.01  /* a last epoch still gaining > 1 % means more epochs would help */
#define TY_ANALYSIS_PROD_TOLERANCE     0.005 /* half a point: below run-to-run noise of a retrain */

#define TY_ANALYSIS_MSG_MAX 200   /* bytes per observation message */
#define TY_ANALYSIS_MAX_OBS 16    /* more than the number of rules */

typedef enum {
    TY_REC_ACCEPT = 0,
    TY_REC_ACCEPT_WITH_CAUTION,
    TY_REC_REVERT,
} ty_recommendation_t;

typedef enum {
    TY_OBS_INFO = 0,
    TY_OBS_WARNING,
    TY_OBS_CRITICAL,
} ty_obs_severity_t;

typedef enum {
    TY_OBS_GATE_FAILED = 0,
    TY_OBS_WORSE_THAN_PRODUCTION,
    TY_OBS_OVERFITTING,
    TY_OBS_VAL_LOSS_RISING,
    TY_OBS_FEW_SAMPLES,
    TY_OBS_LOW_RECALL,
    TY_OBS_UNDERTRAINED,
    TY_OBS_SHORT_HISTORY,
    TY_OBS_KIND_COUNT
} ty_obs_kind_t;

typedef struct {
    ty_obs_kind_t     kind;
    ty_obs_severity_t severity;
    double  value;        /* the measured figure (gap, count, rel. change...) */
    double  threshold;    /* the rule's threshold */
    int32_t class_index;  /* per-class rules: the worst class, else -1 */
    int32_t count;        /* per-class rules: classes concerned, else 0 */
    char    message[TY_ANALYSIS_MSG_MAX];
} ty_observation_t;

typedef struct {
    double  gap_warn;
    double  gap_revert;
    double  val_loss_rise_rel;
    int64_t min_samples_per_class;
    double  min_class_recall;
    double  loss_falling_rel;
    double  production_tolerance;
} ty_analysis_config_t;

/* What the analysis looks at. Every pointer may be NULL (with its count 0)
 * and every double NaN: a rule without its inputs is not applied. */
typedef struct {
    /* primary metric (e.g. accuracy, macro F1, R^2, or MAE with
     * higher_is_better = 0) per epoch, on train and validation */
    const char   *metric_name;       /* for messages; NULL = "metric" */
    int           higher_is_better;
    const double *train_metric;
    const double *val_metric;
    size_t        n_epochs;
    /* losses per epoch */
    const double *train_loss;
    const double *val_loss;
    size_t        n_loss_epochs;
    /* per class (classification only) */
    size_t             n_classes;
    const int64_t     *train_support;   /* training samples per class */
    const double      *class_recall;    /* on the evaluated split */
    const int64_t     *test_support;    /* evaluated split samples per class */
    const char *const *class_names;
    /* the candidate's primary metric on the evaluated split, and the
     * production model's on the same split (NaN: none) */
    double candidate_score;
    double production_score;
    /* the gate's verdict: -1 not evaluated, 0 failed, 1 passed */
    int gate_passed;
} ty_analysis_input_t;

typedef struct {
    ty_recommendation_t recommendation;
    size_t              n_observations;
    ty_observation_t    obs[TY_ANALYSIS_MAX_OBS];
} ty_analysis_t;

/* The defaults above. */
void ty_analysis_config_init (ty_analysis_config_t *cfg);
/* Everything absent (NULL, 0, NaN, gate_passed -1, higher_is_better 1). */
void ty_analysis_input_init (ty_analysis_input_t *in);

/* Applies the rules. cfg NULL = defaults. Returns TY_OK or TY_EINVAL
 * (NULL in/out). */
int ty_analysis_run (const ty_analysis_input_t *in,
                     const ty_analysis_config_t *cfg, ty_analysis_t *out);

/* The first observation of that kind, or NULL. */
const ty_observation_t *ty_analysis_find (const ty_analysis_t *a,
                                          ty_obs_kind_t kind);

/* "accept", "accept_with_caution", "revert". */
const char *ty_recommendation_name (ty_recommendation_t r);
/* "info", "warning", "critical". */
const char *ty_obs_severity_name (ty_obs_severity_t s);
/* "gate_failed", "overfitting", ... */
const char *ty_obs_kind_name (ty_obs_kind_t k);

struct cJSON;
/* {"recommendation", "observations": [{"kind", "severity", "message",
 * "value", "threshold", "class"?, "count"?}]}. Caller frees; NULL on out of
 * memory. */
struct cJSON *ty_analysis_json (const ty_analysis_t *a);

#endif

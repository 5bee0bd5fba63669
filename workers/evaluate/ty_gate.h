/*  ty_gate: the quality gate of an evaluate job.
 *
 *  A gate is a set of thresholds from the job spec (a JSON object such as
 *  {"min_accuracy": 0.9, "max_p95_latency_ms": 20}); evaluating it against
 *  what the job measured gives one check per threshold, each PASS, FAIL or
 *  SKIP with the measured value and the threshold, and an overall verdict:
 *  PASS unless some check FAILs. A failed gate is a result, not an error:
 *  the functions here return TY_OK for it.
 *
 *  Missing measurements: a threshold the spec sets but the job could not
 *  measure (NaN) FAILs with the note "not measured" -- a gate must not pass
 *  by omission -- except max_accuracy_regression when there is no
 *  production model yet, which is SKIPped ("no production model").
 *
 *  Plain value types, no allocation except the cJSON rendering; not tied
 *  to a thread.
 */
#ifndef TY_GATE_H
#define TY_GATE_H

#include <stddef.h>
#include <stdint.h>

/* The checks, in the order they are evaluated and reported. The JSON key
 * of each is its name (ty_gate_kind_name). */
typedef enum {
    TY_GATE_MIN_ACCURACY = 0,        /* accuracy >= t */
    TY_GATE_MIN_CLASS_RECALL,        /* every class with test support: recall >= t */
    TY_GATE_MIN_MACRO_F1,            /* macro F1 >= t */
    TY_GATE_MIN_ROC_AUC,             /* ROC AUC (binary, or OvR macro) >= t */
    TY_GATE_MAX_P95_LATENCY_MS,      /* single-sample p95 latency <= t ms */
    TY_GATE_MAX_MEMORY_MB,           /* peak RSS <= t MiB */
    TY_GATE_MIN_HIGH_CONF_SHARE,     /* share of predictions with top p >= high_conf_threshold, >= t */
    TY_GATE_MAX_ACCURACY_REGRESSION, /* production accuracy - accuracy <= t */
    TY_GATE_KIND_COUNT
} ty_gate_kind_t;

typedef enum {
    TY_GATE_PASS = 0,
    TY_GATE_FAIL,
    TY_GATE_SKIP,
} ty_gate_status_t;

/* Probability a prediction's top class must reach to count as "high
 * confidence" when the spec does not say ("high_conf_threshold"). */
#define TY_GATE_HIGH_CONF_DEFAULT 0.9

/* Longest error message ty_gate_spec_parse writes. */
#define TY_GATE_ERR_MAX 160

/* The thresholds. enabled[k] says whether check k is part of the gate. */
typedef struct {
    int    enabled[TY_GATE_KIND_COUNT];
    double threshold[TY_GATE_KIND_COUNT];
    double high_conf_threshold;   /* used to measure high_conf_share */
} ty_gate_spec_t;

/* What the job measured; NaN (or NULL) for what it did not. Start from
 * ty_gate_measured_init. */
typedef struct {
    double accuracy;
    double macro_f1;
    double roc_auc;
    double p95_latency_ms;
    double memory_mb;
    double high_conf_share;
    double production_accuracy;   /* NaN: no production model */
    const double  *class_recall;  /* n_classes entries */
    const int64_t *class_support; /* optional: classes with 0 support in the
                                     test split are left out of the recall
                                     check (sklearn says 0.0 for them, which
                                     is no evidence of a bad model) */
    size_t n_classes;
} ty_gate_measured_t;

/* One evaluated check. */
typedef struct {
    ty_gate_kind_t   kind;
    ty_gate_status_t status;
    double  measured;     /* NaN when not measured; for min_class_recall the
                             lowest recall; for max_accuracy_regression the
                             drop (production - candidate, < 0 = better) */
    double  threshold;
    int32_t class_index;  /* min_class_recall: the worst class, else -1 */
    int32_t n_failing;    /* min_class_recall: classes below threshold */
    const char *note;     /* static string or NULL */
} ty_gate_check_t;

typedef struct {
    int             passed;     /* 1 = no check failed (skips do not fail) */
    size_t          n_checks;
    ty_gate_check_t checks[TY_GATE_KIND_COUNT];
} ty_gate_result_t;

/* "min_accuracy", ...; NULL for an unknown kind. */
const char *ty_gate_kind_name (ty_gate_kind_t kind);
/* ">=" or "<=". */
const char *ty_gate_kind_op (ty_gate_kind_t kind);
/* "PASS", "FAIL", "SKIP". */
const char *ty_gate_status_name (ty_gate_status_t status);

/* An empty gate (no check, high_conf_threshold = the default). */
void ty_gate_spec_init (ty_gate_spec_t *spec);

/* Enables check kind with threshold t. Ratios (accuracy, recall, F1, AUC,
 * share) must lie in [0, 1], latency and memory be >= 0, the accuracy
 * regression in [-1, 1]. Returns TY_OK or TY_EINVAL. */
int ty_gate_spec_set (ty_gate_spec_t *spec, ty_gate_kind_t kind, double t);

/* Parses a JSON object whose keys are check names (plus the optional
 * "high_conf_threshold") and values numbers; null or absent = not checked.
 * Unknown keys are an error (a misspelt threshold must not silently
 * vanish). err (may be NULL) receives a message. Returns TY_OK or
 * TY_EINVAL. */
int ty_gate_spec_parse (const char *json, ty_gate_spec_t *spec, char *err,
                        size_t err_len);

/* All measurements NaN / NULL. */
void ty_gate_measured_init (ty_gate_measured_t *m);

/* Evaluates every enabled check, in kind order. Returns TY_OK (whatever
 * the verdict) or TY_EINVAL (NULL argument). */
int ty_gate_evaluate (const ty_gate_spec_t *spec, const ty_gate_measured_t *m,
                      ty_gate_result_t *out);

/* The first check of that kind, or NULL if the gate did not have it. */
const ty_gate_check_t *ty_gate_result_find (const ty_gate_result_t *r,
                                            ty_gate_kind_t kind);

/* One line, e.g. "min_accuracy  0.8123 >= 0.9  FAIL". Returns buf. */
char *ty_gate_check_format (const ty_gate_check_t *c, char *buf, size_t len);

struct cJSON;
/* {"verdict": "PASS"|"FAIL", "checks": [{"check", "status", "measured",
 * "op", "threshold", "class"?, "n_failing"?, "note"?}, ...],
 * "high_conf_threshold"}. NaN is null. Caller frees (cJSON_Delete); NULL on
 * out of memory. */
struct cJSON *ty_gate_result_json (const ty_gate_result_t *r,
                                   const ty_gate_spec_t *spec);

#endif

/*  test_metrics_analysis: the post-training recommendation. Each rule fires
 *  on its own input and not on a healthy run; warnings give
 *  accept_with_caution, critical findings give revert. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "ty_analysis.h"
#include "ty_error.h"

/* A healthy run: converged loss, small gap, enough samples, good recall,
 * slightly better than production, gate passed. */
static const double s_train_acc[] = { 0.70, 0.82, 0.88, 0.90, 0.905 };
static const double s_val_acc[]   = { 0.68, 0.80, 0.86, 0.88, 0.885 };
static const double s_train_loss[] = { 1.20, 0.60, 0.40, 0.35, 0.349 };
static const double s_val_loss[]   = { 1.25, 0.65, 0.45, 0.40, 0.398 };
static const int64_t s_train_support[] = { 200, 150, 120 };
static const int64_t s_test_support[] = { 50, 40, 30 };
static const double s_recall[] = { 0.90, 0.85, 0.80 };
static const char *const s_names[] = { "spam", "ham", "promo" };

static void
s_healthy (ty_analysis_input_t *in)
{
    ty_analysis_input_init (in);
    in->metric_name = "accuracy";
    in->train_metric = s_train_acc;
    in->val_metric = s_val_acc;
    in->n_epochs = 5;
    in->train_loss = s_train_loss;
    in->val_loss = s_val_loss;
    in->n_loss_epochs = 5;
    in->n_classes = 3;
    in->train_support = s_train_support;
    in->test_support = s_test_support;
    in->class_recall = s_recall;
    in->class_names = s_names;
    in->candidate_score = 0.885;
    in->production_score = 0.88;
    in->gate_passed = 1;
}

static ty_analysis_t
must_run (const ty_analysis_input_t *in)
{
    ty_analysis_t a;
    assert_int_equal (ty_analysis_run (in, NULL, &a), TY_OK);
    return a;
}

static void
test_analysis_healthy_run_is_accepted (void **state)
{
    (void) state;
    ty_analysis_input_t in;
    s_healthy (&in);
    ty_analysis_t a = must_run (&in);
    assert_int_equal (a.recommendation, TY_REC_ACCEPT);
    assert_int_equal (a.n_observations, 0);
    assert_string_equal (ty_recommendation_name (a.recommendation), "accept");
}

static void
test_analysis_overfitting_gap (void **state)
{
    (void) state;
    ty_analysis_input_t in;
    s_healthy (&in);
    const double val[] = { 0.68, 0.78, 0.80, 0.82, 0.83 };   /* gap 0.075 */
    in.val_metric = val;
    in.candidate_score = 0.89;   /* keep the production rule quiet */
    ty_analysis_t a = must_run (&in);
    const ty_observation_t *o = ty_analysis_find (&a, TY_OBS_OVERFITTING);
    assert_non_null (o);
    assert_int_equal (o->severity, TY_OBS_WARNING);
    assert_true (fabs (o->value - 0.075) < 1e-12);
    assert_non_null (strstr (o->message, "overfitting"));
    assert_int_equal (a.recommendation, TY_REC_ACCEPT_WITH_CAUTION);

    const double val_bad[] = { 0.60, 0.65, 0.70, 0.72, 0.70 };  /* gap 0.205 */
    in.val_metric = val_bad;
    a = must_run (&in);
    o = ty_analysis_find (&a, TY_OBS_OVERFITTING);
    assert_non_null (o);
    assert_int_equal (o->severity, TY_OBS_CRITICAL);
    assert_int_equal (a.recommendation, TY_REC_REVERT);

    /* lower-is-better metric (MAE of a regressor): val above train is the gap */
    const double tr_mae[] = { 0.20, 0.10 }, va_mae[] = { 0.22, 0.17 };
    ty_analysis_input_init (&in);
    in.metric_name = "mae";
    in.higher_is_better = 0;
    in.train_metric = tr_mae;
    in.val_metric = va_mae;
    in.n_epochs = 2;
    a = must_run (&in);
    o = ty_analysis_find (&a, TY_OBS_OVERFITTING);
    assert_non_null (o);
    assert_true (fabs (o->value - 0.07) < 1e-12);
}

static void
test_analysis_val_loss_rising (void **state)
{
    (void) state;
    ty_analysis_input_t in;
    s_healthy (&in);
    const double val_loss[] = { 1.0, 0.5, 0.45, 0.52, 0.60 };   /* best 0.45, +33 % */
    in.val_loss = val_loss;
    ty_analysis_t a = must_run (&in);
    const ty_observation_t *o = ty_analysis_find (&a, TY_OBS_VAL_LOSS_RISING);
    assert_non_null (o);
    assert_true (fabs (o->value - (0.60 - 0.45) / 0.45) < 1e-12);
    assert_non_null (strstr (o->message, "epoch 3"));
    assert_null (ty_analysis_find (&a, TY_OBS_UNDERTRAINED));   /* rising, not falling */
    assert_int_equal (a.recommendation, TY_REC_ACCEPT_WITH_CAUTION);
}

static void
test_analysis_few_samples_and_low_recall (void **state)
{
    (void) state;
    ty_analysis_input_t in;
    s_healthy (&in);
    const int64_t train_support[] = { 200, 12, 7 };
    const double recall[] = { 0.90, 0.45, 0.30 };
    const int64_t test_support[] = { 50, 40, 30 };
    in.train_support = train_support;
    in.class_recall = recall;
    in.test_support = test_support;
    ty_analysis_t a = must_run (&in);
    const ty_observation_t *few = ty_analysis_find (&a, TY_OBS_FEW_SAMPLES);
    assert_non_null (few);
    assert_int_equal (few->count, 2);
    assert_int_equal (few->class_index, 2);
    assert_non_null (strstr (few->message, "promo"));
    const ty_observation_t *low = ty_analysis_find (&a, TY_OBS_LOW_RECALL);
    assert_non_null (low);
    assert_int_equal (low->count, 2);
    assert_int_equal (low->class_index, 2);
    assert_true (low->value == 0.30);
    assert_int_equal (a.recommendation, TY_REC_ACCEPT_WITH_CAUTION);

    /* a class without test samples has recall 0.0 by convention: no finding */
    const double recall2[] = { 0.90, 0.80, 0.0 };
    const int64_t test_support2[] = { 50, 40, 0 };
    in.train_support = s_train_support;
    in.class_recall = recall2;
    in.test_support = test_support2;
    a = must_run (&in);
    assert_null (ty_analysis_find (&a, TY_OBS_LOW_RECALL));
    assert_int_equal (a.recommendation, TY_REC_ACCEPT);
}

static void
test_analysis_undertrained (void **state)
{
    (void) state;
    ty_analysis_input_t in;
    s_healthy (&in);
    const double val_loss[] = { 1.0, 0.8, 0.7, 0.6, 0.5 };   /* -16.7 % last epoch */
    in.val_loss = val_loss;
    ty_analysis_t a = must_run (&in);
    const ty_observation_t *o = ty_analysis_find (&a, TY_OBS_UNDERTRAINED);
    assert_non_null (o);
    assert_true (fabs (o->value - 0.1 / 0.6) < 1e-12);
    assert_non_null (strstr (o->message, "validation"));
    assert_int_equal (a.recommendation, TY_REC_ACCEPT_WITH_CAUTION);

    /* without validation losses, the training loss is judged */
    in.val_loss = NULL;
    in.train_loss = val_loss;
    a = must_run (&in);
    o = ty_analysis_find (&a, TY_OBS_UNDERTRAINED);
    assert_non_null (o);
    assert_non_null (strstr (o->message, "training"));

    /* one epoch: can't tell, an info that does not change the verdict */
    in.n_loss_epochs = 1;
    a = must_run (&in);
    assert_null (ty_analysis_find (&a, TY_OBS_UNDERTRAINED));
    o = ty_analysis_find (&a, TY_OBS_SHORT_HISTORY);
    assert_non_null (o);
    assert_int_equal (o->severity, TY_OBS_INFO);
    assert_int_equal (a.recommendation, TY_REC_ACCEPT);
}

static void
test_analysis_revert_on_gate_or_production (void **state)
{
    (void) state;
    ty_analysis_input_t in;
    s_healthy (&in);
    in.gate_passed = 0;
    ty_analysis_t a = must_run (&in);
    assert_non_null (ty_analysis_find (&a, TY_OBS_GATE_FAILED));
    assert_int_equal (a.recommendation, TY_REC_REVERT);

    s_healthy (&in);
    in.production_score = 0.92;   /* candidate 0.885: worse by 0.035 */
    a = must_run (&in);
    const ty_observation_t *o = ty_analysis_find (&a, TY_OBS_WORSE_THAN_PRODUCTION);
    assert_non_null (o);
    assert_true (fabs (o->value - 0.035) < 1e-12);
    assert_int_equal (a.recommendation, TY_REC_REVERT);

    /* within tolerance is not worse */
    in.production_score = 0.888;
    a = must_run (&in);
    assert_null (ty_analysis_find (&a, TY_OBS_WORSE_THAN_PRODUCTION));

    /* a custom config moves the line */
    ty_analysis_config_t cfg;
    ty_analysis_config_init (&cfg);
    cfg.production_tolerance = 0.0;
    assert_int_equal (ty_analysis_run (&in, &cfg, &a), TY_OK);
    assert_non_null (ty_analysis_find (&a, TY_OBS_WORSE_THAN_PRODUCTION));

    cJSON *j = ty_analysis_json (&a);
    assert_non_null (j);
    assert_string_equal (cJSON_GetObjectItem (j, "recommendation")->valuestring, "revert");
    const cJSON *obs = cJSON_GetObjectItem (j, "observations");
    assert_int_equal (cJSON_GetArraySize (obs), 1);
    assert_string_equal (cJSON_GetObjectItem (cJSON_GetArrayItem (obs, 0), "kind")->valuestring,
                         "worse_than_production");
    cJSON_Delete (j);
}

static void
test_analysis_empty_input (void **state)
{
    (void) state;
    ty_analysis_input_t in;
    ty_analysis_input_init (&in);
    ty_analysis_t a = must_run (&in);
    assert_int_equal (a.n_observations, 0);
    assert_int_equal (a.recommendation, TY_REC_ACCEPT);
    assert_int_equal (ty_analysis_run (NULL, NULL, &a), TY_EINVAL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_analysis_healthy_run_is_accepted),
        cmocka_unit_test (test_analysis_overfitting_gap),
        cmocka_unit_test (test_analysis_val_loss_rising),
        cmocka_unit_test (test_analysis_few_samples_and_low_recall),
        cmocka_unit_test (test_analysis_undertrained),
        cmocka_unit_test (test_analysis_revert_on_gate_or_production),
        cmocka_unit_test (test_analysis_empty_input),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

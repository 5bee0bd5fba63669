/*  test_gate: the quality gate. A gate with one failing threshold reports
 *  exactly that check as FAIL with its measured value and threshold, and
 *  the verdict FAIL; everything else PASSes. Spec parsing refuses typos and
 *  out-of-range thresholds; a missing measurement fails rather than passing
 *  by omission, except the regression check without a production model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "ty_error.h"
#include "ty_gate.h"

static const char *s_full_spec =
    "{\"min_accuracy\": 0.90, \"min_class_recall\": 0.50, \"min_macro_f1\": 0.80,"
    " \"min_roc_auc\": 0.85, \"max_p95_latency_ms\": 20, \"max_memory_mb\": 512,"
    " \"min_high_conf_share\": 0.60, \"max_accuracy_regression\": 0.01,"
    " \"high_conf_threshold\": 0.8}";

static const double s_recall[] = { 0.95, 0.70, 0.88 };
static const int64_t s_support[] = { 100, 40, 60 };

/* Measurements that pass s_full_spec everywhere. */
static void
s_good (ty_gate_measured_t *m)
{
    ty_gate_measured_init (m);
    m->accuracy = 0.93;
    m->macro_f1 = 0.86;
    m->roc_auc = 0.97;
    m->p95_latency_ms = 12.5;
    m->memory_mb = 300;
    m->high_conf_share = 0.75;
    m->production_accuracy = 0.925;
    m->class_recall = s_recall;
    m->class_support = s_support;
    m->n_classes = 3;
}

static void
must_parse (const char *json, ty_gate_spec_t *spec)
{
    char err[TY_GATE_ERR_MAX] = "";
    int rc = ty_gate_spec_parse (json, spec, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("parse failed: %s", err);
}

static void
test_gate_all_pass (void **state)
{
    (void) state;
    ty_gate_spec_t spec;
    must_parse (s_full_spec, &spec);
    assert_true (spec.high_conf_threshold == 0.8);
    ty_gate_measured_t m;
    s_good (&m);
    ty_gate_result_t r;
    assert_int_equal (ty_gate_evaluate (&spec, &m, &r), TY_OK);
    assert_int_equal (r.n_checks, TY_GATE_KIND_COUNT);
    assert_true (r.passed);
    for (size_t i = 0; i < r.n_checks; i++)
        assert_int_equal (r.checks[i].status, TY_GATE_PASS);
    const ty_gate_check_t *rec = ty_gate_result_find (&r, TY_GATE_MIN_CLASS_RECALL);
    assert_non_null (rec);
    assert_true (rec->measured == 0.70);
    assert_int_equal (rec->class_index, 1);
    assert_int_equal (rec->n_failing, 0);
}

/* The test: one threshold broken, exactly that check FAILs, with
 * its values, and the verdict is FAIL. Done for each check in turn. */
static void
test_gate_one_failing_threshold_reported_exactly (void **state)
{
    (void) state;
    ty_gate_spec_t spec;
    must_parse (s_full_spec, &spec);
    static const double bad_recall[] = { 0.95, 0.30, 0.88 };
    for (int k = 0; k < TY_GATE_KIND_COUNT; k++) {
        ty_gate_measured_t m;
        s_good (&m);
        double want = NAN;
        switch ((ty_gate_kind_t) k) {
        case TY_GATE_MIN_ACCURACY:        want = m.accuracy = 0.89; m.production_accuracy = 0.885; break;
        case TY_GATE_MIN_CLASS_RECALL:    m.class_recall = bad_recall; want = 0.30; break;
        case TY_GATE_MIN_MACRO_F1:        want = m.macro_f1 = 0.79; break;
        case TY_GATE_MIN_ROC_AUC:         want = m.roc_auc = 0.5; break;
        case TY_GATE_MAX_P95_LATENCY_MS:  want = m.p95_latency_ms = 20.5; break;
        case TY_GATE_MAX_MEMORY_MB:       want = m.memory_mb = 600; break;
        case TY_GATE_MIN_HIGH_CONF_SHARE: want = m.high_conf_share = 0.2; break;
        case TY_GATE_MAX_ACCURACY_REGRESSION:
            m.production_accuracy = 0.95;
            want = 0.95 - 0.93;
            break;
        case TY_GATE_KIND_COUNT: break;
        }
        ty_gate_result_t r;
        assert_int_equal (ty_gate_evaluate (&spec, &m, &r), TY_OK);
        assert_false (r.passed);
        for (size_t i = 0; i < r.n_checks; i++) {
            const ty_gate_check_t *c = &r.checks[i];
            if ((int) c->kind != k) {
                if (c->status != TY_GATE_PASS)
                    fail_msg ("breaking %s also failed %s", ty_gate_kind_name (k),
                              ty_gate_kind_name (c->kind));
                continue;
            }
            assert_int_equal (c->status, TY_GATE_FAIL);
            assert_true (c->measured == want);
            assert_true (c->threshold == spec.threshold[k]);
            assert_null (c->note);
        }
        /* and the JSON says the same */
        cJSON *j = ty_gate_result_json (&r, &spec);
        assert_non_null (j);
        assert_string_equal (cJSON_GetObjectItem (j, "verdict")->valuestring, "FAIL");
        const cJSON *checks = cJSON_GetObjectItem (j, "checks");
        int n_fail = 0;
        const cJSON *c;
        cJSON_ArrayForEach (c, checks) {
            if (strcmp (cJSON_GetObjectItem (c, "status")->valuestring, "FAIL") != 0)
                continue;
            n_fail++;
            assert_string_equal (cJSON_GetObjectItem (c, "check")->valuestring,
                                 ty_gate_kind_name (k));
            assert_true (cJSON_GetObjectItem (c, "measured")->valuedouble == want);
            assert_true (cJSON_GetObjectItem (c, "threshold")->valuedouble
                         == spec.threshold[k]);
        }
        assert_int_equal (n_fail, 1);
        cJSON_Delete (j);
    }
}

static void
test_gate_class_recall_details (void **state)
{
    (void) state;
    ty_gate_spec_t spec;
    ty_gate_spec_init (&spec);
    assert_int_equal (ty_gate_spec_set (&spec, TY_GATE_MIN_CLASS_RECALL, 0.6), TY_OK);
    /* class 3 has no test sample: its recall 0.0 is the zero-division
     * convention and must not fail the gate */
    const double recall[] = { 0.5, 0.9, 0.4, 0.0 };
    const int64_t support[] = { 10, 10, 10, 0 };
    ty_gate_measured_t m;
    ty_gate_measured_init (&m);
    m.class_recall = recall;
    m.class_support = support;
    m.n_classes = 4;
    ty_gate_result_t r;
    assert_int_equal (ty_gate_evaluate (&spec, &m, &r), TY_OK);
    assert_int_equal (r.n_checks, 1);
    assert_int_equal (r.checks[0].status, TY_GATE_FAIL);
    assert_int_equal (r.checks[0].class_index, 2);
    assert_int_equal (r.checks[0].n_failing, 2);
    assert_true (r.checks[0].measured == 0.4);
    char line[160];
    ty_gate_check_format (&r.checks[0], line, sizeof line);
    assert_non_null (strstr (line, "min_class_recall"));
    assert_non_null (strstr (line, "FAIL"));
    assert_non_null (strstr (line, "class 2"));
}

static void
test_gate_missing_measurements (void **state)
{
    (void) state;
    ty_gate_spec_t spec;
    must_parse ("{\"max_p95_latency_ms\": 50, \"max_accuracy_regression\": 0.02,"
                " \"min_roc_auc\": null}", &spec);
    assert_false (spec.enabled[TY_GATE_MIN_ROC_AUC]);   /* null = not checked */
    ty_gate_measured_t m;
    ty_gate_measured_init (&m);
    m.accuracy = 0.9;   /* no latency measured, no production model */
    ty_gate_result_t r;
    assert_int_equal (ty_gate_evaluate (&spec, &m, &r), TY_OK);
    assert_int_equal (r.n_checks, 2);
    const ty_gate_check_t *lat = ty_gate_result_find (&r, TY_GATE_MAX_P95_LATENCY_MS);
    const ty_gate_check_t *reg = ty_gate_result_find (&r, TY_GATE_MAX_ACCURACY_REGRESSION);
    assert_non_null (lat);
    assert_non_null (reg);
    assert_int_equal (lat->status, TY_GATE_FAIL);
    assert_string_equal (lat->note, "not measured");
    assert_int_equal (reg->status, TY_GATE_SKIP);
    assert_string_equal (reg->note, "no production model");
    assert_false (r.passed);
    /* with latency measured, the skip alone does not fail the gate */
    m.p95_latency_ms = 3;
    assert_int_equal (ty_gate_evaluate (&spec, &m, &r), TY_OK);
    assert_true (r.passed);
    assert_null (ty_gate_result_find (&r, TY_GATE_MIN_ACCURACY));
}

static void
test_gate_spec_rejects_bad_specs (void **state)
{
    (void) state;
    ty_gate_spec_t spec;
    char err[TY_GATE_ERR_MAX];
    assert_int_equal (ty_gate_spec_parse ("{\"min_acuracy\": 0.9}", &spec, err, sizeof err),
                      TY_EINVAL);
    assert_non_null (strstr (err, "min_acuracy"));
    assert_int_equal (ty_gate_spec_parse ("{\"min_accuracy\": 1.5}", &spec, err, sizeof err),
                      TY_EINVAL);
    assert_int_equal (ty_gate_spec_parse ("{\"max_memory_mb\": -1}", &spec, err, sizeof err),
                      TY_EINVAL);
    assert_int_equal (ty_gate_spec_parse ("{\"min_accuracy\": \"0.9\"}", &spec, err, sizeof err),
                      TY_EINVAL);
    assert_int_equal (ty_gate_spec_parse ("[0.9]", &spec, err, sizeof err), TY_EINVAL);
    assert_int_equal (ty_gate_spec_parse ("{", &spec, NULL, 0), TY_EINVAL);
    /* a refused spec leaves an empty gate, not half of one */
    assert_int_equal (ty_gate_spec_parse ("{\"min_accuracy\": 0.9, \"bogus\": 1}", &spec,
                                          err, sizeof err), TY_EINVAL);
    assert_false (spec.enabled[TY_GATE_MIN_ACCURACY]);
    assert_int_equal (ty_gate_spec_set (&spec, TY_GATE_MAX_ACCURACY_REGRESSION, -0.01),
                      TY_OK);   /* "must improve by a point" */
    assert_int_equal (ty_gate_spec_set (&spec, TY_GATE_MIN_ROC_AUC, NAN), TY_EINVAL);
    assert_int_equal (ty_gate_spec_set (&spec, TY_GATE_KIND_COUNT, 0.5), TY_EINVAL);
    /* an empty gate passes */
    must_parse ("{}", &spec);
    ty_gate_measured_t m;
    ty_gate_measured_init (&m);
    ty_gate_result_t r;
    assert_int_equal (ty_gate_evaluate (&spec, &m, &r), TY_OK);
    assert_int_equal (r.n_checks, 0);
    assert_true (r.passed);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_gate_all_pass),
        cmocka_unit_test (test_gate_one_failing_threshold_reported_exactly),
        cmocka_unit_test (test_gate_class_recall_details),
        cmocka_unit_test (test_gate_missing_measurements),
        cmocka_unit_test (test_gate_spec_rejects_bad_specs),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

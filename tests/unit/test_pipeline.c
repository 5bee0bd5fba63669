/*  test_pipeline: pipeline files -> validated, expanded steps. Every error
 *  names the file, the line and the field; foreach pairs branch by branch;
 *  grids are cartesian with sorted keys; --set overrides params. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ty_pipeline.h"

static char s_err [TY_PIPELINE_ERR_LEN];

static ty_pipeline_t *
s_must_load (const char *yaml, const char *const *sets, size_t nsets)
{
    ty_pipeline_t *p = NULL;
    int rc = ty_pipeline_load_string (yaml, "t.yaml", sets, nsets, &p, s_err, sizeof s_err);
    if (rc != TY_OK)
        fail_msg ("load: %s", s_err);
    return p;
}

/* The load fails and the message holds every one of the given pieces. */
static void
s_must_fail (const char *yaml, const char *const *sets, size_t nsets, ...)
{
    ty_pipeline_t *p = NULL;
    int rc = ty_pipeline_load_string (yaml, "t.yaml", sets, nsets, &p, s_err, sizeof s_err);
    assert_int_equal (rc, TY_EINVAL);
    assert_null (p);
    va_list ap;
    va_start (ap, nsets);
    const char *want;
    while ((want = va_arg (ap, const char *)))
        if (!strstr (s_err, want))
            fail_msg ("error '%s' lacks '%s'", s_err, want);
    va_end (ap);
}

static long
s_find (const ty_pipeline_t *p, const char *name)
{
    for (size_t i = 0; i < ty_pipeline_nsteps (p); i++)
        if (!strcmp (ty_pipeline_step_name (p, i), name))
            return (long) i;
    fail_msg ("no step %s", name);
    return -1;
}

static const char *
s_map (Ty__TrainSpec__ParamsEntry **e, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp (e [i]->key, key))
            return e [i]->value;
    return NULL;
}

#define S_FULL \
    "name: fortunes-nightly\n" \
    "params: {dataset: fortunes, epochs: 5}\n" \
    "steps:\n" \
    "  prepare:  {type: prepare, dataset: \"${params.dataset}\", source: /x.tsv, format: tsv}\n" \
    "  train:    {type: train, needs: [prepare], dataset: \"${prepare.dataset}@${prepare.version}\",\n" \
    "             model_kind: textclf, model_name: fortunes, epochs: \"${params.epochs}\", retries: 2,\n" \
    "             timeout: 30m, priority: 10, resources: {threads: 2}, hidden: [64, 32], lr: 0.5}\n" \
    "  evaluate: {type: evaluate, needs: [train], model: \"${train.model}\", gate: {min_accuracy: 0.8}}\n" \
    "  promote:  {type: promote, needs: [evaluate], when: \"${evaluate.gate} == passed\",\n" \
    "             model: \"${train.model}\", stage: production}\n"

static void
test_pipeline_full_file_maps_fields (void **state)
{
    (void) state;
    ty_pipeline_t *p = s_must_load (S_FULL, NULL, 0);
    assert_string_equal (ty_pipeline_name (p), "fortunes-nightly");
    assert_int_equal (ty_pipeline_nsteps (p), 4);
    const Ty__JobSpec *prep = ty_pipeline_step_spec (p, (size_t) s_find (p, "prepare"));
    assert_int_equal (prep->kind_case, TY__JOB_SPEC__KIND_PREPARE);
    assert_string_equal (prep->prepare->dataset, "fortunes");
    assert_string_equal (prep->name, "fortunes-nightly/prepare");
    size_t ti = (size_t) s_find (p, "train");
    const Ty__JobSpec *tr = ty_pipeline_step_spec (p, ti);
    assert_int_equal (tr->kind_case, TY__JOB_SPEC__KIND_TRAIN);
    /* step references stay for the runtime; params are substituted */
    assert_string_equal (tr->train->dataset, "${prepare.dataset}@${prepare.version}");
    assert_int_equal (tr->train->epochs, 5);
    assert_true (tr->train->lr == 0.5);
    assert_int_equal (tr->train->n_hidden, 2);
    assert_int_equal (tr->train->hidden [1], 32);
    assert_int_equal (tr->max_attempts, 3);
    assert_int_equal (tr->timeout_ms, 30u * 60 * 1000);
    assert_int_equal (tr->priority, 10);
    assert_int_equal (tr->n_resources, 1);
    assert_string_equal (tr->resources [0]->key, "threads");
    assert_string_equal (tr->resources [0]->value, "2");
    assert_int_equal (ty_pipeline_step_nparents (p, ti), 1);
    assert_string_equal (ty_pipeline_step_name (p, ty_pipeline_step_parent (p, ti, 0)), "prepare");
    const Ty__JobSpec *ev = ty_pipeline_step_spec (p, (size_t) s_find (p, "evaluate"));
    assert_string_equal (ev->evaluate->gate, "{\"min_accuracy\":0.8}");
    const Ty__JobSpec *pr = ty_pipeline_step_spec (p, (size_t) s_find (p, "promote"));
    assert_int_equal (pr->kind_case, TY__JOB_SPEC__KIND_CONTROL);
    assert_string_equal (pr->control->action, "promote");
    assert_string_equal (pr->control->stage, "production");
    assert_string_equal (pr->when, "${evaluate.gate} == passed");
    /* topological: every parent comes before its child */
    for (size_t i = 0; i < ty_pipeline_nsteps (p); i++)
        for (size_t j = 0; j < ty_pipeline_step_nparents (p, i); j++)
            assert_true (ty_pipeline_step_parent (p, i, j) < i);
    ty_pipeline_destroy (&p);
    assert_null (p);
    ty_pipeline_destroy (&p);
}

static void
test_pipeline_set_overrides_params (void **state)
{
    (void) state;
    const char *sets [] = { "epochs=7", "dataset=news" };
    ty_pipeline_t *p = s_must_load (S_FULL, sets, 2);
    assert_int_equal (ty_pipeline_step_spec (p, (size_t) s_find (p, "train"))->train->epochs, 7);
    assert_string_equal (ty_pipeline_step_spec (p, (size_t) s_find (p, "prepare"))->prepare->dataset,
                         "news");
    ty_pipeline_destroy (&p);
    const char *bad [] = { "epoch=7" };
    s_must_fail (S_FULL, bad, 1, "t.yaml", "--set", "'epoch'", "params: dataset, epochs", NULL);
    const char *bad_value [] = { "epochs=five" };
    s_must_fail (S_FULL, bad_value, 1, "t.yaml:6:", "steps.train.epochs", "'five'", NULL);
}

static void
test_pipeline_file_from_disk (void **state)
{
    (void) state;
    char path [] = "/tmp/test_pipeline_XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, S_FULL, strlen (S_FULL)), (ssize_t) strlen (S_FULL));
    close (fd);
    ty_pipeline_t *p = NULL;
    assert_int_equal (ty_pipeline_load (path, NULL, 0, &p, s_err, sizeof s_err), TY_OK);
    assert_int_equal (ty_pipeline_nsteps (p), 4);
    ty_pipeline_destroy (&p);
    unlink (path);
    assert_int_not_equal (ty_pipeline_load (path, NULL, 0, &p, s_err, sizeof s_err), TY_OK);
    assert_non_null (strstr (s_err, path));
}

static void
test_pipeline_unknown_step_type (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  a: {type: noop}\n  b: {type: trian, needs: [a]}\n", NULL, 0,
                 "t.yaml:4:", "steps.b.type", "unknown step type 'trian'", NULL);
}

static void
test_pipeline_unknown_field_lists_fields (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  t:\n    type: train\n    dataset: d\n    epoch: 3\n", NULL, 0,
                 "t.yaml:6:", "steps.t.epoch", "unknown field 'epoch' for a train step",
                 "epochs", "model_kind", "needs", NULL);
}

static void
test_pipeline_wrong_type_or_range (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, sleep_ms: -1}\n", NULL, 0,
                 "t.yaml:3:", "steps.n.sleep_ms", "'-1'", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, fail: maybe}\n", NULL, 0,
                 "t.yaml:3:", "steps.n.fail", "true or false", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, sleep_ms: 99999999999}\n", NULL, 0,
                 "steps.n.sleep_ms", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, priority: 5000}\n", NULL, 0,
                 "t.yaml:3:", "steps.n.priority", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, timeout: 10}\n", NULL, 0,
                 "t.yaml:3:", "steps.n.timeout", "30m", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, retries: lots}\n", NULL, 0,
                 "t.yaml:3:", "steps.n.retries", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, resources: {threads: many}}\n", NULL, 0,
                 "t.yaml:3:", "steps.n.resources", "threads", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, sleep_ms: [1, 2]}\n", NULL, 0,
                 "t.yaml:3:", "steps.n.sleep_ms", "single value", NULL);
}

static void
test_pipeline_missing_need (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  a: {type: noop}\n  b:\n    type: noop\n    needs: [a, c]\n",
                 NULL, 0, "t.yaml:6:", "steps.b.needs", "no step named 'c'", NULL);
}

static void
test_pipeline_cycle_named (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  a: {type: noop, needs: [c]}\n  b: {type: noop, needs: [a]}\n"
                 "  c: {type: noop, needs: [b]}\n", NULL, 0,
                 "t.yaml:", "needs", "cycle", "a", "b", "c", NULL);
    s_must_fail ("name: x\nsteps:\n  a: {type: noop, needs: [a]}\n", NULL, 0,
                 "t.yaml:3:", "cycle: a needs itself", NULL);
}

static void
test_pipeline_duplicate_step (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  a: {type: noop}\n  a: {type: noop}\n", NULL, 0,
                 "t.yaml:4:", "steps", "duplicate key 'a'", "line 3", NULL);
}

static void
test_pipeline_reference_not_ancestor (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  a: {type: noop}\n  b: {type: noop}\n"
                 "  c: {type: noop, needs: [a], fail_message: \"${b.summary}\"}\n", NULL, 0,
                 "t.yaml:5:", "steps.c.fail_message", "'b' is not among the steps", NULL);
    /* an ancestor through another step is fine */
    ty_pipeline_t *p = s_must_load ("name: x\nsteps:\n  a: {type: noop}\n  b: {type: noop, needs: [a]}\n"
                                    "  c: {type: noop, needs: [b], fail_message: \"${a.summary}\"}\n",
                                    NULL, 0);
    ty_pipeline_destroy (&p);
}

static void
test_pipeline_reference_unknown_output (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  t: {type: train, dataset: d}\n"
                 "  e: {type: evaluate, needs: [t], model: \"${t.modle}\"}\n", NULL, 0,
                 "t.yaml:4:", "steps.e.model", "a train step has no output 'modle'", "model",
                 NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, fail_message: \"${params.nope}\"}\n",
                 NULL, 0, "t.yaml:3:", "no param 'nope'", NULL);
    /* evaluate metrics and aggregate keys are outputs */
    ty_pipeline_t *p = s_must_load ("name: x\nsteps:\n  e: {type: evaluate, model: m}\n"
                                    "  a: {type: aggregate, needs: [e]}\n"
                                    "  n: {type: noop, needs: [a], when: \"${e.macro_f1} > 0.5\","
                                    " fail_message: \"${a.accuracy.mean}\"}\n", NULL, 0);
    ty_pipeline_destroy (&p);
}

static void
test_pipeline_bad_when (void **state)
{
    (void) state;
    static const char *const bad [] = {
        "${e.gate} = passed", "${e.gate} == ", "passed", "${e.gate} == passed == x",
        "${e.gate == passed", "${e.gate} == two words", NULL };
    for (size_t i = 0; bad [i]; i++) {
        char yaml [512];
        snprintf (yaml, sizeof yaml, "name: x\nsteps:\n  e: {type: evaluate, model: m}\n"
                  "  p:\n    type: promote\n    needs: [e]\n    when: '%s'\n    model: m\n", bad [i]);
        s_must_fail (yaml, NULL, 0, "t.yaml:7:", "steps.p.when", NULL);
    }
    static const char *const good [] = {
        "${e.gate} == passed", "${e.accuracy} >= 0.8", "${e.gate}", "'x y' != ${e.gate}",
        "${e.accuracy}<${e.macro_f1}", NULL };
    for (size_t i = 0; good [i]; i++) {
        char yaml [512];
        snprintf (yaml, sizeof yaml, "name: x\nsteps:\n  e: {type: evaluate, model: m}\n"
                  "  p: {type: promote, needs: [e], when: \"%s\", model: m}\n", good [i]);
        ty_pipeline_t *p = s_must_load (yaml, NULL, 0);
        ty_pipeline_destroy (&p);
    }
}

static void
test_pipeline_yaml_syntax_error_has_line (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  a: {type: noop\n  b: [\n", NULL, 0, "t.yaml:", "YAML", NULL);
    s_must_fail ("name: x\nsteps:\n  a: {type: noop}\nschedule: daily\n", NULL, 0,
                 "t.yaml:4:", "schedule", "unknown key", NULL);
    s_must_fail ("steps:\n  a: {type: noop}\n", NULL, 0, "name", "missing", NULL);
}

#define S_KFOLD \
    "name: cv\n" \
    "params: {k: 3}\n" \
    "steps:\n" \
    "  train: {type: train, dataset: d, foreach: {fold: \"range(${params.k})\"},\n" \
    "          params: {holdout_fold: \"${item.fold}\", folds: \"${params.k}\"}}\n" \
    "  evaluate: {type: evaluate, needs: [train], foreach: {fold: [0, 1, 2]},\n" \
    "             model: \"${train.model}\", params: {fold: \"${foreach.fold}\"}}\n" \
    "  cv: {type: aggregate, needs: [evaluate], metrics: [accuracy]}\n"

static void
test_pipeline_foreach_pairs_branches (void **state)
{
    (void) state;
    ty_pipeline_t *p = s_must_load (S_KFOLD, NULL, 0);
    assert_int_equal (ty_pipeline_nsteps (p), 7);
    for (int f = 0; f < 3; f++) {
        char tn [32], en [32], ref [64], fs [4];
        snprintf (tn, sizeof tn, "train[fold=%d]", f);
        snprintf (en, sizeof en, "evaluate[fold=%d]", f);
        snprintf (ref, sizeof ref, "${train[fold=%d].model}", f);
        snprintf (fs, sizeof fs, "%d", f);
        size_t ti = (size_t) s_find (p, tn), ei = (size_t) s_find (p, en);
        const Ty__TrainSpec *t = ty_pipeline_step_spec (p, ti)->train;
        assert_string_equal (s_map (t->params, t->n_params, "holdout_fold"), fs);
        assert_string_equal (s_map (t->params, t->n_params, "folds"), "3");
        const Ty__EvaluateSpec *e = ty_pipeline_step_spec (p, ei)->evaluate;
        assert_string_equal (e->model, ref);
        assert_string_equal (s_map ((Ty__TrainSpec__ParamsEntry **) e->params, e->n_params,
                                    "fold"), fs);
        /* paired: evaluate[fold=f] needs exactly train[fold=f] */
        assert_int_equal (ty_pipeline_step_nparents (p, ei), 1);
        assert_int_equal (ty_pipeline_step_parent (p, ei, 0), ti);
        char jn [48];
        snprintf (jn, sizeof jn, "cv/%s", en);
        assert_string_equal (ty_pipeline_step_spec (p, ei)->name, jn);
    }
    /* the aggregate needs every branch */
    size_t ci = (size_t) s_find (p, "cv");
    assert_int_equal (ty_pipeline_step_nparents (p, ci), 3);
    ty_pipeline_destroy (&p);
    const char *sets [] = { "k=2" };
    /* evaluate lists fold 2 that train no longer has: no partner */
    s_must_fail (S_KFOLD, sets, 1, "t.yaml:7:", "steps.evaluate.model", "[fold=2]",
                 "to pair with", NULL);
    /* the same without a reference: the needs cannot pair either */
    s_must_fail ("name: x\nsteps:\n  t: {type: noop, foreach: {fold: [0, 1]}}\n"
                 "  e: {type: noop, needs: [t], foreach: {fold: [0, 2]}}\n", NULL, 0,
                 "t.yaml:4:", "steps.e.foreach", "e[fold=2]", "no partner", NULL);
}

static void
test_pipeline_foreach_reference_rules (void **state)
{
    (void) state;
    /* a step without foreach cannot say which branch ${train.model} is */
    s_must_fail ("name: x\nsteps:\n  train: {type: train, dataset: d, foreach: {fold: [0, 1]}}\n"
                 "  e: {type: evaluate, needs: [train], model: \"${train.model}\"}\n", NULL, 0,
                 "t.yaml:4:", "steps.e.model", "once per foreach branch", "${train[fold=0].model}",
                 NULL);
    /* but may name one */
    ty_pipeline_t *p = s_must_load ("name: x\nsteps:\n  train: {type: train, dataset: d, foreach: "
                                    "{fold: [0, 1]}}\n  e: {type: evaluate, needs: [train], model: "
                                    "\"${train[fold=1].model}\"}\n", NULL, 0);
    ty_pipeline_destroy (&p);
    s_must_fail ("name: x\nsteps:\n  train: {type: train, dataset: d, foreach: {fold: [0, 1]}}\n"
                 "  e: {type: evaluate, needs: [train], model: \"${train[fold=7].model}\"}\n", NULL, 0,
                 "t.yaml:4:", "no branch [fold=7]", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, fail_message: \"${item.fold}\"}\n", NULL, 0,
                 "t.yaml:3:", "no foreach", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, foreach: {fold: []}}\n", NULL, 0,
                 "t.yaml:3:", "steps.n.foreach.fold", "no values", NULL);
    s_must_fail ("name: x\nsteps:\n  n: {type: noop, foreach: {fold: \"range(x)\"}}\n", NULL, 0,
                 "t.yaml:3:", "steps.n.foreach.fold", "range(n)", NULL);
}

static void
test_pipeline_grid_is_cartesian_sorted (void **state)
{
    (void) state;
    ty_pipeline_t *p = s_must_load ("name: sweep\nsteps:\n"
                                    "  train: {type: train, dataset: d, foreach: {lr: [0.1, 0.5], dim: [10, 50]},\n"
                                    "          lr: \"${item.lr}\", dim: \"${item.dim}\"}\n"
                                    "  best: {type: aggregate, needs: [train], best_by: best_val_accuracy}\n",
                                    NULL, 0);
    assert_int_equal (ty_pipeline_nsteps (p), 5);
    static const char *const names [] = { "train[dim=10,lr=0.1]", "train[dim=10,lr=0.5]",
                                          "train[dim=50,lr=0.1]", "train[dim=50,lr=0.5]" };
    static const unsigned dims [] = { 10, 10, 50, 50 };
    static const double lrs [] = { 0.1, 0.5, 0.1, 0.5 };
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal (ty_pipeline_step_name (p, i), names [i]);
        assert_int_equal (ty_pipeline_step_spec (p, i)->train->dim, dims [i]);
        assert_true (ty_pipeline_step_spec (p, i)->train->lr == lrs [i]);
    }
    assert_int_equal (ty_pipeline_step_nparents (p, 4), 4);
    assert_string_equal (ty_pipeline_step_spec (p, 4)->control->best_by, "best_val_accuracy");
    ty_pipeline_destroy (&p);
}

static void
test_pipeline_number_field_rejects_step_reference (void **state)
{
    (void) state;
    s_must_fail ("name: x\nsteps:\n  t: {type: train, dataset: d}\n"
                 "  u: {type: train, needs: [t], dataset: d, epochs: \"${t.epochs}\"}\n", NULL, 0,
                 "t.yaml:4:", "steps.u.epochs", "only text fields", NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_pipeline_full_file_maps_fields),
        cmocka_unit_test (test_pipeline_set_overrides_params),
        cmocka_unit_test (test_pipeline_file_from_disk),
        cmocka_unit_test (test_pipeline_unknown_step_type),
        cmocka_unit_test (test_pipeline_unknown_field_lists_fields),
        cmocka_unit_test (test_pipeline_wrong_type_or_range),
        cmocka_unit_test (test_pipeline_missing_need),
        cmocka_unit_test (test_pipeline_cycle_named),
        cmocka_unit_test (test_pipeline_duplicate_step),
        cmocka_unit_test (test_pipeline_reference_not_ancestor),
        cmocka_unit_test (test_pipeline_reference_unknown_output),
        cmocka_unit_test (test_pipeline_bad_when),
        cmocka_unit_test (test_pipeline_yaml_syntax_error_has_line),
        cmocka_unit_test (test_pipeline_foreach_pairs_branches),
        cmocka_unit_test (test_pipeline_foreach_reference_rules),
        cmocka_unit_test (test_pipeline_grid_is_cartesian_sorted),
        cmocka_unit_test (test_pipeline_number_field_rejects_step_reference),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_subst: ${step.key} references in job specs (workers/ty_subst.h),
 *  on real protobuf-c messages unpacked from the wire, as the runtime gets
 *  them: nested messages, map values, repeated strings, oneof members, the
 *  $${ escape, the unresolved-reference message and untouched specs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"
#include "ty_subst.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct {
    Ty__Output  items [16];
    Ty__Output *ptrs [16];
    size_t      n;
} s_inputs_t;

static void
s_add (s_inputs_t *in, const char *key, const char *value)
{
    assert_true (in->n < 16);
    ty__output__init (&in->items [in->n]);
    in->items [in->n].key = (char *) key;
    in->items [in->n].value = (char *) value;
    in->ptrs [in->n] = &in->items [in->n];
    in->n++;
}

static const Ty__Output *const *
s_list (const s_inputs_t *in)
{
    return (const Ty__Output *const *) in->ptrs;
}

/* Pack and unpack: the runtime's spec comes from ty__job_spec__unpack. */
static Ty__JobSpec *
s_roundtrip (const Ty__JobSpec *spec)
{
    size_t len = ty__job_spec__get_packed_size (spec);
    uint8_t *buf = malloc (len ? len : 1);
    assert_non_null (buf);
    ty__job_spec__pack (spec, buf);
    Ty__JobSpec *out = ty__job_spec__unpack (NULL, len, buf);
    free (buf);
    assert_non_null (out);
    return out;
}

static const char *
s_map_get (Ty__TrainSpec__ParamsEntry **entries, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp (entries [i]->key, key))
            return entries [i]->value;
    return NULL;
}

/* ---- tests ---------------------------------------------------------------- */

static void
test_subst_string_basic_and_branch_keys (void **state)
{
    s_inputs_t in = { .n = 0 };
    s_add (&in, "prepare.dataset", "fruit");
    s_add (&in, "prepare.version", "3");
    s_add (&in, "train[fold=2].model", "clf@7");
    s_add (&in, "empty.value", "");
    char err [TY_SUBST_ERR_MAX], *out = NULL;
    assert_int_equal (ty_subst_string ("${prepare.dataset}@${prepare.version}", s_list (&in),
                                       in.n, &out, err, sizeof err), TY_OK);
    assert_string_equal (out, "fruit@3");
    free (out);
    /* A foreach branch key holds '=' and brackets: the whole text is the key. */
    assert_int_equal (ty_subst_string ("model ${train[fold=2].model}!", s_list (&in), in.n,
                                       &out, err, sizeof err), TY_OK);
    assert_string_equal (out, "model clf@7!");
    free (out);
    assert_int_equal (ty_subst_string ("[${empty.value}]", s_list (&in), in.n, &out, err,
                                       sizeof err), TY_OK);
    assert_string_equal (out, "[]");
    free (out);
    (void) state;
}

static void
test_subst_escapes (void **state)
{
    s_inputs_t in = { .n = 0 };
    s_add (&in, "a.b", "X");
    char err [TY_SUBST_ERR_MAX], *out = NULL;
    /* $${ is a literal ${ (and is not looked up); other $ stay as they are. */
    assert_int_equal (ty_subst_string ("$${a.b} is ${a.b}; $5, $$, a$ and ${a.b}$",
                                       s_list (&in), in.n, &out, err, sizeof err), TY_OK);
    assert_string_equal (out, "${a.b} is X; $5, $$, a$ and X$");
    free (out);
    /* An escaped reference to a key that does not exist is no error. */
    assert_int_equal (ty_subst_string ("$${nope.x}", NULL, 0, &out, err, sizeof err), TY_OK);
    assert_string_equal (out, "${nope.x}");
    free (out);
    (void) state;
}

static void
test_subst_unresolved_message (void **state)
{
    s_inputs_t in = { .n = 0 };
    s_add (&in, "prepare.version", "3");
    s_add (&in, "train.model", "clf@7");
    s_add (&in, "train.version", "7");
    char err [TY_SUBST_ERR_MAX], *out = (char *) "untouched";
    assert_int_equal (ty_subst_string ("x ${train.modle} y", s_list (&in), in.n, &out, err,
                                       sizeof err), TY_EINVAL);
    assert_null (out);
    /* The same step's keys come first: the typo is in the key. */
    assert_string_equal (err, "unresolved reference ${train.modle} "
                              "(inputs: train.model, train.version, prepare.version)");
    assert_int_equal (ty_subst_string ("${a.b}", NULL, 0, &out, err, sizeof err), TY_EINVAL);
    assert_string_equal (err, "unresolved reference ${a.b} (no inputs)");
    /* Many inputs: a few named, then "...". */
    s_inputs_t many = { .n = 0 };
    static const char *keys [] = { "s.k0", "s.k1", "s.k2", "s.k3", "s.k4", "s.k5", "s.k6",
                                   "s.k7", "s.k8", "s.k9" };
    for (size_t i = 0; i < 10; i++)
        s_add (&many, keys [i], "v");
    assert_int_equal (ty_subst_string ("${s.zz}", s_list (&many), many.n, &out, err,
                                       sizeof err), TY_EINVAL);
    assert_non_null (strstr (err, "s.k0, s.k1"));
    assert_non_null (strstr (err, ", ...)"));
    assert_null (strstr (err, "s.k9"));
    /* Malformed: empty key, missing brace. */
    assert_int_equal (ty_subst_string ("${}", s_list (&in), in.n, &out, err, sizeof err),
                      TY_EINVAL);
    assert_non_null (strstr (err, "unresolved reference ${}"));
    assert_int_equal (ty_subst_string ("abc ${train.model", s_list (&in), in.n, &out, err,
                                       sizeof err), TY_EINVAL);
    assert_non_null (strstr (err, "without '}'"));
    /* A tiny buffer is cut, never overrun. */
    char small [16];
    assert_int_equal (ty_subst_string ("${train.modle}", s_list (&in), in.n, &out, small,
                                       sizeof small), TY_EINVAL);
    assert_int_equal (strlen (small), sizeof small - 1);
    (void) state;
}

/* A train spec: strings at the top, in a sub-message (the oneof member), in
   a map's values, and the JobSpec's own name. */
static void
test_subst_message_nested_and_map (void **state)
{
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__TrainSpec train = TY__TRAIN_SPEC__INIT;
    Ty__TrainSpec__ParamsEntry e1 = TY__TRAIN_SPEC__PARAMS_ENTRY__INIT;
    Ty__TrainSpec__ParamsEntry e2 = TY__TRAIN_SPEC__PARAMS_ENTRY__INIT;
    Ty__TrainSpec__ParamsEntry *entries [] = { &e1, &e2 };
    e1.key = "lr";
    e1.value = "${sweep[lr=0.1].lr}";
    e2.key = "note";
    e2.value = "plain";
    train.dataset = "${prepare.dataset}@${prepare.version}";
    train.model_kind = "textclf";
    train.model_name = "clf-$${literal}";
    train.params = entries;
    train.n_params = 2;
    train.epochs = 5;
    spec.kind_case = TY__JOB_SPEC__KIND_TRAIN;
    spec.train = &train;
    spec.name = "train on ${prepare.dataset}";
    spec.when = "";

    s_inputs_t in = { .n = 0 };
    s_add (&in, "prepare.dataset", "fruit");
    s_add (&in, "prepare.version", "3");
    s_add (&in, "sweep[lr=0.1].lr", "0.1");
    Ty__JobSpec *got = s_roundtrip (&spec);
    char err [TY_SUBST_ERR_MAX];
    assert_int_equal (ty_subst_message (&got->base, s_list (&in), in.n, err, sizeof err), TY_OK);
    assert_string_equal (got->train->dataset, "fruit@3");
    assert_string_equal (got->train->model_kind, "textclf");
    assert_string_equal (got->train->model_name, "clf-${literal}");
    assert_string_equal (got->name, "train on fruit");
    assert_int_equal (got->train->n_params, 2);
    assert_string_equal (s_map_get (got->train->params, got->train->n_params, "lr"), "0.1");
    assert_string_equal (s_map_get (got->train->params, got->train->n_params, "note"), "plain");
    assert_int_equal (got->train->epochs, 5);
    /* Still a valid message: it packs, and free_unpacked frees the new strings. */
    uint8_t buf [1024];
    assert_true (ty__job_spec__get_packed_size (got) < sizeof buf);
    ty__job_spec__pack (got, buf);
    ty__job_spec__free_unpacked (got, NULL);
    (void) state;
}

/* Repeated strings (ControlSpec.metrics) and the map of another message. */
static void
test_subst_message_repeated (void **state)
{
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__ControlSpec ctl = TY__CONTROL_SPEC__INIT;
    char *metrics [] = { "accuracy", "${pick.metric}", "f1" };
    Ty__ControlSpec__ParamsEntry e = TY__CONTROL_SPEC__PARAMS_ENTRY__INIT;
    Ty__ControlSpec__ParamsEntry *entries [] = { &e };
    e.key = "k";
    e.value = "${pick.metric}-x";
    ctl.action = "aggregate";
    ctl.metrics = metrics;
    ctl.n_metrics = 3;
    ctl.best_by = "${pick.metric}";
    ctl.params = entries;
    ctl.n_params = 1;
    spec.kind_case = TY__JOB_SPEC__KIND_CONTROL;
    spec.control = &ctl;
    s_inputs_t in = { .n = 0 };
    s_add (&in, "pick.metric", "macro_f1");
    Ty__JobSpec *got = s_roundtrip (&spec);
    char err [TY_SUBST_ERR_MAX];
    assert_int_equal (ty_subst_message (&got->base, s_list (&in), in.n, err, sizeof err), TY_OK);
    assert_int_equal (got->control->n_metrics, 3);
    assert_string_equal (got->control->metrics [0], "accuracy");
    assert_string_equal (got->control->metrics [1], "macro_f1");
    assert_string_equal (got->control->metrics [2], "f1");
    assert_string_equal (got->control->best_by, "macro_f1");
    assert_string_equal (got->control->params [0]->value, "macro_f1-x");
    ty__job_spec__free_unpacked (got, NULL);
    (void) state;
}

/* The error names the field, map key included; the message stays valid. */
static void
test_subst_message_missing_key (void **state)
{
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__EvaluateSpec ev = TY__EVALUATE_SPEC__INIT;
    Ty__EvaluateSpec__ParamsEntry e = TY__EVALUATE_SPEC__PARAMS_ENTRY__INIT;
    Ty__EvaluateSpec__ParamsEntry *entries [] = { &e };
    e.key = "threshold";
    e.value = "${tune.threshold}";
    ev.model = "${train.model}";
    ev.params = entries;
    ev.n_params = 1;
    spec.kind_case = TY__JOB_SPEC__KIND_EVALUATE;
    spec.evaluate = &ev;
    s_inputs_t in = { .n = 0 };
    s_add (&in, "train.model", "clf@2");
    Ty__JobSpec *got = s_roundtrip (&spec);
    char err [TY_SUBST_ERR_MAX];
    assert_int_equal (ty_subst_message (&got->base, s_list (&in), in.n, err, sizeof err),
                      TY_EINVAL);
    assert_string_equal (err, "unresolved reference ${tune.threshold} (inputs: train.model) "
                              "in field evaluate.params[threshold]");
    /* Partly substituted, but consistent: it packs and frees cleanly. */
    assert_string_equal (got->evaluate->model, "clf@2");
    uint8_t buf [512];
    assert_true (ty__job_spec__get_packed_size (got) < sizeof buf);
    ty__job_spec__pack (got, buf);
    ty__job_spec__free_unpacked (got, NULL);
    (void) state;
}

/* No ${ anywhere: not one string is replaced (same pointers, same bytes). */
static void
test_subst_message_without_refs_is_unchanged (void **state)
{
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__PrepareSpec prep = TY__PREPARE_SPEC__INIT;
    Ty__PrepareSpec__OptionsEntry e = TY__PREPARE_SPEC__OPTIONS_ENTRY__INIT;
    Ty__PrepareSpec__OptionsEntry *entries [] = { &e };
    e.key = "delimiter";
    e.value = "$";
    prep.dataset = "fruit";
    prep.source = "/data/fruit$1.csv";
    prep.options = entries;
    prep.n_options = 1;
    spec.kind_case = TY__JOB_SPEC__KIND_PREPARE;
    spec.prepare = &prep;
    spec.name = "prepare";
    Ty__JobSpec *got = s_roundtrip (&spec);
    size_t len = ty__job_spec__get_packed_size (got);
    uint8_t before [512], after [512];
    assert_true (len < sizeof before);
    ty__job_spec__pack (got, before);
    const char *dataset = got->prepare->dataset, *source = got->prepare->source;
    const char *opt = got->prepare->options [0]->value;
    char err [TY_SUBST_ERR_MAX];
    assert_int_equal (ty_subst_message (&got->base, NULL, 0, err, sizeof err), TY_OK);
    assert_ptr_equal (got->prepare->dataset, dataset);
    assert_ptr_equal (got->prepare->source, source);
    assert_ptr_equal (got->prepare->options [0]->value, opt);
    assert_int_equal (ty__job_spec__get_packed_size (got), len);
    ty__job_spec__pack (got, after);
    assert_memory_equal (before, after, len);
    ty__job_spec__free_unpacked (got, NULL);
    /* And an empty spec (nothing set at all) is fine too. */
    Ty__JobSpec empty = TY__JOB_SPEC__INIT;
    got = s_roundtrip (&empty);
    assert_int_equal (ty_subst_message (&got->base, NULL, 0, err, sizeof err), TY_OK);
    ty__job_spec__free_unpacked (got, NULL);
    (void) state;
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_subst_string_basic_and_branch_keys),
        cmocka_unit_test (test_subst_escapes),
        cmocka_unit_test (test_subst_unresolved_message),
        cmocka_unit_test (test_subst_message_nested_and_map),
        cmocka_unit_test (test_subst_message_repeated),
        cmocka_unit_test (test_subst_message_missing_key),
        cmocka_unit_test (test_subst_message_without_refs_is_unchanged),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

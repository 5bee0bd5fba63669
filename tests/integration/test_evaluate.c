/*  test_evaluate: the evaluate worker in a real cluster (redis-server,
 *  trainyard-broker, trainyard-evaluate) on real LMDB datasets and a real
 *  textclf model version, trained here in-process with ty_train_run (the
 *  train worker's own code, so the model dir is exactly what it writes).
 *
 *  - metrics.json holds the expected fields, and its figures equal a direct
 *    computation from the model's predictions done here;
 *  - a gate with one failing threshold reports exactly that check as FAIL
 *    with its measured value and threshold, and the job SUCCEEDS;
 *  - bad input fails the job with a message naming the problem: a missing
 *    version, a label set the model does not know, an empty split, a
 *    dataset of another task;
 *  - `trainyard evaluate` prints the report, `trainyard model compare`
 *    puts two of them side by side.
 *
 *  The harness starts workers as TY_BIN_DIR/trainyard-noop; the worker is
 *  started through a private bin dir whose "trainyard-noop" links to
 *  trainyard-evaluate, so the harness owns it (log, sanitizer scan, kill). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ty_it.h"
#include "ty_fixture.h"
#include <cjson/cJSON.h>
#include "ty_batch.h"
#include "ty_dataset.h"
#include "ty_registry.h"
#include "ty_report.h"
#include "ty_torch.h"
#include "ty_train.h"

#define S_JOB_MS       60000
#define S_NCLASSES     TY_FIXTURE_MAIL_NCLASSES
#define S_TEST         TY_FIXTURE_MAIL_TEST

typedef ty_fixture_cluster_t s_fix_t;

/* The text dataset: three keywords of its class among two shared noise
 * words; every 7th sample of class 2 gets class 0's words too, so the model
 * is not perfect and the confusion matrix has off-diagonal cells. labels
 * NULL: samples carry a regression target instead (another task). */
static void
s_write_dataset (const char *data, const char *name, const char *const *labels,
                 size_t ntest, int regression)
{
    ty_fixture_write_mail (data, name, labels, ntest,
                           TY_FIXTURE_MAIL_DECOYS | (regression ? TY_FIXTURE_MAIL_REGRESSION : 0));
}

/* Trains a textclf for a few epochs with the train worker's code: the model
 * version lands in <data>/models/<name>/<n>/. */
static void
s_train (const char *data, const char *dataset, const char *name, unsigned epochs)
{
    ty_fixture_train_textclf (data, dataset, name, epochs, 8, 1000, "test-evaluate-train");
}

static const ty_fixture_worker_t s_worker = {
    .env_name = "evaluate", .bin = "trainyard-evaluate", .worker_id = "ev1",
    .what = "evaluate",
};

static int
s_setup (void **state)
{
    return ty_fixture_cluster_setup (state, &s_worker);
}

/* Submits an evaluate job and waits for it to end in `want`. */
static void
s_evaluate (s_fix_t *f, const char *model, const char *dataset, const char *gate,
            const char *want, char *id)
{
    Ty__EvaluateSpec ev = TY__EVALUATE_SPEC__INIT;
    ev.model = (char *) model;
    ev.dataset = (char *) (dataset ? dataset : "");
    ev.gate = (char *) (gate ? gate : "");
    ev.latency_samples = 50;
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    spec.kind_case = TY__JOB_SPEC__KIND_EVALUATE;
    spec.evaluate = &ev;
    spec.max_attempts = 1;
    ty_it_must_submit (f->client, &spec, NULL, 0, NULL, id, NULL);
    if (ty_fixture_wait_job (f, id, want, S_JOB_MS, "ev1") != 0)
        fail_msg ("evaluate job %s did not reach %s", id, want);
}

static char *
s_output (s_fix_t *f, const char *id, const char *key)
{
    Ty__JobInfo *info = NULL;
    if (ty_client_status (f->client, id, TY_IT_RPC_MS, &info) != TY_OK)
        fail_msg ("status %s: %s", id, ty_client_errstr (f->client));
    char *v = NULL;
    for (size_t i = 0; i < info->n_outputs; i++)
        if (!strcmp (info->outputs [i]->key, key))
            v = strdup (info->outputs [i]->value);
    ty_client_free_msg (info);
    return v;
}

static cJSON *
s_must_load (s_fix_t *f, const char *model)
{
    char dir [PATH_MAX], path [PATH_MAX + 32], err [PATH_MAX + 64];
    uint64_t v;
    assert_int_equal (ty_report_model_dir (f->data, model, dir, sizeof dir, &v, NULL), TY_OK);
    snprintf (path, sizeof path, "%s/%s", dir, TY_REPORT_FILE);
    cJSON *doc = NULL;
    if (ty_report_load (path, &doc, err, sizeof err) != TY_OK)
        fail_msg ("%s", err);
    return doc;
}

/* The model's test-split predictions computed here, independently of the
 * worker and of ty_metrics: accuracy, per-class recall, confusion counts. */
typedef struct {
    size_t n;
    double accuracy;
    double recall [S_NCLASSES];
    double precision [S_NCLASSES];
    long   confusion [S_NCLASSES][S_NCLASSES];
    double mean_top_p;
} s_direct_t;

static void
s_direct (const char *data, const char *model_dir, const char *dataset, s_direct_t *d)
{
    memset (d, 0, sizeof *d);
    char path [PATH_MAX + 16], err [256];
    snprintf (path, sizeof path, "%s/model.pt", model_dir);
    ty_torch_model_t *m = NULL;
    ty_batch_feat_t *feat = NULL;
    ty_dataset_t *ds = NULL;
    ty_batch_set_t *set = NULL;
    assert_int_equal (ty_torch_load (path, 1, &m, err, sizeof err), TY_OK);
    assert_int_equal (ty_batch_feat_load (model_dir, &feat, err, sizeof err), TY_OK);
    assert_int_equal (ty_dataset_open (data, dataset, &ds), TY_OK);
    assert_int_equal (ty_batch_set_new (feat, ds, TY_SPLIT_TEST, 0, &set, err, sizeof err), TY_OK);
    d->n = ty_batch_set_count (set);
    assert_int_equal (ty_torch_output_width (m), S_NCLASSES);
    long hit = 0, pred [S_NCLASSES] = { 0 }, sup [S_NCLASSES] = { 0 };
    for (size_t i = 0; i < d->n; i++) {
        uint64_t idx = i;
        ty_torch_batch_t b;
        float out [S_NCLASSES];
        assert_int_equal (ty_batch_set_gather (set, &idx, 1, NULL, &b), TY_OK);
        assert_int_equal (ty_torch_predict (m, &b, out, S_NCLASSES), TY_OK);
        int best = 0;
        for (int c = 1; c < S_NCLASSES; c++)
            if (out [c] > out [best])
                best = c;
        int truth = (int) ty_batch_set_label (set, i);
        d->confusion [truth][best]++;
        hit += best == truth;
        pred [best]++;
        sup [truth]++;
    }
    d->accuracy = (double) hit / (double) d->n;
    for (int c = 0; c < S_NCLASSES; c++) {
        d->recall [c] = sup [c] ? (double) d->confusion [c][c] / (double) sup [c] : 0.0;
        d->precision [c] = pred [c] ? (double) d->confusion [c][c] / (double) pred [c] : 0.0;
    }
    ty_batch_set_destroy (&set);
    ty_dataset_destroy (&ds);
    ty_batch_feat_destroy (&feat);
    ty_torch_destroy (&m);
}

/* ---- metrics.json equals a direct computation ----------------------------- */

static void
test_evaluate_metrics_json (void **state)
{
    s_fix_t *f = *state;
    s_write_dataset (f->data, "mail", ty_fixture_mail_labels, S_TEST, 0);
    s_train (f->data, "mail@1", "clf", 6);
    char id [TY_ID_LEN + 1];
    s_evaluate (f, "clf", NULL, NULL, "SUCCEEDED", id);   /* dataset from lineage.json */

    cJSON *doc = s_must_load (f, "clf@1");
    assert_int_equal ((int) ty_report_number (doc, "format_version"), TY_REPORT_FORMAT_VERSION);
    assert_string_equal (ty_report_string (doc, "task"), "classification");
    assert_string_equal (ty_report_string (doc, "model.name"), "clf");
    assert_int_equal ((int) ty_report_number (doc, "model.version"), 1);
    assert_string_equal (ty_report_string (doc, "model.kind"), "textclf");
    assert_string_equal (ty_report_string (doc, "dataset.name"), "mail");
    assert_string_equal (ty_report_string (doc, "dataset.split"), "test");
    assert_string_equal (ty_report_string (doc, "job_id"), id);
    assert_int_equal ((int) ty_report_number (doc, "n_samples"), S_TEST);

    char dir [PATH_MAX];
    uint64_t v;
    assert_int_equal (ty_report_model_dir (f->data, "clf@1", dir, sizeof dir, &v, NULL), TY_OK);
    s_direct_t d;
    s_direct (f->data, dir, "mail@1", &d);
    assert_int_equal (d.n, S_TEST);
    /* the model learnt something, and not everything (class 2 has decoys) */
    assert_true (d.accuracy > 0.6);
    assert_true (fabs (ty_report_number (doc, "classification.accuracy") - d.accuracy) < 1e-9);
    double macro_recall = 0;
    const cJSON *per = cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "classification"), "per_class");
    assert_int_equal (cJSON_GetArraySize (per), S_NCLASSES);
    const cJSON *cm = cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "classification"),
                                           "confusion_matrix");
    for (int c = 0; c < S_NCLASSES; c++) {
        const cJSON *row = cJSON_GetArrayItem (per, c);
        assert_string_equal (cJSON_GetObjectItem (row, "name")->valuestring,
                             ty_fixture_mail_labels [c]);
        assert_true (fabs (cJSON_GetObjectItem (row, "recall")->valuedouble - d.recall [c]) < 1e-9);
        assert_true (fabs (cJSON_GetObjectItem (row, "precision")->valuedouble - d.precision [c])
                     < 1e-9);
        macro_recall += d.recall [c] / S_NCLASSES;
        for (int p = 0; p < S_NCLASSES; p++)
            assert_int_equal ((long) cJSON_GetArrayItem (cJSON_GetArrayItem (cm, c), p)->valuedouble,
                              d.confusion [c][p]);
    }
    assert_true (fabs (ty_report_number (doc, "classification.macro.recall") - macro_recall) < 1e-9);
    /* every other figure is there */
    static const char *const present [] = {
        "classification.macro.f1", "classification.weighted.f1", "classification.micro.f1",
        "classification.log_loss", "classification.roc_auc", "classification.high_conf_share",
        "latency.single.mean_ms", "latency.single.p50_ms", "latency.single.p95_ms",
        "latency.single.p99_ms", "latency.batch_throughput_per_s", "latency.peak_rss_mb",
        "inference.samples_per_s",
    };
    for (size_t i = 0; i < sizeof present / sizeof present [0]; i++)
        if (!isfinite (ty_report_number (doc, present [i])))
            fail_msg ("metrics.json: %s missing", present [i]);
    assert_int_equal ((int) ty_report_number (doc, "latency.single.n"), 50);
    assert_true (ty_report_number (doc, "latency.single.p95_ms")
                 >= ty_report_number (doc, "latency.single.p50_ms"));
    assert_true (ty_report_number (doc, "latency.peak_rss_mb") > 1.0);
    const char *rec = ty_report_string (doc, "analysis.recommendation");
    assert_non_null (rec);
    assert_true (!strcmp (rec, "accept") || !strcmp (rec, "accept_with_caution")
                 || !strcmp (rec, "revert"));
    assert_null (cJSON_GetObjectItem (doc, "gate"));     /* no gate asked */

    /* the job's outputs carry the headline figures */
    char *acc = s_output (f, id, "accuracy");
    assert_non_null (acc);
    assert_true (fabs (strtod (acc, NULL) - d.accuracy) < 1e-5);
    free (acc);
    char *gate = s_output (f, id, "gate");
    assert_string_equal (gate, "none");
    free (gate);
    /* the summary line lands in the job's Redis hash */
    char *result = ty_testenv_job_field (f->env, id, "result");
    assert_non_null (result);
    assert_non_null (strstr (result, "accuracy"));
    assert_non_null (strstr (result, "mail@1 test"));
    free (result);
    char *model = s_output (f, id, "model");
    assert_string_equal (model, "clf@1");
    free (model);
    cJSON_Delete (doc);
    ty_testenv_passed (f->env);
}

/* ---- a gate with one failing threshold ------------------------------------ */

static void
test_evaluate_gate_one_failure (void **state)
{
    s_fix_t *f = *state;
    s_write_dataset (f->data, "mail", ty_fixture_mail_labels, S_TEST, 0);
    s_train (f->data, "mail@1", "clf", 6);
    /* every check passes but the latency one: no prediction takes 0 ms */
    const char *gate = "{\"min_accuracy\": 0.3, \"min_macro_f1\": 0.1, "
                       "\"max_memory_mb\": 100000, \"max_p95_latency_ms\": 0}";
    char id [TY_ID_LEN + 1];
    s_evaluate (f, "clf@1", "mail", gate, "SUCCEEDED", id);
    cJSON *doc = s_must_load (f, "clf@1");
    assert_string_equal (ty_report_string (doc, "gate.verdict"), "FAIL");
    const cJSON *checks = cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "gate"), "checks");
    assert_int_equal (cJSON_GetArraySize (checks), 4);
    int fails = 0;
    const cJSON *c;
    cJSON_ArrayForEach (c, checks) {
        const char *name = cJSON_GetObjectItem (c, "check")->valuestring;
        const char *status = cJSON_GetObjectItem (c, "status")->valuestring;
        if (!strcmp (status, "FAIL")) {
            fails++;
            assert_string_equal (name, "max_p95_latency_ms");
            assert_true (cJSON_GetObjectItem (c, "measured")->valuedouble
                         == ty_report_number (doc, "latency.single.p95_ms"));
            assert_true (cJSON_GetObjectItem (c, "threshold")->valuedouble == 0.0);
            assert_string_equal (cJSON_GetObjectItem (c, "op")->valuestring, "<=");
        }
        else
            assert_string_equal (status, "PASS");
    }
    assert_int_equal (fails, 1);
    /* a failed gate is a critical observation: revert */
    assert_string_equal (ty_report_string (doc, "analysis.recommendation"), "revert");
    char *out = s_output (f, id, "gate");
    assert_string_equal (out, "FAIL");
    free (out);
    out = s_output (f, id, "recommendation");
    assert_string_equal (out, "revert");
    free (out);
    cJSON_Delete (doc);
    ty_testenv_passed (f->env);
}

/* Without --baseline, the regression check compares with the registry's
 * production version of the same model. */
static void
test_evaluate_production_is_the_baseline (void **state)
{
    s_fix_t *f = *state;
    s_write_dataset (f->data, "mail", ty_fixture_mail_labels, S_TEST, 0);
    s_train (f->data, "mail@1", "clf", 6);
    s_train (f->data, "mail@1", "clf", 6);
    ty_registry_t *reg = NULL;
    assert_int_equal (ty_registry_open (f->data, &reg), TY_OK);
    ty_registry_actor_t by = { .who = "test", .why = "baseline", .force = 1 };
    assert_int_equal (ty_registry_register (reg, "clf", 1, &by, NULL), TY_OK);
    assert_int_equal (ty_registry_promote (reg, "clf", 1, TY_STAGE_PRODUCTION, 0, &by), TY_OK);
    ty_registry_destroy (&reg);

    const char *gate = "{\"max_accuracy_regression\": 1.0}";
    char id [TY_ID_LEN + 1];
    s_evaluate (f, "clf@2", "mail", gate, "SUCCEEDED", id);
    cJSON *doc = s_must_load (f, "clf@2");
    assert_string_equal (ty_report_string (doc, "baseline.model"), "clf@1");
    const cJSON *checks = cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "gate"), "checks");
    int seen = 0;
    const cJSON *c;
    cJSON_ArrayForEach (c, checks)
        if (!strcmp (cJSON_GetObjectItem (c, "check")->valuestring, "max_accuracy_regression")) {
            seen = 1;
            assert_string_equal (cJSON_GetObjectItem (c, "status")->valuestring, "PASS");
        }
    assert_true (seen);
    cJSON_Delete (doc);

    /* the production version itself has nothing to compare with */
    s_evaluate (f, "clf@1", "mail", gate, "SUCCEEDED", id);
    doc = s_must_load (f, "clf@1");
    assert_null (cJSON_GetObjectItem (doc, "baseline"));
    cJSON_Delete (doc);
    ty_testenv_passed (f->env);
}

/* ---- bad input ------------------------------------------------------------------ */

static void
test_evaluate_bad_input (void **state)
{
    s_fix_t *f = *state;
    s_write_dataset (f->data, "mail", ty_fixture_mail_labels, S_TEST, 0);
    static const char *other [S_NCLASSES] = { "cats", "dogs", "eggs" };
    s_write_dataset (f->data, "pets", other, S_TEST, 0);
    s_write_dataset (f->data, "notest", ty_fixture_mail_labels, 0, 0);
    s_write_dataset (f->data, "ratings", NULL, S_TEST, 1);
    s_train (f->data, "mail@1", "clf", 2);
    char id [TY_ID_LEN + 1];

    s_evaluate (f, "clf@7", NULL, NULL, "FAILED", id);
    ty_fixture_assert_error (f, id, "no such model version");
    s_evaluate (f, "nosuch", NULL, NULL, "FAILED", id);
    ty_fixture_assert_error (f, id, "no such model");

    s_evaluate (f, "clf", "pets", NULL, "FAILED", id);
    ty_fixture_assert_error (f, id, "label set mismatch");
    ty_fixture_assert_error (f, id, "'cats'");

    s_evaluate (f, "clf", "notest", NULL, "FAILED", id);
    ty_fixture_assert_error (f, id, "test split of dataset notest@1 is empty");

    s_evaluate (f, "clf", "ratings", NULL, "FAILED", id);
    ty_fixture_assert_error (f, id, "task mismatch");

    s_evaluate (f, "clf", "mail", "{\"min_acuracy\": 0.9}", "FAILED", id);
    ty_fixture_assert_error (f, id, "min_acuracy");

    /* none of that left a metrics.json or hurt the worker */
    char dir [PATH_MAX], path [PATH_MAX + 32];
    uint64_t v;
    assert_int_equal (ty_report_model_dir (f->data, "clf", dir, sizeof dir, &v, NULL), TY_OK);
    snprintf (path, sizeof path, "%s/%s", dir, TY_REPORT_FILE);
    assert_int_not_equal (access (path, F_OK), 0);
    s_evaluate (f, "clf", NULL, NULL, "SUCCEEDED", id);
    assert_int_equal (access (path, F_OK), 0);
    ty_testenv_passed (f->env);
}

/* ---- the command: report and compare ----------------------------------------- */

/* Runs the trainyard command; its stdout into out. Returns the exit code. */
static int
s_cli (s_fix_t *f, char *out, size_t len, const char *args)
{
    return ty_fixture_cli (f, TY_TRAINYARD_BIN, out, len, args);
}

static void
test_evaluate_cli_report_and_compare (void **state)
{
    s_fix_t *f = *state;
    s_write_dataset (f->data, "mail", ty_fixture_mail_labels, S_TEST, 0);
    s_train (f->data, "mail@1", "clf", 1);
    s_train (f->data, "mail@1", "clf", 6);
    char gate [PATH_MAX];
    ty_testenv_path (f->env, "gate.yaml", gate, sizeof gate);
    FILE *g = fopen (gate, "w");
    assert_non_null (g);
    fprintf (g, "# release gate\ngate:\n  min_accuracy: 0.2\n  max_p95_latency_ms: 0\n");
    fclose (g);
    static char out [1 << 16];
    char args [PATH_MAX + 128];
    snprintf (args, sizeof args, "evaluate --model clf@2 --gate '%s' 2>/dev/null", gate);
    int rc = s_cli (f, out, sizeof out, args);
    if (rc != 0 || !strstr (out, "Quality gate: FAIL")) {
        fprintf (stderr, "%s\n", out);
        fail_msg ("trainyard evaluate: exit %d", rc);
    }
    assert_non_null (strstr (out, "Per class"));
    assert_non_null (strstr (out, "Confusion matrix"));
    assert_non_null (strstr (out, "max_p95_latency_ms"));
    assert_non_null (strstr (out, "Recommendation: revert"));
    /* --strict turns the failed gate into exit code 4 */
    snprintf (args, sizeof args, "evaluate --model clf@2 --gate '%s' --strict >/dev/null 2>&1",
              gate);
    assert_int_equal (s_cli (f, out, sizeof out, args), 4);
    /* --json prints metrics.json itself */
    rc = s_cli (f, out, sizeof out, "evaluate --model clf@1 --json 2>/dev/null");
    assert_int_equal (rc, 0);
    cJSON *doc = cJSON_Parse (out);
    assert_non_null (doc);
    assert_string_equal (ty_report_string (doc, "model.name"), "clf");
    assert_int_equal ((int) ty_report_number (doc, "model.version"), 1);
    cJSON_Delete (doc);
    /* a bad gate file is a usage error before anything is submitted */
    g = fopen (gate, "w");
    fprintf (g, "min_acuracy = 0.9\n");
    fclose (g);
    snprintf (args, sizeof args, "evaluate --model clf --gate '%s' 2>&1", gate);
    assert_int_equal (s_cli (f, out, sizeof out, args), 2);
    assert_non_null (strstr (out, "min_acuracy"));

    rc = s_cli (f, out, sizeof out, "model compare clf@1 clf@2 2>&1");
    if (rc != 0) {
        fprintf (stderr, "%s\n", out);
        fail_msg ("model compare: exit %d", rc);
    }
    assert_non_null (strstr (out, "clf@1"));
    assert_non_null (strstr (out, "clf@2"));
    assert_non_null (strstr (out, "accuracy"));
    assert_non_null (strstr (out, "F1 per class"));
    assert_non_null (strstr (out, "spam"));
    ty_testenv_passed (f->env);
}

int
main (void)
{
    /* one intra-op thread, as the worker runs; OpenBLAS in line with it */
    setenv ("OPENBLAS_NUM_THREADS", "1", 1);
    setenv ("OMP_NUM_THREADS", "1", 1);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_evaluate_metrics_json, s_setup,
                                         ty_fixture_cluster_teardown),
        cmocka_unit_test_setup_teardown (test_evaluate_production_is_the_baseline, s_setup,
                                         ty_fixture_cluster_teardown),
        cmocka_unit_test_setup_teardown (test_evaluate_gate_one_failure, s_setup,
                                         ty_fixture_cluster_teardown),
        cmocka_unit_test_setup_teardown (test_evaluate_bad_input, s_setup,
                                         ty_fixture_cluster_teardown),
        cmocka_unit_test_setup_teardown (test_evaluate_cli_report_and_compare, s_setup,
                                         ty_fixture_cluster_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_kfold: k-fold cross-validation in the train and evaluate workers
 *  (issue 7, part 5), on real LMDB datasets written here and real libtorch.
 *
 *  The dataset "cv" has 5 folds over 100 train samples (sample i is in
 *  fold i % 5). Fold 2 holds only class "gamma", with words of its own; the
 *  other folds hold only "alpha" and "beta". So a model that never saw fold
 *  2 cannot know gamma or its words, and one that did, does:
 *
 *  - in-process (ty_train_run): holdout_fold = 2 trains on 80 samples and
 *    validates on the 20 of fold 2 (val accuracy 0, gamma's words absent
 *    from the saved vocabulary); holdout_fold = 1 learns gamma; config.json
 *    and lineage.json record the fold; a run killed after epoch 2 resumes
 *    from its checkpoint at epoch 3 and ends with the uninterrupted run's
 *    weights;
 *  - in a cluster (redis, broker, trainyard-train, trainyard-evaluate):
 *    the same through the workers, with the fold and sample counts in the
 *    job outputs; evaluate with fold = 2 counts exactly the 20 fold-2
 *    samples and its report says "train fold 2"; bad fold numbers, a
 *    dataset without folds and fold with another split fail the job with
 *    a message naming the dataset's fold count.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_train_it.h"
#include <cjson/cJSON.h>
#include "test_train_data.h"
#include "ty_fixture.h"
#include "ty_batch.h"
#include "ty_dataset.h"
#include "ty_train.h"

#define S_JOB_MS       60000
#define S_FOLDS        5
#define S_HOLDOUT      2        /* the fold that holds only gamma */
#define S_NTRAIN       100
#define S_NVAL         30       /* a val split of another size than a fold */
#define S_PER_FOLD     (S_NTRAIN / S_FOLDS)
#define S_WORDS        5
#define S_EPOCHS       4

static const char *s_labels [3] = { "alpha", "beta", "gamma" };
static const char *s_words [3][S_WORDS] = {
    { "apple", "anchor", "arrow", "amber", "atlas" },
    { "butter", "bridge", "basket", "banner", "bottle" },
    { "glacier", "guitar", "goblet", "garnet", "gazebo" },
};

static void
s_add (ty_dataset_writer_t *w, ty_split_t split, int cls, uint32_t fold, uint64_t *rng)
{
    char text [256];
    snprintf (text, sizeof text, "%s n%d %s %s n%d", s_words [cls][ty_fixture_rand (rng) % S_WORDS],
              (int) (ty_fixture_rand (rng) % 4), s_words [cls][ty_fixture_rand (rng) % S_WORDS],
              s_words [cls][ty_fixture_rand (rng) % S_WORDS], (int) (ty_fixture_rand (rng) % 4));
    Ty__Sample s = TY__SAMPLE__INIT;
    char *lab [1] = { (char *) s_labels [cls] };
    s.text = text;
    s.labels = lab;
    s.n_labels = 1;
    s.weight = 1;
    s.fold = fold;
    int rc = ty_dataset_writer_add (w, split, &s);
    if (rc != TY_OK)
        fail_msg ("add: %s", ty_strerror (rc));
}

/* folds 0: no fold numbers (a dataset prepared without `folds`). */
static void
s_write_dataset (const char *data, const char *name, uint32_t folds)
{
    ty_dataset_writer_t *w = NULL;
    int rc = ty_dataset_writer_new (data, name, NULL, &w);
    if (rc != TY_OK)
        fail_msg ("writer: %s", ty_strerror (rc));
    uint64_t rng = 17;
    for (int i = 0; i < S_NTRAIN; i++) {
        uint32_t fold = folds ? (uint32_t) (i % S_FOLDS) : 0;
        int cls = folds && fold == S_HOLDOUT ? 2 : (int) (ty_fixture_rand (&rng) % 2);
        s_add (w, TY_SPLIT_TRAIN, cls, fold, &rng);
    }
    for (int i = 0; i < S_NVAL; i++)
        s_add (w, TY_SPLIT_VAL, (int) (ty_fixture_rand (&rng) % 2), 0, &rng);
    for (int i = 0; i < 15; i++)
        s_add (w, TY_SPLIT_TEST, i % 3, 0, &rng);
    Ty__DatasetMeta meta = TY__DATASET_META__INIT;
    meta.kind = "text";
    meta.labels = (char **) s_labels;
    meta.n_labels = 3;
    meta.folds = folds;
    rc = ty_dataset_writer_commit (&w, &meta, NULL, NULL);
    if (rc != TY_OK)
        fail_msg ("commit: %s", ty_strerror (rc));
}

/* A small textclf that learns the keywords in a few epochs. */
static void
s_spec (ttd_spec_t *t, const char *dataset, const char *name, const char *holdout)
{
    ttd_spec (t, dataset, "textclf", name);
    ty_fixture_textclf_small (&t->train, S_EPOCHS, 8, 1000);
    if (holdout)
        ttd_param (t, "holdout_fold", holdout);
}

static cJSON *
s_read_json (const char *dir, const char *file)
{
    char path [PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    return ty_fixture_must_load_json (path);
}

/* =========================================================================
 *  in-process: ty_train_run
 * ========================================================================= */

/* the hooks' state: a crash after an epoch, the first epoch */
typedef ty_fixture_train_t s_t;

static int
s_setup_local (void **state)
{
    return ty_fixture_train_setup (state, "kfold");
}

/* Whether the model version's saved vocabulary holds a word. */
static int
s_vocab_has (const char *model_dir, const char *word)
{
    ty_batch_feat_t *feat = NULL;
    char err [TY_BATCH_ERR_LEN];
    if (ty_batch_feat_load (model_dir, &feat, err, sizeof err) != TY_OK)
        fail_msg ("featurizer of %s: %s", model_dir, err);
    const ty_vocab_t *v = ty_batch_feat_vocab (feat);
    assert_non_null (v);
    int has = ty_vocab_word_id (v, word) >= 0;
    ty_batch_feat_destroy (&feat);
    return has;
}

static void
test_kfold_train_never_sees_the_holdout_fold (void **state)
{
    s_t *s = *state;
    s_write_dataset (s->dir, "cv", S_FOLDS);

    ttd_spec_t t;
    s_spec (&t, "cv", "cv2", "2");
    ty_train_result_t r2;
    ty_fixture_train_must_run (s, &t.train, "job-cv2", &r2);
    fprintf (stderr, "holdout 2: %llu train, %llu val samples, val %s %.4f\n",
             (unsigned long long) r2.train_samples, (unsigned long long) r2.val_samples,
             r2.metric, r2.best_metric);
    assert_int_equal (r2.holdout_fold, S_HOLDOUT);
    assert_int_equal (r2.train_samples, S_NTRAIN - S_PER_FOLD);
    /* the fold's 20, not the val split's 30 */
    assert_int_equal (r2.val_samples, S_PER_FOLD);
    assert_string_equal (r2.metric, "acc");
    /* every fold-2 sample is gamma, a class never trained on */
    assert_true (r2.best_metric < 0.1);
    assert_false (s_vocab_has (r2.path, "glacier"));
    assert_false (s_vocab_has (r2.path, "gazebo"));
    assert_true (s_vocab_has (r2.path, "apple"));

    cJSON *lin = s_read_json (r2.path, TY_MODELDIR_LINEAGE);
    assert_true (ty_fixture_json_num (lin, "holdout_fold", NULL) == S_HOLDOUT);
    assert_true (ty_fixture_json_num (lin, "dataset", "holdout_fold") == S_HOLDOUT);
    assert_true (ty_fixture_json_num (lin, "dataset", "folds") == S_FOLDS);
    assert_true (ty_fixture_json_num (lin, "dataset", "val_samples") == S_PER_FOLD);
    cJSON_Delete (lin);
    cJSON *cfg = s_read_json (r2.path, TY_MODELDIR_CONFIG);
    assert_true (ty_fixture_json_num (cfg, "holdout_fold", NULL) == S_HOLDOUT);
    cJSON_Delete (cfg);

    /* the control: holding out fold 1 trains on gamma and learns it */
    s_spec (&t, "cv", "cv1", "1");
    ty_train_result_t r1;
    ty_fixture_train_must_run (s, &t.train, "job-cv1", &r1);
    fprintf (stderr, "holdout 1: val %s %.4f\n", r1.metric, r1.best_metric);
    assert_int_equal (r1.val_samples, S_PER_FOLD);
    assert_true (r1.best_metric >= 0.8);
    assert_true (s_vocab_has (r1.path, "glacier"));

    /* without holdout_fold: the val split, nothing about folds recorded */
    ttd_spec_t n;
    s_spec (&n, "cv", "cvall", NULL);
    ty_train_result_t ra;
    ty_fixture_train_must_run (s, &n.train, "job-cvall", &ra);
    assert_int_equal (ra.holdout_fold, -1);
    assert_int_equal (ra.train_samples, S_NTRAIN);
    assert_int_equal (ra.val_samples, S_NVAL);
    cfg = s_read_json (ra.path, TY_MODELDIR_CONFIG);
    assert_null (cJSON_GetObjectItemCaseSensitive (cfg, "holdout_fold"));
    cJSON_Delete (cfg);
}

static void
test_kfold_train_resumes_from_checkpoint (void **state)
{
    s_t *s = *state;
    s_write_dataset (s->dir, "cvr", S_FOLDS);
    ttd_spec_t t;
    s_spec (&t, "cvr", "cvr", "3");
    ty_train_result_t full, resumed;
    ty_fixture_train_must_run (s, &t.train, "job-cvr-full", &full);

    ty_fixture_train_crash (s, &t.train, "job-cvr-crash", 2);

    ty_fixture_train_must_resume (s, &t.train, "job-cvr-crash", &resumed);
    assert_int_equal (resumed.resumed_from, 2);
    assert_int_equal (s->first_epoch, 3);
    assert_int_equal (resumed.holdout_fold, 3);
    assert_int_equal (resumed.val_samples, S_PER_FOLD);
    assert_true (resumed.weights_digest == full.weights_digest);
    assert_true (resumed.best_metric == full.best_metric);
}

static void
test_kfold_train_bad_fold_fails (void **state)
{
    s_t *s = *state;
    s_write_dataset (s->dir, "cvb", S_FOLDS);
    s_write_dataset (s->dir, "flat", 0);
    static const struct { const char *ds, *fold, *want; } cases [] = {
        { "cvb",  "5",  "has 5 folds (0..4)" },
        { "cvb",  "99", "has 5 folds (0..4)" },
        { "cvb",  "-1", "holdout_fold must be in [0" },
        { "cvb",  "x",  "holdout_fold: 'x' is not an integer" },
        { "flat", "0",  "has no folds" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        ttd_spec_t t;
        s_spec (&t, cases [i].ds, "bad", cases [i].fold);
        ty_train_result_t r;
        char err [TY_TRAIN_ERR_LEN] = "";
        int rc = ty_fixture_train_run (s, &t.train, "job-bad", 1, &r, err, sizeof err);
        fprintf (stderr, "holdout_fold %s on %s: %s\n", cases [i].fold, cases [i].ds, err);
        assert_int_equal (rc, TY_EINVAL);
        assert_non_null (strstr (err, cases [i].want));
    }
    /* nothing was published */
    char path [512];
    struct stat st;
    snprintf (path, sizeof path, "%s/models/bad/1", s->dir);
    assert_int_not_equal (stat (path, &st), 0);
}

/* =========================================================================
 *  in a cluster: the workers
 * ========================================================================= */

TY_IT_SETUP ("kfold")

typedef struct {
    Ty__JobSpec spec;
    Ty__EvaluateSpec ev;
    Ty__EvaluateSpec__ParamsEntry entries [2];
    Ty__EvaluateSpec__ParamsEntry *params [2];
} s_eval_spec_t;

static void
s_eval_spec (s_eval_spec_t *e, const char *model, const char *fold, const char *split)
{
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__EvaluateSpec ev = TY__EVALUATE_SPEC__INIT;
    e->spec = spec;
    e->ev = ev;
    e->ev.model = (char *) model;
    e->ev.split = (char *) (split ? split : "");
    e->ev.latency_samples = 5;
    e->ev.params = e->params;
    for (int i = 0; i < 2; i++) {
        Ty__EvaluateSpec__ParamsEntry p = TY__EVALUATE_SPEC__PARAMS_ENTRY__INIT;
        e->entries [i] = p;
        e->params [i] = &e->entries [i];
    }
    e->entries [0].key = "warmup";
    e->entries [0].value = "1";
    e->ev.n_params = 1;
    if (fold) {
        e->entries [1].key = "fold";
        e->entries [1].value = (char *) fold;
        e->ev.n_params = 2;
    }
    e->spec.kind_case = TY__JOB_SPEC__KIND_EVALUATE;
    e->spec.evaluate = &e->ev;
    e->spec.max_attempts = 1;
}

static void
s_must_fail_with (ty_testenv_t *env, const char *id, const char *want)
{
    tti_must_reach (env, id, "FAILED", S_JOB_MS, NULL);
    char *err = ty_testenv_job_field (env, id, "error");
    fprintf (stderr, "job %s failed: %s\n", id, err ? err : "(none)");
    assert_non_null (err);
    assert_non_null (strstr (err, want));
    free (err);
}

static void
test_kfold_workers (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    char data [PATH_MAX];
    tti_data_dir (env, data, sizeof data);
    s_write_dataset (data, "cv", S_FOLDS);
    s_write_dataset (data, "flat", 0);
    ty_it_must_cluster (env, TY_TESTENV_HEARTBEAT_MS, NULL, NULL, 0);
    const char *args [] = { "--data", data, "--threads", "1", NULL };
    ty_testenv_must_start_worker_bin (env, "trainyard-train", "t1", TY_TESTENV_HEARTBEAT_MS, args);
    ty_testenv_must_start_worker_bin (env, "trainyard-evaluate", "e1", TY_TESTENV_HEARTBEAT_MS,
                                      args);
    if (ty_testenv_wait_worker (env, "t1", TY_TESTENV_STARTUP_MS) != 0
    ||  ty_testenv_wait_worker (env, "e1", TY_TESTENV_STARTUP_MS) != 0)
        fail_msg ("workers never registered");
    ty_client_t *c = ty_it_must_client (it);

    /* the k-fold branch of fold 2 */
    ttd_spec_t t;
    s_spec (&t, "cv", "cv2", "2");
    char tid [TY_ID_LEN + 1];
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, tid, NULL);
    tti_must_reach (env, tid, "SUCCEEDED", S_JOB_MS, "t1");
    char buf [PATH_MAX];
    tti_output (c, tid, "holdout_fold", buf, sizeof buf);
    assert_string_equal (buf, "2");
    tti_output (c, tid, "train_samples", buf, sizeof buf);
    assert_int_equal (atoi (buf), S_NTRAIN - S_PER_FOLD);
    tti_output (c, tid, "val_samples", buf, sizeof buf);
    assert_int_equal (atoi (buf), S_PER_FOLD);
    tti_output (c, tid, "best_metric", buf, sizeof buf);
    assert_true (strtod (buf, NULL) < 0.1);
    tti_output (c, tid, "path", buf, sizeof buf);
    cJSON *lin = s_read_json (buf, TY_MODELDIR_LINEAGE);
    assert_true (ty_fixture_json_num (lin, "holdout_fold", NULL) == S_HOLDOUT);
    cJSON_Delete (lin);
    tti_output (c, tid, "model", buf, sizeof buf);
    assert_string_equal (buf, "cv2@1");

    /* and a model that trained on fold 2 (held out fold 0) */
    s_spec (&t, "cv", "cv0", "0");
    char tid0 [TY_ID_LEN + 1];
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, tid0, NULL);
    tti_must_reach (env, tid0, "SUCCEEDED", S_JOB_MS, "t1");

    /* evaluate on fold 2: exactly its 20 samples, all gamma */
    s_eval_spec_t e;
    s_eval_spec (&e, "cv2@1", "2", NULL);
    char eid [TY_ID_LEN + 1];
    ty_it_must_submit (c, &e.spec, NULL, 0, NULL, eid, NULL);
    tti_must_reach (env, eid, "SUCCEEDED", S_JOB_MS, "e1");
    tti_output (c, eid, "n_samples", buf, sizeof buf);
    assert_string_equal (buf, "20");
    tti_output (c, eid, "fold", buf, sizeof buf);
    assert_string_equal (buf, "2");
    tti_output (c, eid, "accuracy", buf, sizeof buf);
    assert_true (strtod (buf, NULL) < 0.1);
    /* the summary output is the job hash's "result" */
    char *summary = ty_testenv_job_field (env, eid, "result");
    fprintf (stderr, "evaluate: %s\n", summary ? summary : "(none)");
    assert_non_null (summary);
    assert_non_null (strstr (summary, "train fold 2 (20 samples)"));
    free (summary);
    tti_output (c, eid, "metrics_path", buf, sizeof buf);
    char *slash = strrchr (buf, '/');
    assert_non_null (slash);
    *slash = '\0';
    cJSON *doc = s_read_json (buf, slash + 1);
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive (doc, "dataset");
    assert_string_equal (cJSON_GetObjectItemCaseSensitive (ds, "split")->valuestring, "train");
    assert_true (ty_fixture_json_num (doc, "dataset", "fold") == S_HOLDOUT);
    assert_true (ty_fixture_json_num (doc, "dataset", "folds") == S_FOLDS);
    assert_true (ty_fixture_json_num (doc, "dataset", "folded_out") == S_NTRAIN - S_PER_FOLD);
    assert_true (ty_fixture_json_num (doc, "n_samples", NULL) == S_PER_FOLD);
    cJSON_Delete (doc);

    /* the model that saw fold 2 gets it right: the same 20 samples */
    s_eval_spec (&e, "cv0@1", "2", "train");
    ty_it_must_submit (c, &e.spec, NULL, 0, NULL, eid, NULL);
    tti_must_reach (env, eid, "SUCCEEDED", S_JOB_MS, "e1");
    tti_output (c, eid, "n_samples", buf, sizeof buf);
    assert_string_equal (buf, "20");
    tti_output (c, eid, "accuracy", buf, sizeof buf);
    assert_true (strtod (buf, NULL) >= 0.8);

    /* bad folds fail clearly, naming the dataset's fold count */
    char id [TY_ID_LEN + 1];
    s_spec (&t, "cv", "bad", "5");
    t.spec.max_attempts = 1;
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, id, NULL);
    s_must_fail_with (env, id, "holdout_fold 5 is out of range: dataset cv@1 has 5 folds (0..4)");
    s_spec (&t, "flat", "bad", "0");
    t.spec.max_attempts = 1;
    ty_it_must_submit (c, &t.spec, NULL, 0, NULL, id, NULL);
    s_must_fail_with (env, id, "dataset flat@1 has no folds");
    s_eval_spec (&e, "cv2@1", "7", NULL);
    ty_it_must_submit (c, &e.spec, NULL, 0, NULL, id, NULL);
    s_must_fail_with (env, id, "fold 7 is out of range: dataset cv@1 has 5 folds (0..4)");
    s_eval_spec (&e, "cv2@1", "1", "test");
    ty_it_must_submit (c, &e.spec, NULL, 0, NULL, id, NULL);
    s_must_fail_with (env, id, "fold 1 evaluates samples of the train split");
    s_eval_spec (&e, "cv2@1", "-1", NULL);
    ty_it_must_submit (c, &e.spec, NULL, 0, NULL, id, NULL);
    s_must_fail_with (env, id, "params: fold = '-1'");
    ty_testenv_passed (env);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_kfold_train_never_sees_the_holdout_fold,
                                         s_setup_local, ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_kfold_train_resumes_from_checkpoint,
                                         s_setup_local, ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_kfold_train_bad_fold_fails,
                                         s_setup_local, ty_fixture_train_teardown),
        cmocka_unit_test_setup_teardown (test_kfold_workers, s_setup, ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_workflows: the five example pipelines (examples/pipelines/) run end
 *  to end on a real cluster: redis-server, the broker, and every worker the
 *  workflows use (prepare, 2 x train, evaluate, convert, control) on one data
 *  directory, with the example data the project ships (000 with fewer
 *  epochs through its params; the others are small already).
 *
 *  Each test loads the file as `trainyard pipeline run` does, submits it,
 *  waits until every step has ended and checks what the workflow is for:
 *    000  every step SUCCEEDED; the 5 CV folds ran in parallel on the 2 train
 *         workers (one fold started before another ended); the aggregate has
 *         accuracy mean/std/n=5; the gate passed, an INT8 artifact was made
 *         and the model was promoted to production;
 *    001  images imported with a calib split; INT8 conversion evaluated; the
 *         model went to canary with rollout 10;
 *    002  the two invalid annotation rows were rejected (the preflight) and
 *         the regressor reached R2 >= 0.8 and was promoted;
 *    003  the multi-label classifier has micro F1 and the NCF model a hit
 *         rate@10 well above chance (10 of 100 candidates);
 *    004  both TF-IDF classifiers trained on their own dataset (foreach) and
 *         were promoted.
 */
#include "ty_it.h"
#include "ty_pipeline.h"

#include <stdlib.h>

#define S_HEARTBEAT_MS   TY_TESTENV_HEARTBEAT_MS
#define S_WAIT_MS        240000     /* a whole workflow under ASan on 2 cores */
#define S_POLL_MS        200
#define S_LIST_MAX       200
#define S_STARTUP_MS     60000      /* libtorch workers load slowly on a busy machine */

TY_IT_SETUP ("workflows")

/* Starts redis, the broker and the workers of the workflows on one data dir. */
static void
s_cluster (ty_testenv_t *env, char *data, size_t len)
{
    ty_testenv_path (env, "data", data, len);
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 0);
    static const struct { const char *bin, *id; } workers [] = {
        { "trainyard-prepare", "prep" },  { "trainyard-train", "train1" },
        { "trainyard-train", "train2" },  { "trainyard-evaluate", "eval" },
        { "trainyard-convert", "conv" },  { "trainyard-control", "ctl" },
    };
    const char *args [] = { "--data", data, "--threads", "1", NULL };
    const char *noth [] = { "--data", data, NULL };
    for (size_t i = 0; i < sizeof workers / sizeof workers [0]; i++) {
        int threads = !strcmp (workers [i].bin, "trainyard-train")
                   || !strcmp (workers [i].bin, "trainyard-evaluate");
        ty_testenv_must_start_worker_bin (env, workers [i].bin, workers [i].id, S_HEARTBEAT_MS,
                                          threads ? args : noth);
    }
    for (size_t i = 0; i < sizeof workers / sizeof workers [0]; i++)
        if (ty_testenv_wait_worker (env, workers [i].id, S_STARTUP_MS) != 0)
            fail_msg ("worker %s never registered", workers [i].id);
}

/* Loads examples/pipelines/<file> with data=<source>/examples/data and the
 * given extra sets, submits it; returns the pipeline id in id. */
static void
s_run (ty_it_t *it, const char *file, const char *const *extra, char *id)
{
    char path [PATH_MAX], data_set [PATH_MAX + 8], err [TY_PIPELINE_ERR_LEN];
    snprintf (path, sizeof path, "%s/examples/pipelines/%s", TY_SOURCE_DIR, file);
    snprintf (data_set, sizeof data_set, "data=%s/examples/data", TY_SOURCE_DIR);
    const char *sets [8] = { data_set };
    size_t n = 1;
    for (; extra && extra [n - 1] && n < 8; n++)
        sets [n] = extra [n - 1];
    ty_pipeline_t *p = NULL;
    if (ty_pipeline_load (path, sets, n, &p, err, sizeof err) != TY_OK)
        fail_msg ("%s: %s", file, err);
    ty_client_t *c = ty_it_must_client (it);
    if (ty_pipeline_submit (p, c, NULL, NULL, TY_IT_RPC_MS, id, TY_PIPELINE_ID_LEN + 1,
                            err, sizeof err) != TY_OK)
        fail_msg ("%s: submit: %s", file, err);
    ty_pipeline_destroy (&p);
}

static int
s_final (const char *state)
{
    return !strcmp (state, "SUCCEEDED") || !strcmp (state, "FAILED")
        || !strcmp (state, "CANCELLED");
}

/* Waits until every job of the pipeline has ended; returns the job list
 * (caller frees with ty_client_free_msg). Fails if any did not succeed. */
static Ty__JobList *
s_wait (ty_it_t *it, const char *id)
{
    ty_client_t *c = ty_it_must_client (it);
    int64_t deadline = ty_testenv_now_ms () + S_WAIT_MS;
    for (;;) {
        Ty__JobList *list = NULL;
        if (ty_client_list_pipeline (c, id, S_LIST_MAX, TY_IT_RPC_MS, &list) != TY_OK)
            fail_msg ("list %s: %s", id, ty_client_errstr (c));
        size_t ended = 0;
        for (size_t i = 0; i < list->n_jobs; i++)
            ended += s_final (list->jobs [i]->state);
        if (list->n_jobs > 0 && ended == list->n_jobs) {
            for (size_t i = 0; i < list->n_jobs; i++)
                if (strcmp (list->jobs [i]->state, "SUCCEEDED"))
                    fail_msg ("step %s %s: %s", list->jobs [i]->step, list->jobs [i]->state,
                              list->jobs [i]->error);
            return list;
        }
        ty_client_free_msg (list);
        if (ty_testenv_now_ms () > deadline)
            fail_msg ("pipeline %s did not end in %d ms", id, S_WAIT_MS);
        ty_testenv_sleep_ms (S_POLL_MS);
    }
}

/* A step's full status (outputs, metrics), by step name. */
static Ty__JobInfo *
s_step (ty_it_t *it, const Ty__JobList *list, const char *step)
{
    for (size_t i = 0; i < list->n_jobs; i++)
        if (!strcmp (list->jobs [i]->step, step)) {
            Ty__JobInfo *info = NULL;
            ty_client_t *c = ty_it_must_client (it);
            if (ty_client_status (c, list->jobs [i]->id, TY_IT_RPC_MS, &info) != TY_OK)
                fail_msg ("status %s: %s", step, ty_client_errstr (c));
            return info;
        }
    fail_msg ("no step %s", step);
    return NULL;
}

/* An output (or, failing that, a metric as text) of a step; NULL if none. */
static const char *
s_out (const Ty__JobInfo *info, const char *key)
{
    for (size_t i = 0; i < info->n_outputs; i++)
        if (!strcmp (info->outputs [i]->key, key))
            return info->outputs [i]->value;
    return NULL;
}

static double
s_num (const Ty__JobInfo *info, const char *key)
{
    const char *v = s_out (info, key);
    if (!v) {
        for (size_t i = 0; i < info->n_metrics; i++)
            if (!strcmp (info->metrics [i]->key, key))
                return info->metrics [i]->value;
        fail_msg ("step %s has no output or metric %s", info->step, key);
    }
    return strtod (v, NULL);
}

static void
s_not_skipped (const Ty__JobInfo *info)
{
    const char *sk = s_out (info, "skipped");
    if (sk && !strcmp (sk, "true"))
        fail_msg ("step %s was skipped: %s", info->step, s_out (info, "reason"));
}

static void
test_workflow_000_filenames (void **state)
{
    ty_it_t *it = *state;
    char data [PATH_MAX], id [TY_PIPELINE_ID_LEN + 1];
    s_cluster (it->env, data, sizeof data);
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer's shadow memory and quarantine triple the job's RSS:
       the gate's memory budget (the Pi's 280 MB) is for the real build. */
    const char *sets [] = { "epochs=30", "max_memory_mb=4000", NULL };
#else
    const char *sets [] = { "epochs=30", NULL };
#endif
    s_run (it, "000-filenames.yaml", sets, id);
    Ty__JobList *list = s_wait (it, id);
    assert_int_equal (list->n_jobs, 16);

    /* The folds overlapped in time: they ran in parallel on 2 train workers. */
    int overlap = 0;
    for (size_t i = 0; i < list->n_jobs; i++)
        for (size_t j = 0; j < list->n_jobs; j++) {
            const Ty__JobInfo *a = list->jobs [i], *b = list->jobs [j];
            if (i != j && !strncmp (a->step, "cv_train[", 9) && !strncmp (b->step, "cv_train[", 9)
            &&  a->started_ms < b->finished_ms && b->started_ms < a->finished_ms)
                overlap = 1;
        }
    assert_true (overlap);

    Ty__JobInfo *cv = s_step (it, list, "cv");
    assert_int_equal ((int) s_num (cv, "accuracy.n"), 5);
    double mean = s_num (cv, "accuracy.mean"), sd = s_num (cv, "accuracy.std");
    fprintf (stderr, "000: 5-fold accuracy %.4f +- %.4f\n", mean, sd);
    assert_true (mean > 0.9 && sd >= 0 && sd < 0.1);
    Ty__JobInfo *ev = s_step (it, list, "evaluate");
    assert_string_equal (s_out (ev, "gate"), "PASS");
    Ty__JobInfo *conv = s_step (it, list, "convert");
    s_not_skipped (conv);
    assert_string_equal (s_out (conv, "target"), "int8");
    assert_true (s_num (conv, "size_ratio") <= 0.3);
    Ty__JobInfo *pr = s_step (it, list, "promote");
    s_not_skipped (pr);
    assert_string_equal (s_out (pr, "stage"), "production");
    ty_client_free_msg (pr);
    ty_client_free_msg (conv);
    ty_client_free_msg (ev);
    ty_client_free_msg (cv);
    ty_client_free_msg (list);
    ty_testenv_passed (it->env);
}

static void
test_workflow_001_frames (void **state)
{
    ty_it_t *it = *state;
    char data [PATH_MAX], id [TY_PIPELINE_ID_LEN + 1];
    s_cluster (it->env, data, sizeof data);
    s_run (it, "001-frames.yaml", NULL, id);
    Ty__JobList *list = s_wait (it, id);
    Ty__JobInfo *prep = s_step (it, list, "prepare");
    assert_non_null (strstr (s_out (prep, "counts"), "\"calib\""));
    Ty__JobInfo *conv = s_step (it, list, "convert");
    s_not_skipped (conv);
    assert_true (s_num (conv, "agreement_top1") >= 0.9);
    Ty__JobInfo *can = s_step (it, list, "canary");
    s_not_skipped (can);
    assert_string_equal (s_out (can, "stage"), "canary");
    assert_string_equal (s_out (can, "rollout"), "10");
    /* The canary's INT8 file, as a device runs it: `trainyard predict` on
       image files, one per class (sample d of the data set is a d). */
    char list_path [PATH_MAX], cmd [4 * PATH_MAX];
    ty_testenv_path (it->env, "images.txt", list_path, sizeof list_path);
    FILE *lf = fopen (list_path, "w");
    assert_non_null (lf);
    for (int d = 0; d < 10; d++)
        fprintf (lf, "%s/examples/data/digits/%d/%d.png\n", TY_SOURCE_DIR, d, d);
    fclose (lf);
    snprintf (cmd, sizeof cmd, "%s predict --model frames@canary --format int8 --data %s < %s",
              TY_TRAINYARD_BIN, data, list_path);
    FILE *pp = popen (cmd, "r");
    assert_non_null (pp);
    char line [512];
    int n = 0, right = 0;
    while (fgets (line, sizeof line, pp)) {
        right += line [0] == (char) ('0' + n) && line [1] == '\t';
        n++;
    }
    assert_int_equal (pclose (pp), 0);
    assert_int_equal (n, 10);
    fprintf (stderr, "001: predict on 10 images (INT8 canary): %d right\n", right);
    assert_true (right >= 8);
    ty_client_free_msg (can);
    ty_client_free_msg (conv);
    ty_client_free_msg (prep);
    ty_client_free_msg (list);
    ty_testenv_passed (it->env);
}

static void
test_workflow_002_ratings (void **state)
{
    ty_it_t *it = *state;
    char data [PATH_MAX], id [TY_PIPELINE_ID_LEN + 1];
    s_cluster (it->env, data, sizeof data);
    s_run (it, "002-ratings.yaml", NULL, id);
    Ty__JobList *list = s_wait (it, id);
    Ty__JobInfo *prep = s_step (it, list, "prepare");
    assert_string_equal (s_out (prep, "added"), "400");      /* 402 rows, 2 rejected */
    Ty__JobInfo *ev = s_step (it, list, "evaluate");
    assert_true (s_num (ev, "r2") >= 0.8);
    Ty__JobInfo *pr = s_step (it, list, "promote");
    s_not_skipped (pr);
    assert_string_equal (s_out (pr, "stage"), "production");
    ty_client_free_msg (pr);
    ty_client_free_msg (ev);
    ty_client_free_msg (prep);
    ty_client_free_msg (list);
    ty_testenv_passed (it->env);
}

static void
test_workflow_003_papers (void **state)
{
    ty_it_t *it = *state;
    char data [PATH_MAX], id [TY_PIPELINE_ID_LEN + 1];
    s_cluster (it->env, data, sizeof data);
    s_run (it, "003-papers.yaml", NULL, id);
    Ty__JobList *list = s_wait (it, id);
    Ty__JobInfo *et = s_step (it, list, "evaluate_texts");
    assert_string_equal (s_out (et, "task"), "multilabel");
    assert_true (s_num (et, "micro_f1") >= 0.85);
    Ty__JobInfo *er = s_step (it, list, "evaluate_recs");
    assert_string_equal (s_out (er, "task"), "ranking");
    double hr = s_num (er, "hit_rate");
    fprintf (stderr, "003: HR@10 %.3f NDCG@10 %.3f\n", hr, s_num (er, "ndcg"));
    assert_true (hr >= 0.2);        /* chance: 10 of 100 candidates = 0.1 */
    ty_client_free_msg (er);
    ty_client_free_msg (et);
    ty_client_free_msg (list);
    ty_testenv_passed (it->env);
}

static void
test_workflow_004_chat (void **state)
{
    ty_it_t *it = *state;
    char data [PATH_MAX], id [TY_PIPELINE_ID_LEN + 1];
    s_cluster (it->env, data, sizeof data);
    s_run (it, "004-chat.yaml", NULL, id);
    Ty__JobList *list = s_wait (it, id);
    assert_int_equal (list->n_jobs, 8);
    static const char *const tasks [] = { "personality", "engagement" };
    for (size_t t = 0; t < 2; t++) {
        char step [64], model [64];
        snprintf (step, sizeof step, "train[task=%s]", tasks [t]);
        Ty__JobInfo *tr = s_step (it, list, step);
        snprintf (model, sizeof model, "%s@1", tasks [t]);
        assert_string_equal (s_out (tr, "model"), model);
        snprintf (step, sizeof step, "promote[task=%s]", tasks [t]);
        Ty__JobInfo *pr = s_step (it, list, step);
        s_not_skipped (pr);
        assert_string_equal (s_out (pr, "model"), model);
        ty_client_free_msg (pr);
        ty_client_free_msg (tr);
    }
    ty_client_free_msg (list);
    ty_testenv_passed (it->env);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_workflow_000_filenames, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_workflow_001_frames, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_workflow_002_ratings, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_workflow_003_papers, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_workflow_004_chat, s_setup, ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

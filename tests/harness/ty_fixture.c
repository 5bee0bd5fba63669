/*  ty_fixture: helpers shared by the model-training integration tests.
 *  See ty_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

#include "ty_fixture.h"
#include "ty_dataset.h"
#include "ty_error.h"

/* ---- files and JSON --------------------------------------------------------- */

uint64_t
ty_fixture_rand (uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int
ty_fixture_exists (const char *dir, const char *file)
{
    char path [TY_MODELDIR_PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    struct stat st;
    return stat (path, &st) == 0;
}

char *
ty_fixture_slurp (const char *path, size_t *len)
{
    FILE *fp = fopen (path, "r");
    if (!fp)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc (cap);
    while (buf) {
        n += fread (buf + n, 1, cap - n - 1, fp);
        if (n < cap - 1)
            break;             /* end of file or an error: ferror says which */
        char *bigger = realloc (buf, cap * 2);
        if (!bigger) {
            free (buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = !buf || ferror (fp);
    int saved = buf ? EIO : ENOMEM;
    fclose (fp);
    if (failed) {
        free (buf);
        errno = saved;
        return NULL;
    }
    buf [n] = '\0';
    if (len)
        *len = n;
    return buf;
}

cJSON *
ty_fixture_must_load_json (const char *path)
{
    char *text = ty_fixture_slurp (path, NULL);
    if (!text)
        fail_msg ("%s: %s", path, strerror (errno));
    cJSON *doc = cJSON_Parse (text);
    free (text);
    if (!doc)
        fail_msg ("%s: not JSON", path);
    return doc;
}

static const cJSON *
s_json_at (const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, a);
    if (b)
        v = cJSON_GetObjectItemCaseSensitive (v, b);
    return v;
}

double
ty_fixture_json_num (const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = s_json_at (o, a, b);
    return cJSON_IsNumber (v) ? v->valuedouble : NAN;
}

double
ty_fixture_must_json_num (const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = s_json_at (o, a, b);
    if (!cJSON_IsNumber (v))
        fail_msg ("%s%s%s: not a number", a, b ? "." : "", b ? b : "");
    return v->valuedouble;
}

/* ---- in-process training ---------------------------------------------------- */

static void
s_metric (void *arg, const char *key, double value)
{
    ty_fixture_train_t *s = arg;
    if (!strcmp (key, "epoch") && !s->first_epoch)
        s->first_epoch = (int) value;
    if (!strcmp (key, "epochs_done")) {
        s->epochs_done = (int) value;
        if (s->die_after_epoch && s->epochs_done == s->die_after_epoch)
            _exit (0);         /* the checkpoint of this epoch is on disk */
    }
}

static int
s_cancelled (void *arg)
{
    ty_fixture_train_t *s = arg;
    return s->cancel_after_epoch && s->epochs_done >= s->cancel_after_epoch;
}

static int
s_rm (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb; (void) flag; (void) ftw;
    return remove (path);
}

int
ty_fixture_train_setup (void **state, const char *name)
{
    ty_fixture_train_t *s = calloc (1, sizeof *s);
    if (!s)
        return -1;
    snprintf (s->dir, sizeof s->dir, "/tmp/ty-test-%s-XXXXXX", name);
    if (!mkdtemp (s->dir)) {
        free (s);
        return -1;
    }
    *state = s;
    return 0;
}

int
ty_fixture_train_teardown (void **state)
{
    ty_fixture_train_t *s = *state;
    const char *keep = getenv ("TY_TEST_KEEP");
    if (!(keep && *keep == '1'))
        nftw (s->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free (s);
    return 0;
}

int
ty_fixture_train_run (ty_fixture_train_t *s, const Ty__TrainSpec *spec, const char *job_id,
                      unsigned attempt, ty_train_result_t *res, char *err, size_t errlen)
{
    ty_train_config_t cfg;
    int rc = ty_train_config_from_spec (spec, &cfg, err, errlen);
    if (rc != TY_OK)
        return rc;
    s->epochs_done = 0;
    s->first_epoch = 0;
    ty_train_env_t env = {
        .data_dir = s->dir, .job_id = job_id, .attempt = attempt, .default_threads = 1,
        .hooks = { .arg = s, .metric = s_metric, .cancelled = s_cancelled },
    };
    return ty_train_run (&cfg, &env, res, err, errlen);
}

void
ty_fixture_train_must_run (ty_fixture_train_t *s, const Ty__TrainSpec *spec, const char *job_id,
                           ty_train_result_t *res)
{
    char err [TY_TRAIN_ERR_LEN] = "";
    int rc = ty_fixture_train_run (s, spec, job_id, 1, res, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("train %s: %s (%d): %s", job_id, ty_strerror (rc), rc, err);
}

void
ty_fixture_train_must_resume (ty_fixture_train_t *s, const Ty__TrainSpec *spec,
                              const char *job_id, ty_train_result_t *res)
{
    char err [TY_TRAIN_ERR_LEN] = "";
    int rc = ty_fixture_train_run (s, spec, job_id, 2, res, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("resume: %s", err);
}

void
ty_fixture_train_crash (ty_fixture_train_t *s, const Ty__TrainSpec *spec, const char *job_id,
                        int die_after)
{
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        s->die_after_epoch = die_after;
        char err [TY_TRAIN_ERR_LEN];
        ty_train_result_t r;
        ty_fixture_train_run (s, spec, job_id, 1, &r, err, sizeof err);
        _exit (3);             /* never reached when the crash happened */
    }
    int st = 0;
    assert_int_equal (waitpid (pid, &st, 0), pid);
    assert_true (WIFEXITED (st) && WEXITSTATUS (st) == 0);
}

void
ty_fixture_train_resume_check (ty_fixture_train_t *s, const Ty__TrainSpec *spec, const char *job,
                               int die_after)
{
    char full_job [64], crash_job [64];
    snprintf (full_job, sizeof full_job, "%s-full", job);
    snprintf (crash_job, sizeof crash_job, "%s-crash", job);
    ty_train_result_t full, resumed;
    ty_fixture_train_must_run (s, spec, full_job, &full);

    ty_fixture_train_crash (s, spec, crash_job, die_after);
    char ck [512], file [32];
    snprintf (ck, sizeof ck, "%s/checkpoints/%s", s->dir, crash_job);
    snprintf (file, sizeof file, "epoch-%d.pt", die_after);
    assert_true (ty_fixture_exists (ck, "state.json"));
    assert_true (ty_fixture_exists (ck, file));

    ty_fixture_train_must_resume (s, spec, crash_job, &resumed);
    fprintf (stderr, "%s: resumed from epoch %d, weights %016llx (uninterrupted %016llx)\n",
             spec->model_kind, resumed.resumed_from,
             (unsigned long long) resumed.weights_digest,
             (unsigned long long) full.weights_digest);
    assert_int_equal (resumed.resumed_from, die_after);
    assert_int_equal (s->first_epoch, die_after + 1);
    assert_int_equal (resumed.epochs_run, (int) spec->epochs);
    assert_true (resumed.weights_digest == full.weights_digest);
    assert_true (resumed.best_metric == full.best_metric);
    /* the retry ended the job: its checkpoint state is gone */
    assert_false (ty_fixture_exists (ck, "state.json"));
}

void
ty_fixture_train_expect_fail (ty_fixture_train_t *s, const Ty__TrainSpec *spec, int want_rc,
                              const char *phrase, const char *phrase2)
{
    ty_train_result_t res;
    char err [TY_TRAIN_ERR_LEN] = "";
    int rc = ty_fixture_train_run (s, spec, "job-bad", 1, &res, err, sizeof err);
    fprintf (stderr, "%s on %s -> %s (%d): %s\n", spec->model_kind, spec->dataset,
             ty_strerror (rc), rc, err);
    assert_int_equal (rc, want_rc);
    if (!strstr (err, phrase) || (phrase2 && !strstr (err, phrase2)))
        fail_msg ("message '%s' does not name the problem ('%s', '%s')", err, phrase,
                  phrase2 ? phrase2 : "");
}

void
ty_fixture_textclf_small (Ty__TrainSpec *spec, uint32_t epochs, uint32_t dim, uint32_t bucket)
{
    spec->epochs = epochs;
    spec->dim = dim;
    spec->lr = 0.5;
    spec->bucket = bucket;
    spec->batch_size = 8;
    spec->threads = 1;
    spec->seed = 7;
}

void
ty_fixture_train_textclf (const char *data, const char *dataset, const char *name,
                          uint32_t epochs, uint32_t dim, uint32_t bucket, const char *job_id)
{
    Ty__TrainSpec spec = TY__TRAIN_SPEC__INIT;
    spec.dataset = (char *) dataset;
    spec.model_kind = "textclf";
    spec.model_name = (char *) name;
    ty_fixture_textclf_small (&spec, epochs, dim, bucket);
    ty_train_config_t cfg;
    char err [TY_TRAIN_ERR_LEN];
    if (ty_train_config_from_spec (&spec, &cfg, err, sizeof err) != TY_OK)
        fail_msg ("train config: %s", err);
    ty_train_env_t env;
    memset (&env, 0, sizeof env);
    env.data_dir = data;
    env.job_id = job_id;
    env.attempt = 1;
    env.default_threads = 1;
    ty_train_result_t res;
    if (ty_train_run (&cfg, &env, &res, err, sizeof err) != TY_OK)
        fail_msg ("train: %s", err);
}

/* ---- the "mail" dataset ------------------------------------------------------- */

#define S_MAIL_WORDS 5

const char *const ty_fixture_mail_labels [TY_FIXTURE_MAIL_NCLASSES] = { "ham", "spam", "eggs" };

static const char *const s_mail_words [TY_FIXTURE_MAIL_NCLASSES][S_MAIL_WORDS] = {
    { "hello", "meeting", "lunch", "friend", "agenda" },
    { "win", "money", "prize", "free", "offer" },
    { "chicken", "breakfast", "omelette", "yolk", "shell" },
};

void
ty_fixture_write_mail (const char *data, const char *name, const char *const *labels,
                       size_t ntest, int flags)
{
    int regression = (flags & TY_FIXTURE_MAIL_REGRESSION) != 0;
    ty_dataset_writer_t *w = NULL;
    int rc = ty_dataset_writer_new (data, name, NULL, &w);
    if (rc != TY_OK)
        fail_msg ("writer: %s", ty_strerror (rc));
    uint64_t rng = 42;
    const size_t counts [3] = { TY_FIXTURE_MAIL_TRAIN, TY_FIXTURE_MAIL_VAL, ntest };
    const ty_split_t splits [3] = { TY_SPLIT_TRAIN, TY_SPLIT_VAL, TY_SPLIT_TEST };
    uint64_t per_class_train [TY_FIXTURE_MAIL_NCLASSES] = { 0 };
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < counts [s]; i++) {
            int cls = (int) (ty_fixture_rand (&rng) % TY_FIXTURE_MAIL_NCLASSES);
            /* decoys: the model is not perfect and the confusion matrix has
               off-diagonal cells */
            int words_of = (flags & TY_FIXTURE_MAIL_DECOYS) && cls == 2 && i % 7 == 0 ? 0 : cls;
            char text [256];
            snprintf (text, sizeof text, "%s n%d %s %s n%d",
                      s_mail_words [words_of][ty_fixture_rand (&rng) % S_MAIL_WORDS],
                      (int) (ty_fixture_rand (&rng) % 4),
                      s_mail_words [words_of][ty_fixture_rand (&rng) % S_MAIL_WORDS],
                      s_mail_words [cls][ty_fixture_rand (&rng) % S_MAIL_WORDS],
                      (int) (ty_fixture_rand (&rng) % 4));
            Ty__Sample sample = TY__SAMPLE__INIT;
            sample.text = text;
            sample.weight = 1;
            char *lab [1] = { labels ? (char *) labels [cls] : NULL };
            if (regression) {
                sample.has_target = 1;
                sample.target = cls / 2.0;
            }
            else {
                sample.labels = lab;
                sample.n_labels = 1;
            }
            if (splits [s] == TY_SPLIT_TRAIN)
                per_class_train [cls]++;
            if ((rc = ty_dataset_writer_add (w, splits [s], &sample)) != TY_OK)
                fail_msg ("add: %s", ty_strerror (rc));
        }
    Ty__DatasetMeta meta = TY__DATASET_META__INIT;
    meta.kind = "text";
    Ty__ClassCount cc [TY_FIXTURE_MAIL_NCLASSES];
    Ty__ClassCount *ccp [TY_FIXTURE_MAIL_NCLASSES];
    if (!regression) {
        meta.labels = (char **) labels;
        meta.n_labels = TY_FIXTURE_MAIL_NCLASSES;
        for (int c = 0; c < TY_FIXTURE_MAIL_NCLASSES; c++) {
            ty__class_count__init (&cc [c]);
            cc [c].label = (char *) labels [c];
            cc [c].train = per_class_train [c];
            ccp [c] = &cc [c];
        }
        meta.classes = ccp;
        meta.n_classes = TY_FIXTURE_MAIL_NCLASSES;
    }
    if ((rc = ty_dataset_writer_commit (&w, &meta, NULL, NULL)) != TY_OK)
        fail_msg ("commit: %s", ty_strerror (rc));
}

/* ---- one worker in a real cluster -------------------------------------------- */

static void
s_start_worker (ty_fixture_cluster_t *f, const ty_fixture_worker_t *wk)
{
    const char *args [] = { "--data", f->data, NULL };
    ty_testenv_must_start_worker_bin (f->env, wk->bin, wk->worker_id, TY_TESTENV_HEARTBEAT_MS,
                                      args);
    if (ty_testenv_wait_worker (f->env, wk->worker_id, TY_TESTENV_STARTUP_MS) != 0)
        fail_msg ("%s worker never registered", wk->what);
}

int
ty_fixture_cluster_setup (void **state, const ty_fixture_worker_t *worker)
{
    ty_fixture_cluster_t *f = calloc (1, sizeof *f);
    if (!f)
        return -1;
    *state = f;
    f->env = ty_testenv_must_new (worker->env_name);
    ty_testenv_path (f->env, "data", f->data, sizeof f->data);
    mkdir (f->data, 0755);
    ty_testenv_must_start_redis (f->env, NULL);
    ty_testenv_must_start_broker (f->env, TY_TESTENV_HEARTBEAT_MS, NULL);
    s_start_worker (f, worker);
    f->client = ty_client_new (ty_testenv_client_ep (f->env));
    return f->client ? 0 : -1;
}

int
ty_fixture_cluster_teardown (void **state)
{
    ty_fixture_cluster_t *f = *state;
    ty_client_destroy (&f->client);
    int rc = ty_testenv_finish (&f->env);
    free (f);
    return rc;
}

int
ty_fixture_wait_job (ty_fixture_cluster_t *f, const char *id, const char *want, int timeout_ms,
                     const char *worker_id)
{
    if (ty_testenv_wait_state (f->env, id, want, timeout_ms) == 0)
        return 0;
    char *err = ty_testenv_job_field (f->env, id, "error");
    fprintf (stderr, "job %s error: %s\n", id, err ? err : "");
    free (err);
    char log [128];
    snprintf (log, sizeof log, "%s.log", worker_id);
    ty_testenv_print_tail (f->env, log, 30);
    return -1;
}

void
ty_fixture_assert_error (ty_fixture_cluster_t *f, const char *id, const char *needle)
{
    char *err = ty_testenv_job_field (f->env, id, "error");
    if (!err || !strstr (err, needle)) {
        fprintf (stderr, "job %s error: '%s', want '%s'\n", id, err ? err : "", needle);
        free (err);
        fail_msg ("unexpected error message");
    }
    free (err);
}

int
ty_fixture_cli (ty_fixture_cluster_t *f, const char *bin, char *out, size_t len,
                const char *args)
{
    char cmd [PATH_MAX * 3 + 512];
    snprintf (cmd, sizeof cmd, "TRAINYARD_DATA='%s' '%s' --broker '%s' %s", f->data, bin,
              ty_testenv_client_ep (f->env), args);
    return ty_testenv_run_capture (cmd, out, len);
}

/*  test_control: the runtime side of pipelines and trainyard-control.
 *
 *  1. The control actions as functions, on inputs shaped as the broker
 *     sends them and on a real LMDB registry in a temp dir: k-fold
 *     aggregate (mean, sample std, n, folds JSON, best branch), every-numeric
 *     mode, the failures (missing metric names the branch), promote with
 *     the gate rule and the audit actor.
 *  2. The real trainyard-control executable against this test acting as
 *     the broker's worker side (a ROUTER speaking the protocol): ASSIGN
 *     with inputs -> references substituted, `when` false -> SUCCEEDED
 *     skipped without running, unresolved reference / malformed condition
 *     -> FAILED with the reason, promote through the binary.
 *  3. End to end with redis, the broker and workers: noop branches with
 *     step names, an aggregate child on trainyard-control, and a child
 *     whose condition on the aggregate's output is false.
 */
#include "ty_it.h"
#include "ty_control.h"
#include "ty_id.h"
#include "ty_registry.h"
#include "ty_wire.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define S_HEARTBEAT_MS  TY_TESTENV_HEARTBEAT_MS
#define S_RESULT_MS     10000    /* a control job answers in ms; generous for ASan */
#define S_OUT_MAX       64

/* =========================================================================
 *  helpers: inputs, a collecting sink
 * ========================================================================= */

typedef struct {
    Ty__Output  items [S_OUT_MAX];
    Ty__Output *ptrs [S_OUT_MAX];
    char        keys [S_OUT_MAX][96];
    char        values [S_OUT_MAX][96];
    size_t      n;
} s_inputs_t;

static void
s_add (s_inputs_t *in, const char *key, const char *fmt, ...)
{
    assert_true (in->n < S_OUT_MAX);
    size_t i = in->n++;
    snprintf (in->keys [i], sizeof in->keys [i], "%s", key);
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (in->values [i], sizeof in->values [i], fmt, ap);
    va_end (ap);
    ty__output__init (&in->items [i]);
    in->items [i].key = in->keys [i];
    in->items [i].value = in->values [i];
    in->ptrs [i] = &in->items [i];
}

static const Ty__Output *const *
s_list (const s_inputs_t *in)
{
    return (const Ty__Output *const *) in->ptrs;
}

typedef struct {
    char   keys [2 * S_OUT_MAX][96];
    char  *values [2 * S_OUT_MAX];
    size_t n;
    char   mkeys [2 * S_OUT_MAX][96];
    double mvalues [2 * S_OUT_MAX];
    size_t nm;
} s_sink_t;

static void
s_sink_output (void *arg, const char *key, const char *value)
{
    s_sink_t *s = arg;
    if (s->n == 2 * S_OUT_MAX)
        return;
    snprintf (s->keys [s->n], sizeof s->keys [s->n], "%s", key);
    s->values [s->n++] = strdup (value);
}

static void
s_sink_metric (void *arg, const char *key, double value)
{
    s_sink_t *s = arg;
    if (s->nm == 2 * S_OUT_MAX)
        return;
    snprintf (s->mkeys [s->nm], sizeof s->mkeys [s->nm], "%s", key);
    s->mvalues [s->nm++] = value;
}

static void
s_sink_clear (s_sink_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free (s->values [i]);
    s->n = s->nm = 0;
}

static const char *
s_sink_get (const s_sink_t *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp (s->keys [i], key))
            return s->values [i];
    return NULL;
}

static double
s_sink_num (const s_sink_t *s, const char *key)
{
    const char *v = s_sink_get (s, key);
    if (!v)
        fail_msg ("no output %s", key);
    return strtod (v, NULL);
}

static int
s_sink_has_metric (const s_sink_t *s, const char *key, double *value)
{
    for (size_t i = 0; i < s->nm; i++)
        if (!strcmp (s->mkeys [i], key)) {
            *value = s->mvalues [i];
            return 1;
        }
    return 0;
}

/* Five folds as the broker passes them: train[fold=i].model, the
   evaluate[fold=i] metrics, and a non-branch prepare input. */
static const double s_acc [5] = { 0.90, 0.85, 0.95, 0.80, 0.88 };
static const double s_loss [5] = { 0.30, 0.40, 0.20, 0.50, 0.35 };

static void
s_kfold_inputs (s_inputs_t *in)
{
    in->n = 0;
    s_add (in, "prepare.version", "3");
    for (int i = 0; i < 5; i++) {
        char key [64];
        snprintf (key, sizeof key, "train[fold=%d].model", i);
        s_add (in, key, "clf@%d", 10 + i);
        snprintf (key, sizeof key, "evaluate[fold=%d].accuracy", i);
        s_add (in, key, "%.17g", s_acc [i]);
        snprintf (key, sizeof key, "evaluate[fold=%d].loss", i);
        s_add (in, key, "%.17g", s_loss [i]);
        snprintf (key, sizeof key, "evaluate[fold=%d].gate", i);
        s_add (in, key, "%s", i == 3 ? "FAIL" : "PASS");
    }
}

static void
s_mean_std (const double *v, size_t n, double *mean, double *std)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        s += v [i];
    *mean = s / (double) n;
    for (size_t i = 0; i < n; i++)
        ss += (v [i] - *mean) * (v [i] - *mean);
    *std = sqrt (ss / (double) (n - 1));
}

/* =========================================================================
 *  1. the actions as functions
 * ========================================================================= */

static void
test_control_aggregate_kfold (void **state)
{
    s_inputs_t in;
    s_kfold_inputs (&in);
    Ty__ControlSpec spec = TY__CONTROL_SPEC__INIT;
    char *metrics [] = { "accuracy", "evaluate.loss" };
    spec.action = "aggregate";
    spec.metrics = metrics;
    spec.n_metrics = 2;
    spec.best_by = "accuracy";
    s_sink_t sink = { .n = 0 };
    ty_control_sink_t cs = { s_sink_output, s_sink_metric, &sink };
    char err [TY_CONTROL_ERR_MAX];
    int rc = ty_control_aggregate (&spec, s_list (&in), in.n, &cs, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("aggregate: %s", err);

    double mean, std, got = -1;
    s_mean_std (s_acc, 5, &mean, &std);
    assert_true (fabs (s_sink_num (&sink, "accuracy.mean") - mean) < 1e-9);
    assert_true (fabs (s_sink_num (&sink, "accuracy.std") - std) < 1e-9);
    assert_true (std > 0.05);                 /* the sample std, not 0 */
    assert_string_equal (s_sink_get (&sink, "accuracy.n"), "5");
    assert_true (s_sink_has_metric (&sink, "accuracy.mean", &got));
    assert_true (fabs (got - mean) < 1e-12);
    assert_true (s_sink_has_metric (&sink, "accuracy.std", &got));
    assert_true (fabs (got - std) < 1e-12);
    s_mean_std (s_loss, 5, &mean, &std);
    assert_true (fabs (s_sink_num (&sink, "evaluate.loss.mean") - mean) < 1e-9);
    assert_true (fabs (s_sink_num (&sink, "evaluate.loss.std") - std) < 1e-9);
    assert_string_equal (s_sink_get (&sink, "branches"), "5");

    /* Per-fold values as JSON, in fold order. */
    cJSON *folds = cJSON_Parse (s_sink_get (&sink, "folds"));
    assert_non_null (folds);
    assert_int_equal (cJSON_GetArraySize (folds), 5);
    for (int i = 0; i < 5; i++) {
        char b [16];
        snprintf (b, sizeof b, "fold=%d", i);
        cJSON *one = cJSON_GetArrayItem (folds, i);
        assert_string_equal (one->string, b);
        assert_true (fabs (cJSON_GetObjectItem (one, "accuracy")->valuedouble - s_acc [i]) < 1e-12);
        assert_true (fabs (cJSON_GetObjectItem (one, "evaluate.loss")->valuedouble - s_loss [i])
                     < 1e-12);
    }
    cJSON_Delete (folds);

    /* The best fold by accuracy is fold 2, with its model and every input. */
    assert_string_equal (s_sink_get (&sink, "best.branch"), "fold=2");
    assert_string_equal (s_sink_get (&sink, "best.train.model"), "clf@12");
    assert_string_equal (s_sink_get (&sink, "best.evaluate.gate"), "PASS");
    assert_true (fabs (s_sink_num (&sink, "best.value") - 0.95) < 1e-12);
    assert_null (s_sink_get (&sink, "best.prepare.version"));   /* not a branch */
    s_sink_clear (&sink);

    /* minimize: the smallest loss is fold 2 again; the largest is fold 3. */
    spec.best_by = "loss";
    spec.minimize = 1;
    assert_int_equal (ty_control_aggregate (&spec, s_list (&in), in.n, &cs, err, sizeof err),
                      TY_OK);
    assert_string_equal (s_sink_get (&sink, "best.branch"), "fold=2");
    s_sink_clear (&sink);
    spec.minimize = 0;
    assert_int_equal (ty_control_aggregate (&spec, s_list (&in), in.n, &cs, err, sizeof err),
                      TY_OK);
    assert_string_equal (s_sink_get (&sink, "best.branch"), "fold=3");
    assert_string_equal (s_sink_get (&sink, "best.train.model"), "clf@13");
    s_sink_clear (&sink);
    (void) state;
}

static void
test_control_aggregate_every_numeric (void **state)
{
    s_inputs_t in;
    s_kfold_inputs (&in);
    /* A key only some branches have is not aggregated. */
    s_add (&in, "evaluate[fold=1].extra", "7");
    Ty__ControlSpec spec = TY__CONTROL_SPEC__INIT;
    spec.action = "aggregate";
    s_sink_t sink = { .n = 0 };
    ty_control_sink_t cs = { s_sink_output, s_sink_metric, &sink };
    char err [TY_CONTROL_ERR_MAX];
    int rc = ty_control_aggregate (&spec, s_list (&in), in.n, &cs, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("aggregate: %s", err);
    assert_non_null (s_sink_get (&sink, "accuracy.mean"));
    assert_non_null (s_sink_get (&sink, "loss.std"));
    assert_null (s_sink_get (&sink, "gate.mean"));      /* PASS/FAIL: not numbers */
    assert_null (s_sink_get (&sink, "model.mean"));     /* clf@10: not a number */
    assert_null (s_sink_get (&sink, "extra.mean"));     /* not in every branch */
    assert_null (s_sink_get (&sink, "version.mean"));   /* prepare: not a branch */
    assert_null (s_sink_get (&sink, "best.branch"));    /* no best_by */
    s_sink_clear (&sink);

    /* The same key in two steps: named step.key. */
    s_inputs_t two = { .n = 0 };
    for (int i = 0; i < 3; i++) {
        char key [64];
        snprintf (key, sizeof key, "train[seed=%d].loss", i);
        s_add (&two, key, "%d", i);
        snprintf (key, sizeof key, "evaluate[seed=%d].loss", i);
        s_add (&two, key, "%d", 10 * i);
    }
    assert_int_equal (ty_control_aggregate (&spec, s_list (&two), two.n, &cs, err, sizeof err),
                      TY_OK);
    assert_true (fabs (s_sink_num (&sink, "train.loss.mean") - 1) < 1e-12);
    assert_true (fabs (s_sink_num (&sink, "evaluate.loss.mean") - 10) < 1e-12);
    assert_true (fabs (s_sink_num (&sink, "evaluate.loss.std") - 10) < 1e-12);
    s_sink_clear (&sink);
    /* ... and asked for by the bare key, it is ambiguous. */
    char *metrics [] = { "loss" };
    spec.metrics = metrics;
    spec.n_metrics = 1;
    assert_int_equal (ty_control_aggregate (&spec, s_list (&two), two.n, &cs, err, sizeof err),
                      TY_EINVAL);
    assert_non_null (strstr (err, "'evaluate.loss'"));
    assert_int_equal (sink.n, 0);
    (void) state;
}

static void
test_control_aggregate_failures (void **state)
{
    s_inputs_t in;
    s_kfold_inputs (&in);
    /* Fold 4 lost its accuracy (e.g. an evaluate that wrote other keys). */
    for (size_t i = 0; i < in.n; i++)
        if (!strcmp (in.keys [i], "evaluate[fold=4].accuracy"))
            snprintf (in.keys [i], sizeof in.keys [i], "evaluate[fold=4].acc");
    Ty__ControlSpec spec = TY__CONTROL_SPEC__INIT;
    char *metrics [] = { "loss", "accuracy" };
    spec.action = "aggregate";
    spec.metrics = metrics;
    spec.n_metrics = 2;
    s_sink_t sink = { .n = 0 };
    ty_control_sink_t cs = { s_sink_output, s_sink_metric, &sink };
    char err [TY_CONTROL_ERR_MAX];
    assert_int_equal (ty_control_aggregate (&spec, s_list (&in), in.n, &cs, err, sizeof err),
                      TY_EINVAL);
    fprintf (stderr, "control: %s\n", err);
    assert_non_null (strstr (err, "metric 'accuracy' is missing in branch fold=4"));
    /* Nothing half-written: loss was fine, but no output went out. */
    assert_int_equal (sink.n, 0);
    assert_int_equal (sink.nm, 0);

    /* best_by missing everywhere, with the inputs listed. */
    s_kfold_inputs (&in);
    spec.n_metrics = 0;
    spec.best_by = "f1";
    assert_int_equal (ty_control_aggregate (&spec, s_list (&in), in.n, &cs, err, sizeof err),
                      TY_EINVAL);
    assert_non_null (strstr (err, "metric 'f1' is in no branch's inputs"));
    assert_non_null (strstr (err, "train[fold=0].model"));

    /* Not a number. */
    spec.best_by = "gate";
    assert_int_equal (ty_control_aggregate (&spec, s_list (&in), in.n, &cs, err, sizeof err),
                      TY_EINVAL);
    assert_non_null (strstr (err, "not a number: 'PASS'"));

    /* No branches at all. */
    s_inputs_t flat = { .n = 0 };
    s_add (&flat, "evaluate.accuracy", "0.9");
    spec.best_by = "";
    assert_int_equal (ty_control_aggregate (&spec, s_list (&flat), flat.n, &cs, err,
                                            sizeof err), TY_EINVAL);
    assert_non_null (strstr (err, "foreach"));
    assert_int_equal (sink.n, 0);

    /* Key parsing: a branch value with dots. */
    ty_control_key_t k;
    assert_int_equal (ty_control_key_parse ("train[lr=0.1].model", &k), 0);
    assert_int_equal ((int) k.base_len, 5);
    assert_memory_equal (k.branch, "lr=0.1", 6);
    assert_int_equal ((int) k.branch_len, 6);
    assert_string_equal (k.key, "model");
    assert_int_equal (ty_control_key_parse ("nodot", &k), -1);
    assert_int_equal (ty_control_key_parse ("a[x=1]model", &k), -1);
    (void) state;
}

/* ---- a registry with versions -------------------------------------------- */

static void
s_write_file (const char *dir, const char *file, const char *text)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    assert_true (fputs (text, f) >= 0);
    assert_int_equal (fclose (f), 0);
}

static void
s_mkdir (const char *path)
{
    assert_true (mkdir (path, 0755) == 0 || errno == EEXIST);
}

/* models/<name>/<version>/ as train + evaluate leave it, registered. */
static void
s_make_version (const char *data, const char *name, uint64_t version, const char *gate)
{
    char dir [PATH_MAX], text [1024];
    snprintf (dir, sizeof dir, "%s/models", data);
    s_mkdir (dir);
    snprintf (dir, sizeof dir, "%s/models/%s", data, name);
    s_mkdir (dir);
    snprintf (dir, sizeof dir, "%s/models/%s/%llu", data, name, (unsigned long long) version);
    s_mkdir (dir);
    s_write_file (dir, "model.pt", "weights");
    s_write_file (dir, "config.json", "{\"kind\": \"textclf\", \"trainyard_version\": \"0.1.0\"}");
    snprintf (text, sizeof text,
              "{\"format\": 1, \"dataset\": {\"name\": \"spam\", \"version\": 1,"
              " \"content_hash\": \"ab\"}, \"job_id\": \"job-%llu\", \"attempt\": 1,"
              " \"params\": {}}", (unsigned long long) version);
    s_write_file (dir, "lineage.json", text);
    snprintf (text, sizeof text,
              "{\"format_version\": 1, \"summary\": \"accuracy 0.9\", \"job_id\": \"ev\","
              " \"dataset\": {\"name\": \"spam\", \"version\": 1, \"split\": \"test\"},"
              " \"classification\": {\"accuracy\": 0.9}, \"gate\": {\"verdict\": \"%s\","
              " \"checks\": []}}", gate);
    s_write_file (dir, "metrics.json", text);
    ty_registry_t *reg = NULL;
    assert_int_equal (ty_registry_open (data, &reg), TY_OK);
    ty_registry_actor_t by = { "test", "setup", 0 };
    assert_int_equal (ty_registry_register (reg, name, version, &by, NULL), TY_OK);
    ty_registry_destroy (&reg);
}

/* The last audit entry's "who" for name. */
static char *
s_last_who (const char *data, const char *name)
{
    ty_registry_t *reg = NULL;
    assert_int_equal (ty_registry_open (data, &reg), TY_OK);
    cJSON *h = NULL;
    assert_int_equal (ty_registry_history_json (reg, name, &h), TY_OK);
    cJSON *last = cJSON_GetArrayItem (h, cJSON_GetArraySize (h) - 1);
    assert_non_null (last);
    cJSON *who = cJSON_GetObjectItem (last, "who");
    assert_true (cJSON_IsString (who));
    char *out = strdup (who->valuestring);
    cJSON_Delete (h);
    ty_registry_destroy (&reg);
    return out;
}

static ty_stage_t
s_stage (const char *data, const char *name, uint64_t version)
{
    ty_registry_t *reg = NULL;
    assert_int_equal (ty_registry_open (data, &reg), TY_OK);
    ty_stage_t st = TY_STAGE_COUNT;
    assert_int_equal (ty_registry_version_stage (reg, name, version, &st, NULL), TY_OK);
    ty_registry_destroy (&reg);
    return st;
}

static void
test_control_promote_registry (void **state)
{
    ty_it_t *it = *state;
    const char *data = ty_testenv_dir (it->env);
    s_make_version (data, "spam", 1, "PASS");
    s_make_version (data, "spam", 2, "FAIL");

    Ty__ControlSpec spec = TY__CONTROL_SPEC__INIT;
    spec.action = "promote";
    spec.model = "spam@1";
    spec.reason = "nightly";
    s_sink_t sink = { .n = 0 };
    ty_control_sink_t cs = { s_sink_output, s_sink_metric, &sink };
    char err [TY_CONTROL_ERR_MAX];
    int rc = ty_control_promote (&spec, data, "01JOBID0000000000", &cs, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("promote: %s", err);
    assert_string_equal (s_sink_get (&sink, "model"), "spam@1");
    assert_string_equal (s_sink_get (&sink, "version"), "1");
    assert_string_equal (s_sink_get (&sink, "stage"), "production");
    assert_string_equal (s_sink_get (&sink, "previous"), "0");
    assert_int_equal (s_stage (data, "spam", 1), TY_STAGE_PRODUCTION);
    char *who = s_last_who (data, "spam");
    assert_string_equal (who, "pipeline:01JOBID0000000000");
    free (who);
    s_sink_clear (&sink);

    /* Version 2 failed its gate: refused, production unchanged. */
    spec.model = "spam@2";
    assert_int_equal (ty_control_promote (&spec, data, "j2", &cs, err, sizeof err), TY_ESTATE);
    fprintf (stderr, "control: %s\n", err);
    assert_non_null (strstr (err, "spam@2"));
    assert_int_equal (sink.n, 0);
    assert_int_equal (s_stage (data, "spam", 1), TY_STAGE_PRODUCTION);
    /* Forced: it goes, and the old production is reported. */
    spec.force = 1;
    assert_int_equal (ty_control_promote (&spec, data, "j3", &cs, err, sizeof err), TY_OK);
    assert_string_equal (s_sink_get (&sink, "previous"), "1");
    assert_int_equal (s_stage (data, "spam", 2), TY_STAGE_PRODUCTION);
    assert_int_equal (s_stage (data, "spam", 1), TY_STAGE_ARCHIVED);
    s_sink_clear (&sink);

    /* Bad stage, unknown version. */
    spec.stage = "prod";
    assert_int_equal (ty_control_promote (&spec, data, "j4", &cs, err, sizeof err), TY_EINVAL);
    assert_non_null (strstr (err, "unknown stage 'prod'"));
    spec.stage = "canary";
    spec.model = "spam@9";
    assert_int_not_equal (ty_control_promote (&spec, data, "j5", &cs, err, sizeof err), TY_OK);
    assert_non_null (strstr (err, "spam@9"));
    assert_int_equal (sink.n, 0);
    ty_testenv_passed (it->env);
}

/* =========================================================================
 *  2. trainyard-control against the test as its broker
 * ========================================================================= */

typedef struct {
    void   *zctx;
    void   *router;
    char    ep [128];
    uint8_t route [256];
    size_t  route_len;
    pid_t   pid;
    char    data [PATH_MAX];
    char    log [PATH_MAX];
} s_fake_t;

/* The worker a failed assert left running: killed by the teardown. */
static pid_t s_fake_pid;

static void
s_fake_start (s_fake_t *f, ty_testenv_t *env)
{
    memset (f, 0, sizeof *f);
    snprintf (f->data, sizeof f->data, "%s", ty_testenv_dir (env));
    ty_testenv_path (env, "control.log", f->log, sizeof f->log);
    f->zctx = zmq_ctx_new ();
    assert_non_null (f->zctx);
    f->router = zmq_socket (f->zctx, ZMQ_ROUTER);
    assert_non_null (f->router);
    int zero = 0;
    zmq_setsockopt (f->router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal (zmq_bind (f->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof f->ep;
    assert_int_equal (zmq_getsockopt (f->router, ZMQ_LAST_ENDPOINT, f->ep, &len), 0);
    char hb [16];
    snprintf (hb, sizeof hb, "%d", S_HEARTBEAT_MS);
    char stderr_path [PATH_MAX];
    ty_testenv_path (env, "control.stderr", stderr_path, sizeof stderr_path);
    f->pid = fork ();
    assert_true (f->pid >= 0);
    if (f->pid == 0) {
        int fd = open (stderr_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2 (fd, 1);
            dup2 (fd, 2);
            close (fd);
        }
        execl (TY_CONTROL_BIN, TY_CONTROL_BIN, "--broker", f->ep, "--data", f->data,
               "--id", "ctl1", "--heartbeat-ms", hb, "--log-file", f->log, (char *) NULL);
        _exit (127);
    }
    s_fake_pid = f->pid;
    /* READY tells us its routing id. */
    int64_t end = ty_testenv_now_ms () + TY_TESTENV_STARTUP_MS;
    while (ty_testenv_now_ms () < end) {
        zmq_pollitem_t item = { f->router, 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, 50);
        if (!(item.revents & ZMQ_POLLIN))
            continue;
        ty_wire_msg_t msg;
        int rc = ty_wire_recv (f->router, 1, TY_WIRE_MAX_MSG_BYTES, &msg, 0);
        int ready = rc == TY_OK && msg.env->cmd_case == TY__ENVELOPE__CMD_READY;
        if (ready) {
            assert_string_equal (msg.env->ready->type, "control");
            memcpy (f->route, msg.route, msg.route_len);
            f->route_len = msg.route_len;
        }
        ty_wire_msg_clear (&msg);
        if (ready)
            return;
    }
    fail_msg ("trainyard-control sent no READY");
}

static void
s_fake_stop (s_fake_t *f)
{
    if (f->pid > 0) {
        kill (f->pid, SIGTERM);
        int status = 0;
        waitpid (f->pid, &status, 0);
        f->pid = 0;
        s_fake_pid = 0;
        /* The worker's own sanitizer reports (leaks show at exit). */
        char path [PATH_MAX + 16];
        snprintf (path, sizeof path, "%s/control.stderr", f->data);
        FILE *fp = fopen (path, "r");
        char line [1024];
        while (fp && fgets (line, sizeof line, fp))
            if (strstr (line, "Sanitizer") || strstr (line, "runtime error"))
                fail_msg ("trainyard-control: %s", line);
        if (fp)
            fclose (fp);
    }
    if (f->router)
        zmq_close (f->router);
    if (f->zctx)
        zmq_ctx_term (f->zctx);
    f->router = f->zctx = NULL;
}

static void
s_fake_send (s_fake_t *f, Ty__Envelope *env)
{
    assert_int_equal (ty_wire_send (f->router, f->route, f->route_len, env, 0), TY_OK);
}

/* Sends ASSIGN (spec + inputs) and plays the broker until RESULT: answers
   heartbeats, acks the result. Returns the result (caller frees with
   ty__result__free_unpacked). */
static Ty__Result *
s_fake_run (s_fake_t *f, const Ty__JobSpec *spec, const s_inputs_t *in, char *id_out)
{
    char id [TY_ID_LEN + 1];
    ty_id_new (id);
    if (id_out)
        memcpy (id_out, id, sizeof id);
    size_t len = ty__job_spec__get_packed_size (spec);
    uint8_t *buf = malloc (len ? len : 1);
    assert_non_null (buf);
    ty__job_spec__pack (spec, buf);
    Ty__Assign as = TY__ASSIGN__INIT;
    as.job_id = id;
    as.attempt = 1;
    as.spec.data = buf;
    as.spec.len = len;
    if (in) {
        as.inputs = (Ty__Output **) in->ptrs;
        as.n_inputs = in->n;
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.cmd_case = TY__ENVELOPE__CMD_ASSIGN;
    env.assign = &as;
    s_fake_send (f, &env);
    free (buf);

    /* The worker may send no ACCEPT: a result within a moment of the
       ASSIGN stands for it (docs/protocol.md). One that comes is no refusal. */
    int64_t end = ty_testenv_now_ms () + S_RESULT_MS, next_hb = 0;
    while (ty_testenv_now_ms () < end) {
        if (ty_testenv_now_ms () >= next_hb) {
            Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
            Ty__Envelope h = TY__ENVELOPE__INIT;
            h.cmd_case = TY__ENVELOPE__CMD_HEARTBEAT;
            h.heartbeat = &hb;
            s_fake_send (f, &h);
            next_hb = ty_testenv_now_ms () + S_HEARTBEAT_MS;
        }
        zmq_pollitem_t item = { f->router, 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, 20);
        if (!(item.revents & ZMQ_POLLIN))
            continue;
        ty_wire_msg_t msg;
        if (ty_wire_recv (f->router, 1, TY_WIRE_MAX_MSG_BYTES, &msg, 0) != TY_OK) {
            ty_wire_msg_clear (&msg);
            continue;
        }
        Ty__Envelope *e = msg.env;
        if (e->cmd_case == TY__ENVELOPE__CMD_ACCEPT && !strcmp (e->accept->job_id, id))
            assert_false (e->accept->refused);
        if (e->cmd_case == TY__ENVELOPE__CMD_RESULT && !strcmp (e->result->job_id, id)) {
            /* Keep a copy: msg owns e. */
            size_t rlen = ty__result__get_packed_size (e->result);
            uint8_t *rb = malloc (rlen ? rlen : 1);
            assert_non_null (rb);
            ty__result__pack (e->result, rb);
            Ty__Result *res = ty__result__unpack (NULL, rlen, rb);
            free (rb);
            Ty__ResultAck ack = TY__RESULT_ACK__INIT;
            ack.job_id = id;
            ack.attempt = 1;
            Ty__Envelope a = TY__ENVELOPE__INIT;
            a.cmd_case = TY__ENVELOPE__CMD_RESULT_ACK;
            a.result_ack = &ack;
            s_fake_send (f, &a);
            ty_wire_msg_clear (&msg);
            assert_non_null (res);
            return res;
        }
        ty_wire_msg_clear (&msg);
    }
    fail_msg ("job %s: no RESULT from trainyard-control in %d ms", id, S_RESULT_MS);
    return NULL;
}

static const char *
s_result_get (const Ty__Result *r, const char *key)
{
    for (size_t i = 0; i < r->n_outputs; i++)
        if (!strcmp (r->outputs [i]->key, key))
            return r->outputs [i]->value;
    return NULL;
}

/* A control job spec on the stack. */
typedef struct {
    Ty__JobSpec     spec;
    Ty__ControlSpec ctl;
} s_ctl_t;

static void
s_ctl (s_ctl_t *c, const char *action)
{
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__ControlSpec ctl = TY__CONTROL_SPEC__INIT;
    c->spec = spec;
    c->ctl = ctl;
    c->ctl.action = (char *) action;
    c->spec.kind_case = TY__JOB_SPEC__KIND_CONTROL;
    c->spec.control = &c->ctl;
}

static void
test_control_worker_substitutes_and_skips (void **state)
{
    ty_it_t *it = *state;
    s_fake_t f;
    s_fake_start (&f, it->env);
    s_inputs_t in;
    s_kfold_inputs (&in);
    s_add (&in, "config.metric", "accuracy");

    /* best_by by reference: substituted by the runtime before the job runs. */
    s_ctl_t c;
    s_ctl (&c, "aggregate");
    c.ctl.best_by = "${config.metric}";
    c.spec.when = "${prepare.version} >= 3";
    Ty__Result *r = s_fake_run (&f, &c.spec, &in, NULL);
    if (r->outcome != TY__OUTCOME__OUTCOME_SUCCEEDED)
        fail_msg ("aggregate failed: %s", r->error);
    assert_string_equal (s_result_get (r, "best.branch"), "fold=2");
    assert_string_equal (s_result_get (r, "best.train.model"), "clf@12");
    assert_string_equal (s_result_get (r, "accuracy.n"), "5");
    assert_null (s_result_get (r, "skipped"));
    ty__result__free_unpacked (r, NULL);

    /* when false: SUCCEEDED, skipped, and the job function never ran (a
       missing metric would have failed it). */
    c.ctl.best_by = "no_such_metric";
    c.spec.when = "${evaluate[fold=3].gate} == PASS";
    r = s_fake_run (&f, &c.spec, &in, NULL);
    assert_int_equal (r->outcome, TY__OUTCOME__OUTCOME_SUCCEEDED);
    assert_string_equal (s_result_get (r, "skipped"), "true");
    assert_string_equal (s_result_get (r, "reason"),
                         "when: ${evaluate[fold=3].gate} == PASS was false");
    assert_null (s_result_get (r, "branches"));
    ty__result__free_unpacked (r, NULL);

    /* A skipped parent skips the child before its references are resolved
       (this one names an output the skipped parent never had). */
    {
        static s_inputs_t skin;
        memset (&skin, 0, sizeof skin);
        s_add (&skin, "convert.skipped", "true");
        c.ctl.best_by = "${convert.artifact}";
        c.spec.when = "";
        r = s_fake_run (&f, &c.spec, &skin, NULL);
        assert_int_equal (r->outcome, TY__OUTCOME__OUTCOME_SUCCEEDED);
        assert_string_equal (s_result_get (r, "skipped"), "true");
        assert_string_equal (s_result_get (r, "reason"), "parent convert was skipped");
        ty__result__free_unpacked (r, NULL);
    }

    /* An unresolved reference fails the job, naming it and the inputs. */
    c.ctl.best_by = "${config.metrc}";
    c.spec.when = "";
    r = s_fake_run (&f, &c.spec, &in, NULL);
    assert_int_equal (r->outcome, TY__OUTCOME__OUTCOME_FAILED);
    fprintf (stderr, "control: %s\n", r->error);
    assert_non_null (strstr (r->error, "unresolved reference ${config.metrc} (inputs: "
                                       "config.metric"));
    assert_non_null (strstr (r->error, "in field control.best_by"));
    ty__result__free_unpacked (r, NULL);

    /* A malformed condition fails it too. */
    c.ctl.best_by = "";
    c.spec.when = "${prepare.version} => 3";
    r = s_fake_run (&f, &c.spec, &in, NULL);
    assert_int_equal (r->outcome, TY__OUTCOME__OUTCOME_FAILED);
    assert_non_null (strstr (r->error, "when: malformed condition"));
    assert_non_null (strstr (r->error, "'=>'"));
    ty__result__free_unpacked (r, NULL);

    /* No inputs at all (a job outside a pipeline), no references: runs as is. */
    s_ctl (&c, "aggregate");
    r = s_fake_run (&f, &c.spec, NULL, NULL);
    assert_int_equal (r->outcome, TY__OUTCOME__OUTCOME_FAILED);
    assert_non_null (strstr (r->error, "nothing to aggregate"));
    ty__result__free_unpacked (r, NULL);
    s_fake_stop (&f);
    ty_testenv_passed (it->env);
}

static void
test_control_worker_promotes (void **state)
{
    ty_it_t *it = *state;
    const char *data = ty_testenv_dir (it->env);
    s_make_version (data, "fruit", 1, "PASS");
    s_fake_t f;
    s_fake_start (&f, it->env);
    s_inputs_t in = { .n = 0 };
    s_add (&in, "train.model", "fruit@1");
    s_add (&in, "evaluate.gate", "PASS");
    s_ctl_t c;
    s_ctl (&c, "promote");
    c.ctl.model = "${train.model}";
    c.ctl.stage = "canary";
    c.ctl.rollout = 10;
    c.spec.when = "${evaluate.gate}";
    char id [TY_ID_LEN + 1];
    Ty__Result *r = s_fake_run (&f, &c.spec, &in, id);
    if (r->outcome != TY__OUTCOME__OUTCOME_SUCCEEDED)
        fail_msg ("promote failed: %s", r->error);
    assert_string_equal (s_result_get (r, "model"), "fruit@1");
    assert_string_equal (s_result_get (r, "stage"), "canary");
    assert_string_equal (s_result_get (r, "rollout"), "10");
    ty__result__free_unpacked (r, NULL);
    s_fake_stop (&f);
    assert_int_equal (s_stage (data, "fruit", 1), TY_STAGE_CANARY);
    char *who = s_last_who (data, "fruit");
    char want [64];
    snprintf (want, sizeof want, "pipeline:%s", id);
    assert_string_equal (who, want);
    free (who);
    ty_testenv_passed (it->env);
}

/* =========================================================================
 *  3. end to end: broker fills Assign.inputs
 * ========================================================================= */

static const char *
s_info_output (const Ty__JobInfo *info, const char *key)
{
    for (size_t i = 0; i < info->n_outputs; i++)
        if (!strcmp (info->outputs [i]->key, key))
            return info->outputs [i]->value;
    return NULL;
}

static void
test_control_pipeline_end_to_end (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, 2);
    char datadir [PATH_MAX];
    ty_testenv_path (env, "data", datadir, sizeof datadir);
    const char *cargs [] = { "--data", datadir, NULL };
    ty_testenv_must_start_worker_bin (env, "trainyard-control", "ctl", S_HEARTBEAT_MS, cargs);
    if (ty_testenv_wait_worker (env, "ctl", TY_TESTENV_STARTUP_MS) != 0)
        fail_msg ("trainyard-control never registered");
    ty_client_t *c = ty_it_must_client (it);

    /* Three noop branches of different lengths, an aggregate of their
       metric slept_ms, and a step whose condition on the aggregate is false. */
    enum { S_BRANCHES = 3 };
    static const uint32_t sleeps [S_BRANCHES] = { 20, 250, 60 };
    ty_it_noop_t n [S_BRANCHES];
    ty_submit_item_t items [S_BRANCHES + 2];
    memset (items, 0, sizeof items);
    char steps [S_BRANCHES][32];
    unsigned parents [S_BRANCHES];
    for (unsigned i = 0; i < S_BRANCHES; i++) {
        ty_it_noop (&n [i], sleeps [i], 0, NULL);
        snprintf (steps [i], sizeof steps [i], "evaluate[fold=%u]", i);
        items [i].spec = &n [i].spec;
        items [i].step = steps [i];
        items [i].pipeline = "p-test";
        parents [i] = i;
    }
    s_ctl_t agg;
    s_ctl (&agg, "aggregate");
    char *metrics [] = { "slept_ms" };
    agg.ctl.metrics = metrics;
    agg.ctl.n_metrics = 1;
    agg.ctl.best_by = "slept_ms";
    items [S_BRANCHES].spec = &agg.spec;
    items [S_BRANCHES].step = "aggregate";
    items [S_BRANCHES].pipeline = "p-test";
    items [S_BRANCHES].parent_items = parents;
    items [S_BRANCHES].nparent_items = S_BRANCHES;
    ty_it_noop_t last;
    ty_it_noop (&last, 0, 0, NULL);
    last.spec.when = "${aggregate.slept_ms.n} > 5";
    static const unsigned pagg [] = { S_BRANCHES };
    items [S_BRANCHES + 1].spec = &last.spec;
    items [S_BRANCHES + 1].step = "report";
    items [S_BRANCHES + 1].pipeline = "p-test";
    items [S_BRANCHES + 1].parent_items = pagg;
    items [S_BRANCHES + 1].nparent_items = 1;
    char ids [(S_BRANCHES + 2) * (TY_ID_LEN + 1)];
    int rc = ty_client_submit_batch (c, items, S_BRANCHES + 2, 0, TY_IT_RPC_MS, ids);
    if (rc != TY_OK)
        fail_msg ("submit_batch: %s: %s", ty_strerror (rc), ty_client_errstr (c));
    const char *agg_id = ids + S_BRANCHES * (TY_ID_LEN + 1);
    const char *last_id = ids + (S_BRANCHES + 1) * (TY_ID_LEN + 1);
    assert_int_equal (ty_testenv_wait_state (env, last_id, "SUCCEEDED", 20000), 0);

    Ty__JobInfo *info = NULL;
    rc = ty_client_status (c, agg_id, TY_IT_RPC_MS, &info);
    assert_int_equal (rc, TY_OK);
    if (strcmp (info->state, "SUCCEEDED"))
        fail_msg ("aggregate %s: %s", info->state, info->error);
    const char *nv = s_info_output (info, "slept_ms.n");
    assert_non_null (nv);
    assert_string_equal (nv, "3");
    /* The longest branch is the best by slept_ms, and each slept at least its time. */
    assert_string_equal (s_info_output (info, "best.branch"), "fold=1");
    assert_string_equal (s_info_output (info, "best.evaluate.summary"), "slept");
    double mean = strtod (s_info_output (info, "slept_ms.mean"), NULL);
    assert_true (mean >= (20 + 250 + 60) / 3.0);
    assert_true (mean < 5000);
    /* Its inputs, as the broker passed them, hold every branch. */
    assert_true (info->n_inputs >= S_BRANCHES * 2);
    ty_client_free_msg (info);

    info = NULL;
    assert_int_equal (ty_client_status (c, last_id, TY_IT_RPC_MS, &info), TY_OK);
    assert_string_equal (s_info_output (info, "skipped"), "true");
    assert_string_equal (s_info_output (info, "reason"),
                         "when: ${aggregate.slept_ms.n} > 5 was false");
    ty_client_free_msg (info);
    /* The skipped noop never ran its body: no exec-log line. */
    assert_int_equal (ty_testenv_exec_count (env, last_id, 0), 0);
    ty_testenv_passed (env);
}

TY_IT_SETUP ("control")

static int
s_teardown (void **state)
{
    if (s_fake_pid > 0) {
        kill (s_fake_pid, SIGKILL);
        waitpid (s_fake_pid, NULL, 0);
        s_fake_pid = 0;
    }
    return ty_it_teardown (state);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_control_aggregate_kfold),
        cmocka_unit_test (test_control_aggregate_every_numeric),
        cmocka_unit_test (test_control_aggregate_failures),
        cmocka_unit_test_setup_teardown (test_control_promote_registry, s_setup, ty_it_teardown),
        cmocka_unit_test_setup_teardown (test_control_worker_substitutes_and_skips, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_control_worker_promotes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_control_pipeline_end_to_end, s_setup,
                                         ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

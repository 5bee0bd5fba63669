/*  test_onnx: libtorch models of each kind -> ONNX (ty_onnx) ->
 *    - onnx.checker (full check, shape inference) and the metadata, the
 *      opset and the input/output names docs/onnx.md promises
 *      (tests/onnx/check_model.py, Debian's python3-onnx);
 *    - onnxruntime (onnxruntime-node, tests/onnx/run_model.js) on the same
 *      inputs as ty_torch_predict: every output within 1e-4;
 *  plus a model version directory exported with its label names, and bad
 *  directories (no model.pt, a corrupt one, no feat.json, an unwritable
 *  destination) refused with a message and no file left behind.
 *
 *  The file checks need python3-onnx and node: without either, the tests
 *  that need no tool still run, then the program says what is missing and
 *  exits 77, which ctest reports as skipped (never a silent pass). A node
 *  without onnxruntime-node is a failure: the build's fixture installs it.
 *
 *  Environment (tests/modules/onnx.cmake sets it): TY_ONNX_PYTHON,
 *  TY_ONNX_NODE, TY_ONNX_SCRIPTS (tests/onnx), NODE_PATH. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ty_batch.h"
#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_modeldir.h"
#include "ty_negsample.h"
#include "ty_onnx.h"
#include "ty_portable_fixture.h"
#include "ty_torch.h"

#define ERRLEN      512
#define TOL         1e-4        /* the bar: ONNX vs libtorch */
#define CMD_LEN     2048
#define SKIP_STATUS 77          /* ctest SKIP_RETURN_CODE */

static const char *s_python, *s_node, *s_scripts;
/* 0 when onnxruntime-node could not be installed (registry unreachable):
   the exports are still checked with onnx.checker, and the test reports
   itself skipped with the reason. */
static int s_runtime = 1;

static int
s_setup (void **state)
{
    (void) state;
    return ty_pfix_dir_new ("ty_onnx");
}

static bool
s_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}

static void
must_export (ty_torch_model_t *m, const char *const *labels, size_t nlabels, const char *path)
{
    char err[ERRLEN] = "x";
    int rc = ty_onnx_write (m, labels, nlabels, NULL, path, err, sizeof err);
    if (rc != TY_OK)
        fail_msg ("ty_onnx_write %s: %s", path, err);
    assert_string_equal (err, "");
    char tmp[600];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    assert_false (s_exists (tmp));
}

/* ==== the tools ============================================================= */

static void
must_run (const char *cmd)
{
    int rc = system (cmd);
    if (rc != 0)
        fail_msg ("failed (status %d): %s", rc, cmd);
}

/* onnx.checker and the promised names; labels_json may be NULL. */
static void
s_check_file (const char *path, const char *kind, const char *labels_json)
{
    char cmd[CMD_LEN];
    snprintf (cmd, sizeof cmd, "'%s' '%s/check_model.py' '%s' %s %s%s%s", s_python, s_scripts,
              path, kind, labels_json ? "'" : "", labels_json ? labels_json : "",
              labels_json ? "'" : "");
    must_run (cmd);
}

/* A case file for run_model.js, written as the test goes. */
typedef struct {
    FILE *f;
    char path[600];
    int nin, nout;
    bool in_outputs;
} s_case_t;

static void
s_case_begin (s_case_t *c, const char *model)
{
    memset (c, 0, sizeof *c);
    snprintf (c->path, sizeof c->path, "%s.case.json", model);
    c->f = fopen (c->path, "w");
    assert_non_null (c->f);
    fprintf (c->f, "{\"model\": \"%s\", \"tol\": %g, \"inputs\": [", model, TOL);
}

static void
s_case_head (s_case_t *c, bool output, const char *name, const char *type, int ndim,
             const int64_t *dims)
{
    if (output && !c->in_outputs) {
        fprintf (c->f, "], \"outputs\": [");
        c->in_outputs = true;
    }
    int *count = output ? &c->nout : &c->nin;
    fprintf (c->f, "%s{\"name\": \"%s\", \"type\": \"%s\", \"dims\": [", (*count)++ ? ", " : "",
             name, type);
    for (int i = 0; i < ndim; i++)
        fprintf (c->f, "%s%lld", i ? ", " : "", (long long) dims[i]);
    fprintf (c->f, "], \"data\": [");
}

static void
s_case_floats (s_case_t *c, bool output, const char *name, int ndim, const int64_t *dims,
               const float *v)
{
    s_case_head (c, output, name, "float32", ndim, dims);
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t) dims[i];
    for (size_t i = 0; i < n; i++)
        fprintf (c->f, "%s%.9g", i ? ", " : "", v[i]);
    fprintf (c->f, "]}");
}

static void
s_case_int64s (s_case_t *c, const char *name, int ndim, const int64_t *dims, const int64_t *v)
{
    s_case_head (c, false, name, "int64", ndim, dims);
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t) dims[i];
    for (size_t i = 0; i < n; i++)
        fprintf (c->f, "%s%lld", i ? ", " : "", (long long) v[i]);
    fprintf (c->f, "]}");
}

/* Runs the ONNX file on the case's inputs; every output within TOL. */
static void
s_case_run (s_case_t *c)
{
    fprintf (c->f, "]}\n");
    assert_int_equal (fclose (c->f), 0);
    c->f = NULL;
    if (!s_runtime)
        return;
    char cmd[CMD_LEN];
    snprintf (cmd, sizeof cmd, "'%s' '%s/run_model.js' '%s'", s_node, s_scripts, c->path);
    must_run (cmd);
}

/* ==== textclf ================================================================ */

enum { TXT_ROWS = 50, TXT_N = 6, TXT_L = 7 };

/* Bags of random ids, lengths 0..TXT_L (one empty: zeros, as EmbeddingBag). */
static void
s_bags (int64_t *ids, int64_t *nids, int64_t *offs, int64_t *padded, int64_t pad)
{
    static const int len[TXT_N] = {3, 7, 1, 0, 5, 2};
    uint64_t rng = 17;
    *nids = 0;
    for (int i = 0; i < TXT_N; i++) {
        offs[i] = *nids;
        for (int k = 0; k < TXT_L; k++) {
            int64_t id = (int64_t) ty_negsample_below (&rng, TXT_ROWS);
            padded[i * TXT_L + k] = k < len[i] ? id : pad;
            if (k < len[i])
                ids[(*nids)++] = id;
        }
    }
}

static void
s_textclf_case (bool multilabel)
{
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    p.textclf.nrows = TXT_ROWS;
    p.textclf.dim = 8;
    p.textclf.nlabels = 4;
    p.textclf.multilabel = multilabel;
    p.lr = 0.5;
    ty_torch_model_t *m = ty_pfix_new (&p);
    int64_t ids[TXT_N * TXT_L], offs[TXT_N], padded[TXT_N * TXT_L], nids;
    s_bags (ids, &nids, offs, padded, TXT_ROWS);
    int64_t labels[TXT_N];
    float targets[TXT_N * 4] = {0};
    for (int i = 0; i < TXT_N; i++) {
        labels[i] = i % 4;
        targets[i * 4 + i % 4] = 1;
        targets[i * 4 + (i + 1) % 4] = 1;
    }
    ty_torch_batch_t b = {0};
    b.n = TXT_N;
    b.ids = ids;
    b.nids = nids;
    b.offsets = offs;
    b.labels = multilabel ? NULL : labels;
    b.targets = multilabel ? targets : NULL;
    for (int s = 0; s < 5; s++)
        assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_OK);
    float want[TXT_N * 4];
    assert_int_equal (ty_torch_predict (m, &b, want, TXT_N * 4), TY_OK);

    char path[512];
    ty_pfix_path (path, sizeof path, multilabel ? "textclf_multi.onnx" : "textclf.onnx");
    static const char *const names[4] = {"spam", "ham", "eggs", "naïve \"quoted\""};
    must_export (m, names, 4, path);
    s_check_file (path, "textclf",
                  "[\"spam\", \"ham\", \"eggs\", \"naïve \\\"quoted\\\"\"]");
    s_case_t c;
    s_case_begin (&c, path);
    int64_t in_dims[2] = {TXT_N, TXT_L}, out_dims[2] = {TXT_N, 4};
    s_case_int64s (&c, TY_ONNX_IN_IDS, 2, in_dims, padded);
    s_case_floats (&c, true, TY_ONNX_OUT_PROBS, 2, out_dims, want);
    s_case_run (&c);
    ty_torch_destroy (&m);
}

static void
test_onnx_textclf_matches_libtorch (void **state)
{
    (void) state;
    s_textclf_case (false);
}

static void
test_onnx_textclf_multilabel_matches_libtorch (void **state)
{
    (void) state;
    s_textclf_case (true);
}

/* ==== mlp, cnn ============================================================== */

/* n random samples of `in` floats through libtorch and the ONNX file. */
static void
s_dense_case (ty_torch_model_t *m, const char *path, const char *in_name, int ndim,
              const int64_t *in_dims, const char *out_name, float lo, float hi)
{
    size_t in = 1;
    for (int i = 0; i < ndim; i++)
        in *= (size_t) in_dims[i];
    int64_t n = in_dims[0];
    size_t w = (size_t) ty_torch_output_width (m);
    float *x = malloc (in * sizeof *x), *want = malloc ((size_t) n * w * sizeof *want);
    assert_true (x && want);
    uint64_t rng = 11;
    for (size_t i = 0; i < in; i++)
        x[i] = lo + (hi - lo) * ty_pfix_unif (&rng);
    ty_torch_batch_t b = {0};
    b.n = n;
    b.x = x;
    assert_int_equal (ty_torch_predict (m, &b, want, (size_t) n * w), TY_OK);
    s_case_t c;
    s_case_begin (&c, path);
    s_case_floats (&c, false, in_name, ndim, in_dims, x);
    int64_t out_dims[2] = {n, (int64_t) w};
    s_case_floats (&c, true, out_name, 2, out_dims, want);
    s_case_run (&c);
    free (x);
    free (want);
}

static void
test_onnx_mlp_matches_libtorch (void **state)
{
    (void) state;
    for (int regression = 0; regression <= 1; regression++) {
        /* 12 inputs; dropout, off in eval mode, is absent from the graph. */
        ty_torch_model_t *m = ty_pfix_mlp (regression);
        char path[512];
        ty_pfix_path (path, sizeof path, regression ? "mlp_reg.onnx" : "mlp.onnx");
        static const char *const names[4] = {"a", "b", "c", "d"};
        must_export (m, regression ? NULL : names, regression ? 0 : 4, path);
        s_check_file (path, "mlp", regression ? NULL : "[\"a\", \"b\", \"c\", \"d\"]");
        int64_t dims[2] = {9, 12};
        /* Regression values are not squashed: a wider input range tests them. */
        s_dense_case (m, path, TY_ONNX_IN_X, 2, dims,
                      regression ? TY_ONNX_OUT_VALUES : TY_ONNX_OUT_PROBS, -2, 2);
        ty_torch_destroy (&m);
    }
}

static void
test_onnx_cnn_matches_libtorch (void **state)
{
    (void) state;
    for (int separable = 0; separable <= 1; separable++) {
        /* 11 x 9: depth 4 reaches 1 x 1, where the shim stops pooling. */
        ty_torch_model_t *m = ty_pfix_cnn (separable, 4, 0.2);
        char path[512];
        ty_pfix_path (path, sizeof path, separable ? "cnn_sep.onnx" : "cnn.onnx");
        must_export (m, NULL, 0, path);
        s_check_file (path, "cnn", NULL);
        int64_t dims[4] = {5, 3, 11, 9};
        s_dense_case (m, path, TY_ONNX_IN_IMAGE, 4, dims, TY_ONNX_OUT_PROBS, 0, 1);
        ty_torch_destroy (&m);
    }
}

/* ==== ncf ==================================================================== */

static void
test_onnx_ncf_matches_libtorch (void **state)
{
    (void) state;
    enum { N = 32 };
    static const ty_pfix_ncf_t shape = {30, 40, 6, 5, {8, 4}, N, 3};
    ty_pfix_pairs_t pr;
    ty_torch_model_t *m = ty_pfix_ncf (&shape, &pr);
    int64_t *u = pr.users, *it = pr.items;
    /* Every corner of both id ranges plus the training pairs. */
    u[0] = 0, it[0] = 0, u[1] = 29, it[1] = 39;
    float want[N];
    assert_int_equal (ty_torch_predict (m, &pr.b, want, N), TY_OK);
    char path[512];
    ty_pfix_path (path, sizeof path, "ncf.onnx");
    must_export (m, NULL, 0, path);
    s_check_file (path, "ncf", NULL);
    s_case_t c;
    s_case_begin (&c, path);
    int64_t in_dims[1] = {N}, out_dims[2] = {N, 1};
    s_case_int64s (&c, TY_ONNX_IN_USER, 1, in_dims, u);
    s_case_int64s (&c, TY_ONNX_IN_ITEM, 1, in_dims, it);
    s_case_floats (&c, true, TY_ONNX_OUT_SCORE, 2, out_dims, want);
    s_case_run (&c);
    ty_torch_destroy (&m);
}

/* ==== a model version directory =========================================== */

static void
test_onnx_export_dir (void **state)
{
    (void) state;
    char out[600], err[ERRLEN];
    /* 40 texts of 4 words, 30 train; no char n-grams, 500 buckets. */
    static const ty_pfix_version_opts_t vo = {40, 30, 4, false, 0, 0, 500};
    ty_pfix_version_t ver;
    ty_pfix_version (&vo, &ver);
    ty_torch_model_t *m = ver.m;
    ty_batch_feat_t *feat = ver.feat;
    ty_batch_set_t *val = ver.val;
    snprintf (out, sizeof out, "%s/%s", ver.dir, TY_ONNX_FILE);
    if (ty_onnx_export_dir (ver.dir, out, err, sizeof err) != TY_OK)
        fail_msg ("export: %s", err);

    /* The label names are feat.json's, in output order. */
    char labels[256] = "[";
    for (int64_t i = 0; i < 3; i++)
        snprintf (labels + strlen (labels), sizeof labels - strlen (labels), "%s\"%s\"",
                  i ? ", " : "", ty_batch_feat_label (feat, i));
    strcat (labels, "]");
    s_check_file (out, "textclf", labels);

    /* The val split: the featurizer's ids, padded, in one batch. */
    size_t nval = ty_batch_set_count (val);
    assert_true (nval == 10);
    uint64_t idx[10];
    for (uint64_t i = 0; i < nval; i++)
        idx[i] = i;
    ty_torch_batch_t b;
    assert_int_equal (ty_batch_set_gather (val, idx, nval, NULL, &b), TY_OK);
    float want[10 * 3];
    assert_int_equal (ty_torch_predict (m, &b, want, 30), TY_OK);
    int64_t lmax = 0;
    for (int64_t i = 0; i < b.n; i++) {
        int64_t end = i + 1 < b.n ? b.offsets[i + 1] : b.nids;
        if (end - b.offsets[i] > lmax)
            lmax = end - b.offsets[i];
    }
    int64_t pad = ty_torch_params (m)->textclf.nrows;
    int64_t *padded = malloc ((size_t) (b.n * lmax) * sizeof *padded);
    assert_non_null (padded);
    for (int64_t i = 0; i < b.n; i++) {
        int64_t end = i + 1 < b.n ? b.offsets[i + 1] : b.nids;
        for (int64_t k = 0; k < lmax; k++)
            padded[i * lmax + k] = b.offsets[i] + k < end ? b.ids[b.offsets[i] + k] : pad;
    }
    s_case_t c;
    s_case_begin (&c, out);
    int64_t in_dims[2] = {b.n, lmax}, out_dims[2] = {b.n, 3};
    s_case_int64s (&c, TY_ONNX_IN_IDS, 2, in_dims, padded);
    s_case_floats (&c, true, TY_ONNX_OUT_PROBS, 2, out_dims, want);
    s_case_run (&c);
    free (padded);
    ty_pfix_version_free (&ver);
}

/* ==== bad input (needs no tool) ============================================ */

/* An export that must fail: a message naming `want`, nothing written. */
static void
s_refused (const char *dir, const char *out, const char *want)
{
    char err[ERRLEN] = "";
    assert_int_not_equal (ty_onnx_export_dir (dir, out, err, sizeof err), TY_OK);
    if (!strstr (err, want))
        fail_msg ("error \"%s\" does not name %s", err, want);
    char tmp[700];
    snprintf (tmp, sizeof tmp, "%s.tmp", out);
    assert_false (s_exists (out));
    assert_false (s_exists (tmp));
}

static void
test_onnx_bad_dir_refused (void **state)
{
    (void) state;
    char dir[512], out[600], path[600];
    snprintf (dir, sizeof dir, "%s/bad", ty_pfix_dir ());
    assert_int_equal (mkdir (dir, 0755), 0);
    snprintf (out, sizeof out, "%s/%s", dir, TY_ONNX_FILE);

    /* No model.pt at all. */
    s_refused (dir, out, TY_MODELDIR_WEIGHTS);

    /* A model.pt of garbage, then a truncated real one. */
    snprintf (path, sizeof path, "%s/%s", dir, TY_MODELDIR_WEIGHTS);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs ("this is not a checkpoint at all, just some bytes\n", f);
    assert_int_equal (fclose (f), 0);
    s_refused (dir, out, TY_MODELDIR_WEIGHTS);

    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_MLP);
    p.mlp.input_dim = 4;
    p.mlp.noutputs = 2;
    ty_torch_model_t *m = ty_pfix_new (&p);
    assert_int_equal (ty_torch_save (m, path), TY_OK);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (truncate (path, st.st_size / 2), 0);
    s_refused (dir, out, TY_MODELDIR_WEIGHTS);

    /* A good model.pt but no feat.json. */
    assert_int_equal (ty_torch_save (m, path), TY_OK);
    s_refused (dir, out, "feat.json");

    /* A live model to a directory that does not exist: errno, no file. */
    char err[ERRLEN] = "";
    snprintf (out, sizeof out, "%s/no/such/dir/model.onnx", ty_pfix_dir ());
    assert_int_equal (ty_onnx_write (m, NULL, 0, NULL, out, err, sizeof err), ENOENT);
    assert_true (err[0] != '\0');
    assert_false (s_exists (out));
    /* Labels that do not match the outputs. */
    static const char *const one[1] = {"lonely"};
    snprintf (out, sizeof out, "%s/labels.onnx", ty_pfix_dir ());
    assert_int_equal (ty_onnx_write (m, one, 1, NULL, out, err, sizeof err), TY_EINVAL);
    assert_false (s_exists (out));
    assert_int_equal (ty_onnx_write (NULL, NULL, 0, NULL, out, err, sizeof err), TY_EINVAL);
    assert_int_equal (ty_onnx_export_dir (NULL, out, err, sizeof err), TY_EINVAL);
    ty_torch_destroy (&m);
}

/* ==== main =================================================================== */

/* NULL when the tools are there, else what is missing. */
static const char *
s_tools_missing (void)
{
    char cmd[CMD_LEN];
    snprintf (cmd, sizeof cmd, "'%s' -c 'import onnx' >/dev/null 2>&1", s_python);
    if (system (cmd) != 0)
        return "python3-onnx (import onnx failed)";
    if (access (s_node, X_OK) != 0)
        return "node";
    return NULL;
}

int
main (void)
{
    s_python = getenv ("TY_ONNX_PYTHON") ? getenv ("TY_ONNX_PYTHON") : "/usr/bin/python3";
    s_node = getenv ("TY_ONNX_NODE") ? getenv ("TY_ONNX_NODE") : "/usr/bin/node";
    s_scripts = getenv ("TY_ONNX_SCRIPTS") ? getenv ("TY_ONNX_SCRIPTS") : "tests/onnx";
    const struct CMUnitTest plain[] = {
        cmocka_unit_test_setup_teardown (test_onnx_bad_dir_refused, s_setup, ty_pfix_teardown),
    };
    int failed = cmocka_run_group_tests_name ("onnx_plain", plain, NULL, NULL);
    const char *missing = s_tools_missing ();
    if (missing) {
        fprintf (stderr, "SKIPPED: the ONNX file checks need %s; install deploy/deps/onnx.txt\n",
                 missing);
        return failed ? 1 : SKIP_STATUS;
    }
    char cmd[CMD_LEN];
    snprintf (cmd, sizeof cmd, "'%s' -e \"require('onnxruntime-node')\"", s_node);
    const char *unavailable = getenv ("TY_ONNX_UNAVAILABLE");
    char why[CMD_LEN] = "";
    FILE *uf = unavailable ? fopen (unavailable, "r") : NULL;
    if (uf) {
        if (!fgets (why, sizeof why, uf))
            snprintf (why, sizeof why, "npm install failed");
        fclose (uf);
        s_runtime = 0;
        fprintf (stderr, "onnxruntime-node could not be installed (%.*s): the exports are "
                 "checked with onnx.checker only; the comparison with libtorch is SKIPPED\n",
                 (int) strcspn (why, "\n"), why);
    }
    else if (system (cmd) != 0) {
        fprintf (stderr, "onnxruntime-node is not installed (NODE_PATH=%s): the onnx_node "
                 "fixture should have installed it\n", getenv ("NODE_PATH") ? getenv ("NODE_PATH") : "");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_onnx_textclf_matches_libtorch),
        cmocka_unit_test (test_onnx_textclf_multilabel_matches_libtorch),
        cmocka_unit_test (test_onnx_mlp_matches_libtorch),
        cmocka_unit_test (test_onnx_cnn_matches_libtorch),
        cmocka_unit_test (test_onnx_ncf_matches_libtorch),
        cmocka_unit_test (test_onnx_export_dir),
    };
    failed += cmocka_run_group_tests_name ("onnx", tests, s_setup, ty_pfix_teardown);
    if (failed)
        return 1;
    return s_runtime ? 0 : SKIP_STATUS;
}

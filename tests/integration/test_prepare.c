/*  test_prepare: the prepare worker and `trainyard dataset`, against a real
 *  redis-server, a real broker, real trainyard-prepare workers and real
 *  LMDB files in the test's temp dir.
 *
 *  - import a small CSV with the CLI: SUCCEEDED, version 1, counts per
 *    split and class right, the rejected rows reported, `dataset show`,
 *    `dataset list` and `dataset export` agree with the store;
 *  - bad input: the failure names the rule and the class; a missing file
 *    says so; no version appears;
 *  - kill -9 of the worker while it writes a big import: no version while
 *    it is dead, the retried attempt writes the complete one, a reader
 *    polling all along never opens a partial version, the dead writer's
 *    temp dir is gone;
 *  - cancel during an import: CANCELLED at once, no version;
 *  - append with the CLI: version 2, parent 1, new-since count, all samples.
 *
 *  The harness starts trainyard-noop only, so the prepare workers and the
 *  CLI are started here (same conventions: stdout/stderr to TMP/<name>.stderr,
 *  scanned for sanitizer reports at teardown).
 */
#include "ty_it.h"

#include "ty_dataset.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_HEARTBEAT_MS  TY_TESTENV_HEARTBEAT_MS
#define S_MAX_PROCS     8
#define S_CLI_MS        60000     /* a CLI run (import waits for its job) */
#define S_JOB_MS        60000     /* a job under ASan on 2 busy cores */
#define S_TERM_MS       5000      /* SIGTERM -> exit before SIGKILL */
/* Rows of the kill test: enough that writing takes a good part of a second
 * in a release build, so the kill lands while the temp dir is being filled. */
#define S_BIG_ROWS      200000
#define S_BIG_CLASSES   5
#define S_PAUSE_MS      30000     /* the cancel test's worker pauses this long */

typedef struct {
    pid_t pid;
    char  name [32];
    int   running;
} s_proc_t;

typedef struct {
    ty_it_t  it;                  /* env + client, as the other tests */
    s_proc_t procs [S_MAX_PROCS];
    int      nprocs;
    char     data [PATH_MAX];     /* the workers' --data */
} s_test_t;

/* ---- processes ---------------------------------------------------------------- */

static const char *
s_bin_dir (void)
{
    const char *env = getenv ("TY_BIN_DIR");
    return env && *env ? env : TY_BIN_DIR;
}

/* fork + exec with stdout to out_path and stderr to err_path (appended). */
static pid_t
s_spawn (char *const argv [], const char *out_path, const char *err_path)
{
    int out = open (out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int err = open (err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0 || err < 0) {
        if (out >= 0)
            close (out);
        if (err >= 0)
            close (err);
        return -1;
    }
    pid_t parent = getpid ();
    fflush (NULL);
    pid_t pid = fork ();
    if (pid == 0) {
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid () != parent)
            _exit (127);
        int nul = open ("/dev/null", O_RDONLY);
        if (nul < 0 || dup2 (nul, 0) < 0 || dup2 (out, 1) < 0 || dup2 (err, 2) < 0)
            _exit (127);
        execv (argv [0], argv);
        static const char msg [] = "test_prepare: exec failed\n";
        ssize_t w = write (2, msg, sizeof msg - 1);
        (void) w;
        _exit (127);
    }
    close (out);
    close (err);
    return pid;
}

/* Starts trainyard-prepare --id <id> with --data TMP/data; extra: more flags. */
static pid_t
s_must_start_prepare (s_test_t *t, const char *id, const char *const *extra)
{
    ty_testenv_t *env = t->it.env;
    if (t->nprocs == S_MAX_PROCS)
        fail_msg ("too many processes");
    char exe [PATH_MAX], hb [16], log [PATH_MAX], err [PATH_MAX];
    snprintf (exe, sizeof exe, "%s/trainyard-prepare", s_bin_dir ());
    snprintf (hb, sizeof hb, "%d", S_HEARTBEAT_MS);
    snprintf (log, sizeof log, "%s/%s.log", ty_testenv_dir (env), id);
    snprintf (err, sizeof err, "%s/%s.stderr", ty_testenv_dir (env), id);
    const char *argv [24] = { exe, "--broker", ty_testenv_worker_ep (env), "--heartbeat-ms", hb,
                              "--id", id, "--log-file", log, "--data", t->data };
    int n = 11;
    for (int i = 0; extra && extra [i] && n < 23; i++)
        argv [n++] = extra [i];
    argv [n] = NULL;
    pid_t pid = s_spawn ((char *const *) argv, err, err);
    if (pid < 0)
        fail_msg ("spawn trainyard-prepare: %s", strerror (errno));
    s_proc_t *p = &t->procs [t->nprocs++];
    p->pid = pid;
    p->running = 1;
    snprintf (p->name, sizeof p->name, "%s", id);
    if (ty_testenv_wait_worker (env, id, TY_TESTENV_STARTUP_MS) != 0) {
        char file [64];
        snprintf (file, sizeof file, "%s.stderr", id);
        ty_testenv_print_tail (env, file, 20);
        fail_msg ("prepare worker %s never registered", id);
    }
    return pid;
}

static void
s_kill9 (s_test_t *t, pid_t pid)
{
    for (int i = 0; i < t->nprocs; i++)
        if (t->procs [i].pid == pid && t->procs [i].running) {
            assert_int_equal (kill (pid, SIGKILL), 0);
            waitpid (pid, NULL, 0);
            t->procs [i].running = 0;
        }
}

/* Runs `trainyard --broker EP ARGS...` to the end; its stdout goes to
 * TMP/<out>, stderr to TMP/<out>.err. Returns the exit code. */
static int
s_cli (s_test_t *t, const char *out, const char *const *args)
{
    ty_testenv_t *env = t->it.env;
    char exe [PATH_MAX], out_path [PATH_MAX], err_path [PATH_MAX + 8];
    snprintf (exe, sizeof exe, "%s/trainyard", s_bin_dir ());
    snprintf (out_path, sizeof out_path, "%s/%s", ty_testenv_dir (env), out);
    snprintf (err_path, sizeof err_path, "%s.err", out_path);
    unlink (out_path);
    const char *argv [40] = { exe, "--broker", ty_testenv_client_ep (env) };
    int n = 3;
    for (int i = 0; args [i] && n < 39; i++)
        argv [n++] = args [i];
    argv [n] = NULL;
    pid_t pid = s_spawn ((char *const *) argv, out_path, err_path);
    if (pid < 0)
        fail_msg ("spawn trainyard: %s", strerror (errno));
    int64_t deadline = ty_testenv_now_ms () + S_CLI_MS;
    int status = 0;
    for (;;) {
        pid_t w = waitpid (pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (ty_testenv_now_ms () > deadline) {
            kill (pid, SIGKILL);
            waitpid (pid, NULL, 0);
            fail_msg ("trainyard %s did not end in %d ms", args [0], S_CLI_MS);
        }
        ty_testenv_sleep_ms (10);
    }
    if (!WIFEXITED (status))
        fail_msg ("trainyard %s died of signal %d", args [0], WTERMSIG (status));
    return WEXITSTATUS (status);
}

/* A whole file as a string (caller frees), or NULL. */
static char *
s_slurp (const char *path)
{
    FILE *f = fopen (path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc (cap);
    size_t n;
    while (buf && (n = fread (buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc (buf, cap * 2);
            if (!grown) {
                free (buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose (f);
    if (buf)
        buf [len] = '\0';
    return buf;
}

static char *
s_must_slurp_tmp (s_test_t *t, const char *file)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", ty_testenv_dir (t->it.env), file);
    char *text = s_slurp (path);
    if (!text)
        fail_msg ("cannot read %s", path);
    return text;
}

/* The last line of a CLI's --json output, parsed. */
static cJSON *
s_must_last_json (s_test_t *t, const char *file)
{
    char *text = s_must_slurp_tmp (t, file);
    size_t len = strlen (text);
    while (len && text [len - 1] == '\n')
        text [--len] = '\0';
    char *last = strrchr (text, '\n');
    cJSON *j = cJSON_Parse (last ? last + 1 : text);
    if (!j) {
        fprintf (stderr, "output of %s:\n%s\n", file, text);
        free (text);
        fail_msg ("%s: the last line is not JSON", file);
    }
    free (text);
    return j;
}

static double
s_num (const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive (o, key);
    if (!cJSON_IsNumber (x))
        fail_msg ("JSON field %s missing or not a number", key);
    return x->valuedouble;
}

static const char *
s_str (const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive (o, key);
    if (!cJSON_IsString (x))
        fail_msg ("JSON field %s missing or not a string", key);
    return x->valuestring;
}

/* ---- setup ----------------------------------------------------------------------- */

static int
s_setup (void **state)
{
    s_test_t *t = calloc (1, sizeof *t);
    if (!t)
        return -1;
    *state = t;
    t->it.env = ty_testenv_must_new ("prepare");
    snprintf (t->data, sizeof t->data, "%s/data", ty_testenv_dir (t->it.env));
    return 0;
}

static int
s_has_sanitizer_report (const char *path)
{
    static const char *markers [] = { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                      "runtime error:", NULL };
    char *text = s_slurp (path);
    int found = 0;
    for (int i = 0; text && markers [i] && !found; i++)
        found = strstr (text, markers [i]) != NULL;
    if (found)
        fprintf (stderr, "SANITIZER REPORT in %s:\n%s\n", path, text);
    free (text);
    return found;
}

static int
s_teardown (void **state)
{
    s_test_t *t = *state;
    if (!t)
        return 0;
    for (int i = 0; i < t->nprocs; i++)
        if (t->procs [i].running)
            kill (t->procs [i].pid, SIGTERM);
    int rc = 0;
    for (int i = 0; i < t->nprocs; i++) {
        s_proc_t *p = &t->procs [i];
        int64_t deadline = ty_testenv_now_ms () + S_TERM_MS;
        while (p->running) {
            if (waitpid (p->pid, NULL, WNOHANG) == p->pid)
                p->running = 0;
            else if (ty_testenv_now_ms () > deadline) {
                fprintf (stderr, "test_prepare: %s ignored SIGTERM: SIGKILL\n", p->name);
                kill (p->pid, SIGKILL);
                waitpid (p->pid, NULL, 0);
                p->running = 0;
            }
            else
                ty_testenv_sleep_ms (10);
        }
        char path [PATH_MAX];
        snprintf (path, sizeof path, "%s/%s.stderr", ty_testenv_dir (t->it.env), p->name);
        if (s_has_sanitizer_report (path))
            rc = -1;
    }
    /* the CLI runs: TMP/<name>.err */
    DIR *d = opendir (ty_testenv_dir (t->it.env));
    struct dirent *e;
    while (d && (e = readdir (d))) {
        size_t len = strlen (e->d_name);
        if (len > 4 && !strcmp (e->d_name + len - 4, ".err")) {
            char path [PATH_MAX];
            snprintf (path, sizeof path, "%s/%s", ty_testenv_dir (t->it.env), e->d_name);
            if (s_has_sanitizer_report (path))
                rc = -1;
        }
    }
    if (d)
        closedir (d);
    ty_client_destroy (&t->it.client);
    if (ty_testenv_finish (&t->it.env) != 0)
        rc = -1;
    free (t);
    *state = NULL;
    return rc;
}

static void
s_must_cluster (s_test_t *t)
{
    ty_testenv_must_start_redis (t->it.env, NULL);
    ty_testenv_must_start_broker (t->it.env, S_HEARTBEAT_MS, NULL);
}

/* ---- data ------------------------------------------------------------------------- */

/* A CSV with a header: per_class rows for each of nclass classes C0.., then
 * the extra text (may be NULL) appended verbatim. */
static void
s_must_write_csv (const char *path, int nclass, int per_class, const char *extra)
{
    FILE *f = fopen (path, "w");
    if (!f)
        fail_msg ("cannot write %s", path);
    fprintf (f, "text,label\n");
    for (int i = 0; i < per_class; i++)
        for (int c = 0; c < nclass; c++)
            fprintf (f, "\"sample %d, of class %d\",C%d\n", i, c, c);
    if (extra)
        fputs (extra, f);
    if (fclose (f) != 0)
        fail_msg ("cannot write %s", path);
}

static uint64_t
s_total (ty_dataset_t *ds)
{
    uint64_t n = 0;
    for (int s = 0; s < TY_SPLIT_COUNT; s++)
        n += ty_dataset_count (ds, (ty_split_t) s);
    return n;
}

/* Versions of a dataset: 0 when it does not exist. */
static size_t
s_nversions (const char *data, const char *name)
{
    uint64_t *v = NULL;
    size_t n = 0;
    int rc = ty_dataset_versions (data, name, &v, &n);
    free (v);
    if (rc == TY_ENOTFOUND)
        return 0;
    if (rc != TY_OK)
        fail_msg ("ty_dataset_versions: %s", ty_strerror (rc));
    return n;
}

typedef struct {
    Ty__JobSpec     spec;
    Ty__PrepareSpec prep;
} s_prep_t;

static void
s_prep (s_prep_t *p, const char *name, const char *source)
{
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__PrepareSpec prep = TY__PREPARE_SPEC__INIT;
    p->spec = spec;
    p->prep = prep;
    p->prep.dataset = (char *) name;
    p->prep.source = (char *) source;
    p->spec.kind_case = TY__JOB_SPEC__KIND_PREPARE;
    p->spec.prepare = &p->prep;
}

/* ---- tests -------------------------------------------------------------------------- */

static void
test_prepare_import_csv_and_show (void **state)
{
    s_test_t *t = *state;
    ty_testenv_t *env = t->it.env;
    s_must_cluster (t);
    s_must_start_prepare (t, "p1", NULL);

    /* 3 classes x 30 rows, plus two bad rows (too many columns) */
    char csv [PATH_MAX];
    ty_testenv_path (env, "news.csv", csv, sizeof csv);
    s_must_write_csv (csv, 3, 30, "a,b,C0\n\"x\",C1,extra\n");
    const char *import [] = { "dataset", "import", csv, "--name", "news", "--json", NULL };
    int rc = s_cli (t, "import.out", import);
    if (rc != 0) {
        ty_testenv_print_tail (env, "import.out.err", 20);
        ty_testenv_print_tail (env, "p1.log", 20);
    }
    assert_int_equal (rc, 0);

    cJSON *res = s_must_last_json (t, "import.out");
    assert_string_equal (s_str (res, "state"), "SUCCEEDED");
    assert_string_equal (s_str (res, "dataset"), "news@1");
    assert_string_equal (s_str (res, "version"), "1");
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive (res, "counts");
    assert_int_equal ((int) (s_num (counts, "train") + s_num (counts, "val")
                             + s_num (counts, "test")), 90);
    const cJSON *report = cJSON_GetObjectItemCaseSensitive (res, "report");
    assert_int_equal ((int) s_num (report, "rejected"), 2);
    assert_int_equal ((int) s_num (report, "accepted"), 90);
    const cJSON *rejects = cJSON_GetObjectItemCaseSensitive (report, "rejects");
    assert_int_equal (cJSON_GetArraySize (rejects), 1);
    assert_string_equal (s_str (cJSON_GetArrayItem (rejects, 0), "reason"), "column_count");
    /* the job's record in Redis carries the same */
    char *job_id = strdup (s_str (res, "job_id"));
    cJSON_Delete (res);
    ty_it_assert_field (env, job_id, "state", "SUCCEEDED");
    ty_it_assert_field (env, job_id, "out.dataset", "news@1");
    char *summary = ty_testenv_job_field (env, job_id, "result");
    assert_non_null (summary);
    assert_non_null (strstr (summary, "news@1: 90 samples"));
    assert_null (strchr (summary, '\n'));
    free (summary);
    free (job_id);

    /* the store: one version, stratified 70/15/15 within one sample per class */
    ty_dataset_t *ds = NULL;
    assert_int_equal (ty_dataset_open (t->data, "news", &ds), TY_OK);
    assert_int_equal (ty_dataset_version (ds), 1);
    assert_int_equal (s_total (ds), 90);
    assert_int_equal (ty_dataset_label_count (ds), 3);
    const Ty__DatasetMeta *m = ty_dataset_meta (ds);
    assert_int_equal (m->n_classes, 3);
    for (size_t i = 0; i < m->n_classes; i++) {
        assert_int_equal (m->classes [i]->train + m->classes [i]->val + m->classes [i]->test, 30);
        assert_in_range (m->classes [i]->train, 20, 22);
    }
    char hash [65];
    snprintf (hash, sizeof hash, "%s", m->content_hash);
    uint64_t n_test = ty_dataset_count (ds, TY_SPLIT_TEST);
    assert_true (n_test > 0);
    ty_dataset_destroy (&ds);

    /* show --json agrees with the store */
    const char *show [] = { "dataset", "show", "news", "--data", t->data, "--json", NULL };
    assert_int_equal (s_cli (t, "show.out", show), 0);
    cJSON *sj = s_must_last_json (t, "show.out");
    assert_string_equal (s_str (sj, "name"), "news");
    assert_int_equal ((int) s_num (sj, "version"), 1);
    assert_string_equal (s_str (sj, "content_hash"), hash);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive (sj, "counts");
    assert_int_equal ((int) (s_num (sc, "train") + s_num (sc, "val") + s_num (sc, "test")), 90);
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (sj, "classes")), 3);
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (sj, "warnings")), 0);
    cJSON_Delete (sj);
    /* the human form names each class */
    const char *show_txt [] = { "dataset", "show", "news@1", "--data", t->data, NULL };
    assert_int_equal (s_cli (t, "show.txt", show_txt), 0);
    char *txt = s_must_slurp_tmp (t, "show.txt");
    assert_non_null (strstr (txt, "news@1"));
    assert_non_null (strstr (txt, "C2"));
    assert_non_null (strstr (txt, "text length"));
    free (txt);

    /* list and export */
    const char *list [] = { "dataset", "list", "--data", t->data, "--json", NULL };
    assert_int_equal (s_cli (t, "list.out", list), 0);
    cJSON *lj = s_must_last_json (t, "list.out");
    assert_string_equal (s_str (lj, "name"), "news");
    assert_int_equal ((int) s_num (lj, "samples"), 90);
    cJSON_Delete (lj);
    char out [PATH_MAX];
    ty_testenv_path (env, "export.csv", out, sizeof out);
    const char *export [] = { "dataset", "export", "news", "--data", t->data, "-o", out, NULL };
    assert_int_equal (s_cli (t, "export.out", export), 0);
    char *csv_text = s_must_slurp_tmp (t, "export.csv");
    int lines = 0;
    for (const char *p = csv_text; *p; p++)
        lines += *p == '\n';
    assert_int_equal (lines, 91);       /* header + every accepted row */
    assert_non_null (strstr (csv_text, "sample 29, of class 2"));
    free (csv_text);
    /* --split test: the header and exactly the test split's rows */
    const char *export_test [] = { "dataset", "export", "news", "--data", t->data, "-o", out,
                                   "--split", "test", NULL };
    assert_int_equal (s_cli (t, "export_test.out", export_test), 0);
    csv_text = s_must_slurp_tmp (t, "export.csv");
    lines = 0;
    for (const char *p = csv_text; *p; p++)
        lines += *p == '\n';
    assert_int_equal (lines, 1 + (int) n_test);
    free (csv_text);

    /* a missing dataset is a clear error */
    const char *missing [] = { "dataset", "show", "nope", "--data", t->data, NULL };
    assert_int_equal (s_cli (t, "missing.out", missing), 1);
    char *err = s_must_slurp_tmp (t, "missing.out.err");
    assert_non_null (strstr (err, "not found"));
    free (err);
    ty_testenv_passed (env);
}

static void
test_prepare_bad_input_names_rule_and_class (void **state)
{
    s_test_t *t = *state;
    ty_testenv_t *env = t->it.env;
    s_must_cluster (t);
    s_must_start_prepare (t, "p1", NULL);
    ty_client_t *c = ty_it_must_client (&t->it);

    /* class C_RARE has 3 samples: under the minimum of 10 */
    char csv [PATH_MAX];
    ty_testenv_path (env, "rare.csv", csv, sizeof csv);
    s_must_write_csv (csv, 2, 20, "\"r1\",C_RARE\n\"r2\",C_RARE\n\"r3\",C_RARE\n");
    s_prep_t p;
    s_prep (&p, "rare", csv);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &p.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "FAILED", S_JOB_MS), 0);
    char *error = ty_testenv_job_field (env, id, "error");
    assert_non_null (error);
    if (!strstr (error, "min_per_class") || !strstr (error, "C_RARE"))
        fail_msg ("error '%s' does not name the rule and the class", error);
    free (error);
    /* the report came back with the failure */
    char *report = ty_testenv_job_field (env, id, "out.report");
    assert_non_null (report);
    assert_non_null (strstr (report, "C_RARE"));
    free (report);
    assert_int_equal (s_nversions (t->data, "rare"), 0);

    /* the same with --min-per-class 3 through the CLI succeeds */
    const char *ok [] = { "dataset", "import", csv, "--name", "rare", "--min-per-class", "3",
                          NULL };
    assert_int_equal (s_cli (t, "ok.out", ok), 0);
    assert_int_equal (s_nversions (t->data, "rare"), 1);

    /* a missing file */
    char missing [PATH_MAX];
    ty_testenv_path (env, "no-such.csv", missing, sizeof missing);
    s_prep (&p, "missing", missing);
    ty_it_must_submit (c, &p.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "FAILED", S_JOB_MS), 0);
    error = ty_testenv_job_field (env, id, "error");
    assert_non_null (error);
    if (!strstr (error, "no-such.csv") || !strstr (error, "No such file"))
        fail_msg ("error '%s' does not say the file is missing", error);
    free (error);

    /* a relative path and a bad name are refused by the worker */
    s_prep (&p, "rel", "relative.csv");
    ty_it_must_submit (c, &p.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "FAILED", S_JOB_MS), 0);
    error = ty_testenv_job_field (env, id, "error");
    assert_non_null (strstr (error, "absolute"));
    free (error);
    s_prep (&p, "../escape", csv);
    ty_it_must_submit (c, &p.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "FAILED", S_JOB_MS), 0);
    error = ty_testenv_job_field (env, id, "error");
    assert_non_null (strstr (error, "dataset name"));
    free (error);

    /* the CLI: exit 1 and the reason on stderr */
    const char *bad [] = { "dataset", "import", csv, "--name", "rare2", NULL };
    assert_int_equal (s_cli (t, "bad.out", bad), 1);
    char *err = s_must_slurp_tmp (t, "bad.out.err");
    assert_non_null (strstr (err, "min_per_class"));
    free (err);
    /* and a usage error before any job for a bad option */
    const char *usage [] = { "dataset", "import", csv, "--name", "x", "--split", "0.5/0.1", NULL };
    assert_int_equal (s_cli (t, "usage.out", usage), 2);
    assert_int_equal (s_nversions (t->data, "rare2"), 0);
    ty_testenv_passed (env);
}

/* ---- kill -9 while writing ------------------------------------------------------------ */

typedef struct {
    const char *data;
    uint64_t    expect;
    atomic_int  stop;
    atomic_long opened;       /* opens that found a version */
    atomic_long partial;      /* opens that found a version of the wrong size */
    atomic_long errors;       /* opens that failed other than ENOTFOUND */
} s_reader_t;

static void *
s_reader_main (void *arg)
{
    s_reader_t *r = arg;
    while (!atomic_load (&r->stop)) {
        ty_dataset_t *ds = NULL;
        int rc = ty_dataset_open (r->data, "big", &ds);
        if (rc == TY_OK) {
            atomic_fetch_add (&r->opened, 1);
            if (s_total (ds) != r->expect || ty_dataset_version (ds) != 1)
                atomic_fetch_add (&r->partial, 1);
            ty_dataset_destroy (&ds);
        }
        else if (rc != TY_ENOTFOUND)
            atomic_fetch_add (&r->errors, 1);
        usleep (2000);
    }
    return NULL;
}

/* 1 if <data>/datasets/big holds a temp dir of a writer. */
static int
s_has_temp (const char *data)
{
    char dir [PATH_MAX + 32];   /* room for the suffix: no truncation warning */
    snprintf (dir, sizeof dir, "%s/datasets/big", data);
    DIR *d = opendir (dir);
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir (d)))
        found = !strncmp (e->d_name, ".tmp", 4);
    closedir (d);
    return found;
}

static void
test_prepare_kill9_while_writing (void **state)
{
    s_test_t *t = *state;
    ty_testenv_t *env = t->it.env;
    s_must_cluster (t);
    pid_t p1 = s_must_start_prepare (t, "p1", NULL);
    ty_client_t *c = ty_it_must_client (&t->it);

    char csv [PATH_MAX];
    ty_testenv_path (env, "big.csv", csv, sizeof csv);
    s_must_write_csv (csv, S_BIG_CLASSES, S_BIG_ROWS / S_BIG_CLASSES, NULL);

    s_reader_t r = { .data = t->data, .expect = S_BIG_ROWS };
    pthread_t reader;
    assert_int_equal (pthread_create (&reader, NULL, s_reader_main, &r), 0);

    s_prep_t p;
    s_prep (&p, "big", csv);
    p.spec.max_attempts = 3;
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &p.spec, NULL, 0, NULL, id, NULL);
    /* kill the moment the writer's temp dir exists: mid-write */
    int64_t deadline = ty_testenv_now_ms () + S_JOB_MS;
    while (!s_has_temp (t->data) && ty_testenv_now_ms () < deadline)
        usleep (500);
    if (!s_has_temp (t->data))
        fail_msg ("the import never started writing");
    s_kill9 (t, p1);
    assert_int_equal (s_nversions (t->data, "big"), 0);

    /* dead: the job goes back to the queue and nothing appears */
    assert_int_equal (ty_testenv_wait_state (env, id, "QUEUED", 5000), 0);
    ty_testenv_sleep_ms (300);
    assert_int_equal (s_nversions (t->data, "big"), 0);
    assert_true (s_has_temp (t->data));       /* the dead writer's leftovers, unseen */

    /* a new worker runs attempt 2 to the end */
    s_must_start_prepare (t, "p2", NULL);
    if (ty_testenv_wait_state (env, id, "SUCCEEDED", S_JOB_MS) != 0) {
        ty_testenv_print_tail (env, "p2.log", 20);
        fail_msg ("the retried import did not succeed");
    }
    assert_int_equal (ty_testenv_job_num (env, id, "attempt"), 2);
    ty_it_assert_field (env, id, "out.dataset", "big@1");
    /* progress metrics of the attempt that finished */
    assert_int_equal (ty_testenv_job_num (env, id, "metric.rows_read"), S_BIG_ROWS);
    assert_int_equal (ty_testenv_job_num (env, id, "metric.samples"), S_BIG_ROWS);
    ty_testenv_sleep_ms (50);       /* the reader sees the version at least once */
    atomic_store (&r.stop, 1);
    pthread_join (reader, NULL);

    assert_int_equal (s_nversions (t->data, "big"), 1);
    ty_dataset_t *ds = NULL;
    assert_int_equal (ty_dataset_open (t->data, "big", &ds), TY_OK);
    assert_int_equal (s_total (ds), S_BIG_ROWS);
    ty_dataset_destroy (&ds);
    assert_false (s_has_temp (t->data));      /* the next writer cleaned up */
    assert_int_equal (atomic_load (&r.partial), 0);
    assert_int_equal (atomic_load (&r.errors), 0);
    assert_true (atomic_load (&r.opened) > 0);
    ty_testenv_passed (env);
}

static void
test_prepare_cancel_leaves_no_version (void **state)
{
    s_test_t *t = *state;
    ty_testenv_t *env = t->it.env;
    s_must_cluster (t);
    char pause [16];
    snprintf (pause, sizeof pause, "%d", S_PAUSE_MS);
    const char *extra [] = { "--test-pause-ms", pause, NULL };
    s_must_start_prepare (t, "p1", extra);
    ty_client_t *c = ty_it_must_client (&t->it);

    char csv [PATH_MAX];
    ty_testenv_path (env, "c.csv", csv, sizeof csv);
    s_must_write_csv (csv, 2, 20, NULL);
    s_prep_t p;
    s_prep (&p, "cancelme", csv);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &p.spec, NULL, 0, NULL, id, NULL);
    /* validated, pausing before writing */
    int64_t deadline = ty_testenv_now_ms () + S_JOB_MS;
    char *phase = NULL;
    for (;;) {
        free (phase);
        phase = ty_testenv_job_field (env, id, "phase");
        if ((phase && !strcmp (phase, "validating")) || ty_testenv_now_ms () > deadline)
            break;
        ty_testenv_sleep_ms (10);
    }
    assert_non_null (phase);
    assert_string_equal (phase, "validating");
    free (phase);
    int64_t t0 = ty_testenv_now_ms ();
    int rc = ty_client_cancel (c, id, "test: cancel an import", TY_IT_RPC_MS);
    if (rc != TY_OK)
        fail_msg ("cancel: %s: %s", ty_strerror (rc), ty_client_errstr (c));
    assert_int_equal (ty_testenv_wait_state (env, id, "CANCELLED", 5000), 0);
    assert_true (ty_testenv_now_ms () - t0 < S_PAUSE_MS / 2);
    ty_testenv_sleep_ms (200);
    assert_int_equal (s_nversions (t->data, "cancelme"), 0);
    assert_false (s_has_temp (t->data));
    ty_testenv_passed (env);
}

static void
test_prepare_append_makes_version_2 (void **state)
{
    s_test_t *t = *state;
    ty_testenv_t *env = t->it.env;
    s_must_cluster (t);
    s_must_start_prepare (t, "p1", NULL);
    ty_client_t *c = ty_it_must_client (&t->it);

    char csv [PATH_MAX], add [PATH_MAX];
    ty_testenv_path (env, "base.csv", csv, sizeof csv);
    ty_testenv_path (env, "feedback.csv", add, sizeof add);
    s_must_write_csv (csv, 2, 20, NULL);
    FILE *f = fopen (add, "w");
    assert_non_null (f);
    fprintf (f, "text,label\n\"fb one\",C0\n\"fb two\",C1\n\"fb three\",C_NEW\n"
                "\"fb four\",C0\n\"fb five\",C1\n");
    assert_int_equal (fclose (f), 0);

    s_prep_t p;
    s_prep (&p, "fb", csv);
    char id [TY_ID_LEN + 1];
    ty_it_must_submit (c, &p.spec, NULL, 0, NULL, id, NULL);
    assert_int_equal (ty_testenv_wait_state (env, id, "SUCCEEDED", S_JOB_MS), 0);

    const char *append [] = { "dataset", "append", add, "--name", "fb", "--sample-source",
                              "feedback", "--json", NULL };
    int rc = s_cli (t, "append.out", append);
    if (rc != 0)
        ty_testenv_print_tail (env, "append.out.err", 20);
    assert_int_equal (rc, 0);
    cJSON *res = s_must_last_json (t, "append.out");
    assert_string_equal (s_str (res, "dataset"), "fb@2");
    assert_string_equal (s_str (res, "parent"), "fb@1");
    assert_string_equal (s_str (res, "added"), "5");
    cJSON_Delete (res);

    assert_int_equal (s_nversions (t->data, "fb"), 2);
    ty_dataset_t *ds = NULL;
    assert_int_equal (ty_dataset_open (t->data, "fb", &ds), TY_OK);
    assert_int_equal (ty_dataset_version (ds), 2);
    assert_int_equal (s_total (ds), 45);
    const Ty__DatasetMeta *m = ty_dataset_meta (ds);
    assert_int_equal (m->parent_version, 1);
    assert_int_equal (m->added, 5);
    uint64_t n = 0;
    assert_int_equal (ty_dataset_new_since (ds, 1, &n), TY_OK);
    assert_int_equal (n, 5);
    assert_true (ty_dataset_label_id (ds, "C_NEW") >= 0);
    /* the old labels keep their ids */
    assert_int_equal (ty_dataset_label_id (ds, "C0"), 0);
    assert_int_equal (ty_dataset_label_id (ds, "C1"), 1);
    ty_dataset_destroy (&ds);
    /* version 1 is untouched */
    assert_int_equal (ty_dataset_open (t->data, "fb@1", &ds), TY_OK);
    assert_int_equal (s_total (ds), 40);
    ty_dataset_destroy (&ds);

    /* appending to a dataset that does not exist fails clearly */
    const char *none [] = { "dataset", "append", add, "--name", "nothere", NULL };
    assert_int_equal (s_cli (t, "none.out", none), 1);
    char *err = s_must_slurp_tmp (t, "none.out.err");
    assert_non_null (strstr (err, "nothere"));
    free (err);

    /* rm one version, then the rest */
    const char *rm [] = { "dataset", "rm", "fb@2", "--data", t->data, NULL };
    assert_int_equal (s_cli (t, "rm.out", rm), 0);
    assert_int_equal (s_nversions (t->data, "fb"), 1);
    ty_testenv_passed (env);
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_prepare_import_csv_and_show, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_prepare_bad_input_names_rule_and_class, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_prepare_cancel_leaves_no_version, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_prepare_append_makes_version_2, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_prepare_kill9_while_writing, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

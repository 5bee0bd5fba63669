/*  trainyard dataset import|append|list|show|export|rm: datasets.
 *
 *  import and append submit a prepare job (run by trainyard-prepare) and
 *  follow it like `trainyard watch`, then print the result: the version,
 *  counts per split and class, rejected rows by reason, warnings. Source
 *  paths are made absolute here: the worker's working directory is not ours.
 *
 *  list, show, export and rm read the data directory directly through the
 *  dataset library (storage/ty_dataset.h), without the broker: the data
 *  directory must be the one the prepare workers write (--data, env
 *  TRAINYARD_DATA, else <state dir>/data as `trainyard up` gives its
 *  workers). On several machines that means a shared directory.
 */
#include "cmd.h"
#include "cmd_cluster.h"
#include "ty_dataset.h"
#include "ty_import.h"
#include "ty_prepare.h"
#include "ty_split.h"
#include "ty_validate.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_PRIORITY       1000     /* proto/job.proto: 0..1000 */
#define S_MAX_ATTEMPTS       1000
#define S_MAX_FOLDS          1000
#define S_HIST_BAR           30       /* characters of the longest histogram bar */
#define S_RATING_BINS        10       /* DatasetStats.rating_hist: 10 bins over [0, 1] */
/* Labeling advice: a class (or rating range) under this share of the
 * average is worth labeling more of; the validator's balance warning
 * (TY_VALIDATE_BALANCE_SHARE) is the much stricter alarm. */
#define S_ADVICE_SHARE       0.5
#define S_STATUS_TIMEOUT_MS  5000

/* ---- shared --------------------------------------------------------------- */

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard dataset COMMAND [OPTIONS]\n"
        "\n"
        "Commands:\n"
        "  import FILE|DIR --name N   import as a new version (a prepare job; follows it)\n"
        "  append FILE --name N       a new version = the latest + these samples\n"
        "  list                       datasets, their versions and sizes\n"
        "  show N[@V]                 statistics per split and class, histograms,\n"
        "                             balance warnings, labeling advice\n"
        "  export N[@V]               write the samples back as CSV, TSV or JSONL\n"
        "  rm N[@V]                   remove one version, or the whole dataset\n"
        "\n"
        "list, show, export and rm read the data directory directly: --data DIR\n"
        "(env " TY_PREPARE_DATA_ENV ", else <state dir>/data as `trainyard up` uses, i.e.\n"
        "$TRAINYARD_STATE/data or " TY_PREPARE_DATA_DEFAULT "). With workers on other machines\n"
        "it must be a directory they share.\n"
        "\n"
        "Every command takes --help.\n");
}

static void
s_import_usage (FILE *out, int append)
{
    if (append)
        fprintf (out,
            "Usage: trainyard dataset append FILE --name N [OPTIONS]\n"
            "\n"
            "Submit a prepare job that makes a new version of N: every sample of the\n"
            "parent version (the latest, or --parent V) as it is, plus the valid rows\n"
            "of FILE, split with the parent's seed and ratios unless given. The new\n"
            "version records its parent and how many samples are new (retrain\n"
            "triggers read this). The class rules (--min-per-class, --balance-share)\n"
            "are off for the new rows unless given.\n"
            "\n"
            "  --parent V            the version to extend (default: the latest)\n"
            "  --sample-source S     import, feedback or automatic: the source of rows\n"
            "                        without a source column (default import)\n");
    else
        fprintf (out,
            "Usage: trainyard dataset import FILE|DIR --name N [OPTIONS]\n"
            "\n"
            "Submit a prepare job that imports FILE (or a folder of class folders of\n"
            "images) as a new version of dataset N, follow its progress, and print\n"
            "the version, counts per split and class and the rows rejected.\n");
    fprintf (out,
        "\n"
        "  --name N              dataset name, [A-Za-z0-9_.-]{1,64} (required)\n"
        "  --format F            csv, tsv, jsonl, fasttext, features, images,\n"
        "                        annotations or interactions (default: from the path)\n"
        "  --split R             train/val/test[/calib] ratios (default 0.7/0.15/0.15)\n"
        "  --seed S              split seed (default %d)\n"
        "  --folds K             a k-fold number per sample (default none)\n"
        "  --max-per-class N     keep at most N samples per class\n"
        "  --image-size WxH      images: resize to W x H (default %dx%d)\n"
        "  --grey                images: one grey channel instead of RGB\n"
        "\n"
        "Columns (csv, tsv, features, annotations, interactions):\n"
        "  --no-header           the first line is data; columns are 0-based indexes\n"
        "  --delimiter C         field separator (default , or tab)\n"
        "  --text-col C          --label-col C   --labels-col C   --confidence-col C\n"
        "  --source-col C        column names (or indexes)\n"
        "  --label-sep C         separator of several labels in one field (default |)\n"
        "\n"
        "Validation:\n"
        "  --min-per-class N     fail when a class has fewer (default %d; 0 = off)\n"
        "  --max-bad-share X     fail when more than X of the rows are rejected\n"
        "                        (default %.2f)\n"
        "  --max-text-bytes N    reject longer texts (default %d)\n"
        "  --balance-share X     warn about classes under X of the average (default %.2f)\n"
        "  --label-case C        keep, upper or lower (default keep)\n"
        "  --keep-duplicates     keep rows with the same content (default: rejected)\n"
        "  --set KEY=VALUE       any importer, validation or split option by its name\n"
        "                        (storage/ty_import.h, ty_validate.h, ty_split.h)\n"
        "\n"
        "Job:\n"
        "  --priority P          0..1000, higher runs first (default 0)\n"
        "  --max-attempts N      tries before FAILED (default: the broker's)\n"
        "  --detach              print the job id and return without following it\n"
        "  --json                events, then the result as one JSON object per line\n"
        "  -h, --help            this help\n"
        "\n"
        "Exit code: 0 succeeded, 1 failed, 2 bad usage, 3 cancelled.\n",
        TY_SPLIT_SEED, TY_IMPORT_IMAGE_SIDE, TY_IMPORT_IMAGE_SIDE,
        TY_VALIDATE_MIN_PER_CLASS, TY_VALIDATE_MAX_BAD_SHARE, TY_VALIDATE_MAX_TEXT_BYTES,
        TY_VALIDATE_BALANCE_SHARE);
}


/* Parses a floating point value in [min, max]; 0 or -1. */
static int
s_parse_double (const char *s, double min, double max, double *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod (s, &end);
    if (errno || *end || !isfinite (v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
s_parse_u64 (const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull (s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t) v;
    return 0;
}

static void
s_split_counts (const Ty__DatasetMeta *m, uint64_t c [TY_SPLIT_COUNT])
{
    c [TY_SPLIT_TRAIN] = m->count_train;
    c [TY_SPLIT_VAL] = m->count_val;
    c [TY_SPLIT_TEST] = m->count_test;
    c [TY_SPLIT_CALIB] = m->count_calib;
}

static uint64_t
s_class_total (const Ty__ClassCount *c)
{
    return c->train + c->val + c->test + c->calib;
}

/* cJSON adds that remember a failure, as in cmd_json.c. */
typedef struct {
    int failed;
} s_json_t;

static cJSON *
s_jadd (s_json_t *j, cJSON *parent, const char *key, cJSON *item)
{
    if (!item) {
        j->failed = 1;
        return NULL;
    }
    int ok = key ? cJSON_AddItemToObject (parent, key, item)
                 : cJSON_AddItemToArray (parent, item);
    if (!ok) {
        cJSON_Delete (item);
        j->failed = 1;
        return NULL;
    }
    return item;
}

static void
s_jnum (s_json_t *j, cJSON *parent, const char *key, double v)
{
    s_jadd (j, parent, key, cJSON_CreateNumber (v));
}

static void
s_jstr (s_json_t *j, cJSON *parent, const char *key, const char *v)
{
    s_jadd (j, parent, key, cJSON_CreateString (v ? v : ""));
}

/* ---- import / append ---------------------------------------------------------- */

typedef struct {
    int          append;
    const char  *path;
    char         abs_path [PATH_MAX];
    const char  *name;
    const char  *format;
    const char  *split;
    uint64_t     seed;
    int          has_seed;
    long         folds;
    long         max_per_class;
    uint32_t     image_w, image_h, channels;
    uint64_t     parent;
    long         priority;
    long         max_attempts;
    int          detach;
    /* the spec's options map; keys and values borrowed from argv or static */
    const char **keys;
    const char **values;
    size_t       n_options;
    char       **owned;        /* KEY strings cut out of --set KEY=VALUE */
    size_t       n_owned;
} s_import_t;

/* Checks KEY=VALUE with the same parsers the worker uses, so a typo is a
 * usage error now rather than a failed job later. */
static int
s_check_option (const char *cmd, const char *key, const char *value)
{
    ty_import_opts_t io;
    ty_validate_opts_t vo;
    ty_split_opts_t so;
    ty_import_opts_default (&io);
    ty_validate_opts_default (&vo);
    ty_split_opts_default (&so);
    int rc = ty_import_opts_set (&io, key, value);
    if (rc == TY_ENOTFOUND)
        rc = ty_validate_opts_set (&vo, key, value);
    if (rc == TY_ENOTFOUND)
        rc = ty_split_opts_set (&so, key, value);
    if (rc == TY_ENOTFOUND)
        return cmd_usage_error (cmd, "unknown option '%s'", key);
    if (rc != TY_OK)
        return cmd_usage_error (cmd, "option %s: bad value '%s'", key, value);
    return TY_CMD_EXIT_OK;
}

static int
s_add_option (s_import_t *req, const char *cmd, const char *key, const char *value)
{
    int rc = s_check_option (cmd, key, value);
    if (rc != TY_CMD_EXIT_OK)
        return rc;
    for (size_t i = 0; i < req->n_options; i++)
        if (!strcmp (req->keys [i], key)) {
            req->values [i] = value;       /* the last one wins */
            return TY_CMD_EXIT_OK;
        }
    req->keys [req->n_options] = key;
    req->values [req->n_options++] = value;
    return TY_CMD_EXIT_OK;
}

/* --set KEY=VALUE */
static int
s_add_set (s_import_t *req, const char *cmd, const char *arg)
{
    const char *eq = strchr (arg, '=');
    if (!eq || eq == arg)
        return cmd_usage_error (cmd, "--set wants KEY=VALUE, not '%s'", arg);
    char *key = strndup (arg, (size_t) (eq - arg));
    if (!key)
        return cmd_error ("out of memory");
    req->owned [req->n_owned++] = key;
    return s_add_option (req, cmd, key, eq + 1);
}

/* The source as an absolute path. realpath when it exists here; else
 * joined to our working directory (the worker may see files we do not,
 * and it says clearly when the file is missing). */
static int
s_absolute (s_import_t *req)
{
    if (realpath (req->path, req->abs_path))
        return TY_CMD_EXIT_OK;
    if (req->path [0] == '/') {
        if (snprintf (req->abs_path, sizeof req->abs_path, "%s", req->path)
            >= (int) sizeof req->abs_path)
            return cmd_error ("dataset: path too long");
        return TY_CMD_EXIT_OK;
    }
    char cwd [PATH_MAX];
    if (!getcwd (cwd, sizeof cwd))
        return cmd_error ("dataset: cannot read the working directory: %s", strerror (errno));
    if (snprintf (req->abs_path, sizeof req->abs_path, "%s/%s", cwd, req->path)
        >= (int) sizeof req->abs_path)
        return cmd_error ("dataset: path too long");
    return TY_CMD_EXIT_OK;
}

/* The rejected rows of a report (JSON text from the job's "report" output). */
static void
s_print_report (const char *report_json)
{
    cJSON *r = report_json ? cJSON_Parse (report_json) : NULL;
    if (!r)
        return;
    cJSON *rejects = cJSON_GetObjectItemCaseSensitive (r, "rejects");
    if (cJSON_IsArray (rejects) && cJSON_GetArraySize (rejects) > 0) {
        printf ("rejected rows:\n");
        cJSON *x;
        cJSON_ArrayForEach (x, rejects) {
            cJSON *reason = cJSON_GetObjectItemCaseSensitive (x, "reason");
            cJSON *count = cJSON_GetObjectItemCaseSensitive (x, "count");
            cJSON *lines = cJSON_GetObjectItemCaseSensitive (x, "first_lines");
            cJSON *example = cJSON_GetObjectItemCaseSensitive (x, "example");
            printf ("  %-18s %8.0f", cJSON_IsString (reason) ? reason->valuestring : "?",
                    cJSON_IsNumber (count) ? count->valuedouble : 0);
            cJSON *l;
            int first = 1;
            cJSON_ArrayForEach (l, lines) {
                printf ("%s%.0f", first ? "  lines " : ", ", l->valuedouble);
                first = 0;
            }
            if (cJSON_IsString (example) && *example->valuestring)
                printf ("  (%s)", example->valuestring);
            putchar ('\n');
        }
    }
    cJSON *warnings = cJSON_GetObjectItemCaseSensitive (r, "warnings");
    if (cJSON_IsArray (warnings) && cJSON_GetArraySize (warnings) > 0) {
        printf ("warnings:\n");
        cJSON *w;
        cJSON_ArrayForEach (w, warnings)
            if (cJSON_IsString (w))
                printf ("  %s\n", w->valuestring);
    }
    cJSON_Delete (r);
}

static const char *
s_output (const Ty__JobInfo *job, const char *key)
{
    for (size_t i = 0; i < job->n_outputs; i++)
        if (job->outputs [i] && !strcmp (job->outputs [i]->key, key))
            return job->outputs [i]->value;
    return NULL;
}

static void
s_print_classes (const char *classes_json)
{
    cJSON *arr = classes_json ? cJSON_Parse (classes_json) : NULL;
    if (!cJSON_IsArray (arr) || cJSON_GetArraySize (arr) == 0) {
        cJSON_Delete (arr);
        return;
    }
    printf ("  %-24s %8s %8s %8s %8s\n", "class", "train", "val", "test", "calib");
    cJSON *c;
    cJSON_ArrayForEach (c, arr) {
        cJSON *label = cJSON_GetObjectItemCaseSensitive (c, "label");
        if (!cJSON_IsString (label))
            continue;
        const char *keys [] = { "train", "val", "test", "calib" };
        double v [4];
        for (int i = 0; i < 4; i++) {
            cJSON *n = cJSON_GetObjectItemCaseSensitive (c, keys [i]);
            v [i] = cJSON_IsNumber (n) ? n->valuedouble : 0;
        }
        printf ("  %-24s %8.0f %8.0f %8.0f %8.0f\n", label->valuestring, v [0], v [1],
                v [2], v [3]);
    }
    cJSON_Delete (arr);
}

/* The ended job's result, in words or as one JSON object. */
static int
s_print_result (cmd_ctx_t *ctx, const Ty__JobInfo *job)
{
    const char *report = s_output (job, "report");
    if (ctx->json) {
        cJSON *o = cJSON_CreateObject ();
        if (!o)
            return cmd_error ("out of memory");
        s_json_t j = { 0 };
        s_jstr (&j, o, "job_id", job->id);
        s_jstr (&j, o, "state", job->state);
        s_jstr (&j, o, "error", job->error);
        const char *texts [] = { "dataset", "version", "parent", "added", "content_hash",
                                 "kind", "summary" };
        for (size_t i = 0; i < sizeof texts / sizeof texts [0]; i++) {
            const char *v = s_output (job, texts [i]);
            if (v)
                s_jstr (&j, o, texts [i], v);
        }
        const char *jsons [] = { "counts", "classes", "report" };
        for (size_t i = 0; i < sizeof jsons / sizeof jsons [0]; i++) {
            const char *v = s_output (job, jsons [i]);
            cJSON *parsed = v ? cJSON_Parse (v) : NULL;
            if (parsed)
                s_jadd (&j, o, jsons [i], parsed);
        }
        if (j.failed) {
            cJSON_Delete (o);
            o = NULL;
        }
        return cmd_json_print (o);
    }
    if (!strcmp (job->state, "SUCCEEDED")) {
        printf ("%s\n", job->result_summary && *job->result_summary
                        ? job->result_summary : s_output (job, "dataset"));
        s_print_classes (s_output (job, "classes"));
    }
    s_print_report (report);
    return TY_CMD_EXIT_OK;
}

static int
s_submit_and_follow (cmd_ctx_t *ctx, const s_import_t *req)
{
    Ty__PrepareSpec prep = TY__PREPARE_SPEC__INIT;
    prep.dataset = (char *) req->name;
    prep.source = (char *) req->abs_path;
    prep.format = (char *) (req->format ? req->format : "");
    prep.mode = (char *) (req->append ? "append" : "import");
    prep.split = (char *) (req->split ? req->split : "");
    prep.seed = req->seed;
    prep.has_seed = req->has_seed;
    prep.folds = (uint32_t) req->folds;
    prep.max_per_class = (uint32_t) req->max_per_class;
    prep.image_width = req->image_w;
    prep.image_height = req->image_h;
    prep.image_channels = req->channels;
    prep.parent_version = req->parent;
    Ty__PrepareSpec__OptionsEntry *entries = calloc (req->n_options + 1, sizeof *entries);
    Ty__PrepareSpec__OptionsEntry **eptr = calloc (req->n_options + 1, sizeof *eptr);
    if (!entries || !eptr) {
        free (entries);
        free (eptr);
        return cmd_error ("out of memory");
    }
    for (size_t i = 0; i < req->n_options; i++) {
        ty__prepare_spec__options_entry__init (&entries [i]);
        entries [i].key = (char *) req->keys [i];
        entries [i].value = (char *) req->values [i];
        eptr [i] = &entries [i];
    }
    prep.options = eptr;
    prep.n_options = req->n_options;

    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    spec.kind_case = TY__JOB_SPEC__KIND_PREPARE;
    spec.prepare = &prep;
    spec.priority = (uint32_t) req->priority;
    spec.max_attempts = (uint32_t) req->max_attempts;
    char name [TY_DATASET_NAME_MAX + 16];
    snprintf (name, sizeof name, "%s %s", req->append ? "append" : "import", req->name);
    spec.name = name;

    int exit_code = TY_CMD_EXIT_OK;
    ty_client_t *client = cmd_connect (ctx);
    if (!client) {
        exit_code = TY_CMD_EXIT_ERROR;
        goto done;
    }
    char id [TY_ID_LEN + 1];
    ty_submit_item_t item = { .spec = &spec };
    /* watch = 1: subscribed in the same round trip, so no event is missed */
    int rc = ty_client_submit_batch (client, &item, 1, !req->detach, ctx->timeout_ms, id);
    if (rc != TY_OK) {
        exit_code = cmd_client_error (client, rc, "dataset %s: submit",
                                      req->append ? "append" : "import");
        goto done;
    }
    if (req->detach) {
        if (ctx->json) {
            cJSON *o = cJSON_CreateObject ();
            if (o && !cJSON_AddStringToObject (o, "job_id", id)) {
                cJSON_Delete (o);
                o = NULL;
            }
            exit_code = cmd_json_print (o);
        }
        else
            puts (id);
        goto done;
    }
    if (!ctx->json)
        fprintf (stderr, "job %s: %s %s into dataset %s\n", id,
                 req->append ? "appending" : "importing", req->abs_path, req->name);
    char *ids [1] = { id };
    exit_code = cmd_watch_jobs (ctx, client, ids, 1, 1);
    if (exit_code != TY_CMD_EXIT_OK && exit_code != TY_CMD_EXIT_ERROR
    &&  exit_code != TY_CMD_EXIT_CANCELLED)
        goto done;              /* interrupted: the job goes on */
    Ty__JobInfo *job = NULL;
    rc = ty_client_status (client, id, ctx->timeout_ms, &job);
    if (rc != TY_OK) {
        int e = cmd_client_error (client, rc, "status %s", id);
        if (exit_code == TY_CMD_EXIT_OK)
            exit_code = e;
        goto done;
    }
    int prc = s_print_result (ctx, job);
    if (exit_code == TY_CMD_EXIT_OK)
        exit_code = prc;
    ty_client_free_msg (job);
done:
    ty_client_destroy (&client);
    free (entries);
    free (eptr);
    return exit_code;
}

static int
s_import (cmd_ctx_t *ctx, int argc, char **argv, int append)
{
    const char *cmd = append ? "dataset append" : "dataset import";
    enum { OPT_NAME = 256, OPT_FORMAT, OPT_SPLIT, OPT_SEED, OPT_FOLDS, OPT_CAP,
           OPT_IMAGE_SIZE, OPT_GREY, OPT_NO_HEADER, OPT_DELIM, OPT_TEXT_COL, OPT_LABEL_COL,
           OPT_LABELS_COL, OPT_CONF_COL, OPT_SOURCE_COL, OPT_LABEL_SEP, OPT_MIN_PER_CLASS,
           OPT_MAX_BAD, OPT_MAX_TEXT, OPT_BALANCE, OPT_LABEL_CASE, OPT_KEEP_DUPS, OPT_SET,
           OPT_PRIO, OPT_ATTEMPTS, OPT_DETACH, OPT_JSON, OPT_PARENT, OPT_SAMPLE_SOURCE };
    static const struct option opts [] = {
        { "name",           required_argument, NULL, OPT_NAME },
        { "format",         required_argument, NULL, OPT_FORMAT },
        { "split",          required_argument, NULL, OPT_SPLIT },
        { "seed",           required_argument, NULL, OPT_SEED },
        { "folds",          required_argument, NULL, OPT_FOLDS },
        { "max-per-class",  required_argument, NULL, OPT_CAP },
        { "image-size",     required_argument, NULL, OPT_IMAGE_SIZE },
        { "grey",           no_argument,       NULL, OPT_GREY },
        { "gray",           no_argument,       NULL, OPT_GREY },
        { "no-header",      no_argument,       NULL, OPT_NO_HEADER },
        { "delimiter",      required_argument, NULL, OPT_DELIM },
        { "text-col",       required_argument, NULL, OPT_TEXT_COL },
        { "label-col",      required_argument, NULL, OPT_LABEL_COL },
        { "labels-col",     required_argument, NULL, OPT_LABELS_COL },
        { "confidence-col", required_argument, NULL, OPT_CONF_COL },
        { "source-col",     required_argument, NULL, OPT_SOURCE_COL },
        { "label-sep",      required_argument, NULL, OPT_LABEL_SEP },
        { "min-per-class",  required_argument, NULL, OPT_MIN_PER_CLASS },
        { "max-bad-share",  required_argument, NULL, OPT_MAX_BAD },
        { "max-text-bytes", required_argument, NULL, OPT_MAX_TEXT },
        { "balance-share",  required_argument, NULL, OPT_BALANCE },
        { "label-case",     required_argument, NULL, OPT_LABEL_CASE },
        { "keep-duplicates", no_argument,      NULL, OPT_KEEP_DUPS },
        { "set",            required_argument, NULL, OPT_SET },
        { "priority",       required_argument, NULL, OPT_PRIO },
        { "max-attempts",   required_argument, NULL, OPT_ATTEMPTS },
        { "detach",         no_argument,       NULL, OPT_DETACH },
        { "json",           no_argument,       NULL, OPT_JSON },
        { "parent",         required_argument, NULL, OPT_PARENT },
        { "sample-source",  required_argument, NULL, OPT_SAMPLE_SOURCE },
        { "help",           no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    s_import_t req = { .append = append };
    /* every option is one argv word at least, so argc bounds their number */
    req.keys = calloc ((size_t) argc + 1, sizeof *req.keys);
    req.values = calloc ((size_t) argc + 1, sizeof *req.values);
    req.owned = calloc ((size_t) argc + 1, sizeof *req.owned);
    int exit_code = TY_CMD_EXIT_OK;
    if (!req.keys || !req.values || !req.owned) {
        exit_code = cmd_error ("out of memory");
        goto done;
    }
    int c;
    while (exit_code == TY_CMD_EXIT_OK
       && (c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        long v;
        double d;
        const char *key = NULL;       /* an options-map key taking optarg */
        switch (c) {
            case OPT_NAME:   req.name = optarg; break;
            case OPT_FORMAT: {
                ty_import_format_t f;
                if (ty_import_format_parse (optarg, &f) != TY_OK)
                    exit_code = cmd_usage_error (cmd, "--format: unknown format '%s' (csv, tsv, "
                                                 "jsonl, fasttext, features, images, "
                                                 "annotations, interactions)", optarg);
                req.format = optarg;
                break;
            }
            case OPT_SPLIT: {
                ty_split_opts_t so;
                ty_split_opts_default (&so);
                if (ty_split_opts_set (&so, "split", optarg) != TY_OK
                ||  ty_split_opts_check (&so) != TY_OK)
                    exit_code = cmd_usage_error (cmd, "--split: '%s' is not 3 or 4 ratios "
                                                 "adding up to 1, e.g. 0.7/0.15/0.15", optarg);
                req.split = optarg;
                break;
            }
            case OPT_SEED:
                if (s_parse_u64 (optarg, &req.seed))
                    exit_code = cmd_usage_error (cmd, "--seed: '%s' is not an unsigned number",
                                                 optarg);
                req.has_seed = 1;
                break;
            case OPT_FOLDS:
                if (cmd_parse_long (optarg, 0, S_MAX_FOLDS, &req.folds))
                    exit_code = cmd_usage_error (cmd, "--folds: '%s' is not a number in 0..%d",
                                                 optarg, S_MAX_FOLDS);
                break;
            case OPT_CAP:
                if (cmd_parse_long (optarg, 0, UINT32_MAX, &req.max_per_class))
                    exit_code = cmd_usage_error (cmd, "--max-per-class: '%s' is not a count",
                                                 optarg);
                break;
            case OPT_IMAGE_SIZE: {
                unsigned w = 0, h = 0;
                char tail;
                if (sscanf (optarg, "%ux%u%c", &w, &h, &tail) != 2 || !w || !h
                ||  w > TY_IMPORT_IMAGE_SIDE_MAX || h > TY_IMPORT_IMAGE_SIDE_MAX)
                    exit_code = cmd_usage_error (cmd, "--image-size: '%s' is not WxH with "
                                                 "sides 1..%d", optarg, TY_IMPORT_IMAGE_SIDE_MAX);
                req.image_w = w;
                req.image_h = h;
                break;
            }
            case OPT_GREY:       req.channels = 1; break;
            case OPT_NO_HEADER:
                exit_code = s_add_option (&req, cmd, "header", "false");
                break;
            case OPT_DELIM:      key = "delimiter"; break;
            case OPT_TEXT_COL:   key = "text_col"; break;
            case OPT_LABEL_COL:  key = "label_col"; break;
            case OPT_LABELS_COL: key = "labels_col"; break;
            case OPT_CONF_COL:   key = "confidence_col"; break;
            case OPT_SOURCE_COL: key = "source_col"; break;
            case OPT_LABEL_SEP:  key = "label_sep"; break;
            case OPT_MIN_PER_CLASS:
                if (cmd_parse_long (optarg, 0, UINT32_MAX, &v))
                    exit_code = cmd_usage_error (cmd, "--min-per-class: '%s' is not a count",
                                                 optarg);
                key = "min_per_class";
                break;
            case OPT_MAX_BAD:
                if (s_parse_double (optarg, 0, 1, &d))
                    exit_code = cmd_usage_error (cmd, "--max-bad-share: '%s' is not in [0, 1]",
                                                 optarg);
                key = "max_bad_share";
                break;
            case OPT_MAX_TEXT:   key = "max_text_bytes"; break;
            case OPT_BALANCE:    key = "balance_share"; break;
            case OPT_LABEL_CASE: key = "label_case"; break;
            case OPT_KEEP_DUPS:
                exit_code = s_add_option (&req, cmd, "reject_duplicates", "false");
                break;
            case OPT_SAMPLE_SOURCE: key = "source"; break;
            case OPT_SET:
                exit_code = s_add_set (&req, cmd, optarg);
                break;
            case OPT_PRIO:
                if (cmd_parse_long (optarg, 0, S_MAX_PRIORITY, &req.priority))
                    exit_code = cmd_usage_error (cmd, "--priority: '%s' is not in 0..%d",
                                                 optarg, S_MAX_PRIORITY);
                break;
            case OPT_ATTEMPTS:
                if (cmd_parse_long (optarg, 1, S_MAX_ATTEMPTS, &req.max_attempts))
                    exit_code = cmd_usage_error (cmd, "--max-attempts: '%s' is not in 1..%d",
                                                 optarg, S_MAX_ATTEMPTS);
                break;
            case OPT_PARENT:
                if (s_parse_u64 (optarg, &req.parent) || req.parent == 0)
                    exit_code = cmd_usage_error (cmd, "--parent: '%s' is not a version number",
                                                 optarg);
                break;
            case OPT_DETACH:     req.detach = 1; break;
            case OPT_JSON:       ctx->json = 1; break;
            case 'h':
                s_import_usage (stdout, append);
                goto done;
            default:
                exit_code = cmd_getopt_error (cmd, c, argv);
                break;
        }
        if (key && exit_code == TY_CMD_EXIT_OK)
            exit_code = s_add_option (&req, cmd, key, optarg);
    }
    if (exit_code != TY_CMD_EXIT_OK)
        goto done;
    if (optind >= argc) {
        exit_code = cmd_usage_error (cmd, append ? "missing FILE" : "missing FILE or DIR");
        goto done;
    }
    if (optind < argc - 1) {
        exit_code = cmd_usage_error (cmd, "unexpected argument '%s'", argv [optind + 1]);
        goto done;
    }
    req.path = argv [optind];
    if (!*req.path) {
        exit_code = cmd_usage_error (cmd, "empty path");
        goto done;
    }
    if (!req.name) {
        exit_code = cmd_usage_error (cmd, "missing --name");
        goto done;
    }
    const char *why = NULL;
    if (ty_dataset_name_check (req.name, &why) != TY_OK) {
        exit_code = cmd_usage_error (cmd, "--name '%s': %s", req.name, why ? why : "invalid");
        goto done;
    }
    if ((exit_code = s_absolute (&req)) != TY_CMD_EXIT_OK)
        goto done;
    exit_code = s_submit_and_follow (ctx, &req);
done:
    for (size_t i = 0; req.owned && i < req.n_owned; i++)
        free (req.owned [i]);
    free (req.owned);
    free (req.keys);
    free (req.values);
    return exit_code;
}

/* ---- read commands: common option parsing ----------------------------------- */

/* --data, --json, --help and up to `max_args` positional arguments; extra
 * options of export are parsed by the caller. */
typedef struct {
    const char *data_flag;
    char        data [PATH_MAX];
} s_read_t;

static int
s_read_opts (cmd_ctx_t *ctx, const char *cmd, int argc, char **argv, s_read_t *r,
             void (*usage) (FILE *), int nargs, const char *missing)
{
    enum { OPT_DATA = 256, OPT_JSON };
    static const struct option opts [] = {
        { "data", required_argument, NULL, OPT_DATA },
        { "json", no_argument,       NULL, OPT_JSON },
        { "help", no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_DATA: r->data_flag = optarg; break;
            case OPT_JSON: ctx->json = 1; break;
            case 'h':      usage (stdout); return -1;
            default:       return cmd_getopt_error (cmd, c, argv);
        }
    }
    if (argc - optind < nargs)
        return cmd_usage_error (cmd, "%s", missing);
    if (argc - optind > nargs)
        return cmd_usage_error (cmd, "unexpected argument '%s'", argv [optind + nargs]);
    if (cmd_data_dir (r->data_flag, r->data, sizeof r->data))
        return TY_CMD_EXIT_ERROR;
    return TY_CMD_EXIT_OK;
}

/* Opens N or N@V with a clear message. */
static int
s_open (const char *data, const char *spec, ty_dataset_t **ds)
{
    const char *why = NULL;
    char name [TY_DATASET_NAME_MAX + 1];
    uint64_t version = 0;
    if (ty_dataset_spec_parse (spec, name, &version, &why) != TY_OK)
        return cmd_usage_error ("dataset", "'%s': %s", spec, why ? why : "not NAME or NAME@VERSION");
    int rc = ty_dataset_open (data, spec, ds);
    if (rc == TY_ENOTFOUND)
        return cmd_error ("dataset %s: not found in %s", spec, data);
    if (rc != TY_OK)
        return cmd_error ("dataset %s: cannot open: %s", spec, ty_strerror (rc));
    return TY_CMD_EXIT_OK;
}

/* ---- list ------------------------------------------------------------------ */

static void
s_list_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard dataset list [--data DIR] [--json]\n"
        "\n"
        "Every dataset of the data directory: its versions, and the latest one's\n"
        "kind, samples, classes and creation time.\n"
        "  --data DIR  the data directory (see trainyard dataset --help)\n"
        "  --json      one JSON object per dataset and line\n"
        "  -h, --help  this help\n");
}

static int
s_list (cmd_ctx_t *ctx, int argc, char **argv)
{
    s_read_t r = { 0 };
    int rc = s_read_opts (ctx, "dataset list", argc, argv, &r, s_list_usage, 0, "");
    if (rc)
        return rc < 0 ? TY_CMD_EXIT_OK : rc;
    char **names = NULL;
    size_t n = 0;
    rc = ty_dataset_list (r.data, &names, &n);
    if (rc == ENOENT)
        n = 0;              /* no data directory yet: no datasets */
    else if (rc != TY_OK)
        return cmd_error ("dataset list: %s: %s", r.data, ty_strerror (rc));
    if (!ctx->json && n == 0)
        fprintf (stderr, "no datasets in %s\n", r.data);
    if (!ctx->json && n > 0)
        printf ("%-24s %-12s %-11s %10s %8s  %s\n", "NAME", "VERSIONS", "KIND", "SAMPLES",
                "CLASSES", "CREATED");
    int exit_code = TY_CMD_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        uint64_t *versions = NULL;
        size_t nv = 0;
        if (ty_dataset_versions (r.data, names [i], &versions, &nv) != TY_OK || nv == 0) {
            free (versions);
            continue;       /* removed meanwhile, or only a temp dir */
        }
        ty_dataset_t *ds = NULL;
        char spec [TY_DATASET_SPEC_MAX];
        snprintf (spec, sizeof spec, "%s@%" PRIu64, names [i], versions [nv - 1]);
        int orc = ty_dataset_open (r.data, spec, &ds);
        const Ty__DatasetMeta *m = orc == TY_OK ? ty_dataset_meta (ds) : NULL;
        uint64_t total = 0;
        for (int s = 0; ds && s < TY_SPLIT_COUNT; s++)
            total += ty_dataset_count (ds, (ty_split_t) s);
        if (ctx->json) {
            cJSON *o = cJSON_CreateObject ();
            s_json_t j = { o == NULL };
            if (o) {
                s_jstr (&j, o, "name", names [i]);
                cJSON *arr = s_jadd (&j, o, "versions", cJSON_CreateArray ());
                for (size_t k = 0; arr && k < nv; k++)
                    s_jadd (&j, arr, NULL, cJSON_CreateNumber ((double) versions [k]));
                s_jnum (&j, o, "latest", (double) versions [nv - 1]);
                if (m) {
                    s_jstr (&j, o, "kind", m->kind);
                    s_jnum (&j, o, "samples", (double) total);
                    s_jnum (&j, o, "classes", (double) m->n_labels);
                    s_jnum (&j, o, "created_unix", (double) m->created_unix);
                }
                else
                    s_jstr (&j, o, "error", ty_strerror (orc));
            }
            if (j.failed) {
                cJSON_Delete (o);
                o = NULL;
            }
            if (cmd_json_print (o) != TY_CMD_EXIT_OK)
                exit_code = TY_CMD_EXIT_ERROR;
        }
        else {
            char vers [32];
            if (nv == 1)
                snprintf (vers, sizeof vers, "%" PRIu64, versions [0]);
            else
                snprintf (vers, sizeof vers, "%" PRIu64 "..%" PRIu64 " (%zu)", versions [0],
                          versions [nv - 1], nv);
            char created [48] = "";
            if (m)
                cmd_format_time ((uint64_t) m->created_unix * 1000, created, sizeof created);
            if (m)
                printf ("%-24s %-12s %-11s %10" PRIu64 " %8zu  %s\n", names [i], vers,
                        m->kind, total, m->n_labels, created);
            else
                printf ("%-24s %-12s (cannot open: %s)\n", names [i], vers, ty_strerror (orc));
        }
        ty_dataset_destroy (&ds);
        free (versions);
    }
    ty_dataset_strv_free (names, n);
    return exit_code;
}

/* ---- show -------------------------------------------------------------------- */

static void
s_show_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard dataset show NAME[@VERSION] [--data DIR] [--json]\n"
        "\n"
        "One version (default the latest): lineage, sources, split options, counts\n"
        "per split and class, text length / rating histograms, image size,\n"
        "balance warnings and labeling advice (under-represented classes and\n"
        "rating ranges).\n"
        "  --data DIR  the data directory (see trainyard dataset --help)\n"
        "  --json      everything as one JSON object\n"
        "  -h, --help  this help\n");
}

/* Warnings and advice derived from the class counts and rating histogram.
 * Each list gets malloc'd strings (free with ty_dataset_strv_free). */
typedef struct {
    char  **warnings;
    size_t  n_warnings;
    char  **advice;
    size_t  n_advice;
    int     failed;
} s_notes_t;

static void
s_note (s_notes_t *n, int advice, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
s_note (s_notes_t *n, int advice, const char *fmt, ...)
{
    char ***list = advice ? &n->advice : &n->warnings;
    size_t *count = advice ? &n->n_advice : &n->n_warnings;
    char *text = NULL;
    va_list ap;
    va_start (ap, fmt);
    int len = vasprintf (&text, fmt, ap);
    va_end (ap);
    char **grown = len >= 0 ? realloc (*list, (*count + 1) * sizeof **list) : NULL;
    if (!grown) {
        if (len >= 0)
            free (text);
        n->failed = 1;
        return;
    }
    *list = grown;
    (*list) [(*count)++] = text;
}

static void
s_notes (const Ty__DatasetMeta *m, s_notes_t *n)
{
    size_t nc = m->n_classes;
    uint64_t sum = 0;
    for (size_t i = 0; i < nc; i++)
        sum += s_class_total (m->classes [i]);
    if (nc > 0 && sum > 0) {
        double avg = (double) sum / (double) nc;
        for (size_t i = 0; i < nc; i++) {
            const Ty__ClassCount *c = m->classes [i];
            uint64_t t = s_class_total (c);
            if (t < TY_VALIDATE_MIN_PER_CLASS)
                s_note (n, 0, "class '%s' has %" PRIu64 " samples, fewer than %d",
                        c->label, t, TY_VALIDATE_MIN_PER_CLASS);
            if ((double) t < TY_VALIDATE_BALANCE_SHARE * avg)
                s_note (n, 0, "class '%s' has %" PRIu64 " samples, under %.0f %% of the "
                        "average (%.1f)", c->label, t, TY_VALIDATE_BALANCE_SHARE * 100, avg);
            if ((double) t < S_ADVICE_SHARE * avg) {
                uint64_t want = (uint64_t) ceil (avg);
                if (want < TY_VALIDATE_MIN_PER_CLASS)
                    want = TY_VALIDATE_MIN_PER_CLASS;
                s_note (n, 1, "label about %" PRIu64 " more samples of class '%s' "
                        "(%" PRIu64 " now, the average is %.1f)", want - t, c->label, t, avg);
            }
            if (c->train == 0)
                s_note (n, 0, "class '%s' has no training sample", c->label);
        }
    }
    const Ty__DatasetStats *st = m->stats;
    if (st && st->n_rating_hist == S_RATING_BINS) {
        uint64_t rsum = 0;
        for (size_t b = 0; b < S_RATING_BINS; b++)
            rsum += st->rating_hist [b];
        double ravg = (double) rsum / S_RATING_BINS;
        /* one note per run of neighbouring sparse bins */
        for (size_t b = 0; rsum > 0 && b < S_RATING_BINS; b++) {
            if ((double) st->rating_hist [b] >= S_ADVICE_SHARE * ravg)
                continue;
            size_t e = b;
            uint64_t in_run = 0;
            while (e < S_RATING_BINS && (double) st->rating_hist [e] < S_ADVICE_SHARE * ravg)
                in_run += st->rating_hist [e++];
            s_note (n, 1, "ratings in [%.1f, %.1f%c are under-represented (%" PRIu64
                    " samples; %.1f per 0.1 on average): label more samples rated there",
                    (double) b / S_RATING_BINS, (double) e / S_RATING_BINS,
                    e == S_RATING_BINS ? ']' : ')', in_run, ravg);
            b = e;
        }
    }
    if (st && st->unlabeled && nc > 0)
        s_note (n, 0, "%" PRIu64 " samples have no label", st->unlabeled);
}

static void
s_notes_free (s_notes_t *n)
{
    ty_dataset_strv_free (n->warnings, n->n_warnings);
    ty_dataset_strv_free (n->advice, n->n_advice);
}

static void
s_hist_line (const char *range, uint64_t count, uint64_t max)
{
    char bar [S_HIST_BAR + 1];
    int len = max ? (int) ((double) count * S_HIST_BAR / (double) max + 0.5) : 0;
    if (count && len == 0)
        len = 1;
    memset (bar, '#', (size_t) len);
    bar [len] = '\0';
    printf ("  %-16s %-*s %" PRIu64 "\n", range, S_HIST_BAR, bar, count);
}

static void
s_show_text (const char *spec, ty_dataset_t *ds, const uint64_t *versions, size_t nv,
             const s_notes_t *notes)
{
    const Ty__DatasetMeta *m = ty_dataset_meta (ds);
    uint64_t c [TY_SPLIT_COUNT], total = 0;
    s_split_counts (m, c);
    for (int s = 0; s < TY_SPLIT_COUNT; s++)
        total += c [s];
    char created [48];
    cmd_format_time ((uint64_t) m->created_unix * 1000, created, sizeof created);
    printf ("dataset   %s@%" PRIu64 "%s\n", ty_dataset_name (ds), ty_dataset_version (ds),
            strchr (spec, '@') ? "" : " (latest)");
    printf ("kind      %s\n", *m->kind ? m->kind : "(empty)");
    printf ("samples   %" PRIu64 "  (train %" PRIu64 ", val %" PRIu64 ", test %" PRIu64,
            total, c [0], c [1], c [2]);
    if (c [TY_SPLIT_CALIB])
        printf (", calib %" PRIu64, c [TY_SPLIT_CALIB]);
    printf (")\n");
    printf ("created   %s\n", created);
    printf ("hash      %s\n", m->content_hash);
    if (nv) {
        printf ("versions ");
        for (size_t i = 0; i < nv; i++)
            printf (" %" PRIu64, versions [i]);
        putchar ('\n');
    }
    if (m->parent_version)
        printf ("parent    %s@%" PRIu64 "  (+%" PRIu64 " samples)\n", ty_dataset_name (ds),
                m->parent_version, m->added);
    for (size_t i = 0; i < m->n_new_since; i++)
        printf ("%-9s %" PRIu64 " samples new since @%" PRIu64 "\n", i ? "" : "new since",
                m->new_since [i]->count, m->new_since [i]->version);
    for (size_t i = 0; i < m->n_sources; i++)
        printf ("%-9s %s  (%" PRIu64 " bytes, sha256 %.16s...)\n", i ? "" : "source",
                m->sources [i]->path, m->sources [i]->bytes, m->sources [i]->sha256);
    printf ("split     seed %" PRIu64 ", ratios %.2f/%.2f/%.2f", m->seed, m->ratio_train,
            m->ratio_val, m->ratio_test);
    if (m->ratio_calib > 0)
        printf ("/%.2f", m->ratio_calib);
    if (m->folds > 1)
        printf (", %u folds", m->folds);
    if (m->cap_per_class)
        printf (", at most %u per class", m->cap_per_class);
    putchar ('\n');

    if (m->n_classes) {
        printf ("\n%-24s %8s %8s %8s %8s %8s %7s\n", "class", "train", "val", "test", "calib",
                "total", "share");
        for (size_t i = 0; i < m->n_classes; i++) {
            const Ty__ClassCount *cc = m->classes [i];
            uint64_t t = s_class_total (cc);
            printf ("%-24s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
                    " %6.1f%%\n", cc->label, cc->train, cc->val, cc->test, cc->calib, t,
                    total ? 100.0 * (double) t / (double) total : 0.0);
        }
    }
    const Ty__DatasetStats *st = m->stats;
    if (st) {
        uint64_t max = 0;
        for (size_t i = 0; i < st->n_text_len_hist; i++)
            if (st->text_len_hist [i] > max)
                max = st->text_len_hist [i];
        if (max) {
            printf ("\ntext length (bytes): min %" PRIu64 ", mean %.1f, max %" PRIu64 "\n",
                    st->text_len_min, st->text_len_mean, st->text_len_max);
            for (size_t i = 0; i < st->n_text_len_hist; i++) {
                if (!st->text_len_hist [i] || i >= 63)
                    continue;
                char range [48];
                uint64_t lo = i ? (uint64_t) 1 << i : 0, hi = ((uint64_t) 1 << (i + 1)) - 1;
                snprintf (range, sizeof range, "%" PRIu64 "-%" PRIu64, lo, hi);
                s_hist_line (range, st->text_len_hist [i], max);
            }
        }
        max = 0;
        for (size_t i = 0; i < st->n_rating_hist; i++)
            if (st->rating_hist [i] > max)
                max = st->rating_hist [i];
        if (max && st->n_rating_hist == S_RATING_BINS) {
            printf ("\nratings / targets:\n");
            for (size_t i = 0; i < S_RATING_BINS; i++) {
                char range [32];
                snprintf (range, sizeof range, "[%.1f, %.1f%c", (double) i / S_RATING_BINS,
                          (double) (i + 1) / S_RATING_BINS, i + 1 == S_RATING_BINS ? ']' : ')');
                s_hist_line (range, st->rating_hist [i], max);
            }
        }
        if (st->image_width)
            printf ("\nimages    %ux%u, %u channel%s (every image resized to this)\n",
                    st->image_width, st->image_height, st->image_channels,
                    st->image_channels == 1 ? "" : "s");
        if (st->feature_dim)
            printf ("\nfeatures  %u per sample\n", st->feature_dim);
        if (st->duplicates_dropped || st->capped)
            printf ("\ndropped   %" PRIu64 " duplicates, %" PRIu64 " over the per-class cap\n",
                    st->duplicates_dropped, st->capped);
    }
    if (notes->n_warnings) {
        printf ("\nwarnings:\n");
        for (size_t i = 0; i < notes->n_warnings; i++)
            printf ("  %s\n", notes->warnings [i]);
    }
    if (notes->n_advice) {
        printf ("\nlabeling advice:\n");
        for (size_t i = 0; i < notes->n_advice; i++)
            printf ("  %s\n", notes->advice [i]);
    }
}

static cJSON *
s_show_json (ty_dataset_t *ds, const uint64_t *versions, size_t nv, const s_notes_t *notes)
{
    const Ty__DatasetMeta *m = ty_dataset_meta (ds);
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    s_json_t j = { 0 };
    s_jstr (&j, o, "name", ty_dataset_name (ds));
    s_jnum (&j, o, "version", (double) ty_dataset_version (ds));
    cJSON *arr = s_jadd (&j, o, "versions", cJSON_CreateArray ());
    for (size_t i = 0; arr && i < nv; i++)
        s_jadd (&j, arr, NULL, cJSON_CreateNumber ((double) versions [i]));
    s_jstr (&j, o, "kind", m->kind);
    s_jnum (&j, o, "format_version", m->format_version);
    s_jnum (&j, o, "created_unix", (double) m->created_unix);
    s_jstr (&j, o, "content_hash", m->content_hash);
    s_jnum (&j, o, "parent_version", (double) m->parent_version);
    s_jnum (&j, o, "added", (double) m->added);
    cJSON *ns = s_jadd (&j, o, "new_since", cJSON_CreateArray ());
    for (size_t i = 0; ns && i < m->n_new_since; i++) {
        cJSON *x = s_jadd (&j, ns, NULL, cJSON_CreateObject ());
        if (x) {
            s_jnum (&j, x, "version", (double) m->new_since [i]->version);
            s_jnum (&j, x, "count", (double) m->new_since [i]->count);
        }
    }
    cJSON *src = s_jadd (&j, o, "sources", cJSON_CreateArray ());
    for (size_t i = 0; src && i < m->n_sources; i++) {
        cJSON *x = s_jadd (&j, src, NULL, cJSON_CreateObject ());
        if (x) {
            s_jstr (&j, x, "path", m->sources [i]->path);
            s_jstr (&j, x, "sha256", m->sources [i]->sha256);
            s_jnum (&j, x, "bytes", (double) m->sources [i]->bytes);
        }
    }
    cJSON *sp = s_jadd (&j, o, "split", cJSON_CreateObject ());
    if (sp) {
        s_jnum (&j, sp, "seed", (double) m->seed);
        s_jnum (&j, sp, "train", m->ratio_train);
        s_jnum (&j, sp, "val", m->ratio_val);
        s_jnum (&j, sp, "test", m->ratio_test);
        s_jnum (&j, sp, "calib", m->ratio_calib);
        s_jnum (&j, sp, "folds", m->folds);
        s_jnum (&j, sp, "cap_per_class", m->cap_per_class);
    }
    cJSON *counts = s_jadd (&j, o, "counts", cJSON_CreateObject ());
    for (int s = 0; counts && s < TY_SPLIT_COUNT; s++)
        s_jnum (&j, counts, ty_split_name ((ty_split_t) s),
                (double) ty_dataset_count (ds, (ty_split_t) s));
    cJSON *cl = s_jadd (&j, o, "classes", cJSON_CreateArray ());
    for (size_t i = 0; cl && i < m->n_classes; i++) {
        const Ty__ClassCount *c = m->classes [i];
        cJSON *x = s_jadd (&j, cl, NULL, cJSON_CreateObject ());
        if (x) {
            s_jstr (&j, x, "label", c->label);
            s_jnum (&j, x, "train", (double) c->train);
            s_jnum (&j, x, "val", (double) c->val);
            s_jnum (&j, x, "test", (double) c->test);
            s_jnum (&j, x, "calib", (double) c->calib);
            s_jnum (&j, x, "total", (double) s_class_total (c));
        }
    }
    const Ty__DatasetStats *st = m->stats;
    cJSON *so = st ? s_jadd (&j, o, "stats", cJSON_CreateObject ()) : NULL;
    if (so) {
        s_jnum (&j, so, "text_len_min", (double) st->text_len_min);
        s_jnum (&j, so, "text_len_max", (double) st->text_len_max);
        s_jnum (&j, so, "text_len_mean", st->text_len_mean);
        cJSON *h = s_jadd (&j, so, "text_len_hist", cJSON_CreateArray ());
        for (size_t i = 0; h && i < st->n_text_len_hist; i++)
            s_jadd (&j, h, NULL, cJSON_CreateNumber ((double) st->text_len_hist [i]));
        h = s_jadd (&j, so, "rating_hist", cJSON_CreateArray ());
        for (size_t i = 0; h && i < st->n_rating_hist; i++)
            s_jadd (&j, h, NULL, cJSON_CreateNumber ((double) st->rating_hist [i]));
        s_jnum (&j, so, "feature_dim", st->feature_dim);
        s_jnum (&j, so, "image_height", st->image_height);
        s_jnum (&j, so, "image_width", st->image_width);
        s_jnum (&j, so, "image_channels", st->image_channels);
        s_jnum (&j, so, "duplicates_dropped", (double) st->duplicates_dropped);
        s_jnum (&j, so, "capped", (double) st->capped);
        s_jnum (&j, so, "unlabeled", (double) st->unlabeled);
    }
    cJSON *w = s_jadd (&j, o, "warnings", cJSON_CreateArray ());
    for (size_t i = 0; w && i < notes->n_warnings; i++)
        s_jadd (&j, w, NULL, cJSON_CreateString (notes->warnings [i]));
    cJSON *a = s_jadd (&j, o, "advice", cJSON_CreateArray ());
    for (size_t i = 0; a && i < notes->n_advice; i++)
        s_jadd (&j, a, NULL, cJSON_CreateString (notes->advice [i]));
    if (j.failed) {
        cJSON_Delete (o);
        return NULL;
    }
    return o;
}

static int
s_show (cmd_ctx_t *ctx, int argc, char **argv)
{
    s_read_t r = { 0 };
    int rc = s_read_opts (ctx, "dataset show", argc, argv, &r, s_show_usage, 1,
                          "missing NAME[@VERSION]");
    if (rc)
        return rc < 0 ? TY_CMD_EXIT_OK : rc;
    const char *spec = argv [optind];
    ty_dataset_t *ds = NULL;
    if ((rc = s_open (r.data, spec, &ds)) != TY_CMD_EXIT_OK)
        return rc;
    uint64_t *versions = NULL;
    size_t nv = 0;
    if (ty_dataset_versions (r.data, ty_dataset_name (ds), &versions, &nv) != TY_OK)
        nv = 0;     /* removed meanwhile: our open handle still reads it */
    s_notes_t notes = { 0 };
    s_notes (ty_dataset_meta (ds), &notes);
    int exit_code = TY_CMD_EXIT_OK;
    if (notes.failed)
        exit_code = cmd_error ("out of memory");
    else if (ctx->json)
        exit_code = cmd_json_print (s_show_json (ds, versions, nv, &notes));
    else
        s_show_text (spec, ds, versions, nv, &notes);
    s_notes_free (&notes);
    free (versions);
    ty_dataset_destroy (&ds);
    return exit_code;
}

/* ---- export ------------------------------------------------------------------ */

static void
s_export_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard dataset export NAME[@VERSION] [-o FILE] [OPTIONS]\n"
        "\n"
        "Write every sample of a version back in the order of the lines it came\n"
        "from, as CSV (default), TSV or JSON Lines (images: PNG files in class\n"
        "folders under -o DIR).\n"
        "  -o, --output FILE   where to write (default: stdout)\n"
        "  --format F          csv, tsv, jsonl, fasttext, features, annotations,\n"
        "                      interactions or images (default csv, images for an\n"
        "                      image dataset)\n"
        "  --split S           only this split: train, val, test or calib\n"
        "  --no-header         no header line (csv family)\n"
        "  --data DIR          the data directory (see trainyard dataset --help)\n"
        "  -h, --help          this help\n");
}

/* The library writes a file under a temporary name and renames it, which
 * stdout cannot take: export to a private temp file, then copy it out. */
static int
s_export_stdout (ty_dataset_t *ds, const ty_import_opts_t *io)
{
    const char *tmpdir = getenv ("TMPDIR");
    char path [PATH_MAX];
    if (snprintf (path, sizeof path, "%s/trainyard-export-XXXXXX",
                  tmpdir && *tmpdir ? tmpdir : "/tmp") >= (int) sizeof path)
        return ENAMETOOLONG;
    int fd = mkstemp (path);
    if (fd < 0)
        return errno;
    close (fd);
    int rc = ty_import_export (ds, io, path);
    FILE *f = rc == TY_OK ? fopen (path, "r") : NULL;
    if (rc == TY_OK && !f)
        rc = errno;
    if (f) {
        char buf [1 << 16];
        size_t n;
        while ((n = fread (buf, 1, sizeof buf, f)) > 0)
            if (fwrite (buf, 1, n, stdout) != n) {
                rc = errno ? errno : EIO;
                break;
            }
        if (ferror (f))
            rc = EIO;
        fclose (f);
        if (fflush (stdout) != 0 && rc == TY_OK)
            rc = errno ? errno : EIO;
    }
    unlink (path);
    return rc;
}

static int
s_export (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_DATA = 256, OPT_FORMAT, OPT_SPLIT, OPT_NO_HEADER, OPT_JSON };
    static const struct option opts [] = {
        { "output",    required_argument, NULL, 'o' },
        { "format",    required_argument, NULL, OPT_FORMAT },
        { "split",     required_argument, NULL, OPT_SPLIT },
        { "no-header", no_argument,       NULL, OPT_NO_HEADER },
        { "data",      required_argument, NULL, OPT_DATA },
        { "json",      no_argument,       NULL, OPT_JSON },
        { "help",      no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *cmd = "dataset export", *out = NULL, *format = NULL, *split = NULL;
    const char *data_flag = NULL;
    int no_header = 0, c;
    while ((c = getopt_long (argc, argv, ":ho:", opts, NULL)) != -1) {
        switch (c) {
            case 'o':           out = optarg; break;
            case OPT_FORMAT:    format = optarg; break;
            case OPT_SPLIT:     split = optarg; break;
            case OPT_NO_HEADER: no_header = 1; break;
            case OPT_DATA:      data_flag = optarg; break;
            case OPT_JSON:      ctx->json = 1; break;
            case 'h':           s_export_usage (stdout); return TY_CMD_EXIT_OK;
            default:            return cmd_getopt_error (cmd, c, argv);
        }
    }
    if (optind >= argc)
        return cmd_usage_error (cmd, "missing NAME[@VERSION]");
    if (optind < argc - 1)
        return cmd_usage_error (cmd, "unexpected argument '%s'", argv [optind + 1]);
    ty_import_opts_t io;
    ty_import_opts_default (&io);
    if (format && ty_import_format_parse (format, &io.format) != TY_OK)
        return cmd_usage_error (cmd, "--format: unknown format '%s'", format);
    ty_split_t only = TY_SPLIT_NONE;
    if (split && ty_split_parse (split, &only) != TY_OK)
        return cmd_usage_error (cmd, "--split: '%s' is not train, val, test or calib", split);
    if (no_header)
        io.header = false;
    char data [PATH_MAX];
    if (cmd_data_dir (data_flag, data, sizeof data))
        return TY_CMD_EXIT_ERROR;
    ty_dataset_t *ds = NULL;
    int rc = s_open (data, argv [optind], &ds);
    if (rc != TY_CMD_EXIT_OK)
        return rc;
    if (!format && !strcmp (ty_dataset_meta (ds)->kind, "image"))
        io.format = TY_FORMAT_IMAGES;
    if (io.format == TY_FORMAT_IMAGES && !out) {
        ty_dataset_destroy (&ds);
        return cmd_usage_error (cmd, "images are written as files: give -o DIR");
    }
    if (only != TY_SPLIT_NONE)
        io.export_splits = TY_IMPORT_SPLIT_BIT (only);
    int exit_code = TY_CMD_EXIT_OK;
    if (out)
        rc = ty_import_export (ds, &io, out);
    else
        rc = s_export_stdout (ds, &io);
    if (rc != TY_OK)
        exit_code = cmd_error ("dataset export %s: %s", argv [optind],
                               rc == TY_EINVAL ? "this format does not fit the dataset's kind "
                               "(or a TSV field holds a tab or newline)" : ty_strerror (rc));
    else if (out && !ctx->json)
        fprintf (stderr, "exported %s@%" PRIu64 " to %s\n", ty_dataset_name (ds),
                 ty_dataset_version (ds), out);
    ty_dataset_destroy (&ds);
    return exit_code;
}

/* ---- rm -------------------------------------------------------------------------- */

static void
s_rm_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard dataset rm NAME[@VERSION] [--data DIR] [--json]\n"
        "\n"
        "Remove one version, or with a bare NAME every version and the dataset.\n"
        "Readers that have the version open keep reading it until they close it.\n"
        "  --data DIR  the data directory (see trainyard dataset --help)\n"
        "  --json      print {\"removed\": SPEC}\n"
        "  -h, --help  this help\n");
}

static int
s_rm (cmd_ctx_t *ctx, int argc, char **argv)
{
    s_read_t r = { 0 };
    int rc = s_read_opts (ctx, "dataset rm", argc, argv, &r, s_rm_usage, 1,
                          "missing NAME[@VERSION]");
    if (rc)
        return rc < 0 ? TY_CMD_EXIT_OK : rc;
    const char *spec = argv [optind];
    const char *why = NULL;
    char name [TY_DATASET_NAME_MAX + 1];
    uint64_t version = 0;
    if (ty_dataset_spec_parse (spec, name, &version, &why) != TY_OK)
        return cmd_usage_error ("dataset rm", "'%s': %s", spec,
                                why ? why : "not NAME or NAME@VERSION");
    rc = ty_dataset_remove (r.data, spec);
    if (rc == TY_ENOTFOUND)
        return cmd_error ("dataset rm %s: not found in %s", spec, r.data);
    if (rc != TY_OK)
        return cmd_error ("dataset rm %s: %s", spec, ty_strerror (rc));
    if (ctx->json) {
        cJSON *o = cJSON_CreateObject ();
        if (o && !cJSON_AddStringToObject (o, "removed", spec)) {
            cJSON_Delete (o);
            o = NULL;
        }
        return cmd_json_print (o);
    }
    printf ("removed %s\n", spec);
    return TY_CMD_EXIT_OK;
}

/* ---- dispatch ------------------------------------------------------------------ */

static int s_import_cmd (cmd_ctx_t *ctx, int argc, char **argv) { return s_import (ctx, argc, argv, 0); }
static int s_append_cmd (cmd_ctx_t *ctx, int argc, char **argv) { return s_import (ctx, argc, argv, 1); }

static const struct {
    const char *name;
    cmd_fn     *fn;
} s_subcommands [] = {
    { "import", s_import_cmd },
    { "append", s_append_cmd },
    { "list",   s_list },
    { "ls",     s_list },
    { "show",   s_show },
    { "export", s_export },
    { "rm",     s_rm },
};

int
cmd_dataset (cmd_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2) {
        s_usage (stderr);
        return TY_CMD_EXIT_USAGE;
    }
    const char *sub = argv [1];
    if (!strcmp (sub, "-h") || !strcmp (sub, "--help") || !strcmp (sub, "help")) {
        s_usage (stdout);
        return TY_CMD_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof s_subcommands / sizeof s_subcommands [0]; i++)
        if (!strcmp (s_subcommands [i].name, sub)) {
            cmd_getopt_reset ();
            return s_subcommands [i].fn (ctx, argc - 1, argv + 1);
        }
    return cmd_usage_error ("dataset", "unknown command '%s' (import, append, list, show, "
                            "export, rm)", sub);
}

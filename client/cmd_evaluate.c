/*  trainyard evaluate: submit an evaluate job, follow it, print the report.
 *
 *  The job (trainyard-evaluate) writes metrics.json beside the model
 *  version; once it has SUCCEEDED this command reads that file from the
 *  data directory (--data, env TRAINYARD_DATA, else <state dir>/data as
 *  `trainyard up` gives its workers) and prints it with ty_report_print:
 *  per-class table, confusion matrix, latency, gate table, recommendation.
 *  With --json it prints metrics.json itself. When the data directory is
 *  not reachable from here (workers on other machines), the job's outputs
 *  still give the summary.
 *
 *  Gate files: YAML (a mapping of check -> threshold, optionally under a
 *  top-level "gate:" key) or key=value lines; '#' starts a comment. Both
 *  become the JSON object EvaluateSpec.gate carries, checked here with
 *  ty_gate_spec_parse so a misspelt check fails before anything is queued.
 *      min_accuracy: 0.9          min_accuracy = 0.9
 *      max_p95_latency_ms: 20     max_p95_latency_ms = 20
 */
#include "cmd.h"
#include "cmd_cluster.h"
#include "ty_gate.h"
#include "ty_report.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define S_DATA_ENV        "TRAINYARD_DATA"
#define S_GATE_MAX_BYTES  (64u << 10)     /* a gate file is a dozen lines */
#define S_MAX_PARAMS      32
#define S_MAX_PRIORITY    1000            /* proto/job.proto: 0..1000 */
#define S_EXIT_GATE       4               /* --strict: the gate failed */

/* Shared with cmd_model.c (declared there; they belong in cmd.h). */

/* ---- data directory and reports ------------------------------------------ */


/* Reads <data>/models/<name>/<version>/metrics.json of "name[@version]".
 * 0 or a printed error (TY_CMD_EXIT_ERROR). */
int
cmd_evaluate_load_report (const char *data_dir, const char *model_spec, cJSON **doc)
{
    char dir [PATH_MAX], path [PATH_MAX + 32], err [PATH_MAX + 128];
    const char *why = "";
    uint64_t version;
    int rc = ty_report_model_dir (data_dir, model_spec, dir, sizeof dir, &version, &why);
    if (rc == TY_EINVAL || rc == TY_ENOTFOUND)
        return cmd_error ("model %s: %s (data directory %s)", model_spec, why, data_dir);
    if (rc != TY_OK)
        return cmd_error ("model %s: %s", model_spec, ty_strerror (rc));
    snprintf (path, sizeof path, "%s/%s", dir, TY_REPORT_FILE);
    rc = ty_report_load (path, doc, err, sizeof err);
    if (rc == ENOENT)
        return cmd_error ("model %s has not been evaluated (no %s): run trainyard evaluate "
                          "--model %s", model_spec, path, model_spec);
    if (rc != TY_OK)
        return cmd_error ("%s", err);
    return 0;
}

/* ---- gate files ------------------------------------------------------------ */

static char *
s_read_file (const char *path, char *err, size_t errlen)
{
    FILE *f = fopen (path, "re");
    if (!f) {
        snprintf (err, errlen, "%s: %s", path, strerror (errno));
        return NULL;
    }
    char *text = malloc (S_GATE_MAX_BYTES + 1);
    size_t n = text ? fread (text, 1, S_GATE_MAX_BYTES + 1, f) : 0;
    int bad = !text || ferror (f);
    fclose (f);
    if (bad || n > S_GATE_MAX_BYTES) {
        snprintf (err, errlen, "%s: %s", path, bad ? "cannot read it" : "larger than 64 KiB");
        free (text);
        return NULL;
    }
    text [n] = '\0';
    return text;
}

/* A threshold value: a number, or null/~/empty for "not checked". */
static int
s_gate_value (cJSON *obj, const char *key, const char *value, char *err, size_t errlen)
{
    while (isspace ((unsigned char) *value))
        value++;
    size_t len = strlen (value);
    while (len && isspace ((unsigned char) value [len - 1]))
        len--;
    char buf [64];
    if (len >= sizeof buf) {
        snprintf (err, errlen, "%s: value too long", key);
        return -1;
    }
    memcpy (buf, value, len);
    buf [len] = '\0';
    if (!len || !strcmp (buf, "null") || !strcmp (buf, "~")) {
        cJSON_AddNullToObject (obj, key);
        return 0;
    }
    char *end;
    errno = 0;
    double d = strtod (buf, &end);
    if (*end || errno || !isfinite (d)) {
        snprintf (err, errlen, "%s: '%s' is not a number", key, buf);
        return -1;
    }
    if (cJSON_GetObjectItemCaseSensitive (obj, key)) {
        snprintf (err, errlen, "%s is given twice", key);
        return -1;
    }
    return cJSON_AddNumberToObject (obj, key, d) ? 0 : -1;
}

static int
s_gate_keyvalue (const char *text, cJSON *obj, char *err, size_t errlen)
{
    const char *p = text;
    int lineno = 0;
    while (*p) {
        const char *nl = strchr (p, '\n');
        size_t len = nl ? (size_t) (nl - p) : strlen (p);
        lineno++;
        char line [512];
        if (len >= sizeof line) {
            snprintf (err, errlen, "line %d too long", lineno);
            return -1;
        }
        memcpy (line, p, len);
        line [len] = '\0';
        p += len + (nl ? 1 : 0);
        char *hash = strchr (line, '#');
        if (hash)
            *hash = '\0';
        char *s = line;
        while (isspace ((unsigned char) *s))
            s++;
        if (!*s)
            continue;
        char *eq = strchr (s, '=');
        if (!eq) {
            snprintf (err, errlen, "line %d: expected key = value", lineno);
            return -1;
        }
        *eq = '\0';
        char *k = s, *ke = eq;
        while (ke > k && isspace ((unsigned char) ke [-1]))
            *--ke = '\0';
        if (s_gate_value (obj, k, eq + 1, err, errlen))
            return -1;
    }
    return 0;
}

/* A flat YAML mapping of scalars (or one under "gate:"). */
static int
s_gate_yaml (const char *text, cJSON *obj, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize (&parser)) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string (&parser, (const unsigned char *) text, strlen (text));
    if (!yaml_parser_load (&parser, &doc)) {
        snprintf (err, errlen, "YAML: %s at line %zu", parser.problem ? parser.problem : "error",
                  parser.problem_mark.line + 1);
        yaml_parser_delete (&parser);
        return -1;
    }
    int rc = -1;
    yaml_node_t *root = yaml_document_get_root_node (&doc);
    if (!root) {
        rc = 0;                 /* an empty file: an empty gate */
        goto done;
    }
    if (root->type != YAML_MAPPING_NODE) {
        snprintf (err, errlen, "YAML: expected a mapping of check: threshold");
        goto done;
    }
    /* gate: { ... } at the top */
    yaml_node_pair_t *pair = root->data.mapping.pairs.start;
    if (root->data.mapping.pairs.top - pair == 1) {
        yaml_node_t *k = yaml_document_get_node (&doc, pair->key);
        yaml_node_t *v = yaml_document_get_node (&doc, pair->value);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp ((char *) k->data.scalar.value, "gate")
            && v && v->type == YAML_MAPPING_NODE)
            root = v;
    }
    for (pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = yaml_document_get_node (&doc, pair->key);
        yaml_node_t *v = yaml_document_get_node (&doc, pair->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
            snprintf (err, errlen, "YAML: line %zu: expected check: number",
                      (k ? k->start_mark.line : 0) + 1);
            goto done;
        }
        if (s_gate_value (obj, (char *) k->data.scalar.value, (char *) v->data.scalar.value,
                          err, errlen))
            goto done;
    }
    rc = 0;
done:
    yaml_document_delete (&doc);
    yaml_parser_delete (&parser);
    return rc;
}

/* The gate file as the JSON text of EvaluateSpec.gate (caller frees), or
 * NULL with err set. */
static char *
s_gate_json (const char *path, char *err, size_t errlen)
{
    char *text = s_read_file (path, err, errlen);
    if (!text)
        return NULL;
    /* key=value when every line that says something has '=' and no ':' */
    int keyvalue = 1, any = 0;
    for (const char *p = text; *p && keyvalue;) {
        const char *nl = strchr (p, '\n');
        size_t len = nl ? (size_t) (nl - p) : strlen (p);
        const char *hash = memchr (p, '#', len);
        size_t used = hash ? (size_t) (hash - p) : len;
        int blank = 1, eq = 0, colon = 0;
        for (size_t i = 0; i < used; i++) {
            blank &= isspace ((unsigned char) p [i]) != 0;
            eq |= p [i] == '=';
            colon |= p [i] == ':';
        }
        if (!blank) {
            any = 1;
            keyvalue = eq && !colon;
        }
        p += len + (nl ? 1 : 0);
    }
    cJSON *obj = cJSON_CreateObject ();
    char *json = NULL;
    char why [256] = "";
    if (obj && !(any && keyvalue ? s_gate_keyvalue (text, obj, why, sizeof why)
                                 : s_gate_yaml (text, obj, why, sizeof why)))
        json = cJSON_PrintUnformatted (obj);
    else if (!obj)
        snprintf (why, sizeof why, "out of memory");
    cJSON_Delete (obj);
    free (text);
    if (!json) {
        snprintf (err, errlen, "%s: %s", path, why);
        return NULL;
    }
    ty_gate_spec_t spec;
    char gerr [TY_GATE_ERR_MAX];
    if (ty_gate_spec_parse (json, &spec, gerr, sizeof gerr) != TY_OK) {
        snprintf (err, errlen, "%s: %s", path, gerr);
        free (json);
        return NULL;
    }
    return json;
}

/* ---- the command ------------------------------------------------------------ */

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard evaluate --model NAME[@V] [OPTIONS]\n"
        "\n"
        "Evaluate a model version (a job for trainyard-evaluate): metrics by task,\n"
        "latency, quality gate and a recommendation, written to metrics.json beside\n"
        "the model; then print the report.\n"
        "\n"
        "  --model NAME[@V]      the model version (default: the latest)\n"
        "  --dataset NAME[@V]    data to evaluate on (default: the model's training dataset)\n"
        "  --split S             test (default), val, train or calib\n"
        "  --gate FILE           thresholds, YAML or key=value lines: min_accuracy,\n"
        "                        min_class_recall, min_macro_f1, min_roc_auc,\n"
        "                        max_p95_latency_ms, max_memory_mb, min_high_conf_share,\n"
        "                        max_accuracy_regression, high_conf_threshold\n"
        "  --baseline NAME@V     compare with this version (max_accuracy_regression)\n"
        "  --confidence P        top probability counted as high confidence (default 0.9)\n"
        "  --latency-samples N   single-sample predictions timed (default 200)\n"
        "  --top-k K             ranking cut-off (default 10)\n"
        "  --negatives N         ranking: sampled negatives per positive (default 99)\n"
        "  --batch-size N        inference batch (default 256)\n"
        "  --param KEY=VALUE     threads, label_threshold, warmup, fit_check_samples,\n"
        "                        max_confusions (repeatable)\n"
        "  --priority N          0..1000 (default 0)\n"
        "  --data DIR            where to read metrics.json (env " S_DATA_ENV ", else\n"
        "                        <state dir>/data)\n"
        "  --all-classes         every class in the per-class table\n"
        "  --strict              exit %d when the gate fails (default: 0, a result)\n"
        "  --detach              print the job id and return\n"
        "  --json                print metrics.json instead of the report\n"
        "  --show                no job: print the report of the version's last\n"
        "                        evaluation (e.g. a pipeline's evaluate step)\n"
        "  -h, --help            this help\n", S_EXIT_GATE);
}

typedef struct {
    const char *model, *dataset, *split, *gate_file, *baseline, *data_flag;
    double   confidence;
    long     latency, top_k, negatives, batch, priority;
    const char *keys [S_MAX_PARAMS], *values [S_MAX_PARAMS];
    char    *kv [S_MAX_PARAMS];
    size_t   n_params;
    int      json, detach, strict, all_classes, show;
} s_req_t;

static const char *
s_output (const Ty__JobInfo *job, const char *key)
{
    for (size_t i = 0; i < job->n_outputs; i++)
        if (job->outputs [i]->key && !strcmp (job->outputs [i]->key, key))
            return job->outputs [i]->value ? job->outputs [i]->value : "";
    return NULL;
}

/* --show: the report of the version's last evaluation (its metrics.json,
 * e.g. written by a pipeline's evaluate step), without running a job. */
static int
s_show (const s_req_t *req)
{
    char data [PATH_MAX];
    if (cmd_data_dir (req->data_flag, data, sizeof data))
        return TY_CMD_EXIT_ERROR;
    cJSON *doc = NULL;
    int rc = cmd_evaluate_load_report (data, req->model, &doc);
    if (rc)
        return rc;
    if (req->json)
        return cmd_json_print (doc);        /* deletes doc */
    ty_report_print_opts_t po = { 0, req->all_classes };
    ty_report_print (stdout, doc, &po);
    cJSON_Delete (doc);
    return TY_CMD_EXIT_OK;
}

/* After SUCCEEDED: the report from metrics.json, or the outputs' summary. */
static int
s_print_result (const s_req_t *req, const Ty__JobInfo *job)
{
    const char *model = s_output (job, "model");
    const char *gate = s_output (job, "gate");
    char data [PATH_MAX] = "";
    cJSON *doc = NULL;
    int have_data = cmd_data_dir (req->data_flag, data, sizeof data) == 0;
    if (have_data && model) {
        char dir [PATH_MAX], path [PATH_MAX + 32], err [PATH_MAX + 128];
        uint64_t v;
        if (ty_report_model_dir (data, model, dir, sizeof dir, &v, NULL) == TY_OK) {
            snprintf (path, sizeof path, "%s/%s", dir, TY_REPORT_FILE);
            if (ty_report_load (path, &doc, err, sizeof err) != TY_OK)
                doc = NULL;
        }
    }
    /* the worker's own path, when this machine sees it the same way */
    const char *wpath = s_output (job, "metrics_path");
    if (!doc && wpath && ty_report_load (wpath, &doc, NULL, 0) != TY_OK)
        doc = NULL;
    int rc = TY_CMD_EXIT_OK;
    if (doc && req->json)
        rc = cmd_json_print (doc);          /* deletes doc */
    else if (doc) {
        ty_report_print_opts_t po = { 0, req->all_classes };
        ty_report_print (stdout, doc, &po);
        cJSON_Delete (doc);
    }
    else {
        const char *summary = s_output (job, "summary");
        fprintf (stderr, "trainyard: metrics.json of %s is not readable here (data directory "
                 "%s); the job's outputs:\n", model ? model : "the model", data);
        if (req->json) {
            cJSON *o = cmd_json_job (job);
            rc = cmd_json_print (o);
        }
        else {
            printf ("%s\n", summary ? summary : "(no summary)");
            for (size_t i = 0; i < job->n_outputs; i++)
                printf ("  %-18s %s\n", job->outputs [i]->key, job->outputs [i]->value);
        }
    }
    if (req->strict && gate && !strcmp (gate, "FAIL") && rc == TY_CMD_EXIT_OK)
        rc = S_EXIT_GATE;
    return rc;
}

static int
s_run (cmd_ctx_t *ctx, s_req_t *req, const char *gate_json)
{
    Ty__EvaluateSpec ev = TY__EVALUATE_SPEC__INIT;
    ev.model = (char *) req->model;
    ev.dataset = (char *) (req->dataset ? req->dataset : "");
    ev.split = (char *) (req->split ? req->split : "");
    ev.gate = (char *) (gate_json ? gate_json : "");
    ev.baseline = (char *) (req->baseline ? req->baseline : "");
    ev.confidence_threshold = req->confidence;
    ev.latency_samples = (uint32_t) req->latency;
    ev.top_k = (uint32_t) req->top_k;
    ev.negatives = (uint32_t) req->negatives;
    ev.batch_size = (uint32_t) req->batch;
    Ty__EvaluateSpec__ParamsEntry entries [S_MAX_PARAMS];
    Ty__EvaluateSpec__ParamsEntry *eptr [S_MAX_PARAMS];
    for (size_t i = 0; i < req->n_params; i++) {
        ty__evaluate_spec__params_entry__init (&entries [i]);
        entries [i].key = (char *) req->keys [i];
        entries [i].value = (char *) req->values [i];
        eptr [i] = &entries [i];
    }
    ev.params = eptr;
    ev.n_params = req->n_params;
    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    spec.kind_case = TY__JOB_SPEC__KIND_EVALUATE;
    spec.evaluate = &ev;
    spec.priority = (uint32_t) req->priority;
    char name [160];
    snprintf (name, sizeof name, "evaluate %s", req->model);
    spec.name = name;

    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    int exit_code = TY_CMD_EXIT_OK;
    char id [TY_ID_LEN + 1];
    ty_submit_item_t item = { .spec = &spec };
    /* watch = 1 subscribes in the same round trip: no event is missed. With
     * --json the events are not printed (stdout is metrics.json alone). */
    int follow = !req->detach;
    int rc = ty_client_submit_batch (client, &item, 1, follow && !req->json, ctx->timeout_ms, id);
    if (rc != TY_OK) {
        exit_code = cmd_client_error (client, rc, "evaluate: submit");
        goto done;
    }
    if (req->detach) {
        if (req->json) {
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
    if (req->json) {
        Ty__Event *last = NULL;
        rc = ty_client_watch (client, id, -1, NULL, NULL, &last);
        ty_client_free_msg (last);
        if (rc != TY_OK) {
            exit_code = cmd_client_error (client, rc, "watch %s", id);
            goto done;
        }
    }
    else {
        fprintf (stderr, "job %s: evaluating %s\n", id, req->model);
        char *ids [1] = { id };
        exit_code = cmd_watch_jobs (ctx, client, ids, 1, 1);
        if (exit_code != TY_CMD_EXIT_OK)
            goto done;          /* failed (reason printed), cancelled or interrupted */
        printf ("\n");
    }
    Ty__JobInfo *job = NULL;
    rc = ty_client_status (client, id, ctx->timeout_ms, &job);
    if (rc != TY_OK) {
        exit_code = cmd_client_error (client, rc, "status %s", id);
        goto done;
    }
    if (strcmp (job->state, "SUCCEEDED") != 0) {
        /* --json path: report the failure on stderr, the job as JSON on stdout */
        fprintf (stderr, "trainyard: job %s %s%s%s\n", id, job->state,
                 job->error && *job->error ? ": " : "", job->error ? job->error : "");
        cmd_json_print (cmd_json_job (job));
        exit_code = !strcmp (job->state, "CANCELLED") ? TY_CMD_EXIT_CANCELLED : TY_CMD_EXIT_ERROR;
    }
    else
        exit_code = s_print_result (req, job);
    ty_client_free_msg (job);
done:
    ty_client_destroy (&client);
    return exit_code;
}

int
cmd_evaluate (cmd_ctx_t *ctx, int argc, char **argv)
{
    const char *cmd = "evaluate";
    enum { OPT_MODEL = 256, OPT_DATASET, OPT_SPLIT, OPT_GATE, OPT_BASELINE, OPT_CONF,
           OPT_LATENCY, OPT_TOPK, OPT_NEG, OPT_BATCH, OPT_PARAM, OPT_PRIO, OPT_DATA,
           OPT_ALL, OPT_STRICT, OPT_DETACH, OPT_JSON, OPT_SHOW };
    static const struct option opts [] = {
        { "model",           required_argument, NULL, OPT_MODEL },
        { "dataset",         required_argument, NULL, OPT_DATASET },
        { "split",           required_argument, NULL, OPT_SPLIT },
        { "gate",            required_argument, NULL, OPT_GATE },
        { "baseline",        required_argument, NULL, OPT_BASELINE },
        { "confidence",      required_argument, NULL, OPT_CONF },
        { "latency-samples", required_argument, NULL, OPT_LATENCY },
        { "top-k",           required_argument, NULL, OPT_TOPK },
        { "negatives",       required_argument, NULL, OPT_NEG },
        { "batch-size",      required_argument, NULL, OPT_BATCH },
        { "param",           required_argument, NULL, OPT_PARAM },
        { "priority",        required_argument, NULL, OPT_PRIO },
        { "data",            required_argument, NULL, OPT_DATA },
        { "all-classes",     no_argument,       NULL, OPT_ALL },
        { "strict",          no_argument,       NULL, OPT_STRICT },
        { "detach",          no_argument,       NULL, OPT_DETACH },
        { "json",            no_argument,       NULL, OPT_JSON },
        { "show",            no_argument,       NULL, OPT_SHOW },
        { "help",            no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    s_req_t req;
    memset (&req, 0, sizeof req);
    req.json = ctx->json;
    int c, exit_code = TY_CMD_EXIT_OK;
    char *gate_json = NULL;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case OPT_MODEL:    req.model = optarg; break;
        case OPT_DATASET:  req.dataset = optarg; break;
        case OPT_SPLIT:    req.split = optarg; break;
        case OPT_GATE:     req.gate_file = optarg; break;
        case OPT_BASELINE: req.baseline = optarg; break;
        case OPT_DATA:     req.data_flag = optarg; break;
        case OPT_CONF:
            errno = 0;
            req.confidence = strtod (optarg, &end);
            if (!*optarg || *end || errno || !(req.confidence > 0 && req.confidence <= 1)) {
                exit_code = cmd_usage_error (cmd, "--confidence: a probability in (0, 1]");
                goto done;
            }
            break;
        case OPT_LATENCY:
            if (cmd_parse_long (optarg, 1, 100000, &req.latency)) {
                exit_code = cmd_usage_error (cmd, "--latency-samples: 1 to 100000");
                goto done;
            }
            break;
        case OPT_TOPK:
            if (cmd_parse_long (optarg, 1, 10000, &req.top_k)) {
                exit_code = cmd_usage_error (cmd, "--top-k: 1 to 10000");
                goto done;
            }
            break;
        case OPT_NEG:
            if (cmd_parse_long (optarg, 1, 1000, &req.negatives)) {
                exit_code = cmd_usage_error (cmd, "--negatives: 1 to 1000");
                goto done;
            }
            break;
        case OPT_BATCH:
            if (cmd_parse_long (optarg, 1, 65536, &req.batch)) {
                exit_code = cmd_usage_error (cmd, "--batch-size: 1 to 65536");
                goto done;
            }
            break;
        case OPT_PRIO:
            if (cmd_parse_long (optarg, 0, S_MAX_PRIORITY, &req.priority)) {
                exit_code = cmd_usage_error (cmd, "--priority: 0 to %d", S_MAX_PRIORITY);
                goto done;
            }
            break;
        case OPT_PARAM: {
            const char *eq = strchr (optarg, '=');
            if (!eq || eq == optarg) {
                exit_code = cmd_usage_error (cmd, "--param: KEY=VALUE, not '%s'", optarg);
                goto done;
            }
            if (req.n_params == S_MAX_PARAMS) {
                exit_code = cmd_usage_error (cmd, "--param: at most %d", S_MAX_PARAMS);
                goto done;
            }
            char *kv = strdup (optarg);
            if (!kv) {
                exit_code = cmd_error ("out of memory");
                goto done;
            }
            kv [eq - optarg] = '\0';
            req.kv [req.n_params] = kv;
            req.keys [req.n_params] = kv;
            req.values [req.n_params] = kv + (eq - optarg) + 1;
            req.n_params++;
            break;
        }
        case OPT_ALL:    req.all_classes = 1; break;
        case OPT_STRICT: req.strict = 1; break;
        case OPT_DETACH: req.detach = 1; break;
        case OPT_JSON:   req.json = 1; break;
        case OPT_SHOW:   req.show = 1; break;
        case 'h':
            s_usage (stdout);
            goto done;
        default:
            exit_code = cmd_getopt_error (cmd, c, argv);
            goto done;
        }
    }
    if (optind < argc) {
        exit_code = cmd_usage_error (cmd, "unexpected argument '%s'", argv [optind]);
        goto done;
    }
    if (!req.model) {
        exit_code = cmd_usage_error (cmd, "--model NAME[@VERSION] is required");
        goto done;
    }
    if (req.show) {
        exit_code = s_show (&req);
        goto done;
    }
    char name [TY_REPORT_MODEL_NAME_MAX + 1];
    uint64_t version;
    const char *why = "";
    if (ty_report_model_spec_parse (req.model, name, &version, &why) != TY_OK) {
        exit_code = cmd_usage_error (cmd, "--model '%s': %s", req.model, why);
        goto done;
    }
    if (req.baseline && ty_report_model_spec_parse (req.baseline, name, &version, &why) != TY_OK) {
        exit_code = cmd_usage_error (cmd, "--baseline '%s': %s", req.baseline, why);
        goto done;
    }
    if (req.split && strcmp (req.split, "test") && strcmp (req.split, "val")
        && strcmp (req.split, "train") && strcmp (req.split, "calib")) {
        exit_code = cmd_usage_error (cmd, "--split: test, val, train or calib");
        goto done;
    }
    if (req.gate_file) {
        char err [512];
        gate_json = s_gate_json (req.gate_file, err, sizeof err);
        if (!gate_json) {
            exit_code = cmd_usage_error (cmd, "--gate %s", err);
            goto done;
        }
    }
    exit_code = s_run (ctx, &req, gate_json);
done:
    free (gate_json);
    for (size_t i = 0; i < req.n_params; i++)
        free (req.kv [i]);
    return exit_code;
}

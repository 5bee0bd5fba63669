/*  trainyard train: submit a train job and follow it to its end.
 *
 *      trainyard train --dataset news --model textclf --name newsclf \
 *                      --epochs 25 --lr 0.5 --dim 50 --word-ngrams 2
 *      trainyard train --config newsclf.yaml [--epochs 5 ...]
 *
 *  A YAML config carries what the flags do, grouped as the workflows write
 *  it (every group is optional, group names are free):
 *
 *      dataset: news@3
 *      model: textclf
 *      name: newsclf
 *      architecture: { dim: 100, word_ngrams: 2, bucket: 2000000 }
 *      training:     { epochs: 50, lr: 0.1, patience: 5, optimizer: sgd }
 *      resources:    { threads: 4, memory_cap_mb: 280 }
 *
 *  Scalars become hyperparameters by name; a list (hidden: [64, 32])
 *  becomes "64,32". Flags given on the command line win over the file.
 *  Known hyperparameters travel in TrainSpec's typed fields; anything else,
 *  and any value a typed field cannot carry (0, negative), in its params
 *  map, so the worker is the one judge of what is valid.
 *
 *  Then it watches like `trainyard watch` (progress bar, epoch, loss,
 *  validation metric, ETA) and prints the model version it produced.
 *  Exit codes as `watch`: 0 succeeded, 1 failed, 2 usage, 3 cancelled.
 */
#include "cmd.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define S_MAX_PARAMS     128     /* distinct hyperparameters in one job */
#define S_MAX_HIDDEN     8       /* as TY_TORCH_MAX_LAYERS */
#define S_MAX_DEPTH      8       /* nesting of a YAML config */
#define S_VALUE_MAX      1024

typedef struct {
    char *key;
    char *value;
} s_kv_t;

typedef struct {
    const char *dataset, *model, *name;     /* borrowed from argv or the kv list */
    s_kv_t  kv [S_MAX_PARAMS];              /* hyperparameters, last set wins */
    size_t  nkv;
    long    priority;
    long    max_attempts;
    int     no_watch;
    /* config-file owned strings */
    char   *cfg_dataset, *cfg_model, *cfg_name;
} s_req_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard train --dataset D --model KIND --name M [OPTIONS]\n"
        "       trainyard train --config FILE.yaml [OPTIONS]\n"
        "\n"
        "Train a model on a dataset version and follow the job; the result is the\n"
        "next version of models/M/. KIND: textclf, mlp, cnn, ncf.\n"
        "\n"
        "  --dataset D          dataset name, or name@version (default: the latest)\n"
        "  --model KIND         textclf | mlp | cnn | ncf\n"
        "  --name M             model name\n"
        "  --config FILE        a YAML file with all of the above and below\n"
        "\n"
        "Hyperparameters (defaults per kind; fastText's for textclf):\n"
        "  --epochs N  --lr X  --batch-size N  --optimizer sgd|adam|adamw\n"
        "  --patience N         stop after N epochs without a better val metric\n"
        "  --dim N  --word-ngrams N  --minn N  --maxn N  --bucket N  --min-count N\n"
        "  --hidden 64,32  --dropout X  --depth N  --width N  --negatives N\n"
        "  --seed N  --deterministic  --threads N  --memory-cap-mb N\n"
        "  --param KEY=VALUE    any other (max_features, lower, punct, multilabel,\n"
        "                       regression, weight_decay, mlp_dim, separable, ...)\n"
        "\n"
        "  --priority P         0..1000 (default 0)\n"
        "  --max-attempts N     tries before FAILED; a retry resumes from the last\n"
        "                       epoch's checkpoint (default: the broker's)\n"
        "  --no-watch           print the job id and return\n"
        "  --json               JSON output\n"
        "  -h, --help           this help\n");
}

/* ---- hyperparameters ----------------------------------------------------- */

static int
s_set (s_req_t *req, const char *key, const char *value)
{
    for (size_t i = 0; i < req->nkv; i++)
        if (!strcmp (req->kv [i].key, key)) {
            char *v = strdup (value);
            if (!v)
                return -1;
            free (req->kv [i].value);
            req->kv [i].value = v;
            return 0;
        }
    if (req->nkv == S_MAX_PARAMS)
        return -1;
    char *k = strdup (key), *v = strdup (value);
    if (!k || !v) {
        free (k);
        free (v);
        return -1;
    }
    req->kv [req->nkv].key = k;
    req->kv [req->nkv++].value = v;
    return 0;
}

static void
s_req_free (s_req_t *req)
{
    for (size_t i = 0; i < req->nkv; i++) {
        free (req->kv [i].key);
        free (req->kv [i].value);
    }
    req->nkv = 0;
    free (req->cfg_dataset);
    free (req->cfg_model);
    free (req->cfg_name);
}

/* "word-ngrams" and "wordNgrams" are word_ngrams. */
static void
s_norm_key (const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 2 < len; p++) {
        if (*p == '-')
            out [o++] = '_';
        else if (*p >= 'A' && *p <= 'Z' && p != in) {
            out [o++] = '_';
            out [o++] = (char) (*p - 'A' + 'a');
        }
        else
            out [o++] = *p;
    }
    out [o] = '\0';
}

static int
s_pos_u64 (const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull (s, &end, 10);
    if (!*s || *s == '-' || *end || errno || v == 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Moves the known hyperparameters with values a typed field can hold into
 * the spec; the rest goes to the params map. The spec points into req. */
static int
s_fill_spec (s_req_t *req, Ty__TrainSpec *t, Ty__TrainSpec__ParamsEntry *entries,
             Ty__TrainSpec__ParamsEntry **params, uint32_t *hidden)
{
    static const struct {
        const char *key;
        size_t      off;
        uint64_t    max;
        int         is64;
    } u [] = {
#define S_F(k, f, m, w) { k, offsetof (Ty__TrainSpec, f), m, w }
        S_F ("epochs", epochs, UINT32_MAX, 0),
        S_F ("dim", dim, UINT32_MAX, 0),
        S_F ("word_ngrams", word_ngrams, UINT32_MAX, 0),
        S_F ("minn", minn, UINT32_MAX, 0),
        S_F ("maxn", maxn, UINT32_MAX, 0),
        S_F ("bucket", bucket, UINT64_MAX, 1),
        S_F ("min_count", min_count, UINT32_MAX, 0),
        S_F ("depth", depth, UINT32_MAX, 0),
        S_F ("width", width, UINT32_MAX, 0),
        S_F ("batch_size", batch_size, UINT32_MAX, 0),
        S_F ("patience", patience, UINT32_MAX, 0),
        S_F ("threads", threads, UINT32_MAX, 0),
        S_F ("seed", seed, UINT64_MAX, 1),
        S_F ("memory_cap_mb", memory_cap_mb, UINT32_MAX, 0),
        S_F ("negatives", negatives, UINT32_MAX, 0),
#undef S_F
    };
    t->params = params;
    t->n_params = 0;
    for (size_t i = 0; i < req->nkv; i++) {
        const char *k = req->kv [i].key, *v = req->kv [i].value;
        int typed = 0;
        for (size_t j = 0; j < sizeof u / sizeof u [0] && !typed; j++) {
            uint64_t x;
            if (strcmp (k, u [j].key) || s_pos_u64 (v, u [j].max, &x))
                continue;
            if (u [j].is64)
                *(uint64_t *) ((char *) t + u [j].off) = x;
            else
                *(uint32_t *) ((char *) t + u [j].off) = (uint32_t) x;
            typed = 1;
        }
        if (!typed && (!strcmp (k, "lr") || !strcmp (k, "dropout"))) {
            char *end;
            double d = strtod (v, &end);
            /* 0 is "unset" in proto3: an explicit 0 travels as text */
            if (*v && !*end && isfinite (d) && d != 0) {
                if (!strcmp (k, "lr"))
                    t->lr = d;
                else
                    t->dropout = d;
                typed = 1;
            }
        }
        if (!typed && !strcmp (k, "optimizer")) {
            t->optimizer = req->kv [i].value;
            typed = 1;
        }
        if (!typed && !strcmp (k, "deterministic") && !strcmp (v, "true")) {
            t->deterministic = 1;
            typed = 1;
        }
        if (!typed && !strcmp (k, "hidden")) {
            size_t n = 0;
            const char *p = v;
            int ok = *p != '\0';
            while (ok && *p) {
                char *end;
                errno = 0;
                unsigned long x = strtoul (p, &end, 10);
                ok = end != p && !errno && x > 0 && x <= UINT32_MAX && n < S_MAX_HIDDEN
                  && *p != '-';
                if (ok)
                    hidden [n++] = (uint32_t) x;
                p = end;
                if (ok && *p == ',')
                    p++;
                else if (*p)
                    ok = 0;
            }
            if (ok) {
                t->hidden = hidden;
                t->n_hidden = n;
                typed = 1;
            }
        }
        if (typed)
            continue;
        Ty__TrainSpec__ParamsEntry e = TY__TRAIN_SPEC__PARAMS_ENTRY__INIT;
        entries [t->n_params] = e;
        entries [t->n_params].key = req->kv [i].key;
        entries [t->n_params].value = req->kv [i].value;
        params [t->n_params] = &entries [t->n_params];
        t->n_params++;
    }
    return 0;
}

/* ---- YAML config ------------------------------------------------------------- */

/* Walks a node: scalars under a key become hyperparameters (or the job's
 * dataset/model/name at the top), sequences of scalars become "a,b,c",
 * nested mappings are flattened. */
static int
s_yaml_node (s_req_t *req, yaml_document_t *doc, yaml_node_t *node, const char *key, int depth,
             const char *file)
{
    if (depth > S_MAX_DEPTH) {
        fprintf (stderr, "trainyard train: %s: nested too deep\n", file);
        return -1;
    }
    char nkey [128] = "";
    if (key)
        s_norm_key (key, nkey, sizeof nkey);
    switch (node->type) {
    case YAML_MAPPING_NODE:
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
             p < node->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node (doc, p->key);
            yaml_node_t *v = yaml_document_get_node (doc, p->value);
            if (!k || !v || k->type != YAML_SCALAR_NODE) {
                fprintf (stderr, "trainyard train: %s: keys must be plain words\n", file);
                return -1;
            }
            if (s_yaml_node (req, doc, v, (const char *) k->data.scalar.value, depth + 1, file))
                return -1;
        }
        return 0;
    case YAML_SEQUENCE_NODE: {
        char buf [S_VALUE_MAX] = "";
        size_t used = 0;
        for (yaml_node_item_t *i = node->data.sequence.items.start;
             i < node->data.sequence.items.top; i++) {
            yaml_node_t *v = yaml_document_get_node (doc, *i);
            if (!v || v->type != YAML_SCALAR_NODE) {
                fprintf (stderr, "trainyard train: %s: '%s' must be a list of values\n", file,
                         nkey);
                return -1;
            }
            int n = snprintf (buf + used, sizeof buf - used, "%s%s", used ? "," : "",
                              (const char *) v->data.scalar.value);
            if (n < 0 || (size_t) n >= sizeof buf - used) {
                fprintf (stderr, "trainyard train: %s: '%s' is too long\n", file, nkey);
                return -1;
            }
            used += (size_t) n;
        }
        return s_set (req, nkey, buf);
    }
    case YAML_SCALAR_NODE: {
        const char *v = (const char *) node->data.scalar.value;
        if (!key) {
            fprintf (stderr, "trainyard train: %s: not a mapping of settings\n", file);
            return -1;
        }
        char **slot = depth == 1 && !strcmp (nkey, "dataset") ? &req->cfg_dataset
                    : depth == 1 && (!strcmp (nkey, "model") || !strcmp (nkey, "model_kind")
                                     || !strcmp (nkey, "kind")) ? &req->cfg_model
                    : depth == 1 && (!strcmp (nkey, "name") || !strcmp (nkey, "model_name"))
                      ? &req->cfg_name : NULL;
        if (slot) {
            free (*slot);
            return (*slot = strdup (v)) ? 0 : -1;
        }
        if (depth == 1 && !strcmp (nkey, "priority"))
            return cmd_parse_long (v, 0, 1000, &req->priority);
        if (depth == 1 && !strcmp (nkey, "max_attempts"))
            return cmd_parse_long (v, 1, 1000, &req->max_attempts);
        return s_set (req, nkey, v);
    }
    default:
        return 0;
    }
}

static int
s_load_config (s_req_t *req, const char *path)
{
    FILE *f = fopen (path, "rb");
    if (!f) {
        fprintf (stderr, "trainyard train: %s: %s\n", path, strerror (errno));
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = -1;
    if (!yaml_parser_initialize (&parser)) {
        fclose (f);
        fprintf (stderr, "trainyard train: out of memory\n");
        return -1;
    }
    yaml_parser_set_input_file (&parser, f);
    if (!yaml_parser_load (&parser, &doc))
        fprintf (stderr, "trainyard train: %s:%zu: %s\n", path,
                 (size_t) parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "not YAML");
    else {
        yaml_node_t *root = yaml_document_get_root_node (&doc);
        if (!root || root->type != YAML_MAPPING_NODE)
            fprintf (stderr, "trainyard train: %s: expected a mapping of settings\n", path);
        else
            rc = s_yaml_node (req, &doc, root, NULL, 0, path);
        yaml_document_delete (&doc);
    }
    yaml_parser_delete (&parser);
    fclose (f);
    return rc;
}

/* ---- result ------------------------------------------------------------------ */

static int
s_print_result (cmd_ctx_t *ctx, ty_client_t *client, const char *id)
{
    Ty__JobInfo *info = NULL;
    int rc = ty_client_status (client, id, ctx->timeout_ms, &info);
    if (rc != TY_OK)
        return cmd_client_error (client, rc, "status %s", id);
    if (ctx->json) {
        int r = cmd_json_print (cmd_json_job (info));
        ty_client_free_msg (info);
        return r;
    }
    const char *model = "", *path = "", *metric = "", *best = "", *epochs = "", *best_epoch = "";
    for (size_t i = 0; i < info->n_outputs; i++) {
        const char *k = info->outputs [i]->key, *v = info->outputs [i]->value;
        if (!strcmp (k, "model")) model = v;
        else if (!strcmp (k, "path")) path = v;
        else if (!strcmp (k, "metric")) metric = v;
        else if (!strcmp (k, "best_metric")) best = v;
        else if (!strcmp (k, "epochs")) epochs = v;
        else if (!strcmp (k, "best_epoch")) best_epoch = v;
    }
    if (*model)
        printf ("model %s  val %s %s (epoch %s of %s)\n  %s\n", model, metric, best, best_epoch,
                epochs, path);
    ty_client_free_msg (info);
    return TY_CMD_EXIT_OK;
}

int
cmd_train (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_DATASET = 256, OPT_MODEL, OPT_NAME, OPT_CONFIG, OPT_PARAM, OPT_PRIO,
           OPT_ATTEMPTS, OPT_NO_WATCH, OPT_JSON, OPT_DETERMINISTIC, OPT_HYPER };
    /* every hyperparameter flag is OPT_HYPER; its name is the key */
    static const struct option opts [] = {
        { "dataset",       required_argument, NULL, OPT_DATASET },
        { "model",         required_argument, NULL, OPT_MODEL },
        { "name",          required_argument, NULL, OPT_NAME },
        { "config",        required_argument, NULL, OPT_CONFIG },
        { "param",         required_argument, NULL, OPT_PARAM },
        { "priority",      required_argument, NULL, OPT_PRIO },
        { "max-attempts",  required_argument, NULL, OPT_ATTEMPTS },
        { "no-watch",      no_argument,       NULL, OPT_NO_WATCH },
        { "json",          no_argument,       NULL, OPT_JSON },
        { "deterministic", no_argument,       NULL, OPT_DETERMINISTIC },
        { "epochs",        required_argument, NULL, OPT_HYPER },
        { "lr",            required_argument, NULL, OPT_HYPER },
        { "dim",           required_argument, NULL, OPT_HYPER },
        { "word-ngrams",   required_argument, NULL, OPT_HYPER },
        { "minn",          required_argument, NULL, OPT_HYPER },
        { "maxn",          required_argument, NULL, OPT_HYPER },
        { "bucket",        required_argument, NULL, OPT_HYPER },
        { "min-count",     required_argument, NULL, OPT_HYPER },
        { "hidden",        required_argument, NULL, OPT_HYPER },
        { "dropout",       required_argument, NULL, OPT_HYPER },
        { "depth",         required_argument, NULL, OPT_HYPER },
        { "width",         required_argument, NULL, OPT_HYPER },
        { "optimizer",     required_argument, NULL, OPT_HYPER },
        { "batch-size",    required_argument, NULL, OPT_HYPER },
        { "patience",      required_argument, NULL, OPT_HYPER },
        { "threads",       required_argument, NULL, OPT_HYPER },
        { "seed",          required_argument, NULL, OPT_HYPER },
        { "memory-cap-mb", required_argument, NULL, OPT_HYPER },
        { "negatives",     required_argument, NULL, OPT_HYPER },
        { "help",          no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    s_req_t req;
    memset (&req, 0, sizeof req);
    /* flags win over the config file: read the file first, flags after */
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv [i], "--config") && i + 1 < argc)
            config = argv [i + 1];
        else if (!strncmp (argv [i], "--config=", 9))
            config = argv [i] + 9;
        else if (!strcmp (argv [i], "-h") || !strcmp (argv [i], "--help")) {
            s_usage (stdout);
            return TY_CMD_EXIT_OK;
        }
    }
    int exit_code = TY_CMD_EXIT_OK;
    if (config && s_load_config (&req, config) != 0) {
        s_req_free (&req);
        return TY_CMD_EXIT_USAGE;
    }
    req.dataset = req.cfg_dataset;
    req.model = req.cfg_model;
    req.name = req.cfg_name;
    int c, idx = 0;
    while (exit_code == TY_CMD_EXIT_OK
       && (c = getopt_long (argc, argv, ":h", opts, &idx)) != -1) {
        switch (c) {
        case OPT_DATASET: req.dataset = optarg; break;
        case OPT_MODEL:   req.model = optarg; break;
        case OPT_NAME:    req.name = optarg; break;
        case OPT_CONFIG:  break;
        case OPT_NO_WATCH: req.no_watch = 1; break;
        case OPT_JSON:    ctx->json = 1; break;
        case OPT_DETERMINISTIC:
            if (s_set (&req, "deterministic", "true"))
                exit_code = cmd_error ("out of memory");
            break;
        case OPT_PRIO:
            if (cmd_parse_long (optarg, 0, 1000, &req.priority))
                exit_code = cmd_usage_error ("train", "--priority: '%s' is not in 0..1000", optarg);
            break;
        case OPT_ATTEMPTS:
            if (cmd_parse_long (optarg, 1, 1000, &req.max_attempts))
                exit_code = cmd_usage_error ("train", "--max-attempts: '%s' is not in 1..1000",
                                             optarg);
            break;
        case OPT_PARAM: {
            const char *eq = strchr (optarg, '=');
            if (!eq || eq == optarg) {
                exit_code = cmd_usage_error ("train", "--param wants KEY=VALUE, got '%s'", optarg);
                break;
            }
            char key [128], nkey [128];
            snprintf (key, sizeof key, "%.*s", (int) (eq - optarg), optarg);
            s_norm_key (key, nkey, sizeof nkey);
            if (s_set (&req, nkey, eq + 1))
                exit_code = cmd_error ("too many parameters");
            break;
        }
        case OPT_HYPER: {
            char nkey [128];
            s_norm_key (opts [idx].name, nkey, sizeof nkey);
            if (!*optarg)
                exit_code = cmd_usage_error ("train", "--%s needs a value", opts [idx].name);
            else if (s_set (&req, nkey, optarg))
                exit_code = cmd_error ("too many parameters");
            break;
        }
        default:
            exit_code = cmd_getopt_error ("train", c, argv);
        }
    }
    if (exit_code == TY_CMD_EXIT_OK && optind < argc)
        exit_code = cmd_usage_error ("train", "unexpected argument '%s'", argv [optind]);
    if (exit_code == TY_CMD_EXIT_OK && (!req.dataset || !*req.dataset))
        exit_code = cmd_usage_error ("train", "missing --dataset");
    if (exit_code == TY_CMD_EXIT_OK && (!req.model || !*req.model))
        exit_code = cmd_usage_error ("train", "missing --model (textclf, mlp, cnn or ncf)");
    if (exit_code == TY_CMD_EXIT_OK && (!req.name || !*req.name))
        exit_code = cmd_usage_error ("train", "missing --name");
    if (exit_code != TY_CMD_EXIT_OK) {
        s_req_free (&req);
        return exit_code;
    }

    Ty__JobSpec spec = TY__JOB_SPEC__INIT;
    Ty__TrainSpec train = TY__TRAIN_SPEC__INIT;
    Ty__TrainSpec__ParamsEntry entries [S_MAX_PARAMS];
    Ty__TrainSpec__ParamsEntry *params [S_MAX_PARAMS];
    uint32_t hidden [S_MAX_HIDDEN];
    train.dataset = (char *) req.dataset;
    train.model_kind = (char *) req.model;
    train.model_name = (char *) req.name;
    s_fill_spec (&req, &train, entries, params, hidden);
    spec.kind_case = TY__JOB_SPEC__KIND_TRAIN;
    spec.train = &train;
    spec.priority = (uint32_t) req.priority;
    spec.max_attempts = (uint32_t) req.max_attempts;
    char label [160];
    snprintf (label, sizeof label, "train %s %s on %s", req.model, req.name, req.dataset);
    spec.name = label;

    ty_client_t *client = cmd_connect (ctx);
    if (!client) {
        s_req_free (&req);
        return TY_CMD_EXIT_ERROR;
    }
    char id [TY_ID_LEN + 1];
    int rc = ty_client_submit (client, &spec, NULL, 0, NULL, ctx->timeout_ms, id, NULL);
    if (rc != TY_OK)
        exit_code = cmd_client_error (client, rc, "submit train");
    else if (req.no_watch) {
        if (ctx->json)
            printf ("{\"job_id\":\"%s\"}\n", id);
        else
            puts (id);
    }
    else {
        if (!ctx->json)
            fprintf (stderr, "trainyard: job %s: %s\n", id, label);
        char *ids [1] = { id };
        exit_code = cmd_watch_jobs (ctx, client, ids, 1, 0);
        if (exit_code == TY_CMD_EXIT_OK)
            exit_code = s_print_result (ctx, client, id);
    }
    ty_client_destroy (&client);
    s_req_free (&req);
    return exit_code;
}

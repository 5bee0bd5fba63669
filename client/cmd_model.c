/*  trainyard model SUBCOMMAND: model versions.
 *
 *  Subcommands live in one table (s_subs) so others can join it: each is a
 *  function with the argv that starts at the subcommand's name.
 *    compare A B   two evaluations side by side, from the metrics.json that
 *                  `trainyard evaluate` left beside each version (read from
 *                  the data directory: --data, env TRAINYARD_DATA, else
 *                  <state dir>/data).
 *    export M DIR  a version's artifacts (model*.tym, model.onnx) and a
 *                  manifest (kind, label map, sha256 of each) copied into a
 *                  new directory: built beside it, renamed into place.
 *    list, show, register, promote, rollback, revert, default, delete,
 *    history, resolve
 *                  the model registry (storage/ty_registry.h), opened
 *                  directly in the same data directory: no broker needed.
 *                  Changes carry who (--who, else $USER) and why (--why)
 *                  into the audit log.
 */
#include "cmd.h"
#include "ty_dataset.h"
#include "ty_infer.h"
#include "ty_registry.h"
#include "ty_report.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Defined in cmd_evaluate.c (they belong in cmd.h). */

typedef struct {
    const char *name;
    cmd_fn     *fn;
    const char *summary;
} s_sub_t;

static int s_compare (cmd_ctx_t *ctx, int argc, char **argv);
static int s_list (cmd_ctx_t *ctx, int argc, char **argv);
static int s_show (cmd_ctx_t *ctx, int argc, char **argv);
static int s_register (cmd_ctx_t *ctx, int argc, char **argv);
static int s_promote (cmd_ctx_t *ctx, int argc, char **argv);
static int s_rollback (cmd_ctx_t *ctx, int argc, char **argv);
static int s_revert (cmd_ctx_t *ctx, int argc, char **argv);
static int s_default (cmd_ctx_t *ctx, int argc, char **argv);
static int s_delete (cmd_ctx_t *ctx, int argc, char **argv);
static int s_history (cmd_ctx_t *ctx, int argc, char **argv);
static int s_resolve (cmd_ctx_t *ctx, int argc, char **argv);
static int s_export (cmd_ctx_t *ctx, int argc, char **argv);

static const s_sub_t s_subs [] = {
    { "compare",  s_compare,  "two evaluated versions side by side (metrics.json)" },
    { "list",     s_list,     "registered models: production, canary, default, latest" },
    { "show",     s_show,     "a model's versions, or one version's lineage, metrics, artifacts" },
    { "register", s_register, "record a trained version (or refresh its metrics)" },
    { "promote",  s_promote,  "move a version to staging, canary or production" },
    { "rollback", s_rollback, "production goes back to the previous production version" },
    { "revert",   s_revert,   "production goes to the model's default version" },
    { "default",  s_default,  "name the default version (the revert target)" },
    { "delete",   s_delete,   "forget a version (not production, not the default)" },
    { "history",  s_history,  "the audit log: every change, when, who, why" },
    { "resolve",  s_resolve,  "which version M@production|canary|latest|N|serving means" },
    { "export",   s_export,   "copy a version's artifacts + manifest into a new directory" },
    { NULL, NULL, NULL }
};

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: trainyard model COMMAND [OPTIONS]\n\nCommands:\n");
    for (const s_sub_t *s = s_subs; s->name; s++)
        fprintf (out, "  %-10s %s\n", s->name, s->summary);
    fprintf (out, "\nEvery command takes --help.\n");
}

/* ---- compare ------------------------------------------------------------------ */

static void
s_compare_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard model compare NAME@V1 NAME@V2 [OPTIONS]\n"
        "\n"
        "Two evaluations side by side: every metric both have, with the change\n"
        "(better/worse), per-class F1 by class name, gate verdicts and\n"
        "recommendations. Reads the metrics.json `trainyard evaluate` wrote beside\n"
        "each version; a version without one is an error.\n"
        "\n"
        "  --data DIR      data directory (env TRAINYARD_DATA, else <state dir>/data)\n"
        "  --all-classes   every class, not only the first %d\n"
        "  --json          {\"a\": metrics.json of V1, \"b\": metrics.json of V2}\n"
        "  -h, --help      this help\n", TY_REPORT_TOP_CLASSES);
}

static int
s_compare (cmd_ctx_t *ctx, int argc, char **argv)
{
    const char *cmd = "model compare";
    enum { OPT_DATA = 256, OPT_ALL, OPT_JSON };
    static const struct option opts [] = {
        { "data",        required_argument, NULL, OPT_DATA },
        { "all-classes", no_argument,       NULL, OPT_ALL },
        { "json",        no_argument,       NULL, OPT_JSON },
        { "help",        no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *data_flag = NULL;
    int json = ctx->json, all = 0, c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA: data_flag = optarg; break;
        case OPT_ALL:  all = 1; break;
        case OPT_JSON: json = 1; break;
        case 'h':      s_compare_usage (stdout); return TY_CMD_EXIT_OK;
        default:       return cmd_getopt_error (cmd, c, argv);
        }
    }
    if (argc - optind != 2)
        return cmd_usage_error (cmd, "give two model versions, e.g. spam@3 spam@4");
    char data [PATH_MAX];
    if (cmd_data_dir (data_flag, data, sizeof data))
        return TY_CMD_EXIT_ERROR;
    cJSON *a = NULL, *b = NULL;
    if (cmd_evaluate_load_report (data, argv [optind], &a))
        return TY_CMD_EXIT_ERROR;
    if (cmd_evaluate_load_report (data, argv [optind + 1], &b)) {
        cJSON_Delete (a);
        return TY_CMD_EXIT_ERROR;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject ();
        if (o && cJSON_AddItemToObject (o, "a", a)) {
            a = NULL;
            if (cJSON_AddItemToObject (o, "b", b))
                b = NULL;
        }
        cJSON_Delete (a);
        cJSON_Delete (b);
        if (o && (!cJSON_GetObjectItem (o, "a") || !cJSON_GetObjectItem (o, "b"))) {
            cJSON_Delete (o);
            o = NULL;
        }
        return cmd_json_print (o);
    }
    ty_report_print_opts_t po = { 0, all };
    int rc = ty_report_print_compare (stdout, a, b, &po);
    cJSON_Delete (a);
    cJSON_Delete (b);
    return rc == TY_OK ? TY_CMD_EXIT_OK : cmd_error ("%s: not metrics documents", cmd);
}

/* ---- the registry: shared option parsing ------------------------------------- */

enum {
    S_OPT_JSON    = 1 << 0,
    S_OPT_WHO     = 1 << 1,   /* with --why: the change goes to the audit log */
    S_OPT_FORCE   = 1 << 2,
    S_OPT_STAGE   = 1 << 3,
    S_OPT_ROLLOUT = 1 << 4,
    S_OPT_DEVICE  = 1 << 5,
};

typedef struct {
    const char *name;         /* "model promote" */
    const char *synopsis;     /* after "Usage: trainyard model " */
    const char *about;        /* paragraph(s), each line ending in \n */
    unsigned    allowed;      /* S_OPT_* beyond --data and --help */
    int         nargs;        /* positional arguments */
} s_reg_cmd_t;

typedef struct {
    const char *data_flag, *who, *why, *stage, *device;
    int         json, force, has_rollout;
    long        rollout;
} s_reg_opts_t;

static void
s_reg_usage (FILE *out, const s_reg_cmd_t *c)
{
    fprintf (out, "Usage: trainyard model %s\n\n%s\n", c->synopsis, c->about);
    fprintf (out, "  --data DIR      data directory (env TRAINYARD_DATA, else <state dir>/data)\n");
    if (c->allowed & S_OPT_STAGE)
        fprintf (out, "  --stage S       production, canary, staging, none or archived\n");
    if (c->allowed & S_OPT_ROLLOUT)
        fprintf (out, "  --rollout PCT   canary: the share of devices that get it, 0-%d (default 10)\n",
                 TY_REGISTRY_ROLLOUT_MAX);
    if (c->allowed & S_OPT_FORCE)
        fprintf (out, "  --force         promote even though the version failed its quality gate\n");
    if (c->allowed & S_OPT_DEVICE)
        fprintf (out, "  --device ID     the device asking (for M@serving)\n");
    if (c->allowed & S_OPT_WHO)
        fprintf (out, "  --who NAME      who makes the change (default $USER)\n"
                      "  --why TEXT      why, for the audit log\n");
    if (c->allowed & S_OPT_JSON)
        fprintf (out, "  --json          machine-readable output (the registry records)\n");
    fprintf (out, "  -h, --help      this help\n");
}

/* Parses argv into o. Returns -1 to go on (argv [optind] is the first
 * positional), else the exit code (help or a usage error). */
static int
s_reg_parse (cmd_ctx_t *ctx, const s_reg_cmd_t *c, int argc, char **argv, s_reg_opts_t *o)
{
    enum { OPT_DATA = 256, OPT_JSON, OPT_WHO, OPT_WHY, OPT_FORCE, OPT_STAGE, OPT_ROLLOUT,
           OPT_DEVICE };
    static const struct option opts [] = {
        { "data",    required_argument, NULL, OPT_DATA },
        { "json",    no_argument,       NULL, OPT_JSON },
        { "who",     required_argument, NULL, OPT_WHO },
        { "why",     required_argument, NULL, OPT_WHY },
        { "force",   no_argument,       NULL, OPT_FORCE },
        { "stage",   required_argument, NULL, OPT_STAGE },
        { "rollout", required_argument, NULL, OPT_ROLLOUT },
        { "device",  required_argument, NULL, OPT_DEVICE },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    memset (o, 0, sizeof *o);
    o->json = ctx->json && (c->allowed & S_OPT_JSON);
    int ch;
    while ((ch = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        unsigned need = ch == OPT_JSON ? S_OPT_JSON
                      : ch == OPT_WHO || ch == OPT_WHY ? S_OPT_WHO
                      : ch == OPT_FORCE ? S_OPT_FORCE
                      : ch == OPT_STAGE ? S_OPT_STAGE
                      : ch == OPT_ROLLOUT ? S_OPT_ROLLOUT
                      : ch == OPT_DEVICE ? S_OPT_DEVICE : 0;
        if (need && !(c->allowed & need))
            return cmd_usage_error (c->name, "option '%s' does not apply here", argv [optind - 1]);
        switch (ch) {
        case OPT_DATA:   o->data_flag = optarg; break;
        case OPT_JSON:   o->json = 1; break;
        case OPT_WHO:    o->who = optarg; break;
        case OPT_WHY:    o->why = optarg; break;
        case OPT_FORCE:  o->force = 1; break;
        case OPT_STAGE:  o->stage = optarg; break;
        case OPT_DEVICE: o->device = optarg; break;
        case OPT_ROLLOUT:
            if (cmd_parse_long (optarg, 0, TY_REGISTRY_ROLLOUT_MAX, &o->rollout))
                return cmd_usage_error (c->name, "--rollout takes a percentage 0-%d, not '%s'",
                                        TY_REGISTRY_ROLLOUT_MAX, optarg);
            o->has_rollout = 1;
            break;
        case 'h':
            s_reg_usage (stdout, c);
            return TY_CMD_EXIT_OK;
        default:
            return cmd_getopt_error (c->name, ch, argv);
        }
    }
    if (argc - optind != c->nargs)
        return cmd_usage_error (c->name, "expected %d argument%s: %s", c->nargs,
                                c->nargs == 1 ? "" : "s", c->synopsis);
    return -1;
}

/* The registry in the data directory, or NULL after printing why. */
static ty_registry_t *
s_reg_open (const s_reg_opts_t *o, char *data, size_t len)
{
    if (cmd_data_dir (o->data_flag, data, len))
        return NULL;
    ty_registry_t *reg = NULL;
    int rc = ty_registry_open (data, &reg);
    if (rc != TY_OK) {
        cmd_error ("model registry in %s: %s", data, ty_strerror (rc));
        return NULL;
    }
    return reg;
}

static ty_registry_actor_t
s_reg_actor (const s_reg_opts_t *o)
{
    const char *who = o->who;
    if (!who || !*who)
        who = getenv ("USER");
    if (!who || !*who)
        who = getenv ("LOGNAME");
    ty_registry_actor_t by = { who && *who ? who : "unknown", o->why ? o->why : "", o->force };
    return by;
}

/* Prints the registry's reason (or the code's) and returns the exit code. */
static int
s_reg_fail (ty_registry_t *reg, int rc, const char *what)
{
    const char *why = ty_registry_errstr (reg);
    return cmd_error ("%s: %s", what, why && *why ? why : ty_strerror (rc));
}

/* "M@N" or any spec ty_registry_resolve takes ("M@canary", "M@latest")
 * -> name and version of a registered version. */
static int
s_reg_version (ty_registry_t *reg, const char *spec, char *name, uint64_t *version)
{
    int rc = ty_registry_resolve (reg, spec, NULL, name, version, NULL);
    return rc == TY_OK ? 0 : s_reg_fail (reg, rc, spec);
}

static char *
s_ms_text (double ms, char *buf, size_t len)
{
    cmd_format_time (ms > 0 ? (uint64_t) ms : 0, buf, len);
    return buf;
}

static double
s_num (const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
    return cJSON_IsNumber (v) ? v->valuedouble : 0;
}

static const char *
s_txt (const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
    return cJSON_IsString (v) ? v->valuestring : "";
}

/* "-" for version 0 (none), else the number. */
static const char *
s_ver (double v, char *buf, size_t len)
{
    if (v < 1)
        snprintf (buf, len, "-");
    else
        snprintf (buf, len, "%.0f", v);
    return buf;
}

/* ---- list ----------------------------------------------------------------------- */

static int
s_list (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model list", "list [OPTIONS]",
        "Every registered model: its production and canary versions (with the\n"
        "canary's share of devices), default and latest version.\n",
        S_OPT_JSON, 0 };
    s_reg_opts_t o;
    int rc = s_reg_parse (ctx, &c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    char data [PATH_MAX];
    ty_registry_t *reg = s_reg_open (&o, data, sizeof data);
    if (!reg)
        return TY_CMD_EXIT_ERROR;
    cJSON *list = NULL;
    rc = ty_registry_models_json (reg, &list);
    if (rc != TY_OK) {
        rc = s_reg_fail (reg, rc, c.name);
        ty_registry_destroy (&reg);
        return rc;
    }
    ty_registry_destroy (&reg);
    if (o.json)
        return cmd_json_print (list);
    printf ("%-24s %-10s %-14s %-8s %-7s %s\n", "MODEL", "PRODUCTION", "CANARY", "DEFAULT",
            "LATEST", "VERSIONS");
    const cJSON *m;
    cJSON_ArrayForEach (m, list) {
        char p [24], cv [24], canary [40], d [24], l [24];
        s_ver (s_num (m, "canary"), cv, sizeof cv);
        if (s_num (m, "canary") >= 1)
            snprintf (canary, sizeof canary, "%s (%.0f%%)", cv, s_num (m, "rollout"));
        else
            snprintf (canary, sizeof canary, "-");
        printf ("%-24s %-10s %-14s %-8s %-7s %.0f\n", s_txt (m, "name"),
                s_ver (s_num (m, "production"), p, sizeof p), canary,
                s_ver (s_num (m, "default"), d, sizeof d), s_ver (s_num (m, "latest"), l, sizeof l),
                s_num (m, "versions"));
    }
    if (cJSON_GetArraySize (list) == 0)
        printf ("(no registered models: trainyard model register NAME@VERSION)\n");
    cJSON_Delete (list);
    return TY_CMD_EXIT_OK;
}

/* ---- show ----------------------------------------------------------------------- */

/* What a convert job noted about one artifact (ty_registry_artifact_note):
 * its target and measured metrics, under the artifact's line. */
static void
s_show_note (const cJSON *note, const char *artifact_sha)
{
    if (!cJSON_IsObject (note))
        return;
    char t [64];
    printf ("      %s", *s_txt (note, "target") ? s_txt (note, "target") : "note");
    const cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItemCaseSensitive (note, "metrics")) {
        if (cJSON_IsNumber (m))
            printf (" %s=%.4g", m->string, m->valuedouble);
        else
        if (cJSON_IsString (m))
            printf (" %s=%s", m->string, m->valuestring);
    }
    printf ("  (%s, %s)", s_ms_text (s_num (note, "time_ms"), t, sizeof t), s_txt (note, "who"));
    /* a file registered again under the same name after the note */
    if (strcmp (s_txt (note, "sha256"), artifact_sha))
        printf ("  [about an earlier file of this name]");
    printf ("\n");
}

static void
s_show_version (const cJSON *v)
{
    char t [64];
    const cJSON *m = cJSON_GetObjectItemCaseSensitive (v, "metrics");
    const cJSON *lin = cJSON_GetObjectItemCaseSensitive (v, "lineage");
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive (lin, "dataset");
    printf ("%s@%.0f\n", s_txt (v, "name"), s_num (v, "version"));
    printf ("  stage         %s", s_txt (v, "stage"));
    if (!strcmp (s_txt (v, "stage"), "canary"))
        printf (" (%.0f%% of devices)", s_num (v, "rollout"));
    printf ("  since %s\n", s_ms_text (s_num (v, "stage_changed_ms"), t, sizeof t));
    printf ("  registered    %s\n", s_ms_text (s_num (v, "registered_ms"), t, sizeof t));
    printf ("  kind          %s\n", s_txt (v, "kind"));
    printf ("  code version  %s\n", s_txt (v, "code_version"));
    printf ("  directory     %s\n", s_txt (v, "dir"));
    if (cJSON_IsObject (lin)) {
        printf ("  dataset       %s@%.0f  %s\n", s_txt (ds, "name"), s_num (ds, "version"),
                s_txt (ds, "content_hash"));
        printf ("  trained by    job %s (attempt %.0f)\n", s_txt (lin, "job_id"),
                s_num (lin, "attempt"));
        const cJSON *p;
        printf ("  parameters   ");
        cJSON_ArrayForEach (p, cJSON_GetObjectItemCaseSensitive (lin, "params"))
            if (cJSON_IsString (p))
                printf (" %s=%s", p->string, p->valuestring);
        printf ("\n");
    }
    else
        printf ("  lineage       (no lineage.json)\n");
    printf ("  gate          %s\n", s_txt (m, "gate"));
    if (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (m, "evaluated"))) {
        printf ("  evaluation    %s  (job %s, %s)\n", s_txt (m, "summary"), s_txt (m, "job_id"),
                s_txt (m, "dataset"));
        const cJSON *n;
        printf ("  metrics      ");
        cJSON_ArrayForEach (n, cJSON_GetObjectItemCaseSensitive (m, "headline"))
            printf (" %s=%.4g", n->string, n->valuedouble);
        printf ("\n");
    }
    printf ("  artifacts\n");
    const cJSON *a;
    const cJSON *notes = cJSON_GetObjectItemCaseSensitive (v, "notes");
    cJSON_ArrayForEach (a, cJSON_GetObjectItemCaseSensitive (v, "artifacts")) {
        printf ("    %-20s %12.0f  sha256:%s\n", s_txt (a, "file"), s_num (a, "bytes"),
                s_txt (a, "sha256"));
        s_show_note (cJSON_GetObjectItemCaseSensitive (notes, s_txt (a, "file")),
                     s_txt (a, "sha256"));
    }
}

static void
s_show_model (const cJSON *doc)
{
    char p [24], cv [24], d [24], t [64];
    printf ("%s: production %s, canary %s", s_txt (doc, "name"),
            s_ver (s_num (doc, "production"), p, sizeof p),
            s_ver (s_num (doc, "canary"), cv, sizeof cv));
    if (s_num (doc, "canary") >= 1)
        printf (" (%.0f%% of devices)", s_num (doc, "rollout"));
    printf (", default %s\n", s_ver (s_num (doc, "default"), d, sizeof d));
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive (doc, "previous"), *x;
    if (cJSON_GetArraySize (prev) > 0) {
        printf ("rollback goes to:");
        for (int i = cJSON_GetArraySize (prev) - 1; i >= 0; i--)
            if ((x = cJSON_GetArrayItem (prev, i)))
                printf (" %.0f", x->valuedouble);
        printf ("\n");
    }
    printf ("\n%-8s %-11s %-12s %-29s %s\n", "VERSION", "STAGE", "GATE", "REGISTERED", "EVALUATION");
    cJSON_ArrayForEach (x, cJSON_GetObjectItemCaseSensitive (doc, "versions")) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive (x, "metrics");
        char stage [32];
        if (!strcmp (s_txt (x, "stage"), "canary"))
            snprintf (stage, sizeof stage, "canary %.0f%%", s_num (x, "rollout"));
        else
            snprintf (stage, sizeof stage, "%s", s_txt (x, "stage"));
        printf ("%-8.0f %-11s %-12s %-29s %s\n", s_num (x, "version"), stage, s_txt (m, "gate"),
                s_ms_text (s_num (x, "registered_ms"), t, sizeof t), s_txt (m, "summary"));
    }
}

static int
s_show (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model show", "show NAME[@VERSION] [OPTIONS]",
        "NAME: the model's stages and every registered version. NAME@VERSION (a\n"
        "number, production, canary, default or latest): that version's stage,\n"
        "lineage (dataset, job, parameters, code version), evaluation and gate\n"
        "verdict, and artifacts with their sha256.\n",
        S_OPT_JSON, 1 };
    s_reg_opts_t o;
    int rc = s_reg_parse (ctx, &c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    const char *spec = argv [optind];
    char data [PATH_MAX];
    ty_registry_t *reg = s_reg_open (&o, data, sizeof data);
    if (!reg)
        return TY_CMD_EXIT_ERROR;
    cJSON *doc = NULL;
    char name [TY_REGISTRY_NAME_MAX + 1];
    uint64_t version = 0;
    if (!strchr (spec, '@'))
        rc = ty_registry_model_json (reg, spec, &doc);
    else if ((rc = ty_registry_resolve (reg, spec, NULL, name, &version, NULL)) == TY_OK)
        rc = ty_registry_version_json (reg, name, version, &doc);
    if (rc != TY_OK) {
        rc = s_reg_fail (reg, rc, spec);
        ty_registry_destroy (&reg);
        return rc;
    }
    ty_registry_destroy (&reg);
    if (o.json)
        return cmd_json_print (doc);
    if (strchr (spec, '@'))
        s_show_version (doc);
    else
        s_show_model (doc);
    cJSON_Delete (doc);
    return TY_CMD_EXIT_OK;
}

/* ---- register ---------------------------------------------------------------- */

/* Registers (or refreshes) the on-disk version spec names ("M" = the
 * newest directory, "M@N"), printing what happened unless quiet. TY_OK
 * or a status (printed). */
static int
s_register_spec (ty_registry_t *reg, const char *data, const char *spec,
                 const ty_registry_actor_t *by, int quiet, char *name, uint64_t *version)
{
    const char *why = "";
    char dir [PATH_MAX];
    int rc = ty_report_model_spec_parse (spec, name, version, &why);
    if (rc == TY_OK)
        rc = ty_report_model_dir (data, spec, dir, sizeof dir, version, &why);
    if (rc != TY_OK) {
        cmd_error ("%s: %s (data directory %s)", spec, *why ? why : ty_strerror (rc), data);
        return rc;
    }
    int created = 0;
    rc = ty_registry_register (reg, name, *version, by, &created);
    if (rc != TY_OK) {
        s_reg_fail (reg, rc, spec);
        return rc;
    }
    if (!quiet)
        printf ("%s@%" PRIu64 " %s\n", name, *version, created ? "registered" : "up to date");
    return TY_OK;
}

static int
s_register (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model register", "register NAME[@VERSION] [OPTIONS]",
        "Records a trained version (NAME alone: the newest) in the registry at\n"
        "stage none: lineage, the evaluation and gate verdict from metrics.json,\n"
        "every file with its sha256. Run again after `trainyard evaluate` to\n"
        "refresh the metrics (promote does this by itself).\n",
        S_OPT_WHO, 1 };
    s_reg_opts_t o;
    int rc = s_reg_parse (ctx, &c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    char data [PATH_MAX], name [TY_REGISTRY_NAME_MAX + 1];
    ty_registry_t *reg = s_reg_open (&o, data, sizeof data);
    if (!reg)
        return TY_CMD_EXIT_ERROR;
    ty_registry_actor_t by = s_reg_actor (&o);
    uint64_t version = 0;
    rc = s_register_spec (reg, data, argv [optind], &by, 0, name, &version);
    ty_registry_destroy (&reg);
    return rc == TY_OK ? TY_CMD_EXIT_OK : TY_CMD_EXIT_ERROR;
}

/* ---- promote ------------------------------------------------------------------- */

static int
s_promote (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model promote", "promote NAME@VERSION --stage STAGE [OPTIONS]",
        "Moves a version to a stage. production: the current production version\n"
        "is archived and remembered for `model rollback`. canary: --rollout\n"
        "percent of devices get it (M@serving), the rest production. A version\n"
        "whose quality gate failed is refused unless --force. The version is\n"
        "registered (or its metrics refreshed) first, so the gate verdict is the\n"
        "latest evaluation's.\n",
        S_OPT_WHO | S_OPT_FORCE | S_OPT_STAGE | S_OPT_ROLLOUT, 1 };
    /* the canary share when --rollout is not given: a small first step */
    static const long default_rollout_pct = 10;
    s_reg_opts_t o;
    int rc = s_reg_parse (ctx, &c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    ty_stage_t stage;
    if (!o.stage)
        return cmd_usage_error (c.name, "--stage is required (production, canary, staging, ...)");
    if (ty_registry_stage_parse (o.stage, &stage) != TY_OK)
        return cmd_usage_error (c.name, "unknown stage '%s'", o.stage);
    if (o.has_rollout && stage != TY_STAGE_CANARY)
        return cmd_usage_error (c.name, "--rollout applies to --stage canary only");
    const char *spec = argv [optind];
    char data [PATH_MAX], name [TY_REGISTRY_NAME_MAX + 1];
    ty_registry_t *reg = s_reg_open (&o, data, sizeof data);
    if (!reg)
        return TY_CMD_EXIT_ERROR;
    ty_registry_actor_t by = s_reg_actor (&o);
    uint64_t version = 0;
    const char *at = strchr (spec, '@');
    if (!at || (at [1] >= '0' && at [1] <= '9'))
        rc = s_register_spec (reg, data, spec, &by, 1, name, &version);
    else   /* M@canary, M@latest, ...: already registered */
        rc = s_reg_version (reg, spec, name, &version) ? TY_EINVAL : TY_OK;
    if (rc == TY_OK) {
        rc = ty_registry_promote (reg, name, version, stage,
                                  (int) (o.has_rollout ? o.rollout : default_rollout_pct), &by);
        if (rc != TY_OK)
            s_reg_fail (reg, rc, c.name);
        else if (stage == TY_STAGE_CANARY)
            printf ("%s@%" PRIu64 " is canary for %ld%% of devices\n", name, version,
                    o.has_rollout ? o.rollout : default_rollout_pct);
        else
            printf ("%s@%" PRIu64 " is %s\n", name, version, ty_registry_stage_name (stage));
    }
    ty_registry_destroy (&reg);
    return rc == TY_OK ? TY_CMD_EXIT_OK : TY_CMD_EXIT_ERROR;
}

/* ---- rollback, revert, default, delete ---------------------------------------------- */

static int
s_rollback (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model rollback", "rollback NAME [OPTIONS]",
        "Production goes back to the previous production version; the current\n"
        "one is archived. Repeat to go further back.\n",
        S_OPT_WHO, 1 };
    s_reg_opts_t o;
    int rc = s_reg_parse (ctx, &c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    char data [PATH_MAX];
    ty_registry_t *reg = s_reg_open (&o, data, sizeof data);
    if (!reg)
        return TY_CMD_EXIT_ERROR;
    ty_registry_actor_t by = s_reg_actor (&o);
    uint64_t now = 0;
    rc = ty_registry_rollback (reg, argv [optind], &by, &now);
    if (rc == TY_OK)
        printf ("%s@%" PRIu64 " is production\n", argv [optind], now);
    else
        s_reg_fail (reg, rc, c.name);
    ty_registry_destroy (&reg);
    return rc == TY_OK ? TY_CMD_EXIT_OK : TY_CMD_EXIT_ERROR;
}

static int
s_revert (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model revert", "revert NAME [OPTIONS]",
        "Production goes to the model's default version (`model default`), as a\n"
        "promote would: `model rollback` undoes it.\n",
        S_OPT_WHO | S_OPT_FORCE, 1 };
    s_reg_opts_t o;
    int rc = s_reg_parse (ctx, &c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    char data [PATH_MAX];
    ty_registry_t *reg = s_reg_open (&o, data, sizeof data);
    if (!reg)
        return TY_CMD_EXIT_ERROR;
    ty_registry_actor_t by = s_reg_actor (&o);
    uint64_t version = 0;
    char spec [TY_REGISTRY_NAME_MAX + 16];
    snprintf (spec, sizeof spec, "%s@production", argv [optind]);
    if ((rc = ty_registry_revert (reg, argv [optind], &by)) == TY_OK)
        rc = ty_registry_resolve (reg, spec, NULL, NULL, &version, NULL);
    if (rc == TY_OK)
        printf ("%s@%" PRIu64 " (the default) is production\n", argv [optind], version);
    else
        s_reg_fail (reg, rc, c.name);
    ty_registry_destroy (&reg);
    return rc == TY_OK ? TY_CMD_EXIT_OK : TY_CMD_EXIT_ERROR;
}

/* A registry change of one version: parse, open, resolve NAME@VERSION, apply
 * fn, say what happened. */
typedef int (s_version_fn) (ty_registry_t *self, const char *name, uint64_t version,
                            const ty_registry_actor_t *by);

static int
s_version_change (cmd_ctx_t *ctx, int argc, char **argv, const s_reg_cmd_t *c,
                  int need_number, s_version_fn *fn, const char *done)
{
    s_reg_opts_t o;
    int rc = s_reg_parse (ctx, c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    const char *at = strchr (argv [optind], '@');
    if (need_number && (!at || at [1] < '0' || at [1] > '9'))
        return cmd_usage_error (c->name, "give a version number, e.g. spam@3");
    char data [PATH_MAX], name [TY_REGISTRY_NAME_MAX + 1];
    ty_registry_t *reg = s_reg_open (&o, data, sizeof data);
    if (!reg)
        return TY_CMD_EXIT_ERROR;
    ty_registry_actor_t by = s_reg_actor (&o);
    uint64_t version = 0;
    rc = s_reg_version (reg, argv [optind], name, &version) ? TY_EINVAL : TY_OK;
    if (rc == TY_OK) {
        if ((rc = fn (reg, name, version, &by)) == TY_OK)
            printf ("%s@%" PRIu64 " %s\n", name, version, done);
        else
            s_reg_fail (reg, rc, c->name);
    }
    ty_registry_destroy (&reg);
    return rc == TY_OK ? TY_CMD_EXIT_OK : TY_CMD_EXIT_ERROR;
}

static int
s_default (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model default", "default NAME@VERSION [OPTIONS]",
        "Names the version `model revert` goes back to: a known-good one.\n",
        S_OPT_WHO, 1 };
    return s_version_change (ctx, argc, argv, &c, 0, ty_registry_set_default,
                             "is the default");
}

static int
s_delete (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model delete", "delete NAME@VERSION [OPTIONS]",
        "Forgets a version in the registry (its directory under models/ stays).\n"
        "Refused for the production version and the default one.\n",
        S_OPT_WHO, 1 };
    return s_version_change (ctx, argc, argv, &c, 1, ty_registry_delete,
                             "deleted from the registry");
}

/* ---- history, resolve ----------------------------------------------------------- */

static int
s_history (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model history", "history NAME [OPTIONS]",
        "The audit log of a model, oldest first: when, what (register, promote,\n"
        "rollback, revert, default, delete), the stage change, who and why, and\n"
        "production / canary after the change. Entries are never rewritten.\n",
        S_OPT_JSON, 1 };
    s_reg_opts_t o;
    int rc = s_reg_parse (ctx, &c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    char data [PATH_MAX];
    ty_registry_t *reg = s_reg_open (&o, data, sizeof data);
    if (!reg)
        return TY_CMD_EXIT_ERROR;
    cJSON *h = NULL;
    if ((rc = ty_registry_history_json (reg, argv [optind], &h)) != TY_OK) {
        rc = s_reg_fail (reg, rc, c.name);
        ty_registry_destroy (&reg);
        return rc;
    }
    ty_registry_destroy (&reg);
    if (o.json)
        return cmd_json_print (h);
    const cJSON *e;
    cJSON_ArrayForEach (e, h) {
        char t [64], p [24], cv [24], change [64] = "";
        if (*s_txt (e, "to"))
            snprintf (change, sizeof change, "%s -> %s", s_txt (e, "from"), s_txt (e, "to"));
        printf ("%-29s %-11s @%-5.0f %-24s by %s%s", s_ms_text (s_num (e, "time_ms"), t, sizeof t),
                s_txt (e, "action"), s_num (e, "version"), change, s_txt (e, "who"),
                cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (e, "forced")) ? " (FORCED past a failed gate)" : "");
        printf ("  [production %s, canary %s", s_ver (s_num (e, "production"), p, sizeof p),
                s_ver (s_num (e, "canary"), cv, sizeof cv));
        if (s_num (e, "canary") >= 1)
            printf (" %.0f%%", s_num (e, "rollout"));
        printf ("]");
        if (*s_txt (e, "why"))
            printf ("  \"%s\"", s_txt (e, "why"));
        printf ("\n");
    }
    if (cJSON_GetArraySize (h) == 0)
        printf ("(no changes recorded for %s)\n", argv [optind]);
    cJSON_Delete (h);
    return TY_CMD_EXIT_OK;
}

static int
s_resolve (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const s_reg_cmd_t c = {
        "model resolve", "resolve NAME@WHICH [--device ID] [OPTIONS]",
        "Which version a spec means: NAME@production, @canary, @default, @latest,\n"
        "@N, or @serving with --device ID (the canary for the canary's share of\n"
        "devices, picked by a stable hash of the id; production for the rest).\n",
        S_OPT_JSON | S_OPT_DEVICE, 1 };
    s_reg_opts_t o;
    int rc = s_reg_parse (ctx, &c, argc, argv, &o);
    if (rc >= 0)
        return rc;
    char data [PATH_MAX], name [TY_REGISTRY_NAME_MAX + 1];
    ty_registry_t *reg = s_reg_open (&o, data, sizeof data);
    if (!reg)
        return TY_CMD_EXIT_ERROR;
    uint64_t version = 0;
    ty_stage_t stage = TY_STAGE_NONE;
    rc = ty_registry_resolve (reg, argv [optind], o.device, name, &version, &stage);
    if (rc != TY_OK) {
        rc = s_reg_fail (reg, rc, argv [optind]);
        ty_registry_destroy (&reg);
        return rc;
    }
    ty_registry_destroy (&reg);
    if (o.json) {
        cJSON *j = cJSON_CreateObject ();
        if (j && (!cJSON_AddStringToObject (j, "name", name)
                  || !cJSON_AddNumberToObject (j, "version", (double) version)
                  || !cJSON_AddStringToObject (j, "stage", ty_registry_stage_name (stage))
                  || (o.device && !cJSON_AddStringToObject (j, "device", o.device)))) {
            cJSON_Delete (j);
            j = NULL;
        }
        return cmd_json_print (j);
    }
    printf ("%s@%" PRIu64 " (%s)\n", name, version, ty_registry_stage_name (stage));
    return TY_CMD_EXIT_OK;
}

/* ---- export ------------------------------------------------------------------- */

#define S_EXPORT_MANIFEST      "manifest.json"
#define S_EXPORT_FORMAT        1          /* "format" of manifest.json */
#define S_EXPORT_COPY_BYTES    (1u << 20) /* copy buffer */
#define S_EXPORT_NFDS          16         /* nftw descriptors when removing an old copy */

/* The artifacts a --format names: (format, file in the version dir). */
static const struct {
    const char *format, *file;
} s_export_files [] = {
    { "tym",  "model.tym" },
    { "fp16", "model-fp16.tym" },
    { "int8", "model-int8.tym" },
    { "onnx", "model.onnx" },
};
#define S_EXPORT_NFILES (sizeof s_export_files / sizeof s_export_files [0])

static void
s_export_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard model export NAME[@V] DIR [OPTIONS]\n"
        "\n"
        "Copies a version's deployable artifacts and a manifest.json (model, kind,\n"
        "label map, every file with its sha256) into DIR, which must not exist\n"
        "(--force replaces it). The copy is built in a temporary directory beside\n"
        "DIR and renamed into place: DIR is the old copy or the new one, never a\n"
        "mix. NAME@V: a number, production, canary, default or latest.\n"
        "\n"
        "  --format F      tym (model.tym, default), fp16, int8, onnx, or all (every\n"
        "                  artifact the version has); `trainyard convert` makes them\n"
        "  --force         replace DIR if it exists\n"
        "  --data DIR      data directory (env TRAINYARD_DATA, else <state dir>/data)\n"
        "  --json          print the manifest\n"
        "  -h, --help      this help\n");
}

/* The version directory of spec: numbers and "M" on disk, stage names
 * through the registry. 0 or a printed error. */
static int
s_export_dir (const char *data, const char *spec, char *name, uint64_t *version, char *dir,
              size_t len)
{
    const char *at = strchr (spec, '@');
    int numeric = !at || (at [1] && strspn (at + 1, "0123456789") == strlen (at + 1));
    char numbered [TY_REGISTRY_NAME_MAX + 32];
    const char *why = "";
    if (!numeric) {
        ty_registry_t *reg = NULL;
        int rc = ty_registry_open (data, &reg);
        if (rc != TY_OK)
            return cmd_error ("model registry in %s: %s", data, ty_strerror (rc));
        rc = ty_registry_resolve (reg, spec, NULL, name, version, NULL);
        if (rc != TY_OK) {
            rc = s_reg_fail (reg, rc, spec);
            ty_registry_destroy (&reg);
            return rc;
        }
        ty_registry_destroy (&reg);
        snprintf (numbered, sizeof numbered, "%s@%" PRIu64, name, *version);
        spec = numbered;
    }
    int rc = ty_report_model_spec_parse (spec, name, version, &why);
    if (rc == TY_OK)
        rc = ty_report_model_dir (data, spec, dir, len, version, &why);
    if (rc != TY_OK)
        return cmd_error ("%s: %s (data directory %s)", spec, *why ? why : ty_strerror (rc), data);
    return 0;
}

/* Copies src to dst (new file), fsynced. 0 or a printed error. */
static int
s_export_copy (const char *src, const char *dst)
{
    FILE *in = fopen (src, "rbe");
    if (!in)
        return cmd_error ("%s: %s", src, strerror (errno));
    FILE *out = fopen (dst, "wbxe");
    if (!out) {
        int e = errno;
        fclose (in);
        return cmd_error ("%s: %s", dst, strerror (e));
    }
    char *buf = malloc (S_EXPORT_COPY_BYTES);
    int rc = buf ? 0 : cmd_error ("out of memory");
    size_t n;
    while (!rc && (n = fread (buf, 1, S_EXPORT_COPY_BYTES, in)) > 0)
        if (fwrite (buf, 1, n, out) != n)
            rc = cmd_error ("%s: %s", dst, strerror (errno));
    if (!rc && ferror (in))
        rc = cmd_error ("%s: read error", src);
    free (buf);
    fclose (in);
    if (!rc && (fflush (out) != 0 || fsync (fileno (out)) != 0))
        rc = cmd_error ("%s: %s", dst, strerror (errno));
    if (fclose (out) != 0 && !rc)
        rc = cmd_error ("%s: %s", dst, strerror (errno));
    return rc;
}

static int
s_export_rm_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) ftw;
    return flag == FTW_DP ? rmdir (path) : unlink (path);
}

/* rm -rf path (a copy this command made, or the one it replaces). */
static int
s_export_rmtree (const char *path)
{
    return nftw (path, s_export_rm_one, S_EXPORT_NFDS, FTW_DEPTH | FTW_PHYS);
}

/* The manifest: where the files came from, what the model is, digests. */
static cJSON *
s_export_manifest (const char *name, uint64_t version, const char *src_dir, const char *tmp,
                   const char *const *files, size_t n)
{
    cJSON *man = cJSON_CreateObject ();
    cJSON *arr = NULL, *labels = NULL;
    if (!man || !cJSON_AddNumberToObject (man, "format", S_EXPORT_FORMAT)
        || !cJSON_AddStringToObject (man, "model", name)
        || !cJSON_AddNumberToObject (man, "version", (double) version)
        || !cJSON_AddStringToObject (man, "source", src_dir)
        || !cJSON_AddNumberToObject (man, "exported_ms", (double) time (NULL) * 1000.0)
        || !(labels = cJSON_AddArrayToObject (man, "labels"))
        || !(arr = cJSON_AddArrayToObject (man, "files"))) {
        cJSON_Delete (man);
        cmd_error ("out of memory");
        return NULL;
    }
    const char *kind = "unknown";
    for (size_t i = 0; i < n; i++) {
        char path [PATH_MAX + 64], hex [65];
        uint64_t bytes = 0;
        snprintf (path, sizeof path, "%s/%s", tmp, files [i]);
        int rc = ty_dataset_file_sha256 (path, hex, &bytes);
        if (rc != TY_OK) {
            cJSON_Delete (man);
            cmd_error ("sha256 of %s: %s", path, ty_strerror (rc));
            return NULL;
        }
        cJSON *o = cJSON_CreateObject ();
        if (!o || !cJSON_AddStringToObject (o, "file", files [i])
            || !cJSON_AddNumberToObject (o, "bytes", (double) bytes)
            || !cJSON_AddStringToObject (o, "sha256", hex)
            || !cJSON_AddItemToArray (arr, o)) {
            cJSON_Delete (o);
            cJSON_Delete (man);
            cmd_error ("out of memory");
            return NULL;
        }
        /* kind and label map from the first portable file */
        ty_infer_model_t *m = NULL;
        if (!strcmp (kind, "unknown") && strstr (files [i], ".tym")
            && ty_infer_open (path, &m, NULL, 0) == TY_INFER_OK) {
            kind = ty_infer_kind_name (ty_infer_kind (m));
            for (size_t k = 0; k < ty_infer_nlabels (m); k++)
                cJSON_AddItemToArray (labels, cJSON_CreateString (ty_infer_label (m, k)));
            ty_infer_close (&m);
        }
    }
    if (!cJSON_AddStringToObject (man, "kind", kind)) {
        cJSON_Delete (man);
        cmd_error ("out of memory");
        return NULL;
    }
    return man;
}

/* tmp takes dest's place: a plain rename when dest is new; with --force an
 * atomic exchange (renameat2), then the old copy is removed. */
static int
s_export_publish (const char *tmp, const char *dest, int exists)
{
    if (!exists) {
        if (rename (tmp, dest) != 0)
            return cmd_error ("rename %s -> %s: %s", tmp, dest, strerror (errno));
        return 0;
    }
    if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_EXCHANGE) == 0) {
        /* tmp now holds the old copy */
        if (s_export_rmtree (tmp) != 0)
            fprintf (stderr, "trainyard: warning: could not remove the old copy %s\n", tmp);
        return 0;
    }
    /* a file system without exchange: move the old copy aside first */
    char old [PATH_MAX + 32];
    snprintf (old, sizeof old, "%s.old-%ld", dest, (long) getpid ());
    if (rename (dest, old) != 0)
        return cmd_error ("rename %s -> %s: %s", dest, old, strerror (errno));
    if (rename (tmp, dest) != 0) {
        int e = errno;
        if (rename (old, dest) != 0)
            fprintf (stderr, "trainyard: the old copy is at %s\n", old);
        return cmd_error ("rename %s -> %s: %s", tmp, dest, strerror (e));
    }
    if (s_export_rmtree (old) != 0)
        fprintf (stderr, "trainyard: warning: could not remove the old copy %s\n", old);
    return 0;
}

static int
s_export (cmd_ctx_t *ctx, int argc, char **argv)
{
    const char *cmd = "model export";
    enum { OPT_DATA = 256, OPT_FORMAT, OPT_FORCE, OPT_JSON };
    static const struct option opts [] = {
        { "data",   required_argument, NULL, OPT_DATA },
        { "format", required_argument, NULL, OPT_FORMAT },
        { "force",  no_argument,       NULL, OPT_FORCE },
        { "json",   no_argument,       NULL, OPT_JSON },
        { "help",   no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *data_flag = NULL, *format = "tym";
    int force = 0, json = ctx->json, c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA:   data_flag = optarg; break;
        case OPT_FORMAT: format = optarg; break;
        case OPT_FORCE:  force = 1; break;
        case OPT_JSON:   json = 1; break;
        case 'h':        s_export_usage (stdout); return TY_CMD_EXIT_OK;
        default:         return cmd_getopt_error (cmd, c, argv);
        }
    }
    if (argc - optind != 2)
        return cmd_usage_error (cmd, "expected NAME[@VERSION] DIR");
    int all = !strcmp (format, "all"), known = all;
    for (size_t i = 0; i < S_EXPORT_NFILES; i++)
        known |= !strcmp (format, s_export_files [i].format);
    if (!known)
        return cmd_usage_error (cmd, "--format: tym, fp16, int8, onnx or all, not '%s'", format);
    const char *spec = argv [optind], *dest = argv [optind + 1];
    size_t dlen = strlen (dest);
    while (dlen > 1 && dest [dlen - 1] == '/')
        dlen--;
    if (!dlen || dlen >= PATH_MAX)
        return cmd_usage_error (cmd, "DIR: an empty or too long path");
    char data [PATH_MAX], dir [PATH_MAX], name [TY_REGISTRY_NAME_MAX + 1];
    uint64_t version = 0;
    if (cmd_data_dir (data_flag, data, sizeof data))
        return TY_CMD_EXIT_ERROR;
    if (s_export_dir (data, spec, name, &version, dir, sizeof dir))
        return TY_CMD_EXIT_ERROR;

    /* which files */
    const char *files [S_EXPORT_NFILES];
    size_t n = 0;
    for (size_t i = 0; i < S_EXPORT_NFILES; i++) {
        if (!all && strcmp (format, s_export_files [i].format))
            continue;
        char path [PATH_MAX + 64];
        snprintf (path, sizeof path, "%s/%s", dir, s_export_files [i].file);
        if (access (path, R_OK) == 0)
            files [n++] = s_export_files [i].file;
        else if (!all)
            return cmd_error ("%s@%" PRIu64 " has no %s: run `trainyard convert --model %s@%"
                              PRIu64 " --to %s`", name, version, s_export_files [i].file, name,
                              version, !strcmp (format, "tym") ? "fp32" : format);
    }
    if (!n)
        return cmd_error ("%s@%" PRIu64 " has no deployable artifact (model*.tym, model.onnx): "
                          "run `trainyard convert`", name, version);

    char target [PATH_MAX], tmp [PATH_MAX + 32];
    snprintf (target, sizeof target, "%.*s", (int) dlen, dest);
    struct stat st;
    int exists = lstat (target, &st) == 0;
    if (exists && !force)
        return cmd_error ("%s exists: give --force to replace it", target);
    if (exists && !S_ISDIR (st.st_mode))
        return cmd_error ("%s exists and is not a directory", target);
    snprintf (tmp, sizeof tmp, "%s.tmp-%ld", target, (long) getpid ());
    if (mkdir (tmp, 0755) != 0)
        return cmd_error ("mkdir %s: %s", tmp, strerror (errno));
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        char src [PATH_MAX + 64], dst [PATH_MAX + 96];
        snprintf (src, sizeof src, "%s/%s", dir, files [i]);
        snprintf (dst, sizeof dst, "%s/%s", tmp, files [i]);
        rc = s_export_copy (src, dst);
    }
    cJSON *man = rc ? NULL : s_export_manifest (name, version, dir, tmp, files, n);
    if (!rc && !man)
        rc = TY_CMD_EXIT_ERROR;
    if (!rc) {
        char *text = cJSON_Print (man);
        char mpath [PATH_MAX + 64];
        snprintf (mpath, sizeof mpath, "%s/%s", tmp, S_EXPORT_MANIFEST);
        FILE *fp = text ? fopen (mpath, "wxe") : NULL;
        if (!fp || fputs (text, fp) == EOF || fputc ('\n', fp) == EOF || fflush (fp) != 0
            || fsync (fileno (fp)) != 0)
            rc = cmd_error ("%s: %s", mpath, text ? strerror (errno) : "out of memory");
        if (fp && fclose (fp) != 0 && !rc)
            rc = cmd_error ("%s: %s", mpath, strerror (errno));
        cJSON_free (text);
    }
    if (!rc)
        rc = s_export_publish (tmp, target, exists);
    if (rc) {
        if (s_export_rmtree (tmp) != 0 && errno != ENOENT)
            fprintf (stderr, "trainyard: could not remove %s\n", tmp);
        cJSON_Delete (man);
        return TY_CMD_EXIT_ERROR;
    }
    if (json)
        return cmd_json_print (man);
    printf ("%s@%" PRIu64 " -> %s:", name, version, target);
    for (size_t i = 0; i < n; i++)
        printf (" %s", files [i]);
    printf (" %s\n", S_EXPORT_MANIFEST);
    cJSON_Delete (man);
    return TY_CMD_EXIT_OK;
}

/* ---- dispatch ------------------------------------------------------------------- */

int
cmd_model (cmd_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || !strcmp (argv [1], "-h") || !strcmp (argv [1], "--help")) {
        s_usage (argc < 2 ? stderr : stdout);
        return argc < 2 ? TY_CMD_EXIT_USAGE : TY_CMD_EXIT_OK;
    }
    for (const s_sub_t *s = s_subs; s->name; s++)
        if (!strcmp (s->name, argv [1])) {
            cmd_getopt_reset ();
            return s->fn (ctx, argc - 1, argv + 1);
        }
    return cmd_usage_error ("model", "unknown command '%s'", argv [1]);
}

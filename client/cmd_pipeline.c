/*  trainyard pipeline run|status|list|cancel|retry: pipeline files
 *  (docs/pipelines.md) submitted as one atomic set of jobs, and the
 *  pipelines already in the broker (the jobs that share a pipeline id).
 *  The work is in pipeline/ty_pipeline.h; this file parses options and
 *  prints. */
#include "cmd.h"
#include "ty_clock.h"
#include "ty_pipeline.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_MAX_SETS          64     /* --set options of one run */
#define S_WATCH_POLL_MS     500    /* status --watch: how often the jobs are read */
#define S_LIST_SCAN         10000  /* list: newest jobs grouped into pipelines */
#define S_OUTPUTS_COL_MAX   60     /* status: key outputs are cut to keep rows short */
#define S_TREE_DEPTH_MAX    16     /* indentation stops growing here */

static volatile sig_atomic_t s_interrupted;

static void
s_on_sigint (int sig)
{
    (void) sig;
    s_interrupted = 1;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard pipeline COMMAND ...\n"
        "\n"
        "Pipelines: DAGs of jobs from a YAML file (docs/pipelines.md).\n"
        "  run FILE [--set KEY=VALUE]... [--watch] [--dry-run]\n"
        "                 validate, expand and submit FILE as one atomic set of jobs;\n"
        "                 prints the pipeline id\n"
        "  status ID [--watch]   the steps as a tree: state, progress, phase, outputs\n"
        "  list [--limit N]      recent pipelines with a state summary\n"
        "  cancel ID             cancel every unfinished job of the pipeline\n"
        "  retry ID [--watch]    re-run the failed and cancelled steps only\n"
        "Every command takes --help; status and list take --json.\n");
}

/* ---- status ------------------------------------------------------------------ */

typedef struct {
    const Ty__JobInfo *job;     /* the step's newest job */
    int depth;
} s_row_t;

/* The newest job of each step, in submission (= needs) order, with its
   depth in the tree (1 + the deepest parent of the same pipeline). */
static size_t
s_rows (const Ty__JobList *list, s_row_t *rows)
{
    size_t n = 0;
    for (size_t i = 0; i < list->n_jobs; i++) {
        const char *step = ty_pipeline_job_step (list->jobs [i]);
        size_t r = 0;
        while (r < n && strcmp (ty_pipeline_job_step (rows [r].job), step))
            r++;
        rows [r].job = list->jobs [i];
        if (r == n)
            n++;
    }
    for (size_t r = 0; r < n; r++) {
        int depth = 0;
        for (size_t p = 0; p < rows [r].job->n_parents; p++)
            for (size_t q = 0; q < r; q++)
                if (!strcmp (rows [q].job->id, rows [r].job->parents [p])
                    && rows [q].depth + 1 > depth)
                    depth = rows [q].depth + 1;
        /* A retried step's parent may be an older job of a step: by name. */
        for (size_t p = 0; p < rows [r].job->n_parents && !depth; p++)
            for (size_t i = 0; i < list->n_jobs; i++)
                if (!strcmp (list->jobs [i]->id, rows [r].job->parents [p]))
                    for (size_t q = 0; q < r; q++)
                        if (!strcmp (ty_pipeline_job_step (rows [q].job),
                                     ty_pipeline_job_step (list->jobs [i]))
                            && rows [q].depth + 1 > depth)
                            depth = rows [q].depth + 1;
        rows [r].depth = depth > S_TREE_DEPTH_MAX ? S_TREE_DEPTH_MAX : depth;
    }
    return n;
}

static void
s_key_outputs (const Ty__JobInfo *job, char *buf, size_t len)
{
    buf [0] = '\0';
    if (job->error && *job->error) {
        snprintf (buf, len, "error: %s", job->error);
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < job->n_outputs && used + 1 < len; i++) {
        const Ty__Output *o = job->outputs [i];
        if (!strcmp (o->key, "summary") || !strcmp (o->key, "report") || strlen (o->value) > 40)
            continue;
        int n = snprintf (buf + used, len - used, "%s%s=%s", used ? " " : "", o->key, o->value);
        if (n < 0)
            break;
        used += (size_t) n;
    }
    if (strlen (buf) > S_OUTPUTS_COL_MAX)
        strcpy (buf + S_OUTPUTS_COL_MAX - 3, "...");
}

/* Prints the tree; returns the number of lines printed. *ended: every step
   ended; *ok: every step SUCCEEDED. */
static int
s_print_tree (const char *id, const Ty__JobList *list, int *ended, int *ok)
{
    s_row_t *rows = calloc (list->n_jobs, sizeof *rows);
    if (!rows)
        return cmd_error ("out of memory"), 0;
    size_t n = s_rows (list, rows);
    const char *slash = strchr (list->jobs [0]->name ? list->jobs [0]->name : "", '/');
    int lines = 0;
    printf ("pipeline %s  %.*s\n", id, slash ? (int) (slash - list->jobs [0]->name) : 1,
            slash ? list->jobs [0]->name : "-");
    lines++;
    *ended = 1;
    *ok = 1;
    for (size_t r = 0; r < n; r++) {
        const Ty__JobInfo *job = rows [r].job;
        char outputs [S_OUTPUTS_COL_MAX + 1];
        s_key_outputs (job, outputs, sizeof outputs);
        char step [64];
        snprintf (step, sizeof step, "%*s%s", rows [r].depth * 2, "", ty_pipeline_job_step (job));
        printf ("  %-28s %-9s %4.0f%%  %-12.12s %s  %s\n", step, job->state,
                job->progress * 100.0, job->phase && *job->phase ? job->phase : "-",
                job->id, outputs);
        lines++;
        if (strcmp (job->state, "SUCCEEDED") && strcmp (job->state, "FAILED")
            && strcmp (job->state, "CANCELLED"))
            *ended = 0;
        if (strcmp (job->state, "SUCCEEDED"))
            *ok = 0;
    }
    free (rows);
    fflush (stdout);
    return lines;
}

static int
s_status_json (const char *id, const Ty__JobList *list)
{
    cJSON *obj = cJSON_CreateObject ();
    cJSON *steps = obj ? cJSON_AddArrayToObject (obj, "steps") : NULL;
    if (!steps || !cJSON_AddStringToObject (obj, "pipeline", id)) {
        cJSON_Delete (obj);
        return cmd_json_print (NULL);
    }
    s_row_t *rows = calloc (list->n_jobs, sizeof *rows);
    size_t n = rows ? s_rows (list, rows) : 0;
    for (size_t r = 0; r < n; r++) {
        cJSON *job = cmd_json_job (rows [r].job);
        if (!job || !cJSON_AddStringToObject (job, "step", ty_pipeline_job_step (rows [r].job))
            || !cJSON_AddItemToArray (steps, job)) {
            cJSON_Delete (job);
            cJSON_Delete (obj);
            free (rows);
            return cmd_json_print (NULL);
        }
    }
    free (rows);
    return cmd_json_print (obj);
}

/* Draws the pipeline until every step has ended: 0 all succeeded, 1 not. */
static int
s_watch (cmd_ctx_t *ctx, ty_client_t *client, const char *id)
{
    int tty = isatty (STDOUT_FILENO) && !ctx->json;
    int prev_lines = 0;
    char prev_sig [4096] = "";
    struct sigaction sa, old;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sigint;
    sigaction (SIGINT, &sa, &old);
    int exit_code = TY_CMD_EXIT_ERROR;
    while (!s_interrupted) {
        Ty__JobList *list = NULL;
        char err [TY_PIPELINE_ERR_LEN];
        int rc = ty_pipeline_steps (client, id, ctx->timeout_ms, &list, err, sizeof err);
        if (rc != TY_OK) {
            cmd_error ("%s", err);
            break;
        }
        /* Redraw only on change when the output is not a terminal. */
        char sig [sizeof prev_sig] = "";
        for (size_t i = 0; i < list->n_jobs; i++) {
            size_t used = strlen (sig);
            snprintf (sig + used, sizeof sig - used, "%s%s%.0f;", list->jobs [i]->id,
                      list->jobs [i]->state, tty ? list->jobs [i]->progress * 100 : 0.0);
        }
        int ended = 0, ok = 0;
        if (strcmp (sig, prev_sig)) {
            if (tty && prev_lines)
                printf ("\033[%dA\033[J", prev_lines);
            if (ctx->json)
                s_status_json (id, list);
            prev_lines = ctx->json ? 0 : s_print_tree (id, list, &ended, &ok);
            snprintf (prev_sig, sizeof prev_sig, "%s", sig);
        }
        /* ended/ok from this round even if nothing was drawn */
        ended = 1;
        ok = 1;
        s_row_t *rows = calloc (list->n_jobs, sizeof *rows);
        size_t n = rows ? s_rows (list, rows) : 0;
        for (size_t r = 0; r < n; r++) {
            const char *st = rows [r].job->state;
            if (strcmp (st, "SUCCEEDED") && strcmp (st, "FAILED") && strcmp (st, "CANCELLED"))
                ended = 0;
            if (strcmp (st, "SUCCEEDED"))
                ok = 0;
        }
        free (rows);
        ty_client_free_msg (list);
        if (!n) {
            cmd_error ("out of memory");
            break;
        }
        if (ended) {
            exit_code = ok ? TY_CMD_EXIT_OK : TY_CMD_EXIT_ERROR;
            break;
        }
        ty_clock_sleep_ms (S_WATCH_POLL_MS);
    }
    sigaction (SIGINT, &old, NULL);
    if (s_interrupted)
        exit_code = 130;
    return exit_code;
}

static int
s_status (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_WATCH = 256, OPT_JSON };
    static const struct option opts [] = {
        { "watch", no_argument, NULL, OPT_WATCH },
        { "json",  no_argument, NULL, OPT_JSON },
        { "help",  no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int watch = 0, c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_WATCH: watch = 1; break;
            case OPT_JSON:  ctx->json = 1; break;
            case 'h':
                printf ("Usage: trainyard pipeline status ID [--watch] [--json]\n\n"
                        "The pipeline's steps as a tree in needs order: state, progress,\n"
                        "phase, job id and key outputs (or the error).\n"
                        "  --watch  redraw until every step has ended; exit 0 if all\n"
                        "           succeeded (a skipped step counts as succeeded), else 1\n"
                        "  --json   {\"pipeline\": ID, \"steps\": [job objects]}\n");
                return TY_CMD_EXIT_OK;
            default: return cmd_getopt_error ("pipeline status", c, argv);
        }
    }
    if (optind != argc - 1)
        return cmd_usage_error ("pipeline status", "expected one pipeline ID");
    const char *id = argv [optind];
    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    int exit_code;
    if (watch)
        exit_code = s_watch (ctx, client, id);
    else {
        Ty__JobList *list = NULL;
        char err [TY_PIPELINE_ERR_LEN];
        int rc = ty_pipeline_steps (client, id, ctx->timeout_ms, &list, err, sizeof err);
        if (rc != TY_OK)
            exit_code = cmd_error ("%s", err);
        else if (ctx->json)
            exit_code = s_status_json (id, list);
        else {
            int ended, ok;
            s_print_tree (id, list, &ended, &ok);
            exit_code = TY_CMD_EXIT_OK;
        }
        ty_client_free_msg (list);
    }
    ty_client_destroy (&client);
    return exit_code;
}

/* ---- run ------------------------------------------------------------------------ */

static void
s_print_dry_run (const ty_pipeline_t *p)
{
    printf ("pipeline %s: %zu steps (nothing submitted)\n", ty_pipeline_name (p),
            ty_pipeline_nsteps (p));
    for (size_t i = 0; i < ty_pipeline_nsteps (p); i++) {
        const Ty__JobSpec *spec = ty_pipeline_step_spec (p, i);
        printf ("  %-28s %-9s", ty_pipeline_step_name (p, i), ty_pipeline_step_type (p, i));
        size_t np = ty_pipeline_step_nparents (p, i);
        if (np) {
            printf (" needs ");
            for (size_t j = 0; j < np; j++)
                printf ("%s%s", j ? "," : "",
                        ty_pipeline_step_name (p, ty_pipeline_step_parent (p, i, j)));
        }
        if (spec->when && *spec->when)
            printf (" when %s", spec->when);
        printf ("\n");
    }
}

static int
s_run (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_SET = 256, OPT_WATCH, OPT_DRY, OPT_JSON };
    static const struct option opts [] = {
        { "set",     required_argument, NULL, OPT_SET },
        { "watch",   no_argument,       NULL, OPT_WATCH },
        { "dry-run", no_argument,       NULL, OPT_DRY },
        { "json",    no_argument,       NULL, OPT_JSON },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *sets [S_MAX_SETS];
    size_t nsets = 0;
    int watch = 0, dry = 0, c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_SET:
                if (nsets == S_MAX_SETS)
                    return cmd_usage_error ("pipeline run", "at most %d --set", S_MAX_SETS);
                sets [nsets++] = optarg;
                break;
            case OPT_WATCH: watch = 1; break;
            case OPT_DRY:   dry = 1; break;
            case OPT_JSON:  ctx->json = 1; break;
            case 'h':
                printf ("Usage: trainyard pipeline run FILE [--set KEY=VALUE]... [--watch] "
                        "[--dry-run]\n\n"
                        "Validates FILE (errors name the line and the field), expands its\n"
                        "foreach steps and submits every step as one atomic set of jobs.\n"
                        "Prints the pipeline id.\n"
                        "  --set KEY=VALUE  override params.KEY of the file (repeatable)\n"
                        "  --watch          then follow it as `pipeline status --watch`\n"
                        "  --dry-run        print the expanded steps and their needs; submit\n"
                        "                   nothing\n"
                        "  --json           {\"pipeline\": ID, \"jobs\": {step: job id}}\n");
                return TY_CMD_EXIT_OK;
            default: return cmd_getopt_error ("pipeline run", c, argv);
        }
    }
    if (optind != argc - 1)
        return cmd_usage_error ("pipeline run", "expected one pipeline FILE");
    ty_pipeline_t *p = NULL;
    char err [TY_PIPELINE_ERR_LEN];
    int rc = ty_pipeline_load (argv [optind], sets, nsets, &p, err, sizeof err);
    if (rc != TY_OK) {
        fprintf (stderr, "trainyard: %s\n", err);
        return rc == TY_EINVAL ? TY_CMD_EXIT_USAGE : TY_CMD_EXIT_ERROR;
    }
    if (dry) {
        s_print_dry_run (p);
        ty_pipeline_destroy (&p);
        return TY_CMD_EXIT_OK;
    }
    ty_client_t *client = cmd_connect (ctx);
    if (!client) {
        ty_pipeline_destroy (&p);
        return TY_CMD_EXIT_ERROR;
    }
    char id [TY_PIPELINE_ID_LEN + 1];
    rc = ty_pipeline_submit (p, client, NULL, NULL, ctx->timeout_ms, id, sizeof id,
                             err, sizeof err);
    int exit_code = TY_CMD_EXIT_OK;
    if (rc != TY_OK)
        exit_code = cmd_error ("%s", err);
    else if (ctx->json) {
        cJSON *obj = cJSON_CreateObject ();
        cJSON *jobs = obj ? cJSON_AddObjectToObject (obj, "jobs") : NULL;
        int good = jobs && cJSON_AddStringToObject (obj, "pipeline", id);
        for (size_t i = 0; good && i < ty_pipeline_nsteps (p); i++)
            good = cJSON_AddStringToObject (jobs, ty_pipeline_step_name (p, i),
                                            ty_pipeline_job_id (p, i)) != NULL;
        if (!good) {
            cJSON_Delete (obj);
            obj = NULL;
        }
        exit_code = cmd_json_print (obj);
    }
    else {
        printf ("%s\n", id);
        fflush (stdout);
    }
    if (rc == TY_OK && watch && exit_code == TY_CMD_EXIT_OK)
        exit_code = s_watch (ctx, client, id);
    ty_client_destroy (&client);
    ty_pipeline_destroy (&p);
    return exit_code;
}

/* ---- list ------------------------------------------------------------------------ */

typedef struct {
    const char *id;
    char name [64];
    uint64_t started_ms;
    size_t counts [6];          /* pending queued running succeeded failed cancelled */
} s_pipe_t;

static const char *const s_states [6] = {
    "PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED" };

static int
s_list (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_LIMIT = 256, OPT_JSON };
    static const struct option opts [] = {
        { "limit", required_argument, NULL, OPT_LIMIT },
        { "json",  no_argument,       NULL, OPT_JSON },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    long limit = 20;
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_LIMIT:
                if (cmd_parse_long (optarg, 1, 1000, &limit))
                    return cmd_usage_error ("pipeline list", "--limit: 1..1000");
                break;
            case OPT_JSON: ctx->json = 1; break;
            case 'h':
                printf ("Usage: trainyard pipeline list [--limit N] [--json]\n\n"
                        "Recent pipelines, newest first: id, name, how many steps are in\n"
                        "each state (the newest job of each step), started.\n"
                        "  --limit N  at most N pipelines (default 20)\n"
                        "  --json     a JSON array\n");
                return TY_CMD_EXIT_OK;
            default: return cmd_getopt_error ("pipeline list", c, argv);
        }
    }
    if (optind != argc)
        return cmd_usage_error ("pipeline list", "no arguments expected");
    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    Ty__JobList *list = NULL;
    int rc = ty_client_list (client, NULL, NULL, S_LIST_SCAN, ctx->timeout_ms, &list);
    if (rc != TY_OK) {
        int e = cmd_client_error (client, rc, "list");
        ty_client_destroy (&client);
        return e;
    }
    /* Jobs come newest first: pipelines in order of their newest job. */
    s_pipe_t *pipes = calloc (list->n_jobs ? list->n_jobs : 1, sizeof *pipes);
    size_t np = 0;
    for (size_t i = 0; pipes && i < list->n_jobs; i++) {
        const Ty__JobInfo *job = list->jobs [i];
        if (!job->pipeline || !*job->pipeline)
            continue;
        size_t k = 0;
        while (k < np && strcmp (pipes [k].id, job->pipeline))
            k++;
        if (k == np) {
            if (np == (size_t) limit)
                continue;
            pipes [np].id = job->pipeline;
            const char *slash = job->name ? strchr (job->name, '/') : NULL;
            snprintf (pipes [np].name, sizeof pipes [np].name, "%.*s",
                      slash ? (int) (slash - job->name) : 1, slash ? job->name : "-");
            np++;
        }
        if (!pipes [k].started_ms || (job->created_ms && job->created_ms < pipes [k].started_ms))
            pipes [k].started_ms = job->created_ms;
        for (int s = 0; s < 6; s++)
            if (!strcmp (job->state, s_states [s]))
                pipes [k].counts [s]++;
    }
    int exit_code = TY_CMD_EXIT_OK;
    if (!pipes)
        exit_code = cmd_error ("out of memory");
    else if (ctx->json) {
        cJSON *arr = cJSON_CreateArray ();
        int good = arr != NULL;
        for (size_t k = 0; good && k < np; k++) {
            cJSON *o = cJSON_CreateObject ();
            cJSON *counts = o ? cJSON_AddObjectToObject (o, "jobs") : NULL;
            good = counts && cJSON_AddStringToObject (o, "id", pipes [k].id)
                && cJSON_AddStringToObject (o, "name", pipes [k].name)
                && cJSON_AddNumberToObject (o, "created_ms", (double) pipes [k].started_ms);
            for (int s = 0; good && s < 6; s++)
                if (pipes [k].counts [s])
                    good = cJSON_AddNumberToObject (counts, s_states [s],
                                                    (double) pipes [k].counts [s]) != NULL;
            if (!good || !cJSON_AddItemToArray (arr, o)) {
                cJSON_Delete (o);
                good = 0;
            }
        }
        if (!good) {
            cJSON_Delete (arr);
            arr = NULL;
        }
        exit_code = cmd_json_print (arr);
    }
    else {
        printf ("%-20s  %-20s  %-40s  %s\n", "ID", "NAME", "JOBS", "STARTED");
        for (size_t k = 0; k < np; k++) {
            char summary [128] = "", started [48];
            for (int s = 0; s < 6; s++)
                if (pipes [k].counts [s]) {
                    size_t used = strlen (summary);
                    snprintf (summary + used, sizeof summary - used, "%s%zu %s",
                              used ? " " : "", pipes [k].counts [s], s_states [s]);
                }
            cmd_format_time (pipes [k].started_ms, started, sizeof started);
            printf ("%-20s  %-20s  %-40s  %s\n", pipes [k].id, pipes [k].name, summary, started);
        }
    }
    free (pipes);
    ty_client_free_msg (list);
    ty_client_destroy (&client);
    return exit_code;
}

/* ---- cancel, retry ------------------------------------------------------------------ */

static int
s_cancel (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_REASON = 256 };
    static const struct option opts [] = {
        { "reason", required_argument, NULL, OPT_REASON },
        { "help",   no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *reason = "pipeline cancelled by user";
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_REASON: reason = optarg; break;
            case 'h':
                printf ("Usage: trainyard pipeline cancel ID [--reason TEXT]\n\n"
                        "Cancels every unfinished job of the pipeline.\n");
                return TY_CMD_EXIT_OK;
            default: return cmd_getopt_error ("pipeline cancel", c, argv);
        }
    }
    if (optind != argc - 1)
        return cmd_usage_error ("pipeline cancel", "expected one pipeline ID");
    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    size_t n = 0;
    char err [TY_PIPELINE_ERR_LEN];
    int rc = ty_pipeline_cancel (client, argv [optind], reason, ctx->timeout_ms, &n,
                                 err, sizeof err);
    int exit_code = rc == TY_OK ? TY_CMD_EXIT_OK : cmd_error ("%s", err);
    if (rc == TY_OK)
        printf ("%s: %zu job%s asked to stop\n", argv [optind], n, n == 1 ? "" : "s");
    ty_client_destroy (&client);
    return exit_code;
}

static int
s_retry (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_WATCH = 256 };
    static const struct option opts [] = {
        { "watch", no_argument, NULL, OPT_WATCH },
        { "help",  no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int watch = 0, c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_WATCH: watch = 1; break;
            case 'h':
                printf ("Usage: trainyard pipeline retry ID [--watch]\n\n"
                        "Re-runs the steps whose newest job failed or was cancelled, with\n"
                        "the same specs, in the same pipeline; steps that succeeded are not\n"
                        "run again (their outputs are passed on).\n"
                        "  --watch  then follow it as `pipeline status --watch`\n");
                return TY_CMD_EXIT_OK;
            default: return cmd_getopt_error ("pipeline retry", c, argv);
        }
    }
    if (optind != argc - 1)
        return cmd_usage_error ("pipeline retry", "expected one pipeline ID");
    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    size_t n = 0;
    char err [TY_PIPELINE_ERR_LEN];
    int rc = ty_pipeline_retry (client, argv [optind], ctx->timeout_ms, &n, err, sizeof err);
    int exit_code = rc == TY_OK ? TY_CMD_EXIT_OK : cmd_error ("%s", err);
    if (rc == TY_OK) {
        printf ("%s: %zu step%s resubmitted\n", argv [optind], n, n == 1 ? "" : "s");
        fflush (stdout);
        if (watch)
            exit_code = s_watch (ctx, client, argv [optind]);
    }
    ty_client_destroy (&client);
    return exit_code;
}

int
cmd_pipeline (cmd_ctx_t *ctx, int argc, char **argv)
{
    if (argc < 2 || !strcmp (argv [1], "--help") || !strcmp (argv [1], "-h")) {
        s_usage (argc < 2 ? stderr : stdout);
        return argc < 2 ? TY_CMD_EXIT_USAGE : TY_CMD_EXIT_OK;
    }
    static const struct { const char *name; cmd_fn *fn; } subs [] = {
        { "run", s_run }, { "status", s_status }, { "list", s_list },
        { "cancel", s_cancel }, { "retry", s_retry }, { NULL, NULL } };
    for (size_t i = 0; subs [i].name; i++)
        if (!strcmp (argv [1], subs [i].name)) {
            cmd_getopt_reset ();
            return subs [i].fn (ctx, argc - 1, argv + 1);
        }
    return cmd_usage_error ("pipeline", "unknown command '%s' (run, status, list, cancel, "
                            "retry)", argv [1]);
}

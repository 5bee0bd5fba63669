/*  trainyard watch ID...: follow jobs until they end.
 *
 *  On a terminal each job gets one line that is redrawn in place:
 *      id  [########............]  42%  phase  ETA 0:12  loss=0.31 acc=0.8
 *  Piped, it prints a plain line when a job's state or phase changes or its
 *  progress moves by S_PLAIN_STEP; with --json, every event as a JSON line.
 *
 *  Events come from the broker's WATCH stream. A broker restart forgets
 *  subscriptions, so a job silent for S_SILENCE_MS is watched again, which
 *  also returns its current state: one small request per quiet job every few
 *  seconds, and watch is sure to notice the end.
 *
 *  The exit code is the outcome: 0 SUCCEEDED, 1 FAILED, 3 CANCELLED (a
 *  failure among several jobs wins over a cancellation).
 */
#include "cmd.h"
#include "ty_clock.h"
#include "ty_jobstate.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define S_TICK_MS       250     /* redraw period: keeps the ETA counting down */
#define S_SILENCE_MS    3000    /* ask again after this long without an event */
#define S_BAR_WIDTH     20
#define S_MAX_METRICS   8       /* shown per line; more would not fit anyway */
#define S_PLAIN_STEP    0.10    /* piped output: a line per 10% of progress */
#define S_EXIT_SIGINT   130     /* the shell's convention for "killed by SIGINT" */

typedef struct {
    char   key [32];
    double value;
} s_metric_t;

typedef struct {
    const char *id;             /* borrowed from the caller */
    char     state [16];
    uint32_t attempt;
    double   progress;
    char     phase [48];
    char     message [128];
    char     error [512];
    s_metric_t metrics [S_MAX_METRICS];
    size_t   n_metrics;
    int      final;
    int64_t  last_heard_ms;     /* monotonic; 0 = nothing yet */
    /* ETA: progress rate since the attempt's first progress we saw */
    int64_t  rate_t0_ms;
    double   rate_p0;
    int64_t  eta_ms;            /* remaining at eta_at_ms; -1 unknown */
    int64_t  eta_at_ms;
    /* plain output: what was printed last */
    char     printed_state [16];
    char     printed_phase [48];
    uint32_t printed_attempt;
    double   printed_progress;
} s_row_t;

typedef struct {
    cmd_ctx_t  *ctx;
    ty_client_t *client;
    s_row_t    *rows;
    size_t      n;
    int         tty;
    int         drawn;          /* rows already on screen (TTY redraw) */
} s_watch_t;

static volatile sig_atomic_t s_interrupted = 0;

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
        "Usage: trainyard watch [--json] ID...\n"
        "\n"
        "Follow jobs until they end: a live progress bar per job on a terminal\n"
        "(phase, percent, ETA, latest metrics), plain lines otherwise.\n"
        "Exit code: 0 all succeeded, 1 a job failed, 3 a job was cancelled.\n"
        "  --json     every event as one JSON object per line\n"
        "  -h, --help this help\n");
}

static void
s_copy (char *dst, size_t len, const char *src)
{
    snprintf (dst, len, "%s", src ? src : "");
}

static int
s_state_terminal (const char *state)
{
    int s = ty_jobstate_parse (state);
    return s >= 0 && ty_jobstate_is_terminal ((ty_jobstate_t) s);
}

static void
s_merge_metrics (s_row_t *row, Ty__Metric *const *metrics, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!metrics [i] || !metrics [i]->key)
            continue;
        size_t j;
        for (j = 0; j < row->n_metrics; j++)
            if (!strcmp (row->metrics [j].key, metrics [i]->key))
                break;
        if (j == row->n_metrics) {
            if (row->n_metrics == S_MAX_METRICS)
                continue;
            row->n_metrics++;
            s_copy (row->metrics [j].key, sizeof row->metrics [j].key, metrics [i]->key);
        }
        row->metrics [j].value = metrics [i]->value;
    }
}

static void
s_update_eta (s_row_t *row, int64_t now, int new_attempt)
{
    if (strcmp (row->state, "RUNNING") != 0) {
        row->eta_ms = -1;
        row->rate_t0_ms = 0;
        return;
    }
    if (row->rate_t0_ms == 0 || new_attempt || row->progress < row->rate_p0) {
        row->rate_t0_ms = now;
        row->rate_p0 = row->progress;
        row->eta_ms = -1;
        return;
    }
    double done = row->progress - row->rate_p0;
    if (done > 0 && now > row->rate_t0_ms) {
        double ms_per_unit = (double) (now - row->rate_t0_ms) / done;
        row->eta_ms = (int64_t) ((1.0 - row->progress) * ms_per_unit);
        row->eta_at_ms = now;
    }
}

/* Folds one event into its row; returns the row, or NULL if not ours. */
static s_row_t *
s_apply (s_watch_t *w, const Ty__Event *ev)
{
    s_row_t *row = NULL;
    for (size_t i = 0; i < w->n && !row; i++)
        if (ev->job_id && !strcmp (w->rows [i].id, ev->job_id))
            row = &w->rows [i];
    if (!row || row->final)
        return row;
    int64_t now = ty_clock_mono_ms ();
    row->last_heard_ms = now;
    int new_attempt = ev->attempt && ev->attempt != row->attempt;
    if (ev->state && *ev->state)
        s_copy (row->state, sizeof row->state, ev->state);
    if (ev->attempt)
        row->attempt = ev->attempt;
    if (new_attempt)
        row->n_metrics = 0;     /* an earlier attempt's loss says nothing now */
    /* A state event's progress may be proto3's default 0 (a FAILED event
     * does not repeat how far the job got): only progress events, a new
     * attempt or a real value move the bar. */
    int is_progress = ev->kind && !strcmp (ev->kind, "progress");
    if (is_progress || new_attempt || ev->progress > 0)
        row->progress = ev->progress < 0 ? 0 : ev->progress > 1.0 ? 1.0 : ev->progress;
    if (ev->phase && *ev->phase)
        s_copy (row->phase, sizeof row->phase, ev->phase);
    if (ev->message && *ev->message)
        s_copy (row->message, sizeof row->message, ev->message);
    if (ev->error && *ev->error)
        s_copy (row->error, sizeof row->error, ev->error);
    s_merge_metrics (row, ev->metrics, ev->n_metrics);
    row->final = ev->final || s_state_terminal (row->state);
    if (row->final && !strcmp (row->state, "SUCCEEDED"))
        row->progress = 1.0;
    s_update_eta (row, now, new_attempt);
    return row;
}

/* ---- drawing --------------------------------------------------------------- */

static size_t
s_term_width (void)
{
    struct winsize ws;
    if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 80;
}

static void
s_format_row (const s_row_t *row, int64_t now, char *buf, size_t len)
{
    char bar [S_BAR_WIDTH + 1];
    int filled = (int) (row->progress * S_BAR_WIDTH + 0.5);
    for (int i = 0; i < S_BAR_WIDTH; i++)
        bar [i] = i < filled ? '#' : '.';
    bar [S_BAR_WIDTH] = '\0';

    const char *what = row->state [0] ? row->state : "waiting";
    if (!strcmp (row->state, "RUNNING") && row->phase [0])
        what = row->phase;
    char eta [32] = "";
    if (!row->final && row->eta_ms >= 0) {
        char clock [16];
        cmd_format_clock (row->eta_ms - (now - row->eta_at_ms), clock, sizeof clock);
        snprintf (eta, sizeof eta, "  ETA %s", clock);
    }
    char attempt [24] = "";
    if (row->attempt > 1)
        snprintf (attempt, sizeof attempt, "  attempt %u", row->attempt);
    char metrics [256] = "";
    size_t used = 0;
    for (size_t i = 0; i < row->n_metrics && used < sizeof metrics; i++) {
        int n = snprintf (metrics + used, sizeof metrics - used, "%s%s=%.4g",
                          i ? " " : "", row->metrics [i].key, row->metrics [i].value);
        if (n < 0)
            break;
        used += (size_t) n;
    }
    snprintf (buf, len, "%s  [%s] %3.0f%%  %s%s%s%s%s", row->id, bar,
              row->progress * 100.0, what, attempt, eta, metrics [0] ? "  " : "", metrics);
}

static void
s_draw_tty (s_watch_t *w)
{
    size_t width = s_term_width ();
    int64_t now = ty_clock_mono_ms ();
    if (w->n == 1) {
        /* one job: redraw the line in place with \r, as the issue asks */
        char line [1024];
        s_format_row (&w->rows [0], now, line, sizeof line);
        if (strlen (line) >= width)
            line [width - 1] = '\0';
        printf ("\r\033[K%s", line);
    }
    else {
        /* several: one line each; climb back over the ones already drawn */
        if (w->drawn)
            printf ("\033[%dA", w->drawn);
        for (size_t i = 0; i < w->n; i++) {
            char line [1024];
            s_format_row (&w->rows [i], now, line, sizeof line);
            if (strlen (line) >= width)
                line [width - 1] = '\0';
            printf ("\r\033[K%s\n", line);
        }
        w->drawn = (int) w->n;
    }
    fflush (stdout);
}

static void
s_print_plain (s_row_t *row)
{
    int changed = strcmp (row->state, row->printed_state) != 0
               || strcmp (row->phase, row->printed_phase) != 0
               || row->attempt != row->printed_attempt
               || row->progress >= row->printed_progress + S_PLAIN_STEP
               || (row->final && row->progress != row->printed_progress);
    if (!changed)
        return;
    char metrics [256] = "";
    size_t used = 0;
    for (size_t i = 0; i < row->n_metrics && used < sizeof metrics; i++) {
        int n = snprintf (metrics + used, sizeof metrics - used, "%s%s=%.4g",
                          i ? " " : "", row->metrics [i].key, row->metrics [i].value);
        if (n < 0)
            break;
        used += (size_t) n;
    }
    printf ("%s  %-9s  attempt %u  %3.0f%%%s%s%s%s%s%s\n", row->id,
            row->state [0] ? row->state : "-", row->attempt, row->progress * 100.0,
            row->phase [0] ? "  " : "", row->phase,
            row->message [0] ? "  " : "", row->message,
            metrics [0] ? "  " : "", metrics);
    fflush (stdout);
    s_copy (row->printed_state, sizeof row->printed_state, row->state);
    s_copy (row->printed_phase, sizeof row->printed_phase, row->phase);
    row->printed_attempt = row->attempt;
    row->printed_progress = row->progress;
}

static int
s_print_event_json (const Ty__Event *ev)
{
    int rc = cmd_json_print (cmd_json_event (ev));
    fflush (stdout);
    return rc;
}

/* ---- the loop ---------------------------------------------------------------- */

static int
s_all_final (const s_watch_t *w)
{
    for (size_t i = 0; i < w->n; i++)
        if (!w->rows [i].final)
            return 0;
    return 1;
}

/* Shows an update of row (NULL: just a tick) in the current mode. */
static void
s_show (s_watch_t *w, s_row_t *row, const Ty__Event *ev)
{
    if (w->ctx->json) {
        if (ev && row)
            s_print_event_json (ev);
    }
    else if (w->tty)
        s_draw_tty (w);
    else if (row)
        s_print_plain (row);
}

/* 1 if ev would change what row shows (a re-asked state often does not). */
static int
s_is_news (const s_watch_t *w, const Ty__Event *ev)
{
    for (size_t i = 0; i < w->n; i++) {
        const s_row_t *row = &w->rows [i];
        if (!ev->job_id || strcmp (row->id, ev->job_id))
            continue;
        return !row->last_heard_ms
            || strcmp (row->state, ev->state ? ev->state : "") != 0
            || row->attempt != ev->attempt
            || row->progress != ev->progress
            || strcmp (row->phase, ev->phase ? ev->phase : "") != 0;
    }
    return 0;
}

static int
s_first_event (const Ty__Event *ev, void *arg)
{
    s_watch_t *w = arg;
    int news = s_is_news (w, ev);
    s_row_t *row = s_apply (w, ev);
    if (news || !w->ctx->json)
        s_show (w, row, ev);
    return 1;       /* we only wanted the subscription and the current state */
}

/* Rows quiet for too long are asked again with a WATCH: the broker answers
 * with the current state and, after a restart that forgot us, subscribes us
 * anew (it ignores a duplicate subscription). */
static int
s_poll_quiet (s_watch_t *w)
{
    int64_t now = ty_clock_mono_ms ();
    for (size_t i = 0; i < w->n; i++) {
        s_row_t *row = &w->rows [i];
        if (row->final || (row->last_heard_ms && now - row->last_heard_ms < S_SILENCE_MS))
            continue;
        int rc = ty_client_watch (w->client, row->id, w->ctx->timeout_ms, s_first_event, w, NULL);
        if (rc == TY_ETIMEDOUT) {
            /* the broker may be restarting: keep watching, ask again later */
            row->last_heard_ms = now;
            continue;
        }
        if (rc != TY_OK)
            return cmd_client_error (w->client, rc, "watch %s", row->id);
    }
    return TY_CMD_EXIT_OK;
}

static int
s_outcome (const s_watch_t *w)
{
    int failed = 0, cancelled = 0;
    for (size_t i = 0; i < w->n; i++) {
        const s_row_t *row = &w->rows [i];
        if (!strcmp (row->state, "FAILED"))
            failed = 1;
        else if (!strcmp (row->state, "CANCELLED"))
            cancelled = 1;
        if (!w->ctx->json && strcmp (row->state, "SUCCEEDED") != 0)
            fprintf (stderr, "trainyard: job %s %s%s%s\n", row->id, row->state,
                     row->error [0] ? ": " : "", row->error);
    }
    return failed ? TY_CMD_EXIT_ERROR : cancelled ? TY_CMD_EXIT_CANCELLED : TY_CMD_EXIT_OK;
}

int
cmd_watch_jobs (cmd_ctx_t *ctx, ty_client_t *client, char *const *ids, size_t n,
                int subscribed)
{
    s_watch_t w = { ctx, client, calloc (n ? n : 1, sizeof (s_row_t)), n,
                    isatty (STDOUT_FILENO), 0 };
    if (!w.rows)
        return cmd_error ("out of memory");
    for (size_t i = 0; i < n; i++) {
        w.rows [i].id = ids [i];
        w.rows [i].eta_ms = -1;
        w.rows [i].printed_progress = -1.0;
    }
    /* SIGINT ends the wait cleanly (line finished, exit 130) rather than
     * leaving the cursor in the middle of a progress bar. */
    struct sigaction sa, old_sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sigint;
    sigemptyset (&sa.sa_mask);
    int have_old = sigaction (SIGINT, &sa, &old_sa) == 0;

    int exit_code = TY_CMD_EXIT_OK;
    for (size_t i = 0; i < n && !subscribed && !s_interrupted; i++) {
        int rc = ty_client_watch (client, ids [i], ctx->timeout_ms, s_first_event, &w, NULL);
        if (rc != TY_OK) {
            exit_code = cmd_client_error (client, rc, "watch %s", ids [i]);
            break;
        }
    }
    while (exit_code == TY_CMD_EXIT_OK && !s_all_final (&w) && !s_interrupted) {
        Ty__Event *ev = NULL;
        int rc = ty_client_next_event (client, S_TICK_MS, &ev);
        if (rc == TY_OK) {
            s_row_t *row = s_apply (&w, ev);
            if (row)
                s_show (&w, row, ev);
            ty_client_free_msg (ev);
        }
        else if (rc == TY_ETIMEDOUT || rc == EINTR) {
            if (w.tty && !ctx->json)
                s_draw_tty (&w);    /* the ETA counts down between events */
        }
        else {
            ty_client_free_msg (ev);
            exit_code = cmd_client_error (client, rc, "watch");
            break;
        }
        if (exit_code == TY_CMD_EXIT_OK && !s_interrupted)
            exit_code = s_poll_quiet (&w);
    }
    if (w.tty && !ctx->json) {
        s_draw_tty (&w);
        if (n == 1)
            putchar ('\n');
        fflush (stdout);
    }
    if (s_interrupted)
        exit_code = S_EXIT_SIGINT;
    else if (exit_code == TY_CMD_EXIT_OK)
        exit_code = s_outcome (&w);
    if (have_old)
        sigaction (SIGINT, &old_sa, NULL);
    free (w.rows);
    return exit_code;
}

int
cmd_watch (cmd_ctx_t *ctx, int argc, char **argv)
{
    enum { OPT_JSON = 256 };
    static const struct option opts [] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_JSON: ctx->json = 1; break;
            case 'h':      s_usage (stdout); return TY_CMD_EXIT_OK;
            default:       return cmd_getopt_error ("watch", c, argv);
        }
    }
    if (optind >= argc)
        return cmd_usage_error ("watch", "missing job ID");
    ty_client_t *client = cmd_connect (ctx);
    if (!client)
        return TY_CMD_EXIT_ERROR;
    int exit_code = cmd_watch_jobs (ctx, client, argv + optind, (size_t) (argc - optind), 0);
    ty_client_destroy (&client);
    return exit_code;
}

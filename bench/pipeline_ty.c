/*  pipeline_ty: trainyard's side of the pipeline benchmark (bench/pipeline).
 *
 *  Usage: pipeline_ty [--broker ENDPOINT] [--sleep-ms S] chain N | fanout N
 *
 *  chain N   a pipeline of N noop steps, each needing the one before;
 *  fanout N  a pipeline of N independent noop steps (a 200-wide fan-out).
 *
 *  The pipeline is written as a pipeline file (YAML text), loaded and
 *  validated with ty_pipeline_load_string and submitted with
 *  ty_pipeline_submit, as `trainyard pipeline run` does; then the events of
 *  every job are read until all N are final. The broker, Redis and the noop
 *  workers are started by bench/pipeline.
 *
 *  Prints RESULT system=trainyard mode=chain|fanout n=N secs=… load_ms=…
 *  work_ms=… overhead_ms_per_step=…, where work_ms is what the steps
 *  themselves must take (chain: N x sleep; fan-out: N x sleep / workers),
 *  and the overhead is (secs - work) / N.
 */
#include "bench_util.h"
#include "ty_client.h"
#include "ty_pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALL_TIMEOUT_MS  30000
#define EVENT_TIMEOUT_MS 60000
#define STEP_YAML_MAX    96          /* one step's lines in the generated file */
#define ERR_LEN          512
#define SUBSCRIBE_MS     300         /* the broker's answer to the watch, then quiet */

static const char *s_broker = "tcp://127.0.0.1:7700";
static unsigned s_sleep_ms = 0;
static unsigned s_workers = 2;

/* The pipeline file: n noop steps s0..s(n-1), chained or independent. */
static char *
s_yaml (const char *mode, size_t n)
{
    size_t cap = 64 + n * STEP_YAML_MAX;
    char *y = malloc (cap);
    if (!y)
        return NULL;
    size_t len = (size_t) snprintf (y, cap, "name: bench-%s\nsteps:\n", mode);
    int chain = !strcmp (mode, "chain");
    for (size_t i = 0; i < n; i++) {
        len += (size_t) snprintf (y + len, cap - len, "  s%zu: {type: noop, sleep_ms: %u", i,
                                  s_sleep_ms);
        if (chain && i > 0)
            len += (size_t) snprintf (y + len, cap - len, ", needs: [s%zu]", i - 1);
        len += (size_t) snprintf (y + len, cap - len, "}\n");
    }
    return y;
}

static int
s_run (const char *mode, size_t n)
{
    int rc = 1;
    char err [ERR_LEN];
    char pid [128];
    ty_pipeline_t *p = NULL;
    ty_client_t *c = ty_client_new (s_broker);
    char *yaml = s_yaml (mode, n);
    if (!c || !yaml) {
        fprintf (stderr, "pipeline_ty: out of memory\n");
        goto done;
    }
    /* Every job's events: subscribe first (a short watch of "" subscribes,
     * then times out with nothing to see), so no final event can be missed. */
    int wrc = ty_client_watch (c, "", SUBSCRIBE_MS, NULL, NULL, NULL);
    if (wrc != TY_OK && wrc != TY_ETIMEDOUT) {
        fprintf (stderr, "pipeline_ty: watch: %s\n", ty_client_errstr (c));
        goto done;
    }
    int64_t t0 = bu_now_us ();
    if (ty_pipeline_load_string (yaml, "bench", NULL, 0, &p, err, sizeof err) != TY_OK) {
        fprintf (stderr, "pipeline_ty: %s\n", err);
        goto done;
    }
    int64_t t_loaded = bu_now_us ();
    if (ty_pipeline_submit (p, c, NULL, NULL, CALL_TIMEOUT_MS, pid, sizeof pid, err,
                            sizeof err) != TY_OK) {
        fprintf (stderr, "pipeline_ty: submit: %s\n", err);
        goto done;
    }
    size_t finals = 0, failed = 0;
    while (finals < n) {
        Ty__Event *ev = NULL;
        int erc = ty_client_next_event (c, EVENT_TIMEOUT_MS, &ev);
        if (erc != TY_OK) {
            fprintf (stderr, "pipeline_ty: %zu of %zu steps ended, then: %s\n", finals, n,
                     ty_strerror (erc));
            goto done;
        }
        if (ev->final) {
            finals++;
            failed += strcmp (ev->state, "SUCCEEDED") != 0;
        }
        ty_client_free_msg (ev);
    }
    int64_t t_end = bu_now_us ();
    if (failed) {
        fprintf (stderr, "pipeline_ty: %zu of %zu steps did not succeed\n", failed, n);
        goto done;
    }
    double secs = (double) (t_end - t0) / 1e6;
    double work_ms = !strcmp (mode, "chain")
                   ? (double) n * s_sleep_ms
                   : (double) ((n + s_workers - 1) / s_workers) * s_sleep_ms;
    double over = (secs * 1e3 - work_ms) / (double) n;
    printf ("RESULT system=trainyard mode=%s n=%zu secs=%.3f load_ms=%.2f work_ms=%.0f "
            "overhead_ms_per_step=%.3f pipeline=%s\n", mode, n, secs,
            (double) (t_loaded - t0) / 1e3, work_ms, over, pid);
    fflush (stdout);
    rc = 0;
done:
    ty_pipeline_destroy (&p);
    free (yaml);
    ty_client_destroy (&c);
    return rc;
}

int
main (int argc, char **argv)
{
    static const char *usage =
        "usage: pipeline_ty [--broker EP] [--sleep-ms S] [--workers W] chain N | fanout N\n";
    int i = 1;
    for (; i + 1 < argc && argv [i][0] == '-'; i += 2) {
        if (!strcmp (argv [i], "--broker"))
            s_broker = argv [i + 1];
        else if (!strcmp (argv [i], "--sleep-ms"))
            s_sleep_ms = !strcmp (argv [i + 1], "0") ? 0 : (unsigned) bu_parse_count (argv [i + 1]);
        else if (!strcmp (argv [i], "--workers"))
            s_workers = (unsigned) bu_parse_count (argv [i + 1]);
        else
            bu_usage (usage);
    }
    if (argc - i != 2 || (strcmp (argv [i], "chain") && strcmp (argv [i], "fanout"))
    ||  s_workers == 0)
        bu_usage (usage);
    size_t n = bu_parse_count (argv [i + 1]);
    if (n == 0)
        bu_usage (usage);
    return s_run (argv [i], n);
}

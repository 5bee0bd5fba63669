/*  trainyard-scheduler: runs pipelines on cron schedules and retrain
 *  triggers, both stored in Redis (docs/scheduler.md).
 *
 *  One loop, one tick every --tick-ms: for each schedule that is not paused,
 *  the due slot is the latest cron time <= now and > last_slot (after a
 *  downtime: one run, not one per missed slot). A run is: take the slot's
 *  lease in Redis (two schedulers never both start it), agree on its
 *  pipeline id, load and submit the pipeline with idempotency prefix
 *  "sched:<name>:<slot>" (a crash between submit and record is harmless:
 *  the resubmit returns the same jobs), record last_slot. Triggers are
 *  checked every --trigger-every-ms the same way, once per fire key.
 *
 *  A run whose file does not load or that the broker refuses counts as done
 *  (last_error says why); only an unreachable broker makes it retry.
 */
#include "ty_clock.h"
#include "ty_cron.h"
#include "ty_error.h"
#include "ty_id.h"
#include "ty_launch.h"
#include "ty_log.h"
#include "ty_schedrec.h"
#include "ty_schedule.h"
#include "ty_trigger.h"
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_TICK_MS_DEFAULT        1000
#define S_SUBMIT_TIMEOUT_MS      5000    /* one Submit round trip to the broker */
/* The agreed pipeline id of a run outlives any retry of that run. */
#define S_PIPELINE_ID_TTL_MS     (7LL * 24 * 3600 * 1000)
#define S_REDIS_RETRY_LOG_MS     10000   /* log a Redis outage at most this often */
#define S_ID_MAX                 64
#define S_IDEM_MAX               (TY_SCHEDREC_KEY_MAX + 32)
#define S_HOST_MAX               64

typedef struct {
    const char *redis_url;
    const char *broker;
    const char *data;
    const char *prefix;
    char        id [S_ID_MAX];
    long        tick_ms;
    long        trigger_every_ms;
    long        lease_ms;
    long        submit_timeout_ms;
    long long   now_offset_s;
    int         crash_after_submit;   /* test seam: SIGKILL self after a submit */
} s_opts_t;

typedef struct {
    s_opts_t     opts;
    ty_redis_t  *redis;
    ty_client_t *client;
    int64_t      next_trigger_ms;
    int64_t      last_redis_log_ms;
} s_sched_t;

static volatile sig_atomic_t s_stop;

static void
s_on_signal (int sig)
{
    TY_UNUSED (sig);
    s_stop = 1;
}

static int64_t
s_now (const s_sched_t *self)
{
    return ty_clock_wall_ms () / 1000 + self->opts.now_offset_s;
}

/* A broker that timed out may still answer the old request later: start a
 * fresh connection rather than read a stale reply as the next answer. */
static void
s_client_reset (s_sched_t *self)
{
    ty_client_destroy (&self->client);
    self->client = ty_client_new (self->opts.broker);
    if (!self->client)
        ty_error ("cannot create a client for %s", self->opts.broker);
}

/* Agrees on the pipeline id (key_base ":pipeline") and submits. Returns the
 * launch status; pipeline gets the id. */
static int
s_launch (s_sched_t *self, const char *key_base, const char *file,
          char *const *sets, size_t nsets, const char *idem,
          char *pipeline, size_t pipeline_len, char *err, size_t errlen)
{
    char key [TY_SCHEDREC_KEY_MAX + 16], proposed [TY_LAUNCH_ID_MAX], id [TY_ID_LEN + 1];
    pipeline [0] = '\0';
    ty_id_new (id);
    snprintf (proposed, sizeof proposed, "p-%s", id);
    if (snprintf (key, sizeof key, "%s:pipeline", key_base) >= (int) sizeof key) {
        snprintf (err, errlen, "key too long");
        return TY_EINVAL;
    }
    int rc = ty_schedrec_claim (self->redis, key, proposed, S_PIPELINE_ID_TTL_MS,
                                pipeline, pipeline_len);
    if (rc != TY_OK) {
        snprintf (err, errlen, "redis: %s", ty_redis_errstr (self->redis));
        return TY_ESTORE;       /* any failure to agree on the id: try again */
    }
    if (!self->client) {
        s_client_reset (self);
        if (!self->client) {
            snprintf (err, errlen, "no client");
            return TY_ECONNECT;
        }
    }
    rc = ty_launch_run (self->client, file, (const char *const *) sets, nsets, pipeline, idem,
                        (int) self->opts.submit_timeout_ms, err, errlen);
    if (rc == TY_OK && self->opts.crash_after_submit) {
        ty_warn ("--crash-after-submit: killing myself after submitting %s", pipeline);
        raise (SIGKILL);
    }
    return rc;
}

/* ---- schedules ------------------------------------------------------------- */

static void
s_schedule_tick (s_sched_t *self, const char *name, int64_t now)
{
    const char *prefix = self->opts.prefix;
    ty_schedule_t *rec = NULL;
    int rc = ty_schedule_load (self->redis, prefix, name, &rec);
    if (rc != TY_OK) {
        if (rc != TY_ENOTFOUND)
            ty_warn ("schedule %s: cannot load: %s", name, ty_strerror (rc));
        return;
    }
    ty_cron_t cron;
    char err [TY_LAUNCH_ERR_MAX];
    if (ty_cron_parse (rec->cron, rec->utc, &cron, err, sizeof err) != TY_OK) {
        ty_warn ("schedule %s: bad cron line '%s': %s", name, rec->cron, err);
        ty_schedule_destroy (&rec);
        return;
    }
    int64_t next = 0;
    if (ty_cron_next (&cron, now, &next) != TY_OK)
        next = 0;
    if (next != rec->next && ty_schedule_set_next (self->redis, prefix, name, next) != TY_OK)
        ty_warn ("schedule %s: cannot store next: %s", name, ty_redis_errstr (self->redis));
    int64_t slot;
    if (rec->paused || ty_cron_due (&cron, rec->last_slot, now, &slot) != TY_OK) {
        ty_schedule_destroy (&rec);
        return;
    }
    int won = 0;
    rc = ty_schedule_lease (self->redis, prefix, name, slot, self->opts.id,
                            self->opts.lease_ms, &won);
    if (rc != TY_OK || !won) {
        if (rc != TY_OK)
            ty_warn ("schedule %s: lease: %s", name, ty_redis_errstr (self->redis));
        else
            ty_debug ("schedule %s: slot %" PRId64 " is another scheduler's", name, slot);
        ty_schedule_destroy (&rec);
        return;
    }
    char key_base [TY_SCHEDREC_KEY_MAX], idem [S_IDEM_MAX], pipeline [TY_LAUNCH_ID_MAX];
    ty_schedule_key (prefix, name, key_base, sizeof key_base);
    snprintf (key_base + strlen (key_base), sizeof key_base - strlen (key_base),
              ":slot:%" PRId64, slot);
    snprintf (idem, sizeof idem, "sched:%s:%" PRId64, name, slot);
    err [0] = '\0';
    rc = s_launch (self, key_base, rec->file, rec->sets, rec->nsets, idem,
                   pipeline, sizeof pipeline, err, sizeof err);
    if (ty_launch_retryable (rc) || rc == TY_ESTORE) {
        ty_warn ("schedule %s: slot %" PRId64 ": %s; will retry", name, slot, err);
        if (rc != TY_ESTORE)
            s_client_reset (self);
        ty_schedule_destroy (&rec);
        return;
    }
    if (rc == TY_OK)
        ty_info ("schedule %s: slot %" PRId64 " started pipeline %s", name, slot, pipeline);
    else
        ty_error ("schedule %s: slot %" PRId64 " failed: %s", name, slot, err);
    int applied = 0;
    if (ty_schedule_record (self->redis, prefix, name, slot, rc == TY_OK ? pipeline : "",
                            rc == TY_OK ? NULL : err, next, &applied) != TY_OK)
        ty_warn ("schedule %s: cannot record slot %" PRId64 ": %s", name, slot,
                 ty_redis_errstr (self->redis));
    ty_schedule_destroy (&rec);
}

static void
s_schedules (s_sched_t *self, int64_t now)
{
    char **names = NULL;
    size_t n = 0;
    if (ty_schedule_names (self->redis, self->opts.prefix, &names, &n) != TY_OK)
        return;
    for (size_t i = 0; i < n && !s_stop; i++)
        s_schedule_tick (self, names [i], now);
    ty_schedrec_strv_free (names, n);
}

/* ---- triggers -------------------------------------------------------------- */

static void
s_trigger_tick (s_sched_t *self, const char *name, int64_t now)
{
    const char *prefix = self->opts.prefix;
    ty_trigger_t *rec = NULL;
    int rc = ty_trigger_load (self->redis, prefix, name, &rec);
    if (rc != TY_OK) {
        if (rc != TY_ENOTFOUND)
            ty_warn ("trigger %s: cannot load: %s", name, ty_strerror (rc));
        return;
    }
    ty_trigger_verdict_t v;
    rc = ty_trigger_check (rec, self->opts.data, now, &v);
    if (rc != TY_OK)
        ty_debug ("trigger %s: %s", name, v.why);
    if (strcmp (v.why, rec->last_check)
        && ty_trigger_record_check (self->redis, prefix, name, v.why) != TY_OK)
        ty_warn ("trigger %s: cannot record check: %s", name, ty_redis_errstr (self->redis));
    if (!v.fire) {
        ty_trigger_destroy (&rec);
        return;
    }
    int won = 0;
    rc = ty_trigger_lease (self->redis, prefix, name, v.key, self->opts.id,
                           self->opts.lease_ms, &won);
    if (rc != TY_OK || !won) {
        ty_trigger_destroy (&rec);
        return;
    }
    char key_base [TY_SCHEDREC_KEY_MAX], idem [S_IDEM_MAX], pipeline [TY_LAUNCH_ID_MAX];
    char err [TY_LAUNCH_ERR_MAX] = "";
    snprintf (key_base, sizeof key_base, "%strigger:%s:fire:%s", prefix, name, v.key);
    snprintf (idem, sizeof idem, "trigger:%s:%s", name, v.key);
    rc = s_launch (self, key_base, rec->file, rec->sets, rec->nsets, idem,
                   pipeline, sizeof pipeline, err, sizeof err);
    if (ty_launch_retryable (rc) || rc == TY_ESTORE) {
        ty_warn ("trigger %s (%s): %s; will retry", name, v.key, err);
        if (rc != TY_ESTORE)
            s_client_reset (self);
        ty_trigger_destroy (&rec);
        return;
    }
    if (rc == TY_OK)
        ty_info ("trigger %s fired (%s): pipeline %s: %s", name, v.key, pipeline, v.why);
    else
        ty_error ("trigger %s (%s) failed: %s", name, v.key, err);
    if (ty_trigger_record_fire (self->redis, prefix, name, v.key, rc == TY_OK ? pipeline : "",
                                rc == TY_OK ? NULL : err) != TY_OK)
        ty_warn ("trigger %s: cannot record: %s", name, ty_redis_errstr (self->redis));
    ty_trigger_destroy (&rec);
}

static void
s_triggers (s_sched_t *self, int64_t now)
{
    char **names = NULL;
    size_t n = 0;
    if (ty_trigger_names (self->redis, self->opts.prefix, &names, &n) != TY_OK)
        return;
    for (size_t i = 0; i < n && !s_stop; i++)
        s_trigger_tick (self, names [i], now);
    ty_schedrec_strv_free (names, n);
}

/* ---- main -------------------------------------------------------------------- */

static void
s_tick (s_sched_t *self)
{
    if (!ty_redis_ok (self->redis) && ty_redis_connect (self->redis) != TY_OK) {
        int64_t t = ty_clock_mono_ms ();
        if (t - self->last_redis_log_ms >= S_REDIS_RETRY_LOG_MS) {
            ty_warn ("redis %s: %s", self->opts.redis_url, ty_redis_errstr (self->redis));
            self->last_redis_log_ms = t;
        }
        return;
    }
    int64_t now = s_now (self);
    s_schedules (self, now);
    int64_t mono = ty_clock_mono_ms ();
    if (!s_stop && mono >= self->next_trigger_ms) {
        s_triggers (self, now);
        self->next_trigger_ms = mono + self->opts.trigger_every_ms;
    }
}

static void
s_usage (FILE *out)
{
    fprintf (out,
"usage: trainyard-scheduler [options]\n"
"\n"
"Runs pipelines on cron schedules and retrain triggers stored in Redis\n"
"(trainyard schedule add / trainyard trigger add).\n"
"\n"
"  --redis URL             redis://host:port or unix:///path (default redis://127.0.0.1:6379)\n"
"  --broker EP             the broker's client endpoint (default tcp://127.0.0.1:7700)\n"
"  --data DIR              datasets and the model registry, for triggers (default ./data)\n"
"  --prefix P              Redis key prefix, as the broker's (default ty:)\n"
"  --tick-ms N             how often schedules are looked at (default 1000)\n"
"  --trigger-every-ms N    how often triggers are checked (default: every tick)\n"
"  --lease-ms N            how long a claim on a run lasts (default 60000)\n"
"  --submit-timeout-ms N   wait this long for the broker (default 5000)\n"
"  --id X                  this scheduler's id in leases (default host:pid)\n"
"  --now-offset-s N        add N seconds to the clock (tests, rehearsals)\n"
"  --log-level L           debug, info, warn or error (default info)\n"
"  --log-file F            append logs to F instead of stderr\n"
"  -h, --help              this text\n");
}

static int
s_parse_long (const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    long v = strtol (s, &end, 10);
    if (!*s || *end || v < min || v > max) {
        fprintf (stderr, "trainyard-scheduler: --%s: want an integer in %ld..%ld, got '%s'\n",
                 opt, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int
main (int argc, char **argv)
{
    enum { O_REDIS = 256, O_BROKER, O_DATA, O_PREFIX, O_TICK, O_TRIG, O_LEASE, O_SUBMIT,
           O_ID, O_OFFSET, O_LEVEL, O_LOGFILE, O_CRASH };
    static const struct option longopts [] = {
        { "redis",              required_argument, 0, O_REDIS },
        { "broker",             required_argument, 0, O_BROKER },
        { "data",               required_argument, 0, O_DATA },
        { "prefix",             required_argument, 0, O_PREFIX },
        { "tick-ms",            required_argument, 0, O_TICK },
        { "trigger-every-ms",   required_argument, 0, O_TRIG },
        { "lease-ms",           required_argument, 0, O_LEASE },
        { "submit-timeout-ms",  required_argument, 0, O_SUBMIT },
        { "id",                 required_argument, 0, O_ID },
        { "now-offset-s",       required_argument, 0, O_OFFSET },
        { "log-level",          required_argument, 0, O_LEVEL },
        { "log-file",           required_argument, 0, O_LOGFILE },
        /* fault-injection seam for the crash test, not for operators */
        { "crash-after-submit", no_argument,       0, O_CRASH },
        { "help",               no_argument,       0, 'h' },
        { 0, 0, 0, 0 }
    };
    s_sched_t self;
    memset (&self, 0, sizeof self);
    s_opts_t *o = &self.opts;
    o->redis_url = "redis://127.0.0.1:6379";
    o->broker = "tcp://127.0.0.1:7700";
    o->data = "./data";
    o->prefix = TY_SCHEDREC_PREFIX;
    o->tick_ms = S_TICK_MS_DEFAULT;
    o->trigger_every_ms = -1;
    o->lease_ms = TY_SCHEDULE_LEASE_MS;
    o->submit_timeout_ms = S_SUBMIT_TIMEOUT_MS;
    const char *log_level = "info", *log_file = NULL;
    long offset = 0;
    int c;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
            case O_REDIS:   o->redis_url = optarg; break;
            case O_BROKER:  o->broker = optarg; break;
            case O_DATA:    o->data = optarg; break;
            case O_PREFIX:  o->prefix = optarg; break;
            case O_TICK:    bad = s_parse_long ("tick-ms", optarg, 10, 3600000, &o->tick_ms); break;
            case O_TRIG:    bad = s_parse_long ("trigger-every-ms", optarg, 10, 86400000,
                                                &o->trigger_every_ms); break;
            case O_LEASE:   bad = s_parse_long ("lease-ms", optarg, 100, 86400000, &o->lease_ms); break;
            case O_SUBMIT:  bad = s_parse_long ("submit-timeout-ms", optarg, 100, 600000,
                                                &o->submit_timeout_ms); break;
            case O_ID:      snprintf (o->id, sizeof o->id, "%s", optarg); break;
            case O_OFFSET:  bad = s_parse_long ("now-offset-s", optarg, -3153600000L,
                                                3153600000L, &offset); break;
            case O_LEVEL:   log_level = optarg; break;
            case O_LOGFILE: log_file = optarg; break;
            case O_CRASH:   o->crash_after_submit = 1; break;
            case 'h':       s_usage (stdout); return 0;
            default:        s_usage (stderr); return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf (stderr, "trainyard-scheduler: unexpected argument '%s'\n", argv [optind]);
        s_usage (stderr);
        return 2;
    }
    o->now_offset_s = offset;
    if (o->trigger_every_ms < 0)
        o->trigger_every_ms = o->tick_ms;
    if (!o->id [0]) {
        char host [S_HOST_MAX] = "localhost";
        if (gethostname (host, sizeof host) != 0)
            snprintf (host, sizeof host, "localhost");
        host [sizeof host - 1] = '\0';
        snprintf (o->id, sizeof o->id, "%s:%ld", host, (long) getpid ());
    }
    int level = ty_log_level_parse (log_level);
    if (level < 0) {
        fprintf (stderr, "trainyard-scheduler: --log-level: want debug, info, warn or error\n");
        return 2;
    }
    ty_log_init ("scheduler", (ty_log_level_t) level);
    if (log_file && ty_log_file (log_file) != 0) {
        fprintf (stderr, "trainyard-scheduler: cannot open log file %s\n", log_file);
        return 1;
    }
    self.redis = ty_redis_new (o->redis_url);
    if (!self.redis) {
        fprintf (stderr, "trainyard-scheduler: bad --redis URL '%s'\n", o->redis_url);
        return 2;
    }
    s_client_reset (&self);
    if (!self.client) {
        ty_redis_destroy (&self.redis);
        return 1;
    }
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
    ty_info ("scheduler %s: redis %s, broker %s, data %s, tick %ld ms", o->id, o->redis_url,
             o->broker, o->data, o->tick_ms);
    while (!s_stop) {
        int64_t start = ty_clock_mono_ms ();
        s_tick (&self);
        int64_t left = o->tick_ms - (ty_clock_mono_ms () - start);
        if (left > 0 && !s_stop)
            ty_clock_sleep_ms (left);
    }
    ty_info ("scheduler %s: stopping", o->id);
    ty_client_destroy (&self.client);
    ty_redis_destroy (&self.redis);
    return 0;
}

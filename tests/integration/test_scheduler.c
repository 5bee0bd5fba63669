/*  test_scheduler: trainyard-scheduler against a real redis-server, a real
 *  broker and real noop workers (tests/harness), with real LMDB datasets
 *  and a real model registry for the trigger.
 *
 *  No test waits for real minutes: schedules are hourly and the scheduler's
 *  clock is moved (--now-offset-s) to the middle of an hour, so the due slot
 *  is known and the next one is half an hour away whatever the wall clock.
 *
 *  Runs are counted three ways: jobs the broker created (ty:jobs), runs the
 *  worker completed (its exec log), and the schedule's own record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_registry.h"
#include "ty_schedule.h"
#include "ty_testenv.h"
#include "ty_trigger.h"

#define S_HB_MS          100
#define S_TICK_MS        "40"
#define S_WAIT_MS        15000
#define S_SETTLE_MS      600       /* many ticks: time for a wrong second run to show */
#define S_HOUR_S         3600
#define S_MAX_SCHEDS     4
#define S_NSCHEDULES     4         /* two-scheduler race: this many schedules at once */

static const char *s_pipeline_yaml =
    "name: nightly\n"
    "steps:\n"
    "  a:\n"
    "    type: noop\n"
    "    sleep_ms: 10\n";

typedef struct {
    ty_testenv_t *env;
    ty_redis_t   *redis;
    char          file [PATH_MAX];
    char          data [PATH_MAX];
    char          redis_url [64];
    pid_t         scheds [S_MAX_SCHEDS];
    char          sched_ids [S_MAX_SCHEDS][32];
    int           nscheds;
    int64_t       hour;        /* the scheduler's current hour mark (Unix s) */
    long long     offset;      /* its clock offset: now + offset = hour + 30 min */
} s_fx_t;

static const char *
s_bin_dir (void)
{
    const char *env = getenv ("TY_BIN_DIR");
    return env && *env ? env : TY_BIN_DIR;
}

static int
s_setup (void **state)
{
    s_fx_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    *state = f;
    f->env = ty_testenv_must_new ("scheduler");
    ty_testenv_must_start_redis (f->env, NULL);
    ty_testenv_must_start_broker (f->env, S_HB_MS, NULL);
    ty_testenv_must_start_worker (f->env, "w1", S_HB_MS, NULL);
    assert_int_equal (ty_testenv_wait_worker (f->env, "w1", S_WAIT_MS), 0);
    snprintf (f->redis_url, sizeof f->redis_url, "redis://127.0.0.1:%d",
              ty_testenv_redis_port (f->env));
    f->redis = ty_redis_new (f->redis_url);
    assert_non_null (f->redis);
    assert_int_equal (ty_redis_connect (f->redis), TY_OK);
    ty_testenv_path (f->env, "nightly.yaml", f->file, sizeof f->file);
    FILE *fp = fopen (f->file, "w");
    assert_non_null (fp);
    assert_true (fputs (s_pipeline_yaml, fp) >= 0);
    assert_int_equal (fclose (fp), 0);
    ty_testenv_path (f->env, "data", f->data, sizeof f->data);
    assert_int_equal (mkdir (f->data, 0755), 0);
    int64_t now = (int64_t) time (NULL);
    f->hour = now - now % S_HOUR_S;
    f->offset = (long long) (f->hour + S_HOUR_S / 2 - now);
    return 0;
}

/* Stops the schedulers (SIGTERM so sanitizers report), checks their stderr
 * for sanitizer reports, then the env. */
static int
s_teardown (void **state)
{
    s_fx_t *f = *state;
    int bad = 0;
    for (int i = 0; i < f->nscheds; i++) {
        if (f->scheds [i] > 0) {
            kill (f->scheds [i], SIGTERM);
            int st;
            for (int k = 0; k < 100 && waitpid (f->scheds [i], &st, WNOHANG) == 0; k++)
                ty_testenv_sleep_ms (50);
            kill (f->scheds [i], SIGKILL);
            waitpid (f->scheds [i], &st, 0);
        }
        char path [PATH_MAX], line [512];
        snprintf (path, sizeof path, "%s/%s.stderr", ty_testenv_dir (f->env), f->sched_ids [i]);
        FILE *fp = fopen (path, "r");
        while (fp && fgets (line, sizeof line, fp))
            if (strstr (line, "AddressSanitizer") || strstr (line, "runtime error")
                || strstr (line, "LeakSanitizer")) {
                fprintf (stderr, "sanitizer report in %s: %s", path, line);
                bad = 1;
            }
        if (fp)
            fclose (fp);
    }
    ty_redis_destroy (&f->redis);
    int rc = ty_testenv_finish (&f->env);
    free (f);
    return rc || bad ? -1 : 0;
}

/* Starts trainyard-scheduler with the common flags and extra ones. */
static pid_t
s_start_scheduler (s_fx_t *f, const char *id, const char *const *extra)
{
    assert_true (f->nscheds < S_MAX_SCHEDS);
    char bin [PATH_MAX], offset [32], log [PATH_MAX], out [PATH_MAX];
    snprintf (bin, sizeof bin, "%s/trainyard-scheduler", s_bin_dir ());
    snprintf (offset, sizeof offset, "%lld", f->offset);
    snprintf (log, sizeof log, "%s/%s.log", ty_testenv_dir (f->env), id);
    snprintf (out, sizeof out, "%s/%s.stderr", ty_testenv_dir (f->env), id);
    const char *argv [32] = {
        bin, "--redis", f->redis_url, "--broker", ty_testenv_client_ep (f->env),
        "--data", f->data, "--tick-ms", S_TICK_MS, "--id", id, "--now-offset-s", offset,
        "--log-file", log, "--log-level", "debug",
    };
    int n = 17;
    for (int i = 0; extra && extra [i] && n < 31; i++)
        argv [n++] = extra [i];
    argv [n] = NULL;
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        int fd = open (out, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2 (fd, 1);
            dup2 (fd, 2);
            close (fd);
        }
        execv (bin, (char *const *) argv);
        _exit (127);
    }
    snprintf (f->sched_ids [f->nscheds], sizeof f->sched_ids [0], "%s", id);
    f->scheds [f->nscheds++] = pid;
    return pid;
}

static void
s_add_schedule (s_fx_t *f, const char *name, const char *cron, int64_t created)
{
    ty_schedule_t rec = {
        .name = (char *) name, .cron = (char *) cron, .utc = true, .file = f->file,
        .created = created, .last_slot = created,
    };
    assert_int_equal (ty_schedule_add (f->redis, "ty:", &rec), TY_OK);
}

static long long
s_num (s_fx_t *f, const char *fmt, const char *arg)
{
    redisReply *r = ty_testenv_must_redis (f->env, fmt, arg);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer
                : r->type == REDIS_REPLY_STRING ? strtoll (r->str, NULL, 10) : -1;
    freeReplyObject (r);
    return v;
}

static char *
s_str (s_fx_t *f, const char *key, const char *field)
{
    redisReply *r = ty_testenv_must_redis (f->env, "HGET %s %s", key, field);
    char *v = r->type == REDIS_REPLY_STRING ? strdup (r->str) : NULL;
    freeReplyObject (r);
    return v;
}

/* Polls until HGET key field == want. 0 or -1 on timeout. */
static int
s_wait_field (s_fx_t *f, const char *key, const char *field, const char *want)
{
    int64_t deadline = ty_testenv_now_ms () + S_WAIT_MS;
    while (ty_testenv_now_ms () < deadline) {
        char *v = s_str (f, key, field);
        int ok = v && !strcmp (v, want);
        free (v);
        if (ok)
            return 0;
        ty_testenv_sleep_ms (20);
    }
    char *v = s_str (f, key, field);
    fprintf (stderr, "timeout: %s %s = '%s', want '%s'\n", key, field, v ? v : "(nil)", want);
    free (v);
    return -1;
}

static long long
s_njobs (s_fx_t *f)
{
    return s_num (f, "ZCARD %s", "ty:jobs");
}

/* Every job SUCCEEDED; returns how many there are. */
static long long
s_wait_jobs_done (s_fx_t *f)
{
    redisReply *r = ty_testenv_must_redis (f->env, "ZRANGE ty:jobs 0 -1");
    assert_int_equal (r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++)
        assert_int_equal (ty_testenv_wait_state (f->env, r->element [i]->str, "SUCCEEDED",
                                                 S_WAIT_MS), 0);
    long long n = (long long) r->elements;
    freeReplyObject (r);
    return n;
}

/* The pipeline field of the only job. */
static char *
s_only_job_pipeline (s_fx_t *f)
{
    redisReply *r = ty_testenv_must_redis (f->env, "ZRANGE ty:jobs 0 -1");
    assert_int_equal (r->elements, 1);
    char *p = ty_testenv_job_field (f->env, r->element [0]->str, "pipeline");
    freeReplyObject (r);
    assert_non_null (p);
    return p;
}

/* ---- schedules ------------------------------------------------------------------ */

/* Down for five hourly slots: one run, of the latest slot, recorded. */
static void
test_scheduler_missed_slots_run_once (void **state)
{
    s_fx_t *f = *state;
    s_add_schedule (f, "nightly", "0 * * * *", f->hour - 5 * S_HOUR_S + 60);
    /* a schedule created after the current slot must not fire retroactively */
    s_add_schedule (f, "fresh", "0 * * * *", f->hour + 60);
    s_start_scheduler (f, "s1", NULL);
    char slot [32];
    snprintf (slot, sizeof slot, "%" PRId64, f->hour);
    assert_int_equal (s_wait_field (f, "ty:schedule:nightly", "last_slot", slot), 0);
    assert_int_equal (s_wait_jobs_done (f), 1);
    ty_testenv_sleep_ms (S_SETTLE_MS);
    assert_int_equal (s_njobs (f), 1);
    ty_testenv_execlog_t *log = ty_testenv_execlog_load (f->env);
    assert_non_null (log);
    assert_int_equal (ty_testenv_execlog_size (log), 1);
    ty_testenv_execlog_destroy (&log);
    /* the record names the pipeline the broker holds, and no error */
    char *rec_pipeline = s_str (f, "ty:schedule:nightly", "last_run_pipeline");
    char *job_pipeline = s_only_job_pipeline (f);
    assert_non_null (rec_pipeline);
    assert_string_equal (rec_pipeline, job_pipeline);
    free (rec_pipeline);
    free (job_pipeline);
    char *err = s_str (f, "ty:schedule:nightly", "last_error");
    assert_string_equal (err ? err : "?", "");
    free (err);
    /* next = the following hour; the fresh schedule never ran */
    snprintf (slot, sizeof slot, "%" PRId64, f->hour + S_HOUR_S);
    assert_int_equal (s_wait_field (f, "ty:schedule:nightly", "next", slot), 0);
    snprintf (slot, sizeof slot, "%" PRId64, f->hour + 60);
    assert_int_equal (s_wait_field (f, "ty:schedule:fresh", "last_slot", slot), 0);
    ty_testenv_passed (f->env);
}

/* A paused schedule does not run; a bad pipeline file counts as done with
 * last_error, and is not retried every tick. */
static void
test_scheduler_paused_and_bad_file (void **state)
{
    s_fx_t *f = *state;
    s_add_schedule (f, "paused", "0 * * * *", f->hour - 2 * S_HOUR_S);
    assert_int_equal (ty_schedule_set_paused (f->redis, "ty:", "paused", true), TY_OK);
    ty_schedule_t rec = {
        .name = "broken", .cron = "0 * * * *", .utc = true, .file = "/nonexistent/p.yaml",
        .created = f->hour - S_HOUR_S, .last_slot = f->hour - S_HOUR_S,
    };
    assert_int_equal (ty_schedule_add (f->redis, "ty:", &rec), TY_OK);
    s_start_scheduler (f, "s1", NULL);
    char slot [32];
    snprintf (slot, sizeof slot, "%" PRId64, f->hour);
    assert_int_equal (s_wait_field (f, "ty:schedule:broken", "last_slot", slot), 0);
    char *err = s_str (f, "ty:schedule:broken", "last_error");
    assert_non_null (err);
    assert_non_null (strstr (err, "/nonexistent/p.yaml"));
    free (err);
    ty_testenv_sleep_ms (S_SETTLE_MS);
    assert_int_equal (s_njobs (f), 0);
    snprintf (slot, sizeof slot, "%" PRId64, f->hour - 2 * S_HOUR_S);
    char *last = s_str (f, "ty:schedule:paused", "last_slot");
    assert_string_equal (last, slot);
    free (last);
    ty_testenv_passed (f->env);
}

/* Two schedulers on the same Redis, several due schedules: one run each. */
static void
test_scheduler_two_schedulers_one_run (void **state)
{
    s_fx_t *f = *state;
    char name [32];
    for (int i = 0; i < S_NSCHEDULES; i++) {
        snprintf (name, sizeof name, "s%d", i);
        s_add_schedule (f, name, "0 * * * *", f->hour - 3 * S_HOUR_S);
    }
    s_start_scheduler (f, "a", NULL);
    s_start_scheduler (f, "b", NULL);
    char slot [32], key [64];
    snprintf (slot, sizeof slot, "%" PRId64, f->hour);
    for (int i = 0; i < S_NSCHEDULES; i++) {
        snprintf (key, sizeof key, "ty:schedule:s%d", i);
        assert_int_equal (s_wait_field (f, key, "last_slot", slot), 0);
    }
    assert_int_equal (s_wait_jobs_done (f), S_NSCHEDULES);
    ty_testenv_sleep_ms (S_SETTLE_MS);
    assert_int_equal (s_njobs (f), S_NSCHEDULES);
    ty_testenv_execlog_t *log = ty_testenv_execlog_load (f->env);
    assert_non_null (log);
    assert_int_equal (ty_testenv_execlog_size (log), S_NSCHEDULES);
    ty_testenv_execlog_destroy (&log);
    /* each slot's lease names one of the two */
    for (int i = 0; i < S_NSCHEDULES; i++) {
        redisReply *r = ty_testenv_must_redis (f->env, "GET ty:schedule:s%d:slot:%s", i, slot);
        assert_int_equal (r->type, REDIS_REPLY_STRING);
        assert_true (!strcmp (r->str, "a") || !strcmp (r->str, "b"));
        freeReplyObject (r);
    }
    ty_testenv_passed (f->env);
}

/* kill -9 right after the submit, before the record: another scheduler
 * takes over once the lease lapses, resubmits, and the broker's
 * idempotency keys make it the same run. */
static void
test_scheduler_kill9_after_submit_one_run (void **state)
{
    s_fx_t *f = *state;
    s_add_schedule (f, "nightly", "0 * * * *", f->hour - 2 * S_HOUR_S);
    const char *crash [] = { "--crash-after-submit", "--lease-ms", "300", NULL };
    pid_t a = s_start_scheduler (f, "a", crash);
    int st = 0;
    int64_t deadline = ty_testenv_now_ms () + S_WAIT_MS;
    pid_t w = 0;
    while ((w = waitpid (a, &st, WNOHANG)) == 0 && ty_testenv_now_ms () < deadline)
        ty_testenv_sleep_ms (20);
    assert_int_equal (w, a);
    f->scheds [0] = 0;          /* reaped */
    assert_true (WIFSIGNALED (st) && WTERMSIG (st) == SIGKILL);
    /* submitted, not recorded */
    assert_int_equal (s_njobs (f), 1);
    char slot [32];
    snprintf (slot, sizeof slot, "%" PRId64, f->hour - 2 * S_HOUR_S);
    char *last = s_str (f, "ty:schedule:nightly", "last_slot");
    assert_string_equal (last, slot);
    free (last);

    s_start_scheduler (f, "b", NULL);
    snprintf (slot, sizeof slot, "%" PRId64, f->hour);
    assert_int_equal (s_wait_field (f, "ty:schedule:nightly", "last_slot", slot), 0);
    assert_int_equal (s_wait_jobs_done (f), 1);
    ty_testenv_sleep_ms (S_SETTLE_MS);
    assert_int_equal (s_njobs (f), 1);
    ty_testenv_execlog_t *log = ty_testenv_execlog_load (f->env);
    assert_non_null (log);
    assert_int_equal (ty_testenv_execlog_size (log), 1);
    ty_testenv_execlog_destroy (&log);
    char *rec_pipeline = s_str (f, "ty:schedule:nightly", "last_run_pipeline");
    char *job_pipeline = s_only_job_pipeline (f);
    assert_string_equal (rec_pipeline, job_pipeline);
    free (rec_pipeline);
    free (job_pipeline);
    ty_testenv_passed (f->env);
}

/* ---- triggers ------------------------------------------------------------------- */

/* A new version of dataset fb with n samples in train. */
static uint64_t
s_dataset_version (s_fx_t *f, int n)
{
    ty_dataset_writer_t *w = NULL;
    assert_int_equal (ty_dataset_writer_new (f->data, "fb", NULL, &w), TY_OK);
    char text [32];
    for (int i = 0; i < n; i++) {
        Ty__Sample s = TY__SAMPLE__INIT;
        snprintf (text, sizeof text, "sample %d", i);
        s.text = text;
        assert_int_equal (ty_dataset_writer_add (w, TY_SPLIT_TRAIN, &s), TY_OK);
    }
    uint64_t v = 0;
    assert_int_equal (ty_dataset_writer_commit (&w, NULL, &v, NULL), TY_OK);
    return v;
}

static void
s_write (const char *dir, const char *file, const char *text)
{
    char path [PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    FILE *fp = fopen (path, "w");
    assert_non_null (fp);
    assert_true (fputs (text, fp) >= 0);
    assert_int_equal (fclose (fp), 0);
}

/* Model clf version 1, trained on fb@1, in production. */
static void
s_model_in_production (s_fx_t *f)
{
    char dir [PATH_MAX + 32];
    snprintf (dir, sizeof dir, "%s/models", f->data);
    assert_int_equal (mkdir (dir, 0755), 0);
    snprintf (dir, sizeof dir, "%s/models/clf", f->data);
    assert_int_equal (mkdir (dir, 0755), 0);
    snprintf (dir, sizeof dir, "%s/models/clf/1", f->data);
    assert_int_equal (mkdir (dir, 0755), 0);
    s_write (dir, "model.pt", "weights");
    s_write (dir, "config.json", "{\"kind\": \"textclf\", \"trainyard_version\": \"0.1.0\"}");
    s_write (dir, "lineage.json",
             "{\"format\": 1, \"dataset\": {\"name\": \"fb\", \"version\": 1},"
             " \"job_id\": \"job-1\", \"attempt\": 1, \"params\": {}}");
    ty_registry_t *reg = NULL;
    assert_int_equal (ty_registry_open (f->data, &reg), TY_OK);
    ty_registry_actor_t by = { "test", "fixture", 0 };
    assert_int_equal (ty_registry_register (reg, "clf", 1, &by, NULL), TY_OK);
    assert_int_equal (ty_registry_promote (reg, "clf", 1, TY_STAGE_PRODUCTION, 0, &by), TY_OK);
    ty_registry_destroy (&reg);
}

static void
test_scheduler_trigger_fires_once_on_new_samples (void **state)
{
    s_fx_t *f = *state;
    assert_int_equal (s_dataset_version (f, 10), 1);
    s_model_in_production (f);
    ty_trigger_t rec = {
        .name = "retrain", .kind = TY_TRIGGER_NEW_SAMPLES, .file = f->file,
        .dataset = "fb", .model = "clf", .new_samples = 5, .metric = "",
        .created = (int64_t) time (NULL),
    };
    assert_int_equal (ty_trigger_add (f->redis, "ty:", &rec), TY_OK);
    s_start_scheduler (f, "s1", NULL);
    /* 3 new samples: under N */
    assert_int_equal (s_dataset_version (f, 13), 2);
    int64_t deadline = ty_testenv_now_ms () + S_WAIT_MS;
    for (;;) {
        char *check = s_str (f, "ty:trigger:retrain", "last_check");
        int seen = check && strstr (check, "fb@2 has 3 new samples");
        free (check);
        if (seen)
            break;
        assert_true (ty_testenv_now_ms () < deadline);
        ty_testenv_sleep_ms (20);
    }
    ty_testenv_sleep_ms (S_SETTLE_MS);
    assert_int_equal (s_njobs (f), 0);
    /* 6 new samples: fires, once */
    assert_int_equal (s_dataset_version (f, 16), 3);
    assert_int_equal (s_wait_field (f, "ty:trigger:retrain", "last_fired", "3"), 0);
    assert_int_equal (s_wait_jobs_done (f), 1);
    ty_testenv_sleep_ms (S_SETTLE_MS);
    assert_int_equal (s_njobs (f), 1);
    /* the record lost (as by a crash before it was written): fired again,
     * but the idempotency keys give back the same run */
    redisReply *r = ty_testenv_must_redis (f->env, "HSET ty:trigger:retrain last_fired %s", "");
    freeReplyObject (r);
    assert_int_equal (s_wait_field (f, "ty:trigger:retrain", "last_fired", "3"), 0);
    ty_testenv_sleep_ms (S_SETTLE_MS);
    assert_int_equal (s_njobs (f), 1);
    ty_testenv_execlog_t *log = ty_testenv_execlog_load (f->env);
    assert_non_null (log);
    assert_int_equal (ty_testenv_execlog_size (log), 1);
    ty_testenv_execlog_destroy (&log);
    char *rec_pipeline = s_str (f, "ty:trigger:retrain", "last_run_pipeline");
    char *job_pipeline = s_only_job_pipeline (f);
    assert_string_equal (rec_pipeline, job_pipeline);
    free (rec_pipeline);
    free (job_pipeline);
    ty_testenv_passed (f->env);
}

/* The other two kinds, checked directly against a real registry (no
 * processes needed): model age and a metric under a threshold, each keyed
 * by the production version so it fires once per version. */
static void
test_scheduler_trigger_checks_age_and_metric (void **state)
{
    s_fx_t *f = *state;
    s_model_in_production (f);
    char dir [PATH_MAX + 32];
    snprintf (dir, sizeof dir, "%s/models/clf/1", f->data);
    s_write (dir, "metrics.json",
             "{\"format_version\": 1, \"summary\": \"accuracy 0.81\", \"job_id\": \"ev-1\","
             " \"classification\": {\"accuracy\": 0.81}, \"gate\": {\"verdict\": \"PASS\"}}");
    ty_registry_t *reg = NULL;
    assert_int_equal (ty_registry_open (f->data, &reg), TY_OK);
    ty_registry_actor_t by = { "test", "evaluated", 0 };
    assert_int_equal (ty_registry_register (reg, "clf", 1, &by, NULL), TY_OK);
    ty_registry_destroy (&reg);
    int64_t now = (int64_t) time (NULL);

    ty_trigger_t age = {
        .name = "age", .kind = TY_TRIGGER_OLDER_THAN, .file = f->file, .dataset = "",
        .model = "clf", .older_than_days = 30, .metric = "", .last_fired = "",
    };
    ty_trigger_verdict_t v;
    assert_int_equal (ty_trigger_check (&age, f->data, now, &v), TY_OK);
    assert_false (v.fire);
    assert_int_equal (ty_trigger_check (&age, f->data, now + 31 * TY_TRIGGER_SECS_PER_DAY, &v),
                      TY_OK);
    assert_true (v.fire);
    assert_string_equal (v.key, "v1");
    age.last_fired = "v1";          /* once per model version */
    assert_int_equal (ty_trigger_check (&age, f->data, now + 31 * TY_TRIGGER_SECS_PER_DAY, &v),
                      TY_OK);
    assert_true (v.holds);
    assert_false (v.fire);

    ty_trigger_t below = {
        .name = "drop", .kind = TY_TRIGGER_METRIC_BELOW, .file = f->file, .dataset = "",
        .model = "clf", .metric = "accuracy", .threshold = 0.8, .last_fired = "",
    };
    assert_int_equal (ty_trigger_check (&below, f->data, now, &v), TY_OK);
    assert_false (v.fire);                      /* 0.81 >= 0.8 */
    below.threshold = 0.85;
    assert_int_equal (ty_trigger_check (&below, f->data, now, &v), TY_OK);
    assert_true (v.fire);
    assert_string_equal (v.key, "v1");
    assert_non_null (strstr (v.why, "accuracy = 0.81"));
    below.metric = "rmse";                      /* never evaluated: no fire */
    assert_int_equal (ty_trigger_check (&below, f->data, now, &v), TY_OK);
    assert_false (v.fire);
    ty_testenv_passed (f->env);
}

/* Runs the trainyard command with TRAINYARD_REDIS set; returns its exit
 * code and its stdout + stderr in out. */
static int
s_cli (s_fx_t *f, char *out, size_t len, const char *args)
{
    char cmd [PATH_MAX * 2];
    snprintf (cmd, sizeof cmd, "TRAINYARD_REDIS=%s %s/trainyard %s 2>&1", f->redis_url,
              s_bin_dir (), args);
    return ty_testenv_run_capture (cmd, out, len);
}

/* The schedule commands: a bad cron line names the field and stores
 * nothing; a good one is stored with last_slot = created; pause, list,
 * resume, rm. */
static void
test_scheduler_schedule_commands (void **state)
{
    s_fx_t *f = *state;
    char out [4096], args [PATH_MAX + 128];
    snprintf (args, sizeof args, "schedule add n1 '0 2 * * 8' %s", f->file);
    assert_int_equal (s_cli (f, out, sizeof out, args), 2);
    assert_non_null (strstr (out, "day-of-week: bad token '8'"));
    assert_int_equal (s_num (f, "EXISTS %s", "ty:schedule:n1"), 0);

    char bad [PATH_MAX];
    ty_testenv_path (f->env, "bad.yaml", bad, sizeof bad);
    FILE *fp = fopen (bad, "w");
    assert_non_null (fp);
    assert_true (fputs ("name: x\nsteps:\n  a:\n    type: nope\n", fp) >= 0);
    assert_int_equal (fclose (fp), 0);
    snprintf (args, sizeof args, "schedule add n1 '0 2 * * *' %s", bad);
    assert_int_equal (s_cli (f, out, sizeof out, args), 1);
    assert_non_null (strstr (out, "bad.yaml:4"));
    assert_int_equal (s_num (f, "EXISTS %s", "ty:schedule:n1"), 0);

    snprintf (args, sizeof args, "schedule add n1 '0 2 * * mon-fri' %s --utc", f->file);
    assert_int_equal (s_cli (f, out, sizeof out, args), 0);
    char *created = s_str (f, "ty:schedule:n1", "created");
    char *last = s_str (f, "ty:schedule:n1", "last_slot");
    assert_non_null (created);
    assert_string_equal (created, last);
    free (created);
    free (last);
    assert_int_equal (s_num (f, "SISMEMBER ty:schedules %s", "n1"), 1);
    assert_int_equal (s_cli (f, out, sizeof out, args), 1);          /* exists */

    assert_int_equal (s_cli (f, out, sizeof out, "schedule pause n1"), 0);
    assert_int_equal (s_cli (f, out, sizeof out, "schedule list --json"), 0);
    assert_non_null (strstr (out, "\"name\":\"n1\""));
    assert_non_null (strstr (out, "\"paused\":true"));
    assert_int_equal (s_cli (f, out, sizeof out, "schedule resume n1"), 0);
    char *paused = s_str (f, "ty:schedule:n1", "paused");
    assert_string_equal (paused, "0");
    free (paused);
    /* resume after a pause does not catch up: the slots that passed are done */
    int64_t long_ago = (int64_t) time (NULL) - 10 * 60;
    s_add_schedule (f, "every", "* * * * *", long_ago);
    assert_int_equal (ty_schedule_set_paused (f->redis, "ty:", "every", true), TY_OK);
    assert_int_equal (s_cli (f, out, sizeof out, "schedule resume every"), 0);
    long long slot = s_num (f, "HGET %s last_slot", "ty:schedule:every");
    assert_true (slot > long_ago && slot % 60 == 0 && slot <= (long long) time (NULL));
    char *err = s_str (f, "ty:schedule:every", "last_run_pipeline");
    assert_string_equal (err, "");          /* nothing ran */
    free (err);

    assert_int_equal (s_cli (f, out, sizeof out, "schedule rm n1"), 0);
    assert_int_equal (s_num (f, "EXISTS %s", "ty:schedule:n1"), 0);
    assert_int_equal (s_num (f, "SISMEMBER ty:schedules %s", "n1"), 0);
    assert_int_equal (s_cli (f, out, sizeof out, "schedule rm n1"), 1);
    ty_testenv_passed (f->env);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_scheduler_missed_slots_run_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scheduler_paused_and_bad_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scheduler_two_schedulers_one_run, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scheduler_kill9_after_submit_one_run, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_scheduler_trigger_fires_once_on_new_samples,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scheduler_trigger_checks_age_and_metric,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scheduler_schedule_commands, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

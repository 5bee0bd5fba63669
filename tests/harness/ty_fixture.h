/*  ty_fixture: helpers shared by the model-training integration tests
 *  (convert, evaluate, train_core, train_kinds, kfold), so each test file
 *  holds its scenarios and not one more copy of the same plumbing.
 *
 *  - in-process training (ty_train_run) in a throw-away data dir, with the
 *    hooks the tests steer it by: a crash (_exit) once an epoch is
 *    checkpointed, a cancel after an epoch, the first epoch seen;
 *  - the "mail" text dataset (three classes of keywords among noise words)
 *    written with the real dataset writer, and a small textclf trained on it;
 *  - one worker binary in a real cluster (redis, broker, the worker), the
 *    `trainyard` command run against it;
 *  - reading files and JSON documents.
 *
 *  Failure policy as in ty_testenv: functions named *_must_* and the ones
 *  documented to fail the test call fail_msg (longjmp to cmocka, the
 *  teardown still runs); call them from the test's main thread only. */
#ifndef TY_FIXTURE_H
#define TY_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "ty_client.h"
#include "ty_testenv.h"
#include "ty_train.h"

/* ---- files and JSON --------------------------------------------------------- */

/* splitmix64: the tests' deterministic generator. */
uint64_t ty_fixture_rand (uint64_t *s);

/* Whether dir/file exists. */
int ty_fixture_exists (const char *dir, const char *file);

/* The whole file, NUL-terminated, malloc'd (the caller frees); its length
 * into *len when len is not NULL. NULL with errno set on failure. */
char *ty_fixture_slurp (const char *path, size_t *len);

/* The file parsed as JSON (the caller deletes); fails the test when it
 * cannot be read or is not JSON. */
cJSON *ty_fixture_must_load_json (const char *path);

/* o.a (b NULL) or o.a.b as a number; NAN when it is not one. */
double ty_fixture_json_num (const cJSON *o, const char *a, const char *b);

/* The same, failing the test when it is not a number. */
double ty_fixture_must_json_num (const cJSON *o, const char *a, const char *b);

/* ---- in-process training ---------------------------------------------------- */

typedef struct {
    char dir [256];            /* the data dir: a temp dir of its own */
    int  epochs_done;          /* last "epochs_done" metric seen */
    int  first_epoch;          /* first "epoch" metric seen */
    int  die_after_epoch;      /* > 0: _exit once this epoch is reported (a crash) */
    int  cancel_after_epoch;   /* > 0: cancel once this epoch is reported */
} ty_fixture_train_t;

/* cmocka setup: a ty_fixture_train_t in *state, its dir a new
 * /tmp/ty-test-<name>-XXXXXX. The teardown removes the dir unless
 * TY_TEST_KEEP=1. */
int ty_fixture_train_setup (void **state, const char *name);
int ty_fixture_train_teardown (void **state);

/* Runs a train job in-process with s's hooks; returns its status, err
 * filled. */
int ty_fixture_train_run (ty_fixture_train_t *s, const Ty__TrainSpec *spec, const char *job_id,
                          unsigned attempt, ty_train_result_t *res, char *err, size_t errlen);

/* Attempt 1 of the job; fails the test unless it succeeds. */
void ty_fixture_train_must_run (ty_fixture_train_t *s, const Ty__TrainSpec *spec,
                                const char *job_id, ty_train_result_t *res);

/* Attempt 2 of the job (the retry after a crash); fails the test unless it
 * succeeds. */
void ty_fixture_train_must_resume (ty_fixture_train_t *s, const Ty__TrainSpec *spec,
                                   const char *job_id, ty_train_result_t *res);

/* Attempt 1 of the job in a child process that dies (_exit (0), a crash,
 * not a cancel) once epoch die_after is checkpointed; fails the test
 * unless the child died exactly so. */
void ty_fixture_train_crash (ty_fixture_train_t *s, const Ty__TrainSpec *spec,
                             const char *job_id, int die_after);

/* Trains spec uninterrupted as <job>-full, then as <job>-crash in a child
 * that dies once epoch die_after is checkpointed (its state.json and
 * epoch-<die_after>.pt on disk); fails the test unless the retry starts at
 * die_after + 1, runs to spec->epochs and ends with the uninterrupted run's
 * weights and metric, its checkpoint state gone. */
void ty_fixture_train_resume_check (ty_fixture_train_t *s, const Ty__TrainSpec *spec,
                                    const char *job, int die_after);

/* Runs job "job-bad"; fails the test unless it returns want_rc with a
 * message holding phrase (and phrase2 when not NULL). */
void ty_fixture_train_expect_fail (ty_fixture_train_t *s, const Ty__TrainSpec *spec,
                                   int want_rc, const char *phrase, const char *phrase2);

/* The small, fast textclf settings: the given epochs, dim and bucket, lr
 * 0.5, batches of 8, 1 thread, seed 7. */
void ty_fixture_textclf_small (Ty__TrainSpec *spec, uint32_t epochs, uint32_t dim,
                               uint32_t bucket);

/* Trains such a textclf on dataset as job_id with the train worker's code:
 * the version lands in <data>/models/<name>/<n>/. Fails the test on error. */
void ty_fixture_train_textclf (const char *data, const char *dataset, const char *name,
                               uint32_t epochs, uint32_t dim, uint32_t bucket,
                               const char *job_id);

/* ---- the "mail" dataset ------------------------------------------------------- */

#define TY_FIXTURE_MAIL_NCLASSES   3
#define TY_FIXTURE_MAIL_TRAIN      90
#define TY_FIXTURE_MAIL_VAL        30
#define TY_FIXTURE_MAIL_TEST       45

/* Flags of ty_fixture_write_mail. */
#define TY_FIXTURE_MAIL_DECOYS     1   /* every 7th sample of class 2 has class 0's words first */
#define TY_FIXTURE_MAIL_REGRESSION 2   /* a regression target cls / 2 instead of labels */

/* "ham", "spam", "eggs" */
extern const char *const ty_fixture_mail_labels [TY_FIXTURE_MAIL_NCLASSES];

/* Writes dataset name into data: TY_FIXTURE_MAIL_TRAIN train,
 * TY_FIXTURE_MAIL_VAL val and ntest test samples (seed 42), each three
 * keywords of its class among two shared noise words, labelled with
 * labels [cls] (TY_FIXTURE_MAIL_NCLASSES names; NULL with
 * TY_FIXTURE_MAIL_REGRESSION). Fails the test on error. */
void ty_fixture_write_mail (const char *data, const char *name, const char *const *labels,
                            size_t ntest, int flags);

/* ---- one worker in a real cluster -------------------------------------------- */

/* The worker is started by the harness (ty_testenv_must_start_worker_bin),
 * which owns it: its log, its sanitizer scan, its kill. */
typedef struct {
    const char *env_name;      /* ty_testenv_must_new's name */
    const char *bin;           /* the worker binary's name in the build dir */
    const char *worker_id;     /* its id: its log is <worker_id>.log */
    const char *what;          /* "<what> worker never registered" */
} ty_fixture_worker_t;

typedef struct {
    ty_testenv_t *env;
    ty_client_t  *client;
    char data [1024];          /* a temp dir: short, so paths under it always fit */
} ty_fixture_cluster_t;

/* cmocka setup: a ty_fixture_cluster_t in *state with redis, the broker
 * and the worker (--data its data dir) running and a client connected. */
int ty_fixture_cluster_setup (void **state, const ty_fixture_worker_t *worker);
int ty_fixture_cluster_teardown (void **state);

/* Waits for job id to reach want; otherwise prints its error and the tail
 * of the worker's log and returns -1 (the caller fails with its words). */
int ty_fixture_wait_job (ty_fixture_cluster_t *f, const char *id, const char *want,
                         int timeout_ms, const char *worker_id);

/* Fails the test unless job id's error holds needle. */
void ty_fixture_assert_error (ty_fixture_cluster_t *f, const char *id, const char *needle);

/* Runs the trainyard command bin on the cluster (TRAINYARD_DATA = its data
 * dir, --broker its endpoint) with args (shell words); its stdout into out.
 * Returns the exit code, -1 when it did not exit. */
int ty_fixture_cli (ty_fixture_cluster_t *f, const char *bin, char *out, size_t len,
                    const char *args);

#endif

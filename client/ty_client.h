/*  libtrainyard: the C client of a trainyard broker.
 *
 *  A ty_client_t is one DEALER connection to the broker's client endpoint.
 *  Every call takes a timeout in ms (-1 waits forever) and returns TY_OK or
 *  a TY_E* / errno code; ty_client_errstr() then holds a readable message.
 *  No global state: as many clients as you like, but one client is NOT
 *  thread-safe (use one per thread).
 *
 *  Ownership: a Ty__* pointer handed back through an out-parameter belongs
 *  to the caller and is freed with ty_client_free_msg(). Strings passed in
 *  are only borrowed for the call.
 *
 *  Example:
 *      ty_client_t *c = ty_client_new ("tcp://127.0.0.1:7700");
 *      Ty__JobSpec spec = TY__JOB_SPEC__INIT;  Ty__NoopSpec noop = TY__NOOP_SPEC__INIT;
 *      noop.sleep_ms = 100;
 *      spec.kind_case = TY__JOB_SPEC__KIND_NOOP;  spec.noop = &noop;
 *      char id [TY_ID_LEN + 1];
 *      if (ty_client_submit (c, &spec, NULL, 0, NULL, 5000, id, NULL) == TY_OK) {
 *          Ty__Event *last = NULL;
 *          ty_client_watch (c, id, -1, NULL, NULL, &last);  // until it ends
 *          printf ("%s %s\n", id, last->state);
 *          ty_client_free_msg (last);
 *      }
 *      ty_client_destroy (&c);
 */
#ifndef TY_CLIENT_H
#define TY_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "envelope.pb-c.h"
#include "ty_error.h"
#include "ty_id.h"

typedef struct _ty_client_t ty_client_t;

/* Connects (lazily, as ZeroMQ does) to the broker's client endpoint, e.g.
 * "tcp://127.0.0.1:7700". Returns NULL only if ZeroMQ cannot make a socket. */
ty_client_t *ty_client_new (const char *endpoint);
void ty_client_destroy (ty_client_t **self_p);

/* The message of the last failed call ("" after success). Borrowed until the next call. */
const char *ty_client_errstr (ty_client_t *self);

/* One job of a batch submit. */
typedef struct {
    const Ty__JobSpec *spec;
    const char *const *parents;     /* existing job ids, may be NULL */
    size_t nparents;
    const unsigned *parent_items;   /* indexes of earlier items in the same batch */
    size_t nparent_items;
    const char *idempotency_key;    /* may be NULL */
    const char *pipeline;           /* may be NULL */
    const char *step;               /* the step's name in its pipeline; may be NULL */
} ty_submit_item_t;

/* Submit one job, optionally after parents (ids) and with an idempotency key.
 * id_out (TY_ID_LEN + 1 bytes) gets the job id; *existed (may be NULL) is 1
 * if the key matched an earlier job, whose id is returned instead.
 * Errors: TY_ETIMEDOUT, TY_EBROKER (message in errstr: unknown type, Redis down...). */
int ty_client_submit (ty_client_t *self, const Ty__JobSpec *spec,
                      const char *const *parents, size_t nparents,
                      const char *idempotency_key, int timeout_ms,
                      char *id_out, int *existed);

/* Submit n jobs as one atomic unit (all or none). ids_out: n * (TY_ID_LEN + 1)
 * bytes, job i's id at ids_out + i * (TY_ID_LEN + 1). watch: 1 to also receive
 * these jobs' events (read them with ty_client_next_event). */
int ty_client_submit_batch (ty_client_t *self, const ty_submit_item_t *items,
                            size_t n, int watch, int timeout_ms, char *ids_out);

/* Current state of a job. *info_out: caller frees with ty_client_free_msg. */
int ty_client_status (ty_client_t *self, const char *job_id, int timeout_ms,
                      Ty__JobInfo **info_out);

/* Same, with_spec: 1 to also get the packed JobSpec in (*info_out)->spec
 * (pipeline retry resubmits it). */
int ty_client_status_ex (ty_client_t *self, const char *job_id, int with_spec,
                         int timeout_ms, Ty__JobInfo **info_out);

/* Every job of one pipeline (ended or not), oldest first. */
int ty_client_list_pipeline (ty_client_t *self, const char *pipeline, unsigned limit,
                             int timeout_ms, Ty__JobList **list_out);

/* Newest jobs first. state/type: NULL or "" for any; limit 0 = 100. */
int ty_client_list (ty_client_t *self, const char *state, const char *type,
                    unsigned limit, int timeout_ms, Ty__JobList **list_out);

/* Cancel: a pending/queued job at once, a running one is asked to stop.
 * TY_ESTATE if the job already ended, TY_ENOTFOUND if unknown. */
int ty_client_cancel (ty_client_t *self, const char *job_id, const char *reason,
                      int timeout_ms);

/* Called for each event; return non-zero to stop watching. */
typedef int (ty_client_watch_fn) (const Ty__Event *event, void *arg);

/* Stream a job's events (the first is its current state) until it ends,
 * fn returns non-zero, or timeout_ms passes (TY_ETIMEDOUT). job_id NULL or ""
 * watches every job and only stops through fn or the timeout.
 * *last_out (may be NULL): the last event seen; caller frees. */
int ty_client_watch (ty_client_t *self, const char *job_id, int timeout_ms,
                     ty_client_watch_fn *fn, void *arg, Ty__Event **last_out);

/* Next event of jobs subscribed with submit_batch(watch=1) or a watch.
 * TY_ETIMEDOUT if none arrives in time. *event_out: caller frees. */
int ty_client_next_event (ty_client_t *self, int timeout_ms, Ty__Event **event_out);

/* The job's log lines (last `tail`, 0 = all kept). */
int ty_client_logs (ty_client_t *self, const char *job_id, unsigned tail,
                    int timeout_ms, Ty__LogLines **lines_out);

/* Workers the broker knows. */
int ty_client_workers (ty_client_t *self, int timeout_ms, Ty__WorkerList **list_out);

/* Round trip to the broker; *rtt_us (may be NULL) gets the time. */
int ty_client_ping (ty_client_t *self, int timeout_ms, int64_t *rtt_us);
/* The broker's version from the last successful ping ("" before). Borrowed. */
const char *ty_client_broker_version (ty_client_t *self);

/* Frees any Ty__* message returned by this library (NULL-safe). */
void ty_client_free_msg (void *msg);

/* Builds a JobSpec for a noop job; caller frees with ty_client_free_spec. */
Ty__JobSpec *ty_client_noop_spec (uint32_t sleep_ms, int fail, uint32_t output_bytes);
void ty_client_free_spec (Ty__JobSpec *spec);

#endif

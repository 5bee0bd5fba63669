/*  cmd: what the subcommands of the `trainyard` command share.
 *
 *  Each subcommand lives in its own client/cmd_<name>.c and is entered through
 *  one cmd_<name> function with the argv that starts at the subcommand's name.
 *  This header is private to the command: nothing here is library API.
 *
 *  Exit codes (the contract scripts rely on):
 *    0  success (watch: every job SUCCEEDED)
 *    1  an error from the broker or the system (watch: a job FAILED)
 *    2  bad usage: unknown option, missing or malformed argument
 *    3  watch: a job was CANCELLED (and none failed)
 */
#ifndef TY_CMD_H
#define TY_CMD_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "ty_client.h"

#define TY_CMD_EXIT_OK         0
#define TY_CMD_EXIT_ERROR      1
#define TY_CMD_EXIT_USAGE      2
#define TY_CMD_EXIT_CANCELLED  3

#define TY_CMD_DEFAULT_BROKER      "tcp://127.0.0.1:7700"
#define TY_CMD_DEFAULT_TIMEOUT_MS  5000   /* per request; watch itself waits forever */

/* Global options, parsed before the subcommand. */
typedef struct {
    const char *broker;      /* client endpoint of the broker (borrowed from argv/env) */
    int         timeout_ms;  /* per request */
    int         json;        /* machine-readable output */
} cmd_ctx_t;

typedef int (cmd_fn) (cmd_ctx_t *ctx, int argc, char **argv);

/* ---- the subcommands ---------------------------------------------------- */
int cmd_submit  (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_status  (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_list    (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_watch   (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_cancel  (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_logs    (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_workers (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_ping    (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_up      (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_down    (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_dataset (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_train   (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_evaluate (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_model   (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_predict (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_pipeline (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_schedule (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_trigger (cmd_ctx_t *ctx, int argc, char **argv);
int cmd_convert (cmd_ctx_t *ctx, int argc, char **argv);
/* The data directory (datasets, models) as the workers of `trainyard up` see
   it: --data (flag), else $TRAINYARD_DATA, else <state dir>/data. 0 or a
   printed error (cmd_statedir.c). */
int cmd_data_dir (const char *flag, char *out, size_t len);
/* cmd_evaluate.c, shared with cmd_model.c: a model version's metrics.json. */
int cmd_evaluate_load_report (const char *data_dir, const char *model_spec, cJSON **doc);

/* ---- shared by watch and submit --watch (cmd_watch.c) -------------------- */

/* Follows jobs until each has ended, drawing progress on a TTY, plain lines
 * otherwise, JSON lines with ctx->json. subscribed: 1 if client already gets
 * their events (ty_client_submit_batch with watch = 1), 0 to subscribe here.
 * Returns 0 all SUCCEEDED, 1 one FAILED or an error, 3 one CANCELLED,
 * 130 on SIGINT. */
int cmd_watch_jobs (cmd_ctx_t *ctx, ty_client_t *client, char *const *ids,
                    size_t n, int subscribed);

/* ---- errors and option parsing (cmd_util.c) ------------------------------ */

/* Prints "trainyard CMD: <msg>" and a hint to --help on stderr; returns
 * TY_CMD_EXIT_USAGE so callers can `return cmd_usage_error (...)`. */
int cmd_usage_error (const char *cmd, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Explains the '?' or ':' that getopt_long returned (opterr must be 0 and
 * optstring must start with ':'), then as cmd_usage_error. */
int cmd_getopt_error (const char *cmd, int c, char **argv);

/* Resets getopt so a subcommand can parse its own argv from argv[1]. */
void cmd_getopt_reset (void);

/* Prints "trainyard: <what>: <library message>" on stderr; returns
 * TY_CMD_EXIT_ERROR. self may be NULL (then the code's ty_strerror is used). */
int cmd_client_error (ty_client_t *self, int rc, const char *what, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Prints "trainyard: <msg>" on stderr; returns TY_CMD_EXIT_ERROR. */
int cmd_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Parses a decimal integer in [min, max]; 0 on success, -1 if malformed. */
int cmd_parse_long (const char *s, long min, long max, long *out);

/* A client connected to ctx->broker, or NULL after printing why. */
ty_client_t *cmd_connect (cmd_ctx_t *ctx);

/* Redis of the local cluster, for the commands that keep their records there
 * (schedule, trigger): flag (--redis), else $TRAINYARD_REDIS, else the port
 * in <state dir>/redis.conf. A connected ty_redis_t (storage/ty_redis.h), or
 * NULL after printing why. In cmd_schedule.c. */
struct _ty_redis_t;
struct _ty_redis_t *cmd_schedule_redis_connect (const char *flag);

/* ---- formatting (cmd_format.c) ------------------------------------------ */

/* Unix ms -> "2024-05-01T12:34:56.789+02:00" in local time; "" for 0. */
void cmd_format_time (uint64_t unix_ms, char *buf, size_t len);
/* A duration for humans: "0.4s", "12s", "3m05s", "2h03m", "4d02h". */
void cmd_format_duration (int64_t ms, char *buf, size_t len);
/* A countdown clock for ETAs: "0:12", "12:05", "1:02:03". */
void cmd_format_clock (int64_t ms, char *buf, size_t len);
/* "loss=0.31 acc=0.8": metrics as short key=value pairs. */
void cmd_format_metrics (Ty__Metric *const *metrics, size_t n, char *buf, size_t len);

/* ---- JSON (cmd_json.c); every function returns NULL when out of memory ---- */
cJSON *cmd_json_job (const Ty__JobInfo *job);
cJSON *cmd_json_event (const Ty__Event *event);
cJSON *cmd_json_worker (const Ty__WorkerInfo *worker);
/* Prints item as one line on stdout and deletes it. NULL prints an
 * out-of-memory error. Returns TY_CMD_EXIT_OK or TY_CMD_EXIT_ERROR. */
int cmd_json_print (cJSON *item);

#endif

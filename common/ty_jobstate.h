/*  ty_jobstate: the job lifecycle, its names and the one transition table.
 *
 *    PENDING --parents ok--> QUEUED --assign--> RUNNING --> SUCCEEDED
 *       |                      ^                  |  |  --> FAILED
 *       |                      +---lost worker----+  +---> CANCELLED
 *       +---parent failed/cancelled, cancel-----------> CANCELLED
 *
 *  The broker's transitions (broker/ty_lifecycle.c) go through this table
 *  and log any move it does not allow; tests/unit/test_jobstate.c writes
 *  the table out a second time and holds this one to it. */
#ifndef TY_JOBSTATE_H
#define TY_JOBSTATE_H

typedef enum {
    TY_JOB_PENDING = 0,
    TY_JOB_QUEUED,
    TY_JOB_RUNNING,
    TY_JOB_SUCCEEDED,
    TY_JOB_FAILED,
    TY_JOB_CANCELLED,
    TY_JOB_STATE_COUNT
} ty_jobstate_t;

/* "PENDING", ... ; "UNKNOWN" for out-of-range values. */
const char *ty_jobstate_name (ty_jobstate_t state);
/* Parse a name (case-insensitive); returns -1 if unknown. */
int ty_jobstate_parse (const char *name);
/* 1 if the lifecycle allows from -> to. */
int ty_jobstate_can_transition (ty_jobstate_t from, ty_jobstate_t to);
/* 1 for SUCCEEDED, FAILED, CANCELLED. */
int ty_jobstate_is_terminal (ty_jobstate_t state);

/* Job types: one queue and one worker executable each. */
#define TY_JOB_TYPES "noop", "prepare", "train", "evaluate", "convert", "control"
/* 1 if type is one of TY_JOB_TYPES. */
int ty_jobtype_valid (const char *type);

#endif

#include "ty_jobstate.h"
#include <strings.h>
#include <string.h>

static const char *s_names [TY_JOB_STATE_COUNT] = {
    "PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
};

/* s_allowed [from][to] */
static const unsigned char s_allowed [TY_JOB_STATE_COUNT][TY_JOB_STATE_COUNT] = {
    /*              PEND QUEU RUNN SUCC FAIL CANC */
    /* PENDING */  { 0,   1,   0,   0,   0,   1 },
    /* QUEUED  */  { 0,   0,   1,   0,   1,   1 },
    /* RUNNING */  { 0,   1,   0,   1,   1,   1 },
    /* SUCCEEDED*/ { 0,   0,   0,   0,   0,   0 },
    /* FAILED  */  { 0,   0,   0,   0,   0,   0 },
    /* CANCELLED*/ { 0,   0,   0,   0,   0,   0 },
};

const char *
ty_jobstate_name (ty_jobstate_t state)
{
    if ((int) state < 0 || state >= TY_JOB_STATE_COUNT)
        return "UNKNOWN";
    return s_names [state];
}

int
ty_jobstate_parse (const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < TY_JOB_STATE_COUNT; i++)
        if (!strcasecmp (name, s_names [i]))
            return i;
    return -1;
}

int
ty_jobstate_can_transition (ty_jobstate_t from, ty_jobstate_t to)
{
    if ((int) from < 0 || from >= TY_JOB_STATE_COUNT
    ||  (int) to < 0 || to >= TY_JOB_STATE_COUNT)
        return 0;
    return s_allowed [from][to];
}

int
ty_jobstate_is_terminal (ty_jobstate_t state)
{
    return state == TY_JOB_SUCCEEDED || state == TY_JOB_FAILED
        || state == TY_JOB_CANCELLED;
}

int
ty_jobtype_valid (const char *type)
{
    static const char *types [] = { TY_JOB_TYPES };
    if (!type)
        return 0;
    for (size_t i = 0; i < sizeof types / sizeof types [0]; i++)
        if (!strcmp (type, types [i]))
            return 1;
    return 0;
}

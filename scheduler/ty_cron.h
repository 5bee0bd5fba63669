/*  ty_cron: cron expressions and their fire times.
 *
 *  Five fields, minute hour day-of-month month day-of-week, each a list of
 *  `*`, `N`, `A-B`, `*\/S`, `A-B/S` or `A/S` (A to the field's end), with
 *  names for months (jan..dec) and weekdays (sun..sat; 0 and 7 are Sunday);
 *  or one of @hourly @daily @midnight @weekly @monthly @yearly @annually.
 *  Day rule (as Vixie cron): when both day fields are restricted (do not
 *  start with `*`) a day matches if EITHER matches; otherwise both must.
 *
 *  Times are Unix seconds; an expression fires at whole minutes. In local
 *  time (the process's TZ) the search walks wall-clock time and maps each
 *  candidate back to real instants, so across DST a wall time that does not
 *  exist (spring forward) is skipped and one that happens twice (fall back)
 *  fires once, at its first occurrence. With utc set, TZ is ignored.
 *
 *  Not here: where schedules are stored (ty_schedule.h).
 *  Thread-safe (no state beyond the parsed object; uses localtime_r/mktime).
 */
#ifndef TY_CRON_H
#define TY_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TY_CRON_ERR_MAX       256
/* The search for a next fire time gives up this far ahead: an expression
 * such as "0 0 30 2 *" never fires. Eight years cover every Feb 29 rule
 * (leap years can be 8 years apart around 2100). */
#define TY_CRON_HORIZON_YEARS 9

typedef struct {
    uint64_t minutes;     /* bit m: minute m (0..59) */
    uint32_t hours;       /* bit h (0..23) */
    uint32_t mdays;       /* bit d (1..31) */
    uint16_t months;      /* bit m (1..12) */
    uint8_t  wdays;       /* bit d (0..6, 0 = Sunday) */
    bool     mday_star;   /* day-of-month field starts with '*' */
    bool     wday_star;   /* day-of-week field starts with '*' */
    bool     utc;         /* evaluate in UTC instead of local time */
} ty_cron_t;

/* Parses a cron line into *cron. TY_OK, or TY_EINVAL with a message in err
 * naming the field and the bad token, e.g.
 * "hour: bad token '25' (want 0-23)". */
int ty_cron_parse (const char *line, bool utc, ty_cron_t *cron, char *err, size_t errlen);

/* The first fire time strictly after `after`. TY_OK, or TY_ENOTFOUND when
 * it does not fire within TY_CRON_HORIZON_YEARS. */
int ty_cron_next (const ty_cron_t *cron, int64_t after, int64_t *next);

/* The latest fire time at or before `now`, or TY_ENOTFOUND (none within
 * TY_CRON_HORIZON_YEARS back). */
int ty_cron_prev (const ty_cron_t *cron, int64_t now, int64_t *prev);

/* The slot a scheduler should run at `now`: the latest fire time <= now
 * and > last_slot. Only the latest: after a long downtime the missed slots
 * give one run, not one per slot. TY_OK with *slot, or TY_ENOTFOUND when
 * nothing is due. */
int ty_cron_due (const ty_cron_t *cron, int64_t last_slot, int64_t now, int64_t *slot);

/* Whether the wall-clock minute of t (in the cron's time zone) matches the
 * fields (ignores DST repetition; for tests and `schedule list`). */
bool ty_cron_matches (const ty_cron_t *cron, int64_t t);

#endif

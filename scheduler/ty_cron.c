/*  ty_cron: parsing cron lines and walking wall-clock time to fire times.
 *  See ty_cron.h for the rules (day OR rule, DST). */
#include "ty_cron.h"
#include "ty_error.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_SECS_PER_MIN   60
#define S_SECS_PER_HOUR  3600
#define S_SECS_PER_DAY   86400
#define S_LINE_MAX       256      /* longer cron lines are refused */
#define S_TOKEN_MAX      64       /* one list item, for error messages */

/* ---- fields ------------------------------------------------------------------ */

typedef struct {
    const char *name;
    int min, max;                 /* accepted values */
    const char *const *names;     /* names of min, min+1, ... or NULL */
    int names_base;               /* value of names [0] */
} s_field_t;

static const char *const s_month_names [] = {
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const s_wday_names [] = {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

enum { S_MINUTE, S_HOUR, S_MDAY, S_MONTH, S_WDAY, S_NFIELDS };

static const s_field_t s_fields [S_NFIELDS] = {
    { "minute",       0, 59, NULL, 0 },
    { "hour",         0, 23, NULL, 0 },
    { "day-of-month", 1, 31, NULL, 0 },
    { "month",        1, 12, s_month_names, 1 },
    /* 7 is Sunday too, folded onto 0 after parsing */
    { "day-of-week",  0, 7,  s_wday_names, 0 },
};

static const struct { const char *macro, *line; } s_macros [] = {
    { "@hourly",   "0 * * * *" },
    { "@daily",    "0 0 * * *" },
    { "@midnight", "0 0 * * *" },
    { "@weekly",   "0 0 * * 0" },
    { "@monthly",  "0 0 1 * *" },
    { "@yearly",   "0 0 1 1 *" },
    { "@annually", "0 0 1 1 *" },
};

/* A number or a name of the field. 0 on success. */
static int
s_value (const s_field_t *f, const char *s, size_t len, int *out)
{
    if (len == 0)
        return -1;
    if (isdigit ((unsigned char) s [0])) {
        int v = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit ((unsigned char) s [i]) || v > 1000)
                return -1;
            v = v * 10 + (s [i] - '0');
        }
        if (v < f->min || v > f->max)
            return -1;
        *out = v;
        return 0;
    }
    for (int i = 0; f->names && f->names [i]; i++)
        if (len == strlen (f->names [i]) && !strncasecmp (s, f->names [i], len)) {
            *out = f->names_base + i;
            return 0;
        }
    return -1;
}

static int
s_bad (char *err, size_t errlen, const s_field_t *f, const char *tok, size_t len,
       const char *why)
{
    if (err && errlen)
        snprintf (err, errlen, "%s: bad token '%.*s' (%s)", f->name,
                  (int) (len < S_TOKEN_MAX ? len : S_TOKEN_MAX), tok, why);
    return TY_EINVAL;
}

/* One comma item: *, N, A-B, with an optional /S. Sets bits in *bits. */
static int
s_item (const s_field_t *f, const char *tok, size_t len, uint64_t *bits,
        char *err, size_t errlen)
{
    char range [S_TOKEN_MAX * 2];
    snprintf (range, sizeof range, "want %d-%d%s", f->min, f->max,
              f->names ? " or a name" : "");
    const char *slash = memchr (tok, '/', len);
    size_t base_len = slash ? (size_t) (slash - tok) : len;
    int step = 1;
    if (slash) {
        const char *s = slash + 1;
        size_t slen = len - base_len - 1;
        step = 0;
        if (slen == 0 || slen > 3)
            return s_bad (err, errlen, f, tok, len, "bad step");
        for (size_t i = 0; i < slen; i++) {
            if (!isdigit ((unsigned char) s [i]))
                return s_bad (err, errlen, f, tok, len, "bad step");
            step = step * 10 + (s [i] - '0');
        }
        if (step < 1 || step > f->max)
            return s_bad (err, errlen, f, tok, len, "step out of range");
    }
    int lo, hi;
    if (base_len == 1 && tok [0] == '*') {
        lo = f->min;
        hi = f->max;
    }
    else {
        const char *dash = memchr (tok, '-', base_len);
        size_t lo_len = dash ? (size_t) (dash - tok) : base_len;
        if (s_value (f, tok, lo_len, &lo) != 0)
            return s_bad (err, errlen, f, tok, len, range);
        if (dash) {
            if (s_value (f, dash + 1, base_len - lo_len - 1, &hi) != 0)
                return s_bad (err, errlen, f, tok, len, range);
            if (hi < lo)
                return s_bad (err, errlen, f, tok, len, "range ends before it starts");
        }
        else
            /* "A/S" runs from A to the field's end, as in cronie */
            hi = slash ? f->max : lo;
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= (uint64_t) 1 << v;
    return TY_OK;
}

static int
s_field (const s_field_t *f, const char *text, size_t len, uint64_t *bits,
         char *err, size_t errlen)
{
    *bits = 0;
    const char *p = text, *end = text + len;
    while (p <= end) {
        const char *comma = memchr (p, ',', (size_t) (end - p));
        const char *item_end = comma ? comma : end;
        if (item_end == p)
            return s_bad (err, errlen, f, text, len, "empty list item");
        int rc = s_item (f, p, (size_t) (item_end - p), bits, err, errlen);
        if (rc != TY_OK)
            return rc;
        if (!comma)
            break;
        p = comma + 1;
    }
    return TY_OK;
}

int
ty_cron_parse (const char *line, bool utc, ty_cron_t *cron, char *err, size_t errlen)
{
    if (err && errlen)
        err [0] = '\0';
    if (!line || !cron) {
        if (err && errlen)
            snprintf (err, errlen, "no cron line");
        return TY_EINVAL;
    }
    while (isspace ((unsigned char) *line))
        line++;
    if (line [0] == '@') {
        size_t n = strcspn (line, " \t\r\n");
        const char *rest = line + n;
        while (isspace ((unsigned char) *rest))
            rest++;
        for (size_t i = 0; i < sizeof s_macros / sizeof s_macros [0]; i++)
            if (n == strlen (s_macros [i].macro) && !strncasecmp (line, s_macros [i].macro, n)
                && *rest == '\0')
                return ty_cron_parse (s_macros [i].line, utc, cron, err, errlen);
        if (err && errlen)
            snprintf (err, errlen, "unknown macro '%.*s' (want @hourly, @daily, @midnight, "
                      "@weekly, @monthly or @yearly)", (int) (n < S_TOKEN_MAX ? n : S_TOKEN_MAX),
                      line);
        return TY_EINVAL;
    }
    if (strlen (line) > S_LINE_MAX) {
        if (err && errlen)
            snprintf (err, errlen, "cron line longer than %d characters", S_LINE_MAX);
        return TY_EINVAL;
    }
    const char *starts [S_NFIELDS];
    size_t lens [S_NFIELDS];
    int n = 0;
    const char *p = line;
    while (*p) {
        while (isspace ((unsigned char) *p))
            p++;
        if (!*p)
            break;
        size_t len = strcspn (p, " \t\r\n");
        if (n == S_NFIELDS) {
            if (err && errlen)
                snprintf (err, errlen, "too many fields: '%.*s' after day-of-week "
                          "(want minute hour day-of-month month day-of-week)",
                          (int) (len < S_TOKEN_MAX ? len : S_TOKEN_MAX), p);
            return TY_EINVAL;
        }
        starts [n] = p;
        lens [n] = len;
        n++;
        p += len;
    }
    if (n < S_NFIELDS) {
        if (err && errlen)
            snprintf (err, errlen, "%s: missing (want 5 fields: minute hour day-of-month "
                      "month day-of-week, got %d)", s_fields [n].name, n);
        return TY_EINVAL;
    }
    uint64_t bits [S_NFIELDS];
    for (int i = 0; i < S_NFIELDS; i++) {
        int rc = s_field (&s_fields [i], starts [i], lens [i], &bits [i], err, errlen);
        if (rc != TY_OK)
            return rc;
    }
    memset (cron, 0, sizeof *cron);
    cron->minutes = bits [S_MINUTE];
    cron->hours = (uint32_t) bits [S_HOUR];
    cron->mdays = (uint32_t) bits [S_MDAY];
    cron->months = (uint16_t) bits [S_MONTH];
    uint64_t w = bits [S_WDAY];
    if (w & ((uint64_t) 1 << 7))
        w |= 1;                               /* 7 is Sunday */
    cron->wdays = (uint8_t) (w & 0x7f);
    cron->mday_star = starts [S_MDAY][0] == '*';
    cron->wday_star = starts [S_WDAY][0] == '*';
    cron->utc = utc;
    return TY_OK;
}

/* ---- matching ---------------------------------------------------------------- */

static bool
s_day_matches (const ty_cron_t *c, const struct tm *tm)
{
    bool mday = (c->mdays >> tm->tm_mday) & 1;
    bool wday = (c->wdays >> tm->tm_wday) & 1;
    if (c->mday_star || c->wday_star)
        return mday && wday;
    return mday || wday;                      /* both restricted: either one */
}

/* "Wall seconds": the wall-clock time as if it were UTC, so that wall-clock
 * arithmetic (next day, next hour) never meets a DST jump. */
static int64_t
s_to_wall (const ty_cron_t *c, int64_t t)
{
    if (c->utc)
        return t;
    time_t tt = (time_t) t;
    struct tm tm;
    if (!localtime_r (&tt, &tm))
        return t;
    return (int64_t) timegm (&tm);
}

static bool
s_same_minute (const struct tm *a, const struct tm *b)
{
    return a->tm_year == b->tm_year && a->tm_mon == b->tm_mon && a->tm_mday == b->tm_mday
           && a->tm_hour == b->tm_hour && a->tm_min == b->tm_min;
}

/* The earliest real instant whose local wall clock reads `wall` (a time
 * repeated by a fall-back has two; one skipped by a spring-forward has
 * none: returns false). */
static bool
s_first_instant (const struct tm *wall, int64_t *out)
{
    static const int isdst_tries [] = { 1, 0, -1 };
    bool found = false;
    for (size_t i = 0; i < sizeof isdst_tries / sizeof isdst_tries [0]; i++) {
        struct tm tm = *wall;
        tm.tm_isdst = isdst_tries [i];
        time_t t = mktime (&tm);
        if (t == (time_t) -1)
            continue;
        struct tm back;
        if (!localtime_r (&t, &back) || !s_same_minute (&back, wall))
            continue;
        if (!found || (int64_t) t < *out)
            *out = (int64_t) t;
        found = true;
    }
    return found;
}

bool
ty_cron_matches (const ty_cron_t *c, int64_t t)
{
    int64_t w = s_to_wall (c, t);
    time_t tt = (time_t) w;
    struct tm tm;
    if (!gmtime_r (&tt, &tm))
        return false;
    return ((c->months >> (tm.tm_mon + 1)) & 1) && s_day_matches (c, &tm)
           && ((c->hours >> tm.tm_hour) & 1) && ((c->minutes >> tm.tm_min) & 1);
}

int
ty_cron_next (const ty_cron_t *c, int64_t after, int64_t *next)
{
    int64_t wall_after = s_to_wall (c, after);
    int64_t w = wall_after - (wall_after % S_SECS_PER_MIN + S_SECS_PER_MIN) % S_SECS_PER_MIN
                + S_SECS_PER_MIN;
    int64_t limit = w + (int64_t) TY_CRON_HORIZON_YEARS * 366 * S_SECS_PER_DAY;
    while (w <= limit) {
        time_t tt = (time_t) w;
        struct tm tm;
        if (!gmtime_r (&tt, &tm))
            return TY_ENOTFOUND;
        if (!((c->months >> (tm.tm_mon + 1)) & 1)) {
            struct tm n = { .tm_year = tm.tm_year, .tm_mon = tm.tm_mon + 1, .tm_mday = 1 };
            w = (int64_t) timegm (&n);
            continue;
        }
        if (!s_day_matches (c, &tm)) {
            struct tm n = { .tm_year = tm.tm_year, .tm_mon = tm.tm_mon, .tm_mday = tm.tm_mday + 1 };
            w = (int64_t) timegm (&n);
            continue;
        }
        if (!((c->hours >> tm.tm_hour) & 1)) {
            w += S_SECS_PER_HOUR - tm.tm_min * S_SECS_PER_MIN - tm.tm_sec;
            continue;
        }
        if (!((c->minutes >> tm.tm_min) & 1)) {
            w += S_SECS_PER_MIN;
            continue;
        }
        if (c->utc) {
            *next = w;
            return TY_OK;
        }
        int64_t t = 0;
        /* skipped by spring-forward: no run; repeated by fall-back: only
         * the first occurrence, which may already be at or before `after` */
        if (s_first_instant (&tm, &t) && t > after) {
            *next = t;
            return TY_OK;
        }
        w += S_SECS_PER_MIN;
    }
    return TY_ENOTFOUND;
}

int
ty_cron_prev (const ty_cron_t *c, int64_t now, int64_t *prev)
{
    /* Look for the first fire time after now - window for growing windows;
     * the first window holding one holds few, so walking forward to the
     * last one <= now is short. */
    static const int64_t windows [] = {
        S_SECS_PER_MIN, S_SECS_PER_HOUR, S_SECS_PER_DAY, 32 * (int64_t) S_SECS_PER_DAY,
        367 * (int64_t) S_SECS_PER_DAY,
        (int64_t) TY_CRON_HORIZON_YEARS * 367 * S_SECS_PER_DAY,
    };
    for (size_t i = 0; i < sizeof windows / sizeof windows [0]; i++) {
        int64_t t;
        if (ty_cron_next (c, now - windows [i], &t) != TY_OK || t > now)
            continue;
        int64_t n;
        while (ty_cron_next (c, t, &n) == TY_OK && n <= now)
            t = n;
        *prev = t;
        return TY_OK;
    }
    return TY_ENOTFOUND;
}

int
ty_cron_due (const ty_cron_t *c, int64_t last_slot, int64_t now, int64_t *slot)
{
    int64_t p;
    if (now <= last_slot || ty_cron_prev (c, now, &p) != TY_OK || p <= last_slot)
        return TY_ENOTFOUND;
    *slot = p;
    return TY_OK;
}

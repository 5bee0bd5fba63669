/*  ty_validate: row checks, dataset rules and the JSON report. */
#include "ty_validate.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"

/* Duplicate detection keeps a 64-bit fingerprint per accepted row in an
 * open-addressing set (0 marks a free slot); grown at 50 % load. */
#define S_SET_INITIAL   1024
#define S_FNV_OFFSET    0xcbf29ce484222325ull
#define S_FNV_PRIME     0x100000001b3ull

static const char *s_reason_names[TY_REJECT_COUNT] = {
    "unbalanced_quote", "column_count", "invalid_utf8", "nul_byte", "line_too_long",
    "bad_json", "bad_value", "empty_text", "text_too_long", "missing_label",
    "rating_out_of_range", "confidence_out_of_range", "undecodable_image",
    "shape_mismatch", "duplicate", "unreadable_file",
};

struct _ty_validate_t {
    ty_validate_opts_t   opts;
    ty_validate_report_t report;
    uint64_t            *set;
    size_t               set_cap, set_n;
};

void
ty_validate_opts_default (ty_validate_opts_t *o)
{
    memset (o, 0, sizeof *o);
    o->min_per_class = TY_VALIDATE_MIN_PER_CLASS;
    o->min_samples = TY_VALIDATE_MIN_SAMPLES;
    o->max_bad_share = TY_VALIDATE_MAX_BAD_SHARE;
    o->max_text_bytes = TY_VALIDATE_MAX_TEXT_BYTES;
    o->balance_share = TY_VALIDATE_BALANCE_SHARE;
    o->rating_min = 0.0;
    o->rating_max = 1.0;
    o->label_case = TY_LABEL_CASE_KEEP;
    o->trim_labels = true;
    o->reject_duplicates = true;
    o->require_labels = true;
}

static int
s_parse_bool (const char *v, bool *out)
{
    if (!strcmp (v, "true") || !strcmp (v, "1") || !strcmp (v, "yes"))
        *out = true;
    else if (!strcmp (v, "false") || !strcmp (v, "0") || !strcmp (v, "no"))
        *out = false;
    else
        return TY_EINVAL;
    return TY_OK;
}

static int
s_parse_double (const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod (v, &end);
    if (errno || end == v || *end || !isfinite (d))
        return TY_EINVAL;
    *out = d;
    return TY_OK;
}

static int
s_parse_u64 (const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*v == '-')
        return TY_EINVAL;
    unsigned long long x = strtoull (v, &end, 10);
    if (errno || end == v || *end)
        return TY_EINVAL;
    *out = x;
    return TY_OK;
}

int
ty_validate_opts_set (ty_validate_opts_t *o, const char *key, const char *value)
{
    uint64_t u;
    double d;
    if (!strcmp (key, "min_per_class")) {
        if (s_parse_u64 (value, &u) || u > UINT32_MAX)
            return TY_EINVAL;
        o->min_per_class = (uint32_t) u;
    }
    else if (!strcmp (key, "min_samples"))
        return s_parse_u64 (value, &o->min_samples);
    else if (!strcmp (key, "max_bad_share")) {
        if (s_parse_double (value, &d) || d < 0 || d > 1)
            return TY_EINVAL;
        o->max_bad_share = d;
    }
    else if (!strcmp (key, "max_text_bytes")) {
        if (s_parse_u64 (value, &u) || u == 0)
            return TY_EINVAL;
        o->max_text_bytes = (size_t) u;
    }
    else if (!strcmp (key, "balance_share")) {
        if (s_parse_double (value, &d) || d < 0 || d > 1)
            return TY_EINVAL;
        o->balance_share = d;
    }
    else if (!strcmp (key, "rating_min"))
        return s_parse_double (value, &o->rating_min);
    else if (!strcmp (key, "rating_max"))
        return s_parse_double (value, &o->rating_max);
    else if (!strcmp (key, "label_case")) {
        if (!strcmp (value, "keep"))
            o->label_case = TY_LABEL_CASE_KEEP;
        else if (!strcmp (value, "upper"))
            o->label_case = TY_LABEL_CASE_UPPER;
        else if (!strcmp (value, "lower"))
            o->label_case = TY_LABEL_CASE_LOWER;
        else
            return TY_EINVAL;
    }
    else if (!strcmp (key, "trim_labels"))
        return s_parse_bool (value, &o->trim_labels);
    else if (!strcmp (key, "reject_duplicates"))
        return s_parse_bool (value, &o->reject_duplicates);
    else if (!strcmp (key, "require_labels"))
        return s_parse_bool (value, &o->require_labels);
    else
        return TY_ENOTFOUND;
    return TY_OK;
}

ty_validate_t *
ty_validate_new (const ty_validate_opts_t *opts)
{
    ty_validate_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (opts)
        self->opts = *opts;
    else
        ty_validate_opts_default (&self->opts);
    return self;
}

static void
s_report_clear_final (ty_validate_report_t *r)
{
    for (size_t i = 0; i < r->n_classes; i++)
        free (r->classes[i].label);
    free (r->classes);
    r->classes = NULL;
    r->n_classes = 0;
    for (size_t i = 0; i < r->n_warnings; i++)
        free (r->warnings[i]);
    free (r->warnings);
    r->warnings = NULL;
    r->n_warnings = 0;
    r->failed = false;
    r->finished = false;
    r->message[0] = '\0';
}

void
ty_validate_destroy (ty_validate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_report_clear_final (&(*self_p)->report);
    free ((*self_p)->set);
    free (*self_p);
    *self_p = NULL;
}

const ty_validate_opts_t *ty_validate_opts (ty_validate_t *self) { return &self->opts; }
const ty_validate_report_t *ty_validate_report (ty_validate_t *self) { return &self->report; }

const char *
ty_validate_reason_name (ty_reject_t reason)
{
    return (unsigned) reason < TY_REJECT_COUNT ? s_reason_names[reason] : "unknown";
}

void
ty_validate_reject (ty_validate_t *self, ty_reject_t reason, uint64_t line,
                    const char *detail)
{
    if ((unsigned) reason >= TY_REJECT_COUNT)
        reason = TY_REJECT_VALUE;
    ty_validate_reason_t *r = &self->report.reasons[reason];
    if (r->count == 0 && detail)
        snprintf (r->example, sizeof r->example, "%s", detail);
    if (r->n_first < TY_VALIDATE_FIRST_LINES)
        r->first_lines[r->n_first++] = line;
    r->count++;
    self->report.rejected++;
    self->report.rows_read++;
}

void
ty_validate_unaccept (ty_validate_t *self)
{
    if (self->report.accepted > 0) {
        self->report.accepted--;
        self->report.rows_read--;
    }
}

/* ---- row checks ------------------------------------------------------- */

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static bool
s_utf8_valid (const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else
            return false;
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))
            || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static bool
s_str_ok (const char *s)
{
    return !s || s_utf8_valid ((const unsigned char *) s, strlen (s));
}

/* Word-at-a-time multiply-xor mixing (FNV-1a on the tail): duplicate
 * fingerprints of long texts and pixels at memory speed. */
static uint64_t
s_fnv (uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy (&w, p + i, 8);
        h = (h ^ w) * S_FNV_PRIME;
        h ^= h >> 29;
    }
    for (; i < n; i++) {
        h ^= p[i];
        h *= S_FNV_PRIME;
    }
    return h;
}

static uint64_t
s_fnv_str (uint64_t h, const char *s)
{
    /* the NUL keeps ("ab","c") apart from ("a","bc") */
    return s ? s_fnv (h, s, strlen (s) + 1) : s_fnv (h, "", 1);
}

static uint64_t
s_fingerprint (const Ty__Sample *s)
{
    uint64_t h = S_FNV_OFFSET;
    h = s_fnv_str (h, s->text);
    if (s->n_features)
        h = s_fnv (h, s->features, s->n_features * sizeof *s->features);
    if (s->image)
        h = s_fnv (h, s->image->pixels.data, s->image->pixels.len);
    if (s->interaction) {
        h = s_fnv_str (h, s->interaction->user);
        h = s_fnv_str (h, s->interaction->item);
        h = s_fnv (h, &s->interaction->timestamp, sizeof s->interaction->timestamp);
    }
    if (s->annotation)
        h = s_fnv_str (h, s->annotation->path);
    return h ? h : 1;    /* 0 marks a free slot */
}

/* Inserts h; returns false if it was there. */
static int
s_set_insert (ty_validate_t *self, uint64_t h, bool *fresh)
{
    if ((self->set_n + 1) * 2 > self->set_cap) {
        size_t cap = self->set_cap ? self->set_cap * 2 : S_SET_INITIAL;
        uint64_t *grown = calloc (cap, sizeof *grown);
        if (!grown)
            return TY_ENOMEM;
        for (size_t i = 0; i < self->set_cap; i++) {
            uint64_t x = self->set[i];
            if (!x)
                continue;
            size_t j = x & (cap - 1);
            while (grown[j])
                j = (j + 1) & (cap - 1);
            grown[j] = x;
        }
        free (self->set);
        self->set = grown;
        self->set_cap = cap;
    }
    size_t j = h & (self->set_cap - 1);
    while (self->set[j]) {
        if (self->set[j] == h) {
            *fresh = false;
            return TY_OK;
        }
        j = (j + 1) & (self->set_cap - 1);
    }
    self->set[j] = h;
    self->set_n++;
    *fresh = true;
    return TY_OK;
}

/* Trims and re-cases a label in place; returns the (maybe advanced) start. */
static char *
s_normalize_label (const ty_validate_opts_t *o, char *label)
{
    if (o->trim_labels) {
        while (*label && isspace ((unsigned char) *label))
            label++;
        size_t n = strlen (label);
        while (n > 0 && isspace ((unsigned char) label[n - 1]))
            label[--n] = '\0';
    }
    if (o->label_case != TY_LABEL_CASE_KEEP)
        for (char *p = label; *p; p++)
            /* ASCII only: multi-byte UTF-8 letters stay as they are */
            if ((unsigned char) *p < 0x80)
                *p = (char) (o->label_case == TY_LABEL_CASE_UPPER ? toupper ((unsigned char) *p)
                                                                  : tolower ((unsigned char) *p));
    return label;
}

static bool s_reject (ty_validate_t *self, ty_reject_t reason, uint64_t line,
                      const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

static bool
s_reject (ty_validate_t *self, ty_reject_t reason, uint64_t line, const char *fmt, ...)
{
    char detail[TY_VALIDATE_DETAIL_MAX];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (detail, sizeof detail, fmt, ap);
    va_end (ap);
    ty_validate_reject (self, reason, line, detail);
    return false;
}

bool
ty_validate_sample (ty_validate_t *self, Ty__Sample *s, uint64_t line)
{
    const ty_validate_opts_t *o = &self->opts;
    char num[64];
    bool is_text = !s->n_features && !s->image && !s->interaction && !s->annotation;

    /* labels: normalize, drop empty ones */
    size_t kept = 0;
    for (size_t i = 0; i < s->n_labels; i++) {
        if (!s_str_ok (s->labels[i]))
            return s_reject (self, TY_REJECT_UTF8, line, "label is not valid UTF-8");
        char *l = s_normalize_label (o, s->labels[i]);
        if (*l)
            s->labels[kept++] = l;
    }
    s->n_labels = kept;
    bool labelled_kind = !s->interaction && !s->annotation && !s->has_target;
    if (o->require_labels && labelled_kind && s->n_labels == 0)
        return s_reject (self, TY_REJECT_NO_LABEL, line, "no label");

    if (!s_str_ok (s->text))
        return s_reject (self, TY_REJECT_UTF8, line, "text is not valid UTF-8");
    size_t tlen = s->text ? strlen (s->text) : 0;
    if (is_text) {
        size_t i = 0;
        while (i < tlen && isspace ((unsigned char) s->text[i]))
            i++;
        if (i == tlen)
            return s_reject (self, TY_REJECT_EMPTY_TEXT, line, "empty text");
    }
    if (tlen > o->max_text_bytes) {
        snprintf (num, sizeof num, "%zu > %zu", tlen, o->max_text_bytes);
        return s_reject (self, TY_REJECT_TEXT_LONG, line, "text of %s bytes", num);
    }
    if (!(s->weight > 0.0f && s->weight <= 1.0f)) {
        snprintf (num, sizeof num, "%g", (double) s->weight);
        return s_reject (self, TY_REJECT_WEIGHT, line, "confidence %s not in (0, 1]", num);
    }
    if (s->has_target && !isfinite (s->target))
        return s_reject (self, TY_REJECT_VALUE, line, "target is not finite");
    for (size_t i = 0; i < s->n_features; i++)
        if (!isfinite (s->features[i]))
            return s_reject (self, TY_REJECT_VALUE, line, "feature is NaN or infinite");
    if (s->annotation) {
        const char *p = s->annotation->path;
        if (!p || !*p)
            return s_reject (self, TY_REJECT_VALUE, line, "empty annotation path");
        if (!s_str_ok (p))
            return s_reject (self, TY_REJECT_UTF8, line, "path is not valid UTF-8");
        double r = s->annotation->rating;
        if (!(r >= o->rating_min && r <= o->rating_max)) {
            snprintf (num, sizeof num, "%g not in [%g, %g]", r, o->rating_min, o->rating_max);
            return s_reject (self, TY_REJECT_RATING, line, "rating %s", num);
        }
    }
    if (s->interaction) {
        Ty__Interaction *in = s->interaction;
        if (!in->user || !*in->user || !in->item || !*in->item)
            return s_reject (self, TY_REJECT_VALUE, line, "empty user or item");
        if (!s_str_ok (in->user) || !s_str_ok (in->item))
            return s_reject (self, TY_REJECT_UTF8, line, "user or item not valid UTF-8");
        if (in->has_rating && !(in->rating >= o->rating_min && in->rating <= o->rating_max)) {
            snprintf (num, sizeof num, "%g not in [%g, %g]", in->rating, o->rating_min,
                      o->rating_max);
            return s_reject (self, TY_REJECT_RATING, line, "rating %s", num);
        }
    }
    if (s->image) {
        Ty__Image *im = s->image;
        if ((uint64_t) im->height * im->width * im->channels != im->pixels.len
            || im->pixels.len == 0)
            return s_reject (self, TY_REJECT_IMAGE, line, "pixel count does not match shape");
    }
    if (o->reject_duplicates) {
        bool fresh = true;
        if (s_set_insert (self, s_fingerprint (s), &fresh) != TY_OK)
            return s_reject (self, TY_REJECT_VALUE, line, "out of memory");
        if (!fresh)
            return s_reject (self, TY_REJECT_DUPLICATE, line,
                             "same content as an earlier row");
    }
    self->report.accepted++;
    self->report.rows_read++;
    return true;
}

/* ---- dataset rules ------------------------------------------------------ */

static int
s_cmp_class (const void *a, const void *b)
{
    return strcmp (((const ty_validate_class_t *) a)->label,
                   ((const ty_validate_class_t *) b)->label);
}

static int
s_warn (ty_validate_report_t *r, const char *text)
{
    char **grown = realloc (r->warnings, (r->n_warnings + 1) * sizeof *grown);
    if (!grown)
        return TY_ENOMEM;
    r->warnings = grown;
    if (!(r->warnings[r->n_warnings] = strdup (text)))
        return TY_ENOMEM;
    r->n_warnings++;
    return TY_OK;
}

int
ty_validate_finish (ty_validate_t *self, const char *const *labels,
                    const uint64_t *counts, size_t n)
{
    ty_validate_report_t *r = &self->report;
    const ty_validate_opts_t *o = &self->opts;
    s_report_clear_final (r);
    r->finished = true;
    if (n) {
        r->classes = calloc (n, sizeof *r->classes);
        if (!r->classes)
            return TY_ENOMEM;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(r->classes[i].label = strdup (labels[i]))) {
            r->n_classes = i;
            return TY_ENOMEM;
        }
        r->classes[i].count = counts[i];
        total += counts[i];
    }
    r->n_classes = n;
    if (n > 1)
        qsort (r->classes, n, sizeof *r->classes, s_cmp_class);
    double average = n ? (double) total / (double) n : 0;
    char line[TY_VALIDATE_MESSAGE_MAX];
    size_t under = 0;
    const ty_validate_class_t *first_under = NULL;
    for (size_t i = 0; i < n; i++) {
        ty_validate_class_t *c = &r->classes[i];
        c->under_min = o->min_per_class && c->count < o->min_per_class;
        if (c->under_min && !under++)
            first_under = c;
        c->unbalanced = o->balance_share > 0 && (double) c->count < o->balance_share * average;
        if (c->unbalanced) {
            snprintf (line, sizeof line,
                      "class '%s' has %llu samples, under %.0f%% of the average %.1f "
                      "(rule balance_share): label more of it", c->label,
                      (unsigned long long) c->count, o->balance_share * 100, average);
            if (s_warn (r, line) != TY_OK)
                return TY_ENOMEM;
        }
    }
    double share = r->rows_read ? (double) r->rejected / (double) r->rows_read : 0;
    if (r->rejected && share > o->max_bad_share) {
        int worst = 0;
        for (int k = 1; k < TY_REJECT_COUNT; k++)
            if (r->reasons[k].count > r->reasons[worst].count)
                worst = k;
        snprintf (r->message, sizeof r->message,
                  "rule max_bad_share: %llu of %llu rows rejected (%.1f%% > %.1f%%); most "
                  "often %s, first on line %llu: %s",
                  (unsigned long long) r->rejected, (unsigned long long) r->rows_read,
                  share * 100, o->max_bad_share * 100, s_reason_names[worst],
                  (unsigned long long) r->reasons[worst].first_lines[0],
                  r->reasons[worst].example);
        r->failed = true;
    }
    else if (r->accepted < o->min_samples) {
        snprintf (r->message, sizeof r->message,
                  "rule min_samples: %llu samples accepted, at least %llu needed%s",
                  (unsigned long long) r->accepted, (unsigned long long) o->min_samples,
                  r->rows_read == 0 ? " (the input holds no rows)" : "");
        r->failed = true;
    }
    else if (under) {
        snprintf (r->message, sizeof r->message,
                  "rule min_per_class: class '%s' has %llu samples, at least %u needed"
                  "%s", first_under->label, (unsigned long long) first_under->count,
                  o->min_per_class, under > 1 ? " (and more classes, see classes)" : "");
        r->failed = true;
    }
    return r->failed ? TY_EINVAL : TY_OK;
}

/* ---- JSON -------------------------------------------------------------------
 * { "ok": bool, "message": str, "rows_read", "accepted", "rejected": n,
 *   "bad_share": x, "rejects": [ { "reason", "count", "first_lines": [..],
 *   "example" } ], "classes": [ { "label", "count", "under_min",
 *   "unbalanced" } ], "warnings": [ str ] } */
char *
ty_validate_report_json (ty_validate_t *self)
{
    const ty_validate_report_t *r = &self->report;
    cJSON *root = cJSON_CreateObject ();
    if (!root)
        return NULL;
    bool ok = true;
    ok &= cJSON_AddBoolToObject (root, "ok", !r->failed) != NULL;
    ok &= cJSON_AddStringToObject (root, "message", r->message) != NULL;
    ok &= cJSON_AddNumberToObject (root, "rows_read", (double) r->rows_read) != NULL;
    ok &= cJSON_AddNumberToObject (root, "accepted", (double) r->accepted) != NULL;
    ok &= cJSON_AddNumberToObject (root, "rejected", (double) r->rejected) != NULL;
    ok &= cJSON_AddNumberToObject (root, "bad_share", r->rows_read
                                   ? (double) r->rejected / (double) r->rows_read : 0) != NULL;
    cJSON *rejects = cJSON_AddArrayToObject (root, "rejects");
    ok &= rejects != NULL;
    for (int k = 0; ok && k < TY_REJECT_COUNT; k++) {
        const ty_validate_reason_t *x = &r->reasons[k];
        if (!x->count)
            continue;
        cJSON *o = cJSON_CreateObject ();
        ok &= o && cJSON_AddItemToArray (rejects, o);
        if (!ok)
            break;
        ok &= cJSON_AddStringToObject (o, "reason", s_reason_names[k]) != NULL;
        ok &= cJSON_AddNumberToObject (o, "count", (double) x->count) != NULL;
        cJSON *lines = cJSON_AddArrayToObject (o, "first_lines");
        ok &= lines != NULL;
        for (size_t i = 0; ok && i < x->n_first; i++)
            ok &= cJSON_AddItemToArray (lines, cJSON_CreateNumber ((double) x->first_lines[i]));
        ok &= cJSON_AddStringToObject (o, "example", x->example) != NULL;
    }
    cJSON *classes = cJSON_AddArrayToObject (root, "classes");
    ok &= classes != NULL;
    for (size_t i = 0; ok && i < r->n_classes; i++) {
        cJSON *o = cJSON_CreateObject ();
        ok &= o && cJSON_AddItemToArray (classes, o);
        if (!ok)
            break;
        ok &= cJSON_AddStringToObject (o, "label", r->classes[i].label) != NULL;
        ok &= cJSON_AddNumberToObject (o, "count", (double) r->classes[i].count) != NULL;
        ok &= cJSON_AddBoolToObject (o, "under_min", r->classes[i].under_min) != NULL;
        ok &= cJSON_AddBoolToObject (o, "unbalanced", r->classes[i].unbalanced) != NULL;
    }
    cJSON *warnings = cJSON_AddArrayToObject (root, "warnings");
    ok &= warnings != NULL;
    for (size_t i = 0; ok && i < r->n_warnings; i++)
        ok &= cJSON_AddItemToArray (warnings, cJSON_CreateString (r->warnings[i]));
    char *text = ok ? cJSON_PrintUnformatted (root) : NULL;
    cJSON_Delete (root);
    return text;
}

/*  ty_import_lines: line formats, JSON Lines (cJSON) and fastText.
 *  Each line is bounded by max_record_bytes and checked for NUL bytes
 *  before it is parsed; blank lines are skipped. */
#include "ty_import.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"

#define S_DETAIL_MAX TY_VALIDATE_DETAIL_MAX

typedef struct {
    ty_import_map_t m;
    size_t          pos;
    uint64_t        line;
    size_t          max;
    char           *buf;     /* the current line, NUL-terminated, writable */
    char          **labs;
    size_t          labs_cap;
    float          *feats;
    size_t          feats_cap;
} s_lines_t;

static int
s_open (s_lines_t *l, const char *path, const ty_import_opts_t *o, char *error)
{
    memset (l, 0, sizeof *l);
    int rc = ty_import_map (path, &l->m);
    if (rc != TY_OK) {
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: %s", path, ty_strerror (rc));
        return rc;
    }
    l->max = o->max_record_bytes ? o->max_record_bytes : TY_IMPORT_MAX_RECORD_BYTES;
    l->buf = malloc (l->max + 1);
    l->labs_cap = 8;
    l->labs = malloc (l->labs_cap * sizeof *l->labs);
    if (!l->buf || !l->labs)
        return TY_ENOMEM;
    return TY_OK;
}

static void
s_close (s_lines_t *l)
{
    ty_import_unmap (&l->m);
    free (l->buf);
    free (l->labs);
    free (l->feats);
}

/* Next non-blank line into l->buf: 1, 0 at the end; too long or with a
 * NUL byte: rejected here and skipped. */
static int
s_next (s_lines_t *l, ty_validate_t *v, size_t *len)
{
    while (l->pos < l->m.size) {
        const char *p = l->m.data + l->pos;
        size_t rest = l->m.size - l->pos;
        const char *nl = memchr (p, '\n', rest);
        size_t n = nl ? (size_t) (nl - p) : rest;
        l->pos += n + (nl ? 1 : 0);
        l->line++;
        if (n && p[n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        char detail[S_DETAIL_MAX];
        if (n > l->max) {
            snprintf (detail, sizeof detail, "line of %zu bytes, over the limit of %zu "
                      "(max_record_bytes)", n, l->max);
            ty_validate_reject (v, TY_REJECT_LINE_LONG, l->line, detail);
            continue;
        }
        const char *nul = memchr (p, '\0', n);
        if (nul) {
            snprintf (detail, sizeof detail, "NUL byte at byte %zu of the line",
                      (size_t) (nul - p) + 1);
            ty_validate_reject (v, TY_REJECT_NUL, l->line, detail);
            continue;
        }
        memcpy (l->buf, p, n);
        l->buf[n] = '\0';
        *len = n;
        return 1;
    }
    return 0;
}

static int
s_push_label (s_lines_t *l, size_t *n, char *label)
{
    if (*n == l->labs_cap) {
        char **g = realloc (l->labs, l->labs_cap * 2 * sizeof *g);
        if (!g)
            return TY_ENOMEM;
        l->labs = g;
        l->labs_cap *= 2;
    }
    l->labs[(*n)++] = label;
    return TY_OK;
}

/* ---- JSON Lines ------------------------------------------------------------------ */

static bool
s_json_bad (ty_validate_t *v, uint64_t line, const char *what)
{
    char detail[S_DETAIL_MAX];
    snprintf (detail, sizeof detail, "field %s has the wrong type or value", what);
    ty_validate_reject (v, TY_REJECT_VALUE, line, detail);
    return false;
}

static bool
s_json_row (s_lines_t *l, cJSON *o, ty_validate_t *v, Ty__Sample *s, Ty__Annotation *an,
            Ty__Interaction *in)
{
    uint64_t line = l->line;
    cJSON *x;
    if ((x = cJSON_GetObjectItemCaseSensitive (o, "text"))) {
        if (!cJSON_IsString (x))
            return s_json_bad (v, line, "text");
        s->text = x->valuestring;
    }
    size_t nl = 0;
    if ((x = cJSON_GetObjectItemCaseSensitive (o, "label")) && !cJSON_IsNull (x)) {
        if (!cJSON_IsString (x) || s_push_label (l, &nl, x->valuestring))
            return s_json_bad (v, line, "label");
    }
    if ((x = cJSON_GetObjectItemCaseSensitive (o, "labels"))) {
        if (!cJSON_IsArray (x))
            return s_json_bad (v, line, "labels");
        cJSON *e;
        cJSON_ArrayForEach (e, x)
            if (!cJSON_IsString (e) || s_push_label (l, &nl, e->valuestring))
                return s_json_bad (v, line, "labels");
    }
    s->n_labels = nl;
    s->labels = l->labs;
    x = cJSON_GetObjectItemCaseSensitive (o, "confidence");
    if (!x)
        x = cJSON_GetObjectItemCaseSensitive (o, "weight");
    if (x) {
        if (!cJSON_IsNumber (x))
            return s_json_bad (v, line, "confidence");
        s->weight = (float) x->valuedouble;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive (o, "source"))
        && (!cJSON_IsString (x) || ty_import_parse_source (x->valuestring, &s->source)))
        return s_json_bad (v, line, "source");
    if ((x = cJSON_GetObjectItemCaseSensitive (o, "target"))) {
        if (!cJSON_IsNumber (x))
            return s_json_bad (v, line, "target");
        s->target = x->valuedouble;
        s->has_target = true;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive (o, "features"))) {
        if (!cJSON_IsArray (x))
            return s_json_bad (v, line, "features");
        size_t n = (size_t) cJSON_GetArraySize (x);
        if (n > l->feats_cap) {
            float *g = realloc (l->feats, n * sizeof *g);
            if (!g)
                return s_json_bad (v, line, "features");
            l->feats = g;
            l->feats_cap = n;
        }
        size_t i = 0;
        cJSON *e;
        cJSON_ArrayForEach (e, x) {
            if (!cJSON_IsNumber (e) || fabs (e->valuedouble) > 3.4e38)
                return s_json_bad (v, line, "features");
            l->feats[i++] = (float) e->valuedouble;
        }
        s->n_features = i;
        s->features = l->feats;
    }
    cJSON *rating = cJSON_GetObjectItemCaseSensitive (o, "rating");
    if (rating && !cJSON_IsNumber (rating))
        return s_json_bad (v, line, "rating");
    if ((x = cJSON_GetObjectItemCaseSensitive (o, "path"))) {
        if (!cJSON_IsString (x))
            return s_json_bad (v, line, "path");
        if (!rating)
            return s_json_bad (v, line, "rating");
        an->path = x->valuestring;
        an->rating = rating->valuedouble;
        s->annotation = an;
    }
    else if ((x = cJSON_GetObjectItemCaseSensitive (o, "user"))) {
        cJSON *item = cJSON_GetObjectItemCaseSensitive (o, "item");
        if (!cJSON_IsString (x) || !cJSON_IsString (item))
            return s_json_bad (v, line, "user/item");
        in->user = x->valuestring;
        in->item = item->valuestring;
        if (rating) {
            in->rating = rating->valuedouble;
            in->has_rating = true;
        }
        cJSON *t = cJSON_GetObjectItemCaseSensitive (o, "timestamp");
        if (t) {
            if (!cJSON_IsNumber (t))
                return s_json_bad (v, line, "timestamp");
            in->timestamp = (int64_t) t->valuedouble;
        }
        s->interaction = in;
    }
    return true;
}

int
ty_import_jsonl (const char *path, const ty_import_opts_t *o, ty_validate_t *v,
                 ty_import_rows_t *rows, char *error)
{
    s_lines_t l;
    int rc = s_open (&l, path, o, error);
    size_t len;
    while (rc == TY_OK && s_next (&l, v, &len)) {
        cJSON *obj = cJSON_ParseWithLength (l.buf, len);
        if (!cJSON_IsObject (obj)) {
            char detail[S_DETAIL_MAX];
            const char *at = obj ? NULL : cJSON_GetErrorPtr ();
            if (at && at >= l.buf && at <= l.buf + len)
                snprintf (detail, sizeof detail, "not a JSON object (error at byte %zu)",
                          (size_t) (at - l.buf) + 1);
            else
                snprintf (detail, sizeof detail, "not a JSON object");
            ty_validate_reject (v, TY_REJECT_JSON, l.line, detail);
            cJSON_Delete (obj);
            continue;
        }
        Ty__Sample s = TY__SAMPLE__INIT;
        Ty__Annotation an = TY__ANNOTATION__INIT;
        Ty__Interaction in = TY__INTERACTION__INIT;
        s.weight = 1.0f;
        s.source = o->source;
        if (s_json_row (&l, obj, v, &s, &an, &in))
            rc = ty_import_accept (v, rows, &s, l.line, o);
        cJSON_Delete (obj);
    }
    s_close (&l);
    return rc;
}

/* ---- fastText ------------------------------------------------------------------- */

int
ty_import_fasttext (const char *path, const ty_import_opts_t *o, ty_validate_t *v,
                    ty_import_rows_t *rows, char *error)
{
    s_lines_t l;
    int rc = s_open (&l, path, o, error);
    const char *prefix = o->fasttext_prefix ? o->fasttext_prefix : TY_IMPORT_FASTTEXT_PREFIX;
    size_t plen = strlen (prefix), len;
    while (rc == TY_OK && s_next (&l, v, &len)) {
        char *p = l.buf;
        size_t nl = 0;
        while (strncmp (p, prefix, plen) == 0) {
            char *label = p + plen;
            char *end = label + strcspn (label, " \t");
            char *next = end;
            if (*end) {
                *end = '\0';
                next = end + 1;
                next += strspn (next, " \t");
            }
            if (s_push_label (&l, &nl, label)) {
                rc = TY_ENOMEM;
                break;
            }
            p = next;
        }
        Ty__Sample s = TY__SAMPLE__INIT;
        s.weight = 1.0f;
        s.source = o->source;
        s.text = p;
        s.n_labels = nl;
        s.labels = l.labs;
        if (rc == TY_OK)
            rc = ty_import_accept (v, rows, &s, l.line, o);
    }
    s_close (&l);
    return rc;
}

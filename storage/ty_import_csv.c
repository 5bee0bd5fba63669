/*  ty_import_csv: the CSV family (csv, tsv, features, annotations,
 *  interactions) over one record reader.
 *
 *  The reader works on the mapped file. A record is bounded by
 *  max_record_bytes. A bad record is rejected and reading resumes:
 *    - a quote never closed, or closed and followed by something other than
 *      a delimiter or line end, or a quoted field running past the record
 *      limit: rejected as an unbalanced quote on the line it started, and
 *      reading resumes on the next line (so the lines the bogus quote
 *      swallowed are read again as records of their own);
 *    - a NUL byte or an unquoted record over the limit: rejected, reading
 *      resumes after the physical line.
 */
#include "ty_import.h"

#include <stdlib.h>
#include <string.h>

#include "ty_error.h"

#define S_DETAIL_MAX  TY_VALIDATE_DETAIL_MAX
#define S_UTF8_BOM    "\xEF\xBB\xBF"

typedef struct {
    const char *d;
    size_t      size, pos;
    uint64_t    line;         /* line number at pos, 1-based */
    char        delim, quote;
    size_t      max;
    char       *scratch;      /* field bytes, each NUL-terminated */
    size_t      slen;
    size_t     *foff;         /* field start offsets in scratch */
    size_t      nf, fcap;
} s_csv_t;

typedef enum { S_REC_OK, S_REC_EOF, S_REC_BAD, S_REC_NOMEM } s_rec_t;

/* Resume after the line holding byte `from`; `line` is the number of that line. */
static void
s_resume_after (s_csv_t *c, size_t from, uint64_t line)
{
    const char *nl = from < c->size ? memchr (c->d + from, '\n', c->size - from) : NULL;
    c->pos = nl ? (size_t) (nl - c->d) + 1 : c->size;
    c->line = line + 1;
}

static bool
s_at_eol (const s_csv_t *c, size_t p)
{
    return p >= c->size || c->d[p] == '\n'
        || (c->d[p] == '\r' && p + 1 < c->size && c->d[p + 1] == '\n');
}

static s_rec_t
s_csv_next (s_csv_t *c, uint64_t *rec_line, ty_reject_t *why, char *detail)
{
    /* skip blank lines */
    while (c->pos < c->size && (c->d[c->pos] == '\n'
           || (c->d[c->pos] == '\r' && c->pos + 1 < c->size && c->d[c->pos + 1] == '\n'))) {
        c->pos += c->d[c->pos] == '\r' ? 2 : 1;
        c->line++;
    }
    if (c->pos >= c->size)
        return S_REC_EOF;
    size_t start = c->pos;
    uint64_t start_line = c->line;
    *rec_line = start_line;
    c->slen = 0;
    c->nf = 0;
    const char *d = c->d;
    for (;;) {
        if (c->nf == c->fcap) {
            size_t cap = c->fcap ? c->fcap * 2 : 64;
            size_t *g = realloc (c->foff, cap * sizeof *g);
            if (!g)
                return S_REC_NOMEM;
            c->foff = g;
            c->fcap = cap;
        }
        c->foff[c->nf++] = c->slen;
        if (c->quote && c->pos < c->size && d[c->pos] == c->quote) {
            size_t open_at = c->pos++;
            for (;;) {
                if (c->pos >= c->size) {
                    *why = TY_REJECT_QUOTE;
                    snprintf (detail, S_DETAIL_MAX, "quote opened at byte %zu of the line is "
                              "never closed", open_at - start + 1);
                    s_resume_after (c, start, start_line);
                    return S_REC_BAD;
                }
                char ch = d[c->pos];
                if (ch == c->quote) {
                    if (c->pos + 1 < c->size && d[c->pos + 1] == c->quote) {
                        c->scratch[c->slen++] = ch;
                        c->pos += 2;
                        continue;
                    }
                    c->pos++;
                    break;
                }
                if (ch == '\0') {
                    /* past a line end, the quote is the likelier fault */
                    bool spans = c->line > start_line;
                    *why = spans ? TY_REJECT_QUOTE : TY_REJECT_NUL;
                    snprintf (detail, S_DETAIL_MAX, spans
                              ? "quote opened at byte %zu of the line is never closed"
                              : "NUL byte in a quoted field (quote at byte %zu)",
                              open_at - start + 1);
                    s_resume_after (c, start, start_line);
                    return S_REC_BAD;
                }
                if (ch == '\n')
                    c->line++;
                c->scratch[c->slen++] = ch;
                c->pos++;
                if (c->pos - start > c->max) {
                    *why = TY_REJECT_QUOTE;
                    snprintf (detail, S_DETAIL_MAX, "quoted field runs past %zu bytes: "
                              "unbalanced quote", c->max);
                    s_resume_after (c, start, start_line);
                    return S_REC_BAD;
                }
            }
            if (!(s_at_eol (c, c->pos) || d[c->pos] == c->delim)) {
                *why = TY_REJECT_QUOTE;
                snprintf (detail, S_DETAIL_MAX, "text after a closing quote: unbalanced "
                          "quote");
                s_resume_after (c, start, start_line);
                return S_REC_BAD;
            }
        }
        else {
            size_t p = c->pos;
            while (p < c->size) {
                char ch = d[p];
                if (ch == c->delim || ch == '\n')
                    break;
                if (ch == '\r' && p + 1 < c->size && d[p + 1] == '\n')
                    break;
                if (ch == '\0') {
                    *why = TY_REJECT_NUL;
                    snprintf (detail, S_DETAIL_MAX, "NUL byte at byte %zu of the record",
                              p - start + 1);
                    s_resume_after (c, p, c->line);
                    return S_REC_BAD;
                }
                if (p - start >= c->max) {
                    *why = TY_REJECT_LINE_LONG;
                    const char *nl = memchr (d + p, '\n', c->size - p);
                    size_t len = (nl ? (size_t) (nl - d) : c->size) - start;
                    snprintf (detail, S_DETAIL_MAX, "record of %zu bytes, over the limit of "
                              "%zu (max_record_bytes)", len, c->max);
                    s_resume_after (c, p, c->line);
                    return S_REC_BAD;
                }
                p++;
            }
            memcpy (c->scratch + c->slen, d + c->pos, p - c->pos);
            c->slen += p - c->pos;
            c->pos = p;
        }
        c->scratch[c->slen++] = '\0';
        if (c->pos < c->size && d[c->pos] == c->delim) {
            c->pos++;
            continue;
        }
        if (c->pos < c->size && d[c->pos] == '\r')
            c->pos++;
        if (c->pos < c->size && d[c->pos] == '\n') {
            c->pos++;
            c->line++;
        }
        return S_REC_OK;
    }
}

static const char *
s_field (s_csv_t *c, long i)
{
    return i >= 0 && (size_t) i < c->nf ? c->scratch + c->foff[i] : NULL;
}

/* ---- columns ----------------------------------------------------------------- */

typedef struct {
    char   **names;      /* header names (copies), or NULL */
    size_t   n;
} s_header_t;

static bool
s_all_digits (const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Column index of `spec` (or of the default), -1 if absent. */
static long
s_col (const s_header_t *h, const char *spec, const char *def_name, long def_index,
       size_t ncols)
{
    if (h->names) {
        const char *want = spec ? spec : def_name;
        for (size_t i = 0; want && i < h->n; i++)
            if (!strcmp (h->names[i], want))
                return (long) i;
        if (spec && s_all_digits (spec) && strtoul (spec, NULL, 10) < ncols)
            return (long) strtoul (spec, NULL, 10);
        return -1;
    }
    if (spec)
        return s_all_digits (spec) && strtoul (spec, NULL, 10) < ncols
             ? (long) strtoul (spec, NULL, 10) : -1;
    return def_index >= 0 && (size_t) def_index < ncols ? def_index : -1;
}

typedef struct {
    long text, label, labels, conf, source, target, path, rating, user, item, time;
    bool *is_feature;   /* features: which columns are features */
} s_cols_t;

static int
s_missing (char *error, const char *path, const char *what, const char *spec,
           const s_header_t *h)
{
    int n = snprintf (error, TY_IMPORT_ERROR_MAX, "%s: no %s column '%s'", path, what,
                      spec ? spec : what);
    if (h->names && n > 0 && n < TY_IMPORT_ERROR_MAX) {
        size_t at = (size_t) n;
        at += (size_t) snprintf (error + at, TY_IMPORT_ERROR_MAX - at, " (header:");
        for (size_t i = 0; i < h->n && at < TY_IMPORT_ERROR_MAX; i++)
            at += (size_t) snprintf (error + at, TY_IMPORT_ERROR_MAX - at, " %s", h->names[i]);
        if (at < TY_IMPORT_ERROR_MAX)
            snprintf (error + at, TY_IMPORT_ERROR_MAX - at, ")");
    }
    return TY_EINVAL;
}

static int
s_resolve (const ty_import_opts_t *o, const s_header_t *h, size_t ncols, s_cols_t *k,
           const char *path, char *error)
{
    k->text = k->label = k->labels = k->conf = k->source = k->target = -1;
    k->path = k->rating = k->user = k->item = k->time = -1;
    k->conf = s_col (h, o->confidence_col, "confidence", -1, ncols);
    if (o->confidence_col && k->conf < 0)
        return s_missing (error, path, "confidence", o->confidence_col, h);
    k->source = s_col (h, o->source_col, "source", -1, ncols);
    if (o->source_col && k->source < 0)
        return s_missing (error, path, "source", o->source_col, h);
    switch (o->format) {
    case TY_FORMAT_CSV: case TY_FORMAT_TSV:
        k->text = s_col (h, o->text_col, "text", 1, ncols);
        if (k->text < 0)
            return s_missing (error, path, "text", o->text_col, h);
        k->target = s_col (h, o->target_col, "target", -1, ncols);
        if (o->target_col && k->target < 0)
            return s_missing (error, path, "target", o->target_col, h);
        k->labels = s_col (h, o->labels_col, "labels", -1, ncols);
        if (o->labels_col && k->labels < 0)
            return s_missing (error, path, "labels", o->labels_col, h);
        if (k->labels < 0 || o->label_col) {
            k->label = s_col (h, o->label_col, "label", 0, ncols);
            if (k->label < 0 && k->target < 0)
                return s_missing (error, path, "label", o->label_col, h);
        }
        return TY_OK;
    case TY_FORMAT_FEATURES:
        k->label = s_col (h, o->label_col, "label", 0, ncols);
        if (k->label < 0)
            return s_missing (error, path, "label", o->label_col, h);
        k->is_feature = calloc (ncols ? ncols : 1, sizeof *k->is_feature);
        if (!k->is_feature)
            return TY_ENOMEM;
        size_t nfeat = 0;
        for (size_t i = 0; i < ncols; i++)
            if ((long) i != k->label && (long) i != k->conf && (long) i != k->source) {
                k->is_feature[i] = true;
                nfeat++;
            }
        if (!nfeat) {
            snprintf (error, TY_IMPORT_ERROR_MAX, "%s: no feature columns besides the label",
                      path);
            return TY_EINVAL;
        }
        return TY_OK;
    case TY_FORMAT_ANNOTATIONS:
        k->path = s_col (h, o->path_col, "path", 0, ncols);
        if (k->path < 0)
            return s_missing (error, path, "path", o->path_col, h);
        k->rating = s_col (h, o->rating_col, "rating", 1, ncols);
        if (k->rating < 0)
            return s_missing (error, path, "rating", o->rating_col, h);
        return TY_OK;
    case TY_FORMAT_INTERACTIONS:
        k->user = s_col (h, o->user_col, "user", 0, ncols);
        if (k->user < 0)
            return s_missing (error, path, "user", o->user_col, h);
        k->item = s_col (h, o->item_col, "item", 1, ncols);
        if (k->item < 0)
            return s_missing (error, path, "item", o->item_col, h);
        k->rating = s_col (h, o->rating_col, "rating", 2, ncols);
        if (o->rating_col && k->rating < 0)
            return s_missing (error, path, "rating", o->rating_col, h);
        k->time = s_col (h, o->time_col, "timestamp", 3, ncols);
        if (o->time_col && k->time < 0)
            return s_missing (error, path, "timestamp", o->time_col, h);
        return TY_OK;
    default:
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: format %s is not CSV-like", path,
                  ty_import_format_name (o->format));
        return TY_EINVAL;
    }
}

/* ---- rows ---------------------------------------------------------------------- */

typedef struct {
    char  **labs;
    size_t  labs_cap;
    float  *feats;
    size_t  feats_cap;
} s_bufs_t;

static bool
s_bad_value (ty_validate_t *v, uint64_t line, const char *col, const char *text)
{
    char detail[S_DETAIL_MAX];
    snprintf (detail, sizeof detail, "column %s: '%.60s' is not valid", col, text);
    ty_validate_reject (v, TY_REJECT_VALUE, line, detail);
    return false;
}

/* Fills s from the record; false (after rejecting) on a bad value. */
static bool
s_row (s_csv_t *c, const ty_import_opts_t *o, const s_cols_t *k, s_bufs_t *b,
       ty_validate_t *v, uint64_t line, Ty__Sample *s, Ty__Annotation *an,
       Ty__Interaction *in)
{
    const char *f;
    if ((f = s_field (c, k->conf)) && *f
        && ty_import_parse_float (f, &s->weight) != TY_OK)
        return s_bad_value (v, line, "confidence", f);
    if ((f = s_field (c, k->source)) && *f
        && ty_import_parse_source (f, &s->source) != TY_OK)
        return s_bad_value (v, line, "source", f);
    if ((f = s_field (c, k->target)) && *f) {
        if (ty_import_parse_double (f, &s->target) != TY_OK)
            return s_bad_value (v, line, "target", f);
        s->has_target = true;
    }
    s->text = (char *) s_field (c, k->text);
    char *lab = (char *) s_field (c, k->label);
    if (lab && *lab) {
        b->labs[0] = lab;
        s->n_labels = 1;
    }
    char *multi = (char *) s_field (c, k->labels);
    if (multi && *multi) {
        size_t n = 0;
        for (char *p = multi; p; ) {
            char *sep = strchr (p, o->label_sep);
            if (sep)
                *sep = '\0';
            if (*p) {
                if (n == b->labs_cap) {
                    char **g = realloc (b->labs, b->labs_cap * 2 * sizeof *g);
                    if (!g)
                        return s_bad_value (v, line, "labels", "(out of memory)");
                    b->labs = g;
                    b->labs_cap *= 2;
                }
                b->labs[n++] = p;
            }
            p = sep ? sep + 1 : NULL;
        }
        s->n_labels = n;
    }
    s->labels = b->labs;
    if (k->is_feature) {
        size_t n = 0;
        for (size_t i = 0; i < c->nf; i++) {
            if (!k->is_feature[i])
                continue;
            if (n == b->feats_cap) {
                size_t cap = b->feats_cap ? b->feats_cap * 2 : 64;
                float *g = realloc (b->feats, cap * sizeof *g);
                if (!g)
                    return s_bad_value (v, line, "features", "(out of memory)");
                b->feats = g;
                b->feats_cap = cap;
            }
            if (ty_import_parse_float (s_field (c, (long) i), &b->feats[n]) != TY_OK) {
                char col[32];
                snprintf (col, sizeof col, "%zu", i);
                return s_bad_value (v, line, col, s_field (c, (long) i));
            }
            n++;
        }
        s->n_features = n;
        s->features = b->feats;
    }
    if (k->path >= 0) {
        an->path = (char *) s_field (c, k->path);
        f = s_field (c, k->rating);
        if (!f || ty_import_parse_double (f, &an->rating) != TY_OK)
            return s_bad_value (v, line, "rating", f ? f : "");
        s->annotation = an;
    }
    if (k->user >= 0) {
        in->user = (char *) s_field (c, k->user);
        in->item = (char *) s_field (c, k->item);
        if ((f = s_field (c, k->rating)) && *f) {
            if (ty_import_parse_double (f, &in->rating) != TY_OK)
                return s_bad_value (v, line, "rating", f);
            in->has_rating = true;
        }
        if ((f = s_field (c, k->time)) && *f) {
            char *end;
            long long t = strtoll (f, &end, 10);
            if (end == f || *end)
                return s_bad_value (v, line, "timestamp", f);
            in->timestamp = t;
        }
        s->interaction = in;
    }
    return true;
}

int
ty_import_csv (const char *path, const ty_import_opts_t *o, ty_validate_t *v,
               ty_import_rows_t *rows, char *error)
{
    ty_import_map_t m;
    int rc = ty_import_map (path, &m);
    if (rc != TY_OK) {
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: %s", path, ty_strerror (rc));
        return rc;
    }
    s_csv_t c;
    memset (&c, 0, sizeof c);
    c.d = m.data;
    c.size = m.size;
    c.line = 1;
    c.delim = o->delimiter ? o->delimiter : (o->format == TY_FORMAT_TSV ? '\t' : ',');
    c.quote = o->format == TY_FORMAT_TSV ? 0 : '"';
    c.max = o->max_record_bytes ? o->max_record_bytes : TY_IMPORT_MAX_RECORD_BYTES;
    if (c.size >= 3 && memcmp (c.d, S_UTF8_BOM, 3) == 0)
        c.pos = 3;
    /* a record never outgrows max bytes, plus one NUL per field */
    c.scratch = malloc (2 * c.max + 2);
    s_bufs_t b = { .labs = malloc (8 * sizeof (char *)), .labs_cap = 8 };
    s_header_t h = { 0 };
    s_cols_t k = { 0 };
    if (!c.scratch || !b.labs)
        rc = TY_ENOMEM;
    bool have_cols = false;
    size_t ncols = 0;
    while (rc == TY_OK) {
        uint64_t line;
        ty_reject_t why = TY_REJECT_VALUE;
        char detail[S_DETAIL_MAX] = "";
        s_rec_t r = s_csv_next (&c, &line, &why, detail);
        if (r == S_REC_EOF)
            break;
        if (r == S_REC_NOMEM) {
            rc = TY_ENOMEM;
            break;
        }
        if (r == S_REC_BAD) {
            if (o->header && !have_cols) {
                snprintf (error, TY_IMPORT_ERROR_MAX, "%s: line %llu: bad header: %s", path,
                          (unsigned long long) line, detail);
                rc = TY_EINVAL;
                break;
            }
            ty_validate_reject (v, why, line, detail);
            continue;
        }
        if (!have_cols) {
            ncols = c.nf;
            if (o->header) {
                h.names = calloc (c.nf, sizeof *h.names);
                if (!h.names) {
                    rc = TY_ENOMEM;
                    break;
                }
                h.n = c.nf;
                for (size_t i = 0; i < c.nf; i++)
                    if (!(h.names[i] = strdup (s_field (&c, (long) i))))
                        rc = TY_ENOMEM;
            }
            if (rc == TY_OK)
                rc = s_resolve (o, &h, ncols, &k, path, error);
            have_cols = true;
            if (o->header || rc != TY_OK)
                continue;
        }
        if (c.nf != ncols) {
            snprintf (detail, sizeof detail, "expected %zu columns, got %zu", ncols, c.nf);
            ty_validate_reject (v, TY_REJECT_COLUMNS, line, detail);
            continue;
        }
        Ty__Sample s = TY__SAMPLE__INIT;
        Ty__Annotation an = TY__ANNOTATION__INIT;
        Ty__Interaction in = TY__INTERACTION__INIT;
        s.weight = 1.0f;
        s.source = o->source;
        if (s_row (&c, o, &k, &b, v, line, &s, &an, &in))
            rc = ty_import_accept (v, rows, &s, line, o);
    }
    if (rc == TY_OK && o->header && !have_cols) {
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: no header line (the file has no records)",
                  path);
        rc = TY_EINVAL;
    }
    for (size_t i = 0; i < h.n; i++)
        free (h.names[i]);
    free (h.names);
    free (k.is_feature);
    free (b.labs);
    free (b.feats);
    free (c.scratch);
    free (c.foff);
    ty_import_unmap (&m);
    return rc;
}

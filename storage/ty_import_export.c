/*  ty_import_export: a dataset version back to files, in the order of the
 *  lines its samples came from (all splits together, or those asked for in
 *  opts->export_splits), so an export of an
 *  import gives back the accepted rows of the source in their order.
 *  Files are written under a temporary name and renamed when complete. */
#include "ty_import.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "ty_error.h"

#define S_NUM_MAX     48
#define S_IO_BUF      (1u << 20)
#define S_DIR_MODE    0755

typedef struct {
    uint64_t line;
    uint8_t  split;
    uint64_t index;
} s_ref_t;

static int
s_cmp_ref (const void *a, const void *b)
{
    const s_ref_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->split != y->split)
        return x->split < y->split ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The samples of ds in the splits of mask (0: all) as (line, split,
 * index), sorted by line. */
static int
s_refs (ty_dataset_t *ds, uint32_t mask, s_ref_t **out, uint64_t *n)
{
    uint64_t total = 0;
    for (int sp = 0; sp < TY_SPLIT_COUNT; sp++)
        if (!mask || (mask & TY_IMPORT_SPLIT_BIT (sp)))
            total += ty_dataset_count (ds, (ty_split_t) sp);
    s_ref_t *refs = malloc ((total ? total : 1) * sizeof *refs);
    if (!refs)
        return TY_ENOMEM;
    uint64_t k = 0;
    for (int sp = 0; sp < TY_SPLIT_COUNT; sp++) {
        if (mask && !(mask & TY_IMPORT_SPLIT_BIT (sp)))
            continue;
        for (uint64_t i = 0; i < ty_dataset_count (ds, (ty_split_t) sp); i++) {
            ty_dataset_view_t view;
            Ty__Sample *s;
            int rc = ty_dataset_get (ds, (ty_split_t) sp, i, &view);
            if (rc == TY_OK)
                rc = ty_dataset_view_unpack (&view, &s);
            if (rc != TY_OK) {
                free (refs);
                return rc;
            }
            refs[k++] = (s_ref_t) { s->line, (uint8_t) sp, i };
            ty__sample__free_unpacked (s, NULL);
        }
    }
    qsort (refs, total, sizeof *refs, s_cmp_ref);
    *out = refs;
    *n = total;
    return TY_OK;
}

/* ---- CSV family ------------------------------------------------------------------- */

/* Writes one field; TY_EINVAL for a TSV field that cannot be written. */
static int
s_field (FILE *f, const char *text, char delim, bool quoting, bool first)
{
    if (!first)
        fputc (delim, f);
    if (!text)
        return TY_OK;
    bool needs = strchr (text, delim) || strchr (text, '\n') || strchr (text, '\r')
              || (quoting && strchr (text, '"'));
    if (!needs) {
        fputs (text, f);
        return TY_OK;
    }
    if (!quoting)
        return TY_EINVAL;
    fputc ('"', f);
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            fputc ('"', f);
        fputc (*p, f);
    }
    fputc ('"', f);
    return TY_OK;
}

static const char *
s_name (const char *opt, const char *def)
{
    return opt ? opt : def;
}

/* label column text: labels joined by sep (into buf). */
static const char *
s_join_labels (const Ty__Sample *s, char sep, char **buf, size_t *cap)
{
    size_t need = 1;
    for (size_t i = 0; i < s->n_labels; i++)
        need += strlen (s->labels[i]) + 1;
    if (need > *cap) {
        char *g = realloc (*buf, need);
        if (!g)
            return NULL;
        *buf = g;
        *cap = need;
    }
    size_t at = 0;
    for (size_t i = 0; i < s->n_labels; i++) {
        if (i)
            (*buf)[at++] = sep;
        size_t l = strlen (s->labels[i]);
        memcpy (*buf + at, s->labels[i], l);
        at += l;
    }
    (*buf)[at] = '\0';
    return *buf;
}

static int
s_csv_row (FILE *f, const ty_import_opts_t *o, const Ty__Sample *s, bool header,
           uint32_t nfeat, char **jbuf, size_t *jcap)
{
    char delim = o->delimiter ? o->delimiter : (o->format == TY_FORMAT_TSV ? '\t' : ',');
    bool q = o->format != TY_FORMAT_TSV;
    bool multi = o->labels_col != NULL;
    int rc = TY_OK;
    char num[S_NUM_MAX];
#define S_F(text, first) do { if (rc == TY_OK) rc = s_field (f, (text), delim, q, (first)); } while (0)
    switch (o->format) {
    case TY_FORMAT_CSV: case TY_FORMAT_TSV:
        if (header) {
            S_F (multi ? s_name (o->labels_col, "labels") : s_name (o->label_col, "label"), true);
            S_F (s_name (o->text_col, "text"), false);
        }
        else {
            const char *lab = multi ? s_join_labels (s, o->label_sep, jbuf, jcap)
                                    : (s->n_labels ? s->labels[0] : "");
            if (!lab)
                return TY_ENOMEM;
            S_F (lab, true);
            S_F (s->text, false);
        }
        if (o->target_col) {
            if (!header && s->has_target)
                ty_import_format_double (s->target, num, sizeof num);
            S_F (header ? o->target_col : s->has_target ? num : "", false);
        }
        break;
    case TY_FORMAT_FEATURES:
        S_F (header ? s_name (o->label_col, "label") : s->n_labels ? s->labels[0] : "", true);
        for (uint32_t i = 0; i < nfeat; i++) {
            if (header)
                snprintf (num, sizeof num, "f%u", i);
            else if (i < s->n_features)
                ty_import_format_float (s->features[i], num, sizeof num);
            else
                num[0] = '\0';
            S_F (num, false);
        }
        break;
    case TY_FORMAT_ANNOTATIONS:
        if (!header && !s->annotation)
            return TY_EINVAL;
        S_F (header ? s_name (o->path_col, "path") : s->annotation->path, true);
        if (!header)
            ty_import_format_double (s->annotation->rating, num, sizeof num);
        S_F (header ? s_name (o->rating_col, "rating") : num, false);
        break;
    case TY_FORMAT_INTERACTIONS:
        if (!header && !s->interaction)
            return TY_EINVAL;
        S_F (header ? s_name (o->user_col, "user") : s->interaction->user, true);
        S_F (header ? s_name (o->item_col, "item") : s->interaction->item, false);
        num[0] = '\0';
        if (!header && s->interaction->has_rating)
            ty_import_format_double (s->interaction->rating, num, sizeof num);
        S_F (header ? s_name (o->rating_col, "rating") : num, false);
        if (!header)
            snprintf (num, sizeof num, "%" PRId64, s->interaction->timestamp);
        S_F (header ? s_name (o->time_col, "timestamp") : num, false);
        break;
    default:
        return TY_EINVAL;
    }
    if (o->confidence_col) {
        if (!header)
            ty_import_format_float (s->weight, num, sizeof num);
        S_F (header ? o->confidence_col : num, false);
    }
    if (o->source_col)
        S_F (header ? o->source_col : ty_import_source_name (s->source), false);
#undef S_F
    if (rc == TY_OK)
        fputc ('\n', f);
    return rc;
}

/* ---- JSON Lines, fastText ------------------------------------------------------------ */

static int
s_json_row (FILE *f, const Ty__Sample *s)
{
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return TY_ENOMEM;
    bool ok = true;
    char num[S_NUM_MAX];
    if (s->text)
        ok &= cJSON_AddStringToObject (o, "text", s->text) != NULL;
    if (s->n_labels == 1)
        ok &= cJSON_AddStringToObject (o, "label", s->labels[0]) != NULL;
    else if (s->n_labels > 1)
        ok &= cJSON_AddItemToObject (o, "labels", cJSON_CreateStringArray (
                  (const char *const *) s->labels, (int) s->n_labels));
    if (s->n_features) {
        cJSON *a = cJSON_AddArrayToObject (o, "features");
        ok &= a != NULL;
        for (size_t i = 0; ok && i < s->n_features; i++) {
            /* the shortest decimal of the float, so 0.1f prints as 0.1 */
            ty_import_format_float (s->features[i], num, sizeof num);
            ok &= cJSON_AddItemToArray (a, cJSON_CreateNumber (strtod (num, NULL)));
        }
    }
    if (s->interaction) {
        ok &= cJSON_AddStringToObject (o, "user", s->interaction->user) != NULL;
        ok &= cJSON_AddStringToObject (o, "item", s->interaction->item) != NULL;
        if (s->interaction->has_rating)
            ok &= cJSON_AddNumberToObject (o, "rating", s->interaction->rating) != NULL;
        if (s->interaction->timestamp)
            ok &= cJSON_AddNumberToObject (o, "timestamp",
                                           (double) s->interaction->timestamp) != NULL;
    }
    if (s->annotation) {
        ok &= cJSON_AddStringToObject (o, "path", s->annotation->path) != NULL;
        ok &= cJSON_AddNumberToObject (o, "rating", s->annotation->rating) != NULL;
    }
    if (s->has_target)
        ok &= cJSON_AddNumberToObject (o, "target", s->target) != NULL;
    if (s->weight != 1.0f) {
        ty_import_format_float (s->weight, num, sizeof num);
        ok &= cJSON_AddNumberToObject (o, "confidence", strtod (num, NULL)) != NULL;
    }
    if (s->source != TY__SAMPLE_SOURCE__SOURCE_IMPORT)
        ok &= cJSON_AddStringToObject (o, "source", ty_import_source_name (s->source)) != NULL;
    char *text = ok ? cJSON_PrintUnformatted (o) : NULL;
    cJSON_Delete (o);
    if (!text)
        return TY_ENOMEM;
    fputs (text, f);
    fputc ('\n', f);
    cJSON_free (text);
    return TY_OK;
}

static int
s_fasttext_row (FILE *f, const ty_import_opts_t *o, const Ty__Sample *s)
{
    const char *prefix = o->fasttext_prefix ? o->fasttext_prefix : TY_IMPORT_FASTTEXT_PREFIX;
    if (s->text && strchr (s->text, '\n'))
        return TY_EINVAL;
    for (size_t i = 0; i < s->n_labels; i++)
        fprintf (f, "%s%s ", prefix, s->labels[i]);
    fprintf (f, "%s\n", s->text ? s->text : "");
    return TY_OK;
}

/* ---- images -------------------------------------------------------------------------- */

static int
s_image_row (const char *dir, const Ty__Sample *s)
{
    if (!s->image || s->n_labels == 0 || !strcmp (s->labels[0], ".")
        || strchr (s->labels[0], '/') || !strcmp (s->labels[0], ".."))
        return TY_EINVAL;
    char cdir[PATH_MAX], path[PATH_MAX];
    if (snprintf (cdir, sizeof cdir, "%s/%s", dir, s->labels[0]) >= (int) sizeof cdir
        || snprintf (path, sizeof path, "%s/%08" PRIu64 ".png", cdir, s->line)
           >= (int) sizeof path)
        return ENAMETOOLONG;
    if (mkdir (cdir, S_DIR_MODE) != 0 && errno != EEXIST)
        return errno;
    const Ty__Image *im = s->image;
    if (!stbi_write_png (path, (int) im->width, (int) im->height, (int) im->channels,
                         im->pixels.data, (int) (im->width * im->channels)))
        return EIO;
    return TY_OK;
}

/* ---- driver ------------------------------------------------------------------------ */

int
ty_import_export (ty_dataset_t *ds, const ty_import_opts_t *opts_in, const char *out_path)
{
    ty_import_opts_t o;
    if (opts_in)
        o = *opts_in;
    else
        ty_import_opts_default (&o);
    const Ty__DatasetMeta *m = ty_dataset_meta (ds);
    const char *kind = m->kind ? m->kind : "";
    bool fits;
    switch (o.format) {
    case TY_FORMAT_CSV: case TY_FORMAT_TSV: case TY_FORMAT_FASTTEXT:
        fits = !strcmp (kind, "text"); break;
    case TY_FORMAT_FEATURES: fits = !strcmp (kind, "features"); break;
    case TY_FORMAT_IMAGES: fits = !strcmp (kind, "image"); break;
    case TY_FORMAT_ANNOTATIONS: fits = !strcmp (kind, "annotation"); break;
    case TY_FORMAT_INTERACTIONS: fits = !strcmp (kind, "interaction"); break;
    case TY_FORMAT_JSONL: fits = true; break;
    default: fits = false;
    }
    if (!fits)
        return TY_EINVAL;
    s_ref_t *refs;
    uint64_t n;
    int rc = s_refs (ds, o.export_splits, &refs, &n);
    if (rc != TY_OK)
        return rc;
    if (o.format == TY_FORMAT_IMAGES) {
        if (mkdir (out_path, S_DIR_MODE) != 0 && errno != EEXIST) {
            free (refs);
            return errno;
        }
    }
    char tmp[PATH_MAX];
    FILE *f = NULL;
    char *iobuf = NULL;
    if (o.format != TY_FORMAT_IMAGES) {
        if (snprintf (tmp, sizeof tmp, "%s.tmp-%d", out_path, (int) getpid ())
            >= (int) sizeof tmp) {
            free (refs);
            return ENAMETOOLONG;
        }
        f = fopen (tmp, "w");
        if (!f) {
            free (refs);
            return errno;
        }
        iobuf = malloc (S_IO_BUF);
        if (iobuf)
            setvbuf (f, iobuf, _IOFBF, S_IO_BUF);
    }
    char *jbuf = NULL;
    size_t jcap = 0;
    uint32_t nfeat = m->stats ? m->stats->feature_dim : 0;
    bool csv_family = o.format == TY_FORMAT_CSV || o.format == TY_FORMAT_TSV
                   || o.format == TY_FORMAT_FEATURES || o.format == TY_FORMAT_ANNOTATIONS
                   || o.format == TY_FORMAT_INTERACTIONS;
    if (csv_family && o.header)
        rc = s_csv_row (f, &o, NULL, true, nfeat, &jbuf, &jcap);
    for (uint64_t i = 0; rc == TY_OK && i < n; i++) {
        ty_dataset_view_t view;
        Ty__Sample *s;
        rc = ty_dataset_get (ds, (ty_split_t) refs[i].split, refs[i].index, &view);
        if (rc == TY_OK)
            rc = ty_dataset_view_unpack (&view, &s);
        if (rc != TY_OK)
            break;
        if (csv_family)
            rc = s_csv_row (f, &o, s, false, nfeat, &jbuf, &jcap);
        else if (o.format == TY_FORMAT_JSONL)
            rc = s_json_row (f, s);
        else if (o.format == TY_FORMAT_FASTTEXT)
            rc = s_fasttext_row (f, &o, s);
        else
            rc = s_image_row (out_path, s);
        ty__sample__free_unpacked (s, NULL);
    }
    free (jbuf);
    free (refs);
    if (f) {
        if (fflush (f) != 0 && rc == TY_OK)
            rc = errno;
        if (rc == TY_OK && fsync (fileno (f)) != 0)
            rc = errno;
        if (fclose (f) != 0 && rc == TY_OK)
            rc = errno;
        free (iobuf);
        if (rc == TY_OK && rename (tmp, out_path) != 0)
            rc = errno;
        if (rc != TY_OK)
            (void) unlink (tmp);
    }
    return rc;
}

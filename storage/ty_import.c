/*  ty_import: options, the in-memory row set, dispatch to the format
 *  readers (ty_import_csv.c, ty_import_lines.c, ty_import_image.c), and
 *  writing rows as a first version or an appended one. */
#include "ty_import.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ty_error.h"
#include "ty_hash.h"
#include "ty_log.h"

/* text_len_hist: bin i holds lengths in [2^i, 2^(i+1)); 32 bins cover 4 GiB. */
#define S_TEXT_HIST_BINS   32
#define S_RATING_BINS      10
#define S_NUM_TEXT         64

static const char *s_format_names[TY_FORMAT_COUNT] = {
    "csv", "tsv", "jsonl", "fasttext", "features", "images", "annotations", "interactions",
};

const char *
ty_import_format_name (ty_import_format_t f)
{
    return (unsigned) f < TY_FORMAT_COUNT ? s_format_names[f] : "?";
}

int
ty_import_format_parse (const char *text, ty_import_format_t *f)
{
    for (int i = 0; text && i < TY_FORMAT_COUNT; i++)
        if (!strcmp (text, s_format_names[i])) {
            *f = (ty_import_format_t) i;
            return TY_OK;
        }
    return TY_EINVAL;
}

static bool
s_ends_with (const char *s, const char *suffix)
{
    size_t n = strlen (s), m = strlen (suffix);
    return n >= m && strcasecmp (s + n - m, suffix) == 0;
}

ty_import_format_t
ty_import_format_guess (const char *path)
{
    struct stat st;
    if (stat (path, &st) == 0 && S_ISDIR (st.st_mode))
        return TY_FORMAT_IMAGES;
    if (s_ends_with (path, ".tsv"))
        return TY_FORMAT_TSV;
    if (s_ends_with (path, ".jsonl") || s_ends_with (path, ".ndjson"))
        return TY_FORMAT_JSONL;
    if (s_ends_with (path, ".ft") || s_ends_with (path, ".fasttext")
        || s_ends_with (path, ".ft.txt"))
        return TY_FORMAT_FASTTEXT;
    return TY_FORMAT_CSV;
}

void
ty_import_opts_default (ty_import_opts_t *o)
{
    memset (o, 0, sizeof *o);
    o->format = TY_FORMAT_CSV;
    o->header = true;
    o->label_sep = TY_IMPORT_LABEL_SEP;
    o->fasttext_prefix = TY_IMPORT_FASTTEXT_PREFIX;
    o->image_width = o->image_height = TY_IMPORT_IMAGE_SIDE;
    o->image_channels = 3;
    o->max_record_bytes = TY_IMPORT_MAX_RECORD_BYTES;
    o->source = TY__SAMPLE_SOURCE__SOURCE_IMPORT;
}

static int
s_parse_u32 (const char *v, uint32_t *out, uint32_t max)
{
    char *end;
    errno = 0;
    if (!isdigit ((unsigned char) *v))
        return TY_EINVAL;
    unsigned long long x = strtoull (v, &end, 10);
    if (errno || *end || x > max)
        return TY_EINVAL;
    *out = (uint32_t) x;
    return TY_OK;
}

int
ty_import_opts_set (ty_import_opts_t *o, const char *key, const char *value)
{
    struct { const char *key; const char **field; } cols[] = {
        { "text_col", &o->text_col }, { "label_col", &o->label_col },
        { "labels_col", &o->labels_col }, { "confidence_col", &o->confidence_col },
        { "source_col", &o->source_col }, { "target_col", &o->target_col },
        { "path_col", &o->path_col }, { "rating_col", &o->rating_col },
        { "user_col", &o->user_col }, { "item_col", &o->item_col },
        { "time_col", &o->time_col }, { "fasttext_prefix", &o->fasttext_prefix },
    };
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        if (!strcmp (key, cols[i].key)) {
            if (!*value)
                return TY_EINVAL;
            *cols[i].field = value;
            return TY_OK;
        }
    if (!strcmp (key, "format"))
        return ty_import_format_parse (value, &o->format);
    if (!strcmp (key, "header")) {
        if (!strcmp (value, "true") || !strcmp (value, "1"))
            o->header = true;
        else if (!strcmp (value, "false") || !strcmp (value, "0"))
            o->header = false;
        else
            return TY_EINVAL;
        return TY_OK;
    }
    if (!strcmp (key, "delimiter") || !strcmp (key, "label_sep")) {
        char c = !strcmp (value, "\\t") || !strcmp (value, "tab") ? '\t' : value[0];
        if (!c || (value[1] && c != '\t') || c == '\n' || c == '"')
            return TY_EINVAL;
        if (!strcmp (key, "delimiter"))
            o->delimiter = c;
        else
            o->label_sep = c;
        return TY_OK;
    }
    if (!strcmp (key, "image_size")) {
        unsigned w, h;
        char tail;
        if (sscanf (value, "%ux%u%c", &w, &h, &tail) != 2 || !w || !h
            || w > TY_IMPORT_IMAGE_SIDE_MAX || h > TY_IMPORT_IMAGE_SIDE_MAX)
            return TY_EINVAL;
        o->image_width = w;
        o->image_height = h;
        return TY_OK;
    }
    if (!strcmp (key, "image_width") || !strcmp (key, "image_height")) {
        uint32_t x;
        if (s_parse_u32 (value, &x, TY_IMPORT_IMAGE_SIDE_MAX) || !x)
            return TY_EINVAL;
        *(!strcmp (key, "image_width") ? &o->image_width : &o->image_height) = x;
        return TY_OK;
    }
    if (!strcmp (key, "channels")) {
        uint32_t x;
        if (!strcmp (value, "grey") || !strcmp (value, "gray"))
            x = 1;
        else if (!strcmp (value, "rgb"))
            x = 3;
        else if (s_parse_u32 (value, &x, 3) || (x != 1 && x != 3))
            return TY_EINVAL;
        o->image_channels = x;
        return TY_OK;
    }
    if (!strcmp (key, "max_record_bytes")) {
        uint32_t x;
        if (s_parse_u32 (value, &x, UINT32_MAX) || x < 16)
            return TY_EINVAL;
        o->max_record_bytes = x;
        return TY_OK;
    }
    if (!strcmp (key, "source"))
        return ty_import_parse_source (value, &o->source);
    return TY_ENOTFOUND;
}

/* ---- small parsers -------------------------------------------------------- */

static const char *s_source_names[] = { "import", "user_feedback", "automatic" };

const char *
ty_import_source_name (Ty__SampleSource s)
{
    return (unsigned) s < 3 ? s_source_names[s] : "import";
}

int
ty_import_parse_source (const char *t, Ty__SampleSource *s)
{
    if (!t || !*t || !strcasecmp (t, "import"))
        *s = TY__SAMPLE_SOURCE__SOURCE_IMPORT;
    else if (!strcasecmp (t, "user_feedback") || !strcasecmp (t, "feedback")
             || !strcasecmp (t, "user"))
        *s = TY__SAMPLE_SOURCE__SOURCE_USER_FEEDBACK;
    else if (!strcasecmp (t, "automatic") || !strcasecmp (t, "auto"))
        *s = TY__SAMPLE_SOURCE__SOURCE_AUTOMATIC;
    else
        return TY_EINVAL;
    return TY_OK;
}

int
ty_import_parse_double (const char *t, double *out)
{
    while (isspace ((unsigned char) *t))
        t++;
    char *end;
    errno = 0;
    double d = strtod (t, &end);
    if (end == t || errno == ERANGE)
        return TY_EINVAL;
    while (isspace ((unsigned char) *end))
        end++;
    if (*end || !isfinite (d))
        return TY_EINVAL;
    *out = d;
    return TY_OK;
}

int
ty_import_parse_float (const char *t, float *out)
{
    double d;
    if (ty_import_parse_double (t, &d) != TY_OK || fabs (d) > 3.4e38)
        return TY_EINVAL;
    *out = (float) d;
    return TY_OK;
}

void
ty_import_format_float (float f, char *out, size_t cap)
{
    for (int p = 1; p <= 9; p++) {
        snprintf (out, cap, "%.*g", p, (double) f);
        if (strtof (out, NULL) == f)
            return;
    }
}

void
ty_import_format_double (double d, char *out, size_t cap)
{
    for (int p = 1; p <= 17; p++) {
        snprintf (out, cap, "%.*g", p, d);
        if (strtod (out, NULL) == d)
            return;
    }
}

/* ---- file mapping ---------------------------------------------------------- */

int
ty_import_map (const char *path, ty_import_map_t *m)
{
    memset (m, 0, sizeof *m);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct stat st;
    if (fstat (fd, &st) != 0) {
        int e = errno;
        close (fd);
        return e;
    }
    if (!S_ISREG (st.st_mode)) {
        close (fd);
        return S_ISDIR (st.st_mode) ? EISDIR : EINVAL;
    }
    m->data = "";
    if (st.st_size > 0) {
        void *p = mmap (NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close (fd);
            return e;
        }
        (void) madvise (p, (size_t) st.st_size, MADV_SEQUENTIAL);
        m->map = p;
        m->map_size = (size_t) st.st_size;
        m->data = p;
        m->size = (size_t) st.st_size;
    }
    close (fd);
    return TY_OK;
}

void
ty_import_unmap (ty_import_map_t *m)
{
    if (m->map)
        munmap (m->map, m->map_size);
    memset (m, 0, sizeof *m);
}

/* ---- rows ------------------------------------------------------------------ */

typedef enum { S_KIND_NONE = 0, S_KIND_TEXT, S_KIND_FEATURES, S_KIND_IMAGE,
               S_KIND_ANNOTATION, S_KIND_INTERACTION } s_kind_t;
static const char *s_kind_names[] = { "", "text", "features", "image", "annotation",
                                      "interaction" };

typedef struct {
    uint64_t off;
    uint32_t len;
    uint32_t n_labels;
    uint64_t lab_off;     /* into labs */
} s_row_t;

typedef struct {
    char    *path;
    char     sha[65];
    uint64_t bytes;
} s_source_t;

struct _ty_import_rows_t {
    uint8_t   *buf;
    size_t     buf_len, buf_cap;
    s_row_t   *rows;
    uint64_t   n, cap;
    uint32_t  *labs;          /* label ids of all rows, concatenated */
    uint64_t   labs_n, labs_cap;
    ty_hash_t *label_ids;     /* label -> id + 1 */
    char     **label_names;
    uint64_t  *label_counts;
    size_t     n_labels, labels_cap;
    s_kind_t   kind;
    uint32_t   feature_dim, img_h, img_w, img_c;
    /* stats */
    uint64_t   text_n, text_min, text_max, text_sum;
    uint64_t   text_hist[S_TEXT_HIST_BINS];
    uint64_t   rating_hist[S_RATING_BINS];
    uint64_t   unlabeled;
    s_source_t *sources;
    size_t     n_sources;
    uint64_t   progress_at;   /* rows_read at the last progress call */
};

ty_import_rows_t *
ty_import_rows_new (void)
{
    ty_import_rows_t *self = calloc (1, sizeof *self);
    if (self && !(self->label_ids = ty_hash_new ())) {
        free (self);
        return NULL;
    }
    return self;
}

void
ty_import_rows_destroy (ty_import_rows_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_import_rows_t *self = *self_p;
    free (self->buf);
    free (self->rows);
    free (self->labs);
    ty_hash_destroy (&self->label_ids);
    for (size_t i = 0; i < self->n_labels; i++)
        free (self->label_names[i]);
    free (self->label_names);
    free (self->label_counts);
    for (size_t i = 0; i < self->n_sources; i++)
        free (self->sources[i].path);
    free (self->sources);
    free (self);
    *self_p = NULL;
}

uint64_t ty_import_rows_count (ty_import_rows_t *self) { return self->n; }
const char *ty_import_rows_kind (ty_import_rows_t *self) { return s_kind_names[self->kind]; }

int
ty_import_rows_get (ty_import_rows_t *self, uint64_t i, const void **data, size_t *size)
{
    if (i >= self->n)
        return TY_ENOTFOUND;
    *data = self->buf + self->rows[i].off;
    *size = self->rows[i].len;
    return TY_OK;
}

int
ty_import_rows_add_source (ty_import_rows_t *self, const char *path, const char *sha,
                           uint64_t bytes)
{
    s_source_t *grown = realloc (self->sources, (self->n_sources + 1) * sizeof *grown);
    if (!grown)
        return TY_ENOMEM;
    self->sources = grown;
    s_source_t *s = &self->sources[self->n_sources];
    if (!(s->path = strdup (path)))
        return TY_ENOMEM;
    snprintf (s->sha, sizeof s->sha, "%s", sha);
    s->bytes = bytes;
    self->n_sources++;
    return TY_OK;
}

static s_kind_t
s_kind_of (const Ty__Sample *s)
{
    if (s->image)
        return S_KIND_IMAGE;
    if (s->annotation)
        return S_KIND_ANNOTATION;
    if (s->interaction)
        return S_KIND_INTERACTION;
    if (s->n_features)
        return S_KIND_FEATURES;
    return S_KIND_TEXT;
}

static int
s_grow (void **p, uint64_t *cap, uint64_t need, size_t elem, uint64_t first)
{
    if (need <= *cap)
        return TY_OK;
    uint64_t c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    void *g = realloc (*p, c * elem);
    if (!g)
        return TY_ENOMEM;
    *p = g;
    *cap = c;
    return TY_OK;
}

/* Label id for a name, created on first sight. */
static int
s_label_require (ty_import_rows_t *self, const char *name, uint32_t *id)
{
    void *v = ty_hash_get (self->label_ids, name);
    if (v) {
        *id = (uint32_t) ((uintptr_t) v - 1);
        return TY_OK;
    }
    if (self->n_labels == self->labels_cap) {
        size_t cap = self->labels_cap ? self->labels_cap * 2 : 16;
        char **names = realloc (self->label_names, cap * sizeof *names);
        if (!names)
            return TY_ENOMEM;
        self->label_names = names;
        uint64_t *counts = realloc (self->label_counts, cap * sizeof *counts);
        if (!counts)
            return TY_ENOMEM;
        self->label_counts = counts;
        self->labels_cap = cap;
    }
    char *copy = strdup (name);
    if (!copy)
        return TY_ENOMEM;
    if (ty_hash_put (self->label_ids, name, (void *) (uintptr_t) (self->n_labels + 1))) {
        free (copy);
        return TY_ENOMEM;
    }
    self->label_names[self->n_labels] = copy;
    self->label_counts[self->n_labels] = 0;
    *id = (uint32_t) self->n_labels++;
    return TY_OK;
}

static void
s_rating_bin (uint64_t *hist, double r)
{
    if (!(r >= 0 && r <= 1))
        return;
    int b = (int) (r * S_RATING_BINS);
    hist[b >= S_RATING_BINS ? S_RATING_BINS - 1 : b]++;
}

int
ty_import_rows_add (ty_import_rows_t *self, const Ty__Sample *s)
{
    s_kind_t kind = s_kind_of (s);
    if (self->kind != S_KIND_NONE && kind != self->kind)
        return TY_EINVAL;
    if (kind == S_KIND_FEATURES && self->n && s->n_features != self->feature_dim)
        return TY_EINVAL;
    if (kind == S_KIND_IMAGE && self->n
        && (s->image->height != self->img_h || s->image->width != self->img_w
            || s->image->channels != self->img_c))
        return TY_EINVAL;
    size_t len = ty__sample__get_packed_size (s);
    if (len > UINT32_MAX)
        return TY_EINVAL;
    uint64_t bcap = self->buf_cap;
    if (s_grow ((void **) &self->buf, &bcap, self->buf_len + len, 1, 1u << 16)
        || s_grow ((void **) &self->rows, &self->cap, self->n + 1, sizeof *self->rows, 1024)
        || s_grow ((void **) &self->labs, &self->labs_cap, self->labs_n + s->n_labels,
                   sizeof *self->labs, 1024))
        return TY_ENOMEM;
    self->buf_cap = bcap;
    uint32_t ids[s->n_labels ? s->n_labels : 1];
    for (size_t i = 0; i < s->n_labels; i++)
        if (s_label_require (self, s->labels[i], &ids[i]))
            return TY_ENOMEM;
    ty__sample__pack (s, self->buf + self->buf_len);
    self->rows[self->n] = (s_row_t) { .off = self->buf_len, .len = (uint32_t) len,
                                      .n_labels = (uint32_t) s->n_labels,
                                      .lab_off = self->labs_n };
    for (size_t i = 0; i < s->n_labels; i++) {
        self->labs[self->labs_n++] = ids[i];
        self->label_counts[ids[i]]++;
    }
    self->buf_len += len;
    self->n++;
    self->kind = kind;
    if (kind == S_KIND_FEATURES)
        self->feature_dim = (uint32_t) s->n_features;
    if (kind == S_KIND_IMAGE) {
        self->img_h = s->image->height;
        self->img_w = s->image->width;
        self->img_c = s->image->channels;
    }
    if (!s->n_labels)
        self->unlabeled++;
    if (s->text && kind == S_KIND_TEXT) {
        uint64_t tl = strlen (s->text);
        self->text_min = self->text_n ? (tl < self->text_min ? tl : self->text_min) : tl;
        self->text_max = tl > self->text_max ? tl : self->text_max;
        self->text_sum += tl;
        self->text_n++;
        int b = 0;
        while (b < S_TEXT_HIST_BINS - 1 && (tl >> (b + 1)))
            b++;
        self->text_hist[b]++;
    }
    if (s->annotation)
        s_rating_bin (self->rating_hist, s->annotation->rating);
    if (s->interaction && s->interaction->has_rating)
        s_rating_bin (self->rating_hist, s->interaction->rating);
    if (s->has_target)
        s_rating_bin (self->rating_hist, s->target);
    return TY_OK;
}

int
ty_import_accept (ty_validate_t *v, ty_import_rows_t *rows, Ty__Sample *s, uint64_t line,
                  const ty_import_opts_t *opts)
{
    s->line = line;
    if (ty_validate_sample (v, s, line)) {
        int rc = ty_import_rows_add (rows, s);
        if (rc != TY_OK) {
            ty_validate_unaccept (v);
            ty_validate_reject (v, rc == TY_EINVAL ? TY_REJECT_SHAPE : TY_REJECT_VALUE, line,
                                rc == TY_EINVAL ? "kind, feature count or image shape differs "
                                                  "from the rows before"
                                                : "out of memory");
        }
    }
    if (!opts->progress)
        return TY_OK;
    /* by distance since the last call, not rows_read % period: rejected
     * rows in between must not make a call (and a chance to stop) skip */
    uint64_t every = opts->progress_rows ? opts->progress_rows : TY_IMPORT_PROGRESS_ROWS;
    const ty_validate_report_t *r = ty_validate_report (v);
    if (r->rows_read - rows->progress_at < every)
        return TY_OK;
    rows->progress_at = r->rows_read;
    return opts->progress (opts->progress_arg, r->rows_read, r->rejected) ? ECANCELED : TY_OK;
}

/* ---- import ------------------------------------------------------------------ */

/* The message of an import the progress callback stopped. */
static int
s_stopped (int rc, const char *path, ty_validate_t *v, char *error)
{
    if (rc == ECANCELED && !*error)
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: import stopped after %" PRIu64 " rows",
                  path, ty_validate_report (v)->rows_read);
    return rc;
}

int
ty_import_file (const char *path, const ty_import_opts_t *opts, ty_validate_t *v,
                ty_import_rows_t *rows, char *error)
{
    char dummy[TY_IMPORT_ERROR_MAX];
    if (!error)
        error = dummy;
    error[0] = '\0';
    if (!path || !opts || !v || !rows) {
        snprintf (error, TY_IMPORT_ERROR_MAX, "import: missing argument");
        return TY_EINVAL;
    }
    struct stat st;
    if (stat (path, &st) != 0) {
        int e = errno;
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: %s", path, strerror (e));
        return e;
    }
    if (opts->format == TY_FORMAT_IMAGES)
        return s_stopped (ty_import_images (path, opts, v, rows, error), path, v, error);
    if (!S_ISREG (st.st_mode)) {
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: not a regular file (format %s)", path,
                  ty_import_format_name (opts->format));
        return EINVAL;
    }
    if (st.st_size == 0) {
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: the file is empty", path);
        return TY_EINVAL;
    }
    char sha[65];
    uint64_t bytes;
    int rc = ty_dataset_file_sha256 (path, sha, &bytes);
    if (rc != TY_OK) {
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: %s", path, ty_strerror (rc));
        return rc;
    }
    if ((rc = ty_import_rows_add_source (rows, path, sha, bytes)) != TY_OK)
        return rc;
    switch (opts->format) {
    case TY_FORMAT_JSONL:
        rc = ty_import_jsonl (path, opts, v, rows, error);
        break;
    case TY_FORMAT_FASTTEXT:
        rc = ty_import_fasttext (path, opts, v, rows, error);
        break;
    case TY_FORMAT_CSV: case TY_FORMAT_TSV: case TY_FORMAT_FEATURES:
    case TY_FORMAT_ANNOTATIONS: case TY_FORMAT_INTERACTIONS:
        rc = ty_import_csv (path, opts, v, rows, error);
        break;
    default:
        snprintf (error, TY_IMPORT_ERROR_MAX, "unknown format %d", (int) opts->format);
        return TY_EINVAL;
    }
    return s_stopped (rc, path, v, error);
}

int
ty_import_finish (ty_import_rows_t *rows, ty_validate_t *v)
{
    return ty_validate_finish (v, (const char *const *) rows->label_names,
                               rows->label_counts, rows->n_labels);
}

/* ---- writing versions ------------------------------------------------------------ */

static int
s_cmp_strp (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Everything s_write allocates, freed in one place. */
typedef struct {
    char          **labels;       /* borrowed strings */
    size_t          n_labels;
    uint32_t       *row_to_final; /* rows label id -> final id */
    uint32_t       *strata;
    uint8_t        *split;
    uint32_t       *fold;
    uint64_t      (*counts)[TY_SPLIT_COUNT];  /* per final label */
    Ty__ClassCount *cc;
    Ty__ClassCount **ccp;
    Ty__SourceFile *src;
    Ty__SourceFile **srcp;
    Ty__NewSince   *ns;
    Ty__NewSince  **nsp;
} s_build_t;

static void
s_build_free (s_build_t *b)
{
    free (b->labels);
    free (b->row_to_final);
    free (b->strata);
    free (b->split);
    free (b->fold);
    free (b->counts);
    free (b->cc);
    free (b->ccp);
    free (b->src);
    free (b->srcp);
    free (b->ns);
    free (b->nsp);
}

static int64_t
s_find_label (char **labels, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp (labels[i], name))
            return (int64_t) i;
    return -1;
}

/* The label map: the parent's (ids kept) then the new labels sorted. */
static int
s_build_labels (s_build_t *b, ty_import_rows_t *rows, const Ty__DatasetMeta *parent)
{
    size_t np = parent ? parent->n_labels : 0;
    b->labels = malloc ((np + rows->n_labels + 1) * sizeof *b->labels);
    b->row_to_final = malloc ((rows->n_labels + 1) * sizeof *b->row_to_final);
    if (!b->labels || !b->row_to_final)
        return TY_ENOMEM;
    for (size_t i = 0; i < np; i++)
        b->labels[i] = parent->labels[i];
    b->n_labels = np;
    size_t fresh_start = np;
    for (size_t i = 0; i < rows->n_labels; i++)
        if (s_find_label (b->labels, np, rows->label_names[i]) < 0)
            b->labels[b->n_labels++] = rows->label_names[i];
    qsort (b->labels + fresh_start, b->n_labels - fresh_start, sizeof *b->labels, s_cmp_strp);
    /* np is small next to n (a label map); the quadratic find is fine there,
     * and rows' labels are looked up through the sorted tail by bsearch. */
    for (size_t i = 0; i < rows->n_labels; i++) {
        int64_t id = s_find_label (b->labels, np, rows->label_names[i]);
        if (id < 0) {
            char **hit = bsearch (&rows->label_names[i], b->labels + fresh_start,
                                  b->n_labels - fresh_start, sizeof *b->labels, s_cmp_strp);
            id = (int64_t) (hit - b->labels);
        }
        b->row_to_final[i] = (uint32_t) id;
    }
    return TY_OK;
}

/* Writing progress: the hook's call when `written` is due (every `every`
 * samples, or `last`). TY_OK or ECANCELED. */
static int
s_hook (const ty_import_hook_t *hook, uint64_t written, uint64_t total, bool last)
{
    if (!hook || !hook->fn)
        return TY_OK;
    uint64_t every = hook->every ? hook->every : TY_IMPORT_PROGRESS_ROWS;
    if (!last && written % every != 0)
        return TY_OK;
    return hook->fn (hook->arg, written, total) ? ECANCELED : TY_OK;
}

static int
s_write (ty_import_rows_t *rows, const char *data_dir, const char *name,
         const ty_split_opts_t *opts_in, ty_dataset_t *parent, const ty_import_hook_t *hook,
         uint64_t *version, char *hash_hex)
{
    const Ty__DatasetMeta *pm = parent ? ty_dataset_meta (parent) : NULL;
    ty_split_opts_t opts;
    if (opts_in)
        opts = *opts_in;
    else if (pm) {
        opts.ratio[TY_SPLIT_TRAIN] = pm->ratio_train;
        opts.ratio[TY_SPLIT_VAL] = pm->ratio_val;
        opts.ratio[TY_SPLIT_TEST] = pm->ratio_test;
        opts.ratio[TY_SPLIT_CALIB] = pm->ratio_calib;
        opts.seed = pm->seed;
        opts.folds = pm->folds;
        opts.cap_per_class = pm->cap_per_class;
    }
    else
        ty_split_opts_default (&opts);
    if (ty_split_opts_check (&opts) != TY_OK) {
        ty_error ("dataset %s: split ratios must be in [0, 1] and add up to 1", name);
        return TY_EINVAL;
    }
    if (pm && rows->kind != S_KIND_NONE && pm->kind && *pm->kind
        && strcmp (pm->kind, s_kind_names[rows->kind]) != 0) {
        ty_error ("dataset %s: cannot append %s samples to a %s dataset", name,
                  s_kind_names[rows->kind], pm->kind);
        return TY_EINVAL;
    }
    s_build_t b;
    memset (&b, 0, sizeof b);
    int rc = s_build_labels (&b, rows, pm);
    uint64_t n = rows->n;
    if (rc == TY_OK) {
        b.strata = malloc ((n ? n : 1) * sizeof *b.strata);
        b.split = malloc (n ? n : 1);
        b.fold = malloc ((n ? n : 1) * sizeof *b.fold);
        b.counts = calloc (b.n_labels + 1, sizeof *b.counts);
        if (!b.strata || !b.split || !b.fold || !b.counts)
            rc = TY_ENOMEM;
    }
    for (uint64_t i = 0; rc == TY_OK && i < n; i++)
        b.strata[i] = rows->rows[i].n_labels
                    ? b.row_to_final[rows->labs[rows->rows[i].lab_off]] : TY_SPLIT_NO_STRATUM;
    if (rc == TY_OK)
        rc = ty_split_assign (&opts, n, b.strata, (const char *const *) b.labels, b.n_labels,
                              b.split, b.fold);
    /* samples to write, for the hook: the parent's and the uncapped rows */
    uint64_t total = 0, written = 0;
    for (int sp = 0; parent && sp < TY_SPLIT_COUNT; sp++)
        total += ty_dataset_count (parent, (ty_split_t) sp);
    for (uint64_t i = 0; rc == TY_OK && i < n; i++)
        total += b.split[i] != TY_SPLIT_NONE;
    ty_dataset_writer_t *w = NULL;
    if (rc == TY_OK)
        rc = ty_dataset_writer_new (data_dir, name, NULL, &w);
    /* the parent's samples, as they are (folds included) */
    for (int sp = 0; rc == TY_OK && parent && sp < TY_SPLIT_COUNT; sp++) {
        if (!ty_dataset_count (parent, (ty_split_t) sp))
            continue;
        ty_dataset_iter_t *it;
        rc = ty_dataset_iter_new (parent, (ty_split_t) sp, false, 0, &it);
        ty_dataset_view_t views[256];
        size_t got;
        while (rc == TY_OK && (rc = ty_dataset_iter_next (it, views, 256, &got)) == TY_OK
               && got)
            for (size_t k = 0; rc == TY_OK && k < got; k++) {
                rc = ty_dataset_writer_add_packed (w, (ty_split_t) sp, views[k].data,
                                                   views[k].size, 0);
                if (rc == TY_OK)
                    rc = s_hook (hook, ++written, total, false);
            }
        ty_dataset_iter_destroy (&it);
    }
    uint64_t added = 0, capped = 0;
    for (uint64_t i = 0; rc == TY_OK && i < n; i++) {
        s_row_t *r = &rows->rows[i];
        if (b.split[i] == TY_SPLIT_NONE) {
            capped++;
            continue;
        }
        rc = ty_dataset_writer_add_packed (w, (ty_split_t) b.split[i], rows->buf + r->off,
                                           r->len, b.fold[i]);
        for (uint32_t k = 0; k < r->n_labels; k++)
            b.counts[b.row_to_final[rows->labs[r->lab_off + k]]][b.split[i]]++;
        added++;
        if (rc == TY_OK)
            rc = s_hook (hook, ++written, total, false);
    }
    /* the last chance to stop: after the commit's rename the version is whole */
    if (rc == TY_OK)
        rc = s_hook (hook, written, total, true);
    if (rc != TY_OK) {
        ty_dataset_writer_destroy (&w);
        s_build_free (&b);
        return rc;
    }
    /* classes: the parent's counts plus the new ones */
    for (size_t i = 0; pm && i < pm->n_classes; i++) {
        int64_t id = s_find_label (b.labels, b.n_labels, pm->classes[i]->label);
        if (id < 0)
            continue;
        b.counts[id][TY_SPLIT_TRAIN] += pm->classes[i]->train;
        b.counts[id][TY_SPLIT_VAL] += pm->classes[i]->val;
        b.counts[id][TY_SPLIT_TEST] += pm->classes[i]->test;
        b.counts[id][TY_SPLIT_CALIB] += pm->classes[i]->calib;
    }
    b.cc = calloc (b.n_labels + 1, sizeof *b.cc);
    b.ccp = calloc (b.n_labels + 1, sizeof *b.ccp);
    size_t np_src = pm ? pm->n_sources : 0;
    b.src = calloc (np_src + rows->n_sources + 1, sizeof *b.src);
    b.srcp = calloc (np_src + rows->n_sources + 1, sizeof *b.srcp);
    size_t np_ns = pm ? pm->n_new_since : 0;
    b.ns = calloc (np_ns + 2, sizeof *b.ns);
    b.nsp = calloc (np_ns + 2, sizeof *b.nsp);
    if (!b.cc || !b.ccp || !b.src || !b.srcp || !b.ns || !b.nsp) {
        ty_dataset_writer_destroy (&w);
        s_build_free (&b);
        return TY_ENOMEM;
    }
    for (size_t i = 0; i < b.n_labels; i++) {
        ty__class_count__init (&b.cc[i]);
        b.cc[i].label = b.labels[i];
        b.cc[i].train = b.counts[i][TY_SPLIT_TRAIN];
        b.cc[i].val = b.counts[i][TY_SPLIT_VAL];
        b.cc[i].test = b.counts[i][TY_SPLIT_TEST];
        b.cc[i].calib = b.counts[i][TY_SPLIT_CALIB];
        b.ccp[i] = &b.cc[i];
    }
    size_t ns = 0;
    for (size_t i = 0; i < np_src; i++)
        b.srcp[ns++] = pm->sources[i];
    for (size_t i = 0; i < rows->n_sources; i++) {
        ty__source_file__init (&b.src[i]);
        b.src[i].path = rows->sources[i].path;
        b.src[i].sha256 = rows->sources[i].sha;
        b.src[i].bytes = rows->sources[i].bytes;
        b.srcp[ns++] = &b.src[i];
    }
    /* stats: the rows', merged with the parent's */
    Ty__DatasetStats st = TY__DATASET_STATS__INIT;
    uint64_t text_hist[S_TEXT_HIST_BINS], rating_hist[S_RATING_BINS];
    memcpy (text_hist, rows->text_hist, sizeof text_hist);
    memcpy (rating_hist, rows->rating_hist, sizeof rating_hist);
    uint64_t text_n = rows->text_n, tmin = rows->text_min, tmax = rows->text_max;
    double tsum = (double) rows->text_sum;
    const Ty__DatasetStats *ps = pm ? pm->stats : NULL;
    if (ps) {
        for (size_t i = 0; i < ps->n_text_len_hist && i < S_TEXT_HIST_BINS; i++)
            text_hist[i] += ps->text_len_hist[i];
        for (size_t i = 0; i < ps->n_rating_hist && i < S_RATING_BINS; i++)
            rating_hist[i] += ps->rating_hist[i];
        uint64_t pn = 0;
        for (size_t i = 0; i < ps->n_text_len_hist; i++)
            pn += ps->text_len_hist[i];
        if (pn) {
            tmin = text_n ? (ps->text_len_min < tmin ? ps->text_len_min : tmin) : ps->text_len_min;
            tmax = ps->text_len_max > tmax ? ps->text_len_max : tmax;
            tsum += ps->text_len_mean * (double) pn;
            text_n += pn;
        }
        st.duplicates_dropped = ps->duplicates_dropped;
        st.capped = ps->capped;
        st.unlabeled = ps->unlabeled;
    }
    if (text_n) {
        st.text_len_min = tmin;
        st.text_len_max = tmax;
        st.text_len_mean = tsum / (double) text_n;
        st.n_text_len_hist = S_TEXT_HIST_BINS;
        st.text_len_hist = text_hist;
    }
    uint64_t rsum = 0;
    for (int i = 0; i < S_RATING_BINS; i++)
        rsum += rating_hist[i];
    if (rsum) {
        st.n_rating_hist = S_RATING_BINS;
        st.rating_hist = rating_hist;
    }
    st.feature_dim = rows->feature_dim ? rows->feature_dim : (ps ? ps->feature_dim : 0);
    st.image_height = rows->img_h ? rows->img_h : (ps ? ps->image_height : 0);
    st.image_width = rows->img_w ? rows->img_w : (ps ? ps->image_width : 0);
    st.image_channels = rows->img_c ? rows->img_c : (ps ? ps->image_channels : 0);
    st.capped += capped;
    st.unlabeled += rows->unlabeled;

    Ty__DatasetMeta m = TY__DATASET_META__INIT;
    m.kind = (char *) (rows->kind != S_KIND_NONE ? s_kind_names[rows->kind]
                                                 : (pm && pm->kind ? pm->kind : ""));
    m.n_labels = b.n_labels;
    m.labels = b.labels;
    m.n_classes = b.n_labels;
    m.classes = b.ccp;
    m.stats = &st;
    m.n_sources = ns;
    m.sources = b.srcp;
    m.seed = opts.seed;
    m.ratio_train = opts.ratio[TY_SPLIT_TRAIN];
    m.ratio_val = opts.ratio[TY_SPLIT_VAL];
    m.ratio_test = opts.ratio[TY_SPLIT_TEST];
    m.ratio_calib = opts.ratio[TY_SPLIT_CALIB];
    m.folds = opts.folds;
    m.cap_per_class = opts.cap_per_class;
    m.added = added;
    if (parent) {
        m.parent_version = ty_dataset_version (parent);
        size_t k = 0;
        ty__new_since__init (&b.ns[k]);
        b.ns[k].version = m.parent_version;
        b.ns[k].count = added;
        b.nsp[k] = &b.ns[k];
        k++;
        for (size_t i = 0; i < np_ns; i++, k++) {
            ty__new_since__init (&b.ns[k]);
            b.ns[k].version = pm->new_since[i]->version;
            b.ns[k].count = pm->new_since[i]->count + added;
            b.nsp[k] = &b.ns[k];
        }
        m.n_new_since = k;
        m.new_since = b.nsp;
    }
    rc = ty_dataset_writer_commit (&w, &m, version, hash_hex);
    s_build_free (&b);
    return rc;
}

int
ty_import_commit (ty_import_rows_t *rows, const char *data_dir, const char *name,
                  const ty_split_opts_t *opts, const ty_import_hook_t *hook, uint64_t *version,
                  char *hash_hex)
{
    if (!rows || !data_dir || ty_dataset_name_check (name, NULL) != TY_OK)
        return TY_EINVAL;
    return s_write (rows, data_dir, name, opts, NULL, hook, version, hash_hex);
}

int
ty_import_append (ty_import_rows_t *rows, const char *data_dir, const char *spec,
                  const ty_split_opts_t *opts, const ty_import_hook_t *hook, uint64_t *version,
                  char *hash_hex)
{
    if (!rows || !data_dir)
        return TY_EINVAL;
    ty_dataset_t *parent;
    int rc = ty_dataset_open (data_dir, spec, &parent);
    if (rc != TY_OK)
        return rc;
    rc = s_write (rows, data_dir, ty_dataset_name (parent), opts, parent, hook, version,
                  hash_hex);
    ty_dataset_destroy (&parent);
    return rc;
}

/*  ty_import: reads source files into samples, and turns them into dataset
 *  versions (first import, append) and back into files (export).
 *
 *  Formats:
 *    csv, tsv      text classification: a text column, a label column or a
 *                  multi-label column (labels joined by label_sep), optional
 *                  confidence, source and target columns. CSV follows RFC
 *                  4180 (quotes, "" escapes, quoted newlines); TSV has no
 *                  quoting (a field holds no tab or newline).
 *    jsonl         one JSON object per line: text, label | labels[],
 *                  confidence | weight, source, target, features[], user,
 *                  item, rating, timestamp, path (rating with path: an
 *                  annotation; with user: an interaction).
 *    fasttext      "__label__a __label__b some text" per line.
 *    features      CSV: a label column and numeric feature columns (all the
 *                  others), e.g. label,p0,...,p63.
 *    images        a folder of class folders of PNG/JPEG files; decoded
 *                  (stb_image), resized (stb_image_resize) to
 *                  image_width x image_height, grey (1) or RGB (3).
 *    annotations   CSV: path, rating (0-1).
 *    interactions  CSV: user, item, optional rating, optional timestamp.
 *  A row that does not parse or validate is rejected with its line number
 *  and reason (ty_validate.h); the import goes on. Nothing here crashes on
 *  bad input: records are bounded by max_record_bytes, files are mapped,
 *  never trusted.
 *
 *  Typical use (the prepare worker):
 *      ty_import_rows_t *rows = ty_import_rows_new ();
 *      ty_validate_t *v = ty_validate_new (&vopts);
 *      rc = ty_import_file (path, &iopts, v, rows);      // file-level errors
 *      rc = ty_import_finish (rows, v);                  // dataset rules
 *      rc = ty_import_commit (rows, data_dir, name, &sopts, NULL, &version, hash);
 *      json = ty_validate_report_json (v);               // the job's result
 */
#ifndef TY_IMPORT_H
#define TY_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sample.pb-c.h"
#include "ty_dataset.h"
#include "ty_split.h"
#include "ty_validate.h"

#define TY_IMPORT_MAX_RECORD_BYTES  (1u << 20)   /* one CSV record / JSON line */
#define TY_IMPORT_MAX_IMAGE_BYTES   (64u << 20)  /* one image file */
#define TY_IMPORT_IMAGE_SIDE_MAX    4096         /* target width/height */
#define TY_IMPORT_IMAGE_SIDE        32           /* default target side */
#define TY_IMPORT_PROGRESS_ROWS     65536        /* progress callback period */
#define TY_IMPORT_LABEL_SEP         '|'
#define TY_IMPORT_FASTTEXT_PREFIX   "__label__"
#define TY_IMPORT_ERROR_MAX         256

typedef enum {
    TY_FORMAT_CSV = 0,
    TY_FORMAT_TSV,
    TY_FORMAT_JSONL,
    TY_FORMAT_FASTTEXT,
    TY_FORMAT_FEATURES,
    TY_FORMAT_IMAGES,
    TY_FORMAT_ANNOTATIONS,
    TY_FORMAT_INTERACTIONS,
    TY_FORMAT_COUNT
} ty_import_format_t;

const char *ty_import_format_name (ty_import_format_t format);
/* TY_OK or TY_EINVAL. */
int ty_import_format_parse (const char *text, ty_import_format_t *format);
/* From a path: a directory -> images, .tsv, .jsonl/.ndjson, .ft/.fasttext,
 * else csv. */
ty_import_format_t ty_import_format_guess (const char *path);

/* Progress while reading: rows read (accepted + rejected) so far. Called
 * about every progress_rows accepted rows. Return 0 to go on; non-zero
 * stops the import: ty_import_file returns ECANCELED (the rows read so far
 * stay in `rows`, for the caller to drop). */
typedef int (ty_import_progress_fn) (void *arg, uint64_t rows_read, uint64_t rejected);

/* Column options name a header column, or give a 0-based index when
 * header is false (or when a header has no column of that name and the
 * option is all digits). NULL = the default: names text, label, labels,
 * confidence, source, target, path, rating, user, item, timestamp with a
 * header; without one: csv/tsv label=0 text=1, features label=0,
 * annotations path=0 rating=1, interactions user=0 item=1 rating=2
 * timestamp=3. Strings are borrowed for the import's duration. */
typedef struct {
    ty_import_format_t format;
    bool        header;              /* first record names the columns (true) */
    char        delimiter;           /* 0: ',' (csv family), '\t' (tsv) */
    const char *text_col, *label_col, *labels_col, *confidence_col, *source_col,
               *target_col, *path_col, *rating_col, *user_col, *item_col, *time_col;
    char        label_sep;           /* TY_IMPORT_LABEL_SEP */
    const char *fasttext_prefix;     /* TY_IMPORT_FASTTEXT_PREFIX */
    uint32_t    image_width, image_height;   /* TY_IMPORT_IMAGE_SIDE */
    uint32_t    image_channels;      /* 1 grey or 3 RGB (3) */
    size_t      max_record_bytes;    /* TY_IMPORT_MAX_RECORD_BYTES */
    Ty__SampleSource source;         /* source of rows without a source column */
    ty_import_progress_fn *progress;
    void       *progress_arg;
    uint64_t    progress_rows;       /* callback period; 0: TY_IMPORT_PROGRESS_ROWS */
    /* Export only: the splits written, a mask of TY_IMPORT_SPLIT_BIT (split);
     * 0 (the default) = all splits. */
    uint32_t    export_splits;
} ty_import_opts_t;

#define TY_IMPORT_SPLIT_BIT(split)  (1u << (unsigned) (split))

void ty_import_opts_default (ty_import_opts_t *opts);
/* Sets an option from a spec's key/value (format, header, delimiter, the
 * *_col names, label_sep, fasttext_prefix, image_size "WxH", image_width,
 * image_height, channels, max_record_bytes, source). value is borrowed
 * (keep it alive). TY_OK, TY_ENOTFOUND (unknown key), TY_EINVAL. */
int  ty_import_opts_set (ty_import_opts_t *opts, const char *key, const char *value);

/* ---- accepted rows in memory ------------------------------------------ */

typedef struct _ty_import_rows_t ty_import_rows_t;

/* NULL on out of memory. Not thread-safe. */
ty_import_rows_t *ty_import_rows_new (void);
void ty_import_rows_destroy (ty_import_rows_t **self_p);
/* Packs and keeps a sample (the caller keeps ownership of `sample`).
 * TY_OK, TY_ENOMEM, TY_EINVAL (a kind or feature count other than the
 * rows already there: the caller rejects the row as shape_mismatch). */
int  ty_import_rows_add (ty_import_rows_t *self, const Ty__Sample *sample);
uint64_t ty_import_rows_count (ty_import_rows_t *self);
/* "text", "features", "image", "annotation", "interaction" or "" (no rows). */
const char *ty_import_rows_kind (ty_import_rows_t *self);
/* Packed sample i (borrowed until the next add or destroy). */
int  ty_import_rows_get (ty_import_rows_t *self, uint64_t i, const void **data, size_t *size);
/* Records a source digest for meta. TY_OK or TY_ENOMEM. */
int  ty_import_rows_add_source (ty_import_rows_t *self, const char *path,
                                const char *sha256_hex, uint64_t bytes);

/* ---- import ------------------------------------------------------------ */

/* Reads one file (or folder for images) into rows; every row goes through
 * the validator. Returns TY_OK when the source could be read at all (rows
 * may have been rejected: see the report), else: errno (ENOENT for a
 * missing file), TY_EINVAL (bad options, or a header without a required
 * column), TY_ENOMEM, ECANCELED (the progress callback stopped it). On an
 * error, *error (if given, TY_IMPORT_ERROR_MAX bytes) says what and where.
 * May be called several times with the same rows and validator to import
 * several files. */
int  ty_import_file (const char *path, const ty_import_opts_t *opts, ty_validate_t *v,
                     ty_import_rows_t *rows, char *error);

/* Runs the dataset rules (ty_validate_finish) on the rows' class counts.
 * TY_OK or TY_EINVAL (see the report's message), TY_ENOMEM. */
int  ty_import_finish (ty_import_rows_t *rows, ty_validate_t *v);

/* Progress while writing: samples written to the temp dir so far, of
 * total (an append counts the parent's samples it copies). Return 0 to go
 * on; non-zero stops the write: the temp dir is removed, no version
 * appears, and the call returns ECANCELED. */
typedef int (ty_import_write_fn) (void *arg, uint64_t written, uint64_t total);

/* A write hook for ty_import_commit / ty_import_append (NULL: none). fn is
 * called every `every` samples (0: TY_IMPORT_PROGRESS_ROWS) and once more
 * with written == total just before the version is committed: the last
 * point where a stop is honoured (after it the rename makes it whole). */
typedef struct {
    ty_import_write_fn *fn;
    void               *arg;
    uint64_t            every;
} ty_import_hook_t;

/* Splits the rows (opts NULL: defaults) and writes a new version of name.
 * The label map is the sorted set of labels. *version, hash_hex (65 bytes),
 * hook optional. Errors from ty_dataset_writer_* and ty_split_assign;
 * ECANCELED when the hook stopped it. */
int  ty_import_commit (ty_import_rows_t *rows, const char *data_dir, const char *name,
                       const ty_split_opts_t *opts, const ty_import_hook_t *hook,
                       uint64_t *version, char *hash_hex);

/* A new version = the samples of `spec` ("name": the latest, or
 * "name@N") copied as they are + the rows split with opts (NULL: the
 * parent's seed and ratios). Labels new to the parent are appended to its
 * label map (ids stay stable). meta.parent_version = N, meta.added = rows,
 * meta.new_since = the rows added since each ancestor. TY_ENOTFOUND when
 * the parent does not exist, TY_EINVAL when the kinds differ. */
int  ty_import_append (ty_import_rows_t *rows, const char *data_dir, const char *spec,
                       const ty_split_opts_t *opts, const ty_import_hook_t *hook,
                       uint64_t *version, char *hash_hex);

/* ---- export ------------------------------------------------------------ */

/* Writes every sample of ds (all splits, or those in opts->export_splits),
 * in the order of the lines they came from, in `format`, columns as named
 * by opts (NULL: defaults): a header line (csv family, when opts->header),
 * then one row per sample.
 * Confidence and source columns are written only when opts names them.
 * For images, out_path is a folder that receives <label>/<line>.png.
 * TY_OK, errno, TY_EINVAL (a format that does not fit the dataset's kind,
 * or a TSV field with a tab or newline), TY_ENOMEM, TY_EPROTO. */
int  ty_import_export (ty_dataset_t *ds, const ty_import_opts_t *opts, const char *out_path);

/* ---- for the importers (storage/ty_import_*.c), not for callers --------- */

typedef struct {
    const char *data;     /* the whole file, read only */
    size_t      size;
    void       *map;      /* munmap'd by ty_import_unmap */
    size_t      map_size;
} ty_import_map_t;

int  ty_import_map (const char *path, ty_import_map_t *m);
void ty_import_unmap (ty_import_map_t *m);
/* Validates, then adds to rows; a shape mismatch becomes a reject. Calls
 * the progress callback when due: TY_OK, or ECANCELED when it asked to
 * stop (the reader then stops and returns it). */
int  ty_import_accept (ty_validate_t *v, ty_import_rows_t *rows, Ty__Sample *s,
                       uint64_t line, const ty_import_opts_t *opts);
/* Parses a confidence/source/number field; TY_OK or TY_EINVAL. */
int  ty_import_parse_source (const char *text, Ty__SampleSource *source);
int  ty_import_parse_double (const char *text, double *out);
int  ty_import_parse_float (const char *text, float *out);
/* Shortest text that reads back as the same float / double. */
void ty_import_format_float (float f, char *out, size_t cap);
void ty_import_format_double (double d, char *out, size_t cap);
const char *ty_import_source_name (Ty__SampleSource source);

int  ty_import_csv (const char *path, const ty_import_opts_t *opts, ty_validate_t *v,
                    ty_import_rows_t *rows, char *error);
int  ty_import_jsonl (const char *path, const ty_import_opts_t *opts, ty_validate_t *v,
                      ty_import_rows_t *rows, char *error);
int  ty_import_fasttext (const char *path, const ty_import_opts_t *opts, ty_validate_t *v,
                         ty_import_rows_t *rows, char *error);
/* One PNG/JPEG file in memory -> width x height x channels bytes (HWC),
 * resized as an image import does (stb_image, stb_image_resize). *pixels is
 * malloc'd (caller frees). TY_OK, TY_EINVAL (not an image, out of range:
 * *why says which) or TY_ENOMEM. */
int  ty_import_image_decode (const unsigned char *buf, size_t len, unsigned width,
                             unsigned height, unsigned channels, unsigned char **pixels,
                             const char **why);
int  ty_import_images (const char *path, const ty_import_opts_t *opts, ty_validate_t *v,
                       ty_import_rows_t *rows, char *error);

#endif

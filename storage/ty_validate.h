/*  ty_validate: checks every imported row and the dataset as a whole, and
 *  keeps the report a prepare job returns.
 *
 *  Per row (ty_validate_sample): label normalization in place (trim, case),
 *  empty or over-long text, invalid UTF-8, missing label, ratings and
 *  confidences out of range, non-finite numbers, duplicates (same content:
 *  text, features, pixels, user+item+time, or path). Importers report their
 *  own rejects (parse errors) with ty_validate_reject. At the end
 *  (ty_validate_finish): the share of rejected rows, minimum samples, the
 *  minimum per class and class balance (a warning, not a failure).
 *
 *  Not thread-safe: one validator per import.
 */
#ifndef TY_VALIDATE_H
#define TY_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sample.pb-c.h"

#define TY_VALIDATE_MIN_PER_CLASS      10      /* samples a class needs (seed 000) */
#define TY_VALIDATE_MIN_SAMPLES        1
#define TY_VALIDATE_MAX_BAD_SHARE      0.10    /* fail above 10 % rejected rows */
#define TY_VALIDATE_MAX_TEXT_BYTES     10000   /* longer texts are rejected */
#define TY_VALIDATE_BALANCE_SHARE      0.10    /* warn: class < 10 % of the average */
#define TY_VALIDATE_FIRST_LINES        5       /* line numbers kept per reason */
#define TY_VALIDATE_DETAIL_MAX         160     /* bytes of the first example kept */
#define TY_VALIDATE_MESSAGE_MAX        512

typedef enum {
    TY_REJECT_QUOTE = 0,     /* unbalanced quote */
    TY_REJECT_COLUMNS,       /* wrong column count */
    TY_REJECT_UTF8,          /* invalid UTF-8 */
    TY_REJECT_NUL,           /* NUL byte */
    TY_REJECT_LINE_LONG,     /* record over the size limit */
    TY_REJECT_JSON,          /* not a JSON object */
    TY_REJECT_VALUE,         /* a number or enum that does not parse, NaN */
    TY_REJECT_EMPTY_TEXT,
    TY_REJECT_TEXT_LONG,
    TY_REJECT_NO_LABEL,
    TY_REJECT_RATING,        /* rating outside [rating_min, rating_max] */
    TY_REJECT_WEIGHT,        /* confidence outside (0, 1] */
    TY_REJECT_IMAGE,         /* undecodable image */
    TY_REJECT_SHAPE,         /* other kind or feature count than the rest */
    TY_REJECT_DUPLICATE,
    TY_REJECT_FILE,          /* a file of a folder import that cannot be read */
    TY_REJECT_COUNT
} ty_reject_t;

typedef enum {
    TY_LABEL_CASE_KEEP = 0,
    TY_LABEL_CASE_UPPER,
    TY_LABEL_CASE_LOWER,
} ty_label_case_t;

typedef struct {
    uint32_t        min_per_class;     /* TY_VALIDATE_MIN_PER_CLASS; 0 = off */
    uint64_t        min_samples;       /* TY_VALIDATE_MIN_SAMPLES */
    double          max_bad_share;     /* TY_VALIDATE_MAX_BAD_SHARE (0..1) */
    size_t          max_text_bytes;    /* TY_VALIDATE_MAX_TEXT_BYTES */
    double          balance_share;     /* TY_VALIDATE_BALANCE_SHARE; 0 = off */
    double          rating_min, rating_max;   /* 0, 1 */
    ty_label_case_t label_case;        /* KEEP */
    bool            trim_labels;       /* true */
    bool            reject_duplicates; /* true */
    bool            require_labels;    /* true for text, features, images */
} ty_validate_opts_t;

/* Fills the defaults above. */
void ty_validate_opts_default (ty_validate_opts_t *opts);
/* Sets one option from a spec's key/value: min_per_class, min_samples,
 * max_bad_share, max_text_bytes, balance_share, rating_min, rating_max,
 * label_case (keep|upper|lower), trim_labels, reject_duplicates,
 * require_labels (true|false|1|0). TY_OK, TY_ENOTFOUND (unknown key; the
 * caller may route it elsewhere) or TY_EINVAL (bad value). */
int  ty_validate_opts_set (ty_validate_opts_t *opts, const char *key, const char *value);

typedef struct {
    uint64_t count;
    uint64_t first_lines[TY_VALIDATE_FIRST_LINES];
    size_t   n_first;
    char     example[TY_VALIDATE_DETAIL_MAX];   /* detail of the first one */
} ty_validate_reason_t;

typedef struct {
    char    *label;
    uint64_t count;
    bool     under_min;      /* fewer than min_per_class */
    bool     unbalanced;     /* under balance_share of the average */
} ty_validate_class_t;

/* The report: owned by the validator, valid until ty_validate_destroy. */
typedef struct {
    uint64_t             rows_read;     /* accepted + rejected */
    uint64_t             accepted;
    uint64_t             rejected;
    ty_validate_reason_t reasons[TY_REJECT_COUNT];
    ty_validate_class_t *classes;       /* after _finish, sorted by label */
    size_t               n_classes;
    char               **warnings;      /* balance warnings after _finish */
    size_t               n_warnings;
    bool                 finished;
    bool                 failed;
    char                 message[TY_VALIDATE_MESSAGE_MAX]; /* why it failed, naming rule and class */
} ty_validate_report_t;

typedef struct _ty_validate_t ty_validate_t;

/* opts may be NULL (defaults); copied. NULL on out of memory. */
ty_validate_t *ty_validate_new (const ty_validate_opts_t *opts);
void ty_validate_destroy (ty_validate_t **self_p);
const ty_validate_opts_t *ty_validate_opts (ty_validate_t *self);

/* Checks one row and normalizes its labels in place (the label strings
 * must be writable; a trimmed label may point further into its buffer).
 * Returns true if accepted (counted as accepted), false if rejected
 * (counted with its reason and line). */
bool ty_validate_sample (ty_validate_t *self, Ty__Sample *sample, uint64_t line);

/* Records a reject found by an importer; detail may be NULL. */
void ty_validate_reject (ty_validate_t *self, ty_reject_t reason, uint64_t line,
                         const char *detail);
/* Takes back an accepted row (e.g. the store refused it). */
void ty_validate_unaccept (ty_validate_t *self);

/* Final checks over the class counts of the accepted rows (labels[i] has
 * counts[i] samples; n may be 0 for unlabeled kinds). Returns TY_OK, or
 * TY_EINVAL when a rule fails (report->message names the rule and the
 * class). Calling it again recomputes. TY_ENOMEM possible. */
int  ty_validate_finish (ty_validate_t *self, const char *const *labels,
                         const uint64_t *counts, size_t n);

const ty_validate_report_t *ty_validate_report (ty_validate_t *self);

/* "unbalanced_quote", "column_count", ... (stable, used in JSON). */
const char *ty_validate_reason_name (ty_reject_t reason);

/* The report as JSON (one object, see ty_validate.c for the fields):
 * a malloc'd string the caller frees, or NULL on out of memory. */
char *ty_validate_report_json (ty_validate_t *self);

#endif

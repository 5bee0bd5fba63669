/*  ty_prepare: import and append jobs (see ty_prepare.h). This file turns a
 *  PrepareSpec into library options, drives the phases and reports; the
 *  parsing, validation, splitting and storing are the dataset library's. */
#include "ty_prepare.h"

#include "ty_clock.h"
#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_import.h"
#include "ty_log.h"
#include "ty_split.h"
#include "ty_validate.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_SUMMARY_MAX   512
#define S_SAMPLE_BYTES  (1u << 20)   /* read to estimate a source's rows */

typedef enum { S_MODE_IMPORT = 0, S_MODE_APPEND } s_mode_t;

/* What the reading progress callback needs. */
typedef struct {
    ty_job_t *job;
    uint64_t  rows_read;
    uint64_t  rejected;
    uint64_t  rows_guess;     /* estimated rows of the source; 0 = unknown */
} s_reading_t;

/* Rows of a text source, estimated from the line length of its first
 * S_SAMPLE_BYTES: enough for a moving bar and an ETA on big files. 0 when
 * unknown (a folder, an unreadable file). */
static uint64_t
s_guess_rows (const char *path)
{
    struct stat st;
    if (stat (path, &st) != 0 || !S_ISREG (st.st_mode) || st.st_size == 0)
        return 0;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char *buf = malloc (S_SAMPLE_BYTES);
    ssize_t n = buf ? read (fd, buf, S_SAMPLE_BYTES) : -1;
    close (fd);
    uint64_t lines = 0;
    for (ssize_t i = 0; i < n; i++)
        lines += buf [i] == '\n';
    free (buf);
    if (n <= 0 || lines == 0)
        return 0;
    return (uint64_t) ((double) lines * (double) st.st_size / (double) n);
}

/* ---- reading progress ---------------------------------------------------- */

/* Also the cancel check while reading: non-zero stops the import. */
static int
s_on_rows (void *arg, uint64_t rows_read, uint64_t rejected)
{
    s_reading_t *r = arg;
    r->rows_read = rows_read;
    r->rejected = rejected;
    ty_job_metric (r->job, "rows_read", (double) rows_read);
    ty_job_metric (r->job, "rejected", (double) rejected);
    double fraction = -1;
    if (r->rows_guess) {
        double done = (double) rows_read / (double) r->rows_guess;
        fraction = TY_PREPARE_AT_READING
                 + (TY_PREPARE_AT_VALIDATING - TY_PREPARE_AT_READING) * (done < 1 ? done : 1);
    }
    ty_job_progress (r->job, fraction, "reading", "%" PRIu64 " rows read, %" PRIu64 " rejected",
                     rows_read, rejected);
    return ty_job_cancelled (r->job);
}

/* Writing progress and the cancel check while writing (non-zero stops the
 * write before the rename: the temp dir goes, no version appears). */
static int
s_on_written (void *arg, uint64_t written, uint64_t total)
{
    ty_job_t *job = arg;
    double done = total ? (double) written / (double) total : 1;
    double fraction = TY_PREPARE_AT_WRITING
                    + (TY_PREPARE_AT_SYNCING - TY_PREPARE_AT_WRITING) * done;
    ty_job_progress (job, fraction, "writing", "%" PRIu64 " of %" PRIu64 " samples written",
                     written, total);
    return ty_job_cancelled (job);
}

/* ---- options ----------------------------------------------------------- */

/* Routes one spec option to the importer, the validator or the splitter,
 * in that order; *is_split is set when the splitter took it. TY_OK, or a
 * failure already recorded with ty_job_fail. */
static int
s_option (ty_job_t *job, const char *key, const char *value, ty_import_opts_t *iopts,
          ty_validate_opts_t *vopts, ty_split_opts_t *sopts, int *is_split)
{
    int rc = ty_import_opts_set (iopts, key, value);
    if (rc == TY_ENOTFOUND)
        rc = ty_validate_opts_set (vopts, key, value);
    if (rc == TY_ENOTFOUND) {
        rc = ty_split_opts_set (sopts, key, value);
        *is_split = rc != TY_ENOTFOUND;
    }
    if (rc == TY_ENOTFOUND) {
        ty_job_fail (job, "unknown option '%s'", key);
        return rc;
    }
    if (rc != TY_OK) {
        ty_job_fail (job, "option %s: bad value '%s'", key, value);
        return rc;
    }
    return TY_OK;
}

/* Fills the three option sets from the spec. TY_OK or a recorded failure. */
static int
s_options (ty_job_t *job, const Ty__PrepareSpec *p, s_mode_t mode, ty_import_opts_t *iopts,
           ty_validate_opts_t *vopts, ty_split_opts_t *sopts, int *split_given)
{
    ty_import_opts_default (iopts);
    ty_validate_opts_default (vopts);
    ty_split_opts_default (sopts);
    *split_given = 0;
    if (mode == S_MODE_APPEND) {
        /* A few feedback rows are the normal case of an append: the class
         * rules were checked on the parent, and counting them over the new
         * rows alone would refuse every small batch. Options may set them. */
        vopts->min_per_class = 0;
        vopts->balance_share = 0;
    }

    if (*p->format) {
        if (ty_import_format_parse (p->format, &iopts->format) != TY_OK) {
            ty_job_fail (job, "unknown format '%s' (csv, tsv, jsonl, fasttext, features, "
                         "images, annotations or interactions)", p->format);
            return TY_EINVAL;
        }
    }
    else
        iopts->format = ty_import_format_guess (p->source);
    /* Annotations and interactions carry ratings, not classes. */
    if (iopts->format == TY_FORMAT_ANNOTATIONS || iopts->format == TY_FORMAT_INTERACTIONS) {
        vopts->require_labels = false;
        vopts->min_per_class = 0;
    }
    if (p->image_width)
        iopts->image_width = p->image_width;
    if (p->image_height)
        iopts->image_height = p->image_height;
    if (p->image_channels) {
        if (p->image_channels != 1 && p->image_channels != 3) {
            ty_job_fail (job, "image_channels must be 1 (grey) or 3 (RGB), not %u",
                         p->image_channels);
            return TY_EINVAL;
        }
        iopts->image_channels = p->image_channels;
    }
    if (iopts->image_width > TY_IMPORT_IMAGE_SIDE_MAX
    ||  iopts->image_height > TY_IMPORT_IMAGE_SIDE_MAX) {
        ty_job_fail (job, "image size %ux%u: each side at most %u", iopts->image_width,
                     iopts->image_height, TY_IMPORT_IMAGE_SIDE_MAX);
        return TY_EINVAL;
    }
    if (*p->split) {
        if (ty_split_opts_set (sopts, "split", p->split) != TY_OK) {
            ty_job_fail (job, "split '%s': give 3 or 4 ratios that add up to 1, "
                         "e.g. 0.7/0.15/0.15", p->split);
            return TY_EINVAL;
        }
        *split_given = 1;
    }
    if (p->has_seed) {
        sopts->seed = p->seed;
        *split_given = 1;
    }
    if (p->folds) {
        sopts->folds = p->folds;
        *split_given = 1;
    }
    if (p->max_per_class) {
        sopts->cap_per_class = p->max_per_class;
        *split_given = 1;
    }
    for (size_t i = 0; i < p->n_options; i++) {
        const Ty__PrepareSpec__OptionsEntry *o = p->options [i];
        if (!o || !o->key)
            continue;
        int is_split = 0;
        int rc = s_option (job, o->key, o->value ? o->value : "", iopts, vopts, sopts,
                           &is_split);
        if (rc != TY_OK)
            return rc;
        if (is_split)
            *split_given = 1;       /* the parent's split is not wanted then */
    }
    if (ty_split_opts_check (sopts) != TY_OK) {
        ty_job_fail (job, "split ratios must each be in [0, 1] and add up to 1");
        return TY_EINVAL;
    }
    return TY_OK;
}

/* ---- result -------------------------------------------------------------- */

static char *
s_counts_json (ty_dataset_t *ds)
{
    cJSON *o = cJSON_CreateObject ();
    if (!o)
        return NULL;
    int ok = 1;
    for (int s = 0; s < TY_SPLIT_COUNT && ok; s++)
        ok = cJSON_AddNumberToObject (o, ty_split_name ((ty_split_t) s),
                                      (double) ty_dataset_count (ds, (ty_split_t) s)) != NULL;
    char *text = ok ? cJSON_PrintUnformatted (o) : NULL;
    cJSON_Delete (o);
    return text;
}

static char *
s_classes_json (const Ty__DatasetMeta *meta)
{
    cJSON *arr = cJSON_CreateArray ();
    if (!arr)
        return NULL;
    int ok = 1;
    size_t bytes = 2;
    for (size_t i = 0; i < meta->n_classes && ok; i++) {
        const Ty__ClassCount *c = meta->classes [i];
        /* a rough bound per entry: the label plus the numbers */
        bytes += strlen (c->label) + 96;
        if (bytes > TY_PREPARE_CLASSES_MAX_BYTES) {
            cJSON *more = cJSON_CreateObject ();
            ok = more && cJSON_AddItemToArray (arr, more)
              && cJSON_AddNumberToObject (more, "more_classes",
                                          (double) (meta->n_classes - i)) != NULL;
            break;
        }
        cJSON *o = cJSON_CreateObject ();
        ok = o && cJSON_AddItemToArray (arr, o)
          && cJSON_AddStringToObject (o, "label", c->label)
          && cJSON_AddNumberToObject (o, "train", (double) c->train)
          && cJSON_AddNumberToObject (o, "val", (double) c->val)
          && cJSON_AddNumberToObject (o, "test", (double) c->test)
          && cJSON_AddNumberToObject (o, "calib", (double) c->calib);
    }
    char *text = ok ? cJSON_PrintUnformatted (arr) : NULL;
    cJSON_Delete (arr);
    return text;
}

/* The report as an output; kept on failures too, so the client can show
 * which rows were rejected and why. */
static void
s_output_report (ty_job_t *job, ty_validate_t *v)
{
    char *json = ty_validate_report_json (v);
    if (json)
        ty_job_output (job, "report", json);
    else
        ty_warn ("job %s: no memory for the validation report", ty_job_id (job));
    free (json);
}

/* Opens the new version and fills the outputs from its meta. */
static ty_job_rc_t
s_result (ty_job_t *job, const char *data_dir, const char *name, uint64_t version,
          const char *hash, s_mode_t mode, ty_validate_t *v)
{
    char spec [TY_DATASET_SPEC_MAX], buf [64];
    snprintf (spec, sizeof spec, "%s@%" PRIu64, name, version);
    ty_dataset_t *ds = NULL;
    int rc = ty_dataset_open (data_dir, spec, &ds);
    if (rc != TY_OK)
        return ty_job_fail (job, "%s was written but cannot be opened: %s", spec,
                            ty_strerror (rc));
    const Ty__DatasetMeta *meta = ty_dataset_meta (ds);
    const ty_validate_report_t *r = ty_validate_report (v);

    ty_job_output (job, "dataset", spec);
    snprintf (buf, sizeof buf, "%" PRIu64, version);
    ty_job_output (job, "version", buf);
    ty_job_output (job, "content_hash", hash);
    ty_job_output (job, "kind", meta->kind);
    snprintf (buf, sizeof buf, "%" PRIu64, meta->added);
    ty_job_output (job, "added", buf);
    if (mode == S_MODE_APPEND && meta->parent_version) {
        char parent [TY_DATASET_SPEC_MAX];
        snprintf (parent, sizeof parent, "%s@%" PRIu64, name, meta->parent_version);
        ty_job_output (job, "parent", parent);
    }
    char *counts = s_counts_json (ds);
    char *classes = s_classes_json (meta);
    if (counts)
        ty_job_output (job, "counts", counts);
    if (classes)
        ty_job_output (job, "classes", classes);
    free (counts);
    free (classes);
    s_output_report (job, v);

    uint64_t c [TY_SPLIT_COUNT], total = 0;
    for (int s = 0; s < TY_SPLIT_COUNT; s++)
        total += c [s] = ty_dataset_count (ds, (ty_split_t) s);
    char calib [48] = "";
    if (c [TY_SPLIT_CALIB])
        snprintf (calib, sizeof calib, ", calib %" PRIu64, c [TY_SPLIT_CALIB]);
    char added [64] = "";
    if (mode == S_MODE_APPEND)
        snprintf (added, sizeof added, ", %" PRIu64 " new since @%" PRIu64,
                  meta->added, meta->parent_version);
    char classes_txt [48] = "";
    if (meta->n_labels)
        snprintf (classes_txt, sizeof classes_txt, ", %zu classes", meta->n_labels);
    char warnings [48] = "";
    if (r->n_warnings)
        snprintf (warnings, sizeof warnings, ", %zu warnings", r->n_warnings);
    char summary [S_SUMMARY_MAX];
    snprintf (summary, sizeof summary,
              "%s: %" PRIu64 " samples (train %" PRIu64 ", val %" PRIu64 ", test %" PRIu64
              "%s)%s, %" PRIu64 " of %" PRIu64 " rows rejected%s%s",
              spec, total, c [TY_SPLIT_TRAIN], c [TY_SPLIT_VAL], c [TY_SPLIT_TEST], calib,
              added, r->rejected, r->rows_read, classes_txt, warnings);
    ty_job_output (job, "summary", summary);
    ty_job_metric (job, "samples", (double) total);
    ty_job_log (job, "%s", summary);
    ty_dataset_destroy (&ds);
    return TY_JOB_OK;
}

/* ---- the job -------------------------------------------------------------- */

/* Sleeps pause_ms in slices; 1 if the job was cancelled meanwhile. */
static int
s_pause (ty_job_t *job, int pause_ms)
{
    int64_t end = ty_clock_mono_ms () + pause_ms;
    while (ty_clock_mono_ms () < end) {
        if (ty_job_cancelled (job))
            return 1;
        /* nothing new, but a progress held back by the rate limit goes out */
        ty_job_progress (job, -1, NULL, NULL);
        ty_clock_sleep_ms (TY_PREPARE_PAUSE_SLICE_MS);
    }
    return ty_job_cancelled (job);
}

static ty_job_rc_t
s_run (ty_job_t *job, const ty_prepare_opts_t *opts, const Ty__PrepareSpec *p,
       ty_import_rows_t *rows, ty_validate_t **v_p)
{
    s_mode_t mode = S_MODE_IMPORT;
    if (!strcmp (p->mode, "append"))
        mode = S_MODE_APPEND;
    else if (*p->mode && strcmp (p->mode, "import"))
        return ty_job_fail (job, "unknown mode '%s' (import or append)", p->mode);
    const char *why = NULL;
    if (ty_dataset_name_check (p->dataset, &why) != TY_OK)
        return ty_job_fail (job, "dataset name '%s': %s", p->dataset, why ? why : "invalid");
    if (!*p->source)
        return ty_job_fail (job, "no source file or folder given");
    if (p->source [0] != '/')
        return ty_job_fail (job, "source '%s' must be an absolute path (the worker's "
                            "working directory is not the client's)", p->source);

    ty_import_opts_t iopts;
    ty_validate_opts_t vopts;
    ty_split_opts_t sopts;
    int split_given = 0;
    if (s_options (job, p, mode, &iopts, &vopts, &sopts, &split_given) != TY_OK)
        return TY_JOB_ERROR;
    s_reading_t reading = { .job = job, .rows_guess = s_guess_rows (p->source) };
    iopts.progress = s_on_rows;
    iopts.progress_arg = &reading;
    /* an image costs a decode and a resize: report (and check for a cancel)
     * more often than for text rows, so a cancel is not kept waiting */
    if (iopts.format == TY_FORMAT_IMAGES)
        iopts.progress_rows = TY_PREPARE_IMAGE_PROGRESS_ROWS;
    ty_import_hook_t hook = { .fn = s_on_written, .arg = job };

    ty_validate_t *v = *v_p = ty_validate_new (&vopts);
    if (!v)
        return ty_job_fail (job, "out of memory");

    /* reading */
    ty_job_progress (job, TY_PREPARE_AT_READING, "reading", "%s (%s)", p->source,
                     ty_import_format_name (iopts.format));
    char error [TY_IMPORT_ERROR_MAX] = "";
    int rc = ty_import_file (p->source, &iopts, v, rows, error);
    const ty_validate_report_t *r = ty_validate_report (v);
    ty_job_metric (job, "rows_read", (double) r->rows_read);
    ty_job_metric (job, "rejected", (double) r->rejected);
    if (rc == ECANCELED && ty_job_cancelled (job))
        return TY_JOB_CANCELED;
    if (rc != TY_OK) {
        if (r->rows_read)
            s_output_report (job, v);
        return ty_job_fail (job, "cannot import %s: %s", p->source,
                            *error ? error : ty_strerror (rc));
    }
    if (ty_job_cancelled (job))
        return TY_JOB_CANCELED;

    /* validating */
    ty_job_progress (job, TY_PREPARE_AT_VALIDATING, "validating",
                     "%" PRIu64 " rows read, %" PRIu64 " rejected", r->rows_read, r->rejected);
    rc = ty_import_finish (rows, v);
    if (rc != TY_OK) {
        s_output_report (job, v);
        if (rc == TY_EINVAL && r->failed && *r->message)
            return ty_job_fail (job, "%s", r->message);
        return ty_job_fail (job, "validation of %s: %s", p->source, ty_strerror (rc));
    }
    for (size_t i = 0; i < r->n_warnings; i++)
        ty_job_log (job, "warning: %s", r->warnings [i]);
    if (opts->pause_ms > 0 && s_pause (job, opts->pause_ms))
        return TY_JOB_CANCELED;
    if (ty_job_cancelled (job))
        return TY_JOB_CANCELED;

    /* writing: the library splits, writes a temp dir and renames it; until
     * the rename nothing is visible, after it the version is whole. */
    ty_job_progress (job, TY_PREPARE_AT_WRITING, "writing", "%" PRIu64 " samples",
                     ty_import_rows_count (rows));
    uint64_t version = 0;
    char hash [65] = "";
    if (mode == S_MODE_IMPORT)
        rc = ty_import_commit (rows, opts->data_dir, p->dataset, &sopts, &hook, &version,
                               hash);
    else {
        char parent [TY_DATASET_SPEC_MAX];
        if (p->parent_version)
            snprintf (parent, sizeof parent, "%s@%" PRIu64, p->dataset, p->parent_version);
        else
            snprintf (parent, sizeof parent, "%s", p->dataset);
        rc = ty_import_append (rows, opts->data_dir, parent, split_given ? &sopts : NULL,
                               &hook, &version, hash);
        if (rc == TY_ENOTFOUND) {
            s_output_report (job, v);
            return ty_job_fail (job, "cannot append to %s: no such dataset or version "
                                "(import it first)", parent);
        }
        if (rc == TY_EINVAL) {
            s_output_report (job, v);
            return ty_job_fail (job, "cannot append %s to %s: the samples are of "
                                "another kind than the dataset's", p->source, parent);
        }
    }
    if (rc == ECANCELED && ty_job_cancelled (job))
        return TY_JOB_CANCELED;
    if (rc != TY_OK) {
        s_output_report (job, v);
        return ty_job_fail (job, "cannot write dataset %s: %s", p->dataset, ty_strerror (rc));
    }
    ty_job_progress (job, 1.0, "done", "%s@%" PRIu64, p->dataset, version);
    return s_result (job, opts->data_dir, p->dataset, version, hash, mode, v);
}

ty_job_rc_t
ty_prepare_job (ty_job_t *job, void *arg)
{
    const ty_prepare_opts_t *opts = arg;
    const Ty__JobSpec *spec = ty_job_spec (job);
    if (spec->kind_case != TY__JOB_SPEC__KIND_PREPARE || !spec->prepare)
        return ty_job_fail (job, "trainyard-prepare runs prepare jobs only");
    ty_import_rows_t *rows = ty_import_rows_new ();
    if (!rows)
        return ty_job_fail (job, "out of memory");
    ty_validate_t *v = NULL;
    ty_job_rc_t rc = s_run (job, opts, spec->prepare, rows, &v);
    ty_validate_destroy (&v);
    ty_import_rows_destroy (&rows);
    return rc;
}

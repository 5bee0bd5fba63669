/*  ty_report: metrics.json on disk, and its readable form. See ty_report.h. */
#include "ty_report.h"
#include "ty_error.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PATH_MAX     4096
#define S_NAME_COL     16     /* width of the class-name column */
#define S_CELL_COL     7      /* width of a confusion-matrix cell */
#define S_CMP_LABEL    24     /* width of the label column of compare */
#define S_CMP_COL      20     /* width of a value column: "accept_with_caution" fits */

/* ======================================================================
 *  Model versions on disk
 * ====================================================================== */

static int
s_name_ok (const char *name, const char **why)
{
    size_t len = strlen (name);
    if (len == 0 || len > TY_REPORT_MODEL_NAME_MAX) {
        *why = "a model name has 1 to 64 characters";
        return 0;
    }
    if (!strcmp (name, ".") || strstr (name, "..")) {
        *why = "a model name may not be '.' or contain '..'";
        return 0;
    }
    for (const char *p = name; *p; p++)
        if (!isalnum ((unsigned char) *p) && *p != '_' && *p != '.' && *p != '-') {
            *why = "a model name holds only letters, digits, '_', '.' and '-'";
            return 0;
        }
    return 1;
}

int
ty_report_model_spec_parse (const char *spec, char *name_out, uint64_t *version,
                            const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (!spec || !*spec) {
        *why = "no model given";
        return TY_EINVAL;
    }
    const char *at = strchr (spec, '@');
    size_t len = at ? (size_t) (at - spec) : strlen (spec);
    if (len > TY_REPORT_MODEL_NAME_MAX) {
        *why = "a model name has 1 to 64 characters";
        return TY_EINVAL;
    }
    memcpy (name_out, spec, len);
    name_out [len] = '\0';
    if (!s_name_ok (name_out, why))
        return TY_EINVAL;
    *version = 0;
    if (at) {
        const char *v = at + 1;
        char *end;
        errno = 0;
        unsigned long long n = strtoull (v, &end, 10);
        if (!*v || *end || errno || n == 0 || !isdigit ((unsigned char) *v)) {
            *why = "the version after '@' is a number >= 1";
            return TY_EINVAL;
        }
        *version = n;
    }
    return TY_OK;
}

/* The highest version directory under dir (names that are decimal numbers). */
static uint64_t
s_latest_version (const char *dir)
{
    DIR *d = opendir (dir);
    if (!d)
        return 0;
    uint64_t best = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        const char *p = e->d_name;
        if (!isdigit ((unsigned char) *p))
            continue;
        char *end;
        unsigned long long v = strtoull (p, &end, 10);
        if (*end || v == 0)
            continue;
        char sub [S_PATH_MAX];
        struct stat st;
        if (snprintf (sub, sizeof sub, "%s/%s", dir, p) >= (int) sizeof sub
            || stat (sub, &st) != 0 || !S_ISDIR (st.st_mode))
            continue;
        if (v > best)
            best = v;
    }
    closedir (d);
    return best;
}

int
ty_report_model_dir (const char *data_dir, const char *spec, char *dir, size_t len,
                     uint64_t *version_out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    char name [TY_REPORT_MODEL_NAME_MAX + 1];
    uint64_t version;
    int rc = ty_report_model_spec_parse (spec, name, &version, why);
    if (rc != TY_OK)
        return rc;
    char base [S_PATH_MAX];
    if (snprintf (base, sizeof base, "%s/models/%s", data_dir, name) >= (int) sizeof base)
        return ENAMETOOLONG;
    struct stat st;
    if (stat (base, &st) != 0 || !S_ISDIR (st.st_mode)) {
        *why = "no such model";
        return TY_ENOTFOUND;
    }
    if (version == 0) {
        version = s_latest_version (base);
        if (version == 0) {
            *why = "the model has no version yet";
            return TY_ENOTFOUND;
        }
    }
    if (snprintf (dir, len, "%s/%" PRIu64, base, version) >= (int) len)
        return ENAMETOOLONG;
    if (stat (dir, &st) != 0 || !S_ISDIR (st.st_mode)) {
        *why = "no such model version";
        return TY_ENOTFOUND;
    }
    if (version_out)
        *version_out = version;
    return TY_OK;
}

/* ======================================================================
 *  The file
 * ====================================================================== */

static int
s_write_all (int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write (fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        n -= (size_t) w;
    }
    return 0;
}

int
ty_report_write (const char *dir, const cJSON *doc)
{
    char *text = cJSON_Print (doc);
    if (!text)
        return TY_ENOMEM;
    char tmp [S_PATH_MAX], path [S_PATH_MAX];
    if (snprintf (tmp, sizeof tmp, "%s/.%s.tmp-%ld", dir, TY_REPORT_FILE, (long) getpid ())
            >= (int) sizeof tmp
        || snprintf (path, sizeof path, "%s/%s", dir, TY_REPORT_FILE) >= (int) sizeof path) {
        free (text);
        return ENAMETOOLONG;
    }
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        free (text);
        return err;
    }
    int err = s_write_all (fd, text, strlen (text));
    if (!err)
        err = s_write_all (fd, "\n", 1);
    free (text);
    if (!err && fsync (fd) != 0)
        err = errno;
    if (close (fd) != 0 && !err)
        err = errno;
    if (!err && rename (tmp, path) != 0)
        err = errno;
    if (err) {
        unlink (tmp);
        return err;
    }
    /* the rename is durable once the directory is synced */
    int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync (dfd) != 0)
            err = errno;
        close (dfd);
    }
    return err;
}

int
ty_report_load (const char *path, cJSON **doc_out, char *err, size_t errlen)
{
    char dummy [8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    *doc_out = NULL;
    FILE *f = fopen (path, "re");
    if (!f) {
        int e = errno;
        snprintf (err, errlen, "%s: %s", path, strerror (e));
        return e;
    }
    struct stat st;
    if (fstat (fileno (f), &st) != 0) {
        int e = errno;
        fclose (f);
        snprintf (err, errlen, "%s: %s", path, strerror (e));
        return e;
    }
    if (st.st_size < 0 || (uint64_t) st.st_size > TY_REPORT_MAX_BYTES) {
        fclose (f);
        snprintf (err, errlen, "%s: larger than %u bytes", path, TY_REPORT_MAX_BYTES);
        return TY_EFULL;
    }
    size_t size = (size_t) st.st_size;
    char *text = malloc (size + 1);
    if (!text) {
        fclose (f);
        snprintf (err, errlen, "out of memory");
        return TY_ENOMEM;
    }
    size_t got = fread (text, 1, size, f);
    int rerr = ferror (f);
    fclose (f);
    if (rerr || got != size) {
        free (text);
        snprintf (err, errlen, "%s: short read", path);
        return EIO;
    }
    text [size] = '\0';
    cJSON *doc = cJSON_ParseWithLength (text, size);
    free (text);
    if (!doc || !cJSON_IsObject (doc)) {
        cJSON_Delete (doc);
        snprintf (err, errlen, "%s: not a metrics document (JSON object)", path);
        return TY_EPROTO;
    }
    double fv = ty_report_number (doc, "format_version");
    if (isnan (fv) || fv < 1 || fv > TY_REPORT_FORMAT_VERSION) {
        cJSON_Delete (doc);
        snprintf (err, errlen, "%s: unknown format_version (this build reads 1..%d)",
                  path, TY_REPORT_FORMAT_VERSION);
        return TY_EPROTO;
    }
    *doc_out = doc;
    return TY_OK;
}

/* ======================================================================
 *  Reading a document
 * ====================================================================== */

static const cJSON *
s_get (const cJSON *doc, const char *path)
{
    const cJSON *node = doc;
    char key [128];
    while (node && *path) {
        const char *dot = strchr (path, '.');
        size_t len = dot ? (size_t) (dot - path) : strlen (path);
        if (len >= sizeof key)
            return NULL;
        memcpy (key, path, len);
        key [len] = '\0';
        node = cJSON_GetObjectItemCaseSensitive (node, key);
        path += len + (dot ? 1 : 0);
    }
    return node;
}

double
ty_report_number (const cJSON *doc, const char *path)
{
    const cJSON *n = s_get (doc, path);
    return cJSON_IsNumber (n) ? n->valuedouble : NAN;
}

const char *
ty_report_string (const cJSON *doc, const char *path)
{
    const cJSON *n = s_get (doc, path);
    return cJSON_IsString (n) ? n->valuestring : NULL;
}

/* "name@version" of a {name, version} object. */
static void
s_spec (const cJSON *doc, const char *obj, char *buf, size_t len)
{
    char path [64];
    snprintf (path, sizeof path, "%s.name", obj);
    const char *name = ty_report_string (doc, path);
    snprintf (path, sizeof path, "%s.version", obj);
    double v = ty_report_number (doc, path);
    if (!name)
        snprintf (buf, len, "?");
    else if (isnan (v))
        snprintf (buf, len, "%s", name);
    else
        snprintf (buf, len, "%s@%.0f", name, v);
}

char *
ty_report_summary (const cJSON *doc, char *buf, size_t len)
{
    const char *task = ty_report_string (doc, "task");
    char head [160] = "";
    if (!task)
        task = "?";
    if (!strcmp (task, "classification"))
        snprintf (head, sizeof head, "accuracy %.4f, macro F1 %.4f",
                  ty_report_number (doc, "classification.accuracy"),
                  ty_report_number (doc, "classification.macro.f1"));
    else if (!strcmp (task, "multilabel"))
        snprintf (head, sizeof head, "subset accuracy %.4f, micro F1 %.4f, macro F1 %.4f",
                  ty_report_number (doc, "multilabel.subset_accuracy"),
                  ty_report_number (doc, "multilabel.micro.f1"),
                  ty_report_number (doc, "multilabel.macro.f1"));
    else if (!strcmp (task, "regression"))
        snprintf (head, sizeof head, "RMSE %.4g, MAE %.4g, R2 %.4f",
                  ty_report_number (doc, "regression.rmse"),
                  ty_report_number (doc, "regression.mae"),
                  ty_report_number (doc, "regression.r2"));
    else if (!strcmp (task, "ranking"))
        snprintf (head, sizeof head, "HR@%.0f %.4f, NDCG@%.0f %.4f",
                  ty_report_number (doc, "ranking.k"), ty_report_number (doc, "ranking.hit_rate"),
                  ty_report_number (doc, "ranking.k"), ty_report_number (doc, "ranking.ndcg"));
    char ds [128];
    s_spec (doc, "dataset", ds, sizeof ds);
    const char *split = ty_report_string (doc, "dataset.split");
    const char *verdict = ty_report_string (doc, "gate.verdict");
    const char *rec = ty_report_string (doc, "analysis.recommendation");
    char gate [32] = "";
    if (verdict)
        snprintf (gate, sizeof gate, "; gate %s", verdict);
    /* k-fold: the samples were one fold of the split, not all of it */
    char fold [32] = "";
    double f = ty_report_number (doc, "dataset.fold");
    if (!isnan (f))
        snprintf (fold, sizeof fold, " fold %.0f", f);
    snprintf (buf, len, "%s on %s %s%s (%.0f samples)%s; %s", head, ds, split ? split : "?",
              fold, ty_report_number (doc, "n_samples"), gate, rec ? rec : "no recommendation");
    return buf;
}

/* ======================================================================
 *  Printing one report
 * ====================================================================== */

/* A number with 4 decimals, or "-" when not measured. */
static const char *
s_num (double v, char *buf, size_t len)
{
    if (isnan (v) || isinf (v))
        snprintf (buf, len, "-");
    else
        snprintf (buf, len, "%.4f", v);
    return buf;
}

/* A name cut to the column (names are user data: no width surprises). */
static void
s_cut (const char *s, char *buf, size_t width)
{
    size_t n = strlen (s);
    if (n > width) {
        memcpy (buf, s, width - 1);
        buf [width - 1] = '~';
        buf [width] = '\0';
    }
    else
        memcpy (buf, s, n + 1);
}

static const char *
s_class_name (const cJSON *per_class, int idx, char *buf, size_t len)
{
    const cJSON *row = cJSON_GetArrayItem (per_class, idx);
    const cJSON *name = row ? cJSON_GetObjectItemCaseSensitive (row, "name") : NULL;
    if (cJSON_IsString (name))
        snprintf (buf, len, "%s", name->valuestring);
    else
        snprintf (buf, len, "%d", idx);
    return buf;
}

static double
s_item_number (const cJSON *obj, const char *key)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive (obj, key);
    return cJSON_IsNumber (n) ? n->valuedouble : NAN;
}

static void
s_print_prf_table (FILE *out, const cJSON *sec, const char *per_key,
                   const ty_report_print_opts_t *o)
{
    const cJSON *per = cJSON_GetObjectItemCaseSensitive (sec, per_key);
    int n = cJSON_GetArraySize (per);
    size_t max = o->max_classes ? o->max_classes : TY_REPORT_TOP_CLASSES;
    /* many classes: the ones with most support, then the worst F1 are what a reader needs */
    int *order = malloc ((size_t) (n > 0 ? n : 1) * sizeof *order);
    if (!order)
        return;
    for (int i = 0; i < n; i++)
        order [i] = i;
    int shown = n;
    if (!o->all_classes && (size_t) n > max) {
        /* selection by support, descending, stable */
        for (int i = 0; i < (int) max; i++) {
            int best = i;
            for (int j = i + 1; j < n; j++) {
                double sj = s_item_number (cJSON_GetArrayItem (per, order [j]), "support");
                double sb = s_item_number (cJSON_GetArrayItem (per, order [best]), "support");
                if (sj > sb)
                    best = j;
            }
            int t = order [i];
            order [i] = order [best];
            order [best] = t;
        }
        shown = (int) max;
        /* keep them in class order for reading */
        for (int i = 1; i < shown; i++)
            for (int j = i; j > 0 && order [j - 1] > order [j]; j--) {
                int t = order [j];
                order [j] = order [j - 1];
                order [j - 1] = t;
            }
    }
    fprintf (out, "  %-*s %9s %9s %9s %9s\n", S_NAME_COL, "class", "precision", "recall",
             "f1", "support");
    char name [256], cut [S_NAME_COL + 1], a [32], b [32], c [32];
    for (int i = 0; i < shown; i++) {
        const cJSON *row = cJSON_GetArrayItem (per, order [i]);
        s_class_name (per, order [i], name, sizeof name);
        s_cut (name, cut, S_NAME_COL);
        fprintf (out, "  %-*s %9s %9s %9s %9.0f\n", S_NAME_COL, cut,
                 s_num (s_item_number (row, "precision"), a, sizeof a),
                 s_num (s_item_number (row, "recall"), b, sizeof b),
                 s_num (s_item_number (row, "f1"), c, sizeof c),
                 s_item_number (row, "support"));
    }
    if (shown < n)
        fprintf (out, "  ... %d more classes (--all-classes shows every one)\n", n - shown);
    static const char *const avgs [] = { "macro", "micro", "weighted" };
    for (size_t i = 0; i < sizeof avgs / sizeof avgs [0]; i++) {
        const cJSON *avg = cJSON_GetObjectItemCaseSensitive (sec, avgs [i]);
        if (!avg)
            continue;
        char label [32];
        snprintf (label, sizeof label, "%s avg", avgs [i]);
        fprintf (out, "  %-*s %9s %9s %9s\n", S_NAME_COL, label,
                 s_num (s_item_number (avg, "precision"), a, sizeof a),
                 s_num (s_item_number (avg, "recall"), b, sizeof b),
                 s_num (s_item_number (avg, "f1"), c, sizeof c));
    }
    free (order);
}

static void
s_print_confusion (FILE *out, const cJSON *cls, const ty_report_print_opts_t *o)
{
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive (cls, "confusion_matrix");
    const cJSON *per = cJSON_GetObjectItemCaseSensitive (cls, "per_class");
    int k = cJSON_GetArraySize (cm);
    if (k == 0)
        return;
    size_t max = o->max_classes ? o->max_classes : TY_REPORT_TOP_CLASSES;
    int *pick = malloc ((size_t) k * sizeof *pick);
    if (!pick)
        return;
    int n = 0;
    if ((size_t) k <= max) {
        for (int i = 0; i < k; i++)
            pick [n++] = i;
    }
    else {
        /* the classes with most support, in class order */
        char *taken = calloc ((size_t) k, 1);
        if (!taken) {
            free (pick);
            return;
        }
        for (size_t r = 0; r < max; r++) {
            int best = -1;
            double bs = -1;
            for (int i = 0; i < k; i++) {
                double s = s_item_number (cJSON_GetArrayItem (per, i), "support");
                if (!taken [i] && s > bs) {
                    bs = s;
                    best = i;
                }
            }
            taken [best] = 1;
        }
        for (int i = 0; i < k; i++)
            if (taken [i])
                pick [n++] = i;
        free (taken);
    }
    fprintf (out, "\nConfusion matrix (rows = actual, columns = predicted%s)\n",
             n < k ? "; the classes with most samples" : "");
    char name [256], cut [S_NAME_COL + 1], hdr [S_CELL_COL + 1];
    fprintf (out, "  %-*s", S_NAME_COL, "");
    for (int j = 0; j < n; j++) {
        s_class_name (per, pick [j], name, sizeof name);
        s_cut (name, hdr, S_CELL_COL - 1);
        fprintf (out, " %*s", S_CELL_COL - 1, hdr);
    }
    fprintf (out, "\n");
    for (int i = 0; i < n; i++) {
        s_class_name (per, pick [i], name, sizeof name);
        s_cut (name, cut, S_NAME_COL);
        fprintf (out, "  %-*s", S_NAME_COL, cut);
        const cJSON *row = cJSON_GetArrayItem (cm, pick [i]);
        for (int j = 0; j < n; j++) {
            const cJSON *v = cJSON_GetArrayItem (row, pick [j]);
            fprintf (out, " %*.0f", S_CELL_COL - 1, cJSON_IsNumber (v) ? v->valuedouble : 0.0);
        }
        fprintf (out, "\n");
    }
    free (pick);

    const cJSON *top = cJSON_GetObjectItemCaseSensitive (cls, "top_confusions");
    int nt = cJSON_GetArraySize (top);
    if (nt == 0)
        return;
    fprintf (out, "\nMost common confusions (actual -> predicted)\n");
    for (int i = 0; i < nt && i < TY_REPORT_TOP_CONFUSIONS; i++) {
        const cJSON *t = cJSON_GetArrayItem (top, i);
        char an [256], pn [256];
        s_class_name (per, (int) s_item_number (t, "actual"), an, sizeof an);
        s_class_name (per, (int) s_item_number (t, "predicted"), pn, sizeof pn);
        fprintf (out, "  %s -> %s  %.0f\n", an, pn, s_item_number (t, "count"));
    }
}

static void
s_print_classification (FILE *out, const cJSON *doc, const ty_report_print_opts_t *o)
{
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive (doc, "classification");
    char a [32], b [32], c [32], d [32], e [32];
    const char *auc_kind = ty_report_string (doc, "classification.roc_auc_kind");
    double auc = ty_report_number (doc, "classification.roc_auc");
    double auc_def = ty_report_number (doc, "classification.roc_auc_defined");
    fprintf (out, "Accuracy %s   macro F1 %s   weighted F1 %s   log loss %s   ROC AUC%s %s\n",
             s_num (ty_report_number (doc, "classification.accuracy"), a, sizeof a),
             s_num (ty_report_number (doc, "classification.macro.f1"), b, sizeof b),
             s_num (ty_report_number (doc, "classification.weighted.f1"), c, sizeof c),
             s_num (ty_report_number (doc, "classification.log_loss"), d, sizeof d),
             auc_kind && !strcmp (auc_kind, "ovr_macro") ? " (one-vs-rest)" : "",
             s_num (isnan (auc) ? auc_def : auc, e, sizeof e));
    if (isnan (auc) && !isnan (auc_def))
        fprintf (out, "  (ROC AUC over the classes present in the split only)\n");
    double share = ty_report_number (doc, "classification.high_conf_share");
    if (!isnan (share))
        fprintf (out, "High confidence (top p >= %.2f): %.1f %% of predictions\n",
                 ty_report_number (doc, "classification.high_conf_threshold"), share * 100.0);
    fprintf (out, "\nPer class\n");
    s_print_prf_table (out, cls, "per_class", o);
    s_print_confusion (out, cls, o);
}

static void
s_print_multilabel (FILE *out, const cJSON *doc, const ty_report_print_opts_t *o)
{
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive (doc, "multilabel");
    char a [32], b [32], c [32], d [32];
    fprintf (out, "Subset accuracy %s   hamming loss %s   micro F1 %s   macro F1 %s"
             "   (label threshold %.2f)\n",
             s_num (ty_report_number (doc, "multilabel.subset_accuracy"), a, sizeof a),
             s_num (ty_report_number (doc, "multilabel.hamming_loss"), b, sizeof b),
             s_num (ty_report_number (doc, "multilabel.micro.f1"), c, sizeof c),
             s_num (ty_report_number (doc, "multilabel.macro.f1"), d, sizeof d),
             ty_report_number (doc, "multilabel.threshold"));
    fprintf (out, "\nPer label\n");
    s_print_prf_table (out, ml, "per_label", o);
}

static void
s_print_regression (FILE *out, const cJSON *doc)
{
    char a [32], b [32], c [32], d [32];
    fprintf (out, "MSE %s   RMSE %s   MAE %s   R2 %s\n",
             s_num (ty_report_number (doc, "regression.mse"), a, sizeof a),
             s_num (ty_report_number (doc, "regression.rmse"), b, sizeof b),
             s_num (ty_report_number (doc, "regression.mae"), c, sizeof c),
             s_num (ty_report_number (doc, "regression.r2"), d, sizeof d));
}

static void
s_print_ranking (FILE *out, const cJSON *doc)
{
    char a [32], b [32];
    double k = ty_report_number (doc, "ranking.k");
    fprintf (out, "Hit rate@%.0f %s   NDCG@%.0f %s   (%.0f users, 1 held-out positive among"
             " %.0f sampled negatives each)\n",
             k, s_num (ty_report_number (doc, "ranking.hit_rate"), a, sizeof a),
             k, s_num (ty_report_number (doc, "ranking.ndcg"), b, sizeof b),
             ty_report_number (doc, "ranking.n_users"),
             ty_report_number (doc, "ranking.n_negatives"));
}

static void
s_print_latency (FILE *out, const cJSON *doc)
{
    if (!cJSON_GetObjectItemCaseSensitive (doc, "latency"))
        return;
    fprintf (out, "\nLatency (one sample per call, %.0f calls after %.0f warm-up calls)\n",
             ty_report_number (doc, "latency.single.n"), ty_report_number (doc, "latency.warmup"));
    fprintf (out, "  mean %.3f ms   p50 %.3f   p95 %.3f   p99 %.3f   max %.3f\n",
             ty_report_number (doc, "latency.single.mean_ms"),
             ty_report_number (doc, "latency.single.p50_ms"),
             ty_report_number (doc, "latency.single.p95_ms"),
             ty_report_number (doc, "latency.single.p99_ms"),
             ty_report_number (doc, "latency.single.max_ms"));
    double bt = ty_report_number (doc, "latency.batch_throughput_per_s");
    double bs = ty_report_number (doc, "latency.batch_size");
    if (isnan (bt)) {
        bt = ty_report_number (doc, "inference.samples_per_s");
        bs = ty_report_number (doc, "inference.batch_size");
    }
    const char *scope = ty_report_string (doc, "latency.peak_rss_scope");
    fprintf (out, "  batch throughput %.0f predictions/s (batches of %.0f)   peak RSS %.1f MiB%s\n",
             bt, bs, ty_report_number (doc, "latency.peak_rss_mb"),
             scope && !strcmp (scope, "process") ? " (process lifetime)" : "");
}

static void
s_print_gate (FILE *out, const cJSON *doc)
{
    const cJSON *gate = cJSON_GetObjectItemCaseSensitive (doc, "gate");
    if (!gate || cJSON_IsNull (gate)) {
        fprintf (out, "\nQuality gate: none given\n");
        return;
    }
    const char *verdict = ty_report_string (gate, "verdict");
    fprintf (out, "\nQuality gate: %s\n", verdict ? verdict : "?");
    const cJSON *checks = cJSON_GetObjectItemCaseSensitive (gate, "checks");
    fprintf (out, "  %-26s %12s %3s %10s  %s\n", "check", "measured", "", "threshold", "status");
    const cJSON *c;
    cJSON_ArrayForEach (c, checks) {
        char m [32], t [32];
        const char *name = ty_report_string (c, "check");
        const char *op = ty_report_string (c, "op");
        const char *status = ty_report_string (c, "status");
        const char *note = ty_report_string (c, "note");
        double cls = s_item_number (c, "class");
        fprintf (out, "  %-26s %12s %3s %10s  %s", name ? name : "?",
                 s_num (s_item_number (c, "measured"), m, sizeof m), op ? op : "",
                 s_num (s_item_number (c, "threshold"), t, sizeof t), status ? status : "?");
        if (!isnan (cls)) {
            char cname [256];
            const cJSON *per = s_get (doc, "classification.per_class");
            if (!per)
                per = s_get (doc, "multilabel.per_label");
            s_class_name (per, (int) cls, cname, sizeof cname);
            fprintf (out, "  (worst: %s", cname);
            double nf = s_item_number (c, "n_failing");
            if (!isnan (nf) && nf > 0)
                fprintf (out, "; %.0f below", nf);
            fprintf (out, ")");
        }
        if (note)
            fprintf (out, "  %s", note);
        fprintf (out, "\n");
    }
}

static void
s_print_analysis (FILE *out, const cJSON *doc)
{
    const char *rec = ty_report_string (doc, "analysis.recommendation");
    fprintf (out, "\nRecommendation: %s\n", rec ? rec : "-");
    const cJSON *obs = s_get (doc, "analysis.observations");
    const cJSON *o;
    cJSON_ArrayForEach (o, obs) {
        const char *sev = ty_report_string (o, "severity");
        const char *msg = ty_report_string (o, "message");
        fprintf (out, "  [%s] %s\n", sev ? sev : "?", msg ? msg : "");
    }
}

int
ty_report_print (FILE *out, const cJSON *doc, const ty_report_print_opts_t *opts)
{
    ty_report_print_opts_t defaults = { 0, 0 };
    const ty_report_print_opts_t *o = opts ? opts : &defaults;
    const char *task = doc ? ty_report_string (doc, "task") : NULL;
    if (!task)
        return TY_EPROTO;
    char model [128], ds [128];
    s_spec (doc, "model", model, sizeof model);
    s_spec (doc, "dataset", ds, sizeof ds);
    const char *kind = ty_report_string (doc, "model.kind");
    const char *split = ty_report_string (doc, "dataset.split");
    fprintf (out, "Model    %s (%s, %s)\n", model, kind ? kind : "?", task);
    fprintf (out, "Dataset  %s, split %s", ds, split ? split : "?");
    double fold = ty_report_number (doc, "dataset.fold");
    if (!isnan (fold))
        fprintf (out, " fold %.0f of %.0f", fold, ty_report_number (doc, "dataset.folds"));
    fprintf (out, ", %.0f samples", ty_report_number (doc, "n_samples"));
    double skipped = ty_report_number (doc, "skipped");
    if (!isnan (skipped) && skipped > 0)
        fprintf (out, " (%.0f skipped)", skipped);
    fprintf (out, "\n");
    const char *job = ty_report_string (doc, "job_id");
    if (job && *job)
        fprintf (out, "Job      %s\n", job);
    fprintf (out, "\n");
    if (!strcmp (task, "classification"))
        s_print_classification (out, doc, o);
    else if (!strcmp (task, "multilabel"))
        s_print_multilabel (out, doc, o);
    else if (!strcmp (task, "regression"))
        s_print_regression (out, doc);
    else if (!strcmp (task, "ranking"))
        s_print_ranking (out, doc);
    const char *base = ty_report_string (doc, "baseline.model");
    if (base)
        fprintf (out, "\nBaseline %s: accuracy %.4f\n", base,
                 ty_report_number (doc, "baseline.accuracy"));
    s_print_latency (out, doc);
    s_print_gate (out, doc);
    s_print_analysis (out, doc);
    return TY_OK;
}

/* ======================================================================
 *  Side by side
 * ====================================================================== */

typedef struct {
    const char *label;
    const char *path;
    int         higher_is_better;   /* 1, 0 (lower), -1 (neither) */
    int         decimals;
} s_row_t;

static const s_row_t s_cmp_rows [] = {
    { "accuracy",               "classification.accuracy",        1, 4 },
    { "macro F1",               "classification.macro.f1",        1, 4 },
    { "weighted F1",            "classification.weighted.f1",     1, 4 },
    { "macro precision",        "classification.macro.precision", 1, 4 },
    { "macro recall",           "classification.macro.recall",    1, 4 },
    { "log loss",               "classification.log_loss",        0, 4 },
    { "ROC AUC",                "classification.roc_auc",         1, 4 },
    { "high-confidence share",  "classification.high_conf_share", 1, 4 },
    { "subset accuracy",        "multilabel.subset_accuracy",     1, 4 },
    { "hamming loss",           "multilabel.hamming_loss",        0, 4 },
    { "micro F1",               "multilabel.micro.f1",            1, 4 },
    { "macro F1",               "multilabel.macro.f1",            1, 4 },
    { "MSE",                    "regression.mse",                 0, 4 },
    { "RMSE",                   "regression.rmse",                0, 4 },
    { "MAE",                    "regression.mae",                 0, 4 },
    { "R2",                     "regression.r2",                  1, 4 },
    { "hit rate@K",             "ranking.hit_rate",               1, 4 },
    { "NDCG@K",                 "ranking.ndcg",                   1, 4 },
    { "samples",                "n_samples",                     -1, 0 },
    { "latency mean (ms)",      "latency.single.mean_ms",         0, 3 },
    { "latency p50 (ms)",       "latency.single.p50_ms",          0, 3 },
    { "latency p95 (ms)",       "latency.single.p95_ms",          0, 3 },
    { "latency p99 (ms)",       "latency.single.p99_ms",          0, 3 },
    { "batch predictions/s",    "inference.samples_per_s",        1, 0 },
    { "peak RSS (MiB)",         "latency.peak_rss_mb",            0, 1 },
};

static void
s_cmp_line (FILE *out, const char *label, double a, double b, int hib, int decimals)
{
    char sa [32], sb [32];
    if (isnan (a))
        snprintf (sa, sizeof sa, "-");
    else
        snprintf (sa, sizeof sa, "%.*f", decimals, a);
    if (isnan (b))
        snprintf (sb, sizeof sb, "-");
    else
        snprintf (sb, sizeof sb, "%.*f", decimals, b);
    fprintf (out, "  %-*s %*s %*s", S_CMP_LABEL, label, S_CMP_COL, sa, S_CMP_COL, sb);
    if (!isnan (a) && !isnan (b)) {
        double d = b - a;
        const char *mark = "";
        if (hib >= 0 && d != 0)
            mark = ((d > 0) == (hib == 1)) ? "  better" : "  worse";
        fprintf (out, " %+*.*f%s", S_CMP_COL, decimals, d, mark);
    }
    fprintf (out, "\n");
}

int
ty_report_print_compare (FILE *out, const cJSON *a, const cJSON *b,
                         const ty_report_print_opts_t *opts)
{
    ty_report_print_opts_t defaults = { 0, 0 };
    const ty_report_print_opts_t *o = opts ? opts : &defaults;
    if (!a || !b || !ty_report_string (a, "task") || !ty_report_string (b, "task"))
        return TY_EPROTO;
    char ma [128], mb [128], da [128], db [128];
    s_spec (a, "model", ma, sizeof ma);
    s_spec (b, "model", mb, sizeof mb);
    s_spec (a, "dataset", da, sizeof da);
    s_spec (b, "dataset", db, sizeof db);
    fprintf (out, "  %-*s %*s %*s %*s\n", S_CMP_LABEL, "", S_CMP_COL, ma, S_CMP_COL, mb,
             S_CMP_COL, "change");
    const char *sa = ty_report_string (a, "dataset.split");
    const char *sb = ty_report_string (b, "dataset.split");
    fprintf (out, "  %-*s %*s %*s\n", S_CMP_LABEL, "dataset", S_CMP_COL, da, S_CMP_COL, db);
    fprintf (out, "  %-*s %*s %*s\n", S_CMP_LABEL, "split", S_CMP_COL, sa ? sa : "?",
             S_CMP_COL, sb ? sb : "?");
    if (strcmp (da, db) || (sa && sb && strcmp (sa, sb)))
        fprintf (out, "  (evaluated on different data: the figures are not directly comparable)\n");
    const char *ta = ty_report_string (a, "task"), *tb = ty_report_string (b, "task");
    if (strcmp (ta, tb))
        fprintf (out, "  (different tasks: %s vs %s)\n", ta, tb);
    fprintf (out, "\n");
    for (size_t i = 0; i < sizeof s_cmp_rows / sizeof s_cmp_rows [0]; i++) {
        double va = ty_report_number (a, s_cmp_rows [i].path);
        double vb = ty_report_number (b, s_cmp_rows [i].path);
        if (isnan (va) && isnan (vb))
            continue;
        s_cmp_line (out, s_cmp_rows [i].label, va, vb, s_cmp_rows [i].higher_is_better,
                    s_cmp_rows [i].decimals);
    }
    const char *ga = ty_report_string (a, "gate.verdict"), *gb = ty_report_string (b, "gate.verdict");
    fprintf (out, "  %-*s %*s %*s\n", S_CMP_LABEL, "quality gate", S_CMP_COL, ga ? ga : "-",
             S_CMP_COL, gb ? gb : "-");
    const char *ra = ty_report_string (a, "analysis.recommendation");
    const char *rb = ty_report_string (b, "analysis.recommendation");
    fprintf (out, "  %-*s %*s %*s\n", S_CMP_LABEL, "recommendation", S_CMP_COL,
             ra ? ra : "-", S_CMP_COL, rb ? rb : "-");

    /* per-class F1 matched by class name: label maps may differ between versions */
    const char *sec = !strcmp (ta, "multilabel") ? "multilabel" : "classification";
    const char *per_key = !strcmp (ta, "multilabel") ? "per_label" : "per_class";
    const cJSON *pa = cJSON_GetObjectItemCaseSensitive (
        cJSON_GetObjectItemCaseSensitive (a, sec), per_key);
    const cJSON *pb = cJSON_GetObjectItemCaseSensitive (
        cJSON_GetObjectItemCaseSensitive (b, sec), per_key);
    int na = cJSON_GetArraySize (pa), nb = cJSON_GetArraySize (pb);
    if (na == 0 && nb == 0)
        return TY_OK;
    size_t max = o->max_classes ? o->max_classes : TY_REPORT_TOP_CLASSES;
    fprintf (out, "\nF1 per %s\n", per_key [4] == 'c' ? "class" : "label");
    int shown = 0;
    char name [256], cut [S_CMP_LABEL + 1];
    for (int i = 0; i < na; i++) {
        if (!o->all_classes && (size_t) shown >= max)
            break;
        s_class_name (pa, i, name, sizeof name);
        double fb = NAN;
        for (int j = 0; j < nb; j++) {
            char other [256];
            if (!strcmp (s_class_name (pb, j, other, sizeof other), name)) {
                fb = s_item_number (cJSON_GetArrayItem (pb, j), "f1");
                break;
            }
        }
        s_cut (name, cut, S_CMP_LABEL);
        s_cmp_line (out, cut, s_item_number (cJSON_GetArrayItem (pa, i), "f1"), fb, 1, 4);
        shown++;
    }
    /* classes only the second one knows */
    for (int j = 0; j < nb; j++) {
        if (!o->all_classes && (size_t) shown >= max)
            break;
        s_class_name (pb, j, name, sizeof name);
        int found = 0;
        for (int i = 0; i < na && !found; i++) {
            char other [256];
            found = !strcmp (s_class_name (pa, i, other, sizeof other), name);
        }
        if (found)
            continue;
        s_cut (name, cut, S_CMP_LABEL);
        s_cmp_line (out, cut, NAN, s_item_number (cJSON_GetArrayItem (pb, j), "f1"), 1, 4);
        shown++;
    }
    if (!o->all_classes && (size_t) shown >= max && (na > shown || nb > shown))
        fprintf (out, "  ... more (--all-classes shows every one)\n");
    return TY_OK;
}

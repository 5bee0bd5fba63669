/*  bench_infer_textclf: the text model at prediction time, one sample at a
 *  time, in libtrainyard-infer (FP32 and INT8 + pruning) and in libtorch
 *  (the shim's predict, batch of 1, ids from ty_vocab_encode), on the same
 *  test lines. Trains the model itself (fastText's settings, as
 *  bench_train_textclf) on DIR/train.ft.txt, writes the portable files
 *  into --out, and times DIR/test.ft.txt and e-mail-length texts (test
 *  lines joined to >= 175 words; also written to OUT/email.ft.txt so
 *  bench/infer can time fastText on them).
 *
 *  bench_infer_textclf [--data DIR] [--out DIR] [--epochs N] [--dim N]
 *                      [--ngrams N] [--bucket N] [--lr X] [--max-rows N]
 *                      [--retrain-epochs N]  (default: --epochs; 0: none)
 *  Prints "key value" lines (bench/infer parses them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ty_error.h"
#include "ty_infer.h"
#include "ty_negsample.h"
#include "ty_portable.h"
#include "ty_retrain.h"
#include "ty_tokenize.h"
#include "ty_torch.h"

#define LABEL_PREFIX   "__label__"
#define LINE_MAX_BYTES (1 << 20)
#define EMAIL_WORDS    175     /* the e-mail length */
#define BATCH          8       /* bench_train_textclf's default */
#define ERRLEN         256

typedef struct {
    char **text;
    int64_t *label;
    size_t n, cap;
} s_docs_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
s_xrealloc (void *p, size_t n)
{
    p = realloc (p, n);
    if (!p) {
        fprintf (stderr, "out of memory\n");
        exit (1);
    }
    return p;
}

/* "__label__x [__label__y] text" lines; labels added to v when adding. */
static void
s_read (const char *path, ty_vocab_t *v, bool adding, s_docs_t *d)
{
    FILE *f = fopen (path, "r");
    if (!f) {
        perror (path);
        exit (1);
    }
    char *line = s_xrealloc (NULL, LINE_MAX_BYTES);
    memset (d, 0, sizeof *d);
    while (fgets (line, LINE_MAX_BYTES, f)) {
        line[strcspn (line, "\n")] = '\0';
        if (strncmp (line, LABEL_PREFIX, strlen (LABEL_PREFIX)) != 0)
            continue;
        char *label = line + strlen (LABEL_PREFIX), *text = strchr (label, ' ');
        if (!text)
            continue;
        *text++ = '\0';
        while (strncmp (text, LABEL_PREFIX, strlen (LABEL_PREFIX)) == 0) {
            char *sp = strchr (text, ' ');
            text = sp ? sp + 1 : text + strlen (text);
        }
        if (d->n == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 1024;
            d->text = s_xrealloc (d->text, d->cap * sizeof *d->text);
            d->label = s_xrealloc (d->label, d->cap * sizeof *d->label);
        }
        d->label[d->n] = adding ? ty_vocab_label_require (v, label) : ty_vocab_label_id (v, label);
        d->text[d->n] = strdup (text);
        if (adding)
            ty_vocab_add_text (v, text, strlen (text));
        d->n++;
    }
    free (line);
    fclose (f);
}

/* Test lines joined until each text has >= EMAIL_WORDS words; the label
 * is the first line's. */
static void
s_emails (const s_docs_t *t, s_docs_t *e, size_t want)
{
    memset (e, 0, sizeof *e);
    e->cap = want;
    e->text = s_xrealloc (NULL, want * sizeof *e->text);
    e->label = s_xrealloc (NULL, want * sizeof *e->label);
    size_t k = 0;
    for (size_t i = 0; i < want; i++) {
        size_t cap = 4096, len = 0, words = 0;
        char *s = s_xrealloc (NULL, cap);
        e->label[i] = t->label[k % t->n];
        while (words < EMAIL_WORDS) {
            const char *l = t->text[k++ % t->n];
            size_t n = strlen (l);
            if (len + n + 2 > cap) {
                cap = 2 * (len + n + 2);
                s = s_xrealloc (s, cap);
            }
            memcpy (s + len, l, n);
            len += n;
            s[len++] = ' ';
            for (const char *p = l; *p; p++)
                words += *p != ' ' && (p == l || p[-1] == ' ');
        }
        s[len ? len - 1 : 0] = '\0';
        e->text[i] = s;
    }
    e->n = want;
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double p50_us, p99_us, lines_per_s, accuracy;
} s_fig_t;

typedef int (s_predict_fn) (void *arg, const char *text, float *out, size_t width);

/* One call per text, each timed; lines/s over the sum of the calls of the
 * fastest pass (the best of reps: on a shared machine the other passes
 * carry other processes' time slices; bench/infer takes fastText's best
 * run too). */
static s_fig_t
s_time (s_predict_fn *fn, void *arg, const s_docs_t *d, size_t width, size_t reps)
{
    double *lat = s_xrealloc (NULL, d->n * reps * sizeof *lat), fastest = 0;
    float *out = s_xrealloc (NULL, width * sizeof *out);
    size_t correct = 0, n = 0;
    for (size_t r = 0; r < reps; r++) {
        double total = 0;
        for (size_t i = 0; i < d->n; i++) {
            double t0 = s_now ();
            if (fn (arg, d->text[i], out, width) != 0) {
                fprintf (stderr, "predict failed\n");
                exit (1);
            }
            double dt = s_now () - t0;
            lat[n++] = dt;
            total += dt;
            if (r == 0) {
                size_t best = 0;
                for (size_t k = 1; k < width; k++)
                    if (out[k] > out[best])
                        best = k;
                correct += (int64_t) best == d->label[i];
            }
        }
        if (r == 0 || total < fastest)
            fastest = total;
    }
    qsort (lat, n, sizeof *lat, s_cmp_double);
    s_fig_t f = {lat[n / 2] * 1e6, lat[(size_t) (n * 0.99)] * 1e6, (double) d->n / fastest,
                 (double) correct / (double) d->n};
    free (lat);
    free (out);
    return f;
}

static int
s_infer_fn (void *arg, const char *text, float *out, size_t width)
{
    return ty_infer_predict_text (arg, text, strlen (text), out, width);
}

typedef struct {
    ty_torch_model_t *m;
    const ty_vocab_t *v;
    ty_idbuf_t ids;
} s_torch_t;

static int
s_torch_fn (void *arg, const char *text, float *out, size_t width)
{
    s_torch_t *t = arg;
    t->ids.n = 0;
    if (ty_vocab_encode (t->v, text, strlen (text), &t->ids) != TY_OK)
        return -1;
    int64_t off = 0;
    ty_torch_batch_t b = {0};
    b.n = 1;
    b.ids = t->ids.ids;
    b.nids = (int64_t) t->ids.n;
    b.offsets = &off;
    return ty_torch_predict (t->m, &b, out, width);
}

/* The encoded train lines, served to ty_retrain as the convert job's
 * ty_batch set would serve them. */
typedef struct {
    const ty_idbuf_t *all;
    const int64_t *start, *label;
    int64_t *ids, offs[BATCH], lab[BATCH];
} s_src_t;

static int
s_gather (void *arg, const uint64_t *idx, size_t n, ty_torch_batch_t *b)
{
    s_src_t *s = arg;
    int64_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t a = s->start[idx[i]], e = s->start[idx[i] + 1];
        s->offs[i] = k;
        memcpy (s->ids + k, s->all->ids + a, (size_t) (e - a) * sizeof *s->ids);
        k += e - a;
        s->lab[i] = s->label[idx[i]] < 0 ? 0 : s->label[idx[i]];
    }
    memset (b, 0, sizeof *b);
    b->n = (int64_t) n;
    b->ids = s->ids;
    b->nids = k;
    b->offsets = s->offs;
    b->labels = s->lab;
    return TY_OK;
}

static void
s_print (const char *impl, const char *set, s_fig_t f)
{
    printf ("%s.%s.p50_us %.2f\n%s.%s.p99_us %.2f\n%s.%s.lines_per_s %.0f\n"
            "%s.%s.accuracy %.4f\n", impl, set, f.p50_us, impl, set, f.p99_us, impl, set,
            f.lines_per_s, impl, set, f.accuracy);
}

static long
s_size (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (long) st.st_size : -1;
}

int
main (int argc, char **argv)
{
    const char *data = "../shared/data/fortunes", *outdir = ".";
    int epochs = 25, ngrams = 2;
    int64_t dim = 50, bucket = 2000000;
    uint64_t max_rows = 100000;   /* fastText's -cutoff in the run */
    double lr = 0.5;
    int retrain_epochs = -1;   /* -1: the training epochs; 0: no retraining */
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *val = argv[i + 1];
        if (!strcmp (k, "--data")) data = val;
        else if (!strcmp (k, "--out")) outdir = val;
        else if (!strcmp (k, "--epochs")) epochs = atoi (val);
        else if (!strcmp (k, "--dim")) dim = atoll (val);
        else if (!strcmp (k, "--ngrams")) ngrams = atoi (val);
        else if (!strcmp (k, "--bucket")) bucket = atoll (val);
        else if (!strcmp (k, "--lr")) lr = atof (val);
        else if (!strcmp (k, "--max-rows")) max_rows = strtoull (val, NULL, 10);
        else if (!strcmp (k, "--retrain-epochs")) retrain_epochs = atoi (val);
        else {
            fprintf (stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    char path[4096];
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);   /* fastText's: white space, case kept, eos */
    o.word_ngrams = ngrams;
    o.bucket = bucket;
    ty_vocab_t *v = ty_vocab_new (&o);
    s_docs_t train, test, email;
    snprintf (path, sizeof path, "%s/train.ft.txt", data);
    s_read (path, v, true, &train);
    if (ty_vocab_finalize (v) != TY_OK)
        return 1;
    /* Label ids are final now: read the labels again. */
    for (size_t i = 0; i < train.n; i++)
        free (train.text[i]);
    free (train.text);
    free (train.label);
    s_read (path, v, false, &train);
    snprintf (path, sizeof path, "%s/test.ft.txt", data);
    s_read (path, v, false, &test);
    s_emails (&test, &email, test.n / 4 > 0 ? test.n / 4 : 1);

    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    p.textclf.nrows = ty_vocab_nrows (v);
    p.textclf.dim = dim;
    p.textclf.nlabels = ty_vocab_nlabels (v);
    p.lr = lr;
    p.total_steps = (int64_t) epochs * (int64_t) ((train.n + BATCH - 1) / BATCH);
    p.threads = 1;
    char err[ERRLEN];
    ty_torch_model_t *m = NULL;
    if (ty_torch_new (&p, &m, err, sizeof err) != TY_OK) {
        fprintf (stderr, "ty_torch_new: %s\n", err);
        return 1;
    }
    /* Training: encoded once, shuffled per epoch, batches of BATCH. */
    ty_idbuf_t all;
    ty_idbuf_init (&all);
    int64_t *start = s_xrealloc (NULL, (train.n + 1) * sizeof *start);
    for (size_t i = 0; i < train.n; i++) {
        start[i] = (int64_t) all.n;
        ty_vocab_encode (v, train.text[i], strlen (train.text[i]), &all);
    }
    start[train.n] = (int64_t) all.n;
    size_t *idx = s_xrealloc (NULL, train.n * sizeof *idx);
    int64_t *bids = s_xrealloc (NULL, (all.n + 1) * sizeof *bids), boff[BATCH], blab[BATCH];
    for (size_t i = 0; i < train.n; i++)
        idx[i] = i;
    double t0 = s_now ();
    for (int e = 0; e < epochs; e++) {
        uint64_t rng = 1000003u + (uint64_t) e;
        for (size_t i = train.n - 1; i > 0; i--) {
            size_t j = (size_t) ty_negsample_below (&rng, i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        for (size_t s = 0; s < train.n; s += BATCH) {
            size_t n = train.n - s < BATCH ? train.n - s : BATCH;
            int64_t nids = 0;
            for (size_t k = 0; k < n; k++) {
                size_t d = idx[s + k];
                int64_t len = start[d + 1] - start[d];
                boff[k] = nids;
                memcpy (bids + nids, all.ids + start[d], (size_t) len * sizeof *bids);
                nids += len;
                blab[k] = train.label[d] < 0 ? 0 : train.label[d];
            }
            ty_torch_batch_t b = {0};
            b.n = (int64_t) n;
            b.ids = bids;
            b.nids = nids;
            b.offsets = boff;
            b.labels = blab;
            if (ty_torch_train_step (m, &b, NULL) != TY_OK) {
                fprintf (stderr, "train: %s\n", ty_torch_errstr (m));
                return 1;
            }
        }
    }
    printf ("train_s %.1f\n", s_now () - t0);
    printf ("train_docs %zu\ntest_docs %zu\nemail_docs %zu\nlabels %lld\nrows %lld\n",
            train.n, test.n, email.n, (long long) ty_vocab_nlabels (v),
            (long long) ty_vocab_nrows (v));

    /* The portable files. */
    size_t nl = (size_t) ty_vocab_nlabels (v);
    const char **names = s_xrealloc (NULL, nl * sizeof *names);
    for (size_t i = 0; i < nl; i++)
        names[i] = ty_vocab_label_name (v, (int64_t) i);
    ty_portable_meta_t meta = {v, names, nl};
    /* The convert job's path for INT8 with max_rows: the kept rows (largest
     * norm) trained again, as fastText's quantize -retrain, for as many
     * epochs as the model had (retrain_epochs < 0: that many). */
    ty_retrain_result_t rr;
    memset (&rr, 0, sizeof rr);
    if (retrain_epochs != 0) {
        s_src_t src = {&all, start, train.label, bids, {0}, {0}};
        ty_retrain_opts_t ro;
        memset (&ro, 0, sizeof ro);
        ro.max_rows = max_rows;
        ro.epochs = retrain_epochs > 0 ? retrain_epochs : epochs;
        ro.batch_size = BATCH;
        ro.nsamples = train.n;
        ro.gather = s_gather;
        ro.arg = &src;
        t0 = s_now ();
        if (ty_retrain_textclf (m, &ro, &rr, err, sizeof err) != TY_OK) {
            fprintf (stderr, "retrain: %s\n", err);
            return 1;
        }
        printf ("retrain_s %.1f\nretrain_epochs %d\n", s_now () - t0, ro.epochs);
    }
    /* fp32; int8 pruned and retrained (the convert job's output); int8
     * pruned by norm only (no retraining: the earlier path). */
    static const char *impls[3] = {"fp32", "int8", "int8_norm"};
    ty_infer_model_t *im[3];
    for (int k = 0; k < 3; k++) {
        ty_portable_opts_t opts = {k ? TY_PORTABLE_INT8 : TY_PORTABLE_FP32, k ? max_rows : 0,
                                   NULL, 0};
        ty_torch_model_t *w = m;
        if (k == 1 && rr.model) {
            w = rr.model;
            opts.max_rows = 0;
            opts.rowmap = rr.rowmap;
            opts.rowmap_len = rr.nkept;
        }
        snprintf (path, sizeof path, "%s/model-%s.tym", outdir, impls[k]);
        t0 = s_now ();
        if (ty_portable_write_opts (w, &meta, &opts, path, err, sizeof err) != TY_OK
            || ty_infer_open (path, &im[k], err, sizeof err) != TY_INFER_OK) {
            fprintf (stderr, "%s: %s\n", path, err);
            return 1;
        }
        printf ("%s.write_s %.2f\n%s.size_bytes %ld\n", impls[k], s_now () - t0, impls[k],
                s_size (path));
    }
    ty_retrain_result_free (&rr);
    printf ("int8.kept_rows %lld\n", (long long) ty_infer_kept_rows (im[1]));
    /* The e-mails for fastText, in its format. */
    snprintf (path, sizeof path, "%s/email.ft.txt", outdir);
    FILE *f = fopen (path, "w");
    for (size_t i = 0; f && i < email.n; i++)
        fprintf (f, "__label__%s %s\n", names[email.label[i]], email.text[i]);
    if (f)
        fclose (f);

    /* Warm the mappings and caches once, then time: 5 passes over the
     * short test lines, 2 over the e-mails (p99 over all calls). */
    for (int k = 0; k < 3; k++) {
        (void) s_time (s_infer_fn, im[k], &test, nl, 1);
        s_print (impls[k], "short", s_time (s_infer_fn, im[k], &test, nl, 5));
        s_print (impls[k], "email", s_time (s_infer_fn, im[k], &email, nl, 2));
    }
    s_torch_t tt = {m, v, {NULL, 0, 0}};
    ty_idbuf_init (&tt.ids);
    (void) s_time (s_torch_fn, &tt, &test, nl, 1);
    s_print ("libtorch", "short", s_time (s_torch_fn, &tt, &test, nl, 2));
    s_print ("libtorch", "email", s_time (s_torch_fn, &tt, &email, nl, 1));
    ty_idbuf_free (&tt.ids);

    for (int k = 0; k < 3; k++)
        ty_infer_close (&im[k]);
    free (names);
    free (idx);
    free (bids);
    free (start);
    ty_idbuf_free (&all);
    s_docs_t *sets[3] = {&train, &test, &email};
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < sets[s]->n; i++)
            free (sets[s]->text[i]);
        free (sets[s]->text);
        free (sets[s]->label);
    }
    ty_torch_destroy (&m);
    ty_vocab_destroy (&v);
    return 0;
}

/*  bench_train_textclf: the textclf model of the libtorch shim on a
 *  fastText-format dataset (train.ft.txt / test.ft.txt, "__label__X text"
 *  per line), timed the way fastText reports itself: words (tokens incl.
 *  the end-of-line token) per second per thread, plus samples/s, s/epoch,
 *  test accuracy (P@1), peak RSS and the BLAS that ran. Tokenizing and
 *  encoding happen once before the clock starts, as fastText reads its
 *  input before training too.
 *
 *  bench_train_textclf [--data DIR] [--epochs N] [--dim N] [--ngrams N]
 *                      [--bucket N] [--lr X] [--threads N] [--batch N]
 *                      [--seed N] [--optim sgd|adam|adamw]
 *  Prints one "key value" line per figure (bench/train_compare parses it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ty_error.h"
#include "ty_negsample.h"
#include "ty_tokenize.h"
#include "ty_torch.h"

#define LABEL_PREFIX "__label__"
#define LINE_MAX_BYTES (1 << 20)

typedef struct {
    int64_t *ids;       /* all docs' ids back to back */
    int64_t *start;     /* ndocs + 1 */
    int64_t *label;
    int64_t ndocs, ntokens;
} s_set_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Splits "__label__x __label__y text" into the first label and the text. */
static char *
s_split_line (char *line, char **label)
{
    *label = NULL;
    char *p = line;
    while (strncmp (p, LABEL_PREFIX, strlen (LABEL_PREFIX)) == 0) {
        char *end = strchr (p, ' ');
        if (!*label)
            *label = p + strlen (LABEL_PREFIX);
        if (!end)
            return p + strlen (p);
        *end = '\0';
        p = end + 1;
    }
    return p;
}

/* Pass 1 (vocab == NULL after counting): count words and labels.
 * Pass 2: encode into set. */
static int
s_read (const char *path, ty_vocab_t *v, bool count, s_set_t *set)
{
    FILE *f = fopen (path, "r");
    if (!f) {
        perror (path);
        return -1;
    }
    char *line = malloc (LINE_MAX_BYTES);
    ty_idbuf_t ids;
    ty_idbuf_init (&ids);
    int64_t cap = 1024, n = 0;
    if (set) {
        set->start = malloc ((size_t) (cap + 1) * sizeof (int64_t));
        set->label = malloc ((size_t) cap * sizeof (int64_t));
        set->start[0] = 0;
        set->ntokens = 0;
    }
    ty_tok_opts_t o = *ty_vocab_opts (v);
    while (fgets (line, LINE_MAX_BYTES, f)) {
        line[strcspn (line, "\n")] = '\0';
        char *label;
        char *text = s_split_line (line, &label);
        if (!label)
            continue;
        if (count) {
            ty_vocab_label_require (v, label);
            ty_vocab_add_text (v, text, strlen (text));
            continue;
        }
        int64_t lid = ty_vocab_label_id (v, label);
        if (lid < 0)
            lid = 0;   /* a label unseen in training: counted as an error */
        if (n == cap) {
            cap *= 2;
            set->start = realloc (set->start, (size_t) (cap + 1) * sizeof (int64_t));
            set->label = realloc (set->label, (size_t) cap * sizeof (int64_t));
        }
        ty_vocab_encode (v, text, strlen (text), &ids);
        set->label[n] = lid;
        set->start[++n] = (int64_t) ids.n;
        /* Tokens as fastText counts them: words plus the end of line. */
        size_t pos = 0, tl;
        char tok[TY_TOK_MAX_BYTES + 1];
        while (ty_tok_next (&o, text, strlen (text), &pos, tok, &tl))
            set->ntokens++;
        set->ntokens += o.eos;
    }
    if (set) {
        set->ids = ids.ids;
        set->ndocs = n;
    }
    else
        ty_idbuf_free (&ids);
    free (line);
    fclose (f);
    return 0;
}

int
main (int argc, char **argv)
{
    const char *data = "../shared/data/fortunes";
    int epochs = 25, ngrams = 2, threads = 1, batch = 8;
    int64_t dim = 50, bucket = 2000000;
    double lr = 0.5;
    uint64_t seed = 1;
    const char *optim = "sgd";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *val = argv[i + 1];
        if (!strcmp (k, "--data")) data = val;
        else if (!strcmp (k, "--epochs")) epochs = atoi (val);
        else if (!strcmp (k, "--dim")) dim = atoll (val);
        else if (!strcmp (k, "--ngrams")) ngrams = atoi (val);
        else if (!strcmp (k, "--bucket")) bucket = atoll (val);
        else if (!strcmp (k, "--lr")) lr = atof (val);
        else if (!strcmp (k, "--threads")) threads = atoi (val);
        else if (!strcmp (k, "--batch")) batch = atoi (val);
        else if (!strcmp (k, "--seed")) seed = strtoull (val, NULL, 10);
        else if (!strcmp (k, "--optim")) optim = val;
        else {
            fprintf (stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    char train_path[1024], test_path[1024];
    snprintf (train_path, sizeof train_path, "%s/train.ft.txt", data);
    snprintf (test_path, sizeof test_path, "%s/test.ft.txt", data);

    ty_tok_opts_t o;
    ty_tok_opts_init (&o);   /* fastText's: white space, case kept, eos */
    o.word_ngrams = ngrams;
    o.bucket = bucket;
    ty_vocab_t *v = ty_vocab_new (&o);
    s_set_t train = {0}, test = {0};
    if (!v || s_read (train_path, v, true, NULL) != 0 || ty_vocab_finalize (v) != TY_OK
        || s_read (train_path, v, false, &train) != 0 || s_read (test_path, v, false, &test) != 0)
        return 1;

    int64_t nbatches = (train.ndocs + batch - 1) / batch;
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    p.textclf.nrows = ty_vocab_nrows (v);
    p.textclf.dim = dim;
    p.textclf.nlabels = ty_vocab_nlabels (v);
    p.lr = lr;
    p.total_steps = epochs * nbatches;
    p.threads = threads;
    p.seed = seed;
    if (ty_torch_optim_parse (optim, &p.optim) != TY_OK) {
        fprintf (stderr, "unknown optimizer %s\n", optim);
        return 2;
    }
    char err[256];
    ty_torch_model_t *m = NULL;
    if (ty_torch_new (&p, &m, err, sizeof err) != TY_OK) {
        fprintf (stderr, "ty_torch_new: %s\n", err);
        return 1;
    }

    int64_t *idx = malloc ((size_t) train.ndocs * sizeof (int64_t));
    int64_t *bids = malloc ((size_t) train.start[train.ndocs] * sizeof (int64_t));
    int64_t *boff = malloc ((size_t) batch * sizeof (int64_t));
    int64_t *blab = malloc ((size_t) batch * sizeof (int64_t));
    for (int64_t i = 0; i < train.ndocs; i++)
        idx[i] = i;
    double t0 = s_now (), loss = 0;
    for (int e = 0; e < epochs; e++) {
        uint64_t rng = seed * 1000003u + (uint64_t) e;
        for (int64_t i = train.ndocs - 1; i > 0; i--) {
            int64_t j = (int64_t) ty_negsample_below (&rng, (uint64_t) i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        for (int64_t s = 0; s < train.ndocs; s += batch) {
            int64_t n = train.ndocs - s < batch ? train.ndocs - s : batch, nids = 0;
            for (int64_t k = 0; k < n; k++) {
                int64_t d = idx[s + k], len = train.start[d + 1] - train.start[d];
                boff[k] = nids;
                memcpy (bids + nids, train.ids + train.start[d], (size_t) len * sizeof (int64_t));
                nids += len;
                blab[k] = train.label[d];
            }
            ty_torch_batch_t b = {.n = n, .ids = bids, .nids = nids, .offsets = boff,
                                  .labels = blab};
            if (ty_torch_train_step (m, &b, &loss) != TY_OK) {
                fprintf (stderr, "train: %s\n", ty_torch_errstr (m));
                return 1;
            }
        }
    }
    double wall = s_now () - t0;

    int64_t nl = ty_vocab_nlabels (v), correct = 0;
    float *out = malloc ((size_t) (test.ndocs * nl) * sizeof (float));
    int64_t *offs = malloc ((size_t) test.ndocs * sizeof (int64_t));
    for (int64_t i = 0; i < test.ndocs; i++)
        offs[i] = test.start[i];
    ty_torch_batch_t tb = {.n = test.ndocs, .ids = test.ids, .nids = test.start[test.ndocs],
                           .offsets = offs};
    if (ty_torch_predict (m, &tb, out, (size_t) (test.ndocs * nl)) != TY_OK) {
        fprintf (stderr, "predict: %s\n", ty_torch_errstr (m));
        return 1;
    }
    for (int64_t i = 0; i < test.ndocs; i++) {
        int64_t best = 0;
        for (int64_t k = 1; k < nl; k++)
            if (out[i * nl + k] > out[i * nl + best])
                best = k;
        correct += best == test.label[i];
    }
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    double words = (double) train.ntokens * epochs;
    printf ("impl trainyard-textclf\n");
    printf ("blas %s\n", ty_torch_blas_name ());
    printf ("train_docs %lld\ntest_docs %lld\nlabels %lld\nvocab %lld\n",
            (long long) train.ndocs, (long long) test.ndocs, (long long) nl,
            (long long) ty_vocab_nwords (v));
    printf ("optim %s\n", optim);
    printf ("epochs %d\ndim %lld\nngrams %d\nbucket %lld\nlr %g\nthreads %d\nbatch %d\n",
            epochs, (long long) dim, ngrams, (long long) bucket, lr, threads, batch);
    printf ("wall_s %.3f\nsec_per_epoch %.4f\n", wall, wall / epochs);
    printf ("words_per_sec_per_thread %.0f\n", words / wall / threads);
    printf ("samples_per_sec %.0f\n", (double) train.ndocs * epochs / wall);
    printf ("final_loss %.4f\n", loss);
    printf ("test_accuracy %.4f\n", (double) correct / (double) test.ndocs);
    printf ("peak_rss_mb %.1f\n", ru.ru_maxrss / 1024.0);
    free (out);
    free (offs);
    free (idx);
    free (bids);
    free (boff);
    free (blab);
    free (train.ids); free (train.start); free (train.label);
    free (test.ids); free (test.start); free (test.label);
    ty_torch_destroy (&m);
    ty_vocab_destroy (&v);
    return 0;
}

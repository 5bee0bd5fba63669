/*  bench_train_cnn: the cnn model of the libtorch shim (the model the train
 *  worker builds for image datasets) on the 8x8 digits, timed like its
 *  PyTorch twin bench/train_cnn.py: samples/s and s/epoch of the training
 *  loop alone (data read and scaled before the clock starts), test accuracy,
 *  peak RSS. Same data order rule as the train worker: a seeded shuffle per
 *  epoch, mini-batches in that order.
 *
 *  bench_train_cnn [--data DIR] [--epochs N] [--batch N] [--lr X]
 *                  [--threads N] [--depth N] [--filters N] [--optim NAME]
 *                  [--seed N]
 *  DIR holds train.csv and test.csv ("label,p0..p63", pixels 0-16).
 *  Prints one "key value" line per figure (bench/train_cnn parses them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ty_error.h"
#include "ty_negsample.h"
#include "ty_torch.h"

#define S_SIDE        8          /* the digits are 8x8 grey */
#define S_PIXELS      (S_SIDE * S_SIDE)
#define S_PIXEL_MAX   16.0f      /* UCI digits: 0-16 per pixel; scaled to [0, 1] */
#define S_NCLASSES    10
#define S_LINE_BYTES  4096

typedef struct {
    float   *x;          /* n x 64, scaled */
    int64_t *label;
    int64_t  n;
} s_set_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reads "label,p0..p63" lines after a header line. 0 or -1 (message). */
static int
s_read (const char *path, s_set_t *set)
{
    FILE *f = fopen (path, "r");
    if (!f) {
        perror (path);
        return -1;
    }
    char line[S_LINE_BYTES];
    int64_t cap = 256;
    set->n = 0;
    set->x = malloc ((size_t) cap * S_PIXELS * sizeof (float));
    set->label = malloc ((size_t) cap * sizeof (int64_t));
    if (!set->x || !set->label || !fgets (line, sizeof line, f)) {
        fclose (f);
        return -1;
    }
    while (fgets (line, sizeof line, f)) {
        if (set->n == cap) {
            cap *= 2;
            float *x = realloc (set->x, (size_t) cap * S_PIXELS * sizeof (float));
            int64_t *l = realloc (set->label, (size_t) cap * sizeof (int64_t));
            if (!x || !l) {
                free (x ? x : set->x);
                free (l ? l : set->label);
                set->x = NULL;
                set->label = NULL;
                fclose (f);
                return -1;
            }
            set->x = x;
            set->label = l;
        }
        char *p = line, *end;
        long lab = strtol (p, &end, 10);
        if (end == p || lab < 0 || lab >= S_NCLASSES) {
            fprintf (stderr, "%s: bad label on line %lld\n", path, (long long) set->n + 2);
            fclose (f);
            return -1;
        }
        float *px = set->x + set->n * S_PIXELS;
        for (int k = 0; k < S_PIXELS; k++) {
            p = end + 1;
            px[k] = strtof (p, &end) / S_PIXEL_MAX;
            if (end == p) {
                fprintf (stderr, "%s: short line %lld\n", path, (long long) set->n + 2);
                fclose (f);
                return -1;
            }
        }
        set->label[set->n++] = lab;
    }
    fclose (f);
    return 0;
}

int
main (int argc, char **argv)
{
    const char *data = "../shared/data/digits";
    const char *optim = "adam";
    int epochs = 30, batch = 32, threads = 1, depth = 2;
    int64_t filters = 16;
    double lr = 0.01;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *val = argv[i + 1];
        if (!strcmp (k, "--data")) data = val;
        else if (!strcmp (k, "--epochs")) epochs = atoi (val);
        else if (!strcmp (k, "--batch")) batch = atoi (val);
        else if (!strcmp (k, "--lr")) lr = atof (val);
        else if (!strcmp (k, "--threads")) threads = atoi (val);
        else if (!strcmp (k, "--depth")) depth = atoi (val);
        else if (!strcmp (k, "--filters")) filters = atoll (val);
        else if (!strcmp (k, "--optim")) optim = val;
        else if (!strcmp (k, "--seed")) seed = strtoull (val, NULL, 10);
        else {
            fprintf (stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    if (epochs < 1 || batch < 1) {
        fprintf (stderr, "epochs and batch must be >= 1\n");
        return 2;
    }
    char path[1024];
    s_set_t train = {0}, test = {0};
    snprintf (path, sizeof path, "%s/train.csv", data);
    if (s_read (path, &train) != 0)
        return 1;
    snprintf (path, sizeof path, "%s/test.csv", data);
    if (s_read (path, &test) != 0)
        return 1;

    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_CNN);
    p.cnn.height = p.cnn.width = S_SIDE;
    p.cnn.channels = 1;
    p.cnn.depth = depth;
    p.cnn.filters = filters;
    p.cnn.nclasses = S_NCLASSES;
    p.lr = lr;
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

    int64_t *idx = malloc ((size_t) train.n * sizeof (int64_t));
    float *bx = malloc ((size_t) batch * S_PIXELS * sizeof (float));
    int64_t *blab = malloc ((size_t) batch * sizeof (int64_t));
    float *out = malloc ((size_t) test.n * S_NCLASSES * sizeof (float));
    if (!idx || !bx || !blab || !out)
        return 1;
    for (int64_t i = 0; i < train.n; i++)
        idx[i] = i;
    double t0 = s_now (), loss = 0;
    for (int e = 0; e < epochs; e++) {
        uint64_t rng = seed * 1000003u + (uint64_t) e;
        for (int64_t i = train.n - 1; i > 0; i--) {
            int64_t j = (int64_t) ty_negsample_below (&rng, (uint64_t) i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        for (int64_t s = 0; s < train.n; s += batch) {
            int64_t n = train.n - s < batch ? train.n - s : batch;
            for (int64_t k = 0; k < n; k++) {
                memcpy (bx + k * S_PIXELS, train.x + idx[s + k] * S_PIXELS,
                        S_PIXELS * sizeof (float));
                blab[k] = train.label[idx[s + k]];
            }
            ty_torch_batch_t b = {.n = n, .x = bx, .labels = blab};
            if (ty_torch_train_step (m, &b, &loss) != TY_OK) {
                fprintf (stderr, "train: %s\n", ty_torch_errstr (m));
                return 1;
            }
        }
    }
    double wall = s_now () - t0;

    ty_torch_batch_t tb = {.n = test.n, .x = test.x};
    if (ty_torch_predict (m, &tb, out, (size_t) (test.n * S_NCLASSES)) != TY_OK) {
        fprintf (stderr, "predict: %s\n", ty_torch_errstr (m));
        return 1;
    }
    int64_t correct = 0;
    for (int64_t i = 0; i < test.n; i++) {
        int64_t best = 0;
        for (int64_t k = 1; k < S_NCLASSES; k++)
            if (out[i * S_NCLASSES + k] > out[i * S_NCLASSES + best])
                best = k;
        correct += best == test.label[i];
    }
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    printf ("impl trainyard-cnn\n");
    printf ("blas %s\n", ty_torch_blas_name ());
    printf ("train_samples %lld\ntest_samples %lld\nparams %lld\n", (long long) train.n,
            (long long) test.n, (long long) ty_torch_param_count (m));
    printf ("wall_s %.3f\nsec_per_epoch %.4f\n", wall, wall / epochs);
    printf ("samples_per_sec %.0f\n", (double) train.n * epochs / wall);
    printf ("final_loss %.4f\n", loss);
    printf ("test_accuracy %.4f\n", (double) correct / (double) test.n);
    printf ("peak_rss_mb %.1f\n", ru.ru_maxrss / 1024.0);
    free (out);
    free (idx);
    free (bx);
    free (blab);
    free (train.x);
    free (train.label);
    free (test.x);
    free (test.label);
    ty_torch_destroy (&m);
    return 0;
}

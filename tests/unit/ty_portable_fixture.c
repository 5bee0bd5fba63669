/*  ty_portable_fixture: see ty_portable_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ty_error.h"
#include "ty_modeldir.h"
#include "ty_negsample.h"
#include "ty_portable_fixture.h"

#define ERRLEN 512

static char s_dir[64];

int
ty_pfix_dir_new (const char *prefix)
{
    snprintf (s_dir, sizeof s_dir, "%s/%s_XXXXXX",
              access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", prefix);
    return mkdtemp (s_dir) ? 0 : -1;
}

int
ty_pfix_teardown (void **state)
{
    (void) state;
    char cmd[256];
    snprintf (cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system (cmd) == 0 ? 0 : -1;
}

const char *
ty_pfix_dir (void)
{
    return s_dir;
}

void
ty_pfix_path (char *buf, size_t len, const char *name)
{
    snprintf (buf, len, "%s/%s", s_dir, name);
}

float
ty_pfix_unif (uint64_t *rng)
{
    return (float) ((double) (ty_negsample_rand (rng) >> 11) / 9007199254740992.0);
}

ty_torch_model_t *
ty_pfix_new (const ty_torch_params_t *p)
{
    char err[ERRLEN];
    ty_torch_model_t *m = NULL;
    if (ty_torch_new (p, &m, err, sizeof err) != TY_OK)
        fail_msg ("ty_torch_new: %s", err);
    return m;
}

ty_infer_model_t *
ty_pfix_open (const char *path)
{
    char err[ERRLEN];
    ty_infer_model_t *m = NULL;
    if (ty_infer_open (path, &m, err, sizeof err) != TY_INFER_OK)
        fail_msg ("ty_infer_open %s: %s", path, err);
    return m;
}

void
ty_pfix_train_dense (ty_torch_model_t *m, size_t in, int64_t outs, bool regression,
                     size_t n, int steps)
{
    uint64_t rng = 7;
    float *x = malloc (n * in * sizeof *x);
    float *t = malloc (n * (size_t) outs * sizeof *t);
    int64_t *y = malloc (n * sizeof *y);
    assert_true (x && t && y);
    for (size_t i = 0; i < n * in; i++)
        x[i] = ty_pfix_unif (&rng);
    for (size_t i = 0; i < n; i++) {
        y[i] = (int64_t) i % outs;
        for (int64_t k = 0; k < outs; k++)
            t[i * (size_t) outs + (size_t) k] = ty_pfix_unif (&rng);
    }
    ty_torch_batch_t b = {0};
    b.n = (int64_t) n;
    b.x = x;
    b.labels = regression ? NULL : y;
    b.targets = regression ? t : NULL;
    for (int s = 0; s < steps; s++)
        assert_int_equal (ty_torch_train_step (m, &b, NULL), TY_OK);
    free (x);
    free (t);
    free (y);
}

ty_torch_model_t *
ty_pfix_mlp (bool regression)
{
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_MLP);
    p.mlp.input_dim = 12;
    p.mlp.nhidden = 2;
    p.mlp.hidden[0] = 20;
    p.mlp.hidden[1] = 9;
    p.mlp.dropout = 0.3;
    p.mlp.regression = regression;
    p.mlp.noutputs = regression ? 2 : 4;
    p.lr = 0.05;
    ty_torch_model_t *m = ty_pfix_new (&p);
    ty_pfix_train_dense (m, 12, p.mlp.noutputs, regression, 16, 3);
    return m;
}

ty_torch_model_t *
ty_pfix_cnn (bool separable, int64_t depth, double dropout)
{
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_CNN);
    p.cnn.height = 11;
    p.cnn.width = 9;
    p.cnn.channels = 3;
    p.cnn.depth = depth;
    p.cnn.filters = 4;
    p.cnn.separable = separable;
    p.cnn.nclasses = 3;
    p.cnn.dropout = dropout;
    p.lr = 0.01;
    ty_torch_model_t *m = ty_pfix_new (&p);
    ty_pfix_train_dense (m, 11 * 9 * 3, 3, false, 16, 3);
    return m;
}

ty_torch_model_t *
ty_pfix_ncf (const ty_pfix_ncf_t *s, ty_pfix_pairs_t *pairs)
{
    assert_true (s->n <= TY_PFIX_MAX_PAIRS);
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_NCF);
    p.ncf.nusers = s->nusers;
    p.ncf.nitems = s->nitems;
    p.ncf.gmf_dim = s->gmf_dim;
    p.ncf.mlp_dim = s->mlp_dim;
    p.ncf.nlayers = 2;
    p.ncf.layers[0] = s->layers[0];
    p.ncf.layers[1] = s->layers[1];
    p.lr = 0.05;
    ty_torch_model_t *m = ty_pfix_new (&p);
    uint64_t rng = 9;
    for (size_t i = 0; i < s->n; i++) {
        pairs->users[i] = (int64_t) ty_negsample_below (&rng, (uint64_t) s->nusers);
        pairs->items[i] = (int64_t) ty_negsample_below (&rng, (uint64_t) s->nitems);
        pairs->targets[i] = (float) (i % 2);
    }
    ty_torch_batch_t *b = &pairs->b;
    memset (b, 0, sizeof *b);
    b->n = (int64_t) s->n;
    b->users = pairs->users;
    b->items = pairs->items;
    b->targets = pairs->targets;
    for (int k = 0; k < s->steps; k++)
        assert_int_equal (ty_torch_train_step (m, b, NULL), TY_OK);
    return m;
}

void
ty_pfix_version (const ty_pfix_version_opts_t *o, ty_pfix_version_t *v)
{
    static const char *const words[3][4] = {{"alpha", "Beta", "gamma!", "délta"},
                                            {"one", "TWO", "three", "fóur"},
                                            {"red", "green", "Blue", "yellow,"}};
    static char *const names[3] = {"greek", "numbers", "colours"};
    memset (v, 0, sizeof *v);
    assert_true (o->ntrain > 0 && o->ntrain <= o->nsamples && o->nwords <= 8);
    ty_dataset_writer_t *w = NULL;
    assert_int_equal (ty_dataset_writer_new (s_dir, "texts", NULL, &w), TY_OK);
    uint64_t rng = 5;
    for (int i = 0; i < o->nsamples; i++) {
        int c = i % 3;
        char text[256] = "";
        for (int k = 0; k < o->nwords; k++) {
            strcat (text, words[c][ty_negsample_below (&rng, 4)]);
            strcat (text, o->noise && k == 2 ? " noise " : " ");
        }
        Ty__Sample smp = TY__SAMPLE__INIT;
        char *labels[1] = {names[c]};
        smp.text = text;
        smp.labels = labels;
        smp.n_labels = 1;
        assert_int_equal (ty_dataset_writer_add (w, i < o->ntrain ? TY_SPLIT_TRAIN : TY_SPLIT_VAL,
                                                 &smp), TY_OK);
    }
    Ty__DatasetMeta meta = TY__DATASET_META__INIT;
    meta.kind = (char *) "text";
    meta.labels = (char **) names;
    meta.n_labels = 3;
    assert_int_equal (ty_dataset_writer_commit (&w, &meta, NULL, NULL), TY_OK);
    assert_int_equal (ty_dataset_open (s_dir, "texts", &v->ds), TY_OK);
    ty_batch_opts_t opts;
    ty_batch_opts_init (&opts, TY_TORCH_TEXTCLF);
    opts.tok.lower = true;
    opts.tok.word_ngrams = 2;
    opts.tok.minn = o->minn;
    opts.tok.maxn = o->maxn;
    opts.tok.bucket = o->bucket;
    char err[ERRLEN] = "";
    ty_batch_set_t *train = NULL;
    if (ty_batch_feat_fit (&opts, v->ds, &v->feat, err, sizeof err) != TY_OK)
        fail_msg ("fit: %s", err);
    if (ty_batch_set_new (v->feat, v->ds, TY_SPLIT_TRAIN, 0, &train, err, sizeof err) != TY_OK
        || ty_batch_set_new (v->feat, v->ds, TY_SPLIT_VAL, 0, &v->val, err, sizeof err) != TY_OK)
        fail_msg ("set: %s", err);
    ty_torch_params_t p;
    ty_torch_params_init (&p, TY_TORCH_TEXTCLF);
    assert_int_equal (ty_batch_feat_model_params (v->feat, &p), TY_OK);
    p.textclf.dim = 8;
    p.lr = 0.5;
    v->m = ty_pfix_new (&p);
    uint64_t *idx = malloc ((size_t) o->ntrain * sizeof *idx);
    assert_non_null (idx);
    for (uint64_t i = 0; i < (uint64_t) o->ntrain; i++)
        idx[i] = i;
    ty_torch_batch_t b;
    assert_int_equal (ty_batch_set_gather (train, idx, (size_t) o->ntrain, NULL, &b), TY_OK);
    for (int s = 0; s < 5; s++)
        assert_int_equal (ty_torch_train_step (v->m, &b, NULL), TY_OK);
    free (idx);
    ty_batch_set_destroy (&train);

    snprintf (v->dir, sizeof v->dir, "%s/version", s_dir);
    assert_int_equal (mkdir (v->dir, 0755), 0);
    assert_int_equal (ty_batch_feat_save (v->feat, v->dir), TY_OK);
    char path[600];
    snprintf (path, sizeof path, "%s/%s", v->dir, TY_MODELDIR_WEIGHTS);
    assert_int_equal (ty_torch_save (v->m, path), TY_OK);
}

void
ty_pfix_version_free (ty_pfix_version_t *v)
{
    ty_torch_destroy (&v->m);
    ty_batch_set_destroy (&v->val);
    ty_batch_feat_destroy (&v->feat);
    ty_dataset_destroy (&v->ds);
}

/* Reads the file into train and test; the train texts into v. */
static void
s_read_fortunes (const char *path, ty_vocab_t *v, ty_pfix_docs_t *train, ty_pfix_docs_t *test)
{
    FILE *f = fopen (path, "r");
    if (!f)
        fail_msg ("%s: cannot open", path);
    char line[1 << 16];
    size_t cap = 2048, k = 0;
    ty_pfix_docs_t *sets[2] = {train, test};
    for (int i = 0; i < 2; i++) {
        sets[i]->text = calloc (cap, sizeof (char *));
        sets[i]->label = calloc (cap, sizeof (int64_t));
        sets[i]->labname = calloc (cap, sizeof (char *));
        sets[i]->n = 0;
        assert_true (sets[i]->text && sets[i]->label && sets[i]->labname);
    }
    assert_non_null (fgets (line, sizeof line, f));   /* the header */
    while (fgets (line, sizeof line, f)) {
        line[strcspn (line, "\r\n")] = '\0';
        char *tab = strchr (line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        ty_pfix_docs_t *d = sets[k++ % 4 == 3];
        assert_true (d->n < cap);
        assert_true (ty_vocab_label_require (v, line) >= 0);
        d->labname[d->n] = strdup (line);
        d->text[d->n] = strdup (tab + 1);
        assert_true (d->labname[d->n] && d->text[d->n]);
        if (d == train)
            assert_int_equal (ty_vocab_add_text (v, tab + 1, strlen (tab + 1)), TY_OK);
        d->n++;
    }
    fclose (f);
    assert_true (train->n > 800 && test->n > 250);
}

int64_t
ty_pfix_fortunes (const char *path, ty_vocab_t **v, ty_pfix_docs_t *train, ty_pfix_docs_t *test)
{
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.lower = true;
    o.punct = TY_TOK_PUNCT_SPLIT;
    o.word_ngrams = 2;
    o.bucket = 100000;
    *v = ty_vocab_new (&o);
    assert_non_null (*v);
    s_read_fortunes (path, *v, train, test);
    assert_int_equal (ty_vocab_finalize (*v), TY_OK);
    /* Label ids are final only now (the vocabulary may order them). */
    for (size_t i = 0; i < train->n; i++)
        train->label[i] = ty_vocab_label_id (*v, train->labname[i]);
    for (size_t i = 0; i < test->n; i++)
        test->label[i] = ty_vocab_label_id (*v, test->labname[i]);
    return ty_vocab_nlabels (*v);
}

void
ty_pfix_docs_free (ty_pfix_docs_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free (d->text[i]);
        free (d->labname[i]);
    }
    free (d->text);
    free (d->labname);
    free (d->label);
}

size_t
ty_pfix_argmax (const float *v, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

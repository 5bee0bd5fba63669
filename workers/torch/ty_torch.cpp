/*  ty_torch.cpp: the four model kinds in torch::nn behind the C API of
 *  ty_torch.h. The only C++ file of trainyard. Every extern "C" function
 *  catches every exception (s_guard) and turns it into a status + message.
 *
 *  Sections: helpers and errors / networks / batch checks / loss /
 *  the C API (create, train, predict, save/load, runtime). */
#include <torch/torch.h>

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

extern "C" {
#include "ty_error.h"
}
#include "ty_torch.h"

namespace {

/* ==== helpers and errors =================================================== */

/* A failure we raise ourselves, with the status it maps to. */
struct s_fail {
    int code;
    std::string msg;
};

[[noreturn]] __attribute__ ((format (printf, 2, 3))) void
s_throw (int code, const char *fmt, ...)
{
    char buf[TY_TORCH_ERRSTR_LEN];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (buf, sizeof buf, fmt, ap);
    va_end (ap);
    throw s_fail {code, buf};
}

void
s_copy_err (char *dst, size_t len, const char *msg)
{
    if (dst && len > 0)
        snprintf (dst, len, "%s", msg);
}

/* Runs fn, mapping every exception to a status and a message in err. */
template <typename Fn> int
s_guard (char *err, size_t errlen, Fn fn)
{
    try {
        fn ();
        s_copy_err (err, errlen, "");
        return TY_OK;
    }
    catch (const s_fail &f) {
        s_copy_err (err, errlen, f.msg.c_str ());
        return f.code;
    }
    catch (const c10::Error &e) {
        /* The first line only: the rest is a C++ backtrace. */
        std::string m = e.what_without_backtrace ();
        size_t nl = m.find ('\n');
        if (nl != std::string::npos)
            m.resize (nl);
        s_copy_err (err, errlen, ("libtorch: " + m).c_str ());
        return TY_EINTERNAL;
    }
    catch (const std::bad_alloc &) {
        s_copy_err (err, errlen, "out of memory");
        return TY_ENOMEM;
    }
    catch (const std::exception &e) {
        s_copy_err (err, errlen, e.what ());
        return TY_EINTERNAL;
    }
    catch (...) {
        s_copy_err (err, errlen, "unknown C++ exception");
        return TY_EINTERNAL;
    }
}

/* splitmix64: derives the per-step seed of dropout/augmentation from
 * (seed, step), so a resumed run draws what the straight run drew. */
uint64_t
s_mix (uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

torch::Tensor
s_wrap_long (const int64_t *p, int64_t n)
{
    /* from_blob wants a mutable pointer; nothing here writes through it. */
    return torch::from_blob (const_cast<int64_t *> (p), {n}, torch::kLong);
}

torch::Tensor
s_wrap_float (const float *p, at::IntArrayRef shape)
{
    return torch::from_blob (const_cast<float *> (p), shape, torch::kFloat);
}

/* Big tables (textclf's embedding rows, their Adam moments) are read and
 * written a few random rows at a time: with 4 KiB pages nearly every row
 * costs a TLB miss on top of its cache misses. Asking for transparent huge
 * pages (2 MiB) on such a table before its pages are first touched removes
 * most of those; with THP "never" the advice is ignored and nothing else
 * changes. Returns an uninitialised float tensor. */
const int64_t S_HUGE_PAGE_BYTES = 2 << 20;
const int64_t S_HUGE_MIN_BYTES = 16 * S_HUGE_PAGE_BYTES;   /* below this: not worth it */

torch::Tensor
s_big_table (at::IntArrayRef shape)
{
    torch::Tensor t = torch::empty (shape, torch::kFloat);
    int64_t bytes = t.numel () * (int64_t) sizeof (float);
    if (bytes >= S_HUGE_MIN_BYTES) {
        uintptr_t lo = (uintptr_t) t.data_ptr ();
        uintptr_t start = (lo + S_HUGE_PAGE_BYTES - 1) & ~(uintptr_t) (S_HUGE_PAGE_BYTES - 1);
        uintptr_t end = (lo + (uintptr_t) bytes) & ~(uintptr_t) (S_HUGE_PAGE_BYTES - 1);
        if (end > start)
            /* The allocator may have touched the pages already (the advice
             * then applies only to pages faulted later): the tensor is
             * uninitialised, so drop them and let them fault in huge. */
            if (madvise ((void *) start, end - start, MADV_HUGEPAGE) == 0)
                (void) madvise ((void *) start, end - start, MADV_DONTNEED);   /* advice only */
    }
    return t;
}

/* Moves tensor p (a parameter or an optimizer moment: its TensorImpl, which
 * the optimizer's state is keyed by, stays) onto a huge-page table with the
 * same values. */
void
s_rehome_big (torch::Tensor &p)
{
    if (p.numel () * (int64_t) sizeof (float) < S_HUGE_MIN_BYTES || p.scalar_type () != torch::kFloat)
        return;
    torch::NoGradGuard ng;
    torch::Tensor t = s_big_table (p.sizes ());
    t.copy_ (p);
    p.set_ (t);
}

/* PyTorch's default for Linear and Conv (kaiming-uniform with a = sqrt 5
 * amounts to U(-1/sqrt(fan_in), +)), but drawn from the model's generator. */
void
s_init_fan_in (torch::Tensor &w, torch::Tensor *b, at::Generator &gen)
{
    int64_t fan_in = w.numel () / w.size (0);
    double bound = 1.0 / std::sqrt ((double) (fan_in > 0 ? fan_in : 1));
    w.uniform_ (-bound, bound, gen);
    if (b && b->defined ())
        b->uniform_ (-bound, bound, gen);
}

void
s_dropout (torch::Tensor &h, double p, bool train, at::Generator &gen)
{
    if (!train || p <= 0)
        return;
    torch::Tensor keep = torch::empty_like (h).bernoulli_ (1.0 - p, gen);
    h = h * keep / (1.0 - p);
}

/* ==== networks ============================================================ */

struct s_net : torch::nn::Module {
    /* Raw outputs: logits (classification, ncf) or values (regression). */
    virtual torch::Tensor forward (const ty_torch_batch_t *b, bool train,
                                   at::Generator &gen) = 0;
};

/* fastText's model: mean of the rows of a bag, a linear layer. Training
 * goes through s_textclf_step (written out, below), which touches only the
 * rows of the batch with SGD and lazy Adam alike: that is what makes 2 M
 * buckets affordable. The sparse flag matters only for the autograd path
 * that SGD with weight decay still takes. */
struct s_textclf_net : s_net {
    torch::nn::EmbeddingBag emb {nullptr};
    torch::nn::Linear fc {nullptr};

    s_textclf_net (const ty_torch_textclf_t &p, bool sparse, at::Generator &gen)
    {
        emb = register_module ("emb", torch::nn::EmbeddingBag (
            torch::nn::EmbeddingBagOptions (p.nrows, p.dim)
                .mode (torch::kMean).sparse (sparse)));
        fc = register_module ("fc", torch::nn::Linear (p.dim, p.nlabels));
        torch::NoGradGuard ng;
        emb->weight.set_ (s_big_table ({p.nrows, p.dim}));
        /* fastText: input U(-1/dim, 1/dim), output zero. */
        emb->weight.uniform_ (-1.0 / (double) p.dim, 1.0 / (double) p.dim, gen);
        fc->weight.zero_ ();
        fc->bias.zero_ ();
    }
    torch::Tensor
    forward (const ty_torch_batch_t *b, bool, at::Generator &) override
    {
        torch::Tensor ids = s_wrap_long (b->ids, b->nids);
        torch::Tensor offs = s_wrap_long (b->offsets, b->n);
        return fc->forward (emb->forward (ids, offs));
    }
};

struct s_mlp_net : s_net {
    torch::nn::ModuleList layers;
    double dropout;
    int64_t input_dim;

    s_mlp_net (const ty_torch_mlp_t &p, at::Generator &gen)
        : dropout (p.dropout), input_dim (p.input_dim)
    {
        layers = register_module ("layers", torch::nn::ModuleList ());
        int64_t in = p.input_dim;
        for (int i = 0; i <= p.nhidden; i++) {
            int64_t out = i < p.nhidden ? p.hidden[i] : p.noutputs;
            torch::nn::Linear l (in, out);
            torch::NoGradGuard ng;
            s_init_fan_in (l->weight, &l->bias, gen);
            layers->push_back (l);
            in = out;
        }
    }
    torch::Tensor
    forward (const ty_torch_batch_t *b, bool train, at::Generator &gen) override
    {
        torch::Tensor h = s_wrap_float (b->x, {b->n, input_dim});
        size_t n = layers->size ();
        for (size_t i = 0; i < n; i++) {
            h = layers[i]->as<torch::nn::Linear> ()->forward (h);
            if (i + 1 < n) {
                h = torch::relu (h);
                s_dropout (h, dropout, train, gen);
            }
        }
        return h;
    }
};

/* Blocks of conv 3x3 (or depthwise 3x3 + pointwise 1x1) + ReLU + 2x2 max
 * pool, global average pool, dropout, linear. */
struct s_cnn_net : s_net {
    ty_torch_cnn_t p;
    torch::nn::ModuleList convs;
    torch::nn::Linear fc {nullptr};

    s_cnn_net (const ty_torch_cnn_t &params, at::Generator &gen) : p (params)
    {
        convs = register_module ("convs", torch::nn::ModuleList ());
        int64_t in = p.channels, out = p.filters;
        torch::NoGradGuard ng;
        for (int i = 0; i < p.depth; i++) {
            /* The first block sees 1-3 raw channels: a depthwise conv there
             * would be a per-channel filter with nothing to mix, so it is a
             * full conv even in separable mode. */
            if (p.separable && i > 0) {
                torch::nn::Conv2d dw (torch::nn::Conv2dOptions (in, in, 3)
                                          .padding (1).groups (in));
                torch::nn::Conv2d pw (torch::nn::Conv2dOptions (in, out, 1));
                s_init_fan_in (dw->weight, &dw->bias, gen);
                s_init_fan_in (pw->weight, &pw->bias, gen);
                convs->push_back (dw);
                convs->push_back (pw);
            }
            else {
                torch::nn::Conv2d c (torch::nn::Conv2dOptions (in, out, 3).padding (1));
                s_init_fan_in (c->weight, &c->bias, gen);
                convs->push_back (c);
            }
            in = out;
            out *= 2;
        }
        fc = register_module ("fc", torch::nn::Linear (in, p.nclasses));
        s_init_fan_in (fc->weight, &fc->bias, gen);
    }

    torch::Tensor
    s_augment (torch::Tensor x, at::Generator &gen)
    {
        int64_t n = x.size (0);
        if (p.augment_flip) {
            torch::Tensor flip = torch::empty ({n, 1, 1, 1}).bernoulli_ (0.5, gen);
            x = torch::where (flip.to (torch::kBool), x.flip ({3}), x);
        }
        int64_t k = p.augment_crop_px;
        if (k > 0) {
            /* Random shift by up to k pixels: pad with zeros, crop back. */
            torch::Tensor padded = torch::constant_pad_nd (x, {k, k, k, k}, 0);
            torch::Tensor shift = torch::randint (0, 2 * k + 1, {n, 2}, gen, torch::kLong);
            auto acc = shift.accessor<int64_t, 2> ();
            std::vector<torch::Tensor> rows;
            rows.reserve ((size_t) n);
            for (int64_t i = 0; i < n; i++)
                rows.push_back (padded[i]
                                    .narrow (1, acc[i][0], p.height)
                                    .narrow (2, acc[i][1], p.width));
            x = torch::stack (rows);
        }
        return x;
    }

    torch::Tensor
    forward (const ty_torch_batch_t *b, bool train, at::Generator &gen) override
    {
        torch::Tensor x = s_wrap_float (b->x, {b->n, p.channels, p.height, p.width});
        if (train)
            x = s_augment (x, gen);
        size_t i = 0;
        for (int blk = 0; blk < p.depth; blk++) {
            x = convs[i++]->as<torch::nn::Conv2d> ()->forward (x);
            if (p.separable && blk > 0)
                x = convs[i++]->as<torch::nn::Conv2d> ()->forward (x);
            x = torch::relu (x);
            if (x.size (2) >= 2 && x.size (3) >= 2)
                x = torch::max_pool2d (x, 2);
        }
        x = x.mean ({2, 3});
        s_dropout (x, p.dropout, train, gen);
        return fc->forward (x);
    }
};

/* NeuMF (He et al. 2017): GMF = u ⊙ i over one pair of embeddings, an MLP
 * over the concatenation of another pair, one linear output over both. */
struct s_ncf_net : s_net {
    torch::nn::Embedding gu {nullptr}, gi {nullptr}, mu {nullptr}, mi {nullptr};
    torch::nn::ModuleList tower;
    torch::nn::Linear out {nullptr};

    s_ncf_net (const ty_torch_ncf_t &p, at::Generator &gen)
    {
        gu = register_module ("gmf_user", torch::nn::Embedding (p.nusers, p.gmf_dim));
        gi = register_module ("gmf_item", torch::nn::Embedding (p.nitems, p.gmf_dim));
        mu = register_module ("mlp_user", torch::nn::Embedding (p.nusers, p.mlp_dim));
        mi = register_module ("mlp_item", torch::nn::Embedding (p.nitems, p.mlp_dim));
        tower = register_module ("tower", torch::nn::ModuleList ());
        torch::NoGradGuard ng;
        for (auto *e : {&gu, &gi, &mu, &mi})
            (*e)->weight.normal_ (0.0, 0.01, gen);   /* the paper's init */
        int64_t in = 2 * p.mlp_dim;
        for (int i = 0; i < p.nlayers; i++) {
            torch::nn::Linear l (in, p.layers[i]);
            s_init_fan_in (l->weight, &l->bias, gen);
            tower->push_back (l);
            in = p.layers[i];
        }
        out = register_module ("out", torch::nn::Linear (p.gmf_dim + in, 1));
        s_init_fan_in (out->weight, &out->bias, gen);
    }
    torch::Tensor
    forward (const ty_torch_batch_t *b, bool, at::Generator &) override
    {
        torch::Tensor u = s_wrap_long (b->users, b->n);
        torch::Tensor it = s_wrap_long (b->items, b->n);
        torch::Tensor gmf = gu->forward (u) * gi->forward (it);
        torch::Tensor h = torch::cat ({mu->forward (u), mi->forward (it)}, 1);
        for (size_t i = 0; i < tower->size (); i++)
            h = torch::relu (tower[i]->as<torch::nn::Linear> ()->forward (h));
        return out->forward (torch::cat ({gmf, h}, 1)).squeeze (1);
    }
};

/* ==== batch checks ========================================================= */

/* Everything a batch must satisfy, checked in C loops before libtorch sees
 * it: an out-of-range id in libtorch is an exception at best and a read
 * out of bounds at worst (index_select on some paths), and NaN features
 * would silently poison the weights. */

void
s_check_finite (const float *p, int64_t count, const char *what)
{
    for (int64_t i = 0; i < count; i++)
        if (!std::isfinite (p[i]))
            s_throw (TY_EINVAL, "%s[%lld] is not finite (NaN or inf)", what, (long long) i);
}

void
s_check_range (const int64_t *p, int64_t count, int64_t hi, const char *what)
{
    if (!p)
        s_throw (TY_EINVAL, "batch.%s is missing", what);
    for (int64_t i = 0; i < count; i++)
        if (p[i] < 0 || p[i] >= hi)
            s_throw (TY_EINVAL, "batch.%s[%lld] = %lld is outside [0, %lld)", what,
                     (long long) i, (long long) p[i], (long long) hi);
}

void
s_check_floats (const float *p, int64_t count, const char *what)
{
    if (!p)
        s_throw (TY_EINVAL, "batch.%s is missing", what);
    s_check_finite (p, count, what);
}

void
s_check_batch (const ty_torch_params_t &pr, const ty_torch_batch_t *b, bool targets)
{
    if (!b)
        s_throw (TY_EINVAL, "batch is NULL");
    if (b->n < 1)
        s_throw (TY_EINVAL, "batch.n = %lld: a batch needs at least one sample", (long long) b->n);
    int64_t n = b->n;
    switch (pr.kind) {
    case TY_TORCH_TEXTCLF: {
        const ty_torch_textclf_t &p = pr.textclf;
        if (!b->offsets)
            s_throw (TY_EINVAL, "batch.offsets is missing");
        if (b->nids < 0 || (b->nids > 0 && !b->ids))
            s_throw (TY_EINVAL, "batch.ids is missing or nids < 0");
        if (b->offsets[0] != 0)
            s_throw (TY_EINVAL, "batch.offsets[0] must be 0");
        for (int64_t i = 1; i < n; i++)
            if (b->offsets[i] < b->offsets[i - 1] || b->offsets[i] > b->nids)
                s_throw (TY_EINVAL, "batch.offsets[%lld] is not in [offsets[i-1], nids]",
                         (long long) i);
        if (b->nids > 0)
            s_check_range (b->ids, b->nids, p.nrows, "ids");
        if (targets) {
            if (p.multilabel)
                s_check_floats (b->targets, n * p.nlabels, "targets");
            else
                s_check_range (b->labels, n, p.nlabels, "labels");
        }
        break;
    }
    case TY_TORCH_MLP:
        s_check_floats (b->x, n * pr.mlp.input_dim, "x");
        if (targets) {
            if (pr.mlp.regression)
                s_check_floats (b->targets, n * pr.mlp.noutputs, "targets");
            else
                s_check_range (b->labels, n, pr.mlp.noutputs, "labels");
        }
        break;
    case TY_TORCH_CNN:
        s_check_floats (b->x, n * pr.cnn.channels * pr.cnn.height * pr.cnn.width, "x");
        if (targets)
            s_check_range (b->labels, n, pr.cnn.nclasses, "labels");
        break;
    case TY_TORCH_NCF:
        s_check_range (b->users, n, pr.ncf.nusers, "users");
        s_check_range (b->items, n, pr.ncf.nitems, "items");
        if (targets)
            s_check_floats (b->targets, n, "targets");
        break;
    }
    if (targets && b->weights) {
        s_check_finite (b->weights, n, "weights");
        double sum = 0;
        for (int64_t i = 0; i < n; i++) {
            if (b->weights[i] < 0)
                s_throw (TY_EINVAL, "batch.weights[%lld] < 0", (long long) i);
            sum += b->weights[i];
        }
        if (sum <= 0)
            s_throw (TY_EINVAL, "batch.weights sum to 0");
    }
}

/* ==== loss ================================================================= */

namespace F = torch::nn::functional;

/* Mean (or weighted mean) over samples of each sample's loss. */
torch::Tensor
s_loss (const ty_torch_params_t &pr, const torch::Tensor &out, const ty_torch_batch_t *b)
{
    int64_t n = b->n;
    torch::Tensor per;   /* n losses */
    auto none = torch::kNone;
    switch (pr.kind) {
    case TY_TORCH_TEXTCLF:
        if (pr.textclf.multilabel)
            /* One-vs-all as fastText: the sum of the labels' binary losses. */
            per = F::binary_cross_entropy_with_logits (
                      out, s_wrap_float (b->targets, {n, pr.textclf.nlabels}),
                      F::BinaryCrossEntropyWithLogitsFuncOptions ().reduction (none))
                      .sum (1);
        else
            per = F::cross_entropy (out, s_wrap_long (b->labels, n),
                                    F::CrossEntropyFuncOptions ().reduction (none));
        break;
    case TY_TORCH_MLP:
        if (pr.mlp.regression)
            per = F::mse_loss (out, s_wrap_float (b->targets, {n, pr.mlp.noutputs}),
                               F::MSELossFuncOptions ().reduction (none))
                      .mean (1);
        else
            per = F::cross_entropy (out, s_wrap_long (b->labels, n),
                                    F::CrossEntropyFuncOptions ().reduction (none));
        break;
    case TY_TORCH_CNN:
        per = F::cross_entropy (out, s_wrap_long (b->labels, n),
                                F::CrossEntropyFuncOptions ().reduction (none));
        break;
    case TY_TORCH_NCF:
        per = F::binary_cross_entropy_with_logits (
            out, s_wrap_float (b->targets, {n}),
            F::BinaryCrossEntropyWithLogitsFuncOptions ().reduction (none));
        break;
    }
    if (b->weights) {
        torch::Tensor w = s_wrap_float (b->weights, {n});
        return (per * w).sum () / w.sum ();
    }
    return per.mean ();
}

/* ==== params: check and (de)serialise ===================================== */

#define S_REQUIRE(cond, ...) do { if (!(cond)) s_throw (TY_EINVAL, __VA_ARGS__); } while (0)

void
s_params_check (const ty_torch_params_t *p)
{
    S_REQUIRE (p, "params is NULL");
    S_REQUIRE (std::isfinite (p->lr) && p->lr > 0, "lr must be > 0 (got %g)", p->lr);
    S_REQUIRE (std::isfinite (p->weight_decay) && p->weight_decay >= 0,
               "weight_decay must be >= 0 (got %g)", p->weight_decay);
    S_REQUIRE (p->total_steps >= 0, "total_steps must be >= 0");
    S_REQUIRE (p->threads >= 1, "threads must be >= 1 (got %d)", p->threads);
    /* kind and optim come from C, where any int fits in an enum; in C++
     * loading an out-of-range enum is undefined, so read them as ints. */
    int kind, optim;
    static_assert (sizeof kind == sizeof p->kind && sizeof optim == sizeof p->optim,
                   "enums are int-sized");
    memcpy (&kind, &p->kind, sizeof kind);
    memcpy (&optim, &p->optim, sizeof optim);
    S_REQUIRE (optim >= TY_TORCH_SGD && optim <= TY_TORCH_ADAMW, "unknown optimizer %d", optim);
    if (kind < TY_TORCH_TEXTCLF || kind > TY_TORCH_NCF)
        s_throw (TY_EINVAL, "unknown model kind %d", kind);
    switch (p->kind) {
    case TY_TORCH_TEXTCLF: {
        const ty_torch_textclf_t &t = p->textclf;
        S_REQUIRE (t.nrows >= 1, "textclf.nrows must be >= 1 (got %lld)", (long long) t.nrows);
        S_REQUIRE (t.dim >= 1, "textclf.dim must be >= 1 (got %lld)", (long long) t.dim);
        S_REQUIRE (t.nlabels >= (t.multilabel ? 1 : 2),
                   "textclf.nlabels must be >= %d (got %lld)", t.multilabel ? 1 : 2,
                   (long long) t.nlabels);
        break;
    }
    case TY_TORCH_MLP: {
        const ty_torch_mlp_t &m = p->mlp;
        S_REQUIRE (m.input_dim >= 1, "mlp.input_dim must be >= 1 (got %lld)", (long long) m.input_dim);
        S_REQUIRE (m.nhidden >= 0 && m.nhidden <= TY_TORCH_MAX_LAYERS,
                   "mlp.nhidden must be in [0, %d]", TY_TORCH_MAX_LAYERS);
        for (int i = 0; i < m.nhidden; i++)
            S_REQUIRE (m.hidden[i] >= 1, "mlp.hidden[%d] must be >= 1", i);
        S_REQUIRE (m.dropout >= 0 && m.dropout < 1, "mlp.dropout must be in [0, 1)");
        S_REQUIRE (m.noutputs >= (m.regression ? 1 : 2), "mlp.noutputs must be >= %d",
                   m.regression ? 1 : 2);
        break;
    }
    case TY_TORCH_CNN: {
        const ty_torch_cnn_t &c = p->cnn;
        S_REQUIRE (c.height >= 1 && c.width >= 1 && c.channels >= 1,
                   "cnn.height, width and channels must be >= 1");
        S_REQUIRE (c.depth >= 1 && c.depth <= 6, "cnn.depth must be in [1, 6]");
        S_REQUIRE (c.filters >= 1 && c.filters <= 4096, "cnn.filters must be in [1, 4096]");
        S_REQUIRE (c.nclasses >= 2, "cnn.nclasses must be >= 2");
        S_REQUIRE (c.augment_crop_px >= 0 && c.augment_crop_px < c.height
                       && c.augment_crop_px < c.width,
                   "cnn.augment_crop_px must be in [0, min(height, width))");
        S_REQUIRE (c.dropout >= 0 && c.dropout < 1, "cnn.dropout must be in [0, 1)");
        break;
    }
    case TY_TORCH_NCF: {
        const ty_torch_ncf_t &n = p->ncf;
        S_REQUIRE (n.nusers >= 1 && n.nitems >= 1, "ncf.nusers and nitems must be >= 1");
        S_REQUIRE (n.gmf_dim >= 1 && n.mlp_dim >= 1, "ncf.gmf_dim and mlp_dim must be >= 1");
        S_REQUIRE (n.nlayers >= 0 && n.nlayers <= TY_TORCH_MAX_LAYERS,
                   "ncf.nlayers must be in [0, %d]", TY_TORCH_MAX_LAYERS);
        for (int i = 0; i < n.nlayers; i++)
            S_REQUIRE (n.layers[i] >= 1, "ncf.layers[%d] must be >= 1", i);
        break;
    }
    default:
        s_throw (TY_EINVAL, "unknown model kind %d", (int) p->kind);
    }
}

/* Checkpoints store params as "key value" lines: readable with strings(1),
 * independent of the struct layout, and new keys can be added with
 * defaults for old files. */
std::string
s_params_encode (const ty_torch_params_t &p)
{
    std::ostringstream o;
    o.precision (17);
    auto arr = [&] (const char *k, int n, const int64_t *v) {
        o << k << ' ' << n;
        for (int i = 0; i < n; i++)
            o << ' ' << v[i];
        o << '\n';
    };
    o << "kind " << (int) p.kind << '\n'
      << "optim " << (int) p.optim << '\n'
      << "lr " << p.lr << '\n'
      << "weight_decay " << p.weight_decay << '\n'
      << "total_steps " << p.total_steps << '\n'
      << "threads " << p.threads << '\n'
      << "seed " << p.seed << '\n'
      << "deterministic " << (int) p.deterministic << '\n'
      << "textclf " << p.textclf.nrows << ' ' << p.textclf.dim << ' '
      << p.textclf.nlabels << ' ' << (int) p.textclf.multilabel << '\n'
      << "mlp " << p.mlp.input_dim << ' ' << p.mlp.dropout << ' '
      << (int) p.mlp.regression << ' ' << p.mlp.noutputs << '\n';
    arr ("mlp_hidden", p.mlp.nhidden, p.mlp.hidden);
    o << "cnn " << p.cnn.height << ' ' << p.cnn.width << ' ' << p.cnn.channels << ' '
      << p.cnn.depth << ' ' << p.cnn.filters << ' ' << (int) p.cnn.separable << ' '
      << p.cnn.nclasses << ' ' << (int) p.cnn.augment_flip << ' ' << p.cnn.augment_crop_px
      << ' ' << p.cnn.dropout << '\n'
      << "ncf " << p.ncf.nusers << ' ' << p.ncf.nitems << ' ' << p.ncf.gmf_dim << ' '
      << p.ncf.mlp_dim << '\n';
    arr ("ncf_layers", p.ncf.nlayers, p.ncf.layers);
    return o.str ();
}

void
s_params_decode (const std::string &s, ty_torch_params_t *p)
{
    ty_torch_params_init (p, TY_TORCH_TEXTCLF);
    std::istringstream in (s);
    std::string line;
    auto arr = [] (std::istringstream &l, int *n, int64_t *v) {
        l >> *n;
        if (*n < 0 || *n > TY_TORCH_MAX_LAYERS)
            s_throw (TY_EPROTO, "checkpoint: bad layer count");
        for (int i = 0; i < *n; i++)
            l >> v[i];
    };
    while (std::getline (in, line)) {
        std::istringstream l (line);
        std::string k;
        int b1 = 0, b2 = 0, b3 = 0, e = 0;
        l >> k;
        if (k == "kind") {
            l >> e;
            if (e < TY_TORCH_TEXTCLF || e > TY_TORCH_NCF)
                s_throw (TY_EPROTO, "checkpoint: unknown model kind %d", e);
            p->kind = (ty_torch_kind_t) e;
        }
        else if (k == "optim") {
            l >> e;
            if (e < TY_TORCH_SGD || e > TY_TORCH_ADAMW)
                s_throw (TY_EPROTO, "checkpoint: unknown optimizer %d", e);
            p->optim = (ty_torch_optim_t) e;
        }
        else if (k == "lr") l >> p->lr;
        else if (k == "weight_decay") l >> p->weight_decay;
        else if (k == "total_steps") l >> p->total_steps;
        else if (k == "threads") l >> p->threads;
        else if (k == "seed") l >> p->seed;
        else if (k == "deterministic") { l >> b1; p->deterministic = b1; }
        else if (k == "textclf") {
            l >> p->textclf.nrows >> p->textclf.dim >> p->textclf.nlabels >> b1;
            p->textclf.multilabel = b1;
        }
        else if (k == "mlp") {
            l >> p->mlp.input_dim >> p->mlp.dropout >> b1 >> p->mlp.noutputs;
            p->mlp.regression = b1;
        }
        else if (k == "mlp_hidden") arr (l, &p->mlp.nhidden, p->mlp.hidden);
        else if (k == "cnn") {
            l >> p->cnn.height >> p->cnn.width >> p->cnn.channels >> p->cnn.depth
              >> p->cnn.filters >> b2 >> p->cnn.nclasses >> b3 >> p->cnn.augment_crop_px
              >> p->cnn.dropout;
            p->cnn.separable = b2;
            p->cnn.augment_flip = b3;
        }
        else if (k == "ncf")
            l >> p->ncf.nusers >> p->ncf.nitems >> p->ncf.gmf_dim >> p->ncf.mlp_dim;
        else if (k == "ncf_layers") arr (l, &p->ncf.nlayers, p->ncf.layers);
        /* Unknown keys come from a newer minor writer: ignored on purpose. */
        if (l.fail () && !k.empty ())
            s_throw (TY_EPROTO, "checkpoint: bad params line '%s'", k.c_str ());
    }
}

/* ==== runtime ============================================================== */

std::mutex s_runtime_lock;   /* thread count and determinism are process-wide */

void
s_apply_threads (int threads)
{
    std::lock_guard<std::mutex> g (s_runtime_lock);
    at::set_num_threads (threads);
    /* OpenBLAS keeps its own pool: keep it in line, or a 1-thread job still
     * spins up a BLAS thread per core. Looked up at run time because the
     * selected libblas.so.3 may not be OpenBLAS. */
    typedef void (s_set_fn) (int);
    s_set_fn *set = (s_set_fn *) dlsym (RTLD_DEFAULT, "openblas_set_num_threads");
    if (set)
        set (threads);
}

}  /* namespace */

/* ==== the model ============================================================ */

namespace {
struct s_textclf_scratch;
}

struct _ty_torch_model_t {
    ty_torch_params_t params;
    std::shared_ptr<s_net> net;
    std::unique_ptr<torch::optim::Optimizer> optim;
    at::Generator gen;
    int64_t step = 0;
    std::shared_ptr<s_textclf_scratch> textclf;   /* textclf's step buffers, reused */
    char errstr[TY_TORCH_ERRSTR_LEN] = "";
};

namespace {

void
s_build (ty_torch_model_t *m)
{
    const ty_torch_params_t &p = m->params;
    m->gen = at::make_generator<at::CPUGeneratorImpl> (p.seed);
    switch (p.kind) {
    case TY_TORCH_TEXTCLF:
        m->net = std::make_shared<s_textclf_net> (p.textclf, p.optim == TY_TORCH_SGD, m->gen);
        break;
    case TY_TORCH_MLP:
        m->net = std::make_shared<s_mlp_net> (p.mlp, m->gen);
        break;
    case TY_TORCH_CNN:
        m->net = std::make_shared<s_cnn_net> (p.cnn, m->gen);
        break;
    case TY_TORCH_NCF:
        m->net = std::make_shared<s_ncf_net> (p.ncf, m->gen);
        break;
    }
    std::vector<torch::Tensor> params = m->net->parameters ();
    switch (p.optim) {
    case TY_TORCH_SGD:
        m->optim.reset (new torch::optim::SGD (
            params, torch::optim::SGDOptions (p.lr).weight_decay (p.weight_decay)));
        break;
    case TY_TORCH_ADAM:
        m->optim.reset (new torch::optim::Adam (
            params, torch::optim::AdamOptions (p.lr).weight_decay (p.weight_decay)));
        break;
    case TY_TORCH_ADAMW:
        m->optim.reset (new torch::optim::AdamW (
            params, torch::optim::AdamWOptions (p.lr).weight_decay (p.weight_decay)));
        break;
    }
    s_apply_threads (p.threads);
    {
        std::lock_guard<std::mutex> g (s_runtime_lock);
        at::globalContext ().setDeterministicAlgorithms (p.deterministic, false);
    }
}

double
s_current_lr (const ty_torch_model_t *m)
{
    const ty_torch_params_t &p = m->params;
    if (p.optim != TY_TORCH_SGD || p.total_steps <= 0)
        return p.lr;
    /* fastText: lr * (1 - progress), progress = work done / total work. */
    double left = 1.0 - (double) m->step / (double) p.total_steps;
    return p.lr * (left > 0 ? left : 0);
}

void
s_set_optim_lr (ty_torch_model_t *m, double lr)
{
    for (auto &group : m->optim->param_groups ())
        group.options ().set_lr (lr);
}

/* Forward + loss, shared by train and eval. */
torch::Tensor
s_forward_loss (ty_torch_model_t *m, const ty_torch_batch_t *b, bool train)
{
    m->net->train (train);
    torch::Tensor out = m->net->forward (b, train, m->gen);
    return s_loss (m->params, out, b);
}

void
s_fsync_path (const char *path, int flags)
{
    int fd = open (path, flags);
    if (fd < 0) {
        int e = errno;
        s_throw (e, "open %s: %s", path, strerror (e));
    }
    int rc = fsync (fd);
    int e = errno;
    close (fd);
    if (rc != 0 && flags != (O_RDONLY | O_DIRECTORY))
        s_throw (e, "fsync %s: %s", path, strerror (e));
}

/* ==== textclf without autograd ============================================ */

/* textclf's train step, written out (fastText's way) instead of going through
 * autograd: the gradient of mean-pooled embeddings + linear + softmax/sigmoid
 * is short, and for the small steps of this model (8 samples, dim 50, a few
 * dozen labels) the per-op overhead of libtorch (dispatch, tensor
 * allocation, sparse gradient tensors, the optimizer's own ops) is most of
 * the time. Plain loops over the weights' raw memory and the C-owned ids,
 * into scratch buffers owned by the model and reused step after step: no
 * allocation in the steady state.
 *
 * Order is fixed (samples in batch order, ids in bag order; repeated ids
 * accumulate), so 1 thread + seed gives bitwise identical runs. Same maths
 * as the autograd path: summed loss over the batch, per-sample weights as a
 * weighted mean scaled by n. */
struct s_textclf_scratch {
    std::vector<float> h;        /* n x dim pooled bags */
    std::vector<float> g;        /* n x nlabels d(sum loss)/d(logits) */
    std::vector<float> gh;       /* n x dim d(sum loss)/d(h) */
    std::vector<float> gw;       /* nlabels x dim (Adam only: SGD updates in place) */
    std::vector<float> gb;       /* nlabels */
    /* Lazy Adam: the distinct rows of the batch and their summed gradient. */
    std::unordered_map<int64_t, int64_t> slot;   /* row -> index into rows */
    std::vector<int64_t> rows;
    std::vector<float> rowgrad;  /* rows.size () x dim */
};

const double S_ADAM_BETA1 = 0.9, S_ADAM_BETA2 = 0.999;   /* libtorch's defaults */
const double S_ADAM_EPS = 1e-8;

/* Forward and gradients of one batch into sc: h, g, gh. Returns the batch's
 * (weighted) mean loss; not finite = diverged, nothing computed after. */
double
s_textclf_grad (ty_torch_model_t *m, const ty_torch_batch_t *b, s_textclf_scratch &sc);

/* One Adam/AdamW step's coefficients, computed once per step (not per row:
 * pow and sqrt per row were a fifth of a lazy step). Weight decay: L2 into
 * the gradient for Adam, decoupled (p *= 1 - lr*wd) for AdamW, as
 * libtorch's Adam and AdamW do. */
struct s_adam_coef {
    float step;           /* lr / (1 - beta1^t) */
    float inv_sqrt_bc2;   /* 1 / sqrt (1 - beta2^t) */
    float l2;             /* Adam's L2 weight decay, 0 for AdamW */
    float shrink;         /* AdamW's 1 - lr*wd, 1 for Adam */
};

s_adam_coef
s_adam_coef_at (int64_t t, double lr, double wd, bool decoupled)
{
    s_adam_coef c;
    const double bc1 = 1.0 - std::pow (S_ADAM_BETA1, (double) t);
    const double bc2 = 1.0 - std::pow (S_ADAM_BETA2, (double) t);
    c.step = (float) (lr / bc1);
    c.inv_sqrt_bc2 = (float) (1.0 / std::sqrt (bc2));
    c.l2 = decoupled ? 0.0f : (float) wd;
    c.shrink = decoupled ? (float) (1.0 - lr * wd) : 1.0f;
    return c;
}

/* One Adam/AdamW update of count contiguous floats p with gradient g and
 * moments ea/eas. */
void
s_adam_update (float *p, float *ea, float *eas, const float *g, int64_t count,
               const s_adam_coef &c)
{
    const float b1 = (float) S_ADAM_BETA1, b2 = (float) S_ADAM_BETA2;
    const float eps = (float) S_ADAM_EPS;
    for (int64_t i = 0; i < count; i++) {
        float gi = g[i] + c.l2 * p[i];
        p[i] *= c.shrink;
        ea[i] = b1 * ea[i] + (1.0f - b1) * gi;
        eas[i] = b2 * eas[i] + (1.0f - b2) * gi * gi;
        p[i] -= c.step * ea[i] / (std::sqrt (eas[i]) * c.inv_sqrt_bc2 + eps);
    }
}

/* The Adam/AdamW state libtorch's optimizer keeps for parameter p, created
 * (zero moments) when p has none yet. Kept there, not beside it, so that
 * ty_torch_save/load carry it in the optimizer archive as before: a
 * checkpoint of the dense-Adam days loads into the lazy one unchanged. */
template <typename State> State &
s_adam_state (torch::optim::Optimizer &opt, const torch::Tensor &p)
{
    auto &st = opt.state ();
    std::string key = c10::guts::to_string (p.unsafeGetTensorImpl ());
    auto it = st.find (key);
    if (it == st.end ()) {
        auto s = std::make_unique<State> ();
        s->exp_avg (s_big_table (p.sizes ()).zero_ ());
        s->exp_avg_sq (s_big_table (p.sizes ()).zero_ ());
        it = st.insert ({key, std::move (s)}).first;
    }
    return static_cast<State &> (*it->second);
}

template <typename State> void
s_textclf_adam_apply (ty_torch_model_t *m, const ty_torch_batch_t *b, s_textclf_scratch &sc,
                      bool decoupled);

double
s_textclf_step (ty_torch_model_t *m, const ty_torch_batch_t *b, double lr)
{
    torch::NoGradGuard ng;
    auto *net = static_cast<s_textclf_net *> (m->net.get ());
    if (!m->textclf)
        m->textclf = std::make_shared<s_textclf_scratch> ();
    s_textclf_scratch &sc = *m->textclf;
    const ty_torch_textclf_t &p = m->params.textclf;
    const int64_t n = b->n, dim = p.dim, nl = p.nlabels;
    double loss = s_textclf_grad (m, b, sc);
    if (!std::isfinite (loss))
        return loss;   /* the caller refuses the step; nothing changed yet */
    if (m->params.optim == TY_TORCH_ADAM) {
        s_textclf_adam_apply<torch::optim::AdamParamState> (m, b, sc, false);
        return loss;
    }
    if (m->params.optim == TY_TORCH_ADAMW) {
        s_textclf_adam_apply<torch::optim::AdamWParamState> (m, b, sc, true);
        return loss;
    }
    /* SGD: W -= lr g^T h, bias -= lr sum g, row -= lr/len gh (gh was taken
     * before W moved). */
    float *W = net->fc->weight.data_ptr<float> (), *bias = net->fc->bias.data_ptr<float> ();
    float *E = net->emb->weight.data_ptr<float> ();
    const float flr = (float) lr;
    for (int64_t i = 0; i < n; i++) {
        const float *gi = sc.g.data () + i * nl, *hi = sc.h.data () + i * dim;
        for (int64_t j = 0; j < nl; j++) {
            float s = flr * gi[j];
            if (s == 0.0f)
                continue;
            float *wj = W + j * dim;
            for (int64_t d = 0; d < dim; d++)
                wj[d] -= s * hi[d];
            bias[j] -= s;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t lo = b->offsets[i], hi = i + 1 < n ? b->offsets[i + 1] : b->nids;
        if (hi <= lo)
            continue;
        float scale = (float) (lr / (double) (hi - lo));
        const float *gr = sc.gh.data () + i * dim;
        for (int64_t k = lo; k < hi; k++) {
            float *row = E + b->ids[k] * dim;
            for (int64_t d = 0; d < dim; d++)
                row[d] -= scale * gr[d];
        }
    }
    return loss;
}

double
s_textclf_grad (ty_torch_model_t *m, const ty_torch_batch_t *b, s_textclf_scratch &sc)
{
    auto *net = static_cast<s_textclf_net *> (m->net.get ());
    const ty_torch_textclf_t &p = m->params.textclf;
    const int64_t n = b->n, dim = p.dim, nl = p.nlabels;
    const float *E = net->emb->weight.data_ptr<float> ();
    const float *W = net->fc->weight.data_ptr<float> ();
    const float *bias = net->fc->bias.data_ptr<float> ();
    sc.h.assign ((size_t) (n * dim), 0.0f);
    sc.g.resize ((size_t) (n * nl));
    sc.gh.assign ((size_t) (n * dim), 0.0f);
    for (int64_t i = 0; i < n; i++) {
        int64_t lo = b->offsets[i], hi = i + 1 < n ? b->offsets[i + 1] : b->nids;
        float *hr = sc.h.data () + i * dim;
        for (int64_t k = lo; k < hi; k++) {
            const float *row = E + b->ids[k] * dim;
            for (int64_t d = 0; d < dim; d++)
                hr[d] += row[d];
        }
        if (hi > lo) {
            float inv = 1.0f / (float) (hi - lo);
            for (int64_t d = 0; d < dim; d++)
                hr[d] *= inv;
        }
    }
    /* Per sample: logits, loss, g = d loss / d logits. */
    double wsum = 0;
    if (b->weights)
        for (int64_t i = 0; i < n; i++)
            wsum += b->weights[i];
    double loss = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *hr = sc.h.data () + i * dim;
        float *gi = sc.g.data () + i * nl;
        for (int64_t j = 0; j < nl; j++) {
            const float *wj = W + j * dim;
            float z = bias[j];
            for (int64_t d = 0; d < dim; d++)
                z += wj[d] * hr[d];
            gi[j] = z;   /* logits for now */
        }
        double per = 0;
        if (p.multilabel) {
            const float *t = b->targets + i * nl;
            for (int64_t j = 0; j < nl; j++) {
                double z = gi[j];
                /* stable BCE with logits: max(z,0) - z t + log(1 + e^-|z|) */
                per += (z > 0 ? z : 0) - z * t[j] + std::log1p (std::exp (-std::fabs (z)));
                gi[j] = (float) (1.0 / (1.0 + std::exp (-z))) - t[j];
            }
        }
        else {
            float mx = gi[0];
            for (int64_t j = 1; j < nl; j++)
                mx = gi[j] > mx ? gi[j] : mx;
            double sum = 0;
            for (int64_t j = 0; j < nl; j++) {
                gi[j] = std::exp (gi[j] - mx);
                sum += gi[j];
            }
            int64_t y = b->labels[i];
            per = -(std::log ((double) gi[y] / sum));
            float inv = (float) (1.0 / sum);
            for (int64_t j = 0; j < nl; j++)
                gi[j] *= inv;
            gi[y] -= 1.0f;
        }
        if (b->weights) {
            loss += per * b->weights[i] / wsum;
            float s = (float) (b->weights[i] * (double) n / wsum);
            for (int64_t j = 0; j < nl; j++)
                gi[j] *= s;
        }
        else
            loss += per / (double) n;
    }
    if (!std::isfinite (loss))
        return loss;
    /* gh = g W, before W moves. */
    for (int64_t i = 0; i < n; i++) {
        const float *gi = sc.g.data () + i * nl;
        float *ghr = sc.gh.data () + i * dim;
        for (int64_t j = 0; j < nl; j++) {
            float s = gi[j];
            if (s == 0.0f)
                continue;
            const float *wj = W + j * dim;
            for (int64_t d = 0; d < dim; d++)
                ghr[d] += s * wj[d];
        }
    }
    return loss;
}

/* Lazy (sparse) Adam/AdamW for textclf. The linear layer gets the ordinary
 * dense update. The embedding table gets an update of the rows this batch
 * touched only, with their summed gradient: their moments decay and move,
 * the other rows' moments and weights stay as they are (no decay, no
 * momentum drift, no weight decay) until a batch touches them again. This is
 * PyTorch's SparseAdam / TensorFlow's LazyAdam; dense Adam would instead
 * move every one of the `bucket` rows each step by its remaining momentum
 * (and, with weight decay, shrink it), which costs O(nrows x dim) per step:
 * seconds per step at 2 M buckets. Bias correction uses the global step
 * count, as SparseAdam does. docs/training.md has the comparison. */
template <typename State> void
s_textclf_adam_apply (ty_torch_model_t *m, const ty_torch_batch_t *b, s_textclf_scratch &sc,
                      bool decoupled)
{
    auto *net = static_cast<s_textclf_net *> (m->net.get ());
    const ty_torch_textclf_t &p = m->params.textclf;
    const int64_t n = b->n, dim = p.dim, nl = p.nlabels;
    const double lr = m->params.lr, wd = m->params.weight_decay;
    /* Linear layer: gW = g^T h, gb = sum g. */
    sc.gw.assign ((size_t) (nl * dim), 0.0f);
    sc.gb.assign ((size_t) nl, 0.0f);
    for (int64_t i = 0; i < n; i++) {
        const float *gi = sc.g.data () + i * nl, *hi = sc.h.data () + i * dim;
        for (int64_t j = 0; j < nl; j++) {
            float *gwj = sc.gw.data () + j * dim;
            for (int64_t d = 0; d < dim; d++)
                gwj[d] += gi[j] * hi[d];
            sc.gb[(size_t) j] += gi[j];
        }
    }
    torch::optim::Optimizer &opt = *m->optim;
    State &sw = s_adam_state<State> (opt, net->fc->weight);
    State &sb = s_adam_state<State> (opt, net->fc->bias);
    State &se = s_adam_state<State> (opt, net->emb->weight);
    sw.step (sw.step () + 1);
    sb.step (sb.step () + 1);
    se.step (se.step () + 1);
    s_adam_update (net->fc->weight.data_ptr<float> (), sw.exp_avg ().template data_ptr<float> (),
                   sw.exp_avg_sq ().template data_ptr<float> (), sc.gw.data (), nl * dim,
                   s_adam_coef_at (sw.step (), lr, wd, decoupled));
    s_adam_update (net->fc->bias.data_ptr<float> (), sb.exp_avg ().template data_ptr<float> (),
                   sb.exp_avg_sq ().template data_ptr<float> (), sc.gb.data (), nl,
                   s_adam_coef_at (sb.step (), lr, wd, decoupled));
    /* Embedding rows: the summed gradient per distinct row, in order of
     * first appearance (deterministic). */
    sc.slot.clear ();
    sc.rows.clear ();
    sc.rowgrad.clear ();
    for (int64_t i = 0; i < n; i++) {
        int64_t lo = b->offsets[i], hi = i + 1 < n ? b->offsets[i + 1] : b->nids;
        if (hi <= lo)
            continue;
        float scale = 1.0f / (float) (hi - lo);
        const float *gr = sc.gh.data () + i * dim;
        for (int64_t k = lo; k < hi; k++) {
            auto ins = sc.slot.emplace (b->ids[k], (int64_t) sc.rows.size ());
            if (ins.second) {
                sc.rows.push_back (b->ids[k]);
                sc.rowgrad.resize (sc.rowgrad.size () + (size_t) dim, 0.0f);
            }
            float *acc = sc.rowgrad.data () + ins.first->second * dim;
            for (int64_t d = 0; d < dim; d++)
                acc[d] += scale * gr[d];
        }
    }
    float *E = net->emb->weight.data_ptr<float> ();
    float *ea = se.exp_avg ().template data_ptr<float> ();
    float *eas = se.exp_avg_sq ().template data_ptr<float> ();
    const s_adam_coef ce = s_adam_coef_at (se.step (), lr, wd, decoupled);
    for (size_t r = 0; r < sc.rows.size (); r++) {
        int64_t off = sc.rows[r] * dim;
        s_adam_update (E + off, ea + off, eas + off, sc.rowgrad.data () + (int64_t) r * dim, dim,
                       ce);
    }
}

/* After a load the embedding table and its Adam moments are the archive's
 * freshly read tensors, on small pages: move them onto huge-page tables as
 * a new model has them (same values, same TensorImpl, so the optimizer's
 * state keys still match). */
void
s_textclf_rehome (ty_torch_model_t *m)
{
    auto *net = static_cast<s_textclf_net *> (m->net.get ());
    s_rehome_big (net->emb->weight);
    auto &st = m->optim->state ();
    auto it = st.find (c10::guts::to_string (net->emb->weight.unsafeGetTensorImpl ()));
    if (it == st.end ())
        return;
    if (m->params.optim == TY_TORCH_ADAM) {
        auto &a = static_cast<torch::optim::AdamParamState &> (*it->second);
        s_rehome_big (a.exp_avg ());
        s_rehome_big (a.exp_avg_sq ());
    }
    else if (m->params.optim == TY_TORCH_ADAMW) {
        auto &a = static_cast<torch::optim::AdamWParamState &> (*it->second);
        s_rehome_big (a.exp_avg ());
        s_rehome_big (a.exp_avg_sq ());
    }
}

}  /* namespace */

/* ==== C API ================================================================ */

extern "C" {

void
ty_torch_params_init (ty_torch_params_t *p, ty_torch_kind_t kind)
{
    memset (p, 0, sizeof *p);
    p->kind = kind;
    p->optim = TY_TORCH_ADAM;
    p->lr = 0.001;
    p->threads = 1;
    p->seed = 1;
    p->textclf.nrows = 1;
    p->textclf.dim = 100;          /* fastText's -dim */
    p->textclf.nlabels = 2;
    p->mlp.input_dim = 1;
    p->mlp.nhidden = 1;
    p->mlp.hidden[0] = 64;
    p->mlp.noutputs = 2;
    p->cnn.height = p->cnn.width = 28;
    p->cnn.channels = 1;
    p->cnn.depth = 2;
    p->cnn.filters = 16;
    p->cnn.nclasses = 2;
    p->ncf.nusers = p->ncf.nitems = 1;
    p->ncf.gmf_dim = 8;
    p->ncf.mlp_dim = 8;
    p->ncf.nlayers = 2;
    p->ncf.layers[0] = 16;
    p->ncf.layers[1] = 8;
    if (kind == TY_TORCH_TEXTCLF) {
        p->optim = TY_TORCH_SGD;   /* fastText: SGD, lr 0.1, linear decay */
        p->lr = 0.1;
    }
}

const char *
ty_torch_kind_name (ty_torch_kind_t kind)
{
    switch (kind) {
    case TY_TORCH_TEXTCLF: return "textclf";
    case TY_TORCH_MLP:     return "mlp";
    case TY_TORCH_CNN:     return "cnn";
    case TY_TORCH_NCF:     return "ncf";
    }
    return "?";
}

int
ty_torch_kind_parse (const char *name, ty_torch_kind_t *kind)
{
    static const ty_torch_kind_t all[] = {TY_TORCH_TEXTCLF, TY_TORCH_MLP, TY_TORCH_CNN,
                                          TY_TORCH_NCF};
    for (ty_torch_kind_t k : all)
        if (name && strcmp (name, ty_torch_kind_name (k)) == 0) {
            *kind = k;
            return TY_OK;
        }
    return TY_EINVAL;
}

const char *
ty_torch_optim_name (ty_torch_optim_t optim)
{
    switch (optim) {
    case TY_TORCH_SGD:   return "sgd";
    case TY_TORCH_ADAM:  return "adam";
    case TY_TORCH_ADAMW: return "adamw";
    }
    return "?";
}

int
ty_torch_optim_parse (const char *name, ty_torch_optim_t *optim)
{
    static const ty_torch_optim_t all[] = {TY_TORCH_SGD, TY_TORCH_ADAM, TY_TORCH_ADAMW};
    for (ty_torch_optim_t o : all)
        if (name && strcmp (name, ty_torch_optim_name (o)) == 0) {
            *optim = o;
            return TY_OK;
        }
    return TY_EINVAL;
}

int
ty_torch_params_check (const ty_torch_params_t *params, char *err, size_t errlen)
{
    return s_guard (err, errlen, [&] { s_params_check (params); });
}

int
ty_torch_new (const ty_torch_params_t *params, ty_torch_model_t **model_p, char *err,
              size_t errlen)
{
    if (!model_p)
        return TY_EINVAL;
    *model_p = nullptr;
    ty_torch_model_t *m = nullptr;
    int rc = s_guard (err, errlen, [&] {
        s_params_check (params);
        m = new ty_torch_model_t ();
        m->params = *params;
        s_build (m);
    });
    if (rc != TY_OK) {
        delete m;
        return rc;
    }
    *model_p = m;
    return TY_OK;
}

void
ty_torch_destroy (ty_torch_model_t **model_p)
{
    if (!model_p || !*model_p)
        return;
    try {
        delete *model_p;
    }
    catch (...) {
        /* A destructor of libtorch throwing is not something C can act on. */
    }
    *model_p = nullptr;
}

const char *
ty_torch_errstr (const ty_torch_model_t *m)
{
    return m ? m->errstr : "no model";
}

const ty_torch_params_t *
ty_torch_params (const ty_torch_model_t *m)
{
    return &m->params;
}

int
ty_torch_train_step (ty_torch_model_t *m, const ty_torch_batch_t *b, double *loss)
{
    if (!m)
        return TY_EINVAL;
    return s_guard (m->errstr, sizeof m->errstr, [&] {
        s_check_batch (m->params, b, true);
        /* Dropout and augmentation of step k draw from a generator seeded
         * by (seed, k): a run resumed at step k draws the same. */
        /* textclf: the written-out step (SGD as fastText; lazy Adam/AdamW).
         * SGD with weight decay keeps the autograd path. */
        if (m->params.kind == TY_TORCH_TEXTCLF
            && (m->params.optim != TY_TORCH_SGD || m->params.weight_decay == 0)) {
            double v = s_textclf_step (m, b, s_current_lr (m));
            if (!std::isfinite (v))
                s_throw (TY_EINVAL, "loss is %g at step %lld: the model diverged (lower the lr)",
                         v, (long long) m->step);
            m->step++;
            if (loss)
                *loss = v;
            return;
        }
        m->gen.set_current_seed (s_mix (m->params.seed ^ s_mix ((uint64_t) m->step)));
        for (torch::Tensor &p : m->net->parameters ())
            p.mutable_grad ().reset ();   /* set-to-none: no zeroing of 2 M rows */
        torch::Tensor l = s_forward_loss (m, b, true);
        double v = l.item<double> ();
        if (!std::isfinite (v))
            s_throw (TY_EINVAL, "loss is %g at step %lld: the model diverged (lower the lr)",
                     v, (long long) m->step);
        /* textclf follows fastText's SGD: every sample's gradient is
         * applied at the full lr (fastText updates per sample), so the
         * batch's gradient is the sum, not the mean, of its samples'. The
         * reported loss stays the mean. */
        if (m->params.kind == TY_TORCH_TEXTCLF)
            l = l * (double) b->n;
        l.backward ();
        s_set_optim_lr (m, s_current_lr (m));
        m->optim->step ();
        m->step++;
        if (loss)
            *loss = v;
    });
}

int
ty_torch_eval_loss (ty_torch_model_t *m, const ty_torch_batch_t *b, double *loss)
{
    if (!m)
        return TY_EINVAL;
    return s_guard (m->errstr, sizeof m->errstr, [&] {
        s_check_batch (m->params, b, true);
        torch::NoGradGuard ng;
        double v = s_forward_loss (m, b, false).item<double> ();
        if (loss)
            *loss = v;
    });
}

int64_t
ty_torch_output_width (const ty_torch_model_t *m)
{
    switch (m->params.kind) {
    case TY_TORCH_TEXTCLF: return m->params.textclf.nlabels;
    case TY_TORCH_MLP:     return m->params.mlp.noutputs;
    case TY_TORCH_CNN:     return m->params.cnn.nclasses;
    case TY_TORCH_NCF:     return 1;
    }
    return 0;
}

int
ty_torch_predict (ty_torch_model_t *m, const ty_torch_batch_t *b, float *out, size_t out_len)
{
    if (!m)
        return TY_EINVAL;
    return s_guard (m->errstr, sizeof m->errstr, [&] {
        s_check_batch (m->params, b, false);
        int64_t w = ty_torch_output_width (m);
        if (!out)
            s_throw (TY_EINVAL, "out is NULL");
        if ((uint64_t) b->n * (uint64_t) w > out_len)
            s_throw (TY_EFULL, "out holds %zu floats, %lld x %lld needed", out_len,
                     (long long) b->n, (long long) w);
        torch::NoGradGuard ng;
        m->net->train (false);
        torch::Tensor o = m->net->forward (b, false, m->gen);
        const ty_torch_params_t &p = m->params;
        bool sigmoid = p.kind == TY_TORCH_NCF
                       || (p.kind == TY_TORCH_TEXTCLF && p.textclf.multilabel);
        bool values = p.kind == TY_TORCH_MLP && p.mlp.regression;
        if (sigmoid)
            o = torch::sigmoid (o);
        else if (!values)
            o = torch::softmax (o, 1);
        s_wrap_float (out, {b->n, w}).copy_ (o.reshape ({b->n, w}));
    });
}

int
ty_torch_save (ty_torch_model_t *m, const char *path)
{
    if (!m)
        return TY_EINVAL;
    return s_guard (m->errstr, sizeof m->errstr, [&] {
        if (!path)
            s_throw (TY_EINVAL, "path is NULL");
        torch::serialize::OutputArchive ar;
        ar.write ("ty_format", c10::IValue ((int64_t) TY_TORCH_FORMAT_VERSION));
        ar.write ("params", c10::IValue (s_params_encode (m->params)));
        ar.write ("step", c10::IValue (m->step));
        torch::serialize::OutputArchive net_ar, opt_ar;
        m->net->save (net_ar);
        m->optim->save (opt_ar);
        ar.write ("net", net_ar);
        ar.write ("optim", opt_ar);
        std::string tmp = std::string (path) + ".tmp";
        ar.save_to (tmp);
        s_fsync_path (tmp.c_str (), O_RDONLY);
        if (rename (tmp.c_str (), path) != 0) {
            int e = errno;
            unlink (tmp.c_str ());
            s_throw (e, "rename %s: %s", path, strerror (e));
        }
        /* The rename is durable once the directory is synced. */
        std::string dir = path;
        s_fsync_path (dirname (&dir[0]), O_RDONLY | O_DIRECTORY);
    });
}

int
ty_torch_load (const char *path, int threads, ty_torch_model_t **model_p, char *err,
               size_t errlen)
{
    if (!model_p)
        return TY_EINVAL;
    *model_p = nullptr;
    ty_torch_model_t *m = nullptr;
    int rc = s_guard (err, errlen, [&] {
        if (!path)
            s_throw (TY_EINVAL, "path is NULL");
        struct stat st;
        if (stat (path, &st) != 0) {
            int e = errno;
            s_throw (e, "%s: %s", path, strerror (e));
        }
        torch::serialize::InputArchive ar;
        try {
            ar.load_from (path);
        }
        catch (const c10::Error &) {
            s_throw (TY_EPROTO, "%s is not a trainyard checkpoint", path);
        }
        c10::IValue v;
        if (!ar.try_read ("ty_format", v) || !v.isInt ())
            s_throw (TY_EPROTO, "%s is not a trainyard checkpoint", path);
        if (v.toInt () != TY_TORCH_FORMAT_VERSION)
            s_throw (TY_EPROTO, "%s: checkpoint format %lld, this build reads %d", path,
                     (long long) v.toInt (), TY_TORCH_FORMAT_VERSION);
        if (!ar.try_read ("params", v) || !v.isString ())
            s_throw (TY_EPROTO, "%s: no params", path);
        m = new ty_torch_model_t ();
        s_params_decode (v.toStringRef (), &m->params);
        if (threads > 0)
            m->params.threads = threads;
        s_params_check (&m->params);
        s_build (m);
        if (!ar.try_read ("step", v) || !v.isInt ())
            s_throw (TY_EPROTO, "%s: no step", path);
        m->step = v.toInt ();
        torch::serialize::InputArchive net_ar, opt_ar;
        if (!ar.try_read ("net", net_ar) || !ar.try_read ("optim", opt_ar))
            s_throw (TY_EPROTO, "%s: weights or optimizer state missing", path);
        m->net->load (net_ar);
        m->optim->load (opt_ar);
        if (m->params.kind == TY_TORCH_TEXTCLF)
            s_textclf_rehome (m);
    });
    if (rc != TY_OK) {
        delete m;
        return rc;
    }
    *model_p = m;
    return TY_OK;
}

int64_t
ty_torch_param_count (const ty_torch_model_t *m)
{
    int64_t n = 0;
    for (const torch::Tensor &p : m->net->parameters ())
        n += p.numel ();
    return n;
}

int64_t
ty_torch_step (const ty_torch_model_t *m)
{
    return m->step;
}

double
ty_torch_lr (const ty_torch_model_t *m)
{
    return s_current_lr (m);
}

int
ty_torch_set_lr (ty_torch_model_t *m, double lr)
{
    if (!m)
        return TY_EINVAL;
    if (!std::isfinite (lr) || lr <= 0) {
        snprintf (m->errstr, sizeof m->errstr, "lr must be > 0 (got %g)", lr);
        return TY_EINVAL;
    }
    m->params.lr = lr;
    return TY_OK;
}

uint64_t
ty_torch_weights_digest (const ty_torch_model_t *m)
{
    const uint64_t FNV64_OFFSET = 0xcbf29ce484222325ULL, FNV64_PRIME = 0x100000001b3ULL;
    uint64_t h = FNV64_OFFSET;
    try {
        for (const torch::Tensor &p : m->net->parameters ()) {
            torch::Tensor c = p.detach ().contiguous ();
            const unsigned char *b = (const unsigned char *) c.data_ptr ();
            size_t len = (size_t) c.numel () * c.element_size ();
            for (size_t i = 0; i < len; i++)
                h = (h ^ b[i]) * FNV64_PRIME;
        }
    }
    catch (...) {
        return 0;
    }
    return h;
}

int
ty_torch_export_tensors (ty_torch_model_t *m, ty_torch_tensor_fn *fn, void *arg)
{
    if (!m || !fn)
        return TY_EINVAL;
    int status = TY_OK;
    int rc = s_guard (m->errstr, sizeof m->errstr, [&] {
        torch::NoGradGuard ng;
        for (const auto &item : m->net->named_parameters ()) {
            torch::Tensor c = item.value ().detach ().to (torch::kFloat).contiguous ();
            std::vector<int64_t> shape (c.sizes ().begin (), c.sizes ().end ());
            status = fn (arg, item.key ().c_str (), (int) shape.size (), shape.data (),
                         c.data_ptr<float> ());
            if (status != TY_OK)
                s_throw (status, "export stopped at %s (status %d)", item.key ().c_str (),
                         status);
        }
    });
    return rc;
}

int
ty_torch_set_threads (int threads)
{
    if (threads < 1)
        return TY_EINVAL;
    return s_guard (nullptr, 0, [&] { s_apply_threads (threads); });
}

const char *
ty_torch_blas_name (void)
{
    static char name[512];
    static std::once_flag once;
    std::call_once (once, [] {
        /* Which libblas.so.3 the loader picked (update-alternatives). */
        char lib[256] = "";
        FILE *f = fopen ("/proc/self/maps", "r");
        if (f) {
            char line[512];
            while (fgets (line, sizeof line, f)) {
                char *p = strchr (line, '/');
                if (p && strstr (p, "blas")) {
                    p[strcspn (p, "\n")] = '\0';
                    snprintf (lib, sizeof lib, "%s", p);
                    break;
                }
            }
            fclose (f);
        }
        typedef char *(s_cfg_fn) (void);
        s_cfg_fn *cfg = (s_cfg_fn *) dlsym (RTLD_DEFAULT, "openblas_get_config");
        if (cfg)
            snprintf (name, sizeof name, "%s (%s)", cfg (), lib[0] ? lib : "?");
        else
            snprintf (name, sizeof name, "not OpenBLAS: reference or other BLAS (%s)",
                      lib[0] ? lib : "no libblas mapped");
    });
    return name;
}

}  /* extern "C" */

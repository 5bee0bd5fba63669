/*  ty_tokenize: UTF-8 tokenizer, fastText-compatible hashing, vocabulary
 *  with label map. See ty_tokenize.h for the id layout and file format. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wctype.h>

#include "ty_error.h"
#include "ty_hash.h"
#include "ty_tokenize.h"

#define S_FNV32_OFFSET 2166136261u
#define S_FNV32_PRIME  16777619u
#define S_NGRAM_MULT   116049371u   /* fastText's word n-gram combiner */
#define S_LINE_MAX     (TY_TOK_MAX_BYTES + 64)

/* ==== characters ============================================================ */

/* Unicode classes and case from the C.UTF-8 locale, whatever the process
 * locale is (a worker never calls setlocale, and must not depend on it). */
static locale_t s_utf8 = (locale_t) 0;
static pthread_once_t s_utf8_once = PTHREAD_ONCE_INIT;

static void
s_utf8_init (void)
{
    s_utf8 = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
}

/* Decodes one character at s[0..len). Invalid or truncated sequences are
 * one byte, returned as code point 0xFFFFFF00 | byte (not a letter, space or
 * punctuation, never lower-cased) so they pass through unchanged. */
static size_t
s_decode (const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) { n = 2; v = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 3; v = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 4; v = c & 0x07; }
    else goto invalid;
    if (n > len)
        goto invalid;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto invalid;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return n;
invalid:
    *cp = 0xFFFFFF00u | c;
    return 1;
}

static size_t
s_encode (uint32_t cp, char *out)
{
    if (cp >= 0xFFFFFF00u) {   /* an invalid byte passed through */
        out[0] = (char) (cp & 0xFF);
        return 1;
    }
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char) (0xC0 | (cp >> 6));
        out[1] = (char) (0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char) (0xE0 | (cp >> 12));
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char) (0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char) (0xF0 | (cp >> 18));
    out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char) (0x80 | (cp & 0x3F));
    return 4;
}

static bool
s_is_space (uint32_t cp)
{
    if (cp < 0x80)
        return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0;
    if (cp >= 0xFFFFFF00u || !s_utf8)
        return false;
    return iswspace_l ((wint_t) cp, s_utf8);
}

static bool
s_is_punct (uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '!' && cp <= '/') || (cp >= ':' && cp <= '@')
               || (cp >= '[' && cp <= '`') || (cp >= '{' && cp <= '~');
    if (cp >= 0xFFFFFF00u || !s_utf8)
        return false;
    return iswpunct_l ((wint_t) cp, s_utf8);
}

static uint32_t
s_lower (uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp;
    if (cp >= 0xFFFFFF00u || !s_utf8)
        return cp;
    return (uint32_t) towlower_l ((wint_t) cp, s_utf8);
}

/* ==== options, hash, tokens ================================================ */

void
ty_tok_opts_init (ty_tok_opts_t *o)
{
    memset (o, 0, sizeof *o);
    o->lower = false;
    o->punct = TY_TOK_PUNCT_KEEP;
    o->word_ngrams = 1;
    o->minn = 0;
    o->maxn = 0;
    o->bucket = TY_TOK_DEFAULT_BUCKET;
    o->eos = true;
    o->min_count = 1;
}

static int
s_fail (char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf (err, errlen, "%s", msg);
    return TY_EINVAL;
}

int
ty_tok_opts_check (const ty_tok_opts_t *o, char *err, size_t errlen)
{
    if (!o)
        return s_fail (err, errlen, "tokenizer options are NULL");
    if (o->punct < TY_TOK_PUNCT_KEEP || o->punct > TY_TOK_PUNCT_TOKEN)
        return s_fail (err, errlen, "punct must be keep, split or token");
    if (o->word_ngrams < 1 || o->word_ngrams > TY_TOK_MAX_NGRAMS)
        return s_fail (err, errlen, "word_ngrams must be in [1, 8]");
    if (o->maxn < 0 || o->maxn > TY_TOK_MAX_CHARGRAM || o->minn < 0
        || (o->maxn > 0 && (o->minn < 1 || o->minn > o->maxn)))
        return s_fail (err, errlen, "char n-grams need 1 <= minn <= maxn <= 16 (maxn 0 = off)");
    if (o->bucket < 0 || o->bucket > INT32_MAX)
        return s_fail (err, errlen, "bucket must be in [0, 2^31)");
    if ((o->word_ngrams > 1 || o->maxn > 0) && o->bucket == 0)
        return s_fail (err, errlen, "n-grams need bucket > 0");
    if (o->min_count < 1)
        return s_fail (err, errlen, "min_count must be >= 1");
    if (err && errlen)
        err[0] = '\0';
    return TY_OK;
}

uint32_t
ty_tok_hash (const char *s, size_t len)
{
    uint32_t h = S_FNV32_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h = h ^ (uint32_t) (int8_t) s[i];   /* sign-extended, as fastText */
        h = h * S_FNV32_PRIME;
    }
    return h;
}

bool
ty_tok_next (const ty_tok_opts_t *o, const char *text, size_t len, size_t *pos,
             char *tok, size_t *toklen)
{
    pthread_once (&s_utf8_once, s_utf8_init);
    const unsigned char *s = (const unsigned char *) text;
    size_t i = *pos;
    uint32_t cp = 0;
    size_t n = 0;
    /* Skip separators. */
    while (i < len) {
        n = s_decode (s + i, len - i, &cp);
        if (s_is_space (cp) || (o->punct == TY_TOK_PUNCT_SPLIT && s_is_punct (cp)))
            i += n;
        else
            break;
    }
    if (i >= len) {
        *pos = len;
        return false;
    }
    size_t out = 0;
    char enc[4];
    if (o->punct == TY_TOK_PUNCT_TOKEN && s_is_punct (cp)) {
        out = s_encode (o->lower ? s_lower (cp) : cp, tok);
        i += n;
    }
    else {
        while (i < len) {
            n = s_decode (s + i, len - i, &cp);
            if (s_is_space (cp) || (o->punct != TY_TOK_PUNCT_KEEP && s_is_punct (cp)))
                break;
            size_t k = s_encode (o->lower ? s_lower (cp) : cp, enc);
            /* Cut over-long tokens at a character boundary, but consume
             * them whole so the rest does not become another token. */
            if (out + k <= TY_TOK_MAX_BYTES) {
                memcpy (tok + out, enc, k);
                out += k;
            }
            i += n;
        }
    }
    tok[out] = '\0';
    *toklen = out;
    *pos = i;
    return true;
}

void
ty_idbuf_init (ty_idbuf_t *b)
{
    b->ids = NULL;
    b->n = b->cap = 0;
}

void
ty_idbuf_free (ty_idbuf_t *b)
{
    free (b->ids);
    ty_idbuf_init (b);
}

int
ty_idbuf_push (ty_idbuf_t *b, int64_t id)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int64_t *ids = realloc (b->ids, cap * sizeof *ids);
        if (!ids)
            return TY_ENOMEM;
        b->ids = ids;
        b->cap = cap;
    }
    b->ids[b->n++] = id;
    return TY_OK;
}

/* ==== vocabulary ============================================================ */

typedef struct {
    char   *word;
    int64_t count, df;
    int64_t last_doc;     /* document that last counted it, for df */
    int64_t id;
} s_word_t;

struct _ty_vocab_t {
    ty_tok_opts_t opts;
    ty_hash_t *index;     /* word -> s_word_t * */
    s_word_t **words;     /* by id after finalize */
    int64_t nwords, cap;
    int64_t ndocs;
    bool final;
    ty_hash_t *label_index;   /* name -> (void *) (id + 1) */
    char **labels;
    int64_t nlabels, label_cap;
};

ty_vocab_t *
ty_vocab_new (const ty_tok_opts_t *opts)
{
    if (ty_tok_opts_check (opts, NULL, 0) != TY_OK)
        return NULL;
    pthread_once (&s_utf8_once, s_utf8_init);
    ty_vocab_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    self->index = ty_hash_new ();
    self->label_index = ty_hash_new ();
    if (!self->index || !self->label_index) {
        ty_vocab_destroy (&self);
        return NULL;
    }
    return self;
}

void
ty_vocab_destroy (ty_vocab_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_vocab_t *self = *self_p;
    for (int64_t i = 0; i < self->nwords; i++) {
        free (self->words[i]->word);
        free (self->words[i]);
    }
    free (self->words);
    for (int64_t i = 0; i < self->nlabels; i++)
        free (self->labels[i]);
    free (self->labels);
    ty_hash_destroy (&self->index);
    ty_hash_destroy (&self->label_index);
    free (self);
    *self_p = NULL;
}

static s_word_t *
s_word_require (ty_vocab_t *self, const char *word)
{
    s_word_t *w = ty_hash_get (self->index, word);
    if (w)
        return w;
    if (self->nwords == self->cap) {
        int64_t cap = self->cap ? self->cap * 2 : 1024;
        s_word_t **words = realloc (self->words, (size_t) cap * sizeof *words);
        if (!words)
            return NULL;
        self->words = words;
        self->cap = cap;
    }
    w = calloc (1, sizeof *w);
    if (!w)
        return NULL;
    w->word = strdup (word);
    w->last_doc = -1;
    w->id = self->nwords;
    if (!w->word || ty_hash_put (self->index, word, w) != TY_OK) {
        free (w->word);
        free (w);
        return NULL;
    }
    self->words[self->nwords++] = w;
    return w;
}

static int
s_count (ty_vocab_t *self, const char *tok)
{
    s_word_t *w = s_word_require (self, tok);
    if (!w)
        return TY_ENOMEM;
    w->count++;
    if (w->last_doc != self->ndocs) {
        w->last_doc = self->ndocs;
        w->df++;
    }
    return TY_OK;
}

int
ty_vocab_add_text (ty_vocab_t *self, const char *text, size_t len)
{
    if (self->final)
        return TY_ESTATE;
    char tok[TY_TOK_MAX_BYTES + 1];
    size_t pos = 0, toklen;
    while (ty_tok_next (&self->opts, text, len, &pos, tok, &toklen))
        if (s_count (self, tok) != TY_OK)
            return TY_ENOMEM;
    if (self->opts.eos && s_count (self, TY_TOK_EOS) != TY_OK)
        return TY_ENOMEM;
    self->ndocs++;
    return TY_OK;
}

int
ty_vocab_add_word (ty_vocab_t *self, const char *word, int64_t count, int64_t df)
{
    if (self->final)
        return TY_ESTATE;
    if (!word || !*word || count < 0 || df < 0)
        return TY_EINVAL;
    s_word_t *w = s_word_require (self, word);
    if (!w)
        return TY_ENOMEM;
    w->count += count;
    w->df += df;
    return TY_OK;
}

static int
s_by_count (const void *a, const void *b)
{
    const s_word_t *x = *(s_word_t *const *) a, *y = *(s_word_t *const *) b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp (x->word, y->word);
}

int
ty_vocab_finalize (ty_vocab_t *self)
{
    if (self->final)
        return TY_OK;
    int64_t kept = 0;
    for (int64_t i = 0; i < self->nwords; i++) {
        s_word_t *w = self->words[i];
        if (w->count >= self->opts.min_count)
            self->words[kept++] = w;
        else {
            ty_hash_del (self->index, w->word);
            free (w->word);
            free (w);
        }
    }
    self->nwords = kept;
    if (kept > 0)
        qsort (self->words, (size_t) kept, sizeof *self->words, s_by_count);
    for (int64_t i = 0; i < kept; i++)
        self->words[i]->id = i;
    self->final = true;
    return TY_OK;
}

int
ty_vocab_truncate (ty_vocab_t *self, int64_t nwords)
{
    if (!self->final)
        return TY_ESTATE;
    if (nwords < 0)
        return TY_EINVAL;
    for (int64_t i = nwords; i < self->nwords; i++) {
        ty_hash_del (self->index, self->words[i]->word);
        free (self->words[i]->word);
        free (self->words[i]);
    }
    if (nwords < self->nwords)
        self->nwords = nwords;
    return TY_OK;
}

int64_t
ty_vocab_label_require (ty_vocab_t *self, const char *name)
{
    if (!name || !*name || strchr (name, '\n'))
        return -1;
    int64_t id = ty_vocab_label_id (self, name);
    if (id >= 0)
        return id;
    if (self->nlabels == self->label_cap) {
        int64_t cap = self->label_cap ? self->label_cap * 2 : 16;
        char **labels = realloc (self->labels, (size_t) cap * sizeof *labels);
        if (!labels)
            return -1;
        self->labels = labels;
        self->label_cap = cap;
    }
    char *copy = strdup (name);
    if (!copy)
        return -1;
    id = self->nlabels;
    if (ty_hash_put (self->label_index, name, (void *) (intptr_t) (id + 1)) != TY_OK) {
        free (copy);
        return -1;
    }
    self->labels[self->nlabels++] = copy;
    return id;
}

int64_t
ty_vocab_label_id (const ty_vocab_t *self, const char *name)
{
    void *v = ty_hash_get (self->label_index, name);
    return v ? (int64_t) (intptr_t) v - 1 : -1;
}

const char *
ty_vocab_label_name (const ty_vocab_t *self, int64_t id)
{
    return id >= 0 && id < self->nlabels ? self->labels[id] : NULL;
}

int64_t ty_vocab_nlabels (const ty_vocab_t *self) { return self->nlabels; }
const ty_tok_opts_t *ty_vocab_opts (const ty_vocab_t *self) { return &self->opts; }
int64_t ty_vocab_nwords (const ty_vocab_t *self) { return self->nwords; }
int64_t ty_vocab_nrows (const ty_vocab_t *self) { return self->nwords + self->opts.bucket; }
int64_t ty_vocab_ndocs (const ty_vocab_t *self) { return self->ndocs; }

int64_t
ty_vocab_word_id (const ty_vocab_t *self, const char *word)
{
    if (!self->final)
        return -1;
    s_word_t *w = ty_hash_get (self->index, word);
    return w ? w->id : -1;
}

const char *
ty_vocab_word (const ty_vocab_t *self, int64_t id, int64_t *count, int64_t *df)
{
    if (id < 0 || id >= self->nwords)
        return NULL;
    if (count)
        *count = self->words[id]->count;
    if (df)
        *df = self->words[id]->df;
    return self->words[id]->word;
}

/* ==== encoding ============================================================== */

/* fastText's computeSubwords over "<word>": every run of minn..maxn
 * characters, except the lone "<" and ">". */
static int
s_push_chargrams (const ty_vocab_t *self, const char *tok, size_t toklen, ty_idbuf_t *out)
{
    char w[TY_TOK_MAX_BYTES + 3];
    w[0] = '<';
    memcpy (w + 1, tok, toklen);
    w[toklen + 1] = '>';
    size_t len = toklen + 2;
    int minn = self->opts.minn, maxn = self->opts.maxn;
    uint64_t bucket = (uint64_t) self->opts.bucket;
    for (size_t i = 0; i < len; i++) {
        if ((w[i] & 0xC0) == 0x80)
            continue;   /* not the first byte of a character */
        size_t j = i;
        for (int n = 1; j < len && n <= maxn; n++) {
            j++;
            while (j < len && (w[j] & 0xC0) == 0x80)
                j++;
            if (n >= minn && !(n == 1 && (i == 0 || j == len))) {
                uint32_t h = ty_tok_hash (w + i, j - i);
                if (ty_idbuf_push (out, self->nwords + (int64_t) (h % bucket)) != TY_OK)
                    return TY_ENOMEM;
            }
        }
    }
    return TY_OK;
}

typedef struct {
    int32_t hist[TY_TOK_MAX_NGRAMS];   /* word hashes of the last n-1 words */
    int64_t seen;
} s_ngram_state_t;

static int
s_push_token (const ty_vocab_t *self, const char *tok, size_t toklen, bool is_eos,
              s_ngram_state_t *ng, ty_idbuf_t *out)
{
    uint32_t h = ty_tok_hash (tok, toklen);
    s_word_t *w = ty_hash_get (self->index, tok);
    if (w && ty_idbuf_push (out, w->id) != TY_OK)
        return TY_ENOMEM;
    if (self->opts.maxn > 0 && !is_eos && s_push_chargrams (self, tok, toklen, out) != TY_OK)
        return TY_ENOMEM;
    int n = self->opts.word_ngrams;
    if (n > 1) {
        /* The n-grams that end at this word, each hashed from its first word
         * on, with fastText's arithmetic: 32-bit word hashes sign-extended
         * to 64 bits, h = h * 116049371 + next. */
        int64_t j = ng->seen;
        int64_t first = j - (n - 1) > 0 ? j - (n - 1) : 0;
        ng->hist[j % TY_TOK_MAX_NGRAMS] = (int32_t) h;
        for (int64_t i = first; i < j; i++) {
            uint64_t g = (uint64_t) (int64_t) ng->hist[i % TY_TOK_MAX_NGRAMS];
            for (int64_t t = i + 1; t <= j; t++)
                g = g * S_NGRAM_MULT + (uint64_t) (int64_t) ng->hist[t % TY_TOK_MAX_NGRAMS];
            if (ty_idbuf_push (out, self->nwords + (int64_t) (g % (uint64_t) self->opts.bucket))
                != TY_OK)
                return TY_ENOMEM;
        }
    }
    ng->seen++;
    return TY_OK;
}

int
ty_vocab_encode (const ty_vocab_t *self, const char *text, size_t len, ty_idbuf_t *out)
{
    if (!self->final)
        return TY_ESTATE;
    char tok[TY_TOK_MAX_BYTES + 1];
    size_t pos = 0, toklen;
    s_ngram_state_t ng = {{0}, 0};
    while (ty_tok_next (&self->opts, text, len, &pos, tok, &toklen))
        if (s_push_token (self, tok, toklen, false, &ng, out) != TY_OK)
            return TY_ENOMEM;
    if (self->opts.eos
        && s_push_token (self, TY_TOK_EOS, strlen (TY_TOK_EOS), true, &ng, out) != TY_OK)
        return TY_ENOMEM;
    return TY_OK;
}

/* ==== files ================================================================= */

static int
s_fsync_dir (const char *path)
{
    char *copy = strdup (path);
    if (!copy)
        return TY_ENOMEM;
    int fd = open (dirname (copy), O_RDONLY | O_DIRECTORY);
    free (copy);
    if (fd < 0)
        return errno;
    fsync (fd);   /* best effort: some filesystems refuse directory fsync */
    close (fd);
    return TY_OK;
}

int
ty_vocab_save (const ty_vocab_t *self, const char *path)
{
    if (!self->final)
        return TY_ESTATE;
    size_t plen = strlen (path);
    char *tmp = malloc (plen + 5);
    if (!tmp)
        return TY_ENOMEM;
    memcpy (tmp, path, plen);
    memcpy (tmp + plen, ".tmp", 5);
    FILE *f = fopen (tmp, "w");
    if (!f) {
        int e = errno;
        free (tmp);
        return e;
    }
    const ty_tok_opts_t *o = &self->opts;
    fprintf (f, "ty-vocab %d\nopts %d %d %d %d %d %lld %d %lld\ndocs %lld\nwords %lld\n",
             TY_VOCAB_FORMAT_VERSION, (int) o->lower, (int) o->punct, o->word_ngrams, o->minn,
             o->maxn, (long long) o->bucket, (int) o->eos, (long long) o->min_count,
             (long long) self->ndocs, (long long) self->nwords);
    for (int64_t i = 0; i < self->nwords; i++)
        fprintf (f, "%lld %lld %s\n", (long long) self->words[i]->count,
                 (long long) self->words[i]->df, self->words[i]->word);
    fprintf (f, "labels %lld\n", (long long) self->nlabels);
    for (int64_t i = 0; i < self->nlabels; i++)
        fprintf (f, "%s\n", self->labels[i]);
    int rc = TY_OK;
    if (fflush (f) != 0 || ferror (f) || fsync (fileno (f)) != 0)
        rc = errno ? errno : EIO;
    if (fclose (f) != 0 && rc == TY_OK)
        rc = errno;
    if (rc == TY_OK && rename (tmp, path) != 0)
        rc = errno;
    if (rc != TY_OK)
        unlink (tmp);
    else
        rc = s_fsync_dir (path);
    free (tmp);
    return rc;
}

/* One line without its newline; false at EOF or on an over-long line. */
static bool
s_read_line (FILE *f, char *buf, size_t cap)
{
    if (!fgets (buf, (int) cap, f))
        return false;
    size_t n = strlen (buf);
    if (n == 0 || buf[n - 1] != '\n')
        return false;
    buf[n - 1] = '\0';
    return true;
}

int
ty_vocab_load (const char *path, ty_vocab_t **self_p)
{
    *self_p = NULL;
    FILE *f = fopen (path, "r");
    if (!f)
        return errno;
    char line[S_LINE_MAX];
    int version = 0, lower = 0, punct = 0, eos = 0;
    long long bucket = 0, min_count = 0, ndocs = 0, nwords = 0, nlabels = 0;
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    ty_vocab_t *self = NULL;
    int rc = TY_EPROTO;
    if (!s_read_line (f, line, sizeof line) || sscanf (line, "ty-vocab %d", &version) != 1
        || version != TY_VOCAB_FORMAT_VERSION)
        goto done;
    if (!s_read_line (f, line, sizeof line)
        || sscanf (line, "opts %d %d %d %d %d %lld %d %lld", &lower, &punct, &o.word_ngrams,
                   &o.minn, &o.maxn, &bucket, &eos, &min_count) != 8)
        goto done;
    o.lower = lower;
    o.punct = (ty_tok_punct_t) punct;
    o.bucket = bucket;
    o.eos = eos;
    o.min_count = min_count;
    if (!s_read_line (f, line, sizeof line) || sscanf (line, "docs %lld", &ndocs) != 1
        || !s_read_line (f, line, sizeof line) || sscanf (line, "words %lld", &nwords) != 1
        || nwords < 0)
        goto done;
    self = ty_vocab_new (&o);
    if (!self)
        goto done;
    for (long long i = 0; i < nwords; i++) {
        long long count, df;
        int off = 0;
        if (!s_read_line (f, line, sizeof line)
            || sscanf (line, "%lld %lld %n", &count, &df, &off) != 2 || off == 0
            || line[off] == '\0')
            goto done;
        int r = ty_vocab_add_word (self, line + off, count, df);
        if (r != TY_OK) {
            rc = r;
            goto done;
        }
    }
    if (!s_read_line (f, line, sizeof line) || sscanf (line, "labels %lld", &nlabels) != 1)
        goto done;
    for (long long i = 0; i < nlabels; i++)
        if (!s_read_line (f, line, sizeof line) || ty_vocab_label_require (self, line) != i)
            goto done;
    /* The file is in id order already; finalize must not reorder it, and it
     * will not: the words were written sorted by the same rule. */
    self->ndocs = ndocs;
    if (ty_vocab_finalize (self) != TY_OK || self->nwords != nwords)
        goto done;
    rc = TY_OK;
done:
    fclose (f);
    if (rc != TY_OK)
        ty_vocab_destroy (&self);
    *self_p = self;
    return rc;
}

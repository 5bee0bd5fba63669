/*  ty_infer_text: the text tokenizer of libtrainyard-infer, a port of
 *  workers/text/ty_tokenize.c (tokens, fastText hashing, word and character
 *  n-grams, the id layout). It must give the trainer's ids exactly; the
 *  tests compare the two on tricky texts for every option.
 *
 *  Unicode classes and case above U+007F come from the model file's
 *  character tables (the trainer's C.UTF-8 tables, written by the
 *  converter) instead of the locale: the same bytes give the same ids on
 *  any machine, whatever its libc or locale. */
#include <stdlib.h>
#include <string.h>

#include "ty_infer_impl.h"

#define S_FNV32_OFFSET 2166136261u
#define S_FNV32_PRIME  16777619u
#define S_NGRAM_MULT   116049371u   /* fastText's word n-gram combiner */
#define S_INVALID      0xFFFFFF00u  /* an invalid byte b is S_INVALID | b */
#define S_EOS          "</s>"

/* ==== characters ============================================================ */

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
    *cp = S_INVALID | c;
    return 1;
}

static size_t
s_encode (uint32_t cp, char *out)
{
    if (cp >= S_INVALID) {
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

/* Binary search in sorted [first, last] ranges. */
static bool
s_in_ranges (const ty_infer_pairs_t *t, uint32_t cp)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t a = ty_infer_rd32 (t->p + mid * 8), b = ty_infer_rd32 (t->p + mid * 8 + 4);
        if (cp < a)
            hi = mid;
        else if (cp > b)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

static bool
s_is_space (const ty_infer_model_t *m, uint32_t cp)
{
    if (cp < 0x80)
        return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0;
    return cp < S_INVALID && s_in_ranges (&m->space, cp);
}

static bool
s_is_punct (const ty_infer_model_t *m, uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '!' && cp <= '/') || (cp >= ':' && cp <= '@')
               || (cp >= '[' && cp <= '`') || (cp >= '{' && cp <= '~');
    return cp < S_INVALID && s_in_ranges (&m->punct, cp);
}

static uint32_t
s_lower (const ty_infer_model_t *m, uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp;
    if (cp >= S_INVALID)
        return cp;
    size_t lo = 0, hi = m->lower.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t a = ty_infer_rd32 (m->lower.p + mid * 8);
        if (cp < a)
            hi = mid;
        else if (cp > a)
            lo = mid + 1;
        else {
            uint32_t l = ty_infer_rd32 (m->lower.p + mid * 8 + 4);
            /* A lying table could map to a non-character: keep the byte
             * encoder's range (4 bytes at most). */
            return l <= 0x10FFFF ? l : cp;
        }
    }
    return cp;
}

/* ==== tokens ================================================================ */

static uint32_t
s_hash (const char *s, size_t len)
{
    uint32_t h = S_FNV32_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h = h ^ (uint32_t) (int8_t) s[i];   /* sign-extended, as fastText */
        h = h * S_FNV32_PRIME;
    }
    return h;
}

/* ty_tok_next: the next token into tok (TY_INFER_TOK_MAX_BYTES + 1). */
static bool
s_next (const ty_infer_model_t *m, const char *text, size_t len, size_t *pos, char *tok,
        size_t *toklen)
{
    const ty_infer_tok_t *o = &m->tok;
    const unsigned char *s = (const unsigned char *) text;
    size_t i = *pos, n = 0;
    uint32_t cp = 0;
    while (i < len) {
        n = s_decode (s + i, len - i, &cp);
        if (s_is_space (m, cp) || (o->punct == 1 && s_is_punct (m, cp)))
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
    if (o->punct == 2 && s_is_punct (m, cp)) {
        out = s_encode (o->lower ? s_lower (m, cp) : cp, tok);
        i += n;
    }
    else {
        while (i < len) {
            n = s_decode (s + i, len - i, &cp);
            if (s_is_space (m, cp) || (o->punct != 0 && s_is_punct (m, cp)))
                break;
            size_t k = s_encode (o->lower ? s_lower (m, cp) : cp, enc);
            if (out + k <= TY_INFER_TOK_MAX_BYTES) {
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

static int
s_push (ty_infer_ids_t *b, int64_t id)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int64_t *ids = b->owned ? realloc (b->ids, cap * sizeof *ids)
                                : malloc (cap * sizeof *ids);
        if (!ids)
            return TY_INFER_ENOMEM;
        if (!b->owned && b->n > 0)
            memcpy (ids, b->ids, b->n * sizeof *ids);   /* off the caller's buffer */
        b->ids = ids;
        b->cap = cap;
        b->owned = true;
    }
    b->ids[b->n++] = id;
    return TY_INFER_OK;
}

static int
s_push_chargrams (const ty_infer_model_t *m, const char *tok, size_t toklen, int64_t nwords,
                  ty_infer_ids_t *out)
{
    char w[TY_INFER_TOK_MAX_BYTES + 3];
    w[0] = '<';
    memcpy (w + 1, tok, toklen);
    w[toklen + 1] = '>';
    size_t len = toklen + 2;
    int minn = m->tok.minn, maxn = m->tok.maxn;
    uint64_t bucket = (uint64_t) m->tok.bucket;
    for (size_t i = 0; i < len; i++) {
        if ((w[i] & 0xC0) == 0x80)
            continue;
        size_t j = i;
        for (int n = 1; j < len && n <= maxn; n++) {
            j++;
            while (j < len && (w[j] & 0xC0) == 0x80)
                j++;
            if (n >= minn && !(n == 1 && (i == 0 || j == len))) {
                uint32_t h = s_hash (w + i, j - i);
                if (s_push (out, nwords + (int64_t) (h % bucket)) != TY_INFER_OK)
                    return TY_INFER_ENOMEM;
            }
        }
    }
    return TY_INFER_OK;
}

typedef struct {
    int32_t hist[TY_INFER_MAX_NGRAMS];
    int64_t seen;
} s_ngram_state_t;

static int
s_push_token (const ty_infer_model_t *m, const char *tok, size_t toklen, bool is_eos,
              s_ngram_state_t *ng, ty_infer_ids_t *out)
{
    int64_t nwords = (int64_t) m->vocab.n;
    uint32_t h = s_hash (tok, toklen);
    int64_t id = ty_infer_word_id (m, tok, toklen);
    if (id >= 0 && s_push (out, id) != TY_INFER_OK)
        return TY_INFER_ENOMEM;
    if (m->tok.maxn > 0 && !is_eos && s_push_chargrams (m, tok, toklen, nwords, out) != TY_INFER_OK)
        return TY_INFER_ENOMEM;
    int n = m->tok.word_ngrams;
    if (n > 1) {
        int64_t j = ng->seen;
        int64_t first = j - (n - 1) > 0 ? j - (n - 1) : 0;
        ng->hist[j % TY_INFER_MAX_NGRAMS] = (int32_t) h;
        for (int64_t i = first; i < j; i++) {
            uint64_t g = (uint64_t) (int64_t) ng->hist[i % TY_INFER_MAX_NGRAMS];
            for (int64_t t = i + 1; t <= j; t++)
                g = g * S_NGRAM_MULT + (uint64_t) (int64_t) ng->hist[t % TY_INFER_MAX_NGRAMS];
            if (s_push (out, nwords + (int64_t) (g % (uint64_t) m->tok.bucket)) != TY_INFER_OK)
                return TY_INFER_ENOMEM;
        }
    }
    ng->seen++;
    return TY_INFER_OK;
}

int
ty_infer_text_ids (const ty_infer_model_t *m, const char *text, size_t len, ty_infer_ids_t *out)
{
    char tok[TY_INFER_TOK_MAX_BYTES + 1];
    size_t pos = 0, toklen;
    s_ngram_state_t ng;
    memset (&ng, 0, sizeof ng);
    while (s_next (m, text, len, &pos, tok, &toklen))
        if (s_push_token (m, tok, toklen, false, &ng, out) != TY_INFER_OK)
            return TY_INFER_ENOMEM;
    if (m->tok.eos && s_push_token (m, S_EOS, strlen (S_EOS), true, &ng, out) != TY_INFER_OK)
        return TY_INFER_ENOMEM;
    return TY_INFER_OK;
}

int
ty_infer_encode_text (const ty_infer_model_t *m, const char *text, size_t len, int64_t *ids,
                      size_t cap, size_t *n)
{
    if (!m || m->kind != TY_INFER_TEXTCLF || (!text && len > 0) || !n || (!ids && cap > 0))
        return TY_INFER_EINVAL;
    ty_infer_ids_t b = {NULL, 0, 0, false};
    int rc = ty_infer_text_ids (m, text ? text : "", len, &b);
    if (rc == TY_INFER_OK) {
        *n = b.n;
        if (b.n > cap)
            rc = TY_INFER_EFULL;
        else if (b.n > 0)
            memcpy (ids, b.ids, b.n * sizeof *ids);
    }
    if (b.owned)
        free (b.ids);
    return rc;
}

/*  test_tokenize: the tokenizer, fastText-compatible hashing of words and
 *  n-grams, the vocabulary (min_count, order, label map, file round trip)
 *  and TF-IDF features. Expected hashes were computed independently from
 *  fastText's definitions (FNV-1a over sign-extended bytes; n-gram
 *  combiner h * 116049371 + next). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ty_error.h"
#include "ty_tfidf.h"
#include "ty_tokenize.h"

#define MAXTOK 16

/* Splits text into toks (each at most 63 bytes here); returns the count. */
static int
s_split (const ty_tok_opts_t *o, const char *text, char toks[MAXTOK][TY_TOK_MAX_BYTES + 1])
{
    size_t pos = 0, len;
    int n = 0;
    while (n < MAXTOK && ty_tok_next (o, text, strlen (text), &pos, toks[n], &len)) {
        assert_int_equal (len, strlen (toks[n]));
        n++;
    }
    return n;
}

static void
s_tmp_path (char *buf, size_t len, const char *name)
{
    snprintf (buf, len, "/tmp/ty_test_tokenize_%d_%s", (int) getpid (), name);
}

static void
test_tokenize_hash_matches_fasttext (void **state)
{
    (void) state;
    assert_int_equal (ty_tok_hash ("", 0), 0x811c9dc5u);
    assert_int_equal (ty_tok_hash ("a", 1), 0xe40c292cu);
    assert_int_equal (ty_tok_hash ("foobar", 6), 0xbf9cf968u);
    /* Non-ASCII bytes are sign-extended by fastText: plain FNV-1a of "é"
     * would be 0x1e9de8c1. */
    assert_int_equal (ty_tok_hash ("\xc3\xa9", 2), 0x3cfa68c1u);
}

static char s_toks[MAXTOK][TY_TOK_MAX_BYTES + 1];

static void
test_tokenize_utf8_lower_and_punctuation (void **state)
{
    (void) state;
    const char *text = "Hello, W\xc3\x96rld!  \xc3\x89T\xc3\x89";   /* Hello, WÖrld!  ÉTÉ */
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    /* fastText's default: white space only, case kept. */
    assert_int_equal (s_split (&o, text, s_toks), 3);
    assert_string_equal (s_toks[0], "Hello,");
    assert_string_equal (s_toks[1], "W\xc3\x96rld!");
    assert_string_equal (s_toks[2], "\xc3\x89T\xc3\x89");
    o.lower = true;
    o.punct = TY_TOK_PUNCT_SPLIT;
    assert_int_equal (s_split (&o, text, s_toks), 3);
    assert_string_equal (s_toks[0], "hello");
    assert_string_equal (s_toks[1], "w\xc3\xb6rld");        /* Ö -> ö */
    assert_string_equal (s_toks[2], "\xc3\xa9t\xc3\xa9");   /* ÉTÉ -> été */
    o.punct = TY_TOK_PUNCT_TOKEN;
    assert_int_equal (s_split (&o, text, s_toks), 5);
    assert_string_equal (s_toks[1], ",");
    assert_string_equal (s_toks[3], "!");
    /* Filenames (workflow 000): dots, dashes and underscores separate. */
    o.punct = TY_TOK_PUNCT_SPLIT;
    assert_int_equal (s_split (&o, "The.Show_S01E02-720p.mkv", s_toks), 5);
    assert_string_equal (s_toks[2], "s01e02");
    /* Unicode white space (U+3000) separates; an invalid byte is kept. */
    assert_int_equal (s_split (&o, "a\xe3\x80\x80" "b\xff" "c", s_toks), 2);
    assert_string_equal (s_toks[1], "b\xff" "c");
    /* An over-long token is cut, not split in two. */
    char *big = malloc (3000);
    memset (big, 'x', 2999);
    big[2999] = '\0';
    big[2000] = ' ';
    assert_int_equal (s_split (&o, big, s_toks), 2);
    assert_int_equal (strlen (s_toks[0]), TY_TOK_MAX_BYTES);
    free (big);
    assert_int_equal (s_split (&o, "  \t\n ", s_toks), 0);
}

static void
test_tokenize_vocab_min_count_and_order (void **state)
{
    (void) state;
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.min_count = 2;
    ty_vocab_t *v = ty_vocab_new (&o);
    assert_non_null (v);
    assert_int_equal (ty_vocab_add_text (v, "a b b c c c", 11), TY_OK);
    assert_int_equal (ty_vocab_add_text (v, "c d", 3), TY_OK);
    assert_int_equal (ty_vocab_word_id (v, "c"), -1);   /* not finalized yet */
    assert_int_equal (ty_vocab_finalize (v), TY_OK);
    assert_int_equal (ty_vocab_add_text (v, "x", 1), TY_ESTATE);
    /* c: 4; "</s>" and b: 2 each, tie broken by bytes ('<' < 'b'). */
    assert_int_equal (ty_vocab_nwords (v), 3);
    assert_int_equal (ty_vocab_word_id (v, "c"), 0);
    assert_int_equal (ty_vocab_word_id (v, "</s>"), 1);
    assert_int_equal (ty_vocab_word_id (v, "b"), 2);
    assert_int_equal (ty_vocab_word_id (v, "a"), -1);
    int64_t count, df;
    assert_string_equal (ty_vocab_word (v, 0, &count, &df), "c");
    assert_int_equal (count, 4);
    assert_int_equal (df, 2);
    assert_int_equal (ty_vocab_ndocs (v), 2);
    assert_int_equal (ty_vocab_nrows (v), 3 + TY_TOK_DEFAULT_BUCKET);
    ty_vocab_destroy (&v);
    assert_null (v);
    ty_vocab_destroy (&v);
    /* Bad options are refused. */
    o.word_ngrams = 0;
    assert_null (ty_vocab_new (&o));
    char err[128];
    assert_int_equal (ty_tok_opts_check (&o, err, sizeof err), TY_EINVAL);
    assert_non_null (strstr (err, "word_ngrams"));
}

static void
test_tokenize_encode_word_and_char_ngrams (void **state)
{
    (void) state;
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.eos = false;
    o.word_ngrams = 2;
    o.bucket = 1000;
    ty_vocab_t *v = ty_vocab_new (&o);
    assert_int_equal (ty_vocab_add_text (v, "hello world", 11), TY_OK);
    assert_int_equal (ty_vocab_finalize (v), TY_OK);
    ty_idbuf_t ids;
    ty_idbuf_init (&ids);
    assert_int_equal (ty_vocab_encode (v, "hello world", 11, &ids), TY_OK);
    /* hello = 0, world = 1; the bigram hashes to 20 of 1000 buckets. */
    assert_int_equal (ids.n, 3);
    assert_int_equal (ids.ids[0], 0);
    assert_int_equal (ids.ids[1], 1);
    assert_int_equal (ids.ids[2], 2 + 20);
    /* An unknown word still takes part in the bigram hashes: 2 words, 1
     * known, 1 bigram. Encoding appends. */
    assert_int_equal (ty_vocab_encode (v, "hello there", 11, &ids), TY_OK);
    assert_int_equal (ids.n, 5);
    assert_int_equal (ids.ids[3], 0);
    assert_true (ids.ids[4] >= 2 && ids.ids[4] < 1002);
    ty_vocab_destroy (&v);

    /* Char 3-grams of "<ab>": "<ab" and "ab>" (0x489c66e4 % 1000 = 508,
     * 0x65485f1c % 1000 = 756); an unknown word gets its n-grams only. */
    ty_tok_opts_init (&o);
    o.eos = false;
    o.minn = o.maxn = 3;
    o.bucket = 1000;
    v = ty_vocab_new (&o);
    assert_int_equal (ty_vocab_add_text (v, "ab", 2), TY_OK);
    assert_int_equal (ty_vocab_finalize (v), TY_OK);
    ids.n = 0;
    assert_int_equal (ty_vocab_encode (v, "ab", 2, &ids), TY_OK);
    assert_int_equal (ids.n, 3);
    assert_int_equal (ids.ids[0], 0);
    assert_int_equal (ids.ids[1], 1 + 508);
    assert_int_equal (ids.ids[2], 1 + 756);
    ids.n = 0;
    assert_int_equal (ty_vocab_encode (v, "xyz", 3, &ids), TY_OK);
    assert_int_equal (ids.n, 3);   /* <xy xyz yz> */
    /* Multi-byte characters count as one: "<é>" has 3 characters, so
     * minn = maxn = 3 gives exactly one n-gram. */
    ids.n = 0;
    assert_int_equal (ty_vocab_encode (v, "\xc3\xa9", 2, &ids), TY_OK);
    assert_int_equal (ids.n, 1);
    ty_idbuf_free (&ids);
    assert_null (ids.ids);
    ty_vocab_destroy (&v);
}

static void
test_tokenize_vocab_save_load_round_trip (void **state)
{
    (void) state;
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.lower = true;
    o.punct = TY_TOK_PUNCT_SPLIT;
    o.word_ngrams = 3;
    o.minn = 2;
    o.maxn = 4;
    o.bucket = 5000;
    ty_vocab_t *v = ty_vocab_new (&o);
    const char *texts[] = {"Le Caf\xc3\xa9 est ouvert.", "The cafe is open!", "caf\xc3\xa9 caf\xc3\xa9"};
    for (int i = 0; i < 3; i++)
        assert_int_equal (ty_vocab_add_text (v, texts[i], strlen (texts[i])), TY_OK);
    assert_int_equal (ty_vocab_finalize (v), TY_OK);
    assert_int_equal (ty_vocab_label_require (v, "__label__news"), 0);
    assert_int_equal (ty_vocab_label_require (v, "sport & games"), 1);
    assert_int_equal (ty_vocab_label_require (v, "__label__news"), 0);
    assert_int_equal (ty_vocab_label_require (v, "bad\nlabel"), -1);
    char path[256];
    s_tmp_path (path, sizeof path, "vocab.txt");
    assert_int_equal (ty_vocab_save (v, path), TY_OK);
    ty_vocab_t *l = NULL;
    assert_int_equal (ty_vocab_load (path, &l), TY_OK);
    assert_int_equal (ty_vocab_nwords (l), ty_vocab_nwords (v));
    assert_int_equal (ty_vocab_nrows (l), ty_vocab_nrows (v));
    assert_int_equal (ty_vocab_ndocs (l), 3);
    assert_int_equal (ty_vocab_nlabels (l), 2);
    assert_string_equal (ty_vocab_label_name (l, 1), "sport & games");
    assert_int_equal (ty_vocab_label_id (l, "__label__news"), 0);
    assert_true (ty_vocab_opts (l)->lower);
    assert_int_equal (ty_vocab_opts (l)->maxn, 4);
    for (int64_t i = 0; i < ty_vocab_nwords (v); i++)
        assert_string_equal (ty_vocab_word (l, i, NULL, NULL), ty_vocab_word (v, i, NULL, NULL));
    ty_idbuf_t a, b;
    ty_idbuf_init (&a);
    ty_idbuf_init (&b);
    const char *probe = "CAF\xc3\x89 open, unknown-word";
    assert_int_equal (ty_vocab_encode (v, probe, strlen (probe), &a), TY_OK);
    assert_int_equal (ty_vocab_encode (l, probe, strlen (probe), &b), TY_OK);
    assert_int_equal (a.n, b.n);
    assert_memory_equal (a.ids, b.ids, a.n * sizeof (int64_t));
    ty_idbuf_free (&a);
    ty_idbuf_free (&b);
    ty_vocab_destroy (&l);

    /* Another version, or a truncated file, is refused. */
    FILE *f = fopen (path, "w");
    fputs ("ty-vocab 2\n", f);
    fclose (f);
    assert_int_equal (ty_vocab_load (path, &l), TY_EPROTO);
    assert_null (l);
    f = fopen (path, "w");
    fputs ("ty-vocab 1\nopts 0 0 1 0 0 10 1 1\ndocs 1\nwords 3\n1 1 a\n", f);
    fclose (f);
    assert_int_equal (ty_vocab_load (path, &l), TY_EPROTO);
    unlink (path);
    assert_int_equal (ty_vocab_load (path, &l), ENOENT);
    ty_vocab_destroy (&v);
}

static void
test_tokenize_tfidf_values_and_round_trip (void **state)
{
    (void) state;
    ty_tok_opts_t o;
    ty_tok_opts_init (&o);
    o.lower = true;
    ty_tfidf_t *t = ty_tfidf_new (&o, 3);
    assert_non_null (t);
    assert_int_equal (ty_tfidf_finalize (t), TY_EINVAL);   /* no documents */
    assert_int_equal (ty_tfidf_add_doc (t, "a b", 3), TY_OK);
    assert_int_equal (ty_tfidf_add_doc (t, "a c", 3), TY_OK);
    assert_int_equal (ty_tfidf_add_doc (t, "A a d", 5), TY_OK);
    assert_int_equal (ty_tfidf_finalize (t), TY_OK);
    /* a: count 4, b c d: 1 each -> a, b, c kept (ties by bytes). */
    assert_int_equal (ty_tfidf_nfeatures (t), 3);
    double idf;
    assert_string_equal (ty_tfidf_term (t, 0, &idf), "a");
    assert_true (fabs (idf - 1.0) < 1e-12);                        /* ln(4/4) + 1 */
    assert_string_equal (ty_tfidf_term (t, 1, &idf), "b");
    assert_true (fabs (idf - (log (2.0) + 1.0)) < 1e-12);          /* ln(4/2) + 1 */
    assert_null (ty_tfidf_term (t, 3, NULL));
    float out[3], out2[3];
    assert_int_equal (ty_tfidf_transform (t, "a b z b", 7, out, 2), TY_EFULL);
    assert_int_equal (ty_tfidf_transform (t, "a b z b", 7, out, 3), TY_OK);
    double va = 1.0, vb = 2 * (log (2.0) + 1.0), norm = sqrt (va * va + vb * vb);
    assert_true (fabs (out[0] - va / norm) < 1e-6);
    assert_true (fabs (out[1] - vb / norm) < 1e-6);
    assert_true (out[2] == 0.0f);
    assert_int_equal (ty_tfidf_transform (t, "zzz", 3, out2, 3), TY_OK);
    assert_true (out2[0] == 0 && out2[1] == 0 && out2[2] == 0);
    char path[256];
    s_tmp_path (path, sizeof path, "tfidf.txt");
    assert_int_equal (ty_tfidf_save (t, path), TY_OK);
    ty_tfidf_t *l = NULL;
    assert_int_equal (ty_tfidf_load (path, &l), TY_OK);
    assert_int_equal (ty_tfidf_nfeatures (l), 3);
    assert_int_equal (ty_tfidf_transform (l, "a b z b", 7, out2, 3), TY_OK);
    assert_memory_equal (out, out2, sizeof out);
    unlink (path);
    ty_tfidf_destroy (&l);
    ty_tfidf_destroy (&t);
    assert_null (t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_tokenize_hash_matches_fasttext),
        cmocka_unit_test (test_tokenize_utf8_lower_and_punctuation),
        cmocka_unit_test (test_tokenize_vocab_min_count_and_order),
        cmocka_unit_test (test_tokenize_encode_word_and_char_ngrams),
        cmocka_unit_test (test_tokenize_vocab_save_load_round_trip),
        cmocka_unit_test (test_tokenize_tfidf_values_and_round_trip),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

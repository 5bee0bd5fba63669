/*  test_dataset_blocks: the block-shuffled iteration order of the dataset
 *  reader (TY_DATASET_ORDER_BLOCKS, ty_dataset.h) over real LMDB versions in
 *  temp dirs: every sample exactly once per epoch whatever the block, window
 *  and batch sizes, the same order for the same seed, another order for
 *  another seed or epoch, and windows made of whole blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ty_tmpdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ty_dataset.h"
#include "ty_error.h"

/* Samples in the train split of the test version. Not a multiple of any
 * block size below, so the last block is short. */
#define S_TRAIN_N   1000
#define S_BATCH_MAX 256

/* ---- helpers --------------------------------------------------------------- */

/* One version "b": S_TRAIN_N train samples "t <i>", 10 val samples; calib
 * stays empty. Returns the opened handle. */
static ty_dataset_t *
must_open_version (const char *data)
{
    ty_dataset_writer_t *w;
    assert_int_equal (ty_dataset_writer_new (data, "b", NULL, &w), TY_OK);
    char text[32];
    for (int i = 0; i < S_TRAIN_N + 10; i++) {
        Ty__Sample s = TY__SAMPLE__INIT;
        snprintf (text, sizeof text, "t %d", i);
        s.text = text;
        assert_int_equal (ty_dataset_writer_add (w, i < S_TRAIN_N ? TY_SPLIT_TRAIN
                                                                  : TY_SPLIT_VAL, &s), TY_OK);
    }
    assert_int_equal (ty_dataset_writer_commit (&w, NULL, NULL, NULL), TY_OK);
    ty_dataset_t *ds;
    assert_int_equal (ty_dataset_open (data, "b", &ds), TY_OK);
    assert_int_equal (ty_dataset_count (ds, TY_SPLIT_TRAIN), S_TRAIN_N);
    return ds;
}

/* Reads one epoch in batches of `cap` into order[] (room for S_TRAIN_N),
 * checking each view against random access; returns the count. */
static uint64_t
s_read_epoch (ty_dataset_t *ds, ty_dataset_iter_t *it, size_t cap, uint64_t *order)
{
    ty_dataset_view_t views[S_BATCH_MAX];
    size_t got;
    uint64_t k = 0;
    while (ty_dataset_iter_next (it, views, cap, &got) == TY_OK && got) {
        assert_true (got <= cap);
        for (size_t i = 0; i < got; i++) {
            assert_true (k < S_TRAIN_N);
            order[k++] = views[i].index;
            ty_dataset_view_t direct;
            assert_int_equal (ty_dataset_get (ds, TY_SPLIT_TRAIN, views[i].index, &direct),
                              TY_OK);
            assert_ptr_equal (direct.data, views[i].data);
            assert_int_equal (direct.size, views[i].size);
        }
    }
    return k;
}

static void
s_assert_permutation (const uint64_t *order, uint64_t n)
{
    uint8_t *seen = calloc (n, 1);
    assert_non_null (seen);
    for (uint64_t i = 0; i < n; i++) {
        assert_true (order[i] < n);
        assert_false (seen[order[i]]);
        seen[order[i]] = 1;
    }
    free (seen);
}

static uint64_t *
s_epoch (ty_dataset_t *ds, uint32_t block, uint32_t window, uint64_t seed, size_t cap)
{
    ty_dataset_iter_opts_t o = { .order = TY_DATASET_ORDER_BLOCKS, .seed = seed,
                                 .block = block, .window = window };
    ty_dataset_iter_t *it;
    assert_int_equal (ty_dataset_iter_new_opts (ds, TY_SPLIT_TRAIN, &o, &it), TY_OK);
    uint64_t *order = calloc (S_TRAIN_N, sizeof *order);
    assert_non_null (order);
    assert_int_equal (s_read_epoch (ds, it, cap, order), S_TRAIN_N);
    ty_dataset_iter_destroy (&it);
    assert_null (it);
    return order;
}

/* ---- tests ----------------------------------------------------------------- */

static void
test_dataset_blocks_every_sample_once (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset_blocks");
    ty_dataset_t *ds = must_open_version (data);
    /* defaults, one-sample blocks, odd sizes, one block bigger than the
     * split, more blocks per window than the split has */
    const uint32_t shapes[][2] = { { 0, 0 }, { 1, 1 }, { 7, 3 }, { 64, 16 },
                                   { 5000, 1 }, { 100, 50 } };
    const size_t caps[] = { 1, 13, S_BATCH_MAX };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
            uint64_t *order = s_epoch (ds, shapes[s][0], shapes[s][1], 11, caps[c]);
            s_assert_permutation (order, S_TRAIN_N);
            free (order);
        }
    /* an empty split and a tiny one */
    ty_dataset_iter_opts_t o = { .order = TY_DATASET_ORDER_BLOCKS, .seed = 1 };
    ty_dataset_iter_t *it;
    ty_dataset_view_t views[4];
    size_t got = 99;
    assert_int_equal (ty_dataset_iter_new_opts (ds, TY_SPLIT_CALIB, &o, &it), TY_OK);
    assert_int_equal (ty_dataset_iter_next (it, views, 4, &got), TY_OK);
    assert_int_equal (got, 0);
    ty_dataset_iter_destroy (&it);
    assert_int_equal (ty_dataset_iter_new_opts (ds, TY_SPLIT_VAL, &o, &it), TY_OK);
    uint64_t total = 0, sum = 0;
    while (ty_dataset_iter_next (it, views, 4, &got) == TY_OK && got)
        for (size_t i = 0; i < got; i++, total++)
            sum += views[i].index;
    assert_int_equal (total, 10);
    assert_int_equal (sum, 45);    /* 0 + 1 + ... + 9: each once */
    ty_dataset_iter_destroy (&it);
    ty_dataset_destroy (&ds);
    ty_tmpdir_free (data);
}

static void
test_dataset_blocks_deterministic_per_seed (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset_blocks");
    ty_dataset_t *ds = must_open_version (data);
    const size_t n_bytes = S_TRAIN_N * sizeof (uint64_t);
    uint64_t *a = s_epoch (ds, 0, 0, 42, 64);
    uint64_t *b = s_epoch (ds, 0, 0, 42, 64);
    uint64_t *c = s_epoch (ds, 0, 0, 43, 64);
    uint64_t *d = s_epoch (ds, 0, 0, 42, 1);     /* batch size does not matter */
    uint64_t *e = s_epoch (ds, 16, 4, 42, 64);   /* the shape does */
    assert_memory_equal (a, b, n_bytes);
    assert_memory_equal (a, d, n_bytes);
    assert_memory_not_equal (a, c, n_bytes);
    assert_memory_not_equal (a, e, n_bytes);
    /* shuffled at all: few samples stay in place */
    uint64_t in_place = 0;
    for (uint64_t i = 0; i < S_TRAIN_N; i++)
        in_place += a[i] == i;
    assert_true (in_place < S_TRAIN_N / 10);

    /* reset: the same seed starts the same order again, another seed (the
     * next epoch) another one, still every sample once */
    ty_dataset_iter_opts_t o = { .order = TY_DATASET_ORDER_BLOCKS, .seed = 42 };
    ty_dataset_iter_t *it;
    assert_int_equal (ty_dataset_iter_new_opts (ds, TY_SPLIT_TRAIN, &o, &it), TY_OK);
    uint64_t *r = calloc (S_TRAIN_N, sizeof *r);
    assert_non_null (r);
    ty_dataset_view_t views[3];
    size_t got;
    assert_int_equal (ty_dataset_iter_next (it, views, 3, &got), TY_OK);   /* half-read */
    assert_int_equal (ty_dataset_iter_reset (it, 42), TY_OK);
    assert_int_equal (s_read_epoch (ds, it, 64, r), S_TRAIN_N);
    assert_memory_equal (a, r, n_bytes);
    assert_int_equal (ty_dataset_iter_reset (it, 43), TY_OK);
    assert_int_equal (s_read_epoch (ds, it, 64, r), S_TRAIN_N);
    assert_memory_equal (c, r, n_bytes);
    ty_dataset_iter_destroy (&it);
    free (r); free (a); free (b); free (c); free (d); free (e);
    ty_dataset_destroy (&ds);
    ty_tmpdir_free (data);
}

/* The structure the speed comes from: each window of block x window
 * samples is made of whole blocks of consecutive keys, the blocks come in
 * a shuffled order, and a window's samples are mixed, not in key order. */
static void
test_dataset_blocks_windows_of_whole_blocks (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset_blocks");
    ty_dataset_t *ds = must_open_version (data);
    /* 50 whole blocks: window boundaries at multiples of 100 */
    const uint32_t block = 20, window = 5;
    const uint64_t per_window = block * window;
    const uint64_t n_blocks = (S_TRAIN_N + block - 1) / block;
    uint64_t *order = s_epoch (ds, block, window, 5, 100);
    uint64_t *first_block = calloc (n_blocks, sizeof *first_block);
    assert_non_null (first_block);
    uint64_t mixed_windows = 0, n_windows = 0, block_pos = 0;
    for (uint64_t w0 = 0; w0 < S_TRAIN_N; w0 += per_window, n_windows++) {
        uint64_t end = w0 + per_window < S_TRAIN_N ? w0 + per_window : S_TRAIN_N;
        uint64_t per_block[64] = { 0 };   /* n_blocks <= 64 here */
        assert_true (n_blocks <= 64);
        uint64_t distinct = 0, sorted = 1;
        for (uint64_t i = w0; i < end; i++) {
            uint64_t b = order[i] / block;
            if (per_block[b]++ == 0)
                distinct++;
            if (i > w0 && order[i] < order[i - 1])
                sorted = 0;
        }
        assert_true (distinct <= window);
        /* whole blocks: each block seen here has all its keys here */
        uint64_t whole = 0;
        for (uint64_t b = 0; b < n_blocks; b++)
            if (per_block[b]) {
                uint64_t size = (b + 1) * block <= S_TRAIN_N ? block : S_TRAIN_N - b * block;
                assert_int_equal (per_block[b], size);
                first_block[block_pos++] = b;
                whole += size;
            }
        assert_int_equal (whole, end - w0);
        mixed_windows += !sorted;
    }
    assert_int_equal (block_pos, n_blocks);
    assert_int_equal (mixed_windows, n_windows);
    /* the blocks are not visited in key order */
    uint64_t ascending = 1;
    for (uint64_t i = 1; i < n_windows; i++) {
        uint64_t lo_prev = UINT64_MAX, lo = UINT64_MAX;
        for (uint64_t k = (i - 1) * per_window; k < i * per_window; k++)
            lo_prev = order[k] < lo_prev ? order[k] : lo_prev;
        for (uint64_t k = i * per_window; k < (i + 1) * per_window && k < S_TRAIN_N; k++)
            lo = order[k] < lo ? order[k] : lo;
        if (lo < lo_prev)
            ascending = 0;
    }
    assert_false (ascending);
    free (first_block);
    free (order);
    ty_dataset_destroy (&ds);
    ty_tmpdir_free (data);
}

static void
test_dataset_blocks_rejects_bad_options (void **state)
{
    (void) state;
    char *data = ty_tmpdir_new ("ty_test_dataset_blocks");
    ty_dataset_t *ds = must_open_version (data);
    ty_dataset_iter_t *it = NULL;
    ty_dataset_iter_opts_t o = { .order = TY_DATASET_ORDER_BLOCKS, .seed = 1,
                                 .block = TY_DATASET_WINDOW_KEYS_MAX, .window = 2 };
    assert_int_equal (ty_dataset_iter_new_opts (ds, TY_SPLIT_TRAIN, &o, &it), TY_EINVAL);
    assert_null (it);
    o.block = 0;
    o.order = (ty_dataset_order_t) 9;
    assert_int_equal (ty_dataset_iter_new_opts (ds, TY_SPLIT_TRAIN, &o, &it), TY_EINVAL);
    assert_null (it);
    assert_int_equal (ty_dataset_iter_new_opts (ds, TY_SPLIT_TRAIN, NULL, &it), TY_EINVAL);
    assert_int_equal (ty_dataset_iter_new_opts (ds, TY_SPLIT_COUNT, &o, &it), TY_EINVAL);
    /* the bool constructor is the KEYS / SHUFFLE orders of _opts */
    o = (ty_dataset_iter_opts_t) { .order = TY_DATASET_ORDER_SHUFFLE, .seed = 3 };
    assert_int_equal (ty_dataset_iter_new_opts (ds, TY_SPLIT_TRAIN, &o, &it), TY_OK);
    uint64_t *x = calloc (S_TRAIN_N, sizeof *x), *y = calloc (S_TRAIN_N, sizeof *y);
    assert_non_null (x);
    assert_non_null (y);
    assert_int_equal (s_read_epoch (ds, it, 50, x), S_TRAIN_N);
    ty_dataset_iter_destroy (&it);
    assert_int_equal (ty_dataset_iter_new (ds, TY_SPLIT_TRAIN, true, 3, &it), TY_OK);
    assert_int_equal (s_read_epoch (ds, it, 50, y), S_TRAIN_N);
    ty_dataset_iter_destroy (&it);
    assert_memory_equal (x, y, S_TRAIN_N * sizeof *x);
    free (x);
    free (y);
    ty_dataset_destroy (&ds);
    ty_tmpdir_free (data);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_dataset_blocks_every_sample_once),
        cmocka_unit_test (test_dataset_blocks_deterministic_per_seed),
        cmocka_unit_test (test_dataset_blocks_windows_of_whole_blocks),
        cmocka_unit_test (test_dataset_blocks_rejects_bad_options),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

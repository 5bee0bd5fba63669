/*  test_id: ty_id makes unique, URL-safe ids that sort by creation time.
 *  Read as the module's usage example: ty_id_new fills a TY_ID_LEN + 1 buffer,
 *  ty_id_valid says whether a string from a peer can be one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ty_clock.h"
#include "ty_id.h"

static const char s_alphabet [] = "0123456789abcdefghjkmnpqrstvwxyz";

static void
test_id_new_is_valid (void **state)
{
    (void) state;
    char id [TY_ID_LEN + 1];
    ty_id_new (id);
    assert_int_equal (strlen (id), TY_ID_LEN);
    assert_true (ty_id_valid (id));
    /* URL-safe: only the lower-case Crockford alphabet, nothing to escape. */
    for (const char *p = id; *p; p++)
        assert_non_null (strchr (s_alphabet, *p));
}

/* Lexical order = creation order, even for many ids within one millisecond:
   the job list and XRANGE-style scans rely on it. */
static void
test_id_sorts_by_creation (void **state)
{
    (void) state;
    char prev [TY_ID_LEN + 1], cur [TY_ID_LEN + 1];
    ty_id_new (prev);
    for (int i = 0; i < 100000; i++) {
        ty_id_new (cur);
        if (strcmp (prev, cur) >= 0)
            fail_msg ("id %d not after its predecessor: %s then %s", i, prev, cur);
        memcpy (prev, cur, sizeof cur);
    }
}

/* The first 10 characters are the wall-clock ms: decode them and compare. */
static void
test_id_prefix_is_wall_time (void **state)
{
    (void) state;
    int64_t before = ty_clock_wall_ms ();
    char id [TY_ID_LEN + 1];
    ty_id_new (id);
    int64_t after = ty_clock_wall_ms ();
    int64_t ms = 0;
    for (int i = 0; i < 10; i++) {
        const char *p = strchr (s_alphabet, id [i]);
        assert_non_null (p);
        ms = ms * 32 + (p - s_alphabet);
    }
    /* ty_id_new may run a few ms ahead of the clock when it counts through a
       millisecond, never behind it. */
    assert_true (ms >= before);
    assert_true (ms <= after + 1000);
}

#define S_THREADS      4
#define S_PER_THREAD   20000

static char s_ids [S_THREADS * S_PER_THREAD][TY_ID_LEN + 1];

static void *
s_make_ids (void *arg)
{
    size_t t = (size_t) (uintptr_t) arg;
    for (size_t i = 0; i < S_PER_THREAD; i++)
        ty_id_new (s_ids [t * S_PER_THREAD + i]);
    return NULL;
}

static int
s_cmp (const void *a, const void *b)
{
    return strcmp (a, b);
}

/* Thread-safe: concurrent callers never get the same id (four client threads
   of one process submit at once in the integration tests). */
static void
test_id_unique_across_threads (void **state)
{
    (void) state;
    pthread_t th [S_THREADS];
    for (size_t t = 0; t < S_THREADS; t++)
        assert_int_equal (pthread_create (&th [t], NULL, s_make_ids, (void *) (uintptr_t) t), 0);
    for (size_t t = 0; t < S_THREADS; t++)
        assert_int_equal (pthread_join (th [t], NULL), 0);
    qsort (s_ids, S_THREADS * S_PER_THREAD, sizeof s_ids [0], s_cmp);
    for (size_t i = 1; i < S_THREADS * S_PER_THREAD; i++)
        if (!strcmp (s_ids [i - 1], s_ids [i]))
            fail_msg ("duplicate id %s", s_ids [i]);
}

/* ty_id_valid is the broker's first check on a job id from a peer. */
static void
test_id_valid_rejects_garbage (void **state)
{
    (void) state;
    assert_false (ty_id_valid (NULL));
    assert_false (ty_id_valid (""));
    assert_false (ty_id_valid ("0123456789abcde"));          /* 15 chars */
    assert_false (ty_id_valid ("0123456789abcdefg"));        /* 17 chars */
    assert_false (ty_id_valid ("0123456789ABCDEF"));         /* upper case */
    assert_false (ty_id_valid ("0123456789abcdei"));         /* i: not Crockford */
    assert_false (ty_id_valid ("0123456789abcdel"));         /* l */
    assert_false (ty_id_valid ("0123456789abcdeo"));         /* o */
    assert_false (ty_id_valid ("0123456789abcdeu"));         /* u */
    assert_false (ty_id_valid ("0123456789abcd-f"));         /* not URL-plain */
    assert_false (ty_id_valid ("../../etc/passwd"));         /* 16 chars, path */
    assert_false (ty_id_valid ("0123456789abcd\nf"));
    assert_true  (ty_id_valid ("0123456789abcdef"));
    assert_true  (ty_id_valid ("zzzzzzzzzzzzzzzz"));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_id_new_is_valid),
        cmocka_unit_test (test_id_sorts_by_creation),
        cmocka_unit_test (test_id_prefix_is_wall_time),
        cmocka_unit_test (test_id_unique_across_threads),
        cmocka_unit_test (test_id_valid_rejects_garbage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

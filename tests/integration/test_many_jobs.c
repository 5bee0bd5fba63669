/*  test_many_jobs: 1000 noop jobs from 4 concurrent clients (one thread and
 *  one ty_client_t each) on 3 workers. All must end SUCCEEDED and each must
 *  be executed exactly once (exec log: one line per id, attempt 1): no job
 *  lost between submit and dispatch, none dispatched twice. */
#include "ty_it.h"

#include <pthread.h>

#define S_CLIENTS        4
#define S_PER_CLIENT     250
#define S_JOBS           (S_CLIENTS * S_PER_CLIENT)
#define S_WORKERS        3
/* 200 ms heartbeats: this test loads both cores, and a starved worker that
   misses 3 heartbeats would be declared dead and its job run again. */
#define S_HEARTBEAT_MS   200
#define S_DONE_MS        90000

typedef struct {
    const char *endpoint;
    char  ids [S_PER_CLIENT][TY_ID_LEN + 1];
    int   submitted;
    int   rc;
    char  err [256];
} s_submitter_t;

static void *
s_submit_all (void *arg)
{
    s_submitter_t *s = arg;
    /* One client per thread: a ty_client_t is not thread-safe. */
    ty_client_t *c = ty_client_new (s->endpoint);
    if (!c) {
        s->rc = TY_ECONNECT;
        snprintf (s->err, sizeof s->err, "ty_client_new failed");
        return NULL;
    }
    ty_it_noop_t n;
    ty_it_noop (&n, 0, 0, NULL);
    for (int i = 0; i < S_PER_CLIENT; i++) {
        s->rc = ty_client_submit (c, &n.spec, NULL, 0, NULL, TY_IT_RPC_MS, s->ids [i], NULL);
        if (s->rc != TY_OK) {
            snprintf (s->err, sizeof s->err, "%s", ty_client_errstr (c));
            break;
        }
        s->submitted++;
    }
    ty_client_destroy (&c);
    return NULL;
}

static int
s_cmp (const void *a, const void *b)
{
    return strcmp (a, b);
}

static void
test_many_jobs_all_succeed_once (void **state)
{
    ty_it_t *it = *state;
    ty_testenv_t *env = it->env;
    ty_it_must_cluster (env, S_HEARTBEAT_MS, NULL, NULL, S_WORKERS);

    static s_submitter_t subs [S_CLIENTS];
    memset (subs, 0, sizeof subs);
    pthread_t th [S_CLIENTS];
    int64_t t0 = ty_testenv_now_ms ();
    for (int i = 0; i < S_CLIENTS; i++) {
        subs [i].endpoint = ty_testenv_client_ep (env);
        assert_int_equal (pthread_create (&th [i], NULL, s_submit_all, &subs [i]), 0);
    }
    for (int i = 0; i < S_CLIENTS; i++)
        assert_int_equal (pthread_join (th [i], NULL), 0);
    int64_t t_submitted = ty_testenv_now_ms ();
    for (int i = 0; i < S_CLIENTS; i++)
        if (subs [i].rc != TY_OK)
            fail_msg ("client %d: submit %d failed: %s: %s", i, subs [i].submitted,
                      ty_strerror (subs [i].rc), subs [i].err);

    /* Flatten; the ids must be distinct across clients. */
    static char ids [S_JOBS][TY_ID_LEN + 1];
    for (int i = 0; i < S_CLIENTS; i++)
        memcpy (ids [i * S_PER_CLIENT], subs [i].ids, sizeof subs [i].ids);
    static char sorted [S_JOBS][TY_ID_LEN + 1];
    memcpy (sorted, ids, sizeof ids);
    qsort (sorted, S_JOBS, sizeof sorted [0], s_cmp);
    for (int i = 1; i < S_JOBS; i++)
        if (!strcmp (sorted [i - 1], sorted [i]))
            fail_msg ("two submits got the same id %s", sorted [i]);

    long ok = ty_testenv_wait_all_terminal (env, ids [0], sizeof ids [0], S_JOBS, S_DONE_MS);
    int64_t t_done = ty_testenv_now_ms ();
    assert_int_equal (ok, S_JOBS);
    fprintf (stderr, "many_jobs: %d submitted in %lld ms, all done after %lld ms\n", S_JOBS,
             (long long) (t_submitted - t0), (long long) (t_done - t0));

    /* Exactly once: one exec-log line per job, of attempt 1, and no others. */
    ty_testenv_execlog_t *log = ty_testenv_execlog_load (env);
    assert_non_null (log);
    assert_int_equal (ty_testenv_execlog_bad (log), 0);
    int wrong = 0;
    for (int i = 0; i < S_JOBS; i++) {
        int n = ty_testenv_execlog_count (log, ids [i], 0);
        int n1 = ty_testenv_execlog_count (log, ids [i], 1);
        if (n != 1 || n1 != 1) {
            if (wrong++ < 5)
                fprintf (stderr, "job %s executed %d times (%d as attempt 1)\n", ids [i], n, n1);
        }
    }
    size_t lines = ty_testenv_execlog_size (log);
    ty_testenv_execlog_destroy (&log);
    assert_int_equal (wrong, 0);
    assert_int_equal (lines, S_JOBS);

    /* All three workers took part: dispatch spreads over free workers. */
    int per_worker [S_WORKERS] = { 0 };
    for (int i = 0; i < S_JOBS; i++) {
        char *w = ty_testenv_job_field (env, ids [i], "worker");
        assert_non_null (w);
        int k = (w [0] == 'w') ? atoi (w + 1) : 0;
        if (k >= 1 && k <= S_WORKERS)
            per_worker [k - 1]++;
        else
            fail_msg ("job %s: worker '%s' is none of w1..w%d", ids [i], w, S_WORKERS);
        free (w);
    }
    fprintf (stderr, "many_jobs: per worker %d %d %d\n", per_worker [0], per_worker [1],
             per_worker [2]);
    for (int k = 0; k < S_WORKERS; k++)
        assert_true (per_worker [k] > 0);
    ty_testenv_passed (env);
}

TY_IT_SETUP ("many_jobs")

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_many_jobs_all_succeed_once, s_setup, ty_it_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

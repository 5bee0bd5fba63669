/*  test_registry: the model registry against real LMDB files in temp dirs.
 *
 *  Version directories are written the way the train worker lays them out
 *  (config.json, lineage.json, model.pt) and, for evaluated versions, a
 *  metrics.json with a gate verdict as the evaluate worker writes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ty_error.h"
#include "ty_registry.h"

#define S_DEVICES        10000
#define S_KILL_ROUNDS    12
#define S_KILL_MAX_US    40000     /* the child runs up to this long before SIGKILL */
#define S_MODEL_BYTES    "abc"      /* sha256 known below */
#define S_SHA256_ABC     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static const ty_registry_actor_t s_alice = { "alice", "tests pass", 0 };
static const ty_registry_actor_t s_bob_force = { "bob", "hotfix, gate is flaky", 1 };

typedef struct {
    char data [PATH_MAX];
} s_fixture_t;

static void
s_write_file (const char *dir, const char *file, const char *text)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    assert_int_equal (fputs (text, f) >= 0, 1);
    assert_int_equal (fclose (f), 0);
}

static void
s_mkdir (const char *path)
{
    assert_true (mkdir (path, 0755) == 0 || errno == EEXIST);
}

/* gate: NULL = not evaluated, else "PASS" or "FAIL". */
static void
s_make_version (const char *data, const char *name, uint64_t version, const char *gate)
{
    char dir [PATH_MAX], text [1024];
    snprintf (dir, sizeof dir, "%s/models", data);
    s_mkdir (dir);
    snprintf (dir, sizeof dir, "%s/models/%s", data, name);
    s_mkdir (dir);
    snprintf (dir, sizeof dir, "%s/models/%s/%llu", data, name, (unsigned long long) version);
    s_mkdir (dir);
    s_write_file (dir, "model.pt", S_MODEL_BYTES);
    s_write_file (dir, "config.json",
                  "{\"kind\": \"textclf\", \"trainyard_version\": \"0.6.1\"}");
    snprintf (text, sizeof text,
              "{\"format\": 1, \"dataset\": {\"name\": \"spam\", \"version\": 3,"
              " \"content_hash\": \"deadbeef\"}, \"job_id\": \"job-%llu\", \"attempt\": 1,"
              " \"params\": {\"epochs\": \"5\", \"lr\": \"0.1\"}}",
              (unsigned long long) version);
    s_write_file (dir, "lineage.json", text);
    if (gate) {
        snprintf (text, sizeof text,
                  "{\"format_version\": 1, \"summary\": \"accuracy 0.9\", \"job_id\": \"ev-1\","
                  " \"dataset\": {\"name\": \"spam\", \"version\": 3, \"split\": \"test\"},"
                  " \"classification\": {\"accuracy\": 0.91, \"macro\": {\"f1\": 0.88}},"
                  " \"gate\": {\"verdict\": \"%s\", \"checks\": []}}", gate);
        s_write_file (dir, "metrics.json", text);
    }
}

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    snprintf (f->data, sizeof f->data, "/tmp/ty_registry_XXXXXX");
    assert_non_null (mkdtemp (f->data));
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    char cmd [PATH_MAX + 16];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->data);
    assert_int_equal (system (cmd), 0);
    free (f);
    return 0;
}

static ty_registry_t *
s_open (s_fixture_t *f)
{
    ty_registry_t *reg = NULL;
    assert_int_equal (ty_registry_open (f->data, &reg), TY_OK);
    assert_non_null (reg);
    return reg;
}

static ty_stage_t
s_stage (ty_registry_t *reg, const char *name, uint64_t v)
{
    ty_stage_t st = TY_STAGE_COUNT;
    assert_int_equal (ty_registry_version_stage (reg, name, v, &st, NULL), TY_OK);
    return st;
}

static size_t
s_history_len (ty_registry_t *reg, const char *name)
{
    cJSON *h = NULL;
    assert_int_equal (ty_registry_history_json (reg, name, &h), TY_OK);
    size_t n = (size_t) cJSON_GetArraySize (h);
    cJSON_Delete (h);
    return n;
}

/* ---- register ------------------------------------------------------------------ */

static void
test_register_records_lineage_metrics_artifacts (void **state)
{
    s_fixture_t *f = *state;
    s_make_version (f->data, "spam", 1, "PASS");
    ty_registry_t *reg = s_open (f);
    int created = 0;
    assert_int_equal (ty_registry_register (reg, "spam", 1, &s_alice, &created), TY_OK);
    assert_int_equal (created, 1);
    assert_int_equal (s_stage (reg, "spam", 1), TY_STAGE_NONE);

    cJSON *doc = NULL;
    assert_int_equal (ty_registry_version_json (reg, "spam", 1, &doc), TY_OK);
    assert_int_equal (cJSON_GetObjectItem (doc, "format")->valueint, TY_REGISTRY_FORMAT_VERSION);
    assert_string_equal (cJSON_GetObjectItem (doc, "code_version")->valuestring, "0.6.1");
    cJSON *lin = cJSON_GetObjectItem (doc, "lineage");
    assert_string_equal (cJSON_GetObjectItem (lin, "job_id")->valuestring, "job-1");
    assert_int_equal (cJSON_GetObjectItem (cJSON_GetObjectItem (lin, "dataset"), "version")->valueint, 3);
    assert_string_equal (cJSON_GetObjectItem (cJSON_GetObjectItem (lin, "params"), "lr")->valuestring,
                         "0.1");
    cJSON *m = cJSON_GetObjectItem (doc, "metrics");
    assert_string_equal (cJSON_GetObjectItem (m, "gate")->valuestring, "PASS");
    assert_true (cJSON_GetObjectItem (cJSON_GetObjectItem (m, "headline"), "accuracy")->valuedouble
                 > 0.9);
    /* artifacts: config.json, lineage.json, model.pt (metrics.json is not one) */
    cJSON *arts = cJSON_GetObjectItem (doc, "artifacts");
    assert_int_equal (cJSON_GetArraySize (arts), 3);
    cJSON *pt = cJSON_GetArrayItem (arts, 2);
    assert_string_equal (cJSON_GetObjectItem (pt, "file")->valuestring, "model.pt");
    assert_string_equal (cJSON_GetObjectItem (pt, "sha256")->valuestring, S_SHA256_ABC);
    assert_int_equal (cJSON_GetObjectItem (pt, "bytes")->valueint, 3);
    cJSON_Delete (doc);

    /* registering again with nothing new writes nothing */
    assert_int_equal (ty_registry_register (reg, "spam", 1, &s_alice, &created), TY_OK);
    assert_int_equal (created, 0);
    assert_int_equal (s_history_len (reg, "spam"), 1);
    /* a new evaluation is picked up as a refresh, the stage kept */
    assert_int_equal (ty_registry_promote (reg, "spam", 1, TY_STAGE_STAGING, 0, &s_alice), TY_OK);
    s_make_version (f->data, "spam", 1, "FAIL");
    assert_int_equal (ty_registry_register (reg, "spam", 1, &s_alice, &created), TY_OK);
    assert_int_equal (s_history_len (reg, "spam"), 3);
    assert_int_equal (s_stage (reg, "spam", 1), TY_STAGE_STAGING);
    assert_int_equal (ty_registry_version_json (reg, "spam", 1, &doc), TY_OK);
    assert_string_equal (cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "metrics"), "gate")->valuestring,
                         "FAIL");
    cJSON_Delete (doc);

    /* refusals: no directory, bad name */
    assert_int_equal (ty_registry_register (reg, "spam", 9, &s_alice, NULL), TY_ENOTFOUND);
    assert_int_equal (ty_registry_register (reg, "../x", 1, &s_alice, NULL), TY_EINVAL);
    ty_registry_destroy (&reg);
    assert_null (reg);
    ty_registry_destroy (&reg);   /* idempotent */
}

/* ---- promote / rollback / revert / delete ------------------------------------------- */

static void
test_promote_rollback_revert_delete (void **state)
{
    s_fixture_t *f = *state;
    for (uint64_t v = 1; v <= 4; v++)
        s_make_version (f->data, "spam", v, v == 4 ? "FAIL" : "PASS");
    ty_registry_t *reg = s_open (f);
    for (uint64_t v = 1; v <= 4; v++)
        assert_int_equal (ty_registry_register (reg, "spam", v, &s_alice, NULL), TY_OK);

    /* no production yet: nothing to roll back to, nothing serves */
    uint64_t now = 0, ver = 0;
    assert_int_equal (ty_registry_rollback (reg, "spam", &s_alice, &now), TY_ESTATE);
    assert_int_equal (ty_registry_resolve (reg, "spam@production", NULL, NULL, &ver, NULL),
                      TY_ENOTFOUND);

    assert_int_equal (ty_registry_promote (reg, "spam", 1, TY_STAGE_PRODUCTION, 0, &s_alice), TY_OK);
    assert_int_equal (ty_registry_promote (reg, "spam", 2, TY_STAGE_PRODUCTION, 0, &s_alice), TY_OK);
    assert_int_equal (s_stage (reg, "spam", 1), TY_STAGE_ARCHIVED);
    assert_int_equal (s_stage (reg, "spam", 2), TY_STAGE_PRODUCTION);

    /* canary, then the canary goes to production: canary cleared */
    assert_int_equal (ty_registry_promote (reg, "spam", 3, TY_STAGE_CANARY, 25, &s_alice), TY_OK);
    int rollout = 0;
    ty_stage_t st;
    assert_int_equal (ty_registry_version_stage (reg, "spam", 3, &st, &rollout), TY_OK);
    assert_int_equal (st, TY_STAGE_CANARY);
    assert_int_equal (rollout, 25);
    assert_int_equal (ty_registry_promote (reg, "spam", 3, TY_STAGE_CANARY, 101, &s_alice), TY_EINVAL);
    /* the production version cannot become canary or be demoted */
    assert_int_equal (ty_registry_promote (reg, "spam", 2, TY_STAGE_CANARY, 5, &s_alice), TY_ESTATE);
    assert_int_equal (ty_registry_promote (reg, "spam", 2, TY_STAGE_NONE, 0, &s_alice), TY_ESTATE);
    assert_int_equal (ty_registry_promote (reg, "spam", 3, TY_STAGE_PRODUCTION, 0, &s_alice), TY_OK);
    ty_registry_model_t m;
    assert_int_equal (ty_registry_model (reg, "spam", &m), TY_OK);
    assert_int_equal (m.production, 3);
    assert_int_equal (m.canary, 0);
    assert_int_equal (m.rollout, 0);
    assert_int_equal (m.n_previous, 2);
    assert_int_equal (s_stage (reg, "spam", 2), TY_STAGE_ARCHIVED);

    /* gate failed: refused without force, for every serving stage */
    assert_int_equal (ty_registry_promote (reg, "spam", 4, TY_STAGE_PRODUCTION, 0, &s_alice),
                      TY_ESTATE);
    assert_non_null (strstr (ty_registry_errstr (reg), "gate"));
    assert_int_equal (ty_registry_promote (reg, "spam", 4, TY_STAGE_CANARY, 10, &s_alice), TY_ESTATE);
    assert_int_equal (ty_registry_promote (reg, "spam", 4, TY_STAGE_STAGING, 0, &s_alice), TY_ESTATE);
    assert_int_equal (s_stage (reg, "spam", 4), TY_STAGE_NONE);
    assert_int_equal (ty_registry_promote (reg, "spam", 4, TY_STAGE_PRODUCTION, 0, &s_bob_force),
                      TY_OK);
    assert_int_equal (s_stage (reg, "spam", 4), TY_STAGE_PRODUCTION);

    /* rollback walks back through production history: 4 -> 3 -> 2 -> 1 */
    assert_int_equal (ty_registry_rollback (reg, "spam", &s_alice, &now), TY_OK);
    assert_int_equal (now, 3);
    assert_int_equal (s_stage (reg, "spam", 4), TY_STAGE_ARCHIVED);
    assert_int_equal (s_stage (reg, "spam", 3), TY_STAGE_PRODUCTION);
    assert_int_equal (ty_registry_rollback (reg, "spam", &s_alice, &now), TY_OK);
    assert_int_equal (now, 2);

    /* delete: production and default refused; deleting 1 drops it from history */
    assert_int_equal (ty_registry_delete (reg, "spam", 2, &s_alice), TY_ESTATE);
    assert_int_equal (s_stage (reg, "spam", 2), TY_STAGE_PRODUCTION);
    assert_int_equal (ty_registry_set_default (reg, "spam", 3, &s_alice), TY_OK);
    assert_int_equal (ty_registry_delete (reg, "spam", 3, &s_alice), TY_ESTATE);
    assert_int_equal (ty_registry_delete (reg, "spam", 1, &s_alice), TY_OK);
    assert_int_equal (ty_registry_version_stage (reg, "spam", 1, &st, NULL), TY_ENOTFOUND);
    assert_int_equal (ty_registry_rollback (reg, "spam", &s_alice, &now), TY_ESTATE);
    assert_int_equal (s_stage (reg, "spam", 2), TY_STAGE_PRODUCTION);

    /* revert to the default, and rollback undoes the revert */
    assert_int_equal (ty_registry_revert (reg, "spam", &s_alice), TY_OK);
    assert_int_equal (ty_registry_resolve (reg, "spam@production", NULL, NULL, &ver, &st), TY_OK);
    assert_int_equal (ver, 3);
    assert_int_equal (st, TY_STAGE_PRODUCTION);
    assert_int_equal (ty_registry_rollback (reg, "spam", &s_alice, &now), TY_OK);
    assert_int_equal (now, 2);
    assert_int_equal (ty_registry_set_default (reg, "spam", 9, &s_alice), TY_ENOTFOUND);

    /* latest follows deletes */
    assert_int_equal (ty_registry_resolve (reg, "spam@latest", NULL, NULL, &ver, NULL), TY_OK);
    assert_int_equal (ver, 4);
    assert_int_equal (ty_registry_delete (reg, "spam", 4, &s_alice), TY_OK);
    assert_int_equal (ty_registry_resolve (reg, "spam", NULL, NULL, &ver, NULL), TY_OK);
    assert_int_equal (ver, 3);
    ty_registry_destroy (&reg);

    /* all of it survives closing and reopening */
    reg = s_open (f);
    assert_int_equal (ty_registry_model (reg, "spam", &m), TY_OK);
    assert_int_equal (m.production, 2);
    assert_int_equal (m.default_version, 3);
    assert_int_equal (m.n_versions, 2);
    ty_registry_destroy (&reg);
}

/* ---- the audit log ---------------------------------------------------------------- */

static void
test_audit_log_in_order (void **state)
{
    s_fixture_t *f = *state;
    s_make_version (f->data, "fraud", 1, "PASS");
    s_make_version (f->data, "fraud", 2, "FAIL");
    s_make_version (f->data, "other", 1, NULL);
    ty_registry_t *reg = s_open (f);
    assert_int_equal (ty_registry_register (reg, "fraud", 1, &s_alice, NULL), TY_OK);
    assert_int_equal (ty_registry_register (reg, "other", 1, &s_alice, NULL), TY_OK);
    assert_int_equal (ty_registry_register (reg, "fraud", 2, &s_alice, NULL), TY_OK);
    assert_int_equal (ty_registry_promote (reg, "fraud", 1, TY_STAGE_PRODUCTION, 0, &s_alice), TY_OK);
    assert_int_equal (ty_registry_promote (reg, "fraud", 2, TY_STAGE_PRODUCTION, 0, &s_alice),
                      TY_ESTATE);    /* refused: no entry */
    assert_int_equal (ty_registry_promote (reg, "fraud", 2, TY_STAGE_CANARY, 10, &s_bob_force), TY_OK);
    assert_int_equal (ty_registry_promote (reg, "fraud", 2, TY_STAGE_PRODUCTION, 0, &s_bob_force),
                      TY_OK);
    assert_int_equal (ty_registry_set_default (reg, "fraud", 1, &s_alice), TY_OK);
    assert_int_equal (ty_registry_rollback (reg, "fraud", &s_alice, NULL), TY_OK);
    assert_int_equal (ty_registry_revert (reg, "fraud", &s_alice), TY_OK);  /* already: no entry */
    assert_int_equal (ty_registry_delete (reg, "fraud", 2, &s_alice), TY_OK);

    static const struct { const char *action; uint64_t version; const char *who; int forced;
                          uint64_t production; } want [] = {
        { "register",    1, "alice", 0, 0 },
        { "register",    2, "alice", 0, 0 },
        { "promote",     1, "alice", 0, 1 },
        { "promote",     2, "bob",   1, 1 },
        { "promote",     2, "bob",   1, 2 },
        { "set-default", 1, "alice", 0, 2 },
        { "rollback",    1, "alice", 0, 1 },
        { "delete",      2, "alice", 0, 1 },
    };
    cJSON *h = NULL;
    assert_int_equal (ty_registry_history_json (reg, "fraud", &h), TY_OK);
    assert_int_equal (cJSON_GetArraySize (h), sizeof want / sizeof want [0]);
    double last_seq = 0, last_time = 0;
    for (size_t i = 0; i < sizeof want / sizeof want [0]; i++) {
        cJSON *e = cJSON_GetArrayItem (h, (int) i);
        assert_string_equal (cJSON_GetObjectItem (e, "action")->valuestring, want [i].action);
        assert_int_equal (cJSON_GetObjectItem (e, "version")->valueint, want [i].version);
        assert_string_equal (cJSON_GetObjectItem (e, "who")->valuestring, want [i].who);
        assert_int_equal (cJSON_IsTrue (cJSON_GetObjectItem (e, "forced")), want [i].forced);
        assert_int_equal (cJSON_GetObjectItem (e, "production")->valueint, want [i].production);
        assert_true (cJSON_GetObjectItem (e, "seq")->valuedouble > last_seq);
        assert_true (cJSON_GetObjectItem (e, "time_ms")->valuedouble >= last_time);
        last_seq = cJSON_GetObjectItem (e, "seq")->valuedouble;
        last_time = cJSON_GetObjectItem (e, "time_ms")->valuedouble;
    }
    cJSON *fe = cJSON_GetArrayItem (h, 3);
    assert_string_equal (cJSON_GetObjectItem (fe, "why")->valuestring, "hotfix, gate is flaky");
    assert_string_equal (cJSON_GetObjectItem (fe, "to")->valuestring, "canary");
    assert_int_equal (cJSON_GetObjectItem (fe, "rollout")->valueint, 10);
    cJSON_Delete (h);
    /* the whole log holds the other model's entry too, in its place */
    assert_int_equal (ty_registry_history_json (reg, NULL, &h), TY_OK);
    assert_int_equal (cJSON_GetArraySize (h), 9);
    assert_string_equal (cJSON_GetObjectItem (cJSON_GetArrayItem (h, 1), "model")->valuestring,
                         "other");
    cJSON_Delete (h);
    /* list: both models, sorted */
    cJSON *l = NULL;
    assert_int_equal (ty_registry_models_json (reg, &l), TY_OK);
    assert_int_equal (cJSON_GetArraySize (l), 2);
    assert_string_equal (cJSON_GetObjectItem (cJSON_GetArrayItem (l, 0), "name")->valuestring, "fraud");
    assert_int_equal (cJSON_GetObjectItem (cJSON_GetArrayItem (l, 0), "versions")->valueint, 1);
    cJSON_Delete (l);
    ty_registry_destroy (&reg);
}

/* ---- resolution and the canary share -------------------------------------------------- */

static void
test_resolve_and_canary_share (void **state)
{
    s_fixture_t *f = *state;
    s_make_version (f->data, "kws", 1, "PASS");
    s_make_version (f->data, "kws", 2, "PASS");
    ty_registry_t *reg = s_open (f);
    assert_int_equal (ty_registry_register (reg, "kws", 1, &s_alice, NULL), TY_OK);
    assert_int_equal (ty_registry_register (reg, "kws", 2, &s_alice, NULL), TY_OK);
    assert_int_equal (ty_registry_promote (reg, "kws", 1, TY_STAGE_PRODUCTION, 0, &s_alice), TY_OK);

    uint64_t v = 0;
    char name [TY_REGISTRY_NAME_MAX + 1];
    /* no canary: every device gets production */
    assert_int_equal (ty_registry_resolve (reg, "kws@serving", "pi-17", name, &v, NULL), TY_OK);
    assert_string_equal (name, "kws");
    assert_int_equal (v, 1);
    assert_int_equal (ty_registry_resolve (reg, "kws@canary", NULL, NULL, &v, NULL), TY_ENOTFOUND);

    assert_int_equal (ty_registry_promote (reg, "kws", 2, TY_STAGE_CANARY, 10, &s_alice), TY_OK);
    assert_int_equal (ty_registry_resolve (reg, "kws@canary", NULL, NULL, &v, NULL), TY_OK);
    assert_int_equal (v, 2);
    assert_int_equal (ty_registry_resolve (reg, "kws@2", NULL, NULL, &v, NULL), TY_OK);
    assert_int_equal (v, 2);
    assert_int_equal (ty_registry_resolve (reg, "kws@7", NULL, NULL, &v, NULL), TY_ENOTFOUND);
    assert_int_equal (ty_registry_resolve (reg, "kws@serving", NULL, NULL, &v, NULL), TY_EINVAL);
    assert_int_equal (ty_registry_resolve (reg, "kws@nope", NULL, NULL, &v, NULL), TY_EINVAL);
    assert_int_equal (ty_registry_resolve (reg, "nomodel@latest", NULL, NULL, &v, NULL),
                      TY_ENOTFOUND);

    static unsigned char on_canary [S_DEVICES];
    size_t n_canary = 0;
    for (int i = 0; i < S_DEVICES; i++) {
        char dev [32];
        snprintf (dev, sizeof dev, "device-%d", i);
        uint64_t a = 0, b = 0;
        assert_int_equal (ty_registry_resolve (reg, "kws@serving", dev, NULL, &a, NULL), TY_OK);
        assert_int_equal (ty_registry_resolve (reg, "kws@serving", dev, NULL, &b, NULL), TY_OK);
        assert_int_equal (a, b);                      /* stable */
        assert_true (a == 1 || a == 2);
        on_canary [i] = a == 2;
        n_canary += a == 2;
    }
    /* 10 % of 10 000 within +-2 points */
    assert_in_range (n_canary, 800, 1200);

    /* raising the rollout only adds devices to the canary */
    assert_int_equal (ty_registry_promote (reg, "kws", 2, TY_STAGE_CANARY, 50, &s_alice), TY_OK);
    size_t n50 = 0;
    for (int i = 0; i < S_DEVICES; i++) {
        char dev [32];
        snprintf (dev, sizeof dev, "device-%d", i);
        assert_int_equal (ty_registry_resolve (reg, "kws@serving", dev, NULL, &v, NULL), TY_OK);
        if (on_canary [i])
            assert_int_equal (v, 2);
        n50 += v == 2;
    }
    assert_in_range (n50, 4800, 5200);
    /* the same answer after reopening (the bucket depends on the id only) */
    ty_registry_destroy (&reg);
    reg = s_open (f);
    assert_int_equal (ty_registry_resolve (reg, "kws@serving", "device-0", NULL, &v, NULL), TY_OK);
    assert_int_equal (v, ty_registry_device_bucket ("device-0") < 50 ? 2u : 1u);
    ty_registry_destroy (&reg);
}

/* ---- atomicity under kill -9 ---------------------------------------------------------- */

#define S_KILL_MODELS   2
#define S_KILL_VERSIONS 4
static const char *s_kill_names [S_KILL_MODELS] = { "alpha", "beta" };

/* The child: promotes, rollbacks and canaries at random until killed. */
static void
s_child_loop (const char *data, unsigned seed)
{
    ty_registry_t *reg = NULL;
    if (ty_registry_open (data, &reg) != TY_OK)
        _exit (3);
    srand (seed);
    for (long i = 0; i < 1000000; i++) {
        const char *name = s_kill_names [rand () % S_KILL_MODELS];
        uint64_t v = 1 + (uint64_t) (rand () % S_KILL_VERSIONS);
        char why [32];
        snprintf (why, sizeof why, "step %ld", i);
        ty_registry_actor_t by = { "child", why, 1 };
        switch (rand () % 4) {
        case 0:
        case 1: (void) ty_registry_promote (reg, name, v, TY_STAGE_PRODUCTION, 0, &by); break;
        case 2: (void) ty_registry_promote (reg, name, v, TY_STAGE_CANARY, rand () % 101, &by); break;
        default: (void) ty_registry_rollback (reg, name, &by, NULL); break;
        }
    }
    ty_registry_destroy (&reg);
    _exit (0);
}

/* Invariants: <= 1 production per model, the model record and the stage
 * records agree, the last audit entry of each model matches its record,
 * and the audit log's sequence has no holes. Returns the audit length. */
static size_t
s_check_invariants (ty_registry_t *reg)
{
    for (int i = 0; i < S_KILL_MODELS; i++) {
        ty_registry_model_t m;
        assert_int_equal (ty_registry_model (reg, s_kill_names [i], &m), TY_OK);
        int n_prod = 0, n_canary = 0;
        for (uint64_t v = 1; v <= S_KILL_VERSIONS; v++) {
            ty_stage_t st;
            int rollout = 0;
            assert_int_equal (ty_registry_version_stage (reg, s_kill_names [i], v, &st, &rollout),
                              TY_OK);
            if (st == TY_STAGE_PRODUCTION) {
                n_prod++;
                assert_int_equal (m.production, v);
            }
            if (st == TY_STAGE_CANARY) {
                n_canary++;
                assert_int_equal (m.canary, v);
                assert_int_equal (m.rollout, rollout);
            }
        }
        assert_true (n_prod <= 1);
        assert_int_equal (n_prod, m.production ? 1 : 0);
        assert_int_equal (n_canary, m.canary ? 1 : 0);
        cJSON *h = NULL;
        assert_int_equal (ty_registry_history_json (reg, s_kill_names [i], &h), TY_OK);
        cJSON *last = cJSON_GetArrayItem (h, cJSON_GetArraySize (h) - 1);
        assert_non_null (last);
        assert_int_equal (cJSON_GetObjectItem (last, "production")->valuedouble, m.production);
        assert_int_equal (cJSON_GetObjectItem (last, "canary")->valuedouble, m.canary);
        assert_int_equal (cJSON_GetObjectItem (last, "rollout")->valueint, m.rollout);
        cJSON_Delete (h);
    }
    cJSON *all = NULL;
    assert_int_equal (ty_registry_history_json (reg, NULL, &all), TY_OK);
    size_t n = (size_t) cJSON_GetArraySize (all);
    for (size_t i = 0; i < n; i++)
        assert_int_equal (cJSON_GetObjectItem (cJSON_GetArrayItem (all, (int) i), "seq")->valuedouble,
                          i + 1);
    cJSON_Delete (all);
    return n;
}

static void
test_kill9_during_promote_is_atomic (void **state)
{
    s_fixture_t *f = *state;
    ty_registry_t *reg = s_open (f);
    for (int i = 0; i < S_KILL_MODELS; i++)
        for (uint64_t v = 1; v <= S_KILL_VERSIONS; v++) {
            s_make_version (f->data, s_kill_names [i], v, v == S_KILL_VERSIONS ? "FAIL" : "PASS");
            assert_int_equal (ty_registry_register (reg, s_kill_names [i], v, &s_alice, NULL), TY_OK);
        }
    size_t before = s_check_invariants (reg);
    ty_registry_destroy (&reg);   /* never fork with an open environment */

    srand ((unsigned) time (NULL));
    for (int round = 0; round < S_KILL_ROUNDS; round++) {
        pid_t pid = fork ();
        assert_true (pid >= 0);
        if (pid == 0)
            s_child_loop (f->data, (unsigned) round * 7919u + 1);
        usleep ((useconds_t) (1000 + rand () % S_KILL_MAX_US));
        assert_int_equal (kill (pid, SIGKILL), 0);
        int status = 0;
        assert_int_equal (waitpid (pid, &status, 0), pid);
        assert_true (WIFSIGNALED (status) || (WIFEXITED (status) && WEXITSTATUS (status) == 0));
        reg = s_open (f);
        size_t after = s_check_invariants (reg);
        assert_true (after >= before);
        before = after;
        ty_registry_destroy (&reg);
    }
    /* the children did change things (forced promotes always apply) */
    reg = s_open (f);
    size_t total = s_check_invariants (reg);
    print_message ("audit entries after %d killed children: %zu\n", S_KILL_ROUNDS, total);
    assert_true (total > (size_t) (S_KILL_MODELS * S_KILL_VERSIONS));
    ty_registry_destroy (&reg);
}

/* A conversion's target and figures on one artifact: kept across a
 * refresh, replaced by a newer note, audited; unknown files refused. */
static void
test_registry_artifact_note (void **state)
{
    s_fixture_t *f = *state;
    s_make_version (f->data, "spam", 1, "PASS");
    ty_registry_t *reg = s_open (f);
    assert_int_equal (ty_registry_register (reg, "spam", 1, &s_alice, NULL), TY_OK);
    cJSON *m = cJSON_CreateObject ();
    cJSON_AddNumberToObject (m, "accuracy_change_points", -0.25);
    cJSON_AddNumberToObject (m, "size_ratio", 0.27);
    const ty_registry_actor_t job = { "job 01ABC", "converted to int8", 0 };
    assert_int_equal (ty_registry_artifact_note (reg, "spam", 1, "model.pt", "int8", m, &job),
                      TY_OK);
    /* not an artifact of the version, no such version, bad names */
    assert_int_equal (ty_registry_artifact_note (reg, "spam", 1, "model-int8.tym", "int8", m,
                                                 &job), TY_ENOTFOUND);
    assert_non_null (strstr (ty_registry_errstr (reg), "model-int8.tym"));
    assert_int_equal (ty_registry_artifact_note (reg, "spam", 2, "model.pt", "int8", m, &job),
                      TY_ENOTFOUND);
    assert_int_equal (ty_registry_artifact_note (reg, "spam", 1, "../x", "int8", m, &job),
                      TY_EINVAL);
    cJSON *arr = cJSON_CreateArray ();
    assert_int_equal (ty_registry_artifact_note (reg, "spam", 1, "model.pt", "int8", arr, &job),
                      TY_EINVAL);
    cJSON_Delete (arr);

    /* a refresh (a new evaluation) keeps the note */
    s_make_version (f->data, "spam", 1, "FAIL");
    assert_int_equal (ty_registry_register (reg, "spam", 1, &s_alice, NULL), TY_OK);
    cJSON *doc = NULL;
    assert_int_equal (ty_registry_version_json (reg, "spam", 1, &doc), TY_OK);
    cJSON *n = cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "notes"), "model.pt");
    assert_non_null (n);
    assert_string_equal (cJSON_GetObjectItem (n, "target")->valuestring, "int8");
    assert_string_equal (cJSON_GetObjectItem (n, "sha256")->valuestring, S_SHA256_ABC);
    assert_string_equal (cJSON_GetObjectItem (n, "who")->valuestring, "job 01ABC");
    assert_true (cJSON_GetObjectItem (cJSON_GetObjectItem (n, "metrics"),
                                      "accuracy_change_points")->valuedouble == -0.25);
    assert_string_equal (cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "metrics"),
                                              "gate")->valuestring, "FAIL");
    cJSON_Delete (doc);

    /* a newer note replaces it; the audit log has one "note" entry per note */
    cJSON_ReplaceItemInObject (m, "size_ratio", cJSON_CreateNumber (0.5));
    assert_int_equal (ty_registry_artifact_note (reg, "spam", 1, "model.pt", "fp16", m, &job),
                      TY_OK);
    assert_int_equal (ty_registry_version_json (reg, "spam", 1, &doc), TY_OK);
    n = cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "notes"), "model.pt");
    assert_string_equal (cJSON_GetObjectItem (n, "target")->valuestring, "fp16");
    assert_true (cJSON_GetObjectItem (cJSON_GetObjectItem (n, "metrics"),
                                      "size_ratio")->valuedouble == 0.5);
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItem (doc, "notes")), 1);
    cJSON_Delete (doc);
    cJSON *h = NULL;
    assert_int_equal (ty_registry_history_json (reg, "spam", &h), TY_OK);
    int notes = 0;
    const cJSON *e;
    cJSON_ArrayForEach (e, h)
        if (!strcmp (cJSON_GetObjectItem (e, "action")->valuestring, "note")) {
            notes++;
            assert_string_equal (cJSON_GetObjectItem (e, "why")->valuestring,
                                 "converted to int8");
        }
    assert_int_equal (notes, 2);
    cJSON_Delete (h);
    cJSON_Delete (m);
    ty_registry_destroy (&reg);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_register_records_lineage_metrics_artifacts,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_promote_rollback_revert_delete, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_audit_log_in_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_resolve_and_canary_share, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_kill9_during_promote_is_atomic, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_registry_artifact_note, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

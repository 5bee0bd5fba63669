/*  ty_control: see ty_control.h. */
#include "ty_control.h"
#include "ty_error.h"
#include "ty_registry.h"
#include "ty_when.h"
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NUM_FMT      "%.10g"   /* mean/std as text: exact enough, still readable */
#define S_NAME_MAX     256       /* "best.<step>.<key>", "<metric>.mean" */
#define S_HINT_KEYS    6         /* keys a "missing metric" error lists */

/* =========================================================================
 *  results, buffered: a failing step writes nothing
 * ========================================================================= */

typedef struct {
    char  **keys;
    char  **values;
    size_t  n, cap;
    char  **mkeys;
    double *mvalues;
    size_t  nm, mcap;
} s_results_t;

static void
s_results_free (s_results_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free (r->keys [i]);
        free (r->values [i]);
    }
    for (size_t i = 0; i < r->nm; i++)
        free (r->mkeys [i]);
    free (r->keys);
    free (r->values);
    free (r->mkeys);
    free (r->mvalues);
    memset (r, 0, sizeof *r);
}

static int
s_out (s_results_t *r, const char *key, const char *value)
{
    if (r->n == TY_CONTROL_OUTPUTS_MAX)
        return TY_EFULL;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        char **k = realloc (r->keys, cap * sizeof *k);
        if (!k)
            return TY_ENOMEM;
        r->keys = k;
        char **v = realloc (r->values, cap * sizeof *v);
        if (!v)
            return TY_ENOMEM;
        r->values = v;
        r->cap = cap;
    }
    char *k = strdup (key), *v = strdup (value);
    if (!k || !v) {
        free (k);
        free (v);
        return TY_ENOMEM;
    }
    r->keys [r->n] = k;
    r->values [r->n++] = v;
    return TY_OK;
}

static int
s_out_num (s_results_t *r, const char *key, double value)
{
    char buf [64];
    snprintf (buf, sizeof buf, S_NUM_FMT, value);
    return s_out (r, key, buf);
}

static int
s_metric (s_results_t *r, const char *key, double value)
{
    if (r->nm == r->mcap) {
        size_t cap = r->mcap ? r->mcap * 2 : 16;
        char **k = realloc (r->mkeys, cap * sizeof *k);
        if (!k)
            return TY_ENOMEM;
        r->mkeys = k;
        double *v = realloc (r->mvalues, cap * sizeof *v);
        if (!v)
            return TY_ENOMEM;
        r->mvalues = v;
        r->mcap = cap;
    }
    char *k = strdup (key);
    if (!k)
        return TY_ENOMEM;
    r->mkeys [r->nm] = k;
    r->mvalues [r->nm++] = value;
    return TY_OK;
}

static void
s_flush (s_results_t *r, const ty_control_sink_t *sink)
{
    for (size_t i = 0; sink && sink->output && i < r->n; i++)
        sink->output (sink->arg, r->keys [i], r->values [i]);
    for (size_t i = 0; sink && sink->metric && i < r->nm; i++)
        sink->metric (sink->arg, r->mkeys [i], r->mvalues [i]);
}

/* =========================================================================
 *  input keys
 * ========================================================================= */

int
ty_control_key_parse (const char *text, ty_control_key_t *out)
{
    memset (out, 0, sizeof *out);
    if (!text)
        return -1;
    const char *open = strchr (text, '[');
    const char *dot = strchr (text, '.');
    const char *step_end;
    out->step = out->base = text;
    if (open && (!dot || open < dot)) {
        /* A branch value may hold dots ("lr=0.1"): the step ends at ']'. */
        const char *close = strchr (open, ']');
        if (!close || close [1] != '.')
            return -1;
        out->base_len = (size_t) (open - text);
        out->branch = open + 1;
        out->branch_len = (size_t) (close - open - 1);
        step_end = close + 1;
    }
    else {
        if (!dot)
            return -1;
        out->base_len = (size_t) (dot - text);
        out->branch = dot;
        out->branch_len = 0;
        step_end = dot;
    }
    out->step_len = (size_t) (step_end - text);
    out->key = step_end + 1;
    out->key_len = strlen (out->key);
    if (!out->base_len || !out->key_len)
        return -1;
    return 0;
}

/* =========================================================================
 *  aggregate
 * ========================================================================= */

typedef struct {
    const Ty__Output *in;
    ty_control_key_t  k;
    size_t            branch;     /* index into the branch list */
} s_entry_t;

typedef struct {
    s_entry_t  *entries;          /* the branched inputs only */
    size_t      n;
    const char **branches;        /* first-appearance order; point into inputs */
    size_t     *branch_lens;
    size_t      nbranches;
} s_table_t;

static void
s_table_free (s_table_t *t)
{
    free (t->entries);
    free (t->branches);
    free (t->branch_lens);
    memset (t, 0, sizeof *t);
}

static int
s_table_build (const Ty__Output *const *inputs, size_t n, s_table_t *t)
{
    memset (t, 0, sizeof *t);
    t->entries = calloc (n ? n : 1, sizeof *t->entries);
    t->branches = calloc (n ? n : 1, sizeof *t->branches);
    t->branch_lens = calloc (n ? n : 1, sizeof *t->branch_lens);
    if (!t->entries || !t->branches || !t->branch_lens) {
        s_table_free (t);
        return TY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        ty_control_key_t k;
        if (!inputs [i] || ty_control_key_parse (inputs [i]->key, &k) != 0 || !k.branch_len)
            continue;
        size_t b = 0;
        while (b < t->nbranches && !(t->branch_lens [b] == k.branch_len
                                     && !memcmp (t->branches [b], k.branch, k.branch_len)))
            b++;
        if (b == t->nbranches) {
            t->branches [b] = k.branch;
            t->branch_lens [b] = k.branch_len;
            t->nbranches++;
        }
        t->entries [t->n].in = inputs [i];
        t->entries [t->n].k = k;
        t->entries [t->n].branch = b;
        t->n++;
    }
    return TY_OK;
}

static int
s_eq (const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && !memcmp (a, b, alen);
}

/* The input of (base, key) in branch b, or NULL. */
static const s_entry_t *
s_find (const s_table_t *t, size_t b, const char *base, size_t base_len,
        const char *key, size_t key_len)
{
    for (size_t i = 0; i < t->n; i++) {
        const s_entry_t *e = &t->entries [i];
        if (e->branch == b && s_eq (e->k.base, e->k.base_len, base, base_len)
        &&  s_eq (e->k.key, e->k.key_len, key, key_len))
            return e;
    }
    return NULL;
}

/* A metric name resolved to a step base and a key. */
typedef struct {
    const char *base; size_t base_len;
    const char *key;  size_t key_len;
} s_metric_ref_t;

/* "accuracy" -> the one step base of the branches that has the key;
 * "evaluate.accuracy" -> that step, when a step of that base exists. */
static int
s_resolve (const s_table_t *t, const char *name, s_metric_ref_t *ref, char *err, size_t errlen)
{
    const char *dot = strchr (name, '.');
    if (dot) {
        for (size_t i = 0; i < t->n; i++)
            if (s_eq (t->entries [i].k.base, t->entries [i].k.base_len, name,
                      (size_t) (dot - name))) {
                ref->base = name;
                ref->base_len = (size_t) (dot - name);
                ref->key = dot + 1;
                ref->key_len = strlen (dot + 1);
                return TY_OK;
            }
    }
    const s_entry_t *found = NULL;
    for (size_t i = 0; i < t->n; i++) {
        const s_entry_t *e = &t->entries [i];
        if (!s_eq (e->k.key, e->k.key_len, name, strlen (name)))
            continue;
        if (found && !s_eq (found->k.base, found->k.base_len, e->k.base, e->k.base_len)) {
            snprintf (err, errlen, "aggregate: metric '%s' is in steps %.*s and %.*s: name it "
                      "as '%.*s.%s' or '%.*s.%s'", name, (int) found->k.base_len,
                      found->k.base, (int) e->k.base_len, e->k.base, (int) found->k.base_len,
                      found->k.base, name, (int) e->k.base_len, e->k.base, name);
            return TY_EINVAL;
        }
        found = e;
    }
    if (!found) {
        int used = snprintf (err, errlen, "aggregate: metric '%s' is in no branch's inputs "
                             "(inputs:", name);
        for (size_t i = 0; i < t->n && i < S_HINT_KEYS && used > 0 && (size_t) used < errlen; i++)
            used += snprintf (err + used, errlen - (size_t) used, "%s %s", i ? "," : "",
                              t->entries [i].in->key);
        if (used > 0 && (size_t) used < errlen)
            snprintf (err + used, errlen - (size_t) used, "%s)", t->n > S_HINT_KEYS ? ", ..." : "");
        return TY_EINVAL;
    }
    ref->base = found->k.base;
    ref->base_len = found->k.base_len;
    ref->key = name;
    ref->key_len = strlen (name);
    return TY_OK;
}

/* The metric's value in every branch, into values (nbranches). */
static int
s_values (const s_table_t *t, const char *name, const s_metric_ref_t *ref, double *values,
          char *err, size_t errlen)
{
    for (size_t b = 0; b < t->nbranches; b++) {
        const s_entry_t *e = s_find (t, b, ref->base, ref->base_len, ref->key, ref->key_len);
        if (!e) {
            snprintf (err, errlen, "aggregate: metric '%s' is missing in branch %.*s "
                      "(no input %.*s[%.*s].%.*s)", name, (int) t->branch_lens [b],
                      t->branches [b], (int) ref->base_len, ref->base,
                      (int) t->branch_lens [b], t->branches [b], (int) ref->key_len, ref->key);
            return TY_EINVAL;
        }
        if (!ty_when_number (e->in->value, &values [b])) {
            snprintf (err, errlen, "aggregate: metric '%s' in branch %.*s is not a number: "
                      "'%.64s'", name, (int) t->branch_lens [b], t->branches [b],
                      e->in->value);
            return TY_EINVAL;
        }
    }
    return TY_OK;
}

/* The metrics to aggregate, named: the spec's, or every (step, key) present
 * and numeric in every branch, named "key" unless two steps share it. */
typedef struct {
    char          **names;
    s_metric_ref_t *refs;
    size_t          n;
} s_metric_list_t;

static void
s_metric_list_free (s_metric_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free (l->names [i]);
    free (l->names);
    free (l->refs);
    memset (l, 0, sizeof *l);
}

static int
s_metric_list (const Ty__ControlSpec *spec, const s_table_t *t, s_metric_list_t *l,
               char *err, size_t errlen)
{
    memset (l, 0, sizeof *l);
    size_t cap = spec->n_metrics ? spec->n_metrics : (t->n ? t->n : 1);
    l->names = calloc (cap, sizeof *l->names);
    l->refs = calloc (cap, sizeof *l->refs);
    if (!l->names || !l->refs) {
        s_metric_list_free (l);
        return TY_ENOMEM;
    }
    if (spec->n_metrics) {
        for (size_t i = 0; i < spec->n_metrics; i++) {
            int rc = s_resolve (t, spec->metrics [i], &l->refs [i], err, errlen);
            if (rc != TY_OK)
                return rc;
            l->names [i] = strdup (spec->metrics [i]);
            if (!l->names [i])
                return TY_ENOMEM;
            l->n++;
        }
        return TY_OK;
    }
    /* Candidates from branch 0: a key must be in every branch anyway. */
    for (size_t i = 0; i < t->n; i++) {
        const s_entry_t *e = &t->entries [i];
        if (e->branch != 0 || !ty_when_number (e->in->value, NULL))
            continue;
        int everywhere = 1;
        for (size_t b = 1; b < t->nbranches && everywhere; b++) {
            const s_entry_t *o = s_find (t, b, e->k.base, e->k.base_len, e->k.key, e->k.key_len);
            everywhere = o && ty_when_number (o->in->value, NULL);
        }
        if (!everywhere)
            continue;
        s_metric_ref_t *r = &l->refs [l->n];
        r->base = e->k.base;
        r->base_len = e->k.base_len;
        r->key = e->k.key;
        r->key_len = e->k.key_len;
        l->n++;
    }
    for (size_t i = 0; i < l->n; i++) {
        int shared = 0;
        for (size_t j = 0; j < l->n; j++)
            shared |= j != i && s_eq (l->refs [i].key, l->refs [i].key_len, l->refs [j].key,
                                      l->refs [j].key_len);
        char name [S_NAME_MAX];
        if (shared)
            snprintf (name, sizeof name, "%.*s.%.*s", (int) l->refs [i].base_len,
                      l->refs [i].base, (int) l->refs [i].key_len, l->refs [i].key);
        else
            snprintf (name, sizeof name, "%.*s", (int) l->refs [i].key_len, l->refs [i].key);
        l->names [i] = strdup (name);
        if (!l->names [i])
            return TY_ENOMEM;
    }
    return TY_OK;
}

static void
s_mean_std (const double *v, size_t n, double *mean, double *std)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v [i];
    *mean = n ? sum / (double) n : 0;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (v [i] - *mean) * (v [i] - *mean);
    /* The sample deviation (n - 1): the branches are a sample of the ways the
       data could have been split; with one branch there is no spread to tell. */
    *std = n > 1 ? sqrt (ss / (double) (n - 1)) : 0;
}

/* Builds everything into res. */
static int
s_aggregate (const Ty__ControlSpec *spec, const s_table_t *t, const s_metric_list_t *ml,
             s_results_t *res, char *err, size_t errlen)
{
    double *values = calloc (t->nbranches * (ml->n ? ml->n : 1), sizeof *values);
    cJSON *folds = cJSON_CreateObject ();
    int rc = values && folds ? TY_OK : TY_ENOMEM;
    char name [S_NAME_MAX];
    for (size_t m = 0; m < ml->n && rc == TY_OK; m++) {
        double *v = values + m * t->nbranches;
        rc = s_values (t, ml->names [m], &ml->refs [m], v, err, errlen);
        if (rc != TY_OK)
            break;
        double mean, std;
        s_mean_std (v, t->nbranches, &mean, &std);
        snprintf (name, sizeof name, "%s.mean", ml->names [m]);
        rc = s_out_num (res, name, mean);
        if (rc == TY_OK)
            rc = s_metric (res, name, mean);
        snprintf (name, sizeof name, "%s.std", ml->names [m]);
        if (rc == TY_OK)
            rc = s_out_num (res, name, std);
        if (rc == TY_OK)
            rc = s_metric (res, name, std);
        snprintf (name, sizeof name, "%s.n", ml->names [m]);
        if (rc == TY_OK)
            rc = s_out_num (res, name, (double) t->nbranches);
        if (rc == TY_OK)
            rc = s_metric (res, name, (double) t->nbranches);
    }
    for (size_t b = 0; b < t->nbranches && rc == TY_OK; b++) {
        snprintf (name, sizeof name, "%.*s", (int) t->branch_lens [b], t->branches [b]);
        cJSON *one = cJSON_AddObjectToObject (folds, name);
        for (size_t m = 0; one && m < ml->n; m++)
            if (!cJSON_AddNumberToObject (one, ml->names [m], values [m * t->nbranches + b]))
                one = NULL;
        if (!one)
            rc = TY_ENOMEM;
    }
    if (rc == TY_OK) {
        char *json = cJSON_PrintUnformatted (folds);
        rc = json ? s_out (res, "folds", json) : TY_ENOMEM;
        free (json);
    }
    if (rc == TY_OK)
        rc = s_out_num (res, "branches", (double) t->nbranches);

    if (rc == TY_OK && spec->best_by && *spec->best_by) {
        s_metric_ref_t ref;
        double *bv = calloc (t->nbranches, sizeof *bv);
        rc = bv ? s_resolve (t, spec->best_by, &ref, err, errlen) : TY_ENOMEM;
        if (rc == TY_OK)
            rc = s_values (t, spec->best_by, &ref, bv, err, errlen);
        size_t best = 0;
        for (size_t b = 1; rc == TY_OK && b < t->nbranches; b++)
            if (spec->minimize ? bv [b] < bv [best] : bv [b] > bv [best])
                best = b;
        if (rc == TY_OK) {
            snprintf (name, sizeof name, "%.*s", (int) t->branch_lens [best],
                      t->branches [best]);
            rc = s_out (res, "best.branch", name);
        }
        if (rc == TY_OK)
            rc = s_out_num (res, "best.value", bv [best]);
        if (rc == TY_OK)
            rc = s_metric (res, "best.value", bv [best]);
        for (size_t i = 0; i < t->n && rc == TY_OK; i++) {
            const s_entry_t *e = &t->entries [i];
            if (e->branch != best)
                continue;
            snprintf (name, sizeof name, "best.%.*s.%.*s", (int) e->k.base_len, e->k.base,
                      (int) e->k.key_len, e->k.key);
            rc = s_out (res, name, e->in->value);
        }
        free (bv);
    }
    if (rc == TY_EFULL)
        snprintf (err, errlen, "aggregate: more than %d outputs: name the metrics to "
                  "aggregate (metrics: [...])", TY_CONTROL_OUTPUTS_MAX);
    else
    if (rc == TY_ENOMEM)
        snprintf (err, errlen, "aggregate: out of memory");
    cJSON_Delete (folds);
    free (values);
    return rc;
}

int
ty_control_aggregate (const Ty__ControlSpec *spec, const Ty__Output *const *inputs, size_t n,
                      const ty_control_sink_t *sink, char *err, size_t errlen)
{
    char dummy [1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err [0] = '\0';
    if (!spec)
        return TY_EINVAL;
    s_table_t t;
    int rc = s_table_build (inputs, n, &t);
    if (rc != TY_OK) {
        snprintf (err, errlen, "aggregate: out of memory");
        return rc;
    }
    if (t.nbranches == 0) {
        snprintf (err, errlen, "aggregate: none of the %zu inputs comes from a branch of a "
                  "foreach step (keys like evaluate[fold=0].accuracy): nothing to aggregate",
                  n);
        s_table_free (&t);
        return TY_EINVAL;
    }
    s_metric_list_t ml;
    rc = s_metric_list (spec, &t, &ml, err, errlen);
    if (rc == TY_OK && ml.n == 0 && !(spec->best_by && *spec->best_by)) {
        snprintf (err, errlen, "aggregate: no metric is a number in every one of the %zu "
                  "branches", t.nbranches);
        rc = TY_EINVAL;
    }
    s_results_t res = { 0 };
    if (rc == TY_OK)
        rc = s_aggregate (spec, &t, &ml, &res, err, errlen);
    else
    if (rc == TY_ENOMEM)
        snprintf (err, errlen, "aggregate: out of memory");
    if (rc == TY_OK)
        s_flush (&res, sink);
    s_results_free (&res);
    s_metric_list_free (&ml);
    s_table_free (&t);
    return rc;
}

/* =========================================================================
 *  promote
 * ========================================================================= */

int
ty_control_promote (const Ty__ControlSpec *spec, const char *data_dir, const char *job_id,
                    const ty_control_sink_t *sink, char *err, size_t errlen)
{
    char dummy [1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err [0] = '\0';
    if (!spec || !spec->model || !*spec->model) {
        snprintf (err, errlen, "promote: no model (want \"name@version\")");
        return TY_EINVAL;
    }
    ty_stage_t stage = TY_STAGE_PRODUCTION;
    if (spec->stage && *spec->stage && ty_registry_stage_parse (spec->stage, &stage) != TY_OK) {
        snprintf (err, errlen, "promote: unknown stage '%s' (production, canary, staging, "
                  "archived, none)", spec->stage);
        return TY_EINVAL;
    }
    if (spec->rollout > TY_REGISTRY_ROLLOUT_MAX) {
        snprintf (err, errlen, "promote: rollout %u is over %d %%", spec->rollout,
                  TY_REGISTRY_ROLLOUT_MAX);
        return TY_EINVAL;
    }
    ty_registry_t *reg = NULL;
    int rc = ty_registry_open (data_dir, &reg);
    if (rc != TY_OK) {
        snprintf (err, errlen, "promote: cannot open the registry of %s: %s", data_dir,
                  ty_strerror (rc));
        return rc;
    }
    char name [TY_REGISTRY_NAME_MAX + 1];
    uint64_t version = 0;
    ty_registry_model_t before = { 0 };
    rc = ty_registry_resolve (reg, spec->model, NULL, name, &version, NULL);
    if (rc != TY_OK)
        snprintf (err, errlen, "promote: %s: %s", spec->model, ty_registry_errstr (reg));
    if (rc == TY_OK && ty_registry_model (reg, name, &before) != TY_OK)
        memset (&before, 0, sizeof before);
    if (rc == TY_OK) {
        char who [sizeof TY_CONTROL_ACTOR_PREFIX + 64];
        snprintf (who, sizeof who, TY_CONTROL_ACTOR_PREFIX "%s", job_id ? job_id : "?");
        ty_registry_actor_t by = {
            .who = who,
            .why = spec->reason && *spec->reason ? spec->reason : "pipeline promote step",
            .force = spec->force,
        };
        rc = ty_registry_promote (reg, name, version, stage, (int) spec->rollout, &by);
        if (rc != TY_OK)
            snprintf (err, errlen, "promote %s@%" PRIu64 " to %s: %s", name, version,
                      ty_registry_stage_name (stage), ty_registry_errstr (reg));
    }
    ty_registry_destroy (&reg);
    if (rc != TY_OK)
        return rc;

    s_results_t res = { 0 };
    char buf [TY_REGISTRY_NAME_MAX + 32];
    snprintf (buf, sizeof buf, "%s@%" PRIu64, name, version);
    rc = s_out (&res, "model", buf);
    snprintf (buf, sizeof buf, "%" PRIu64, version);
    if (rc == TY_OK)
        rc = s_out (&res, "version", buf);
    if (rc == TY_OK)
        rc = s_out (&res, "stage", ty_registry_stage_name (stage));
    if (rc == TY_OK && stage == TY_STAGE_CANARY)
        rc = s_out_num (&res, "rollout", spec->rollout);
    snprintf (buf, sizeof buf, "%" PRIu64, before.production);
    if (rc == TY_OK)
        rc = s_out (&res, "previous", buf);
    if (rc == TY_OK)
        s_flush (&res, sink);
    else
        snprintf (err, errlen, "promote: done, but out of memory for the outputs");
    s_results_free (&res);
    return rc;
}

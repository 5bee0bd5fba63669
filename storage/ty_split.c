/*  ty_split: stratified split assignment (see ty_split.h). */
#include "ty_split.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"

#define S_FNV_OFFSET 0xcbf29ce484222325ull
#define S_FNV_PRIME  0x100000001b3ull

void
ty_split_opts_default (ty_split_opts_t *o)
{
    memset (o, 0, sizeof *o);
    o->ratio[TY_SPLIT_TRAIN] = TY_SPLIT_RATIO_TRAIN;
    o->ratio[TY_SPLIT_VAL] = TY_SPLIT_RATIO_VAL;
    o->ratio[TY_SPLIT_TEST] = TY_SPLIT_RATIO_TEST;
    o->seed = TY_SPLIT_SEED;
}

int
ty_split_opts_check (const ty_split_opts_t *o)
{
    double sum = 0;
    for (int i = 0; i < TY_SPLIT_COUNT; i++) {
        if (!(o->ratio[i] >= 0 && o->ratio[i] <= 1))
            return TY_EINVAL;
        sum += o->ratio[i];
    }
    return fabs (sum - 1.0) <= TY_SPLIT_RATIO_EPS ? TY_OK : TY_EINVAL;
}

static int
s_parse_u64 (const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*v == '-')
        return TY_EINVAL;
    unsigned long long x = strtoull (v, &end, 10);
    if (errno || end == v || *end)
        return TY_EINVAL;
    *out = x;
    return TY_OK;
}

int
ty_split_opts_set (ty_split_opts_t *o, const char *key, const char *value)
{
    uint64_t u;
    if (!strcmp (key, "split")) {
        ty_split_opts_t t = *o;
        memset (t.ratio, 0, sizeof t.ratio);
        const char *p = value;
        for (int i = 0; i < TY_SPLIT_COUNT; i++) {
            char *end;
            errno = 0;
            t.ratio[i] = strtod (p, &end);
            if (errno || end == p)
                return TY_EINVAL;
            p = end;
            if (*p == '\0')
                break;
            if (*p != '/' || i == TY_SPLIT_COUNT - 1)
                return TY_EINVAL;
            p++;
        }
        if (ty_split_opts_check (&t) != TY_OK)
            return TY_EINVAL;
        *o = t;
        return TY_OK;
    }
    if (!strcmp (key, "seed"))
        return s_parse_u64 (value, &o->seed);
    if (!strcmp (key, "folds") || !strcmp (key, "cap_per_class")) {
        if (s_parse_u64 (value, &u) || u > UINT32_MAX)
            return TY_EINVAL;
        if (!strcmp (key, "folds"))
            o->folds = (uint32_t) u;
        else
            o->cap_per_class = (uint32_t) u;
        return TY_OK;
    }
    return TY_ENOTFOUND;
}

static uint64_t
s_stratum_seed (uint64_t seed, const char *name)
{
    uint64_t h = S_FNV_OFFSET;
    for (int i = 0; i < 8; i++) {
        h ^= (seed >> (8 * i)) & 0xff;
        h *= S_FNV_PRIME;
    }
    for (const unsigned char *p = (const unsigned char *) name; p && *p; p++) {
        h ^= *p;
        h *= S_FNV_PRIME;
    }
    return h;
}

/* Largest-remainder apportionment of n over the ratios. */
static void
s_apportion (const double *ratio, uint64_t n, uint64_t *take)
{
    double frac[TY_SPLIT_COUNT];
    uint64_t given = 0;
    for (int i = 0; i < TY_SPLIT_COUNT; i++) {
        double exact = ratio[i] * (double) n;
        take[i] = (uint64_t) floor (exact);
        frac[i] = exact - (double) take[i];
        given += take[i];
    }
    while (given < n) {
        int best = -1;
        for (int i = 0; i < TY_SPLIT_COUNT; i++)
            if (ratio[i] > 0 && (best < 0 || frac[i] > frac[best]))
                best = i;
        if (best < 0)
            best = TY_SPLIT_TRAIN;
        take[best]++;
        frac[best] = -1;    /* each split gets at most one extra */
        given++;
    }
}

int
ty_split_assign (const ty_split_opts_t *opts, size_t n, const uint32_t *strata,
                 const char *const *names, size_t n_strata,
                 uint8_t *split_out, uint32_t *fold_out)
{
    if (ty_split_opts_check (opts) != TY_OK)
        return TY_EINVAL;
    size_t ns = n_strata + 1;    /* the last one: unlabeled */
    uint64_t *start = calloc (ns + 1, sizeof *start);
    uint64_t *members = malloc ((n ? n : 1) * sizeof *members);
    uint64_t *fill = calloc (ns, sizeof *fill);
    if (!start || !members || !fill) {
        free (start); free (members); free (fill);
        return TY_ENOMEM;
    }
    int rc = TY_OK;
    for (size_t i = 0; i < n; i++) {
        size_t s = strata[i] == TY_SPLIT_NO_STRATUM ? n_strata : strata[i];
        if (s > n_strata) {
            rc = TY_EINVAL;
            break;
        }
        start[s + 1]++;
    }
    for (size_t s = 0; s < ns; s++)
        start[s + 1] += start[s];
    /* members of each stratum, in input order (a stable bucket sort) */
    for (size_t i = 0; rc == TY_OK && i < n; i++) {
        size_t s = strata[i] == TY_SPLIT_NO_STRATUM ? n_strata : strata[i];
        members[start[s] + fill[s]++] = i;
    }
    for (size_t s = 0; rc == TY_OK && s < ns; s++) {
        uint64_t *m = members + start[s];
        uint64_t count = start[s + 1] - start[s];
        if (!count)
            continue;
        ty_dataset_shuffle (m, count, s_stratum_seed (opts->seed,
                                                     s < n_strata ? names[s] : ""));
        uint64_t kept = opts->cap_per_class && count > opts->cap_per_class
                      ? opts->cap_per_class : count;
        uint64_t take[TY_SPLIT_COUNT];
        s_apportion (opts->ratio, kept, take);
        uint64_t pos = 0;
        for (int sp = 0; sp < TY_SPLIT_COUNT; sp++)
            for (uint64_t k = 0; k < take[sp]; k++, pos++)
                split_out[m[pos]] = (uint8_t) sp;
        for (uint64_t k = 0; k < count; k++) {
            if (k >= kept)
                split_out[m[k]] = TY_SPLIT_NONE;
            fold_out[m[k]] = opts->folds > 1 ? (uint32_t) (k % opts->folds) : 0;
        }
    }
    free (start);
    free (members);
    free (fill);
    return rc;
}

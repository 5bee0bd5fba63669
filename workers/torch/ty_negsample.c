/*  ty_negsample: per-user sorted positive lists (CSR) + rejection sampling. */
#include <stdlib.h>
#include <string.h>

#include "ty_error.h"
#include "ty_negsample.h"

struct _ty_negsample_t {
    int64_t nusers, nitems;
    int64_t *start;     /* nusers + 1 offsets into item */
    int64_t *item;      /* positives of user u: item[start[u] .. start[u+1]), sorted */
};

uint64_t
ty_negsample_rand (uint64_t *rng)
{
    uint64_t x = (*rng += 0x9E3779B97F4A7C15ULL);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

uint64_t
ty_negsample_below (uint64_t *rng, uint64_t n)
{
    return (uint64_t) (((unsigned __int128) ty_negsample_rand (rng) * n) >> 64);
}

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

int
ty_negsample_new (int64_t nusers, int64_t nitems, const int64_t *users,
                  const int64_t *items, int64_t npos, ty_negsample_t **self_p)
{
    *self_p = NULL;
    if (nusers < 1 || nitems < 1 || npos < 0 || (npos > 0 && (!users || !items)))
        return TY_EINVAL;
    for (int64_t k = 0; k < npos; k++)
        if (users[k] < 0 || users[k] >= nusers || items[k] < 0 || items[k] >= nitems)
            return TY_EINVAL;
    ty_negsample_t *self = calloc (1, sizeof *self);
    if (!self)
        return TY_ENOMEM;
    self->nusers = nusers;
    self->nitems = nitems;
    self->start = calloc ((size_t) nusers + 1, sizeof (int64_t));
    self->item = malloc ((size_t) (npos > 0 ? npos : 1) * sizeof (int64_t));
    int64_t *fill = calloc ((size_t) nusers, sizeof (int64_t));
    if (!self->start || !self->item || !fill) {
        free (fill);
        ty_negsample_destroy (&self);
        return TY_ENOMEM;
    }
    for (int64_t k = 0; k < npos; k++)
        self->start[users[k] + 1]++;
    for (int64_t u = 0; u < nusers; u++)
        self->start[u + 1] += self->start[u];
    for (int64_t k = 0; k < npos; k++)
        self->item[self->start[users[k]] + fill[users[k]]++] = items[k];
    free (fill);
    for (int64_t u = 0; u < nusers; u++)
        qsort (self->item + self->start[u], (size_t) (self->start[u + 1] - self->start[u]),
               sizeof (int64_t), s_cmp_i64);
    *self_p = self;
    return TY_OK;
}

void
ty_negsample_destroy (ty_negsample_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_negsample_t *self = *self_p;
    free (self->start);
    free (self->item);
    free (self);
    *self_p = NULL;
}

bool
ty_negsample_is_positive (const ty_negsample_t *self, int64_t user, int64_t item)
{
    if (user < 0 || user >= self->nusers)
        return false;
    const int64_t *lo = self->item + self->start[user];
    size_t n = (size_t) (self->start[user + 1] - self->start[user]);
    return bsearch (&item, lo, n, sizeof (int64_t), s_cmp_i64) != NULL;
}

int
ty_negsample_fill (const ty_negsample_t *self, const int64_t *users, const int64_t *items,
                   int64_t n, int ratio, uint64_t *rng, int64_t *out_users,
                   int64_t *out_items, float *out_targets, size_t cap, int64_t *nout)
{
    *nout = 0;
    if (ratio < 0 || n < 0 || !rng)
        return TY_EINVAL;
    if ((uint64_t) n * (uint64_t) (1 + ratio) > cap)
        return TY_EFULL;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t u = users[i];
        if (u < 0 || u >= self->nusers || items[i] < 0 || items[i] >= self->nitems)
            return TY_EINVAL;
        out_users[k] = u;
        out_items[k] = items[i];
        out_targets[k++] = 1.0f;
        for (int r = 0; r < ratio; r++) {
            int64_t j = 0;
            for (int t = 0; t < TY_NEGSAMPLE_MAX_TRIES; t++) {
                j = (int64_t) ty_negsample_below (rng, (uint64_t) self->nitems);
                if (!ty_negsample_is_positive (self, u, j))
                    break;
            }
            out_users[k] = u;
            out_items[k] = j;
            out_targets[k++] = 0.0f;
        }
    }
    *nout = k;
    return TY_OK;
}

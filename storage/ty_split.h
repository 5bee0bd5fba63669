/*  ty_split: deterministic, stratified assignment of samples to train / val
 *  / test (/ calib), k-fold numbers, and a cap per class.
 *
 *  Each stratum (class: a sample's first label; unlabeled samples form one
 *  stratum) is shuffled by a seed derived from (seed, class name), so a
 *  class's assignment does not depend on which other classes exist. Its
 *  first `cap_per_class` samples are kept; the kept ones are dealt out by
 *  the largest-remainder method, so each split of each class holds its ratio
 *  of the class within one sample. Folds: position in the shuffled class
 *  modulo k, so folds are stratified too. The same input and options always
 *  give the same assignment.
 */
#ifndef TY_SPLIT_H
#define TY_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "ty_dataset.h"

#define TY_SPLIT_RATIO_TRAIN  0.70
#define TY_SPLIT_RATIO_VAL    0.15
#define TY_SPLIT_RATIO_TEST   0.15
#define TY_SPLIT_SEED         42
/* Ratios must add up to 1 within this. */
#define TY_SPLIT_RATIO_EPS    1e-6
#define TY_SPLIT_NO_STRATUM   UINT32_MAX

typedef struct {
    double   ratio[TY_SPLIT_COUNT];   /* train, val, test, calib */
    uint64_t seed;
    uint32_t folds;                   /* 0 or 1: no folds (all 0) */
    uint32_t cap_per_class;           /* 0: no cap */
} ty_split_opts_t;

/* 0.7 / 0.15 / 0.15 / 0, seed TY_SPLIT_SEED, no folds, no cap. */
void ty_split_opts_default (ty_split_opts_t *opts);
/* Keys: split ("0.8/0.1/0.1" or "0.7/0.1/0.1/0.1" with calib), seed,
 * folds, cap_per_class. TY_OK, TY_ENOTFOUND (unknown key), TY_EINVAL. */
int  ty_split_opts_set (ty_split_opts_t *opts, const char *key, const char *value);
/* Ratios in [0, 1] adding up to 1. TY_OK or TY_EINVAL. */
int  ty_split_opts_check (const ty_split_opts_t *opts);

/* Assigns n samples. strata[i] is sample i's class id (< n_strata) or
 * TY_SPLIT_NO_STRATUM; names[c] is class c's name (it seeds the class's
 * shuffle). Fills split_out[i] (a ty_split_t, TY_SPLIT_NONE when capped)
 * and fold_out[i]. TY_OK, TY_EINVAL, TY_ENOMEM. */
int  ty_split_assign (const ty_split_opts_t *opts, size_t n, const uint32_t *strata,
                      const char *const *names, size_t n_strata,
                      uint8_t *split_out, uint32_t *fold_out);

#endif

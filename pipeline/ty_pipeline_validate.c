/*  ty_pipeline_validate: the checks that need the whole pipeline: needs
 *  name existing steps, no cycle, references `${step.key}` only to
 *  ancestors and only to keys that step type produces, the grammar of
 *  `when`; and the substitution of ${params.x} / ${item.k} with the
 *  rewriting of references into paired foreach branches.
 *
 *  The output tables come from the real workers (grep ty_job_output in
 *  workers/): a reference to a key no worker of that type writes would fail
 *  the job at run time with "unresolved reference", hours into a nightly
 *  run; here it fails at load, naming the line.
 */
#include "ty_pipeline_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- outputs per step type --------------------------------------------------------- */

/* Every step may have been skipped by its `when`. */
static const char *const s_common_outputs [] = { "skipped", NULL };

static const char *const s_noop_outputs [] = { "summary", NULL };
static const char *const s_prepare_outputs [] = {
    "dataset", "version", "content_hash", "kind", "added", "parent", "counts", "classes",
    "summary", "report", NULL };
/* Outputs and the metrics the train worker reports (val_<m> and best_val_<m>
   are accepted for any metric m: the metric depends on the model kind). */
static const char *const s_train_outputs [] = {
    "model", "version", "path", "metric", "best_metric", "best_epoch", "epochs",
    "resumed_from_epoch", "weights_digest", "parameters",
    "loss", "train_loss", "val_loss", "lr", "epoch", "step", "epochs_done", "eta_s",
    "rss_mb", "samples_per_s", "tokens_per_s", "epoch_s", "first_epoch", NULL };
static const char *const s_evaluate_outputs [] = {
    "summary", "metrics_path", "model", "task", "gate", "recommendation",
    "accuracy", "macro_f1", "weighted_f1", "log_loss", "roc_auc", "high_conf_share",
    "subset_accuracy", "hamming_loss", "micro_f1", "ml_macro_f1", "mse", "rmse", "mae",
    "r2", "hit_rate", "ndcg", "n_samples", "p50_ms", "p95_ms", "p99_ms",
    "throughput_per_s", "peak_rss_mb", NULL };
/* Outputs and metrics of workers/convert/convert_main.c. */
static const char *const s_convert_outputs [] = {
    "model", "target", "artifact", "report", "sha256", "bytes", "fp32_bytes", "size_ratio",
    "registered", "evaluated", "n_samples", "accuracy", "accuracy_fp32",
    "accuracy_change_points", "agreement_top1", "mae", "mae_fp32",
    "p50_ms", "p99_ms", "p50_fp32_ms", "p99_fp32_ms", NULL };
static const char *const s_promote_outputs [] = {
    "model", "version", "stage", "rollout", "previous", NULL };

static const char *const *
s_outputs (ty_pipeline_kind_t kind)
{
    switch (kind) {
        case TY_PIPELINE_NOOP:     return s_noop_outputs;
        case TY_PIPELINE_PREPARE:  return s_prepare_outputs;
        case TY_PIPELINE_TRAIN:    return s_train_outputs;
        case TY_PIPELINE_EVALUATE: return s_evaluate_outputs;
        case TY_PIPELINE_CONVERT:  return s_convert_outputs;
        case TY_PIPELINE_PROMOTE:  return s_promote_outputs;
        default:                   return NULL;
    }
}

static int
s_in (const char *const *list, const char *key)
{
    for (size_t i = 0; list && list [i]; i++)
        if (!strcmp (list [i], key))
            return 1;
    return 0;
}

int
ty_pipeline_output_known (ty_pipeline_kind_t kind, const char *key)
{
    if (!*key)
        return 0;
    /* aggregate: <metric>.mean/.std/.n, best.*, folds, branches: any key. */
    if (kind == TY_PIPELINE_AGGREGATE)
        return 1;
    if (s_in (s_common_outputs, key) || s_in (s_outputs (kind), key))
        return 1;
    if (kind == TY_PIPELINE_TRAIN)
        return (!strncmp (key, "val_", 4) && key [4])
            || (!strncmp (key, "best_val_", 9) && key [9]);
    return 0;
}

const char *
ty_pipeline_output_list (ty_pipeline_kind_t kind)
{
    switch (kind) {
        case TY_PIPELINE_NOOP:     return "summary, skipped";
        case TY_PIPELINE_PREPARE:  return "dataset, version, content_hash, kind, added, parent, "
                                          "counts, classes, summary, report, skipped";
        case TY_PIPELINE_TRAIN:    return "model, version, path, metric, best_metric, "
                                          "best_epoch, epochs, weights_digest, parameters, "
                                          "loss, val_<metric>, best_val_<metric>, skipped, ...";
        case TY_PIPELINE_EVALUATE: return "model, gate, summary, metrics_path, task, "
                                          "recommendation, accuracy, macro_f1, roc_auc, mse, "
                                          "mae, r2, hit_rate, ndcg, p50_ms, p99_ms, skipped, ...";
        case TY_PIPELINE_CONVERT:  return "model, version, target, path, agreement, accuracy, "
                                          "p50_ms, p99_ms, summary, skipped, ...";
        case TY_PIPELINE_PROMOTE:  return "model, version, stage, rollout, previous, skipped";
        default:                   return "any";
    }
}

/* ---- graph: needs, cycles, ancestors, order ------------------------------------------ */

enum { S_WHITE, S_GREY, S_BLACK };

/* Depth-first search; on a back edge, names the cycle from the stack. */
static int
s_visit (ty_pipeline_raw_t *raw, size_t i, unsigned char *color, size_t *stack, size_t depth,
         size_t *order, size_t *norder)
{
    color [i] = S_GREY;
    stack [depth] = i;
    ty_pipeline_raw_step_t *st = &raw->steps [i];
    for (size_t j = 0; j < st->nneeds; j++) {
        size_t n = st->needs_idx [j];
        if (color [n] == S_GREY) {
            char cycle [TY_PIPELINE_ERR_LEN / 2] = "";
            size_t from = depth;
            while (stack [from] != n)
                from--;
            for (size_t k = from; k <= depth; k++) {
                size_t used = strlen (cycle);
                snprintf (cycle + used, sizeof cycle - used, "%s -> ", raw->steps [stack [k]].name);
            }
            size_t used = strlen (cycle);
            snprintf (cycle + used, sizeof cycle - used, "%s", raw->steps [n].name);
            char field [160];
            snprintf (field, sizeof field, "steps.%s.needs", st->name);
            return ty_pipeline_fail (raw, st->needs_lines [j], field,
                                     "a cycle: %s needs itself through %s", st->name, cycle);
        }
        if (color [n] == S_WHITE) {
            int rc = s_visit (raw, n, color, stack, depth + 1, order, norder);
            if (rc != TY_OK)
                return rc;
        }
    }
    color [i] = S_BLACK;
    order [(*norder)++] = i;      /* post-order: every need before the step */
    return TY_OK;
}

int
ty_pipeline_validate_graph (ty_pipeline_raw_t *raw)
{
    size_t n = raw->nsteps;
    for (size_t i = 0; i < n; i++) {
        ty_pipeline_raw_step_t *st = &raw->steps [i];
        for (size_t j = 0; j < st->nneeds; j++) {
            long k = ty_pipeline_raw_find (raw, st->needs [j]);
            if (k < 0) {
                char field [160];
                snprintf (field, sizeof field, "steps.%s.needs", st->name);
                return ty_pipeline_fail (raw, st->needs_lines [j], field,
                                         "no step named '%s'", st->needs [j]);
            }
            st->needs_idx [j] = (size_t) k;
        }
    }
    unsigned char *color = calloc (n, 1);
    size_t *stack = calloc (n, sizeof *stack);
    raw->order = calloc (n, sizeof *raw->order);
    if (!color || !stack || !raw->order) {
        free (color);
        free (stack);
        return TY_ENOMEM;
    }
    size_t norder = 0;
    int rc = TY_OK;
    for (size_t i = 0; i < n && rc == TY_OK; i++)
        if (color [i] == S_WHITE)
            rc = s_visit (raw, i, color, stack, 0, raw->order, &norder);
    free (color);
    free (stack);
    if (rc != TY_OK)
        return rc;
    /* Ancestors in topological order: a step's set is the union of its
       needs' sets and the needs themselves. */
    for (size_t o = 0; o < n; o++) {
        ty_pipeline_raw_step_t *st = &raw->steps [raw->order [o]];
        st->ancestors = calloc (n, 1);
        if (!st->ancestors)
            return TY_ENOMEM;
        for (size_t j = 0; j < st->nneeds; j++) {
            ty_pipeline_raw_step_t *p = &raw->steps [st->needs_idx [j]];
            st->ancestors [st->needs_idx [j]] = 1;
            for (size_t k = 0; k < n; k++)
                st->ancestors [k] |= p->ancestors [k];
        }
    }
    return TY_OK;
}

/* ---- `when` ------------------------------------------------------------------------- */

static const char *const s_ops [] = { "==", "!=", "<=", ">=", "<", ">", NULL };

/* One operand: a single ${ref}, a quoted string, or a bare word/number. */
static int
s_operand_ok (const char *s, size_t len, char *why, size_t whylen)
{
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s [len - 1] == ' ' || s [len - 1] == '\t'))
        len--;
    if (len == 0) {
        snprintf (why, whylen, "an operand is missing");
        return -1;
    }
    if (len >= 3 && s [0] == '$' && s [1] == '{') {
        const char *close = memchr (s, '}', len);
        if (close != s + len - 1) {
            snprintf (why, whylen, "'%.*s' is not one ${step.key}", (int) len, s);
            return -1;
        }
        return 0;
    }
    if ((s [0] == '"' || s [0] == '\'') && len >= 2 && s [len - 1] == s [0]
        && !memchr (s + 1, s [0], len - 2))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s [i] == ' ' || s [i] == '\t' || s [i] == '"' || s [i] == '\'' || s [i] == '$'
            || s [i] == '=' || s [i] == '!' || s [i] == '<' || s [i] == '>') {
            snprintf (why, whylen, "'%.*s' is not an operand (a ${step.key}, a number, a word "
                      "or a quoted string)", (int) len, s);
            return -1;
        }
    return 0;
}

int
ty_pipeline_when_check (const char *when, char *why, size_t whylen)
{
    size_t len = strlen (when);
    /* Find the operator outside ${...} and quotes. */
    int depth = 0;
    char quote = 0;
    const char *op = NULL;
    size_t oplen = 0;
    for (size_t i = 0; i < len; i++) {
        char c = when [i];
        if (quote) {
            if (c == quote)
                quote = 0;
            continue;
        }
        if (c == '"' || c == '\'')
            quote = c;
        else if (c == '$' && when [i + 1] == '{') {
            depth++;
            i++;
        }
        else if (c == '}' && depth)
            depth--;
        else if (!depth)
            for (size_t k = 0; s_ops [k]; k++)
                if (!strncmp (when + i, s_ops [k], strlen (s_ops [k]))) {
                    if (op) {
                        snprintf (why, whylen, "one comparison only (OPERAND OP OPERAND)");
                        return -1;
                    }
                    op = when + i;
                    oplen = strlen (s_ops [k]);
                    i += oplen - 1;
                    break;
                }
    }
    if (quote || depth) {
        snprintf (why, whylen, "unclosed %s", quote ? "quote" : "${");
        return -1;
    }
    if (!op) {
        /* A lone ${ref}: true when the value is a true word (runtime's rule). */
        const char *s = when;
        while (*s == ' ' || *s == '\t')
            s++;
        if (strncmp (s, "${", 2)) {
            snprintf (why, whylen, "expected ${step.key} alone or OPERAND OP OPERAND with OP "
                      "one of == != < <= > >=");
            return -1;
        }
        return s_operand_ok (when, len, why, whylen);
    }
    if (s_operand_ok (when, (size_t) (op - when), why, whylen)
    ||  s_operand_ok (op + oplen, len - (size_t) (op - when) - oplen, why, whylen))
        return -1;
    return 0;
}

/* ---- substitution --------------------------------------------------------------------- */

static int
s_append (char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*len + n + 1) * 2;
        char *nb = realloc (*buf, ncap);
        if (!nb)
            return TY_ENOMEM;
        *buf = nb;
        *cap = ncap;
    }
    memcpy (*buf + *len, s, n);
    *len += n;
    (*buf) [*len] = '\0';
    return TY_OK;
}

/* Resolves one reference (the text between ${ and }) into out/outlen:
   params and items are replaced, step references checked and kept (or
   rewritten to the paired branch). */
/* Remembers that the branch reads item `item` (once). */
static int
s_add_ref (ty_pipeline_subst_t *ctx, size_t item)
{
    for (size_t i = 0; i < ctx->nrefs; i++)
        if (ctx->refs [i] == item)
            return TY_OK;
    size_t *n = realloc (ctx->refs, (ctx->nrefs + 1) * sizeof *n);
    if (!n)
        return TY_ENOMEM;
    ctx->refs = n;
    ctx->refs [ctx->nrefs++] = item;
    return TY_OK;
}

/* Index of the branch of st whose suffix is sfx (len bytes), or nbranches. */
static size_t
s_branch_of (const ty_pipeline_raw_step_t *st, const char *sfx, size_t len)
{
    char buf [TY_PIPELINE_STR_MAX];
    for (size_t b = 0; b < st->nbranches; b++)
        if (ty_pipeline_branch_suffix (st, b, buf, sizeof buf) == 0
            && strlen (buf) == len && !strncmp (buf, sfx, len))
            return b;
    return st->nbranches;
}

static int
s_ref (ty_pipeline_subst_t *ctx, const char *ref, int line, const char *field,
       char **buf, size_t *len, size_t *cap)
{
    ty_pipeline_raw_t *raw = ctx->raw;
    ty_pipeline_raw_step_t *self = &raw->steps [ctx->step];
    if (!strncmp (ref, "params.", 7)) {
        for (size_t i = 0; i < raw->nparams; i++)
            if (!strcmp (raw->pkeys [i], ref + 7))
                return s_append (buf, len, cap, raw->pvals [i], strlen (raw->pvals [i]));
        return ty_pipeline_fail (raw, line, field, "${%s}: no param '%s' in params:", ref,
                                 ref + 7);
    }
    if (!strncmp (ref, "item.", 5) || !strncmp (ref, "foreach.", 8)) {
        const char *k = strchr (ref, '.') + 1;
        if (!ctx->bvalues)
            return ty_pipeline_fail (raw, line, field, "${%s}: %s", ref, self->nfkeys
                                     ? "foreach values cannot refer to the branch itself"
                                     : "the step has no foreach:");
        for (size_t i = 0; i < self->nfkeys; i++)
            if (!strcmp (self->fkeys [i].key, k))
                return s_append (buf, len, cap, ctx->bvalues [i], strlen (ctx->bvalues [i]));
        return ty_pipeline_fail (raw, line, field, "${%s}: the step's foreach has no key '%s'",
                                 ref, k);
    }
    /* ${step.key} or ${step[k=v,...].key} */
    size_t blen = strcspn (ref, "[.");
    const char *bracket = ref [blen] == '[' ? ref + blen : NULL;
    const char *dot = bracket ? strchr (bracket, ']') : ref + blen;
    if (dot && bracket)
        dot++;
    if (!dot || *dot != '.' || !dot [1] || blen == 0)
        return ty_pipeline_fail (raw, line, field, "${%s}: a reference is ${step.key}, "
                                 "${params.name} or ${item.key}", ref);
    const char *key = dot + 1;
    char base [128];
    snprintf (base, sizeof base, "%.*s", (int) blen, ref);
    long t = ty_pipeline_raw_find (raw, base);
    if (t < 0)
        return ty_pipeline_fail (raw, line, field, "${%s}: no step named '%s'", ref, base);
    if (ctx->suffix == NULL)
        return ty_pipeline_fail (raw, line, field, "${%s}: a step output cannot be used "
                                 "here (only ${params.x})", ref);
    ty_pipeline_raw_step_t *target = &raw->steps [t];
    if (!self->ancestors [t])
        return ty_pipeline_fail (raw, line, field, "${%s}: step '%s' is not among the steps "
                                 "'%s' needs (directly or through them): add it to needs:",
                                 ref, base, self->name);
    if (!ty_pipeline_output_known (target->kind, key))
        return ty_pipeline_fail (raw, line, field, "${%s}: a %s step has no output '%s' "
                                 "(outputs: %s)", ref, ty_pipeline_kind_name (target->kind),
                                 key, ty_pipeline_output_list (target->kind));
    if (bracket) {
        if (!target->nfkeys)
            return ty_pipeline_fail (raw, line, field, "${%s}: step '%s' has no foreach "
                                     "branches", ref, base);
        size_t slen = (size_t) (dot - bracket);
        size_t b = s_branch_of (target, bracket, slen);
        if (b == target->nbranches)
            return ty_pipeline_fail (raw, line, field, "${%s}: step '%s' has no branch %.*s",
                                     ref, base, (int) slen, bracket);
        int rc = s_add_ref (ctx, target->first_item + b);
        if (rc != TY_OK)
            return rc;
        goto keep;
    }
    if (target->nfkeys) {
        if (!self->nfkeys || !ty_pipeline_same_keys (self, target)) {
            char sfx [TY_PIPELINE_STR_MAX] = "";
            ty_pipeline_branch_suffix (target, 0, sfx, sizeof sfx);
            return ty_pipeline_fail (raw, line, field, "${%s}: step '%s' runs once per "
                                     "foreach branch: name one (e.g. ${%s%s.%s}) or give this "
                                     "step the same foreach keys", ref, base, base, sfx, key);
        }
        size_t b = s_branch_of (target, ctx->suffix, strlen (ctx->suffix));
        if (b == target->nbranches)
            return ty_pipeline_fail (raw, line, field, "${%s}: step '%s' has no branch %s "
                                     "to pair with", ref, base, ctx->suffix);
        /* Paired branch by branch: ${train.model} -> ${train[fold=2].model}. */
        int rc = s_add_ref (ctx, target->first_item + b);
        if (rc == TY_OK)
            rc = s_append (buf, len, cap, "${", 2);
        if (rc == TY_OK)
            rc = s_append (buf, len, cap, base, blen);
        if (rc == TY_OK)
            rc = s_append (buf, len, cap, ctx->suffix, strlen (ctx->suffix));
        if (rc == TY_OK)
            rc = s_append (buf, len, cap, dot, strlen (dot));
        if (rc == TY_OK)
            rc = s_append (buf, len, cap, "}", 1);
        return rc;
    }
    {
        int rc = s_add_ref (ctx, target->first_item);
        if (rc != TY_OK)
            return rc;
    }
keep:;
    int rc = s_append (buf, len, cap, "${", 2);
    if (rc == TY_OK)
        rc = s_append (buf, len, cap, ref, strlen (ref));
    if (rc == TY_OK)
        rc = s_append (buf, len, cap, "}", 1);
    return rc;
}

int
ty_pipeline_subst (ty_pipeline_subst_t *ctx, const char *in, int line, const char *field,
                   char **out)
{
    *out = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = s_append (&buf, &len, &cap, "", 0);
    const char *p = in;
    while (rc == TY_OK && *p) {
        const char *open = strstr (p, "${");
        if (!open) {
            rc = s_append (&buf, &len, &cap, p, strlen (p));
            break;
        }
        rc = s_append (&buf, &len, &cap, p, (size_t) (open - p));
        if (rc != TY_OK)
            break;
        const char *close = strchr (open + 2, '}');
        if (!close) {
            rc = ty_pipeline_fail (ctx->raw, line, field, "unclosed ${ in '%s'", in);
            break;
        }
        char ref [256];
        if ((size_t) (close - open - 2) >= sizeof ref) {
            rc = ty_pipeline_fail (ctx->raw, line, field, "a reference is too long");
            break;
        }
        snprintf (ref, sizeof ref, "%.*s", (int) (close - open - 2), open + 2);
        rc = s_ref (ctx, ref, line, field, &buf, &len, &cap);
        p = close + 1;
    }
    if (rc == TY_OK && len > TY_PIPELINE_STR_MAX)
        rc = ty_pipeline_fail (ctx->raw, line, field, "longer than %d bytes after "
                               "substitution", TY_PIPELINE_STR_MAX);
    if (rc != TY_OK) {
        free (buf);
        return rc;
    }
    *out = buf;
    return TY_OK;
}

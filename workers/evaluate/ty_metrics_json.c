/*  ty_metrics_json: the metric results as cJSON objects, the shape
 *  metrics.json and the job's result summary use. NaN becomes null. */
#include "ty_metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

cJSON *
ty_metrics_json_add_number (cJSON *obj, const char *name, double value)
{
    if (!isfinite (value))
        return cJSON_AddNullToObject (obj, name);
    return cJSON_AddNumberToObject (obj, name, value);
}

static cJSON *
s_prf_json (cJSON *parent, const char *name, const ty_prf_t *v)
{
    cJSON *o = cJSON_AddObjectToObject (parent, name);
    if (!o || !ty_metrics_json_add_number (o, "precision", v->precision)
        || !ty_metrics_json_add_number (o, "recall", v->recall)
        || !ty_metrics_json_add_number (o, "f1", v->f1))
        return NULL;
    return o;
}

/* The per-class (or per-label) rows shared by both classification kinds. */
static int
s_per_class_json (cJSON *root, const char *key, const char *idx_name, size_t k,
                  const char *const *names, const double *p, const double *r,
                  const double *f, const int64_t *support)
{
    cJSON *arr = cJSON_AddArrayToObject (root, key);
    if (!arr)
        return -1;
    for (size_t c = 0; c < k; c++) {
        cJSON *row = cJSON_CreateObject ();
        if (!row || !cJSON_AddItemToArray (arr, row)) {
            cJSON_Delete (row);
            return -1;
        }
        if (!cJSON_AddNumberToObject (row, idx_name, (double) c)
            || (names && names[c] && !cJSON_AddStringToObject (row, "name", names[c]))
            || !ty_metrics_json_add_number (row, "precision", p[c])
            || !ty_metrics_json_add_number (row, "recall", r[c])
            || !ty_metrics_json_add_number (row, "f1", f[c])
            || !cJSON_AddNumberToObject (row, "support", (double) support[c]))
            return -1;
    }
    return 0;
}

cJSON *
ty_cls_metrics_json (const ty_cls_metrics_t *m, const char *const *class_names,
                     size_t max_confusions)
{
    cJSON *root = cJSON_CreateObject ();
    if (!root)
        return NULL;
    size_t k = m->n_classes;
    ty_confusion_t *top = NULL;
    if (!ty_metrics_json_add_number (root, "accuracy", m->accuracy)
        || !cJSON_AddNumberToObject (root, "n_samples", (double) m->n_samples)
        || !cJSON_AddNumberToObject (root, "n_classes", (double) k)
        || s_per_class_json (root, "per_class", "class", k, class_names,
                             m->precision, m->recall, m->f1, m->support) != 0
        || !s_prf_json (root, "macro", &m->macro)
        || !s_prf_json (root, "micro", &m->micro)
        || !s_prf_json (root, "weighted", &m->weighted))
        goto fail;

    cJSON *cm = cJSON_AddArrayToObject (root, "confusion_matrix");
    if (!cm)
        goto fail;
    for (size_t a = 0; a < k; a++) {
        cJSON *row = cJSON_CreateArray ();
        if (!row || !cJSON_AddItemToArray (cm, row)) {
            cJSON_Delete (row);
            goto fail;
        }
        for (size_t p = 0; p < k; p++) {
            cJSON *v = cJSON_CreateNumber ((double) m->confusion[a * k + p]);
            if (!v || !cJSON_AddItemToArray (row, v)) {
                cJSON_Delete (v);
                goto fail;
            }
        }
    }

    cJSON *tc = cJSON_AddArrayToObject (root, "top_confusions");
    if (!tc)
        goto fail;
    size_t n_top = 0;
    if (max_confusions > 0) {
        top = malloc (max_confusions * sizeof *top);
        if (!top || ty_cls_metrics_top_confusions (m, top, max_confusions, &n_top) != 0)
            goto fail;
    }
    for (size_t i = 0; i < n_top; i++) {
        cJSON *o = cJSON_CreateObject ();
        if (!o || !cJSON_AddItemToArray (tc, o)) {
            cJSON_Delete (o);
            goto fail;
        }
        if (!cJSON_AddNumberToObject (o, "actual", top[i].actual)
            || !cJSON_AddNumberToObject (o, "predicted", top[i].predicted)
            || !cJSON_AddNumberToObject (o, "count", (double) top[i].count))
            goto fail;
        if (class_names && class_names[top[i].actual] && class_names[top[i].predicted]
            && (!cJSON_AddStringToObject (o, "actual_name", class_names[top[i].actual])
                || !cJSON_AddStringToObject (o, "predicted_name",
                                             class_names[top[i].predicted])))
            goto fail;
    }
    free (top);
    return root;
fail:
    free (top);
    cJSON_Delete (root);
    return NULL;
}

cJSON *
ty_ml_metrics_json (const ty_ml_metrics_t *m, const char *const *label_names)
{
    cJSON *root = cJSON_CreateObject ();
    if (!root)
        return NULL;
    if (!ty_metrics_json_add_number (root, "subset_accuracy", m->subset_accuracy)
        || !ty_metrics_json_add_number (root, "hamming_loss", m->hamming_loss)
        || !cJSON_AddNumberToObject (root, "n_samples", (double) m->n_samples)
        || !cJSON_AddNumberToObject (root, "n_labels", (double) m->n_labels)
        || s_per_class_json (root, "per_label", "label", m->n_labels, label_names,
                             m->precision, m->recall, m->f1, m->support) != 0
        || !s_prf_json (root, "macro", &m->macro)
        || !s_prf_json (root, "micro", &m->micro)
        || !s_prf_json (root, "weighted", &m->weighted)) {
        cJSON_Delete (root);
        return NULL;
    }
    return root;
}

cJSON *
ty_reg_metrics_json (const ty_reg_metrics_t *m)
{
    cJSON *root = cJSON_CreateObject ();
    if (!root || !ty_metrics_json_add_number (root, "mse", m->mse)
        || !ty_metrics_json_add_number (root, "rmse", m->rmse)
        || !ty_metrics_json_add_number (root, "mae", m->mae)
        || !ty_metrics_json_add_number (root, "r2", m->r2)) {
        cJSON_Delete (root);
        return NULL;
    }
    return root;
}

cJSON *
ty_rank_metrics_json (const ty_rank_metrics_t *m, size_t k, size_t n_neg)
{
    cJSON *root = cJSON_CreateObject ();
    if (!root || !cJSON_AddNumberToObject (root, "k", (double) k)
        || !cJSON_AddNumberToObject (root, "n_negatives", (double) n_neg)
        || !ty_metrics_json_add_number (root, "hit_rate", m->hit_rate)
        || !ty_metrics_json_add_number (root, "ndcg", m->ndcg)
        || !cJSON_AddStringToObject (root, "ties", "pessimistic")) {
        cJSON_Delete (root);
        return NULL;
    }
    return root;
}

cJSON *
ty_metrics_latency_json (const ty_metrics_latency_t *l)
{
    cJSON *root = cJSON_CreateObject ();
    if (!root || !cJSON_AddNumberToObject (root, "n", (double) l->n)
        || !ty_metrics_json_add_number (root, "mean_ms", l->mean_ms)
        || !ty_metrics_json_add_number (root, "min_ms", l->min_ms)
        || !ty_metrics_json_add_number (root, "p50_ms", l->p50_ms)
        || !ty_metrics_json_add_number (root, "p95_ms", l->p95_ms)
        || !ty_metrics_json_add_number (root, "p99_ms", l->p99_ms)
        || !ty_metrics_json_add_number (root, "max_ms", l->max_ms)
        || !ty_metrics_json_add_number (root, "throughput_per_s", l->throughput_per_s)) {
        cJSON_Delete (root);
        return NULL;
    }
    return root;
}

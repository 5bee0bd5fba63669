/*  ty_pipeline_parse: a pipeline file's YAML -> the raw model (name, params
 *  with --set overrides applied, steps with their type, needs and foreach
 *  node), keeping every node's line for error messages. Also the load entry
 *  points, which run parse -> validate -> expand.
 *
 *  libyaml's document API gives a tree with marks; it does not refuse
 *  duplicate keys, so every mapping read here is checked for them.
 */
#include "ty_pipeline_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Keys of the top level of a file. */
static const char *const s_top_keys [] = { "name", "description", "params", "steps", NULL };

static const char *const s_kind_names [TY_PIPELINE_NTYPES] = {
    [TY_PIPELINE_NOOP]      = "noop",
    [TY_PIPELINE_PREPARE]   = "prepare",
    [TY_PIPELINE_TRAIN]     = "train",
    [TY_PIPELINE_EVALUATE]  = "evaluate",
    [TY_PIPELINE_CONVERT]   = "convert",
    [TY_PIPELINE_PROMOTE]   = "promote",
    [TY_PIPELINE_AGGREGATE] = "aggregate",
};

/* ---- small shared helpers ------------------------------------------------------ */

int
ty_pipeline_fail (ty_pipeline_raw_t *raw, int line, const char *field, const char *fmt, ...)
{
    if (!raw->err || raw->errlen == 0)
        return TY_EINVAL;
    char msg [TY_PIPELINE_ERR_LEN];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    if (line > 0)
        snprintf (raw->err, raw->errlen, "%s:%d: %s%s%s", raw->file, line,
                  field ? field : "", field ? ": " : "", msg);
    else
        snprintf (raw->err, raw->errlen, "%s: %s%s%s", raw->file,
                  field ? field : "", field ? ": " : "", msg);
    return TY_EINVAL;
}

int
ty_pipeline_line (const yaml_node_t *node)
{
    return node ? (int) node->start_mark.line + 1 : 0;
}

const char *
ty_pipeline_kind_name (ty_pipeline_kind_t kind)
{
    return kind < TY_PIPELINE_NTYPES ? s_kind_names [kind] : "?";
}

int
ty_pipeline_kind_parse (const char *word, ty_pipeline_kind_t *kind)
{
    for (int k = 0; k < TY_PIPELINE_NTYPES; k++)
        if (!strcmp (word, s_kind_names [k])) {
            *kind = (ty_pipeline_kind_t) k;
            return 0;
        }
    return -1;
}

long
ty_pipeline_raw_find (const ty_pipeline_raw_t *raw, const char *name)
{
    for (size_t i = 0; i < raw->nsteps; i++)
        if (!strcmp (raw->steps [i].name, name))
            return (long) i;
    return -1;
}

static yaml_node_t *
s_node (ty_pipeline_raw_t *raw, int index)
{
    return yaml_document_get_node (&raw->doc, index);
}

static const char *
s_scalar (const yaml_node_t *node)
{
    return node && node->type == YAML_SCALAR_NODE ? (const char *) node->data.scalar.value
                                                  : NULL;
}

/* A mapping's keys must be scalars and unique. */
static int
s_check_mapping (ty_pipeline_raw_t *raw, yaml_node_t *map, const char *field)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = s_node (raw, p->key);
        const char *ks = s_scalar (k);
        if (!ks)
            return ty_pipeline_fail (raw, ty_pipeline_line (k), field, "keys must be plain words");
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const char *qs = s_scalar (s_node (raw, q->key));
            if (qs && !strcmp (qs, ks))
                return ty_pipeline_fail (raw, ty_pipeline_line (k), field,
                                         "duplicate key '%s' (first on line %d)", ks,
                                         ty_pipeline_line (s_node (raw, q->key)));
        }
    }
    return TY_OK;
}

static char *
s_strdup (const char *s)
{
    return strdup (s ? s : "");
}

/* ---- params and --set ------------------------------------------------------------ */

static int
s_parse_params (ty_pipeline_raw_t *raw, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return ty_pipeline_fail (raw, ty_pipeline_line (map), "params",
                                 "must be a mapping of names to values");
    int rc = s_check_mapping (raw, map, "params");
    if (rc != TY_OK)
        return rc;
    size_t n = (size_t) (map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    raw->pkeys = calloc (n ? n : 1, sizeof *raw->pkeys);
    raw->pvals = calloc (n ? n : 1, sizeof *raw->pvals);
    if (!raw->pkeys || !raw->pvals)
        return TY_ENOMEM;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = s_scalar (s_node (raw, p->key));
        yaml_node_t *v = s_node (raw, p->value);
        const char *vs = s_scalar (v);
        if (!k)
            continue;           /* s_check_mapping refused non-scalar keys */
        if (!vs) {
            char field [128];
            snprintf (field, sizeof field, "params.%s", k);
            return ty_pipeline_fail (raw, ty_pipeline_line (v), field,
                                     "a param is a single value (a number or a word)");
        }
        raw->pkeys [raw->nparams] = s_strdup (k);
        raw->pvals [raw->nparams] = s_strdup (vs);
        if (!raw->pkeys [raw->nparams] || !raw->pvals [raw->nparams])
            return TY_ENOMEM;
        raw->nparams++;
    }
    return TY_OK;
}

static int
s_apply_sets (ty_pipeline_raw_t *raw, const char *const *sets, size_t nsets)
{
    for (size_t i = 0; i < nsets; i++) {
        const char *eq = strchr (sets [i], '=');
        if (!eq || eq == sets [i])
            return ty_pipeline_fail (raw, 0, "--set", "'%s' is not key=value", sets [i]);
        size_t klen = (size_t) (eq - sets [i]);
        size_t j = 0;
        while (j < raw->nparams && (strlen (raw->pkeys [j]) != klen
                                    || strncmp (raw->pkeys [j], sets [i], klen)))
            j++;
        if (j == raw->nparams) {
            char known [TY_PIPELINE_ERR_LEN / 2] = "";
            for (size_t k = 0; k < raw->nparams; k++) {
                size_t used = strlen (known);
                snprintf (known + used, sizeof known - used, "%s%s", k ? ", " : "",
                          raw->pkeys [k]);
            }
            return ty_pipeline_fail (raw, 0, "--set", "'%.*s' is not a param of this "
                                     "pipeline (params: %s)", (int) klen, sets [i],
                                     raw->nparams ? known : "none");
        }
        char *v = s_strdup (eq + 1);
        if (!v)
            return TY_ENOMEM;
        free (raw->pvals [j]);
        raw->pvals [j] = v;
    }
    return TY_OK;
}

/* ---- steps ----------------------------------------------------------------------- */

static int
s_parse_needs (ty_pipeline_raw_t *raw, ty_pipeline_raw_step_t *st, yaml_node_t *v,
               const char *field)
{
    size_t n = 1;
    if (v->type == YAML_SEQUENCE_NODE)
        n = (size_t) (v->data.sequence.items.top - v->data.sequence.items.start);
    else if (v->type != YAML_SCALAR_NODE)
        return ty_pipeline_fail (raw, ty_pipeline_line (v), field,
                                 "a step name or a list of step names");
    st->needs = calloc (n ? n : 1, sizeof *st->needs);
    st->needs_lines = calloc (n ? n : 1, sizeof *st->needs_lines);
    st->needs_idx = calloc (n ? n : 1, sizeof *st->needs_idx);
    if (!st->needs || !st->needs_lines || !st->needs_idx)
        return TY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = v->type == YAML_SEQUENCE_NODE
                          ? s_node (raw, v->data.sequence.items.start [i]) : v;
        const char *name = s_scalar (item);
        if (!name || !*name)
            return ty_pipeline_fail (raw, ty_pipeline_line (item), field,
                                     "each need is a step name");
        for (size_t j = 0; j < st->nneeds; j++)
            if (!strcmp (st->needs [j], name))
                return ty_pipeline_fail (raw, ty_pipeline_line (item), field,
                                         "'%s' is named twice", name);
        st->needs [st->nneeds] = s_strdup (name);
        if (!st->needs [st->nneeds])
            return TY_ENOMEM;
        st->needs_lines [st->nneeds] = ty_pipeline_line (item);
        st->nneeds++;
    }
    return TY_OK;
}

/* Step names appear in branch names and references: keep them plain. */
static int
s_name_ok (const char *name)
{
    if (!*name)
        return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
              || *c == '_' || *c == '-'))
            return 0;
    return strcmp (name, "params") && strcmp (name, "item") && strcmp (name, "foreach");
}

static int
s_parse_step (ty_pipeline_raw_t *raw, ty_pipeline_raw_step_t *st, yaml_node_t *k,
              yaml_node_t *v)
{
    st->name = s_strdup (s_scalar (k));
    if (!st->name)
        return TY_ENOMEM;
    st->line = ty_pipeline_line (k);
    st->nbranches = 1;
    char field [160];
    snprintf (field, sizeof field, "steps.%s", st->name);
    if (!s_name_ok (st->name))
        return ty_pipeline_fail (raw, st->line, field, "a step name is letters, digits, '_' "
                                 "and '-' (and not params, item or foreach)");
    if (v->type != YAML_MAPPING_NODE)
        return ty_pipeline_fail (raw, ty_pipeline_line (v), field,
                                 "a step is a mapping with at least `type:`");
    int rc = s_check_mapping (raw, v, field);
    if (rc != TY_OK)
        return rc;
    st->node = v;
    int have_type = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        const char *key = s_scalar (s_node (raw, p->key));
        yaml_node_t *val = s_node (raw, p->value);
        if (!key)
            continue;           /* s_check_mapping refused non-scalar keys */
        char kf [200];
        snprintf (kf, sizeof kf, "%s.%s", field, key);
        if (!strcmp (key, "type")) {
            const char *t = s_scalar (val);
            if (!t || ty_pipeline_kind_parse (t, &st->kind) != 0)
                return ty_pipeline_fail (raw, ty_pipeline_line (val), kf,
                                         "unknown step type '%s' (types: prepare, train, "
                                         "evaluate, convert, promote, aggregate, noop)",
                                         t ? t : "?");
            have_type = 1;
        }
        else if (!strcmp (key, "needs")) {
            rc = s_parse_needs (raw, st, val, kf);
            if (rc != TY_OK)
                return rc;
        }
        else if (!strcmp (key, "foreach")) {
            if (val->type != YAML_MAPPING_NODE
            ||  val->data.mapping.pairs.top == val->data.mapping.pairs.start)
                return ty_pipeline_fail (raw, ty_pipeline_line (val), kf,
                                         "a mapping of keys to lists, e.g. {fold: [0, 1, 2]}");
            rc = s_check_mapping (raw, val, kf);
            if (rc != TY_OK)
                return rc;
            st->foreach_line = ty_pipeline_line (val);
        }
    }
    if (!have_type)
        return ty_pipeline_fail (raw, st->line, field, "the step has no `type:`");
    return TY_OK;
}

static int
s_parse_steps (ty_pipeline_raw_t *raw, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return ty_pipeline_fail (raw, ty_pipeline_line (map), "steps",
                                 "must be a mapping of step names to steps");
    int rc = s_check_mapping (raw, map, "steps");
    if (rc != TY_OK)
        return rc;
    size_t n = (size_t) (map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n == 0)
        return ty_pipeline_fail (raw, ty_pipeline_line (map), "steps", "no steps");
    raw->steps = calloc (n, sizeof *raw->steps);
    if (!raw->steps)
        return TY_ENOMEM;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        rc = s_parse_step (raw, &raw->steps [raw->nsteps++], s_node (raw, p->key),
                           s_node (raw, p->value));
        if (rc != TY_OK)
            return rc;
    }
    return TY_OK;
}

int
ty_pipeline_parse (ty_pipeline_raw_t *raw, const char *yaml, size_t len,
                   const char *const *sets, size_t nsets)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize (&parser))
        return TY_ENOMEM;
    yaml_parser_set_input_string (&parser, (const unsigned char *) yaml, len);
    if (!yaml_parser_load (&parser, &raw->doc)) {
        int rc = ty_pipeline_fail (raw, (int) parser.problem_mark.line + 1, NULL,
                                   "YAML: %s%s%s", parser.problem ? parser.problem : "error",
                                   parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete (&parser);
        return rc;
    }
    yaml_parser_delete (&parser);
    raw->have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node (&raw->doc);
    if (!root)
        return ty_pipeline_fail (raw, 0, NULL, "the file is empty");
    if (root->type != YAML_MAPPING_NODE)
        return ty_pipeline_fail (raw, ty_pipeline_line (root), NULL,
                                 "a pipeline is a mapping with name, params and steps");
    int rc = s_check_mapping (raw, root, "(top level)");
    if (rc != TY_OK)
        return rc;
    yaml_node_t *steps = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = s_node (raw, p->key);
        yaml_node_t *v = s_node (raw, p->value);
        const char *key = s_scalar (k);
        if (!key)
            continue;           /* s_check_mapping refused non-scalar keys */
        size_t i = 0;
        while (s_top_keys [i] && strcmp (s_top_keys [i], key))
            i++;
        if (!s_top_keys [i])
            return ty_pipeline_fail (raw, ty_pipeline_line (k), key, "unknown key (keys: "
                                     "name, description, params, steps)");
        if (!strcmp (key, "name")) {
            const char *name = s_scalar (v);
            if (!name || !*name || strchr (name, '/'))
                return ty_pipeline_fail (raw, ty_pipeline_line (v), "name",
                                         "a single word without '/'");
            raw->name = s_strdup (name);
            if (!raw->name)
                return TY_ENOMEM;
        }
        else if (!strcmp (key, "params")) {
            rc = s_parse_params (raw, v);
            if (rc != TY_OK)
                return rc;
        }
        else if (!strcmp (key, "steps"))
            steps = v;
    }
    if (!raw->name)
        return ty_pipeline_fail (raw, ty_pipeline_line (root), "name", "missing");
    if (!steps)
        return ty_pipeline_fail (raw, ty_pipeline_line (root), "steps", "missing");
    rc = s_apply_sets (raw, sets, nsets);
    if (rc != TY_OK)
        return rc;
    return s_parse_steps (raw, steps);
}

void
ty_pipeline_raw_free (ty_pipeline_raw_t *raw)
{
    for (size_t i = 0; i < raw->nsteps; i++) {
        ty_pipeline_raw_step_t *st = &raw->steps [i];
        free (st->name);
        for (size_t j = 0; j < st->nneeds; j++)
            free (st->needs [j]);
        free (st->needs);
        free (st->needs_lines);
        free (st->needs_idx);
        for (size_t j = 0; j < st->nfkeys; j++) {
            free (st->fkeys [j].key);
            for (size_t v = 0; v < st->fkeys [j].nvalues; v++)
                free (st->fkeys [j].values [v]);
            free (st->fkeys [j].values);
        }
        free (st->fkeys);
        free (st->ancestors);
    }
    free (raw->steps);
    for (size_t i = 0; i < raw->nparams; i++) {
        free (raw->pkeys [i]);
        free (raw->pvals [i]);
    }
    free (raw->pkeys);
    free (raw->pvals);
    free (raw->name);
    free (raw->order);
    if (raw->have_doc)
        yaml_document_delete (&raw->doc);
    memset (raw, 0, sizeof *raw);
}

/* ---- load -------------------------------------------------------------------------- */

int
ty_pipeline_load_string (const char *yaml, const char *name_for_errors,
                         const char *const *sets, size_t nsets,
                         ty_pipeline_t **self_p, char *err, size_t errlen)
{
    if (!self_p)
        return TY_EINVAL;
    *self_p = NULL;
    if (err && errlen)
        err [0] = '\0';
    if (!yaml)
        return TY_EINVAL;
    ty_pipeline_raw_t raw;
    memset (&raw, 0, sizeof raw);
    raw.file = name_for_errors ? name_for_errors : "(pipeline)";
    raw.err = err;
    raw.errlen = errlen;
    ty_pipeline_t *self = calloc (1, sizeof *self);
    if (!self)
        return TY_ENOMEM;
    int rc = ty_pipeline_parse (&raw, yaml, strlen (yaml), sets, nsets);
    if (rc == TY_OK)
        rc = ty_pipeline_validate_graph (&raw);
    if (rc == TY_OK)
        rc = ty_pipeline_expand (&raw, self);
    if (rc == TY_OK) {
        self->name = raw.name;
        raw.name = NULL;
        self->ids = calloc (self->nitems, TY_ID_LEN + 1);
        if (!self->ids)
            rc = TY_ENOMEM;
    }
    if (rc == TY_ENOMEM && err && errlen)
        snprintf (err, errlen, "%s: out of memory", raw.file);
    ty_pipeline_raw_free (&raw);
    if (rc != TY_OK) {
        ty_pipeline_destroy (&self);
        return rc;
    }
    *self_p = self;
    return TY_OK;
}

int
ty_pipeline_load (const char *path, const char *const *sets, size_t nsets,
                  ty_pipeline_t **self_p, char *err, size_t errlen)
{
    if (!self_p || !path)
        return TY_EINVAL;
    *self_p = NULL;
    FILE *f = fopen (path, "rb");
    if (!f) {
        int e = errno;
        if (err && errlen)
            snprintf (err, errlen, "%s: %s", path, strerror (e));
        return e;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream (&buf, &len);
    if (!mem) {
        fclose (f);
        return TY_ENOMEM;
    }
    char chunk [4096];
    size_t got;
    while ((got = fread (chunk, 1, sizeof chunk, f)) > 0)
        if (fwrite (chunk, 1, got, mem) != got)
            break;
    int read_err = ferror (f);
    fclose (f);
    if (fclose (mem) != 0 || read_err || !buf) {
        free (buf);
        if (err && errlen)
            snprintf (err, errlen, "%s: cannot read", path);
        return read_err ? EIO : TY_ENOMEM;
    }
    int rc = ty_pipeline_load_string (buf, path, sets, nsets, self_p, err, errlen);
    free (buf);
    return rc;
}

/*  ty_pipeline_expand: foreach branches and the job spec of each branch.
 *
 *  A step's keys are mapped onto its spec message GENERICALLY through the
 *  protobuf-c descriptors: a key is the name of a field of the step type's
 *  message (TrainSpec, EvaluateSpec, ...), its YAML value is parsed per the
 *  field's type with range checks; repeated fields take YAML lists,
 *  map<string,string> fields YAML mappings, and a string field given a
 *  mapping or list gets its JSON text (evaluate's `gate:`). So a field added
 *  to job.proto is usable in pipeline files with no change here. Step-level
 *  keys (type, needs, when, foreach, retries, retry_backoff, timeout, priority, resources,
 *  name) go to the JobSpec.
 *
 *  Every allocation hangs off the JobSpec, so protobuf_c_message_free_unpacked
 *  with the default allocator frees an item's spec whole.
 */
#include "ty_pipeline_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys of a step that are not fields of its spec message. */
static const char *const s_step_keys [] = {
    "type", "needs", "when", "foreach", "retries", "retry_backoff", "timeout", "priority",
    "resources", "name",
    NULL };

/* A timeout must fit JobSpec.timeout_ms (uint32: about 49 days). */
#define S_TIMEOUT_MAX_MS  ((double) UINT32_MAX)

/* ---- branches ------------------------------------------------------------------------- */

const char *
ty_pipeline_branch_value (const ty_pipeline_raw_step_t *st, size_t b, size_t k)
{
    /* Mixed radix, the last key fastest: branches of {a: [1,2], b: [x,y]}
       come as [a=1,b=x] [a=1,b=y] [a=2,b=x] [a=2,b=y]. */
    for (size_t j = st->nfkeys; j-- > k + 1;)
        b /= st->fkeys [j].nvalues;
    return st->fkeys [k].values [b % st->fkeys [k].nvalues];
}

int
ty_pipeline_branch_suffix (const ty_pipeline_raw_step_t *st, size_t b, char *buf, size_t len)
{
    if (!st->nfkeys) {
        snprintf (buf, len, "%s", "");
        return 0;
    }
    size_t used = 0;
    for (size_t k = 0; k < st->nfkeys; k++) {
        int n = snprintf (buf + used, len - used, "%s%s=%s", k ? "," : "[", st->fkeys [k].key,
                          ty_pipeline_branch_value (st, b, k));
        if (n < 0 || (size_t) n >= len - used)
            return -1;
        used += (size_t) n;
    }
    int n = snprintf (buf + used, len - used, "]");
    return n < 0 || (size_t) n >= len - used ? -1 : 0;
}

int
ty_pipeline_same_keys (const ty_pipeline_raw_step_t *a, const ty_pipeline_raw_step_t *b)
{
    if (!a->nfkeys || a->nfkeys != b->nfkeys)
        return 0;
    for (size_t k = 0; k < a->nfkeys; k++)
        if (strcmp (a->fkeys [k].key, b->fkeys [k].key))
            return 0;
    return 1;
}

static int
s_fkey_cmp (const void *a, const void *b)
{
    return strcmp (((const ty_pipeline_fkey_t *) a)->key, ((const ty_pipeline_fkey_t *) b)->key);
}

/* A foreach value goes into a step name: no brackets, commas or '='. */
static int
s_value_ok (const char *v)
{
    return *v && !strpbrk (v, "[],=${} \t\n");
}

static int
s_add_value (ty_pipeline_fkey_t *fk, char *v)
{
    char **nv = realloc (fk->values, (fk->nvalues + 1) * sizeof *nv);
    if (!nv) {
        free (v);
        return TY_ENOMEM;
    }
    fk->values = nv;
    fk->values [fk->nvalues++] = v;
    return TY_OK;
}

/* "range(n)" or "range(a, b)" -> a..b-1. 1 if text is a range, 0 if not,
   -1 if malformed. */
static int
s_range (const char *text, long *from, long *to)
{
    if (strncmp (text, "range(", 6))
        return 0;
    char *end;
    errno = 0;
    long a = strtol (text + 6, &end, 10);
    long b;
    while (*end == ' ')
        end++;
    if (*end == ',') {
        b = strtol (end + 1, &end, 10);
        while (*end == ' ')
            end++;
    }
    else {
        b = a;
        a = 0;
    }
    if (errno || strcmp (end, ")") || b < a || b - a > TY_PIPELINE_MAX_RANGE)
        return -1;
    *from = a;
    *to = b;
    return 1;
}

static int
s_parse_foreach (ty_pipeline_raw_t *raw, size_t si)
{
    ty_pipeline_raw_step_t *st = &raw->steps [si];
    yaml_node_t *node = NULL;
    for (yaml_node_pair_t *p = st->node->data.mapping.pairs.start;
         p < st->node->data.mapping.pairs.top; p++)
        if (!strcmp ((const char *) yaml_document_get_node (&raw->doc, p->key)->data.scalar.value,
                     "foreach"))
            node = yaml_document_get_node (&raw->doc, p->value);
    if (!node)
        return TY_OK;
    size_t n = (size_t) (node->data.mapping.pairs.top - node->data.mapping.pairs.start);
    st->fkeys = calloc (n, sizeof *st->fkeys);
    if (!st->fkeys)
        return TY_ENOMEM;
    ty_pipeline_subst_t ctx = { raw, si, NULL, NULL, NULL, 0 };
    size_t branches = 1;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node (&raw->doc, p->key);
        yaml_node_t *v = yaml_document_get_node (&raw->doc, p->value);
        ty_pipeline_fkey_t *fk = &st->fkeys [st->nfkeys++];
        fk->key = strdup ((const char *) k->data.scalar.value);
        if (!fk->key)
            return TY_ENOMEM;
        char field [200];
        snprintf (field, sizeof field, "steps.%s.foreach.%s", st->name, fk->key);
        if (!s_value_ok (fk->key))
            return ty_pipeline_fail (raw, ty_pipeline_line (k), field, "a foreach key is a "
                                     "plain word");
        if (v->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
                yaml_node_t *e = yaml_document_get_node (&raw->doc, *it);
                if (e->type != YAML_SCALAR_NODE)
                    return ty_pipeline_fail (raw, ty_pipeline_line (e), field,
                                             "each value is a number or a word");
                char *val = NULL;
                int rc = ty_pipeline_subst (&ctx, (const char *) e->data.scalar.value,
                                            ty_pipeline_line (e), field, &val);
                if (rc != TY_OK)
                    return rc;
                if (!s_value_ok (val)) {
                    rc = ty_pipeline_fail (raw, ty_pipeline_line (e), field, "'%s': a value goes "
                                           "into step names: no spaces, brackets, ',' or '='", val);
                    free (val);
                    return rc;
                }
                for (size_t j = 0; j < fk->nvalues; j++)
                    if (!strcmp (fk->values [j], val)) {
                        rc = ty_pipeline_fail (raw, ty_pipeline_line (e), field,
                                               "'%s' is listed twice", val);
                        free (val);
                        return rc;
                    }
                rc = s_add_value (fk, val);
                if (rc != TY_OK)
                    return rc;
            }
        }
        else if (v->type == YAML_SCALAR_NODE) {
            char *text = NULL;
            int rc = ty_pipeline_subst (&ctx, (const char *) v->data.scalar.value,
                                        ty_pipeline_line (v), field, &text);
            if (rc != TY_OK)
                return rc;
            long a = 0, b = 0;
            int r = s_range (text, &a, &b);
            free (text);
            if (r <= 0)
                return ty_pipeline_fail (raw, ty_pipeline_line (v), field, "a list of values "
                                         "or range(n) / range(a, b) with at most %d values",
                                         TY_PIPELINE_MAX_RANGE);
            for (long i = a; i < b; i++) {
                char num [24];
                snprintf (num, sizeof num, "%ld", i);
                char *val = strdup (num);
                if (!val || s_add_value (fk, val) != TY_OK)
                    return TY_ENOMEM;
            }
        }
        else
            return ty_pipeline_fail (raw, ty_pipeline_line (v), field,
                                     "a list of values or range(n)");
        if (fk->nvalues == 0)
            return ty_pipeline_fail (raw, ty_pipeline_line (v), field, "no values");
        branches *= fk->nvalues;
        if (branches > TY_PIPELINE_MAX_STEPS)
            return ty_pipeline_fail (raw, st->foreach_line, field, "more than %d branches",
                                     TY_PIPELINE_MAX_STEPS);
    }
    qsort (st->fkeys, st->nfkeys, sizeof *st->fkeys, s_fkey_cmp);
    st->nbranches = branches;
    return TY_OK;
}

/* ---- values per field type -------------------------------------------------------------- */

static size_t
s_elt_size (ProtobufCType type)
{
    switch (type) {
        case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
            return 8;
        case PROTOBUF_C_TYPE_BOOL:    return sizeof (protobuf_c_boolean);
        case PROTOBUF_C_TYPE_STRING:  return sizeof (char *);
        case PROTOBUF_C_TYPE_BYTES:   return sizeof (ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE: return sizeof (void *);
        default:                      return 4;
    }
}

static const char *
s_type_name (ProtobufCType type)
{
    switch (type) {
        case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
            return "an integer (int32)";
        case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
            return "a whole number 0..4294967295";
        case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
            return "an integer (int64)";
        case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
            return "a whole number >= 0";
        case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_DOUBLE:
            return "a number";
        case PROTOBUF_C_TYPE_BOOL:
            return "true or false";
        default:
            return "text";
    }
}

/* Parses text per type into *dst. -1 if it does not fit. */
static int
s_set_scalar (void *dst, ProtobufCType type, const char *text)
{
    char *end = NULL;
    errno = 0;
    switch (type) {
        case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_ENUM: {
            long long v = strtoll (text, &end, 10);
            if (errno || end == text || *end || v < INT32_MIN || v > INT32_MAX)
                return -1;
            *(int32_t *) dst = (int32_t) v;
            return 0;
        }
        case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: {
            if (strchr (text, '-'))
                return -1;
            unsigned long long v = strtoull (text, &end, 10);
            if (errno || end == text || *end || v > UINT32_MAX)
                return -1;
            *(uint32_t *) dst = (uint32_t) v;
            return 0;
        }
        case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64: {
            long long v = strtoll (text, &end, 10);
            if (errno || end == text || *end)
                return -1;
            *(int64_t *) dst = (int64_t) v;
            return 0;
        }
        case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: {
            if (strchr (text, '-'))
                return -1;
            unsigned long long v = strtoull (text, &end, 10);
            if (errno || end == text || *end)
                return -1;
            *(uint64_t *) dst = (uint64_t) v;
            return 0;
        }
        case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_DOUBLE: {
            double v = strtod (text, &end);
            if (errno || end == text || *end || !isfinite (v))
                return -1;
            if (type == PROTOBUF_C_TYPE_FLOAT)
                *(float *) dst = (float) v;
            else
                *(double *) dst = v;
            return 0;
        }
        case PROTOBUF_C_TYPE_BOOL: {
            static const char *const yes [] = { "true", "yes", "on", "1", NULL };
            static const char *const no [] = { "false", "no", "off", "0", NULL };
            for (size_t i = 0; yes [i]; i++)
                if (!strcmp (text, yes [i])) {
                    *(protobuf_c_boolean *) dst = 1;
                    return 0;
                }
            for (size_t i = 0; no [i]; i++)
                if (!strcmp (text, no [i])) {
                    *(protobuf_c_boolean *) dst = 0;
                    return 0;
                }
            return -1;
        }
        case PROTOBUF_C_TYPE_STRING: {
            char *s = strdup (text);
            if (!s)
                return -1;
            *(char **) dst = s;
            return 0;
        }
        default:
            return -1;
    }
}

/* ---- the branch being built ------------------------------------------------------------- */

typedef struct {
    ty_pipeline_raw_t *raw;
    ty_pipeline_subst_t subst;
    char field [200];           /* "steps.<name>.<key>" of the value at hand */
} s_build_t;

static int
s_text (s_build_t *b, yaml_node_t *node, char **out)
{
    if (node->type != YAML_SCALAR_NODE)
        return ty_pipeline_fail (b->raw, ty_pipeline_line (node), b->field,
                                 "expects a single value, not a %s",
                                 node->type == YAML_MAPPING_NODE ? "mapping" : "list");
    return ty_pipeline_subst (&b->subst, (const char *) node->data.scalar.value,
                              ty_pipeline_line (node), b->field, out);
}

/* A scalar's text into a number field: a ${step.key} cannot be resolved at
   load time, and the runtime substitutes only strings. */
static int
s_number_text (s_build_t *b, yaml_node_t *node, const ProtobufCFieldDescriptor *fd, char **out)
{
    int rc = s_text (b, node, out);
    if (rc != TY_OK)
        return rc;
    if (fd->type != PROTOBUF_C_TYPE_STRING && strstr (*out, "${")) {
        rc = ty_pipeline_fail (b->raw, ty_pipeline_line (node), b->field, "'%s': a step "
                               "output cannot go into %s field (only text fields take "
                               "${step.key})", *out, s_type_name (fd->type));
        free (*out);
        *out = NULL;
    }
    return rc;
}

static cJSON *
s_json (s_build_t *b, yaml_node_t *node, int *rc)
{
    yaml_document_t *doc = &b->raw->doc;
    if (node->type == YAML_MAPPING_NODE || node->type == YAML_SEQUENCE_NODE) {
        int map = node->type == YAML_MAPPING_NODE;
        cJSON *out = map ? cJSON_CreateObject () : cJSON_CreateArray ();
        if (!out) {
            *rc = TY_ENOMEM;
            return NULL;
        }
        if (map) {
            for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node (doc, p->key);
                if (k->type != YAML_SCALAR_NODE) {
                    *rc = ty_pipeline_fail (b->raw, ty_pipeline_line (k), b->field,
                                            "keys must be words");
                    cJSON_Delete (out);
                    return NULL;
                }
                cJSON *v = s_json (b, yaml_document_get_node (doc, p->value), rc);
                if (!v || !cJSON_AddItemToObject (out, (const char *) k->data.scalar.value, v)) {
                    cJSON_Delete (v);
                    cJSON_Delete (out);
                    if (*rc == TY_OK)
                        *rc = TY_ENOMEM;
                    return NULL;
                }
            }
        }
        else
            for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
                cJSON *v = s_json (b, yaml_document_get_node (doc, *it), rc);
                if (!v || !cJSON_AddItemToArray (out, v)) {
                    cJSON_Delete (v);
                    cJSON_Delete (out);
                    if (*rc == TY_OK)
                        *rc = TY_ENOMEM;
                    return NULL;
                }
            }
        return out;
    }
    char *text = NULL;
    *rc = s_text (b, node, &text);
    if (*rc != TY_OK)
        return NULL;
    cJSON *out = NULL;
    char *end = NULL;
    double num = strtod (text, &end);
    int quoted = node->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE
              || node->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    if (!quoted && *text && end && !*end && isfinite (num))
        out = cJSON_CreateNumber (num);
    else if (!quoted && (!strcmp (text, "true") || !strcmp (text, "false")))
        out = cJSON_CreateBool (!strcmp (text, "true"));
    else if (!quoted && (!strcmp (text, "null") || !strcmp (text, "~")))
        out = cJSON_CreateNull ();
    else
        out = cJSON_CreateString (text);
    free (text);
    if (!out)
        *rc = TY_ENOMEM;
    return out;
}

static int
s_is_map (const ProtobufCFieldDescriptor *fd)
{
    if (fd->label != PROTOBUF_C_LABEL_REPEATED || fd->type != PROTOBUF_C_TYPE_MESSAGE)
        return 0;
    const ProtobufCMessageDescriptor *md = fd->descriptor;
    size_t nl = strlen (md->name);
    return nl > 5 && !strcmp (md->name + nl - 5, "Entry") && md->n_fields == 2
        && protobuf_c_message_descriptor_get_field_by_name (md, "key")
        && protobuf_c_message_descriptor_get_field_by_name (md, "value");
}

static int
s_set_map (s_build_t *b, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd,
           yaml_node_t *node)
{
    if (node->type != YAML_MAPPING_NODE)
        return ty_pipeline_fail (b->raw, ty_pipeline_line (node), b->field,
                                 "expects a mapping, e.g. {key: value}");
    const ProtobufCMessageDescriptor *md = fd->descriptor;
    const ProtobufCFieldDescriptor *kf = protobuf_c_message_descriptor_get_field_by_name (md, "key");
    const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field_by_name (md, "value");
    size_t n = (size_t) (node->data.mapping.pairs.top - node->data.mapping.pairs.start);
    ProtobufCMessage **arr = calloc (n ? n : 1, sizeof *arr);
    if (!arr)
        return TY_ENOMEM;
    *(ProtobufCMessage ***) ((char *) msg + fd->offset) = arr;
    size_t *count = (size_t *) ((char *) msg + fd->quantifier_offset);
    char base [200];
    snprintf (base, sizeof base, "%s", b->field);
    int rc = TY_OK;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
         p < node->data.mapping.pairs.top && rc == TY_OK; p++) {
        yaml_node_t *k = yaml_document_get_node (&b->raw->doc, p->key);
        yaml_node_t *v = yaml_document_get_node (&b->raw->doc, p->value);
        ProtobufCMessage *e = malloc (md->sizeof_message);
        if (!e)
            return TY_ENOMEM;
        md->message_init (e);
        arr [(*count)++] = e;
        char *ks = NULL, *vs = NULL;
        rc = s_text (b, k, &ks);
        if (rc == TY_OK) {
            snprintf (b->field, sizeof b->field, "%.100s.%.80s", base, ks);
            rc = s_number_text (b, v, vf, &vs);
        }
        if (rc == TY_OK && (s_set_scalar ((char *) e + kf->offset, kf->type, ks)
                            || s_set_scalar ((char *) e + vf->offset, vf->type, vs)))
            rc = ty_pipeline_fail (b->raw, ty_pipeline_line (v), b->field, "'%s' is not %s",
                                   vs, s_type_name (vf->type));
        free (ks);
        free (vs);
    }
    snprintf (b->field, sizeof b->field, "%s", base);
    return rc;
}

static int
s_set_field (s_build_t *b, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd,
             yaml_node_t *node)
{
    if (s_is_map (fd))
        return s_set_map (b, msg, fd, node);
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE || fd->type == PROTOBUF_C_TYPE_BYTES)
        return ty_pipeline_fail (b->raw, ty_pipeline_line (node), b->field,
                                 "this field cannot be set from a pipeline file");
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = node->type == YAML_SEQUENCE_NODE
                 ? (size_t) (node->data.sequence.items.top - node->data.sequence.items.start) : 1;
        size_t esz = s_elt_size (fd->type);
        char *arr = calloc (n ? n : 1, esz);
        if (!arr)
            return TY_ENOMEM;
        *(void **) ((char *) msg + fd->offset) = arr;
        size_t *count = (size_t *) ((char *) msg + fd->quantifier_offset);
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *e = node->type == YAML_SEQUENCE_NODE
                           ? yaml_document_get_node (&b->raw->doc, node->data.sequence.items.start [i])
                           : node;
            char *text = NULL;
            int rc = s_number_text (b, e, fd, &text);
            if (rc != TY_OK)
                return rc;
            if (s_set_scalar (arr + i * esz, fd->type, text)) {
                rc = ty_pipeline_fail (b->raw, ty_pipeline_line (e), b->field,
                                       "'%s' is not %s", text, s_type_name (fd->type));
                free (text);
                return rc;
            }
            free (text);
            (*count)++;
        }
        return TY_OK;
    }
    void *dst = (char *) msg + fd->offset;
    if (fd->type == PROTOBUF_C_TYPE_STRING && node->type != YAML_SCALAR_NODE) {
        int rc = TY_OK;
        cJSON *json = s_json (b, node, &rc);
        if (!json)
            return rc != TY_OK ? rc : TY_ENOMEM;
        char *text = cJSON_PrintUnformatted (json);
        cJSON_Delete (json);
        if (!text)
            return TY_ENOMEM;
        /* cJSON allocates with malloc by default: free_unpacked may free it. */
        *(char **) dst = text;
        return TY_OK;
    }
    char *text = NULL;
    int rc = s_number_text (b, node, fd, &text);
    if (rc != TY_OK)
        return rc;
    if (s_set_scalar (dst, fd->type, text)) {
        rc = ty_pipeline_fail (b->raw, ty_pipeline_line (node), b->field, "'%s' is not %s",
                               text, s_type_name (fd->type));
        free (text);
        return rc;
    }
    free (text);
    if (fd->quantifier_offset && !(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        && fd->label == PROTOBUF_C_LABEL_OPTIONAL)
        *(protobuf_c_boolean *) ((char *) msg + fd->quantifier_offset) = 1;
    return TY_OK;
}

/* "30m", "90s", "500ms", "2h" -> ms. */
static int
s_duration_ms (const char *text, uint32_t *ms)
{
    char *end = NULL;
    errno = 0;
    double v = strtod (text, &end);
    if (errno || end == text || !isfinite (v) || v <= 0)
        return -1;
    double scale;
    if (!strcmp (end, "ms"))      scale = 1;
    else if (!strcmp (end, "s"))  scale = 1000;
    else if (!strcmp (end, "m"))  scale = 60 * 1000;
    else if (!strcmp (end, "h"))  scale = 3600 * 1000;
    else
        return -1;
    double total = v * scale;
    if (total < 1 || total > S_TIMEOUT_MAX_MS)
        return -1;
    *ms = (uint32_t) total;
    return 0;
}

/* The field list of a step type for "unknown field" messages. */
static void
s_field_list (const ProtobufCMessageDescriptor *md, ty_pipeline_kind_t kind, char *buf,
              size_t len)
{
    buf [0] = '\0';
    size_t used = 0;
    for (unsigned i = 0; i < md->n_fields; i++) {
        if ((kind == TY_PIPELINE_PROMOTE || kind == TY_PIPELINE_AGGREGATE)
            && !strcmp (md->fields [i].name, "action"))
            continue;
        int n = snprintf (buf + used, len - used, "%s%s", used ? ", " : "", md->fields [i].name);
        if (n < 0 || (size_t) n >= len - used)
            return;
        used += (size_t) n;
    }
    for (size_t i = 0; s_step_keys [i]; i++) {
        int n = snprintf (buf + used, len - used, ", %s", s_step_keys [i]);
        if (n < 0 || (size_t) n >= len - used)
            return;
        used += (size_t) n;
    }
}

static const char *
s_spec_field (ty_pipeline_kind_t kind)
{
    switch (kind) {
        case TY_PIPELINE_NOOP:     return "noop";
        case TY_PIPELINE_PREPARE:  return "prepare";
        case TY_PIPELINE_TRAIN:    return "train";
        case TY_PIPELINE_EVALUATE: return "evaluate";
        case TY_PIPELINE_CONVERT:  return "convert";
        default:                   return "control";
    }
}

/* Builds the spec of branch `br` of raw step `si` into item; *refs gets
   the items its ${step.key} references read (caller frees). */
static int
s_build (ty_pipeline_raw_t *raw, size_t si, size_t br, ty_pipeline_item_t *item,
         const char *pipeline_name, size_t **refs, size_t *nrefs)
{
    ty_pipeline_raw_step_t *st = &raw->steps [si];
    char suffix [TY_PIPELINE_STR_MAX];
    if (ty_pipeline_branch_suffix (st, br, suffix, sizeof suffix))
        return ty_pipeline_fail (raw, st->foreach_line, st->name, "branch name too long");
    const char *bvalues [st->nfkeys ? st->nfkeys : 1];
    for (size_t k = 0; k < st->nfkeys; k++)
        bvalues [k] = ty_pipeline_branch_value (st, br, k);
    s_build_t b = { .raw = raw, .subst = { raw, si, st->nfkeys ? (char **) bvalues : NULL,
                                           suffix, NULL, 0 } };

    size_t nlen = strlen (st->name) + strlen (suffix) + 1;
    item->name = malloc (nlen);
    Ty__JobSpec *spec = malloc (sizeof *spec);
    if (!item->name || !spec) {
        free (spec);
        return TY_ENOMEM;
    }
    snprintf (item->name, nlen, "%s%s", st->name, suffix);
    ty__job_spec__init (spec);
    item->spec = spec;
    item->kind = st->kind;

    /* The type's message, set in the oneof through the descriptor. */
    const ProtobufCMessageDescriptor *jd = &ty__job_spec__descriptor;
    const ProtobufCFieldDescriptor *kf =
        protobuf_c_message_descriptor_get_field_by_name (jd, s_spec_field (st->kind));
    const ProtobufCMessageDescriptor *md = kf->descriptor;
    ProtobufCMessage *sub = malloc (md->sizeof_message);
    if (!sub)
        return TY_ENOMEM;
    md->message_init (sub);
    *(ProtobufCMessage **) ((char *) spec + kf->offset) = sub;
    *(uint32_t *) ((char *) spec + kf->quantifier_offset) = kf->id;
    if (st->kind == TY_PIPELINE_PROMOTE || st->kind == TY_PIPELINE_AGGREGATE) {
        spec->control->action = strdup (ty_pipeline_kind_name (st->kind));
        if (!spec->control->action)
            return TY_ENOMEM;
    }

    const char *display = NULL;
    char *display_buf = NULL;
    int rc = TY_OK;
    for (yaml_node_pair_t *p = st->node->data.mapping.pairs.start;
         p < st->node->data.mapping.pairs.top && rc == TY_OK; p++) {
        const char *key = (const char *) yaml_document_get_node (&raw->doc, p->key)->data.scalar.value;
        yaml_node_t *v = yaml_document_get_node (&raw->doc, p->value);
        int line = ty_pipeline_line (v);
        snprintf (b.field, sizeof b.field, "steps.%.80s.%.80s", st->name, key);
        if (!strcmp (key, "type") || !strcmp (key, "needs") || !strcmp (key, "foreach"))
            continue;
        char *text = NULL;
        if (!strcmp (key, "retries")) {
            rc = s_text (&b, v, &text);
            long n;
            char *end = NULL;
            if (rc == TY_OK) {
                n = strtol (text, &end, 10);
                if (end == text || *end || n < 0 || n > TY_PIPELINE_MAX_RETRIES)
                    rc = ty_pipeline_fail (raw, line, b.field, "'%s' is not a number of "
                                           "retries 0..%d", text, TY_PIPELINE_MAX_RETRIES);
                else {
                    /* a lost worker (max_attempts) and a failed run (retries) alike */
                    spec->max_attempts = (uint32_t) n + 1;
                    spec->retries = (uint32_t) n;
                }
            }
        }
        else if (!strcmp (key, "retry_backoff")) {
            rc = s_text (&b, v, &text);
            if (rc == TY_OK && s_duration_ms (text, &spec->retry_backoff_ms))
                rc = ty_pipeline_fail (raw, line, b.field, "'%s' is not a duration like "
                                       "500ms, 90s, 30m or 2h", text);
        }
        else if (!strcmp (key, "timeout")) {
            rc = s_text (&b, v, &text);
            if (rc == TY_OK && s_duration_ms (text, &spec->timeout_ms))
                rc = ty_pipeline_fail (raw, line, b.field, "'%s' is not a duration like "
                                       "500ms, 90s, 30m or 2h", text);
        }
        else if (!strcmp (key, "name")) {
            rc = s_text (&b, v, &display_buf);
            display = display_buf;
        }
        else if (!strcmp (key, "when")) {
            rc = s_text (&b, v, &text);
            char why [TY_PIPELINE_ERR_LEN / 2];
            if (rc == TY_OK && ty_pipeline_when_check (text, why, sizeof why))
                rc = ty_pipeline_fail (raw, line, b.field, "'%s': %s", text, why);
            if (rc == TY_OK) {
                spec->when = text;
                text = NULL;
            }
        }
        else if (!strcmp (key, "priority")) {
            rc = s_set_field (&b, (ProtobufCMessage *) spec,
                              protobuf_c_message_descriptor_get_field_by_name (jd, "priority"), v);
            if (rc == TY_OK && spec->priority > TY_PIPELINE_MAX_PRIORITY)
                rc = ty_pipeline_fail (raw, line, b.field, "%u is over %d", spec->priority,
                                       TY_PIPELINE_MAX_PRIORITY);
        }
        else if (!strcmp (key, "resources")) {
            rc = s_set_field (&b, (ProtobufCMessage *) spec,
                              protobuf_c_message_descriptor_get_field_by_name (jd, "resources"), v);
            /* threads and memory_mb are compared as numbers with what a
               worker declares: refuse text there now rather than a job that
               never finds a worker. */
            for (size_t i = 0; rc == TY_OK && i < spec->n_resources; i++) {
                const Ty__JobSpec__ResourcesEntry *e = spec->resources [i];
                uint32_t n;
                if ((!strcmp (e->key, "threads") || !strcmp (e->key, "memory_mb"))
                    && s_set_scalar (&n, PROTOBUF_C_TYPE_UINT32, e->value))
                    rc = ty_pipeline_fail (raw, line, b.field, "%s: '%s' is not a whole "
                                           "number", e->key, e->value);
            }
        }
        else {
            const ProtobufCFieldDescriptor *fd =
                protobuf_c_message_descriptor_get_field_by_name (md, key);
            if (fd && !strcmp (key, "action") && st->kind != TY_PIPELINE_PROMOTE
                && st->kind != TY_PIPELINE_AGGREGATE)
                fd = NULL;
            if (fd && !strcmp (key, "action"))
                rc = ty_pipeline_fail (raw, line, b.field, "the step's type is its action");
            else if (!fd) {
                char list [TY_PIPELINE_ERR_LEN];
                s_field_list (md, st->kind, list, sizeof list);
                rc = ty_pipeline_fail (raw, ty_pipeline_line (
                                           yaml_document_get_node (&raw->doc, p->key)),
                                       b.field, "unknown field '%s' for a %s step (fields: %s)",
                                       key, ty_pipeline_kind_name (st->kind), list);
            }
            else
                rc = s_set_field (&b, sub, fd, v);
        }
        free (text);
    }
    if (rc == TY_OK) {
        /* "<pipeline>/<step>": list and status group and name jobs by it. */
        size_t len = strlen (pipeline_name) + 1 + strlen (item->name)
                   + (display ? strlen (display) + 2 : 0) + 1;
        spec->name = malloc (len);
        if (!spec->name)
            rc = TY_ENOMEM;
        else
            snprintf (spec->name, len, "%s/%s%s%s", pipeline_name, item->name,
                      display ? ": " : "", display ? display : "");
    }
    free (display_buf);
    *refs = b.subst.refs;
    *nrefs = b.subst.nrefs;
    return rc;
}

/* Parents of branch br of step si as item indexes: its needs, and the
   items it refers to (an ancestor further up is made a direct parent so
   that the broker passes its outputs on). */
static int
s_parents (ty_pipeline_raw_t *raw, size_t si, size_t br, ty_pipeline_item_t *item,
           const size_t *refs, size_t nrefs)
{
    ty_pipeline_raw_step_t *st = &raw->steps [si];
    size_t n = 0;
    for (size_t j = 0; j < st->nneeds; j++) {
        ty_pipeline_raw_step_t *p = &raw->steps [st->needs_idx [j]];
        n += p->nfkeys && !ty_pipeline_same_keys (st, p) ? p->nbranches : 1;
    }
    n += nrefs;
    item->parents = calloc (n ? n : 1, sizeof *item->parents);
    if (!item->parents)
        return TY_ENOMEM;
    char mine [TY_PIPELINE_STR_MAX], theirs [TY_PIPELINE_STR_MAX];
    if (ty_pipeline_branch_suffix (st, br, mine, sizeof mine))
        return TY_EINVAL;
    for (size_t j = 0; j < st->nneeds; j++) {
        ty_pipeline_raw_step_t *p = &raw->steps [st->needs_idx [j]];
        if (!p->nfkeys)
            item->parents [item->nparents++] = (unsigned) p->first_item;
        else if (ty_pipeline_same_keys (st, p)) {
            size_t pb = 0;
            while (pb < p->nbranches
                   && (ty_pipeline_branch_suffix (p, pb, theirs, sizeof theirs)
                       || strcmp (mine, theirs)))
                pb++;
            if (pb == p->nbranches) {
                char field [200];
                snprintf (field, sizeof field, "steps.%s.foreach", st->name);
                return ty_pipeline_fail (raw, st->foreach_line, field, "branch %s%s has no "
                                         "partner in step '%s' (pairing needs the same "
                                         "foreach values)", st->name, mine, p->name);
            }
            item->parents [item->nparents++] = (unsigned) (p->first_item + pb);
        }
        else
            for (size_t pb = 0; pb < p->nbranches; pb++)
                item->parents [item->nparents++] = (unsigned) (p->first_item + pb);
    }
    for (size_t r = 0; r < nrefs; r++) {
        size_t k = 0;
        while (k < item->nparents && item->parents [k] != refs [r])
            k++;
        if (k == item->nparents)
            item->parents [item->nparents++] = (unsigned) refs [r];
    }
    return TY_OK;
}

int
ty_pipeline_expand (ty_pipeline_raw_t *raw, ty_pipeline_t *self)
{
    size_t total = 0;
    for (size_t o = 0; o < raw->nsteps; o++) {
        size_t si = raw->order [o];
        int rc = s_parse_foreach (raw, si);
        if (rc != TY_OK)
            return rc;
        raw->steps [si].first_item = total;
        total += raw->steps [si].nbranches;
        if (total > TY_PIPELINE_MAX_STEPS)
            return ty_pipeline_fail (raw, raw->steps [si].line, "steps", "more than %d steps "
                                     "after foreach expansion", TY_PIPELINE_MAX_STEPS);
    }
    self->items = calloc (total, sizeof *self->items);
    if (!self->items)
        return TY_ENOMEM;
    for (size_t o = 0; o < raw->nsteps; o++) {
        size_t si = raw->order [o];
        for (size_t br = 0; br < raw->steps [si].nbranches; br++) {
            ty_pipeline_item_t *item = &self->items [self->nitems++];
            size_t *refs = NULL, nrefs = 0;
            int rc = s_build (raw, si, br, item, raw->name, &refs, &nrefs);
            if (rc == TY_OK)
                rc = s_parents (raw, si, br, item, refs, nrefs);
            free (refs);
            if (rc != TY_OK)
                return rc;
        }
    }
    return TY_OK;
}

void
ty_pipeline_items_free (ty_pipeline_t *self)
{
    for (size_t i = 0; i < self->nitems; i++) {
        free (self->items [i].name);
        free (self->items [i].parents);
        if (self->items [i].spec)
            protobuf_c_message_free_unpacked ((ProtobufCMessage *) self->items [i].spec, NULL);
    }
    free (self->items);
    self->items = NULL;
    self->nitems = 0;
}

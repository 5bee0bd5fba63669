/*  ty_subst: see ty_subst.h. */
#include "ty_subst.h"
#include "ty_error.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PATH_MAX  256     /* "train.params[lr]": for error messages only */

/* =========================================================================
 *  lookup and the unresolved-reference message
 * ========================================================================= */

const char *
ty_subst_lookup (const Ty__Output *const *inputs, size_t n, const char *key, size_t key_len)
{
    for (size_t i = 0; i < n; i++) {
        const Ty__Output *o = inputs [i];
        if (o && o->key && strlen (o->key) == key_len && !memcmp (o->key, key, key_len))
            return o->value ? o->value : "";
    }
    return NULL;
}

/* Length of the step part of a key: "train[fold=2].model" -> "train[fold=2]"
 * (a branch value may hold dots, "lr=0.1", so the step ends after ']'). */
static size_t
s_step_len (const char *key, size_t len)
{
    const char *open = memchr (key, '[', len);
    const char *dot = memchr (key, '.', len);
    if (open && (!dot || open < dot)) {
        const char *close = memchr (open, ']', len - (size_t) (open - key));
        if (close)
            return (size_t) (close - key) + 1;
    }
    return dot ? (size_t) (dot - key) : len;
}

/* Appends len bytes of text to err, cut at errlen - 1. */
static void
s_append (char *err, size_t errlen, size_t *used, const char *text, size_t len)
{
    if (*used + 1 >= errlen)
        return;
    size_t room = errlen - 1 - *used;
    if (len > room)
        len = room;
    memcpy (err + *used, text, len);
    *used += len;
    err [*used] = '\0';
}

static void
s_append_str (char *err, size_t errlen, size_t *used, const char *text)
{
    s_append (err, errlen, used, text, strlen (text));
}

void
ty_subst_unresolved (const Ty__Output *const *inputs, size_t n, const char *key,
                     size_t key_len, char *err, size_t errlen)
{
    if (!err || !errlen)
        return;
    size_t used = 0;
    err [0] = '\0';
    s_append_str (err, errlen, &used, "unresolved reference ${");
    s_append (err, errlen, &used, key, key_len);
    s_append_str (err, errlen, &used, "} ");
    if (n == 0) {
        s_append_str (err, errlen, &used, "(no inputs)");
        return;
    }
    s_append_str (err, errlen, &used, "(inputs: ");
    /* The same step's keys first: the likely typo is in the key, not the step. */
    size_t step = s_step_len (key, key_len), named = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            const char *k = inputs [i] && inputs [i]->key ? inputs [i]->key : "";
            size_t klen = strlen (k);
            int same = s_step_len (k, klen) == step && !memcmp (k, key, step);
            if (same != (pass == 0))
                continue;
            if (named == TY_SUBST_HINT_KEYS) {
                s_append_str (err, errlen, &used, ", ...");
                goto done;
            }
            if (named)
                s_append_str (err, errlen, &used, ", ");
            s_append (err, errlen, &used, k, klen);
            named++;
        }
done:
    s_append_str (err, errlen, &used, ")");
}

/* =========================================================================
 *  strings
 * ========================================================================= */

int
ty_subst_needed (const char *s)
{
    return s && strstr (s, "${") != NULL;
}

/* A growing output buffer. */
typedef struct {
    char  *buf;
    size_t len, cap;
} s_buf_t;

static int
s_put (s_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *nb = realloc (b->buf, cap);
        if (!nb)
            return TY_ENOMEM;
        b->buf = nb;
        b->cap = cap;
    }
    memcpy (b->buf + b->len, s, n);
    b->len += n;
    b->buf [b->len] = '\0';
    return TY_OK;
}

int
ty_subst_string (const char *in, const Ty__Output *const *inputs, size_t n,
                 char **out, char *err, size_t errlen)
{
    s_buf_t b = { NULL, 0, 0 };
    int rc = s_put (&b, "", 0);
    const char *p = in ? in : "";
    while (rc == TY_OK && *p) {
        const char *dollar = strchr (p, '$');
        if (!dollar) {
            rc = s_put (&b, p, strlen (p));
            break;
        }
        rc = s_put (&b, p, (size_t) (dollar - p));
        if (rc != TY_OK)
            break;
        if (!strncmp (dollar, "$${", 3)) {
            rc = s_put (&b, "${", 2);
            p = dollar + 3;
        }
        else
        if (!strncmp (dollar, "${", 2)) {
            const char *key = dollar + 2;
            const char *close = strchr (key, '}');
            if (!close) {
                snprintf (err, errlen, "unterminated reference in '%s': '${' without '}' "
                          "(write '$${' for a literal '${')", in);
                rc = TY_EINVAL;
                break;
            }
            size_t klen = (size_t) (close - key);
            const char *value = klen ? ty_subst_lookup (inputs, n, key, klen) : NULL;
            if (!value) {
                ty_subst_unresolved (inputs, n, key, klen, err, errlen);
                rc = TY_EINVAL;
                break;
            }
            rc = s_put (&b, value, strlen (value));
            p = close + 1;
        }
        else {
            rc = s_put (&b, "$", 1);
            p = dollar + 1;
        }
    }
    if (rc != TY_OK) {
        if (rc == TY_ENOMEM)
            snprintf (err, errlen, "out of memory substituting references");
        free (b.buf);
        *out = NULL;
        return rc;
    }
    *out = b.buf;
    return TY_OK;
}

/* =========================================================================
 *  messages, through their descriptors
 * ========================================================================= */

static int s_message (ProtobufCMessage *msg, const Ty__Output *const *inputs, size_t n,
                      char *path, size_t path_len, char *err, size_t errlen);

/* A map<string, ...> entry as protoc-c generates it: a message named
 * "...Entry" with fields key = 1 and value = 2. Only used to name the field
 * "params[lr]" in errors instead of "params.value". */
static const char *
s_map_key (const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    size_t nlen = strlen (d->name);
    if (d->n_fields != 2 || nlen < 5 || strcmp (d->name + nlen - 5, "Entry")
    ||  d->fields [0].id != 1 || d->fields [0].type != PROTOBUF_C_TYPE_STRING
    ||  d->fields [0].label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return *(char *const *) ((const char *) msg + d->fields [0].offset);
}

/* One string slot: replaced when it holds a reference. */
static int
s_string (char **slot, const Ty__Output *const *inputs, size_t n, const char *path,
          char *err, size_t errlen)
{
    if (!ty_subst_needed (*slot))
        return TY_OK;
    char *out;
    int rc = ty_subst_string (*slot, inputs, n, &out, err, errlen);
    if (rc != TY_OK) {
        size_t used = strlen (err);
        if (used < errlen)
            snprintf (err + used, errlen - used, " in field %s", path);
        return rc;
    }
    /* The old string was malloc'd by unpack (an empty default holds no '$'). */
    free (*slot);
    *slot = out;
    return TY_OK;
}

static int
s_field (ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const Ty__Output *const *inputs,
         size_t n, char *path, size_t path_len, char *err, size_t errlen)
{
    char *base = (char *) msg;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        /* Only the member that is set owns its slot; the others alias it. */
        uint32_t which = *(const uint32_t *) (base + f->quantifier_offset);
        if (which != f->id)
            return TY_OK;
    }
    if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
        return TY_OK;

    size_t at = strlen (path);
    const char *key = NULL;
    if (f->type == PROTOBUF_C_TYPE_STRING && f->id == 2)
        key = s_map_key (msg);
    if (key)
        snprintf (path + at, path_len - at, "[%s]", key);
    else
        snprintf (path + at, path_len - at, "%s%s", at ? "." : "", f->name);

    int rc = TY_OK;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t count = *(const size_t *) (base + f->quantifier_offset);
        void **items = *(void ***) (base + f->offset);
        for (size_t i = 0; i < count && rc == TY_OK; i++) {
            if (f->type == PROTOBUF_C_TYPE_STRING)
                rc = s_string ((char **) &items [i], inputs, n, path, err, errlen);
            else
            if (items [i])
                rc = s_message (items [i], inputs, n, path, path_len, err, errlen);
        }
    }
    else
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char **slot = (char **) (base + f->offset);
        if (*slot)
            rc = s_string (slot, inputs, n, path, err, errlen);
    }
    else {
        ProtobufCMessage *sub = *(ProtobufCMessage **) (base + f->offset);
        if (sub)
            rc = s_message (sub, inputs, n, path, path_len, err, errlen);
    }
    path [at] = '\0';
    return rc;
}

static int
s_message (ProtobufCMessage *msg, const Ty__Output *const *inputs, size_t n,
           char *path, size_t path_len, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        int rc = s_field (msg, &d->fields [i], inputs, n, path, path_len, err, errlen);
        if (rc != TY_OK)
            return rc;
    }
    return TY_OK;
}

int
ty_subst_message (ProtobufCMessage *msg, const Ty__Output *const *inputs, size_t n,
                  char *err, size_t errlen)
{
    if (!msg || !msg->descriptor)
        return TY_EINVAL;
    char path [S_PATH_MAX] = "";
    char dummy [1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err [0] = '\0';
    return s_message (msg, inputs, n, path, sizeof path, err, errlen);
}

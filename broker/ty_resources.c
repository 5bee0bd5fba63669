/*  ty_resources: resource needs and declarations, and their match. */
#include "ty_resources.h"
#include "ty_error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char  *key;
    char  *value;
    int    numeric;      /* value parsed completely as a finite number */
    double num;
} s_entry;

struct _ty_resources_t {
    s_entry entries [TY_RESOURCES_MAX];
    size_t  n;
};

ty_resources_t *
ty_resources_new (void)
{
    return calloc (1, sizeof (ty_resources_t));
}

void
ty_resources_destroy (ty_resources_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ty_resources_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++) {
        free (self->entries [i].key);
        free (self->entries [i].value);
    }
    free (self);
    *self_p = NULL;
}

static int
s_printable (const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
            return 0;
    return 1;
}

const char *
ty_resources_check (const char *key, const char *value)
{
    if (!key || !*key)
        return "empty resource name";
    if (strlen (key) > TY_RESOURCES_KEY_MAX || !value || strlen (value) > TY_RESOURCES_VALUE_MAX)
        return "resource name over 64 bytes or value over 128";
    if (!s_printable (key) || !s_printable (value))
        return "resource name or value not printable text";
    return NULL;
}

/* The whole text as a finite number ("4", "4000", "0.5"; not "4GB"). */
static int
s_number (const char *s, double *out)
{
    if (!*s)
        return 0;
    char *end = NULL;
    double d = strtod (s, &end);
    if (!end || *end || !isfinite (d))
        return 0;
    *out = d;
    return 1;
}

int
ty_resources_add (ty_resources_t *self, const char *key, const char *value)
{
    if (ty_resources_check (key, value))
        return TY_EINVAL;
    for (size_t i = 0; i < self->n; i++)
        if (!strcmp (self->entries [i].key, key)) {
            char *v = strdup (value);
            if (!v)
                return TY_ENOMEM;
            free (self->entries [i].value);
            self->entries [i].value = v;
            self->entries [i].numeric = s_number (v, &self->entries [i].num);
            return TY_OK;
        }
    if (self->n == TY_RESOURCES_MAX)
        return TY_EINVAL;
    s_entry *e = &self->entries [self->n];
    e->key = strdup (key);
    e->value = strdup (value);
    if (!e->key || !e->value) {
        free (e->key);
        free (e->value);
        e->key = e->value = NULL;
        return TY_ENOMEM;
    }
    e->numeric = s_number (value, &e->num);
    self->n++;
    return TY_OK;
}

size_t
ty_resources_count (const ty_resources_t *self)
{
    return self ? self->n : 0;
}

int
ty_resources_fit (const ty_resources_t *need, const ty_resources_t *have)
{
    if (!need)
        return 1;
    for (size_t i = 0; i < need->n; i++) {
        const s_entry *n = &need->entries [i];
        const s_entry *h = NULL;
        for (size_t k = 0; have && k < have->n && !h; k++)
            if (!strcmp (have->entries [k].key, n->key))
                h = &have->entries [k];
        if (!h)
            return 0;
        if (n->numeric) {
            if (!h->numeric || n->num > h->num)
                return 0;
        }
        else
        if (strcmp (n->value, h->value))
            return 0;
    }
    return 1;
}

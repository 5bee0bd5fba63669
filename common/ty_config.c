#include "ty_config.h"
#include "ty_error.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct s_entry {
    char *key;
    char *value;
    struct s_entry *next;
} s_entry;

struct _ty_config_t {
    s_entry *head;
};

ty_config_t *
ty_config_new (void)
{
    return calloc (1, sizeof (ty_config_t));
}

void
ty_config_destroy (ty_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_entry *e = (*self_p)->head;
    while (e) {
        s_entry *next = e->next;
        free (e->key);
        free (e->value);
        free (e);
        e = next;
    }
    free (*self_p);
    *self_p = NULL;
}

int
ty_config_set (ty_config_t *self, const char *key, const char *value)
{
    for (s_entry *e = self->head; e; e = e->next)
        if (!strcmp (e->key, key)) {
            char *v = strdup (value);
            if (!v)
                return TY_ENOMEM;
            free (e->value);
            e->value = v;
            return TY_OK;
        }
    s_entry *e = calloc (1, sizeof *e);
    if (!e)
        return TY_ENOMEM;
    e->key = strdup (key);
    e->value = strdup (value);
    if (!e->key || !e->value) {
        free (e->key);
        free (e->value);
        free (e);
        return TY_ENOMEM;
    }
    e->next = self->head;
    self->head = e;
    return TY_OK;
}

const char *
ty_config_get (ty_config_t *self, const char *key, const char *def)
{
    for (s_entry *e = self->head; e; e = e->next)
        if (!strcmp (e->key, key))
            return e->value;
    return def;
}

static char *
s_trim (char *s)
{
    while (isspace ((unsigned char) *s))
        s++;
    char *end = s + strlen (s);
    while (end > s && isspace ((unsigned char) end [-1]))
        *--end = '\0';
    return s;
}

int
ty_config_load (ty_config_t *self, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen (path, "r");
    if (!f) {
        int err = errno;
        snprintf (errbuf, errlen, "%s: %s", path, strerror (err));
        return err;
    }
    char line [1024];
    int lineno = 0, rc = TY_OK;
    while (fgets (line, sizeof line, f)) {
        lineno++;
        if (!strchr (line, '\n') && !feof (f)) {
            snprintf (errbuf, errlen, "%s:%d: line longer than %zu bytes",
                      path, lineno, sizeof line - 1);
            rc = TY_EINVAL;
            break;
        }
        char *hash = strchr (line, '#');
        if (hash)
            *hash = '\0';
        char *s = s_trim (line);
        if (!*s)
            continue;
        char *sep = s + strcspn (s, "= \t");
        if (!*sep) {
            snprintf (errbuf, errlen, "%s:%d: '%s' has no value", path, lineno, s);
            rc = TY_EINVAL;
            break;
        }
        *sep = '\0';
        char *value = s_trim (sep + 1);
        if (*value == '=')
            value = s_trim (value + 1);
        if (ty_config_get (self, s, NULL))
            continue;           /* a flag already set it: flags win */
        if ((rc = ty_config_set (self, s, value)) != TY_OK)
            break;
    }
    fclose (f);
    return rc;
}

int
ty_config_int (ty_config_t *self, const char *key, long def, long min, long max,
               long *out, char *errbuf, size_t errlen)
{
    const char *v = ty_config_get (self, key, NULL);
    if (!v) {
        *out = def;
        return TY_OK;
    }
    char *end;
    errno = 0;
    long n = strtol (v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        snprintf (errbuf, errlen, "%s: '%s' is not a number in [%ld, %ld]",
                  key, v, min, max);
        return TY_EINVAL;
    }
    *out = n;
    return TY_OK;
}

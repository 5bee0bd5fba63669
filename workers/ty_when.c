/*  ty_when: see ty_when.h. A hand-written tokenizer: the grammar is three
 *  tokens long, and a parser generator would cost more than it saves. */
#include "ty_when.h"
#include "ty_error.h"
#include "ty_subst.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { S_OP_NONE = 0, S_OP_EQ, S_OP_NE, S_OP_LT, S_OP_LE, S_OP_GT, S_OP_GE } s_op_t;

static const char *const s_op_text [] = { "", "==", "!=", "<", "<=", ">", ">=" };

/* A value that counts as true alone. "pass" because the evaluate worker's
   gate output is PASS / FAIL. */
static const char *const s_true_words [] = { "true", "yes", "passed", "pass" };

int
ty_when_number (const char *s, double *out)
{
    if (!s || !*s)
        return 0;
    /* strtod also takes "inf", "nan" and hex: none of them is what a metric
       value or a threshold in a pipeline file looks like. */
    int digits = 0;
    for (const char *p = s; *p; p++) {
        if (isdigit ((unsigned char) *p))
            digits = 1;
        else
        if (!strchr ("+-.eE", *p))
            return 0;
    }
    if (!digits)
        return 0;
    char *end;
    errno = 0;
    double v = strtod (s, &end);
    if (*end || errno == ERANGE || !isfinite (v))
        return 0;
    if (out)
        *out = v;
    return 1;
}

int
ty_when_truthy (const char *value)
{
    if (!value)
        return 0;
    for (size_t i = 0; i < sizeof s_true_words / sizeof s_true_words [0]; i++)
        if (!strcasecmp (value, s_true_words [i]))
            return 1;
    double v;
    return ty_when_number (value, &v) && v != 0;
}

/* =========================================================================
 *  tokens
 * ========================================================================= */

typedef struct {
    const char *start;      /* in the expression, for messages */
    size_t      len;
    char       *value;      /* unquoted and substituted; malloc'd */
} s_operand_t;

static const char *
s_skip_space (const char *p)
{
    while (*p && isspace ((unsigned char) *p))
        p++;
    return p;
}

static int
s_is_op_char (char c)
{
    return c == '=' || c == '!' || c == '<' || c == '>';
}

/* Reads one operand at *pp. TY_OK (op->value set), TY_EINVAL (err). */
static int
s_operand (const char **pp, const char *expr, const Ty__Output *const *inputs, size_t n,
           s_operand_t *op, char *err, size_t errlen)
{
    const char *p = *pp;
    op->start = p;
    op->value = NULL;
    char *raw = NULL;
    if (*p == '"' || *p == '\'') {
        char quote = *p++;
        size_t cap = strlen (p) + 1, len = 0;
        raw = malloc (cap);
        if (!raw)
            return TY_ENOMEM;
        while (*p && *p != quote) {
            if (*p == '\\' && (p [1] == quote || p [1] == '\\'))
                p++;
            raw [len++] = *p++;
        }
        raw [len] = '\0';
        if (*p != quote) {
            snprintf (err, errlen, "malformed condition '%s': unterminated %c string",
                      expr, quote);
            free (raw);
            return TY_EINVAL;
        }
        p++;
    }
    else {
        const char *start = p;
        while (*p && !isspace ((unsigned char) *p) && !s_is_op_char (*p)
        &&     *p != '"' && *p != '\'') {
            if (p [0] == '$' && p [1] == '{') {
                /* A reference is one unit: its key may hold '=' (foreach
                   branches: ${train[fold=2].model}) and spaces are not ours. */
                const char *close = strchr (p, '}');
                if (!close) {
                    snprintf (err, errlen, "malformed condition '%s': '${' without '}'",
                              expr);
                    return TY_EINVAL;
                }
                p = close + 1;
            }
            else
                p++;
        }
        if (p == start) {
            if (*p)
                snprintf (err, errlen, "malformed condition '%s': expected a value at '%s'",
                          expr, p);
            else
                snprintf (err, errlen, "malformed condition '%s': a value is missing "
                          "at the end", expr);
            return TY_EINVAL;
        }
        raw = strndup (start, (size_t) (p - start));
        if (!raw)
            return TY_ENOMEM;
    }
    op->len = (size_t) (p - op->start);
    int rc = ty_subst_string (raw, inputs, n, &op->value, err, errlen);
    free (raw);
    if (rc != TY_OK)
        return rc;
    *pp = p;
    return TY_OK;
}

/* Reads an operator at *pp: S_OP_NONE (err set) when there is none. */
static s_op_t
s_operator (const char **pp, const char *expr, char *err, size_t errlen)
{
    const char *p = *pp;
    size_t len = 0;
    while (s_is_op_char (p [len]))
        len++;
    for (s_op_t op = S_OP_EQ; op <= S_OP_GE; op++)
        if (strlen (s_op_text [op]) == len && !strncmp (p, s_op_text [op], len)) {
            *pp = p + len;
            return op;
        }
    if (len)
        snprintf (err, errlen, "malformed condition '%s': unknown operator '%.*s' "
                  "(use == != < <= > >=)", expr, (int) len, p);
    else
        snprintf (err, errlen, "malformed condition '%s': expected an operator "
                  "(== != < <= > >=) at '%s'", expr, p);
    return S_OP_NONE;
}

/* =========================================================================
 *  evaluation
 * ========================================================================= */

static int
s_compare (s_op_t op, const char *l, const char *r, const char *expr, int *result,
           char *err, size_t errlen)
{
    double a, b;
    if (ty_when_number (l, &a) && ty_when_number (r, &b)) {
        switch (op) {
        case S_OP_EQ: *result = a == b; break;
        case S_OP_NE: *result = a != b; break;
        case S_OP_LT: *result = a <  b; break;
        case S_OP_LE: *result = a <= b; break;
        case S_OP_GT: *result = a >  b; break;
        case S_OP_GE: *result = a >= b; break;
        default:      return TY_EINVAL;
        }
        return TY_OK;
    }
    if (op == S_OP_EQ || op == S_OP_NE) {
        *result = (strcmp (l, r) == 0) == (op == S_OP_EQ);
        return TY_OK;
    }
    snprintf (err, errlen, "condition '%s': cannot order '%.*s' %s '%.*s': "
              "<, <=, > and >= need two numbers", expr, TY_WHEN_VALUE_SHOWN, l,
              s_op_text [op], TY_WHEN_VALUE_SHOWN, r);
    return TY_EINVAL;
}

int
ty_when_eval (const char *expr, const Ty__Output *const *inputs, size_t n, int *result,
              char *trace, size_t trace_len, char *err, size_t errlen)
{
    char dummy [1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err [0] = '\0';
    if (trace && trace_len)
        trace [0] = '\0';
    *result = 0;
    if (!expr)
        expr = "";
    const char *p = s_skip_space (expr);
    if (!*p) {
        *result = 1;
        return TY_OK;
    }
    s_operand_t left = { 0 }, right = { 0 };
    s_op_t op = S_OP_NONE;
    int rc = s_operand (&p, expr, inputs, n, &left, err, errlen);
    if (rc != TY_OK)
        goto out;
    p = s_skip_space (p);
    if (*p) {
        op = s_operator (&p, expr, err, errlen);
        if (op == S_OP_NONE) {
            rc = TY_EINVAL;
            goto out;
        }
        p = s_skip_space (p);
        rc = s_operand (&p, expr, inputs, n, &right, err, errlen);
        if (rc != TY_OK)
            goto out;
        p = s_skip_space (p);
        if (*p) {
            snprintf (err, errlen, "malformed condition '%s': unexpected '%s' after "
                      "the comparison (one comparison per condition)", expr, p);
            rc = TY_EINVAL;
            goto out;
        }
        rc = s_compare (op, left.value, right.value, expr, result, err, errlen);
        if (rc == TY_OK && trace && trace_len)
            snprintf (trace, trace_len, "'%.*s' %s '%.*s'", TY_WHEN_VALUE_SHOWN, left.value,
                      s_op_text [op], TY_WHEN_VALUE_SHOWN, right.value);
    }
    else {
        *result = ty_when_truthy (left.value);
        if (trace && trace_len)
            snprintf (trace, trace_len, "'%.*s'", TY_WHEN_VALUE_SHOWN, left.value);
    }
out:
    if (rc == TY_ENOMEM)
        snprintf (err, errlen, "out of memory evaluating a condition");
    if (rc != TY_OK)
        *result = 0;
    free (left.value);
    free (right.value);
    return rc;
}

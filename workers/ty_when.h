/*  ty_when: the condition of a pipeline step (JobSpec.when), evaluated by
 *  the worker runtime against the job's inputs before the job runs.
 *
 *  Grammar (whitespace between tokens is free):
 *      condition := operand | operand OP operand
 *      OP        := "==" | "!=" | "<" | "<=" | ">" | ">="
 *      operand   := reference | number | word | quoted
 *      reference := "${" key "}"                  e.g. ${evaluate.gate}
 *      quoted    := '"' ... '"' | "'" ... "'"     backslash escapes the quote and itself
 *      word      := a run of characters other than whitespace, quotes and
 *                   = ! < > (a reference inside a word is replaced too:
 *                   v${train.version})
 *  References are replaced by the inputs' values (ty_subst rules, also
 *  inside quoted strings) after tokenizing, so a value with spaces or
 *  operators in it ("gate FAIL") stays one operand.
 *
 *  Meaning: a lone operand is true when its value is "true", "yes",
 *  "passed" or "pass" (any case; the evaluate worker says PASS) or a number
 *  other than 0; anything else is false. A comparison is numeric when both
 *  sides parse completely as finite decimal numbers ("0.93", "-1e-3");
 *  otherwise == and != compare the texts exactly and the other operators
 *  are an error (an ordering of words is never what a pipeline meant).
 *  An empty condition is true.
 *
 *  Thread rules: pure functions.
 */
#ifndef TY_WHEN_H
#define TY_WHEN_H

#include <stddef.h>
#include "job.pb-c.h"

#define TY_WHEN_VALUE_SHOWN  64    /* bytes of an operand value an error or trace shows */

/* Evaluates expr. TY_OK and *result (1 true, 0 false); TY_EINVAL with the
 * reason in err for a malformed condition, an unresolved reference or an
 * ordering of non-numbers; TY_ENOMEM. trace (may be NULL) gets the
 * condition with its values, e.g. "0.81 >= 0.9", for logs and the skip
 * reason. */
int ty_when_eval (const char *expr, const Ty__Output *const *inputs, size_t n, int *result,
                  char *trace, size_t trace_len, char *err, size_t errlen);

/* The truth of one value, as a lone operand: 1 or 0. */
int ty_when_truthy (const char *value);

/* 1 and *out when s is, in full, a finite decimal number. */
int ty_when_number (const char *s, double *out);

#endif

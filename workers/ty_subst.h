/*  ty_subst: `${step.key}` references in a job spec, replaced by the
 *  pipeline inputs of the job (Assign.inputs: the outputs and metrics of the
 *  job's named parents, keyed "<parent step>.<key>").
 *
 *  Generic over protobuf-c messages: it walks the message's descriptor, so a
 *  field added to any spec later is covered without a line here. Every
 *  string field is scanned, singular or repeated, in sub-messages (also the
 *  one set member of a oneof) and in map entries (keys and values); bytes
 *  are left alone.
 *
 *  Syntax: `${KEY}` is replaced by the value of the input named KEY (the
 *  whole text between the braces, e.g. `train[fold=2].model`); `$${` is a
 *  literal `${`; any other `$` is itself. A reference to a key that is not
 *  an input, an empty `${}` or a `${` without its `}` is an error: a
 *  pipeline that silently ran with "${train.model}" as a model name would
 *  fail later, far from the cause.
 *
 *  What it is not: an expression language. Conditions (JobSpec.when) are
 *  ty_when's.
 *
 *  Thread rules: pure functions; no shared state.
 */
#ifndef TY_SUBST_H
#define TY_SUBST_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>
#include "job.pb-c.h"

#define TY_SUBST_HINT_KEYS   6       /* input keys an error names, so it stays one line */
#define TY_SUBST_ERR_MAX     512     /* a good size for the err buffers below */

/* The input named key (key_len bytes, need not be NUL-terminated), or NULL.
 * Borrowed from inputs. Linear: a job has tens of inputs, not thousands. */
const char *ty_subst_lookup (const Ty__Output *const *inputs, size_t n,
                             const char *key, size_t key_len);

/* Writes "unresolved reference ${key} (inputs: a.b, c.d, ...)" to err: the
 * inputs of the same step first, then the others, at most TY_SUBST_HINT_KEYS;
 * "(no inputs)" when there are none. */
void ty_subst_unresolved (const Ty__Output *const *inputs, size_t n, const char *key,
                          size_t key_len, char *err, size_t errlen);

/* 1 if s holds a `${` or `$${` (substitution would do something). */
int ty_subst_needed (const char *s);

/* The text with its references replaced. On TY_OK *out is the caller's
 * (free). TY_EINVAL with the reason in err (unresolved or malformed
 * reference); TY_ENOMEM. */
int ty_subst_string (const char *in, const Ty__Output *const *inputs, size_t n,
                     char **out, char *err, size_t errlen);

/* Replaces references in every string field of msg, in place. msg must have
 * been unpacked with the default allocator (or built with malloc'd strings):
 * a changed string is freed and replaced by a malloc'd one, so
 * free_unpacked still frees everything. Unchanged strings are not touched
 * (a spec without `${` is left exactly as it was). On error the message is
 * consistent (every string valid) but may be partly substituted; err names
 * the reference and the field ("... in field train.params[lr]").
 * TY_OK, TY_EINVAL, TY_ENOMEM. */
int ty_subst_message (ProtobufCMessage *msg, const Ty__Output *const *inputs, size_t n,
                      char *err, size_t errlen);

#endif

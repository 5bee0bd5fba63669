/*  ty_pipeline_impl: what the files of the pipeline module share and nobody
 *  else sees. The load runs in three passes over one parsed YAML document:
 *    parse    (ty_pipeline_parse.c)     YAML -> raw steps, params, --set
 *    validate (ty_pipeline_validate.c)  needs, cycles, ancestors, references,
 *                                       `when` grammar, output-key tables
 *    expand   (ty_pipeline_expand.c)    foreach branches, specs built through
 *                                       the protobuf-c descriptors, parents
 *  The raw model lives only during the load; the ty_pipeline_t keeps the
 *  expanded items.
 */
#ifndef TY_PIPELINE_IMPL_H
#define TY_PIPELINE_IMPL_H

#include <stddef.h>
#include <yaml.h>
#include "ty_pipeline.h"

/* Limits that keep a typo from expanding into a million jobs. */
#define TY_PIPELINE_MAX_STEPS      1000   /* expanded steps of one pipeline */
#define TY_PIPELINE_MAX_RETRIES    100    /* retries: of one step */
#define TY_PIPELINE_MAX_PRIORITY   1000   /* JobSpec.priority is 0..1000 */
#define TY_PIPELINE_MAX_RANGE      1000   /* foreach: range(n) */
#define TY_PIPELINE_STR_MAX        4096   /* one scalar after substitution */

/* The step types and where their spec goes. */
typedef enum {
    TY_PIPELINE_NOOP, TY_PIPELINE_PREPARE, TY_PIPELINE_TRAIN, TY_PIPELINE_EVALUATE,
    TY_PIPELINE_CONVERT, TY_PIPELINE_PROMOTE, TY_PIPELINE_AGGREGATE,
    TY_PIPELINE_NTYPES
} ty_pipeline_kind_t;

/* One foreach key and its values, as written. */
typedef struct {
    char *key;
    char **values;
    size_t nvalues;
} ty_pipeline_fkey_t;

typedef struct {
    char *name;
    int line;                   /* 1-based line of the step's name */
    ty_pipeline_kind_t kind;
    yaml_node_t *node;          /* the step's mapping (in the raw's document) */
    char **needs;
    int *needs_lines;
    size_t *needs_idx;          /* raw step index of each need */
    size_t nneeds;
    ty_pipeline_fkey_t *fkeys;  /* sorted by key */
    size_t nfkeys;
    size_t nbranches;           /* product of the value counts; 1 without foreach */
    int foreach_line;
    unsigned char *ancestors;   /* [nsteps]: 1 if that step is a (transitive) need */
    size_t first_item;          /* index of its first expanded item */
} ty_pipeline_raw_step_t;

typedef struct {
    const char *file;
    yaml_document_t doc;
    int have_doc;
    char *name;
    char **pkeys, **pvals;
    size_t nparams;
    ty_pipeline_raw_step_t *steps;
    size_t nsteps;
    size_t *order;              /* raw indexes in topological order */
    char *err;
    size_t errlen;
} ty_pipeline_raw_t;

typedef struct {
    char *name;
    ty_pipeline_kind_t kind;
    Ty__JobSpec *spec;
    unsigned *parents;
    size_t nparents;
} ty_pipeline_item_t;

struct _ty_pipeline_t {
    char *name;
    ty_pipeline_item_t *items;
    size_t nitems;
    char *ids;                  /* nitems * (TY_ID_LEN + 1) after a submit */
};

/* ---- shared helpers ---------------------------------------------------------- */

/* Writes "file:line: field: message" into raw->err; returns TY_EINVAL.
   line 0 leaves the line out (a --set has none). */
int ty_pipeline_fail (ty_pipeline_raw_t *raw, int line, const char *field,
                      const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

/* 1-based line of a node. */
int ty_pipeline_line (const yaml_node_t *node);

/* Type word <-> kind. */
const char *ty_pipeline_kind_name (ty_pipeline_kind_t kind);
int ty_pipeline_kind_parse (const char *word, ty_pipeline_kind_t *kind);

/* Raw step index by name, -1 if none. */
long ty_pipeline_raw_find (const ty_pipeline_raw_t *raw, const char *name);

/* parse: fills raw from the YAML text (raw->file, err set by the caller). */
int ty_pipeline_parse (ty_pipeline_raw_t *raw, const char *yaml, size_t len,
                       const char *const *sets, size_t nsets);
void ty_pipeline_raw_free (ty_pipeline_raw_t *raw);

/* validate: needs exist, no cycle (naming it), ancestors, topological order. */
int ty_pipeline_validate_graph (ty_pipeline_raw_t *raw);

/* validate: is `key` an output (or metric) that a step of this kind gives
   its children? */
int ty_pipeline_output_known (ty_pipeline_kind_t kind, const char *key);
/* The keys of that table, comma-separated, for error messages. */
const char *ty_pipeline_output_list (ty_pipeline_kind_t kind);

/* validate: `when` grammar, on the text after substitution. 0 if good,
   else -1 with a reason in why. */
int ty_pipeline_when_check (const char *when, char *why, size_t whylen);

/* The substitution context of one branch of one step. */
typedef struct {
    ty_pipeline_raw_t *raw;
    size_t step;                /* raw index */
    char **bvalues;             /* branch value per fkey of the step */
    const char *suffix;         /* "[k=v,...]" of this branch, "" without foreach */
    /* Items the branch refers to by ${step.key}: they become parents too,
       since the broker passes on the outputs of direct parents only. */
    size_t *refs;
    size_t nrefs;
} ty_pipeline_subst_t;

/* Substitutes ${params.x} and ${item.k}/${foreach.k}, checks and rewrites
   ${step.key} references (pairing foreach branches). *out: caller frees. */
int ty_pipeline_subst (ty_pipeline_subst_t *ctx, const char *in, int line,
                       const char *field, char **out);

/* expand: branch b of a step: "[k1=v1,k2=v2]" (keys sorted), "" without
   foreach; value of fkey k in branch b. */
int ty_pipeline_branch_suffix (const ty_pipeline_raw_step_t *st, size_t b, char *buf,
                               size_t len);
const char *ty_pipeline_branch_value (const ty_pipeline_raw_step_t *st, size_t b, size_t k);
/* 1 if both steps have foreach with the same set of keys (they pair). */
int ty_pipeline_same_keys (const ty_pipeline_raw_step_t *a, const ty_pipeline_raw_step_t *b);

/* expand: builds self->items from a validated raw. */
int ty_pipeline_expand (ty_pipeline_raw_t *raw, ty_pipeline_t *self);

void ty_pipeline_items_free (ty_pipeline_t *self);

#endif

/*  ty_dispatch: the broker's in-memory mirror of the QUEUED jobs, one
 *  priority heap per job type (Redis's ty:queue:<type> is the truth; this is
 *  rebuilt from it at start). Entries are removed lazily: a job cancelled
 *  while queued stays here until dispatch tries it and Redis says no. */
#ifndef TY_DISPATCH_H
#define TY_DISPATCH_H
#include <stddef.h>
#include <stdint.h>
#include "ty_id.h"

#define TY_PRIORITY_MAX 1000
/* Score: lower runs first; priority first, then creation time (exact in a double). */
double ty_dispatch_score (unsigned priority, int64_t created_ms);

typedef struct _ty_queues_t ty_queues_t;

ty_queues_t *ty_queues_new (void);
void ty_queues_destroy (ty_queues_t **self_p);
/* TY_OK or TY_ENOMEM. */
int  ty_queues_push (ty_queues_t *self, const char *type, const char *id, double score);
/* Pops the best job of type into id (TY_ID_LEN + 1 bytes); 0 if empty. */
int  ty_queues_pop (ty_queues_t *self, const char *type, char *id);
size_t ty_queues_len (ty_queues_t *self, const char *type);
/* Clears the heaps and the jobs set aside. */
void ty_queues_clear (ty_queues_t *self);

/* Jobs popped that the worker at hand could not take (resources) are set
 * aside rather than pushed back, so that one dispatch pass cannot pop them
 * again and again:
 *   held:   a worker of the type that fits exists (busy now): back into
 *           the heap at the end of the pass (ty_queues_unhold);
 *   parked: no worker of the type fits: out of the heap until the set of
 *           workers changes (ty_queues_unpark, on READY), so a job nobody
 *           can take costs nothing per turn.
 * TY_OK, TY_EINVAL (too many types) or TY_ENOMEM: then the job is in no
 * heap; the caller pushes it back and ends its pass. */
int  ty_queues_hold (ty_queues_t *self, const char *type, const char *id, double score);
int  ty_queues_park (ty_queues_t *self, const char *type, const char *id, double score);
void ty_queues_unhold (ty_queues_t *self);
void ty_queues_unpark (ty_queues_t *self);
size_t ty_queues_parked (ty_queues_t *self);

#endif

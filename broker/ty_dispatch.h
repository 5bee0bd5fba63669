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
void ty_queues_clear (ty_queues_t *self);

#endif

/*  ty_id: unique, URL-safe ids that sort by creation time.
 *  Format: 10 chars of ms timestamp + 6 chars of counter/random, in
 *  Crockford base32 (lower case): 16 chars, lexical order = time order. */
#ifndef TY_ID_H
#define TY_ID_H
#include <stddef.h>

#define TY_ID_LEN 16

/* Writes TY_ID_LEN chars + NUL into buf (size >= TY_ID_LEN + 1). Thread-safe. */
void ty_id_new (char *buf);
/* 1 if s looks like an id (right length and alphabet), else 0. */
int  ty_id_valid (const char *s);

#endif

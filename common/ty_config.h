/*  ty_config: "key = value" config files under command-line flags.
 *  Lines: `key = value` or `key value`; `#` starts a comment. Keys use the
 *  long flag names without dashes (heartbeat-ms = 500). Flags given on the
 *  command line win over the file; the file wins over built-in defaults. */
#ifndef TY_CONFIG_H
#define TY_CONFIG_H

#include <stddef.h>

typedef struct _ty_config_t ty_config_t;

ty_config_t *ty_config_new (void);
void ty_config_destroy (ty_config_t **self_p);

/* Loads a file. Returns TY_OK, errno, or TY_EINVAL with "path:line: why" in errbuf. */
int  ty_config_load (ty_config_t *self, const char *path, char *errbuf, size_t errlen);
/* Sets key (overrides). Returns TY_OK or TY_ENOMEM. */
int  ty_config_set (ty_config_t *self, const char *key, const char *value);
/* Borrowed until the key is set again or self is destroyed; def if absent. */
const char *ty_config_get (ty_config_t *self, const char *key, const char *def);
/* Integer value; TY_EINVAL (message in errbuf) if not a number in [min, max]. */
int  ty_config_int (ty_config_t *self, const char *key, long def, long min, long max,
                    long *out, char *errbuf, size_t errlen);

#endif

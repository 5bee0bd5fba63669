/*  cmd_util: error messages, option-parsing helpers and the broker connection
 *  shared by every subcommand. Messages go to stderr in one format so that
 *  scripts and humans can tell usage errors (exit 2) from failures (exit 1).
 */
#include "cmd.h"
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
cmd_usage_error (const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    fprintf (stderr, "trainyard%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf (stderr, fmt, ap);
    va_end (ap);
    fprintf (stderr, "\nTry 'trainyard%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
    return TY_CMD_EXIT_USAGE;
}

int
cmd_getopt_error (const char *cmd, int c, char **argv)
{
    /* getopt leaves optind past the offending word; for a long option that
     * word is the only place its name is kept. */
    const char *word = optind > 0 ? argv [optind - 1] : "";
    if (c == ':') {
        if (optopt && optopt < 256 && word [0] == '-' && word [1] != '-')
            return cmd_usage_error (cmd, "option '-%c' needs a value", optopt);
        return cmd_usage_error (cmd, "option '%s' needs a value", word);
    }
    if (optopt && optopt < 256 && !(word [0] == '-' && word [1] == '-'))
        return cmd_usage_error (cmd, "unknown option '-%c'", optopt);
    return cmd_usage_error (cmd, "unknown option '%s'", word);
}

void
cmd_getopt_reset (void)
{
    /* glibc: optind = 0 re-initialises its internal state as well, which a
     * second getopt_long pass over a different argv needs. */
    optind = 0;
    opterr = 0;
}

int
cmd_client_error (ty_client_t *self, int rc, const char *what, ...)
{
    const char *msg = self ? ty_client_errstr (self) : NULL;
    if (!msg || !*msg)
        msg = ty_strerror (rc);
    va_list ap;
    va_start (ap, what);
    fprintf (stderr, "trainyard: ");
    vfprintf (stderr, what, ap);
    va_end (ap);
    fprintf (stderr, ": %s\n", msg);
    return TY_CMD_EXIT_ERROR;
}

int
cmd_error (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    fprintf (stderr, "trainyard: ");
    vfprintf (stderr, fmt, ap);
    va_end (ap);
    fputc ('\n', stderr);
    return TY_CMD_EXIT_ERROR;
}

int
cmd_parse_long (const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol (s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

ty_client_t *
cmd_connect (cmd_ctx_t *ctx)
{
    ty_client_t *client = ty_client_new (ctx->broker);
    if (!client)
        cmd_error ("cannot create a connection to %s (ZeroMQ socket failed)", ctx->broker);
    return client;
}

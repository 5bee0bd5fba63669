#include "ty_tmpdir.h"

#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static int
s_rm_entry (const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) ftw;
    return flag == FTW_DP ? rmdir (p) : unlink (p);
}

char *
ty_tmpdir_new (const char *name)
{
    size_t len = strlen ("/tmp/") + strlen (name) + strlen ("_XXXXXX") + 1;
    char *d = malloc (len);
    assert_non_null (d);
    snprintf (d, len, "/tmp/%s_XXXXXX", name);
    assert_non_null (mkdtemp (d));
    return d;
}

void
ty_tmpdir_free (char *dir)
{
    if (!dir)
        return;
    if (!getenv ("TY_TEST_KEEP"))
        nftw (dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (dir);
}

/*  ty_tmpdir: a throw-away directory for the unit tests of the dataset
 *  store (real LMDB files in it), removed with everything in it unless
 *  TY_TEST_KEEP is set. Fails the running cmocka test when it cannot be
 *  made. */
#ifndef TY_TMPDIR_H
#define TY_TMPDIR_H

/* A new /tmp/<name>_XXXXXX; malloc'd, give it to ty_tmpdir_free. */
char *ty_tmpdir_new (const char *name);
void  ty_tmpdir_free (char *dir);

#endif

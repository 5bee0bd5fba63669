/*  ty_dataset: dataset versions stored in LMDB.
 *
 *  Layout: <data>/datasets/<name>/<version>/ is one LMDB environment
 *  (data.mdb, lock.mdb) with the named dbs
 *      meta    key "meta" -> a packed ty.DatasetMeta (proto/sample.proto)
 *      train, val, test, calib (calib optional, may be empty)
 *              key = sample index as a big-endian uint64 (0, 1, 2, ...),
 *              value = a packed ty.Sample.
 *  Versions are the integers 1, 2, 3, ... and are immutable. A writer fills
 *  a temporary directory <data>/datasets/<name>/.tmp-<random>/, syncs it and
 *  renames it to the next version number under an flock on
 *  <data>/datasets/<name>/.lock: a crash leaves no partial version, and a
 *  reader opening "name" (the latest) sees only whole versions. A later
 *  writer deletes temporary directories whose writer is gone (each writer
 *  holds an flock on its temp dir's "owner" file while it lives).
 *
 *  Readers map the environment read-only and without the LMDB lock file
 *  (MDB_NOLOCK: nothing ever writes a committed version), so any number of
 *  processes and threads read at once, zero-copy.
 *
 *  Content hash (meta.content_hash, sha256 hex): over the string
 *  "ty-dataset-1", then the packed DatasetMeta holding only kind, labels,
 *  seed, ratios, folds and cap_per_class, then for each split in the order
 *  train, val, test, calib the sha256 of its samples in key order, each
 *  as a big-endian uint64 length followed by the packed bytes. Name, version,
 *  times and lineage are left out: the same input and split options give the
 *  same hash whatever the version is called.
 *
 *  Errors: TY_OK, TY_EINVAL (bad name or argument), TY_ENOTFOUND (no such
 *  dataset/version), TY_ENOMEM, TY_ESTORE (LMDB failed; the LMDB message is
 *  logged), TY_EPROTO (a record that does not decode), positive errno for
 *  file system failures.
 *
 *  Not here: importing files (ty_import.h), validation (ty_validate.h),
 *  split assignment (ty_split.h).
 */
#ifndef TY_DATASET_H
#define TY_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sample.pb-c.h"

/* Bump with a reader for the old format and a test (STYLE.md rule 13). */
#define TY_DATASET_FORMAT_VERSION    1
#define TY_DATASET_NAME_MAX          64
/* First map size of a writer; it doubles on MDB_MAP_FULL. */
#define TY_DATASET_MAP_INITIAL_BYTES (64u << 20)
/* A writer commits an LMDB txn after this many bytes of samples, so a
 * MDB_MAP_FULL retry replays at most this much from memory. */
#define TY_DATASET_TXN_BYTES         (32u << 20)
/* "name@version" or "name" plus NUL. */
#define TY_DATASET_SPEC_MAX          (TY_DATASET_NAME_MAX + 24)

typedef enum {
    TY_SPLIT_TRAIN = 0,
    TY_SPLIT_VAL   = 1,
    TY_SPLIT_TEST  = 2,
    TY_SPLIT_CALIB = 3,
    TY_SPLIT_COUNT = 4,
    TY_SPLIT_NONE  = 255,     /* not stored (e.g. over the per-class cap) */
} ty_split_t;

/* "train", "val", "test", "calib"; "?" for anything else. */
const char *ty_split_name (ty_split_t split);
/* TY_OK or TY_EINVAL. */
int ty_split_parse (const char *text, ty_split_t *split);

/* [A-Za-z0-9_.-]{1,64}, not "." or "..", no "..", no "/". TY_OK or
 * TY_EINVAL; on TY_EINVAL, *why (if given) is a static explanation. */
int ty_dataset_name_check (const char *name, const char **why);

/* Parses "name" (version 0 = latest) or "name@N". name_out has room for
 * TY_DATASET_NAME_MAX + 1. TY_OK or TY_EINVAL (with *why). */
int ty_dataset_spec_parse (const char *spec, char *name_out, uint64_t *version,
                           const char **why);

/* ---- writer ------------------------------------------------------------ */

typedef struct _ty_dataset_writer_t ty_dataset_writer_t;

typedef struct {
    size_t initial_map_bytes;   /* 0: TY_DATASET_MAP_INITIAL_BYTES */
    size_t txn_bytes;           /* 0: TY_DATASET_TXN_BYTES */
} ty_dataset_writer_opts_t;

/* Starts a new version of `name` in a temp dir under <data_dir>/datasets/
 * <name>/ (created as needed); cleans stale temp dirs of dead writers.
 * opts may be NULL. On TY_OK *self_p owns the writer: finish with _commit
 * or _destroy (which aborts). Not thread-safe (one thread per writer).
 * Errors: TY_EINVAL (name), TY_ESTORE, TY_ENOMEM, errno. */
int ty_dataset_writer_new (const char *data_dir, const char *name,
                           const ty_dataset_writer_opts_t *opts,
                           ty_dataset_writer_t **self_p);

/* Appends a sample to a split (index = that split's count so far). The
 * sample is packed at once: the caller keeps ownership. TY_OK, TY_EINVAL,
 * TY_ENOMEM, TY_ESTORE. */
int ty_dataset_writer_add (ty_dataset_writer_t *self, ty_split_t split,
                           const Ty__Sample *sample);

/* Same with an already packed Sample (copied). If fold != 0, the fold field
 * is appended (the packed bytes must not hold a fold already). */
int ty_dataset_writer_add_packed (ty_dataset_writer_t *self, ty_split_t split,
                                  const void *data, size_t size, uint32_t fold);

/* Samples added so far to a split. */
uint64_t ty_dataset_writer_count (ty_dataset_writer_t *self, ty_split_t split);

/* Current LMDB map size (grows on MDB_MAP_FULL; tests read it). */
size_t ty_dataset_writer_map_bytes (ty_dataset_writer_t *self);

/* Writes meta, syncs, renames to the next version and destroys the writer
 * (whatever the outcome: *self_p is NULL afterwards). The caller's meta is
 * copied and completed: format_version, name, version, counts per split,
 * content_hash, created_unix are set by the writer; the caller sets kind,
 * labels, classes, stats, sources, seed, ratios, folds, cap, lineage.
 * meta may be NULL (an empty one). On TY_OK *version (if given) is the new
 * version number and *hash_hex (if given, 65 bytes) its content hash. */
int ty_dataset_writer_commit (ty_dataset_writer_t **self_p,
                              const Ty__DatasetMeta *meta,
                              uint64_t *version, char *hash_hex);

/* Aborts: removes the temp dir. NULL-safe, idempotent. */
void ty_dataset_writer_destroy (ty_dataset_writer_t **self_p);

/* ---- reader ------------------------------------------------------------ */

typedef struct _ty_dataset_t ty_dataset_t;

/* A zero-copy view of one packed Sample in the map. `data` is valid until
 * ty_dataset_destroy of the dataset it came from (the handle holds one
 * read txn for its whole life; committed versions never change). Read
 * only: the map is PROT_READ, a write through it crashes. */
typedef struct {
    const void *data;
    size_t      size;
    uint64_t    index;   /* key in its split */
} ty_dataset_view_t;

/* Opens "name" (the latest version) or "name@N". On TY_OK *self_p owns the
 * handle; destroy it with ty_dataset_destroy. The handle may be shared by
 * threads (all calls below are thread-safe, iterators are not).
 * Errors: TY_EINVAL (bad name), TY_ENOTFOUND, TY_ESTORE, TY_EPROTO. */
int ty_dataset_open (const char *data_dir, const char *spec, ty_dataset_t **self_p);
void ty_dataset_destroy (ty_dataset_t **self_p);

const char *ty_dataset_name (ty_dataset_t *self);     /* borrowed, handle life */
uint64_t    ty_dataset_version (ty_dataset_t *self);
uint64_t    ty_dataset_count (ty_dataset_t *self, ty_split_t split);
/* The decoded meta: borrowed, valid until ty_dataset_destroy. Never NULL. */
const Ty__DatasetMeta *ty_dataset_meta (ty_dataset_t *self);
/* The label map: class id -> label (borrowed, handle life). */
size_t      ty_dataset_label_count (ty_dataset_t *self);
const char *ty_dataset_label (ty_dataset_t *self, size_t id);   /* NULL if out of range */
/* Class id of a label, or -1. O(log n). */
int64_t     ty_dataset_label_id (ty_dataset_t *self, const char *label);
/* Samples added since `version` of the lineage (0: all). TY_OK or
 * TY_ENOTFOUND if `version` is not this version or an ancestor. */
int ty_dataset_new_since (ty_dataset_t *self, uint64_t version, uint64_t *count);

/* Random access: TY_OK or TY_ENOTFOUND. */
int ty_dataset_get (ty_dataset_t *self, ty_split_t split, uint64_t index,
                    ty_dataset_view_t *view);
/* Decodes a view: *sample is the caller's, free with
 * ty__sample__free_unpacked (sample, NULL). TY_OK or TY_EPROTO. */
int ty_dataset_view_unpack (const ty_dataset_view_t *view, Ty__Sample **sample);

/* ---- iteration ---------------------------------------------------------- */

typedef struct _ty_dataset_iter_t ty_dataset_iter_t;

/* The order an iterator visits a split in. Every order visits each sample
 * exactly once per epoch, and the same seed gives the same order.
 *
 *  KEYS     key order 0, 1, 2, ... (sequential bytes in the map).
 *  SHUFFLE  a uniform random permutation of the split (Fisher-Yates, see
 *           ty_dataset_shuffle). Each sample is a random place in the map:
 *           a cache miss each, so for short samples (tens of bytes) it reads
 *           at about a quarter of a sequential read()'s MB/s.
 *  BLOCKS   a block shuffle: the split is cut into blocks of `block`
 *           consecutive keys, the blocks are visited in a seeded random
 *           order, and `window` blocks at a time are mixed together by a
 *           seeded permutation of their keys. Each window's samples are
 *           gathered in key order first (index entries and leaf pages in
 *           order, sequential bytes), so the mixed reads that follow hit
 *           the CPU cache: short samples
 *           read at over half the speed of a sequential read() of the
 *           same bytes (bench/dataset: its "blocks" line).
 *           This is what tf.data's shuffle buffer over sharded files and
 *           webdataset's shard shuffle + shuffle buffer do.
 *           Shuffled enough for SGD? Every epoch sees every sample once in
 *           a new order, and a batch draws from up to `window` random places
 *           of the split (a batch of 32 or more from nearly all of them),
 *           so yes when neighbouring keys are unrelated. Keys follow the
 *           import's input order (splits keep it), so if the source file is
 *           sorted (by class, user, time), a window holds runs of `block`
 *           similar samples: batches are then lumpier than under SHUFFLE
 *           (a higher gradient variance), and samples of one block always
 *           travel together across epochs. Use SHUFFLE, or a smaller block
 *           and a bigger window, when the input is sorted; BLOCKS with the
 *           defaults when it is in random or mixed order. */
typedef enum {
    TY_DATASET_ORDER_KEYS    = 0,
    TY_DATASET_ORDER_SHUFFLE = 1,
    TY_DATASET_ORDER_BLOCKS  = 2,
} ty_dataset_order_t;

/* Keys per block of a block shuffle: 128 short text samples are ~9 KB, a
 * few pages of the map read in order. Each jump to a random block costs a
 * round of cache misses on its index entries and its bytes (the hardware
 * prefetcher starts over), about as much as reading ~60 short samples in
 * order, so smaller blocks read slower (64 x 16 measured ~10 points below
 * 128 x 8) and bigger ones keep more neighbours together (256 x 4 about
 * as fast as 128 x 8 on a noisy machine). bench/dataset, 1 M text rows:
 * 128 x 8 reads at 55-75 % of the floor, a uniform SHUFFLE at 21-26 %. */
#define TY_DATASET_BLOCK_KEYS        128
/* Blocks mixed together: 8 x 128 = 1024 samples (~70 KB for short text,
 * in L2), so a batch draws from 8 random places of the split. */
#define TY_DATASET_BLOCK_WINDOW      8
/* block x window at most (the window's view buffer: 24 MB). */
#define TY_DATASET_WINDOW_KEYS_MAX   (1u << 20)

typedef struct {
    ty_dataset_order_t order;
    uint64_t           seed;
    uint32_t           block;    /* BLOCKS: keys per block; 0: TY_DATASET_BLOCK_KEYS */
    uint32_t           window;   /* BLOCKS: blocks mixed; 0: TY_DATASET_BLOCK_WINDOW */
} ty_dataset_iter_opts_t;

/* An iterator over one split, in key order or shuffled by a seeded
 * permutation (the same seed gives the same order): order KEYS or SHUFFLE
 * of ty_dataset_iter_new_opts. One thread at a time per iterator; many
 * iterators may share a handle. Must be destroyed before the dataset.
 * Errors: TY_EINVAL, TY_ENOMEM, TY_ESTORE. */
int ty_dataset_iter_new (ty_dataset_t *ds, ty_split_t split, bool shuffle,
                         uint64_t seed, ty_dataset_iter_t **self_p);
/* Same with an order and its options (see ty_dataset_order_t). TY_EINVAL
 * also for block x window over TY_DATASET_WINDOW_KEYS_MAX. */
int ty_dataset_iter_new_opts (ty_dataset_t *ds, ty_split_t split,
                              const ty_dataset_iter_opts_t *opts,
                              ty_dataset_iter_t **self_p);
/* Fills up to `cap` views; *n = 0 at the end. Views live as long as the
 * dataset handle (see ty_dataset_view_t). TY_OK or TY_EINVAL. */
int ty_dataset_iter_next (ty_dataset_iter_t *self, ty_dataset_view_t *views,
                          size_t cap, size_t *n);
/* Starts again; reshuffles with `seed` when the iterator shuffles, in
 * either SHUFFLE or BLOCKS order (pass a per-epoch seed for a new order
 * each epoch). TY_OK or TY_ENOMEM. */
int ty_dataset_iter_reset (ty_dataset_iter_t *self, uint64_t seed);
void ty_dataset_iter_destroy (ty_dataset_iter_t **self_p);

/* ---- names and versions -------------------------------------------------- */

/* Dataset names under <data_dir>/datasets, sorted. *names is a malloc'd
 * array of malloc'd strings (free with ty_dataset_strv_free). TY_OK (n may
 * be 0), TY_ENOMEM, errno. */
int  ty_dataset_list (const char *data_dir, char ***names, size_t *n);
void ty_dataset_strv_free (char **strv, size_t n);
/* Committed versions of a dataset, ascending; *versions malloc'd (caller
 * frees; NULL when n = 0). TY_OK, TY_EINVAL, TY_ENOTFOUND (no dataset). */
int  ty_dataset_versions (const char *data_dir, const char *name,
                          uint64_t **versions, size_t *n);
/* Removes "name@N" (one version) or "name" (all versions, the folder).
 * Each version disappears at once (renamed away, then deleted); readers
 * that have it open keep their mapping. TY_OK, TY_EINVAL, TY_ENOTFOUND,
 * errno. */
int  ty_dataset_remove (const char *data_dir, const char *spec);

/* Shuffles a[0..n) in place by a seeded Fisher-Yates (splitmix64 +
 * unbiased bounded draws): the same seed gives the same order on every
 * machine. Used by iterators and by ty_split. */
void ty_dataset_shuffle (uint64_t *a, uint64_t n, uint64_t seed);

/* sha256 of a file as 64 hex chars + NUL into hex (65 bytes); *bytes (if
 * given) gets its size. TY_OK or errno. */
int  ty_dataset_file_sha256 (const char *path, char *hex, uint64_t *bytes);

#endif

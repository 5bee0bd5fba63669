/*  bench_dataset: import and read rates of the dataset store.
 *
 *      bench_dataset DIR [ROWS] [IMAGES]
 *
 *  In DIR (a scratch folder it fills): generates ROWS short text rows as
 *  CSV (default 1,000,000) and IMAGES 32x32 RGB PNGs in 10 class folders
 *  (default 10,000); imports each through the library (read, validate,
 *  split, write, sync, rename) and prints the rate; then reads the train
 *  split of each through the reader API in key order, shuffled (a uniform
 *  permutation) and block-shuffled (ty_dataset.h), touching
 *  every byte, beside the floor: a plain sequential read() of a file of the
 *  same bytes (page cache warm in both cases).
 *
 *  Output: human lines on stderr, and one line per figure on stdout:
 *      RESULT what=<name> key=value ...
 *  (bench/dataset runs it and prints a table). Not a test: asserts nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "ty_dataset.h"
#include "ty_error.h"
#include "ty_import.h"
#include "ty_log.h"
#include "ty_validate.h"

#define S_DEFAULT_ROWS    1000000
#define S_DEFAULT_IMAGES  10000
#define S_IMAGE_SIDE      32
#define S_IMAGE_CLASSES   10
#define S_BATCH           256
#define S_READ_CHUNK      (1u << 20)
#define S_READ_REPS       5      /* best of (wall and CPU time each) */

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double
s_cpu (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
s_die (const char *what, int rc)
{
    fprintf (stderr, "bench_dataset: %s: %s\n", what, ty_strerror (rc));
    exit (1);
}

/* Touches every byte: 8-byte words xor-ed (vectorizable), tail bytes too. */
static uint64_t
s_touch (const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy (&w, p + i, 8);
        acc ^= w;
    }
    for (; i < n; i++)
        acc += p[i];
    return acc;
}

static void
s_make_csv (const char *path, uint64_t rows)
{
    FILE *f = fopen (path, "w");
    if (!f)
        s_die (path, errno);
    fprintf (f, "label,text\n");
    for (uint64_t i = 0; i < rows; i++)
        fprintf (f, "class%02d,Show.Name.S%02dE%04" PRIu64 ".720p.HDTV\n", (int) (i % 20),
                 (int) (i % 37), i);
    if (fclose (f) != 0)
        s_die (path, errno);
}

static void
s_make_images (const char *root, uint64_t n)
{
    if (mkdir (root, 0755) != 0 && errno != EEXIST)
        s_die (root, errno);
    unsigned char px[S_IMAGE_SIDE * S_IMAGE_SIDE * 3];
    uint64_t state = 0x1234567;
    for (uint64_t i = 0; i < n; i++) {
        char dir[1200], path[1300];
        snprintf (dir, sizeof dir, "%s/c%d", root, (int) (i % S_IMAGE_CLASSES));
        if (i < S_IMAGE_CLASSES && mkdir (dir, 0755) != 0 && errno != EEXIST)
            s_die (dir, errno);
        for (size_t k = 0; k < sizeof px; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            /* smooth-ish content: compresses like a photo thumbnail, not noise */
            px[k] = (unsigned char) ((k / 3) % S_IMAGE_SIDE * 4 + (state >> 61));
        }
        snprintf (path, sizeof path, "%s/%06" PRIu64 ".png", dir, i);
        if (!stbi_write_png (path, S_IMAGE_SIDE, S_IMAGE_SIDE, 3, px, S_IMAGE_SIDE * 3))
            s_die (path, EIO);
    }
}

static void
s_import (const char *data, const char *name, const char *src, ty_import_format_t fmt,
          const char *what)
{
    ty_import_opts_t io;
    ty_import_opts_default (&io);
    io.format = fmt;
    io.image_width = io.image_height = S_IMAGE_SIDE;
    io.image_channels = 3;
    ty_validate_opts_t vo;
    ty_validate_opts_default (&vo);
    ty_validate_t *v = ty_validate_new (&vo);
    ty_import_rows_t *rows = ty_import_rows_new ();
    char err[TY_IMPORT_ERROR_MAX];
    double t0 = s_now (), c0 = s_cpu ();
    int rc = ty_import_file (src, &io, v, rows, err);
    if (rc != TY_OK) {
        fprintf (stderr, "%s\n", err);
        s_die ("import", rc);
    }
    double t1 = s_now ();
    if ((rc = ty_import_finish (rows, v)) != TY_OK) {
        fprintf (stderr, "%s\n", ty_validate_report (v)->message);
        s_die ("validate", rc);
    }
    uint64_t n = ty_import_rows_count (rows);
    uint64_t version;
    if ((rc = ty_import_commit (rows, data, name, NULL, NULL, &version, NULL)) != TY_OK)
        s_die ("commit", rc);
    double t2 = s_now (), cpu = s_cpu () - c0;
    /* CPU time too: on a shared machine wall time measures the neighbours */
    fprintf (stderr, "import %-7s %8" PRIu64 " rows  %6.2f s  %9.0f rows/s  (cpu %.2f s: "
             "%.0f rows per cpu-s; read+validate %.2f s, split+write+sync %.2f s)\n", what,
             n, t2 - t0, (double) n / (t2 - t0), cpu, (double) n / cpu, t1 - t0, t2 - t1);
    printf ("RESULT what=import_%s rows=%" PRIu64 " seconds=%.3f rows_per_s=%.0f cpu_s=%.3f "
            "rows_per_cpu_s=%.0f read_s=%.3f write_s=%.3f\n", what, n, t2 - t0,
            (double) n / (t2 - t0), cpu, (double) n / cpu, t1 - t0, t2 - t1);
    ty_import_rows_destroy (&rows);
    ty_validate_destroy (&v);
}

/* Reads the train split: in order, shuffled, block-shuffled, and the read()
 * floor. */
static void
s_read (const char *dir, const char *data, const char *name, const char *what)
{
    ty_dataset_t *ds;
    int rc = ty_dataset_open (data, name, &ds);
    if (rc != TY_OK)
        s_die ("open", rc);
    uint64_t n = ty_dataset_count (ds, TY_SPLIT_TRAIN);
    /* the floor's file: the same bytes, back to back */
    char floor_path[1100];
    snprintf (floor_path, sizeof floor_path, "%s/%s.floor", dir, what);
    int fd = open (floor_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        s_die (floor_path, errno);
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        ty_dataset_view_t view;
        if ((rc = ty_dataset_get (ds, TY_SPLIT_TRAIN, i, &view)) != TY_OK)
            s_die ("get", rc);
        if (write (fd, view.data, view.size) != (ssize_t) view.size)
            s_die ("write floor", errno);
        bytes += view.size;
    }
    close (fd);
    double mb = (double) bytes / 1e6;
    uint64_t sink = 0;
    /* shuffled: a uniform permutation; blocks: the block shuffle with the
     * default block and window (ty_dataset.h) */
    const char *modes[] = { "sequential", "shuffled", "blocks" };
    const ty_dataset_order_t orders[] = {
        TY_DATASET_ORDER_KEYS, TY_DATASET_ORDER_SHUFFLE, TY_DATASET_ORDER_BLOCKS };
    for (int mode = 0; mode < 3; mode++) {
        double best = 1e30, best_cpu = 1e30;
        for (int rep = 0; rep < S_READ_REPS; rep++) {
            ty_dataset_iter_t *it;
            double t0 = s_now (), c0 = s_cpu ();
            ty_dataset_iter_opts_t o = { .order = orders[mode], .seed = (uint64_t) rep + 1 };
            if ((rc = ty_dataset_iter_new_opts (ds, TY_SPLIT_TRAIN, &o, &it)) != TY_OK)
                s_die ("iter", rc);
            ty_dataset_view_t views[S_BATCH];
            size_t got;
            while (ty_dataset_iter_next (it, views, S_BATCH, &got) == TY_OK && got)
                for (size_t k = 0; k < got; k++)
                    sink += s_touch (views[k].data, views[k].size);
            ty_dataset_iter_destroy (&it);
            double t = s_now () - t0, c = s_cpu () - c0;
            best = t < best ? t : best;
            best_cpu = c < best_cpu ? c : best_cpu;
        }
        fprintf (stderr, "read   %-7s %-10s %9.0f samples/s  %8.1f MB/s\n", what,
                 modes[mode], (double) n / best, mb / best);
        printf ("RESULT what=read_%s mode=%s samples=%" PRIu64 " mb=%.1f samples_per_s=%.0f "
                "mb_per_s=%.1f mb_per_cpu_s=%.1f\n", what, modes[mode], n, mb, (double) n / best,
                mb / best, mb / best_cpu);
    }
    char *buf = malloc (S_READ_CHUNK);
    double best = 1e30, best_cpu = 1e30;
    for (int rep = 0; rep < S_READ_REPS; rep++) {
        double t0 = s_now (), c0 = s_cpu ();
        fd = open (floor_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || !buf)
            s_die ("floor", errno);
        ssize_t got;
        while ((got = read (fd, buf, S_READ_CHUNK)) > 0)
            sink += s_touch (buf, (size_t) got);
        close (fd);
        double t = s_now () - t0, c = s_cpu () - c0;
        best = t < best ? t : best;
        best_cpu = c < best_cpu ? c : best_cpu;
    }
    free (buf);
    fprintf (stderr, "read   %-7s %-10s %9.0f samples/s  %8.1f MB/s  (floor: read() of a "
             "%.1f MB file)\n", what, "read()", (double) n / best, mb / best, mb);
    printf ("RESULT what=read_%s mode=floor samples=%" PRIu64 " mb=%.1f samples_per_s=%.0f "
            "mb_per_s=%.1f mb_per_cpu_s=%.1f sink=%" PRIu64 "\n", what, n, mb, (double) n / best,
            mb / best, mb / best_cpu,
            sink & 1);
    unlink (floor_path);
    ty_dataset_destroy (&ds);
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        fprintf (stderr, "usage: bench_dataset DIR [ROWS] [IMAGES]\n");
        return 2;
    }
    ty_log_init ("bench_dataset", TY_LOG_WARN);
    const char *dir = argv[1];
    uint64_t rows = argc > 2 ? strtoull (argv[2], NULL, 10) : S_DEFAULT_ROWS;
    uint64_t images = argc > 3 ? strtoull (argv[3], NULL, 10) : S_DEFAULT_IMAGES;
    char csv[1100], imgs[1100], data[1100];
    snprintf (csv, sizeof csv, "%s/text.csv", dir);
    snprintf (imgs, sizeof imgs, "%s/images", dir);
    snprintf (data, sizeof data, "%s/data", dir);
    fprintf (stderr, "generating %" PRIu64 " text rows and %" PRIu64 " images in %s\n",
             rows, images, dir);
    s_make_csv (csv, rows);
    s_make_images (imgs, images);
    s_import (data, "text", csv, TY_FORMAT_CSV, "text");
    s_import (data, "images", imgs, TY_FORMAT_IMAGES, "images");
    s_read (dir, data, "text", "text");
    s_read (dir, data, "images", "images");
    return 0;
}

/*  ty_import_image: a folder of class folders of PNG/JPEG images.
 *
 *  <root>/<class>/<file>.png|.jpg|.jpeg, classes and files in byte order
 *  (not the locale's), so the same folder always gives the same rows. Each
 *  file is decoded by stb_image (from memory, after a header check that
 *  refuses absurd sizes), converted to the wanted channels and resized by
 *  stb_image_resize to the wanted size (a no-op copy when it already has
 *  it). The "line" of an image is its 1-based position in that order; the
 *  reject detail names the file. Other files are ignored. */
#include "ty_import.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>
#include <stb_image_resize.h>

#include "ty_error.h"

/* Refuse decoding above this many pixels (a small file can claim a huge
 * size: a decompression bomb). */
#define S_MAX_PIXELS      (64u << 20)
#define S_DETAIL_MAX      TY_VALIDATE_DETAIL_MAX

static int
s_cmp_dirent (const struct dirent **a, const struct dirent **b)
{
    return strcmp ((*a)->d_name, (*b)->d_name);
}

static int
s_is_dir_entry (const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static bool
s_is_image_name (const char *n)
{
    const char *dot = strrchr (n, '.');
    return n[0] != '.' && dot && (!strcasecmp (dot, ".png") || !strcasecmp (dot, ".jpg")
                                  || !strcasecmp (dot, ".jpeg"));
}

/* Reads a whole file (at most max bytes). TY_OK, TY_EFULL, errno. */
static int
s_read_file (const char *path, size_t max, unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        close (fd);
        return EINVAL;
    }
    if ((uint64_t) st.st_size > max) {
        close (fd);
        return TY_EFULL;
    }
    unsigned char *buf = malloc ((size_t) st.st_size + 1);
    if (!buf) {
        close (fd);
        return TY_ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t) st.st_size) {
        ssize_t n = read (fd, buf + got, (size_t) st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    close (fd);
    *out = buf;
    *len = got;
    return TY_OK;
}

static void
s_reject (ty_validate_t *v, ty_reject_t why, uint64_t line, const char *rel,
          const char *what)
{
    char detail[S_DETAIL_MAX];
    snprintf (detail, sizeof detail, "%s: %s", rel, what);
    ty_validate_reject (v, why, line, detail);
}

int
ty_import_image_decode (const unsigned char *buf, size_t len, unsigned width, unsigned height,
                        unsigned channels, unsigned char **pixels, const char **why)
{
    int w, h, comp;
    *pixels = NULL;
    *why = "";
    if (len > INT32_MAX || !stbi_info_from_memory (buf, (int) len, &w, &h, &comp)) {
        *why = len > INT32_MAX ? "too big"
             : stbi_failure_reason () ? stbi_failure_reason () : "not an image";
        return TY_EINVAL;
    }
    if (w <= 0 || h <= 0 || (uint64_t) w * (uint64_t) h > S_MAX_PIXELS) {
        *why = "image dimensions out of range";
        return TY_EINVAL;
    }
    int ch = (int) channels;
    unsigned char *dec = stbi_load_from_memory (buf, (int) len, &w, &h, &comp, ch);
    if (!dec) {
        *why = stbi_failure_reason () ? stbi_failure_reason () : "cannot decode";
        return TY_EINVAL;
    }
    int ow = (int) width, oh = (int) height;
    size_t out_len = (size_t) ow * (size_t) oh * (size_t) ch;
    unsigned char *out = malloc (out_len);
    bool ok = out != NULL;
    if (ok && w == ow && h == oh)
        memcpy (out, dec, out_len);   /* already the wanted size: pixels as they are */
    else if (ok)
        ok = stbir_resize_uint8 (dec, w, h, 0, out, ow, oh, 0, ch) == 1;
    stbi_image_free (dec);
    if (!ok) {
        free (out);
        *why = out ? "cannot resize" : "out of memory";
        return out ? TY_EINVAL : TY_ENOMEM;
    }
    *pixels = out;
    return TY_OK;
}

/* Decodes one image file into im (pixels malloc'd into *pixels). */
static bool
s_image (const unsigned char *buf, size_t len, const ty_import_opts_t *o,
         ty_validate_t *v, uint64_t line, const char *rel, unsigned char **pixels,
         Ty__Image *im)
{
    const char *why;
    if (ty_import_image_decode (buf, len, o->image_width, o->image_height, o->image_channels,
                                pixels, &why) != TY_OK) {
        s_reject (v, TY_REJECT_IMAGE, line, rel, why);
        return false;
    }
    im->height = o->image_height;
    im->width = o->image_width;
    im->channels = o->image_channels;
    im->pixels.data = *pixels;
    im->pixels.len = (size_t) o->image_width * o->image_height * o->image_channels;
    return true;
}

int
ty_import_images (const char *root, const ty_import_opts_t *o, ty_validate_t *v,
                  ty_import_rows_t *rows, char *error)
{
    if ((o->image_channels != 1 && o->image_channels != 3) || !o->image_width
        || !o->image_height || o->image_width > TY_IMPORT_IMAGE_SIDE_MAX
        || o->image_height > TY_IMPORT_IMAGE_SIDE_MAX) {
        snprintf (error, TY_IMPORT_ERROR_MAX, "images: size %ux%u, channels %u not allowed",
                  o->image_width, o->image_height, o->image_channels);
        return TY_EINVAL;
    }
    struct dirent **classes = NULL;
    int nc = scandir (root, &classes, s_is_dir_entry, s_cmp_dirent);
    if (nc < 0) {
        int e = errno;
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: %s", root, strerror (e));
        return e;
    }
    EVP_MD_CTX *sha = EVP_MD_CTX_new ();
    int rc = sha && EVP_DigestInit_ex (sha, EVP_sha256 (), NULL) == 1 ? TY_OK : TY_ENOMEM;
    uint64_t line = 0, total_bytes = 0, nfiles = 0;
    for (int c = 0; rc == TY_OK && c < nc; c++) {
        char cdir[4096];
        if (snprintf (cdir, sizeof cdir, "%s/%s", root, classes[c]->d_name) >= (int) sizeof cdir)
            continue;
        struct stat st;
        if (stat (cdir, &st) != 0 || !S_ISDIR (st.st_mode))
            continue;
        struct dirent **files = NULL;
        int nf = scandir (cdir, &files, s_is_dir_entry, s_cmp_dirent);
        if (nf < 0)
            continue;
        /* the class name, writable: validation normalizes labels in place */
        char label[256];
        for (int f = 0; f < nf; f++) {
            if (rc != TY_OK || !s_is_image_name (files[f]->d_name)) {
                free (files[f]);
                continue;
            }
            line++;
            nfiles++;
            char path[4096], rel[600];
            bool fits = snprintf (path, sizeof path, "%s/%s", cdir, files[f]->d_name)
                        < (int) sizeof path;
            if (snprintf (rel, sizeof rel, "%s/%s", classes[c]->d_name, files[f]->d_name)
                >= (int) sizeof rel)
                rel[sizeof rel - 1] = '\0';   /* only a label for messages */
            free (files[f]);
            if (!fits) {
                s_reject (v, TY_REJECT_FILE, line, rel, "path too long");
                continue;
            }
            unsigned char *buf;
            size_t len;
            int frc = s_read_file (path, TY_IMPORT_MAX_IMAGE_BYTES, &buf, &len);
            if (frc != TY_OK) {
                s_reject (v, frc == TY_EFULL ? TY_REJECT_IMAGE : TY_REJECT_FILE, line, rel,
                          frc == TY_EFULL ? "file over the image size limit" : ty_strerror (frc));
                continue;
            }
            total_bytes += len;
            if (EVP_DigestUpdate (sha, rel, strlen (rel) + 1) != 1
                || EVP_DigestUpdate (sha, buf, len) != 1)
                rc = TY_EINTERNAL;
            unsigned char *pixels = NULL;
            Ty__Image im = TY__IMAGE__INIT;
            if (rc == TY_OK && s_image (buf, len, o, v, line, rel, &pixels, &im)) {
                snprintf (label, sizeof label, "%s", classes[c]->d_name);
                char *labels[1] = { label };
                Ty__Sample s = TY__SAMPLE__INIT;
                s.image = &im;
                s.labels = labels;
                s.n_labels = 1;
                s.weight = 1.0f;
                s.source = o->source;
                rc = ty_import_accept (v, rows, &s, line, o);
            }
            free (pixels);
            free (buf);
        }
        free (files);
    }
    for (int c = 0; c < nc; c++)
        free (classes[c]);
    free (classes);
    if (rc == TY_OK && nfiles == 0) {
        snprintf (error, TY_IMPORT_ERROR_MAX, "%s: no PNG/JPEG files in class folders", root);
        rc = TY_EINVAL;
    }
    unsigned char d[32];
    unsigned dn = 0;
    if (rc == TY_OK && EVP_DigestFinal_ex (sha, d, &dn) == 1) {
        char hex[65];
        for (unsigned i = 0; i < dn && i < 32; i++)
            snprintf (hex + 2 * i, 3, "%02x", d[i]);
        rc = ty_import_rows_add_source (rows, root, hex, total_bytes);
    }
    EVP_MD_CTX_free (sha);
    return rc;
}

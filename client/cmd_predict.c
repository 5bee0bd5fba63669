/*  trainyard predict: predictions from a model version's portable file
 *  (model.tym) with libtrainyard-infer, the C99 runtime devices use too.
 *  The model is named as the registry resolves it: M, M@3, M@production,
 *  M@canary, M@latest, M@serving --device ID. Inputs come on stdin, one a
 *  line: a text (textclf), comma- or space-separated numbers (mlp), or
 *  "user item" ids (ncf). No broker is involved: this runs where the data
 *  directory is, as a device would. */
#include "cmd.h"
#include "ty_error.h"
#include "ty_import.h"
#include "ty_infer.h"
#include "ty_registry.h"
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TOPK_DEFAULT 3
#define S_LINE_MAX     (1u << 20)   /* longer input lines are refused */
#define S_IMAGE_MAX    (64u << 20)  /* = an image import's limit */
#define S_BAD_LINE     1            /* not a TY_INFER_* code: the line was refused */

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: trainyard predict --model M[@v|@production|@canary|@serving] [OPTIONS]\n"
        "\n"
        "Read inputs on stdin, one a line, and print one prediction a line from the\n"
        "model version's portable file (model.tym, written when the model is trained):\n"
        "  text models (textclf)   a line of text -> label, probability, top-k\n"
        "  feature models (mlp)    numbers separated by commas or spaces -> label or value\n"
        "  image models (cnn)      the path of a PNG or JPEG file -> label, probability\n"
        "  recommenders (ncf)      \"user item\" model ids -> score\n"
        "\n"
        "  --model SPEC   M (latest), M@3, M@production, M@canary, M@default, M@serving\n"
        "  --device ID    with @serving: the canary for its share of devices, else production\n"
        "  --format F     fp32 (model.tym, default), fp16 or int8: the file\n"
        "                 `trainyard convert --to F` made (a device's INT8 model)\n"
        "  --top-k K      labels shown per line (default %d)\n"
        "  --data DIR     data directory (env TRAINYARD_DATA, else <state dir>/data)\n"
        "  --json         one JSON object per line\n"
        "  -h, --help     this help\n", S_TOPK_DEFAULT);
}

/* cnn: a line is the path of a PNG or JPEG file, decoded and resized to the
 * model's input as an image import does. S_BAD_LINE after printing why. */
static int
s_predict_image (const ty_infer_model_t *m, const char *path, float *out, size_t width,
                 long lineno)
{
    size_t h, w, c;
    ty_infer_image_shape (m, &h, &w, &c);
    FILE *f = fopen (path, "rb");
    if (!f) {
        cmd_error ("predict: line %ld: %s: %s", lineno, path, strerror (errno));
        return S_BAD_LINE;
    }
    unsigned char *buf = malloc (S_IMAGE_MAX);
    size_t len = buf ? fread (buf, 1, S_IMAGE_MAX, f) : 0;
    int bad = !buf || ferror (f) || len == S_IMAGE_MAX;
    fclose (f);
    if (bad) {
        free (buf);
        cmd_error ("predict: line %ld: %s: %s", lineno, path,
                   !buf ? "out of memory" : len == S_IMAGE_MAX ? "larger than 64 MiB"
                                                               : "cannot read it");
        return S_BAD_LINE;
    }
    unsigned char *pixels = NULL;
    const char *why = "";
    int rc = ty_import_image_decode (buf, len, (unsigned) w, (unsigned) h, (unsigned) c,
                                     &pixels, &why);
    free (buf);
    if (rc != TY_OK) {
        cmd_error ("predict: line %ld: %s: %s", lineno, path, why);
        return S_BAD_LINE;
    }
    rc = ty_infer_predict_image (m, pixels, h * w * c, out, width);
    free (pixels);
    return rc;
}

/* name@version from the registry; a model it never saw: the version dir given. */
static int
s_resolve (const char *data, const char *spec, const char *device, char *name,
           size_t name_len, uint64_t *version)
{
    ty_registry_t *reg = NULL;
    int rc = ty_registry_open (data, &reg);
    if (rc == TY_OK) {
        char n [256];
        ty_stage_t stage;
        rc = ty_registry_resolve (reg, strchr (spec, '@') ? spec : spec, device, n,
                                  version, &stage);
        if (rc == TY_OK)
            snprintf (name, name_len, "%s", n);
        else
        if (rc != TY_ENOTFOUND)
            cmd_error ("predict: %s: %s", spec, ty_registry_errstr (reg));
    }
    ty_registry_destroy (&reg);
    if (rc == TY_OK)
        return 0;
    /* not registered: "M@N" still names a directory */
    const char *at = strchr (spec, '@');
    char *end = NULL;
    if (at && at [1] >= '1' && at [1] <= '9') {
        unsigned long long v = strtoull (at + 1, &end, 10);
        if (end && !*end && (size_t) (at - spec) < name_len) {
            memcpy (name, spec, (size_t) (at - spec));
            name [at - spec] = '\0';
            *version = v;
            return 0;
        }
    }
    return cmd_error ("predict: no model version %s in %s (train one, or name M@N)", spec,
                      data);
}

/* Parses numbers separated by commas or spaces; returns the count or -1. */
static long
s_numbers (char *line, float *x, size_t cap)
{
    size_t n = 0;
    for (char *p = line; *p; ) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        double v = strtod (p, &end);
        if (end == p || errno || n == cap)
            return -1;
        x [n++] = (float) v;
        p = end;
    }
    return (long) n;
}

static void
s_print (const ty_infer_model_t *m, const float *out, size_t width, size_t topk, int json,
         long lineno)
{
    if (ty_infer_nlabels (m) == 0 || width == 1) {
        if (json)
            printf ("{\"line\":%ld,\"value\":%.9g}\n", lineno, out [0]);
        else
            printf ("%.6g\n", out [0]);
        return;
    }
    size_t idx [64];
    if (topk > 64)
        topk = 64;
    size_t k = ty_infer_topk (out, width, topk, idx);
    if (json) {
        printf ("{\"line\":%ld,\"label\":\"%s\",\"probability\":%.6f,\"top\":[", lineno,
                ty_infer_label (m, idx [0]), out [idx [0]]);
        for (size_t i = 0; i < k; i++)
            printf ("%s{\"label\":\"%s\",\"probability\":%.6f}", i ? "," : "",
                    ty_infer_label (m, idx [i]), out [idx [i]]);
        printf ("]}\n");
        return;
    }
    printf ("%s\t%.4f", ty_infer_label (m, idx [0]), out [idx [0]]);
    for (size_t i = 1; i < k; i++)
        printf ("\t%s:%.4f", ty_infer_label (m, idx [i]), out [idx [i]]);
    printf ("\n");
}

int
cmd_predict (cmd_ctx_t *ctx, int argc, char **argv)
{
    static const struct option longopts [] = {
        { "model",  required_argument, 0, 'm' },
        { "device", required_argument, 0, 'd' },
        { "top-k",  required_argument, 0, 'k' },
        { "format", required_argument, 0, 'f' },
        { "data",   required_argument, 0, 'D' },
        { "json",   no_argument,       0, 'j' },
        { "help",   no_argument,       0, 'h' },
        { 0, 0, 0, 0 }
    };
    const char *spec = NULL, *device = NULL, *data_flag = NULL, *file = "model.tym";
    const char *format = "fp32";
    long topk = S_TOPK_DEFAULT;
    int json = ctx->json, c;
    optind = 1;
    while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': spec = optarg; break;
        case 'd': device = optarg; break;
        case 'D': data_flag = optarg; break;
        case 'f':
            if (!strcmp (optarg, "fp32"))      file = "model.tym";
            else if (!strcmp (optarg, "fp16")) file = "model-fp16.tym";
            else if (!strcmp (optarg, "int8")) file = "model-int8.tym";
            else return cmd_usage_error ("predict", "--format: fp32, fp16 or int8");
            format = optarg;
            break;
        case 'j': json = 1; break;
        case 'k': if (cmd_parse_long (optarg, 1, 64, &topk))
                      return cmd_usage_error ("predict", "--top-k: 1 to 64");
                  break;
        case 'h': s_usage (stdout); return TY_CMD_EXIT_OK;
        default:  return cmd_getopt_error ("predict", c, argv);
        }
    }
    if (!spec)
        return cmd_usage_error ("predict", "--model is required");
    if (optind < argc)
        return cmd_usage_error ("predict", "unexpected argument '%s'", argv [optind]);
    if (strstr (spec, "@serving") && !device)
        return cmd_usage_error ("predict", "@serving needs --device ID");
    char data [PATH_MAX];
    if (cmd_data_dir (data_flag, data, sizeof data))
        return TY_CMD_EXIT_ERROR;
    char name [256];
    uint64_t version = 0;
    if (s_resolve (data, spec, device, name, sizeof name, &version))
        return TY_CMD_EXIT_ERROR;
    char path [PATH_MAX * 2];
    snprintf (path, sizeof path, "%s/models/%s/%llu/%s", data, name,
              (unsigned long long) version, file);
    char err [TY_INFER_ERR_LEN];
    ty_infer_model_t *m = NULL;
    int rc = ty_infer_open (path, &m, err, sizeof err);
    if (rc == ENOENT && strcmp (file, "model.tym"))
        return cmd_error ("predict: %s@%llu has no %s: make it with trainyard convert "
                          "--model %s@%llu --to %s", name, (unsigned long long) version, file,
                          name, (unsigned long long) version, format);
    if (rc != TY_INFER_OK)
        return cmd_error ("predict: %s@%llu: %s", name, (unsigned long long) version, err);
    fprintf (stderr, "predict: %s@%llu (%s) from %s\n", name, (unsigned long long) version,
             ty_infer_kind_name (ty_infer_kind (m)), path);

    ty_infer_kind_t kind = ty_infer_kind (m);
    size_t width = ty_infer_output_width (m);
    size_t in_width = ty_infer_input_width (m);
    float *out = calloc (width ? width : 1, sizeof *out);
    float *x = calloc (in_width ? in_width : 1, sizeof *x);
    char *line = malloc (S_LINE_MAX);
    int exit_code = TY_CMD_EXIT_OK;
    if (!out || !x || !line) {
        exit_code = cmd_error ("predict: out of memory");
        goto done;
    }
    long lineno = 0;
    while (fgets (line, S_LINE_MAX, stdin)) {
        lineno++;
        size_t len = strlen (line);
        if (len == S_LINE_MAX - 1 && line [len - 1] != '\n') {
            exit_code = cmd_error ("predict: line %ld is longer than %u bytes", lineno,
                                   S_LINE_MAX - 1);
            break;
        }
        while (len && (line [len - 1] == '\n' || line [len - 1] == '\r'))
            line [--len] = '\0';
        const char *kname = ty_infer_kind_name (kind);
        if (!strcmp (kname, "textclf"))
            rc = ty_infer_predict_text (m, line, len, out, width);
        else
        if (!strcmp (kname, "mlp")) {
            long n = s_numbers (line, x, in_width);
            if (n != (long) in_width) {
                exit_code = cmd_error ("predict: line %ld: want %zu numbers, got %s", lineno,
                                       in_width, n < 0 ? "something else" : "another count");
                continue;
            }
            rc = ty_infer_predict_features (m, x, in_width, out, width);
        }
        else
        if (!strcmp (kname, "ncf")) {
            long long u, i;
            char extra;
            if (sscanf (line, "%lld %lld %c", &u, &i, &extra) != 2) {
                exit_code = cmd_error ("predict: line %ld: want \"user item\"", lineno);
                continue;
            }
            rc = ty_infer_predict_pair (m, u, i, out);
            width = 1;
        }
        else {
            rc = s_predict_image (m, line, out, width, lineno);
            if (rc == S_BAD_LINE) {
                exit_code = TY_CMD_EXIT_ERROR;
                continue;
            }
        }
        if (rc != TY_INFER_OK) {
            exit_code = cmd_error ("predict: line %ld: %s", lineno, ty_infer_strerror (rc));
            continue;
        }
        s_print (m, out, width, (size_t) topk, json, lineno);
    }
    fflush (stdout);
done:
    free (line);
    free (x);
    free (out);
    ty_infer_close (&m);
    return exit_code;
}

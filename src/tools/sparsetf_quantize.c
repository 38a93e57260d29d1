/*
 * sparsetf-quantize: converts an f32 model file to q8 weights (docs/file-format.md), keeping
 * its config, name and embedded tokenizer. It maps the input (nothing is read twice into
 * memory) and streams the output a chunk at a time, with progress; the largest transposed
 * tensor is the most it holds at once (see model_write).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "model/model_file.h"
#include "util/progress.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: sparsetf-quantize --type q8 IN.stf OUT.stf\n"
               "\n"
               "Writes OUT.stf: IN.stf's model with its large matrices stored as q8 (int8 in\n"
               "blocks of 32 with a half-precision scale, docs/file-format.md); norms, biases,\n"
               "the sparse FF controller and the positional table stay f32. The config, name\n"
               "and embedded tokenizer are kept.\n"
               "\n"
               "  --type q8     the weight type to write (q8 is the one there is)\n"
               "  --verify      check IN.stf's checksums while reading\n"
               "  --version     print the version\n"
               "  -h, --help    this text\n");
}

/* The fill callback: element `start..` of the named tensor of the f32 input (f32 order). */
struct source {
    struct model *m;
    char name[48];
    const float *data;
    uint64_t elems;
};

static enum stf_status fill_from_source(void *ctx, const struct tensor_desc *t, float *buf,
                                        uint64_t start, uint64_t count, struct stf_error *err)
{
    struct source *src = ctx;
    if (strcmp(src->name, t->name) != 0) {
        const struct tensor_view *v = model_weights_find(&src->m->cfg, &src->m->w, t->name);
        if (!v || !v->data || v->dtype != STF_DTYPE_F32)
            return stf_fail(err, STF_ERR_FORMAT, "input tensor %s is not an f32 tensor", t->name);
        snprintf(src->name, sizeof src->name, "%s", t->name);
        src->data = v->data;
        src->elems = v->nbytes / sizeof(float);
    }
    if (start + count > src->elems)
        return stf_fail(err, STF_ERR_FORMAT, "input tensor %s has %llu values, not %llu", t->name,
                        (unsigned long long)src->elems, (unsigned long long)(start + count));
    memcpy(buf, src->data + start, count * sizeof(float));
    return STF_OK;
}

int main(int argc, char **argv)
{
    const char *type = NULL;
    unsigned flags = 0;
    static const struct option opts[] = {{"type", required_argument, 0, 't'},
                                         {"verify", no_argument, 0, 'v'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            type = optarg;
            break;
        case 'v':
            flags |= MODEL_OPEN_VERIFY;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("sparsetf-quantize %s\n", PROJECT_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!type || strcmp(type, "q8") != 0) {
        fprintf(stderr, "sparsetf-quantize: --type q8 is required (the only type there is)\n");
        return 2;
    }
    if (argc - optind != 2) {
        fprintf(stderr, "sparsetf-quantize: give IN.stf and OUT.stf (see --help)\n");
        return 2;
    }
    const char *in = argv[optind], *out = argv[optind + 1];
    struct stf_error err = {0};
    struct model *m = NULL;
    if (model_open(in, NULL, flags, &m, &err)) {
        fprintf(stderr, "sparsetf-quantize: %s\n", err.msg);
        return 1;
    }
    if (m->cfg.weights != WEIGHTS_F32) {
        fprintf(stderr, "sparsetf-quantize: %s: weights are %s already (need an f32 model)\n", in,
                model_config_choice_name("weights", m->cfg.weights));
        model_close(m);
        return 1;
    }
    struct model_config cfg = m->cfg;
    cfg.weights = WEIGHTS_Q8;
    uint64_t bytes = m->tokenizer_len;
    int n = model_tensor_list(&cfg, NULL, NULL, 0);
    struct tensor_desc *descs = calloc((size_t)n, sizeof *descs);
    if (!descs) {
        fprintf(stderr, "sparsetf-quantize: out of memory\n");
        model_close(m);
        return 1;
    }
    model_tensor_list(&cfg, NULL, descs, n);
    for (int i = 0; i < n; i++)
        bytes += tensor_desc_bytes(&descs[i]);
    free(descs);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < bytes + (1u << 20)) {
        fprintf(stderr, "sparsetf-quantize: %s needs %.2f GB but %s has %.2f GB free\n", out,
                (double)bytes / 1e9, dir, (double)vfs.f_bavail * vfs.f_frsize / 1e9);
        model_close(m);
        return 1;
    }
    char generator[512];
    snprintf(generator, sizeof generator, "sparsetf-quantize %s --type q8 of (%s)", PROJECT_VERSION,
             m->generator);
    struct source src = {.m = m};
    struct progress prog;
    progress_begin(&prog, "quantising");
    struct model_write_opts wo = {.name = m->name,
                                  .generator = generator,
                                  .tokenizer = m->tokenizer,
                                  .tokenizer_len = m->tokenizer_len,
                                  .fill = fill_from_source,
                                  .fill_ctx = &src,
                                  .progress = progress_update,
                                  .progress_ctx = &prog};
    enum stf_status st = model_write(out, &cfg, &wo, &err);
    model_close(m);
    if (st) {
        fprintf(stderr, "\nsparsetf-quantize: %s\n", err.msg);
        return 1;
    }
    progress_end(&prog, bytes);
    fprintf(stderr, "wrote %s: q8, %.3f GB\n", out, (double)bytes / 1e9);
    return 0;
}

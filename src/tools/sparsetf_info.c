/*
 * sparsetf-info: what a model file holds, without running it — its config, every tensor
 * (name, shape, dtype, bytes), the embedded tokenizer, and the memory each rank of a pipeline
 * would need (the plan sparsetf-dist would make). Opens the file as sparsetf-dist does (the
 * tensors are mapped lazily, not read), so a file that would not load is reported.
 *   sparsetf-info MODEL.stf [--ranks N] [--ctx N] [--slots N] [--no-tensors]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "model/model_file.h"
#include "model/weights.h"
#include "pipeline/plan.h"
#include "tokenizer/tokenizer.h"
#include "util/dtype.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: sparsetf-info MODEL [--ranks N] [--ctx N] [--slots N] [--no-tensors]\n"
               "\n"
               "Prints a sparsetf model file's config, its tensors (name, shape, dtype, bytes),\n"
               "its embedded tokenizer and the per-rank memory plan for N ranks (default: 1 to 4\n"
               "ranks, at most one per layer plus rank 0).\n"
               "\n"
               "  --ranks N      plan for N ranks only\n"
               "  --ctx N        cache positions per slot for the plan (default max_seq_len)\n"
               "  --slots N      cache slots per rank for the plan (default 1)\n"
               "  --no-tensors   leave out the tensor table\n"
               "  -h, --help     this text;  --version  the version\n");
}

static int parse_u32(const char *opt, const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v == 0 || v > 1000000) {
        fprintf(stderr, "sparsetf-info: %s expects a whole number >= 1, got `%s`\n", opt, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static void print_tensors(const struct model_config *cfg)
{
    int n = model_tensor_list(cfg, NULL, NULL, 0);
    struct tensor_desc *d = calloc((size_t)(n > 0 ? n : 1), sizeof *d);
    if (!d) return;
    model_tensor_list(cfg, NULL, d, n);
    printf("\ntensors (%d):\n  %-34s %-26s %-6s %14s\n", n, "name", "shape", "dtype", "bytes");
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        char shape[64] = "";
        size_t at = 0;
        for (int k = 0; k < d[i].rank && at < sizeof shape; k++)
            at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%" PRIu64, k ? " x " : "",
                                   d[i].shape[k]);
        uint64_t bytes = tensor_desc_bytes(&d[i]);
        total += bytes;
        printf("  %-34s %-26s %-6s %14" PRIu64 "\n", d[i].name, shape, stf_dtype_name(d[i].dtype),
               bytes);
    }
    printf("  %-34s %-26s %-6s %14" PRIu64 "\n", "total", "", "", total);
    free(d);
}

static void print_tokenizer(const char *path)
{
    /* the whole file is opened (mapped lazily): its tensor table is checked against the
     * config, so the table printed above is what the file holds */
    struct model *m = NULL;
    struct stf_error err = {0};
    printf("\ntokenizer: ");
    if (model_open(path, NULL, 0, &m, &err)) {
        printf("(the file does not open: %s)\n", err.msg);
        return;
    }
    if (!m->tokenizer || !m->tokenizer_len) {
        printf("none embedded (prompts as token ids; sparsetf-gen --tokenizer embeds one)\n");
    } else {
        struct tokenizer *tok = NULL;
        char what[512];
        snprintf(what, sizeof what, "%s: tokenizer", path);
        if (tokenizer_open_bytes(m->tokenizer, m->tokenizer_len, what, &tok, &err))
            printf("embedded but unreadable: %s\n", err.msg);
        else
            printf("SentencePiece %s, %d pieces, %zu bytes; unk %d, bos %d, eos %d\n",
                   tokenizer_model_name(tok), tokenizer_piece_count(tok), m->tokenizer_len,
                   tokenizer_unk_id(tok), tokenizer_bos_id(tok), tokenizer_eos_id(tok));
        tokenizer_close(tok);
    }
    if (m->name[0] || m->generator[0])
        printf("name: %s\ngenerator: %s\n", m->name[0] ? m->name : "-",
               m->generator[0] ? m->generator : "-");
    model_close(m);
}

int main(int argc, char **argv)
{
    uint32_t ranks = 0, ctx = 0, slots = 1;
    int tensors = 1;
    static const struct option opts[] = {{"ranks", required_argument, 0, 'r'},
                                         {"ctx", required_argument, 0, 'c'},
                                         {"slots", required_argument, 0, 's'},
                                         {"no-tensors", no_argument, 0, 'T'},
                                         {"version", no_argument, 0, 'V'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'r':
            if (parse_u32("--ranks", optarg, &ranks)) return 2;
            break;
        case 'c':
            if (parse_u32("--ctx", optarg, &ctx)) return 2;
            break;
        case 's':
            if (parse_u32("--slots", optarg, &slots)) return 2;
            break;
        case 'T':
            tensors = 0;
            break;
        case 'V':
            printf("sparsetf-info %s\n", PROJECT_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "sparsetf-info: option `%s` needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "sparsetf-info: unknown option `%s` (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "sparsetf-info: give one model file (see --help)\n");
        return 2;
    }
    const char *path = argv[optind];
    struct model_config cfg;
    struct stf_error err = {0};
    if (model_read_config(path, &cfg, &err)) {
        fprintf(stderr, "sparsetf-info: %s\n", err.msg);
        return 1;
    }
    if (ctx > cfg.max_seq_len) {
        fprintf(stderr, "sparsetf-info: --ctx %u exceeds the model's max_seq_len %u\n", ctx,
                cfg.max_seq_len);
        return 2;
    }
    char text[4096];
    model_config_format(&cfg, text, sizeof text);
    printf("model: %s\n\nconfig:\n", path);
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        printf("  %s\n", line);
    if (tensors) print_tensors(&cfg);
    print_tokenizer(path);
    uint32_t first = ranks ? ranks : 1, last = ranks ? ranks : cfg.n_layers + 1;
    if (!ranks && last > 4) last = 4;
    for (uint32_t n = first; n <= last; n++) {
        struct dist_plan plan;
        uint32_t cap = ctx ? ctx : cfg.max_seq_len;
        if (plan_make(&cfg, n, 0, slots, cap, cap < 32 ? cap : 32, PLAN_BALANCE_MEMORY, &plan,
                      &err)) {
            fprintf(stderr, "sparsetf-info: %s\n", err.msg);
            return ranks ? 2 : 1;
        }
        printf("\n");
        plan_print(stdout, &plan, path);
        plan_free(&plan);
    }
    return 0;
}

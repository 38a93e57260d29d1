/*
 * sparsetf-gen: writes a model file with deterministic random weights from a preset or a
 * config file, streaming to disk (a 68 GB model never sits in memory).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "model/config.h"
#include "model/init.h"
#include "model/model_file.h"
#include "tokenizer/tokenizer.h"
#include "util/progress.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: sparsetf-gen (--preset NAME | --config FILE | both) --out FILE [options]\n"
               "\n"
               "Writes a sparsetf model file with deterministic random weights.\n"
               "\n"
               "  --preset NAME      start from a named config (see --list-presets)\n"
               "  --config FILE      `key = value` lines; applied over --preset if both are given\n"
               "  --seed S           random seed (default 1); same seed, same bytes\n"
               "  --layers K         write only the first K layers (a slice for benchmarks)\n"
               "  --dtype f32|q8     weight storage (default f32; same as `weights = q8` in a\n"
               "                     config): q8 = int8 blocks, see docs/file-format.md\n"
               "  --tokenizer FILE   embed a SentencePiece .model file\n"
               "  --out FILE         output path (written as FILE.partial, then renamed)\n"
               "  --list-presets     print the presets and exit\n"
               "  --print-config     print the resulting config and exit without writing\n"
               "  -h, --help         this text\n");
}

static char *read_text_file(const char *path, size_t *len, struct stf_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        stf_fail(err, STF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        stf_fail(err, STF_ERR_IO, "%s: cannot read", path);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static uint64_t parse_u64(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, "sparsetf-gen: %s expects a non-negative integer, got `%s`\n", opt, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *preset = NULL, *config_path = NULL, *out = NULL, *tok_path = NULL, *dtype = NULL;
    uint64_t seed = 1, layers = 0;
    int print_config = 0;
    static const struct option opts[] = {
        {"preset", required_argument, 0, 'p'}, {"config", required_argument, 0, 'c'},
        {"seed", required_argument, 0, 's'},   {"layers", required_argument, 0, 'l'},
        {"out", required_argument, 0, 'o'},    {"tokenizer", required_argument, 0, 't'},
        {"list-presets", no_argument, 0, 'L'}, {"print-config", no_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},         {"version", no_argument, 0, 'V'},
        {"dtype", required_argument, 0, 'd'},  {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            preset = optarg;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 's':
            seed = parse_u64("--seed", optarg);
            break;
        case 'l':
            layers = parse_u64("--layers", optarg);
            break;
        case 'o':
            out = optarg;
            break;
        case 'd':
            dtype = optarg;
            if (strcmp(dtype, "f32") && strcmp(dtype, "q8")) {
                fprintf(stderr, "sparsetf-gen: --dtype `%s`: expected f32 or q8\n", dtype);
                return 2;
            }
            break;
        case 't':
            tok_path = optarg;
            break;
        case 'P':
            print_config = 1;
            break;
        case 'L': {
            const char *desc;
            for (int i = 0; model_preset_name(i, &desc); i++)
                printf("%-18s %s\n", model_preset_name(i, NULL), desc);
            return 0;
        }
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("sparsetf-gen %s\n", PROJECT_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sparsetf-gen: unexpected argument `%s`\n", argv[optind]);
        return 2;
    }
    if (!preset && !config_path) {
        fprintf(stderr, "sparsetf-gen: give --preset NAME or --config FILE (see --help)\n");
        return 2;
    }
    struct stf_error err = {0};
    struct model_config cfg = {0};
    if (preset) {
        const char *text = model_preset_text(preset);
        if (!text) {
            fprintf(stderr, "sparsetf-gen: unknown preset `%s`; --list-presets shows them\n",
                    preset);
            return 2;
        }
        char what[96];
        snprintf(what, sizeof what, "preset %s", preset);
        if (model_config_parse(&cfg, text, what, &err)) {
            fprintf(stderr, "sparsetf-gen: %s\n", err.msg);
            return 1;
        }
    }
    if (config_path) {
        char *text = read_text_file(config_path, NULL, &err);
        if (!text || model_config_parse(&cfg, text, config_path, &err)) {
            free(text);
            fprintf(stderr, "sparsetf-gen: %s\n", err.msg);
            return 1;
        }
        free(text);
    }
    if (dtype) cfg.weights = strcmp(dtype, "q8") == 0 ? WEIGHTS_Q8 : WEIGHTS_F32;
    if (layers) {
        if (layers > cfg.n_layers) {
            fprintf(stderr, "sparsetf-gen: --layers %" PRIu64 " exceeds the config's %u layers\n",
                    layers, cfg.n_layers);
            return 2;
        }
        cfg.n_layers = (uint32_t)layers;
    }
    if (model_config_validate(&cfg, &err)) {
        fprintf(stderr, "sparsetf-gen: %s%s%s\n", preset ? preset : "", config_path ? " " : "",
                err.msg);
        return 1;
    }
    if (print_config) {
        char buf[2048];
        model_config_format(&cfg, buf, sizeof buf);
        fputs(buf, stdout);
        return 0;
    }
    if (!out) {
        fprintf(stderr, "sparsetf-gen: --out FILE is required\n");
        return 2;
    }
    size_t tok_len = 0;
    char *tok = NULL;
    if (tok_path && !(tok = read_text_file(tok_path, &tok_len, &err))) {
        fprintf(stderr, "sparsetf-gen: %s\n", err.msg);
        return 1;
    }
    /* the tokenizer must be one, before anything is written (not found at first use) */
    if (tok) {
        struct tokenizer *check = NULL;
        if (tokenizer_open_bytes(tok, tok_len, tok_path, &check, &err)) {
            fprintf(stderr, "sparsetf-gen: --tokenizer %s is not a SentencePiece model: %s\n",
                    tok_path, err.msg);
            free(tok);
            return 2;
        }
        int pieces = tokenizer_piece_count(check);
        tokenizer_close(check);
        if (pieces < 0 || (uint32_t)pieces > cfg.vocab_size) {
            fprintf(stderr,
                    "sparsetf-gen: --tokenizer %s has %d pieces but the model's vocab_size is "
                    "%u: its ids would not fit (set vocab_size = %d in --config)\n",
                    tok_path, pieces, cfg.vocab_size, pieces);
            free(tok);
            return 2;
        }
    }
    /* Size check up front: a 68 GB write should not fail at 90%. */
    uint64_t bytes = tok_len, params = 0;
    int n = model_tensor_list(&cfg, NULL, NULL, 0);
    struct tensor_desc *descs = calloc((size_t)n, sizeof *descs);
    if (!descs) {
        fprintf(stderr, "sparsetf-gen: out of memory\n");
        return 1;
    }
    model_tensor_list(&cfg, NULL, descs, n);
    for (int i = 0; i < n; i++) {
        bytes += tensor_desc_bytes(&descs[i]);
        params += tensor_desc_elements(&descs[i]);
    }
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
        fprintf(stderr, "sparsetf-gen: %s needs %.2f GB but %s has %.2f GB free\n", out,
                (double)bytes / 1e9, dir, (double)vfs.f_bavail * vfs.f_frsize / 1e9);
        free(tok);
        return 1;
    }
    char generator[256];
    snprintf(generator, sizeof generator, "sparsetf-gen %s seed=%" PRIu64 " preset=%s%s%s",
             PROJECT_VERSION, seed, preset ? preset : "-", config_path ? " config=" : "",
             config_path ? config_path : "");
    struct model_init ini;
    model_init_begin(&ini, seed);
    struct progress prog;
    progress_begin(&prog, "writing");
    struct model_write_opts wo = {.name = preset ? preset : config_path,
                                  .generator = generator,
                                  .tokenizer = tok,
                                  .tokenizer_len = tok_len,
                                  .fill = model_init_fill,
                                  .fill_ctx = &ini,
                                  .progress = progress_update,
                                  .progress_ctx = &prog};
    enum stf_status st = model_write(out, &cfg, &wo, &err);
    free(tok);
    if (st) {
        fprintf(stderr, "\nsparsetf-gen: %s\n", err.msg);
        return 1;
    }
    progress_end(&prog, bytes);
    fprintf(stderr, "wrote %s: %u layers, %.3f GB, %.1f M parameters\n", out, cfg.n_layers,
            (double)bytes / 1e9, (double)params / 1e6);
    return 0;
}

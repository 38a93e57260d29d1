#include "model/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One table describes every key: its name and where it lives, so parse and format agree. */
enum key_type { KEY_U32, KEY_ENUM };

struct config_key {
    const char *name;
    size_t offset;
    enum key_type type;
    const char *const *choices; /* for KEY_ENUM: names indexed by value, NULL-terminated */
};

static const char *const arch_names[] = {"scaling", "terraformer", NULL};
static const char *const ff_names[] = {"dense", "sparse", NULL};
static const char *const attn_names[] = {"dense", "sparse_qkv", "lsh", NULL};
static const char *const out_names[] = {"dense", "multiplicative", NULL};

#define U32_KEY(field)                                                                             \
    {                                                                                              \
#field, offsetof(struct model_config, field), KEY_U32, NULL                                \
    }
static const struct config_key config_keys[] = {
    {"arch", offsetof(struct model_config, arch), KEY_ENUM, arch_names},
    U32_KEY(d_model),
    U32_KEY(n_heads),
    U32_KEY(n_layers),
    U32_KEY(d_ff),
    U32_KEY(vocab_size),
    U32_KEY(max_seq_len),
    {"ff", offsetof(struct model_config, ff), KEY_ENUM, ff_names},
    U32_KEY(ff_block),
    U32_KEY(ff_rank),
    {"attn", offsetof(struct model_config, attn), KEY_ENUM, attn_names},
    U32_KEY(qkv_modules),
    {"out", offsetof(struct model_config, out), KEY_ENUM, out_names},
    U32_KEY(out_modules),
    U32_KEY(sru_units),
    U32_KEY(bos_id),
    U32_KEY(eos_id),
};
#define N_KEYS (sizeof config_keys / sizeof config_keys[0])

_Static_assert(sizeof(enum ff_kind) == sizeof(uint32_t), "enum fields are stored as 32 bits");

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

enum stf_status model_config_parse(struct model_config *cfg, const char *text, const char *what,
                                   struct stf_error *err)
{
    char line[256];
    int lineno = 0;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        if (len >= sizeof line)
            return stf_fail(err, STF_ERR_FORMAT, "%s:%d: line too long", what, lineno);
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl ? 1 : 0);
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq)
            return stf_fail(err, STF_ERR_FORMAT, "%s:%d: expected `key = value`, got `%s`", what,
                            lineno, s);
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        const struct config_key *k = NULL;
        for (size_t i = 0; i < N_KEYS; i++)
            if (strcmp(config_keys[i].name, key) == 0) k = &config_keys[i];
        if (!k) return stf_fail(err, STF_ERR_FORMAT, "%s:%d: unknown key `%s`", what, lineno, key);
        uint32_t *field = (uint32_t *)((char *)cfg + k->offset);
        if (k->type == KEY_U32) {
            char *end;
            errno = 0;
            unsigned long v = strtoul(val, &end, 10);
            if (errno || end == val || *end || v > 0xffffffffUL || val[0] == '-')
                return stf_fail(err, STF_ERR_FORMAT,
                                "%s:%d: `%s` must be a non-negative integer, got `%s`", what,
                                lineno, key, val);
            *field = (uint32_t)v;
        } else {
            int found = -1;
            for (int c = 0; k->choices[c]; c++)
                if (strcmp(k->choices[c], val) == 0) found = c;
            if (found < 0) {
                char opts[128] = "";
                for (int c = 0; k->choices[c]; c++) {
                    strncat(opts, c ? ", " : "", sizeof opts - strlen(opts) - 1);
                    strncat(opts, k->choices[c], sizeof opts - strlen(opts) - 1);
                }
                return stf_fail(err, STF_ERR_FORMAT, "%s:%d: `%s` must be one of %s, got `%s`",
                                what, lineno, key, opts, val);
            }
            *field = (uint32_t)found;
        }
    }
    return STF_OK;
}

int model_config_format(const struct model_config *cfg, char *buf, size_t size)
{
    size_t used = 0;
    int total = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct config_key *k = &config_keys[i];
        uint32_t v = *(const uint32_t *)((const char *)cfg + k->offset);
        int n;
        if (k->type == KEY_U32)
            n = snprintf(buf + used, used < size ? size - used : 0, "%s = %u\n", k->name, v);
        else
            n = snprintf(buf + used, used < size ? size - used : 0, "%s = %s\n", k->name,
                         k->choices[v]);
        total += n;
        used += (size_t)n;
    }
    return total;
}

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) return stf_fail(err, STF_ERR_FORMAT, __VA_ARGS__);                            \
    } while (0)

enum stf_status model_config_validate(const struct model_config *c, struct stf_error *err)
{
    REQUIRE(c->arch == ARCH_SCALING, "config: arch `terraformer` is not supported yet");
    REQUIRE(c->d_model > 0 && c->d_model <= (1u << 20),
            "config: d_model must be in 1..2^20, got %u", c->d_model);
    REQUIRE(c->n_heads > 0 && c->d_model % c->n_heads == 0,
            "config: n_heads (%u) must divide d_model (%u)", c->n_heads, c->d_model);
    REQUIRE(c->n_layers > 0 && c->n_layers <= 4096, "config: n_layers must be in 1..4096, got %u",
            c->n_layers);
    REQUIRE(c->d_ff > 0, "config: d_ff must be positive");
    REQUIRE(c->vocab_size >= 2, "config: vocab_size must be at least 2, got %u", c->vocab_size);
    REQUIRE(c->max_seq_len > 0 && c->max_seq_len <= (1u << 20),
            "config: max_seq_len must be in 1..2^20, got %u", c->max_seq_len);
    REQUIRE(c->ff <= FF_SPARSE, "config: ff kind %u unknown", (unsigned)c->ff);
    if (c->ff == FF_SPARSE) {
        REQUIRE(c->ff_block > 0 && c->d_ff % c->ff_block == 0,
                "config: ff_block (%u) must divide d_ff (%u)", c->ff_block, c->d_ff);
        REQUIRE(c->ff_rank > 0, "config: sparse FF needs ff_rank > 0");
    }
    REQUIRE(c->attn <= ATTN_LSH, "config: attn kind %u unknown", (unsigned)c->attn);
    REQUIRE(c->attn != ATTN_LSH, "config: attn `lsh` is not supported yet");
    if (c->attn == ATTN_SPARSE_QKV)
        REQUIRE(c->qkv_modules > 0 && c->d_model % c->qkv_modules == 0,
                "config: qkv_modules (%u) must divide d_model (%u)", c->qkv_modules, c->d_model);
    REQUIRE(c->out <= OUT_MULT, "config: out kind %u unknown", (unsigned)c->out);
    if (c->out == OUT_MULT)
        REQUIRE(c->out_modules > 0 && c->vocab_size % c->out_modules == 0,
                "config: out_modules (%u) must divide vocab_size (%u)", c->out_modules,
                c->vocab_size);
    REQUIRE(c->bos_id < c->vocab_size, "config: bos_id (%u) must be below vocab_size (%u)",
            c->bos_id, c->vocab_size);
    REQUIRE(c->eos_id < c->vocab_size, "config: eos_id (%u) must be below vocab_size (%u)",
            c->eos_id, c->vocab_size);
    return STF_OK;
}

uint64_t model_config_layer_read_bytes(const struct model_config *c)
{
    uint64_t d = c->d_model, F = c->d_ff, n = 0;
    if (c->attn == ATTN_DENSE) {
        n += 4 * (d * d + d);
    } else {
        uint64_t S = c->qkv_modules, M = d / S;
        n += S * d + d * M + d;                   /* multiplicative layer */
        n += 2 * (9 * M * M + M) + 3 * M * M + M; /* conv q, k (3x3) and v (3x1) */
    }
    n += 4 * d; /* two layer norms */
    if (c->ff == FF_DENSE) {
        n += 2 * d * F + F + d;
    } else {
        uint64_t r = c->ff_rank, B = F / c->ff_block;
        n += d * r + r * F + F; /* controller */
        n += 2 * B * d + d;     /* B rows of W1^T and of W2, and b2 */
    }
    if (c->sru_units) {
        uint64_t u = c->sru_units;
        n += 2 * d + d * u + u + 3 * u * u + 3 * u + u * d + d;
    }
    return 4 * n;
}

uint64_t model_config_layer_macs(const struct model_config *c)
{
    uint64_t d = c->d_model, F = c->d_ff, n = 0;
    if (c->attn == ATTN_DENSE) {
        n += 4 * d * d;
    } else {
        uint64_t M = d / c->qkv_modules;
        n += d * d;               /* multiplicative layer: S x (d x M) */
        n += d * M * (9 + 9 + 3); /* convolutions: S x (Kt Km M) x M each */
    }
    if (c->ff == FF_DENSE)
        n += 2 * d * F;
    else
        n += d * c->ff_rank + (uint64_t)c->ff_rank * F + 2 * (F / c->ff_block) * d;
    if (c->sru_units) {
        uint64_t u = c->sru_units;
        n += 2 * d * u + 3 * u * u;
    }
    return n;
}

uint64_t model_config_head_macs(const struct model_config *c)
{
    return (uint64_t)c->d_model * c->vocab_size; /* dense, or S_out x (d x V/S_out) */
}

uint64_t model_config_head_read_bytes(const struct model_config *c)
{
    uint64_t d = c->d_model, V = c->vocab_size;
    if (c->out == OUT_DENSE) return 4 * (d * V + V + 2 * d);
    return 4 * (c->out_modules * d + d * (V / c->out_modules) + V + 2 * d);
}

struct preset {
    const char *name;
    const char *description;
    const char *text;
};

#define TINY_BASE                                                                                  \
    "d_model = 64\nn_heads = 4\nn_layers = 2\nd_ff = 256\nvocab_size = 512\n"                      \
    "max_seq_len = 128\nff_block = 16\nff_rank = 16\nqkv_modules = 4\nout_modules = 4\n"           \
    "bos_id = 1\neos_id = 2\n"

static const struct preset presets[] = {
    {"800m-dense", "SPEC §5 baseline, d=1024, 24 layers, dense FF/QKV/output",
     "d_model = 1024\nn_heads = 16\nn_layers = 24\nd_ff = 4096\nvocab_size = 32000\n"
     "max_seq_len = 1024\nff = dense\nattn = dense\nout = dense\nbos_id = 1\neos_id = 2\n"},
    {"800m-sparse", "SPEC §5 sparse twin: FF N=64 r=96, QKV S=16, output S_out=4",
     "d_model = 1024\nn_heads = 16\nn_layers = 24\nd_ff = 6144\nvocab_size = 32000\n"
     "max_seq_len = 1024\nff = sparse\nff_block = 64\nff_rank = 96\nattn = sparse_qkv\n"
     "qkv_modules = 16\nout = multiplicative\nout_modules = 4\nbos_id = 1\neos_id = 2\n"},
    {"17b-dense", "SPEC §5 baseline, d=9216, 15 layers, F=40960 (68 GB fp32)",
     "d_model = 9216\nn_heads = 96\nn_layers = 15\nd_ff = 40960\nvocab_size = 32000\n"
     "max_seq_len = 1024\nff = dense\nattn = dense\nout = dense\nbos_id = 1\neos_id = 2\n"},
    {"17b-sparse", "SPEC §5 sparse twin: F=65536 N=256 r=32, QKV S=64, S_out=8",
     "d_model = 9216\nn_heads = 96\nn_layers = 14\nd_ff = 65536\nvocab_size = 32000\n"
     "max_seq_len = 1024\nff = sparse\nff_block = 256\nff_rank = 32\nattn = sparse_qkv\n"
     "qkv_modules = 64\nout = multiplicative\nout_modules = 8\nbos_id = 1\neos_id = 2\n"},
    {"tiny-dense", "test model, d=64, 2 layers, everything dense",
     TINY_BASE "ff = dense\nattn = dense\nout = dense\n"},
    {"tiny-sparse-ff", "test model, sparse FF only",
     TINY_BASE "ff = sparse\nattn = dense\nout = dense\n"},
    {"tiny-sparse-qkv", "test model, sparse QKV only",
     TINY_BASE "ff = dense\nattn = sparse_qkv\nout = dense\n"},
    {"tiny-sparse", "test model, sparse FF + QKV + multiplicative output",
     TINY_BASE "ff = sparse\nattn = sparse_qkv\nout = multiplicative\n"},
    {"tiny-sparse-sru", "test model, all sparse plus an SRU branch of 32 units",
     TINY_BASE "ff = sparse\nattn = sparse_qkv\nout = multiplicative\nsru_units = 32\n"},
    {"small-sparse", "d=256, 4 layers, all sparse with SRU: a quick demo model",
     "d_model = 256\nn_heads = 8\nn_layers = 4\nd_ff = 1024\nvocab_size = 8000\n"
     "max_seq_len = 512\nff = sparse\nff_block = 32\nff_rank = 32\nattn = sparse_qkv\n"
     "qkv_modules = 8\nout = multiplicative\nout_modules = 4\nsru_units = 64\nbos_id = 1\n"
     "eos_id = 2\n"},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

const char *model_preset_text(const char *name)
{
    for (size_t i = 0; i < N_PRESETS; i++)
        if (strcmp(presets[i].name, name) == 0) return presets[i].text;
    return NULL;
}

const char *model_preset_name(int i, const char **description)
{
    if (i < 0 || (size_t)i >= N_PRESETS) return NULL;
    if (description) *description = presets[i].description;
    return presets[i].name;
}

#include "model/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/layer_kinds.h"

/* The names of each enum field's values, indexed by value (from MODEL_CONFIG_FIELDS). */
#define CHOICE_LIST(...)                                                                           \
    {                                                                                              \
        __VA_ARGS__, NULL                                                                          \
    }
#define DECLARE_CHOICES_U32(name, min, max, comment)
#define DECLARE_CHOICES_ENUM(name, type, choices, comment)                                         \
    static const char *const name##_choices[] = CHOICE_LIST choices;
MODEL_CONFIG_FIELDS(DECLARE_CHOICES_U32, DECLARE_CHOICES_ENUM)

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

static enum stf_status parse_u32(const char *key, const char *val, uint32_t *out, const char *what,
                                 int lineno, struct stf_error *err)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(val, &end, 10);
    if (errno || end == val || *end || v > 0xffffffffUL || val[0] == '-')
        return stf_fail(err, STF_ERR_FORMAT, "%s:%d: `%s` must be a non-negative integer, got `%s`",
                        what, lineno, key, val);
    *out = (uint32_t)v;
    return STF_OK;
}

static enum stf_status parse_choice(const char *key, const char *val, const char *const *choices,
                                    uint32_t *out, const char *what, int lineno,
                                    struct stf_error *err)
{
    for (uint32_t c = 0; choices[c]; c++)
        if (strcmp(choices[c], val) == 0) {
            *out = c;
            return STF_OK;
        }
    char opts[128] = "";
    for (int c = 0; choices[c]; c++) {
        strncat(opts, c ? ", " : "", sizeof opts - strlen(opts) - 1);
        strncat(opts, choices[c], sizeof opts - strlen(opts) - 1);
    }
    return stf_fail(err, STF_ERR_FORMAT, "%s:%d: `%s` must be one of %s, got `%s`", what, lineno,
                    key, opts, val);
}

/* Sets the field named key from val (*st says how that went); returns 1 if no field has it. */
static int config_set(struct model_config *cfg, const char *key, const char *val, const char *what,
                      int lineno, enum stf_status *st, struct stf_error *err)
{
    uint32_t v = 0;
#define SET_U32(name, min, max, comment)                                                           \
    if (strcmp(key, #name) == 0) {                                                                 \
        if (!(*st = parse_u32(key, val, &v, what, lineno, err))) cfg->name = v;                    \
        return 0;                                                                                  \
    }
#define SET_ENUM(name, type, choices, comment)                                                     \
    if (strcmp(key, #name) == 0) {                                                                 \
        if (!(*st = parse_choice(key, val, name##_choices, &v, what, lineno, err)))                \
            cfg->name = (type)v;                                                                   \
        return 0;                                                                                  \
    }
    MODEL_CONFIG_FIELDS(SET_U32, SET_ENUM)
#undef SET_U32
#undef SET_ENUM
    return 1;
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
        enum stf_status st = STF_OK;
        if (config_set(cfg, key, val, what, lineno, &st, err))
            return stf_fail(err, STF_ERR_FORMAT, "%s:%d: unknown key `%s`", what, lineno, key);
        if (st) return st;
    }
    return STF_OK;
}

/* The name of an enum value, or "?" when it is out of range (format never reads past the
 * table; validate reports such a value). */
static const char *choice_name(const char *const *choices, uint32_t v)
{
    for (uint32_t c = 0; choices[c]; c++)
        if (c == v) return choices[c];
    return "?";
}

const char *model_config_choice_name(const char *field, uint32_t v)
{
#define NAME_U32(name, min, max, comment)
#define NAME_ENUM(name, type, choices, comment)                                                    \
    if (strcmp(field, #name) == 0) {                                                               \
        const char *s = choice_name(name##_choices, v);                                            \
        return strcmp(s, "?") ? s : NULL;                                                          \
    }
    MODEL_CONFIG_FIELDS(NAME_U32, NAME_ENUM)
#undef NAME_U32
#undef NAME_ENUM
    return NULL;
}

int model_config_format(const struct model_config *cfg, char *buf, size_t size)
{
    size_t used = 0;
    int total = 0, n;
#define FORMAT_U32(name, min, max, comment)                                                        \
    n = snprintf(buf + used, used < size ? size - used : 0, "%s = %u\n", #name, cfg->name);        \
    total += n;                                                                                    \
    used += (size_t)n;
#define FORMAT_ENUM(name, type, choices, comment)                                                  \
    n = snprintf(buf + used, used < size ? size - used : 0, "%s = %s\n", #name,                    \
                 choice_name(name##_choices, (uint32_t)cfg->name));                                \
    total += n;                                                                                    \
    used += (size_t)n;
    MODEL_CONFIG_FIELDS(FORMAT_U32, FORMAT_ENUM)
#undef FORMAT_U32
#undef FORMAT_ENUM
    return total;
}

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) return stf_fail(err, STF_ERR_FORMAT, __VA_ARGS__);                            \
    } while (0)

static int in_range(uint32_t v, uint32_t min, uint32_t max)
{
    return v >= min && v <= max;
}

/* Each field in its schema range (an enum: one of its names). */
static enum stf_status check_ranges(const struct model_config *c, struct stf_error *err)
{
#define RANGE_U32(name, min, max, comment)                                                         \
    REQUIRE(in_range(c->name, (uint32_t)(min), (uint32_t)(max)),                                   \
            "config: " #name " must be in %u..%u, got %u", (unsigned)(min), (unsigned)(max),       \
            c->name);
#define RANGE_ENUM(name, type, choices, comment)                                                   \
    REQUIRE(strcmp(choice_name(name##_choices, (uint32_t)c->name), "?") != 0,                      \
            "config: " #name " kind %u unknown", (unsigned)c->name);
    MODEL_CONFIG_FIELDS(RANGE_U32, RANGE_ENUM)
#undef RANGE_U32
#undef RANGE_ENUM
    return STF_OK;
}

enum stf_status model_config_validate(const struct model_config *c, struct stf_error *err)
{
    enum stf_status st = check_ranges(c, err);
    if (st) return st;
    REQUIRE(c->d_model % c->n_heads == 0, "config: n_heads (%u) must divide d_model (%u)",
            c->n_heads, c->d_model);
    REQUIRE(c->bos_id < c->vocab_size, "config: bos_id (%u) must be below vocab_size (%u)",
            c->bos_id, c->vocab_size);
    REQUIRE(c->eos_id < c->vocab_size, "config: eos_id (%u) must be below vocab_size (%u)",
            c->eos_id, c->vocab_size);
    /* the kinds: known, supported, and their own fields sound */
    struct layer_kinds kinds;
    return layer_kinds_pick(c, &kinds, err);
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
    {"tiny-terraformer",
     "test model: reversible blocks, sparse FF/QKV, SRU 16, LSH in Attn2 (C=16, P=24, D=8)",
     TINY_BASE "arch = terraformer\nff = sparse\nattn = sparse_qkv\nout = multiplicative\n"
               "sru_units = 16\nlsh_period = 2\nlsh_phase = 1\nlsh_n_hashes = 2\n"
               "lsh_n_buckets = 4\nlsh_chunk_len = 4\nlsh_chunks_before = 1\n"
               "lsh_cache_len = 24\nlsh_drop_len = 8\n"},
    {"small-terraformer",
     "the trained Terraformer's shape: d=192, 4 blocks, LSH in Attn2 (C=128, P=192, D=64)",
     "arch = terraformer\nd_model = 192\nn_heads = 4\nn_layers = 4\nd_ff = 1344\n"
     "vocab_size = 8000\nmax_seq_len = 256\nff = sparse\nff_block = 32\nff_rank = 16\n"
     "attn = sparse_qkv\nqkv_modules = 4\nout = multiplicative\nout_modules = 4\n"
     "sru_units = 32\nlsh_period = 2\nlsh_phase = 1\nlsh_n_hashes = 2\nlsh_n_buckets = 8\n"
     "lsh_chunk_len = 32\nlsh_chunks_before = 1\nlsh_cache_len = 192\nlsh_drop_len = 64\n"
     "bos_id = 1\neos_id = 2\n"},
    {"800m-terraformer",
     "800m-sparse as reversible blocks + SRU 256, LSH everywhere (C=512, P=2048, D=1024), T=16k",
     "arch = terraformer\nd_model = 1024\nn_heads = 16\nn_layers = 24\nd_ff = 6144\n"
     "vocab_size = 32000\nmax_seq_len = 16384\nff = sparse\nff_block = 64\nff_rank = 96\n"
     "attn = sparse_qkv\nqkv_modules = 16\nout = multiplicative\nout_modules = 4\n"
     "sru_units = 256\nlsh_period = 1\nlsh_phase = 0\nlsh_n_hashes = 2\n"
     "lsh_n_buckets = 64\nlsh_chunk_len = 128\nlsh_chunks_before = 1\nlsh_cache_len = 2048\n"
     "lsh_drop_len = 1024\nbos_id = 1\neos_id = 2\n"},
    {"17b-terraformer",
     "17b-sparse as reversible blocks + SRU 1024, LSH everywhere (C=512, P=2048, D=1024), T=16k",
     "arch = terraformer\nd_model = 9216\nn_heads = 96\nn_layers = 14\nd_ff = 65536\n"
     "vocab_size = 32000\nmax_seq_len = 16384\nff = sparse\nff_block = 256\nff_rank = 32\n"
     "attn = sparse_qkv\nqkv_modules = 64\nout = multiplicative\nout_modules = 8\n"
     "sru_units = 1024\nlsh_period = 1\nlsh_phase = 0\nlsh_n_hashes = 2\n"
     "lsh_n_buckets = 64\nlsh_chunk_len = 128\nlsh_chunks_before = 1\nlsh_cache_len = 2048\n"
     "lsh_drop_len = 1024\nbos_id = 1\neos_id = 2\n"},
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

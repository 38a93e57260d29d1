/*
 * config: the blueprint of a model (SPEC §3, §5) — sizes and which variant of each
 * sub-layer is used. Plain data: no weights, no allocation.
 *
 * A config can be written as text, one `key = value` per line (`#` starts a comment);
 * the generator's presets are such texts, and `sparsetf-gen --config FILE` reads one.
 */
#ifndef STF_MODEL_CONFIG_H
#define STF_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

enum model_arch { ARCH_SCALING = 0, ARCH_TERRAFORMER = 1 };
enum ff_kind { FF_DENSE = 0, FF_SPARSE = 1 };
enum attn_kind { ATTN_DENSE = 0, ATTN_SPARSE_QKV = 1, ATTN_LSH = 2 };
enum out_kind { OUT_DENSE = 0, OUT_MULT = 1 };

struct model_config {
    enum model_arch arch;
    uint32_t d_model; /* d */
    uint32_t n_heads; /* H; head size dh = d / H */
    uint32_t n_layers;
    uint32_t d_ff;        /* F */
    uint32_t vocab_size;  /* V */
    uint32_t max_seq_len; /* T: rows of the positional table, capacity of a KV cache */
    enum ff_kind ff;
    uint32_t ff_block; /* N: units per block; B = F / N blocks */
    uint32_t ff_rank;  /* r: controller rank */
    enum attn_kind attn;
    uint32_t qkv_modules; /* S; M = d / S */
    enum out_kind out;
    uint32_t out_modules; /* S_out; V % S_out == 0 */
    uint32_t sru_units;   /* n; 0 = no SRU branch */
    uint32_t bos_id;
    uint32_t eos_id;
};

/* Checks every size and divisibility rule; the message names the field. */
enum stf_status model_config_validate(const struct model_config *cfg, struct stf_error *err);

/* Parses `key = value` text over *cfg (fields not named keep their value). `what` names the
 * source in messages (a file name or "preset 17b-sparse"). */
enum stf_status model_config_parse(struct model_config *cfg, const char *text, const char *what,
                                   struct stf_error *err);

/* Writes cfg as `key = value` text; returns the length snprintf would write. */
int model_config_format(const struct model_config *cfg, char *buf, size_t size);

/* Named presets (SPEC §5 and small ones for tests). Returns the preset's text or NULL. */
const char *model_preset_text(const char *name);
/* The i-th preset name and one-line description; NULL past the end. */
const char *model_preset_name(int i, const char **description);

/* Per-token weights a decoder reads per layer (bytes, fp32), following SPEC §5's counting:
 * all weights of the attention and FF sub-layers that one token touches. */
uint64_t model_config_layer_read_bytes(const struct model_config *cfg);

/* Multiply-adds per token of one layer (attention over the cache not counted), of the output
 * layer, and the weight bytes the output layer reads per token. With the read bytes these
 * give a per-token time estimate: bytes / bandwidth + 2 * macs / flops. */
uint64_t model_config_layer_macs(const struct model_config *cfg);
uint64_t model_config_head_macs(const struct model_config *cfg);
uint64_t model_config_head_read_bytes(const struct model_config *cfg);

static inline uint32_t model_head_dim(const struct model_config *c)
{
    return c->d_model / c->n_heads;
}

#endif

/*
 * config: the blueprint of a model (SPEC §3, §5) — sizes and which variant of each
 * sub-layer is used. Plain data: no weights, no allocation.
 *
 * A config can be written as text, one `key = value` per line (`#` starts a comment);
 * the generator's presets are such texts, and `sparsetf-gen --config FILE` reads one.
 *
 * The schema is MODEL_CONFIG_FIELDS below: it declares struct model_config and drives the
 * text parser and formatter, the range checks and the model file's protobuf conversion
 * (model_file.c). A new field is one line there plus its field in proto/model.proto (same
 * name). Which tensors, state and forward step a kind means is src/model/layer_kinds.h.
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
enum weight_type { WEIGHTS_F32 = 0, WEIGHTS_Q8 = 1 };

/* One row per field, in text and struct order:
 *   U32(name, min, max, comment)          an unsigned 32-bit size, checked to lie in min..max
 *   ENUM(name, type, (names...), comment) a choice, written as one of names (index = value)
 * Rules between fields (divisibility, ids below vocab_size) are in model_config_validate;
 * rules of one kind (ff_block for the sparse FF...) are in that kind's file. */
#define MODEL_CONFIG_FIELDS(U32, ENUM)                                                             \
    ENUM(arch, enum model_arch, ("scaling", "terraformer"), "SPEC §3 stack")                       \
    U32(d_model, 1, 1u << 20, "d")                                                                 \
    U32(n_heads, 1, 1u << 20, "H; head size dh = d / H")                                           \
    U32(n_layers, 1, 4096, "layers")                                                               \
    U32(d_ff, 1, UINT32_MAX, "F")                                                                  \
    U32(vocab_size, 2, UINT32_MAX, "V")                                                            \
    U32(max_seq_len, 1, 1u << 20, "T: rows of the positional table, capacity of a KV cache")       \
    ENUM(ff, enum ff_kind, ("dense", "sparse"), "SPEC §1 FF kind")                                 \
    U32(ff_block, 0, UINT32_MAX, "N: units per block; B = F / N blocks (sparse FF)")               \
    U32(ff_rank, 0, UINT32_MAX, "r: controller rank (sparse FF)")                                  \
    ENUM(attn, enum attn_kind, ("dense", "sparse_qkv", "lsh"), "SPEC §2 attention kind")           \
    U32(qkv_modules, 0, UINT32_MAX, "S; M = d / S (sparse QKV)")                                   \
    ENUM(out, enum out_kind, ("dense", "multiplicative"), "SPEC §3 output kind")                   \
    U32(out_modules, 0, UINT32_MAX, "S_out; V % S_out == 0 (multiplicative output)")               \
    U32(sru_units, 0, 1u << 20, "n; 0 = no SRU branch")                                            \
    U32(bos_id, 0, UINT32_MAX, "token that starts a sequence")                                     \
    U32(eos_id, 0, UINT32_MAX, "token that ends generation")                                       \
    ENUM(weights, enum weight_type, ("f32", "q8"), "large matrices f32 or q8 (file-format.md)")    \
    U32(lsh_period, 0, 1u << 20, "attention sub-layer l is LSH iff l % period == phase; 0 none")   \
    U32(lsh_phase, 0, 1u << 20, "see lsh_period; l counts 2·block + k in a Terraformer")           \
    U32(lsh_n_hashes, 0, 8, "LSH hash rounds (one byte each in a bucket signature)")               \
    U32(lsh_n_buckets, 0, 256, "LSH buckets per round, even")                                      \
    U32(lsh_chunk_len, 0, 1u << 20, "C = n_hashes * chunk_len * (1 + chunks_before)")              \
    U32(lsh_chunks_before, 0, 1u << 20, "1 for a decoder (Trax), 0 after")                         \
    U32(lsh_cache_len, 0, 1u << 24, "P: entries an LSH cache holds")                               \
    U32(lsh_drop_len, 0, 1u << 24, "D: oldest entries dropped when the cache is full")

#define MODEL_CONFIG_MEMBER_U32(name, min, max, comment)       uint32_t name;
#define MODEL_CONFIG_MEMBER_ENUM(name, type, choices, comment) type name;
struct model_config {
    MODEL_CONFIG_FIELDS(MODEL_CONFIG_MEMBER_U32, MODEL_CONFIG_MEMBER_ENUM)
};
#undef MODEL_CONFIG_MEMBER_U32
#undef MODEL_CONFIG_MEMBER_ENUM

/* Checks every field's range, the rules between fields and those of the chosen kinds (an
 * unknown or unsupported kind is an error); the message names the field. */
enum stf_status model_config_validate(const struct model_config *cfg, struct stf_error *err);

/* Parses `key = value` text over *cfg (fields not named keep their value). `what` names the
 * source in messages (a file name or "preset 17b-sparse"). */
enum stf_status model_config_parse(struct model_config *cfg, const char *text, const char *what,
                                   struct stf_error *err);

/* Writes cfg as `key = value` text; returns the length snprintf would write. */
int model_config_format(const struct model_config *cfg, char *buf, size_t size);

/* The text name of value v of the enum field `field` ("attn", 2 -> "lsh"); NULL if none. */
const char *model_config_choice_name(const char *field, uint32_t v);

/* Named presets (SPEC §5 and small ones for tests). Returns the preset's text or NULL. */
const char *model_preset_text(const char *name);
/* The i-th preset name and one-line description; NULL past the end. */
const char *model_preset_name(int i, const char **description);

static inline uint32_t model_head_dim(const struct model_config *c)
{
    return c->d_model / c->n_heads;
}

/* Residual streams a position carries between layers (and ranks): 2 in the Terraformer's
 * reversible blocks (a, b), 1 otherwise (SPEC §3). */
static inline uint32_t model_streams(const struct model_config *c)
{
    return c->arch == ARCH_TERRAFORMER ? 2u : 1u;
}

/* Attention sub-layers per layer (block): Attn1 and Attn2 in a Terraformer block. */
static inline uint32_t model_attn_per_layer(const struct model_config *c)
{
    return c->arch == ARCH_TERRAFORMER ? 2u : 1u;
}

/* Whether attention sub-layer l (global index: the layer in a Scaling Transformer, 2·block
 * + k in a Terraformer) uses LSH attention (SPEC §2). */
static inline int model_sublayer_is_lsh(const struct model_config *c, uint32_t l)
{
    return c->lsh_period && l % c->lsh_period == c->lsh_phase;
}

/* SPEC §2 cache rule, as rank 0 applies it: before an entry is written into LSH caches that
 * hold `end` entries, the oldest D are dropped when end + 1 > P. Returns 0 or D. */
static inline uint32_t model_lsh_drop_before(const struct model_config *c, uint32_t end)
{
    return end + 1u > c->lsh_cache_len ? c->lsh_drop_len : 0u;
}

/* Entries an LSH cache holds once the token at position pos is written, when the cache
 * started empty at position 0 and rank 0 dropped by model_lsh_drop_before: pos + 1 until
 * the cache is full, then P - D + 1 ... P, over again every D positions. */
static inline uint32_t model_lsh_entries(const struct model_config *c, uint32_t pos)
{
    if (pos < c->lsh_cache_len) return pos + 1;
    return c->lsh_cache_len - c->lsh_drop_len + 1 + (pos - c->lsh_cache_len) % c->lsh_drop_len;
}

/* Attention sub-layers of the model that use LSH. */
static inline uint32_t model_lsh_sublayers(const struct model_config *c)
{
    uint32_t n = 0;
    for (uint32_t l = 0; c->lsh_period && l < c->n_layers * model_attn_per_layer(c); l++)
        n += model_sublayer_is_lsh(c, l) ? 1u : 0u;
    return n;
}

/* C: the entries an LSH query attends to (SPEC §2). */
static inline uint64_t model_lsh_C(const struct model_config *c)
{
    return (uint64_t)c->lsh_n_hashes * c->lsh_chunk_len * (1 + (uint64_t)c->lsh_chunks_before);
}

#endif

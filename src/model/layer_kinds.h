/*
 * layer_kinds: one ops table per sub-layer kind (SPEC §1-§3). Each kind lives in its own
 * file and owns everything about itself:
 *   attention  attn_dense.c (dense Q/K/V/O), attn_sparse_qkv.c (multiplicative + local conv)
 *   FF         ff_dense.c, ff_sparse.c (one unit per block)
 *   output     out_dense.c, out_mult.c (multiplicative, the "sparse loss" layer)
 *   branch     sru.c (the optional SRU branch beside the FF, sru_units > 0)
 * — its tensor list (names, shapes, dtype, initialisation and per-token cost, from which
 * every byte and multiply-add figure of the model is summed), its per-sequence state and
 * scratch sizes, the config rules only it needs, and its forward step. The model picks
 * the kinds once when it opens (layer_kinds_pick, a table indexed by the config's enum); a
 * kind without an entry is an error naming the field. Adding a kind = one file + one table
 * entry in layer_kinds.c.
 */
#ifndef STF_MODEL_LAYER_KINDS_H
#define STF_MODEL_LAYER_KINDS_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "kernels/kernels_q8.h"
#include "model/config.h"
#include "model/tp.h"
#include "model/weights.h"

/* What a kind's forward step works with, besides its input and output vectors. */
struct sublayer_step {
    const struct model_config *cfg;
    const struct kernels *k;
    const struct tensor_view *w; /* the kind's tensors, in the order of its list */
    void *state;                 /* its per-sequence state of this layer (sizes.state_bytes) */
    void *scratch;               /* sizes.scratch_bytes, 64-byte aligned, shared in turn */
    uint32_t capacity;           /* positions the sequence state holds */
    uint32_t pos;                /* position of this token in its sequence, < capacity */
    const struct tp_comm *tp;    /* the stage's tensor-parallel group; NULL: one rank */
};

struct sublayer_sizes {
    uint64_t state_bytes; /* per sequence and layer (KV cache, convolution rows, SRU c) */
    uint64_t reset_bytes; /* the first reset_bytes of the state are zeroed when a sequence
                             starts (recurrent carries); the rest is indexed by position */
    uint64_t scratch_bytes;
};

/* R rows at one step, each of its own sequence (batched decoding across sessions): row r
 * is at position pos[r] of the sequence whose state of this layer is states[r]. */
struct sublayer_rows {
    const struct model_config *cfg;
    const struct kernels *k;
    const struct tensor_view *w; /* the kind's tensors, in the order of its list */
    void *const *states;         /* (rows) per-sequence states of this layer */
    const uint32_t *pos;         /* (rows) positions, each < capacity */
    uint32_t rows;
    uint32_t capacity; /* positions each sequence state holds */
    void *scratch;     /* rows_scratch_bytes(cfg, capacity, rows), 64-byte aligned */
};

struct sublayer_kind {
    const char *name; /* as in the config text, for messages */
    /* Fills out[0..n) with the kind's tensors (names relative to the layer, e.g. "attn.wq";
     * group, layer and slot are left for the caller) and returns n <= KIND_MAX_TENSORS. */
    int (*tensors)(const struct model_config *c, struct tensor_desc *out);
    /* The config fields only this kind reads; the message names the field. */
    enum stf_status (*validate)(const struct model_config *c, struct stf_error *err);
    /* For one of tp tensor-parallel ranks (tp = 1: the whole sub-layer). */
    struct sublayer_sizes (*sizes)(const struct model_config *c, uint32_t capacity, uint32_t tp);
    /* Tensor parallelism (model/tp.h): the count T must divide when T ranks share this kind
     * (its forward then computes the rank's shard, with at most one collective through
     * s->tp); NULL: every rank of a stage computes it whole. */
    uint32_t (*tp_units)(const struct model_config *c);
    /* One token: attention and FF map the normalised x (d) to out (d); the SRU branch maps
     * the residual x (d) to out (d) (it has its own LayerNorm); the output maps the
     * normalised x (d) to logits (V). Allocates nothing, cannot fail. */
    void (*forward)(const struct sublayer_step *s, const float *x, float *out);
    /* The same for s->rows rows: x (rows, d) to out (rows, d or V), each row bitwise what
     * forward gives for it alone (the kernels' *_rows calls, batch-invariant), the dense
     * weights read once for all rows. Allocates nothing, cannot fail. */
    void (*forward_rows)(const struct sublayer_rows *s, const float *x, float *out);
    uint64_t (*rows_scratch_bytes)(const struct model_config *c, uint32_t capacity, uint32_t rows);
    /* Attention kinds only, for LSH attention on their projections (attn_lsh.c): q, k, v (d
     * each) of this token from the normalised x — the sparse QKV kind advances its
     * convolution rows, which lie in the first reset_bytes of its state —, and the output of
     * the merged heads o (dense: o·Wo + bo; sparse QKV: o itself). */
    void (*project)(const struct sublayer_step *s, const float *x, float *q, float *k, float *v);
    void (*output)(const struct sublayer_step *s, const float *o, float *out);
};

/* The kinds of one model, chosen from its config. sru is NULL without an SRU branch;
 * attn_lsh (LSH attention over attn's projections, SPEC §2) is NULL without LSH sub-layers. */
struct layer_kinds {
    const struct sublayer_kind *attn, *ff, *sru, *out, *attn_lsh;
};

/* The kind of attention sub-layer l (global index, model_sublayer_is_lsh). */
static inline const struct sublayer_kind *layer_kinds_attn(const struct layer_kinds *k,
                                                           const struct model_config *c, uint32_t l)
{
    return model_sublayer_is_lsh(c, l) ? k->attn_lsh : k->attn;
}

/* Looks up cfg's kinds and checks their fields; an unknown or not yet supported kind is an
 * error naming the config field. */
enum stf_status layer_kinds_pick(const struct model_config *cfg, struct layer_kinds *out,
                                 struct stf_error *err);

extern const struct sublayer_kind attn_dense, attn_sparse_qkv, attn_lsh_dense, attn_lsh_sparse_qkv;
extern const struct sublayer_kind ff_dense, ff_sparse;
extern const struct sublayer_kind out_dense, out_mult;
extern const struct sublayer_kind sru_branch;

/* The units the last sparse FF step chose (F / N of them), read from its scratch: for
 * inspection and tests. */
const uint32_t *ff_sparse_chosen(const struct model_config *c, const void *scratch);

/* LSH caches (attn_lsh.c), for the stage that checks and applies rank 0's directive
 * (SPEC §2): `state` is one LSH sub-layer's state. */
struct lsh_cache_info {
    uint32_t end;   /* entries held */
    int seeded;     /* a rotation seed was set since the sequence started */
    uint64_t sigma; /* that seed */
};
void attn_lsh_info(const struct model_config *c, const void *state, struct lsh_cache_info *out);
/* Sets the sequence's rotation seed: draws the rotations of sub-layer l (SPEC §2). */
void attn_lsh_seed(const struct model_config *c, void *state, uint64_t sigma, uint32_t l);
/* Drops the oldest count <= end entries (shift left). */
void attn_lsh_drop(const struct model_config *c, void *state, uint32_t count);

/* ---- helpers for kind files ---- */

/* Fills one tensor entry: name relative to the layer, f32, every row read, one use per
 * element; shape is given as rank dims. Returns t for chaining cost fields. */
struct tensor_desc *kind_tensor(struct tensor_desc *t, const char *name, enum tensor_init init,
                                float scale, int rank, ...);

/* Makes t a q8 tensor when the config stores weights as q8 (else leaves it f32): shape
 * becomes the stored one — for `transposed`, (out, in) of the f32 (in, out) layout, where
 * `out` is the last axis and `in` the product of the others. Rows read follow. Returns t. */
struct tensor_desc *kind_q8(const struct model_config *c, struct tensor_desc *t, bool transposed);

/* Initial scales: biases and norm parameters start small but non-zero so every term is
 * tested (matrices use 1/sqrt(fan-in), which keeps activations near unit variance). */
#define KIND_BIAS_SCALE 0.02f
#define KIND_NORM_SCALE 0.1f

/* Carves 64-byte aligned pieces out of a buffer; with base NULL it only counts (so one
 * layout function gives both the size and the pointers). */
struct carve {
    unsigned char *base;
    uint64_t used;
};
static inline void *carve_take(struct carve *cv, uint64_t bytes)
{
    void *p = cv->base ? cv->base + cv->used : (void *)0;
    cv->used += (bytes + 63) / 64 * 64;
    return p;
}

/* The q8 kernels' scratch, carved after a kind's own pieces when the config is q8 (products
 * of up to `rows` activation rows of up to n elements); left empty for f32. */
static inline void kind_q8_scratch(const struct model_config *c, struct carve *cv,
                                   struct q8_scratch *qs, uint32_t rows, uint32_t n)
{
    struct q8_scratch none = {0};
    *qs = none;
    if (c->weights != WEIGHTS_Q8) return;
    uint64_t bytes = q8_scratch_layout(qs, NULL, rows, n);
    void *base = carve_take(cv, bytes);
    q8_scratch_layout(qs, base, rows, n);
}

/* y = x·W + b by W's dtype (q8 W is stored transposed); b may be NULL. */
static inline void kind_dense(const struct sublayer_step *s, float *y, const float *x,
                              const struct tensor_view *W, const struct tensor_view *b, uint32_t in,
                              uint32_t out, struct q8_scratch *qs)
{
    const float *bias = b ? view_f32(b) : (const float *)0;
    if (W->dtype == STF_DTYPE_Q8_0)
        kernels_q8_for(s->k)->dense(y, x, W->data, bias, in, out, qs);
    else
        s->k->dense(y, x, view_f32(W), bias, in, out);
}

/* The q8 scratch of a batched step (the kernels_q8 *_rows calls), carved when the config is
 * q8: products of rows_a activation rows of n_a elements and rows_b rows of n_b (0, 0 for
 * none); it holds the larger of the two panels (q8_rows_panel) of the wider row. */
static inline void kind_q8_rows_scratch(const struct model_config *c, struct carve *cv,
                                        struct q8_scratch *qs, uint32_t rows_a, uint32_t n_a,
                                        uint32_t rows_b, uint32_t n_b)
{
    uint32_t pa = q8_rows_panel(rows_a, n_a), pb = rows_b ? q8_rows_panel(rows_b, n_b) : 0;
    kind_q8_scratch(c, cv, qs, pa > pb ? pa : pb, n_a > n_b ? n_a : n_b);
}

/* Y (rows, out) = X·W + b for the step's rows, by W's dtype; b may be NULL. */
static inline void kind_dense_rows(const struct sublayer_rows *s, float *Y, const float *X,
                                   const struct tensor_view *W, const struct tensor_view *b,
                                   uint32_t in, uint32_t out, struct q8_scratch *qs)
{
    const float *bias = b ? view_f32(b) : (const float *)0;
    if (W->dtype == STF_DTYPE_Q8_0)
        kernels_q8_for(s->k)->dense_rows(Y, X, W->data, bias, s->rows, in, out, qs);
    else
        s->k->dense_rows(Y, X, view_f32(W), bias, s->rows, in, out);
}

#endif

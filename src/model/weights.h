/*
 * weights: the model's parameters as typed read-only views (SPEC §1-§3), and the list that
 * names every tensor of a config, its shape, dtype, initialisation and per-token cost.
 *
 * The tensors of each sub-layer come from its kind's own list (layer_kinds.h): the views
 * of, say, the attention sub-layer are lw->attn[0..n) in the order that kind lists them,
 * so a new kind brings its tensors without touching this header. The views borrow from the
 * memory map owned by struct model (model_file.h) and are valid until model_close; a view's
 * data is NULL when its tensor does not exist in this config or lies outside the mapped
 * layer range.
 */
#ifndef STF_MODEL_WEIGHTS_H
#define STF_MODEL_WEIGHTS_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include "model/config.h"
#include "util/dtype.h"

/* A typed view of one tensor's bytes. */
struct tensor_view {
    const void *data; /* borrowed, 64-byte aligned; NULL when not mapped */
    enum stf_dtype dtype;
    uint64_t nbytes;
    /* the tensor's row that data starts at: 0, or for a tensor-parallel rank that maps only
     * its rows (model/tp.h, model_select.tp_size) the first of them */
    uint64_t first_row;
};

/* Row `row` of the whole tensor (rows of row_bytes), which must be one the view holds. */
static inline const void *view_row(const struct tensor_view *v, uint64_t row, uint64_t row_bytes)
{
    assert(row >= v->first_row && (row - v->first_row + 1) * row_bytes <= v->nbytes);
    return (const unsigned char *)v->data + (row - v->first_row) * row_bytes;
}

/* The data of an f32 view. Today every weight is f32 (the loader checks it against the
 * tensor list); a kind that gains a quantised kernel picks it by v->dtype instead. */
static inline const float *view_f32(const struct tensor_view *v)
{
    assert(v->dtype == STF_DTYPE_F32);
    return (const float *)v->data;
}

#define KIND_MAX_TENSORS 16 /* tensors one sub-layer kind may list */

/* A Scaling Transformer layer uses ln1/attn, ln2/ff; a Terraformer block (SPEC §3) uses
 * ln1/attn (Attn1, file names "ln1", "attn1."), lna2/attn2 (Attn2: "ln2", "attn2.") and
 * ln2/ff (FFB: "ln3", "ff."). */
struct layer_weights {
    struct tensor_view ln1_g, ln1_b;            /* (d) pre-attention LayerNorm */
    struct tensor_view attn[KIND_MAX_TENSORS];  /* the attention kind's tensors */
    struct tensor_view lna2_g, lna2_b;          /* (d) Terraformer: LN before Attn2 */
    struct tensor_view attn2[KIND_MAX_TENSORS]; /* Terraformer: Attn2's tensors */
    struct tensor_view ln2_g, ln2_b;            /* (d) pre-FF LayerNorm */
    struct tensor_view ff[KIND_MAX_TENSORS];    /* the FF kind's tensors */
    struct tensor_view sru[KIND_MAX_TENSORS];   /* the SRU branch's (sru_units > 0) */
};

struct model_weights {
    struct tensor_view embed;                 /* (V, d) token embedding */
    struct tensor_view pos;                   /* (T, d) learned positional embedding */
    struct tensor_view lnf_g, lnf_b;          /* (d) final LayerNorm */
    struct tensor_view out[KIND_MAX_TENSORS]; /* the output kind's tensors */
    struct layer_weights *layers;             /* n_layers entries, owned by struct model */
};

enum tensor_init {
    INIT_NORMAL, /* scale * N(0, 1) */
    INIT_GAIN,   /* 1 + scale * N(0, 1): LayerNorm gains */
    INIT_SINCOS, /* the sin/cos position table */
};

/* Where a tensor belongs; the loader maps a group only when it is selected. */
enum tensor_group { GROUP_EMBED, GROUP_LAYER, GROUP_HEAD };

struct tensor_desc {
    char name[48]; /* full name in the file, e.g. "layers.3.ff.w1t" */
    enum tensor_group group;
    int layer; /* for GROUP_LAYER */
    int rank;
    uint64_t shape[4]; /* shape[0] is the row axis: a row is the rest, contiguous */
    enum stf_dtype dtype;
    /* q8 only: shape is (out, in), the transpose of the f32 layout (in, out) — or, for a
     * convolution kernel, of its (3·Km·M, M) im2col matrix — so that rows run along the
     * reduction axis. Fill functions (generator, converter) still see f32 element order. */
    bool transposed;
    enum tensor_init init;
    float scale;
    /* per-token cost: rows_read of the shape[0] rows are read for one token (all of them
     * unless the kind is sparse), and each element read takes part in `uses` multiply-adds
     * (1 for a matrix, S for one shared by S modules, 0 for biases and element-wise gains) */
    uint64_t rows_read;
    uint32_t uses;
    /* tensor parallelism (model/tp.h): 0, every rank of a stage keeps the tensor whole; else
     * the rows form tp_units equal groups (modules, blocks) of which each of T ranks owns
     * tp_units / T consecutive ones, plus tp_halo neighbour groups on each side it reads too */
    uint32_t tp_units, tp_halo;
    /* 0, or the columns (last axis) form tp_col_units groups of which a rank computes with its
     * share only: it maps the tensor whole but reads 1/T of it per token (the controller's C2) */
    uint32_t tp_col_units;
    struct tensor_view *slot; /* where the loader stores the view (NULL when listing only) */
};

/* Lists every tensor the config needs, in file order: embed, pos, layers 0..L-1, head.
 * When w is non-NULL, w->layers must hold cfg->n_layers entries and each desc's slot points
 * into w. Returns the count, or -1 if max is too small (call with max 0 to count). The
 * config must be valid (model_config_validate). */
int model_tensor_list(const struct model_config *cfg, struct model_weights *w,
                      struct tensor_desc *out, int max);

uint64_t tensor_desc_elements(const struct tensor_desc *t);
/* Stored bytes (from the dtype: rows x the bytes of one row). */
uint64_t tensor_desc_bytes(const struct tensor_desc *t);
/* Bytes one token reads, and the multiply-adds it takes part in. */
uint64_t tensor_desc_read_bytes(const struct tensor_desc *t);
uint64_t tensor_desc_macs(const struct tensor_desc *t);

/* Per-token figures of one layer and of the output layer (final norm included), summed
 * from the tensor list: weight bytes read (SPEC §5's counting) and multiply-adds (attention
 * over the cache not counted). With them, bytes / bandwidth + 2 * macs / flops estimates a
 * token's time. model_layer_bytes is what a layer stores. */
uint64_t model_layer_read_bytes(const struct model_config *cfg);
uint64_t model_layer_macs(const struct model_config *cfg);
uint64_t model_layer_bytes(const struct model_config *cfg);
uint64_t model_head_read_bytes(const struct model_config *cfg);
uint64_t model_head_macs(const struct model_config *cfg);

/* The view of the tensor named `name` (as in the file), or NULL: for tests and tools (it
 * lists the tensors, so it allocates). */
const struct tensor_view *model_weights_find(const struct model_config *cfg,
                                             struct model_weights *w, const char *name);

/* The name of the embedded tokenizer blob (dtype u8) in a model file. */
#define MODEL_TOKENIZER_TENSOR "tokenizer.model"

#endif

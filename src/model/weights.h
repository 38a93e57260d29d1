/*
 * weights: the model's parameters as read-only views (SPEC §1-§3), and the one table that
 * names every tensor, its shape and how the generator initialises it.
 *
 * The pointers borrow from the memory map owned by struct model (model_file.h) and are valid
 * until model_close. A pointer is NULL when its tensor does not exist in this config or lies
 * outside the mapped layer range.
 */
#ifndef STF_MODEL_WEIGHTS_H
#define STF_MODEL_WEIGHTS_H

#include <stdint.h>

#include "model/config.h"

struct layer_weights {
    const float *ln1_g, *ln1_b; /* (d) pre-attention LayerNorm */
    /* dense attention (SPEC §2) */
    const float *wq, *bq; /* (d, d), (d) */
    const float *wk, *bk; /* (d, d), (d) */
    const float *wv, *bv; /* (d, d), (d) */
    const float *wo, *bo; /* (d, d), (d) */
    /* sparse QKV (SPEC §2): multiplicative layer with O = d, then three local convolutions */
    const float *mult_g;              /* (S, d) per-module scales of x */
    const float *mult_p;              /* (d, M) shared projection, M = d / S */
    const float *mult_c;              /* (d) bias, module-major */
    const float *conv_q_w, *conv_q_b; /* (3, 3, M, M), (M) */
    const float *conv_k_w, *conv_k_b; /* (3, 3, M, M), (M) */
    const float *conv_v_w, *conv_v_b; /* (3, 1, M, M), (M) */
    const float *ln2_g, *ln2_b;       /* (d) pre-FF LayerNorm */
    /* dense FF */
    const float *w1, *b1; /* (d, F), (F) */
    /* sparse FF controller */
    const float *ctrl_c1; /* (d, r) */
    const float *ctrl_c2; /* (r, F) */
    const float *ctrl_cb; /* (F) */
    const float *w1t;     /* (F, d): W1 transposed, one row per FF unit */
    /* both FF kinds */
    const float *w2, *b2; /* (F, d): one row per FF unit; (d) */
    /* SRU branch (SPEC §3), n units */
    const float *sru_ln_g, *sru_ln_b; /* (d) */
    const float *sru_wi, *sru_bi;     /* (d, n), (n)  Dense_i */
    const float *sru_w, *sru_b;       /* (n, 3n), (3n)  [r~, f~, y~] */
    const float *sru_wo, *sru_bo;     /* (n, d), (d)  Dense_o */
};

struct model_weights {
    const float *embed;           /* (V, d) token embedding */
    const float *pos;             /* (T, d) learned positional embedding */
    const float *lnf_g, *lnf_b;   /* (d) final LayerNorm */
    const float *out_w, *out_b;   /* (d, V), (V) dense output */
    const float *out_g;           /* (S_out, d) multiplicative output */
    const float *out_p;           /* (d, V / S_out) */
    const float *out_c;           /* (V) */
    struct layer_weights *layers; /* n_layers entries, owned by struct model */
};

enum tensor_init {
    INIT_NORMAL, /* scale * N(0, 1) */
    INIT_GAIN,   /* 1 + scale * N(0, 1): LayerNorm gains */
    INIT_SINCOS, /* the sin/cos position table */
};

/* Where a tensor belongs; the loader maps a group only when it is selected. */
enum tensor_group { GROUP_EMBED, GROUP_LAYER, GROUP_HEAD };

struct tensor_desc {
    char name[48];
    enum tensor_group group;
    int layer; /* for GROUP_LAYER */
    int rank;
    uint64_t shape[4];
    enum tensor_init init;
    float scale;
    const float **slot; /* where the loader stores the view (NULL when listing only) */
};

/* Lists every tensor the config needs, in file order: embed, pos, layers 0..L-1, head.
 * When w is non-NULL, w->layers must hold cfg->n_layers entries and each desc's slot points
 * into w. Returns the count, or -1 if max is too small (call with max 0 to count). */
int model_tensor_list(const struct model_config *cfg, struct model_weights *w,
                      struct tensor_desc *out, int max);

uint64_t tensor_desc_elements(const struct tensor_desc *t);

/* The name of the embedded tokenizer blob (dtype u8) in a model file. */
#define MODEL_TOKENIZER_TENSOR "tokenizer.model"

#endif

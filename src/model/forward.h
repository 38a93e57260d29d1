/*
 * forward: one token through the Scaling Transformer LM (SPEC §3), split in three so a
 * pipeline stage can run only its part: embed (first stage), a range of layers (every
 * stage), head (last stage). Batch 1, decode order: position p follows p-1.
 *
 * struct seq_state holds one sequence's caches for a layer range (KV cache, the two rows of
 * convolution history, SRU state); struct workspace holds the scratch of one process. Both
 * are allocated once; forward_* allocate nothing and cannot fail — callers check that the
 * position is below the state's capacity.
 */
#ifndef STF_MODEL_FORWARD_H
#define STF_MODEL_FORWARD_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "model/model_file.h"

struct seq_state {
    uint32_t layer_begin, layer_end; /* the layers whose caches this holds */
    uint32_t capacity;               /* positions the KV cache holds */
    uint32_t d, sru_n;
    float *k, *v;  /* (layers, capacity, d) */
    float *conv_y; /* (layers, 2, d): y_{t-2}, y_{t-1} of the sparse QKV layer */
    float *sru_c;  /* (layers, n) */
};

struct workspace {
    const struct kernels *k;
    float *xn;                        /* (d) normalised input of a sub-layer */
    float *q, *kn, *vn;               /* (d) query, new key and value */
    float *att;                       /* (d) merged heads */
    float *y;                         /* (d) multiplicative layer output of sparse QKV */
    float *sub;                       /* (d) sub-layer output */
    float *sru_out;                   /* (d) */
    float *hidden;                    /* (F) dense FF hidden */
    float *scores;                    /* (capacity) attention scores */
    float *scratch;                   /* max(S·d, S_out·d, 9·d) for mult_dense and local_conv */
    float *sru_u, *sru_gates, *sru_h; /* (n), (3n), (n) */
    struct sparse_ff_scratch ff;
};

enum stf_status seq_state_create(const struct model_config *cfg, uint32_t layer_begin,
                                 uint32_t layer_end, uint32_t capacity, struct seq_state **out,
                                 struct stf_error *err);
/* Clears the caches for a new sequence (KV content need not be cleared: positions
 * past the current one are never read). */
void seq_state_reset(struct seq_state *s);
void seq_state_free(struct seq_state *s);

enum stf_status workspace_create(const struct model_config *cfg, uint32_t capacity,
                                 const struct kernels *k, struct workspace **out,
                                 struct stf_error *err);
void workspace_free(struct workspace *ws);

/* x (d) = E[token] + PE[pos]. Needs the embedding mapped. */
void forward_embed(const struct model *m, uint32_t token, uint32_t pos, float *x);
/* Runs s's layers on the residual stream x (d) in place, at position pos < s->capacity. */
void forward_layers(const struct model *m, struct seq_state *s, struct workspace *ws, uint32_t pos,
                    float *x);
/* logits (V) = Out(LN_f(x)). Needs the head mapped. */
void forward_head(const struct model *m, struct workspace *ws, const float *x, float *logits);

#endif

/*
 * forward: one token through the Scaling Transformer LM (SPEC §3), split in three so a
 * pipeline stage can run only its part: embed (first stage), a range of layers (every
 * stage), head (last stage). Batch 1, decode order: position p follows p-1. Each sub-layer
 * runs through its kind's ops (layer_kinds.h), chosen when the model opened.
 *
 * struct seq_state holds one sequence's state for a layer range (per layer: the attention
 * kind's part — KV cache, convolution rows —, the FF kind's and the SRU branch's);
 * struct workspace holds the scratch of one process. Both are allocated once; forward_*
 * allocate nothing and cannot fail — callers check that the position is below the state's
 * capacity.
 */
#ifndef STF_MODEL_FORWARD_H
#define STF_MODEL_FORWARD_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "model/layer_kinds.h"
#include "model/model_file.h"
#include "model/tp.h"

/* Where each sub-layer's part lies in one layer's block of sequence state. */
struct seq_state_part {
    uint64_t offset, reset_bytes;
};

/* One layer's block: its attention sub-layers (two in a Terraformer block), FF, SRU. The
 * layout can differ between layers (an LSH sub-layer's cache is bounded by P, a dense one
 * grows with the capacity). */
struct seq_state_layer {
    uint64_t offset; /* of the block in data */
    struct seq_state_part attn[2], ff, sru;
};

struct seq_state {
    uint32_t layer_begin, layer_end; /* the layers whose state this holds */
    uint32_t tp;                     /* sized for one of tp tensor-parallel ranks (model/tp.h) */
    uint32_t capacity;               /* positions the KV cache holds */
    const struct model_config *cfg;  /* borrowed from the model, for the LSH helpers */
    struct seq_state_layer *layers;  /* layer_end - layer_begin entries */
    unsigned char *data;
};

/* The parts of the forward pass a profile times (sparsetf-bench --model): each sub-layer kind's
 * forward step, the LayerNorms before them, the residual additions and the output layer.
 * The embedding lookup and sampling happen in the caller, which times them itself. */
enum forward_part {
    FWD_NORM,     /* every LayerNorm except the SRU branch's own (inside FWD_SRU) */
    FWD_ATTN,     /* the attention kind's step, attention over the cache included */
    FWD_SRU,      /* the SRU branch */
    FWD_FF,       /* the FF kind's step */
    FWD_RESIDUAL, /* x += sub-layer outputs */
    FWD_HEAD,     /* the output kind's step (its LayerNorm counts as FWD_NORM) */
    FWD_PARTS
};

/* Seconds spent per part, added up over the calls made while a workspace points at it,
 * read from `now` (wall-clock stf_now, or a CPU-time clock on a machine shared with others). */
struct forward_profile {
    double seconds[FWD_PARTS];
    double (*now)(void);
};

struct workspace {
    const struct kernels *k;
    struct forward_profile *prof; /* NULL (the default): nothing is timed */
    const struct tp_comm *tp;     /* the stage's tensor-parallel group (T > 1), borrowed; or NULL */
    float *xn;                    /* (d) normalised input of a sub-layer */
    float *sub;                   /* (d) sub-layer output */
    float *sru_out;               /* (d) SRU branch output */
    void *scratch; /* the largest scratch of the model's kinds (they run one at a time) */
};

/* The scratch of batched steps (forward_layers_rows, forward_head_rows): up to max_rows
 * rows, each of its own sequence, run through the layers together. Allocated once. */
struct batch_workspace {
    const struct kernels *k;
    uint32_t max_rows, capacity;
    float *xn;      /* (max_rows, d) normalised inputs of a sub-layer */
    float *sub;     /* (max_rows, d) sub-layer outputs */
    float *sru_out; /* (max_rows, d) SRU branch outputs */
    void **states;  /* (max_rows) one sub-layer's per-row states */
    void *scratch;  /* the largest rows scratch of the model's kinds at max_rows */
};

/* Bytes of sequence state one layer needs for capacity positions (KV cache and the like):
 * the most any layer takes, what a plan counts. */
uint64_t model_layer_state_bytes(const struct model_config *cfg, uint32_t capacity);
/* The same for one of tp tensor-parallel ranks (its KV cache shard). */
uint64_t model_layer_state_bytes_tp(const struct model_config *cfg, uint32_t capacity, uint32_t tp);
/* Bytes of a workspace for capacity positions. */
uint64_t workspace_bytes(const struct model_config *cfg, uint32_t capacity);

/* The state's LSH sub-layers (SPEC §2), for rank 0's cache directive: the i-th one's global
 * sub-layer index and state; returns 0 past the end. */
int seq_state_lsh(const struct seq_state *s, uint32_t i, uint32_t *sublayer, void **state);

/* For a run without rank 0's directives (the benchmark's bare forward loop): before
 * the row at the caches' next entry, seeds every LSH sub-layer with sigma if the sequence
 * has not been seeded, and drops as rank 0 would (model_lsh_drop_before). */
void seq_state_lsh_prepare(struct seq_state *s, uint64_t sigma);

/* cfg must outlive the state (it is the model's). */
enum stf_status seq_state_create(const struct model_config *cfg, uint32_t layer_begin,
                                 uint32_t layer_end, uint32_t capacity, struct seq_state **out,
                                 struct stf_error *err);
/* Clears the state for a new sequence (KV content need not be cleared: positions past the
 * current one are never read). */
void seq_state_reset(struct seq_state *s);
/* seq_state_create for one of tp tensor-parallel ranks: each kind sizes its shard. */
enum stf_status seq_state_create_tp(const struct model_config *cfg, uint32_t layer_begin,
                                    uint32_t layer_end, uint32_t capacity, uint32_t tp,
                                    struct seq_state **out, struct stf_error *err);
void seq_state_free(struct seq_state *s);

enum stf_status workspace_create(const struct model_config *cfg, uint32_t capacity,
                                 const struct kernels *k, struct workspace **out,
                                 struct stf_error *err);
/* workspace_create for a rank of a tensor-parallel group: tp (borrowed, must outlive the
 * workspace) is what forward_layers passes to the kinds for a state of tp->size ranks. */
enum stf_status workspace_create_tp(const struct model_config *cfg, uint32_t capacity,
                                    const struct kernels *k, const struct tp_comm *tp,
                                    struct workspace **out, struct stf_error *err);
void workspace_free(struct workspace *ws);

/* Damaged weights (a NaN, an Inf, or values that overflow) must never turn into tokens
 * printed as if fine: each step checks what it produced (the residual stream after every
 * layer, the logits) and returns FORWARD_FINITE, or where the first non-finite value
 * appeared: a layer index, FORWARD_AT_EMBED or FORWARD_AT_HEAD. */
#define FORWARD_FINITE   UINT32_MAX
#define FORWARD_AT_EMBED (UINT32_MAX - 1)
#define FORWARD_AT_HEAD  (UINT32_MAX - 2)

/* A batch workspace for the Scaling Transformer without LSH sub-layers (other models are
 * an STF_ERR_ARG naming the arch: they step one sequence at a time). */
enum stf_status batch_workspace_create(const struct model_config *cfg, uint32_t capacity,
                                       uint32_t max_rows, const struct kernels *k,
                                       struct batch_workspace **out, struct stf_error *err);
void batch_workspace_free(struct batch_workspace *ws);

/* x = E[token] + PE[pos] in each of the model's model_streams() streams (d each; a
 * Terraformer's a and b both start as the embedding). Needs the embedding mapped. */
uint32_t forward_embed(const struct model *m, uint32_t token, uint32_t pos, float *x);
/* Runs s's layers on the residual streams x (streams x d) in place, at position
 * pos < s->capacity. LSH sub-layers need a seeded cache with room (rank 0's directive). */
uint32_t forward_layers(const struct model *m, struct seq_state *s, struct workspace *ws,
                        uint32_t pos, float *x);
/* logits (V) = Out(LN_f(x)), x the stream (Terraformer: (a + b)/2). Needs the head mapped. */
uint32_t forward_head(const struct model *m, struct workspace *ws, const float *x, float *logits);

/* The error for a non-finite value found at `where` (a forward_* result) at position pos:
 * names the model file and the layer. */
enum stf_status forward_fail_nonfinite(const struct model *m, uint32_t where, uint32_t pos,
                                       struct stf_error *err);

/* Batched decoding: rows ≤ ws->max_rows rows at one step, row r on the residual stream
 * x[r] (x is (rows, d)) of the sequence s[r] at position pos[r] < capacity. The sequences
 * are distinct and hold the same layers. Each row's result is bitwise what forward_layers
 * gives for it alone (batch-invariant kernels; rows never mix, so a damaged row cannot touch
 * the others), while each dense weight is read once per step instead of once per row.
 * where[r] (rows) gets what forward_layers returns for row r: FORWARD_FINITE, or the layer
 * after which its residual stream first held a non-finite value. Returns the number of rows
 * that did. */
uint32_t forward_layers_rows(const struct model *m, struct seq_state *const *s,
                             struct batch_workspace *ws, const uint32_t *pos, uint32_t rows,
                             float *x, uint32_t *where);
/* logits (rows, V) = Out(LN_f(x)) for x (rows, d); row r bitwise forward_head's, and where[r]
 * its result (FORWARD_FINITE or FORWARD_AT_HEAD). Returns the number of rows whose logits
 * are not all finite. */
uint32_t forward_head_rows(const struct model *m, struct batch_workspace *ws, const float *x,
                           uint32_t rows, float *logits, uint32_t *where);

#endif

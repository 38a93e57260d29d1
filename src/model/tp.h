/*
 * tp: tensor parallelism inside a pipeline stage — how the T ranks of a stage share each
 * layer (docs/architecture.md, "Tensor parallelism").
 *
 * Each rank maps only its 1/T shard of what a kind splits (model_select.tp_size: the rows of
 * its units, tensor_desc.tp_units) and computes its part; a collective
 * through struct tp_comm (the pipeline wraps the transport, so the model knows nothing of
 * MPI) assembles the d-vector every rank needs next:
 *   sparse QKV   by modules and heads (T divides S and H, so a rank's modules and heads
 *                cover the same d/T coordinates): y for its modules plus one neighbour
 *                module on each side (the 3x3 convolution's halo, recomputed instead of
 *                exchanged), q/k/v and the KV cache of its heads, attention of its heads;
 *                one allgather of the d/T slices.
 *   sparse FF    by blocks (T divides B): C1 whole on every rank, the controller's logits
 *                of its blocks only (C2 columns and cb of its blocks, each logit bitwise
 *                what one rank computes, so every rank picks the units one rank would),
 *                h_b and the W2 partial sum of its B/T blocks; one allgather of the T
 *                partial d-vectors, summed in rank order.
 *   dense attention, LSH attention (over either projection), dense FF, the SRU branch and
 *   the output layer are computed whole by every rank of the stage for now (no split, no
 *   collective; their tensors are mapped whole).
 * So a layer costs at most two collectives (a Terraformer block, two attention sub-layers
 * and a feed-forward block, at most three: one per Sparse QKV sub-layer that is not LSH,
 * one for the sparse FF). Results: for a fixed T every pipeline depth P
 * gives the same bits; across T the attention is bitwise identical and the FF output differs
 * only by the order its T partial sums are added (within 1e-6 relative).
 */
#ifndef STF_MODEL_TP_H
#define STF_MODEL_TP_H

#include <stddef.h>
#include <stdint.h>

#include "model/config.h"
#include "util/status.h"

/* A stage's tensor-parallel group as the forward pass sees it. */
struct tp_comm {
    uint32_t rank, size; /* this rank's index in its stage, and T */
    /* Every rank gives len bytes; recv gets size x len bytes in rank order on every rank.
     * Returns 0, or non-zero when the collective failed (the caller's error is then in ctx,
     * and the forward pass finishes with meaningless numbers the caller discards). */
    int (*allgather)(void *ctx, const void *send, size_t len, void *recv);
    void *ctx;
};

/* Whether T ranks can share each layer of cfg (every split divides evenly); the error names
 * what does not divide and lists the valid T. T = 1 is always valid. */
enum stf_status model_tp_check(const struct model_config *cfg, uint32_t T, struct stf_error *err);
/* "sparse QKV splits 64 modules / 96 heads, sparse FF 256 blocks" — for messages. */
const char *model_tp_describe(const struct model_config *cfg);

struct tensor_desc;
/* The rows [*first, *first + *count) of t that rank `rank` of T holds (its units and their
 * halo, model/weights.h tp_units); all rows when t is kept whole or T = 1. */
void model_tp_rows(const struct tensor_desc *t, uint32_t T, uint32_t rank, uint64_t *first,
                   uint64_t *count);

/* Per layer, for one of T ranks: weight bytes it maps (its shards plus what every rank keeps
 * whole), bytes it reads and multiply-adds it does per token, and state bytes per sequence
 * (KV cache shard, convolution rows, SRU state). T = 1 gives the whole layer. */
uint64_t model_tp_layer_bytes(const struct model_config *cfg, uint32_t T);
uint64_t model_tp_layer_read_bytes(const struct model_config *cfg, uint32_t T);
uint64_t model_tp_layer_macs(const struct model_config *cfg, uint32_t T);
uint64_t model_tp_layer_state_bytes(const struct model_config *cfg, uint32_t capacity, uint32_t T);
/* Collectives per layer and token at T (0 at T = 1); *bytes: what each rank receives in them. */
uint32_t model_tp_layer_collectives(const struct model_config *cfg, uint32_t T, uint64_t *bytes);

#endif

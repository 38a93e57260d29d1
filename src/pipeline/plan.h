/*
 * plan: the grid of a job and which layers each rank holds (docs/architecture.md).
 *
 * The n ranks form P pipeline stages of T tensor-parallel ranks each (n = P x T): rank r is
 * rank r % T of stage r / T. A stage holds a contiguous layer range; its T ranks each hold a
 * 1/T shard of every layer (model/tp.h says how each kind splits) and compute it together.
 * Rank 0 is also the coordinator: it holds the embedding and the output layer (and the
 * tokenizer and sampler) and is rank 0 of stage 0. With T = 1 stage 0 may hold no layer
 * (rank 0 then only coordinates), so 1 to n_layers + 1 ranks work; with T > 1 every stage
 * holds at least one layer (else T - 1 ranks would idle), so P <= n_layers.
 *
 * Ranges are balanced by weight bytes (the default: what each machine must hold) or by
 * estimated per-token time (for throughput). T is given (--tp) or chosen: 1 when a pure
 * pipeline can use every rank, else the smallest T the model can split that makes a grid.
 * The plan depends only on the config and the counts, so every rank computes the same one
 * without talking.
 */
#ifndef STF_PIPELINE_PLAN_H
#define STF_PIPELINE_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "model/config.h"
#include "util/status.h"

enum plan_balance {
    PLAN_BALANCE_MEMORY = 0, /* equal weight bytes per rank */
    PLAN_BALANCE_TIME = 1,   /* equal estimated per-token time: read bytes / 20 GB/s +
                                multiply-adds / 25 G/s (a single core of a current server) */
};

struct plan_rank {
    uint32_t stage, tp_rank;         /* r / T, r % T */
    uint32_t layer_begin, layer_end; /* half-open, the stage's */
    bool embed, head;                /* rank 0 only */
    uint64_t weight_bytes;           /* tensors this rank maps (its shard of its layers) */
    uint64_t cache_bytes;            /* KV/conv/SRU caches of every slot for its layers */
    uint64_t buffer_bytes;           /* workspace and frame buffers */
    double est_token_s;              /* estimated compute seconds per token */
};

struct dist_plan {
    uint32_t n_ranks;
    uint32_t tp, n_stages;     /* T and P: n_ranks = P x T */
    bool tp_chosen;            /* T was picked by the plan (no --tp) */
    uint32_t collectives;      /* per layer and token at this T (0 when T = 1) */
    uint64_t collective_bytes; /* bytes each rank receives per layer and token in them */
    char tp_describe[256];     /* what the model's layers split (model_tp_describe) */
    uint32_t n_slots, capacity, max_rows;
    uint64_t model_bytes;     /* all tensors */
    uint64_t layer_bytes_max; /* the heaviest single layer */
    enum plan_balance balance;
    struct plan_rank *ranks; /* n_ranks entries, owned */
};

/* Plans n_ranks ranks for cfg with T = tp tensor-parallel ranks per stage (0: choose);
 * n_slots sessions of capacity positions per rank, prefill frames of up to max_rows rows (for
 * the memory estimate). A T the model cannot split, or a grid that would leave a rank idle,
 * is an error that lists the valid choices; nothing is mapped before the plan exists. */
enum stf_status plan_make(const struct model_config *cfg, uint32_t n_ranks, uint32_t tp,
                          uint32_t n_slots, uint32_t capacity, uint32_t max_rows,
                          enum plan_balance balance, struct dist_plan *out, struct stf_error *err);
void plan_free(struct dist_plan *p);

/* Expected resident bytes of rank r: weights + caches + buffers (not the MPI runtime). */
uint64_t plan_rank_expected_bytes(const struct dist_plan *p, uint32_t r);

/* Prints the plan as a table (one line per rank). */
void plan_print(FILE *f, const struct dist_plan *p, const char *model_path);

#endif

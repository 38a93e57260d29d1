/*
 * plan: which layers each rank of a pipeline holds (docs/architecture.md).
 *
 * Contiguous layer ranges, balanced by weight bytes (the default: what each machine must
 * hold) or by estimated per-token time (for throughput): rank 0 also holds the embedding and
 * the output layer (and the tokenizer and sampler), so it takes fewer layers — often none;
 * every other rank takes at least one layer. Any rank count from 1 to n_layers + 1 works.
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
    uint32_t layer_begin, layer_end; /* half-open */
    bool embed, head;                /* rank 0 only */
    uint64_t weight_bytes;           /* tensors this rank maps */
    uint64_t cache_bytes;            /* KV/conv/SRU caches of every slot for its layers */
    uint64_t buffer_bytes;           /* workspace and frame buffers */
    double est_token_s;              /* estimated compute seconds per token */
};

struct dist_plan {
    uint32_t n_ranks;
    uint32_t n_slots, capacity, max_rows;
    uint64_t model_bytes;     /* all tensors */
    uint64_t layer_bytes_max; /* the heaviest single layer */
    enum plan_balance balance;
    struct plan_rank *ranks; /* n_ranks entries, owned */
};

/* Plans n_ranks ranks for cfg; n_slots sessions of capacity positions per rank, prefill
 * frames of up to max_rows rows (for the memory estimate). */
enum stf_status plan_make(const struct model_config *cfg, uint32_t n_ranks, uint32_t n_slots,
                          uint32_t capacity, uint32_t max_rows, enum plan_balance balance,
                          struct dist_plan *out, struct stf_error *err);
void plan_free(struct dist_plan *p);

/* Expected resident bytes of rank r: weights + caches + buffers (not the MPI runtime). */
uint64_t plan_rank_expected_bytes(const struct dist_plan *p, uint32_t r);

/* Prints the plan as a table (one line per rank). */
void plan_print(FILE *f, const struct dist_plan *p, const char *model_path);

#endif

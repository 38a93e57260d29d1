/*
 * init: deterministic random weights for the generator and benchmarks. Each tensor draws
 * from its own stream keyed by (seed, tensor name), so its values do not depend on which
 * other tensors are generated (a --layers slice equals the first layers of the full model).
 */
#ifndef STF_MODEL_INIT_H
#define STF_MODEL_INIT_H

#include <stdint.h>

#include "model/model_file.h"
#include "util/rng.h"

struct model_init {
    uint64_t seed;
    struct rng rng;
    const struct tensor_desc *current; /* tensor whose stream rng is positioned in */
    uint64_t next;                     /* next element index of that stream */
};

void model_init_begin(struct model_init *ini, uint64_t seed);

/* A model_fill_fn: ctx is a struct model_init. Chunks of one tensor must come in order. */
enum stf_status model_init_fill(void *ctx, const struct tensor_desc *t, float *buf, uint64_t start,
                                uint64_t count, struct stf_error *err);

#define MODEL_RANDOM_FAST                                                                          \
    1u /* uniform values of the same scale, ~20x quicker to draw;                                  \
           the values differ from the generator's (for benchmarks) */

/* Builds a struct model in memory (no file) with random weights for layers [begin, end) and,
 * if asked, the embedding and head: for benchmarks and tests. Free with model_close. */
enum stf_status model_create_random(const struct model_config *cfg, uint64_t seed,
                                    const struct model_select *sel, unsigned flags,
                                    struct model **out, struct stf_error *err);

#endif

/*
 * sampler: SPEC §4 — greedy, or temperature sampling after optional top-k and top-p
 * (nucleus) filtering, from a seeded generator so a run is reproducible from its seed.
 * The sampler owns its scratch (allocated once at create); sampling allocates nothing.
 */
#ifndef STF_KERNELS_SAMPLER_H
#define STF_KERNELS_SAMPLER_H

#include <stdint.h>

#include "util/rng.h"
#include "util/status.h"

struct sampler_params {
    float temperature; /* 0 = greedy */
    uint32_t top_k;    /* 0 = off */
    float top_p;       /* 1 = off; in (0, 1] */
    uint64_t seed;
    float repeat_penalty;   /* 1 or 0 = off; else CTRL-style: positive logits / P, negative * P */
    uint32_t repeat_last_n; /* the history window the penalty looks at */
};

struct sampler {
    struct sampler_params p;
    uint32_t vocab;
    struct rng rng;
    uint32_t *order;  /* (V) candidate indices */
    float *probs;     /* (V) */
    float *penalized; /* (V) logits after the repetition penalty, or NULL when it is off */
};

enum stf_status sampler_params_check(const struct sampler_params *p, struct stf_error *err);
enum stf_status sampler_create(struct sampler *s, const struct sampler_params *p, uint32_t vocab,
                               struct stf_error *err);
void sampler_destroy(struct sampler *s);
/* Picks the next token from logits (V). */
uint32_t sampler_sample(struct sampler *s, const float *logits);
/* The same after the repetition penalty over the last repeat_last_n of history (n ids, the
 * session's prompt and generated tokens; each distinct token is penalised once). */
uint32_t sampler_sample_history(struct sampler *s, const float *logits, const uint32_t *history,
                                uint32_t n);

#endif

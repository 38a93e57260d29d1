/*
 * rng: small deterministic generators. splitmix64 seeds and hashes; xoshiro256** draws.
 * Used by the weight generator (one stream per tensor, keyed by seed and name, so a tensor's
 * values do not depend on which other tensors were generated) and by the sampler.
 */
#ifndef STF_UTIL_RNG_H
#define STF_UTIL_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
    float spare; /* the second value of the last Box-Muller pair */
    int has_spare;
};

uint64_t rng_splitmix64(uint64_t *state);
uint64_t rng_hash_string(uint64_t seed, const char *s);
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, 1) with 24 bits of precision (exactly representable as float). */
float rng_uniform(struct rng *r);
/* Standard normal (Box-Muller, double precision inside; each pair of uniforms gives two). */
float rng_normal(struct rng *r);

#endif

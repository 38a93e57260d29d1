/*
 * lsh: the arithmetic of SPEC §2 LSH attention for one query, per head:
 *   lsh_rotations   the SPEC rotation generator (SplitMix64 + Box-Muller, float32 values)
 *   lsh_signature   the buckets of one vector in every hash round, packed one byte a round
 *   lsh_key_scale   1 / sqrt(mean(z²) + 1e-6) / sqrt(dh), the key normalisation
 *   select          (struct kernels .lsh_select) the C cached entries the query attends to;
 *                   reference: priorities and a sort, as SPEC writes it; fast: one linear
 *                   pass from the newest entry with a SWAR byte compare of the signatures
 *   lsh_attend      softmax attention of one head over the selected entries
 * Buffers belong to the caller; nothing allocates. The cache layout (rows of d floats,
 * one signature and one key scale per head and entry) is the attention kind's business.
 */
#ifndef STF_KERNELS_LSH_H
#define STF_KERNELS_LSH_H

#include <stdint.h>

/* Limits of the packed signature: one byte per round, at most 8 rounds. */
#define LSH_MAX_HASHES  8u
#define LSH_MAX_BUCKETS 256u

/* One SplitMix64 step (SPEC §2 sm): returns the output for state z. */
uint64_t lsh_splitmix64(uint64_t z);

/* The rotation seed σ of a sequence whose sampler is seeded with `seed` (rank 0's rule,
 * docs/protocol.md): sm(sm(seed)). Session i of a run with --seed S samples with S + i, so
 * it draws the same rotations as when it runs alone with --seed S + i. */
static inline uint64_t lsh_sequence_seed(uint64_t seed)
{
    return lsh_splitmix64(lsh_splitmix64(seed));
}

/* R (dh, n_hashes, n_buckets / 2), row-major, for attention sub-layer `sublayer` (global
 * index) and head `head` of the sequence with rotation seed sigma (SPEC §2 "Rotations"). */
void lsh_rotations(float *R, uint64_t sigma, uint32_t sublayer, uint32_t head, uint32_t dh,
                   uint32_t n_hashes, uint32_t n_buckets);

/* Bucket of z (dh) in each round ρ: argmax([t, −t]) with t = z·R[:, ρ, :] in float32 (first
 * maximum), byte ρ of the result. proj holds n_buckets / 2 floats. */
uint64_t lsh_signature(const float *z, const float *R, uint32_t dh, uint32_t n_hashes,
                       uint32_t n_buckets, float *proj);

/* 1 / sqrt(mean(z²) + 1e-6) / sqrt(dh): k_j = z · lsh_key_scale(z). */
float lsh_key_scale(const float *z, uint32_t dh);

/* Selection of one head (SPEC §2 "One step"): the cache holds n entries (the query's own is
 * the last, n - 1), sigs[j * sig_stride] their signatures. Writes the chosen indices in
 * increasing order to J and returns their count, min(n, C). work holds n uint64_t (the
 * reference sorts priorities there; the fast kernel keeps its two candidate lists). */
uint32_t lsh_select_ref(uint32_t *J, const uint64_t *sigs, uint32_t sig_stride, uint32_t n,
                        uint64_t q_sig, uint32_t n_hashes, uint32_t C, uint64_t *work);
uint32_t lsh_select_fast(uint32_t *J, const uint64_t *sigs, uint32_t sig_stride, uint32_t n,
                         uint64_t q_sig, uint32_t n_hashes, uint32_t C, uint64_t *work);

/* (struct kernels .lsh_attend) out (dh) = Σ_{j∈J} softmax(score)_j v_j with
 * score_j = q·qk_j·scale_j − 1e5·[j == self]; qk, v: rows of `stride` floats starting at this
 * head; scale: one per entry, scale_stride apart; scores holds nJ floats. J in increasing
 * order (the sum runs in that order). The fast twin (kernels_fast.c) uses AVX2 dot/axpy. */
void lsh_attend_ref(float *out, const float *q, const float *qk, const float *v, uint32_t stride,
                    const float *scale, uint32_t scale_stride, const uint32_t *J, uint32_t nJ,
                    uint32_t self, uint32_t dh, float *scores);

#endif

/*
 * kernels_q8: the arithmetic of SPEC §1 on q8 weights (util/dtype.h), for one token, in two
 * interchangeable implementations behind struct kernels_q8:
 *   kernels_q8_ref  — plain loops: quantise the activations, integer dot product per block,
 *                     then scale; the yardstick for tests;
 *   kernels_q8_fast — AVX2, with AVX-VNNI dot products when the CPU has them (chosen at
 *                     run time), and OpenMP over outputs.
 *
 * What is rounded where (the same in both twins; docs/file-format.md):
 *   - weights, once, when a file is written (q8_quantize_row): per block of 32 along the
 *     reduction axis, scale d = max|w| / 127 rounded to IEEE half, q = round(w / d) with
 *     round-half-to-even, clamped to ±127;
 *   - activations, on the fly, before every product with a q8 weight whose reduction runs
 *     over them (q8_quantize_act): per block of 32, d = max|x| / 127 kept in float32,
 *     q = round(x · (1/d)) (half to even);
 *   - products: Σ q_x·q_w of a block is exact in int32; it is scaled by d_x·d_w in float32 and
 *     summed over blocks in float32, in an order fixed by the shapes alone (never by the
 *     thread count), so results are bitwise the same for any --threads.
 * The sparse FF's second matrix (W2 rows scaled by h_b) and the embedding are dequantised
 * (d·q in float32) without touching the activations. Controllers, biases and norms stay f32.
 *
 * Weight layouts (rows of q8 blocks along the reduction axis; a row of n elements takes
 * ceil(n/32) blocks, the tail padded with zeros, see stf_dtype_row_bytes):
 *   dense W (in, out)        stored transposed: out rows of in
 *   sparse FF W1ᵀ, W2 (F, d) F rows of d (as in f32)
 *   multiplicative G (S, d)  S rows of d;  P (d, M) stored transposed: M rows of d
 *   local conv W (3, Km, M, M) stored as the transposed im2col matrix: M rows of 3·Km·M,
 *                            element (o, (a·Km + k)·M + c) = W[a, k, c, o]
 * No kernel allocates: buffers belong to the caller (struct q8_scratch, sized once).
 */
#ifndef STF_KERNELS_KERNELS_Q8_H
#define STF_KERNELS_KERNELS_Q8_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "util/dtype.h"

/* One q8 block: an IEEE half scale then 32 int8 values; value = scale · q. */
struct q8_block {
    uint16_t d;
    int8_t q[STF_Q8_BLOCK];
};
_Static_assert(sizeof(struct q8_block) == STF_Q8_BLOCK_BYTES, "q8 block is 34 bytes on disk");

/* Blocks in a q8 row of n elements. */
static inline uint32_t q8_row_blocks(uint32_t n)
{
    return (n + STF_Q8_BLOCK - 1) / STF_Q8_BLOCK;
}

/* Scratch of the q8 kernels: activations quantised on the fly (up to `rows` rows of `n`
 * elements, rows rounded up to a multiple of 8) and one f32 row. Allocated once (at
 * workspace creation); q8_scratch_init sizes it for the largest use. */
struct q8_scratch {
    int8_t *q;     /* rows8 · npad bytes */
    float *d;      /* rows8 · npad / 32 block scales */
    float *row;    /* 2 · npad f32: one row (x ⊙ G[s], an im2col row) and its quantised copy */
    uint32_t rows; /* capacity: rows */
    uint32_t n;    /* capacity: elements per row */
    void *owned;   /* the allocation of q8_scratch_init, or NULL when carved from a buffer */
};

/* Lays the scratch for products of up to `rows` activation rows of up to `n` elements
 * (rows = S or 1; n = d, F or 3·Km·M) out in base (64-byte aligned; NULL only counts).
 * Returns the bytes it takes. */
uint64_t q8_scratch_layout(struct q8_scratch *s, void *base, uint32_t rows, uint32_t n);
/* The same in its own allocation. Returns 0 or -1 (out of memory). */
int q8_scratch_init(struct q8_scratch *s, uint32_t rows, uint32_t n);
void q8_scratch_free(struct q8_scratch *s);

/* SPEC-free helpers shared by both twins, the file writer and the tests. */
float q8_half_to_float(uint16_t h);
uint16_t q8_float_to_half(float f);
/* Quantises a weight row of n floats into q8_row_blocks(n) blocks (tail zero). */
void q8_quantize_row(struct q8_block *out, const float *x, uint32_t n);
/* Dequantises a row: out[i] = d · q[i] for i < n. */
void q8_dequantize_row(float *out, const struct q8_block *in, uint32_t n);
/* Quantises n activations into q8_row_blocks(n) blocks of int8 q (tail zero) and f32
 * scales d: the one definition of activation rounding. */
void q8_quantize_act(int8_t *q, float *d, const float *x, uint32_t n);
/* Checks a stored q8 row: every scale finite and not negative. Returns the index of the
 * first bad block, or -1 when all are fine. */
int64_t q8_check_row(const struct q8_block *in, uint32_t n);

struct kernels_q8 {
    const char *name;
    /* y = x·W + b with W (in, out) stored transposed (out rows of in); b may be NULL. */
    void (*dense)(float *y, const float *x, const struct q8_block *wt, const float *b, uint32_t in,
                  uint32_t out, struct q8_scratch *qs);
    /* SPEC §1 sparse FF with f32 controller (c1, c2, cb) and q8 W1ᵀ, W2 (F rows of d). */
    void (*sparse_ff)(float *out, const float *x, const float *c1, const float *c2, const float *cb,
                      const struct q8_block *w1t, const struct q8_block *w2, const float *b2,
                      struct sparse_ff_dims dims, struct sparse_ff_scratch *s,
                      struct q8_scratch *qs);
    /* SPEC §1 multiplicative dense: y[s*M+m] = Σ_i x[i] G[s,i] P[i,m] + c[s*M+m].
     * G (S, d) is f32 or q8 (g_type); P is stored transposed (M rows of d). */
    void (*mult_dense)(float *y, const float *x, const void *G, enum stf_dtype g_type,
                       const struct q8_block *pt, const float *c, uint32_t d, uint32_t S,
                       uint32_t M, struct q8_scratch *qs);
    /* SPEC §1 local convolution for the newest step: rows[a] = y_{t-2+a} (S, M); W as the
     * transposed im2col matrix (M rows of 3·Km·M); out (S, M). */
    void (*local_conv)(float *out, const float *const rows[3], const struct q8_block *wt,
                       const float *beta, uint32_t S, uint32_t M, uint32_t Km,
                       struct q8_scratch *qs);

    /* The same products for R ≥ 1 independent rows (R sessions' tokens at one step), each
     * row's result bitwise equal to the single-row call on that row (batch-invariant: every
     * output does the single-row call's arithmetic — the same blocks, the same float
     * operations in the same order — whatever R). The activation rows are quantised a panel
     * at a time (q8_rows_panel rows, or fewer if qs holds fewer) and each weight is streamed
     * once per panel, not once per row. Row r of an input or output starts at r times the
     * single-row length; qs holds rows of n (see each call): q8_rows_panel(R·rows per call,
     * n) of them make the panels as large as they should be, any number ≥ 1 works. */
    /* Y (R, out) = X (R, in)·W + b; qs: rows of in */
    void (*dense_rows)(float *Y, const float *X, const struct q8_block *wt, const float *b,
                       uint32_t R, uint32_t in, uint32_t out, struct q8_scratch *qs);
    /* out (R, d), X (R, d); the sparse_ff_scratch fields hold R times the single-row sizes,
     * row-major; qs: rows of d */
    void (*sparse_ff_rows)(float *out, const float *X, const float *c1, const float *c2,
                           const float *cb, const struct q8_block *w1t, const struct q8_block *w2,
                           const float *b2, uint32_t R, struct sparse_ff_dims dims,
                           struct sparse_ff_scratch *s, struct q8_scratch *qs);
    /* Y (R, S·M), X (R, d); qs: R·S rows of d */
    void (*mult_dense_rows)(float *Y, const float *X, const void *G, enum stf_dtype g_type,
                            const struct q8_block *pt, const float *c, uint32_t R, uint32_t d,
                            uint32_t S, uint32_t M, struct q8_scratch *qs);
    /* out (R, S·M); rows[r] are row r's three time steps; qs: R·S rows of 3·Km·M */
    void (*local_conv_rows)(float *out, const float *const (*rows)[3], const struct q8_block *wt,
                            const float *beta, uint32_t R, uint32_t S, uint32_t M, uint32_t Km,
                            struct q8_scratch *qs);
};

/* Activation rows of n elements the *_rows kernels quantise at once, out of `total`: all of
 * them when they take at most Q8_PANEL_BYTES, else the most that do, a multiple of 8 (at
 * least 8). A panel's quantised rows stay in L2 while the weights stream past them once. */
#define Q8_PANEL_BYTES (1024u * 1024u)
uint32_t q8_rows_panel(uint32_t total, uint32_t n);

extern const struct kernels_q8 kernels_q8_ref;
extern const struct kernels_q8 kernels_q8_fast; /* picks one of the two below, once */
/* The fast kernels' two builds, for tests: AVX2 (vpmaddubsw) and AVX-VNNI (vpdpbusd; its
 * entries are NULL when the compiler cannot build it). Bitwise equal results. */
extern const struct kernels_q8 kernels_q8_avx2;
extern const struct kernels_q8 kernels_q8_vnni;
/* 1 when kernels_q8_fast uses the VNNI build (built, and the CPU has AVX-VNNI). */
int kernels_q8_have_vnni(void);

/* The q8 twin of a kernel set ("ref" -> ref, anything else -> fast). */
const struct kernels_q8 *kernels_q8_for(const struct kernels *k);

/* Builds the im2col row of module s (3·Km·M values) for the local convolution: shared by
 * both twins and the f32 path's layout. */
void q8_conv_im2col(float *col, const float *const rows[3], uint32_t s, uint32_t S, uint32_t M,
                    uint32_t Km);

#endif

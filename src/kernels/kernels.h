/*
 * kernels: the arithmetic of SPEC §1-§2 for one token, or for R tokens of R sequences at
 * once (the *_rows calls, batch-invariant), in two interchangeable implementations behind
 * struct kernels:
 *   kernels_ref  — plain loops written to read like SPEC, the yardstick for tests;
 *   kernels_fast — a hand-written row-few GEMM (AVX2/AVX-512) that streams its weights once
 *                  for every dense product, the multiplicative layer and the convolutions
 *                  (im2col), and hand-written AVX2 gathers for the sparse FF.
 * Kernels know nothing of files, MPI or protobuf; all buffers belong to the caller and no
 * kernel allocates. Element-wise pieces (LayerNorm, SRU, softmax) have one implementation.
 */
#ifndef STF_KERNELS_KERNELS_H
#define STF_KERNELS_KERNELS_H

#include <stdint.h>

/* Dimensions of a sparse FF layer (SPEC §1). */
struct sparse_ff_dims {
    uint32_t d, F, N, r; /* B = F / N blocks */
};

/* Scratch a sparse FF call needs: u (r), logits (F), chosen (F / N), h (F / N). */
struct sparse_ff_scratch {
    float *u;
    float *logits;
    uint32_t *chosen; /* unit index b*N + j_b of each block, for inspection and tests */
    float *h;         /* activation h_b of each block's chosen unit */
};

struct kernels {
    const char *name;
    /* y = x·W + b; W (in, out) row-major; b may be NULL. */
    void (*dense)(float *y, const float *x, const float *W, const float *b, uint32_t in,
                  uint32_t out);
    /* The outputs [o_begin, o_end) of dense only (y and W indexed as in dense, the rest of y
     * left alone; b, if not NULL, holds the range's o_end - o_begin biases), each bitwise
     * what dense gives: a tensor-parallel rank's columns of W. */
    void (*dense_range)(float *y, const float *x, const float *W, const float *b, uint32_t in,
                        uint32_t out, uint32_t o_begin, uint32_t o_end);
    /* SPEC §1 sparse FF: out = Σ_b ReLU(x·W1[:, u_b]) W2[u_b, :] + b2 */
    void (*sparse_ff)(float *out, const float *x, const float *c1, const float *c2, const float *cb,
                      const float *w1t, const float *w2, const float *b2,
                      struct sparse_ff_dims dims, struct sparse_ff_scratch *scratch);
    /* SPEC §1 multiplicative dense: y[s*M+m] = Σ_i x[i] G[s,i] P[i,m] + c[s*M+m].
     * scratch holds S*d floats. */
    void (*mult_dense)(float *y, const float *x, const float *G, const float *P, const float *c,
                       uint32_t d, uint32_t S, uint32_t M, float *scratch);
    /* SPEC §1 local convolution for the newest time step: rows[a] is y_{t-2+a} (S, M) for
     * a = 0..2 (rows[2] is the current row); W (3, Km, M, M); out (S, M).
     * scratch holds S * 3 * Km * M floats. */
    void (*local_conv)(float *out, const float *const rows[3], const float *W, const float *beta,
                       uint32_t S, uint32_t M, uint32_t Km, float *scratch);
    /* SPEC §2 causal attention of one query over n cached positions. kc, vc: (n, stride)
     * rows whose first H*dh entries are the heads; out (H*dh); scores holds n floats. */
    void (*attention)(float *out, const float *q, const float *kc, const float *vc, uint32_t n,
                      uint32_t stride, uint32_t H, uint32_t dh, float *scores);

    /* The same products for R ≥ 1 independent rows (R sessions' tokens at one step), each
     * row's result bitwise equal to the single-row call on that row: every output keeps one
     * accumulation order fixed by the data, never by R (batch-invariant). Dense weights are
     * read once per call, not once per row. Row r of an input or output starts at r times
     * the single-row length. */
    /* Y (R, out) = X (R, in)·W + b */
    void (*dense_rows)(float *Y, const float *X, const float *W, const float *b, uint32_t R,
                       uint32_t in, uint32_t out);
    /* out (R, d), X (R, d); scratch fields hold R times the single-row sizes, row-major. */
    void (*sparse_ff_rows)(float *out, const float *X, const float *c1, const float *c2,
                           const float *cb, const float *w1t, const float *w2, const float *b2,
                           uint32_t R, struct sparse_ff_dims dims,
                           struct sparse_ff_scratch *scratch);
    /* Y (R, S*M), X (R, d); scratch holds R*S*d floats. */
    void (*mult_dense_rows)(float *Y, const float *X, const float *G, const float *P,
                            const float *c, uint32_t R, uint32_t d, uint32_t S, uint32_t M,
                            float *scratch);
    /* out (R, S*M); rows[r] are row r's three time steps; scratch holds R*S*3*Km*M floats. */
    void (*local_conv_rows)(float *out, const float *const (*rows)[3], const float *W,
                            const float *beta, uint32_t R, uint32_t S, uint32_t M, uint32_t Km,
                            float *scratch);
    /* SPEC §2 LSH selection of one head's C entries (kernels/lsh.h: lsh_select_ref sorts
     * priorities as SPEC writes them, lsh_select_fast is one linear pass). */
    uint32_t (*lsh_select)(uint32_t *J, const uint64_t *sigs, uint32_t sig_stride, uint32_t n,
                           uint64_t q_sig, uint32_t n_hashes, uint32_t C, uint64_t *work);
    /* SPEC §2 attention of one head over the selected entries (kernels/lsh.h). */
    void (*lsh_attend)(float *out, const float *q, const float *qk, const float *v, uint32_t stride,
                       const float *scale, uint32_t scale_stride, const uint32_t *J, uint32_t nJ,
                       uint32_t self, uint32_t dh, float *scores);
};

extern const struct kernels kernels_ref;
extern const struct kernels kernels_fast;

/* Selects by name ("ref" or "fast"); NULL if unknown. */
const struct kernels *kernels_by_name(const char *name);

/* SPEC §1 LayerNorm, eps 1e-6, population variance. out may alias x. */
void layernorm(float *out, const float *x, const float *g, const float *b, uint32_t n);

/* SPEC §3 SRU step for n units: u (n) input, gates (3n) = u·W + b computed by the caller,
 * c (n) state updated in place, h (n) output. */
void sru_step(float *h, float *c, const float *u, const float *gates, uint32_t n);

/* Index of the first maximum. */
uint32_t argmax(const float *x, uint32_t n);

/* OpenBLAS worker threads and OpenMP threads both spin while they wait for work; with more
 * than one thread per rank they then steal each other's cores (measured: a 17b sparse block
 * took 12.7 ms on 2 threads against 5.0 ms on 1). Both runtimes read their settings from the
 * environment when they load, before main, so a program calls this first thing in main: if
 * OMP_WAIT_POLICY / OPENBLAS_THREAD_TIMEOUT are not set it sets them (passive, 2^4 cycles)
 * and executes itself again. Returns only if nothing needed changing or the re-exec failed. */
void kernels_prepare_process(char **argv);

/* Sets the threads OpenBLAS and the hand-written kernels may use (one rank per core wants 1).
 * Results do not depend on the thread count: no kernel splits a sum across threads (the
 * hand-written ones split outputs; OpenBLAS sgemm did not give the same bits for 4 rows on
 * 1 and 2 threads, and its order depends on the shape, which is why no product uses it). */
void kernels_set_threads(int n);

#endif

/* Reference q8 kernels: plain loops that follow SPEC and the rounding rules of kernels_q8.h
 * (quantise the activations, exact integer dot product per block, scale, sum over blocks in
 * order). Slow on purpose. */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_q8.h"

/* Σ_blocks d_x·d_w·(Σ q_x·q_w) over a row of n (already quantised activations). */
static float dot_q8_ref(const int8_t *xq, const float *xd, const struct q8_block *w, uint32_t n)
{
    float acc = 0.0f;
    for (uint32_t b = 0; b < q8_row_blocks(n); b++) {
        int32_t isum = 0;
        for (uint32_t j = 0; j < STF_Q8_BLOCK; j++)
            isum += (int32_t)xq[b * STF_Q8_BLOCK + j] * (int32_t)w[b].q[j];
        acc += (float)isum * (xd[b] * q8_half_to_float(w[b].d));
    }
    return acc;
}

static void dense_q8_ref(float *y, const float *x, const struct q8_block *wt, const float *b,
                         uint32_t in, uint32_t out, struct q8_scratch *qs)
{
    uint32_t nb = q8_row_blocks(in);
    q8_quantize_act(qs->q, qs->d, x, in);
    for (uint32_t o = 0; o < out; o++)
        y[o] = (b ? b[o] : 0.0f) + dot_q8_ref(qs->q, qs->d, wt + (uint64_t)o * nb, in);
}

/* SPEC §1 sparse FF: f32 controller; h_b = ReLU(x · W1[:, u_b]) on quantised x;
 * out = b2 + Σ_b h_b · dequant(W2[u_b, :]) */
static void sparse_ff_q8_ref(float *out, const float *x, const float *c1, const float *c2,
                             const float *cb, const struct q8_block *w1t, const struct q8_block *w2,
                             const float *b2, struct sparse_ff_dims dm, struct sparse_ff_scratch *s,
                             struct q8_scratch *qs)
{
    uint32_t d = dm.d, F = dm.F, N = dm.N, r = dm.r, B = F / N, nb = q8_row_blocks(d);
    kernels_ref.dense(s->u, x, c1, NULL, d, r);       /* u = x·C1 */
    kernels_ref.dense(s->logits, s->u, c2, cb, r, F); /* l = u·C2 + cb */
    q8_quantize_act(qs->q, qs->d, x, d);
    for (uint32_t i = 0; i < d; i++)
        out[i] = b2[i];
    for (uint32_t b = 0; b < B; b++) {
        uint32_t unit = b * N + argmax(s->logits + (uint64_t)b * N, N);
        s->chosen[b] = unit;
        float h = dot_q8_ref(qs->q, qs->d, w1t + (uint64_t)unit * nb, d);
        if (h < 0.0f) h = 0.0f; /* ReLU, no bias */
        if (s->h) s->h[b] = h;
        const struct q8_block *row2 = w2 + (uint64_t)unit * nb;
        for (uint32_t i = 0; i < d; i++) {
            const struct q8_block *blk = &row2[i / STF_Q8_BLOCK];
            out[i] += (h * q8_half_to_float(blk->d)) * (float)blk->q[i % STF_Q8_BLOCK];
        }
    }
}

/* SPEC §1 multiplicative dense: each scaled copy x ⊙ G[s] is quantised, then
 * y[s, m] = c[s·M + m] + Σ_i (x ⊙ G[s])[i] · Pᵀ[m, i] */
static void mult_dense_q8_ref(float *y, const float *x, const void *G, enum stf_dtype g_type,
                              const struct q8_block *pt, const float *c, uint32_t d, uint32_t S,
                              uint32_t M, struct q8_scratch *qs)
{
    uint32_t nb = q8_row_blocks(d);
    float *xs = qs->row;
    for (uint32_t s = 0; s < S; s++) {
        if (g_type == STF_DTYPE_F32) {
            const float *gs = (const float *)G + (uint64_t)s * d;
            for (uint32_t i = 0; i < d; i++)
                xs[i] = x[i] * gs[i];
        } else {
            const struct q8_block *gs = (const struct q8_block *)G + (uint64_t)s * nb;
            for (uint32_t i = 0; i < d; i++) {
                const struct q8_block *blk = &gs[i / STF_Q8_BLOCK];
                xs[i] = x[i] * (q8_half_to_float(blk->d) * (float)blk->q[i % STF_Q8_BLOCK]);
            }
        }
        q8_quantize_act(qs->q, qs->d, xs, d);
        for (uint32_t m = 0; m < M; m++)
            y[s * M + m] = c[s * M + m] + dot_q8_ref(qs->q, qs->d, pt + (uint64_t)m * nb, d);
    }
}

/* SPEC §1 local convolution: the im2col row of each module times the transposed kernel. */
static void local_conv_q8_ref(float *out, const float *const rows[3], const struct q8_block *wt,
                              const float *beta, uint32_t S, uint32_t M, uint32_t Km,
                              struct q8_scratch *qs)
{
    uint32_t K = 3 * Km * M, nb = q8_row_blocks(K);
    for (uint32_t s = 0; s < S; s++) {
        q8_conv_im2col(qs->row, rows, s, S, M, Km);
        q8_quantize_act(qs->q, qs->d, qs->row, K);
        for (uint32_t o = 0; o < M; o++)
            out[s * M + o] = beta[o] + dot_q8_ref(qs->q, qs->d, wt + (uint64_t)o * nb, K);
    }
}

/* Batches: each row on its own through the single-row kernel — batch-invariant by
 * construction, the yardstick of the fast versions. */
static void dense_rows_q8_ref(float *Y, const float *X, const struct q8_block *wt, const float *b,
                              uint32_t R, uint32_t in, uint32_t out, struct q8_scratch *qs)
{
    for (uint32_t r = 0; r < R; r++)
        dense_q8_ref(Y + (uint64_t)r * out, X + (uint64_t)r * in, wt, b, in, out, qs);
}

static void sparse_ff_rows_q8_ref(float *out, const float *X, const float *c1, const float *c2,
                                  const float *cb, const struct q8_block *w1t,
                                  const struct q8_block *w2, const float *b2, uint32_t R,
                                  struct sparse_ff_dims dm, struct sparse_ff_scratch *s,
                                  struct q8_scratch *qs)
{
    uint32_t B = dm.F / dm.N;
    for (uint32_t r = 0; r < R; r++) {
        struct sparse_ff_scratch row = {s->u + (uint64_t)r * dm.r, s->logits + (uint64_t)r * dm.F,
                                        s->chosen + (uint64_t)r * B, s->h + (uint64_t)r * B};
        sparse_ff_q8_ref(out + (uint64_t)r * dm.d, X + (uint64_t)r * dm.d, c1, c2, cb, w1t, w2, b2,
                         dm, &row, qs);
    }
}

static void mult_dense_rows_q8_ref(float *Y, const float *X, const void *G, enum stf_dtype g_type,
                                   const struct q8_block *pt, const float *c, uint32_t R,
                                   uint32_t d, uint32_t S, uint32_t M, struct q8_scratch *qs)
{
    for (uint32_t r = 0; r < R; r++)
        mult_dense_q8_ref(Y + (uint64_t)r * S * M, X + (uint64_t)r * d, G, g_type, pt, c, d, S, M,
                          qs);
}

static void local_conv_rows_q8_ref(float *out, const float *const (*rows)[3],
                                   const struct q8_block *wt, const float *beta, uint32_t R,
                                   uint32_t S, uint32_t M, uint32_t Km, struct q8_scratch *qs)
{
    for (uint32_t r = 0; r < R; r++)
        local_conv_q8_ref(out + (uint64_t)r * S * M, rows[r], wt, beta, S, M, Km, qs);
}

const struct kernels_q8 kernels_q8_ref = {
    .name = "ref",
    .dense = dense_q8_ref,
    .sparse_ff = sparse_ff_q8_ref,
    .mult_dense = mult_dense_q8_ref,
    .local_conv = local_conv_q8_ref,
    .dense_rows = dense_rows_q8_ref,
    .sparse_ff_rows = sparse_ff_rows_q8_ref,
    .mult_dense_rows = mult_dense_rows_q8_ref,
    .local_conv_rows = local_conv_rows_q8_ref,
};

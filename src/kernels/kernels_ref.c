/* Reference kernels: plain loops that follow SPEC line by line. Slow on purpose. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/lsh.h"

static void dense_range_ref(float *y, const float *x, const float *W, const float *b, uint32_t in,
                            uint32_t out, uint32_t o_begin, uint32_t o_end)
{
    for (uint32_t o = o_begin; o < o_end; o++) {
        float acc = b ? b[o - o_begin] : 0.0f;
        for (uint32_t i = 0; i < in; i++)
            acc += x[i] * W[(uint64_t)i * out + o];
        y[o] = acc;
    }
}

static void dense_ref(float *y, const float *x, const float *W, const float *b, uint32_t in,
                      uint32_t out)
{
    dense_range_ref(y, x, W, b, in, out, 0, out);
}

/* SPEC §1 sparse FF */
static void sparse_ff_ref(float *out, const float *x, const float *c1, const float *c2,
                          const float *cb, const float *w1t, const float *w2, const float *b2,
                          struct sparse_ff_dims dm, struct sparse_ff_scratch *s)
{
    uint32_t d = dm.d, F = dm.F, N = dm.N, r = dm.r, B = F / N;
    dense_ref(s->u, x, c1, NULL, d, r);       /* u = x·C1 */
    dense_ref(s->logits, s->u, c2, cb, r, F); /* l = u·C2 + cb */
    for (uint32_t i = 0; i < d; i++)
        out[i] = b2[i];
    for (uint32_t b = 0; b < B; b++) {
        uint32_t j = argmax(s->logits + (uint64_t)b * N, N); /* first maximum wins */
        uint32_t unit = b * N + j;
        s->chosen[b] = unit;
        const float *row1 = w1t + (uint64_t)unit * d;
        float h = 0.0f;
        for (uint32_t i = 0; i < d; i++)
            h += x[i] * row1[i];
        if (h < 0.0f) h = 0.0f; /* ReLU, no bias */
        if (s->h) s->h[b] = h;
        const float *row2 = w2 + (uint64_t)unit * d;
        for (uint32_t i = 0; i < d; i++)
            out[i] += h * row2[i];
    }
}

/* SPEC §1 multiplicative dense */
static void mult_dense_ref(float *y, const float *x, const float *G, const float *P, const float *c,
                           uint32_t d, uint32_t S, uint32_t M, float *scratch)
{
    (void)scratch;
    for (uint32_t s = 0; s < S; s++)
        for (uint32_t m = 0; m < M; m++) {
            float acc = c[s * M + m];
            for (uint32_t i = 0; i < d; i++)
                acc += x[i] * G[(uint64_t)s * d + i] * P[(uint64_t)i * M + m];
            y[s * M + m] = acc;
        }
}

/* SPEC §1 local convolution, causal in time, zero-padded across modules */
static void local_conv_ref(float *out, const float *const rows[3], const float *W,
                           const float *beta, uint32_t S, uint32_t M, uint32_t Km, float *scratch)
{
    (void)scratch;
    int half = (int)(Km - 1) / 2;
    for (uint32_t s = 0; s < S; s++)
        for (uint32_t o = 0; o < M; o++) {
            float acc = beta[o];
            for (uint32_t a = 0; a < 3; a++)
                for (uint32_t k = 0; k < Km; k++) {
                    int src = (int)s + (int)k - half;
                    if (src < 0 || src >= (int)S) continue;
                    for (uint32_t c = 0; c < M; c++)
                        acc += rows[a][(uint32_t)src * M + c] *
                               W[(((uint64_t)a * Km + k) * M + c) * M + o];
                }
            out[s * M + o] = acc;
        }
}

/* SPEC §2 causal softmax attention, scale 1/sqrt(dh) */
static void attention_ref(float *out, const float *q, const float *kc, const float *vc, uint32_t n,
                          uint32_t stride, uint32_t H, uint32_t dh, float *scores)
{
    float scale = 1.0f / sqrtf((float)dh);
    for (uint32_t h = 0; h < H; h++) {
        const float *qh = q + h * dh;
        float mx = -INFINITY;
        for (uint32_t t = 0; t < n; t++) {
            const float *kh = kc + (uint64_t)t * stride + h * dh;
            float dot = 0.0f;
            for (uint32_t i = 0; i < dh; i++)
                dot += qh[i] * kh[i];
            scores[t] = dot * scale;
            if (scores[t] > mx) mx = scores[t];
        }
        float sum = 0.0f;
        for (uint32_t t = 0; t < n; t++) {
            scores[t] = expf(scores[t] - mx);
            sum += scores[t];
        }
        float *oh = out + h * dh;
        for (uint32_t i = 0; i < dh; i++)
            oh[i] = 0.0f;
        for (uint32_t t = 0; t < n; t++) {
            const float *vh = vc + (uint64_t)t * stride + h * dh;
            float p = scores[t] / sum;
            for (uint32_t i = 0; i < dh; i++)
                oh[i] += p * vh[i];
        }
    }
}

/* Batches: each row on its own through the single-row kernel — batch-invariant by
 * construction, the yardstick of the fast versions. */
static void dense_rows_ref(float *Y, const float *X, const float *W, const float *b, uint32_t R,
                           uint32_t in, uint32_t out)
{
    for (uint32_t r = 0; r < R; r++)
        dense_ref(Y + (uint64_t)r * out, X + (uint64_t)r * in, W, b, in, out);
}

static void sparse_ff_rows_ref(float *out, const float *X, const float *c1, const float *c2,
                               const float *cb, const float *w1t, const float *w2, const float *b2,
                               uint32_t R, struct sparse_ff_dims dm, struct sparse_ff_scratch *s)
{
    uint32_t B = dm.F / dm.N;
    for (uint32_t r = 0; r < R; r++) {
        struct sparse_ff_scratch row = {s->u + (uint64_t)r * dm.r, s->logits + (uint64_t)r * dm.F,
                                        s->chosen + (uint64_t)r * B, s->h + (uint64_t)r * B};
        sparse_ff_ref(out + (uint64_t)r * dm.d, X + (uint64_t)r * dm.d, c1, c2, cb, w1t, w2, b2, dm,
                      &row);
    }
}

static void mult_dense_rows_ref(float *Y, const float *X, const float *G, const float *P,
                                const float *c, uint32_t R, uint32_t d, uint32_t S, uint32_t M,
                                float *scratch)
{
    for (uint32_t r = 0; r < R; r++)
        mult_dense_ref(Y + (uint64_t)r * S * M, X + (uint64_t)r * d, G, P, c, d, S, M, scratch);
}

static void local_conv_rows_ref(float *out, const float *const (*rows)[3], const float *W,
                                const float *beta, uint32_t R, uint32_t S, uint32_t M, uint32_t Km,
                                float *scratch)
{
    for (uint32_t r = 0; r < R; r++)
        local_conv_ref(out + (uint64_t)r * S * M, rows[r], W, beta, S, M, Km, scratch);
}

const struct kernels kernels_ref = {
    .name = "ref",
    .dense = dense_ref,
    .dense_range = dense_range_ref,
    .sparse_ff = sparse_ff_ref,
    .mult_dense = mult_dense_ref,
    .local_conv = local_conv_ref,
    .attention = attention_ref,
    .dense_rows = dense_rows_ref,
    .sparse_ff_rows = sparse_ff_rows_ref,
    .mult_dense_rows = mult_dense_rows_ref,
    .local_conv_rows = local_conv_rows_ref,
    .lsh_select = lsh_select_ref,
    .lsh_attend = lsh_attend_ref,
};

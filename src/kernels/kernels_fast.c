/* Fast kernels: OpenBLAS for dense products; AVX2/FMA gathers for the sparse FF (with a
 * portable fallback); im2col + one GEMM for the local convolution. Same contracts as
 * kernels_ref; results agree to rounding (tests/unit/test_kernels.c). */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

static float vec_dot(const float *a, const float *b, uint32_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void vec_axpy(float *y, float alpha, const float *x, uint32_t n)
{
    __m256 va = _mm256_set1_ps(alpha);
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        _mm256_storeu_ps(
            y + i + 8, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8)));
    }
    for (; i < n; i++)
        y[i] += alpha * x[i];
}
#else
static float vec_dot(const float *a, const float *b, uint32_t n)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++)
        s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static void vec_axpy(float *y, float alpha, const float *x, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}
#endif

static void dense_fast(float *y, const float *x, const float *W, const float *b, uint32_t in,
                       uint32_t out)
{
    if (b) memcpy(y, b, (size_t)out * sizeof *y);
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)in, (int)out, 1.0f, W, (int)out, x, 1,
                b ? 1.0f : 0.0f, y, 1);
}

/* SPEC §1 sparse FF. The controller is two small GEMVs; then each block reads one row of
 * W1ᵀ and, only when its ReLU is positive, one row of W2 — the 1/N of the weights.
 * Two phases so that threads never split a sum: the B dot products are independent, and the
 * W2 rows are accumulated by slices of the output, each slice summed over b in order. */
static void sparse_ff_fast(float *out, const float *x, const float *c1, const float *c2,
                           const float *cb, const float *w1t, const float *w2, const float *b2,
                           struct sparse_ff_dims dm, struct sparse_ff_scratch *s)
{
    uint32_t d = dm.d, F = dm.F, N = dm.N, r = dm.r, B = F / N;
    dense_fast(s->u, x, c1, NULL, d, r);
    dense_fast(s->logits, s->u, c2, cb, r, F);
    for (uint32_t b = 0; b < B; b++)
        s->chosen[b] = b * N + argmax(s->logits + (uint64_t)b * N, N);
    const uint32_t *chosen = s->chosen;
    float *h = s->h;
#pragma omp parallel for schedule(static) if ((uint64_t)B * d >= (1u << 18))
    for (uint32_t b = 0; b < B; b++) {
        if (b + 1 < B) __builtin_prefetch(w1t + (uint64_t)chosen[b + 1] * d);
        float v = vec_dot(x, w1t + (uint64_t)chosen[b] * d, d);
        h[b] = v > 0.0f ? v : 0.0f;
    }
    memcpy(out, b2, (size_t)d * sizeof *out);
#pragma omp parallel if ((uint64_t)B * d >= (1u << 18))
    {
        uint32_t lo = 0, hi = d;
#ifdef _OPENMP
        uint32_t nt = (uint32_t)omp_get_num_threads(), t = (uint32_t)omp_get_thread_num();
        uint32_t chunk = (d / nt + 15) / 16 * 16; /* whole cache lines per thread */
        lo = t * chunk < d ? t * chunk : d;
        hi = lo + chunk < d ? lo + chunk : d;
#endif
        for (uint32_t b = 0; b < B; b++)
            if (h[b] > 0.0f && lo < hi)
                vec_axpy(out + lo, h[b], w2 + (uint64_t)chosen[b] * d + lo, hi - lo);
    }
}

/* SPEC §1 multiplicative dense as S scaled copies of x times one shared P (one GEMM). */
static void mult_dense_fast(float *y, const float *x, const float *G, const float *P,
                            const float *c, uint32_t d, uint32_t S, uint32_t M, float *scratch)
{
    for (uint32_t s = 0; s < S; s++) {
        float *xs = scratch + (uint64_t)s * d;
        const float *gs = G + (uint64_t)s * d;
        for (uint32_t i = 0; i < d; i++)
            xs[i] = x[i] * gs[i];
    }
    memcpy(y, c, (size_t)S * M * sizeof *y);
    if (S == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)d, (int)M, 1.0f, P, (int)M, scratch, 1, 1.0f, y,
                    1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)S, (int)M, (int)d, 1.0f,
                    scratch, (int)d, P, (int)M, 1.0f, y, (int)M);
}

/* SPEC §1 local convolution: W (3, Km, M, M) is already the (3·Km·M, M) matrix of an
 * im2col product, so gather the 3·Km neighbour rows of each module and do one GEMM. */
static void local_conv_fast(float *out, const float *const rows[3], const float *W,
                            const float *beta, uint32_t S, uint32_t M, uint32_t Km, float *scratch)
{
    int half = (int)(Km - 1) / 2;
    uint32_t K = 3 * Km * M;
    for (uint32_t s = 0; s < S; s++) {
        float *xs = scratch + (uint64_t)s * K;
        for (uint32_t a = 0; a < 3; a++)
            for (uint32_t k = 0; k < Km; k++) {
                int src = (int)s + (int)k - half;
                float *dst = xs + (a * Km + k) * M;
                if (src < 0 || src >= (int)S)
                    memset(dst, 0, (size_t)M * sizeof *dst);
                else
                    memcpy(dst, rows[a] + (uint32_t)src * M, (size_t)M * sizeof *dst);
            }
    }
    for (uint32_t s = 0; s < S; s++)
        memcpy(out + (uint64_t)s * M, beta, (size_t)M * sizeof *out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)S, (int)M, (int)K, 1.0f, scratch,
                (int)K, W, (int)M, 1.0f, out, (int)M);
}

static void attention_fast(float *out, const float *q, const float *kc, const float *vc, uint32_t n,
                           uint32_t stride, uint32_t H, uint32_t dh, float *scores)
{
    float scale = 1.0f / sqrtf((float)dh);
    for (uint32_t h = 0; h < H; h++) {
        const float *qh = q + h * dh;
        float mx = -INFINITY;
        for (uint32_t t = 0; t < n; t++) {
            scores[t] = vec_dot(qh, kc + (uint64_t)t * stride + h * dh, dh) * scale;
            if (scores[t] > mx) mx = scores[t];
        }
        float sum = 0.0f;
        for (uint32_t t = 0; t < n; t++) {
            scores[t] = expf(scores[t] - mx);
            sum += scores[t];
        }
        float inv = 1.0f / sum;
        float *oh = out + h * dh;
        memset(oh, 0, (size_t)dh * sizeof *oh);
        for (uint32_t t = 0; t < n; t++)
            vec_axpy(oh, scores[t] * inv, vc + (uint64_t)t * stride + h * dh, dh);
    }
}

const struct kernels kernels_fast = {
    .name = "fast",
    .dense = dense_fast,
    .sparse_ff = sparse_ff_fast,
    .mult_dense = mult_dense_fast,
    .local_conv = local_conv_fast,
    .attention = attention_fast,
};

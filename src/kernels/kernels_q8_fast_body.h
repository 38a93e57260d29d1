/* The body of the fast q8 kernels, compiled twice: kernels_q8_fast.c (the build's baseline,
 * AVX2: vpmaddubsw + vpmaddwd) and kernels_q8_vnni.c (with -mavxvnni: vpdpbusd). The file
 * including it defines Q8_FAST_TABLE, the name of the table it gets. Both compute the same
 * integer sums and the same float operations, so their results are bitwise equal.
 * Same contracts and rounding as kernels_q8_ref (kernels_q8.h).
 *   - dense and the sparse FF's W1ᵀ rows: one row per output, 4 rows at a time sharing the
 *     quantised x; int8 dot product per block (AVX-VNNI / AVX512-VNNI vpdpbusd, or AVX2
 *     vpmaddubsw + vpmaddwd), scaled and summed in 8 float lanes, lanes added at the end;
 *   - W2 rows of the sparse FF: dequantise and axpy by slices of the output;
 *   - multiplicative layer and local convolution: a small GEMM of S quantised activation rows
 *     by the q8 weight rows, with the activations interleaved 8 rows to a vector so that one
 *     vpdpbusd computes 4 products for 8 rows at once (lane = row); per block and lane the
 *     arithmetic is exactly the reference's (int32 sum, · (d_x·d_w), + accumulator), so these
 *     two kernels match kernels_q8_ref bit for bit.
 * Threads (OpenMP) split outputs, never a sum. */
#include <math.h>
#include <string.h>

#include "kernels/kernels_q8.h"

#include "kernels/kernels.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define Q8_SIMD 1
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define Q8_VNNI           1
#define DPBUSD(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#elif defined(__AVXVNNI__)
#define Q8_VNNI           1
#define DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32((acc), (u), (s))
#else
#define Q8_VNNI 0
#endif
#else
#define Q8_SIMD 0
#endif

/* Work below this many multiply-adds stays on one thread. */
#define Q8_PARALLEL_MIN (1u << 18)

/* The f32 controller of the sparse FF (x·C1, u·C2 + cb): the f32 fast kernels' row-few GEMM,
 * whose per-output order is fixed whatever the thread count (OpenBLAS's sgemv split the sum
 * by threads, and on this VM it ran its SSE3 "Prescott" kernel). */
static void matvec_f32(float *y, const float *x, const float *W, const float *b, uint32_t in,
                       uint32_t out)
{
    kernels_fast.dense(y, x, W, b, in, out);
}

#if Q8_SIMD
static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

/* 8 int32 lanes whose sum is Σ x·w over 32 int8 pairs (exact). */
static inline __m256i dot32(__m256i x, __m256i w)
{
    __m256i aw = _mm256_sign_epi8(w, w), sx = _mm256_sign_epi8(x, w);
#if Q8_VNNI
    return DPBUSD(_mm256_setzero_si256(), aw, sx);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
#endif
}

static inline float half_to_float(uint16_t h)
{
    return _cvtsh_ss(h);
}

/* The activation rounding of q8_quantize_act, 32 at a time: identical results (max, one
 * division, one reciprocal, one multiply, round half to even). */
static void quantize_act_fast(int8_t *q, float *d, const float *x, uint32_t n)
{
    uint32_t nb = q8_row_blocks(n), full = n / STF_Q8_BLOCK;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (uint32_t b = 0; b < full; b++) {
        const float *xb = x + b * STF_Q8_BLOCK;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 m =
            _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, absmask), _mm256_and_ps(v1, absmask)),
                          _mm256_max_ps(_mm256_and_ps(v2, absmask), _mm256_and_ps(v3, absmask)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        float amax = _mm_cvtss_f32(m4);
        float db = amax / 127.0f, id = db > 0.0f ? 1.0f / db : 0.0f;
        d[b] = db;
        __m256 vid = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + b * STF_Q8_BLOCK), p);
    }
    if (full < nb) /* a ragged tail block: the scalar definition */
        q8_quantize_act(q + full * STF_Q8_BLOCK, d + full, x + full * STF_Q8_BLOCK,
                        n - full * STF_Q8_BLOCK);
}

/* One q8 row against the quantised x: Σ_b d_x·d_w·(Σ q_x·q_w), 8 float lanes. */
static float dot_row(const int8_t *xq, const float *xd, const struct q8_block *w, uint32_t nb)
{
    __m256 acc = _mm256_setzero_ps();
    for (uint32_t b = 0; b < nb; b++) {
        __m256i t = dot32(_mm256_load_si256((const __m256i *)(xq + b * STF_Q8_BLOCK)),
                          _mm256_loadu_si256((const __m256i *)w[b].q));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(xd[b] * half_to_float(w[b].d)),
                              acc);
    }
    return hsum256(acc);
}

/* Four rows at once (x loaded once per block). */
static void dot_rows4(float *out, const int8_t *xq, const float *xd, const struct q8_block *w0,
                      uint64_t stride, uint32_t nb)
{
    const struct q8_block *w1 = w0 + stride, *w2 = w1 + stride, *w3 = w2 + stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (uint32_t b = 0; b < nb; b++) {
        __m256i x = _mm256_load_si256((const __m256i *)(xq + b * STF_Q8_BLOCK));
        float dx = xd[b];
        __builtin_prefetch(w0 + b + 8);
        __builtin_prefetch(w1 + b + 8);
        __builtin_prefetch(w2 + b + 8);
        __builtin_prefetch(w3 + b + 8);
        a0 = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(dot32(x, _mm256_loadu_si256((const __m256i *)w0[b].q))),
            _mm256_set1_ps(dx * half_to_float(w0[b].d)), a0);
        a1 = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(dot32(x, _mm256_loadu_si256((const __m256i *)w1[b].q))),
            _mm256_set1_ps(dx * half_to_float(w1[b].d)), a1);
        a2 = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(dot32(x, _mm256_loadu_si256((const __m256i *)w2[b].q))),
            _mm256_set1_ps(dx * half_to_float(w2[b].d)), a2);
        a3 = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(dot32(x, _mm256_loadu_si256((const __m256i *)w3[b].q))),
            _mm256_set1_ps(dx * half_to_float(w3[b].d)), a3);
    }
    out[0] = hsum256(a0);
    out[1] = hsum256(a1);
    out[2] = hsum256(a2);
    out[3] = hsum256(a3);
}

/* y += h · dequant(row) over elements [lo, hi) (lo, hi multiples of 32, or hi = n). */
static void axpy_row(float *y, float h, const struct q8_block *row, uint32_t lo, uint32_t hi)
{
    uint32_t b = lo / STF_Q8_BLOCK;
    for (uint32_t i = lo; i < hi; i += STF_Q8_BLOCK, b++) {
        __m256 v = _mm256_set1_ps(h * half_to_float(row[b].d));
        __m256i q = _mm256_loadu_si256((const __m256i *)row[b].q);
        __m128i ql = _mm256_castsi256_si128(q), qh = _mm256_extracti128_si256(q, 1);
        __m256 f0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(ql));
        __m256 f1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(ql, 8)));
        __m256 f2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(qh));
        __m256 f3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(qh, 8)));
        if (hi - i >= STF_Q8_BLOCK) {
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(v, f0, _mm256_loadu_ps(y + i)));
            _mm256_storeu_ps(y + i + 8, _mm256_fmadd_ps(v, f1, _mm256_loadu_ps(y + i + 8)));
            _mm256_storeu_ps(y + i + 16, _mm256_fmadd_ps(v, f2, _mm256_loadu_ps(y + i + 16)));
            _mm256_storeu_ps(y + i + 24, _mm256_fmadd_ps(v, f3, _mm256_loadu_ps(y + i + 24)));
        } else {
            float tmp[STF_Q8_BLOCK];
            _mm256_storeu_ps(tmp, f0);
            _mm256_storeu_ps(tmp + 8, f1);
            _mm256_storeu_ps(tmp + 16, f2);
            _mm256_storeu_ps(tmp + 24, f3);
            float hv = h * half_to_float(row[b].d);
            for (uint32_t j = 0; i + j < hi; j++)
                y[i + j] = fmaf(hv, tmp[j], y[i + j]);
        }
    }
}
#else
static void quantize_act_fast(int8_t *q, float *d, const float *x, uint32_t n)
{
    q8_quantize_act(q, d, x, n);
}

static float half_to_float(uint16_t h)
{
    return q8_half_to_float(h);
}

static float dot_row(const int8_t *xq, const float *xd, const struct q8_block *w, uint32_t nb)
{
    float acc = 0.0f;
    for (uint32_t b = 0; b < nb; b++) {
        int32_t s = 0;
        for (uint32_t j = 0; j < STF_Q8_BLOCK; j++)
            s += (int32_t)xq[b * STF_Q8_BLOCK + j] * w[b].q[j];
        acc += (float)s * (xd[b] * half_to_float(w[b].d));
    }
    return acc;
}

static void dot_rows4(float *out, const int8_t *xq, const float *xd, const struct q8_block *w0,
                      uint64_t stride, uint32_t nb)
{
    for (int r = 0; r < 4; r++)
        out[r] = dot_row(xq, xd, w0 + r * stride, nb);
}

static void axpy_row(float *y, float h, const struct q8_block *row, uint32_t lo, uint32_t hi)
{
    for (uint32_t i = lo; i < hi; i++)
        y[i] += (h * half_to_float(row[i / STF_Q8_BLOCK].d)) *
                (float)row[i / STF_Q8_BLOCK].q[i % STF_Q8_BLOCK];
}
#endif

static void dense_q8_fast(float *y, const float *x, const struct q8_block *wt, const float *b,
                          uint32_t in, uint32_t out, struct q8_scratch *qs)
{
    uint32_t nb = q8_row_blocks(in), groups = out / 4;
    quantize_act_fast(qs->q, qs->d, x, in);
    const int8_t *xq = qs->q;
    const float *xd = qs->d;
#pragma omp parallel for schedule(static) if ((uint64_t)in * out >= Q8_PARALLEL_MIN)
    for (uint32_t g = 0; g < groups; g++) {
        float r[4];
        dot_rows4(r, xq, xd, wt + (uint64_t)g * 4 * nb, nb, nb);
        for (uint32_t k = 0; k < 4; k++)
            y[g * 4 + k] = (b ? b[g * 4 + k] : 0.0f) + r[k];
    }
    for (uint32_t o = groups * 4; o < out; o++)
        y[o] = (b ? b[o] : 0.0f) + dot_row(xq, xd, wt + (uint64_t)o * nb, nb);
}

/* SPEC §1 sparse FF: f32 controller (row-few GEMM); B dot products of quantised x with chosen W1ᵀ
 * rows (independent); then the W2 rows accumulated by output slices of whole blocks, each slice
 * summed over b in order, so no thread ever splits a sum. */
static void sparse_ff_q8_fast(float *out, const float *x, const float *c1, const float *c2,
                              const float *cb, const struct q8_block *w1t,
                              const struct q8_block *w2, const float *b2, struct sparse_ff_dims dm,
                              struct sparse_ff_scratch *s, struct q8_scratch *qs)
{
    uint32_t d = dm.d, F = dm.F, N = dm.N, r = dm.r, B = F / N, nb = q8_row_blocks(d);
    matvec_f32(s->u, x, c1, NULL, d, r);
    matvec_f32(s->logits, s->u, c2, cb, r, F);
    for (uint32_t b = 0; b < B; b++)
        s->chosen[b] = b * N + argmax(s->logits + (uint64_t)b * N, N);
    quantize_act_fast(qs->q, qs->d, x, d);
    const uint32_t *chosen = s->chosen;
    const int8_t *xq = qs->q;
    const float *xd = qs->d;
    float *h = s->h;
#pragma omp parallel for schedule(static) if ((uint64_t)B * d >= Q8_PARALLEL_MIN)
    for (uint32_t b = 0; b < B; b++) {
        if (b + 1 < B) __builtin_prefetch(w1t + (uint64_t)chosen[b + 1] * nb);
        float v = dot_row(xq, xd, w1t + (uint64_t)chosen[b] * nb, nb);
        h[b] = v > 0.0f ? v : 0.0f;
    }
    memcpy(out, b2, (size_t)d * sizeof *out);
#pragma omp parallel if ((uint64_t)B * d >= Q8_PARALLEL_MIN)
    {
        uint32_t lo = 0, hi = d;
#ifdef _OPENMP
        uint32_t nt = (uint32_t)omp_get_num_threads(), t = (uint32_t)omp_get_thread_num();
        uint32_t chunk = (nb + nt - 1) / nt * STF_Q8_BLOCK; /* whole blocks per thread */
        lo = t * chunk < d ? t * chunk : d;
        hi = lo + chunk < d ? lo + chunk : d;
#endif
        for (uint32_t b = 0; b < B; b++)
            if (h[b] > 0.0f && lo < hi) axpy_row(out, h[b], w2 + (uint64_t)chosen[b] * nb, lo, hi);
    }
}

/* ---- the small GEMM of the multiplicative layer and the convolution ----
 * Activation rows are quantised (q8_quantize_act rounding) and stored interleaved: for block
 * k, 4-byte group g (of 8) and tile t (rows 8t..8t+7), 32 bytes = the 4 bytes of group g of
 * each of the tile's 8 rows, at offset ((k·8 + g)·T + t)·32; with VNNI as u8 = q + 128 (the
 * unsigned operand of vpdpbusd; the 128·Σq_w excess is subtracted exactly). Scales at
 * d[(k·T + t)·8 + lane]. */
struct q8_tiles {
    uint8_t *x;
    float *d;
    uint32_t T, nb;
};

static void tiles_store_row(struct q8_tiles *tl, uint32_t s, const int8_t *q, const float *d)
{
    uint32_t t = s / 8, lane = s % 8;
#if Q8_SIMD && Q8_VNNI
    const uint32_t flip = 0x80808080u; /* q + 128 as u8 */
#else
    const uint32_t flip = 0;
#endif
    uint8_t *dst = tl->x + (uint64_t)t * 32 + lane * 4;
    uint64_t step = (uint64_t)tl->T * 32; /* from group g to g + 1 */
    for (uint32_t k = 0; k < tl->nb; k++) {
        tl->d[((uint64_t)k * tl->T + t) * 8 + lane] = d[k];
        for (uint32_t g = 0; g < 8; g++, dst += step) {
            uint32_t v;
            memcpy(&v, q + k * STF_Q8_BLOCK + g * 4, 4);
            v ^= flip;
            memcpy(dst, &v, 4);
        }
    }
}

/* Rows S..8T-1 of the last tile: zero activations, zero scales (their outputs are dropped). */
static void tiles_pad(struct q8_tiles *tl, uint32_t S)
{
#if Q8_SIMD && Q8_VNNI
    const uint8_t zero = 0x80; /* q = 0 stored as u8 */
#else
    const uint8_t zero = 0;
#endif
    for (uint32_t s = S; s < tl->T * 8; s++)
        for (uint32_t k = 0; k < tl->nb; k++) {
            tl->d[((uint64_t)k * tl->T + s / 8) * 8 + s % 8] = 0.0f;
            for (uint32_t g = 0; g < 8; g++)
                memset(tl->x + (((uint64_t)k * 8 + g) * tl->T + s / 8) * 32 + (s % 8) * 4, zero, 4);
        }
}

#if Q8_SIMD
/* acc lanes (rows of tiles t0..t0+NT-1) for weight row w: per block, the exact int32 sum
 * Σ q_x·q_w, then acc += (float)isum · (d_x · d_w), as the reference does. */
static inline __attribute__((always_inline)) void gemm_row_tiles(__m256 *acc,
                                                                 const struct q8_tiles *tl,
                                                                 uint32_t t0, const int NT,
                                                                 const struct q8_block *w)
{
    __m256 f[4];
    for (int t = 0; t < NT; t++)
        f[t] = _mm256_setzero_ps();
    for (uint32_t k = 0; k < tl->nb; k++) {
        __m256i a[4];
        for (int t = 0; t < NT; t++)
            a[t] = _mm256_setzero_si256();
#if Q8_VNNI
        __m256i corr = _mm256_setzero_si256();
        const __m256i k80 = _mm256_set1_epi8((char)0x80);
#endif
        const uint8_t *xk = tl->x + (uint64_t)k * 8 * tl->T * 32;
        for (int g = 0; g < 8; g++) {
            int32_t wg;
            memcpy(&wg, w[k].q + 4 * g, 4);
            __m256i wb = _mm256_set1_epi32(wg);
#if Q8_VNNI
            corr = DPBUSD(corr, k80, wb);
            for (int t = 0; t < NT; t++)
                a[t] = DPBUSD(
                    a[t],
                    _mm256_load_si256((const __m256i *)(xk + ((uint64_t)g * tl->T + t0 + t) * 32)),
                    wb);
#else
            __m256i aw = _mm256_sign_epi8(wb, wb);
            for (int t = 0; t < NT; t++) {
                __m256i x =
                    _mm256_load_si256((const __m256i *)(xk + ((uint64_t)g * tl->T + t0 + t) * 32));
                a[t] = _mm256_add_epi32(
                    a[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, wb)),
                                            _mm256_set1_epi16(1)));
            }
#endif
        }
        __m256 dw = _mm256_set1_ps(half_to_float(w[k].d));
        for (int t = 0; t < NT; t++) {
#if Q8_VNNI
            a[t] = _mm256_sub_epi32(a[t], corr);
#endif
            __m256 sc =
                _mm256_mul_ps(_mm256_load_ps(tl->d + ((uint64_t)k * tl->T + t0 + t) * 8), dw);
            f[t] = _mm256_add_ps(f[t], _mm256_mul_ps(_mm256_cvtepi32_ps(a[t]), sc));
        }
    }
    for (int t = 0; t < NT; t++)
        acc[t] = f[t];
}
#endif

/* y[s·ldy + n] = bias(s, n) + Σ_K X[s, K] · W[n, K] for s < S, n < Nout; the bias is
 * bias[s·bias_s + n]. */
static void gemm_q8(float *y, uint32_t ldy, const struct q8_tiles *tl, uint32_t S,
                    const struct q8_block *W, uint32_t Nout, const float *bias, uint32_t bias_s)
{
    uint32_t nb = tl->nb;
#pragma omp parallel for schedule(static) if ((uint64_t)S * Nout * nb * 32 >= Q8_PARALLEL_MIN)
    for (uint32_t n = 0; n < Nout; n++) {
        const struct q8_block *w = W + (uint64_t)n * nb;
        for (uint32_t t0 = 0; t0 < tl->T; t0 += 4) {
            float lanes[4][8];
#if Q8_SIMD
            __m256 acc[4];
            uint32_t nt = tl->T - t0 < 4 ? tl->T - t0 : 4;
            switch (nt) {
            case 1:
                gemm_row_tiles(acc, tl, t0, 1, w);
                break;
            case 2:
                gemm_row_tiles(acc, tl, t0, 2, w);
                break;
            case 3:
                gemm_row_tiles(acc, tl, t0, 3, w);
                break;
            default:
                gemm_row_tiles(acc, tl, t0, 4, w);
                break;
            }
            for (uint32_t t = 0; t < nt; t++)
                _mm256_storeu_ps(lanes[t], acc[t]);
#else
            uint32_t nt = tl->T - t0 < 4 ? tl->T - t0 : 4;
            for (uint32_t t = 0; t < nt; t++)
                for (uint32_t l = 0; l < 8; l++) {
                    float f = 0.0f;
                    for (uint32_t k = 0; k < nb; k++) {
                        int32_t isum = 0;
                        for (uint32_t g = 0; g < 8; g++)
                            for (uint32_t j = 0; j < 4; j++)
                                isum += (int32_t)(int8_t)
                                            tl->x[(((uint64_t)k * 8 + g) * tl->T + t0 + t) * 32 +
                                                  l * 4 + j] *
                                        w[k].q[g * 4 + j];
                        f += (float)isum * (tl->d[((uint64_t)k * tl->T + t0 + t) * 8 + l] *
                                            half_to_float(w[k].d));
                    }
                    lanes[t][l] = f;
                }
#endif
            for (uint32_t t = 0; t < nt; t++)
                for (uint32_t l = 0; l < 8; l++) {
                    uint32_t s = (t0 + t) * 8 + l;
                    if (s < S)
                        y[(uint64_t)s * ldy + n] = bias[(uint64_t)s * bias_s + n] + lanes[t][l];
                }
        }
    }
}

static void tiles_init(struct q8_tiles *tl, struct q8_scratch *qs, uint32_t S, uint32_t n)
{
    tl->T = (S + 7) / 8;
    tl->nb = q8_row_blocks(n);
    tl->x = (uint8_t *)qs->q;
    tl->d = qs->d;
}

/* SPEC §1 multiplicative dense: quantise each scaled copy x ⊙ G[s] into the tiles, then one
 * small GEMM against Pᵀ (M rows of d), streamed once per 4 tiles. */
static void mult_dense_q8_fast(float *y, const float *x, const void *G, enum stf_dtype g_type,
                               const struct q8_block *pt, const float *c, uint32_t d, uint32_t S,
                               uint32_t M, struct q8_scratch *qs)
{
    struct q8_tiles tl;
    tiles_init(&tl, qs, S, d);
    uint32_t nb = tl.nb;
    float *xs = qs->row;
    int8_t *rq = (int8_t *)(qs->row + (uint64_t)nb * STF_Q8_BLOCK);
    float *rd = (float *)(rq + (uint64_t)nb * STF_Q8_BLOCK);
    for (uint32_t s = 0; s < S; s++) {
        if (g_type == STF_DTYPE_F32) {
            const float *gs = (const float *)G + (uint64_t)s * d;
            for (uint32_t i = 0; i < d; i++)
                xs[i] = x[i] * gs[i];
        } else {
            const struct q8_block *gs = (const struct q8_block *)G + (uint64_t)s * nb;
            for (uint32_t b = 0; b < nb; b++) {
                float gd = half_to_float(gs[b].d);
                uint32_t lo = b * STF_Q8_BLOCK, hi = lo + STF_Q8_BLOCK < d ? lo + STF_Q8_BLOCK : d;
                for (uint32_t i = lo; i < hi; i++)
                    xs[i] = x[i] * (gd * (float)gs[b].q[i - lo]);
            }
        }
        quantize_act_fast(rq, rd, xs, d);
        tiles_store_row(&tl, s, rq, rd);
    }
    tiles_pad(&tl, S);
    gemm_q8(y, M, &tl, S, pt, M, c, M);
}

/* SPEC §1 local convolution: im2col rows (3·Km·M) of each module, quantised into the tiles,
 * times the transposed kernel (M rows). */
static void local_conv_q8_fast(float *out, const float *const rows[3], const struct q8_block *wt,
                               const float *beta, uint32_t S, uint32_t M, uint32_t Km,
                               struct q8_scratch *qs)
{
    uint32_t K = 3 * Km * M;
    struct q8_tiles tl;
    tiles_init(&tl, qs, S, K);
    float *col = qs->row;
    int8_t *rq = (int8_t *)(qs->row + (uint64_t)tl.nb * STF_Q8_BLOCK);
    float *rd = (float *)(rq + (uint64_t)tl.nb * STF_Q8_BLOCK);
    for (uint32_t s = 0; s < S; s++) {
        q8_conv_im2col(col, rows, s, S, M, Km);
        quantize_act_fast(rq, rd, col, K);
        tiles_store_row(&tl, s, rq, rd);
    }
    tiles_pad(&tl, S);
    gemm_q8(out, M, &tl, S, wt, M, beta, 0);
}

const struct kernels_q8 Q8_FAST_TABLE = {
    .name = Q8_FAST_NAME,
    .dense = dense_q8_fast,
    .sparse_ff = sparse_ff_q8_fast,
    .mult_dense = mult_dense_q8_fast,
    .local_conv = local_conv_q8_fast,
};

/* Fast kernels: a hand-written row-few GEMM for every dense product (batch-invariant: one
 * fixed order per output whatever the number of rows); AVX2/FMA gathers for the sparse FF
 * (with a portable fallback); im2col + that GEMM for the local convolution. Same contracts as
 * kernels_ref; results agree to rounding (tests/unit/test_kernels.c). */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/lsh.h"

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

/* vec_dot and vec_axpy that also prefetch the row the next call will read (next, n floats,
 * NULL for none), a line per line consumed: the gathered rows of the sparse FF are 4 KiB
 * pages apart, where the hardware prefetchers stop. */
static float vec_dot_next(const float *a, const float *b, uint32_t n, const float *next)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        if (next) {
            _mm_prefetch((const char *)(next + i), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + i + 16), _MM_HINT_T0);
        }
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

static void vec_axpy_next(float *y, float alpha, const float *x, uint32_t n, const float *next)
{
    __m256 va = _mm256_set1_ps(alpha);
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        if (next) _mm_prefetch((const char *)(next + i), _MM_HINT_T0);
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

static float vec_dot_next(const float *a, const float *b, uint32_t n, const float *next)
{
    (void)next;
    return vec_dot(a, b, n);
}

static void vec_axpy_next(float *y, float alpha, const float *x, uint32_t n, const float *next)
{
    (void)next;
    vec_axpy(y, alpha, x, n);
}
#endif

static void rows_gemm(float *y, const float *A, uint64_t lda, const float *B, uint32_t Rows,
                      uint32_t K, uint32_t N);

/* Row-few GEMM: y (R, N) += A (R, K) · B (K, N), all row-major with leading dimensions
 * lda, N, N; the products of SPEC §1's multiplicative dense (A = the S scaled copies of x,
 * B = P) and local convolution (A = the im2col rows, B = W) have few rows (8 to 64) and a
 * B of 0.25 to 147 MB, read once here.
 *
 * A BLAS packs all of B for the few rows of work (at 17b the head's 147 MB P: 28.6 ms
 * against 10.5 ms for one pass). Here B is read once, block by block: for rows k0..k0+ROWS_KB
 * of B, each tile of ROWS_TW columns is loaded from memory once and applied to the ROWS_RG rows
 * of a row group whose accumulators live in registers (a group's y tile is re-read from L1/L2
 * once per block); further row groups re-read the tile from L1. A tail narrower than a tile
 * uses masked loads.
 *
 * Accumulation order: every y[r,n] adds A[r,k]·B[k,n] with one fused multiply-add per k,
 * k = 0, 1, ..., K−1 in order, onto the value y held. Vector lanes, masked lanes and the
 * threads (which split the columns, never k) all do exactly that, so the result depends
 * neither on the thread count, the tiling, the number of rows nor where a column falls:
 * a row computed with others is bitwise the row computed alone (batch-invariant). */
#if defined(__AVX512F__)
typedef __m512 rvec;
typedef __mmask16 rmask;
#define ROWS_VL            16
#define ROWS_RG            8 /* 8 rows x 2 vectors = 16 of the 32 zmm registers accumulate */
#define rv_load(p)         _mm512_loadu_ps(p)
#define rv_store(p, v)     _mm512_storeu_ps(p, v)
#define rv_bcast(p)        _mm512_set1_ps(*(p))
#define rv_fma(a, b, c)    _mm512_fmadd_ps(a, b, c)
#define rv_mask(n)         ((rmask)((1u << (n)) - 1u))
#define rv_mload(p, k)     _mm512_maskz_loadu_ps(k, p)
#define rv_mstore(p, k, v) _mm512_mask_storeu_ps(p, k, v)
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 rvec;
typedef __m256i rmask;
#define ROWS_VL         8
#define ROWS_RG         4 /* 4 rows x 2 vectors = 8 of the 16 ymm registers accumulate */
#define rv_load(p)      _mm256_loadu_ps(p)
#define rv_store(p, v)  _mm256_storeu_ps(p, v)
#define rv_bcast(p)     _mm256_broadcast_ss(p)
#define rv_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define rv_mask(n)                                                                                 \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define rv_mload(p, k)     _mm256_maskload_ps(p, k)
#define rv_mstore(p, k, v) _mm256_maskstore_ps(p, k, v)
#endif
/* Rows of B per block: a block's rows are the streams the prefetchers follow, and the y tiles
 * are reloaded once per block. 8 measured best at the 17b head (32: 1.3x slower; many
 * streams defeat the hardware prefetcher). ROWS_PFD: software prefetch distance along each
 * row, in floats (512 bytes: 0.78x the time of one sgemv pass over P, against 0.99x without). */
#define ROWS_KB  8
#define ROWS_PFD 128
/* Bytes of B a block of a narrow B may span (see rows_gemm): 16 KiB measured best at the 17b
 * Sparse QKV shapes (1.3x faster than 8 rows for the multiplicative layer and the
 * convolutions; 24 and 32 KiB no better). */
#define ROWS_KB_L1 16384
/* Bytes of y one column panel may span (see rows_gemm). */
#define ROWS_PANEL (256u * 1024u)

#ifdef ROWS_VL
#define ROWS_TW (2 * ROWS_VL)
/* y[r0+r, n0..n0+ROWS_TW) += Σ_{k in [k0,k1)} A[r0+r, k] · B[k, n0..], r < R; the first
 * row group of a tile prefetches its rows' next lines. */
static inline __attribute__((always_inline)) void rows_tile2(float *y, const float *A, uint64_t lda,
                                                             const float *B, uint32_t N,
                                                             uint32_t r0, uint32_t R, uint32_t k0,
                                                             uint32_t k1, uint32_t n0, int prefetch)
{
    rvec a0[ROWS_RG], a1[ROWS_RG];
    for (uint32_t r = 0; r < R; r++) {
        a0[r] = rv_load(y + (uint64_t)(r0 + r) * N + n0);
        a1[r] = rv_load(y + (uint64_t)(r0 + r) * N + n0 + ROWS_VL);
    }
    for (uint32_t k = k0; k < k1; k++) {
        const float *br = B + (uint64_t)k * N + n0, *ar = A + r0 * lda + k;
        if (prefetch)
            for (uint32_t j = 0; j < ROWS_TW; j += 16)
                _mm_prefetch((const char *)(br + ROWS_PFD + j), _MM_HINT_T0);
        rvec b0 = rv_load(br), b1 = rv_load(br + ROWS_VL);
        for (uint32_t r = 0; r < R; r++) {
            rvec xb = rv_bcast(ar + r * lda);
            a0[r] = rv_fma(xb, b0, a0[r]);
            a1[r] = rv_fma(xb, b1, a1[r]);
        }
    }
    for (uint32_t r = 0; r < R; r++) {
        rv_store(y + (uint64_t)(r0 + r) * N + n0, a0[r]);
        rv_store(y + (uint64_t)(r0 + r) * N + n0 + ROWS_VL, a1[r]);
    }
}

/* The same on the last w < ROWS_TW columns: one or two vectors, the last one masked. */
static void rows_tile_tail(float *y, const float *A, uint64_t lda, const float *B, uint32_t N,
                           uint32_t r0, uint32_t R, uint32_t k0, uint32_t k1, uint32_t n0,
                           uint32_t w)
{
    rmask m0 = rv_mask(w < ROWS_VL ? w : ROWS_VL), m1 = rv_mask(w > ROWS_VL ? w - ROWS_VL : 0);
    rvec a0[ROWS_RG], a1[ROWS_RG];
    for (uint32_t r = 0; r < R; r++) {
        a0[r] = rv_mload(y + (uint64_t)(r0 + r) * N + n0, m0);
        a1[r] = rv_mload(y + (uint64_t)(r0 + r) * N + n0 + ROWS_VL, m1);
    }
    for (uint32_t k = k0; k < k1; k++) {
        const float *br = B + (uint64_t)k * N + n0, *ar = A + r0 * lda + k;
        rvec b0 = rv_mload(br, m0), b1 = rv_mload(br + ROWS_VL, m1);
        for (uint32_t r = 0; r < R; r++) {
            rvec xb = rv_bcast(ar + r * lda);
            a0[r] = rv_fma(xb, b0, a0[r]);
            a1[r] = rv_fma(xb, b1, a1[r]);
        }
    }
    for (uint32_t r = 0; r < R; r++) {
        rv_mstore(y + (uint64_t)(r0 + r) * N + n0, m0, a0[r]);
        rv_mstore(y + (uint64_t)(r0 + r) * N + n0 + ROWS_VL, m1, a1[r]);
    }
}

/* One block of B's rows [k0, k1) over the columns [n_lo, n_hi), rows [r_first, Rows). */
static void rows_block(float *y, const float *A, uint64_t lda, const float *B, uint32_t Rows,
                       uint32_t N, uint32_t k0, uint32_t k1, uint32_t n_lo, uint32_t n_hi,
                       uint32_t r_first)
{
    uint32_t n0 = n_lo;
    for (; n0 + ROWS_TW <= n_hi; n0 += ROWS_TW) {
        uint32_t r0 = r_first;
        for (; r0 + ROWS_RG <= Rows; r0 += ROWS_RG)
            rows_tile2(y, A, lda, B, N, r0, ROWS_RG, k0, k1, n0, r0 == 0);
        if (r0 < Rows) rows_tile2(y, A, lda, B, N, r0, Rows - r0, k0, k1, n0, r0 == 0);
    }
    if (n0 < n_hi)
        for (uint32_t r0 = r_first; r0 < Rows; r0 += ROWS_RG)
            rows_tile_tail(y, A, lda, B, N, r0, Rows - r0 < ROWS_RG ? Rows - r0 : ROWS_RG, k0, k1,
                           n0, n_hi - n0);
}
#else
#define ROWS_TW    16
#define ROWS_KB    8
#define ROWS_KB_L1 16384
#define ROWS_PANEL (256u * 1024u)
static void rows_block(float *y, const float *A, uint64_t lda, const float *B, uint32_t Rows,
                       uint32_t N, uint32_t k0, uint32_t k1, uint32_t n_lo, uint32_t n_hi,
                       uint32_t r_first)
{
    for (uint32_t r = r_first; r < Rows; r++)
        for (uint32_t k = k0; k < k1; k++) {
            float a = A[r * lda + k];
            for (uint32_t n = n_lo; n < n_hi; n++)
                y[(uint64_t)r * N + n] += a * B[(uint64_t)k * N + n];
        }
}
#endif

/* Many rows (a batch of sessions: R·S rows of the multiplicative layer, R·S im2col rows of
 * a convolution, R·S_out rows of the head) over the columns [n_lo, n_hi). The few-rows loop
 * above re-reads the rows' whole block of A once per column tile and y once per block of 8
 * to 24 rows of B, which is cheap for a few rows but, with hundreds, turns into a latency-
 * bound walk of A from memory per tile (the 17b multiplicative layer's A is 38 MB at 16
 * sessions). Here the sum over k is blocked in ROWS_KC steps, in order: for each block of B
 * (ROWS_KC rows by a column panel whose block and y part stay in L2), each row group's
 * ROWS_KC-wide stretch of A is loaded once into L1 and applied to every column tile of the
 * panel, and the next group's stretch is prefetched meanwhile. A is read from memory once
 * per panel, B once per call, y once per block of ROWS_KC. The order of every y[r,n] is
 * still one FMA per k, k = 0..K−1 in order, onto the value y held: bitwise the few-rows
 * loop. */
#define ROWS_KC       256
#define ROWS_MANY_L2  (512u * 1024u) /* bytes of a B block and of a y panel, each */
#define ROWS_MANY_MIN 128            /* rows from which this path runs (see rows_gemm) */
static void rows_gemm_many(float *y, const float *A, uint64_t lda, const float *B, uint32_t Rows,
                           uint32_t K, uint32_t N, uint32_t n_lo, uint32_t n_hi)
{
    uint32_t pw = ROWS_MANY_L2 / (ROWS_KC * 4u) / ROWS_TW * ROWS_TW;
    uint32_t py = (uint32_t)(ROWS_MANY_L2 / (4u * (uint64_t)Rows)) / ROWS_TW * ROWS_TW;
    if (py < pw) pw = py;
    if (pw < ROWS_TW) pw = ROWS_TW;
    for (uint32_t p0 = n_lo; p0 < n_hi; p0 += pw) {
        uint32_t p1 = n_hi - p0 > pw ? p0 + pw : n_hi;
        for (uint32_t k0 = 0; k0 < K; k0 += ROWS_KC) {
            uint32_t k1 = K - k0 > ROWS_KC ? k0 + ROWS_KC : K;
            for (uint32_t r0 = 0; r0 < Rows; r0 += ROWS_RG) {
                uint32_t rg = Rows - r0 < ROWS_RG ? Rows - r0 : ROWS_RG;
#ifdef ROWS_VL
                /* the next group's stretch of A (its rows are far apart in memory) */
                for (uint32_t r = r0 + rg; r < r0 + 2 * ROWS_RG && r < Rows; r++)
                    for (uint32_t k = k0; k < k1; k += 16)
                        _mm_prefetch((const char *)(A + r * lda + k), _MM_HINT_T0);
#endif
                rows_block(y, A, lda, B, r0 + rg, N, k0, k1, p0, p1, r0);
            }
        }
    }
}

/* The loop for a few rows (up to a batch of one or two sessions' modules) over the columns
 * [n_lo, n_hi): blocks of kb rows of B, each tile loaded once and applied to every row group. */
static void rows_gemm_few(float *y, const float *A, uint64_t lda, const float *B, uint32_t Rows,
                          uint32_t K, uint32_t N, uint32_t kb, uint32_t n_lo, uint32_t n_hi)
{
    /* Column panels whose y part (Rows x pw floats, <= ROWS_PANEL bytes) stays in L2
     * for the whole sum over k: with many rows (a batch of sessions) y no longer fits,
     * and re-reading it once per block of k cost more than B (measured: 64 sessions x 4
     * modules of the 800m head ran 2.6x slower than 64 separate calls). B is still read
     * once; a few rows give one panel, the loop of before. */
    uint32_t pw = (uint32_t)(ROWS_PANEL / (4u * Rows)) / ROWS_TW * ROWS_TW;
    if (pw < ROWS_TW) pw = ROWS_TW;
    for (uint32_t p0 = n_lo; p0 < n_hi; p0 += pw) {
        uint32_t p1 = n_hi - p0 > pw ? p0 + pw : n_hi;
        for (uint32_t k0 = 0; k0 < K; k0 += kb) {
#ifdef ROWS_VL
            /* a narrow B's next block is one contiguous stretch: ask for all of it now
             * (800m Sparse QKV shapes: 1.2-1.4x faster from DRAM) */
            if (N <= 512 && k0 + kb < K) {
                const char *next = (const char *)(B + (uint64_t)(k0 + kb) * N);
                uint64_t len = (uint64_t)(K - k0 - kb < kb ? K - k0 - kb : kb) * N * 4;
                for (uint64_t o = 0; o < len; o += 64)
                    _mm_prefetch(next + o, _MM_HINT_T0);
            }
#endif
            rows_block(y, A, lda, B, Rows, N, k0, k0 + kb < K ? k0 + kb : K, p0, p1, 0);
        }
    }
}

/* y's columns [n_begin, n_end) of y += A·B (B (K, N) row-major): the tiles start at n_begin,
 * and each output's sum over k runs in the same blocks of k whatever the range (the block
 * length depends on N alone), so a column's bits do not depend on the range it is in. */
static void rows_gemm_range(float *y, const float *A, uint64_t lda, const float *B, uint32_t Rows,
                            uint32_t K, uint32_t N, uint32_t n_begin, uint32_t n_end)
{
    uint32_t tiles = (n_end - n_begin + ROWS_TW - 1) / ROWS_TW;
    /* A narrow B (N ≤ 512: the Sparse QKV layer and the convolutions) makes a block of rows one
     * contiguous stretch, so the block can grow until it fills half of L1 and the y tiles are
     * reloaded less often; a wide B (the head) keeps ROWS_KB streams. */
    uint32_t kb = ROWS_KB;
    if (N <= 512) {
        kb = (uint32_t)(ROWS_KB_L1 / ((uint64_t)N * sizeof(float))) / 8 * 8;
        kb = kb < ROWS_KB ? ROWS_KB : kb > 256 ? 256 : kb;
    }
    /* threads split the column tiles: for many multiply-adds, or for a B of 1 MB or more
     * (one row: memory-bound, and one core does not reach the memory bandwidth) */
    const uint64_t width = n_end - n_begin;
#pragma omp parallel if (((uint64_t)Rows * K * width >= (1u << 22) ||                              \
                          (uint64_t)K * width >= (1u << 18)) &&                                    \
                         tiles > 1)
    {
        /* each thread owns a contiguous range of column tiles for the whole sum over k */
        uint32_t t_lo = 0, t_hi = tiles;
#ifdef _OPENMP
        uint32_t nt = (uint32_t)omp_get_num_threads(), t = (uint32_t)omp_get_thread_num();
        t_lo = (uint32_t)((uint64_t)tiles * t / nt);
        t_hi = (uint32_t)((uint64_t)tiles * (t + 1) / nt);
#endif
        uint32_t n_lo = n_begin + t_lo * ROWS_TW,
                 n_hi = n_begin + t_hi * ROWS_TW < n_end ? n_begin + t_hi * ROWS_TW : n_end;
        if (Rows >= ROWS_MANY_MIN)
            rows_gemm_many(y, A, lda, B, Rows, K, N, n_lo, n_hi);
        else
            rows_gemm_few(y, A, lda, B, Rows, K, N, kb, n_lo, n_hi);
    }
}

static void rows_gemm(float *y, const float *A, uint64_t lda, const float *B, uint32_t Rows,
                      uint32_t K, uint32_t N)
{
    rows_gemm_range(y, A, lda, B, Rows, K, N, 0, N);
}

/* Dense for R rows: Y (R, out) = b + X·W by the row-few GEMM, one row or many: y[r,o]
 * starts at b[o] (or 0) and adds x[r,i]·W[i,o] for i = 0..in−1 in order, so a row's bits do
 * not depend on R, and W is read once per call. A single row goes the same way (not through
 * sgemv), so a batched row equals its solo run. */
static void dense_rows_fast(float *Y, const float *X, const float *W, const float *b, uint32_t R,
                            uint32_t in, uint32_t out)
{
    for (uint32_t r = 0; r < R; r++) {
        float *y = Y + (uint64_t)r * out;
        if (b)
            memcpy(y, b, (size_t)out * sizeof *y);
        else
            memset(y, 0, (size_t)out * sizeof *y);
    }
    rows_gemm(Y, X, in, W, R, in, out);
}

static void dense_fast(float *y, const float *x, const float *W, const float *b, uint32_t in,
                       uint32_t out)
{
    dense_rows_fast(y, x, W, b, 1, in, out);
}

static void dense_range_fast(float *y, const float *x, const float *W, const float *b, uint32_t in,
                             uint32_t out, uint32_t o_begin, uint32_t o_end)
{
    size_t n = (size_t)(o_end - o_begin) * sizeof *y;
    if (b)
        memcpy(y + o_begin, b, n);
    else
        memset(y + o_begin, 0, n);
    rows_gemm_range(y, x, in, W, 1, in, out, o_begin, o_end);
}

/* SPEC §1 sparse FF for R rows. The controller is two row-few GEMMs; then each block reads,
 * per row, one row of W1ᵀ and, only when its ReLU is positive, one row of W2 — the 1/N of the
 * weights. Blocks are the outer loop and rows the inner one, so a unit several rows chose is
 * fetched from memory once and re-read from L1 by the others.
 * Two phases so that threads never split a sum: the R·B dot products are independent, and
 * the W2 rows are accumulated by slices of the output, each row's slice summed over b in
 * order — the order of a row alone, whatever R. */
static void sparse_ff_rows_fast(float *out, const float *X, const float *c1, const float *c2,
                                const float *cb, const float *w1t, const float *w2, const float *b2,
                                uint32_t R, struct sparse_ff_dims dm, struct sparse_ff_scratch *s)
{
    uint32_t d = dm.d, F = dm.F, N = dm.N, r = dm.r, B = F / N;
    dense_rows_fast(s->u, X, c1, NULL, R, d, r);
    dense_rows_fast(s->logits, s->u, c2, cb, R, r, F);
    for (uint32_t row = 0; row < R; row++)
        for (uint32_t b = 0; b < B; b++)
            s->chosen[(uint64_t)row * B + b] =
                b * N + argmax(s->logits + (uint64_t)row * F + (uint64_t)b * N, N);
    const uint32_t *chosen = s->chosen;
    float *h = s->h;
#pragma omp parallel for schedule(static) if ((uint64_t)B * d >= (1u << 18))
    for (uint32_t b = 0; b < B; b++) {
        for (uint32_t row = 0; row < R; row++) {
            uint64_t i = (uint64_t)row * B + b;
            /* prefetch the row read next: the next row's unit, or the next block's first */
            const float *next = row + 1 < R ? w1t + (uint64_t)chosen[i + B] * d
                                : b + 1 < B ? w1t + (uint64_t)chosen[b + 1] * d
                                            : NULL;
            float v = vec_dot_next(X + (uint64_t)row * d, w1t + (uint64_t)chosen[i] * d, d, next);
            h[i] = v > 0.0f ? v : 0.0f;
        }
    }
    for (uint32_t row = 0; row < R; row++)
        memcpy(out + (uint64_t)row * d, b2, (size_t)d * sizeof *out);
#pragma omp parallel if ((uint64_t)B * d >= (1u << 18))
    {
        uint32_t lo = 0, hi = d;
#ifdef _OPENMP
        uint32_t nt = (uint32_t)omp_get_num_threads(), t = (uint32_t)omp_get_thread_num();
        uint32_t chunk = (d / nt + 15) / 16 * 16; /* whole cache lines per thread */
        lo = t * chunk < d ? t * chunk : d;
        hi = lo + chunk < d ? lo + chunk : d;
#endif
        for (uint32_t b = 0; b < B && lo < hi; b++)
            for (uint32_t row = 0; row < R; row++) {
                uint64_t i = (uint64_t)row * B + b;
                const float *next =
                    b + 1 < B ? w2 + (uint64_t)chosen[(uint64_t)row * B + b + 1] * d + lo : NULL;
                if (h[i] > 0.0f)
                    vec_axpy_next(out + (uint64_t)row * d + lo, h[i],
                                  w2 + (uint64_t)chosen[i] * d + lo, hi - lo, next);
            }
    }
}

static void sparse_ff_fast(float *out, const float *x, const float *c1, const float *c2,
                           const float *cb, const float *w1t, const float *w2, const float *b2,
                           struct sparse_ff_dims dm, struct sparse_ff_scratch *s)
{
    sparse_ff_rows_fast(out, x, c1, c2, cb, w1t, w2, b2, 1, dm, s);
}

/* SPEC §1 multiplicative dense for R rows: Y = c + (the S scaled copies of each row's x) · P,
 * P streamed once for all R·S rows; scratch (R·S, d): xs[r·S+s, i] = X[r,i]·G[s,i]. */
static void mult_dense_rows_fast(float *Y, const float *X, const float *G, const float *P,
                                 const float *c, uint32_t R, uint32_t d, uint32_t S, uint32_t M,
                                 float *scratch)
{
    for (uint32_t r = 0; r < R; r++)
        for (uint32_t s = 0; s < S; s++) {
            float *xs = scratch + ((uint64_t)r * S + s) * d;
            const float *gs = G + (uint64_t)s * d, *x = X + (uint64_t)r * d;
            for (uint32_t i = 0; i < d; i++)
                xs[i] = x[i] * gs[i];
        }
    for (uint32_t r = 0; r < R; r++)
        memcpy(Y + (uint64_t)r * S * M, c, (size_t)S * M * sizeof *Y);
    rows_gemm(Y, scratch, d, P, R * S, d, M);
}

static void mult_dense_fast(float *y, const float *x, const float *G, const float *P,
                            const float *c, uint32_t d, uint32_t S, uint32_t M, float *scratch)
{
    mult_dense_rows_fast(y, x, G, P, c, 1, d, S, M, scratch);
}

/* SPEC §1 local convolution for R rows: W (3, Km, M, M) is already the (3·Km·M, M) matrix of
 * an im2col product, so gather the 3·Km neighbour rows of each module of each row (scratch
 * (R·S, 3·Km·M)) and do one row-few GEMM on top of β. */
static void local_conv_rows_fast(float *out, const float *const (*rows)[3], const float *W,
                                 const float *beta, uint32_t R, uint32_t S, uint32_t M, uint32_t Km,
                                 float *scratch)
{
    int half = (int)(Km - 1) / 2;
    uint32_t K = 3 * Km * M;
    for (uint32_t r = 0; r < R; r++)
        for (uint32_t s = 0; s < S; s++) {
            float *xs = scratch + ((uint64_t)r * S + s) * K;
            for (uint32_t a = 0; a < 3; a++)
                for (uint32_t k = 0; k < Km; k++) {
                    int src = (int)s + (int)k - half;
                    float *dst = xs + (a * Km + k) * M;
                    if (src < 0 || src >= (int)S)
                        memset(dst, 0, (size_t)M * sizeof *dst);
                    else
                        memcpy(dst, rows[r][a] + (uint32_t)src * M, (size_t)M * sizeof *dst);
                }
        }
    for (uint64_t s = 0; s < (uint64_t)R * S; s++)
        memcpy(out + s * M, beta, (size_t)M * sizeof *out);
    rows_gemm(out, scratch, K, W, R * S, K, M);
}

static void local_conv_fast(float *out, const float *const rows[3], const float *W,
                            const float *beta, uint32_t S, uint32_t M, uint32_t Km, float *scratch)
{
    const float *const(*one)[3] = (const float *const(*)[3])rows;
    local_conv_rows_fast(out, one, W, beta, 1, S, M, Km, scratch);
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

/* SPEC §2 LSH attention of one head over the entries J (lsh_attend_ref's twin) */
static void lsh_attend_fast(float *out, const float *q, const float *qk, const float *v,
                            uint32_t stride, const float *scale, uint32_t scale_stride,
                            const uint32_t *J, uint32_t nJ, uint32_t self, uint32_t dh,
                            float *scores)
{
    float mx = -INFINITY;
    for (uint32_t i = 0; i < nJ; i++) {
        uint64_t j = J[i];
        scores[i] = vec_dot(q, qk + j * stride, dh) * scale[j * scale_stride] -
                    (J[i] == self ? 1e5f : 0.0f);
        if (scores[i] > mx) mx = scores[i];
    }
    float sum = 0.0f;
    for (uint32_t i = 0; i < nJ; i++) {
        scores[i] = expf(scores[i] - mx);
        sum += scores[i];
    }
    float inv = 1.0f / sum;
    memset(out, 0, (size_t)dh * sizeof *out);
    for (uint32_t i = 0; i < nJ; i++)
        vec_axpy(out, scores[i] * inv, v + (uint64_t)J[i] * stride, dh);
}

const struct kernels kernels_fast = {
    .name = "fast",
    .dense = dense_fast,
    .dense_range = dense_range_fast,
    .sparse_ff = sparse_ff_fast,
    .mult_dense = mult_dense_fast,
    .local_conv = local_conv_fast,
    .attention = attention_fast,
    .dense_rows = dense_rows_fast,
    .sparse_ff_rows = sparse_ff_rows_fast,
    .mult_dense_rows = mult_dense_rows_fast,
    .local_conv_rows = local_conv_rows_fast,
    .lsh_select = lsh_select_fast,
    .lsh_attend = lsh_attend_fast,
};

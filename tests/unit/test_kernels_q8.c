/* q8 kernels: rounding rules, the reference against an independent double-precision
 * computation on dequantised values, fast against reference at many shapes (odd ones
 * included), and thread-count invariance. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels_q8.h"
#include "util/rng.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

static float *rand_vec(struct rng *r, size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = scale * rng_normal(r);
    return v;
}

/* rows x n random weights, quantised row by row */
static struct q8_block *rand_q8(struct rng *r, uint32_t rows, uint32_t n, float scale)
{
    uint32_t nb = q8_row_blocks(n);
    struct q8_block *w = malloc((size_t)rows * nb * sizeof *w);
    float *row = malloc(n * sizeof *row);
    for (uint32_t i = 0; i < rows; i++) {
        for (uint32_t j = 0; j < n; j++)
            row[j] = scale * rng_normal(r);
        if (i % 7 == 3) row[n / 2] *= 20.0f; /* an outlier now and then */
        q8_quantize_row(w + (size_t)i * nb, row, n);
    }
    free(row);
    return w;
}

static double w_at(const struct q8_block *w, uint32_t n, uint32_t row, uint32_t col)
{
    const struct q8_block *b = &w[(size_t)row * q8_row_blocks(n) + col / 32];
    return (double)q8_half_to_float(b->d) * b->q[col % 32];
}

/* x after the activation rounding (for the exact-arithmetic reference) */
static double *act_round_trip(const float *x, uint32_t n)
{
    uint32_t nb = q8_row_blocks(n);
    int8_t *q = malloc(nb * 32);
    float *d = malloc(nb * sizeof *d);
    q8_quantize_act(q, d, x, n);
    double *out = malloc(n * sizeof *out);
    for (uint32_t i = 0; i < n; i++)
        out[i] = (double)d[i / 32] * q[i];
    free(q);
    free(d);
    return out;
}

static double norm_err_d(const float *a, const double *b, size_t n)
{
    double mx = 1e-30, md = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
        if (fabs(a[i] - b[i]) > md) md = fabs(a[i] - b[i]);
    }
    return md / mx;
}

static double norm_err(const float *a, const float *b, size_t n)
{
    double mx = 1e-30, md = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
        if (fabs(a[i] - b[i]) > md) md = fabs(a[i] - b[i]);
    }
    return md / mx;
}

static void test_kernels_q8_half(void **state)
{
    (void)state;
    /* exact values round trip; the conversion agrees with the F16C instruction */
    const float exact[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.9604644775390625e-08f};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        assert_true(q8_half_to_float(q8_float_to_half(exact[i])) == exact[i]);
    assert_true(isinf(q8_half_to_float(q8_float_to_half(1e6f))));
#if defined(__F16C__)
    struct rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < 200000; i++) {
        float f = rng_normal(&r) * ldexpf(1.0f, (int)(rng_next(&r) % 50) - 30);
        uint16_t h = q8_float_to_half(f);
        assert_int_equal(h, _cvtss_sh(f, 0));
        assert_true(q8_half_to_float(h) == _cvtsh_ss(h));
    }
#endif
}

static void test_kernels_q8_quantize_rounding(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 6);
    uint32_t n = 77; /* two full blocks and a tail */
    float *x = rand_vec(&r, n, 0.3f);
    struct q8_block w[3];
    q8_quantize_row(w, x, n);
    float back[77];
    q8_dequantize_row(back, w, n);
    for (uint32_t b = 0; b < 3; b++) {
        float amax = 0;
        for (uint32_t j = b * 32; j < n && j < b * 32 + 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        assert_int_equal(w[b].d, q8_float_to_half(amax / 127.0f));
        float d = q8_half_to_float(w[b].d);
        for (uint32_t j = b * 32; j < n && j < b * 32 + 32; j++)
            assert_true(fabsf(back[j] - x[j]) <= 0.5f * d * 1.0001f);
    }
    for (uint32_t j = n - 64; j < 32; j++)
        assert_int_equal(w[2].q[j], 0); /* the tail is zero */
    /* a stored scale that is not finite is found */
    assert_int_equal(q8_check_row(w, n), -1);
    w[1].d = 0x7c00; /* +inf */
    assert_int_equal(q8_check_row(w, n), 1);
    free(x);
}

/* dense: the reference equals the exact product of the rounded values, and is close to
 * the unrounded product; fast matches the reference. */
static void test_kernels_q8_dense(void **state)
{
    (void)state;
    const uint32_t shapes[][2] = {{32, 1},   {64, 7},    {33, 5},   {96, 130},
                                  {200, 19}, {1024, 64}, {1000, 3}, {4096, 33}};
    struct rng r;
    rng_seed(&r, 7);
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        uint32_t in = shapes[c][0], out = shapes[c][1];
        float *x = rand_vec(&r, in, 1.0f), *b = rand_vec(&r, out, 0.1f);
        struct q8_block *wt = rand_q8(&r, out, in, 0.05f);
        struct q8_scratch qs;
        assert_int_equal(q8_scratch_init(&qs, 1, in), 0);
        float *y_ref = malloc(out * sizeof *y_ref), *y_fast = malloc(out * sizeof *y_fast);
        kernels_q8_ref.dense(y_ref, x, wt, b, in, out, &qs);
        kernels_q8_fast.dense(y_fast, x, wt, b, in, out, &qs);
        double *xr = act_round_trip(x, in), *exact = malloc(out * sizeof *exact),
               *plain = malloc(out * sizeof *plain);
        for (uint32_t o = 0; o < out; o++) {
            exact[o] = plain[o] = b[o];
            for (uint32_t i = 0; i < in; i++) {
                exact[o] += xr[i] * w_at(wt, in, o, i);
                plain[o] += (double)x[i] * w_at(wt, in, o, i);
            }
        }
        assert_true(norm_err_d(y_ref, exact, out) < 1e-5);
        assert_true(norm_err_d(y_ref, plain, out) < 2e-2);
        assert_true(norm_err(y_fast, y_ref, out) < 1e-5);
        free(x), free(b), free(wt), free(y_ref), free(y_fast), free(xr), free(exact), free(plain);
        q8_scratch_free(&qs);
    }
}

struct ff_case {
    uint32_t d, F, N, r;
};

static void test_kernels_q8_sparse_ff(void **state)
{
    (void)state;
    const struct ff_case cases[] = {
        {64, 256, 8, 4}, {96, 96, 4, 6}, {40, 64, 16, 3}, {512, 4096, 64, 8}};
    struct rng r;
    rng_seed(&r, 8);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct ff_case k = cases[c];
        uint32_t B = k.F / k.N;
        float *x = rand_vec(&r, k.d, 1.0f), *c1 = rand_vec(&r, (size_t)k.d * k.r, 0.2f);
        float *c2 = rand_vec(&r, (size_t)k.r * k.F, 0.2f), *cb = rand_vec(&r, k.F, 0.1f);
        float *b2 = rand_vec(&r, k.d, 0.1f);
        struct q8_block *w1t = rand_q8(&r, k.F, k.d, 0.1f), *w2 = rand_q8(&r, k.F, k.d, 0.1f);
        float *u = malloc(k.r * 4), *lg = malloc(k.F * 4), *h1 = malloc(B * 4), *h2 = malloc(B * 4);
        uint32_t *ch1 = malloc(B * 4), *ch2 = malloc(B * 4);
        float *o1 = malloc(k.d * 4), *o2 = malloc(k.d * 4);
        struct q8_scratch qs;
        assert_int_equal(q8_scratch_init(&qs, 1, k.d), 0);
        struct sparse_ff_dims dm = {k.d, k.F, k.N, k.r};
        struct sparse_ff_scratch s1 = {u, lg, ch1, h1}, s2 = {u, lg, ch2, h2};
        kernels_q8_ref.sparse_ff(o1, x, c1, c2, cb, w1t, w2, b2, dm, &s1, &qs);
        kernels_q8_fast.sparse_ff(o2, x, c1, c2, cb, w1t, w2, b2, dm, &s2, &qs);
        assert_memory_equal(ch1, ch2, B * 4);
        assert_true(norm_err(h2, h1, B) < 1e-5);
        assert_true(norm_err(o2, o1, k.d) < 1e-5);
        /* independent: out = b2 + Σ_b relu(x̂·w1) w2 over the reference's choices */
        double *xr = act_round_trip(x, k.d), *exact = malloc(k.d * sizeof *exact);
        for (uint32_t i = 0; i < k.d; i++)
            exact[i] = b2[i];
        for (uint32_t b = 0; b < B; b++) {
            double hb = 0;
            for (uint32_t i = 0; i < k.d; i++)
                hb += xr[i] * w_at(w1t, k.d, ch1[b], i);
            hb = hb > 0 ? hb : 0;
            for (uint32_t i = 0; i < k.d; i++)
                exact[i] += hb * w_at(w2, k.d, ch1[b], i);
        }
        assert_true(norm_err_d(o1, exact, k.d) < 1e-5);
        free(x), free(c1), free(c2), free(cb), free(b2), free(w1t), free(w2), free(u), free(lg);
        free(h1), free(h2), free(ch1), free(ch2), free(o1), free(o2), free(xr), free(exact);
        q8_scratch_free(&qs);
    }
}

struct mult_case {
    uint32_t d, S, M;
};

static void test_kernels_q8_mult_dense(void **state)
{
    (void)state;
    const struct mult_case cases[] = {{64, 4, 16}, {96, 3, 32},  {72, 9, 8},   {1024, 16, 64},
                                      {40, 1, 5},  {256, 8, 50}, {288, 64, 9}, {192, 13, 17}};
    struct rng r;
    rng_seed(&r, 9);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct mult_case k = cases[c];
        uint32_t O = k.S * k.M;
        float *x = rand_vec(&r, k.d, 1.0f), *G = rand_vec(&r, (size_t)k.S * k.d, 1.0f);
        float *cc = rand_vec(&r, O, 0.1f);
        struct q8_block *pt = rand_q8(&r, k.M, k.d, 0.1f), *gq = rand_q8(&r, k.S, k.d, 1.0f);
        struct q8_scratch qs;
        assert_int_equal(q8_scratch_init(&qs, k.S, k.d), 0);
        float *y1 = malloc(O * 4), *y2 = malloc(O * 4);
        for (int gt = 0; gt < 2; gt++) {
            const void *g = gt ? (const void *)gq : (const void *)G;
            enum stf_dtype t = gt ? STF_DTYPE_Q8_0 : STF_DTYPE_F32;
            kernels_q8_ref.mult_dense(y1, x, g, t, pt, cc, k.d, k.S, k.M, &qs);
            kernels_q8_fast.mult_dense(y2, x, g, t, pt, cc, k.d, k.S, k.M, &qs);
            assert_memory_equal(y1, y2, O * 4); /* same arithmetic per lane: bitwise */
            /* independent: quantise each x ⊙ G[s] and multiply in double */
            double *exact = malloc(O * sizeof *exact);
            float *xs = malloc(k.d * 4);
            for (uint32_t s = 0; s < k.S; s++) {
                for (uint32_t i = 0; i < k.d; i++)
                    xs[i] = x[i] *
                            (gt ? (float)(q8_half_to_float(gq[s * q8_row_blocks(k.d) + i / 32].d) *
                                          (float)gq[s * q8_row_blocks(k.d) + i / 32].q[i % 32])
                                : G[s * k.d + i]);
                double *xr = act_round_trip(xs, k.d);
                for (uint32_t m = 0; m < k.M; m++) {
                    double a = cc[s * k.M + m];
                    for (uint32_t i = 0; i < k.d; i++)
                        a += xr[i] * w_at(pt, k.d, m, i);
                    exact[s * k.M + m] = a;
                }
                free(xr);
            }
            assert_true(norm_err_d(y1, exact, O) < 1e-5);
            free(exact), free(xs);
        }
        free(x), free(G), free(cc), free(pt), free(gq), free(y1), free(y2);
        q8_scratch_free(&qs);
    }
}

static void test_kernels_q8_local_conv(void **state)
{
    (void)state;
    const uint32_t cases[][3] = {{4, 16, 3},  {4, 16, 1}, {16, 64, 3},
                                 {5, 144, 3}, {9, 12, 1}, {64, 144, 1}};
    struct rng r;
    rng_seed(&r, 10);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t S = cases[c][0], M = cases[c][1], Km = cases[c][2], K = 3 * Km * M;
        float *y0 = rand_vec(&r, S * M, 1.0f), *y1 = rand_vec(&r, S * M, 1.0f),
              *y2 = rand_vec(&r, S * M, 1.0f), *beta = rand_vec(&r, M, 0.1f);
        const float *rows[3] = {y0, y1, y2};
        struct q8_block *wt = rand_q8(&r, M, K, 0.05f);
        struct q8_scratch qs;
        assert_int_equal(q8_scratch_init(&qs, S, K), 0);
        float *o1 = malloc(S * M * 4), *o2 = malloc(S * M * 4);
        kernels_q8_ref.local_conv(o1, rows, wt, beta, S, M, Km, &qs);
        kernels_q8_fast.local_conv(o2, rows, wt, beta, S, M, Km, &qs);
        assert_memory_equal(o1, o2, S * M * 4);
        /* independent: SPEC §1 loops over (a, k, c) with the rounded im2col row */
        double *exact = malloc(S * M * sizeof *exact);
        float *col = malloc(K * 4);
        int half = (int)(Km - 1) / 2;
        for (uint32_t s = 0; s < S; s++) {
            for (uint32_t a = 0; a < 3; a++)
                for (uint32_t k = 0; k < Km; k++) {
                    int src = (int)s + (int)k - half;
                    for (uint32_t ch = 0; ch < M; ch++)
                        col[(a * Km + k) * M + ch] =
                            src < 0 || src >= (int)S ? 0.0f : rows[a][src * M + ch];
                }
            double *xr = act_round_trip(col, K);
            for (uint32_t o = 0; o < M; o++) {
                double acc = beta[o];
                for (uint32_t i = 0; i < K; i++)
                    acc += xr[i] * w_at(wt, K, o, i);
                exact[s * M + o] = acc;
            }
            free(xr);
        }
        assert_true(norm_err_d(o1, exact, S * M) < 1e-5);
        free(y0), free(y1), free(y2), free(beta), free(wt), free(o1), free(o2), free(exact),
            free(col);
        q8_scratch_free(&qs);
    }
}

/* Outputs are bitwise the same for 1 and 2 threads (no kernel splits a sum). */
static void test_kernels_q8_threads_do_not_change_results(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 11);
    uint32_t d = 1024, F = 8192, N = 32, rk = 32, B = F / N, S = 16, M = 64, out = 2048;
    float *x = rand_vec(&r, d, 1.0f), *c1 = rand_vec(&r, d * rk, 0.1f);
    float *c2 = rand_vec(&r, rk * F, 0.1f), *cb = rand_vec(&r, F, 0.1f),
          *b2 = rand_vec(&r, d, 0.1f);
    float *G = rand_vec(&r, S * d, 1.0f), *cc = rand_vec(&r, d, 0.1f);
    struct q8_block *w1t = rand_q8(&r, F, d, 0.1f), *w2 = rand_q8(&r, F, d, 0.1f);
    struct q8_block *pt = rand_q8(&r, M, d, 0.1f), *wt = rand_q8(&r, out, d, 0.1f);
    struct q8_scratch qs;
    assert_int_equal(q8_scratch_init(&qs, S, d), 0);
    float res[2][3][8192];
    float u[32], lg[8192], hb[256];
    uint32_t ch[256];
    struct sparse_ff_scratch s = {u, lg, ch, hb};
    for (int t = 0; t < 2; t++) {
        kernels_set_threads(t + 1);
        kernels_q8_fast.sparse_ff(res[t][0], x, c1, c2, cb, w1t, w2, b2,
                                  (struct sparse_ff_dims){d, F, N, rk}, &s, &qs);
        kernels_q8_fast.mult_dense(res[t][1], x, G, STF_DTYPE_F32, pt, cc, d, S, M, &qs);
        kernels_q8_fast.dense(res[t][2], x, wt, NULL, d, out, &qs);
    }
    kernels_set_threads(1);
    assert_memory_equal(res[0][0], res[1][0], d * 4);
    assert_memory_equal(res[0][1], res[1][1], S * M * 4);
    assert_memory_equal(res[0][2], res[1][2], out * 4);
    (void)B;
    free(x), free(c1), free(c2), free(cb), free(b2), free(G), free(cc), free(w1t), free(w2),
        free(pt);
    free(wt);
    q8_scratch_free(&qs);
}

/* The AVX2 and VNNI builds of the fast kernels agree bit for bit (same integer sums, same
 * float operations), so a model gives the same tokens on either kind of CPU. */
static void test_kernels_q8_vnni_matches_avx2(void **state)
{
    (void)state;
    if (!kernels_q8_have_vnni()) {
        skip();
        return;
    }
    struct rng r;
    rng_seed(&r, 12);
    uint32_t d = 200, F = 640, N = 16, rk = 8, S = 13, M = 40, out = 70, Km = 3, K = 3 * Km * M;
    float *x = rand_vec(&r, d, 1.0f), *c1 = rand_vec(&r, d * rk, 0.1f);
    float *c2 = rand_vec(&r, rk * F, 0.1f), *cb = rand_vec(&r, F, 0.1f),
          *b2 = rand_vec(&r, d, 0.1f);
    float *G = rand_vec(&r, S * d, 1.0f), *cc = rand_vec(&r, S * M, 0.1f);
    float *y0 = rand_vec(&r, S * M, 1.0f), *beta = rand_vec(&r, M, 0.1f);
    const float *rows[3] = {y0, y0, cc};
    struct q8_block *w1t = rand_q8(&r, F, d, 0.1f), *w2 = rand_q8(&r, F, d, 0.1f);
    struct q8_block *pt = rand_q8(&r, M, d, 0.1f), *wt = rand_q8(&r, out, d, 0.1f);
    struct q8_block *cw = rand_q8(&r, M, K, 0.1f);
    struct q8_scratch qs;
    assert_int_equal(q8_scratch_init(&qs, S, K), 0);
    float res[2][4][1024];
    float u[8], lg[640], hb[40];
    uint32_t ch[40];
    struct sparse_ff_scratch s = {u, lg, ch, hb};
    const struct kernels_q8 *impls[2] = {&kernels_q8_avx2, &kernels_q8_vnni};
    for (int i = 0; i < 2; i++) {
        impls[i]->sparse_ff(res[i][0], x, c1, c2, cb, w1t, w2, b2,
                            (struct sparse_ff_dims){d, F, N, rk}, &s, &qs);
        impls[i]->mult_dense(res[i][1], x, G, STF_DTYPE_F32, pt, cc, d, S, M, &qs);
        impls[i]->dense(res[i][2], x, wt, NULL, d, out, &qs);
        impls[i]->local_conv(res[i][3], rows, cw, beta, S, M, Km, &qs);
    }
    assert_memory_equal(res[0][0], res[1][0], d * 4);
    assert_memory_equal(res[0][1], res[1][1], S * M * 4);
    assert_memory_equal(res[0][2], res[1][2], out * 4);
    assert_memory_equal(res[0][3], res[1][3], S * M * 4);
    free(x), free(c1), free(c2), free(cb), free(b2), free(G), free(cc), free(y0), free(beta);
    free(w1t), free(w2), free(pt), free(wt), free(cw);
    q8_scratch_free(&qs);
}

/* Batch invariance of the q8 *_rows calls: for R = 1..17 rows, every row of a batched call
 * is bitwise the single-row call on that row — for ref, fast and both fast builds, the batch
 * on 2 threads and the solo runs on 1, in panels of 13 rows (a scratch smaller than the
 * batch) — and the fast batch equals the ref batch where the single-row twins are
 * bitwise equal (multiplicative layer, convolutions) or to rounding (dense, sparse FF). Some
 * rows repeat others so that several rows choose the same sparse FF units. */
static void test_kernels_q8_rows_equal_solo(void **state)
{
    (void)state;
    struct shape {
        uint32_t d, F, N, r, S, out;
    } shapes[] = {{100, 300, 10, 7, 5, 37}, {1024, 2048, 8, 32, 16, 130}};
    const struct kernels_q8 *ks[] = {&kernels_q8_ref, &kernels_q8_fast, &kernels_q8_avx2,
                                     &kernels_q8_vnni};
    enum { RMAX = 17 };
    struct rng r;
    rng_seed(&r, 17);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        struct shape sh = shapes[si];
        uint32_t d = sh.d, F = sh.F, S = sh.S, M = d / S, B = F / sh.N, K3 = 9 * M;
        float *X = rand_vec(&r, (size_t)RMAX * d, 1.0f);
        for (uint32_t row = 5; row < RMAX; row += 4) /* repeats: shared units */
            memcpy(X + (size_t)row * d, X + (size_t)(row % 5) * d, d * sizeof(float));
        float *b = rand_vec(&r, (size_t)S * M > sh.out ? (size_t)S * M : sh.out, 0.5f);
        float *c1 = rand_vec(&r, (size_t)d * sh.r, 0.2f),
              *c2 = rand_vec(&r, (size_t)sh.r * F, 0.3f);
        float *cb = rand_vec(&r, F, 0.1f), *b2 = rand_vec(&r, d, 0.5f);
        float *G = rand_vec(&r, (size_t)S * d, 1.0f), *hist = rand_vec(&r, (size_t)RMAX * 3 * d, 1);
        struct q8_block *wt = rand_q8(&r, sh.out, d, 0.1f), *w1t = rand_q8(&r, F, d, 0.1f);
        struct q8_block *w2 = rand_q8(&r, F, d, 0.1f), *pt = rand_q8(&r, M, d, 0.1f);
        struct q8_block *gq = rand_q8(&r, S, d, 1.0f), *cw = rand_q8(&r, M, K3, 0.1f);
        size_t big = (size_t)RMAX * (d > sh.out ? d : sh.out);
        float *Y = malloc(big * 4), *Yref = malloc(big * 4), *y1 = malloc(big * 4);
        float *u = malloc((size_t)RMAX * sh.r * 4), *lg = malloc((size_t)RMAX * F * 4);
        float *hb = malloc((size_t)RMAX * B * 4), *u1 = malloc(sh.r * 4), *lg1 = malloc(F * 4);
        float *hb1 = malloc(B * 4);
        uint32_t *ch = malloc((size_t)RMAX * B * 4), *chr = malloc((size_t)RMAX * B * 4),
                 *ch1 = malloc(B * 4);
        const float *rows[RMAX][3];
        for (uint32_t row = 0; row < RMAX; row++)
            for (int a = 0; a < 3; a++)
                rows[row][a] = hist + ((size_t)row * 3 + a) * d;
        /* the batch's scratch holds 13 rows: batches run in several ragged panels */
        uint32_t wide = K3 > d ? K3 : d;
        struct q8_scratch qb, q1;
        assert_int_equal(q8_scratch_init(&qb, 13, wide), 0);
        assert_int_equal(q8_scratch_init(&q1, S, wide), 0);
        struct sparse_ff_dims dm = {d, F, sh.N, sh.r};
        for (size_t ki = 0; ki < 4; ki++) {
            const struct kernels_q8 *k = ks[ki];
            if (!k->dense_rows) continue; /* the VNNI build is not there */
            for (uint32_t R = 1; R <= RMAX; R++) {
                /* dense */
                kernels_set_threads(2);
                k->dense_rows(Y, X, wt, b, R, d, sh.out, &qb);
                kernels_q8_ref.dense_rows(Yref, X, wt, b, R, d, sh.out, &qb);
                kernels_set_threads(1);
                for (uint32_t row = 0; row < R; row++) {
                    k->dense(y1, X + (size_t)row * d, wt, b, d, sh.out, &q1);
                    assert_memory_equal(Y + (size_t)row * sh.out, y1, sh.out * 4);
                }
                assert_true(norm_err(Y, Yref, (size_t)R * sh.out) < 1e-5);
                /* sparse FF */
                struct sparse_ff_scratch sb = {u, lg, ch, hb};
                kernels_set_threads(2);
                k->sparse_ff_rows(Y, X, c1, c2, cb, w1t, w2, b2, R, dm, &sb, &qb);
                struct sparse_ff_scratch sr = {u, lg, chr, hb};
                kernels_q8_ref.sparse_ff_rows(Yref, X, c1, c2, cb, w1t, w2, b2, R, dm, &sr, &qb);
                assert_memory_equal(ch, chr, (size_t)R * B * 4);
                assert_true(norm_err(Y, Yref, (size_t)R * d) < 1e-5);
                k->sparse_ff_rows(Y, X, c1, c2, cb, w1t, w2, b2, R, dm, &sb, &qb);
                kernels_set_threads(1);
                for (uint32_t row = 0; row < R; row++) {
                    struct sparse_ff_scratch s1 = {u1, lg1, ch1, hb1};
                    k->sparse_ff(y1, X + (size_t)row * d, c1, c2, cb, w1t, w2, b2, dm, &s1, &q1);
                    assert_memory_equal(ch + (size_t)row * B, ch1, B * 4);
                    assert_memory_equal(Y + (size_t)row * d, y1, d * 4);
                }
                /* multiplicative dense, G f32 and q8 */
                for (int gt = 0; gt < 2; gt++) {
                    const void *g = gt ? (const void *)gq : (const void *)G;
                    enum stf_dtype t = gt ? STF_DTYPE_Q8_0 : STF_DTYPE_F32;
                    kernels_set_threads(2);
                    k->mult_dense_rows(Y, X, g, t, pt, b, R, d, S, M, &qb);
                    kernels_set_threads(1);
                    kernels_q8_ref.mult_dense_rows(Yref, X, g, t, pt, b, R, d, S, M, &q1);
                    assert_memory_equal(Y, Yref, (size_t)R * S * M * 4);
                    for (uint32_t row = 0; row < R; row++) {
                        k->mult_dense(y1, X + (size_t)row * d, g, t, pt, b, d, S, M, &q1);
                        assert_memory_equal(Y + (size_t)row * S * M, y1, (size_t)S * M * 4);
                    }
                }
                /* local convolutions 3x3 and 3x1 */
                for (uint32_t Km = 1; Km <= 3; Km += 2) {
                    kernels_set_threads(2);
                    k->local_conv_rows(Y, (const float *const(*)[3])rows, cw, b, R, S, M, Km, &qb);
                    kernels_set_threads(1);
                    kernels_q8_ref.local_conv_rows(Yref, (const float *const(*)[3])rows, cw, b, R,
                                                   S, M, Km, &q1);
                    assert_memory_equal(Y, Yref, (size_t)R * S * M * 4);
                    for (uint32_t row = 0; row < R; row++) {
                        k->local_conv(y1, rows[row], cw, b, S, M, Km, &q1);
                        assert_memory_equal(Y + (size_t)row * S * M, y1, (size_t)S * M * 4);
                    }
                }
            }
        }
        free(X), free(b), free(c1), free(c2), free(cb), free(b2), free(G), free(hist), free(wt);
        free(w1t), free(w2), free(pt), free(gq), free(cw), free(Y), free(Yref), free(y1), free(u);
        free(lg), free(hb), free(u1), free(lg1), free(hb1), free(ch), free(chr), free(ch1);
        q8_scratch_free(&qb);
        q8_scratch_free(&q1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_q8_half),
        cmocka_unit_test(test_kernels_q8_quantize_rounding),
        cmocka_unit_test(test_kernels_q8_dense),
        cmocka_unit_test(test_kernels_q8_sparse_ff),
        cmocka_unit_test(test_kernels_q8_mult_dense),
        cmocka_unit_test(test_kernels_q8_local_conv),
        cmocka_unit_test(test_kernels_q8_threads_do_not_change_results),
        cmocka_unit_test(test_kernels_q8_vnni_matches_avx2),
        cmocka_unit_test(test_kernels_q8_rows_equal_solo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

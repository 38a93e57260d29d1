/* Kernels: hand-computed cases for the reference kernels, and fast == ref to rounding. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels.h"
#include "util/rng.h"

static float *rand_vec(struct rng *r, size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = scale * rng_normal(r);
    return v;
}

/* max |a-b| / max(|b|, tiny): the normalised error of ggml-style kernel tests */
static double norm_err(const float *a, const float *b, size_t n)
{
    double mx = 1e-30, md = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
        if (fabs(a[i] - b[i]) > md) md = fabs(a[i] - b[i]);
    }
    return md / mx;
}

static void test_kernels_layernorm_hand(void **state)
{
    (void)state;
    float x[4] = {1, 2, 3, 4}, g[4] = {1, 1, 2, 1}, b[4] = {0, 0, 0, 1}, out[4];
    layernorm(out, x, g, b, 4);
    /* mean 2.5, population var 1.25 */
    double inv = 1.0 / sqrt(1.25 + 1e-6);
    assert_float_equal(out[0], -1.5 * inv, 1e-6);
    assert_float_equal(out[1], -0.5 * inv, 1e-6);
    assert_float_equal(out[2], 2 * 0.5 * inv, 1e-6);
    assert_float_equal(out[3], 1.5 * inv + 1, 1e-6);
}

static void test_kernels_sru_hand(void **state)
{
    (void)state;
    /* n = 1: r~ = 0 (r = 0.5), f~ = 0 (f = 0.5), y~ = 2; c0 = 1, u = 1 */
    float u[1] = {1}, gates[3] = {0, 0, 2}, c[1] = {1}, h[1];
    sru_step(h, c, u, gates, 1);
    assert_float_equal(c[0], 0.5 * 1 + 0.5 * 2, 1e-6);
    assert_float_equal(h[0], 0.5 * 1.5 + 0.5 * 1 * sqrt(3.0), 1e-6);
}

/* SPEC §1 sparse FF on a case small enough to do by hand. d=2, F=4, N=2, r=1. */
static void test_kernels_sparse_ff_hand(void **state)
{
    (void)state;
    const struct kernels *impls[2] = {&kernels_ref, &kernels_fast};
    for (int k = 0; k < 2; k++) {
        float x[2] = {1, -2};
        float c1[2] = {1, 0};          /* u = x0 = 1 */
        float c2[4] = {0.5f, 1, 3, 3}; /* l = [0.5, 1 | 3, 3] + cb */
        float cb[4] = {0, 0, 0, 0};    /* block 0 picks unit 1; block 1 tie: unit 2 (first) */
        float w1t[8] = {9, 9, 1, 1, /* unit 2: */ 2, -1, 5, 5};
        float w2[8] = {100, 100, 10, 20, 1, 2, 7, 7};
        float b2[2] = {0.5f, 0.25f};
        float u[1], logits[4], out[2], hb[2];
        uint32_t chosen[2];
        struct sparse_ff_scratch s = {u, logits, chosen, hb};
        struct sparse_ff_dims dm = {2, 4, 2, 1};
        impls[k]->sparse_ff(out, x, c1, c2, cb, w1t, w2, b2, dm, &s);
        assert_int_equal(chosen[0], 1);
        assert_int_equal(chosen[1], 2);
        assert_float_equal(hb[0], 0, 0);
        assert_float_equal(hb[1], 4, 1e-6);
        /* unit 1: h = relu(1 - 2) = 0; unit 2: h = relu(2 + 2) = 4 -> 4 * [1, 2] */
        assert_float_equal(out[0], 0.5 + 4 * 1, 1e-6);
        assert_float_equal(out[1], 0.25 + 4 * 2, 1e-6);
    }
}

/* SPEC §1 local convolution by hand: S=2, M=1, Km=3; only the current row is non-zero. */
static void test_kernels_local_conv_hand(void **state)
{
    (void)state;
    const struct kernels *impls[2] = {&kernels_ref, &kernels_fast};
    for (int k = 0; k < 2; k++) {
        float zero[2] = {0, 0}, cur[2] = {1, 10};
        const float *rows[3] = {zero, zero, cur};
        float W[9]; /* (a, k) with M=1 */
        for (int i = 0; i < 9; i++)
            W[i] = (float)(i + 1);
        float beta[1] = {0.5f}, out[2], scratch[18];
        impls[k]->local_conv(out, rows, W, beta, 2, 1, 3, scratch);
        /* a=2: taps k=0,1,2 have weights 7,8,9 on modules s-1, s, s+1 */
        assert_float_equal(out[0], 0.5 + 8 * 1 + 9 * 10, 1e-5);
        assert_float_equal(out[1], 0.5 + 7 * 1 + 8 * 10, 1e-5);
    }
}

static void test_kernels_mult_dense_hand(void **state)
{
    (void)state;
    const struct kernels *impls[2] = {&kernels_ref, &kernels_fast};
    for (int k = 0; k < 2; k++) {
        float x[2] = {1, 2}, G[4] = {1, 0, 0, 1}; /* module 0 keeps x0, module 1 keeps x1 */
        float P[2] = {3, 5};                      /* d=2, M=1 */
        float c[2] = {0.5f, -0.5f}, y[2], scratch[4];
        impls[k]->mult_dense(y, x, G, P, c, 2, 2, 1, scratch);
        assert_float_equal(y[0], 0.5 + 1 * 3, 1e-6);
        assert_float_equal(y[1], -0.5 + 2 * 5, 1e-6);
    }
}

static void test_kernels_attention_hand(void **state)
{
    (void)state;
    const struct kernels *impls[2] = {&kernels_ref, &kernels_fast};
    for (int k = 0; k < 2; k++) {
        /* one head, dh = 1, two positions: scores q*k/sqrt(1) = [0, ln 3] -> p = [1/4, 3/4] */
        float q[1] = {1}, kc[2] = {0, logf(3)}, vc[2] = {4, 8}, out[1], scores[2];
        impls[k]->attention(out, q, kc, vc, 2, 1, 1, 1, scores);
        assert_float_equal(out[0], 0.25 * 4 + 0.75 * 8, 1e-5);
    }
}

struct shape {
    uint32_t d, F, N, r, S;
};

static void test_kernels_fast_matches_ref(void **state)
{
    (void)state;
    const struct shape shapes[] = {{64, 256, 16, 16, 4},
                                   {100, 300, 10, 7, 5},
                                   {256, 1024, 32, 32, 8},
                                   {1024, 6144, 64, 96, 16},
                                   {9, 27, 3, 3, 3}};
    struct rng r;
    rng_seed(&r, 7);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        struct shape sh = shapes[si];
        uint32_t d = sh.d, F = sh.F, M = d / sh.S;
        float *x = rand_vec(&r, d, 1), *W = rand_vec(&r, (size_t)d * F, 0.1f),
              *b = rand_vec(&r, F, 1);
        float *y1 = malloc(F * sizeof(float)), *y2 = malloc(F * sizeof(float));
        kernels_ref.dense(y1, x, W, b, d, F);
        kernels_fast.dense(y2, x, W, b, d, F);
        assert_true(norm_err(y2, y1, F) < 1e-5);

        float *c1 = rand_vec(&r, (size_t)d * sh.r, 0.2f),
              *c2 = rand_vec(&r, (size_t)sh.r * F, 0.3f);
        float *w1t = rand_vec(&r, (size_t)F * d, 0.1f), *w2 = rand_vec(&r, (size_t)F * d, 0.1f);
        float *b2 = rand_vec(&r, d, 1);
        float *u = malloc(sh.r * sizeof(float)), *lg = malloc(F * sizeof(float));
        uint32_t *ch1 = malloc(F / sh.N * sizeof(uint32_t)),
                 *ch2 = malloc(F / sh.N * sizeof(uint32_t));
        float *hb = malloc(F / sh.N * sizeof(float));
        struct sparse_ff_scratch s1 = {u, lg, ch1, hb}, s2 = {u, lg, ch2, hb};
        struct sparse_ff_dims dm = {d, F, sh.N, sh.r};
        float *o1 = malloc(d * sizeof(float)), *o2 = malloc(d * sizeof(float));
        kernels_ref.sparse_ff(o1, x, c1, c2, b, w1t, w2, b2, dm, &s1);
        kernels_fast.sparse_ff(o2, x, c1, c2, b, w1t, w2, b2, dm, &s2);
        assert_memory_equal(ch1, ch2, F / sh.N * sizeof(uint32_t));
        assert_true(norm_err(o2, o1, d) < 1e-5);

        float *G = rand_vec(&r, (size_t)sh.S * d, 1), *P = rand_vec(&r, (size_t)d * M, 0.1f);
        float *scratch = malloc((size_t)sh.S * d * 9 * sizeof(float));
        kernels_ref.mult_dense(o1, x, G, P, b, d, sh.S, M, scratch);
        kernels_fast.mult_dense(o2, x, G, P, b, d, sh.S, M, scratch);
        assert_true(norm_err(o2, o1, d) < 1e-5);

        float *hist = rand_vec(&r, 3 * (size_t)d, 1);
        const float *rows[3] = {hist, hist + d, hist + 2 * d};
        for (uint32_t Km = 1; Km <= 3; Km += 2) {
            float *cw = rand_vec(&r, 3 * (size_t)Km * M * M, 0.1f);
            kernels_ref.local_conv(o1, rows, cw, b, sh.S, M, Km, scratch);
            kernels_fast.local_conv(o2, rows, cw, b, sh.S, M, Km, scratch);
            assert_true(norm_err(o2, o1, d) < 1e-5);
            free(cw);
        }

        uint32_t n = 37, H = sh.S;
        float *kc = rand_vec(&r, (size_t)n * d, 1), *vc = rand_vec(&r, (size_t)n * d, 1);
        float *scores = malloc(n * sizeof(float));
        kernels_ref.attention(o1, x, kc, vc, n, d, H, d / H, scores);
        kernels_fast.attention(o2, x, kc, vc, n, d, H, d / H, scores);
        assert_true(norm_err(o2, o1, d) < 1e-5);

        free(x), free(W), free(b), free(y1), free(y2), free(c1), free(c2), free(w1t), free(w2);
        free(b2), free(u), free(lg), free(ch1), free(ch2), free(o1), free(o2), free(G), free(P);
        free(scratch), free(hist), free(kc), free(vc), free(scores), free(hb);
    }
}

/* The row-few GEMM behind mult_dense and local_conv at many shapes, odd ones included (column
 * tails of every width, row counts that do not fill a register group): fast == ref to
 * rounding, bitwise the same with 1 and 2 threads, and each module's row bitwise the same
 * when computed alone (S = 1) as with the others: no sum depends on the partitioning. */
static void test_kernels_mult_dense_shapes(void **state)
{
    (void)state;
    const uint32_t shapes[][3] = {{1, 1, 1},     {3, 2, 5},     {9, 3, 3},       {17, 1, 33},
                                  {100, 5, 20},  {64, 4, 16},   {257, 13, 31},   {33, 9, 15},
                                  {1000, 7, 47}, {128, 64, 18}, {1024, 8, 1000}, {515, 3, 4099}};
    struct rng r;
    rng_seed(&r, 21);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        uint32_t d = shapes[t][0], S = shapes[t][1], M = shapes[t][2];
        size_t o = (size_t)S * M;
        float *x = rand_vec(&r, d, 1), *G = rand_vec(&r, (size_t)S * d, 1);
        float *P = rand_vec(&r, (size_t)d * M, 0.1f), *c = rand_vec(&r, o, 1);
        float *y1 = malloc(o * 4), *y2 = malloc(o * 4), *y3 = malloc(o * 4), *ys = malloc(M * 4);
        float *scratch = malloc((size_t)S * d * 4);
        kernels_ref.mult_dense(y1, x, G, P, c, d, S, M, scratch);
        kernels_set_threads(1);
        kernels_fast.mult_dense(y2, x, G, P, c, d, S, M, scratch);
        kernels_set_threads(2);
        kernels_fast.mult_dense(y3, x, G, P, c, d, S, M, scratch);
        assert_true(norm_err(y2, y1, o) < 1e-5);
        assert_memory_equal(y2, y3, o * 4);
        for (uint32_t s = 0; s<S; s += S> 2 ? S - 1 : 1) { /* the first and last module */
            kernels_fast.mult_dense(ys, x, G + (size_t)s * d, P, c + (size_t)s * M, d, 1, M,
                                    scratch);
            assert_memory_equal(ys, y2 + (size_t)s * M, M * 4);
        }
        kernels_set_threads(1);
        free(x), free(G), free(P), free(c), free(y1), free(y2), free(y3), free(ys), free(scratch);
    }
}

static void test_kernels_local_conv_shapes(void **state)
{
    (void)state;
    const uint32_t shapes[][2] = {{1, 1}, {2, 3}, {5, 7}, {16, 17}, {9, 40}, {64, 18}, {64, 96}};
    struct rng r;
    rng_seed(&r, 22);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        uint32_t S = shapes[t][0], M = shapes[t][1], d = S * M;
        float *hist = rand_vec(&r, 3 * (size_t)d, 1), *beta = rand_vec(&r, M, 1);
        const float *rows[3] = {hist, hist + d, hist + 2 * d};
        float *o1 = malloc(d * 4), *o2 = malloc(d * 4), *o3 = malloc(d * 4);
        float *scratch = malloc((size_t)9 * d * 4);
        for (uint32_t Km = 1; Km <= 3; Km += 2) {
            float *W = rand_vec(&r, 3 * (size_t)Km * M * M, 0.1f);
            kernels_ref.local_conv(o1, rows, W, beta, S, M, Km, scratch);
            kernels_set_threads(1);
            kernels_fast.local_conv(o2, rows, W, beta, S, M, Km, scratch);
            kernels_set_threads(2);
            kernels_fast.local_conv(o3, rows, W, beta, S, M, Km, scratch);
            kernels_set_threads(1);
            assert_true(norm_err(o2, o1, d) < 1e-5);
            assert_memory_equal(o2, o3, d * 4);
            free(W);
        }
        free(hist), free(beta), free(o1), free(o2), free(o3), free(scratch);
    }
}

/* With the generator's scales, the controller picks different units for different tokens. */
static void test_kernels_controller_picks_vary(void **state)
{
    (void)state;
    uint32_t d = 64, F = 256, N = 16, R = 16, B = F / N;
    struct rng r;
    rng_seed(&r, 11);
    float *c1 = rand_vec(&r, (size_t)d * R, 1.0f / 8), *c2 = rand_vec(&r, (size_t)R * F, 0.25f);
    float *cb = rand_vec(&r, F, 0.02f), *w1t = rand_vec(&r, (size_t)F * d, 0.125f);
    float *w2 = rand_vec(&r, (size_t)F * d, 0.25f), *b2 = rand_vec(&r, d, 0.02f);
    float u[16], lg[256], out[64], hb[16];
    uint32_t chosen[16];
    int used[256] = {0};
    struct sparse_ff_scratch s = {u, lg, chosen, hb};
    for (int t = 0; t < 32; t++) {
        float *x = rand_vec(&r, d, 1);
        kernels_fast.sparse_ff(out, x, c1, c2, cb, w1t, w2, b2, (struct sparse_ff_dims){d, F, N, R},
                               &s);
        for (uint32_t b = 0; b < B; b++) {
            assert_true(chosen[b] >= b * N && chosen[b] < (b + 1) * N);
            used[chosen[b]] = 1;
        }
        free(x);
    }
    int distinct = 0;
    for (uint32_t i = 0; i < F; i++)
        distinct += used[i];
    /* 16 blocks x 32 tokens: a stuck controller would use 16 units; expect most of the 256 */
    assert_true(distinct > 128);
    free(c1), free(c2), free(cb), free(w1t), free(w2), free(b2);
}

/* The fast kernels give bit-identical results with 1 and 2 threads (no sum is split), so
 * a pipeline's answers do not depend on --threads. */
static void test_kernels_threads_do_not_change_results(void **state)
{
    (void)state;
    uint32_t d = 2048, F = 8192, N = 32, R = 64, B = F / N;
    struct rng r;
    rng_seed(&r, 5);
    float *x = rand_vec(&r, d, 1), *c1 = rand_vec(&r, (size_t)d * R, 0.03f);
    float *c2 = rand_vec(&r, (size_t)R * F, 0.1f), *cb = rand_vec(&r, F, 0.02f);
    float *w1t = rand_vec(&r, (size_t)F * d, 0.02f), *w2 = rand_vec(&r, (size_t)F * d, 0.05f);
    float *b2 = rand_vec(&r, d, 0.02f), *u = malloc(R * 4), *lg = malloc(F * 4),
          *hb = malloc(B * 4);
    float *o1 = malloc(d * 4), *o2 = malloc(d * 4);
    uint32_t *ch = malloc(B * 4);
    struct sparse_ff_scratch s = {u, lg, ch, hb};
    struct sparse_ff_dims dm = {d, F, N, R};
    kernels_set_threads(1);
    kernels_fast.sparse_ff(o1, x, c1, c2, cb, w1t, w2, b2, dm, &s);
    kernels_set_threads(2);
    kernels_fast.sparse_ff(o2, x, c1, c2, cb, w1t, w2, b2, dm, &s);
    kernels_set_threads(1);
    assert_memory_equal(o1, o2, d * 4);
    free(x), free(c1), free(c2), free(cb), free(w1t), free(w2), free(b2), free(u), free(lg);
    free(hb), free(o1), free(o2), free(ch);
}

/* dense_range: a tensor-parallel rank's columns, each bitwise what dense gives, the rest of
 * y untouched; ranges that start and end off the kernels' tile widths, on 1 and 2 threads. */
static void test_kernels_dense_range_equals_dense(void **state)
{
    (void)state;
    const uint32_t in = 37, out = 1000;
    const uint32_t ranges[][2] = {{0, 1000},  {0, 500},    {500, 1000}, {3, 333},
                                  {333, 667}, {999, 1000}, {17, 18},    {250, 750}};
    const struct kernels *ks[2] = {&kernels_ref, &kernels_fast};
    struct rng r;
    rng_seed(&r, 11);
    float *x = rand_vec(&r, in, 1), *W = rand_vec(&r, (size_t)in * out, 0.2f),
          *b = rand_vec(&r, out, 0.1f);
    float *whole[2] = {malloc(out * sizeof(float)), malloc(out * sizeof(float))};
    float *y = malloc(out * sizeof *y);
    for (int ki = 0; ki < 2; ki++)
        for (int threads = 1; threads <= 2; threads++) {
            kernels_set_threads(threads);
            ks[ki]->dense(whole[0], x, W, b, in, out);
            ks[ki]->dense(whole[1], x, W, NULL, in, out);
            for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
                uint32_t lo = ranges[i][0], hi = ranges[i][1];
                const float *want = whole[i % 2]; /* odd cases without a bias */
                for (uint32_t o = 0; o < out; o++)
                    y[o] = -7.0f;
                ks[ki]->dense_range(y, x, W, i % 2 ? NULL : b + lo, in, out, lo, hi);
                for (uint32_t o = 0; o < out; o++) {
                    float w = o < lo || o >= hi ? -7.0f : want[o];
                    if (memcmp(&y[o], &w, sizeof w) != 0)
                        fail_msg("%s, %d threads: range %u..%u output %u: %g, expected %g",
                                 ks[ki]->name, threads, lo, hi, o, (double)y[o], (double)w);
                }
            }
        }
    kernels_set_threads(1);
    free(x), free(W), free(b), free(whole[0]), free(whole[1]), free(y);
}

/* Batch invariance: for R = 1..17 rows, every row of a *_rows call is bitwise the single-row
 * call on that row, for ref and fast, with the batch on 2 threads and the solo runs on 1.
 * Some rows repeat others so that several rows choose the same sparse FF units. */
static void test_kernels_rows_equal_solo(void **state)
{
    (void)state;
    const struct shape shapes[] = {{100, 300, 10, 7, 5}, {1024, 2048, 8, 32, 16}};
    const struct kernels *ks[] = {&kernels_ref, &kernels_fast};
    enum { RMAX = 17 };
    struct rng r;
    rng_seed(&r, 17);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        struct shape sh = shapes[si];
        uint32_t d = sh.d, F = sh.F, M = d / sh.S, B = F / sh.N;
        float *X = rand_vec(&r, (size_t)RMAX * d, 1);
        for (uint32_t row = 5; row < RMAX; row += 4) /* repeats: shared units */
            memcpy(X + (size_t)row * d, X + (size_t)(row % 5) * d, d * sizeof(float));
        float *W = rand_vec(&r, (size_t)d * F, 0.1f), *b = rand_vec(&r, F, 1);
        float *c1 = rand_vec(&r, (size_t)d * sh.r, 0.2f),
              *c2 = rand_vec(&r, (size_t)sh.r * F, 0.3f);
        float *w1t = rand_vec(&r, (size_t)F * d, 0.1f), *w2 = rand_vec(&r, (size_t)F * d, 0.1f);
        float *b2 = rand_vec(&r, d, 1), *G = rand_vec(&r, (size_t)sh.S * d, 1);
        float *P = rand_vec(&r, (size_t)d * M, 0.1f), *cw = rand_vec(&r, 9 * (size_t)M * M, 0.1f);
        float *hist = rand_vec(&r, (size_t)RMAX * 3 * d, 1);
        size_t big = (size_t)RMAX * (F > 9 * d ? F : 9 * d) * sh.S;
        float *Y = malloc(big * sizeof(float)), *y1 = malloc(big * sizeof(float));
        float *scratch = malloc(big * sizeof(float));
        float *u = malloc((size_t)RMAX * sh.r * 4), *lg = malloc((size_t)RMAX * F * 4);
        float *hb = malloc((size_t)RMAX * B * 4);
        uint32_t *ch = malloc((size_t)RMAX * B * 4), *ch1 = malloc((size_t)B * 4);
        float *u1 = malloc((size_t)sh.r * 4), *lg1 = malloc((size_t)F * 4), *hb1 = malloc(B * 4);
        const float *rows[RMAX][3];
        for (uint32_t row = 0; row < RMAX; row++)
            for (int a = 0; a < 3; a++)
                rows[row][a] = hist + ((size_t)row * 3 + a) * d;
        struct sparse_ff_dims dm = {d, F, sh.N, sh.r};
        for (size_t ki = si == 0 ? 0 : 1; ki < 2; ki++) { /* ref: the small shape only */
            const struct kernels *k = ks[ki];
            for (uint32_t R = 1; R <= RMAX; R++) {
                /* dense */
                kernels_set_threads(2);
                k->dense_rows(Y, X, W, b, R, d, F);
                kernels_set_threads(1);
                for (uint32_t row = 0; row < R; row++) {
                    k->dense(y1, X + (size_t)row * d, W, b, d, F);
                    assert_memory_equal(Y + (size_t)row * F, y1, F * sizeof(float));
                }
                /* sparse FF */
                struct sparse_ff_scratch sb = {u, lg, ch, hb};
                kernels_set_threads(2);
                k->sparse_ff_rows(Y, X, c1, c2, b, w1t, w2, b2, R, dm, &sb);
                kernels_set_threads(1);
                for (uint32_t row = 0; row < R; row++) {
                    struct sparse_ff_scratch s1 = {u1, lg1, ch1, hb1};
                    k->sparse_ff(y1, X + (size_t)row * d, c1, c2, b, w1t, w2, b2, dm, &s1);
                    assert_memory_equal(ch + (size_t)row * B, ch1, B * sizeof(uint32_t));
                    assert_memory_equal(Y + (size_t)row * d, y1, d * sizeof(float));
                }
                /* multiplicative dense */
                kernels_set_threads(2);
                k->mult_dense_rows(Y, X, G, P, b, R, d, sh.S, M, scratch);
                kernels_set_threads(1);
                for (uint32_t row = 0; row < R; row++) {
                    k->mult_dense(y1, X + (size_t)row * d, G, P, b, d, sh.S, M, scratch);
                    assert_memory_equal(Y + (size_t)row * d, y1, d * sizeof(float));
                }
                /* local convolutions 3x3 and 3x1 */
                for (uint32_t Km = 1; Km <= 3; Km += 2) {
                    kernels_set_threads(2);
                    k->local_conv_rows(Y, (const float *const(*)[3])rows, cw, b, R, sh.S, M, Km,
                                       scratch);
                    kernels_set_threads(1);
                    for (uint32_t row = 0; row < R; row++) {
                        k->local_conv(y1, rows[row], cw, b, sh.S, M, Km, scratch);
                        assert_memory_equal(Y + (size_t)row * d, y1, d * sizeof(float));
                    }
                }
            }
        }
        free(X), free(W), free(b), free(c1), free(c2), free(w1t), free(w2), free(b2), free(G);
        free(P), free(cw), free(hist), free(Y), free(y1), free(scratch), free(u), free(lg);
        free(hb), free(ch), free(ch1), free(u1), free(lg1), free(hb1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_layernorm_hand),
        cmocka_unit_test(test_kernels_sru_hand),
        cmocka_unit_test(test_kernels_sparse_ff_hand),
        cmocka_unit_test(test_kernels_local_conv_hand),
        cmocka_unit_test(test_kernels_mult_dense_hand),
        cmocka_unit_test(test_kernels_attention_hand),
        cmocka_unit_test(test_kernels_fast_matches_ref),
        cmocka_unit_test(test_kernels_mult_dense_shapes),
        cmocka_unit_test(test_kernels_local_conv_shapes),
        cmocka_unit_test(test_kernels_controller_picks_vary),
        cmocka_unit_test(test_kernels_threads_do_not_change_results),
        cmocka_unit_test(test_kernels_rows_equal_solo),
        cmocka_unit_test(test_kernels_dense_range_equals_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* LSH kernels (SPEC §2): the fast linear-pass selection equals the sorting reference, the
 * selection follows the SPEC rule on hand cases, the signature and attention equal direct
 * double-precision transcriptions, and the rotation generator gives a standard normal draw
 * that differs per sub-layer and head. (Its exact values are checked against the numpy
 * reference by tests/reference/compare.py.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/lsh.h"
#include "util/rng.h"

/* Hand case: 2 rounds; the query (last entry) has buckets (3, 5). */
static void test_lsh_select_hand(void **state)
{
    (void)state;
    uint64_t q = 3u | 5u << 8;
    /* entries 0..7: match when byte 0 == 3 or byte 1 == 5 */
    uint64_t sigs[8] = {3u | 1u << 8, 0u | 0u << 8, 2u | 5u << 8, 1u | 1u << 8,
                        0u | 2u << 8, 7u | 7u << 8, 6u | 6u << 8, q};
    uint32_t J[8], Jr[8];
    uint64_t work[8];
    /* C = 4: matches 7 (self), 2, 0 then the most recent other, 6 */
    uint32_t n = lsh_select_fast(J, sigs, 1, 8, q, 2, 4, work);
    uint32_t want[4] = {0, 2, 6, 7};
    assert_int_equal(n, 4);
    assert_memory_equal(J, want, sizeof want);
    assert_int_equal(lsh_select_ref(Jr, sigs, 1, 8, q, 2, 4, work), 4);
    assert_memory_equal(Jr, want, sizeof want);
    /* C = 2: the two most recent matches, 2 and 7 */
    uint32_t want2[2] = {2, 7};
    assert_int_equal(lsh_select_fast(J, sigs, 1, 8, q, 2, 2, work), 2);
    assert_memory_equal(J, want2, sizeof want2);
    /* only round 0 counts with n_hashes = 1: matches 0 and 7, then 6 and 5 */
    uint32_t want1[4] = {0, 5, 6, 7};
    assert_int_equal(lsh_select_fast(J, sigs, 1, 8, q, 1, 4, work), 4);
    assert_memory_equal(J, want1, sizeof want1);
    /* n <= C: everything */
    assert_int_equal(lsh_select_fast(J, sigs, 1, 3, sigs[2], 2, 4, work), 3);
}

static void test_lsh_select_fast_matches_ref(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 77);
    enum { NMAX = 300, STRIDE = 3 };
    uint64_t *sigs = malloc(NMAX * STRIDE * sizeof *sigs), *work = malloc(NMAX * sizeof *work);
    uint32_t *J = malloc(NMAX * sizeof *J), *Jr = malloc(NMAX * sizeof *Jr);
    for (int trial = 0; trial < 400; trial++) {
        uint32_t nh = 1 + (uint32_t)(rng_next(&r) % LSH_MAX_HASHES);
        uint32_t nb = 2 * (1 + (uint32_t)(rng_next(&r) % (trial % 3 == 0 ? 2 : 64)));
        uint32_t n = 1 + (uint32_t)(rng_next(&r) % NMAX), C = 1 + (uint32_t)(rng_next(&r) % n);
        for (uint32_t j = 0; j < n; j++) {
            uint64_t s = 0;
            for (uint32_t h = 0; h < 8; h++) /* bytes past the rounds hold garbage too */
                s |= (h < nh ? rng_next(&r) % nb : rng_next(&r) % 256) << (8 * h);
            sigs[(uint64_t)j * STRIDE] = s;
        }
        uint64_t q = sigs[(uint64_t)(n - 1) * STRIDE];
        uint32_t a = lsh_select_fast(J, sigs, STRIDE, n, q, nh, C, work);
        uint32_t b = lsh_select_ref(Jr, sigs, STRIDE, n, q, nh, C, work);
        assert_int_equal(a, b);
        assert_int_equal(a, n < C ? n : C);
        assert_memory_equal(J, Jr, a * sizeof *J);
    }
    free(sigs);
    free(work);
    free(J);
    free(Jr);
}

static void test_lsh_signature_and_attend_direct(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 5);
    enum { DH = 7, NH = 3, NB = 6, N = 9 };
    float R[DH * NH * (NB / 2)], z[DH], proj[NB / 2];
    lsh_rotations(R, 42, 3, 1, DH, NH, NB);
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < DH; i++)
            z[i] = rng_normal(&r);
        uint64_t sig = lsh_signature(z, R, DH, NH, NB, proj);
        for (int rho = 0; rho < NH; rho++) {
            double t[NB];
            for (int k = 0; k < NB / 2; k++) {
                double acc = 0;
                for (int i = 0; i < DH; i++)
                    acc += (double)z[i] * R[(i * NH + rho) * (NB / 2) + k];
                t[k] = acc;
                t[NB / 2 + k] = -acc;
            }
            int best = 0;
            for (int k = 1; k < NB; k++)
                if (t[k] > t[best]) best = k;
            assert_int_equal((sig >> (8 * rho)) & 0xFF, best);
        }
    }
    /* attention over J = {1, 4, 8}, self = 8 */
    float qk[N * DH], v[N * DH], scale[N], out[DH], scores[N];
    for (int i = 0; i < N * DH; i++)
        qk[i] = rng_normal(&r), v[i] = rng_normal(&r);
    for (int j = 0; j < N; j++)
        scale[j] = lsh_key_scale(qk + j * DH, DH);
    uint32_t J[3] = {1, 4, 8};
    float out_fast[DH];
    lsh_attend_ref(out, qk + 8 * DH, qk, v, DH, scale, 1, J, 3, 8, DH, scores);
    kernels_fast.lsh_attend(out_fast, qk + 8 * DH, qk, v, DH, scale, 1, J, 3, 8, DH, scores);
    double s[3], mx = -1e300, sum = 0;
    for (int i = 0; i < 3; i++) {
        const float *kj = qk + J[i] * DH, *qv = qk + 8 * DH;
        double ss = 0, dot = 0;
        for (int e = 0; e < DH; e++)
            ss += (double)kj[e] * kj[e], dot += (double)qv[e] * kj[e];
        s[i] = dot / sqrt(ss / DH + 1e-6) / sqrt((double)DH) - (J[i] == 8 ? 1e5 : 0);
        if (s[i] > mx) mx = s[i];
    }
    for (int i = 0; i < 3; i++)
        sum += exp(s[i] - mx);
    for (int e = 0; e < DH; e++) {
        double o = 0;
        for (int i = 0; i < 3; i++)
            o += exp(s[i] - mx) / sum * v[J[i] * DH + e];
        assert_true(fabs(o - out[e]) <= 1e-5 * (1 + fabs(o)));
        assert_true(fabs(o - out_fast[e]) <= 1e-5 * (1 + fabs(o)));
    }
}

static void test_lsh_rotations_gaussian(void **state)
{
    (void)state;
    enum { DH = 64, NH = 4, NB = 64, N = DH * NH * NB / 2 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    lsh_rotations(a, 1, 0, 0, DH, NH, NB);
    double m = 0, v = 0;
    for (int i = 0; i < N; i++)
        m += a[i];
    m /= N;
    for (int i = 0; i < N; i++)
        v += (a[i] - m) * (a[i] - m);
    v /= N;
    assert_true(fabs(m) < 0.03 && fabs(sqrt(v) - 1) < 0.03);
    lsh_rotations(b, 1, 0, 1, DH, NH, NB); /* another head */
    lsh_rotations(c, 1, 1, 0, DH, NH, NB); /* another sub-layer */
    assert_true(memcmp(a, b, N * sizeof *a) != 0 && memcmp(a, c, N * sizeof *a) != 0);
    lsh_rotations(b, 1, 0, 0, DH, NH, NB); /* the same inputs: the same draw */
    assert_memory_equal(a, b, N * sizeof *a);
    free(a);
    free(b);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lsh_select_hand),
        cmocka_unit_test(test_lsh_select_fast_matches_ref),
        cmocka_unit_test(test_lsh_signature_and_attend_direct),
        cmocka_unit_test(test_lsh_rotations_gaussian),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

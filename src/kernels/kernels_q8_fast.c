/* kernels_q8_fast: the AVX2 build of the fast q8 kernels (kernels_q8_fast_body.h), and the
 * table that picks, once per process, the VNNI build (kernels_q8_vnni.c) when the CPU has
 * AVX-VNNI. Both builds give bitwise equal results. */
#define Q8_FAST_TABLE kernels_q8_avx2
#define Q8_FAST_NAME  "fast-avx2"
#include "kernels/kernels_q8_fast_body.h"

#ifdef STF_HAVE_Q8_VNNI
#include <cpuid.h>

int kernels_q8_have_vnni(void)
{
    static int have = -1;
    if (have < 0) {
        /* CPUID leaf 7, sub-leaf 1, EAX bit 4: AVX-VNNI (read directly: older compilers'
         * __builtin_cpu_supports does not know the name). The x86-64-v3 baseline already
         * needs the OS to save YMM state. */
        unsigned a = 0, b = 0, c = 0, d = 0;
        have = __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1u) ? 1 : 0;
    }
    return have;
}
#else
const struct kernels_q8 kernels_q8_vnni = {0};
int kernels_q8_have_vnni(void)
{
    return 0;
}
#endif

static const struct kernels_q8 *impl(void)
{
    return kernels_q8_have_vnni() ? &kernels_q8_vnni : &kernels_q8_avx2;
}

static void dense_dispatch(float *y, const float *x, const struct q8_block *wt, const float *b,
                           uint32_t in, uint32_t out, struct q8_scratch *qs)
{
    impl()->dense(y, x, wt, b, in, out, qs);
}

static void sparse_ff_dispatch(float *out, const float *x, const float *c1, const float *c2,
                               const float *cb, const struct q8_block *w1t,
                               const struct q8_block *w2, const float *b2,
                               struct sparse_ff_dims dims, struct sparse_ff_scratch *s,
                               struct q8_scratch *qs)
{
    impl()->sparse_ff(out, x, c1, c2, cb, w1t, w2, b2, dims, s, qs);
}

static void mult_dense_dispatch(float *y, const float *x, const void *G, enum stf_dtype g_type,
                                const struct q8_block *pt, const float *c, uint32_t d, uint32_t S,
                                uint32_t M, struct q8_scratch *qs)
{
    impl()->mult_dense(y, x, G, g_type, pt, c, d, S, M, qs);
}

static void local_conv_dispatch(float *out, const float *const rows[3], const struct q8_block *wt,
                                const float *beta, uint32_t S, uint32_t M, uint32_t Km,
                                struct q8_scratch *qs)
{
    impl()->local_conv(out, rows, wt, beta, S, M, Km, qs);
}

static void dense_rows_dispatch(float *Y, const float *X, const struct q8_block *wt, const float *b,
                                uint32_t R, uint32_t in, uint32_t out, struct q8_scratch *qs)
{
    impl()->dense_rows(Y, X, wt, b, R, in, out, qs);
}

static void sparse_ff_rows_dispatch(float *out, const float *X, const float *c1, const float *c2,
                                    const float *cb, const struct q8_block *w1t,
                                    const struct q8_block *w2, const float *b2, uint32_t R,
                                    struct sparse_ff_dims dims, struct sparse_ff_scratch *s,
                                    struct q8_scratch *qs)
{
    impl()->sparse_ff_rows(out, X, c1, c2, cb, w1t, w2, b2, R, dims, s, qs);
}

static void mult_dense_rows_dispatch(float *Y, const float *X, const void *G, enum stf_dtype g_type,
                                     const struct q8_block *pt, const float *c, uint32_t R,
                                     uint32_t d, uint32_t S, uint32_t M, struct q8_scratch *qs)
{
    impl()->mult_dense_rows(Y, X, G, g_type, pt, c, R, d, S, M, qs);
}

static void local_conv_rows_dispatch(float *out, const float *const (*rows)[3],
                                     const struct q8_block *wt, const float *beta, uint32_t R,
                                     uint32_t S, uint32_t M, uint32_t Km, struct q8_scratch *qs)
{
    impl()->local_conv_rows(out, rows, wt, beta, R, S, M, Km, qs);
}

const struct kernels_q8 kernels_q8_fast = {
    .name = "fast",
    .dense = dense_dispatch,
    .sparse_ff = sparse_ff_dispatch,
    .mult_dense = mult_dense_dispatch,
    .local_conv = local_conv_dispatch,
    .dense_rows = dense_rows_dispatch,
    .sparse_ff_rows = sparse_ff_rows_dispatch,
    .mult_dense_rows = mult_dense_rows_dispatch,
    .local_conv_rows = local_conv_rows_dispatch,
};

#include "tools/roofline.h"

#include <stdlib.h>
#include <time.h>

#include "util/mem.h"
#include "util/timer.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

static int cpu_clock_threads; /* 0: wall clock */

void roofline_use_cpu_clock(int threads)
{
    cpu_clock_threads = threads > 0 ? threads : 1;
}

double roofline_now(void)
{
    if (!cpu_clock_threads) return stf_now();
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return ((double)t.tv_sec + 1e-9 * (double)t.tv_nsec) / cpu_clock_threads;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* FMA_ACC independent accumulators hide the FMA latency on both FMA ports (4 cycles x 2
 * ports needs 8; 12 leaves margin); returns the multiply-adds done. */
#define FMA_ACC 12
static double fma_burst(long iters, float *sink)
{
#if defined(__AVX512F__)
    __m512 a[FMA_ACC], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < FMA_ACC; k++)
        a[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < FMA_ACC; k++)
            a[k] = _mm512_fmadd_ps(a[k], m, c);
    __m512 s = a[0];
    for (int k = 1; k < FMA_ACC; k++)
        s = _mm512_add_ps(s, a[k]);
    *sink = _mm512_reduce_add_ps(s);
    return (double)iters * FMA_ACC * 16;
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 a[FMA_ACC], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < FMA_ACC; k++)
        a[k] = _mm256_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < FMA_ACC; k++)
            a[k] = _mm256_fmadd_ps(a[k], m, c);
    float out[8];
    __m256 s = a[0];
    for (int k = 1; k < FMA_ACC; k++)
        s = _mm256_add_ps(s, a[k]);
    _mm256_storeu_ps(out, s);
    *sink = out[0];
    return (double)iters * FMA_ACC * 8;
#else
    float a[FMA_ACC];
    for (int k = 0; k < FMA_ACC; k++)
        a[k] = (float)k;
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < FMA_ACC; k++)
            a[k] = a[k] * 0.999999f + 1e-7f;
    *sink = a[0];
    return (double)iters * FMA_ACC;
#endif
}

int roofline_measure(struct roofline *r, int threads, size_t n, int reps)
{
    r->threads = threads;
#if defined(__AVX512F__)
    r->isa = "AVX-512 FMA";
#elif defined(__AVX2__) && defined(__FMA__)
    r->isa = "AVX2 FMA";
#else
    r->isa = "scalar";
#endif
    float *a = stf_alloc(n * sizeof *a), *b = stf_alloc(n * sizeof *b),
          *c = stf_alloc(n * sizeof *c);
    double *gbs = calloc((size_t)reps, sizeof *gbs), *gm = calloc((size_t)reps, sizeof *gm);
    if (!a || !b || !c || !gbs || !gm) {
        stf_free(a), stf_free(b), stf_free(c), free(gbs), free(gm);
        return -1;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) { /* first touch by the thread that will stream it */
        b[i] = (float)i;
        c[i] = 1.0f;
    }
    const float s = 3.0f;
    for (int k = -1; k < reps; k++) {
        double t = roofline_now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + s * c[i];
        t = roofline_now() - t;
        if (k >= 0) gbs[k] = 3.0 * (double)n * sizeof(float) / t / 1e9;
    }
    volatile float sink = a[n / 2];
    for (int k = -1; k < reps; k++) {
        double macs = 0, t = roofline_now();
#pragma omp parallel reduction(+ : macs)
        {
            float z;
            macs += fma_burst(20000000L / FMA_ACC, &z);
            sink = z;
        }
        t = roofline_now() - t;
        if (k >= 0) gm[k] = macs / t / 1e9;
    }
    (void)sink;
    qsort(gbs, (size_t)reps, sizeof *gbs, cmp_double);
    qsort(gm, (size_t)reps, sizeof *gm, cmp_double);
    r->stream_gbs = gbs[reps / 2], r->stream_lo = gbs[0], r->stream_hi = gbs[reps - 1];
    r->peak_gmacs = gm[reps / 2], r->peak_lo = gm[0], r->peak_hi = gm[reps - 1];
    stf_free(a), stf_free(b), stf_free(c), free(gbs), free(gm);
    return 0;
}

double roofline_bound(const struct roofline *r, double bytes, double macs)
{
    double tb = bytes / (r->stream_gbs * 1e9), tm = macs / (r->peak_gmacs * 1e9);
    return tb > tm ? tb : tm;
}

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void layernorm(float *out, const float *x, const float *g, const float *b, uint32_t n)
{
    double mean = 0.0, var = 0.0;
    for (uint32_t i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (uint32_t i = 0; i < n; i++) {
        double dlt = x[i] - mean;
        var += dlt * dlt;
    }
    var /= n;
    float inv = (float)(1.0 / sqrt(var + 1e-6));
    float fm = (float)mean;
    for (uint32_t i = 0; i < n; i++)
        out[i] = g[i] * ((x[i] - fm) * inv) + b[i];
}

static float sigmoid(float z)
{
    return 1.0f / (1.0f + expf(-z));
}

void sru_step(float *h, float *c, const float *u, const float *gates, uint32_t n)
{
    const float sqrt3 = 1.7320508075688772f;
    for (uint32_t i = 0; i < n; i++) {
        float r = sigmoid(gates[i]);
        float f = sigmoid(gates[n + i]);
        float yt = gates[2 * n + i];
        c[i] = f * c[i] + (1.0f - f) * yt;
        h[i] = r * c[i] + (1.0f - r) * u[i] * sqrt3;
    }
}

uint32_t argmax(const float *x, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void kernels_prepare_process(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") && getenv("OPENBLAS_THREAD_TIMEOUT")) return;
    if (getenv("STF_REEXECUTED")) return; /* never loop */
    if (!getenv("OMP_WAIT_POLICY")) setenv("OMP_WAIT_POLICY", "passive", 1);
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    setenv("STF_REEXECUTED", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: run on with the spinning defaults */
}

void kernels_set_threads(int n)
{
    openblas_set_num_threads(n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

const struct kernels *kernels_by_name(const char *name)
{
    if (strcmp(name, "ref") == 0) return &kernels_ref;
    if (strcmp(name, "fast") == 0) return &kernels_fast;
    return NULL;
}

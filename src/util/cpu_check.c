/* cpu_check: a build for a CPU baseline (CMake STF_ARCH, default x86-64-v3: AVX2 + FMA)
 * must not die with "illegal instruction" on an older node of a cluster. This file is
 * compiled for the plain x86-64 baseline, and its constructor runs before main: on a CPU
 * below the build's baseline it prints what is missing and how to rebuild, and exits 1.
 * Every program linking stf_util gets it (CMake forces the symbol in). */
#include <stdio.h>
#include <stdlib.h>

#include "util/status.h"

void stf_cpu_check(void);

__attribute__((constructor)) void stf_cpu_check(void)
{
#if defined(__x86_64__) && defined(STF_ARCH_CHECK)
    /* The level's features by name (gcc 12 knows "x86-64-v3" itself, clang 14 does not). */
    char level = STF_ARCH_CHECK[sizeof STF_ARCH_CHECK - 2];
    __builtin_cpu_init();
    int ok = __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.2") &&
             __builtin_cpu_supports("popcnt");
    if (level >= '3')
        ok = ok && __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
             __builtin_cpu_supports("bmi2");
    if (level >= '4')
        ok = ok && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (!ok) {
        fprintf(stderr,
                "sparsetf: this build needs an %s CPU and this one is not (see CMake STF_ARCH);\n"
                "rebuild for it on this node: cmake -S . -B build -DSTF_ARCH=x86-64 "
                "(slower kernels) or -DSTF_ARCH=native\n",
                STF_ARCH_CHECK);
        exit(1);
    }
#endif
}

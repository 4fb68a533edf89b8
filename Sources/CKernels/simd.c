// Run-time choice of the SIMD level (see ckernels.h).
#include "internal.h"
#include <stdlib.h>
#include <string.h>

mpo_simd_level mpo_simd_detect(void) {
#if MPO_HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MPO_SIMD_AVX2;
#endif
    return MPO_SIMD_PORTABLE;
}

int mpo_cpu_has_avx512(void) {
#if MPO_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

// Written once per process (first use or mpo_simd_set); kernels only read it.
static volatile int active = -1;

mpo_simd_level mpo_simd_set(mpo_simd_level level) {
    mpo_simd_level best = mpo_simd_detect();
    active = level < best ? level : best;
    return (mpo_simd_level)active;
}

mpo_simd_level mpo_simd_active(void) {
    if (active < 0) {
        const char *env = getenv("MPO_SIMD");
        mpo_simd_set(env && strcmp(env, "portable") == 0 ? MPO_SIMD_PORTABLE : MPO_SIMD_AVX2);
    }
    return (mpo_simd_level)active;
}

const char *mpo_simd_name(mpo_simd_level level) {
    return level == MPO_SIMD_AVX2 ? "avx2" : "portable";
}

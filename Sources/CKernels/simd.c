// Run-time choice of the SIMD level (see ckernels.h).
#include "ckernels.h"
#include <stdlib.h>
#include <string.h>

mpo_simd_level mpo_simd_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return MPO_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MPO_SIMD_AVX2;
#endif
    return MPO_SIMD_PORTABLE;
}

static int active = -1;

mpo_simd_level mpo_simd_set(mpo_simd_level level) {
    mpo_simd_level best = mpo_simd_detect();
    active = level < best ? level : best;
    return (mpo_simd_level)active;
}

mpo_simd_level mpo_simd_active(void) {
    if (active < 0) {
        mpo_simd_level want = mpo_simd_detect();
        const char *env = getenv("MPO_SIMD");
        if (env && strcmp(env, "portable") == 0) want = MPO_SIMD_PORTABLE;
        else if (env && strcmp(env, "avx2") == 0) want = MPO_SIMD_AVX2;
        mpo_simd_set(want);
    }
    return (mpo_simd_level)active;
}

const char *mpo_simd_name(mpo_simd_level level) {
    switch (level) {
    case MPO_SIMD_AVX2: return "avx2";
    case MPO_SIMD_AVX512: return "avx512";
    default: return "portable";
    }
}

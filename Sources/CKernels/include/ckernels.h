// CKernels: the CPU device's hot loops that BLAS does not cover, in C, each with a portable
// path (the reference) and SIMD paths compiled per function for AVX2+FMA and AVX-512F
// (target attributes, no global compiler flags), chosen at run time from the CPU's features
// the way ggml does it. Every path computes the same operations in the same order per output
// element where the results must match bit for bit (documented per kernel); where a path may
// round differently it says so and the tests compare it to the portable one with a tolerance.
//
// Legend: N rows (tokens), C columns (channels), T time, hd head dim, ld row stride (floats).
// Every function is reentrant: the caller (Swift) splits work across threads.
#ifndef MPO_CKERNELS_H
#define MPO_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// SIMD level a kernel runs at.
typedef enum {
    MPO_SIMD_PORTABLE = 0,   ///< plain C (the reference path)
    MPO_SIMD_AVX2 = 1,       ///< AVX2 + FMA, 8 floats per vector
    MPO_SIMD_AVX512 = 2,     ///< AVX-512F, 16 floats per vector
} mpo_simd_level;

/// The best level this CPU supports.
mpo_simd_level mpo_simd_detect(void);
/// The level kernels use now (starts as mpo_simd_detect(), or MPO_SIMD=portable|avx2|avx512
/// from the environment, capped by what the CPU supports).
mpo_simd_level mpo_simd_active(void);
/// Sets the level kernels use (capped by what the CPU supports); returns the level set.
mpo_simd_level mpo_simd_set(mpo_simd_level level);
/// "portable", "avx2" or "avx512".
const char *mpo_simd_name(mpo_simd_level level);

#endif

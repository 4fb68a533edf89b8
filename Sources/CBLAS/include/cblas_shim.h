// CBLAS: the OpenBLAS surface of the CPU device and TensorTrain, and nothing else:
//  - CBLAS (row-major sgemm/sgemv for every GEMM of the CPU device),
//  - the LAPACK divide-and-conquer SVD (sgesdd/dgesdd, Fortran ABI, column-major) for TT-SVD,
//    the Cholesky factorisation (dpotrf) for whitening (and, with dtrsm, error correction's solve),
//  - OpenBLAS thread control and the name of the kernels it chose (`bench` prints it).
#ifndef MPO_CBLAS_SHIM_H
#define MPO_CBLAS_SHIM_H

#include <cblas.h>

void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda,
             float *s, float *u, const int *ldu, float *vt, const int *ldvt,
             float *work, const int *lwork, int *iwork, int *info);
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
             double *s, double *u, const int *ldu, double *vt, const int *ldvt,
             double *work, const int *lwork, int *iwork, int *info);
/// Cholesky factorisation (Fortran ABI, column-major) for data-aware truncation's whitening.
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);

/// OpenBLAS's kernel family ("Haswell", "Zen", "SkylakeX", …), as a NUL-terminated string.
const char *mpo_openblas_corename(void);

#endif

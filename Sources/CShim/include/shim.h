// CShim: the C surface the Swift code needs and nothing else.
//  - OpenCL 1.2 headers (the OpenCL device grows on top of these),
//  - CBLAS from OpenBLAS (row-major sgemm for every GEMM of the CPU device),
//  - the LAPACK divide-and-conquer SVD (sgesdd/dgesdd) for TT-SVD,
//  - OpenBLAS thread control.
#ifndef MPO_SHIM_H
#define MPO_SHIM_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <cblas.h>

// LAPACK (Fortran ABI, column-major), exported by libopenblas.
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda,
             float *s, float *u, const int *ldu, float *vt, const int *ldvt,
             float *work, const int *lwork, int *iwork, int *info);
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
             double *s, double *u, const int *ldu, double *vt, const int *ldvt,
             double *work, const int *lwork, int *iwork, int *info);

/// Name of an OpenCL error code ("CL_OUT_OF_RESOURCES"), or "CL_UNKNOWN_ERROR".
const char *mpo_cl_error_name(cl_int code);

/// Number of OpenCL platforms (0 when no ICD is installed or clGetPlatformIDs fails).
cl_uint mpo_cl_platform_count(void);

#endif

// OpenCL helpers that are awkward from Swift: info-string queries (two-call size dance),
// build-log fetch, program creation from a single source or binary (pointer-to-pointer
// arguments), and program-binary readback for the on-disk kernel cache.
// Every returned string/array is malloc'd and owned by the caller (free()).

#include "copencl.h"
#include <stdlib.h>
#include <string.h>

// MARK: - info strings

char *mpo_cl_platform_string(cl_platform_id platform, cl_platform_info what) {
    size_t n = 0;
    if (clGetPlatformInfo(platform, what, 0, NULL, &n) != CL_SUCCESS) return NULL;
    char *s = calloc(n + 1, 1);
    if (!s) return NULL;
    if (clGetPlatformInfo(platform, what, n, s, NULL) != CL_SUCCESS) { free(s); return NULL; }
    return s;
}

char *mpo_cl_device_string(cl_device_id device, cl_device_info what) {
    size_t n = 0;
    if (clGetDeviceInfo(device, what, 0, NULL, &n) != CL_SUCCESS) return NULL;
    char *s = calloc(n + 1, 1);
    if (!s) return NULL;
    if (clGetDeviceInfo(device, what, n, s, NULL) != CL_SUCCESS) { free(s); return NULL; }
    return s;
}

char *mpo_cl_build_log(cl_program program, cl_device_id device) {
    size_t n = 0;
    if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) != CL_SUCCESS) return NULL;
    char *s = calloc(n + 1, 1);
    if (!s) return NULL;
    if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, n, s, NULL) != CL_SUCCESS) { free(s); return NULL; }
    return s;
}

// MARK: - programs

cl_program mpo_cl_program_from_source(cl_context context, const char *source, cl_int *err) {
    const char *sources[1] = { source };
    return clCreateProgramWithSource(context, 1, sources, NULL, err);
}

cl_program mpo_cl_program_from_binary(cl_context context, cl_device_id device, const unsigned char *bytes,
                                      size_t size, cl_int *binary_status, cl_int *err) {
    const unsigned char *binaries[1] = { bytes };
    size_t sizes[1] = { size };
    return clCreateProgramWithBinary(context, 1, &device, sizes, binaries, binary_status, err);
}

unsigned char *mpo_cl_program_binary(cl_program program, size_t *size, cl_int *err) {
    cl_uint devices = 0;
    *size = 0;
    *err = clGetProgramInfo(program, CL_PROGRAM_NUM_DEVICES, sizeof devices, &devices, NULL);
    if (*err != CL_SUCCESS) return NULL;
    if (devices != 1) { *err = CL_INVALID_PROGRAM; return NULL; }
    size_t n = 0;
    *err = clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof n, &n, NULL);
    if (*err != CL_SUCCESS || n == 0) { if (*err == CL_SUCCESS) *err = CL_INVALID_PROGRAM_EXECUTABLE; return NULL; }
    unsigned char *bytes = malloc(n);
    if (!bytes) { *err = CL_OUT_OF_HOST_MEMORY; return NULL; }
    unsigned char *ptrs[1] = { bytes };
    *err = clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof ptrs, ptrs, NULL);
    if (*err != CL_SUCCESS) { free(bytes); return NULL; }
    *size = n;
    return bytes;
}

// COpenCL: the OpenCL 1.2 surface the OpenCL device needs (headers, error names, and the
// helpers below that are awkward from Swift). Only MPOOpenCL links it: a CPU-only use of the
// library (MPOKit, TensorTrain) never links libOpenCL.
#ifndef MPO_COPENCL_H
#define MPO_COPENCL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

/// Name of an OpenCL error code ("CL_OUT_OF_RESOURCES"), or "CL_UNKNOWN_ERROR".
const char *mpo_cl_error_name(cl_int code);

/// Number of OpenCL platforms (0 when no ICD is installed or clGetPlatformIDs fails).
cl_uint mpo_cl_platform_count(void);

#endif

// ---- OpenCL helpers for the OpenCL device (cl_helpers.c) ----
// Strings and byte arrays these return are malloc'd; the caller frees them with free().
#ifndef MPO_SHIM_CL_HELPERS_H
#define MPO_SHIM_CL_HELPERS_H
#include <stddef.h>

/// A platform info string (CL_PLATFORM_NAME, …), or NULL on failure.
char *mpo_cl_platform_string(cl_platform_id platform, cl_platform_info what);

/// A device info string (CL_DEVICE_NAME, CL_DRIVER_VERSION, CL_DEVICE_EXTENSIONS, …), or NULL.
char *mpo_cl_device_string(cl_device_id device, cl_device_info what);

/// The build log of `program` for `device` (possibly empty), or NULL on failure.
char *mpo_cl_build_log(cl_program program, cl_device_id device);

/// A program from one NUL-terminated source string; *err receives the status.
cl_program mpo_cl_program_from_source(cl_context context, const char *source, cl_int *err);

/// A program from one device binary; *binary_status and *err receive the statuses.
cl_program mpo_cl_program_from_binary(cl_context context, cl_device_id device, const unsigned char *bytes,
                                      size_t size, cl_int *binary_status, cl_int *err);

/// The binary of a program built for exactly one device (malloc'd, *size bytes), or NULL.
unsigned char *mpo_cl_program_binary(cl_program program, size_t *size, cl_int *err);

#endif

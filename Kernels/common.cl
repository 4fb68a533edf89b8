//------------------------------------------------------------------------------------------------
// common.cl — prepended to every program the OpenCL device builds.
//
// What it holds: the accumulator type (double where the device has cl_khr_fp64 and the host
// passes -DUSE_FP64=1, else float), a deterministic work-group tree reduction, and the
// FP_CONTRACT switch. What it is not: a kernel file (no entry points here).
//
// Conventions for every kernel: buffers are passed as (pointer, element offset) pairs — the
// host never uses sub-buffers (docs/DESIGN.md §1) — and sizes are ints. Entry points are named
// kernel_<op>_<pass>; tunables are UPPERCASE macros with #ifndef defaults, set with -D by the
// host per device.
//------------------------------------------------------------------------------------------------

// Elementwise code must round like the CPU reference (no silent a*b+c fusion); kernels that
// want FMA (gemm, attention) call fma() explicitly.
#pragma OPENCL FP_CONTRACT OFF

#if defined(USE_FP64) && USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double acc_t;
#else
typedef float acc_t;
#endif

//------------------------------------------------------------------------------------------------
// Work-group reduction: every work-item passes its value; all receive the sum. The local size
// must be a power of two; `scratch` holds one acc_t per work-item. Fixed pairing order, so the
// result is deterministic for a given local size.
//------------------------------------------------------------------------------------------------
inline acc_t wg_sum(acc_t value, __local acc_t *scratch) {
    const int lid = get_local_id(0), size = get_local_size(0);
    barrier(CLK_LOCAL_MEM_FENCE);   // scratch may still be read by a previous reduction
    scratch[lid] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int span = size / 2; span > 0; span /= 2) {
        if (lid < span) scratch[lid] += scratch[lid + span];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return scratch[0];
}

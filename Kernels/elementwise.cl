//------------------------------------------------------------------------------------------------
// elementwise.cl — fill, copy, add, accumulate, scale, ReLU, bias add/backward, permute.
//
// One work-item per element (1-D, bounds-checked: the host rounds the global size up to the
// work-group size). Column reductions (bias gradient, LayerNorm parameter gradients) run in two
// stages with a fixed order — per-chunk partial sums, then kernel_colsum_finish — so results
// are deterministic without float atomics. Legend: n elements, rows × cols matrices.
//------------------------------------------------------------------------------------------------

// MARK: - Fill, copy, add, accumulate, scale

__kernel void kernel_fill_forward(__global float *x, int xo, int n, float value) {
    const int i = get_global_id(0);
    if (i < n) x[xo + i] = value;
}

__kernel void kernel_copy_forward(__global const float *src, int so, __global float *dst, int dso, int n) {
    const int i = get_global_id(0);
    if (i < n) dst[dso + i] = src[so + i];
}

// out = a + b; out may alias a or b.
__kernel void kernel_add_forward(__global const float *a, int ao, __global const float *b, int bo,
                                 __global float *out, int oo, int n) {
    const int i = get_global_id(0);
    if (i < n) out[oo + i] = a[ao + i] + b[bo + i];
}

// dst += src.
__kernel void kernel_accumulate_forward(__global const float *src, int so, __global float *dst, int dso, int n) {
    const int i = get_global_id(0);
    if (i < n) dst[dso + i] += src[so + i];
}

__kernel void kernel_scale_forward(__global float *x, int xo, int n, float factor) {
    const int i = get_global_id(0);
    if (i < n) x[xo + i] *= factor;
}

// MARK: - ReLU

// out = max(x, 0); may alias.
__kernel void kernel_relu_forward(__global const float *x, int xo, __global float *out, int oo, int n) {
    const int i = get_global_id(0);
    if (i < n) { const float v = x[xo + i]; out[oo + i] = v < 0.0f ? 0.0f : v; }   // NaN stays NaN (PyTorch); fmax would drop it
}

// dx = dout · [out > 0], PyTorch's threshold_backward (a NaN out passes dout); dx may alias dout.
__kernel void kernel_relu_backward(__global const float *dout, int dso, __global const float *out, int oo,
                                   __global float *dx, int dxo, int n) {
    const int i = get_global_id(0);
    if (i < n) dx[dxo + i] = out[oo + i] <= 0.0f ? 0.0f : dout[dso + i];
}

// MARK: - Bias

// out (rows, cols) += bias (cols); global (cols, rows).
__kernel void kernel_bias_forward(__global const float *bias, int bo, __global float *out, int oo, int rows, int cols) {
    const int c = get_global_id(0), r = get_global_id(1);
    if (c < cols && r < rows) out[oo + r * cols + c] += bias[bo + c];
}

// Stage 1 of dBias: partial[chunk, c] = Σ_{r in chunk} dout[r, c] in acc_t (Double where the
// device has it: a column of 8,192 gradients loses more than 1e-6 in Float); global (cols, chunks).
__kernel void kernel_bias_backward(__global const float *dout, int dso, __global acc_t *partial,
                                   int rows, int cols, int chunks) {
    const int c = get_global_id(0), chunk = get_global_id(1);
    if (c >= cols || chunk >= chunks) return;
    const int lo = (int)((long)rows * chunk / chunks), hi = (int)((long)rows * (chunk + 1) / chunks);
    acc_t acc = 0;
    for (int r = lo; r < hi; r++) acc += (acc_t)dout[dso + (long)r * cols + c];
    partial[(long)chunk * cols + c] = acc;
}

// Stage 1 of the fused ReLU backward and bias gradient: dx = dout·[out > 0] (PyTorch's
// threshold_backward; dx may alias dout) and partial[chunk, c] = Σ_{r in chunk} dx[r, c].
// Global (cols, chunks).
__kernel void kernel_relu_bias_backward(__global const float *dout, int dso, __global const float *out, int oo,
                                        __global float *dx, int dxo, __global acc_t *partial,
                                        int rows, int cols, int chunks) {
    const int c = get_global_id(0), chunk = get_global_id(1);
    if (c >= cols || chunk >= chunks) return;
    const int lo = (int)((long)rows * chunk / chunks), hi = (int)((long)rows * (chunk + 1) / chunks);
    acc_t acc = 0;
    for (int r = lo; r < hi; r++) {
        const long i = (long)r * cols + c;
        const float v = out[oo + i] <= 0.0f ? 0.0f : dout[dso + i];
        dx[dxo + i] = v;
        acc += (acc_t)v;
    }
    partial[(long)chunk * cols + c] = acc;
}

// out = relu(out + bias), NaN kept; global (cols, rows).
__kernel void kernel_bias_relu_forward(__global const float *bias, int bo, __global float *out, int oo, int rows, int cols) {
    const int c = get_global_id(0), r = get_global_id(1);
    if (c < cols && r < rows) {
        const float v = out[oo + (long)r * cols + c] + bias[bo + c];
        out[oo + (long)r * cols + c] = v < 0.0f ? 0.0f : v;
    }
}

// Stage 2 of every column reduction: dst[c] += Σ_chunk partial[po + chunk·pstride + c], in
// chunk order, in acc_t; global (cols).
__kernel void kernel_colsum_finish(__global const acc_t *partial, int po, int pstride, int chunks,
                                   __global float *dst, int dso, int cols) {
    const int c = get_global_id(0);
    if (c >= cols) return;
    acc_t acc = 0;
    for (int k = 0; k < chunks; k++) acc += partial[po + (long)k * pstride + c];
    dst[dso + c] = (float)((acc_t)dst[dso + c] + acc);
}

// MARK: - Permute

// Tensor transpose of up to 8 axes. The host pads to 8 axes on the left and passes the
// destination shape and, per destination axis, the source stride of that axis. One work-item
// per destination element, visited in row-major order (writes coalesce, reads gather).
__kernel void kernel_permute_forward(__global const float *src, int so, __global float *dst, int dso, int n,
                                     int8 shape, int8 stride, int accumulate) {
    const int i = get_global_id(0);
    if (i >= n) return;
    int s[8], st[8];
    vstore8(shape, 0, s);
    vstore8(stride, 0, st);
    int rem = i, off = 0;
    for (int d = 7; d >= 0; d--) {
        const int c = rem % s[d];
        rem /= s[d];
        off += c * st[d];
    }
    if (accumulate) dst[dso + i] += src[so + off];
    else dst[dso + i] = src[so + off];
}

// MARK: - Squared distance (hidden-state distillation)

// sums[r] = Σ_c (a − b)² in acc_t; with hasGrad, da += gradScale·2·(a − b). Global (LN_WG·rows),
// local (LN_WG): one work-group per row (LN_WG from the LayerNorm build options).
__kernel __attribute__((reqd_work_group_size(LN_WG, 1, 1)))
void kernel_squared_distance(__global const float *a, int ao, __global const float *b, int bo,
                             __global float *sums, int so, __global float *da, int dao, int hasGrad,
                             float gradScale, int C) {
    __local acc_t red[LN_WG];
    const int row = get_group_id(0), lid = get_local_id(0);
    acc_t s = 0;
    for (int c = lid; c < C; c += LN_WG) {
        const long i = (long)row * C + c;
        const float d = a[ao + i] - b[bo + i];
        s += (acc_t)d * (acc_t)d;
        if (hasGrad) da[dao + i] += 2.0f * gradScale * d;
    }
    s = wg_sum(s, red);
    if (lid == 0) sums[so + row] = (float)s;
}

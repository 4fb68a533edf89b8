//------------------------------------------------------------------------------------------------
// activations.cl — rotary position embedding and the gated / GELU activations of the Llama and
// GPT-2 families. One work-item per element (rotary: per rotated pair), bounds-checked.
//------------------------------------------------------------------------------------------------

// Rotate-half rotary embedding in place on x (rows of H heads of hd values, row stride H·hd):
// row r is token r mod T at position pos0 + r mod T; table row p = hd/2 cosines, then hd/2 sines;
// inv turns by the opposite angle (backward). Global (H·hd/2, rows): x = h·hd/2 + i.
__kernel void kernel_rotary(__global float *x, int xo, __global const float *table, int tbo,
                            int rows, int T, int pos0, int H, int hd, int inv) {
    const int h2 = hd / 2, i = get_global_id(0) % h2, h = get_global_id(0) / h2, r = get_global_id(1);
    if (h >= H || r >= rows) return;
    const __global float *cs = table + tbo + (long)(pos0 + r % T) * hd;
    const float c = cs[i], s = inv ? -cs[h2 + i] : cs[h2 + i];
    __global float *a = x + xo + (long)r * H * hd + (long)h * hd;
    const float u = a[i], v = a[h2 + i];
    a[i] = u * c - v * s;
    a[h2 + i] = v * c + u * s;
}

#define GELU_K 0.7978845608028654f   // √(2/π)

// out = ½x(1 + tanh(√(2/π)(x + 0.044715x³))); may alias.
__kernel void kernel_gelu_forward(__global const float *x, int xo, __global float *out, int oo, int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float v = x[xo + i];
    out[oo + i] = 0.5f * v * (1.0f + tanh(GELU_K * (v + 0.044715f * v * v * v)));
}

// dx = dout·gelu′(x); dx may alias dout.
__kernel void kernel_gelu_backward(__global const float *dout, int dso, __global const float *x, int xo,
                                   __global float *dx, int dxo, int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float v = x[xo + i], t = tanh(GELU_K * (v + 0.044715f * v * v * v));
    const float du = GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
    dx[dxo + i] = dout[dso + i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
}

// out = gate/(1 + e^(−gate))·up.
__kernel void kernel_swiglu_forward(__global const float *gate, int go, __global const float *up, int uo,
                                    __global float *out, int oo, int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float g = gate[go + i];
    out[oo + i] = g / (1.0f + exp(-g)) * up[uo + i];
}

// dgate = dout·up·σ(g)(1 + g(1 − σ(g))), dup = dout·g·σ(g).
__kernel void kernel_swiglu_backward(__global const float *dout, int dso, __global const float *gate, int go,
                                     __global const float *up, int uo, __global float *dgate, int dgo,
                                     __global float *dup, int duo, int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float g = gate[go + i], s = 1.0f / (1.0f + exp(-g)), d = dout[dso + i];
    const float du = d * g * s;
    dgate[dgo + i] = d * up[uo + i] * (s * (1.0f + g * (1.0f - s)));
    dup[duo + i] = du;
}

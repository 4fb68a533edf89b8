// Rotary position embedding and the gated / GELU activations of the Llama and GPT-2 families:
// elementwise loops over contiguous floats (one path; the compiler vectorises them, and the
// transcendental calls are libm's, the same on every run).
#include "internal.h"

void mpo_rotary(float *x, int row0, int rows, int time, int pos0, int heads, int hd, int ld, const float *table, int inverse) {
    const int half = hd / 2;
    for (int r = row0; r < row0 + rows; r++) {
        const float *cs = table + (long)(pos0 + r % time) * hd, *sn = cs + half;
        for (int h = 0; h < heads; h++) {
            float *a = x + (long)r * ld + (long)h * hd, *b = a + half;
            if (inverse) {
                for (int i = 0; i < half; i++) {
                    const float u = a[i], v = b[i];
                    a[i] = u * cs[i] + v * sn[i];
                    b[i] = v * cs[i] - u * sn[i];
                }
            } else {
                for (int i = 0; i < half; i++) {
                    const float u = a[i], v = b[i];
                    a[i] = u * cs[i] - v * sn[i];
                    b[i] = v * cs[i] + u * sn[i];
                }
            }
        }
    }
}

static const float GELU_K = 0.7978845608028654f;   // √(2/π)

void mpo_gelu(const float *x, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanhf(GELU_K * (v + 0.044715f * v * v * v)));
    }
}

void mpo_gelu_backward(const float *dy, const float *x, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float v = x[i], u = GELU_K * (v + 0.044715f * v * v * v), t = tanhf(u);
        const float du = GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
}

void mpo_swiglu(const float *gate, const float *up, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void mpo_swiglu_backward(const float *dy, const float *gate, const float *up, float *dgate, float *dup, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i], s = 1.0f / (1.0f + expf(-g)), d = dy[i];
        const float du = d * g * s;
        dgate[i] = d * up[i] * (s * (1.0f + g * (1.0f - s)));
        dup[i] = du;
    }
}

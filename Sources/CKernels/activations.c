// Rotary position embedding and the gated / GELU activations of the Llama and GPT-2 families:
// elementwise loops over contiguous floats (the compiler vectorises them; the transcendental calls
// are libm's, the same on every run). SwiGLU, on the Llama step's path with 2·B·T·F exps, has an
// AVX2 path with the exp8 polynomial of the softmax.
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

static void swiglu_portable(const float *gate, const float *up, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void swiglu_backward_portable(const float *dy, const float *gate, const float *up, float *dgate, float *dup, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i], s = 1.0f / (1.0f + expf(-g)), d = dy[i];
        const float du = d * g * s;
        dgate[i] = d * up[i] * (s * (1.0f + g * (1.0f - s)));
        dup[i] = du;
    }
}

#if MPO_HAVE_AVX2
MPO_AVX2 static void swiglu_avx2(const float *gate, const float *up, float *out, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = mpo_exp8(_mm256_sub_ps(zero, g));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    swiglu_portable(gate + i, up + i, out + i, n - i);
}

MPO_AVX2 static void swiglu_backward_avx2(const float *dy, const float *gate, const float *up, float *dgate, float *dup, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i), d = _mm256_loadu_ps(dy + i);
        const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, mpo_exp8(_mm256_sub_ps(zero, g))));
        const __m256 du = _mm256_mul_ps(_mm256_mul_ps(d, g), s);
        const __m256 ds = _mm256_mul_ps(s, _mm256_add_ps(one, _mm256_mul_ps(g, _mm256_sub_ps(one, s))));
        _mm256_storeu_ps(dgate + i, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(up + i)), ds));
        _mm256_storeu_ps(dup + i, du);
    }
    swiglu_backward_portable(dy + i, gate + i, up + i, dgate + i, dup + i, n - i);
}
#endif

void mpo_swiglu(const float *gate, const float *up, float *out, size_t n) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) { swiglu_avx2(gate, up, out, n); return; }
#endif
    swiglu_portable(gate, up, out, n);
}

void mpo_swiglu_backward(const float *dy, const float *gate, const float *up, float *dgate, float *dup, size_t n) {
#if MPO_HAVE_AVX2
    if (mpo_use_avx2()) { swiglu_backward_avx2(dy, gate, up, dgate, dup, n); return; }
#endif
    swiglu_backward_portable(dy, gate, up, dgate, dup, n);
}

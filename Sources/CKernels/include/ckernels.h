// CKernels: the CPU device's hot loops that BLAS does not cover well, in C, each with a
// portable path (plain loops, the reference) and an AVX2+FMA path compiled per function with
// target attributes (no global compiler flags, so the package stays free of unsafe flags), chosen
// at run time from the CPU's features the way ggml does it. The two paths round differently
// (FMA), so the tests compare them with a tolerance; each is deterministic on its own.
//
// Legend: N rows (tokens), C columns (channels), T time, TK keys, hd head dim, ld row stride in
// floats. Every function is reentrant and single-threaded: the caller (Swift) splits the work
// across threads, in chunks fixed by the problem size.
//
// NaN and infinity behave as in PyTorch: exp(NaN) = NaN, exp(+inf) = +inf, exp(−inf) = 0;
// relu(NaN) = NaN; a NaN in a softmax row makes the whole row NaN.
#ifndef MPO_CKERNELS_H
#define MPO_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

// MARK: - SIMD level

/// SIMD level a kernel runs at.
typedef enum {
    MPO_SIMD_PORTABLE = 0,   ///< plain C (the reference path)
    MPO_SIMD_AVX2 = 1,       ///< AVX2 + FMA, 8 floats per vector
} mpo_simd_level;

/// The best level this CPU supports.
mpo_simd_level mpo_simd_detect(void);
/// The level kernels use now: mpo_simd_detect(), or MPO_SIMD=portable from the environment,
/// or what mpo_simd_set chose.
mpo_simd_level mpo_simd_active(void);
/// Sets the level kernels use (capped by what the CPU supports); returns the level set.
mpo_simd_level mpo_simd_set(mpo_simd_level level);
/// "portable" or "avx2".
const char *mpo_simd_name(mpo_simd_level level);
/// Whether the CPU has AVX-512F (reported by `bench`; no kernel here uses it).
int mpo_cpu_has_avx512(void);

// MARK: - Small GEMM

/// C (M×N, row stride ldc) = alpha·A·B + beta·C, with A (M×K) at A[i·rsA + k·csA] (any strides:
/// a transposed A is rsA = 1) and B (K×N) row-major with row stride ldb. beta 0 never reads C.
/// For the small products of attention tiles and MPO cores held in cache; vectorised over N.
void mpo_gemm_small(int M, int N, int K, float alpha, const float *A, int rsA, int csA,
                    const float *B, int ldb, float beta, float *C, int ldc);

/// One MPO site step (MPOContraction in MPOKit) for items p in [p0, p1): out[p] (mo × o) =
/// Mᵀ (mo × k) · in[p] (k × o) with M (k × mo) row-major, items contiguous; beta 0 or 1 on out.
/// With o = 1 the items form one product out (p, mo) = in (p, k) · M.
void mpo_site_step(int p0, int p1, int k, int mo, int o, const float *M, const float *in, float *out, float beta);

/// y[j] = alpha·(W[j]·x) + beta·y[j] for the n rows of a row-major W (n × k, row stride ldw): the
/// batch-1 product of a linear layer (y = x·Wᵀ), every weight read once. beta 0 never reads y.
void mpo_gemv_rows(int n, int k, const float *W, int ldw, const float *x, float alpha, float beta, float *y);

// MARK: - 16-bit weights (f16 or bf16, computed in f32)

/// dst = src rounded to IEEE f16 (bf16 = 0) or bf16 (bf16 = 1), to nearest even; NaN stays NaN.
void mpo_f32_to_half(const float *src, uint16_t *dst, size_t n, int bf16);
/// dst = src widened to f32 (exact).
void mpo_half_to_f32(const uint16_t *src, float *dst, size_t n, int bf16);
/// Rows of a half matrix (row stride lds) widened into f32 rows (row stride ldd).
void mpo_half_rows_to_f32(const uint16_t *src, int rows, int cols, int lds, float *dst, int ldd, int bf16);
/// mpo_gemv_rows with W stored as f16/bf16: y[j] = alpha·(W[j]·x) + beta·y[j], in f32.
void mpo_gemv_half_rows(int n, int k, const uint16_t *W, int ldw, const float *x, float alpha, float beta, float *y, int bf16);

// MARK: - 8-bit weights (q8: blocks of 32 int8 and an f32 scale; products in int8·int8, exact per block)

#define MPO_Q8_BLOCK 32
/// A q8 row's stride in quants: `cols` rounded up to whole blocks (the padding holds 0).
static inline int mpo_q8_padded(int cols) { return (cols + MPO_Q8_BLOCK - 1) / MPO_Q8_BLOCK * MPO_Q8_BLOCK; }
/// Rows of `cols` values (row stride lds) into quants q (row stride mpo_q8_padded(cols)) and one scale
/// per block (rows × padded/32): scale = max|x|/127, q = round-to-even(x·127/max|x|), 0 for a zero block.
void mpo_quantize_q8_rows(const float *src, int rows, int cols, int lds, int8_t *q, float *scales);
/// dst[r·ldd + i] = q · scale (exact in f32).
void mpo_dequantize_q8_rows(const int8_t *q, const float *scales, int rows, int cols, float *dst, int ldd);
/// C[i·ldc + j] = alpha·Σ_b Ws[j,b]·As[i,b]·Σ_t Wq[j, 32b+t]·Aq[i, 32b+t] + beta·C (beta 0 never reads C), for
/// the n rows of W and m rows of A, both quantised rows of `cols` values (mpo_quantize_q8_rows). Each
/// output in a fixed order whatever m: row i of a batch equals the same row alone.
void mpo_gemm_q8_rows(int m, int n, int cols, const int8_t *Wq, const float *Ws, const int8_t *Aq, const float *As,
                      float alpha, float beta, float *C, int ldc);

/// out[j] = alpha · Σ_d x[d]·rows[j·ld + d] for j < n (one vector against n rows of length len).
void mpo_dot_rows(const float *x, const float *rows, int ld, int n, int len, float alpha, float *out);

// MARK: - Elementwise and rows

/// p[i] = exp(p[i] − shift); returns Σ p[i] (Float, in a fixed order for a given n and level).
float mpo_exp_sum(float *p, int n, float shift);
/// max of p[0..n) (NaN if any entry is NaN), −inf for n = 0.
float mpo_max(const float *p, int n);

/// out[r, c] = x[r, c] + bias[c] (out may alias x); with `relu`, then max(·, 0) (NaN stays NaN).
void mpo_bias_rows(const float *x, const float *bias, float *out, int rows, int C, int relu);
/// out = max(x, 0), NaN stays NaN (out may alias x).
void mpo_relu(const float *x, float *out, size_t n);
/// dx = dout where out > 0, else 0 — PyTorch's threshold_backward: dout·[out > 0], and a NaN out
/// passes dout (dx may alias dout). With `colsum` non-NULL, colsum[c] += Σ_r dx[r, c] in Double
/// (the bias gradient of the layer before the ReLU, fused).
void mpo_relu_backward_rows(const float *dout, const float *out, float *dx, int rows, int C, double *colsum);
/// colsum[c] += Σ_r x[r, c] in Double.
void mpo_colsum_rows(const float *x, int rows, int C, double *colsum);

/// out = a + b (may alias); dst += src; p *= s.
void mpo_add(const float *a, const float *b, float *out, size_t n);
void mpo_accumulate(const float *src, float *dst, size_t n);
void mpo_scale(float *p, size_t n, float s);

// MARK: - LayerNorm (biased variance) and RMSNorm; statistics in Double

/// out = (x − mean)·rstd·w + b per row; saves mean and rstd (Float).
void mpo_layernorm_forward(const float *x, const float *w, const float *b, float *out,
                           float *mean, float *rstd, int rows, int C, double eps);
/// dx += rstd·(w·dy − mean(w·dy) − n̂·mean(w·dy·n̂)) per row (n̂ the normalised input), and
/// dw[c] += Σ_r n̂·dy, db[c] += Σ_r dy in Double (the caller's per-chunk partials).
void mpo_layernorm_backward(const float *dy, const float *x, const float *w, const float *mean,
                            const float *rstd, float *dx, double *dw, double *db, int rows, int C);

/// RMSNorm: out = (x·rstd)·w per row, rstd = 1/√(mean(x²) + eps) (Double sum), saved.
void mpo_rmsnorm_forward(const float *x, const float *w, float *out, float *rstd, int rows, int C, double eps);
/// dx += rstd·(w·dy − x̂·mean(w·dy·x̂)), x̂ = x·rstd; dw[c] += Σ_r x̂·dy (the caller's Double partials).
void mpo_rmsnorm_backward(const float *dy, const float *x, const float *w, const float *rstd, float *dx,
                          double *dw, int rows, int C);

// MARK: - Rotary embedding and gated / GELU activations

/// Rotate-half rotary embedding in place on rows [0, rows) of x (row stride ld, `heads` heads of
/// hd values): row r is token r % time at position pos0 + r % time, table row p holds hd/2
/// cosines then hd/2 sines; `inverse` turns by the opposite angle (the backward pass).
void mpo_rotary(float *x, int row0, int rows, int time, int pos0, int heads, int hd, int ld, const float *table, int inverse);
/// out = ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (may alias x).
void mpo_gelu(const float *x, float *out, size_t n);
/// dx = dy·gelu′(x) (dx may alias dy).
void mpo_gelu_backward(const float *dy, const float *x, float *dx, size_t n);
/// out = gate/(1 + e^(−gate))·up.
void mpo_swiglu(const float *gate, const float *up, float *out, size_t n);
/// dgate = dy·up·σ(g)(1 + g(1 − σ(g))), dup = dy·g·σ(g) (may alias dy).
void mpo_swiglu_backward(const float *dy, const float *gate, const float *up, float *dgate, float *dup, size_t n);

// MARK: - Causal attention, one (batch, head) pair

/// Floats of scratch one pair needs (forward or backward) for T queries, TK keys, head dim hd.
size_t mpo_attention_scratch(int T, int TK, int hd);

/// Forward for one (batch, head): q (T rows) and out (T rows) with row stride ld, k and v
/// (TK = off + T rows) with row stride ldk, hd columns each; query t sits at absolute position
/// off + t and sees keys 0…off+t.
/// out = softmax(scale·q·kᵀ)·v, lse[t] = log-sum-exp of query t's scaled scores. Query tiles
/// of 32 rows; the score tile stays in cache; exact (two-pass) softmax per tile row.
void mpo_attention_forward(const float *q, const float *k, const float *v, float *out, float *lse,
                           int T, int TK, int off, int hd, int ld, int ldk, float scale, float *scratch);

/// Backward for one (batch, head), training only (off = 0): recomputes P = exp(scale·q·kᵀ − lse),
/// D = rowsum(dout∘out), dS = P∘(dout·vᵀ − D); dq = scale·dS·k (overwritten), dk = scale·dSᵀ·q,
/// dv = Pᵀ·dout (overwritten, or added to with `accumulate_kv`: the later query heads of a
/// grouped-query group). q, out, dout, dq have row stride ld; k, v, dk, dv row stride ldk.
void mpo_attention_backward(const float *q, const float *k, const float *v, const float *out,
                            const float *dout, const float *lse, float *dq, float *dk, float *dv,
                            int T, int hd, int ld, int ldk, int accumulate_kv, float scale, float *scratch);

// MARK: - Optimiser

/// Decoupled AdamW over n values: p ← p·decay − step·m̂/(√v̂/√bc2 + eps) with the moments updated
/// first (the CPU device's exact formula; see AdamWHyper), on gradients g·gradScale (the clip
/// scale; 1 leaves them exactly as they are).
void mpo_adamw(float *p, const float *g, float *m, float *v, size_t n, float beta1, float beta2,
               float eps, float decay, float stepSize, float bc2Sqrt, float gradScale);

#endif

// The op-case table: `OpCases.parity` (small and awkward shapes, for correctness on any device)
// and `OpCases.perf` (the real PicoGPT shapes, for the benchmarks). Built with loops where a
// parameter sweeps; a row that exists for a specific reason says so in a trailing comment.
//
// PicoGPT: B=32 T=256 C=128 F=512 V=65 H=4 (hd 32), N = B·T = 8192 tokens.
// Not here: the builders (OpCases+*.swift) or how a case is run (OpCase.swift, Workspace.swift).

import MPOKit

public enum OpCases {
    /// The seed the test suites use unless they sweep seeds.
    public static let defaultSeed: UInt64 = 0x5EED_2024

    /// Every case of the op `op` in `cases`.
    public static func cases(_ op: Op, in cases: [OpCase]) -> [OpCase] { cases.filter { $0.op == op } }

    // MARK: - parity

    public static let parity: [OpCase] = gemmParity + permuteParity + elementwiseParity + transformerParity + familyParity + mpoParity
        + packedParity

    /// The fused MPO contraction against W contracted in Double: 2 and 3 sites, χ from 1 to above
    /// the full rank, 1 to 64 rows, the PicoGPT layer shapes, a 4-site chain and a prime factor.
    static let mpoParity: [OpCase] = {
        var c: [OpCase] = []
        for (o, i) in [([8, 16], [8, 16]), ([8, 8, 8], [4, 4, 8]), ([4, 4, 8], [8, 8, 8]), ([5, 13], [8, 16])] {
            for (chi, rows) in [(1, 1), (4, 3), (8, 17), (16, 64), (70, 5)] {   // 70 > every full rank here
                c.append(mpoForward(out: o, in: i, chi: chi, rows: rows))
            }
        }
        c += [
            mpoForward(out: [8, 16], in: [8, 16], chi: 8, rows: 2, accumulate: true),           // y += (W_o, W2 accumulate)
            mpoForward(out: [2, 3, 2, 2], in: [3, 2, 2, 2], chi: 5, rows: 7),                   // 4 sites
            mpoForward(out: [2, 2, 3, 2, 2], in: [2, 3, 2, 1, 2], chi: 3, rows: 5, accumulate: true), // 5 sites: OpenCL's GEMM sequence
            mpoForward(out: [7, 1], in: [3, 5], chi: 3, rows: 9, accumulate: true),             // a trivial factor
        ]
        return c
    }()

    static let gemmParity: [OpCase] = {
        var c: [OpCase] = []
        // All four transpose combinations, each with leading dimensions larger than minimal.
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let (m, n, k) = (7, 13, 5)
            c.append(gemm(GemmShape(m: m, n: n, k: k, transposeA: ta, transposeB: tb,
                                    lda: (ta ? m : k) + 3, ldb: (tb ? k : n) + 2, ldc: n + 4, alpha: 0.75, beta: 1)))
        }
        // Big enough (≥ 4e5 multiply-adds) for the CPU device to split rows (m ≥ n) or columns
        // across threads: every transpose combination, padded leading dimensions.
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (m, n, k) in [(130, 70, 50), (40, 150, 80)] {
                c.append(gemm(GemmShape(m: m, n: n, k: k, transposeA: ta, transposeB: tb, lda: (ta ? m : k) + 1,
                                        ldb: (tb ? k : n) + 1, ldc: n + 1, alpha: -0.5, beta: ta ? 1 : 0)))
            }
        }
        // One row / one column of C (the CPU device runs these as sgemv): every transpose, padded
        // leading dimensions, beta 1 and beta 0 over a NaN-filled C; the large ones are split
        // across threads first.
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (m, n, k) in [(1, 37, 23), (29, 1, 31), (1, 800, 600), (700, 1, 650)] {
                for beta: Float in [1, 0] {
                    c.append(gemm(GemmShape(m: m, n: n, k: k, transposeA: ta, transposeB: tb, lda: (ta ? m : k) + 2,
                                            ldb: (tb ? k : n) + 3, ldc: beta == 0 ? n : n + 1, alpha: 1.25, beta: beta),
                                  nanC: beta == 0))  // (NaN C has no padding: it would stay NaN)
                }
            }
        }
        c += [
            gemm(GemmShape(m: 16, n: 16, k: 16)),                                            // tile-friendly
            gemm(GemmShape(m: 13, n: 7, k: 11, transposeA: true, alpha: -1.5, beta: 0)),
            gemm(GemmShape(m: 9, n: 11, k: 1, beta: 1)),                                     // k = 1
            gemm(GemmShape(m: 1, n: 1, k: 37, transposeA: true, alpha: 2)),                  // a dot product
            gemm(GemmShape(m: 1, n: 17, k: 3, transposeB: true)),                           // one row
            gemm(GemmShape(m: 33, n: 31, k: 300, transposeB: true)),                         // K not a tile multiple
            gemm(GemmShape(m: 6, n: 5, k: 4, beta: 0), nanC: true),                          // beta 0 must not read C
            gemm(GemmShape(m: 3, n: 4, k: 0, beta: 0.5)),                                   // k = 0: C = beta·C
            // Batched, strided (gaps between items), transposed B.
            gemm(GemmShape(m: 5, n: 6, k: 7, transposeB: true, beta: 1, batch: 3, strideA: 5 * 7 + 2, strideB: 6 * 7 + 3,
                           strideC: 5 * 6 + 1)),
            gemm(GemmShape(m: 3, n: 4, k: 2, alpha: 0.5, batch: 1, strideA: 99, strideB: 99, strideC: 99)), // batch 1 ignores strides
            // Two big items: with more threads than items the CPU device splits each item.
            gemm(GemmShape(m: 130, n: 70, k: 50, transposeA: true, beta: 1, batch: 2, strideA: 130 * 50 + 3,
                           strideB: 50 * 70 + 1, strideC: 130 * 70 + 2)),
            // MPO site step, forward: shared core (strideA 0), M_lᵀ · in[p].
            gemm(GemmShape(m: 8, n: 16, k: 12, transposeA: true, batch: 5, strideA: 0, strideB: 12 * 16, strideC: 8 * 16)),
            // MPO site step, dInput: shared core, no transpose, accumulate into dX.
            gemm(GemmShape(m: 12, n: 16, k: 8, beta: 1, batch: 7, strideA: 0, strideB: 8 * 16, strideC: 12 * 16)),
            // MPO dCore: the batch reduces into one C (strideC 0), beta 0 and beta 1.
            gemm(GemmShape(m: 12, n: 8, k: 16, transposeB: true, batch: 6, strideA: 12 * 16, strideB: 8 * 16, strideC: 0)),
            gemm(GemmShape(m: 12, n: 8, k: 16, transposeB: true, alpha: 0.5, beta: 1, batch: 5, strideA: 12 * 16,
                           strideB: 8 * 16, strideC: 0)),
            gemm(GemmShape(m: 3, n: 5, k: 1, ldc: 7, beta: 1, batch: 4, strideA: 3, strideB: 0, strideC: 0)), // shared B, k=1
        ]
        return c
    }()

    static let permuteParity: [OpCase] = {
        var c: [OpCase] = []
        for accumulate in [false, true] {
            c += [
                permute(shape: [7, 13], order: [1, 0], accumulate: accumulate),                // 2-D transpose
                permute(shape: [2, 3, 4, 5], order: [2, 3, 0, 1], accumulate: accumulate),    // core (b,o,i,b') → (i,b',b,o)
                permute(shape: [2, 3, 2, 3, 2, 2], order: [0, 2, 4, 1, 3, 5], accumulate: accumulate), // (o0,i0,…) → (o…, i…)
                permute(shape: [2, 2, 3, 3, 2, 2], order: [0, 3, 1, 4, 2, 5], accumulate: accumulate), // and back
            ]
        }
        c += [
            permute(shape: [16, 16], order: [1, 0], accumulate: false),                        // tile-friendly
            permute(shape: [1, 5, 3, 1], order: [2, 3, 0, 1], accumulate: false),              // size-1 axes (bond 1)
            permute(shape: [3, 5, 2], order: [0, 1, 2], accumulate: true),                     // identity order
            permute(shape: [17], order: [0], accumulate: false),                               // 1-D
            permute(shape: [2, 3, 5, 4], order: [0, 2, 1, 3], accumulate: false),              // head split, last axis kept
            permute(shape: [2, 1, 2, 3, 1, 2, 2, 3], order: [7, 6, 5, 4, 3, 2, 1, 0], accumulate: true), // 8-D, the limit
            permute(shape: [16, 9, 8, 5], order: [2, 0, 3, 1], accumulate: true),              // CPU: rows over threads
            permute(shape: [4, 1, 3], order: [0, 2, 1], accumulate: false),                    // destination's last axis is 1
        ]
        return c
    }()

    static let elementwiseParity: [OpCase] = [
        fill(count: 64, value: 1.5), fill(count: 37, value: -2.25), fill(count: 1, value: 0),
        fill(count: 140_001, value: -1),                                                       // CPU: 2 chunks
        copy(count: 64), copy(count: 37), copy(count: 1),
        addBias(rows: 4, columns: 16), addBias(rows: 1, columns: 7), addBias(rows: 33, columns: 65),
        addBias(rows: 130, columns: 9),                                                        // CPU: 2 row chunks
        biasBackward(rows: 16, columns: 8), biasBackward(rows: 1, columns: 13),
        biasBackward(rows: 67, columns: 40),                                                   // CPU: 2 column chunks
        add(count: 64), add(count: 37, alias: .a), add(count: 1, alias: .b),                   // out may alias a or b
        add(count: 70_001),                                                                    // CPU: 2 chunks
        accumulate(count: 64), accumulate(count: 37), accumulate(count: 1), accumulate(count: 70_001),
        scale(count: 64, factor: 0.5), scale(count: 37, factor: -3), scale(count: 1, factor: 0),
        scale(count: 70_001, factor: 1.25),
        reluForward(count: 64, inPlace: false), reluForward(count: 37, inPlace: true), reluForward(count: 1, inPlace: false),
        reluForward(count: 70_001, inPlace: false),
        reluBackward(count: 64, inPlace: false), reluBackward(count: 37, inPlace: true), reluBackward(count: 3, inPlace: false),
        reluBackward(count: 70_001, inPlace: false),
        reluForward(count: 67, inPlace: false, nan: true), reluBackward(count: 67, inPlace: false, nan: true),  // NaN as PyTorch
        addBiasReLU(rows: 4, columns: 16), addBiasReLU(rows: 7, columns: 13), addBiasReLU(rows: 130, columns: 9),
        addBiasReLU(rows: 9, columns: 33, nan: true),                                          // NaN stays NaN
        reluBackwardBias(rows: 16, columns: 8), reluBackwardBias(rows: 1, columns: 13),
        reluBackwardBias(rows: 67, columns: 40, inPlace: true),
        reluBackwardBias(rows: 1_030, columns: 9),                                             // CPU: 3 row chunks
    ]

    static let transformerParity: [OpCase] = {
        var c: [OpCase] = [
            embeddingForward(batch: 2, time: 8, channels: 16, vocabulary: 65),
            embeddingForward(batch: 3, time: 5, channels: 7, vocabulary: 65, context: 9),      // positions longer than T
            embeddingForward(batch: 1, time: 1, channels: 3, vocabulary: 1),
            embeddingForward(batch: 4, time: 40, channels: 3, vocabulary: 65),                 // CPU: 2 row chunks
            embeddingBackward(batch: 2, time: 8, channels: 16, vocabulary: 65),
            embeddingBackward(batch: 4, time: 9, channels: 5, vocabulary: 3),                  // many collisions per row
            embeddingBackward(batch: 1, time: 1, channels: 3, vocabulary: 65),                 // one token, most rows untouched
            embeddingBackward(batch: 2, time: 5, channels: 37, vocabulary: 4),                 // CPU: 2 channel chunks
        ]
        for (n, ch, off, spread) in [(8, 32, Float(0), Float(2)), (5, 13, 0, 2), (1, 1, 0, 2), (67, 128, 0, 2), (6, 24, 300, 2),
                                     (4, 16, 1, 0.005)] {
            // (1,1): zero variance; (67,128): CPU splits rows; offset 300: a one-pass Float variance
            // cancels; spread 0.005: variance ≈ eps, so a wrong eps shows.
            c.append(layerNormForward(rows: n, columns: ch, offset: off, spread: spread))
            c.append(layerNormBackward(rows: n, columns: ch, offset: off, spread: spread))
        }
        let shapes: [(AttentionShape, Float)] = [
            (AttentionShape(batch: 2, time: 16, heads: 2, headDim: 8), 1),
            (AttentionShape(batch: 1, time: 255, heads: 1, headDim: 3), 1),                   // T=255: CPU tiles of 64, last partial
            (AttentionShape(batch: 2, time: 7, heads: 3, headDim: 1), 2),                     // head dim 1
            (AttentionShape(batch: 1, time: 1, heads: 4, headDim: 32), 1),                    // T=1: one key
            (AttentionShape(batch: 1, time: 70, heads: 2, headDim: 32), 1.5),                 // crosses a 64 tile, hd 32
            (AttentionShape(batch: 3, time: 5, heads: 1, headDim: 5), 6),                     // peaky softmax rows
        ]
        for (s, r) in shapes { c += [attentionForward(s, range: r), attentionBackward(s, range: r)] }
        c += [  // KV-cache decode (forward only): queries at absolute positions queryOffset + t
            attentionForward(AttentionShape(batch: 2, time: 1, heads: 2, headDim: 4, queryOffset: 9)),
            attentionForward(AttentionShape(batch: 1, time: 3, heads: 1, headDim: 32, queryOffset: 66)), // keys cross a tile
            attentionForward(AttentionShape(batch: 2, time: 70, heads: 1, headDim: 4, queryOffset: 3)),  // queries cross a tile
            attentionForward(AttentionShape(batch: 3, time: 1, heads: 2, headDim: 8, queryOffset: 20, kvRows: 37)), // batched cache
            attentionForward(AttentionShape(batch: 2, time: 5, heads: 2, headDim: 16, queryOffset: 7, kvRows: 40)), // batched prefill
        ]
        c += [
            crossEntropy(rows: 8, vocabulary: 16, gradScale: 0.125),
            crossEntropy(rows: 5, vocabulary: 65, range: 30, gradScale: 1),                    // wide logits
            crossEntropy(rows: 7, vocabulary: 65, gradient: .none),                            // eval only
            crossEntropy(rows: 6, vocabulary: 5, gradient: .inPlace, gradScale: -0.5),         // dLogits aliases logits
            crossEntropy(rows: 40, vocabulary: 7, ties: true, gradScale: 0.025),               // first max wins ties
            crossEntropy(rows: 1, vocabulary: 1),                                              // loss 0, always correct
            crossEntropy(rows: 131, vocabulary: 65, range: 8, gradScale: 1.0 / 131),           // CPU: 2 row chunks
            distillation(rows: 8, vocabulary: 16, temperature: 1),
            distillation(rows: 5, vocabulary: 65, temperature: 2, range: 10, gradScale: 0.2),   // wide logits, soft targets
            distillation(rows: 7, vocabulary: 65, temperature: 0.5, withGradient: false),       // sharpened, loss only
            distillation(rows: 131, vocabulary: 65, temperature: 1.5, gradScale: 1.0 / 131),   // CPU: 2 row chunks
            squaredDistance(rows: 4, columns: 16), squaredDistance(rows: 7, columns: 37, withGradient: false),
            squaredDistance(rows: 67, columns: 128, gradScale: 1.0 / 8576),                    // CPU: 2 row chunks
            sumOfSquares(count: 1), sumOfSquares(count: 37), sumOfSquares(count: 140_001),     // 140 001: CPU 2 chunks
            sumOfSquares(count: 100_003, spike: true),                                         // needs a Double (or tree) sum
            adamW(count: 64, hyper: AdamWHyper(learningRate: 1e-3, step: 1)),                  // largest bias correction
            adamW(count: 37, hyper: AdamWHyper(learningRate: 3e-4, beta1: 0.8, beta2: 0.99, weightDecay: 0, step: 1000)),
            adamW(count: 1, hyper: AdamWHyper(learningRate: 0.1, epsilon: 1e-3, weightDecay: 0.5, step: 3)),
            adamW(count: 40_001, hyper: AdamWHyper(learningRate: 1e-2, step: 7)),              // CPU: 2 chunks
            stepScalars(rows: 1, gradients: 1, clip: 1), stepScalars(rows: 300, gradients: 40_001, clip: 1, extra: true),
            stepScalars(rows: 37, gradients: 100, clip: 100),                                  // not clipped: scale 1
            stepScalars(rows: 16, gradients: 513, clip: 1, poison: true),                      // finite 0
            adamWControlled(count: 40_001, gradientRange: 1, clip: 1, poison: false,           // clipped (|g| ≈ 115)
                            hyper: AdamWHyper(learningRate: 1e-2, step: 7)),
            adamWControlled(count: 100, gradientRange: 0.01, clip: 1, poison: false,           // below the clip: as is
                            hyper: AdamWHyper(learningRate: 1e-3, step: 2)),
            adamWControlled(count: 257, gradientRange: 1, clip: 1, poison: true,               // NaN loss: unchanged
                            hyper: AdamWHyper(learningRate: 1e-2, step: 3)),
        ]
        return c
    }()

    // MARK: - accuracy

    /// Reductions over N = B·T = 8,192 rows (a training step's size) of same-signed values,
    /// which a sequential Float sum gets wrong by more than 1e-6 relative (≈ 1e-5 measured): bias
    /// and LayerNorm gradients, the fused ReLU + bias gradient, the embedding scatter (3 tokens:
    /// ~2,700 rows each) and a batch reduction (the MPO core gradient). Every output must be
    /// within 1e-6 (normwise) of the Double reference on every device.
    public static let accuracy: [OpCase] = [
        biasBackward(rows: 8192, columns: 64, low: 0),
        reluBackwardBias(rows: 8192, columns: 64, low: 0),
        layerNormBackward(rows: 8192, columns: 128),
        rmsNormBackward(rows: 8192, columns: 128),
        positionBackward(batch: 8192, time: 1, channels: 16, low: 0),
        embeddingBackward(batch: 32, time: 256, channels: 16, vocabulary: 3, low: 0),
        gemm(GemmShape(m: 8, n: 6, k: 4, transposeB: true, batch: 8192, strideA: 8 * 4, strideB: 6 * 4, strideC: 0), low: 0),
    ]

    // MARK: - perf

    /// PicoGPT at B=32, T=256: every dense GEMM of a step, the MPO site-by-site GEMMs at χ=4
    /// (W 128×128 as [8,16]×[8,16], W1 512×128 as [8,8,8]×[4,4,8]), and each other op at the
    /// model's sizes. Inputs are big: generate once per case; `mpo-train check-ops` validates
    /// them against the CPU (CI: every case on PoCL).
    public static let perf: [OpCase] = {
        let B = 32, T = 256, C = 128, F = 512, V = 65, H = 4, N = B * T
        let params = ModelConfig.picoGPT.parameterLayout().parameterCount
        var c: [OpCase] = []
        func g(_ s: GemmShape) -> OpCase { gemm(s, poisonPadding: false) }
        c += [
            g(GemmShape(m: N, n: C, k: C, transposeB: true)),                     // q/k/v/o projection
            g(GemmShape(m: N, n: F, k: C, transposeB: true)),                     // W1
            g(GemmShape(m: N, n: C, k: F, transposeB: true)),                     // W2
            g(GemmShape(m: N, n: V, k: C, transposeB: true)),                     // lm_head (n = 65)
            g(GemmShape(m: N, n: C, k: F, beta: 1)),                              // dX of W2, accumulating
            g(GemmShape(m: F, n: C, k: N, transposeA: true, beta: 1)),            // dW of W1 (K = 8192)
            g(GemmShape(m: V, n: C, k: N, transposeA: true, beta: 1)),            // dW of lm_head
            // MPO 128×128, χ=4, site 1 (o = 1): one plain GEMM with p = N·8.
            g(GemmShape(m: N * 8, n: 64, k: 16)),
            // site 0 forward: shared core M_0 (k=32, mo=8), batch N.
            g(GemmShape(m: 8, n: 16, k: 32, transposeA: true, batch: N, strideA: 0, strideB: 32 * 16, strideC: 8 * 16)),
            // site 0 dCore: reduce over the batch (strideC 0).
            g(GemmShape(m: 32, n: 8, k: 16, transposeB: true, batch: N, strideA: 32 * 16, strideB: 8 * 16, strideC: 0)),
            // site 0 dInput: shared core, batch N.
            g(GemmShape(m: 32, n: 16, k: 8, batch: N, strideA: 0, strideB: 8 * 16, strideC: 32 * 16)),
            // MPO W1 512×128, χ=4, site 1: p = N·4, k = 16, mo = 32, o = 8.
            g(GemmShape(m: 32, n: 8, k: 16, transposeA: true, batch: N * 4, strideA: 0, strideB: 16 * 8, strideC: 32 * 8)),
            g(GemmShape(m: 16, n: 32, k: 8, transposeB: true, batch: N * 4, strideA: 16 * 8, strideB: 32 * 8, strideC: 0)),
            // rebuild strategy: one chain step (o0 i0, χ) · (χ, o1 i1) for W 128×128, χ=4.
            g(GemmShape(m: 64, n: 256, k: 4)),
        ]
        c += [
            permute(shape: [B, T, H, C / H], order: [0, 2, 1, 3], accumulate: false),                 // heads out
            permute(shape: [8, 4, 8, 4, 8, 8], order: [0, 2, 4, 1, 3, 5], accumulate: false),         // W1 interleave
            permute(shape: [8, 8, 8, 4, 4, 8], order: [0, 3, 1, 4, 2, 5], accumulate: true),          // dW1 back
            permute(shape: [4, 16, 16, 1], order: [2, 3, 0, 1], accumulate: true),                    // core (b,o,i,b′) ↔ M_l
            fill(count: N * F, value: 0), copy(count: N * C),
            addBias(rows: N, columns: F), biasBackward(rows: N, columns: F),
            addBiasReLU(rows: N, columns: F), reluBackwardBias(rows: N, columns: F, inPlace: true),
            add(count: N * C), accumulate(count: N * C), scale(count: params, factor: -1),            // −1: no drift when repeated
            reluForward(count: N * F, inPlace: false), reluBackward(count: N * F, inPlace: true),
            embeddingForward(batch: B, time: T, channels: C, vocabulary: V),
            embeddingBackward(batch: B, time: T, channels: C, vocabulary: V),
            layerNormForward(rows: N, columns: C), layerNormBackward(rows: N, columns: C),
            attentionForward(AttentionShape(batch: B, time: T, heads: H, headDim: C / H)),
            attentionBackward(AttentionShape(batch: B, time: T, heads: H, headDim: C / H)),
            attentionForward(AttentionShape(batch: 1, time: 1, heads: H, headDim: C / H, queryOffset: T - 1)), // decode step
            mpoForward(out: [8, 16], in: [8, 16], chi: 8, rows: 1),                             // decode, W_q…W_o
            mpoForward(out: [8, 8, 8], in: [4, 4, 8], chi: 8, rows: 1),                         // decode, W1
            mpoForward(out: [8, 8, 12], in: [8, 8, 12], chi: 16, rows: 1),                      // decode, GPT-2-small 768×768
            mpoForward(out: [8, 8, 8], in: [4, 4, 8], chi: 8, rows: 64),                        // prefill of 64
            crossEntropy(rows: N, vocabulary: V, gradScale: 1 / Float(N)),
            crossEntropy(rows: N, vocabulary: V, gradient: .none),
            distillation(rows: N, vocabulary: V, temperature: 2, gradScale: 1 / Float(N)),
            squaredDistance(rows: N, columns: C, gradScale: 1 / Float(N * C)),
            sumOfSquares(count: params),
            adamW(count: params, hyper: AdamWHyper(learningRate: 1e-3, step: 10)),
            stepScalars(rows: N, gradients: params, clip: 1),
        ]
        return c + familyPerf + packedPerf
    }()
}

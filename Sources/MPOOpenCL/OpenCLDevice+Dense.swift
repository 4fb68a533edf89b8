// OpenCLDevice: GEMM, permute, bias and the elementwise ops (kernels in gemm.cl, elementwise.cl).
//
// GEMM picks one of two builds of kernel_gemm_tiled per call: the register-blocked large tile
// when C is at least one large tile in both directions, else the small tile (MPO site steps are
// skinny). A reduction over the batch (strideC == 0, batch > 1) runs as up to
// `gemmReductionSlots` partial products into scratch, then kernel_gemm_reduce adds them in
// order into C with beta — deterministic, no atomics. Shapes are checked like the CPU device's.

import COpenCL
import MPOKit

/// Which GEMM kernel to run (tests compare them; the model always uses `.automatic`).
public enum GemmVariant: String, CaseIterable, Sendable {
    case automatic, large, small, reference
}

extension OpenCLDevice {
    // MARK: - GEMM

    public func gemm(_ s: GemmShape, a: TensorView, b: TensorView, c: TensorView) {
        gemm(s, a: a, b: b, c: c, variant: .automatic)
    }

    /// `gemm` with an explicit kernel choice.
    public func gemm(_ s: GemmShape, a: TensorView, b: TensorView, c: TensorView, variant: GemmVariant) {
        precondition(s.batch >= 1 && s.m >= 0 && s.n >= 0 && s.k >= 0, "bad \(s)")
        precondition(s.m == 0 || s.n == 0 || (s.extentC <= c.count && (s.k == 0 || (s.extentA <= a.count && s.extentB <= b.count))),
                     "\(s): operands too small (A \(a.count)/\(s.extentA), B \(b.count)/\(s.extentB), C \(c.count)/\(s.extentC))")
        guard s.m > 0 && s.n > 0 else { return }
        locked {
            let program: OpenCLProgram, tiling: GemmTiling
            switch variant {
            case .large: (program, tiling) = (gemmLarge, tuning.gemmLarge)
            case .small, .reference: (program, tiling) = (gemmSmall, tuning.gemmSmall)
            case .automatic:
                let big = s.m >= tuning.gemmLarge.tm && s.n >= tuning.gemmLarge.tn
                (program, tiling) = big ? (gemmLarge, tuning.gemmLarge) : (gemmSmall, tuning.gemmSmall)
            }
            let reference = variant == .reference
            let shared: [KernelArg] = [.int(s.m), .int(s.n), .int(s.k), .int(s.transposeA ? 1 : 0), .int(s.transposeB ? 1 : 0),
                                       .float(s.alpha)]
            // K = 0 touches no A/B element; bind C in their place so no out-of-range view is needed.
            let av = s.k == 0 ? c : a, bv = s.k == 0 ? c : b
            func run(cArgs: [KernelArg], beta: Float, slots: Int, perSlot: Int) {
                let args: [KernelArg] = [.view(av), .int(s.lda), .int(s.strideA), .view(bv), .int(s.ldb), .int(s.strideB)]
                    + cArgs + shared + [.float(beta), .int(s.batch), .int(slots), .int(perSlot)]
                let z = min(slots, maxGroupsPerDimension)
                if reference {
                    launch("gemm", program, "kernel_gemm_reference", global: [s.n, s.m, z], local: [8, 8, 1], args)
                } else {
                    let (ln, lm) = tiling.local
                    let gx = (s.n + tiling.tn - 1) / tiling.tn * ln, gy = (s.m + tiling.tm - 1) / tiling.tm * lm
                    launch("gemm", program, "kernel_gemm_tiled", global: [gx, gy, z], local: [ln, lm, 1], args)
                }
            }
            if s.batch > 1 && s.strideC == 0 {
                // C = beta·C + Σ_slots partial: each slot sums a contiguous run of items.
                let perSlot = (s.batch + tuning.gemmReductionSlots - 1) / tuning.gemmReductionSlots
                let slots = (s.batch + perSlot - 1) / perSlot
                guard let partial = scratchBuffer(.gemmPartial, bytes: slots * s.m * s.n * 4) else { return }
                run(cArgs: [.mem(partial), .int(0), .int(s.n), .int(s.m * s.n)], beta: 0, slots: slots, perSlot: perSlot)
                launch("gemm", program, "kernel_gemm_reduce", global: [s.n, s.m], local: [8, 8],
                       [.mem(partial), .int(slots), .view(c), .int(s.ldc), .int(s.m), .int(s.n), .float(s.beta)])
            } else {
                run(cArgs: [.view(c), .int(s.ldc), .int(s.strideC)], beta: s.beta, slots: s.batch, perSlot: 1)
            }
        }
    }

    // MARK: - Permute

    public func permute(_ source: TensorView, shape: [Int], order: [Int], into destination: TensorView, accumulate: Bool) {
        let perm = Permutation(shape: shape, order: order, source: source, destination: destination)
        let n = perm.count, pad = 8 - shape.count
        let dShape = [Int](repeating: 1, count: pad) + perm.destinationShape
        let dStride = [Int](repeating: 0, count: pad) + perm.sourceStrides
        locked {
            launch1D("permute", "kernel_permute_forward", n: n,
                     [.view(source), .view(destination), .int(n), .int8(dShape), .int8(dStride), .int(accumulate ? 1 : 0)])
        }
    }

    // MARK: - Bias

    public func addBias(_ bias: TensorView, to out: TensorView, rows: Int, columns: Int) {
        precondition(bias.count >= columns && out.count >= rows * columns, "addBias shape mismatch")
        locked {
            launch("addBias", main, "kernel_bias_forward", global: [columns, rows], local: [16, 16],
                   [.view(bias), .view(out), .int(rows), .int(columns)])
        }
    }

    public func biasBackward(_ dOut: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        precondition(dBias.count >= columns && dOut.count >= rows * columns, "biasBackward shape mismatch")
        guard rows > 0 && columns > 0 else { return }
        locked {
            let chunks = Self.columnChunks(rows: rows)
            guard let partial = scratchBuffer(.columnPartial, bytes: chunks * columns * tuning.accumulatorBytes) else { return }
            launch("biasBackward", main, "kernel_bias_backward", global: [columns, chunks], local: [16, 1],
                   [.view(dOut), .mem(partial), .int(rows), .int(columns), .int(chunks)])
            launch("biasBackward", main, "kernel_colsum_finish", global: [columns], local: [64],
                   [.mem(partial), .int(0), .int(columns), .int(chunks), .view(dBias), .int(columns)])
        }
    }

    public func addBiasReLU(_ bias: TensorView, to out: TensorView, rows: Int, columns: Int) {
        precondition(bias.count >= columns && out.count >= rows * columns, "addBiasReLU shape mismatch")
        locked {
            launch("addBiasReLU", main, "kernel_bias_relu_forward", global: [columns, rows], local: [16, 16],
                   [.view(bias), .view(out), .int(rows), .int(columns)])
        }
    }

    public func reluBackwardBias(_ dOut: TensorView, out: TensorView, dX: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        let n = rows * columns
        precondition(dOut.count >= n && out.count >= n && dX.count >= n && dBias.count >= columns, "reluBackwardBias shape mismatch")
        guard rows > 0 && columns > 0 else { return }
        locked {
            let chunks = Self.columnChunks(rows: rows)
            guard let partial = scratchBuffer(.columnPartial, bytes: chunks * columns * tuning.accumulatorBytes) else { return }
            launch("reluBackwardBias", main, "kernel_relu_bias_backward", global: [columns, chunks], local: [16, 1],
                   [.view(dOut), .view(out), .view(dX), .mem(partial), .int(rows), .int(columns), .int(chunks)])
            launch("reluBackwardBias", main, "kernel_colsum_finish", global: [columns], local: [64],
                   [.mem(partial), .int(0), .int(columns), .int(chunks), .view(dBias), .int(columns)])
        }
    }

    /// Row chunks of a two-stage column reduction (a function of the row count only: deterministic).
    static func columnChunks(rows: Int) -> Int { min(64, max(1, rows / 64)) }

    // MARK: - Elementwise

    public func fill(_ view: TensorView, value: Float) {
        locked { launch1D("fill", "kernel_fill_forward", n: view.count, [.view(view), .int(view.count), .float(value)]) }
    }

    public func copy(_ source: TensorView, to destination: TensorView) {
        precondition(source.count == destination.count, "copy of \(source.count) into \(destination.count)")
        locked { launch1D("copy", "kernel_copy_forward", n: source.count, [.view(source), .view(destination), .int(source.count)]) }
    }

    public func add(_ a: TensorView, _ b: TensorView, out: TensorView) {
        precondition(a.count == b.count && a.count == out.count, "add size mismatch")
        locked { launch1D("add", "kernel_add_forward", n: out.count, [.view(a), .view(b), .view(out), .int(out.count)]) }
    }

    public func accumulate(_ source: TensorView, into destination: TensorView) {
        precondition(source.count == destination.count, "accumulate size mismatch")
        locked {
            launch1D("accumulate", "kernel_accumulate_forward", n: source.count, [.view(source), .view(destination), .int(source.count)])
        }
    }

    public func scale(_ view: TensorView, by factor: Float) {
        locked { launch1D("scale", "kernel_scale_forward", n: view.count, [.view(view), .int(view.count), .float(factor)]) }
    }

    public func reluForward(_ x: TensorView, out: TensorView) {
        precondition(x.count == out.count, "relu size mismatch")
        locked { launch1D("reluForward", "kernel_relu_forward", n: x.count, [.view(x), .view(out), .int(x.count)]) }
    }

    public func reluBackward(_ dOut: TensorView, out: TensorView, dX: TensorView) {
        precondition(dOut.count == out.count && dX.count == out.count, "relu backward size mismatch")
        locked {
            launch1D("reluBackward", "kernel_relu_backward", n: out.count, [.view(dOut), .view(out), .view(dX), .int(out.count)])
        }
    }
}

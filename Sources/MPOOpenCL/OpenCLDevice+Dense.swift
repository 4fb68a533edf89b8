// OpenCLDevice: GEMM, permute, bias and the elementwise ops (kernels in gemm.cl, elementwise.cl).
//
// GEMM picks one of two builds of kernel_gemm_tiled per call: the register-blocked large tile
// when C is at least one large tile in both directions, else the small tile (MPO site steps are
// skinny). A reduction over the batch (strideC == 0, batch > 1) runs as up to
// `gemmReductionSlots` partial products into scratch, then kernel_gemm_reduce adds them in
// order into C with beta — deterministic, no atomics; a single product with few output tiles and
// a long K (the weight gradients) is split along K into such a reduction (split-K); a batch of
// small products sharing one A or B (the MPO site steps) runs as one folded product. Shapes are
// checked like the CPU device's.

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
            let folded = variant == .reference ? nil : foldedBatch(s)
            let shape = folded?.shape ?? s   // the product as launched
            let program: OpenCLProgram, tiling: GemmTiling
            switch variant {
            case .large: (program, tiling) = (gemmLarge, tuning.gemmLarge)
            case .small, .reference: (program, tiling) = (gemmSmall, tuning.gemmSmall)
            case .automatic:
                let big = shape.m >= tuning.gemmLarge.tm && shape.n >= tuning.gemmLarge.tn
                (program, tiling) = big ? (gemmLarge, tuning.gemmLarge) : (gemmSmall, tuning.gemmSmall)
            }
            // K = 0 touches no A/B element; bind C in their place so no out-of-range view is needed.
            let av = s.k == 0 ? c : a, bv = s.k == 0 ? c : b
            let launcher = GemmLaunch(device: self, program: program, tiling: tiling, reference: variant == .reference, a: av, b: bv)
            if let folded {
                launcher.run(folded.shape, kLast: s.k, cArgs: [.view(c), .int(s.ldc), .int(s.strideC)], beta: s.beta,
                             slots: 1, perSlot: 1, fold: folded.fold, foldSize: folded.size)
            } else if let split = splitK(s, tiling: tiling) {
                launcher.reduce(split.shape, kLast: split.kLast, into: c, beta: s.beta)
            } else if s.batch > 1 && s.strideC == 0 {
                launcher.reduce(s, kLast: s.k, into: c, beta: s.beta)
            } else {
                launcher.run(s, kLast: s.k, cArgs: [.view(c), .int(s.ldc), .int(s.strideC)], beta: s.beta, slots: s.batch, perSlot: 1)
            }
        }
    }

    /// A batched product with one A (or B) shared by every item as one product over the items'
    /// columns side by side (fold 1: n·batch columns) or rows stacked (fold 2: m·batch rows); the
    /// launched shape keeps the items' strides and has batch 1. Each element sums over k in the
    /// same order as unfolded, so the result is the same bit for bit. Nil for a single product, a
    /// reduction over the batch, or when `OpenCLTuning.foldBatches` is off.
    func foldedBatch(_ s: GemmShape) -> (shape: GemmShape, fold: Int, size: Int)? {
        guard tuning.foldBatches, s.batch > 1, s.strideC != 0, s.strideA == 0 || s.strideB == 0 else { return nil }
        var f = s
        f.batch = 1
        if s.strideA == 0 {
            guard s.n * s.batch < Int(Int32.max) else { return nil }
            f.n = s.n * s.batch
            return (f, 1, s.n)
        }
        guard s.m * s.batch < Int(Int32.max) else { return nil }
        f.m = s.m * s.batch
        return (f, 2, s.m)
    }

    /// Split-K (OpenCLTuning.splitKTargetGroups): a single product with few output tiles and a
    /// long K as a reduction over pieces along K — a batch whose strides step along K, every piece
    /// `shape.k` deep but the last (`kLast`). Nil when the product is not worth splitting.
    func splitK(_ s: GemmShape, tiling: GemmTiling) -> (shape: GemmShape, kLast: Int)? {
        guard s.batch == 1 else { return nil }
        let tiles = ((s.m + tiling.tm - 1) / tiling.tm) * ((s.n + tiling.tn - 1) / tiling.tn)
        guard tiles < tuning.splitKTargetGroups else { return nil }
        let pieces = min(tuning.gemmReductionSlots, (tuning.splitKTargetGroups + tiles - 1) / tiles, s.k / max(1, tuning.splitKMinDepth))
        guard pieces >= 2 else { return nil }
        let depth = Self.roundUp((s.k + pieces - 1) / pieces, tiling.tk)   // whole staged tiles per piece
        let count = (s.k + depth - 1) / depth
        guard count >= 2 else { return nil }
        var piece = s
        piece.k = depth
        piece.batch = count
        piece.strideA = s.transposeA ? depth * s.lda : depth
        piece.strideB = s.transposeB ? depth : depth * s.ldb
        piece.strideC = 0
        return (piece, s.k - (count - 1) * depth)
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

/// One GEMM's kernel launches (call with the device lock held): `run` enqueues the tiled (or
/// reference) kernel over a grid of C tiles and slots; `reduce` a reduction over the batch as up to
/// `gemmReductionSlots` partial products into scratch, then kernel_gemm_reduce adds them in order
/// into C with beta — deterministic, no atomics.
struct GemmLaunch {
    let device: OpenCLDevice
    let program: OpenCLProgram
    let tiling: GemmTiling
    let reference: Bool
    let a: TensorView, b: TensorView

    func run(_ s: GemmShape, kLast: Int, cArgs: [KernelArg], beta: Float, slots: Int, perSlot: Int, fold: Int = 0, foldSize: Int = 0) {
        let args: [KernelArg] = [.view(a), .int(s.lda), .int(s.strideA), .view(b), .int(s.ldb), .int(s.strideB)] + cArgs
            + [.int(s.m), .int(s.n), .int(s.k), .int(s.transposeA ? 1 : 0), .int(s.transposeB ? 1 : 0), .float(s.alpha),
               .float(beta), .int(s.batch), .int(slots), .int(perSlot), .int(kLast), .int(fold), .int(foldSize)]
        let z = min(slots, device.maxGroupsPerDimension)
        if reference {
            device.launch("gemm", program, "kernel_gemm_reference", global: [s.n, s.m, z], local: [8, 8, 1], args)
        } else {
            let (ln, lm) = tiling.local
            let gx = (s.n + tiling.tn - 1) / tiling.tn * ln, gy = (s.m + tiling.tm - 1) / tiling.tm * lm
            device.launch("gemm", program, "kernel_gemm_tiled", global: [gx, gy, z], local: [ln, lm, 1], args)
        }
    }

    /// C = beta·C + Σ_slots partial: each slot sums a contiguous run of items.
    func reduce(_ s: GemmShape, kLast: Int, into c: TensorView, beta: Float) {
        let perSlot = (s.batch + device.tuning.gemmReductionSlots - 1) / device.tuning.gemmReductionSlots
        let slots = (s.batch + perSlot - 1) / perSlot
        guard let partial = device.scratchBuffer(.gemmPartial, bytes: slots * s.m * s.n * 4) else { return }
        run(s, kLast: kLast, cArgs: [.mem(partial), .int(0), .int(s.n), .int(s.m * s.n)], beta: 0, slots: slots, perSlot: perSlot)
        device.launch("gemm", program, "kernel_gemm_reduce", global: [s.n, s.m], local: [8, 8],
                      [.mem(partial), .int(slots), .view(c), .int(s.ldc), .int(s.m), .int(s.n), .float(beta)])
    }
}

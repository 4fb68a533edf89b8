// MPOLinear, strategy 2 for training: the site-by-site sweep as batched GEMMs that keep every
// intermediate state for the backward pass (workspace slots .state(l)), and the backward sweep
// left to right with two GEMMs per site. Inference uses the device's fused `mpoForward` instead
// (MPOLinear.swift). The permuted cores M_l are shared by both.

extension MPOLinear {
    /// M_l = core l (b, o, i, b') permuted to (i, b', b, o), rebuilt when the parameters changed.
    func ensurePermutedCores(_ dev: any ComputeDevice, version: Int?) throws {
        if permuted.isEmpty {
            permuted = try (0..<sites).map { try device.makeBuffer(count: cores[$0].count, label: "\(label) M\($0)") }
        } else if let version, version == permutedVersion {
            return
        }
        let f = factorization
        for l in 0..<sites {
            dev.permute(cores[l], shape: [bonds[l], f.outFactors[l], f.inFactors[l], bonds[l + 1]], order: [2, 3, 0, 1],
                        into: permuted[l].all, accumulate: false)
        }
        permutedVersion = version
    }

    /// One site step: out[p] (Mo, O) = M_lᵀ · in[p] (K, O).
    private func siteGemm(_ dev: any ComputeDevice, _ l: Int, rows: Int, input: TensorView, output: TensorView, beta: Float) {
        let s = siteStep(l, rows: rows), m = permuted[l].all
        if s.o == 1 {
            dev.gemm(GemmShape(m: s.p, n: s.mo, k: s.k, beta: beta), a: input, b: m, c: output)
        } else {
            dev.gemm(GemmShape(m: s.mo, n: s.o, k: s.k, transposeA: true, beta: beta, batch: s.p,
                               strideA: 0, strideB: s.k * s.o, strideC: s.mo * s.o), a: m, b: input, c: output)
        }
    }

    /// The state after site l (the input of site l − 1), l = 1…L−1, kept for backward.
    private func state(_ l: Int, rows: Int) throws -> TensorView {
        let s = siteStep(l, rows: rows)
        return try workspace.view(.state(l), s.p * s.mo * s.o)
    }

    func siteForward(_ dev: any ComputeDevice, x: TensorView, y: TensorView, rows: Int, accumulate: Bool) throws {
        var input = x
        for l in stride(from: sites - 1, through: 0, by: -1) {
            let out = l == 0 ? y : try state(l, rows: rows)
            siteGemm(dev, l, rows: rows, input: input, output: out, beta: l == 0 && accumulate ? 1 : 0)
            input = out
        }
    }

    func siteBackward(_ dev: any ComputeDevice, dY: TensorView, x: TensorView, dX: TensorView?, rows: Int,
                      accumulateInput: Bool, coreGradients: [TensorView]) throws {
        let f = factorization
        let largest = (0..<sites).map { let s = siteStep($0, rows: rows); return s.p * s.k * s.o }.max() ?? 1
        let dStates = try (0..<2).map { try workspace.view(.stateGradient($0), largest) }
        let dM = try workspace.view(.coreGradient, (0..<sites).map { cores[$0].count }.max() ?? 1)
        var dOut = dY
        for l in 0..<sites {
            let s = siteStep(l, rows: rows), m = permuted[l].all
            let input = l == sites - 1 ? x : try state(l + 1, rows: rows)   // the state this site consumed
            // dM_l (K, Mo) = Σ_p in[p] (K, O) · dOut[p]ᵀ (O, Mo)
            let dm = dM.view(0, s.k * s.mo)
            if s.o == 1 {
                dev.gemm(GemmShape(m: s.k, n: s.mo, k: s.p, transposeA: true), a: input, b: dOut, c: dm)
            } else {
                dev.gemm(GemmShape(m: s.k, n: s.mo, k: s.o, transposeB: true, batch: s.p,
                                   strideA: s.k * s.o, strideB: s.mo * s.o, strideC: 0), a: input, b: dOut, c: dm)
            }
            dev.permute(dm, shape: [f.inFactors[l], bonds[l + 1], bonds[l], f.outFactors[l]], order: [2, 3, 0, 1],
                        into: coreGradients[l], accumulate: true)
            // dIn[p] (K, O) = M_l (K, Mo) · dOut[p] (Mo, O)
            let target: TensorView
            if l == sites - 1 {
                guard let dX else { break }
                target = dX
            } else {
                target = dStates[l % 2].view(0, s.p * s.k * s.o)
            }
            let beta: Float = l == sites - 1 && accumulateInput ? 1 : 0
            if s.o == 1 {
                dev.gemm(GemmShape(m: s.p, n: s.k, k: s.mo, transposeB: true, beta: beta), a: dOut, b: m, c: target)
            } else {
                dev.gemm(GemmShape(m: s.k, n: s.o, k: s.mo, beta: beta, batch: s.p, strideA: 0,
                                   strideB: s.mo * s.o, strideC: s.k * s.o), a: m, b: dOut, c: target)
            }
            dOut = target
        }
    }
}

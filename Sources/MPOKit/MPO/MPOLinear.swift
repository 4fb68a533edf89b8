// MPOLinear: y = x·Wᵀ with W held as MPO cores A_l (b_l, o_l, i_l, b_{l+1}) — forward and
// backward for both contraction strategies of docs/DESIGN.md §2, as device `gemm`, `permute` and (for
// inference) the fused `mpoForward` op, so every device runs them.
//
// Strategy `.rebuild`: contract the cores into W (CoreChain over sites o_l·i_l gives the
// interleaved (o0,i0,o1,i1,…) tensor; permute it to (o0,o1,…,i0,i1,…)), one GEMM with x.
// Backward: dW = dYᵀ·x, permute dW to interleaved order and project it onto the cores
// (CoreChain.project).
//
// Strategy `.siteBySite`: never form W. Sweep the sites right to left: the state before site l
// is laid out (n, i_0…i_{l−1}, [i_l, b_{l+1}], o_{l+1}…o_{L−1}); one step with the core permuted
// to M_l = (i_l b_{l+1}, b_l o_l) turns [i_l, b_{l+1}] into [b_l, o_l], and after site 0 the state
// is y (n, o_0…o_{L−1}). Training runs it as batched GEMMs that keep every state for the
// backward pass (MPOLinear+Sites.swift); inference runs the device's fused `mpoForward`, which
// keeps nothing.
//
// Memory: a training layer owns its workspace (W, the interleaved scratch, the saved states,
// the gradient scratch — each allocated on first use). The layers of an inference-only model
// share one workspace, so the model holds its cores and nothing the size of W per layer.

import Foundation
import TensorTrain

public enum MPOStrategy: String, CaseIterable, Sendable, Codable {
    case automatic, rebuild, siteBySite = "site"
}

extension MPOContraction {
    init(factorization f: MPOFactorization, bonds: [Int], rows: Int) {
        self.init(outFactors: f.outFactors, inFactors: f.inFactors, bonds: bonds, rows: rows)
    }
}

/// Scratch buffers of MPO layers, grown on demand: one per layer in a training model, one per
/// model (shared by every layer) in an inference model.
final class MPOWorkspace {
    enum Slot: Hashable { case weight, interleaved, weightGradient, state(Int), stateGradient(Int), coreGradient }
    let device: any ComputeDevice
    let label: String
    private var buffers: [Slot: DeviceBuffer] = [:]
    /// The layer and parameter version the `.weight` slot was last rebuilt for.
    var weightOwner: (layer: ObjectIdentifier, version: Int)?

    init(device: any ComputeDevice, label: String) { self.device = device; self.label = label }

    /// A view of `count` elements of `slot` (the buffer grows, never shrinks).
    func view(_ slot: Slot, _ count: Int) throws -> TensorView {
        if let b = buffers[slot], b.count >= count { return b.view(0, count) }
        if slot == .weight { weightOwner = nil }
        let b = try device.makeBuffer(count: max(count, 1), label: "\(label) \(slot)")
        buffers[slot] = b
        return b.view(0, count)
    }

    /// Frees the buffers of `slots` (they are allocated again if used).
    func release(_ slots: [Slot]) {
        for slot in slots { buffers[slot] = nil }
        if slots.contains(.weight) { weightOwner = nil }
    }

    /// Bytes held (for the memory tests and `bench --decode`).
    var bytes: Int { buffers.values.reduce(0) { $0 + 4 * $1.count } }
}

final class MPOLinear {
    let factorization: MPOFactorization
    let bonds: [Int]
    let cores: [TensorView]
    /// The cores' gradients (nil for an inference-only layer).
    let coreGradients: [TensorView]?
    let device: any ComputeDevice
    let label: String
    var strategy = MPOStrategy.automatic
    /// The strategy the last forward pass used (backward must use the same).
    private(set) var lastStrategy = MPOStrategy.rebuild
    /// Picks the inference strategy by timing both (shared by the model's layers); nil in training.
    let tuner: StrategyTuner?
    let chain: CoreChain
    let workspace: MPOWorkspace
    /// M_l = core l permuted to (i_l b_{l+1}, b_l o_l), built on first site-by-site use, and the
    /// parameter version they were built at.
    var permuted: [DeviceBuffer] = []
    var permutedVersion: Int?

    /// docs/SPEC.md §2's initial std of every core entry: in^(-1/4) / χ^((L-1)/(2L)), so that the
    /// contracted weight starts with std ≈ in^(-1/2).
    static func initStd(inFeatures: Int, chi: Int, sites: Int) -> Double {
        pow(Double(inFeatures), -0.25) / pow(Double(chi), Double(sites - 1) / Double(2 * sites))
    }

    var sites: Int { factorization.sites }
    var outFeatures: Int { factorization.outFeatures }
    var inFeatures: Int { factorization.inFeatures }
    var isInferenceOnly: Bool { coreGradients == nil }

    /// A layer over `cores` (and `coreGradients` for training). `workspace` is shared by an
    /// inference model's layers; nil gives the layer its own.
    init(factorization: MPOFactorization, bonds: [Int], cores: [TensorView], coreGradients: [TensorView]?,
         device: any ComputeDevice, label: String, workspace: MPOWorkspace? = nil, tuner: StrategyTuner? = nil) {
        self.factorization = factorization; self.bonds = bonds; self.cores = cores; self.coreGradients = coreGradients
        self.device = device; self.label = label; self.tuner = tuner
        self.workspace = workspace ?? MPOWorkspace(device: device, label: label)
        let oi = (0..<factorization.sites).map { factorization.outFactors[$0] * factorization.inFactors[$0] }
        chain = CoreChain(sites: oi, bonds: bonds, batch: 1, cores: cores, device: device, label: label)
    }

    // MARK: - Strategy

    /// Shape of site l's step over `rows` rows (MPOSiteStep).
    func siteStep(_ l: Int, rows: Int) -> MPOSiteStep { factorization.siteStep(l, bonds: bonds, rows: rows) }

    /// Multiply-adds ×2 of contracting the cores into W (the chain; the permute is a copy).
    func rebuildFlops() -> Double {
        var flops = 0.0, rowsP = Double(factorization.outFactors[0] * factorization.inFactors[0])
        for l in 1..<sites {
            let oi = Double(factorization.outFactors[l] * factorization.inFactors[l])
            flops += 2 * rowsP * Double(bonds[l]) * oi * Double(bonds[l + 1])
            rowsP *= oi
        }
        return flops
    }

    /// Site-by-site training cost (forward + backward) in "dense-GEMM FLOP equivalents": a step
    /// with a trailing dimension (O > 1) runs as a batch of tiny GEMMs, which the device executes
    /// `device.batchedGemmPenalty` times less efficiently than one large GEMM.
    func siteTrainingCost(rows: Int) -> Double {
        (0..<sites).reduce(0.0) { acc, l in
            let s = siteStep(l, rows: rows)
            let f = 3 * s.flops
            return acc + (s.o > 1 ? device.batchedGemmPenalty * f : f)
        }
    }

    /// Rebuild training cost: forward GEMM + dX + dW, plus the chain and (≈ twice the chain for) the projection.
    func rebuildTrainingCost(rows: Int) -> Double {
        3 * 2 * Double(rows) * Double(outFeatures) * Double(inFeatures) + 3 * rebuildFlops()
    }

    /// The strategy a training call with `rows` rows uses: a fixed rule of the shapes (and the
    /// device's penalty), so training is reproducible bit for bit.
    func trainingStrategy(rows: Int) -> MPOStrategy {
        if strategy != .automatic { return strategy }
        return siteTrainingCost(rows: rows) < rebuildTrainingCost(rows: rows) ? .siteBySite : .rebuild
    }

    // MARK: - Forward

    /// y = x·Wᵀ (or +=). `version` is the model's parameter version: derived data (W, the
    /// permuted cores) is rebuilt only when it changed; nil always rebuilds. An inference-only
    /// layer chooses its strategy by timing (StrategyTuner) and keeps no state for backward.
    func forward(_ dev: any ComputeDevice, x: TensorView, y: TensorView, rows: Int, accumulate: Bool, version: Int? = nil) throws {
        if isInferenceOnly {
            lastStrategy = try tuner?.choose(for: self, rows: rows, version: version, forced: strategy) ?? .rebuild
            try inferenceForward(dev, x: x, y: y, rows: rows, accumulate: accumulate, version: version, strategy: lastStrategy)
            return
        }
        lastStrategy = trainingStrategy(rows: rows)
        if lastStrategy == .siteBySite {
            try ensurePermutedCores(dev, version: version)
            try siteForward(dev, x: x, y: y, rows: rows, accumulate: accumulate)
        } else {
            let w = try weight(dev, version: version)
            dev.gemm(GemmShape(m: rows, n: outFeatures, k: inFeatures, transposeB: true, beta: accumulate ? 1 : 0), a: x, b: w, c: y)
        }
    }

    /// A plain low-rank factorisation [out, 1] × [1, in] (truncated SVD as an MPO).
    var isLowRank: Bool { factorization.isLowRank }

    /// The forward of an inference-only layer under `strategy` (the tuner times both this way).
    func inferenceForward(_ dev: any ComputeDevice, x: TensorView, y: TensorView, rows: Int, accumulate: Bool,
                          version: Int?, strategy: MPOStrategy) throws {
        if strategy == .siteBySite, isLowRank {
            // W = U·V: core 0 is U (out, χ), core 1 is V (χ, in), both row-major — two plain GEMMs
            // (a GEMV each at batch 1) with no permutation: y = (x·Vᵀ)·Uᵀ.
            let chi = bonds[1], t = try workspace.view(.state(0), rows * chi)
            dev.gemm(GemmShape(m: rows, n: chi, k: inFeatures, transposeB: true), a: x, b: cores[1], c: t)
            dev.gemm(GemmShape(m: rows, n: outFeatures, k: chi, transposeB: true, beta: accumulate ? 1 : 0), a: t, b: cores[0], c: y)
        } else if strategy == .siteBySite {
            try ensurePermutedCores(dev, version: version)
            let shape = MPOContraction(factorization: factorization, bonds: bonds, rows: rows)
            dev.mpoForward(shape, x: x, cores: permuted.map(\.all), y: y, accumulate: accumulate,
                           scratch: try workspace.view(.state(0), shape.scratchCount))
        } else {
            let w = try weight(dev, version: version)
            dev.gemm(GemmShape(m: rows, n: outFeatures, k: inFeatures, transposeB: true, beta: accumulate ? 1 : 0), a: x, b: w, c: y)
        }
    }

    func backward(_ dev: any ComputeDevice, dY: TensorView, x: TensorView, dX: TensorView?, rows: Int, accumulateInput: Bool) throws {
        guard let coreGradients else { throw ModelError("\(label): an inference-only model has no gradients; load it for training") }
        if lastStrategy == .siteBySite {
            try siteBackward(dev, dY: dY, x: x, dX: dX, rows: rows, accumulateInput: accumulateInput, coreGradients: coreGradients)
            return
        }
        let w = try weight(dev, version: nil, rebuild: false)
        if let dX {
            dev.gemm(GemmShape(m: rows, n: inFeatures, k: outFeatures, beta: accumulateInput ? 1 : 0), a: dY, b: w, c: dX)
        }
        let dW = try workspace.view(.weightGradient, outFeatures * inFeatures)
        dev.gemm(GemmShape(m: outFeatures, n: inFeatures, k: rows, transposeA: true), a: dY, b: x, c: dW)
        try projectWeightGradient(dev)
    }

    // MARK: - Strategy 1: rebuild W

    /// Interleaved shape (o0, i0, o1, i1, …).
    private var interleavedShape: [Int] { (0..<sites).flatMap { [factorization.outFactors[$0], factorization.inFactors[$0]] } }

    /// W (out, in), rebuilt unless the workspace already holds it for this layer at `version`
    /// (`rebuild: false` returns it as it is: backward uses the forward's W).
    func weight(_ dev: any ComputeDevice, version: Int?, rebuild: Bool = true) throws -> TensorView {
        let w = try workspace.view(.weight, outFeatures * inFeatures)
        let me = ObjectIdentifier(self)
        if rebuild, version == nil || workspace.weightOwner?.layer != me || workspace.weightOwner?.version != version {
            try rebuildW(dev, into: w)
            workspace.weightOwner = version.map { (me, $0) }
        }
        return w
    }

    /// W = permute(A_0·A_1⋯A_{L−1}) into `w`; the chain keeps its left environments for the projection.
    func rebuildW(_ dev: any ComputeDevice, into w: TensorView) throws {
        let full = outFeatures * inFeatures
        let interleaved = try workspace.view(.interleaved, full)
        try chain.contract(dev, into: interleaved)
        let order = (0..<sites).map { 2 * $0 } + (0..<sites).map { 2 * $0 + 1 }
        dev.permute(interleaved, shape: interleavedShape, order: order, into: w, accumulate: false)
    }

    /// Scratch for a weight gradient dW (out, in) that `projectWeightGradient` reads (the table
    /// MPO embedding scatters its gradient here).
    func weightGradientView() throws -> TensorView { try workspace.view(.weightGradient, outFeatures * inFeatures) }

    /// The weight as last rebuilt (the table MPO embedding reads its table here).
    func currentWeight() throws -> TensorView { try workspace.view(.weight, outFeatures * inFeatures) }

    /// coreGradients += projection of the weight gradient scratch onto every core (after a rebuild).
    func projectWeightGradient(_ dev: any ComputeDevice) throws {
        guard let coreGradients else { throw ModelError("\(label): an inference-only model has no gradients") }
        let f = factorization, full = outFeatures * inFeatures
        let dW = try workspace.view(.weightGradient, full), g = try workspace.view(.interleaved, full)
        dev.permute(dW, shape: f.outFactors + f.inFactors, order: (0..<sites).flatMap { [$0, sites + $0] }, into: g, accumulate: false)
        try chain.project(dev, g, into: coreGradients)
    }
}

// MPOLinear: y = x·Wᵀ with W held as MPO cores A_l (b_l, o_l, i_l, b_{l+1}) — forward and
// backward for both contraction strategies of DESIGN §2, as sequences of device `gemm` and
// `permute` calls (so every device gets them for free; no MPO-specific kernel is required).
//
// Strategy `.rebuild`: contract the cores into W (left to right, then permute the interleaved
// (o0,i0,o1,i1,…) result to (o0,o1,…,i0,i1,…)), one GEMM with x. Backward: dW = dYᵀ·x, permute
// dW to interleaved order G and project it onto each core through its left environment
// E_l = A_0⋯A_{l−1} (kept from the forward chain) and right environment F_l = A_{l+1}⋯A_{L−1}:
//   dA_l[(b_l,o_l i_l), b_{l+1}] += (E_lᵀ·G)[(b_l,o_l i_l), rest] · F_lᵀ.
//
// Strategy `.siteBySite`: never form W. Sweep the sites right to left. The state before site l
// is laid out (n, i_0…i_{l−1}, [i_l, b_{l+1}], o_{l+1}…o_{L−1}); one batched GEMM with the core
// permuted to M_l = (i_l b_{l+1}, b_l o_l) turns [i_l, b_{l+1}] into [b_l, o_l], and after site 0
// the state is y (n, o_0…o_{L−1}). Backward runs the sites left to right with two GEMMs each.
//
// `.automatic` counts the FLOPs of both for the actual row count and picks the cheaper one
// (weighting batched tiny GEMMs by their measured inefficiency, see `siteCost`).

import Foundation
import TensorTrain

public enum MPOStrategy: String, CaseIterable, Sendable, Codable {
    case automatic, rebuild, siteBySite = "site"
}

final class MPOLinear {
    let f: MPOFactorization
    let bonds: [Int]
    let cores: [TensorView]
    let dCores: [TensorView]
    let device: any ComputeDevice
    let label: String
    var strategy = MPOStrategy.automatic
    /// The strategy the last forward pass used (backward must use the same).
    private(set) var lastStrategy = MPOStrategy.rebuild

    /// SPEC §2's initial std of every core entry: in^(-1/4) / χ^((L-1)/(2L)), so that the
    /// contracted weight starts with std ≈ in^(-1/2).
    static func initStd(inFeatures: Int, chi: Int, sites: Int) -> Double {
        pow(Double(inFeatures), -0.25) / pow(Double(chi), Double(sites - 1) / Double(2 * sites))
    }

    var L: Int { f.sites }
    var outF: Int { f.outFeatures }
    var inF: Int { f.inFeatures }

    // Rebuild workspace (independent of the row count).
    private let w: DeviceBuffer        // W (out, in)
    /// The weight as last rebuilt by `rebuildW`.
    var weightView: TensorView { w.all }
    private let chain: [DeviceBuffer]  // chain[l] = A_0⋯A_l as (∏_{k≤l} o_k i_k, b_{l+1}); l ≥ 1
    private let dW: DeviceBuffer       // dW (out, in), then reused
    private let g: DeviceBuffer        // dW in interleaved order
    private let right: [DeviceBuffer?] // right[l] = F_l as (b_{l+1}, ∏_{k>l} o_k i_k), l ≤ L−3
    private let t1: DeviceBuffer       // E_lᵀ·G scratch
    // Site-by-site workspace.
    private let m: [DeviceBuffer]      // M_l (i_l b_{l+1}, b_l o_l)
    private let dM: DeviceBuffer       // dM_l scratch
    private var states: [DeviceBuffer] = []   // states[l] = state after site l (input of site l−1), l = 1…L−1
    private var dStates: [DeviceBuffer] = []  // two ping-pong gradient buffers
    private var stateRows = 0

    init(factorization: MPOFactorization, bonds: [Int], cores: [TensorView], dCores: [TensorView],
         device: any ComputeDevice, label: String) throws {
        f = factorization; self.bonds = bonds; self.cores = cores; self.dCores = dCores
        self.device = device; self.label = label
        let fac = factorization
        let L = fac.sites, oi = (0..<L).map { fac.outFactors[$0] * fac.inFactors[$0] }
        let full = fac.outFeatures * fac.inFeatures
        w = try device.makeBuffer(count: full, label: "\(label) W")
        dW = try device.makeBuffer(count: full, label: "\(label) dW")
        g = try device.makeBuffer(count: full, label: "\(label) G")
        var ch: [DeviceBuffer] = []
        var rows = oi[0]
        for l in 1..<max(L, 1) {
            rows *= oi[l]
            ch.append(try device.makeBuffer(count: rows * bonds[l + 1], label: "\(label) chain \(l)"))
        }
        chain = ch
        var r: [DeviceBuffer?] = []
        var t1Size = full
        for l in 0..<L {
            let rest = oi[(l + 1)...].reduce(1, *)
            r.append(l <= L - 3 ? try device.makeBuffer(count: bonds[l + 1] * rest, label: "\(label) F\(l)") : nil)
            t1Size = max(t1Size, bonds[l] * oi[l] * rest)
        }
        right = r
        t1 = try device.makeBuffer(count: t1Size, label: "\(label) T1")
        m = try (0..<L).map { l in
            try device.makeBuffer(count: fac.inFactors[l] * bonds[l + 1] * bonds[l] * fac.outFactors[l], label: "\(label) M\(l)")
        }
        dM = try device.makeBuffer(count: m.map(\.count).max() ?? 1, label: "\(label) dM")
    }

    // MARK: - FLOP counts (forward + backward of one call with `rows` rows)

    /// Shape of site l's step: batch P, K = i_l·b_{l+1}, Mo = b_l·o_l, trailing O = ∏_{k>l} o_k.
    func siteStep(_ l: Int, rows: Int) -> (p: Int, k: Int, mo: Int, o: Int) {
        let p = rows * f.inFactors[..<l].reduce(1, *)
        return (p, f.inFactors[l] * bonds[l + 1], bonds[l] * f.outFactors[l], f.outFactors[(l + 1)...].reduce(1, *))
    }

    /// Site-by-site cost in "dense-GEMM FLOP equivalents": a step with a trailing dimension
    /// (O > 1) runs as a batch of tiny GEMMs, which OpenBLAS executes about 4–5× less
    /// efficiently than one large GEMM (measured with `mpo-train bench --profile`: ≈ 16 vs
    /// ≈ 75 GFLOP/s on a 2-core EPYC), so those FLOPs count `batchedPenalty` times.
    static let batchedPenalty = 4.0

    func siteCost(rows: Int) -> Double {
        (0..<L).reduce(0.0) { acc, l in
            let s = siteStep(l, rows: rows)
            let f = 3 * 2 * Double(s.p) * Double(s.k) * Double(s.mo) * Double(s.o)
            return acc + (s.o > 1 ? Self.batchedPenalty * f : f)
        }
    }

    func rebuildFlops(rows: Int) -> Double {
        var chainFlops = 0.0, rowsP = Double(f.outFactors[0] * f.inFactors[0])
        for l in 1..<L {
            let oi = Double(f.outFactors[l] * f.inFactors[l])
            chainFlops += 2 * rowsP * Double(bonds[l]) * oi * Double(bonds[l + 1])
            rowsP *= oi
        }
        // forward GEMM + dX + dW, plus the chain and (≈ twice the chain for) the projection.
        return 3 * 2 * Double(rows) * Double(outF) * Double(inF) + 3 * chainFlops
    }

    /// The strategy a call with `rows` rows uses.
    func resolvedStrategy(rows: Int) -> MPOStrategy {
        if strategy != .automatic { return strategy }
        return siteCost(rows: rows) < rebuildFlops(rows: rows) ? .siteBySite : .rebuild
    }

    // MARK: - Forward

    /// Parameter versions W and the permuted cores were last built at (nil: never).
    private var wVersion: Int?, coresVersion: Int?

    /// y = x·Wᵀ (or +=). `version` is the model's parameter version: derived data (W, the
    /// permuted cores) is rebuilt only when it changed; nil always rebuilds.
    func forward(_ dev: any ComputeDevice, x: TensorView, y: TensorView, rows: Int, accumulate: Bool, version: Int? = nil) {
        lastStrategy = resolvedStrategy(rows: rows)
        if lastStrategy == .siteBySite {
            if version == nil || version != coresVersion { permuteCores(dev); coresVersion = version }
            siteForward(dev, x: x, y: y, rows: rows, accumulate: accumulate)
        } else {
            if version == nil || version != wVersion { rebuildW(dev); wVersion = version }
            dev.gemm(GemmShape(m: rows, n: outF, k: inF, transposeB: true, beta: accumulate ? 1 : 0), a: x, b: w.all, c: y)
        }
    }

    func backward(_ dev: any ComputeDevice, dY: TensorView, x: TensorView, dX: TensorView?, rows: Int, accumulateInput: Bool) {
        if lastStrategy == .siteBySite {
            siteBackward(dev, dY: dY, x: x, dX: dX, rows: rows, accumulateInput: accumulateInput)
            return
        }
        if let dX {
            dev.gemm(GemmShape(m: rows, n: inF, k: outF, beta: accumulateInput ? 1 : 0), a: dY, b: w.all, c: dX)
        }
        dev.gemm(GemmShape(m: outF, n: inF, k: rows, transposeA: true), a: dY, b: x, c: dW.all)
        projectOntoCores(dev)
    }

    // MARK: - Strategy 1: rebuild W

    /// Interleaved shape (o0, i0, o1, i1, …) and the axis order that maps it to (o…, i…).
    private var interleavedShape: [Int] { (0..<L).flatMap { [f.outFactors[$0], f.inFactors[$0]] } }

    /// W = permute(A_0·A_1⋯A_{L−1}); keeps the chain for the backward projection.
    func rebuildW(_ dev: any ComputeDevice) {
        var prev = cores[0], rowsP = f.outFactors[0] * f.inFactors[0]
        for l in 1..<L {
            let oi = f.outFactors[l] * f.inFactors[l]
            dev.gemm(GemmShape(m: rowsP, n: oi * bonds[l + 1], k: bonds[l]), a: prev, b: cores[l], c: chain[l - 1].all)
            prev = chain[l - 1].all
            rowsP *= oi
        }
        let order = (0..<L).map { 2 * $0 } + (0..<L).map { 2 * $0 + 1 }
        dev.permute(prev, shape: interleavedShape, order: order, into: w.all, accumulate: false)
    }

    /// Scratch for a weight gradient dW (out, in) that `projectWeightGradient` reads (the table
    /// MPO embedding scatters its gradient here).
    var weightGradientView: TensorView { dW.all }

    /// dA_l += projection of `weightGradientView` onto every core (after `rebuildW`).
    func projectWeightGradient(_ dev: any ComputeDevice) { projectOntoCores(dev) }

    /// dA_l += E_lᵀ·G·F_lᵀ for every core, from dW (out, in).
    private func projectOntoCores(_ dev: any ComputeDevice) {
        let oi = (0..<L).map { f.outFactors[$0] * f.inFactors[$0] }
        let shape = f.outFactors + f.inFactors
        let order = (0..<L).flatMap { [$0, L + $0] }
        dev.permute(dW.all, shape: shape, order: order, into: g.all, accumulate: false)
        // Right environments F_l (b_{l+1}, rest_l), built right to left; F_{L−2} is A_{L−1} itself.
        func env(_ l: Int) -> TensorView? {
            if l == L - 1 { return nil }
            if l == L - 2 { return cores[L - 1] }
            return right[l]!.all
        }
        if L >= 3 {
            for l in stride(from: L - 3, through: 0, by: -1) {
                let rest = oi[(l + 2)...].reduce(1, *)
                dev.gemm(GemmShape(m: bonds[l + 1] * oi[l + 1], n: rest, k: bonds[l + 2]),
                         a: cores[l + 1], b: env(l + 1)!, c: right[l]!.all)
            }
        }
        var left = 1
        for l in 0..<L {
            let rest = oi[(l + 1)...].reduce(1, *)
            // T1 (b_l, oi_l·rest) = E_lᵀ · G(left, oi_l·rest); E_0 = [1] so T1 = G.
            let t: TensorView
            if l == 0 {
                t = g.all
            } else {
                let e = l == 1 ? cores[0] : chain[l - 2].all
                dev.gemm(GemmShape(m: bonds[l], n: oi[l] * rest, k: left, transposeA: true), a: e, b: g.all, c: t1.all)
                t = t1.all
            }
            if let fEnv = env(l) {
                dev.gemm(GemmShape(m: bonds[l] * oi[l], n: bonds[l + 1], k: rest, transposeB: true, beta: 1),
                         a: t, b: fEnv, c: dCores[l])
            } else {
                dev.accumulate(t.view(0, dCores[l].count), into: dCores[l])
            }
            left *= oi[l]
        }
    }

    // MARK: - Strategy 2: site by site

    private func ensureStates(rows: Int) {
        guard rows != stateRows else { return }
        states = []; dStates = []
        var largest = rows * max(inF, outF)
        var list: [DeviceBuffer] = []
        for l in 1..<L {  // state after site l = input of site l−1
            let s = siteStep(l, rows: rows)
            let n = s.p * s.mo * s.o
            largest = max(largest, n)
            list.append(try! device.makeBuffer(count: n, label: "\(label) state \(l)"))
        }
        states = list
        dStates = (0..<2).map { try! device.makeBuffer(count: largest, label: "\(label) dstate \($0)") }
        stateRows = rows
    }

    func permuteCores(_ dev: any ComputeDevice) {
        for l in 0..<L {  // (b, o, i, b') → (i, b', b, o)
            dev.permute(cores[l], shape: [bonds[l], f.outFactors[l], f.inFactors[l], bonds[l + 1]], order: [2, 3, 0, 1],
                        into: m[l].all, accumulate: false)
        }
    }

    /// One site step: out[p] (Mo, O) = M_lᵀ · in[p] (K, O).
    private func siteGemm(_ dev: any ComputeDevice, _ l: Int, rows: Int, input: TensorView, output: TensorView, beta: Float) {
        let s = siteStep(l, rows: rows)
        if s.o == 1 {
            dev.gemm(GemmShape(m: s.p, n: s.mo, k: s.k, beta: beta), a: input, b: m[l].all, c: output)
        } else {
            dev.gemm(GemmShape(m: s.mo, n: s.o, k: s.k, transposeA: true, beta: beta, batch: s.p,
                               strideA: 0, strideB: s.k * s.o, strideC: s.mo * s.o), a: m[l].all, b: input, c: output)
        }
    }

    func siteForward(_ dev: any ComputeDevice, x: TensorView, y: TensorView, rows: Int, accumulate: Bool) {
        ensureStates(rows: rows)
        var input = x
        for l in stride(from: L - 1, through: 0, by: -1) {
            let out = l == 0 ? y : states[l - 1].all
            siteGemm(dev, l, rows: rows, input: input, output: out, beta: l == 0 && accumulate ? 1 : 0)
            input = out
        }
    }

    func siteBackward(_ dev: any ComputeDevice, dY: TensorView, x: TensorView, dX: TensorView?, rows: Int, accumulateInput: Bool) {
        var dOut = dY
        for l in 0..<L {
            let s = siteStep(l, rows: rows)
            let input = l == L - 1 ? x : states[l].all   // the state this site consumed
            // dM_l (K, Mo) = Σ_p in[p] (K, O) · dOut[p]ᵀ (O, Mo)
            let dm = dM.view(0, s.k * s.mo)
            if s.o == 1 {
                dev.gemm(GemmShape(m: s.k, n: s.mo, k: s.p, transposeA: true), a: input, b: dOut, c: dm)
            } else {
                dev.gemm(GemmShape(m: s.k, n: s.mo, k: s.o, transposeB: true, batch: s.p,
                                   strideA: s.k * s.o, strideB: s.mo * s.o, strideC: 0), a: input, b: dOut, c: dm)
            }
            dev.permute(dm, shape: [f.inFactors[l], bonds[l + 1], bonds[l], f.outFactors[l]], order: [2, 3, 0, 1],
                        into: dCores[l], accumulate: true)
            // dIn[p] (K, O) = M_l (K, Mo) · dOut[p] (Mo, O)
            let target: TensorView
            if l == L - 1 {
                guard let dX else { break }
                target = dX
            } else {
                target = dStates[l % 2].view(0, s.p * s.k * s.o)
            }
            let beta: Float = l == L - 1 && accumulateInput ? 1 : 0
            if s.o == 1 {
                dev.gemm(GemmShape(m: s.p, n: s.k, k: s.mo, transposeB: true, beta: beta), a: dOut, b: m[l].all, c: target)
            } else {
                dev.gemm(GemmShape(m: s.k, n: s.o, k: s.mo, beta: beta, batch: s.p, strideA: 0,
                                   strideB: s.mo * s.o, strideC: s.k * s.o), a: m[l].all, b: dOut, c: target)
            }
            dOut = target
        }
    }
}

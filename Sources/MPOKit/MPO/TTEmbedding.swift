// TokenEmbedding: the token-embedding layer for every `EmbeddingKind`, forward and backward side
// by side, built only from existing device ops (gemm, permute, fill, accumulate,
// embeddingForward/Backward), so every device runs it without kernels of its own.
//
// Dense: the table is the parameter `tok_emb.weight`.
//
// Per-token tensor train, cores C_k (V, r_k, d_k, r_{k+1}), L sites, P_k = ∏_{j<k} d_j,
// Q_k = ∏_{j>k} d_j (so P_k·d_k·Q_k = D):
//   forward  — contract all V tokens' cores into the (V, D) table, one GEMM batched over the
//              vocabulary per site: E_{k+1}[v] (P_k·d_k, r_{k+1}) = E_k[v] (P_k, r_k) · C_k[v]
//              (r_k, d_k·r_{k+1}), E_1 = C_0; the last product is the table. Then the usual
//              gather (embeddingForward). Runs on every forward, so the table is never stale.
//   backward — scatter-add dOut into a zeroed dTable (embeddingBackward), then project it onto
//              the cores like MPOLinear's projection, batched over tokens, with the right
//              environments F_k[v] (r_{k+1}, Q_k) = C_{k+1}[v] · F_{k+1}[v], F_{L−2} = C_{L−1}[v]:
//                T[v] (r_k, d_k·Q_k) = E_k[v]ᵀ · dTable[v] (P_k, d_k·Q_k)      (T = dTable for k = 0)
//                dC_k[v] (r_k·d_k, r_{k+1}) += T[v] (r_k·d_k, Q_k) · F_k[v]ᵀ  (dC_{L−1} += T)
//
// Table MPO: an `MPOLinear` (out = V, in = D) rebuilds the table with `rebuildW`; the backward
// scatters into its dW scratch and projects that onto the cores (`projectWeightGradient`).

final class TokenEmbedding {
    let kind: EmbeddingKind
    let vocabulary: Int
    let channels: Int
    // Dense.
    private let weight: TensorView?
    private let dWeight: TensorView?
    // Per-token tensor train.
    private let factors: [Int]
    private let ranks: [Int]
    private let cores: [TensorView]
    private let dCores: [TensorView]
    private let ttTable: DeviceBuffer?
    private let dTable: DeviceBuffer?
    private let chain: [DeviceBuffer]     // chain[k−1] = E_{k+1} (V, P_{k+1}, r_{k+1}), k = 1…L−2
    private let right: [DeviceBuffer?]    // right[k] = F_k (V, r_{k+1}, Q_k), k ≤ L−3
    private let t1: DeviceBuffer?
    // Table MPO.
    let mpo: MPOLinear?

    init(config: ModelConfig, layout: ParameterLayout, params: DeviceBuffer, grads: DeviceBuffer,
         device: any ComputeDevice) throws {
        kind = config.tokenEmbedding
        vocabulary = config.vocabularySize
        channels = config.channels
        func view(_ b: DeviceBuffer, _ n: String) -> TensorView {
            guard let s = layout[n] else { preconditionFailure("no parameter \(n)") }
            return b.view(s.offset, s.count)
        }
        let V = vocabulary, D = channels
        var f: [Int] = [], r: [Int] = [], c: [TensorView] = [], dc: [TensorView] = []
        var table: DeviceBuffer? = nil, dTab: DeviceBuffer? = nil, t: DeviceBuffer? = nil
        var ch: [DeviceBuffer] = [], rt: [DeviceBuffer?] = []
        switch kind {
        case .dense:
            weight = view(params, "tok_emb.weight"); dWeight = view(grads, "tok_emb.weight"); mpo = nil
        case .tensorTrain(let fs, let rs):
            weight = nil; dWeight = nil; mpo = nil
            f = fs; r = rs
            let L = fs.count
            c = (0..<L).map { view(params, "tok_emb.cores.\($0)") }
            dc = (0..<L).map { view(grads, "tok_emb.cores.\($0)") }
            table = try device.makeBuffer(count: V * D, label: "tok_emb table")
            dTab = try device.makeBuffer(count: V * D, label: "tok_emb dTable")
            var p = fs[0]
            for k in 1..<max(L - 1, 1) {
                p *= fs[k]
                ch.append(try device.makeBuffer(count: V * p * rs[k + 1], label: "tok_emb chain \(k)"))
            }
            var largest = 1
            for k in 0..<L {
                let q = fs[(k + 1)...].reduce(1, *)
                rt.append(k <= L - 3 ? try device.makeBuffer(count: V * rs[k + 1] * q, label: "tok_emb F\(k)") : nil)
                largest = max(largest, V * rs[k] * fs[k] * q)
            }
            t = try device.makeBuffer(count: largest, label: "tok_emb T1")
        case .mpo(let fac, let bonds):
            weight = nil; dWeight = nil
            let n = fac.sites
            mpo = try MPOLinear(factorization: fac, bonds: bonds,
                                cores: (0..<n).map { view(params, "tok_emb.cores.\($0)") },
                                dCores: (0..<n).map { view(grads, "tok_emb.cores.\($0)") },
                                device: device, label: "tok_emb")
        }
        factors = f; ranks = r; cores = c; dCores = dc
        ttTable = table; dTable = dTab; chain = ch; right = rt; t1 = t
    }

    private var L: Int { factors.count }

    /// The (V, D) table as last built (no rebuild).
    var tableView: TensorView {
        if let weight { return weight }
        if let mpo { return mpo.weightView }
        return ttTable!.all
    }

    /// Rebuilds the (V, D) table from the cores (a no-op for dense) and returns it.
    func table(_ dev: any ComputeDevice) -> TensorView {
        if let mpo {
            mpo.rebuildW(dev)
        } else if ttTable != nil {
            rebuildTT(dev)
        }
        return tableView
    }

    /// Left environment E_k (V, P_k, r_k) for k ≥ 1: E_1 = C_0, E_k = chain[k−2].
    private func leftEnv(_ k: Int) -> TensorView { k == 1 ? cores[0] : chain[k - 2].all }

    private func rebuildTT(_ dev: any ComputeDevice) {
        let V = vocabulary, table = ttTable!.all
        guard L > 1 else { dev.copy(cores[0], to: table); return }
        var p = factors[0]
        for k in 1..<L {
            let out = k == L - 1 ? table : chain[k - 1].all
            let n = factors[k] * ranks[k + 1]
            dev.gemm(GemmShape(m: p, n: n, k: ranks[k], batch: V, strideA: p * ranks[k],
                               strideB: ranks[k] * n, strideC: p * n), a: leftEnv(k), b: cores[k], c: out)
            p *= factors[k]
        }
    }

    /// Accumulates the gradient of the embedding output dOut (B·T, D) into the parameters'
    /// gradients (after the forward pass that built the table).
    func backward(_ dev: any ComputeDevice, dOut: TensorView, tokens: TensorView, batch: Int, time: Int) {
        if let dWeight {
            dev.embeddingBackward(dOut: dOut, tokens: tokens, dTable: dWeight, batch: batch, time: time, channels: channels)
            return
        }
        if let mpo {
            let g = mpo.weightGradientView
            dev.fill(g, value: 0)
            dev.embeddingBackward(dOut: dOut, tokens: tokens, dTable: g, batch: batch, time: time, channels: channels)
            mpo.projectWeightGradient(dev)
            return
        }
        let g = dTable!.all
        dev.fill(g, value: 0)
        dev.embeddingBackward(dOut: dOut, tokens: tokens, dTable: g, batch: batch, time: time, channels: channels)
        projectTT(dev, g)
    }

    /// dC_k += projection of dTable (V, D) onto every per-token core.
    private func projectTT(_ dev: any ComputeDevice, _ g: TensorView) {
        let V = vocabulary, D = channels
        guard L > 1 else { dev.accumulate(g, into: dCores[0]); return }
        let q = (0..<L).map { factors[($0 + 1)...].reduce(1, *) }
        // Right environments, right to left; F_{L−2} is C_{L−1} itself.
        func env(_ k: Int) -> TensorView { k == L - 2 ? cores[L - 1] : right[k]!.all }
        if L >= 3 {
            for k in stride(from: L - 3, through: 0, by: -1) {
                let m = ranks[k + 1] * factors[k + 1], n = q[k + 1], kk = ranks[k + 2]
                dev.gemm(GemmShape(m: m, n: n, k: kk, batch: V, strideA: m * kk, strideB: kk * n, strideC: m * n),
                         a: cores[k + 1], b: env(k + 1), c: right[k]!.all)
            }
        }
        var p = 1
        for k in 0..<L {
            let rk = ranks[k], dq = factors[k] * q[k]   // dq = D / P_k
            let t: TensorView
            if k == 0 {
                t = g
            } else {
                t = t1!.all
                dev.gemm(GemmShape(m: rk, n: dq, k: p, transposeA: true, batch: V, strideA: p * rk, strideB: D,
                                   strideC: rk * dq), a: leftEnv(k), b: g, c: t)
            }
            if k == L - 1 {
                dev.accumulate(t.view(0, dCores[k].count), into: dCores[k])
            } else {
                let m = rk * factors[k], n = ranks[k + 1]
                dev.gemm(GemmShape(m: m, n: n, k: q[k], transposeB: true, beta: 1, batch: V, strideA: m * q[k],
                                   strideB: n * q[k], strideC: m * n), a: t, b: env(k), c: dCores[k])
            }
            p *= factors[k]
        }
    }
}

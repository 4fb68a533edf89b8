// TokenEmbedding: the token-embedding layer for every `EmbeddingKind`, forward and backward side
// by side, built only from existing device ops (gemm, permute, fill, accumulate,
// embeddingForward/Backward), so every device runs it without kernels of its own.
//
// Dense: the table is the parameter `tok_emb.weight`.
//
// Per-token tensor train, cores C_k (V, r_k, d_k, r_{k+1}): a CoreChain batched over the
// vocabulary (sites d_k) contracts every token's cores into the (V, D) table on each forward
// (so the table is never stale), then the usual gather (embeddingForward); backward scatters
// dOut into a zeroed dTable (embeddingBackward) and projects it onto the cores (CoreChain.project,
// the same code as an MPO layer's projection).
//
// Table MPO: an `MPOLinear` (out = V, in = D) rebuilds the table as its weight; the backward
// scatters into its dW scratch and projects that onto the cores (`projectWeightGradient`).
//
// An inference model with an svd:r table (the MPO [V, 1] × [1, D]) never builds it: rows are
// gathered from the factor U (V, r) and multiplied by W (r, D), and a tied head is (x·Wᵀ)·Uᵀ.
//
// A tied head (GPT-2, some Llamas) multiplies by the same (V, D) table: `headForward` is
// logits = x·tableᵀ, `headBackward` adds dLogitsᵀ·x to the table's gradient — the dense
// parameter's, or the TT/MPO scratch that `backward` then projects onto the cores, so the head's
// gradient reaches the shared parameters whatever the kind. A backward pass calls
// `zeroTableGradient` first, then the head, then `backward`.

final class TokenEmbedding {
    let kind: EmbeddingKind
    let vocabulary: Int
    let channels: Int
    // Dense.
    private let weight: TensorView?
    private let dWeight: TensorView?
    // Per-token tensor train.
    private let chain: CoreChain?
    private let dCores: [TensorView]?
    private let ttTable: DeviceBuffer?
    private var dTable: DeviceBuffer?
    private let device: any ComputeDevice
    // Table MPO.
    let mpo: MPOLinear?
    /// Inference with 16-bit weights: the dense table (then `weight` is nil).
    private let packedTable: PackedMatrix?
    /// An inference model's parameter version: a TT/MPO table is rebuilt only when the cores
    /// changed (decoding would otherwise contract all V·D entries for every token). nil (training):
    /// rebuilt on every forward.
    private let version: ParameterVersion?
    private var builtVersion: Int?
    /// An inference model's rank-r table (svd:r, the MPO [V, 1] × [1, D]) used as its factors
    /// U (V, r) and W (r, D), the table never built: rows are U's rows times W, and the tied head
    /// is (x·Wᵀ)·Uᵀ — (V + D)·r weights read per token instead of V·D.
    private let lowRank: (u: TensorView, w: TensorView, rank: Int)?
    /// Scratch (rows, r) for the factor path; grown as needed, the old ones kept (a queued device
    /// op may still read them).
    private var factorScratch: [DeviceBuffer] = []

    /// `grads` nil: an inference-only embedding (no gradient buffers).
    init(config: ModelConfig, layout: ParameterLayout, params: DeviceBuffer, grads: DeviceBuffer?,
         device: any ComputeDevice, packedTable: PackedMatrix? = nil, version: ParameterVersion? = nil) throws {
        self.packedTable = packedTable
        self.version = version
        kind = config.tokenEmbedding
        vocabulary = config.vocabularySize
        channels = config.channels
        self.device = device
        let e = config.names.tokenEmbedding
        func view(_ b: DeviceBuffer, _ n: String) -> TensorView {
            guard let s = layout[n] else { preconditionFailure("no parameter \(n)") }
            return b.view(s.offset, s.count)
        }
        let V = vocabulary, D = channels
        switch kind {
        case .dense where packedTable != nil:
            weight = nil; dWeight = nil; mpo = nil; chain = nil; dCores = nil; ttTable = nil; lowRank = nil
        case .dense:
            weight = view(params, "\(e).weight"); dWeight = grads.map { view($0, "\(e).weight") }
            mpo = nil; chain = nil; dCores = nil; ttTable = nil; lowRank = nil
        case .tensorTrain(let fs, let rs):
            weight = nil; dWeight = nil; mpo = nil; lowRank = nil
            let L = fs.count
            chain = CoreChain(sites: fs, bonds: rs, batch: V, cores: (0..<L).map { view(params, "\(e).cores.\($0)") },
                              device: device, label: "tok_emb")
            dCores = grads.map { g in (0..<L).map { view(g, "\(e).cores.\($0)") } }
            ttTable = try device.makeBuffer(count: V * D, label: "tok_emb table")
        case .mpo(let fac, let bonds):
            weight = nil; dWeight = nil; chain = nil; dCores = nil; ttTable = nil
            let n = fac.sites
            mpo = MPOLinear(factorization: fac, bonds: bonds, cores: (0..<n).map { view(params, "\(e).cores.\($0)") },
                            coreGradients: grads.map { g in (0..<n).map { view(g, "\(e).cores.\($0)") } },
                            device: device, label: "tok_emb")
            lowRank = grads == nil && fac.outFactors == [V, 1] && fac.inFactors == [1, D]
                ? (view(params, "\(e).cores.0"), view(params, "\(e).cores.1"), bonds[1]) : nil
        }
    }

    /// A (count) view of factor scratch.
    private func scratch(_ count: Int) throws -> TensorView {
        if let last = factorScratch.last, last.count >= count { return last.view(0, count) }
        factorScratch.append(try device.makeBuffer(count: count, label: "tok_emb factor scratch"))
        return factorScratch.last!.view(0, count)
    }

    /// The (V, D) table as last built (no rebuild).
    func tableView() throws -> TensorView {
        guard packedTable == nil else { throw ModelError("the token embedding is stored in 16 bits; read it with parameter(_:)") }
        if let weight { return weight }
        if let mpo { return try mpo.currentWeight() }
        return ttTable!.all
    }

    /// Rebuilds the (V, D) table from the cores (a no-op for dense; for an inference model only
    /// when its parameters changed since the last build) and returns it.
    func table(_ dev: any ComputeDevice) throws -> TensorView {
        if let mpo { return try mpo.weight(dev, version: version?.value) }
        if let chain, let ttTable, version == nil || builtVersion != version?.value {
            try chain.contract(dev, into: ttTable.all)
            builtVersion = version?.value
        }
        return try tableView()
    }

    /// The (V, D) table's gradient: the dense parameter's, or the scratch projected onto the cores.
    private func tableGradient() throws -> TensorView {
        if let dWeight { return dWeight }
        if let mpo { return try mpo.weightGradientView() }
        guard chain != nil, dCores != nil else { throw ModelError("the token embedding of an inference-only model has no gradients") }
        if dTable == nil { dTable = try device.makeBuffer(count: vocabulary * channels, label: "token embedding dTable") }
        return dTable!.all
    }

    /// Starts a backward pass: the TT/MPO table gradient scratch is zeroed (the dense one is the
    /// parameter gradient, zeroed with the arena).
    func zeroTableGradient(_ dev: any ComputeDevice) throws {
        if dWeight == nil { dev.fill(try tableGradient(), value: 0) }
    }

    /// out (B·T, D) = the rows of `tokens` (+ `positions`), the table rebuilt first (TT, MPO).
    func forward(_ dev: any ComputeDevice, tokens: TensorView, positions: TensorView?, out: TensorView, batch: Int, time: Int) throws {
        if let packedTable {
            dev.embeddingForwardPacked(tokens: tokens, table: packedTable, positions: positions, out: out, batch: batch, time: time, channels: channels)
        } else if let lowRank, positions == nil {   // rows of U, times W
            let rows = batch * time, t = try scratch(rows * lowRank.rank)
            dev.embeddingForward(tokens: tokens, table: lowRank.u, positions: nil, out: t, batch: batch, time: time, channels: lowRank.rank)
            dev.gemm(GemmShape(m: rows, n: channels, k: lowRank.rank), a: t, b: lowRank.w, c: out)
        } else {
            dev.embeddingForward(tokens: tokens, table: try table(dev), positions: positions, out: out, batch: batch, time: time, channels: channels)
        }
    }

    /// Tied head: logits (rows, V) = x (rows, D)·tableᵀ, with the table of the last forward pass.
    func headForward(_ dev: any ComputeDevice, x: TensorView, y: TensorView, rows: Int) throws {
        if let lowRank {   // (x·Wᵀ)·Uᵀ
            let t = try scratch(rows * lowRank.rank)
            dev.gemm(GemmShape(m: rows, n: lowRank.rank, k: channels, transposeB: true), a: x, b: lowRank.w, c: t)
            dev.gemm(GemmShape(m: rows, n: vocabulary, k: lowRank.rank, transposeB: true), a: t, b: lowRank.u, c: y)
            return
        }
        if let packedTable {
            dev.gemmPacked(GemmShape(m: rows, n: vocabulary, k: channels, transposeB: true), a: x, b: packedTable, c: y)
            return
        }
        dev.gemm(GemmShape(m: rows, n: vocabulary, k: channels, transposeB: true), a: x, b: try tableView(), c: y)
    }

    /// Tied head backward: dX = dY·table (overwrite), table gradient += dYᵀ·x.
    func headBackward(_ dev: any ComputeDevice, dY: TensorView, x: TensorView, dX: TensorView, rows: Int) throws {
        dev.gemm(GemmShape(m: vocabulary, n: channels, k: rows, transposeA: true, beta: 1), a: dY, b: x, c: try tableGradient())
        dev.gemm(GemmShape(m: rows, n: channels, k: vocabulary), a: dY, b: try tableView(), c: dX)
    }

    /// Accumulates the gradient of the embedding output dOut (B·T, D) into the parameters'
    /// gradients (after the forward pass that built the table, and `zeroTableGradient`).
    func backward(_ dev: any ComputeDevice, dOut: TensorView, tokens: TensorView, batch: Int, time: Int) throws {
        let g = try tableGradient()
        dev.embeddingBackward(dOut: dOut, tokens: tokens, dTable: g, batch: batch, time: time, channels: channels)
        if let mpo { try mpo.projectWeightGradient(dev) }
        if let chain, let dCores { try chain.project(dev, g, into: dCores) }
    }
}

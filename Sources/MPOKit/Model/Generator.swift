// Generator: autoregressive inference with a KV cache (docs/SPEC.md §7) for `batch` sequences decoded
// in step (rows = batch), plus the sampler.
//
// `feed` runs only the new tokens of every sequence through the model: their keys and values go
// to per-layer caches (batch, capacity, C) and their queries attend to everything cached
// (attentionForward with a query offset and kvRows = capacity). A prompt is prefilled in one
// feed. The logits equal the full forward's for the same prefix (tested). Positions are absolute
// (fixed or learned rows added at the cache offset, or rotary angles of the cache offset), so once
// the context window is full and the crop slides, every cached activation changes: `generate`
// then re-runs the cropped windows, exactly as the full forward would. The caches hold `capacity` positions — by default the model's context, fewer when the
// caller knows how long the sequences get (prompt + tokens), so memory follows the work.

import Foundation

public final class Generator {
    public let model: Transformer
    public let batch: Int
    public let capacity: Int
    public private(set) var position = 0
    private let kCache: [DeviceBuffer], vCache: [DeviceBuffer]
    private let ids: DeviceBuffer
    private let x, ln, q, kNew, vNew, att, lse, hidden, mean, rstd, last, logits: DeviceBuffer
    /// The MLP's extra activations (GELU's pre-activation, SwiGLU's gate and up).
    private let pre: DeviceBuffer?, up: DeviceBuffer?

    /// `capacity` (≤ the model's context; default it) positions per sequence.
    public init(model: Transformer, batch: Int = 1, capacity: Int? = nil) throws {
        guard batch >= 1 else { throw ModelError("the generator needs a batch of at least 1 sequence (got \(batch))") }
        self.model = model
        self.batch = batch
        let c = model.config, dev = model.device, C = c.channels, KC = c.kvChannels
        let T = min(max(capacity ?? c.context, 1), c.context), rows = batch * T
        self.capacity = T
        kCache = try (0..<c.layers).map { try dev.makeBuffer(count: rows * KC, label: "k cache \($0)") }
        vCache = try (0..<c.layers).map { try dev.makeBuffer(count: rows * KC, label: "v cache \($0)") }
        ids = try dev.makeBuffer(count: rows, label: "generator ids")
        x = try dev.makeBuffer(count: rows * C, label: "gen x"); ln = try dev.makeBuffer(count: rows * C, label: "gen ln")
        q = try dev.makeBuffer(count: rows * C, label: "gen q"); att = try dev.makeBuffer(count: rows * C, label: "gen att")
        // New keys/values land in the cache directly for one sequence; a batch gathers them first.
        kNew = try dev.makeBuffer(count: batch > 1 ? rows * KC : 1, label: "gen k new")
        vNew = try dev.makeBuffer(count: batch > 1 ? rows * KC : 1, label: "gen v new")
        lse = try dev.makeBuffer(count: c.heads * rows, label: "gen lse")
        hidden = try dev.makeBuffer(count: rows * c.ffn, label: "gen hidden")
        let mlp = c.architecture.mlp
        pre = mlp == .relu ? nil : try dev.makeBuffer(count: rows * c.ffn, label: "gen pre")
        up = mlp == .swiglu ? try dev.makeBuffer(count: rows * c.ffn, label: "gen up") : nil
        mean = try dev.makeBuffer(count: rows, label: "gen mean"); rstd = try dev.makeBuffer(count: rows, label: "gen rstd")
        last = try dev.makeBuffer(count: batch * C, label: "gen last rows")
        logits = try dev.makeBuffer(count: batch * c.vocabularySize, label: "gen logits")
    }

    /// Forgets the cache.
    public func reset() { position = 0 }

    /// Runs one token per sequence at `position` (or a prompt: the same number n of tokens for
    /// every sequence, positions position..<position+n) through the model, appending to the caches;
    /// returns the logits (V) of each sequence's last token.
    public func feed(_ tokens: [[Int32]]) throws -> [[Float]] {
        let c = model.config, dev = model.device, C = c.channels, KC = c.kvChannels, V = c.vocabularySize, B = batch
        guard tokens.count == B, let n = tokens.first?.count, n >= 1, tokens.allSatisfy({ $0.count == n }) else {
            throw ModelError("feed needs \(B) sequences of the same length ≥ 1 (got \(tokens.map(\.count)))")
        }
        guard position + n <= capacity else {
            throw ModelError("cannot feed \(n) tokens at position \(position): the cache holds \(capacity)")
        }
        for t in tokens.joined() where t < 0 || Int(t) >= V { throw ModelError("token id \(t) outside the vocabulary 0..<\(V)") }
        let p = position, rows = B * n
        try dev.write(Array(tokens.joined()), to: ids.view(0, rows))
        let xv = x.view(0, rows * C), lnv = ln.view(0, rows * C), attv = att.view(0, rows * C)
        let mv = mean.view(0, rows), rv = rstd.view(0, rows)
        try model.embedding.forward(dev, tokens: ids.view(0, rows), positions: model.positionRows(from: p, count: n),
                                    out: xv, batch: B, time: n)
        let shape = AttentionShape(batch: B, time: n, heads: c.heads, headDim: c.headDim, kvHeads: c.kvHeads, queryOffset: p,
                                   kvRows: capacity)
        let F = c.ffn, hv = hidden.view(0, rows * F), lv = lse.view(0, c.heads * rows)
        for l in 0..<c.layers {   // the residual stream xv is updated in place
            let kAll = kCache[l].all, vAll = vCache[l].all
            let kDst = B == 1 ? kAll.view(p * KC, rows * KC) : kNew.view(0, rows * KC)
            let vDst = B == 1 ? vAll.view(p * KC, rows * KC) : vNew.view(0, rows * KC)
            try model.blockForward(l, Transformer.BlockIO(input: xv, mid: xv, output: xv, norm1: lnv, norm1Mean: mv, norm1Rstd: rv,
                                                          q: q.view(0, rows * C), kNew: kDst, vNew: vDst, kAll: kAll, vAll: vAll,
                                                          att: attv, lse: lv, norm2: lnv, norm2Mean: mv, norm2Rstd: rv, hidden: hv,
                                                          pre: pre?.view(0, rows * F), up: up?.view(0, rows * F)),
                                   rows: rows, shape: shape) {
                guard B > 1 else { return }   // the cache rows of sequence b are (b·capacity + p)…
                for b in 0..<B {
                    dev.copy(kDst.view(b * n * KC, n * KC), to: kAll.view((b * self.capacity + p) * KC, n * KC))
                    dev.copy(vDst.view(b * n * KC, n * KC), to: vAll.view((b * self.capacity + p) * KC, n * KC))
                }
            }
        }
        model.finalNorm.forward(dev, x: xv, out: lnv, mean: mv, rstd: rv, rows: rows, columns: C)
        // Only each sequence's last row needs logits.
        let lastRows: TensorView
        if n == 1 {
            lastRows = lnv.view(0, B * C)
        } else {
            for b in 0..<B { dev.copy(lnv.view((b * n + n - 1) * C, C), to: last.view(b * C, C)) }
            lastRows = last.all
        }
        try model.headForward(dev, x: lastRows, y: logits.all, rows: B)
        position += n
        let all = try dev.read(logits.all)
        return (0..<B).map { Array(all[($0 * V)..<($0 * V + V)]) }
    }

    /// One sequence: `feed([tokens])`'s logits.
    public func feed(_ tokens: [Int32]) throws -> [Float] { try feed([tokens])[0] }

    /// Samples `count` tokens after `prompt` for every sequence (sampler b draws sequence b; crop
    /// to the last `capacity` tokens, docs/SPEC.md §7). `onToken` sees each step's new tokens.
    /// Generation ends early once every sequence has produced a token of `stop` (it is kept).
    public func generate(prompt: [Int32], count: Int, samplers: inout [Sampler], stop: Set<Int32> = [],
                         onToken: ([Int32]) -> Void = { _ in }) throws -> [[Int32]] {
        guard samplers.count == batch else { throw ModelError("\(batch) sequences need \(batch) samplers (got \(samplers.count))") }
        let start = prompt.isEmpty ? [Int32(0)] : prompt
        var out = [[Int32]](repeating: start, count: batch)
        reset()
        var logits = try feed(out.map { Array($0.suffix(capacity)) })
        var stopped = [Bool](repeating: false, count: batch)
        for _ in 0..<count {
            let next = (0..<batch).map { Int32(samplers[$0].sample(logits[$0])) }
            for b in 0..<batch { out[b].append(next[b]); if stop.contains(next[b]) { stopped[b] = true } }
            onToken(next)
            if !stop.isEmpty && !stopped.contains(false) { break }
            if position < capacity {
                logits = try feed(next.map { [$0] })
            } else {
                reset()
                logits = try feed(out.map { Array($0.suffix(capacity)) })
            }
        }
        return out
    }

    /// One sequence (batch 1).
    public func generate(prompt: [Int32], count: Int, sampler: inout Sampler, stop: Set<Int32> = [],
                         onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
        var samplers = [sampler]
        let out = try generate(prompt: prompt, count: count, samplers: &samplers, stop: stop) { onToken($0[0]) }
        sampler = samplers[0]
        return out[0]
    }
}

/// Temperature + top-k sampling from logits (docs/SPEC.md §7), seeded.
public struct Sampler: Sendable {
    public var temperature: Double
    public var topK: Int?
    public var rng: SplitMix64

    public init(temperature: Double = 0.8, topK: Int? = 40, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; rng = SplitMix64(seed: seed)
    }

    /// The sampled index. Temperature ≤ 0 means argmax (the limit temperature → 0).
    public mutating func sample(_ logits: [Float]) -> Int {
        let argmax = logits.indices.max { logits[$0] < logits[$1] }!
        if temperature <= 0 { return argmax }
        var scaled = logits.map { Double($0) / temperature }
        if let k = topK, k >= 1, k < scaled.count {
            let kth = scaled.sorted(by: >)[k - 1]
            for i in scaled.indices where scaled[i] < kth { scaled[i] = -.infinity }
        }
        let mx = scaled.max()!
        let w = scaled.map { $0 == -.infinity ? 0 : exp($0 - mx) }
        var u = rng.uniform() * w.reduce(0, +)
        for i in w.indices {
            u -= w[i]
            if u < 0 && w[i] > 0 { return i }
        }
        return argmax
    }
}

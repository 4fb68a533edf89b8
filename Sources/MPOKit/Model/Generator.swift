// Generator: autoregressive inference with a KV cache (SPEC §7), plus the sampler.
//
// `feed` runs only the new tokens through the model: their keys and values are appended to
// per-layer caches and their queries attend to everything cached (attentionForward with a
// query offset). The logits equal the full forward's for the same prefix (tested). Positions are
// absolute (fixed sinusoids), so once the context window (256) is full and the crop slides, every
// cached activation changes: `generate` then re-runs the cropped window, exactly as the full
// forward would.

import Foundation

public final class Generator {
    public let model: PicoGPT
    public let capacity: Int
    public private(set) var position = 0
    private let kCache: [DeviceBuffer], vCache: [DeviceBuffer]
    private let ids: DeviceBuffer
    private let x, ln, q, att, lse, hidden, mean, rstd, logits: DeviceBuffer

    public init(model: PicoGPT) throws {
        self.model = model
        let c = model.config, dev = model.device, T = c.context, C = c.channels
        capacity = T
        kCache = try (0..<c.layers).map { try dev.makeBuffer(count: T * C, label: "k cache \($0)") }
        vCache = try (0..<c.layers).map { try dev.makeBuffer(count: T * C, label: "v cache \($0)") }
        ids = try dev.makeBuffer(count: T, label: "generator ids")
        x = try dev.makeBuffer(count: T * C, label: "gen x"); ln = try dev.makeBuffer(count: T * C, label: "gen ln")
        q = try dev.makeBuffer(count: T * C, label: "gen q"); att = try dev.makeBuffer(count: T * C, label: "gen att")
        lse = try dev.makeBuffer(count: c.heads * T, label: "gen lse")
        hidden = try dev.makeBuffer(count: T * c.ffn, label: "gen hidden")
        mean = try dev.makeBuffer(count: T, label: "gen mean"); rstd = try dev.makeBuffer(count: T, label: "gen rstd")
        logits = try dev.makeBuffer(count: T * c.vocabularySize, label: "gen logits")
    }

    /// Forgets the cache.
    public func reset() { position = 0 }

    /// Runs `tokens` at positions position..<position+n through the model, appending to the
    /// cache; returns the logits (V) of the last token.
    public func feed(_ tokens: [Int32]) throws -> [Float] {
        let c = model.config, dev = model.device, n = tokens.count, C = c.channels, V = c.vocabularySize
        guard n >= 1, position + n <= capacity else {
            throw ModelError("cannot feed \(n) tokens at position \(position): the context holds \(capacity)")
        }
        for t in tokens where t < 0 || Int(t) >= V { throw ModelError("token id \(t) outside the vocabulary 0..<\(V)") }
        let p = position, rows = n * C
        try dev.write(tokens, to: ids.view(0, n))
        let xv = x.view(0, rows), lnv = ln.view(0, rows), attv = att.view(0, rows)
        let mv = mean.view(0, n), rv = rstd.view(0, n)
        dev.embeddingForward(tokens: ids.view(0, n), table: try model.embedding.table(dev),
                             positions: model.positions.view(p * C, n * C), out: xv, batch: 1, time: n, channels: C)
        let shape = AttentionShape(batch: 1, time: n, heads: c.heads, headDim: c.headDim, queryOffset: p)
        let hv = hidden.view(0, n * c.ffn), lv = lse.view(0, c.heads * n)
        for l in 0..<c.layers {   // the residual stream xv is updated in place
            let kNew = kCache[l].view(p * C, rows), vNew = vCache[l].view(p * C, rows)
            try model.blockForward(l, PicoGPT.BlockIO(input: xv, mid: xv, output: xv, ln1: lnv, ln1Mean: mv, ln1Rstd: rv,
                                                  q: q.view(0, rows), kNew: kNew, vNew: vNew,
                                                  kAll: kCache[l].view(0, (p + n) * C), vAll: vCache[l].view(0, (p + n) * C),
                                                  att: attv, lse: lv, ln2: lnv, ln2Mean: mv, ln2Rstd: rv, hidden: hv),
                               rows: n, shape: shape)
        }
        dev.layerNormForward(xv, weight: model.param("ln_f.weight"), bias: model.param("ln_f.bias"),
                             out: lnv, mean: mv, rstd: rv, rows: n, columns: C)
        // Only the last row's logits are needed.
        try model.linears["lm_head"]!.forward(dev, x: lnv.view((n - 1) * C, C), y: logits.view(0, V), rows: 1)
        position += n
        return try dev.read(logits.view(0, V))
    }

    /// Samples `count` tokens after `prompt` (crop to the last `capacity` tokens, SPEC §7).
    /// `onToken` sees each new token as it is produced.
    public func generate(prompt: [Int32], count: Int, sampler: inout Sampler,
                         onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
        var out = prompt.isEmpty ? [Int32(0)] : prompt
        reset()
        var logits = try feed(Array(out.suffix(capacity)))
        for _ in 0..<count {
            let next = Int32(sampler.sample(logits))
            out.append(next)
            onToken(next)
            if position < capacity {
                logits = try feed([next])
            } else {
                reset()
                logits = try feed(Array(out.suffix(capacity)))
            }
        }
        return out
    }
}

/// Temperature + top-k sampling from logits (SPEC §7), seeded.
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

// The core gauge (train --balance-cores): rebalancing a tensor train's cores to one RMS per layer
// changes no weight and no loss, leaves every core of a layer at the geometric mean of their RMS,
// balances a compressed embedding (per token for the tensor train), and train applies it to an
// MPO --init (recorded in the run) and refuses it for a dense model.

import Foundation
import Testing
import TensorTrain
import TestSupport
@testable import MPOKit

@Suite("Core gauge")
struct CoreGaugeTests {
    static func rms(_ c: [Float]) -> Double { (c.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(c.count)).squareRoot() }

    @Test("the balancing factors multiply to 1 and give every core the geometric-mean RMS")
    func factors() throws {
        let rms = [0.015, 0.5, 2.0]
        let f = try #require(CoreGauge.balancingFactors(rms: rms))
        #expect(abs(f.reduce(1, *) - 1) < 1e-12)
        let target = pow(0.015 * 0.5 * 2.0, 1.0 / 3)
        for (r, c) in zip(rms, f) { #expect(abs(r * c - target) < 1e-12) }
        #expect(CoreGauge.balancingFactors(rms: [0.3]) == nil)        // one core: no gauge
        #expect(CoreGauge.balancingFactors(rms: [0.3, 0]) == nil)     // a zero core takes no scale
    }

    @Test("balancing an MPO model thrown out of balance changes no weight and no loss", arguments: [2, 3])
    func sameModel(sites: Int) throws {
        let dense = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        var fs: [String: MPOFactorization] = [:]
        for l in dense.config.linearLayers { fs[l.name] = MPOFactorization.cheapest(out: l.out, in: l.in, chi: 4, minSites: sites, maxSites: sites) }
        let (m, _) = try Compression.compress(dense, chi: 4, factorizations: fs)
        // Put the scale unevenly: core 0 ×16, the last ÷16, the middle ones ×1 (the same weights).
        var chains: [String: [String]] = [:]
        for spec in m.layout.specs { if case .core(let l, _) = spec.role { chains[l.name, default: []].append(spec.name) } }
        #expect(chains.count == dense.config.linearLayers.count && chains.values.allSatisfy { $0.count == sites })
        for names in chains.values {
            try m.setParameter(names[0], try m.parameter(names[0]).map { $0 * 16 })
            try m.setParameter(names[names.count - 1], try m.parameter(names[names.count - 1]).map { $0 / 16 })
        }
        var rng = SplitMix64(seed: 11)
        let T = 12, V = UInt64(m.config.vocabularySize)
        let inputs = (0..<(2 * T)).map { _ in Int32(rng.next() % V) }, targets = (0..<(2 * T)).map { _ in Int32(rng.next() % V) }
        let before = try m.forward(tokens: inputs, targets: targets, batch: 2, time: T, needsGradients: false).loss
        let weightsBefore = try Compression.denseWeights(m)
        let report = try CoreGauge.balance(m)
        #expect(report.layers == chains.count)
        #expect(report.maxSpread > 100, "spread \(report.maxSpread)")   // ≥ 256 / (natural spread)
        let after = try m.forward(tokens: inputs, targets: targets, batch: 2, time: T, needsGradients: false).loss
        #expect(abs(after - before) < 1e-5 * abs(before), "loss \(before) → \(after)")
        let weightsAfter = try Compression.denseWeights(m)
        for (name, w) in weightsBefore {
            let scale = w.map { abs(Double($0)) }.max()!
            let diff = zip(w, weightsAfter[name]!).map { abs(Double($0) - Double($1)) }.max()!
            #expect(diff < 1e-5 * scale, "\(name): W moved by \(diff) (max |W| \(scale))")
        }
        for (layer, names) in chains {
            let r = try names.map { Self.rms(try m.parameter($0)) }
            #expect(r.max()! / r.min()! < 1 + 1e-5, "\(layer): core RMS \(r)")
        }
        // Balanced already: a second balance reports no spread and changes nothing.
        let again = try CoreGauge.balance(m)
        #expect(again.maxSpread < 1 + 1e-5)
    }

    @Test("a compressed embedding is balanced too: the per-token tensor train token by token, the table MPO as one chain",
          arguments: ["tt", "mpo"])
    func embedding(kind: String) throws {
        let dense = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        let V = dense.config.vocabularySize, D = dense.config.channels
        let target: EmbeddingKind = kind == "tt" ? .tensorTrain(rank: 4, channels: D) : .mpo(chi: 8, vocabulary: V, channels: D)
        let (m, _) = try Compression.compressEmbedding(dense, to: target)
        let names = m.layout.specs.compactMap { s -> String? in if case .embeddingCore = s.role { return s.name } else { return nil } }
        #expect(names.count >= 2)
        // Unbalance: token v's slice of core 0 × (1 + v % 7)·4, of the last core ÷ the same (for the
        // table MPO, whose cores have no token axis, one factor 64 for the whole core).
        let first = try m.parameter(names[0]), last = try m.parameter(names[names.count - 1])
        let perToken = kind == "tt"
        func factor(_ i: Int, _ n: Int) -> Float { perToken ? Float(1 + (i / (n / V)) % 7) * 4 : 64 }
        try m.setParameter(names[0], first.enumerated().map { $1 * factor($0, first.count) })
        try m.setParameter(names[names.count - 1], last.enumerated().map { $1 / factor($0, last.count) })
        let tableBefore = try Compression.embeddingTable(m)
        var rng = SplitMix64(seed: 5)
        let T = 10, inputs = (0..<(2 * T)).map { _ in Int32(rng.next() % UInt64(V)) }, targets = (0..<(2 * T)).map { _ in Int32(rng.next() % UInt64(V)) }
        let before = try m.forward(tokens: inputs, targets: targets, batch: 2, time: T, needsGradients: false).loss
        let report = try CoreGauge.balance(m)
        #expect(report.embedding && report.layers == 1)
        #expect(report.maxSpread > 16, "spread \(report.maxSpread)")
        let after = try m.forward(tokens: inputs, targets: targets, batch: 2, time: T, needsGradients: false).loss
        #expect(abs(after - before) < 1e-5 * abs(before), "loss \(before) → \(after)")
        let tableAfter = try Compression.embeddingTable(m)
        let scale = tableBefore.map { abs(Double($0)) }.max()!
        let diff = zip(tableBefore, tableAfter).map { abs(Double($0) - Double($1)) }.max()!
        #expect(diff < 1e-5 * scale, "table moved by \(diff) (max |E| \(scale))")
        // Every gauge now has one RMS: each token's slices (tt), or the whole cores (mpo).
        let cores = try names.map { try m.parameter($0) }
        for v in 0..<(perToken ? V : 1) {
            let r = cores.map { c -> Double in
                let n = perToken ? c.count / V : c.count
                return Self.rms(Array(c[(v * n)..<((v + 1) * n)]))
            }
            #expect(r.max()! / r.min()! < 1 + 1e-4, "token \(v): slice RMS \(r)")
        }
    }

    @Test("train --balance-cores rebalances an MPO model before the first step and records it; a dense model is refused")
    func trainFlag() throws {
        let dir = Tiny.tempDir()
        let text = dir.appendingPathComponent("tiny.txt")
        try Data(Tiny.text.utf8).write(to: text)
        let shape = ["--data", text.path, "--layers", "1", "--d-model", "16", "--heads", "2", "--d-ff", "32", "--context", "16",
                     "--steps", "1", "--eval-batches", "1", "--batch", "2"]
        let out = dir.appendingPathComponent("mpo")
        var (code, stdout, err) = try CLI.run(["train", "--model", "mpo", "--chi", "2", "--balance-cores", "--out", out.path] + shape)
        #expect(code == 0, "\(err)")
        #expect(stdout.contains("cores rescaled to one RMS per layer"), "\(stdout)")
        let metrics = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        #expect(metrics.split(separator: "\n").first?.contains("\"balanced_cores\":true") == true, "\(metrics.prefix(400))")
        // Dense linears with a TT embedding: the embedding's cores are balanced.
        (code, stdout, err) = try CLI.run(["train", "--embedding", "tt:2", "--balance-cores", "--out", dir.appendingPathComponent("tt").path] + shape)
        #expect(code == 0, "\(err)")
        #expect(stdout.contains("1 MPO layer's cores rescaled to one RMS per layer (the embedding's among them)"), "\(stdout)")
        (code, _, err) = try CLI.run(["train", "--balance-cores", "--out", dir.appendingPathComponent("dense").path] + shape)
        #expect(code == 64 && err.contains("--balance-cores") && err.contains("dense"), "exit \(code): \(err)")
    }
}

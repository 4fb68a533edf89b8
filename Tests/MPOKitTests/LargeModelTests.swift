// Models larger than one device buffer: the activation arena is split into segments of at most
// `maxBufferElements` (2³¹ − 1 on OpenCL, whose kernels take 32-bit offsets). Checked on the
// size arithmetic for a GPT-2-small shape at B = 32, T = 1024 (3.7·10⁹ activation elements,
// never allocated here), and by training a small model with a tiny segment limit on the CPU.

import Foundation
import Testing
@testable import MPOKit

@Suite("Models larger than one buffer")
struct LargeModelTests {
    static let gpt2 = ModelConfig(vocabularySize: 65, channels: 768, heads: 12, layers: 12, context: 1024, ffn: 3072)

    @Test("GPT-2-small at B=32, T=1024 splits into segments under 2^31 elements, none overlapping", arguments: [false, true])
    func gpt2Plan(inference: Bool) throws {
        let limit = Int(Int32.max) - 1
        let plan = Activations.plan(config: Self.gpt2, batch: 32, time: 1024, inference: inference, segmentLimit: limit)
        try plan.check("gpt2")
        let N = 32 * 1024, C = 768, F = 3072
        // Training keeps 8 (N, C) tensors, one (N, F) and small ones per block: 12 × 302 M elements.
        let perBlock = 8 * N * C + N * F
        #expect(plan.count >= (inference ? 1 : 12) * perBlock)
        if !inference { #expect(plan.count > 1 << 31 && plan.segments.count >= 2) }
        #expect(plan.segments.allSatisfy { $0 <= limit })
        for (s, size) in plan.segments.enumerated() {
            let inSegment = plan.specs.filter { $0.segment == s }.sorted { $0.offset < $1.offset }
            #expect(inSegment.allSatisfy { $0.offset + $0.count <= size })
            for (a, b) in zip(inSegment, inSegment.dropFirst()) { #expect(a.offset + a.count <= b.offset, "\(a.name) overlaps \(b.name)") }
        }
        #expect(plan.specs.count == Set(plan.specs.map(\.name)).count)
        #expect(plan.specs.first { $0.name == "blocks.\(inference ? 0 : 11).hidden" }?.count == N * F)
    }

    @Test("a tensor larger than one buffer is refused with its name and size")
    func singleTensorTooLarge() throws {
        let plan = Activations.plan(config: Self.gpt2, batch: 32, time: 1024, inference: false, segmentLimit: 50_000_000)
        #expect { try plan.check("B=32 T=1024") } throws: { e in
            let m = "\(e)"
            return m.contains("blocks.0.hidden") && m.contains("--batch")
        }
    }

    @Test("training with the activations in many small segments is bit-identical to one arena")
    func segmentedTraining() throws {
        let data = try Tiny.data()
        var results: [[Float]] = []
        var losses: [[Double]] = []
        for limit in [Int.max, 5_000] {
            let device = CPUDevice(maxBufferElements: limit)
            let m = try Transformer(config: Tiny.config(vocabulary: data.vocabularySize, chi: 4), device: device)
            try m.initialize(seed: 2)
            let opt = try AdamW(model: m)
            var rng = SplitMix64(seed: 3), l: [Double] = []
            for _ in 0..<3 {
                let (tok, tgt) = TextDataset.sample(data.train, batch: 4, time: 16, rng: &rng)
                l.append(try opt.trainStep(tokens: tok, targets: tgt, batch: 4, time: 16, learningRate: 3e-3).loss)
            }
            let a = try m.activations(batch: 4, time: 16)
            #expect(limit == .max ? a.arena.count == 1 : a.arena.count > 10, "\(a.arena.count) segments")
            results.append(try device.read(m.params.all))
            losses.append(l)
        }
        #expect(losses[0] == losses[1])
        #expect(results[0].map(\.bitPattern) == results[1].map(\.bitPattern))
    }
}

// A checkpoint that does not fit the model is an error naming the tensor, never a crash:
// missing or extra parameters, wrong shapes, non-finite weights, bad buffers, bad metadata.

import Foundation
import SafeTensors
import Testing
@testable import MPOKit

@Suite("Checkpoint rejection")
struct CheckpointRejectionTests {
    /// The dense reference checkpoint with `edit` applied to its tensors, written to a temp file.
    static func variant(_ edit: (inout [(String, [Int], [Float])], inout [String: String]) -> Void) throws -> URL {
        let f = try Reference.file("dense_seed2024.safetensors")
        var tensors = try f.names.filter { !$0.hasSuffix("causal_mask") }.map { ($0, f.info($0)!.shape, try f.floats($0)) }
        var meta: [String: String] = [:]
        edit(&tensors, &meta)
        var w = SafeTensorsWriter(metadata: meta)
        for (n, s, v) in tensors { try w.add(n, shape: s, floats: v) }
        let url = Tiny.tempDir().appendingPathComponent("edited.safetensors")
        try w.write(to: url)
        return url
    }

    static func message(_ url: URL, hints: ShapeHints = Reference.hints) -> String? {
        do { _ = try ModelCheckpoint.loadModel(url, device: CPUDevice(), hints: hints); return nil } catch { return "\(error)" }
    }

    @Test("the unedited file loads")
    func baseline() throws { #expect(Self.message(try Self.variant { _, _ in }) == nil) }

    @Test("each defect is named", arguments: [
        ("missing", "blocks.2.ffn.W1.bias"), ("extra", "blocks.0.attn.W_x.weight"), ("shape", "blocks.1.ln2.weight"),
        ("nan", "blocks.3.attn.W_o.weight"), ("inf", "lm_head.weight"), ("pos_enc", "pos_enc"), ("config", "config"),
    ])
    func defect(kind: String, tensor: String) throws {
        let url = try Self.variant { t, meta in
            switch kind {
            case "missing": t.removeAll { $0.0 == tensor }
            case "extra": t.append((tensor, [2, 2], [1, 2, 3, 4]))
            case "shape": if let i = t.firstIndex(where: { $0.0 == tensor }) { t[i] = (tensor, [127], Array(t[i].2.prefix(127))) }
            case "nan": if let i = t.firstIndex(where: { $0.0 == tensor }) { t[i].2[77] = .nan }
            case "inf": if let i = t.firstIndex(where: { $0.0 == tensor }) { t[i].2[5] = -.infinity }
            case "pos_enc": if let i = t.firstIndex(where: { $0.0 == tensor }) { t[i].2[300] += 0.5 }
            default: meta["config"] = "{\"vocabularySize\": \"many\"}"
            }
        }
        let msg = try #require(Self.message(url), "\(kind) was accepted")
        #expect(msg.contains(tensor), "\(kind): \(msg)")
    }

    @Test("a state_dict without config metadata needs --heads (never a guess), and --context without pos_enc")
    func missingShape() throws {
        let plain = try Self.variant { _, _ in }
        let noHeads = try #require(Self.message(plain, hints: ShapeHints()))
        #expect(noHeads.contains("--heads") && !noHeads.contains("--context"), "\(noHeads)")
        // An 8-head reading of the same weights is the user's call, and loads.
        let eight = try ModelCheckpoint.loadModel(plain, device: CPUDevice(), hints: ShapeHints(heads: 8))
        #expect(eight.config.heads == 8 && eight.config.context == 256)
        let noPE = try Self.variant { t, _ in t.removeAll { $0.0 == "pos_enc" } }
        let both = try #require(Self.message(noPE, hints: ShapeHints()))
        #expect(both.contains("--heads") && both.contains("--context"), "\(both)")
        #expect(Self.message(noPE, hints: ShapeHints(heads: 4, context: 256)) == nil)
        // With our metadata the hints must agree with it.
        let ours = Tiny.tempDir().appendingPathComponent("ours.safetensors")
        try ModelCheckpoint.save(try Reference.model("dense_seed2024.safetensors"), to: ours)
        #expect(Self.message(ours, hints: ShapeHints()) == nil)
        let contradiction = try #require(Self.message(ours, hints: ShapeHints(heads: 8)))
        #expect(contradiction.contains("--heads 8") && contradiction.contains("4 heads"), "\(contradiction)")
    }
}

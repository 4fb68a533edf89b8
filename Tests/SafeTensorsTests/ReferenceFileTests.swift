// ReferenceFileTests.swift — reads the real PyTorch-written dense_seed2024.safetensors (61 tensors:
// float32 weights, the pos_enc buffer and bool causal masks) and checks names, shapes, dtypes,
// contiguity, and known values (sinusoidal encoding, lower-triangular masks), then re-writes the
// F32 tensors and reads them back. It does not check model numerics; that is MPOKit's job.

import Foundation
import Testing
@testable import SafeTensors

@Suite struct ReferenceFileTests {
    static let url = referenceURL("dense_seed2024.safetensors")

    @Test func denseCheckpointStructure() throws {
        let f = try SafeTensorsFile(contentsOf: Self.url)
        #expect(f.tensors.count == 61)
        #expect(f.metadata.isEmpty)
        let tok = try #require(f.info("tok_emb.weight"))
        #expect(tok.shape == [65, 128] && tok.dtype == .F32)
        let pos = try #require(f.info("pos_enc"))
        #expect(pos.shape == [256, 128] && pos.dtype == .F32)
        for i in 0..<4 {
            let mask = try #require(f.info("blocks.\(i).attn.causal_mask"))
            #expect(mask.shape == [1, 1, 256, 256] && mask.dtype == .BOOL)
        }
        #expect(f.info("blocks.0.attn.W_q.weight")?.shape == [128, 128])
        // Sorted by offset and contiguous from 0.
        var end = 0
        for t in f.tensors {
            #expect(t.byteRange.lowerBound == end)
            end = t.byteRange.upperBound
        }
        let floatCount = f.tensors.filter { $0.dtype == .F32 }.reduce(0) { $0 + $1.elementCount }
        #expect(floatCount == 808_448 + 256 * 128)
        #expect(Set(f.names).count == 61)
    }

    @Test func positionalEncodingValues() throws {
        let f = try SafeTensorsFile(contentsOf: Self.url)
        let pos = try f.floats("pos_enc")
        #expect(pos.count == 256 * 128)
        #expect(pos[0 * 128 + 0] == 0)        // sin(0)
        #expect(pos[0 * 128 + 1] == 1)        // cos(0)
        #expect(abs(Double(pos[1 * 128 + 0]) - sin(1.0)) < 1e-6)
        #expect(abs(Double(pos[1 * 128 + 1]) - cos(1.0)) < 1e-6)
        let asDoubles = try f.doubles("pos_enc")
        #expect(asDoubles[128] == Double(pos[128]))
    }

    @Test func causalMasksAreLowerTriangular() throws {
        let f = try SafeTensorsFile(contentsOf: Self.url)
        for b in 0..<4 {
            let mask = try f.bools("blocks.\(b).attn.causal_mask")
            #expect(mask.count == 256 * 256)
            var wrong = 0
            for i in 0..<256 {
                for j in 0..<256 where mask[i * 256 + j] != (j <= i) { wrong += 1 }
            }
            #expect(wrong == 0, "block \(b): \(wrong) mask entries are not lower-triangular")
            let ints = try f.int32s("blocks.\(b).attn.causal_mask")
            let ones: Int32 = ints.reduce(0, +)
            #expect(ones == 32_896)  // 256 * 257 / 2
        }
    }

    @Test func tokenEmbeddingFirstValuesAndRewrite() throws {
        let f = try SafeTensorsFile(contentsOf: Self.url)
        let tok = try f.floats("tok_emb.weight")
        #expect(tok.count == 65 * 128)
        #expect(tok[0] == Float(-0.0019042491912841797))
        #expect(abs(tok[1] - -0.024641763418912888) < 1e-9)
        // Re-serialise every F32 tensor and read it back bit-exactly.
        var w = SafeTensorsWriter(metadata: ["source": "dense_seed2024"])
        for t in f.tensors where t.dtype == .F32 {
            try w.add(t.name, shape: t.shape, floats: try f.floats(t.name))
        }
        let again = try SafeTensorsFile(data: w.serialized())
        #expect(again.tensors.count == 57)
        for t in again.tensors {
            #expect(try again.floats(t.name) == (try f.floats(t.name)))
        }
    }
}

// The GGUF reader against the gguf Python package (fixtures made by
// Tests/Resources/gguf/make_fixtures.py): every metadata value type, and every supported tensor type
// dequantised bit for bit as `gguf.quants.dequantize` does; hostile files — truncated, counts and
// lengths past the end, offsets out of range or misaligned, overlapping tensors, unknown types,
// huge dimensions, random corruption — are refused with a GGUFError, never a crash.

import Foundation
import SafeTensors
import SeededRandom
import Testing
@testable import GGUF

enum Fixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Resources/gguf")
    static var gguf: URL { directory.appendingPathComponent("quants.gguf") }
}

/// A GGUF file built byte by byte (for the hostile cases).
struct Builder {
    var bytes: [UInt8] = []
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }

    /// A version-3 file with the given tensors (name, ne, type, offset) and `data` bytes after the
    /// 32-aligned header.
    static func file(tensors: [(String, [UInt64], UInt32, UInt64)], data: Int, version: UInt32 = 3,
                     metadata: (inout Builder) -> Int = { _ in 0 }) -> Data {
        var b = Builder()
        b.bytes += Array("GGUF".utf8); b.u32(version); b.u64(UInt64(tensors.count))
        var m = Builder()
        let n = metadata(&m)
        b.u64(UInt64(n)); b.bytes += m.bytes
        for (name, ne, type, offset) in tensors {
            b.string(name); b.u32(UInt32(ne.count)); for d in ne { b.u64(d) }; b.u32(type); b.u64(offset)
        }
        while b.bytes.count % 32 != 0 { b.bytes.append(0) }
        b.bytes += [UInt8](repeating: 0x3C, count: data)
        return Data(b.bytes)
    }
}

@Suite("GGUF reader")
struct GGUFTests {
    @Test("every metadata value type reads as the gguf package wrote it")
    func metadata() throws {
        let f = try GGUFFile(contentsOf: Fixture.gguf)
        #expect(f.version == 3 && f.alignment == 64 && f.dataOffset % 64 == 0)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixture.directory.appendingPathComponent("metadata.json"))) as! [String: Any]
        #expect(f.metadata["test.u8"] == .uint8(200) && f.metadata["test.i8"] == .int8(-100))
        #expect(f.metadata["test.u16"] == .uint16(60000) && f.metadata["test.i16"] == .int16(-30000))
        #expect(f.metadata["test.u32"] == .uint32(4_000_000_000) && f.metadata["test.i32"] == .int32(-2_000_000_000))
        #expect(f.metadata["test.f32"] == .float32(0.25) && f.metadata["test.bool"] == .bool(true))
        #expect(f.string("test.string") == json["test.string"] as? String)
        #expect(f.metadata["test.u64"] == .uint64(1 << 40 + 1) && f.metadata["test.i64"] == .int64(-(1 << 40)))
        #expect(f.metadata["test.f64"] == .float64(1e-300))
        #expect(try f.strings("test.strings") == json["test.strings"] as! [String])
        #expect(try f.ints("test.ints") == [1, -2, 3])
        #expect(f.metadata["test.nested"] == .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])])
            || f.metadata["test.nested"] == .array([.array([.int64(1), .int64(2)]), .array([.int64(3)])]))
        #expect(f.string("general.architecture") == "llama")
        #expect { try f.strings("test.ints") } throws: { "\($0)".contains("not strings") }
    }

    @Test("every supported tensor type dequantises bit for bit as gguf.quants.dequantize", arguments: GGMLType.supported)
    func dequantise(_ type: GGMLType) throws {
        let f = try GGUFFile(contentsOf: Fixture.gguf)
        let expected = try SafeTensorsFile(contentsOf: Fixture.directory.appendingPathComponent("quants.expected.safetensors"))
        let name = "t.\(type.name)"
        let info = try #require(f.info(name))
        #expect(info.type == type && info.shape == [2, 512])
        let ours = try f.floats(name), theirs = try expected.floats(name)
        #expect(ours.count == theirs.count)
        let differing = zip(ours, theirs).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(differing) of \(ours.count) values differ")
        #expect(ours.contains { $0 != 0 })
    }

    @Test("a type the reader does not dequantise is refused by name")
    func unsupportedType() throws {
        let iq = Builder.file(tensors: [("w", [256], GGMLType.iq2_xxs.rawValue, 0)], data: 66)
        let f = try GGUFFile(data: iq)
        #expect { try f.floats("w") } throws: { "\($0)".contains("IQ2_XXS") && "\($0)".contains("not supported") }
        #expect { try GGUFFile(data: Builder.file(tensors: [("w", [4], 31, 0)], data: 16)) } throws: { "\($0)".contains("ggml type 31") }
    }

    @Test("hostile headers are refused with a message naming the problem")
    func hostile() throws {
        func refused(_ d: Data, _ text: String) {
            #expect { try GGUFFile(data: d) } throws: { e in
                guard let g = e as? GGUFError else { return false }
                return g.message.contains(text)
            }
        }
        refused(Data("GGML".utf8) + Data(count: 40), "not a GGUF file")
        refused(Builder.file(tensors: [], data: 0, version: 1), "version 1")
        refused(Data(Builder.file(tensors: [("w", [32], 0, 0)], data: 128).prefix(30)), "corrupt")
        refused(Builder.file(tensors: [("w", [32], 0, 0)], data: 100), "runs past the end")            // 128 bytes needed
        refused(Builder.file(tensors: [("w", [8], 0, 16)], data: 64), "not a multiple of the alignment")
        refused(Builder.file(tensors: [("a", [16], 0, 0), ("b", [16], 0, 32)], data: 128), "overlap")
        refused(Builder.file(tensors: [("a", [4], 0, 0), ("a", [4], 0, 32)], data: 64), "twice")
        refused(Builder.file(tensors: [("w", [1 << 30, 1 << 30], 0, 0)], data: 64), "too many elements")
        refused(Builder.file(tensors: [("w", [0], 0, 0)], data: 0), "dimension of 0")
        refused(Builder.file(tensors: [("w", [33], 2, 0)], data: 64), "not a multiple of its block")     // Q4_0 rows of 33
        refused(Builder.file(tensors: [("w", [4], 0, UInt64.max)], data: 16), "offset")
        // A tensor count, a metadata count and a string length no file could hold.
        var b = Builder(); b.bytes += Array("GGUF".utf8); b.u32(3); b.u64(1 << 60); b.u64(0); b.bytes += [UInt8](repeating: 0, count: 64)
        refused(Data(b.bytes), "tensors")
        refused(Builder.file(tensors: [], data: 0) { m in m.u64(1 << 50); return 1 }, "string bytes")
        refused(Builder.file(tensors: [], data: 0) { m in m.string("k"); m.u32(9); m.u32(4); m.u64(1 << 50); return 1 }, "elements of 'k'")
        refused(Builder.file(tensors: [], data: 0) { m in m.string("k"); m.u32(13); return 1 }, "unknown value type 13")
        refused(Builder.file(tensors: [], data: 0) { m in m.string("general.alignment"); m.u32(4); m.u32(48); return 1 }, "power of two")
    }

    @Test("truncated at every length and randomly corrupted files never crash")
    func fuzz() throws {
        let good = try Data(contentsOf: Fixture.gguf)
        var outcomes = (ok: 0, refused: 0)
        func attempt(_ d: Data) {
            do {
                let f = try GGUFFile(data: d)
                for t in f.tensors where GGMLType.supported.contains(t.type) { _ = try f.floats(t.name) }
                outcomes.ok += 1
            } catch is GGUFError { outcomes.refused += 1 } catch { Issue.record("not a GGUFError: \(error)") }
        }
        for n in stride(from: 0, to: good.count, by: 97) { attempt(good.prefix(n)) }
        var rng = SplitMix64(seed: 0x66_75_7A_7A)
        for _ in 0..<400 {
            var d = [UInt8](good)
            for _ in 0..<(1 + rng.below(4)) {   // flips in the header, where they matter
                let at = rng.below(min(d.count, 2048))
                d[at] = rng.below(3) == 0 ? 0xFF : UInt8(truncatingIfNeeded: rng.next())
            }
            attempt(Data(d))
        }
        #expect(outcomes.refused > 100 && outcomes.ok > 0, "\(outcomes)")
    }
}

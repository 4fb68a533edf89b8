// 16-bit weights for inference (--core-dtype): a matrix stored as f16 or bf16, two values per
// 4-byte element of a device buffer, read and widened to f32 by the ops that use it (`gemmHalf`,
// `embeddingForwardHalf`). Decoding reads every weight once per token, so halving the bytes
// halves the memory stream that bounds it; the arithmetic and everything else stay f32.

import CKernels

/// How an inference model stores its weight matrices (dense weights, two-factor cores, the
/// token embedding); computed in f32 either way.
public enum WeightDType: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16
    /// Bytes per stored weight.
    public var bytes: Int { self == .f32 ? 4 : 2 }
}

/// A row-major (rows, columns) matrix of 16-bit floats packed two per element of `storage`
/// (value i is the low half of element i/2 when i is even, little-endian).
public struct HalfMatrix: Sendable {
    public let name: String
    public let storage: TensorView
    public let rows: Int, columns: Int
    public let format: WeightDType

    public init(name: String, storage: TensorView, rows: Int, columns: Int, format: WeightDType) {
        precondition(format != .f32, "a HalfMatrix holds f16 or bf16")
        precondition(storage.count >= Self.elements(rows * columns), "\(name): \(storage.count) elements cannot hold \(rows)×\(columns) halves")
        self.name = name; self.storage = storage; self.rows = rows; self.columns = columns; self.format = format
    }

    /// 4-byte elements that hold `count` halves.
    public static func elements(_ count: Int) -> Int { (count + 1) / 2 }

    public var isBF16: Int32 { format == .bf16 ? 1 : 0 }

    /// `values` rounded to `format` (to nearest even) and packed, as the buffer's elements.
    public static func pack(_ values: UnsafeBufferPointer<Float>, format: WeightDType) -> [Int32] {
        var out = [Int32](repeating: 0, count: elements(values.count))
        out.withUnsafeMutableBytes { raw in
            mpo_f32_to_half(values.baseAddress, raw.baseAddress!.assumingMemoryBound(to: UInt16.self), values.count, format == .bf16 ? 1 : 0)
        }
        return out
    }

    /// The packed halves widened back to f32 (`count` values).
    public static func unpack(_ packed: [Float], count: Int, format: WeightDType) -> [Float] {
        precondition(packed.count >= elements(count))
        var out = [Float](repeating: 0, count: count)
        packed.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { o in
                mpo_half_to_f32(raw.baseAddress!.assumingMemoryBound(to: UInt16.self), o.baseAddress, count, format == .bf16 ? 1 : 0)
            }
        }
        return out
    }

    /// The stored values widened to f32 (inspection, export).
    public func read(_ device: any ComputeDevice) throws -> [Float] {
        Self.unpack(try device.read(storage), count: rows * columns, format: format)
    }

    /// Stores `values` (rounded) from value index `at` on; the neighbours sharing the first and
    /// last 4-byte element keep their values.
    public func write(_ device: any ComputeDevice, _ values: [Float], at: Int = 0) throws {
        precondition(at >= 0 && at + values.count <= rows * columns, "\(name): write of \(values.count) at \(at)")
        guard !values.isEmpty else { return }
        var v = values, start = at
        if start % 2 == 1 {
            v.insert(Self.unpack(try device.read(storage.view(start / 2, 1)), count: 1, format: format)[0], at: 0)
            start -= 1
        }
        if v.count % 2 == 1 && start + v.count < rows * columns {
            v.append(Self.unpack(try device.read(storage.view((start + v.count) / 2, 1)), count: 2, format: format)[1])
        }
        let packed = v.withUnsafeBufferPointer { Self.pack($0, format: format) }
        try device.write(packed, to: storage.view(start / 2, packed.count))
    }
}

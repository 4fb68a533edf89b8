// Weights stored in fewer bits for inference (--core-dtype): a matrix held as f16 or bf16 (two
// values per 4-byte element of a device buffer, widened to f32 by the ops that read them) or as
// q8 (blocks of 32 int8 with an f32 scale, CKernels q8.c; the products round the activations to
// 8 bits per block too and sum each block exactly in integers). Decoding reads every weight once
// per token, so fewer bytes per weight is what makes it faster; everything else stays f32.

import CKernels

/// How an inference model stores its weight matrices (dense weights, two-factor cores, the
/// token embedding).
public enum WeightDType: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16, q8
    /// Bytes per stored weight (q8: 32 one-byte values and a 4-byte scale per 32 weights).
    public var bytesPerWeight: Double {
        switch self { case .f32: 4; case .f16, .bf16: 2; case .q8: 1.125 }
    }
}

/// A row-major (rows, columns) matrix in fewer bits, in `storage`:
/// - f16/bf16: the values packed two per 4-byte element (value i is the low half of element i/2
///   when i is even, little-endian);
/// - q8: each row's quants (`paddedColumns` bytes, the padding 0), rows after rows, then one f32
///   scale per block of 32 (rows × paddedColumns/32) from element rows·paddedColumns/4 on — or, for a
///   block of rows of a larger matrix (`rows(_:_:name:)`), its quants and its scales as two views.
public struct PackedMatrix: Sendable {
    public let name: String
    /// f16/bf16: the values; q8: the quants (and, unless `scales` was given, the scales after them).
    public let storage: TensorView
    public let rows: Int, columns: Int
    public let format: WeightDType
    /// q8: the scales, one f32 per block of 32 (rows × paddedColumns/32).
    public let scales: TensorView

    public init(name: String, storage: TensorView, rows: Int, columns: Int, format: WeightDType) {
        precondition(format != .f32, "a PackedMatrix holds f16, bf16 or q8")
        let need = Self.elements(rows: rows, columns: columns, format: format)
        precondition(storage.count >= need, "\(name): \(storage.count) elements cannot hold \(rows)×\(columns) \(format.rawValue) values (\(need))")
        let kp = Self.paddedColumns(columns)
        self.init(name: name, storage: storage, rows: rows, columns: columns, format: format,
                  scales: format == .q8 ? storage.view(rows * kp / 4, rows * kp / Self.q8Block) : storage.view(0, 0))
    }

    private init(name: String, storage: TensorView, rows: Int, columns: Int, format: WeightDType, scales: TensorView) {
        self.name = name; self.storage = storage; self.rows = rows; self.columns = columns; self.format = format; self.scales = scales
    }

    /// Rows r0..<r0+n as a matrix of their own, sharing this one's storage: layers that read the
    /// same input keep their factors stacked in one matrix (one product for all) and each reads
    /// or writes its own block of rows through this. 16 bits: the block must start and end on whole
    /// 4-byte elements (`canSplitRows`).
    public func rows(_ r0: Int, _ n: Int, name: String) -> PackedMatrix {
        precondition(r0 >= 0 && n >= 0 && r0 + n <= rows, "\(self.name): rows \(r0)..<\(r0 + n) of \(rows)")
        switch format {
        case .q8:
            let kp = paddedColumns, nb = kp / Self.q8Block
            return PackedMatrix(name: name, storage: storage.view(r0 * kp / 4, n * kp / 4), rows: n, columns: columns, format: format,
                                scales: scales.view(r0 * nb, n * nb))
        default:
            precondition(Self.canSplitRows(at: r0, columns: columns, format: format)
                         && (r0 + n == rows || Self.canSplitRows(at: r0 + n, columns: columns, format: format)),
                         "\(self.name): a block of 16-bit rows must start and end on whole 4-byte elements")
            return PackedMatrix(name: name, storage: storage.view(r0 * columns / 2, (n * columns + 1) / 2), rows: n, columns: columns,
                                format: format, scales: scales)
        }
    }

    /// Whether a matrix of `columns` in `format` can be cut into blocks of rows at row `r`.
    public static func canSplitRows(at r: Int, columns: Int, format: WeightDType) -> Bool {
        format == .q8 || (r * columns) % 2 == 0
    }

    /// 4-byte buffer elements that hold a (rows, columns) matrix in `format`.
    public static func elements(rows: Int, columns: Int, format: WeightDType) -> Int {
        switch format {
        case .f32: rows * columns
        case .f16, .bf16: (rows * columns + 1) / 2
        case .q8: rows * paddedColumns(columns) / 4 + rows * paddedColumns(columns) / q8Block
        }
    }

    public var isBF16: Int32 { format == .bf16 ? 1 : 0 }
    /// q8: values per block (one scale each).
    public static let q8Block = Int(MPO_Q8_BLOCK)
    /// q8: quants per row of `columns` values (rounded up to whole blocks).
    public static func paddedColumns(_ columns: Int) -> Int { Int(mpo_q8_padded(Int32(columns))) }
    /// q8: quants per row.
    public var paddedColumns: Int { Self.paddedColumns(columns) }

    /// `values` (rows of `columns`) in `format`, as the buffer's elements (q8: quants, then scales).
    public static func pack(_ values: UnsafeBufferPointer<Float>, columns: Int, format: WeightDType) -> [Int32] {
        precondition(columns > 0 && values.count % columns == 0, "\(values.count) values are not rows of \(columns)")
        let rows = values.count / columns
        var out = [Int32](repeating: 0, count: elements(rows: rows, columns: columns, format: format))
        out.withUnsafeMutableBytes { raw in
            switch format {
            case .f32: fatalError("f32 is not packed")
            case .f16, .bf16:
                mpo_f32_to_half(values.baseAddress, raw.baseAddress!.assumingMemoryBound(to: UInt16.self), values.count, format == .bf16 ? 1 : 0)
            case .q8:
                let kp = paddedColumns(columns)
                mpo_quantize_q8_rows(values.baseAddress, Int32(rows), Int32(columns), Int32(columns),
                                     raw.baseAddress!.assumingMemoryBound(to: Int8.self),
                                     (raw.baseAddress! + rows * kp).assumingMemoryBound(to: Float.self))
            }
        }
        return out
    }

    /// Packed elements (as Float bit patterns, what a device read returns) back to `count` f32 values.
    public static func unpack(_ packed: [Float], count: Int, columns: Int, format: WeightDType) -> [Float] {
        precondition(columns > 0 && count % columns == 0 && packed.count >= elements(rows: count / columns, columns: columns, format: format))
        var out = [Float](repeating: 0, count: count)
        packed.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { o in
                switch format {
                case .f32: fatalError("f32 is not packed")
                case .f16, .bf16:
                    mpo_half_to_f32(raw.baseAddress!.assumingMemoryBound(to: UInt16.self), o.baseAddress, count, format == .bf16 ? 1 : 0)
                case .q8:
                    let rows = count / columns, kp = paddedColumns(columns)
                    mpo_dequantize_q8_rows(raw.baseAddress!.assumingMemoryBound(to: Int8.self),
                                           (raw.baseAddress! + rows * kp).assumingMemoryBound(to: Float.self),
                                           Int32(rows), Int32(columns), o.baseAddress, Int32(columns))
                }
            }
        }
        return out
    }

    /// The stored values as f32 (inspection, export).
    public func read(_ device: any ComputeDevice) throws -> [Float] {
        let stored = format == .q8 ? try device.read(storage.view(0, rows * paddedColumns / 4)) + device.read(scales)
                                   : try device.read(storage.view(0, Self.elements(rows: rows, columns: columns, format: format)))
        return Self.unpack(stored, count: rows * columns, columns: columns, format: format)
    }

    /// Stores `values` (rounded to the format) from value index `at` on. 16 bits: any range (the
    /// neighbours sharing its first and last 4-byte element keep their values); q8: whole rows
    /// (a block's scale depends on all of it).
    public func write(_ device: any ComputeDevice, _ values: [Float], at: Int = 0) throws {
        precondition(at >= 0 && at + values.count <= rows * columns, "\(name): write of \(values.count) at \(at)")
        guard !values.isEmpty else { return }
        if format == .q8 {
            guard at % columns == 0 && values.count % columns == 0 else {
                throw ModelError("\(name) is stored in q8 (blocks of 32 along its rows of \(columns)): write whole rows (got \(values.count) values at \(at))")
            }
            let r0 = at / columns, n = values.count / columns, kp = paddedColumns, nb = kp / Self.q8Block
            let p = values.withUnsafeBufferPointer { Self.pack($0, columns: columns, format: .q8) }
            try device.write(Array(p[0..<(n * kp / 4)]), to: storage.view(r0 * kp / 4, n * kp / 4))
            try device.write(Array(p[(n * kp / 4)...]), to: scales.view(r0 * nb, n * nb))
            return
        }
        var v = values, start = at
        if start % 2 == 1 {
            v.insert(Self.unpack(try device.read(storage.view(start / 2, 1)), count: 2, columns: 1, format: format)[0], at: 0)
            start -= 1
        }
        if v.count % 2 == 1 && start + v.count < rows * columns {
            v.append(Self.unpack(try device.read(storage.view((start + v.count) / 2, 1)), count: 2, columns: 1, format: format)[1])
        }
        let packed = v.withUnsafeBufferPointer { Self.pack($0, columns: 1, format: format) }
        try device.write(packed, to: storage.view(start / 2, packed.count))
    }
}

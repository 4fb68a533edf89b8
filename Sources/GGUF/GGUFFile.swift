// GGUF files (llama.cpp's format), versions 2 and 3: the header, every metadata value type, the
// tensor infos and the aligned data section, read from a memory-mapped file. Everything is
// checked before it is trusted — counts and lengths against the bytes left, tensor ranges against
// the data section, alignment, overlaps, dimensions against overflow — so a hostile file gets a
// GGUFError naming the problem, never a crash or an allocation the file cannot back.
//
// Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count; metadata (string key, u32 type,
// value); tensor infos (string name, u32 dims, u64 ne[dims] — ne[0] the fastest-varying, so a
// matrix (rows, cols) is ne = [cols, rows] — u32 ggml type, u64 offset into the data section); then
// padding to `general.alignment` (default 32) and the data. Strings are u64 length + UTF-8 bytes.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct GGUFError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A metadata value.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    case array([GGUFValue])

    /// Any integer type as Int (nil for other types or an unrepresentable value).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(exactly: v)
        default: return nil
        }
    }

    /// Float32 or Float64 (or an integer) as Double.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var array: [GGUFValue]? { if case .array(let a) = self { return a } else { return nil } }

    var typeName: String {
        switch self {
        case .uint8: "uint8"; case .int8: "int8"; case .uint16: "uint16"; case .int16: "int16"
        case .uint32: "uint32"; case .int32: "int32"; case .float32: "float32"; case .bool: "bool"
        case .string: "string"; case .uint64: "uint64"; case .int64: "int64"; case .float64: "float64"
        case .array: "array"
        }
    }
}

/// One tensor of the file.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ne: ne[0] varies fastest (a (rows, cols) matrix has ne = [cols, rows]).
    public let dimensions: [Int]
    public let type: GGMLType
    /// Byte range in the file.
    public let byteRange: Range<Int>
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Row-major shape, slowest axis first (the reverse of ne).
    public var shape: [Int] { dimensions.reversed() }
}

public final class GGUFFile {
    public let url: URL
    public let version: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Where the data section starts.
    public let dataOffset: Int
    private let data: Data
    private let index: [String: Int]

    /// Opens and validates `url` (memory-mapped).
    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw GGUFError("cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(data: data, url: url)
    }

    public init(data: Data, url: URL = URL(fileURLWithPath: "(memory)")) throws {
        self.url = url
        self.data = data
        var r = Reader(data: data, file: url.lastPathComponent)
        guard data.count >= 24 else { throw GGUFError("\(url.lastPathComponent): \(data.count) bytes is too short for a GGUF header (24 bytes)") }
        guard try r.bytes(4) == Array("GGUF".utf8) else {
            throw GGUFError("\(url.lastPathComponent) is not a GGUF file (its first bytes are not \"GGUF\")")
        }
        let v = Int(try r.u32())
        guard v == 2 || v == 3 else {
            throw GGUFError("\(url.lastPathComponent): GGUF version \(v) is not supported (versions 2 and 3 are)")
        }
        version = v
        let tensorCount = try r.count(try r.u64(), minimumBytesEach: 8 + 4 + 8 + 4 + 8, what: "tensors")
        let kvCount = try r.count(try r.u64(), minimumBytesEach: 8 + 4 + 1, what: "metadata entries")
        var meta: [String: GGUFValue] = [:], keys: [String] = []
        for _ in 0..<kvCount {
            let key = try r.string()
            guard meta[key] == nil else { throw GGUFError("\(url.lastPathComponent): metadata key '\(key)' appears twice") }
            meta[key] = try r.value(type: try r.u32(), key: key, depth: 0)
            keys.append(key)
        }
        metadata = meta
        metadataKeys = keys
        var align = 32
        if let a = meta["general.alignment"] {
            guard let n = a.int, n > 0, n & (n - 1) == 0, n <= 1 << 20 else {
                throw GGUFError("\(url.lastPathComponent): general.alignment \(a) is not a power of two")
            }
            align = n
        }
        alignment = align
        var infos: [(String, [Int], GGMLType, Int)] = []
        for _ in 0..<tensorCount {
            let name = try r.string()
            let nDims = Int(try r.u32())
            guard nDims >= 1, nDims <= 4 else { throw GGUFError("\(url.lastPathComponent): tensor '\(name)' has \(nDims) dimensions (1…4 allowed)") }
            var dims: [Int] = [], elements = 1
            for _ in 0..<nDims {
                let d = try r.u64()
                guard d >= 1, d <= 1 << 40 else { throw GGUFError("\(url.lastPathComponent): tensor '\(name)' has a dimension of \(d)") }
                let (m, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                guard !overflow, m <= 1 << 40 else { throw GGUFError("\(url.lastPathComponent): tensor '\(name)' has too many elements (\(dims + [Int(d)]))") }
                dims.append(Int(d)); elements = m
            }
            let rawType = try r.u32()
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError("\(url.lastPathComponent): tensor '\(name)' has ggml type \(rawType), which this reader does not know")
            }
            let offset = try r.u64()
            guard offset <= UInt64(Int.max / 2) else { throw GGUFError("\(url.lastPathComponent): tensor '\(name)' has offset \(offset)") }
            infos.append((name, dims, type, Int(offset)))
        }
        dataOffset = (r.position + align - 1) / align * align
        guard dataOffset <= data.count else { throw GGUFError("\(url.lastPathComponent): the file ends before its data section") }
        var list: [GGUFTensorInfo] = [], idx: [String: Int] = [:]
        for (name, dims, type, offset) in infos {
            guard idx[name] == nil else { throw GGUFError("\(url.lastPathComponent): tensor '\(name)' appears twice") }
            guard offset % align == 0 else {
                throw GGUFError("\(url.lastPathComponent): tensor '\(name)' starts at offset \(offset), not a multiple of the alignment \(align)")
            }
            guard dims[0] % type.blockElements == 0 else {
                throw GGUFError("\(url.lastPathComponent): tensor '\(name)' (\(type)) has rows of \(dims[0]) elements, not a multiple of its block of \(type.blockElements)")
            }
            let bytes = dims.reduce(1, *) / type.blockElements * type.blockBytes
            let start = dataOffset + offset
            guard start <= data.count, bytes <= data.count - start else {
                throw GGUFError("\(url.lastPathComponent): tensor '\(name)' (\(bytes) bytes at offset \(offset)) runs past the end of the file; it is truncated or corrupt")
            }
            idx[name] = list.count
            list.append(GGUFTensorInfo(name: name, dimensions: dims, type: type, byteRange: start..<(start + bytes)))
        }
        let sorted = list.sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.byteRange.upperBound > b.byteRange.lowerBound && !a.byteRange.isEmpty {
            throw GGUFError("\(url.lastPathComponent): tensors '\(a.name)' and '\(b.name)' overlap")
        }
        tensors = list
        index = idx
    }

    public func info(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// The tensor dequantised to Float (row-major, ne[0] fastest), bit-exact with ggml's reference.
    public func floats(_ name: String) throws -> [Float] {
        guard let t = info(name) else { throw GGUFError("\(url.lastPathComponent) has no tensor '\(name)'") }
        return try floats(name, rows: 0..<(t.elementCount / t.dimensions[0]))
    }

    /// Rows `rows` of the tensor (a row is ne[0] elements, a whole number of blocks), dequantised —
    /// for reading a large tensor a piece at a time.
    public func floats(_ name: String, rows: Range<Int>) throws -> [Float] {
        guard let t = info(name) else { throw GGUFError("\(url.lastPathComponent) has no tensor '\(name)'") }
        let rowElements = t.dimensions[0], rowBytes = rowElements / t.type.blockElements * t.type.blockBytes
        guard rows.lowerBound >= 0, rows.upperBound <= t.elementCount / rowElements else {
            throw GGUFError("rows \(rows) of '\(name)' are out of range")
        }
        let start = t.byteRange.lowerBound + rows.lowerBound * rowBytes
        return try data.withUnsafeBytes { raw in
            try Dequantize.floats(UnsafeRawBufferPointer(rebasing: raw[start..<(start + rows.count * rowBytes)]), type: t.type,
                                  count: rows.count * rowElements, name: name)
        }
    }

    /// Lets the OS drop the mapped pages of a tensor already read (they are file-backed and come
    /// back on the next read), so a loader's resident memory does not grow by the file's size.
    public func release(_ name: String) {
        #if canImport(Glibc)
        guard let t = info(name) else { return }
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let lo = (Int(bitPattern: base) + t.byteRange.lowerBound + page - 1) / page * page
            let hi = (Int(bitPattern: base) + t.byteRange.upperBound) / page * page
            if hi > lo { _ = madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, MADV_DONTNEED) }
        }
        #endif
    }

    // MARK: - Typed metadata

    public func string(_ key: String) -> String? { metadata[key]?.string }
    public func int(_ key: String) -> Int? { metadata[key]?.int }
    public func double(_ key: String) -> Double? { metadata[key]?.double }

    /// A string array (tokens, merges), checked.
    public func strings(_ key: String) throws -> [String] {
        guard let a = metadata[key]?.array else { throw GGUFError("\(url.lastPathComponent): metadata '\(key)' is missing or not an array") }
        return try a.map { v in
            guard let s = v.string else { throw GGUFError("\(url.lastPathComponent): metadata '\(key)' holds a \(v.typeName), not strings") }
            return s
        }
    }

    /// An integer array (token types), checked.
    public func ints(_ key: String) throws -> [Int] {
        guard let a = metadata[key]?.array else { throw GGUFError("\(url.lastPathComponent): metadata '\(key)' is missing or not an array") }
        return try a.map { v in
            guard let i = v.int else { throw GGUFError("\(url.lastPathComponent): metadata '\(key)' holds a \(v.typeName), not integers") }
            return i
        }
    }
}

/// A bounds-checked little-endian cursor over the file.
private struct Reader {
    let data: Data
    let file: String
    var position: Int

    init(data: Data, file: String) { self.data = data; self.file = file; position = data.startIndex }

    func fail(_ what: String) -> GGUFError { GGUFError("\(file): truncated or corrupt: \(what) at byte \(position) runs past the end (\(data.count) bytes)") }

    mutating func bytes(_ n: Int) throws -> [UInt8] {
        guard n >= 0, n <= data.count - position else { throw fail("\(n) bytes") }
        defer { position += n }
        return [UInt8](data[position..<(position + n)])
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let n = MemoryLayout<T>.size
        guard n <= data.count - position else { throw fail("a \(n)-byte value") }
        var v: T = 0
        data.withUnsafeBytes { raw in
            for i in 0..<n { v |= T(raw[position - data.startIndex + i]) << (8 * i) }
        }
        position += n
        return v
    }

    mutating func u32() throws -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws -> UInt64 { try load(UInt64.self) }

    /// A count read from the file, refused when the bytes left cannot hold that many items.
    func count(_ n: UInt64, minimumBytesEach: Int, what: String) throws -> Int {
        let left = UInt64(data.count - position)
        guard n <= left / UInt64(max(minimumBytesEach, 1)) else {
            throw GGUFError("\(file): the header claims \(n) \(what), more than its \(left) remaining bytes can hold; the file is corrupt")
        }
        return Int(n)
    }

    mutating func string() throws -> String {
        let n = try count(try u64(), minimumBytesEach: 1, what: "string bytes")
        let b = try bytes(n)
        guard let s = String(bytes: b, encoding: .utf8) else { throw GGUFError("\(file): a string at byte \(position - n) is not UTF-8") }
        return s
    }

    mutating func value(type: UInt32, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try load(UInt8.self))
        case 1: return .int8(Int8(bitPattern: try load(UInt8.self)))
        case 2: return .uint16(try load(UInt16.self))
        case 3: return .int16(Int16(bitPattern: try load(UInt16.self)))
        case 4: return .uint32(try load(UInt32.self))
        case 5: return .int32(Int32(bitPattern: try load(UInt32.self)))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self)))
        case 7:
            let b = try load(UInt8.self)
            guard b <= 1 else { throw GGUFError("\(file): metadata '\(key)' holds bool byte \(b)") }
            return .bool(b == 1)
        case 8: return .string(try string())
        case 9:
            guard depth < 4 else { throw GGUFError("\(file): metadata '\(key)' nests arrays too deeply") }
            let elementType = try u32()
            let size: Int
            switch elementType {
            case 0, 1, 7: size = 1
            case 2, 3: size = 2
            case 4, 5, 6: size = 4
            case 10, 11, 12: size = 8
            case 8, 9: size = 8   // a string's length / a nested array's header
            default: throw GGUFError("\(file): metadata '\(key)' is an array of unknown type \(elementType)")
            }
            let n = try count(try u64(), minimumBytesEach: size, what: "elements of '\(key)'")
            var out: [GGUFValue] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try value(type: elementType, key: key, depth: depth + 1)) }
            return .array(out)
        case 10: return .uint64(try load(UInt64.self))
        case 11: return .int64(Int64(bitPattern: try load(UInt64.self)))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self)))
        default: throw GGUFError("\(file): metadata '\(key)' has unknown value type \(type)")
        }
    }
}

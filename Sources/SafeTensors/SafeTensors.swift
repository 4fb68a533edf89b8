// SafeTensors.swift — a hardened reader for the safetensors format (Foundation only).
// Layout: an 8-byte little-endian UInt64 header length N, N bytes of UTF-8 JSON (an object of
// tensor name → {"dtype", "shape", "data_offsets"} plus an optional "__metadata__" string map,
// possibly padded with trailing spaces), then the little-endian, row-major tensor bytes.
// `SafeTensorsFile` validates everything before exposing any tensor (sizes, dtypes, overflow,
// overlaps, gaps, duplicate names, UTF-8) and throws `SafeTensorsError` — it never traps on bad
// input and never allocates more than the validated data implies. It is not a lazy/mmap loader,
// does not support dtypes beyond `SafeTensorsDType` (e.g. F8 or U16), and does not write files
// (see SafeTensorsWriter.swift). Header JSON is parsed by the strict parser in JSON.swift.

import Foundation

/// Element types understood by this reader/writer.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }
}

/// Name, type, shape and location of one tensor; `byteRange` is relative to the data section.
public struct SafeTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    public let byteRange: Range<Int>

    /// Product of `shape` (1 for a scalar, shape `[]`). Validated not to overflow when read.
    public var elementCount: Int {
        var n = 1
        for d in shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return Int.max }
            n = p
        }
        return n
    }
}

/// Every failure of this module. `message` names the problem, the tensor when relevant, and
/// what to do about it.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A fully validated safetensors file held in memory.
public struct SafeTensorsFile: Sendable {
    /// Largest header accepted (100 MB), as in the reference implementation.
    public static let maxHeaderLength = 100_000_000

    public let metadata: [String: String]
    /// All tensors, sorted by data offset.
    public let tensors: [SafeTensorInfo]

    private let data: Data
    /// Byte offset of the data section inside `data` (relative to `data.startIndex`).
    private let dataStart: Int
    private let indexByName: [String: Int]
    /// Whether `data` maps the file (then `release` may drop its pages).
    private var isMapped = false

    /// Reads and validates a file. Errors name the path.
    public init(contentsOf url: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw SafeTensorsError("safetensors file '\(url.path)' does not exist; check the path")
        }
        guard !isDirectory.boolValue else {
            throw SafeTensorsError("'\(url.path)' is a directory, not a safetensors file; pass the path of the .safetensors file")
        }
        let bytes: Data
        do {
            // Mapped, not read: a loader copies tensor by tensor and `release`s each, so resident
            // memory stays near the model's, not the model's plus the file's.
            bytes = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            let reason = (error as NSError).localizedDescription
            throw SafeTensorsError("cannot read safetensors file '\(url.path)': \(reason); check that the file exists and is readable")
        }
        do {
            try self.init(data: bytes)
            isMapped = true
        } catch let error as SafeTensorsError {
            throw SafeTensorsError("'\(url.path)': \(error.message)")
        }
    }

    /// Parses and validates an in-memory safetensors file.
    public init(data: Data) throws {
        let total = data.count
        guard total >= 8 else {
            throw SafeTensorsError("safetensors file is \(total) bytes, shorter than the 8-byte header length; the file is truncated or not a safetensors file")
        }
        var rawLength: UInt64 = 0
        data.withUnsafeBytes { raw in
            for i in 0..<8 { rawLength |= UInt64(raw[i]) << (8 * UInt64(i)) }
        }
        guard rawLength != 0 else {
            throw SafeTensorsError("safetensors header length is 0; the file is corrupt or not a safetensors file")
        }
        guard rawLength <= UInt64(Self.maxHeaderLength) else {
            throw SafeTensorsError("safetensors header length \(rawLength) exceeds the 100 MB limit (\(Self.maxHeaderLength) bytes); the file is corrupt or not a safetensors file")
        }
        let headerLength = Int(rawLength)
        guard headerLength <= total - 8 else {
            throw SafeTensorsError("safetensors header length \(headerLength) is larger than the \(total - 8) bytes after the length prefix; the file is truncated or corrupt")
        }
        let headerBytes: [UInt8] = data.withUnsafeBytes { raw in Array(raw[8..<(8 + headerLength)]) }
        let json = try HeaderJSONParser.parse(headerBytes)
        guard case let .object(members) = json else {
            throw SafeTensorsError("safetensors header must be a JSON object, found \(json.typeName); the file is corrupt or not a safetensors file")
        }

        let dataStart = 8 + headerLength
        let dataSize = total - dataStart
        var metadata: [String: String]? = nil
        var infos: [SafeTensorInfo] = []
        var seen = Set<String>()
        infos.reserveCapacity(members.count)
        for (name, value) in members {
            guard seen.insert(name).inserted else {
                if name == "__metadata__" {
                    throw SafeTensorsError("safetensors header has more than one \"__metadata__\" entry; the file is corrupt")
                }
                throw SafeTensorsError("duplicate tensor name '\(name)' in safetensors header; the file is corrupt (each tensor name must appear once)")
            }
            if name == "__metadata__" {
                metadata = try Self.parseMetadata(value)
            } else {
                infos.append(try Self.parseEntry(name: name, value: value, dataSize: dataSize))
            }
        }

        infos.sort { a, b in
            if a.byteRange.lowerBound != b.byteRange.lowerBound { return a.byteRange.lowerBound < b.byteRange.lowerBound }
            if a.byteRange.upperBound != b.byteRange.upperBound { return a.byteRange.upperBound < b.byteRange.upperBound }
            return a.name < b.name
        }
        var covered = 0
        var previous: SafeTensorInfo? = nil
        for info in infos {
            let begin = info.byteRange.lowerBound
            if begin < covered, let previous {
                throw SafeTensorsError("tensor '\(info.name)' (bytes \(begin)..<\(info.byteRange.upperBound)) overlaps tensor '\(previous.name)' (bytes \(previous.byteRange.lowerBound)..<\(previous.byteRange.upperBound)) in the data section; the file is corrupt")
            }
            if begin > covered {
                let after = previous.map { "after tensor '\($0.name)'" } ?? "at the start of the data section"
                throw SafeTensorsError("gap of \(begin - covered) unused bytes \(after), before tensor '\(info.name)' (data section must be covered contiguously); the file is corrupt")
            }
            covered = info.byteRange.upperBound
            previous = info
        }
        if covered != dataSize {
            let after = previous.map { "after the last tensor '\($0.name)'" } ?? "with no tensors"
            throw SafeTensorsError("\(dataSize - covered) trailing unused bytes in the data section \(after) (data section is \(dataSize) bytes, tensors cover \(covered)); the file is corrupt or has extra bytes appended")
        }

        var index: [String: Int] = [:]
        index.reserveCapacity(infos.count)
        for (i, info) in infos.enumerated() { index[info.name] = i }
        self.metadata = metadata ?? [:]
        self.tensors = infos
        self.data = data
        self.dataStart = dataStart
        self.indexByName = index
    }

    private static func parseMetadata(_ value: HeaderJSON) throws(SafeTensorsError) -> [String: String] {
        guard case let .object(members) = value else {
            throw SafeTensorsError("\"__metadata__\" in safetensors header must be an object of strings, found \(value.typeName); the file is corrupt")
        }
        var result: [String: String] = [:]
        for (key, v) in members {
            guard case let .string(s) = v else {
                throw SafeTensorsError("\"__metadata__\" value for key '\(key)' must be a string, found \(v.typeName); the file is corrupt")
            }
            guard result.updateValue(s, forKey: key) == nil else {
                throw SafeTensorsError("duplicate \"__metadata__\" key '\(key)' in safetensors header; the file is corrupt")
            }
        }
        return result
    }

    private static func nonNegativeInts(_ value: HeaderJSON?, field: String, tensor: String) throws(SafeTensorsError) -> [Int] {
        guard let value else {
            throw SafeTensorsError("tensor '\(tensor)' is missing \"\(field)\" in the safetensors header; the file is corrupt")
        }
        guard case let .array(elements) = value else {
            throw SafeTensorsError("tensor '\(tensor)' has \"\(field)\" of type \(value.typeName), expected an array of non-negative integers; the file is corrupt")
        }
        var ints: [Int] = []
        ints.reserveCapacity(elements.count)
        for element in elements {
            guard let n = element.exactInt else {
                let shown: String
                if case let .number(text) = element { shown = "number \(text.prefix(40))" } else { shown = element.typeName }
                throw SafeTensorsError("tensor '\(tensor)' has \"\(field)\" containing \(shown), expected integers that fit in 64 bits; the file is corrupt")
            }
            guard n >= 0 else {
                let what = field == "shape" ? "negative dimension" : "negative offset"
                throw SafeTensorsError("tensor '\(tensor)' has a \(what) \(n) in \"\(field)\" \(ints + [n]); the file is corrupt")
            }
            ints.append(n)
        }
        return ints
    }

    private static func parseEntry(name: String, value: HeaderJSON, dataSize: Int) throws(SafeTensorsError) -> SafeTensorInfo {
        guard case let .object(members) = value else {
            throw SafeTensorsError("tensor '\(name)' in safetensors header must be an object with dtype/shape/data_offsets, found \(value.typeName); the file is corrupt")
        }
        var fields: [String: HeaderJSON] = [:]
        for (key, v) in members {
            guard fields.updateValue(v, forKey: key) == nil else {
                throw SafeTensorsError("tensor '\(name)' has duplicate key \"\(key)\" in the safetensors header; the file is corrupt")
            }
        }
        guard let dtypeValue = fields["dtype"] else {
            throw SafeTensorsError("tensor '\(name)' is missing \"dtype\" in the safetensors header; the file is corrupt")
        }
        guard case let .string(dtypeName) = dtypeValue else {
            throw SafeTensorsError("tensor '\(name)' has \"dtype\" of type \(dtypeValue.typeName), expected a string such as \"F32\"; the file is corrupt")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            let supported = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw SafeTensorsError("tensor '\(name)' has unknown or unsupported dtype '\(dtypeName.prefix(40))' (supported: \(supported)); convert the tensor to a supported dtype before saving")
        }
        let shape = try nonNegativeInts(fields["shape"], field: "shape", tensor: name)
        let offsets = try nonNegativeInts(fields["data_offsets"], field: "data_offsets", tensor: name)
        guard offsets.count == 2 else {
            throw SafeTensorsError("tensor '\(name)' has \"data_offsets\" with \(offsets.count) values, expected exactly 2 [begin, end]; the file is corrupt")
        }
        let begin = offsets[0], end = offsets[1]
        var elements = 1
        for d in shape {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw SafeTensorsError("tensor '\(name)' has shape \(shape) whose element count overflows; the file is corrupt")
            }
            elements = p
        }
        let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else {
            throw SafeTensorsError("tensor '\(name)' has shape \(shape) whose byte size overflows; the file is corrupt")
        }
        guard begin <= end else {
            throw SafeTensorsError("tensor '\(name)' has data_offsets begin \(begin) > end \(end); the file is corrupt")
        }
        guard end - begin == byteCount else {
            throw SafeTensorsError("tensor '\(name)' has data_offsets [\(begin), \(end)] spanning \(end - begin) bytes, but shape \(shape) of \(dtype.rawValue) needs \(byteCount) bytes; the file is corrupt")
        }
        guard end <= dataSize else {
            throw SafeTensorsError("tensor '\(name)' has data_offsets [\(begin), \(end)] beyond the end of the \(dataSize)-byte data section; the file is truncated or corrupt")
        }
        return SafeTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    // MARK: - Lookup

    public func info(_ name: String) -> SafeTensorInfo? {
        indexByName[name].map { tensors[$0] }
    }

    /// Tensor names in data-offset order.
    public var names: [String] { tensors.map(\.name) }

    private func lookup(_ name: String, accessor: String, accepts: [SafeTensorsDType], hint: String) throws(SafeTensorsError) -> SafeTensorInfo {
        guard let info = info(name) else {
            let sample = tensors.prefix(5).map { "'\($0.name)'" }.joined(separator: ", ")
            throw SafeTensorsError("no tensor named '\(name)' in this safetensors file (\(tensors.count) tensors\(sample.isEmpty ? "" : ", e.g. \(sample)")); check the name or use `names`")
        }
        guard accepts.contains(info.dtype) else {
            let list = accepts.map(\.rawValue).joined(separator: "/")
            throw SafeTensorsError("tensor '\(name)' has dtype \(info.dtype.rawValue), which \(accessor) cannot read (it reads \(list)); \(hint)")
        }
        return info
    }

    /// Calls `body` with a pointer to the tensor's bytes (count = byteRange.count, maybe 0), or
    /// to those of `elements` only.
    private func withTensorBytes<R>(_ info: SafeTensorInfo, elements: Range<Int>? = nil, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let size = info.dtype.byteSize
        let start = dataStart + info.byteRange.lowerBound + (elements?.lowerBound ?? 0) * size
        let end = elements.map { dataStart + info.byteRange.lowerBound + $0.upperBound * size } ?? dataStart + info.byteRange.upperBound
        return try data.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
        }
    }

    /// Copies `count` values of `T` out of `src` (which holds at least `count * size` bytes).
    private static func copyOut<T: BitwiseCopyable>(_ src: UnsafeRawBufferPointer, count: Int, as: T.Type) -> [T] {
        guard count > 0, let base = src.baseAddress, src.count >= count * MemoryLayout<T>.stride else { return [] }
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let dst = buffer.baseAddress { memcpy(dst, base, count * MemoryLayout<T>.stride) }
            initialized = count
        }
    }

    /// Reads `count` little-endian integers (a plain memcpy on little-endian hosts).
    private static func loadLittleEndian<T: FixedWidthInteger & BitwiseCopyable>(_ src: UnsafeRawBufferPointer, count: Int, as: T.Type) -> [T] {
        #if _endian(little)
        return copyOut(src, count: count, as: T.self)
        #else
        return copyOut(src, count: count, as: T.self).map { T(littleEndian: $0) }
        #endif
    }

    /// IEEE half → single (exact for every half value, including subnormals, inf and NaN).
    @inline(__always)
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x03FF)
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        }
        return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
    }

    /// Lets the OS drop the pages of a tensor already read when the file is mapped (they are
    /// file-backed and come back on the next read); a no-op for a file parsed from memory (its
    /// pages are the only copy).
    public func release(_ name: String, elements: Range<Int>? = nil) {
        #if canImport(Glibc)
        guard isMapped, let t = info(name) else { return }
        let size = t.dtype.byteSize
        let bytes = elements.map { (t.byteRange.lowerBound + $0.lowerBound * size)..<(t.byteRange.lowerBound + $0.upperBound * size) } ?? t.byteRange
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let start = Int(bitPattern: base) + dataStart
            let lo = (start + bytes.lowerBound + page - 1) / page * page
            let hi = (start + bytes.upperBound) / page * page
            if hi > lo { _ = madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, MADV_DONTNEED) }
        }
        #endif
    }

    // MARK: - Typed access

    /// Elements as `Float`: F32 as stored; F64 rounded; F16 and BF16 widened exactly. `elements`:
    /// only that range of the flattened tensor (a loader streams a large one in pieces).
    public func floats(_ name: String, elements: Range<Int>? = nil) throws -> [Float] {
        let info = try lookup(name, accessor: "floats()", accepts: [.F32, .F64, .F16, .BF16], hint: "use int32s() or bools() for integer/boolean tensors")
        let range = elements ?? 0..<info.elementCount
        guard range.lowerBound >= 0, range.upperBound <= info.elementCount else {
            throw SafeTensorsError("tensor '\(name)' has \(info.elementCount) elements; cannot read \(range)")
        }
        let n = range.count
        return try withTensorBytes(info, elements: range) { raw -> [Float] in
            switch info.dtype {
            case .F32:
                #if _endian(little)
                return Self.copyOut(raw, count: n, as: Float.self)
                #else
                return Self.loadLittleEndian(raw, count: n, as: UInt32.self).map { Float(bitPattern: $0) }
                #endif
            case .F64: return Self.loadLittleEndian(raw, count: n, as: UInt64.self).map { Float(Double(bitPattern: $0)) }
            case .F16: return Self.loadLittleEndian(raw, count: n, as: UInt16.self).map(Self.halfToFloat)
            case .BF16: return Self.loadLittleEndian(raw, count: n, as: UInt16.self).map { Float(bitPattern: UInt32($0) << 16) }
            default: return []
            }
        }
    }

    /// Elements as `Double`: F64 as stored; F32, F16 and BF16 widened exactly.
    public func doubles(_ name: String) throws -> [Double] {
        let info = try lookup(name, accessor: "doubles()", accepts: [.F64, .F32, .F16, .BF16], hint: "use int32s() or bools() for integer/boolean tensors")
        let n = info.elementCount
        return try withTensorBytes(info) { raw -> [Double] in
            switch info.dtype {
            case .F64:
                #if _endian(little)
                return Self.copyOut(raw, count: n, as: Double.self)
                #else
                return Self.loadLittleEndian(raw, count: n, as: UInt64.self).map { Double(bitPattern: $0) }
                #endif
            case .F32: return Self.loadLittleEndian(raw, count: n, as: UInt32.self).map { Double(Float(bitPattern: $0)) }
            case .F16: return Self.loadLittleEndian(raw, count: n, as: UInt16.self).map { Double(Self.halfToFloat($0)) }
            case .BF16: return Self.loadLittleEndian(raw, count: n, as: UInt16.self).map { Double(Float(bitPattern: UInt32($0) << 16)) }
            default: return []
            }
        }
    }

    /// Elements as `Int32`: I32 as stored; I64 (each value range-checked), I16, I8, U8, and
    /// BOOL (bytes must be 0 or 1) converted.
    public func int32s(_ name: String) throws -> [Int32] {
        let info = try lookup(name, accessor: "int32s()", accepts: [.I32, .I64, .I16, .I8, .U8, .BOOL], hint: "use floats() or doubles() for floating-point tensors")
        let n = info.elementCount
        return try withTensorBytes(info) { raw -> [Int32] in
            switch info.dtype {
            case .I32:
                return Self.loadLittleEndian(raw, count: n, as: Int32.self)
            case .I64:
                let wide = Self.loadLittleEndian(raw, count: n, as: Int64.self)
                var out = [Int32]()
                out.reserveCapacity(n)
                for (i, v) in wide.enumerated() {
                    guard let narrow = Int32(exactly: v) else {
                        throw SafeTensorsError("tensor '\(name)' (I64) element \(i) = \(v) does not fit in Int32; read it another way or store it as I32")
                    }
                    out.append(narrow)
                }
                return out
            case .I16: return Self.loadLittleEndian(raw, count: n, as: Int16.self).map { Int32($0) }
            case .I8: return Self.loadLittleEndian(raw, count: n, as: Int8.self).map { Int32($0) }
            case .U8: return Self.loadLittleEndian(raw, count: n, as: UInt8.self).map { Int32($0) }
            case .BOOL: return try Self.checkedBools(raw, count: n, name: name).map { $0 ? 1 : 0 }
            default: return []
            }
        }
    }

    /// Elements as `Bool` from BOOL or U8 tensors; every byte must be 0 or 1.
    public func bools(_ name: String) throws -> [Bool] {
        let info = try lookup(name, accessor: "bools()", accepts: [.BOOL, .U8], hint: "compare the values yourself after floats()/int32s()")
        let n = info.elementCount
        return try withTensorBytes(info) { raw -> [Bool] in
            try Self.checkedBools(raw, count: n, name: name)
        }
    }

    private static func checkedBools(_ raw: UnsafeRawBufferPointer, count: Int, name: String) throws(SafeTensorsError) -> [Bool] {
        guard raw.count >= count else { return [] }
        if let bad = raw.firstIndex(where: { $0 > 1 }) {
            throw SafeTensorsError("tensor '\(name)' element \(bad) has byte value \(raw[bad]); boolean bytes must be 0 or 1, so the file is corrupt")
        }
        return [Bool](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = raw[i] != 0 }
            initialized = count
        }
    }
}

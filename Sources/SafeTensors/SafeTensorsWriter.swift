// SafeTensorsWriter.swift — builds safetensors files from Float/Double/Int32 arrays (Foundation only).
// Tensors are stored in insertion order, contiguously, little-endian; the header JSON lists
// "__metadata__" (when non-empty) and then tensor names sorted by UTF-8 bytes, so output is
// byte-for-byte deterministic, and it is padded with spaces to a multiple of 8 bytes. `add`
// validates names and shapes; `write(to:)` is atomic (temp file in the same directory, fsync,
// rename). It is not a streaming writer (everything is held in memory) and writes only the
// F32, F64 and I32 dtypes; reading and validation live in SafeTensors.swift.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Accumulates tensors and serialises them to the safetensors format.
public struct SafeTensorsWriter: Sendable {
    private struct Entry: Sendable {
        let name: String
        let dtype: SafeTensorsDType
        let shape: [Int]
        let bytes: Data
    }

    /// String metadata stored under "__metadata__" (omitted from the file when empty).
    public var metadata: [String: String]
    private var entries: [Entry] = []
    private var names = Set<String>()

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    // MARK: - Adding tensors

    public mutating func add(_ name: String, shape: [Int], floats: [Float]) throws {
        try checkNew(name, shape: shape, count: floats.count, dtype: .F32)
        append(name, shape: shape, dtype: .F32, values: floats)
    }

    public mutating func add(_ name: String, shape: [Int], doubles: [Double]) throws {
        try checkNew(name, shape: shape, count: doubles.count, dtype: .F64)
        append(name, shape: shape, dtype: .F64, values: doubles)
    }

    public mutating func add(_ name: String, shape: [Int], int32s: [Int32]) throws {
        try checkNew(name, shape: shape, count: int32s.count, dtype: .I32)
        append(name, shape: shape, dtype: .I32, values: int32s)
    }

    private func checkNew(_ name: String, shape: [Int], count: Int, dtype: SafeTensorsDType) throws(SafeTensorsError) {
        guard !name.isEmpty else {
            throw SafeTensorsError("cannot add a tensor with an empty name to a safetensors file; give it a non-empty name")
        }
        guard name != "__metadata__" else {
            throw SafeTensorsError("cannot add a tensor named '__metadata__': that key is reserved for metadata; rename the tensor")
        }
        guard !names.contains(name) else {
            throw SafeTensorsError("tensor '\(name)' was already added to this safetensors writer; tensor names must be unique")
        }
        var product = 1
        for d in shape {
            guard d >= 0 else {
                throw SafeTensorsError("tensor '\(name)' has negative dimension \(d) in shape \(shape); dimensions must be >= 0")
            }
            let (p, overflow) = product.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw SafeTensorsError("tensor '\(name)' has shape \(shape) whose element count overflows")
            }
            product = p
        }
        guard product == count else {
            throw SafeTensorsError("tensor '\(name)' has shape \(shape) (\(product) elements) but \(count) \(dtype.rawValue) values were given; make the shape match the data")
        }
    }

    private mutating func append<T: BitwiseCopyable>(_ name: String, shape: [Int], dtype: SafeTensorsDType, values: [T]) {
        var bytes: Data
        #if _endian(little)
        bytes = values.withUnsafeBytes { Data($0) }
        #else
        bytes = Data()
        bytes.reserveCapacity(values.count * MemoryLayout<T>.size)
        for v in values {
            switch v {
            case let f as Float: withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            case let d as Double: withUnsafeBytes(of: d.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            case let i as Int32: withUnsafeBytes(of: i.littleEndian) { bytes.append(contentsOf: $0) }
            default: break
            }
        }
        #endif
        entries.append(Entry(name: name, dtype: dtype, shape: shape, bytes: bytes))
        names.insert(name)
    }

    // MARK: - Serialisation

    /// JSON string literal for `s` (quotes, backslashes and control characters escaped).
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static func utf8Less(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// The complete file: length prefix, padded header, then tensor bytes in insertion order.
    public func serialized() -> Data {
        var offsets: [String: (Int, Int)] = [:]
        var position = 0
        for e in entries {
            offsets[e.name] = (position, position + e.bytes.count)
            position += e.bytes.count
        }
        var parts: [String] = []
        if !metadata.isEmpty {
            let items = metadata.keys.sorted(by: Self.utf8Less).map { key in
                Self.jsonString(key) + ":" + Self.jsonString(metadata[key] ?? "")
            }
            parts.append("\"__metadata__\":{" + items.joined(separator: ",") + "}")
        }
        for e in entries.sorted(by: { Self.utf8Less($0.name, $1.name) }) {
            let (begin, end) = offsets[e.name] ?? (0, 0)
            let shape = e.shape.map(String.init).joined(separator: ",")
            parts.append(Self.jsonString(e.name) + ":{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(end)]}")
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        let padding = (8 - header.count % 8) % 8
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))

        var out = Data()
        out.reserveCapacity(8 + header.count + position)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for e in entries { out.append(e.bytes) }
        return out
    }

    // MARK: - Atomic write

    /// Writes `serialized()` to `url` atomically: the bytes go to "<path>.tmp-<pid>" in the same
    /// directory, are fsynced, and the temp file is renamed over the target. On any failure the
    /// temp file is removed and the error names the path.
    public func write(to url: URL) throws {
        let bytes = serialized()
        let path = url.path
        let tempPath = path + ".tmp-\(getpid())"

        func failure(_ what: String, _ code: Int32) -> SafeTensorsError {
            let reason = String(cString: strerror(code))
            return SafeTensorsError("cannot write safetensors file '\(path)': \(what) failed: \(reason); check that the directory exists and is writable and that there is free disk space")
        }

        _ = unlink(tempPath)  // a stale temp file from an earlier crash of a process with our pid
        let fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw failure("creating temporary file '\(tempPath)'", errno)
        }
        var closed = false
        do {
            defer { if !closed { _ = close(fd) } }
            try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
                var written = 0
                while written < raw.count {
                    guard let base = raw.baseAddress else { break }
                    let n = posixWrite(fd, base + written, raw.count - written)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw failure("writing '\(tempPath)'", errno)
                    }
                    if n == 0 { throw failure("writing '\(tempPath)'", EIO) }
                    written += n
                }
            }
            guard fsync(fd) == 0 else { throw failure("fsync of '\(tempPath)'", errno) }
            closed = true
            guard close(fd) == 0 else { throw failure("closing '\(tempPath)'", errno) }
            guard rename(tempPath, path) == 0 else { throw failure("renaming '\(tempPath)' over it", errno) }
        } catch {
            _ = unlink(tempPath)
            throw error
        }
        // Make the rename durable; a failure here does not undo the (already visible) write.
        let directory = url.deletingLastPathComponent().path
        let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY)
        if dirfd >= 0 {
            _ = fsync(dirfd)
            _ = close(dirfd)
        }
    }
}

/// POSIX `write(2)`, named apart from `SafeTensorsWriter.write(to:)`.
@inline(__always)
private func posixWrite(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buf, count)
    #elseif canImport(Musl)
    return Musl.write(fd, buf, count)
    #else
    return Darwin.write(fd, buf, count)
    #endif
}

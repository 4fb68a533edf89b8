// Writing GGUF version 3 (the layout GGUFFile reads): metadata of any GGUFValue type, then F32 or
// F16 tensors, each aligned to 32 bytes. Tensors are streamed: the header is written first (every
// size is known from the shapes), then each tensor's values are asked for once, converted and
// appended — writing a 135M-parameter model holds one tensor at a time. The file appears under
// its name only when complete (a temporary, then a rename).

import Foundation

public enum GGUFTensorType: Sendable {
    case f32, f16
    var ggml: UInt32 { self == .f32 ? 0 : 1 }
    var bytes: Int { self == .f32 ? 4 : 2 }
}

public struct GGUFWriter {
    public struct Tensor {
        public let name: String
        /// Row-major shape, slowest axis first (stored reversed as ne).
        public let shape: [Int]
        public let type: GGUFTensorType
        public let values: () throws -> [Float]
        public init(name: String, shape: [Int], type: GGUFTensorType, values: @escaping () throws -> [Float]) {
            self.name = name; self.shape = shape; self.type = type; self.values = values
        }
    }

    public var metadata: [(String, GGUFValue)] = []
    public var tensors: [Tensor] = []
    public static let alignment = 32

    public init() {}

    public func write(to url: URL) throws {
        var header = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        func string(_ s: String) { let b = Array(s.utf8); u64(UInt64(b.count)); header.append(contentsOf: b) }
        func typeCode(_ v: GGUFValue) -> UInt32 {
            switch v {
            case .uint8: 0; case .int8: 1; case .uint16: 2; case .int16: 3; case .uint32: 4; case .int32: 5
            case .float32: 6; case .bool: 7; case .string: 8; case .array: 9; case .uint64: 10; case .int64: 11; case .float64: 12
            }
        }
        func value(_ v: GGUFValue) throws {
            switch v {
            case .uint8(let x): header.append(x)
            case .int8(let x): header.append(UInt8(bitPattern: x))
            case .uint16(let x): withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) }
            case .int16(let x): withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) }
            case .uint32(let x): u32(x)
            case .int32(let x): u32(UInt32(bitPattern: x))
            case .float32(let x): u32(x.bitPattern)
            case .bool(let x): header.append(x ? 1 : 0)
            case .string(let s): string(s)
            case .uint64(let x): u64(x)
            case .int64(let x): u64(UInt64(bitPattern: x))
            case .float64(let x): u64(x.bitPattern)
            case .array(let a):
                let t = a.first.map(typeCode) ?? 4
                guard a.allSatisfy({ typeCode($0) == t }) else { throw GGUFError("a GGUF array must hold one type") }
                u32(t); u64(UInt64(a.count))
                for e in a { try value(e) }
            }
        }
        header.append(contentsOf: Array("GGUF".utf8))
        u32(3); u64(UInt64(tensors.count)); u64(UInt64(metadata.count))
        for (k, v) in metadata { string(k); u32(typeCode(v)); try value(v) }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            string(t.name); u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { u64(UInt64(d)) }
            u32(t.type.ggml); u64(UInt64(offset))
            offsets.append(offset)
            offset += Self.padded(t.shape.reduce(1, *) * t.type.bytes)
        }
        header.append(contentsOf: [UInt8](repeating: 0, count: Self.padded(header.count) - header.count))

        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial")
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
            throw GGUFError("cannot create \(tmp.path): check that the directory exists and is writable")
        }
        let h = try FileHandle(forWritingTo: tmp)
        do {
            try h.write(contentsOf: header)
            for t in tensors {
                let v = try t.values()
                guard v.count == t.shape.reduce(1, *) else {
                    throw GGUFError("tensor \(t.name): \(v.count) values for shape \(t.shape)")
                }
                var bytes: Data
                switch t.type {
                case .f32: bytes = v.withUnsafeBufferPointer { Data(buffer: $0) }
                case .f16: bytes = v.map { Float16($0) }.withUnsafeBufferPointer { Data(buffer: $0) }
                }
                bytes.append(contentsOf: [UInt8](repeating: 0, count: Self.padded(bytes.count) - bytes.count))
                try h.write(contentsOf: bytes)
            }
            try h.synchronize()
            try h.close()
            if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
            try FileManager.default.moveItem(at: tmp, to: url)
        } catch {
            try? h.close()
            try? FileManager.default.removeItem(at: tmp)
            throw error
        }
    }

    static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
}

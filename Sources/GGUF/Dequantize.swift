// ggml tensor types and their dequantisation to Float, bit-exact with ggml's reference (and the
// gguf Python package's `quants.dequantize`, the fixtures' source): every value is computed with the
// same Float operations in the same order — scales from f16 widened exactly, then d·q (+ m) or
// d·q − m — and no fused multiply-add.
//
// Blocks (QK = 32 or QK_K = 256 elements):
//   Q4_0  f16 d, 16 B nibbles            x = d·(q − 8)       (low nibble of byte j → element j, high → j + 16)
//   Q4_1  f16 d, f16 m, 16 B             x = d·q + m
//   Q5_0  f16 d, u32 high bits, 16 B     x = d·(q − 16)      (bit j of the u32 is element j's 5th bit)
//   Q5_1  f16 d, f16 m, u32, 16 B        x = d·q + m
//   Q8_0  f16 d, 32 int8                 x = q·d
//   Q2_K  16 B scales, 64 B 2-bit q, f16 d, f16 dmin    x = (d·(sc&15))·q − dmin·(sc>>4), per 16
//   Q3_K  32 B high bits, 64 B 2-bit q, 12 B 6-bit scales, f16 d   x = (d·(s − 32))·(q − 4·!h), per 16
//   Q4_K  f16 d, f16 dmin, 12 B 6-bit scales/mins, 128 B nibbles   x = (d·sc)·q − dmin·m, per 32
//   Q5_K  as Q4_K plus 32 B high bits                               x = (d·sc)·q − dmin·m, per 32
//   Q6_K  128 B low nibbles, 64 B 2-bit highs, 16 int8 scales, f16 d  x = (d·sc)·(q − 32), per 16

import Foundation

/// ggml's tensor types (the raw values are ggml's); block elements and bytes from ggml.
public enum GGMLType: UInt32, Sendable, CustomStringConvertible, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30, tq1_0 = 34, tq2_0 = 35
    case mxfp4 = 39, nvfp4 = 40, q1_0 = 41

    public var description: String { name }

    public var name: String {
        switch self {
        case .f32: "F32"; case .f16: "F16"; case .q4_0: "Q4_0"; case .q4_1: "Q4_1"; case .q5_0: "Q5_0"; case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"; case .q8_1: "Q8_1"; case .q2_K: "Q2_K"; case .q3_K: "Q3_K"; case .q4_K: "Q4_K"; case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"; case .q8_K: "Q8_K"; case .iq2_xxs: "IQ2_XXS"; case .iq2_xs: "IQ2_XS"; case .iq3_xxs: "IQ3_XXS"
        case .iq1_s: "IQ1_S"; case .iq4_nl: "IQ4_NL"; case .iq3_s: "IQ3_S"; case .iq2_s: "IQ2_S"; case .iq4_xs: "IQ4_XS"
        case .i8: "I8"; case .i16: "I16"; case .i32: "I32"; case .i64: "I64"; case .f64: "F64"; case .iq1_m: "IQ1_M"
        case .bf16: "BF16"; case .tq1_0: "TQ1_0"; case .tq2_0: "TQ2_0"; case .mxfp4: "MXFP4"; case .nvfp4: "NVFP4"; case .q1_0: "Q1_0"
        }
    }

    /// (elements, bytes) per block.
    var block: (elements: Int, bytes: Int) {
        switch self {
        case .f32: (1, 4); case .f16: (1, 2); case .q4_0: (32, 18); case .q4_1: (32, 20); case .q5_0: (32, 22); case .q5_1: (32, 24)
        case .q8_0: (32, 34); case .q8_1: (32, 40); case .q2_K: (256, 84); case .q3_K: (256, 110); case .q4_K: (256, 144)
        case .q5_K: (256, 176); case .q6_K: (256, 210); case .q8_K: (256, 292); case .iq2_xxs: (256, 66); case .iq2_xs: (256, 74)
        case .iq3_xxs: (256, 98); case .iq1_s: (256, 50); case .iq4_nl: (32, 18); case .iq3_s: (256, 110); case .iq2_s: (256, 82)
        case .iq4_xs: (256, 136); case .i8: (1, 1); case .i16: (1, 2); case .i32: (1, 4); case .i64: (1, 8); case .f64: (1, 8)
        case .iq1_m: (256, 56); case .bf16: (1, 2); case .tq1_0: (256, 54); case .tq2_0: (256, 66); case .mxfp4: (32, 17)
        case .nvfp4: (64, 36); case .q1_0: (128, 18)
        }
    }
    public var blockElements: Int { block.elements }
    public var blockBytes: Int { block.bytes }

    /// The types `Dequantize` reads.
    public static let supported: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]
}

enum Dequantize {
    @inline(__always) static func half(_ p: UnsafeRawBufferPointer, _ at: Int) -> Float {
        Float(Float16(bitPattern: UInt16(p[at]) | UInt16(p[at + 1]) << 8))
    }

    @inline(__always) static func u32(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(p[at]) | UInt32(p[at + 1]) << 8 | UInt32(p[at + 2]) << 16 | UInt32(p[at + 3]) << 24
    }

    /// `count` values of `type` from `raw` (exactly count / blockElements blocks).
    static func floats(_ raw: UnsafeRawBufferPointer, type: GGMLType, count: Int, name: String) throws -> [Float] {
        guard GGMLType.supported.contains(type) else {
            throw GGUFError("tensor '\(name)' is \(type.name), which is not supported (supported: \(GGMLType.supported.map(\.name).joined(separator: ", ")))")
        }
        let (be, bb) = type.block
        let blocks = count / be
        precondition(raw.count == blocks * bb, "tensor byte range does not match its type")
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { y in
            for b in 0..<blocks {
                let p = UnsafeRawBufferPointer(rebasing: raw[(b * bb)..<((b + 1) * bb)])
                let o = UnsafeMutableBufferPointer(rebasing: y[(b * be)..<((b + 1) * be)])
                block(type, p, o)
            }
        }
        return out
    }

    /// One block.
    static func block(_ type: GGMLType, _ p: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>) {
        switch type {
        case .f32: y[0] = Float(bitPattern: u32(p, 0))
        case .f16: y[0] = half(p, 0)
        case .bf16: y[0] = Float(bitPattern: (UInt32(p[0]) | UInt32(p[1]) << 8) << 16)
        case .q8_0:
            let d = half(p, 0)
            for j in 0..<32 { y[j] = Float(Int8(bitPattern: p[2 + j])) * d }
        case .q4_0:
            let d = half(p, 0)
            for j in 0..<16 {
                y[j] = d * Float(Int(p[2 + j] & 0x0F) - 8)
                y[j + 16] = d * Float(Int(p[2 + j] >> 4) - 8)
            }
        case .q4_1:
            let d = half(p, 0), m = half(p, 2)
            for j in 0..<16 {
                let a = d * Float(p[4 + j] & 0x0F), b = d * Float(p[4 + j] >> 4)
                y[j] = a + m; y[j + 16] = b + m
            }
        case .q5_0:
            let d = half(p, 0), qh = u32(p, 2)
            for j in 0..<16 {
                let lo = Int(p[6 + j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
                let hi = Int(p[6 + j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                y[j] = d * Float(lo - 16); y[j + 16] = d * Float(hi - 16)
            }
        case .q5_1:
            let d = half(p, 0), m = half(p, 2), qh = u32(p, 4)
            for j in 0..<16 {
                let lo = Int(p[8 + j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
                let hi = Int(p[8 + j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                let a = d * Float(lo), b = d * Float(hi)
                y[j] = a + m; y[j + 16] = b + m
            }
        case .q2_K:   // scales[16], qs[64], d, dmin
            let d = half(p, 80), dmin = half(p, 82)
            for half in 0..<2 { for shift in 0..<4 { for l in 0..<32 {
                let g = (half * 4 + shift) * 2 + l / 16, sc = p[g]
                let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                let q = Float((p[16 + half * 32 + l] >> UInt8(2 * shift)) & 3)
                y[half * 128 + shift * 32 + l] = dl * q - ml
            } } }
        case .q3_K:   // hmask[32], qs[64], scales[12], d
            let d = half(p, 108)
            var scales = [Float](repeating: 0, count: 16)
            for k in 0..<16 {
                let low = k < 8 ? p[96 + k] & 0x0F : p[96 + k - 8] >> 4
                let high = (p[104 + k % 4] >> UInt8(2 * (k / 4))) & 0x03
                scales[k] = d * Float(Int(low | high << 4) - 32)
            }
            for half in 0..<2 { for shift in 0..<4 { for l in 0..<32 {
                let e = half * 128 + shift * 32 + l
                let ql = Int((p[32 + half * 32 + l] >> UInt8(2 * shift)) & 3)
                let h = Int((p[l] >> UInt8(half * 4 + shift)) & 1) ^ 1
                y[e] = scales[e / 16] * Float(ql - (h << 2))
            } } }
        case .q4_K, .q5_K:   // d, dmin, scales[12], (qh[32],) qs[128]
            let d = half(p, 0), dmin = half(p, 2)
            let (sc, mn) = scaleMins(p, 4)
            let qs = type == .q4_K ? 16 : 48
            for chunk in 0..<4 { for nib in 0..<2 { for l in 0..<32 {
                let j = chunk * 2 + nib
                var q = Int(nib == 0 ? p[qs + chunk * 32 + l] & 0x0F : p[qs + chunk * 32 + l] >> 4)
                if type == .q5_K { q |= Int((p[16 + l] >> UInt8(j)) & 1) << 4 }
                let dj = d * Float(sc[j]), mj = dmin * Float(mn[j])
                y[j * 32 + l] = dj * Float(q) - mj
            } } }
        case .q6_K:   // ql[128], qh[64], scales[16] int8, d
            let d = half(p, 208)
            for h in 0..<2 { for k in 0..<4 { for l in 0..<32 {
                let e = h * 128 + k * 32 + l
                let ql = Int((p[h * 64 + (k % 2) * 32 + l] >> UInt8(4 * (k / 2))) & 0x0F)
                let qh = Int((p[128 + h * 32 + l] >> UInt8(2 * k)) & 0x03)
                let s = d * Float(Int8(bitPattern: p[192 + e / 16]))
                y[e] = s * Float(Int8(truncatingIfNeeded: ql | qh << 4) - 32)
            } } }
        default: preconditionFailure("unsupported type \(type)")
        }
    }

    /// The 8 six-bit scales and mins of a Q4_K/Q5_K block (12 bytes at `at`).
    static func scaleMins(_ p: UnsafeRawBufferPointer, _ at: Int) -> ([UInt8], [UInt8]) {
        var sc = [UInt8](repeating: 0, count: 8), mn = sc
        for j in 0..<4 {
            let d = p[at + j], m = p[at + 4 + j], md = p[at + 8 + j]
            sc[j] = d & 0x3F; mn[j] = m & 0x3F
            sc[j + 4] = (md & 0x0F) | ((d >> 2) & 0x30)
            mn[j + 4] = (md >> 4) | ((m >> 2) & 0x30)
        }
        return (sc, mn)
    }
}

// Shared helpers of the OpenCL suites: one OpenCL device for the whole process (programs are
// built once; the device serialises concurrent callers), the PyTorch reference files, and error
// measures. The suites are gated with `.enabled(if: OpenCLDevice.isAvailable)`.

import Foundation
import MPOKit
import MPOOpenCL
import SafeTensors
import Testing

enum Shared {
    /// The default OpenCL device, created once (or the error that prevented it).
    static let device: Result<OpenCLDevice, Error> = Result { try OpenCLDevice() }
    /// Whether the suites can run here: an OpenCL device exists. A device that exists but fails
    /// to open (a kernel that does not build) fails the tests rather than skipping them.
    static let available = OpenCLDevice.isAvailable
    /// The shared device; throws (failing the test) if it could not be opened.
    static func opencl() throws -> OpenCLDevice { try device.get() }
}

enum Reference {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Resources/reference")
    static let kernelsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Kernels")
    static let dataFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Data/tinyshakespeare.txt")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
    static func file(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(contentsOf: url(name)) }
    static func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url(name))) as! [String: Any]
    }

    /// The reference batch (tokens, targets) of a `<model>_seed2024.json` file, flattened.
    static func batch(_ json: [String: Any]) -> (tokens: [Int32], targets: [Int32], b: Int, t: Int) {
        let input = json["input"] as! [String: Any]
        let tok = (input["tokens"] as! [[Int]]), tgt = (input["targets"] as! [[Int]])
        return (tok.flatMap { $0.map(Int32.init) }, tgt.flatMap { $0.map(Int32.init) }, tok.count, tok[0].count)
    }

    /// Windows of `time` characters of Tiny Shakespeare at `offsets`, and the next characters.
    static func windows(_ offsets: [Int], time: Int, vocab: String) throws -> ([Int32], [Int32]) {
        let text = Array(try Data(contentsOf: dataFile))
        var map = [UInt8: Int32]()
        for (i, ch) in vocab.utf8.enumerated() { map[ch] = Int32(i) }
        var tok: [Int32] = [], tgt: [Int32] = []
        for o in offsets {
            for i in 0..<time { tok.append(map[text[o + i]]!); tgt.append(map[text[o + i + 1]]!) }
        }
        return (tok, tgt)
    }
}

/// ‖a − b‖ / ‖b‖ in double precision.
func relativeError<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(_ a: [A], _ b: [B]) -> Double {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    var num = 0.0, den = 0.0
    for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
    return den == 0 ? num.squareRoot() : (num / den).squareRoot()
}

func maxAbsDifference<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(_ a: [A], _ b: [B]) -> Double {
    precondition(a.count == b.count)
    var m = 0.0
    for i in 0..<a.count { m = max(m, abs(Double(a[i]) - Double(b[i]))) }
    return m
}

/// Seeded uniform floats in [-range, range).
func randomFloats(_ n: Int, seed: UInt64, range: Float = 1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in Float((rng.uniform() * 2 - 1) * Double(range)) }
}

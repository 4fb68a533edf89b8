// Shared test helpers: where the PyTorch reference files are, JSON access, error measures.

import Foundation
import Testing
import SafeTensors
@testable import MPOKit

enum Reference {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Resources/reference")
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

    /// Loads a reference checkpoint into a model on the CPU device.
    static func model(_ name: String, device: any ComputeDevice = CPUDevice()) throws -> PicoGPT {
        try ModelCheckpoint.loadModel(url(name), device: device)
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

extension Reference {
    /// The text of Tiny Shakespeare as bytes (character offsets = byte offsets: it is ASCII).
    static let text: [UInt8] = Array(try! Data(contentsOf: dataFile))

    /// Windows of `time` characters at `offsets` and the next characters, as ids in `vocab`.
    static func windows(_ offsets: [Int], time: Int, vocab: String) -> ([Int32], [Int32]) {
        var map = [UInt8: Int32]()
        for (i, ch) in vocab.utf8.enumerated() { map[ch] = Int32(i) }
        var tok: [Int32] = [], tgt: [Int32] = []
        for o in offsets {
            for i in 0..<time { tok.append(map[text[o + i]]!); tgt.append(map[text[o + i + 1]]!) }
        }
        return (tok, tgt)
    }

    /// Runs the ten-step trajectory of `<model>_seed2024_train10.json`; returns (loss, norm) per step.
    static func trajectory(_ jsonName: String, model: PicoGPT, vocab: String) throws -> [(Double, Double)] {
        let j = try json(jsonName)
        let offsets = j["batch_char_offsets"] as! [[Int]], lrs = j["lr"] as! [Double]
        let t = j["T"] as! Int
        let opt = try AdamW(model: model)
        var out: [(Double, Double)] = []
        for (s, offs) in offsets.enumerated() {
            let (tok, tgt) = windows(offs, time: t, vocab: vocab)
            #expect(abs(learningRate(step: s, total: 2000) - lrs[s]) < 1e-15)
            let st = try opt.trainStep(tokens: tok, targets: tgt, batch: offs.count, time: t, learningRate: lrs[s])
            out.append((st.loss, st.gradNorm))
        }
        return out
    }
}

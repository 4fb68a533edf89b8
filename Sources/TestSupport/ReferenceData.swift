// ReferenceData: where the PyTorch reference files and the data set live in the source tree,
// and the small readers every test suite uses (batches, character windows, a checkpoint on a
// device, the ten-step trajectory). Test support only: no product ships it.

import Foundation
import MPOKit
import SafeTensors

public enum ReferenceData {
    /// The repository root (three levels above this file).
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    public static let directory = root.appendingPathComponent("Tests/Resources/reference")
    public static let kernelsDirectory = root.appendingPathComponent("Kernels")
    public static let dataFile = root.appendingPathComponent("Data/tinyshakespeare.txt")

    public static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
    public static func file(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(contentsOf: url(name)) }
    public static func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url(name))) as! [String: Any]
    }

    /// The reference batch (tokens, targets) of a `<model>_seed2024.json` file, flattened.
    public static func batch(_ json: [String: Any]) -> (tokens: [Int32], targets: [Int32], b: Int, t: Int) {
        let input = json["input"] as! [String: Any]
        let tok = (input["tokens"] as! [[Int]]), tgt = (input["targets"] as! [[Int]])
        return (tok.flatMap { $0.map(Int32.init) }, tgt.flatMap { $0.map(Int32.init) }, tok.count, tok[0].count)
    }

    /// The shape hints the reference files need: they are plain PyTorch state_dicts (4 heads).
    public static let hints = ShapeHints(heads: 4)

    /// Loads a reference checkpoint into a model on `device`.
    public static func model(_ name: String, device: any ComputeDevice = CPUDevice()) throws -> Transformer {
        try ModelCheckpoint.loadModel(url(name), device: device, hints: hints)
    }

    /// The text of Tiny Shakespeare as bytes (character offsets = byte offsets: it is ASCII).
    public static let text: [UInt8] = Array((try? Data(contentsOf: dataFile)) ?? Data())

    /// Windows of `time` characters at `offsets` and the next characters, as ids in `vocab`.
    public static func windows(_ offsets: [Int], time: Int, vocab: String) throws -> ([Int32], [Int32]) {
        guard !text.isEmpty else { throw ModelError("cannot read \(dataFile.path)") }
        var map = [UInt8: Int32]()
        for (i, ch) in vocab.utf8.enumerated() { map[ch] = Int32(i) }
        var tok: [Int32] = [], tgt: [Int32] = []
        for o in offsets {
            for i in 0..<time { tok.append(map[text[o + i]]!); tgt.append(map[text[o + i + 1]]!) }
        }
        return (tok, tgt)
    }

    /// One step of a `<model>_seed2024_train10.json` trajectory as we computed it.
    public struct TrajectoryStep { public var learningRate, expectedLearningRate, loss, gradNorm: Double }

    /// Runs the ten-step trajectory of a `_train10.json` file on `model` (docs/SPEC.md §6 recipe).
    public static func trajectory(_ jsonName: String, model: Transformer, vocab: String) throws -> [TrajectoryStep] {
        let j = try json(jsonName)
        let offsets = j["batch_char_offsets"] as! [[Int]], lrs = j["lr"] as! [Double]
        let t = j["T"] as! Int
        let opt = try AdamW(model: model)
        return try offsets.enumerated().map { s, offs in
            let (tok, tgt) = try windows(offs, time: t, vocab: vocab)
            let st = try opt.trainStep(tokens: tok, targets: tgt, batch: offs.count, time: t, learningRate: lrs[s])
            return TrajectoryStep(learningRate: learningRate(step: s, total: 2000), expectedLearningRate: lrs[s],
                                  loss: st.loss, gradNorm: st.gradNorm)
        }
    }
}

/// ‖a − b‖ / ‖b‖ in double precision.
public func relativeError<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(_ a: [A], _ b: [B]) -> Double {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    var num = 0.0, den = 0.0
    for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
    return den == 0 ? num.squareRoot() : (num / den).squareRoot()
}

/// max |a − b| in double precision.
public func maxAbsDifference<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(_ a: [A], _ b: [B]) -> Double {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    var m = 0.0
    for i in 0..<a.count { m = max(m, abs(Double(a[i]) - Double(b[i]))) }
    return m
}

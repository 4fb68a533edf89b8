// Measured layer sensitivities kept in a file (`compress --sensitivity-file`): the probe behind
// them costs one compression and one evaluation per layer (an hour for SmolLM2's 210 layers on two
// cores), while the weights depend on the model and the calibration, not on the budget or on the
// method that later spends it — so one measurement serves every ratio, SVD and MPO alike.

import Foundation

/// How `compress --sensitivity K` measures a layer's sensitivity.
public enum SensitivityMethod: String, Codable, CaseIterable, Sendable {
    /// Each layer compressed alone and the model evaluated: one evaluation per layer (BondAllocator.sensitivity).
    case probe
    /// Every layer truncated once, then the empirical Fisher along each truncation: one backward
    /// pass per window (BondAllocator.fisherSensitivity).
    case fisher
    /// No truncation and no extra pass: ½·T²·tr(G·W·M·Wᵀ), the K-FAC Fisher of the layer's whole
    /// weight from the calibration text's input and output-gradient moments (BondAllocator.kfacSensitivity).
    case kfac
}

public struct SensitivityRecord: Codable, Equatable, Sendable {
    /// What the weights were measured on, printed when they are read back.
    public var checkpoint: String
    /// The bond every layer was probed at.
    public var probeChi: Int
    /// Validation batches per probe.
    public var batches: Int
    /// Whether the probes were whitened (the errors are output errors on the calibration inputs).
    public var whitened: Bool
    /// Seconds the probes took.
    public var seconds: Double
    /// How they were measured; absent in files written before the choice existed (probe). A file
    /// naming another method is not read.
    public var method: SensitivityMethod?
    /// Loss increase per unit of relative (output) error², by layer name.
    public var weights: [String: Double]
    /// For K-FAC weights: the median layer's raw weight (nats a token per unit relative error²), the
    /// scale that puts a weight measured later (the tied table's, --embedding svd:auto) beside them.
    /// Absent in files written before it was kept.
    public var median: Double?

    enum CodingKeys: String, CodingKey {
        case checkpoint, batches, whitened, seconds, weights, method, median
        case probeChi = "probe_chi"
    }

    public init(checkpoint: String, probeChi: Int, batches: Int, whitened: Bool, seconds: Double, weights: [String: Double],
                method: SensitivityMethod = .probe, median: Double? = nil) {
        self.checkpoint = checkpoint; self.probeChi = probeChi; self.batches = batches
        self.whitened = whitened; self.seconds = seconds; self.weights = weights; self.method = method; self.median = median
    }

    /// Writes the record as JSON, atomically (a stopped run leaves the old file or none).
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }

    /// How the weights were measured, files from before the choice included.
    public var measuredBy: SensitivityMethod { method ?? .probe }

    /// Reads a record and checks it covers exactly `layers` with finite, positive weights.
    public static func read(from url: URL, layers: [String]) throws -> SensitivityRecord {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError("cannot read the sensitivity file \(url.path): \(error.localizedDescription)")
        }
        let record: SensitivityRecord
        do { record = try JSONDecoder().decode(SensitivityRecord.self, from: data) } catch {
            throw ModelError("\(url.path) is not a sensitivity file written by `compress --sensitivity-file` (\(error)); delete it to measure again")
        }
        let missing = layers.filter { record.weights[$0] == nil }, extra = Set(record.weights.keys).subtracting(layers)
        guard missing.isEmpty, extra.isEmpty else {
            throw ModelError("the sensitivity file \(url.path) was measured on another model: "
                             + (missing.isEmpty ? "" : "it lacks \(missing.prefix(3).joined(separator: ", "))\(missing.count > 3 ? " and \(missing.count - 3) more" : "")")
                             + (missing.isEmpty || extra.isEmpty ? "" : "; ")
                             + (extra.isEmpty ? "" : "this model has no \(extra.sorted().prefix(3).joined(separator: ", "))")
                             + " — use another file or delete it to measure again")
        }
        if let bad = record.weights.first(where: { !($0.value.isFinite && $0.value > 0) }) {
            throw ModelError("the sensitivity file \(url.path) gives layer \(bad.key) the weight \(bad.value); weights must be finite and > 0")
        }
        return record
    }
}

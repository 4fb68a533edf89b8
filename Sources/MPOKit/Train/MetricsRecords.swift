// The records of metrics.jsonl as Codable types: the trainer writes them and RunMetrics reads
// them through the same code, so a field cannot be written under one name and read under
// another. One JSON object a line with a "type" key; snake_case keys; a non-finite number is
// written as the string "NaN", "Infinity" or "-Infinity" (JSON has no literal for them, and a
// diverged run's NaN loss is exactly the record that must not be lost) and read back from those,
// from null, or from "nan"/"inf" spellings other tools write. Unknown fields are ignored.

import Foundation

/// The run's description, written once at the start.
public struct RunRecord: Codable, Sendable, Equatable {
    public var name: String?
    public var model: String?
    public var chi: Int?
    public var initFrom: String?
    public var embedding: String?
    public var parameters: Int?
    public var device: String?
    public var seed: Int?
    public var steps: Int?
    /// Peak learning rate of the recipe.
    public var learningRate: Double?
    /// Distillation from a teacher checkpoint (path), and its loss weights.
    public var teacher: String?
    public var distillWeight: Double?
    public var distillTemperature: Double?
    public var distillHidden: Double?
    /// Progressive truncation, "32@0,16@300,8@600".
    public var chiSchedule: String?
    public var preset: String?
    /// Data-parallel ranks (absent: one process).
    public var ranks: Int?
    /// The --init model's MPO cores were rebalanced to one RMS per layer (train --balance-cores).
    public var balancedCores: Bool?

    public init(name: String? = nil, model: String? = nil, chi: Int? = nil) {
        self.name = name; self.model = model; self.chi = chi
    }

    enum CodingKeys: String, CodingKey {
        case name, model, chi, embedding, parameters, device, seed, steps, teacher, preset, ranks
        case initFrom = "init", learningRate = "lr", distillWeight = "distill_weight"
        case distillTemperature = "distill_temperature", distillHidden = "distill_hidden", chiSchedule = "chi_schedule"
        case balancedCores = "balanced_cores"
    }
}

/// A step whose loss or gradient was NaN/inf (skipped or fatal), and the first bad tensor.
public struct NonFiniteRecord: Codable, Sendable, Equatable {
    public var step: Int
    public var loss: Double
    public var tensor: String
    public init(step: Int, loss: Double, tensor: String) { self.step = step; self.loss = loss; self.tensor = tensor }
}

/// One progressive-truncation event: every MPO bond cut to `chi`, with the relative error.
public struct TruncationRecord: Codable, Sendable, Equatable {
    public var step: Int
    public var chi: Int
    public var parameters: Int
    /// sqrt(Σ discarded² / Σ ‖W‖²) over the linear layers.
    public var relativeError: Double
    public init(step: Int, chi: Int, parameters: Int, relativeError: Double) {
        self.step = step; self.chi = chi; self.parameters = parameters; self.relativeError = relativeError
    }
    enum CodingKeys: String, CodingKey { case step, chi, parameters, relativeError = "relative_error" }
}

extension StepRecord: Codable {
    enum CodingKeys: String, CodingKey {
        case step, loss, accuracy, elapsed, total, hidden
        case learningRate = "lr", gradNorm = "grad_norm", tokensPerSecond = "tokens_per_second"
        case crossEntropy = "cross_entropy", distillation = "kd"
        case allReduceBytes = "allreduce_bytes", communicationSeconds = "communication_seconds"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        step = try c.decode(Int.self, forKey: .step)
        loss = try c.lenientNumber(.loss)
        total = (try? c.decodeIfPresent(Int.self, forKey: .total)) ?? 0
        accuracy = c.optionalNumber(.accuracy); learningRate = c.optionalNumber(.learningRate)
        gradNorm = c.optionalNumber(.gradNorm); tokensPerSecond = c.optionalNumber(.tokensPerSecond)
        elapsed = c.optionalNumber(.elapsed)
        crossEntropy = c.contains(.crossEntropy) ? c.optionalNumber(.crossEntropy) : nil
        distillation = c.contains(.distillation) ? c.optionalNumber(.distillation) : nil
        hidden = c.contains(.hidden) ? c.optionalNumber(.hidden) : nil
        allReduceBytes = try? c.decodeIfPresent(Int.self, forKey: .allReduceBytes)
        communicationSeconds = c.contains(.communicationSeconds) ? c.optionalNumber(.communicationSeconds) : nil
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(step, forKey: .step); try c.encode(loss, forKey: .loss); try c.encode(accuracy, forKey: .accuracy)
        try c.encode(learningRate, forKey: .learningRate); try c.encode(gradNorm, forKey: .gradNorm)
        try c.encode(tokensPerSecond, forKey: .tokensPerSecond); try c.encode(elapsed, forKey: .elapsed)
        try c.encodeIfPresent(crossEntropy, forKey: .crossEntropy); try c.encodeIfPresent(distillation, forKey: .distillation)
        try c.encodeIfPresent(hidden, forKey: .hidden)
        try c.encodeIfPresent(allReduceBytes, forKey: .allReduceBytes)
        try c.encodeIfPresent(communicationSeconds, forKey: .communicationSeconds)
    }
}

extension EvalRecord: Codable {
    enum CodingKeys: String, CodingKey {
        case step, elapsed
        case trainLoss = "train_loss", trainAccuracy = "train_accuracy", valLoss = "val_loss", valAccuracy = "val_accuracy"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        step = try c.decode(Int.self, forKey: .step)
        trainLoss = c.optionalNumber(.trainLoss); trainAccuracy = c.optionalNumber(.trainAccuracy)
        valLoss = c.optionalNumber(.valLoss); valAccuracy = c.optionalNumber(.valAccuracy)
        elapsed = c.optionalNumber(.elapsed)
        guard [CodingKeys.trainLoss, .valLoss, .valAccuracy].contains(where: { (try? c.lenientNumber($0)) != nil }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "an eval record without values"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(step, forKey: .step); try c.encode(trainLoss, forKey: .trainLoss)
        try c.encode(trainAccuracy, forKey: .trainAccuracy); try c.encode(valLoss, forKey: .valLoss)
        try c.encode(valAccuracy, forKey: .valAccuracy); try c.encode(elapsed, forKey: .elapsed)
    }
}

/// One line of metrics.jsonl.
public enum MetricsRecord: Sendable {
    case run(RunRecord)
    case step(StepRecord)
    case eval(EvalRecord)
    case nonFinite(NonFiniteRecord)
    case truncation(TruncationRecord)
    /// A record of a type this version does not know (kept out of the curves, not an error).
    case other(String)

    private enum TypeKey: String, CodingKey { case type }

    /// The encoders' shared settings: sorted keys, non-finite numbers as strings.
    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return e
    }

    /// The record as one JSON line (without the newline).
    public func jsonLine() throws -> Data {
        let (type, body): (String, any Encodable) = switch self {
        case .run(let r): ("run", r)
        case .step(let r): ("step", r)
        case .eval(let r): ("eval", r)
        case .nonFinite(let r): ("nonfinite", r)
        case .truncation(let r): ("truncation", r)
        case .other(let t): (t, [String: String]())
        }
        let data = try Self.encoder().encode(body)
        // {"type":…} spliced in front of the body's keys (the body is always a JSON object).
        let head = Data("{\"type\":".utf8) + (try JSONEncoder().encode(type))
        return data.count > 2 ? head + Data(",".utf8) + data.dropFirst() : head + Data("}".utf8)
    }

    /// Decodes one line; throws for anything that is not a well-formed record of a known type.
    public static func decode(_ line: Data) throws -> MetricsRecord {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let type = try d.decode(TypeProbe.self, from: line).type
        switch type {
        case "run": return .run(try d.decode(RunRecord.self, from: line))
        case "step": return .step(try d.decode(StepRecord.self, from: line))
        case "eval": return .eval(try d.decode(EvalRecord.self, from: line))
        case "nonfinite": return .nonFinite(try d.decode(NonFiniteRecord.self, from: line))
        case "truncation": return .truncation(try d.decode(TruncationRecord.self, from: line))
        default: return .other(type ?? "")
        }
    }

    private struct TypeProbe: Decodable { var type: String? }
}

extension KeyedDecodingContainer {
    /// A number that may also be null (NaN) or a string "NaN"/"nan"/"Infinity"/"inf"/"-inf".
    func lenientNumber(_ key: Key) throws -> Double {
        if (try? decodeNil(forKey: key)) == true { return .nan }
        if let v = try? decode(Double.self, forKey: key) { return v }
        let s = try decode(String.self, forKey: key)
        switch s.lowercased() {
        case "nan", "-nan": return .nan
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        default:
            guard let v = Double(s) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "'\(s)' is not a number")
            }
            return v
        }
    }

    /// `lenientNumber`, or NaN when the key is absent or unusable.
    func optionalNumber(_ key: Key) -> Double { (try? lenientNumber(key)) ?? .nan }
}

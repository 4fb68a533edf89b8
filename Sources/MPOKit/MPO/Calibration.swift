// Calibration for data-aware truncation (compress --calibration): the second moment XᵀX / rows
// of every linear layer's inputs while the model reads a text, the statistic SVD-LLM whitens by
// (Compression.compressWhitened). The inputs of q/k/v (and of gate/up) are one tensor, so one moment serves
// them; sums run in Double (dsyrk per window of rows), over the original model's activations.

import CBLAS
import Foundation
import TensorTrain

public enum Calibration {
    /// The tap role a layer's input is seen under (Transformer.linearInputTap).
    static func tapRole(_ role: LinearRole) -> LinearRole? {
        switch role {
        case .query, .key, .value: return .query
        case .gate, .up: return .up
        case .output, .down: return role
        case .head: return nil
        }
    }

    /// The inputs' second moment of every linear layer of the blocks (by layer name, row-major
    /// in × in) over `tokens` read in consecutive windows of `context` tokens.
    public static func inputSecondMoments(_ model: Transformer, tokens: [Int32], context: Int) throws -> [String: [Double]] {
        guard context >= 1, tokens.count >= context else {
            throw ModelError("calibration needs at least one window of \(context) tokens (got \(tokens.count)); give a longer --calibration text")
        }
        let c = model.config
        var sums: [Int: [LinearRole: [Double]]] = [:]
        var rowsSeen = 0
        model.linearInputTap = { block, role, x, rows in
            let n = x.count / rows
            let values = try model.device.read(x.view(0, rows * n)).map(Double.init)
            // Taken out of the table while dsyrk writes it (no copy of n² Doubles per call).
            var acc = sums[block]?.removeValue(forKey: role) ?? [Double](repeating: 0, count: n * n)
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(n), Int32(rows), 1, values, Int32(n), 1, &acc, Int32(n))
            sums[block, default: [:]][role] = acc
        }
        defer { model.linearInputTap = nil }
        for start in stride(from: 0, through: tokens.count - context, by: context) {
            try model.forward(tokens: Array(tokens[start..<(start + context)]), batch: 1, time: context, needsGradients: false)
            rowsSeen += context
        }
        var out: [String: [Double]] = [:]
        for b in 0..<c.layers {
            for l in c.blockLinears(b) {
                guard let role = tapRole(l.role), var m = sums[b]?[role] else { continue }
                let n = l.in
                for i in 0..<n { for j in 0...i { let v = m[i * n + j] / Double(rowsSeen); m[i * n + j] = v; m[j * n + i] = v } }
                out[l.name] = m
            }
        }
        return out
    }
}

// `mpo-train report`: what TT-SVD at each χ does to every linear layer of a dense model —
// parameters, compression ratio, relative reconstruction error and its bound (the table the
// paper's Table 3 should have been).

import ArgumentParser
import Foundation
import MPOKit

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-layer parameters, compression ratio and TT-SVD error of a dense model for each χ.",
        discussion: """
        Without --checkpoint, reports on a freshly initialised dense PicoGPT (seed --seed).
        Totals count the whole model: MPO linears plus the dense embedding, LayerNorms and biases.

        Examples:
          mpo-train report --chi 4,8,16,32
          mpo-train report --checkpoint runs/dense/checkpoint.safetensors --chi 8,16 --json
        """)

    @Option(help: "Dense checkpoint to analyse (default: a fresh dense model).") var checkpoint: String?
    @Option(help: "Comma-separated bond dimensions.") var chi = "4,8,16,32"
    @Option(help: "Optional relative tolerance for TT-SVD truncation (per step).") var tolerance: Double?
    @Option(help: "Seed for the fresh model when no checkpoint is given.") var seed: UInt64 = 2024
    @Flag(help: "Print JSON instead of tables.") var json = false

    func run() throws {
        let chis = try parseChiList(chi)
        let device = CPUDevice()
        let model: PicoGPT
        if let checkpoint {
            model = try ModelCheckpoint.loadModel(URL(fileURLWithPath: checkpoint), device: device)
        } else {
            model = try PicoGPT(config: .picoGPT, device: device)
            try model.initialize(seed: seed)
        }
        let nonLinear = model.parameterCount - model.config.linearLayers.reduce(0) { $0 + $1.out * $1.in }
        var results: [[String: Any]] = []
        for c in chis {
            let reports = try Compression.reports(for: model, chi: c, relativeTolerance: tolerance)
            let total = Compression.total(reports)
            let modelParams = nonLinear + total.mpo
            if json {
                let layers = try reports.map { try JSONSerialization.jsonObject(with: JSONEncoder().encode($0)) }
                results.append(["chi": c, "layers": layers, "linear_parameters": total.mpo,
                                "model_parameters": modelParams, "dense_model_parameters": model.parameterCount,
                                "model_compression_ratio": Double(model.parameterCount) / Double(modelParams),
                                "linear_relative_error": total.relativeError])
                continue
            }
            print("χ = \(c)")
            print(pad("layer", 22) + pad("factors", 22) + lpad("bonds", 14) + lpad("params", 9) + lpad("ratio", 8)
                  + lpad("rel.err", 9) + lpad("bound", 9))
            for r in reports {
                print(pad(r.layer, 22) + pad(r.factorization, 22) + lpad(r.bonds.map(String.init).joined(separator: ","), 14)
                      + lpad("\(r.parameters)", 9) + lpad(String(format: "%.1f×", r.compressionRatio), 8)
                      + lpad(String(format: "%.4f", r.relativeError), 9) + lpad(String(format: "%.4f", r.errorBound), 9))
            }
            print(pad("all linear layers", 44) + lpad("", 14) + lpad("\(total.mpo)", 9)
                  + lpad(String(format: "%.1f×", Double(total.dense) / Double(total.mpo)), 8)
                  + lpad(String(format: "%.4f", total.relativeError), 9))
            print(String(format: "whole model: %d parameters (dense %d, %.1f× smaller)\n",
                         modelParams, model.parameterCount, Double(model.parameterCount) / Double(modelParams)))
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: ["checkpoint": checkpoint ?? "fresh dense (seed \(seed))",
                                                                   "results": results], options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }

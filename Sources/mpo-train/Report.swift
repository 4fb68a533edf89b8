// `mpo-train report`: what TT-SVD at each χ does to every linear layer of a dense model —
// parameters, compression ratio, relative reconstruction error and its bound (the table the
// paper's Table 3 should have been). Also the token embedding: its kind and parameters, and with
// --embedding what TT-SVD into per-token tensor trains / a table MPO does to it (docs/SPEC.md §5).

import ArgumentParser
import Foundation
import MPOKit

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-layer parameters, compression ratio and TT-SVD error of a dense model for each χ.",
        discussion: """
        Without --checkpoint, reports on a freshly initialised dense Transformer (seed --seed).
        Totals count the whole model: MPO linears plus the dense embedding, LayerNorms and biases.

        Examples:
          mpo-train report --chi 4,8,16,32
          mpo-train report --checkpoint runs/dense/checkpoint.safetensors --chi 8,16 --json
          mpo-train report --checkpoint runs/dense/checkpoint.safetensors --embedding tt:2,tt:4,tt:8,mpo:8
          mpo-train report --checkpoint SmolLM2-135M-Instruct.Q4_1.gguf --sites svd --chi 64,128,256 --params 100000000
        """)

    @Option(help: "Dense checkpoint to analyse (default: a fresh dense model).") var checkpoint: String?
    @Option(help: "Comma-separated bond dimensions.") var chi = "4,8,16,32"
    @Option(help: "Optional relative tolerance for TT-SVD truncation (per step).") var tolerance: Double?
    @Option(help: "Seed for the fresh model when no checkpoint is given.") var seed: UInt64 = 2024
    @Option(help: ArgumentHelp("Comma-separated embedding compressions to report, e.g. tt:2,tt:4,mpo:8.", valueName: "kinds"))
    var embedding: String?
    @Flag(help: "Print JSON instead of tables.") var json = false
    @Option(help: "Also show the budgeted allocation (a χ per layer, from each layer's TT-SVD errors) for this whole-model parameter budget.")
    var params: Int?
    @Option(help: ArgumentHelp("Sites of every linear layer's MPO: 2, 3, 4 (the chooser's cheapest with that many) or svd (plain truncated SVD). Default: the chooser's.", valueName: "n|svd"))
    var sites: String?
    @Option(help: ArgumentHelp("How each layer's error is found: spectra (one SVD per unfolding, done once for every χ: exact for two sites, the TT-SVD bound — an upper bound — for more; seconds for an LLM) or ttsvd (a TT-SVD per layer and χ: exact, minutes for an LLM). Default: ttsvd below 4M linear parameters, else spectra.", valueName: "spectra|ttsvd"))
    var errors: String?
    @OptionGroup var shape: ShapeHintOptions

    func run() throws {
        let chis = try parseChiList(chi)
        let siteCount = try parseSites(sites)
        if let errors, !["spectra", "ttsvd"].contains(errors) { throw ValidationError("--errors is spectra or ttsvd (got \(errors))") }
        let device = CPUDevice()
        let model: Transformer
        if let checkpoint {
            model = try loadCheckpoint(checkpoint, device: device, hints: shape.hints)
        } else {
            model = try Transformer(config: .picoGPT, device: device)
            try model.initialize(seed: seed)
        }
        let nonLinear = model.parameterCount - model.config.linearLayers.reduce(0) { $0 + $1.out * $1.in }
        let cfg = model.config, denseEmb = cfg.vocabularySize * cfg.channels
        let targets = try (embedding?.split(separator: ",").map(String.init) ?? []).map { s in
            do { return (s, try EmbeddingKind.parse(s, vocabulary: cfg.vocabularySize, channels: cfg.channels)) } catch {
                throw ValidationError("\(error)")
            }
        }
        let table = try Compression.embeddingTable(model)
        let embReports = try targets.map {
            ($0.0, try Compression.compressTable(table, vocabulary: cfg.vocabularySize, channels: cfg.channels, to: $0.1).report)
        }
        let embInfo: [String: Any] = ["kind": cfg.tokenEmbedding.description, "parameters": cfg.embeddingParameterCount,
                                      "dense_parameters": denseEmb,
                                      "compression_ratio": Double(denseEmb) / Double(cfg.embeddingParameterCount),
                                      "compressions": try embReports.map { r -> [String: Any] in
                                          var d = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r.1)) as! [String: Any]
                                          d["target"] = r.0
                                          return d
                                      }]
        if !json {
            print(String(format: "embedding: %@, %d parameters (dense %d×%d = %d, ratio %.2f×)", cfg.tokenEmbedding.description,
                         cfg.embeddingParameterCount, cfg.vocabularySize, cfg.channels, denseEmb,
                         Double(denseEmb) / Double(cfg.embeddingParameterCount)))
            for (name, r) in embReports {
                print(pad("  TT-SVD " + name, 18) + pad(r.kind, 36) + lpad("\(r.parameters)", 8)
                      + lpad(String(format: "%.2f×", r.compressionRatio), 8) + lpad(String(format: "err %.4f", r.relativeError), 12)
                      + lpad(String(format: "bound %.4f", r.errorBound), 14))
            }
            print("")
        }
        let linearDense = model.config.linearLayers.reduce(0) { $0 + $1.out * $1.in }
        let spectral = (errors ?? (linearDense >= 4_000_000 ? "spectra" : "ttsvd")) == "spectra"
        if spectral && tolerance != nil { throw ValidationError("--tolerance is a TT-SVD's per-step tolerance: give it with --errors ttsvd") }
        // Spectra by layer and factorisation, each computed once for every χ that uses it.
        var cache: [String: LayerSpectra] = [:]
        func spectra(_ fs: [String: MPOFactorization]) throws -> [LayerSpectra] {
            func key(_ name: String) -> String { name + " " + fs[name]!.description }
            let missing = Set(model.config.linearLayers.map(\.name).filter { cache[key($0)] == nil })
            if !missing.isEmpty {
                for s in try SpectralAllocator.spectra(model, factorizations: fs, layers: missing) { cache[key(s.name)] = s }
            }
            return model.config.linearLayers.map { cache[key($0.name)]! }
        }
        if spectral && !json {
            print("errors from each layer's unfolding spectra: exact for two sites, the TT-SVD bound (an upper bound) for more; --errors ttsvd runs the TT-SVDs\n")
        }
        var results: [[String: Any]] = []
        for c in chis {
            let fs = Compression.factorizations(model, chi: c, sites: siteCount)
            let reports = spectral
                ? try spectra(fs).map { LayerCompression(spectra: $0, bonds: $0.factorization.cappedBonds(chi: c)) }
                : try Compression.reports(for: model, chi: c, factorizations: fs, relativeTolerance: tolerance)
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
                  + lpad("rel.err", 9) + lpad("bound", 9) + lpad("FLOP/row dense", 16) + lpad("site", 10))
            for r in reports {
                print(pad(r.layer, 22) + pad(r.factorization, 22) + lpad(r.bonds.map(String.init).joined(separator: ","), 14)
                      + lpad("\(r.parameters)", 9) + lpad(String(format: "%.1f×", r.compressionRatio), 8)
                      + lpad(String(format: "%.4f", r.relativeError), 9) + lpad(String(format: "%.4f", r.errorBound), 9)
                      + lpad(String(format: "%.0f", r.denseFlopsPerRow), 16)
                      + lpad(String(format: "%.0f", r.siteFlopsPerRow), 10) + String(format: " (%.2f×)", r.siteFlopsPerRow / r.denseFlopsPerRow))
            }
            print(pad("all linear layers", 44) + lpad("", 14) + lpad("\(total.mpo)", 9)
                  + lpad(String(format: "%.1f×", Double(total.dense) / Double(total.mpo)), 8)
                  + lpad(String(format: "%.4f", total.relativeError), 9))
            print(String(format: "whole model: %d parameters (dense %d, %.1f× smaller)\n",
                         modelParams, model.parameterCount, Double(model.parameterCount) / Double(modelParams)))
        }
        var allocationInfo: [String: Any]? = nil
        if let params {
            let fs = Compression.factorizations(model, chi: 8, sites: siteCount)
            let a: BondAllocation, reports: [LayerCompression]
            if spectral {   // compress --allocation spectra's plan, every layer at χ ≥ half the uniform χ that fits
                let uniform = SpectralAllocator.largestUniformChi(model.config.linearLayers.map { fs[$0.name]! }, fixed: nonLinear, budget: params)
                let layers = try spectra(fs)
                a = try SpectralAllocator.allocate(layers, fixed: nonLinear, parameters: params, minimumChi: max(1, uniform / 2))
                reports = layers.map { LayerCompression(spectra: $0, bonds: a.bonds[$0.name]!) }
            } else {
                a = try BondAllocator.allocate(model, parameters: params, factorizations: siteCount == nil ? [:] : fs)
                reports = try Compression.compress(model, chi: 1, bondCaps: a.bonds, factorizations: a.factorizations, relativeTolerance: tolerance).1
            }
            let total = Compression.total(reports)
            allocationInfo = ["budget": params, "model_parameters": a.modelParameters, "linear_relative_error": total.relativeError,
                              "layers": try reports.map { r -> [String: Any] in
                                  var d = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as! [String: Any]
                                  d["predicted_error"] = a.predictedError[r.layer]
                                  return d
                              }]
            if !json {
                print("budgeted allocation for \(params) parameters (\(a.modelParameters) used)")
                print(pad("layer", 22) + lpad("bonds", 14) + lpad("params", 9) + lpad("predicted", 11) + lpad("rel.err", 9))
                for r in reports {
                    print(pad(r.layer, 22) + lpad(r.bonds.map(String.init).joined(separator: ","), 14) + lpad("\(r.parameters)", 9)
                          + lpad(String(format: "%.4f", a.predictedError[r.layer] ?? .nan), 11) + lpad(String(format: "%.4f", r.relativeError), 9))
                }
                print(String(format: "all linear layers: relative error %.4f\n", total.relativeError))
            }
        }
        if json {
            var object: [String: Any] = ["checkpoint": checkpoint ?? "fresh dense (seed \(seed))", "results": results, "embedding": embInfo,
                                         "errors": spectral ? "spectra" : "ttsvd"]
            if let allocationInfo { object["allocation"] = allocationInfo }
            let data = try JSONSerialization.data(withJSONObject: object,
                                                  options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }

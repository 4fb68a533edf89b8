// Compression of a trained dense model into an MPO model (docs/SPEC.md §3, §4).
//
// Every linear weight is TT-SVD'd (LAPACK dgesdd, via TensorTrain) to the requested bond
// dimension; everything else — token embedding, every LayerNorm, every bias — is copied from
// the dense model unchanged (the original code lost those; we must not).

import Foundation
import TensorTrain

/// What TT-SVD did to one linear layer.
public struct LayerCompression: Codable, Sendable, Equatable {
    public var layer: String
    public var out: Int
    public var `in`: Int
    public var factorization: String
    public var chi: Int
    public var bonds: [Int]
    public var denseParameters: Int
    public var parameters: Int
    public var compressionRatio: Double
    public var relativeError: Double
    public var errorBound: Double
    /// ‖W‖² and ‖W − Ŵ‖², for totals over layers.
    public var normSquared: Double
    public var errorSquared: Double
    /// FLOPs per row of the two ways to apply the layer: one dense GEMM with W (2·out·in), and
    /// the site-by-site contraction through the cores (never forming W).
    public var denseFlopsPerRow: Double
    public var siteFlopsPerRow: Double
}

public enum Compression {
    /// TT-SVD of one dense (out, in) weight; returns float cores and the report.
    public static func compressWeight(_ w: [Float], layer: String, factorization f: MPOFactorization, chi: Int,
                                      relativeTolerance: Double? = nil) throws -> (MPOCores<Float>, LayerCompression) {
        let (cores, r) = try ttSVD(w.map(Double.init), factorization: f, maxBond: chi, relativeTolerance: relativeTolerance)
        return report(cores, r, layer: layer, factorization: f, chi: chi)
    }

    /// TT-SVD with a cap per bond (a budgeted allocation); `chi` in the report is the largest bond.
    public static func compressWeight(_ w: [Float], layer: String, factorization f: MPOFactorization, maxBonds: [Int],
                                      relativeTolerance: Double? = nil) throws -> (MPOCores<Float>, LayerCompression) {
        let (cores, r) = try ttSVD(w.map(Double.init), factorization: f, maxBonds: maxBonds, relativeTolerance: relativeTolerance)
        return report(cores, r, layer: layer, factorization: f, chi: r.bonds.max() ?? 1)
    }

    /// Data-aware truncation: the TT-SVD of W·S, each core's input leg times S_k⁻¹ afterwards
    /// (KroneckerWhitening of the inputs' second moment over the factorisation's input factors;
    /// exact for a plain SVD layer, K-FAC's Kronecker approximation for an MPO). The report's
    /// errors are output errors on the calibration inputs (relative to ‖W·S‖), not weight errors.
    /// For an MPO (whose whitening is a Kronecker approximation) the report's error is the exact
    /// output error on the calibration inputs, and `sweeps` > 0 fits the cores to it by ALS.
    /// `output`: the output side too, OutputWhitening (`.kronecker` for an MPO, its exact metric then
    /// fitted by the same ALS) — the errors are then in that two-sided metric.
    public static func compressWhitened(_ w: [Float], layer: String, factorization f: MPOFactorization, maxBonds: [Int],
                                        secondMoment: [Double], damping: Double = 0.01, sweeps: Int = 0,
                                        output: OutputWhitening? = nil) throws -> (MPOCores<Float>, LayerCompression) {
        let wh: KroneckerWhitening
        do { wh = try KroneckerWhitening(secondMoment: secondMoment, inFactors: f.inFactors, damping: damping) } catch {
            throw ModelError("\(layer): \(error)")
        }
        return try compressWhitened(w, layer: layer, factorization: f, maxBonds: maxBonds, whitening: wh,
                                    exact: ExactFit(secondMoment: secondMoment, damping: damping, sweeps: sweeps), output: output)
    }

    /// The second moment an MPO's Kronecker whitening approximates (damped as the whitening
    /// damps it), and the ALS sweeps that fit the cores to the exact output error (WhitenedALS;
    /// 0: the Kronecker-whitened TT-SVD, with its exact error reported).
    public struct ExactFit: Sendable {
        public var secondMoment: [Double], damping: Double, sweeps: Int
        public init(secondMoment: [Double], damping: Double = 0.01, sweeps: Int) {
            self.secondMoment = secondMoment; self.damping = damping; self.sweeps = sweeps
        }
    }

    /// The same with the whitening made already (error correction shares one per stage).
    public static func compressWhitened(_ w: [Float], layer: String, factorization f: MPOFactorization, maxBonds: [Int],
                                        whitening wh: KroneckerWhitening, exact: ExactFit? = nil,
                                        output: OutputWhitening? = nil) throws -> (MPOCores<Float>, LayerCompression) {
        var target = wh.whiten(w.map(Double.init), out: f.outFeatures)
        if let output {
            switch output {
            case .kronecker(let k, _, _), .kroneckerRows(let k, _):   // an MPO's: Kronecker over its output factors
                guard k.inFactors == f.outFactors else {
                    throw ModelError("\(layer): a Kronecker output whitening over \(k.inFactors) does not fit the output factors of \(f)")
                }
            case .rows, .full:   // the rows live in core 0 only for a plain SVD layer, (1, out, 1, r)
                guard f == MPOFactorization.lowRank(out: f.outFeatures, in: f.inFeatures), output.outFeatures == f.outFeatures else {
                    throw ModelError("\(layer): output-side whitening by the whole G needs a plain SVD layer ([out, 1] × [1, in]), not \(f); an MPO, which splits the output index over its cores, takes OutputWhitening(secondMoment:factorization:)")
                }
            }
            target = output.whiten(target, columns: f.inFeatures)
        }
        var (cores, r) = try ttSVD(target, factorization: f, maxBonds: maxBonds)
        var fit: ALSReport?
        if let exact, case let outputMetric = output?.metric(), !wh.isExact || outputMetric != nil {
            fit = try WhitenedALS.refine(&cores, target: target, metric: wh.metric(secondMoment: exact.secondMoment, damping: exact.damping),
                                         outputMetric: outputMetric, sweeps: exact.sweeps)
        }
        output?.unwhiten(&cores)
        wh.unwhiten(&cores)
        let (c, truncated) = report(cores, r, layer: layer, factorization: f, chi: r.bonds.max() ?? 1)
        var report = truncated
        if let fit {   // errors in the exact metric, relative to the output energy ‖W‖²_G
            report.relativeError = fit.endError
            report.normSquared = fit.targetNormSquared
            report.errorSquared = fit.endError * fit.endError * fit.targetNormSquared
        }
        return (c, report)
    }

    private static func report(_ cores: MPOCores<Double>, _ r: TTSVDReport, layer: String, factorization f: MPOFactorization,
                               chi: Int) -> (MPOCores<Float>, LayerCompression) {
        let report = LayerCompression(
            layer: layer, out: f.outFeatures, in: f.inFeatures, factorization: f.description, chi: chi, bonds: r.bonds,
            denseParameters: r.denseParameters, parameters: r.parameters, compressionRatio: r.compressionRatio,
            relativeError: r.relativeError, errorBound: r.errorBound, normSquared: r.normW * r.normW,
            errorSquared: pow(r.relativeError * r.normW, 2), denseFlopsPerRow: 2 * Double(f.outFeatures * f.inFeatures),
            siteFlopsPerRow: f.siteFlopsPerRow(bonds: r.bonds))
        return (cores.converted(to: Float.self), report)
    }

    /// The weight matrix of every linear layer of `model`, by layer name: dense weights as they
    /// are, MPO layers contracted from their cores (so an MPO model can be re-compressed).
    /// With `layers`, only those.
    public static func denseWeights(_ model: Transformer, layers only: Set<String>? = nil) throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for l in model.config.linearLayers where only?.contains(l.name) ?? true {
            switch model.config.linearKind(l.name, out: l.out, in: l.in) {
            case .dense:
                out[l.name] = try model.parameter("\(l.name).weight")
            case .mpo(let f, let bonds):
                let cores = try (0..<f.sites).map { try model.parameter("\(l.name).cores.\($0)") }
                out[l.name] = contractMPO(MPOCores<Float>(factorization: f, bonds: bonds, cores: cores))
            }
        }
        return out
    }

    /// The factorisation layer `name` of `model` is compressed with: an MPO layer keeps its own; a
    /// dense one gets docs/SPEC.md §2's, or for a shape docs/SPEC.md does not fix the one cheapest to run site by
    /// site at `chi` (MPOFactorization.cheapest).
    public static func factorization(of name: String, in model: Transformer, chi: Int) -> MPOFactorization {
        let l = model.config.linearLayers.first { $0.name == name }!
        if case .mpo(let current, _) = model.config.linearKind(name, out: l.out, in: l.in) { return current }
        return model.config.factorization(of: name, out: l.out, in: l.in, chi: chi)
    }

    /// Every linear layer's factorisation at `chi`: `sites` nil the model's own or the chooser's
    /// (factorization(of:in:chi:)), 0 plain truncated SVD (W ≈ U·Vᵀ), n the cheapest with n sites.
    public static func factorizations(_ model: Transformer, chi: Int, sites: Int?) -> [String: MPOFactorization] {
        var out: [String: MPOFactorization] = [:]
        for l in model.config.linearLayers {
            switch sites {
            case nil: out[l.name] = factorization(of: l.name, in: model, chi: chi)
            case 0?: out[l.name] = MPOFactorization.lowRank(out: l.out, in: l.in)
            case let n?: out[l.name] = MPOFactorization.cheapest(out: l.out, in: l.in, chi: chi, minSites: n, maxSites: n)
            }
        }
        return out
    }

    /// Reports for every linear layer of a dense model at bond dimension `chi` (no model is built).
    public static func reports(for model: Transformer, chi: Int, factorizations: [String: MPOFactorization] = [:],
                               relativeTolerance: Double? = nil) throws -> [LayerCompression] {
        let weights = try denseWeights(model)
        return try model.config.linearLayers.map { l in
            let f = factorizations[l.name] ?? factorization(of: l.name, in: model, chi: chi)
            return try compressWeight(weights[l.name]!, layer: l.name, factorization: f, chi: chi,
                                      relativeTolerance: relativeTolerance).1
        }
    }

    /// A new MPO model on the same device: TT-SVD of every linear weight at `chi` (per-layer χ in
    /// `chiOverrides`, or a cap per bond in `bondCaps` from a budgeted allocation), all other
    /// parameters copied from `model`. With `inputMoments` (Calibration.inputSecondMoments), those
    /// layers are truncated by their output error on the calibration data (compressWhitened; an
    /// MPO's cores then fitted to it exactly by `alsSweeps` of ALS), and with `outputMoments` too
    /// (Calibration.outputGradientMoments) by K-FAC's two-sided Fisher (an MPO's output side as a Kronecker product). With `layers`, only those are compressed; every other
    /// layer stays as it is (dense or MPO). Works on MPO models too (their contracted W is
    /// TT-SVD'd again: progressive truncation). The new model has the source model's purpose
    /// (an inference-only source gives an inference-only model: no gradient or optimiser memory).
    public static func compress(_ model: Transformer, chi: Int, chiOverrides: [String: Int] = [:],
                                bondCaps: [String: [Int]] = [:], layers: Set<String>? = nil,
                                factorizations: [String: MPOFactorization] = [:],
                                relativeTolerance: Double? = nil,
                                inputMoments: [String: [Double]] = [:], outputMoments: [String: [Double]] = [:],
                                alsSweeps: Int = 0) throws -> (Transformer, [LayerCompression]) {
        guard chi >= 1 else { throw ModelError("bond dimension χ must be ≥ 1 (got \(chi))") }
        let weights = try denseWeights(model)
        var config = model.config
        config.chi = nil
        config.chiOverrides = [:]
        config.bonds = [:]
        config.factorizations = [:]
        var cores: [String: MPOCores<Float>] = [:]
        var reports: [LayerCompression] = []
        for l in config.linearLayers {
            let kind = model.config.linearKind(l.name, out: l.out, in: l.in)
            let f = factorizations[l.name]
                ?? factorization(of: l.name, in: model, chi: bondCaps[l.name]?.max() ?? chiOverrides[l.name] ?? chi)
            if let layers, !layers.contains(l.name) {   // kept as it is
                if case .mpo(let kept, let b) = kind {
                    config.bonds[l.name] = b
                    if kept != MPOFactorization.automatic(out: l.out, in: l.in) { config.factorizations[l.name] = kept }
                }
                continue
            }
            try f.validate(out: l.out, in: l.in)
            let (c, r): (MPOCores<Float>, LayerCompression)
            if let m = inputMoments[l.name] {
                let output: OutputWhitening?
                do { output = try outputMoments[l.name].map { try OutputWhitening(secondMoment: $0, factorization: f) } } catch {
                    throw ModelError("\(l.name), its output gradients: \(error)")
                }
                (c, r) = try compressWhitened(weights[l.name]!, layer: l.name, factorization: f,
                                              maxBonds: bondCaps[l.name] ?? f.cappedBonds(chi: chiOverrides[l.name] ?? chi), secondMoment: m,
                                              sweeps: alsSweeps, output: output)
            } else if let caps = bondCaps[l.name] {
                (c, r) = try compressWeight(weights[l.name]!, layer: l.name, factorization: f, maxBonds: caps,
                                            relativeTolerance: relativeTolerance)
            } else {
                (c, r) = try compressWeight(weights[l.name]!, layer: l.name, factorization: f, chi: chiOverrides[l.name] ?? chi,
                                            relativeTolerance: relativeTolerance)
            }
            config.bonds[l.name] = c.bonds
            if f != MPOFactorization.automatic(out: l.out, in: l.in) { config.factorizations[l.name] = f }
            cores[l.name] = c
            reports.append(r)
        }
        let out = try Transformer(config: config, device: model.device, purpose: model.purpose)
        for spec in out.layout.specs {
            if case .core(let l, let site) = spec.role, let c = cores[l.name] {   // a freshly compressed layer
                try out.setParameter(spec.name, c.cores[site])
            } else {
                try out.setParameter(spec.name, try model.parameter(spec.name))
            }
        }
        return (out, reports)
    }

    /// Per layer, how far its printed error (the exact output error of a whitened MPO fit) lies
    /// from the bound its allocation saw (the Kronecker-whitened spectrum's): compress
    /// --allocation measured weighs each layer's spectral errors by this ratio squared, so that
    /// the equal-error allocation levels exact errors. 1 where the bound is 0 (nothing truncated).
    public static func measuredErrorRatios(_ reports: [LayerCompression]) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: reports.map { ($0.layer, $0.errorBound > 1e-12 ? $0.relativeError / $0.errorBound : 1) })
    }

    /// Aggregate over layers: parameters, and the relative error sqrt(Σ‖W−Ŵ‖² / Σ‖W‖²).
    public static func total(_ reports: [LayerCompression]) -> (dense: Int, mpo: Int, relativeError: Double) {
        let n = reports.reduce(0.0) { $0 + $1.normSquared }, e = reports.reduce(0.0) { $0 + $1.errorSquared }
        return (reports.reduce(0) { $0 + $1.denseParameters }, reports.reduce(0) { $0 + $1.parameters },
                n > 0 ? (e / n).squareRoot() : 0)
    }
}

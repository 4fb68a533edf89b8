// The spectral allocation (a budget → a χ per layer from one SVD per unfolding): its predicted
// errors are TT-SVD's actual errors for two sites and plain SVD, and a bound for three; it keeps
// the budget; the equal-error objective levels the layers' errors where the sum objective lets
// some fall far behind; --sites and svd factorisations have the shapes they say.

import Foundation
import Testing
import TensorTrain
import TestSupport
@testable import MPOKit

@Suite("Spectral allocation")
struct SpectralAllocationTests {
    static func model() throws -> Transformer {
        try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
    }

    static func factorizations(_ m: Transformer, sites: Int?) -> [String: MPOFactorization] {
        var out: [String: MPOFactorization] = [:]
        for l in m.config.linearLayers {
            out[l.name] = sites.map { MPOFactorization.cheapest(out: l.out, in: l.in, chi: 4, minSites: $0, maxSites: $0) }
                ?? MPOFactorization.lowRank(out: l.out, in: l.in)
        }
        return out
    }

    @Test("predicted errors are TT-SVD's (two sites, SVD) or bound them (three sites), within the budget",
          arguments: [nil, 2, 3] as [Int?])
    func predictions(_ sites: Int?) throws {
        let m = try Self.model()
        let fs = Self.factorizations(m, sites: sites)
        for (name, f) in fs { #expect(f.sites == (sites ?? 2), "\(name) \(f)") }
        if sites == nil { #expect(fs.values.allSatisfy { $0.outFactors[1] == 1 && $0.inFactors[0] == 1 }) }
        let spectra = try SpectralAllocator.spectra(m, factorizations: fs)
        let linear = m.config.linearLayers.reduce(0) { $0 + $1.out * $1.in }, fixed = m.parameterCount - linear
        let budget = fixed + linear / 2
        let a = try SpectralAllocator.allocate(spectra, fixed: fixed, parameters: budget, minimumChi: 1)
        #expect(a.modelParameters <= budget && a.modelParameters > fixed + linear / 2 - linear / 10)
        let (compressed, reports) = try Compression.compress(m, chi: 1, bondCaps: a.bonds, factorizations: a.factorizations)
        #expect(compressed.parameterCount == a.modelParameters)
        for r in reports {
            let predicted = a.predictedError[r.layer]!
            if sites == 3 { #expect(r.relativeError <= predicted + 1e-5, "\(r.layer): \(r.relativeError) > bound \(predicted)") }
            else { #expect(abs(r.relativeError - predicted) < 1e-4, "\(r.layer): \(r.relativeError) vs \(predicted)") }
        }
    }

    @Test("equal-error levels the layers; error-per-parameter minimises their sum")
    func objectives() throws {
        let m = try Self.model()
        let spectra = try SpectralAllocator.spectra(m, factorizations: Self.factorizations(m, sites: 2))
        let linear = m.config.linearLayers.reduce(0) { $0 + $1.out * $1.in }, fixed = m.parameterCount - linear
        let budget = fixed + linear / 3
        let level = try SpectralAllocator.allocate(spectra, fixed: fixed, parameters: budget, objective: .equalError)
        let sum = try SpectralAllocator.allocate(spectra, fixed: fixed, parameters: budget, objective: .errorPerParameter)
        func stats(_ a: BondAllocation) -> (max: Double, sum2: Double) {
            (a.predictedError.values.max()!, a.predictedError.values.reduce(0) { $0 + $1 * $1 })
        }
        let l = stats(level), s = stats(sum)
        #expect(l.max <= s.max + 1e-12 && s.sum2 <= l.sum2 + 1e-12, "levelled \(l), summed \(s)")
        #expect { try SpectralAllocator.allocate(spectra, fixed: fixed, parameters: fixed + 10, minimumChi: 2) } throws: {
            "\($0)".contains("smallest MPO model")
        }
    }

    @Test("unfolding spectra are the singular values of the reshaped matrix")
    func spectraOfReshape() throws {
        var rng = SplitMix64(seed: 3)
        let w = (0..<(12 * 10)).map { _ in Float(rng.normal()) }
        let f = try MPOFactorization(outFactors: [3, 4], inFactors: [2, 5])
        let s = try unfoldingSpectra(w, factorization: f)
        let (_, r) = try ttSVD(w.map(Double.init), factorization: f, maxBond: 1_000)
        #expect(s.count == 1 && s[0].count == r.singularValues[0].count)
        #expect(zip(s[0], r.singularValues[0]).allSatisfy { abs($0 - $1) < 1e-4 * max(1, $1) })
    }
}

@Suite("Low-rank layers at inference")
struct LowRankInferenceTests {
    @Test("the two-GEMM path of a plain-SVD layer gives the rebuilt weight's logits")
    func twoGEMMs() throws {
        let m = try ModelCheckpoint.loadModel(FamilyReference.modelDirectory("llama-tiny"), device: CPUDevice(), purpose: .inference)
        var fs: [String: MPOFactorization] = [:]
        for l in m.config.linearLayers { fs[l.name] = MPOFactorization.lowRank(out: l.out, in: l.in) }
        let (low, _) = try Compression.compress(m, chi: 5, factorizations: fs)
        let ref = try FamilyReference.reference("llama-tiny")
        let (tok, _, b, t) = try FamilyReference.batch(ref)
        func logits(_ s: MPOStrategy) throws -> [Float] {
            low.mpoStrategy = s
            try low.forward(tokens: tok, batch: b, time: t, needsGradients: false)
            return try low.logits()
        }
        let site = try logits(.siteBySite), rebuild = try logits(.rebuild)
        #expect(zip(site, rebuild).map { abs($0 - $1) }.max()! < 1e-4)
        #expect(site.count == b * t * low.config.vocabularySize)
    }
}

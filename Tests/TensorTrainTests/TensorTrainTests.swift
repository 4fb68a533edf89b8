// TensorTrainTests.swift — factorisations (docs/SPEC.md §2 table, automatic rule, bonds, parameter
// counts incl. the whole-model formula), error messages, Codable, and contractMPO against a
// naive hand-written loop (pins down the (o0,o1,…,i0,i1,…) permutation convention).
// Shared test helpers (deterministic Gaussian generator, naive contraction) live here too.

import Foundation
import SeededRandom
import Testing
@testable import TensorTrain

// MARK: - Helpers

extension SplitMix64 {
    /// n standard normal samples (Box–Muller), independent of the platform RNG.
    mutating func array(_ n: Int) -> [Double] { (0..<n).map { _ in normal() } }
}

func frobenius(_ a: [Double]) -> Double { a.reduce(0) { $0 + $1 * $1 }.squareRoot() }
func relativeDifference(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    return frobenius(zip(a, b).map { $0 - $1 }) / frobenius(b)
}

/// Random MPO cores with the given bonds.
func randomCores(_ f: MPOFactorization, bonds: [Int], seed: UInt64) -> MPOCores<Double> {
    var g = SplitMix64(seed: seed)
    return MPOCores(factorization: f, bonds: bonds,
                    cores: f.coreShapes(bonds: bonds).map { g.array($0.reduce(1, *)) })
}

/// W[r, c] = Σ_{b_1..b_{L-1}} Π_l core_l[b_l, o_l, i_l, b_{l+1}], with (o_0..o_{L-1}) the digits of
/// r (o_0 most significant) and (i_0..i_{L-1}) those of c. Written as plainly as possible.
func naiveContract(_ m: MPOCores<Double>) -> [Double] {
    let f = m.factorization, L = f.sites
    func digits(_ n: Int, _ factors: [Int]) -> [Int] {
        var n = n, d = [Int](repeating: 0, count: factors.count)
        for k in stride(from: factors.count - 1, through: 0, by: -1) { d[k] = n % factors[k]; n /= factors[k] }
        return d
    }
    func entry(_ l: Int, _ bl: Int, _ o: Int, _ i: Int, _ br: Int) -> Double {
        let (no, ni, nb) = (f.outFactors[l], f.inFactors[l], m.bonds[l + 1])
        return m.cores[l][((bl * no + o) * ni + i) * nb + br]
    }
    var w = [Double](repeating: 0, count: f.outFeatures * f.inFeatures)
    for r in 0..<f.outFeatures {
        let od = digits(r, f.outFactors)
        for c in 0..<f.inFeatures {
            let id = digits(c, f.inFactors)
            // Sum over all inner bond tuples.
            var total = 0.0
            var b = [Int](repeating: 0, count: L + 1)
            func recurse(_ l: Int) {
                if l == L - 1 {
                    var p = 1.0
                    for k in 0..<L { p *= entry(k, b[k], od[k], id[k], b[k + 1]) }
                    total += p
                    return
                }
                for v in 0..<m.bonds[l + 1] { b[l + 1] = v; recurse(l + 1) }
            }
            recurse(0)
            w[r * f.inFeatures + c] = total
        }
    }
    return w
}

func fact(_ o: [Int], _ i: [Int]) -> MPOFactorization { try! MPOFactorization(outFactors: o, inFactors: i) }

// MARK: - Standard factorisations and parameter counts

/// The automatic balanced rule reproduces docs/SPEC.md §2's table (which MPOKit fixes for PicoGPT).
@Test func standardTable() throws {
    #expect(MPOFactorization.automatic(out: 128, in: 128) == fact([8, 16], [8, 16]))
    #expect(MPOFactorization.automatic(out: 512, in: 128) == fact([8, 8, 8], [4, 4, 8]))
    #expect(MPOFactorization.automatic(out: 128, in: 512) == fact([4, 4, 8], [8, 8, 8]))
    #expect(MPOFactorization.automatic(out: 65, in: 128) == fact([5, 13], [8, 16]))
    let f = MPOFactorization.automatic(out: 512, in: 128)
    #expect(f.sites == 3 && f.outFeatures == 512 && f.inFeatures == 128)
    #expect(f.description == "[8, 8, 8]×[4, 4, 8]")
    try f.validate(out: 512, in: 128)
}

@Test(arguments: [1, 2, 3, 4, 8, 16, 32, 64])
func layerParameterCounts(chi: Int) {
    let attn = MPOFactorization.automatic(out: 128, in: 128)
    let w1 = MPOFactorization.automatic(out: 512, in: 128)
    let w2 = MPOFactorization.automatic(out: 128, in: 512)
    let head = MPOFactorization.automatic(out: 65, in: 128)
    #expect(attn.parameterCount(bonds: attn.bonds(chi: chi)) == 320 * chi)
    #expect(w1.parameterCount(bonds: w1.bonds(chi: chi)) == 96 * chi + 32 * chi * chi)
    #expect(w2.parameterCount(bonds: w2.bonds(chi: chi)) == 96 * chi + 32 * chi * chi)
    #expect(head.parameterCount(bonds: head.bonds(chi: chi)) == 248 * chi)
    #expect(attn.coreShapes(bonds: attn.bonds(chi: chi)) == [[1, 8, 8, chi], [chi, 16, 16, 1]])
    #expect(w1.coreShapes(bonds: w1.bonds(chi: chi)) == [[1, 8, 4, chi], [chi, 8, 4, chi], [chi, 8, 8, 1]])
}

@Test(arguments: [(4, 42_336), (8, 79_168), (16, 177_408), (32, 472_192)])
func wholeModelParameterCount(chi: Int, expected: Int) {
    func mpo(_ o: Int, _ i: Int) -> Int {
        let f = MPOFactorization.automatic(out: o, in: i)
        return f.parameterCount(bonds: f.bonds(chi: chi))
    }
    let perBlock = 4 * mpo(128, 128) + mpo(512, 128) + mpo(128, 512)
    let denseRest = 65 * 128 + 9 * 256 + 4 * (128 + 512 + 128)
    #expect(denseRest == 13_696)
    let total = 4 * perBlock + mpo(65, 128) + denseRest
    #expect(total == 13_696 + 6_136 * chi + 256 * chi * chi)
    #expect(total == expected)
}

@Test func bondsAndCaps() {
    let attn = MPOFactorization.automatic(out: 128, in: 128)
    #expect(attn.bonds(chi: 100) == [1, 100, 1])           // fresh models are never capped
    #expect(attn.cappedBonds(chi: 100) == [1, 64, 1])      // rank of (8·8)×(16·16)
    #expect(attn.cappedBonds(chi: 32) == [1, 32, 1])
    let head = MPOFactorization.automatic(out: 65, in: 128)
    #expect(head.cappedBonds(chi: 64) == [1, 40, 1])
    let w1 = MPOFactorization.automatic(out: 512, in: 128)
    #expect(w1.bonds(chi: 64) == [1, 64, 64, 1])
    #expect(w1.cappedBonds(chi: 64) == [1, 32, 64, 1])
    #expect(w1.cappedBonds(chi: 1000) == [1, 32, 64, 1])
    let one = fact([6], [7])
    #expect(one.bonds(chi: 5) == [1, 1] && one.cappedBonds(chi: 5) == [1, 1])
    #expect(one.parameterCount(bonds: [1, 1]) == 42)
}

// MARK: - Automatic factorisation

/// Lexicographically smallest descending factor tuple, by brute force over all tuples.
func bruteForceBalanced(_ n: Int, _ count: Int) -> [Int] {
    var best: [Int]? = nil
    func go(_ rem: Int, _ acc: [Int]) {
        if acc.count == count - 1 {
            let t = (acc + [rem]).sorted(by: >)
            if best == nil || t.lexicographicallyPrecedes(best!) { best = t }
            return
        }
        for d in 1...rem where rem % d == 0 { go(rem / d, acc + [d]) }
    }
    go(n, [])
    return best!
}

@Test func automaticFactorisation() {
    let dims = [1, 2, 3, 5, 7, 12, 13, 17, 30, 64, 65, 96, 97, 100, 127, 128, 250, 256, 360, 384, 512,
                768, 1000, 1024, 1031, 3072, 4096]
    for o in dims {
        for i in dims {
            let f = MPOFactorization.automatic(out: o, in: i)
            #expect(f.outFeatures == o && f.inFeatures == i, "\(o)×\(i) → \(f)")
            #expect(f.outFactors.count == f.inFactors.count)
            #expect(f.sites == (o * i >= 65_536 ? 3 : 2), "\(o)×\(i) → \(f)")
            for (n, factors) in [(o, f.outFactors), (i, f.inFactors)] {
                #expect(factors.sorted(by: >) == bruteForceBalanced(n, f.sites), "\(n) → \(factors)")
                // Non-trivial factors ascending, then the 1s.
                let ones = factors.filter { $0 == 1 }.count
                #expect(Array(factors.prefix(factors.count - ones)) == factors.filter { $0 > 1 }.sorted())
                #expect(factors.suffix(ones).allSatisfy { $0 == 1 })
            }
        }
    }
    #expect(MPOFactorization.automatic(out: 7, in: 128) == fact([7, 1], [8, 16]))
    #expect(MPOFactorization.automatic(out: 1, in: 1) == fact([1, 1], [1, 1]))
    #expect(MPOFactorization.automatic(out: 97, in: 12) == fact([97, 1], [3, 4]))
    #expect(MPOFactorization.automatic(out: 1031, in: 1024) == fact([1031, 1, 1], [8, 8, 16]))
    #expect(MPOFactorization.automatic(out: 13, in: 6, sites: 1) == fact([13], [6]))
    #expect(MPOFactorization.automatic(out: 768, in: 3072, sites: 4) == fact([4, 4, 6, 8], [6, 8, 8, 8]))
    #expect(MPOFactorization.automatic(out: 30, in: 64, sites: 3) == fact([2, 3, 5], [4, 4, 4]))
    #expect(MPOFactorization.balancedFactors(128, count: 3) == [4, 4, 8])
}

// MARK: - Errors, Codable

@Test func factorisationErrors() throws {
    let mismatch = #expect(throws: TensorTrainError.self) { try MPOFactorization(outFactors: [8, 16], inFactors: [4, 4, 8]) }
    #expect(mismatch?.message.contains("same number of sites") == true)
    let zero = #expect(throws: TensorTrainError.self) { try MPOFactorization(outFactors: [8, 0], inFactors: [4, 4]) }
    #expect(zero?.message.contains("outFactors[1] = 0") == true)
    let neg = #expect(throws: TensorTrainError.self) { try MPOFactorization(outFactors: [8, 2], inFactors: [-4, 4]) }
    #expect(neg?.message.contains("inFactors[0] = -4") == true)
    #expect(throws: TensorTrainError.self) { try MPOFactorization(outFactors: [], inFactors: []) }

    let f = MPOFactorization.automatic(out: 128, in: 128)
    let e = #expect(throws: TensorTrainError.self) { try f.validate(out: 65, in: 128) }
    #expect(e?.message.contains("128×128") == true && e?.message.contains("65×128") == true, "\(String(describing: e))")
    try f.validate(out: 128, in: 128)
}

@Test func codableRoundTripValidates() throws {
    let f = MPOFactorization.automatic(out: 512, in: 128)
    let data = try JSONEncoder().encode(f)
    #expect(try JSONDecoder().decode(MPOFactorization.self, from: data) == f)
    let bad = Data(#"{"outFactors":[8,8],"inFactors":[4,4,8]}"#.utf8)
    #expect(throws: TensorTrainError.self) { try JSONDecoder().decode(MPOFactorization.self, from: bad) }
    #expect(Set([f, f, MPOFactorization.automatic(out: 65, in: 128)]).count == 2)
}

// MARK: - contractMPO against a naive loop

@Test(arguments: [
    (fact([2, 3], [3, 2]), [1, 4, 1]),
    (fact([2, 3], [3, 2]), [1, 1, 1]),
    (fact([3, 2], [2, 5]), [1, 7, 1]),
    (fact([2, 1, 3], [1, 2, 2]), [1, 3, 2, 1]),
    (fact([2, 1, 3], [1, 2, 2]), [1, 1, 5, 1]),
    (fact([3, 2, 2], [2, 3, 1]), [1, 2, 3, 1]),
    (fact([5], [3]), [1, 1]),
    (fact([2, 2, 1, 3], [3, 1, 2, 2]), [1, 2, 3, 2, 1]),
])
func contractionMatchesNaiveLoop(f: MPOFactorization, bonds: [Int]) throws {
    let m = randomCores(f, bonds: bonds, seed: UInt64(bonds.reduce(7, *) + f.outFeatures * 31))
    try m.checkShapes()
    let naive = naiveContract(m)
    let fast = contractMPO(m)
    #expect(fast.count == f.outFeatures * f.inFeatures)
    #expect(zip(fast, naive).allSatisfy { abs($0 - $1) <= 1e-12 * max(1, abs($1)) })
    let fastF = contractMPO(m.converted(to: Float.self))
    #expect(zip(fastF, naive).allSatisfy { abs(Double($0) - $1) <= 1e-5 * max(1, abs($1)) })
}

@Test func contractionConventionByHand() {
    // [2]×[1] then [1]×[3]; bond 1. core0 = (1,2,1,1) = [a0,a1], core1 = (1,1,3,1) = [b0,b1,b2].
    // W (2×3) = outer product a ⊗ b with o0 as the row, i1 as the column.
    let m = MPOCores<Double>(factorization: fact([2, 1], [1, 3]), bonds: [1, 1, 1],
                             cores: [[2, 3], [5, 7, 11]])
    #expect(contractMPO(m) == [10, 14, 22, 15, 21, 33])
    // [2,2]×[1,1] with bond 1: core0 = [a0,a1], core1 = [b0,b1]: W[2·o0+o1] = a_o0·b_o1.
    let n = MPOCores<Double>(factorization: fact([2, 2], [1, 1]), bonds: [1, 1, 1], cores: [[2, 3], [5, 7]])
    #expect(contractMPO(n) == [10, 14, 15, 21])
    // [1,1]×[2,2]: o-digits trivial, i0 most significant for the column.
    let p = MPOCores<Double>(factorization: fact([1, 1], [2, 2]), bonds: [1, 1, 1], cores: [[2, 3], [5, 7]])
    #expect(contractMPO(p) == [10, 14, 15, 21])
}

@Test func coresShapeChecks() {
    let f = fact([2, 3], [3, 2])
    var m = randomCores(f, bonds: [1, 4, 1], seed: 1)
    #expect(m.parameterCount == 2 * 3 * 4 + 4 * 3 * 2)
    #expect(m.coreShapes == [[1, 2, 3, 4], [4, 3, 2, 1]])
    m.cores[1].removeLast()
    let e = #expect(throws: TensorTrainError.self) { try m.checkShapes() }
    #expect(e?.message.contains("core 1") == true)
    m = randomCores(f, bonds: [1, 4, 1], seed: 1)
    m.bonds = [2, 4, 1]
    #expect(throws: TensorTrainError.self) { try m.checkShapes() }
}

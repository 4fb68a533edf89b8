// The CPU's fused MPO site step (mpo_site_step, CKernels) against its definition: out_p =
// Mᵀ·in_p per item, each element one FMA chain over k in order from 0, then beta·out added by
// one more FMA. Narrow items (o < 16) run transposed (vectorised along mo); both orientations
// must give exactly these bits on the AVX2 path (and agree to rounding on the portable one).

import CKernels
import MPOKit
import Testing

@Suite("MPO site step (CPU kernel)")
struct SiteStepTests {
    @Test("both orientations give the FMA chain's bits", arguments: [
        (p: 3, k: 32, mo: 64, o: 8),     // transposed: o < 16 < mo (PicoGPT W1, site 1 at χ = 8)
        (p: 2, k: 7, mo: 20, o: 3),      // transposed, ragged
        (p: 4, k: 16, mo: 12, o: 12),    // mo = o: as stored
        (p: 2, k: 9, mo: 8, o: 24),      // wide items: as stored
        (p: 5, k: 24, mo: 1, o: 4),      // mo < o: as stored
        (p: 1, k: 64, mo: 96, o: 1),     // o = 1: one product over the items
    ])
    func siteStep(_ c: (p: Int, k: Int, mo: Int, o: Int)) {
        var rng = SplitMix64(seed: UInt64(c.p * 1000 + c.k * 10 + c.o))
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(rng.uniform() * 2 - 1) } }
        let m = values(c.k * c.mo), x = values(c.p * c.k * c.o), start = values(c.p * c.mo * c.o)
        for beta: Float in [0, 0.5] {
            var expected = [Float](repeating: 0, count: start.count)
            for p in 0..<c.p {
                for i in 0..<c.mo {
                    for j in 0..<c.o {
                        var acc: Float = 0
                        for kk in 0..<c.k { acc = acc.addingProduct(m[kk * c.mo + i], x[(p * c.k + kk) * c.o + j]) }
                        let at = (p * c.mo + i) * c.o + j
                        expected[at] = beta == 0 ? acc : acc.addingProduct(beta, start[at])
                    }
                }
            }
            var out = start
            mpo_site_step(0, Int32(c.p), Int32(c.k), Int32(c.mo), Int32(c.o), m, x, &out, beta)
            if mpo_simd_active() == MPO_SIMD_AVX2 {
                #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "\(c) beta \(beta)")
            } else {
                let err = zip(out, expected).map { abs($0 - $1) }.max() ?? 0
                #expect(err < 1e-5, "\(c) beta \(beta): \(err)")
            }
        }
    }
}

// SplitMix64: the one seedable PRNG of the project (init, batch sampling, evaluation batches,
// sampling text). Same numbers on every device and platform; its state is one UInt64, so a
// checkpoint can store it and a resumed run continues the exact stream.

import Foundation

public struct SplitMix64: RandomNumberGenerator, Codable, Equatable, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform integer in 0..<n (n > 0), unbiased.
    public mutating func below(_ n: Int) -> Int { Int(next(upperBound: UInt64(n))) }

    /// Standard normal by Box–Muller (one value per call; simple and reproducible).
    public mutating func normal() -> Double {
        let u1 = max(uniform(), 0x1.0p-60), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

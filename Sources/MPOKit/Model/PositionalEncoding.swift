// Fixed interleaved sinusoidal positions (docs/SPEC.md §1.2), computed in Float32 the way PyTorch does:
// f_i = exp(2i · (−ln 10000 / C)), PE[p, 2i] = sin(p·f_i), PE[p, 2i+1] = cos(p·f_i).

import Foundation

public enum PositionalEncoding {
    /// The (positions, channels) table, row-major.
    public static func table(positions: Int, channels: Int) -> [Float] {
        var pe = [Float](repeating: 0, count: positions * channels)
        let k = Float(-log(10000.0) / Double(channels))
        for i in stride(from: 0, to: channels, by: 2) {
            let f = expf(Float(i) * k)
            for p in 0..<positions {
                let a = Float(p) * f
                pe[p * channels + i] = sinf(a)
                if i + 1 < channels { pe[p * channels + i + 1] = cosf(a) }
            }
        }
        return pe
    }
}

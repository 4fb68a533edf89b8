// Fixed interleaved sinusoidal positions (docs/SPEC.md §1.2), computed in Float32 the way PyTorch does:
// f_i = exp(2i · (−ln 10000 / C)), PE[p, 2i] = sin(p·f_i), PE[p, 2i+1] = cos(p·f_i).
// And the rotary table of the Llama family (docs/SPEC.md §9), as Hugging Face computes it in
// float32 (also when the model runs in float64): inv_freq_i = 1/θ^(2i/hd), angle = p·inv_freq_i
// rounded to float, row p = [cos(angle_0…), sin(angle_0…)].

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

    /// The (positions, hd) rotary table: row p holds hd/2 cosines, then hd/2 sines.
    public static func rotaryTable(positions: Int, headDim hd: Int, base: Double) -> [Float] {
        let h = hd / 2
        let inv = (0..<h).map { i in Float(1) / powf(Float(base), Float(2 * i) / Float(hd)) }
        var t = [Float](repeating: 0, count: positions * hd)
        for p in 0..<positions {
            for i in 0..<h {
                let a = Float(p) * inv[i]
                t[p * hd + i] = Float(cos(Double(a))); t[p * hd + h + i] = Float(sin(Double(a)))
            }
        }
        return t
    }
}

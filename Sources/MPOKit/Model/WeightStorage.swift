// WeightStorage: where an inference model keeps each parameter. With `--core-dtype f16|bf16` the
// large matrices — dense linear weights, the two factors of a low-rank (SVD) layer, the dense token
// embedding (and so a tied head) — live as 16-bit HalfMatrix values in one arena, everything else
// (norms, biases, positions, general MPO cores, whose site-by-site contraction needs f32 cores) in
// the f32 arena laid out without them. f32 models keep the one canonical layout.

import TensorTrain

/// The storage plan of one model.
struct WeightStorage {
    let dtype: WeightDType
    /// The f32 arena's layout (the model's own layout when nothing is stored in 16 bits).
    let arena: ParameterLayout
    /// Parameters stored in 16 bits: their matrix view (rows, columns) and offset in the half arena.
    let halves: [String: (rows: Int, columns: Int, offset: Int)]
    /// 4-byte elements of the half arena.
    let halfElements: Int

    init(config: ModelConfig, layout: ParameterLayout, dtype: WeightDType) {
        self.dtype = dtype
        guard dtype != .f32 else { arena = layout; halves = [:]; halfElements = 0; return }
        var halves: [String: (rows: Int, columns: Int, offset: Int)] = [:], at = 0
        func add(_ name: String, _ rows: Int, _ columns: Int) {
            halves[name] = (rows, columns, at)
            at += (HalfMatrix.elements(rows * columns) + 15) / 16 * 16
        }
        if config.tokenEmbedding == .dense { add("\(config.names.tokenEmbedding).weight", config.vocabularySize, config.channels) }
        for l in config.linearLayers {
            switch config.linearKind(l.name, out: l.out, in: l.in) {
            case .dense: add("\(l.name).weight", l.out, l.in)
            case .mpo(let f, let bonds) where f.isLowRank:
                add("\(l.name).cores.0", l.out, bonds[1]); add("\(l.name).cores.1", bonds[1], l.in)
            case .mpo: break
            }
        }
        self.halves = halves
        halfElements = at
        arena = layout.keeping { halves[$0.name] == nil }
    }

    /// The 16-bit matrices in `buffer` by parameter name.
    func matrices(in buffer: DeviceBuffer?) -> [String: HalfMatrix] {
        guard let buffer else { return [:] }
        var out: [String: HalfMatrix] = [:]
        for (name, h) in halves {
            out[name] = HalfMatrix(name: name, storage: buffer.view(h.offset, HalfMatrix.elements(h.rows * h.columns)),
                                   rows: h.rows, columns: h.columns, format: dtype)
        }
        return out
    }
}

extension MPOFactorization {
    /// A plain low-rank factorisation [out, 1] × [1, in] (truncated SVD as an MPO): core 0 is
    /// U (out, χ), core 1 is V (χ, in), both row-major.
    var isLowRank: Bool { sites == 2 && outFactors[1] == 1 && inFactors[0] == 1 }
}

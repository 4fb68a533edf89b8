// WeightStorage: where an inference model keeps each parameter. With `--core-dtype f16|bf16|q8` the
// large matrices — dense linear weights, the two factors of a low-rank (SVD) layer, the dense token
// embedding (and so a tied head) — live as PackedMatrix values (16 or 8 bits) in one arena, everything else
// (norms, biases, positions, general MPO cores, whose site-by-site contraction needs f32 cores) in
// the f32 arena laid out without them. f32 models keep the one canonical layout.

import TensorTrain

/// The storage plan of one model.
struct WeightStorage {
    let dtype: WeightDType
    /// The f32 arena's layout (the model's own layout when nothing is stored packed).
    let arena: ParameterLayout
    /// Parameters stored packed: their matrix view (rows, columns) and offset in the packed arena.
    let packed: [String: (rows: Int, columns: Int, offset: Int)]
    /// 4-byte elements of the packed arena.
    let packedElements: Int

    init(config: ModelConfig, layout: ParameterLayout, dtype: WeightDType) {
        self.dtype = dtype
        guard dtype != .f32 else { arena = layout; packed = [:]; packedElements = 0; return }
        var packed: [String: (rows: Int, columns: Int, offset: Int)] = [:], at = 0
        func add(_ name: String, _ rows: Int, _ columns: Int) {
            packed[name] = (rows, columns, at)
            at += (PackedMatrix.elements(rows: rows, columns: columns, format: dtype) + 15) / 16 * 16
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
        self.packed = packed
        packedElements = at
        arena = layout.keeping { packed[$0.name] == nil }
    }

    /// The packed matrices in `buffer` by parameter name.
    func matrices(in buffer: DeviceBuffer?) -> [String: PackedMatrix] {
        guard let buffer else { return [:] }
        var out: [String: PackedMatrix] = [:]
        for (name, h) in packed {
            out[name] = PackedMatrix(name: name, storage: buffer.view(h.offset, PackedMatrix.elements(rows: h.rows, columns: h.columns, format: dtype)),
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

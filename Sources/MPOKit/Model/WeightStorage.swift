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
    /// Parameters stored packed on their own: their matrix view (rows, columns) and offset in the
    /// packed arena (a stacked V factor is its rows of a stack, in `stacks`).
    let packed: [String: (rows: Int, columns: Int, offset: Int)]
    /// 4-byte elements of the packed arena.
    let packedElements: Int
    /// Low-rank layers of a block that read the same input (q/k/v; gate/up): their V factors
    /// (cores.1) stacked in one packed matrix, so one product serves them all (Linear.forwardStacked).
    let stacks: [Stack]

    struct Stack {
        /// WeightStorage.stackName of the layers.
        let name: String
        /// The layers in stacking order, each with its rank (its rows of the stack).
        let layers: [(name: String, rank: Int)]
        let columns: Int, offset: Int
        var rows: Int { layers.reduce(0) { $0 + $1.rank } }
    }

    /// The stacked V factors of `layers` (in order).
    static func stackName(_ layers: [String]) -> String { layers.joined(separator: "+") + ".cores.1" }

    init(config: ModelConfig, layout: ParameterLayout, dtype: WeightDType) {
        self.dtype = dtype
        guard dtype != .f32 else { arena = layout; packed = [:]; packedElements = 0; stacks = []; return }
        var packed: [String: (rows: Int, columns: Int, offset: Int)] = [:], at = 0
        func allocate(_ rows: Int, _ columns: Int) -> Int {
            defer { at += (PackedMatrix.elements(rows: rows, columns: columns, format: dtype) + 15) / 16 * 16 }
            return at
        }
        func add(_ name: String, _ rows: Int, _ columns: Int) { packed[name] = (rows, columns, allocate(rows, columns)) }
        func rank(_ l: ModelConfig.LinearLayer) -> Int? {
            guard case .mpo(let f, let bonds) = config.linearKind(l.name, out: l.out, in: l.in), f.isLowRank else { return nil }
            return bonds[1]
        }
        var stacks: [Stack] = [], stacked: Set<String> = []   // the stacked V factors' parameter names
        for b in 0..<config.layers {
            let block = config.blockLinears(b)
            for roles in [[LinearRole.query, .key, .value], [.gate, .up]] {
                let group = roles.compactMap { r in block.first { $0.role == r } }
                guard group.count >= 2, Set(group.map(\.in)).count == 1 else { continue }
                let ranks = group.compactMap(rank)
                guard ranks.count == group.count, (0...ranks.count).allSatisfy({
                    PackedMatrix.canSplitRows(at: ranks.prefix($0).reduce(0, +), columns: group[0].in, format: dtype)
                }) else { continue }
                stacks.append(Stack(name: Self.stackName(group.map(\.name)), layers: zip(group, ranks).map { ($0.name, $1) },
                                    columns: group[0].in, offset: allocate(ranks.reduce(0, +), group[0].in)))
                stacked.formUnion(group.map { "\($0.name).cores.1" })
            }
        }
        if config.tokenEmbedding == .dense { add("\(config.names.tokenEmbedding).weight", config.vocabularySize, config.channels) }
        for l in config.linearLayers {
            switch config.linearKind(l.name, out: l.out, in: l.in) {
            case .dense: add("\(l.name).weight", l.out, l.in)
            case .mpo(let f, let bonds) where f.isLowRank:
                add("\(l.name).cores.0", l.out, bonds[1])
                if !stacked.contains("\(l.name).cores.1") { add("\(l.name).cores.1", bonds[1], l.in) }
            case .mpo: break
            }
        }
        self.packed = packed
        self.stacks = stacks
        packedElements = at
        arena = layout.keeping { packed[$0.name] == nil && !stacked.contains($0.name) }
    }

    /// The packed matrices in `buffer` by parameter name.
    func matrices(in buffer: DeviceBuffer?) -> [String: PackedMatrix] {
        guard let buffer else { return [:] }
        var out: [String: PackedMatrix] = [:]
        for (name, h) in packed {
            out[name] = PackedMatrix(name: name, storage: buffer.view(h.offset, PackedMatrix.elements(rows: h.rows, columns: h.columns, format: dtype)),
                                   rows: h.rows, columns: h.columns, format: dtype)
        }
        for s in stacks {   // each stacked V factor: its rows of the stack
            let stack = matrix(s, in: buffer)
            var r0 = 0
            for l in s.layers {
                out["\(l.name).cores.1"] = stack.rows(r0, l.rank, name: "\(l.name).cores.1")
                r0 += l.rank
            }
        }
        return out
    }

    /// The stacks' matrices in `buffer`, by stack name.
    func stackedMatrices(in buffer: DeviceBuffer?) -> [String: PackedMatrix] {
        guard let buffer else { return [:] }
        return Dictionary(uniqueKeysWithValues: stacks.map { ($0.name, matrix($0, in: buffer)) })
    }

    private func matrix(_ s: Stack, in buffer: DeviceBuffer) -> PackedMatrix {
        PackedMatrix(name: s.name, storage: buffer.view(s.offset, PackedMatrix.elements(rows: s.rows, columns: s.columns, format: dtype)),
                     rows: s.rows, columns: s.columns, format: dtype)
    }
}

extension MPOFactorization {
    /// A plain low-rank factorisation [out, 1] × [1, in] (truncated SVD as an MPO): core 0 is
    /// U (out, χ), core 1 is V (χ, in), both row-major.
    var isLowRank: Bool { sites == 2 && outFactors[1] == 1 && inFactors[0] == 1 }
}

// Recognising the token embedding's kind from checkpoint tensor shapes (docs/SPEC.md §5, §8), for files
// without our `config` metadata (e.g. PyTorch state_dicts):
//  - `tok_emb.weight` (V, D): dense;
//  - `tok_emb.cores.<k>` whose core 0 starts with bond 1, (1, o_0, i_0, b_1): the table MPO
//    (docs/SPEC.md §2 core shapes; V = ∏ o_l, D = ∏ i_l);
//  - `tok_emb.cores.<k>` of shape (V, r_k, d_k, r_{k+1}) with r_0 = 1: per-token tensor trains
//    (D = ∏ d_k). A vocabulary of 1 would be ambiguous and reads as a table MPO.

import SafeTensors
import TensorTrain

extension ModelCheckpoint {
    /// Vocabulary size, d_model and embedding kind described by the `tok_emb.*` tensors.
    static func embeddingLayout(_ file: SafeTensorsFile) throws -> (vocabulary: Int, channels: Int, kind: EmbeddingKind) {
        if let emb = file.info("tok_emb.weight") {
            guard emb.shape.count == 2 else {
                throw ModelError("'tok_emb.weight' has shape \(emb.shape); expected (vocab, d_model)")
            }
            return (emb.shape[0], emb.shape[1], .dense)
        }
        guard let first = file.info("tok_emb.cores.0") else {
            throw ModelError("checkpoint has neither 'tok_emb.weight' (vocab, d_model) nor 'tok_emb.cores.0': not a PicoGPT checkpoint")
        }
        guard first.shape.count == 4 else {
            throw ModelError("'tok_emb.cores.0' has shape \(first.shape); expected 4 dimensions: (V, 1, d_0, r_1) for per-token tensor trains or (1, o_0, i_0, b_1) for a table MPO")
        }
        if first.shape[0] == 1 {
            let (f, bonds) = try coreLayout(file, "tok_emb")
            return (f.outFeatures, f.inFeatures, .mpo(factorization: f, bonds: bonds))
        }
        let V = first.shape[0]
        var factors: [Int] = [], ranks = [1], k = 0
        while let info = file.info("tok_emb.cores.\(k)") {
            let s = info.shape
            guard s.count == 4, s[0] == V, s[1] == ranks.last!, s[2] >= 1, s[3] >= 1 else {
                throw ModelError("per-token core 'tok_emb.cores.\(k)' has shape \(s); expected (\(V), \(ranks.last!), d_\(k), r_\(k + 1))")
            }
            factors.append(s[2]); ranks.append(s[3])
            k += 1
        }
        guard ranks.last == 1 else {
            throw ModelError("the last per-token core 'tok_emb.cores.\(k - 1)' must end in rank 1, got \(ranks.last!)")
        }
        return (V, factors.reduce(1, *), .tensorTrain(factors: factors, ranks: ranks))
    }
}

// Activations: every tensor the forward pass keeps for the backward pass, plus the scratch the
// backward pass needs, carved out of one device arena for a given (B, T).
// Shapes (N = B·T): residual streams (N, C); q/k/v/att (N, C); lse (B, H, T); ffn hidden (N, F);
// logits and dLogits (N, V); losses and correct flags (N); tokens/targets (N) Int32.

struct BlockActivations {
    let input: TensorView        // x_l, the residual stream entering the block (N, C)
    let ln1, ln1Mean, ln1Rstd: TensorView
    let q, k, v, att, lse: TensorView
    let mid: TensorView          // x_l + attention branch (N, C)
    let ln2, ln2Mean, ln2Rstd: TensorView
    let hidden: TensorView       // relu(W1·ln2 + b1) (N, F); relu is applied in place
}

final class Activations {
    let batch: Int, time: Int
    let arena: DeviceBuffer
    let ids: DeviceBuffer          // Int32: tokens (N) then targets (N)
    let tokens, targets: TensorView
    let blocks: [BlockActivations]
    let output: TensorView         // x_L (N, C)
    let lnf, lnfMean, lnfRstd: TensorView
    let logits, losses, correct: TensorView
    // backward scratch
    let dResidual, dLn, dAtt, dq, dk, dv, dHidden, dLogits: TensorView

    init(config c: ModelConfig, batch: Int, time: Int, device: any ComputeDevice) throws {
        self.batch = batch; self.time = time
        let N = batch * time, C = c.channels, F = c.ffn, V = c.vocabularySize
        var sizes: [Int] = []
        func take(_ n: Int) -> Int { sizes.append((n + 15) / 16 * 16); return sizes.count - 1 }
        // Plan the arena first, then allocate once.
        struct BlockPlan { var idx: [Int] }
        var plans: [[Int]] = []
        for _ in 0..<c.layers {
            plans.append([take(N * C), take(N * C), take(N), take(N), take(N * C), take(N * C), take(N * C),
                          take(N * C), take(batch * c.heads * time), take(N * C), take(N * C), take(N), take(N),
                          take(N * F)])
        }
        let tail = [take(N * C), take(N * C), take(N), take(N), take(N * V), take(N), take(N),
                    take(N * C), take(N * C), take(N * C), take(N * C), take(N * C), take(N * C), take(N * F), take(N * V)]
        var offsets = [Int](repeating: 0, count: sizes.count)
        var total = 0
        for (i, s) in sizes.enumerated() { offsets[i] = total; total += s }
        arena = try device.makeBuffer(count: total, label: "activations B=\(batch) T=\(time)")
        ids = try device.makeBuffer(count: 2 * N, label: "token ids")
        tokens = ids.view(0, N); targets = ids.view(N, N)
        let a = arena
        func v(_ i: Int, _ n: Int) -> TensorView { a.view(offsets[i], n) }
        blocks = plans.map { p in
            BlockActivations(input: v(p[0], N * C), ln1: v(p[1], N * C), ln1Mean: v(p[2], N), ln1Rstd: v(p[3], N),
                             q: v(p[4], N * C), k: v(p[5], N * C), v: v(p[6], N * C), att: v(p[7], N * C),
                             lse: v(p[8], batch * c.heads * time), mid: v(p[9], N * C), ln2: v(p[10], N * C),
                             ln2Mean: v(p[11], N), ln2Rstd: v(p[12], N), hidden: v(p[13], N * F))
        }
        output = v(tail[0], N * C); lnf = v(tail[1], N * C); lnfMean = v(tail[2], N); lnfRstd = v(tail[3], N)
        logits = v(tail[4], N * V); losses = v(tail[5], N); correct = v(tail[6], N)
        dResidual = v(tail[7], N * C); dLn = v(tail[8], N * C); dAtt = v(tail[9], N * C)
        dq = v(tail[10], N * C); dk = v(tail[11], N * C); dv = v(tail[12], N * C)
        dHidden = v(tail[13], N * F); dLogits = v(tail[14], N * V)
    }
}

// OpenCLDevice: the transformer ops — embedding, LayerNorm, attention, the fused loss, AdamW and
// the sum of squares (kernels in embedding.cl, layernorm.cl, attention.cl, loss.cl, optimizer.cl).
//
// Legend: B batch, T time, C channels, V vocabulary, N = B·T rows, H heads, hd head dim.
// attention.cl is compiled per head dim (-DATT_HD), on first use, through the binary cache; a
// failed build is recorded like any enqueue failure. Column reductions (LayerNorm dWeight/dBias)
// use the same two-stage scheme as biasBackward.

import COpenCL
import Foundation
import MPOKit

extension OpenCLDevice {
    // MARK: - Embedding

    public func embeddingForward(tokens: TensorView, table: TensorView, positions: TensorView?, out: TensorView,
                                 batch: Int, time: Int, channels: Int) {
        let n = batch * time, C = channels
        precondition(tokens.count >= n && out.count >= n * C && (positions?.count ?? time * C) >= time * C, "embedding shape mismatch")
        locked {
            launch("embeddingForward", main, "kernel_embedding_forward", global: [C, n], local: [16, 16],
                   [.view(tokens), .view(table), .view(positions ?? table), .view(out), .int(n), .int(time), .int(C),
                    .int(table.count / max(C, 1)), .int(positions == nil ? 0 : 1)])
        }
    }

    public func embeddingForwardPacked(tokens: TensorView, table: PackedMatrix, positions: TensorView?, out: TensorView,
                                     batch: Int, time: Int, channels: Int) {
        let n = batch * time, C = channels
        precondition(table.columns == C && tokens.count >= n && out.count >= n * C && (positions?.count ?? time * C) >= time * C,
                     "embedding shape mismatch (\(table.name))")
        if table.format == .q8 {
            locked {
                launch("embeddingForwardPacked", main, "kernel_embedding_forward_q8", global: [C, n], local: [16, 16],
                       [.view(tokens), .view(table.storage), .view(table.scales), .view(positions ?? out), .view(out), .int(n), .int(time), .int(C),
                        .int(table.rows), .int(positions == nil ? 0 : 1)])
            }
            return
        }
        locked {
            launch("embeddingForwardPacked", main, "kernel_embedding_forward_half", global: [C, n], local: [16, 16],
                   [.view(tokens), .view(table.storage), .view(positions ?? out), .view(out), .int(n), .int(time), .int(C),
                    .int(table.rows), .int(positions == nil ? 0 : 1), .int(Int(table.isBF16))])
        }
    }

    public func gemmPacked(_ s: GemmShape, a: TensorView, b: PackedMatrix, c: TensorView) {
        precondition(s.batch == 1 && s.transposeB && !s.transposeA && s.ldb == s.k && b.rows == s.n && b.columns == s.k,
                     "\(s): gemmPacked takes one NT product with B (\(b.rows), \(b.columns)) = \(b.name)")
        precondition(s.m == 0 || (s.extentA <= a.count && s.extentC <= c.count), "\(s): operands too small for \(b.name)")
        guard s.m > 0 && s.n > 0 else { return }
        if b.format == .q8 {
            locked {
                launch("gemmPacked", main, "kernel_gemm_q8", global: [s.n, s.m], local: [16, 1],
                       [.view(a), .int(s.lda), .view(b.storage), .view(b.scales), .view(c), .int(s.ldc), .int(s.m), .int(s.n), .int(s.k),
                        .float(s.alpha), .float(s.beta)])
            }
            return
        }
        locked {
            launch("gemmPacked", main, "kernel_gemm_half", global: [s.n, s.m], local: [16, 1],
                   [.view(a), .int(s.lda), .view(b.storage), .view(c), .int(s.ldc), .int(s.m), .int(s.n), .int(s.k),
                    .float(s.alpha), .float(s.beta), .int(Int(b.isBF16))])
        }
    }

    public func positionBackward(dOut: TensorView, dTable: TensorView, batch: Int, time: Int, channels C: Int) {
        precondition(dOut.count >= batch * time * C && dTable.count >= time * C, "position backward shape mismatch")
        guard batch > 0 && time > 0 && C > 0 else { return }
        locked {
            launch("positionBackward", main, "kernel_position_backward", global: [C, time], local: [16, 1],
                   [.view(dOut), .view(dTable), .int(batch), .int(time), .int(C)])
        }
    }

    public func embeddingBackward(dOut: TensorView, tokens: TensorView, dTable: TensorView,
                                  batch: Int, time: Int, channels: Int) {
        let n = batch * time, C = channels, V = dTable.count / max(C, 1)
        precondition(tokens.count >= n && dOut.count >= n * C, "embedding backward shape mismatch")
        guard n > 0 && C > 0 && V > 0 else { return }
        // Row chunks of the first stage (a function of the shape only): up to 64, with the
        // (chunks, V, C) partials capped at 2^24 accumulators.
        let chunks = max(1, min(64, n / 64, (1 << 24) / (V * C)))
        locked {
            guard let partial = scratchBuffer(.embeddingPartial, bytes: chunks * V * C * tuning.accumulatorBytes) else { return }
            launch("embeddingBackward", main, "kernel_embedding_backward", global: [C, chunks], local: [16, 1],
                   [.view(dOut), .view(tokens), .mem(partial), .int(n), .int(C), .int(V), .int(chunks)])
            launch("embeddingBackward", main, "kernel_embedding_backward_finish", global: [C, V], local: [16, 1],
                   [.mem(partial), .view(dTable), .int(C), .int(V), .int(chunks)])
        }
    }

    // MARK: - LayerNorm

    /// A Double ε as the two floats the norm kernels add back together in acc_t.
    static func epsilonArgs(_ e: Double) -> [KernelArg] {
        let hi = Float(e)
        return [.float(hi), .float(Float(e - Double(hi)))]
    }

    public func layerNormForward(_ x: TensorView, weight: TensorView, bias: TensorView, out: TensorView,
                                 mean: TensorView, rstd: TensorView, rows: Int, columns C: Int, epsilon: Double) {
        checkLayerNormForward(x: x, weight: weight, bias: bias, out: out, mean: mean, rstd: rstd, rows: rows, columns: C)
        let g = tuning.layerNormGroup
        locked {
            launch("layerNormForward", main, "kernel_layernorm_forward", global: [rows * g], local: [g],
                   [.view(x), .view(weight), .view(bias), .view(out), .view(mean), .view(rstd), .int(C)] + Self.epsilonArgs(epsilon))
        }
    }

    public func layerNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, mean: TensorView,
                                  rstd: TensorView, dInput: TensorView, dWeight: TensorView, dBias: TensorView,
                                  rows: Int, columns C: Int) {
        checkLayerNormBackward(dOut: dOut, x: x, weight: weight, mean: mean, rstd: rstd, dInput: dInput, dWeight: dWeight,
                               dBias: dBias, rows: rows, columns: C)
        guard rows > 0 && C > 0 else { return }
        let g = tuning.layerNormGroup
        locked {
            launch("layerNormBackward", main, "kernel_layernorm_backward", global: [rows * g], local: [g],
                   [.view(dOut), .view(x), .view(weight), .view(mean), .view(rstd), .view(dInput), .int(C)])
            let chunks = Self.columnChunks(rows: rows)
            guard let partial = scratchBuffer(.columnPartial, bytes: chunks * 2 * C * tuning.accumulatorBytes) else { return }
            launch("layerNormBackward", main, "kernel_layernorm_backward_params", global: [C, chunks], local: [16, 1],
                   [.view(dOut), .view(x), .view(mean), .view(rstd), .mem(partial), .int(rows), .int(C), .int(chunks)])
            launch("layerNormBackward", main, "kernel_colsum_finish", global: [C], local: [64],
                   [.mem(partial), .int(0), .int(2 * C), .int(chunks), .view(dWeight), .int(C)])
            launch("layerNormBackward", main, "kernel_colsum_finish", global: [C], local: [64],
                   [.mem(partial), .int(C), .int(2 * C), .int(chunks), .view(dBias), .int(C)])
        }
    }

    // MARK: - Attention

    /// The attention program for `headDim` and its tile (built on first use; lock held).
    func attentionProgram(headDim: Int) -> (OpenCLProgram, Int)? {
        let tile = tuning.attentionTile(headDim: headDim, localMemory: info.localMemoryBytes)
        if let p = attentionPrograms[headDim] { return (p, tile) }
        guard UInt64(2 * tile * headDim * 4 + 2 * tile * 4) <= info.localMemoryBytes else {
            record(.unsupported("attention", "head dim \(headDim) needs more local memory than the device's \(info.localMemoryBytes) bytes"))
            return nil
        }
        do {
            let options = tuning.commonOptions + " -DATT_HD=\(headDim) -DATT_BQ=\(tile) -DATT_BK=\(tile)"
            let p = try OpenCLProgram.build(files: ["attention.cl"], options: options, sources: sources, context: context,
                                            device: device, deviceKey: deviceKey, cache: cache)
            attentionPrograms[headDim] = p
            return (p, tile)
        } catch let e as OpenCLError {
            record(e)
        } catch {
            record(OpenCLError(code: CL_BUILD_PROGRAM_FAILURE, call: "attention program (hd=\(headDim))", detail: "\(error)"))
        }
        return nil
    }

    public func attentionForward(_ s: AttentionShape, q: TensorView, k: TensorView, v: TensorView,
                                 out: TensorView, lse: TensorView) {
        checkAttention(s, q: [q, out], kv: [k, v], lse: lse, keyRows: s.kvRows)
        guard s.tokens > 0 else { return }
        let scale = 1 / Float(s.headDim).squareRoot()
        locked {
            guard let (p, tile) = attentionProgram(headDim: s.headDim) else { return }
            let tiles = (s.time + tile - 1) / tile
            launch("attentionForward", p, "kernel_attention_forward", global: [tiles * tile, s.batch * s.heads], local: [tile, 1],
                   [.view(q), .view(k), .view(v), .view(out), .view(lse), .int(s.time), .int(s.keys), .int(s.queryOffset),
                    .float(scale), .int(s.heads), .int(s.kvRows), .int(s.kvHeads)])
        }
    }

    public func attentionBackward(_ s: AttentionShape, dOut: TensorView, q: TensorView, k: TensorView,
                                  v: TensorView, out: TensorView, lse: TensorView,
                                  dq: TensorView, dk: TensorView, dv: TensorView) {
        precondition(s.queryOffset == 0, "attention backward supports queryOffset 0 only (training)")
        checkAttention(s, q: [dOut, q, out, dq], kv: [k, v, dk, dv], lse: lse, keyRows: s.time)
        guard s.tokens > 0 else { return }
        let scale = 1 / Float(s.headDim).squareRoot()
        locked {
            guard let (p, tile) = attentionProgram(headDim: s.headDim) else { return }
            let tiles = (s.time + tile - 1) / tile
            let common: [KernelArg] = [.view(q), .view(k), .view(v), .view(out), .view(dOut), .view(lse)]
            launch("attentionBackward", p, "kernel_attention_backward_dkv", global: [tiles * tile, s.batch * s.kvHeads],
                   local: [tile, 1], common + [.view(dk), .view(dv), .int(s.time), .int(s.heads), .float(scale), .int(s.kvHeads)])
            launch("attentionBackward", p, "kernel_attention_backward_dq", global: [tiles * tile, s.batch * s.heads],
                   local: [tile, 1], common + [.view(dq), .int(s.time), .int(s.heads), .float(scale), .int(s.kvHeads)])
        }
    }

    // MARK: - Loss

    public func crossEntropy(logits: TensorView, targets: TensorView, losses: TensorView, correct: TensorView,
                             dLogits: TensorView?, gradScale: Float, rows: Int, vocabulary V: Int) {
        checkCrossEntropy(logits: logits, targets: targets, losses: losses, correct: correct, dLogits: dLogits, rows: rows, vocabulary: V)
        guard rows > 0 && V > 0 else { return }
        let g = tuning.crossEntropyGroup
        locked {
            launch("crossEntropy", main, "kernel_crossentropy_forward", global: [rows * g], local: [g],
                   [.view(logits), .view(targets), .view(losses), .view(correct), .view(dLogits ?? logits),
                    .int(dLogits == nil ? 0 : 1), .float(gradScale), .int(V)])
        }
    }

    public func distillation(student: TensorView, teacher: TensorView, losses: TensorView, dLogits: TensorView?,
                             temperature: Float, gradScale: Float, rows: Int, vocabulary V: Int) {
        checkDistillation(student: student, teacher: teacher, losses: losses, dLogits: dLogits, temperature: temperature,
                          rows: rows, vocabulary: V)
        guard rows > 0 && V > 0 else { return }
        let g = tuning.crossEntropyGroup
        locked {
            launch("distillation", main, "kernel_distillation_forward", global: [rows * g], local: [g],
                   [.view(student), .view(teacher), .view(losses), .view(dLogits ?? student), .int(dLogits == nil ? 0 : 1),
                    .float(1 / temperature), .float(temperature), .float(gradScale), .int(V)])
        }
    }

    public func squaredDistance(_ a: TensorView, _ b: TensorView, sums: TensorView, dA: TensorView?, gradScale: Float,
                                rows: Int, columns C: Int) {
        checkSquaredDistance(a: a, b: b, sums: sums, dA: dA, rows: rows, columns: C)
        guard rows > 0 && C > 0 else { return }
        let g = tuning.layerNormGroup
        locked {
            launch("squaredDistance", main, "kernel_squared_distance", global: [rows * g], local: [g],
                   [.view(a), .view(b), .view(sums), .view(dA ?? sums), .int(dA == nil ? 0 : 1), .float(gradScale), .int(C)])
        }
    }

    // MARK: - Optimiser

    public func sumOfSquares(_ view: TensorView) throws -> Double {
        _ = mem(view, "sumOfSquares")   // ownership check
        return try locked {
            try throwPending()
            guard view.count > 0 else { return 0 }
            let g = tuning.sumOfSquaresGroup
            let groups = max(1, min(tuning.sumOfSquaresGroups, (view.count + g - 1) / g))
            let width = tuning.useFP64 ? 8 : 4
            guard let partial = scratchBuffer(.sumOfSquares, bytes: groups * width) else { try throwPending(); return 0 }
            launch("sumOfSquares", main, "kernel_sumsq_forward", global: [groups * g], local: [g],
                   [.view(view), .int(view.count), .mem(partial)])
            try throwPending()
            var bytes = [UInt8](repeating: 0, count: groups * width)
            try check(clEnqueueReadBuffer(queue, partial, cl_bool(CL_TRUE), 0, bytes.count, &bytes, 0, nil, nil),
                      "clEnqueueReadBuffer(sumOfSquares partials)")
            waited()
            return bytes.withUnsafeBytes { raw in
                tuning.useFP64 ? raw.bindMemory(to: Double.self).reduce(0, +)
                               : raw.bindMemory(to: Float.self).reduce(0.0) { $0 + Double($1) }
            }
        }
    }

    public func adamW(parameters: TensorView, gradients: TensorView, m: TensorView, v: TensorView, hyper h: AdamWHyper,
                      control: TensorView?) {
        precondition(parameters.count == gradients.count && m.count == parameters.count && v.count == parameters.count,
                     "adamW size mismatch")
        let s = h.stepScalars   // exactly as CPUDevice computes them
        locked {
            launch1D("adamW", "kernel_adamw_forward", n: parameters.count,
                     [.view(parameters), .view(gradients), .view(m), .view(v), .int(parameters.count),
                      .float(h.beta1), .float(h.beta2), .float(h.epsilon), .float(s.decay), .float(s.stepSize), .float(s.bc2Sqrt),
                      ] + accumulatorArgs(control ?? parameters, "adamW") + [.int(control == nil ? 0 : 1)])
        }
    }

    // MARK: - Step scalars (acc_t values in the view: this device's layout)

    /// A view holding acc_t values: its buffer and its offset in acc_t units (the view must start
    /// at a multiple of the acc_t size).
    func accumulatorArgs(_ v: TensorView, _ op: String) -> [KernelArg] {
        let width = tuning.accumulatorBytes
        precondition((v.offset * 4) % width == 0, "\(op): an acc_t view must start at a multiple of \(width) bytes")
        return [.mem(mem(v, op)), .int(v.offset * 4 / width)]
    }

    public func stepScalars(losses: TensorView, correct: TensorView, extra: TensorView?, rows: Int, gradients: TensorView,
                            clip: Double, into out: TensorView) {
        precondition(out.count >= StepScalars.count && losses.count >= rows && correct.count >= rows && (extra?.count ?? rows) >= rows,
                     "stepScalars shape mismatch")
        let g = tuning.sumOfSquaresGroup
        let groups = max(1, min(tuning.sumOfSquaresGroups, (gradients.count + g - 1) / g))
        locked {
            guard let partial = scratchBuffer(.stepPartial, bytes: groups * tuning.accumulatorBytes) else { return }
            launch("stepScalars", main, "kernel_sumsq_forward", global: [groups * g], local: [g],
                   [.view(gradients), .int(gradients.count), .mem(partial)])
            launch("stepScalars", main, "kernel_step_scalars", global: [g], local: [g],
                   [.view(losses), .view(correct), .view(extra ?? losses), .int(extra == nil ? 0 : 1), .int(rows),
                    .mem(partial), .int(groups), .float(Float(clip))] + accumulatorArgs(out, "stepScalars"))
        }
    }

    public func readStepScalars(_ v: TensorView) throws -> StepScalars {
        precondition(v.count >= StepScalars.count, "readStepScalars: view too small")
        let width = tuning.accumulatorBytes
        var bytes = [UInt8](repeating: 0, count: 6 * width)
        let m = mem(v, "readStepScalars")
        try locked {
            try throwPending()
            try check(clEnqueueReadBuffer(queue, m, cl_bool(CL_TRUE), v.offset * 4, bytes.count, &bytes, 0, nil, nil),
                      "clEnqueueReadBuffer(step scalars)")
            waited()
        }
        let d: [Double] = bytes.withUnsafeBytes { raw in
            width == 8 ? Array(raw.bindMemory(to: Double.self)) : raw.bindMemory(to: Float.self).map(Double.init)
        }
        return StepScalars(crossEntropy: d[0], distillation: d[1], accuracy: d[2], gradientSquares: d[3], clipScale: d[4], finite: d[5] != 0)
    }
}

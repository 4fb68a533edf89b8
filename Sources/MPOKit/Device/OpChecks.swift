// The preconditions of the device ops, one definition each: every device's implementation calls
// the check of its op first, so a view too small for its shape traps with the same message on
// every device (a caller's bug, never a data error: those are thrown above the device line).

extension ComputeDevice {
    /// The views an `mpoForward` of `s` needs.
    public func checkMPOForward(_ s: MPOContraction, x: TensorView, cores: [TensorView], y: TensorView, scratch: TensorView) {
        precondition(cores.count == s.sites && (0..<s.sites).allSatisfy { cores[$0].count >= s.coreCount($0) },
                     "mpoForward: \(cores.count) cores for \(s)")
        precondition(x.count >= s.rows * s.inFeatures && y.count >= s.rows * s.outFeatures && scratch.count >= s.scratchCount,
                     "mpoForward: views too small for \(s)")
    }

    public func checkLayerNormForward(x: TensorView, weight: TensorView, bias: TensorView, out: TensorView,
                                      mean: TensorView, rstd: TensorView, rows: Int, columns C: Int) {
        precondition(x.count >= rows * C && out.count >= rows * C && weight.count >= C && bias.count >= C
                     && mean.count >= rows && rstd.count >= rows, "layerNorm shape mismatch")
    }

    public func checkLayerNormBackward(dOut: TensorView, x: TensorView, weight: TensorView, mean: TensorView, rstd: TensorView,
                                       dInput: TensorView, dWeight: TensorView, dBias: TensorView, rows: Int, columns C: Int) {
        precondition(dOut.count >= rows * C && x.count >= rows * C && dInput.count >= rows * C && weight.count >= C
                     && dWeight.count >= C && dBias.count >= C && mean.count >= rows && rstd.count >= rows,
                     "layerNorm backward shape mismatch")
    }

    public func checkCrossEntropy(logits: TensorView, targets: TensorView, losses: TensorView, correct: TensorView,
                                  dLogits: TensorView?, rows: Int, vocabulary V: Int) {
        precondition(logits.count >= rows * V && targets.count >= rows && losses.count >= rows && correct.count >= rows
                     && (dLogits?.count ?? rows * V) >= rows * V, "crossEntropy shape mismatch")
    }

    public func checkDistillation(student: TensorView, teacher: TensorView, losses: TensorView, dLogits: TensorView?,
                                  temperature: Float, rows: Int, vocabulary V: Int) {
        precondition(student.count >= rows * V && teacher.count >= rows * V && losses.count >= rows
                     && (dLogits?.count ?? rows * V) >= rows * V, "distillation shape mismatch")
        precondition(temperature > 0, "distillation temperature must be > 0")
    }

    public func checkSquaredDistance(a: TensorView, b: TensorView, sums: TensorView, dA: TensorView?, rows: Int, columns C: Int) {
        precondition(a.count >= rows * C && b.count >= rows * C && sums.count >= rows && (dA?.count ?? rows * C) >= rows * C,
                     "squaredDistance shape mismatch")
    }

    public func checkRMSNorm(x: TensorView, weight: TensorView, out: TensorView, rstd: TensorView, rows: Int, columns C: Int) {
        precondition(x.count >= rows * C && out.count >= rows * C && weight.count >= C && rstd.count >= rows, "rmsNorm shape mismatch")
    }

    public func checkRotary(_ x: TensorView, table: TensorView, shape s: RotaryShape) {
        precondition(s.headDim >= 2 && s.headDim % 2 == 0, "rotary: head dim \(s.headDim) must be even")
        precondition(x.count >= s.rows * s.width && table.count >= s.positions * s.headDim, "rotary: views too small for \(s)")
    }

    public func checkAttention(_ s: AttentionShape, q: [TensorView], kv: [TensorView], lse: TensorView, keyRows: Int) {
        precondition(s.batch >= 0 && s.time >= 0 && s.heads >= 1 && s.headDim >= 1 && s.kvHeads >= 1 && s.heads % s.kvHeads == 0
                     && s.queryOffset >= 0, "attention: bad \(s) (kvHeads must divide heads)")
        for v in q { precondition(v.count >= s.tokens * s.channels, "attention: view of \(v.count) too small for \(s)") }
        for v in kv { precondition(v.count >= s.batch * keyRows * s.kvChannels, "attention: k/v view of \(v.count) too small for \(s)") }
        precondition(lse.count >= s.batch * s.heads * s.time, "attention: lse too small for \(s)")
    }
}

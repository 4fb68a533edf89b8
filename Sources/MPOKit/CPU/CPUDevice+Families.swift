// CPUDevice: the ops the Llama and GPT-2 families add — RMSNorm, rotary embedding, SwiGLU and
// GELU — through CKernels (layernorm.c, activations.c). Row reductions (RMSNorm's weight
// gradient) use the fixed row chunks of `reduceRows`, so any thread count gives the same bits.

import CKernels

extension CPUDevice {
    public func rmsNormForward(_ x: TensorView, weight: TensorView, out: TensorView, rstd: TensorView, rows: Int, columns C: Int,
                               epsilon: Double) {
        checkRMSNorm(x: x, weight: weight, out: out, rstd: rstd, rows: rows, columns: C)
        let px = ptr(x), w = ptr(weight), o = ptr(out), pr = ptr(rstd)
        parallelFor(rows, grain: 32) { r in
            let at = r.lowerBound
            mpo_rmsnorm_forward(px + at * C, w, o + at * C, pr + at, Int32(r.count), Int32(C), epsilon)
        }
    }

    public func rmsNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, rstd: TensorView,
                                dInput: TensorView, dWeight: TensorView, rows: Int, columns C: Int) {
        checkRMSNorm(x: x, weight: weight, out: dOut, rstd: rstd, rows: rows, columns: C)
        precondition(dInput.count >= rows * C && dWeight.count >= C, "rmsNorm backward shape mismatch")
        let d = ptr(dOut), px = ptr(x), w = ptr(weight), pr = ptr(rstd), dx = ptr(dInput), dw = ptr(dWeight)
        reduceRows(rows: rows, columns: C, { r, acc in
            let at = r.lowerBound
            mpo_rmsnorm_backward(d + at * C, px + at * C, w, pr + at, dx + at * C, acc, Int32(r.count), Int32(C))
        }, finish: { sums in for c in 0..<C { dw[c] += Float(sums[c]) } })
    }

    public func rotary(_ x: TensorView, table: TensorView, shape s: RotaryShape, inverse: Bool) {
        checkRotary(x, table: table, shape: s)
        let px = ptr(x), pt = ptr(table)
        parallelFor(s.rows, grain: max(1, 8192 / max(s.width, 1))) { r in
            mpo_rotary(px, Int32(r.lowerBound), Int32(r.count), Int32(s.time), Int32(s.positionOffset), Int32(s.heads),
                       Int32(s.headDim), Int32(s.width), pt, inverse ? 1 : 0)
        }
    }

    public func swigluForward(gate: TensorView, up: TensorView, out: TensorView, count n: Int) {
        precondition(gate.count >= n && up.count >= n && out.count >= n, "swiglu shape mismatch")
        let g = ptr(gate), u = ptr(up), o = ptr(out)
        parallelFor(n, grain: 1 << 14) { r in mpo_swiglu(g + r.lowerBound, u + r.lowerBound, o + r.lowerBound, r.count) }
    }

    public func swigluBackward(dOut: TensorView, gate: TensorView, up: TensorView, dGate: TensorView, dUp: TensorView, count n: Int) {
        precondition([dOut, gate, up, dGate, dUp].allSatisfy { $0.count >= n }, "swiglu backward shape mismatch")
        let d = ptr(dOut), g = ptr(gate), u = ptr(up), dg = ptr(dGate), du = ptr(dUp)
        parallelFor(n, grain: 1 << 14) { r in
            let at = r.lowerBound
            mpo_swiglu_backward(d + at, g + at, u + at, dg + at, du + at, r.count)
        }
    }

    public func geluForward(_ x: TensorView, out: TensorView) {
        precondition(x.count == out.count, "gelu size mismatch")
        let px = ptr(x), po = ptr(out)
        parallelFor(x.count, grain: 1 << 14) { r in mpo_gelu(px + r.lowerBound, po + r.lowerBound, r.count) }
    }

    public func geluBackward(_ dOut: TensorView, input x: TensorView, dX: TensorView) {
        precondition(dOut.count == x.count && dX.count == x.count, "gelu backward size mismatch")
        let d = ptr(dOut), px = ptr(x), dx = ptr(dX)
        parallelFor(x.count, grain: 1 << 14) { r in mpo_gelu_backward(d + r.lowerBound, px + r.lowerBound, dx + r.lowerBound, r.count) }
    }
}

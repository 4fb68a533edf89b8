// OpenCLDevice: the ops the Llama and GPT-2 families add — RMSNorm (layernorm.cl; its weight
// gradient through the same two-stage column reduction as LayerNorm's), rotary embedding, SwiGLU
// and GELU (activations.cl).

import COpenCL
import MPOKit

extension OpenCLDevice {
    public func rmsNormForward(_ x: TensorView, weight: TensorView, out: TensorView, rstd: TensorView, rows: Int, columns C: Int,
                               epsilon: Double) {
        checkRMSNorm(x: x, weight: weight, out: out, rstd: rstd, rows: rows, columns: C)
        let g = tuning.layerNormGroup
        locked {
            launch("rmsNormForward", main, "kernel_rmsnorm_forward", global: [rows * g], local: [g],
                   [.view(x), .view(weight), .view(out), .view(rstd), .int(C)] + Self.epsilonArgs(epsilon))
        }
    }

    public func rmsNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, rstd: TensorView,
                                dInput: TensorView, dWeight: TensorView, rows: Int, columns C: Int) {
        checkRMSNorm(x: x, weight: weight, out: dOut, rstd: rstd, rows: rows, columns: C)
        precondition(dInput.count >= rows * C && dWeight.count >= C, "rmsNorm backward shape mismatch")
        guard rows > 0 && C > 0 else { return }
        let g = tuning.layerNormGroup
        locked {
            launch("rmsNormBackward", main, "kernel_rmsnorm_backward", global: [rows * g], local: [g],
                   [.view(dOut), .view(x), .view(weight), .view(rstd), .view(dInput), .int(C)])
            let chunks = Self.columnChunks(rows: rows)
            guard let partial = scratchBuffer(.columnPartial, bytes: chunks * C * tuning.accumulatorBytes) else { return }
            launch("rmsNormBackward", main, "kernel_rmsnorm_backward_params", global: [C, chunks], local: [16, 1],
                   [.view(dOut), .view(x), .view(rstd), .mem(partial), .int(rows), .int(C), .int(chunks)])
            launch("rmsNormBackward", main, "kernel_colsum_finish", global: [C], local: [64],
                   [.mem(partial), .int(0), .int(C), .int(chunks), .view(dWeight), .int(C)])
        }
    }

    public func rotary(_ x: TensorView, table: TensorView, shape s: RotaryShape, inverse: Bool) {
        checkRotary(x, table: table, shape: s)
        guard s.rows > 0 && s.heads > 0 else { return }
        locked {
            launch("rotary", main, "kernel_rotary", global: [s.heads * s.headDim / 2, s.rows], local: [16, 1],
                   [.view(x), .view(table), .int(s.rows), .int(s.time), .int(s.positionOffset), .int(s.heads), .int(s.headDim),
                    .int(inverse ? 1 : 0)])
        }
    }

    public func swigluForward(gate: TensorView, up: TensorView, out: TensorView, count n: Int) {
        precondition(gate.count >= n && up.count >= n && out.count >= n, "swiglu shape mismatch")
        locked { launch1D("swigluForward", "kernel_swiglu_forward", n: n, [.view(gate), .view(up), .view(out), .int(n)]) }
    }

    public func swigluBackward(dOut: TensorView, gate: TensorView, up: TensorView, dGate: TensorView, dUp: TensorView, count n: Int) {
        precondition([dOut, gate, up, dGate, dUp].allSatisfy { $0.count >= n }, "swiglu backward shape mismatch")
        locked {
            launch1D("swigluBackward", "kernel_swiglu_backward", n: n,
                     [.view(dOut), .view(gate), .view(up), .view(dGate), .view(dUp), .int(n)])
        }
    }

    public func geluForward(_ x: TensorView, out: TensorView) {
        precondition(x.count == out.count, "gelu size mismatch")
        locked { launch1D("geluForward", "kernel_gelu_forward", n: x.count, [.view(x), .view(out), .int(x.count)]) }
    }

    public func geluBackward(_ dOut: TensorView, input x: TensorView, dX: TensorView) {
        precondition(dOut.count == x.count && dX.count == x.count, "gelu backward size mismatch")
        locked { launch1D("geluBackward", "kernel_gelu_backward", n: x.count, [.view(dOut), .view(x), .view(dX), .int(x.count)]) }
    }
}

// OpenCLDevice: the fused MPO inference contraction (`mpoForward`, kernel in mpo.cl): one launch
// per layer contracts every row through all sites, a work-group per row. Layers of more than four
// sites take the protocol's default (one GEMM per site).

import COpenCL
import MPOKit

extension OpenCLDevice {
    public var batchedGemmPenalty: Double { 4 }

    public func mpoForward(_ s: MPOContraction, x: TensorView, cores: [TensorView], y: TensorView, accumulate: Bool,
                           scratch: TensorView) {
        checkMPOForward(s, x: x, cores: cores, y: y, scratch: scratch)
        guard s.rows > 0 else { return }
        guard s.sites <= 4 else {   // beyond the kernel's table: the GEMM sequence
            return mpoForwardBySite(s, x: x, cores: cores, y: y, accumulate: accumulate, scratch: scratch)
        }
        var dims = [Int](repeating: 0, count: 16)
        for l in 0..<s.sites {
            let st = s.step(l)
            dims[4 * l] = st.p / s.rows; dims[4 * l + 1] = st.k; dims[4 * l + 2] = st.mo; dims[4 * l + 3] = st.o
        }
        let half = s.scratchCount / 2, perRow = half / s.rows
        let core = (0..<4).map { cores[min($0, s.sites - 1)] }
        locked {
            launch("mpoForward", main, "kernel_mpo_forward", global: [tuning.mpoGroup, s.rows], local: [tuning.mpoGroup, 1],
                   [.view(x), .view(y), .view(scratch), .int(half), .int(perRow),
                    .view(core[0]), .view(core[1]), .view(core[2]), .view(core[3]),
                    .int8(Array(dims[0..<8])), .int8(Array(dims[8..<16])), .int(s.sites), .int(s.inFeatures), .int(s.outFeatures),
                    .int(accumulate ? 1 : 0)])
        }
    }
}

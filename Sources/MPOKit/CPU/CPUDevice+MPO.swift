// CPUDevice: the fused MPO inference contraction (`mpoForward`): every site of one layer in
// C (mpo_site_step: register-blocked small products over the cache-resident permuted cores, no
// BLAS call per site), items split over the workers where the work is large enough. A row's
// numbers do not depend on the split (each output element is one FMA chain in a fixed order).

import CKernels

extension CPUDevice {
    public func mpoForward(_ s: MPOContraction, x: TensorView, cores: [TensorView], y: TensorView, accumulate: Bool,
                           scratch: TensorView) {
        checkMPOForward(s, x: x, cores: cores, y: y, scratch: scratch)
        let half = s.scratchCount / 2, scr = ptr(scratch)
        var input = UnsafePointer(ptr(x))
        for l in stride(from: s.sites - 1, through: 0, by: -1) {
            let st = s.step(l), beta: Float = l == 0 && accumulate ? 1 : 0
            let out = l == 0 ? ptr(y) : scr + (l % 2) * half
            let m = UnsafePointer(ptr(cores[l])), perItem = st.k * st.mo * st.o
            let (k, mo, o) = (Int32(st.k), Int32(st.mo), Int32(st.o))
            if threads == 1 || st.p * perItem < 1 << 17 {
                mpo_site_step(0, Int32(st.p), k, mo, o, m, input, out, beta)
            } else {
                let i = input
                parallelFor(st.p, grain: max(1, (1 << 15) / max(perItem, 1))) { r in
                    mpo_site_step(Int32(r.lowerBound), Int32(r.upperBound), k, mo, o, m, i, out, beta)
                }
            }
            input = UnsafePointer(out)
        }
    }
}

// CPUDevice: the distillation losses — KL(teacher ‖ student) on logits at a temperature, and
// the squared distance of hidden states — per row, rows split over the workers (independent),
// sums in Double. Legend: N rows, V vocabulary, C columns.

import CKernels
import Foundation

extension CPUDevice {
    public func distillation(student: TensorView, teacher: TensorView, losses: TensorView, dLogits: TensorView?,
                             temperature: Float, gradScale: Float, rows: Int, vocabulary V: Int) {
        checkDistillation(student: student, teacher: teacher, losses: losses, dLogits: dLogits, temperature: temperature,
                          rows: rows, vocabulary: V)
        let s = ptr(student), t = ptr(teacher), ls = ptr(losses), dl = dLogits.map { ptr($0) }
        let tau = Double(temperature), inv = 1 / temperature
        parallelFor(rows, grain: 64) { r in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * V) { tmp in
                let p = tmp.baseAddress!, q = p + V
                for i in r {
                    let sr = s + i * V, tr = t + i * V
                    for j in 0..<V { p[j] = sr[j] * inv; q[j] = tr[j] * inv }
                    let ms = mpo_max(p, Int32(V)), mt = mpo_max(q, Int32(V))
                    let zs = Double(mpo_exp_sum(p, Int32(V), ms)), zt = Double(mpo_exp_sum(q, Int32(V), mt))
                    let lseS = Double(ms) + log(zs), lseT = Double(mt) + log(zt)
                    var kl = 0.0
                    for j in 0..<V {   // q·(log q − log p), log q − log p = (t − s)/τ − lseT + lseS
                        let qj = Double(q[j]) / zt
                        if qj > 0 { kl += qj * ((Double(tr[j]) - Double(sr[j])) / tau - lseT + lseS) }
                    }
                    ls[i] = Float(tau * tau * kl)
                    if let dl {
                        let g = dl + i * V, k = Double(gradScale) * tau
                        for j in 0..<V { g[j] += Float(k * (Double(p[j]) / zs - Double(q[j]) / zt)) }
                    }
                }
            }
        }
    }

    public func squaredDistance(_ a: TensorView, _ b: TensorView, sums: TensorView, dA: TensorView?, gradScale: Float,
                                rows: Int, columns C: Int) {
        checkSquaredDistance(a: a, b: b, sums: sums, dA: dA, rows: rows, columns: C)
        let pa = ptr(a), pb = ptr(b), ps = ptr(sums), pd = dA.map { ptr($0) }
        let k = 2 * gradScale
        parallelFor(rows, grain: 64) { r in
            for i in r {
                let ar = pa + i * C, br = pb + i * C
                var s = 0.0
                for c in 0..<C {
                    let d = ar[c] - br[c]
                    s += Double(d) * Double(d)
                    if let pd { pd[i * C + c] += k * d }
                }
                ps[i] = Float(s)
            }
        }
    }
}

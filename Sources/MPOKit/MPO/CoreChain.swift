// CoreChain: the two halves of docs/DESIGN.md §2's strategy 1 that MPO layers and per-token TT
// embeddings share — contract a tensor train's cores left to right into the full tensor, and
// project a gradient of that tensor back onto the cores through left and right environments —
// batched over `batch` independent trains with the same shapes (1 for an MPO layer, the
// vocabulary for a per-token TT embedding).
//
// Shapes: site k has size s_k (o_k·i_k for an MPO core (b, o, i, b'), d_k for a TT core), bonds
// b_0 = b_L = 1, core k is (b_k, s_k, b_{k+1}) per train, trains `coreStride(k)` apart. The full
// tensor of a train is indexed (s_0, …, s_{L−1}) row-major, trains D = ∏ s_k apart.
//   contract: E_1 = C_0; E_{k+1} (∏_{j≤k} s_j, b_{k+1}) = E_k · C_k; the last product is the tensor.
//   project:  right environments F_k (b_{k+1}, ∏_{j>k} s_j) = C_{k+1} · F_{k+1} (F_{L−2} = C_{L−1}),
//             T = E_kᵀ · G (T = G for k = 0), dC_k += T (b_k·s_k, rest) · F_kᵀ (dC_{L−1} += T).
// The left environments E_k are the ones `contract` left behind, so `project` needs a contract
// first with the same cores. Work buffers are allocated on first use (an inference model that
// never projects never holds them).

final class CoreChain {
    let sites: [Int]
    let bonds: [Int]
    let batch: Int
    let cores: [TensorView]
    let label: String
    private let device: any ComputeDevice
    private var left: [DeviceBuffer] = []    // left[k − 1] = E_{k+1}, k = 1…L−2
    private var right: [DeviceBuffer?] = []  // right[k] = F_k, k ≤ L−3
    private var scratch: DeviceBuffer?       // T = E_kᵀ·G

    init(sites: [Int], bonds: [Int], batch: Int, cores: [TensorView], device: any ComputeDevice, label: String) {
        precondition(sites.count >= 1 && bonds.count == sites.count + 1 && cores.count == sites.count)
        self.sites = sites; self.bonds = bonds; self.batch = batch; self.cores = cores
        self.device = device; self.label = label
    }

    var count: Int { sites.count }
    /// Elements of the full tensor of one train.
    var fullSize: Int { sites.reduce(1, *) }
    private func coreSize(_ k: Int) -> Int { bonds[k] * sites[k] * bonds[k + 1] }
    /// ∏_{j<k} s_j and ∏_{j>k} s_j.
    private func before(_ k: Int) -> Int { sites[..<k].reduce(1, *) }
    private func after(_ k: Int) -> Int { sites[(k + 1)...].reduce(1, *) }

    /// Left environment E_k (∏_{j<k} s_j, b_k) per train, for k ≥ 1 (after `contract`).
    private func leftEnvironment(_ k: Int) -> TensorView { k == 1 ? cores[0] : left[k - 2].all }

    /// out (batch, ∏ s) = the contraction of every train's cores.
    func contract(_ dev: any ComputeDevice, into out: TensorView) throws {
        precondition(out.count >= batch * fullSize, "\(label): contraction output too small")
        guard count > 1 else { dev.copy(cores[0], to: out.view(0, batch * fullSize)); return }
        if left.count != max(count - 2, 0) {
            left = try (1..<(count - 1)).map { k in
                try device.makeBuffer(count: batch * before(k + 1) * bonds[k + 1], label: "\(label) left env \(k + 1)")
            }
        }
        for k in 1..<count {
            let p = before(k), n = sites[k] * bonds[k + 1]
            let dst = k == count - 1 ? out : left[k - 1].all
            dev.gemm(GemmShape(m: p, n: n, k: bonds[k], batch: batch, strideA: p * bonds[k], strideB: coreSize(k),
                               strideC: p * n), a: leftEnvironment(k), b: cores[k], c: dst)
        }
    }

    /// dCores[k] += the projection of `g` (batch, ∏ s) onto core k, for every k (after `contract`).
    func project(_ dev: any ComputeDevice, _ g: TensorView, into dCores: [TensorView]) throws {
        guard count > 1 else { dev.accumulate(g.view(0, dCores[0].count), into: dCores[0]); return }
        if right.count != count {
            right = try (0..<count).map { k in
                k <= count - 3 ? try device.makeBuffer(count: batch * bonds[k + 1] * after(k), label: "\(label) right env \(k)") : nil
            }
            let largest = (1..<count).map { bonds[$0] * sites[$0] * after($0) }.max() ?? 1
            scratch = try device.makeBuffer(count: batch * largest, label: "\(label) projection scratch")
        }
        func environment(_ k: Int) -> TensorView { k == count - 2 ? cores[count - 1] : right[k]!.all }
        if count >= 3 {
            for k in stride(from: count - 3, through: 0, by: -1) {
                let m = bonds[k + 1] * sites[k + 1], n = after(k + 1), kk = bonds[k + 2]
                dev.gemm(GemmShape(m: m, n: n, k: kk, batch: batch, strideA: coreSize(k + 1), strideB: kk * n, strideC: m * n),
                         a: cores[k + 1], b: environment(k + 1), c: right[k]!.all)
            }
        }
        let D = fullSize
        for k in 0..<count {
            let rk = bonds[k], tail = sites[k] * after(k)   // tail = D / ∏_{j<k} s_j
            let t: TensorView
            if k == 0 {
                t = g
            } else {
                t = scratch!.all
                let p = before(k)
                dev.gemm(GemmShape(m: rk, n: tail, k: p, transposeA: true, batch: batch, strideA: p * rk, strideB: D,
                                   strideC: rk * tail), a: leftEnvironment(k), b: g, c: t)
            }
            if k == count - 1 {
                dev.accumulate(t.view(0, dCores[k].count), into: dCores[k])
            } else {
                let m = rk * sites[k], n = bonds[k + 1], q = after(k)
                dev.gemm(GemmShape(m: m, n: n, k: q, transposeB: true, beta: 1, batch: batch, strideA: m * q,
                                   strideB: n * q, strideC: m * n), a: t, b: environment(k), c: dCores[k])
            }
        }
    }
}

// Per-device tuning (the -D options the programs are built with), the one launch path every op
// goes through (set the arguments, round the global size up to the work-group size, enqueue),
// and an opt-in per-kernel profile.
//
// Tile sizes follow docs/DESIGN.md §4: chosen from CL_DEVICE_MAX_WORK_GROUP_SIZE and the local memory
// size. A GPU gets GemmTiling.gpu for large products; the defaults are fine on PoCL (which runs ~6 GFLOP/s on two cores with any
// tiling tried); MPO_GEMM_LARGE / MPO_GEMM_SMALL = "tm,tn,tk,wm,wn[,vec,prefetch]" override the GEMM tiles for
// tuning, and a tuner could replace them per device name.

import COpenCL
import Foundation
import MPOKit

// MARK: - Tuning

/// One build of gemm.cl: C tile TM×TN, depth TK, WM×WN outputs per work-item, VEC consecutive
/// floats per global load (1 or 4: vload4), and whether the next tiles are prefetched into
/// registers while the current ones are used (double buffering).
public struct GemmTiling: Sendable, Equatable {
    public var tm: Int, tn: Int, tk: Int, wm: Int, wn: Int
    public var vec: Int
    public var prefetch: Bool
    /// Local size (columns, rows).
    public var local: (Int, Int) { (tn / wn, tm / wm) }
    public init(tm: Int, tn: Int, tk: Int, wm: Int, wn: Int, vec: Int = 1, prefetch: Bool = false) {
        self.tm = tm; self.tn = tn; self.tk = tk; self.wm = wm; self.wn = wn; self.vec = vec; self.prefetch = prefetch
    }

    /// The GPU build (docs/DESIGN.md §4): 128×128 tiles, 8×8 outputs per work-item (256 work-items),
    /// float4 loads, register double buffering; 16.5 KiB of local memory.
    public static let gpu = GemmTiling(tm: 128, tn: 128, tk: 16, wm: 8, wn: 8, vec: 4, prefetch: true)

    /// "tm,tn,tk,wm,wn[,vec[,prefetch 0|1]]"; nil unless the tile divides evenly into work-items
    /// and into vectors.
    init?(parsing text: String) {
        let v = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (5...7).contains(v.count), v.allSatisfy({ $0 >= 0 }), v[..<5].allSatisfy({ $0 > 0 }),
              v[0] % v[3] == 0, v[1] % v[4] == 0 else { return nil }
        let vec = v.count > 5 ? v[5] : 1
        guard vec == 1 || (vec == 4 && v[0] % 4 == 0 && v[1] % 4 == 0 && v[2] % 4 == 0) else { return nil }
        self.init(tm: v[0], tn: v[1], tk: v[2], wm: v[3], wn: v[4], vec: vec, prefetch: v.count > 6 && v[6] != 0)
    }

    var options: String {
        "-DGEMM_TM=\(tm) -DGEMM_TN=\(tn) -DGEMM_TK=\(tk) -DGEMM_WM=\(wm) -DGEMM_WN=\(wn) -DGEMM_VEC=\(vec) -DGEMM_DB=\(prefetch ? 1 : 0)"
    }
    /// Local memory of the A and B tiles.
    var localBytes: Int { tk * (tm + 1 + tn + 1) * 4 }
}

/// Work-group and tile sizes for one device.
public struct OpenCLTuning: Sendable {
    public var elementwiseGroup: Int
    public var layerNormGroup: Int
    public var crossEntropyGroup: Int
    public var sumOfSquaresGroup: Int
    public var sumOfSquaresGroups = 64
    /// Work-items per row of the fused MPO contraction (mpo.cl).
    public var mpoGroup: Int
    /// For C tiles of at least tm×tn: the register-blocked build.
    public var gemmLarge: GemmTiling
    /// For skinny or tiny products (MPO site steps): one output per work-item.
    public var gemmSmall: GemmTiling
    /// Partial sums of a reduction over the batch (GemmShape.strideC == 0), at most.
    public var gemmReductionSlots = 64
    /// Split-K: a single product with fewer output tiles than this many work-groups is cut along
    /// K into up to `gemmReductionSlots` pieces of at least `splitKMinDepth` (4 per compute unit:
    /// the weight gradients dW = dYᵀ·X, K = B·T, have 4–16 tiles).
    public var splitKTargetGroups: Int
    public var splitKMinDepth = 512
    /// Batched products sharing one A or B run as one folded product (OpenCLDevice.foldedBatch).
    public var foldBatches = true
    public var attentionTile: Int
    public var useFP64: Bool

    init(for info: OpenCLDeviceInfo) {
        let maxWG = max(1, info.maxWorkGroupSize)
        func pow2(atMost n: Int) -> Int { var p = 1; while p * 2 <= n { p *= 2 }; return p }
        elementwiseGroup = pow2(atMost: min(256, maxWG))
        layerNormGroup = pow2(atMost: min(128, maxWG))
        crossEntropyGroup = pow2(atMost: min(64, maxWG))
        sumOfSquaresGroup = pow2(atMost: min(256, maxWG))
        mpoGroup = pow2(atMost: min(128, maxWG))
        gemmLarge = maxWG >= 256 ? GemmTiling(tm: 64, tn: 64, tk: 16, wm: 4, wn: 4) : GemmTiling(tm: 64, tn: 64, tk: 16, wm: 8, wn: 8)
        if info.isGPU && maxWG >= 256 && UInt64(GemmTiling.gpu.localBytes) <= info.localMemoryBytes / 2 { gemmLarge = .gpu }
        splitKTargetGroups = 4 * max(1, info.computeUnits)
        gemmSmall = maxWG >= 256 ? GemmTiling(tm: 16, tn: 16, tk: 16, wm: 1, wn: 1) : GemmTiling(tm: 16, tn: 16, tk: 16, wm: 2, wn: 2)
        attentionTile = min(32, pow2(atMost: maxWG))
        useFP64 = info.supportsFP64
        // Tuning overrides, "tm,tn,tk,wm,wn" (e.g. MPO_GEMM_LARGE=64,64,16,8,8).
        let env = ProcessInfo.processInfo.environment
        if let t = env["MPO_GEMM_LARGE"].flatMap(GemmTiling.init(parsing:)) { gemmLarge = t }
        if let t = env["MPO_GEMM_SMALL"].flatMap(GemmTiling.init(parsing:)) { gemmSmall = t }
        if env["MPO_GEMM_FOLD"] == "0" { foldBatches = false }
    }

    var commonOptions: String { "-cl-std=CL1.2 -DUSE_FP64=\(useFP64 ? 1 : 0)" }
    /// Bytes of one acc_t (common.cl): Double where the device has it.
    var accumulatorBytes: Int { useFP64 ? 8 : 4 }
    var mainOptions: String {
        "-DLN_WG=\(layerNormGroup) -DXENT_WG=\(crossEntropyGroup) -DSSQ_WG=\(sumOfSquaresGroup) -DMPO_WG=\(mpoGroup)"
    }

    /// Attention tile for a head dim: both K/V (or Q/dO) tiles must fit in local memory.
    func attentionTile(headDim: Int, localMemory: UInt64) -> Int {
        var t = attentionTile
        while t > 1 && UInt64(2 * t * headDim * 4 + 2 * t * 4 + 1024) > localMemory { t /= 2 }
        return t
    }
}

// MARK: - Launch

/// One kernel argument; a view expands to two arguments (cl_mem, element offset).
enum KernelArg {
    case view(TensorView)
    case mem(cl_mem)
    case int(Int)
    case float(Float)
    case int8([Int])
}

extension OpenCLDevice {
    /// Rounds `n` up to a multiple of `m`.
    @inline(__always) static func roundUp(_ n: Int, _ m: Int) -> Int { (n + m - 1) / m * m }

    /// Sets `args` on `kernel` of `program` and enqueues it over `global` (rounded up to
    /// `local`). Call with the lock held. A failure is recorded, not thrown (see the file header).
    func launch(_ op: String, _ program: OpenCLProgram, _ kernelName: String, global: [Int], local: [Int], _ args: [KernelArg]) {
        guard pendingError == nil else { return }
        guard !global.contains(0) else { return }
        guard let kernel = program.kernel(kernelName) else {
            record(OpenCLError(code: CL_INVALID_KERNEL_NAME, call: "\(op): kernel \(kernelName)",
                               detail: "not found in its program (MPO_KERNEL_DIR sources out of date?)"))
            return
        }
        var index: cl_uint = 0
        func set<T>(_ value: T) -> Bool {
            var v = value
            let status = withUnsafeBytes(of: &v) { clSetKernelArg(kernel, index, $0.count, $0.baseAddress) }
            if status != CL_SUCCESS {
                record(OpenCLError(code: status, call: "clSetKernelArg(\(kernelName), #\(index)) in \(op)"))
                return false
            }
            index += 1
            return true
        }
        for a in args {
            let ok: Bool
            switch a {
            case .view(let v):
                precondition(v.offset + v.count <= Int(Int32.max), "\(op): view beyond 2^31 elements")
                ok = set(Optional(mem(v, op))) && set(Int32(v.offset))
            case .mem(let m): ok = set(Optional(m))
            case .int(let i):
                precondition(i >= Int(Int32.min) && i <= Int(Int32.max), "\(op): argument \(i) does not fit in a 32-bit int")
                ok = set(Int32(i))
            case .float(let f): ok = set(f)
            case .int8(let v):
                precondition(v.count == 8)
                ok = set((Int32(v[0]), Int32(v[1]), Int32(v[2]), Int32(v[3]), Int32(v[4]), Int32(v[5]), Int32(v[6]), Int32(v[7])))
            }
            if !ok { return }
        }
        let g = zip(global, local).map { Self.roundUp($0, $1) }
        let start = profiling ? DispatchTime.now().uptimeNanoseconds : 0
        defer {
            if profiling {
                clFinish(queue)
                let key = "\(op) \(kernelName)"
                let e = profile[key] ?? (0, 0)
                profile[key] = (e.calls + 1, e.seconds + Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            }
        }
        // Grids with more work-groups along y than a GPU dimension holds (65,535 on NVIDIA) run
        // as several launches with a y offset (kernels take y from get_global_id); z is clamped
        // by its callers, whose kernels stride over it.
        precondition(g.count < 3 || g[2] / local[2] <= maxGroupsPerDimension, "\(op): \(g[2] / local[2]) work-groups along z")
        let yGroups = g.count >= 2 ? g[1] / local[1] : 1
        var y0 = 0
        repeat {
            var chunk = g, offset = [Int](repeating: 0, count: g.count)
            if g.count >= 2 {
                let n = min(yGroups - y0, maxGroupsPerDimension)
                chunk[1] = n * local[1]; offset[1] = y0 * local[1]
                y0 += n
            } else {
                y0 = yGroups
            }
            let status = chunk.withUnsafeBufferPointer { gp in
                local.withUnsafeBufferPointer { lp in
                    offset.withUnsafeBufferPointer { offsetPointer in
                        clEnqueueNDRangeKernel(queue, kernel, cl_uint(g.count), offset.allSatisfy { $0 == 0 } ? nil : offsetPointer.baseAddress,
                                               gp.baseAddress, lp.baseAddress, 0, nil, nil)
                    }
                }
            }
            launches += 1
            if status != CL_SUCCESS {
                record(OpenCLError(code: status, call: "clEnqueueNDRangeKernel(\(kernelName)) in \(op)",
                                   detail: "global \(chunk) at offset \(offset), local \(local)"))
                return
            }
        } while y0 < yGroups
    }

    /// A 1-D elementwise launch over `n` items.
    func launch1D(_ op: String, _ kernelName: String, n: Int, _ args: [KernelArg]) {
        launch(op, main, kernelName, global: [n], local: [tuning.elementwiseGroup], args)
    }
}

// MARK: - Profiling

extension OpenCLDevice {
    /// Time per (op, kernel) since the last reset, hottest first (needs `profiling`).
    public func profileReport() -> String {
        locked {
            let total = profile.values.reduce(0) { $0 + $1.seconds }
            return profile.sorted { $0.value.seconds > $1.value.seconds }.map { key, e in
                String(format: "%8.2f ms %5.1f%% %6d calls  %@", e.seconds * 1e3, total > 0 ? 100 * e.seconds / total : 0, e.calls, key)
            }.joined(separator: "\n")
        }
    }

    public func resetProfile() { locked { profile = [:] } }
}

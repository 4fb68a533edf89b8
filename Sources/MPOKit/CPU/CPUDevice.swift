// CPUDevice: the reference implementation of `ComputeDevice`, on OpenBLAS and plain loops.
//
// Every GEMM goes to `cblas_sgemm` (row-major). OpenBLAS is pinned to one thread and this type
// does the threading itself (split the larger of M/N, or the batch, across the cores), so the
// non-BLAS ops and the BLAS calls share one thread pool and results never depend on how
// OpenBLAS would have split the work. Every reduction runs in a fixed order: a run is
// reproducible bit for bit on a given machine.
//
// Not here: the op implementations beyond memory and GEMM (see CPUDevice+*.swift).

import CBLAS
import CKernels
import Dispatch
import Foundation

public final class CPUDevice: ComputeDevice {
    public let name: String
    public let kind = DeviceKind.cpu
    /// Worker threads used for every op (OpenBLAS itself runs single-threaded inside them).
    public let threads: Int
    /// Per-worker scratch (attention score tiles), grown on demand, never shrunk.
    var scratch: [UnsafeMutablePointer<Float>] = []
    var scratchCount = 0

    /// The most elements a model puts in one activation segment (no limit by default; a small one
    /// makes the CPU split its activations as a device with 32-bit offsets must — for tests; the
    /// CPU itself allocates any size).
    public let maxBufferElements: Int

    public init(threads: Int? = nil, maxBufferElements: Int = .max) {
        let n = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        self.threads = n
        self.maxBufferElements = maxBufferElements
        openblas_set_num_threads(1)
        self.name = "CPU (OpenBLAS, \(n) thread\(n == 1 ? "" : "s"))"
    }

    deinit { for p in scratch { p.deallocate() } }

    // MARK: - Memory

    /// Bytes held by the buffers of this device now (what a model allocates, for the memory tests
    /// and `bench --decode`).
    public var allocatedBytes: Int { ledger.bytes }
    private let ledger = ByteLedger()

    public func makeBuffer(count: Int, label: String) throws -> DeviceBuffer {
        guard count >= 0 else { throw DeviceError("cannot allocate '\(label)' with \(count) elements") }
        let bytes = max(count, 1) * 4
        // A request beyond the machine's memory is an error naming the tensor, not an abort (an
        // --init model's full context as the training window asks for ~100 GB).
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        var memory: UnsafeMutableRawPointer? = nil
        guard bytes + ledger.bytes <= physical, posix_memalign(&memory, 64, bytes) == 0, let raw = memory else {
            throw DeviceError(String(format: "out of memory: '%@' needs %.2f GB on top of %.2f GB held, and the machine has %.1f GB; use a smaller --batch or --context",
                                     label, Double(bytes) / 1e9, Double(ledger.bytes) / 1e9, Double(physical) / 1e9))
        }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        ledger.add(bytes)
        let l = ledger
        return DeviceBuffer(count: count, label: label, owner: ObjectIdentifier(self), handle: raw) { free($0); l.add(-bytes) }
    }

    @inline(__always) func ptr(_ v: TensorView) -> UnsafeMutablePointer<Float> {
        precondition(v.buffer.owner == ObjectIdentifier(self), "buffer '\(v.buffer.label)' belongs to another device")
        return v.buffer.handle.assumingMemoryBound(to: Float.self) + v.offset
    }

    @inline(__always) func intPtr(_ v: TensorView) -> UnsafeMutablePointer<Int32> {
        precondition(v.buffer.owner == ObjectIdentifier(self), "buffer '\(v.buffer.label)' belongs to another device")
        return v.buffer.handle.assumingMemoryBound(to: Int32.self) + v.offset
    }

    public func upload(_ source: UnsafeBufferPointer<Float>, to view: TensorView) throws {
        guard source.count == view.count else {
            throw DeviceError("upload of \(source.count) values into '\(view.buffer.label)' view of \(view.count)")
        }
        if let base = source.baseAddress { ptr(view).update(from: base, count: source.count) }
    }

    public func upload(_ source: UnsafeBufferPointer<Int32>, to view: TensorView) throws {
        guard source.count == view.count else {
            throw DeviceError("upload of \(source.count) values into '\(view.buffer.label)' view of \(view.count)")
        }
        if let base = source.baseAddress { intPtr(view).update(from: base, count: source.count) }
    }

    public func download(_ view: TensorView, into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard destination.count == view.count else {
            throw DeviceError("download of '\(view.buffer.label)' view of \(view.count) into \(destination.count) values")
        }
        if let base = destination.baseAddress { base.update(from: ptr(view), count: view.count) }
    }

    public func synchronize() throws {}

    public func fill(_ view: TensorView, value: Float) {
        let p = ptr(view)
        parallelFor(view.count, grain: 1 << 16) { r in
            (p + r.lowerBound).update(repeating: value, count: r.count)
        }
    }

    public func copy(_ source: TensorView, to destination: TensorView) {
        precondition(source.count == destination.count, "copy of \(source.count) into \(destination.count)")
        ptr(destination).update(from: ptr(source), count: source.count)
    }

    // MARK: - Threading
    //
    // Two helpers, and one rule that keeps every result independent of the thread count: work
    // whose outputs are computed independently (elementwise, per row) may be split any way
    // (`parallelFor`); work that combines values (a sum, a GEMM split) is cut into chunks whose
    // boundaries depend only on the problem's size (`forEachChunk`), each chunk computed the same
    // way whichever worker runs it, and partial results are combined in chunk order. So a run
    // gives the same numbers with 1 or 16 threads, and --resume on another thread count is exact.

    /// Splits 0..<n into at most `threads` contiguous chunks of at least `grain` items and runs
    /// them concurrently (inline when there is only one chunk). Only for work whose outputs do
    /// not depend on where the chunks end.
    @inline(__always)
    func parallelFor(_ n: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, max(1, n / max(grain, 1)))
        if chunks <= 1 { if n > 0 { body(0..<n) }; return }
        withoutActuallyEscaping(body) { body in
            let task = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = n * c / chunks, hi = n * (c + 1) / chunks
                if hi > lo { task.value(lo..<hi) }
            }
        }
    }

    /// Runs `body(chunk)` for every chunk in 0..<count, spread over the workers (chunk c on
    /// worker c mod threads), with the worker index for per-worker scratch.
    func forEachChunk(_ count: Int, _ body: (_ chunk: Int, _ worker: Int) -> Void) {
        let workers = min(threads, count)
        if workers <= 1 { for c in 0..<count { body(c, 0) }; return }
        withoutActuallyEscaping(body) { body in
            let task = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for c in Swift.stride(from: w, to: count, by: workers) { task.value(c, w) }
            }
        }
    }

    /// The chunks of a reduction over `n` items of which a chunk holds `per` (fixed by the
    /// caller, never by the thread count): chunk c covers `range(c)`.
    struct Chunking {
        let n: Int, per: Int
        var count: Int { max(1, (n + per - 1) / per) }
        func range(_ c: Int) -> Range<Int> { min(n, c * per)..<min(n, (c + 1) * per) }
    }

    /// Per-worker scratch of at least `count` floats.
    func ensureScratch(_ count: Int) {
        guard count > scratchCount || scratch.count != threads else { return }
        for p in scratch { p.deallocate() }
        scratch = (0..<threads).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: count) }
        scratchCount = count
    }

    // MARK: - GEMM

    /// One single-threaded cblas_sgemm on raw pointers.
    @inline(__always)
    static func sgemm(_ tA: Bool, _ tB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                      _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                      _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        guard m > 0 && n > 0 else { return }
        if k == 0 {  // C = beta·C
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        // One row or one column of C is a matrix-vector product: sgemv reads the matrix once,
        // where sgemm would first pack all of it (decoding at batch 1 spent half its time there).
        if m == 1 {
            if tB && !tA {  // B is (n, k), a contiguous: a linear layer at batch 1, at the memory stream's speed
                mpo_gemv_rows(Int32(n), Int32(k), b, Int32(ldb), a, alpha, beta, c)
                return
            }
            if beta == 0 { for j in 0..<n { c[j] = 0 } }  // beta 0 must not read C (NaN · 0)
            let incx = Int32(tA ? lda : 1)
            if tB {  // B is (n, k): c = alpha·B·a
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb), a, incx, beta, c, 1)
            } else {  // B is (k, n): c = alpha·Bᵀ·a
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb), a, incx, beta, c, 1)
            }
            return
        }
        if n == 1 {
            if beta == 0 { for i in 0..<m { c[i * ldc] = 0 } }
            let incx = Int32(tB ? 1 : ldb)
            if tA {  // A is (k, m)
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(m), alpha, a, Int32(lda), b, incx, beta, c, Int32(ldc))
            } else {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(k), alpha, a, Int32(lda), b, incx, beta, c, Int32(ldc))
            }
            return
        }
        cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// How one GEMM item is cut for the workers: a function of the shape only (never of the
    /// thread count), so every element of C comes out of the same sgemm calls whatever the
    /// threads. Along the larger of M and N (at most 16 pieces of ≥ 2^20 multiply-adds), or —
    /// when K is long and C small, as in the weight gradients dW = dYᵀ·X (K = B·T) — along K,
    /// where pieces of M or N would each re-pack the whole long operand.
    enum GemmSplit: Equatable {
        case whole
        case rows(Int), columns(Int)
        /// Partial products over K ranges, added in order (in Double) into C.
        case depth(Int)
    }

    static func gemmSplit(_ s: GemmShape) -> GemmSplit {
        let work = Double(s.m) * Double(s.n) * Double(s.k)
        // A matrix-vector product (decoding at batch 1) is bound by memory, not arithmetic: split
        // from 128 K multiply-adds (512 KB of weights), each piece whole rows of W.
        if s.m == 1 && s.transposeB && !s.transposeA && work >= 131_072 {
            return .columns(max(2, min(16, Int(work / 131_072))))
        }
        guard work >= 2_097_152 else { return .whole }
        if s.k >= 2048 && s.k >= 8 * max(s.m, s.n) { return .depth(min(8, s.k / 1024)) }
        let pieces = max(1, min(16, max(s.m, s.n) / 16, Int(work / 1_048_576)))
        if pieces == 1 { return .whole }
        return s.m >= s.n ? .rows(pieces) : .columns(pieces)
    }

    /// Pieces of `split` (1 for .whole).
    static func pieceCount(_ split: GemmSplit) -> Int {
        switch split {
        case .whole: return 1
        case .rows(let p), .columns(let p), .depth(let p): return p
        }
    }

    /// Piece `i` of one item under `split` (not .depth): C rows or columns [lo, hi).
    @inline(__always)
    static func gemmPiece(_ s: GemmShape, _ a0: UnsafePointer<Float>, _ b0: UnsafePointer<Float>,
                          _ c0: UnsafeMutablePointer<Float>, piece i: Int, split: GemmSplit) {
        switch split {
        case .rows(let pieces):  // rows of C (and of op(A))
            let lo = s.m * i / pieces, hi = s.m * (i + 1) / pieces
            let ar = s.transposeA ? a0 + lo : a0 + lo * s.lda
            sgemm(s.transposeA, s.transposeB, hi - lo, s.n, s.k, s.alpha, ar, s.lda, b0, s.ldb, s.beta, c0 + lo * s.ldc, s.ldc)
        case .columns(let pieces):  // columns of C (and of op(B))
            let lo = s.n * i / pieces, hi = s.n * (i + 1) / pieces
            let br = s.transposeB ? b0 + lo * s.ldb : b0 + lo
            sgemm(s.transposeA, s.transposeB, s.m, hi - lo, s.k, s.alpha, a0, s.lda, br, s.ldb, s.beta, c0 + lo, s.ldc)
        default:
            sgemm(s.transposeA, s.transposeB, s.m, s.n, s.k, s.alpha, a0, s.lda, b0, s.ldb, s.beta, c0, s.ldc)
        }
    }

    /// One item split along K into `pieces` partial products (scratch), then C = beta·C + Σ
    /// partials, summed in piece order in Double.
    private func gemmDepth(_ s: GemmShape, _ a0: UnsafePointer<Float>, _ b0: UnsafePointer<Float>,
                           _ c0: UnsafeMutablePointer<Float>, pieces: Int) {
        let size = s.m * s.n
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: pieces * size)
        defer { partial.deallocate() }
        forEachChunk(pieces) { i, _ in
            let lo = s.k * i / pieces, hi = s.k * (i + 1) / pieces
            let a = s.transposeA ? a0 + lo * s.lda : a0 + lo
            let b = s.transposeB ? b0 + lo : b0 + lo * s.ldb
            Self.sgemm(s.transposeA, s.transposeB, s.m, s.n, hi - lo, s.alpha, a, s.lda, b, s.ldb, 0, partial + i * size, s.n)
        }
        parallelFor(s.m, grain: 16) { rows in
            for r in rows {
                let c = c0 + r * s.ldc
                for j in 0..<s.n {
                    var sum = 0.0
                    for i in 0..<pieces { sum += Double(partial[i * size + r * s.n + j]) }
                    c[j] = (s.beta == 0 ? 0 : s.beta * c[j]) + Float(sum)
                }
            }
        }
    }

    /// Batched GEMM whose items all write the same C (strideC 0): C = beta·C + Σ_b alpha·A_b·B_b.
    /// Items are cut into at most 16 fixed chunks; inside a chunk, groups of 32 items accumulate
    /// in Float (sgemm with beta 1) and fold into a Double accumulator; chunks add up in order,
    /// in Double. The result is independent of the thread count.
    private func reduceBatch(_ s: GemmShape, _ pa: UnsafePointer<Float>, _ pb: UnsafePointer<Float>,
                             _ pc: UnsafeMutablePointer<Float>) {
        let chunking = Chunking(n: s.batch, per: (s.batch + 15) / 16)
        let size = s.m * s.n, group = 32
        let total = UnsafeMutablePointer<Double>.allocate(capacity: chunking.count * size)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: min(threads, chunking.count) * size)
        defer { total.deallocate(); scratch.deallocate() }
        forEachChunk(chunking.count) { chunk, worker in
            let acc = total + chunk * size, part = scratch + worker * size
            acc.update(repeating: 0, count: size)
            let r = chunking.range(chunk)
            var g = r.lowerBound
            while g < r.upperBound {
                let end = min(r.upperBound, g + group)
                for i in g..<end {
                    Self.sgemm(s.transposeA, s.transposeB, s.m, s.n, s.k, s.alpha, pa + i * s.strideA, s.lda,
                               pb + i * s.strideB, s.ldb, i == g ? 0 : 1, part, s.n)
                }
                for e in 0..<size { acc[e] += Double(part[e]) }
                g = end
            }
        }
        for i in 0..<s.m {
            for j in 0..<s.n {
                var sum = 0.0
                for chunk in 0..<chunking.count { sum += total[chunk * size + i * s.n + j] }
                let c = pc + i * s.ldc + j
                c.pointee = (s.beta == 0 ? 0 : s.beta * c.pointee) + Float(sum)
            }
        }
    }

    public func gemm(_ s: GemmShape, a: TensorView, b: TensorView, c: TensorView) {
        precondition(s.batch >= 1 && s.m >= 0 && s.n >= 0 && s.k >= 0, "bad \(s)")
        precondition(s.m == 0 || s.n == 0 || (s.extentC <= c.count && (s.k == 0 || (s.extentA <= a.count && s.extentB <= b.count))),
                     "\(s): operands too small (A \(a.count)/\(s.extentA), B \(b.count)/\(s.extentB), C \(c.count)/\(s.extentC))")
        guard s.m > 0 && s.n > 0 else { return }
        let pa = UnsafePointer(ptr(a)), pb = UnsafePointer(ptr(b)), pc = ptr(c)
        if s.batch > 1 && s.strideC == 0 {  // C += Σ_b A_b·B_b
            reduceBatch(s, pa, pb, pc)
            return
        }
        // Independent items, each cut into the same pieces whatever the thread count.
        let split = Self.gemmSplit(s), pieces = Self.pieceCount(split), batch = s.batch
        if case .depth(let p) = split {
            for i in 0..<batch { gemmDepth(s, pa + i * s.strideA, pb + i * s.strideB, pc + i * s.strideC, pieces: p) }
            return
        }
        if pieces * batch == 1 || threads == 1 {
            for i in 0..<batch {
                for p in 0..<pieces {
                    Self.gemmPiece(s, pa + i * s.strideA, pb + i * s.strideB, pc + i * s.strideC, piece: p, split: split)
                }
            }
            return
        }
        // Many small items: contiguous runs of items per worker; few large ones: pieces.
        if batch >= threads {
            parallelFor(batch, grain: 1) { r in
                for i in r {
                    for p in 0..<pieces {
                        Self.gemmPiece(s, pa + i * s.strideA, pb + i * s.strideB, pc + i * s.strideC, piece: p, split: split)
                    }
                }
            }
        } else {
            forEachChunk(batch * pieces) { w, _ in
                let i = w / pieces
                Self.gemmPiece(s, pa + i * s.strideA, pb + i * s.strideB, pc + i * s.strideC, piece: w % pieces, split: split)
            }
        }
    }
}

// MARK: - Permute

extension CPUDevice {
    public func permute(_ source: TensorView, shape: [Int], order: [Int], into destination: TensorView, accumulate: Bool) {
        // Visit the destination in row-major order, reading the source through its strides.
        let perm = Permutation(shape: shape, order: order, source: source, destination: destination)
        let n = perm.count, dShape = perm.destinationShape, dStride = perm.sourceStrides
        let s = ptr(source), d = ptr(destination)
        let inner = dShape.last ?? 1, innerStride = dStride.last ?? 1
        let outer = n / max(inner, 1)
        parallelFor(outer, grain: 256) { r in
            for o in r {
                var rem = o, off = 0
                for k in stride(from: dShape.count - 2, through: 0, by: -1) {
                    off += (rem % dShape[k]) * dStride[k]; rem /= dShape[k]
                }
                let dst = d + o * inner, src = s + off
                if accumulate {
                    for j in 0..<inner { dst[j] += src[j * innerStride] }
                } else {
                    for j in 0..<inner { dst[j] = src[j * innerStride] }
                }
            }
        }
    }
}

/// A value that crosses into the worker closures of `DispatchQueue.concurrentPerform`. Safe here
/// because every worker touches disjoint memory (or only reads), and the call returns only after
/// every worker finished.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

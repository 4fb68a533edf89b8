// ProfilingDevice: wraps another device and accumulates wall time per op (synchronising after
// each op, so it slows asynchronous devices down — use it to find hot spots, not to time runs).
// `mpo-train bench --profile` prints its table. A failure the per-op synchronisation reports is
// kept and thrown by the next synchronising call (synchronize, download, sumOfSquares), as the
// wrapped device would have thrown it: profiling never hides an error.

import Dispatch

/// What the profile counts a call as: an op of the device protocol (GEMMs split by kind).
public enum ProfiledOp: String, Sendable, CaseIterable {
    case upload, download, fill, copy, permute
    case gemm, gemmBatched = "gemm (batched)", gemmBatchedReduce = "gemm (batched, reduce)"
    case addBias, biasBackward, mpoForward, addBiasReLU, reluBackwardBias, add, accumulate, scale
    case relu, reluBackward, embedding, embeddingBackward, positionBackward, layerNorm, layerNormBackward
    case rmsNorm, rmsNormBackward, rotary, swiglu, swigluBackward, gelu, geluBackward
    case attention, attentionBackward, crossEntropy, distillation, squaredDistance, sumOfSquares
    case adamW, stepScalars, readStepScalars

    /// Calls that make the host wait for the queued device (they are not kernel launches).
    public var waitsForHost: Bool { self == .download || self == .readStepScalars || self == .sumOfSquares }
}

/// Time, calls and counted FLOPs of one op.
public struct OpProfile: Sendable, Equatable {
    public var seconds = 0.0
    public var calls = 0
    public var flops = 0.0
}

public final class ProfilingDevice: ComputeDevice {
    public let base: any ComputeDevice
    public private(set) var profile: [ProfiledOp: OpProfile] = [:]

    public init(_ base: any ComputeDevice) { self.base = base }
    public var name: String { "profiled " + base.name }
    public var kind: DeviceKind { base.kind }
    /// Calls that make the host wait for a queued device (download, synchronize, sumOfSquares,
    /// readStepScalars), and the other ops' calls: `bench` reports them per step where the
    /// device counts nothing itself (the CPU).
    public private(set) var hostWaits = 0
    public var opCalls: Int { profile.filter { !$0.key.waitsForHost }.values.reduce(0) { $0 + $1.calls } }
    public var counters: QueueCounters { QueueCounters(launches: opCalls, hostWaits: hostWaits) }
    public func reset() { profile = [:]; hostWaits = 0 }
    /// The first failure a per-op synchronisation reported, not yet thrown.
    private var pending: (any Error)?

    private func throwPending() throws {
        if let e = pending { pending = nil; throw e }
    }

    private func time<T>(_ op: ProfiledOp, flops f: Double = 0, _ body: () throws -> T) rethrows -> T {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        do { try base.synchronize() } catch { if pending == nil { pending = error } }
        profile[op, default: OpProfile()].seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        profile[op, default: OpProfile()].calls += 1
        profile[op, default: OpProfile()].flops += f
        return r
    }

    public func makeBuffer(count: Int, label: String) throws -> DeviceBuffer { try base.makeBuffer(count: count, label: label) }
    public func upload(_ s: UnsafeBufferPointer<Float>, to v: TensorView) throws { try time(.upload) { try base.upload(s, to: v) } }
    public func upload(_ s: UnsafeBufferPointer<Int32>, to v: TensorView) throws { try time(.upload) { try base.upload(s, to: v) } }
    public func download(_ v: TensorView, into d: UnsafeMutableBufferPointer<Float>) throws {
        try throwPending()
        hostWaits += 1
        try time(.download) { try base.download(v, into: d) }
        try throwPending()
    }
    public func synchronize() throws { hostWaits += 1; try throwPending(); try base.synchronize() }
    public func fill(_ v: TensorView, value: Float) { time(.fill) { base.fill(v, value: value) } }
    public func copy(_ s: TensorView, to d: TensorView) { time(.copy) { base.copy(s, to: d) } }
    public func permute(_ s: TensorView, shape: [Int], order: [Int], into d: TensorView, accumulate: Bool) {
        time(.permute) { base.permute(s, shape: shape, order: order, into: d, accumulate: accumulate) }
    }
    public func gemm(_ s: GemmShape, a: TensorView, b: TensorView, c: TensorView) {
        let key: ProfiledOp = s.batch > 1 ? (s.strideC == 0 ? .gemmBatchedReduce : .gemmBatched) : .gemm
        time(key, flops: s.flops) { base.gemm(s, a: a, b: b, c: c) }
    }
    public func addBias(_ b: TensorView, to o: TensorView, rows: Int, columns: Int) { time(.addBias) { base.addBias(b, to: o, rows: rows, columns: columns) } }
    public func biasBackward(_ d: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        time(.biasBackward) { base.biasBackward(d, dBias: dBias, rows: rows, columns: columns) }
    }
    public var batchedGemmPenalty: Double { base.batchedGemmPenalty }
    public var queueCounters: QueueCounters? { base.queueCounters }
    public var maxBufferElements: Int { base.maxBufferElements }
    public var allocatedBytes: Int { base.allocatedBytes }
    public func mpoForward(_ s: MPOContraction, x: TensorView, cores: [TensorView], y: TensorView, accumulate: Bool, scratch: TensorView) {
        time(.mpoForward, flops: s.flops) { base.mpoForward(s, x: x, cores: cores, y: y, accumulate: accumulate, scratch: scratch) }
    }
    public func addBiasReLU(_ b: TensorView, to o: TensorView, rows: Int, columns: Int) {
        time(.addBiasReLU) { base.addBiasReLU(b, to: o, rows: rows, columns: columns) }
    }
    public func reluBackwardBias(_ d: TensorView, out: TensorView, dX: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        time(.reluBackwardBias) { base.reluBackwardBias(d, out: out, dX: dX, dBias: dBias, rows: rows, columns: columns) }
    }
    public func add(_ a: TensorView, _ b: TensorView, out: TensorView) { time(.add) { base.add(a, b, out: out) } }
    public func accumulate(_ s: TensorView, into d: TensorView) { time(.accumulate) { base.accumulate(s, into: d) } }
    public func scale(_ v: TensorView, by f: Float) { time(.scale) { base.scale(v, by: f) } }
    public func reluForward(_ x: TensorView, out: TensorView) { time(.relu) { base.reluForward(x, out: out) } }
    public func reluBackward(_ d: TensorView, out: TensorView, dX: TensorView) { time(.reluBackward) { base.reluBackward(d, out: out, dX: dX) } }
    public func gemmPacked(_ s: GemmShape, a: TensorView, b: PackedMatrix, c: TensorView) {
        time(.gemm, flops: s.flops) { base.gemmPacked(s, a: a, b: b, c: c) }
    }
    public func embeddingForwardPacked(tokens: TensorView, table: PackedMatrix, positions: TensorView?, out: TensorView, batch: Int, time t: Int, channels: Int) {
        time(.embedding) { base.embeddingForwardPacked(tokens: tokens, table: table, positions: positions, out: out, batch: batch, time: t, channels: channels) }
    }
    public func embeddingForward(tokens: TensorView, table: TensorView, positions: TensorView?, out: TensorView, batch: Int, time t: Int, channels: Int) {
        time(.embedding) { base.embeddingForward(tokens: tokens, table: table, positions: positions, out: out, batch: batch, time: t, channels: channels) }
    }
    public func embeddingBackward(dOut: TensorView, tokens: TensorView, dTable: TensorView, batch: Int, time t: Int, channels: Int) {
        time(.embeddingBackward) { base.embeddingBackward(dOut: dOut, tokens: tokens, dTable: dTable, batch: batch, time: t, channels: channels) }
    }
    public func positionBackward(dOut: TensorView, dTable: TensorView, batch: Int, time t: Int, channels: Int) {
        time(.positionBackward) { base.positionBackward(dOut: dOut, dTable: dTable, batch: batch, time: t, channels: channels) }
    }
    public func layerNormForward(_ x: TensorView, weight: TensorView, bias: TensorView, out: TensorView, mean: TensorView, rstd: TensorView,
                                 rows: Int, columns: Int, epsilon: Double) {
        time(.layerNorm) { base.layerNormForward(x, weight: weight, bias: bias, out: out, mean: mean, rstd: rstd, rows: rows, columns: columns, epsilon: epsilon) }
    }
    public func rmsNormForward(_ x: TensorView, weight: TensorView, out: TensorView, rstd: TensorView, rows: Int, columns: Int, epsilon: Double) {
        time(.rmsNorm) { base.rmsNormForward(x, weight: weight, out: out, rstd: rstd, rows: rows, columns: columns, epsilon: epsilon) }
    }
    public func rmsNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, rstd: TensorView, dInput: TensorView,
                                dWeight: TensorView, rows: Int, columns: Int) {
        time(.rmsNormBackward) { base.rmsNormBackward(dOut: dOut, input: x, weight: weight, rstd: rstd, dInput: dInput, dWeight: dWeight, rows: rows, columns: columns) }
    }
    public func rotary(_ x: TensorView, table: TensorView, shape: RotaryShape, inverse: Bool) {
        time(.rotary) { base.rotary(x, table: table, shape: shape, inverse: inverse) }
    }
    public func swigluForward(gate: TensorView, up: TensorView, out: TensorView, count: Int) {
        time(.swiglu) { base.swigluForward(gate: gate, up: up, out: out, count: count) }
    }
    public func swigluBackward(dOut: TensorView, gate: TensorView, up: TensorView, dGate: TensorView, dUp: TensorView, count: Int) {
        time(.swigluBackward) { base.swigluBackward(dOut: dOut, gate: gate, up: up, dGate: dGate, dUp: dUp, count: count) }
    }
    public func geluForward(_ x: TensorView, out: TensorView) { time(.gelu) { base.geluForward(x, out: out) } }
    public func geluBackward(_ dOut: TensorView, input x: TensorView, dX: TensorView) {
        time(.geluBackward) { base.geluBackward(dOut, input: x, dX: dX) }
    }
    public func layerNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, mean: TensorView, rstd: TensorView, dInput: TensorView, dWeight: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        time(.layerNormBackward) { base.layerNormBackward(dOut: dOut, input: x, weight: weight, mean: mean, rstd: rstd, dInput: dInput, dWeight: dWeight, dBias: dBias, rows: rows, columns: columns) }
    }
    public func attentionForward(_ s: AttentionShape, q: TensorView, k: TensorView, v: TensorView, out: TensorView, lse: TensorView) {
        time(.attention, flops: s.forwardFlops) { base.attentionForward(s, q: q, k: k, v: v, out: out, lse: lse) }
    }
    public func attentionBackward(_ s: AttentionShape, dOut: TensorView, q: TensorView, k: TensorView, v: TensorView, out: TensorView, lse: TensorView, dq: TensorView, dk: TensorView, dv: TensorView) {
        time(.attentionBackward, flops: 2.5 * s.forwardFlops) { base.attentionBackward(s, dOut: dOut, q: q, k: k, v: v, out: out, lse: lse, dq: dq, dk: dk, dv: dv) }
    }
    public func crossEntropy(logits: TensorView, targets: TensorView, losses: TensorView, correct: TensorView, dLogits: TensorView?, gradScale: Float, rows: Int, vocabulary: Int) {
        time(.crossEntropy) { base.crossEntropy(logits: logits, targets: targets, losses: losses, correct: correct, dLogits: dLogits, gradScale: gradScale, rows: rows, vocabulary: vocabulary) }
    }
    public func distillation(student: TensorView, teacher: TensorView, losses: TensorView, dLogits: TensorView?,
                             temperature: Float, gradScale: Float, rows: Int, vocabulary: Int) {
        time(.distillation) {
            base.distillation(student: student, teacher: teacher, losses: losses, dLogits: dLogits, temperature: temperature,
                              gradScale: gradScale, rows: rows, vocabulary: vocabulary)
        }
    }
    public func squaredDistance(_ a: TensorView, _ b: TensorView, sums: TensorView, dA: TensorView?, gradScale: Float,
                                rows: Int, columns: Int) {
        time(.squaredDistance) { base.squaredDistance(a, b, sums: sums, dA: dA, gradScale: gradScale, rows: rows, columns: columns) }
    }
    public func sumOfSquares(_ v: TensorView) throws -> Double {
        try throwPending()
        hostWaits += 1
        let r = try time(.sumOfSquares) { try base.sumOfSquares(v) }
        try throwPending()
        return r
    }
    public func adamW(parameters: TensorView, gradients: TensorView, m: TensorView, v: TensorView, hyper: AdamWHyper,
                      control: TensorView?) {
        time(.adamW) { base.adamW(parameters: parameters, gradients: gradients, m: m, v: v, hyper: hyper, control: control) }
    }
    public func stepScalars(losses: TensorView, correct: TensorView, extra: TensorView?, rows: Int, gradients: TensorView,
                            clip: Double, into scalars: TensorView) {
        time(.stepScalars) {
            base.stepScalars(losses: losses, correct: correct, extra: extra, rows: rows, gradients: gradients, clip: clip, into: scalars)
        }
    }
    public func readStepScalars(_ scalars: TensorView) throws -> StepScalars {
        try throwPending()
        hostWaits += 1
        return try time(.readStepScalars) { try base.readStepScalars(scalars) }
    }
}

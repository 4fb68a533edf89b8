// Tests of the op-case harness itself: does the table catch a wrong op? A `FaultyDevice` wraps
// CPUDevice and breaks exactly one thing (an out-of-bounds write, a flipped sign, an overwrite
// where the contract says accumulate, a Float accumulation where Double is needed, …); for each
// fault, the parity cases of that op must report at least one failure, while the same cases on
// the unbroken wrapper report none. Plus unit tests of `Comparison`.
// Not here: the CPU-vs-reference suite itself (CPUOpReferenceTests.swift).

import Testing
import MPOKit
import OpCases

/// One deliberate bug, and the op whose cases must catch it.
enum Fault: String, CaseIterable, Sendable {
    case none
    case gemmWritesPastEnd, gemmIgnoresLeadingDimension, gemmReduceAppliesBetaPerItem
    case permuteIgnoresAccumulate, fillSkipsLast, addBiasOverwrites
    case reluBackwardAtZero, embeddingBackwardOverwrites, layerNormForwardOnePassFloat, layerNormForwardEpsilon1e6
    case layerNormBackwardOverwritesDWeight, attentionForwardLseOff, attentionForwardModifiesQ
    case attentionBackwardFlipsDq, crossEntropyLastMaxWins, sumOfSquaresInFloat, adamWNoBiasCorrection
    case rmsNormForwardIgnoresEpsilon, rotaryIgnoresOffset, attentionBackwardKeepsLastHeadOfGroup, swigluBackwardSwapsGradients
    case positionBackwardOverwrites

    var op: Op {
        switch self {
        case .none, .gemmWritesPastEnd, .gemmIgnoresLeadingDimension, .gemmReduceAppliesBetaPerItem: .gemm
        case .permuteIgnoresAccumulate: .permute
        case .fillSkipsLast: .fill
        case .addBiasOverwrites: .addBias
        case .reluBackwardAtZero: .reluBackward
        case .embeddingBackwardOverwrites: .embeddingBackward
        case .layerNormForwardOnePassFloat, .layerNormForwardEpsilon1e6: .layerNormForward
        case .layerNormBackwardOverwritesDWeight: .layerNormBackward
        case .attentionForwardLseOff, .attentionForwardModifiesQ: .attentionForward
        case .attentionBackwardFlipsDq: .attentionBackward
        case .crossEntropyLastMaxWins: .crossEntropy
        case .sumOfSquaresInFloat: .sumOfSquares
        case .adamWNoBiasCorrection: .adamW
        case .rmsNormForwardIgnoresEpsilon: .rmsNormForward
        case .rotaryIgnoresOffset: .rotaryForward
        case .attentionBackwardKeepsLastHeadOfGroup: .attentionBackward
        case .swigluBackwardSwapsGradients: .swigluBackward
        case .positionBackwardOverwrites: .positionBackward
        }
    }

    /// What the failure report must mention (nil: any failure).
    var expectedMessage: String? {
        switch self {
        case .gemmWritesPastEnd: "guard"
        case .attentionForwardModifiesQ: "read-only input 'q'"
        default: nil
        }
    }
}

/// CPUDevice with one fault injected (everything else forwards unchanged).
final class FaultyDevice: ComputeDevice {
    let base = CPUDevice()
    let fault: Fault
    init(_ fault: Fault) { self.fault = fault }

    var name: String { "faulty(\(fault)) " + base.name }
    var allocatedBytes: Int { base.allocatedBytes }
    var kind: DeviceKind { base.kind }
    private func host(_ v: TensorView) -> [Float] { try! base.read(v) }
    private func put(_ x: [Float], _ v: TensorView) { try! base.write(x, to: v) }

    func makeBuffer(count: Int, label: String) throws -> DeviceBuffer { try base.makeBuffer(count: count, label: label) }
    func upload(_ s: UnsafeBufferPointer<Float>, to v: TensorView) throws { try base.upload(s, to: v) }
    func upload(_ s: UnsafeBufferPointer<Int32>, to v: TensorView) throws { try base.upload(s, to: v) }
    func download(_ v: TensorView, into d: UnsafeMutableBufferPointer<Float>) throws { try base.download(v, into: d) }
    func synchronize() throws { try base.synchronize() }
    func fill(_ v: TensorView, value: Float) {
        base.fill(fault == .fillSkipsLast && v.count > 1 ? v.view(0, v.count - 1) : v, value: value)
    }
    func copy(_ s: TensorView, to d: TensorView) { base.copy(s, to: d) }
    func permute(_ s: TensorView, shape: [Int], order: [Int], into d: TensorView, accumulate: Bool) {
        base.permute(s, shape: shape, order: order, into: d, accumulate: accumulate && fault != .permuteIgnoresAccumulate)
    }

    func gemm(_ s: GemmShape, a: TensorView, b: TensorView, c: TensorView) {
        switch fault {
        case .gemmWritesPastEnd:
            base.gemm(s, a: a, b: b, c: c)
            put([0], c.buffer.view(c.offset + c.count, 1))
        case .gemmIgnoresLeadingDimension:
            var t = s
            t.lda = s.transposeA ? s.m : s.k
            base.gemm(t, a: a, b: b, c: c)
        case .gemmReduceAppliesBetaPerItem where s.batch > 1 && s.strideC == 0:
            for i in 0..<s.batch {   // C = alpha·A_i·B_i + beta·C, item by item: beta 0 keeps only the last item
                var t = s
                t.batch = 1
                base.gemm(t, a: a.view(i * s.strideA, a.count - i * s.strideA), b: b.view(i * s.strideB, b.count - i * s.strideB), c: c)
            }
        default:
            base.gemm(s, a: a, b: b, c: c)
        }
    }

    func addBias(_ bias: TensorView, to out: TensorView, rows: Int, columns: Int) {
        if fault == .addBiasOverwrites { base.fill(out, value: 0) }
        base.addBias(bias, to: out, rows: rows, columns: columns)
    }
    func biasBackward(_ d: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        base.biasBackward(d, dBias: dBias, rows: rows, columns: columns)
    }
    func distillation(student: TensorView, teacher: TensorView, losses: TensorView, dLogits: TensorView?,
                      temperature: Float, gradScale: Float, rows: Int, vocabulary: Int) {
        base.distillation(student: student, teacher: teacher, losses: losses, dLogits: dLogits, temperature: temperature,
                          gradScale: gradScale, rows: rows, vocabulary: vocabulary)
    }
    func squaredDistance(_ a: TensorView, _ b: TensorView, sums: TensorView, dA: TensorView?, gradScale: Float,
                         rows: Int, columns: Int) {
        base.squaredDistance(a, b, sums: sums, dA: dA, gradScale: gradScale, rows: rows, columns: columns)
    }
    func add(_ a: TensorView, _ b: TensorView, out: TensorView) { base.add(a, b, out: out) }
    func accumulate(_ s: TensorView, into d: TensorView) { base.accumulate(s, into: d) }
    func scale(_ v: TensorView, by f: Float) { base.scale(v, by: f) }
    func reluForward(_ x: TensorView, out: TensorView) { base.reluForward(x, out: out) }
    func reluBackward(_ d: TensorView, out: TensorView, dX: TensorView) {
        guard fault == .reluBackwardAtZero else { return base.reluBackward(d, out: out, dX: dX) }
        let g = host(d), o = host(out)
        put((0..<g.count).map { o[$0] >= 0 ? g[$0] : 0 }, dX)   // [out ≥ 0] instead of [out > 0]
    }

    func embeddingForward(tokens: TensorView, table: TensorView, positions: TensorView?, out: TensorView,
                          batch: Int, time: Int, channels: Int) {
        base.embeddingForward(tokens: tokens, table: table, positions: positions, out: out, batch: batch, time: time, channels: channels)
    }
    func gemmPacked(_ s: GemmShape, a: TensorView, b: PackedMatrix, c: TensorView) { base.gemmPacked(s, a: a, b: b, c: c) }
    func embeddingForwardPacked(tokens: TensorView, table: PackedMatrix, positions: TensorView?, out: TensorView,
                              batch: Int, time: Int, channels: Int) {
        base.embeddingForwardPacked(tokens: tokens, table: table, positions: positions, out: out, batch: batch, time: time, channels: channels)
    }
    func embeddingBackward(dOut: TensorView, tokens: TensorView, dTable: TensorView, batch: Int, time: Int, channels: Int) {
        if fault == .embeddingBackwardOverwrites { base.fill(dTable, value: 0) }
        base.embeddingBackward(dOut: dOut, tokens: tokens, dTable: dTable, batch: batch, time: time, channels: channels)
    }

    func positionBackward(dOut: TensorView, dTable: TensorView, batch: Int, time: Int, channels: Int) {
        if fault == .positionBackwardOverwrites { base.fill(dTable, value: 0) }
        base.positionBackward(dOut: dOut, dTable: dTable, batch: batch, time: time, channels: channels)
    }

    func layerNormForward(_ x: TensorView, weight: TensorView, bias: TensorView, out: TensorView,
                          mean: TensorView, rstd: TensorView, rows: Int, columns C: Int, epsilon: Double) {
        let onePass = fault == .layerNormForwardOnePassFloat
        guard onePass || fault == .layerNormForwardEpsilon1e6 else {
            return base.layerNormForward(x, weight: weight, bias: bias, out: out, mean: mean, rstd: rstd, rows: rows, columns: C,
                                         epsilon: epsilon)
        }
        let px = host(x), w = host(weight), b = host(bias), eps = Float(onePass ? epsilon : epsilon / 10)
        var o = [Float](repeating: 0, count: rows * C), m = [Float](repeating: 0, count: rows), r = m
        for i in 0..<rows {   // one pass: var = E[x²] − E[x]² in Float, which cancels when |mean| ≫ std
            let row = px[(i * C)..<(i * C + C)]
            let mu = row.reduce(0, +) / Float(C)
            let variance = onePass ? max(row.reduce(0) { $0 + $1 * $1 } / Float(C) - mu * mu, 0)
                                   : row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Float(C)
            let rs = 1 / (variance + eps).squareRoot()
            for c in 0..<C { o[i * C + c] = (px[i * C + c] - mu) * rs * w[c] + b[c] }
            m[i] = mu; r[i] = rs
        }
        put(o, out); put(m, mean); put(r, rstd)
    }
    func layerNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, mean: TensorView, rstd: TensorView,
                           dInput: TensorView, dWeight: TensorView, dBias: TensorView, rows: Int, columns: Int) {
        if fault == .layerNormBackwardOverwritesDWeight { base.fill(dWeight, value: 0) }
        base.layerNormBackward(dOut: dOut, input: x, weight: weight, mean: mean, rstd: rstd, dInput: dInput,
                               dWeight: dWeight, dBias: dBias, rows: rows, columns: columns)
    }

    func rmsNormForward(_ x: TensorView, weight: TensorView, out: TensorView, rstd: TensorView, rows: Int, columns: Int, epsilon: Double) {
        base.rmsNormForward(x, weight: weight, out: out, rstd: rstd, rows: rows, columns: columns,
                            epsilon: fault == .rmsNormForwardIgnoresEpsilon ? 0 : epsilon)
    }
    func rmsNormBackward(dOut: TensorView, input x: TensorView, weight: TensorView, rstd: TensorView, dInput: TensorView,
                         dWeight: TensorView, rows: Int, columns: Int) {
        base.rmsNormBackward(dOut: dOut, input: x, weight: weight, rstd: rstd, dInput: dInput, dWeight: dWeight, rows: rows, columns: columns)
    }
    func rotary(_ x: TensorView, table: TensorView, shape: RotaryShape, inverse: Bool) {
        var s = shape
        if fault == .rotaryIgnoresOffset { s.positionOffset = 0 }
        base.rotary(x, table: table, shape: s, inverse: inverse)
    }
    func swigluForward(gate: TensorView, up: TensorView, out: TensorView, count: Int) {
        base.swigluForward(gate: gate, up: up, out: out, count: count)
    }
    func swigluBackward(dOut: TensorView, gate: TensorView, up: TensorView, dGate: TensorView, dUp: TensorView, count: Int) {
        let swap = fault == .swigluBackwardSwapsGradients
        base.swigluBackward(dOut: dOut, gate: gate, up: up, dGate: swap ? dUp : dGate, dUp: swap ? dGate : dUp, count: count)
    }
    func geluForward(_ x: TensorView, out: TensorView) { base.geluForward(x, out: out) }
    func geluBackward(_ dOut: TensorView, input x: TensorView, dX: TensorView) { base.geluBackward(dOut, input: x, dX: dX) }

    func attentionForward(_ s: AttentionShape, q: TensorView, k: TensorView, v: TensorView, out: TensorView, lse: TensorView) {
        base.attentionForward(s, q: q, k: k, v: v, out: out, lse: lse)
        if fault == .attentionForwardLseOff { base.scale(lse, by: 1.001) }
        if fault == .attentionForwardModifiesQ { base.scale(q, by: 2) }
    }
    func attentionBackward(_ s: AttentionShape, dOut: TensorView, q: TensorView, k: TensorView, v: TensorView, out: TensorView,
                           lse: TensorView, dq: TensorView, dk: TensorView, dv: TensorView) {
        guard fault == .attentionBackwardKeepsLastHeadOfGroup, s.group > 1 else {
            base.attentionBackward(s, dOut: dOut, q: q, k: k, v: v, out: out, lse: lse, dq: dq, dk: dk, dv: dv)
            if fault == .attentionBackwardFlipsDq { base.scale(dq, by: -1) }
            return
        }
        // dk/dv overwritten by each query head of a group instead of summed: only the last counts.
        let C = s.channels, hd = s.headDim, N = s.tokens
        let one = AttentionShape(batch: s.batch, time: s.time, heads: s.kvHeads, headDim: hd)
        let qh = host(q), dh = host(dOut), oh = host(out), lh = host(lse)
        let pick = { (src: [Float], h: (Int) -> Int, rows: Int, width: Int, w: Int) -> [Float] in
            var r = [Float](repeating: 0, count: rows * w * hd)
            for n in 0..<rows { for j in 0..<w { for d in 0..<hd { r[(n * w + j) * hd + d] = src[n * width + h(j) * hd + d] } } }
            return r
        }
        let last = { (j: Int) in j * s.group + s.group - 1 }
        let buf = { (x: [Float]) in try! self.base.makeBuffer(x, label: "fault") }
        let q1 = buf(pick(qh, last, N, C, s.kvHeads)), d1 = buf(pick(dh, last, N, C, s.kvHeads)), o1 = buf(pick(oh, last, N, C, s.kvHeads))
        var l1 = [Float](repeating: 0, count: s.batch * s.kvHeads * s.time)
        for b in 0..<s.batch { for j in 0..<s.kvHeads { for t in 0..<s.time {
            l1[(b * s.kvHeads + j) * s.time + t] = lh[(b * s.heads + last(j)) * s.time + t] } } }
        let lse1 = buf(l1), dq1 = try! base.makeBuffer(count: N * s.kvChannels, label: "fault dq")
        base.attentionBackward(one, dOut: d1.all, q: q1.all, k: k, v: v, out: o1.all, lse: lse1.all, dq: dq1.all, dk: dk, dv: dv)
        base.attentionBackward(s, dOut: dOut, q: q, k: k, v: v, out: out, lse: lse, dq: dq,
                               dk: try! base.makeBuffer(count: dk.count, label: "fault dk").all,
                               dv: try! base.makeBuffer(count: dv.count, label: "fault dv").all)
    }

    func crossEntropy(logits: TensorView, targets: TensorView, losses: TensorView, correct: TensorView,
                      dLogits: TensorView?, gradScale: Float, rows: Int, vocabulary V: Int) {
        let before = host(logits)   // dLogits may alias logits
        base.crossEntropy(logits: logits, targets: targets, losses: losses, correct: correct, dLogits: dLogits,
                          gradScale: gradScale, rows: rows, vocabulary: V)
        guard fault == .crossEntropyLastMaxWins else { return }
        let t = host(targets).map { Int(Int32(bitPattern: $0.bitPattern)) }
        put((0..<rows).map { r in
            var arg = 0
            for j in 0..<V where before[r * V + j] >= before[r * V + arg] { arg = j }
            return arg == t[r] ? 1 : 0
        }, correct)
    }

    func sumOfSquares(_ v: TensorView) throws -> Double {
        guard fault == .sumOfSquaresInFloat else { return try base.sumOfSquares(v) }
        return Double(host(v).reduce(Float(0)) { $0 + $1 * $1 })
    }
    func stepScalars(losses: TensorView, correct: TensorView, extra: TensorView?, rows: Int, gradients: TensorView,
                     clip: Double, into scalars: TensorView) {
        base.stepScalars(losses: losses, correct: correct, extra: extra, rows: rows, gradients: gradients, clip: clip, into: scalars)
    }
    func readStepScalars(_ scalars: TensorView) throws -> StepScalars { try base.readStepScalars(scalars) }
    func adamW(parameters: TensorView, gradients: TensorView, m: TensorView, v: TensorView, hyper: AdamWHyper,
               control: TensorView?) {
        var h = hyper
        if fault == .adamWNoBiasCorrection { h.step = 1_000_000 }
        base.adamW(parameters: parameters, gradients: gradients, m: m, v: v, hyper: h, control: control)
    }
}

/// Runs `cases` on `device`; returns one line per failing case (thrown error or output mismatch).
func failures(_ cases: [OpCase], on device: any ComputeDevice, seed: UInt64 = OpCases.defaultSeed) -> [String] {
    var report: [String] = []
    for c in cases {
        do {
            let out = try c.run(device, seed)
            for (name, r) in c.reference(seed).sorted(by: { $0.key < $1.key }) {
                guard let o = out[name] else { report.append("\(c): missing '\(name)'"); continue }
                let cmp = Comparison.compare(o, reference: r)
                if !cmp.passes(maxNMSE: c.maxNMSE) || cmp.outputNaNs != cmp.referenceNaNs { report.append("\(c) '\(name)': \(cmp)") }
            }
        } catch {
            report.append("\(c): threw \(error)")
        }
    }
    return report
}

@Suite("Op-case harness catches broken ops")
struct CPUOpHarnessTests {
    @Test("An injected fault fails at least one case of its op", arguments: Fault.allCases.filter { $0 != .none })
    func faultIsCaught(_ fault: Fault) {
        let cases = OpCases.cases(fault.op, in: OpCases.parity)
        let control = failures(cases, on: FaultyDevice(.none))
        #expect(control.isEmpty, "the unbroken wrapper fails: \(control)")
        let caught = failures(cases, on: FaultyDevice(fault))
        #expect(!caught.isEmpty, "\(fault) went unnoticed by all \(cases.count) \(fault.op) cases")
        if let text = fault.expectedMessage {
            #expect(caught.contains { $0.contains(text) }, "\(fault): no failure mentions '\(text)': \(caught)")
        }
    }

    @Test("Comparison: nmse, max-abs, first differences")
    func comparisonNumbers() {
        let c = Comparison.compare([1, 2, 3.5, 4] as [Float], reference: [1, 2, 3, 4] as [Float])
        #expect(abs(c.nmse - 0.25 / 30) < 1e-15)
        #expect(c.maxAbs == 0.5 && c.maxAbsIndex == 2)
        #expect(c.firstDifferences.map(\.index) == [2])
        #expect(!c.nonFiniteMismatch && c.passes(maxNMSE: 1e-2) && !c.passes(maxNMSE: 1e-3))
        // An all-zero reference falls back to the absolute squared error.
        let z = Comparison.compare([0, 0.001] as [Float], reference: [0, 0] as [Float])
        #expect(abs(z.nmse - 1e-6) < 1e-12)
    }

    @Test("Comparison: NaN and inf patterns")
    func comparisonNonFinite() {
        let inf = Float.infinity
        #expect(Comparison.compare([1, .nan], reference: [1, 2] as [Float]).nonFiniteMismatch)
        #expect(Comparison.compare([1, .nan], reference: [1, 2] as [Float]).outputNaNs == 1)
        #expect(Comparison.compare([1, 2], reference: [1, .nan] as [Float]).nonFiniteMismatch)
        #expect(Comparison.compare([inf], reference: [-inf] as [Float]).nonFiniteMismatch)
        #expect(!Comparison.compare([inf, .nan, 1], reference: [inf, .nan, 1] as [Float]).nonFiniteMismatch)
        #expect(Comparison.compare([1, 2], reference: [1] as [Float]).nonFiniteMismatch)   // length mismatch
    }
}

// Workspace: the guarded device buffers of one prepared case, and the seeded host inputs.
//
// Every tensor a case touches lives in its own device buffer laid out
//   [64 sentinels | payload | 64 sentinels]
// with the sentinel Float(bitPattern: 0x7FC0DEAD), a quiet NaN. An op that writes outside its
// view changes a sentinel (checked after the op); an op that reads outside its view picks up a
// NaN, which shows in the outputs. Read-only inputs are also compared bit for bit with what was
// uploaded, so an op that writes into the wrong operand is caught as well.
//
// Not here: what any op computes (NaiveReference*), which cases exist (OpCases.swift).

import MPOKit

/// Host-side inputs of one case, generated from the seed (identical for device and reference).
struct HostInputs: Sendable {
    var floats: [String: [Float]] = [:]
    var ints: [String: [Int32]] = [:]
    subscript(_ name: String) -> [Float] { floats[name]! }
    /// The named float input in Double (what the naive reference consumes).
    func d(_ name: String) -> [Double] { floats[name]!.map(Double.init) }
    func i(_ name: String) -> [Int] { ints[name]!.map(Int.init) }
}

/// Seeded input generation: each call draws from the stream in order, so a case that asks for
/// the same inputs in the same order gets the same numbers on every machine.
struct InputGenerator {
    var rng: SplitMix64
    var inputs = HostInputs()
    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    /// Uniform in [lo, hi).
    @discardableResult
    mutating func uniform(_ name: String, _ count: Int, _ lo: Float, _ hi: Float) -> [Float] {
        var v = [Float](repeating: 0, count: count)
        let span = Double(hi) - Double(lo)
        for i in 0..<count { v[i] = Float(Double(lo) + span * rng.uniform()) }
        inputs.floats[name] = v
        return v
    }

    /// Integers lo...hi as floats (frequent exact ties, e.g. for argmax).
    mutating func integers(_ name: String, _ count: Int, _ lo: Int, _ hi: Int) {
        inputs.floats[name] = (0..<count).map { _ in Float(lo + rng.below(hi - lo + 1)) }
    }

    /// Token ids / targets in 0..<below.
    mutating func ids(_ name: String, _ count: Int, below: Int) {
        inputs.ints[name] = (0..<count).map { _ in Int32(rng.below(below)) }
    }

    mutating func set(_ name: String, _ values: [Float]) { inputs.floats[name] = values }
}

/// The guarded buffers of one prepared case.
final class Workspace {
    static let guardCount = 64
    static let sentinelBits: UInt32 = 0x7FC0_DEAD
    static var sentinel: Float { Float(bitPattern: sentinelBits) }

    private enum Role { case input([UInt32]), output, scratch }
    private struct Entry {
        let name: String
        let buffer: DeviceBuffer
        let count: Int
        var role: Role
    }

    let device: any ComputeDevice
    private var entries: [Entry] = []

    init(_ device: any ComputeDevice) { self.device = device }

    var outputNames: [String] {
        entries.compactMap { if case .output = $0.role { return $0.name } else { return nil } }
    }

    private func guarded(_ name: String, count: Int) throws -> (DeviceBuffer, TensorView) {
        let g = Self.guardCount
        let buffer = try device.makeBuffer(count: count + 2 * g, label: "case \(name)")
        let sentinels = [Float](repeating: Self.sentinel, count: g)
        try device.write(sentinels, to: buffer.view(0, g))
        try device.write(sentinels, to: buffer.view(g + count, g))
        return (buffer, buffer.view(g, count))
    }

    /// A read-only Float input (checked unchanged after the op).
    func input(_ name: String, _ values: [Float]) throws -> TensorView {
        let (buffer, view) = try guarded(name, count: values.count)
        try device.write(values, to: view)
        entries.append(Entry(name: name, buffer: buffer, count: values.count, role: .input(values.map(\.bitPattern))))
        return view
    }

    /// A read-only Int32 input (token ids, targets).
    func input(_ name: String, _ values: [Int32]) throws -> TensorView {
        let (buffer, view) = try guarded(name, count: values.count)
        try device.write(values, to: view)
        entries.append(Entry(name: name, buffer: buffer, count: values.count,
                             role: .input(values.map { UInt32(bitPattern: $0) })))
        return view
    }

    /// An output, pre-filled with `initial` (seeded garbage for overwrite outputs, the starting
    /// value for accumulating ones). Downloaded by `downloadAndCheck`.
    func output(_ name: String, _ initial: [Float]) throws -> TensorView {
        let (buffer, view) = try guarded(name, count: initial.count)
        try device.write(initial, to: view)
        entries.append(Entry(name: name, buffer: buffer, count: initial.count, role: .output))
        return view
    }

    /// Scratch the op may use freely (filled with NaN so a read before a write shows); only its
    /// guards are checked.
    func scratch(_ name: String, _ count: Int) throws -> TensorView {
        let (buffer, view) = try guarded(name, count: count)
        try device.write([Float](repeating: .nan, count: count), to: view)
        entries.append(Entry(name: name, buffer: buffer, count: count, role: .scratch))
        return view
    }

    /// Turns an output (e.g. one written by a forward op during setup) into a read-only input,
    /// recording its current contents; checks its guards first.
    func freeze(_ name: String) throws {
        guard let i = entries.firstIndex(where: { $0.name == name }) else { throw OpCaseError("no tensor '\(name)'") }
        let all = try checkedPayload(entries[i])
        entries[i].role = .input(all.map(\.bitPattern))
    }

    private func checkedPayload(_ e: Entry) throws -> [Float] {
        let g = Self.guardCount
        let all = try device.read(e.buffer.all)
        for j in 0..<g {
            let before = all[j].bitPattern, after = all[g + e.count + j].bitPattern
            if before != Self.sentinelBits {
                throw OpCaseError("'\(e.name)': guard element \(g - j) before the view was overwritten "
                                  + "(bits 0x\(String(before, radix: 16)), value \(all[j]))")
            }
            if after != Self.sentinelBits {
                throw OpCaseError("'\(e.name)': guard element \(j) after the view (count \(e.count)) was overwritten "
                                  + "(bits 0x\(String(after, radix: 16)), value \(all[g + e.count + j]))")
            }
        }
        return Array(all[g..<(g + e.count)])
    }

    /// Downloads every output; throws if any guard was touched or any read-only input changed.
    func downloadAndCheck() throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for e in entries {
            let payload = try checkedPayload(e)
            switch e.role {
            case .output: out[e.name] = payload
            case .scratch: break
            case .input(let bits):
                if let j = (0..<e.count).first(where: { payload[$0].bitPattern != bits[$0] }) {
                    throw OpCaseError("read-only input '\(e.name)' was modified at [\(j)]: bits 0x"
                                      + "\(String(payload[j].bitPattern, radix: 16)), uploaded 0x\(String(bits[j], radix: 16))")
                }
            }
        }
        return out
    }
}

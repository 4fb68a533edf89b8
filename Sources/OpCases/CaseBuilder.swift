// CaseBuilder: the one place that ties a case's three parts together — seeded host inputs,
// the device run (on guarded buffers) and the naive reference — so each builder in
// OpCases+*.swift only states what is specific to its op.
//
// Not here: any particular op (OpCases+Dense.swift, OpCases+Transformer.swift).

import MPOKit

enum CaseBuilder {
    /// A case whose inputs come from `inputs`, which `device` uploads and runs and `reference`
    /// recomputes in Double. Both sides see exactly the same host inputs for a given seed.
    static func make(_ op: Op, _ vars: String, maxNMSE: Double = 1e-7, flops: Double = 0, bytes: Double = 0,
                     inputs: @escaping @Sendable (inout InputGenerator) -> Void,
                     device: @escaping @Sendable (Workspace, HostInputs) throws -> OpInstance,
                     reference: @escaping @Sendable (HostInputs) -> [String: [Double]]) -> OpCase {
        @Sendable func host(_ seed: UInt64) -> HostInputs {
            var g = InputGenerator(seed: seed)
            inputs(&g)
            return g.inputs
        }
        return OpCase(op: op, vars: vars, maxNMSE: maxNMSE, flops: flops, bytes: bytes,
                      prepare: { dev, seed in try device(Workspace(dev), host(seed)) },
                      reference: { seed in reference(host(seed)) })
    }
}

extension Workspace {
    /// The prepared instance whose `execute` runs `body` (the op under test).
    func instance(_ body: @escaping () throws -> Void) -> OpInstance {
        OpInstance(workspace: self, execute: body)
    }
}

/// Bytes of `elements` 4-byte values (for the benchmark's GB/s).
@inline(__always) func bytes(_ elements: Int) -> Double { 4 * Double(elements) }

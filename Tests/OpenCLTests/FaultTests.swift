// OpenCL faults end in a clear message and never take the CPU device down with them.

import Foundation
@testable import MPOKit
import MPOOpenCL
import Testing

@Suite("OpenCL faults", .enabled(if: Shared.available, OpenCLGate.reason))
struct FaultTests {
    @Test("a model that does not fit in device memory is refused with a message, and the CPU still works")
    func outOfDeviceMemory() throws {
        let device = try Shared.opencl()
        let total = Int(device.info.globalMemoryBytes)
        // A width whose parameter arena alone exceeds the device's memory.
        let channels = Int((Double(total) / 4 / 12 / 2).squareRoot()) / 32 * 32 + 32
        let config = ModelConfig(vocabularySize: 65, channels: channels, heads: 1, layers: 2, context: 8, ffn: channels)
        #expect { _ = try Transformer(config: config, device: device) } throws: { error in
            let msg = "\(error)"
            return msg.contains("out of device memory") && msg.contains("--device cpu")
        }
        #expect(device.allocatedBytes < total)   // everything allocated before the failure was released
        let cpu = try Transformer(config: ModelConfig(vocabularySize: 11, channels: 16, heads: 2, layers: 1, context: 8, ffn: 32),
                              device: CPUDevice())
        try cpu.initialize(seed: 1)
        #expect(try cpu.forward(tokens: [1, 2, 3, 4], targets: [2, 3, 4, 5], batch: 1, time: 4).loss.isFinite)
        // The OpenCL device itself keeps working after the refusal.
        let small = try device.makeBuffer([1, 2, 3] as [Float], label: "after")
        #expect(try device.read(small.all) == [1, 2, 3])
    }
}

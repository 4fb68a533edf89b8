// Shared helpers of the OpenCL suites: one OpenCL device for the whole process (programs are
// built once; the device serialises concurrent callers); the reference files and error measures
// come from TestSupport's ReferenceData. The suites are gated by OpenCLGate (TestSupport).

import Foundation
import MPOKit
import MPOOpenCL
@_exported import OpCases
@_exported import TestSupport
import SafeTensors
import Testing

enum Shared {
    /// The default OpenCL device, created once (or the error that prevented it).
    static let device: Result<OpenCLDevice, Error> = Result { try OpenCLDevice() }
    /// Whether the suites run here (OpenCLGate: a platform exists, or MPO_REQUIRE_OPENCL=1 and a
    /// missing platform fails them). A device that exists but fails to open (a kernel that does
    /// not build) fails the tests rather than skipping them.
    static let available = OpenCLGate.enabled
    /// The shared device; throws (failing the test) if it could not be opened.
    static func opencl() throws -> OpenCLDevice { try device.get() }
}

typealias Reference = ReferenceData

/// Seeded uniform floats in [-range, range).
func randomFloats(_ n: Int, seed: UInt64, range: Float = 1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in Float((rng.uniform() * 2 - 1) * Double(range)) }
}

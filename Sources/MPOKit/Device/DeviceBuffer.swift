// DeviceBuffer and TensorView: the memory half of the device layer.
//
// A `DeviceBuffer` is one allocation owned by one `ComputeDevice`, measured in 4-byte elements
// (Float32 or Int32). What `handle` points at is the device's business: host memory on the CPU
// device, a `cl_mem` on the OpenCL device. The buffer frees itself in `deinit`.
// A `TensorView` is a (buffer, offset, count) window with no ownership: ops take views, so one
// flat parameter arena can hold every tensor (docs/DESIGN.md §1: offsets instead of sub-buffers).

import Foundation

/// One device allocation of `count` 4-byte elements.
public final class DeviceBuffer: @unchecked Sendable {
    public let count: Int
    public let label: String
    /// Identity of the device that owns the allocation; ops check it.
    public let owner: ObjectIdentifier
    /// Device-specific handle (host pointer for the CPU device, `cl_mem` for OpenCL).
    public let handle: UnsafeMutableRawPointer
    private let release: (UnsafeMutableRawPointer) -> Void

    public init(count: Int, label: String, owner: ObjectIdentifier, handle: UnsafeMutableRawPointer,
                release: @escaping (UnsafeMutableRawPointer) -> Void) {
        self.count = count
        self.label = label
        self.owner = owner
        self.handle = handle
        self.release = release
    }

    deinit { release(handle) }

    /// The whole buffer as a view.
    public var all: TensorView { TensorView(buffer: self, offset: 0, count: count) }

    /// A window of `count` elements starting at `offset` (bounds are checked).
    public func view(_ offset: Int, _ count: Int) -> TensorView {
        precondition(offset >= 0 && count >= 0 && offset + count <= self.count,
                     "view [\(offset), \(offset + count)) outside buffer '\(label)' of \(self.count) elements")
        return TensorView(buffer: self, offset: offset, count: count)
    }
}

/// A window into a `DeviceBuffer`: `count` elements from `offset`. No ownership beyond a reference.
public struct TensorView: @unchecked Sendable {
    public let buffer: DeviceBuffer
    public let offset: Int
    public let count: Int

    /// A sub-window relative to this one.
    public func view(_ offset: Int, _ count: Int) -> TensorView {
        precondition(offset >= 0 && count >= 0 && offset + count <= self.count,
                     "sub-view [\(offset), \(offset + count)) outside view of \(self.count) elements in '\(buffer.label)'")
        return TensorView(buffer: buffer, offset: self.offset + offset, count: count)
    }
}

/// A device's running total of allocated bytes, shared with each buffer's release closure
/// (every device keeps one: `allocatedBytes`).
public final class ByteLedger: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    public init() {}
    public var bytes: Int { lock.lock(); defer { lock.unlock() }; return total }
    public func add(_ n: Int) { lock.lock(); total += n; lock.unlock() }
}

// OpenCLDevice: `ComputeDevice` on any OpenCL 1.2+ device (a GPU when there is one; PoCL's CPU
// device otherwise).
//
// One context, one in-order queue, programs built once (through the on-disk binary cache) with
// per-device -D tile options, kernels created once; each op sets arguments and enqueues — no
// clFinish between ops. `download`, `synchronize` and `sumOfSquares` wait for the queue.
// Buffers are cl_mem allocations (DeviceBuffer.handle); ops take (buffer, element offset)
// pairs, passed to the kernels as arguments — never sub-buffers (docs/DESIGN.md §1).
//
// Errors: allocation, upload and program builds throw `OpenCLError`. The protocol's ops do not
// throw, so a failure inside one (an enqueue, a lazily built attention program) is recorded —
// the first one wins, later ops are skipped — and thrown by the next `synchronize`, `download`
// or `sumOfSquares` (which also clears it). Misuse (a buffer of another device, views too
// small) is a programming error and traps with the op's name, as on the CPU device.
// Thread safety: every op holds a lock while it sets arguments and enqueues, so one device can
// be shared by concurrent callers (the parity tests do).
//
// Not here: the ops themselves (OpenCLDevice+Dense.swift, OpenCLDevice+Transformer.swift).

import COpenCL
import Foundation
import MPOKit

public final class OpenCLDevice: ComputeDevice, @unchecked Sendable {  // ops lock (see the header)
    public let name: String
    public let kind = DeviceKind.opencl
    /// What discovery knows about the device in use.
    public let info: OpenCLDeviceInfo
    /// The tile and work-group sizes the kernels were built with.
    public let tuning: OpenCLTuning

    let device: cl_device_id
    let context: cl_context
    let queue: cl_command_queue
    let sources: [String: String]
    let cache: ProgramCache
    let deviceKey: String
    let main: OpenCLProgram
    let gemmLarge: OpenCLProgram
    let gemmSmall: OpenCLProgram
    var attentionPrograms: [Int: OpenCLProgram] = [:]
    let lock = NSLock()
    var pendingError: OpenCLError?
    /// Scratch allocations by purpose, grown on demand (the queue is in order, so reuse is safe).
    var scratch: [ScratchSlot: (mem: cl_mem, bytes: Int)] = [:]

    enum ScratchSlot { case gemmPartial, columnPartial, embeddingPartial, sumOfSquares, stepPartial }

    /// Kernels enqueued and host waits (blocking reads/writes, clFinish) since the device was made:
    /// `bench` reports both per training step.
    public internal(set) var launches = 0
    /// Work-groups a launch puts along y (or z) at most: NVIDIA's limit (CUDA's grid). Lower only
    /// to test the split launches.
    public var maxGroupsPerDimension = 65_535
    public internal(set) var hostWaits = 0
    public var queueCounters: QueueCounters? { locked { QueueCounters(launches: launches, hostWaits: hostWaits) } }
    /// Host copies of uploads in flight (uploads do not wait: the data is copied here and the
    /// copy freed at the next host wait, when the in-order queue has run the write).
    var staged: [UnsafeMutableRawPointer] = []
    var stagedBytes = 0
    /// Past this many bytes in flight an upload waits for the queue (bounds the host memory).
    static let stagingLimit = 64 << 20

    /// When true, every launch waits for completion and its wall time is added to `profile`
    /// (slow: for finding hot kernels only). Starts as MPO_OPENCL_PROFILE=1.
    public var profiling = ProcessInfo.processInfo.environment["MPO_OPENCL_PROFILE"] == "1"
    var profile: [String: (calls: Int, seconds: Double)] = [:]

    // MARK: - Discovery

    /// Whether at least one OpenCL device exists.
    public static var isAvailable: Bool { (try? OpenCLDiscovery.entries().isEmpty == false) ?? false }

    /// Every device, one line each, in `opencl:N` order (for `mpo-train devices`).
    public static func listDevices() -> [String] {
        do {
            let all = try OpenCLDiscovery.entries()
            if all.isEmpty { return [] }
            let chosen = try? OpenCLDiscovery.choose(index: nil).info.index
            return all.map { "\($0.info)\($0.info.index == chosen ? "  (default)" : "")" }
        } catch {
            return ["\(error)"]
        }
    }

    /// Every device as structured information, in `opencl:N` order.
    public static func devices() throws -> [OpenCLDeviceInfo] { try OpenCLDiscovery.entries().map(\.info) }

    // MARK: - Setup

    /// The device `opencl:index`, or the preferred one (first GPU, else accelerator, else any);
    /// `adjust` may change the tuning chosen for it before the programs are built (tests run the
    /// GPU tiling and forced split-K on PoCL this way). Without an index, `rankOnNode` spreads
    /// the ranks of a data-parallel run over the machine's GPUs (`OpenCLDiscovery.choose`).
    public init(index: Int? = nil, rankOnNode: Int? = nil, adjust: ((inout OpenCLTuning) -> Void)? = nil) throws {
        // The ICD loader's first use, and PoCL's context set-up, are not safe to run concurrently
        // (seen: a crash, or no platform found, when test tasks open devices at once).
        OpenCLDiscovery.lock.lock()
        defer { OpenCLDiscovery.lock.unlock() }
        let entry = try OpenCLDiscovery.choose(index: index, rankOnNode: rankOnNode)
        info = entry.info
        device = entry.device
        name = "OpenCL \(entry.info.name) (\(entry.info.platformName))"
        var tuning = OpenCLTuning(for: entry.info)
        adjust?(&tuning)
        self.tuning = tuning
        var err: cl_int = CL_SUCCESS
        var dev: cl_device_id? = entry.device
        guard let ctx = clCreateContext(nil, 1, &dev, nil, nil, &err), err == CL_SUCCESS else {
            throw OpenCLError(code: err, call: "clCreateContext(\(entry.info.name))")
        }
        context = ctx
        guard let q = clCreateCommandQueue(ctx, entry.device, 0, &err), err == CL_SUCCESS else {
            clReleaseContext(ctx)
            throw OpenCLError(code: err, call: "clCreateCommandQueue(\(entry.info.name))")
        }
        queue = q
        do {
            sources = try KernelSources.load()
            cache = ProgramCache.fromEnvironment()
            deviceKey = [info.name, info.driverVersion, info.version, info.platformName, info.platformVersion].joined(separator: "|")
            let t = tuning
            main = try OpenCLProgram.build(
                files: ["elementwise.cl", "layernorm.cl", "embedding.cl", "activations.cl", "loss.cl", "optimizer.cl", "mpo.cl", "half.cl", "q8.cl"],
                options: t.commonOptions + " " + t.mainOptions, sources: sources, context: ctx, device: entry.device,
                deviceKey: deviceKey, cache: cache)
            gemmLarge = try OpenCLProgram.build(files: ["gemm.cl"], options: t.commonOptions + " " + t.gemmLarge.options,
                                                sources: sources, context: ctx, device: entry.device, deviceKey: deviceKey, cache: cache)
            gemmSmall = try OpenCLProgram.build(files: ["gemm.cl"], options: t.commonOptions + " " + t.gemmSmall.options,
                                                sources: sources, context: ctx, device: entry.device, deviceKey: deviceKey, cache: cache)
        } catch {
            clReleaseCommandQueue(q)
            clReleaseContext(ctx)
            throw error
        }
    }

    deinit {
        clFinish(queue)
        for p in staged { free(p) }
        for s in scratch.values { clReleaseMemObject(s.mem) }
        attentionPrograms = [:]
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }

    /// Builds a program from explicit sources with this device's context (tests use it to check
    /// that a broken kernel surfaces its build log). Nothing is cached.
    public func buildProgram(source: String, fileName: String = "test.cl", options: String = "") throws {
        _ = try OpenCLProgram.build(files: [fileName], options: options, sources: sources.merging([fileName: source]) { $1 },
                                    context: context, device: device, deviceKey: deviceKey, cache: ProgramCache(directory: nil))
    }

    // MARK: - Locking and errors

    @inline(__always)
    func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Keeps the first failure of a non-throwing op for the next synchronising call.
    func record(_ error: OpenCLError) {
        if pendingError == nil { pendingError = error }
    }

    /// Throws (and clears) the recorded failure, if any. Call with the lock held.
    func throwPending() throws {
        if let e = pendingError { pendingError = nil; throw e }
    }

    // MARK: - Memory

    /// The cl_mem behind a view (traps if the buffer belongs to another device).
    @inline(__always)
    func mem(_ v: TensorView, _ op: String) -> cl_mem {
        precondition(v.buffer.owner == ObjectIdentifier(self), "\(op): buffer '\(v.buffer.label)' belongs to another device")
        return OpaquePointer(v.buffer.handle)
    }

    /// Kernels index a buffer with 32-bit ints, and the driver caps one allocation.
    public var maxBufferElements: Int {
        let cap = info.maxAllocationBytes > 0 ? Int(clamping: info.maxAllocationBytes / 4) : Int(Int32.max)
        return min(Int(Int32.max) - 1, cap)
    }

    /// Bytes currently allocated through `makeBuffer` (checked against the device's memory).
    public var allocatedBytes: Int { allocated.bytes }
    private let allocated = ByteLedger()

    public func makeBuffer(count: Int, label: String) throws -> DeviceBuffer {
        guard count >= 0 else { throw DeviceError("cannot allocate '\(label)' with \(count) elements on \(name)") }
        guard count <= maxBufferElements else {
            throw DeviceError(String(format: "out of device memory: '%@' needs %.1f MiB in one buffer, more than the largest buffer %@ allows (%.1f MiB, and at most 2^31 − 1 elements); use a smaller --batch or --context, or --device cpu",
                                     label, Double(count) * 4 / 1_048_576, info.name, Double(maxBufferElements) * 4 / 1_048_576))
        }
        let bytes = max(count, 1) * 4
        // Refuse before the driver does (some overcommit and fail later, in a kernel): the
        // message says what to change.
        let total = Int(clamping: info.globalMemoryBytes), used = allocated.bytes
        if total > 0 && used + bytes > total {
            throw DeviceError(String(format: "out of device memory: '%@' needs %.1f MiB but only %.1f of %.1f MiB remain on %@; use a smaller --batch or --context, or --device cpu",
                                     label, Double(bytes) / 1_048_576, Double(max(total - used, 0)) / 1_048_576,
                                     Double(total) / 1_048_576, info.name))
        }
        var err: cl_int = CL_SUCCESS
        guard let m = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &err), err == CL_SUCCESS else {
            if [CL_INVALID_BUFFER_SIZE, CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_RESOURCES, CL_OUT_OF_HOST_MEMORY].contains(err) {
                throw DeviceError(String(format: "out of device memory: %@ for '%@' (%.1f MiB in one buffer) on %@; use a smaller --batch or --context, or --device cpu",
                                         String(cString: mpo_cl_error_name(err)), label, Double(bytes) / 1_048_576, info.name))
            }
            throw OpenCLError(code: err, call: "clCreateBuffer(\(label), \(bytes) bytes)")
        }
        var zero: Float = 0
        let status = locked { clEnqueueFillBuffer(queue, m, &zero, 4, 0, bytes, 0, nil, nil) }
        if status != CL_SUCCESS {
            clReleaseMemObject(m)
            throw OpenCLError(code: status, call: "clEnqueueFillBuffer(\(label))")
        }
        allocated.add(bytes)
        let ledger = allocated
        return DeviceBuffer(count: count, label: label, owner: ObjectIdentifier(self), handle: UnsafeMutableRawPointer(m)) {
            clReleaseMemObject(OpaquePointer($0))
            ledger.add(-bytes)
        }
    }

    private func write(_ base: UnsafeRawPointer?, count: Int, to view: TensorView) throws {
        guard count == view.count else {
            throw DeviceError("upload of \(count) values into '\(view.buffer.label)' view of \(view.count)")
        }
        guard count > 0, let base else { return }
        let m = mem(view, "upload")
        try locked {
            guard let copy = malloc(count * 4) else { throw DeviceError("out of host memory staging an upload of \(count) values") }
            memcpy(copy, base, count * 4)
            let status = clEnqueueWriteBuffer(queue, m, cl_bool(CL_FALSE), view.offset * 4, count * 4, copy, 0, nil, nil)
            guard status == CL_SUCCESS else {
                free(copy)
                throw OpenCLError(code: status, call: "clEnqueueWriteBuffer(\(view.buffer.label))")
            }
            staged.append(copy); stagedBytes += count * 4
            if stagedBytes > Self.stagingLimit {
                try check(clFinish(queue), "clFinish")
                waited()
            }
        }
    }

    /// Call (with the lock held) after a wait for the whole queue: counts it and frees the
    /// copies of the uploads the queue has now run.
    func waited() {
        hostWaits += 1
        for p in staged { free(p) }
        staged.removeAll(keepingCapacity: true); stagedBytes = 0
    }

    public func upload(_ source: UnsafeBufferPointer<Float>, to view: TensorView) throws {
        try write(source.baseAddress.map(UnsafeRawPointer.init), count: source.count, to: view)
    }

    public func upload(_ source: UnsafeBufferPointer<Int32>, to view: TensorView) throws {
        try write(source.baseAddress.map(UnsafeRawPointer.init), count: source.count, to: view)
    }

    public func download(_ view: TensorView, into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard destination.count == view.count else {
            throw DeviceError("download of '\(view.buffer.label)' view of \(view.count) into \(destination.count) values")
        }
        let m = mem(view, "download")
        try locked {
            try throwPending()
            guard view.count > 0, let base = destination.baseAddress else { return }
            try check(clEnqueueReadBuffer(queue, m, cl_bool(CL_TRUE), view.offset * 4, view.count * 4, base, 0, nil, nil),
                      "clEnqueueReadBuffer(\(view.buffer.label))")
            waited()
        }
    }

    public func synchronize() throws {
        try locked {
            try throwPending()
            try check(clFinish(queue), "clFinish")
            waited()
        }
    }

    /// A scratch buffer of at least `bytes` for `slot` (call with the lock held).
    func scratchBuffer(_ slot: ScratchSlot, bytes: Int) -> cl_mem? {
        if let s = scratch[slot], s.bytes >= bytes { return s.mem }
        var err: cl_int = CL_SUCCESS
        let size = max(bytes, 256)
        guard let m = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &err), err == CL_SUCCESS else {
            record(OpenCLError(code: err, call: "clCreateBuffer(scratch \(slot), \(size) bytes)"))
            return nil
        }
        if let old = scratch[slot] { clReleaseMemObject(old.mem) }   // queued users keep it alive
        scratch[slot] = (m, size)
        return m
    }
}

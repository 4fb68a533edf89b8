// Platform and device discovery: what OpenCL devices this machine has, and which one to use.
//
// Devices are numbered across all platforms in platform order, then device order — the index
// `--device opencl:N` and `OpenCLDevice(index:)` take. Without an index the first GPU wins,
// then the first accelerator, then the first device of any kind (PoCL's CPU device here).

import COpenCL
import Foundation

/// One OpenCL device as discovery sees it.
public struct OpenCLDeviceInfo: Sendable, CustomStringConvertible {
    /// Position in the global list (the N of `opencl:N`).
    public let index: Int
    public let platformName: String
    public let platformVersion: String
    public let name: String
    /// "GPU", "CPU", "accelerator" or "other".
    public let type: String
    public let driverVersion: String
    public let version: String
    public let computeUnits: Int
    public let globalMemoryBytes: UInt64
    /// The largest single buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE; often a quarter of the memory).
    public let maxAllocationBytes: UInt64
    public let localMemoryBytes: UInt64
    public let maxWorkGroupSize: Int
    public let supportsFP64: Bool

    public var isGPU: Bool { type == "GPU" }

    public var description: String {
        let gib = Double(globalMemoryBytes) / Double(1 << 30)
        return "opencl:\(index)  \(name) [\(type)] — \(platformName), \(version), driver \(driverVersion), "
            + "\(computeUnits) CUs, \(String(format: "%.1f", gib)) GiB (buffers ≤ \(String(format: "%.1f", Double(maxAllocationBytes) / Double(1 << 30))) GiB), local \(localMemoryBytes / 1024) KiB, "
            + "max work-group \(maxWorkGroupSize)\(supportsFP64 ? ", fp64" : "")"
    }
}

enum OpenCLDiscovery {
    struct Entry {
        let platform: cl_platform_id
        let device: cl_device_id
        let info: OpenCLDeviceInfo
    }

    // MARK: - Enumeration

    static func platforms() throws -> [cl_platform_id] {
        var n: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &n)
        if status == -1001 /* CL_PLATFORM_NOT_FOUND_KHR: no ICD installed */ || n == 0 { return [] }
        try check(status, "clGetPlatformIDs")
        var ids = [cl_platform_id?](repeating: nil, count: Int(n))
        try check(clGetPlatformIDs(n, &ids, nil), "clGetPlatformIDs")
        return ids.compactMap { $0 }
    }

    /// Serialises discovery and device set-up across threads (see OpenCLDevice.init).
    static let lock = NSRecursiveLock()

    /// Every device of every platform, in index order.
    static func entries() throws -> [Entry] {
        lock.lock()
        defer { lock.unlock() }
        var out: [Entry] = []
        for p in try platforms() {
            var n: cl_uint = 0
            let status = clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
            if status == CL_DEVICE_NOT_FOUND || n == 0 { continue }
            try check(status, "clGetDeviceIDs")
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            try check(clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil), "clGetDeviceIDs")
            for d in ids.compactMap({ $0 }) {
                out.append(Entry(platform: p, device: d, info: info(platform: p, device: d, index: out.count)))
            }
        }
        return out
    }

    /// The device for `index`, or the preferred one (GPU, accelerator, anything).
    /// Device `index`, else the first GPU (else accelerator, else device); with `rankOnNode`
    /// (a data-parallel rank's index on its machine), the GPUs (else accelerators, else all
    /// devices) are dealt out in turn: device rankOnNode mod their count.
    static func choose(index: Int?, rankOnNode: Int? = nil) throws -> Entry {
        let all = try entries()
        guard !all.isEmpty else { throw OpenCLError.noDevice("no OpenCL platform or device found") }
        if let index {
            guard all.indices.contains(index) else {
                throw OpenCLError(code: CL_DEVICE_NOT_FOUND, call: "device discovery",
                                  detail: "no OpenCL device opencl:\(index); this machine has opencl:0…opencl:\(all.count - 1) "
                                    + "(see `mpo-train devices`), or run with --device cpu")
            }
            return all[index]
        }
        let gpus = all.filter { $0.info.type == "GPU" }, accelerators = all.filter { $0.info.type == "accelerator" }
        let pool = !gpus.isEmpty ? gpus : !accelerators.isEmpty ? accelerators : all
        return pool[(rankOnNode ?? 0) % pool.count]
    }

    // MARK: - Info queries

    static func info(platform p: cl_platform_id, device d: cl_device_id, index: Int) -> OpenCLDeviceInfo {
        func ds(_ what: Int32) -> String {
            (takeString(mpo_cl_device_string(d, cl_device_info(what))) ?? "?").trimmingCharacters(in: .whitespaces)
        }
        func ps(_ what: Int32) -> String {
            (takeString(mpo_cl_platform_string(p, cl_platform_info(what))) ?? "?").trimmingCharacters(in: .whitespaces)
        }
        let type: cl_device_type = scalar(d, CL_DEVICE_TYPE, 0)
        let typeName: String
        if type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { typeName = "GPU" }
        else if type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 { typeName = "accelerator" }
        else if type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 { typeName = "CPU" }
        else { typeName = "other" }
        let extensions = ds(CL_DEVICE_EXTENSIONS)
        return OpenCLDeviceInfo(
            index: index, platformName: ps(CL_PLATFORM_NAME), platformVersion: ps(CL_PLATFORM_VERSION),
            name: ds(CL_DEVICE_NAME), type: typeName, driverVersion: ds(CL_DRIVER_VERSION), version: ds(CL_DEVICE_VERSION),
            computeUnits: Int(scalar(d, CL_DEVICE_MAX_COMPUTE_UNITS, cl_uint(0))),
            globalMemoryBytes: scalar(d, CL_DEVICE_GLOBAL_MEM_SIZE, cl_ulong(0)),
            maxAllocationBytes: scalar(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, cl_ulong(0)),
            localMemoryBytes: scalar(d, CL_DEVICE_LOCAL_MEM_SIZE, cl_ulong(0)),
            maxWorkGroupSize: Int(scalar(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, Int(0))),
            supportsFP64: extensions.split(separator: " ").contains("cl_khr_fp64"))
    }

    /// A fixed-size device info value (`fallback` if the query fails).
    static func scalar<T>(_ d: cl_device_id, _ what: Int32, _ fallback: T) -> T {
        var v = fallback
        let status = withUnsafeMutableBytes(of: &v) { clGetDeviceInfo(d, cl_device_info(what), $0.count, $0.baseAddress, nil) }
        return status == CL_SUCCESS ? v : fallback
    }
}

// Kernel sources, program builds and the on-disk program-binary cache.
//
// Sources: the Kernels/*.cl files embedded at build time by the EmbedKernels plugin
// (EmbeddedKernels.sources), or, when MPO_KERNEL_DIR is set, the .cl files of that folder (for
// tuning without rebuilding). A program is common.cl plus one op family, each file preceded by
// a #line directive so compiler messages name the real file and line.
// Cache: binaries live in $MPO_KERNEL_CACHE (or $XDG_CACHE_HOME/mpo-picogpt, or
// ~/.cache/mpo-picogpt), one file per key = hash(source, options, device, driver, platform).
// MPO_KERNEL_CACHE=off disables it. A binary the driver rejects is ignored silently and the
// program is rebuilt from source (and re-cached).

import COpenCL
import Foundation

// MARK: - Sources

enum KernelSources {
    /// File name → OpenCL C text, from MPO_KERNEL_DIR or the embedded copy.
    static func load() throws -> [String: String] {
        guard let dir = ProcessInfo.processInfo.environment["MPO_KERNEL_DIR"], !dir.isEmpty else {
            return EmbeddedKernels.sources
        }
        let url = URL(fileURLWithPath: dir, isDirectory: true)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".cl") } } catch {
            throw OpenCLError(code: CL_INVALID_VALUE, call: "loading kernels",
                              detail: "MPO_KERNEL_DIR=\(dir) cannot be read (\(error)); unset it to use the embedded kernels")
        }
        var out: [String: String] = [:]
        for n in names {
            out[n] = try String(contentsOf: url.appendingPathComponent(n), encoding: .utf8)
        }
        return out
    }

    /// common.cl followed by `files`, with #line markers.
    static func assemble(_ files: [String], from sources: [String: String]) throws -> String {
        var text = ""
        for f in ["common.cl"] + files {
            guard let s = sources[f] else {
                throw OpenCLError(code: CL_INVALID_VALUE, call: "loading kernels",
                                  detail: "kernel source \(f) is missing (have: \(sources.keys.sorted().joined(separator: ", ")))")
            }
            text += "#line 1 \"\(f)\"\n\(s)\n"
        }
        return text
    }
}

// MARK: - Binary cache

struct ProgramCache {
    let directory: URL?

    static func fromEnvironment() -> ProgramCache {
        let env = ProcessInfo.processInfo.environment
        if let v = env["MPO_KERNEL_CACHE"] {
            if v.isEmpty || v == "off" || v == "0" { return ProgramCache(directory: nil) }
            return ProgramCache(directory: URL(fileURLWithPath: v, isDirectory: true))
        }
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0, isDirectory: true) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache", isDirectory: true)
        return ProgramCache(directory: base.appendingPathComponent("mpo-picogpt", isDirectory: true))
    }

    /// 64-bit FNV-1a of the parts, separated by NUL, as 16 hex digits (plus the source length).
    static func key(_ parts: [String]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var length = 0
        for p in parts {
            for b in p.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            h = (h ^ 0) &* 0x100_0000_01b3
            length += p.utf8.count
        }
        return String(format: "%016llx-%x", h, length)
    }

    func url(_ key: String) -> URL? { directory?.appendingPathComponent("\(key).clbin") }

    func load(_ key: String) -> [UInt8]? {
        guard let u = url(key), let d = try? Data(contentsOf: u), !d.isEmpty else { return nil }
        return [UInt8](d)
    }

    /// Best effort: a cache that cannot be written is not an error.
    func store(_ key: String, _ bytes: [UInt8]) {
        guard let dir = directory, let u = url(key) else { return }
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tmp = dir.appendingPathComponent(".\(key).\(getpid()).tmp")
        do {
            try Data(bytes).write(to: tmp)
            if rename(tmp.path, u.path) != 0 { try? FileManager.default.removeItem(at: tmp) }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
        }
    }
}

// MARK: - Programs

/// A built program and its kernels (created once, by name).
final class OpenCLProgram {
    let program: cl_program
    let kernels: [String: cl_kernel]
    /// True when the program came from the binary cache.
    let fromCache: Bool

    private init(program: cl_program, kernels: [String: cl_kernel], fromCache: Bool) {
        self.program = program; self.kernels = kernels; self.fromCache = fromCache
    }

    deinit {
        for k in kernels.values { clReleaseKernel(k) }
        clReleaseProgram(program)
    }

    func kernel(_ name: String) -> cl_kernel? { kernels[name] }

    /// Builds `files` (after common.cl) with `options` for one device, through the cache.
    static func build(files: [String], options: String, sources: [String: String], context: cl_context,
                      device: cl_device_id, deviceKey: String, cache: ProgramCache) throws -> OpenCLProgram {
        let text = try KernelSources.assemble(files, from: sources)
        let key = ProgramCache.key([text, options, deviceKey, "mpo-picogpt-kernels-v1"])
        if let bytes = cache.load(key), let p = fromBinary(bytes, options: options, context: context, device: device) {
            if let kernels = try? createKernels(p, files: files) {
                return OpenCLProgram(program: p, kernels: kernels, fromCache: true)
            }
            clReleaseProgram(p)
        }
        var err: cl_int = CL_SUCCESS
        guard let p = text.withCString({ mpo_cl_program_from_source(context, $0, &err) }), err == CL_SUCCESS else {
            throw OpenCLError(code: err, call: "clCreateProgramWithSource", files: files)
        }
        var dev: cl_device_id? = device
        let status = clBuildProgram(p, 1, &dev, options, nil, nil)
        if status != CL_SUCCESS {
            let log = takeString(mpo_cl_build_log(p, device)) ?? "(no build log)"
            clReleaseProgram(p)
            throw OpenCLError(code: status, call: "clBuildProgram", detail: "options: \(options)", buildLog: log, files: files)
        }
        let kernels: [String: cl_kernel]
        do { kernels = try createKernels(p, files: files) } catch { clReleaseProgram(p); throw error }
        var size = 0
        if let bin = mpo_cl_program_binary(p, &size, &err) {
            cache.store(key, Array(UnsafeBufferPointer(start: bin, count: size)))
            free(bin)
        }
        return OpenCLProgram(program: p, kernels: kernels, fromCache: false)
    }

    /// A program from a cached binary, or nil if the driver rejects it.
    private static func fromBinary(_ bytes: [UInt8], options: String, context: cl_context, device: cl_device_id) -> cl_program? {
        var status: cl_int = CL_SUCCESS, err: cl_int = CL_SUCCESS
        let p = bytes.withUnsafeBufferPointer {
            mpo_cl_program_from_binary(context, device, $0.baseAddress, $0.count, &status, &err)
        }
        guard let p else { return nil }
        var dev: cl_device_id? = device
        guard err == CL_SUCCESS, status == CL_SUCCESS, clBuildProgram(p, 1, &dev, options, nil, nil) == CL_SUCCESS else {
            clReleaseProgram(p)
            return nil
        }
        return p
    }

    /// Every kernel of the program, by function name.
    private static func createKernels(_ p: cl_program, files: [String]) throws -> [String: cl_kernel] {
        var n: cl_uint = 0
        try check(clCreateKernelsInProgram(p, 0, nil, &n), "clCreateKernelsInProgram(\(files.joined(separator: ", ")))")
        var ks = [cl_kernel?](repeating: nil, count: Int(n))
        try check(clCreateKernelsInProgram(p, n, &ks, nil), "clCreateKernelsInProgram(\(files.joined(separator: ", ")))")
        var out: [String: cl_kernel] = [:]
        for k in ks.compactMap({ $0 }) {
            var size = 0
            clGetKernelInfo(k, cl_kernel_info(CL_KERNEL_FUNCTION_NAME), 0, nil, &size)
            var name = [CChar](repeating: 0, count: size + 1)
            clGetKernelInfo(k, cl_kernel_info(CL_KERNEL_FUNCTION_NAME), size, &name, nil)
            out[String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)] = k
        }
        return out
    }
}

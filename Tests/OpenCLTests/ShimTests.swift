// The C shim and the runtime plumbing alone: error names, error messages, build failures that
// carry their log, device discovery and selection, the program-binary cache, the embedded
// kernel sources, and the record-and-throw policy for failures inside non-throwing ops.

import COpenCL
import Foundation
import MPOKit
@testable import MPOOpenCL
import Testing

@Suite("OpenCL shim and runtime")
struct ShimTests {
    // MARK: - Error names

    @Test("error codes map to their CL_ names", arguments: [
        (CL_SUCCESS, "CL_SUCCESS"), (CL_INVALID_VALUE, "CL_INVALID_VALUE"), (CL_OUT_OF_RESOURCES, "CL_OUT_OF_RESOURCES"),
        (CL_BUILD_PROGRAM_FAILURE, "CL_BUILD_PROGRAM_FAILURE"), (CL_INVALID_KERNEL_NAME, "CL_INVALID_KERNEL_NAME"),
        (CL_INVALID_WORK_GROUP_SIZE, "CL_INVALID_WORK_GROUP_SIZE"), (-9999, "CL_UNKNOWN_ERROR"),
    ])
    func errorNames(code: Int32, name: String) {
        #expect(String(cString: mpo_cl_error_name(code)) == name)
        #expect(OpenCLError.name(of: code) == name)
    }

    @Test("an OpenCLError names the code, the call and the files")
    func errorDescription() {
        let e = OpenCLError(code: CL_INVALID_ARG_SIZE, call: "clSetKernelArg(kernel_fill_forward, #2) in fill",
                            detail: "something", files: ["elementwise.cl"])
        #expect(e.codeName == "CL_INVALID_ARG_SIZE")
        #expect(e.description.contains("CL_INVALID_ARG_SIZE"))
        #expect(e.description.contains("clSetKernelArg(kernel_fill_forward, #2) in fill"))
        #expect(e.description.contains("elementwise.cl"))
    }

    // MARK: - Discovery

    @Test("devices are listed and the default one can be opened", .enabled(if: Shared.available, OpenCLGate.reason))
    func discovery() throws {
        #expect(mpo_cl_platform_count() > 0)
        let lines = OpenCLDevice.listDevices()
        #expect(!lines.isEmpty)
        #expect(lines.contains { $0.contains("(default)") })
        let infos = try OpenCLDevice.devices()
        #expect(infos.map(\.index) == Array(0..<infos.count))
        let d = try Shared.opencl()
        #expect(d.kind == .opencl)
        #expect(d.name.contains(d.info.name))
    }

    @Test("an index past the last device throws a message that suggests --device cpu", .enabled(if: Shared.available, OpenCLGate.reason))
    func badIndex() {
        do {
            _ = try OpenCLDevice(index: 999)
            Issue.record("opencl:999 should not exist")
        } catch let e as OpenCLError {
            #expect(e.code == CL_DEVICE_NOT_FOUND)
            #expect(e.description.contains("--device cpu"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("devices opened from six tasks at once all work", .enabled(if: Shared.available, OpenCLGate.reason))
    func concurrentOpen() async throws {
        try await withThrowingTaskGroup(of: [Float].self) { g in
            for i in 0..<6 {
                g.addTask {
                    let d = try OpenCLDevice()
                    let b = try d.makeBuffer(count: 5, label: "x")
                    d.fill(b.all, value: Float(i))
                    return try d.read(b.all)
                }
            }
            var sums: [Float] = []
            for try await r in g { sums.append(r.reduce(0, +)) }
            #expect(sums.sorted() == [0, 5, 10, 15, 20, 25])
        }
    }

    // MARK: - Builds

    @Test("a broken kernel throws an OpenCLError carrying the build log and the file", .enabled(if: Shared.available, OpenCLGate.reason))
    func brokenKernel() throws {
        let d = try Shared.opencl()
        let source = """
        __kernel void kernel_broken_forward(__global float *x) {
            x[get_global_id(0)] = undeclared_thing + 1.0f;
        }
        """
        do {
            try d.buildProgram(source: source, fileName: "broken.cl")
            Issue.record("the build should have failed")
        } catch let e as OpenCLError {
            #expect(e.code == CL_BUILD_PROGRAM_FAILURE)
            #expect(e.files.contains("broken.cl"))
            let log = try #require(e.buildLog)
            #expect(log.contains("undeclared_thing"), "build log: \(log)")
            #expect(log.contains("broken.cl"), "the #line markers should name the file: \(log)")
            #expect(e.description.contains("build log"))
        }
        try d.buildProgram(source: "__kernel void kernel_ok_forward(__global float *x) { x[0] = 1.0f; }")
    }

    @Test("program binaries are cached on disk and a corrupt cache entry falls back to source", .enabled(if: Shared.available, OpenCLGate.reason))
    func binaryCache() throws {
        let d = try Shared.opencl()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpo-kernel-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = ProgramCache(directory: dir)
        func build() throws -> OpenCLProgram {
            try OpenCLProgram.build(files: ["elementwise.cl"], options: d.tuning.commonOptions + " " + d.tuning.mainOptions, sources: d.sources,
                                    context: d.context, device: d.device, deviceKey: d.deviceKey, cache: cache)
        }
        let first = try build()
        #expect(!first.fromCache)
        #expect(first.kernel("kernel_fill_forward") != nil)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".clbin") }
        #expect(files.count == 1)
        let second = try build()
        #expect(second.fromCache)
        #expect(second.kernel("kernel_fill_forward") != nil)
        // Garbage in the cache: rebuilt from source, silently, and the entry repaired.
        for f in files { try Data("not a binary".utf8).write(to: dir.appendingPathComponent(f)) }
        let third = try build()
        #expect(!third.fromCache)
        let fourth = try build()
        #expect(fourth.fromCache)
    }

    @Test("cache keys change with source, options and device")
    func cacheKeys() {
        let k = ProgramCache.key(["src", "-DA=1", "dev"])
        #expect(k == ProgramCache.key(["src", "-DA=1", "dev"]))
        #expect(k != ProgramCache.key(["src", "-DA=2", "dev"]))
        #expect(k != ProgramCache.key(["src2", "-DA=1", "dev"]))
        #expect(k != ProgramCache.key(["src", "-DA=1", "dev2"]))
        #expect(ProgramCache.key(["ab", "c"]) != ProgramCache.key(["a", "bc"]))
    }

    @Test("the embedded kernels are exactly Kernels/*.cl")
    func embeddedSources() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Reference.kernelsDirectory.path).filter { $0.hasSuffix(".cl") }
        #expect(Set(EmbeddedKernels.sources.keys) == Set(names))
        for n in names {
            let disk = try String(contentsOf: Reference.kernelsDirectory.appendingPathComponent(n), encoding: .utf8)
            #expect(EmbeddedKernels.sources[n] == disk, "\(n) differs from its embedded copy: rebuild")
        }
    }

    // MARK: - Failures inside ops

    @Test("a failed enqueue is recorded, later ops are skipped, and the next synchronize throws it once",
          .enabled(if: Shared.available, OpenCLGate.reason))
    func recordedFailure() throws {
        let d = try OpenCLDevice()   // its own device: the failure must not leak into other tests
        let buf = try d.makeBuffer([Float]([1, 2, 3]), label: "x")
        d.locked { d.launch("bogus", d.main, "kernel_does_not_exist", global: [1], local: [1], []) }
        d.scale(buf.all, by: 2)   // skipped: the device is in error
        do {
            try d.synchronize()
            Issue.record("synchronize should throw the recorded failure")
        } catch let e as OpenCLError {
            #expect(e.code == CL_INVALID_KERNEL_NAME)
            #expect(e.call.contains("bogus"))
        }
        try d.synchronize()   // reported once
        #expect(try d.read(buf.all) == [1, 2, 3])
        d.scale(buf.all, by: 2)
        #expect(try d.read(buf.all) == [2, 4, 6])
    }
}

@Test("the default OpenCL device opens (every program builds)", .enabled(if: Shared.available, OpenCLGate.reason))
func defaultDeviceOpens() throws {
    let d = try Shared.opencl()
    print("OpenCL device: \(d.name); tuning: \(d.tuning)")
}

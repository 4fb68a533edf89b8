// OpenCLError: every failure of the OpenCL device, as a value that says what failed and why.
//
// A failed OpenCL call carries its cl_int code, the code's name (CL_OUT_OF_RESOURCES, via the C
// shim's table) and the call that failed ("clCreateBuffer(parameters)"). A program build
// failure also carries the build log and the kernel files that made up the program. Having no
// platform at all is an error too, whose message suggests `--device cpu`.
//
// Not here: the policy for failures inside non-throwing ops (see OpenCLDevice.swift: the first
// such error is recorded and thrown by the next synchronising call).

import COpenCL
import Foundation

public struct OpenCLError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The OpenCL status code (CL_SUCCESS = 0 for errors that are not a failed call).
    public let code: Int32
    /// The OpenCL call (or operation) that failed, with context: "clBuildProgram(gemm.cl)".
    public let call: String
    /// Extra explanation (what to do about it), if any.
    public let detail: String?
    /// The compiler's log, for program builds.
    public let buildLog: String?
    /// The kernel source files the failed program was built from.
    public let files: [String]

    public init(code: Int32, call: String, detail: String? = nil, buildLog: String? = nil, files: [String] = []) {
        self.code = code
        self.call = call
        self.detail = detail
        self.buildLog = buildLog
        self.files = files
    }

    /// The symbolic name of `code` ("CL_INVALID_VALUE"), or "CL_UNKNOWN_ERROR".
    public var codeName: String { Self.name(of: code) }

    public static func name(of code: Int32) -> String { String(cString: mpo_cl_error_name(cl_int(code))) }

    public var description: String {
        var s = "OpenCL error \(codeName) (\(code)) in \(call)"
        if !files.isEmpty { s += " [\(files.joined(separator: " + "))]" }
        if let detail { s += ": \(detail)" }
        if let buildLog, !buildLog.isEmpty { s += "\n--- build log ---\n\(buildLog)" }
        return s
    }

    /// An op or shape this device cannot run (reported as "not supported", not as a failure).
    public static func unsupported(_ op: String, _ reason: String) -> OpenCLError {
        OpenCLError(code: CL_INVALID_OPERATION, call: "unsupported: \(op)", detail: reason)
    }

    /// Whether this error says "not supported on this device" rather than "failed".
    public var isUnsupported: Bool { call.hasPrefix("unsupported: ") }

    /// No OpenCL platform or device: the error that suggests the CPU device.
    static func noDevice(_ what: String) -> OpenCLError {
        OpenCLError(code: CL_DEVICE_NOT_FOUND, call: "device discovery",
                    detail: "\(what); install an OpenCL driver (ICD) or run with --device cpu")
    }
}

// MARK: - Checking calls

/// Throws an OpenCLError when `status` is not CL_SUCCESS.
@inline(__always)
func check(_ status: cl_int, _ call: @autoclosure () -> String) throws {
    if status != CL_SUCCESS { throw OpenCLError(code: status, call: call()) }
}

/// A Swift string from a malloc'd C string returned by the shim (freed here); nil stays nil.
func takeString(_ p: UnsafeMutablePointer<CChar>?) -> String? {
    guard let p else { return nil }
    defer { free(p) }
    return String(cString: p)
}

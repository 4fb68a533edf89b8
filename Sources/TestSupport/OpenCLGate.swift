// OpenCLGate: whether the OpenCL test suites run, decided once for every test target.
//
// A developer without an OpenCL platform sees those suites skipped, with the reason. CI sets
// MPO_REQUIRE_OPENCL=1 (.ci/run): then they always run, and without a platform they fail saying
// so — a green run can never mean "tested no OpenCL at all".

import COpenCL
import Foundation
import Testing

public enum OpenCLGate {
    /// MPO_REQUIRE_OPENCL=1: a missing platform is a failure, not a skip.
    public static let required = ProcessInfo.processInfo.environment["MPO_REQUIRE_OPENCL"] == "1"
    /// OpenCL platforms the ICD loader reports (0 when none is installed or the query fails).
    public static let platforms = Int(mpo_cl_platform_count())
    /// Whether the OpenCL suites run here.
    public static let enabled = required || platforms > 0
    /// Shown beside a skipped suite.
    public static let reason: Comment = "no OpenCL platform found: install pocl-opencl-icd (MPO_REQUIRE_OPENCL=1 turns this skip into a failure)"
}

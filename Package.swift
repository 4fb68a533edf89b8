// swift-tools-version: 6.1
// MPO-PicoGPT: train and compress small GPTs with Matrix Product Operators, on OpenCL or BLAS.
import PackageDescription

let package = Package(
    name: "MPOPicoGPT",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "MPOKit", targets: ["MPOKit"]),
        .library(name: "MPOOpenCL", targets: ["MPOOpenCL"]),
        .library(name: "OpCases", targets: ["OpCases"]),
        .executable(name: "mpo-train", targets: ["mpo-train"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: - C shim: OpenCL 1.2 + CBLAS + LAPACK declarations, linked to OpenCL and OpenBLAS.
        .target(
            name: "CShim",
            linkerSettings: [.linkedLibrary("openblas"), .linkedLibrary("OpenCL"), .linkedLibrary("m")]
        ),
        // MARK: - safetensors reader/writer (pure Swift, no device code).
        .target(name: "SafeTensors"),
        // MARK: - host-side tensor-train math: factorisations, TT-SVD (LAPACK), core contraction.
        .target(name: "TensorTrain", dependencies: ["CShim"]),
        // MARK: - the library: devices, model, MPO layers, training, checkpoints.
        .target(
            name: "MPOKit",
            dependencies: ["CShim", "SafeTensors", "TensorTrain"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        // MARK: - the OpenCL device (kernels in Kernels/*.cl).
        .target(name: "MPOOpenCL", dependencies: ["MPOKit", "CShim"], plugins: [.plugin(name: "EmbedKernels")]),
        // MARK: - build tool: Kernels/*.cl -> EmbeddedKernels.swift (raw string literals) for MPOOpenCL.
        .executableTarget(name: "embed-kernels"),
        .plugin(name: "EmbedKernels", capability: .buildTool(), dependencies: ["embed-kernels"]),
        // MARK: - the op-case table shared by parity tests and benchmarks (ggml test-backend-ops style).
        .target(name: "OpCases", dependencies: ["MPOKit", "SafeTensors"]),
        // MARK: - the command-line tool.
        .executableTarget(
            name: "mpo-train",
            dependencies: ["MPOKit", "MPOOpenCL", "OpCases", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // MARK: - tests
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "TensorTrainTests", dependencies: ["TensorTrain", "SafeTensors"]),
        .testTarget(name: "MPOKitTests", dependencies: ["MPOKit", "OpCases"]),
        .testTarget(name: "OpenCLTests", dependencies: ["MPOOpenCL", "OpCases", "SafeTensors"]),
    ],
    swiftLanguageModes: [.v5]
)

// swift-tools-version: 6.1
// MPO-PicoGPT: train and compress small GPTs with Matrix Product Operators, on OpenCL or BLAS.
//
// No unsafe build flags anywhere, so other packages can depend on this one by version
// (`.package(url: …, from: …)`, then `import MPOKit`). A CPU-only use (MPOKit, TensorTrain)
// links OpenBLAS only; libOpenCL comes in with MPOOpenCL.
import PackageDescription

let package = Package(
    name: "MPOPicoGPT",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "MPOKit", targets: ["MPOKit"]),
        .library(name: "MPOOpenCL", targets: ["MPOOpenCL"]),
        // The shared op-case table (ggml test-backend-ops style), for benchmarking a device.
        .library(name: "OpCases", targets: ["OpCases"]),
        .executable(name: "mpo-train", targets: ["mpo-train"]),
    ],
    // `swift build --traits MPI` links MPI for data-parallel training (`mpirun -np N mpo-train
    // train …`); without it nothing needs an MPI installation.
    traits: [
        .trait(name: "MPI", description: "Data-parallel training over MPI (Open MPI or MPICH; Debian: libopenmpi-dev)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: - C shims
        // CBLAS + LAPACK + OpenBLAS controls, linked to OpenBLAS.
        .target(name: "CBLAS", linkerSettings: [.linkedLibrary("openblas"), .linkedLibrary("m")]),
        // OpenCL 1.2 headers and helpers, linked to the OpenCL ICD loader.
        .target(name: "COpenCL", linkerSettings: [.linkedLibrary("OpenCL")]),
        // The CPU device's hand-written kernels (attention, LayerNorm, fused elementwise), with
        // portable, AVX2+FMA and AVX-512 paths chosen at run time.
        .target(name: "CKernels", linkerSettings: [.linkedLibrary("m")]),
        // MARK: - safetensors reader/writer (pure Swift, no device code).
        .target(name: "SafeTensors"),
        // MARK: - GGUF reader and ggml dequantisation (pure Swift).
        .target(name: "GGUF"),
        // MARK: - byte-level BPE tokenizers (GPT-2, SmolLM2, Llama 3, Qwen2), pure Swift.
        .target(name: "Tokenizers"),
        // MARK: - SplitMix64, the one seedable PRNG (init, batches, sampling, test data).
        .target(name: "SeededRandom"),
        // MARK: - host-side tensor-train math: factorisations, TT-SVD (LAPACK), core contraction.
        .target(name: "TensorTrain", dependencies: ["CBLAS"]),
        // MARK: - the library: devices, model, MPO layers, training, checkpoints.
        .target(name: "MPOKit", dependencies: ["CBLAS", "CKernels", "GGUF", "SafeTensors", "SeededRandom", "TensorTrain", "Tokenizers"]),
        // MARK: - MPI (only with the MPI trait): the C library through pkg-config's mpi-c
        // (Debian's alternative for Open MPI or MPICH), and MPI_COMM_WORLD as MPOKit's Collective.
        // Without the trait MPOMPI compiles empty and nothing looks for MPI.
        .systemLibrary(name: "CMPI", pkgConfig: "mpi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "MPOMPI", dependencies: ["MPOKit", .target(name: "CMPI", condition: .when(traits: ["MPI"]))]),
        // MARK: - SVG plots of training runs (a program that only runs models does not link them).
        .target(name: "Plots", dependencies: ["MPOKit"]),
        // MARK: - the OpenCL device (kernels in Kernels/*.cl).
        .target(name: "MPOOpenCL", dependencies: ["MPOKit", "COpenCL"], plugins: [.plugin(name: "EmbedKernels")]),
        // MARK: - build tool: Kernels/*.cl -> EmbeddedKernels.swift (raw string literals) for MPOOpenCL.
        .executableTarget(name: "embed-kernels"),
        .plugin(name: "EmbedKernels", capability: .buildTool(), dependencies: ["embed-kernels"]),
        // MARK: - the op-case table shared by parity tests, check-ops and benchmarks.
        .target(name: "OpCases", dependencies: ["MPOKit"]),
        // MARK: - the command-line tool.
        .executableTarget(
            name: "mpo-train",
            dependencies: ["MPOKit", "MPOOpenCL", "OpCases", "Plots", "Tokenizers", "CBLAS", "CKernels",
                           .target(name: "MPOMPI", condition: .when(traits: ["MPI"])),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // MARK: - tests and their fixtures (reference files, the trajectory runner); not a product.
        .target(name: "TestSupport", dependencies: ["MPOKit", "SafeTensors", "COpenCL"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "SeededRandom"]),
        .testTarget(name: "TensorTrainTests", dependencies: ["TensorTrain", "SafeTensors", "SeededRandom"]),
        .testTarget(name: "PlotsTests", dependencies: ["Plots", "MPOKit"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "SafeTensors", "SeededRandom"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "GGUF", "MPOKit"]),
        .testTarget(name: "MPOKitTests", dependencies: ["MPOKit", "OpCases", "TestSupport", "CKernels"]),
        .testTarget(name: "OpenCLTests", dependencies: ["MPOOpenCL", "COpenCL", "OpCases", "TestSupport", "SafeTensors"]),
    ],
    swiftLanguageModes: [.v6]
)

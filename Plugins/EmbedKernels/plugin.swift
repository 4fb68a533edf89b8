// EmbedKernels: build-tool plugin that turns the package's top-level Kernels/*.cl into one
// generated Swift file of raw string literals (EmbeddedKernels.swift), so the OpenCL device
// carries its kernel sources inside the binary (docs/DESIGN.md §4, §5). Every .cl file is an input of
// the build command, so editing one regenerates the file. The work is done by the
// `embed-kernels` executable; this plugin only lists the files.

import Foundation
import PackagePlugin

@main
struct EmbedKernels: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let directory = context.package.directoryURL.appending(path: "Kernels")
        let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        let kernels = files.filter { $0.pathExtension == "cl" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedKernels.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(kernels.count) OpenCL kernel sources",
                executable: try context.tool(named: "embed-kernels").url,
                arguments: [output.path] + kernels.map(\.path),
                inputFiles: kernels,
                outputFiles: [output]
            )
        ]
    }
}

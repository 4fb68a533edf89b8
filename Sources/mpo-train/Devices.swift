// `mpo-train devices`: the OpenCL platforms and devices this machine offers, and which one
// `--device opencl` would pick.

import ArgumentParser
import MPOKit
import MPOOpenCL

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List OpenCL platforms and devices (for --device opencl:N).",
        discussion: "The CPU device (OpenBLAS) is always available as --device cpu.")

    func run() throws {
        print("cpu: \(CPUDevice().name)")
        let list = OpenCLDevice.listDevices()
        if list.isEmpty {
            print("no OpenCL platform or device found (is an ICD installed under /etc/OpenCL/vendors?); use --device cpu")
        } else {
            for line in list { print(line) }
        }
    }
}

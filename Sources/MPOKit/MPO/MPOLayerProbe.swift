// One MPO linear layer on its own, with random cores and inputs, so that a benchmark can time
// its forward + backward under a chosen contraction strategy (the layer type itself stays
// internal to the model).

import TensorTrain

public final class MPOLayerProbe {
    private let layer: MPOLinear
    private let device: any ComputeDevice
    private let x, y, dY, dX: DeviceBuffer
    private let rows: Int

    /// A layer (out, in) with the default factorisation and every inner bond χ, fed `rows` rows.
    public init(out: Int, in inF: Int, chi: Int, rows: Int, strategy: MPOStrategy,
                device: any ComputeDevice, seed: UInt64 = 1) throws {
        let f = MPOFactorization.automatic(out: out, in: inF)
        let bonds = [1] + Array(repeating: chi, count: f.sites - 1) + [1]
        var rng = SplitMix64(seed: seed)
        func random(_ n: Int, scale: Float) throws -> DeviceBuffer {
            try device.makeBuffer((0..<n).map { _ in scale * Float(rng.normal()) }, label: "probe")
        }
        let sizes = (0..<f.sites).map { bonds[$0] * f.outFactors[$0] * f.inFactors[$0] * bonds[$0 + 1] }
        let scale = Float(MPOLinear.initStd(inFeatures: inF, chi: chi, sites: f.sites))
        let cores = try sizes.map { try random($0, scale: scale).all }
        let dCores = try sizes.map { try device.makeBuffer(count: $0, label: "probe dcore").all }
        let lin = MPOLinear(factorization: f, bonds: bonds, cores: cores, coreGradients: dCores, device: device, label: "probe")
        lin.strategy = strategy
        layer = lin
        self.device = device
        self.rows = rows
        x = try random(rows * inF, scale: 1)
        dY = try random(rows * out, scale: 1)
        y = try device.makeBuffer(count: rows * out, label: "probe y")
        dX = try device.makeBuffer(count: rows * inF, label: "probe dx")
    }

    /// One forward and backward pass, rebuilding W (or re-permuting the cores) as a training step does.
    public func run() throws {
        try layer.forward(device, x: x.all, y: y.all, rows: rows, accumulate: false)
        try layer.backward(device, dY: dY.all, x: x.all, dX: dX.all, rows: rows, accumulateInput: false)
        try device.synchronize()
    }
}

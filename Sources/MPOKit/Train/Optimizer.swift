// AdamW over the flat parameter arena (docs/SPEC.md §6): global-norm clipping, decoupled weight decay
// on every parameter, bias-corrected moments. The moments are two more arenas with the
// parameters' layout, so a checkpoint stores them by parameter name. The hyper-parameters are
// the recipe's (TrainOptions); each update hands the device one AdamWHyper (that step's lr and
// bias-correction step).

public final class AdamW {
    public let model: Transformer
    /// The recipe: betas, eps, weight decay and the clipping norm are read from it.
    public var options: TrainOptions
    public let m: DeviceBuffer
    public let v: DeviceBuffer
    /// A training step's scalars, reduced on the device (`ComputeDevice.stepScalars`).
    let scalars: DeviceBuffer
    /// Updates applied so far (the bias-correction step of the next update is `step + 1`).
    public internal(set) var step = 0

    public init(model: Transformer, options: TrainOptions = TrainOptions()) throws {
        _ = try model.gradientArena()   // an inference-only model cannot be trained
        self.model = model
        self.options = options
        m = try model.device.makeBuffer(count: model.layout.count, label: "adam m")
        v = try model.device.makeBuffer(count: model.layout.count, label: "adam v")
        scalars = try model.device.makeBuffer(count: StepScalars.count, label: "step scalars")
    }

    /// Clips the gradient arena to `clipNorm` (scale = min(1, clip/(norm + 1e-6))) and returns
    /// the norm before clipping (a host wait; `trainStep` clips inside AdamW instead).
    @discardableResult
    public func clipGradients() throws -> Double {
        let norm = try model.gradientNorm()
        let scale = StepScalars.clipScale(norm: norm, clip: options.clip)
        if scale < 1 { model.device.scale(model.grads!.all, by: Float(scale)) }
        return norm
    }

    /// One AdamW update with learning rate `lr` on the gradients as they are.
    public func update(learningRate lr: Double) {
        step += 1
        enqueueUpdate(learningRate: lr, step: step, control: nil)
    }

    /// Enqueues the update that bias-corrects as step `step` (the caller counts it once it knows
    /// the update was applied); with `control` (a step's scalars) the device clips the gradients
    /// and skips a non-finite step itself.
    func enqueueUpdate(learningRate lr: Double, step: Int, control: TensorView?) {
        let h = AdamWHyper(learningRate: Float(lr), beta1: Float(options.beta1), beta2: Float(options.beta2),
                           epsilon: Float(options.epsilon), weightDecay: Float(options.weightDecay), step: step)
        model.device.adamW(parameters: model.params.all, gradients: model.grads!.all, m: m.all, v: v.all, hyper: h,
                           control: control)
        model.parametersChanged()
    }

    /// Restores the optimiser state (moments and step count) from host arrays in arena layout.
    public func restore(m mHost: [Float], v vHost: [Float], step: Int) throws {
        guard mHost.count == model.layout.count, vHost.count == model.layout.count else {
            throw ModelError("optimizer state of \(mHost.count) values for a model of \(model.layout.count)")
        }
        try model.device.write(mHost, to: m.all)
        try model.device.write(vHost, to: v.all)
        self.step = step
    }
}

/// The paper's schedule: linear warmup for `warmup` steps, then cosine decay to 0 at `total`.
public func learningRate(step s: Int, total: Int, peak: Double = 3e-4, warmup: Int = 100) -> Double {
    if s < warmup { return peak * Double(s + 1) / Double(warmup) }
    let span = max(total - warmup, 1)
    return peak * 0.5 * (1 + cos(Double.pi * Double(s - warmup) / Double(span)))
}

import Foundation

// MPOLinear: placeholder until the MPO contraction lands.
import TensorTrain

final class MPOLinear {
    init(factorization: MPOFactorization, bonds: [Int], cores: [TensorView], dCores: [TensorView],
         device: any ComputeDevice, label: String) throws {
        throw ModelError("MPO layers are not implemented yet")
    }
    func forward(_ dev: any ComputeDevice, x: TensorView, y: TensorView, rows: Int, accumulate: Bool) {}
    func backward(_ dev: any ComputeDevice, dY: TensorView, x: TensorView, dX: TensorView?, rows: Int, accumulateInput: Bool) {}
}

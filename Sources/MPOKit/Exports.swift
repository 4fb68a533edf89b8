// MPOKit's public API uses the types of TensorTrain (MPOFactorization, MPOCores, TT-SVD) and
// SafeTensors (SafeTensorsFile) and SeededRandom (SplitMix64): `import MPOKit` brings them along.
@_exported import SafeTensors
@_exported import SeededRandom
@_exported import TensorTrain

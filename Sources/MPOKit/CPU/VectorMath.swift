// Vectorised helpers for the CPU device's hot loops: exp over SIMD8<Float> (Cephes expf:
// range reduction by ln 2, degree-6 polynomial, 2^n by exponent bits; ≤ 1 ulp measured on
// [−20, 5], 0 below −87.3) and branch-free SIMD loops. A scalar call goes through the same
// polynomial, so a row's values don't depend on where the vector loop ended.

@usableFromInline let expLo: Float = -87.33654, expHi: Float = 88.72283

@inline(__always) @usableFromInline
func vexp(_ x0: SIMD8<Float>) -> SIMD8<Float> {
    let under = x0 .< expLo
    let x = pointwiseMin(pointwiseMax(x0, SIMD8(repeating: expLo)), SIMD8(repeating: expHi))
    // Adding 1.5·2^23 rounds x·log2(e) to an integer n held in the low mantissa bits of t.
    let magic: Float = 12_582_912
    let t = x * 1.44269504088896341 + magic
    let n = t - magic
    var r = x - n * 0.693359375
    r = r + n * 2.12194440e-4
    let r2 = r * r
    var p = SIMD8<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let y = p * r2 + r + 1
    let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return (y * unsafeBitCast(bits, to: SIMD8<Float>.self)).replacing(with: 0, where: under)
}

@inline(__always) @usableFromInline
func sexp(_ x: Float) -> Float { vexp(SIMD8(repeating: x))[0] }

/// p[i] = exp(p[i] − shift) for i in 0..<n; returns Σ of the results (Float).
@inline(__always)
func expInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int, minus shift: Float) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    let s = SIMD8<Float>(repeating: shift)
    while i + 8 <= n {
        let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
        let e = vexp(v - s)
        UnsafeMutableRawPointer(p + i).storeBytes(of: e, as: SIMD8<Float>.self)
        acc += e
        i += 8
    }
    var sum = acc.sum()
    while i < n { let e = sexp(p[i] - shift); p[i] = e; sum += e; i += 1 }
    return sum
}

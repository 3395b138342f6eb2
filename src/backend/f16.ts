/**
 * IEEE binary16 (f16, "half") on the host: 5 exponent bits, 10 mantissa bits, largest finite value
 * 65504, subnormals down to 2⁻²⁴. Rounding is to nearest even with overflow to ±∞, as the webgpu
 * backend's WGSL conversion does (kernels/basic.ts, TO_HALF); Node 20 has no Math.f16round.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f16 bit pattern nearest to x (ties to even; beyond 65520 in magnitude ±∞; NaN stays NaN). */
export function f16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  // 65520 = 0x477ff000 lies halfway between 65504 (odd mantissa) and 2¹⁶ (∞): ties to even give ∞.
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs >= 0x38800000) {
    // Normal: rebias the exponent (127 → 15) and round the 13 dropped mantissa bits to even.
    const m = abs - 0x38000000;
    return sign | ((m + 0x0fff + ((m >>> 13) & 1)) >>> 13);
  }
  // Subnormal (or zero): k·2⁻²⁴ with k = x·2²⁴ rounded to even (x·2²⁴ is exact in float64).
  const scaled = f32[0]! < 0 ? -f32[0]! * 2 ** 24 : f32[0]! * 2 ** 24;
  let k = Math.floor(scaled);
  const frac = scaled - k;
  if (frac > 0.5 || (frac === 0.5 && (k & 1) === 1)) k++;
  return sign | k;
}

/** The number an f16 bit pattern stands for. */
export function f16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** x rounded to the nearest f16 value. */
export const roundToF16 = (x: number): number => f16Value(f16Bits(x));

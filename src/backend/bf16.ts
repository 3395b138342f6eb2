/**
 * bfloat16 on the host: the upper 16 bits of a float32. Rounding is to nearest even, as oneDNN,
 * PyTorch and the AVX512_BF16 instructions do (native/src/bf16.h is the same in C++); NaN stays NaN.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bf16 bit pattern nearest to x. */
export function bf16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The number a bf16 bit pattern stands for. */
export function bf16Value(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** x rounded to the nearest bf16 value. */
export const roundToBf16 = (x: number): number => bf16Value(bf16Bits(x));

/** Bit patterns of numbers (Uint16Array), and back to float32 values. */
export function toBf16Bits(data: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = bf16Bits(data[i]!);
  return out;
}

export function fromBf16Bits(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  new Uint32Array(out.buffer).set(bits);
  for (let i = 0, w = new Uint32Array(out.buffer); i < w.length; i++) w[i] = w[i]! << 16;
  return out;
}

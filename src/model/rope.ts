/**
 * Rotary tables in the Hugging Face Llama convention: inv_freq[i] = θ^(−2i/hd) in float32, angle =
 * position · inv_freq, and cos/sin shared by both halves of each head ("rotate-half").
 */
export function ropeTables(seqLen: number, headDim: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(seqLen * half);
  const sin = new Float32Array(seqLen * half);
  for (let i = 0; i < half; i++) {
    const invFreq = Math.fround(1 / Math.pow(theta, (2 * i) / headDim));
    for (let p = 0; p < seqLen; p++) {
      const angle = Math.fround(p * invFreq);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

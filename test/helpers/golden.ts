/**
 * Mirror of golden_weight() in tools/golden/llama_golden.py: the same 32-bit integer hash, so the
 * PyTorch fixture and this test start from bit-identical weights without storing them.
 */
export function goldenWeight(tensorIndex: number, count: number, std: number, isNorm: boolean): Float32Array {
  const out = new Float32Array(count);
  const base = Math.imul(tensorIndex, 0x85ebca77) >>> 0;
  const scale = 2.0 * Math.sqrt(3.0) * std;
  for (let i = 0; i < count; i++) {
    let h = ((Math.imul(i, 0x9e3779b1) >>> 0) + base) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    h = Math.imul(h, 0x2c1b3c6d) >>> 0;
    h = (h ^ (h >>> 12)) >>> 0;
    h = Math.imul(h, 0x297a2d39) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    const u = h / 4294967296.0 - 0.5;
    out[i] = isNorm ? 1.0 + 0.2 * u : u * scale;
  }
  return out;
}

/**
 * A step's samples [start, start + count) split across ranks and micro-batches: rank j gets a
 * contiguous share (sizes differ by at most one when count is not divisible by the rank count, which
 * only happens on a shortened last step), cut into micro-batches of at most `microBatch`.
 */
export interface MicroSlice {
  start: number;
  count: number;
}

export function splitStep(start: number, count: number, rank: number, ranks: number, microBatch: number): MicroSlice[] {
  const base = Math.floor(count / ranks);
  const extra = count % ranks;
  const mine = base + (rank < extra ? 1 : 0);
  let s = start + rank * base + Math.min(rank, extra);
  const out: MicroSlice[] = [];
  for (let left = mine; left > 0; ) {
    const c = Math.min(microBatch, left);
    out.push({ start: s, count: c });
    s += c;
    left -= c;
  }
  return out;
}

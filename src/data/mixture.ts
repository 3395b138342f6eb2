/**
 * Data mixtures: several sources drawn with fixed weights, addressed like a single source by the
 * global sample index k, so resume, batch changes and rank sharding work unchanged.
 *
 * The schedule. The weights w_s (normalised to sum 1) are realised exactly over blocks of B samples:
 * source s gets q_s samples of every block. B is the smallest block size ≤ MAX_BLOCK in which every
 * B·w_s is a whole number (0.7/0.3 → B = 10, q = 7, 3; weights 2 and 1 → B = 3, q = 2, 1); when
 * there is none, B = MAX_BLOCK and the q_s are B·w_s rounded by largest remainder (ties to the
 * earlier source), off w_s by under 1/B. Inside a block the sources are interleaved smoothly,
 * not in runs, as a uniprocessor Pfair schedule: the i-th sample of s in a block (i from 0) is a
 * unit job released at position ⌊i·B/q_s⌋ with deadline ⌈(i + 1)·B/q_s⌉, and each position takes
 * the released job with the earliest deadline (the earlier source on ties). The shares sum to 1, so
 * EDF meets every deadline (Baruah et al., "Proportionate progress", 1996): c_s(k), the samples of s
 * among the first k, stays strictly within one sample of k·q_s/B for every prefix (property-tested;
 * nginx's smooth weighted round-robin, the obvious alternative, drifts past one with 6 sources), so
 * even a short run sees the proportions.
 *
 * Sample k is position r = k mod B of block n = ⌊k / B⌋: it reads sample j = n·q_s + rank(r) of
 * source s = owner(r), where rank(r) counts the earlier positions of the block owned by s. For each
 * source, j runs through 0, 1, 2, … in order of k, so k ↦ (s, j) is a bijection: disjoint ranges of k
 * (ranks, steps, a resumed run) read disjoint samples of every source, and a source's sample j is
 * window j of that source's own sampler (its own epochs and per-epoch shuffle). Everything is a
 * function of k and the weights: nothing about a mixture needs saving in a checkpoint.
 */
import type { Cursor, WindowSampler } from './sampler.js';

/** The largest block: a weight realised over it is off by under 1/MAX_BLOCK. */
export const MAX_BLOCK = 10_000;

/** Within this of a whole number, B·w_s is taken to be one (normalising by a float sum leaves dust). */
const WHOLE = 1e-9;

export interface MixtureWeight {
  name: string;
  /** Positive; weights are relative (normalised by their sum). */
  weight: number;
}

export class MixtureSchedule {
  readonly names: readonly string[];
  /** Block size B. */
  readonly block: number;
  /** q_s: samples of source s per block (sum B). */
  readonly perBlock: readonly number[];
  /** The source each position of a block reads. */
  private readonly owner: Uint16Array;
  /** How many earlier positions of the block the same source owns. */
  private readonly rank: Uint32Array;

  constructor(sources: readonly MixtureWeight[]) {
    if (sources.length === 0) throw new RangeError('a mixture needs at least one source');
    if (sources.length > 0xffff) throw new RangeError(`a mixture has at most ${0xffff} sources`);
    const total = sources.reduce((sum, s) => sum + s.weight, 0);
    for (const s of sources) {
      if (!(Number.isFinite(s.weight) && s.weight > 0)) throw new RangeError(`the weight of source ${s.name} must be a positive number, got ${s.weight}`);
      if (s.weight / total < 1 / MAX_BLOCK) throw new RangeError(`source ${s.name} has ${s.weight / total} of the total weight, under the smallest share a mixture realises (1/${MAX_BLOCK})`);
    }
    this.names = sources.map((s) => s.name);
    const shares = sources.map((s) => s.weight / total);
    this.block = exactBlock(shares) ?? MAX_BLOCK;
    this.perBlock = largestRemainder(shares, this.block);
    this.owner = new Uint16Array(this.block);
    this.rank = new Uint32Array(this.block);
    // Earliest deadline first over each source's samples of the block: sample i of s may go at
    // position ⌊i·B/q_s⌋ at the earliest and must go before ⌈(i + 1)·B/q_s⌉ (integer arithmetic).
    const placed = new Array<number>(sources.length).fill(0);
    for (let r = 0; r < this.block; r++) {
      let best = -1;
      let bestDeadline = Infinity;
      for (let s = 0; s < placed.length; s++) {
        const q = this.perBlock[s]!;
        const i = placed[s]!;
        if (i === q || Math.floor((i * this.block) / q) > r) continue;
        const deadline = Math.ceil(((i + 1) * this.block) / q);
        if (deadline < bestDeadline) [best, bestDeadline] = [s, deadline];
      }
      this.owner[r] = best;
      this.rank[r] = placed[best]!++;
    }
  }

  /** The source sample k reads and which of that source's samples it is. */
  at(k: number): { source: number; index: number } {
    checkSample(k);
    const n = Math.floor(k / this.block);
    const r = k - n * this.block;
    const source = this.owner[r]!;
    return { source, index: n * this.perBlock[source]! + this.rank[r]! };
  }

  /** c_s(k) for every source: how many of samples [0, k) each one supplies (they sum to k). */
  counts(k: number): number[] {
    checkSample(k);
    const n = Math.floor(k / this.block);
    const counts = this.perBlock.map((q) => n * q);
    for (let r = 0; r < k - n * this.block; r++) counts[this.owner[r]!]!++;
    return counts;
  }

  /** The number of samples k before source s is asked for its sample `index` (the inverse of c_s). */
  samplesBefore(source: number, index: number): number {
    checkSample(index);
    const q = this.perBlock[source]!;
    const n = Math.floor(index / q);
    const wanted = index - n * q;
    let r = 0;
    while (this.owner[r] !== source || this.rank[r] !== wanted) r++;
    return n * this.block + r;
  }
}

/** The smallest B ≤ MAX_BLOCK with every B·share a whole number, or null. */
function exactBlock(shares: readonly number[]): number | null {
  for (let b = 1; b <= MAX_BLOCK; b++) if (shares.every((w) => Math.abs(w * b - Math.round(w * b)) < WHOLE * b)) return b;
  return null;
}

/** Whole numbers summing to `block`, each within 1 of block·share: the floors, plus one for the largest remainders. */
function largestRemainder(shares: readonly number[], block: number): number[] {
  const exact = shares.map((w) => w * block);
  const counts = exact.map((x) => Math.floor(x + WHOLE * block));
  let left = block - counts.reduce((a, b) => a + b, 0);
  const byRemainder = exact.map((x, s) => ({ s, rem: x - counts[s]! })).sort((a, b) => b.rem - a.rem || a.s - b.s);
  for (let i = 0; left > 0; i++, left--) counts[byRemainder[i]!.s]!++;
  return counts;
}

function checkSample(k: number): void {
  if (!Number.isSafeInteger(k) || k < 0) throw new RangeError(`sample must be a non-negative integer, got ${k}`);
}

/**
 * The windows of a mixture: sample k is window j of source s's own sampler, (s, j) = schedule.at(k).
 * `windowsPerEpoch` is how many samples are read before some source starts its second pass (for a
 * fixed validation set: how many windows there are before one repeats).
 */
export class MixtureWindows implements WindowSampler {
  readonly seqLen: number;
  readonly windowsPerEpoch: number;

  constructor(
    readonly schedule: MixtureSchedule,
    private readonly sources: readonly WindowSampler[],
  ) {
    if (sources.length !== schedule.names.length) throw new RangeError(`the schedule has ${schedule.names.length} sources, ${sources.length} samplers were given`);
    this.seqLen = sources[0]!.seqLen;
    sources.forEach((s, i) => {
      if (s.seqLen !== this.seqLen) throw new RangeError(`source ${schedule.names[i]} has windows of ${s.seqLen} tokens, source ${schedule.names[0]} of ${this.seqLen}`);
      if (s.windowsPerEpoch === 0) throw new RangeError(`source ${schedule.names[i]} has no windows`);
    });
    this.windowsPerEpoch = Math.min(...sources.map((s, i) => schedule.samplesBefore(i, s.windowsPerEpoch)));
  }

  windows(start: number, count: number): Int32Array {
    checkSample(start);
    checkSample(count);
    const width = this.seqLen + 1;
    const out = new Int32Array(count * width);
    for (let i = 0; i < count; i++) {
      const { source, index } = this.schedule.at(start + i);
      out.set(this.sources[source]!.windows(index, 1), i * width);
    }
    return out;
  }

  /** The mixture as one stream: epoch e holds samples [e·windowsPerEpoch, (e + 1)·windowsPerEpoch). */
  cursorAt(sample: number): Cursor {
    checkSample(sample);
    const epoch = Math.floor(sample / this.windowsPerEpoch);
    return { epoch, position: sample - epoch * this.windowsPerEpoch };
  }

  /** Tokens (targets: seqLen per sample) each source has supplied in samples [0, samples). */
  tokensBySource(samples: number): Record<string, number> {
    const counts = this.schedule.counts(samples);
    return Object.fromEntries(this.schedule.names.map((name, s) => [name, counts[s]! * this.seqLen]));
  }
}

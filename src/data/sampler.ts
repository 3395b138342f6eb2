/**
 * Packing and sampling. Documents are packed back to back as <bos> doc <eos> into one token stream
 * (one separator only when BOS and EOS are the same token). The stream is cut into W windows of
 * seqLen + 1 tokens starting every seqLen tokens, so window w's inputs are stream[w·L, w·L + L) and
 * its targets stream[w·L + 1, w·L + L + 1): every token after the first is a target exactly once per
 * epoch (the tail that does not fill a window is left out).
 *
 * Samples are addressed by a global index k: sample k is window perm_e[k mod W] of epoch
 * e = ⌊k / W⌋, where perm_e is a seeded shuffle of the W windows. So the data position is a single
 * number (samples seen), batch sizes can change between steps without skipping or repeating data,
 * ranks take disjoint ranges of k, and a resume only needs k.
 */
import { Rng } from '../util/rng.js';
import type { TokenArray } from './token-cache.js';

export interface Cursor {
  epoch: number;
  /** Position within the epoch's order, 0 ≤ position < windowsPerEpoch. */
  position: number;
}

export interface WindowSampler {
  readonly seqLen: number;
  readonly windowsPerEpoch: number;
  /** Samples [start, start + count): count × (seqLen + 1) tokens, row-major. */
  windows(start: number, count: number): Int32Array;
  cursorAt(sample: number): Cursor;
}

/** The global sample index of a cursor (the inverse of cursorAt). */
export function sampleAt(cursor: Cursor, windowsPerEpoch: number): number {
  return cursor.epoch * windowsPerEpoch + cursor.position;
}

export type TokenStream = TokenArray | Int32Array;

/** Packs the given documents of a tokenised corpus as <bos> doc <eos> …, skipping empty documents. */
export function packDocuments(tokens: TokenArray, offsets: Float64Array, docs: readonly number[], bos: number, eos: number): TokenArray {
  const perDoc = bos === eos ? 1 : 2;
  let total = 0;
  for (const d of docs) {
    const n = offsets[d + 1]! - offsets[d]!;
    if (n > 0) total += n + perDoc;
  }
  const out = tokens instanceof Uint16Array ? new Uint16Array(total) : new Uint32Array(total);
  let at = 0;
  for (const d of docs) {
    const from = offsets[d]!;
    const to = offsets[d + 1]!;
    if (to === from) continue;
    if (perDoc === 2) out[at++] = bos;
    out.set(tokens.subarray(from, to), at);
    at += to - from;
    out[at++] = eos;
  }
  return out;
}

/** How many windows of seqLen + 1 tokens, stride seqLen, a stream holds. */
export function windowCount(streamLength: number, seqLen: number): number {
  return streamLength > seqLen ? Math.floor((streamLength - 1) / seqLen) : 0;
}

export interface PackedWindowsOptions {
  /** Seed of the per-epoch shuffle; null keeps windows in order (the same order every epoch). */
  shuffleSeed: number | null;
  /** Use only these windows of the stream, in this order (e.g. a fixed validation subset). */
  select?: Uint32Array;
}

function checkIndex(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
}

export class PackedWindows implements WindowSampler {
  readonly windowsPerEpoch: number;
  private readonly shuffleSeed: number | null;
  private readonly select: Uint32Array | null;
  /** The two most recent epochs' orders (a step straddles at most one epoch boundary). */
  private readonly perms = new Map<number, Uint32Array>();

  constructor(
    readonly stream: TokenStream,
    readonly seqLen: number,
    opts: PackedWindowsOptions,
  ) {
    checkIndex('seqLen', seqLen);
    if (seqLen === 0) throw new RangeError('seqLen must be positive');
    const available = windowCount(stream.length, seqLen);
    this.select = opts.select ?? null;
    if (this.select) for (const w of this.select) if (w >= available) throw new RangeError(`selected window ${w} is beyond the stream's ${available} windows`);
    this.windowsPerEpoch = this.select ? this.select.length : available;
    this.shuffleSeed = opts.shuffleSeed;
  }

  cursorAt(sample: number): Cursor {
    checkIndex('sample', sample);
    if (this.windowsPerEpoch === 0) throw new RangeError('no windows: the token stream is shorter than seqLen + 1');
    const epoch = Math.floor(sample / this.windowsPerEpoch);
    return { epoch, position: sample - epoch * this.windowsPerEpoch };
  }

  /** Which of the stream's windows sample k reads (the token offset is that times seqLen). */
  windowIndex(sample: number): number {
    const { epoch, position } = this.cursorAt(sample);
    const slot = this.shuffleSeed === null ? position : this.order(epoch)[position]!;
    return this.select ? this.select[slot]! : slot;
  }

  windows(start: number, count: number): Int32Array {
    checkIndex('start', start);
    checkIndex('count', count);
    const width = this.seqLen + 1;
    const out = new Int32Array(count * width);
    for (let i = 0; i < count; i++) {
      const from = this.windowIndex(start + i) * this.seqLen;
      out.set(this.stream.subarray(from, from + width), i * width);
    }
    return out;
  }

  private order(epoch: number): Uint32Array {
    let perm = this.perms.get(epoch);
    if (perm === undefined) {
      perm = new Uint32Array(this.windowsPerEpoch);
      for (let i = 0; i < perm.length; i++) perm[i] = i;
      Rng.derive(this.shuffleSeed!, 'epoch', epoch).shuffle(perm);
      if (this.perms.size >= 2) this.perms.delete(this.perms.keys().next().value!);
      this.perms.set(epoch, perm);
    }
    return perm;
  }
}

export interface SampleRange {
  start: number;
  count: number;
}

export interface RankShard extends SampleRange {
  rank: number;
  /** The rank's micro-batches, contiguous and in order; every rank has the same number (accumSteps). */
  micro: SampleRange[];
}

/**
 * Splits one optimizer step's samples [start, start + globalBatch) across ranks, then each rank's
 * part into micro-batches of at most microBatch. Ranks get contiguous parts whose sizes differ by at
 * most one (the first globalBatch mod ranks get one more); every rank gets the same number of
 * micro-steps, M = ⌈⌈globalBatch / ranks⌉ / microBatch⌉, with sizes differing by at most one. When
 * globalBatch = ranks · M · microBatch (a planned step) every micro-batch has exactly microBatch
 * samples; a shortened last step gives smaller (possibly empty) ones, which the trainer must weight
 * by their counts.
 */
export function shardStep(start: number, globalBatch: number, ranks: number, microBatch: number): RankShard[] {
  checkIndex('start', start);
  checkIndex('globalBatch', globalBatch);
  if (!Number.isSafeInteger(ranks) || ranks < 1) throw new RangeError(`ranks must be a positive integer, got ${ranks}`);
  if (!Number.isSafeInteger(microBatch) || microBatch < 1) throw new RangeError(`microBatch must be a positive integer, got ${microBatch}`);
  const base = Math.floor(globalBatch / ranks);
  const extra = globalBatch - base * ranks;
  const accumSteps = Math.max(1, Math.ceil(Math.ceil(globalBatch / ranks) / microBatch));
  const shards: RankShard[] = [];
  let at = start;
  for (let rank = 0; rank < ranks; rank++) {
    const count = base + (rank < extra ? 1 : 0);
    const microBase = Math.floor(count / accumSteps);
    const microExtra = count - microBase * accumSteps;
    const micro: SampleRange[] = [];
    let m = at;
    for (let t = 0; t < accumSteps; t++) {
      const c = microBase + (t < microExtra ? 1 : 0);
      micro.push({ start: m, count: c });
      m += c;
    }
    shards.push({ rank, start: at, count, micro });
    at += count;
  }
  return shards;
}

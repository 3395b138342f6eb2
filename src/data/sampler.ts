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
 *
 * The stream is never materialised: `PackedDocuments` reads it by position from a `TokenSource`, the
 * tokenised corpus in memory or in token shards on disk, so both give the same windows.
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
  /** A mixture's tokens from each source in samples [0, samples) (mixture.ts); absent for one source. */
  tokensBySource?(samples: number): Record<string, number>;
}

/** The global sample index of a cursor (the inverse of cursorAt). */
export function sampleAt(cursor: Cursor, windowsPerEpoch: number): number {
  return cursor.epoch * windowsPerEpoch + cursor.position;
}

export type TokenStream = TokenArray | Int32Array;

/**
 * A tokenised corpus read by position: its documents back to back, without separators. In memory
 * (`memoryTokens`) or in token shards on disk (shards/shard-set.ts), so packing and sampling are the
 * same code whichever holds the tokens.
 */
export interface TokenSource {
  /** num_docs + 1 offsets: document d is tokens [documentStarts[d], documentStarts[d + 1]). */
  readonly documentStarts: Float64Array;
  /** Tokens [from, to). The view may be overwritten by the next call: copy what you keep. */
  tokens(from: number, to: number): TokenArray;
}

/** A TokenSource over arrays in memory (a token cache's tokens and offsets). */
export function memoryTokens(tokens: TokenArray, offsets: Float64Array): TokenSource {
  return { documentStarts: offsets, tokens: (from, to) => tokens.subarray(from, to) };
}

/** A packed token stream read by position: an array in memory, or documents packed on the fly. */
export interface PackedStream {
  readonly length: number;
  /** Copies stream[from, from + count) into out[at, at + count). */
  read(from: number, out: Int32Array, at: number, count: number): void;
}

/**
 * The given documents of a TokenSource packed as <bos> doc <eos> … (one separator only when BOS and
 * EOS are the same token), empty documents skipped; read by position without being materialised, so
 * the tokens stay wherever the source keeps them. Memory: 12 bytes per packed document.
 */
export class PackedDocuments implements PackedStream {
  readonly length: number;
  /** The packed documents, in order, and where each one's piece starts in the stream. */
  private readonly docs: Uint32Array;
  private readonly pieceStarts: Float64Array;
  /** 1 when a BOS precedes every document, 0 when the EOS alone separates them. */
  private readonly lead: number;

  constructor(
    private readonly source: TokenSource,
    docs: ArrayLike<number>,
    private readonly bos: number,
    private readonly eos: number,
  ) {
    const starts = source.documentStarts;
    const size = (d: number): number => starts[d + 1]! - starts[d]!;
    this.lead = bos === eos ? 0 : 1;
    let packed = 0;
    for (let i = 0; i < docs.length; i++) if (size(docs[i]!) > 0) packed++;
    this.docs = new Uint32Array(packed);
    this.pieceStarts = new Float64Array(packed + 1);
    let at = 0;
    let slot = 0;
    for (let i = 0; i < docs.length; i++) {
      const d = docs[i]!;
      if (size(d) === 0) continue;
      this.docs[slot] = d;
      this.pieceStarts[slot++] = at;
      at += size(d) + this.lead + 1;
    }
    this.pieceStarts[packed] = at;
    this.length = at;
  }

  /** How many documents are packed (the non-empty ones given). */
  get documents(): number {
    return this.docs.length;
  }

  read(from: number, out: Int32Array, at: number, count: number): void {
    if (!(Number.isSafeInteger(from) && Number.isSafeInteger(count) && from >= 0 && count >= 0 && from + count <= this.length)) {
      throw new RangeError(`cannot read stream[${from}, ${from + count}) of a ${this.length}-token stream`);
    }
    const end = from + count;
    const starts = this.source.documentStarts;
    let o = at;
    for (let slot = this.slotAt(from); o < at + count; slot++) {
      const d = this.docs[slot]!;
      const docStart = starts[d]!;
      const n = starts[d + 1]! - docStart;
      const piece = this.pieceStarts[slot]!;
      // The piece is [BOS] tokens EOS; p walks the part of it inside [from, end).
      let p = Math.max(from, piece);
      const hi = Math.min(end, piece + this.lead + n + 1);
      if (this.lead === 1 && p === piece) {
        out[o++] = this.bos;
        p++;
      }
      const tokensEnd = Math.min(hi, piece + this.lead + n);
      if (p < tokensEnd) {
        const first = docStart + (p - piece - this.lead);
        out.set(this.source.tokens(first, first + (tokensEnd - p)), o);
        o += tokensEnd - p;
        p = tokensEnd;
      }
      if (p < hi) out[o++] = this.eos;
    }
  }

  /** The slot whose piece holds stream position pos (binary search). */
  private slotAt(pos: number): number {
    let lo = 0;
    let hi = this.docs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.pieceStarts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

/** Packs the given documents of a tokenised corpus as <bos> doc <eos> …, skipping empty documents. */
export function packDocuments(tokens: TokenArray, offsets: Float64Array, docs: readonly number[], bos: number, eos: number): TokenArray {
  const packed = new PackedDocuments(memoryTokens(tokens, offsets), docs, bos, eos);
  const out = new Int32Array(packed.length);
  packed.read(0, out, 0, out.length);
  return tokens instanceof Uint16Array ? Uint16Array.from(out) : Uint32Array.from(out);
}

/** An array in memory as a PackedStream. */
function arrayStream(stream: TokenStream): PackedStream {
  return { length: stream.length, read: (from, out, at, count) => out.set(stream.subarray(from, from + count), at) };
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

  private readonly stream: PackedStream;

  constructor(
    stream: TokenStream | PackedStream,
    readonly seqLen: number,
    opts: PackedWindowsOptions,
  ) {
    this.stream = ArrayBuffer.isView(stream) ? arrayStream(stream) : stream;
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
      this.stream.read(this.windowIndex(start + i) * this.seqLen, out, i * width, width);
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

/**
 * The BPE merge step shared by every tokenizer family: a word, as the ids of its starting symbols
 * (bytes for byte-level BPE, characters or byte-fallback tokens for SentencePiece-style BPE), becomes
 * the ids of its tokens by applying merges lowest rank first, the leftmost of equal ones — the order
 * Hugging Face applies them in. Plus the word cache both families keep, since natural text repeats
 * the same few thousand words.
 */

/** What a tokenizer family (byte-level, SentencePiece-style) does around the merges. */
export interface BpeFamily {
  /** Appends the ids of a stretch of normalized text that holds no added token; `first`: it begins the text. */
  encode(text: string, first: boolean, out: number[]): void;
  /** The text of ids (each below the vocabulary size; an added token stands for its content). */
  decode(ids: readonly number[]): string;
}

/** Merges are ranked in a double as rank · 2³² + position, exact below 2⁵³. */
export const MAX_MERGES = 2 ** 21;
/** Pairs of ids are keyed in a double as left · vocabSize + right, exact below 2⁵³. */
export const MAX_VOCAB = 2 ** 26;

const POS_SPAN = 2 ** 32;

/** Binary min-heap of merge candidates keyed rank·2³² + position. */
function heapPush(h: number[], v: number): void {
  let i = h.length;
  h.push(v);
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p]! <= v) break;
    h[i] = h[p]!;
    i = p;
  }
  h[i] = v;
}

function heapPop(h: number[]): number {
  const top = h[0]!;
  const last = h.pop()!;
  const n = h.length;
  if (n > 0) {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const c = l + 1 < n && h[l + 1]! < h[l]! ? l + 1 : l;
      if (h[c]! >= last) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
  return top;
}

export class BpeMerges {
  /** (left id · vocabSize + right id) → merge rank; rank → merged id. */
  private readonly rank = new Map<number, number>();
  private readonly result: Int32Array;

  /** `merges` and their results must be in `vocab` (parseTokenizerJson checks it); ids below `vocabSize`. */
  constructor(
    vocab: ReadonlyMap<string, number>,
    merges: ReadonlyArray<readonly [string, string]>,
    private readonly vocabSize: number,
  ) {
    this.result = new Int32Array(merges.length);
    merges.forEach(([a, b], rank) => {
      const key = vocab.get(a)! * vocabSize + vocab.get(b)!;
      // A repeated merge keeps its first (best) rank, as Hugging Face's reader does.
      if (!this.rank.has(key)) this.rank.set(key, rank);
      this.result[rank] = vocab.get(a + b)!;
    });
  }

  /**
   * Applies merges to one word's symbols (consumed): repeatedly the pair of lowest rank, the leftmost
   * of equal ones, with a heap over a linked list, so long words cost n log n, not n².
   */
  apply(sym: Int32Array): Int32Array {
    const n = sym.length;
    if (n < 2) return sym;
    const V = this.vocabSize;
    if (n === 2) {
      const r = this.rank.get(sym[0]! * V + sym[1]!);
      return r === undefined ? sym : Int32Array.of(this.result[r]!);
    }
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1;
      prev[i] = i - 1;
    }
    const heap: number[] = [];
    for (let i = 0; i + 1 < n; i++) {
      const r = this.rank.get(sym[i]! * V + sym[i + 1]!);
      if (r !== undefined) heapPush(heap, r * POS_SPAN + i);
    }
    let alive = n;
    while (heap.length > 0) {
      const top = heapPop(heap);
      const rank = Math.floor(top / POS_SPAN);
      const i = top - rank * POS_SPAN;
      if (sym[i]! < 0) continue;
      const j = next[i]!;
      // Stale entry: the left symbol was merged away or its right neighbour changed.
      if (j >= n || this.rank.get(sym[i]! * V + sym[j]!) !== rank) continue;
      sym[i] = this.result[rank]!;
      sym[j] = -1;
      alive--;
      const k = next[j]!;
      next[i] = k;
      if (k < n) prev[k] = i;
      const p = prev[i]!;
      if (p >= 0) {
        const r = this.rank.get(sym[p]! * V + sym[i]!);
        if (r !== undefined) heapPush(heap, r * POS_SPAN + p);
      }
      if (k < n) {
        const r = this.rank.get(sym[i]! * V + sym[k]!);
        if (r !== undefined) heapPush(heap, r * POS_SPAN + i);
      }
    }
    const out = new Int32Array(alive);
    for (let i = 0, o = 0; i < n; i = next[i]!) out[o++] = sym[i]!;
    return out;
  }
}

/** Cached words above this count are dropped (all at once): bounds memory on corpora with endless distinct words. */
const WORD_CACHE_LIMIT = 1 << 20;
/** Longer words are not cached: they seldom repeat, and would hold on to memory (Hugging Face's limit too). */
const WORD_CACHE_MAX_LENGTH = 256;

/** Word → token ids, for words that repeat. */
export class WordCache {
  private readonly map = new Map<string, Int32Array>();

  get(word: string): Int32Array | undefined {
    return this.map.get(word);
  }

  set(word: string, ids: Int32Array): void {
    if (word.length > WORD_CACHE_MAX_LENGTH) return;
    if (this.map.size >= WORD_CACHE_LIMIT) this.map.clear();
    this.map.set(word, ids);
  }
}

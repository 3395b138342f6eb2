/**
 * Byte-level BPE training (the algorithm of Hugging Face's BpeTrainer, in its own id space: byte b is
 * id b, merge r creates id 256 + r). Text is counted once as distinct pre-token words; pair counts are
 * then kept up to date incrementally: a merge only visits the words that contain the merged pair
 * (an index from pair to words), and the best pair comes from a max-heap whose stale entries are
 * re-queued lazily. Re-scanning the corpus per merge would be ~4000 passes over Brown.
 */
import { gpt2SplitRegex, utf8Encoder } from './bytelevel.js';

/** Distinct pre-token words of some texts (GPT-2 split) with their occurrence counts. */
export function countWords(texts: Iterable<string>, into: Map<string, number> = new Map()): Map<string, number> {
  const re = gpt2SplitRegex();
  for (const text of texts) {
    re.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      const w = m[0];
      into.set(w, (into.get(w) ?? 0) + 1);
    }
  }
  return into;
}

/**
 * A max-heap of (count, pair key): the most frequent pair first, ties to the smallest key (left id,
 * then right id), so training is deterministic.
 */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the top; returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    const n = this.keys.length;
    if (n > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < n && this.before(l, best)) best = l;
        if (r < n && this.before(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/**
 * Learns up to `numMerges` merges from word counts. Stops early when no pair occurs at least
 * `minFrequency` times (a tiny corpus then yields a smaller vocabulary than asked for).
 * Returns the merges as pairs of ids in the trainer's id space (bytes 0–255, merge r → 256 + r).
 */
export function learnMerges(wordCounts: ReadonlyMap<string, number>, numMerges: number, minFrequency = 2): Array<[number, number]> {
  // Pair keys are a·idSpace + b: exact in a double for any realistic vocabulary.
  const idSpace = 256 + Math.max(0, numMerges);
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [w, c] of wordCounts) {
    words.push(Array.from(utf8Encoder.encode(w)));
    freq.push(c);
  }

  const pairCount = new Map<number, number>();
  // Words in which a pair occurs (maybe no longer: entries go stale after merges and are skipped).
  const wordsWith = new Map<number, number[]>();
  const note = (key: number, wordIndex: number): void => {
    const list = wordsWith.get(key);
    if (list === undefined) wordsWith.set(key, [wordIndex]);
    else if (list[list.length - 1] !== wordIndex) list.push(wordIndex);
  };
  for (let wi = 0; wi < words.length; wi++) {
    const s = words[wi]!;
    const c = freq[wi]!;
    for (let j = 0; j + 1 < s.length; j++) {
      const key = s[j]! * idSpace + s[j + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + c);
      note(key, wi);
    }
  }
  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);

  const merges: Array<[number, number]> = [];
  const add = (key: number, delta: number): void => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + delta);
  };
  while (merges.length < numMerges && heap.size > 0) {
    const [queued, key] = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (current !== queued) {
      // Counts of existing pairs only fall, so a stale entry is re-queued with its true count.
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (current < minFrequency) break;
    const a = Math.floor(key / idSpace);
    const b = key - a * idSpace;
    const merged = 256 + merges.length;
    merges.push([a, b]);

    // Only pairs containing the new id can have gained counts; they are queued after the pass.
    const created = new Set<number>();
    for (const wi of wordsWith.get(key) ?? []) {
      const s = words[wi]!;
      const c = freq[wi]!;
      let found = false;
      const out: number[] = [];
      for (let i = 0; i < s.length; ) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          found = true;
          if (out.length > 0) {
            const prev = out[out.length - 1]!;
            add(prev * idSpace + a, -c);
            const k = prev * idSpace + merged;
            add(k, c);
            created.add(k);
            note(k, wi);
          }
          if (i + 2 < s.length) {
            const next = s[i + 2]!;
            add(b * idSpace + next, -c);
            const k = merged * idSpace + next;
            add(k, c);
            created.add(k);
            note(k, wi);
          }
          out.push(merged);
          i += 2;
        } else {
          out.push(s[i]!);
          i += 1;
        }
      }
      if (found) words[wi] = out;
    }
    pairCount.delete(key);
    wordsWith.delete(key);
    for (const k of created) {
      const c = pairCount.get(k) ?? 0;
      if (c > 0) heap.push(c, k);
    }
  }
  return merges;
}

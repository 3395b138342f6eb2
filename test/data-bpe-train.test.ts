/**
 * BPE training: a hand-worked example, and the incremental trainer against a naive one that
 * recounts every pair before every merge (the textbook algorithm, slow but obviously right).
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { countWords, learnMerges } from '../src/data/bpe-train.js';
import { trainTokenizer } from '../src/data/tokenizer.js';

const A = 97;
const B = 98;
const C = 99;

test('hand-worked example: "aaabdaaabac"', () => {
  // One word (no spaces): a a a b d a a a b a c.
  // Pairs: aa×4, ab×2, bd, da, ba, ac → merge aa (256): X a b d X a b a c.
  // Now Xa×2 and ab×2 tie; the smaller pair (a,b) = (97,98) wins → 257: X Y d X Y a c.
  // Then XY×2 → 258: Z d Z a c. Every pair is now seen once: min_frequency 2 stops here,
  // min_frequency 1 merges the smallest pair (a,c) = (97,99) next.
  const words = countWords(['aaabdaaabac']);
  assert.deepEqual([...words], [['aaabdaaabac', 1]]);
  assert.deepEqual(learnMerges(words, 10, 2), [[A, A], [A, B], [256, 257]]);
  assert.deepEqual(learnMerges(words, 4, 1), [[A, A], [A, B], [256, 257], [A, C]]);
});

test('word counts follow the GPT-2 split (leading space kept, contractions apart)', () => {
  const counts = countWords(["the cat's hat, the  cat"]);
  assert.deepEqual(Object.fromEntries(counts), { the: 1, ' cat': 2, "'s": 1, ' hat': 1, ',': 1, ' the': 1, ' ': 1 });
});

/** The textbook trainer: recount all pairs, take the most frequent (smallest pair on ties), merge everywhere. */
function naiveMerges(counts: Map<string, number>, numMerges: number, minFrequency: number): Array<[number, number]> {
  const words = [...counts].map(([w, c]) => ({ syms: [...Buffer.from(w, 'utf8')], c }));
  const merges: Array<[number, number]> = [];
  while (merges.length < numMerges) {
    const pairs = new Map<string, number>();
    for (const { syms, c } of words) for (let i = 0; i + 1 < syms.length; i++) pairs.set(`${syms[i]},${syms[i + 1]}`, (pairs.get(`${syms[i]},${syms[i + 1]}`) ?? 0) + c);
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [k, n] of pairs) {
      const [a, b] = k.split(',').map(Number) as [number, number];
      if (n > bestCount || (n === bestCount && best !== null && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestCount = n;
      }
    }
    if (best === null || bestCount < minFrequency) break;
    const id = 256 + merges.length;
    merges.push(best);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === best[0] && w.syms[i + 1] === best[1]) {
          out.push(id);
          i++;
        } else out.push(w.syms[i]!);
      }
      w.syms = out;
    }
  }
  return merges;
}

test('incremental trainer = naive trainer on random corpora', () => {
  // A small alphabet makes repeated and overlapping pairs (aaa, abab) common.
  const text = fc.array(fc.constantFrom('a', 'b', 'c', 'é', ' ', ' ', '\n', "'", '.'), { maxLength: 60 }).map((a) => a.join(''));
  fc.assert(
    fc.property(fc.array(text, { maxLength: 6 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 3 }), (texts, numMerges, minFrequency) => {
      const counts = countWords(texts);
      assert.deepEqual(learnMerges(counts, numMerges, minFrequency), naiveMerges(counts, numMerges, minFrequency));
    }),
    { numRuns: 300 },
  );
});

test('training is deterministic and every merge is a concatenation of earlier tokens', () => {
  const texts = ['the theme of the thesis is these theories', 'then there were three thin thieves'];
  const t1 = trainTokenizer(texts, { vocab: 300, minFrequency: 1 });
  const t2 = trainTokenizer([...texts], { vocab: 300, minFrequency: 1 });
  assert.equal(t1.hash(), t2.hash());
  const model = t1.toJSON().model as { merges: string[]; vocab: Record<string, number> };
  model.merges.forEach((m, r) => {
    const [a, b] = m.split(' ') as [string, string];
    assert.ok(model.vocab[a]! < 258 + r && model.vocab[b]! < 258 + r, `merge ${r} uses only earlier tokens`);
    assert.equal(model.vocab[a + b], 258 + r);
  });
});

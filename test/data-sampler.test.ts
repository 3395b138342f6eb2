/**
 * Packing and the window sampler. The stream used here holds its own positions (token i = i), so a
 * window's content says which window it is, and coverage can be checked in closed form: window w is
 * tokens [w·L, w·L + L], and its targets are positions w·L + 1 … w·L + L.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { PackedWindows, packDocuments, sampleAt, shardStep, windowCount } from '../src/data/sampler.js';

const positions = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

/** Which window (by content) each of samples [start, start + count) is. */
function windowIds(s: PackedWindows, start: number, count: number): number[] {
  const L = s.seqLen;
  const w = s.windows(start, count);
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    const first = w[i * (L + 1)]!;
    assert.equal(first % L, 0);
    for (let j = 0; j <= L; j++) assert.equal(w[i * (L + 1) + j], first + j, 'a window is seqLen + 1 consecutive tokens');
    ids.push(first / L);
  }
  return ids;
}

test('packDocuments: <bos> doc <eos> per non-empty document; one separator when BOS = EOS', () => {
  const tokens = Uint16Array.from([5, 6, 7, 8, 9]);
  const offsets = Float64Array.from([0, 2, 2, 3, 5]); // docs [5 6], [], [7], [8 9]
  assert.deepEqual([...packDocuments(tokens, offsets, [0, 1, 2, 3], 0, 1)], [0, 5, 6, 1, 0, 7, 1, 0, 8, 9, 1]);
  assert.deepEqual([...packDocuments(tokens, offsets, [3, 0], 0, 1)], [0, 8, 9, 1, 0, 5, 6, 1]);
  assert.deepEqual([...packDocuments(tokens, offsets, [0, 2], 4, 4)], [5, 6, 4, 7, 4]);
  assert.ok(packDocuments(Uint32Array.from([70000]), Float64Array.from([0, 1]), [0], 0, 1) instanceof Uint32Array);
});

test('windowCount: ⌊(n − 1) / L⌋ windows of L + 1 tokens with stride L', () => {
  assert.equal(windowCount(0, 4), 0);
  assert.equal(windowCount(4, 4), 0);
  assert.equal(windowCount(5, 4), 1);
  assert.equal(windowCount(8, 4), 1);
  assert.equal(windowCount(9, 4), 2);
  assert.equal(windowCount(1001, 10), 100);
});

test('each epoch is a permutation of all windows: every token after the first is a target exactly once', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 400 }), fc.integer({ min: 1, max: 17 }), fc.nat(), fc.integer({ min: 0, max: 3 }), (n, L, seed, epoch) => {
      fc.pre(n > L);
      const s = new PackedWindows(positions(n), L, { shuffleSeed: seed });
      const W = s.windowsPerEpoch;
      assert.equal(W, Math.floor((n - 1) / L));
      const ids = windowIds(s, epoch * W, W);
      assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: W }, (_, i) => i));
      const targets = new Uint8Array(n);
      for (const w of ids) for (let p = w * L + 1; p <= w * L + L; p++) targets[p]!++;
      for (let p = 1; p <= W * L; p++) assert.equal(targets[p], 1);
    }),
  );
});

test('any sequence of batch sizes, rank counts and micro-batches reads every sample once, in order', () => {
  const step = fc.record({ batch: fc.integer({ min: 0, max: 40 }), ranks: fc.integer({ min: 1, max: 5 }), micro: fc.integer({ min: 1, max: 9 }) });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 25 }), fc.integer({ min: 30, max: 300 }), fc.integer({ min: 1, max: 8 }), fc.nat(), (steps, n, L, seed) => {
      const s = new PackedWindows(positions(n), L, { shuffleSeed: seed });
      const reference = new PackedWindows(positions(n), L, { shuffleSeed: seed });
      let k = 0;
      const read: number[] = [];
      for (const { batch, ranks, micro } of steps) {
        for (const shard of shardStep(k, batch, ranks, micro)) {
          for (const m of shard.micro) {
            // What a rank reads for its micro-batch equals the same samples read one by one.
            const got = windowIds(s, m.start, m.count);
            for (let i = 0; i < m.count; i++) {
              read.push(m.start + i);
              assert.equal(got[i], windowIds(reference, m.start + i, 1)[0]);
            }
          }
        }
        k += batch;
      }
      read.sort((a, b) => a - b);
      assert.deepEqual(read, Array.from({ length: k }, (_, i) => i), 'no sample skipped or repeated');
    }),
    { numRuns: 200 },
  );
});

test('restoring from a cursor continues identically, in a fresh sampler', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 20 }), fc.nat(19), fc.nat(), (batches, cut, seed) => {
      fc.pre(cut < batches.length);
      const n = 200;
      const L = 7;
      const run = new PackedWindows(positions(n), L, { shuffleSeed: seed });
      let k = 0;
      const whole: number[][] = [];
      let cursor = run.cursorAt(0);
      batches.forEach((b, i) => {
        if (i === cut) cursor = run.cursorAt(k);
        whole.push(windowIds(run, k, b));
        k += b;
      });
      // "Checkpoint" = the cursor as plain JSON; resume in a new object.
      const saved = JSON.parse(JSON.stringify(cursor)) as { epoch: number; position: number };
      const resumed = new PackedWindows(positions(n), L, { shuffleSeed: seed });
      let r = sampleAt(saved, resumed.windowsPerEpoch);
      assert.equal(r, batches.slice(0, cut).reduce((a, b) => a + b, 0));
      for (let i = cut; i < batches.length; i++) {
        assert.deepEqual(windowIds(resumed, r, batches[i]!), whole[i]);
        r += batches[i]!;
      }
    }),
    { numRuns: 200 },
  );
});

test('cursorAt: epoch = ⌊k / W⌋, position = k mod W; epochs are reshuffled, seeds differ', () => {
  const s = new PackedWindows(positions(1001), 10, { shuffleSeed: 7 });
  assert.equal(s.windowsPerEpoch, 100);
  assert.deepEqual(s.cursorAt(0), { epoch: 0, position: 0 });
  assert.deepEqual(s.cursorAt(99), { epoch: 0, position: 99 });
  assert.deepEqual(s.cursorAt(100), { epoch: 1, position: 0 });
  assert.deepEqual(s.cursorAt(1234), { epoch: 12, position: 34 });
  const e0 = windowIds(s, 0, 100);
  const e1 = windowIds(s, 100, 100);
  assert.notDeepEqual(e0, e1);
  assert.notDeepEqual(e0, Array.from({ length: 100 }, (_, i) => i), 'shuffled');
  assert.notDeepEqual(windowIds(new PackedWindows(positions(1001), 10, { shuffleSeed: 8 }), 0, 100), e0);
  // Going back to an earlier epoch (e.g. after a restore) gives the same order again.
  assert.deepEqual(windowIds(s, 0, 100), e0);
  assert.deepEqual(windowIds(new PackedWindows(positions(1001), 10, { shuffleSeed: 7 }), 100, 100), e1);
});

test('unshuffled sampler with a selection reads exactly the selected windows, in order, every epoch', () => {
  const select = Uint32Array.from([5, 0, 9, 3]);
  const s = new PackedWindows(positions(101), 10, { shuffleSeed: null, select });
  assert.equal(s.windowsPerEpoch, 4);
  assert.deepEqual(windowIds(s, 0, 4), [5, 0, 9, 3]);
  assert.deepEqual(windowIds(s, 6, 3), [9, 3, 5]);
  assert.throws(() => new PackedWindows(positions(101), 10, { shuffleSeed: null, select: Uint32Array.from([10]) }), RangeError);
  const empty = new PackedWindows(positions(5), 10, { shuffleSeed: 1 });
  assert.equal(empty.windowsPerEpoch, 0);
  assert.throws(() => empty.windows(0, 1), /no windows/);
  assert.throws(() => s.windows(-1, 1), RangeError);
  assert.throws(() => s.windows(0.5, 1), RangeError);
});

test('shardStep: contiguous, covering, disjoint; same number of micro-steps on every rank', () => {
  fc.assert(
    fc.property(fc.nat(100_000), fc.integer({ min: 0, max: 500 }), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 32 }), (start, B, J, m) => {
      const shards = shardStep(start, B, J, m);
      assert.equal(shards.length, J);
      const M = Math.max(1, Math.ceil(Math.ceil(B / J) / m));
      let at = start;
      for (const [r, sh] of shards.entries()) {
        assert.equal(sh.rank, r);
        assert.equal(sh.start, at, 'ranks are contiguous and in order');
        assert.ok(sh.count === Math.floor(B / J) || sh.count === Math.ceil(B / J), 'shares differ by at most one');
        assert.equal(sh.micro.length, M);
        let mAt = sh.start;
        for (const mb of sh.micro) {
          assert.equal(mb.start, mAt);
          assert.ok(mb.count <= m && mb.count >= Math.floor(sh.count / M) && mb.count <= Math.ceil(sh.count / M));
          mAt += mb.count;
        }
        assert.equal(mAt, sh.start + sh.count);
        at += sh.count;
      }
      assert.equal(at, start + B, 'the shards cover the step');
    }),
  );
});

test('shardStep: a planned step (B = J·M·m) gives every micro-batch exactly m samples', () => {
  const shards = shardStep(100, 2 * 3 * 4, 2, 4);
  assert.deepEqual(
    shards.map((s) => [s.start, s.count, s.micro.map((m) => [m.start, m.count])]),
    [
      [100, 12, [[100, 4], [104, 4], [108, 4]]],
      [112, 12, [[112, 4], [116, 4], [120, 4]]],
    ],
  );
  // A shortened last step of 7 on 2 ranks with m = 4: 4 + 3 samples, one micro-step each.
  assert.deepEqual(
    shardStep(0, 7, 2, 4).map((s) => s.micro),
    [[{ start: 0, count: 4 }], [{ start: 4, count: 3 }]],
  );
});

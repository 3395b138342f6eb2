/** A step's samples split across ranks and micro-batches: covering, disjoint, contiguous, capped. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { splitStep } from '../src/train/split.js';

test('splitStep covers the step exactly once across ranks, with micro-batches ≤ m', () => {
  fc.assert(
    fc.property(fc.nat(10_000), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 16 }), (start, count, ranks, m) => {
      const seen: number[] = [];
      for (let r = 0; r < ranks; r++) {
        const slices = splitStep(start, count, r, ranks, m);
        let total = 0;
        for (const s of slices) {
          assert.ok(s.count >= 1 && s.count <= m);
          for (let i = 0; i < s.count; i++) seen.push(s.start + i);
          total += s.count;
        }
        assert.ok(Math.abs(total - count / ranks) < 1, 'shares differ by at most one');
      }
      seen.sort((a, b) => a - b);
      assert.deepEqual(seen, Array.from({ length: count }, (_, i) => start + i));
    }),
  );
});

test('an evenly divisible step gives every rank M micro-batches of exactly m', () => {
  const s = splitStep(100, 2 * 3 * 4, 1, 2, 4);
  assert.deepEqual(s, [{ start: 112, count: 4 }, { start: 116, count: 4 }, { start: 120, count: 4 }]);
});

/** The model on the ref backend against PyTorch (fixtures by tools/golden/llama_golden.py). */
import { test } from 'node:test';
import { RefBackend } from '../src/backend/ref/index.js';
import { GOLDEN_FIXTURES, runGoldenCheck } from './helpers/golden-check.js';

for (const fixture of GOLDEN_FIXTURES) {
  test(`ref backend matches PyTorch on ${fixture}: loss, gradients, 3 AdamW steps with clipping`, () => {
    return runGoldenCheck(new RefBackend(), fixture);
  });
}

test('activation recomputation gives the same result as caching (tied fixture)', () => {
  return runGoldenCheck(new RefBackend(), 'tiny-tied', { recompute: true });
});

/** The model on the cpu backend against PyTorch (fixtures by tools/golden/llama_golden.py). */
import { test } from 'node:test';
import { createBackend } from '../src/backend/registry.js';
import { GOLDEN_FIXTURES, runGoldenCheck } from './helpers/golden-check.js';

for (const fixture of GOLDEN_FIXTURES) {
  test(`cpu backend matches PyTorch on ${fixture}: loss, gradients, 3 AdamW steps with clipping`, () => {
    return runGoldenCheck(createBackend('cpu'), fixture);
  });
}

test('cpu backend with 2 threads matches PyTorch (untied fixture)', () => {
  return runGoldenCheck(createBackend('cpu', { threads: 2 }), 'tiny-untied');
});

for (const fixture of GOLDEN_FIXTURES) {
  test(`cpu backend with activation recomputation matches PyTorch (${fixture})`, () => {
    return runGoldenCheck(createBackend('cpu'), fixture, { recompute: true });
  });
}

/**
 * Each optimizer's 3 steps on the golden tiny model against PyTorch (fixtures by
 * tools/golden/optimizers_golden.py: torch's Adagrad; AdaGrad-Norm, LAMB and Muon written there from
 * their papers and reference code), on the ref and cpu backends.
 */
import { test } from 'node:test';
import { createBackend } from '../src/backend/registry.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { runGoldenCheck } from './helpers/golden-check.js';

const OPTIMIZERS = ['adagrad', 'adagrad_norm', 'lamb', 'muon'] as const;

for (const optimizer of OPTIMIZERS) {
  for (const [label, make] of [['ref', () => new RefBackend()], ['cpu', () => createBackend('cpu')]] as const) {
    test(`${label} backend: 3 ${optimizer} steps with clipping match PyTorch (tiny-untied)`, async (t) => {
      await runGoldenCheck(make(), 'tiny-untied', { optimizer, onWorstDelta: (name, err) => t.diagnostic(`worst θ3 − θ0: ${name}, rel L2 ${err.toExponential(2)}`) });
    });
  }
}

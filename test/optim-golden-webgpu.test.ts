/** Each optimizer's 3 steps on the golden tiny model against PyTorch, on the webgpu backend (lavapipe in CI). */
import { test } from 'node:test';
import { runGoldenCheck } from './helpers/golden-check.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const { gpu, skip } = openTestDevice();

for (const optimizer of ['adagrad', 'adagrad_norm', 'lamb', 'muon'] as const) {
  test(`webgpu backend: 3 ${optimizer} steps with clipping match PyTorch (tiny-untied)`, { skip }, async (t) => {
    await runGoldenCheck(gpu!, 'tiny-untied', { optimizer, reductionTolerance: 1e-6, onWorstDelta: (name, err) => t.diagnostic(`worst θ3 − θ0: ${name}, rel L2 ${err.toExponential(2)}`) });
  });
}

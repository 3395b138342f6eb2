/** The model on the webgpu backend (lavapipe in CI) against PyTorch (fixtures by tools/golden/llama_golden.py), with the cpu backend's tolerances. */
import { test } from 'node:test';
import { GOLDEN_FIXTURES, runGoldenCheck } from './helpers/golden-check.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const { gpu, skip } = openTestDevice();

for (const fixture of GOLDEN_FIXTURES) {
  test(`webgpu backend matches PyTorch on ${fixture}: loss, gradients, 3 AdamW steps with clipping`, { skip }, () => runGoldenCheck(gpu!, fixture, { reductionTolerance: 1e-6 }));
}

test('webgpu backend with activation recomputation matches PyTorch (tiny-untied)', { skip }, () => runGoldenCheck(gpu!, 'tiny-untied', { recompute: true, reductionTolerance: 1e-6 }));

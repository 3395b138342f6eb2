/**
 * The AVX2 code paths (used on machines without AVX-512) of the exp-heavy kernels: the parity and
 * attention tests again, in a child process with ADABATCH_NO_AVX512=1.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** Our kernels' switch, and oneDNN's (DNNL_ for Debian's 2.6, ONEDNN_ for newer releases). */
const NO_AVX512 = { ADABATCH_NO_AVX512: '1', DNNL_MAX_CPU_ISA: 'AVX2', ONEDNN_MAX_CPU_ISA: 'AVX2' };

test('cpu kernels equal ref with the AVX-512 paths disabled (ours and oneDNN\'s)', () => {
  const files = ['backend-cpu-parity.test.js', 'backend-cpu-attention.test.js'].map((f) => fileURLToPath(new URL(f, import.meta.url)));
  // NODE_TEST_CONTEXT would make the child speak the runner's internal protocol instead of TAP.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', ...files], { encoding: 'utf8', env: { ...env, ...NO_AVX512 } });
  assert.equal(r.status, 0, `child test run failed:\n${r.stdout.split('\n').filter((l) => /not ok|error|rel L2/.test(l)).join('\n')}`);
  assert.match(r.stdout, /# pass [1-9]/);
  assert.match(r.stdout, /# fail 0/);
  const native = fileURLToPath(new URL('../src/addon/addon.js', import.meta.url));
  const probe = spawnSync(process.execPath, ['--input-type=module', '-e', `import { loadNativeAddon } from ${JSON.stringify(native)}; const g = loadNativeAddon().gemmConfig(); console.log(g.kernels, g.isa, g.f32Impl)`], {
    encoding: 'utf8',
    env: { ...env, ...NO_AVX512 },
  });
  assert.match(probe.stdout.trim(), /^avx2 avx2 \S/, `the child used the AVX2 kernels, ours and oneDNN's (${probe.stderr})`);
});

/**
 * GPU memory on the webgpu backend (WebGPU does not report it): an allocation the device refuses
 * fails with a message naming the sizes and what to lower, and ADABATCH_WEBGPU_MEMORY_GIB makes the
 * trainer refuse up front a run whose estimate does not fit, naming the numbers. Also: each rank
 * logs the adapter it opened (2 thread ranks share lavapipe here).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { allocationFailure, deviceMemoryFromEnv } from '../src/backend/webgpu/device-memory.js';
import { modelConfig } from '../src/model/config.js';
import { estimateMemory } from '../src/model/memory.js';
import { checkDeviceMemory } from '../src/train/device-memory-check.js';
import { tempDir } from './helpers/tmp.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const GiB = 2 ** 30;

test('ADABATCH_WEBGPU_MEMORY_GIB: the memory of one GPU in GiB, validated', () => {
  assert.equal(deviceMemoryFromEnv({}), null);
  assert.equal(deviceMemoryFromEnv({ ADABATCH_WEBGPU_MEMORY_GIB: '' }), null);
  assert.equal(deviceMemoryFromEnv({ ADABATCH_WEBGPU_MEMORY_GIB: '80' }), 80 * GiB);
  assert.equal(deviceMemoryFromEnv({ ADABATCH_WEBGPU_MEMORY_GIB: ' 0.5 ' }), GiB / 2);
  for (const bad of ['0', '-1', '80GB', 'lots', '1e3', 'Infinity', '.']) {
    assert.throws(() => deviceMemoryFromEnv({ ADABATCH_WEBGPU_MEMORY_GIB: bad }), new RegExp(`ADABATCH_WEBGPU_MEMORY_GIB must be the memory of one GPU in GiB, a positive number such as 80 or 23.6; got '${bad.replace('.', '\\.')}'`), bad);
  }
});

test('a refused allocation names the tensor, what is live and what to lower', () => {
  const oom = allocationFailure({ kind: 'out-of-memory', bytes: 3 * GiB, liveBytes: 75 * GiB, liveTensors: 120, maxBufferSize: 4 * GiB, detail: 'Allocation failed' });
  assert.equal(oom, 'out of GPU memory allocating a tensor of 3.0 GiB (3221225472 bytes) with 75.0 GiB in 120 tensor(s) already live on the device: the model or micro batch does not fit this GPU; lower batch.max_micro (the global batch is reached by accumulation), set recompute: true, use parallel.strategy: fsdp over more ranks, or train a smaller model. Set ADABATCH_WEBGPU_MEMORY_GIB to the GPU\'s memory to have such a run refused before it starts (docs/gpu.md)');
  assert.match(allocationFailure({ kind: 'validation', bytes: 5 * GiB, liveBytes: 0, liveTensors: 0, maxBufferSize: 4 * GiB, detail: '' }), /^cannot allocate a tensor of 5\.0 GiB \(5368709120 bytes\): it exceeds this device's maxBufferSize of 4\.0 GiB/);
  assert.match(allocationFailure({ kind: 'validation', bytes: 64, liveBytes: 0, liveTensors: 0, maxBufferSize: 4 * GiB, detail: 'Dawn says why' }), /: Dawn says why$/);
});

test('the up-front check: the estimate against the stated GPU memory, the largest micro batch that fits, ranks sharing the GPU', () => {
  const mc = modelConfig('tiny', { n_layers: 2, seq_len: 32 });
  const o = { recompute: false, ranksInProcess: 1, shards: 1 };
  const at = (m: number): number => estimateMemory(mc, m, {}).total;
  assert.equal(checkDeviceMemory(mc, 4, o, at(4), 'gpu').total, at(4));
  assert.throws(() => checkDeviceMemory(mc, 4, o, at(2), 'some gpu'), (e: Error) => {
    assert.equal(e.name, 'UserError');
    assert.match(e.message, /^not enough GPU memory: the estimate is 12\.1 MiB for micro batch 4 \(parameters [\d.]+ [KM]iB, gradients .*\), but ADABATCH_WEBGPU_MEMORY_GIB says the GPU \(some gpu\) has 10\.5 MiB; the largest micro batch that fits is 2 \(set batch\.max_micro=2;/);
    return true;
  });
  assert.throws(() => checkDeviceMemory(mc, 4, { ...o, ranksInProcess: 2 }, 2 * at(1) - 1, 'gpu'), /the estimate is 24\.3 MiB \(2 ranks of this process share this GPU × 12\.1 MiB\) for micro batch 4 .* no micro batch fits: even 1 sequence needs 19\.3 MiB; use recompute: true/);
});

const { skip } = openTestDevice();

test('on the real device: an allocation beyond maxBufferSize fails the next synchronous call, naming the sizes; later calls are clean', { skip }, () => {
  const { gpu } = openTestDevice();
  const g = gpu!;
  const keep = g.alloc([1000]);
  const elems = Math.floor(g.device.maxBufferSize / 4) + 1;
  const big = g.alloc([elems]);
  assert.throws(() => g.synchronize(), new RegExp(`^Error: webgpu: cannot allocate a tensor of [\\d.]+ GiB \\(${4 * elems} bytes\\): it exceeds this device's maxBufferSize of [\\d.]+ GiB \\(${g.device.maxBufferSize} bytes; 3\\.9 KiB in 1 tensor\\(s\\) already live on the device\\); the model or micro batch does not fit this GPU: lower batch\\.max_micro`));
  g.free(big);
  g.synchronize();
  // Reported at a read-back too (the step's scalars), before the read-back's own result.
  const again = g.alloc([elems]);
  assert.throws(() => g.download(keep), /cannot allocate a tensor/);
  g.free(again);
  assert.equal(g.download(keep).length, 1000);
  g.free(keep);
});

const sets = (runDir: string): string[] => [
  `run_dir=${runDir}`,
  'backend=webgpu',
  'model.preset=tiny',
  'model.n_layers=2',
  'model.seq_len=32',
  'data={synthetic: {phrases: 16, phrase_len: 6}}',
  'batch={schedule: norm, eta: 0.5, initial: 4, max: 8, max_micro: 4}',
  'budget.samples=16',
  'threads=1',
].flatMap((s) => ['--set', s]);

const train = (args: string[], memoryGiB: string) => spawnSync(process.execPath, [BIN, 'train', ...args], { encoding: 'utf8', env: { ...process.env, ADABATCH_WEBGPU_MEMORY_GIB: memoryGiB } });

test('adabatch train refuses up front a run that does not fit ADABATCH_WEBGPU_MEMORY_GIB, naming the numbers; a bad value is refused', { skip }, () => {
  const root = tempDir('adabatch-webgpu-memory-');
  const r = train(sets(join(root, 'one')), '0.005');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /not enough GPU memory: the estimate is 12\.1 MiB for micro batch 4 \(parameters .*\), but ADABATCH_WEBGPU_MEMORY_GIB says the GPU \(.*llvmpipe.*\) has 5\.1 MiB; no micro batch fits: even 1 sequence needs 9\.7 MiB/);
  const bad = train(sets(join(root, 'bad')), '80GB');
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /ADABATCH_WEBGPU_MEMORY_GIB must be the memory of one GPU in GiB, a positive number such as 80 or 23\.6; got '80GB'/);
});

test('2 thread ranks on one GPU: their estimates add up in the check; a run that fits logs which adapter each rank opened', { skip }, () => {
  const root = tempDir('adabatch-webgpu-ranks-memory-');
  // One rank's estimate (micro batch 4) fits 16 MiB, two sharing lavapipe do not.
  const refused = train(['--nproc', '2', ...sets(join(root, 'refused'))], String(16 / 1024));
  assert.notEqual(refused.status, 0, refused.stderr);
  assert.match(refused.stderr, /not enough GPU memory: the estimate is [\d.]+ MiB \(2 ranks of this process share this GPU × 12\.1 MiB\) for micro batch 4/);
  const ok = train(['--nproc', '2', ...sets(join(root, 'ok'))], '1');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, /webgpu adapters by rank \(rank→adapter index on its machine; - chosen by name\): 0→0, 1→0\n/);
  assert.match(ok.stderr, /webgpu adapter of rank 0: .*llvmpipe.* \(adapter 0 of 1, local rank 0 of 2 \(thread ranks of this process\) mod 1 software adapter\(s\)\)/);
});

/**
 * `adabatch train/eval/generate` with `backend: webgpu` (lavapipe in CI) on a small model: the run
 * follows the cpu backend's (same losses to float32 accuracy, the same norm-test decisions), resumes
 * bit-exactly, and its checkpoint is read by eval and generate on webgpu and by the cpu backend.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readCheckpoint } from '../src/io/checkpoint.js';
import { readMetrics } from '../src/io/metrics.js';
import { Progress } from '../src/train/progress.js';
import { loadTrainConfig } from '../src/train/config.js';
import { loadResumeConfig } from '../src/train/resume.js';
import { runTrain } from '../src/train/run.js';
import { tempDir } from './helpers/tmp.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const quiet = { log: () => {}, progress: new Progress(process.stderr, 1e9, false) };
const { gpu, skip } = openTestDevice();

const sets = (runDir: string, backend: string): string[] => [
  `run_dir=${runDir}`,
  `backend=${backend}`,
  'model.preset=tiny',
  'model.n_layers=2',
  'model.seq_len=32',
  'data={synthetic: {phrases: 16, phrase_len: 6}}',
  'batch={schedule: norm, eta: 0.5, initial: 4, max: 32, max_micro: 4}',
  'budget.samples=96',
  'eval.every_samples=48',
  'eval.windows=4',
  'lr.lr=0.003',
  'threads=1',
];

const trainRows = (dir: string) => readMetrics(join(dir, 'metrics.jsonl')).filter((r) => r.loss !== undefined);

test('a run on webgpu follows the same run on cpu: losses to 1e-5, statistics to 1e-4, the same batch decisions', { skip }, async () => {
  const root = tempDir('adabatch-webgpu-train-');
  const gpu = await runTrain(loadTrainConfig(undefined, sets(join(root, 'webgpu'), 'webgpu')), quiet);
  const cpu = await runTrain(loadTrainConfig(undefined, sets(join(root, 'cpu'), 'cpu')), quiet);
  assert.deepEqual(gpu.batchChanges, cpu.batchChanges);
  const [a, b] = [trainRows(join(root, 'webgpu')), trainRows(join(root, 'cpu'))];
  assert.equal(a.length, b.length);
  a.forEach((r, i) => {
    const c = b[i]!;
    assert.equal(r.batch_size, c.batch_size, `step ${r.step}`);
    assert.ok(Math.abs((r.loss as number) - (c.loss as number)) <= 1e-5 * (c.loss as number), `step ${r.step} loss ${r.loss} vs ${c.loss}`);
    assert.ok(Math.abs((r.grad_sq_norm as number) - (c.grad_sq_norm as number)) <= 1e-4 * (c.grad_sq_norm as number), `step ${r.step} ‖g‖² ${r.grad_sq_norm} vs ${c.grad_sq_norm}`);
  });
  // The webgpu checkpoint is an ordinary one: the cpu backend reads it.
  assert.ok(readCheckpoint(gpu.checkpoint!).model.size > 0);
});

test('webgpu: N steps + resume + N steps is bit-identical to 2N steps; eval and generate run on webgpu as on cpu', { skip }, async () => {
  const root = tempDir('adabatch-webgpu-resume-');
  // A text corpus (so the checkpoint carries a tokenizer for eval and generate).
  const corpus = join(root, 'corpus');
  mkdirSync(corpus);
  for (let f = 0; f < 10; f++) writeFileSync(join(corpus, `doc${f}.txt`), Array.from({ length: 60 }, (_, i) => `the ${['quick', 'lazy', 'brown', 'small'][(i + f) % 4]} fox number ${i % 17} jumps over the ${['dog', 'cat', 'fence'][i % 3]}.`).join('\n'));
  const textSets = (runDir: string): string[] => [...sets(runDir, 'webgpu'), `data={corpus: {paths: [${corpus}]}, tokenizer: {vocab: 300}, val_fraction: 0.2}`];
  const straight = await runTrain(loadTrainConfig(undefined, textSets(join(root, 'straight'))), quiet);
  const dir = join(root, 'resumed');
  let steps = 0;
  const first = await runTrain(loadTrainConfig(undefined, textSets(dir)), { ...quiet, shouldStop: () => ++steps >= 2 });
  assert.ok(first.stoppedEarly);
  const resumed = await runTrain(loadResumeConfig(dir, undefined, []), { ...quiet, resume: true });
  const [ca, cb] = [readCheckpoint(straight.checkpoint!), readCheckpoint(resumed.checkpoint!)];
  for (const [name, t] of ca.model) assert.deepEqual(cb.model.get(name), t, `parameter ${name}`);
  const ev = spawnSync(process.execPath, [BIN, 'eval', '--ckpt', dir, '--backend', 'webgpu', '--json', '--windows', '4'], { encoding: 'utf8' });
  assert.equal(ev.status, 0, ev.stderr);
  const evCpu = spawnSync(process.execPath, [BIN, 'eval', '--ckpt', dir, '--backend', 'cpu', '--json', '--windows', '4'], { encoding: 'utf8' });
  const [lg, lc] = [JSON.parse(ev.stdout).loss as number, JSON.parse(evCpu.stdout).loss as number];
  assert.ok(Math.abs(lg - lc) <= 1e-5 * lc, `eval loss webgpu ${lg} vs cpu ${lc}`);
  const gen = (backend: string) => spawnSync(process.execPath, [BIN, 'generate', '--ckpt', dir, '--backend', backend, '--prompt', 'the', '--max-tokens', '8', '--temperature', '0'], { encoding: 'utf8' });
  const [g, c] = [gen('webgpu'), gen('cpu')];
  assert.equal(g.status, 0, g.stderr);
  assert.equal(g.stdout, c.stdout, 'greedy generation gives the same text on webgpu and cpu');
});

test('webgpu ranks: DDP and FSDP on 2 ranks (collectives staged through host memory) follow the same runs on cpu ranks', { skip }, () => {
  const root = tempDir('adabatch-webgpu-ranks-');
  for (const strategy of ['ddp', 'fsdp']) {
    const rows: Record<string, ReturnType<typeof trainRows>> = {};
    for (const backend of ['webgpu', 'cpu']) {
      const dir = join(root, `${strategy}-${backend}`);
      const args = [...sets(dir, backend), `parallel.strategy=${strategy}`].flatMap((s) => ['--set', s]);
      const r = spawnSync(process.execPath, [BIN, 'train', '--nproc', '2', ...args], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      rows[backend] = trainRows(dir);
    }
    const [a, b] = [rows.webgpu!, rows.cpu!];
    assert.deepEqual(a.map((x) => x.batch_size), b.map((x) => x.batch_size), `${strategy}: the same batch sizes`);
    a.forEach((r, i) => assert.ok(Math.abs((r.loss as number) - (b[i]!.loss as number)) <= 1e-5 * (b[i]!.loss as number), `${strategy} step ${r.step}: loss ${r.loss} vs ${b[i]!.loss}`));
  }
});

// TinyLlama's untied head is 250 MiB: beyond lavapipe's 128 MiB bindings (a real GPU may bind more).
const smallBindings = gpu && gpu.maxTensorBytes() < 250 * 2 ** 20 ? false : skip || 'this device binds 250 MiB tensors: the limit cannot be reached with TinyLlama';
test('a model whose tensors exceed the device binding limit is refused before anything is allocated, naming the tensor and the limit', { skip: smallBindings }, () => {
  const dir = tempDir('adabatch-webgpu-limit-');
  const args = ['backend=webgpu', 'model.preset=tinyllama', 'model.n_layers=1', `run_dir=${join(dir, 'run')}`, 'data={synthetic: {phrases: 16, phrase_len: 6}}', 'budget.samples=8'].flatMap((s) => ['--set', s]);
  const r = spawnSync(process.execPath, [BIN, 'train', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /too large for this device:\nthe parameters of the head unit \(250\.0 MiB\) form one tensor larger than the [\d.]+ MiB backend webgpu can address in one kernel/);
  assert.match(r.stderr, /the activation gu of a micro batch of \d+ × 2048 tokens \([\d.]+ MiB\) exceeds .* lower batch\.max_micro/);
});

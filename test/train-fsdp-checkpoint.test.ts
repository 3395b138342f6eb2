/**
 * Sharded FSDP checkpoints: written by every rank, verified, consolidated into one Hugging Face file,
 * and resumed on a different number of ranks — DDP on 1 rank and FSDP on 4 — exactly from the
 * consolidated state (bit-identical parameters and moments after loading).
 * Ranks are cooperative tasks in one thread (test/helpers/coop-group.ts) sharing one backend.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createBackend } from '../src/backend/registry.js';
import { LocalGroup, type ProcessGroup } from '../src/parallel/group.js';
import { readCheckpoint, readLatestCheckpoint, verifyCheckpoint } from '../src/io/checkpoint.js';
import { loadHfModel } from '../src/io/hf.js';
import { readMetrics } from '../src/io/metrics.js';
import { loadTrainConfig } from '../src/train/config.js';
import { Progress } from '../src/train/progress.js';
import { loadResumeConfig } from '../src/train/resume.js';
import { runTrain } from '../src/train/run.js';
import { CoopWorld } from './helpers/coop-group.js';
import { tempDir } from './helpers/tmp.js';
import { modelConfig } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { formatBytes } from '../src/util/format.js';
import { ADAMW_DEFAULTS } from '../src/optim/adamw.js';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const quiet = { log: () => {}, progress: new Progress(process.stderr, 1e9, false) };
const root = tempDir('adabatch-fsdp-ckpt-');

function sets(runDir: string, strategy: 'ddp' | 'fsdp'): string[] {
  return [
    `run_dir=${runDir}`,
    'model.preset=tiny',
    'model.n_layers=2',
    'model.seq_len=32',
    'model.tie_embeddings=true',
    'data={synthetic: {phrases: 12, phrase_len: 5}}',
    'batch={schedule: norm, eta: 0.5, initial: 8, max: 64, max_micro: 2}',
    'budget.samples=160',
    'eval.every_samples=64',
    'eval.windows=4',
    'threads=1',
    `parallel.strategy=${strategy}`,
  ];
}

/** Runs the same config on J cooperative ranks (J = 1: a plain local group). */
async function onRanks<T>(J: number, fn: (group: ProcessGroup, backend: ReturnType<typeof createBackend>) => Promise<T>): Promise<T[]> {
  const backend = createBackend('cpu', { threads: 1 });
  if (J === 1) return [await fn(new LocalGroup(backend), backend)];
  const world = new CoopWorld(backend, J);
  return Promise.all(world.groups.map((g) => fn(g, backend)));
}

test('FSDP on 2 ranks writes a sharded checkpoint that verifies, consolidates, and resumes on 1 and 4 ranks', async () => {
  const run = join(root, 'fsdp2');
  let steps = 0;
  await onRanks(2, (group, backend) => runTrain(loadTrainConfig(undefined, sets(run, 'fsdp')), { ...quiet, group, backend, shouldStop: () => group.rank === 0 && ++steps >= 4 }));
  const ckDir = join(run, 'checkpoints');
  const [name] = readdirSync(ckDir).filter((n) => n.startsWith('step-'));
  const dir = join(ckDir, name!);
  const files = readdirSync(dir).sort();
  assert.deepEqual(files, ['checksums.json', 'config.json', 'model-shard-00000-of-00002.safetensors', 'model-shard-00001-of-00002.safetensors', 'optimizer-shard-00000-of-00002.safetensors', 'optimizer-shard-00001-of-00002.safetensors', 'shard_index.json', 'trainer_state.json']);
  const m = verifyCheckpoint(dir);
  assert.equal(m.layout, 'sharded');
  assert.equal(m.ranks, 2);
  const state = readCheckpoint(dir);
  assert.equal(state.trainerState.step, 4);

  // `adabatch checkpoint consolidate` writes one Hugging Face-named model.safetensors.
  const out = join(root, 'consolidated');
  const r = spawnSync(process.execPath, [BIN, 'checkpoint', 'consolidate', dir, '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const hf = loadHfModel(out);
  for (const [n, t] of state.model) assert.deepEqual(hf.tensors.get(n), t, `consolidated ${n}`);
  assert.deepEqual(readCheckpoint(out).optimizer, state.optimizer, 'the moments survive consolidation');

  // Resume on M = 1 (DDP/replica) and M = 4 (FSDP): the loaded state is exactly the consolidated one.
  for (const [M, strategy] of [[1, 'ddp'], [4, 'fsdp']] as const) {
    const copy = join(root, `resume-${M}`);
    spawnSync('cp', ['-r', run, copy]);
    const resumed = await onRanks(M, async (group, backend) => {
      const cfg = loadResumeConfig(copy, undefined, []);
      // The layout is not part of the trajectory's state: a run may move to another strategy.
      return runTrain({ ...cfg, parallel: { ...cfg.parallel, strategy } }, { ...quiet, group, backend, resume: true });
    });
    assert.ok(resumed.every((s) => s.resumedFrom === join(copy, 'checkpoints', name!)), `M=${M}: resumed from the sharded checkpoint`);
    const rows = readMetrics(join(copy, 'metrics.jsonl'));
    assert.equal(rows.at(-1)!.samples, 160, `M=${M}: ran to the budget`);
    assert.equal(rows[4]!.step, 5, `M=${M}: continued after step 4`);
    assert.ok(rows.slice(4).every((row) => Number.isFinite(row.loss as number)));
  }
});

test('loading a sharded checkpoint restores parameters and moments bit for bit on any rank count', async () => {
  const dir = readLatestCheckpoint(join(root, 'fsdp2', 'checkpoints'))!.entry.dir;
  const data = readCheckpoint(dir);
  const { FsdpEngine } = await import('../src/parallel/fsdp-engine.js');
  const { ReplicaEngine } = await import('../src/parallel/replica-engine.js');
  const { Llama } = await import('../src/model/llama.js');
  const { engineStateOf, parseTrainerState } = await import('../src/train/checkpointer.js');
  const { tensorsWithPrefix } = await import('../src/io/checkpoint.js');
  for (const M of [1, 3, 4]) {
    const got = await onRanks(M, async (group, backend) => {
      const model = new Llama(backend, data.config);
      const e = M === 1 ? new ReplicaEngine(backend, model, group, ADAMW_DEFAULTS) : new FsdpEngine(backend, model, group, ADAMW_DEFAULTS);
      e.loadState(engineStateOf(data, parseTrainerState(data.trainerState, data.dir)));
      const params = e instanceof FsdpEngine ? await e.gatherParams() : (e.replica.params.toHost() as Map<string, Float32Array>);
      return { params, step: e.optimizer.step };
    });
    for (const g of got) {
      for (const [n, t] of data.model) assert.deepEqual(g.params.get(n), t, `M=${M}: ${n}`);
      assert.equal(g.step, data.trainerState.adamw_step);
    }
  }
  assert.ok(tensorsWithPrefix(data.optimizer!, 'exp_avg.').size > 0);
});

test('a damaged shard is refused by name', () => {
  const dir = readLatestCheckpoint(join(root, 'fsdp2', 'checkpoints'))!.entry.dir;
  const copy = join(root, 'damaged');
  spawnSync('cp', ['-r', dir, copy]);
  const shard = join(copy, 'model-shard-00001-of-00002.safetensors');
  writeFileSync(shard, 'garbage');
  assert.throws(() => readCheckpoint(copy), /model-shard-00001-of-00002\.safetensors: size is 7 bytes/);
  const r = spawnSync(process.execPath, [BIN, 'checkpoint', 'verify', copy], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /model-shard-00001-of-00002\.safetensors/);
});

test('FSDP refuses schedules it cannot serve, and reports the memory of unsharded accumulation', async () => {
  const cfg = (name: string, batch: string, extra: string[] = []) =>
    loadTrainConfig(undefined, [...sets(join(root, name), 'fsdp'), 'budget.samples=16', `batch=${batch}`, ...extra]);
  const onTwo = (c: ReturnType<typeof cfg>, log: (l: string) => void = () => {}) => onRanks(2, (group, backend) => runTrain(c, { ...quiet, log, group, backend }));
  // The inner-product family needs ⟨g_j, ḡ⟩ with ḡ whole on every rank.
  await assert.rejects(onTwo(cfg('refuse-ip', '{schedule: inner_product, theta: 0.9, initial: 8, max: 64, max_micro: 2}')), /needs ⟨g_j, ḡ⟩, which FSDP does not provide; use parallel\.strategy: ddp/);
  // per-sample needs each rank's accumulated ‖g_j‖²: refused without unsharded accumulation, naming the option.
  const perSample = '{schedule: norm, estimator: per-sample, eta: 0.5, initial: 8, max: 64, max_micro: 2}';
  await assert.rejects(onTwo(cfg('refuse-ps', perSample)), /under FSDP set parallel\.unsharded_accumulation: true/);
  // With it, the run goes and its log says what the full local gradient costs per rank.
  const lines: string[] = [];
  await onTwo(cfg('unsharded', perSample, ['parallel.unsharded_accumulation=true']), (l) => lines.push(l));
  const line = lines.find((l) => l.includes('unsharded accumulation'));
  assert.ok(line, lines.join('\n'));
  // Closed form: every unit padded to a multiple of J = 2 elements, 4 bytes each.
  const layout = buildLayout(modelConfig('tiny', { n_layers: 2, seq_len: 32, tie_embeddings: true }));
  assert.ok(lines.some((l) => l.includes(`(${(layout.paramCount / 1e6).toFixed(2)}M parameters`)), 'the test computes the layout of the model that ran');
  const bytes = 4 * layout.units.reduce((a, u) => a + 2 * Math.ceil(u.size / 2), 0);
  assert.match(line!, new RegExp(`\\(${formatBytes(bytes).replace('.', '\\.')} per rank\\)`));
});

test('every optimizer: FSDP on 2 ranks, stopped and resumed from its sharded checkpoint, ends bit-identical to a straight run', async () => {
  for (const optim of ['lamb', 'adagrad', 'adagrad_norm', 'muon'] as const) {
    const cfgSets = (dir: string): string[] => [...sets(dir, 'fsdp'), `optim.name=${optim}`, 'batch={schedule: constant, batch: 8, max_micro: 2}', 'budget.samples=64'];
    const straight = join(root, `straight-${optim}`);
    const [a] = await onRanks(2, (group, backend) => runTrain(loadTrainConfig(undefined, cfgSets(straight)), { ...quiet, group, backend }));
    const split = join(root, `split-${optim}`);
    let steps = 0;
    await onRanks(2, (group, backend) => runTrain(loadTrainConfig(undefined, cfgSets(split)), { ...quiet, group, backend, shouldStop: () => group.rank === 0 && ++steps >= 3 }));
    const [b] = await onRanks(2, (group, backend) => runTrain(loadResumeConfig(split, undefined, []), { ...quiet, group, backend, resume: true }));
    assert.ok(b!.resumedFrom, `${optim}: resumed`);
    const ca = readCheckpoint(a!.checkpoint!);
    const cb = readCheckpoint(b!.checkpoint!);
    assert.equal(ca.manifest.layout, 'sharded');
    for (const [n, t] of ca.model) assert.deepEqual(cb.model.get(n), t, `${optim}: parameter ${n}`);
    assert.ok(ca.optimizer!.size > 0 || optim === 'adagrad_norm', `${optim}: state tensors saved`);
    for (const [n, t] of ca.optimizer!) assert.deepEqual(cb.optimizer!.get(n), t, `${optim}: state ${n}`);
    assert.deepEqual(cb.trainerState.optimizer_scalars, ca.trainerState.optimizer_scalars);
  }
});

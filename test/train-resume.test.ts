/**
 * Checkpoints and exact resume: N steps + stop + resume + N steps equals 2N straight steps bit for
 * bit (parameters, moments and metrics rows apart from wall-clock fields), also mid-ramp of the norm
 * test; SIGINT writes a checkpoint and exits cleanly; SIGKILL during a checkpoint write leaves the
 * previous one loadable.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gemmConfig } from '../src/backend/cpu/index.js';
import { latestValidCheckpoint, readCheckpoint, readLatestCheckpoint } from '../src/io/checkpoint.js';
import { readMetrics } from '../src/io/metrics.js';
import { Progress } from '../src/train/progress.js';
import { loadTrainConfig } from '../src/train/config.js';
import { loadResumeConfig } from '../src/train/resume.js';
import { runTrain } from '../src/train/run.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './helpers/tmp.js';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const WALL_CLOCK = ['tok_per_s', 'step_time_s', 'elapsed_s', 'overhead_s', 'stats_s', 'eval_s'];
const quiet = { log: () => {}, progress: new Progress(process.stderr, 1e9, false) };

function tmp(): string {
  return tempDir('adabatch-resume-');
}

function baseSets(runDir: string, extra: string[] = []): string[] {
  return [
    `run_dir=${runDir}`,
    'model.preset=tiny',
    'model.n_layers=2',
    'model.seq_len=32',
    'data={synthetic: {phrases: 16, phrase_len: 6}}',
    'batch={schedule: norm, eta: 0.5, initial: 4, max: 64, max_micro: 8}',
    'budget.samples=240',
    'eval.every_samples=64',
    'eval.windows=8',
    'lr.lr=0.003',
    'threads=1',
    ...extra,
  ];
}

function stripClock(rows: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  return rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !WALL_CLOCK.includes(k))));
}

const BF16 = gemmConfig().bf16;

for (const precision of ['f32', 'bf16'] as const) {
  test(`N steps + resume + N steps is bit-identical to 2N steps, mid-ramp of the norm test (precision ${precision})`, { skip: precision === 'bf16' && !BF16 && 'this CPU has no bf16 instructions (precision bf16 is refused here)' }, async () => {
    const sets = (runDir: string): string[] => baseSets(runDir, [`precision=${precision}`]);
    const straightDir = join(tmp(), 'straight');
    const a = await runTrain(loadTrainConfig(undefined, sets(straightDir)), quiet);
    assert.ok(a.batchChanges.length >= 2, `the batch grows during the run (${JSON.stringify(a.batchChanges)})`);

    const resumedDir = join(tmp(), 'resumed');
    let steps = 0;
    const stopAt = a.batchChanges[1]!.step + 1; // after the first growth: resume mid-ramp
    const first = await runTrain(loadTrainConfig(undefined, sets(resumedDir)), { ...quiet, shouldStop: () => ++steps >= stopAt });
    assert.ok(first.stoppedEarly && first.steps === stopAt, `stopped after ${first.steps} steps`);
    const b = await runTrain(loadResumeConfig(resumedDir, undefined, []), { ...quiet, resume: true });
    assert.equal(b.resumedFrom !== null, true);
    assert.equal(b.steps, a.steps);

    const ca = readCheckpoint(a.checkpoint!);
    const cb = readCheckpoint(b.checkpoint!);
    for (const [name, t] of ca.model) assert.deepEqual(cb.model.get(name), t, `parameter ${name} is bit-identical`);
    for (const [name, t] of ca.optimizer!) assert.deepEqual(cb.optimizer!.get(name), t, `optimizer ${name} is bit-identical`);
    assert.deepEqual(cb.trainerState.schedule, ca.trainerState.schedule);
    const ra = stripClock(readMetrics(join(straightDir, 'metrics.jsonl')));
    const rb = stripClock(readMetrics(join(resumedDir, 'metrics.jsonl')));
    assert.equal(rb.length, ra.length);
    assert.deepEqual(rb, ra, 'identical metrics rows apart from wall-clock fields');
  });
}

test('resume refuses a changed config naming the field; a run without checkpoints starts afresh', async () => {
  const dir = join(tmp(), 'run');
  let n = 0;
  await runTrain(loadTrainConfig(undefined, baseSets(dir, ['checkpoint.at_end=false'])), { ...quiet, shouldStop: () => n++ >= 1 });
  // Stopped early always checkpoints, even with at_end=false.
  assert.ok(latestValidCheckpoint(join(dir, 'checkpoints')));
  assert.throws(() => loadResumeConfig(dir, undefined, ['model.d_model=64']), (e: Error) => e instanceof UserError && /model\.d_model: the run has .* you gave 64/.test(e.message));
  assert.throws(() => loadResumeConfig(dir, undefined, ['lr.lr=0.1']), /lr\.lr: the run has 0\.003, you gave 0\.1/);
  assert.doesNotThrow(() => loadResumeConfig(dir, undefined, ['budget.samples=300', 'eval.every_samples=32']));
  assert.throws(() => loadResumeConfig(join(dir, 'nope'), undefined, []), /does not exist/);
  rmSync(join(dir, 'checkpoints'), { recursive: true });
  const afresh = await runTrain(loadResumeConfig(dir, undefined, []), { ...quiet, resume: true });
  assert.equal(afresh.resumedFrom, null, 'no checkpoint: the run starts afresh from its saved config');
  assert.equal(readMetrics(join(dir, 'metrics.jsonl')).length, afresh.steps, 'the dead run\'s rows were dropped');
  await assert.rejects(runTrain(loadTrainConfig(undefined, baseSets(dir)), quiet), /already holds a run/);
});

function waitFor(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const tick = (): void => {
      if (pred()) resolve(true);
      else if (Date.now() - t0 > timeoutMs) resolve(false);
      else setTimeout(tick, 5);
    };
    tick();
  });
}

test('SIGINT stops after the step, writes a checkpoint and exits 0; --resume finishes the run', async () => {
  const dir = join(tmp(), 'sig');
  const args = baseSets(dir, ['budget.samples=100000']).flatMap((s) => ['--set', s]);
  const child = spawn(process.execPath, [BIN, 'train', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  assert.ok(await waitFor(() => readMetrics(join(dir, 'metrics.jsonl')).length >= 3, 60_000), `training started:\n${out}`);
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 0, out);
  assert.match(out, /SIGINT: stopping after the current step/);
  assert.match(out, /stopped early: continue with --resume/);
  const ck = readLatestCheckpoint(join(dir, 'checkpoints'));
  assert.ok(ck, 'a checkpoint was written');
  assert.equal(ck.entry.step, readMetrics(join(dir, 'metrics.jsonl')).length, 'the checkpoint covers every metrics row');
  const r = spawnSync(process.execPath, [BIN, 'train', '--resume', dir, '--set', 'budget.samples=400'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /resuming from/);
  assert.equal(readMetrics(join(dir, 'metrics.jsonl')).at(-1)!.samples, 400);
});

test('SIGKILL while a checkpoint is being written leaves the previous one intact; resume works', async () => {
  const dir = join(tmp(), 'kill');
  // A larger model makes each checkpoint write long enough to be caught in the middle.
  const args = baseSets(dir, ['model.preset=A', 'model.n_layers=4', 'model.seq_len=16', 'budget.samples=100000', 'checkpoint.every_samples=1', 'checkpoint.keep_last=2', 'eval.every_samples=0']).flatMap((s) => ['--set', s]);
  const ckDir = join(dir, 'checkpoints');
  let caught = false;
  for (let attempt = 0; attempt < 6 && !caught; attempt++) {
    rmSync(dir, { recursive: true, force: true });
    const child = spawn(process.execPath, [BIN, 'train', ...args], { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Wait for one complete checkpoint, then for the next write to start, and kill it there.
    await waitFor(() => latestValidCheckpoint(ckDir) !== null, 60_000);
    const midWrite = await waitFor(() => existsSync(ckDir) && readdirSync(ckDir).some((n) => n.startsWith('.tmp~')), 30_000);
    child.kill('SIGKILL');
    await exited;
    caught = midWrite && readdirSync(ckDir).some((n) => n.startsWith('.tmp~'));
  }
  assert.ok(caught, 'killed the process while a checkpoint write was in progress');
  const latest = latestValidCheckpoint(ckDir);
  assert.ok(latest, 'the previous checkpoint survives');
  readCheckpoint(latest.dir); // verifies every checksum
  const r = spawnSync(process.execPath, [BIN, 'train', '--resume', dir, '--set', `budget.samples=${(latest.step ?? 0) * 4 + 8}`, '--set', 'checkpoint.every_samples=0'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!readdirSync(ckDir).some((n) => n.startsWith('.tmp~')), 'the interrupted write was cleaned up');
});

for (const optim of ['lamb', 'adagrad', 'adagrad_norm', 'muon'] as const) {
  test(`optim.name=${optim}: N steps + resume + N steps is bit-identical to 2N steps (state, step and scalars in the checkpoint)`, async () => {
    const sets = (runDir: string): string[] => baseSets(runDir, [`optim.name=${optim}`, 'batch={schedule: constant, batch: 8, max_micro: 8}', 'budget.samples=96']);
    const straightDir = join(tmp(), `straight-${optim}`);
    const a = await runTrain(loadTrainConfig(undefined, sets(straightDir)), quiet);
    const resumedDir = join(tmp(), `resumed-${optim}`);
    let steps = 0;
    await runTrain(loadTrainConfig(undefined, sets(resumedDir)), { ...quiet, shouldStop: () => ++steps >= 5 });
    const b = await runTrain(loadResumeConfig(resumedDir, undefined, []), { ...quiet, resume: true });
    assert.equal(b.steps, a.steps);
    const ca = readCheckpoint(a.checkpoint!);
    const cb = readCheckpoint(b.checkpoint!);
    assert.equal(ca.trainerState.optimizer, optim);
    for (const [name, t] of ca.model) assert.deepEqual(cb.model.get(name), t, `parameter ${name} is bit-identical`);
    assert.deepEqual([...cb.optimizer!.keys()].sort(), [...ca.optimizer!.keys()].sort());
    for (const [name, t] of ca.optimizer!) assert.deepEqual(cb.optimizer!.get(name), t, `optimizer ${name} is bit-identical`);
    assert.deepEqual(cb.trainerState.optimizer_scalars, ca.trainerState.optimizer_scalars);
    if (optim === 'adagrad_norm') assert.ok((ca.trainerState.optimizer_scalars as Record<string, number>).sum_sq_norm! > 0, 'the accumulator is saved');
    assert.deepEqual(stripClock(readMetrics(join(resumedDir, 'metrics.jsonl'))), stripClock(readMetrics(join(straightDir, 'metrics.jsonl'))));
    // Another optimizer cannot take this state over.
    assert.throws(() => loadResumeConfig(resumedDir, undefined, ['optim.name=adamw']), /optim\./);
  });
}

/**
 * The run directory and the command line under misuse and failure:
 * - one trainer per run directory (a lock naming its holder; a dead holder's lock is taken over);
 * - --resume: the checkpoint's config is the truth; no checkpoint yet starts afresh; corrupt ones are refused;
 * - --max-restarts: a rank killed twice, restarted from the newest checkpoint, ends where an
 *   uninterrupted run ends;
 * - files are written atomically and never through a symbolic link; a failed checkpoint write names its path;
 * - sizes that are valid alone but absurd for the run are refused up front, naming the field.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeAddonAvailable } from '../src/addon/addon.js';
import { readLatestCheckpoint } from '../src/io/checkpoint.js';
import { readMetrics } from '../src/io/metrics.js';
import { writeFileAtomic } from '../src/util/files.js';
import { LOCK_FILE, RunLock } from '../src/util/run-lock.js';
import { createNoiseScaleTracker, createSchedule } from '../src/batch/index.js';
import type { TrainEngine } from '../src/parallel/engine.js';
import { Checkpointer } from '../src/train/checkpointer.js';
import { loadTrainConfig } from '../src/train/config.js';
import { checkMemory } from '../src/train/memory-check.js';
import { modelConfig } from '../src/model/config.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './helpers/tmp.js';

const noAddon = nativeAddonAvailable() ? false : 'the native addon is not built (npm run build:native)';
const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const isWallClock = (k: string): boolean => k.endsWith('_s');
const tmp = (): string => join(tempDir('adabatch-reliability-'), 'run');

function sets(runDir: string, extra: string[] = []): string[] {
  return [`run_dir=${runDir}`, 'model.preset=tiny', 'model.n_layers=2', 'model.seq_len=32', 'data={synthetic: {}}', 'batch={schedule: constant, batch: 8, max_micro: 2}', 'budget.samples=48', 'eval.every_samples=0', 'checkpoint.every_samples=8', 'checkpoint.every_minutes=0', ...extra].flatMap((s) => ['--set', s]);
}

function train(args: string[], env: Record<string, string> = {}): { status: number | null; stderr: string; stdout: string } {
  const e = { ...process.env, ...env };
  if (!env.ADABATCH_TEST_FAULT) delete e.ADABATCH_TEST_FAULT;
  const r = spawnSync(process.execPath, [BIN, 'train', ...args], { encoding: 'utf8', env: e, timeout: 120_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

function finalParams(runDir: string): number[] {
  const ck = readLatestCheckpoint(join(runDir, 'checkpoints'));
  assert.ok(ck, `a checkpoint in ${runDir}`);
  return [...ck.data.model.values()].flatMap((a) => Array.from(a));
}

const rowsOf = (runDir: string) => readMetrics(join(runDir, 'metrics.jsonl')).map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !isWallClock(k))));

test('run lock: a second trainer on the same run directory is refused, naming the holder; a dead holder\'s lock is taken over', { skip: noAddon }, async () => {
  const dir = tmp();
  // A long run holds the directory.
  const first = spawn(process.execPath, [BIN, 'train', ...sets(dir, ['budget.samples=100000'])], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const t0 = Date.now();
    while (!existsSync(join(dir, 'metrics.jsonl')) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(join(dir, LOCK_FILE)), 'the running trainer holds the lock');
    const second = train(sets(dir));
    assert.equal(second.status, 2, second.stderr);
    assert.match(second.stderr, new RegExp(`run directory ${dir} is in use by another trainer \\(process ${first.pid} on ${hostname()}`));
    const resumed = train(['--resume', dir]);
    assert.equal(resumed.status, 2, 'resume is refused too while the run is alive');
    assert.match(resumed.stderr, /is in use by another trainer/);
  } finally {
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
  }
  // The holder died without releasing: its lock is stale, and the run resumes.
  assert.ok(existsSync(join(dir, LOCK_FILE)), 'SIGKILL left the lock behind');
  const after = train(['--resume', dir, '--set', 'budget.samples=16']);
  assert.equal(after.status, 0, after.stderr);
  assert.ok(!existsSync(join(dir, LOCK_FILE)), 'released at the end');
});

test('run lock in one process: held twice is refused; a lock of another host is refused with the file to remove', () => {
  const dir = tmp();
  mkdirSync(dir, { recursive: true });
  const lock = RunLock.acquire(dir);
  assert.throws(() => RunLock.acquire(dir), (e: Error) => e instanceof UserError && /\(this process\)/.test(e.message));
  lock.release();
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ host: 'elsewhere.example', pid: 1, started: 'then' }));
  assert.throws(() => RunLock.acquire(dir), new RegExp(`process 1 on elsewhere\\.example.*if that run is gone, remove ${join(dir, LOCK_FILE)}`));
  rmSync(join(dir, LOCK_FILE));
  RunLock.acquire(dir).release();
});

test('--resume: the checkpoint\'s config is the truth (a hand-edited config.yaml is refused field by field)', { skip: noAddon }, () => {
  const dir = tmp();
  const first = train(sets(dir, ['budget.samples=16']));
  assert.equal(first.status, 0, first.stderr);
  const path = join(dir, 'config.yaml');
  const original = readFileSync(path, 'utf8');
  writeFileSync(path, original.replace(/^seed: 0$/m, 'seed: 5').replace(/^( {2}lr: )0\.002$/m, '$10.5'));
  assert.notEqual(readFileSync(path, 'utf8'), original, 'the test edited config.yaml');
  const r = train(['--resume', dir, '--set', 'budget.samples=32']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /config\.yaml differs from the config of .*step-00000002/);
  assert.match(r.stderr, /seed: the checkpoint has 0, config\.yaml has 5/);
  assert.match(r.stderr, /lr\.lr: the checkpoint has 0\.002, config\.yaml has 0\.5/);
  // Allowed changes (the budget) still resume.
  writeFileSync(path, original);
  assert.equal(train(['--resume', dir, '--set', 'budget.samples=32']).status, 0);
});

test('--resume with no checkpoint yet starts the run afresh; checkpoints that do not verify are refused', { skip: noAddon }, () => {
  const dir = tmp();
  const straight = tmp();
  assert.equal(train(sets(straight)).status, 0);
  assert.equal(train(sets(dir)).status, 0);
  // A run killed before its first checkpoint: metrics rows but no checkpoint.
  rmSync(join(dir, 'checkpoints'), { recursive: true });
  const again = train(['--resume', dir]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /no checkpoint in .* yet: starting the run afresh from its saved config/);
  assert.deepEqual(rowsOf(dir), rowsOf(straight), 'the old rows are dropped and the run is the uninterrupted one');
  assert.deepEqual(finalParams(dir), finalParams(straight));
  // A checkpoint that is there but broken is not silently replaced.
  const kept = readdirSync(join(dir, 'checkpoints'));
  assert.ok(kept.length > 0);
  for (const name of kept) writeFileSync(join(dir, 'checkpoints', name, 'checksums.json'), '{');
  const broken = train(['--resume', dir]);
  assert.equal(broken.status, 2, broken.stderr);
  assert.match(broken.stderr, /cannot resume: no valid checkpoint in .*checkpoints \(the checkpoints there do not verify/);
});

test('--max-restarts: a rank killed twice restarts from the newest checkpoint and ends as an uninterrupted run', { skip: noAddon }, () => {
  const straight = tmp();
  assert.equal(train([...sets(straight), '--nproc', '2']).status, 0);
  const dir = tmp();
  // Rank 1's worker exits at the 3rd step of each attempt: steps 3 and 5 of the run; the third attempt finishes.
  const r = train([...sets(dir), '--nproc', '2', '--max-restarts', '2'], { ADABATCH_TEST_FAULT: '1:3:exit' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal((r.stderr.match(/adabatch: the run failed: rank 1 failed: its worker thread exited with code 3/g) ?? []).length, 2, r.stderr);
  assert.match(r.stderr, /restarting from the newest checkpoint in .* \(restart 1 of 2\)/);
  assert.match(r.stderr, /\(restart 2 of 2\)/);
  assert.deepEqual(finalParams(dir), finalParams(straight), 'the same parameters as the run that never failed');
  assert.deepEqual(rowsOf(dir), rowsOf(straight), 'the same metrics rows');
  // Out of restarts: the failure is reported and the exit status is non-zero.
  const out = train([...sets(tmp()), '--nproc', '2', '--max-restarts', '1'], { ADABATCH_TEST_FAULT: '1:3:exit' });
  assert.equal(out.status, 1, out.stderr);
  assert.match(out.stderr, /rank 1 failed: its worker thread exited with code 3/);
  // Config problems are not restarted.
  const bad = train([...sets(tmp(), ['lr.warmup=1e12']), '--max-restarts', '3']);
  assert.equal(bad.status, 2);
  assert.doesNotMatch(bad.stderr, /restarting/);
});

test('files of a run are written atomically and never through a symbolic link', { skip: noAddon }, () => {
  const dir = tmp();
  assert.equal(train(sets(dir, ['budget.samples=16'])).status, 0);
  // config.yaml replaced by a link to an outside file with the same text: resume (with a new budget)
  // rewrites config.yaml; the outside file must not change.
  const outside = join(tempDir('adabatch-outside-'), 'precious.yaml');
  const text = readFileSync(join(dir, 'config.yaml'), 'utf8');
  writeFileSync(outside, text);
  rmSync(join(dir, 'config.yaml'));
  symlinkSync(outside, join(dir, 'config.yaml'));
  const r = train(['--resume', dir, '--set', 'budget.samples=24']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(outside, 'utf8'), text, 'nothing was written through the link');
  assert.ok(!lstatSync(join(dir, 'config.yaml')).isSymbolicLink(), 'config.yaml is a file of the run again');
  assert.match(readFileSync(join(dir, 'config.yaml'), 'utf8'), /samples: 24/);
  // metrics.jsonl, appended to, refuses a link.
  const dir2 = tmp();
  mkdirSync(dir2, { recursive: true });
  symlinkSync(outside, join(dir2, 'metrics.jsonl'));
  const linked = train(sets(dir2, ['budget.samples=8']));
  assert.notEqual(linked.status, 0);
  assert.equal(readFileSync(outside, 'utf8'), text);
  // A write that cannot happen names the path and leaves the old file as it was.
  const target = join(tempDir('adabatch-atomic-'), 'file.txt');
  writeFileAtomic(target, 'old');
  assert.throws(() => writeFileAtomic(join(target, 'below-a-file.txt'), 'x'), (e: Error) => e instanceof UserError && e.message.includes(join(target, 'below-a-file.txt')) && /a parent is not a directory \(ENOTDIR\)/.test(e.message));
  assert.equal(readFileSync(target, 'utf8'), 'old');
});

test('sizes valid alone but absurd for the run are refused up front, naming the field', { skip: noAddon }, () => {
  const cases: Array<[string[], RegExp]> = [
    [['eval.windows=100000000'], /eval\.windows is 100000000: at seq_len 32 .* at most \d+ windows/],
    [['lr.warmup=1e12'], /lr\.warmup is 1000000000000 samples, longer than the whole budget of 48 samples/],
    [['threads=100000'], /threads: at most 256 kernel threads per rank/],
    [['data={synthetic: {phrases: 0}}'], /data\.synthetic\.phrases: Too small/],
  ];
  for (const [extra, pattern] of cases) {
    const dir = tmp();
    const r = train(sets(dir, extra));
    assert.equal(r.status, 2, `${extra}: ${r.stderr}`);
    assert.match(r.stderr, pattern, extra.join(' '));
    assert.ok(!existsSync(dir), `${extra}: no run directory left behind`);
  }
  const nproc = train(['--nproc', '100000']);
  assert.equal(nproc.status, 2);
  assert.match(nproc.stderr, /--nproc 100000 would start 100000 ranks as threads of one process; at most 256/);
});

// A scan of every micro batch size down from a billion would not end: the timeout fails it.
test('memory check: the micro batch is bounded by the largest batch, and the fitting size is found by bisection', { skip: noAddon, timeout: 60_000 }, () => {
  // max_micro far above batch.max: the micro batch can never exceed 8, so this trains.
  const r = train(sets(tmp(), ['batch={schedule: constant, batch: 8, max_micro: 100000}', 'budget.samples=16']));
  assert.equal(r.status, 0, r.stderr);
  // A billion-sequence micro batch is judged at once (no scan), with the largest that fits.
  const mc = modelConfig('tiny');
  const o = { recompute: false, ranksInProcess: 1, shards: 1 };
  let message = '';
  assert.throws(() => checkMemory(mc, 1_000_000_000, o, 2 ** 30), (e: Error) => ((message = e.message), /the largest micro batch that fits is \d+/.test(e.message)));
  const fit = Number(/fits is (\d+)/.exec(message)![1]);
  assert.doesNotThrow(() => checkMemory(mc, fit, o, 2 ** 30));
  assert.throws(() => checkMemory(mc, fit + 1, o, 2 ** 30), /not enough memory/);
});

test('a checkpoint write that fails for the disk (full, read-only) is one message naming the path; earlier checkpoints stay', async () => {
  const runDir = tmp();
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', errno: -28 });
  const engine = { group: { rank: 0 }, optimizer: { name: 'adamw', step: 3, scalars: () => ({}) }, saveCheckpoint: () => Promise.reject(enospc) } as unknown as TrainEngine;
  const checkpointer = new Checkpointer(
    {
      runDir,
      config: { every_samples: 0, every_minutes: 0, keep_last: 2, at_end: true },
      engine,
      schedule: createSchedule({ schedule: 'constant', batch: 8 }),
      noise: createNoiseScaleTracker({ schedule: 'constant', batch: 8 }),
      modelConfig: modelConfig('tiny'),
      fullConfig: {},
      tokenizerJson: null,
      tokenizerHash: null,
      tokenIds: {},
      cursorAt: null,
      seed: 0,
    },
    0,
  );
  await assert.rejects(checkpointer.save({ step: 3, samples: 24, tokens: 768, skippedInARow: 0, elapsedS: 1 }, 1e-3), (e: Error) => e instanceof UserError && e.message === `cannot write the checkpoint ${join(runDir, 'checkpoints', 'step-00000003')}: the disk is full (ENOSPC)`);
  // A programming error is not dressed up as a disk problem.
  const bug = new TypeError('boom');
  (engine as unknown as { saveCheckpoint: () => Promise<never> }).saveCheckpoint = () => Promise.reject(bug);
  await assert.rejects(checkpointer.save({ step: 4, samples: 32, tokens: 1024, skippedInARow: 0, elapsedS: 1 }, 1e-3), (e: unknown) => e === bug);
});

test('the default config (no data section) resolves to the Brown corpus; a --set value that is not YAML is a UserError naming the key', () => {
  assert.equal((loadTrainConfig(undefined, []).data as { corpus?: string }).corpus, 'brown');
  assert.throws(() => loadTrainConfig(undefined, ['seed=[']), (e: Error) => e instanceof UserError && /^--set seed: the value is not valid YAML/.test(e.message));
});

/**
 * Faults in distributed training, through the command line with the test-only hook
 * ADABATCH_TEST_FAULT=<rank>:<step>:<kind> (src/train/fault-injection.ts): a rank that throws, exits, is killed
 * or hangs makes every rank stop and the command exit non-zero on its own, naming the failing rank
 * and its error (or the timeout); the last checkpoint stays valid and the run resumes from it to the
 * same parameters as a run that never failed.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeAddonAvailable } from '../src/addon/addon.js';
import { readLatestCheckpoint } from '../src/io/checkpoint.js';
import { readMetrics } from '../src/io/metrics.js';
import { mpiEnv, mpirunArgs, mpiSkipReason } from './helpers/ranks.js';
import { tempDir } from './helpers/tmp.js';

const noAddon = nativeAddonAvailable() ? false : 'the native addon is not built (npm run build:native)';
const noMpi = noAddon || mpiSkipReason() || false;
const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
/** Wall-clock fields (tok_per_s, step_time_s, comm_s, allreduce_s, …) differ between runs. */
const isWallClock = (k: string): boolean => k.endsWith('_s');

function sets(runDir: string): string[] {
  return [`run_dir=${runDir}`, 'model.preset=tiny', 'model.n_layers=2', 'model.seq_len=32', 'data={synthetic: {}}', 'batch={schedule: constant, batch: 8, max_micro: 2}', 'budget.samples=48', 'eval.every_samples=0', 'checkpoint.every_samples=16', 'checkpoint.every_minutes=0'].flatMap((s) => ['--set', s]);
}

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  seconds: number;
}

/** Runs `adabatch train` (under mpirun with `mpi` ranks); a run that does not end by itself is killed after 60 s. */
function train(args: string[], opts: { fault?: string; mpi?: number } = {}): Outcome {
  const env = mpiEnv(opts.fault ? { ADABATCH_TEST_FAULT: opts.fault } : {});
  if (!opts.fault) delete env.ADABATCH_TEST_FAULT;
  const t0 = performance.now();
  const r = opts.mpi
    ? spawnSync('mpirun', [...mpirunArgs(opts.mpi), process.execPath, BIN, 'train', ...args], { encoding: 'utf8', env, timeout: 60_000 })
    : spawnSync(process.execPath, [BIN, 'train', ...args], { encoding: 'utf8', env, timeout: 60_000 });
  return { status: r.status, signal: r.signal, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

function expectFailure(o: Outcome, pattern: RegExp, t: { diagnostic(m: string): void }): void {
  assert.equal(o.signal, null, `the command ended by itself (it was killed after 60 s):\n${o.stderr}`);
  assert.notEqual(o.status, 0, `non-zero exit:\n${o.stderr}`);
  assert.match(o.stderr, pattern);
  t.diagnostic(`exited with ${o.status} after ${o.seconds.toFixed(1)} s`);
}

const tmp = (): string => join(tempDir('adabatch-fault-'), 'run');

test('threads: a rank that throws stops every rank; the last checkpoint is valid and resumes to the uninterrupted result', { skip: noAddon }, (t) => {
  const straightDir = tmp();
  const straight = train([...sets(straightDir), '--nproc', '2']);
  assert.equal(straight.status, 0, straight.stderr);

  const dir = tmp();
  const o = train([...sets(dir), '--nproc', '2'], { fault: '1:3:throw' });
  expectFailure(o, /adabatch: rank 1 failed: Error: injected fault \(ADABATCH_TEST_FAULT\) on rank 1 at step 3/, t);
  assert.match(o.stderr, /other ranks:\n {2}rank 0: stopped: rank 1 failed: Error: injected fault/);
  const last = readLatestCheckpoint(join(dir, 'checkpoints'));
  assert.ok(last, 'a checkpoint survives the failure');
  assert.equal(last.data.trainerState.step, 2, 'the checkpoint of step 2 (written before the fault at step 3)');

  const resumed = train(['--resume', dir, '--nproc', '2']);
  assert.equal(resumed.status, 0, resumed.stderr);
  const a = readLatestCheckpoint(join(straightDir, 'checkpoints'))!.data;
  const b = readLatestCheckpoint(join(dir, 'checkpoints'))!.data;
  assert.equal(b.trainerState.step, 6);
  for (const [name, v] of a.model) assert.deepEqual(b.model.get(name), v, `${name} after resume equals the uninterrupted run`);
  const strip = (rows: Array<Record<string, unknown>>) => rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !isWallClock(k))));
  assert.deepEqual(strip(readMetrics(join(dir, 'metrics.jsonl'))), strip(readMetrics(join(straightDir, 'metrics.jsonl'))));
});

test('threads: a rank whose worker exits stops every rank, naming it', { skip: noAddon }, (t) => {
  expectFailure(train([...sets(tmp()), '--nproc', '2'], { fault: '1:3:exit' }), /adabatch: rank 1 failed: its worker thread exited with code 3 before finishing/, t);
});

test('threads: a rank that stops answering is caught by the collective timeout', { skip: noAddon }, (t) => {
  const o = train([...sets(tmp()), '--nproc', '2', '--dist-timeout', '2'], { fault: '1:3:hang' });
  expectFailure(o, /adabatch: rank 0: allReduce #\d+ \(f32 × \d+, avg\) timed out after 2 s waiting for rank\(s\) 1 \(the dist timeout\)/, t);
});

test('mpi: a rank that throws ends the job (MPI_Abort), naming the rank and its error', { skip: noMpi }, (t) => {
  const o = train(sets(tmp()), { fault: '1:3:throw', mpi: 2 });
  expectFailure(o, /adabatch: rank 1 of 2 failed: Error: injected fault \(ADABATCH_TEST_FAULT\) on rank 1 at step 3/, t);
  assert.match(o.stderr, /rank 1 calls MPI_Abort/);
});

test('mpi: a rank killed outright ends the job, and mpirun names it', { skip: noMpi }, (t) => {
  const dir = tmp();
  expectFailure(train(sets(dir), { fault: '1:3:kill', mpi: 2 }), /rank 1 .*exited on signal 9/, t);
  const last = readLatestCheckpoint(join(dir, 'checkpoints'));
  assert.equal(last?.data.trainerState.step, 2, 'the step-2 checkpoint is intact');
});

test('mpi: a rank that stops answering is caught by the collective timeout on its peer', { skip: noMpi }, (t) => {
  expectFailure(train([...sets(tmp()), '--dist-timeout', '2'], { fault: '1:3:hang', mpi: 2 }), /adabatch: rank 0: allReduce #\d+ .* timed out after 2 s \(the dist timeout\); rank 0 calls MPI_Abort/, t);
});

/**
 * `adabatch train` end to end on a tiny model and synthetic data, alone, with `--nproc N` or under
 * `mpirun -np N`: the metrics rows (wall-clock fields removed) and the final checkpoint's parameters.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readLatestCheckpoint } from '../../src/io/checkpoint.js';
import { readMetrics, type MetricsRow } from '../../src/io/metrics.js';
import { mpiEnv, mpirunArgs } from './ranks.js';
import { tempDir } from './tmp.js';

const BIN = fileURLToPath(new URL('../../../bin/adabatch.js', import.meta.url));

/** Wall-clock fields (tok_per_s, step_time_s, comm_s, allreduce_s, …) differ between runs. */
const isWallClock = (k: string): boolean => k.endsWith('_s');

export interface CliRun {
  rows: MetricsRow[];
  params: Float64Array;
  stderr: string;
}

/** `batch` is a `--set batch=…` value; `args` more arguments; `mpi` > 0 runs under mpirun with that many ranks. */
export function cliTrain(batch: string, args: string[], mpi = 0): CliRun {
  const runDir = join(tempDir('adabatch-cli-train-'), 'run');
  const sets = [`run_dir=${runDir}`, 'model.preset=tiny', 'model.n_layers=2', 'model.seq_len=32', 'data={synthetic: {phrases: 16, phrase_len: 6}}', batch, 'budget.samples=216', 'eval.every_samples=0', 'lr.lr=0.003'].flatMap((s) => ['--set', s]);
  const cmd = mpi ? 'mpirun' : process.execPath;
  const argv = mpi ? [...mpirunArgs(mpi), process.execPath, BIN, 'train', ...sets, ...args] : [BIN, 'train', ...sets, ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: mpiEnv(), timeout: 120_000 });
  assert.equal(r.status, 0, `${cmd} ${argv.join(' ')} failed:\n${r.stderr}`);
  const ck = readLatestCheckpoint(join(runDir, 'checkpoints'));
  assert.ok(ck, 'a final checkpoint was written');
  const rows = readMetrics(join(runDir, 'metrics.jsonl')).map((row) => Object.fromEntries(Object.entries(row).filter(([k]) => !isWallClock(k))) as MetricsRow);
  return { rows, params: Float64Array.from([...ck.data.model.values()].flatMap((a) => Array.from(a))), stderr: r.stderr };
}

/** Same batch decisions, losses (1e-5) and evaluation steps as the reference rows. */
export function checkDecisions(rows: MetricsRow[], ref: MetricsRow[], what: string): void {
  assert.equal(rows.length, ref.length, `${what}: steps`);
  rows.forEach((r, i) => {
    for (const k of ['batch_size', 'next_batch', 'test_passed', 'micro_batch'] as const) assert.equal(r[k], ref[i]![k], `${what}: step ${i + 1} ${k}`);
    const [a, b] = [r.test_stat as number | null, ref[i]!.test_stat as number | null];
    if (a === null || b === null) assert.equal(a, b, `${what}: step ${i + 1} test_stat`);
    else assert.ok(Math.abs(a - b) <= 1e-6 * Math.abs(b), `${what}: step ${i + 1} test_stat ${a} vs ${b}`);
    assert.ok(Math.abs((r.loss as number) - (ref[i]!.loss as number)) <= 1e-5, `${what}: step ${i + 1} loss`);
    assert.equal(typeof r.val_loss, typeof ref[i]!.val_loss, `${what}: step ${i + 1} evaluated`);
    if (typeof r.val_loss === 'number') assert.ok(Math.abs(r.val_loss - (ref[i]!.val_loss as number)) <= 1e-5, `${what}: step ${i + 1} val_loss ${r.val_loss} vs ${ref[i]!.val_loss}`);
  });
}


/**
 * Pieces the benchmarks share: medians, the machine's other load, option values, worker-thread ranks
 * of a benchmark module, timed `adabatch train` runs on 1 rank, on thread ranks (--nproc) or under
 * mpirun (ddp, fsdp), and the timed training step of the step benchmarks (step, webgpu-step).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createThreadGroup } from '../src/parallel/threads.js';
import { readMetrics, type MetricsRow } from '../src/io/metrics.js';
import type { Backend } from '../src/backend/backend.js';
import type { ModelConfig } from '../src/model/config.js';
import type { Llama, LlamaOptions } from '../src/model/llama.js';
import { stepProbe } from '../src/train/step-probe.js';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));

/** The median (the mean of the middle two for an even count). */
export function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/** A positive integer option value, or an error naming the benchmark and the option. */
export function positiveInt(bench: string, option: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench ${bench}: --${option} must be a positive integer, got '${value}'`);
  return n;
}

export function mpirunArgs(n: number): string[] {
  return ['--allow-run-as-root', '--oversubscribe', '-np', String(n)];
}

export const mpirunAvailable = (): boolean => spawnSync('mpirun', ['--version']).status === 0;

/** CPU-seconds the whole machine spent busy so far, and those of our waited-for children. */
function cpuClocks(): { machine: number; children: number } {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const busy = v.slice(0, 8).reduce((a, b) => a + b, 0) - v[3]! - v[4]!;
  // /proc/self/stat fields 16 and 17 (cutime, cstime): CPU of children that were waited for.
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return { machine: busy / 100, children: (Number(f[13]) + Number(f[14])) / 100 };
}

/**
 * Runs `n` worker threads of `moduleUrl` (a benchmark module that, as a worker, joins the thread
 * group `data.groupId` as rank `data.rank` and posts one result) and returns their results by rank.
 */
export async function onThreadRanks<T>(moduleUrl: string, n: number, data: Record<string, unknown>): Promise<T[]> {
  const group = createThreadGroup(n);
  try {
    return await Promise.all(
      Array.from({ length: n }, (_, rank) => {
        const w = new Worker(new URL(moduleUrl), { workerData: { ...data, groupId: group.id, rank } });
        return new Promise<T>((resolve, reject) => {
          w.once('message', resolve);
          w.once('error', reject);
        });
      }),
    );
  } finally {
    group.release();
  }
}

export interface TrainRun {
  /** Metrics rows of rank 0 after the first step (which warms up). */
  rows: MetricsRow[];
  /** The machine's busy cores not spent by this run, averaged over its wall time. */
  otherLoad: number;
}

/**
 * One `adabatch train` run of `steps` steps of a constant global batch on synthetic data, 1 kernel
 * thread per rank, no evaluation or checkpoints: alone (`ranks` 1), on `ranks` worker-thread ranks,
 * or under `mpirun -np ranks`. `extra` are more `--set` values.
 */
export function trainRun(bench: string, how: { ranks: number; mpi: boolean }, preset: string, batch: number, micro: number, steps: number, extra: string[] = []): TrainRun {
  const dir = mkdtempSync(join(tmpdir(), `adabatch-bench-${bench}-`));
  try {
    const sets = [
      `run_dir=${join(dir, 'run')}`,
      `model.preset=${preset}`,
      'data={synthetic: {}}',
      `batch={schedule: constant, batch: ${batch}, max_micro: ${micro}}`,
      `budget.samples=${batch * steps}`,
      'eval.every_samples=0',
      'checkpoint.at_end=false',
      'checkpoint.every_minutes=0',
      'threads=1',
      ...extra,
    ].flatMap((s) => ['--set', s]);
    const train = [BIN, 'train', ...sets];
    const before = cpuClocks();
    const t0 = performance.now();
    const r = how.mpi
      ? spawnSync('mpirun', [...mpirunArgs(how.ranks), process.execPath, ...train], { encoding: 'utf8' })
      : spawnSync(process.execPath, how.ranks > 1 ? [...train, '--nproc', String(how.ranks)] : train, { encoding: 'utf8' });
    const wall = (performance.now() - t0) / 1000;
    const after = cpuClocks();
    if (r.status !== 0) throw new Error(`bench ${bench}: adabatch train (${how.ranks} rank(s)${how.mpi ? ', mpirun' : ''}) failed (exit ${r.status}):\n${r.stderr}`);
    return {
      rows: readMetrics(join(dir, 'run', 'metrics.jsonl')).slice(1),
      otherLoad: Math.max(0, (after.machine - before.machine - (after.children - before.children)) / wall),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The numbers of field `key` over the rows (missing and null values left out). */
export const column = (rows: MetricsRow[], key: string): number[] => rows.map((x) => x[key]).filter((x): x is number => typeof x === 'number');

/**
 * One full training step as the step benchmarks time it: Llama.forwardBackward through a LocalReplica
 * with one micro-step of `batch` sequences, then AdamW.update (src/train/step-probe.ts, which
 * `adabatch plan` times too). `step()` draws fresh random token windows (as the PyTorch reference
 * does), uploads them outside the timed region, and returns the step's milliseconds up to a
 * synchronize; `loss()` reads the last step's mean loss.
 */
export function trainingStep(backend: Backend, config: ModelConfig, batch: number, options: LlamaOptions = {}): { model: Llama; step: () => Promise<number>; loss: () => number } {
  const probe = stepProbe(backend, config, batch, options);
  return { model: probe.model, step: () => probe.step(), loss: () => probe.loss() };
}

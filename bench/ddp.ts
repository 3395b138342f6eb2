/**
 * Data-parallel speed: `adabatch train` on preset B with the same global batch as one rank × 1
 * kernel thread, two worker-thread ranks × 1 thread (--nproc 2), and two MPI ranks × 1 thread
 * (mpirun -np 2), interleaved over rounds; tokens/s is the median over each run's steps after the
 * first. Plus the cost of the reductions themselves, per backend: all-reducing a full preset-B
 * gradient (every unit, as a DDP step does) with the ranks already in step, and the step's small
 * float64 scalar reduction.
 *
 *   npm run bench -- ddp [--preset B] [--steps 5] [--rounds 2] [--micro 4] [--no-mpi] [--json]
 *
 * "Other load" is the machine's busy CPU time not spent by our processes (from /proc/stat and the
 * waited-for children's rusage), in cores: speed ratios are only meaningful when it is near 0.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createBackend } from '../src/backend/registry.js';
import { bindProcessGroup } from '../src/parallel/group.js';
import type { Communicator } from '../src/parallel/native-communicator.js';
import { openMpiCommunicator } from '../src/parallel/mpi.js';
import { joinThreadCommunicator } from '../src/parallel/threads.js';
import { modelConfig } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { UnitBuffers } from '../src/model/params.js';
import { column, median, mpirunArgs, mpirunAvailable, onThreadRanks, positiveInt, trainRun } from './common.js';

export const summary = 'data parallelism: tokens/s of 2 ranks (threads, mpi) vs 1 rank on preset B, and reduction time per step';

const SELF = fileURLToPath(import.meta.url);

// ---- reductions alone (runs on each rank) ---------------------------------------------------------

interface ReduceResult {
  units: number;
  bytes: number;
  fullMs: number;
  scalarUs: number;
}

/** All-reduce (avg) of every unit of a preset's gradient, ranks synchronised by a barrier first. */
async function reduceBench(comm: Communicator, preset: string, reps: number): Promise<ReduceResult> {
  const backend = createBackend('cpu', { threads: 1 });
  const group = await bindProcessGroup(comm, backend);
  const layout = buildLayout(modelConfig(preset));
  const grads = new UnitBuffers(backend, layout);
  for (const t of grads.units) backend.fill(t, 0.001 * (group.rank + 1));
  const full: number[] = [];
  for (let r = 0; r < reps + 1; r++) {
    await group.barrier();
    const t0 = performance.now();
    for (const t of grads.units) await group.allReduce(t, 'avg');
    if (r > 0) full.push(performance.now() - t0);
  }
  const scalars: number[] = [];
  const values = new Float64Array(8).fill(group.rank);
  for (let r = 0; r < 201; r++) {
    await group.barrier();
    const t0 = performance.now();
    await group.allReduceScalars(values, 'sum');
    if (r > 0) scalars.push(performance.now() - t0);
  }
  grads.free();
  return { units: layout.units.length, bytes: layout.paramCount * 4, fullMs: median(full), scalarUs: median(scalars) * 1000 };
}

// A rank of the threads reduction benchmark (this module as a worker).
if (!isMainThread && (workerData as { ddpBench?: boolean } | null)?.ddpBench) {
  const { groupId, rank, preset, reps } = workerData as { groupId: number; rank: number; preset: string; reps: number };
  const comm = joinThreadCommunicator(groupId, rank, 600);
  const r = await reduceBench(comm, preset, reps);
  await comm.close();
  parentPort!.postMessage(r);
}

// A rank of the MPI reduction benchmark (this module under mpirun).
if (isMainThread && process.argv[1] === SELF && process.argv[2] === '--mpi-reduce-child') {
  const comm = openMpiCommunicator(600);
  const r = await reduceBench(comm, process.argv[3]!, Number(process.argv[4]));
  if (comm.rank === 0) console.log('RESULT ' + JSON.stringify(r));
  await comm.close();
}

async function reduceOnThreads(n: number, preset: string, reps: number): Promise<ReduceResult> {
  return (await onThreadRanks<ReduceResult>(import.meta.url, n, { ddpBench: true, preset, reps }))[0]!;
}

function reduceOnMpi(n: number, preset: string, reps: number): ReduceResult {
  const r = spawnSync('mpirun', [...mpirunArgs(n), process.execPath, SELF, '--mpi-reduce-child', preset, String(reps)], { encoding: 'utf8' });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`bench ddp: mpirun failed (exit ${r.status}):\n${r.stderr}`);
  return JSON.parse(line.slice(7)) as ReduceResult;
}

// ---- training runs -------------------------------------------------------------------------------

type Mode = '1 rank' | 'threads' | 'mpi';

interface ModeRun {
  mode: Mode;
  /** Per measured step (the first step of each run warms up and is left out). */
  stepS: number[];
  commS: number[];
  otherLoad: number;
}

function ddpRun(mode: Mode, preset: string, steps: number, micro: number, batch: number): ModeRun {
  const r = trainRun('ddp', { ranks: mode === '1 rank' ? 1 : 2, mpi: mode === 'mpi' }, preset, batch, micro, steps);
  return { mode, stepS: column(r.rows, 'step_time_s'), commS: column(r.rows, 'comm_s'), otherLoad: r.otherLoad };
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { preset: { type: 'string', default: 'B' }, steps: { type: 'string', default: '5' }, rounds: { type: 'string', default: '2' }, micro: { type: 'string', default: '4' }, 'no-mpi': { type: 'boolean' }, json: { type: 'boolean' } } });
  const opt = { preset: values.preset, steps: positiveInt('ddp', 'steps', values.steps), rounds: positiveInt('ddp', 'rounds', values.rounds), micro: positiveInt('ddp', 'micro', values.micro), json: values.json === true };
  const mpi = values['no-mpi'] !== true && mpirunAvailable();
  const batch = 2 * opt.micro; // one micro-step per rank on 2 ranks, two on one rank
  const mc = modelConfig(opt.preset);
  const log = (m: string): void => void (opt.json ? process.stderr : process.stdout).write(m + '\n');
  log(`bench ddp: preset ${opt.preset} (d ${mc.d_model}, ${mc.n_layers} layers, seq ${mc.seq_len}, vocab ${mc.vocab}), global batch ${batch} (micro ${opt.micro}), 1 kernel thread per rank, ${opt.steps} steps × ${opt.rounds} rounds${mpi ? '' : ' (no mpirun: threads only)'}`);

  const modes: Mode[] = ['1 rank', 'threads', ...(mpi ? (['mpi'] as const) : [])];
  const tokensPerStep = batch * mc.seq_len;
  const runs: ModeRun[] = [];
  for (let round = 0; round < opt.rounds; round++) {
    // Rotate the order, so no mode always runs first (or last) in a round.
    const order = modes.map((_, i) => modes[(i + round) % modes.length]!);
    for (const mode of order) {
      const r = ddpRun(mode, opt.preset, opt.steps, opt.micro, batch);
      runs.push(r);
      const step = median(r.stepS);
      log(`  round ${round + 1} ${mode.padEnd(7)} ${(tokensPerStep / step).toFixed(0).padStart(6)} tok/s, step ${step.toFixed(2)} s${r.commS.length ? `, in collectives ${(median(r.commS) * 1000).toFixed(1)} ms` : ''} (other load ${r.otherLoad.toFixed(2)} cores)`);
    }
  }
  // Medians over every measured step of every round; other load averaged over the runs.
  const agg = (mode: string) => {
    const rs = runs.filter((r) => r.mode === mode);
    const step = median(rs.flatMap((r) => r.stepS));
    const comm = rs.flatMap((r) => r.commS);
    return { mode, tok_per_s: tokensPerStep / step, step_s: step, comm_ms: comm.length ? median(comm) * 1000 : null, other_load: rs.reduce((s, r) => s + r.otherLoad, 0) / rs.length };
  };
  const base = agg('1 rank');
  const table = modes.map((m) => {
    const a = agg(m);
    return { ...a, speedup: a.tok_per_s / base.tok_per_s };
  });

  log(`reductions alone (preset ${opt.preset} gradient, ranks in step):`);
  const reductions: Array<{ backend: string } & ReduceResult> = [];
  reductions.push({ backend: 'threads', ...(await reduceOnThreads(2, opt.preset, 5)) });
  if (mpi) reductions.push({ backend: 'mpi', ...reduceOnMpi(2, opt.preset, 5) });
  for (const r of reductions) log(`  ${r.backend.padEnd(7)} all-reduce of ${r.units} units (${(r.bytes / 2 ** 20).toFixed(0)} MiB): ${r.fullMs.toFixed(1)} ms per step (${(r.bytes / (r.fullMs / 1000) / 1e9).toFixed(2)} GB/s of gradient); scalar reduction ${r.scalarUs.toFixed(0)} µs`);

  if (opt.json) {
    for (const t of table) console.log(JSON.stringify({ kind: 'train', preset: opt.preset, batch, ...t }));
    for (const r of reductions) console.log(JSON.stringify({ kind: 'reduce', preset: opt.preset, ...r }));
    return;
  }
  console.log('');
  console.log('| run | tok/s | step (s) | speedup | in collectives per step | other load |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const t of table) {
    const name = t.mode === '1 rank' ? '1 rank × 1 thread' : `2 ranks × 1 thread (${t.mode})`;
    console.log(`| ${name} | ${t.tok_per_s.toFixed(0)} | ${t.step_s.toFixed(2)} | ${t.speedup.toFixed(2)}× | ${t.comm_ms === null ? '—' : `${t.comm_ms.toFixed(1)} ms`} | ${t.other_load.toFixed(2)} |`);
  }
}

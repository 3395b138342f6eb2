/**
 * FSDP: speed and memory.
 *
 *   npm run bench -- fsdp [--preset B] [--steps 5] [--rounds 2] [--micro 4] [--no-mpi] [--json]
 *   npm run bench -- fsdp --memory [--preset B] [--ranks 2]
 *   npm run bench -- fsdp --memory --preset tinyllama --ranks 2 --recompute --steps 1
 *
 * Speed: `adabatch train` with the same global batch on 1 rank × 1 kernel thread and with FSDP on
 * 2 ranks × 1 thread (worker threads, and MPI when mpirun exists), interleaved over rounds; tokens/s
 * is the median over each run's steps after the first, and the all-gather and reduce-scatter seconds
 * per step come from the metrics rows (allgather_s, reduce_scatter_s; waiting for the peer included).
 *
 * Memory: J worker-thread ranks in this process, each with its own backend instance, so each rank's
 * bytes are measured by its backend's allocation counter: the state (parameters + gradients +
 * optimizer moments) right after setup, and the peak during training steps (activations, gathered
 * units, gradient scratch). Compared with the DDP replica's state and with the estimate.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createBackend } from '../src/backend/registry.js';
import { LocalGroup, type ProcessGroup } from '../src/dist/group.js';
import { createThreadGroup, joinThreadGroup } from '../src/dist/threads.js';
import { readMetrics } from '../src/io/metrics.js';
import { modelConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { estimateMemory, formatBytes } from '../src/model/memory.js';
import { initialParameters } from '../src/model/params.js';
import { ADAMW_DEFAULTS } from '../src/optim/adamw.js';
import { Rng } from '../src/util/rng.js';
import { ReplicaEngine } from '../src/train/engine.js';
import type { TrainEngine } from '../src/train/engine-api.js';
import { FsdpEngine } from '../src/train/fsdp.js';

export const summary = 'FSDP: tokens/s of 2 ranks vs 1 on preset B with all-gather/reduce-scatter time, and measured per-rank memory';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

// ---- memory (in-process ranks) --------------------------------------------------------------------

interface MemoryResult {
  strategy: 'ddp' | 'fsdp';
  ranks: number;
  stateBytes: number;
  peakBytes: number;
  estimate: number;
  stepS: number | null;
  /** FSDP: peak bytes of full-unit buffers in use at once (gathered parameters + open gradients). */
  gatheredPeak: number;
}

async function memoryRank(group: ProcessGroup, preset: string, strategy: 'ddp' | 'fsdp', micro: number, steps: number, recompute: boolean): Promise<MemoryResult> {
  const backend = createBackend('cpu', { threads: 1 });
  const cfg = modelConfig(preset);
  const model = new Llama(backend, cfg, { recompute });
  const base = backend.liveBytes();
  let engine: TrainEngine;
  if (strategy === 'fsdp') {
    const e = new FsdpEngine(backend, model, group, ADAMW_DEFAULTS);
    engine = e;
    // Initialise unit by unit (as the trainer does): the whole model never exists on the host.
    e.loadParams((u) => initialParameters(model.layout, 0, [u]));
  } else {
    const e = new ReplicaEngine(backend, model, group, ADAMW_DEFAULTS);
    e.replica.params.fromHost(initialParameters(model.layout, 0));
    engine = e;
  }
  const stateBytes = backend.liveBytes() - base;
  backend.resetPeak();
  const rng = new Rng(group.rank + 1);
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const windows = Int32Array.from({ length: micro * (cfg.seq_len + 1) }, () => rng.int(cfg.vocab));
    const t0 = performance.now();
    engine.beginStep();
    await engine.microStep(windows, micro, cfg.seq_len, 1 / group.size);
    await engine.finishStep({ localNorms: false, innerProducts: false });
    engine.update(1e-4, 1);
    times.push((performance.now() - t0) / 1000);
  }
  const peakBytes = backend.peakBytes() - base;
  const estimate = estimateMemory(cfg, micro, { recompute, shards: strategy === 'fsdp' ? group.size : 1 }).total;
  const gatheredPeak = engine instanceof FsdpEngine ? engine.memory().gatheredPeak : 0;
  engine.free();
  model.dispose();
  return { strategy, ranks: group.size, stateBytes, peakBytes, estimate, stepS: times.length ? median(times) : null, gatheredPeak };
}

if (!isMainThread && (workerData as { fsdpBench?: boolean } | null)?.fsdpBench) {
  const d = workerData as { groupId: number; rank: number; preset: string; micro: number; steps: number; recompute: boolean };
  const group = joinThreadGroup(d.groupId, d.rank, 3600);
  const r = await memoryRank(group, d.preset, 'fsdp', d.micro, d.steps, d.recompute);
  await group.close();
  parentPort!.postMessage(r);
}

async function fsdpMemory(ranks: number, preset: string, micro: number, steps: number, recompute: boolean): Promise<MemoryResult[]> {
  const group = createThreadGroup(ranks);
  try {
    return await Promise.all(
      Array.from({ length: ranks }, (_, rank) => {
        const w = new Worker(new URL(import.meta.url), { workerData: { fsdpBench: true, groupId: group.id, rank, preset, micro, steps, recompute } });
        return new Promise<MemoryResult>((resolve, reject) => {
          w.once('message', resolve);
          w.once('error', reject);
        });
      }),
    );
  } finally {
    group.release();
  }
}

// ---- speed (adabatch train) -----------------------------------------------------------------------

interface TrainRun {
  mode: string;
  tokPerS: number;
  allGatherS: number | null;
  reduceScatterS: number | null;
  otherLoad: number;
}

function busyCpu(): { machine: number; children: number } {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return { machine: (v.slice(0, 8).reduce((a, b) => a + b, 0) - v[3]! - v[4]!) / 100, children: (Number(f[13]) + Number(f[14])) / 100 };
}

function trainRun(mode: '1 rank' | 'fsdp threads' | 'fsdp mpi', preset: string, steps: number, micro: number): TrainRun {
  const dir = mkdtempSync(join(tmpdir(), 'adabatch-bench-fsdp-'));
  const batch = 2 * micro;
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
    ...(mode === '1 rank' ? [] : ['parallel.strategy=fsdp']),
  ].flatMap((s) => ['--set', s]);
  const train = [BIN, 'train', ...sets];
  const before = busyCpu();
  const t0 = performance.now();
  const r =
    mode === 'fsdp mpi'
      ? spawnSync('mpirun', ['--allow-run-as-root', '--oversubscribe', '-np', '2', process.execPath, ...train], { encoding: 'utf8' })
      : spawnSync(process.execPath, mode === 'fsdp threads' ? [...train, '--nproc', '2'] : train, { encoding: 'utf8' });
  const wall = (performance.now() - t0) / 1000;
  const after = busyCpu();
  if (r.status !== 0) throw new Error(`bench fsdp: ${mode} run failed (exit ${r.status}):\n${r.stderr}`);
  const rows = readMetrics(join(dir, 'run', 'metrics.jsonl')).slice(1);
  rmSync(dir, { recursive: true, force: true });
  const med = (k: string): number | null => {
    const v = rows.map((x) => x[k]).filter((x): x is number => typeof x === 'number');
    return v.length ? median(v) : null;
  };
  return { mode, tokPerS: med('tok_per_s')!, allGatherS: med('allgather_s'), reduceScatterS: med('reduce_scatter_s'), otherLoad: Math.max(0, (after.machine - before.machine - (after.children - before.children)) / wall) };
}

export async function run(argv: string[]): Promise<void> {
  const opt = { preset: 'B', steps: 5, rounds: 2, micro: 4, mpi: true, json: false, memory: false, ranks: 2, recompute: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench fsdp: ${a} needs a value`);
      return v;
    };
    if (a === '--preset') opt.preset = next();
    else if (a === '--steps') opt.steps = Number(next());
    else if (a === '--rounds') opt.rounds = Number(next());
    else if (a === '--micro') opt.micro = Number(next());
    else if (a === '--ranks') opt.ranks = Number(next());
    else if (a === '--no-mpi') opt.mpi = false;
    else if (a === '--memory') opt.memory = true;
    else if (a === '--recompute') opt.recompute = true;
    else if (a === '--json') opt.json = true;
    else throw new Error(`bench fsdp: unknown option '${a}' (options: --preset P, --steps N, --rounds N, --micro M, --ranks J, --memory, --recompute, --no-mpi, --json)`);
  }
  const out = (m: string): void => void (opt.json ? process.stderr : process.stdout).write(m + '\n');
  const cfg = modelConfig(opt.preset);

  if (opt.memory) {
    const micro = opt.preset === 'tinyllama' ? 1 : opt.micro;
    const steps = opt.preset === 'tinyllama' ? Math.min(opt.steps, 1) : 2;
    const ddpEstimate = estimateMemory(cfg, micro, { recompute: opt.recompute });
    out(`bench fsdp --memory: preset ${opt.preset} (${(cfg.vocab * cfg.d_model * (cfg.tie_embeddings ? 1 : 2) / 1e6).toFixed(0)}M embedding params), micro batch ${micro}, ${opt.ranks} ranks, ${steps} step(s)${opt.recompute ? ', recompute' : ''}`);
    out(`DDP estimate per rank: ${formatBytes(ddpEstimate.total)} (state ${formatBytes(ddpEstimate.params + ddpEstimate.grads + ddpEstimate.optimizer)}); ${opt.ranks} ranks in one process: ${formatBytes(ddpEstimate.total * opt.ranks)}`);
    const results: MemoryResult[] = [];
    if (opt.preset !== 'tinyllama') {
      const backend = createBackend('cpu', { threads: 1 });
      results.push(await memoryRank(new LocalGroup((d, s) => backend.copy(d, s)), opt.preset, 'ddp', micro, steps, opt.recompute));
    }
    const fsdp = await fsdpMemory(opt.ranks, opt.preset, micro, steps, opt.recompute);
    results.push(...fsdp);
    for (const r of results) {
      const line = { bench: 'fsdp-memory', preset: opt.preset, strategy: r.strategy, ranks: r.ranks, state_bytes: r.stateBytes, gathered_peak_bytes: r.gatheredPeak, peak_bytes: r.peakBytes, estimate_bytes: r.estimate, step_s: r.stepS };
      if (opt.json) console.log(JSON.stringify(line));
      else out(`${r.strategy.padEnd(4)} ${r.ranks} rank(s): state ${formatBytes(r.stateBytes).padStart(10)}   gathered units ${formatBytes(r.gatheredPeak).padStart(10)}   peak ${formatBytes(r.peakBytes).padStart(10)}   estimate ${formatBytes(r.estimate).padStart(10)}${r.stepS !== null ? `   step ${r.stepS.toFixed(1)} s` : ''}`);
    }
    return;
  }

  const mpi = opt.mpi && spawnSync('mpirun', ['--version']).status === 0;
  out(`bench fsdp: preset ${opt.preset}, global batch ${2 * opt.micro} (micro ${opt.micro}), 1 kernel thread per rank, ${opt.steps} steps × ${opt.rounds} rounds${mpi ? '' : ' (no mpirun: threads only)'}`);
  const modes: Array<'1 rank' | 'fsdp threads' | 'fsdp mpi'> = ['1 rank', 'fsdp threads', ...(mpi ? (['fsdp mpi'] as const) : [])];
  const runs: TrainRun[] = [];
  for (let round = 0; round < opt.rounds; round++) {
    for (const mode of modes.map((_, i) => modes[(i + round) % modes.length]!)) runs.push(trainRun(mode, opt.preset, opt.steps, opt.micro));
  }
  const one = median(runs.filter((r) => r.mode === '1 rank').map((r) => r.tokPerS));
  for (const mode of modes) {
    const rs = runs.filter((r) => r.mode === mode);
    const tok = median(rs.map((r) => r.tokPerS));
    const ag = rs.map((r) => r.allGatherS).filter((x): x is number => x !== null);
    const rsc = rs.map((r) => r.reduceScatterS).filter((x): x is number => x !== null);
    const line = { bench: 'fsdp', preset: opt.preset, mode, tok_per_s: tok, speedup: tok / one, allgather_ms_per_step: ag.length ? 1000 * median(ag) : null, reduce_scatter_ms_per_step: rsc.length ? 1000 * median(rsc) : null, other_load: median(rs.map((r) => r.otherLoad)) };
    if (opt.json) console.log(JSON.stringify(line));
    else out(`${mode.padEnd(13)} ${Math.round(tok).toString().padStart(6)} tok/s   ×${(tok / one).toFixed(2)}${line.allgather_ms_per_step !== null ? `   all-gather ${line.allgather_ms_per_step.toFixed(1)} ms/step   reduce-scatter ${line.reduce_scatter_ms_per_step!.toFixed(1)} ms/step` : ''}   other load ${line.other_load.toFixed(2)} cores`);
  }
}

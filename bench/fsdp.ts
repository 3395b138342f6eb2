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
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createBackend } from '../src/backend/registry.js';
import { bindProcessGroup } from '../src/parallel/group.js';
import type { Communicator } from '../src/parallel/native-communicator.js';
import { joinThreadCommunicator } from '../src/parallel/threads.js';
import { modelConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { estimateMemory } from '../src/model/memory.js';
import { formatBytes } from '../src/util/format.js';
import { initialParameters } from '../src/model/params.js';
import { ADAMW_DEFAULTS } from '../src/optim/adamw.js';
import { Rng } from '../src/util/rng.js';
import { ReplicaEngine } from '../src/parallel/replica-engine.js';
import type { TrainEngine } from '../src/parallel/engine.js';
import { FsdpEngine } from '../src/parallel/fsdp-engine.js';
import { column, median, mpirunAvailable, onThreadRanks, positiveInt, trainRun } from './common.js';

export const summary = 'FSDP: tokens/s of 2 ranks vs 1 on preset B with all-gather/reduce-scatter time, and measured per-rank memory';


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

async function memoryRank(comm: Communicator | null, preset: string, strategy: 'ddp' | 'fsdp', micro: number, steps: number, recompute: boolean): Promise<MemoryResult> {
  const backend = createBackend('cpu', { threads: 1 });
  const group = await bindProcessGroup(comm, backend);
  const cfg = modelConfig(preset);
  const model = new Llama(backend, cfg, { recompute });
  const base = backend.liveBytes();
  let engine: TrainEngine;
  if (strategy === 'fsdp') {
    const e = new FsdpEngine(backend, model, group, ADAMW_DEFAULTS);
    engine = e;
    // Initialise unit by unit (as the trainer does): the whole model never exists on the host.
    e.loadState({ params: (u) => initialParameters(model.layout, 0, [u]) });
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
    await engine.finishStep({ localNorms: false, innerProducts: false, microBatch: micro });
    await engine.update(1e-4, 1);
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
  const comm = joinThreadCommunicator(d.groupId, d.rank, 3600);
  const r = await memoryRank(comm, d.preset, 'fsdp', d.micro, d.steps, d.recompute);
  await comm.close();
  parentPort!.postMessage(r);
}

function fsdpMemory(ranks: number, preset: string, micro: number, steps: number, recompute: boolean): Promise<MemoryResult[]> {
  return onThreadRanks<MemoryResult>(import.meta.url, ranks, { fsdpBench: true, preset, micro, steps, recompute });
}

// ---- speed (adabatch train) -----------------------------------------------------------------------

type Mode = '1 rank' | 'fsdp threads' | 'fsdp mpi';

interface ModeRun {
  mode: Mode;
  /** Per measured step (the first step of each run warms up and is left out). */
  stepS: number[];
  allGatherS: number[];
  reduceScatterS: number[];
  otherLoad: number;
}

function fsdpRun(mode: Mode, preset: string, steps: number, micro: number): ModeRun {
  const how = { ranks: mode === '1 rank' ? 1 : 2, mpi: mode === 'fsdp mpi' };
  const r = trainRun('fsdp', how, preset, 2 * micro, micro, steps, mode === '1 rank' ? [] : ['parallel.strategy=fsdp']);
  return { mode, stepS: column(r.rows, 'step_time_s'), allGatherS: column(r.rows, 'allgather_s'), reduceScatterS: column(r.rows, 'reduce_scatter_s'), otherLoad: r.otherLoad };
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      preset: { type: 'string', default: 'B' },
      steps: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '2' },
      micro: { type: 'string', default: '4' },
      ranks: { type: 'string', default: '2' },
      memory: { type: 'boolean' },
      recompute: { type: 'boolean' },
      'no-mpi': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const int = (k: 'steps' | 'rounds' | 'micro' | 'ranks'): number => positiveInt('fsdp', k, values[k]);
  const opt = { preset: values.preset, steps: int('steps'), rounds: int('rounds'), micro: int('micro'), ranks: int('ranks'), memory: values.memory === true, recompute: values.recompute === true, json: values.json === true };
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
      results.push(await memoryRank(null, opt.preset, 'ddp', micro, steps, opt.recompute));
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

  const mpi = values['no-mpi'] !== true && mpirunAvailable();
  const tokensPerStep = 2 * opt.micro * cfg.seq_len;
  out(`bench fsdp: preset ${opt.preset}, global batch ${2 * opt.micro} (micro ${opt.micro}), 1 kernel thread per rank, ${opt.steps} steps × ${opt.rounds} rounds${mpi ? '' : ' (no mpirun: threads only)'}`);
  const modes: Mode[] = ['1 rank', 'fsdp threads', ...(mpi ? (['fsdp mpi'] as const) : [])];
  const runs: ModeRun[] = [];
  for (let round = 0; round < opt.rounds; round++) {
    // Rotate the order, so no mode always runs first (or last) in a round.
    for (const mode of modes.map((_, i) => modes[(i + round) % modes.length]!)) runs.push(fsdpRun(mode, opt.preset, opt.steps, opt.micro));
  }
  // Medians over every measured step of every round; other load averaged over the runs.
  const msPerStep = (v: number[]): number | null => (v.length ? 1000 * median(v) : null);
  const tokPerS = (mode: Mode): number => tokensPerStep / median(runs.filter((r) => r.mode === mode).flatMap((r) => r.stepS));
  const one = tokPerS('1 rank');
  for (const mode of modes) {
    const rs = runs.filter((r) => r.mode === mode);
    const tok = tokPerS(mode);
    const line = { bench: 'fsdp', preset: opt.preset, mode, tok_per_s: tok, speedup: tok / one, allgather_ms_per_step: msPerStep(rs.flatMap((r) => r.allGatherS)), reduce_scatter_ms_per_step: msPerStep(rs.flatMap((r) => r.reduceScatterS)), other_load: rs.reduce((a, r) => a + r.otherLoad, 0) / rs.length };
    if (opt.json) console.log(JSON.stringify(line));
    else out(`${mode.padEnd(13)} ${Math.round(tok).toString().padStart(6)} tok/s   ×${(tok / one).toFixed(2)}${line.allgather_ms_per_step !== null ? `   all-gather ${line.allgather_ms_per_step.toFixed(1)} ms/step   reduce-scatter ${line.reduce_scatter_ms_per_step!.toFixed(1)} ms/step` : ''}   other load ${line.other_load.toFixed(2)} cores`);
  }
}

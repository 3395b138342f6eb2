/**
 * `npm run bench -- optim [--preset B] [--threads 2] [--batch 2] [--rounds 3] [--json]`: the optimizer
 * step of every optimizer on the cpu backend, and the whole training step it belongs to.
 *
 * Per optimizer, one StepProbe (src/train/step-probe.ts, what `adabatch plan` times: a LocalReplica,
 * one micro-step of `batch` sequences of the preset's seq_len, then the optimizer's update):
 *   update   the optimizer's update alone (ms, up to a synchronize)
 *   step     forward + backward + update (ms)
 * Rounds alternate the optimizers (and their order) so machine noise hits all of them; each probe
 * takes one unmeasured step (its workspaces), then MEASURED steps and MEASURED updates, whose medians
 * are the round's values; reported: the median over rounds after a warm-up round. For Muon, Newton–Schulz alone is timed on every block
 * matrix of the model (NewtonSchulz.run, 5 steps, the shapes Muon orthogonalises each step) and
 * reported as a share of Muon's update and of its whole step.
 */
import { parseArgs } from 'node:util';
import { createBackend } from '../src/backend/registry.js';
import { modelConfig, PRESETS } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { OPTIMIZERS, optimConfigSchema, type OptimizerName } from '../src/optim/config.js';
import { isMuonMatrix } from '../src/optim/muon.js';
import { NewtonSchulz } from '../src/optim/newton-schulz.js';
import { stepProbe } from '../src/train/step-probe.js';
import { median, positiveInt } from './common.js';

export const summary = 'optimizer step time of each optimizer (AdamW, LAMB, AdaGrad, AdaGrad-Norm, Muon) on the cpu backend, and Muon\'s Newton–Schulz share';

/** Steps (and updates) measured per probe after its warm-up step; their median is the round's value. */
const MEASURED = 3;

interface Row {
  optimizer: OptimizerName;
  updateMs: number;
  stepMs: number;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { preset: { type: 'string', default: 'B' }, threads: { type: 'string', default: '2' }, batch: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' }, json: { type: 'boolean', default: false } },
  });
  const preset = values.preset!;
  if (!Object.hasOwn(PRESETS, preset)) throw new Error(`bench optim: unknown preset '${preset}'`);
  const threads = positiveInt('optim', '--threads', values.threads!);
  const batch = positiveInt('optim', '--batch', values.batch!);
  const rounds = positiveInt('optim', '--rounds', values.rounds!);
  const config = modelConfig(preset);
  const backend = createBackend('cpu', { threads });

  const times = new Map<OptimizerName, { update: number[]; step: number[] }>(OPTIMIZERS.map((n) => [n, { update: [], step: [] }]));
  // Round 0 warms up (workspaces, caches) and is not counted.
  for (let round = 0; round <= rounds; round++) {
    const order = round % 2 === 0 ? OPTIMIZERS : [...OPTIMIZERS].reverse();
    for (const name of order) {
      const probe = stepProbe(backend, config, batch, {}, optimConfigSchema.parse({ name }));
      try {
        await probe.step(); // the model's first step allocates its workspaces
        const steps: number[] = [];
        const updates: number[] = [];
        for (let i = 0; i < MEASURED; i++) steps.push(await probe.step());
        for (let i = 0; i < MEASURED; i++) updates.push(await probe.update());
        if (round > 0) {
          times.get(name)!.step.push(median(steps));
          times.get(name)!.update.push(median(updates));
        }
      } finally {
        probe.free();
      }
    }
  }
  const rows: Row[] = OPTIMIZERS.map((n) => ({ optimizer: n, updateMs: median(times.get(n)!.update), stepMs: median(times.get(n)!.step) }));
  const nsMs = newtonSchulzMs(backend, preset, rounds);
  backend.dispose?.();

  const adamw = rows.find((r) => r.optimizer === 'adamw')!;
  const muon = rows.find((r) => r.optimizer === 'muon')!;
  const result = {
    preset,
    threads,
    batch,
    tokens: batch * config.seq_len,
    rounds,
    rows: rows.map((r) => ({ ...r, updateVsAdamw: r.updateMs / adamw.updateMs, stepVsAdamw: r.stepMs / adamw.stepMs })),
    newtonSchulz: { ms: nsMs, shareOfMuonUpdate: nsMs / muon.updateMs, shareOfMuonStep: nsMs / muon.stepMs },
  };
  if (values.json) {
    console.log(JSON.stringify(result, null, 1));
    return;
  }
  console.log(`preset ${preset}, cpu backend, ${threads} thread(s), batch ${batch} × ${config.seq_len} tokens, median of ${rounds} rounds`);
  console.log('optimizer      update ms  vs AdamW   step ms  vs AdamW');
  for (const r of result.rows) console.log(`${r.optimizer.padEnd(13)} ${r.updateMs.toFixed(1).padStart(10)} ${r.updateVsAdamw.toFixed(2).padStart(9)} ${r.stepMs.toFixed(0).padStart(9)} ${r.stepVsAdamw.toFixed(3).padStart(9)}`);
  console.log(`Newton–Schulz (5 steps, every block matrix): ${nsMs.toFixed(0)} ms = ${(100 * result.newtonSchulz.shareOfMuonUpdate).toFixed(0)}% of Muon's update, ${(100 * result.newtonSchulz.shareOfMuonStep).toFixed(0)}% of its training step`);
}

/** Median ms of orthogonalising every matrix Muon orthogonalises in one step (random inputs). */
function newtonSchulzMs(backend: ReturnType<typeof createBackend>, preset: string, rounds: number): number {
  const layout = buildLayout(modelConfig(preset));
  const shapes = [...layout.byName.values()].filter((v) => isMuonMatrix(layout, v)).map((v) => v.shape as [number, number]);
  const inputs = new Map<string, ReturnType<typeof backend.alloc>>();
  for (const [r, c] of shapes) {
    const key = `${r}x${c}`;
    if (inputs.has(key)) continue;
    const t = backend.alloc([r * c]);
    backend.upload(t, Float32Array.from({ length: r * c }, (_, i) => Math.sin(i * 12.9898) * 0.01));
    inputs.set(key, t);
  }
  const ns = new NewtonSchulz(backend);
  const ms: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    const t0 = performance.now();
    for (const [r, c] of shapes) ns.run(inputs.get(`${r}x${c}`)!, r, c, 5);
    backend.synchronize();
    if (round > 0) ms.push(performance.now() - t0);
  }
  ns.free();
  for (const t of inputs.values()) backend.free(t);
  return median(ms);
}

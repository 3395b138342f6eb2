/**
 * The training loop's own cost, measured directly per step (not as a difference of two noisy
 * totals): data fetching and packing, planning, the batch-size decision, and metrics/progress output
 * are timed where they happen, next to the step's total time. Also the statistics the adaptive
 * schedule needs beyond clipping (micro-step norms, the decision) at test interval 1.
 *
 *   npm run bench -- train [--preset A] [--steps 30] [--micro 8] [--accum 2] [--threads N] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createNoiseScaleTracker, createSchedule } from '../src/batch/index.js';
import { createBackend } from '../src/backend/registry.js';
import { loadDataset } from '../src/data/dataset.js';
import { LocalGroup } from '../src/parallel/group.js';
import { MetricsWriter } from '../src/io/metrics.js';
import { modelConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { initialParameters } from '../src/model/params.js';
import { ADAMW_DEFAULTS } from '../src/optim/adamw.js';
import { ReplicaEngine } from '../src/parallel/replica-engine.js';
import { Progress } from '../src/train/progress.js';
import { Trainer } from '../src/train/trainer.js';

export const summary = 'training-loop overhead per step (data, schedule, metrics) and statistics overhead';

const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const sum = (a: number[]): number => a.reduce((s, v) => s + v, 0);

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { preset: { type: 'string', default: 'A' }, steps: { type: 'string', default: '30' }, micro: { type: 'string', default: '8' }, accum: { type: 'string', default: '2' }, threads: { type: 'string' }, json: { type: 'boolean' } } });
  const steps = Number(values.steps);
  const micro = Number(values.micro);
  const accum = Number(values.accum);
  const threads = values.threads ? Number(values.threads) : availableParallelism();
  const cfg = modelConfig(values.preset);
  const ds = await loadDataset({}, { seqLen: cfg.seq_len, seed: 0 });
  const mc = modelConfig(values.preset, { vocab: ds.tokenizer.vocabSize });
  const backend = createBackend('cpu', { threads });
  const model = new Llama(backend, mc);
  const engine = new ReplicaEngine(backend, model, new LocalGroup(backend), ADAMW_DEFAULTS);
  engine.replica.params.fromHost(initialParameters(model.layout, 0));
  // The norm test (microbatch estimator) at test interval 1, held at one batch size (initial = max),
  // so every step pays for the statistics and the decision and steps stay comparable.
  const batch = micro * accum;
  const batchCfg = { schedule: 'norm' as const, eta: 0.2, initial: batch, max: batch, max_micro: micro, test_interval: 1 };
  const schedule = createSchedule(batchCfg);
  const noise = createNoiseScaleTracker(batchCfg);
  const trainer = new Trainer(engine, schedule, ds.train, ds.validation, {
    seqLen: mc.seq_len,
    budgetSamples: batch * (steps + 3),
    lr: { schedule: 'cosine', lr: 4e-4, min_lr: 4e-5, warmup: 0.01, decay: 0.2 },
    lrScale: () => 1,
    clip: 1,
    maxMicroBatch: micro,
    maxBatch: batch,
    evalEverySamples: 0,
    evalWindows: 1,
    maxNonFinite: 3,
  });
  const dir = mkdtempSync(join(tmpdir(), 'adabatch-bench-'));
  const metrics = new MetricsWriter(join(dir, 'metrics.jsonl'));
  const devnull = Object.assign(Object.create(process.stderr) as NodeJS.WriteStream, { write: () => true, isTTY: false });
  const progress = new Progress(devnull, 0, false);
  const rows: Array<{ step: number; loop: number; out: number; stats: number }> = [];
  for (let i = 0; i < steps + 3; i++) {
    let out = 0;
    const rec = await trainer.step({
      noiseScale: (s) => noise.observe(s),
      onStep: (r, st) => {
        const t0 = performance.now();
        metrics.write(r.row);
        progress.update({ tokens: st.tokens, totalTokens: 1, step: st.step, loss: r.row.loss as number, batch: r.row.batch_size as number, tokPerS: 1, elapsedS: st.elapsedS }, true);
        out = (performance.now() - t0) / 1000;
      },
    });
    if (i >= 3) rows.push({ step: (rec.row.step_time_s as number) + out, loop: (rec.row.overhead_s as number) + out, out, stats: rec.row.stats_s as number });
  }
  metrics.close();
  rmSync(dir, { recursive: true, force: true });
  const total = sum(rows.map((r) => r.step));
  const result = {
    bench: 'train',
    preset: values.preset,
    threads,
    global_batch: batch,
    micro_batch: micro,
    accum_steps: accum,
    steps: rows.length,
    step_ms_median: 1000 * median(rows.map((r) => r.step)),
    loop_ms_median: 1000 * median(rows.map((r) => r.loop)),
    output_ms_median: 1000 * median(rows.map((r) => r.out)),
    stats_ms_median: 1000 * median(rows.map((r) => r.stats)),
    loop_fraction: sum(rows.map((r) => r.loop)) / total,
    stats_fraction: sum(rows.map((r) => r.stats)) / total,
    tok_per_s: (rows.length * batch * mc.seq_len) / total,
  };
  if (values.json) {
    console.log(JSON.stringify(result));
  } else {
    console.log(`preset ${values.preset}, ${threads} thread(s), global batch ${batch} = ${accum} × ${micro} × ${mc.seq_len} tokens, ${rows.length} measured steps`);
    console.log(`step time (median)         ${result.step_ms_median.toFixed(1)} ms   (${Math.round(result.tok_per_s)} tok/s)`);
    console.log(`loop's own cost (median)   ${result.loop_ms_median.toFixed(2)} ms   = ${(100 * result.loop_fraction).toFixed(2)}% of step time  (target < 3%)`);
    console.log(`  of which metrics+progress ${result.output_ms_median.toFixed(2)} ms`);
    console.log(`statistics + decision      ${result.stats_ms_median.toFixed(2)} ms   = ${(100 * result.stats_fraction).toFixed(2)}% of step time  (target ≤ 1%)`);
  }
  engine.free();
  model.dispose();
}

/**
 * `adabatch train` end to end on one process: resolve the config, load data and tokenizer, build the
 * model, check memory, run the loop with metrics and progress, and summarise.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { batchLayout, createNoiseScaleTracker, createSchedule, lrScaleFor } from '../batch/index.js';
import { createBackend } from '../backend/registry.js';
import type { Backend } from '../backend/backend.js';
import { loadDataset } from '../data/dataset.js';
import { SyntheticStream } from '../data/synthetic.js';
import { LocalGroup, type ProcessGroup } from '../dist/group.js';
import { MetricsWriter } from '../io/metrics.js';
import { modelConfig, type ModelConfig } from '../model/config.js';
import { Llama } from '../model/llama.js';
import { formatBytes } from '../model/memory.js';
import { initialParameters } from '../model/params.js';
import { UserError } from '../util/errors.js';
import type { TrainConfig } from './config.js';
import { ReplicaEngine } from './engine.js';
import { checkMemory } from './memory-check.js';
import { Progress } from './progress.js';
import { Trainer, type WindowSource } from './trainer.js';

export interface TrainSummary {
  runDir: string;
  steps: number;
  samples: number;
  tokens: number;
  trainLoss: number;
  valLoss: number | null;
  elapsedS: number;
  /** Steps at which the global batch changed: [step, samples seen before it, new batch]. */
  batchChanges: Array<{ step: number; samples: number; batch: number }>;
  initialBatch: number;
  finalBatch: number;
  stoppedEarly: boolean;
}

export interface RunOptions {
  group?: ProcessGroup;
  backend?: Backend;
  progress?: Progress;
  /** Checked between steps; true stops the run cleanly. */
  shouldStop?: () => boolean;
  log?: (msg: string) => void;
}

function defaultRunDir(): string {
  const d = new Date();
  const p = (n: number): string => String(n).padStart(2, '0');
  return join('runs', `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`);
}

interface Data {
  train: WindowSource;
  validation: WindowSource | null;
  vocab: number | null;
  tokenizerJson: string | null;
}

async function loadData(cfg: TrainConfig, seqLen: number, presetVocab: number, log: (m: string) => void): Promise<Data> {
  if ('synthetic' in cfg.data) {
    const syn = { vocab: presetVocab, phrases: cfg.data.synthetic.phrases, phrase_len: cfg.data.synthetic.phrase_len, seed: cfg.seed };
    return { train: new SyntheticStream(seqLen, syn), validation: new SyntheticStream(seqLen, syn, 2 ** 40), vocab: null, tokenizerJson: null };
  }
  const ds = await loadDataset(cfg.data, { seqLen, seed: cfg.seed, log });
  return { train: ds.train, validation: ds.validation, vocab: ds.tokenizer.vocabSize, tokenizerJson: JSON.stringify(ds.tokenizer.toJSON()) };
}

export async function runTrain(cfg: TrainConfig, opts: RunOptions = {}): Promise<TrainSummary> {
  const log = opts.log ?? ((m: string) => console.error(m));
  const progress = opts.progress ?? new Progress(process.stderr, cfg.log_every_s);
  const { preset, ...modelOverrides } = cfg.model;
  const base = modelConfig(preset, modelOverrides as Partial<ModelConfig>);
  const data = await loadData(cfg, base.seq_len, base.vocab, (m) => progress.log(m));
  let model_cfg = base;
  if (data.vocab !== null && data.vocab !== base.vocab) {
    if (modelOverrides.vocab !== undefined) throw new UserError(`model.vocab is ${base.vocab} but the tokenizer has ${data.vocab} tokens`);
    model_cfg = modelConfig(preset, { ...(modelOverrides as Partial<ModelConfig>), vocab: data.vocab });
    log(`model vocab set to the tokenizer's ${data.vocab} tokens`);
  }

  const group = opts.group ?? null;
  const ranks = group?.size ?? 1;
  const budgetSamples = cfg.budget.samples ?? Math.ceil(cfg.budget.tokens! / model_cfg.seq_len);
  const schedule = createSchedule(cfg.batch, { sampleBudget: budgetSamples });
  const layout = batchLayout(cfg.batch, ranks);
  try {
    schedule.validate(layout);
  } catch (e) {
    throw new UserError(`batch schedule '${schedule.name}': ${(e as Error).message}`);
  }
  const mem = checkMemory(model_cfg, cfg.batch.max_micro, { recompute: cfg.recompute, ranksInProcess: group?.kind === 'threads' ? ranks : 1, shards: 1 });

  const runDir = cfg.run_dir ?? defaultRunDir();
  if (existsSync(join(runDir, 'metrics.jsonl'))) throw new UserError(`run directory ${runDir} already holds a run (metrics.jsonl); choose another run_dir or resume it with --resume`);
  mkdirSync(runDir, { recursive: true });
  if (!group || group.rank === 0) {
    writeFileSync(join(runDir, 'config.yaml'), YAML.stringify({ ...cfg, run_dir: runDir }));
    if (data.tokenizerJson) writeFileSync(join(runDir, 'tokenizer.json'), data.tokenizerJson);
  }

  // One rank uses every core; several ranks in one process run one kernel thread each (DESIGN.md).
  const threads = cfg.threads ?? (group?.kind === 'threads' ? 1 : availableParallelism());
  const backend = opts.backend ?? createBackend(cfg.backend, { threads });
  const pg = group ?? new LocalGroup((dst, src) => backend.copy(dst, src));
  const model = new Llama(backend, model_cfg, { recompute: cfg.recompute });
  const engine = new ReplicaEngine(backend, model, pg, cfg.optim);
  engine.replica.params.fromHost(initialParameters(model.layout, cfg.seed));
  const paramM = (model.layout.paramCount / 1e6).toFixed(2);
  log(`model ${preset} (${paramM}M parameters, d ${model_cfg.d_model}, ${model_cfg.n_layers} layers, seq ${model_cfg.seq_len}) on ${backend.name} × ${backend.getThreads()} thread(s), ${ranks} rank(s); estimated memory ${formatBytes(mem.total)}`);
  log(`schedule ${schedule.name}; budget ${budgetSamples} samples (${(budgetSamples * model_cfg.seq_len / 1e6).toFixed(2)}M tokens); run directory ${runDir}`);

  const trainer = new Trainer(engine, schedule, data.train, data.validation, {
    seqLen: model_cfg.seq_len,
    budgetSamples,
    lr: cfg.lr,
    lrScale: lrScaleFor(cfg.batch),
    clip: cfg.optim.clip,
    maxMicroBatch: cfg.batch.max_micro,
    maxBatch: layout.maxBatch,
    evalEverySamples: cfg.eval.every_samples,
    evalWindows: cfg.eval.windows,
    maxNonFinite: cfg.max_nonfinite,
  });
  const metrics = !group || group.rank === 0 ? new MetricsWriter(join(runDir, 'metrics.jsonl')) : null;
  const noise = createNoiseScaleTracker(cfg.batch);
  const summary: TrainSummary = { runDir, steps: 0, samples: 0, tokens: 0, trainLoss: NaN, valLoss: null, elapsedS: 0, batchChanges: [], initialBatch: 0, finalBatch: 0, stoppedEarly: false };
  let lastBatch = 0;
  let lastVal: number | null = null;
  try {
    await trainer.run({
      log: (m) => progress.log(m),
      noiseScale: (s) => noise.observe(s),
      ...(opts.shouldStop && { shouldStop: opts.shouldStop }),
      onStep: (rec, st) => {
        metrics?.write(rec.row);
        const b = rec.row.batch_size as number;
        if (summary.initialBatch === 0) summary.initialBatch = b;
        if (b !== lastBatch && !(st.samples >= budgetSamples && b < lastBatch)) {
          summary.batchChanges.push({ step: st.step, samples: st.samples - b, batch: b });
          lastBatch = b;
        }
        if (typeof rec.row.val_loss === 'number') lastVal = rec.row.val_loss;
        summary.trainLoss = rec.row.loss as number;
        progress.update({ tokens: st.tokens, totalTokens: budgetSamples * model_cfg.seq_len, step: st.step, loss: rec.row.loss as number, batch: b, tokPerS: st.tokens / Math.max(1e-9, st.elapsedS), elapsedS: st.elapsedS, valLoss: lastVal }, rec.row.val_loss !== undefined);
      },
    });
  } finally {
    progress.finish();
    metrics?.close();
  }
  const st = trainer.state;
  Object.assign(summary, { steps: st.step, samples: st.samples, tokens: st.tokens, elapsedS: st.elapsedS, valLoss: lastVal, finalBatch: lastBatch, stoppedEarly: !trainer.done() });
  engine.free();
  model.dispose();
  return summary;
}

export function formatSummary(s: TrainSummary): string {
  const lines = [
    `run directory   ${s.runDir}${s.stoppedEarly ? '   (stopped early)' : ''}`,
    `steps           ${s.steps}`,
    `samples         ${s.samples} (${(s.tokens / 1e6).toFixed(2)}M tokens) in ${s.elapsedS.toFixed(1)} s (${Math.round(s.tokens / Math.max(1e-9, s.elapsedS))} tok/s)`,
    `train loss      ${s.trainLoss.toFixed(4)} (last step)`,
    `validation loss ${s.valLoss === null ? 'n/a' : `${s.valLoss.toFixed(4)} (perplexity ${Math.exp(s.valLoss).toFixed(2)})`}`,
  ];
  if (s.batchChanges.length > 1) {
    const growth = s.batchChanges.map((c) => `${c.batch} @ step ${c.step}`).join(' → ');
    lines.push(`batch size      ${s.initialBatch} → ${s.finalBatch}: ${growth}`);
  } else {
    lines.push(`batch size      ${s.initialBatch} (constant)`);
  }
  return lines.join('\n');
}

/** Names of run directories under `root` (for messages). */
export function listRuns(root = 'runs'): string[] {
  return existsSync(root) ? readdirSync(root) : [];
}

/**
 * `adabatch plan`: what a config will do before it trains — its trajectory by samples (batch, LR,
 * steps, tokens, time), the memory per rank, and the inconsistencies that would make the run fail
 * or differ from what the config says, each naming its field. It resolves the run with the
 * trainer's own functions (train/run.ts: the model, the budget, the schedule against the layout,
 * the memory layout; memory-check.ts; lr-rules.ts), without reading the data: the vocabulary comes
 * from the tokenizer file or the configured size.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { batchLayout, initialBatchOf, lrScaleFor, planBatch, StagewiseSchedule, type BatchPlan, type BatchSchedule } from '../batch/index.js';
import type { Backend } from '../backend/backend.js';
import { createBackend } from '../backend/registry.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { modelConfigFromHf, parseHfConfigText } from '../io/hf-config.js';
import type { ModelConfig } from '../model/config.js';
import { buildLayout } from '../model/layout.js';
import { lrScheduleProblems } from '../optim/lr.js';
import { UserError } from '../util/errors.js';
import type { TrainConfig } from './config.js';
import { lrRuleFindings } from './lr-rules.js';
import { availableMemoryBytes, checkMemory, checkTensorLimit, processEstimate, usesHostMemory } from './memory-check.js';
import { trajectory, type PlanRow, type Range } from './plan-trajectory.js';
import { budgetSamplesOf, checkBudgetSizes, memoryLayout, resolveModel, resolveSchedule } from './run.js';
import { stepProbe } from './step-probe.js';

export interface Finding {
  /** The config field to change (dotted), or null when the message names what is wrong. */
  field: string | null;
  message: string;
}

/** One step's parts as measured at the largest micro batch. */
export interface StepTiming {
  backend: string;
  threads: number;
  microBatch: number;
  /** Seconds of one micro-step (forward + backward) of microBatch sequences. */
  microStepS: number;
  /** Seconds of one optimizer update. */
  updateS: number;
}

export interface PlanOptions {
  /** J: data-parallel ranks. */
  ranks: number;
  /** Ranks sharing this process: J for thread ranks, 1 for one process per rank. */
  ranksInProcess: number;
  /**
   * The time estimate's step timing: measured on the configured backend with this many kernel
   * threads, one measured before, or null for no time estimate.
   */
  measure: number | StepTiming | null;
  /** Memory one process may use (default: what this machine has available). */
  availableBytes?: number;
}

export interface RunPlan {
  model: { name: string; params: number; d_model: number; n_layers: number; seq_len: number; vocab: number; vocabSource: string };
  layout: { ranks: number; strategy: string; maxMicro: number; largestMicro: number };
  schedule: { batch: string; fixed: boolean; lr: string; lrScaling: string };
  budget: { samples: number; tokens: number };
  steps: Range | null;
  seconds: Range | null;
  timing: StepTiming | null;
  memory: { perRankBytes: number; processBytes: number; availableBytes: number } | null;
  rows: PlanRow[];
  warnings: Finding[];
  errors: Finding[];
}

const FIXED = new Set(['constant', 'stagewise', 'ramp']);

/** The leading dotted field of a message ("lr.warmup is …"), when it starts with one. */
function fieldOf(message: string): string | null {
  return /^([a-z_]+(?:\.[a-z_0-9]+)+)\b/.exec(message)?.[1] ?? null;
}

/**
 * Runs one of the trainer's checks; its UserError becomes a finding (and the result null), naming
 * the field the message starts with, else `field`.
 */
async function attempt<T>(errors: Finding[], fn: () => T | Promise<T>, field: string | null = null): Promise<T | null> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    errors.push({ field: fieldOf(e.message) ?? field, message: e.message });
    return null;
  }
}

/** The findings of a config that does not parse: "invalid config:" then one "field: message" line each. */
export function configFindings(e: UserError): Finding[] {
  const lines = e.message.split('\n');
  if (lines.length < 2 || !/^invalid /.test(lines[0]!)) return [{ field: fieldOf(e.message), message: e.message }];
  return lines.slice(1).map((line) => ({ field: /^([\w.]+): /.exec(line)?.[1] ?? null, message: line }));
}

/** The size of the tokenizer a run trains when data.tokenizer names none (data/dataset.ts, DEFAULT_VOCAB). */
const TRAINED_TOKENIZER_VOCAB = 4096;

/**
 * The run's model without reading the data (train/run.ts, resolveModel): the vocabulary is the
 * tokenizer file's, or the size of the tokenizer the run will train (which may come out smaller on
 * a small corpus), or init_from's.
 */
export function planModel(cfg: TrainConfig): { model: ModelConfig; vocabSource: string } {
  const initFile = cfg.init_from === undefined ? null : join(cfg.init_from, 'config.json');
  const init = initFile === null ? null : { config: modelConfigFromHf(parseHfConfigText(readText(initFile), initFile)) };
  if ('synthetic' in cfg.data) return { model: resolveModel(cfg, null, init), vocabSource: 'the model’s: synthetic data' };
  const tok = cfg.data.tokenizer;
  if (tok.path !== undefined) return { model: resolveModel(cfg, loadTokenizer(tok.path).vocabSize, init), vocabSource: `tokenizer ${tok.path}` };
  if (init !== null && tok.vocab === undefined) return { model: resolveModel(cfg, null, init), vocabSource: 'init_from’s tokenizer' };
  return { model: resolveModel(cfg, tok.vocab ?? TRAINED_TOKENIZER_VOCAB, init), vocabSource: 'the tokenizer trained at the start: at most this' };
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`init_from: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Times one micro-step and one update at `microBatch` on the configured backend, each after a warm-up one. */
export async function measureStep(cfg: TrainConfig, model: ModelConfig, microBatch: number, threads: number): Promise<StepTiming> {
  const backend: Backend = createBackend(cfg.backend, { threads });
  try {
    const limit = backend.maxTensorBytes?.();
    if (limit !== undefined) checkTensorLimit(model, microBatch, limit, `backend ${backend.name}`);
    const probe = stepProbe(backend, model, microBatch, { recompute: cfg.recompute, precision: cfg.precision }, cfg.optim);
    try {
      // The first of each allocates workspaces and warms caches.
      await probe.microStep();
      await probe.update();
      const micro = await probe.microStep();
      const update = await probe.update();
      return { backend: backend.name, threads: backend.getThreads(), microBatch, microStepS: micro / 1000, updateS: update / 1000 };
    } finally {
      probe.free();
    }
  } finally {
    backend.dispose?.();
  }
}

/** Checks of the batch against the layout that the trainer does not refuse but that would not run as written. */
function batchFindings(cfg: TrainConfig, schedule: BatchSchedule, realise: (target: number) => BatchPlan, budgetSamples: number, largestMicro: number, maxBatch: number, ranks: number): { errors: Finding[]; warnings: Finding[] } {
  const errors: Finding[] = [];
  const warnings: Finding[] = [];
  const b = cfg.batch;
  const isExact = (x: number): boolean => realise(x).globalBatch === x;
  const exact = (field: string, want: number): void => {
    const got = realise(want);
    if (got.globalBatch === want) return;
    let [below, above] = [want - 1, want + 1];
    while (below > 0 && !isExact(below)) below--;
    while (!isExact(above)) above++;
    const near = below > 0 ? `${below} or ${above}` : String(above);
    errors.push({ field, message: `${field} is ${want}, but ${ranks} rank(s) × micro-steps × a micro batch of at most ${b.max_micro} realise ${got.globalBatch} (${got.ranks}×${got.accumSteps}×${got.microBatch}); the nearest batches this layout realises exactly are ${near}` });
  };
  if (b.schedule === 'constant') exact('batch.batch', b.batch);
  if (b.schedule === 'stagewise' && schedule instanceof StagewiseSchedule) {
    b.stages.forEach((st, i) => {
      exact(`batch.stages.${i}.batch`, st.batch);
      const length = schedule.ends[i]! - (i > 0 ? schedule.ends[i - 1]! : 0);
      const step = realise(st.batch).globalBatch;
      if (length < step) errors.push({ field: `batch.stages.${i}.fraction`, message: `batch.stages.${i}.fraction ${st.fraction} gives the stage ${length} samples of the ${budgetSamples}, fewer than one step of its batch ${step}: the stage would be skipped or cut short` });
    });
  }
  if (!FIXED.has(b.schedule)) {
    for (const [field, want] of [['batch.initial', initialBatchOf(b)], ['batch.max', maxBatch]] as const) {
      const got = realise(want).globalBatch;
      if (got !== want) warnings.push({ field, message: `${field} ${want} is realised as ${got} sequences on ${ranks} rank(s) with micro batches of at most ${b.max_micro}` });
    }
  }
  if (b.max_micro > largestMicro) warnings.push({ field: 'batch.max_micro', message: `batch.max_micro ${b.max_micro} exceeds the most a rank ever runs (${largestMicro} of the largest batch ${maxBatch} over ${ranks} rank(s)); micro batches stay at ${largestMicro}` });
  return { errors, warnings };
}

export async function planRun(cfg: TrainConfig, opts: PlanOptions): Promise<RunPlan> {
  const errors: Finding[] = [];
  // The rule table's errors were refused when the config was parsed.
  const warnings: Finding[] = lrRuleFindings(cfg).map((f) => ({ field: f.field, message: f.message }));
  const { model, vocabSource } = planModel(cfg);
  const budgetSamples = budgetSamplesOf(cfg, model.seq_len);
  const plan: RunPlan = {
    model: { name: cfg.init_from ?? cfg.model.preset, params: buildLayout(model).paramCount, d_model: model.d_model, n_layers: model.n_layers, seq_len: model.seq_len, vocab: model.vocab, vocabSource },
    layout: { ranks: opts.ranks, strategy: cfg.parallel.strategy, maxMicro: cfg.batch.max_micro, largestMicro: 0 },
    schedule: { batch: cfg.batch.schedule, fixed: FIXED.has(cfg.batch.schedule), lr: cfg.lr.schedule, lrScaling: cfg.batch.lr_scaling },
    budget: { samples: budgetSamples, tokens: budgetSamples * model.seq_len },
    steps: null,
    seconds: null,
    timing: null,
    memory: null,
    rows: [],
    warnings,
    errors,
  };
  // Every LR problem with its field; the trainer's budget check stops at the first (and checks eval).
  errors.push(...lrScheduleProblems(cfg.lr, budgetSamples));
  if (errors.length === 0) await attempt(errors, () => checkBudgetSizes(cfg, budgetSamples, model.seq_len));
  const resolved = await attempt(errors, () => resolveSchedule(cfg, budgetSamples, opts.ranks, null));
  if (resolved === null) return plan;
  const { schedule, maxBatch } = resolved;

  const { largestMicro, memoryOptions } = memoryLayout(cfg, opts.ranks, maxBatch, opts.ranksInProcess);
  plan.layout.largestMicro = largestMicro;
  const available = opts.availableBytes ?? availableMemoryBytes();
  const estimate = processEstimate(model, largestMicro, memoryOptions);
  plan.memory = { perRankBytes: estimate.perRank, processBytes: estimate.total, availableBytes: available };
  if (usesHostMemory(cfg.backend)) await attempt(errors, () => checkMemory(model, largestMicro, memoryOptions, available), 'batch.max_micro');

  const layout = batchLayout(cfg.batch, opts.ranks);
  const realise = (target: number): BatchPlan => planBatch(target, layout, schedule.needs.microSamples);
  const found = batchFindings(cfg, schedule, realise, budgetSamples, largestMicro, maxBatch, opts.ranks);
  errors.push(...found.errors);
  warnings.push(...found.warnings);

  // A run that cannot start is not timed (its memory may not even fit).
  const measure = opts.measure;
  if (typeof measure === 'number' && errors.length === 0) {
    try {
      plan.timing = await attempt(errors, () => measureStep(cfg, model, largestMicro, measure));
    } catch (e) {
      // The machine, not the config (no native addon, no GPU here): the plan stands without a time.
      warnings.push({ field: null, message: `no time estimate: a step could not be run on backend ${cfg.backend} here (${(e as Error).message.split('\n')[0]})` });
    }
  } else if (measure !== null && typeof measure === 'object') plan.timing = measure;
  const timing = plan.timing;
  // J ranks run their M micro-steps at once; time is taken as proportional to the micro batch.
  const stepSeconds = timing ? (p: BatchPlan): number => p.accumSteps * timing.microStepS * (p.microBatch / timing.microBatch) + timing.updateS : null;
  const t = trajectory({ schedule, fixed: plan.schedule.fixed, layout, budgetSamples, seqLen: model.seq_len, lr: cfg.lr, lrScale: lrScaleFor(cfg.batch), stepSeconds, batchRange: [realise(initialBatchOf(cfg.batch)), realise(maxBatch)] });
  Object.assign(plan, { rows: t.rows, steps: t.steps, seconds: t.seconds });
  return plan;
}

/**
 * `adabatch train` end to end: resolve the config, load data and tokenizer, build the model (fresh,
 * from `init_from`, or from the run's newest checkpoint on resume), check memory, run the loop with
 * metrics, progress and checkpoints, and summarise.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { batchLayout, createNoiseScaleTracker, createSchedule, lrScaleFor } from '../batch/index.js';
import type { Backend } from '../backend/backend.js';
import { createBackend } from '../backend/registry.js';
import { loadDataset } from '../data/dataset.js';
import { SyntheticStream } from '../data/synthetic.js';
import { Tokenizer } from '../data/tokenizer.js';
import { agreeOnRun, broadcastUnits, defaultKernelThreads } from '../dist/ddp.js';
import { LocalGroup, type ProcessGroup } from '../dist/group.js';
import { readLatestCheckpoint, type CheckpointData } from '../io/checkpoint.js';
import { loadModelDir } from '../io/hf.js';
import { MetricsWriter, readMetrics } from '../io/metrics.js';
import { modelConfig, type ModelConfig } from '../model/config.js';
import { Llama } from '../model/llama.js';
import { formatBytes } from '../model/memory.js';
import { initialParameters } from '../model/params.js';
import { learningRate } from '../optim/lr.js';
import { UserError } from '../util/errors.js';
import { Checkpointer, parseTrainerState, restoreEngine } from './checkpointer.js';
import type { TrainConfig } from './config.js';
import { ReplicaEngine } from './engine.js';
import type { TrainEngine } from './engine-api.js';
import { FsdpEngine } from './fsdp.js';
import { checkMemory } from './memory-check.js';
import { Progress } from './progress.js';
import { diffPaths } from './resume.js';
import { Trainer, type LoopState, type WindowSource } from './trainer.js';

export interface TrainSummary {
  runDir: string;
  steps: number;
  samples: number;
  tokens: number;
  trainLoss: number;
  valLoss: number | null;
  elapsedS: number;
  /** Steps at which the global batch changed: the step, samples seen before it, the new batch. */
  batchChanges: Array<{ step: number; samples: number; batch: number }>;
  initialBatch: number;
  finalBatch: number;
  stoppedEarly: boolean;
  resumedFrom: string | null;
  checkpoint: string | null;
}

export interface RunOptions {
  group?: ProcessGroup;
  backend?: Backend;
  progress?: Progress;
  /** Continue cfg.run_dir from its newest valid checkpoint (cfg comes from loadResumeConfig). */
  resume?: boolean;
  /** Checked between steps; true stops the run cleanly (a checkpoint is written). */
  shouldStop?: () => boolean;
  log?: (msg: string) => void;
}

function defaultRunDir(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return join('runs', `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`);
}

interface Data {
  train: WindowSource & { cursorAt?(k: number): { epoch: number; position: number } };
  validation: WindowSource | null;
  tokenizer: Tokenizer | null;
}

async function loadData(cfg: TrainConfig, seqLen: number, vocab: number, tokenizerJson: string | null, runDir: string, log: (m: string) => void): Promise<Data> {
  if ('synthetic' in cfg.data) {
    const syn = { vocab, phrases: cfg.data.synthetic.phrases, phrase_len: cfg.data.synthetic.phrase_len, seed: cfg.seed };
    return { train: new SyntheticStream(seqLen, syn), validation: new SyntheticStream(seqLen, syn, 2 ** 40), tokenizer: null };
  }
  let dataCfg = cfg.data;
  if (tokenizerJson !== null && dataCfg.tokenizer.path === undefined && dataCfg.tokenizer.vocab === undefined) {
    // Continued pretraining: tokenise with the initial weights' own tokenizer.
    mkdirSync(runDir, { recursive: true });
    const path = join(runDir, 'init-tokenizer.json');
    writeFileSync(path, tokenizerJson);
    dataCfg = { ...dataCfg, tokenizer: { ...dataCfg.tokenizer, path } };
  }
  const ds = await loadDataset(dataCfg, { seqLen, seed: cfg.seed, log });
  return { train: ds.train, validation: ds.validation, tokenizer: ds.tokenizer };
}

function resolveModel(cfg: TrainConfig, dataVocab: number | null, init: { config: ModelConfig } | null): ModelConfig {
  const { preset, ...overrides } = cfg.model;
  if (init) {
    const given = Object.keys(overrides);
    if (given.length) throw new UserError(`model.${given[0]} cannot be set together with init_from (the architecture comes from ${cfg.init_from})`);
    if (dataVocab !== null && dataVocab !== init.config.vocab) throw new UserError(`the tokenizer has ${dataVocab} tokens but the model in ${cfg.init_from} has vocab ${init.config.vocab}`);
    return init.config;
  }
  const base = modelConfig(preset, overrides as Partial<ModelConfig>);
  if (dataVocab === null || dataVocab === base.vocab) return base;
  if (overrides.vocab !== undefined) throw new UserError(`model.vocab is ${base.vocab} but the tokenizer has ${dataVocab} tokens`);
  return modelConfig(preset, { ...(overrides as Partial<ModelConfig>), vocab: dataVocab });
}

/** Keeps the first `rows` metrics rows (those the checkpoint covers), atomically. */
function truncateMetrics(path: string, rows: number): void {
  if (!existsSync(path)) return;
  const kept = readMetrics(path).slice(0, rows);
  const tmp = path + '.tmp';
  writeFileSync(tmp, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  renameSync(tmp, path);
}

export async function runTrain(cfg: TrainConfig, opts: RunOptions = {}): Promise<TrainSummary> {
  const log = opts.log ?? ((m: string) => console.error(m));
  const progress = opts.progress ?? new Progress(process.stderr, cfg.log_every_s);
  const group = opts.group ?? null;
  const rank0 = !group || group.rank === 0;
  const ranks = group?.size ?? 1;
  // Ranks must run the same config (checked); a default run directory is named by rank 0's clock.
  const started = group ? await agreeOnRun(group, cfg) : new Date();
  const runDir = cfg.run_dir ?? defaultRunDir(started);

  // Where the weights come from: the run's newest checkpoint (resume), init_from, or a fresh init.
  let resumeFrom: CheckpointData | null = null;
  if (opts.resume) {
    // Rank 0 reads first: reading repairs an interrupted checkpoint write in place, which must not race.
    if (group && !rank0) await group.barrier();
    const found = readLatestCheckpoint(join(runDir, 'checkpoints'), { onWarning: (m) => log(`warning: ${m}`) });
    if (group && rank0) await group.barrier();
    if (!found) throw new UserError(`cannot resume: no valid checkpoint in ${join(runDir, 'checkpoints')}`);
    resumeFrom = found.data;
  } else if (existsSync(join(runDir, 'metrics.jsonl'))) {
    throw new UserError(`run directory ${runDir} already holds a run (metrics.jsonl); choose another run_dir, or continue it with --resume ${runDir}`);
  }
  const init = !resumeFrom && cfg.init_from ? loadModelDir(cfg.init_from) : null;
  if (init) log(`initialising from ${cfg.init_from} (${init.kind === 'checkpoint' ? 'adabatch checkpoint' : 'Hugging Face directory'}${init.notes.length ? '; ' + init.notes.join('; ') : ''})`);

  const presetCfg = init?.config ?? resolveModel(cfg, null, null);
  const data = await loadData(cfg, presetCfg.seq_len, presetCfg.vocab, init?.tokenizerJson ?? null, runDir, (m) => progress.log(m));
  const mc = resolveModel(cfg, data.tokenizer?.vocabSize ?? null, init);
  if (mc.vocab !== presetCfg.vocab) log(`model vocab set to the tokenizer's ${mc.vocab} tokens`);
  const tokenizerHash = data.tokenizer?.hash() ?? null;
  let startState: LoopState | undefined;
  let trainerState: ReturnType<typeof parseTrainerState> | null = null;
  if (resumeFrom) {
    trainerState = parseTrainerState(resumeFrom.trainerState, resumeFrom.dir);
    const diff = diffPaths(resumeFrom.config, mc);
    if (diff.length) throw new UserError(`${resumeFrom.dir}/config.json does not match the run's model: ${diff.map((d) => `${d.path} ${JSON.stringify(d.a)} vs ${JSON.stringify(d.b)}`).join(', ')}`);
    if (trainerState.tokenizer_hash !== tokenizerHash) throw new UserError(`cannot resume: the tokenizer changed since ${resumeFrom.dir} was written (hash ${trainerState.tokenizer_hash} vs ${tokenizerHash})`);
    startState = { step: trainerState.step, samples: trainerState.samples, tokens: trainerState.tokens, skippedInARow: trainerState.skipped_in_a_row, elapsedS: trainerState.elapsed_s };
  }

  const budgetSamples = cfg.budget.samples ?? Math.ceil(cfg.budget.tokens! / mc.seq_len);
  const schedule = createSchedule(cfg.batch, { sampleBudget: budgetSamples });
  const layout = batchLayout(cfg.batch, ranks);
  try {
    schedule.validate(layout);
  } catch (e) {
    throw new UserError(`batch schedule '${schedule.name}': ${(e as Error).message}`);
  }
  const noise = createNoiseScaleTracker(cfg.batch);
  if (trainerState) {
    schedule.restore(trainerState.schedule);
    noise.restore(trainerState.noise_scale);
  }
  const fsdp = cfg.parallel.strategy === 'fsdp';
  if (fsdp && schedule.needs.innerProducts) throw new UserError(`batch schedule '${schedule.name}' needs ⟨g_j, ḡ⟩, which FSDP does not provide; use parallel.strategy: ddp`);
  if (fsdp && schedule.needs.localNorms && !cfg.parallel.unsharded_accumulation) throw new UserError(`batch schedule '${schedule.name}' needs each rank's accumulated gradient norm ‖g_j‖²: under FSDP set parallel.unsharded_accumulation: true (one extra gradient of memory per rank)`);
  const mem = checkMemory(mc, cfg.batch.max_micro, { recompute: cfg.recompute, ranksInProcess: group?.kind === 'threads' ? ranks : 1, shards: fsdp ? ranks : 1, ...(fsdp && { fsdp: { reshardAfterForward: cfg.parallel.reshard_after_forward, unshardedAccumulation: cfg.parallel.unsharded_accumulation } }) });

  mkdirSync(runDir, { recursive: true });
  const resolved = { ...cfg, run_dir: runDir } as Record<string, unknown>;
  const tokenizerJson = data.tokenizer ? JSON.stringify(data.tokenizer.toJSON()) : null;
  if (rank0) {
    writeFileSync(join(runDir, 'config.yaml'), YAML.stringify(resolved));
    if (tokenizerJson) writeFileSync(join(runDir, 'tokenizer.json'), tokenizerJson);
    if (trainerState) truncateMetrics(join(runDir, 'metrics.jsonl'), trainerState.metrics_rows);
  }

  // One rank uses every core; several ranks in one process run one kernel thread each (DESIGN.md).
  const threads = cfg.threads ?? defaultKernelThreads(group);
  const backend = opts.backend ?? createBackend(cfg.backend, { threads });
  const pg = group ?? new LocalGroup((dst, src) => backend.copy(dst, src));
  const model = new Llama(backend, mc, { recompute: cfg.recompute });
  let engine: TrainEngine;
  if (fsdp) {
    const e = new FsdpEngine(backend, model, pg, cfg.optim, { reshardAfterForward: cfg.parallel.reshard_after_forward, unshardedAccumulation: cfg.parallel.unsharded_accumulation });
    // A fresh model is initialised unit by unit: no rank ever holds all of it.
    if (init) e.loadParams(init.tensors);
    else if (!resumeFrom) e.loadParams((u) => initialParameters(model.layout, cfg.seed, [u]));
    engine = e;
  } else {
    const e = new ReplicaEngine(backend, model, pg, cfg.optim);
    if (!resumeFrom) e.replica.params.fromHost(init?.tensors ?? initialParameters(model.layout, cfg.seed));
    engine = e;
  }
  if (resumeFrom) restoreEngine(engine, resumeFrom);
  // DDP replicas start from rank 0's weights (and moments on resume), whatever each rank loaded.
  if (engine instanceof ReplicaEngine && ranks > 1) {
    for (const buffers of resumeFrom ? [engine.replica.params, engine.adamw.m, engine.adamw.v] : [engine.replica.params]) await broadcastUnits(pg, buffers);
  }
  const paramM = (model.layout.paramCount / 1e6).toFixed(2);
  log(`model ${init ? cfg.init_from : cfg.model.preset} (${paramM}M parameters, d ${mc.d_model}, ${mc.n_layers} layers, seq ${mc.seq_len}) on ${backend.name} × ${backend.getThreads()} thread(s), ${ranks} rank(s); estimated memory ${formatBytes(mem.total)}`);
  if (fsdp) log(`FSDP over ${ranks} rank(s): each holds 1/${ranks} of the parameters, gradients and optimizer state${cfg.parallel.unsharded_accumulation ? `, plus a full local gradient for unsharded accumulation (${formatBytes(4 * model.layout.units.reduce((a, u) => a + ranks * Math.ceil(u.size / ranks), 0))} per rank)` : ''}`);
  log(`schedule ${schedule.name}; budget ${budgetSamples} samples (${((budgetSamples * mc.seq_len) / 1e6).toFixed(2)}M tokens); run directory ${runDir}`);
  if (resumeFrom) log(`resuming from ${resumeFrom.dir} (step ${startState!.step}, ${startState!.samples} samples)`);

  const trainer = new Trainer(
    engine,
    schedule,
    data.train,
    data.validation,
    {
      seqLen: mc.seq_len,
      budgetSamples,
      lr: cfg.lr,
      lrScale: lrScaleFor(cfg.batch),
      clip: cfg.optim.clip,
      maxMicroBatch: cfg.batch.max_micro,
      maxBatch: layout.maxBatch,
      evalEverySamples: cfg.eval.every_samples,
      evalWindows: Math.min(cfg.eval.windows, (data.validation as { windowsPerEpoch?: number } | null)?.windowsPerEpoch ?? cfg.eval.windows),
      maxNonFinite: cfg.max_nonfinite,
    },
    startState,
  );
  const checkpointer = new Checkpointer(
    {
      runDir,
      config: cfg.checkpoint,
      engine,
      schedule,
      noise,
      modelConfig: mc,
      fullConfig: resolved,
      tokenizerJson,
      tokenizerHash,
      tokenIds: data.tokenizer ? { bos_token_id: data.tokenizer.bos, eos_token_id: data.tokenizer.eos } : {},
      cursorAt: data.train.cursorAt ? (k) => data.train.cursorAt!(k) : null,
      seed: cfg.seed,
    },
    trainer.state.samples,
  );
  const currentLr = (): number => learningRate(cfg.lr, trainer.state.samples, budgetSamples);
  const saveCheckpoint = async (): Promise<string | null> => {
    const dir = await checkpointer.save(trainer.state, currentLr());
    if (rank0) progress.log(`checkpoint ${dir}`);
    return rank0 ? dir : null;
  };

  const metrics = rank0 ? new MetricsWriter(join(runDir, 'metrics.jsonl')) : null;
  const summary: TrainSummary = { runDir, steps: 0, samples: 0, tokens: 0, trainLoss: NaN, valLoss: null, elapsedS: 0, batchChanges: [], initialBatch: 0, finalBatch: 0, stoppedEarly: false, resumedFrom: resumeFrom?.dir ?? null, checkpoint: null };
  let lastBatch = 0;
  let lastVal: number | null = null;
  try {
    await trainer.run({
      log: (m) => progress.log(m),
      noiseScale: (s) => noise.observe(s),
      ...(opts.shouldStop && { shouldStop: opts.shouldStop }),
      // Rank 0's clock decides (ranks' clocks differ); the flag is agreed in the step's reduction.
      checkpointDue: (st) => rank0 && checkpointer.due(st),
      onStep: async (rec, st) => {
        metrics?.write(rec.row);
        const b = rec.row.batch_size as number;
        if (summary.initialBatch === 0) summary.initialBatch = b;
        // The shortened last step is not a schedule decision: leave it out of the growth summary.
        if (b !== lastBatch && !(st.samples >= budgetSamples && b < lastBatch)) {
          summary.batchChanges.push({ step: st.step, samples: st.samples - b, batch: b });
          lastBatch = b;
        }
        if (typeof rec.row.val_loss === 'number') lastVal = rec.row.val_loss;
        summary.trainLoss = rec.row.loss as number;
        progress.update({ tokens: st.tokens, totalTokens: budgetSamples * mc.seq_len, step: st.step, loss: rec.row.loss as number, batch: b, tokPerS: st.tokens / Math.max(1e-9, st.elapsedS), elapsedS: st.elapsedS, valLoss: lastVal }, rec.row.val_loss !== undefined);
        if (rec.checkpoint && !rec.stop && !trainer.done()) summary.checkpoint = await saveCheckpoint();
      },
    });
    summary.stoppedEarly = !trainer.done();
    if (cfg.checkpoint.at_end || summary.stoppedEarly) summary.checkpoint = await saveCheckpoint();
  } finally {
    progress.finish();
    metrics?.close();
  }
  const st = trainer.state;
  Object.assign(summary, { steps: st.step, samples: st.samples, tokens: st.tokens, elapsedS: st.elapsedS, valLoss: lastVal, finalBatch: lastBatch });
  engine.free();
  model.dispose();
  return summary;
}

export function formatSummary(s: TrainSummary): string {
  const lines = [
    `run directory   ${s.runDir}${s.stoppedEarly ? '   (stopped early: continue with --resume)' : ''}`,
    `steps           ${s.steps}`,
    `samples         ${s.samples} (${(s.tokens / 1e6).toFixed(2)}M tokens) in ${s.elapsedS.toFixed(1)} s (${Math.round(s.tokens / Math.max(1e-9, s.elapsedS))} tok/s)`,
    `train loss      ${Number.isFinite(s.trainLoss) ? s.trainLoss.toFixed(4) : 'n/a'} (last step)`,
    `validation loss ${s.valLoss === null ? 'n/a' : `${s.valLoss.toFixed(4)} (perplexity ${Math.exp(s.valLoss).toFixed(2)})`}`,
  ];
  if (s.batchChanges.length > 1) {
    const growth = s.batchChanges.map((c) => `${c.batch} @ step ${c.step}`).join(' → ');
    lines.push(`batch size      grew ${s.initialBatch} → ${s.finalBatch}: ${growth}`);
  } else {
    lines.push(`batch size      ${s.initialBatch} (constant)`);
  }
  if (s.checkpoint) lines.push(`checkpoint      ${s.checkpoint}`);
  return lines.join('\n');
}

/**
 * `adabatch train` end to end: resolve the config, load data and tokenizer, build the model (fresh,
 * from `init_from`, or from the run's newest checkpoint on resume), check memory, run the loop with
 * metrics, progress and checkpoints, and summarise.
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { batchLayout, createNoiseScaleTracker, createSchedule, lrScaleFor, type BatchSchedule, type NoiseScaleTracker } from '../batch/index.js';
import type { Backend } from '../backend/backend.js';
import { createBackend } from '../backend/registry.js';
import { adapterPlacement } from '../backend/webgpu/adapter.js';
import { deviceMemoryFromEnv } from '../backend/webgpu/device-memory.js';
import { WebGpuBackend } from '../backend/webgpu/index.js';
import { loadDataset, openMixtureDataset, openShardDataset } from '../data/dataset.js';
import { SyntheticStream } from '../data/synthetic.js';
import { Tokenizer } from '../data/tokenizer.js';
import { listCheckpoints, readLatestCheckpoint, type CheckpointData } from '../io/checkpoint.js';
import { fileError, isSymlink, writeFileAtomic } from '../util/files.js';
import { RunLock } from '../util/run-lock.js';
import { loadModelDir, type LoadedModel } from '../io/hf.js';
import { MetricsWriter, readMetrics } from '../io/metrics.js';
import { modelConfig, type ModelConfig } from '../model/config.js';
import { Llama } from '../model/llama.js';
import type { MemoryEstimate } from '../model/memory.js';
import { formatBytes } from '../util/format.js';
import { initialParameters } from '../model/params.js';
import { OPTIMIZER_STATE_BUFFERS } from '../optim/config.js';
import { learningRate, lrScheduleProblems } from '../optim/lr.js';
import { agreeOnRun, defaultKernelThreads } from '../parallel/ddp.js';
import type { TrainEngine } from '../parallel/engine.js';
import { FsdpEngine } from '../parallel/fsdp-engine.js';
import { bindProcessGroup, type ProcessGroup } from '../parallel/group.js';
import type { Communicator } from '../parallel/native-communicator.js';
import { ReplicaEngine } from '../parallel/replica-engine.js';
import { parseOrThrow, UserError } from '../util/errors.js';
import { Checkpointer, engineStateOf, parseTrainerState, type TrainerStateJson } from './checkpointer.js';
import { trainConfigSchema, type TrainConfig } from './config.js';
import { checkDeviceMemory } from './device-memory-check.js';
import { lrRuleFindings } from './lr-rules.js';
import { checkMemory, checkTensorLimit, processEstimate, usesHostMemory, type MemoryCheckOptions } from './memory-check.js';
import { Progress } from './progress.js';
import { diffPaths, RESUMABLE_CHANGES } from './resume.js';
import type { StepMetrics } from './step-metrics.js';
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
  /** This rank's transport (threads or mpi): its process group is bound to the run's backend. */
  comm?: Communicator;
  /** Instead of `comm`, a process group already bound to `backend` (in-process test groups). */
  group?: ProcessGroup;
  backend?: Backend;
  progress?: Progress;
  /** Continue cfg.run_dir from its newest valid checkpoint (cfg comes from loadResumeConfig). */
  resume?: boolean;
  /** Checked between steps; true stops the run cleanly (a checkpoint is written). */
  shouldStop?: () => boolean;
  log?: (msg: string) => void;
}

/** Validation tokens held on the host at once (2²⁸ int32: 1 GiB). */
const MAX_EVAL_TOKENS = 2 ** 28;

/** runs/<date>-<time> of `d` (local time). */
export function defaultRunDir(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return join('runs', `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`);
}

interface Data {
  train: WindowSource & { cursorAt?(k: number): { epoch: number; position: number } };
  validation: WindowSource | null;
  tokenizer: Tokenizer | null;
  /** The data's vocabulary (its tokenizer's, or a token shard folder's), or null for synthetic data. */
  vocab: number | null;
}

async function loadData(cfg: TrainConfig, seqLen: number, vocab: number, init: LoadedModel | null, runDir: string, log: (m: string) => void): Promise<Data> {
  if ('synthetic' in cfg.data) {
    const syn = { vocab, phrases: cfg.data.synthetic.phrases, phrase_len: cfg.data.synthetic.phrase_len, seed: cfg.seed };
    return { train: new SyntheticStream(seqLen, syn), validation: new SyntheticStream(seqLen, syn, 2 ** 40), tokenizer: null, vocab: null };
  }
  let dataCfg = cfg.data;
  if (cfg.init_from !== undefined && dataCfg.tokenizer.path === undefined && dataCfg.tokenizer.vocab === undefined) {
    // Continued pretraining: tokenise with the initial weights' own tokenizer, copied into the run
    // directory with the tokenizer_config.json that names its BOS/EOS, so a resumed run (which does
    // not read init_from again) finds the same one.
    const dir = join(runDir, 'init-tokenizer');
    if (init?.tokenizerJson !== undefined) {
      writeFileAtomic(join(dir, 'tokenizer.json'), init.tokenizerJson);
      if (init.tokenizerConfigJson !== undefined) writeFileAtomic(join(dir, 'tokenizer_config.json'), init.tokenizerConfigJson);
    }
    if (existsSync(join(dir, 'tokenizer.json'))) dataCfg = { ...dataCfg, tokenizer: { ...dataCfg.tokenizer, path: dir } };
  }
  // Token shards are read from disk; a folder prepared from token files may come without a tokenizer.
  const opts = { seqLen, seed: cfg.seed, log };
  const ds = 'shards' in dataCfg ? openShardDataset(dataCfg, opts) : 'mixture' in dataCfg ? openMixtureDataset(dataCfg, opts) : await loadDataset(dataCfg, opts);
  return { train: ds.train, validation: ds.validation, tokenizer: ds.tokenizer, vocab: ds.stats.tokenizer.vocabSize };
}

/** The model of the run: the preset plus overrides, or init_from's architecture; the vocab follows the tokenizer. */
export function resolveModel(cfg: TrainConfig, dataVocab: number | null, init: { config: ModelConfig } | null): ModelConfig {
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
  if (!existsSync(path) && !isSymlink(path)) return;
  const kept = readMetrics(path).slice(0, rows);
  writeFileAtomic(path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
}

/** The run's length in samples (budget.tokens rounds up to whole sequences). */
export function budgetSamplesOf(cfg: TrainConfig, seqLen: number): number {
  return cfg.budget.samples ?? Math.ceil(cfg.budget.tokens! / seqLen);
}

/** Numbers that are valid alone but absurd for this run: refused before anything trains. */
export function checkBudgetSizes(cfg: TrainConfig, budgetSamples: number, seqLen: number): void {
  const lrProblem = lrScheduleProblems(cfg.lr, budgetSamples)[0];
  if (lrProblem) throw new UserError(lrProblem.message);
  // The validation windows are held on the host at once (an Int32Array of windows × (seq_len + 1) tokens).
  const maxWindows = Math.floor(MAX_EVAL_TOKENS / (seqLen + 1));
  if (cfg.eval.windows > maxWindows) throw new UserError(`eval.windows is ${cfg.eval.windows}: at seq_len ${seqLen} that is ${cfg.eval.windows * (seqLen + 1)} tokens held at once; at most ${maxWindows} windows (${MAX_EVAL_TOKENS} tokens) are supported`);
}

/**
 * On resume the checkpoint's own config is the truth: config.yaml (with the --set changes allowed on
 * resume) must agree with it, field by field.
 */
function checkResumedConfig(cfg: TrainConfig, state: TrainerStateJson, checkpointDir: string, runDir: string): void {
  // Both through today's schema, so a default added since the checkpoint was written is no difference.
  const trained = parseOrThrow(trainConfigSchema, state.config, `the config in ${join(checkpointDir, 'trainer_state.json')}`);
  const changed = diffPaths(JSON.parse(JSON.stringify(trained)) as unknown, JSON.parse(JSON.stringify(cfg)) as unknown).filter((d) => !(RESUMABLE_CHANGES as readonly string[]).includes(d.path.split('.')[0]!));
  if (changed.length === 0) return;
  const lines = changed.map((d) => `  ${d.path}: the checkpoint has ${JSON.stringify(d.a)}, config.yaml has ${JSON.stringify(d.b)}`);
  throw new UserError(`cannot resume: ${join(runDir, 'config.yaml')} differs from the config of ${checkpointDir} (the checkpoint is what was trained; only ${RESUMABLE_CHANGES.join(', ')} may change):\n${lines.join('\n')}`);
}

/** The run's other ranks, before a backend exists: what agreeing on the run and reading a checkpoint need. */
type Peers = Pick<ProcessGroup, 'kind' | 'rank' | 'size' | 'localSize' | 'allReduceScalars' | 'barrier'>;

/** Everything the run is made of before any backend memory is touched. */
interface ResolvedRun {
  runDir: string;
  /** The resolved config, as written to config.yaml and into checkpoints. */
  resolved: Record<string, unknown>;
  model: ModelConfig;
  data: Data;
  tokenizerJson: string | null;
  tokenizerHash: string | null;
  init: LoadedModel | null;
  resume: { from: CheckpointData; state: TrainerStateJson; loop: LoopState } | null;
  budgetSamples: number;
  schedule: BatchSchedule;
  noise: NoiseScaleTracker;
  maxBatch: number;
  /** The largest micro batch a rank runs: its share of the largest global batch, at most batch.max_micro. */
  largestMicro: number;
  memory: MemoryEstimate;
  /** How the memory was estimated (the GPU memory check reuses it). */
  memoryOptions: MemoryCheckOptions;
}

export async function runTrain(cfg: TrainConfig, opts: RunOptions = {}): Promise<TrainSummary> {
  const log = opts.log ?? ((m: string) => console.error(m));
  const progress = opts.progress ?? new Progress(process.stderr, cfg.log_every_s);
  const peers: Peers | null = opts.group ?? opts.comm ?? null;
  // Ranks must run the same config (checked); a default run directory is named by rank 0's clock.
  const started = peers ? await agreeOnRun(peers, cfg) : new Date();
  const runDir = cfg.run_dir ?? defaultRunDir(started);
  const { lock, created } = await lockRunDir(runDir, peers);
  try {
    return await trainIn(runDir, cfg, opts, peers, log, progress);
  } finally {
    lock?.release();
    // A run refused before it wrote anything leaves no empty directory behind.
    if (created) rmEmptyDir(runDir);
  }
}

function rmEmptyDir(dir: string): void {
  try {
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    /* not empty, or already gone */
  }
}

/**
 * One trainer per run directory: rank 0 creates the directory and takes its lock; every rank learns
 * the outcome in one scalar reduction, so all of them stop when it is refused.
 */
async function lockRunDir(runDir: string, peers: Peers | null): Promise<{ lock: RunLock | null; created: boolean }> {
  let lock: RunLock | null = null;
  let refusal: unknown = null;
  let created = false;
  if (!peers || peers.rank === 0) {
    try {
      created = !existsSync(runDir) && mkdirSync(runDir, { recursive: true }) !== undefined;
    } catch (e) {
      refusal = fileError('create the run directory', runDir, e);
    }
    if (!refusal) {
      try {
        lock = RunLock.acquire(runDir);
      } catch (e) {
        refusal = e;
      }
    }
  }
  const refused = peers && peers.size > 1 ? (await peers.allReduceScalars(Float64Array.of(refusal ? 1 : 0), 'sum'))[0]! > 0 : refusal !== null;
  if (refusal) throw refusal;
  if (refused) throw new UserError(`rank 0 could not take the run directory ${runDir} (its message says why)`);
  return { lock, created };
}

async function trainIn(runDir: string, cfg: TrainConfig, opts: RunOptions, peers: Peers | null, log: (m: string) => void, progress: Progress): Promise<TrainSummary> {
  const run = await resolveRun(cfg, runDir, peers, opts.resume ?? false, log, progress);

  // One rank uses every core; several ranks in one process run one kernel thread each (docs/design.md).
  const threads = cfg.threads ?? defaultKernelThreads(peers);
  // webgpu: local rank r opens the (r mod n)-th GPU where Dawn can select it (docs/gpu.md, "Which GPU").
  const backend = opts.backend ?? createBackend(cfg.backend, { threads, placement: adapterPlacement(peers) });
  try {
    const limit = backend.maxTensorBytes?.();
    if (limit !== undefined) checkTensorLimit(run.model, run.largestMicro, limit, `backend ${backend.name}`);
    if (backend instanceof WebGpuBackend) checkWebGpuMemory(run, backend, peers);
  } catch (e) {
    if (!opts.backend) backend.dispose?.();
    throw e;
  }
  const group = opts.group ?? (await bindProcessGroup(opts.comm ?? null, backend));
  const adapters = backend instanceof WebGpuBackend ? await describeAdapters(backend, group) : [];
  const model = new Llama(backend, run.model, { recompute: cfg.recompute, precision: cfg.precision });
  const engine = await buildEngine(cfg, run, model, group);
  logStart(cfg, run, engine, log);
  for (const line of adapters) log(line);
  try {
    return await trainLoop(cfg, run, engine, progress, opts.shouldStop);
  } finally {
    engine.free();
    model.dispose();
    // A group bound here (from opts.comm) is released here; the communicator's owner closes it.
    if (!opts.group) group.dispose?.();
    // A backend made here is released here (the webgpu backend's device before this thread ends).
    if (!opts.backend) backend.dispose?.();
  }
}

/**
 * webgpu: refuses up front a run whose memory estimate exceeds the GPU's memory, when the user
 * states it (ADABATCH_WEBGPU_MEMORY_GIB; WebGPU does not report it). Thread ranks on the same GPU
 * add up; ranks in other processes cannot be seen from here.
 */
function checkWebGpuMemory(run: ResolvedRun, backend: WebGpuBackend, peers: Peers | null): void {
  let bytes: number | null;
  try {
    bytes = deviceMemoryFromEnv(process.env);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  if (bytes === null) return;
  const shared = peers?.kind === 'threads' ? (backend.device.selection?.shared ?? peers.size) : 1;
  checkDeviceMemory(run.model, run.largestMicro, { ...run.memoryOptions, ranksInProcess: shared }, bytes, backend.device.adapter);
}

/**
 * The log lines saying which adapter each rank opened: the ranks' adapter indices (one scalar
 * reduction; each index counts in its own machine's list), and rank 0's adapter and why.
 */
async function describeAdapters(backend: WebGpuBackend, group: ProcessGroup): Promise<string[]> {
  const s = backend.device.selection;
  const lines: string[] = [];
  if (group.size > 1) {
    const own = new Float64Array(group.size);
    own[group.rank] = (s?.index ?? -1) + 1;
    const all = await group.allReduceScalars(own, 'sum');
    lines.push(`webgpu adapters by rank (rank→adapter index on its machine; - chosen by name): ${Array.from(all, (x, r) => `${r}→${x > 0 ? x - 1 : '-'}`).join(', ')}`);
  }
  const which = s?.index != null ? `adapter ${s.index}${s.count != null ? ` of ${s.count}` : ''}, ` : '';
  lines.push(`webgpu adapter of rank ${group.rank}: ${backend.device.adapter} (${which}${s?.reason ?? 'the first adapter WebGPU offers'})`);
  if (s?.warning) lines.push(`warning: ${s.warning}`);
  return lines;
}

/**
 * Resolves the run: its directory, where the weights come from (the run's newest checkpoint on
 * resume, init_from, or a fresh init), data and tokenizer, the model, the schedule, and the memory
 * check; writes config.yaml and tokenizer.json (rank 0).
 */
async function resolveRun(cfg: TrainConfig, runDir: string, peers: Peers | null, resume: boolean, log: (m: string) => void, progress: Progress): Promise<ResolvedRun> {
  const rank0 = !peers || peers.rank === 0;
  const ranks = peers?.size ?? 1;
  const { resumeFrom, init } = await startingWeights(cfg, runDir, peers, resume, log);

  // A resumed init_from run does not read init_from again: its checkpoint holds the architecture.
  const initial = init ?? (resumeFrom !== null && cfg.init_from !== undefined ? { config: resumeFrom.config } : null);
  const presetCfg = initial?.config ?? resolveModel(cfg, null, null);
  const data = await loadData(cfg, presetCfg.seq_len, presetCfg.vocab, init, runDir, (m) => progress.log(m));
  const mc = resolveModel(cfg, data.vocab, initial);
  if (mc.vocab !== presetCfg.vocab) log(`model vocab set to the tokenizer's ${mc.vocab} tokens`);
  const tokenizerHash = data.tokenizer?.hash() ?? null;
  let resumed: ResolvedRun['resume'] = null;
  if (resumeFrom) {
    const state = parseTrainerState(resumeFrom.trainerState, resumeFrom.dir);
    checkResumedConfig(cfg, state, resumeFrom.dir, runDir);
    const diff = diffPaths(resumeFrom.config, mc);
    if (diff.length) throw new UserError(`${resumeFrom.dir}/config.json does not match the run's model: ${diff.map((d) => `${d.path} ${JSON.stringify(d.a)} vs ${JSON.stringify(d.b)}`).join(', ')}`);
    if (state.tokenizer_hash !== tokenizerHash) throw new UserError(`cannot resume: the tokenizer changed since ${resumeFrom.dir} was written (hash ${state.tokenizer_hash} vs ${tokenizerHash})`);
    resumed = { from: resumeFrom, state, loop: { step: state.step, samples: state.samples, tokens: state.tokens, skippedInARow: state.skipped_in_a_row, elapsedS: state.elapsed_s } };
  }

  const budgetSamples = budgetSamplesOf(cfg, mc.seq_len);
  checkBudgetSizes(cfg, budgetSamples, mc.seq_len);
  // The LR rule table's errors were refused when the config was parsed; its warnings are logged.
  if (rank0) for (const w of lrRuleFindings(cfg)) log(`warning: ${w.field}: ${w.message}`);
  const { schedule, noise, maxBatch } = resolveSchedule(cfg, budgetSamples, ranks, resumed?.state ?? null);
  const { largestMicro, memoryOptions } = memoryLayout(cfg, ranks, maxBatch, peers?.kind === 'threads' ? ranks : 1);
  const memory = usesHostMemory(cfg.backend) ? checkMemory(mc, largestMicro, memoryOptions) : processEstimate(mc, largestMicro, memoryOptions);

  const resolved = { ...cfg, run_dir: runDir } as Record<string, unknown>;
  const tokenizerJson = data.tokenizer ? JSON.stringify(data.tokenizer.toJSON()) : null;
  if (rank0) {
    writeFileAtomic(join(runDir, 'config.yaml'), YAML.stringify(resolved));
    if (tokenizerJson) writeFileAtomic(join(runDir, 'tokenizer.json'), tokenizerJson);
    // On resume the metrics the checkpoint covers are kept; a run started afresh keeps none.
    truncateMetrics(join(runDir, 'metrics.jsonl'), resumed?.state.metrics_rows ?? 0);
  }
  return { runDir, resolved, model: mc, data, tokenizerJson, tokenizerHash, init, resume: resumed, budgetSamples, schedule, noise, maxBatch, largestMicro, memory, memoryOptions };
}

/**
 * The largest micro batch a rank runs and how its memory is estimated, for `ranks` data-parallel
 * ranks of which `ranksInProcess` share this process (thread ranks).
 */
export function memoryLayout(cfg: TrainConfig, ranks: number, maxBatch: number, ranksInProcess: number): { largestMicro: number; memoryOptions: MemoryCheckOptions } {
  const fsdp = cfg.parallel.strategy === 'fsdp';
  // A rank's micro batch never exceeds its share of the largest global batch.
  const largestMicro = Math.min(cfg.batch.max_micro, Math.ceil(maxBatch / ranks));
  const memoryOptions: MemoryCheckOptions = { recompute: cfg.recompute, precision: cfg.precision, ranksInProcess, shards: fsdp ? ranks : 1, optimizerBuffers: OPTIMIZER_STATE_BUFFERS[cfg.optim.name], ...(fsdp && { fsdp: { reshardAfterForward: cfg.parallel.reshard_after_forward, unshardedAccumulation: cfg.parallel.unsharded_accumulation } }) };
  return { largestMicro, memoryOptions };
}

/**
 * Where the weights come from: the run's newest valid checkpoint (resume), init_from, or neither (a
 * fresh initialisation). A new run refuses a directory that already holds one.
 */
async function startingWeights(cfg: TrainConfig, runDir: string, peers: Peers | null, resume: boolean, log: (m: string) => void): Promise<{ resumeFrom: CheckpointData | null; init: LoadedModel | null }> {
  const checkpoints = join(runDir, 'checkpoints');
  if (resume && listCheckpoints(checkpoints).length === 0) {
    // Killed before its first checkpoint (or requeued before it started): the same command starts it afresh.
    log(`no checkpoint in ${checkpoints} yet: starting the run afresh from its saved config`);
  } else if (resume) {
    const rank0 = !peers || peers.rank === 0;
    // Rank 0 reads first: reading repairs an interrupted checkpoint write in place, which must not race.
    if (peers && !rank0) await peers.barrier();
    const found = readLatestCheckpoint(checkpoints, { onWarning: (m) => log(`warning: ${m}`) });
    if (peers && rank0) await peers.barrier();
    if (!found) throw new UserError(`cannot resume: no valid checkpoint in ${checkpoints} (the checkpoints there do not verify; see the warnings above)`);
    return { resumeFrom: found.data, init: null };
  } else if (existsSync(join(runDir, 'metrics.jsonl'))) {
    throw new UserError(`run directory ${runDir} already holds a run (metrics.jsonl); choose another run_dir, or continue it with --resume ${runDir}`);
  }
  const init = cfg.init_from ? loadModelDir(cfg.init_from) : null;
  if (init) log(`initialising from ${cfg.init_from} (${init.kind === 'checkpoint' ? 'adabatch checkpoint' : 'Hugging Face directory'}${init.notes.length ? '; ' + init.notes.join('; ') : ''})`);
  return { resumeFrom: null, init };
}

/**
 * The batch schedule and the noise-scale diagnostic (restored on resume), checked against the layout
 * and the parallel strategy: what FSDP cannot measure is refused here, by name.
 */
export function resolveSchedule(cfg: TrainConfig, budgetSamples: number, ranks: number, resumed: TrainerStateJson | null): { schedule: BatchSchedule; noise: NoiseScaleTracker; maxBatch: number } {
  const schedule = createSchedule(cfg.batch, { sampleBudget: budgetSamples });
  const layout = batchLayout(cfg.batch, ranks);
  try {
    schedule.validate(layout);
  } catch (e) {
    throw new UserError(`batch schedule '${schedule.name}': ${(e as Error).message}`);
  }
  const noise = createNoiseScaleTracker(cfg.batch);
  if (resumed) {
    schedule.restore(resumed.schedule);
    noise.restore(resumed.noise_scale);
  }
  if (cfg.parallel.strategy === 'fsdp') {
    if (schedule.needs.innerProducts) throw new UserError(`batch schedule '${schedule.name}' needs ⟨g_j, ḡ⟩, which FSDP does not provide; use parallel.strategy: ddp`);
    if (!cfg.parallel.unsharded_accumulation) {
      const needer = schedule.needs.localNorms ? `batch schedule '${schedule.name}'` : noise.needs.localNorms ? 'batch.noise_scale.source: rank' : null;
      if (needer) throw new UserError(`${needer} needs each rank's accumulated gradient norm ‖g_j‖²: under FSDP set parallel.unsharded_accumulation: true (one extra gradient of memory per rank)`);
    }
    if (schedule.collector) throw new UserError(`batch schedule '${schedule.name}' collects statistics from every micro-step gradient, which FSDP does not keep (it reduce-scatters them unit by unit); use parallel.strategy: ddp`);
  }
  return { schedule, noise, maxBatch: layout.maxBatch };
}

/**
 * The engine for the configured strategy, holding the run's starting state: the checkpoint's on
 * resume, init_from's weights, or a fresh seeded initialisation (unit by unit, so no FSDP rank ever
 * holds the whole model); ranks that hold copies then take rank 0's.
 */
async function buildEngine(cfg: TrainConfig, run: ResolvedRun, model: Llama, group: ProcessGroup): Promise<TrainEngine> {
  const engine: TrainEngine =
    cfg.parallel.strategy === 'fsdp'
      ? new FsdpEngine(model.backend, model, group, cfg.optim, { reshardAfterForward: cfg.parallel.reshard_after_forward, unshardedAccumulation: cfg.parallel.unsharded_accumulation })
      : new ReplicaEngine(model.backend, model, group, cfg.optim);
  if (run.resume) engine.loadState(engineStateOf(run.resume.from, run.resume.state));
  else engine.loadState({ params: run.init?.tensors ?? ((unit: number) => initialParameters(model.layout, cfg.seed, [unit])) });
  await engine.broadcastState({ optimizer: run.resume !== null });
  return engine;
}

function logStart(cfg: TrainConfig, run: ResolvedRun, engine: TrainEngine, log: (m: string) => void): void {
  const { model: mc, budgetSamples } = run;
  const ranks = engine.group.size;
  const backend = engine.backend;
  const paramM = (engine.model.layout.paramCount / 1e6).toFixed(2);
  log(`model ${run.init ? cfg.init_from : cfg.model.preset} (${paramM}M parameters, d ${mc.d_model}, ${mc.n_layers} layers, seq ${mc.seq_len}) on ${backend.name} × ${backend.getThreads()} thread(s), ${ranks} rank(s); estimated memory ${formatBytes(run.memory.total)}`);
  const lowp = cfg.precision === 'bf16' ? ' (bf16 GEMM inputs, f32 accumulation, f32 master weights, gradients and optimizer state)' : cfg.precision === 'f16' ? ' (f16 GEMM inputs in the blocks, gradients scaled into f16 range, f32 accumulation, head, master weights, gradients and optimizer state)' : '';
  log(`kernels: ${backend.describeKernels()}; precision ${cfg.precision}${lowp}`);
  if (cfg.parallel.strategy === 'fsdp') log(`FSDP over ${ranks} rank(s): each holds 1/${ranks} of the parameters, gradients and optimizer state${cfg.parallel.unsharded_accumulation ? `, plus a full local gradient for unsharded accumulation (${formatBytes(4 * engine.model.layout.units.reduce((a, u) => a + ranks * Math.ceil(u.size / ranks), 0))} per rank)` : ''}`);
  log(`schedule ${run.schedule.name}; budget ${budgetSamples} samples (${((budgetSamples * mc.seq_len) / 1e6).toFixed(2)}M tokens); run directory ${run.runDir}`);
  if (run.resume) log(`resuming from ${run.resume.from.dir} (step ${run.resume.loop.step}, ${run.resume.loop.samples} samples)`);
}

/** The loop with its metrics file, progress, checkpoints and summary. */
async function trainLoop(cfg: TrainConfig, run: ResolvedRun, engine: TrainEngine, progress: Progress, shouldStop: (() => boolean) | undefined): Promise<TrainSummary> {
  const { budgetSamples, runDir } = run;
  const rank0 = engine.group.rank === 0;
  const trainer = createTrainer(cfg, run, engine);
  const checkpointer = createCheckpointer(cfg, run, engine, trainer.state.samples);
  const saveCheckpoint = async (): Promise<string | null> => {
    const samples = trainer.state.samples;
    const dir = await checkpointer.save(trainer.state, learningRate(cfg.lr, { samples, seqLen: run.model.seq_len, batch: run.schedule.targetBatch(samples) }, budgetSamples));
    if (dir) progress.log(`checkpoint ${dir}`);
    return dir;
  };

  const metrics = rank0 ? new MetricsWriter(join(runDir, 'metrics.jsonl')) : null;
  const summary: TrainSummary = { runDir, steps: 0, samples: 0, tokens: 0, trainLoss: NaN, valLoss: null, elapsedS: 0, batchChanges: [], initialBatch: 0, finalBatch: 0, stoppedEarly: false, resumedFrom: run.resume?.from.dir ?? null, checkpoint: null };
  try {
    await trainer.run({
      log: (m) => progress.log(m),
      noiseScale: (s) => run.noise.observe(s),
      ...(shouldStop && { shouldStop }),
      // Rank 0's clock decides (ranks' clocks differ); the flag is agreed in the step's reduction.
      checkpointDue: (st) => rank0 && checkpointer.due(st),
      onStep: async (rec, st) => {
        metrics?.write(rec.row);
        noteStep(summary, rec.row, st, budgetSamples);
        progress.update({ tokens: st.tokens, totalTokens: budgetSamples * run.model.seq_len, step: st.step, loss: rec.row.loss, batch: rec.row.batch_size, tokPerS: st.tokens / Math.max(1e-9, st.elapsedS), elapsedS: st.elapsedS, valLoss: summary.valLoss }, rec.row.val_loss !== undefined);
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
  return Object.assign(summary, { steps: st.step, samples: st.samples, tokens: st.tokens, elapsedS: st.elapsedS });
}

/** Adds a step to the summary: losses, and the batch growth (finalBatch is the batch so far). */
function noteStep(summary: TrainSummary, row: StepMetrics, st: LoopState, budgetSamples: number): void {
  const batch = row.batch_size;
  if (summary.initialBatch === 0) summary.initialBatch = batch;
  // The shortened last step is not a schedule decision: leave it out of the growth summary.
  if (batch !== summary.finalBatch && !(st.samples >= budgetSamples && batch < summary.finalBatch)) {
    summary.batchChanges.push({ step: st.step, samples: st.samples - batch, batch });
    summary.finalBatch = batch;
  }
  if (row.val_loss !== undefined) summary.valLoss = row.val_loss;
  summary.trainLoss = row.loss;
}

function createTrainer(cfg: TrainConfig, run: ResolvedRun, engine: TrainEngine): Trainer {
  const { data } = run;
  return new Trainer(
    engine,
    run.schedule,
    data.train,
    data.validation,
    {
      seqLen: run.model.seq_len,
      budgetSamples: run.budgetSamples,
      lr: cfg.lr,
      lrScale: lrScaleFor(cfg.batch),
      clip: cfg.optim.clip,
      maxMicroBatch: cfg.batch.max_micro,
      maxBatch: run.maxBatch,
      evalEverySamples: cfg.eval.every_samples,
      evalWindows: Math.min(cfg.eval.windows, (data.validation as { windowsPerEpoch?: number } | null)?.windowsPerEpoch ?? cfg.eval.windows),
      maxNonFinite: cfg.max_nonfinite,
      localNorms: run.noise.needs.localNorms,
    },
    run.resume?.loop,
  );
}

function createCheckpointer(cfg: TrainConfig, run: ResolvedRun, engine: TrainEngine, startSamples: number): Checkpointer {
  const { data } = run;
  return new Checkpointer(
    {
      runDir: run.runDir,
      config: cfg.checkpoint,
      engine,
      schedule: run.schedule,
      noise: run.noise,
      modelConfig: run.model,
      fullConfig: run.resolved,
      tokenizerJson: run.tokenizerJson,
      tokenizerHash: run.tokenizerHash,
      tokenIds: data.tokenizer ? { bos_token_id: data.tokenizer.bos, eos_token_id: data.tokenizer.eos } : {},
      cursorAt: data.train.cursorAt ? (k) => data.train.cursorAt!(k) : null,
      seed: cfg.seed,
    },
    startSamples,
  );
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

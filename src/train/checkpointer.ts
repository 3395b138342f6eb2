/**
 * When and what the training loop checkpoints: model and AdamW moments by Hugging Face name, and a
 * trainer_state.json holding everything else a resume needs to continue bit-exactly (counters, the
 * AdamW step, schedule and noise-scale state, the data cursor, the full config, the tokenizer hash).
 * Cadence: every N samples and/or every M minutes, plus at the end and on a stop request; the last K
 * are kept.
 */
import { join } from 'node:path';
import { z } from 'zod';
import type { BatchSchedule, ScheduleState } from '../batch/types.js';
import type { NoiseScaleTracker } from '../batch/noise-scale.js';
import { ADAMW_PREFIX, checkpointName, pruneCheckpoints, tensorEntriesFromBuffers, tensorsWithPrefix, writeCheckpoint, type CheckpointData } from '../io/checkpoint.js';
import { writeShardedCheckpoint } from '../io/checkpoint-sharded.js';
import type { HostArray, Tensor } from '../backend/backend.js';
import type { ModelConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import type { ReplicaEngine } from './engine.js';
import type { TrainEngine } from './engine-api.js';
import { FsdpEngine } from './fsdp.js';
import type { LoopState } from './trainer.js';

export const checkpointConfigSchema = z
  .object({
    /** Checkpoint every this many samples (0: off). */
    every_samples: z.number().int().nonnegative().default(0),
    /** Checkpoint every this many minutes of training (0: off). */
    every_minutes: z.number().nonnegative().default(15),
    /** Keep the newest K checkpoints (older ones are deleted after a successful write). */
    keep_last: z.number().int().positive().default(3),
    /** Write a checkpoint when the run ends (budget reached or stop requested). */
    at_end: z.boolean().default(true),
  })
  .strict();

export type CheckpointConfig = z.output<typeof checkpointConfigSchema>;

export const TRAINER_STATE_FORMAT = 'adabatch-trainer-state';

export interface TrainerStateJson {
  format: string;
  version: number;
  step: number;
  samples: number;
  tokens: number;
  elapsed_s: number;
  skipped_in_a_row: number;
  adamw_step: number;
  schedule: ScheduleState;
  noise_scale: ScheduleState;
  cursor: { epoch: number; position: number } | null;
  lr: number | null;
  seed: number;
  tokenizer_hash: string | null;
  metrics_rows: number;
  config: Record<string, unknown>;
}

export interface CheckpointContext {
  runDir: string;
  config: CheckpointConfig;
  engine: TrainEngine;
  schedule: BatchSchedule;
  noise: NoiseScaleTracker;
  modelConfig: ModelConfig;
  fullConfig: Record<string, unknown>;
  tokenizerJson: string | null;
  tokenizerHash: string | null;
  tokenIds: { bos_token_id?: number; eos_token_id?: number };
  cursorAt: ((samples: number) => { epoch: number; position: number }) | null;
  seed: number;
}

export class Checkpointer {
  private lastSamples: number;
  private lastTime = performance.now();

  constructor(
    private readonly ctx: CheckpointContext,
    startSamples: number,
  ) {
    this.lastSamples = startSamples;
  }

  get dir(): string {
    return join(this.ctx.runDir, 'checkpoints');
  }

  /** True when the cadence says a checkpoint is due after this step. */
  due(state: LoopState): boolean {
    const c = this.ctx.config;
    if (c.every_samples > 0 && state.samples - this.lastSamples >= c.every_samples) return true;
    if (c.every_minutes > 0 && (performance.now() - this.lastTime) / 60000 >= c.every_minutes) return true;
    return false;
  }

  /**
   * Writes a checkpoint: a replica engine's rank 0 writes the consolidated form (other ranks return
   * null); FSDP ranks write their shards together (a collective: every rank calls it).
   */
  async save(state: LoopState, lr: number | null): Promise<string | null> {
    const { engine, schedule, noise } = this.ctx;
    const trainerState: TrainerStateJson = {
      format: TRAINER_STATE_FORMAT,
      version: 1,
      step: state.step,
      samples: state.samples,
      tokens: state.tokens,
      elapsed_s: state.elapsedS,
      skipped_in_a_row: state.skippedInARow,
      adamw_step: engine.adamw.step,
      schedule: schedule.state(),
      noise_scale: noise.state(),
      cursor: this.ctx.cursorAt?.(state.samples) ?? null,
      lr,
      seed: this.ctx.seed,
      tokenizer_hash: this.ctx.tokenizerHash,
      metrics_rows: state.step,
      config: this.ctx.fullConfig,
    };
    const common = {
      config: this.ctx.modelConfig,
      trainerState: trainerState as unknown as Record<string, unknown>,
      ...(this.ctx.tokenizerJson !== null && { tokenizerJson: this.ctx.tokenizerJson }),
      tokenIds: this.ctx.tokenIds,
      step: state.step,
    };
    const group = engine.group;
    let dir: string;
    if (engine instanceof FsdpEngine) {
      const b = engine.backend;
      const shard = (t: Tensor) => (): HostArray => b.download(t);
      dir = await writeShardedCheckpoint(this.dir, checkpointName(state.step), {
        ...common,
        params: engine.params.map(shard),
        optimizer: { m: engine.adamw.m.units.map(shard), v: engine.adamw.v.units.map(shard), metadata: { adamw_step: String(engine.adamw.step) } },
      }, { rank: group.rank, size: group.size, barrier: () => group.barrier(), agree: async (x) => (await group.allReduceScalars(Float64Array.of(x), 'sum'))[0]! });
      if (group.rank !== 0) return dir;
    } else {
      if (group.rank !== 0) return null;
      const e = engine as ReplicaEngine;
      dir = writeCheckpoint(this.dir, checkpointName(state.step), {
        ...common,
        model: tensorEntriesFromBuffers(e.replica.params),
        optimizer: [...tensorEntriesFromBuffers(e.adamw.m, ADAMW_PREFIX.m), ...tensorEntriesFromBuffers(e.adamw.v, ADAMW_PREFIX.v)],
        optimizerMetadata: { adamw_step: String(e.adamw.step) },
      }, { overwrite: true });
    }
    pruneCheckpoints(this.dir, this.ctx.config.keep_last, { protect: [checkpointName(state.step)] });
    this.lastSamples = state.samples;
    this.lastTime = performance.now();
    return dir;
  }
}

/**
 * Restores parameters, moments and the optimizer step from a (consolidated or consolidated-on-read)
 * checkpoint into either engine, so a run saved on N ranks resumes on any M ranks.
 */
export function restoreEngine(engine: TrainEngine, data: CheckpointData): void {
  const state = parseTrainerState(data.trainerState, data.dir);
  if (!data.optimizer) throw new UserError(`${data.dir}: the checkpoint has no optimizer state, so it cannot be resumed exactly`);
  const m = tensorsWithPrefix(data.optimizer, ADAMW_PREFIX.m);
  const v = tensorsWithPrefix(data.optimizer, ADAMW_PREFIX.v);
  if (engine instanceof FsdpEngine) {
    engine.loadParams(data.model);
    engine.loadOptimizer(m, v, state.adamw_step);
    return;
  }
  const e = engine as ReplicaEngine;
  e.replica.params.fromHost(data.model);
  e.adamw.m.fromHost(m);
  e.adamw.v.fromHost(v);
  e.adamw.step = state.adamw_step;
}

export function parseTrainerState(raw: Record<string, unknown>, dir: string): TrainerStateJson {
  const s = raw as Partial<TrainerStateJson>;
  if (s.format !== TRAINER_STATE_FORMAT) throw new UserError(`${join(dir, 'trainer_state.json')}: not an adabatch trainer state (format ${JSON.stringify(s.format)})`);
  if (s.version !== 1) throw new UserError(`${join(dir, 'trainer_state.json')}: unsupported version ${String(s.version)}`);
  for (const k of ['step', 'samples', 'tokens', 'elapsed_s', 'skipped_in_a_row', 'adamw_step', 'metrics_rows'] as const) {
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k])) throw new UserError(`${join(dir, 'trainer_state.json')}: field '${k}' is missing or not a number`);
  }
  if (!s.schedule || !s.noise_scale || !s.config) throw new UserError(`${join(dir, 'trainer_state.json')}: schedule, noise_scale or config is missing`);
  return s as TrainerStateJson;
}

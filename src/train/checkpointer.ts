/**
 * When and what the training loop checkpoints: model and optimizer state by Hugging Face name (AdamW:
 * exp_avg.<name>, exp_avg_sq.<name>; the others' in docs/optimizers.md), and a trainer_state.json
 * holding everything else a resume needs to continue bit-exactly (counters, the optimizer's name, step
 * and scalar state, schedule and noise-scale state, the data cursor, the full config, the tokenizer hash).
 * Cadence: every N samples and/or every M minutes, plus at the end and on a stop request; the last K
 * are kept.
 */
import { join } from 'node:path';
import { z } from 'zod';
import type { BatchSchedule, ScheduleState } from '../batch/types.js';
import type { NoiseScaleTracker } from '../batch/noise-scale.js';
import { checkpointName, pruneCheckpoints, type CheckpointData } from '../io/checkpoint.js';
import { OPTIMIZERS, type OptimizerName } from '../optim/config.js';
import type { ModelConfig } from '../model/config.js';
import type { EngineState, TrainEngine } from '../parallel/engine.js';
import { fileError } from '../util/files.js';
import { UserError } from '../util/errors.js';
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
  /** The optimizer's step counter (named for AdamW, the first optimizer; every optimizer's). */
  adamw_step: number;
  /** Which optimizer wrote the state (absent in checkpoints from before there was a choice: adamw). */
  optimizer?: OptimizerName;
  /** The optimizer's host scalars (adagrad_norm: sum_sq_norm), float64 kept exactly by JSON. */
  optimizer_scalars?: Record<string, number>;
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
   * Writes a checkpoint: the engine writes its state its own way (a replica's rank 0 the consolidated
   * form, FSDP ranks their shards together); a collective, so every rank calls it. Returns the
   * directory on rank 0 and null on the others.
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
      adamw_step: engine.optimizer.step,
      optimizer: engine.optimizer.name,
      optimizer_scalars: engine.optimizer.scalars(),
      schedule: schedule.state(),
      noise_scale: noise.state(),
      cursor: this.ctx.cursorAt?.(state.samples) ?? null,
      lr,
      seed: this.ctx.seed,
      tokenizer_hash: this.ctx.tokenizerHash,
      metrics_rows: state.step,
      config: this.ctx.fullConfig,
    };
    const name = checkpointName(state.step);
    let dir: string | null;
    try {
      dir = await engine.saveCheckpoint(this.dir, name, {
        config: this.ctx.modelConfig,
        trainerState: trainerState as unknown as Record<string, unknown>,
        ...(this.ctx.tokenizerJson !== null && { tokenizerJson: this.ctx.tokenizerJson }),
        tokenIds: this.ctx.tokenIds,
        step: state.step,
      });
    } catch (e) {
      // Disk full, read-only, no permission: the write was abandoned and earlier checkpoints are intact.
      if (typeof (e as NodeJS.ErrnoException).code === 'string' && (e as NodeJS.ErrnoException).syscall) throw fileError('write the checkpoint', join(this.dir, name), e);
      throw e;
    }
    if (engine.group.rank === 0) pruneCheckpoints(this.dir, this.ctx.config.keep_last, { protect: [name] });
    this.lastSamples = state.samples;
    this.lastTime = performance.now();
    return dir;
  }
}

/**
 * The engine state a (consolidated, or consolidated-on-read) checkpoint holds: parameters and the
 * optimizer's state, step and scalars, so a run saved on N ranks resumes on any M ranks, DDP or FSDP.
 */
export function engineStateOf(data: CheckpointData, trainerState: TrainerStateJson): EngineState {
  if (!data.optimizer) throw new UserError(`${data.dir}: the checkpoint has no optimizer state, so it cannot be resumed exactly`);
  return {
    params: data.model,
    optimizer: { name: trainerState.optimizer ?? 'adamw', tensors: data.optimizer, step: trainerState.adamw_step, scalars: trainerState.optimizer_scalars ?? {} },
  };
}

export function parseTrainerState(raw: Record<string, unknown>, dir: string): TrainerStateJson {
  const s = raw as Partial<TrainerStateJson>;
  if (s.format !== TRAINER_STATE_FORMAT) throw new UserError(`${join(dir, 'trainer_state.json')}: not an adabatch trainer state (format ${JSON.stringify(s.format)})`);
  if (s.version !== 1) throw new UserError(`${join(dir, 'trainer_state.json')}: unsupported version ${String(s.version)}`);
  for (const k of ['step', 'samples', 'tokens', 'elapsed_s', 'skipped_in_a_row', 'adamw_step', 'metrics_rows'] as const) {
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k])) throw new UserError(`${join(dir, 'trainer_state.json')}: field '${k}' is missing or not a number`);
  }
  if (s.optimizer !== undefined && !(OPTIMIZERS as readonly unknown[]).includes(s.optimizer)) throw new UserError(`${join(dir, 'trainer_state.json')}: field 'optimizer' is ${JSON.stringify(s.optimizer)}, not one of ${OPTIMIZERS.join(', ')}`);
  const scalars = s.optimizer_scalars as unknown;
  if (scalars !== undefined && (scalars === null || typeof scalars !== 'object' || Array.isArray(scalars) || Object.values(scalars).some((v) => typeof v !== 'number' || !Number.isFinite(v)))) {
    throw new UserError(`${join(dir, 'trainer_state.json')}: field 'optimizer_scalars' must map names to finite numbers`);
  }
  if (!s.schedule || !s.noise_scale || !s.config) throw new UserError(`${join(dir, 'trainer_state.json')}: schedule, noise_scale or config is missing`);
  return s as TrainerStateJson;
}

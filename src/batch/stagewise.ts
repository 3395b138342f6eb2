/**
 * Baseline schedules whose batch is a fixed function of the samples seen (so they have no state to
 * speak of, and a resume continues exactly):
 *   - stagewise: sizes with fractions of the sample budget (paper: 2048→4096→8192 over 2.5%/2.5%/95%);
 *   - linear ramp (Megatron's rampup_batch_size): start, +increment every R/((max−start)/increment)
 *     samples, reaching max after R samples.
 */
import type { BatchLayout, BatchSchedule, GradientStats, ScheduleDecision, ScheduleState, StatisticNeeds } from './types.js';

const NO_NEEDS: StatisticNeeds = { localNorms: false, innerProducts: false, microSamples: false };

abstract class FixedSchedule implements BatchSchedule {
  abstract readonly name: string;
  readonly needs = NO_NEEDS;
  abstract targetBatch(samplesSeen: number): number;
  /** The largest batch the schedule ever asks for. */
  abstract readonly maxTarget: number;

  validate(layout: BatchLayout): void {
    if (this.maxTarget > layout.maxBatch) {
      throw new Error(`${this.name} schedule: batch ${this.maxTarget} exceeds the layout's maximum global batch ${layout.maxBatch}`);
    }
  }

  observe(_stats: GradientStats, samplesSeen: number): ScheduleDecision {
    return { testStat: null, gradVar: null, testPassed: null, nextBatch: this.targetBatch(samplesSeen) };
  }

  state(): ScheduleState {
    return { schedule: this.name };
  }

  restore(state: ScheduleState): void {
    if (state.schedule !== this.name) throw new Error(`${this.name} schedule: checkpoint holds the state of schedule '${String(state.schedule)}'`);
  }
}

export interface Stage {
  batch: number;
  /** Fraction of the sample budget spent at this batch; the fractions sum to 1. */
  fraction: number;
}

export class StagewiseSchedule extends FixedSchedule {
  readonly name = 'stagewise';
  readonly maxTarget: number;
  /** ends[i]: samples seen when stage i ends (the last stage runs to the end of training). */
  readonly ends: number[];

  constructor(
    readonly stages: readonly Stage[],
    readonly sampleBudget: number,
  ) {
    super();
    const who = 'stagewise schedule';
    if (stages.length === 0) throw new Error(`${who}: stages must not be empty`);
    if (!Number.isInteger(sampleBudget) || sampleBudget < 1) throw new Error(`${who}: sampleBudget must be a positive integer, got ${sampleBudget}`);
    let cum = 0;
    this.ends = stages.map((s, i) => {
      if (!Number.isInteger(s.batch) || s.batch < 1) throw new Error(`${who}: stages[${i}].batch must be a positive integer, got ${s.batch}`);
      if (!(s.fraction > 0 && s.fraction <= 1)) throw new Error(`${who}: stages[${i}].fraction must be in (0, 1], got ${s.fraction}`);
      if (i > 0 && s.batch < stages[i - 1]!.batch) throw new Error(`${who}: stages[${i}].batch ${s.batch} is smaller than the previous stage's ${stages[i - 1]!.batch} (the batch never decreases)`);
      cum += s.fraction;
      return Math.round(cum * sampleBudget);
    });
    if (Math.abs(cum - 1) > 1e-6) throw new Error(`${who}: stage fractions must sum to 1, got ${cum}`);
    this.maxTarget = stages[stages.length - 1]!.batch;
  }

  targetBatch(samplesSeen: number): number {
    for (let i = 0; i < this.stages.length; i++) if (samplesSeen < this.ends[i]!) return this.stages[i]!.batch;
    return this.maxTarget;
  }
}

export class LinearRampSchedule extends FixedSchedule {
  readonly name = 'ramp';
  readonly samplesPerIncrement: number;

  constructor(
    readonly start: number,
    readonly increment: number,
    readonly rampSamples: number,
    readonly maxTarget: number,
  ) {
    super();
    const who = 'ramp schedule';
    for (const [k, v] of [['start', start], ['increment', increment], ['max', maxTarget]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${who}: ${k} must be a positive integer, got ${v}`);
    }
    if (!Number.isInteger(rampSamples) || rampSamples < 0) throw new Error(`${who}: ramp_samples must be a non-negative integer, got ${rampSamples}`);
    if (start > maxTarget) throw new Error(`${who}: start ${start} exceeds max ${maxTarget}`);
    if ((maxTarget - start) % increment !== 0) {
      throw new Error(`${who}: max − start = ${maxTarget - start} must be a multiple of increment ${increment} (as in Megatron's rampup_batch_size)`);
    }
    const increments = (maxTarget - start) / increment;
    this.samplesPerIncrement = increments > 0 ? rampSamples / increments : Infinity;
  }

  targetBatch(samplesSeen: number): number {
    if (samplesSeen >= this.rampSamples) return this.maxTarget;
    const steps = Math.floor(samplesSeen / this.samplesPerIncrement);
    return Math.min(this.maxTarget, this.start + steps * this.increment);
  }
}

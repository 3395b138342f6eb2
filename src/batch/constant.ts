/** The constant batch size: the baseline every adaptive schedule is compared with. */
import type { BatchLayout, BatchSchedule, GradientStats, ScheduleDecision, ScheduleState } from './types.js';

export class ConstantSchedule implements BatchSchedule {
  readonly name = 'constant';
  readonly needs = { localNorms: false, innerProducts: false, microSamples: false };

  constructor(readonly batch: number) {
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`constant schedule: batch must be a positive integer, got ${batch}`);
  }

  validate(layout: BatchLayout): void {
    if (this.batch > layout.maxBatch) throw new Error(`constant schedule: batch ${this.batch} exceeds the maximum global batch ${layout.maxBatch}`);
  }

  targetBatch(): number {
    return this.batch;
  }

  observe(_stats: GradientStats): ScheduleDecision {
    return { testStat: null, gradVar: null, testPassed: null, nextBatch: this.batch };
  }

  state(): ScheduleState {
    return { batch: this.batch };
  }

  restore(state: ScheduleState): void {
    if (state.batch !== this.batch) throw new Error(`constant schedule: checkpoint has batch ${String(state.batch)}, config has ${this.batch}`);
  }
}

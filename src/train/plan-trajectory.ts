/**
 * A run's trajectory by samples, before it trains: for each row the samples and tokens seen, the
 * steps taken, the batch, the learning rate and the time elapsed. Computed exactly as the trainer
 * will (planBatch for the layout, the last step shortened to the budget, learningRate of the step's
 * start and batch times lr_scaling).
 *   - Fixed schedules (constant, stagewise, ramp): one trajectory. The batch only changes where the
 *     schedule's target does, so the steps are counted in segments of one batch each, not one by
 *     one (targets never decrease, so a binary search finds where a segment ends).
 *   - Adaptive schedules: the batch lies anywhere between the realised initial and max batches, so
 *     every quantity is a range [at the smallest batch, at the largest], in whichever order is lower.
 */
import { planBatch } from '../batch/planner.js';
import type { BatchLayout, BatchPlan, BatchSchedule } from '../batch/types.js';
import { decayStartSamples, learningRate, warmupSamples, type LrConfig } from '../optim/lr.js';

/** [low, high]: equal when the value is known exactly. */
export type Range = [number, number];

export interface PlanRow {
  /** Samples seen before the row's step (fixed schedules: a step boundary). */
  samples: number;
  tokens: number;
  /** Steps taken before it. */
  steps: Range;
  /** The global batch of its step, as realised (J·M·m; the last step may be shortened). */
  batch: Range;
  /** The learning rate of its step (lr_scaling included). */
  lr: Range;
  /** Estimated seconds elapsed before it; null without a timing. */
  elapsedS: Range | null;
  /** Why the row is there: even (evenly spaced), batch change, warmup end, decay start, end. */
  marks: string[];
}

export interface Trajectory {
  rows: PlanRow[];
  /** Optimizer steps of the whole run. */
  steps: Range;
  /** Estimated seconds of the whole run; null without a timing. */
  seconds: Range | null;
  /** Fixed schedules: where the batch changes (samples, realised batch); null for adaptive ones. */
  changes: Array<{ samples: number; step: number; plan: BatchPlan }> | null;
}

export interface TrajectoryInput {
  schedule: BatchSchedule;
  /** True for constant, stagewise and ramp: the batch is a function of the samples seen. */
  fixed: boolean;
  layout: BatchLayout;
  budgetSamples: number;
  seqLen: number;
  lr: LrConfig;
  /** lr_scaling's multiplier for a step of this global batch. */
  lrScale: (globalBatch: number) => number;
  /** Estimated seconds of one step with this plan; null: no time estimate. */
  stepSeconds: ((plan: BatchPlan) => number) | null;
  /** The realised initial and max batches (adaptive schedules). */
  batchRange: [BatchPlan, BatchPlan];
  /** Evenly spaced rows. */
  rows?: number;
}

/** At most this many batch changes get rows of their own (a ramp can have thousands). */
const MAX_CHANGE_ROWS = 16;

interface Segment {
  start: number;
  step: number;
  count: number;
  plan: BatchPlan;
  /** Seconds elapsed before the segment. */
  elapsed: number;
}

/** Fixed schedules: runs of steps at one batch, from the start to the budget. */
function segments(x: TrajectoryInput): Segment[] {
  const out: Segment[] = [];
  let [s, step, elapsed] = [0, 0, 0];
  while (s < x.budgetSamples) {
    const target = x.schedule.targetBatch(s);
    const plan = planBatch(target, x.layout, x.schedule.needs.microSamples);
    const b = plan.globalBatch;
    // The largest count whose last step still starts at this target.
    let [lo, hi] = [1, Math.ceil((x.budgetSamples - s) / b)];
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (x.schedule.targetBatch(s + (mid - 1) * b) === target) lo = mid;
      else hi = mid - 1;
    }
    out.push({ start: s, step, count: lo, plan, elapsed });
    elapsed += lo * (x.stepSeconds?.(plan) ?? 0);
    s += lo * b;
    step += lo;
  }
  return out;
}

const rangeOf = (a: number, b: number): Range => [Math.min(a, b), Math.max(a, b)];

export function trajectory(x: TrajectoryInput): Trajectory {
  const budget = x.budgetSamples;
  const lrAt = (samples: number, batch: number): number => learningRate(x.lr, { samples, seqLen: x.seqLen, batch }, budget) * x.lrScale(batch);
  const warm = warmupSamples(x.lr, budget);
  const points: Array<[number, string]> = Array.from({ length: x.rows ?? 10 }, (_, i) => [Math.floor((i * budget) / (x.rows ?? 10)), 'even']);
  if (warm > 0 && warm < budget) points.push([warm, 'warmup end']);
  if (x.lr.schedule === 'wsd' || x.lr.schedule === 'power') points.push([Math.ceil(decayStartSamples(x.lr, budget)), 'decay start']);

  const rows = new Map<number, PlanRow>();
  const add = (row: Omit<PlanRow, 'marks'>, mark: string): void => {
    const had = rows.get(row.samples);
    if (!had) rows.set(row.samples, { ...row, marks: [mark] });
    else if (!had.marks.includes(mark)) had.marks.push(mark);
  };

  if (x.fixed) {
    const segs = segments(x);
    const last = segs.at(-1)!;
    const totalSteps = last.step + last.count;
    const stepAt = (seg: Segment, i: number): Omit<PlanRow, 'marks'> => {
      const samples = seg.start + i * seg.plan.globalBatch;
      const batch = Math.min(seg.plan.globalBatch, budget - samples);
      const elapsed = seg.elapsed + i * (x.stepSeconds?.(seg.plan) ?? 0);
      return { samples, tokens: samples * x.seqLen, steps: [seg.step + i, seg.step + i], batch: [batch, batch], lr: [lrAt(samples, batch), lrAt(samples, batch)], elapsedS: x.stepSeconds ? [elapsed, elapsed] : null };
    };
    for (const [at, mark] of points) {
      const seg = segs.findLast((g) => g.start <= at)!;
      add(stepAt(seg, Math.min(seg.count - 1, Math.floor((at - seg.start) / seg.plan.globalBatch))), mark);
    }
    if (segs.length <= MAX_CHANGE_ROWS) for (const seg of segs.slice(1)) add(stepAt(seg, 0), 'batch change');
    const seconds = last.elapsed + last.count * (x.stepSeconds?.(last.plan) ?? 0);
    const end = stepAt(last, last.count - 1);
    add({ ...end, samples: budget, tokens: budget * x.seqLen, steps: [totalSteps, totalSteps], lr: [lrAt(budget, end.batch[0]), lrAt(budget, end.batch[0])], elapsedS: x.stepSeconds ? [seconds, seconds] : null }, 'end');
    return {
      rows: [...rows.values()].sort((a, b) => a.samples - b.samples),
      steps: [totalSteps, totalSteps],
      seconds: x.stepSeconds ? [seconds, seconds] : null,
      changes: segs.map((g) => ({ samples: g.start, step: g.step, plan: g.plan })),
    };
  }

  // Adaptive: everything at the smallest and at the largest realised batch.
  const [small, large] = x.batchRange;
  const stepsBefore = (samples: number, plan: BatchPlan): number => Math.ceil(samples / plan.globalBatch);
  const secondsBefore = (samples: number, plan: BatchPlan): number => stepsBefore(samples, plan) * (x.stepSeconds?.(plan) ?? 0);
  const rowAt = (samples: number): Omit<PlanRow, 'marks'> => ({
    samples,
    tokens: samples * x.seqLen,
    steps: rangeOf(stepsBefore(samples, large), stepsBefore(samples, small)),
    batch: [small.globalBatch, large.globalBatch],
    lr: rangeOf(lrAt(samples, small.globalBatch), lrAt(samples, large.globalBatch)),
    elapsedS: x.stepSeconds ? rangeOf(secondsBefore(samples, small), secondsBefore(samples, large)) : null,
  });
  for (const [at, mark] of points) add(rowAt(at), mark);
  add(rowAt(budget), 'end');
  const end = rows.get(budget)!;
  return { rows: [...rows.values()].sort((a, b) => a.samples - b.samples), steps: end.steps, seconds: end.elapsedS, changes: null };
}

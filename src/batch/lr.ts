/**
 * Learning-rate scaling on a batch change (adaptive-batch-spec.md, "Learning rate"): the trainer
 * multiplies the rate of its LR schedule (optim/lr.ts) by
 *     none (paper, default): 1;   linear: b/b₀;   sqrt: √(b/b₀),
 * with b the global batch of the step and b₀ the schedule's initial batch. Which rule suits which
 * optimizer (and that the power LR schedule takes none) is train/lr-rules.ts.
 */
export const LR_SCALINGS = ['none', 'linear', 'sqrt'] as const;
export type LrScaling = (typeof LR_SCALINGS)[number];

export function lrScale(rule: LrScaling, batch: number, initialBatch: number): number {
  if (!(batch > 0) || !(initialBatch > 0)) throw new Error(`lrScale: batch sizes must be positive, got batch ${batch}, initial ${initialBatch}`);
  switch (rule) {
    case 'none':
      return 1;
    case 'linear':
      return batch / initialBatch;
    case 'sqrt':
      return Math.sqrt(batch / initialBatch);
    default:
      throw new Error(`lrScale: rule must be one of ${LR_SCALINGS.map((r) => `'${r}'`).join(', ')}, got '${String(rule)}'`);
  }
}

/**
 * Training's progress line (util/progress-line.ts draws it): tokens done/total, loss, batch size,
 * tokens/s, ETA.
 */
import { formatCount, formatDuration } from '../util/format.js';
import { ProgressLine } from '../util/progress-line.js';

export interface ProgressState {
  tokens: number;
  totalTokens: number;
  step: number;
  loss: number;
  batch: number;
  tokPerS: number;
  elapsedS: number;
  valLoss?: number | null;
}

export class Progress extends ProgressLine {
  update(p: ProgressState, force = false): void {
    const frac = p.totalTokens > 0 ? Math.min(1, p.tokens / p.totalTokens) : 0;
    const eta = p.tokPerS > 0 ? (p.totalTokens - p.tokens) / p.tokPerS : NaN;
    const fields = [
      `${formatCount(p.tokens)}/${formatCount(p.totalTokens)} tok`,
      `step ${p.step}`,
      `loss ${p.loss.toFixed(4)}`,
      ...(p.valLoss != null ? [`val ${p.valLoss.toFixed(4)}`] : []),
      `batch ${p.batch}`,
      `${formatCount(p.tokPerS)} tok/s`,
      `ETA ${formatDuration(eta)}`,
    ];
    this.show(frac, fields, p.elapsedS, force);
  }
}

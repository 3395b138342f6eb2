/**
 * Progress output: on a terminal, one line redrawn in place (bar, tokens done/total, loss, batch
 * size, tokens/s, ETA); otherwise plain lines every `everySeconds`, so logs stay readable.
 */
import { formatCount, formatDuration } from '../util/format.js';

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

export class Progress {
  private lastPrint = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly everySeconds = 10,
    private readonly tty = Boolean(stream.isTTY) && !process.env.CI,
  ) {}

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
    if (this.tty) {
      const width = 24;
      const done = Math.round(frac * width);
      const bar = '█'.repeat(done) + '░'.repeat(width - done);
      this.stream.write(`\r\x1b[2K${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${fields.join(' | ')}`);
      this.drawn = true;
      return;
    }
    if (force || p.elapsedS - this.lastPrint >= this.everySeconds) {
      this.lastPrint = p.elapsedS;
      this.stream.write(`[${formatDuration(p.elapsedS)}] ${(frac * 100).toFixed(1)}% ${fields.join(' | ')}\n`);
    }
  }

  /** Prints a message on its own line without garbling the bar. */
  log(message: string): void {
    if (this.tty && this.drawn) this.stream.write('\r\x1b[2K');
    this.stream.write(message + '\n');
    this.drawn = false;
  }

  finish(): void {
    if (this.tty && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}

/**
 * One progress line on a stream: on a terminal, redrawn in place (a bar when the fraction is known,
 * then the fields); otherwise a plain `[elapsed] fraction fields` line every `everySeconds`, so logs
 * stay readable. Training (train/progress.ts) and `data prepare` (data/shards/prepare-progress.ts)
 * say what the fields are.
 */
import { formatDuration } from './format.js';

export class ProgressLine {
  private lastPrint = 0;
  private drawn = false;

  constructor(
    protected readonly stream: NodeJS.WriteStream = process.stderr,
    protected readonly everySeconds = 10,
    protected readonly tty = Boolean(stream.isTTY) && !process.env.CI,
  ) {}

  /** Shows `fields` with the fraction done (null: unknown), `elapsedS` into the work. */
  protected show(frac: number | null, fields: readonly string[], elapsedS: number, force: boolean): void {
    if (this.tty) {
      const width = 24;
      const done = Math.round((frac ?? 0) * width);
      const bar = frac === null ? '' : '█'.repeat(done) + '░'.repeat(width - done) + ` ${(frac * 100).toFixed(0).padStart(3)}% `;
      this.stream.write(`\r\x1b[2K${bar}${fields.join(' | ')}`);
      this.drawn = true;
      return;
    }
    if (force || elapsedS - this.lastPrint >= this.everySeconds) {
      this.lastPrint = elapsedS;
      this.stream.write(`[${formatDuration(elapsedS)}] ${frac === null ? '' : `${(frac * 100).toFixed(1)}% `}${fields.join(' | ')}\n`);
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

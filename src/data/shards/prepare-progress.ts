/**
 * `data prepare`'s progress line on stderr (util/progress-line.ts draws it, as for training): input
 * bytes done/total, MB/s of text, tokens, shards, ETA. Rates count only the work done in this run (documents
 * skipped on resume are read again but not tokenised, so they would inflate them).
 */
import { formatCount, formatDuration } from '../../util/format.js';
import { ProgressLine } from '../../util/progress-line.js';

export interface PrepareState {
  /** Input bytes done (files finished plus an estimate of the current one) and in all, when known. */
  inputBytes: number;
  totalInputBytes: number | null;
  /** UTF-8 bytes of text tokenised, and tokens written, in this run. */
  textBytes: number;
  tokens: number;
  documents: number;
  shards: number;
}

const MB = 1e6;

export class PrepareProgress extends ProgressLine {
  private readonly t0 = performance.now();
  /** Where and when this run's own work started (after what a resume skips). */
  private started: { inputBytes: number; time: number } | null = null;

  /** Marks where this run's own work starts (after the documents a resume skips). */
  start(inputBytes: number): void {
    this.started = { inputBytes, time: performance.now() };
  }

  update(p: PrepareState, force = false): void {
    const now = performance.now();
    const elapsed = (now - this.t0) / 1000;
    const working = Math.max(1e-9, (now - (this.started?.time ?? now)) / 1000);
    const frac = p.totalInputBytes ? Math.min(1, p.inputBytes / p.totalInputBytes) : null;
    const inputRate = (p.inputBytes - (this.started?.inputBytes ?? p.inputBytes)) / working;
    const eta = p.totalInputBytes !== null && inputRate > 0 ? (p.totalInputBytes - p.inputBytes) / inputRate : NaN;
    const fields = [
      p.totalInputBytes !== null ? `${(p.inputBytes / MB).toFixed(1)}/${(p.totalInputBytes / MB).toFixed(1)} MB in` : `${formatCount(p.documents)} docs`,
      `${(p.textBytes / MB / working).toFixed(1)} MB/s`,
      `${formatCount(p.tokens)} tok`,
      `${p.shards} shard${p.shards === 1 ? '' : 's'}`,
      ...(p.totalInputBytes !== null ? [`ETA ${formatDuration(eta)}`] : []),
    ];
    this.show(frac, fields, elapsed, force);
  }
}

/**
 * How far through the inputs' bytes the reading is, for progress and ETA: the files finished, plus
 * within the current one the characters read as a stand-in for bytes when it is uncompressed text or
 * JSONL (for compressed and Parquet files the count moves when the file is done), or a token file's
 * read position. Unknown (null total) when an input has no files (Brown is embedded).
 */
export class InputPosition {
  readonly total: number | null;
  private readonly inputBytes: number[];
  private readonly fileBytes: Array<Map<string, number>>;
  private input = -1;
  /** Bytes of the inputs before the current one, and of the current one's finished files (or read position). */
  private base = 0;
  private done = 0;
  private current: { file: string; bytes: number; chars: number; estimate: boolean } | null = null;

  constructor(inputs: ReadonlyArray<{ files: ReadonlyArray<{ path: string; bytes: number }> }>) {
    this.fileBytes = inputs.map((i) => new Map(i.files.map((f) => [f.path, f.bytes])));
    this.inputBytes = inputs.map((i) => i.files.reduce((n, f) => n + f.bytes, 0));
    this.total = inputs.some((i) => i.files.length === 0) ? null : this.inputBytes.reduce((a, b) => a + b, 0);
  }

  get bytes(): number {
    const c = this.current;
    return this.base + this.done + (c !== null && c.estimate ? Math.min(c.bytes, c.chars) : 0);
  }

  startInput(i: number): void {
    if (this.input >= 0) this.base += this.inputBytes[this.input]!;
    this.input = i;
    this.done = 0;
    this.current = null;
  }

  /** A document of the current input was read from `file` (undefined: an embedded corpus). */
  document(file: string | undefined, chars: number): void {
    if (file === undefined) return;
    if (this.current?.file !== file) {
      if (this.current !== null) this.done += this.current.bytes;
      this.current = { file, bytes: this.fileBytes[this.input]!.get(file) ?? 0, chars: 0, estimate: !/\.(gz|zst|parquet)$/.test(file) };
    }
    this.current.chars += chars;
  }

  /** The current input is a token file, read up to byte `position`. */
  tokenFile(position: number): void {
    this.done = position;
  }
}

/**
 * metrics.jsonl: one JSON object per optimizer step, appended and flushed as the run goes, so a
 * crashed or interrupted run keeps every completed row.
 */
import { closeSync, existsSync, readFileSync, writeSync } from 'node:fs';
import { fileError, openAppendNoFollow } from '../util/files.js';

/**
 * A row as read back (any version's fields): scalars, and per-name counts (a mixture's
 * tokens_by_source); the trainer's rows are typed by train/step-metrics.ts.
 */
export type MetricsRow = Record<string, number | string | boolean | null | Record<string, number>>;

export class MetricsWriter {
  private fd: number | null;

  constructor(readonly path: string) {
    this.fd = openAppendNoFollow(path);
  }

  write(row: object): void {
    if (this.fd === null) throw new Error(`metrics file ${this.path} is closed`);
    try {
      writeSync(this.fd, JSON.stringify(row) + '\n');
    } catch (e) {
      throw fileError('append to', this.path, e);
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Reads metrics rows; a torn last line (from a killed writer) is ignored, any other bad line is an error. */
export function readMetrics(path: string): MetricsRow[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  const rows: MetricsRow[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      rows.push(JSON.parse(line) as MetricsRow);
    } catch {
      if (i < lines.length - 1 && lines.slice(i + 1).some((l) => l.trim() !== '')) throw new Error(`${path}: line ${i + 1} is not valid JSON`);
    }
  });
  return rows;
}

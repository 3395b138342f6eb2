/**
 * The bad-record policy (`data.on_bad_record`): under `fail` (the default) the first bad record or
 * unreadable file stops the read with an error naming the file and the line or row; under `skip` it
 * is left out, and each file's skips are logged once, with their count and places
 * (`skipped 3 malformed records in a.jsonl (lines 4, 9, 12); first: line 4: invalid JSON …`).
 * Nothing is ever dropped without a word.
 */
import { UserError } from '../../util/errors.js';

export type OnBadRecord = 'fail' | 'skip';

export interface ReadOptions {
  onBadRecord: OnBadRecord;
  log: (msg: string) => void;
}

/** Places listed in a skip summary; the count is always exact. */
const LISTED = 10;

type Unit = 'line' | 'row';

/** One file's bad input, under the policy. */
export class BadInput {
  private skipped = 0;
  private readonly places: string[] = [];
  private unit: Unit = 'line';
  private first = '';

  constructor(
    readonly file: string,
    private readonly opts: ReadOptions,
  ) {}

  /** A bad record: line `at` of a text format, or row `at` (to `last`, for a row group) of a table; throws under `fail`. */
  record(unit: Unit, at: number, why: string, last = at): void {
    const place = at === last ? String(at) : `${at}–${last}`;
    const named = `${unit}${at === last ? '' : 's'} ${place}`;
    if (this.opts.onBadRecord === 'fail') {
      // file:line is what editors and terminals open; a row has no such convention.
      const where = unit === 'line' ? `${this.file}:${at}` : `${this.file}: ${named}`;
      throw new UserError(`${where}: ${why} (on_bad_record: skip would leave such records out)`);
    }
    this.unit = unit;
    this.skipped += last - at + 1;
    if (this.places.length < LISTED) this.places.push(place);
    else if (this.places.length === LISTED) this.places.push('…');
    if (this.first === '') this.first = `${named}: ${why}`;
  }

  /** The file cannot be read, or not past `after` (e.g. "line 120"); throws under `fail`, else leaves the rest out. */
  unreadable(why: string, after?: string): void {
    if (this.opts.onBadRecord === 'fail') throw new UserError(`${this.file}${after ? ` after ${after}` : ''}: ${why} (on_bad_record: skip would leave it out)`);
    this.opts.log(`data: skipped ${after ? `the rest of ${this.file} after ${after}` : this.file}: ${why}`);
  }

  /** Logs the file's skipped records, if any (call once, when the file is done). */
  finish(): void {
    if (this.skipped === 0) return;
    const what = `${this.skipped} malformed record${this.skipped === 1 ? '' : 's'}`;
    const units = `${this.unit}${this.skipped === 1 ? '' : 's'}`;
    this.opts.log(`data: skipped ${what} in ${this.file} (${units} ${this.places.join(', ')}); first: ${this.first}`);
  }
}

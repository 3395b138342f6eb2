/**
 * Reading documents from sources: files, folders and glob patterns of text, JSONL (plain, .gz, .zst)
 * and Parquet, each source with its own text field. `readSources` streams documents in a fixed order
 * (sources as given, files in name order, records in file order) and never holds more than one file's
 * current chunk or row group, so a tokenizing pass can run over a corpus of any size:
 *
 *   const sources = resolveSources([{ path: 'data/*.parquet', textField: 'text' }]);
 *   for await (const d of readSources(sources, { onBadRecord: 'fail', log })) d.id, d.text, d.file, d.locator;
 *
 * One file per format (text.ts, jsonl.ts, parquet.ts); files.ts lists a source's files, bad-input.ts
 * applies the bad-record policy, fingerprint.ts keys caches by the files' content.
 */
import { UserError } from '../../util/errors.js';
import { BadInput, type ReadOptions } from './bad-input.js';
import { expandSource, type Format, type SourceFile } from './files.js';
import { readJsonl } from './jsonl.js';
import { readParquet } from './parquet.js';
import { readText } from './text.js';
import type { FormatReader, SourceDocument } from './types.js';

export type { OnBadRecord, ReadOptions } from './bad-input.js';
export type { SourceFile } from './files.js';
export type { SourceDocument } from './types.js';

export interface SourceSpec {
  /** A file, folder or glob pattern, as the user wrote it. */
  path: string;
  /** The JSONL field or Parquet column holding the text (text files ignore it). */
  textField: string;
}

export interface ResolvedSource extends SourceSpec {
  files: SourceFile[];
}

const READERS: Record<Format, FormatReader> = { text: readText, jsonl: readJsonl, parquet: readParquet };

/** Lists every source's files (checking that each names at least one); reads nothing. */
export function resolveSources(specs: readonly SourceSpec[]): ResolvedSource[] {
  if (specs.length === 0) throw new UserError('corpus: no paths given');
  return specs.map((s) => ({ ...s, files: expandSource(s.path) }));
}

/** The documents of the sources, in order; a source that yields none is an error whatever the policy. */
export async function* readSources(sources: readonly ResolvedSource[], opts: ReadOptions): AsyncGenerator<SourceDocument> {
  for (const source of sources) {
    let count = 0;
    for (const file of source.files) {
      const bad = new BadInput(file.path, opts);
      try {
        for await (const d of READERS[file.format](file, source.textField, bad)) {
          count++;
          yield { id: d.key === null ? file.id : `${file.id}:${d.key}`, text: d.text, source: source.path, file: file.path, locator: d.locator };
        }
      } catch (e) {
        // A file that vanished or cannot be opened (a failed system call) is the user's to fix, not a crash.
        if (e instanceof Error && 'syscall' in e) throw new UserError(`${file.path}: cannot read (${e.message})`);
        throw e;
      }
      bad.finish();
    }
    if (count === 0) throw new UserError(`corpus source ${source.path} yields no documents (${source.files.length} file${source.files.length === 1 ? '' : 's'} read)`);
  }
}

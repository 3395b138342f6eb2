/**
 * Corpora as streams of documents with stable ids (the ids decide the train/validation split):
 * - `brown`: the embedded Brown corpus, one document per text, ids "ca01" … "cr09";
 * - sources (sources/): files, folders and glob patterns of text (one document per file, id
 *   "<folder or file name>/<path inside>"), JSONL (one per line, id "<file id>:<line>") and Parquet
 *   (one per row, id "<file id>:<row>"), plain or .gz/.zst, each source with its own text field.
 * The fingerprint is the sources' content (SHA-256 of every file, see sources/fingerprint.ts), so a
 * cached tokenisation is reused exactly while the bytes it came from are unchanged.
 */
import { statSync } from 'node:fs';
import { BROWN_TEXT_VERSION, brownDocuments, brownPackage } from './brown.js';
import { canonicalJson, sha256Hex } from './json.js';
import { fileSha256 } from './sources/fingerprint.js';
import { readSources, resolveSources, type OnBadRecord, type ResolvedSource } from './sources/index.js';

export interface Document {
  id: string;
  text: string;
  /** The file holding it (sources; absent for Brown), for progress reports. */
  file?: string;
}

/** A source in a config: a path or pattern, or one with its own text field. */
export type SourceEntry = string | { path: string; text_field?: string };

export type CorpusSpec = 'brown' | { paths: SourceEntry[]; text_field?: string };

export interface CorpusOptions {
  /** What a bad record or unreadable file does (default 'fail'). */
  onBadRecord?: OnBadRecord;
  /** Where skipped records are reported. */
  log?: (msg: string) => void;
}

export interface Corpus {
  /** For messages, e.g. "brown (500 texts)". */
  readonly description: string;
  /** Changes whenever the documents may have changed. */
  fingerprint(): Promise<string>;
  /** The documents, in a fixed order, streamed. */
  documents(): AsyncIterable<Document>;
  /** The files the documents come from, in reading order, with their sizes (none for Brown, which is embedded). */
  files(): Array<{ path: string; bytes: number }>;
}

/** Bump when reading rules change (ids, which files, how records are parsed). */
const READER_VERSION = 2;

class SourceCorpus implements Corpus {
  readonly description: string;
  private readonly sources: ResolvedSource[];

  constructor(
    spec: Exclude<CorpusSpec, 'brown'>,
    private readonly opts: Required<CorpusOptions>,
  ) {
    const textField = spec.text_field ?? 'text';
    this.sources = resolveSources(spec.paths.map((p) => (typeof p === 'string' ? { path: p, textField } : { path: p.path, textField: p.text_field ?? textField })));
    const files = this.sources.reduce((n, s) => n + s.files.length, 0);
    this.description = `${this.sources.map((s) => s.path).join(', ')} (${files} file${files === 1 ? '' : 's'})`;
  }

  async fingerprint(): Promise<string> {
    const sources = [];
    for (const s of this.sources) {
      const files = [];
      for (const f of s.files) files.push([f.id, f.format, f.compression, await fileSha256(f.path)]);
      sources.push({ text_field: s.textField, files });
    }
    // The policy is part of the key: a cache built while skipping bad records must not satisfy a run that fails on them.
    return sha256Hex(canonicalJson({ kind: 'files', reader: READER_VERSION, on_bad_record: this.opts.onBadRecord, sources }));
  }

  documents(): AsyncIterable<Document> {
    return readSources(this.sources, this.opts);
  }

  files(): Array<{ path: string; bytes: number }> {
    return this.sources.flatMap((s) => s.files.map((f) => ({ path: f.path, bytes: statSync(f.path, { throwIfNoEntry: false })?.size ?? 0 })));
  }
}

class BrownCorpus implements Corpus {
  private readonly pkg = brownPackage();
  readonly description = `brown (${this.pkg.files.length} texts)`;

  async fingerprint(): Promise<string> {
    return sha256Hex(canonicalJson({ kind: 'brown', text: BROWN_TEXT_VERSION, version: this.pkg.version, files: this.pkg.files }));
  }

  async *documents(): AsyncIterable<Document> {
    yield* brownDocuments(this.pkg);
  }

  files(): Array<{ path: string; bytes: number }> {
    return [];
  }
}

/** Opens a corpus (lists its files and checks that each source names some; reads nothing yet). */
export function openCorpus(spec: CorpusSpec, opts: CorpusOptions = {}): Corpus {
  if (spec === 'brown') return new BrownCorpus();
  return new SourceCorpus(spec, { onBadRecord: opts.onBadRecord ?? 'fail', log: opts.log ?? (() => {}) });
}

/** All documents of a corpus in memory (for corpora that fit, as training reads them today). */
export async function readAll(corpus: Corpus): Promise<Document[]> {
  const docs: Document[] = [];
  for await (const d of corpus.documents()) docs.push({ id: d.id, text: d.text });
  return docs;
}

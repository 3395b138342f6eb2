/**
 * Corpora as lists of documents with stable ids (the ids decide the train/validation split):
 * - `brown`: the embedded Brown corpus, one document per text, ids "ca01" … "cr09";
 * - text files: one document per file, id "<folder or file name>/<path inside>";
 * - JSONL (*.jsonl, *.ndjson): one document per line, the string in `text_field`, id "<file name>:<line>".
 * Folders are walked recursively in name order, taking *.txt, *.md, *.text and JSONL files and skipping
 * hidden entries. The fingerprint (paths, sizes, modification times) is cheap, so a cached tokenisation
 * can be reused without reading the corpus.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, resolve, sep } from 'node:path';
import { BROWN_TEXT_VERSION, brownDocuments, brownPackage } from './brown.js';
import { canonicalJson, sha256Hex } from './json.js';
import { UserError } from '../util/errors.js';

export interface Document {
  id: string;
  text: string;
}

export type CorpusSpec = 'brown' | { paths: string[]; text_field?: string };

export interface Corpus {
  /** For messages, e.g. "brown (500 texts)". */
  readonly description: string;
  /** Changes whenever the documents may have changed (without reading them). */
  fingerprint(): string;
  documents(): Document[];
}

const TEXT_EXTENSIONS = ['.txt', '.md', '.text'];
const JSONL_EXTENSIONS = ['.jsonl', '.ndjson'];
/** Bump when reading rules change (ids, which files, how lines are parsed). */
const READER_VERSION = 1;

const isJsonl = (path: string): boolean => JSONL_EXTENSIONS.some((e) => path.endsWith(e));

interface InputFile {
  path: string;
  id: string;
  jsonl: boolean;
  size: number;
  mtimeMs: number;
}

function listFiles(paths: readonly string[]): InputFile[] {
  const files: InputFile[] = [];
  for (const given of paths) {
    const root = resolve(given);
    let st;
    try {
      st = statSync(root);
    } catch {
      throw new UserError(`corpus path ${given} does not exist`);
    }
    if (st.isFile()) {
      files.push({ path: root, id: basename(root), jsonl: isJsonl(root), size: st.size, mtimeMs: st.mtimeMs });
      continue;
    }
    if (!st.isDirectory()) throw new UserError(`corpus path ${given} is neither a file nor a folder`);
    const before = files.length;
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        if (e.name.startsWith('.')) continue;
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && (TEXT_EXTENSIONS.some((x) => e.name.endsWith(x)) || isJsonl(e.name))) {
          const s = statSync(p);
          const id = [basename(root), ...relative(root, p).split(sep)].join('/');
          files.push({ path: p, id, jsonl: isJsonl(p), size: s.size, mtimeMs: s.mtimeMs });
        }
      }
    };
    walk(root);
    if (files.length === before) throw new UserError(`corpus folder ${given} holds no ${[...TEXT_EXTENSIONS, ...JSONL_EXTENSIONS].join(', ')} files`);
  }
  return files;
}

/** Documents of one JSONL file; every non-blank line must be an object with a string `field`. */
export function jsonlDocuments(path: string, id: string, field: string): Document[] {
  const docs: Document[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${path}:${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
    const text = typeof rec === 'object' && rec !== null ? (rec as Record<string, unknown>)[field] : undefined;
    if (typeof text !== 'string') throw new UserError(`${path}:${i + 1}: no string field '${field}' (set text_field to the field holding the text)`);
    docs.push({ id: `${id}:${i + 1}`, text });
  }
  return docs;
}

class FileCorpus implements Corpus {
  readonly description: string;
  private readonly files: InputFile[];

  constructor(
    paths: readonly string[],
    private readonly textField: string,
  ) {
    if (paths.length === 0) throw new UserError('corpus: no paths given');
    this.files = listFiles(paths);
    this.description = `${paths.join(', ')} (${this.files.length} file${this.files.length === 1 ? '' : 's'})`;
  }

  fingerprint(): string {
    const files = this.files.map((f) => [f.path, f.id, f.jsonl, f.size, f.mtimeMs]);
    return sha256Hex(canonicalJson({ kind: 'files', reader: READER_VERSION, text_field: this.textField, files }));
  }

  documents(): Document[] {
    const docs: Document[] = [];
    for (const f of this.files) {
      if (f.jsonl) docs.push(...jsonlDocuments(f.path, f.id, this.textField));
      else docs.push({ id: f.id, text: readFileSync(f.path, 'utf8') });
    }
    return docs;
  }
}

class BrownCorpus implements Corpus {
  private readonly pkg = brownPackage();
  readonly description = `brown (${this.pkg.files.length} texts)`;

  fingerprint(): string {
    return sha256Hex(canonicalJson({ kind: 'brown', text: BROWN_TEXT_VERSION, version: this.pkg.version, files: this.pkg.files }));
  }

  documents(): Document[] {
    return brownDocuments(this.pkg);
  }
}

/** Opens a corpus (checks that its paths exist; reads nothing yet). */
export function openCorpus(spec: CorpusSpec): Corpus {
  if (spec === 'brown') return new BrownCorpus();
  return new FileCorpus(spec.paths, spec.text_field ?? 'text');
}

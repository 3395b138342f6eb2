/**
 * Which files a source names, in a fixed order. A source is a file, a folder or a glob pattern:
 *
 * - a file is always taken (an unknown extension is read as text);
 * - a folder is walked recursively in name order, taking the files whose extension names a format;
 * - a pattern (`data/*.parquet`, `shards/**\/*.jsonl.zst`, `{web,books}/*.txt`) walks its static
 *   prefix (`data`, `shards`) the same way and keeps the files the pattern matches.
 *
 * A path that exists is taken literally even when it holds glob characters (`notes[1].txt`).
 * Hidden entries (`.git`, `.cache`) are skipped unless named directly; links to files are followed,
 * links to folders are not (a link back up the tree would loop). Ids are `<folder name>/<path inside>`
 * (for a pattern, the folder is its static prefix) or the file's name, so moving a corpus elsewhere
 * keeps its ids, and with them the split.
 *
 * Node 20 has no fs.glob (it arrived in Node 22), so patterns are matched by picomatch (the matcher
 * behind fast-glob, tinyglobby and chokidar: bash semantics, `**`, braces, classes, no dependencies)
 * against our own sorted walk; the walk, not the matcher, decides the order and which entries are seen.
 */
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { basename, join, relative, resolve, sep } from 'node:path';
import picomatch from 'picomatch';
import { UserError } from '../../util/errors.js';

export type Format = 'text' | 'jsonl' | 'parquet';
export type Compression = 'none' | 'gzip' | 'zstd';

export interface SourceFile {
  /** Absolute path. */
  path: string;
  /** Stable id: documents' ids are built from it. */
  id: string;
  format: Format;
  compression: Compression;
}

const FORMATS: ReadonlyArray<[extension: string, format: Format]> = [
  ['.parquet', 'parquet'],
  ['.jsonl', 'jsonl'],
  ['.ndjson', 'jsonl'],
  ['.txt', 'text'],
  ['.md', 'text'],
  ['.text', 'text'],
];
const COMPRESSIONS: ReadonlyArray<[extension: string, compression: Compression]> = [
  ['.gz', 'gzip'],
  ['.zst', 'zstd'],
];

/** Extensions a folder or pattern takes, for messages. */
export const KNOWN_EXTENSIONS = '.parquet, .jsonl, .ndjson, .txt, .md, .text (JSONL and text also .gz or .zst)';

/** The format a file name announces, or null; Parquet compresses inside the file, so never `.parquet.gz`. */
export function formatOf(name: string): { format: Format; compression: Compression } | null {
  const [suffix, compression] = COMPRESSIONS.find(([ext]) => name.endsWith(ext)) ?? ['', 'none' as const];
  const stem = name.slice(0, name.length - suffix.length);
  const format = FORMATS.find(([ext]) => stem.endsWith(ext))?.[1];
  if (format === undefined || (format === 'parquet' && compression !== 'none')) return null;
  return { format, compression };
}

const byName = (a: Dirent, b: Dirent): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Files under `root` whose format is known and whose path relative to `root` (with `/`) passes `keep`,
 * in name order at every level, at most `maxDepth` levels down.
 */
function walk(root: string, keep: (rel: string) => boolean, maxDepth: number): SourceFile[] {
  const files: SourceFile[] = [];
  const visit = (dir: string, depth: number): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort(byName)) {
      if (e.name.startsWith('.')) continue;
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (depth < maxDepth) visit(path, depth + 1);
        continue;
      }
      const known = formatOf(e.name);
      if (known === null || !(e.isFile() || (e.isSymbolicLink() && isFile(path)))) continue;
      const rel = relative(root, path).split(sep);
      if (keep(rel.join('/'))) files.push({ path, id: [basename(root), ...rel].join('/'), ...known });
    }
  };
  visit(root, 1);
  return files;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false; // a dangling link
  }
}

/** The files of one source (a file, folder or pattern as the user wrote it), never empty. */
export function expandSource(given: string): SourceFile[] {
  const path = resolve(given);
  let st;
  try {
    st = statSync(path);
  } catch {
    st = null;
  }
  if (st?.isFile()) return [{ path, id: basename(path), ...(formatOf(path) ?? { format: 'text', compression: 'none' }) }];
  if (st?.isDirectory()) {
    const files = walk(path, () => true, Infinity);
    if (files.length === 0) throw new UserError(`corpus folder ${given} holds no ${KNOWN_EXTENSIONS} files`);
    return files;
  }
  if (st !== null) throw new UserError(`corpus path ${given} is neither a file nor a folder`);
  const scan = picomatch.scan(given);
  if (!scan.isGlob) throw new UserError(`corpus path ${given} does not exist`);
  const base = resolve(scan.base === '' ? '.' : scan.base);
  if (!statSync(base, { throwIfNoEntry: false })?.isDirectory()) throw new UserError(`corpus pattern ${given}: folder ${scan.base || '.'} does not exist`);
  // Without `**` a pattern reaches a fixed depth: do not walk below it (a shard folder can be huge).
  const maxDepth = scan.glob.includes('**') ? Infinity : scan.glob.split('/').length;
  const files = walk(base, picomatch(scan.glob, { dot: false }), maxDepth);
  if (files.length === 0) throw new UserError(`corpus pattern ${given} matches no ${KNOWN_EXTENSIONS} files`);
  return files;
}

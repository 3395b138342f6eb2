/**
 * Small durable-file helpers for checkpoints: write a file while hashing it (SHA-256) and fsync it,
 * fsync a directory, hash an existing file in bounded memory.
 *
 *   const w = HashingFileWriter.create(path);   // opens with O_EXCL: never clobbers a file
 *   w.write(chunk) …                            // any number of chunks, hashed as written
 *   const digest = w.finish();                  // fsync + close → { size, sha256 }
 *   fsyncDir(dir);                              // make the directory entries themselves durable
 *
 * Why fsync the directory: on Linux a file's data being on disk does not make its name (or a rename)
 * durable; the containing directory must be fsynced too.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { errCode, fsyncDir } from '../util/files.js';

/** The errno helpers live with the atomic writer (util/files.ts); re-exported for the io layer. */
export { errCode, fsyncDir };

/** Size and SHA-256 (lowercase hex) of a file, as recorded in a checkpoint manifest. */
export interface FileDigest {
  size: number;
  sha256: string;
}

const CHUNK = 8 * 1024 * 1024;

/** Writes a new file chunk by chunk, hashing every byte; finish() fsyncs and closes it. */
export class HashingFileWriter {
  private readonly hash = createHash('sha256');
  private fd: number | null;
  private bytes = 0;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Opens `path` for writing; fails if it already exists (temporary directories are fresh). */
  static create(path: string): HashingFileWriter {
    return new HashingFileWriter(path, openSync(path, 'wx', 0o644));
  }

  get size(): number {
    return this.bytes;
  }

  /** The open descriptor (for writers such as writeSafetensorsFd that take one; pass onChunk=write-hash). */
  get descriptor(): number {
    if (this.fd === null) throw new Error(`${this.path}: already closed`);
    return this.fd;
  }

  write(chunk: Uint8Array | string): void {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const fd = this.descriptor;
    let done = 0;
    while (done < b.length) done += writeSync(fd, b, done, b.length - done);
    this.hash.update(b);
    this.bytes += b.length;
  }

  /** Records bytes written to `descriptor` by someone else (they must be passed here in order). */
  observe(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }

  /** fsync, close, and return the digest. */
  finish(): FileDigest {
    const fd = this.descriptor;
    fsyncSync(fd);
    closeSync(fd);
    this.fd = null;
    return { size: this.bytes, sha256: this.hash.digest('hex') };
  }

  /** Closes without syncing (after an error). */
  abort(): void {
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        /* already failing */
      }
    }
    this.fd = null;
  }
}

/** Writes a whole small file durably (fsynced) and returns its digest. */
export function writeFileDurable(path: string, data: string | Uint8Array): FileDigest {
  const w = HashingFileWriter.create(path);
  try {
    w.write(data);
    return w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** SHA-256 and size of a file, reading it in 8 MiB chunks. Throws UserError if it cannot be read. */
export function sha256File(path: string): FileDigest {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new UserError(`${path}: cannot open (${errCode(e)})`);
  }
  try {
    const hash = createHash('sha256');
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UserError(`${path}: not a regular file`);
    const size = st.size;
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)));
    let pos = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    return { size: pos, sha256: hash.digest('hex') };
  } finally {
    closeSync(fd);
  }
}

export function sha256Bytes(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Removes a file or directory tree; no error if it does not exist. */
export function removeTree(path: string): void {
  rmSync(path, { recursive: true, force: true, maxRetries: 3 });
}

// ---------------------------------------------------------------------------------------------
// Reading small files (JSON, tokenizer) with limits

/**
 * Largest JSON metadata file read (config.json, checksums.json, shard_index.json,
 * model.safetensors.index.json): 64 MiB. Real ones are kilobytes (Llama 3.1 405B's index: 100 KB).
 */
export const MAX_JSON_FILE_BYTES = 64 * 1024 * 1024;
/**
 * Largest text file kept as a string (tokenizer.json, trainer_state.json): 256 MiB. Real tokenizers
 * are under 40 MB; V8 strings stop at 2²⁹ − 24 characters, so a larger file could not be held anyway.
 */
export const MAX_TEXT_FILE_BYTES = 256 * 1024 * 1024;

/**
 * Size of a regular file (symbolic links followed), as a UserError naming the file when it is
 * missing, unreadable or not a regular file. `listedIn` says where the file was named, for messages.
 */
export function regularFileSize(path: string, listedIn?: string): number {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = errCode(e);
    throw new UserError(`${path}: ${code === 'ENOENT' ? 'missing' + (listedIn ? ` (listed in ${listedIn})` : '') : 'cannot read (' + code + ')'}`);
  }
  if (!st.isFile()) throw new UserError(`${path}: not a regular file${listedIn ? ` (listed in ${listedIn})` : ''}`);
  return st.size;
}

/**
 * Reads a text file of at most `maxBytes` (checked before reading). Errors are UserErrors:
 * `<path>: missing (<what>)`, `<path>: N bytes, larger than the M-byte limit for <what> …`.
 */
export function readSmallTextFile(path: string, what: string, maxBytes: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = errCode(e);
    throw new UserError(code === 'ENOENT' ? `${path}: missing (${what})` : `${path}: cannot read (${code})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UserError(`${path}: not a regular file (${what})`);
    if (st.size > maxBytes) throw new UserError(`${path}: ${st.size} bytes, larger than the ${maxBytes}-byte limit for ${what} (corrupt, or not the right file?)`);
    const buf = Buffer.allocUnsafe(st.size);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf.toString('utf8', 0, done);
  } finally {
    closeSync(fd);
  }
}

/**
 * JSON.parse, with problems as a UserError naming `file`: invalid JSON, and a key that appears twice
 * in one object (JSON.parse would silently keep the last one; in a weight map or a safetensors header
 * that hides a second tensor of the same name).
 */
export function parseJsonStrict(text: string, file: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const dup = duplicateJsonKey(text);
  if (dup !== null) throw new UserError(`${file}: key ${JSON.stringify(dup)} appears twice in the same JSON object (ambiguous; refusing)`);
  return value;
}

/**
 * The first key that appears twice in one object of a JSON text, or null. `text` must be valid JSON
 * (parse it first): the scan only tracks strings, braces, brackets and commas.
 */
export function duplicateJsonKey(text: string): string | null {
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22) {
      // a string: find its closing quote (skipping escapes)
      let j = i + 1;
      let escaped = false;
      for (;;) {
        const c = text.charCodeAt(j);
        if (c === 0x22) break;
        if (c === 0x5c) {
          escaped = true;
          j += 2;
        } else j += 1;
        if (j >= text.length) return null; // not valid JSON: the caller parsed it, so unreachable
      }
      if (expectKey) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        const top = stack[stack.length - 1]!;
        if (top.has(key)) return key;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === 0x7b) {
      stack.push(new Set());
      expectKey = true;
    } else if (ch === 0x5b) {
      stack.push(null);
      expectKey = false;
    } else if (ch === 0x7d || ch === 0x5d) {
      stack.pop();
      expectKey = false;
    } else if (ch === 0x2c) {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
  return null;
}

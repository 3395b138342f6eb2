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
import { closeSync, fstatSync, fsyncSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { UserError } from '../util/errors.js';

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

/** fsyncs a directory so that entries created, renamed or removed in it are durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
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
    const size = fstatSync(fd).size;
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

/** The errno code of a filesystem error (ENOENT …), or its message. */
export function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

/**
 * Writing files so that nothing can be destroyed: a whole file is written under a fresh temporary
 * name (created exclusively, so never through an existing file or link), fsynced and renamed over its
 * target (a rename replaces a symbolic link; it never writes through it); an append-only file is
 * opened without following a link. A failing write (disk full, read-only directory, no permission)
 * is a UserError naming the path, and the previous file stays as it was.
 */
import { closeSync, constants, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { UserError } from './errors.js';

/** The errno code of a filesystem error (ENOENT …), or its message. */
export function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
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

const REASONS: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is exhausted',
  EROFS: 'the filesystem is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ELOOP: 'it is a symbolic link, which adabatch does not write through',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent is not a directory',
};

/** A UserError for a failed filesystem operation on `path`, saying why in words. */
export function fileError(what: string, path: string, e: unknown): UserError {
  const code = errCode(e);
  return new UserError(`cannot ${what} ${path}: ${REASONS[code] ?? code}${code in REASONS ? ` (${code})` : ''}`);
}

/**
 * Writes `data` (or its chunks, in order) to `path` atomically: temporary file, fsync, rename, fsync
 * of the folder (created when missing). A link at `path` is replaced, not followed.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | ReadonlyArray<Uint8Array>): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp~${process.pid}~${randomBytes(4).toString('hex')}`);
  let fd: number;
  try {
    if (!existsSync(dirname(path))) mkdirSync(dirname(path), { recursive: true });
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    throw fileError('write', path, e);
  }
  try {
    try {
      const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
      for (const bytes of chunks) for (let at = 0; at < bytes.byteLength; ) at += writeSync(fd, bytes, at, bytes.byteLength - at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    fsyncDir(dirname(path));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fileError('write', path, e);
  }
}

/** Opens `path` for appending (created if missing); refuses a symbolic link. Returns the descriptor. */
export function openAppendNoFollow(path: string): number {
  try {
    return openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    throw fileError('open for appending', path, e);
  }
}

/** True when `path` exists as a symbolic link (whatever it points to). */
export function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

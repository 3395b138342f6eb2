/**
 * Writing the files of a run directory so that nothing can be destroyed: a whole file is written
 * under a fresh temporary name (created exclusively, so never through an existing file or link),
 * fsynced and renamed over its target (a rename replaces a symbolic link; it never writes through
 * it); an append-only file is opened without following a link. A failing write (disk full,
 * read-only directory, no permission) is a UserError naming the path, and the previous file stays
 * as it was.
 */
import { closeSync, constants, fsyncSync, lstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../util/errors.js';
import { errCode, fsyncDir } from './fsutil.js';

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

/** Writes `data` to `path` atomically (temporary file, fsync, rename); a link at `path` is replaced, not followed. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp~${process.pid}~${randomBytes(4).toString('hex')}`);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    throw fileError('write', path, e);
  }
  try {
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
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

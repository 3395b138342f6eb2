/**
 * One trainer per run directory: `<runDir>/.lock`, created exclusively (O_EXCL) and holding the
 * owner's host, pid and start time. A second trainer is refused, naming the holder. A lock left by
 * a process that died (same host, pid no longer alive) is stale and is taken over; a lock from
 * another host cannot be checked, so it is refused with the path to remove once that run is known
 * to be gone.
 */
import { closeSync, constants, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UserError } from './errors.js';
import { errCode, fileError } from './files.js';
import { processAlive } from './process.js';

export const LOCK_FILE = '.lock';

interface LockOwner {
  host: string;
  pid: number;
  started: string;
}


function readOwner(path: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    return typeof o.host === 'string' && Number.isInteger(o.pid) ? (o as LockOwner) : null;
  } catch {
    return null;
  }
}

export class RunLock {
  private constructor(readonly path: string) {}

  /** Takes the lock of `runDir` (which must exist), or throws a UserError naming who holds it. */
  static acquire(runDir: string): RunLock {
    const path = join(runDir, LOCK_FILE);
    const me: LockOwner = { host: hostname(), pid: process.pid, started: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd: number;
      try {
        fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
      } catch (e) {
        if (errCode(e) !== 'EEXIST') throw fileError('lock the run directory: create', path, e);
        const owner = readOwner(path);
        if (owner && owner.host === me.host && owner.pid !== me.pid && !processAlive(owner.pid)) {
          // Stale: its process is gone. Remove and try once more (another trainer may win the race).
          rmSync(path, { force: true });
          continue;
        }
        const who = owner ? `process ${owner.pid} on ${owner.host}${owner.pid === me.pid && owner.host === me.host ? ' (this process)' : ''}, since ${owner.started}` : 'an unreadable lock file';
        const advice = owner && owner.host !== me.host ? `; if that run is gone, remove ${path}` : '';
        throw new UserError(`run directory ${runDir} is in use by another trainer (${who})${advice}; choose another run_dir, or wait for it to finish`);
      }
      try {
        writeSync(fd, JSON.stringify(me) + '\n');
      } finally {
        closeSync(fd);
      }
      return new RunLock(path);
    }
    throw new UserError(`run directory ${runDir}: could not take ${path} (another trainer took it meanwhile)`);
  }

  release(): void {
    rmSync(this.path, { force: true });
  }
}

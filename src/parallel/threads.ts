/**
 * The `threads` transport: ranks are worker_threads of one process. The launching thread creates the
 * group (a native rendezvous object, reachable by id from every thread of the process); each rank
 * joins it with its rank number. Collectives work directly on the ranks' registry buffers (one
 * address space); see native/src/comm_threads.cc for the algorithm.
 */
import { commAddon, Communicator } from './native-communicator.js';

/** The launcher's handle on a thread group. */
export interface ThreadGroupHandle {
  readonly id: number;
  readonly size: number;
  /** Fails every rank's pending and future collectives with `reason` (the launcher's fault path). */
  abort(reason: string): void;
  /** Forgets the id (ranks that joined keep the group until they leave). */
  release(): void;
}

export function createThreadGroup(size: number): ThreadGroupHandle {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`thread group size must be a positive integer, got ${size}`);
  const addon = commAddon();
  const id = addon.threadGroupCreate(size);
  return {
    id,
    size,
    abort: (reason) => void addon.threadGroupAbort(id, reason),
    release: () => addon.threadGroupRelease(id),
  };
}

/** Joins thread group `id` as `rank`; collectives fail after `timeoutSeconds` without progress. */
export function joinThreadCommunicator(id: number, rank: number, timeoutSeconds: number): Communicator {
  const addon = commAddon();
  return new Communicator('threads', new addon.Communicator('threads', id, rank, timeoutSeconds));
}

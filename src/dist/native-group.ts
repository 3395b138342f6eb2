/**
 * The ProcessGroup over the addon's Communicator (native/src/comm.h), shared by `threads` and `mpi`.
 * Each rank's collectives run on a native communicator thread in call order; each call returns a
 * Promise settled on this rank's JavaScript thread. Tensors cross as (buffer id, offset, size, dtype)
 * like kernel arguments, and must be cpu-backend buffers (the native side reaches them by id).
 */
import type { Tensor } from '../backend/backend.js';
import { DTYPE_CODE, loadNativeAddon } from '../backend/cpu/native.js';
import type { CollectiveStats, ProcessGroup, ReduceOp } from './group.js';

type Quad = [number, number, number, number];

export interface NativeCommunicator {
  rank(): number;
  size(): number;
  localSize(): number;
  pending(): number;
  allReduce(...args: [...Quad, ReduceOp]): Promise<void>;
  reduceScatter(...args: [...Quad, ...Quad, ReduceOp]): Promise<void>;
  allGather(...args: [...Quad, ...Quad]): Promise<void>;
  broadcast(...args: [...Quad, number]): Promise<void>;
  barrier(): Promise<void>;
  allReduceScalars(values: Float64Array, op: ReduceOp): Promise<Float64Array>;
  abort(reason: string): void;
  close(): Promise<void>;
  stats(): CollectiveStats;
  resetStats(): void;
}

/** The collective parts of the addon's interface. */
export interface CommAddon {
  Communicator: new (kind: 'threads' | 'mpi', group: number, rank: number, timeoutSeconds: number) => NativeCommunicator;
  threadGroupCreate(size: number): number;
  threadGroupAbort(group: number, reason: string): boolean;
  threadGroupRelease(group: number): void;
  mpi: { compiled: boolean; version: string };
}

export function commAddon(): CommAddon {
  return loadNativeAddon() as unknown as CommAddon;
}

/**
 * A collective failed because the group was aborted: another rank failed, the launcher stopped the
 * run, or a collective ran past the dist timeout (code 'ADABATCH_COMM_TIMEOUT'). The message says
 * which rank and why.
 */
export class CollectiveAbortedError extends Error {
  constructor(
    message: string,
    readonly code: 'ADABATCH_COMM_ABORTED' | 'ADABATCH_COMM_TIMEOUT',
  ) {
    super(message);
    this.name = 'CollectiveAbortedError';
  }
}

/** True for an error that only reports another rank's failure (or a timeout), not one of this rank's own. */
export function isCollectiveAborted(e: unknown): e is CollectiveAbortedError {
  return e instanceof CollectiveAbortedError;
}

function translate(e: unknown): never {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ADABATCH_COMM_ABORTED' || code === 'ADABATCH_COMM_TIMEOUT') throw new CollectiveAbortedError((e as Error).message, code);
  throw e;
}

export class NativeGroup implements ProcessGroup {
  readonly rank: number;
  readonly size: number;
  readonly localSize: number;

  constructor(
    readonly kind: 'threads' | 'mpi',
    private readonly comm: NativeCommunicator,
  ) {
    this.rank = comm.rank();
    this.size = comm.size();
    this.localSize = comm.localSize();
  }

  private q(what: string, name: string, t: Tensor): Quad {
    if (t.backend !== 'cpu') throw new Error(`${what}: ${name} is a '${t.backend}' tensor; the ${this.kind} process group reduces cpu-backend buffers`);
    return [t.buffer, t.offset, t.size, DTYPE_CODE[t.dtype]];
  }

  allReduce(t: Tensor, op: ReduceOp): Promise<void> {
    return this.comm.allReduce(...this.q('allReduce', 't', t), op).catch(translate);
  }

  allReduceScalars(values: Float64Array, op: ReduceOp): Promise<Float64Array> {
    return this.comm.allReduceScalars(values, op).catch(translate);
  }

  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp): Promise<void> {
    return this.comm.reduceScatter(...this.q('reduceScatter', 'out', out), ...this.q('reduceScatter', 'input', input), op).catch(translate);
  }

  allGather(out: Tensor, shard: Tensor): Promise<void> {
    return this.comm.allGather(...this.q('allGather', 'out', out), ...this.q('allGather', 'shard', shard)).catch(translate);
  }

  broadcast(t: Tensor, root: number): Promise<void> {
    return this.comm.broadcast(...this.q('broadcast', 't', t), root).catch(translate);
  }

  barrier(): Promise<void> {
    return this.comm.barrier().catch(translate);
  }

  /** Waits for this rank's queued collectives, then leaves the group (mpi: MPI_Finalize). */
  close(): Promise<void> {
    return this.comm.close().catch(translate);
  }

  abort(reason: string): void {
    this.comm.abort(reason);
  }

  collectiveStats(): CollectiveStats {
    return this.comm.stats();
  }

  resetCollectiveStats(): void {
    this.comm.resetStats();
  }
}

/**
 * A rank's communicator over the addon's native Communicator (native/src/comm.h), shared by the
 * `threads` and `mpi` transports. It moves regions of the addon's buffer registry — (buffer id,
 * offset, size, dtype), validated again on the native side — and float64 scalars. Each rank's
 * collectives run on a native communicator thread in call order; each call returns a Promise
 * settled on this rank's JavaScript thread.
 *
 * Tensors reach it through a process group bound to a backend (group.ts): in place when the backend's
 * tensors are registry allocations, through staging buffers otherwise.
 */
import { type CollectiveStats, DTYPE_CODE, loadNativeAddon, type NativeAddon, type NativeCommunicator, type ReduceOp } from '../addon/addon.js';

/** A window of one registry allocation, in elements of `dtype`. A cpu-backend Tensor is one. */
export interface RegistryRegion {
  readonly buffer: number;
  readonly offset: number;
  readonly size: number;
  readonly dtype: RegistryDType;
}

/** The dtypes registry regions (and so collectives) move: every dtype but f16, which stays on its GPU. */
export type RegistryDType = keyof typeof DTYPE_CODE;

/** t's dtype as a registry dtype; f16 tensors (GEMM operands under precision f16) never cross ranks. */
export function registryDtype(what: string, dtype: string): RegistryDType {
  if (!Object.hasOwn(DTYPE_CODE, dtype)) throw new Error(`${what}: collectives move f32, f64, i32 or bf16 tensors, not ${dtype}`);
  return dtype as RegistryDType;
}

type Quad = [number, number, number, number];

export function commAddon(): NativeAddon {
  return loadNativeAddon();
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

const quad = (r: RegistryRegion): Quad => [r.buffer, r.offset, r.size, DTYPE_CODE[r.dtype]];

/** One rank of a `threads` or `mpi` group: the transport under a ProcessGroup. */
export class Communicator {
  readonly rank: number;
  readonly size: number;
  /** Ranks sharing this machine's cores (for the default kernel thread count). */
  readonly localSize: number;

  constructor(
    readonly kind: 'threads' | 'mpi',
    private readonly comm: NativeCommunicator,
  ) {
    this.rank = comm.rank();
    this.size = comm.size();
    this.localSize = comm.localSize();
  }

  /** In place: region = op over ranks of region. */
  allReduce(region: RegistryRegion, op: ReduceOp): Promise<void> {
    return this.comm.allReduce(...quad(region), op).catch(translate);
  }

  allReduceScalars(values: Float64Array, op: ReduceOp): Promise<Float64Array> {
    return this.comm.allReduceScalars(values, op).catch(translate);
  }

  /** out (1/size of input: this rank's shard) = op over ranks of input's shard. */
  reduceScatter(out: RegistryRegion, input: RegistryRegion, op: ReduceOp): Promise<void> {
    return this.comm.reduceScatter(...quad(out), ...quad(input), op).catch(translate);
  }

  /** out (size × shard) = concatenation over ranks of `shard`. */
  allGather(out: RegistryRegion, shard: RegistryRegion): Promise<void> {
    return this.comm.allGather(...quad(out), ...quad(shard)).catch(translate);
  }

  broadcast(region: RegistryRegion, root: number): Promise<void> {
    return this.comm.broadcast(...quad(region), root).catch(translate);
  }

  barrier(): Promise<void> {
    return this.comm.barrier().catch(translate);
  }

  /** Waits for this rank's queued collectives, then leaves the group (mpi: MPI_Finalize). */
  close(): Promise<void> {
    return this.comm.close().catch(translate);
  }

  /** Every rank's pending and future collectives fail with `reason` (threads), or the job ends (mpi: MPI_Abort). */
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

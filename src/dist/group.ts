/**
 * ProcessGroup: the collectives data parallelism needs, on backend buffers. Implementations:
 * `local` (one rank; every collective is the identity, here), `threads` (ranks are worker_threads
 * of one process; threads.ts) and `mpi` (one process per rank under mpirun or srun; mpi.ts).
 * Collectives are asynchronous so the event loop stays alive while they run; every rank must call
 * the same collectives in the same order. Results are bit-identical on every rank (each element is
 * reduced once, in a fixed order), so ranks that start identical stay identical.
 */
import type { Tensor } from '../backend/backend.js';

export type ReduceOp = 'sum' | 'avg';

export interface ProcessGroup {
  readonly kind: 'local' | 'threads' | 'mpi';
  readonly rank: number;
  readonly size: number;
  /** In place: t = op over ranks of t. */
  allReduce(t: Tensor, op: ReduceOp): Promise<void>;
  /** Host float64 scalars reduced across ranks (the step's statistics: one small reduction). */
  allReduceScalars(values: Float64Array, op: ReduceOp): Promise<Float64Array>;
  /** out (1/size of input, this rank's shard) = op over ranks of input's shard. */
  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp): Promise<void>;
  /** out (size × shard) = concatenation over ranks of `shard`. */
  allGather(out: Tensor, shard: Tensor): Promise<void>;
  broadcast(t: Tensor, root: number): Promise<void>;
  barrier(): Promise<void>;
  close(): Promise<void>;
  /** Ranks sharing this machine's cores (for the default kernel thread count); 1 when absent. */
  readonly localSize?: number;
  /**
   * The fault path: every rank's pending and future collectives fail with `reason` (threads), or the
   * whole job ends (mpi: MPI_Abort). Returns at once.
   */
  abort?(reason: string): void;
  /** Count and seconds of each collective since the last reset (where the group measures them). */
  collectiveStats?(): CollectiveStats;
  resetCollectiveStats?(): void;
}

export type CollectiveName = 'allReduce' | 'reduceScatter' | 'allGather' | 'broadcast' | 'barrier' | 'allReduceScalars';

/** Per collective: calls, seconds from start to completion on the rank (waiting for peers included), bytes of this rank's buffers. */
export type CollectiveStats = Record<CollectiveName, { count: number; seconds: number; bytes: number }>;

/** Total seconds this rank spent in collectives so far, or null when the group does not measure them. */
export function collectiveSeconds(group: ProcessGroup): number | null {
  const stats = group.collectiveStats?.();
  if (!stats) return null;
  let s = 0;
  for (const k of Object.keys(stats) as CollectiveName[]) s += stats[k].seconds;
  return s;
}

/** One rank: collectives are identities (reduce-scatter and all-gather become copies). */
export class LocalGroup implements ProcessGroup {
  readonly kind = 'local';
  readonly rank = 0;
  readonly size = 1;
  readonly localSize = 1;
  constructor(private readonly copy: (dst: Tensor, src: Tensor) => void) {}
  async allReduce(): Promise<void> {}
  async allReduceScalars(values: Float64Array): Promise<Float64Array> {
    return Float64Array.from(values);
  }
  async reduceScatter(out: Tensor, input: Tensor): Promise<void> {
    this.copy(out, input);
  }
  async allGather(out: Tensor, shard: Tensor): Promise<void> {
    this.copy(out, shard);
  }
  async broadcast(): Promise<void> {}
  async barrier(): Promise<void> {}
  async close(): Promise<void> {}
}

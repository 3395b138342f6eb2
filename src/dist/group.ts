/**
 * ProcessGroup: the collectives data parallelism needs, on backend buffers. Implementations:
 * `local` (one rank; every collective is the identity), later `threads` (ranks are worker_threads of
 * one process) and `mpi`. Collectives are asynchronous so the event loop stays alive while they run;
 * every rank must call the same collectives in the same order.
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
}

/** One rank: collectives are identities (reduce-scatter and all-gather become copies). */
export class LocalGroup implements ProcessGroup {
  readonly kind = 'local';
  readonly rank = 0;
  readonly size = 1;
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

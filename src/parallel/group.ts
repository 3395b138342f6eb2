/**
 * ProcessGroup: the collectives data parallelism needs, on one backend's tensors. A group is a rank's
 * communicator (the transport: `threads` or `mpi`, native-communicator.ts) bound to the backend whose
 * tensors it moves; the backend says how (CollectiveAccess in backend/backend.ts): in place in the native registry,
 * through its own collectives, or staged through host memory. `local` (one rank) needs no transport:
 * every collective is the identity, or a copy.
 *
 * Collectives are asynchronous so the event loop stays alive while they run; every rank must call the
 * same collectives in the same order. Results are bit-identical on every rank (each element is
 * reduced once, in a fixed order), so ranks that start identical stay identical.
 */
import type { CollectiveName, CollectiveStats, ReduceOp } from '../addon/addon.js';
import type { Backend, Tensor, TensorCollectives } from '../backend/backend.js';
import { registryDtype, type Communicator, type RegistryRegion } from './native-communicator.js';
import { StagedCollectives } from './staged-collectives.js';

export type { CollectiveName, CollectiveStats, ReduceOp } from '../addon/addon.js';

export interface ProcessGroup extends TensorCollectives {
  readonly kind: 'local' | 'threads' | 'mpi';
  readonly rank: number;
  readonly size: number;
  /** Ranks sharing this machine's cores (for the default kernel thread count). */
  readonly localSize: number;
  /** Host float64 scalars reduced across ranks (the step's statistics: one small reduction). */
  allReduceScalars(values: Float64Array, op: ReduceOp): Promise<Float64Array>;
  barrier(): Promise<void>;
  /** Waits for this rank's queued collectives, leaves the group, and frees what binding allocated. */
  close(): Promise<void>;
  /** Frees what binding to the backend allocated (staging buffers); the transport stays open for its owner to close. */
  dispose?(): void;
  /**
   * The fault path: every rank's pending and future collectives fail with `reason` (threads), or the
   * whole job ends (mpi: MPI_Abort). Returns at once.
   */
  abort?(reason: string): void;
  /** Count and seconds of each collective since the last reset (where the group measures them). */
  collectiveStats?(): CollectiveStats;
  resetCollectiveStats?(): void;
}

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
  constructor(private readonly backend: Backend) {}
  async allReduce(): Promise<void> {}
  async allReduceScalars(values: Float64Array): Promise<Float64Array> {
    return Float64Array.from(values);
  }
  async reduceScatter(out: Tensor, input: Tensor): Promise<void> {
    this.backend.copy(out, input);
  }
  async allGather(out: Tensor, shard: Tensor): Promise<void> {
    this.backend.copy(out, shard);
  }
  async broadcast(): Promise<void> {}
  async barrier(): Promise<void> {}
  async close(): Promise<void> {}
}

/** The registry path: the backend's tensors are registry regions, handed to the communicator as they are. */
class RegistryCollectives implements TensorCollectives {
  constructor(
    private readonly comm: Communicator,
    private readonly backendName: string,
  ) {}

  private region(what: string, name: string, t: Tensor): RegistryRegion {
    if (t.backend !== this.backendName) throw new Error(`${what}: ${name} is a '${t.backend}' tensor; this process group is bound to the '${this.backendName}' backend`);
    return { buffer: t.buffer, offset: t.offset, size: t.size, dtype: registryDtype(what, t.dtype) };
  }

  allReduce(t: Tensor, op: ReduceOp): Promise<void> {
    return this.comm.allReduce(this.region('allReduce', 't', t), op);
  }
  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp): Promise<void> {
    return this.comm.reduceScatter(this.region('reduceScatter', 'out', out), this.region('reduceScatter', 'input', input), op);
  }
  allGather(out: Tensor, shard: Tensor): Promise<void> {
    return this.comm.allGather(this.region('allGather', 'out', out), this.region('allGather', 'shard', shard));
  }
  broadcast(t: Tensor, root: number): Promise<void> {
    return this.comm.broadcast(this.region('broadcast', 't', t), root);
  }
}

/** A rank of a `threads` or `mpi` group: tensor collectives by the backend's path, the rest by the communicator. */
class BoundGroup implements ProcessGroup {
  readonly kind: 'threads' | 'mpi';
  readonly rank: number;
  readonly size: number;
  readonly localSize: number;

  constructor(
    private readonly comm: Communicator,
    private readonly tensors: TensorCollectives & { dispose?(): void },
  ) {
    this.kind = comm.kind;
    this.rank = comm.rank;
    this.size = comm.size;
    this.localSize = comm.localSize;
  }

  allReduce(t: Tensor, op: ReduceOp): Promise<void> {
    return this.tensors.allReduce(t, op);
  }
  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp): Promise<void> {
    return this.tensors.reduceScatter(out, input, op);
  }
  allGather(out: Tensor, shard: Tensor): Promise<void> {
    return this.tensors.allGather(out, shard);
  }
  broadcast(t: Tensor, root: number): Promise<void> {
    return this.tensors.broadcast(t, root);
  }
  allReduceScalars(values: Float64Array, op: ReduceOp): Promise<Float64Array> {
    return this.comm.allReduceScalars(values, op);
  }
  barrier(): Promise<void> {
    return this.comm.barrier();
  }
  async close(): Promise<void> {
    await this.comm.close();
    this.dispose();
  }
  dispose(): void {
    this.tensors.dispose?.();
  }
  abort(reason: string): void {
    this.comm.abort(reason);
  }
  collectiveStats(): CollectiveStats {
    return this.comm.collectiveStats();
  }
  resetCollectiveStats(): void {
    this.comm.resetCollectiveStats();
  }
}

/**
 * The process group of this rank for `backend`'s tensors: LocalGroup without a communicator (one
 * rank), else the communicator bound to the backend's collective path.
 */
export async function bindProcessGroup(comm: Communicator | null, backend: Backend): Promise<ProcessGroup> {
  if (!comm) return new LocalGroup(backend);
  const access = backend.collectives;
  if (access?.kind === 'registry') return new BoundGroup(comm, new RegistryCollectives(comm, backend.name));
  if (access?.kind === 'own') {
    const tensors = await access.connect({ rank: comm.rank, size: comm.size, allReduceScalars: (v) => comm.allReduceScalars(v, 'sum') });
    return new BoundGroup(comm, tensors);
  }
  return new BoundGroup(comm, new StagedCollectives(comm, backend));
}

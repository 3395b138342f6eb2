/**
 * A cooperative in-thread process group for tests: the J "ranks" are concurrent async tasks of one
 * thread sharing one backend; each collective is a rendezvous (a promise that resolves when every rank
 * has called it), and the last rank to arrive performs the operation with backend kernels. Ranks
 * interleave only at awaits, which is exactly where the model reaches its collectives.
 *
 * It implements the ProcessGroup semantics plainly (fixed rank-order summation), as an independent
 * reference for testing FSDP and DDP logic without threads or MPI.
 */
import type { Backend, Tensor } from '../../src/backend/backend.js';
import type { ProcessGroup, ReduceOp } from '../../src/parallel/group.js';

interface Pending {
  name: string;
  args: unknown[];
  arrived: number;
  resolve: Array<(v: unknown) => void>;
  reject: Array<(e: unknown) => void>;
}

export class CoopWorld {
  private pending: Pending | null = null;
  readonly groups: CoopGroup[];

  constructor(
    readonly backend: Backend,
    readonly size: number,
  ) {
    this.groups = Array.from({ length: size }, (_, r) => new CoopGroup(this, r));
  }

  /** Rank `rank` arrives at collective `name`; the last arrival runs `op` over every rank's args. */
  rendezvous<T>(rank: number, name: string, args: unknown[], op: (all: unknown[][]) => T[]): Promise<T> {
    if (!this.pending) this.pending = { name, args: new Array(this.size), arrived: 0, resolve: [], reject: [] };
    const p = this.pending;
    if (p.name !== name) return Promise.reject(new Error(`collective mismatch: rank ${rank} called ${name} while others are in ${p.name}`));
    if (p.args[rank] !== undefined) return Promise.reject(new Error(`rank ${rank} entered ${name} twice`));
    p.args[rank] = args;
    p.arrived++;
    const promise = new Promise<T>((resolve, reject) => {
      p.resolve[rank] = resolve as (v: unknown) => void;
      p.reject[rank] = reject;
    });
    if (p.arrived === this.size) {
      this.pending = null;
      try {
        const results = op(p.args as unknown[][]);
        p.resolve.forEach((r, i) => r(results[i]));
      } catch (e) {
        p.reject.forEach((r) => r(e));
      }
    }
    return promise;
  }
}

export class CoopGroup implements ProcessGroup {
  readonly kind = 'threads';
  readonly localSize: number;
  readonly size: number;

  constructor(
    private readonly world: CoopWorld,
    readonly rank: number,
  ) {
    this.size = world.size;
    this.localSize = world.size;
  }

  private get backend(): Backend {
    return this.world.backend;
  }

  /** Σ over ranks of the tensors (rank order), into a fresh tensor. */
  private sum(ts: Tensor[], scale: number): Tensor {
    const acc = this.backend.alloc([ts[0]!.size], ts[0]!.dtype);
    for (const t of ts) this.backend.axpy(acc, 1, t);
    if (scale !== 1) this.backend.scale(acc, scale);
    return acc;
  }

  allReduce(t: Tensor, op: ReduceOp): Promise<void> {
    return this.world.rendezvous(this.rank, 'allReduce', [t, op], (all) => {
      const ts = all.map((a) => a[0] as Tensor);
      const acc = this.sum(ts, op === 'avg' ? 1 / this.size : 1);
      for (const x of ts) this.backend.copy(x, acc);
      this.backend.free(acc);
      return ts.map(() => undefined);
    });
  }

  allReduceScalars(values: Float64Array, op: ReduceOp): Promise<Float64Array> {
    return this.world.rendezvous(this.rank, 'allReduceScalars', [values, op], (all) => {
      const out = new Float64Array(values.length);
      for (const a of all) (a[0] as Float64Array).forEach((v, i) => (out[i]! += v));
      if (op === 'avg') for (let i = 0; i < out.length; i++) out[i]! /= this.size;
      return all.map(() => Float64Array.from(out));
    });
  }

  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp): Promise<void> {
    return this.world.rendezvous(this.rank, 'reduceScatter', [out, input, op], (all) => {
      const shard = out.size;
      all.forEach((a, r) => {
        const slices = all.map((x) => this.backend.view(x[1] as Tensor, r * shard, [shard]));
        const acc = this.sum(slices, op === 'avg' ? 1 / this.size : 1);
        this.backend.copy(a[0] as Tensor, acc);
        this.backend.free(acc);
      });
      return all.map(() => undefined);
    });
  }

  allGather(out: Tensor, shard: Tensor): Promise<void> {
    return this.world.rendezvous(this.rank, 'allGather', [out, shard], (all) => {
      for (const a of all) {
        all.forEach((src, r) => this.backend.copy(this.backend.view(a[0] as Tensor, r * shard.size, [shard.size]), src[1] as Tensor));
      }
      return all.map(() => undefined);
    });
  }

  broadcast(t: Tensor, root: number): Promise<void> {
    return this.world.rendezvous(this.rank, 'broadcast', [t], (all) => {
      const src = all[root]![0] as Tensor;
      all.forEach((a, r) => r !== root && this.backend.copy(a[0] as Tensor, src));
      return all.map(() => undefined);
    });
  }

  barrier(): Promise<void> {
    return this.world.rendezvous(this.rank, 'barrier', [], (all) => all.map(() => undefined));
  }

  async close(): Promise<void> {}
}

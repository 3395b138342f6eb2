/**
 * Collectives for a backend whose tensors the native communicator cannot reach (any backend without
 * its own `collectives`: CollectiveAccess in backend/backend.ts): each collective downloads the rank's tensor, copies
 * it into a registry buffer of this group's own, runs there, and uploads the result. Staging buffers
 * are kept per size and dtype, so a training step allocates nothing after its first collectives.
 * Results are the registry path's, bit for bit: the same reduction runs on the same values.
 */
import { DTYPE_CODE, loadNativeAddon, type NativeContext, type ReduceOp } from '../addon/addon.js';
import type { Backend, DType, Tensor, TensorCollectives } from '../backend/backend.js';
import { registryDtype, type Communicator, type RegistryRegion } from './native-communicator.js';

export class StagedCollectives implements TensorCollectives {
  /** A one-thread addon context that owns the staging buffers (no kernels run on it). */
  private readonly memory: NativeContext;
  private readonly pool = new Map<string, RegistryRegion[]>();
  private disposed = false;

  constructor(
    private readonly comm: Communicator,
    private readonly backend: Backend,
  ) {
    this.memory = new (loadNativeAddon().Context)(1);
  }

  private check(what: string, name: string, t: Tensor): void {
    if (t.backend !== this.backend.name) throw new Error(`${what}: ${name} is a '${t.backend}' tensor; this process group is bound to the '${this.backend.name}' backend`);
  }

  private take(size: number, dtype: DType): RegistryRegion {
    const free = this.pool.get(`${dtype}:${size}`)?.pop();
    const d = registryDtype('staged collective', dtype);
    return free ?? { buffer: this.memory.alloc(size, DTYPE_CODE[d]), offset: 0, size, dtype: d };
  }

  private give(r: RegistryRegion): void {
    const key = `${r.dtype}:${r.size}`;
    const list = this.pool.get(key) ?? [];
    list.push(r);
    this.pool.set(key, list);
  }

  private quad(r: RegistryRegion): [number, number, number, number] {
    return [r.buffer, r.offset, r.size, DTYPE_CODE[r.dtype]];
  }

  /** A staging buffer holding t's values. */
  private stageIn(t: Tensor): RegistryRegion {
    const r = this.take(t.size, t.dtype);
    if (t.size > 0) this.memory.upload(...this.quad(r), this.backend.download(t));
    return r;
  }

  /** Writes the staging buffer back into t and returns the buffer to the pool. */
  private stageOut(r: RegistryRegion, t: Tensor): void {
    if (t.size > 0) this.backend.upload(t, this.memory.download(...this.quad(r)));
    this.give(r);
  }

  async allReduce(t: Tensor, op: ReduceOp): Promise<void> {
    this.check('allReduce', 't', t);
    const r = this.stageIn(t);
    await this.comm.allReduce(r, op);
    this.stageOut(r, t);
  }

  async reduceScatter(out: Tensor, input: Tensor, op: ReduceOp): Promise<void> {
    this.check('reduceScatter', 'out', out);
    this.check('reduceScatter', 'input', input);
    const rIn = this.stageIn(input);
    const rOut = this.take(out.size, out.dtype);
    await this.comm.reduceScatter(rOut, rIn, op);
    this.give(rIn);
    this.stageOut(rOut, out);
  }

  async allGather(out: Tensor, shard: Tensor): Promise<void> {
    this.check('allGather', 'out', out);
    this.check('allGather', 'shard', shard);
    const rShard = this.stageIn(shard);
    const rOut = this.take(out.size, out.dtype);
    await this.comm.allGather(rOut, rShard);
    this.give(rShard);
    this.stageOut(rOut, out);
  }

  async broadcast(t: Tensor, root: number): Promise<void> {
    this.check('broadcast', 't', t);
    const r = this.stageIn(t);
    await this.comm.broadcast(r, root);
    this.stageOut(r, t);
  }

  /** Frees the staging buffers (after the last collective; idempotent). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.clear();
    this.memory.dispose();
  }
}

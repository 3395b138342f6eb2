/**
 * `webgpu`: the GPU backend, on WebGPU through Dawn's Node bindings (the npm package `webgpu`).
 * Work in progress (issue 16): memory, the elementwise kernels, the float64-accurate reductions and
 * the GEMM run on the GPU today; the layers, attention, the fused head and AdamW come next, so the
 * backend is not yet selectable with `backend: webgpu`.
 *
 * The device lives in a worker thread of its own (protocol.ts explains why): this class validates
 * every call with the shared checks, posts it, and blocks only where the interface returns data.
 * float64 tensors (statistics) are kept as float32 pairs (hi, lo) on the device and combined on
 * download.
 */
import { Worker } from 'node:worker_threads';
import { DTYPE_BYTES, shapeSize, type Backend, type DType, type HostArray, type Tensor } from '../backend.js';
import * as C from '../checks.js';
import * as K from './kernels/basic.js';
import type { GpuBinding, GpuContext, KernelSource } from './kernels/common.js';
import { CTRL_DONE, CTRL_ERROR_BYTES, CTRL_STATUS, CTRL_WORDS, ERROR_BUFFER_BYTES, type Command, type DeviceDescription, type DeviceRequest, type Region } from './protocol.js';

/** The Backend methods this backend implements so far. */
export type WebGpuKernels = Pick<
  Backend,
  | 'name'
  | 'alloc'
  | 'free'
  | 'view'
  | 'liveBytes'
  | 'peakBytes'
  | 'resetPeak'
  | 'upload'
  | 'download'
  | 'copy'
  | 'fill'
  | 'synchronize'
  | 'setThreads'
  | 'getThreads'
  | 'scale'
  | 'axpy'
  | 'add'
  | 'sumSquares'
  | 'dot'
  | 'accumulateWithNorm'
  | 'matmul'
>;

export interface WebGpuOptions extends DeviceRequest {
  /** How long a synchronous call waits for the device before failing, in ms (default 120 s: lavapipe is slow). */
  timeoutMs?: number;
}

/** Device bytes per element: float64 is a pair of float32. */
const DEVICE_BYTES: Record<DType, number> = { ...DTYPE_BYTES };

export class WebGpuBackend implements WebGpuKernels {
  readonly name = 'webgpu';
  readonly device: DeviceDescription;
  /** What kernel modules dispatch through (kernels/common.ts). */
  private readonly ctx: GpuContext;
  /** Kernels whose WGSL the worker has (sent with their first dispatch). */
  private readonly compiled = new Set<string>();
  private readonly worker: Worker;
  private readonly ctrl: Int32Array;
  private readonly errorBuffer: SharedArrayBuffer;
  private readonly timeoutMs: number;
  private seq = 0;
  private nextId = 1;
  private readonly sizes = new Map<number, { elems: number; dtype: DType; bytes: number }>();
  private live = 0;
  private peak = 0;
  private closed = false;

  constructor(opts: WebGpuOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.ctrl = new Int32Array(new SharedArrayBuffer(4 * CTRL_WORDS));
    this.errorBuffer = new SharedArrayBuffer(ERROR_BUFFER_BYTES);
    // execArgv: [] so that flags of this process (e.g. --input-type) do not reach the worker.
    this.worker = new Worker(new URL('./gpu-worker.js', import.meta.url), { execArgv: [] });
    // The worker must not keep the process alive on its own; dispose() closes it.
    this.worker.unref();
    const result = new SharedArrayBuffer(64 * 1024);
    const request: DeviceRequest = { ...(opts.powerPreference && { powerPreference: opts.powerPreference }), ...(opts.dawnOptions && { dawnOptions: opts.dawnOptions }) };
    this.request((seq) => ({ op: 'init', seq, ctrl: this.ctrl.buffer as SharedArrayBuffer, error: this.errorBuffer, result, request }), 'open the WebGPU device');
    const text = new TextDecoder().decode(new Uint8Array(result).slice(0, new Uint8Array(result).indexOf(0)));
    this.device = JSON.parse(text) as DeviceDescription;
    this.ctx = {
      dispatch: (k, p, b, g) => this.dispatch(k, p, b, g),
      alloc: (shape, dtype) => this.alloc(shape, dtype),
      free: (t) => this.free(t),
      limits: { maxComputeWorkgroupsPerDimension: this.device.maxComputeWorkgroupsPerDimension },
    };
  }

  private dispatch(k: KernelSource, params: ArrayBuffer, bindings: GpuBinding[], groups: [number, number?, number?]): void {
    const first = !this.compiled.has(k.name);
    this.compiled.add(k.name);
    this.post({ op: 'dispatch', name: k.name, ...(first && { code: k.code }), params, bindings: bindings.map((b) => ({ region: this.region(b.t), write: b.write === true })), groups: [groups[0], groups[1] ?? 1, groups[2] ?? 1] });
  }

  /** The dispatch context kernel modules use (kernels/common.ts); tests call kernel modules through it. */
  get context(): GpuContext {
    return this.ctx;
  }

  /** Closes the device and its worker; the backend cannot be used afterwards. */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.postMessage({ op: 'close' } satisfies Command);
  }

  // ---- the worker -------------------------------------------------------------------------------

  private post(c: Command): void {
    if (this.closed) throw new Error('webgpu: the backend was disposed');
    this.worker.postMessage(c);
  }

  /** Posts a synchronous request and waits for its answer; throws the worker's error. */
  private request(make: (seq: number) => Command, what: string): void {
    const seq = ++this.seq;
    this.post(make(seq));
    const deadline = Date.now() + this.timeoutMs;
    while (Atomics.load(this.ctrl, CTRL_DONE) < seq) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`webgpu: the device did not answer within ${this.timeoutMs} ms (${what})`);
      Atomics.wait(this.ctrl, CTRL_DONE, seq - 1, Math.min(left, 1000));
    }
    if (Atomics.load(this.ctrl, CTRL_STATUS) !== 0) {
      const n = Atomics.load(this.ctrl, CTRL_ERROR_BYTES);
      throw new Error(`webgpu: ${new TextDecoder().decode(new Uint8Array(this.errorBuffer).slice(0, n))}`);
    }
  }

  private region(t: Tensor): Region {
    const a = this.sizes.get(t.buffer);
    if (!a) throw new C.BackendArgumentError('webgpu', `buffer ${t.buffer} was freed or never allocated`);
    if (t.offset + t.size > a.elems) throw new C.BackendArgumentError('webgpu', 'tensor window exceeds its allocation');
    const b = DEVICE_BYTES[t.dtype];
    return [t.buffer, t.offset * b, t.size * b];
  }

  private f32(kernel: string, tensors: Record<string, Tensor>): void {
    for (const [name, t] of Object.entries(tensors)) {
      if (t.dtype !== 'f32') throw new C.BackendArgumentError(kernel, `${name} must be f32 on the webgpu backend, got ${t.dtype}`);
    }
  }

  // ---- memory -------------------------------------------------------------------------------

  alloc(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    C.checkShape(shape);
    if (!(dtype in DTYPE_BYTES)) throw new C.BackendArgumentError('alloc', `unknown dtype '${dtype}'`);
    if (dtype === 'bf16') throw new C.BackendArgumentError('alloc', 'bf16 tensors are not supported on the webgpu backend (its low-precision path is f16, not yet implemented)');
    const elems = shapeSize(shape);
    const bytes = elems * DEVICE_BYTES[dtype];
    const id = this.nextId++;
    this.post({ op: 'alloc', id, bytes });
    // WebGPU zero-initialises new buffers.
    this.sizes.set(id, { elems, dtype, bytes });
    this.live += bytes;
    this.peak = Math.max(this.peak, this.live);
    return { backend: this.name, buffer: id, offset: 0, shape: [...shape], dtype, size: elems };
  }

  free(t: Tensor): void {
    C.checkTensor('free', 't', t, this.name);
    const a = this.sizes.get(t.buffer);
    if (!a) throw new C.BackendArgumentError('free', `buffer ${t.buffer} is not allocated (double free?)`);
    if (t.offset !== 0 || t.size !== a.elems) throw new C.BackendArgumentError('free', 'only a whole allocation can be freed, not a view');
    this.sizes.delete(t.buffer);
    this.live -= a.bytes;
    this.post({ op: 'free', id: t.buffer });
  }

  view(t: Tensor, offset: number, shape: readonly number[]): Tensor {
    const size = C.checkView(this.name, t, offset, shape);
    return { backend: this.name, buffer: t.buffer, offset: t.offset + offset, shape: [...shape], dtype: t.dtype, size };
  }

  liveBytes(): number {
    return this.live;
  }
  peakBytes(): number {
    return this.peak;
  }
  resetPeak(): void {
    this.peak = this.live;
  }

  upload(t: Tensor, data: ArrayLike<number>): void {
    C.checkTensor('upload', 't', t, this.name);
    if (data.length !== t.size) throw new C.BackendArgumentError('upload', `data has ${data.length} elements, tensor ${C.describe(t)} has ${t.size}`);
    let bytes: ArrayBuffer;
    if (t.dtype === 'f64') {
      // (hi, lo) with hi = fround(x) and lo = fround(x − hi): hi + lo carries ~48 bits of x.
      const pairs = new Float32Array(2 * t.size);
      for (let i = 0; i < t.size; i++) {
        const x = data[i]!;
        const hi = Math.fround(x);
        pairs[2 * i] = hi;
        pairs[2 * i + 1] = Number.isFinite(hi) ? Math.fround(x - hi) : 0;
      }
      bytes = pairs.buffer;
    } else {
      bytes = (t.dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data)).buffer;
    }
    if (t.size > 0) this.post({ op: 'upload', dst: this.region(t), data: bytes });
  }

  download(t: Tensor): HostArray {
    C.checkTensor('download', 't', t, this.name);
    const r = this.region(t);
    const out = new SharedArrayBuffer(Math.max(4, r[2]));
    this.request((seq) => ({ op: 'download', seq, src: r, out }), 'download');
    if (t.dtype === 'f64') {
      const pairs = new Float32Array(out, 0, 2 * t.size);
      const x = new Float64Array(t.size);
      for (let i = 0; i < t.size; i++) x[i] = pairs[2 * i]! + pairs[2 * i + 1]!;
      return x;
    }
    return t.dtype === 'i32' ? new Int32Array(out.slice(0, r[2])) : new Float32Array(out.slice(0, r[2]));
  }

  copy(dst: Tensor, src: Tensor): void {
    C.checkTensor('copy', 'dst', dst, this.name);
    C.checkTensor('copy', 'src', src, this.name, dst.dtype);
    C.checkSameSize('copy', ['dst', 'src'], [dst, src]);
    this.post({ op: 'copy', dst: this.region(dst), src: this.region(src) });
  }

  fill(t: Tensor, value: number): void {
    C.checkTensor('fill', 't', t, this.name);
    C.checkFinite('fill', 'value', value);
    K.fill(this.ctx, t, value);
  }

  synchronize(): void {
    this.request((seq) => ({ op: 'sync', seq }), 'synchronize');
  }

  setThreads(_n: number): void {}
  getThreads(): number {
    return 1;
  }

  // ---- elementwise and reductions -------------------------------------------------------------

  scale(x: Tensor, alpha: number): void {
    C.checkTensor('scale', 'x', x, this.name);
    C.checkFinite('scale', 'alpha', alpha);
    this.f32('scale', { x });
    K.scale(this.ctx, x, alpha);
  }

  axpy(y: Tensor, alpha: number, x: Tensor): void {
    C.checkTensor('axpy', 'y', y, this.name);
    C.checkFinite('axpy', 'alpha', alpha);
    C.checkTensor('axpy', 'x', x, this.name, y.dtype);
    C.checkSameSize('axpy', ['y', 'x'], [y, x]);
    this.f32('axpy', { y });
    K.axpy(this.ctx, y, alpha, x);
  }

  add(out: Tensor, a: Tensor, b: Tensor): void {
    C.checkTensor('add', 'out', out, this.name);
    C.checkTensor('add', 'a', a, this.name, out.dtype);
    C.checkTensor('add', 'b', b, this.name, out.dtype);
    C.checkSameSize('add', ['out', 'a', 'b'], [out, a, b]);
    this.f32('add', { out });
    K.add(this.ctx, out, a, b);
  }

  sumSquares(x: Tensor, out: Tensor, index: number): void {
    C.checkTensor('sumSquares', 'x', x, this.name);
    this.f32('sumSquares', { x });
    C.checkStatSlot(this.name, 'sumSquares', out, index);
    K.reduce(this.ctx, 0, x, null, 0, out, index);
  }

  dot(a: Tensor, b: Tensor, out: Tensor, index: number): void {
    C.checkTensor('dot', 'a', a, this.name);
    C.checkTensor('dot', 'b', b, this.name, a.dtype);
    C.checkSameSize('dot', ['a', 'b'], [a, b]);
    this.f32('dot', { a });
    C.checkStatSlot(this.name, 'dot', out, index);
    K.reduce(this.ctx, 1, a, b, 0, out, index);
  }

  accumulateWithNorm(acc: Tensor, alpha: number, g: Tensor, out: Tensor, index: number): void {
    C.checkTensor('accumulateWithNorm', 'acc', acc, this.name);
    C.checkFinite('accumulateWithNorm', 'alpha', alpha);
    C.checkTensor('accumulateWithNorm', 'g', g, this.name, acc.dtype);
    C.checkSameSize('accumulateWithNorm', ['acc', 'g'], [acc, g]);
    this.f32('accumulateWithNorm', { acc });
    C.checkStatSlot(this.name, 'accumulateWithNorm', out, index);
    K.reduce(this.ctx, 2, acc, g, alpha, out, index);
  }

  matmul(c: Tensor, a: Tensor, b: Tensor, transA: boolean, transB: boolean, alpha = 1, beta = 0): void {
    const { m, n, k } = C.checkMatmul(this.name, c, a, b, transA, transB, alpha, beta);
    this.f32('matmul', { c, a });
    K.matmul(this.ctx, c, a, b, m, n, k, transA === true, transB === true, alpha, beta);
  }
}

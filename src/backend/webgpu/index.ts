/**
 * `webgpu`: the GPU backend, on WebGPU through Dawn's Node bindings (the npm package `webgpu`).
 * Every kernel of the Backend interface runs on the GPU (kernels/*.ts). Its 16-bit type is f16 (on
 * devices with shader-f16), not bf16, which WGSL lacks.
 *
 * The device lives in a worker thread of its own (protocol.ts explains why): this class validates
 * every call with the shared checks, posts it, and blocks only where the interface returns data.
 * float64 tensors (statistics) are kept as float32 pairs (hi, lo) on the device and combined on
 * download.
 */
import { tmpdir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DTYPE_BYTES, shapeSize, type AdagradParams, type AdamWParams, type AttentionDims, type Backend, type DecodeDims, type DType, type HeadLossArgs, type HostArray, type LambParams, type LowpDType, type MuonMomentumParams, type Tensor } from '../backend.js';
import * as C from '../checks.js';
import { ADAPTER_VARIABLE, parseAdapterOverride, type AdapterPlacement, type AdapterSelection } from './adapter.js';
import * as A from './kernels/attention.js';
import * as K from './kernels/basic.js';
import * as H from './kernels/head-optim.js';
import * as L from './kernels/layers.js';
import * as O from './kernels/optimizers.js';
import type { GpuBinding, GpuContext, KernelSource } from './kernels/common.js';
import { CTRL_DONE, CTRL_ERROR_BYTES, CTRL_STATUS, CTRL_WORDS, ERROR_BUFFER_BYTES, type Command, type DeviceDescription, type DeviceRequest, type Region } from './protocol.js';

export interface WebGpuOptions extends Omit<DeviceRequest, 'adapter'> {
  /** This rank's place on its machine: which adapter it opens by default (adapter.ts; default: the first). */
  placement?: AdapterPlacement;
  /** Tokens per chunk of the fused head and loss (default 512; the chunk × vocab logits must fit one binding). */
  headChunkTokens?: number;
  /** How long a synchronous call waits for the device before failing, in ms (default 120 s: lavapipe is slow). */
  timeoutMs?: number;
}

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly device: DeviceDescription;
  /** What kernel modules dispatch through (kernels/common.ts). */
  private readonly ctx: GpuContext;
  /** Kernels whose WGSL the worker has (sent with their first dispatch). */
  private readonly compiled = new Set<string>();
  /**
   * Host copies of the int32 allocations (tokens and targets, uploaded by the host): token ranges
   * are checked here, as the other backends do, without reading the device back.
   */
  private readonly ints = new Map<number, Int32Array>();
  /** Tokens per chunk of the fused head (bounds its chunk × vocab logits scratch). */
  private readonly headChunk: number;
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
    // Which adapter (adapter.ts): local rank r gets the (r mod n)-th GPU where Dawn can select it;
    // ADABATCH_WEBGPU_ADAPTER overrides (a name, or indices by local rank; docs/gpu.md).
    const selection: AdapterSelection = { ...(opts.placement ?? { localRank: 0, localRanks: 1, via: 'one rank' }), override: parseAdapterOverride(process.env[ADAPTER_VARIABLE]) };
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    // The Vulkan loader wants a runtime directory; a headless machine may have none.
    process.env.XDG_RUNTIME_DIR ??= tmpdir();
    this.headChunk = opts.headChunkTokens ?? 512;
    this.ctrl = new Int32Array(new SharedArrayBuffer(4 * CTRL_WORDS));
    this.errorBuffer = new SharedArrayBuffer(ERROR_BUFFER_BYTES);
    // execArgv: [] so that flags of this process (e.g. --input-type) do not reach the worker.
    this.worker = new Worker(new URL('./gpu-worker.js', import.meta.url), { execArgv: [] });
    // The worker must not keep the process alive on its own; dispose() closes it.
    this.worker.unref();
    const result = new SharedArrayBuffer(64 * 1024);
    const request: DeviceRequest = { ...(opts.powerPreference && { powerPreference: opts.powerPreference }), ...(opts.dawnOptions && { dawnOptions: opts.dawnOptions }), adapter: selection };
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
    this.post({ op: 'dispatch', name: k.name, ...(first && { code: k.code }), params, bindings: bindings.map((b) => ({ region: this.region(b.t), write: b.write === true, unit: b.t.dtype === 'f16' ? 2 : 4 })), groups: [groups[0], groups[1] ?? 1, groups[2] ?? 1] });
  }

  /** The dispatch context kernel modules use (kernels/common.ts); tests call kernel modules through it. */
  get context(): GpuContext {
    return this.ctx;
  }

  /** Tests only: makes the device lost, as a driver reset would. */
  loseDeviceForTesting(): void {
    this.post({ op: 'loseDevice' });
  }

  /**
   * Waits for the queued work, destroys the device and ends its worker; the backend cannot be used
   * afterwards. Call it before the thread that made the backend ends: a device torn down with its
   * thread can abort the process (dawn.node).
   */
  dispose(): void {
    if (this.closed) return;
    try {
      this.request((seq) => ({ op: 'close', seq }), 'close the device');
    } finally {
      this.closed = true;
    }
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
    const b = DTYPE_BYTES[t.dtype];
    return [t.buffer, t.offset * b, t.size * b];
  }

  /** The host copy of an int32 tensor's values. */
  private hostInts(t: Tensor): Int32Array {
    return this.ints.get(t.buffer)!.subarray(t.offset, t.offset + t.size);
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
    if (dtype === 'bf16' || dtype === 'f16') {
      const s = this.supportsLowPrecision(dtype);
      if (!s.supported) throw new C.BackendArgumentError('alloc', s.detail);
    }
    const elems = shapeSize(shape);
    const bytes = elems * DTYPE_BYTES[dtype];
    const id = this.nextId++;
    this.post({ op: 'alloc', id, bytes });
    // WebGPU zero-initialises new buffers.
    this.sizes.set(id, { elems, dtype, bytes });
    if (dtype === 'i32') this.ints.set(id, new Int32Array(elems));
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
    this.ints.delete(t.buffer);
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
    if (t.dtype === 'f16') {
      // Through float32 and the conversion kernel (rounding as convert does): buffer writes move
      // whole 4-byte words, and an f16 view may start or end inside one.
      this.throughFloat32(t, (wide) => this.upload(wide, data), 'in');
      return;
    }
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
    } else if (t.dtype === 'i32') {
      const ints = Int32Array.from(data);
      this.ints.get(t.buffer)!.set(ints, t.offset);
      bytes = ints.buffer;
    } else {
      bytes = Float32Array.from(data).buffer;
    }
    if (t.size > 0) this.post({ op: 'upload', dst: this.region(t), data: bytes });
  }

  download(t: Tensor): HostArray {
    C.checkTensor('download', 't', t, this.name);
    if (t.dtype === 'f16') {
      let out: HostArray = new Float32Array(0);
      this.throughFloat32(t, (wide) => (out = this.download(wide)), 'out');
      return out;
    }
    const r = this.region(t);
    const out = new SharedArrayBuffer(Math.max(4, r[2]));
    this.request((seq) => ({ op: 'download', seq, src: r, out }), 'download');
    if (t.dtype === 'f64') {
      const pairs = new Float32Array(out, 0, 2 * t.size);
      const x = new Float64Array(t.size);
      for (let i = 0; i < t.size; i++) x[i] = pairs[2 * i]! + pairs[2 * i + 1]!;
      return x;
    }
    // Copied out of the shared buffer: callers (e.g. the native addon) expect ordinary ArrayBuffers.
    return t.dtype === 'i32' ? new Int32Array(out, 0, t.size).slice() : new Float32Array(out, 0, t.size).slice();
  }

  /** Moves an f16 tensor's values in or out of the host through a float32 temporary. */
  private throughFloat32(t: Tensor, host: (wide: Tensor) => void, direction: 'in' | 'out'): void {
    const wide = this.alloc(t.shape);
    try {
      if (direction === 'out') K.convert(this.ctx, wide, t, 1);
      host(wide);
      if (direction === 'in') K.convert(this.ctx, t, wide, 1);
    } finally {
      this.free(wide);
    }
  }

  copy(dst: Tensor, src: Tensor): void {
    C.checkTensor('copy', 'dst', dst, this.name);
    C.checkTensor('copy', 'src', src, this.name, dst.dtype);
    C.checkSameSize('copy', ['dst', 'src'], [dst, src]);
    if (dst.dtype === 'f16') {
      K.copyHalf(this.ctx, dst, src);
      return;
    }
    this.post({ op: 'copy', dst: this.region(dst), src: this.region(src) });
    if (dst.dtype === 'i32') this.ints.get(dst.buffer)!.set(this.hostInts(src), dst.offset);
  }

  fill(t: Tensor, value: number): void {
    C.checkTensor('fill', 't', t, this.name);
    C.checkFinite('fill', 'value', value);
    K.fill(this.ctx, t, value);
    if (t.dtype === 'i32') this.ints.get(t.buffer)!.fill(value, t.offset, t.offset + t.size);
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
    this.f32('matmul', { c });
    if (a.dtype === 'bf16') throw new C.BackendArgumentError('matmul', this.supportsLowPrecision('bf16').detail);
    K.matmul(this.ctx, c, a, b, m, n, k, transA === true, transB === true, alpha, beta);
  }

  // ---- precision ----------------------------------------------------------------------------

  convert(dst: Tensor, src: Tensor, scale = 1): void {
    const dtype = C.checkConvert(this.name, dst, src, scale);
    const s = this.supportsLowPrecision(dtype);
    if (!s.supported) throw new C.BackendArgumentError('convert', s.detail);
    K.convert(this.ctx, dst, src, scale);
  }

  supportsLowPrecision(dtype: LowpDType): { supported: boolean; detail: string } {
    if (dtype === 'bf16') return { supported: false, detail: 'bf16 is not available on the webgpu backend (WGSL has f16, not bf16): use precision: f16' };
    return this.device.features.includes('shader-f16')
      ? { supported: true, detail: `f16 GEMM inputs with float32 accumulation on ${this.device.adapter}` }
      : { supported: false, detail: `this GPU (${this.device.adapter}) lacks WebGPU's shader-f16 feature: use precision: f32` };
  }

  maxTensorBytes(): number {
    return this.device.maxStorageBufferBindingSize;
  }

  describeKernels(): string {
    return `WebGPU on ${this.device.adapter} (features: ${this.device.features.filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ') || 'none of shader-f16, subgroups'}; max binding ${(this.device.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB)`;
  }

  clipByGlobalNorm(x: Tensor, sqNorm: Tensor, index: number, maxNorm: number): void {
    const K = 'clipByGlobalNorm';
    C.checkTensor(K, 'x', x, this.name);
    C.checkStatSlot(this.name, K, sqNorm, index);
    C.checkFinite(K, 'maxNorm', maxNorm);
    this.f32(K, { x });
    H.clipByGlobalNorm(this.ctx, x, sqNorm, index, maxNorm);
  }

  // ---- layers -------------------------------------------------------------------------------

  embeddingForward(out: Tensor, table: Tensor, tokens: Tensor): void {
    const K = 'embeddingForward';
    const { n, dim, vocab } = C.checkEmbedding(this.name, K, out, table, tokens);
    this.f32(K, { out, table });
    C.checkTokenRange(K, this.hostInts(tokens), vocab);
    L.embeddingForward(this.ctx, out, table, tokens, n, dim, vocab);
  }

  embeddingBackward(dTable: Tensor, dOut: Tensor, tokens: Tensor): void {
    const K = 'embeddingBackward';
    const { n, dim, vocab } = C.checkEmbedding(this.name, K, dOut, dTable, tokens);
    this.f32(K, { dTable, dOut });
    C.checkTokenRange(K, this.hostInts(tokens), vocab);
    L.embeddingBackward(this.ctx, dTable, dOut, tokens, n, dim, vocab);
  }

  rmsnormForward(out: Tensor, rstd: Tensor, x: Tensor, w: Tensor, eps: number): void {
    const { rows, dim } = C.checkRmsnorm(this.name, out, rstd, x, w, eps);
    this.f32('rmsnormForward', { x });
    L.rmsnormForward(this.ctx, out, rstd, x, w, rows, dim, eps);
  }

  rmsnormBackward(dx: Tensor, dw: Tensor, dOut: Tensor, x: Tensor, w: Tensor, rstd: Tensor, accumulate: boolean): void {
    const { rows, dim } = C.checkRmsnormBackward(this.name, dx, dw, dOut, x, w, rstd);
    this.f32('rmsnormBackward', { x });
    L.rmsnormBackward(this.ctx, dx, dw, dOut, x, w, rstd, rows, dim, accumulate === true);
  }

  rope(x: Tensor, cos: Tensor, sin: Tensor, seqLen: number, nHeads: number, headDim: number, inverse: boolean): void {
    const { rows, width } = C.checkRope(this.name, x, cos, sin, seqLen, nHeads, headDim);
    this.f32('rope', { x });
    L.rope(this.ctx, x, cos, sin, rows, width, seqLen, nHeads, headDim, inverse === true);
  }

  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, dims: AttentionDims): void {
    const K = 'attentionForward';
    C.checkAttention(this.name, K, out, lse, qkv, dims);
    this.f32(K, { qkv });
    A.attentionForward(this.ctx, out, lse, qkv, dims);
  }

  attentionBackward(dqkv: Tensor, dOut: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, dims: AttentionDims): void {
    const K = 'attentionBackward';
    C.checkAttentionBackward(this.name, dqkv, dOut, qkv, out, lse, dims);
    this.f32(K, { qkv });
    A.attentionBackward(this.ctx, dqkv, dOut, qkv, out, lse, dims);
  }

  attentionDecode(out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, pos: number, dims: DecodeDims): void {
    const K = 'attentionDecode';
    C.checkAttentionDecode(this.name, out, qkv, kCache, vCache, pos, dims);
    this.f32(K, { qkv });
    A.attentionDecode(this.ctx, out, qkv, kCache, vCache, pos, dims);
  }

  swigluForward(h: Tensor, gu: Tensor): void {
    const { rows, ffn } = C.checkSwiglu(this.name, 'swigluForward', h, gu);
    this.f32('swigluForward', { gu });
    L.swigluForward(this.ctx, h, gu, rows, ffn);
  }

  swigluBackward(dgu: Tensor, dh: Tensor, gu: Tensor): void {
    const { rows, ffn } = C.checkSwigluBackward(this.name, dgu, dh, gu);
    this.f32('swigluBackward', { gu });
    L.swigluBackward(this.ctx, dgu, dh, gu, rows, ffn);
  }

  headLoss(args: HeadLossArgs): void {
    const K = 'headLoss';
    const { rows, dim, vocab } = C.checkHeadLoss(this.name, args);
    this.f32(K, { x: args.x });
    if (args.headWLowp) throw new C.BackendArgumentError(K, this.supportsLowPrecision('bf16').detail);
    C.checkTokenRange(K, this.hostInts(args.targets), vocab, true);
    // The chunk's logits (chunk × vocab float32) must fit one storage binding.
    const fit = Math.max(1, Math.floor(this.device.maxStorageBufferBindingSize / (4 * Math.max(1, vocab))));
    H.headLoss(this.ctx, args, rows, dim, vocab, Math.min(args.chunkTokens ?? this.headChunk, fit));
  }

  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: AdamWParams): void {
    C.checkAdamW(this.name, param, grad, m, v, p);
    this.f32('adamw', { param });
    H.adamw(this.ctx, param, grad, m, v, p);
  }

  adagrad(param: Tensor, grad: Tensor, sum: Tensor, p: AdagradParams): void {
    C.checkAdagrad(this.name, param, grad, sum, p);
    O.adagrad(this.ctx, param, grad, sum, p);
  }

  lambDirection(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: LambParams): void {
    C.checkLambDirection(this.name, param, grad, m, v, p);
    O.lambDirection(this.ctx, param, grad, m, v, p);
  }

  muonMomentum(grad: Tensor, buf: Tensor, p: MuonMomentumParams): void {
    C.checkMuonMomentum(this.name, grad, buf, p);
    O.muonMomentum(this.ctx, grad, buf, p);
  }
}

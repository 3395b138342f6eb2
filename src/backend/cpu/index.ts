/**
 * `cpu`: the native backend. Kernels run in the N-API addon under native/ (oneDNN matmul for every
 * matrix product, vectorised C++ for the rest) on 64-byte-aligned buffers kept in a process-global
 * registry. Every call is validated twice: here with the shared checks (the same errors as `ref`),
 * and again in native code against the real allocation, so a bad id, offset, size or dtype is a
 * thrown Error and never an out-of-range access.
 *
 * Layers and the optimizer run in float32; float64 tensors hold statistics (and may be copied,
 * filled, scaled, added and reduced); int32 tensors hold tokens; bf16 tensors hold GEMM inputs under
 * mixed precision (alloc, copy, fill, convert, matmul), where the CPU has bf16 instructions.
 *
 * Threads: `setThreads(n)` sizes this instance's pool; oneDNN runs single-threaded inside it (a
 * large GEMM is split into one block per thread), so GEMM threads and kernel threads never compete.
 * With several instances in worker_threads (data-parallel ranks), each runs with one thread.
 */
import { shapeSize, type AdagradParams, type AdamWParams, type AttentionDims, type Backend, type CollectiveAccess, type DecodeDims, type DType, type HeadLossArgs, type HostArray, type LambParams, type LowpDType, type MuonMomentumParams, type Tensor } from '../backend.js';
import * as C from '../checks.js';
import { DTYPE_CODE, loadNativeAddon, type GemmConfig, type NativeContext } from '../../addon/addon.js';
import { fromBf16Bits, toBf16Bits } from '../bf16.js';
import { KernelProfiler, type KernelTime } from './profile.js';

export interface CpuBackendOptions {
  /** Kernel threads of this instance (default 1). */
  threads?: number;
  /** Tokens per chunk of the fused head + loss kernel when the caller gives none. */
  headChunkTokens?: number;
}

/** Default tokens per chunk of headLoss: bounds the chunk × vocab logits scratch. */
export const DEFAULT_HEAD_CHUNK_TOKENS = 512;

type Quad = [number, number, number, number];

function q(t: Tensor): Quad {
  // (f16 tensors never exist here: alloc refuses them, and checkTensor refuses other backends' tensors.)
  return [t.buffer, t.offset, t.size, DTYPE_CODE[t.dtype as keyof typeof DTYPE_CODE]];
}

function f32(kernel: string, tensors: Record<string, Tensor>): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'f32') throw new C.BackendArgumentError(kernel, `${name} must be f32 on the cpu backend (float64 layers are for the ref backend), got ${t.dtype}`);
  }
}

let gemmConfigCache: GemmConfig | null = null;
/** The addon's GEMM library, ISA and implementations (probed once per process). */
export function gemmConfig(): GemmConfig {
  gemmConfigCache ??= loadNativeAddon().gemmConfig();
  return gemmConfigCache;
}

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  /** Tensors are native registry allocations: process groups reduce them in place. */
  readonly collectives: CollectiveAccess = { kind: 'registry' };
  private readonly ctx: NativeContext;
  private readonly profiler = new KernelProfiler();
  private readonly headChunk: number;

  constructor(opts: CpuBackendOptions = {}) {
    const threads = opts.threads ?? 1;
    C.checkInt('cpu backend', 'threads', threads, 1);
    this.headChunk = opts.headChunkTokens ?? DEFAULT_HEAD_CHUNK_TOKENS;
    C.checkInt('cpu backend', 'headChunkTokens', this.headChunk, 1);
    this.ctx = new (loadNativeAddon().Context)(threads);
  }

  // ---- instance extras ----------------------------------------------------------------------
  /** Starts (or stops) per-kernel wall-time accounting; off costs nothing. */
  setProfiling(on: boolean): void {
    if (on) this.profiler.install(this);
    else this.profiler.uninstall();
  }
  profileReport(): KernelTime[] {
    return this.profiler.report();
  }
  resetProfile(): void {
    this.profiler.reset();
  }
  /** Bytes of internal scratch (attention tiles, head-loss chunks) currently reserved. */
  scratchBytes(): number {
    return this.ctx.scratchBytes();
  }
  releaseScratch(): void {
    this.ctx.releaseScratch();
  }
  /** How long idle pool threads spin before sleeping (default 300 µs). */
  setSpinMicros(us: number): void {
    this.ctx.setSpin(us);
  }
  /** Frees every buffer of this instance and stops its threads; later calls throw. */
  dispose(): void {
    this.ctx.dispose();
  }

  // ---- memory -------------------------------------------------------------------------------
  alloc(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    C.checkShape(shape);
    if (dtype === 'f16') throw new C.BackendArgumentError('alloc', this.supportsLowPrecision('f16').detail);
    if (!Object.hasOwn(DTYPE_CODE, dtype)) throw new C.BackendArgumentError('alloc', `unknown dtype '${dtype}'`);
    const size = shapeSize(shape);
    const id = this.ctx.alloc(size, DTYPE_CODE[dtype]);
    return { backend: this.name, buffer: id, offset: 0, shape: [...shape], dtype, size };
  }

  free(t: Tensor): void {
    C.checkTensor('free', 't', t, this.name);
    this.ctx.free(...q(t));
  }

  view(t: Tensor, offset: number, shape: readonly number[]): Tensor {
    const size = C.checkView(this.name, t, offset, shape);
    return { backend: this.name, buffer: t.buffer, offset: t.offset + offset, shape: [...shape], dtype: t.dtype, size };
  }

  liveBytes(): number {
    return this.ctx.liveBytes();
  }
  peakBytes(): number {
    return this.ctx.peakBytes();
  }
  resetPeak(): void {
    this.ctx.resetPeak();
  }

  upload(t: Tensor, data: ArrayLike<number>): void {
    C.checkTensor('upload', 't', t, this.name);
    if (data.length !== t.size) throw new C.BackendArgumentError('upload', `data has ${data.length} elements, tensor ${C.describe(t)} has ${t.size}`);
    if (t.dtype === 'bf16') {
      this.ctx.upload(...q(t), toBf16Bits(data));
      return;
    }
    const Ctor = t.dtype === 'f32' ? Float32Array : t.dtype === 'f64' ? Float64Array : Int32Array;
    const typed = data instanceof Ctor ? data : Ctor.from(data);
    this.ctx.upload(...q(t), typed);
  }

  download(t: Tensor): HostArray {
    C.checkTensor('download', 't', t, this.name);
    const out = this.ctx.download(...q(t));
    return out instanceof Uint16Array ? fromBf16Bits(out) : out;
  }

  copy(dst: Tensor, src: Tensor): void {
    C.checkTensor('copy', 'dst', dst, this.name);
    C.checkTensor('copy', 'src', src, this.name, dst.dtype);
    C.checkSameSize('copy', ['dst', 'src'], [dst, src]);
    this.ctx.copy(...q(dst), ...q(src));
  }

  fill(t: Tensor, value: number): void {
    C.checkTensor('fill', 't', t, this.name);
    C.checkFinite('fill', 'value', value);
    this.ctx.fill(...q(t), value);
  }

  synchronize(): void {}

  setThreads(n: number): void {
    C.checkInt('setThreads', 'n', n, 1);
    this.ctx.setThreads(n);
  }
  getThreads(): number {
    return this.ctx.getThreads();
  }

  // ---- elementwise and reductions -------------------------------------------------------------
  scale(x: Tensor, alpha: number): void {
    C.checkTensor('scale', 'x', x, this.name, ['f32', 'f64']);
    C.checkFinite('scale', 'alpha', alpha);
    this.ctx.scale(...q(x), alpha);
  }

  axpy(y: Tensor, alpha: number, x: Tensor): void {
    C.checkTensor('axpy', 'y', y, this.name, ['f32', 'f64']);
    C.checkFinite('axpy', 'alpha', alpha);
    C.checkTensor('axpy', 'x', x, this.name, y.dtype);
    C.checkSameSize('axpy', ['y', 'x'], [y, x]);
    this.ctx.axpy(...q(y), alpha, ...q(x));
  }

  add(out: Tensor, a: Tensor, b: Tensor): void {
    C.checkTensor('add', 'out', out, this.name, ['f32', 'f64']);
    C.checkTensor('add', 'a', a, this.name, out.dtype);
    C.checkTensor('add', 'b', b, this.name, out.dtype);
    C.checkSameSize('add', ['out', 'a', 'b'], [out, a, b]);
    this.ctx.add(...q(out), ...q(a), ...q(b));
  }

  sumSquares(x: Tensor, out: Tensor, index: number): void {
    C.checkStatSlot(this.name, 'sumSquares', out, index);
    C.checkTensor('sumSquares', 'x', x, this.name, ['f32', 'f64']);
    this.ctx.sumSquares(...q(x), ...q(out), index);
  }

  dot(a: Tensor, b: Tensor, out: Tensor, index: number): void {
    C.checkStatSlot(this.name, 'dot', out, index);
    C.checkTensor('dot', 'a', a, this.name, ['f32', 'f64']);
    C.checkTensor('dot', 'b', b, this.name, a.dtype);
    C.checkSameSize('dot', ['a', 'b'], [a, b]);
    this.ctx.dot(...q(a), ...q(b), ...q(out), index);
  }

  accumulateWithNorm(acc: Tensor, alpha: number, g: Tensor, out: Tensor, index: number): void {
    const K = 'accumulateWithNorm';
    C.checkStatSlot(this.name, K, out, index);
    C.checkFinite(K, 'alpha', alpha);
    C.checkTensor(K, 'acc', acc, this.name, ['f32', 'f64']);
    C.checkTensor(K, 'g', g, this.name, acc.dtype);
    C.checkSameSize(K, ['acc', 'g'], [acc, g]);
    this.ctx.accumulateWithNorm(...q(acc), alpha, ...q(g), ...q(out), index);
  }

  clipByGlobalNorm(x: Tensor, sqNorm: Tensor, index: number, maxNorm: number): void {
    const K = 'clipByGlobalNorm';
    C.checkStatSlot(this.name, K, sqNorm, index);
    C.checkFinite(K, 'maxNorm', maxNorm);
    C.checkTensor(K, 'x', x, this.name, ['f32', 'f64']);
    this.ctx.clipByGlobalNorm(...q(x), ...q(sqNorm), index, maxNorm);
  }

  // ---- layers -------------------------------------------------------------------------------
  embeddingForward(out: Tensor, table: Tensor, tokens: Tensor): void {
    const K = 'embeddingForward';
    const { dim, vocab } = C.checkEmbedding(this.name, K, out, table, tokens);
    f32(K, { out, table });
    this.ctx.embeddingForward(...q(out), ...q(table), ...q(tokens), vocab, dim);
  }

  embeddingBackward(dTable: Tensor, dOut: Tensor, tokens: Tensor): void {
    const K = 'embeddingBackward';
    const { dim, vocab } = C.checkEmbedding(this.name, K, dOut, dTable, tokens);
    f32(K, { dTable, dOut });
    this.ctx.embeddingBackward(...q(dTable), ...q(dOut), ...q(tokens), vocab, dim);
  }

  rmsnormForward(out: Tensor, rstd: Tensor, x: Tensor, w: Tensor, eps: number): void {
    const K = 'rmsnormForward';
    const { rows, dim } = C.checkRmsnorm(this.name, out, rstd, x, w, eps);
    f32(K, { x });
    this.ctx.rmsnormForward(...q(out), ...q(rstd), ...q(x), ...q(w), rows, dim, eps);
  }

  rmsnormBackward(dx: Tensor, dw: Tensor, dOut: Tensor, x: Tensor, w: Tensor, rstd: Tensor, accumulate: boolean): void {
    const K = 'rmsnormBackward';
    const { rows, dim } = C.checkRmsnormBackward(this.name, dx, dw, dOut, x, w, rstd);
    f32(K, { x });
    this.ctx.rmsnormBackward(...q(dx), ...q(dw), ...q(dOut), ...q(x), ...q(w), ...q(rstd), rows, dim, accumulate === true);
  }

  convert(dst: Tensor, src: Tensor, scale = 1): void {
    C.checkConvert(this.name, dst, src, scale);
    this.requireBf16('convert');
    if (scale === 1) {
      this.ctx.convert(...q(dst), ...q(src));
    } else if (dst.dtype === 'f32') {
      this.ctx.convert(...q(dst), ...q(src));
      this.ctx.scale(...q(dst), scale);
    } else {
      // Scaled in float32 first, then rounded: what ref does (the native conversion has no scale).
      const tmp = this.alloc(src.shape);
      this.copy(tmp, src);
      this.scale(tmp, scale);
      this.ctx.convert(...q(dst), ...q(tmp));
      this.free(tmp);
    }
  }

  supportsLowPrecision(dtype: LowpDType): { supported: boolean; detail: string } {
    // f16 GEMMs would need AVX512_FP16 (Sapphire Rapids) and oneDNN 3; bf16 is the cpu's 16-bit type.
    if (dtype === 'f16') return { supported: false, detail: 'f16 is not available on the cpu backend (its 16-bit GEMM type is bf16: use precision: bf16)' };
    const g = gemmConfig();
    return g.bf16
      ? { supported: true, detail: `${g.library}, ${g.isa}, bf16 matmul ${g.bf16Impl}` }
      : { supported: false, detail: `this CPU has no bf16 instructions (AVX512_BF16 or AMX): ${g.library} dispatches to ${g.isa}, where bf16 would be emulated slowly` };
  }

  describeKernels(): string {
    const g = gemmConfig();
    return `GEMMs ${g.library} on ${g.isa} (f32 ${g.f32Impl}${g.bf16 ? `, bf16 ${g.bf16Impl}` : '; no bf16 instructions'}), own kernels ${g.kernels}`;
  }

  private requireBf16(kernel: string): void {
    const s = this.supportsLowPrecision('bf16');
    if (!s.supported) throw new C.BackendArgumentError(kernel, `bf16 is not available on the cpu backend here: ${s.detail}`);
  }

  matmul(c: Tensor, a: Tensor, b: Tensor, transA: boolean, transB: boolean, alpha = 1, beta = 0): void {
    const { m, n, k } = C.checkMatmul(this.name, c, a, b, transA, transB, alpha, beta);
    f32('matmul', { c });
    if (a.dtype === 'bf16') this.requireBf16('matmul');
    this.ctx.matmul(...q(c), ...q(a), ...q(b), transA === true, transB === true, m, n, k, alpha, beta);
  }

  rope(x: Tensor, cos: Tensor, sin: Tensor, seqLen: number, nHeads: number, headDim: number, inverse: boolean): void {
    const { rows, width } = C.checkRope(this.name, x, cos, sin, seqLen, nHeads, headDim);
    f32('rope', { x });
    this.ctx.rope(...q(x), ...q(cos), ...q(sin), rows, width, seqLen, nHeads, headDim, inverse === true);
  }

  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, dims: AttentionDims): void {
    const K = 'attentionForward';
    C.checkAttention(this.name, K, out, lse, qkv, dims);
    f32(K, { qkv });
    this.ctx.attentionForward(...q(out), ...q(lse), ...q(qkv), dims.batch, dims.seqLen, dims.nHeads, dims.nKvHeads, dims.headDim);
  }

  attentionBackward(dqkv: Tensor, dOut: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, dims: AttentionDims): void {
    const K = 'attentionBackward';
    C.checkAttentionBackward(this.name, dqkv, dOut, qkv, out, lse, dims);
    f32(K, { qkv });
    this.ctx.attentionBackward(...q(dqkv), ...q(dOut), ...q(qkv), ...q(out), ...q(lse), dims.batch, dims.seqLen, dims.nHeads, dims.nKvHeads, dims.headDim);
  }

  attentionDecode(out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, pos: number, dims: DecodeDims): void {
    const K = 'attentionDecode';
    C.checkAttentionDecode(this.name, out, qkv, kCache, vCache, pos, dims);
    f32(K, { qkv });
    this.ctx.attentionDecode(...q(out), ...q(qkv), ...q(kCache), ...q(vCache), pos, dims.batch, dims.maxSeqLen, dims.nHeads, dims.nKvHeads, dims.headDim);
  }

  swigluForward(h: Tensor, gu: Tensor): void {
    const { rows, ffn } = C.checkSwiglu(this.name, 'swigluForward', h, gu);
    f32('swigluForward', { gu });
    this.ctx.swigluForward(...q(h), ...q(gu), rows, ffn);
  }

  swigluBackward(dgu: Tensor, dh: Tensor, gu: Tensor): void {
    const K = 'swigluBackward';
    const { rows, ffn } = C.checkSwigluBackward(this.name, dgu, dh, gu);
    f32(K, { gu });
    this.ctx.swigluBackward(...q(dgu), ...q(dh), ...q(gu), rows, ffn);
  }

  headLoss(args: HeadLossArgs): void {
    const K = 'headLoss';
    const { rows, dim, vocab } = C.checkHeadLoss(this.name, args);
    f32(K, { x: args.x });
    const g = args.grads;
    const chunk = args.chunkTokens ?? this.headChunk;
    if (args.headWLowp) this.requireBf16(K);
    const lowp = args.headWLowp ? [true, ...q(args.headWLowp)] : [false];
    const head = [...q(args.x), ...q(args.normW), ...q(args.headW), ...q(args.targets), ...q(args.lossOut), args.lossIndex, args.eps, rows, dim, vocab, chunk, ...lowp];
    if (g) this.ctx.headLoss(...head, true, ...q(g.dx), ...q(g.dNormW), ...q(g.dHeadW), g.gradScale);
    else this.ctx.headLoss(...head, false);
  }

  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: AdamWParams): void {
    C.checkAdamW(this.name, param, grad, m, v, p);
    f32('adamw', { param });
    this.ctx.adamw(...q(param), ...q(grad), ...q(m), ...q(v), p.lr, p.beta1, p.beta2, p.eps, p.weightDecay, p.step);
  }

  adagrad(param: Tensor, grad: Tensor, sum: Tensor, p: AdagradParams): void {
    C.checkAdagrad(this.name, param, grad, sum, p);
    f32('adagrad', { param });
    this.ctx.adagrad(...q(param), ...q(grad), ...q(sum), p.lr, p.eps, p.weightDecay);
  }

  lambDirection(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: LambParams): void {
    C.checkLambDirection(this.name, param, grad, m, v, p);
    f32('lambDirection', { param });
    this.ctx.lambDirection(...q(param), ...q(grad), ...q(m), ...q(v), p.beta1, p.beta2, p.eps, p.weightDecay, p.step);
  }

  muonMomentum(grad: Tensor, buf: Tensor, p: MuonMomentumParams): void {
    C.checkMuonMomentum(this.name, grad, buf, p);
    f32('muonMomentum', { grad });
    this.ctx.muonMomentum(...q(grad), ...q(buf), p.beta, p.nesterov);
  }
}

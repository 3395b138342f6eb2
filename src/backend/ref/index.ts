/**
 * `ref`: the reference backend in plain TypeScript. Slow, single-threaded and obviously correct; the
 * oracle every other backend is tested against. Supports float32 and float64 tensors (float64 is used
 * by the finite-difference tests), and bf16 and f16 tensors held as float32 values that are always
 * rounded to their dtype (every write rounds), so a 16-bit matmul is the f32 matmul of the rounded
 * inputs.
 */
import { DTYPE_BYTES, shapeSize, type AdagradParams, type AdamWParams, type AttentionDims, type Backend, type DecodeDims, type DType, type HeadLossArgs, type HostArray, type LambParams, type LowpDType, type MuonMomentumParams, type Tensor } from '../backend.js';
import * as C from '../checks.js';
import * as M from './math.js';
import { roundToBf16 } from '../bf16.js';
import { roundToF16 } from '../f16.js';

interface Allocation {
  data: HostArray;
  bytes: number;
}

export class RefBackend implements Backend {
  readonly name = 'ref';
  private readonly allocations = new Map<number, Allocation>();
  private nextId = 1;
  private live = 0;
  private peak = 0;

  // ---- memory -------------------------------------------------------------------------------
  alloc(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    C.checkShape(shape);
    if (!(dtype in DTYPE_BYTES)) throw new C.BackendArgumentError('alloc', `unknown dtype '${dtype}'`);
    const size = shapeSize(shape);
    const data = dtype === 'f32' || dtype === 'bf16' || dtype === 'f16' ? new Float32Array(size) : dtype === 'f64' ? new Float64Array(size) : new Int32Array(size);
    const id = this.nextId++;
    const bytes = size * DTYPE_BYTES[dtype];
    this.allocations.set(id, { data, bytes });
    this.live += bytes;
    this.peak = Math.max(this.peak, this.live);
    return { backend: this.name, buffer: id, offset: 0, shape: [...shape], dtype, size };
  }

  free(t: Tensor): void {
    C.checkTensor('free', 't', t, this.name);
    const a = this.allocations.get(t.buffer);
    if (!a) throw new C.BackendArgumentError('free', `buffer ${t.buffer} is not allocated (double free?)`);
    if (t.offset !== 0 || t.size !== a.data.length) throw new C.BackendArgumentError('free', 'only a whole allocation can be freed, not a view');
    this.allocations.delete(t.buffer);
    this.live -= a.bytes;
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
    const a = this.arr(t, 'upload');
    if (data.length !== t.size) throw new C.BackendArgumentError('upload', `data has ${data.length} elements, tensor ${C.describe(t)} has ${t.size}`);
    const round = lowpRounding(t.dtype);
    for (let i = 0; i < t.size; i++) a[i] = round(data[i]!);
  }

  download(t: Tensor): HostArray {
    return this.arr(t, 'download').slice();
  }

  copy(dst: Tensor, src: Tensor): void {
    C.checkTensor('copy', 'src', src, this.name, dst.dtype);
    C.checkSameSize('copy', ['dst', 'src'], [dst, src]);
    this.arr(dst, 'copy').set(this.arr(src, 'copy'));
  }

  fill(t: Tensor, value: number): void {
    C.checkFinite('fill', 'value', value);
    this.arr(t, 'fill').fill(lowpRounding(t.dtype)(value));
  }

  convert(dst: Tensor, src: Tensor, scale = 1): void {
    C.checkConvert(this.name, dst, src, scale);
    const d = this.arr(dst, 'convert');
    const s = this.arr(src, 'convert');
    // Into f32 the value is exact and the scale (a power of two) is applied in float32, as on the GPU.
    const round = dst.dtype === 'f32' ? Math.fround : lowpRounding(dst.dtype);
    for (let i = 0; i < d.length; i++) d[i] = round(s[i]! * scale);
  }

  describeKernels(): string {
    return 'plain TypeScript (the reference: slow, single-threaded)';
  }

  supportsLowPrecision(dtype: LowpDType): { supported: boolean; detail: string } {
    return { supported: true, detail: `ref: ${dtype} values held in float32 arrays` };
  }

  synchronize(): void {}
  setThreads(_n: number): void {}
  getThreads(): number {
    return 1;
  }

  /** The typed-array window of a tensor (internal: host code outside backends never sees this). */
  private arr(t: Tensor, kernel: string): HostArray {
    C.checkTensor(kernel, 'tensor', t, this.name);
    const a = this.allocations.get(t.buffer);
    if (!a) throw new C.BackendArgumentError(kernel, `buffer ${t.buffer} was freed or never allocated`);
    if (t.offset + t.size > a.data.length) throw new C.BackendArgumentError(kernel, `tensor window exceeds its allocation`);
    return a.data.subarray(t.offset, t.offset + t.size);
  }

  private floats(t: Tensor, kernel: string, name: string): M.Floats {
    C.checkTensor(kernel, name, t, this.name, ['f32', 'f64']);
    return this.arr(t, kernel) as M.Floats;
  }

  private ints(t: Tensor, kernel: string, name: string): Int32Array {
    C.checkTensor(kernel, name, t, this.name, 'i32');
    return this.arr(t, kernel) as Int32Array;
  }

  // ---- elementwise and reductions -------------------------------------------------------------
  scale(x: Tensor, alpha: number): void {
    C.checkFinite('scale', 'alpha', alpha);
    const a = this.floats(x, 'scale', 'x');
    for (let i = 0; i < a.length; i++) a[i] = a[i]! * alpha;
  }

  axpy(y: Tensor, alpha: number, x: Tensor): void {
    C.checkFinite('axpy', 'alpha', alpha);
    C.checkTensor('axpy', 'x', x, this.name, y.dtype);
    C.checkSameSize('axpy', ['y', 'x'], [y, x]);
    const ya = this.floats(y, 'axpy', 'y');
    const xa = this.floats(x, 'axpy', 'x');
    for (let i = 0; i < ya.length; i++) ya[i] = ya[i]! + alpha * xa[i]!;
  }

  add(out: Tensor, a: Tensor, b: Tensor): void {
    C.checkTensor('add', 'a', a, this.name, out.dtype);
    C.checkTensor('add', 'b', b, this.name, out.dtype);
    C.checkSameSize('add', ['out', 'a', 'b'], [out, a, b]);
    const o = this.floats(out, 'add', 'out');
    const aa = this.floats(a, 'add', 'a');
    const ba = this.floats(b, 'add', 'b');
    for (let i = 0; i < o.length; i++) o[i] = aa[i]! + ba[i]!;
  }

  sumSquares(x: Tensor, out: Tensor, index: number): void {
    C.checkStatSlot(this.name, 'sumSquares', out, index);
    const a = this.floats(x, 'sumSquares', 'x');
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
    this.floats(out, 'sumSquares', 'out')[index] += s;
  }

  dot(a: Tensor, b: Tensor, out: Tensor, index: number): void {
    C.checkStatSlot(this.name, 'dot', out, index);
    C.checkSameSize('dot', ['a', 'b'], [a, b]);
    const aa = this.floats(a, 'dot', 'a');
    const ba = this.floats(b, 'dot', 'b');
    let s = 0;
    for (let i = 0; i < aa.length; i++) s += aa[i]! * ba[i]!;
    this.floats(out, 'dot', 'out')[index] += s;
  }

  accumulateWithNorm(acc: Tensor, alpha: number, g: Tensor, out: Tensor, index: number): void {
    C.checkStatSlot(this.name, 'accumulateWithNorm', out, index);
    C.checkFinite('accumulateWithNorm', 'alpha', alpha);
    C.checkTensor('accumulateWithNorm', 'g', g, this.name, acc.dtype);
    C.checkSameSize('accumulateWithNorm', ['acc', 'g'], [acc, g]);
    const aa = this.floats(acc, 'accumulateWithNorm', 'acc');
    const ga = this.floats(g, 'accumulateWithNorm', 'g');
    let s = 0;
    for (let i = 0; i < aa.length; i++) {
      s += ga[i]! * ga[i]!;
      aa[i] = aa[i]! + alpha * ga[i]!;
    }
    this.floats(out, 'accumulateWithNorm', 'out')[index] += s;
  }

  clipByGlobalNorm(x: Tensor, sqNorm: Tensor, index: number, maxNorm: number): void {
    C.checkStatSlot(this.name, 'clipByGlobalNorm', sqNorm, index);
    C.checkFinite('clipByGlobalNorm', 'maxNorm', maxNorm);
    const norm = Math.sqrt(this.floats(sqNorm, 'clipByGlobalNorm', 'sqNorm')[index]!);
    const coef = Math.min(1, maxNorm / (norm + 1e-6));
    const a = this.floats(x, 'clipByGlobalNorm', 'x');
    for (let i = 0; i < a.length; i++) a[i] = a[i]! * coef;
  }

  // ---- layers -------------------------------------------------------------------------------
  embeddingForward(out: Tensor, table: Tensor, tokens: Tensor): void {
    const { n, dim, vocab } = C.checkEmbedding(this.name, 'embeddingForward', out, table, tokens);
    const o = this.floats(out, 'embeddingForward', 'out');
    const w = this.floats(table, 'embeddingForward', 'table');
    const tk = this.ints(tokens, 'embeddingForward', 'tokens');
    C.checkTokenRange('embeddingForward', tk, vocab);
    for (let r = 0; r < n; r++) for (let i = 0; i < dim; i++) o[r * dim + i] = w[tk[r]! * dim + i]!;
  }

  embeddingBackward(dTable: Tensor, dOut: Tensor, tokens: Tensor): void {
    const { n, dim, vocab } = C.checkEmbedding(this.name, 'embeddingBackward', dOut, dTable, tokens);
    const d = this.floats(dOut, 'embeddingBackward', 'dOut');
    const w = this.floats(dTable, 'embeddingBackward', 'dTable');
    const tk = this.ints(tokens, 'embeddingBackward', 'tokens');
    C.checkTokenRange('embeddingBackward', tk, vocab);
    for (let r = 0; r < n; r++) for (let i = 0; i < dim; i++) w[tk[r]! * dim + i] += d[r * dim + i]!;
  }

  rmsnormForward(out: Tensor, rstd: Tensor, x: Tensor, w: Tensor, eps: number): void {
    const { rows, dim } = C.checkRmsnorm(this.name, out, rstd, x, w, eps);
    const K = 'rmsnormForward';
    M.rmsnormForward(this.floats(out, K, 'out'), this.floats(rstd, K, 'rstd'), this.floats(x, K, 'x'), this.floats(w, K, 'w'), rows, dim, eps);
  }

  rmsnormBackward(dx: Tensor, dw: Tensor, dOut: Tensor, x: Tensor, w: Tensor, rstd: Tensor, accumulate: boolean): void {
    const { rows, dim } = C.checkRmsnormBackward(this.name, dx, dw, dOut, x, w, rstd);
    const K = 'rmsnormBackward';
    M.rmsnormBackward(this.floats(dx, K, 'dx'), this.floats(dw, K, 'dw'), this.floats(dOut, K, 'dOut'), this.floats(x, K, 'x'), this.floats(w, K, 'w'), this.floats(rstd, K, 'rstd'), rows, dim, accumulate);
  }

  matmul(c: Tensor, a: Tensor, b: Tensor, transA: boolean, transB: boolean, alpha = 1, beta = 0): void {
    const { m, n, k } = C.checkMatmul(this.name, c, a, b, transA, transB, alpha, beta);
    // a and b are f32/f64, or bf16 held as rounded float32 values (checked above).
    M.matmul(this.floats(c, 'matmul', 'c'), this.arr(a, 'matmul') as M.Floats, this.arr(b, 'matmul') as M.Floats, m, n, k, transA, transB, alpha, beta);
  }

  rope(x: Tensor, cos: Tensor, sin: Tensor, seqLen: number, nHeads: number, headDim: number, inverse: boolean): void {
    const { rows, width } = C.checkRope(this.name, x, cos, sin, seqLen, nHeads, headDim);
    M.rope(this.floats(x, 'rope', 'x'), this.floats(cos, 'rope', 'cos'), this.floats(sin, 'rope', 'sin'), rows, width, seqLen, nHeads, headDim, inverse);
  }

  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, dims: AttentionDims): void {
    const K = 'attentionForward';
    C.checkAttention(this.name, K, out, lse, qkv, dims);
    M.attentionForward(this.floats(out, K, 'out'), this.floats(lse, K, 'lse'), this.floats(qkv, K, 'qkv'), dims);
  }

  attentionBackward(dqkv: Tensor, dOut: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, dims: AttentionDims): void {
    const K = 'attentionBackward';
    C.checkAttentionBackward(this.name, dqkv, dOut, qkv, out, lse, dims);
    M.attentionBackward(this.floats(dqkv, K, 'dqkv'), this.floats(dOut, K, 'dOut'), this.floats(qkv, K, 'qkv'), this.floats(out, K, 'out'), this.floats(lse, K, 'lse'), dims);
  }

  attentionDecode(out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, pos: number, dims: DecodeDims): void {
    const K = 'attentionDecode';
    C.checkAttentionDecode(this.name, out, qkv, kCache, vCache, pos, dims);
    M.attentionDecode(this.floats(out, K, 'out'), this.floats(qkv, K, 'qkv'), this.floats(kCache, K, 'kCache'), this.floats(vCache, K, 'vCache'), pos, dims);
  }

  swigluForward(h: Tensor, gu: Tensor): void {
    const { rows, ffn } = C.checkSwiglu(this.name, 'swigluForward', h, gu);
    M.swigluForward(this.floats(h, 'swigluForward', 'h'), this.floats(gu, 'swigluForward', 'gu'), rows, ffn);
  }

  swigluBackward(dgu: Tensor, dh: Tensor, gu: Tensor): void {
    const K = 'swigluBackward';
    const { rows, ffn } = C.checkSwigluBackward(this.name, dgu, dh, gu);
    M.swigluBackward(this.floats(dgu, K, 'dgu'), this.floats(dh, K, 'dh'), this.floats(gu, K, 'gu'), rows, ffn);
  }

  headLoss(args: HeadLossArgs): void {
    const K = 'headLoss';
    const { rows, dim, vocab } = C.checkHeadLoss(this.name, args);
    const g = args.grads;
    C.checkTokenRange(K, this.ints(args.targets, K, 'targets'), vocab, true);
    const [sum, count] = M.headLoss({
      x: this.floats(args.x, K, 'x'),
      normW: this.floats(args.normW, K, 'normW'),
      headW: this.floats(args.headW, K, 'headW'),
      targets: this.ints(args.targets, K, 'targets'),
      rows,
      dim,
      vocab,
      eps: args.eps,
      ...(g && { grads: { dx: this.floats(g.dx, K, 'dx'), dNormW: this.floats(g.dNormW, K, 'dNormW'), dHeadW: this.floats(g.dHeadW, K, 'dHeadW'), gradScale: g.gradScale } }),
      ...(args.headWLowp && { lowp: { headW: this.arr(args.headWLowp, K) as M.Floats, round: roundToBf16 } }),
    });
    const lo = this.floats(args.lossOut, K, 'lossOut');
    lo[args.lossIndex] += sum;
    lo[args.lossIndex + 1] += count;
  }

  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: AdamWParams): void {
    C.checkAdamW(this.name, param, grad, m, v, p);
    const K = 'adamw';
    M.adamw(this.floats(param, K, 'param'), this.floats(grad, K, 'grad'), this.floats(m, K, 'm'), this.floats(v, K, 'v'), p.lr, p.beta1, p.beta2, p.eps, p.weightDecay, p.step);
  }

  adagrad(param: Tensor, grad: Tensor, sum: Tensor, p: AdagradParams): void {
    C.checkAdagrad(this.name, param, grad, sum, p);
    const K = 'adagrad';
    M.adagrad(this.floats(param, K, 'param'), this.floats(grad, K, 'grad'), this.floats(sum, K, 'sum'), p.lr, p.eps, p.weightDecay);
  }

  lambDirection(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: LambParams): void {
    C.checkLambDirection(this.name, param, grad, m, v, p);
    const K = 'lambDirection';
    M.lambDirection(this.floats(param, K, 'param'), this.floats(grad, K, 'grad'), this.floats(m, K, 'm'), this.floats(v, K, 'v'), p.beta1, p.beta2, p.eps, p.weightDecay, p.step);
  }

  muonMomentum(grad: Tensor, buf: Tensor, p: MuonMomentumParams): void {
    C.checkMuonMomentum(this.name, grad, buf, p);
    const K = 'muonMomentum';
    M.muonMomentum(this.floats(grad, K, 'grad'), this.floats(buf, K, 'buf'), p.beta, p.nesterov);
  }
}

/** How a value is stored into a tensor of `dtype`: rounded for the 16-bit dtypes, as is otherwise. */
function lowpRounding(dtype: DType): (x: number) => number {
  return dtype === 'bf16' ? roundToBf16 : dtype === 'f16' ? roundToF16 : (x) => x;
}

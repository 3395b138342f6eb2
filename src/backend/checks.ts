/**
 * Argument validation shared by every backend: each kernel checks shapes, dtypes and ownership
 * before any memory is touched, and throws an error that names the offending argument.
 */
import { shapeSize, type AdagradParams, type AttentionDims, type DecodeDims, type DType, type HeadLossArgs, type LambParams, type LowpDType, type MuonMomentumParams, type Tensor } from './backend.js';

export class BackendArgumentError extends Error {
  constructor(kernel: string, message: string) {
    super(`${kernel}: ${message}`);
    this.name = 'BackendArgumentError';
  }
}

function fail(kernel: string, message: string): never {
  throw new BackendArgumentError(kernel, message);
}

export function describe(t: Tensor): string {
  return `${t.dtype}[${t.shape.join('×')}]`;
}

export function checkInt(kernel: string, name: string, v: number, min = 0): void {
  if (!Number.isInteger(v) || v < min) fail(kernel, `${name} must be an integer ≥ ${min}, got ${v}`);
}

export function checkFinite(kernel: string, name: string, v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(kernel, `${name} must be a finite number, got ${v}`);
}

export function checkShape(shape: readonly number[], what = 'shape'): void {
  if (!Array.isArray(shape) || shape.length === 0) throw new BackendArgumentError('alloc', `${what} must be a non-empty array`);
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0) throw new BackendArgumentError('alloc', `${what} [${shape.join(', ')}] has an invalid dimension ${s}`);
  }
}

/** Validates that t belongs to `backend` and has the dtype. */
export function checkTensor(kernel: string, name: string, t: Tensor | undefined, backend: string, dtype?: DType | DType[]): void {
  if (!t || typeof t !== 'object' || typeof t.buffer !== 'number') fail(kernel, `${name} is not a tensor`);
  if (t.backend !== backend) fail(kernel, `${name} belongs to backend '${t.backend}', not '${backend}'`);
  if (dtype !== undefined) {
    const allowed = Array.isArray(dtype) ? dtype : [dtype];
    if (!allowed.includes(t.dtype)) fail(kernel, `${name} must have dtype ${allowed.join(' or ')}, got ${t.dtype}`);
  }
}

export function checkSize(kernel: string, name: string, t: Tensor, size: number): void {
  if (t.size !== size) fail(kernel, `${name} ${describe(t)} must have ${size} elements, has ${t.size}`);
}

export function checkSameSize(kernel: string, names: string[], ts: Tensor[]): void {
  for (let i = 1; i < ts.length; i++) {
    if (ts[i]!.size !== ts[0]!.size) {
      fail(kernel, `${names[i]} ${describe(ts[i]!)} and ${names[0]} ${describe(ts[0]!)} must have the same number of elements`);
    }
  }
}

/** Rows and columns of a tensor seen as a matrix: the last dimension is the row width. */
export function matrixDims(t: Tensor): [number, number] {
  const cols = t.shape[t.shape.length - 1]!;
  return [cols === 0 ? 0 : t.size / cols, cols];
}

function check2d(kernel: string, name: string, t: Tensor): [number, number] {
  if (t.shape.length !== 2) fail(kernel, `${name} must be 2-D, got ${describe(t)}`);
  return [t.shape[0]!, t.shape[1]!];
}

export function checkMatmul(backend: string, c: Tensor, a: Tensor, b: Tensor, transA: boolean, transB: boolean, alpha: number, beta: number): { m: number; n: number; k: number } {
  const K = 'matmul';
  checkTensor(K, 'c', c, backend, ['f32', 'f64']);
  checkTensor(K, 'a', a, backend, c.dtype === 'f32' ? ['f32', 'bf16', 'f16'] : c.dtype);
  checkTensor(K, 'b', b, backend, a.dtype);
  checkFinite(K, 'alpha', alpha);
  checkFinite(K, 'beta', beta);
  const [ar, ac] = check2d(K, 'a', a);
  const [br, bc] = check2d(K, 'b', b);
  const [cr, cc] = check2d(K, 'c', c);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) fail(K, `inner dimensions differ: op(a) is ${m}×${k}, op(b) is ${kb}×${n}`);
  if (cr !== m || cc !== n) fail(K, `c ${describe(c)} must be ${m}×${n}`);
  return { m, n, k };
}

/** Checks a conversion; returns the 16-bit side's dtype. */
export function checkConvert(backend: string, dst: Tensor, src: Tensor, scale: number): LowpDType {
  const K = 'convert';
  checkTensor(K, 'dst', dst, backend, ['f32', 'bf16', 'f16']);
  checkTensor(K, 'src', src, backend, dst.dtype === 'f32' ? ['bf16', 'f16'] : 'f32');
  checkSameSize(K, ['dst', 'src'], [dst, src]);
  checkFinite(K, 'scale', scale);
  // A power of two scales exactly (its mantissa is 1): only the exponent of each value changes.
  if (!(scale > 0) || scale !== 2 ** Math.round(Math.log2(scale))) fail(K, `scale must be a positive power of two, got ${scale}`);
  return (dst.dtype === 'f32' ? src.dtype : dst.dtype) as LowpDType;
}

export function checkRmsnorm(backend: string, out: Tensor, rstd: Tensor, x: Tensor, w: Tensor, eps: number, kernel = 'rmsnormForward'): { rows: number; dim: number } {
  checkTensor(kernel, 'x', x, backend, ['f32', 'f64']);
  checkTensor(kernel, 'out', out, backend, x.dtype);
  checkTensor(kernel, 'w', w, backend, x.dtype);
  checkTensor(kernel, 'rstd', rstd, backend, x.dtype);
  checkFinite(kernel, 'eps', eps);
  if (eps < 0) fail(kernel, `eps must be ≥ 0, got ${eps}`);
  const [rows, dim] = matrixDims(x);
  checkSize(kernel, 'w', w, dim);
  checkSize(kernel, 'out', out, x.size);
  checkSize(kernel, 'rstd', rstd, rows);
  return { rows, dim };
}

export function checkRmsnormBackward(backend: string, dx: Tensor, dw: Tensor, dOut: Tensor, x: Tensor, w: Tensor, rstd: Tensor): { rows: number; dim: number } {
  const K = 'rmsnormBackward';
  const dims = checkRmsnorm(backend, dOut, rstd, x, w, 0, K);
  checkTensor(K, 'dx', dx, backend, x.dtype);
  checkTensor(K, 'dw', dw, backend, x.dtype);
  checkSize(K, 'dx', dx, x.size);
  checkSize(K, 'dw', dw, dims.dim);
  return dims;
}

export function checkEmbedding(backend: string, kernel: string, out: Tensor, table: Tensor, tokens: Tensor): { n: number; dim: number; vocab: number } {
  checkTensor(kernel, 'table', table, backend, ['f32', 'f64']);
  checkTensor(kernel, 'out', out, backend, table.dtype);
  checkTensor(kernel, 'tokens', tokens, backend, 'i32');
  const [vocab, dim] = check2d(kernel, 'table', table);
  const n = tokens.size;
  checkSize(kernel, 'out', out, n * dim);
  return { n, dim, vocab };
}

export function checkRope(backend: string, x: Tensor, cos: Tensor, sin: Tensor, seqLen: number, nHeads: number, headDim: number): { rows: number; width: number } {
  const K = 'rope';
  checkTensor(K, 'x', x, backend, ['f32', 'f64']);
  checkTensor(K, 'cos', cos, backend, x.dtype);
  checkTensor(K, 'sin', sin, backend, x.dtype);
  checkInt(K, 'seqLen', seqLen, 1);
  checkInt(K, 'nHeads', nHeads, 0);
  checkInt(K, 'headDim', headDim, 2);
  if (headDim % 2 !== 0) fail(K, `headDim must be even, got ${headDim}`);
  const [rows, width] = matrixDims(x);
  if (nHeads * headDim > width) fail(K, `${nHeads} heads × ${headDim} exceed the row width ${width} of x ${describe(x)}`);
  if (rows % seqLen !== 0) fail(K, `rows of x (${rows}) must be a multiple of seqLen ${seqLen}`);
  checkSize(K, 'cos', cos, seqLen * (headDim / 2));
  checkSize(K, 'sin', sin, seqLen * (headDim / 2));
  return { rows, width };
}

export function checkAttentionDims(kernel: string, d: AttentionDims): void {
  checkInt(kernel, 'dims.batch', d.batch, 1);
  checkInt(kernel, 'dims.seqLen', d.seqLen, 1);
  checkInt(kernel, 'dims.nHeads', d.nHeads, 1);
  checkInt(kernel, 'dims.nKvHeads', d.nKvHeads, 1);
  checkInt(kernel, 'dims.headDim', d.headDim, 1);
  if (d.nHeads % d.nKvHeads !== 0) fail(kernel, `dims.nHeads (${d.nHeads}) must be divisible by dims.nKvHeads (${d.nKvHeads})`);
}

export function qkvWidth(d: AttentionDims): number {
  return (d.nHeads + 2 * d.nKvHeads) * d.headDim;
}

export function checkAttention(backend: string, kernel: string, out: Tensor, lse: Tensor, qkv: Tensor, d: AttentionDims): void {
  checkAttentionDims(kernel, d);
  checkTensor(kernel, 'qkv', qkv, backend, ['f32', 'f64']);
  checkTensor(kernel, 'out', out, backend, qkv.dtype);
  checkTensor(kernel, 'lse', lse, backend, qkv.dtype);
  const n = d.batch * d.seqLen;
  checkSize(kernel, 'qkv', qkv, n * qkvWidth(d));
  checkSize(kernel, 'out', out, n * d.nHeads * d.headDim);
  checkSize(kernel, 'lse', lse, d.batch * d.nHeads * d.seqLen);
}

/** attentionBackward: the forward's tensors plus dqkv (qkv's size) and dOut (out's size). */
export function checkAttentionBackward(backend: string, dqkv: Tensor, dOut: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, d: AttentionDims): void {
  const K = 'attentionBackward';
  checkAttention(backend, K, out, lse, qkv, d);
  checkTensor(K, 'dqkv', dqkv, backend, qkv.dtype);
  checkTensor(K, 'dOut', dOut, backend, qkv.dtype);
  checkSize(K, 'dqkv', dqkv, qkv.size);
  checkSize(K, 'dOut', dOut, out.size);
}

export function checkSwiglu(backend: string, kernel: string, h: Tensor, gu: Tensor): { rows: number; ffn: number } {
  checkTensor(kernel, 'gu', gu, backend, ['f32', 'f64']);
  checkTensor(kernel, 'h', h, backend, gu.dtype);
  const [rows, w] = matrixDims(gu);
  if (w % 2 !== 0) fail(kernel, `gu ${describe(gu)} must have an even row width [gate | up]`);
  checkSize(kernel, 'h', h, rows * (w / 2));
  return { rows, ffn: w / 2 };
}

/** swigluBackward: dh checked like swigluForward's h, and dgu of gu's size. */
export function checkSwigluBackward(backend: string, dgu: Tensor, dh: Tensor, gu: Tensor): { rows: number; ffn: number } {
  const K = 'swigluBackward';
  const dims = checkSwiglu(backend, K, dh, gu);
  checkTensor(K, 'dgu', dgu, backend, gu.dtype);
  checkSize(K, 'dgu', dgu, gu.size);
  return dims;
}

export function checkHeadLoss(backend: string, a: HeadLossArgs): { rows: number; dim: number; vocab: number } {
  const K = 'headLoss';
  checkTensor(K, 'x', a.x, backend, ['f32', 'f64']);
  checkTensor(K, 'normW', a.normW, backend, a.x.dtype);
  checkTensor(K, 'headW', a.headW, backend, a.x.dtype);
  checkTensor(K, 'targets', a.targets, backend, 'i32');
  checkTensor(K, 'lossOut', a.lossOut, backend, 'f64');
  checkFinite(K, 'eps', a.eps);
  const [rows, dim] = matrixDims(a.x);
  const [vocab, hd] = check2d(K, 'headW', a.headW);
  if (hd !== dim) fail(K, `headW ${describe(a.headW)} must have ${dim} columns (the width of x)`);
  checkSize(K, 'normW', a.normW, dim);
  checkSize(K, 'targets', a.targets, rows);
  checkInt(K, 'lossIndex', a.lossIndex, 0);
  if (a.lossIndex + 2 > a.lossOut.size) fail(K, `lossIndex ${a.lossIndex} needs two slots in lossOut of ${a.lossOut.size}`);
  if (a.chunkTokens !== undefined) checkInt(K, 'chunkTokens', a.chunkTokens, 1);
  if (a.headWLowp !== undefined) {
    checkTensor(K, 'headWLowp', a.headWLowp, backend, 'bf16');
    if (a.x.dtype !== 'f32') fail(K, `headWLowp (bf16) needs f32 activations, x is ${a.x.dtype}`);
    checkSize(K, 'headWLowp', a.headWLowp, a.headW.size);
  }
  if (a.grads) {
    checkTensor(K, 'grads.dx', a.grads.dx, backend, a.x.dtype);
    checkTensor(K, 'grads.dNormW', a.grads.dNormW, backend, a.x.dtype);
    checkTensor(K, 'grads.dHeadW', a.grads.dHeadW, backend, a.x.dtype);
    checkSize(K, 'grads.dx', a.grads.dx, a.x.size);
    checkSize(K, 'grads.dNormW', a.grads.dNormW, dim);
    checkSize(K, 'grads.dHeadW', a.grads.dHeadW, a.headW.size);
    checkFinite(K, 'grads.gradScale', a.grads.gradScale);
  }
  return { rows, dim, vocab };
}

/** Every token in [0, vocab) (or negative = ignored, when allowed); the error names the first that is not. */
export function checkTokenRange(kernel: string, tokens: Int32Array, vocab: number, allowNegative = false): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if ((t < 0 && !allowNegative) || t >= vocab) throw new BackendArgumentError(kernel, `token ${t} at position ${i} is outside the vocabulary [0, ${vocab})`);
  }
}

export function checkStatSlot(backend: string, kernel: string, out: Tensor, index: number): void {
  checkTensor(kernel, 'out', out, backend, 'f64');
  checkInt(kernel, 'index', index, 0);
  if (index >= out.size) fail(kernel, `index ${index} is outside out (${out.size} elements)`);
}

export function checkAdamW(backend: string, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number }): void {
  const K = 'adamw';
  checkTensor(K, 'param', param, backend, ['f32', 'f64']);
  for (const [n, t] of [['grad', grad], ['m', m], ['v', v]] as const) checkTensor(K, n, t, backend, param.dtype);
  checkSameSize(K, ['param', 'grad', 'm', 'v'], [param, grad, m, v]);
  for (const k of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'] as const) checkFinite(K, k, p[k]);
  checkInt(K, 'step', p.step, 1);
  if (p.beta1 < 0 || p.beta1 >= 1) fail(K, `beta1 must be in [0, 1), got ${p.beta1}`);
  if (p.beta2 < 0 || p.beta2 >= 1) fail(K, `beta2 must be in [0, 1), got ${p.beta2}`);
}

/** The tensors of an optimizer kernel: float, one dtype, one size (the first one's). */
function checkOptimTensors(backend: string, kernel: string, named: ReadonlyArray<readonly [string, Tensor]>): void {
  const [first] = named;
  checkTensor(kernel, first![0], first![1], backend, ['f32', 'f64']);
  for (const [n, t] of named.slice(1)) checkTensor(kernel, n, t, backend, first![1].dtype);
  checkSameSize(kernel, named.map(([n]) => n), named.map(([, t]) => t));
}

function checkBeta(kernel: string, name: string, beta: number): void {
  checkFinite(kernel, name, beta);
  if (beta < 0 || beta >= 1) fail(kernel, `${name} must be in [0, 1), got ${beta}`);
}

export function checkAdagrad(backend: string, param: Tensor, grad: Tensor, sum: Tensor, p: AdagradParams): void {
  const K = 'adagrad';
  checkOptimTensors(backend, K, [['param', param], ['grad', grad], ['sum', sum]]);
  for (const k of ['lr', 'eps', 'weightDecay'] as const) checkFinite(K, k, p[k]);
  if (!(p.eps > 0)) fail(K, `eps must be positive, got ${p.eps}`);
}

export function checkLambDirection(backend: string, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: LambParams): void {
  const K = 'lambDirection';
  checkOptimTensors(backend, K, [['param', param], ['grad', grad], ['m', m], ['v', v]]);
  for (const k of ['eps', 'weightDecay'] as const) checkFinite(K, k, p[k]);
  checkBeta(K, 'beta1', p.beta1);
  checkBeta(K, 'beta2', p.beta2);
  checkInt(K, 'step', p.step, 1);
}

export function checkMuonMomentum(backend: string, grad: Tensor, buf: Tensor, p: MuonMomentumParams): void {
  const K = 'muonMomentum';
  checkOptimTensors(backend, K, [['grad', grad], ['buf', buf]]);
  checkBeta(K, 'beta', p.beta);
  if (typeof p.nesterov !== 'boolean') fail(K, `nesterov must be a boolean, got ${String(p.nesterov)}`);
}

export function checkView(backend: string, t: Tensor, offset: number, shape: readonly number[]): number {
  checkTensor('view', 't', t, backend);
  checkShape(shape, 'view shape');
  checkInt('view', 'offset', offset, 0);
  const size = shapeSize(shape);
  if (offset + size > t.size) {
    fail('view', `offset ${offset} + size ${size} exceeds ${describe(t)} (${t.size} elements)`);
  }
  return size;
}

export function checkAttentionDecode(backend: string, out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, pos: number, d: DecodeDims): void {
  const K = 'attentionDecode';
  checkAttentionDims(K, { batch: d.batch, seqLen: d.maxSeqLen, nHeads: d.nHeads, nKvHeads: d.nKvHeads, headDim: d.headDim });
  checkTensor(K, 'qkv', qkv, backend, ['f32', 'f64']);
  for (const [n, t] of [['out', out], ['kCache', kCache], ['vCache', vCache]] as const) checkTensor(K, n, t, backend, qkv.dtype);
  checkInt(K, 'pos', pos, 0);
  if (pos >= d.maxSeqLen) fail(K, `pos ${pos} is outside the cache (maxSeqLen ${d.maxSeqLen})`);
  checkSize(K, 'qkv', qkv, d.batch * (d.nHeads + 2 * d.nKvHeads) * d.headDim);
  checkSize(K, 'out', out, d.batch * d.nHeads * d.headDim);
  checkSize(K, 'kCache', kCache, d.batch * d.maxSeqLen * d.nKvHeads * d.headDim);
  checkSize(K, 'vCache', vCache, d.batch * d.maxSeqLen * d.nKvHeads * d.headDim);
}

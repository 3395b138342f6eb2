/**
 * The fused LM head + loss, AdamW and global-norm clipping of the webgpu backend.
 *
 * headLoss works in chunks of tokens, as the cpu backend's native kernel does (native/src/head_loss.cc),
 * so only a chunk × vocab block of logits ever exists: per chunk, RMSNorm rows (HEAD_NORM), the
 * logits GEMM, a softmax cross-entropy pass per row that leaves each row's loss and (with gradients)
 * turns the logits into gradScale·(softmax − onehot) in place (HEAD_CE), then the two gradient GEMMs
 * (dx̂ = dlogits·W, dW += dlogitsᵀ·x̂), dNormW (HEAD_DNORMW, one invocation per column, rows in order)
 * and dx (HEAD_DX, the RMSNorm backward per row). The row losses are kept as double-float pairs and
 * added once, by one workgroup in a fixed order, into lossOut (HEAD_LOSS_SUM).
 *
 * Every sum has a fixed order (no atomics): the results are bit-identical from run to run.
 * Each dispatch writes at most one of the caller's tensors, so the gradients may be views of one
 * allocation (a flat gradient buffer).
 */
import type { AdamWParams, HeadLossArgs, Tensor } from '../../backend.js';
import { BackendArgumentError } from '../../checks.js';
import { matmul } from './basic.js';
import { DOUBLE_FLOAT, FLAT_LOOP, FLAT_WG, flatGroups, kernel, params, ROW_WG, rowGroups, workgroupSum, type GpuContext } from './common.js';

/** Invocations of the row kernels (and of the one-workgroup loss sum). */
const WG = ROW_WG;

/**
 * WGSL shared by the row kernels: the workgroup sum (common.ts) and the max of a value over the
 * workgroup, through the same `red` scratch.
 */
const BLOCK = /* wgsl */ `
${workgroupSum(WG)}
fn blockMax(l: u32, v: f32) -> f32 {
  red[l] = vec2f(v, 0.0);
  workgroupBarrier();
  for (var h = ${WG / 2}u; h > 0u; h = h / 2u) {
    if (l < h) { red[l] = vec2f(max(red[l].x, red[l + h].x), 0.0); }
    workgroupBarrier();
  }
  let r = red[0].x;
  workgroupBarrier();
  return r;
}
`;

/** One workgroup per row, grid-strided over the rows beyond the dispatch limit. */
const ROW_LOOP = 'for (var r = wid.x; r < p.rows; r += nw.x)';
const ROW_ARGS = '@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(num_workgroups) nw: vec3u';

/** xn = x·rstd·w and rstd per row of the chunk; both 0 in rows whose target is ignored. */
const HEAD_NORM = kernel(
  'headNorm',
  /* wgsl */ `
struct P { rows: u32, dim: u32, eps: f32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> xn: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> w: array<f32>;
@group(0) @binding(6) var<storage, read> tg: array<i32>;
${BLOCK}
@compute @workgroup_size(${WG})
fn main(${ROW_ARGS}) {
  ${ROW_LOOP} {
    let xo = o(2u) + r * p.dim;
    var acc = vec2f(0.0, 0.0);
    for (var i = l.x; i < p.dim; i += ${WG}u) {
      let v = x[xo + i];
      acc = acc2(acc, v * v);
    }
    let ss = blockSum(l.x, acc);
    let keep = tg[o(4u) + r] >= 0;
    let rs = 1.0 / sqrt((ss.x + ss.y) / f32(p.dim) + p.eps);
    if (l.x == 0u) { rstd[o(1u) + r] = select(0.0, rs, keep); }
    for (var i = l.x; i < p.dim; i += ${WG}u) {
      xn[o(0u) + r * p.dim + i] = select(0.0, x[xo + i] * rs * w[o(3u) + i], keep);
    }
  }
}`,
);

/**
 * Softmax cross-entropy per row of the chunk's logits: the row's loss lse − logit[target] as a
 * double-float pair into rowLoss[row0 + r] ((0, 0) when the target is ignored, NaN when it is
 * outside the vocabulary); with grads the row becomes gradScale·(softmax − onehot) (0 when ignored).
 */
const HEAD_CE = kernel(
  'headCrossEntropy',
  /* wgsl */ `
struct P { rows: u32, vocab: u32, row0: u32, grads: u32, gradScale: f32, nanBits: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(4) var<storage, read> tg: array<i32>;
${BLOCK}
@compute @workgroup_size(${WG})
fn main(${ROW_ARGS}) {
  ${ROW_LOOP} {
    let t = tg[o(2u) + r];
    let valid = t >= 0 && u32(t) < p.vocab;
    let lo = o(0u) + r * p.vocab;
    // Read before any invocation overwrites the row (the barriers below order it).
    let lt = logits[lo + select(0u, u32(t), valid)];
    var m = -3.4028234e38;
    for (var v = l.x; v < p.vocab; v += ${WG}u) { m = max(m, logits[lo + v]); }
    let mx = blockMax(l.x, m);
    var s = vec2f(0.0, 0.0);
    for (var v = l.x; v < p.vocab; v += ${WG}u) { s = acc2(s, exp(logits[lo + v] - mx)); }
    let st = blockSum(l.x, s);
    let sum = st.x + st.y;
    if (l.x == 0u) {
      var loss = vec2f(0.0, 0.0);
      if (valid) {
        loss = twoSum(mx - lt, log(sum));
      } else if (t >= 0) {
        loss = vec2f(bitcast<f32>(p.nanBits), 0.0);
      }
      let at = o(1u) + 2u * (p.row0 + r);
      rowLoss[at] = loss.x;
      rowLoss[at + 1u] = loss.y;
    }
    if (p.grads == 1u) {
      let k = p.gradScale / sum;
      for (var v = l.x; v < p.vocab; v += ${WG}u) {
        let g = exp(logits[lo + v] - mx) * k - select(0.0, p.gradScale, valid && v == u32(t));
        logits[lo + v] = select(0.0, g, valid);
      }
    }
  }
}`,
);

/** lossOut[index] += Σ row losses and lossOut[index + 1] += the count of targets ≥ 0: one workgroup. */
const HEAD_LOSS_SUM = kernel(
  'headLossSum',
  /* wgsl */ `
struct P { rows: u32, index: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> rowLoss: array<f32>;
@group(0) @binding(4) var<storage, read> tg: array<i32>;
${BLOCK}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) l: vec3u) {
  var acc = vec2f(0.0, 0.0);
  var cnt = 0u;
  for (var i = l.x; i < p.rows; i += ${WG}u) {
    let hi = rowLoss[o(1u) + 2u * i];
    let t = twoSum(acc.x, hi);
    acc = vec2f(t.x, acc.y + t.y + rowLoss[o(1u) + 2u * i + 1u]);
    cnt += select(0u, 1u, tg[o(2u) + i] >= 0);
  }
  let loss = blockSum(l.x, acc);
  // Integer-valued floats: the two-sum tree counts exactly.
  let count = blockSum(l.x, vec2f(f32(cnt), 0.0));
  if (l.x == 0u) {
    let at = o(0u) + 2u * p.index;
    let a = ddAdd(out[at], out[at + 1u], loss.x, loss.y);
    out[at] = a.x;
    out[at + 1u] = a.y;
    let c = ddAdd(out[at + 2u], out[at + 3u], count.x, count.y);
    out[at + 2u] = c.x;
    out[at + 3u] = c.y;
  }
}`,
);

/** dNormW[i] += Σ over the chunk's counted rows, in order, of dxn[r, i]·x[r, i]·rstd[r]. */
const HEAD_DNORMW = kernel(
  'headDNormW',
  /* wgsl */ `
struct P { rows: u32, dim: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;
@group(0) @binding(3) var<storage, read> dxn: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read> tg: array<i32>;
${DOUBLE_FLOAT}
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = g.x; i < p.dim; i += nw.x * ${FLAT_WG}u) {
    var s = 0.0;
    var e = 0.0;
    for (var r = 0u; r < p.rows; r++) {
      if (tg[o(4u) + r] < 0) { continue; }
      let t = twoSum(s, dxn[o(1u) + r * p.dim + i] * (x[o(2u) + r * p.dim + i] * rstd[o(3u) + r]));
      s = t.x;
      e += t.y;
    }
    dw[o(0u) + i] = dw[o(0u) + i] + (s + e);
  }
}`,
);

/** RMSNorm backward per row of the chunk: dx = rstd·(dxn·w − x̂·mean(dxn·w·x̂)), 0 where ignored. */
const HEAD_DX = kernel(
  'headDx',
  /* wgsl */ `
struct P { rows: u32, dim: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<storage, read> dxn: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> w: array<f32>;
@group(0) @binding(6) var<storage, read> rstd: array<f32>;
@group(0) @binding(7) var<storage, read> tg: array<i32>;
${BLOCK}
@compute @workgroup_size(${WG})
fn main(${ROW_ARGS}) {
  ${ROW_LOOP} {
    let rs = rstd[o(4u) + r];
    let ro = r * p.dim;
    var acc = vec2f(0.0, 0.0);
    for (var i = l.x; i < p.dim; i += ${WG}u) {
      acc = acc2(acc, dxn[o(1u) + ro + i] * w[o(3u) + i] * (x[o(2u) + ro + i] * rs));
    }
    let dot = blockSum(l.x, acc);
    let mean = (dot.x + dot.y) / f32(p.dim);
    let keep = tg[o(5u) + r] >= 0;
    for (var i = l.x; i < p.dim; i += ${WG}u) {
      let xh = x[o(2u) + ro + i] * rs;
      dx[o(0u) + ro + i] = select(0.0, rs * (dxn[o(1u) + ro + i] * w[o(3u) + i] - xh * mean), keep);
    }
  }
}`,
);

/** A window of t (a view the kernels bind): `shape` from element `offset` of t. */
function sub(t: Tensor, offset: number, shape: number[]): Tensor {
  return { ...t, offset: t.offset + offset, shape, size: shape.reduce((a, b) => a * b, 1) };
}

function needDtype(kernel: string, name: string, t: Tensor, dtype: 'f32' | 'f64' | 'i32'): void {
  if (t.dtype !== dtype) throw new BackendArgumentError(kernel, `${name} must be ${dtype} on the webgpu backend, got ${t.dtype}`);
}


const NAN_BITS = 0x7fc00000;

/**
 * The fused final RMSNorm + LM head + softmax cross-entropy (Backend.headLoss) over chunks of
 * `chunkTokens` rows: lossOut[lossIndex] += Σ loss and lossOut[lossIndex + 1] += the count of targets
 * ≥ 0; with args.grads, dx overwritten, dNormW and dHeadW accumulated (gradient of gradScale·Σ loss).
 * The caller has validated args (checks.checkHeadLoss) and resolved rows, dim, vocab and the chunk
 * (args.chunkTokens or its default). A target ≥ vocab cannot be refused on the device: its row's
 * loss is NaN (counted) and its gradient rows are 0; the ref backend throws instead.
 */
export function headLoss(ctx: GpuContext, args: HeadLossArgs, rows: number, dim: number, vocab: number, chunkTokens: number): void {
  const K = 'headLoss';
  if (args.headWLowp !== undefined) throw new BackendArgumentError(K, 'headWLowp (precision bf16) is not supported on the webgpu backend: use precision f32');
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new BackendArgumentError(K, `chunkTokens must be an integer ≥ 1, got ${chunkTokens}`);
  for (const [n, t] of [['x', args.x], ['normW', args.normW], ['headW', args.headW]] as const) needDtype(K, n, t, 'f32');
  needDtype(K, 'targets', args.targets, 'i32');
  needDtype(K, 'lossOut', args.lossOut, 'f64');
  const g = args.grads;
  if (g) for (const [n, t] of [['grads.dx', g.dx], ['grads.dNormW', g.dNormW], ['grads.dHeadW', g.dHeadW]] as const) needDtype(K, n, t, 'f32');
  if (rows === 0) return;

  const chunk = Math.min(rows, chunkTokens);
  const xn = ctx.alloc([chunk, dim]);
  const rstd = ctx.alloc([chunk]);
  const logits = ctx.alloc([chunk, vocab]);
  const rowLoss = ctx.alloc([2 * rows]);
  const dxn = g ? ctx.alloc([chunk, dim]) : null;
  for (let c0 = 0; c0 < rows; c0 += chunk) {
    const cr = Math.min(chunk, rows - c0);
    const xc = sub(args.x, c0 * dim, [cr, dim]);
    const tc = sub(args.targets, c0, [cr]);
    const xnc = sub(xn, 0, [cr, dim]);
    const rsc = sub(rstd, 0, [cr]);
    const lc = sub(logits, 0, [cr, vocab]);
    ctx.dispatch(HEAD_NORM, params(['u', cr], ['u', dim], ['f', args.eps]), [{ t: xnc, write: true }, { t: rsc, write: true }, { t: xc }, { t: args.normW }, { t: tc }], rowGroups(ctx, cr));
    matmul(ctx, lc, xnc, args.headW, cr, vocab, dim, false, true, 1, 0);
    const ceParams = params(['u', cr], ['u', vocab], ['u', c0], ['u', g ? 1 : 0], ['f', g ? g.gradScale : 0], ['u', NAN_BITS]);
    ctx.dispatch(HEAD_CE, ceParams, [{ t: lc, write: true }, { t: rowLoss, write: true }, { t: tc }], rowGroups(ctx, cr));
    if (!g || !dxn) continue;
    const dxnc = sub(dxn, 0, [cr, dim]);
    matmul(ctx, dxnc, lc, args.headW, cr, dim, vocab, false, false, 1, 0);
    matmul(ctx, g.dHeadW, lc, xnc, vocab, dim, cr, true, false, 1, 1);
    // dNormW before dx: the chunk's rows of x are read before dx (which may be x itself) is written.
    ctx.dispatch(HEAD_DNORMW, params(['u', cr], ['u', dim]), [{ t: g.dNormW, write: true }, { t: dxnc }, { t: xc }, { t: rsc }, { t: tc }], flatGroups(ctx, dim));
    const dxc = sub(g.dx, c0 * dim, [cr, dim]);
    ctx.dispatch(HEAD_DX, params(['u', cr], ['u', dim]), [{ t: dxc, write: true }, { t: dxnc }, { t: xc }, { t: args.normW }, { t: rsc }, { t: tc }], rowGroups(ctx, cr));
  }
  ctx.dispatch(HEAD_LOSS_SUM, params(['u', rows], ['u', args.lossIndex]), [{ t: args.lossOut, write: true }, { t: rowLoss }, { t: args.targets }], [1]);
  for (const t of [xn, rstd, logits, rowLoss, dxn]) if (t) ctx.free(t);
}

// ---- AdamW ----------------------------------------------------------------------------------

/** The per-step constants of AdamW, computed in float64 on the host. */
function adamConstants(p: AdamWParams): { decay: number; stepSize: number; sqrtBc2: number } {
  const bc1 = 1 - Math.pow(p.beta1, p.step);
  const bc2 = 1 - Math.pow(p.beta2, p.step);
  return { decay: 1 - p.lr * p.weightDecay, stepSize: p.lr / bc1, sqrtBc2: Math.sqrt(bc2) };
}

const ADAM_STRUCT = 'struct P { n: u32, decay: f32, b1: f32, omb1: f32, b2: f32, omb2: f32, stepSize: f32, sqrtBc2: f32, eps: f32 };\n@group(0) @binding(1) var<uniform> p: P;';

/** param, m and v in one pass (three distinct allocations). */
const ADAMW = kernel(
  'adamw',
  /* wgsl */ `
${ADAM_STRUCT}
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> grad: array<f32>;
${FLAT_LOOP}
    let gr = grad[o(3u) + i];
    let mm = p.b1 * m[o(1u) + i] + p.omb1 * gr;
    let vv = p.b2 * v[o(2u) + i] + p.omb2 * gr * gr;
    m[o(1u) + i] = mm;
    v[o(2u) + i] = vv;
    param[o(0u) + i] = param[o(0u) + i] * p.decay - (p.stepSize * mm) / (sqrt(vv) / p.sqrtBc2 + p.eps);
  }
}`,
);

/** The same in three passes, when param, m and v share allocations: m, then v, then param. */
const ADAMW_M = kernel(
  'adamwM',
  /* wgsl */ `
${ADAM_STRUCT}
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
${FLAT_LOOP}
    m[o(0u) + i] = p.b1 * m[o(0u) + i] + p.omb1 * grad[o(1u) + i];
  }
}`,
);
const ADAMW_V = kernel(
  'adamwV',
  /* wgsl */ `
${ADAM_STRUCT}
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
${FLAT_LOOP}
    let gr = grad[o(1u) + i];
    v[o(0u) + i] = p.b2 * v[o(0u) + i] + p.omb2 * gr * gr;
  }
}`,
);
const ADAMW_P = kernel(
  'adamwParam',
  /* wgsl */ `
${ADAM_STRUCT}
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> m: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
${FLAT_LOOP}
    param[o(0u) + i] = param[o(0u) + i] * p.decay - (p.stepSize * m[o(1u) + i]) / (sqrt(v[o(2u) + i]) / p.sqrtBc2 + p.eps);
  }
}`,
);

/**
 * AdamW as torch.optim.AdamW (Backend.adamw): decoupled decay, then the bias-corrected Adam update
 * with p.step. One pass when param, m and v are three allocations; three (m, v, param) when some
 * share one (a dispatch may not write two views of one allocation). The caller has validated p.
 */
export function adamw(ctx: GpuContext, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: AdamWParams): void {
  for (const [n, t] of [['param', param], ['grad', grad], ['m', m], ['v', v]] as const) needDtype('adamw', n, t, 'f32');
  const n = param.size;
  if (n === 0) return;
  const c = adamConstants(p);
  const pr = params(['u', n], ['f', c.decay], ['f', p.beta1], ['f', 1 - p.beta1], ['f', p.beta2], ['f', 1 - p.beta2], ['f', c.stepSize], ['f', c.sqrtBc2], ['f', p.eps]);
  const groups = flatGroups(ctx, n);
  if (new Set([param.buffer, m.buffer, v.buffer]).size === 3) {
    ctx.dispatch(ADAMW, pr, [{ t: param, write: true }, { t: m, write: true }, { t: v, write: true }, { t: grad }], groups);
    return;
  }
  ctx.dispatch(ADAMW_M, pr, [{ t: m, write: true }, { t: grad }], groups);
  ctx.dispatch(ADAMW_V, pr, [{ t: v, write: true }, { t: grad }], groups);
  ctx.dispatch(ADAMW_P, pr, [{ t: param, write: true }, { t: m }, { t: v }], groups);
}

// ---- clipping -------------------------------------------------------------------------------

const CLIP = kernel(
  'clipByGlobalNorm',
  /* wgsl */ `
struct P { n: u32, index: u32, maxNorm: f32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read> sq: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let at = o(1u) + 2u * p.index;
  let hi = sq[at];
  let lo = sq[at + 1u];
  let s = sqrt(hi);
  // sqrt(hi + lo) ≈ s + lo / (2s) (the low word matters only when it is not lost in f32).
  let norm = select(s, s + lo / (2.0 * s), s > 0.0);
  var coef = min(1.0, p.maxNorm / (norm + 1e-6));
  // A NaN norm makes x NaN, as in the ref (min() need not propagate NaN).
  if ((bitcast<u32>(hi) & 0x7fffffffu) > 0x7f800000u) { coef = hi; }
  for (var i = g.x; i < p.n; i += nw.x * ${FLAT_WG}u) {
    x[o(0u) + i] = x[o(0u) + i] * coef;
  }
}`,
);

/**
 * Backend.clipByGlobalNorm: x *= min(1, maxNorm / (sqrt(sqNorm[index]) + 1e-6)), the norm read on the
 * device from the float64 pair (no host round trip). The caller has validated the slot and maxNorm.
 */
export function clipByGlobalNorm(ctx: GpuContext, x: Tensor, sqNorm: Tensor, index: number, maxNorm: number): void {
  needDtype('clipByGlobalNorm', 'x', x, 'f32');
  needDtype('clipByGlobalNorm', 'sqNorm', sqNorm, 'f64');
  if (x.size === 0) return;
  ctx.dispatch(CLIP, params(['u', x.size], ['u', index], ['f', maxNorm]), [{ t: x, write: true }, { t: sqNorm }], flatGroups(ctx, x.size));
}

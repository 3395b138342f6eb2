/**
 * The layer kernels of the webgpu backend: embedding (forward and backward), RMSNorm (forward and
 * backward), rotary embedding and SwiGLU (forward and backward). float32 tensors, int32 tokens.
 *
 * Every result is deterministic: no floating-point atomics; each output element is owned by one
 * invocation (or one workgroup) that sums in a fixed order.
 * - RMSNorm: a workgroup per row (grid-strided over rows), a fixed tree over its 256 invocations.
 *   dw += Σ_rows dOut·x̂: one invocation per (chunk of 64 rows, column), rows in order, then (when
 *   there are several chunks) one invocation per column adds the chunks' partials in order.
 * - Embedding backward: the (token, position) pairs are sorted (a bitonic sort: the keys are unique,
 *   so the order is fully determined), then the first position of each token's run adds, column by
 *   column, the dOut rows of the run in position order into dTable — the order the ref backend uses,
 *   so a token that repeats is summed exactly as there.
 *
 * Tokens outside [0, vocab) cannot be reported from a kernel: embeddingForward writes NaN in their
 * output row (so the loss shows it) and embeddingBackward skips them.
 */
import type { Tensor } from '../../backend.js';
import { FLAT_WG, flatGroups, kernel, params, ROW_WG, rowGroups, type GpuContext } from './common.js';
/** Rows per partial sum of RMSNorm's dw. */
const DW_CHUNK = 64;
/** Elements of the bitonic sort handled in workgroup memory by one workgroup. */
const SORT_BLOCK = 512;
/** Invocations per workgroup of the embedding accumulation (over columns). */
const EMB_WG = 64;

/** A quiet NaN's bits: WGSL refuses a NaN constant, so it comes as a parameter. */
const NAN_BITS = 0x7fc00000;


// ---- embedding --------------------------------------------------------------------------------

const EMBED_FORWARD = kernel(
  'embeddingForward',
  /* wgsl */ `
struct P { total: u32, dim: u32, vocab: u32, nan: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read> tokens: array<i32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = g.x; i < p.total; i += nw.x * ${FLAT_WG}u) {
    let r = i / p.dim;
    let c = i - r * p.dim;
    let t = tokens[o(2u) + r];
    var v = bitcast<f32>(p.nan);
    if (t >= 0 && u32(t) < p.vocab) { v = table[o(1u) + u32(t) * p.dim + c]; }
    out[o(0u) + i] = v;
  }
}`,
);

/** out[n, :] = table[tokens[n], :] (n tokens, rows of dim; NaN rows for tokens outside [0, vocab)). */
export function embeddingForward(ctx: GpuContext, out: Tensor, table: Tensor, tokens: Tensor, n: number, dim: number, vocab: number): void {
  const total = n * dim;
  if (total === 0) return;
  ctx.dispatch(EMBED_FORWARD, params(['u', total], ['u', dim], ['u', vocab], ['u', NAN_BITS]), [{ t: out, write: true }, { t: table }, { t: tokens }], flatGroups(ctx, total));
}

/** The sort keys: (token, position) pairs, as two u32 words each; invalid tokens and padding sort last. */
const KEYS_WGSL = /* wgsl */ `
fn ld(s: u32) -> vec2u { return vec2u(keys[o(0u) + 2u * s], keys[o(0u) + 2u * s + 1u]); }
fn st(s: u32, v: vec2u) { keys[o(0u) + 2u * s] = v.x; keys[o(0u) + 2u * s + 1u] = v.y; }
fn less(a: vec2u, b: vec2u) -> bool { return a.x < b.x || (a.x == b.x && a.y < b.y); }
`;

const SORT_INIT = kernel(
  'embeddingSortInit',
  /* wgsl */ `
struct P { n: u32, padded: u32, vocab: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> keys: array<u32>;
@group(0) @binding(3) var<storage, read> tokens: array<i32>;
${KEYS_WGSL}
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var s = g.x; s < p.padded; s += nw.x * ${FLAT_WG}u) {
    var t = 0xffffffffu;
    if (s < p.n) {
      let v = tokens[o(1u) + s];
      if (v >= 0 && u32(v) < p.vocab) { t = u32(v); }
    }
    st(s, vec2u(t, s));
  }
}`,
);

/**
 * Bitonic steps inside blocks of SORT_BLOCK keys (workgroup memory): for k = kLo, 2·kLo, … ≤ kHi,
 * j = min(k/2, jMax) down to 1. The keys are unique, so "swap when b < a, ascending" and "swap
 * when a < b, descending" are one test: less(b, a) == ascending.
 */
const SORT_LOCAL = kernel(
  'embeddingSortLocal',
  /* wgsl */ `
struct P { padded: u32, kLo: u32, kHi: u32, jMax: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> keys: array<u32>;
var<workgroup> sh: array<vec2u, ${SORT_BLOCK}>;
${KEYS_WGSL}
@compute @workgroup_size(${SORT_BLOCK / 2})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let B = min(p.padded, ${SORT_BLOCK}u);
  let blocks = p.padded / B;
  for (var blk = w.x; blk < blocks; blk += nw.x) {
    let base = blk * B;
    for (var e = l.x; e < B; e += ${SORT_BLOCK / 2}u) { sh[e] = ld(base + e); }
    workgroupBarrier();
    for (var k = p.kLo; k <= p.kHi && k != 0u; k = k << 1u) {
      for (var j = min(k >> 1u, p.jMax); j > 0u; j = j >> 1u) {
        if (l.x < B / 2u) {
          let i = (l.x / j) * 2u * j + (l.x % j);
          let a = sh[i];
          let b = sh[i + j];
          if (less(b, a) == (((base + i) & k) == 0u)) {
            sh[i] = b;
            sh[i + j] = a;
          }
        }
        workgroupBarrier();
      }
    }
    for (var e = l.x; e < B; e += ${SORT_BLOCK / 2}u) { st(base + e, sh[e]); }
    workgroupBarrier();
  }
}`,
);

/** One bitonic step (k, j) with j ≥ SORT_BLOCK, over the whole array. */
const SORT_GLOBAL = kernel(
  'embeddingSortGlobal',
  /* wgsl */ `
struct P { half: u32, k: u32, j: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> keys: array<u32>;
${KEYS_WGSL}
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var t = g.x; t < p.half; t += nw.x * ${FLAT_WG}u) {
    let i = (t / p.j) * 2u * p.j + (t % p.j);
    let a = ld(i);
    let b = ld(i + p.j);
    if (less(b, a) == ((i & p.k) == 0u)) {
      st(i, b);
      st(i + p.j, a);
    }
  }
}`,
);

/** dTable[token, c] += the dOut rows of the token's run of sorted keys, in position order. */
const EMBED_ACCUMULATE = kernel(
  'embeddingAccumulate',
  /* wgsl */ `
struct P { n: u32, dim: u32, vocab: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dTable: array<f32>;
@group(0) @binding(3) var<storage, read> dOut: array<f32>;
@group(0) @binding(4) var<storage, read> keys: array<u32>;
fn key(s: u32) -> vec2u { return vec2u(keys[o(2u) + 2u * s], keys[o(2u) + 2u * s + 1u]); }
@compute @workgroup_size(${EMB_WG})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var s = w.x; s < p.n; s += nw.x) {
    let k = key(s);
    // Invalid tokens sort last: nothing after them.
    if (k.x >= p.vocab) { break; }
    if (s > 0u && key(s - 1u).x == k.x) { continue; }
    var end = s + 1u;
    while (end < p.n && key(end).x == k.x) { end++; }
    for (var c = l.x; c < p.dim; c += ${EMB_WG}u) {
      let at = o(0u) + k.x * p.dim + c;
      var acc = dTable[at];
      for (var e = s; e < end; e++) { acc = acc + dOut[o(1u) + keys[o(2u) + 2u * e + 1u] * p.dim + c]; }
      dTable[at] = acc;
    }
  }
}`,
);

/** dTable[tokens[n], :] += dOut[n, :], deterministic (sorted runs, each summed in position order). */
export function embeddingBackward(ctx: GpuContext, dTable: Tensor, dOut: Tensor, tokens: Tensor, n: number, dim: number, vocab: number): void {
  if (n === 0 || dim === 0) return;
  let padded = 1;
  while (padded < n) padded *= 2;
  const keys = ctx.alloc([2 * padded], 'i32');
  const maxGroups = ctx.limits.maxComputeWorkgroupsPerDimension;
  ctx.dispatch(SORT_INIT, params(['u', n], ['u', padded], ['u', vocab]), [{ t: keys, write: true }, { t: tokens }], flatGroups(ctx, padded));
  const blockGroups: [number] = [Math.max(1, Math.min(maxGroups, Math.ceil(padded / SORT_BLOCK)))];
  const local = (kLo: number, kHi: number) => ctx.dispatch(SORT_LOCAL, params(['u', padded], ['u', kLo], ['u', kHi], ['u', SORT_BLOCK / 2]), [{ t: keys, write: true }], blockGroups);
  if (padded > 1) local(2, Math.min(padded, SORT_BLOCK));
  for (let k = 2 * SORT_BLOCK; k <= padded; k *= 2) {
    for (let j = k / 2; j >= SORT_BLOCK; j /= 2) ctx.dispatch(SORT_GLOBAL, params(['u', padded / 2], ['u', k], ['u', j]), [{ t: keys, write: true }], flatGroups(ctx, padded / 2));
    local(k, k);
  }
  ctx.dispatch(EMBED_ACCUMULATE, params(['u', n], ['u', dim], ['u', vocab]), [{ t: dTable, write: true }, { t: dOut }, { t: keys }], rowGroups(ctx, n));
  ctx.free(keys);
}

// ---- RMSNorm ----------------------------------------------------------------------------------

/** WGSL: the fixed-order tree sum of `sums` (ROW_WG values) into sums[0]; ends with a barrier. */
const TREE_SUM = /* wgsl */ `
  workgroupBarrier();
  for (var h = ${ROW_WG / 2}u; h > 0u; h = h >> 1u) {
    if (l.x < h) { sums[l.x] = sums[l.x] + sums[l.x + h]; }
    workgroupBarrier();
  }
`;

/**
 * RMSNorm forward, a workgroup per row. `shared`: out and rstd are regions of one allocation, bound
 * once as `y` (their offsets inside it in the parameters), since one dispatch may not write two
 * views of an allocation.
 */
const rmsForward = (shared: boolean) =>
  kernel(
    shared ? 'rmsnormForwardShared' : 'rmsnormForward',
    /* wgsl */ `
struct P { rows: u32, dim: u32, eps: f32, outAt: u32, rstdAt: u32 };
@group(0) @binding(1) var<uniform> p: P;
${
  shared
    ? `@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
fn putOut(i: u32, v: f32) { y[o(0u) + p.outAt + i] = v; }
fn putRstd(r: u32, v: f32) { y[o(0u) + p.rstdAt + r] = v; }
const X = 1u;
const W = 2u;`
    : `@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> w: array<f32>;
fn putOut(i: u32, v: f32) { out[o(0u) + i] = v; }
fn putRstd(r: u32, v: f32) { rstd[o(1u) + r] = v; }
const X = 2u;
const W = 3u;`
}
var<workgroup> sums: array<f32, ${ROW_WG}>;
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var r = wg.x; r < p.rows; r += nw.x) {
    let xo = o(X) + r * p.dim;
    var s = 0.0;
    for (var i = l.x; i < p.dim; i += ${ROW_WG}u) {
      let v = x[xo + i];
      s = s + v * v;
    }
    sums[l.x] = s;
    ${TREE_SUM}
    let rs = 1.0 / sqrt(sums[0] / f32(p.dim) + p.eps);
    // Everyone has read sums[0] before the next row writes it.
    workgroupBarrier();
    if (l.x == 0u) { putRstd(r, rs); }
    for (var i = l.x; i < p.dim; i += ${ROW_WG}u) { putOut(r * p.dim + i, x[xo + i] * rs * w[o(W) + i]); }
  }
}`,
  );
const RMS_FORWARD = rmsForward(false);
const RMS_FORWARD_SHARED = rmsForward(true);

/** out = x / rms(x) · w over rows of dim; rstd[r] = 1/sqrt(mean(x²) + eps). */
export function rmsnormForward(ctx: GpuContext, out: Tensor, rstd: Tensor, x: Tensor, w: Tensor, rows: number, dim: number, eps: number): void {
  if (rows === 0 || dim === 0) return;
  if (out.buffer !== rstd.buffer) {
    ctx.dispatch(RMS_FORWARD, params(['u', rows], ['u', dim], ['f', eps], ['u', 0], ['u', 0]), [{ t: out, write: true }, { t: rstd, write: true }, { t: x }, { t: w }], rowGroups(ctx, rows));
    return;
  }
  // One binding spanning both regions of the allocation.
  const lo = Math.min(out.offset, rstd.offset);
  const hi = Math.max(out.offset + out.size, rstd.offset + rstd.size);
  const span: Tensor = { ...out, offset: lo, shape: [hi - lo], size: hi - lo };
  ctx.dispatch(RMS_FORWARD_SHARED, params(['u', rows], ['u', dim], ['f', eps], ['u', out.offset - lo], ['u', rstd.offset - lo]), [{ t: span, write: true }, { t: x }, { t: w }], rowGroups(ctx, rows));
}

/**
 * dw (or, with several chunks, a partial per chunk of DW_CHUNK rows): dst[chunk·dim + c] =
 * (init ? dst[c] : 0) + Σ_{rows r of the chunk, in order} dOut[r, c]·(x[r, c]·rstd[r]).
 */
const RMS_DW = kernel(
  'rmsnormDw',
  /* wgsl */ `
struct P { rows: u32, dim: u32, chunks: u32, init: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> dOut: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let total = p.chunks * p.dim;
  for (var idx = g.x; idx < total; idx += nw.x * ${FLAT_WG}u) {
    let chunk = idx / p.dim;
    let c = idx - chunk * p.dim;
    let r0 = chunk * ${DW_CHUNK}u;
    let r1 = min(p.rows, r0 + ${DW_CHUNK}u);
    var acc = 0.0;
    if (p.init == 1u) { acc = dst[o(0u) + idx]; }
    for (var r = r0; r < r1; r++) {
      let at = r * p.dim + c;
      acc = acc + dOut[o(1u) + at] * (x[o(2u) + at] * rstd[o(3u) + r]);
    }
    dst[o(0u) + idx] = acc;
  }
}`,
);

/** dw[c] += Σ_chunks partial[chunk·dim + c], chunks in order. */
const RMS_DW_FINISH = kernel(
  'rmsnormDwFinish',
  /* wgsl */ `
struct P { dim: u32, chunks: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;
@group(0) @binding(3) var<storage, read> partial: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var c = g.x; c < p.dim; c += nw.x * ${FLAT_WG}u) {
    var acc = dw[o(0u) + c];
    for (var k = 0u; k < p.chunks; k++) { acc = acc + partial[o(1u) + k * p.dim + c]; }
    dw[o(0u) + c] = acc;
  }
}`,
);

/** dx = rstd·(dOut·w − x̂·mean(dOut·w·x̂)), x̂ = x·rstd; a workgroup per row; = or += by `accumulate`. */
const RMS_DX = kernel(
  'rmsnormDx',
  /* wgsl */ `
struct P { rows: u32, dim: u32, accumulate: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<storage, read> dOut: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> w: array<f32>;
@group(0) @binding(6) var<storage, read> rstd: array<f32>;
var<workgroup> sums: array<f32, ${ROW_WG}>;
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var r = wg.x; r < p.rows; r += nw.x) {
    let ro = r * p.dim;
    let rs = rstd[o(4u) + r];
    var s = 0.0;
    for (var i = l.x; i < p.dim; i += ${ROW_WG}u) {
      s = s + (dOut[o(1u) + ro + i] * w[o(3u) + i]) * (x[o(2u) + ro + i] * rs);
    }
    sums[l.x] = s;
    ${TREE_SUM}
    let mean = sums[0] / f32(p.dim);
    workgroupBarrier();
    for (var i = l.x; i < p.dim; i += ${ROW_WG}u) {
      let xhat = x[o(2u) + ro + i] * rs;
      let gi = rs * (dOut[o(1u) + ro + i] * w[o(3u) + i] - xhat * mean);
      let at = o(0u) + ro + i;
      if (p.accumulate == 1u) { dx[at] = dx[at] + gi; } else { dx[at] = gi; }
    }
  }
}`,
);

/** RMSNorm backward: dw += Σ_rows dOut·x̂ (first, so that dx may alias dOut or x); dx = or += by `accumulate`. */
export function rmsnormBackward(ctx: GpuContext, dx: Tensor, dw: Tensor, dOut: Tensor, x: Tensor, w: Tensor, rstd: Tensor, rows: number, dim: number, accumulate: boolean): void {
  if (rows === 0 || dim === 0) return;
  const chunks = Math.ceil(rows / DW_CHUNK);
  const reads = [{ t: dOut }, { t: x }, { t: rstd }];
  if (chunks === 1) {
    ctx.dispatch(RMS_DW, params(['u', rows], ['u', dim], ['u', 1], ['u', 1]), [{ t: dw, write: true }, ...reads], flatGroups(ctx, dim));
  } else {
    const partial = ctx.alloc([chunks * dim]);
    ctx.dispatch(RMS_DW, params(['u', rows], ['u', dim], ['u', chunks], ['u', 0]), [{ t: partial, write: true }, ...reads], flatGroups(ctx, chunks * dim));
    ctx.dispatch(RMS_DW_FINISH, params(['u', dim], ['u', chunks]), [{ t: dw, write: true }, { t: partial }], flatGroups(ctx, dim));
    ctx.free(partial);
  }
  ctx.dispatch(RMS_DX, params(['u', rows], ['u', dim], ['u', accumulate ? 1 : 0]), [{ t: dx, write: true }, { t: dOut }, { t: x }, { t: w }, { t: rstd }], rowGroups(ctx, rows));
}

// ---- rotary embedding ---------------------------------------------------------------------------

const ROPE = kernel(
  'rope',
  /* wgsl */ `
struct P { total: u32, width: u32, seqLen: u32, nHeads: u32, headDim: u32, half: u32, inverse: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read> cosT: array<f32>;
@group(0) @binding(4) var<storage, read> sinT: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var idx = g.x; idx < p.total; idx += nw.x * ${FLAT_WG}u) {
    let t = idx / p.half;
    let i = idx - t * p.half;
    let r = t / p.nHeads;
    let h = t - r * p.nHeads;
    let pos = r % p.seqLen;
    let c = cosT[o(1u) + pos * p.half + i];
    var s = sinT[o(2u) + pos * p.half + i];
    if (p.inverse == 1u) { s = -s; }
    let at = o(0u) + r * p.width + h * p.headDim + i;
    let x1 = x[at];
    let x2 = x[at + p.half];
    x[at] = x1 * c - x2 * s;
    x[at + p.half] = x2 * c + x1 * s;
  }
}`,
);

/**
 * Rotary embedding in place (Hugging Face rotate-half): the first nHeads heads of headDim columns of
 * each row of x (rows × width) rotated by the angle of position row mod seqLen; inverse: the transpose.
 */
export function rope(ctx: GpuContext, x: Tensor, cos: Tensor, sin: Tensor, rows: number, width: number, seqLen: number, nHeads: number, headDim: number, inverse: boolean): void {
  const half = headDim / 2;
  const total = rows * nHeads * half;
  if (total === 0) return;
  const p = params(['u', total], ['u', width], ['u', seqLen], ['u', nHeads], ['u', headDim], ['u', half], ['u', inverse ? 1 : 0]);
  ctx.dispatch(ROPE, p, [{ t: x, write: true }, { t: cos }, { t: sin }], flatGroups(ctx, total));
}

// ---- SwiGLU -----------------------------------------------------------------------------------

const SIGMOID = /* wgsl */ `fn sigmoid(z: f32) -> f32 { return 1.0 / (1.0 + exp(-z)); }`;

const SWIGLU_FORWARD = kernel(
  'swigluForward',
  /* wgsl */ `
struct P { total: u32, ffn: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
@group(0) @binding(3) var<storage, read> gu: array<f32>;
${SIGMOID}
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) gi: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = gi.x; i < p.total; i += nw.x * ${FLAT_WG}u) {
    let r = i / p.ffn;
    let c = i - r * p.ffn;
    let at = o(1u) + 2u * r * p.ffn + c;
    let g = gu[at];
    let u = gu[at + p.ffn];
    h[o(0u) + i] = g * sigmoid(g) * u;
  }
}`,
);

const SWIGLU_BACKWARD = kernel(
  'swigluBackward',
  /* wgsl */ `
struct P { total: u32, ffn: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dgu: array<f32>;
@group(0) @binding(3) var<storage, read> dh: array<f32>;
@group(0) @binding(4) var<storage, read> gu: array<f32>;
${SIGMOID}
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) gi: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = gi.x; i < p.total; i += nw.x * ${FLAT_WG}u) {
    let r = i / p.ffn;
    let c = i - r * p.ffn;
    let rel = 2u * r * p.ffn + c;
    let g = gu[o(2u) + rel];
    let u = gu[o(2u) + rel + p.ffn];
    let s = sigmoid(g);
    let d = dh[o(1u) + i];
    dgu[o(0u) + rel] = d * u * s * (1.0 + g * (1.0 - s));
    dgu[o(0u) + rel + p.ffn] = d * g * s;
  }
}`,
);

/** h (rows × ffn) = silu(gate) · up, gu (rows × 2·ffn) = [gate | up] per row. */
export function swigluForward(ctx: GpuContext, h: Tensor, gu: Tensor, rows: number, ffn: number): void {
  const total = rows * ffn;
  if (total > 0) ctx.dispatch(SWIGLU_FORWARD, params(['u', total], ['u', ffn]), [{ t: h, write: true }, { t: gu }], flatGroups(ctx, total));
}

/** dgu (rows × 2·ffn, overwritten) from dh (rows × ffn). */
export function swigluBackward(ctx: GpuContext, dgu: Tensor, dh: Tensor, gu: Tensor, rows: number, ffn: number): void {
  const total = rows * ffn;
  if (total > 0) ctx.dispatch(SWIGLU_BACKWARD, params(['u', total], ['u', ffn]), [{ t: dgu, write: true }, { t: dh }, { t: gu }], flatGroups(ctx, total));
}

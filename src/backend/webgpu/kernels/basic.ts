/**
 * Flat kernels (fill, scale, axpy, add, the f16 conversions), float64-accurate reductions (Σx²,
 * Σx·y, accumulate with norm) and the GEMM of the webgpu backend (float32, or f16 inputs).
 *
 * Reductions: WGSL has no f64, so each workgroup takes a compensated (Kahan) float32 sum of its
 * grid-strided elements, a pairwise two-sum tree combines a workgroup's partials, and one more
 * workgroup adds the total into the double-float statistic (hi, lo): ~1e-7 relative per reduction,
 * and nothing of what the slot held is lost.
 */
import type { Tensor } from '../../backend.js';
import { FLAT_LOOP, FLAT_WG, flatGroups, kernel, params, WORKGROUP_SUM, type GpuContext } from './common.js';

const FILL = kernel(
  'fill',
  /* wgsl */ `
struct P { n: u32, w0: u32, w1: u32, period: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> x: array<u32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = g.x; i < p.n; i += nw.x * ${FLAT_WG}u) {
    x[o(0u) + i] = select(p.w0, p.w1, p.period == 2u && (i & 1u) == 1u);
  }
}`,
);

/**
 * WGSL: float32 → f16 rounded to nearest even, ±∞ beyond 65520 in magnitude, NaN kept (src/backend/
 * f16.ts is the same on the host). WGSL's own f16(x) may round either way and leaves overflow
 * undefined, so the bits are made here.
 */
const TO_HALF = /* wgsl */ `
fn toHalf(x: f32) -> f16 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 16u) & 0x8000u;
  let a = bits & 0x7fffffffu;
  var h: u32;
  if (a > 0x7f800000u) {
    h = sign | 0x7e00u;
  } else if (a >= 0x477ff000u) {
    h = sign | 0x7c00u;
  } else if (a >= 0x38800000u) {
    let m = a - 0x38000000u;
    h = sign | ((m + 0x0fffu + ((m >> 13u) & 1u)) >> 13u);
  } else {
    // Subnormal: k·2⁻²⁴, k = |x|·2²⁴ (exact) rounded half to even by round().
    h = sign | u32(round(abs(x) * 16777216.0));
  }
  return bitcast<vec2<f16>>(h).x;
}
`;

const FILL_HALF = kernel(
  'fillHalf',
  /* wgsl */ `
struct P { n: u32, v: f32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> x: array<f16>;
${TO_HALF}
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let v = toHalf(p.v);
  for (var i = g.x; i < p.n; i += nw.x * ${FLAT_WG}u) { x[o(0u) + i] = v; }
}`,
  { f16: true },
);

/** Fills t with value: one 32-bit word per element, the (hi, lo) pair of a float64 element, or an f16. */
export function fill(ctx: GpuContext, t: Tensor, value: number): void {
  if (t.size === 0) return;
  if (t.dtype === 'f16') {
    ctx.dispatch(FILL_HALF, params(['u', t.size], ['f', value]), [{ t, write: true }], flatGroups(ctx, t.size));
    return;
  }
  const words = new Uint32Array(2);
  if (t.dtype === 'f64') {
    const f = new Float32Array(words.buffer);
    f[0] = Math.fround(value);
    f[1] = Math.fround(value - f[0]!);
  } else if (t.dtype === 'i32') new Int32Array(words.buffer)[0] = value;
  else new Float32Array(words.buffer)[0] = value;
  const n = t.dtype === 'f64' ? 2 * t.size : t.size;
  ctx.dispatch(FILL, params(['u', n], ['u', words[0]!], ['u', words[1]!], ['u', t.dtype === 'f64' ? 2 : 1]), [{ t, write: true }], flatGroups(ctx, n));
}

const flatKernel = (name: string, decl: string, body: string) =>
  kernel(
    name,
    /* wgsl */ `
struct P { n: u32, a: f32 };
@group(0) @binding(1) var<uniform> p: P;
${decl}
${FLAT_LOOP} ${body} }
}`,
  );

const SCALE = flatKernel('scale', '@group(0) @binding(2) var<storage, read_write> x: array<f32>;', 'x[o(0u) + i] = x[o(0u) + i] * p.a;');
const AXPY = flatKernel('axpy', '@group(0) @binding(2) var<storage, read_write> y: array<f32>;\n@group(0) @binding(3) var<storage, read> x: array<f32>;', 'y[o(0u) + i] = y[o(0u) + i] + p.a * x[o(1u) + i];');
const ADD = flatKernel(
  'add',
  '@group(0) @binding(2) var<storage, read_write> out: array<f32>;\n@group(0) @binding(3) var<storage, read> a: array<f32>;\n@group(0) @binding(4) var<storage, read> b: array<f32>;',
  'out[o(0u) + i] = a[o(1u) + i] + b[o(2u) + i];',
);
/** out = out + x·a (add with out aliasing an addend: a = 1, or a = 2 and x unused when both alias). */
const ADD_INPLACE = flatKernel('addInplace', '@group(0) @binding(2) var<storage, read_write> out: array<f32>;\n@group(0) @binding(3) var<storage, read> x: array<f32>;', 'out[o(0u) + i] = out[o(0u) + i] + x[o(1u) + i];');

export function scale(ctx: GpuContext, x: Tensor, alpha: number): void {
  if (x.size > 0) ctx.dispatch(SCALE, params(['u', x.size], ['f', alpha]), [{ t: x, write: true }], flatGroups(ctx, x.size));
}

export function axpy(ctx: GpuContext, y: Tensor, alpha: number, x: Tensor): void {
  if (y.size > 0) ctx.dispatch(AXPY, params(['u', y.size], ['f', alpha]), [{ t: y, write: true }, { t: x }], flatGroups(ctx, y.size));
}

export function add(ctx: GpuContext, out: Tensor, a: Tensor, b: Tensor): void {
  const n = out.size;
  if (n === 0) return;
  const same = (u: Tensor, v: Tensor): boolean => u.buffer === v.buffer && u.offset === v.offset;
  const p = params(['u', n], ['f', 0]);
  if (same(out, a) && same(out, b)) ctx.dispatch(SCALE, params(['u', n], ['f', 2]), [{ t: out, write: true }], flatGroups(ctx, n));
  else if (same(out, a)) ctx.dispatch(ADD_INPLACE, p, [{ t: out, write: true }, { t: b }], flatGroups(ctx, n));
  else if (same(out, b)) ctx.dispatch(ADD_INPLACE, p, [{ t: out, write: true }, { t: a }], flatGroups(ctx, n));
  else ctx.dispatch(ADD, p, [{ t: out, write: true }, { t: a }, { t: b }], flatGroups(ctx, n));
}

const TO_F16 = kernel(
  'convertToF16',
  /* wgsl */ `
struct P { n: u32, scale: f32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dst: array<f16>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
${TO_HALF}
${FLAT_LOOP} dst[o(0u) + i] = toHalf(src[o(1u) + i] * p.scale); }
}`,
  { f16: true },
);

const FROM_F16 = kernel(
  'convertFromF16',
  /* wgsl */ `
struct P { n: u32, scale: f32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<f16>;
${FLAT_LOOP} dst[o(0u) + i] = f32(src[o(1u) + i]) * p.scale; }
}`,
  { f16: true },
);

const COPY_HALF = kernel(
  'copyHalf',
  /* wgsl */ `
struct P { n: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dst: array<f16>;
@group(0) @binding(3) var<storage, read> src: array<f16>;
${FLAT_LOOP} dst[o(0u) + i] = src[o(1u) + i]; }
}`,
  { f16: true },
);

/** dst = scale · src between f32 and f16 (rounded to nearest even into f16; exact into f32). */
export function convert(ctx: GpuContext, dst: Tensor, src: Tensor, scale: number): void {
  if (dst.size > 0) ctx.dispatch(dst.dtype === 'f16' ? TO_F16 : FROM_F16, params(['u', dst.size], ['f', scale]), [{ t: dst, write: true }, { t: src }], flatGroups(ctx, dst.size));
}

/**
 * Copies f16 elements. (Buffer copies move whole 4-byte words; an f16 view may start or end inside
 * one, where a word copy would overwrite its neighbour.)
 */
export function copyHalf(ctx: GpuContext, dst: Tensor, src: Tensor): void {
  if (dst.size > 0) ctx.dispatch(COPY_HALF, params(['u', dst.size]), [{ t: dst, write: true }, { t: src }], flatGroups(ctx, dst.size));
}

/** Workgroups of the first reduction pass (at most this many partials). */
const MAX_PARTIALS = 64;

const REDUCE_PARTIAL = kernel(
  'reducePartial',
  /* wgsl */ `
struct P { n: u32, mode: u32, a: f32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<vec2f>;
${WORKGROUP_SUM}
// mode 0: Σ x²; 1: Σ x·y; 2: Σ y² while x += a·y (accumulateWithNorm: x the accumulator, y the gradient).
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) nw: vec3u) {
  var s = 0.0;
  var c = 0.0;
  for (var i = g.x; i < p.n; i += nw.x * ${FLAT_WG}u) {
    var t: f32;
    if (p.mode == 0u) {
      let v = x[o(0u) + i];
      t = v * v;
    } else if (p.mode == 1u) {
      t = x[o(0u) + i] * y[o(1u) + i];
    } else {
      let v = y[o(1u) + i];
      x[o(0u) + i] = x[o(0u) + i] + p.a * v;
      t = v * v;
    }
    // Kahan: c carries what s lost.
    let yk = t - c;
    let tk = s + yk;
    c = (tk - s) - yk;
    s = tk;
  }
  let total = blockSum(l.x, vec2f(s, -c));
  if (l.x == 0u) { partial[o(2u) / 2u + w.x] = total; }
}`,
);

const REDUCE_FINISH = kernel(
  'reduceFinish',
  /* wgsl */ `
struct P { groups: u32, index: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> partial: array<vec2f>;
${WORKGROUP_SUM}
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(local_invocation_id) l: vec3u) {
  var acc = vec2f(0.0, 0.0);
  for (var i = l.x; i < p.groups; i += ${FLAT_WG}u) {
    let q = partial[o(1u) / 2u + i];
    let t = twoSum(acc.x, q.x);
    acc = vec2f(t.x, t.y + acc.y + q.y);
  }
  let total = blockSum(l.x, acc);
  if (l.x == 0u) {
    let at = o(0u) + 2u * p.index;
    let r = ddAdd(out[at], out[at + 1u], total.x, total.y);
    out[at] = r.x;
    out[at + 1u] = r.y;
  }
}`,
);

/**
 * out[index] += Σ (mode 0: x², 1: x·y, 2: y², with x += alpha·y). `out` is a float64 tensor (pairs).
 */
export function reduce(ctx: GpuContext, mode: 0 | 1 | 2, x: Tensor, y: Tensor | null, alpha: number, out: Tensor, index: number): void {
  const n = x.size;
  if (n === 0) return;
  const groups = Math.max(1, Math.min(MAX_PARTIALS, Math.ceil(n / (FLAT_WG * 16))));
  const partial = ctx.alloc([2 * groups]);
  ctx.dispatch(REDUCE_PARTIAL, params(['u', n], ['u', mode], ['f', alpha]), [{ t: x, write: true }, { t: y ?? partial }, { t: partial, write: true }], [groups]);
  ctx.dispatch(REDUCE_FINISH, params(['u', groups], ['u', index]), [{ t: out, write: true }, { t: partial }], [1]);
  ctx.free(partial);
}

/** Tile sizes of MATMUL: a workgroup computes TILE × TILE of C, each invocation 4 × 4, over K in steps of KT. */
const MM_TILE = 64;
const MM_KT = 16;

/**
 * C = alpha·op(A)·op(B) + beta·C, row-major, op = transpose when flagged. Tiled through workgroup
 * memory: 16 × 16 invocations, each accumulating a 4 × 4 block of C in four vec4 registers over K
 * tiles of 16. One pipeline per transposition (no branch on it in the loads); operand tiles are kept
 * as vec4 rows so an invocation reads its four rows or columns in one load.
 */
function matmulKernel(transA: boolean, transB: boolean, input: 'f32' | 'f16') {
  // f16 inputs are widened as they are loaded: the tiles, the products and the sums are float32.
  const aAt = `f32(${transA ? 'a[o(1u) + kk * p.m + i]' : 'a[o(1u) + i * p.k + kk]'})`;
  const bAt = `f32(${transB ? 'b[o(2u) + j * p.k + kk]' : 'b[o(2u) + kk * p.n + j]'})`;
  return kernel(
    `matmul${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}${input === 'f16' ? 'Half' : ''}`,
    /* wgsl */ `
struct P { m: u32, n: u32, k: u32, pad: u32, alpha: f32, beta: f32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> a: array<${input}>;
@group(0) @binding(4) var<storage, read> b: array<${input}>;
// [k][row / 4] of op(A) and [k][col / 4] of op(B): 16 vec4 = 64 rows or columns per k.
var<workgroup> As: array<array<vec4f, ${MM_TILE / 4}>, ${MM_KT}>;
var<workgroup> Bs: array<array<vec4f, ${MM_TILE / 4}>, ${MM_KT}>;

fn loadA(i: u32, kk: u32) -> f32 {
  if (i < p.m && kk < p.k) { return ${aAt}; }
  return 0.0;
}
fn loadB(kk: u32, j: u32) -> f32 {
  if (kk < p.k && j < p.n) { return ${bAt}; }
  return 0.0;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row0 = w.y * ${MM_TILE}u;
  let col0 = w.x * ${MM_TILE}u;
  let tid = l.y * 16u + l.x;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  // Each of the 256 invocations loads one vec4 (4 consecutive rows or columns at one k) per operand.
  let kk = tid / ${MM_TILE / 4}u;
  let x4 = (tid % ${MM_TILE / 4}u) * 4u;
  for (var k0 = 0u; k0 < p.k; k0 += ${MM_KT}u) {
    let kq = k0 + kk;
    As[kk][x4 / 4u] = vec4f(loadA(row0 + x4, kq), loadA(row0 + x4 + 1u, kq), loadA(row0 + x4 + 2u, kq), loadA(row0 + x4 + 3u, kq));
    Bs[kk][x4 / 4u] = vec4f(loadB(kq, col0 + x4), loadB(kq, col0 + x4 + 1u), loadB(kq, col0 + x4 + 2u), loadB(kq, col0 + x4 + 3u));
    workgroupBarrier();
    for (var q = 0u; q < ${MM_KT}u; q++) {
      let av = As[q][l.y];
      let bv = Bs[q][l.x];
      acc0 = fma(vec4f(av.x), bv, acc0);
      acc1 = fma(vec4f(av.y), bv, acc1);
      acc2 = fma(vec4f(av.z), bv, acc2);
      acc3 = fma(vec4f(av.w), bv, acc3);
    }
    workgroupBarrier();
  }
  let accs = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var r = 0u; r < 4u; r++) {
    let i = row0 + l.y * 4u + r;
    if (i >= p.m) { continue; }
    for (var s = 0u; s < 4u; s++) {
      let j = col0 + l.x * 4u + s;
      if (j >= p.n) { continue; }
      let at = o(0u) + i * p.n + j;
      var v = p.alpha * accs[r][s];
      if (p.beta != 0.0) { v = v + p.beta * c[at]; }
      c[at] = v;
    }
  }
}`,
    { f16: input === 'f16' },
  );
}

/** The four transpositions (index 2·transA + transB), per input type. */
const MATMULS = {
  f32: [matmulKernel(false, false, 'f32'), matmulKernel(false, true, 'f32'), matmulKernel(true, false, 'f32'), matmulKernel(true, true, 'f32')],
  f16: [matmulKernel(false, false, 'f16'), matmulKernel(false, true, 'f16'), matmulKernel(true, false, 'f16'), matmulKernel(true, true, 'f16')],
};

export function matmul(ctx: GpuContext, c: Tensor, a: Tensor, b: Tensor, m: number, n: number, k: number, transA: boolean, transB: boolean, alpha: number, beta: number): void {
  if (m === 0 || n === 0) return;
  const p = params(['u', m], ['u', n], ['u', k], ['u', 0], ['f', alpha], ['f', beta]);
  ctx.dispatch(MATMULS[a.dtype === 'f16' ? 'f16' : 'f32'][(transA ? 2 : 0) + (transB ? 1 : 0)]!, p, [{ t: c, write: true }, { t: a }, { t: b }], [Math.ceil(n / MM_TILE), Math.ceil(m / MM_TILE)]);
}

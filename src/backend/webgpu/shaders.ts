/**
 * WGSL compute shaders of the webgpu backend. Every kernel reads its sizes and element offsets from
 * a uniform block `P` (binding 0); tensors are bound as whole storage ranges that start at a
 * 256-byte boundary, and the element offset inside the range comes in `P` (WebGPU binds storage at
 * aligned offsets only).
 *
 * float64 tensors (statistics) are stored as pairs of float32 (hi, lo) with hi + lo the value
 * ("double-float"): WGSL has no f64. Sums are taken in float32 with compensated (Kahan) partial sums
 * and added into the pair with error-free transformations, so a statistic keeps ~1e-7 relative
 * accuracy per reduction and no bits of what it held before.
 */

/** Workgroup size of the flat elementwise kernels and reductions. */
export const FLAT_WG = 256;
/** Elements per flat kernel workgroup before it strides (grid-stride loops above this). */
export const MAX_FLAT_GROUPS = 65535;

const flatHeader = /* wgsl */ `
struct P { n: u32, off0: u32, off1: u32, off2: u32, a: f32, b: f32, pad0: u32, pad1: u32 };
@group(0) @binding(0) var<uniform> p: P;
`;

/** x[i] = pattern word (i mod 2) for u32 words: fills f32 and i32 (one word) and double-float (two). */
export const FILL = /* wgsl */ `
struct P { n: u32, off0: u32, w0: u32, w1: u32, period: u32, pad0: u32, pad1: u32, pad2: u32 };
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<u32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let stride = nw.x * ${FLAT_WG}u;
  for (var i = g.x; i < p.n; i += stride) {
    x[p.off0 + i] = select(p.w0, p.w1, p.period == 2u && (i & 1u) == 1u);
  }
}`;

/** x *= a */
export const SCALE = /* wgsl */ `${flatHeader}
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let stride = nw.x * ${FLAT_WG}u;
  for (var i = g.x; i < p.n; i += stride) { x[p.off0 + i] = x[p.off0 + i] * p.a; }
}`;

/** y += a · x */
export const AXPY = /* wgsl */ `${flatHeader}
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let stride = nw.x * ${FLAT_WG}u;
  for (var i = g.x; i < p.n; i += stride) { y[p.off0 + i] = y[p.off0 + i] + p.a * x[p.off1 + i]; }
}`;

/** out = a + b, with a and b separate bindings (out aliasing one of them goes through ADD_INPLACE). */
export const ADD = /* wgsl */ `${flatHeader}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let stride = nw.x * ${FLAT_WG}u;
  for (var i = g.x; i < p.n; i += stride) { out[p.off0 + i] = a[p.off1 + i] + b[p.off2 + i]; }
}`;

/** out += x (out is one of the addends: out = out + x). */
export const ADD_INPLACE = /* wgsl */ `${flatHeader}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let stride = nw.x * ${FLAT_WG}u;
  for (var i = g.x; i < p.n; i += stride) { out[p.off0 + i] = out[p.off0 + i] + x[p.off1 + i]; }
}`;

/** out = 2·x (out aliases both addends of add). */
export const DOUBLE_INPLACE = /* wgsl */ `${flatHeader}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let stride = nw.x * ${FLAT_WG}u;
  for (var i = g.x; i < p.n; i += stride) { out[p.off0 + i] = out[p.off0 + i] + out[p.off0 + i]; }
}`;

/**
 * First pass of a float64-accurate reduction: each workgroup writes the compensated sum of its
 * grid-strided elements to partial[workgroup] as (sum, compensation). `mode` 0: Σ x²; 1: Σ x·y;
 * 2: Σ y² while accumulating x += a·y (accumulateWithNorm: x is the accumulator, y the gradient).
 */
export const REDUCE_PARTIAL = /* wgsl */ `${flatHeader}
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<vec2f>;
var<workgroup> sums: array<vec2f, ${FLAT_WG}>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let mode = p.pad0;
  let stride = nw.x * ${FLAT_WG}u;
  var s = 0.0;
  var c = 0.0;
  for (var i = g.x; i < p.n; i += stride) {
    var t: f32;
    if (mode == 0u) {
      let v = x[p.off0 + i];
      t = v * v;
    } else if (mode == 1u) {
      t = x[p.off0 + i] * y[p.off1 + i];
    } else {
      let v = y[p.off1 + i];
      x[p.off0 + i] = x[p.off0 + i] + p.a * v;
      t = v * v;
    }
    // Kahan: c carries what s lost.
    let yk = t - c;
    let tk = s + yk;
    c = (tk - s) - yk;
    s = tk;
  }
  sums[l.x] = vec2f(s, -c);
  workgroupBarrier();
  // Pairwise tree over the workgroup; each node keeps (sum, error) with an error-free two-sum.
  for (var h = ${FLAT_WG / 2}u; h > 0u; h = h / 2u) {
    if (l.x < h) {
      let a = sums[l.x];
      let b = sums[l.x + h];
      let sum = a.x + b.x;
      let bb = sum - a.x;
      let err = (a.x - (sum - bb)) + (b.x - bb);
      sums[l.x] = vec2f(sum, err + a.y + b.y);
    }
    workgroupBarrier();
  }
  if (l.x == 0u) { partial[w.x] = sums[0]; }
}`;

/**
 * Second pass: one workgroup sums the partials (two-sum tree as above) and adds the total into the
 * double-float out[index] = (hi, lo) at word offset off0 (out[index] is words off0 + 2·index, +1).
 */
export const REDUCE_FINISH = /* wgsl */ `${flatHeader}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> partial: array<vec2f>;
var<workgroup> sums: array<vec2f, ${FLAT_WG}>;
fn twoSum(a: f32, b: f32) -> vec2f {
  let s = a + b;
  let bb = s - a;
  return vec2f(s, (a - (s - bb)) + (b - bb));
}
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(local_invocation_id) l: vec3u) {
  var acc = vec2f(0.0, 0.0);
  for (var i = l.x; i < p.n; i += ${FLAT_WG}u) {
    let q = partial[i];
    let t = twoSum(acc.x, q.x);
    acc = vec2f(t.x, t.y + acc.y + q.y);
  }
  sums[l.x] = acc;
  workgroupBarrier();
  for (var h = ${FLAT_WG / 2}u; h > 0u; h = h / 2u) {
    if (l.x < h) {
      let a = sums[l.x];
      let b = sums[l.x + h];
      let t = twoSum(a.x, b.x);
      sums[l.x] = vec2f(t.x, t.y + a.y + b.y);
    }
    workgroupBarrier();
  }
  if (l.x == 0u) {
    let total = sums[0];
    let hi = out[p.off0];
    let lo = out[p.off0 + 1u];
    let t = twoSum(hi, total.x);
    let e = t.y + lo + total.y;
    let s = t.x + e;
    out[p.off0] = s;
    out[p.off0 + 1u] = e - (s - t.x);
  }
}`;

/** Tile sizes of MATMUL: a workgroup computes TILE × TILE of C, each invocation 4 × 4, over K in steps of KT. */
export const MM_TILE = 64;
export const MM_KT = 16;

/**
 * C = alpha·op(A)·op(B) + beta·C, row-major, op = transpose when flagged. Tiled through workgroup
 * memory: 16 × 16 invocations, each accumulating a 4 × 4 block of C in registers over K tiles of 16.
 */
export const MATMUL = /* wgsl */ `
struct P { m: u32, n: u32, k: u32, transA: u32, transB: u32, offA: u32, offB: u32, offC: u32, alpha: f32, beta: f32, pad0: u32, pad1: u32 };
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
var<workgroup> As: array<array<f32, ${MM_TILE}>, ${MM_KT}>;
var<workgroup> Bs: array<array<f32, ${MM_TILE}>, ${MM_KT}>;

// op(A)[i, kk] and op(B)[kk, j], zero outside the matrix.
fn loadA(i: u32, kk: u32) -> f32 {
  if (i >= p.m || kk >= p.k) { return 0.0; }
  if (p.transA == 1u) { return a[p.offA + kk * p.m + i]; }
  return a[p.offA + i * p.k + kk];
}
fn loadB(kk: u32, j: u32) -> f32 {
  if (kk >= p.k || j >= p.n) { return 0.0; }
  if (p.transB == 1u) { return b[p.offB + j * p.k + kk]; }
  return b[p.offB + kk * p.n + j];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row0 = w.y * ${MM_TILE}u;
  let col0 = w.x * ${MM_TILE}u;
  let tid = l.y * 16u + l.x;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.k; k0 += ${MM_KT}u) {
    // 256 invocations load 16 × 64 elements of each operand: 4 each.
    for (var e = 0u; e < 4u; e++) {
      let idx = tid + e * 256u;
      let kk = idx / ${MM_TILE}u;
      let x = idx % ${MM_TILE}u;
      As[kk][x] = loadA(row0 + x, k0 + kk);
      Bs[kk][x] = loadB(k0 + kk, col0 + x);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${MM_KT}u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) { av[r] = As[kk][l.y * 4u + r]; }
      for (var s = 0u; s < 4u; s++) { bv[s] = Bs[kk][l.x * 4u + s]; }
      for (var r = 0u; r < 4u; r++) {
        for (var s = 0u; s < 4u; s++) { acc[r][s] = fma(av[r], bv[s], acc[r][s]); }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    let i = row0 + l.y * 4u + r;
    if (i >= p.m) { continue; }
    for (var s = 0u; s < 4u; s++) {
      let j = col0 + l.x * 4u + s;
      if (j >= p.n) { continue; }
      let at = p.offC + i * p.n + j;
      var v = p.alpha * acc[r][s];
      if (p.beta != 0.0) { v = v + p.beta * c[at]; }
      c[at] = v;
    }
  }
}`;

/**
 * Causal grouped-query attention of the webgpu backend: forward (flash-attention style, online
 * softmax), backward (three deterministic passes) and the decoding step with a KV cache.
 *
 * Layout (backend.ts): qkv rows are [q heads | k heads | v heads] of headDim columns, query head h
 * reads kv head h / (nHeads / nKvHeads); out rows are the H query heads; lse[(b·H + h)·T + i] is
 * the natural-log log-sum-exp of row i's scaled scores (max + log Σ exp(s − max)), as the ref.
 *
 * Tiling: TILE × TILE (16 × 16) invocations per workgroup, one score each. Tiles of 16 query rows
 * and 16 key rows are staged through workgroup memory, the head dimension whole up to CHUNK (64)
 * columns and in 64-column chunks beyond, so the workgroup memory stays within the 16 KiB WebGPU
 * guarantees whatever headDim is (no device limit is raised); each invocation keeps its output
 * columns (every TILE-th one of its row) in registers, which is what bounds headDim (MAX_HEAD_DIM).
 * Kernels are specialised per Variant (a power-of-two tile width), not per headDim, so that head
 * dimensions of one variant share a pipeline (shader compilation is what costs on lavapipe).
 *
 * - Forward: a workgroup per (query tile, head, sequence) walks the key tiles up to the diagonal
 *   with a running max and sum (float32), rescaling its output accumulators.
 * - Backward: D_i = dO_i·O_i (one pass), then dQ (a workgroup per query tile, over key tiles), then
 *   dK and dV (a workgroup per key tile of a kv head: over the query heads of its group, then the
 *   query tiles from the diagonal down, in that fixed order). No atomics; every sum has a fixed
 *   order, so the same inputs give bit-identical outputs.
 * - Decode: the new k and v are stored into the caches, the scores of each (sequence, head) are
 *   computed one per invocation, and a workgroup per (sequence, head) takes the max, the sum (a
 *   fixed tree) and the weighted sum of the cached values.
 */
import type { AttentionDims, DecodeDims, Tensor } from '../../backend.js';
import { BackendArgumentError } from '../../checks.js';
import { FLAT_WG, flatGroups, kernel, params, type GpuContext, type KernelSource } from './common.js';

/** Query rows and key rows per tile (a workgroup is TILE × TILE invocations). */
export const TILE = 16;
/** Largest head dimension: each invocation holds ceil(headDim / TILE) accumulators (two sets in dK/dV). */
export const MAX_HEAD_DIM = 256;
/** Head-dimension columns per tile: a head up to CHUNK columns is staged whole, a wider one in chunks. */
const CHUNK = 64;
const NT = TILE * TILE;
/** Threads of the decode reduction workgroup: DEC_COLS columns × DEC_PARTS interleaved key parts. */
const DEC_WG = 256;
const DEC_COLS = 64;
const DEC_PARTS = DEC_WG / DEC_COLS;

// ---- shapes and limits ------------------------------------------------------------------------

function fail(kernelName: string, message: string): never {
  throw new BackendArgumentError(kernelName, message);
}

function checkF32(kernelName: string, tensors: Record<string, Tensor>): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'f32') fail(kernelName, `${name} must be f32 on the webgpu backend, got ${t.dtype}`);
  }
}

function checkHeadDim(kernelName: string, headDim: number): void {
  if (headDim > MAX_HEAD_DIM) fail(kernelName, `headDim ${headDim} exceeds the webgpu attention kernels' maximum of ${MAX_HEAD_DIM} (MAX_HEAD_DIM: per-invocation accumulators)`);
}

function checkGroups(ctx: GpuContext, kernelName: string, groups: [number, number, number], what: [string, string, string]): void {
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  groups.forEach((g, i) => {
    if (g > max) fail(kernelName, `${what[i]} needs ${g} workgroups, more than this device's maxComputeWorkgroupsPerDimension of ${max}`);
  });
}

/** A tensor the kernels index with u32 element offsets. */
function checkIndexable(kernelName: string, tensors: Record<string, Tensor>): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (t.offset + t.size >= 2 ** 32) fail(kernelName, `${name} has ${t.size} elements at offset ${t.offset}: beyond the 2^32 elements a u32 index reaches`);
  }
}

/**
 * The kernel variant of a head dimension: tiles of DK head columns (a power of two, 16 to CHUNK),
 * the head in one tile up to CHUNK columns, in CHUNK-column chunks beyond; NPT accumulators per
 * invocation. headDim itself is a parameter, so head dimensions of one variant share a pipeline.
 */
interface Variant {
  dk: number;
  npt: number;
  chunked: boolean;
  name: string;
}

function variant(headDim: number): Variant {
  const pow2 = 2 ** Math.ceil(Math.log2(Math.max(headDim, 1)));
  const dk = Math.min(CHUNK, Math.max(TILE, pow2));
  const chunked = headDim > CHUNK;
  const npt = (chunked ? pow2 : dk) / TILE;
  return { dk, npt, chunked, name: `dk${dk}_npt${npt}` };
}

// ---- WGSL pieces ------------------------------------------------------------------------------

const PARAMS = /* wgsl */ `
struct P { T: u32, H: u32, Hkv: u32, group: u32, W: u32, hd: u32, nch: u32, scale: f32 };
@group(0) @binding(1) var<uniform> p: P;
`;

/**
 * Constants of a variant, and the layout of a TS × DK tile in workgroup memory: row-major with
 * each row rotated by its index (element (row, dd) at row·DK + (dd + row) mod DK), so that
 * invocations reading one column of different rows hit different banks, without padding (the
 * backward kernels use exactly the 16 KiB WebGPU guarantees at DK = 64).
 */
const constants = (v: Variant) => /* wgsl */ `
const TS = ${TILE}u;
const NT = ${NT}u;
const DK = ${v.dk}u;
const NPT = ${v.npt}u;
const NEG = -3.0e38;
fn sw(row: u32, dd: u32) -> u32 { return row * DK + ((dd + row) & (DK - 1u)); }
`;

/**
 * A function staging TS rows × DK columns (from column d0 of the head) of `src` into the workgroup
 * tile `dst`; rows at or beyond `rows` and columns beyond headDim read 0. `base` is the element of
 * row 0, column 0 of the head; `ld` the row stride of src.
 */
const loader = (name: string, dst: string, src: string) => /* wgsl */ `
fn ${name}(tid: u32, base: u32, ld: u32, row0: u32, rows: u32, d0: u32) {
  for (var e = tid; e < TS * DK; e += NT) {
    let rr = e / DK;
    let dd = e % DK;
    var v = 0.0;
    if (row0 + rr < rows && d0 + dd < p.hd) { v = ${src}[base + (row0 + rr) * ld + d0 + dd]; }
    ${dst}[sw(rr, dd)] = v;
  }
}`;

/** `body` once for a head in one tile (d0 = 0), or in a loop over the chunks (d0 = ch·DK). */
const perChunk = (v: Variant, body: string) => (v.chunked ? `for (var ch = 0u; ch < p.nch; ch++) {\n let d0 = ch * DK;\n${body}\n}` : `{\n let d0 = 0u;\n${body}\n}`);

/**
 * The accumulation phase: `body` for each accumulator k (head column d = lane + k·TS) with the tile
 * of the head's columns d0 .. d0 + DK that holds d staged by `load` (nothing to stage for a head in
 * one tile: the scores' phase left it there), then a barrier. A chunked head's accumulators are
 * indexed by the chunk (a runtime index: the body reads and writes each accumulator once per tile,
 * around its inner loop over the tile's rows).
 */
function accumulate(v: Variant, load: string, lane: string, body: string): string {
  if (!v.chunked) return `{\n let d0 = 0u;\n for (var k = 0u; k < NPT; k++) {\n let d = ${lane} + k * TS;\n${body}\n }\n workgroupBarrier();\n}`;
  const per = v.dk / TILE;
  return `for (var ch = 0u; ch < p.nch; ch++) {
 let d0 = ch * DK;
 ${load}
 workgroupBarrier();
 for (var kk = 0u; kk < ${per}u; kk++) {
 let k = ch * ${per}u + kk;
 let d = ${lane} + k * TS;
${body}
 }
 workgroupBarrier();
}`;
}

// ---- forward ----------------------------------------------------------------------------------

/**
 * Workgroup (query tile, head, sequence); invocation (c, r) = (local x, local y): query row r of
 * the tile, key c of each key tile, output columns c, c + TS, … of row r.
 */
function forwardKernel(v: Variant): KernelSource {
  return kernel(
    `attnFwd_${v.name}`,
    /* wgsl */ `
${PARAMS}
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read> qkv: array<f32>;
${constants(v)}
var<workgroup> Qs: array<f32, ${TILE * v.dk}>;
var<workgroup> Ks: array<f32, ${TILE * v.dk}>;
var<workgroup> Vs: array<f32, ${TILE * v.dk}>;
var<workgroup> Ss: array<f32, ${NT}>;
var<workgroup> Ps: array<f32, ${NT}>;
${loader('loadQ', 'Qs', 'qkv')}
${loader('loadK', 'Ks', 'qkv')}
${loader('loadV', 'Vs', 'qkv')}

@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let c = l.x;
  let r = l.y;
  let tid = r * TS + c;
  let i0 = w.x * TS;
  let h = w.y;
  let b = w.z;
  let kvh = h / p.group;
  let seq = o(2u) + b * p.T * p.W;
  let qBase = seq + h * p.hd;
  let kBase = seq + (p.H + kvh) * p.hd;
  let vBase = seq + (p.H + p.Hkv + kvh) * p.hd;
  let i = i0 + r;
  let iEnd = min(i0 + TS, p.T);
  let nkt = (iEnd + TS - 1u) / TS;
  var m = NEG;
  var sum = 0.0;
  var acc: array<f32, NPT>;
  ${v.chunked ? '' : 'loadQ(tid, qBase, p.W, i0, p.T, 0u);'}
  for (var kt = 0u; kt < nkt; kt++) {
    let j0 = kt * TS;
    // s = q_i · k_j.
    var s = 0.0;
    ${perChunk(
      v,
      `${v.chunked ? 'loadQ(tid, qBase, p.W, i0, p.T, d0);' : 'loadV(tid, vBase, p.W, j0, p.T, d0);'}
      loadK(tid, kBase, p.W, j0, p.T, d0);
      workgroupBarrier();
      for (var dd = 0u; dd < DK; dd++) { s = fma(Qs[sw(r, dd)], Ks[sw(c, dd)], s); }
      ${v.chunked ? 'workgroupBarrier();' : ''}`,
    )}
    let j = j0 + c;
    let valid = j <= i && j < p.T;
    s = select(NEG, s * p.scale, valid);
    Ss[tid] = s;
    workgroupBarrier();
    // Online softmax: the row's new max (every invocation of the row takes the same), rescale.
    var mt = NEG;
    for (var cc = 0u; cc < TS; cc++) { mt = max(mt, Ss[r * TS + cc]); }
    let mn = max(m, mt);
    let alpha = exp(m - mn);
    Ps[tid] = select(0.0, exp(s - mn), valid);
    workgroupBarrier();
    var ps = 0.0;
    for (var cc = 0u; cc < TS; cc++) { ps += Ps[r * TS + cc]; }
    sum = sum * alpha + ps;
    m = mn;
    // acc = alpha·acc + P · V.
    for (var k = 0u; k < NPT; k++) { acc[k] *= alpha; }
    ${accumulate(v, 'loadV(tid, vBase, p.W, j0, p.T, d0);', 'c', 'var a = acc[k];\nfor (var cc = 0u; cc < TS; cc++) { a = fma(Ps[r * TS + cc], Vs[sw(cc, d - d0)], a); }\nacc[k] = a;')}
  }
  if (i < p.T) {
    let ob = o(0u) + (b * p.T + i) * p.H * p.hd + h * p.hd;
    let inv = 1.0 / sum;
    for (var k = 0u; k < NPT; k++) {
      let d = c + k * TS;
      if (d < p.hd) { out[ob + d] = acc[k] * inv; }
    }
    if (c == 0u) { lse[o(1u) + (b * p.H + h) * p.T + i] = m + log(sum); }
  }
}`,
  );
}

// ---- backward ---------------------------------------------------------------------------------

/** D[(b·H + h)·T + i] = dOut_i · out_i over the head's columns (one invocation per row, in order). */
const ROW_DOT = kernel(
  'attnRowDot',
  /* wgsl */ `
struct P { n: u32, T: u32, H: u32, hd: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> D: array<f32>;
@group(0) @binding(3) var<storage, read> dOut: array<f32>;
@group(0) @binding(4) var<storage, read> out: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var idx = g.x; idx < p.n; idx += nw.x * ${FLAT_WG}u) {
    let i = idx % p.T;
    let bh = idx / p.T;
    let h = bh % p.H;
    let b = bh / p.H;
    let at = (b * p.T + i) * p.H * p.hd + h * p.hd;
    var s = 0.0;
    for (var d = 0u; d < p.hd; d++) { s = fma(dOut[o(1u) + at + d], out[o(2u) + at + d], s); }
    D[o(0u) + idx] = s;
  }
}`,
);

/** The backward kernels' bindings and tiles (the last two double as the score tiles). */
const backwardDecls = (v: Variant) => /* wgsl */ `
${PARAMS}
@group(0) @binding(2) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(3) var<storage, read> qkv: array<f32>;
@group(0) @binding(4) var<storage, read> dOut: array<f32>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> Dv: array<f32>;
${constants(v)}
var<workgroup> Qs: array<f32, ${TILE * v.dk}>;
var<workgroup> dOs: array<f32, ${TILE * v.dk}>;
var<workgroup> Ks: array<f32, ${TILE * v.dk}>;
var<workgroup> Vs: array<f32, ${TILE * v.dk}>;
${loader('loadQ', 'Qs', 'qkv')}
${loader('loadDO', 'dOs', 'dOut')}
${loader('loadK', 'Ks', 'qkv')}
${loader('loadV', 'Vs', 'qkv')}
`;

/**
 * dQ: workgroup (query tile, head, sequence); invocation (c, r): query row r, key c of each key
 * tile, dQ columns c, c + TS, … of row r. dQ_i = Σ_j dS_ij k_j over the key tiles in order; the
 * tile of dS lives in Vs once dP is taken.
 */
function dqKernel(v: Variant): KernelSource {
  return kernel(
    `attnBwdDq_${v.name}`,
    /* wgsl */ `
${backwardDecls(v)}
@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let c = l.x;
  let r = l.y;
  let tid = r * TS + c;
  let i0 = w.x * TS;
  let h = w.y;
  let b = w.z;
  let kvh = h / p.group;
  let seq = o(1u) + b * p.T * p.W;
  let qBase = seq + h * p.hd;
  let kBase = seq + (p.H + kvh) * p.hd;
  let vBase = seq + (p.H + p.Hkv + kvh) * p.hd;
  let ldo = p.H * p.hd;
  let doBase = o(2u) + b * p.T * ldo + h * p.hd;
  let i = i0 + r;
  var li = 0.0;
  var Di = 0.0;
  if (i < p.T) {
    li = lse[o(3u) + (b * p.H + h) * p.T + i];
    Di = Dv[o(4u) + (b * p.H + h) * p.T + i];
  }
  let iEnd = min(i0 + TS, p.T);
  let nkt = (iEnd + TS - 1u) / TS;
  var dq: array<f32, NPT>;
  ${v.chunked ? '' : 'loadQ(tid, qBase, p.W, i0, p.T, 0u);\n  loadDO(tid, doBase, ldo, i0, p.T, 0u);'}
  for (var kt = 0u; kt < nkt; kt++) {
    let j0 = kt * TS;
    var s = 0.0;
    var dp = 0.0;
    ${perChunk(
      v,
      `${v.chunked ? 'loadQ(tid, qBase, p.W, i0, p.T, d0);\nloadDO(tid, doBase, ldo, i0, p.T, d0);' : ''}
      loadK(tid, kBase, p.W, j0, p.T, d0);
      loadV(tid, vBase, p.W, j0, p.T, d0);
      workgroupBarrier();
      for (var dd = 0u; dd < DK; dd++) {
        s = fma(Qs[sw(r, dd)], Ks[sw(c, dd)], s);
        dp = fma(dOs[sw(r, dd)], Vs[sw(c, dd)], dp);
      }
      workgroupBarrier();`,
    )}
    let j = j0 + c;
    let valid = j <= i && j < p.T && i < p.T;
    let pv = select(0.0, exp(s * p.scale - li), valid);
    Vs[tid] = pv * (dp - Di) * p.scale;
    workgroupBarrier();
    // dq += dS · K.
    ${accumulate(v, 'loadK(tid, kBase, p.W, j0, p.T, d0);', 'c', 'var a = dq[k];\nfor (var cc = 0u; cc < TS; cc++) { a = fma(Vs[r * TS + cc], Ks[sw(cc, d - d0)], a); }\ndq[k] = a;')}
  }
  if (i < p.T) {
    let at = o(0u) + (b * p.T + i) * p.W + h * p.hd;
    for (var k = 0u; k < NPT; k++) {
      let d = c + k * TS;
      if (d < p.hd) { dqkv[at + d] = dq[k]; }
    }
  }
}`,
  );
}

/**
 * dK and dV: workgroup (key tile, kv head, sequence); invocation (r, c) = (local x, local y): key
 * row c of the tile, query r of each query tile, dK and dV columns r, r + TS, … of key c.
 * dK_j = Σ_h Σ_i dS_ij q_i and dV_j = Σ_h Σ_i P_ij dO_i, the query heads of the group in order,
 * then the query tiles from the diagonal on, then the rows of a tile. The tiles of P and dS live
 * in Ks and Vs once the scores are taken (K and V are staged again for each query tile).
 */
function dkvKernel(v: Variant): KernelSource {
  return kernel(
    `attnBwdDkv_${v.name}`,
    /* wgsl */ `
${backwardDecls(v)}
@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let r = l.x;
  let c = l.y;
  let tid = c * TS + r;
  let kt = w.x;
  let j0 = kt * TS;
  let kvh = w.y;
  let b = w.z;
  let seq = o(1u) + b * p.T * p.W;
  let kBase = seq + (p.H + kvh) * p.hd;
  let vBase = seq + (p.H + p.Hkv + kvh) * p.hd;
  let ldo = p.H * p.hd;
  let j = j0 + c;
  let nqt = (p.T + TS - 1u) / TS;
  var dk: array<f32, NPT>;
  var dv: array<f32, NPT>;
  for (var g = 0u; g < p.group; g++) {
    let h = kvh * p.group + g;
    let qBase = seq + h * p.hd;
    let doBase = o(2u) + b * p.T * ldo + h * p.hd;
    let rowStat = (b * p.H + h) * p.T;
    // Query tiles before the key tile's diagonal see none of its keys.
    for (var qt = kt; qt < nqt; qt++) {
      let i0 = qt * TS;
      var s = 0.0;
      var dp = 0.0;
      ${perChunk(
        v,
        `loadK(tid, kBase, p.W, j0, p.T, d0);
        loadV(tid, vBase, p.W, j0, p.T, d0);
        loadQ(tid, qBase, p.W, i0, p.T, d0);
        loadDO(tid, doBase, ldo, i0, p.T, d0);
        workgroupBarrier();
        for (var dd = 0u; dd < DK; dd++) {
          s = fma(Qs[sw(r, dd)], Ks[sw(c, dd)], s);
          dp = fma(dOs[sw(r, dd)], Vs[sw(c, dd)], dp);
        }
        workgroupBarrier();`,
      )}
      let i = i0 + r;
      var pv = 0.0;
      var ds = 0.0;
      if (j <= i && i < p.T) {
        pv = exp(s * p.scale - lse[o(3u) + rowStat + i]);
        ds = pv * (dp - Dv[o(4u) + rowStat + i]) * p.scale;
      }
      Ks[tid] = pv;
      Vs[tid] = ds;
      workgroupBarrier();
      // dv += Pᵀ · dO and dk += dSᵀ · Q.
      ${accumulate(
        v,
        'loadQ(tid, qBase, p.W, i0, p.T, d0);\nloadDO(tid, doBase, ldo, i0, p.T, d0);',
        'r',
        `var a = dv[k];
        var e = dk[k];
        for (var rr = 0u; rr < TS; rr++) {
          a = fma(Ks[c * TS + rr], dOs[sw(rr, d - d0)], a);
          e = fma(Vs[c * TS + rr], Qs[sw(rr, d - d0)], e);
        }
        dv[k] = a;
        dk[k] = e;`,
      )}
    }
  }
  if (j < p.T) {
    let row = o(0u) + (b * p.T + j) * p.W;
    let kc = row + (p.H + kvh) * p.hd;
    let vc = row + (p.H + p.Hkv + kvh) * p.hd;
    for (var k = 0u; k < NPT; k++) {
      let d = r + k * TS;
      if (d < p.hd) {
        dqkv[kc + d] = dk[k];
        dqkv[vc + d] = dv[k];
      }
    }
  }
}`,
  );
}

// ---- decode -----------------------------------------------------------------------------------

/** cache[(b·S + pos)·kvW + c] = qkv[b·W + col + c]: the new token's k (or v) into its cache. */
const DEC_STORE = kernel(
  'attnDecStore',
  /* wgsl */ `
struct P { n: u32, kvW: u32, S: u32, pos: u32, W: u32, col: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> cache: array<f32>;
@group(0) @binding(3) var<storage, read> qkv: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var idx = g.x; idx < p.n; idx += nw.x * ${FLAT_WG}u) {
    let b = idx / p.kvW;
    let c = idx % p.kvW;
    cache[o(0u) + (b * p.S + p.pos) * p.kvW + c] = qkv[o(1u) + b * p.W + p.col + c];
  }
}`,
);

const DEC_PARAMS = /* wgsl */ `
struct P { n: u32, L: u32, S: u32, H: u32, Hkv: u32, hd: u32, group: u32, W: u32, scale: f32 };
@group(0) @binding(1) var<uniform> p: P;
`;

/** scores[(b·H + h)·L + j] = q_bh · k_j · scale for j < L = pos + 1 (one invocation per score). */
const DEC_SCORES = kernel(
  'attnDecScores',
  /* wgsl */ `
${DEC_PARAMS}
@group(0) @binding(2) var<storage, read_write> scores: array<f32>;
@group(0) @binding(3) var<storage, read> qkv: array<f32>;
@group(0) @binding(4) var<storage, read> kCache: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let kvW = p.Hkv * p.hd;
  for (var idx = g.x; idx < p.n; idx += nw.x * ${FLAT_WG}u) {
    let j = idx % p.L;
    let bh = idx / p.L;
    let h = bh % p.H;
    let b = bh / p.H;
    let q = o(1u) + b * p.W + h * p.hd;
    let k = o(2u) + (b * p.S + j) * kvW + (h / p.group) * p.hd;
    var s = 0.0;
    for (var d = 0u; d < p.hd; d++) { s = fma(qkv[q + d], kCache[k + d], s); }
    scores[o(0u) + idx] = s * p.scale;
  }
}`,
);

/**
 * Workgroup (head, sequence): max and sum of exp over the row's scores (fixed reduction tree), then
 * out[d] = Σ_j exp(s_j − max)·v_j[d] / sum by DEC_COLS columns × DEC_PARTS interleaved key parts.
 */
const DEC_OUT = kernel(
  'attnDecOut',
  /* wgsl */ `
${DEC_PARAMS}
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> scores: array<f32>;
@group(0) @binding(4) var<storage, read> vCache: array<f32>;
var<workgroup> red: array<f32, ${DEC_WG}>;
@compute @workgroup_size(${DEC_WG})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let t = l.x;
  let h = w.x;
  let b = w.y;
  let row = o(1u) + (b * p.H + h) * p.L;
  var m = -3.0e38;
  for (var j = t; j < p.L; j += ${DEC_WG}u) { m = max(m, scores[row + j]); }
  red[t] = m;
  workgroupBarrier();
  for (var k = ${DEC_WG / 2}u; k > 0u; k = k / 2u) {
    if (t < k) { red[t] = max(red[t], red[t + k]); }
    workgroupBarrier();
  }
  m = red[0];
  workgroupBarrier();
  var s = 0.0;
  for (var j = t; j < p.L; j += ${DEC_WG}u) { s += exp(scores[row + j] - m); }
  red[t] = s;
  workgroupBarrier();
  for (var k = ${DEC_WG / 2}u; k > 0u; k = k / 2u) {
    if (t < k) { red[t] = red[t] + red[t + k]; }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  workgroupBarrier();
  let kvW = p.Hkv * p.hd;
  let vb = o(2u) + b * p.S * kvW + (h / p.group) * p.hd;
  let dc = t % ${DEC_COLS}u;
  let part = t / ${DEC_COLS}u;
  for (var d0 = 0u; d0 < p.hd; d0 += ${DEC_COLS}u) {
    let d = d0 + dc;
    var a = 0.0;
    if (d < p.hd) {
      for (var j = part; j < p.L; j += ${DEC_PARTS}u) { a = fma(exp(scores[row + j] - m), vCache[vb + j * kvW + d], a); }
    }
    red[t] = a;
    workgroupBarrier();
    if (part == 0u && d < p.hd) {
      var total = red[dc];
      for (var q = 1u; q < ${DEC_PARTS}u; q++) { total += red[q * ${DEC_COLS}u + dc]; }
      out[o(0u) + (b * p.H + h) * p.hd + d] = total * inv;
    }
    workgroupBarrier();
  }
}`,
);

/** Copies src into dst (same size, different allocations). */
const COPY = kernel(
  'attnCopy',
  /* wgsl */ `
struct P { n: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = g.x; i < p.n; i += nw.x * ${FLAT_WG}u) { dst[o(0u) + i] = src[o(1u) + i]; }
}`,
);

// ---- entry points -----------------------------------------------------------------------------

const kernelCache = new Map<string, KernelSource>();
function cached(name: string, make: () => KernelSource): KernelSource {
  let k = kernelCache.get(name);
  if (!k) kernelCache.set(name, (k = make()));
  return k;
}

function attentionParams(d: AttentionDims, v: Variant): ArrayBuffer {
  const W = (d.nHeads + 2 * d.nKvHeads) * d.headDim;
  const nch = Math.ceil(d.headDim / v.dk);
  return params(['u', d.seqLen], ['u', d.nHeads], ['u', d.nKvHeads], ['u', d.nHeads / d.nKvHeads], ['u', W], ['u', d.headDim], ['u', nch], ['f', 1 / Math.sqrt(d.headDim)]);
}

/**
 * out (N × H·hd) = causal softmax(q·kᵀ/√hd)·v and lse (batch·H·seqLen), float32 with an online
 * softmax. Shapes are checked by the backend (checks.checkAttention); this checks the limits of
 * the kernels: f32 tensors, headDim ≤ MAX_HEAD_DIM, workgroup counts within the device's limits.
 */
export function attentionForward(ctx: GpuContext, out: Tensor, lse: Tensor, qkv: Tensor, dims: AttentionDims): void {
  const K = 'attentionForward';
  checkF32(K, { out, lse, qkv });
  checkHeadDim(K, dims.headDim);
  checkIndexable(K, { out, lse, qkv });
  const groups: [number, number, number] = [Math.ceil(dims.seqLen / TILE), dims.nHeads, dims.batch];
  checkGroups(ctx, K, groups, [`seqLen ${dims.seqLen} (tiles of ${TILE})`, `nHeads ${dims.nHeads}`, `batch ${dims.batch}`]);
  const v = variant(dims.headDim);
  const k = cached(`fwd_${v.name}`, () => forwardKernel(v));
  // Two written tensors may not share an allocation: then lse goes through a temporary.
  const lseOut = lse.buffer === out.buffer ? ctx.alloc([lse.size]) : lse;
  ctx.dispatch(k, attentionParams(dims, v), [{ t: out, write: true }, { t: lseOut, write: true }, { t: qkv }], groups);
  if (lseOut !== lse) {
    ctx.dispatch(COPY, params(['u', lse.size]), [{ t: lse, write: true }, { t: lseOut }], flatGroups(ctx, lse.size));
    ctx.free(lseOut);
  }
}

/**
 * dqkv (overwritten, every element) from dOut, using the forward's out and lse: D = rowwise
 * dOut·out, then the dQ pass over query tiles, then the dK/dV pass over key tiles.
 */
export function attentionBackward(ctx: GpuContext, dqkv: Tensor, dOut: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, dims: AttentionDims): void {
  const K = 'attentionBackward';
  checkF32(K, { dqkv, dOut, qkv, out, lse });
  checkHeadDim(K, dims.headDim);
  checkIndexable(K, { dqkv, dOut, qkv, out, lse });
  const tiles = Math.ceil(dims.seqLen / TILE);
  const gq: [number, number, number] = [tiles, dims.nHeads, dims.batch];
  const gkv: [number, number, number] = [tiles, dims.nKvHeads, dims.batch];
  checkGroups(ctx, K, gq, [`seqLen ${dims.seqLen} (tiles of ${TILE})`, `nHeads ${dims.nHeads}`, `batch ${dims.batch}`]);
  const rows = dims.batch * dims.nHeads * dims.seqLen;
  const D = ctx.alloc([rows]);
  ctx.dispatch(ROW_DOT, params(['u', rows], ['u', dims.seqLen], ['u', dims.nHeads], ['u', dims.headDim]), [{ t: D, write: true }, { t: dOut }, { t: out }], flatGroups(ctx, rows));
  const v = variant(dims.headDim);
  const p = attentionParams(dims, v);
  const bindings = [{ t: dqkv, write: true }, { t: qkv }, { t: dOut }, { t: lse }, { t: D }];
  ctx.dispatch(cached(`dq_${v.name}`, () => dqKernel(v)), p, bindings, gq);
  ctx.dispatch(cached(`dkv_${v.name}`, () => dkvKernel(v)), p, bindings, gkv);
  ctx.free(D);
}

/**
 * One decoding step (Backend.attentionDecode): the new token's k and v (in qkv, batch × W) go into
 * kCache and vCache (batch × maxSeqLen × Hkv·hd) at `pos`, and out (batch × H·hd) attends over
 * positions 0..pos of the caches.
 */
export function attentionDecode(ctx: GpuContext, out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, pos: number, dims: DecodeDims): void {
  const K = 'attentionDecode';
  checkF32(K, { out, qkv, kCache, vCache });
  checkIndexable(K, { out, qkv, kCache, vCache });
  const { batch, maxSeqLen: S, nHeads: H, nKvHeads: Hkv, headDim: hd } = dims;
  if (pos < 0 || pos >= S) fail(K, `pos ${pos} is outside the cache (maxSeqLen ${S})`);
  checkGroups(ctx, K, [H, batch, 1], [`nHeads ${H}`, `batch ${batch}`, '']);
  const W = (H + 2 * Hkv) * hd;
  const kvW = Hkv * hd;
  // k and v in two dispatches, so that the caches may be views of one allocation.
  const n = batch * kvW;
  ctx.dispatch(DEC_STORE, params(['u', n], ['u', kvW], ['u', S], ['u', pos], ['u', W], ['u', H * hd]), [{ t: kCache, write: true }, { t: qkv }], flatGroups(ctx, n));
  ctx.dispatch(DEC_STORE, params(['u', n], ['u', kvW], ['u', S], ['u', pos], ['u', W], ['u', (H + Hkv) * hd]), [{ t: vCache, write: true }, { t: qkv }], flatGroups(ctx, n));
  const L = pos + 1;
  const nScores = batch * H * L;
  const scores = ctx.alloc([nScores]);
  const dp = (count: number) => params(['u', count], ['u', L], ['u', S], ['u', H], ['u', Hkv], ['u', hd], ['u', H / Hkv], ['u', W], ['f', 1 / Math.sqrt(hd)]);
  ctx.dispatch(DEC_SCORES, dp(nScores), [{ t: scores, write: true }, { t: qkv }, { t: kCache }], flatGroups(ctx, nScores));
  ctx.dispatch(DEC_OUT, dp(nScores), [{ t: out, write: true }, { t: scores }, { t: vCache }], [H, batch]);
  ctx.free(scores);
}

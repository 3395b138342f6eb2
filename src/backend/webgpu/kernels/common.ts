/**
 * What every webgpu kernel module shares: how a kernel is dispatched (GpuContext, implemented by the
 * backend), the WGSL prologue of the binding convention (protocol.ts), and small helpers.
 *
 * Convention: binding 0 holds each tensor's element offset inside its binding (`o(i)` for tensor i),
 * binding 1 the kernel's parameters `p` (a `struct P` the kernel declares), tensors from binding 2.
 * float64 tensors (statistics) are pairs of float32 (hi, lo): element i is words 2i and 2i + 1.
 * Offsets count float32 words, except for f16 tensors, whose offsets count f16 elements.
 */
import type { DType, Tensor } from '../../backend.js';

/** A kernel's WGSL and the name its pipeline is cached under. */
export interface KernelSource {
  readonly name: string;
  readonly code: string;
}

export interface GpuBinding {
  t: Tensor;
  /** The kernel writes this tensor (read_write); otherwise it is bound read-only. */
  write?: boolean;
}

/** What a kernel module needs from the backend. */
export interface GpuContext {
  /** Records one dispatch of `kernel` with `params` (a uniform block) over `groups` workgroups. */
  dispatch(kernel: KernelSource, params: ArrayBuffer, bindings: GpuBinding[], groups: [number, number?, number?]): void;
  /** A temporary tensor (free it with `free` once the dispatches that use it are recorded). */
  alloc(shape: readonly number[], dtype?: DType): Tensor;
  free(t: Tensor): void;
  /** The device's limits the kernels size themselves by. */
  readonly limits: { maxComputeWorkgroupsPerDimension: number };
}

/** The WGSL prologue: the offsets block and its accessor. */
export const PROLOGUE = /* wgsl */ `
@group(0) @binding(0) var<uniform> off: array<vec4u, 4>;
fn o(i: u32) -> u32 { return off[i / 4u][i % 4u]; }
`;

/** A kernel; `f16` kernels declare `array<f16>` tensors (the device's shader-f16 feature). */
export function kernel(name: string, code: string, opts: { f16?: boolean } = {}): KernelSource {
  // `enable` must precede every declaration.
  return { name, code: (opts.f16 ? 'enable f16;\n' : '') + PROLOGUE + code };
}

/** A parameter block: u32 and f32 fields in order (4 bytes each). */
export function params(...fields: Array<['u', number] | ['f', number]>): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((4 * fields.length) / 16) * 16));
  const dv = new DataView(buf);
  fields.forEach(([kind, v], i) => (kind === 'u' ? dv.setUint32(4 * i, v, true) : dv.setFloat32(4 * i, v, true)));
  return buf;
}

/** Workgroup size of the flat (one element per invocation, grid-strided) kernels. */
export const FLAT_WG = 256;

/**
 * WGSL: the entry point of a flat kernel, opening its grid-strided loop over element `i` < `p.n`
 * (the kernel's body follows and closes the loop and the function).
 */
export const FLAT_LOOP = `@compute @workgroup_size(${FLAT_WG})
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = g.x; i < p.n; i += nw.x * ${FLAT_WG}u) {`;

/** Workgroups for a flat kernel over n elements (grid-strided beyond the dispatch limit). */
export function flatGroups(ctx: GpuContext, n: number): [number] {
  return [Math.max(1, Math.min(ctx.limits.maxComputeWorkgroupsPerDimension, Math.ceil(n / FLAT_WG)))];
}

/**
 * Invocations per workgroup of the row kernels (a workgroup per row, reducing over it). 64, not 256:
 * a row of 128–4096 elements keeps 64 invocations busy, and every level of a tree sum is a barrier
 * for all of them. Measured on lavapipe (2026-12-05): RMSNorm over 512 × 128, 25 ms at 256 → 6–8 ms.
 */
export const ROW_WG = 64;

/** Workgroups for a row kernel: one per row, grid-strided beyond the dispatch limit. */
export function rowGroups(ctx: GpuContext, rows: number): [number] {
  return [Math.max(1, Math.min(ctx.limits.maxComputeWorkgroupsPerDimension, rows))];
}

/** WGSL: error-free two-sum, and adding a (sum, error) pair into a double-float slot of `arr`. */
export const DOUBLE_FLOAT = /* wgsl */ `
fn twoSum(a: f32, b: f32) -> vec2f {
  let s = a + b;
  let bb = s - a;
  return vec2f(s, (a - (s - bb)) + (b - bb));
}
// (hi, lo) + (s, e) renormalised.
fn ddAdd(hi: f32, lo: f32, s: f32, e: f32) -> vec2f {
  let t = twoSum(hi, s);
  let err = t.y + lo + e;
  let sum = t.x + err;
  return vec2f(sum, err - (sum - t.x));
}
`;

/**
 * WGSL (with DOUBLE_FLOAT) for workgroups of `size` invocations: `acc2` adds a term into a
 * (sum, error) pair, `blockSum` sums pairs over the workgroup with a two-sum tree in a fixed order.
 * Called in uniform control flow; every invocation gets the result, and `red` (which kernels may
 * reuse, e.g. for a max) is free again when they return.
 */
export const workgroupSum = (size: number): string => /* wgsl */ `
${DOUBLE_FLOAT}
var<workgroup> red: array<vec2f, ${size}>;
// (sum, error) + v, error-free in the sum.
fn acc2(a: vec2f, v: f32) -> vec2f {
  let t = twoSum(a.x, v);
  return vec2f(t.x, a.y + t.y);
}
fn blockSum(l: u32, v: vec2f) -> vec2f {
  red[l] = v;
  workgroupBarrier();
  for (var h = ${size / 2}u; h > 0u; h = h / 2u) {
    if (l < h) {
      let a = red[l];
      let b = red[l + h];
      let t = twoSum(a.x, b.x);
      red[l] = vec2f(t.x, t.y + a.y + b.y);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;

/** workgroupSum for the flat kernels' FLAT_WG invocations. */
export const WORKGROUP_SUM = workgroupSum(FLAT_WG);

/**
 * The N-API addon (native/): loading it (native/build/Release/adabatch.node, or the AddressSanitizer
 * Debug build when ADABATCH_NATIVE_BUILD=Debug) and the shape of its interface. Two layers use it and
 * neither reaches through the other: the cpu backend (a Context: memory and kernels) and the process
 * groups (a Communicator: collectives). Both address memory in the addon's process-global buffer
 * registry: a region crosses the boundary as four numbers (buffer id, offset, size, dtype code), and
 * the addon re-validates all of them.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's element types by name (the Backend's DType names) and code. */
export const DTYPE_CODE = { f32: 0, f64: 1, i32: 2, bf16: 3 } as const;

type N = number;
type Kernel = (...args: Array<number | boolean>) => void;
/** Context methods take tensors as (buffer, offset, size, dtype) quadruples followed by scalars. */
export interface NativeContext {
  setThreads(n: N): void;
  getThreads(): number;
  setSpin(micros: N): void;
  liveBytes(): number;
  peakBytes(): number;
  resetPeak(): void;
  scratchBytes(): number;
  releaseScratch(): void;
  dispose(): void;
  ownerId(): number;
  alloc(size: N, dtype: N): number;
  free(...t: N[]): void;
  /** bf16 tensors travel as their bit patterns (Uint16Array). */
  upload(b: N, o: N, s: N, d: N, data: Float32Array | Float64Array | Int32Array | Uint16Array): void;
  download(b: N, o: N, s: N, d: N): Float32Array | Float64Array | Int32Array | Uint16Array;
  copy: Kernel;
  convert: Kernel;
  fill: Kernel;
  scale: Kernel;
  axpy: Kernel;
  add: Kernel;
  sumSquares: Kernel;
  dot: Kernel;
  accumulateWithNorm: Kernel;
  clipByGlobalNorm: Kernel;
  adamw: Kernel;
  adagrad: Kernel;
  lambDirection: Kernel;
  muonMomentum: Kernel;
  embeddingForward: Kernel;
  embeddingBackward: Kernel;
  rmsnormForward: Kernel;
  rmsnormBackward: Kernel;
  matmul: Kernel;
  rope: Kernel;
  attentionForward: Kernel;
  attentionBackward: Kernel;
  attentionDecode: Kernel;
  swigluForward: Kernel;
  swigluBackward: Kernel;
  headLoss: Kernel;
}

type Quad = [number, number, number, number];
export type ReduceOp = 'sum' | 'avg';
export type CollectiveName = 'allReduce' | 'reduceScatter' | 'allGather' | 'broadcast' | 'barrier' | 'allReduceScalars';
/** Per collective: calls, seconds from start to completion on the rank (waiting for peers included), bytes of this rank's buffers. */
export type CollectiveStats = Record<CollectiveName, { count: number; seconds: number; bytes: number }>;

/** One rank's native communicator: collectives on registry regions, run in call order on its own thread. */
export interface NativeCommunicator {
  rank(): number;
  size(): number;
  localSize(): number;
  pending(): number;
  allReduce(...args: [...Quad, ReduceOp]): Promise<void>;
  reduceScatter(...args: [...Quad, ...Quad, ReduceOp]): Promise<void>;
  allGather(...args: [...Quad, ...Quad]): Promise<void>;
  broadcast(...args: [...Quad, number]): Promise<void>;
  barrier(): Promise<void>;
  allReduceScalars(values: Float64Array, op: ReduceOp): Promise<Float64Array>;
  abort(reason: string): void;
  close(): Promise<void>;
  stats(): CollectiveStats;
  resetStats(): void;
}

export interface NativeAddon {
  Context: new (threads: number) => NativeContext;
  Communicator: new (kind: 'threads' | 'mpi', group: number, rank: number, timeoutSeconds: number) => NativeCommunicator;
  threadGroupCreate(size: number): number;
  threadGroupAbort(group: number, reason: string): boolean;
  threadGroupRelease(group: number): void;
  mpi: { compiled: boolean; version: string };
  liveBufferCount(): number;
  bufferIsLive(id: number): boolean;
  /** The GEMM library (oneDNN), the ISA it dispatches to, its matmul implementations, and which vector paths our own kernels use. */
  gemmConfig(): GemmConfig;
  /**
   * Peak GFLOP/s of one core, measured on the calling thread (blocks it for about 6 × seconds): a
   * dependency-free loop of f32 FMAs (zmm with AVX-512F, else ymm) and of bf16 vdpbf16ps zmm
   * (null without AVX512_BF16).
   */
  peakProbe(seconds: number): { f32Gflops: number; bf16Gflops: number | null; f32Isa: 'avx512' | 'avx2' };
}

export interface GemmConfig {
  /** e.g. "oneDNN 2.6.3". */
  library: string;
  /** The instruction set oneDNN dispatches to, e.g. "avx512_core_bf16" (lowered by ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA). */
  isa: string;
  /** oneDNN's implementation of an f32 matmul, e.g. "brg:avx512_core". */
  f32Impl: string;
  /** The same for bf16 inputs; "" when the CPU has no bf16 instructions. */
  bf16Impl: string;
  /** Whether bf16 GEMMs run on native bf16 instructions (AVX512_BF16 or AMX). */
  bf16: boolean;
  /** Which vector paths our own kernels use (ADABATCH_NO_AVX512=1 forces avx2). */
  kernels: 'avx512' | 'avx2';
}

export class NativeAddonMissingError extends Error {
  constructor(path: string, cause?: unknown) {
    super(
      `adabatch's native addon is not available at ${path}` +
        (cause instanceof Error && !/Cannot find module/.test(cause.message) ? ` (${cause.message})` : '') +
        `: run \`npm run build:native\`` +
        (process.env.ADABATCH_NATIVE_BUILD === 'Debug' ? ' (or `npm run test:asan`, which builds the Debug/AddressSanitizer addon)' : ''),
    );
    this.name = 'NativeAddonMissingError';
  }
}

/** The repository root: the nearest ancestor of this module holding native/binding.gyp. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'native', 'binding.gyp'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    dir = parent;
  }
}

/** native/build/Release/adabatch.node, the Debug build with ADABATCH_NATIVE_BUILD=Debug, or ADABATCH_NATIVE_ADDON. */
export function nativeAddonPath(): string {
  if (process.env.ADABATCH_NATIVE_ADDON) return process.env.ADABATCH_NATIVE_ADDON;
  const build = process.env.ADABATCH_NATIVE_BUILD === 'Debug' ? 'Debug' : 'Release';
  return join(packageRoot(), 'native', 'build', build, 'adabatch.node');
}

let cached: NativeAddon | null = null;

export function loadNativeAddon(): NativeAddon {
  if (cached) return cached;
  const path = nativeAddonPath();
  if (!existsSync(path)) throw new NativeAddonMissingError(path);
  if (process.env.ADABATCH_NATIVE_BUILD === 'Debug' && !/libasan/.test(process.env.LD_PRELOAD ?? '')) {
    // Loading an AddressSanitizer library into an uninstrumented node aborts the process.
    throw new Error(`the Debug addon (${path}) is built with AddressSanitizer: run node with LD_PRELOAD=$(gcc -print-file-name=libasan.so), as \`npm run test:asan\` does`);
  }
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw new NativeAddonMissingError(path, e);
  }
  return cached;
}

/** True when the addon is built (for tests that skip without it). */
export function nativeAddonAvailable(): boolean {
  try {
    loadNativeAddon();
    return true;
  } catch {
    return false;
  }
}

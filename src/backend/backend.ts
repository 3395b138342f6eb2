/**
 * The Backend interface: the small set of kernels the whole framework computes with.
 *
 * Tensors are opaque handles into backend-owned memory (host RAM for `ref` and `cpu`, device memory
 * for a future GPU backend). Host code never reads tensor memory directly: it uploads and downloads
 * explicitly. Kernels may run asynchronously; `synchronize()` waits for all queued work, and
 * `download()` is itself a synchronization point.
 *
 * Conventions shared by every kernel:
 * - Activations are row-major (rows = tokens, N = batch × seq). Weight matrices use the Hugging Face
 *   layout (out_features, in_features), so a linear layer is y = x · Wᵀ.
 * - Kernels that produce weight gradients ACCUMULATE into them (dW += …): callers zero gradient
 *   buffers once per micro-step. Kernels that produce activation gradients overwrite, unless an
 *   `accumulate` flag says otherwise.
 * - Scalar results (losses, sums of squares) are written into float64 tensors, so reading them is an
 *   explicit download.
 */

import type { ReduceOp } from '../addon/addon.js';

export type { ReduceOp } from '../addon/addon.js';

/**
 * bf16 (bfloat16) and f16 (IEEE half) hold GEMM inputs under mixed precision; their host form is
 * float32 values (see upload/download).
 */
export type DType = 'f32' | 'f64' | 'i32' | LowpDType;

/** The 16-bit dtypes of mixed precision (`precision: bf16 | f16`). */
export type LowpDType = 'bf16' | 'f16';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f64: 8, i32: 4, bf16: 2, f16: 2 };

/** An opaque handle: a typed, shaped window into one backend allocation. */
export interface Tensor {
  /** Name of the backend that owns the memory; mixing backends is an error. */
  readonly backend: string;
  /** Id of the underlying allocation (opaque). */
  readonly buffer: number;
  /** Offset into the allocation, in elements of `dtype`. */
  readonly offset: number;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Number of elements (product of shape). */
  readonly size: number;
}

export type HostArray = Float32Array | Float64Array | Int32Array;

/** Shape parameters of the attention kernels (the fused qkv row layout is [q heads | k heads | v heads]). */
export interface AttentionDims {
  batch: number;
  seqLen: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

/** Shape parameters of attentionDecode. */
export interface DecodeDims {
  batch: number;
  maxSeqLen: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based optimizer step, for bias correction. */
  step: number;
}

/** AdaGrad (torch.optim.Adagrad) on one range; lr is the step's rate after lr_decay. */
export interface AdagradParams {
  lr: number;
  eps: number;
  /** L2 penalty added to the gradient (torch's weight_decay). */
  weightDecay: number;
}

/** LAMB's direction (Adam moments with bias correction plus decoupled decay); no learning rate. */
export interface LambParams {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based optimizer step, for bias correction. */
  step: number;
}

/** Muon's momentum (KellerJordan/Muon: an EMA of the gradient, Nesterov look-ahead by default). */
export interface MuonMomentumParams {
  beta: number;
  nesterov: boolean;
}

export interface Backend {
  readonly name: string;
  /**
   * How process groups reach this backend's tensors (CollectiveAccess below): in place in the native
   * registry, through the backend's own collectives, or (absent) staged through host memory.
   */
  readonly collectives?: CollectiveAccess;

  // ---- memory -------------------------------------------------------------------------------
  /** Allocates a zero-filled tensor. */
  alloc(shape: readonly number[], dtype?: DType): Tensor;
  /** Frees an allocation; `t` must be the tensor returned by alloc (not a view). */
  free(t: Tensor): void;
  /** A view of `size(shape)` elements starting `offset` elements into `t`. */
  view(t: Tensor, offset: number, shape: readonly number[]): Tensor;
  /** Bytes currently allocated and not freed. */
  liveBytes(): number;
  /** High-water mark of liveBytes since creation (or the last resetPeak). */
  peakBytes(): number;
  resetPeak(): void;
  /** Copies host numbers into the tensor (rounded to the nearest bf16 or f16 for such a tensor). */
  upload(t: Tensor, data: ArrayLike<number>): void;
  /** Copies the tensor to a new host array (a synchronization point); a bf16 or f16 tensor comes back as float32 values. */
  download(t: Tensor): HostArray;
  copy(dst: Tensor, src: Tensor): void;
  fill(t: Tensor, value: number): void;
  /** Waits until all queued kernels have finished. */
  synchronize(): void;
  /**
   * The largest tensor, in bytes, one kernel can address (a GPU's storage binding limit); absent when
   * only memory limits it. The trainer refuses, before allocating, a model or micro batch with a
   * larger tensor.
   */
  maxTensorBytes?(): number;
  /**
   * Releases the backend's threads, device and memory (optional: backends without any omit it); the
   * backend cannot be used afterwards. Whoever created the backend calls it when done.
   */
  dispose?(): void;
  /** Number of kernel threads (1 = single-threaded). Backends without threads ignore it. */
  setThreads(n: number): void;
  getThreads(): number;

  // ---- elementwise and reductions -------------------------------------------------------------
  /** x *= alpha */
  scale(x: Tensor, alpha: number): void;
  /** y += alpha · x */
  axpy(y: Tensor, alpha: number, x: Tensor): void;
  /** out = a + b (out may alias a or b) */
  add(out: Tensor, a: Tensor, b: Tensor): void;
  /** out[index] += Σ x², accumulated in float64. `out` is a float64 tensor. */
  sumSquares(x: Tensor, out: Tensor, index: number): void;
  /** out[index] += Σ a·b, accumulated in float64. */
  dot(a: Tensor, b: Tensor, out: Tensor, index: number): void;
  /**
   * Gradient accumulation with its statistic, in one pass: acc += alpha · g and
   * out[index] += Σ g² (float64). This is how a micro-step's squared gradient norm is taken as the
   * gradient is added into the accumulator, without a second pass over memory.
   */
  accumulateWithNorm(acc: Tensor, alpha: number, g: Tensor, out: Tensor, index: number): void;
  /**
   * Global-norm clipping without a host round trip: x *= min(1, maxNorm / (sqrt(sqNorm[index]) + 1e-6)),
   * where sqNorm is a float64 tensor holding the squared global norm (as torch.nn.utils.clip_grad_norm_).
   */
  clipByGlobalNorm(x: Tensor, sqNorm: Tensor, index: number, maxNorm: number): void;

  // ---- layers -------------------------------------------------------------------------------
  /** out[n, :] = table[tokens[n], :] */
  embeddingForward(out: Tensor, table: Tensor, tokens: Tensor): void;
  /** dTable[tokens[n], :] += dOut[n, :] */
  embeddingBackward(dTable: Tensor, dOut: Tensor, tokens: Tensor): void;

  /** out = x / rms(x) · w, rowwise over the last dimension; rstd[n] = 1/sqrt(mean(x²)+eps) is cached. */
  rmsnormForward(out: Tensor, rstd: Tensor, x: Tensor, w: Tensor, eps: number): void;
  /** dx (= or += when accumulate) and dw += from dOut. */
  rmsnormBackward(dx: Tensor, dw: Tensor, dOut: Tensor, x: Tensor, w: Tensor, rstd: Tensor, accumulate: boolean): void;

  /**
   * dst = scale · src converted between f32 and a 16-bit dtype (rounded to nearest even into bf16 or
   * f16, f16 overflowing to ±∞; exact back into f32). `scale` (default 1) is a power of two, so the
   * scaling itself is exact: it moves small values (f16's gradients) into the 16-bit range, and a
   * GEMM reading them undoes it through its alpha. Only for a dtype supportsLowPrecision allows.
   */
  convert(dst: Tensor, src: Tensor, scale?: number): void;
  /** Whether tensors of `dtype` and GEMMs on them run here at full speed, and if not, why. */
  supportsLowPrecision(dtype: LowpDType): { supported: boolean; detail: string };
  /** What computes here, for the start-up log (e.g. the GEMM library, the ISA it chose, its implementations). */
  describeKernels(): string;

  /**
   * c = alpha · op(a) · op(b) + beta · c with op = transpose when requested; all 2-D, row-major.
   * a and b have c's dtype, or (c f32) are both bf16 or both f16: 16-bit inputs, float32 accumulation
   * and output.
   */
  matmul(c: Tensor, a: Tensor, b: Tensor, transA: boolean, transB: boolean, alpha?: number, beta?: number): void;

  /**
   * Rotary position embedding in place, Hugging Face "rotate-half" layout: the first `nHeads` heads of
   * `headDim` columns in each row of x (N × rowWidth) are rotated by the angle of the row's position
   * (row mod seqLen). cos/sin are (seqLen × headDim/2) tables. `inverse` applies the transpose
   * (the backward pass).
   */
  rope(x: Tensor, cos: Tensor, sin: Tensor, seqLen: number, nHeads: number, headDim: number, inverse: boolean): void;

  /**
   * Causal self-attention with grouped-query heads on a fused qkv tensor (N × (H + 2·Hkv)·hd):
   * out (N × H·hd) = softmax(q·kᵀ/√hd + causal mask)·v; lse (batch·H·seqLen) caches each row's
   * log-sum-exp for the backward pass.
   */
  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, dims: AttentionDims): void;
  /** dqkv (overwritten) from dOut, using the cached out and lse. */
  attentionBackward(dqkv: Tensor, dOut: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, dims: AttentionDims): void;

  /**
   * One decoding step with a KV cache (generation). qkv (batch × (H + 2·Hkv)·hd) holds the new token
   * of each sequence, at position `pos`, already rotated. Its k and v are written into the caches
   * (batch × maxSeqLen × Hkv·hd) at `pos`, and out (batch × H·hd) attends over positions 0..pos.
   */
  attentionDecode(out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, pos: number, dims: DecodeDims): void;

  /** h (N × F) = silu(gate) · up, with gu (N × 2F) = [gate | up] per row. */
  swigluForward(h: Tensor, gu: Tensor): void;
  /** dgu (N × 2F, overwritten) from dh. */
  swigluBackward(dgu: Tensor, dh: Tensor, gu: Tensor): void;

  /**
   * Final RMSNorm + LM head + softmax cross-entropy, fused and processed in chunks of tokens so the
   * full N × vocab logits are never held. Targets < 0 are ignored.
   * Writes lossOut[lossIndex] += Σ loss over counted tokens and lossOut[lossIndex+1] += their count.
   * When grads are given, it also computes the gradient of (gradScale · Σ loss):
   * dx (overwritten), dNormW += and dHeadW +=.
   */
  headLoss(args: HeadLossArgs): void;

  /** Decoupled-weight-decay Adam (AdamW, as torch.optim.AdamW) on one contiguous range. */
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: AdamWParams): void;

  /**
   * AdaGrad as torch.optim.Adagrad on one range: g' = g + wd·param; sum += g'²;
   * param -= lr·g'/(√sum + eps).
   */
  adagrad(param: Tensor, grad: Tensor, sum: Tensor, p: AdagradParams): void;

  /**
   * LAMB's first half on one range: m, v updated as Adam's, and grad overwritten with the direction
   * u = m̂/(√v̂ + eps) + wd·param (the caller takes the trust ratio from ‖param‖ and ‖u‖, then
   * param -= lr·ratio·u with axpy).
   */
  lambDirection(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: LambParams): void;

  /**
   * Muon's momentum on one range: buf ← buf + (1−β)(grad − buf), and grad overwritten with the
   * update to orthogonalise: grad + β(buf − grad) (Nesterov) or buf.
   */
  muonMomentum(grad: Tensor, buf: Tensor, p: MuonMomentumParams): void;
}

export interface HeadLossArgs {
  x: Tensor;
  normW: Tensor;
  headW: Tensor;
  targets: Tensor;
  eps: number;
  lossOut: Tensor;
  lossIndex: number;
  grads?: {
    dx: Tensor;
    dNormW: Tensor;
    dHeadW: Tensor;
    gradScale: number;
  };
  /** Tokens per chunk (bounds the chunk × vocab scratch); backend default when omitted. */
  chunkTokens?: number;
  /**
   * precision bf16 (only): headW rounded to bf16 (same shape). The three head GEMMs then read bf16 operands
   * (headWLowp, the normalised x and the logit gradients rounded as they are made) with f32
   * accumulation; the norm, softmax, loss and all gradients stay f32.
   */
  headWLowp?: Tensor;
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function tensorBytes(t: Tensor): number {
  return t.size * DTYPE_BYTES[t.dtype];
}

// ---------------------------------------------------------------------------------------------
/**
 * Collectives: how process groups (src/parallel/) move a backend's tensors between ranks. The
 * parallel layer reads only this; a new backend chooses one of three paths and needs no change there:
 *
 * - `{ kind: 'registry' }`: the backend's tensors are allocations of the native addon's
 *   process-global buffer registry (Tensor.buffer is the registry id; offset and size in elements),
 *   so the native communicator reduces, gathers and scatters them in place, without a copy. The cpu
 *   backend.
 * - `{ kind: 'own', connect }`: the backend performs the collectives itself on its own memory (device
 *   collectives such as NCCL). `connect` is called once per process group with the rank's place and
 *   the group's scalar channel (to exchange set-up ids), and returns the tensor collectives.
 * - no `collectives` at all: the process group stages every collective through registry buffers of
 *   its own (download, communicate, upload). Correct for any backend, at the cost of two host copies
 *   per collective; the ref backend uses it.
 */
/** The tensor collectives of a process group (each rank calls the same ones in the same order). */
export interface TensorCollectives {
  /** In place: t = op over ranks of t. */
  allReduce(t: Tensor, op: ReduceOp): Promise<void>;
  /** out (1/size of input, this rank's shard) = op over ranks of input's shard. */
  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp): Promise<void>;
  /** out (size × shard) = concatenation over ranks of `shard`. */
  allGather(out: Tensor, shard: Tensor): Promise<void>;
  broadcast(t: Tensor, root: number): Promise<void>;
}

/** What a backend with its own collectives is told when a process group binds it. */
export interface CollectivePeers {
  readonly rank: number;
  readonly size: number;
  /** Float64 values summed over ranks (the group's scalar channel; e.g. to share a set-up id from rank 0). */
  allReduceScalars(values: Float64Array): Promise<Float64Array>;
}

export type CollectiveAccess = { kind: 'registry' } | { kind: 'own'; connect(peers: CollectivePeers): Promise<TensorCollectives> };

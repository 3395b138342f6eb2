/**
 * GPU memory on the webgpu backend. WebGPU does not report how much memory a device has, and
 * Dawn's Node bindings expose none of Dawn's own memory queries (docs/gpu.md). So:
 * - an allocation the device refuses (out of memory, or beyond maxBufferSize) fails with a message
 *   naming the allocation, what is already live and what to lower (allocationFailure, used by the
 *   GPU worker);
 * - a user who knows the GPU's memory states it in ADABATCH_WEBGPU_MEMORY_GIB, and the trainer
 *   refuses up front a run whose estimate does not fit (train/device-memory-check.ts).
 */
import { formatBytes } from '../../util/format.js';

export const MEMORY_VARIABLE = 'ADABATCH_WEBGPU_MEMORY_GIB';

/**
 * ADABATCH_WEBGPU_MEMORY_GIB in bytes: the memory of each GPU, in GiB (a positive number, e.g. 80
 * or 23.6); null when unset or empty. Anything else is refused, naming the variable.
 */
export function deviceMemoryFromEnv(env: NodeJS.ProcessEnv = process.env): number | null {
  const v = env[MEMORY_VARIABLE];
  if (v === undefined || v.trim() === '') return null;
  const gib = /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(v) ? Number(v) : NaN;
  if (!(gib > 0) || !Number.isFinite(gib)) throw new Error(`${MEMORY_VARIABLE} must be the memory of one GPU in GiB, a positive number such as 80 or 23.6; got '${v}'`);
  return Math.floor(gib * 2 ** 30);
}

export interface AllocationFailure {
  /** Which error scope caught it. */
  kind: 'out-of-memory' | 'validation';
  /** The tensor's bytes. */
  bytes: number;
  /** Bytes and count of the tensors already live on the device. */
  liveBytes: number;
  liveTensors: number;
  maxBufferSize: number;
  /** Dawn's message. */
  detail: string;
}

const ADVICE = 'lower batch.max_micro (the global batch is reached by accumulation), set recompute: true, use parallel.strategy: fsdp over more ranks, or train a smaller model';

/** The message of an allocation the device refused. */
export function allocationFailure(f: AllocationFailure): string {
  const what = `a tensor of ${formatBytes(f.bytes)} (${f.bytes} bytes)`;
  const live = `${formatBytes(f.liveBytes)} in ${f.liveTensors} tensor(s) already live on the device`;
  if (f.kind === 'validation' && f.bytes > f.maxBufferSize) {
    return `cannot allocate ${what}: it exceeds this device's maxBufferSize of ${formatBytes(f.maxBufferSize)} (${f.maxBufferSize} bytes; ${live}); the model or micro batch does not fit this GPU: ${ADVICE}`;
  }
  if (f.kind === 'validation') return `cannot allocate ${what} (${live}): ${f.detail}`;
  return `out of GPU memory allocating ${what} with ${live}: the model or micro batch does not fit this GPU; ${ADVICE}. Set ${MEMORY_VARIABLE} to the GPU's memory to have such a run refused before it starts (docs/gpu.md)`;
}

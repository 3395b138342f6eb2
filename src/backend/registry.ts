/**
 * Backend selection by name. `cpu` (the native addon) is the default; `ref` is the plain
 * TypeScript oracle; `webgpu` runs on a GPU through WebGPU (docs/gpu.md).
 */
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu/index.js';
import { RefBackend } from './ref/index.js';
import type { AdapterPlacement } from './webgpu/adapter.js';
import { WebGpuBackend } from './webgpu/index.js';

export type BackendName = 'cpu' | 'ref' | 'webgpu';

export const BACKEND_NAMES: readonly BackendName[] = ['cpu', 'ref', 'webgpu'];

export interface BackendOptions {
  /** Kernel threads (cpu only; ref is single-threaded). */
  threads?: number;
  /** This rank's place on its machine (webgpu: which GPU it opens by default; docs/gpu.md). */
  placement?: AdapterPlacement;
}

/**
 * Creates a backend. The cpu backend needs the native addon: when it is not built this throws an
 * error telling the user to run `npm run build:native`.
 */
export function createBackend(name: BackendName = 'cpu', opts: BackendOptions = {}): Backend {
  switch (name) {
    case 'cpu':
      return new CpuBackend(opts.threads !== undefined ? { threads: opts.threads } : {});
    case 'ref':
      return new RefBackend();
    case 'webgpu':
      return new WebGpuBackend(opts.placement ? { placement: opts.placement } : {});
    default:
      throw new Error(`unknown backend '${String(name)}' (known backends: ${BACKEND_NAMES.join(', ')})`);
  }
}

/**
 * Per-kernel wall-time accounting for a backend instance. Enabling it shadows the instance's kernel
 * methods with timing wrappers; disabling removes them, so a backend that is not being profiled
 * runs its plain prototype methods (zero cost). Kernels run synchronously on the cpu backend, so
 * the wall time of a call is the kernel's time including argument checks and the native call.
 */
import type { Tensor } from '../backend.js';

export interface KernelTime {
  /** Kernel name; matmul entries carry their shape, e.g. `matmul 2048×768×256 NT`. */
  kernel: string;
  calls: number;
  totalMs: number;
}

/** The Backend methods that are timed. */
export const PROFILED_METHODS = [
  'upload',
  'download',
  'copy',
  'fill',
  'scale',
  'axpy',
  'add',
  'sumSquares',
  'dot',
  'accumulateWithNorm',
  'clipByGlobalNorm',
  'embeddingForward',
  'embeddingBackward',
  'rmsnormForward',
  'rmsnormBackward',
  'matmul',
  'rope',
  'attentionForward',
  'attentionBackward',
  'attentionDecode',
  'swigluForward',
  'swigluBackward',
  'headLoss',
  'adamw',
  'adagrad',
  'lambDirection',
  'muonMomentum',
] as const;

type Method = (...args: unknown[]) => unknown;

function matmulKey(args: unknown[]): string {
  const [c, a, , transA, transB] = args as [Tensor, Tensor, Tensor, boolean, boolean];
  const k = transA ? a.shape[0] : a.shape[1];
  return `matmul ${c.shape[0]}×${c.shape[1]}×${k} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
}

export class KernelProfiler {
  private readonly times = new Map<string, { calls: number; ns: bigint }>();
  private installed: object | null = null;

  /** Shadows the kernel methods of `target` with timing wrappers. */
  install(target: object): void {
    if (this.installed) return;
    const proto = Object.getPrototypeOf(target) as Record<string, Method>;
    for (const name of PROFILED_METHODS) {
      const original = proto[name]!;
      const record = (key: string, t0: bigint): void => {
        const e = this.times.get(key) ?? { calls: 0, ns: 0n };
        e.calls++;
        e.ns += process.hrtime.bigint() - t0;
        this.times.set(key, e);
      };
      Object.defineProperty(target, name, {
        configurable: true,
        writable: true,
        value: function (this: unknown, ...args: unknown[]) {
          const t0 = process.hrtime.bigint();
          try {
            return original.apply(this, args);
          } finally {
            record(name === 'matmul' ? matmulKey(args) : name, t0);
          }
        },
      });
    }
    this.installed = target;
  }

  /** Restores the plain methods. */
  uninstall(): void {
    if (!this.installed) return;
    for (const name of PROFILED_METHODS) delete (this.installed as Record<string, unknown>)[name];
    this.installed = null;
  }

  get active(): boolean {
    return this.installed !== null;
  }

  reset(): void {
    this.times.clear();
  }

  /** Accumulated times, largest first. */
  report(): KernelTime[] {
    return [...this.times.entries()].map(([kernel, e]) => ({ kernel, calls: e.calls, totalMs: Number(e.ns) / 1e6 })).sort((a, b) => b.totalMs - a.totalMs);
  }
}

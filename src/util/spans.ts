/**
 * Named time spans: run a piece of work and add its seconds to a named total. One helper for the
 * training step's accounting (compute, statistics, evaluation, the loop's own overhead), so the
 * step's algorithm is not interleaved with clock arithmetic.
 */
export type Clock = () => number;

export const secondsClock: Clock = () => performance.now() / 1000;

export class Spans<K extends string> {
  readonly seconds: Record<K, number>;

  constructor(
    names: readonly K[],
    private readonly clock: Clock = secondsClock,
  ) {
    this.seconds = Object.fromEntries(names.map((n) => [n, 0])) as Record<K, number>;
  }

  /** Runs `work` and adds its duration to `name`. */
  time<T>(name: K, work: () => T): T {
    const t0 = this.clock();
    try {
      return work();
    } finally {
      this.seconds[name] += this.clock() - t0;
    }
  }

  /** Awaits `work` and adds its duration to `name`. */
  async timeAsync<T>(name: K, work: () => Promise<T>): Promise<T> {
    const t0 = this.clock();
    try {
      return await work();
    } finally {
      this.seconds[name] += this.clock() - t0;
    }
  }

  reset(): void {
    for (const k of Object.keys(this.seconds) as K[]) this.seconds[k] = 0;
  }
}

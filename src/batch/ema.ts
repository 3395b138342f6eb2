/**
 * Exponential moving averages of a fixed number of quantities, with Adam-style bias correction:
 *     a_k = β·a_{k−1} + (1−β)·x_k,  a_0 = 0,   â_k = a_k / (1 − β^k),
 * so â_1 = x_1 and â_k is a weighted mean of x_1..x_k with weights ∝ β^(k−i). β = 0 is no smoothing.
 * Numerator and denominator of a ratio are smoothed separately and divided afterwards.
 */
export interface EmaState {
  beta: number;
  /** Number of updates k. */
  count: number;
  /** The uncorrected accumulators a_k. */
  values: number[];
}

export class Ema {
  private count = 0;
  private values: number[];

  constructor(
    readonly beta: number,
    readonly size: number,
  ) {
    if (!(beta >= 0 && beta < 1)) throw new Error(`EMA beta must be in [0, 1), got ${beta}`);
    this.values = new Array<number>(size).fill(0);
  }

  get updates(): number {
    return this.count;
  }

  update(x: readonly number[]): void {
    if (x.length !== this.size) throw new Error(`EMA expects ${this.size} values, got ${x.length}`);
    this.count++;
    for (let i = 0; i < this.size; i++) this.values[i] = this.beta * this.values[i]! + (1 - this.beta) * x[i]!;
  }

  /** Bias-corrected averages â_k; null before the first update. */
  value(): number[] | null {
    if (this.count === 0) return null;
    const c = 1 - this.beta ** this.count;
    return this.values.map((v) => v / c);
  }

  state(): EmaState {
    return { beta: this.beta, count: this.count, values: [...this.values] };
  }

  restore(s: unknown, who: string): void {
    const st = s as Partial<EmaState> | null;
    if (
      st === null ||
      typeof st !== 'object' ||
      typeof st.count !== 'number' ||
      !Number.isInteger(st.count) ||
      st.count < 0 ||
      !Array.isArray(st.values) ||
      st.values.length !== this.size ||
      !st.values.every((v) => typeof v === 'number' && Number.isFinite(v))
    ) {
      throw new Error(`${who}: malformed EMA state in checkpoint: ${JSON.stringify(s)}`);
    }
    if (st.beta !== this.beta) throw new Error(`${who}: checkpoint EMA has beta ${String(st.beta)}, config has ${this.beta}`);
    this.count = st.count;
    this.values = [...st.values];
  }
}

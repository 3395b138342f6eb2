/**
 * A learnable synthetic token stream for smoke tests and demos without a corpus: a fixed set of
 * random "phrases" (token sequences) repeated in random order. Within a phrase every next token is
 * determined, so a working model's loss falls well below ln(vocab). Random access by sample index,
 * like the corpus sampler, so batch sizes may change freely between steps.
 */
import { Rng } from '../util/rng.js';

export interface SyntheticConfig {
  vocab: number;
  phrases: number;
  phrase_len: number;
  seed: number;
}

export class SyntheticStream {
  private readonly table: Int32Array[];
  readonly windowsPerEpoch = Number.MAX_SAFE_INTEGER;

  constructor(
    readonly seqLen: number,
    readonly config: SyntheticConfig,
    /** Offset into the sample space, so a validation stream never overlaps training samples. */
    private readonly base = 0,
  ) {
    const rng = Rng.derive(config.seed, 'phrases');
    this.table = Array.from({ length: config.phrases }, () => Int32Array.from({ length: config.phrase_len }, () => rng.int(config.vocab)));
  }

  /** count windows of seqLen+1 tokens for samples [start, start+count). */
  windows(start: number, count: number): Int32Array {
    const w = this.seqLen + 1;
    const out = new Int32Array(count * w);
    for (let k = 0; k < count; k++) {
      const rng = Rng.derive(this.config.seed, 'window', this.base + start + k);
      let filled = 0;
      // Start mid-phrase so windows do not always begin on a phrase boundary.
      let phrase = this.table[rng.int(this.table.length)]!;
      let pos = rng.int(phrase.length);
      while (filled < w) {
        out[k * w + filled++] = phrase[pos++]!;
        if (pos === phrase.length) {
          phrase = this.table[rng.int(this.table.length)]!;
          pos = 0;
        }
      }
    }
    return out;
  }

  cursorAt(sample: number): { epoch: number; position: number } {
    return { epoch: 0, position: sample };
  }
}

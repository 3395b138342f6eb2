/**
 * The step's one scalar reduction, shared by every engine: each rank contributes the same named
 * parts, packed in one fixed order into a float64 vector and summed across ranks, and the sums are
 * unpacked by name. The control flags (stop, checkpoint due) ride at the end.
 */
import type { ProcessGroup } from './group.js';
import type { StatRequest, StepScalars } from './engine.js';

/** One rank's contribution; every field is summed over ranks. */
export interface RankScalars {
  /** Σ loss and token count of this rank's micro-steps. */
  lossSum: number;
  tokens: number;
  /** Σ_t ‖g_{j,t}‖² over this rank's micro-step gradients. */
  microSqNormSum: number;
  /** ‖g_j‖² of this rank's accumulated gradient (0 when not measured). */
  localSqNorm: number;
  /** ⟨g_j, ḡ⟩ and its square (0 when not measured). */
  dot: number;
  dotSq: number;
  /** This rank's share of ‖ḡ‖²: a shard's squared norm (FSDP), or 0 where every rank holds all of ḡ. */
  globalSqNormShare: number;
}

const FIELDS = ['lossSum', 'tokens', 'microSqNormSum', 'localSqNorm', 'dot', 'dotSq', 'globalSqNormShare'] as const satisfies ReadonlyArray<keyof RankScalars>;

/** Sums every rank's parts and flags in one float64 all-reduce. */
export async function reduceRankScalars(group: ProcessGroup, part: RankScalars, flags: readonly number[]): Promise<{ sums: RankScalars; flags: number[] }> {
  const packed = Float64Array.from([...FIELDS.map((k) => part[k]), ...flags]);
  const r = await group.allReduceScalars(packed, 'sum');
  const sums = Object.fromEntries(FIELDS.map((k, i) => [k, r[i]!])) as unknown as RankScalars;
  return { sums, flags: Array.from(r.subarray(FIELDS.length)) };
}

/** The step's scalars from the reduced sums; a step is finite when every measured sum is. */
export function stepScalars(req: StatRequest, reduced: { sums: RankScalars; flags: number[] }, globalSqNorm: number, statsSeconds: number): StepScalars {
  const s = reduced.sums;
  return {
    lossSum: s.lossSum,
    tokens: s.tokens,
    microSqNormSum: s.microSqNormSum,
    localSqNormSum: req.localNorms ? s.localSqNorm : null,
    globalSqNorm,
    dotSum: req.innerProducts ? s.dot : null,
    dotSqSum: req.innerProducts ? s.dotSq : null,
    finite: [s.lossSum, s.microSqNormSum, s.localSqNorm, s.dot, globalSqNorm].every(Number.isFinite),
    statsSeconds,
    flags: reduced.flags,
    collected: null,
  };
}

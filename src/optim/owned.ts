/**
 * Where an optimizer's slice of each unit lies: the whole unit (a replica) or this rank's FSDP shard
 * [offset, offset + size), and how the unit's parameter tensors and weight-decay ranges intersect it,
 * in owned-range coordinates. Every optimizer walks units through these helpers, so none of them
 * knows whether it runs sharded.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelLayout, ParamView, UnitLayout } from '../model/layout.js';

/** The part of a unit this optimizer owns: the whole unit, or a shard [offset, offset + size). */
export interface UnitRange {
  offset: number;
  size: number;
}

/** A contiguous piece of one parameter tensor inside the owned range. */
export interface OwnedSlice {
  view: ParamView;
  /** [lo, hi) in owned-range coordinates (indexes the rank's param/grad/state shard). */
  lo: number;
  hi: number;
  /** Where lo falls inside the whole tensor (indexes a gathered copy of it). */
  inView: number;
}

export function ownedRange(layout: ModelLayout, ranges: readonly UnitRange[] | undefined, unit: number): UnitRange {
  return ranges?.[unit] ?? { offset: 0, size: layout.units[unit]!.size };
}

/** Elements each unit's state buffer needs: the owned size. */
export function ownedSizes(layout: ModelLayout, ranges: readonly UnitRange[] | undefined): number[] {
  return layout.units.map((u) => ownedRange(layout, ranges, u.index).size);
}

/** [start, end) of the unit intersected with the owned range, in owned coordinates (null if empty). */
export function intersect(start: number, end: number, own: UnitRange): [number, number] | null {
  const lo = Math.max(start, own.offset) - own.offset;
  const hi = Math.min(end, own.offset + own.size) - own.offset;
  return hi > lo ? [lo, hi] : null;
}

/** The owned pieces of the unit's parameter tensors, in layout order. */
export function ownedSlices(unit: UnitLayout, own: UnitRange): OwnedSlice[] {
  const out: OwnedSlice[] = [];
  for (const view of unit.views) {
    const r = intersect(view.offset, view.offset + view.size, own);
    if (r) out.push({ view, lo: r[0], hi: r[1], inView: r[0] + own.offset - view.offset });
  }
  return out;
}

/**
 * The owned pieces of the unit's decayed and undecayed ranges (merged runs of adjacent tensors, so
 * elementwise optimizers make few calls), each with its weight decay.
 */
export function ownedDecayRuns(unit: UnitLayout, own: UnitRange, weightDecay: number, decayNorms: boolean): Array<{ lo: number; hi: number; wd: number }> {
  const out: Array<{ lo: number; hi: number; wd: number }> = [];
  const groups: Array<[Array<[number, number]>, number]> = [
    [unit.decayRanges, weightDecay],
    [unit.noDecayRanges, decayNorms ? weightDecay : 0],
  ];
  for (const [ranges, wd] of groups) {
    for (const [start, end] of ranges) {
      const r = intersect(start, end, own);
      if (r) out.push({ lo: r[0], hi: r[1], wd });
    }
  }
  return out;
}

/** The [lo, hi) piece of an owned-range buffer (a parameter, gradient or state shard). */
export function piece(backend: Backend, t: Tensor, r: { lo: number; hi: number }): Tensor {
  return backend.view(t, r.lo, [r.hi - r.lo]);
}

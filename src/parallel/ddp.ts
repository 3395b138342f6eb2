/**
 * What DDP needs beyond the engine's per-step all-reduce (replica-engine.ts):
 * - every rank runs the same configuration (checked once: a hash of the resolved config crosses the
 *   ranks in one scalar reduction), and names the run directory after rank 0's clock;
 * - replicas start identical: seeded initialisation and checkpoint loading are deterministic, and
 *   rank 0's parameters (and AdamW moments on resume) are broadcast anyway, so a rank that read a
 *   different file, or none, cannot drift silently;
 * - a sensible kernel thread count per rank (ranks on one machine share its cores).
 * From then on ranks stay bit-identical: the reduced gradient is the same bits everywhere (the
 * groups sum each element once, in rank order), and clipping, the non-finite skip and the batch
 * decision are computed from the same reduced scalars.
 */
import { availableParallelism, cpus } from 'node:os';
import type { UnitBuffers } from '../model/params.js';
import { UserError } from '../util/errors.js';
import type { ProcessGroup } from './group.js';

/** 20-bit FNV-1a hash of a string (20 bits: Σh² over thousands of ranks stays exact in float64). */
export function hash20(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h ^ (h >>> 20)) & 0xfffff;
}

/**
 * Checks that every rank got the same configuration and returns rank 0's clock (to name a default
 * run directory identically on every rank). One small scalar reduction: Σh and Σh² over ranks have
 * zero variance exactly when every hash is equal.
 */
export async function agreeOnRun(group: Pick<ProcessGroup, 'rank' | 'size' | 'allReduceScalars'>, config: unknown): Promise<Date> {
  if (group.size === 1) return new Date();
  const h = hash20(JSON.stringify(config));
  const r = await group.allReduceScalars(Float64Array.of(group.rank === 0 ? Date.now() : 0, h, h * h), 'sum');
  const J = group.size;
  if (r[2]! * J !== r[1]! * r[1]!) {
    throw new UserError(`the ${J} ranks were started with different training configurations (config hashes differ; this rank's is ${h.toString(16)}): give every rank the same config file and --set overrides`);
  }
  return new Date(r[0]!);
}

/** Makes every rank's buffers equal to rank 0's (one broadcast per unit). */
export async function broadcastUnits(group: ProcessGroup, buffers: UnitBuffers): Promise<void> {
  if (group.size === 1) return;
  for (const t of buffers.units) await group.broadcast(t, 0);
}

/**
 * The default kernel threads of one rank: all usable cores for one rank; one per rank for thread
 * ranks (they share the process); for MPI ranks, the cores the launcher bound this rank to, or, when
 * it did not bind it (affinity covers the whole machine), the machine's cores shared by its ranks.
 */
export function defaultKernelThreads(group: Pick<ProcessGroup, 'kind' | 'size' | 'localSize'> | null, cores = availableParallelism(), machineCores = cpus().length): number {
  if (!group || group.size === 1) return cores;
  if (group.kind === 'threads') return 1;
  if (cores < machineCores) return cores;
  return Math.max(1, Math.floor(cores / Math.max(1, group.localSize)));
}

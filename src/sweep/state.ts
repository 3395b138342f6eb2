/**
 * Where a sweep's run stands, from its directory alone (no state file to go stale):
 *
 *   missing    no metrics.jsonl (and no checkpoint): start it
 *   finished   the last metrics row reached the budget and a checkpoint of that very step exists
 *              (or the config asks for none at the end): skip it
 *   resume     steps done and a checkpoint to continue from: `train --resume` (the trainer drops the
 *              metrics rows past the checkpoint and continues exactly)
 *   restart    rows but nothing to resume from (killed before its first checkpoint): move the
 *              directory aside and start again
 *
 * Checkpoints are listed by their manifests here (cheap); the resuming trainer verifies every hash and
 * falls back to an older checkpoint if the newest is damaged.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints } from '../io/checkpoint.js';
import { readMetrics, type MetricsRow } from '../io/metrics.js';
import type { TrainConfig } from '../train/config.js';

export type RunState =
  | { kind: 'missing' }
  | { kind: 'finished'; steps: number; samples: number }
  | { kind: 'resume'; steps: number; samples: number; checkpointStep: number | null; checkpoint: string }
  | { kind: 'restart'; reason: string };

/** Has this row reached the config's budget (samples, or tokens)? */
export function budgetReached(row: MetricsRow | undefined, budget: TrainConfig['budget']): boolean {
  if (!row) return false;
  if (budget.samples !== undefined) return typeof row.samples === 'number' && row.samples >= budget.samples;
  return typeof row.tokens === 'number' && row.tokens >= budget.tokens!;
}

export function inspectRun(dir: string, cfg: Pick<TrainConfig, 'budget' | 'checkpoint'>): RunState {
  const ckpts = listCheckpoints(join(dir, 'checkpoints')).filter((c) => c.manifest !== null && c.problem === null);
  const metricsPath = join(dir, 'metrics.jsonl');
  if (!existsSync(metricsPath)) {
    if (ckpts.length) return { kind: 'restart', reason: 'checkpoints but no metrics.jsonl' };
    return { kind: 'missing' };
  }
  let rows: MetricsRow[];
  try {
    rows = readMetrics(metricsPath);
  } catch (e) {
    return { kind: 'restart', reason: `metrics.jsonl is damaged (${(e as Error).message})` };
  }
  const last = rows.at(-1);
  const steps = typeof last?.step === 'number' ? last.step : rows.length;
  const samples = typeof last?.samples === 'number' ? last.samples : 0;
  if (budgetReached(last, cfg.budget) && (!cfg.checkpoint.at_end || ckpts.some((c) => c.step === steps))) return { kind: 'finished', steps, samples };
  const newest = ckpts.at(-1);
  if (newest) return { kind: 'resume', steps, samples, checkpointStep: newest.step, checkpoint: newest.dir };
  return { kind: 'restart', reason: rows.length ? `${rows.length} steps but no checkpoint to resume from` : 'an empty metrics.jsonl' };
}

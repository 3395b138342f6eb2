/**
 * The engine side of optimizer state in checkpoints, shared by both engines: the metadata written
 * with it, and the check that a checkpoint's state belongs to the optimizer loading it (LAMB's and
 * AdamW's moments have the same names, so only the recorded name tells them apart).
 */
import type { Optimizer } from '../optim/optimizer.js';
import { UserError } from '../util/errors.js';
import type { OptimizerSnapshot } from './engine.js';

/**
 * String metadata stored with the optimizer tensors: the step, as before there was a choice of
 * optimizer (so AdamW's optimizer files stay byte-identical); the optimizer's name is recorded in
 * trainer_state.json, which is authoritative.
 */
export function optimizerMetadata(optimizer: Optimizer): Record<string, string> {
  return { adamw_step: String(optimizer.step) };
}

/** Refuses a snapshot written by another optimizer. */
export function checkSnapshotOptimizer(optimizer: Optimizer, snapshot: OptimizerSnapshot): void {
  if (snapshot.name !== optimizer.name) {
    throw new UserError(`the checkpoint holds ${snapshot.name} optimizer state, but optim.name is ${optimizer.name}: resume with the same optimizer, or start a new run from its weights (init_from)`);
  }
}

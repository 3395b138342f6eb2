/** The optimizer a config names (optim.name), over whole units or this rank's FSDP shards. */
import type { Backend } from '../backend/backend.js';
import type { ModelLayout } from '../model/layout.js';
import { AdagradNorm } from './adagrad-norm.js';
import { Adagrad } from './adagrad.js';
import { AdamW } from './adamw.js';
import type { OptimizerParams } from './config.js';
import { Lamb } from './lamb.js';
import { Muon } from './muon.js';
import type { Optimizer } from './optimizer.js';
import type { UnitRange } from './owned.js';

/** The optimizer `config` names, over the whole units or the owned `ranges` (FSDP shards). */
export function createOptimizer(backend: Backend, layout: ModelLayout, config: OptimizerParams, ranges?: readonly UnitRange[]): Optimizer {
  switch (config.name) {
    case 'adamw':
      return new AdamW(backend, layout, config, ranges);
    case 'lamb':
      return new Lamb(backend, layout, config, ranges);
    case 'adagrad':
      return new Adagrad(backend, layout, config, ranges);
    case 'adagrad_norm':
      return new AdagradNorm(backend, layout, config, ranges);
    case 'muon':
      return new Muon(backend, layout, config, ranges);
  }
}

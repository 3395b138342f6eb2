/**
 * Opening a trained model for evaluation or generation: a checkpoint directory, a Hugging Face Llama
 * directory, or a run directory (its newest valid checkpoint).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.js';
import { specialTokenNames, Tokenizer } from '../data/tokenizer.js';
import { latestValidCheckpoint } from '../io/checkpoint.js';
import { loadModelDir, type LoadedModel } from '../io/hf.js';
import type { SyncUnitAccess } from '../model/llama.js';
import { UnitBuffers } from '../model/params.js';
import { buildLayout } from '../model/layout.js';
import { UserError } from '../util/errors.js';

export interface OpenedModel {
  loaded: LoadedModel;
  /** The directory the weights came from (a run directory resolves to its checkpoint). */
  dir: string;
  params: UnitBuffers;
  access: SyncUnitAccess;
  tokenizer: Tokenizer | null;
}

export function resolveModelDir(dir: string, log: (m: string) => void = () => {}): string {
  if (!existsSync(dir)) throw new UserError(`${dir}: no such directory`);
  const ckDir = join(dir, 'checkpoints');
  if (!existsSync(join(dir, 'config.json')) && existsSync(ckDir)) {
    const latest = latestValidCheckpoint(ckDir, { onWarning: (m) => log(`warning: ${m}`) });
    if (!latest) throw new UserError(`${dir}: a run directory without a valid checkpoint in ${ckDir}`);
    return latest.dir;
  }
  return dir;
}

export function openModel(dir: string, backend: Backend, log: (m: string) => void = () => {}): OpenedModel {
  const resolved = resolveModelDir(dir, log);
  const loaded = loadModelDir(resolved);
  for (const note of loaded.notes) log(`note: ${note}`);
  const params = new UnitBuffers(backend, buildLayout(loaded.config));
  params.fromHost(loaded.tensors);
  // BOS/EOS as a Hugging Face directory's tokenizer_config.json names them (e.g. Llama 2's <s> and </s>).
  const names = loaded.tokenizerConfigJson !== undefined ? specialTokenNames(loaded.tokenizerConfigJson, join(resolved, 'tokenizer_config.json')) : {};
  const tokenizer = loaded.tokenizerJson !== undefined ? Tokenizer.fromJSON(JSON.parse(loaded.tokenizerJson), names, loaded.tokenizerPath ?? join(resolved, 'tokenizer.json')) : null;
  return { loaded, dir: resolved, params, access: { acquire: (u) => params.unit(u), release: () => {} }, tokenizer };
}

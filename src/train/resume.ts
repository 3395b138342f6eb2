/**
 * Resuming a run: the run directory's saved config is the truth; the user may change only the
 * fields that cannot affect the trajectory up to now (budget, cadences, logging, threads). Anything
 * else that differs is refused, naming the field and both values.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { UserError, parseOrThrow } from '../util/errors.js';
import { applyOverride, trainConfigSchema, type TrainConfig } from './config.js';

/** Top-level sections that may change on resume. */
export const RESUMABLE_CHANGES = ['budget', 'eval', 'checkpoint', 'log_every_s', 'threads', 'max_nonfinite', 'run_dir', 'parallel'] as const;

function readYaml(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const v = YAML.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a mapping');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${path} is not a valid YAML config: ${(e as Error).message}`);
  }
}

/** Paths (a.b.c) where two plain JSON values differ, with both values. */
export function diffPaths(a: unknown, b: unknown, prefix = ''): Array<{ path: string; a: unknown; b: unknown }> {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].sort().flatMap((k) => diffPaths(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [{ path: prefix, a, b }];
}

export function loadResumeConfig(runDir: string, configFile: string | undefined, overrides: readonly string[]): TrainConfig {
  const savedPath = join(runDir, 'config.yaml');
  if (!existsSync(runDir)) throw new UserError(`cannot resume: run directory ${runDir} does not exist`);
  if (!existsSync(savedPath)) throw new UserError(`cannot resume: ${savedPath} is missing (is ${runDir} an adabatch run directory?)`);
  const saved = parseOrThrow(trainConfigSchema, readYaml(savedPath), `config ${savedPath}`);
  const raw = configFile ? readYaml(configFile) : (JSON.parse(JSON.stringify(saved)) as Record<string, unknown>);
  for (const o of overrides) applyOverride(raw, o);
  raw.run_dir = runDir;
  const wanted = parseOrThrow(trainConfigSchema, raw, configFile ? `config ${configFile}` : 'config');
  const changed = diffPaths(saved, wanted).filter((d) => !(RESUMABLE_CHANGES as readonly string[]).includes(d.path.split('.')[0]!));
  if (changed.length) {
    const lines = changed.map((d) => `  ${d.path}: the run has ${JSON.stringify(d.a)}, you gave ${JSON.stringify(d.b)}`);
    throw new UserError(`config mismatch on resume (only ${RESUMABLE_CHANGES.join(', ')} may change):\n${lines.join('\n')}`);
  }
  return wanted;
}

/**
 * Sweep files (`adabatch sweep sweep.yaml`): a `base:` training config, named `runs:` variants
 * merged over it, optional `seeds:` and a `grid:` of dotted keys expanded as a cartesian product.
 * Everything is validated up front (the sweep file with zod, then every expanded run's config with
 * the training config's schema), and every error names the field and the run. Pure: no I/O.
 *
 *   title: …                       # the report's title (optional)
 *   sweep_dir: runs/my-sweep       # default: runs/<sweep file name>
 *   nproc: 1                       # ranks per run (adabatch train --nproc), per run too
 *   seeds: [0, 1]                  # per run too; default: the config's seed (0)
 *   grid: {batch.eta: [0.5, 0.8]}  # per run too; a run's grid adds to (and overrides keys of) this one
 *   base: {model: {preset: tiny}, budget: {samples: 2000}, …}
 *   runs:
 *     - {name: constant-32, batch: {schedule: constant, batch: 32}}
 *     - {name: norm, batch: {schedule: norm}, grid: {batch.estimator: [microbatch, paper]}}
 *
 * Run directories: <sweep_dir>/<name>[-<key><value>…]-seed<k>, where <key> is the last part of each
 * grid key (batch.eta → eta0.5). Order: every run's first seed, then every run's second seed, … so a
 * sweep cut short has one seed of everything first.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { trainConfigSchema, type TrainConfig } from '../train/config.js';
import { UserError, formatZodIssues } from '../util/errors.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Keys of the batch section that every schedule has (they carry over when a variant changes the schedule). */
export const COMMON_BATCH_KEYS = ['max_micro', 'lr_scaling', 'noise_scale'] as const;

const seedsSchema = z
  .array(z.number().int().nonnegative())
  .min(1, 'give at least one seed')
  .refine((s) => new Set(s).size === s.length, 'seeds must be distinct');
const gridSchema = z.record(z.string(), z.array(z.unknown()).min(1, 'give at least one value')).superRefine((grid, ctx) => {
  for (const k of Object.keys(grid)) {
    if (!KEY_RE.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'grid keys are dotted config paths, e.g. batch.eta' });
    else if (k === 'seed' || k === 'run_dir') ctx.addIssue({ code: 'custom', path: [k], message: 'use seeds: for seeds; the sweep sets run_dir' });
  }
});
const nprocSchema = z.number().int().positive();

const variantSchema = z
  .object({
    name: z.string().regex(NAME_RE, 'names use letters, digits, ".", "_" and "-", and start with a letter or digit'),
    seeds: seedsSchema.optional(),
    grid: gridSchema.optional(),
    nproc: nprocSchema.optional(),
  })
  .catchall(z.unknown());

export const sweepSchema = z.strictObject({
  title: z.string().min(1).optional(),
  sweep_dir: z.string().min(1).optional(),
  nproc: nprocSchema.default(1),
  seeds: seedsSchema.optional(),
  grid: gridSchema.optional(),
  base: z.record(z.string(), z.unknown()).default({}),
  runs: z.array(variantSchema).min(1, 'give at least one run'),
});

export type SweepFile = z.output<typeof sweepSchema>;

export interface PlannedRun {
  /** Directory name and legend: <name>[-<key><value>…]-seed<k>. */
  id: string;
  /** The variant's name. */
  variant: string;
  /** Index of the variant in runs:. */
  index: number;
  seed: number;
  dir: string;
  nproc: number;
  /** The merged config as written (before defaults), with run_dir and seed: what the run's config file holds. */
  raw: Record<string, unknown>;
  /** The same, validated with defaults. */
  config: TrainConfig;
  /** What this run sets over base (dotted keys), for listings. */
  settings: Array<[string, unknown]>;
}

export interface SweepPlan {
  title: string | undefined;
  dir: string;
  runs: PlannedRun[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

/** `a.b.c` → value in a plain object (undefined when absent). */
function getPath(obj: Obj, path: string): unknown {
  let cur: unknown = obj;
  for (const k of path.split('.')) {
    if (!isObj(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

const scheduleOf = (batch: unknown): string => (isObj(batch) && typeof batch.schedule === 'string' ? batch.schedule : 'norm');
const commonBatch = (batch: unknown): Obj => (isObj(batch) ? Object.fromEntries(Object.entries(batch).filter(([k]) => (COMMON_BATCH_KEYS as readonly string[]).includes(k))) : {});

/** Deep merge of plain objects (b wins; arrays and scalars replace). */
function deepMerge(a: unknown, b: unknown): unknown {
  if (!isObj(a) || !isObj(b)) return clone(b);
  const out: Obj = clone(a);
  for (const [k, v] of Object.entries(b)) out[k] = k in out ? deepMerge(out[k], v) : clone(v);
  return out;
}

/**
 * A variant over base. Deep merge, except that a variant naming a different batch schedule than
 * base's starts a fresh batch section: only max_micro, lr_scaling and noise_scale carry over (the
 * other keys belong to base's schedule and the strict schema would refuse them).
 */
export function mergeVariant(base: Obj, variant: Obj): Obj {
  const out = deepMerge(base, variant) as Obj;
  if (isObj(variant.batch) && typeof variant.batch.schedule === 'string' && variant.batch.schedule !== scheduleOf(base.batch)) {
    out.batch = deepMerge(commonBatch(base.batch), variant.batch);
  }
  return out;
}

/** Sets a dotted path (creating sections); setting batch.schedule to another schedule resets the batch section as mergeVariant does. */
export function setPath(obj: Obj, path: string, value: unknown): void {
  const keys = path.split('.');
  if (path === 'batch.schedule' && value !== scheduleOf(obj.batch)) obj.batch = commonBatch(obj.batch);
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (cur[k] === undefined || cur[k] === null) cur[k] = {};
    if (!isObj(cur[k])) throw new UserError(`grid key ${path}: '${k}' is not a section`);
    cur = cur[k] as Obj;
  }
  cur[keys[keys.length - 1]!] = clone(value);
}

/** Cartesian product of the grid, in key order; {} gives one empty combination. */
export function expandGrid(grid: Readonly<Record<string, readonly unknown[]>>): Array<Array<[string, unknown]>> {
  let combos: Array<Array<[string, unknown]>> = [[]];
  for (const [key, values] of Object.entries(grid)) combos = combos.flatMap((c) => values.map((v) => [...c, [key, v] as [string, unknown]]));
  return combos;
}

/** A grid value as a file-name fragment: 0.8 → "0.8", "paper" → "paper", {beta: 0.9} → "beta_0.9". */
export function valueTag(v: unknown): string {
  const s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' || v === null ? String(v) : JSON.stringify(v);
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '') || 'x';
}

function flatten(obj: Obj, prefix = ''): Array<[string, unknown]> {
  return Object.entries(obj).flatMap(([k, v]) => (isObj(v) && Object.keys(v).length ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]]));
}

/** Validates a parsed sweep document (and its --set overrides, already applied) and expands it into runs. */
export function planSweep(doc: unknown, opts: { file?: string; dir?: string } = {}): SweepPlan {
  const what = opts.file ? `sweep file ${opts.file}` : 'sweep file';
  if (!isObj(doc)) throw new UserError(`${what} must be a mapping with base: and runs:`);
  const parsed = sweepSchema.safeParse(doc);
  if (!parsed.success) throw new UserError(`invalid ${what}:\n${formatZodIssues(parsed.error.issues)}`);
  const spec = parsed.data;
  const defaultDir = opts.file ? join('runs', opts.file.replace(/^.*[\\/]/, '').replace(/\.(ya?ml|json)$/i, '')) : 'runs/sweep';
  const dir = opts.dir ?? spec.sweep_dir ?? defaultDir;

  const errors: string[] = [];
  if ('run_dir' in spec.base) errors.push(`base.run_dir: the sweep sets each run's directory (${dir}/<name>-seed<k>); remove it`);
  if ('seed' in spec.base && spec.seeds) errors.push(`base.seed: give either base.seed or seeds:, not both`);
  const firstIndex = new Map<string, number>();
  spec.runs.forEach((v, i) => {
    if (firstIndex.has(v.name)) errors.push(`runs.${i}.name: '${v.name}' is already the name of runs.${firstIndex.get(v.name)}`);
    else firstIndex.set(v.name, i);
    if ('run_dir' in v) errors.push(`runs.${i}.run_dir (${v.name}): the sweep sets each run's directory; remove it`);
    if ('seed' in v && (v.seeds || spec.seeds)) errors.push(`runs.${i}.seed (${v.name}): give either seed or seeds:, not both`);
  });
  if (errors.length) throw new UserError(`invalid ${what}:\n${errors.join('\n')}`);

  const perSeedPosition: PlannedRun[][] = [];
  spec.runs.forEach((v, i) => {
    const { name, seeds: vSeeds, grid: vGrid, nproc: vNproc, ...partial } = v;
    const merged = mergeVariant(spec.base, partial);
    const grid = { ...(spec.grid ?? {}), ...(vGrid ?? {}) };
    // batch.schedule first, so the keys that go with a schedule are set after it resets the section.
    const ordered = Object.fromEntries(Object.entries(grid).sort(([a], [b]) => Number(b === 'batch.schedule') - Number(a === 'batch.schedule')));
    const seeds = vSeeds ?? spec.seeds ?? [typeof merged.seed === 'number' ? merged.seed : 0];
    for (const combo of expandGrid(ordered)) {
      const tags = combo.map(([k, val]) => `${k.split('.').pop()}${valueTag(val)}`);
      seeds.forEach((seed, pos) => {
        const raw = clone(merged);
        for (const [k, val] of combo) setPath(raw, k, val);
        const id = [name, ...tags, `seed${seed}`].join('-');
        raw.seed = seed;
        raw.run_dir = join(dir, id);
        const r = trainConfigSchema.safeParse(raw);
        if (!r.success) {
          errors.push(formatZodIssues(r.error.issues, '').split('\n').map((l) => `run ${id} (runs.${i}): ${l}`).join('\n'));
          return;
        }
        const settings: Array<[string, unknown]> = [...flatten(partial as Obj), ...combo, ['seed', seed]];
        (perSeedPosition[pos] ??= []).push({ id, variant: name, index: i, seed, dir: raw.run_dir as string, nproc: vNproc ?? spec.nproc, raw, config: r.data, settings });
      });
    }
  });
  if (errors.length) throw new UserError(`invalid ${what}:\n${errors.join('\n')}`);
  const runs = perSeedPosition.flat();
  const seen = new Map<string, PlannedRun>();
  for (const r of runs) {
    const prev = seen.get(r.id);
    if (prev) errors.push(`runs.${r.index} (${r.variant}) and runs.${prev.index} (${prev.variant}) both expand to ${r.id}: rename one`);
    seen.set(r.id, r);
  }
  if (errors.length) throw new UserError(`invalid ${what}:\n${errors.join('\n')}`);
  return { title: spec.title, dir, runs };
}

/** The value at a dotted path of a planned run's raw config (for listings and tests). */
export function rawValue(run: PlannedRun, path: string): unknown {
  return getPath(run.raw, path);
}

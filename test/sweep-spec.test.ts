/** Sweep files: grid expansion, merging, run names and order, and validation errors that name the field (pure). */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import YAML from 'yaml';
import { selectRuns } from '../src/cli/commands/sweep.js';
import { expandGrid, mergeVariant, planSweep, rawValue, valueTag } from '../src/sweep/spec.js';
import { UserError } from '../src/util/errors.js';

const base = { model: { preset: 'tiny' }, data: { synthetic: {} }, budget: { samples: 1000 }, batch: { schedule: 'norm', eta: 0.8, initial: 16, max: 256, max_micro: 8 } };

function plan(doc: Record<string, unknown>): ReturnType<typeof planSweep> {
  return planSweep(doc, { dir: '/s' });
}

function refuses(doc: unknown, ...patterns: RegExp[]): void {
  assert.throws(
    () => planSweep(doc, { file: 'x.yaml', dir: '/s' }),
    (e: unknown) => {
      assert.ok(e instanceof UserError, `a UserError, got ${String(e)}`);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    },
  );
}

test('expandGrid is the cartesian product in key order', () => {
  assert.deepEqual(expandGrid({}), [[]]);
  const g = expandGrid({ 'batch.eta': [0.5, 0.8], 'batch.estimator': ['microbatch', 'paper'], 'lr.lr': [1e-3] });
  assert.equal(g.length, 4);
  assert.deepEqual(g[0], [
    ['batch.eta', 0.5],
    ['batch.estimator', 'microbatch'],
    ['lr.lr', 1e-3],
  ]);
  assert.deepEqual(
    g.map((c) => c.map(([, v]) => v).join(',')),
    ['0.5,microbatch,0.001', '0.5,paper,0.001', '0.8,microbatch,0.001', '0.8,paper,0.001'],
  );
  assert.equal(valueTag(0.8), '0.8');
  assert.equal(valueTag('per-sample'), 'per-sample');
  assert.equal(valueTag({ beta: 0.9 }), 'beta_0.9');
  assert.equal(valueTag(null), 'null');
});

test('runs × grid × seeds: names, directories, order (seed by seed), configs', () => {
  const p = plan({
    base,
    seeds: [0, 1],
    grid: { 'lr.lr': [0.001, 0.002] },
    runs: [
      { name: 'const', batch: { schedule: 'constant', batch: 32 } },
      { name: 'norm', grid: { 'batch.estimator': ['microbatch', 'per-sample'] }, seeds: [5] },
    ],
  });
  assert.deepEqual(
    p.runs.map((r) => r.id),
    [
      'const-lr0.001-seed0',
      'const-lr0.002-seed0',
      'norm-lr0.001-estimatormicrobatch-seed5',
      'norm-lr0.001-estimatorper-sample-seed5',
      'norm-lr0.002-estimatormicrobatch-seed5',
      'norm-lr0.002-estimatorper-sample-seed5',
      'const-lr0.001-seed1',
      'const-lr0.002-seed1',
    ],
  );
  const r = p.runs.find((x) => x.id === 'norm-lr0.002-estimatorper-sample-seed5')!;
  assert.equal(r.dir, '/s/norm-lr0.002-estimatorper-sample-seed5');
  assert.equal(r.config.run_dir, r.dir);
  assert.equal(r.config.seed, 5);
  assert.equal(r.config.lr.lr, 0.002);
  assert.equal(r.config.batch.schedule, 'norm');
  assert.equal((r.config.batch as { estimator: string }).estimator, 'per-sample');
  assert.equal((r.config.batch as { eta: number }).eta, 0.8, 'base keys of the same schedule are kept');
  assert.equal(r.nproc, 1);
  assert.equal(p.dir, '/s');
  // Base untouched by the expansion.
  assert.equal(base.batch.schedule, 'norm');
});

test('a variant (or grid) that changes the schedule keeps only the common batch keys of base', () => {
  const merged = mergeVariant(base, { batch: { schedule: 'constant', batch: 64 } });
  assert.deepEqual(merged.batch, { max_micro: 8, schedule: 'constant', batch: 64 });
  const same = mergeVariant(base, { batch: { eta: 0.3 } });
  assert.deepEqual(same.batch, { schedule: 'norm', eta: 0.3, initial: 16, max: 256, max_micro: 8 });
  const p = plan({ base, runs: [{ name: 'g', grid: { 'batch.batch': [16], 'batch.schedule': ['constant'] } }] });
  assert.deepEqual(p.runs[0]!.raw.batch, { max_micro: 8, schedule: 'constant', batch: 16 });
  assert.equal(rawValue(p.runs[0]!, 'batch.max_micro'), 8);
});

test('defaults: seed from the config, sweep dir from the file name, nproc per run', () => {
  const p = planSweep({ base: { ...base, seed: 7 }, nproc: 2, runs: [{ name: 'a' }, { name: 'b', nproc: 1 }] }, { file: 'experiments/my-sweep.yaml' });
  assert.equal(p.dir, 'runs/my-sweep');
  assert.deepEqual(
    p.runs.map((r) => [r.id, r.nproc]),
    [
      ['a-seed7', 2],
      ['b-seed7', 1],
    ],
  );
  assert.equal(planSweep({ sweep_dir: 'out/x', runs: [{ name: 'a' }] }).dir, 'out/x');
});

test('validation errors name the field (and the run)', () => {
  refuses({ base, runz: [] }, /runs: /, /unknown field 'runz'/);
  refuses({ base, runs: [] }, /runs: give at least one run/);
  refuses({ base, runs: [{ name: 'bad name' }] }, /runs\.0\.name: names use letters/);
  refuses({ base, runs: [{ batch: { schedule: 'constant', batch: 4 } }] }, /runs\.0\.name: /);
  refuses({ base, seeds: [], runs: [{ name: 'a' }] }, /seeds: give at least one seed/);
  refuses({ base, seeds: [1, 1], runs: [{ name: 'a' }] }, /seeds: seeds must be distinct/);
  refuses({ base, grid: { 'batch eta': [1] }, runs: [{ name: 'a' }] }, /grid\.batch eta: grid keys are dotted config paths/);
  refuses({ base, grid: { 'batch.eta': [] }, runs: [{ name: 'a' }] }, /grid\.batch\.eta: give at least one value/);
  refuses({ base, runs: [{ name: 'a', grid: { seed: [1, 2] } }] }, /runs\.0\.grid\.seed: use seeds:/);
  refuses({ base: { ...base, run_dir: 'x' }, runs: [{ name: 'a' }] }, /base\.run_dir: the sweep sets each run's directory/);
  refuses({ base, runs: [{ name: 'a', run_dir: 'x' }] }, /runs\.0\.run_dir \(a\)/);
  refuses({ base: { ...base, seed: 1 }, seeds: [0], runs: [{ name: 'a' }] }, /base\.seed: give either base\.seed or seeds:/);
  refuses({ base, runs: [{ name: 'a' }, { name: 'a' }] }, /runs\.1\.name: 'a' is already the name of runs\.0/);
  refuses({ base, runs: [{ name: 'a-eta0.5' }, { name: 'a', grid: { 'batch.eta': [0.5] } }] }, /runs\.1 \(a\) and runs\.0 \(a-eta0\.5\) both expand to a-eta0\.5-seed0/);
  // Each expanded run's config goes through the training config schema.
  refuses({ base, runs: [{ name: 'neg', batch: { eta: -1 } }] }, /run neg-seed0 \(runs\.0\): batch\.eta: /);
  refuses({ base, runs: [{ name: 'typo', batch: { etaa: 1 } }] }, /run typo-seed0 \(runs\.0\): batch: unknown field 'etaa'/);
  refuses({ base, runs: [{ name: 'c', batch: { schedule: 'constant' } }] }, /run c-seed0 \(runs\.0\): batch\.batch: /);
  refuses({ base, runs: [{ name: 'ok' }, { name: 'g', grid: { 'optim.clip': [1, -1] } }] }, /run g-clip-1-seed0 \(runs\.1\): optim\.clip: /);
  refuses({ base: { ...base, budgett: 1 }, runs: [{ name: 'a' }] }, /run a-seed0 \(runs\.0\): unknown field 'budgett'/);
  refuses([1, 2], /must be a mapping/);
});

test('--only selects runs by variant name or run directory name, and refuses unknown names', () => {
  const p = plan({ base, seeds: [0, 1], runs: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] });
  assert.deepEqual(
    selectRuns(p, 'a,c-seed1').runs.map((r) => r.id),
    ['a-seed0', 'a-seed1', 'c-seed1'],
  );
  assert.throws(() => selectRuns(p, 'a,zz'), (e: unknown) => e instanceof UserError && /--only: no run named 'zz' \(runs: a, b, c; or a run directory name such as a-seed0\)/.test(e.message));
  assert.throws(() => selectRuns(p, ','), (e: unknown) => e instanceof UserError && /give at least one name/.test(e.message));
});

test('the shipped experiment file and the docs example are valid sweeps', () => {
  const exp = YAML.parse(readFileSync(new URL('../../experiments/paper-small.yaml', import.meta.url), 'utf8')) as unknown;
  const p = planSweep(exp, { file: 'experiments/paper-small.yaml' });
  assert.ok(p.runs.length >= 10, `${p.runs.length} runs`);
  const budgets = new Set(p.runs.map((r) => r.config.budget.samples));
  assert.equal(budgets.size, 1, 'one sample budget for every run');
  const layouts = new Set(p.runs.map((r) => `${r.nproc}x${r.config.threads}`));
  assert.equal(layouts.size, 1, `the same rank/thread layout for every run (${[...layouts].join(', ')})`);
  const docs = readFileSync(new URL('../../docs/reports.md', import.meta.url), 'utf8');
  const block = /```yaml\n(# sweep[\s\S]*?)```/.exec(docs);
  assert.ok(block, 'docs/reports.md has a sweep example starting with "# sweep"');
  const ex = planSweep(YAML.parse(block[1]!) as unknown, { file: 'example.yaml' });
  assert.ok(ex.runs.length >= 3);
});

/** `adabatch plan` from the command line: the table, --json, a measured step, and the exit codes. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/tmp.js';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const TINY = ['model.preset=tiny', 'model.n_layers=2', 'model.seq_len=32', 'data={synthetic: {}}', 'budget.samples=640'].flatMap((s) => ['--set', s]);

function plan(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'plan', ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('cli plan: a stagewise config from a file prints its summary and table and exits 0', () => {
  const file = join(tempDir('adabatch-plan-'), 'run.yaml');
  writeFileSync(file, 'batch:\n  schedule: stagewise\n  stages: [{batch: 16, fraction: 0.25}, {batch: 32, fraction: 0.75}]\nlr: {schedule: power, a: 0.02}\n');
  const r = plan(file, ...TINY, '--no-measure');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^schedule {2}batch stagewise; lr power; lr_scaling none$/m);
  // 10 steps of 16 to the end of the first stage at 160 samples, then 15 of 32.
  assert.match(r.stdout, /^budget {4}640 samples, 20\.5k tokens, 25 steps$/m);
  assert.match(r.stdout, /^ +160 +5120 +10 +32 +\S+ +batch change$/m);
  assert.match(r.stdout, /^ +640 +20\.5k +25 +32 +0\.000200 +end$/m);
});

test('cli plan: --json parses, and a measured step gives a time estimate', () => {
  const r = plan(...TINY, '--set', 'batch={schedule: constant, batch: 32, max_micro: 8}', '--json');
  assert.equal(r.status, 0, r.stderr);
  const p = JSON.parse(r.stdout) as { ok: boolean; steps: number[]; seconds: number[]; timing: { microBatch: number; microStepS: number; updateS: number }; rows: Array<{ samples: number; batch: number[] }> };
  assert.equal(p.ok, true);
  assert.deepEqual(p.steps, [20, 20]);
  assert.equal(p.timing.microBatch, 8);
  assert.ok(p.timing.microStepS > 0 && p.timing.updateS > 0);
  // 20 steps of 4 micro-steps of 8 and an update each.
  assert.ok(Math.abs(p.seconds[0]! - 20 * (4 * p.timing.microStepS + p.timing.updateS)) < 1e-9);
  assert.equal(p.rows.at(-1)!.samples, 640);
});

test('cli plan: an inconsistent config exits 2 naming the field, in the table and in JSON', () => {
  const odd = plan(...TINY, '--set', 'batch={schedule: constant, batch: 17}', '--nproc', '2', '--no-measure');
  assert.equal(odd.status, 2);
  assert.match(odd.stdout, /^errors:\n {2}batch\.batch is 17, but 2 rank\(s\)/m);
  const json = plan(...TINY, '--set', 'lr.warmup=1000', '--no-measure', '--json');
  assert.equal(json.status, 2);
  const p = JSON.parse(json.stdout) as { ok: boolean; errors: Array<{ field: string }> };
  assert.deepEqual([p.ok, p.errors.map((e) => e.field)], [false, ['lr.warmup']]);
  // A config that does not parse: exit 2 as for the other commands, and JSON with --json.
  const bad = plan(...TINY, '--set', 'batch={initial: 64, max: 32}');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^adabatch: invalid config:\nbatch\.initial: /m);
  const badJson = plan(...TINY, '--set', 'lr.schedule=power', '--set', 'batch.lr_scaling=sqrt', '--json');
  assert.equal(badJson.status, 2);
  assert.deepEqual((JSON.parse(badJson.stdout) as { errors: Array<{ field: string }> }).errors.map((e) => e.field), ['batch.lr_scaling']);
  assert.equal(plan('--nproc', '0').status, 2);
});

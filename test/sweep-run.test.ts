/**
 * Sweeps end to end: the state of a run read from its directory (missing, finished, resume,
 * restart), and a real tiny sweep (child processes of bin/adabatch.js) stopped with SIGINT in the
 * middle of its second run, then run again: the finished run is skipped untouched, the interrupted
 * one resumes from its checkpoint and reaches the budget, a failing run is reported without stopping
 * the sweep, the missing one starts, and the report and the summary table come at the end.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { readMetrics } from '../src/io/metrics.js';
import { planSweep } from '../src/sweep/spec.js';
import { inspectRun } from '../src/sweep/state.js';
import { loadTrainConfig } from '../src/train/config.js';
import { Progress } from '../src/train/progress.js';
import { runTrain } from '../src/train/run.js';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const quiet = { log: () => {}, progress: new Progress(process.stderr, 1e9, false) };

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'adabatch-sweep-'));
}

const BASE = {
  model: { preset: 'tiny', n_layers: 2, seq_len: 32 },
  data: { synthetic: { phrases: 16, phrase_len: 6 } },
  budget: { samples: 160 },
  eval: { every_samples: 80, windows: 8 },
  lr: { lr: 0.003 },
  threads: 1,
  log_every_s: 1000,
  batch: { max_micro: 8 },
};

test('inspectRun: missing, finished, resume (stopped early, or a larger budget), restart (no checkpoint)', async () => {
  const root = tmp();
  const sets = (dir: string, extra: string[] = []): string[] => [`run_dir=${dir}`, 'model.preset=tiny', 'model.n_layers=2', 'model.seq_len=32', 'data={synthetic: {}}', 'batch={schedule: constant, batch: 8}', 'budget.samples=64', 'eval.every_samples=0', 'eval.windows=4', 'threads=1', ...extra];
  const cfgA = loadTrainConfig(undefined, sets(join(root, 'a')));
  assert.deepEqual(inspectRun(join(root, 'a'), cfgA), { kind: 'missing' });
  await runTrain(cfgA, quiet);
  assert.deepEqual(inspectRun(join(root, 'a'), cfgA), { kind: 'finished', steps: 8, samples: 64 });
  const bigger = loadTrainConfig(undefined, sets(join(root, 'a'), ['budget.samples=128']));
  const st = inspectRun(join(root, 'a'), bigger);
  assert.equal(st.kind, 'resume', 'a finished run whose budget grew is resumed');
  assert.equal(st.kind === 'resume' && st.checkpointStep, 8);

  const cfgB = loadTrainConfig(undefined, sets(join(root, 'b')));
  let n = 0;
  await runTrain(cfgB, { ...quiet, shouldStop: () => ++n > 3 });
  const b = inspectRun(join(root, 'b'), cfgB);
  assert.deepEqual(b.kind === 'resume' && [b.steps, b.samples, b.checkpointStep], [4, 32, 4]);

  // A finished run whose final checkpoint is missing is not finished: it resumes from the older one.
  const cfgC = loadTrainConfig(undefined, sets(join(root, 'c'), ['checkpoint.every_samples=32', 'checkpoint.keep_last=5']));
  await runTrain(cfgC, quiet);
  const ckpts = readdirSync(join(root, 'c', 'checkpoints')).sort();
  assert.deepEqual(ckpts, ['step-00000004', 'step-00000008']);
  rmSync(join(root, 'c', 'checkpoints', 'step-00000008'), { recursive: true });
  const c = inspectRun(join(root, 'c'), cfgC);
  assert.deepEqual(c.kind === 'resume' && [c.steps, c.checkpointStep], [8, 4]);
  rmSync(join(root, 'c', 'checkpoints'), { recursive: true });
  const c2 = inspectRun(join(root, 'c'), cfgC);
  assert.equal(c2.kind, 'restart');
  assert.match(c2.kind === 'restart' ? c2.reason : '', /8 steps but no checkpoint/);
  // With checkpoint.at_end: false a run at its budget is finished without a final checkpoint.
  assert.equal(inspectRun(join(root, 'c'), { ...cfgC, checkpoint: { ...cfgC.checkpoint, at_end: false } }).kind, 'finished');
  rmSync(root, { recursive: true, force: true });
});

interface Done {
  code: number | null;
  stdout: string;
  stderr: string;
}

function sweep(args: string[], onStart?: (pid: number) => void): Promise<Done> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'sweep', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    onStart?.(child.pid!);
  });
}

async function waitFor(cond: () => boolean, what: string, limitMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const rowsOf = (dir: string): number => (existsSync(join(dir, 'metrics.jsonl')) ? readMetrics(join(dir, 'metrics.jsonl')).length : 0);

test('sweep: SIGINT mid-run, then the same command skips, resumes, reports a failure, starts the rest, and reports', async () => {
  const root = tmp();
  const file = join(root, 'sweep.yaml');
  const dir = join(root, 'out');
  const doc = {
    title: 'tiny sweep',
    base: BASE,
    runs: [
      { name: 'short', batch: { schedule: 'constant', batch: 8 } },
      // Long enough (≈500 steps) that the SIGINT sent after its first rows lands mid-run.
      { name: 'long', batch: { schedule: 'norm', eta: 0.5, initial: 4, max: 8 }, budget: { samples: 4000 } },
      { name: 'broken', init_from: join(root, 'no-such-model') },
      { name: 'last', batch: { schedule: 'constant', batch: 16 } },
    ],
  };
  writeFileSync(file, YAML.stringify(doc));
  const ids = planSweep(doc, { dir }).runs.map((r) => r.id);
  assert.deepEqual(ids, ['short-seed0', 'long-seed0', 'broken-seed0', 'last-seed0']);
  const d = Object.fromEntries(ids.map((id) => [id.replace('-seed0', ''), join(dir, id)])) as Record<'short' | 'long' | 'broken' | 'last', string>;

  const dry = await sweep([file, '--dir', dir, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /4 runs \(4 start\)/);
  assert.equal(existsSync(dir), false, '--dry-run creates nothing');

  // First invocation: stopped by SIGINT while 'long' runs.
  let sent = false;
  const first = await sweep([file, '--dir', dir], (pid) => {
    void waitFor(() => rowsOf(d.long) >= 3, "the long run's first rows").then(() => {
      process.kill(pid, 'SIGINT');
      sent = true;
    });
  });
  assert.ok(sent, 'SIGINT was sent');
  assert.equal(first.code, 130, `stopped by the signal\n${first.stderr}`);
  assert.match(first.stderr, /SIGINT: stopping the sweep/);
  assert.equal(inspectRun(d.short, loadTrainConfig(join(dir, 'configs', 'short-seed0.yaml'))).kind, 'finished');
  const longCfg = loadTrainConfig(join(dir, 'configs', 'long-seed0.yaml'));
  const longState = inspectRun(d.long, longCfg);
  assert.equal(longState.kind, 'resume', 'the interrupted run has a checkpoint to resume from');
  const stoppedAt = longState.kind === 'resume' ? longState.steps : 0;
  assert.ok(stoppedAt >= 3 && longState.kind === 'resume' && longState.samples < 4000, `stopped mid-run at step ${stoppedAt}`);
  assert.equal(longState.kind === 'resume' && longState.checkpointStep, stoppedAt, 'the stop wrote a checkpoint of the last step');
  assert.equal(existsSync(d.last), false, 'no run starts after the stop');
  assert.match(first.stdout, /^long-seed0\s+interrupted\s+checkpoint at step \d+/m);
  assert.match(first.stdout, /^last-seed0\s+not started/m);
  assert.match(first.stdout, /stopped: run the same command again to resume/);

  const shortMetrics = readFileSync(join(d.short, 'metrics.jsonl'), 'utf8');
  const shortCkpts = readdirSync(join(d.short, 'checkpoints'));

  // Second invocation: skip, resume, fail (reported), start; exit 1 for the failure.
  const second = await sweep([file, '--dir', dir]);
  assert.equal(second.code, 1, `a failed run makes the exit status 1\n${second.stderr}`);
  assert.match(second.stderr, /short-seed0: already finished \(\d+ steps\), skipped/);
  assert.match(second.stderr, new RegExp(`long-seed0: resume from checkpoint step ${stoppedAt} `));
  assert.match(second.stderr, new RegExp(`resuming from .*step-0*${stoppedAt} \\(step ${stoppedAt},`), 'the trainer resumed from the checkpoint');
  assert.match(second.stderr, /broken-seed0: FAILED \(exit code 2\); continuing with the next run/);
  assert.match(second.stderr, /last-seed0: finished/);
  assert.equal(readFileSync(join(d.short, 'metrics.jsonl'), 'utf8'), shortMetrics, 'the finished run was not touched');
  assert.deepEqual(readdirSync(join(d.short, 'checkpoints')), shortCkpts);

  const long = readMetrics(join(d.long, 'metrics.jsonl'));
  assert.deepEqual(
    long.map((r) => r.step),
    long.map((_, i) => i + 1),
    'the resumed run has every step once',
  );
  assert.equal(long.at(-1)!.samples, 4000, 'the resumed run reached its budget');
  assert.equal(inspectRun(d.long, longCfg).kind, 'finished');
  assert.equal(inspectRun(d.last, loadTrainConfig(join(dir, 'configs', 'last-seed0.yaml'))).kind, 'finished');

  assert.match(second.stdout, /4 runs: 2 finished, 1 already finished, 1 failed/);
  assert.match(second.stdout, /^broken-seed0\s+failed\s+exit code 2/m);
  // The final summary table: header and one finished row per run with metrics.
  assert.match(second.stdout, /^run\s+schedule\s+status\s+steps\s+avg batch\s+final batch\s+wall time/m);
  for (const id of ['short-seed0', 'long-seed0', 'last-seed0']) assert.match(second.stdout, new RegExp(`^${id}\\s+\\S.*\\sfinished\\s`, 'm'));
  assert.doesNotMatch(second.stdout, /^broken-seed0\s+norm/m, 'the failed run has no metrics, so no row');
  const report = join(dir, 'report.html');
  assert.match(second.stdout, new RegExp(`report: ${report.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  const html = readFileSync(report, 'utf8');
  for (const id of ['short-seed0', 'long-seed0', 'last-seed0']) assert.ok(html.includes(`data-run="${id}"`), `the report has ${id}`);
  assert.ok(html.includes('<title>tiny sweep</title>'));
  rmSync(root, { recursive: true, force: true });
});

test('sweep: a run with metrics but no checkpoint is moved to .abandoned/ and started again; a changed config is refused', async () => {
  const root = tmp();
  const file = join(root, 'sweep.yaml');
  const dir = join(root, 'out');
  writeFileSync(file, YAML.stringify({ base: BASE, sweep_dir: dir, runs: [{ name: 'only', batch: { schedule: 'constant', batch: 16 } }] }));
  const runDir = join(dir, 'only-seed0');
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'metrics.jsonl'), JSON.stringify({ step: 1, samples: 16, tokens: 512, batch_size: 16, loss: 5 }) + '\n');
  const dry = await sweep([file, '--dry-run']);
  assert.match(dry.stdout, /only-seed0\s+start again/);
  assert.match(dry.stdout, /1 steps but no checkpoint to resume from/);
  const r = await sweep([file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /only-seed0: 1 steps but no checkpoint to resume from; moved to .*\.abandoned[/\\]only-seed0-\d{8}-\d{6}, starting again/);
  const aside = readdirSync(join(dir, '.abandoned'));
  assert.equal(aside.length, 1);
  assert.equal(readMetrics(join(dir, '.abandoned', aside[0]!, 'metrics.jsonl')).length, 1, 'the old rows are kept aside');
  assert.equal(readMetrics(join(runDir, 'metrics.jsonl')).at(-1)!.samples, 160);

  // The sweep file changed under a finished run: not skipped silently, reported with the field.
  writeFileSync(file, YAML.stringify({ base: BASE, sweep_dir: dir, runs: [{ name: 'only', batch: { schedule: 'constant', batch: 32 } }] }));
  const changed = await sweep([file, '--dry-run']);
  assert.match(changed.stdout, /only-seed0\s+will fail/);
  assert.match(changed.stdout, /another config \(batch\.batch: the run has 16, the sweep 32\)/);
  const again = await sweep([file]);
  assert.equal(again.code, 1);
  assert.match(again.stdout, /^only-seed0\s+failed\s+.*batch\.batch: the run has 16, the sweep 32/m);
  rmSync(root, { recursive: true, force: true });
});

/**
 * Running a sweep: the planned runs one after another, each as a child process
 * `adabatch train --config <sweep_dir>/configs/<id>.yaml` (or `--resume <dir>` for an interrupted
 * one). Child processes, not in-process calls, because a run that crashes (a native abort, running out
 * of memory, a config the trainer refuses) must not take the sweep down, every run starts with a
 * fresh heap and native buffer pool, and a multi-rank run (`--nproc`) is the trainer's own business.
 *
 * Resumable by construction: each run's state is read from its directory (state.ts), so running the
 * same command again skips finished runs, resumes interrupted ones from their newest checkpoint and
 * starts missing ones. A stop request (Ctrl-C) is forwarded once to the current run, which finishes
 * its step, writes a checkpoint and exits; no further run starts. Children run in their own process
 * group so a terminal's Ctrl-C reaches them only through the sweep (twice would abort them at once).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { batchLayout, createSchedule } from '../batch/index.js';
import { modelConfig } from '../model/config.js';
import { formatSummaryTable, writeReport, type RunSummary } from '../report/index.js';
import { trainConfigSchema } from '../train/config.js';
import { diffPaths, RESUMABLE_CHANGES } from '../train/resume.js';
import type { PlannedRun, SweepPlan } from './spec.js';
import { inspectRun, type RunState } from './state.js';
import { writeFileAtomic } from '../util/files.js';

const BIN = fileURLToPath(new URL('../../../bin/adabatch.js', import.meta.url));

export type Outcome = 'already finished' | 'finished' | 'failed' | 'interrupted' | 'not started';

export interface RunResult {
  run: PlannedRun;
  outcome: Outcome;
  detail: string;
}

export interface SweepResult {
  results: RunResult[];
  interrupted: boolean;
  failed: number;
  report: string | null;
  summaries: RunSummary[];
  /** 0: every run finished; 1: a run failed; 130: stopped by a signal. */
  exitCode: number;
}

export interface SweepOptions {
  /** Where progress lines go (default stderr). */
  log?: (msg: string) => void;
  /** Where the final tables go (default stdout). */
  print?: (msg: string) => void;
  /** Sweep file, for the report's subtitle. */
  file?: string;
  /** Extra arguments for every `adabatch train` (tests). */
  trainArgs?: string[];
  /** The adabatch entry point (default bin/adabatch.js of this package). */
  bin?: string;
  /** Write report.html in the sweep directory at the end (default true). */
  report?: boolean;
}

/** Why a run cannot work with its rank count, known before it starts (null: fine). */
export function feasibility(run: PlannedRun): string | null {
  const cfg = run.config;
  try {
    const { preset, ...overrides } = cfg.model;
    const seqLen = modelConfig(preset, overrides as Parameters<typeof modelConfig>[1]).seq_len;
    const budget = cfg.budget.samples ?? Math.ceil(cfg.budget.tokens! / seqLen);
    createSchedule(cfg.batch, { sampleBudget: budget }).validate(batchLayout(cfg.batch, run.nproc));
    return null;
  } catch (e) {
    const msg = (e as Error).message;
    return run.nproc === 1 && /rank/i.test(msg) ? `${msg} (this run has nproc: 1)` : msg;
  }
}

/**
 * Fields of an existing run's config.yaml that differ from the sweep's config for it, other than those
 * `train --resume` may change (budget, eval, checkpoint, …): the run was made by another version of
 * the sweep file, so skipping or resuming it would mix two experiments. Empty when the directory has
 * no config.yaml.
 */
export function configChanges(run: PlannedRun): string[] {
  const path = join(run.dir, 'config.yaml');
  if (!existsSync(path)) return [];
  let saved: unknown;
  try {
    saved = trainConfigSchema.parse(YAML.parse(readFileSync(path, 'utf8')));
  } catch (e) {
    return [`${path} is not a valid config (${(e as Error).message.split('\n')[0]})`];
  }
  return diffPaths(saved, run.config)
    .filter((d) => !(RESUMABLE_CHANGES as readonly string[]).includes(d.path.split('.')[0]!))
    .map((d) => `${d.path}: the run has ${JSON.stringify(d.a)}, the sweep ${JSON.stringify(d.b)}`);
}

/** What a run's state means for the next invocation, in words. */
export function describeState(state: RunState, run: PlannedRun): string {
  const budget = run.config.budget.samples !== undefined ? `${run.config.budget.samples} samples` : `${run.config.budget.tokens} tokens`;
  switch (state.kind) {
    case 'missing':
      return 'start';
    case 'finished':
      return `finished: ${state.steps} steps, ${state.samples} samples`;
    case 'resume':
      return `resume from checkpoint step ${state.checkpointStep ?? '?'} (${state.steps} steps, ${state.samples}/${budget} so far)`;
    case 'restart':
      return `start again (${state.reason}; the old directory is moved to .abandoned/)`;
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export class SweepRunner {
  private stopRequested = false;
  private child: ChildProcess | null = null;
  private readonly log: (msg: string) => void;
  private readonly print: (msg: string) => void;

  constructor(
    private readonly plan: SweepPlan,
    private readonly opts: SweepOptions = {},
  ) {
    this.log = opts.log ?? ((m) => console.error(m));
    this.print = opts.print ?? ((m) => console.log(m));
  }

  /** First call: the current run checkpoints and exits, and no other run starts. Later calls: the run aborts at once. */
  requestStop(signal: NodeJS.Signals = 'SIGINT'): void {
    this.stopRequested = true;
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  /** The child's pid while a run is going (tests, signal forwarding). */
  get currentPid(): number | null {
    return this.child?.pid ?? null;
  }

  /** The listing printed by --dry-run: each run, what the next invocation does with it and why, and its settings. */
  describePlan(): string {
    const rows = this.plan.runs.map((r, i) => {
      const state = inspectRun(r.dir, r.config);
      const changed = state.kind === 'finished' || state.kind === 'resume' ? configChanges(r) : [];
      const problem = changed.length ? `the run directory holds a run with another config (${changed.join('; ')}): move it away to run it again` : state.kind !== 'finished' ? feasibility(r) : null;
      const action = problem ? 'will fail' : { missing: 'start', finished: 'skip', resume: 'resume', restart: 'start again' }[state.kind];
      const note = problem ?? (state.kind === 'missing' ? '' : describeState(state, r));
      const settings = r.settings.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
      return { cells: [String(i + 1), r.id, action], settings, note };
    });
    const header = ['#', 'run', 'next'];
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r.cells[c]!.length)));
    const fmt = (cells: string[], rest: string): string => [...cells.map((v, c) => (c === 0 ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))), rest].join('  ').trimEnd();
    const indent = ' '.repeat(widths[0]! + 2);
    const lines = rows.flatMap((r) => [fmt(r.cells, r.settings), ...(r.note ? [`${indent}↳ ${r.note}`] : [])]);
    const counts = new Map<string, number>();
    for (const r of rows) counts.set(r.cells[2]!, (counts.get(r.cells[2]!) ?? 0) + 1);
    const tally = [...counts].map(([a, n]) => `${n} ${a}`).join(', ');
    return [`sweep ${this.plan.dir}: ${this.plan.runs.length} runs (${tally})`, fmt(header, 'settings over base'), ...lines].join('\n');
  }

  private writeRunConfig(run: PlannedRun): string {
    const dir = join(this.plan.dir, 'configs');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `${run.id}.yaml`);
    const header = `# Written by adabatch sweep${this.opts.file ? ` from ${this.opts.file}` : ''} (run ${run.id}); edit the sweep file, not this.\n`;
    writeFileAtomic(path, header + YAML.stringify(run.raw));
    return path;
  }

  private spawnTrain(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [this.opts.bin ?? BIN, 'train', ...args, ...(this.opts.trainArgs ?? [])], { stdio: 'inherit', detached: true });
      this.child = child;
      // The child has its own process group: if the sweep itself dies, it must not train on alone.
      const orphanGuard = (): void => void child.kill('SIGTERM');
      process.once('exit', orphanGuard);
      child.once('error', (e) => {
        process.off('exit', orphanGuard);
        this.child = null;
        reject(e);
      });
      child.once('exit', (code, signal) => {
        process.off('exit', orphanGuard);
        this.child = null;
        resolve({ code, signal });
      });
    });
  }

  private async runOne(run: PlannedRun, pos: number): Promise<RunResult> {
    const tag = `[${pos + 1}/${this.plan.runs.length}] ${run.id}`;
    let state = inspectRun(run.dir, run.config);
    const changed = state.kind === 'finished' || state.kind === 'resume' ? configChanges(run) : [];
    if (changed.length) {
      const why = `${run.dir} holds a run with another config (${changed.join('; ')}): move it away to run it again`;
      this.log(`sweep ${tag}: FAILED: ${why}`);
      return { run, outcome: 'failed', detail: why };
    }
    if (state.kind === 'finished') {
      this.log(`sweep ${tag}: already finished (${state.steps} steps), skipped`);
      return { run, outcome: 'already finished', detail: `${state.steps} steps` };
    }
    const infeasible = feasibility(run);
    if (infeasible) {
      this.log(`sweep ${tag}: FAILED before starting: ${infeasible}`);
      return { run, outcome: 'failed', detail: infeasible };
    }
    if (state.kind === 'restart') {
      const aside = join(this.plan.dir, '.abandoned', `${run.id}-${timestamp()}`);
      mkdirSync(join(this.plan.dir, '.abandoned'), { recursive: true });
      renameSync(run.dir, aside);
      this.log(`sweep ${tag}: ${state.reason}; moved to ${aside}, starting again`);
      state = { kind: 'missing' };
    }
    const configFile = this.writeRunConfig(run);
    const nproc = run.nproc > 1 ? ['--nproc', String(run.nproc)] : [];
    const resuming = state.kind === 'resume';
    this.log(`sweep ${tag}: ${resuming ? describeState(state, run) : 'starting'} (${run.dir})`);
    const args = resuming ? ['--resume', run.dir, '--config', configFile, ...nproc] : ['--config', configFile, ...nproc];
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    try {
      exit = await this.spawnTrain(args);
    } catch (e) {
      return { run, outcome: 'failed', detail: `could not start adabatch train: ${(e as Error).message}` };
    }
    const after = inspectRun(run.dir, run.config);
    const how = resuming ? 'resumed and finished' : 'finished';
    if (after.kind === 'finished') {
      this.log(`sweep ${tag}: ${how} (${after.steps} steps)`);
      return { run, outcome: 'finished', detail: `${how}, ${after.steps} steps` };
    }
    if (this.stopRequested) {
      const where = after.kind === 'resume' ? `checkpoint at step ${after.checkpointStep}` : 'no checkpoint yet';
      this.log(`sweep ${tag}: interrupted (${where})`);
      return { run, outcome: 'interrupted', detail: where };
    }
    const status = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
    this.log(`sweep ${tag}: FAILED (${status}); continuing with the next run`);
    return { run, outcome: 'failed', detail: exit.code === 0 ? 'stopped before the budget' : status };
  }

  async run(): Promise<SweepResult> {
    mkdirSync(this.plan.dir, { recursive: true });
    const results: RunResult[] = [];
    for (const [i, run] of this.plan.runs.entries()) {
      if (this.stopRequested) {
        results.push({ run, outcome: 'not started', detail: 'the sweep was stopped' });
        continue;
      }
      results.push(await this.runOne(run, i));
    }
    const interrupted = this.stopRequested;
    const failed = results.filter((r) => r.outcome === 'failed').length;

    this.print(this.outcomeTable(results));
    const withMetrics = this.plan.runs.filter((r) => existsSync(join(r.dir, 'metrics.jsonl'))).map((r) => r.dir);
    let report: string | null = null;
    let summaries: RunSummary[] = [];
    if (withMetrics.length && this.opts.report !== false) {
      report = join(this.plan.dir, 'report.html');
      summaries = writeReport(withMetrics, report, { title: this.plan.title ?? `adabatch sweep ${this.plan.dir}`, ...(this.opts.file && { subtitle: `sweep file ${this.opts.file}; ${this.plan.runs.length} runs, ${withMetrics.length} with metrics` }) });
      this.print(`\n${formatSummaryTable(summaries)}\n\nreport: ${report}`);
    }
    if (interrupted) this.print(`\nstopped: run the same command again to resume`);
    return { results, interrupted, failed, report, summaries, exitCode: interrupted ? 130 : failed ? 1 : 0 };
  }

  private outcomeTable(results: readonly RunResult[]): string {
    const count = (o: Outcome): number => results.filter((r) => r.outcome === o).length;
    const parts = (['finished', 'already finished', 'failed', 'interrupted', 'not started'] as const).filter((o) => count(o) > 0).map((o) => `${count(o)} ${o}`);
    const w = Math.max(3, ...results.map((r) => r.run.id.length));
    const ow = Math.max(7, ...results.map((r) => r.outcome.length));
    const lines = results.map((r) => `${r.run.id.padEnd(w)}  ${r.outcome.padEnd(ow)}  ${r.detail}`);
    return [`\nsweep ${this.plan.dir}: ${results.length} runs: ${parts.join(', ')}`, `${'run'.padEnd(w)}  ${'outcome'.padEnd(ow)}  detail`, ...lines].join('\n');
  }
}

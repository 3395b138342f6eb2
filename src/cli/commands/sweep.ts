/** `adabatch sweep`: a grid of training runs, one after another, resumable, ending with a report. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { planSweep, type SweepPlan } from '../../sweep/spec.js';
import { SweepRunner } from '../../sweep/runner.js';
import { applyOverride } from '../../train/config.js';
import { UserError } from '../../util/errors.js';

export const summary = 'run a grid of training runs (schedules × parameters × seeds), resumable, with a report';

const HELP = `usage: adabatch sweep SWEEP.yaml [--dry-run] [--dir DIR] [--only NAMES] [--set key=value …]

Runs every run of the sweep file one after another, each in its own directory
<sweep_dir>/<name>[-<grid values>]-seed<k>, then writes <sweep_dir>/report.html and prints the
summary table. The file has a base: training config (as for adabatch train --config), a runs: list
of named variants merged over it, and optional seeds: and grid: (see docs/reports.md).

Run the same command again to continue: finished runs are skipped, an interrupted run resumes from
its newest checkpoint, missing runs start. Ctrl-C stops cleanly: the current run finishes its step,
writes a checkpoint and exits (a second Ctrl-C aborts it at once). A run that fails is reported and
the sweep goes on with the next one; the exit status is then 1 (130 when stopped).

options:
  --dry-run          validate, expand and list the runs with what the next invocation would do
                     with each (start, skip, resume, start again); runs nothing
  --dir DIR          the sweep directory (default: sweep_dir from the file, else runs/<file name>)
  --only NAMES       run only these runs: comma-separated variant names (runs[].name) or run
                     directory names (e.g. norm-eta0.5-seed0); the report covers them only
  --set KEY=VALUE    override a field of the sweep file (repeatable), e.g.
                     --set base.budget.samples=2000   --set 'seeds=[0]'
  -h, --help         show this help`;

function readSweepFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read sweep file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return YAML.parse(text) as unknown;
  } catch (e) {
    throw new UserError(`sweep file ${file} is not valid YAML: ${(e as Error).message}`);
  }
}

/** The runs named by --only (variant names or run ids); an unknown name is an error listing the known ones. */
export function selectRuns(plan: SweepPlan, only: string): SweepPlan {
  const names = only.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = names.filter((n) => !plan.runs.some((r) => r.variant === n || r.id === n));
  if (unknown.length || names.length === 0) {
    const variants = [...new Set(plan.runs.map((r) => r.variant))];
    throw new UserError(`--only: ${names.length ? `no run named ${unknown.map((u) => `'${u}'`).join(', ')}` : 'give at least one name'} (runs: ${variants.join(', ')}; or a run directory name such as ${plan.runs[0]!.id})`);
  }
  return { ...plan, runs: plan.runs.filter((r) => names.includes(r.variant) || names.includes(r.id)) };
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { 'dry-run': { type: 'boolean' }, dir: { type: 'string' }, only: { type: 'string' }, set: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (parsed.values.help) {
    console.log(HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UserError(`give exactly one sweep file\n\n${HELP}`);
  const file = parsed.positionals[0]!;
  const doc = readSweepFile(file);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new UserError(`sweep file ${file} must be a mapping with base: and runs:`);
  for (const o of parsed.values.set ?? []) applyOverride(doc as Record<string, unknown>, o);
  const full = planSweep(doc, { file, ...(parsed.values.dir !== undefined && { dir: parsed.values.dir }) });
  const plan = parsed.values.only === undefined ? full : selectRuns(full, parsed.values.only);
  const runner = new SweepRunner(plan, { file });
  if (parsed.values['dry-run']) {
    console.log(runner.describePlan());
    return 0;
  }

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    // SIGHUP (the terminal went away) stops like SIGTERM: the run checkpoints and exits.
    const sig = signal === 'SIGHUP' ? 'SIGTERM' : signal;
    signals++;
    if (signals === 1) console.error(`\n${signal}: stopping the sweep: the current run finishes its step, writes a checkpoint and exits (press again to abort it at once); run the same command again to resume`);
    else console.error(`\n${signal}: aborting the current run`);
    runner.requestStop(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    const result = await runner.run();
    return result.exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
}

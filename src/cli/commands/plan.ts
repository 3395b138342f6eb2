/** `adabatch plan`: a config's trajectory, time and memory before it trains, and what is inconsistent in it. */
import { parseArgs } from 'node:util';
import { formatBytes } from '../../util/format.js';
import { defaultKernelThreads } from '../../parallel/ddp.js';
import { loadTrainConfig } from '../../train/config.js';
import { configFindings, planRun, type Finding, type RunPlan } from '../../train/plan.js';
import type { Range } from '../../train/plan-trajectory.js';
import { UserError } from '../../util/errors.js';

export const summary = "a config's trajectory (batch, LR, steps, tokens, time) and memory before training, with its inconsistencies";

const HELP = `usage: adabatch plan [CONFIG] [--set key=value …] [--json] [--no-measure] [--nproc N [--dist mpi]]

Resolves a training config as \`adabatch train\` would, without training or reading the data, and
prints the run's trajectory by samples: batch, learning rate, steps, tokens and estimated time at
evenly spaced points, where the batch changes and where the LR phases end; the memory per rank; and
every inconsistency, naming the field (warmup longer than the budget, a batch the layout cannot
realise, a stagewise stage shorter than one step, memory that does not fit, an LR rule the
literature does not support). Adaptive schedules show ranges between batch.initial and batch.max.
See docs/plan.md.

options:
  --config FILE      the config (or give it as CONFIG); none: the default run
  --set KEY=VALUE    override one config field (repeatable), as for train
  --nproc N          plan for N data-parallel ranks (default 1)
  --dist KIND        threads (default: N ranks in one process) | mpi (one process per rank)
  --no-measure       skip the measured step (no time estimate)
  --memory-gib G     check memory against G GiB per process instead of this machine's
  --json             print the plan as JSON
  -h, --help         show this help

Exit status: 0 when the run is consistent (warnings allowed), 2 when it is not.`;

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { config: { type: 'string' }, set: { type: 'string', multiple: true }, json: { type: 'boolean' }, 'no-measure': { type: 'boolean' }, nproc: { type: 'string' }, dist: { type: 'string' }, 'memory-gib': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\n${HELP}`);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (parsed.positionals.length > 1 || (parsed.positionals.length === 1 && v.config !== undefined)) throw new UserError(`give one config\n\n${HELP}`);
  const ranks = Number(v.nproc ?? 1);
  if (!Number.isInteger(ranks) || ranks < 1) throw new UserError(`--nproc must be a positive integer, got '${v.nproc}'`);
  const dist = v.dist ?? 'threads';
  if (dist !== 'threads' && dist !== 'mpi') throw new UserError(`--dist must be threads or mpi, got '${dist}'`);
  const gib = v['memory-gib'] === undefined ? undefined : Number(v['memory-gib']);
  if (gib !== undefined && !(gib > 0)) throw new UserError(`--memory-gib must be a positive number, got '${v['memory-gib']}'`);
  try {
    const cfg = loadTrainConfig(parsed.positionals[0] ?? v.config, v.set ?? []);
    // The threads each rank would get in training (train/run.ts: defaultKernelThreads).
    const threads = cfg.threads ?? defaultKernelThreads({ kind: dist, size: ranks, localSize: dist === 'threads' ? ranks : 1 });
    const plan = await planRun(cfg, { ranks, ranksInProcess: dist === 'threads' ? ranks : 1, measure: v['no-measure'] ? null : threads, ...(gib !== undefined && { availableBytes: gib * 2 ** 30 }) });
    console.log(v.json ? JSON.stringify({ ok: plan.errors.length === 0, ...plan }, null, 2) : formatPlan(plan));
    return plan.errors.length === 0 ? 0 : 2;
  } catch (e) {
    // A config that does not parse is a plan's error too: --json still answers in JSON.
    if (!(e instanceof UserError) || !v.json) throw e;
    console.log(JSON.stringify({ ok: false, errors: configFindings(e) }, null, 2));
    return 2;
  }
}

const num = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(3));
function range(r: Range, f: (x: number) => string = num): string {
  const [lo, hi] = [f(r[0]), f(r[1])];
  return lo === hi ? lo : `${lo}–${hi}`;
}

function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

function duration(s: number): string {
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

const findings = (title: string, list: Finding[]): string[] => (list.length ? [``, `${title}:`, ...list.map((f) => `  ${f.field && !f.message.startsWith(f.field) ? `${f.field}: ` : ''}${f.message}`)] : []);

/** The human form: a summary, the table, then warnings and errors. */
export function formatPlan(p: RunPlan): string {
  const m = p.model;
  const lines = [
    `model     ${m.name}: ${(m.params / 1e6).toFixed(2)}M parameters, d ${m.d_model}, ${m.n_layers} layers, seq ${m.seq_len}, vocab ${m.vocab} (${m.vocabSource})`,
    `layout    ${p.layout.ranks} rank(s), ${p.layout.strategy}; micro batch ≤ ${p.layout.largestMicro || p.layout.maxMicro}`,
    `schedule  batch ${p.schedule.batch}${p.schedule.fixed ? '' : ' (adaptive: ranges from batch.initial to batch.max)'}; lr ${p.schedule.lr}; lr_scaling ${p.schedule.lrScaling}`,
    `budget    ${p.budget.samples} samples, ${count(p.budget.tokens)} tokens${p.steps ? `, ${range(p.steps)} steps` : ''}`,
  ];
  if (p.timing) {
    const t = p.timing;
    lines.push(`time      ${p.seconds ? range(p.seconds, duration) : '?'} of compute (measured on ${t.backend} × ${t.threads} thread(s): a micro-step of ${t.microBatch} × ${m.seq_len} tokens ${(t.microStepS * 1e3).toFixed(1)} ms, an update ${(t.updateS * 1e3).toFixed(1)} ms; no communication, evaluation or checkpoints)`);
  }
  if (p.memory) lines.push(`memory    ${formatBytes(p.memory.perRankBytes)} per rank${p.memory.processBytes !== p.memory.perRankBytes ? `, ${formatBytes(p.memory.processBytes)} per process` : ''} (estimate; ${formatBytes(p.memory.availableBytes)} available)`);
  if (p.rows.length) {
    const head = ['samples', 'tokens', 'steps', 'batch', 'lr', ...(p.timing ? ['elapsed'] : []), ''];
    const body = p.rows.map((r) => [count(r.samples), count(r.tokens), range(r.steps), range(r.batch), range(r.lr), ...(r.elapsedS ? [range(r.elapsedS, duration)] : []), r.marks.filter((k) => k !== 'even').join(', ')]);
    lines.push('', table([head, ...body]));
  }
  lines.push(...findings('warnings', p.warnings), ...findings('errors', p.errors));
  return lines.join('\n');
}

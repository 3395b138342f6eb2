/**
 * Reading run directories for reports: the resolved config (config.yaml), the metrics rows
 * (metrics.jsonl) and a per-run summary. Works on finished, interrupted and in-progress runs (fewer
 * rows, a torn last line), runs without validation rows, and null fields.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import YAML from 'yaml';
import { readMetrics, type MetricsRow } from '../io/metrics.js';
import { UserError } from '../util/errors.js';

/** How many of the last steps the "final train loss" averages. */
export const FINAL_LOSS_STEPS = 10;

export interface ReportRun {
  /** Legend name: the run directory's name (made unique with its parent's name when needed). */
  name: string;
  dir: string;
  /** config.yaml as written by `adabatch train` (null when missing or unreadable). */
  config: Record<string, unknown> | null;
  rows: MetricsRow[];
}

export interface RunSummary {
  name: string;
  dir: string;
  schedule: string;
  /** 'finished' when the last row reached the budget; otherwise 'NN%' of the budget (or 'partial'). */
  status: string;
  finished: boolean;
  steps: number;
  samples: number;
  tokens: number;
  /** samples / steps */
  avgBatch: number | null;
  /** The batch of the last full step: a finished run's last step is shortened to land on the budget. */
  finalBatch: number | null;
  ranks: number | null;
  wallS: number | null;
  /** Mean training loss of the last FINAL_LOSS_STEPS steps (fewer when the run has fewer). */
  finalTrainLoss: number | null;
  bestVal: { loss: number; step: number } | null;
  finalVal: { loss: number; step: number } | null;
  valRows: number;
  /** A data mixture's tokens seen per source (tokens_by_source of the last row), or null. */
  tokensBySource: Record<string, number> | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** A name → count object (tokens_by_source), or null for anything else. */
function counts(v: unknown): Record<string, number> | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const entries = Object.entries(v);
  return entries.length > 0 && entries.every(([, n]) => num(n) !== null) ? (v as Record<string, number>) : null;
}

function readConfig(dir: string): Record<string, unknown> | null {
  const p = join(dir, 'config.yaml');
  if (!existsSync(p)) return null;
  try {
    const v = YAML.parse(readFileSync(p, 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Reads one run directory; a directory without metrics.jsonl is refused with a UserError. */
export function loadRun(dir: string): ReportRun {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new UserError(`${dir}: no such run directory`);
  }
  if (!isDir) throw new UserError(`${dir} is not a directory (give run directories, each holding metrics.jsonl)`);
  const metricsPath = join(dir, 'metrics.jsonl');
  if (!existsSync(metricsPath)) throw new UserError(`${dir} has no metrics.jsonl: not an adabatch run directory, or the run has not written its first step yet`);
  let rows: MetricsRow[];
  try {
    rows = readMetrics(metricsPath);
  } catch (e) {
    throw new UserError(`cannot read ${metricsPath}: ${(e as Error).message}`);
  }
  return { name: basename(resolve(dir)), dir, config: readConfig(dir), rows };
}

/** Loads several runs; names that collide get their parent directory's name in front. */
export function loadRuns(dirs: readonly string[]): ReportRun[] {
  const runs = dirs.map(loadRun);
  const count = new Map<string, number>();
  for (const r of runs) count.set(r.name, (count.get(r.name) ?? 0) + 1);
  for (const r of runs) if (count.get(r.name)! > 1) r.name = `${basename(dirname(resolve(r.dir)))}/${r.name}`;
  const seen = new Map<string, number>();
  for (const r of runs) {
    const k = seen.get(r.name) ?? 0;
    seen.set(r.name, k + 1);
    if (k > 0) r.name = `${r.name} (${k + 1})`;
  }
  return runs;
}

const fmtG = (v: unknown): string => (typeof v === 'number' ? String(Number(v.toPrecision(4))) : String(v));

/** A short description of the batch schedule and its key parameters, e.g. "norm η=0.8 microbatch, 16…256". */
export function describeSchedule(batch: unknown): string {
  if (!batch || typeof batch !== 'object') return 'norm (defaults)';
  const b = batch as Record<string, unknown>;
  const s = typeof b.schedule === 'string' ? b.schedule : 'norm';
  const parts: string[] = [];
  const range = (): string => (b.initial !== undefined || b.max !== undefined ? `${b.initial ?? 16}…${b.max ?? 256}` : '');
  switch (s) {
    case 'constant':
      parts.push(`constant b=${fmtG(b.batch)}`);
      break;
    case 'stagewise': {
      const stages = Array.isArray(b.stages) ? (b.stages as Array<Record<string, unknown>>) : [];
      parts.push(`stagewise ${stages.map((x) => fmtG(x.batch)).join('→')} (${stages.map((x) => `${fmtG(100 * Number(x.fraction))}%`).join('/')})`);
      break;
    }
    case 'ramp':
      parts.push(`ramp ${fmtG(b.start)}→${fmtG(b.max)} (+${fmtG(b.increment)} over ${fmtG(b.ramp_samples)} samples)`);
      break;
    case 'norm':
      parts.push(`norm η=${fmtG(b.eta ?? 0.8)} ${b.estimator ?? 'microbatch'}`, range());
      break;
    case 'inner_product':
      parts.push(`inner_product θ=${fmtG(b.theta)}`, range());
      break;
    case 'orthogonality':
      parts.push(`orthogonality ν=${fmtG(b.nu)}`, range());
      break;
    case 'augmented':
      parts.push(`augmented θ=${fmtG(b.theta)} ν=${fmtG(b.nu)}`, range());
      break;
    case 'gns':
      parts.push(`gns c=${fmtG(b.multiplier ?? 1)} (${b.source ?? 'micro'})`, range());
      break;
    case 'coordinate':
      parts.push(`coordinate η=${fmtG(b.eta ?? 0.2)} q=${fmtG(b.quantile ?? 0.95)}`, range());
      break;
    default:
      parts.push(s);
  }
  const ema = b.ema as { beta?: number } | null | undefined;
  if (ema && typeof ema.beta === 'number' && s !== 'gns') parts.push(`EMA β=${fmtG(ema.beta)}`);
  if (typeof b.hysteresis === 'number' && b.hysteresis > 0) parts.push(`h=${fmtG(b.hysteresis)}`);
  if (typeof b.test_interval === 'number' && b.test_interval > 1) parts.push(`test every ${b.test_interval}`);
  if (typeof b.start_after_samples === 'number' && b.start_after_samples > 0) parts.push(`from ${b.start_after_samples} samples`);
  if (typeof b.lr_scaling === 'string' && b.lr_scaling !== 'none') parts.push(`lr ${b.lr_scaling}`);
  const [head, ...rest] = parts.filter((p) => p !== '');
  return rest.length ? `${head}, ${rest.join(', ')}` : head!;
}

/** The run's budget from its config: {samples} or {tokens}, or null when unknown. */
export function budgetOf(config: Record<string, unknown> | null): { samples?: number; tokens?: number } | null {
  const b = config?.budget as Record<string, unknown> | undefined;
  if (!b) return null;
  if (typeof b.samples === 'number') return { samples: b.samples };
  if (typeof b.tokens === 'number') return { tokens: b.tokens };
  return null;
}

export function summarizeRun(run: ReportRun): RunSummary {
  const rows = run.rows;
  const last = rows.at(-1);
  const steps = num(last?.step) ?? rows.length;
  const samples = num(last?.samples) ?? 0;
  const tokens = num(last?.tokens) ?? 0;
  const budget = budgetOf(run.config);
  let finished = false;
  let status = rows.length ? 'partial' : 'no steps';
  if (budget && last) {
    const frac = budget.samples !== undefined ? samples / budget.samples : tokens / budget.tokens!;
    finished = frac >= 1;
    status = finished ? 'finished' : `${Math.floor(100 * frac)}%`;
  }
  // The budget's last step is shortened (b < the schedule's batch); report the last full step's batch.
  let finalBatch = num(last?.batch_size);
  if (finished && rows.length >= 2) {
    const prev = num(rows.at(-2)!.batch_size);
    if (prev !== null && finalBatch !== null && finalBatch < prev) finalBatch = prev;
  }
  const losses = rows.map((r) => num(r.loss)).filter((v): v is number => v !== null);
  const tail = losses.slice(-FINAL_LOSS_STEPS);
  let bestVal: RunSummary['bestVal'] = null;
  let finalVal: RunSummary['finalVal'] = null;
  let valRows = 0;
  for (const r of rows) {
    const v = num(r.val_loss);
    if (v === null) continue;
    valRows++;
    const step = num(r.step) ?? 0;
    finalVal = { loss: v, step };
    if (!bestVal || v < bestVal.loss) bestVal = { loss: v, step };
  }
  return {
    name: run.name,
    dir: run.dir,
    schedule: run.config ? describeSchedule(run.config.batch) : '? (no config.yaml)',
    status,
    finished,
    steps,
    samples,
    tokens,
    avgBatch: steps > 0 && rows.length ? samples / steps : null,
    finalBatch,
    ranks: num(last?.ranks),
    wallS: num(last?.elapsed_s),
    finalTrainLoss: tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : null,
    bestVal,
    finalVal,
    valRows,
    tokensBySource: counts(last?.tokens_by_source),
  };
}

export function formatDuration(s: number | null): string {
  if (s === null) return '–';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

export interface SummaryColumn {
  key: string;
  header: string;
  title: string;
  cell: (s: RunSummary) => string;
  right?: boolean;
  /** Shown only when some run has it (e.g. tokens by source: data mixtures only). */
  has?: (s: RunSummary) => boolean;
}

/** The summary table's columns: header, cell text, right-aligned. */
export const SUMMARY_COLUMNS: readonly SummaryColumn[] = [
  { key: 'run', header: 'run', title: 'run directory name', cell: (s) => s.name },
  { key: 'schedule', header: 'schedule', title: 'batch schedule and its key parameters (config.yaml)', cell: (s) => s.schedule },
  { key: 'status', header: 'status', title: 'finished (budget reached) or the fraction of the budget done', cell: (s) => s.status },
  { key: 'steps', header: 'steps', title: 'optimizer steps (metrics rows)', cell: (s) => String(s.steps), right: true },
  { key: 'avg_batch', header: 'avg batch', title: 'samples / steps', cell: (s) => (s.avgBatch === null ? '–' : s.avgBatch.toFixed(1)), right: true },
  { key: 'final_batch', header: 'final batch', title: "the last full step's global batch (the budget's last step may be shortened)", cell: (s) => (s.finalBatch === null ? '–' : String(s.finalBatch)), right: true },
  { key: 'wall', header: 'wall time', title: 'elapsed_s of the last row (h:mm:ss)', cell: (s) => formatDuration(s.wallS), right: true },
  { key: 'train_loss', header: `train loss*`, title: `mean training loss of the last ${FINAL_LOSS_STEPS} steps`, cell: (s) => (s.finalTrainLoss === null ? '–' : s.finalTrainLoss.toFixed(4)), right: true },
  { key: 'best_val', header: 'best val', title: 'lowest validation loss (at step)', cell: (s) => (s.bestVal ? `${s.bestVal.loss.toFixed(4)} @${s.bestVal.step}` : '–'), right: true },
  { key: 'final_val', header: 'final val', title: 'last validation loss (at step)', cell: (s) => (s.finalVal ? `${s.finalVal.loss.toFixed(4)} @${s.finalVal.step}` : '–'), right: true },
  { key: 'tokens', header: 'tokens', title: 'tokens seen', cell: (s) => formatCount(s.tokens), right: true },
  {
    key: 'tokens_by_source',
    header: 'tokens by source',
    title: 'tokens seen from each source of a data mixture (tokens_by_source), and its share',
    cell: (s) => (s.tokensBySource ? Object.entries(s.tokensBySource).map(([name, n]) => `${name} ${formatCount(n)} (${s.tokens > 0 ? Math.round((100 * n) / s.tokens) : 0}%)`).join(', ') : '–'),
    has: (s) => s.tokensBySource !== null,
  },
];

/** The columns these runs' table shows: the optional ones only when some run has them. */
export function summaryColumns(summaries: readonly RunSummary[]): SummaryColumn[] {
  return SUMMARY_COLUMNS.filter((c) => c.has === undefined || summaries.some(c.has));
}

/** The summary table as aligned plain text (for the terminal). */
export function formatSummaryTable(summaries: readonly RunSummary[]): string {
  const cols = summaryColumns(summaries);
  const cells = summaries.map((s) => cols.map((c) => c.cell(s)));
  const widths = cols.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (vals: readonly string[]): string =>
    vals
      .map((v, i) => (cols[i]!.right ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(cols.map((c) => c.header)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)];
  out.push(`* train loss: mean of the last ${FINAL_LOSS_STEPS} steps; val: validation loss @ step; final batch: the last full step's batch`);
  return out.join('\n');
}

/**
 * The report: ONE self-contained HTML file (uPlot's JS and CSS, the data and the page script all
 * inline; no network) with the summary table and one chart per metric, every run overlaid.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CHARTS, chartFields, runStyle, type ChartSpec } from './charts.js';
import { reportClient } from './client.js';
import { FINAL_LOSS_STEPS, summarizeRun, summaryColumns, type ReportRun, type RunSummary } from './runs.js';

export interface ReportOptions {
  title?: string;
  /** Shown under the title (e.g. the sweep file). */
  subtitle?: string;
  charts?: readonly ChartSpec[];
  /** Fixed "generated" time (tests); default now. */
  generatedAt?: Date;
}

const require = createRequire(import.meta.url);
let assetCache: { js: string; css: string; version: string } | null = null;

/** uPlot's minified IIFE build (defines window.uPlot) and stylesheet, from node_modules. */
function uplotAssets(): { js: string; css: string; version: string } {
  if (!assetCache) {
    const js = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
    const css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
    const version = (JSON.parse(readFileSync(require.resolve('uplot/package.json'), 'utf8')) as { version: string }).version;
    assetCache = { js, css, version };
  }
  return assetCache;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Escaped text where `field` becomes <code>field</code>. */
function withCode(s: string): string {
  return escapeHtml(s).replace(/`([^`]+)`/g, '<code>$1</code>');
}

/** Text safe inside <script>…</script>: no "</script", "<!--" can end or confuse the element. */
function scriptSafe(js: string): string {
  return js.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** A number rounded to 7 significant digits (smaller file; far below what a chart shows). */
function compact(v: unknown): number | null {
  if (typeof v !== 'number' || !Number.isFinite(v)) return null;
  return Number.isInteger(v) ? v : Number(v.toPrecision(7));
}

function runPayload(run: ReportRun, i: number, fields: readonly string[]): Record<string, unknown> {
  const cols: Record<string, Array<number | null>> = {};
  for (const f of fields) cols[f] = run.rows.map((r) => compact(r[f]));
  const { color, dash } = runStyle(i);
  return { name: run.name, color, dash, rows: run.rows.length, cols };
}

function summaryTable(summaries: readonly RunSummary[]): string {
  const columns = summaryColumns(summaries);
  const head = columns.map((c) => `<th title="${escapeHtml(c.title)}"${c.right ? ' class="num"' : ''}>${escapeHtml(c.header)}</th>`).join('');
  const body = summaries
    .map((s, i) => {
      const { color } = runStyle(i);
      const cells = columns.map((c) => {
        const text = escapeHtml(c.cell(s));
        if (c.key === 'run') return `<td><span class="swatch" style="background:${color}"></span>${text}</td>`;
        if (c.key === 'schedule') return `<td class="sched">${text}</td>`;
        return `<td${c.right ? ' class="num"' : ''}>${text}</td>`;
      }).join('');
      return `<tr data-run="${escapeHtml(s.name)}">${cells}</tr>`;
    })
    .join('\n');
  return `<div class="table-wrap"><table class="summary"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

const CSS = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0; background: #fafafa; }
header, section { max-width: 1400px; margin: 0 auto; padding: 0 20px; }
h1 { font-size: 22px; margin: 18px 0 2px; }
h2 { font-size: 17px; margin: 22px 0 8px; }
h3 { font-size: 15px; margin: 0 0 2px; }
.sub, .note { color: #555; font-size: 13px; margin: 2px 0; }
table.summary { border-collapse: collapse; background: #fff; font-size: 13px; }
table.summary th, table.summary td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; white-space: nowrap; }
table.summary th { background: #f0f0f0; cursor: help; }
table.summary td.num, table.summary th.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; }
table.summary td.sched { white-space: normal; min-width: 17em; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
figure.chart { background: #fff; border: 1px solid #ddd; border-radius: 4px; margin: 0; padding: 10px 12px; min-width: 0; }
figure.chart .desc { color: #555; font-size: 12px; margin: 0 0 6px; }
figure.chart .plot { min-width: 0; overflow: hidden; }
figure.chart .empty { color: #a00; font-size: 12px; }
.u-legend { font-size: 12px; }
.runs code { font-size: 12px; }
`;

export function renderReport(runs: readonly ReportRun[], opts: ReportOptions = {}): string {
  const charts = opts.charts ?? CHARTS;
  const fields = chartFields(charts);
  const title = opts.title ?? (runs.length === 1 ? `adabatch report: ${runs[0]!.name}` : `adabatch report: ${runs.length} runs`);
  const summaries = runs.map(summarizeRun);
  const { js, css, version } = uplotAssets();
  const payload = { title, charts, runs: runs.map((r, i) => runPayload(r, i, fields)) };
  const json = JSON.stringify(payload).replace(/</g, '\\u003c');
  const figures = charts
    .map(
      (c) => `<figure class="chart" id="chart-${escapeHtml(c.id)}" data-chart="${escapeHtml(c.id)}">
<h3>${escapeHtml(c.title)}</h3>
<p class="desc">${withCode(c.description)}</p>
<div class="plot"></div>
</figure>`,
    )
    .join('\n');
  const runList = runs.map((r) => `<li>${escapeHtml(r.name)}: <code>${escapeHtml(r.dir)}</code> (${r.rows.length} metrics rows)</li>`).join('\n');
  const generated = (opts.generatedAt ?? new Date()).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="adabatch report (uPlot ${escapeHtml(version)})">
<title>${escapeHtml(title)}</title>
<style>
/* uPlot ${escapeHtml(version)} (MIT) */
${css}
${CSS}
</style>
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
${opts.subtitle ? `<p class="sub">${escapeHtml(opts.subtitle)}</p>\n` : ''}<p class="sub">Generated ${escapeHtml(generated)} by <code>adabatch report</code> from ${runs.length} run${runs.length === 1 ? '' : 's'}.</p>
</header>
<section id="summary">
<h2>Summary</h2>
${summaryTable(summaries)}
<p class="note">train loss*: the mean training loss of the last ${FINAL_LOSS_STEPS} steps (fewer if the run has fewer). best / final val: validation loss @ step. final batch: the last full step’s global batch (the budget’s last step is shortened to land on it). avg batch: samples / steps. wall time: elapsed_s of the last row.${summaries.some((s) => s.tokensBySource) ? ' tokens by source: a data mixture’s tokens from each source (its share of all tokens).' : ''} status: finished when the last row reached the budget in config.yaml, else the fraction done (an interrupted or running run).</p>
<details class="runs"><summary>Run directories</summary><ul>
${runList}
</ul></details>
</section>
<section id="charts">
<h2>Charts</h2>
<p class="note">One chart per metric, every run overlaid in its colour. Each run's line holds exactly one point per row of its metrics.jsonl; the validation-loss charts hold exactly one point per row that has a val_loss. A row whose value is null (no test on that step, no noise-scale estimate yet) is a gap. Hover a chart to read values; drag to zoom, double-click to reset.</p>
<div class="grid">
${figures}
</div>
</section>
<script type="application/json" id="report-data">${json}</script>
<script>
${scriptSafe(js)}
</script>
<script>
${scriptSafe(`(${reportClient.toString()})(window);`)}
</script>
</body>
</html>
`;
}

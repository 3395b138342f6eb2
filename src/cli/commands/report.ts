/** `adabatch report`: one self-contained HTML report of one or more runs, and their summary table. */
import { parseArgs } from 'node:util';
import { formatSummaryTable, writeReport } from '../../report/index.js';
import { UserError } from '../../util/errors.js';

export const summary = 'an HTML report (charts and a summary table) of one or more run directories';

const HELP = `usage: adabatch report RUN_DIR… [--out report.html] [--title TITLE]

Writes ONE self-contained HTML file (it opens offline: the chart library is inlined) with the runs
overlaid: training and validation loss against samples, steps and wall time, the global batch size,
the learning rate, the batch test's statistic against the batch, the gradient-noise scale and
tokens/s, plus a summary table per run, which is also printed here. Runs may be finished,
interrupted or still running. See docs/reports.md.

options:
  --out FILE      where to write the report (default report.html)
  --title TEXT    the page title (default: the run's name, or "N runs")
  -h, --help      show this help`;

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { out: { type: 'string', short: 'o' }, title: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (parsed.values.help) {
    console.log(HELP);
    return 0;
  }
  if (parsed.positionals.length === 0) throw new UserError(`give at least one run directory\n\n${HELP}`);
  const out = parsed.values.out ?? 'report.html';
  const summaries = writeReport(parsed.positionals, out, parsed.values.title !== undefined ? { title: parsed.values.title } : {});
  console.log(formatSummaryTable(summaries));
  console.log(`\nreport: ${out}`);
  return 0;
}

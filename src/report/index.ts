/** Writing a report: load run directories, render the HTML, write it atomically, return the summaries. */
import { writeFileAtomic } from '../util/files.js';
import { renderReport, type ReportOptions } from './html.js';
import { loadRuns, summarizeRun, type RunSummary } from './runs.js';

export { CHARTS } from './charts.js';
export { renderReport } from './html.js';
export { describeSchedule, formatSummaryTable, loadRun, loadRuns, summarizeRun, FINAL_LOSS_STEPS, type ReportRun, type RunSummary } from './runs.js';

export function writeReport(dirs: readonly string[], out: string, opts: ReportOptions = {}): RunSummary[] {
  const runs = loadRuns(dirs);
  const html = renderReport(runs, opts);
  writeFileAtomic(out, html);
  return runs.map(summarizeRun);
}

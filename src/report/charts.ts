/**
 * The report's charts, as data: what each plots against what, on which scale. The page script
 * (client.ts) turns each into one uPlot chart with one series per run (and per plotted field).
 *
 * Point counts, by construction: a series holds exactly one point per metrics row of its run, or,
 * for the validation-loss charts, one per row that has a numeric val_loss. A row whose field is null
 * (e.g. test_stat on a step without a test, noise_scale before it exists) is a point with a null
 * value: a gap in the line.
 */

export type XField = 'samples' | 'step' | 'elapsed_s';
export type YScale = 'linear' | 'log2' | 'asinh';

export interface ChartSeriesSpec {
  field: string;
  /** Legend suffix when a chart plots several fields per run. */
  label: string;
  style: 'line' | 'points' | 'dashed';
}

export interface ChartSpec {
  id: string;
  title: string;
  description: string;
  x: XField;
  xLabel: string;
  yLabel: string;
  yScale: YScale;
  series: ChartSeriesSpec[];
  /** Only rows where this field is a number (the validation-loss charts). */
  rowsWhere?: string;
}

const X_LABEL: Record<XField, string> = {
  samples: 'samples (sequences seen)',
  step: 'optimizer step',
  elapsed_s: 'wall time (elapsed_s)',
};
const X_NAME: Record<XField, string> = { samples: 'samples', step: 'steps', elapsed_s: 'wall time' };

const line = (field: string, label = ''): ChartSeriesSpec => ({ field, label, style: 'line' });

function lossCharts(): ChartSpec[] {
  const out: ChartSpec[] = [];
  for (const x of ['samples', 'step', 'elapsed_s'] as const) {
    out.push({
      id: `loss-${x}`,
      title: `Training loss vs ${X_NAME[x]}`,
      description: 'Mean training loss of each optimizer step (metrics.jsonl `loss`).',
      x,
      xLabel: X_LABEL[x],
      yLabel: 'loss (nats/token)',
      yScale: 'linear',
      series: [line('loss')],
    });
  }
  for (const x of ['samples', 'step', 'elapsed_s'] as const) {
    out.push({
      id: `val-${x}`,
      title: `Validation loss vs ${X_NAME[x]}`,
      description: 'Loss on the fixed validation subset (`val_loss`), one point per evaluation row.',
      x,
      xLabel: X_LABEL[x],
      yLabel: 'validation loss (nats/token)',
      yScale: 'linear',
      series: [line('val_loss')],
      rowsWhere: 'val_loss',
    });
  }
  return out;
}

export const CHARTS: readonly ChartSpec[] = [
  ...lossCharts(),
  {
    id: 'batch',
    title: 'Global batch size vs samples',
    description: 'b = J·M·m of each step (`batch_size`, log₂ scale). A finished run’s last step is shortened to land on the budget.',
    x: 'samples',
    xLabel: X_LABEL.samples,
    yLabel: 'batch size (sequences, log₂)',
    yScale: 'log2',
    series: [line('batch_size')],
  },
  {
    id: 'lr',
    title: 'Learning rate vs samples',
    description: 'The learning rate used by each step (`lr`: warmup and decay by samples, times the lr_scaling factor).',
    x: 'samples',
    xLabel: X_LABEL.samples,
    yLabel: 'learning rate',
    yScale: 'linear',
    series: [line('lr')],
  },
  {
    id: 'test',
    title: 'Batch test: statistic T and batch b vs samples',
    description: 'Dots: the schedule’s test statistic T (`test_stat`; null on steps without a test). Dashed: the batch b of the step. The test fails when T > b, and the next batch is ⌈T⌉ (asinh scale: logarithmic above 1, linear near 0).',
    x: 'samples',
    xLabel: X_LABEL.samples,
    yLabel: 'sequences (asinh scale)',
    yScale: 'asinh',
    series: [
      { field: 'test_stat', label: 'T', style: 'points' },
      { field: 'batch_size', label: 'b', style: 'dashed' },
    ],
  },
  {
    id: 'noise',
    title: 'Gradient noise scale vs samples',
    description: 'B_simple = tr Σ / ‖G‖², smoothed (`noise_scale`; null while it cannot be estimated). Asinh scale.',
    x: 'samples',
    xLabel: X_LABEL.samples,
    yLabel: 'B_simple (sequences, asinh scale)',
    yScale: 'asinh',
    series: [line('noise_scale')],
  },
  {
    id: 'throughput',
    title: 'Throughput vs samples',
    description: 'Training tokens per second of each step (`tok_per_s`, wall clock).',
    x: 'samples',
    xLabel: X_LABEL.samples,
    yLabel: 'tokens / s',
    yScale: 'linear',
    series: [line('tok_per_s')],
  },
];

/** The metrics fields the charts read (embedded per run in the page). */
export function chartFields(charts: readonly ChartSpec[] = CHARTS): string[] {
  const f = new Set<string>();
  for (const c of charts) {
    f.add(c.x);
    if (c.rowsWhere) f.add(c.rowsWhere);
    for (const s of c.series) f.add(s.field);
  }
  return [...f];
}

/** Distinct run colours (Tableau 10); runs past ten reuse them with a dash pattern. */
export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
const DASHES: number[][] = [[], [8, 4], [2, 3], [10, 3, 2, 3]];

export function runStyle(i: number): { color: string; dash: number[] } {
  return { color: PALETTE[i % PALETTE.length]!, dash: DASHES[Math.floor(i / PALETTE.length) % DASHES.length]! };
}

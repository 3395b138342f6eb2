/**
 * The report page's script. It runs in the browser, not in Node: html.ts inlines its source text
 * (`reportClient.toString()`) after uPlot's, so it must be self-contained (no imports, no outer
 * variables) and reaches everything through the window it is given.
 *
 * For each chart spec it builds one uPlot chart. Every run contributes one series per plotted field,
 * with one point per metrics row (validation charts: per row with val_loss). Runs are aligned on the
 * union of their x values; where a run has no row at an x the value is `undefined` (uPlot draws the
 * line across it), and a row whose field is null is `null` (a gap), so a series' points are exactly
 * its entries !== undefined.
 *
 * What it exposes, for tests and people: `window.adabatchReport = {ready, charts: [{id, title, uplot,
 * series: [{run, field}]}], errors}`, where `uplot.data` is the live chart data, and on each chart's
 * <figure> `data-points` = JSON [{run, field, points, values}] counted from that live data.
 */

/* eslint-disable @typescript-eslint/no-explicit-any */
export function reportClient(win: any): void {
  const doc = win.document;
  const uPlot = win.uPlot;
  const registry: any = { ready: false, charts: [], errors: [] };
  win.adabatchReport = registry;
  const data = JSON.parse(doc.getElementById('report-data').textContent);

  const pad2 = (n: number): string => String(n).padStart(2, '0');
  const fmtDuration = (s: number): string => {
    if (s == null || !Number.isFinite(s)) return '';
    const t = Math.round(s);
    const h = Math.floor(t / 3600);
    const m = Math.floor((t % 3600) / 60);
    return h > 0 ? `${h}:${pad2(m)}:${pad2(t % 60)}` : `${m}:${pad2(t % 60)}`;
  };
  const fmtNum = (v: number): string => {
    if (v == null) return '';
    const a = Math.abs(v);
    if (a === 0) return '0';
    if (a >= 1e6) return (v / 1e6).toPrecision(3).replace(/\.?0+$/, '') + 'M';
    if (a >= 1e4) return (v / 1e3).toPrecision(3).replace(/\.?0+$/, '') + 'k';
    if (a < 1e-3) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  };

  const charts: any[] = [];
  for (const spec of data.charts) {
    const fig = doc.getElementById(`chart-${spec.id}`);
    const holder = fig.querySelector('.plot');
    const tables: Array<{ xs: number[]; ys: Array<number | null> }> = [];
    const series: any[] = [{ label: spec.xLabel, value: (_u: any, v: number) => (v == null ? '' : spec.x === 'elapsed_s' ? fmtDuration(v) : fmtNum(v)) }];
    const meta: any[] = [];
    const many = spec.series.length > 1;
    for (const ss of spec.series) {
      data.runs.forEach((run: any) => {
        const cols = run.cols;
        const xcol = cols[spec.x] || [];
        const ycol = cols[ss.field] || [];
        const where = spec.rowsWhere ? cols[spec.rowsWhere] || [] : null;
        const xs: number[] = [];
        const ys: Array<number | null> = [];
        for (let i = 0; i < run.rows; i++) {
          if (where && where[i] == null) continue;
          const x = xcol[i];
          if (x == null) continue;
          let y = ycol[i] == null ? null : ycol[i];
          if (spec.yScale === 'log2' && y != null && !(y > 0)) y = null;
          xs.push(x);
          ys.push(y);
        }
        tables.push({ xs, ys });
        const s: any = {
          label: many ? `${run.name} · ${ss.label}` : run.name,
          stroke: run.color,
          width: ss.style === 'dashed' ? 1 : 1.5,
          dash: ss.style === 'dashed' ? [5, 4] : run.dash,
          value: (_u: any, v: number) => (v == null ? '–' : fmtNum(v)),
          // Validation rows are few: always mark them. Elsewhere uPlot shows points when they are sparse.
          points: spec.rowsWhere ? { show: true, size: 5, fill: run.color } : { size: 5, fill: run.color },
        };
        if (ss.style === 'points') {
          s.paths = () => null;
          s.points = { show: true, size: 4, width: 0, fill: run.color, stroke: run.color };
        }
        series.push(s);
        meta.push({ run: run.name, field: ss.field });
      });
    }
    // Align every series on the sorted union of x values.
    const xset = new Set<number>();
    for (const t of tables) for (const x of t.xs) xset.add(x);
    const xs = Array.from(xset).sort((a, b) => a - b);
    const at = new Map<number, number>();
    xs.forEach((x, i) => at.set(x, i));
    const aligned: any[] = [xs];
    for (const t of tables) {
      const col = new Array(xs.length).fill(undefined);
      t.xs.forEach((x, i) => {
        col[at.get(x)!] = t.ys[i];
      });
      aligned.push(col);
    }
    const yScale: any = { auto: true };
    if (spec.yScale === 'log2') Object.assign(yScale, { distr: 3, log: 2 });
    if (spec.yScale === 'asinh') Object.assign(yScale, { distr: 4, log: 10, asinh: 1 });
    const width = Math.max(320, holder.clientWidth || 600);
    const opts = {
      width,
      height: 300,
      cursor: { sync: { key: spec.x } },
      scales: { x: { time: false }, y: yScale },
      axes: [
        {
          label: spec.xLabel,
          // Wall time as m:ss, or in seconds while the whole axis is under a minute.
          values: (_u: any, splits: number[]) => {
            const short = spec.x === 'elapsed_s' && splits.every((v) => v == null || Math.abs(v) < 60);
            return splits.map((v) => (spec.x !== 'elapsed_s' ? fmtNum(v) : short ? (v == null ? '' : `${Number(v.toPrecision(3))}s`) : fmtDuration(v)));
          },
        },
        { label: spec.yLabel, size: 64, values: (_u: any, splits: number[]) => splits.map((v) => (v == null ? '' : fmtNum(v))) },
      ],
      series,
    };
    const u = new uPlot(opts, aligned, holder);
    const counts = meta.map((m, i) => {
      const col: any[] = u.data[i + 1];
      let points = 0;
      let values = 0;
      for (let k = 0; k < col.length; k++) {
        if (col[k] !== undefined) points++;
        if (col[k] != null) values++;
      }
      return { run: m.run, field: m.field, points, values };
    });
    fig.setAttribute('data-points', JSON.stringify(counts));
    if (counts.every((c) => c.values === 0)) {
      const note = doc.createElement('p');
      note.className = 'empty';
      note.textContent = xs.length === 0 ? 'No rows to plot for any run.' : 'No values to plot: the field is null in every row.';
      fig.appendChild(note);
    }
    charts.push({ id: spec.id, title: spec.title, uplot: u, holder, series: meta });
  }
  registry.charts = charts;

  let timer: any = null;
  win.addEventListener('resize', () => {
    if (timer) win.clearTimeout(timer);
    timer = win.setTimeout(() => {
      for (const c of charts) c.uplot.setSize({ width: Math.max(320, c.holder.clientWidth || 600), height: 300 });
    }, 100);
  });
  registry.ready = true;
  doc.body.setAttribute('data-report-ready', 'true');
}

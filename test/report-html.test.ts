/**
 * adabatch report: summaries and schedule descriptions (pure), refusals, and the HTML of three real
 * tiny runs (a norm-test run with validation rows, a constant run evaluated only at the end, and an
 * interrupted run with no validation rows) rendered in Debian's headless Chromium: no console or page
 * errors, no request leaves file://, and every chart holds as many points per run as the run has
 * metrics rows (validation charts: rows with val_loss), counted from the live uPlot data and
 * compared with metrics.jsonl read here, not with anything the generator says.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readMetrics, type MetricsRow } from '../src/io/metrics.js';
import { CHARTS } from '../src/report/charts.js';
import { renderReport } from '../src/report/html.js';
import { describeSchedule, formatSummaryTable, loadRun, loadRuns, summarizeRun, type ReportRun } from '../src/report/runs.js';
import { loadTrainConfig } from '../src/train/config.js';
import { Progress } from '../src/train/progress.js';
import { runTrain } from '../src/train/run.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './helpers/tmp.js';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const quiet = { log: () => {}, progress: new Progress(process.stderr, 1e9, false) };

const tmp = (): string => tempDir('adabatch-report-');

function fakeRun(rows: MetricsRow[], config: Record<string, unknown> | null, name = 'run'): ReportRun {
  return { name, dir: `/x/${name}`, config, rows };
}

test('describeSchedule names the schedule and its key parameters', () => {
  assert.equal(describeSchedule({ schedule: 'norm', eta: 0.8, estimator: 'microbatch', initial: 16, max: 256, ema: null, hysteresis: 0, lr_scaling: 'none' }), 'norm η=0.8 microbatch, 16…256');
  assert.equal(describeSchedule({ schedule: 'constant', batch: 64 }), 'constant b=64');
  assert.equal(
    describeSchedule({
      schedule: 'stagewise',
      stages: [
        { batch: 16, fraction: 0.025 },
        { batch: 32, fraction: 0.025 },
        { batch: 64, fraction: 0.95 },
      ],
    }),
    'stagewise 16→32→64 (2.5%/2.5%/95%)',
  );
  assert.equal(describeSchedule({ schedule: 'augmented', theta: 0.9, nu: 5, initial: 64, max: 4096, ema: { beta: 0.9 }, hysteresis: 0.1, lr_scaling: 'sqrt' }), 'augmented θ=0.9 ν=5, 64…4096, EMA β=0.9, h=0.1, lr sqrt');
  assert.equal(describeSchedule({ schedule: 'norm', eta: 0.25, estimator: 'paper', initial: 16, max: 256 }), 'norm η=0.25 paper, 16…256');
  assert.equal(describeSchedule(undefined), 'norm (defaults)');
});

test('summarizeRun: finished with a shortened last step, interrupted, no validation rows, null fields', () => {
  const rows: MetricsRow[] = [];
  let samples = 0;
  const batches = [16, 16, 32, 32, 32, 8];
  batches.forEach((b, i) => {
    samples += b;
    rows.push({ step: i + 1, samples, tokens: samples * 32, batch_size: b, loss: 10 - i, test_stat: i === 5 ? null : 20, elapsed_s: i + 1, ...(i === 2 || i === 5 ? { val_loss: i === 2 ? 7.5 : 7.9 } : {}) });
  });
  const cfg = { batch: { schedule: 'norm', eta: 0.5, estimator: 'microbatch', initial: 16, max: 64 }, budget: { samples: 136 } };
  const s = summarizeRun(fakeRun(rows, cfg));
  assert.equal(s.status, 'finished');
  assert.equal(s.steps, 6);
  assert.equal(s.samples, 136);
  assert.equal(s.finalBatch, 32, 'the shortened last step (8) is not the final batch');
  assert.ok(Math.abs(s.avgBatch! - 136 / 6) < 1e-12);
  assert.equal(s.finalTrainLoss, (10 + 9 + 8 + 7 + 6 + 5) / 6, 'mean of the last (up to 10) steps');
  assert.deepEqual(s.bestVal, { loss: 7.5, step: 3 });
  assert.deepEqual(s.finalVal, { loss: 7.9, step: 6 });
  assert.equal(s.wallS, 6);

  const partial = summarizeRun(fakeRun(rows.slice(0, 2).map(({ val_loss: _v, ...r }) => r), cfg));
  assert.equal(partial.status, '23%');
  assert.equal(partial.finished, false);
  assert.equal(partial.finalBatch, 16);
  assert.equal(partial.bestVal, null);
  assert.equal(partial.finalVal, null);

  const table = formatSummaryTable([s, partial, summarizeRun(fakeRun([], null, 'empty'))]);
  assert.match(table, /^run\s+schedule\s+status\s+steps/m);
  assert.match(table, /norm η=0\.5 microbatch, 16…64\s+finished\s+6\s+22\.7\s+32\s+0:06\s+7\.5000\s+7\.5000 @3\s+7\.9000 @6/);
  assert.match(table, /23%/);
  assert.match(table, /empty\s+\? \(no config\.yaml\)\s+no steps/);
  assert.match(table, /mean of the last 10 steps/);
});

test('loadRun refuses a directory without metrics.jsonl, a missing directory and a file', () => {
  const dir = tmp();
  assert.throws(() => loadRun(dir), (e: unknown) => e instanceof UserError && /has no metrics\.jsonl/.test(e.message));
  assert.throws(() => loadRun(join(dir, 'nope')), (e: unknown) => e instanceof UserError && /no such run directory/.test(e.message));
  writeFileSync(join(dir, 'f.txt'), 'x');
  assert.throws(() => loadRun(join(dir, 'f.txt')), (e: unknown) => e instanceof UserError && /not a directory/.test(e.message));
  const r = spawnSync(process.execPath, [BIN, 'report', dir, '--out', join(dir, 'r.html')], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^adabatch: .* has no metrics\.jsonl/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(existsSync(join(dir, 'r.html')), false);
});

test('a torn last line is ignored, names are made unique, and run names are escaped in the HTML', () => {
  const root = tmp();
  for (const parent of ['a', 'b']) {
    const d = join(root, parent, '<script>x');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'metrics.jsonl'), JSON.stringify({ step: 1, samples: 4, tokens: 64, batch_size: 4, loss: 3, elapsed_s: 0.1 }) + '\n');
  }
  appendFileSync(join(root, 'a', '<script>x', 'metrics.jsonl'), '{"step": 2, "sampl');
  const runs = loadRuns([join(root, 'a', '<script>x'), join(root, 'b', '<script>x')]);
  assert.deepEqual(
    runs.map((r) => r.name),
    ['a/<script>x', 'b/<script>x'],
  );
  assert.equal(runs[0]!.rows.length, 1);
  const html = renderReport(runs);
  assert.ok(!html.includes('<script>x'), 'run names are escaped');
  assert.ok(html.includes('a/&lt;script&gt;x'));
  assert.ok(!/<script[^>]+src=/i.test(html) && !/<link[^>]+href=/i.test(html), 'no external scripts or stylesheets');
  assert.ok(!/https?:\/\/(?!github\.com\/leeoniya)/.test(html.replace(/<script type="application\/json"[\s\S]*?<\/script>/, '')), 'no URL other than the uPlot licence banner');
});

// ---------------------------------------------------------------------------------------------
// Real runs rendered in Chromium

function sets(runDir: string, extra: string[]): string[] {
  return [
    `run_dir=${runDir}`,
    'model.preset=tiny',
    'model.n_layers=2',
    'model.seq_len=32',
    'data={synthetic: {phrases: 16, phrase_len: 6}}',
    'budget.samples=320',
    'eval.windows=8',
    'lr.lr=0.003',
    'threads=1',
    'log_every_s=1000',
    ...extra,
  ];
}

interface LiveSeries {
  run: string;
  field: string;
  points: number;
  values: number;
  xs: number[];
  ys: Array<number | null>;
}
interface LiveChart {
  id: string;
  title: string;
  inked: number;
  series: LiveSeries[];
  attr: string | null;
}

test('report of three real runs in headless Chromium: no errors, offline, points per chart = metrics rows', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium): browser part skipped` }, async () => {
  const root = tmp();
  const dirs = { norm: join(root, 'norm'), constant: join(root, 'constant'), stopped: join(root, 'stopped') };
  await runTrain(loadTrainConfig(undefined, sets(dirs.norm, ['batch={schedule: norm, eta: 0.5, initial: 4, max: 64, max_micro: 8}', 'eval.every_samples=64'])), quiet);
  await runTrain(loadTrainConfig(undefined, sets(dirs.constant, ['batch={schedule: constant, batch: 16, max_micro: 8}', 'eval.every_samples=0'])), quiet);
  let n = 0;
  const stopped = await runTrain(loadTrainConfig(undefined, sets(dirs.stopped, ['batch={schedule: constant, batch: 8, max_micro: 8}', 'eval.every_samples=0'])), { ...quiet, shouldStop: () => ++n > 3 });
  assert.ok(stopped.stoppedEarly);

  const expected = Object.fromEntries(Object.entries(dirs).map(([k, d]) => [k, readMetrics(join(d, 'metrics.jsonl'))])) as Record<keyof typeof dirs, MetricsRow[]>;
  const valRows = (rows: MetricsRow[]): MetricsRow[] => rows.filter((r) => typeof r.val_loss === 'number');
  assert.ok(valRows(expected.norm).length >= 4, 'the norm run evaluates several times');
  assert.equal(valRows(expected.constant).length, 1, 'the constant run evaluates only at the end');
  assert.equal(valRows(expected.stopped).length, 0, 'the interrupted run has no validation rows');
  assert.equal(expected.stopped.length, 4);
  assert.ok(expected.norm.some((r) => r.test_stat === null) || expected.constant.every((r) => r.test_stat === null), 'null test statistics occur');

  const out = join(root, 'out', 'report.html');
  const cli = spawnSync(process.execPath, [BIN, 'report', dirs.norm, dirs.constant, dirs.stopped, '--out', out, '--title', 'Three runs'], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /^norm\s+norm η=0\.5 microbatch, 4…64\s+finished/m);
  assert.match(cli.stdout, /^constant\s+constant b=16\s+finished/m);
  assert.match(cli.stdout, /^stopped\s+constant b=8\s+\d+%\s+4\s/m);
  assert.ok(existsSync(out));

  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'adabatch-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1300, height: 900 },
  });
  try {
    const page = await context.newPage();
    const problems: string[] = [];
    const external: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file://')) return route.continue();
      external.push(url);
      return route.abort();
    });
    await page.goto(pathToFileURL(out).href);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    await page.waitForFunction(() => (globalThis as any).adabatchReport?.ready === true, null, { timeout: 15000 });
    assert.equal(await page.title(), 'Three runs');

    const live = (await page.evaluate(() => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const win = globalThis as any;
      type U = { data: Array<Array<number | null | undefined>>; root: any };
      const reg = (win as { adabatchReport: { charts: Array<{ id: string; title: string; uplot: U; series: Array<{ run: string; field: string }> }> } }).adabatchReport;
      return reg.charts.map((c) => {
        const xs = c.uplot.data[0]!;
        const canvas = c.uplot.root.querySelector('canvas');
        const px: Uint8ClampedArray = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) inked++;
        return {
          id: c.id,
          title: c.title,
          inked,
          attr: win.document.getElementById(`chart-${c.id}`)!.getAttribute('data-points'),
          series: c.series.map((s, k) => {
            const col = c.uplot.data[k + 1]!;
            const pts: number[] = [];
            const ys: Array<number | null> = [];
            col.forEach((v, i) => {
              if (v === undefined) return;
              pts.push(xs[i] as number);
              ys.push(v);
            });
            return { run: s.run, field: s.field, points: pts.length, values: ys.filter((v) => v !== null).length, xs: pts, ys };
          }),
        };
      });
    })) as LiveChart[];

    assert.deepEqual(problems, [], 'no console errors or page errors');
    assert.deepEqual(external, [], 'the page requests nothing outside the file');
    assert.deepEqual(
      live.map((c) => c.id),
      CHARTS.map((c) => c.id),
      'one live chart per chart spec',
    );
    for (const id of ['loss-samples', 'loss-step', 'loss-elapsed_s', 'val-samples', 'val-step', 'val-elapsed_s', 'batch', 'lr', 'test', 'noise', 'throughput']) assert.ok(live.some((c) => c.id === id), `chart ${id}`);

    for (const chart of live) {
      const spec = CHARTS.find((c) => c.id === chart.id)!;
      assert.ok(chart.inked > 500, `chart ${chart.id} has something drawn (${chart.inked} inked pixels)`);
      assert.equal(chart.series.length, spec.series.length * 3, `chart ${chart.id}: one series per run and field`);
      for (const s of chart.series) {
        const rows = expected[s.run as keyof typeof dirs];
        assert.ok(rows, `series of run ${s.run}`);
        const plotted = spec.rowsWhere ? rows.filter((r) => typeof r[spec.rowsWhere!] === 'number') : rows;
        assert.equal(s.points, plotted.length, `chart ${chart.id}, run ${s.run}, ${s.field}: ${s.points} points for ${plotted.length} ${spec.rowsWhere ? 'rows with ' + spec.rowsWhere : 'metrics rows'}`);
        assert.equal(s.values, plotted.filter((r) => typeof r[s.field] === 'number').length, `chart ${chart.id}, run ${s.run}: non-null values = rows with a numeric ${s.field}`);
        const close = (a: unknown, b: unknown): boolean => typeof a === 'number' && typeof b === 'number' && Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
        assert.ok(
          s.xs.every((x, i) => close(x, plotted[i]![spec.x])),
          `chart ${chart.id}, run ${s.run}: x values are the rows' ${spec.x} (to the 7 digits the page keeps)`,
        );
        s.ys.forEach((y, i) => {
          const want = plotted[i]![s.field];
          if (typeof want !== 'number') assert.equal(y, null, `chart ${chart.id}: a null ${s.field} is a gap`);
          else assert.ok(Math.abs((y as number) - want) <= 1e-6 * Math.max(1, Math.abs(want)), `chart ${chart.id}, run ${s.run}, point ${i}: ${y} vs ${want}`);
        });
      }
      const attr = JSON.parse(chart.attr!) as Array<{ run: string; points: number }>;
      assert.deepEqual(
        attr.map((a) => a.points),
        chart.series.map((s) => s.points),
        `chart ${chart.id}: data-points matches the live data`,
      );
    }
    // The run without validation rows is present in the validation charts with zero points.
    const val = live.find((c) => c.id === 'val-samples')!;
    assert.equal(val.series.find((s) => s.run === 'stopped')!.points, 0);
    assert.equal(val.series.find((s) => s.run === 'constant')!.points, 1);

    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const table = await page.$$eval('table.summary tbody tr', (trs: any[]) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td: any) => String(td.textContent).trim())));
    assert.equal(table.length, 3);
    assert.deepEqual(
      table.map((r) => r[0]),
      ['norm', 'constant', 'stopped'],
    );
    assert.equal(table[2]![2]!.endsWith('%'), true, 'the stopped run is shown as partial');
    assert.equal(table[0]![3], String(expected.norm.length), 'steps column');
    assert.equal(table[2]![8], '–', 'no best validation loss for the stopped run');
  } finally {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
  rmSync(root, { recursive: true, force: true });
});

// Compares the norm test between two runs that differ only in precision, against the noise of the
// statistic itself. Usage:
//   node experiments/precision-compare.mjs runs/precision/f32-seed0 runs/precision/bf16-seed0 [more runs…]
// Prints each run's validation loss and batch trajectory; then, over the steps A and B share with the
// same batch size, the median and largest relative difference of the norm test statistic T_k and of
// ‖ḡ‖², and how often the test decision agrees; and, as the statistic's own noise, the median relative
// change of T_k from one step to the next within run A (same batch size: only the sampled batch differs).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [a, b, ...others] = process.argv.slice(2);
if (!a || !b) {
  console.error('usage: node experiments/precision-compare.mjs RUN_A RUN_B [RUN_SAME_PRECISION_OTHER_SEED]');
  process.exit(2);
}
const rows = (dir) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const train = (dir) => rows(dir).filter((r) => r.test_stat !== undefined);
const evals = (dir) => rows(dir).filter((r) => r.val_loss !== undefined);
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;

function compare(x, y) {
  const rx = train(x);
  const ry = train(y);
  const dt = [];
  const dg = [];
  let agree = 0;
  let n = 0;
  for (let i = 0; i < Math.min(rx.length, ry.length); i++) {
    if (rx[i].batch_size !== ry[i].batch_size) break; // the runs' trajectories part here
    dt.push(Math.abs(rx[i].test_stat - ry[i].test_stat) / Math.abs(rx[i].test_stat));
    dg.push(Math.abs(rx[i].grad_sq_norm - ry[i].grad_sq_norm) / rx[i].grad_sq_norm);
    agree += rx[i].test_passed === ry[i].test_passed ? 1 : 0;
    n++;
  }
  return { steps: n, tMedian: median(dt), tMax: Math.max(...dt), gMedian: median(dg), decisions: `${agree}/${n}` };
}

const growth = (dir) => train(dir).filter((r, i, all) => i === 0 || r.batch_size !== all[i - 1].batch_size).map((r) => `${r.batch_size}@${r.step}`).join(' ');
const fmt = (c) => `${c.steps} shared steps: T_k differs by ${(100 * c.tMedian).toFixed(2)}% (median), ${(100 * c.tMax).toFixed(2)}% (max); ‖ḡ‖² by ${(100 * c.gMedian).toFixed(2)}% (median); same decision ${c.decisions}`;
for (const d of [a, b, ...others]) {
  const last = evals(d).at(-1);
  console.log(`${d}: validation loss ${last?.val_loss?.toFixed(4)}; batch ${growth(d)}`);
}
console.log(`${a} vs ${b}: ${fmt(compare(a, b))}`);
const ra = train(a);
const drift = [];
for (let i = 1; i < ra.length; i++) if (ra[i].batch_size === ra[i - 1].batch_size) drift.push(Math.abs(ra[i].test_stat - ra[i - 1].test_stat) / Math.abs(ra[i].test_stat));
console.log(`${a}, step to step at an unchanged batch (the statistic's own noise): T_k changes by ${(100 * median(drift)).toFixed(1)}% (median over ${drift.length} steps)`);

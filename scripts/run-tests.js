// Runs the compiled test files: `*.test.js` (the default suite) or, with --slow, `*.slow.test.js`.
// Extra arguments filter files by substring, e.g. `node scripts/run-tests.js golden`.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const slow = args.includes('--slow');
const filters = args.filter((a) => !a.startsWith('--'));

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}
const files = walk('dist/test')
  .filter((f) => f.endsWith('.test.js') && f.endsWith('.slow.test.js') === slow)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  // A compiled test whose TypeScript source was deleted or renamed is stale output (tsc never
  // removes files from dist/): skip it rather than run a test that no longer exists.
  .filter((f) => existsSync(f.replace(/^dist[\\/]/, '').replace(/\.js$/, '.ts')))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);

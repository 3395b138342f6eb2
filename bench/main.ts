/**
 * Benchmarks (not tests): `npm run bench -- <name> [options]` runs bench/<name>.ts, which exports
 * `run(argv): Promise<void>` and a one-line `summary`. bench/common.ts holds shared helpers.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface BenchModule {
  summary: string;
  run(argv: string[]): Promise<void>;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const names = readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'main.js' && f !== 'common.js')
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (!name || !names.includes(name)) {
  if (name) console.error(`bench: unknown benchmark '${name}'`);
  console.error('usage: npm run bench -- <name> [options]\n\nbenchmarks:');
  for (const n of names) {
    const mod = (await import(`./${n}.js`)) as BenchModule;
    console.error(`  ${n.padEnd(12)}${mod.summary}`);
  }
  process.exit(name ? 2 : 0);
}
const mod = (await import(`./${name}.js`)) as BenchModule;
await mod.run(rest);

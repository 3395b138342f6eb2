#!/usr/bin/env node
// Entry point of the `adabatch` command: runs the compiled CLI (npm run build creates dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  console.error('adabatch is not built yet: run `npm run build` (or `bash scripts/setup.sh`) in the repository first.');
  process.exit(1);
}
await import(main);

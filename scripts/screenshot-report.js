#!/usr/bin/env node
// Screenshots of a report written by `adabatch report` / `adabatch sweep`, for the docs:
//   node scripts/screenshot-report.js REPORT.html OUT.png [--width 1300] [--full]
// Uses Debian's headless Chromium (/usr/bin/chromium) through playwright-core; nothing is downloaded.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const positional = args.filter((a, i) => !a.startsWith('--') && !(args[i - 1] === '--width'));
const width = args.includes('--width') ? Number(args[args.indexOf('--width') + 1]) : 1300;
const full = args.includes('--full');
const [report, out] = positional;
const CHROMIUM = '/usr/bin/chromium';
if (!report || !out) {
  console.error('usage: node scripts/screenshot-report.js REPORT.html OUT.png [--width PX] [--full]');
  process.exit(2);
}
if (!existsSync(report)) {
  console.error(`screenshot-report: ${report}: no such file`);
  process.exit(2);
}
if (!Number.isInteger(width) || width < 400) {
  console.error('screenshot-report: --width must be an integer ≥ 400');
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`screenshot-report: ${CHROMIUM} is absent (apt-get install chromium)`);
  process.exit(2);
}
const { chromium } = await import('playwright-core');
const userDataDir = mkdtempSync(join(tmpdir(), 'adabatch-shot-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width, height: 900 },
});
try {
  const page = await context.newPage();
  await page.goto(pathToFileURL(resolve(report)).href);
  await page.waitForLoadState('load');
  await page.waitForTimeout(300);
  await page.screenshot({ path: out, fullPage: full });
  console.log(`screenshot-report: wrote ${out}`);
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}

/**
 * The code's shape, checked so it stays so (docs/design.md, "Layers"):
 * - folders under src/ are layers and every import points down (or stays in its folder);
 * - no import cycle between files;
 * - nothing tracked in the repository refers to files outside it (the project's shared notes folder) or to a machine path.
 * Imports are read from the TypeScript sources (static `from '…'` and dynamic `import('…')`).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = join(ROOT, 'src');

/** Layer of each folder under src/: a file may import its own folder and folders of a lower layer. */
const LAYER: Record<string, number> = {
  util: 0,
  addon: 0,
  backend: 1,
  model: 2,
  data: 2,
  io: 3,
  optim: 3,
  batch: 3,
  parallel: 4,
  train: 5,
  report: 5,
  sweep: 6,
  cli: 7,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Relative imports of a file, resolved to .ts source paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs.map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
}

const folderOf = (file: string): string => relative(SRC, file).split('/')[0]!;
const files = sourceFiles(SRC);

test('architecture: every folder under src/ has a layer, and imports point down', () => {
  const upward: string[] = [];
  for (const file of files) {
    const from = folderOf(file);
    assert.ok(from in LAYER, `src/${from}/ has no layer in this test (add it to LAYER and to docs/design.md)`);
    for (const target of importsOf(file)) {
      const to = folderOf(target);
      if (to === from) continue;
      if (!(LAYER[to]! < LAYER[from]!)) upward.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)} (${from} → ${to})`);
    }
  }
  assert.deepEqual(upward, [], 'imports that do not point to a lower layer');
  assert.ok(files.length > 50, `read ${files.length} source files`);
});

test('architecture: no import cycle between source files', () => {
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => t.startsWith(SRC))]));
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(' → '));
      return;
    }
    state.set(f, 'open');
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, []);
});

test('the repository refers to nothing outside it: no path into the shared notes folder, no machine path', () => {
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  const offenders: string[] = [];
  for (const file of tracked) {
    if (/\.(png|jpe?g|safetensors|gz)$/.test(file) || file === 'package-lock.json') continue;
    let text: string;
    try {
      text = readFileSync(join(ROOT, file), 'utf8');
    } catch {
      continue; // listed but removed in the working tree
    }
    text.split('\n').forEach((line, i) => {
      if (/\.\.\/shared\/|\/work\/(main|shared)\b|\/root\//.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim().slice(0, 120)}`);
    });
  }
  assert.ok(tracked.length > 50, `git ls-files listed ${tracked.length} files`);
  assert.deepEqual(offenders, []);
});

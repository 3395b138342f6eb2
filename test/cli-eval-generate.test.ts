/**
 * `adabatch eval` and `adabatch generate` on a checkpoint from a short real training run; eval's loss
 * against an independent PyTorch implementation of Hugging Face's Llama (tools/hf/verify_export.py).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { randInts } from './helpers/num.js';
import { tempDir } from './helpers/tmp.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(root, 'bin/adabatch.js');
const dir = tempDir('adabatch-cli-');
const run = join(dir, 'run');

function cli(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

const trained = cli('train', '--set', `run_dir=${run}`, '--set', 'model.preset=tiny', '--set', 'model.n_layers=2', '--set', 'data.tokenizer.vocab=512', '--set', 'budget.samples=96', '--set', 'batch={schedule: constant, batch: 32}', '--set', 'eval.every_samples=0', '--set', 'eval.windows=4');

function torchAvailable(): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
}

test('eval --tokens --json matches the PyTorch Hugging Face Llama forward on our checkpoint', { skip: !torchAvailable() && 'python3-torch is not installed' }, () => {
  assert.equal(trained.status, 0, trained.stderr);
  const seqs = [Array.from(randInts(40, 512, 1)), Array.from(randInts(7, 512, 2))];
  const file = join(dir, 'tokens.json');
  writeFileSync(file, JSON.stringify(seqs));
  const ours = cli('eval', '--ckpt', run, '--tokens', file, '--json');
  assert.equal(ours.status, 0, ours.stderr);
  const a = JSON.parse(ours.stdout) as { loss: number; tokens: number };
  assert.equal(a.tokens, 39 + 6, 'tokens 1..n−1 of each sequence');
  writeFileSync(join(dir, 'with-single.json'), JSON.stringify([...seqs, [5]]));
  const single = JSON.parse(cli('eval', '--ckpt', run, '--tokens', join(dir, 'with-single.json'), '--json').stdout) as { loss: number; tokens: number };
  assert.deepEqual(single, a, 'a one-token sequence predicts nothing');
  const ck = JSON.parse(cli('eval', '--ckpt', run, '--tokens', file, '--json', '--backend', 'ref').stdout) as { loss: number };
  assert.ok(Math.abs(ck.loss - a.loss) / a.loss < 1e-5, 'cpu and ref agree');
  const latest = spawnSync('/usr/bin/python3', ['-c', `import glob; print(sorted(glob.glob('${run}/checkpoints/step-*'))[-1])`], { encoding: 'utf8' }).stdout.trim();
  const torch = spawnSync('/usr/bin/python3', [join(root, 'tools/hf/verify_export.py'), '--model', latest, '--tokens', file], { encoding: 'utf8' });
  assert.equal(torch.status, 0, torch.stderr);
  const b = JSON.parse(torch.stdout) as { loss: number; tokens: number };
  assert.equal(b.tokens, a.tokens);
  assert.ok(Math.abs(a.loss - b.loss) / b.loss < 1e-5, `adabatch ${a.loss} vs PyTorch/HF ${b.loss}`);
});

test('eval and generate refuse bad input with a clear message and exit code 2', () => {
  assert.equal(trained.status, 0, trained.stderr);
  const bad = (name: string, content: string): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  const cases: Array<[string[], RegExp]> = [
    [['eval', '--ckpt', join(dir, 'missing')], /no such directory/],
    [['eval', '--ckpt', run, '--tokens', join(dir, 'nope.json')], /nope\.json: no such file/],
    [['eval', '--ckpt', run, '--tokens', bad('a.json', '{"x":1}')], /expected a JSON array/],
    [['eval', '--ckpt', run, '--tokens', bad('b.json', '[[1,2,999999]]')], /sequence 0, position 2: 999999 is not a token id/],
    [['eval', '--ckpt', run, '--tokens', bad('c.json', `[${JSON.stringify(Array(300).fill(1))}]`)], /context is 128/],
    [['eval', '--ckpt', run, '--tokens', bad('d.json', '[[1, 2')], /not valid JSON/],
    [['eval', '--ckpt', run, '--bogus'], /Unknown option '--bogus'/],
    [['generate', '--ckpt', run, '--prompt', 'x', '--temperature=-1'], /--temperature must be a number ≥ 0/],
    [['generate', '--ckpt', run], /--ckpt and --prompt are required/],
  ];
  for (const [args, re] of cases) {
    const r = cli(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  }
});

test('generate continues a prompt deterministically for a seed, and greedily at temperature 0', () => {
  assert.equal(trained.status, 0, trained.stderr);
  const g = (seed: string, t: string) => cli('generate', '--ckpt', run, '--prompt', 'The jury', '--max-tokens', '12', '--seed', seed, '--temperature', t);
  const a = g('1', '0.9');
  assert.equal(a.status, 0, a.stderr);
  assert.ok(a.stdout.startsWith('The jury') && a.stdout.trim().length > 'The jury'.length, a.stdout);
  assert.equal(g('1', '0.9').stdout, a.stdout, 'same seed, same text');
  assert.equal(g('2', '0').stdout, g('3', '0').stdout, 'greedy ignores the seed');
});

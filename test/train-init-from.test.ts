/**
 * Continued pretraining (`init_from`) from a Hugging Face Llama directory written by PyTorch
 * (bfloat16, sharded): the first training step's loss equals the loss an independent PyTorch
 * implementation of the Hugging Face forward computes on the same samples.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SyntheticStream } from '../src/data/synthetic.js';
import { readMetrics } from '../src/io/metrics.js';
import { loadTrainConfig } from '../src/train/config.js';
import { Progress } from '../src/train/progress.js';
import { runTrain } from '../src/train/run.js';
import { tempDir } from './helpers/tmp.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const PY = '/usr/bin/python3';
const torchMissing = spawnSync(PY, ['-c', 'import torch'], { encoding: 'utf8' }).status !== 0;

test('init_from a PyTorch-written HF directory: the first step trains from exactly those weights', { skip: torchMissing && 'python3-torch is not installed' }, async () => {
  const dir = tempDir('adabatch-init-');
  const hf = join(dir, 'hf');
  const made = spawnSync(PY, [join(root, 'tools/hf/make_hf_dir.py'), '--out', hf, '--dtype', 'bf16', '--shards', '2', '--seed', '4'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const run = join(dir, 'run');
  const batch = 4;
  const cfg = loadTrainConfig(undefined, [`run_dir=${run}`, `init_from=${hf}`, 'data={synthetic: {phrases: 8, phrase_len: 5}}', `batch={schedule: constant, batch: ${batch}, max_micro: 4}`, `budget.samples=${batch * 2}`, 'eval.every_samples=0', 'threads=1', 'seed=3']);
  await runTrain(cfg, { log: () => {}, progress: new Progress(process.stderr, 1e9, false) });
  const rows = readMetrics(join(run, 'metrics.jsonl'));
  // The same first-step samples, scored by tools/hf/verify_export.py (PyTorch, HF semantics).
  const seqLen = 64; // max_position_embeddings of make_hf_dir.py's config
  const stream = new SyntheticStream(seqLen, { vocab: 96, phrases: 8, phrase_len: 5, seed: 3 });
  const w = stream.windows(0, batch);
  const seqs = Array.from({ length: batch }, (_, i) => Array.from(w.subarray(i * (seqLen + 1), (i + 1) * (seqLen + 1))));
  const tokens = join(dir, 'tokens.json');
  writeFileSync(tokens, JSON.stringify(seqs));
  const ref = spawnSync(PY, [join(root, 'tools/hf/verify_export.py'), '--model', hf, '--tokens', tokens], { encoding: 'utf8' });
  assert.equal(ref.status, 0, ref.stderr);
  const torchLoss = (JSON.parse(ref.stdout) as { loss: number }).loss;
  const ours = rows[0]!.loss as number;
  assert.ok(Math.abs(ours - torchLoss) / torchLoss < 1e-5, `first step loss ${ours} vs PyTorch on the initial weights ${torchLoss}`);
  assert.ok((rows[1]!.loss as number) !== ours, 'training moved on from the initial weights');

  const bad = loadTrainConfig(undefined, [`run_dir=${join(dir, 'run2')}`, `init_from=${hf}`, 'model.d_model=64', 'data={synthetic: {}}']);
  await assert.rejects(runTrain(bad, { log: () => {} }), /model\.d_model cannot be set together with init_from/);
  const missing = loadTrainConfig(undefined, [`run_dir=${join(dir, 'run3')}`, `init_from=${join(dir, 'nope')}`, 'data={synthetic: {}}']);
  await assert.rejects(runTrain(missing, { log: () => {} }), /nope/);
});

/**
 * Export verification: a checkpoint we write, read back by tools/hf/verify_export.py (its own
 * safetensors reader and a line-by-line PyTorch re-implementation of transformers'
 * LlamaForCausalLM), gives the same next-token loss as our model on the ref backend. And the other
 * way round: a Hugging Face directory written by PyTorch (bf16 shards + index) imported with
 * loadHfModel gives the loss PyTorch computes from that directory.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RefBackend } from '../src/backend/ref/index.js';
import { writeCheckpoint } from '../src/io/checkpoint.js';
import { loadHfModel, loadModelDir } from '../src/io/hf.js';
import { modelConfig, type ModelConfig } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { Llama, type UnitAccess } from '../src/model/llama.js';
import { initialParameters, UnitBuffers } from '../src/model/params.js';

const PYTHON = '/usr/bin/python3';
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const VERIFY = join(repoRoot, 'tools/hf/verify_export.py');
const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
const skip = probe.status === 0 ? false : `${PYTHON} cannot import torch and numpy (apt-get install python3-torch): ${(probe.stderr || String(probe.error)).trim().split('\n').pop()}`;
if (skip) console.log(`# io-export: skipped: ${skip}`);

const root = mkdtempSync(join(tmpdir(), 'adabatch-io-export-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Deterministic token sequences of the given lengths. */
function sequences(vocab: number, lengths: number[], seed: number): number[][] {
  let s = seed >>> 0;
  return lengths.map((n) =>
    Array.from({ length: n }, () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s % vocab;
    }),
  );
}

/** Our mean next-token loss over the sequences, each as one batch of one (ref backend, float32). */
async function ourLoss(config: ModelConfig, tensors: Map<string, Float32Array>, seqs: number[][]): Promise<{ loss: number; tokens: number }> {
  const backend = new RefBackend();
  const model = new Llama(backend, config);
  const params = new UnitBuffers(backend, model.layout);
  params.fromHost(tensors);
  const access: UnitAccess = { acquire: (u) => params.unit(u), release: () => {} };
  const out = backend.alloc([2], 'f64');
  for (const s of seqs) {
    const n = s.length - 1;
    const tok = backend.alloc([n], 'i32');
    const tgt = backend.alloc([n], 'i32');
    backend.upload(tok, s.slice(0, -1));
    backend.upload(tgt, s.slice(1));
    await model.forwardLoss(tok, tgt, 1, n, access, out, 0);
    backend.free(tok);
    backend.free(tgt);
  }
  const [sum, count] = backend.download(out) as Float64Array;
  backend.free(out);
  params.free();
  model.dispose();
  return { loss: sum! / count!, tokens: count! };
}

function pytorchLoss(modelDir: string, tokensFile: string, extra: string[] = []): { loss: number; tokens: number; info: Record<string, unknown> } {
  const r = spawnSync(PYTHON, [VERIFY, '--model', modelDir, '--tokens', tokensFile, ...extra], { encoding: 'utf8' });
  assert.equal(r.status, 0, `verify_export.py failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { loss: number; tokens: number };
  const info = JSON.parse(r.stderr.trim().split('\n').pop()!) as Record<string, unknown>;
  return { ...out, info };
}

/** Random weights large enough that the loss is far from ln(vocab), with non-trivial norm weights. */
function weightsFor(config: ModelConfig, seed: number): Map<string, Float32Array> {
  const w = initialParameters(buildLayout(config), seed);
  let t = 0;
  for (const [name, a] of w) {
    if (name.endsWith('norm.weight')) for (let i = 0; i < a.length; i++) a[i] = 1 + 0.3 * Math.sin(0.7 * i + t);
    t++;
  }
  return w;
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

for (const tied of [false, true]) {
  test(`our checkpoint (tiny preset, ${tied ? 'tied' : 'untied'}) gives the same loss in the PyTorch HF re-implementation`, { skip }, async (t) => {
    const config = modelConfig('tiny', { tie_embeddings: tied, init_std: 0.1, rope_theta: 5000, norm_eps: 1e-6 });
    const weights = weightsFor(config, tied ? 11 : 12);
    const parent = join(root, tied ? 'tied' : 'untied');
    mkdirSync(parent);
    const dir = writeCheckpoint(parent, 'step-00000001', { config, model: weights, trainerState: { step: 1 }, step: 1 });
    const seqs = sequences(config.vocab, [2, 9, 33, 64, 129], tied ? 5 : 6);
    const tokensFile = join(parent, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify(seqs));

    const loaded = loadModelDir(dir);
    const ours = await ourLoss(loaded.config, loaded.tensors, seqs);
    const theirs = pytorchLoss(dir, tokensFile);
    t.diagnostic(`${tied ? 'tied' : 'untied'} tiny: adabatch ref loss ${ours.loss.toPrecision(9)}, PyTorch HF re-implementation ${theirs.loss.toPrecision(9)}, rel diff ${rel(ours.loss, theirs.loss).toExponential(2)}, ${theirs.tokens} tokens`);
    assert.equal(theirs.info.checksums_verified, true, 'the script verified checksums.json with hashlib');
    assert.deepEqual(theirs.info.stored_dtypes, ['F32']);
    assert.equal(ours.tokens, 1 + 8 + 32 + 63 + 128);
    assert.equal(theirs.tokens, ours.tokens);
    assert.ok(Math.abs(ours.loss - Math.log(config.vocab)) > 0.2, `loss ${ours.loss} should be far from ln(vocab): the weights must matter`);
    assert.ok(rel(ours.loss, theirs.loss) < 1e-5, `loss: ours ${ours.loss} vs PyTorch ${theirs.loss}`);
    // The tolerance discriminates: a small config change (rope_theta) moves the loss by far more.
    const one = [seqs[2]!];
    const right = (await ourLoss(loaded.config, loaded.tensors, one)).loss;
    const wrong = (await ourLoss({ ...loaded.config, rope_theta: 10000 }, loaded.tensors, one)).loss;
    assert.ok(rel(wrong, right) > 1e-3, `rope_theta 10000 vs 5000 should be detectable (${rel(wrong, right)})`);

    // The script refuses a corrupted checkpoint (its own SHA-256 check).
    const bad = join(parent, 'corrupt');
    mkdirSync(bad);
    for (const f of ['checksums.json', 'config.json', 'model.safetensors', 'trainer_state.json']) writeFileSync(join(bad, f), readFileSync(join(dir, f)));
    const b = readFileSync(join(bad, 'model.safetensors'));
    b[b.length - 3] = b[b.length - 3]! ^ 1;
    writeFileSync(join(bad, 'model.safetensors'), b);
    const r = spawnSync(PYTHON, [VERIFY, '--model', bad, '--tokens', tokensFile], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /model\.safetensors: does not match checksums\.json/);
  });
}

test('a PyTorch-written HF directory (bf16, 3 shards, inv_freq buffers) imports to the same loss', { skip }, async (t) => {
  const dir = join(root, 'hf-bf16');
  const r = spawnSync(PYTHON, [join(repoRoot, 'tools/hf/make_hf_dir.py'), '--out', dir, '--dtype', 'bf16', '--shards', '3', '--inv-freq', '--seed', '3'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const m = loadHfModel(dir);
  const seqs = sequences(m.config.vocab, [17, 40, 64], 9);
  const tokensFile = join(root, 'hf-tokens.json');
  writeFileSync(tokensFile, JSON.stringify(seqs));
  const ours = await ourLoss(m.config, m.tensors, seqs);
  const theirs = pytorchLoss(dir, tokensFile);
  t.diagnostic(`HF bf16 import: adabatch ref loss ${ours.loss.toPrecision(9)}, PyTorch ${theirs.loss.toPrecision(9)}, rel diff ${rel(ours.loss, theirs.loss).toExponential(2)}`);
  assert.equal(theirs.info.checksums_verified, false);
  assert.deepEqual(theirs.info.stored_dtypes, ['BF16', 'F32']);
  assert.equal(theirs.tokens, ours.tokens);
  assert.ok(Math.abs(ours.loss - Math.log(m.config.vocab)) > 0.2, `loss ${ours.loss} should be far from ln(vocab)`);
  assert.ok(rel(ours.loss, theirs.loss) < 1e-5, `loss: ours ${ours.loss} vs PyTorch ${theirs.loss}`);
});

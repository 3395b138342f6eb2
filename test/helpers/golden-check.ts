/**
 * The PyTorch golden comparison, runnable on any backend: loss, every parameter gradient and the
 * parameter change after three AdamW steps with clipping, against a fixture written by
 * tools/golden/llama_golden.py.
 */
import { strict as assert } from 'node:assert';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../../src/backend/backend.js';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import { modelConfig } from '../../src/model/config.js';
import { Llama } from '../../src/model/llama.js';
import { AdamW } from '../../src/optim/adamw.js';
import { addSquaredNorm, clipToNorm } from '../../src/optim/clip.js';
import { LocalReplica } from '../../src/parallel/local-replica.js';
import { goldenWeight } from './golden.js';
import { relL2 } from './num.js';

export const GOLDEN_FIXTURES = ['tiny-untied', 'tiny-tied'] as const;

export function fixturePath(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/golden/${name}.safetensors`, import.meta.url));
}

/**
 * `reductionTolerance`: how far two float64 statistics of the same gradients may differ, relative
 * (cpu and ref reduce in float64: 1e-9; webgpu in compensated float32: 1e-6, its stated accuracy).
 */
export async function runGoldenCheck(backend: Backend, fixture: string, opts: { recompute?: boolean; reductionTolerance?: number } = {}): Promise<void> {
  const f = SafetensorsReader.open(fixturePath(fixture));
  try {
    const fixtureConfig = JSON.parse(f.metadata.config!) as Record<string, unknown>;
    const opt = JSON.parse(f.metadata.optimizer!) as { lr: number; beta1: number; beta2: number; eps: number; weight_decay: number; clip: number; steps: number };
    const sums = JSON.parse(f.metadata.weight_sums!) as Record<string, number>;
    // The fixture must describe our `tiny` preset (only tying differs between the two fixtures).
    const config = modelConfig('tiny', { tie_embeddings: fixtureConfig.tie_embeddings as boolean });
    for (const [k, v] of Object.entries(fixtureConfig)) assert.equal((config as Record<string, unknown>)[k], v, `fixture config ${k}`);

    const model = new Llama(backend, config, { recompute: opts.recompute ?? false, chunkTokens: 96 });
    const layout = model.layout;
    const replica = new LocalReplica(backend, layout);
    const weights = new Map<string, Float32Array>();
    let index = 0;
    for (const unit of layout.units) {
      for (const v of unit.views) {
        const w = goldenWeight(index++, v.size, config.init_std, v.shape.length === 1);
        let s = 0;
        for (const x of w) s += x;
        assert.ok(Math.abs(s - sums[v.name]!) <= 1e-9 * Math.max(1, Math.abs(s)), `initial weights of ${v.name} differ from the fixture's`);
        weights.set(v.name, w);
      }
    }
    replica.params.fromHost(weights);

    const [steps, batch, seqLen] = f.info('tokens').shape as [number, number, number];
    const tokens = f.readInt32('tokens');
    const targets = f.readInt32('targets');
    const expectedLoss = f.readFloat64('loss');
    const n = batch * seqLen;
    const tokT = backend.alloc([n], 'i32');
    const tgtT = backend.alloc([n], 'i32');
    const stats = backend.alloc([4], 'f64');
    const adamw = new AdamW(backend, layout, { beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weight_decay: opt.weight_decay, decay_norms: false });
    const gradsOf = (): readonly import('../../src/backend/backend.js').Tensor[] => replica.grads.units;

    for (let step = 0; step < steps; step++) {
      backend.upload(tokT, tokens.subarray(step * n, (step + 1) * n));
      backend.upload(tgtT, targets.subarray(step * n, (step + 1) * n));
      backend.fill(stats, 0);
      replica.beginStep();
      replica.beginMicroStep(1, stats, 2);
      await model.forwardBackward(tokT, tgtT, batch, seqLen, replica, replica, stats, 0, 1 / n);
      addSquaredNorm(backend, gradsOf(), stats, 3);
      const s = backend.download(stats);
      assert.equal(s[1], n, 'every token counted');
      const loss = s[0]! / n;
      assert.ok(Math.abs(loss - expectedLoss[step]!) / expectedLoss[step]! < 1e-5, `step ${step} loss ${loss} vs PyTorch ${expectedLoss[step]}`);
      assert.ok(Math.abs(s[2]! - s[3]!) <= (opts.reductionTolerance ?? 1e-9) * s[3]!, `with one micro-step, Σ‖g_t‖² equals ‖g‖² (${s[2]} vs ${s[3]})`);
      if (step === 0) {
        const grads = replica.grads.toHost();
        for (const [name, g] of grads) {
          const err = relL2(g, f.readFloat32('grad.' + name));
          assert.ok(err < 1e-4, `gradient of ${name}: rel L2 ${err.toExponential(2)}`);
        }
      }
      clipToNorm(backend, gradsOf(), stats, 3, opt.clip);
      adamw.update(replica.params.units, replica.grads.units, opt.lr);
    }
    const after = replica.params.toHost();
    for (const [name, w0] of weights) {
      const delta = after.get(name)!.map((v, i) => v - w0[i]!);
      const err = relL2(delta, f.readFloat32('delta.' + name));
      assert.ok(err < 1e-4, `θ${steps} − θ0 of ${name}: rel L2 ${err.toExponential(2)}`);
    }
    for (const t of [tokT, tgtT, stats]) backend.free(t);
    adamw.free();
    replica.free();
    model.dispose();
  } finally {
    f.close();
  }
}

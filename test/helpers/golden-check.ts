/**
 * The PyTorch golden comparison, runnable on any backend: loss, every parameter gradient and the
 * parameter change after three AdamW steps with clipping, against a fixture written by
 * tools/golden/llama_golden.py; with `optimizer`, the three steps of that optimizer instead, against
 * test/fixtures/golden/optim-<name>.safetensors (tools/golden/optimizers_golden.py: the first rows
 * of every tensor's change).
 */
import { strict as assert } from 'node:assert';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../../src/backend/backend.js';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import { modelConfig } from '../../src/model/config.js';
import { Llama } from '../../src/model/llama.js';
import { ADAMW_DEFAULTS } from '../../src/optim/adamw.js';
import { addSquaredNorm, clippedSqNorm, clipToNorm } from '../../src/optim/clip.js';
import { optimConfigSchema, type OptimizerName } from '../../src/optim/config.js';
import { createOptimizer } from '../../src/optim/create.js';
import { replicaUpdateContext } from '../../src/optim/optimizer.js';
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
export async function runGoldenCheck(backend: Backend, fixture: string, opts: { recompute?: boolean; reductionTolerance?: number; optimizer?: Exclude<OptimizerName, 'adamw'>; onWorstDelta?: (name: string, relL2: number) => void } = {}): Promise<void> {
  const f = SafetensorsReader.open(fixturePath(fixture));
  const of = opts.optimizer ? SafetensorsReader.open(fixturePath(`optim-${opts.optimizer}`)) : null;
  try {
    const fixtureConfig = JSON.parse(f.metadata.config!) as Record<string, unknown>;
    const opt = JSON.parse(f.metadata.optimizer!) as { lr: number; beta1: number; beta2: number; eps: number; weight_decay: number; clip: number; steps: number };
    if (of) assert.equal(of.metadata.base_fixture, fixture, 'the optimizer fixture continues this model fixture');
    // The optimizer fixture's settings are adabatch `optim` keys plus lr, clip, steps and rows.
    const { lr, clip, steps: optSteps, rows: deltaRows, ...optimKeys } = of ? (JSON.parse(of.metadata.optimizer!) as Record<string, unknown>) : { lr: opt.lr, clip: opt.clip, steps: opt.steps, rows: Infinity };
    const optimizerConfig = of ? optimConfigSchema.parse(optimKeys) : { ...ADAMW_DEFAULTS, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weight_decay: opt.weight_decay };
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
    // Losses after the first step depend on the optimizer.
    const expectedLoss = (of ?? f).readFloat64('loss');
    const n = batch * seqLen;
    const tokT = backend.alloc([n], 'i32');
    const tgtT = backend.alloc([n], 'i32');
    const stats = backend.alloc([4], 'f64');
    const optimizer = createOptimizer(backend, layout, optimizerConfig);
    assert.equal(steps, optSteps, 'the optimizer fixture takes as many steps as the model fixture has batches');
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
      clipToNorm(backend, gradsOf(), stats, 3, clip as number);
      await optimizer.update(replica.params.units, replica.grads.units, lr as number, replicaUpdateContext(clippedSqNorm(s[3]!, clip as number)));
    }
    const after = replica.params.toHost();
    const worstDelta = { name: '', relL2: 0 };
    for (const [name, w0] of weights) {
      const size = Math.min(w0.length, (deltaRows as number) * (layout.byName.get(name)!.shape[1] ?? w0.length));
      const delta = after.get(name)!.subarray(0, size).map((v, i) => v - w0[i]!);
      const err = relL2(delta, (of ?? f).readFloat32('delta.' + name));
      assert.ok(err < 1e-4, `θ${steps} − θ0 of ${name} (${optimizer.name}): rel L2 ${err.toExponential(2)}`);
      if (err > worstDelta.relL2) Object.assign(worstDelta, { name, relL2: err });
    }
    for (const t of [tokT, tgtT, stats]) backend.free(t);
    optimizer.free();
    replica.free();
    model.dispose();
    opts.onWorstDelta?.(worstDelta.name, worstDelta.relL2);
  } finally {
    f.close();
    of?.close();
  }
}

/**
 * `npm run bench -- webgpu-step [--preset tiny|A|B|C] [--batch N] [--steps N] [--warmup N]
 * [--precision f32|f16] [--no-cpu] [--no-tfjs] [--json]` (also `npm run bench -- step --backend webgpu …`): tokens/s and step time of
 * one full training step (forward, backward, AdamW) on the webgpu backend, the GEMM's GFLOP/s at the
 * model's largest shape, and the same step on the cpu backend (all cores) in the same run for scale
 * (--no-cpu leaves it out). It also trains the same Llama in TensorFlow.js on its WebGPU backend on
 * the same adapter (bench/tfjs-llama.ts) and prints adabatch-webgpu / tfjs-webgpu tokens/s; if TF.js
 * cannot run, one line says why (--no-tfjs leaves it out). `--precision f16` runs the webgpu step
 * and GEMM with f16 GEMM inputs (docs/precision.md); the cpu and TF.js steps stay float32.
 *
 * The device is whatever WebGPU adapter answers: on a machine without a GPU, Mesa's lavapipe
 * (VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.json), a CPU emulating a GPU: its numbers say the
 * kernels run, not how fast a GPU is. GPU speed is measured only on a real GPU.
 */
import { cpus } from 'node:os';
import type { Backend } from '../src/backend/backend.js';
import { modelConfig } from '../src/model/config.js';
import { median, trainingStep } from './common.js';
import type { TfjsStepResult } from './tfjs-llama.js';

/** The shortest timed run of GEMMs (ms) that the GFLOP/s figure rests on. */
const MIN_GEMM_MS = 100;

export const summary = 'tokens/s of a training step and GEMM GFLOP/s on the webgpu backend, with the cpu backend for scale';

interface Options {
  preset: string;
  batch: number;
  steps: number;
  warmup: number;
  json: boolean;
  cpu: boolean;
  tfjs: boolean;
  precision: 'f32' | 'f16';
}

function parse(argv: string[]): Options {
  const o: Options = { preset: 'tiny', batch: 4, steps: 3, warmup: 1, json: false, cpu: true, tfjs: true, precision: 'f32' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const int = (min: number): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`bench webgpu-step: ${a} must be an integer ≥ ${min}, got '${v}'`);
      i++;
      return n;
    };
    if (a === '--preset' && v) {
      o.preset = v;
      i++;
    } else if (a === '--batch') o.batch = int(1);
    else if (a === '--steps') o.steps = int(1);
    else if (a === '--warmup') o.warmup = int(0);
    else if (a === '--json') o.json = true;
    else if (a === '--no-cpu') o.cpu = false;
    else if (a === '--no-tfjs') o.tfjs = false;
    else if (a === '--precision' && (v === 'f32' || v === 'f16')) {
      o.precision = v;
      i++;
    }
    else if (a === '--backend' && v === 'webgpu') i++;
    else throw new Error(`bench webgpu-step: unknown option '${a}' (options: --preset tiny|A|B|C, --batch N, --steps N, --warmup N, --precision f32|f16, --no-cpu, --no-tfjs, --json)`);
  }
  return o;
}

interface Result {
  backend: string;
  precision: 'f32' | 'f16';
  device: string;
  preset: string;
  tokensPerStep: number;
  stepMs: number[];
  tokPerS: number;
  gemmShape: string;
  gemmGflops: number;
  loss: number;
}

async function measure(backend: Backend, device: string, o: Options, precision: 'f32' | 'f16'): Promise<Result> {
  const config = modelConfig(o.preset);
  const n = o.batch * config.seq_len;
  const { step, loss: lastLoss } = trainingStep(backend, config, o.batch, { precision });
  const stepMs: number[] = [];
  for (let s = 0; s < o.warmup + o.steps; s++) {
    const ms = await step();
    if (s >= o.warmup) stepMs.push(ms);
  }
  const loss = lastLoss();
  // The GEMM at the model's largest shape (tokens × 2·ffn × d, x·Wᵀ), timed with a synchronize.
  const [m, nn, k] = [n, 2 * config.ffn_dim, config.d_model];
  const a = backend.alloc([m, k], precision);
  const w = backend.alloc([nn, k], precision);
  const c = backend.alloc([m, nn]);
  backend.fill(a, 0.01);
  backend.fill(w, 0.02);
  backend.matmul(c, a, w, false, true);
  backend.synchronize();
  // On a GPU a few GEMMs take milliseconds, as long as the synchronize's round trip: time enough of
  // them (at least MIN_GEMM_MS) that the round trip is noise.
  const timeGemms = (reps: number): number => {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) backend.matmul(c, a, w, false, true);
    backend.synchronize();
    return performance.now() - t0;
  };
  let reps = 3;
  let ms = timeGemms(reps);
  if (ms < MIN_GEMM_MS) {
    reps = Math.min(1000, Math.ceil((reps * MIN_GEMM_MS) / Math.max(ms, 0.01)));
    ms = timeGemms(reps);
  }
  const gemmGflops = (2 * m * nn * k * reps) / (ms / 1000) / 1e9;
  return { backend: backend.name, precision, device, preset: o.preset, tokensPerStep: n, stepMs, tokPerS: n / (median(stepMs) / 1000), gemmShape: `${m}×${nn}×${k}`, gemmGflops, loss };
}

export async function run(argv: string[]): Promise<void> {
  const o = parse(argv);
  const { WebGpuBackend } = await import('../src/backend/webgpu/index.js');
  const gpu = new WebGpuBackend();
  const results: Result[] = [];
  try {
    results.push(await measure(gpu, gpu.device.adapter, o, o.precision));
  } finally {
    gpu.dispose();
  }
  // TF.js's WebGPU backend, on the same adapter, after the webgpu backend's device is closed.
  let tfjs: TfjsStepResult | { error: string } | null = null;
  if (o.tfjs) {
    try {
      const { runTfjsStep } = await import('./tfjs-llama.js');
      tfjs = await runTfjsStep({ preset: o.preset, batch: o.batch, steps: o.steps, warmup: o.warmup });
    } catch (e) {
      tfjs = { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
    }
  }
  if (o.cpu) {
    const { CpuBackend } = await import('../src/backend/cpu/index.js');
    const threads = cpus().length;
    results.push(await measure(new CpuBackend({ threads }), `${cpus()[0]?.model ?? 'cpu'} × ${threads} threads`, o, 'f32'));
  }
  if (o.json) {
    const date = new Date().toISOString();
    for (const r of results) console.log(JSON.stringify({ date, ...r }));
    if (tfjs) {
      const t = 'error' in tfjs ? { error: tfjs.error } : { device: tfjs.device, preset: o.preset, tokensPerStep: results[0]!.tokensPerStep, stepMs: tfjs.stepMs, tokPerS: tfjs.tokPerS, loss: tfjs.loss, ratio: results[0]!.tokPerS / tfjs.tokPerS };
      console.log(JSON.stringify({ date, backend: 'tfjs-webgpu', ...t }));
    }
    return;
  }
  console.log(`webgpu step benchmark, ${new Date().toISOString()}: preset ${o.preset}, batch ${o.batch} × ${results[0]!.tokensPerStep / o.batch} tokens, ${o.warmup} warm-up + ${o.steps} measured steps`);
  for (const r of results) {
    console.log(`  ${`${r.backend} ${r.precision}`.padEnd(11)} ${r.tokPerS.toFixed(0).padStart(8)} tok/s  step ${(r.tokensPerStep / r.tokPerS * 1000).toFixed(0).padStart(6)} ms  GEMM ${r.gemmShape}: ${r.gemmGflops.toFixed(1)} GFLOP/s  loss ${r.loss.toFixed(4)}  (${r.device})`);
  }
  if (!tfjs) return;
  if ('error' in tfjs) console.log(`  tfjs-webgpu could not run: TensorFlow.js's WebGPU backend (@tensorflow/tfjs-backend-webgpu) under Node's webgpu package failed: ${tfjs.error}`);
  else {
    const n = results[0]!.tokensPerStep;
    console.log(`  ${'tfjs-webgpu'.padEnd(11)} ${tfjs.tokPerS.toFixed(0).padStart(8)} tok/s  step ${(n / tfjs.tokPerS * 1000).toFixed(0).padStart(6)} ms  loss ${tfjs.loss.toFixed(4)}  (${tfjs.device}; adabatch-webgpu / tfjs-webgpu = ${(results[0]!.tokPerS / tfjs.tokPerS).toFixed(2)}×)`);
  }
}

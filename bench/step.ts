/**
 * `npm run bench -- step [--preset A|B|C] [--threads 1|2] [--json]`: tokens/s of one full training
 * step (Llama.forwardBackward through a LocalReplica with one micro-step, then AdamW.update) on the
 * cpu backend, side by side with the PyTorch reference (bench/reference/torch_llama.py) at the same
 * model and batch (A: 8×256 tokens, B: 4×512, C: 4×1024; C, the ~125M class, only when asked for).
 *
 * Every measurement runs in a fresh child process (so memory above the process baseline is clean),
 * and rounds alternate adabatch and torch (and which goes first), so machine noise hits both.
 * Reported per system: median tokens/s over all measured steps of all rounds, and memory above the
 * baseline = peak RSS − RSS before the model exists. The adabatch child also measures sgemm
 * GFLOP/s and a per-kernel wall-time breakdown of one step.
 *
 * Before the rounds, a short child reports the GEMM library, ISA and implementations
 * (gemmConfig()) and probes the peak f32 and bf16 GFLOP/s of one core (peakProbe(): dependency-free
 * FMA / vdpbf16ps loops, best of 3 × PROBE_SECONDS each); the largest GEMM's GFLOP/s is reported as
 * a % of that peak × threads.
 *
 * --precision bf16 builds the model with { precision: 'bf16' } (bf16 GEMM inputs, f32 accumulation)
 * and runs the reference twice per round, fp32 and with --bf16 (torch.autocast bfloat16), so the
 * table compares adabatch bf16 with torch fp32 and torch bf16-autocast; the largest GEMM is then
 * also measured with bf16 inputs. It is refused where gemmConfig().bf16 is false (no AVX512_BF16/AMX).
 *
 * Options: --preset A|B|C (default A and B), --threads N (default 1 and 2), --rounds N (3), --steps N
 * and --warmup N per round (A: 6 and 2, B: 3 and 1, C: 2 and 1), --precision f32|bf16 (f32), --no-torch, --json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GemmConfig, NativeAddon } from '../src/addon/addon.js';
import type { Tensor } from '../src/backend/backend.js';
import { PRESETS } from '../src/model/config.js';

export const summary = 'tokens/s of a full training step (forward, backward, AdamW) vs the PyTorch reference, memory, kernel breakdown';

/** The PyTorch reference's batch for each preset. */
const BATCH: Record<string, number> = { A: 8, B: 4, C: 4 };
const DEFAULT_STEPS: Record<string, [steps: number, warmup: number]> = { A: [6, 2], B: [3, 1], C: [2, 1] };
/** The reference needs Debian's python3-torch, which lives under /usr/bin/python3 (override: ADABATCH_BENCH_PYTHON). */
const PYTHON = process.env.ADABATCH_BENCH_PYTHON ?? '/usr/bin/python3';
/** Seconds per run of each peak-probe loop (3 runs each, best kept; about 6 × this in all with bf16). */
const PROBE_SECONDS = 0.2;

type Precision = 'f32' | 'bf16';

interface Options {
  presets: string[];
  threads: number[];
  rounds: number;
  steps?: number;
  warmup?: number;
  json: boolean;
  torch: boolean;
  precision: Precision;
}

interface KernelRow {
  kernel: string;
  calls: number;
  totalMs: number;
}

/** What one child run reports (both systems report the common fields). */
interface RunResult {
  system: 'adabatch' | 'torch';
  /** adabatch: 'f32' | 'bf16'; torch: the reference's own 'fp32' | 'bf16-autocast'. */
  precision: string;
  preset: string;
  threads: number;
  stepMs: number[];
  baselineRssMb: number;
  peakRssMb: number;
  flopsPerToken: number;
  tokensPerStep: number;
  otherLoad: number;
  sgemmGflops?: number;
  sgemmShape?: string;
  /** The same GEMM with bf16 inputs (f32 output), measured with --precision bf16. */
  bf16GemmGflops?: number;
  kernels?: KernelRow[];
  version?: string;
}

/** What the probe child reports: the GEMM configuration and the measured per-core peaks. */
interface ProbeResult {
  gemm: GemmConfig;
  peak: ReturnType<NativeAddon['peakProbe']>;
}

function parseArgs(argv: string[]): Options & { child: boolean; probe: boolean } {
  const o: Options & { child: boolean; probe: boolean } = { presets: ['A', 'B'], threads: [1, 2], rounds: 3, json: false, torch: true, precision: 'f32', child: false, probe: false };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`bench step: ${flag} needs a value`);
    return v;
  };
  const int = (s: string, flag: string): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bench step: ${flag} must be a positive integer, got '${s}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '--preset': {
        const p = value(i++, a).toUpperCase();
        if (!(p in BATCH)) throw new Error(`bench step: --preset must be A, B or C, got '${p}'`);
        o.presets = [p];
        break;
      }
      case '--threads':
        o.threads = [int(value(i++, a), a)];
        break;
      case '--rounds':
        o.rounds = int(value(i++, a), a);
        break;
      case '--steps':
        o.steps = int(value(i++, a), a);
        break;
      case '--warmup':
        o.warmup = Number(value(i++, a));
        if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new Error('bench step: --warmup must be an integer ≥ 0');
        break;
      case '--json':
        o.json = true;
        break;
      case '--no-torch':
        o.torch = false;
        break;
      case '--precision': {
        const p = value(i++, a).toLowerCase();
        if (p !== 'f32' && p !== 'bf16') throw new Error(`bench step: --precision must be f32 or bf16, got '${p}'`);
        o.precision = p;
        break;
      }
      case '--child':
        o.child = true;
        break;
      case '--probe':
        o.probe = true;
        break;
      default:
        throw new Error(`bench step: unknown option '${a}' (options: --preset A|B|C, --threads N, --rounds N, --steps N, --warmup N, --precision f32|bf16, --no-torch, --json)`);
    }
  }
  return o;
}

// ---- measurement helpers (used by both the parent and the adabatch child) ------------------------

function rssMb(): number {
  return process.memoryUsage.rss() / 2 ** 20;
}

function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}

/** CPU-seconds the whole machine spent busy so far (all cores), from /proc/stat. */
function machineBusyS(): number {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const ticks = v.slice(0, 8).reduce((a, b) => a + b, 0) - v[3]! - v[4]!;
  return ticks / 100; // USER_HZ is 100 on Linux
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'bench', 'reference', 'torch_llama.py'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('bench step: cannot find bench/reference/torch_llama.py above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

// ---- the adabatch child -----------------------------------------------------------------------

/** The probe child: gemmConfig() and the per-core peak, in a process of its own (nothing else running in it). */
async function runProbe(): Promise<ProbeResult> {
  const { loadNativeAddon } = await import('../src/addon/addon.js');
  const addon = loadNativeAddon();
  if (typeof addon.peakProbe !== 'function') throw new Error('bench step: the native addon has no peakProbe(); rebuild it (npm run build:native)');
  return { gemm: addon.gemmConfig(), peak: addon.peakProbe(PROBE_SECONDS) };
}

async function runChild(preset: string, threads: number, steps: number, warmup: number, precision: Precision): Promise<RunResult> {
  const { CpuBackend } = await import('../src/backend/cpu/index.js');
  const { modelConfig } = await import('../src/model/config.js');
  const { trainingStep } = await import('./common.js');

  const backend = new CpuBackend({ threads });
  if (precision === 'bf16') {
    const { loadNativeAddon } = await import('../src/addon/addon.js');
    const g = loadNativeAddon().gemmConfig();
    if (!g.bf16) throw new Error(`bench step: --precision bf16 needs a CPU with bf16 instructions (AVX512_BF16 or AMX); ${g.library} dispatches to ${g.isa}`);
  }
  const config = modelConfig(preset);
  const batch = BATCH[preset]!;
  const seqLen = config.seq_len;
  const n = batch * seqLen;
  const baselineRssMb = rssMb(); // modules and the addon are loaded; no model yet

  const { model, step, loss: lastLoss } = trainingStep(backend, config, batch, precision === 'bf16' ? { precision: 'bf16' } : {});

  const stepMs: number[] = [];
  const busy: number[] = [];
  for (let s = 0; s < warmup + steps; s++) {
    const b0 = machineBusyS();
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const ms = await step();
    const wall = (performance.now() - w0) / 1000;
    const own = (process.cpuUsage().user - c0.user + process.cpuUsage().system - c0.system) / 1e6;
    if (s >= warmup) {
      stepMs.push(ms);
      busy.push(Math.max(0, machineBusyS() - b0 - own) / wall);
    }
  }
  const loss = lastLoss();
  if (!Number.isFinite(loss)) throw new Error(`bench step: non-finite loss ${loss}`);
  const peak = peakRssMb();

  // One profiled step: per-kernel wall time.
  backend.setProfiling(true);
  await step();
  backend.setProfiling(false);
  const kernels = backend.profileReport().map((k) => ({ ...k, totalMs: Math.round(k.totalMs * 1000) / 1000 }));

  // sgemm throughput at the model's largest GEMM shape (tokens × 2·ffn × d, x·Wᵀ).
  const [m, nn, k] = [n, 2 * config.ffn_dim, config.d_model];
  const a = backend.alloc([m, k]);
  const w = backend.alloc([nn, k]);
  const c = backend.alloc([m, nn]);
  const gemmGflops = (a: Tensor, w: Tensor): number => {
    backend.fill(a, 0.01);
    backend.fill(w, 0.02);
    backend.matmul(c, a, w, false, true);
    const reps = 5;
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      backend.matmul(c, a, w, false, true);
      times.push(performance.now() - t0);
    }
    return (2 * m * nn * k) / (Math.min(...times) / 1000) / 1e9;
  };
  const sgemmGflops = gemmGflops(a, w);
  // With bf16 GEMM inputs (the f32 output as in the model's bf16 path).
  const bf16GemmGflops = precision === 'bf16' ? gemmGflops(backend.alloc([m, k], 'bf16'), backend.alloc([nn, k], 'bf16')) : undefined;

  const { d_model: d, n_layers: L } = config;
  const params = model.layout.paramCount;
  // The reference's count: every parameter takes part in a matmul (the tied head counts once).
  const flopsPerToken = 6 * (params - (config.tie_embeddings ? 0 : config.vocab * d)) + 12 * L * d * seqLen;
  return {
    system: 'adabatch',
    precision,
    preset,
    threads,
    stepMs,
    baselineRssMb,
    peakRssMb: peak,
    flopsPerToken,
    tokensPerStep: n,
    otherLoad: median(busy),
    sgemmGflops,
    sgemmShape: `${m}×${nn}×${k}`,
    ...(bf16GemmGflops !== undefined ? { bf16GemmGflops } : {}),
    kernels,
  };
}

// ---- the parent: spawn, interleave, report -----------------------------------------------------

function spawnProbe(): ProbeResult {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const r = spawnSync(process.execPath, [main, 'step', '--probe'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`bench step: peak probe failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  return JSON.parse(line.slice(7)) as ProbeResult;
}

function spawnAdabatch(preset: string, threads: number, steps: number, warmup: number, precision: Precision): RunResult {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const args = [main, 'step', '--child', '--preset', preset, '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup)];
  if (precision !== 'f32') args.push('--precision', precision);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`bench step: adabatch run failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  return JSON.parse(line.slice(7)) as RunResult;
}

interface TorchJson {
  system: string;
  precision?: string;
  step_ms_median: number;
  peak_rss_mb: number;
  rss_before_model_mb: number;
  flops_per_token: number;
  tokens_per_step: number;
  other_load_median: number;
}

function spawnTorch(script: string, preset: string, threads: number, steps: number, warmup: number, bf16 = false): RunResult {
  const args = [script, '--config', preset, '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup)];
  if (bf16) args.push('--bf16');
  const r = spawnSync(PYTHON, args, {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' },
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`bench step: torch run failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  // Python's json writes NaN for undefined statistics (e.g. too few clean steps).
  const j = JSON.parse(line.slice(7).replace(/\bNaN\b|-?\bInfinity\b/g, 'null')) as TorchJson;
  // Per-step wall times from the progress lines (the RESULT line only has their median).
  const stepMs = [...r.stdout.matchAll(/^step\s+\d+ .*wall\s+([\d.]+) ms.*$/gm)].filter((m) => !m[0].includes('(warmup)')).map((m) => Number(m[1]));
  return {
    system: 'torch',
    precision: j.precision ?? (bf16 ? 'bf16-autocast' : 'fp32'),
    preset,
    threads,
    stepMs: stepMs.length ? stepMs : [j.step_ms_median],
    baselineRssMb: j.rss_before_model_mb,
    peakRssMb: j.peak_rss_mb,
    flopsPerToken: j.flops_per_token,
    tokensPerStep: j.tokens_per_step,
    otherLoad: j.other_load_median,
    version: j.system,
  };
}

function torchAvailable(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  return r.status === 0 ? null : `${PYTHON} cannot import torch (${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 200)})`;
}

interface Aggregate {
  system: 'adabatch' | 'torch';
  precision: string;
  preset: string;
  threads: number;
  tok_per_s: number;
  step_ms: number;
  gflops: number;
  mem_above_baseline_mb: number;
  peak_rss_mb: number;
  baseline_rss_mb: number;
  rounds_tok_per_s: number[];
  other_load: number;
  sgemm_gflops?: number;
  sgemm_shape?: string;
  /** sgemm_gflops as a % of the probed f32 peak per core × threads. */
  sgemm_pct_of_peak?: number;
  bf16gemm_gflops?: number;
  bf16gemm_pct_of_peak?: number;
  /** gemmConfig() of the addon. */
  gemm?: ProbeResult['gemm'];
  peak_f32_gflops_per_core?: number;
  peak_f32_isa?: string;
  peak_bf16_gflops_per_core?: number | null;
  kernels?: KernelRow[];
  version?: string;
  /** Against the fp32 reference. */
  tok_per_s_vs_torch?: number;
  mem_vs_torch?: number;
  /** Against the bf16-autocast reference (--precision bf16). */
  tok_per_s_vs_torch_bf16?: number;
  mem_vs_torch_bf16?: number;
}

function aggregate(runs: RunResult[]): Aggregate {
  const r0 = runs[0]!;
  const all = runs.flatMap((r) => r.stepMs);
  const stepMs = median(all);
  const tokPerS = r0.tokensPerStep / (stepMs / 1000);
  const mem = median(runs.map((r) => r.peakRssMb - r.baselineRssMb));
  const a: Aggregate = {
    system: r0.system,
    precision: r0.precision,
    preset: r0.preset,
    threads: r0.threads,
    tok_per_s: Math.round(tokPerS * 10) / 10,
    step_ms: Math.round(stepMs * 10) / 10,
    gflops: Math.round((r0.flopsPerToken * tokPerS) / 1e8) / 10,
    mem_above_baseline_mb: Math.round(mem),
    peak_rss_mb: Math.round(median(runs.map((r) => r.peakRssMb))),
    baseline_rss_mb: Math.round(median(runs.map((r) => r.baselineRssMb))),
    rounds_tok_per_s: runs.map((r) => Math.round(r.tokensPerStep / (median(r.stepMs) / 1000))),
    other_load: Math.round(median(runs.map((r) => r.otherLoad)) * 100) / 100,
  };
  if (r0.sgemmGflops !== undefined) {
    a.sgemm_gflops = Math.round(median(runs.map((r) => r.sgemmGflops!)) * 10) / 10;
    a.sgemm_shape = r0.sgemmShape!;
  }
  if (r0.bf16GemmGflops !== undefined) a.bf16gemm_gflops = Math.round(median(runs.map((r) => r.bf16GemmGflops!)) * 10) / 10;
  // The breakdown of the round whose step time is the median one.
  if (r0.kernels) a.kernels = [...runs].sort((x, y) => median(x.stepMs) - median(y.stepMs))[runs.length >> 1]!.kernels!;
  if (r0.version) a.version = r0.version;
  return a;
}

function printBreakdown(kernels: KernelRow[]): void {
  const total = kernels.reduce((s, k) => s + k.totalMs, 0);
  const matmul = kernels.filter((k) => k.kernel.startsWith('matmul'));
  const matmulMs = matmul.reduce((s, k) => s + k.totalMs, 0);
  const byName = new Map<string, KernelRow>();
  for (const k of kernels) {
    const name = k.kernel.startsWith('matmul') ? 'matmul (all shapes)' : k.kernel;
    const e = byName.get(name) ?? { kernel: name, calls: 0, totalMs: 0 };
    e.calls += k.calls;
    e.totalMs += k.totalMs;
    byName.set(name, e);
  }
  console.log(`  kernel breakdown of one step (wall ms, ${total.toFixed(1)} ms in kernels):`);
  for (const k of [...byName.values()].sort((a, b) => b.totalMs - a.totalMs)) {
    if (k.totalMs < 0.005 * total) continue;
    console.log(`    ${k.kernel.padEnd(24)} ${String(k.calls).padStart(4)} calls ${k.totalMs.toFixed(1).padStart(8)} ms ${((100 * k.totalMs) / total).toFixed(1).padStart(5)}%`);
  }
  console.log(`    matmul by shape (m×n×k, op): ${matmul.slice(0, 6).map((k) => `${k.kernel.slice(7)} ${k.totalMs.toFixed(1)}`).join(', ')}${matmul.length > 6 ? ', …' : ''} (${matmulMs.toFixed(1)} ms)`);
}

function machine(): string {
  const model = cpus()[0]?.model ?? 'unknown CPU';
  return `${model}, ${cpus().length} logical CPUs`;
}

export async function run(argv: string[]): Promise<void> {
  // The GPU backend has its own benchmark (no PyTorch reference on a software GPU).
  if (argv[argv.indexOf('--backend') + 1] === 'webgpu' && argv.includes('--backend')) return (await import('./webgpu-step.js')).run(argv);
  const o = parseArgs(argv);
  if (o.probe) {
    console.log('RESULT ' + JSON.stringify(await runProbe()));
    return;
  }
  if (o.child) {
    const preset = o.presets[0]!;
    const [steps, warmup] = DEFAULT_STEPS[preset]!;
    const r = await runChild(preset, o.threads[0]!, o.steps ?? steps, o.warmup ?? warmup, o.precision);
    console.log('RESULT ' + JSON.stringify(r));
    return;
  }
  const bf16 = o.precision === 'bf16';
  const probe = spawnProbe();
  const { gemm, peak } = probe;
  if (bf16 && !gemm.bf16) {
    console.error(
      `bench step: --precision bf16 needs a CPU with native bf16 instructions (AVX512_BF16 or AMX), and this one has none: ` +
        `${gemm.library} dispatches to ${gemm.isa} (gemmConfig().bf16 is false). Run with --precision f32.`,
    );
    process.exit(2);
  }
  const noTorch = o.torch ? torchAvailable() : 'disabled with --no-torch';
  const script = join(repoRoot(), 'bench', 'reference', 'torch_llama.py');
  const log = (s: string): void => {
    if (!o.json) console.log(s);
  };
  log(`adabatch step benchmark, ${new Date().toISOString()}, ${machine()}`);
  log(`GEMM: ${gemm.library}, ISA ${gemm.isa}, f32 matmul ${gemm.f32Impl}, bf16 matmul ${gemm.bf16Impl || '(none)'}${gemm.bf16 ? '' : ' (no native bf16)'}; our kernels ${gemm.kernels}`);
  log(
    `peak per core (probed, best of 3 × ${PROBE_SECONDS} s): f32 ${peak.f32Gflops.toFixed(1)} GFLOP/s (${peak.f32Isa} FMA)` +
      `, bf16 ${peak.bf16Gflops === null ? 'n/a (no AVX512_BF16)' : `${peak.bf16Gflops.toFixed(1)} GFLOP/s (vdpbf16ps zmm)`}`,
  );
  if (bf16) log('precision: adabatch bf16 GEMM inputs (f32 accumulation) vs torch fp32 and torch bf16-autocast');
  if (noTorch) (o.json ? console.error : console.log)(`torch reference skipped: ${noTorch}`);
  else log(`torch reference: ${PYTHON} ${script} (OMP_WAIT_POLICY=PASSIVE)${bf16 ? ', run fp32 and --bf16,' : ''} rounds alternate with adabatch`);
  for (const preset of o.presets) {
    for (const threads of o.threads) {
      const [defSteps, defWarmup] = DEFAULT_STEPS[preset]!;
      const steps = o.steps ?? defSteps;
      const warmup = o.warmup ?? defWarmup;
      const c = PRESETS[preset as 'A' | 'B' | 'C'];
      const shape = `vocab ${c.vocab}, d ${c.d_model}, ${c.n_layers} layers, ${c.n_heads} heads, ffn ${c.ffn_dim}, batch ${BATCH[preset]} × seq ${c.seq_len}`;
      log(`\npreset ${preset} (${shape}), ${threads} thread${threads > 1 ? 's' : ''}: ${o.rounds} rounds of ${warmup} warm-up + ${steps} measured steps`);
      const ours: RunResult[] = [];
      const theirs: RunResult[] = [];
      const theirsBf16: RunResult[] = [];
      for (let round = 0; round < o.rounds; round++) {
        const systems = bf16 ? ['adabatch', 'torch', 'torch-bf16'] : ['adabatch', 'torch'];
        const order = round % 2 === 0 ? systems : [...systems].reverse();
        for (const system of order) {
          if (system === 'adabatch') ours.push(spawnAdabatch(preset, threads, steps, warmup, o.precision));
          else if (noTorch) continue;
          else if (system === 'torch') theirs.push(spawnTorch(script, preset, threads, steps, warmup));
          else theirsBf16.push(spawnTorch(script, preset, threads, steps, warmup, true));
        }
        const a = ours[ours.length - 1]!;
        const t = theirs[theirs.length - 1];
        const tb = theirsBf16[theirsBf16.length - 1];
        const tps = (r: RunResult): string => (r.tokensPerStep / (median(r.stepMs) / 1000)).toFixed(0);
        if (!bf16) log(`  round ${round + 1}: adabatch ${tps(a)} tok/s${t ? ` | torch ${tps(t)} tok/s` : ''} (other load ${a.otherLoad.toFixed(2)} cores)`);
        else
          log(
            `  round ${round + 1}: adabatch bf16 ${tps(a)} tok/s${t ? ` | torch fp32 ${tps(t)} tok/s` : ''}${tb ? ` | torch bf16 ${tps(tb)} tok/s` : ''} (other load ${a.otherLoad.toFixed(2)} cores)`,
          );
      }
      const A = aggregate(ours);
      const T = theirs.length ? aggregate(theirs) : null;
      const TB = theirsBf16.length ? aggregate(theirsBf16) : null;
      if (T) {
        A.tok_per_s_vs_torch = Math.round((A.tok_per_s / T.tok_per_s) * 100) / 100;
        A.mem_vs_torch = Math.round((A.mem_above_baseline_mb / T.mem_above_baseline_mb) * 100) / 100;
      }
      if (TB) {
        A.tok_per_s_vs_torch_bf16 = Math.round((A.tok_per_s / TB.tok_per_s) * 100) / 100;
        A.mem_vs_torch_bf16 = Math.round((A.mem_above_baseline_mb / TB.mem_above_baseline_mb) * 100) / 100;
      }
      // The largest GEMM against the probed peak of one core × threads.
      const pct = (gflops: number, perCore: number): number => Math.round((1000 * gflops) / (perCore * threads)) / 10;
      A.gemm = gemm;
      A.peak_f32_gflops_per_core = Math.round(peak.f32Gflops * 10) / 10;
      A.peak_f32_isa = peak.f32Isa;
      A.peak_bf16_gflops_per_core = peak.bf16Gflops === null ? null : Math.round(peak.bf16Gflops * 10) / 10;
      A.sgemm_pct_of_peak = pct(A.sgemm_gflops!, peak.f32Gflops);
      if (A.bf16gemm_gflops !== undefined && peak.bf16Gflops !== null) A.bf16gemm_pct_of_peak = pct(A.bf16gemm_gflops, peak.bf16Gflops);
      if (o.json) {
        console.log(JSON.stringify(A));
        if (T) console.log(JSON.stringify(T));
        if (TB) console.log(JSON.stringify(TB));
        continue;
      }
      const w = bf16 ? 13 : 9;
      const label = (x: Aggregate): string => (bf16 ? `${x.system} ${x.precision === 'bf16-autocast' ? 'bf16' : x.precision}` : x.system);
      const row = (x: Aggregate): string =>
        `${label(x).padEnd(w)} ${x.tok_per_s.toFixed(0).padStart(6)} tok/s  step ${x.step_ms.toFixed(0).padStart(5)} ms  ${x.gflops.toFixed(1).padStart(5)} GFLOP/s  memory above baseline ${String(x.mem_above_baseline_mb).padStart(5)} MB (peak RSS ${x.peak_rss_mb} MB)`;
      log('  ' + row(A));
      if (T) log('  ' + row(T) + `  [${T.version}]`);
      if (TB) log('  ' + row(TB) + `  [${TB.version}, autocast bfloat16]`);
      if (T) log(`  ${bf16 ? 'ratio vs torch fp32' : 'ratio    '} ${A.tok_per_s_vs_torch!.toFixed(2)}× tokens/s, ${A.mem_vs_torch!.toFixed(2)}× memory`);
      if (TB) log(`  ratio vs torch bf16 ${A.tok_per_s_vs_torch_bf16!.toFixed(2)}× tokens/s, ${A.mem_vs_torch_bf16!.toFixed(2)}× memory`);
      const on = `on ${threads} thread${threads > 1 ? 's' : ''}`;
      log(`  sgemm ${A.sgemm_shape} (x·Wᵀ): ${A.sgemm_gflops} GFLOP/s ${on} = ${A.sgemm_pct_of_peak}% of the f32 peak (${peak.f32Gflops.toFixed(1)} × ${threads})`);
      if (A.bf16gemm_gflops !== undefined) {
        const of = A.bf16gemm_pct_of_peak !== undefined ? ` = ${A.bf16gemm_pct_of_peak}% of the bf16 peak (${peak.bf16Gflops!.toFixed(1)} × ${threads})` : '';
        log(`  bf16 gemm ${A.sgemm_shape} (x·Wᵀ, bf16 inputs, f32 out): ${A.bf16gemm_gflops} GFLOP/s ${on}${of}`);
      }
      printBreakdown(A.kernels!);
    }
  }
}

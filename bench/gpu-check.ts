/**
 * `npm run bench -- gpu-check [options]`: the device check of a machine with a GPU, in one run and one
 * JSON file (issue 16, point 6). For each preset (A, B and C, the ~125M class) it runs the webgpu step
 * benchmark (bench/webgpu-step.ts), TensorFlow.js's WebGPU backend on the same adapter, and the PyTorch
 * reference (bench/reference/torch_llama.py) on CUDA, fp32 and bf16 autocast, on the same GPU and
 * batch; then the webgpu test files on the machine's own GPU (ADABATCH_TEST_GPU=1). It records the
 * device, driver and versions, tokens/s, step times, the GEMM's GFLOP/s as a % of the card's f32 peak,
 * adabatch / PyTorch fp32 tokens/s, and the issue's goals on a GPU (GEMM ≥ 50% of the f32 peak; a
 * step ≥ 30% of PyTorch fp32's tokens/s).
 *
 * Every part runs in a child process of its own, in its own process group, under a time limit; a part
 * that fails or runs out of time is recorded with the end of its output, and the check goes on. The
 * JSON is rewritten after every part, so a check cut short keeps what it measured; all child output
 * goes to the log beside it (FILE.log).
 *
 * scripts/gpu-check.sh runs this from a self-contained bundle on GPU machines without Node or the
 * Vulkan loader (docs/gpu.md, "Device check on an NVIDIA GPU"); on a machine set up for adabatch,
 * `npm run bench -- gpu-check` runs it as it is.
 *
 * Options: --out FILE (gpu-check.json), --presets A,B,C, --steps N (5) and --warmup N (2) per
 * benchmark, --no-tests, --no-tfjs, --no-torch, --no-webgpu REASON (record why, run PyTorch only),
 * --software (the adapter is a software GPU such as lavapipe: the tests stay on it, no peak),
 * --test-timeout S (300), --bench-timeout S (150, per benchmark run), --torch-timeout S (120, per run).
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, release } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { modelConfig, modelSizes, type ModelConfig } from '../src/model/config.js';

export const summary = 'device check of a GPU machine: webgpu tests on the GPU, step benchmarks vs PyTorch CUDA (fp32, bf16), one JSON file';

/** Batch per preset: the PyTorch reference's (bench/reference/torch_llama.py CONFIGS); tiny is not in it. */
const BATCH: Record<string, number> = { tiny: 4, A: 8, B: 4, C: 4 };
/** Presets the PyTorch reference knows (it has no grouped-query attention, which tiny uses). */
const TORCH_PRESETS = new Set(['A', 'B', 'C']);
/** Goals of issue 16 on a GPU: the GEMM's share of the f32 peak, and a step's tokens/s against PyTorch fp32. */
const GOAL_GEMM_PCT = 50;
const GOAL_VS_TORCH_FP32 = 0.3;
/** Output kept in the JSON per part (the log has all of it). */
const TAIL_CHARS = 4000;

/**
 * FP32 peaks without tensor cores, TFLOP/s at boost clock, from NVIDIA's data sheets, by the name
 * nvidia-smi reports. NVL variants run at other clocks and fall through to the computed peak.
 */
const F32_PEAKS: Array<{ name: RegExp; tflops: number; card: string }> = [
  { name: /H100.*PCIe/i, tflops: 51, card: 'H100 PCIe' },
  { name: /H100(?!.*NVL)/i, tflops: 67, card: 'H100 SXM' },
  { name: /H200(?!.*NVL)/i, tflops: 67, card: 'H200 SXM' },
  { name: /A100/i, tflops: 19.5, card: 'A100' },
  { name: /\bL4\b/, tflops: 30.3, card: 'L4' },
  { name: /RTX 4090/i, tflops: 82.6, card: 'GeForce RTX 4090' },
];

/** FP32 lanes per multiprocessor by CUDA compute capability (major.minor), for the computed peak. */
function f32LanesPerSm(capability: string): number | null {
  const [major, minor] = capability.split('.').map(Number) as [number, number];
  if (major === 7 || (major === 8 && minor === 0)) return 64; // Volta, Turing, A100
  if (major >= 8) return 128; // GA10x, Ada, Hopper, Blackwell
  return null;
}

interface Options {
  out: string;
  presets: string[];
  steps: number;
  warmup: number;
  tests: boolean;
  tfjs: boolean;
  torch: boolean;
  noWebgpu: string | null;
  software: boolean;
  testTimeoutS: number;
  benchTimeoutS: number;
  torchTimeoutS: number;
}

function parse(argv: string[]): Options {
  const o: Options = { out: 'gpu-check.json', presets: ['A', 'B', 'C'], steps: 5, warmup: 2, tests: true, tfjs: true, torch: true, noWebgpu: null, software: false, testTimeoutS: 300, benchTimeoutS: 150, torchTimeoutS: 120 };
  const usage = 'options: --out FILE, --presets A,B,C, --steps N, --warmup N, --no-tests, --no-tfjs, --no-torch, --no-webgpu REASON, --software, --test-timeout S, --bench-timeout S, --torch-timeout S';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench gpu-check: ${a} needs a value (${usage})`);
      return v;
    };
    const int = (min: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`bench gpu-check: ${a} must be an integer ≥ ${min}, got '${v}'`);
      return n;
    };
    if (a === '--out') o.out = value();
    else if (a === '--presets') o.presets = value().split(',').filter(Boolean);
    else if (a === '--steps') o.steps = int(1);
    else if (a === '--warmup') o.warmup = int(0);
    else if (a === '--no-tests') o.tests = false;
    else if (a === '--no-tfjs') o.tfjs = false;
    else if (a === '--no-torch') o.torch = false;
    else if (a === '--no-webgpu') o.noWebgpu = value();
    else if (a === '--software') o.software = true;
    else if (a === '--test-timeout') o.testTimeoutS = int(1);
    else if (a === '--bench-timeout') o.benchTimeoutS = int(1);
    else if (a === '--torch-timeout') o.torchTimeoutS = int(1);
    else throw new Error(`bench gpu-check: unknown option '${a}' (${usage})`);
  }
  for (const p of o.presets) modelConfig(p); // an unknown preset fails here, naming the known ones
  o.out = resolve(o.out);
  return o;
}

// ---- children: time limits, process groups, the log ----------------------------------------------

interface ChildRun {
  command: string;
  exit: number | null;
  signal: string | null;
  timedOut: boolean;
  seconds: number;
  stdout: string;
  stderr: string;
  /** Why it could not start (spawn error), if so. */
  error?: string;
}

/** Process groups of the children still running, ended if this process is interrupted. */
const running = new Set<number>();
let logFile = '';

function log(text: string): void {
  appendFileSync(logFile, text);
}

function runChild(argv: string[], opts: { env: NodeJS.ProcessEnv; timeoutS: number }): Promise<ChildRun> {
  const command = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(' ');
  log(`\n==== ${new Date().toISOString()} $ ${command}\n`);
  const t0 = performance.now();
  return new Promise((done) => {
    // detached: the child leads a process group, so a time-out ends its own children too (the test
    // runner's files, the CLI runs the tests start).
    const child = spawn(argv[0]!, argv.slice(1), { env: opts.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    for (const stream of ['stdout', 'stderr'] as const) {
      child[stream].setEncoding('utf8');
      child[stream].on('data', (d: string) => {
        log(d);
        // Bounded: what is parsed (JSON lines, the TAP summary) comes last, and the log has it all.
        out[stream] = (out[stream] + d).slice(-1_000_000);
      });
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, opts.timeoutS * 1000);
    if (child.pid !== undefined) running.add(child.pid);
    let spawnError: string | undefined;
    let finished = false;
    const finish = (exit: number | null, signal: string | null): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (child.pid !== undefined) running.delete(child.pid);
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      log(`==== exit ${spawnError ?? exit ?? signal}${timedOut ? ` (killed after ${opts.timeoutS} s)` : ''}, ${seconds} s\n`);
      done({ command, exit, signal, timedOut, seconds, ...out, ...(spawnError && { error: spawnError }) });
    };
    child.on('error', (e) => {
      spawnError = e.message;
      if (child.pid === undefined) finish(null, null); // never started: no 'close' to wait for
    });
    child.on('close', finish);
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** What the JSON keeps of a child that failed: how it ended and the end of its output. */
function failure(r: ChildRun, what: string): { error: string; exit: number | null; timed_out: boolean; seconds: number; output_tail: string } {
  const why = r.error ? `could not start: ${r.error}` : r.timedOut ? 'ran out of time' : `exited with ${r.exit ?? r.signal}`;
  return { error: `${what} ${why}`, exit: r.exit, timed_out: r.timedOut, seconds: r.seconds, output_tail: (r.stderr + r.stdout).slice(-TAIL_CHARS) };
}

// ---- environments ---------------------------------------------------------------------------------

/**
 * The environment for Python and nvidia-smi: the machine's own. gpu-check.sh puts the bundle's
 * libraries (libstdc++, libgomp, zlib, …) first on LD_LIBRARY_PATH for Node; PyTorch must load its own.
 */
function hostEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if ('ADABATCH_GPU_CHECK_HOST_LD_LIBRARY_PATH' in env) {
    const host = env.ADABATCH_GPU_CHECK_HOST_LD_LIBRARY_PATH;
    if (host) env.LD_LIBRARY_PATH = host;
    else delete env.LD_LIBRARY_PATH;
  }
  return env;
}

function nodeEnv(o: Options): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The tests open the machine's own GPU with ADABATCH_TEST_GPU=1; without it they pick lavapipe.
  if (o.software) delete env.ADABATCH_TEST_GPU;
  else env.ADABATCH_TEST_GPU = '1';
  return env;
}

// ---- facts about the machine ----------------------------------------------------------------------

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function hostFacts(): Record<string, unknown> {
  const os = /^PRETTY_NAME="?([^"\n]*)/m.exec(readText('/etc/os-release') ?? '')?.[1] ?? null;
  const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header;
  const require = createRequire(import.meta.url);
  const version = (pkg: string): string | null => {
    try {
      return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
    } catch {
      return null;
    }
  };
  return {
    os,
    kernel: release(),
    glibc: header.glibcVersionRuntime ?? null,
    cpu: cpus()[0]?.model ?? null,
    logical_cpus: cpus().length,
    node: process.version,
    node_path: process.execPath,
    packages: { webgpu: version('webgpu'), '@tensorflow/tfjs': version('@tensorflow/tfjs'), '@tensorflow/tfjs-backend-webgpu': version('@tensorflow/tfjs-backend-webgpu') },
  };
}

/** key=value lines gpu-check.sh wrote about the setup it made (libraries, ICD, problems); a repeated key collects its values. */
function setupFacts(): Record<string, string | string[]> | null {
  const path = process.env.ADABATCH_GPU_CHECK_SETUP;
  const text = path ? readText(path) : null;
  if (!text) return null;
  const facts: Record<string, string | string[]> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const [key, value] = [line.slice(0, eq), line.slice(eq + 1)];
    const seen = facts[key];
    facts[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  return facts;
}

function bundleManifest(): unknown {
  const path = process.env.ADABATCH_GPU_CHECK_BUNDLE;
  const text = path ? readText(`${path}/manifest.json`) : null;
  return text ? JSON.parse(text) : null;
}

function vulkanFacts(): Record<string, unknown> {
  const icd = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES ?? null;
  let icdJson: unknown = null;
  if (icd) {
    try {
      icdJson = JSON.parse(readText(icd.split(':')[0]!) ?? 'null');
    } catch {
      icdJson = 'unreadable';
    }
  }
  return { icd, icd_json: icdJson, xdg_runtime_dir: process.env.XDG_RUNTIME_DIR ?? null };
}

interface SmiFacts {
  name?: string;
  driver_version?: string;
  memory_total_mib?: number;
  clocks_max_sm_mhz?: number;
  compute_cap?: string;
  error?: string;
}

function nvidiaSmi(): SmiFacts {
  // The NVIDIA container runtime mounts the driver's tools under /usr/local/nvidia/bin, not always on PATH.
  const smi = onPath('nvidia-smi') ?? ['/usr/local/nvidia/bin/nvidia-smi', '/usr/bin/nvidia-smi'].find((p) => existsSync(p));
  if (!smi) return { error: 'no nvidia-smi on PATH, in /usr/local/nvidia/bin or /usr/bin' };
  const fields = ['name', 'driver_version', 'memory.total', 'clocks.max.sm', 'compute_cap'];
  // compute_cap is unknown to drivers before 510: ask again without it.
  for (const query of [fields, fields.slice(0, -1)]) {
    const r = spawnSync(smi, [`--query-gpu=${query.join(',')}`, '--format=csv,noheader,nounits'], { encoding: 'utf8', env: hostEnv(), timeout: 30_000 });
    if (r.error) return { error: `nvidia-smi: ${r.error.message}` };
    if (r.status !== 0) continue;
    const v = r.stdout.trim().split('\n')[0]!.split(',').map((s) => s.trim());
    return { name: v[0]!, driver_version: v[1]!, memory_total_mib: Number(v[2]), clocks_max_sm_mhz: Number(v[3]), ...(v[4] && { compute_cap: v[4] }) };
  }
  return { error: 'nvidia-smi --query-gpu failed' };
}

// ---- PyTorch --------------------------------------------------------------------------------------

interface TorchProbe {
  python: string;
  torch?: string;
  cuda_available?: boolean;
  cuda?: string | null;
  gpu_name?: string;
  capability?: string;
  multiprocessors?: number;
  error?: string;
}

/** Where `command` is on PATH (symbolic links not followed: a virtual environment's python3 is its own). */
function onPath(command: string): string | null {
  for (const dir of (hostEnv().PATH ?? '').split(':')) {
    if (dir && existsSync(`${dir}/${command}`)) return `${dir}/${command}`;
  }
  return null;
}

const TORCH_PROBE = `import json, torch
r = dict(torch=torch.__version__, cuda_available=torch.cuda.is_available(), cuda=torch.version.cuda)
if r["cuda_available"]:
    p = torch.cuda.get_device_properties(0)
    r.update(gpu_name=p.name, capability="%d.%d" % (p.major, p.minor), multiprocessors=p.multi_processor_count)
print("PROBE " + json.dumps(r))`;

/**
 * The first Python with PyTorch that sees CUDA: ADABATCH_BENCH_PYTHON, python3 on PATH, /usr/bin/python3
 * (Debian's python3-torch lives there, outside a virtual environment). Returns every candidate's answer.
 */
async function findTorch(o: Options): Promise<{ chosen: TorchProbe | null; probes: TorchProbe[] }> {
  const candidates = [...new Set([process.env.ADABATCH_BENCH_PYTHON, onPath('python3'), '/usr/bin/python3'].filter((p): p is string => !!p && existsSync(p)))];
  if (candidates.length === 0) return { chosen: null, probes: [{ python: 'python3', error: 'no python3 on PATH or at /usr/bin/python3' }] };
  const probes: TorchProbe[] = [];
  for (const python of candidates) {
    const r = await runChild([python, '-c', TORCH_PROBE], { env: hostEnv(), timeoutS: Math.min(o.torchTimeoutS, 120) });
    const line = r.stdout.split('\n').find((l) => l.startsWith('PROBE '));
    const probe: TorchProbe = line ? { python, ...(JSON.parse(line.slice(6)) as Omit<TorchProbe, 'python'>) } : { python, error: failure(r, `${python} -c 'import torch'`).error + `: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 300)}` };
    probes.push(probe);
    if (probe.cuda_available) return { chosen: probe, probes };
  }
  return { chosen: null, probes };
}

async function torchRun(python: string, preset: string, bf16: boolean, o: Options): Promise<Record<string, unknown>> {
  const script = fileURLToPath(new URL('../../bench/reference/torch_llama.py', import.meta.url));
  // More steps than ours: a PyTorch step on a GPU takes milliseconds, its start-up the most.
  const args = [python, script, '--config', preset, '--device', 'cuda', '--steps', String(Math.max(10, o.steps)), '--warmup', String(Math.max(3, o.warmup)), ...(bf16 ? ['--bf16'] : [])];
  const r = await runChild(args, { env: { ...hostEnv(), OMP_WAIT_POLICY: 'PASSIVE', PYTHONUNBUFFERED: '1' }, timeoutS: o.torchTimeoutS });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.exit !== 0 || !line) return failure(r, `PyTorch ${bf16 ? 'bf16' : 'fp32'} (${preset})`);
  const j = JSON.parse(line.slice(7).replace(/\bNaN\b|-?\bInfinity\b/g, 'null')) as Record<string, number | string | boolean | null>;
  return {
    precision: j.precision,
    tok_per_s: round(j.tok_per_s_median as number, 1),
    step_ms_median: round(j.step_ms_median as number, 2),
    step_ms_min: round(j.step_ms_min as number, 2),
    model_tflops: round(j.gflops_median as number / 1000, 2),
    peak_gpu_allocated_mb: round(j.peak_gpu_allocated_mb as number, 0),
    loss_last: j.loss_last,
    steps: j.steps,
    warmup: j.warmup,
    tf32: j.tf32,
    torch: j.system,
    cuda: j.cuda_version,
    gpu: j.gpu_name,
  };
}

// ---- the webgpu parts -----------------------------------------------------------------------------

const round = (x: number | null | undefined, digits: number): number | null => (typeof x === 'number' && Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : null);

/** The compiled webgpu test files (the slow suite aside). */
function webgpuTestFiles(): string[] {
  const dir = fileURLToPath(new URL('../test/', import.meta.url));
  return readdirSync(dir)
    .filter((f) => f.endsWith('.test.js') && !f.endsWith('.slow.test.js') && f.includes('webgpu'))
    .sort()
    .map((f) => dir + f);
}

async function runTests(o: Options): Promise<Record<string, unknown>> {
  const files = webgpuTestFiles();
  if (files.length === 0) return { error: 'no compiled webgpu test files (dist/test/*webgpu*.test.js)' };
  // Each file opens its own device; the ref backend they compare with runs on the CPU cores.
  const concurrency = Math.max(2, Math.min(8, Math.floor(cpus().length / 2)));
  const r = await runChild([process.execPath, '--test', '--test-reporter=tap', `--test-concurrency=${concurrency}`, ...files], { env: nodeEnv(o), timeoutS: o.testTimeoutS });
  const count = (key: string): number | null => {
    const m = new RegExp(`^# ${key} (\\d+)$`, 'm').exec(r.stdout);
    return m ? Number(m[1]) : null;
  };
  const failed = [...r.stdout.matchAll(/^not ok \d+ - (.*)$/gm)].map((m) => m[1]!);
  const skipped = [...r.stdout.matchAll(/^ok \d+ - (.*) # SKIP(.*)$/gm)].map((m) => `${m[1]}:${m[2]}`);
  const result = {
    files: files.map((f) => f.slice(f.lastIndexOf('/') + 1)),
    concurrency,
    adabatch_test_gpu: nodeEnv(o).ADABATCH_TEST_GPU ?? null,
    tests: count('tests'),
    pass: count('pass'),
    fail: count('fail'),
    skipped: count('skipped'),
    seconds: r.seconds,
    failed,
    skipped_tests: skipped.slice(0, 20),
  };
  return r.exit === 0 ? result : { ...result, ...failure(r, 'the webgpu tests') };
}

async function probeAdapter(o: Options): Promise<Record<string, unknown>> {
  const module = fileURLToPath(new URL('../src/backend/webgpu/index.js', import.meta.url));
  const code = `import { WebGpuBackend } from ${JSON.stringify(module)}; const gpu = new WebGpuBackend(); console.log('DEVICE ' + JSON.stringify(gpu.device)); gpu.dispose();`;
  const r = await runChild([process.execPath, '--input-type=module', '-e', code], { env: nodeEnv(o), timeoutS: 120 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('DEVICE '));
  return line && r.exit === 0 ? (JSON.parse(line.slice(7)) as Record<string, unknown>) : failure(r, 'opening the WebGPU device');
}

/** Model FLOPs per token, the PyTorch reference's count: 6 × the matmul parameters + attention. */
function flopsPerToken(c: ModelConfig): number {
  const matmulParams = modelSizes(c).paramCount - (c.tie_embeddings ? 0 : c.vocab * c.d_model);
  return 6 * matmulParams + 12 * c.n_layers * c.d_model * c.seq_len;
}

/** One `bench` child that prints JSON lines: the row with `backend`, or what the JSON keeps of a failure. */
async function benchRow(args: string[], backend: string, what: string, o: Options): Promise<Record<string, unknown>> {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const r = await runChild([process.execPath, main, ...args], { env: nodeEnv(o), timeoutS: o.benchTimeoutS });
  const row = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((x) => x.backend === backend);
  return row && r.exit === 0 ? row : failure(r, what);
}

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/** The webgpu step benchmark, then TF.js on the same adapter, each in a child of its own (a slow or failing TF.js costs only its own part). */
async function webgpuStep(preset: string, o: Options): Promise<{ webgpu: Record<string, unknown>; tfjs: Record<string, unknown> | null }> {
  const shape = ['--preset', preset, '--batch', String(BATCH[preset] ?? 4), '--steps', String(o.steps), '--warmup', String(o.warmup), '--json'];
  const ours = await benchRow(['step', '--backend', 'webgpu', ...shape, '--no-cpu', '--no-tfjs'], 'webgpu', `the webgpu step benchmark (${preset})`, o);
  const webgpu =
    'error' in ours
      ? ours
      : {
          adapter: ours.device,
          tok_per_s: round(ours.tokPerS as number, 1),
          step_ms_median: round(medianOf(ours.stepMs as number[]), 2),
          step_ms: (ours.stepMs as number[]).map((x) => round(x, 2)),
          gemm_shape: ours.gemmShape,
          gemm_gflops: round(ours.gemmGflops as number, 1),
          loss: round(ours.loss as number, 4),
        };
  if (!o.tfjs) return { webgpu, tfjs: null };
  const theirs = await benchRow(['tfjs-llama', ...shape], 'tfjs-webgpu', `TensorFlow.js's WebGPU step (${preset})`, o);
  const tfjs =
    'error' in theirs
      ? theirs
      : { adapter: theirs.device, tok_per_s: round(theirs.tokPerS as number, 1), step_ms_median: round(medianOf(theirs.stepMs as number[]), 2), step_ms: (theirs.stepMs as number[]).map((x) => round(x, 2)), loss: round(theirs.loss as number, 4) };
  return { webgpu, tfjs };
}

// ---- the peak --------------------------------------------------------------------------------------

function f32Peak(smi: SmiFacts, torch: TorchProbe | null, adapter: string | null): Record<string, unknown> {
  const name = smi.name ?? torch?.gpu_name ?? adapter ?? '';
  const listed = F32_PEAKS.find((p) => p.name.test(name));
  const capability = smi.compute_cap ?? torch?.capability ?? null;
  const lanes = capability ? f32LanesPerSm(capability) : null;
  const computed = lanes && torch?.multiprocessors && smi.clocks_max_sm_mhz ? (torch.multiprocessors * lanes * 2 * smi.clocks_max_sm_mhz) / 1e6 : null;
  const computedFrom = computed ? `${torch!.multiprocessors} SMs × ${lanes} FP32 lanes × 2 FLOP × ${smi.clocks_max_sm_mhz} MHz (max SM clock, nvidia-smi)` : null;
  if (listed) return { tflops: listed.tflops, source: `NVIDIA data sheet (${listed.card}, FP32 without tensor cores)`, computed_tflops: round(computed, 1), computed_from: computedFrom, name };
  if (computed) return { tflops: round(computed, 1), source: computedFrom, name };
  return { tflops: null, source: `unknown: '${name}' is not in the table of data-sheet peaks, and the SM count, compute capability or max clock is missing`, name };
}

// ---- main ---------------------------------------------------------------------------------------

export async function run(argv: string[]): Promise<void> {
  const o = parse(argv);
  logFile = o.out.replace(/\.json$/, '') + '.log';
  writeFileSync(logFile, `adabatch gpu-check ${new Date().toISOString()}\n`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      for (const pid of running) killGroup(pid);
      process.exit(130);
    });
  }
  const t0 = performance.now();
  const say = (s: string): void => console.log(`gpu-check: ${s}`);
  const result: Record<string, unknown> = {
    schema: 'adabatch-gpu-check/1',
    date: new Date().toISOString(),
    options: { ...o, out: undefined },
    bundle: bundleManifest(),
    setup: setupFacts(),
    host: hostFacts(),
    vulkan: vulkanFacts(),
  };
  const save = (): void => {
    result.seconds = Math.round((performance.now() - t0) / 100) / 10;
    writeFileSync(o.out, JSON.stringify(result, null, 2) + '\n');
  };
  const smi = nvidiaSmi();
  result.nvidia_smi = smi;
  say(smi.error ? `no nvidia-smi answer (${smi.error})` : `${smi.name}, driver ${smi.driver_version}`);
  save();

  let adapter: string | null = null;
  if (o.noWebgpu) {
    result.webgpu_device = { error: `not run: ${o.noWebgpu}` };
    say(`webgpu parts not run: ${o.noWebgpu}`);
  } else {
    const device = await probeAdapter(o);
    result.webgpu_device = device;
    adapter = typeof device.adapter === 'string' ? device.adapter : null;
    say(adapter ? `WebGPU adapter: ${adapter}` : `no WebGPU device: ${String(device.error)}`);
  }
  save();

  let torch: TorchProbe | null = null;
  if (o.torch) {
    const found = await findTorch(o);
    torch = found.chosen;
    result.torch = { chosen: torch, probes: found.probes, ...(!torch && { error: 'PyTorch with CUDA not available' }) };
    say(torch ? `PyTorch ${torch.torch} (CUDA ${torch.cuda}) on ${torch.gpu_name}, ${torch.python}` : `PyTorch with CUDA not available (${found.probes.map((p) => `${p.python}: ${p.error ?? `torch ${p.torch}, cuda_available ${p.cuda_available}`}`).join('; ')})`);
  } else result.torch = { error: 'not run (--no-torch)' };
  const peak = o.software ? { tflops: null, source: 'software adapter (--software): no f32 peak' } : f32Peak(smi, torch, adapter);
  result.f32_peak = peak;
  save();

  // The benchmarks first: on a borrowed GPU the time may run out, and the numbers are what it is for.
  const noDevice = 'not run: no WebGPU device (webgpu_device says why)';
  const presets: Array<Record<string, unknown>> = [];
  result.presets = presets;
  for (const preset of o.presets) {
    const c = modelConfig(preset);
    const batch = BATCH[preset] ?? 4;
    const entry: Record<string, unknown> = { preset, params: modelSizes(c).paramCount, batch, seq_len: c.seq_len, tokens_per_step: batch * c.seq_len, flops_per_token: flopsPerToken(c) };
    presets.push(entry);
    if (adapter) {
      say(`preset ${preset}: webgpu step benchmark${o.tfjs ? ', then TF.js' : ''} (${o.warmup} warm-up + ${o.steps} steps, up to ${o.benchTimeoutS} s each)`);
      const { webgpu, tfjs } = await webgpuStep(preset, o);
      const gflops = webgpu.gemm_gflops as number | null;
      const tokPerS = webgpu.tok_per_s as number | null;
      entry.webgpu = {
        ...webgpu,
        ...(tokPerS && { model_tflops: round((tokPerS * (entry.flops_per_token as number)) / 1e12, 3) }),
        ...(gflops && typeof peak.tflops === 'number' && { gemm_pct_of_f32_peak: round((100 * gflops) / (peak.tflops * 1000), 1) }),
      };
      entry.tfjs = tfjs;
    } else entry.webgpu = { error: noDevice };
    save();
    if (torch && TORCH_PRESETS.has(preset)) {
      say(`preset ${preset}: PyTorch on CUDA, fp32 then bf16 autocast`);
      entry.torch_fp32 = await torchRun(torch.python, preset, false, o);
      entry.torch_bf16 = await torchRun(torch.python, preset, true, o);
    } else {
      const why = { error: !o.torch ? 'not run (--no-torch)' : !torch ? 'PyTorch with CUDA not available' : `the PyTorch reference has no preset ${preset}` };
      entry.torch_fp32 = why;
      entry.torch_bf16 = why;
    }
    const ours = (entry.webgpu as Record<string, unknown>).tok_per_s as number | undefined;
    const ratio = (other: unknown): number | null => {
      const t = (other as Record<string, unknown> | null)?.tok_per_s;
      return ours && typeof t === 'number' ? round(ours / t, 3) : null;
    };
    entry.ratio_webgpu_vs_torch_fp32 = ratio(entry.torch_fp32);
    entry.ratio_webgpu_vs_torch_bf16 = ratio(entry.torch_bf16);
    entry.ratio_webgpu_vs_tfjs = ratio(entry.tfjs);
    const pct = (entry.webgpu as Record<string, unknown>).gemm_pct_of_f32_peak;
    entry.goals = {
      [`gemm_at_least_${GOAL_GEMM_PCT}pct_of_f32_peak`]: typeof pct === 'number' ? pct >= GOAL_GEMM_PCT : null,
      [`step_at_least_${GOAL_VS_TORCH_FP32}x_torch_fp32`]: entry.ratio_webgpu_vs_torch_fp32 === null ? null : (entry.ratio_webgpu_vs_torch_fp32 as number) >= GOAL_VS_TORCH_FP32,
    };
    say(`preset ${preset}: ${summarise(entry)}`);
    save();
  }

  if (!adapter) result.tests = { error: noDevice };
  else if (!o.tests) result.tests = { error: 'not run (--no-tests)' };
  else {
    say(`webgpu tests (${webgpuTestFiles().length} files, up to ${o.testTimeoutS} s)`);
    const tests = await runTests(o);
    result.tests = tests;
    say(`tests: ${tests.pass ?? '?'} passed, ${tests.fail ?? '?'} failed, ${tests.skipped ?? '?'} skipped (${tests.seconds} s)${tests.error ? `: ${String(tests.error)}` : ''}`);
  }
  save();
  say(`wrote ${o.out} (log: ${logFile}), ${result.seconds} s`);
}

function summarise(e: Record<string, unknown>): string {
  const tok = (x: unknown): string => {
    const r = x as Record<string, unknown> | null | undefined;
    return typeof r?.tok_per_s === 'number' ? `${Math.round(r.tok_per_s)} tok/s` : r?.error ? `— (${String(r.error).slice(0, 80)})` : '—';
  };
  const w = e.webgpu as Record<string, unknown>;
  const gemm = typeof w.gemm_gflops === 'number' ? `, GEMM ${w.gemm_shape} ${w.gemm_gflops} GFLOP/s${typeof w.gemm_pct_of_f32_peak === 'number' ? ` = ${w.gemm_pct_of_f32_peak}% of f32 peak` : ''}` : '';
  return `webgpu ${tok(w)}${gemm}; tfjs ${tok(e.tfjs)}; torch fp32 ${tok(e.torch_fp32)}, bf16 ${tok(e.torch_bf16)}; webgpu/torch fp32 ${e.ratio_webgpu_vs_torch_fp32 ?? '—'}`;
}

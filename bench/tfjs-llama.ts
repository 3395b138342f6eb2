/**
 * `npm run bench -- tfjs-llama [--preset tiny|A|B|C] [--batch N] [--steps N] [--warmup N] [--json]`: the same
 * Llama as src/model/llama.ts written with TensorFlow.js ops and trained on TF.js's WebGPU backend
 * (@tensorflow/tfjs-backend-webgpu) running on Dawn's Node bindings (the `webgpu` package), for
 * comparison with the webgpu backend (bench/webgpu-step.ts calls runTfjsStep in the same run).
 *
 * The model: token embedding; per block, h = x + o(attn(rope(qkv(rmsnorm₁(x))))) with causal
 * grouped-query attention (key/value head ⌊h·Hkv/H⌋, Hugging Face's repeat_kv) and rotate-half RoPE
 * (the tables of src/model/rope.ts), x' = h + down(silu(gate(rmsnorm₂(h))) · up(rmsnorm₂(h)));
 * final RMSNorm, the head (tied to the embedding or not, as the preset says) and the mean
 * cross-entropy. Parameters have the same shapes and count as ours (normal(0, init_std) weights,
 * unit norm gains). Trained with tf.train.adam(3e-4, β 0.9/0.95, ε 1e-8): TF.js has no AdamW, so
 * there is no weight decay (an elementwise update either way, negligible beside the step).
 *
 * Why @tensorflow/tfjs and not only tfjs-core: under Node, tfjs-core's CommonJS build
 * (dist/tf-core.node.js) registers no gradient (tf.variableGrads fails with "gradient function not
 * found for Sum"); the gradients are registered by `@tensorflow/tfjs-core/dist/register_all_gradients`,
 * an ES module with extensionless imports that Node cannot load, and the union package's Node build
 * (@tensorflow/tfjs, dist/tf.node.js) is the published way to get them.
 *
 * TF.js's backend runs on the main thread and asks `navigator.gpu` for a 'high-performance' adapter;
 * navigator.gpu is made from create() here, with ADABATCH_WEBGPU_ADAPTER passed as Dawn's `adapter=`
 * option as the webgpu backend does, so both use the same adapter. TF.js's defaults are kept (its
 * WEBGPU_CPU_FORWARD runs ops on tiny tensors still on the CPU there).
 */
import type * as TF from '@tensorflow/tfjs';

export const summary = "tokens/s of the same Llama's training step in TensorFlow.js on its WebGPU backend (Dawn via the webgpu package)";

export interface TfjsStepOptions {
  preset: string;
  batch: number;
  steps: number;
  warmup: number;
}

export interface TfjsStepResult {
  tokPerS: number;
  stepMs: number[];
  loss: number;
  device: string;
}

type Tfjs = typeof TF;

/** The adapter TF.js asked for (for its name). */
let tfjsAdapter: GPUAdapter | null = null;
let loaded: Promise<Tfjs> | null = null;

/** Makes navigator.gpu from the webgpu package, loads TF.js with its WebGPU backend and selects it. */
async function loadTfjs(): Promise<Tfjs> {
  loaded ??= (async () => {
    process.env.XDG_RUNTIME_DIR ??= (await import('node:os')).tmpdir();
    const { create, globals } = await import('webgpu');
    Object.assign(globalThis, globals);
    const adapter = process.env.ADABATCH_WEBGPU_ADAPTER;
    const gpu = create(adapter ? [`adapter=${adapter}`] : []);
    // navigator.gpu's closures hold what create() returned for the life of the process (dawn.node
    // crashes or hangs when it is collected).
    const nav = {
      gpu: {
        requestAdapter: async (options?: GPURequestAdapterOptions) => {
          tfjsAdapter = await gpu.requestAdapter(options);
          return tfjsAdapter;
        },
        getPreferredCanvasFormat: () => gpu.getPreferredCanvasFormat(),
        get wgslLanguageFeatures() {
          return gpu.wgslLanguageFeatures;
        },
      },
      userAgent: `Node.js ${process.version}`,
    };
    // Node 20 has no navigator; Node 21+ has a read-only one: define it either way. The backend
    // checks navigator.gpu when it is imported, so this comes first.
    Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
    const tf = (await import('@tensorflow/tfjs')) as Tfjs;
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) throw new Error("tf.setBackend('webgpu') returned false (the backend did not initialize)");
    await tf.ready();
    if (tf.getBackend() !== 'webgpu') throw new Error(`TF.js selected backend '${tf.getBackend()}', not webgpu`);
    return tf;
  })();
  return loaded;
}

/** The adapter's name as the webgpu backend writes it (DeviceDescription.adapter). */
function adapterName(a: GPUAdapter | null): string {
  const info = a?.info;
  if (!info) return 'unknown adapter';
  return [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'unknown adapter';
}

interface Block {
  norm1: TF.Variable;
  qkv: TF.Variable; // d × (H+2Hkv)·hd
  o: TF.Variable; // H·hd × d
  norm2: TF.Variable;
  gateUp: TF.Variable; // d × 2F
  down: TF.Variable; // F × d
}

/** One training step's loss closure and the variables it trains. */
function buildModel(tf: Tfjs, c: import('../src/model/config.js').ModelConfig, cosHalf: Float32Array, sinHalf: Float32Array, batch: number) {
  const { vocab: V, d_model: d, n_layers: L, n_heads: H, n_kv_heads: Hkv, ffn_dim: F, seq_len: T } = c;
  const hd = d / H;
  const half = hd / 2;
  const group = H / Hkv;
  const eps = c.norm_eps;
  let seed = 1;
  const w = (shape: number[], name: string): TF.Variable => tf.variable(tf.randomNormal(shape, 0, c.init_std, 'float32', seed++), true, name);
  const ones = (n: number, name: string): TF.Variable => tf.variable(tf.ones([n]), true, name);
  const embed = w([V, d], 'embed');
  const blocks: Block[] = [];
  for (let l = 0; l < L; l++) {
    blocks.push({
      norm1: ones(d, `b${l}.norm1`),
      qkv: w([d, (H + 2 * Hkv) * hd], `b${l}.qkv`),
      o: w([H * hd, d], `b${l}.o`),
      norm2: ones(d, `b${l}.norm2`),
      gateUp: w([d, 2 * F], `b${l}.gate_up`),
      down: w([F, d], `b${l}.down`),
    });
  }
  const normF = ones(d, 'norm');
  const head = c.tie_embeddings ? null : w([V, d], 'head');
  // Rotate-half tables [T, hd]: cos/sin of each pair shared by both halves of the head.
  const full = (t: Float32Array): Float32Array => {
    const out = new Float32Array(T * hd);
    for (let p = 0; p < T; p++) for (let i = 0; i < half; i++) out[p * hd + i] = out[p * hd + half + i] = t[p * half + i]!;
    return out;
  };
  const cos = tf.tensor2d(full(cosHalf), [T, hd]);
  const sin = tf.tensor2d(full(sinHalf), [T, hd]);
  const maskData = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskData[i * T + j] = -1e9;
  const mask = tf.tensor2d(maskData, [T, T]);
  const scale = 1 / Math.sqrt(hd);
  const N = batch * T;

  const rmsnorm = (x: TF.Tensor, g: TF.Tensor): TF.Tensor => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), g);
  const rope = (x: TF.Tensor): TF.Tensor => {
    // x: [B, heads, T, hd]
    const [x1, x2] = tf.split(x, 2, -1) as [TF.Tensor, TF.Tensor];
    return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2), x1], -1), sin));
  };
  const heads = (x: TF.Tensor, n: number): TF.Tensor => tf.transpose(tf.reshape(x, [batch, T, n, hd]), [0, 2, 1, 3]);
  // Rank 4 throughout: TF.js's WebGPU tile of rank ≥ 5 reads the tensor back synchronously, which
  // needs OffscreenCanvas (absent in Node).
  const repeatKv = (x: TF.Tensor): TF.Tensor => (group === 1 ? x : tf.reshape(tf.tile(tf.reshape(x, [batch, Hkv, 1, T * hd]), [1, 1, group, 1]), [batch, H, T, hd]));

  const lossFn = (tokens: TF.Tensor1D, targets: TF.Tensor1D): TF.Scalar => {
    let x = tf.gather(embed, tokens); // [N, d]
    for (const b of blocks) {
      const xn = rmsnorm(x, b.norm1);
      const qkv = tf.matMul(xn, b.qkv);
      const [q, k, v] = tf.split(qkv, [H * hd, Hkv * hd, Hkv * hd], -1) as [TF.Tensor2D, TF.Tensor2D, TF.Tensor2D];
      const qh = rope(heads(q, H));
      const kh = repeatKv(rope(heads(k, Hkv)));
      const vh = repeatKv(heads(v, Hkv));
      const scores = tf.add(tf.mul(tf.matMul(qh, kh, false, true), scale), mask); // [B, H, T, T]
      const attn = tf.matMul(tf.softmax(scores), vh); // [B, H, T, hd]
      const merged = tf.reshape(tf.transpose(attn, [0, 2, 1, 3]), [N, H * hd]);
      x = tf.add(x, tf.matMul(merged, b.o));
      const xn2 = rmsnorm(x, b.norm2);
      const [gate, up] = tf.split(tf.matMul(xn2, b.gateUp), 2, -1) as [TF.Tensor2D, TF.Tensor2D];
      const h = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
      x = tf.add(x, tf.matMul(h, b.down));
    }
    const logits = tf.matMul(rmsnorm(x, normF), head ?? embed, false, true); // [N, V]
    const logp = tf.logSoftmax(logits);
    return tf.neg(tf.mean(tf.sum(tf.mul(logp, tf.oneHot(targets, V)), -1))) as TF.Scalar;
  };
  const constants = [cos, sin, mask];
  return { lossFn, dispose: () => tf.dispose([embed, normF, ...(head ? [head] : []), ...blocks.flatMap((b) => Object.values(b)), ...constants]) };
}

/**
 * Trains the preset's Llama in TF.js on its WebGPU backend for `warmup` + `steps` steps (batch ×
 * seq_len random tokens each, the data synced every step) and reports tokens/s at the median
 * measured step, the measured step times, the last loss and the adapter's name.
 */
export async function runTfjsStep(opts: TfjsStepOptions): Promise<TfjsStepResult> {
  const tf = await loadTfjs();
  const { modelConfig } = await import('../src/model/config.js');
  const { ropeTables } = await import('../src/model/rope.js');
  const { Rng } = await import('../src/util/rng.js');
  const config = modelConfig(opts.preset);
  const T = config.seq_len;
  const n = opts.batch * T;
  const { cos, sin } = ropeTables(T, config.d_model / config.n_heads, config.rope_theta);
  const model = buildModel(tf, config, cos, sin, opts.batch);
  const optimizer = tf.train.adam(3e-4, 0.9, 0.95, 1e-8);
  const rng = new Rng(0);
  const stepMs: number[] = [];
  let loss = NaN;
  try {
    for (let s = 0; s < opts.warmup + opts.steps; s++) {
      const tokens = tf.tensor1d(Int32Array.from({ length: n }, () => rng.int(config.vocab)), 'int32');
      const targets = tf.tensor1d(Int32Array.from({ length: n }, () => rng.int(config.vocab)), 'int32');
      const t0 = performance.now();
      const l = optimizer.minimize(() => model.lossFn(tokens, targets), true);
      if (!l) throw new Error('optimizer.minimize returned no loss');
      loss = (await l.data())[0]!;
      if (s >= opts.warmup) stepMs.push(performance.now() - t0);
      tf.dispose([l, tokens, targets]);
    }
  } finally {
    optimizer.dispose();
    model.dispose();
  }
  const sorted = [...stepMs].sort((x, y) => x - y);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return { tokPerS: n / (median / 1000), stepMs, loss, device: adapterName(tfjsAdapter) };
}

export async function run(argv: string[]): Promise<void> {
  const o: TfjsStepOptions = { preset: 'tiny', batch: 4, steps: 3, warmup: 1 };
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    if (a === '--json') {
      json = true;
      continue;
    }
    const keys: Record<string, 'batch' | 'steps' | 'warmup'> = { '--batch': 'batch', '--steps': 'steps', '--warmup': 'warmup' };
    const key = Object.hasOwn(keys, a) ? keys[a] : undefined;
    if (a === '--preset' && v) o.preset = v;
    else if (key && Number.isInteger(Number(v)) && Number(v) >= (key === 'warmup' ? 0 : 1)) o[key] = Number(v);
    else throw new Error(`bench tfjs-llama: bad option '${a}${v === undefined ? '' : ` ${v}`}' (options: --preset tiny|A|B|C, --batch N ≥ 1, --steps N ≥ 1, --warmup N ≥ 0, --json)`);
    i++;
  }
  const r = await runTfjsStep(o);
  if (json) return console.log(JSON.stringify({ date: new Date().toISOString(), backend: 'tfjs-webgpu', preset: o.preset, batch: o.batch, ...r }));
  console.log(`tfjs-webgpu ${r.tokPerS.toFixed(0)} tok/s  steps ${r.stepMs.map((m) => m.toFixed(0)).join(', ')} ms  loss ${r.loss.toFixed(4)}  (${r.device})`);
}

/**
 * Llama model configuration and presets. The config is data (snake_case keys, as written in YAML
 * and close to Hugging Face's LlamaConfig); every check names the field it rejects.
 */
import { z } from 'zod';
import { UserError, parseOrThrow } from '../util/errors.js';

const posInt = z.number().int().positive();

/**
 * Limits on a model's sizes. They are checked wherever a size comes from outside (a run config, a
 * `--set` override, a config.json, a checkpoint) before anything is allocated or enumerated from it,
 * so a corrupt or hostile number is refused by name instead of exhausting memory or time. Each limit
 * is far above every published dense Llama-style model (in brackets) and at or below where the number
 * stops being usable here:
 *   vocab      ≤ 2²² = 4,194,304   [262,144: Gemma 3; 128,256: Llama 3]
 *   d_model    ≤ 2¹⁶ = 65,536      [18,432: PaLM 540B; 16,384: Llama 3.1 405B]
 *   n_layers   ≤ 4,096             [126: Llama 3.1 405B; 1,000: DeepNet, the deepest published]
 *   n_heads, n_kv_heads ≤ 2¹⁵      (implied anyway: head dimension d_model/n_heads is even, so ≥ 2)
 *   ffn_dim    ≤ 2¹⁸ = 262,144     [73,728: PaLM 540B; 53,248: Llama 3.1 405B]
 *   seq_len    ≤ 2²⁴ = 16,777,216  [10M: Llama 4 Scout; 131,072: Llama 3.1]
 *   one unit   ≤ 2³² elements      each unit (the embedding, one block, the head) is one flat buffer,
 *                                  and 2³² is Node 20's typed-array length limit [a Llama 3.1 405B
 *                                  block: 3.2·10⁹]
 *   parameters ≤ 2⁴¹ ≈ 2.2·10¹²    [540·10⁹: PaLM; 405·10⁹: Llama 3.1]
 * The rotary tables (seq_len × head_dim/2 entries each) are limited where they are built (llama.ts).
 */
export const MODEL_LIMITS = {
  vocab: 2 ** 22,
  d_model: 2 ** 16,
  n_layers: 4096,
  n_heads: 2 ** 15,
  n_kv_heads: 2 ** 15,
  ffn_dim: 2 ** 18,
  seq_len: 2 ** 24,
  unitElements: 2 ** 32,
  params: 2 ** 41,
} as const;

const WHY_LIMIT: Record<'vocab' | 'd_model' | 'n_layers' | 'n_heads' | 'n_kv_heads' | 'ffn_dim' | 'seq_len', string> = {
  vocab: 'the largest published vocabularies have 262,144 tokens',
  d_model: 'the widest published models have 18,432',
  n_layers: 'the deepest published models have about 1,000 layers, large Llamas 126',
  n_heads: 'the head dimension d_model/n_heads must be at least 2',
  n_kv_heads: 'the head dimension d_model/n_heads must be at least 2',
  ffn_dim: 'the largest published models use 73,728',
  seq_len: 'the longest published context is about 10 million positions',
};

const bounded = (field: keyof typeof WHY_LIMIT): z.ZodNumber => posInt.max(MODEL_LIMITS[field], { message: `must be at most ${MODEL_LIMITS[field].toLocaleString('en-US')} (${WHY_LIMIT[field]}; a larger value is taken for a corrupt file or a typo)` });

/** The shape fields the sizes below depend on (a ModelConfig is one). */
export interface ModelShape {
  vocab: number;
  d_model: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  ffn_dim: number;
  tie_embeddings: boolean;
}

const ALIGN = 16;
const align16 = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/**
 * Parameter count and unit sizes of a model, in O(1) (no tensor is enumerated): what buildLayout
 * (layout.ts) would give, so that sizes read from a file can be checked before the layout is built.
 * Exact for any shape within MODEL_LIMITS (all products stay below 2⁵³).
 */
export function modelSizes(c: ModelShape): { paramCount: number; embedUnit: number; blockUnit: number; headUnit: number } {
  const { vocab: V, d_model: d, n_layers: L, n_heads: H, n_kv_heads: Hkv, ffn_dim: F } = c;
  const hd = d / H;
  const embed = V * d;
  const block = 2 * d + (H + 2 * Hkv) * hd * d + d * H * hd + 3 * F * d;
  const head = d + (c.tie_embeddings ? 0 : V * d);
  // Unit sizes with layout.ts's 16-element alignment of every group.
  let b = 2 * d;
  b = align16(b) + (H + 2 * Hkv) * hd * d;
  b = align16(b) + d * H * hd;
  b = align16(b) + 2 * F * d;
  b = align16(b) + d * F;
  const headUnit = c.tie_embeddings ? align16(d) : align16(align16(d) + V * d);
  return { paramCount: embed + L * block + head, embedUnit: align16(embed), blockUnit: align16(b), headUnit };
}

/** Problems with a model's overall size (per field limits aside), each with the field to blame. */
export function modelSizeProblems(c: ModelShape): Array<{ field: 'vocab' | 'd_model' | 'n_layers'; message: string }> {
  const out: Array<{ field: 'vocab' | 'd_model' | 'n_layers'; message: string }> = [];
  const s = modelSizes(c);
  const lim = MODEL_LIMITS.unitElements;
  const why = `one unit's parameters live in one flat buffer, and 2^32 elements is the typed-array limit`;
  if (s.embedUnit > lim) out.push({ field: 'vocab', message: `the embedding (vocab × d_model = ${c.vocab} × ${c.d_model}) has ${s.embedUnit} elements, more than 2^32 (${why})` });
  if (s.blockUnit > lim) out.push({ field: 'd_model', message: `one transformer block (d_model ${c.d_model}, ffn_dim ${c.ffn_dim}, ${c.n_heads} heads) has ${s.blockUnit} elements, more than 2^32 (${why})` });
  if (out.length === 0 && s.paramCount > MODEL_LIMITS.params) out.push({ field: 'n_layers', message: `the model would have ${s.paramCount.toExponential(3)} parameters, more than the limit of 2^41 ≈ 2.2e12 (the largest published dense models have 5.4e11)` });
  return out;
}

export const modelConfigSchema = z
  .object({
    vocab: bounded('vocab').describe('vocabulary size'),
    d_model: bounded('d_model'),
    n_layers: bounded('n_layers'),
    n_heads: bounded('n_heads'),
    n_kv_heads: bounded('n_kv_heads'),
    ffn_dim: bounded('ffn_dim'),
    seq_len: bounded('seq_len'),
    rope_theta: z.number().positive().default(10000),
    norm_eps: z.number().positive().default(1e-5),
    tie_embeddings: z.boolean().default(false),
    init_std: z.number().positive().default(0.02),
  })
  .strict()
  .superRefine((c, ctx) => {
    const issue = (path: string, message: string): void => void ctx.addIssue({ code: 'custom', path: [path], message });
    if (c.d_model % c.n_heads !== 0) issue('d_model', `d_model (${c.d_model}) must be divisible by n_heads (${c.n_heads})`);
    else if ((c.d_model / c.n_heads) % 2 !== 0) issue('d_model', `head dimension d_model/n_heads = ${c.d_model / c.n_heads} must be even (rotary embedding rotates pairs)`);
    if (c.n_heads % c.n_kv_heads !== 0) issue('n_kv_heads', `n_heads (${c.n_heads}) must be divisible by n_kv_heads (${c.n_kv_heads})`);
    else if (c.d_model % c.n_heads === 0) for (const p of modelSizeProblems(c)) issue(p.field, p.message);
  });

export type ModelConfig = z.output<typeof modelConfigSchema>;
export type ModelConfigInput = z.input<typeof modelConfigSchema>;

export const PRESETS = {
  /** ~0.87M parameters, grouped-query attention, untied head: tests and quick demos. */
  tiny: { vocab: 512, d_model: 128, n_layers: 4, n_heads: 4, n_kv_heads: 2, ffn_dim: 352, seq_len: 128, tie_embeddings: false },
  /** The PyTorch reference's preset A (tied embeddings, as in bench/reference/torch_llama.py). */
  A: { vocab: 4096, d_model: 256, n_layers: 4, n_heads: 4, n_kv_heads: 4, ffn_dim: 688, seq_len: 256, tie_embeddings: true },
  /** The PyTorch reference's preset B. */
  B: { vocab: 8192, d_model: 512, n_layers: 8, n_heads: 8, n_kv_heads: 8, ffn_dim: 1376, seq_len: 512, tie_embeddings: true },
  /**
   * The ~125M class, for GPU benchmarks: GPT-2 small's width and depth as a Llama, the "LLaMA 130M"
   * shape of ReLoRA and GaLore (untied head, Hugging Face's LlamaConfig default). 134,105,856
   * parameters: embedding and head 2 × 32000 × 768 = 49,152,000; 12 blocks × (4 × 768² + 3 × 768 ×
   * 2048 + 2 × 768) = 12 × 7,079,424 = 84,953,088; final norm 768.
   */
  C: { vocab: 32000, d_model: 768, n_layers: 12, n_heads: 12, n_kv_heads: 12, ffn_dim: 2048, seq_len: 1024, tie_embeddings: false },
  /** The real TinyLlama-1.1B shape. */
  tinyllama: { vocab: 32000, d_model: 2048, n_layers: 22, n_heads: 32, n_kv_heads: 4, ffn_dim: 5632, seq_len: 2048, tie_embeddings: false },
} as const satisfies Record<string, ModelConfigInput>;

export type PresetName = keyof typeof PRESETS;

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

/** Resolves a preset name plus overrides into a validated config. */
export function modelConfig(preset: string | undefined, overrides: Partial<ModelConfigInput> = {}): ModelConfig {
  let base: Partial<ModelConfigInput> = {};
  if (preset !== undefined) {
    if (!Object.hasOwn(PRESETS, preset)) throw new UserError(`unknown model preset '${preset}' (known presets: ${presetNames().join(', ')})`);
    base = PRESETS[preset as PresetName];
  }
  return parseOrThrow(modelConfigSchema, { ...base, ...overrides }, 'model config', 'model');
}

export function headDim(c: ModelConfig): number {
  return c.d_model / c.n_heads;
}

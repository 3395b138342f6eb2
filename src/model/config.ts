/**
 * Llama model configuration and presets. The config is data (snake_case keys, as written in YAML
 * and close to Hugging Face's LlamaConfig); every check names the field it rejects.
 */
import { z } from 'zod';
import { UserError, parseOrThrow } from '../util/errors.js';

const posInt = z.number().int().positive();

export const modelConfigSchema = z
  .object({
    vocab: posInt.describe('vocabulary size'),
    d_model: posInt,
    n_layers: posInt,
    n_heads: posInt,
    n_kv_heads: posInt,
    ffn_dim: posInt,
    seq_len: posInt,
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

/**
 * Hugging Face LlamaConfig (config.json) ↔ our ModelConfig, and the tensor set a Llama checkpoint
 * must hold. Shared by the checkpoint reader/writer (checkpoint.ts) and the HF importer (hf.ts).
 *
 *   modelConfigFromHf(json, { file, notes })  → ModelConfig   refuses what we cannot run exactly
 *   hfConfigFromModel(config, tokenIds?)      → HfLlamaConfig what transformers' LlamaConfig reads
 *   hfTokenIds(json)                          → { bos_token_id, eos_token_id, pad_token_id }
 *   expectedModelTensors(config)              → [{ name, shape }] in layout order (HF names)
 *   checkTensorSet(config, found, where)      → throws UserError on missing / unexpected / misshapen
 *   checkConfigFitsWeights(config, file, files, bytesPerParam, dtypes)   → throws UserError when the
 *                                             config describes more parameters than the files can hold
 *
 * Sizes are bounded by MODEL_LIMITS (src/model/config.ts); a value beyond them is refused naming the
 * config.json field, before any tensor name is enumerated.
 *
 * Field mapping (HF → ours): vocab_size → vocab, hidden_size → d_model, intermediate_size → ffn_dim,
 * num_hidden_layers → n_layers, num_attention_heads → n_heads, num_key_value_heads → n_kv_heads
 * (default: num_attention_heads), max_position_embeddings → seq_len, rope_theta → rope_theta,
 * rms_norm_eps → norm_eps, tie_word_embeddings → tie_embeddings, initializer_range → init_std.
 * Missing fields take transformers' LlamaConfig defaults (as transformers itself would), each with a
 * note. Anything that changes the computation and that we do not implement is refused with an error
 * naming the file and the field: see REFUSED below and docs/checkpoints.md.
 */
import { buildLayout } from '../model/layout.js';
import { modelConfigSchema, type ModelConfig, modelSizes } from '../model/config.js';
import { UserError } from '../util/errors.js';

/** The config.json we write (and the subset of fields we read). */
export interface HfLlamaConfig {
  architectures: string[];
  model_type: 'llama';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  max_position_embeddings: number;
  rope_theta: number;
  rope_scaling: null;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
  hidden_act: 'silu';
  attention_bias: false;
  attention_dropout: number;
  mlp_bias: false;
  pretraining_tp: 1;
  initializer_range: number;
  torch_dtype: 'float32';
  use_cache: boolean;
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
  pad_token_id: number | null;
}

/** Special token ids carried in config.json (null when unknown). */
export interface HfTokenIds {
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
}

/** transformers' LlamaConfig defaults for the fields we read. */
export const HF_LLAMA_DEFAULTS = {
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  max_position_embeddings: 2048,
  rope_theta: 10000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  initializer_range: 0.02,
} as const;

/** Converts our config to the config.json form transformers' LlamaForCausalLM loads. */
export function hfConfigFromModel(config: ModelConfig, ids: HfTokenIds = {}): HfLlamaConfig {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: config.vocab,
    hidden_size: config.d_model,
    intermediate_size: config.ffn_dim,
    num_hidden_layers: config.n_layers,
    num_attention_heads: config.n_heads,
    num_key_value_heads: config.n_kv_heads,
    head_dim: config.d_model / config.n_heads,
    max_position_embeddings: config.seq_len,
    rope_theta: config.rope_theta,
    rope_scaling: null,
    rms_norm_eps: config.norm_eps,
    tie_word_embeddings: config.tie_embeddings,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0,
    mlp_bias: false,
    pretraining_tp: 1,
    initializer_range: config.init_std,
    torch_dtype: 'float32',
    use_cache: true,
    // Written as null when unknown: omitting them would make transformers assume 1 and 2.
    bos_token_id: ids.bos_token_id ?? null,
    eos_token_id: ids.eos_token_id ?? null,
    pad_token_id: ids.pad_token_id ?? null,
  };
}

export function hfTokenIds(json: Record<string, unknown>): HfTokenIds {
  const id = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) ? v : null);
  const eos = json.eos_token_id;
  return {
    bos_token_id: id(json.bos_token_id),
    eos_token_id: Array.isArray(eos) && eos.every((e) => Number.isInteger(e)) ? (eos as number[]) : id(eos),
    pad_token_id: id(json.pad_token_id),
  };
}

export interface FromHfOptions {
  /** The file the JSON came from, for messages (default 'config.json'). */
  file?: string;
  /** Receives a line for every default applied or harmless field ignored. */
  notes?: string[];
}

/** Parses a config.json text; a UserError naming the file if it is not a JSON object. */
export function parseHfConfigText(text: string, file: string): Record<string, unknown> {
  // Plain JSON.parse: a key given twice takes its last value, as in transformers (json.load).
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UserError(`${file}: expected a JSON object`);
  return json as Record<string, unknown>;
}

/**
 * Maps a Hugging Face Llama config.json (parsed) to our ModelConfig. Refuses, with the file and the
 * field named, every feature that would make our forward pass differ from transformers'.
 */
export function modelConfigFromHf(json: unknown, opts: FromHfOptions = {}): ModelConfig {
  const file = opts.file ?? 'config.json';
  const notes = opts.notes ?? [];
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UserError(`${file}: expected a JSON object`);
  const c = json as Record<string, unknown>;
  const refuse = (field: string, why: string): never => {
    throw new UserError(`${file}: field '${field}' = ${JSON.stringify(c[field])}: ${why}`);
  };
  const present = (field: string): boolean => Object.hasOwn(c, field) && c[field] !== null && c[field] !== undefined;

  // ---- architecture ----------------------------------------------------------------------------
  if (!present('model_type')) throw new UserError(`${file}: field 'model_type' is missing; only model_type "llama" (LlamaForCausalLM) is supported`);
  if (c.model_type !== 'llama') refuse('model_type', 'only "llama" is supported');
  if (present('architectures')) {
    const a = c.architectures;
    if (!Array.isArray(a) || a.length !== 1 || a[0] !== 'LlamaForCausalLM') refuse('architectures', 'only ["LlamaForCausalLM"] is supported');
  } else notes.push(`${file}: no 'architectures' field; assuming LlamaForCausalLM`);

  // ---- features we do not implement ------------------------------------------------------------
  if (present('hidden_act') && c.hidden_act !== 'silu') refuse('hidden_act', 'only "silu" (SwiGLU MLP) is supported');
  if (present('attention_bias') && c.attention_bias !== false) refuse('attention_bias', 'attention projections with bias are not supported');
  if (present('mlp_bias') && c.mlp_bias !== false) refuse('mlp_bias', 'MLP projections with bias are not supported');
  if (present('rope_scaling')) {
    const rs = c.rope_scaling as Record<string, unknown>;
    const isDefault = typeof rs === 'object' && !Array.isArray(rs) && Object.keys(rs).every((k) => ['rope_type', 'type'].includes(k)) && (rs.rope_type ?? rs.type) === 'default';
    if (!isDefault) refuse('rope_scaling', 'RoPE scaling (linear, dynamic, yarn, llama3, …) is not supported; only plain RoPE with rope_theta');
    notes.push(`${file}: rope_scaling ${JSON.stringify(rs)} is plain RoPE`);
  }
  let ropeTheta: number | undefined;
  if (present('rope_parameters')) {
    // transformers ≥ 5 moves rope_theta (and the rope type) into rope_parameters.
    const rp = c.rope_parameters as Record<string, unknown>;
    if (typeof rp !== 'object' || Array.isArray(rp)) refuse('rope_parameters', 'expected an object');
    const type = rp.rope_type ?? rp.type ?? 'default';
    const extra = Object.keys(rp).filter((k) => !['rope_type', 'type', 'rope_theta', 'partial_rotary_factor'].includes(k));
    if (type !== 'default' || extra.length > 0) refuse('rope_parameters', 'only plain RoPE (rope_type "default") is supported');
    if (rp.partial_rotary_factor !== undefined && rp.partial_rotary_factor !== 1) refuse('rope_parameters', 'partial rotary embeddings are not supported');
    if (rp.rope_theta !== undefined) {
      if (typeof rp.rope_theta !== 'number' || !(rp.rope_theta > 0)) refuse('rope_parameters', 'rope_theta must be a positive number');
      ropeTheta = rp.rope_theta as number;
    }
  }
  if (present('partial_rotary_factor') && c.partial_rotary_factor !== 1) refuse('partial_rotary_factor', 'partial rotary embeddings are not supported');
  if (present('sliding_window')) refuse('sliding_window', 'sliding-window attention is not supported');
  if (present('use_sliding_window') && c.use_sliding_window !== false) refuse('use_sliding_window', 'sliding-window attention is not supported');
  if (present('quantization_config')) refuse('quantization_config', 'quantized checkpoints are not supported');
  if (present('pretraining_tp') && c.pretraining_tp !== 1) notes.push(`${file}: pretraining_tp ${JSON.stringify(c.pretraining_tp)} only splits transformers' matmuls (mathematically identical); ignored`);
  if (present('attention_dropout') && c.attention_dropout !== 0) notes.push(`${file}: attention_dropout ${JSON.stringify(c.attention_dropout)} ignored: adabatch trains without dropout`);

  // ---- sizes ------------------------------------------------------------------------------------
  const int = (field: keyof typeof HF_LLAMA_DEFAULTS): number => {
    if (!present(field)) {
      notes.push(`${file}: no '${field}'; using transformers' default ${HF_LLAMA_DEFAULTS[field]}`);
      return HF_LLAMA_DEFAULTS[field] as number;
    }
    const v = c[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) refuse(field, 'must be a positive integer');
    return v as number;
  };
  const num = (field: keyof typeof HF_LLAMA_DEFAULTS): number => {
    if (!present(field)) {
      notes.push(`${file}: no '${field}'; using transformers' default ${HF_LLAMA_DEFAULTS[field]}`);
      return HF_LLAMA_DEFAULTS[field] as number;
    }
    const v = c[field];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) refuse(field, 'must be a positive number');
    return v as number;
  };
  const vocab = int('vocab_size');
  const d = int('hidden_size');
  const ffn = int('intermediate_size');
  const layers = int('num_hidden_layers');
  const heads = int('num_attention_heads');
  let kvHeads = heads;
  if (present('num_key_value_heads')) {
    const v = c.num_key_value_heads;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) refuse('num_key_value_heads', 'must be a positive integer');
    kvHeads = v as number;
  }
  const seq = int('max_position_embeddings');
  if (present('rope_theta')) {
    const t = num('rope_theta');
    if (ropeTheta !== undefined && ropeTheta !== t) refuse('rope_theta', `disagrees with rope_parameters.rope_theta = ${ropeTheta}`);
    ropeTheta = t;
  } else if (ropeTheta === undefined) ropeTheta = num('rope_theta');
  const eps = num('rms_norm_eps');
  const initStd = num('initializer_range');
  let tie: boolean = HF_LLAMA_DEFAULTS.tie_word_embeddings;
  if (present('tie_word_embeddings')) {
    if (typeof c.tie_word_embeddings !== 'boolean') refuse('tie_word_embeddings', 'must be true or false');
    tie = c.tie_word_embeddings as boolean;
  } else notes.push(`${file}: no 'tie_word_embeddings'; using transformers' default false`);

  if (d % heads !== 0) refuse('num_attention_heads', `hidden_size ${d} is not divisible by num_attention_heads ${heads}`);
  const hd = d / heads;
  if (hd % 2 !== 0) refuse('hidden_size', `head dimension hidden_size/num_attention_heads = ${hd} must be even for rotary embeddings`);
  if (present('head_dim') && c.head_dim !== hd) refuse('head_dim', `must equal hidden_size/num_attention_heads = ${hd}; a different head_dim is not supported`);
  if (heads % kvHeads !== 0) refuse('num_key_value_heads', `num_attention_heads ${heads} is not divisible by num_key_value_heads ${kvHeads}`);

  const parsed = modelConfigSchema.safeParse({
    vocab,
    d_model: d,
    n_layers: layers,
    n_heads: heads,
    n_kv_heads: kvHeads,
    ffn_dim: ffn,
    seq_len: seq,
    rope_theta: ropeTheta,
    norm_eps: eps,
    tie_embeddings: tie,
    init_std: initStd,
  });
  if (!parsed.success) {
    // Name config.json's own fields (the schema speaks of ours: n_layers ↔ num_hidden_layers …).
    const given: Record<string, unknown> = { vocab, d_model: d, n_layers: layers, n_heads: heads, n_kv_heads: kvHeads, ffn_dim: ffn, seq_len: seq, rope_theta: ropeTheta, norm_eps: eps, tie_embeddings: tie, init_std: initStd };
    const problems = parsed.error.issues.map((i) => {
      const ours = String(i.path[0] ?? '');
      const hf = HF_FIELD_OF[ours];
      return hf ? `field '${hf}' = ${JSON.stringify(given[ours])}: ${i.message}` : i.message;
    });
    throw new UserError(`${file}: not a configuration adabatch can run: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/** config.json's name for each ModelConfig field. */
const HF_FIELD_OF: Record<string, string> = {
  vocab: 'vocab_size',
  d_model: 'hidden_size',
  n_layers: 'num_hidden_layers',
  n_heads: 'num_attention_heads',
  n_kv_heads: 'num_key_value_heads',
  ffn_dim: 'intermediate_size',
  seq_len: 'max_position_embeddings',
  rope_theta: 'rope_theta',
  norm_eps: 'rms_norm_eps',
  tie_embeddings: 'tie_word_embeddings',
  init_std: 'initializer_range',
};

/** A weight file and its size in bytes. */
export interface WeightFileSize {
  path: string;
  size: number;
}

/**
 * Refuses a config that describes more parameters than its weight files can hold, before any tensor
 * name is enumerated or any buffer allocated from the config: every parameter needs at least
 * `bytesPerParam` bytes (2 in a Hugging Face directory, whose smallest accepted dtypes are F16 and
 * BF16; 4 in our checkpoints, which are F32). The parameter count is computed in O(1) (modelSizes).
 */
export function checkConfigFitsWeights(config: ModelConfig, configFile: string, files: readonly WeightFileSize[], bytesPerParam: number, dtypes: string): void {
  const { paramCount } = modelSizes(config);
  const need = paramCount * bytesPerParam;
  const have = files.reduce((a, f) => a + f.size, 0);
  if (need <= have) return;
  const where = files.length === 1 ? `${files[0]!.path} has only ${have} bytes` : `its ${files.length} weight files (${files[0]!.path}, …) hold only ${have} bytes together`;
  throw new UserError(
    `${configFile}: fields vocab_size ${config.vocab}, hidden_size ${config.d_model}, intermediate_size ${config.ffn_dim}, num_hidden_layers ${config.n_layers}, ` +
      `num_attention_heads ${config.n_heads}, num_key_value_heads ${config.n_kv_heads}, tie_word_embeddings ${config.tie_embeddings} describe ${paramCount} parameters, ` +
      `at least ${need} bytes as ${dtypes}, but ${where} (the config does not belong to these weights, or a file is truncated)`,
  );
}

export interface TensorSpec {
  name: string;
  shape: number[];
}

/** Every parameter tensor of the model, in layout order, with Hugging Face names and shapes. */
export function expectedModelTensors(config: ModelConfig): TensorSpec[] {
  return buildLayout(config).units.flatMap((u) => u.views.map((v) => ({ name: v.name, shape: [...v.shape] })));
}

/** Tensors some HF checkpoints carry that hold no parameters (buffers recomputed from the config). */
export function isHarmlessExtraTensor(name: string): boolean {
  return /(^|\.)rotary_emb\.inv_freq$/.test(name);
}

export interface FoundTensor {
  dtype: string;
  shape: number[];
  /** The file holding it, for messages. */
  file: string;
}

/**
 * Checks a set of tensors against the model: every expected tensor present with the right shape and
 * an accepted dtype, nothing else except harmless buffers (noted) and, when embeddings are tied, an
 * `lm_head.weight` that the caller must then compare with the embedding (returned in `tiedHead`).
 */
export function checkTensorSet(
  config: ModelConfig,
  found: ReadonlyMap<string, FoundTensor>,
  opts: { where: string; dtypes: readonly string[]; notes?: string[] },
): { ignored: string[]; tiedHead: boolean } {
  const expected = expectedModelTensors(config);
  const missing: string[] = [];
  for (const { name, shape } of expected) {
    const t = found.get(name);
    if (!t) {
      missing.push(name);
      continue;
    }
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new UserError(`${t.file}: tensor '${name}' has shape [${t.shape.join(', ')}], but the config (${opts.where}) needs [${shape.join(', ')}]`);
    }
    if (!opts.dtypes.includes(t.dtype)) throw new UserError(`${t.file}: tensor '${name}' has dtype ${t.dtype}; expected ${opts.dtypes.join(' or ')}`);
  }
  if (missing.length) {
    const more = missing.length > 5 ? ` and ${missing.length - 5} more` : '';
    throw new UserError(`${opts.where}: missing tensor${missing.length > 1 ? 's' : ''} ${missing.slice(0, 5).map((n) => `'${n}'`).join(', ')}${more}`);
  }
  const expectedNames = new Set(expected.map((e) => e.name));
  const ignored: string[] = [];
  let tiedHead = false;
  const unexpected: string[] = [];
  for (const [name, t] of found) {
    if (expectedNames.has(name)) continue;
    if (isHarmlessExtraTensor(name)) {
      ignored.push(name);
      continue;
    }
    if (name.endsWith('.bias')) {
      const field = /self_attn/.test(name) ? 'attention_bias' : /mlp/.test(name) ? 'mlp_bias' : 'bias';
      throw new UserError(`${t.file}: tensor '${name}' is a bias; ${field} is not supported (adabatch's Llama has no biases)`);
    }
    if (name === 'lm_head.weight' && config.tie_embeddings) {
      const [v, d] = [config.vocab, config.d_model];
      if (t.shape.length !== 2 || t.shape[0] !== v || t.shape[1] !== d) throw new UserError(`${t.file}: tensor 'lm_head.weight' has shape [${t.shape.join(', ')}], expected [${v}, ${d}]`);
      tiedHead = true;
      continue;
    }
    unexpected.push(name);
  }
  if (unexpected.length) {
    const first = found.get(unexpected[0]!)!;
    const more = unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : '';
    throw new UserError(`${first.file}: unexpected tensor${unexpected.length > 1 ? 's' : ''} ${unexpected.slice(0, 5).map((n) => `'${n}'`).join(', ')}${more} (not part of a Llama with this config: ${opts.where})`);
  }
  if (ignored.length && opts.notes) opts.notes.push(`ignored ${ignored.length} rotary_emb.inv_freq buffer${ignored.length > 1 ? 's' : ''} (recomputed from rope_theta)`);
  return { ignored, tiedHead };
}

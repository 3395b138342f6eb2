/**
 * Fuzzing configurations:
 *  - Hugging Face config.json (src/io/hf-config.ts parseHfConfigText / modelConfigFromHf): a small
 *    valid Llama config, then fields set to extreme or wrongly typed values (num_hidden_layers 1e8,
 *    max_position_embeddings 1e12, negative, fractional, strings, null, objects), deleted, unknown
 *    fields added, the text itself broken or with duplicate keys. A config that is accepted must be
 *    usable: its tensors enumerable (what every reader does next) and its model buildable up to the
 *    RoPE tables (src/model/llama.ts's size check, then ropeTables) within the sandbox's bounds.
 *  - training configs (src/train/config.ts loadTrainConfig / trainConfigSchema): random `--set`
 *    overrides (known and unknown keys, prototype names, extreme numbers, wrong types, YAML that is
 *    not valid, aliases), random config files, random objects given to the schema directly. Every
 *    refusal is a UserError naming a field; overrides drawn only from a pool of valid ones are
 *    accepted.
 */
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { allows, applyEdit, type CallOutcome, type CaseDirs, callsOf, type Classes, coverage, expectNamedOrOk, extremeNumber, type Json, type Sandbox, weirdJson, weirdName } from './fuzz.js';

// ---------------------------------------------------------------------------------------------
// Hugging Face config.json

/** The micro model's config.json, as hfConfigFromModel writes it (spelled out here, independently). */
export const HF_BASE: Record<string, Json> = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  max_position_embeddings: 32,
  rope_theta: 5000,
  rope_scaling: null,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  attention_bias: false,
  attention_dropout: 0,
  mlp_bias: false,
  pretraining_tp: 1,
  initializer_range: 0.05,
  torch_dtype: 'float32',
  use_cache: true,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: null,
};

const SIZE_FIELDS = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'max_position_embeddings', 'head_dim'] as const;
const FLOAT_FIELDS = ['rope_theta', 'rms_norm_eps', 'initializer_range', 'attention_dropout', 'partial_rotary_factor'] as const;
const OTHER_FIELDS = ['model_type', 'architectures', 'tie_word_embeddings', 'hidden_act', 'attention_bias', 'mlp_bias', 'rope_scaling', 'rope_parameters', 'sliding_window', 'use_sliding_window', 'quantization_config', 'pretraining_tp', 'torch_dtype', 'bos_token_id', 'eos_token_id', 'pad_token_id'] as const;

const sizeValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<Json>(1e8, 1e12, 4096, 4097, 2 ** 15, 2 ** 16, 2 ** 16 + 2, 2 ** 18, 2 ** 22, 2 ** 22 + 2, 2 ** 24, 2 ** 24 + 1, 2 ** 26, 2 ** 31, 2 ** 32, 2 ** 53, 1e300, 0, -1, -32, 1.5, 2.0000001, 1, 2, 3, 6, 8, 16, 64, 128, 131072, '32', '1e8', null, true, [32], { value: 32 }) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 300 }) },
  { weight: 2, arbitrary: extremeNumber },
  { weight: 1, arbitrary: weirdJson },
);
const floatValue: fc.Arbitrary<Json> = fc.oneof(fc.constantFrom<Json>(0, -0, -1, 1, 1e-300, 5e-324, 1e308, 1e6, 0.5, '1e-6', null, true, [], {}), extremeNumber, weirdJson);
const otherValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>('llama', 'mistral', 'LLAMA', '', ['LlamaForCausalLM'], ['LlamaForCausalLM', 'X'], [], 'LlamaForCausalLM', true, false, 'silu', 'gelu', { type: 'linear', factor: 2 }, { rope_type: 'default' }, { type: 'default' }, { rope_type: 'default', rope_theta: 10000 }, { rope_type: 'llama3', factor: 8 }, { rope_type: 'default', rope_theta: -1 }, { rope_type: 'default', partial_rotary_factor: 0.5 }, 4096, 1, 2, [1, 2], 'float16', 'bfloat16'),
  weirdJson,
);

export type HfEdit =
  | { kind: 'size'; field: (typeof SIZE_FIELDS)[number]; value: Json | 'delete' }
  | { kind: 'float'; field: (typeof FLOAT_FIELDS)[number]; value: Json | 'delete' }
  | { kind: 'other'; field: (typeof OTHER_FIELDS)[number]; value: Json | 'delete' }
  | { kind: 'unknown'; field: string; value: Json }
  | { kind: 'text'; text: string }
  | { kind: 'duplicateKey'; field: string; value: Json };

export interface HfRecipe {
  edits: HfEdit[];
}

const hfEdit: fc.Arbitrary<HfEdit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('size' as const), field: fc.constantFrom(...SIZE_FIELDS), value: fc.oneof({ weight: 6, arbitrary: sizeValue }, { weight: 1, arbitrary: fc.constant('delete' as const) }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('float' as const), field: fc.constantFrom(...FLOAT_FIELDS), value: fc.oneof({ weight: 6, arbitrary: floatValue }, { weight: 1, arbitrary: fc.constant('delete' as const) }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('other' as const), field: fc.constantFrom(...OTHER_FIELDS), value: fc.oneof({ weight: 6, arbitrary: otherValue }, { weight: 1, arbitrary: fc.constant('delete' as const) }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unknown' as const), field: weirdName, value: weirdJson }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), text: fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('', 'null', '[]', '{', '[{}]', '"llama"', '{"model_type": "llama"', '\uFEFF{"model_type": "llama"}', '{"model_type": "llama"}', '['.repeat(100000))) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicateKey' as const), field: fc.constantFrom(...SIZE_FIELDS, 'model_type'), value: sizeValue }) },
);

/** transformers' defaults for missing size fields (as modelConfigFromHf applies them). */
const HF_DEFAULTS: Record<string, number> = { vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, max_position_embeddings: 2048 };

/**
 * Is this config.json in the 'hf-config-huge' class: sizes no real model has, which the code before
 * the limits accepted and then choked on (a layout of millions of blocks, RoPE tables of more than
 * 2^24 entries)? Only positive integers count (anything else is refused anyway).
 */
export function isHugeHfConfig(c: Record<string, Json>): boolean {
  const int = (f: string): number | null => {
    const v = Object.hasOwn(c, f) && c[f] !== null ? c[f] : HF_DEFAULTS[f];
    return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null;
  };
  const [V, d, F, L, H, S] = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings'].map(int);
  if (L !== null && L > 10_000) return true;
  if (d !== null && H !== null && S !== null && S * (d / H / 2) > 2 ** 24) return true;
  if (V !== null && d !== null && V * d > 2 ** 26) return true;
  if (F !== null && d !== null && F * d > 2 ** 26) return true;
  return false;
}

export function hfRecipe(): fc.Arbitrary<HfRecipe> {
  return fc.record({ edits: fc.oneof({ weight: 1, arbitrary: fc.constant([] as HfEdit[]) }, { weight: 8, arbitrary: fc.array(hfEdit, { minLength: 1, maxLength: 3 }) }) });
}

/** Inputs of the 'hf-config-huge' class only: a valid config with one or two sizes far beyond any real model. */
export function hfClassRecipe(id: string): fc.Arbitrary<HfRecipe> | null {
  if (id !== 'hf-config-huge') return null;
  return fc.record({
    edits: fc.array(
      fc.oneof(
        fc.record({ kind: fc.constant('size' as const), field: fc.constant('num_hidden_layers' as const), value: fc.constantFrom<Json>(1e6, 1e8, 2 ** 31, 1e12) }),
        fc.record({ kind: fc.constant('size' as const), field: fc.constant('max_position_embeddings' as const), value: fc.constantFrom<Json>(2 ** 22, 1e8, 1e12, 2 ** 53) }),
      ),
      { minLength: 1, maxLength: 2 },
    ),
  });
}

/** The config.json text of a recipe; with the 'hf-config-huge' class excluded, huge sizes are put back to the base's. */
export function buildHfConfig(r: HfRecipe, c: Classes): string {
  let obj: Json = structuredClone(HF_BASE);
  let text: string | null = null;
  for (const e of r.edits) {
    if (e.kind === 'text') text = e.text;
    else if (e.kind === 'duplicateKey') continue;
    else if (e.kind === 'unknown') obj = applyEdit(obj, { op: 'set', path: [e.field], value: e.value });
    else obj = applyEdit(obj, e.value === 'delete' ? { op: 'delete', path: [e.field] } : { op: 'set', path: [e.field], value: e.value });
  }
  if (!allows(c, 'hf-config-huge') && obj !== null && typeof obj === 'object' && !Array.isArray(obj)) {
    const o = obj as Record<string, Json>;
    for (const f of SIZE_FIELDS) if (isHugeHfConfig(o)) o[f] = HF_BASE[f]!;
  }
  let json = text ?? JSON.stringify(obj, null, 2);
  // A key given twice: the duplicate comes first, so the object's own value (when it has one) wins,
  // as with JSON.parse and Python's json.load. A huge duplicate of a deleted field is dropped when the
  // class is excluded.
  const own = obj !== null && typeof obj === 'object' && !Array.isArray(obj) ? (obj as Record<string, Json>) : {};
  const kept = r.edits.filter((e): e is Extract<HfEdit, { kind: 'duplicateKey' }> => e.kind === 'duplicateKey' && (allows(c, 'hf-config-huge') || Object.hasOwn(own, e.field) || !isHugeHfConfig({ ...own, [e.field]: e.value })));
  if (text === null && kept.length && json.startsWith('{')) json = `{${kept.map((e) => `${JSON.stringify(e.field)}: ${JSON.stringify(e.value)}`).join(', ')}, ${json.slice(1)}`;
  return json;
}

/** Every call on an accepted config must finish; refusals name config.json's file or a field. */
export function checkHfOutcome(file: string, calls: CallOutcome[]): void {
  for (const c of calls) expectNamedOrOk(c, 'config.json', c.call === 'modelConfigFromHf' ? [file] : /max_position_embeddings|num_hidden_layers|vocab_size|hidden_size|intermediate_size|num_attention_heads|num_key_value_heads|model\.\w+/);
}

export async function hfConfigCase(sandbox: Sandbox, dirs: CaseDirs, r: HfRecipe, c: Classes): Promise<void> {
  const text = buildHfConfig(r, c);
  await dirs.with(async (dir) => {
    const file = join(dir, 'config.json');
    const o = await sandbox.run('hf-config', { text, file });
    const calls = callsOf(o, 'config.json');
    coverage.note(`modelConfigFromHf: ${calls[0]!.kind}`);
    checkHfOutcome(file, calls);
  });
}

// ---------------------------------------------------------------------------------------------
// Training configs

/** Leaf keys of the training config (src/train/config.ts and the schemas it embeds). */
export const TRAIN_KEYS = [
  'run_dir', 'seed', 'backend', 'threads', 'init_from', 'recompute', 'max_nonfinite', 'log_every_s',
  'model.preset', 'model.vocab', 'model.d_model', 'model.n_layers', 'model.n_heads', 'model.n_kv_heads', 'model.ffn_dim', 'model.seq_len', 'model.rope_theta', 'model.tie_embeddings', 'model.init_std',
  'checkpoint.every_samples', 'checkpoint.every_minutes', 'checkpoint.keep_last', 'checkpoint.at_end',
  'parallel.strategy', 'parallel.reshard_after_forward', 'parallel.unsharded_accumulation',
  'data', 'data.synthetic', 'data.synthetic.phrases', 'data.synthetic.phrase_len', 'data.corpus', 'data.corpus.paths', 'data.corpus.text_field', 'data.on_bad_record', 'data.tokenizer.path', 'data.tokenizer.vocab', 'data.tokenizer.min_frequency', 'data.val_fraction', 'data.val_windows', 'data.split_seed', 'data.cache_dir', 'data.shards', 'data.mixture',
  'batch', 'batch.schedule', 'batch.eta', 'batch.initial', 'batch.max', 'batch.max_micro', 'batch.batch', 'batch.test_interval', 'batch.ema', 'batch.ema.beta', 'batch.hysteresis', 'batch.estimator', 'batch.lr_scaling', 'batch.stages', 'batch.start', 'batch.increment', 'batch.ramp_samples', 'batch.noise_scale.beta', 'batch.noise_scale.source',
  'lr.schedule', 'lr.lr', 'lr.min_lr', 'lr.warmup', 'lr.decay', 'lr.a', 'lr.b', 'lr.decay_shape',
  'optim.name', 'optim.beta1', 'optim.beta2', 'optim.eps', 'optim.weight_decay', 'optim.decay_norms', 'optim.clip', 'optim.lr_decay', 'optim.initial_accumulator_value', 'optim.momentum', 'optim.nesterov', 'optim.ns_steps',
  'budget.samples', 'budget.tokens', 'eval.every_samples', 'eval.windows',
] as const;

/** --set values as YAML text: numbers at the edges, wrong types, YAML oddities. */
const yamlValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: extremeNumber.map((n) => (Object.is(n, -0) ? '-0' : String(n))) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '', '~', 'null', 'true', 'no', 'yes', '.inf', '-.inf', '.nan', '0x10', '0o17', '1e999', '-1e999', '1_000', '007', '1.', '.5', "'3'", '"3"', 'abc', 'A', 'ref', 'cpu', 'fsdp', 'ddp', 'norm', 'constant', 'tiny', 'brown',
      '[]', '{}', '[1, 2]', '{a: 1}', '{synthetic: {phrases: 12, phrase_len: 5}}', '{schedule: constant, batch: 8}', '{schedule: norm, eta: 0.5, initial: 8, max: 64, max_micro: 2}', '[{batch: 8, fraction: 1}]',
      '&a [*a]', '&a {b: *a}', '*undefined_alias', '!!binary aGVsbG8=', '!!str 5', '!!int 5', '!!float 5', '!!set {a, b}', '!!omap [a: 1]', '!!timestamp 2001-12-14', '2001-12-14', '!<tag:yaml.org,2002:js/function> x', '!!js/regexp /a/',
      'a: b', 'a: b: c', '- a', '[', ']', '{', '"', "'", '&', '*', '!', '|', '>', '%YAML 1.2', '---', '...', '#comment', 'a #comment', '@x', '`x`', '\t5', ' 5 ', '5\n6', '\u0000', '"\\u0000"',
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);
/** Values of the 'train-config-yaml' class: text that is not valid YAML. */
export const INVALID_YAML = ['[', ']', '{', '"', "'", '&', '*', 'a: b: c', '[1, 2', '{a: 1', '*undefined_alias', '!', '|\n x\n  y', '5\n6', '- a\nb: c', '%YAML 1.2', '\t5', '@x', '`x`', '"\\u0000', '!!binary x'];

const trainKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...TRAIN_KEYS) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...TRAIN_KEYS), weirdName).map(([a, b]) => `${a}.${b}`) },
  { weight: 1, arbitrary: fc.oneof(weirdName, fc.constantFrom('__proto__.x', 'a..b', '.a', 'a.', 'model.__proto__', 'model.constructor.x', 'toString', 'batch.toString.x', 'x=y', 'a.b.c.d.e.f', '  seed', 'seed ', 'SEED', 'séed')) },
);

export interface TrainRecipe {
  overrides: Array<{ key: string; value: string }>;
  /** A config file's text, or none. */
  file: string | null;
  /** Given to trainConfigSchema.safeParse directly. */
  raw: Json;
}

export function trainRecipe(c: Classes): fc.Arbitrary<TrainRecipe> {
  // What --set parses is the text after the first '=' of key=value (a key may hold '=' itself).
  const parsedPart = (o: { key: string; value: string }): string => {
    const a = `${o.key}=${o.value}`;
    return a.slice(a.indexOf('=') + 1);
  };
  const override = fc.record({ key: trainKey, value: yamlValue });
  const valid = allows(c, 'train-config-yaml') ? override : override.filter((o) => isValidYaml(parsedPart(o)));
  const value = allows(c, 'train-config-yaml') ? yamlValue : yamlValue.filter((v) => isValidYaml(v));
  const file = fc.oneof(
    { weight: 3, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.array(fc.tuple(trainKey, value), { maxLength: 4 }).map((kv) => kv.map(([k, v]) => `${k}: ${v}`).join('\n')) },
    { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('', '---', '[]', '5', 'a: [', '{a: 1}', 'seed: 1\nseed: 2', 'model: {preset: tiny}\nmodel: {preset: A}', '<<: *x', '&a a: *a')) },
  );
  // Half the cases start from overrides that make a valid run, so that the random ones after them
  // meet a config that is otherwise accepted (and their own errors are the only ones).
  const start = fc.oneof(fc.constant([] as Array<{ key: string; value: string }>), validTrainRecipe.map((r) => [{ key: 'data', value: '{synthetic: {phrases: 12, phrase_len: 5}}' }, ...r.overrides.filter((o) => o.key !== 'data')]));
  return fc.record({
    overrides: fc.tuple(start, fc.array(valid, { maxLength: 3 })).map(([a, b]) => [...a, ...b]),
    file,
    raw: fc.oneof(fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>, fc.dictionary(fc.constantFrom('seed', 'model', 'data', 'batch', 'lr', 'optim', 'budget', 'eval', 'checkpoint', 'parallel', '__proto__', 'x'), weirdJson, { maxKeys: 4, noNullPrototype: true }) as fc.Arbitrary<Json>),
  });
}

let yamlParse: ((s: string) => unknown) | null = null;
/** Whether the yaml package parses `v` (the filter for the 'train-config-yaml' class); set by loadYaml(). */
export function isValidYaml(v: string): boolean {
  if (yamlParse === null) throw new Error('call loadYaml() first');
  try {
    yamlParse(v);
    return true;
  } catch {
    return false;
  }
}
export async function loadYaml(): Promise<void> {
  const YAML = (await import('yaml')).default;
  yamlParse = (s) => YAML.parse(s, { logLevel: 'error' });
}

/** Inputs of the 'train-config-yaml' class only: one --set whose value is not valid YAML. */
export function trainClassRecipe(id: string): fc.Arbitrary<TrainRecipe> | null {
  if (id !== 'train-config-yaml') return null;
  return fc.record({ overrides: fc.tuple(fc.record({ key: fc.constantFrom(...TRAIN_KEYS), value: fc.constantFrom(...INVALID_YAML) })).map((a) => [...a]), file: fc.constant(null), raw: fc.constant(null) });
}

/**
 * Overrides that are each valid and valid together (a run that `adabatch train` should accept): the
 * oracle for "valid input is accepted".
 */
export const VALID_SETS: Array<[string, readonly string[]]> = [
  ['seed', ['0', '3', '12345']],
  ['backend', ['ref', 'cpu']],
  ['threads', ['1', '2']],
  ['model.preset', ['tiny', 'A']],
  ['recompute', ['true', 'false']],
  ['parallel.strategy', ['ddp', 'fsdp']],
  ['data', ['{synthetic: {phrases: 12, phrase_len: 5}}']],
  ['budget.samples', ['160', '6144']],
  ['eval.windows', ['4']],
  ['eval.every_samples', ['0', '64']],
  ['optim.clip', ['0', '1']],
  ['optim.weight_decay', ['0.01']],
  ['lr.lr', ['0.001']],
  ['max_nonfinite', ['3']],
  ['log_every_s', ['1']],
  ['checkpoint.keep_last', ['2']],
  ['batch', ['{schedule: norm, eta: 0.5, initial: 8, max: 64, max_micro: 2}', '{schedule: constant, batch: 8}']],
];
export const validTrainRecipe: fc.Arbitrary<TrainRecipe> = fc
  .subarray(VALID_SETS, { maxLength: 6 })
  .chain((keys) => fc.tuple(...keys.map(([k, vs]) => fc.constantFrom(...vs).map((v) => ({ key: k, value: v })))))
  .map((overrides) => ({ overrides, file: null, raw: null }));

/** Refusals name a field ("path: message" lines of formatZodIssues, or --set's own words) or the file. */
export function checkTrainOutcome(r: TrainRecipe, file: string | null, calls: CallOutcome[], mustAccept: boolean): void {
  const trip = calls.find((c) => c.call === 'config.yaml and --resume round trip');
  if (trip && calls[0]!.kind === 'ok') {
    if (trip.kind !== 'ok') assert.fail(`loadTrainConfig accepted ${JSON.stringify(r.overrides.map((o) => `${o.key}=${o.value}`))}${r.file !== null ? ` with the file ${JSON.stringify(r.file)}` : ''}, but the run could not save and resume it: ${trip.name}: ${trip.message}\n${trip.stack ?? ''}`);
    if (trip.value !== null) assert.deepEqual(trip.value, [], `the config read back from config.yaml on --resume differs at ${JSON.stringify(trip.value)}`);
  }
  for (const c of calls) {
    expectNamedOrOk(c, 'training config', /(^|\n)[\w.()-]+: |unknown field|--set|config .+: |cannot read config|must be a mapping|unknown model preset/);
    // A refusal about the file names it (a --set value's own YAML error names the key instead).
    if (c.kind === 'rejected' && file) assert.ok(c.message.includes(file) || c.message.startsWith('--set ') || !/not valid YAML|must be a mapping/.test(c.message), `the refusal of a config file does not name it: ${c.message}`);
  }
  if (mustAccept) {
    const load = calls[0]!;
    assert.equal(load.kind, 'ok', `loadTrainConfig refused valid overrides ${JSON.stringify(r.overrides.map((o) => `${o.key}=${o.value}`))}: ${load.kind !== 'ok' ? load.message : ''}`);
  }
}

export async function trainConfigCase(sandbox: Sandbox, dirs: CaseDirs, r: TrainRecipe, mustAccept = false): Promise<void> {
  await dirs.with(async (dir) => {
    let file: string | null = null;
    if (r.file !== null) {
      file = join(dir, 'run.yaml');
      writeFileSync(file, r.file);
    }
    const o = await sandbox.run('train-config', { file: file ?? undefined, overrides: r.overrides.map((x) => `${x.key}=${x.value}`), raw: r.raw ?? undefined });
    const calls = callsOf(o, 'training config');
    coverage.note(`loadTrainConfig${mustAccept ? ' (valid overrides)' : ''}: ${calls[0]!.kind}`);
    const trip = calls.find((c) => c.call === 'config.yaml and --resume round trip');
    if (trip?.kind === 'ok' && trip.value !== null) coverage.note('config.yaml / --resume round trip checked');
    checkTrainOutcome(r, file, calls, mustAccept);
  });
}

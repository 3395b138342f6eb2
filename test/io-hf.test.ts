/**
 * Hugging Face import: config mapping both ways, every refused feature, sharded f16/bf16/f64
 * directories (built here with our writer from exactly representable values, and by PyTorch with
 * tools/hf/make_hf_dir.py), float16/bfloat16 conversions against torch, and bad input.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hfConfigFromModel, loadHfModel, loadModelDir, modelConfigFromHf } from '../src/io/hf.js';
import { floatToBf16, floatToHalf, halfToFloat, SafetensorsReader, type TensorToWrite, writeSafetensorsFd } from '../src/io/safetensors.js';
import { modelConfig, type ModelConfig, PRESETS } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './helpers/tmp.js';

const PYTHON = '/usr/bin/python3';
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const torchProbe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
const torchSkip = torchProbe.status === 0 ? false : `${PYTHON} cannot import torch and numpy (apt-get install python3-torch): ${(torchProbe.stderr || String(torchProbe.error)).trim().split('\n').pop()}`;

const freshDir = (): string => tempDir('adabatch-io-hf-');

function assertUserError(fn: () => unknown, ...patterns: RegExp[]): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${(e as Error).name}: ${(e as Error).message}`);
    for (const p of patterns) assert.match(e.message, p);
    return;
  }
  assert.fail(`expected a UserError matching ${patterns.join(', ')}`);
}

const MICRO = { vocab: 64, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 48, seq_len: 32, rope_theta: 5000, norm_eps: 1e-6 };
const micro = (tied = false): ModelConfig => modelConfig(undefined, { ...MICRO, tie_embeddings: tied });

/** Values exactly representable in f16 and bf16 (k/64 for small k), distinct per tensor and element. */
function exactWeights(config: ModelConfig): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  let t = 0;
  for (const u of buildLayout(config).units) {
    for (const v of u.views) {
      const a = new Float32Array(v.size);
      for (let i = 0; i < a.length; i++) a[i] = (((i * 7 + t * 13) % 97) - 48) / 64;
      out.set(v.name, a);
      t++;
    }
  }
  return out;
}

type Dt = 'F32' | 'F16' | 'BF16' | 'F64';
function encode(a: Float32Array, dt: Dt): TensorToWrite['data'] {
  if (dt === 'F32') return a;
  if (dt === 'F64') return Float64Array.from(a);
  const u = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) u[i] = dt === 'F16' ? floatToHalf(a[i]!) : floatToBf16(a[i]!);
  return u;
}

function writeSt(path: string, tensors: TensorToWrite[], metadata: Record<string, string> = { format: 'pt' }): void {
  const fd = openSync(path, 'w');
  writeSafetensorsFd(fd, tensors, metadata);
  closeSync(fd);
}

interface HfDirOptions {
  shards?: number;
  dtype?: (name: string, index: number) => Dt;
  extra?: Array<{ name: string; dtype: Dt; shape: number[]; data: Float32Array }>;
  drop?: string[];
  config?: Record<string, unknown>;
}

/** Writes an HF directory with our writer: config.json, shards + index (or one file). */
function writeHfDir(dir: string, config: ModelConfig, weights: Map<string, Float32Array>, opts: HfDirOptions = {}): void {
  const layout = buildLayout(config);
  const shape = new Map(layout.units.flatMap((u) => u.views.map((v) => [v.name, v.shape] as const)));
  const list: Array<{ name: string; dtype: Dt; shape: number[]; data: Float32Array }> = [];
  let i = 0;
  for (const [name, data] of weights) {
    if (opts.drop?.includes(name)) continue;
    list.push({ name, dtype: opts.dtype?.(name, i++) ?? 'F32', shape: shape.get(name)!, data });
  }
  list.push(...(opts.extra ?? []));
  const shards = opts.shards ?? 1;
  const toWrite = (e: (typeof list)[number]): TensorToWrite => ({ name: e.name, dtype: e.dtype, shape: e.shape, data: encode(e.data, e.dtype) });
  if (shards === 1) writeSt(join(dir, 'model.safetensors'), list.map(toWrite));
  else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(list.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = list.slice(s * per, (s + 1) * per);
      writeSt(join(dir, file), part.map(toWrite));
      for (const e of part) weightMap[e.name] = file;
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2));
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...hfConfigFromModel(config), ...opts.config }, null, 2));
}

const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

// ---------------------------------------------------------------------------------------------

test('config mapping: ours → HF → ours is the identity for every preset; HF fields are named as transformers names them', () => {
  for (const [name, preset] of Object.entries(PRESETS)) {
    const c = modelConfig(name, { rope_theta: 500000, norm_eps: 1e-5, init_std: 0.01 });
    const hf = hfConfigFromModel(c, { bos_token_id: 1, eos_token_id: [2, 3] });
    assert.equal(hf.hidden_size, preset.d_model);
    assert.equal(hf.intermediate_size, preset.ffn_dim);
    assert.equal(hf.num_key_value_heads, preset.n_kv_heads);
    assert.equal(hf.max_position_embeddings, preset.seq_len);
    assert.equal(hf.head_dim, preset.d_model / preset.n_heads);
    assert.deepEqual(hf.eos_token_id, [2, 3]);
    assert.equal(hf.pad_token_id, null);
    const notes: string[] = [];
    assert.deepEqual(modelConfigFromHf(JSON.parse(JSON.stringify(hf)), { notes }), c, name);
    assert.deepEqual(notes, [], `${name}: our own config.json needs no defaults`);
  }
});

test('a real TinyLlama-1.1B config.json maps to the tinyllama preset', () => {
  // Modelled on TinyLlama-1.1B's config.json on the Hub (written here from its known fields).
  const tinyllama = {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: 2048,
    initializer_range: 0.02,
    intermediate_size: 5632,
    max_position_embeddings: 2048,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 22,
    num_key_value_heads: 4,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
    transformers_version: '4.31.0.dev0',
    use_cache: true,
    vocab_size: 32000,
  };
  const notes: string[] = [];
  assert.deepEqual(modelConfigFromHf(tinyllama, { notes }), modelConfig('tinyllama'));
  assert.deepEqual(notes, []);
});

test('missing fields take transformers LlamaConfig defaults, each with a note', () => {
  const notes: string[] = [];
  const c = modelConfigFromHf({ model_type: 'llama', hidden_size: 64, num_attention_heads: 4, intermediate_size: 100, num_hidden_layers: 1, vocab_size: 10 }, { file: 'x/config.json', notes });
  assert.equal(c.n_kv_heads, 4, 'num_key_value_heads defaults to num_attention_heads');
  assert.equal(c.norm_eps, 1e-6, 'LlamaConfig rms_norm_eps default');
  assert.equal(c.rope_theta, 10000);
  assert.equal(c.seq_len, 2048);
  assert.equal(c.tie_embeddings, false);
  assert.match(notes.join('\n'), /x\/config\.json: no 'rms_norm_eps'; using transformers' default 0\.000001/);
  assert.match(notes.join('\n'), /assuming LlamaForCausalLM/);
});

test('unsupported configurations are refused with the file and the field named', () => {
  const base = JSON.parse(JSON.stringify(hfConfigFromModel(micro()))) as Record<string, unknown>;
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ rope_scaling: { rope_type: 'llama3', factor: 8 } }, /'rope_scaling'.*RoPE scaling/],
    [{ rope_scaling: { type: 'linear', factor: 2 } }, /'rope_scaling'/],
    [{ rope_parameters: { rope_type: 'yarn', factor: 4 } }, /'rope_parameters'/],
    [{ attention_bias: true }, /'attention_bias'/],
    [{ mlp_bias: true }, /'mlp_bias'/],
    [{ model_type: 'mistral' }, /'model_type' = "mistral": only "llama"/],
    [{ model_type: undefined }, /'model_type' is missing/],
    [{ architectures: ['LlamaModel'] }, /'architectures'/],
    [{ architectures: ['LlamaForSequenceClassification'] }, /'architectures'/],
    [{ hidden_act: 'gelu' }, /'hidden_act' = "gelu": only "silu"/],
    [{ head_dim: 16 }, /'head_dim' = 16: must equal hidden_size\/num_attention_heads = 8/],
    [{ partial_rotary_factor: 0.5 }, /'partial_rotary_factor'/],
    [{ sliding_window: 4096 }, /'sliding_window'/],
    [{ use_sliding_window: true }, /'use_sliding_window'/],
    [{ quantization_config: { quant_method: 'gptq' } }, /'quantization_config'/],
    [{ num_attention_heads: 5 }, /'num_attention_heads'.*not divisible/],
    [{ num_key_value_heads: 3 }, /'num_key_value_heads'.*not divisible/],
    [{ hidden_size: 32.5 }, /'hidden_size'.*positive integer/],
    [{ vocab_size: -1 }, /'vocab_size'.*positive integer/],
    [{ rms_norm_eps: 'small' }, /'rms_norm_eps'.*positive number/],
    [{ tie_word_embeddings: 'yes' }, /'tie_word_embeddings'/],
    [{ rope_theta: 1000, rope_parameters: { rope_type: 'default', rope_theta: 5000 } }, /'rope_theta'.*disagrees/],
  ];
  for (const [patch, re] of cases) {
    const cfg = { ...base, ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete cfg[k];
    assertUserError(() => modelConfigFromHf(cfg, { file: '/m/config.json' }), /^\/m\/config\.json: /, re);
  }
  // Harmless variants are accepted (with notes where something is ignored).
  const notes: string[] = [];
  const ok = modelConfigFromHf({ ...base, rope_scaling: { rope_type: 'default' }, pretraining_tp: 2, attention_dropout: 0.1, rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 5000 } }, { notes });
  assert.equal(ok.rope_theta, 5000);
  assert.match(notes.join('\n'), /pretraining_tp/);
  assert.match(notes.join('\n'), /attention_dropout/);
});

test('float16 / bfloat16 encoders: exhaustive round trips and rounding to nearest even', () => {
  for (let h = 0; h < 0x10000; h++) {
    const f = halfToFloat(h);
    if (Number.isNaN(f)) assert.ok(Number.isNaN(halfToFloat(floatToHalf(f))));
    else assert.equal(floatToHalf(f), h, `half 0x${h.toString(16)}`);
  }
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let h = 0; h < 0x10000; h += 1) {
    u32[0] = h << 16;
    if (Number.isNaN(f32[0]!)) continue;
    assert.equal(floatToBf16(f32[0]!), h, `bf16 0x${h.toString(16)}`);
  }
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00, 'tie → even (down)');
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02, 'tie → even (up)');
  assert.equal(floatToHalf(65520), 0x7c00, 'rounds to Inf past the largest half');
  assert.equal(floatToHalf(65519), 0x7bff);
  assert.equal(floatToHalf(2 ** -25), 0, 'half the smallest subnormal ties to zero');
  assert.equal(floatToHalf(2 ** -25 * 1.5), 1);
  assert.equal(floatToBf16(1 + 2 ** -8), 0x3f80, 'bf16 tie → even');
  assert.equal(floatToBf16(1 + 3 * 2 ** -8), 0x3f82);
});

test('float16 / bfloat16 encoders agree with torch bit for bit', { skip: torchSkip }, () => {
  const values: number[] = [0, -0, 1, -1, 65504, 65519, 65520, 1e6, -1e6, 2 ** -24, 2 ** -25, 1.5 * 2 ** -25, 6.1e-5, 1e-8, 3.4e38, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8];
  let s = 12345;
  for (let i = 0; i < 2000; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    values.push(Math.fround(((s / 2 ** 32 - 0.5) * 2) ** 3 * 10 ** ((i % 13) - 8)));
  }
  // Sent as float32 bit patterns (JSON would lose -0).
  const f32 = Float32Array.from(values);
  const u32 = Array.from(new Int32Array(f32.buffer));
  const code = `
import json, sys, torch
v = torch.tensor(json.load(sys.stdin), dtype=torch.int32).view(torch.float32)
print(json.dumps({"f16": v.half().view(torch.int16).tolist(), "bf16": v.bfloat16().view(torch.int16).tolist()}))`;
  const r = spawnSync(PYTHON, ['-c', code], { input: JSON.stringify(u32), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ref = JSON.parse(r.stdout) as { f16: number[]; bf16: number[] };
  f32.forEach((v, i) => {
    assert.equal(floatToHalf(v), ref.f16[i]! & 0xffff, `f16(${Object.is(v, -0) ? '-0' : v})`);
    assert.equal(floatToBf16(v), ref.bf16[i]! & 0xffff, `bf16(${Object.is(v, -0) ? '-0' : v})`);
  });
});

test('HF directory with f16, bf16 and f64 shards and an index loads exactly (written with our writer)', () => {
  for (const tied of [false, true]) {
    const config = micro(tied);
    const weights = exactWeights(config);
    const dir = freshDir();
    const dts: Dt[] = ['F16', 'BF16', 'F64', 'F32'];
    writeHfDir(dir, config, weights, { shards: 3, dtype: (_n, i) => dts[i % 4]!, extra: [{ name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32', shape: [4], data: new Float32Array(4) }] });
    writeFileSync(join(dir, 'tokenizer.json'), '{"version":"1.0"}');
    const m = loadHfModel(dir);
    assert.deepEqual(m.config, { ...config, init_std: 0.02 });
    assert.deepEqual(m.storedDtypes, ['BF16', 'F16', 'F32', 'F64']);
    assert.equal(m.weightFiles.length, 3);
    assert.deepEqual([...m.tensors.keys()], [...weights.keys()]);
    for (const [name, w] of weights) assert.ok(bits(m.tensors.get(name)!).equals(bits(w)), name);
    assert.match(m.notes.join('\n'), /ignored 1 rotary_emb\.inv_freq buffer/);
    assert.equal(m.tokenizerJson, '{"version":"1.0"}');
    assert.equal(m.tokenizerPath, join(dir, 'tokenizer.json'));
    const lm = loadModelDir(dir);
    assert.equal(lm.kind, 'hf');
  }
});

test('tied embeddings: an identical lm_head is dropped with a note, a different one is refused', () => {
  const config = micro(true);
  const weights = exactWeights(config);
  const emb = weights.get('model.embed_tokens.weight')!;
  const same = freshDir();
  writeHfDir(same, config, weights, { extra: [{ name: 'lm_head.weight', dtype: 'F32', shape: [64, 32], data: emb.slice() }] });
  const m = loadHfModel(same);
  assert.equal(m.tensors.has('lm_head.weight'), false);
  assert.match(m.notes.join('\n'), /lm_head\.weight equals model\.embed_tokens\.weight/);
  const diff = freshDir();
  const other = emb.slice();
  other[100] = other[100]! + 1 / 64;
  writeHfDir(diff, config, weights, { extra: [{ name: 'lm_head.weight', dtype: 'F32', shape: [64, 32], data: other }] });
  assertUserError(() => loadHfModel(diff), /config\.json: field 'tie_word_embeddings' is true/, /differs .*first at element 100/);
});

test('bad HF directories are refused with the file and the problem named', () => {
  const config = micro();
  const weights = exactWeights(config);
  const make = (opts: HfDirOptions = {}, damage?: (dir: string) => void): string => {
    const dir = freshDir();
    writeHfDir(dir, config, weights, opts);
    damage?.(dir);
    return dir;
  };
  const q0 = 'model.layers.0.self_attn.q_proj.weight';
  assertUserError(() => loadHfModel(make({ drop: [q0] })), /config\.json: missing tensor 'model\.layers\.0\.self_attn\.q_proj\.weight'/);
  assertUserError(() => loadHfModel(make({ drop: ['lm_head.weight'] })), /missing tensor 'lm_head\.weight'/);
  assertUserError(() => loadHfModel(make({ extra: [{ name: 'model.layers.0.self_attn.q_proj.bias', dtype: 'F32', shape: [32], data: new Float32Array(32) }] })), /model\.safetensors: tensor 'model\.layers\.0\.self_attn\.q_proj\.bias' is a bias; attention_bias is not supported/);
  assertUserError(() => loadHfModel(make({ extra: [{ name: 'model.layers.1.mlp.up_proj.bias', dtype: 'F32', shape: [48], data: new Float32Array(48) }] })), /mlp_bias is not supported/);
  assertUserError(() => loadHfModel(make({ extra: [{ name: 'model.layers.2.mlp.up_proj.weight', dtype: 'F32', shape: [48, 32], data: new Float32Array(48 * 32) }] })), /model\.safetensors: unexpected tensor 'model\.layers\.2\.mlp\.up_proj\.weight'/);
  // Config disagreeing with the tensors: shape error naming the tensor and both shapes.
  assertUserError(() => loadHfModel(make({ config: { intermediate_size: 64 } })), /model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[48, 32\], but the config .* needs \[64, 32\]/);
  assertUserError(() => loadHfModel(make({ config: { num_hidden_layers: 3 } })), /missing tensors 'model\.layers\.2\./);
  assertUserError(() => loadHfModel(make({ config: { num_hidden_layers: 1 } })), /unexpected tensors 'model\.layers\.1\./);
  assertUserError(() => loadHfModel(make({ config: { rope_scaling: { rope_type: 'dynamic', factor: 2 } } })), /config\.json: field 'rope_scaling'/);
  // A non-float tensor.
  const intDir = freshDir();
  const layout = buildLayout(config);
  writeFileSync(join(intDir, 'config.json'), JSON.stringify(hfConfigFromModel(config)));
  writeSt(
    join(intDir, 'model.safetensors'),
    [...weights].map(([n, d]): TensorToWrite => (n === q0 ? { name: n, dtype: 'I32', shape: [32, 32], data: new Int32Array(32 * 32) } : { name: n, dtype: 'F32', shape: layout.byName.get(n)!.shape, data: d })),
  );
  assertUserError(() => loadHfModel(intDir), /model\.safetensors: tensor 'model\.layers\.0\.self_attn\.q_proj\.weight' has dtype I32; expected F32 or F16 or BF16 or F64/);

  // Sharded: missing shard, index pointing at the wrong shard, unreadable index.
  const sharded = (damage: (dir: string, index: { weight_map: Record<string, string> }) => void): string =>
    make({ shards: 2 }, (dir) => {
      const p = join(dir, 'model.safetensors.index.json');
      const index = JSON.parse(readFileSync(p, 'utf8')) as { weight_map: Record<string, string> };
      damage(dir, index);
      writeFileSync(p, JSON.stringify(index));
    });
  assertUserError(() => loadHfModel(sharded((dir) => unlinkSync(join(dir, 'model-00002-of-00002.safetensors')))), /model-00002-of-00002\.safetensors: missing \(listed in model\.safetensors\.index\.json\)/);
  assertUserError(() => loadHfModel(sharded((_d, ix) => (ix.weight_map['model.norm.weight'] = 'model-00001-of-00002.safetensors'))), /index\.json: weight_map puts 'model\.norm\.weight' in model-00001-of-00002\.safetensors, but it is in .*model-00002/);
  assertUserError(() => loadHfModel(sharded((_d, ix) => (ix.weight_map['model.norm.weight'] = '../escape.safetensors'))), /is not a \.safetensors file name in this directory/);
  assertUserError(() => loadHfModel(make({ shards: 2 }, (dir) => writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": '))), /model\.safetensors\.index\.json: not valid JSON/);

  // Truncated / corrupt safetensors.
  const st = (dir: string): string => join(dir, 'model.safetensors');
  assertUserError(() => loadHfModel(make({}, (d) => truncateSync(st(d), 5))), /model\.safetensors: truncated: 5 bytes/);
  assertUserError(() => loadHfModel(make({}, (d) => truncateSync(st(d), 200))), /model\.safetensors: truncated header/);
  assertUserError(() => loadHfModel(make({}, (d) => truncateSync(st(d), readFileSync(st(d)).length - 1))), /model\.safetensors: truncated: tensor '.*' ends at byte/);
  assertUserError(
    () =>
      loadHfModel(
        make({}, (d) => {
          const b = readFileSync(st(d));
          b.write('x', 8); // break the JSON header
          writeFileSync(st(d), b);
        }),
      ),
    /model\.safetensors: header is not valid JSON/,
  );
  assertUserError(
    () =>
      loadHfModel(
        make({}, (d) => {
          const b = readFileSync(st(d));
          b.writeBigUInt64LE(1n << 40n, 0);
          writeFileSync(st(d), b);
        }),
      ),
    /header length \d+ is implausible/,
  );

  // Missing / broken files and directories.
  assertUserError(() => loadHfModel(make({}, (d) => unlinkSync(join(d, 'config.json')))), /config\.json: missing/);
  assertUserError(() => loadHfModel(make({}, (d) => writeFileSync(join(d, 'config.json'), '{"model_type": "llama",'))), /config\.json: not valid JSON/);
  assertUserError(() => loadHfModel(make({}, (d) => writeFileSync(join(d, 'config.json'), '[1]'))), /config\.json: expected a JSON object/);
  assertUserError(() => loadHfModel(make({}, (d) => unlinkSync(st(d)))), /no model\.safetensors or model\.safetensors\.index\.json/);
  assertUserError(
    () =>
      loadHfModel(
        make({}, (d) => {
          unlinkSync(st(d));
          writeFileSync(join(d, 'pytorch_model.bin'), 'pickle');
        }),
      ),
    /pytorch_model\.bin: PyTorch pickle weights are not supported/,
  );
  assertUserError(() => loadHfModel(join(freshDir(), 'does-not-exist')), /does-not-exist: no such directory/);
  assertUserError(() => loadModelDir(join(freshDir(), 'does-not-exist')), /no such directory/);
});

test('HF directories written by PyTorch (bf16 / f16 / f64, sharded, inv_freq, tied copy) load bit-exactly', { skip: torchSkip }, () => {
  const cases: Array<{ args: string[]; dtypes: string[]; files: number; notes: RegExp[] }> = [
    { args: ['--dtype', 'bf16', '--shards', '3', '--inv-freq'], dtypes: ['BF16', 'F32'], files: 3, notes: [/ignored 2 rotary_emb\.inv_freq buffers/] },
    { args: ['--dtype', 'f16', '--tied', '--lm-head-copy'], dtypes: ['F16'], files: 1, notes: [/lm_head\.weight equals/] },
    { args: ['--dtype', 'f64', '--shards', '2'], dtypes: ['F64'], files: 2, notes: [] },
  ];
  for (const c of cases) {
    const dir = freshDir();
    const expect = join(freshDir(), 'expect.safetensors');
    const r = spawnSync(PYTHON, [join(repoRoot, 'tools/hf/make_hf_dir.py'), '--out', dir, '--expect', expect, ...c.args], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const m = loadHfModel(dir);
    assert.deepEqual(m.storedDtypes, c.dtypes);
    assert.equal(m.weightFiles.length, c.files);
    for (const re of c.notes) assert.match(m.notes.join('\n'), re);
    assert.equal(m.config.rope_theta, 5000);
    assert.equal(m.config.norm_eps, 1e-6);
    assert.deepEqual(m.tokenIds, { bos_token_id: 1, eos_token_id: 2, pad_token_id: null });
    const ref = SafetensorsReader.open(expect);
    let compared = 0;
    for (const [name, t] of m.tensors) {
      assert.ok(bits(t).equals(bits(ref.readFloat32(name))), `${c.args.join(' ')}: ${name} equals torch's .float()`);
      compared++;
    }
    ref.close();
    assert.equal(compared, m.config.tie_embeddings ? 1 + 9 * 2 + 1 : 1 + 9 * 2 + 2);
  }
});

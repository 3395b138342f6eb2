/**
 * Files that lie about their sizes: every size read from a file (config.json's layer count, widths,
 * vocabulary, positions; shard lists; safetensors shapes and offsets) is checked for plausibility and
 * against the weight files' own sizes before anything is allocated or enumerated from it. Also
 * zero-size tensors (valid, and hiding an overlap), and shard indexes that list a file twice or in
 * another rank's place. Every case is small and fast: the point is to refuse before allocating.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readCheckpoint, verifyCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { ADAMW_PREFIX } from '../src/io/checkpoint-format.js';
import { modelShardFile, optimizerShardFile, shardSizes, writeShardedCheckpoint } from '../src/io/checkpoint-sharded.js';
import { hfConfigFromModel, loadHfModel, loadModelDir } from '../src/io/hf.js';
import { readSafetensorsFile, SafetensorsReader, type TensorToWrite, writeSafetensorsFd } from '../src/io/safetensors.js';
import { modelConfig, type ModelConfig } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { initialParameters } from '../src/model/params.js';
import { UserError } from '../src/util/errors.js';
import { fakeShardComms } from './helpers/shard-comms.js';
import { tempDir } from './helpers/tmp.js';

const freshDir = (): string => tempDir('adabatch-io-hardening-');
const MICRO = { vocab: 64, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 48, seq_len: 32, rope_theta: 5000, norm_eps: 1e-6 };
const micro = (): ModelConfig => modelConfig(undefined, MICRO);
const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** Expects a UserError matching every pattern, thrown within `maxMs` (refusing must not take long). */
function assertUserError(fn: () => unknown, patterns: RegExp[], maxMs = 3000): UserError {
  const t0 = performance.now();
  try {
    fn();
  } catch (e) {
    const ms = performance.now() - t0;
    assert.ok(e instanceof UserError, `expected a UserError, got ${(e as Error).name}: ${(e as Error).message}`);
    for (const p of patterns) assert.match(e.message, p);
    assert.ok(ms < maxMs, `refused after ${ms.toFixed(0)} ms (expected at once): ${e.message}`);
    return e;
  }
  assert.fail(`expected a UserError matching ${patterns.join(', ')}`);
}

function writeSt(path: string, tensors: TensorToWrite[], metadata: Record<string, string> = { format: 'pt' }): void {
  const fd = openSync(path, 'w');
  writeSafetensorsFd(fd, tensors, metadata);
  closeSync(fd);
}

/** A Hugging Face directory of the micro model (F32), in one file or `shards` files with an index. */
function hfDir(config: ModelConfig, opts: { shards?: number; configEdit?: Record<string, unknown> } = {}): string {
  const dir = freshDir();
  const weights = initialParameters(buildLayout(config), 3);
  const shapes = new Map(buildLayout(config).units.flatMap((u) => u.views.map((v) => [v.name, v.shape] as const)));
  const list: TensorToWrite[] = [...weights].map(([name, data]) => ({ name, dtype: 'F32', shape: shapes.get(name)!, data }));
  const shards = opts.shards ?? 1;
  if (shards === 1) writeSt(join(dir, 'model.safetensors'), list);
  else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(list.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = list.slice(s * per, (s + 1) * per);
      writeSt(join(dir, file), part);
      for (const t of part) weightMap[t.name] = file;
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 1));
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...hfConfigFromModel(config), ...opts.configEdit }, null, 2));
  return dir;
}

/** Rewrites a checkpoint file and records its new size and digest in the manifest (a consistent forgery). */
function forge(dir: string, file: string, edit: (text: string) => string): void {
  const path = join(dir, file);
  const text = edit(readFileSync(path, 'utf8'));
  writeFileSync(path, text);
  const mPath = join(dir, 'checksums.json');
  const m = JSON.parse(readFileSync(mPath, 'utf8')) as { files: Record<string, { size: number; sha256: string }> };
  m.files[file] = { size: Buffer.byteLength(text), sha256: sha(text) };
  writeFileSync(mPath, JSON.stringify(m, null, 2));
}

/** Edits the manifest itself. */
function editManifest(dir: string, edit: (m: { ranks?: number; files: Record<string, { size: number; sha256: string }> }) => void): void {
  const path = join(dir, 'checksums.json');
  const m = JSON.parse(readFileSync(path, 'utf8')) as { files: Record<string, { size: number; sha256: string }> };
  edit(m);
  writeFileSync(path, JSON.stringify(m, null, 2));
}

function editJson(dir: string, file: string, edit: (o: Record<string, unknown>) => void): void {
  forge(dir, file, (t) => {
    const o = JSON.parse(t) as Record<string, unknown>;
    edit(o);
    return JSON.stringify(o, null, 2);
  });
}

/** A consolidated checkpoint of the micro model. */
function checkpoint(): string {
  const config = micro();
  return writeCheckpoint(freshDir(), 'step-00000001', { config, model: initialParameters(buildLayout(config), 5), trainerState: { step: 1 }, step: 1 });
}

/** A 2-rank sharded checkpoint (with optimizer) of the micro model; returns its directory and the whole parameters. */
async function shardedCheckpoint(): Promise<{ dir: string; params: Map<string, Float32Array> }> {
  const config = micro();
  const layout = buildLayout(config);
  const params = initialParameters(layout, 9);
  const flat = layout.units.map((u) => {
    const a = new Float32Array(u.size);
    for (const v of u.views) a.set(params.get(v.name)!, v.offset);
    return a;
  });
  const J = 2;
  const sizes = shardSizes(layout, J);
  const slice = (r: number, scale: number): Float32Array[] =>
    flat.map((a, u) => {
      const s = new Float32Array(sizes[u]!);
      s.set(a.subarray(r * sizes[u]!, Math.min(a.length, (r + 1) * sizes[u]!)));
      return s.map((x) => x * scale);
    });
  const parent = freshDir();
  const dirs = await Promise.all(
    fakeShardComms(J).map((comm) =>
      writeShardedCheckpoint(parent, 'step-00000002', { config, params: slice(comm.rank, 1), optimizer: { state: [{ prefix: 'exp_avg.', shards: slice(comm.rank, 0.5) }, { prefix: 'exp_avg_sq.', shards: slice(comm.rank, 0.25) }] }, trainerState: { step: 2 }, step: 2 }, comm),
    ),
  );
  return { dir: dirs[0]!, params };
}

/** A safetensors file from a literal header (key order kept) and data bytes. */
function rawSafetensors(path: string, header: Record<string, unknown>, data: Uint8Array): Buffer {
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length % 8) json = Buffer.concat([json, Buffer.alloc(8 - (json.length % 8), 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const bytes = Buffer.concat([len, json, data]);
  writeFileSync(path, bytes);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// 1. Sizes in config.json

test('config.json sizes beyond any real model are refused at once, naming the file and the field (HF directories)', () => {
  const config = micro();
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ num_hidden_layers: 100_000_000 }, /field 'num_hidden_layers' = 100000000: must be at most 4,096/],
    [{ max_position_embeddings: 1e12 }, /field 'max_position_embeddings' = 1000000000000: must be at most 16,777,216/],
    [{ vocab_size: 2 ** 40 }, /field 'vocab_size' = 1099511627776: must be at most 4,194,304/],
    [{ hidden_size: 2 ** 20, head_dim: 2 ** 18 }, /field 'hidden_size' = 1048576: must be at most 65,536/],
    [{ intermediate_size: 2 ** 31 }, /field 'intermediate_size' = 2147483648: must be at most 262,144/],
    // Each within its own limit, together too large for one block's flat buffer.
    [{ hidden_size: 65536, num_attention_heads: 2, num_key_value_heads: 2, head_dim: 32768, intermediate_size: 262144 }, /field 'hidden_size' = 65536: one transformer block .* more than 2\^32/],
  ];
  for (const [edit, re] of cases) {
    const dir = hfDir(config, { configEdit: edit });
    for (const load of [loadHfModel, loadModelDir]) assertUserError(() => load(dir), [new RegExp(`${dir}/config\\.json: `), re]);
  }
});

test('config.json sizes beyond any real model are refused at once in checkpoints (read and verify)', () => {
  for (const [edit, re] of [
    [{ num_hidden_layers: 100_000_000 }, /config\.json: .*field 'num_hidden_layers' = 100000000: must be at most 4,096/],
    [{ max_position_embeddings: 1e12 }, /config\.json: .*field 'max_position_embeddings' = 1000000000000/],
  ] as const) {
    const dir = checkpoint();
    editJson(dir, 'config.json', (o) => Object.assign(o, edit));
    for (const read of [readCheckpoint, verifyCheckpoint, loadModelDir]) assertUserError(() => read(dir), [re]);
  }
});

test('a config.json within the limits that describes more parameters than its weight files hold is refused before enumerating tensors', () => {
  const config = micro();
  const sizeRe = (dtype: string, where: RegExp): RegExp[] => [/config\.json: fields vocab_size \d+, hidden_size \d+, intermediate_size \d+, num_hidden_layers \d+/, new RegExp(`describe \\d+ parameters, at least \\d+ bytes as ${dtype}`), where];
  // HF, one file and sharded (2 bytes per parameter: F16/BF16 are the smallest accepted).
  assertUserError(() => loadHfModel(hfDir(config, { configEdit: { num_hidden_layers: 4000 } })), sizeRe('F16/BF16', /model\.safetensors has only \d+ bytes/));
  assertUserError(() => loadHfModel(hfDir(config, { shards: 2, configEdit: { intermediate_size: 4800 } })), sizeRe('F16/BF16', /its 2 weight files \(.*model-00001-of-00002\.safetensors, …\) hold only \d+ bytes together/));
  // Our checkpoints (F32): consolidated and sharded.
  const dir = checkpoint();
  editJson(dir, 'config.json', (o) => (o.num_hidden_layers = 1000));
  for (const read of [readCheckpoint, verifyCheckpoint]) assertUserError(() => read(dir), sizeRe('F32', /model\.safetensors has only \d+ bytes/));
});

test('a sharded checkpoint whose config.json describes more than its shards hold is refused before allocating', async () => {
  const { dir } = await shardedCheckpoint();
  editJson(dir, 'config.json', (o) => (o.intermediate_size = 4800));
  for (const read of [readCheckpoint, verifyCheckpoint]) assertUserError(() => read(dir), [/config\.json: fields .*intermediate_size 4800.* as F32, but its 2 weight files .*model-shard-00000-of-00002\.safetensors.* hold only \d+ bytes/]);
});

// ---------------------------------------------------------------------------------------------
// 2. Zero-size tensors

test('zero-size tensors ([0], [3, 0]) anywhere in a valid file read, hash and verify correctly', () => {
  const dir = freshDir();
  const path = join(dir, 'zero.safetensors');
  const a = Float32Array.from([1.5, -2.25]);
  // 'z' starts where 'a' starts and comes after it in the header: the hashing pass must not go back.
  const header = {
    __metadata__: { format: 'pt' },
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    z: { dtype: 'F32', shape: [3, 0], data_offsets: [0, 0] },
    inside: { dtype: 'BF16', shape: [0], data_offsets: [4, 4] },
    e: { dtype: 'F32', shape: [0], data_offsets: [8, 8] },
  };
  const bytes = rawSafetensors(path, header, new Uint8Array(a.buffer));
  const f = readSafetensorsFile(path, { expect: { size: bytes.length, sha256: sha(bytes) } });
  assert.equal(f.sha256, sha(bytes));
  assert.deepEqual(f.tensors.get('z')!.shape, [3, 0]);
  assert.equal(f.tensors.get('z')!.bytes.length, 0);
  assert.deepEqual(new Float32Array(f.tensors.get('a')!.bytes.buffer), a);
  const sel = readSafetensorsFile(path, { select: (n) => n !== 'a', expect: { size: bytes.length, sha256: sha(bytes) } });
  assert.deepEqual([...sel.tensors.keys()].sort(), ['e', 'inside', 'z']);
  const r = SafetensorsReader.open(path);
  try {
    assert.equal(r.readFloat32('z').length, 0);
    assert.equal(r.readFloat32('inside').length, 0);
    assert.deepEqual(r.readFloat32('a'), a);
  } finally {
    r.close();
  }
});

test('a checkpoint whose optimizer state holds zero-size tensors reads and verifies', () => {
  const config = micro();
  const model = initialParameters(buildLayout(config), 5);
  // Written in this order, 'empty' [3, 0] shares its start with '5', which JSON.parse lists first.
  const optimizer = [
    { name: 'empty', shape: [3, 0], dtype: 'F32' as const, data: new Float32Array(0) },
    { name: '5', shape: [2], dtype: 'F32' as const, data: Float32Array.from([1, 2]) },
    { name: 'none', shape: [0], dtype: 'F64' as const, data: new Float64Array(0) },
    ...[...model].map(([name, w]) => ({ name: ADAMW_PREFIX.m + name, shape: [w.length], data: w.map((x) => x / 2) })),
  ];
  const dir = writeCheckpoint(freshDir(), 'step-00000001', { config, model, optimizer, trainerState: { step: 1 }, step: 1 });
  verifyCheckpoint(dir);
  const back = readCheckpoint(dir);
  assert.equal(back.optimizer!.get('empty')!.length, 0);
  assert.equal(back.optimizer!.get('none')!.length, 0);
  assert.deepEqual([...back.optimizer!.get('5')!], [1, 2]);
});

test('overlapping tensors are refused even when a zero-size tensor sits between them', () => {
  const dir = freshDir();
  const variants: Array<Record<string, unknown>> = [
    { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, z: { dtype: 'F32', shape: [0], data_offsets: [0, 0] }, b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } },
    { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, z: { dtype: 'F32', shape: [0], data_offsets: [4, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
    { z: { dtype: 'U8', shape: [0], data_offsets: [8, 8] }, a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } },
  ];
  variants.forEach((header, i) => {
    const path = join(dir, `overlap-${i}.safetensors`);
    rawSafetensors(path, header, new Uint8Array(16));
    assertUserError(() => readSafetensorsFile(path), [new RegExp(`^${path}: tensors '.' and '.' overlap`)]);
    assertUserError(() => SafetensorsReader.open(path), [/overlap in the data section/]);
  });
});

test('safetensors shapes whose element count overflows, and files that are not regular files, are refused', () => {
  const dir = freshDir();
  const path = join(dir, 'huge.safetensors');
  rawSafetensors(path, { a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40, 0], data_offsets: [0, 0] }, b: { dtype: 'F32', shape: [2 ** 26, 2 ** 26, 2 ** 26, 2 ** 26], data_offsets: [0, 8] } }, new Uint8Array(8));
  assertUserError(() => readSafetensorsFile(path), [/tensor 'b': F32\[67108864, .*\] needs more bytes than the data section's 8/]);
  const asDir = join(dir, 'model.safetensors');
  mkdirSync(asDir);
  assertUserError(() => readSafetensorsFile(asDir), [/model\.safetensors: not a regular file/]);
  assertUserError(() => SafetensorsReader.open(asDir), [/model\.safetensors: not a regular file/]);
});

// ---------------------------------------------------------------------------------------------
// 3. Shard indexes

test('a sharded checkpoint reads back exactly; its shard files are checked against their place in the index', async () => {
  const { dir, params } = await shardedCheckpoint();
  verifyCheckpoint(dir);
  const back = readCheckpoint(dir);
  for (const [name, w] of params) assert.deepEqual(back.model.get(name), w, name);
  assert.deepEqual(back.optimizer!.get(ADAMW_PREFIX.v + 'model.norm.weight'), params.get('model.norm.weight')!.map((x) => x * 0.25));
});

test('a shard index that lists a shard twice, out of order, or under another name is refused', async () => {
  const J = 2;
  const m = [0, 1].map((r) => modelShardFile(r, J));
  const o = [0, 1].map((r) => optimizerShardFile(r, J));
  const cases: Array<[(ix: Record<string, unknown>) => void, RegExp]> = [
    [(ix) => (ix.model = [m[0], m[0]]), /shard_index\.json: 'model'\[1\] is "model-shard-00000-of-00002\.safetensors", which is listed twice; rank 1 of 2 writes model-shard-00001-of-00002\.safetensors/],
    [(ix) => (ix.model = [m[1], m[0]]), /'model'\[0\] is "model-shard-00001-of-00002\.safetensors"; rank 0 of 2 writes model-shard-00000-of-00002\.safetensors/],
    [(ix) => (ix.optimizer = [o[1], o[1]]), /'optimizer'\[0\] is "optimizer-shard-00001-of-00002\.safetensors"/],
    [(ix) => (ix.model = ['../step-00000001/model.safetensors', m[1]]), /'model'\[0\] is "\.\.\/step-00000001\/model\.safetensors"/],
    [(ix) => (ix.model = [m[0]]), /'model' must list one file per rank \(2\), got 1/],
    [(ix) => delete ix.optimizer, /'optimizer' must list no files or one file per rank/],
    [(ix) => (ix.units = null), /shard_index\.json: no units, but config\.json's model has 4/],
    [(ix) => ((ix.units as unknown[])[1] = null), /unit 1 is null/],
    [(ix) => (ix.ranks = 1e9), /'ranks' = 1000000000 must be an integer from 1 to 99999/],
    [(ix) => (ix.optimizer_state = ['../x']), /'optimizer_state' must list at most 8 distinct prefixes like "exp_avg\.", got \["\.\.\/x"\]/],
    [(ix) => (ix.optimizer_state = ['exp_avg.', 'exp_avg.']), /'optimizer_state' must list at most 8 distinct prefixes/],
    // State the files do not hold under the names the index gives.
    [(ix) => (ix.optimizer_state = ['sum.']), /unexpected tensor 'exp_avg\.unit\.0' \(a shard file holds sum\.unit\.<i>/],
  ];
  for (const [edit, re] of cases) {
    const { dir } = await shardedCheckpoint();
    editJson(dir, 'shard_index.json', edit);
    for (const read of [readCheckpoint, verifyCheckpoint]) assertUserError(() => read(dir), [re]);
  }
  const { dir } = await shardedCheckpoint();
  forge(dir, 'shard_index.json', () => 'null');
  assertUserError(() => readCheckpoint(dir), [/shard_index\.json: expected a JSON object/]);
  const { dir: d2 } = await shardedCheckpoint();
  editManifest(d2, (mf) => (mf.ranks = 3));
  assertUserError(() => readCheckpoint(d2), [/'ranks' is 2, but checksums\.json records 3/]);
});

test("a shard file whose own metadata names another rank is refused (a copied shard with a consistent manifest)", async () => {
  for (const kind of ['model', 'optimizer'] as const) {
    const { dir } = await shardedCheckpoint();
    const name = (r: number): string => (kind === 'model' ? modelShardFile(r, 2) : optimizerShardFile(r, 2));
    copyFileSync(join(dir, name(0)), join(dir, name(1)));
    const bytes = readFileSync(join(dir, name(1)));
    editManifest(dir, (mf) => (mf.files[name(1)] = { size: bytes.length, sha256: sha(bytes) }));
    const re = new RegExp(`${name(1).replace(/\./g, '\\.')}: its metadata says format "adabatch-fsdp-shards", rank "0" of "2", but shard_index\\.json lists it as rank 1 of 2`);
    for (const read of [readCheckpoint, verifyCheckpoint]) assertUserError(() => read(dir), [re]);
  }
});

test('a shard file holding a tensor that is not one of its units is refused', async () => {
  for (const [kind, extra] of [['model', 'unit.99'], ['model', 'lm_head.weight'], ['optimizer', 'exp_avg.unit.01'], ['optimizer', 'unit.0']] as const) {
    const { dir } = await shardedCheckpoint();
    const name = kind === 'model' ? modelShardFile(1, 2) : optimizerShardFile(1, 2);
    const path = join(dir, name);
    // The file again, with one more F32[1] tensor at the end of its data section.
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
    const data = bytes.subarray(8 + n);
    header[extra] = { dtype: 'F32', shape: [1], data_offsets: [data.length, data.length + 4] };
    rawSafetensors(path, header, Buffer.concat([data, Buffer.alloc(4)]));
    const forged = readFileSync(path);
    editManifest(dir, (mf) => (mf.files[name] = { size: forged.length, sha256: sha(forged) }));
    const re = new RegExp(`${name.replace(/\./g, '\\.')}: unexpected tensor '${extra.replace(/\./g, '\\.')}'`);
    for (const read of [readCheckpoint, verifyCheckpoint]) assertUserError(() => read(dir), [re]);
  }
});

test('a Hugging Face index that names a tensor twice, a file outside the directory, or a directory is refused', () => {
  const config = micro();
  const indexOf = (dir: string): string => join(dir, 'model.safetensors.index.json');
  // The same tensor twice in weight_map (JSON.parse would silently keep the second).
  const dup = hfDir(config, { shards: 2 });
  const text = readFileSync(indexOf(dup), 'utf8').replace('"weight_map": {', '"weight_map": {\n  "model.norm.weight": "model-00001-of-00002.safetensors",');
  writeFileSync(indexOf(dup), text);
  assertUserError(() => loadHfModel(dup), [/model\.safetensors\.index\.json: key "model\.norm\.weight" appears twice in the same JSON object/]);
  // Paths outside the directory.
  for (const bad of ['../model-00001-of-00002.safetensors', '/etc/x.safetensors', 'sub/x.safetensors']) {
    const dir = hfDir(config, { shards: 2 });
    const ix = JSON.parse(readFileSync(indexOf(dir), 'utf8')) as { weight_map: Record<string, string> };
    ix.weight_map['model.norm.weight'] = bad;
    writeFileSync(indexOf(dir), JSON.stringify(ix));
    assertUserError(() => loadHfModel(dir), [/weight_map\['model\.norm\.weight'\] = .* is not a \.safetensors file name in this directory/]);
  }
  // A shard that is a directory.
  const dir = hfDir(config, { shards: 2 });
  const ix = JSON.parse(readFileSync(indexOf(dir), 'utf8')) as { weight_map: Record<string, string> };
  ix.weight_map['model.norm.weight'] = 'extra.safetensors';
  writeFileSync(indexOf(dir), JSON.stringify(ix));
  mkdirSync(join(dir, 'extra.safetensors'));
  assertUserError(() => loadHfModel(dir), [/extra\.safetensors: not a regular file \(listed in model\.safetensors\.index\.json\)/]);
});

// ---------------------------------------------------------------------------------------------
// Small files

test('small files far larger than any real one are refused before they are read', () => {
  const config = micro();
  const dir = hfDir(config);
  truncateSync(join(dir, 'config.json'), 65 * 1024 * 1024); // sparse: nothing is written
  assertUserError(() => loadHfModel(dir), [/config\.json: 68157440 bytes, larger than the 67108864-byte limit for the model configuration/]);
  const ck = checkpoint();
  editManifest(ck, (mf) => (mf.files['trainer_state.json']!.size = 2 ** 40));
  assertUserError(() => readCheckpoint(ck), [/checksums\.json: records trainer_state\.json as 1099511627776 bytes, more than the 268435456/]);
});

test('safetensors __metadata__ must be a map of strings (as the format and the reference reader require)', () => {
  const dir = freshDir();
  const tensor = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
  const ok = join(dir, 'ok.safetensors');
  rawSafetensors(ok, { __metadata__: { format: 'pt' }, ...tensor }, new Uint8Array(4));
  assert.deepEqual(readSafetensorsFile(ok).metadata, { format: 'pt' });
  const cases: Array<[unknown, RegExp]> = [
    [{ format: 1 }, /__metadata__\['format'\] must be a string, got 1/],
    [{ nested: { a: 'b' } }, /__metadata__\['nested'\] must be a string/],
    [['pt'], /__metadata__ must be an object of strings/],
    [null, /__metadata__ must be an object of strings, got null/],
  ];
  for (const [metadata, pattern] of cases) {
    const path = join(dir, 'bad.safetensors');
    rawSafetensors(path, { __metadata__: metadata, ...tensor }, new Uint8Array(4));
    assertUserError(() => readSafetensorsFile(path), [pattern]);
  }
});

/**
 * Fuzzing checkpoint directories (src/io/checkpoint.ts readManifest / verifyCheckpoint /
 * readCheckpoint, and through them src/io/checkpoint-sharded.ts): bases written once by
 * writeCheckpoint (a micro model with optimizer state and a tokenizer) and writeShardedCheckpoint
 * (1–3 ranks through a fake in-thread ShardComm), copied per case and mutated:
 *   - checksums.json: fields (format, version, layout, step, ranks, files), entries (size, sha256),
 *     names (path traversal "../x", "__proto__", "a/b" …), the whole text;
 *   - the JSON files (config.json, trainer_state.json, shard_index.json, tokenizer.json): field edits,
 *     usually re-signed in the manifest so that the reader gets past the hash check;
 *   - any file: deleted, emptied, truncated, a byte flipped, bytes appended, replaced by a directory
 *     or a symlink, two files swapped; safetensors headers edited as in fuzz-safetensors.ts;
 *   - shard_index.json: shard files duplicated, dropped, reordered; unit sizes.
 * Every call must return or throw a UserError naming the checkpoint directory, within the sandbox's
 * time and memory bounds; and a checkpoint that loads must load exactly the tensors written (unless
 * the case re-signed changed tensor bytes, which a manifest then legitimately vouches for).
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { writeShardedCheckpoint } from '../../src/io/checkpoint-sharded.js';
import { writeCheckpoint } from '../../src/io/checkpoint.js';
import { ADAMW_PREFIX } from '../../src/io/checkpoint-format.js';
import { modelConfig, type ModelConfig } from '../../src/model/config.js';
import { buildLayout } from '../../src/model/layout.js';
import { initialParameters } from '../../src/model/params.js';
import { allows, applyEdit, type CallOutcome, type CaseDirs, callsOf, type Classes, coverage, expectNamedOrOk, extremeNumber, type Json, type JsonEdit, type Sandbox, weirdJson, weirdName } from './fuzz.js';
import { applyStEdits, splitSafetensors, type StEdit, stEdit } from './fuzz-safetensors.js';
import { digestArrays } from './fuzz-targets.js';
import { fakeShardComms } from './shard-comms.js';

// ---------------------------------------------------------------------------------------------
// The valid checkpoints every case starts from

export interface CkBase {
  name: string;
  layout: 'consolidated' | 'sharded';
  ranks: number;
  dir: string;
  /** Files of the checkpoint other than checksums.json, sorted. */
  files: string[];
  /** Digests (digestArrays) of what readCheckpoint must return. */
  model: string;
  optimizer: string;
}

/** The micro model of test/io-checkpoint.test.ts: grouped-query attention, untied head. */
export function microConfig(): ModelConfig {
  return modelConfig(undefined, { vocab: 64, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 48, seq_len: 32, tie_embeddings: false, rope_theta: 5000, norm_eps: 1e-6, init_std: 0.05 });
}

const listFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f !== 'checksums.json').sort();

/** Writes the bases under `root`: one consolidated checkpoint and sharded ones for 1, 2 and 3 ranks. */
export async function writeCheckpointBases(root: string): Promise<CkBase[]> {
  const config = microConfig();
  const layout = buildLayout(config);
  const model = initialParameters(layout, 7);
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [name, w] of model) {
    m.set(name, w.map((x, i) => x * 0.1 + i * 1e-7));
    v.set(name, w.map((x) => x * x + 1e-12));
  }
  const moments = new Map<string, Float32Array>();
  for (const [n, t] of m) moments.set(ADAMW_PREFIX.m + n, t);
  for (const [n, t] of v) moments.set(ADAMW_PREFIX.v + n, t);
  const optimizer = new Map<string, Float32Array | Float64Array | Int32Array>(moments);
  optimizer.set('loss_ema', Float64Array.from([Math.PI, Math.E]));
  optimizer.set('counters', Int32Array.from([3, -3, 2 ** 31 - 1]));
  const trainerState = { step: 3, samples: 48, rng: [1, 2, 3, 4], note: 'ü ✓' };
  const tokenizerJson = JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [] });
  const bases: CkBase[] = [];
  const dir = writeCheckpoint(root, 'consolidated', { config, model, optimizer, optimizerMetadata: { step: '3' }, trainerState, tokenizerJson, tokenIds: { bos_token_id: 1, eos_token_id: 2 }, step: 3 });
  bases.push({ name: 'consolidated', layout: 'consolidated', ranks: 1, dir, files: listFiles(dir), model: digestArrays(model)!, optimizer: digestArrays(optimizer)! });

  // Flat unit buffers (padding zero), sliced per rank as an FSDP engine holds them.
  const flat = (named: Map<string, Float32Array>): Float32Array[] =>
    layout.units.map((u) => {
      const f = new Float32Array(u.size);
      for (const view of u.views) f.set(named.get(view.name)!, view.offset);
      return f;
    });
  const [pf, mf, vf] = [flat(model), flat(m), flat(v)];
  for (const J of [1, 2, 3]) {
    const slice = (fs: Float32Array[], r: number): Float32Array[] =>
      fs.map((f) => {
        const s = Math.ceil(f.length / J);
        const out = new Float32Array(s);
        out.set(f.subarray(r * s, Math.min(f.length, (r + 1) * s)));
        return out;
      });
    const comms = fakeShardComms(J);
    const name = `sharded-${J}`;
    await Promise.all(comms.map((comm, r) => writeShardedCheckpoint(root, name, { config, params: slice(pf, r), optimizer: { state: [{ prefix: 'exp_avg.', shards: slice(mf, r) }, { prefix: 'exp_avg_sq.', shards: slice(vf, r) }], metadata: { step: '3' } }, trainerState, tokenIds: { bos_token_id: 1, eos_token_id: 2 }, step: 3 }, comm)));
    const d = join(root, name);
    bases.push({ name, layout: 'sharded', ranks: J, dir: d, files: listFiles(d), model: digestArrays(model)!, optimizer: digestArrays(moments)! });
  }
  return bases;
}

// ---------------------------------------------------------------------------------------------
// Mutations

/** A file of the base, by index into its sorted list (modulo its length), so one recipe fits every base. */
type FileRef = number;

export type ManifestEdit =
  | { at: 'top'; key: string; value: Json | 'delete' }
  | { at: 'root'; value: Json }
  | { at: 'entry'; file: FileRef; field: 'size' | 'sha256' | 'whole'; value: Json | 'delete' | 'other-file' }
  | { at: 'rename'; file: FileRef; to: string }
  | { at: 'add'; name: string; copyOf: FileRef | null };

export type IndexOp =
  | { op: 'duplicate'; list: 'model' | 'optimizer'; i: number; j: number }
  | { op: 'swap'; list: 'model' | 'optimizer'; i: number; j: number }
  | { op: 'drop'; list: 'model' | 'optimizer'; i: number }
  | { op: 'edit'; edit: JsonEdit };

export type CkMutation =
  | { kind: 'manifestDelete' }
  | { kind: 'manifest'; edit: ManifestEdit }
  | { kind: 'manifestText'; text: string }
  | { kind: 'json'; file: FileRef; edit: JsonEdit; resign: boolean }
  | { kind: 'text'; file: FileRef; text: string; resign: boolean }
  | { kind: 'bytes'; file: FileRef; op: 'delete' | 'empty' | 'truncate' | 'flip' | 'append'; atPpm: number; resign: boolean }
  | { kind: 'replace'; file: FileRef; by: 'dir' | 'symlink-copy' | 'symlink-dangling' | 'symlink-loop' | 'symlink-dev-null'; resign: boolean }
  | { kind: 'header'; file: FileRef; edit: StEdit; resign: boolean }
  | { kind: 'swap'; a: FileRef; b: FileRef; resign: boolean }
  | { kind: 'index'; op: IndexOp };

export interface CkRecipe {
  /** Index into the bases (modulo their number). */
  base: number;
  mutations: CkMutation[];
}

const fileRef = fc.nat({ max: 15 });
const manifestKey = fc.oneof(fc.constantFrom('format', 'version', 'layout', 'step', 'created', 'ranks', 'files'), weirdName);
const manifestValue: fc.Arbitrary<Json> = fc.oneof(fc.constantFrom<Json>('adabatch-checkpoint', 'consolidated', 'sharded', 1, 2, 0, 1.5, '1', 'x'), weirdJson);
const digestValue: fc.Arbitrary<Json> = fc.oneof(
  extremeNumber,
  fc.constantFrom<Json>('0'.repeat(64), 'F'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), 'g'.repeat(64), '', null, {}, [], '../x'),
  weirdJson,
);
const manifestEdit: fc.Arbitrary<ManifestEdit> = fc.oneof(
  fc.record({ at: fc.constant('top' as const), key: manifestKey, value: fc.oneof(manifestValue, fc.constant('delete' as const)) }),
  fc.record({ at: fc.constant('root' as const), value: weirdJson }),
  fc.record({ at: fc.constant('entry' as const), file: fileRef, field: fc.constantFrom('size' as const, 'sha256' as const, 'whole' as const), value: fc.oneof(digestValue, fc.constantFrom('delete' as const, 'other-file' as const)) }),
  fc.record({ at: fc.constant('rename' as const), file: fileRef, to: weirdName }),
  fc.record({ at: fc.constant('add' as const), name: weirdName, copyOf: fc.option(fileRef, { nil: null }) }),
);

const jsonPathKey = fc.oneof(
  fc.constantFrom('vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'intermediate_size', 'max_position_embeddings', 'tie_word_embeddings', 'model_type', 'rope_theta', 'head_dim', 'step', 'format', 'version', 'ranks', 'units', 'model', 'optimizer'),
  weirdName,
);
const jsonEdit: fc.Arbitrary<JsonEdit> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), path: fc.array(fc.oneof(jsonPathKey, fc.nat({ max: 4 })), { minLength: 0, maxLength: 3 }), value: weirdJson }),
  fc.record({ op: fc.constant('delete' as const), path: fc.array(fc.oneof(jsonPathKey, fc.nat({ max: 4 })), { minLength: 1, maxLength: 2 }) }),
);

/** Edits of shard_index.json that are known to crash today ('shard-index-shape'). */
export function isShardIndexShapeEdit(e: JsonEdit): boolean {
  const [k0, k1, k2] = e.path;
  const nullish = e.op === 'delete' || (e.op === 'set' && (e.value === null || (typeof e.value === 'object' && !Array.isArray(e.value)) || Array.isArray(e.value)));
  if (e.path.length === 0) return e.op === 'set' && e.value === null;
  if (k0 === 'optimizer' && e.path.length === 1) return e.op === 'delete' || (e.op === 'set' && !Array.isArray(e.value));
  if (k0 === 'units' && typeof k1 === 'number' && e.path.length === 2) return nullish;
  if ((k0 === 'model' || k0 === 'optimizer') && typeof k1 === 'number' && k2 === undefined) return e.op === 'set' && typeof e.value !== 'string';
  return false;
}

/** A shard_index.json text of the shapes that crash today ('shard-index-shape'): null, units with null, optimizer not a list, non-string file names. */
export function shardIndexHasKnownShape(text: string): boolean {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return false;
  }
  if (v === null) return true;
  if (typeof v !== 'object' || Array.isArray(v)) return false;
  const idx = v as Record<string, unknown>;
  if (!Array.isArray(idx.optimizer)) return true;
  if (Array.isArray(idx.units) && idx.units.some((u) => u === null || u === undefined)) return true;
  return [idx.model, idx.optimizer].some((l) => Array.isArray(l) && l.some((x) => typeof x !== 'string'));
}

const indexEdit: fc.Arbitrary<JsonEdit> = fc.oneof(
  fc.record({
    op: fc.constant('set' as const),
    path: fc.oneof(
      fc.constantFrom<Array<string | number>>([], ['format'], ['version'], ['ranks'], ['units'], ['model'], ['optimizer']),
      fc.tuple(fc.constantFrom('units', 'model', 'optimizer'), fc.nat({ max: 5 })),
      fc.tuple(fc.constant('units'), fc.nat({ max: 4 }), fc.constantFrom('size', 'shard_size', 'index')),
    ) as fc.Arbitrary<Array<string | number>>,
    value: fc.oneof(weirdJson, fc.constantFrom<Json>('model-shard-00000-of-00001.safetensors', 'model-shard-00001-of-00002.safetensors', 'optimizer-shard-00000-of-00003.safetensors', '../model-shard-00000-of-00002.safetensors', 'config.json', 'checksums.json', ['model-shard-00000-of-00002.safetensors'], 4096, 2048, 1, 3)),
  }),
  fc.record({ op: fc.constant('delete' as const), path: fc.constantFrom<Array<string | number>>(['format'], ['ranks'], ['units'], ['model'], ['optimizer'], ['units', 0], ['model', 0]) }),
);

function indexOp(c: Classes): fc.Arbitrary<IndexOp> {
  const list = fc.constantFrom('model' as const, 'optimizer' as const);
  const arbs: Array<fc.Arbitrary<IndexOp>> = [
    fc.record({ op: fc.constant('drop' as const), list, i: fc.nat({ max: 3 }) }),
    fc.record({ op: fc.constant('edit' as const), edit: allows(c, 'shard-index-shape') ? indexEdit : indexEdit.filter((e) => !isShardIndexShapeEdit(e)) }),
  ];
  if (allows(c, 'shard-index-duplicate')) {
    arbs.push(fc.record({ op: fc.constant('duplicate' as const), list, i: fc.nat({ max: 3 }), j: fc.nat({ max: 3 }) }));
    arbs.push(fc.record({ op: fc.constant('swap' as const), list, i: fc.nat({ max: 3 }), j: fc.nat({ max: 3 }) }));
  }
  return fc.oneof(...arbs);
}

export function ckMutation(c: Classes): fc.Arbitrary<CkMutation> {
  const resign = fc.boolean();
  const replaceBy = fc.constantFrom('dir' as const, 'symlink-copy' as const, 'symlink-dangling' as const, 'symlink-loop' as const, 'symlink-dev-null' as const);
  const arbs: Array<fc.Arbitrary<CkMutation>> = [
    fc.record({ kind: fc.constant('manifest' as const), edit: manifestEdit }),
    // No manifest: not an adabatch checkpoint any more, but still a Hugging Face directory (loadModelDir).
    fc.record({ kind: fc.constant('manifestDelete' as const) }),
    fc.record({ kind: fc.constant('manifestText' as const), text: fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('', 'null', '[]', '{}', '{"format":', '5', '"x"', '['.repeat(10000))) }),
    fc.record({ kind: fc.constant('json' as const), file: fileRef, edit: jsonEdit, resign: fc.constant(true) }),
    fc.record({ kind: fc.constant('text' as const), file: fileRef, text: fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('', 'null', '[]', '{', '\uFEFF{}', '{"a":1,"a":2}')), resign }),
    fc.record({ kind: fc.constant('bytes' as const), file: fileRef, op: fc.constantFrom('delete' as const, 'empty' as const, 'truncate' as const, 'flip' as const, 'append' as const), atPpm: fc.integer({ min: 0, max: 999_999 }), resign }),
    fc.record({ kind: fc.constant('header' as const), file: fileRef, edit: stEdit(c), resign: fc.constant(true) }),
    fc.record({ kind: fc.constant('swap' as const), a: fileRef, b: fileRef, resign }),
    fc.record({ kind: fc.constant('index' as const), op: indexOp(c) }),
    // A directory in place of a file, re-signed with the directory's size, is a known crash.
    fc.record({ kind: fc.constant('replace' as const), file: fileRef, by: replaceBy, resign }).filter((m) => allows(c, 'checkpoint-dir-as-file') || m.by !== 'dir' || !m.resign),
  ];
  return fc.oneof(...arbs);
}

/** A base and 0–3 mutations (one case in eight unmutated). Without 'shard-index-duplicate', files are never swapped with resigning. */
export function ckRecipe(c: Classes, nBases: number): fc.Arbitrary<CkRecipe> {
  let mutation = ckMutation(c);
  if (!allows(c, 'shard-index-duplicate')) mutation = mutation.filter((m) => !(m.kind === 'swap' && m.resign));
  return fc.record({
    base: fc.nat({ max: nBases - 1 }),
    mutations: fc.oneof({ weight: 1, arbitrary: fc.constant([] as CkMutation[]) }, { weight: 7, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) }),
  });
}

/** Inputs of one known (or fixed) failure class only, or null when the class is not this module's. */
export function ckClassRecipe(id: string, bases: readonly CkBase[]): fc.Arbitrary<CkRecipe> | null {
  const sharded = fc.constantFrom(...bases.map((b, i) => (b.layout === 'sharded' && b.ranks > 1 ? i : -1)).filter((i) => i >= 0));
  const any = fc.nat({ max: bases.length - 1 });
  const one = (base: fc.Arbitrary<number>, m: fc.Arbitrary<CkMutation>): fc.Arbitrary<CkRecipe> => fc.record({ base, mutations: m.map((x) => [x]) });
  const list = fc.constantFrom('model' as const, 'optimizer' as const);
  if (id === 'shard-index-duplicate') {
    return fc.oneof(
      one(sharded, fc.record({ kind: fc.constant('index' as const), op: fc.record({ op: fc.constant('duplicate' as const), list, i: fc.constant(0), j: fc.constant(1) }) })),
      one(sharded, fc.record({ kind: fc.constant('index' as const), op: fc.record({ op: fc.constant('swap' as const), list, i: fc.constant(0), j: fc.constant(1) }) })),
      // Model shards 0 and 1 (files 1 and 2 of a sharded base) swapped on disk, manifest updated.
      one(sharded, fc.record({ kind: fc.constant('swap' as const), a: fc.constant(1), b: fc.constant(2), resign: fc.constant(true) })),
    );
  }
  if (id === 'shard-index-shape') return one(sharded, fc.record({ kind: fc.constant('index' as const), op: fc.record({ op: fc.constant('edit' as const), edit: indexEdit.filter(isShardIndexShapeEdit) }) }));
  if (id === 'checkpoint-dir-as-file') return one(any, fc.record({ kind: fc.constant('replace' as const), file: fileRef, by: fc.constant('dir' as const), resign: fc.constant(true) }));
  return null;
}

// ---------------------------------------------------------------------------------------------
// Applying a recipe to a copy of a base

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export interface Applied {
  dir: string;
  /** Some re-signed change altered tensor bytes: a successful load may then return other values. */
  dataMayChange: boolean;
}

/** Copies the base into `caseDir/<base name>` and applies the mutations; returns the checkpoint directory. */
export function applyCkRecipe(base: CkBase, r: CkRecipe, caseDir: string, classes: Classes): Applied {
  const dir = join(caseDir, base.name);
  cpSync(base.dir, dir, { recursive: true });
  const files = base.files;
  const fileOf = (ref: number, filter: (f: string) => boolean = () => true): string | null => {
    const list = files.filter(filter);
    return list.length ? list[ref % list.length]! : null;
  };
  const isTensorFile = (f: string): boolean => f.endsWith('.safetensors');
  const manifestPath = join(dir, 'checksums.json');
  const readManifestJson = (): Record<string, Json> => JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, Json>;
  let manifest: Json = readManifestJson();
  let manifestText: string | null = null;
  let manifestDeleted = false;
  const resigned = new Set<string>();
  let dataMayChange = false;
  // The last mutation of a file decides whether the manifest is updated for it.
  const touch = (file: string, resign: boolean): void => {
    if (!resign) {
      resigned.delete(file);
      return;
    }
    resigned.add(file);
    if (isTensorFile(file)) dataMayChange = true;
  };
  const indexPath = join(dir, 'shard_index.json');
  for (const m of r.mutations) {
    switch (m.kind) {
      case 'manifestDelete':
        manifestDeleted = true;
        break;
      case 'manifest':
        manifest = applyManifestEdit(manifest, m.edit, fileOf, dir);
        break;
      case 'manifestText':
        manifestText = m.text;
        break;
      case 'json': {
        const f = fileOf(m.file, (x) => x.endsWith('.json'));
        if (f === null || !existsSync(join(dir, f)) || !statSync(join(dir, f)).isFile()) break;
        let v: Json;
        try {
          v = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Json;
        } catch {
          break;
        }
        writeFileSync(join(dir, f), JSON.stringify(applyEdit(v, m.edit), null, 1));
        touch(f, m.resign);
        break;
      }
      case 'text': {
        const f = fileOf(m.file);
        if (f === null) break;
        rmSync(join(dir, f), { recursive: true, force: true });
        writeFileSync(join(dir, f), m.text);
        touch(f, m.resign);
        break;
      }
      case 'bytes': {
        const f = fileOf(m.file);
        if (f === null) break;
        const p = join(dir, f);
        if (!existsSync(p) || !lstatSync(p).isFile()) break;
        if (m.op === 'delete') {
          rmSync(p);
          break;
        }
        const b = readFileSync(p);
        const at = Math.floor((b.length * m.atPpm) / 1e6);
        if (m.op === 'empty') writeFileSync(p, '');
        else if (m.op === 'truncate') writeFileSync(p, b.subarray(0, at));
        else if (m.op === 'append') writeFileSync(p, Buffer.concat([b, Buffer.from('appended')]));
        else if (b.length > 0) {
          b[at % b.length]! ^= 0x5a;
          writeFileSync(p, b);
        }
        touch(f, m.resign);
        break;
      }
      case 'replace': {
        const f = fileOf(m.file);
        if (f === null) break;
        const p = join(dir, f);
        if (!existsSync(p) || !lstatSync(p).isFile()) break;
        if (m.by === 'symlink-copy') {
          const outside = join(caseDir, `outside-${f}`);
          renameSync(p, outside);
          symlinkSync(outside, p);
        } else {
          rmSync(p);
          if (m.by === 'dir') mkdirSync(p);
          else if (m.by === 'symlink-dangling') symlinkSync(join(caseDir, 'no-such-file'), p);
          else if (m.by === 'symlink-loop') symlinkSync(p, p);
          else symlinkSync('/dev/null', p);
        }
        touch(f, m.resign);
        break;
      }
      case 'header': {
        const f = fileOf(m.file, isTensorFile);
        if (f === null) break;
        const p = join(dir, f);
        if (!existsSync(p) || !lstatSync(p).isFile()) break;
        let parts: ReturnType<typeof splitSafetensors>;
        try {
          parts = splitSafetensors(readFileSync(p));
        } catch {
          break;
        }
        if (parts.header === null || typeof parts.header !== 'object' || Array.isArray(parts.header)) break;
        writeFileSync(p, applyStEdits(parts.header, parts.data, [m.edit]));
        touch(f, m.resign);
        break;
      }
      case 'swap': {
        const a = fileOf(m.a);
        const b = fileOf(m.b);
        if (a === null || b === null || a === b) break;
        const [pa, pb] = [join(dir, a), join(dir, b)];
        if (!existsSync(pa) || !existsSync(pb)) break;
        renameSync(pa, join(dir, '.swap'));
        renameSync(pb, pa);
        renameSync(join(dir, '.swap'), pb);
        touch(a, m.resign);
        touch(b, m.resign);
        break;
      }
      case 'index': {
        if (base.layout !== 'sharded' || !existsSync(indexPath) || !lstatSync(indexPath).isFile()) break;
        let idx: Json;
        try {
          idx = JSON.parse(readFileSync(indexPath, 'utf8')) as Json;
        } catch {
          break;
        }
        idx = applyIndexOp(idx, m.op);
        writeFileSync(indexPath, JSON.stringify(idx, null, 1) + '\n');
        touch('shard_index.json', true);
        break;
      }
    }
  }
  // Known failure classes that the mutations produced by a roundabout way (a garbage shard index
  // edited again, a file re-signed and then replaced by a directory) are undone when excluded.
  if (!allows(classes, 'shard-index-shape') && base.layout === 'sharded' && resigned.has('shard_index.json') && existsSync(indexPath) && lstatSync(indexPath).isFile()) {
    if (shardIndexHasKnownShape(readFileSync(indexPath, 'utf8'))) resigned.delete('shard_index.json');
  }
  if (!allows(classes, 'checkpoint-dir-as-file')) for (const f of [...resigned]) if (existsSync(join(dir, f)) && statSync(join(dir, f)).isDirectory()) resigned.delete(f);
  // Re-sign: the manifest records what is now on disk for every file a re-signed mutation touched.
  const files_ = manifest !== null && typeof manifest === 'object' && !Array.isArray(manifest) ? manifest.files : undefined;
  if (files_ !== null && typeof files_ === 'object' && !Array.isArray(files_) && files_ !== undefined) {
    for (const f of resigned) {
      const p = join(dir, f);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      const entry = { size: st.size, sha256: st.isFile() ? sha(readFileSync(p)) : (files_[f] as { sha256?: Json } | undefined)?.sha256 ?? '0'.repeat(64) } as Json;
      Object.defineProperty(files_, f, { value: entry, enumerable: true, writable: true, configurable: true });
    }
  }
  if (manifestDeleted) rmSync(manifestPath);
  else writeFileSync(manifestPath, manifestText ?? JSON.stringify(manifest, null, 2) + '\n');
  return { dir, dataMayChange };
}

function applyManifestEdit(m: Json, e: ManifestEdit, fileOf: (ref: number) => string | null, dir: string): Json {
  const files = (): Record<string, Json> | null => {
    const f = m !== null && typeof m === 'object' && !Array.isArray(m) ? m.files : null;
    return f !== null && typeof f === 'object' && !Array.isArray(f) && f !== undefined ? (f as Record<string, Json>) : null;
  };
  switch (e.at) {
    case 'root':
      return structuredClone(e.value);
    case 'top':
      return applyEdit(m, e.value === 'delete' ? { op: 'delete', path: [e.key] } : { op: 'set', path: [e.key], value: e.value });
    case 'entry': {
      const f = fileOf(e.file);
      const fs = files();
      if (f === null || fs === null) return m;
      if (e.value === 'other-file') {
        const others = Object.keys(fs).filter((k) => k !== f);
        if (others.length) fs[f] = structuredClone(fs[others[0]!]!);
        return m;
      }
      if (e.field === 'whole') return applyEdit(m, e.value === 'delete' ? { op: 'delete', path: ['files', f] } : { op: 'set', path: ['files', f], value: e.value });
      return applyEdit(m, e.value === 'delete' ? { op: 'delete', path: ['files', f, e.field] } : { op: 'set', path: ['files', f, e.field], value: e.value });
    }
    case 'rename': {
      const f = fileOf(e.file);
      return f === null ? m : applyEdit(m, { op: 'renameKey', path: ['files', f], to: e.to });
    }
    case 'add': {
      const fs = files();
      if (fs === null) return m;
      const src = e.copyOf === null ? null : fileOf(e.copyOf);
      let digest: Json = { size: 0, sha256: sha(new Uint8Array(0)) };
      if (src !== null && existsSync(join(dir, src)) && statSync(join(dir, src)).isFile()) {
        const b = readFileSync(join(dir, src));
        digest = { size: b.length, sha256: sha(b) };
      }
      Object.defineProperty(fs, e.name, { value: digest, enumerable: true, writable: true, configurable: true });
      return m;
    }
  }
}

function applyIndexOp(idx: Json, op: IndexOp): Json {
  if (op.op === 'edit') return applyEdit(idx, op.edit);
  if (idx === null || typeof idx !== 'object' || Array.isArray(idx)) return idx;
  const list = idx[op.list];
  if (!Array.isArray(list) || list.length === 0) return idx;
  const i = op.i % list.length;
  if (op.op === 'drop') list.splice(i, 1);
  else {
    const j = op.j % list.length;
    if (op.op === 'duplicate') list[i] = list[j]!;
    else [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return idx;
}

// ---------------------------------------------------------------------------------------------
// The property

const LISTING = new Set(['listCheckpoints(parent)', 'latestValidCheckpoint(parent)', 'readLatestCheckpoint(parent)']);
const READERS = ['verifyCheckpoint', 'verifyCheckpoint({optimizer: false})', 'readCheckpoint', 'readCheckpoint({optimizer: false})'];

/** Checks the outcome of the reader calls (fuzz-targets.ts, 'checkpoint') on one mutated checkpoint. */
export function checkCheckpointOutcome(base: CkBase, applied: Applied, calls: CallOutcome[], unmutated: boolean): void {
  const what = `checkpoint ${base.name}`;
  for (const c of calls) expectNamedOrOk(c, what, [LISTING.has(c.call) ? dirname(applied.dir) : applied.dir]);
  const byCall = new Map(calls.map((c) => [c.call, c]));
  const call = (name: string): CallOutcome => byCall.get(name)!;
  if (unmutated) for (const c of calls) assert.equal(c.kind, 'ok', `${c.call} refused an unmodified checkpoint: ${c.kind !== 'ok' ? c.message : ''}`);
  if (call('readManifest').kind !== 'ok') {
    for (const name of READERS) assert.notEqual(call(name).kind, 'ok', `${name} accepted a checkpoint whose manifest readManifest refuses`);
  }
  // The parent holds only this checkpoint: the newest valid one is it exactly when it verifies / reads.
  const latest = call('latestValidCheckpoint(parent)');
  if (latest.kind === 'ok') assert.equal(latest.value !== null, call('verifyCheckpoint').kind === 'ok', `latestValidCheckpoint(parent) returned ${JSON.stringify(latest.value)} but verifyCheckpoint ${call('verifyCheckpoint').kind === 'ok' ? 'accepts' : 'refuses'} the only checkpoint`);
  const readLatest = call('readLatestCheckpoint(parent)');
  const read = call('readCheckpoint');
  if (readLatest.kind === 'ok') {
    assert.equal(readLatest.value !== null, read.kind === 'ok', `readLatestCheckpoint(parent) returned ${readLatest.value === null ? 'null' : 'a checkpoint'} but readCheckpoint ${read.kind === 'ok' ? 'accepts' : 'refuses'} the only checkpoint`);
    if (readLatest.value !== null && read.kind === 'ok') {
      const [a, b] = [readLatest.value as { model: string; optimizer: string | null }, read.value as { model: string; optimizer: string | null }];
      assert.deepEqual([a.model, a.optimizer], [b.model, b.optimizer], 'readLatestCheckpoint and readCheckpoint loaded different tensors');
    }
  }
  if (applied.dataMayChange) return;
  for (const [call, withOptimizer] of [['readCheckpoint', true], ['readCheckpoint({optimizer: false})', false]] as const) {
    const c = byCall.get(call)!;
    if (c.kind !== 'ok') continue;
    const v = c.value as { model: string; optimizer: string | null };
    assert.equal(v.model, base.model, `${call} accepted the checkpoint but returned other model tensors than were written (silently wrong weights)`);
    // A mutated manifest or index may drop the optimizer state altogether (it is optional): absent is
    // not wrong; other values are.
    if (!(unmutated === false && v.optimizer === null)) assert.equal(v.optimizer, withOptimizer ? base.optimizer : null, `${call} accepted the checkpoint but returned other optimizer tensors than were written`);
  }
}

export async function checkpointCase(sandbox: Sandbox, dirs: CaseDirs, bases: readonly CkBase[], r: CkRecipe, classes: Classes): Promise<void> {
  const base = bases[r.base % bases.length]!;
  await dirs.with(async (caseDir) => {
    const applied = applyCkRecipe(base, r, caseDir, classes);
    const o = await sandbox.run('checkpoint', { dir: applied.dir });
    const calls = callsOf(o, `checkpoint ${base.name}`);
    coverage.noteCalls(`${base.layout} `, calls.filter((c) => c.call === 'readCheckpoint'));
    checkCheckpointOutcome(base, applied, calls, r.mutations.length === 0);
  });
}

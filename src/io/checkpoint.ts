/**
 * Checkpoint directories: written atomically, verified by SHA-256 on load, readable by Hugging Face.
 *
 * A checkpoint is a directory (by convention `<runDir>/checkpoints/step-00001234`) holding
 *   model.safetensors      every parameter, float32, Hugging Face Llama names (no lm_head when tied),
 *                          __metadata__ {"format": "pt"} (transformers refuses files without it)
 *   config.json            transformers' LlamaConfig (hfConfigFromModel)
 *   optimizer.safetensors  optional: AdamW moments `exp_avg.<name>`, `exp_avg_sq.<name>` and whatever
 *                          else the caller passes (F32 / F64 / I32), plus string metadata
 *   trainer_state.json     the caller's opaque JSON object (step, samples, schedule, cursor, RNG, …)
 *   tokenizer.json         optional, verbatim
 *   checksums.json         the manifest, written last: {format: "adabatch-checkpoint", version: 1,
 *                          layout: "consolidated", step, created, files: {name: {size, sha256}}}
 * so the directory is also a plain Hugging Face model directory (loadModelDir in hf.ts reads both).
 *
 * API (all synchronous; every problem with a file on disk is a UserError naming the file):
 *   writeCheckpoint(parentDir, name, content, opts?) → dir
 *       Writes into `<parentDir>/.tmp~<name>~<host>~<pid>~<rand>`, fsyncs every file and the
 *       directory, then renames it to `<parentDir>/<name>` and fsyncs parentDir. Tensors are written
 *       one at a time, hashed as they are written; TensorEntry.data may be a function, so a caller can
 *       stream parameters from a device one tensor at a time (tensorEntriesFromBuffers). Refuses to
 *       replace an existing checkpoint unless opts.overwrite (then the old one is moved aside to
 *       `.replaced~…` first and removed after the new one is in place). Before writing, leftovers of
 *       interrupted writers are cleaned (see recoverInterruptedWrites). One writer per parentDir.
 *   readCheckpoint(dir, { optimizer = true }) → CheckpointData
 *       Verifies size and SHA-256 of every file it loads (model and optimizer in one pass each) and
 *       checks tensor names/shapes/dtypes against config.json. With optimizer: false the optimizer
 *       file is neither read nor verified.
 *   verifyCheckpoint(dir, { optimizer = true }) → manifest     hashes every file, loads nothing big
 *   listCheckpoints(parentDir) → CheckpointEntry[]             oldest → newest, by manifest step
 *   latestValidCheckpoint(parentDir, { onWarning }) → entry | null   newest that verifies
 *   readLatestCheckpoint(parentDir, { onWarning, optimizer }) → { entry, data } | null
 *       newest that loads and verifies (one hash pass instead of verify + read); the resume path.
 *   pruneCheckpoints(parentDir, keepLast, { protect }) → removed names
 *   checkpointName(step) → "step-00001234"
 *
 * Crash safety: a reader only ever sees `<name>` directories that were renamed into place after all
 * their bytes and their manifest were fsynced. Temporary names start with '.', which listCheckpoints
 * and the others skip. A crash between moving an old checkpoint aside and renaming the new one into
 * place leaves `.replaced~<name>~…`; the next write or latest*Checkpoint call renames it back.
 *
 * Layouts: "consolidated" (this file: one model.safetensors with Hugging Face names) and "sharded"
 * (checkpoint-sharded.ts: one slice of every unit per FSDP rank plus shard_index.json, in the same
 * `files` map). Readers refuse layouts and versions they do not know, by name.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { HostArray } from '../backend/backend.js';
import type { ModelConfig } from '../model/config.js';
import type { UnitBuffers } from '../model/params.js';
import { UserError } from '../util/errors.js';
import { CHECKPOINT_FILES, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, type CheckpointManifest, DELETING_PREFIX, MANIFEST_FILE, recoverInterruptedWrites, REPLACED_PREFIX, SHARD_INDEX_FILE, TMP_PREFIX, writeTensorFile } from './checkpoint-format.js';
import { type FileDigest, errCode, fsyncDir, MAX_JSON_FILE_BYTES, MAX_TEXT_FILE_BYTES, parseJsonStrict, readSmallTextFile, regularFileSize, removeTree, sha256Bytes, sha256File, writeFileDurable } from './fsutil.js';
import { checkConfigFitsWeights, checkTensorSet, expectedModelTensors, type FoundTensor, hfConfigFromModel, type HfTokenIds, hfTokenIds, modelConfigFromHf, parseHfConfigText } from './hf-config.js';
import { checkShardFiles, checkShardIndex, MAX_SHARD_RANKS, readShardedTensors } from './checkpoint-sharded.js';
import { bytesToFloat32, readSafetensorsFile, readSafetensorsHeader, SafetensorsError, type TensorToWrite } from './safetensors.js';

/** One tensor to write. `data` may be a function, called right before the tensor is written. */
export interface TensorEntry {
  name: string;
  shape: readonly number[];
  /** Default: from the array type (Float32Array → F32, Float64Array → F64, Int32Array → I32). */
  dtype?: 'F32' | 'F64' | 'I32';
  data: HostArray | (() => HostArray);
}

/**
 * Tensors by name. A Map gives the shapes implicitly: model tensors take the layout's shapes, and
 * optimizer tensors named `<prefix>.<parameter name>` with the parameter's size take its shape (others
 * are written 1-D). Entries give shapes explicitly and allow streaming.
 */
export type TensorSet = ReadonlyMap<string, HostArray> | readonly TensorEntry[];

export interface CheckpointContent {
  config: ModelConfig;
  /** Every parameter (float32), by Hugging Face name. */
  model: TensorSet;
  /** AdamW moments (ADAMW_PREFIX + parameter name) and anything else the caller needs. */
  optimizer?: TensorSet;
  /** String metadata stored in optimizer.safetensors (e.g. betas, step count). */
  optimizerMetadata?: Record<string, string>;
  /** The trainer's state: a JSON-serialisable object, stored verbatim as trainer_state.json. */
  trainerState: Record<string, unknown>;
  /** Contents of a Hugging Face tokenizer.json to store alongside. */
  tokenizerJson?: string;
  /** bos/eos/pad ids for config.json (null/absent when unknown). */
  tokenIds?: HfTokenIds;
  /** Recorded in the manifest; orders checkpoints in listCheckpoints. */
  step?: number;
}

export interface WriteCheckpointOptions {
  /** Replace an existing checkpoint of the same name (default: refuse). */
  overwrite?: boolean;
  /**
   * Called at each stage of the write ('temp-created', 'model.safetensors:header', 'wrote:<file>',
   * 'manifest-written', 'synced', 'old-moved-aside', 'renamed', 'done'); for progress reporting and for
   * crash tests that kill the process at a given stage.
   */
  onStage?: (stage: string) => void;
}

export interface CheckpointData {
  dir: string;
  manifest: CheckpointManifest;
  config: ModelConfig;
  /** config.json as stored. */
  hfConfig: Record<string, unknown>;
  tokenIds: HfTokenIds;
  /** Every parameter, float32, by Hugging Face name (layout order). */
  model: Map<string, Float32Array>;
  /** null when the checkpoint has none or it was not requested. */
  optimizer: Map<string, HostArray> | null;
  optimizerMetadata: Record<string, string> | null;
  trainerState: Record<string, unknown>;
  tokenizerJson: string | null;
}

export interface CheckpointEntry {
  name: string;
  dir: string;
  /** From the manifest, else the digits of a `step-N` name, else null. */
  step: number | null;
  created: string | null;
  /** The parsed manifest, or null when it is missing or unreadable (then `problem` says why). */
  manifest: CheckpointManifest | null;
  problem: string | null;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** The conventional checkpoint name for a step: step-00001234 (sorts lexically up to 10⁸ − 1). */
export function checkpointName(step: number): string {
  if (!Number.isInteger(step) || step < 0) throw new Error(`checkpoint step must be a non-negative integer, got ${step}`);
  return `step-${String(step).padStart(8, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// Writing

function dtypeOf(a: HostArray): 'F32' | 'F64' | 'I32' {
  if (a instanceof Float32Array) return 'F32';
  if (a instanceof Float64Array) return 'F64';
  return 'I32';
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** The model's tensors in layout order, checked against the config (a mismatch is a caller bug). */
function modelTensorsToWrite(config: ModelConfig, set: TensorSet): TensorToWrite[] {
  const expected = expectedModelTensors(config);
  const byName = new Map<string, TensorEntry>();
  if (isEntries(set)) for (const e of set) byName.set(e.name, e);
  else for (const [name, data] of set) byName.set(name, { name, shape: [data.length], data });
  const expectedNames = new Set(expected.map((e) => e.name));
  const extra = [...byName.keys()].filter((n) => !expectedNames.has(n));
  if (extra.length) throw new Error(`writeCheckpoint: model has tensors that are not parameters of this config: ${extra.slice(0, 5).join(', ')}`);
  return expected.map(({ name, shape }) => {
    const e = byName.get(name);
    if (!e) throw new Error(`writeCheckpoint: model tensor '${name}' is missing`);
    if (isEntries(set) && !sameShape(e.shape, shape)) throw new Error(`writeCheckpoint: model tensor '${name}' has shape [${e.shape.join(', ')}], expected [${shape.join(', ')}]`);
    if (e.dtype !== undefined && e.dtype !== 'F32') throw new Error(`writeCheckpoint: model tensor '${name}' must be F32, got ${e.dtype}`);
    const size = shape.reduce((a, b) => a * b, 1);
    const get = (): HostArray => {
      const d = typeof e.data === 'function' ? e.data() : e.data;
      if (!(d instanceof Float32Array)) throw new Error(`writeCheckpoint: model tensor '${name}' must be a Float32Array, got ${d.constructor.name}`);
      if (d.length !== size) throw new Error(`writeCheckpoint: model tensor '${name}' has ${d.length} elements, shape [${shape.join(', ')}] needs ${size}`);
      return d;
    };
    return { name, dtype: 'F32', shape: [...shape], data: typeof e.data === 'function' ? get : get() };
  });
}

function optimizerTensorsToWrite(config: ModelConfig, set: TensorSet): TensorToWrite[] {
  if (isEntries(set)) {
    return set.map((e) => {
      const dtype = e.dtype ?? (typeof e.data === 'function' ? 'F32' : dtypeOf(e.data));
      return { name: e.name, dtype, shape: [...e.shape], data: e.data };
    });
  }
  const params = new Map(expectedModelTensors(config).map((t) => [t.name, t.shape]));
  return [...set].map(([name, data]) => {
    const dot = name.indexOf('.');
    const pShape = dot > 0 ? params.get(name.slice(dot + 1)) : undefined;
    const shape = pShape && pShape.reduce((a, b) => a * b, 1) === data.length ? pShape : [data.length];
    return { name, dtype: dtypeOf(data), shape: [...shape], data };
  });
}

function isEntries(set: TensorSet): set is readonly TensorEntry[] {
  return Array.isArray(set);
}

/**
 * Writes a checkpoint atomically to `<parentDir>/<name>` and returns that path. See the file comment
 * for the procedure. Problems in `content` (missing tensors, wrong sizes) are programming errors
 * (Error); an existing checkpoint without opts.overwrite is a UserError.
 */
export function writeCheckpoint(parentDir: string, name: string, content: CheckpointContent, opts: WriteCheckpointOptions = {}): string {
  if (!NAME_RE.test(name)) throw new UserError(`invalid checkpoint name '${name}': use letters, digits, '.', '_' and '-' (not starting with '.')`);
  const onStage = opts.onStage ?? ((): void => {});
  const trainerJson = JSON.stringify(content.trainerState, null, 1);
  if (trainerJson === undefined || content.trainerState === null || typeof content.trainerState !== 'object' || Array.isArray(content.trainerState)) {
    throw new Error('writeCheckpoint: trainerState must be a JSON object');
  }
  // Validate tensors before touching the disk.
  const modelTensors = modelTensorsToWrite(content.config, content.model);
  const optTensors = content.optimizer ? optimizerTensorsToWrite(content.config, content.optimizer) : null;

  const created = mkdirSync(parentDir, { recursive: true });
  if (created !== undefined) fsyncDir(dirname(created));
  recoverInterruptedWrites(parentDir, { removeTemporaries: true });
  const finalDir = join(parentDir, name);
  if (existsSync(finalDir) && !opts.overwrite) throw new UserError(`${finalDir}: a checkpoint with this name already exists`);

  const tag = `${name}~${hostname()}~${process.pid}~${randomBytes(4).toString('hex')}`;
  const tmp = join(parentDir, TMP_PREFIX + tag);
  mkdirSync(tmp);
  onStage('temp-created');
  let aside: string | null = null;
  try {
    const files: Record<string, FileDigest> = {};
    const F = CHECKPOINT_FILES;
    files[F.model] = writeTensorFile(tmp, F.model, modelTensors, { format: 'pt' }, onStage);
    onStage(`wrote:${F.model}`);
    files[F.config] = writeFileDurable(join(tmp, F.config), JSON.stringify(hfConfigFromModel(content.config, content.tokenIds), null, 2) + '\n');
    onStage(`wrote:${F.config}`);
    if (optTensors) {
      files[F.optimizer] = writeTensorFile(tmp, F.optimizer, optTensors, { format: 'adabatch-optimizer', ...content.optimizerMetadata }, onStage);
      onStage(`wrote:${F.optimizer}`);
    }
    files[F.trainerState] = writeFileDurable(join(tmp, F.trainerState), trainerJson + '\n');
    onStage(`wrote:${F.trainerState}`);
    if (content.tokenizerJson !== undefined) {
      files[F.tokenizer] = writeFileDurable(join(tmp, F.tokenizer), content.tokenizerJson);
      onStage(`wrote:${F.tokenizer}`);
    }
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      layout: 'consolidated',
      step: content.step ?? null,
      created: new Date().toISOString(),
      files,
    };
    writeFileDurable(join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    onStage('manifest-written');
    fsyncDir(tmp);
    onStage('synced');
    if (existsSync(finalDir)) {
      aside = join(parentDir, REPLACED_PREFIX + tag);
      renameSync(finalDir, aside);
      fsyncDir(parentDir);
      onStage('old-moved-aside');
    }
    renameSync(tmp, finalDir);
    fsyncDir(parentDir);
    onStage('renamed');
  } catch (e) {
    removeTree(tmp);
    if (aside && !existsSync(finalDir)) renameSync(aside, finalDir);
    throw e;
  }
  if (aside) {
    removeTree(aside);
    fsyncDir(parentDir);
  }
  onStage('done');
  return finalDir;
}

/** Lazy entries for every parameter of a UnitBuffers (downloaded one tensor at a time while writing). */
export function tensorEntriesFromBuffers(buffers: Pick<UnitBuffers, 'layout' | 'backend' | 'view' | 'dtype'>, prefix = ''): TensorEntry[] {
  return buffers.layout.units.flatMap((u) =>
    u.views.map((v) => ({
      name: prefix + v.name,
      shape: v.shape,
      dtype: buffers.dtype === 'f32' ? ('F32' as const) : ('F64' as const),
      data: (): HostArray => buffers.backend.download(buffers.view(v.name)),
    })),
  );
}

/** The tensors whose names start with `prefix`, keyed by the rest (e.g. exp_avg.<name> → <name>). */
export function tensorsWithPrefix<T>(tensors: ReadonlyMap<string, T>, prefix: string): Map<string, T> {
  const out = new Map<string, T>();
  for (const [name, t] of tensors) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), t);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading and verifying

const HEX64 = /^[0-9a-f]{64}$/;

/** Reads and validates `<dir>/checksums.json`. */
export function readManifest(dir: string): CheckpointManifest {
  const path = join(dir, MANIFEST_FILE);
  try {
    statSync(path);
  } catch (e) {
    const code = errCode(e);
    if (code === 'ENOENT') throw new UserError(`${path}: missing, so ${dir} is not a complete adabatch checkpoint`);
    throw new UserError(`${path}: cannot read (${code})`);
  }
  // Strict JSON: a file listed twice in 'files' would hide one of its two digests.
  const m = parseJsonStrict(readSmallTextFile(path, 'checkpoint manifest', MAX_JSON_FILE_BYTES), path) as Record<string, unknown>;
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw new UserError(`${path}: expected a JSON object`);
  if (m.format !== CHECKPOINT_FORMAT) throw new UserError(`${path}: field 'format' is ${JSON.stringify(m.format)}, expected "${CHECKPOINT_FORMAT}"`);
  if (typeof m.version !== 'number' || !Number.isInteger(m.version)) throw new UserError(`${path}: field 'version' must be an integer`);
  if (m.version > CHECKPOINT_VERSION) throw new UserError(`${path}: checkpoint format version ${m.version} was written by a newer adabatch; this one reads version ${CHECKPOINT_VERSION}`);
  if (m.version < 1) throw new UserError(`${path}: unknown checkpoint format version ${m.version}`);
  if (m.layout !== 'consolidated' && m.layout !== 'sharded') throw new UserError(`${path}: layout ${JSON.stringify(m.layout)} is not supported by this version (only "consolidated" and "sharded")`);
  const layout = m.layout;
  if (m.step !== null && m.step !== undefined && (typeof m.step !== 'number' || !Number.isInteger(m.step))) throw new UserError(`${path}: field 'step' must be an integer or null`);
  const files = m.files as Record<string, unknown>;
  if (!files || typeof files !== 'object' || Array.isArray(files)) throw new UserError(`${path}: field 'files' must be an object`);
  for (const [name, d] of Object.entries(files)) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name) || name === MANIFEST_FILE) throw new UserError(`${path}: invalid file name ${JSON.stringify(name)} in 'files'`);
    const dg = d as Record<string, unknown>;
    if (!dg || typeof dg !== 'object' || !Number.isSafeInteger(dg.size) || (dg.size as number) < 0 || typeof dg.sha256 !== 'string' || !HEX64.test(dg.sha256)) {
      throw new UserError(`${path}: entry for '${name}' must be {size: integer, sha256: 64 hex digits}`);
    }
  }
  // The small files are read whole: their recorded sizes must be plausible before anything is read.
  for (const [name, limit] of SMALL_FILE_LIMITS) {
    const dg = files[name] as FileDigest | undefined;
    if (dg && dg.size > limit) throw new UserError(`${path}: records ${name} as ${dg.size} bytes, more than the ${limit} such a file may have (corrupt manifest?)`);
  }
  const required = layout === 'sharded' ? [SHARD_INDEX_FILE, CHECKPOINT_FILES.config, CHECKPOINT_FILES.trainerState] : [CHECKPOINT_FILES.model, CHECKPOINT_FILES.config, CHECKPOINT_FILES.trainerState];
  for (const file of required) {
    if (!Object.hasOwn(files, file)) throw new UserError(`${path}: does not list ${file}`);
  }
  const out: CheckpointManifest = { format: CHECKPOINT_FORMAT, version: m.version, layout, step: (m.step as number | null | undefined) ?? null, created: String(m.created ?? ''), files: files as Record<string, FileDigest> };
  if (layout === 'sharded') {
    if (!Number.isInteger(m.ranks) || (m.ranks as number) < 1 || (m.ranks as number) > MAX_SHARD_RANKS) throw new UserError(`${path}: field 'ranks' = ${JSON.stringify(m.ranks)} must be an integer from 1 to ${MAX_SHARD_RANKS} for a sharded checkpoint`);
    out.ranks = m.ranks as number;
  }
  return out;
}

/** Files of a checkpoint that are read whole into memory, and their largest plausible sizes. */
const SMALL_FILE_LIMITS: ReadonlyArray<[string, number]> = [
  [CHECKPOINT_FILES.config, MAX_JSON_FILE_BYTES],
  [SHARD_INDEX_FILE, MAX_JSON_FILE_BYTES],
  [CHECKPOINT_FILES.trainerState, MAX_TEXT_FILE_BYTES],
  [CHECKPOINT_FILES.tokenizer, MAX_TEXT_FILE_BYTES],
];

/** Checks size and hash of a file against the manifest (without loading it). */
function verifyFile(dir: string, file: string, expect: FileDigest): void {
  const path = join(dir, file);
  const size = regularFileSize(path, MANIFEST_FILE);
  if (size !== expect.size) throw new UserError(`${path}: size is ${size} bytes, the checkpoint manifest records ${expect.size} (truncated or modified)`);
  const d = sha256File(path);
  if (d.sha256 !== expect.sha256) throw new UserError(`${path}: SHA-256 mismatch: file has ${d.sha256}, the checkpoint manifest records ${expect.sha256} (corrupt or modified)`);
}

/** Reads a small file, verifying it against the manifest. */
function readVerifiedText(dir: string, file: string, expect: FileDigest): string {
  const path = join(dir, file);
  // The size is compared before reading: a huge file is never read into memory.
  const size = regularFileSize(path, MANIFEST_FILE);
  if (size !== expect.size) throw new UserError(`${path}: size is ${size} bytes, the checkpoint manifest records ${expect.size} (truncated or modified)`);
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new UserError(`${path}: ${errCode(e) === 'ENOENT' ? 'missing (listed in ' + MANIFEST_FILE + ')' : 'cannot read (' + errCode(e) + ')'}`);
  }
  if (buf.length !== expect.size) throw new UserError(`${path}: size is ${buf.length} bytes, the checkpoint manifest records ${expect.size} (truncated or modified)`);
  const got = sha256Bytes(buf);
  if (got !== expect.sha256) throw new UserError(`${path}: SHA-256 mismatch: file has ${got}, the checkpoint manifest records ${expect.sha256} (corrupt or modified)`);
  return buf.toString('utf8');
}

/** A JSON object from a checkpoint's small file (trainer_state.json: its fields are the trainer's business). */
function parseJsonObject(text: string, path: string): Record<string, unknown> {
  let s: unknown;
  try {
    s = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (!s || typeof s !== 'object' || Array.isArray(s)) throw new UserError(`${path}: expected a JSON object`);
  return s as Record<string, unknown>;
}

function configOf(dir: string, text: string): { config: ModelConfig; hfConfig: Record<string, unknown> } {
  const file = join(dir, CHECKPOINT_FILES.config);
  const hfConfig = parseHfConfigText(text, file);
  return { config: modelConfigFromHf(hfConfig, { file }), hfConfig };
}

function checkModelFile(dir: string, config: ModelConfig, infos: ReadonlyMap<string, { dtype: string; shape: number[] }>): void {
  const file = join(dir, CHECKPOINT_FILES.model);
  const found = new Map<string, FoundTensor>([...infos].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, file }]));
  const { tiedHead, ignored } = checkTensorSet(config, found, { where: join(dir, CHECKPOINT_FILES.config), dtypes: ['F32'] });
  if (tiedHead || ignored.length) throw new UserError(`${file}: unexpected tensor '${tiedHead ? 'lm_head.weight' : ignored[0]}' (adabatch checkpoints hold parameters only)`);
}

/**
 * model.safetensors has the size the manifest records, and that size can hold the parameters
 * config.json describes (4 bytes each): checked before anything is read or enumerated from them.
 */
function checkModelFileSize(dir: string, manifest: CheckpointManifest, config: ModelConfig): void {
  const path = join(dir, CHECKPOINT_FILES.model);
  const size = regularFileSize(path, MANIFEST_FILE);
  const expect = manifest.files[CHECKPOINT_FILES.model]!;
  if (size !== expect.size) throw new UserError(`${path}: size is ${size} bytes, the checkpoint manifest records ${expect.size} (truncated or modified)`);
  checkConfigFitsWeights(config, join(dir, CHECKPOINT_FILES.config), [{ path, size }], 4, 'F32');
}

export interface ReadCheckpointOptions {
  /** Load (and verify) optimizer.safetensors too (default true). */
  optimizer?: boolean;
}

/** Loads a checkpoint, verifying the size and SHA-256 of every file it reads. */
export function readCheckpoint(dir: string, opts: ReadCheckpointOptions = {}): CheckpointData {
  const manifest = readManifest(dir);
  const F = CHECKPOINT_FILES;
  const { config, hfConfig } = configOf(dir, readVerifiedText(dir, F.config, manifest.files[F.config]!));
  const trainerState = parseJsonObject(readVerifiedText(dir, F.trainerState, manifest.files[F.trainerState]!), join(dir, F.trainerState));
  const tokenizerJson = manifest.files[F.tokenizer] ? readVerifiedText(dir, F.tokenizer, manifest.files[F.tokenizer]) : null;
  if (manifest.layout === 'sharded') {
    const indexText = readVerifiedText(dir, SHARD_INDEX_FILE, manifest.files[SHARD_INDEX_FILE]!);
    const t = readShardedTensors(dir, manifest, config, indexText, opts.optimizer ?? true);
    return { dir, manifest, config, hfConfig, tokenIds: hfTokenIds(hfConfig), model: t.model, optimizer: t.optimizer, optimizerMetadata: t.optimizerMetadata, trainerState, tokenizerJson };
  }

  checkModelFileSize(dir, manifest, config);
  const modelFile = readSafetensorsFile(join(dir, F.model), { expect: manifest.files[F.model]! });
  checkModelFile(dir, config, modelFile.infos);
  const model = new Map<string, Float32Array>();
  for (const { name } of expectedModelTensors(config)) model.set(name, bytesToFloat32('F32', modelFile.tensors.get(name)!.bytes));

  let optimizer: Map<string, HostArray> | null = null;
  let optimizerMetadata: Record<string, string> | null = null;
  if ((opts.optimizer ?? true) && manifest.files[F.optimizer]) {
    const path = join(dir, F.optimizer);
    const f = readSafetensorsFile(path, { expect: manifest.files[F.optimizer] });
    optimizer = new Map();
    for (const [name, t] of f.tensors) {
      const b = t.bytes;
      if (t.dtype === 'F32') optimizer.set(name, new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
      else if (t.dtype === 'F64') optimizer.set(name, new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8));
      else if (t.dtype === 'I32') optimizer.set(name, new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4));
      else throw new SafetensorsError(path, `tensor '${name}' has dtype ${t.dtype}; optimizer state must be F32, F64 or I32`);
    }
    optimizerMetadata = f.metadata;
  }
  return { dir, manifest, config, hfConfig, tokenIds: hfTokenIds(hfConfig), model, optimizer, optimizerMetadata, trainerState, tokenizerJson };
}

/**
 * Verifies a checkpoint without loading its tensors: manifest, size and SHA-256 of every listed file
 * (optimizer.safetensors only if opts.optimizer, default true), config.json parses, and
 * model.safetensors holds exactly the config's tensors. Returns the manifest; throws UserError.
 */
export function verifyCheckpoint(dir: string, opts: ReadCheckpointOptions = {}): CheckpointManifest {
  const manifest = readManifest(dir);
  for (const [file, digest] of Object.entries(manifest.files)) {
    if (file === CHECKPOINT_FILES.optimizer && opts.optimizer === false) continue;
    verifyFile(dir, file, digest);
  }
  const { config } = configOf(dir, readSmallTextFile(join(dir, CHECKPOINT_FILES.config), 'model configuration', MAX_JSON_FILE_BYTES));
  parseJsonObject(readSmallTextFile(join(dir, CHECKPOINT_FILES.trainerState), 'trainer state', MAX_TEXT_FILE_BYTES), join(dir, CHECKPOINT_FILES.trainerState));
  if (manifest.layout === 'sharded') {
    const idx = checkShardIndex(dir, readSmallTextFile(join(dir, SHARD_INDEX_FILE), 'shard index', MAX_JSON_FILE_BYTES), config, manifest);
    checkShardFiles(dir, idx, opts.optimizer !== false);
    return manifest;
  }
  checkModelFileSize(dir, manifest, config);
  const path = join(dir, CHECKPOINT_FILES.model);
  const fd = openSync(path, 'r');
  try {
    checkModelFile(dir, config, readSafetensorsHeader(path, fd).tensors);
  } finally {
    closeSync(fd);
  }
  return manifest;
}

/** Is `dir` an adabatch checkpoint (has a manifest)? Does not verify anything. */
export function isCheckpointDir(dir: string): boolean {
  return existsSync(join(dir, MANIFEST_FILE));
}

// ---------------------------------------------------------------------------------------------
// Listing, choosing, pruning

/**
 * The checkpoints in `parentDir`, oldest first: every directory not starting with '.' that has a
 * manifest or is named step-N. Ordered by step (manifest, else name), then creation time, then name.
 * A missing parentDir gives [].
 */
export function listCheckpoints(parentDir: string): CheckpointEntry[] {
  let names: string[];
  try {
    names = readdirSync(parentDir);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return [];
    throw new UserError(`${parentDir}: cannot list (${errCode(e)})`);
  }
  const out: CheckpointEntry[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const dir = join(parentDir, name);
    try {
      if (!statSync(dir).isDirectory()) continue;
    } catch {
      continue;
    }
    const nameStep = /^step-(\d+)$/.exec(name);
    const hasManifest = existsSync(join(dir, MANIFEST_FILE));
    if (!hasManifest && !nameStep) continue;
    let manifest: CheckpointManifest | null = null;
    let problem: string | null = null;
    try {
      manifest = readManifest(dir);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      problem = e.message;
    }
    const step = manifest?.step ?? (nameStep ? Number(nameStep[1]) : null);
    out.push({ name, dir, step, created: manifest?.created ?? null, manifest, problem });
  }
  return out.sort((a, b) => (a.step ?? -1) - (b.step ?? -1) || (a.created ?? '').localeCompare(b.created ?? '') || a.name.localeCompare(b.name));
}

export interface LatestOptions extends ReadCheckpointOptions {
  /** Told about every checkpoint skipped because it does not verify (default: console.warn). */
  onWarning?: (message: string) => void;
}

/**
 * Tries `use` on the checkpoints under parentDir, newest first, after recovering interrupted writes;
 * returns the first result. A checkpoint that fails with a UserError is reported and skipped.
 */
function newestThat<T>(parentDir: string, opts: LatestOptions, use: (e: CheckpointEntry) => T): T | null {
  const warn = opts.onWarning ?? ((m: string): void => console.warn(m));
  for (const line of recoverInterruptedWrites(parentDir)) warn(`checkpoint recovery: ${line}`);
  const entries = listCheckpoints(parentDir);
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    try {
      return use(e);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      warn(`skipping checkpoint ${e.dir}: ${err.message}`);
    }
  }
  return null;
}

/** The newest checkpoint that verifies completely (verifyCheckpoint), or null. Skipped ones are reported. */
export function latestValidCheckpoint(parentDir: string, opts: LatestOptions = {}): CheckpointEntry | null {
  return newestThat(parentDir, opts, (e) => {
    verifyCheckpoint(e.dir, opts);
    return e;
  });
}

/** Loads the newest checkpoint that reads and verifies (one hash pass per file), or null if none does. */
export function readLatestCheckpoint(parentDir: string, opts: LatestOptions = {}): { entry: CheckpointEntry; data: CheckpointData } | null {
  return newestThat(parentDir, opts, (e) => ({ entry: e, data: readCheckpoint(e.dir, opts) }));
}

/**
 * Keeps the newest `keepLast` checkpoints that have a readable manifest (plus any named in `protect`)
 * and removes every older one, including broken ones older than the oldest kept. Broken checkpoints
 * newer than that are left for a person to look at. Each removal renames the directory to
 * `.deleting~…` first, so a crash mid-removal never leaves a half-deleted directory under a valid
 * name. Returns the removed names. Does not verify hashes (a write just verified-written the newest).
 */
export function pruneCheckpoints(parentDir: string, keepLast: number, opts: { protect?: readonly string[] } = {}): string[] {
  if (!Number.isInteger(keepLast) || keepLast < 1) throw new UserError(`keepLast must be a positive integer, got ${keepLast}`);
  const entries = listCheckpoints(parentDir);
  const protect = new Set(opts.protect ?? []);
  const removed: string[] = [];
  let kept = 0;
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (kept < keepLast) {
      if (e.manifest) kept++;
      continue;
    }
    if (protect.has(e.name)) continue;
    const doomed = join(parentDir, `${DELETING_PREFIX}${e.name}~${randomBytes(4).toString('hex')}`);
    renameSync(e.dir, doomed);
    removed.push(e.name);
  }
  if (removed.length) {
    fsyncDir(parentDir);
    for (const name of readdirSync(parentDir)) if (name.startsWith(DELETING_PREFIX)) removeTree(join(parentDir, name));
  }
  return removed;
}

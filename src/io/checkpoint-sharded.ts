/**
 * Sharded (FSDP) checkpoints: layout "sharded" of the checkpoint format (checkpoint.ts). Each of the
 * J ranks writes the slice of every unit's flat buffer it owns; nothing is gathered to one rank.
 *
 *   model-shard-0000r-of-0000J.safetensors      `unit.<u>` F32 [s_u]: rank r's parameters of unit u
 *   optimizer-shard-0000r-of-0000J.safetensors  `<prefix>unit.<u>` for each optimizer state prefix
 *                                               (AdamW: `exp_avg.`, `exp_avg_sq.`; docs/optimizers.md)
 *   shard_index.json   {format: "adabatch-fsdp-shards", version: 1, ranks: J,
 *                       units: [{index, size: S_u, shard_size: s_u}], model: [files], optimizer: [files],
 *                       optimizer_state: [prefixes]}   (absent in older checkpoints: AdamW's two)
 *   config.json, trainer_state.json, tokenizer.json, checksums.json   as in a consolidated checkpoint
 * Unit u (S_u elements, layout order of src/model/layout.ts) is padded to J·s_u, s_u = ⌈S_u/J⌉, and
 * rank r owns [r·s_u, (r+1)·s_u).
 *
 * Writing is collective and as atomic as a consolidated write: the ranks agree on a temporary
 * directory `.tmp~<name>~sharded~<tag>`, each writes and fsyncs its files there (with a digest
 * sidecar), and after a barrier rank 0 writes the small files and the manifest (listing every file's
 * size and SHA-256), fsyncs, and renames the directory into place. All ranks must see the same
 * filesystem (one machine, or a shared filesystem across machines).
 *
 * Reading consolidates: readShardedTensors returns whole tensors by Hugging Face name, so a
 * checkpoint written by N ranks resumes on M ranks (DDP or FSDP, any M) from the consolidated state,
 * and `adabatch checkpoint consolidate` writes the one-file Hugging Face form. Before anything is
 * allocated, the index must list exactly the file names rank r of J writes, in rank order (a file
 * listed twice or in another rank's place is refused), ranks ≤ MAX_SHARD_RANKS and equal to the
 * manifest's, and the shard files must be large enough for config.json's parameters; each shard's
 * own metadata (rank, ranks) must then match its place (checkShardFiles checks it for verify).
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { HostArray } from '../backend/backend.js';
import type { ModelConfig } from '../model/config.js';
import { buildLayout, type ModelLayout } from '../model/layout.js';
import { UserError } from '../util/errors.js';
import { ADAMW_PREFIX, CHECKPOINT_FILES, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, type CheckpointManifest, MANIFEST_FILE, recoverInterruptedWrites, SHARD_INDEX_FILE, writeTensorFile } from './checkpoint-format.js';
import { type FileDigest, fsyncDir, parseJsonStrict, regularFileSize, removeTree, writeFileDurable } from './fsutil.js';
import { checkConfigFitsWeights, hfConfigFromModel, type HfTokenIds } from './hf-config.js';
import { readSafetensorsFile, readSafetensorsHeader, type TensorToWrite } from './safetensors.js';
export const SHARD_INDEX_FORMAT = 'adabatch-fsdp-shards';

const pad5 = (n: number): string => String(n).padStart(5, '0');
export const modelShardFile = (rank: number, ranks: number): string => `model-shard-${pad5(rank)}-of-${pad5(ranks)}.safetensors`;
export const optimizerShardFile = (rank: number, ranks: number): string => `optimizer-shard-${pad5(rank)}-of-${pad5(ranks)}.safetensors`;
const digestSidecar = (rank: number): string => `.digest-${pad5(rank)}.json`;

export interface ShardIndex {
  format: typeof SHARD_INDEX_FORMAT;
  version: 1;
  ranks: number;
  units: Array<{ index: number; size: number; shard_size: number }>;
  model: string[];
  optimizer: string[];
  /** The optimizer state's tensor prefixes, in file order (absent: AdamW's exp_avg. and exp_avg_sq.). */
  optimizer_state?: string[];
}

/** Prefixes an optimizer state name may have: lower-case words ending in a dot, at most this many. */
const STATE_PREFIX = /^[a-z][a-z0-9_]*\.$/;
const MAX_STATE_PREFIXES = 8;

/** What the ranks need to agree on and synchronise with during a collective write. */
export interface ShardComm {
  rank: number;
  size: number;
  barrier(): Promise<void>;
  /** A number chosen by rank 0 and returned on every rank (names the shared temporary directory). */
  agree(value: number): Promise<number>;
}

export interface ShardedCheckpointContent {
  config: ModelConfig;
  /** This rank's parameter shard of each unit (s_u elements, layout order). */
  params: readonly (HostArray | (() => HostArray))[];
  /** This rank's optimizer state shards, one list per state prefix, or null to write no optimizer state. */
  optimizer: { state: ReadonlyArray<{ prefix: string; shards: readonly (HostArray | (() => HostArray))[] }>; metadata?: Record<string, string> } | null;
  /** Rank 0's values are written (every rank passes them; only rank 0 uses them). */
  trainerState: Record<string, unknown>;
  tokenizerJson?: string;
  tokenIds?: HfTokenIds;
  step: number;
}

export function shardSizes(layout: ModelLayout, ranks: number): number[] {
  return layout.units.map((u) => Math.ceil(u.size / ranks));
}

function shardTensors(prefix: string, shards: readonly (HostArray | (() => HostArray))[], sizes: number[]): TensorToWrite[] {
  return shards.map((data, u) => {
    const get = (): Float32Array => {
      const d = typeof data === 'function' ? data() : data;
      if (!(d instanceof Float32Array) || d.length !== sizes[u]) throw new Error(`sharded checkpoint: ${prefix}unit.${u} must be a Float32Array of ${sizes[u]} elements`);
      return d;
    };
    return { name: `${prefix}unit.${u}`, dtype: 'F32' as const, shape: [sizes[u]!], data: typeof data === 'function' ? get : get() };
  });
}

/** Collective: every rank calls it with its own shards; returns the checkpoint directory on every rank. */
export async function writeShardedCheckpoint(parentDir: string, name: string, c: ShardedCheckpointContent, comm: ShardComm): Promise<string> {
  const { rank, size: J } = comm;
  const layout = buildLayout(c.config);
  const sizes = shardSizes(layout, J);
  if (c.params.length !== layout.units.length) throw new Error(`sharded checkpoint: ${c.params.length} parameter shards for ${layout.units.length} units`);
  const tag = await comm.agree(rank === 0 ? Math.floor(Math.random() * 2 ** 40) : 0);
  const tmp = join(parentDir, `.tmp~${name}~sharded~${tag}`);
  const finalDir = join(parentDir, name);
  if (rank === 0) {
    mkdirSync(parentDir, { recursive: true });
    recoverInterruptedWrites(parentDir, { removeTemporaries: true });
    mkdirSync(tmp);
  }
  await comm.barrier();
  const files: Record<string, FileDigest> = {};
  files[modelShardFile(rank, J)] = writeTensorFile(tmp, modelShardFile(rank, J), shardTensors('', c.params, sizes), { format: SHARD_INDEX_FORMAT, rank: String(rank), ranks: String(J) });
  if (c.optimizer) {
    const t = c.optimizer.state.flatMap(({ prefix, shards }) => shardTensors(prefix, shards, sizes));
    files[optimizerShardFile(rank, J)] = writeTensorFile(tmp, optimizerShardFile(rank, J), t, { ...c.optimizer.metadata, format: SHARD_INDEX_FORMAT, rank: String(rank), ranks: String(J) });
  }
  writeFileDurable(join(tmp, digestSidecar(rank)), JSON.stringify(files));
  await comm.barrier();
  if (rank === 0) {
    for (let r = 1; r < J; r++) {
      const side = join(tmp, digestSidecar(r));
      Object.assign(files, JSON.parse(readFileSync(side, 'utf8')) as Record<string, FileDigest>);
    }
    for (let r = 0; r < J; r++) rmSync(join(tmp, digestSidecar(r)));
    const index: ShardIndex = {
      format: SHARD_INDEX_FORMAT,
      version: 1,
      ranks: J,
      units: layout.units.map((u, i) => ({ index: i, size: u.size, shard_size: sizes[i]! })),
      model: Array.from({ length: J }, (_, r) => modelShardFile(r, J)),
      optimizer: c.optimizer ? Array.from({ length: J }, (_, r) => optimizerShardFile(r, J)) : [],
      ...(c.optimizer && { optimizer_state: c.optimizer.state.map((s) => s.prefix) }),
    };
    files[SHARD_INDEX_FILE] = writeFileDurable(join(tmp, SHARD_INDEX_FILE), JSON.stringify(index, null, 1) + '\n');
    const F = CHECKPOINT_FILES;
    files[F.config] = writeFileDurable(join(tmp, F.config), JSON.stringify(hfConfigFromModel(c.config, c.tokenIds), null, 2) + '\n');
    files[F.trainerState] = writeFileDurable(join(tmp, F.trainerState), JSON.stringify(c.trainerState, null, 1) + '\n');
    if (c.tokenizerJson !== undefined) files[F.tokenizer] = writeFileDurable(join(tmp, F.tokenizer), c.tokenizerJson);
    const manifest = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, layout: 'sharded', ranks: J, step: c.step, created: new Date().toISOString(), files };
    writeFileDurable(join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    fsyncDir(tmp);
    if (existsSync(finalDir)) {
      const aside = join(parentDir, `.replaced~${name}~sharded~${tag}`);
      renameSync(finalDir, aside);
      renameSync(tmp, finalDir);
      fsyncDir(parentDir);
      removeTree(aside);
    } else {
      renameSync(tmp, finalDir);
    }
    fsyncDir(parentDir);
  }
  await comm.barrier();
  return finalDir;
}

/** Most ranks a sharded checkpoint may have: shard file names carry 5-digit rank numbers. */
export const MAX_SHARD_RANKS = 99_999;

/**
 * The files of one list (model or optimizer shards) exist, have the sizes the manifest records, and
 * together can hold `perParam` float32 values per parameter of the config: checked before anything
 * is allocated from the config or the files.
 */
function checkListFits(dir: string, files: readonly string[], manifest: CheckpointManifest | undefined, config: ModelConfig, perParam: number): void {
  const sizes = files.map((file) => {
    const path = join(dir, file);
    const size = regularFileSize(path, manifest ? MANIFEST_FILE : SHARD_INDEX_FILE);
    const expect = manifest?.files[file];
    if (expect && size !== expect.size) throw new UserError(`${path}: size is ${size} bytes, the checkpoint manifest records ${expect.size} (truncated or modified)`);
    return { path, size };
  });
  checkConfigFitsWeights(config, join(dir, CHECKPOINT_FILES.config), sizes, 4 * perParam, perParam === 1 ? 'F32' : `F32 (${perParam} values per parameter)`);
}

/**
 * Parses and validates shard_index.json against config.json (and the manifest, when given): ranks
 * within 1..MAX_SHARD_RANKS and equal to the manifest's; the file lists exactly the names each rank
 * writes, in rank order (so no file is listed twice or stands for another rank's slice), every one
 * listed in the manifest; the unit count and sizes those of the config's layout; and the model shards
 * large enough for the config's parameters, checked before the layout is built.
 */
function readIndex(dir: string, text: string, config: ModelConfig, manifest?: CheckpointManifest): ShardIndex {
  const path = join(dir, SHARD_INDEX_FILE);
  const raw = parseJsonStrict(text, path);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${path}: expected a JSON object`);
  const idx = raw as ShardIndex;
  if (idx.format !== SHARD_INDEX_FORMAT || idx.version !== 1) throw new UserError(`${path}: not an adabatch shard index (format ${JSON.stringify(idx.format)}, version ${JSON.stringify(idx.version)})`);
  if (!Number.isInteger(idx.ranks) || idx.ranks < 1 || idx.ranks > MAX_SHARD_RANKS) throw new UserError(`${path}: 'ranks' = ${JSON.stringify(idx.ranks)} must be an integer from 1 to ${MAX_SHARD_RANKS}`);
  const J = idx.ranks;
  if (manifest && manifest.ranks !== J) throw new UserError(`${path}: 'ranks' is ${J}, but ${MANIFEST_FILE} records ${JSON.stringify(manifest.ranks)}`);
  const checkList = (field: 'model' | 'optimizer', nameOf: (r: number, J: number) => string, optional: boolean): void => {
    const list = idx[field] as unknown;
    if (!Array.isArray(list) || (list.length !== J && !(optional && list.length === 0))) {
      throw new UserError(`${path}: '${field}' must list ${optional ? 'no files or ' : ''}one file per rank (${J}), got ${Array.isArray(list) ? list.length : JSON.stringify(list)}`);
    }
    list.forEach((name: unknown, r) => {
      const want = nameOf(r, J);
      if (name !== want) {
        const twice = list.indexOf(name) !== r ? ', which is listed twice' : '';
        throw new UserError(`${path}: '${field}'[${r}] is ${JSON.stringify(name)}${twice}; rank ${r} of ${J} writes ${want}`);
      }
      if (manifest && !Object.hasOwn(manifest.files, want)) throw new UserError(`${join(dir, MANIFEST_FILE)}: does not list ${want} (named in ${SHARD_INDEX_FILE})`);
    });
  };
  checkList('model', modelShardFile, false);
  checkList('optimizer', optimizerShardFile, true);
  statePrefixes(idx, path);
  // Nothing is enumerated from the config before its unit count and parameter count are checked.
  const nUnits = config.n_layers + 2;
  if (!Array.isArray(idx.units) || idx.units.length !== nUnits) throw new UserError(`${path}: ${Array.isArray(idx.units) ? idx.units.length : 'no'} units, but config.json's model has ${nUnits}`);
  checkListFits(dir, idx.model, manifest, config, 1);
  const layout = buildLayout(config);
  const sizes = shardSizes(layout, J);
  idx.units.forEach((u, i) => {
    const ok = u !== null && typeof u === 'object' && u.index === i && u.size === layout.units[i]!.size && u.shard_size === sizes[i];
    if (!ok) throw new UserError(`${path}: unit ${i} is ${JSON.stringify(u)}, config.json's model gives {"index": ${i}, "size": ${layout.units[i]!.size}, "shard_size": ${sizes[i]}}`);
  });
  return idx;
}

/** A shard file's metadata names the rank and rank count it was written by: they must be its place in the index. */
function checkShardMetadata(path: string, metadata: Record<string, string>, rank: number, ranks: number): void {
  if (metadata.format !== SHARD_INDEX_FORMAT || metadata.rank !== String(rank) || metadata.ranks !== String(ranks)) {
    const said = `format ${JSON.stringify(metadata.format)}, rank ${JSON.stringify(metadata.rank)} of ${JSON.stringify(metadata.ranks)}`;
    throw new UserError(`${path}: its metadata says ${said}, but ${SHARD_INDEX_FILE} lists it as rank ${rank} of ${ranks} (a shard file copied or renamed?)`);
  }
}

/** Validates the shard index against the model and the manifest (throws UserError naming the problem). */
export function checkShardIndex(dir: string, indexText: string, config: ModelConfig, manifest?: CheckpointManifest): ShardIndex {
  return readIndex(dir, indexText, config, manifest);
}

/**
 * Checks every shard file's header without loading tensors: its metadata names its own rank and the
 * rank count, and it holds each unit's slice as F32[shard_size]. Optimizer shards only if `withOptimizer`.
 */
export function checkShardFiles(dir: string, idx: ShardIndex, withOptimizer: boolean): void {
  const lists: Array<[string[], string[]]> = [[idx.model, ['']]];
  if (withOptimizer && idx.optimizer.length) lists.push([idx.optimizer, statePrefixes(idx, join(dir, SHARD_INDEX_FILE))]);
  for (const [files, prefixes] of lists) {
    files.forEach((file, r) => {
      const path = join(dir, file);
      const fd = openSync(path, 'r');
      try {
        const h = readSafetensorsHeader(path, fd);
        checkShardMetadata(path, h.metadata, r, idx.ranks);
        refuseOtherTensors(path, h.tensors.keys(), prefixes, idx.units.length);
        for (const prefix of prefixes) {
          idx.units.forEach((u, i) => {
            const t = h.tensors.get(`${prefix}unit.${i}`);
            if (!t || t.dtype !== 'F32' || t.shape.length !== 1 || t.shape[0] !== u.shard_size) throw new UserError(`${path}: tensor '${prefix}unit.${i}' is missing or not F32[${u.shard_size}]`);
          });
        }
      } finally {
        closeSync(fd);
      }
    });
  }
}

/** The optimizer state prefixes the index names (AdamW's two when it names none), validated. */
function statePrefixes(idx: ShardIndex, path: string): string[] {
  const list = idx.optimizer_state as unknown;
  if (list === undefined) return [ADAMW_PREFIX.m, ADAMW_PREFIX.v];
  const ok = Array.isArray(list) && list.length <= MAX_STATE_PREFIXES && list.every((p) => typeof p === 'string' && STATE_PREFIX.test(p)) && new Set(list).size === list.length;
  if (!ok) throw new UserError(`${path}: 'optimizer_state' must list at most ${MAX_STATE_PREFIXES} distinct prefixes like "exp_avg.", got ${JSON.stringify(list)}`);
  return list as string[];
}

/** A shard file holds exactly `<prefix>unit.<i>` for each prefix and unit: anything else is not ours. */
function refuseOtherTensors(path: string, names: Iterable<string>, prefixes: string[], units: number): void {
  for (const name of names) {
    const prefix = prefixes.find((p) => name.startsWith(`${p}unit.`));
    const i = prefix === undefined ? '' : name.slice(prefix.length + 'unit.'.length);
    if (prefix === undefined || !/^(0|[1-9]\d*)$/.test(i) || Number(i) >= units) throw new UserError(`${path}: unexpected tensor '${name}' (a shard file holds ${prefixes.map((p) => `${p}unit.<i>`).join(' and ')} for the ${units} units only)`);
  }
}

/**
 * Assembles whole tensors from the shards: the model by Hugging Face name and, when wanted, the
 * optimizer state as <prefix><name> (AdamW: exp_avg.<name> / exp_avg_sq.<name>). Every file is verified against the manifest.
 */
export function readShardedTensors(dir: string, manifest: CheckpointManifest, config: ModelConfig, indexText: string, withOptimizer: boolean): { model: Map<string, Float32Array>; optimizer: Map<string, HostArray> | null; optimizerMetadata: Record<string, string> | null } {
  const idx = readIndex(dir, indexText, config, manifest);
  const layout = buildLayout(config);
  const assemble = (fileList: string[], prefixes: string[]): { out: Map<string, Float32Array>; metadata: Record<string, string> } => {
    // The whole tensors are allocated up front: only once the files are known to be large enough.
    if (prefixes.length) checkListFits(dir, fileList, manifest, config, prefixes.length);
    const flats = prefixes.map(() => layout.units.map((u) => new Float32Array(u.size)));
    let metadata: Record<string, string> = {};
    fileList.forEach((file, r) => {
      const expect = manifest.files[file];
      if (!expect) throw new UserError(`${join(dir, MANIFEST_FILE)}: does not list ${file}`);
      const f = readSafetensorsFile(join(dir, file), { expect });
      checkShardMetadata(join(dir, file), f.metadata, r, idx.ranks);
      if (r === 0) metadata = f.metadata;
      refuseOtherTensors(join(dir, file), f.tensors.keys(), prefixes, layout.units.length);
      prefixes.forEach((prefix, p) => {
        layout.units.forEach((u, i) => {
          const t = f.tensors.get(`${prefix}unit.${i}`);
          const s = idx.units[i]!.shard_size;
          if (!t || t.dtype !== 'F32' || t.bytes.byteLength !== 4 * s) throw new UserError(`${join(dir, file)}: tensor '${prefix}unit.${i}' is missing or not F32[${s}]`);
          const shard = new Float32Array(t.bytes.buffer, t.bytes.byteOffset, s);
          const keep = Math.max(0, Math.min(s, u.size - r * s));
          flats[p]![i]!.set(shard.subarray(0, keep), r * s);
        });
      });
    });
    const out = new Map<string, Float32Array>();
    prefixes.forEach((prefix, p) => {
      for (const u of layout.units) for (const v of u.views) out.set(prefix + v.name, flats[p]![u.index]!.slice(v.offset, v.offset + v.size));
    });
    return { out, metadata };
  };
  const model = assemble(idx.model, ['']).out;
  if (!withOptimizer || idx.optimizer.length === 0) return { model, optimizer: null, optimizerMetadata: null };
  const opt = assemble(idx.optimizer, statePrefixes(idx, join(dir, SHARD_INDEX_FILE)));
  return { model, optimizer: opt.out, optimizerMetadata: opt.metadata };
}


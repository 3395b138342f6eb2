/**
 * Sharded (FSDP) checkpoints: layout "sharded" of the checkpoint format (checkpoint.ts). Each of the
 * J ranks writes the slice of every unit's flat buffer it owns; nothing is gathered to one rank.
 *
 *   model-shard-0000r-of-0000J.safetensors      `unit.<u>` F32 [s_u]: rank r's parameters of unit u
 *   optimizer-shard-0000r-of-0000J.safetensors  `exp_avg.unit.<u>`, `exp_avg_sq.unit.<u>` (AdamW moments)
 *   shard_index.json   {format: "adabatch-fsdp-shards", version: 1, ranks: J,
 *                       units: [{index, size: S_u, shard_size: s_u}], model: [files], optimizer: [files]}
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
 * Reading consolidates: readShardedCheckpoint returns whole tensors by Hugging Face name, so a
 * checkpoint written by N ranks resumes on M ranks (DDP or FSDP, any M) from the consolidated state,
 * and `adabatch checkpoint consolidate` writes the one-file Hugging Face form.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { HostArray } from '../backend/backend.js';
import type { ModelConfig } from '../model/config.js';
import { buildLayout, type ModelLayout } from '../model/layout.js';
import { UserError } from '../util/errors.js';
import { ADAMW_PREFIX, CHECKPOINT_FILES, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, type CheckpointManifest, MANIFEST_FILE, recoverInterruptedWrites, SHARD_INDEX_FILE, writeTensorFile } from './checkpoint-format.js';
import { type FileDigest, fsyncDir, removeTree, writeFileDurable } from './fsutil.js';
import { hfConfigFromModel, type HfTokenIds } from './hf-config.js';
import { readSafetensorsFile, type TensorToWrite } from './safetensors.js';
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
}

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
  /** This rank's AdamW moment shards, or null to write no optimizer state. */
  optimizer: { m: readonly (HostArray | (() => HostArray))[]; v: readonly (HostArray | (() => HostArray))[]; metadata?: Record<string, string> } | null;
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
    const t = [...shardTensors(ADAMW_PREFIX.m, c.optimizer.m, sizes), ...shardTensors(ADAMW_PREFIX.v, c.optimizer.v, sizes)];
    files[optimizerShardFile(rank, J)] = writeTensorFile(tmp, optimizerShardFile(rank, J), t, { format: SHARD_INDEX_FORMAT, rank: String(rank), ranks: String(J), ...c.optimizer.metadata });
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

function readIndex(dir: string, text: string, config: ModelConfig): ShardIndex {
  const path = join(dir, SHARD_INDEX_FILE);
  let idx: ShardIndex;
  try {
    idx = JSON.parse(text) as ShardIndex;
  } catch (e) {
    throw new UserError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (idx.format !== SHARD_INDEX_FORMAT || idx.version !== 1) throw new UserError(`${path}: not an adabatch shard index (format ${JSON.stringify(idx.format)}, version ${JSON.stringify(idx.version)})`);
  if (!Number.isInteger(idx.ranks) || idx.ranks < 1) throw new UserError(`${path}: 'ranks' must be a positive integer`);
  const layout = buildLayout(config);
  const sizes = shardSizes(layout, idx.ranks);
  if (!Array.isArray(idx.units) || idx.units.length !== layout.units.length) throw new UserError(`${path}: ${idx.units?.length} units, but config.json's model has ${layout.units.length}`);
  idx.units.forEach((u, i) => {
    if (u.size !== layout.units[i]!.size || u.shard_size !== sizes[i]) throw new UserError(`${path}: unit ${i} has size ${u.size} / shard ${u.shard_size}, config.json's model gives ${layout.units[i]!.size} / ${sizes[i]}`);
  });
  if (!Array.isArray(idx.model) || idx.model.length !== idx.ranks || (idx.optimizer.length !== 0 && idx.optimizer.length !== idx.ranks)) throw new UserError(`${path}: file lists do not match 'ranks' (${idx.ranks})`);
  return idx;
}

/** Validates the shard index against the model (throws UserError naming the problem). */
export function checkShardIndex(dir: string, indexText: string, config: ModelConfig): ShardIndex {
  return readIndex(dir, indexText, config);
}

/**
 * Assembles whole tensors from the shards: the model by Hugging Face name and, when wanted, the
 * AdamW moments as exp_avg.<name> / exp_avg_sq.<name>. Every file is verified against the manifest.
 */
export function readShardedTensors(dir: string, manifest: CheckpointManifest, config: ModelConfig, indexText: string, withOptimizer: boolean): { model: Map<string, Float32Array>; optimizer: Map<string, HostArray> | null; optimizerMetadata: Record<string, string> | null } {
  const idx = readIndex(dir, indexText, config);
  const layout = buildLayout(config);
  const assemble = (fileList: string[], prefixes: string[]): { out: Map<string, Float32Array>; metadata: Record<string, string> } => {
    const flats = prefixes.map(() => layout.units.map((u) => new Float32Array(u.size)));
    let metadata: Record<string, string> = {};
    fileList.forEach((file, r) => {
      const expect = manifest.files[file];
      if (!expect) throw new UserError(`${join(dir, MANIFEST_FILE)}: does not list ${file}`);
      const f = readSafetensorsFile(join(dir, file), { expect });
      if (r === 0) metadata = f.metadata;
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
  const opt = assemble(idx.optimizer, [ADAMW_PREFIX.m, ADAMW_PREFIX.v]);
  return { model, optimizer: opt.out, optimizerMetadata: opt.metadata };
}


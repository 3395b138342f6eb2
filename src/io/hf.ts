/**
 * Loading Llama weights from Hugging Face model directories, and from our own checkpoints (which
 * are Hugging Face directories with a manifest).
 *
 *   loadHfModel(dir) → HfModel
 *       dir/config.json (LlamaConfig; see hf-config.ts for what is refused) and either
 *       dir/model.safetensors or dir/model.safetensors.index.json ({weight_map: {tensor: shard file}})
 *       with its shards. F32, F16, BF16 and F64 tensors are converted to float32 (BF16 and F16 exactly;
 *       F64 rounds). Every expected tensor must be present with the config's shape; nothing else may be,
 *       except rotary_emb.inv_freq buffers (ignored, noted) and, when tie_word_embeddings is true, an
 *       lm_head.weight identical to the embedding (dropped, noted; a different one is refused).
 *       dir/tokenizer.json is returned when present, with dir/tokenizer_config.json (which names BOS and
 *       EOS) when that is too. pytorch_model.bin is refused (safetensors only).
 *   loadModelDir(dir) → LoadedModel
 *       Our checkpoint (has checksums.json) → readCheckpoint(dir, { optimizer: false }): sizes and
 *       SHA-256 verified, trainer state returned; anything else → loadHfModel(dir).
 *
 * Every problem is a UserError naming the file and what is wrong with it.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import { isCheckpointDir, readCheckpoint } from './checkpoint.js';
import type { CheckpointManifest } from './checkpoint-format.js';
import { errCode, MAX_JSON_FILE_BYTES, MAX_TEXT_FILE_BYTES, parseJsonStrict, readSmallTextFile, regularFileSize } from './fsutil.js';
import { checkConfigFitsWeights, checkTensorSet, expectedModelTensors, type FoundTensor, type HfTokenIds, hfTokenIds, modelConfigFromHf, parseHfConfigText } from './hf-config.js';
import { SafetensorsReader } from './safetensors.js';

export { hfConfigFromModel, modelConfigFromHf, type HfLlamaConfig, type HfTokenIds } from './hf-config.js';

export interface HfModel {
  dir: string;
  config: ModelConfig;
  /** config.json as stored. */
  hfConfig: Record<string, unknown>;
  tokenIds: HfTokenIds;
  /** Every parameter of `config`, float32, by Hugging Face name (layout order). */
  tensors: Map<string, Float32Array>;
  /** tokenizer.json's path and text, when the directory has one. */
  tokenizerPath?: string;
  tokenizerJson?: string;
  /** tokenizer_config.json's text, when the directory has one beside tokenizer.json (Hugging Face directories). */
  tokenizerConfigJson?: string;
  /** The weight files read, relative to dir. */
  weightFiles: string[];
  /** The dtypes the weights were stored in (before conversion to float32). */
  storedDtypes: string[];
  /** Defaults applied and harmless things ignored, one line each. */
  notes: string[];
}

export interface LoadedModel extends HfModel {
  kind: 'checkpoint' | 'hf';
  /** For our checkpoints: the verified manifest and the trainer state. */
  manifest?: CheckpointManifest;
  trainerState?: Record<string, unknown>;
}

const INDEX_FILE = 'model.safetensors.index.json';
const SINGLE_FILE = 'model.safetensors';
const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

function readText(path: string, what: string, maxBytes = MAX_JSON_FILE_BYTES): string {
  return readSmallTextFile(path, what, maxBytes);
}

/** The weight files of an HF directory and, for a sharded one, which file each tensor is said to be in. */
function weightFiles(dir: string): { files: string[]; weightMap: Map<string, string> | null } {
  if (existsSync(join(dir, SINGLE_FILE))) return { files: [SINGLE_FILE], weightMap: null };
  const indexPath = join(dir, INDEX_FILE);
  if (existsSync(indexPath)) {
    const text = readText(indexPath, 'safetensors index');
    // Strict: a tensor named twice in weight_map (JSON.parse would keep the last) is refused.
    const index = parseJsonStrict(text, indexPath);
    if (index === null || typeof index !== 'object' || Array.isArray(index)) throw new UserError(`${indexPath}: expected a JSON object`);
    const wm = (index as { weight_map?: unknown } | null)?.weight_map;
    if (!wm || typeof wm !== 'object' || Array.isArray(wm)) throw new UserError(`${indexPath}: field 'weight_map' must be an object {tensor name: shard file}`);
    const weightMap = new Map<string, string>();
    for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof file !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9._-]*\.safetensors$/.test(file)) {
        throw new UserError(`${indexPath}: weight_map['${name}'] = ${JSON.stringify(file)} is not a .safetensors file name in this directory`);
      }
      weightMap.set(name, file);
    }
    if (weightMap.size === 0) throw new UserError(`${indexPath}: weight_map is empty`);
    return { files: [...new Set(weightMap.values())].sort(), weightMap };
  }
  for (const legacy of ['pytorch_model.bin', 'pytorch_model.bin.index.json']) {
    if (existsSync(join(dir, legacy))) throw new UserError(`${join(dir, legacy)}: PyTorch pickle weights are not supported; convert the model to safetensors (model.safetensors)`);
  }
  throw new UserError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE} (not a Hugging Face safetensors model directory)`);
}

/** Loads a Hugging Face Llama directory; see the file comment for what is accepted. */
export function loadHfModel(dir: string): HfModel {
  try {
    if (!statSync(dir).isDirectory()) throw new UserError(`${dir}: not a directory`);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${dir}: ${errCode(e) === 'ENOENT' ? 'no such directory' : 'cannot access (' + errCode(e) + ')'}`);
  }
  const notes: string[] = [];
  const configPath = join(dir, 'config.json');
  const hfConfig = parseHfConfigText(readText(configPath, 'the model configuration'), configPath);
  const config = modelConfigFromHf(hfConfig, { file: configPath, notes });

  const { files, weightMap } = weightFiles(dir);
  const readers: SafetensorsReader[] = [];
  try {
    const found = new Map<string, FoundTensor>();
    const readerOf = new Map<string, SafetensorsReader>();
    // Every file must exist and be a regular file before any is opened.
    for (const file of files) regularFileSize(join(dir, file), weightMap ? INDEX_FILE : undefined);
    for (const file of files) {
      const r = SafetensorsReader.open(join(dir, file));
      readers.push(r);
    }
    // The headers are read (each bounded by its own file); before any tensor name is enumerated from
    // config.json, its parameter count must fit in the files (at 2 bytes per parameter, F16/BF16).
    checkConfigFitsWeights(config, configPath, readers.map((r) => ({ path: r.path, size: r.fileSize })), 2, 'F16/BF16 (the smallest accepted dtypes)');
    for (const r of readers) {
      for (const [name, t] of r.tensors) {
        const prev = found.get(name);
        if (prev) throw new UserError(`${r.path}: tensor '${name}' is also in ${prev.file}`);
        found.set(name, { dtype: t.dtype, shape: t.shape, file: r.path });
        readerOf.set(name, r);
      }
    }
    if (weightMap) {
      for (const [name, file] of weightMap) {
        const t = found.get(name);
        const path = join(dir, file);
        if (!t) throw new UserError(`${join(dir, INDEX_FILE)}: weight_map puts '${name}' in ${file}, but ${path} has no such tensor`);
        if (t.file !== path) throw new UserError(`${join(dir, INDEX_FILE)}: weight_map puts '${name}' in ${file}, but it is in ${t.file}`);
      }
      for (const [name, t] of found) if (!weightMap.has(name)) notes.push(`${t.file}: tensor '${name}' is not listed in ${INDEX_FILE}`);
    }
    const { tiedHead } = checkTensorSet(config, found, { where: configPath, dtypes: ['F32', 'F16', 'BF16', 'F64'], notes });

    const tensors = new Map<string, Float32Array>();
    for (const { name } of expectedModelTensors(config)) tensors.set(name, readerOf.get(name)!.readFloat32(name));
    if (tiedHead) {
      const head = readerOf.get('lm_head.weight')!.readFloat32('lm_head.weight');
      const embed = tensors.get('model.embed_tokens.weight')!;
      const a = new Uint32Array(head.buffer, head.byteOffset, head.length);
      const b = new Uint32Array(embed.buffer, embed.byteOffset, embed.length);
      let differ = -1;
      for (let i = 0; i < a.length; i++) {
        if (a[i] !== b[i]) {
          differ = i;
          break;
        }
      }
      if (differ >= 0) {
        throw new UserError(`${configPath}: field 'tie_word_embeddings' is true, but ${found.get('lm_head.weight')!.file} has an lm_head.weight that differs from model.embed_tokens.weight (first at element ${differ}); refusing to drop it`);
      }
      notes.push(`lm_head.weight equals model.embed_tokens.weight (tied); dropped`);
    }
    const storedDtypes = [...new Set([...found.values()].map((t) => t.dtype))].sort();
    const tokenizerPath = join(dir, 'tokenizer.json');
    const result: HfModel = { dir, config, hfConfig, tokenIds: hfTokenIds(hfConfig), tensors, weightFiles: files, storedDtypes, notes };
    if (existsSync(tokenizerPath)) {
      result.tokenizerPath = tokenizerPath;
      result.tokenizerJson = readText(tokenizerPath, 'tokenizer', MAX_TEXT_FILE_BYTES);
      const configPath = join(dir, TOKENIZER_CONFIG_FILE);
      if (existsSync(configPath)) result.tokenizerConfigJson = readText(configPath, 'tokenizer config', MAX_TEXT_FILE_BYTES);
    }
    return result;
  } finally {
    for (const r of readers) r.close();
  }
}

/**
 * Loads model weights from either one of our checkpoints (verifying every checksum; the optimizer
 * state is not read) or a plain Hugging Face Llama directory.
 */
export function loadModelDir(dir: string): LoadedModel {
  if (!isCheckpointDir(dir)) {
    const hf: LoadedModel = { kind: 'hf', ...loadHfModel(dir) };
    if (existsSync(join(dir, 'trainer_state.json'))) hf.notes.push(`${dir}: has trainer_state.json but no checksums.json: loaded as a plain Hugging Face directory, not verified`);
    return hf;
  }
  const ck = readCheckpoint(dir, { optimizer: false });
  const out: LoadedModel = {
    kind: 'checkpoint',
    dir,
    config: ck.config,
    hfConfig: ck.hfConfig,
    tokenIds: ck.tokenIds,
    tensors: ck.model,
    weightFiles: ['model.safetensors'],
    storedDtypes: ['F32'],
    notes: [],
    manifest: ck.manifest,
    trainerState: ck.trainerState,
  };
  if (ck.tokenizerJson !== null) {
    out.tokenizerPath = join(dir, 'tokenizer.json');
    out.tokenizerJson = ck.tokenizerJson;
  }
  return out;
}

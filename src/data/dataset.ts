/**
 * The data entry point the trainer calls:
 *
 *   const ds = await loadDataset(cfg.data, { seqLen: 256, seed: cfg.seed, log });
 *   ds.tokenizer                       // Tokenizer (vocabSize, bos, eos, encode, decode, save)
 *   ds.train.windows(k, n)             // samples [k, k+n): n × (seqLen+1) tokens; inputs [0,L), targets [1,L+1)
 *   ds.train.cursorAt(k)               // { epoch, position }; the data position is just k, samples seen
 *   ds.validation?.windows(0, n)       // a fixed set of validation windows (null if there are none)
 *   shardStep(k, globalBatch, ranks, microBatch)   // (sampler.ts) who reads which samples this step
 *
 * Config (snake_case; `{}` means Brown with a 4096-token tokenizer trained on its train split):
 *   corpus:       'brown' | { paths: [files or folders…], text_field: 'text' }   (see corpus.ts)
 *   tokenizer:    { vocab: 4096, min_frequency: 2 }  to train one (cached), or
 *                 { path: 'tokenizer.json', bos_token?, eos_token? }  to use a Hugging Face file
 *   val_fraction: share of documents held out for validation (by a seeded hash of the document id)
 *   val_windows:  at most this many validation windows (evenly spread over the validation stream,
 *                 in a fixed seeded order, so any prefix is a fair sample)
 *   split_seed:   seeds the split and the validation order; it is part of the data's identity and
 *                 deliberately separate from the run seed (`opts.seed`), which seeds the shuffle
 *   cache_dir:    default $XDG_CACHE_HOME/adabatch or ~/.cache/adabatch
 *
 * Work is cached under cache_dir: the trained tokenizer (tokenizers/<key>.json, keyed by the inputs'
 * fingerprint and the training settings) and the tokenised corpus (tokens/<key>.bin, keyed by the
 * inputs' fingerprint and the tokenizer's hash). A cache file is checked when read and rebuilt,
 * atomically, when it is stale, corrupt or truncated. The split is applied after tokenisation, so
 * changing val_fraction or split_seed re-uses the token cache (but retrains a cached tokenizer,
 * which is trained on the train split only).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { countWords } from './bpe-train.js';
import { openCorpus, type Document } from './corpus.js';
import { canonicalJson, sha256Hex } from './json.js';
import { PackedWindows, packDocuments, windowCount, type WindowSampler } from './sampler.js';
import { isValidationDocument } from './split.js';
import { readTokenCache, tokenDtype, writeTokenCache, TOKEN_CACHE_VERSION, type TokenizedCorpus } from './token-cache.js';
import { loadTokenizer, trainTokenizerFromCounts, type Tokenizer } from './tokenizer.js';
import { Rng } from '../util/rng.js';
import { UserError, parseOrThrow } from '../util/errors.js';

export type { WindowSampler } from './sampler.js';

/** Bump when training changes in a way that makes cached tokenizers different. */
const TOKENIZER_TRAINER_VERSION = 1;
const DEFAULT_VOCAB = 4096;

export const dataConfigSchema = z
  .object({
    corpus: z
      .union([
        z.literal('brown'),
        z
          .object({
            paths: z.array(z.string().min(1)).min(1),
            text_field: z.string().min(1).default('text'),
          })
          .strict(),
      ])
      .default('brown'),
    tokenizer: z
      .object({
        /** A Hugging Face tokenizer.json (or a folder holding one). */
        path: z.string().min(1).optional(),
        bos_token: z.string().min(1).optional(),
        eos_token: z.string().min(1).optional(),
        /** Train one with this vocabulary size (the default when no path is given). */
        vocab: z.number().int().min(258).max(1 << 24).optional(),
        min_frequency: z.number().int().positive().default(2),
      })
      .strict()
      .superRefine((t, ctx) => {
        if (t.path !== undefined && t.vocab !== undefined) ctx.addIssue({ code: 'custom', path: ['vocab'], message: 'give tokenizer.path or tokenizer.vocab, not both' });
        if (t.path === undefined && (t.bos_token !== undefined || t.eos_token !== undefined)) ctx.addIssue({ code: 'custom', path: ['path'], message: 'bos_token/eos_token name tokens of a tokenizer file given by path' });
      })
      .prefault({}),
    val_fraction: z.number().min(0).lt(1).default(0.05),
    val_windows: z.number().int().positive().default(1024),
    split_seed: z.number().int().nonnegative().default(0),
    cache_dir: z.string().min(1).optional(),
  })
  .strict();

export type DataConfig = z.output<typeof dataConfigSchema>;
export type DataConfigInput = z.input<typeof dataConfigSchema>;

export interface LoadDatasetOptions {
  seqLen: number;
  /** The run seed: seeds the per-epoch shuffle of training windows. */
  seed: number;
  log?: (msg: string) => void;
}

export interface DatasetStats {
  corpus: string;
  documents: { train: number; validation: number };
  /** Packed stream lengths, BOS/EOS included. */
  tokens: { train: number; validation: number };
  windowsPerEpoch: number;
  validationWindows: number;
  tokenizer: { vocabSize: number; hash: string; source: string; cache: 'given' | 'hit' | 'trained' };
  tokenCache: { file: string; status: 'hit' | 'built' | 'rebuilt' };
  seconds: number;
}

export interface Dataset {
  tokenizer: Tokenizer;
  /** Shuffled per epoch with opts.seed; random access by global sample index. */
  train: WindowSampler;
  /** Fixed windows (the same order every time); null when the validation split has no full window. */
  validation: WindowSampler | null;
  stats: DatasetStats;
}

export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'adabatch');
}

const shortKey = (value: unknown): string => sha256Hex(canonicalJson(value)).slice(0, 24);

/** Parses a data config (user input or already parsed), naming every invalid field under `data.`. */
export function parseDataConfig(raw: unknown): DataConfig {
  return parseOrThrow(dataConfigSchema, raw ?? {}, 'data config', 'data');
}

export async function loadDataset(config: DataConfigInput | DataConfig, opts: LoadDatasetOptions): Promise<Dataset> {
  const t0 = performance.now();
  const cfg = parseDataConfig(config);
  const log = opts.log ?? (() => {});
  if (!Number.isSafeInteger(opts.seqLen) || opts.seqLen < 1) throw new UserError(`sequence length must be a positive integer, got ${opts.seqLen}`);
  const cacheDir = resolve(cfg.cache_dir ?? defaultCacheDir());
  const corpus = openCorpus(cfg.corpus);
  const fingerprint = corpus.fingerprint();

  // The corpus is read at most once, and only when some cache misses.
  let docs: Document[] | null = null;
  const documents = (): Document[] => {
    if (docs === null) {
      const t = performance.now();
      docs = corpus.documents();
      log(`data: read ${docs.length} documents from ${corpus.description} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    return docs;
  };
  const inValidation = (id: string): boolean => isValidationDocument(id, cfg.split_seed, cfg.val_fraction);

  let tokenizer: Tokenizer;
  let tokenizerCache: DatasetStats['tokenizer']['cache'];
  if (cfg.tokenizer.path !== undefined) {
    const names: { bosToken?: string; eosToken?: string } = {};
    if (cfg.tokenizer.bos_token !== undefined) names.bosToken = cfg.tokenizer.bos_token;
    if (cfg.tokenizer.eos_token !== undefined) names.eosToken = cfg.tokenizer.eos_token;
    tokenizer = loadTokenizer(cfg.tokenizer.path, names);
    tokenizerCache = 'given';
  } else {
    const vocab = cfg.tokenizer.vocab ?? DEFAULT_VOCAB;
    const file = join(cacheDir, 'tokenizers', `${shortKey({ trainer: TOKENIZER_TRAINER_VERSION, inputs: fingerprint, vocab, min_frequency: cfg.tokenizer.min_frequency, val_fraction: cfg.val_fraction, split_seed: cfg.split_seed })}.json`);
    let cached: Tokenizer | null = null;
    try {
      cached = loadTokenizer(file);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      if (!/does not exist/.test(e.message)) log(`data: cached tokenizer unusable (${e.message}); training again`);
    }
    if (cached !== null) {
      tokenizer = cached;
      tokenizerCache = 'hit';
    } else {
      const t = performance.now();
      const counts = new Map<string, number>();
      for (const d of documents()) if (!inValidation(d.id)) countWords([d.text], counts);
      tokenizer = trainTokenizerFromCounts(counts, { vocab, minFrequency: cfg.tokenizer.min_frequency });
      tokenizer.save(file);
      tokenizerCache = 'trained';
      log(`data: trained a ${tokenizer.vocabSize}-token BPE tokenizer in ${((performance.now() - t) / 1000).toFixed(1)} s (${file})`);
      if (tokenizer.vocabSize < vocab) log(`data: the corpus supports only ${tokenizer.vocabSize} of the ${vocab} tokens asked for`);
    }
  }

  const tokenizerHash = tokenizer.hash();
  const cacheFile = join(cacheDir, 'tokens', `${shortKey({ format: TOKEN_CACHE_VERSION, inputs: fingerprint, tokenizer: tokenizerHash })}.bin`);
  const expect = { tokenizerHash, inputsFingerprint: fingerprint, vocabSize: tokenizer.vocabSize };
  const read = readTokenCache(cacheFile, expect);
  let tokenized: TokenizedCorpus;
  let cacheStatus: DatasetStats['tokenCache']['status'];
  if (read.ok) {
    tokenized = read.corpus;
    cacheStatus = 'hit';
  } else {
    if (read.reason !== 'not built yet') log(`data: token cache ${cacheFile} unusable (${read.reason}); rebuilding`);
    const t = performance.now();
    tokenized = tokenizeDocuments(tokenizer, documents());
    writeTokenCache(cacheFile, tokenized, expect);
    cacheStatus = read.reason === 'not built yet' ? 'built' : 'rebuilt';
    const secs = (performance.now() - t) / 1000;
    log(`data: tokenised ${tokenized.docIds.length} documents into ${tokenized.tokens.length} tokens in ${secs.toFixed(1)} s (${cacheFile})`);
  }

  const trainDocs: number[] = [];
  const valDocs: number[] = [];
  tokenized.docIds.forEach((id, d) => (inValidation(id) ? valDocs : trainDocs).push(d));
  const trainStream = packDocuments(tokenized.tokens, tokenized.offsets, trainDocs, tokenizer.bos, tokenizer.eos);
  const valStream = packDocuments(tokenized.tokens, tokenized.offsets, valDocs, tokenizer.bos, tokenizer.eos);
  if (windowCount(trainStream.length, opts.seqLen) === 0) {
    throw new UserError(`the training split of ${corpus.description} has ${trainStream.length} tokens, fewer than one window of seq_len + 1 = ${opts.seqLen + 1}`);
  }
  const train = new PackedWindows(trainStream, opts.seqLen, { shuffleSeed: opts.seed });

  const valAvailable = windowCount(valStream.length, opts.seqLen);
  let validation: PackedWindows | null = null;
  if (valAvailable > 0) {
    const n = Math.min(cfg.val_windows, valAvailable);
    const select = new Uint32Array(n);
    for (let i = 0; i < n; i++) select[i] = Math.floor((i * valAvailable) / n);
    Rng.derive(cfg.split_seed, 'validation-order').shuffle(select);
    validation = new PackedWindows(valStream, opts.seqLen, { shuffleSeed: null, select });
  } else if (cfg.val_fraction > 0) {
    log(`data: the validation split (${valDocs.length} documents, ${valStream.length} tokens) has no full window of ${opts.seqLen + 1} tokens; no validation`);
  }

  const stats: DatasetStats = {
    corpus: corpus.description,
    documents: { train: trainDocs.length, validation: valDocs.length },
    tokens: { train: trainStream.length, validation: valStream.length },
    windowsPerEpoch: train.windowsPerEpoch,
    validationWindows: validation?.windowsPerEpoch ?? 0,
    tokenizer: { vocabSize: tokenizer.vocabSize, hash: tokenizerHash, source: tokenizer.source, cache: tokenizerCache },
    tokenCache: { file: cacheFile, status: cacheStatus },
    seconds: (performance.now() - t0) / 1000,
  };
  log(
    `data: ${stats.corpus}: ${stats.documents.train}+${stats.documents.validation} documents, ${stats.tokens.train}+${stats.tokens.validation} tokens (train+validation), ` +
      `${stats.windowsPerEpoch} windows per epoch, ${stats.validationWindows} validation windows, vocab ${tokenizer.vocabSize} (${stats.seconds.toFixed(1)} s)`,
  );
  return { tokenizer, train, validation, stats };
}

/** Encodes every document (no BOS/EOS: packing adds them) into one array with offsets. */
export function tokenizeDocuments(tokenizer: Tokenizer, docs: readonly Document[]): TokenizedCorpus {
  const wide = tokenDtype(tokenizer.vocabSize) === 'uint32';
  const alloc = (n: number): Uint16Array | Uint32Array => (wide ? new Uint32Array(n) : new Uint16Array(n));
  // English byte-level BPE gives ~4 characters per token; grow when a corpus packs tighter.
  let tokens = alloc(Math.max(1024, Math.ceil(docs.reduce((n, d) => n + d.text.length, 0) / 3)));
  const offsets = new Float64Array(docs.length + 1);
  let total = 0;
  docs.forEach((d, i) => {
    const ids = tokenizer.encode(d.text);
    if (total + ids.length > tokens.length) {
      const grown = alloc(Math.max(total + ids.length, Math.ceil(tokens.length * 1.5)));
      grown.set(tokens.subarray(0, total));
      tokens = grown;
    }
    tokens.set(ids, total);
    total += ids.length;
    offsets[i + 1] = total;
  });
  return { docIds: docs.map((d) => d.id), offsets, tokens: tokens.slice(0, total), vocabSize: tokenizer.vocabSize };
}

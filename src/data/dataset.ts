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
 *   corpus:       'brown' | { paths: [file, folder or glob | { path, text_field }…], text_field: 'text' }
 *                 (text, JSONL, Parquet, plain or .gz/.zst; see corpus.ts and sources/)
 *   on_bad_record: 'fail' (default: name the file and line/row, stop) | 'skip' (leave out, log a count per file)
 *   tokenizer:    { vocab: 4096, min_frequency: 2 }  to train one (cached), or
 *                 { path: 'tokenizer.json', bos_token?, eos_token? }  to use a Hugging Face file
 *   val_fraction: share of documents held out for validation (by a seeded hash of the document id)
 *   val_windows:  at most this many validation windows (evenly spread over the validation stream,
 *                 in a fixed seeded order, so any prefix is a fair sample)
 *   split_seed:   seeds the split and the validation order; it is part of the data's identity and
 *                 deliberately separate from the run seed (`opts.seed`), which seeds the shuffle
 *   cache_dir:    default $XDG_CACHE_HOME/adabatch or ~/.cache/adabatch
 * or, for a corpus tokenised ahead of time by `adabatch data prepare` (shards/):
 *   shards:       the prepared folder; its tokenizer comes with it, and its tokens are read from disk
 *                 window by window, never loaded (val_fraction, val_windows, split_seed as above)
 * or, for several prepared folders drawn with weights (mixture.ts):
 *   mixture:      [{ name, weight, shards }…]; each source split and sampled as `shards` alone
 *
 * Both give the same windows for the same corpus and tokenizer: the split hashes the same document
 * ids, and `PackedDocuments` (sampler.ts) packs the same documents from a `TokenSource` in memory or
 * on disk.
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
import { openCorpus, readAll, type Document } from './corpus.js';
import { canonicalJson, sha256Hex } from './json.js';
import { memoryTokens, PackedDocuments, PackedWindows, windowCount, type TokenSource, type WindowSampler } from './sampler.js';
import { ShardSet } from './shards/shard-set.js';
import { MAX_BLOCK, MixtureSchedule, MixtureWindows } from './mixture.js';
import { hash32, isValidationDocument } from './split.js';
import { readTokenCache, tokenDtype, writeTokenCache, TOKEN_CACHE_VERSION, type TokenizedCorpus } from './token-cache.js';
import { loadTokenizer, trainTokenizerFromCounts, type Tokenizer } from './tokenizer.js';
import { Rng } from '../util/rng.js';
import { UserError, parseOrThrow } from '../util/errors.js';

export type { WindowSampler } from './sampler.js';

/** Bump when training changes in a way that makes cached tokenizers different. */
const TOKENIZER_TRAINER_VERSION = 1;
const DEFAULT_VOCAB = 4096;

const tokenizerSchema = z
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
  .prefault({});

/** How documents are held out and how many validation windows are kept: the same for every kind of data. */
const splitFields = {
  val_fraction: z.number().min(0).lt(1).default(0.05),
  val_windows: z.number().int().positive().default(1024),
  split_seed: z.number().int().nonnegative().default(0),
};

export const corpusDataSchema = z
  .object({
    corpus: z
      .union([
        z.literal('brown'),
        z
          .object({
            /** Sources: files, folders or glob patterns, each optionally with its own text field. */
            paths: z.array(z.union([z.string().min(1), z.object({ path: z.string().min(1), text_field: z.string().min(1).optional() }).strict()])).min(1),
            /** The JSONL field or Parquet column holding the text, for sources that name none. */
            text_field: z.string().min(1).default('text'),
          })
          .strict(),
      ])
      .default('brown'),
    /** A malformed record or unreadable file: `fail` names it and stops; `skip` leaves it out and logs a count per file. */
    on_bad_record: z.enum(['fail', 'skip']).default('fail'),
    tokenizer: tokenizerSchema,
    ...splitFields,
    cache_dir: z.string().min(1).optional(),
  })
  .strict();

export const shardsDataSchema = z
  .object({
    /** A folder written by `adabatch data prepare`. */
    shards: z.string().min(1),
    /** Optional: a tokenizer file that must be the shards' own (eval and init_from pass theirs). */
    tokenizer: tokenizerSchema.refine((t) => t.vocab === undefined, { path: ['vocab'], message: 'the shards were tokenised by `data prepare`: tokenizer.vocab would train another tokenizer' }),
    ...splitFields,
  })
  .strict();

export const mixtureDataSchema = z
  .object({
    /** Prepared folders drawn with relative weights (mixture.ts), all made with one tokenizer. */
    mixture: z
      .array(
        z
          .object({
            /** Names the source in logs and in the metrics' tokens_by_source. */
            name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a source name is letters, digits, `_`, `.` and `-`'),
            weight: z.number().positive().finite(),
            shards: z.string().min(1),
          })
          .strict(),
      )
      .min(1)
      .superRefine((sources, ctx) => {
        sources.forEach((s, i) => {
          if (sources.findIndex((t) => t.name === s.name) < i) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `source name ${s.name} is used twice` });
        });
        const total = sources.reduce((sum, s) => sum + s.weight, 0);
        sources.forEach((s, i) => {
          if (s.weight / total < 1 / MAX_BLOCK) ctx.addIssue({ code: 'custom', path: [i, 'weight'], message: `${s.name} would get ${s.weight / total} of the samples, under the smallest share a mixture realises (1/${MAX_BLOCK})` });
        });
      }),
    tokenizer: shardsDataSchema.shape.tokenizer,
    ...splitFields,
  })
  .strict();

/**
 * `data` is a corpus, shards or mixture section, chosen by the `shards` or `mixture` key rather than
 * as a plain union, so an error names the field that is wrong instead of "invalid input".
 */
export const dataConfigSchema = z.unknown().transform((value, ctx): z.output<typeof corpusDataSchema> | z.output<typeof shardsDataSchema> | z.output<typeof mixtureDataSchema> => {
  const has = (key: string): boolean => value !== null && typeof value === 'object' && key in value;
  const kinds = ['corpus', 'shards', 'mixture'].filter(has);
  if (kinds.length > 1) {
    const why = has('mixture') ? 'a mixture names the shards of each source' : 'the shards hold the corpus `data prepare` tokenised';
    ctx.addIssue({ code: 'custom', path: [kinds[0]!], message: `give ${kinds.map((k) => `data.${k}`).join(' or ')}, not ${kinds.length === 2 ? 'both' : 'several'} (${why})` });
    return z.NEVER;
  }
  const r = (has('mixture') ? mixtureDataSchema : has('shards') ? shardsDataSchema : corpusDataSchema).safeParse(value ?? {});
  if (r.success) return r.data;
  for (const issue of r.error.issues) ctx.addIssue({ ...issue });
  return z.NEVER;
});

export type CorpusDataConfig = z.output<typeof corpusDataSchema>;
export type ShardsDataConfig = z.output<typeof shardsDataSchema>;
export type MixtureDataConfig = z.output<typeof mixtureDataSchema>;
/** Shards and mixture configs have no corpus (`corpus?: undefined` lets code read `.corpus` of any kind). */
export type DataConfig = CorpusDataConfig | (ShardsDataConfig & { corpus?: undefined }) | (MixtureDataConfig & { corpus?: undefined });
export type DataConfigInput = z.input<typeof corpusDataSchema> | z.input<typeof shardsDataSchema> | z.input<typeof mixtureDataSchema>;

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
  /** hash and source are empty for token shards prepared without a tokenizer. */
  tokenizer: { vocabSize: number; hash: string; source: string; cache: 'given' | 'hit' | 'trained' };
  /** Where the tokens are read from: the token cache file, or (status 'shards') the prepared folder. */
  tokenCache: { file: string; status: 'hit' | 'built' | 'rebuilt' | 'shards' };
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

/** A dataset read from token shards, which may have been prepared from token files without a tokenizer. */
export interface ShardDataset extends Omit<Dataset, 'tokenizer'> {
  tokenizer: Tokenizer | null;
  vocabSize: number;
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
  const cfg = parseDataConfig(config);
  if ('shards' in cfg || 'mixture' in cfg) {
    const ds = 'shards' in cfg ? openShardDataset(cfg, opts) : openMixtureDataset(cfg, opts);
    if (ds.tokenizer === null) throw new UserError(`${'shards' in cfg ? cfg.shards : ds.stats.tokenCache.file} was prepared from token files without a tokenizer: training reads it, but this command needs a tokenizer`);
    return { ...ds, tokenizer: ds.tokenizer };
  }
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  checkSeqLen(opts.seqLen);
  const cacheDir = resolve(cfg.cache_dir ?? defaultCacheDir());
  const corpus = openCorpus(cfg.corpus, { onBadRecord: cfg.on_bad_record, log });
  const fingerprint = await corpus.fingerprint();

  // The corpus is read at most once, and only when some cache misses.
  let docs: Document[] | null = null;
  const documents = async (): Promise<Document[]> => {
    if (docs === null) {
      const t = performance.now();
      docs = await readAll(corpus);
      log(`data: read ${docs.length} documents from ${corpus.description} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    return docs;
  };
  const { tokenizer, cache: tokenizerCache } = await resolveTokenizer(cfg, fingerprint, documents, log);

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
    tokenized = tokenizeDocuments(tokenizer, await documents());
    writeTokenCache(cacheFile, tokenized, expect);
    cacheStatus = read.reason === 'not built yet' ? 'built' : 'rebuilt';
    const secs = (performance.now() - t) / 1000;
    log(`data: tokenised ${tokenized.docIds.length} documents into ${tokenized.tokens.length} tokens in ${secs.toFixed(1)} s (${cacheFile})`);
  }

  const splits = buildSplits(memoryTokens(tokenized.tokens, tokenized.offsets), tokenized.docIds, tokenizer, cfg, opts, corpus.description, log);
  const stats: DatasetStats = {
    ...splits.stats,
    tokenizer: { vocabSize: tokenizer.vocabSize, hash: tokenizerHash, source: tokenizer.source, cache: tokenizerCache },
    tokenCache: { file: cacheFile, status: cacheStatus },
    seconds: (performance.now() - t0) / 1000,
  };
  logStats(stats, log);
  return { tokenizer, train: splits.train, validation: splits.validation, stats };
}

/**
 * A dataset from a folder `adabatch data prepare` wrote: the tokenizer and BOS/EOS are the folder's,
 * the tokens stay on disk (ShardSet), and the split and packing are loadDataset's own. A tokenizer
 * given in the config (eval and init_from pass the model's) must be the folder's.
 */
export function openShardDataset(cfg: ShardsDataConfig, opts: LoadDatasetOptions): ShardDataset {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  checkSeqLen(opts.seqLen);
  const set = ShardSet.open(resolve(cfg.shards));
  if (cfg.tokenizer.path !== undefined) checkSameTokenizer(set, cfg.tokenizer);
  const splits = buildSplits(set, set.documentIds(), set, cfg, opts, set.description, log);
  const stats: DatasetStats = {
    ...splits.stats,
    tokenizer: { vocabSize: set.vocabSize, hash: set.tokenizer?.hash() ?? '', source: set.tokenizer?.source ?? '', cache: 'given' },
    tokenCache: { file: set.dir, status: 'shards' },
    seconds: (performance.now() - t0) / 1000,
  };
  logStats(stats, log);
  return { tokenizer: set.tokenizer, vocabSize: set.vocabSize, train: splits.train, validation: splits.validation, stats };
}

/**
 * A mixture of prepared folders (mixture.ts): each source is opened, split and sampled as
 * openShardDataset does alone, its training windows shuffled with a seed of its own (derived from the
 * run seed and its name); sample k of the mixture is window j of source s by the schedule. Validation
 * mixes the sources' fixed validation windows by the same weights (those without any left out).
 */
export function openMixtureDataset(cfg: MixtureDataConfig, opts: LoadDatasetOptions): ShardDataset {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const { mixture, ...shared } = cfg;
  const parts = mixture.map((source) => ({ source, ds: openShardDataset({ ...shared, shards: source.shards }, { ...opts, seed: hash32(opts.seed, `mixture source ${source.name}`) }) }));
  const first = parts[0]!;
  for (const { source, ds } of parts.slice(1)) {
    const a = first.ds.stats.tokenizer;
    const b = ds.stats.tokenizer;
    const differs = a.hash !== b.hash ? `tokenizer hash ${a.hash.slice(0, 12) || 'none'} vs ${b.hash.slice(0, 12) || 'none'}` : a.vocabSize !== b.vocabSize ? `vocabulary ${a.vocabSize} vs ${b.vocabSize}` : first.ds.tokenizer?.bos !== ds.tokenizer?.bos || first.ds.tokenizer?.eos !== ds.tokenizer?.eos ? 'BOS/EOS ids differ' : null;
    if (differs !== null) throw new UserError(`data.mixture: sources ${first.source.name} (${first.source.shards}) and ${source.name} (${source.shards}) were prepared with different tokenizers (${differs}): prepare every source with the same \`adabatch data prepare --tokenizer\``);
  }
  const schedule = new MixtureSchedule(mixture);
  const train = new MixtureWindows(schedule, parts.map((p) => p.ds.train));
  const withValidation = parts.filter((p) => p.ds.validation !== null);
  if (withValidation.length < parts.length && withValidation.length > 0) log(`data: mixture validation leaves out ${parts.filter((p) => p.ds.validation === null).map((p) => p.source.name).join(', ')} (no validation window)`);
  const validation = withValidation.length === 0 ? null : new MixtureWindows(new MixtureSchedule(withValidation.map((p) => p.source)), withValidation.map((p) => p.ds.validation!));
  const sum = (f: (s: DatasetStats) => number): number => parts.reduce((n, p) => n + f(p.ds.stats), 0);
  const stats: DatasetStats = {
    corpus: `mixture of ${mixture.map((s, i) => `${s.name} ${schedule.perBlock[i]}/${schedule.block}`).join(', ')}`,
    documents: { train: sum((s) => s.documents.train), validation: sum((s) => s.documents.validation) },
    tokens: { train: sum((s) => s.tokens.train), validation: sum((s) => s.tokens.validation) },
    windowsPerEpoch: train.windowsPerEpoch,
    validationWindows: validation?.windowsPerEpoch ?? 0,
    tokenizer: first.ds.stats.tokenizer,
    tokenCache: { file: mixture.map((s) => s.shards).join(', '), status: 'shards' },
    seconds: (performance.now() - t0) / 1000,
  };
  logStats(stats, log);
  return { tokenizer: first.ds.tokenizer, vocabSize: first.ds.vocabSize, train, validation, stats };
}

function checkSeqLen(seqLen: number): void {
  if (!Number.isSafeInteger(seqLen) || seqLen < 1) throw new UserError(`sequence length must be a positive integer, got ${seqLen}`);
}

/** Refuses a tokenizer (file, BOS/EOS names) that is not the one a shard folder was made with. */
function checkSameTokenizer(set: ShardSet, given: CorpusDataConfig['tokenizer']): void {
  const names: { bosToken?: string; eosToken?: string } = {};
  if (given.bos_token !== undefined) names.bosToken = given.bos_token;
  if (given.eos_token !== undefined) names.eosToken = given.eos_token;
  const tokenizer = loadTokenizer(given.path!, names);
  if (set.tokenizer === null || tokenizer.hash() !== set.tokenizer.hash()) {
    throw new UserError(`the tokenizer ${tokenizer.source} is not the one the shards in ${set.dir} were made with${set.tokenizer === null ? ' (they were prepared from token files without one)' : ''}: prepare the shards with \`adabatch data prepare --tokenizer ${given.path}\``);
  }
  if (tokenizer.bos !== set.bos || tokenizer.eos !== set.eos) {
    throw new UserError(`the tokenizer ${tokenizer.source} has BOS/EOS ids ${tokenizer.bos}/${tokenizer.eos}, the shards in ${set.dir} were packed with ${set.bos}/${set.eos}`);
  }
}

/**
 * The tokenizer a corpus config names: a file (`tokenizer.path`), or one trained on the corpus's
 * training split and cached under cache_dir, keyed by the inputs' fingerprint and the training
 * settings. `documents` is called only when one must be trained. `data prepare --config` uses it too,
 * so shards and the in-memory path tokenise with the same tokenizer.
 */
export async function resolveTokenizer(
  cfg: CorpusDataConfig,
  fingerprint: string,
  documents: () => Promise<Iterable<Document> | AsyncIterable<Document>>,
  log: (msg: string) => void,
): Promise<{ tokenizer: Tokenizer; cache: DatasetStats['tokenizer']['cache'] }> {
  if (cfg.tokenizer.path !== undefined) {
    const names: { bosToken?: string; eosToken?: string } = {};
    if (cfg.tokenizer.bos_token !== undefined) names.bosToken = cfg.tokenizer.bos_token;
    if (cfg.tokenizer.eos_token !== undefined) names.eosToken = cfg.tokenizer.eos_token;
    return { tokenizer: loadTokenizer(cfg.tokenizer.path, names), cache: 'given' };
  }
  const vocab = cfg.tokenizer.vocab ?? DEFAULT_VOCAB;
  const cacheDir = resolve(cfg.cache_dir ?? defaultCacheDir());
  const file = join(cacheDir, 'tokenizers', `${shortKey({ trainer: TOKENIZER_TRAINER_VERSION, inputs: fingerprint, vocab, min_frequency: cfg.tokenizer.min_frequency, val_fraction: cfg.val_fraction, split_seed: cfg.split_seed })}.json`);
  try {
    return { tokenizer: loadTokenizer(file), cache: 'hit' };
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    if (!/does not exist/.test(e.message)) log(`data: cached tokenizer unusable (${e.message}); training again`);
  }
  const t = performance.now();
  const counts = new Map<string, number>();
  for await (const d of await documents()) if (!isValidationDocument(d.id, cfg.split_seed, cfg.val_fraction)) countWords([d.text], counts);
  const tokenizer = trainTokenizerFromCounts(counts, { vocab, minFrequency: cfg.tokenizer.min_frequency });
  tokenizer.save(file);
  log(`data: trained a ${tokenizer.vocabSize}-token BPE tokenizer in ${((performance.now() - t) / 1000).toFixed(1)} s (${file})`);
  if (tokenizer.vocabSize < vocab) log(`data: the corpus supports only ${tokenizer.vocabSize} of the ${vocab} tokens asked for`);
  return { tokenizer, cache: 'trained' };
}

type SplitStats = Pick<DatasetStats, 'corpus' | 'documents' | 'tokens' | 'windowsPerEpoch' | 'validationWindows'>;

/**
 * The train and validation samplers of a tokenised corpus, however it is held: each document goes to
 * one split by its id (split.ts), each split's documents are packed in corpus order (PackedDocuments),
 * training windows are shuffled per epoch with the run seed, validation windows are a fixed subset.
 */
function buildSplits(
  source: TokenSource,
  ids: Iterable<string>,
  special: { bos: number; eos: number },
  cfg: Pick<DataConfig, 'val_fraction' | 'val_windows' | 'split_seed'>,
  opts: LoadDatasetOptions,
  description: string,
  log: (msg: string) => void,
): { train: WindowSampler; validation: WindowSampler | null; stats: SplitStats } {
  const trainDocs: number[] = [];
  const valDocs: number[] = [];
  let d = 0;
  for (const id of ids) (isValidationDocument(id, cfg.split_seed, cfg.val_fraction) ? valDocs : trainDocs).push(d++);
  const trainStream = new PackedDocuments(source, trainDocs, special.bos, special.eos);
  const valStream = new PackedDocuments(source, valDocs, special.bos, special.eos);
  if (windowCount(trainStream.length, opts.seqLen) === 0) {
    throw new UserError(`the training split of ${description} has ${trainStream.length} tokens, fewer than one window of seq_len + 1 = ${opts.seqLen + 1}`);
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
  const stats: SplitStats = {
    corpus: description,
    documents: { train: trainDocs.length, validation: valDocs.length },
    tokens: { train: trainStream.length, validation: valStream.length },
    windowsPerEpoch: train.windowsPerEpoch,
    validationWindows: validation?.windowsPerEpoch ?? 0,
  };
  return { train, validation, stats };
}

function logStats(stats: DatasetStats, log: (msg: string) => void): void {
  log(
    `data: ${stats.corpus}: ${stats.documents.train}+${stats.documents.validation} documents, ${stats.tokens.train}+${stats.tokens.validation} tokens (train+validation), ` +
      `${stats.windowsPerEpoch} windows per epoch, ${stats.validationWindows} validation windows, vocab ${stats.tokenizer.vocabSize} (${stats.seconds.toFixed(1)} s)`,
  );
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

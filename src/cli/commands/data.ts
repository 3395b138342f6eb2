/**
 * `adabatch data prepare | verify`: tokenise a corpus into token shards that training reads without
 * loading them (src/data/shards/), and check a prepared folder end to end.
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { openCorpus, type Corpus, type CorpusSpec } from '../../data/corpus.js';
import { resolveTokenizer } from '../../data/dataset.js';
import { readManifest, checkShardMatches } from '../../data/shards/manifest.js';
import { prepareShards, type PrepareInput } from '../../data/shards/prepare.js';
import { PrepareProgress } from '../../data/shards/prepare-progress.js';
import { verifyShardFile } from '../../data/shards/shard-file.js';
import { ShardSet } from '../../data/shards/shard-set.js';
import { isTokenFile, openTokenFile } from '../../data/shards/token-files.js';
import { loadTokenizer, type Tokenizer } from '../../data/tokenizer.js';
import { loadTrainConfig } from '../../train/config.js';
import { formatCount } from '../../util/format.js';
import { UserError } from '../../util/errors.js';
import { runSubcommand } from '../subcommands.js';

export const summary = 'tokenise a corpus into token shards that training reads from disk; verify a shard folder';

const USAGE = `usage: adabatch data <subcommand> [options]

subcommands:
  prepare  tokenise a corpus (text, JSONL, Parquet; llm.c and nanoGPT token files) into token shards
  verify   check every byte of a prepared shard folder

Run \`adabatch data <subcommand> --help\` for its options. Training reads a prepared folder with
\`data: { shards: DIR }\` (docs/data.md).`;

const PREPARE_USAGE = `usage: adabatch data prepare --config FILE [--set KEY=VALUE]... --out DIR [options]
       adabatch data prepare --input PATH... --tokenizer FILE --out DIR [options]

Tokenises a corpus of any size into token shards in DIR: uint16 tokens when the vocabulary fits,
else uint32, with each document's id (the train/validation split hashes it, as in memory), a
manifest, and the tokenizer. Parallel, streaming (memory does not grow with the corpus),
deterministic (the same bytes whatever --threads), and resumable: after Ctrl-C or a crash the same
command verifies the finished shards and carries on.

what to tokenise (one of):
  --config FILE         a training config: its data section names the corpus, on_bad_record and the
                        tokenizer (a file, or one trained and cached exactly as training would)
  --set KEY=VALUE       with --config: override a field (e.g. --set data.tokenizer.vocab=8192)
  --input PATH...       'brown', files, folders and quoted glob patterns ('data/*.parquet') of text,
                        JSONL and Parquet (as data.corpus.paths; JSONL and text also .gz or .zst),
                        and ready-made token files: *.bin with llm.c's header (GPT-2 uint16 or
                        Llama 3 uint32), else nanoGPT's raw uint16 tokens; documents are cut at the
                        BOS/EOS tokens. Inputs are read in the order given.
  --text-field NAME     the JSONL field or Parquet column holding the text (default text)
  --on-bad-record P     fail (default: stop at a malformed record, naming file and line or row) or
                        skip (leave it out, reporting a count per file)
  --tokenizer FILE      a Hugging Face tokenizer.json or a model folder holding one; required for
                        text, and for token files it gives the vocabulary and the BOS/EOS ids
  --bos-token, --eos-token NAME
                        name the BOS/EOS tokens (default: tokenizer_config.json, then known names)
  --vocab N, --eos-id ID, --bos-id ID
                        token files without a tokenizer: the vocabulary size (ids must be below it)
                        and the separator ids (--bos-id defaults to --eos-id)

output:
  --out DIR             the shard folder: created, or resumed when it holds an unfinished prepare
                        of the same inputs and settings
  --shard-tokens N      tokens per shard (default 100M; suffixes k, M, G); a shard ends with the
                        document that fills it, so documents are never split
  --threads N           tokenizing worker threads (default: the number of cores, ${availableParallelism()} here)
  --overwrite           replace DIR's shards when they were prepared from other inputs or settings`;

const VERIFY_USAGE = `usage: adabatch data verify DIR

Checks a prepared shard folder completely: the manifest, the tokenizer's hash, and for every shard
its header, index hash, every token block's CRC-32 and every id against the vocabulary. Training
checks the headers and indexes when it opens the folder and each block as it reads it; this reads
everything at once. Exits 2 naming the first damaged file.`;

type Options = NonNullable<ParseArgsConfig['options']>;

function parse(argv: string[], options: Options, sub: string, usage: string): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, string | boolean | string[] | undefined>, positionals: r.positionals };
  } catch (e) {
    throw new UserError(`data ${sub}: ${(e as Error).message}\n\n${usage}`);
  }
}

/** A count with an optional k/M/G suffix (powers of ten, as in "100M tokens"). */
function parseCount(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)$/.exec(value.trim());
  const n = m ? Number(m[1]) * ({ '': 1, k: 1e3, m: 1e6, g: 1e9 } as Record<string, number>)[m[2]!.toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new UserError(`${flag} must be a positive integer (suffixes k, M, G allowed), got '${value}'`);
  return n;
}

function nonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new UserError(`${flag} must be a non-negative integer, got '${value}'`);
  return n;
}

/** A corpus whose fingerprint is computed once (training a tokenizer and the plan both need it). */
function fingerprintOnce(corpus: Corpus): Corpus {
  let fingerprint: Promise<string> | null = null;
  return { description: corpus.description, documents: () => corpus.documents(), files: () => corpus.files(), fingerprint: () => (fingerprint ??= corpus.fingerprint()) };
}

interface Resolved {
  inputs: PrepareInput[];
  descriptions: string[];
  tokenizer: Tokenizer | null;
  special?: { vocabSize: number; bos: number; eos: number };
}

/** The inputs and tokenizer a config's data section names. */
async function fromConfig(file: string, sets: string[], log: (m: string) => void): Promise<Resolved> {
  const cfg = loadTrainConfig(file, sets).data;
  if ('synthetic' in cfg) throw new UserError(`data prepare: ${file} trains on synthetic data; there is no corpus to prepare`);
  if ('shards' in cfg) throw new UserError(`data prepare: ${file} already reads prepared shards (data.shards: ${cfg.shards})`);
  if ('mixture' in cfg) throw new UserError(`data prepare: ${file} already reads prepared shards (data.mixture: prepare each source on its own)`);
  const corpus = fingerprintOnce(openCorpus(cfg.corpus, { onBadRecord: cfg.on_bad_record, log }));
  const { tokenizer } = await resolveTokenizer(cfg, await corpus.fingerprint(), async () => corpus.documents(), log);
  return { inputs: [{ kind: 'corpus', corpus }], descriptions: [`${file}: data.corpus ${JSON.stringify(cfg.corpus)}`], tokenizer };
}

/** The inputs named on the command line, in order: runs of text sources become one corpus each. */
function fromFlags(values: Record<string, unknown>, inputs: string[], log: (m: string) => void): Resolved {
  const textField = values['text-field'] as string | undefined;
  const onBadRecord = (values['on-bad-record'] as string | undefined) ?? 'fail';
  if (onBadRecord !== 'fail' && onBadRecord !== 'skip') throw new UserError(`--on-bad-record must be fail or skip, got '${onBadRecord}'`);
  const resolved: PrepareInput[] = [];
  let paths: string[] = [];
  const flushPaths = (): void => {
    if (paths.length === 0) return;
    const spec: CorpusSpec = textField === undefined ? { paths } : { paths, text_field: textField };
    resolved.push({ kind: 'corpus', corpus: openCorpus(spec, { onBadRecord, log }) });
    paths = [];
  };
  for (const input of inputs) {
    if (input === 'brown') {
      flushPaths();
      resolved.push({ kind: 'corpus', corpus: openCorpus('brown') });
    } else if (isTokenFile(input)) {
      flushPaths();
      resolved.push({ kind: 'tokens', file: openTokenFile(input) });
    } else {
      paths.push(input);
    }
  }
  flushPaths();

  const tokenizerPath = values.tokenizer as string | undefined;
  if (tokenizerPath !== undefined) {
    for (const flag of ['vocab', 'bos-id', 'eos-id']) if (values[flag] !== undefined) throw new UserError(`data prepare: --${flag} is for token files without a tokenizer; --tokenizer gives the vocabulary and BOS/EOS`);
    const names: { bosToken?: string; eosToken?: string } = {};
    if (values['bos-token'] !== undefined) names.bosToken = values['bos-token'] as string;
    if (values['eos-token'] !== undefined) names.eosToken = values['eos-token'] as string;
    return { inputs: resolved, descriptions: inputs, tokenizer: loadTokenizer(tokenizerPath, names) };
  }
  if (resolved.some((i) => i.kind === 'corpus')) throw new UserError(`data prepare: text inputs need --tokenizer FILE (train one with \`adabatch tokenizer train\`, or use --config with data.tokenizer.vocab)\n\n${PREPARE_USAGE}`);
  if (values.vocab === undefined || values['eos-id'] === undefined) throw new UserError(`data prepare: token files need --tokenizer FILE, or --vocab N and --eos-id ID (the separator between documents)\n\n${PREPARE_USAGE}`);
  const vocabSize = parseCount(values.vocab as string, '--vocab');
  const eos = nonNegativeInt(values['eos-id'] as string, '--eos-id');
  const bos = values['bos-id'] === undefined ? eos : nonNegativeInt(values['bos-id'] as string, '--bos-id');
  if (bos >= vocabSize || eos >= vocabSize) throw new UserError(`data prepare: --bos-id and --eos-id must be below --vocab ${vocabSize}`);
  return { inputs: resolved, descriptions: inputs, tokenizer: null, special: { vocabSize, bos, eos } };
}

async function prepare(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      config: { type: 'string', short: 'c' },
      set: { type: 'string', multiple: true },
      input: { type: 'string', multiple: true },
      'text-field': { type: 'string' },
      'on-bad-record': { type: 'string' },
      tokenizer: { type: 'string', short: 't' },
      'bos-token': { type: 'string' },
      'eos-token': { type: 'string' },
      vocab: { type: 'string' },
      'bos-id': { type: 'string' },
      'eos-id': { type: 'string' },
      out: { type: 'string', short: 'o' },
      'shard-tokens': { type: 'string' },
      threads: { type: 'string' },
      overwrite: { type: 'boolean' },
    },
    'prepare',
    PREPARE_USAGE,
  );
  if (values.help) {
    console.log(PREPARE_USAGE);
    return 0;
  }
  // `--input a b c` leaves b and c as positionals: they are inputs too.
  const inputs = [...((values.input as string[] | undefined) ?? []), ...positionals];
  const config = values.config as string | undefined;
  if ((config === undefined) === (inputs.length === 0)) throw new UserError(`data prepare: give either --config FILE or --input PATH...\n\n${PREPARE_USAGE}`);
  if (config !== undefined) {
    const stray = ['text-field', 'on-bad-record', 'tokenizer', 'bos-token', 'eos-token', 'vocab', 'bos-id', 'eos-id'].filter((f) => values[f] !== undefined);
    if (stray.length > 0) throw new UserError(`data prepare: --${stray[0]} goes with --input; with --config the data section decides it (--set data.… to change it)`);
  } else if (values.set !== undefined) {
    throw new UserError('data prepare: --set changes fields of --config; with --input there is no config');
  }
  const out = values.out as string | undefined;
  if (out === undefined) throw new UserError(`data prepare: --out DIR is required\n\n${PREPARE_USAGE}`);
  const shardTokens = parseCount((values['shard-tokens'] as string | undefined) ?? '100M', '--shard-tokens');
  const threads = values.threads === undefined ? availableParallelism() : parseCount(values.threads as string, '--threads');

  const progress = new PrepareProgress(process.stderr);
  const log = (m: string): void => progress.log(m);
  const abort = new AbortController();
  const onSigint = (): void => {
    if (abort.signal.aborted) process.exit(130); // a second Ctrl-C: every file written so far is whole
    abort.abort();
    log('data prepare: stopping (Ctrl-C again to stop at once)…');
  };
  process.on('SIGINT', onSigint);
  try {
    const resolved = config !== undefined ? await fromConfig(config, (values.set as string[] | undefined) ?? [], log) : fromFlags(values, inputs, log);
    const r = await prepareShards({ out: resolve(out), ...resolved, threads, shardTokens, overwrite: values.overwrite === true, log, progress, signal: abort.signal });
    const m = r.manifest;
    if (!r.alreadyComplete) {
      const rate = r.seconds > 0 && r.textBytes > 0 ? `, ${(r.textBytes / 1e6 / r.seconds).toFixed(1)} MB/s of text on ${threads} thread${threads === 1 ? '' : 's'}` : '';
      const resumed = r.resumedShards > 0 ? ` (resumed after ${r.resumedShards} finished shards)` : '';
      console.error(`prepared ${out}: ${m.shards.length} shards, ${m.documents} documents, ${formatCount(m.tokens)} tokens (${m.plan.dtype}, vocab ${m.plan.vocab_size}) in ${r.seconds.toFixed(1)} s${rate}${resumed}`);
    }
    console.error(`train from it with the config section  data: { shards: ${out} }`);
    return 0;
  } catch (e) {
    if (abort.signal.aborted && e instanceof UserError) {
      console.error(`adabatch: ${e.message}`);
      return 130;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function verify(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {}, 'verify', VERIFY_USAGE);
  if (values.help) {
    console.log(VERIFY_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UserError(`data verify: give one shard folder\n\n${VERIFY_USAGE}`);
  const dir = resolve(positionals[0]!);
  const t0 = performance.now();
  // Opening checks the manifest, the tokenizer and every shard's header and index; then every token.
  const set = ShardSet.open(dir);
  const m = readManifest(dir);
  let bytes = 0;
  m.shards.forEach((entry, s) => {
    const path = resolve(dir, entry.file);
    checkShardMatches(verifyShardFile(path), s, entry, m, path);
    bytes += entry.bytes;
  });
  set.close();
  const secs = (performance.now() - t0) / 1000;
  console.log(`${dir}: ok — ${m.shards.length} shards, ${m.documents} documents, ${m.tokens} tokens (${m.plan.dtype}, vocab ${m.plan.vocab_size}, BOS ${m.plan.bos}, EOS ${m.plan.eos}, tokenizer ${set.tokenizer?.source ?? 'none'}), ${(bytes / 1e6).toFixed(1)} MB checked in ${secs.toFixed(1)} s`);
  return 0;
}

export function run(argv: string[]): Promise<number> {
  return runSubcommand('data', USAGE, { prepare, verify }, argv);
}

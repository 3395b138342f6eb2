/**
 * `adabatch data prepare`: tokenises a corpus of any size into token shards (shard-file.ts) with a
 * manifest (manifest.ts) that training reads without loading the tokens (shard-set.ts).
 *
 * Pipeline. The inputs' documents are read in order on this thread (sources/ streams them), grouped
 * into batches of ~256K characters, and tokenised by worker threads (tokenize-pool.ts); batches are
 * written in the order they were read, so the shards are byte-identical whatever the thread count.
 * At most 2 × threads + 1 batches are in flight, so memory holds those, one shard's index and the
 * current document, whatever the corpus's size. Ready-made token files (token-files.ts) take the
 * same queue without tokenising.
 *
 * Sharding. Documents go to shards in input order; a shard is closed after the document that brings
 * it to `shard_tokens` tokens, so no document is ever split across shards.
 *
 * Resume. Each shard is written to a temporary file, fsynced and renamed (shard-writer.ts), then the
 * manifest is rewritten atomically to list it. A restart with the same plan (inputs' content,
 * tokenizer, sizes: not the thread count) keeps the finished shards that verify in full (resume.ts),
 * reads the inputs again skipping the documents they hold (reading costs little next to
 * tokenising), checks that the last one skipped is the last one written, and goes on from the next
 * shard.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { RunLock } from '../../util/run-lock.js';
import { UserError } from '../../util/errors.js';
import type { Corpus } from '../corpus.js';
import { canonicalJson, sha256Hex } from '../json.js';
import { fileSha256 } from '../sources/fingerprint.js';
import { tokenDtype, type TokenArray } from '../token-cache.js';
import type { Tokenizer } from '../tokenizer.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, planHash, shardFileName, TOKENIZER_FILE, writeManifest, type Manifest, type ShardEntry, type ShardPlan } from './manifest.js';
import { InputPosition, type PrepareProgress } from './prepare-progress.js';
import { startOrResume } from './resume.js';
import { BLOCK_BYTES, SHARD_FORMAT_VERSION } from './shard-file.js';
import { ShardWriter } from './shard-writer.js';
import { TokenizePool } from './tokenize-pool.js';
import { tokenFileDocuments, type TokenFile, type TokenPiece } from './token-files.js';

/** One input, in order: a corpus of text (tokenised) or a file of ready-made tokens. */
export type PrepareInput = { kind: 'corpus'; corpus: Corpus } | { kind: 'tokens'; file: TokenFile };

export interface PrepareOptions {
  /** The shard folder (created; an unfinished one with the same plan is resumed). */
  out: string;
  inputs: PrepareInput[];
  /** The inputs as the user named them, recorded in the manifest. */
  descriptions: string[];
  /** Null only for token files without a tokenizer, which then need `special`. */
  tokenizer: Tokenizer | null;
  special?: { vocabSize: number; bos: number; eos: number };
  threads: number;
  /** A shard is closed once it holds at least this many tokens. */
  shardTokens: number;
  /** Replace a folder's shards that were prepared under another plan. */
  overwrite?: boolean;
  /** Messages (pass the progress bar's log, so they do not garble it). */
  log?: (msg: string) => void;
  progress?: PrepareProgress;
  /** Aborting (Ctrl-C) stops at the next document; finished shards stay, the current one is removed. */
  signal?: AbortSignal;
}

export interface PrepareSummary {
  manifest: Manifest;
  /** Shards found finished and verified (0 for a fresh start). */
  resumedShards: number;
  /** Nothing was left to do. */
  alreadyComplete: boolean;
  /** This run's work: UTF-8 bytes of text tokenised, tokens written, seconds. */
  textBytes: number;
  tokensWritten: number;
  seconds: number;
}

/** Texts per tokenizing batch: big enough to amortise a message, small enough to keep the queue light. */
const BATCH_CHARS = 1 << 18;
const BATCH_DOCS = 4096;
/** Bump when token files are read differently (their fingerprint then changes, and with it the plan). */
const TOKEN_FILE_READER_VERSION = 1;

export async function prepareShards(opts: PrepareOptions): Promise<PrepareSummary> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const special = opts.tokenizer ? { vocabSize: opts.tokenizer.vocabSize, bos: opts.tokenizer.bos, eos: opts.tokenizer.eos } : opts.special;
  if (special === undefined) throw new UserError('data prepare: a tokenizer is needed (or, for token files, the vocabulary size and the BOS/EOS ids)');
  if (opts.tokenizer === null && opts.inputs.some((i) => i.kind === 'corpus')) throw new UserError('data prepare: text inputs need a tokenizer (--tokenizer, or a config whose data.tokenizer names or trains one)');
  const plan: ShardPlan = {
    shard_format: SHARD_FORMAT_VERSION,
    inputs_fingerprint: await inputsFingerprint(opts.inputs),
    tokenizer_hash: opts.tokenizer?.hash() ?? null,
    vocab_size: special.vocabSize,
    dtype: tokenDtype(special.vocabSize),
    bos: special.bos,
    eos: special.eos,
    shard_tokens: opts.shardTokens,
    block_bytes: BLOCK_BYTES,
  };
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    complete: false,
    plan,
    plan_hash: planHash(plan),
    tokenizer: opts.tokenizer ? { file: TOKENIZER_FILE, bos_token: opts.tokenizer.token(opts.tokenizer.bos)!, eos_token: opts.tokenizer.token(opts.tokenizer.eos)! } : null,
    inputs: opts.descriptions,
    documents: 0,
    tokens: 0,
    shards: [],
  };

  mkdirSync(opts.out, { recursive: true });
  let lock: RunLock;
  try {
    lock = RunLock.acquire(opts.out);
  } catch (e) {
    throw new UserError(`data prepare: ${opts.out} is in use by another adabatch process (${(e as Error).message})`);
  }
  try {
    const resumed = startOrResume(opts.out, manifest, opts.overwrite ?? false, log);
    const summary = { manifest, resumedShards: manifest.shards.length, alreadyComplete: resumed.complete, textBytes: 0, tokensWritten: 0, seconds: 0 };
    // Written every time (the same bytes): a finished folder whose tokenizer.json was lost gets it back.
    if (opts.tokenizer) opts.tokenizer.save(join(opts.out, TOKENIZER_FILE));
    if (resumed.complete) {
      log(`data prepare: ${opts.out} is already complete (${manifest.shards.length} shards verified); nothing to do`);
    } else {
      writeManifest(opts.out, manifest);
      Object.assign(summary, await writeShards(opts, manifest, resumed.lastId, log));
      manifest.complete = true;
      writeManifest(opts.out, manifest);
    }
    summary.seconds = (performance.now() - t0) / 1000;
    return summary;
  } finally {
    lock.release();
  }
}

/** The inputs' content, in order: a corpus's own fingerprint, a token file's SHA-256 and format. */
async function inputsFingerprint(inputs: readonly PrepareInput[]): Promise<string> {
  const parts: unknown[] = [];
  for (const input of inputs) {
    if (input.kind === 'corpus') parts.push({ corpus: await input.corpus.fingerprint() });
    else parts.push({ tokens: { reader: TOKEN_FILE_READER_VERSION, id: input.file.id, format: input.file.format, sha256: await fileSha256(input.file.path) } });
  }
  return sha256Hex(canonicalJson(parts));
}

interface Batch {
  pieces: Promise<TokenPiece[]>;
  /** Text tokenised in the batch, and the input position after it (for progress). */
  textBytes: number;
  inputBytes: number;
}

/** Reads the inputs, skips what the manifest already holds, and writes the rest into new shards. */
async function writeShards(opts: PrepareOptions, manifest: Manifest, lastId: string | null, log: (msg: string) => void): Promise<{ textBytes: number; tokensWritten: number }> {
  const pool = opts.tokenizer && opts.inputs.some((i) => i.kind === 'corpus') ? new TokenizePool(opts.tokenizer, opts.threads) : null;
  const sink = new ShardSink(opts.out, manifest, (entry) => log(`data prepare: ${entry.file}: ${entry.documents} documents, ${entry.tokens} tokens`));
  const position = new InputPosition(opts.inputs.map((i) => ({ files: i.kind === 'corpus' ? i.corpus.files() : [{ path: i.file.path, bytes: i.file.bytes }] })));
  const pending: Batch[] = [];
  const maxPending = 2 * opts.threads + 1;
  let textBytes = 0;
  let tokensWritten = 0;
  let documentsWritten = 0;

  const writeOldest = async (): Promise<void> => {
    const batch = pending.shift()!;
    for (const piece of await batch.pieces) {
      sink.add(piece);
      tokensWritten += piece.tokens.length;
      if (piece.id !== null) documentsWritten++;
    }
    textBytes += batch.textBytes;
    opts.progress?.update({ inputBytes: batch.inputBytes, totalInputBytes: position.total, textBytes, tokens: tokensWritten, documents: documentsWritten, shards: manifest.shards.length });
  };
  const enqueue = async (batch: Batch): Promise<void> => {
    batch.pieces.catch(() => {}); // awaited in order below; a later batch's failure must not go unhandled meanwhile
    pending.push(batch);
    while (pending.length > maxPending) await writeOldest();
  };
  let texts: string[] = [];
  let ids: string[] = [];
  let chars = 0;
  const flushTexts = async (): Promise<void> => {
    if (texts.length === 0) return;
    const [batchIds, batchTexts] = [ids, texts];
    const bytes = batchTexts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
    const pieces = pool!.encode(batchTexts).then(({ tokens, lengths }) => splitBatch(tokens, lengths, batchIds));
    [texts, ids, chars] = [[], [], 0];
    await enqueue({ pieces, textBytes: bytes, inputBytes: position.bytes });
  };

  try {
    for await (const item of remainingDocuments(opts, manifest, lastId, position)) {
      if ('text' in item) {
        texts.push(item.text);
        ids.push(item.id);
        chars += item.text.length;
        if (chars >= BATCH_CHARS || texts.length >= BATCH_DOCS) await flushTexts();
      } else {
        await flushTexts(); // keeps input order
        await enqueue({ pieces: Promise.resolve([item]), textBytes: 0, inputBytes: position.bytes });
      }
    }
    await flushTexts();
    while (pending.length > 0) await writeOldest();
    sink.close();
  } catch (e) {
    sink.abort();
    throw e;
  } finally {
    await pool?.close();
    opts.progress?.finish();
  }
  return { textBytes, tokensWritten };
}

/**
 * The inputs' documents in order — texts to tokenise, or pieces of ready-made tokens — after the
 * ones the manifest's shards already hold, which are read but not returned. The last one skipped
 * must be the last one written: a check that the inputs are still what the shards were made from.
 */
async function* remainingDocuments(opts: PrepareOptions, manifest: Manifest, lastId: string | null, position: InputPosition): AsyncGenerator<{ id: string; text: string } | TokenPiece> {
  const plan = manifest.plan;
  const skip = manifest.documents;
  let seen = 0;
  /** Counts a finished document; true while it is one the shards already hold. */
  const skipped = (id: string): boolean => {
    if (seen++ >= skip) return false;
    if (seen === skip) {
      if (id !== lastId) throw new UserError(`data prepare: cannot resume ${opts.out}: document ${skip - 1} of the inputs is ${id}, but the last finished shard ends with ${lastId} (the inputs changed while their fingerprint did not?); pass --overwrite to start again`);
      opts.progress?.start(position.bytes);
    }
    return true;
  };
  if (skip === 0) opts.progress?.start(0);
  for (const [i, input] of opts.inputs.entries()) {
    position.startInput(i);
    if (input.kind === 'corpus') {
      for await (const doc of input.corpus.documents()) {
        if (opts.signal?.aborted) throw interrupted(opts.out, manifest);
        position.document(doc.file, doc.text.length);
        if (!skipped(doc.id)) yield { id: doc.id, text: doc.text };
      }
    } else {
      for (const { piece, position: at } of tokenFileDocuments(input.file, { vocabSize: plan.vocab_size, width: plan.dtype === 'uint16' ? 2 : 4, separators: [plan.bos, plan.eos] })) {
        if (opts.signal?.aborted) throw interrupted(opts.out, manifest);
        position.tokenFile(at);
        // A piece before a document's last belongs to a skipped document while fewer than `skip` are done.
        if (piece.id === null ? seen >= skip : !skipped(piece.id)) yield piece;
      }
    }
  }
  if (seen < skip) throw new UserError(`data prepare: cannot resume ${opts.out}: its shards hold ${skip} documents but the inputs have only ${seen}; pass --overwrite to start again`);
}

function interrupted(out: string, manifest: Manifest): UserError {
  return new UserError(`data prepare interrupted: ${manifest.shards.length} finished shards are kept in ${out}; run the same command again to resume`);
}

/** A tokenised batch as one piece per document (views into the batch's array). */
function splitBatch(tokens: TokenArray, lengths: Uint32Array, ids: readonly string[]): TokenPiece[] {
  const pieces: TokenPiece[] = [];
  let at = 0;
  for (let i = 0; i < ids.length; i++) {
    pieces.push({ tokens: tokens.subarray(at, at + lengths[i]!), id: ids[i]! });
    at += lengths[i]!;
  }
  return pieces;
}

/** Writes documents into consecutive shards, closing each at the plan's size, recording each in the manifest. */
class ShardSink {
  private writer: ShardWriter | null = null;

  constructor(
    private readonly out: string,
    private readonly manifest: Manifest,
    private readonly onShard: (entry: ShardEntry) => void,
  ) {}

  add(piece: TokenPiece): void {
    const plan = this.manifest.plan;
    const shard = this.manifest.shards.length;
    this.writer ??= new ShardWriter(join(this.out, shardFileName(shard)), { width: plan.dtype === 'uint16' ? 2 : 4, vocabSize: plan.vocab_size, blockBytes: plan.block_bytes, shard, planHash: Buffer.from(this.manifest.plan_hash, 'hex') });
    this.writer.add(piece.tokens);
    if (piece.id === null) return;
    this.writer.endDocument(piece.id);
    if (this.writer.tokens >= plan.shard_tokens) this.close();
  }

  /** Finishes the open shard, if any, and lists it in the manifest. */
  close(): void {
    if (this.writer === null) return;
    const entry = this.writer.finish();
    this.writer = null;
    this.manifest.shards.push(entry);
    this.manifest.documents += entry.documents;
    this.manifest.tokens += entry.tokens;
    writeManifest(this.out, this.manifest);
    this.onShard(entry);
  }

  abort(): void {
    this.writer?.abort();
    this.writer = null;
  }
}

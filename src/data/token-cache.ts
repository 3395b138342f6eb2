/**
 * A tokenised corpus on disk, so the corpus is tokenised once per (inputs, tokenizer). Layout, all
 * little-endian:
 *
 *   0        8 bytes   magic "ADABTOK\0"
 *   8        u32       format version (TOKEN_CACHE_VERSION)
 *   12       u32       H: byte length of the JSON header
 *   16       H bytes   JSON header (TokenCacheHeader), then zero padding to a multiple of 8
 *   …        u64 × (num_docs + 1)   document offsets, in tokens (the last is num_tokens)
 *   …        num_tokens × u16 or u32   the tokens, documents back to back, no separators
 *
 * Reading checks everything (magic, version, sizes, header fields, SHA-256 of offsets and tokens,
 * monotone offsets, ids below vocab_size) and returns why a file is unusable instead of trusting it;
 * writing is atomic, so a crash leaves the old file or none.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/files.js';
import { sha256Hex } from './json.js';

export const TOKEN_CACHE_VERSION = 1;
const MAGIC = Buffer.from('ADABTOK\0', 'latin1');
const PREFIX = 16;

export type TokenArray = Uint16Array | Uint32Array;

export interface TokenCacheHeader {
  vocab_size: number;
  dtype: 'uint16' | 'uint32';
  tokenizer_hash: string;
  inputs_fingerprint: string;
  num_docs: number;
  num_tokens: number;
  /** One id per document (they decide the train/validation split). */
  doc_ids: string[];
  /** SHA-256 (hex) of the offsets and tokens sections. */
  payload_sha256: string;
}

export interface TokenizedCorpus {
  docIds: string[];
  /** num_docs + 1 offsets into tokens: document d is tokens[offsets[d], offsets[d+1]). */
  offsets: Float64Array;
  tokens: TokenArray;
  vocabSize: number;
}

/** uint16 while every id fits, else uint32. */
export function tokenDtype(vocabSize: number): 'uint16' | 'uint32' {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

function checkHost(): void {
  if (endianness() !== 'LE') throw new Error('token cache files are little-endian; this host is big-endian');
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

export function writeTokenCache(path: string, corpus: TokenizedCorpus, ids: { tokenizerHash: string; inputsFingerprint: string }): void {
  checkHost();
  const dtype = tokenDtype(corpus.vocabSize);
  if ((dtype === 'uint16') !== corpus.tokens instanceof Uint16Array) throw new Error(`tokens must be a ${dtype} array for vocab ${corpus.vocabSize}`);
  const numDocs = corpus.docIds.length;
  if (corpus.offsets.length !== numDocs + 1) throw new Error('offsets must have num_docs + 1 entries');
  const offsets = new BigUint64Array(numDocs + 1);
  for (let d = 0; d <= numDocs; d++) offsets[d] = BigInt(corpus.offsets[d]!);
  const offsetBytes = new Uint8Array(offsets.buffer);
  const tokenBytes = new Uint8Array(corpus.tokens.buffer, corpus.tokens.byteOffset, corpus.tokens.byteLength);
  const payloadHash = createHash('sha256').update(offsetBytes).update(tokenBytes).digest('hex');
  const header: TokenCacheHeader = {
    vocab_size: corpus.vocabSize,
    dtype,
    tokenizer_hash: ids.tokenizerHash,
    inputs_fingerprint: ids.inputsFingerprint,
    num_docs: numDocs,
    num_tokens: corpus.tokens.length,
    doc_ids: corpus.docIds,
    payload_sha256: payloadHash,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const head = Buffer.alloc(align8(PREFIX + json.length));
  MAGIC.copy(head, 0);
  head.writeUInt32LE(TOKEN_CACHE_VERSION, 8);
  head.writeUInt32LE(json.length, 12);
  json.copy(head, PREFIX);
  writeFileAtomic(path, [head, offsetBytes, tokenBytes]);
}

export type TokenCacheRead = { ok: true; corpus: TokenizedCorpus } | { ok: false; reason: string };

/** Reads and fully checks a cache file against what it must hold; never throws for a bad file. */
export function readTokenCache(path: string, expect: { tokenizerHash: string; inputsFingerprint: string; vocabSize: number }): TokenCacheRead {
  checkHost();
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    return { ok: false, reason: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not built yet' : `unreadable: ${(e as Error).message}` };
  }
  const bad = (reason: string): TokenCacheRead => ({ ok: false, reason });
  if (buf.length < PREFIX || !buf.subarray(0, 8).equals(MAGIC)) return bad('not a token cache file (bad magic)');
  const version = buf.readUInt32LE(8);
  if (version !== TOKEN_CACHE_VERSION) return bad(`format version ${version}, expected ${TOKEN_CACHE_VERSION}`);
  const jsonLength = buf.readUInt32LE(12);
  if (PREFIX + jsonLength > buf.length) return bad('truncated header');
  let h: TokenCacheHeader;
  try {
    h = JSON.parse(buf.toString('utf8', PREFIX, PREFIX + jsonLength)) as TokenCacheHeader;
  } catch {
    return bad('corrupt header');
  }
  if (typeof h !== 'object' || h === null) return bad('corrupt header');
  if (h.tokenizer_hash !== expect.tokenizerHash) return bad('made with another tokenizer');
  if (h.inputs_fingerprint !== expect.inputsFingerprint) return bad('made from other inputs');
  if (h.vocab_size !== expect.vocabSize || h.dtype !== tokenDtype(expect.vocabSize)) return bad('vocabulary size or token type differs');
  if (!Number.isSafeInteger(h.num_docs) || !Number.isSafeInteger(h.num_tokens) || h.num_docs < 0 || h.num_tokens < 0) return bad('corrupt header counts');
  if (!Array.isArray(h.doc_ids) || h.doc_ids.length !== h.num_docs || !h.doc_ids.every((id) => typeof id === 'string')) return bad('corrupt document ids');
  const width = h.dtype === 'uint16' ? 2 : 4;
  const offsetsAt = align8(PREFIX + jsonLength);
  const tokensAt = offsetsAt + 8 * (h.num_docs + 1);
  const end = tokensAt + width * h.num_tokens;
  if (buf.length !== end) return bad(buf.length < end ? `truncated (${buf.length} of ${end} bytes)` : `trailing bytes (${buf.length}, expected ${end})`);
  if (sha256Hex(buf.subarray(offsetsAt, end)) !== h.payload_sha256) return bad('checksum mismatch (corrupt)');

  // Copy into fresh, aligned arrays: a Buffer's byteOffset need not be a multiple of 8.
  const rawOffsets = new BigUint64Array(h.num_docs + 1);
  new Uint8Array(rawOffsets.buffer).set(buf.subarray(offsetsAt, tokensAt));
  const offsets = Float64Array.from(rawOffsets, (x) => Number(x));
  if (offsets[0] !== 0 || offsets[h.num_docs] !== h.num_tokens) return bad('offsets do not span the tokens');
  for (let d = 0; d < h.num_docs; d++) if (offsets[d + 1]! < offsets[d]!) return bad('offsets out of order');
  const tokens = width === 2 ? new Uint16Array(h.num_tokens) : new Uint32Array(h.num_tokens);
  new Uint8Array(tokens.buffer).set(buf.subarray(tokensAt, end));
  for (let i = 0; i < tokens.length; i++) if (tokens[i]! >= h.vocab_size) return bad(`token id ${tokens[i]} ≥ vocab size ${h.vocab_size}`);
  return { ok: true, corpus: { docIds: h.doc_ids, offsets, tokens, vocabSize: h.vocab_size } };
}

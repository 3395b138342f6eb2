/**
 * Ready-made token files as `data prepare` inputs, read in chunks (never whole):
 *
 * - llm.c shards (karpathy/llm.c, dev/data/data_common.py `write_datafile`): a header of 256 int32
 *   (magic, version, token count, the rest 0), then the tokens. GPT-2 files: magic 20240520,
 *   version 1, uint16 tokens; Llama 3 files: magic 20240801, version 7, uint32 tokens. The file size
 *   must be exactly 1024 + count × width, as llm.c's dataloader checks.
 * - nanoGPT's `train.bin` / `val.bin` (data/*\/prepare.py: `np.uint16` ids written with `tofile`):
 *   raw uint16 tokens, no header. Any `.bin` without llm.c's header is read as this.
 *
 * Neither format has document boundaries, only separator tokens between documents (llm.c puts
 * GPT-2's <|endoftext|> or Llama 3's <|begin_of_text|> before each; nanoGPT appends <|endoftext|>
 * after each). So the stream is cut into documents at the BOS and EOS tokens, which are dropped
 * (packing puts them back: <bos> doc <eos>); empty pieces are skipped. Documents are named
 * `<file name>:<n>`, n counting from 0, so the document-level split works as for text. Every id must
 * be below the vocabulary: the error names the file and the token's position.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { UserError } from '../../util/errors.js';
import type { TokenArray } from '../token-cache.js';

export type TokenFileFormat = 'llm.c' | 'nanogpt';

export interface TokenFile {
  path: string;
  /** The file's name: documents are `<id>:<n>`. */
  id: string;
  format: TokenFileFormat;
  /** Bytes per token in the file. */
  width: 2 | 4;
  headerBytes: number;
  tokens: number;
  bytes: number;
}

/** llm.c's known headers: magic → (version, token width). */
const LLMC = new Map<number, { version: number; width: 2 | 4; model: string }>([
  [20240520, { version: 1, width: 2, model: 'GPT-2' }],
  [20240801, { version: 7, width: 4, model: 'Llama 3' }],
]);
const LLMC_HEADER_BYTES = 256 * 4;

/** Whether a path names a token file (by its extension) rather than a text source. */
export const isTokenFile = (path: string): boolean => path.endsWith('.bin');

/** Opens a token file's description: the format from its header, the sizes checked. */
export function openTokenFile(path: string): TokenFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `token file ${path} does not exist` : `cannot read token file ${path}: ${(e as Error).message}`);
  }
  try {
    const bytes = fstatSync(fd).size;
    const head = Buffer.alloc(12);
    const got = bytes >= LLMC_HEADER_BYTES ? readSync(fd, head, 0, 12, 0) : 0;
    const known = got === 12 ? LLMC.get(head.readInt32LE(0)) : undefined;
    const base = { path, id: basename(path), bytes };
    if (known !== undefined) {
      const version = head.readInt32LE(4);
      if (version !== known.version) throw new UserError(`llm.c token file ${path}: version ${version} with magic ${head.readInt32LE(0)}; known are version 1 (magic 20240520, uint16, GPT-2) and version 7 (magic 20240801, uint32, Llama 3)`);
      const tokens = head.readInt32LE(8);
      const expected = LLMC_HEADER_BYTES + tokens * known.width;
      if (tokens < 0 || bytes !== expected) throw new UserError(`llm.c token file ${path}: its header says ${tokens} ${known.width === 2 ? 'uint16' : 'uint32'} tokens (${expected} bytes), but the file has ${bytes} bytes (truncated or not an llm.c file)`);
      return { ...base, format: 'llm.c', width: known.width, headerBytes: LLMC_HEADER_BYTES, tokens };
    }
    if (bytes % 2 !== 0) throw new UserError(`token file ${path}: not an llm.c shard (no magic 20240520 or 20240801) and ${bytes} bytes, an odd size, so not nanoGPT's raw uint16 tokens either`);
    if (bytes === 0) throw new UserError(`token file ${path} is empty`);
    return { ...base, format: 'nanogpt', width: 2, headerBytes: 0, tokens: bytes / 2 };
  } finally {
    closeSync(fd);
  }
}

/** A piece of a document's tokens; `id` is set on the last piece of each document. */
export interface TokenPiece {
  tokens: TokenArray;
  id: string | null;
}

export interface TokenFileReadOptions {
  vocabSize: number;
  /** The token width of the shards being written (the file's tokens are widened or narrowed to it). */
  width: 2 | 4;
  /** Tokens that separate documents (BOS and EOS): dropped, and cut the stream. */
  separators: readonly number[];
  /** Tokens read per chunk (a document longer than this comes in several pieces). */
  chunkTokens?: number;
}

/**
 * The documents of a token file, as pieces in order, with the file position after each (for progress).
 * Memory: one chunk, whatever the file's size or its documents' lengths.
 */
export function* tokenFileDocuments(file: TokenFile, opts: TokenFileReadOptions): Generator<{ piece: TokenPiece; position: number }> {
  const chunkTokens = opts.chunkTokens ?? 1 << 20;
  const raw = new Uint8Array(chunkTokens * file.width);
  const fd = openSync(file.path, 'r');
  const [sepA, sepB] = [opts.separators[0] ?? -1, opts.separators[1] ?? opts.separators[0] ?? -1];
  let doc = 0;
  let open = false; // the current document has tokens already emitted
  try {
    for (let at = 0; at < file.tokens; ) {
      const n = Math.min(chunkTokens, file.tokens - at);
      const want = n * file.width;
      for (let got = 0; got < want; ) {
        const r = readSync(fd, raw, got, want - got, file.headerBytes + at * file.width + got);
        if (r === 0) throw new UserError(`token file ${file.path} shrank while being read`);
        got += r;
      }
      const chunk = file.width === 2 ? new Uint16Array(raw.buffer, 0, n) : new Uint32Array(raw.buffer, 0, n);
      let start = 0;
      for (let i = 0; i <= n; i++) {
        const t = i < n ? chunk[i]! : -1;
        if (i < n && t >= opts.vocabSize) throw new UserError(`token file ${file.path}: token ${at + i} is ${t}, not below the vocabulary size ${opts.vocabSize} (were these tokens made with this tokenizer?)`);
        const cut = t === sepA || t === sepB;
        if (!cut && i < n) continue;
        const position = file.headerBytes + (at + i) * file.width;
        if (i > start) {
          const tokens = convert(chunk.subarray(start, i), opts.width);
          yield { piece: { tokens, id: cut ? `${file.id}:${doc}` : null }, position };
          open = !cut;
          if (cut) doc++;
        } else if (cut && open) {
          // A separator right at a chunk start ends the document carried over from the last chunk.
          yield { piece: { tokens: convert(chunk.subarray(0, 0), opts.width), id: `${file.id}:${doc++}` }, position };
          open = false;
        }
        start = i + 1;
      }
      at += n;
    }
    if (open) yield { piece: { tokens: convert(new Uint16Array(0), opts.width), id: `${file.id}:${doc++}` }, position: file.bytes };
  } finally {
    closeSync(fd);
  }
  if (doc === 0) throw new UserError(`token file ${file.path} holds no document (only separator tokens)`);
}

/** A copy of the tokens in the shards' width (the chunk buffer is reused). */
function convert(tokens: Uint16Array | Uint32Array, width: 2 | 4): TokenArray {
  return width === 2 ? Uint16Array.from(tokens) : Uint32Array.from(tokens);
}

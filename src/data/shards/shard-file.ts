/**
 * One token shard file of a `data prepare` output (shard-00000.bin, …). Little-endian throughout:
 *
 *   0      128 B           header (below)
 *   128    T × w           the tokens, documents back to back without separators (w = 2: uint16, 4: uint32)
 *   I      u64 × (D + 1)   where each document starts, in tokens (0 … T); I = align8(128 + T·w)
 *          u32 × (D + 1)   where each document's id starts in the id bytes
 *          id_bytes        the ids, UTF-8, back to back: they decide the train/validation split (split.ts)
 *          pad to 8
 *          u32 × B         CRC-32 of each block of block_bytes token bytes, B = ⌈T·w / block_bytes⌉
 *
 *   header  0  "ADABSHRD"   8 u32 format version   12 u32 token width w   16 u64 T tokens   24 u64 D documents
 *          32 u64 I        40 u64 id_bytes        48 u32 block_bytes     52 u32 vocab size  56 u32 shard number
 *          60 u32 0        64 32 B plan hash (SHA-256 of the prepare plan: ties the shard to its manifest)
 *          96 32 B index hash: SHA-256 of header bytes [0, 96) and of everything from I to the end
 *
 * Two checksums, because the two parts are read differently. The header and index are small and read
 * whole when a shard is opened, so they carry a SHA-256, which the manifest also records: a shard from
 * another prepare, a truncated or padded file, a damaged index are refused at open. The tokens are
 * the bulk (200 MB per 100M-token shard) and training reads them a window at a time, so they carry a
 * CRC-32 per 16 KiB block, checked on every read (zlib's CRC-32: 1.4 GB/s at this block size on the
 * build machine, ~11 µs a block): every token handed to training has been checked, and opening a
 * corpus costs nothing per token. Hashing whole shards at open would read the entire corpus at every
 * start; sampling a few blocks would miss damage elsewhere. The CRCs themselves sit in the index, so
 * the index hash in the manifest pins down every block.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { crc32 } from 'node:zlib';
import { UserError } from '../../util/errors.js';
import type { TokenArray } from '../token-cache.js';

export const SHARD_FORMAT_VERSION = 1;
export const SHARD_MAGIC = Buffer.from('ADABSHRD', 'latin1');
export const HEADER_BYTES = 128;
/** Token bytes per checksummed block: small enough that a window's read stays cheap. */
export const BLOCK_BYTES = 16384;
/** The header bytes the index hash covers (all but the hash itself). */
const HASHED_HEADER = 96;

export type TokenWidth = 2 | 4;

export interface ShardHeader {
  version: number;
  width: TokenWidth;
  tokens: number;
  documents: number;
  indexOffset: number;
  idBytes: number;
  blockBytes: number;
  vocabSize: number;
  shard: number;
  planHash: Buffer;
  indexHash: Buffer;
}

/** Where each part of a shard lies, from its counts. */
export interface ShardLayout {
  indexOffset: number;
  idOffsetsAt: number;
  idsAt: number;
  crcsAt: number;
  blocks: number;
  fileBytes: number;
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

export function shardLayout(h: Pick<ShardHeader, 'width' | 'tokens' | 'documents' | 'idBytes' | 'blockBytes'>): ShardLayout {
  const indexOffset = align8(HEADER_BYTES + h.tokens * h.width);
  const idOffsetsAt = indexOffset + 8 * (h.documents + 1);
  const idsAt = idOffsetsAt + 4 * (h.documents + 1);
  const crcsAt = align8(idsAt + h.idBytes);
  const blocks = Math.ceil((h.tokens * h.width) / h.blockBytes);
  return { indexOffset, idOffsetsAt, idsAt, crcsAt, blocks, fileBytes: crcsAt + 4 * blocks };
}

/** Token files are little-endian, and typed arrays use the host's order. */
export function checkLittleEndian(): void {
  if (endianness() !== 'LE') throw new UserError('token shards are little-endian; this host is big-endian');
}

export function encodeHeader(h: Omit<ShardHeader, 'indexHash' | 'indexOffset'>): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  SHARD_MAGIC.copy(b, 0);
  b.writeUInt32LE(h.version, 8);
  b.writeUInt32LE(h.width, 12);
  b.writeBigUInt64LE(BigInt(h.tokens), 16);
  b.writeBigUInt64LE(BigInt(h.documents), 24);
  b.writeBigUInt64LE(BigInt(shardLayout(h).indexOffset), 32);
  b.writeBigUInt64LE(BigInt(h.idBytes), 40);
  b.writeUInt32LE(h.blockBytes, 48);
  b.writeUInt32LE(h.vocabSize, 52);
  b.writeUInt32LE(h.shard, 56);
  h.planHash.copy(b, 64);
  return b;
}

/** The SHA-256 a shard's header stores and its manifest records: header bytes [0, 96) and the index. */
export function indexHash(header: Uint8Array, index: readonly Uint8Array[]): Buffer {
  const hash = createHash('sha256').update(header.subarray(0, HASHED_HEADER));
  for (const part of index) hash.update(part);
  return hash.digest();
}

/** A damaged or foreign shard: the error names the file, what is wrong, and what to do. */
export function shardError(path: string, what: string): UserError {
  return new UserError(`token shard ${path}: ${what}; it cannot be used (run the same \`adabatch data prepare\` again: it verifies the finished shards and rewrites this one)`);
}

function decodeHeader(b: Buffer, path: string): ShardHeader {
  if (b.length < HEADER_BYTES) throw shardError(path, `truncated (${b.length} bytes, shorter than the ${HEADER_BYTES}-byte header)`);
  if (!b.subarray(0, 8).equals(SHARD_MAGIC)) throw shardError(path, 'not a token shard (bad magic)');
  const version = b.readUInt32LE(8);
  if (version !== SHARD_FORMAT_VERSION) throw new UserError(`token shard ${path}: format version ${version}; this adabatch reads version ${SHARD_FORMAT_VERSION} (prepare the shards again with this version)`);
  const u64 = (at: number, what: string): number => {
    const v = b.readBigUInt64LE(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw shardError(path, `corrupt header (${what} ${v})`);
    return Number(v);
  };
  const width = b.readUInt32LE(12);
  if (width !== 2 && width !== 4) throw shardError(path, `corrupt header (token width ${width})`);
  const h: ShardHeader = {
    version,
    width,
    tokens: u64(16, 'token count'),
    documents: u64(24, 'document count'),
    indexOffset: u64(32, 'index offset'),
    idBytes: u64(40, 'id bytes'),
    blockBytes: b.readUInt32LE(48),
    vocabSize: b.readUInt32LE(52),
    shard: b.readUInt32LE(56),
    planHash: Buffer.from(b.subarray(64, 96)),
    indexHash: Buffer.from(b.subarray(96, 128)),
  };
  if (h.blockBytes === 0 || h.blockBytes % 4 !== 0) throw shardError(path, `corrupt header (block size ${h.blockBytes})`);
  if (h.indexOffset !== shardLayout(h).indexOffset) throw shardError(path, 'corrupt header (index offset does not match the token count)');
  return h;
}

/** Reads exactly `length` bytes at `position` (a short read means the file changed under us). */
export function readAt(fd: number, path: string, position: number, length: number, into?: Uint8Array): Uint8Array {
  const buf = into ?? new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw shardError(path, `truncated (reading bytes ${position}–${position + length})`);
    done += n;
  }
  return buf.subarray(0, length);
}

/** A shard's header and index, checked: exact file size, index hash; ids decoded on demand. */
export interface ShardIndex {
  header: ShardHeader;
  /** The hex index hash (what the manifest records). */
  indexSha256: string;
  /** D + 1 document starts, in tokens within the shard. */
  starts: Float64Array;
  crcs: Uint32Array;
  /** The id of document d (0 ≤ d < D). */
  idAt(d: number): string;
}

/** Reads and checks a shard's header and index from an open file. */
export function readShardIndex(fd: number, path: string): ShardIndex {
  checkLittleEndian();
  const size = fstatSync(fd).size;
  const headerBytes = readAt(fd, path, 0, Math.min(HEADER_BYTES, size));
  const header = decodeHeader(Buffer.from(headerBytes.buffer, headerBytes.byteOffset, headerBytes.byteLength), path);
  const layout = shardLayout(header);
  if (size !== layout.fileBytes) throw shardError(path, size < layout.fileBytes ? `truncated (${size} of ${layout.fileBytes} bytes)` : `${size - layout.fileBytes} bytes too many (${size}, expected ${layout.fileBytes})`);
  const index = readAt(fd, path, layout.indexOffset, size - layout.indexOffset);
  const hash = indexHash(headerBytes, [index]);
  if (!hash.equals(header.indexHash)) throw shardError(path, 'its header or index does not match its checksum (corrupt)');
  // Copies into fresh arrays: the typed views need aligned offsets, and the id bytes are not a multiple of 8.
  const at = (abs: number): number => abs - layout.indexOffset;
  const starts = Float64Array.from(new BigUint64Array(index.slice(0, at(layout.idOffsetsAt)).buffer), Number);
  const idOffsets = new Uint32Array(index.slice(at(layout.idOffsetsAt), at(layout.idsAt)).buffer);
  const ids = Buffer.from(index.buffer, index.byteOffset + at(layout.idsAt), header.idBytes);
  const crcs = new Uint32Array(index.slice(at(layout.crcsAt)).buffer);
  if (starts[0] !== 0 || starts[header.documents] !== header.tokens) throw shardError(path, 'corrupt index (document starts do not span the tokens)');
  for (let d = 0; d < header.documents; d++) {
    if (starts[d + 1]! < starts[d]!) throw shardError(path, `corrupt index (document ${d} ends before it starts)`);
    if (idOffsets[d + 1]! < idOffsets[d]!) throw shardError(path, `corrupt index (id ${d} ends before it starts)`);
  }
  if (idOffsets[0] !== 0 || idOffsets[header.documents] !== header.idBytes) throw shardError(path, 'corrupt index (ids do not span the id bytes)');
  return { header, indexSha256: hash.toString('hex'), starts, crcs, idAt: (d) => ids.toString('utf8', idOffsets[d]!, idOffsets[d + 1]!) };
}

/** Opens a shard for reading, or throws a UserError naming it. */
export function openShardFile(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `token shard ${path} is missing (the manifest lists it)` : `cannot read token shard ${path}: ${(e as Error).message}`);
  }
}

/**
 * Checks blocks of token bytes read from a shard: `bytes` starts at block `firstBlock` and holds
 * whole blocks (the shard's last block may be short). Throws naming the file and the tokens.
 */
export function checkBlocks(bytes: Uint8Array, firstBlock: number, index: Pick<ShardIndex, 'crcs' | 'header'>, path: string): void {
  const { blockBytes, width } = index.header;
  for (let at = 0, b = firstBlock; at < bytes.length; at += blockBytes, b++) {
    if (crc32(bytes.subarray(at, at + blockBytes)) !== index.crcs[b]) {
      const first = (b * blockBytes) / width;
      throw shardError(path, `tokens ${first}–${first + blockBytes / width - 1} (block ${b}) do not match their checksum (corrupt)`);
    }
  }
}

/** Token ids must be below the vocabulary: the model indexes its embedding with them. */
export function checkIds(tokens: TokenArray, vocabSize: number, path: string, firstToken: number): void {
  if (tokens instanceof Uint16Array && vocabSize >= 65536) return;
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i]! >= vocabSize) throw shardError(path, `token ${firstToken + i} is ${tokens[i]}, not below the vocabulary size ${vocabSize}`);
  }
}

/** A view of token bytes as the shard's token type (the bytes must start at an aligned offset). */
export function tokenView(bytes: Uint8Array, width: TokenWidth): TokenArray {
  return width === 2 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** Reads every block of a shard and checks its CRC and token ids: what resuming and `data verify` do. */
export function verifyShardTokens(fd: number, path: string, index: ShardIndex): void {
  const { header } = index;
  const total = header.tokens * header.width;
  const chunk = header.blockBytes * 256;
  const buf = new Uint8Array(chunk);
  for (let at = 0; at < total; at += chunk) {
    const bytes = readAt(fd, path, HEADER_BYTES + at, Math.min(chunk, total - at), buf);
    checkBlocks(bytes, at / header.blockBytes, index, path);
    checkIds(tokenView(bytes, header.width), header.vocabSize, path, at / header.width);
  }
}

/** Header, index and every token of one shard file, checked; the file is closed again. */
export function verifyShardFile(path: string): ShardIndex {
  const fd = openShardFile(path);
  try {
    const index = readShardIndex(fd, path);
    verifyShardTokens(fd, path, index);
    return index;
  } finally {
    closeSync(fd);
  }
}

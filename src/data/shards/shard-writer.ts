/**
 * Writes one token shard (layout in shard-file.ts) as documents stream in: tokens go to a temporary
 * file as they arrive, a block at a time with its CRC, so a document of any length never sits in
 * memory; the index (a few bytes per document) is kept until `finish`, which appends it, fills in the
 * header, fsyncs and renames the file into place. A crash at any point leaves either the finished
 * shard or a temporary file that the next `data prepare` removes — never a partial shard under a
 * shard's name.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { fileError, fsyncDir } from '../../util/files.js';
import type { TokenArray } from '../token-cache.js';
import { checkLittleEndian, encodeHeader, HEADER_BYTES, indexHash, SHARD_FORMAT_VERSION, shardLayout, type TokenWidth } from './shard-file.js';

/** What a finished shard is, as the manifest records it. */
export interface WrittenShard {
  file: string;
  documents: number;
  tokens: number;
  bytes: number;
  index_sha256: string;
}

export interface ShardWriterOptions {
  width: TokenWidth;
  vocabSize: number;
  blockBytes: number;
  shard: number;
  planHash: Buffer;
}

/** Blocks buffered before a write: 1 MiB writes at 16 KiB blocks. */
const BLOCKS_PER_WRITE = 64;

/** The temporary name a shard is written under; `isTemporary` recognises it (and writeFileAtomic's). */
function temporaryName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp~${process.pid}~${randomBytes(4).toString('hex')}`);
}

export const isTemporary = (name: string): boolean => name.startsWith('.') && name.includes('.tmp~');

export class ShardWriter {
  private readonly tmp: string;
  private fd: number | null;
  private readonly out: Uint8Array;
  private outUsed = 0;
  private readonly crcs: number[] = [];
  private readonly starts: number[] = [0];
  private readonly ids: Buffer[] = [];
  private idBytes = 0;
  private tokenCount = 0;

  constructor(
    readonly path: string,
    private readonly opts: ShardWriterOptions,
  ) {
    checkLittleEndian();
    this.tmp = temporaryName(path);
    this.out = new Uint8Array(opts.blockBytes * BLOCKS_PER_WRITE);
    try {
      this.fd = openSync(this.tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    } catch (e) {
      throw fileError('write', path, e);
    }
    this.write(new Uint8Array(HEADER_BYTES)); // filled in by finish()
  }

  /** Tokens written so far. */
  get tokens(): number {
    return this.tokenCount;
  }

  /** Appends tokens of the current document (a document may come in several pieces). */
  add(tokens: TokenArray): void {
    if (tokens.BYTES_PER_ELEMENT !== this.opts.width) throw new Error(`shard writer: ${tokens.BYTES_PER_ELEMENT * 8}-bit tokens given to a ${this.opts.width * 8}-bit shard`);
    const bytes = new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength);
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(bytes.length - at, this.out.length - this.outUsed);
      this.out.set(bytes.subarray(at, at + n), this.outUsed);
      this.outUsed += n;
      at += n;
      if (this.outUsed === this.out.length) this.flush();
    }
    this.tokenCount += tokens.length;
  }

  /** Ends the current document, naming it. */
  endDocument(id: string): void {
    const bytes = Buffer.from(id, 'utf8');
    this.ids.push(bytes);
    this.idBytes += bytes.length;
    if (this.idBytes > 0xffffffff) throw new Error(`shard ${this.path}: more than 4 GiB of document ids`);
    this.starts.push(this.tokenCount);
  }

  /** Writes the index and header, fsyncs and renames the shard into place. */
  finish(): WrittenShard {
    const documents = this.starts.length - 1;
    const lastStart = this.starts[documents]!;
    if (lastStart !== this.tokenCount) throw new Error(`shard writer: ${this.tokenCount - lastStart} tokens after the last document`);
    this.flush();
    const header = encodeHeader({ version: SHARD_FORMAT_VERSION, width: this.opts.width, tokens: this.tokenCount, documents, idBytes: this.idBytes, blockBytes: this.opts.blockBytes, vocabSize: this.opts.vocabSize, shard: this.opts.shard, planHash: this.opts.planHash });
    const layout = shardLayout({ width: this.opts.width, tokens: this.tokenCount, documents, idBytes: this.idBytes, blockBytes: this.opts.blockBytes });
    const tokenEnd = HEADER_BYTES + this.tokenCount * this.opts.width;
    const idOffsets = new Uint32Array(documents + 1);
    for (let d = 0, at = 0; d < documents; d++) idOffsets[d + 1] = at += this.ids[d]!.length;
    const index: Uint8Array[] = [
      new Uint8Array(layout.indexOffset - tokenEnd),
      new Uint8Array(BigUint64Array.from(this.starts, BigInt).buffer),
      new Uint8Array(idOffsets.buffer),
      ...this.ids,
      new Uint8Array(layout.crcsAt - layout.idsAt - this.idBytes),
      new Uint8Array(Uint32Array.from(this.crcs).buffer),
    ];
    // The hash covers the index from I on: the padding before it belongs to the tokens.
    const hash = indexHash(header, index.slice(1));
    hash.copy(header, 96);
    for (const part of index) this.write(part);
    const fd = this.fd!;
    try {
      writeSync(fd, header, 0, header.length, 0);
      fsyncSync(fd);
      closeSync(fd);
      this.fd = null;
      renameSync(this.tmp, this.path);
      fsyncDir(dirname(this.path));
    } catch (e) {
      this.abort();
      throw fileError('write', this.path, e);
    }
    return { file: basename(this.path), documents, tokens: this.tokenCount, bytes: layout.fileBytes, index_sha256: hash.toString('hex') };
  }

  /** Closes and removes the temporary file (an interrupted or failed shard). */
  abort(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    rmSync(this.tmp, { force: true });
  }

  /** Writes the buffered token bytes, taking the CRC of each block (the last may be partial: only at finish). */
  private flush(): void {
    const { blockBytes } = this.opts;
    for (let at = 0; at < this.outUsed; at += blockBytes) this.crcs.push(crc32(this.out.subarray(at, Math.min(at + blockBytes, this.outUsed))));
    this.write(this.out.subarray(0, this.outUsed));
    this.outUsed = 0;
  }

  private write(bytes: Uint8Array): void {
    try {
      for (let at = 0; at < bytes.length; ) at += writeSync(this.fd!, bytes, at, bytes.length - at);
    } catch (e) {
      this.abort();
      throw fileError('write', this.path, e);
    }
  }
}

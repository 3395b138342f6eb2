/**
 * A prepared token shard folder opened for reading, without loading its tokens: training reads the
 * windows it needs with positioned reads, so memory does not grow with the corpus. What it keeps is
 * the manifest, where each document starts (8 bytes per document) and each shard's block CRCs
 * (4 bytes per 16 KiB of tokens); a handful of file descriptors stay open (least recently used).
 *
 * Opening checks the manifest (complete, consistent), the tokenizer beside it (its hash), and every
 * shard's header and index against the manifest (sizes, counts, plan hash, index SHA-256). Reading
 * checks the CRC of every block it returns and that every id is below the vocabulary, so no damaged
 * token reaches training: a damaged shard is an error naming the file and the tokens.
 *
 * One object per source: `documents`, `tokenCount`, `read(doc, offset, count)`, `documentIds()` —
 * what a mixture of several folders needs to draw from each.
 */
import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../util/errors.js';
import type { TokenSource } from '../sampler.js';
import type { TokenArray } from '../token-cache.js';
import { loadTokenizer, type Tokenizer } from '../tokenizer.js';
import { checkShardMatches, readManifest, TOKENIZER_FILE, type Manifest, type ShardEntry } from './manifest.js';
import { checkBlocks, checkIds, HEADER_BYTES, openShardFile, readAt, readShardIndex, tokenView, type ShardIndex, type TokenWidth } from './shard-file.js';

/** File descriptors kept open at once (a corpus may have thousands of shards). */
const MAX_OPEN_FILES = 16;

interface OpenedShard {
  path: string;
  entry: ShardEntry;
  /** What reading needs of the index: the header and the block CRCs. */
  index: Pick<ShardIndex, 'header' | 'crcs'>;
}

/** Closes a set's files when it is garbage-collected without close(). */
const closer = new FinalizationRegistry((fds: Map<number, number>) => {
  for (const fd of fds.values()) closeSync(fd);
});

export class ShardSet implements TokenSource {
  readonly manifest: Manifest;
  readonly tokenizer: Tokenizer | null;
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  /** Global document starts, in tokens: document d is tokens [documentStarts[d], documentStarts[d + 1]). */
  readonly documentStarts: Float64Array;
  private readonly width: TokenWidth;
  private readonly shards: OpenedShard[];
  /** Where each shard starts in the global token sequence (S + 1 entries). */
  private readonly shardStarts: Float64Array;
  /** Open descriptors by shard, least recently used first. */
  private readonly fds = new Map<number, number>();
  /** The last blocks read and checked: consecutive documents of a window usually share them. */
  private cache: { shard: number; firstBlock: number; endBlock: number; bytes: Uint8Array } | null = null;

  private constructor(
    readonly dir: string,
    manifest: Manifest,
  ) {
    this.manifest = manifest;
    const plan = manifest.plan;
    this.vocabSize = plan.vocab_size;
    this.bos = plan.bos;
    this.eos = plan.eos;
    this.width = plan.dtype === 'uint16' ? 2 : 4;
    this.tokenizer = manifest.tokenizer === null ? null : this.loadOwnTokenizer(manifest.tokenizer);
    closer.register(this, this.fds, this);

    this.documentStarts = new Float64Array(manifest.documents + 1);
    this.shardStarts = new Float64Array(manifest.shards.length + 1);
    this.shards = [];
    let doc = 0;
    manifest.shards.forEach((entry, s) => {
      const path = join(dir, entry.file);
      const index = this.checkedIndex(s, path, entry);
      const base = this.shardStarts[s]!;
      for (let d = 0; d < entry.documents; d++) this.documentStarts[doc + d] = base + index.starts[d]!;
      doc += entry.documents;
      this.shardStarts[s + 1] = base + entry.tokens;
      this.shards.push({ path, entry, index: { header: index.header, crcs: index.crcs } });
    });
    this.documentStarts[doc] = manifest.tokens;
  }

  /** Opens and checks a prepared folder (see the file comment); throws a UserError naming what is wrong. */
  static open(dir: string): ShardSet {
    const manifest = readManifest(dir);
    if (!manifest.complete) {
      throw new UserError(`token shard folder ${dir} is incomplete (${manifest.shards.length} shards written; \`adabatch data prepare\` was interrupted): run the same command again to finish it`);
    }
    return new ShardSet(dir, manifest);
  }

  get documents(): number {
    return this.manifest.documents;
  }

  get tokenCount(): number {
    return this.manifest.tokens;
  }

  get description(): string {
    return `${this.dir} (${this.shards.length} shard${this.shards.length === 1 ? '' : 's'})`;
  }

  /** The documents' ids, in order (read again from each shard's index and checked; not kept). */
  *documentIds(): Generator<string> {
    for (let s = 0; s < this.shards.length; s++) {
      const index = this.checkedIndex(s, this.shards[s]!.path, this.shards[s]!.entry);
      for (let d = 0; d < index.header.documents; d++) yield index.idAt(d);
    }
  }

  /** Tokens [offset, offset + count) of document `doc` (a view the next read may overwrite). */
  read(doc: number, offset: number, count: number): TokenArray {
    if (!(Number.isInteger(doc) && doc >= 0 && doc < this.documents)) throw new RangeError(`document ${doc} is not one of the ${this.documents} in ${this.dir}`);
    const start = this.documentStarts[doc]!;
    const size = this.documentStarts[doc + 1]! - start;
    if (!(offset >= 0 && count >= 0 && offset + count <= size)) throw new RangeError(`tokens [${offset}, ${offset + count}) are not within document ${doc} (${size} tokens)`);
    return this.tokens(start + offset, start + offset + count);
  }

  /** Global tokens [from, to), checked (a view the next read may overwrite). */
  tokens(from: number, to: number): TokenArray {
    if (!(from >= 0 && from <= to && to <= this.tokenCount)) throw new RangeError(`tokens [${from}, ${to}) are not within the ${this.tokenCount} of ${this.dir}`);
    const s = this.shardAt(from);
    const base = this.shardStarts[s]!;
    if (to <= this.shardStarts[s + 1]!) return this.readInShard(s, from - base, to - base);
    // A span across shards (documents never straddle one, but a caller's span may): copy the parts.
    const out = this.width === 2 ? new Uint16Array(to - from) : new Uint32Array(to - from);
    for (let at = from, t = s; at < to; t++) {
      const end = Math.min(to, this.shardStarts[t + 1]!);
      out.set(this.readInShard(t, at - this.shardStarts[t]!, end - this.shardStarts[t]!), at - from);
      at = end;
    }
    return out;
  }

  /** Closes the shard files (the set stays usable: they reopen on the next read). */
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  /** The shard holding global token `pos` (the last shard whose start is ≤ pos). */
  private shardAt(pos: number): number {
    let lo = 0;
    let hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.shardStarts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Tokens [from, to) of shard s, from whole blocks whose CRCs and ids are checked when read. */
  private readInShard(s: number, from: number, to: number): TokenArray {
    if (from === to) return this.width === 2 ? new Uint16Array(0) : new Uint32Array(0);
    const { header, crcs } = this.shards[s]!.index;
    const w = header.width;
    const bb = header.blockBytes;
    const first = Math.floor((from * w) / bb);
    const end = Math.max(Math.ceil((to * w) / bb), first + 1);
    let c = this.cache;
    if (c === null || c.shard !== s || first < c.firstBlock || end > c.endBlock) {
      const readEnd = Math.min(end, crcs.length);
      const path = this.shards[s]!.path;
      const length = Math.min(readEnd * bb, header.tokens * w) - first * bb;
      const reuse = c !== null && c.bytes.buffer.byteLength >= length ? new Uint8Array(c.bytes.buffer, 0, length) : undefined;
      this.cache = null; // its bytes are about to be overwritten, and stay unchecked if this read fails
      const bytes = readAt(this.fd(s), path, HEADER_BYTES + first * bb, length, reuse);
      checkBlocks(bytes, first, { header, crcs }, path);
      checkIds(tokenView(bytes, w), header.vocabSize, path, (first * bb) / w);
      c = this.cache = { shard: s, firstBlock: first, endBlock: readEnd, bytes };
    }
    const at = from * w - c.firstBlock * bb;
    return tokenView(c.bytes.subarray(at, at + (to - from) * w), w);
  }

  private fd(s: number): number {
    let fd = this.fds.get(s);
    if (fd !== undefined) {
      this.fds.delete(s);
    } else {
      fd = openShardFile(this.shards[s]!.path);
      if (this.fds.size >= MAX_OPEN_FILES) {
        const [oldest, oldFd] = this.fds.entries().next().value!;
        closeSync(oldFd);
        this.fds.delete(oldest);
      }
    }
    this.fds.set(s, fd);
    return fd;
  }

  /** Shard s's index, checked against its manifest entry and the plan (opening it through the LRU). */
  private checkedIndex(s: number, path: string, entry: ShardEntry): ShardIndex {
    const fdBefore = this.fds.get(s);
    const fd = fdBefore ?? openShardFile(path);
    let index: ShardIndex;
    try {
      index = readShardIndex(fd, path);
    } finally {
      if (fdBefore === undefined) closeSync(fd);
    }
    checkShardMatches(index, s, entry, this.manifest, path);
    return index;
  }

  /** The tokenizer beside the manifest, which must be the one the shards were made with. */
  private loadOwnTokenizer(t: NonNullable<Manifest['tokenizer']>): Tokenizer {
    const path = join(this.dir, TOKENIZER_FILE);
    const tokenizer = loadTokenizer(path, { bosToken: t.bos_token, eosToken: t.eos_token });
    const plan = this.manifest.plan;
    if (tokenizer.hash() !== plan.tokenizer_hash) throw new UserError(`${path} is not the tokenizer the shards in ${this.dir} were made with (its hash changed): restore it, or prepare the shards again`);
    if (tokenizer.vocabSize !== plan.vocab_size || tokenizer.bos !== plan.bos || tokenizer.eos !== plan.eos) throw new UserError(`${path}: vocabulary or BOS/EOS ids differ from ${join(this.dir, 'manifest.json')}`);
    return tokenizer;
  }
}

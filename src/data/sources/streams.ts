/**
 * A file as a stream of byte chunks, decompressed on the way, and a stream of lines cut from it:
 * memory holds one chunk and one line at a time, whatever the file's size.
 *
 * gzip goes through node:zlib (concatenated members included). Node 20's zlib has no zstd (it arrived
 * in Node 22.15 / 23.8), so zstd goes through fzstd, the pure-JavaScript streaming decoder that
 * hyparquet-compressors already brings for Parquet's zstd pages: one implementation on every Node
 * version we support.
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import type { Compression } from './files.js';

const CHUNK_BYTES = 1 << 20;
const ZSTD_PUSH_BYTES = 1 << 16;

/** Thrown when a compressed stream is corrupt or truncated; the chunks before it were good. */
export class CorruptStream extends Error {}

/** The decompressed bytes of a file, chunk by chunk. */
export async function* fileChunks(path: string, compression: Compression): AsyncGenerator<Uint8Array> {
  const raw = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  if (compression === 'none') {
    yield* raw as AsyncIterable<Buffer>;
    return;
  }
  if (compression === 'gzip') {
    // pipeline forwards a read error to the gunzip stream and closes the file when either side stops.
    const gunzip = pipeline(raw, createGunzip({ chunkSize: CHUNK_BYTES }), () => {});
    try {
      yield* gunzip as AsyncIterable<Buffer>;
    } catch (e) {
      throw (e as NodeJS.ErrnoException).code?.startsWith('Z_') ? new CorruptStream(`corrupt gzip data (${(e as Error).message})`) : e;
    }
    return;
  }
  // fzstd hands out every block an input push completes, all at once: push small slices so that
  // memory stays bounded on highly compressible data (a 64 KiB slice of ~300× text is 20 MB of output).
  let out: Uint8Array[] = [];
  const zstd = new Decompress((data) => void out.push(data));
  const push = (chunk: Uint8Array, final: boolean): void => {
    try {
      zstd.push(chunk, final);
    } catch (e) {
      throw new CorruptStream(`corrupt zstd data (${(e as Error).message})`);
    }
  };
  try {
    for await (const chunk of raw as AsyncIterable<Buffer>) {
      for (let at = 0; at < chunk.length; at += ZSTD_PUSH_BYTES) {
        push(chunk.subarray(at, at + ZSTD_PUSH_BYTES), false);
        yield* out;
        out = [];
      }
    }
    push(new Uint8Array(0), true);
    yield* out;
  } finally {
    raw.destroy();
  }
}

export interface Line {
  /** The line's bytes, without its '\n'. Valid until the next line is asked for. */
  bytes: Uint8Array;
  /** 1-based. */
  number: number;
}

/** The lines of a byte stream, split at '\n' (a last line without one counts too). */
export async function* lines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Line> {
  let pending: Uint8Array[] = [];
  let number = 0;
  const joined = (tail: Uint8Array): Uint8Array => (pending.length === 0 ? tail : Buffer.concat([...pending, tail]));
  for await (const chunk of chunks) {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      yield { bytes: joined(chunk.subarray(start, nl)), number: ++number };
      pending = [];
      start = nl + 1;
    }
    // A decompressor may reuse its output buffer: keep a copy of an unfinished line (a Buffer's
    // slice() would be a view, so copy through the constructor).
    if (start < chunk.length) pending.push(new Uint8Array(chunk.subarray(start)));
  }
  if (pending.length > 0) yield { bytes: joined(new Uint8Array(0)), number: ++number };
}
